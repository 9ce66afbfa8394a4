/* conn: sockets with buffers, few system calls. See conn.h. */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "slab.h"

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

/* Empty buffers of released conns, for the next conn that needs some: a
 * keep-alive connection gives back and takes its two buffers once per
 * request, which malloc would otherwise pay for each time. Per thread
 * (a worker's conns are its own), at most SPARE_BUFFERS. */
#define SPARE_BUFFERS 64
static _Thread_local struct {
	struct evbuffer *buffers[SPARE_BUFFERS];
	size_t count;
} spare;

struct evbuffer *conn_buffer_take(void)
{
	return spare.count > 0 ? spare.buffers[--spare.count] : evbuffer_new();
}

/* b is empty, and drained since its last read (which frees its chains).
 * Not so after a read that found EOF or an error: that leaves an empty
 * 16 KiB chain reserved in the buffer, which only evbuffer_free releases. */
void conn_buffer_give(struct evbuffer *b)
{
	if (spare.count < SPARE_BUFFERS)
		spare.buffers[spare.count++] = b;
	else
		evbuffer_free(b);
}

void conn_thread_exit(void)
{
	while (spare.count > 0)
		evbuffer_free(spare.buffers[--spare.count]);
}

size_t conn_input_length(const struct conn *c)
{
	return c->in != NULL ? evbuffer_get_length(c->in) : 0;
}

static size_t output_length(const struct conn *c)
{
	return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

size_t conn_unsent(const struct conn *c)
{
	return output_length(c) + (c->transport != NULL ? c->transport->unsent(c) : 0);
}

/* Writability would let bytes move now: the write event is wanted. */
static bool wants_socket(const struct conn *c)
{
	return c->transport != NULL ? c->transport->wants_socket(c) : output_length(c) > 0;
}

/* The transport has input ready that needs no read from the socket. */
static bool transport_input_ready(const struct conn *c)
{
	return c->transport != NULL && c->transport->input_ready(c);
}

bool conn_buffers_ensure(struct conn *c)
{
	if (c->in != NULL)
		return true; /* both are there, or neither */
	struct evbuffer *in = conn_buffer_take(), *out = conn_buffer_take();
	if (in == NULL || out == NULL) {
		if (in != NULL)
			conn_buffer_give(in);
		if (out != NULL)
			conn_buffer_give(out);
		return false;
	}
	c->in = in;
	c->out = out;
	return true;
}

void conn_buffers_release(struct conn *c)
{
	if (c->in == NULL || c->writing || c->connecting || c->error || c->eof || evbuffer_get_length(c->in) > 0 ||
	    conn_unsent(c) > 0 || transport_input_ready(c))
		return; /* released already, busy, finished (its input may keep a chain: conn_buffer_give), or
			   with an error still to report */
	if (c->transport != NULL)
		c->transport->release(c);
	conn_buffer_give(c->in);
	conn_buffer_give(c->out);
	c->in = c->out = NULL;
	if (c->write_event != NULL) { /* not pending (not writing): made again when needed */
		event_free(c->write_event);
		c->write_event = NULL;
	}
}

/* The write event, made the first time a write waits or an error is
 * reported (report_later); NULL without memory. */
static struct event *write_event(struct conn *c);

void conn_sync(struct conn *c)
{
	bool want = c->want_read && !c->eof && !c->error && conn_input_length(c) < c->read_limit;
	set_registered(c->read_event, &c->reading, want);
	/* Input the transport holds (it stopped at read_limit) makes no
	 * socket readable: wake the read from the loop instead. */
	if (want && transport_input_ready(c))
		event_active(c->read_event, EV_READ, 0);
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

/* Per thread: where a readiness's first read lands when the buffer is
 * empty, so that a request or a response of a few hundred bytes costs a
 * chain of its own size (malloc's small bins) rather than a READ_CHUNK one:
 * once a burst has fragmented the heap (thousands of TLS connections come
 * and gone), a 16 KiB malloc per read searches long lists of free chunks
 * (perf: _int_malloc a fifth of lb's time). Bulk transfers read straight
 * into the buffer from the second read on. */
static _Thread_local char first_read[READ_CHUNK];

void conn_socket_read(struct conn *c, struct evbuffer *into, size_t limit)
{
	int i = 0;
	size_t have = evbuffer_get_length(into);
	if (have == 0 && limit > 0) {
		size_t want = limit < sizeof(first_read) ? limit : sizeof(first_read);
		size_t n = conn_socket_read_to(c, first_read, want);
		if (n > 0 && evbuffer_add(into, first_read, n) != 0) {
			c->error = true;
			c->error_code = ENOMEM;
		}
		if (n < want || c->eof || c->error)
			return; /* drained (or done): no read to hear EAGAIN */
		i = 1;
	}
	for (; i < READS_PER_EVENT; i++) {
		if (evbuffer_get_length(into) >= limit)
			break;
		struct evbuffer_iovec vec[2];
		int nvec = evbuffer_reserve_space(into, READ_CHUNK, vec, 2);
		if (nvec < 1)
			break;
		size_t offered = 0;
		for (int v = 0; v < nvec; v++)
			offered += vec[v].iov_len;
		ssize_t n = readv(c->fd, (struct iovec *)vec, nvec);
		if (n < 0) {
			evbuffer_commit_space(into, vec, 0);
			if (retry_after_failure(c))
				continue;
			break;
		}
		if (n == 0) {
			evbuffer_commit_space(into, vec, 0);
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
		evbuffer_commit_space(into, vec, used);
		if ((size_t)n < offered)
			break; /* the socket is drained: no read to hear EAGAIN */
	}
}

void conn_socket_write(struct conn *c, struct evbuffer *from)
{
	while (evbuffer_get_length(from) > 0) {
		int n = evbuffer_write(from, c->fd);
		if (n < 0) {
			if (retry_after_failure(c))
				continue;
			break;
		}
		if (n == 0)
			break;
	}
}

size_t conn_socket_read_to(struct conn *c, void *into, size_t len)
{
	for (;;) {
		ssize_t n = read(c->fd, into, len);
		if (n > 0)
			return (size_t)n;
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (!retry_after_failure(c))
			return 0;
	}
}

size_t conn_socket_write_from(struct conn *c, const void *from, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(c->fd, (const char *)from + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && retry_after_failure(c))
			continue;
		break;
	}
	return done;
}

static void write_some(struct conn *c)
{
	if (c->transport != NULL)
		c->transport->send(c);
	else if (c->out != NULL)
		conn_socket_write(c, c->out);
}

static void read_some(struct conn *c)
{
	if (!conn_buffers_ensure(c)) {
		c->error = true; /* no memory to read into: the connection is lost */
		c->error_code = ENOMEM;
		conn_sync(c);
		return;
	}
	if (c->transport != NULL) {
		c->transport->receive(c);
		/* What the protocol answers by itself (a handshake, an alert),
		 * and output that waited for the handshake. */
		conn_flush(c);
	} else {
		conn_socket_read(c, c->in, c->read_limit);
	}
	conn_sync(c);
}

void conn_read_now(struct conn *c)
{
	read_some(c);
}

/* Once the transport's last bytes are out: the half-close asked for. */
static void shut_if_wanted(struct conn *c)
{
	if (c->shut_wanted && !c->write_shut && !c->error && conn_unsent(c) == 0) {
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_WR);
		c->write_shut = true;
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
			/* With a transport, connected means its handshake is
			 * over: the transport says so. */
			c->connected = c->transport == NULL;
		}
	}
	if (!c->error)
		write_some(c);
	shut_if_wanted(c);
	bool pending = !c->error && wants_socket(c);
	set_registered(c->write_event, &c->writing, pending);
	if (c->error)
		conn_sync(c);
	c->on_event(c, c->arg);
}

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
	if (c->connecting || c->error || c->writing || conn_unsent(c) == 0)
		return;
	write_some(c);
	shut_if_wanted(c);
	if (!c->error)
		want_write(c, wants_socket(c));
	if (c->error)
		report_later(c);
}

void conn_shutdown_write(struct conn *c)
{
	if (c->shut_wanted || c->error || output_length(c) > 0)
		return;
	c->shut_wanted = true;
	if (c->transport != NULL)
		c->transport->finish(c);
	conn_flush(c);
	shut_if_wanted(c);
}

void conn_set_callback(struct conn *c, conn_callback *cb, void *arg)
{
	c->on_event = cb;
	c->arg = arg;
}

/* Set up c (zeroed) on fd. On failure c holds nothing and fd is the caller's. */
static int conn_setup(struct conn *c, struct event_base *base, int fd, conn_callback *cb, void *arg)
{
	c->fd = fd;
	c->base = base;
	c->on_event = cb;
	c->arg = arg;
	c->read_limit = CONN_DEFAULT_READ_LIMIT;
	c->want_read = true;
	if (event_assign(&c->read_storage, base, fd, EV_READ | EV_PERSIST, on_readable, c) != 0)
		return -1;
	c->read_event = &c->read_storage;
	if (!conn_buffers_ensure(c)) {
		conn_buffers_release(c);
		c->read_event = NULL;
		return -1;
	}
	return 0;
}

static struct conn *conn_new(struct event_base *base, struct slab *slab, int fd, conn_callback *cb, void *arg)
{
	struct conn *c = slab != NULL ? slab_alloc(slab) : malloc(sizeof(*c));
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->slab_owned = slab != NULL;
	if (conn_setup(c, base, fd, cb, arg) != 0) {
		if (c->slab_owned)
			slab_free(c);
		else
			free(c);
		c = NULL;
	}
	return c;
}

int conn_open_at(struct conn *c, struct event_base *base, int fd, conn_callback *cb, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->embedded = true;
	c->fd = -1;
	if (conn_setup(c, base, fd, cb, arg) != 0) {
		c->fd = -1;
		return -1;
	}
	c->connected = true;
	conn_sync(c);
	return 0;
}

int conn_open_virtual(struct conn *c, struct event_base *base, const struct conn_transport *transport, void *state,
		      conn_callback *cb, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->embedded = true;
	c->fd = -1;
	c->base = base;
	c->on_event = cb;
	c->arg = arg;
	c->read_limit = CONN_DEFAULT_READ_LIMIT;
	c->want_read = true;
	/* No descriptor: the event only ever runs by event_active (conn_wake). */
	if (event_assign(&c->read_storage, base, -1, EV_PERSIST, on_readable, c) != 0)
		return -1;
	c->read_event = &c->read_storage;
	if (!conn_buffers_ensure(c)) {
		c->read_event = NULL;
		return -1;
	}
	c->transport = transport;
	c->transport_state = state;
	c->connected = true;
	return 0;
}

void conn_wake(struct conn *c)
{
	event_active(c->read_event, EV_READ, 0);
}

struct conn *conn_open(struct event_base *base, int fd, conn_callback *cb, void *arg)
{
	struct conn *c = conn_new(base, NULL, fd, cb, arg);
	if (c == NULL)
		return NULL;
	c->connected = true;
	conn_sync(c);
	return c;
}

struct conn *conn_connect(struct event_base *base, struct slab *slab, const struct sockaddr *sa, socklen_t salen,
			  conn_callback *cb, void *arg)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct conn *c = conn_new(base, slab, fd, cb, arg);
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
	if (c->transport != NULL) {
		c->transport->close(c);
		c->transport = NULL;
		c->transport_state = NULL;
	}
	bool reusable = !c->eof && !c->error;
	if (c->in != NULL && reusable && evbuffer_get_length(c->in) == 0)
		conn_buffer_give(c->in);
	else if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL && reusable && evbuffer_get_length(c->out) == 0)
		conn_buffer_give(c->out);
	else if (c->out != NULL)
		evbuffer_free(c->out);
	if (c->fd >= 0)
		close(c->fd);
	if (c->embedded) {
		c->read_event = c->write_event = NULL;
		c->in = c->out = NULL;
		c->fd = -1;
	} else if (c->slab_owned) {
		slab_free(c);
	} else {
		free(c);
	}
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
