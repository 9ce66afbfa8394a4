/*
 * peer: a session's server side (nginx's ngx_peer_connection), the same
 * for HTTP and TCP: pick a server (pick.h) and take one of its slots
 * (queue.h: its max_connections), or wait in the backend's queue for one ->
 * a pooled or a new connection to it -> what health learns from the
 * outcome -> release (back to the pool, closed, or reset; the slot to the
 * next waiter). Retries are held to the backend's retry_budget.
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
#include "netutil.h"
#include "pick.h"
#include "queue.h"

struct worker;

struct peer {
	struct conn *conn; /* NULL when none */
	int index; /* in the backend's servers, whose slot it holds; -1 when none */
	bool reused; /* the connection came from the pool */
	bool retry; /* the slot is a retry's: counted in the retry budget */
	bool free_retry; /* the last try's server refused the connection: its retry costs nothing */
	struct server_tries tries; /* zeroed for each request (http) or connection (tcp) */
	struct queue_waiter waiter; /* while it waits for a slot (peer_wait) */
	void (*on_slot)(struct peer *p); /* the wait is over: index holds the slot */
	/* backends[].send_proxy (http): the idle connection to server
	 * private_index, kept for this client's next request there (its PROXY
	 * header named this client: no other may use it). NULL when none. */
	struct conn *private_conn;
	int private_index;
};

/* Ready for a first request or connection. */
void peer_init(struct peer *p);

/* The server in use, or NULL. */
static inline struct gen_server *peer_server(const struct peer *p, const struct gen_backend *b)
{
	return p->index >= 0 ? &b->servers[p->index] : NULL;
}

#define PEER_PICK_NONE (-1) /* no candidate, no try left, or the retry budget is spent */
#define PEER_PICK_FULL (-2) /* every candidate is at its limit, or requests wait before: peer_wait */

/* Pick the server of the next try (pick.h), take one of its slots and
 * count the request to it: its index (p->index), or PEER_PICK_*. For hash,
 * FULL means that the key's server is full (p->waiter.want). */
int peer_pick(struct peer *p, struct gen_backend *b, struct worker *w, const void *key, size_t key_len);

/* After PEER_PICK_FULL: wait in the backend's queue. Once a slot is given,
 * p->index holds it and on_slot(p) runs, from the worker's loop. false:
 * the queue is full or off (answer 503). */
bool peer_wait(struct peer *p, struct gen_backend *b, struct worker *w, void (*on_slot)(struct peer *p));

/* timeouts.queue passed: leave the queue (counted as rejected), unless a
 * slot had been given meanwhile: then true, and p->index holds it. (A
 * session that ends while waiting just releases: peer_release.) */
bool peer_wait_timed_out(struct peer *p);

static inline bool peer_waiting(const struct peer *p)
{
	return p->waiter.where != QUEUE_NOWHERE;
}

enum peer_attach {
	PEER_READY, /* a pooled connection: write at once */
	PEER_CONNECTING, /* a new connection: wait for it */
	PEER_NO_SOCKET, /* lb's own shortage (counted and logged as lb's) */
};

/* Who the server side works for: backends[].send_proxy names this client
 * (its address, perhaps from a PROXY header in) and the address it
 * connected to (its socket's). */
struct peer_client {
	const union sockaddr_ip *addr;
	const struct sockaddr *to; /* the address it connected to, from a PROXY header; NULL = its socket's */
	const struct conn *conn;
};

/* Connect to the server whose slot p holds: a pooled connection when
 * use_pool allows and there is one (never with send_proxy: a connection
 * speaks for one client), else a new one, which starts with the PROXY
 * header when the backend sends one. Its events go to cb(arg). */
enum peer_attach peer_attach(struct peer *p, struct gen_backend *b, struct worker *w, bool use_pool,
			     const struct peer_client *client, conn_callback *cb, void *arg);

enum peer_release {
	PEER_TO_POOL, /* exchange complete: idle, reusable */
	PEER_CLOSE, /* done with it: FIN */
	PEER_ABORT, /* mid-exchange: a reset, so the server does not wait for the rest */
};

/* Give the server side up: the connection pooled (when the backend keeps
 * any; surplus_ok as pool.h), closed or reset; the slot to the next
 * waiter (or free). */
void peer_release(struct peer *p, struct gen_backend *b, struct worker *w, enum peer_release how, bool surplus_ok);

/* Only the connection (how as peer_release); the slot stays, for another
 * connection to the same server. */
void peer_drop_conn(struct peer *p, struct gen_backend *b, struct worker *w, enum peer_release how, bool surplus_ok);

/* Close the private connection (send_proxy), if any: the session moves to
 * another generation, whose servers are numbered anew. */
void peer_forget_private(struct peer *p);

/* What health learns (health.h): a failure of the server, a connect that
 * failed with errno err (lb's own shortages are not the server's), or a
 * success. No-ops without a server. */
void peer_note_failure(const struct peer *p, struct gen_backend *b, const char *why);
void peer_note_connect_failure(struct peer *p, struct gen_backend *b, int err);
void peer_note_success(const struct peer *p, const struct gen_backend *b);

/* Bytes sent to and received from the server (/stats, /metrics). */
void peer_count_bytes(const struct peer *p, const struct gen_backend *b, uint64_t to_server, uint64_t from_server);

#endif
