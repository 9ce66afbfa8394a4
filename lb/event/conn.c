/* conn: sockets with buffers, few system calls. See conn.h. */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>


/* Space offered to one readv: a typical request or response fits in one. */
#define READ_CHUNK (16 * 1024)
/* readv calls per readiness event: a fast sender cannot starve the others. */
#define READS_PER_EVENT 4

static void set_registered(struct event *ev, bool *registered, bool want)
{
	if (want == *registered)
		return;
	if (want)
		event_add(ev, NULL);
	else
		event_del(ev);
	*registered = want;
}

size_t conn_input_length(const struct conn *c)
{
	return c->in != NULL ? evbuffer_get_length(c->in) : 0;
}

static size_t output_length(const struct conn *c)
{
	return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

bool conn_buffers_ensure(struct conn *c)
{
	if (c->in == NULL)
		c->in = evbuffer_new();
	if (c->out == NULL)
		c->out = evbuffer_new();
	return c->in != NULL && c->out != NULL;
}

void conn_buffers_release(struct conn *c)
{
	if (conn_input_length(c) > 0 || output_length(c) > 0 || c->writing || c->connecting)
		return;
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	c->in = c->out = NULL;
}

/* The write event, made the first time it is needed. */
static struct event *write_event(struct conn *c);

void conn_sync(struct conn *c)
{
	bool want = c->want_read && !c->eof && !c->error && conn_input_length(c) < c->read_limit;
	set_registered(c->read_event, &c->reading, want);
}

/* After a failed read or write: true to try again (EINTR). Anything but
 * "would block" makes the connection unusable. */
static bool retry_after_failure(struct conn *c)
{
	if (errno == EINTR)
		return true;
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		c->error = true;
		c->error_code = errno;
	}
	return false;
}

static void read_some(struct conn *c)
{
	if (!conn_buffers_ensure(c)) {
		c->error = true; /* no memory to read into: the connection is lost */
		c->error_code = ENOMEM;
		conn_sync(c);
		return;
	}
	for (int i = 0; i < READS_PER_EVENT; i++) {
		if (evbuffer_get_length(c->in) >= c->read_limit)
			break;
		struct evbuffer_iovec vec[2];
		int nvec = evbuffer_reserve_space(c->in, READ_CHUNK, vec, 2);
		if (nvec < 1)
			break;
		size_t offered = 0;
		for (int v = 0; v < nvec; v++)
			offered += vec[v].iov_len;
		ssize_t n = readv(c->fd, (struct iovec *)vec, nvec);
		if (n < 0) {
			evbuffer_commit_space(c->in, vec, 0);
			if (retry_after_failure(c))
				continue;
			break;
		}
		if (n == 0) {
			evbuffer_commit_space(c->in, vec, 0);
			c->eof = true;
			break;
		}
		size_t left = (size_t)n;
		int used = 0;
		for (; used < nvec && left > 0; used++) {
			if (vec[used].iov_len > left)
				vec[used].iov_len = left;
			left -= vec[used].iov_len;
		}
		evbuffer_commit_space(c->in, vec, used);
		if ((size_t)n < offered)
			break; /* the socket is drained: no read to hear EAGAIN */
	}
	conn_sync(c);
}

void conn_read_now(struct conn *c)
{
	read_some(c);
}

static void write_some(struct conn *c)
{
	while (output_length(c) > 0) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0) {
			if (retry_after_failure(c))
				continue;
			break;
		}
		if (n == 0)
			break;
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	read_some(c);
	c->on_event(c, c->arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)what;
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		c->connecting = false;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			c->error = true;
			c->error_code = err;
		} else {
			c->connected = true;
		}
	}
	if (!c->error)
		write_some(c);
	bool pending = !c->error && output_length(c) > 0;
	set_registered(c->write_event, &c->writing, pending);
	if (c->error)
		conn_sync(c);
	c->on_event(c, c->arg);
}

/* Report an error found outside a callback (a failed write, an immediate
 * connect refusal) through the callback, from the event loop. */
static struct event *write_event(struct conn *c)
{
	if (c->write_event == NULL)
		c->write_event = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, on_writable, c);
	return c->write_event;
}

/* Report an error found outside a callback (a failed write, an immediate
 * connect refusal) through the callback, from the event loop; without
 * memory for the event, the owner learns it at its next look (error). */
static void report_later(struct conn *c)
{
	if (write_event(c) != NULL)
		event_active(c->write_event, EV_WRITE, 0);
}

/* Wait for writability (or stop waiting). */
static void want_write(struct conn *c, bool want)
{
	if (want && write_event(c) == NULL) {
		c->error = true; /* no memory to wait with */
		c->error_code = ENOMEM;
		return;
	}
	if (c->write_event != NULL)
		set_registered(c->write_event, &c->writing, want);
}

void conn_flush(struct conn *c)
{
	if (c->connecting || c->error || c->writing || output_length(c) == 0)
		return;
	write_some(c);
	if (!c->error)
		want_write(c, output_length(c) > 0);
	if (c->error)
		report_later(c);
}

void conn_shutdown_write(struct conn *c)
{
	if (!c->write_shut && !c->error && output_length(c) == 0) {
		shutdown(c->fd, SHUT_WR);
		c->write_shut = true;
	}
}

void conn_set_callback(struct conn *c, conn_callback *cb, void *arg)
{
	c->on_event = cb;
	c->arg = arg;
}

static struct conn *conn_new(struct event_base *base, int fd, conn_callback *cb, void *arg)
{
	/* The read event follows the struct: one allocation. */
	struct conn *c = calloc(1, sizeof(*c) + event_get_struct_event_size());
	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->base = base;
	c->on_event = cb;
	c->arg = arg;
	c->read_limit = CONN_DEFAULT_READ_LIMIT;
	c->want_read = true;
	c->read_event = (struct event *)(c + 1);
	if (event_assign(c->read_event, base, fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
	    !conn_buffers_ensure(c)) {
		c->read_event = NULL;
		c->fd = -1; /* the caller keeps the socket */
		conn_free(c);
		return NULL;
	}
	return c;
}

struct conn *conn_open(struct event_base *base, int fd, conn_callback *cb, void *arg)
{
	struct conn *c = conn_new(base, fd, cb, arg);
	if (c == NULL)
		return NULL;
	c->connected = true;
	conn_sync(c);
	return c;
}

struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen, conn_callback *cb,
			  void *arg)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct conn *c = conn_new(base, fd, cb, arg);
	if (c == NULL) {
		close(fd);
		return NULL;
	}
	/* Requests and responses are small and latency matters: no Nagle.
	 * (Accepted sockets inherit it from their listening socket.) */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->connecting = true;
	if (connect(fd, sa, salen) == 0 || errno == EINPROGRESS) {
		/* Done or under way: writability tells (SO_ERROR says which). */
		if (write_event(c) == NULL) {
			conn_free(c); /* closes fd */
			errno = ENOMEM;
			return NULL;
		}
		set_registered(c->write_event, &c->writing, true);
	} else {
		c->connecting = false;
		c->error = true;
		c->error_code = errno;
		report_later(c);
	}
	conn_sync(c);
	return c;
}

void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->read_event)
		event_del(c->read_event); /* its memory is c's */
	if (c->write_event)
		event_free(c->write_event);
	if (c->in)
		evbuffer_free(c->in);
	if (c->out)
		evbuffer_free(c->out);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

void conn_abort(struct conn *c)
{
	if (c == NULL)
		return;
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	if (c->fd >= 0)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	conn_free(c);
}
