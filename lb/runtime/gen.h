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
 *   - struct server_state and struct backend_state (state.h: health,
 *     drain, counters) are shared by every generation that has the same
 *     (backend name, server address) or backend name, so a reload carries
 *     them over.
 *   - listening sockets: a new generation takes over the socket of an old
 *     listener with the same bind, so no connection is refused during a
 *     reload. Sockets are closed by the control thread (gen_close_dropped_sockets)
 *     once no worker polls them any more, never by gen_release.
 */
#ifndef LB_GEN_H
#define LB_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "balance.h"
#include "config.h"
#include "resolve.h"
#include "state.h"

struct gen_server {
	struct server_state *state; /* one reference owned by the generation */
	const struct cfg_server *cfg; /* the configured server it comes from */
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	int weight;
};

struct gen_backend {
	const struct cfg_backend *cfg;
	struct backend_state *state; /* one reference owned by the generation */
	struct gen_server *servers;
	size_t nservers;
	struct balancer *balancer; /* shared by the workers' picks (balance.h) */
	/* Each worker's cursor of the balancer (pick.c), made at its first
	 * pick by that worker alone; freed with the generation. */
	struct balance_cursor *cursors[LB_MAX_WORKERS];
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

/* Is server i of b a candidate outside panic (eligible and healthy)? */
static inline bool gen_server_usable(const struct gen_backend *b, size_t i)
{
	return gen_server_eligible(b, i) && server_state_healthy(b->servers[i].state);
}

#endif
