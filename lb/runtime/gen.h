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
 *   - listening sockets: a new generation takes over the sockets of an old
 *     listener with the same bind, so no connection is refused during a
 *     reload, from the current generation or an older one still alive (a
 *     bind removed and added again by two quick reloads). Sockets are
 *     closed by the control thread (gen_close_dropped_sockets) once no
 *     worker polls them any more, never by gen_release. With
 *     global.reuseport a listener has a socket per worker (the kernel
 *     spreads connections, one worker wakes); the worker count is fixed
 *     for the process, so a reload never adds nor closes one of them alone,
 *     and no connection queued on a kept socket is lost.
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
#include "tls_context.h"

struct gen_server {
	struct server_state *state; /* one reference owned by the generation */
	const struct cfg_server *cfg; /* the configured server it comes from */
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	int given_weight; /* the file's, or an SRV record's */
	int weight; /* in force: given_weight, or a runtime weight (POST .../weight) */
	char *srv_target; /* srv: the target host name it was found at; NULL otherwise */
	/* backends[].tls: each worker's last session with this server, offered
	 * for resumption by its next connection (peer.c); freed with the
	 * generation. */
	SSL_SESSION *tls_sessions[LB_MAX_WORKERS];
};

struct gen_backend {
	const struct cfg_backend *cfg;
	struct backend_state *state; /* one reference owned by the generation */
	struct gen_server *servers;
	size_t nservers;
	struct balancer *balancer; /* shared by the workers' picks (balance.h) */
	struct tls_client *tls; /* backends[].tls, else NULL */
	/* Each worker's cursor of the balancer (pick.c), made at its first
	 * pick by that worker alone; freed with the generation. */
	struct balance_cursor *cursors[LB_MAX_WORKERS];
};

struct gen_listener {
	const struct cfg_listener *cfg;
	struct gen_backend *backend;
	/* Listening sockets, non-blocking (see "listening sockets" above):
	 * one per worker with global.reuseport, else one that every worker
	 * polls. gen_listener_fd says which is whose. */
	int fds[LB_MAX_WORKERS];
	int nfds;
	struct listener_state *state; /* one reference: counters kept across reloads */
	struct tls_server *tls; /* listeners[].tls, else NULL */
};

struct gen {
	atomic_int refs;
	unsigned long id; /* 1 for the first generation, +1 per change */
	int workers; /* of the process: the sockets a listener gets with reuseport */
	struct config_ref *cfg_ref; /* one reference */
	const struct lb_config *cfg; /* cfg_ref->cfg */
	struct gen_backend *backends;
	size_t nbackends;
	struct gen_listener *listeners;
	size_t nlisteners;
};

/* The generations alive when another is built, oldest first; the last is
 * the current one. Empty at start. */
struct gen_lineage {
	const struct gen *const *gens;
	size_t count;
};

/*
 * Build a generation from cfg (taking ownership of cfg, even on failure)
 * and the addresses of its servers (resolve.h), for `workers` workers.
 * The current generation of `alive` lends its server states and the
 * addresses of host names that failed to resolve this time; any of them
 * lends its listening sockets. Binds new listeners; on failure returns
 * NULL, closes what it bound, and writes the reason to err.
 */
struct gen *gen_create(struct lb_config *cfg, const struct resolution *res, struct gen_lineage alive, int workers,
		       char *err, size_t errlen);

/* The same configuration as the current generation of `alive`, with new
 * server addresses. */
struct gen *gen_rebuild(struct gen_lineage alive, const struct resolution *res, char *err, size_t errlen);

/* Does res give the servers of g other addresses than g has? (Names that
 * failed to resolve count as unchanged.) */
bool gen_resolution_differs(const struct gen *g, const struct resolution *res);

/* After a reload made g the running generation: runtime weights that
 * its file overrode are forgotten (state.h). Control thread. */
void gen_forget_stale_weights(const struct gen *g);

struct gen *gen_acquire(struct gen *g);
void gen_release(struct gen *g);

/* Close the listening sockets of `old` that no generation of `newer` took
 * over (none: close all). Call only when no worker polls them. */
void gen_close_dropped_sockets(const struct gen *old, struct gen_lineage newer);

/* The socket worker `worker` accepts from for l. */
static inline int gen_listener_fd(const struct gen_listener *l, int worker)
{
	return l->nfds > 1 ? l->fds[worker] : l->fds[0];
}

/* May server i of b take requests at all (weight > 0, not drained)? */
/* backends[].tls: the name server s's certificate must carry (and SNI
 * sends, unless it is an address): tls.sni, else the server's host (an
 * srv: server's SRV target). */
static inline const char *gen_server_tls_name(const struct gen_backend *b, const struct gen_server *s)
{
	if (b->cfg->tls.sni[0] != '\0')
		return b->cfg->tls.sni;
	return s->srv_target != NULL ? s->srv_target : s->cfg->addr.host;
}

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
