/*
 * peer: a session's server side (nginx's ngx_peer_connection), the same
 * for HTTP and TCP: pick a server (pick.h) -> a pooled or a new connection
 * to it -> its count of requests in progress -> what health learns from the
 * outcome -> release (back to the pool, closed, or reset).
 *
 * One struct peer per session, touched by its worker only; the server
 * states it counts on are shared (atomics).
 */
#ifndef LB_PEER_H
#define LB_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "pick.h"

struct worker;

struct peer {
	struct conn *conn; /* NULL when none */
	int index; /* in the backend's servers, -1 when none */
	bool reused; /* the connection came from the pool */
	struct server_tries tries; /* zeroed for each request (http) or connection (tcp) */
};

/* Ready for a first request or connection. */
void peer_init(struct peer *p);

/* The server in use, or NULL. */
static inline struct gen_server *peer_server(const struct peer *p, const struct gen_backend *b)
{
	return p->index >= 0 ? &b->servers[p->index] : NULL;
}

/* Pick the server of the next try (pick.h) and count the request to it.
 * Its index, or -1 when retries or servers are exhausted. */
int peer_pick(struct peer *p, struct gen_backend *b, const struct worker *w, const void *key, size_t key_len);

enum peer_attach {
	PEER_READY, /* a pooled connection: write at once */
	PEER_CONNECTING, /* a new connection: wait for it */
	PEER_NO_SOCKET, /* lb's own shortage (counted and logged as lb's) */
};

/* Use server i (picked, or the same again): count it in progress, then a
 * pooled connection when use_pool allows and there is one, else a new
 * one. Its events go to cb(arg). */
enum peer_attach peer_attach(struct peer *p, struct gen_backend *b, struct worker *w, int i, bool use_pool,
			     conn_callback *cb, void *arg);

enum peer_release {
	PEER_TO_POOL, /* exchange complete: idle, reusable */
	PEER_CLOSE, /* done with it: FIN */
	PEER_ABORT, /* mid-exchange: a reset, so the server does not wait for the rest */
};

/* Give the server side up: no longer in progress on its server; the
 * connection pooled (when the backend keeps any; surplus_ok as pool.h),
 * closed or reset. */
void peer_release(struct peer *p, struct gen_backend *b, struct worker *w, enum peer_release how, bool surplus_ok);

/* What health learns (health.h): a failure of the server, a connect that
 * failed with errno err (lb's own shortages are not the server's), or a
 * success. No-ops without a server. */
void peer_note_failure(const struct peer *p, struct gen_backend *b, const char *why);
void peer_note_connect_failure(const struct peer *p, struct gen_backend *b, int err);
void peer_note_success(const struct peer *p, const struct gen_backend *b);

/* Bytes sent to and received from the server (/stats, /metrics). */
void peer_count_bytes(const struct peer *p, const struct gen_backend *b, uint64_t to_server, uint64_t from_server);

#endif
