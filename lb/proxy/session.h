/*
 * session: what every proxied client connection has, whatever its
 * protocol: the worker and the generation it runs under, the client
 * connection and its address, the server side (peer.h), one deadline, and
 * the PROXY protocol step. http.c and tcp.c embed a struct session first in
 * their own and keep only their state machines; each has one driver
 * function, which every event of the session (client, server, deadline)
 * calls.
 *
 * Single-threaded: a session belongs to its worker's event loop.
 */
#ifndef LB_SESSION_H
#define LB_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/event.h>

#include "deadline.h"
#include "peer.h"
#include "worker.h"

struct session {
	struct session_link link; /* first: the worker's list */
	struct worker *worker;
	struct gen *gen; /* the generation of what it serves now (a reference) */
	const struct gen_listener *listener;
	struct gen_backend *backend;
	struct conn *client; /* &client_conn once open */
	struct conn client_conn;
	union sockaddr_ip client_addr; /* the one a PROXY header names, if any */
	/* The address the client connected to, as a PROXY header named it
	 * (sa_family AF_UNSPEC: none, it is the socket's): send_proxy passes
	 * it on. */
	union sockaddr_ip proxied_to;
	struct peer server;
	struct deadline deadline; /* the one timer: see deadline.h */
	bool timer_fired; /* the deadline passed; cleared by session_timer_arm */
	void (*drive)(struct session *s); /* the session type's driver */
};

/*
 * Start s (zeroed by the caller) on the accepted socket fd of listener l:
 * join the worker's list, hold the worker's generation, open the client
 * connection and the deadline, all of whose events call drive(s). On -1 the
 * caller still frees s through its own free function (which calls
 * session_close); fd is closed either way.
 */
int session_open(struct session *s, struct worker *w, const struct gen_listener *l, int fd,
		 const struct sockaddr_storage *client_addr, socklen_t client_addr_len, void (*drive)(struct session *s),
		 void (*destroy)(struct session_link *link), void (*stop)(struct session_link *link, enum session_stop why));

/* The connection callback of a session (arg: the session): it calls the
 * driver. Give it to the server side's connections (peer_attach). */
void session_on_event(struct conn *c, void *arg);

/* The same for a connection without a socket: an HTTP/2 stream (h2.h) of
 * the connection `parent` (its client and the address it connected to are
 * the stream's), whose conn runs over `transport` with `state`, under
 * generation g (l is one of its listeners). It counts as no connection of
 * its own. */
int session_open_virtual(struct session *s, struct worker *w, struct gen *g, const struct gen_listener *l,
			 const struct session *parent, const struct conn_transport *transport, void *state,
			 void (*drive)(struct session *s), void (*destroy)(struct session_link *link),
			 void (*stop)(struct session_link *link, enum session_stop why));

/* Undo session_open (what of it was done): the server side is reset if
 * still there, the client connection closed, s leaves the worker's list
 * and lets go of its generation. s itself is the caller's to free. */
void session_close(struct session *s);

/* The worker loop's cached clock (one reading per loop iteration). */
static inline struct timeval session_now(const struct session *s)
{
	struct timeval tv;
	event_base_gettimeofday_cached(s->worker->base, &tv);
	return tv;
}

/* The deadline is `ms` from now (deadline.h). */
static inline void session_timer_arm(struct session *s, uint64_t ms)
{
	s->timer_fired = false;
	deadline_set(&s->deadline, ms);
}

/* A TLS listener: put the client connection on TLS (tls_conn.h), from
 * the bytes read so far. plain_http_answer: what a client that speaks
 * plain HTTP gets (NULL = nothing). 0, or -1 without memory. */
int session_start_tls(struct session *s, const char *plain_http_answer);

/* The client's TLS handshake is not over yet (false without TLS). */
bool session_handshaking(const struct session *s);

/* Take a PROXY v1/v2 header from the front of the client's input
 * (proxy_proto.h). Returns 1 when it was there (drained; client_addr is
 * the original client unless the header says LOCAL), 0 while it is
 * incomplete, -1 when the connection does not start with one. */
int session_take_proxy_header(struct session *s);

#endif
