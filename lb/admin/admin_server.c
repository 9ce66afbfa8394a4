/* admin_server: the admin endpoint's HTTP/1.1 server. See admin_server.h. */
#include "admin_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "deadline.h"
#include "health.h"
#include "listener.h"
#include "netutil.h"

#define ACCEPT_BUDGET 16
#define LINGER_MS 1000 /* reading what the client still sends after our answer */

struct admin_conn {
	struct admin_server *server;
	struct admin_conn *prev, *next;
	struct conn *conn;
	struct deadline deadline; /* the head, then the client's reading of the answer */
	size_t scan_pos; /* http_head_length resume point */
	bool answered; /* the answer is in conn->out: flush, shut, linger, close */
};

struct admin_server {
	int fd;
	struct event *accept_event;
	struct event *accept_resume; /* ADMIN_ACCEPT_PAUSE_MS after a failed accept */
	unsigned max_connections, nconns;
	struct admin_conn *conns;
	admin_handler *handler;
	void *arg;
};

/* One head at a time on the control thread: not on any stack, not per
 * connection (about 2 KiB). */
static struct http_head head;
static struct http_header head_fields[HTTP_DEFAULT_MAX_HEADERS];

static void admin_conn_close(struct admin_conn *ac)
{
	struct admin_server *s = ac->server;
	if (ac->prev)
		ac->prev->next = ac->next;
	else
		s->conns = ac->next;
	if (ac->next)
		ac->next->prev = ac->prev;
	s->nconns--;
	conn_free(ac->conn);
	deadline_free(&ac->deadline);
	free(ac);
}

static void answer(struct admin_conn *ac, const struct admin_reply *r, bool with_body)
{
	struct evbuffer *out = ac->conn->out;
	size_t len = evbuffer_get_length(r->body);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
			    "Connection: close\r\n",
			    r->status, r->reason, r->content_type, len);
	if (r->allow)
		evbuffer_add_printf(out, "Allow: %s\r\n", r->allow);
	if (r->authenticate)
		evbuffer_add_printf(out, "WWW-Authenticate: %s\r\n", r->authenticate);
	evbuffer_add(out, "\r\n", 2);
	if (with_body)
		evbuffer_add_buffer(out, r->body);
	ac->answered = true;
	ac->conn->want_read = true; /* to see the client close, discarding what it sends */
	deadline_set(&ac->deadline, ADMIN_HEAD_TIMEOUT_MS);
}

/* The server's own answers: 400, 408, 431, 501. False when the
 * connection had to be closed instead (out of memory). */
static bool answer_error(struct admin_conn *ac, int status, const char *reason)
{
	struct admin_reply r = { .status = status, .reason = reason, .content_type = "text/plain" };
	r.body = evbuffer_new();
	if (r.body == NULL) {
		admin_conn_close(ac);
		return false;
	}
	evbuffer_add_printf(r.body, "%s\n", reason);
	answer(ac, &r, true);
	evbuffer_free(r.body);
	return true;
}

static const char *reason_of(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Not Implemented";
	}
}

/* A copy of span `sp` of buf as a C string, or NULL when it does not fit. */
static const char *span_string(const char *buf, struct http_span sp, char *out, size_t cap)
{
	if (sp.len >= cap)
		return NULL;
	memcpy(out, buf + sp.off, sp.len);
	out[sp.len] = '\0';
	return out;
}

/* Parse the head and answer. False when the connection was closed. */
static bool dispatch(struct admin_conn *ac, const char *buf, size_t head_len)
{
	http_head_init(&head, head_fields, HTTP_DEFAULT_MAX_HEADERS);
	enum http_verdict v = http_parse_request(buf, head_len, &head);
	if (v != HTTP_MSG_OK) {
		int status = http_verdict_status(v);
		return answer_error(ac, status, reason_of(status));
	}
	char target[ADMIN_HEAD_MAX], authorization[ADMIN_HEAD_MAX];
	struct admin_request req = { .method = head.method };
	req.target = span_string(buf, head.target, target, sizeof(target));
	int a = http_header_find(buf, &head, "authorization", 13);
	if (a >= 0)
		req.authorization = span_string(buf, head.headers[a].value, authorization, sizeof(authorization));
	struct admin_reply r = { .status = 500, .reason = "Internal Server Error", .content_type = "text/plain" };
	if (req.target == NULL || (r.body = evbuffer_new()) == NULL) {
		admin_conn_close(ac);
		return false;
	}
	ac->server->handler(ac->server->arg, &req, &r);
	answer(ac, &r, head.method != HTTP_HEAD);
	evbuffer_free(r.body);
	return true;
}

/* Read the head (bounded in size and time), then answer; after the answer,
 * flush, shut the write side, and close once the client has closed or
 * LINGER_MS passed (closing with unread input would reset the connection
 * and could destroy the answer on its way). */
static void drive(struct admin_conn *ac, bool timed_out)
{
	struct conn *c = ac->conn;
	if (c->error) {
		admin_conn_close(ac);
		return;
	}
	if (ac->answered) {
		/* The client has ADMIN_HEAD_TIMEOUT_MS to read the answer (it
		 * may have half-closed meanwhile: it still gets all of it); then
		 * LINGER_MS to close after our FIN. */
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		conn_flush(c);
		if (timed_out || c->error) {
			admin_conn_close(ac);
			return;
		}
		if (evbuffer_get_length(c->out) == 0) {
			if (!c->write_shut) {
				conn_shutdown_write(c);
				deadline_set(&ac->deadline, LINGER_MS);
			}
			if (c->eof) {
				admin_conn_close(ac);
				return;
			}
		}
		conn_sync(c);
		return;
	}
	size_t len = evbuffer_get_length(c->in);
	size_t n = len < ADMIN_HEAD_MAX ? len : ADMIN_HEAD_MAX;
	const char *buf = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)n);
	size_t head_len = n ? http_head_length(buf, n, &ac->scan_pos) : 0;
	bool open = true;
	if (head_len > 0)
		open = dispatch(ac, buf, head_len);
	else if (!http_request_prefix_valid(buf, n) || (c->eof && n > 0))
		open = answer_error(ac, 400, "Bad Request");
	else if (n >= ADMIN_HEAD_MAX)
		open = answer_error(ac, 431, "Request Header Fields Too Large");
	else if (timed_out)
		open = answer_error(ac, 408, "Request Timeout");
	else if (c->eof) {
		admin_conn_close(ac);
		return;
	}
	if (!open)
		return;
	if (ac->answered) {
		drive(ac, false);
		return;
	}
	conn_sync(c);
}

static void on_conn_event(struct conn *c, void *arg)
{
	(void)c;
	drive(arg, false);
}

static void on_deadline(void *arg)
{
	drive(arg, true);
}

/* Over the cap: a fixed answer, written at once (it fits any socket
 * buffer), and the connection closed. What the client sent is read (and
 * not parsed) first: closing with unread input would send a reset, which
 * could destroy the answer before the client reads it. The listener
 * defers accepts until the first bytes arrive, so they are there. */
static void refuse(int fd)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 31\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
				   "too many admin connections now\n";
	char sink[4096];
	for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) == (ssize_t)sizeof(sink); i++)
		;
	ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)ignored;
	shutdown(fd, SHUT_WR);
	close(fd);
}

static void admin_conn_open(struct admin_server *s, int fd)
{
	if (s->nconns >= s->max_connections) {
		refuse(fd);
		return;
	}
	struct admin_conn *ac = calloc(1, sizeof(*ac));
	if (ac == NULL) {
		close(fd);
		return;
	}
	ac->server = s;
	ac->conn = conn_open(event_get_base(s->accept_event), fd, on_conn_event, ac);
	if (ac->conn == NULL || deadline_init(&ac->deadline, event_get_base(s->accept_event), on_deadline, ac) < 0) {
		if (ac->conn == NULL)
			close(fd);
		conn_free(ac->conn);
		free(ac);
		return;
	}
	ac->conn->read_limit = ADMIN_HEAD_MAX + 1;
	ac->conn->want_read = true;
	conn_sync(ac->conn);
	deadline_set(&ac->deadline, ADMIN_HEAD_TIMEOUT_MS);
	ac->next = s->conns;
	if (s->conns)
		s->conns->prev = ac;
	s->conns = ac;
	s->nconns++;
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct admin_server *s = arg;
	(void)fd;
	(void)what;
	event_add(s->accept_event, NULL);
}

static void on_accept_ready(evutil_socket_t fd, short what, void *arg)
{
	struct admin_server *s = arg;
	(void)what;
	for (int n = 0; n < ACCEPT_BUDGET; n++) {
		struct sockaddr_storage peer;
		socklen_t peer_len;
		int client = listener_accept(fd, &peer, &peer_len);
		if (client >= 0) {
			admin_conn_open(s, client);
			continue;
		}
		if (errno == EAGAIN)
			return;
		/* Out of descriptors or memory: the connection stays queued;
		 * pause instead of spinning on a socket that stays readable. */
		health_note_own_failure("admin endpoint: accept", errno);
		event_del(s->accept_event);
		struct timeval tv = netutil_timeval_ms(ADMIN_ACCEPT_PAUSE_MS);
		event_add(s->accept_resume, &tv);
		return;
	}
}

struct admin_server *admin_server_start(struct event_base *base, const struct cfg_addr *bind,
					unsigned max_connections, admin_handler *handler, void *arg, char *err,
					size_t errlen)
{
	struct admin_server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "admin: out of memory");
		return NULL;
	}
	s->max_connections = max_connections;
	s->handler = handler;
	s->arg = arg;
	s->fd = listener_open(bind, "admin", false, err, errlen);
	if (s->fd < 0)
		goto fail;
	/* Accepted once the first bytes are there (see refuse). */
	if (listener_tune(s->fd, true) != 0) {
		snprintf(err, errlen, "admin: cannot set socket options on %s: %s", bind->text, strerror(errno));
		goto fail;
	}
	s->accept_event = event_new(base, s->fd, EV_READ | EV_PERSIST, on_accept_ready, s);
	s->accept_resume = evtimer_new(base, on_accept_resume, s);
	if (s->accept_event == NULL || s->accept_resume == NULL || event_add(s->accept_event, NULL) != 0) {
		snprintf(err, errlen, "admin: out of memory");
		goto fail;
	}
	return s;
fail:
	admin_server_stop(s);
	return NULL;
}

void admin_server_set_max_connections(struct admin_server *s, unsigned max_connections)
{
	s->max_connections = max_connections;
}

void admin_server_stop(struct admin_server *s)
{
	if (s == NULL)
		return;
	while (s->conns != NULL)
		admin_conn_close(s->conns);
	if (s->accept_event)
		event_free(s->accept_event);
	if (s->accept_resume)
		event_free(s->accept_resume);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
