/*
 * admin_server: the HTTP/1.1 server under the admin endpoint (SPEC 9), on
 * the control thread's event loop. admin.c decides what to answer; this
 * module only carries requests and answers, and keeps a flood of clients
 * from costing the control thread (which also runs health checks) anything:
 *
 *   - at most `max_connections` connections at once; one more is answered
 *     503 and closed at once, before anything of it is read;
 *   - the whole request head must arrive within ADMIN_HEAD_TIMEOUT_MS of
 *     the accept (not per byte: a slow client cannot hold a connection);
 *   - the request line is checked as it arrives (http_msg.h), so garbage
 *     gets 400 at once; heads above ADMIN_HEAD_MAX get 431; the head is
 *     parsed by the same parser as proxied requests;
 *   - one request per connection: every answer says Connection: close, and
 *     a request body (admin requests need none) is not read;
 *   - accept() failing for want of descriptors pauses accepting for
 *     ADMIN_ACCEPT_PAUSE_MS (libevent's own listener would retry at once,
 *     forever) and is logged as lb's own failure, once a second.
 *
 * Control thread only.
 */
#ifndef LB_ADMIN_SERVER_H
#define LB_ADMIN_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http_msg.h"

struct event_base;
struct evbuffer;

#define ADMIN_HEAD_MAX 8192
#define ADMIN_HEAD_TIMEOUT_MS 5000
#define ADMIN_ACCEPT_PAUSE_MS 250

/* One request, as the handler sees it; valid during the call only. */
struct admin_request {
	enum http_method method;
	const char *target; /* NUL-terminated request-target, as received */
	const char *authorization; /* the Authorization value, or NULL */
};

/* The handler's answer: fill status, reason, content_type and body
 * (created empty by the server); `allow` / `authenticate` add the Allow /
 * WWW-Authenticate headers when not NULL. */
struct admin_reply {
	int status;
	const char *reason;
	const char *content_type;
	const char *allow;
	const char *authenticate;
	struct evbuffer *body;
};

typedef void admin_handler(void *arg, const struct admin_request *req, struct admin_reply *reply);

struct admin_server;

/* Listen on bind. NULL when the socket cannot be made, bound or listened
 * on, with the reason in err. */
struct admin_server *admin_server_start(struct event_base *base, const struct cfg_addr *bind,
					unsigned max_connections, admin_handler *handler, void *arg, char *err,
					size_t errlen);

/* A new connection cap (reload). */
void admin_server_set_max_connections(struct admin_server *s, unsigned max_connections);

/* Close the listener and every connection. NULL is fine. */
void admin_server_stop(struct admin_server *s);

#endif
