/*
 * gen: configuration generations, the unit of reload.
 *
 * A generation is everything the proxy derives from one configuration file:
 * backends with resolved server addresses and a balancer each, and listeners
 * with their listening sockets. It is immutable once built, and
 * reference-counted:
 *   - the control thread holds one reference to the current generation;
 *   - each worker holds one to the generation it accepts for;
 *   - each session holds one to the generation it was accepted under, so a
 *     connection finishes on the configuration it started with.
 * gen_acquire/gen_release are thread-safe (atomics); the last release frees.
 *
 * What outlives a generation:
 *   - struct server_state (health, drain, counters) is shared by every
 *     generation that has the same (backend name, server address), so a
 *     reload carries it over; it is reference-counted by generations.
 *   - listening sockets: a new generation takes over the socket of an old
 *     listener with the same bind, so no connection is refused during a
 *     reload. Sockets are closed by the control thread (gen_close_dropped_sockets)
 *     once no worker polls them any more, never by gen_release.
 */
#ifndef LB_GEN_H
#define LB_GEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "balance.h"
#include "config.h"
#include "resolve.h"

/* Worker threads at most: server_state keeps one idle pool per worker. */
#define LB_MAX_WORKERS 64

struct idle_conn;

/* Idle keep-alive connections of one worker to one server (pool.c);
 * only that worker touches it. */
struct idle_pool {
	struct idle_conn *head;
	unsigned count;
};

/* Runtime state of one server, shared across generations and workers.
 * Every field but pools is atomic: workers update counters concurrently. */
struct server_state {
	atomic_int refs; /* one per generation containing the server, checker, idle connection */
	atomic_int generations; /* generations containing the server */
	atomic_bool retired; /* no generation has it any more: for good (a re-added server gets a new state) */
	char *backend; /* identity: (backend, addr) */
	char *addr;
	atomic_bool up; /* the active checks' verdict; servers start up */
	atomic_bool ejected; /* passive ejection in force (health.h) */
	atomic_bool drained; /* admin drain: no new requests */
	atomic_uint active; /* requests (http) or connections (tcp) in progress */
	atomic_uint consecutive_failures; /* passive health */
	/* Passive ejection, written under health.c's ejection lock; read
	 * freely. Times are CLOCK_MONOTONIC milliseconds. */
	atomic_uint_fast64_t ejected_at_ms;
	atomic_uint_fast64_t ejected_until_ms; /* the cooldown's end */
	atomic_uint ejection_multiplier; /* backoff: 1 + recent ejections, capped */
	atomic_uint_fast64_t ejections; /* in all */
	uint64_t eject_refused_logged_ms; /* under the ejection lock */
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t failures; /* connect failures, 5xx, resets */
	atomic_uint_fast64_t bytes_in; /* from the server */
	atomic_uint_fast64_t bytes_out; /* to the server */
	atomic_uint_fast64_t responses[6]; /* relayed, by status class: [1] 1xx .. [5] 5xx ([0] unused) */
	struct idle_pool pools[LB_MAX_WORKERS]; /* indexed by worker */
};

/* References to a server state held outside generations (idle connections). */
struct server_state *server_state_acquire(struct server_state *s);
void server_state_release(struct server_state *s);

struct gen_server {
	struct server_state *state; /* one reference owned by the generation */
	const struct cfg_server *cfg; /* the configured server it comes from */
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	int weight;
};

/* Request duration histogram buckets (upper bounds, seconds), for
 * lb_request_duration_seconds; one more bucket counts the rest (+Inf). */
#define LB_DURATION_BUCKETS 12
extern const double lb_duration_bounds[LB_DURATION_BUCKETS];

/* Runtime state of one backend, shared across generations by name (like
 * server_state), so its counters survive a reload. Atomics only. */
struct backend_state {
	atomic_int refs; /* one per generation containing the backend */
	char *name;
	atomic_uint_fast64_t duration_buckets[LB_DURATION_BUCKETS + 1]; /* not cumulative */
	atomic_uint_fast64_t duration_sum_us;
	atomic_uint_fast64_t duration_count;
	atomic_bool panic; /* set by the control thread (health.c), read by picks */
};

/* Count one request of `us` microseconds. Thread-safe. */
void backend_state_observe(struct backend_state *b, uint64_t us);

struct gen_backend {
	const struct cfg_backend *cfg;
	struct backend_state *state; /* one reference owned by the generation */
	struct gen_server *servers;
	size_t nservers;
	struct balancer *balancer;
	pthread_mutex_t pick_lock; /* serialises balance_pick across workers */
};

struct gen_listener {
	const struct cfg_listener *cfg;
	struct gen_backend *backend;
	int fd; /* listening socket, non-blocking; see "listening sockets" above */
};

struct gen {
	atomic_int refs;
	unsigned long id; /* 1 for the first generation, +1 per change */
	struct config_ref *cfg_ref; /* one reference */
	const struct lb_config *cfg; /* cfg_ref->cfg */
	struct gen_backend *backends;
	size_t nbackends;
	struct gen_listener *listeners;
	size_t nlisteners;
};

/*
 * Build a generation from cfg (taking ownership of cfg, even on failure)
 * and the addresses of its servers (resolve.h). `previous` (may be
 * NULL) lends its listening sockets and server states, and the addresses of
 * host names that failed to resolve this time. Binds new listeners; on
 * failure returns NULL, closes what it bound, and writes the reason to err.
 */
struct gen *gen_create(struct lb_config *cfg, const struct resolution *res, const struct gen *previous, char *err,
		       size_t errlen);

/* The same configuration as `previous`, with new server addresses. */
struct gen *gen_rebuild(const struct gen *previous, const struct resolution *res, char *err, size_t errlen);

/* Does res give the servers of g other addresses than g has? (Names that
 * failed to resolve count as unchanged.) */
bool gen_resolution_differs(const struct gen *g, const struct resolution *res);

struct gen *gen_acquire(struct gen *g);
void gen_release(struct gen *g);

/* Close the listening sockets of `old` that `current` did not take over
 * (current may be NULL: close all). Call only when no worker polls them. */
void gen_close_dropped_sockets(const struct gen *old, const struct gen *current);

/* May server i of b take requests at all (weight > 0, not drained)? */
static inline bool gen_server_eligible(const struct gen_backend *b, size_t i)
{
	const struct gen_server *s = &b->servers[i];
	return s->weight > 0 && !atomic_load_explicit(&s->state->drained, memory_order_relaxed);
}

/* Is the server healthy (its checks pass and it is not ejected)? */
static inline bool server_state_healthy(const struct server_state *st)
{
	return atomic_load_explicit(&st->up, memory_order_relaxed) &&
	       !atomic_load_explicit(&st->ejected, memory_order_relaxed);
}

/* Is server i of b a candidate outside panic (eligible and healthy)? */
static inline bool gen_server_usable(const struct gen_backend *b, size_t i)
{
	return gen_server_eligible(b, i) && server_state_healthy(b->servers[i].state);
}

/* The servers one request (http) or connection (tcp) has tried: SPEC 6
 * allows 1 + retries tries, never the same server twice. retries <= 10
 * (config.c). Zero it for each new request. */
#define GEN_MAX_TRIES 11
struct server_tries {
	int tried[GEN_MAX_TRIES];
	size_t count;
};

/*
 * The server for the next try of a request or connection: a candidate of b
 * not tried yet, while b's retries allow one more try (the try is recorded).
 * key/key_len: the hash key (NULL = none). -1 when there is none.
 *
 * Candidates are the usable servers; in panic (health_policy.h) every
 * eligible one. Unless panic is off for b (panic_threshold 0), a request
 * that has tried every usable server goes on to the others while tries
 * remain: one of them may be back before its checks say so.
 */
int gen_next_server(struct gen_backend *b, struct server_tries *tries, const void *key, size_t key_len);

#endif
