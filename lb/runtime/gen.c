/* gen: configuration generations. See gen.h for ownership rules. */
#include "gen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

/* The state of backend `name` in the previous generation (a new reference),
 * or a fresh one. */
static struct backend_state *backend_state_get(const struct gen *previous, const char *name)
{
	for (size_t b = 0; previous != NULL && b < previous->nbackends; b++) {
		struct backend_state *st = previous->backends[b].state;
		if (strcmp(st->ref.name, name) == 0)
			return backend_state_acquire(st);
	}
	return backend_state_new(name);
}

/* The state of listener `name` in the previous generation (a new
 * reference), or a fresh one. */
static struct listener_state *listener_state_get(const struct gen *previous, const char *name)
{
	for (size_t i = 0; previous != NULL && i < previous->nlisteners; i++) {
		struct listener_state *st = previous->listeners[i].state;
		if (strcmp(st->ref.name, name) == 0)
			return listener_state_acquire(st);
	}
	return listener_state_new(name);
}

/* The state of (backend, addr) in the previous generation, with a new reference. */
static struct server_state *server_state_carry(const struct gen *previous, const char *backend, const char *addr)
{
	if (previous == NULL)
		return NULL;
	for (size_t b = 0; b < previous->nbackends; b++) {
		const struct gen_backend *pb = &previous->backends[b];
		if (strcmp(pb->cfg->name, backend) != 0)
			continue;
		for (size_t i = 0; i < pb->nservers; i++) {
			struct server_state *s = pb->servers[i].state;
			if (strcmp(s->addr, addr) == 0)
				return server_state_acquire(s);
		}
	}
	return NULL;
}

/* "ip:port" or "[ip6]:port" */
static void format_sockaddr(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
	}
}

/* Append one server; takes or creates its state. weight: the file's or its
 * SRV record's; srv_target: NULL, or an srv: server's target (copied). */
static int backend_add_server(struct gen_backend *b, const struct gen *previous, const struct cfg_server *cs,
			      const char *id, const struct sockaddr_storage *sa, int weight, const char *srv_target)
{
	for (size_t i = 0; i < b->nservers; i++)
		if (strcmp(b->servers[i].state->addr, id) == 0)
			return 0; /* a name resolving to an address listed elsewhere */
	struct gen_server *s = &b->servers[b->nservers];
	s->state = server_state_carry(previous, b->cfg->name, id);
	if (s->state == NULL) {
		s->state = server_state_new(b->cfg->name, id);
		if (s->state != NULL && previous != NULL)
			server_state_came_up(s->state); /* added by a reload or by DNS: slow start */
	}
	if (s->state == NULL)
		return -1;
	atomic_fetch_add(&s->state->generations, 1);
	b->nservers++; /* from here gen_free releases it */
	s->cfg = cs;
	s->sockaddr = *sa;
	s->sockaddr_len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	s->given_weight = weight;
	s->weight = server_state_weight(s->state, weight);
	if (srv_target != NULL && (s->srv_target = strdup(srv_target)) == NULL)
		return -1;
	return 0;
}

/* The servers of previous's backend `name` that came from a configured
 * server written `text`: the addresses a failed resolution keeps. Each is
 * given to keep(), or only counted when keep is NULL. */
static size_t previous_addresses(const struct gen *previous, const char *name, const char *text,
				 int (*keep)(const struct gen_server *s, void *arg), void *arg)
{
	size_t n = 0;
	for (size_t b = 0; previous != NULL && b < previous->nbackends; b++) {
		const struct gen_backend *pb = &previous->backends[b];
		if (strcmp(pb->cfg->name, name) != 0)
			continue;
		for (size_t i = 0; i < pb->nservers; i++) {
			if (strcmp(pb->servers[i].cfg->addr.text, text) != 0)
				continue;
			if (keep != NULL && keep(&pb->servers[i], arg) < 0)
				return SIZE_MAX;
			n++;
		}
	}
	return n;
}

struct keeping {
	struct gen_backend *b;
	const struct gen *previous;
	const struct cfg_server *cs;
};

static int keep_server(const struct gen_server *kept, void *arg)
{
	struct keeping *k = arg;
	return backend_add_server(k->b, k->previous, k->cs, kept->state->addr, &kept->sockaddr, kept->given_weight,
				  kept->srv_target);
}

static int backend_build(struct gen_backend *b, const struct cfg_backend *cfg, const struct addr_set *sets,
			 const struct gen *previous, char *err, size_t errlen)
{
	size_t cap = 0;

	b->cfg = cfg;
	b->state = backend_state_get(previous, cfg->name);
	if (b->state == NULL)
		goto fail;
	for (size_t j = 0; j < cfg->nservers; j++)
		cap += sets[j].failed ? previous_addresses(previous, cfg->name, cfg->servers[j].addr.text, NULL, NULL)
				      : sets[j].count;
	b->servers = calloc(cap ? cap : 1, sizeof(*b->servers));
	if (b->servers == NULL)
		goto fail;
	for (size_t j = 0; j < cfg->nservers; j++) {
		const struct cfg_server *cs = &cfg->servers[j];
		char id[INET6_ADDRSTRLEN + 16];
		if (sets[j].failed) {
			/* A name that failed to resolve keeps what it had, all of it. */
			struct keeping k = { .b = b, .previous = previous, .cs = cs };
			if (previous_addresses(previous, cfg->name, cs->addr.text, keep_server, &k) == SIZE_MAX)
				goto fail;
			continue;
		}
		for (size_t k = 0; k < sets[j].count; k++) {
			/* An address written as such keeps its text as identity;
			 * each record of a name is named by its address. */
			if (sets[j].literal)
				snprintf(id, sizeof(id), "%s", cs->addr.text);
			else
				format_sockaddr((const struct sockaddr *)&sets[j].addrs[k], id, sizeof(id));
			int weight = sets[j].weights != NULL ? sets[j].weights[k] : cs->weight;
			const char *target = sets[j].targets != NULL ? sets[j].targets[k] : NULL;
			if (backend_add_server(b, previous, cs, id, &sets[j].addrs[k], weight, target) < 0)
				goto fail;
		}
	}

	struct balance_server *bs = calloc(b->nservers ? b->nservers : 1, sizeof(*bs));
	if (bs == NULL)
		goto fail;
	for (size_t i = 0; i < b->nservers; i++)
		bs[i] = (struct balance_server){ .id = b->servers[i].state->addr, .weight = b->servers[i].weight };
	struct balance_params params = {
		.kind = cfg->balance,
		.method = cfg->hash.method,
		.bounded_load = cfg->hash.bounded_load,
	};
	b->balancer = balancer_create(&params, bs, b->nservers);
	free(bs);
	if (b->balancer == NULL)
		goto fail;
	if (cfg->tls.enabled) {
		char why[400];
		b->tls = tls_client_new(&cfg->tls, why, sizeof(why));
		if (b->tls == NULL) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "backend %s: out of memory", cfg->name);
	return -1;
}

/* HTTP: wake the accept only once the request has arrived, so that the
 * session reads it at once (http.c); the kernel still hands over a silent
 * connection after a few seconds, and timeouts.header deals with it. Never
 * in TCP mode, where the server may speak first. */
static int tune_listen_socket(int fd, const struct cfg_listener *l)
{
	return listener_tune(fd, l->mode == LISTENER_MODE_HTTP);
}

static void close_listen_sockets(struct gen_listener *gl)
{
	for (int i = 0; i < gl->nfds; i++)
		close(gl->fds[i]);
	gl->nfds = 0;
}

/* A listener's sockets: one per worker with reuseport (after making sure
 * that nobody else holds the address: a socket with SO_REUSEPORT would
 * share it with another lb of the same user), else one. */
static int listen_sockets(struct gen_listener *gl, int workers, bool reuseport, char *err, size_t errlen)
{
	const struct cfg_listener *l = gl->cfg;
	char what[128];
	snprintf(what, sizeof(what), "listener %s", l->name);
	int wanted = reuseport && workers > 1 ? workers : 1;
	if (wanted > 1 && listener_probe(&l->bind, what, err, errlen) < 0)
		return -1;
	for (gl->nfds = 0; gl->nfds < wanted; gl->nfds++) {
		int fd = listener_open(&l->bind, what, wanted > 1, err, errlen);
		if (fd >= 0 && tune_listen_socket(fd, l) != 0) {
			snprintf(err, errlen, "%s: cannot set socket options: %s", what, strerror(errno));
			close(fd);
			fd = -1;
		}
		if (fd < 0) {
			close_listen_sockets(gl);
			return -1;
		}
		gl->fds[gl->nfds] = fd;
	}
	return 0;
}

static bool same_bind(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* The listener of a live generation on the same bind (the newest), or NULL. */
static const struct gen_listener *inherited_listener(struct gen_lineage alive, const struct cfg_listener *l)
{
	for (size_t k = alive.count; k-- > 0;) {
		const struct gen *g = alive.gens[k]; /* newest first */
		for (size_t i = 0; i < g->nlisteners; i++)
			if (same_bind(&g->listeners[i].cfg->bind, &l->bind))
				return &g->listeners[i];
	}
	return NULL;
}

/* Does a generation of `gens` hold socket fd? */
static bool socket_held(struct gen_lineage gens, int fd)
{
	for (size_t g = 0; g < gens.count; g++)
		for (size_t i = 0; i < gens.gens[g]->nlisteners; i++) {
			const struct gen_listener *l = &gens.gens[g]->listeners[i];
			for (int k = 0; k < l->nfds; k++)
				if (l->fds[k] == fd)
					return true;
		}
	return false;
}

static void gen_free(struct gen *g)
{
	for (size_t b = 0; b < g->nbackends; b++) {
		struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++) {
			for (size_t w = 0; w < LB_MAX_WORKERS; w++)
				SSL_SESSION_free(gb->servers[i].tls_sessions[w]);
			free(gb->servers[i].srv_target);
			struct server_state *st = gb->servers[i].state;
			if (atomic_fetch_sub(&st->generations, 1) == 1)
				atomic_store(&st->retired, true); /* pool.h: its pools close */
			server_state_release(st);
		}
		free(gb->servers);
		for (size_t w = 0; w < LB_MAX_WORKERS; w++)
			balance_cursor_free(gb->cursors[w]);
		balancer_free(gb->balancer);
		backend_state_release(gb->state);
		tls_client_free(gb->tls);
	}
	free(g->backends);
	for (size_t i = 0; i < g->nlisteners; i++) {
		listener_state_release(g->listeners[i].state);
		tls_server_free(g->listeners[i].tls);
	}
	free(g->listeners);
	config_ref_release(g->cfg_ref);
	free(g);
}

/* Build on ref (one reference taken over, even on failure). */
static struct gen *gen_build(struct config_ref *ref, const struct resolution *res, struct gen_lineage alive,
			     int workers, char *err, size_t errlen)
{
	const struct lb_config *cfg = ref->cfg;
	const struct gen *previous = alive.count ? alive.gens[alive.count - 1] : NULL;
	struct gen *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		config_ref_release(ref);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->id = previous ? previous->id + 1 : 1;
	g->workers = workers;
	g->cfg_ref = ref;
	g->cfg = cfg;
	g->backends = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*g->backends));
	g->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*g->listeners));
	if (g->backends == NULL || g->listeners == NULL || res->nbackends != cfg->nbackends) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t b = 0; b < cfg->nbackends; b++) {
		g->nbackends++; /* counted first: gen_free releases a half-built one */
		if (backend_build(&g->backends[b], &cfg->backends[b], res->sets[b], previous, err, errlen) < 0)
			goto fail;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct gen_listener *l = &g->listeners[i];
		l->cfg = &cfg->listeners[i];
		l->backend = &g->backends[l->cfg->backend_index];
		g->nlisteners++; /* counted first: gen_free releases a half-built one */
		if ((l->state = listener_state_get(previous, l->cfg->name)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (l->cfg->tls.enabled && (l->tls = tls_server_new(&l->cfg->tls, l->cfg->name, err, errlen)) == NULL)
			goto fail;
		const struct gen_listener *kept = inherited_listener(alive, l->cfg);
		if (kept != NULL) {
			/* Its sockets as they are (a change of global.reuseport
			 * applies to new binds): they listen already. */
			l->nfds = kept->nfds;
			memcpy(l->fds, kept->fds, sizeof(l->fds));
			for (int k = 0; k < l->nfds; k++)
				tune_listen_socket(l->fds[k], l->cfg); /* best effort */
		} else if (listen_sockets(l, workers, cfg->global.reuseport, err, errlen) < 0) {
			goto fail;
		}
	}
	return g;
fail:
	/* Close only what this generation bound itself. */
	for (size_t i = 0; i < g->nlisteners; i++)
		for (int k = 0; k < g->listeners[i].nfds; k++)
			if (!socket_held(alive, g->listeners[i].fds[k]))
				close(g->listeners[i].fds[k]);
	gen_free(g);
	return NULL;
}

struct gen *gen_create(struct lb_config *cfg, const struct resolution *res, struct gen_lineage alive, int workers,
		       char *err, size_t errlen)
{
	struct config_ref *ref = config_ref_new(cfg);
	if (ref == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	return gen_build(ref, res, alive, workers, err, errlen);
}

void gen_forget_stale_weights(const struct gen *g)
{
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++) {
			struct server_state *st = gb->servers[i].state;
			if (st->runtime_weight >= 0 && st->runtime_weight_over != gb->servers[i].given_weight)
				st->runtime_weight = -1;
		}
	}
}

struct gen *gen_rebuild(struct gen_lineage alive, const struct resolution *res, char *err, size_t errlen)
{
	const struct gen *current = alive.gens[alive.count - 1];
	return gen_build(config_ref_acquire(current->cfg_ref), res, alive, current->workers, err, errlen);
}

static bool same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	size_t len = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	return a->ss_family == b->ss_family && memcmp(a, b, len) == 0;
}

bool gen_resolution_differs(const struct gen *g, const struct resolution *res)
{
	if (res->nbackends != g->nbackends)
		return true;
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t j = 0; j < gb->cfg->nservers; j++) {
			const struct addr_set *set = &res->sets[b][j];
			const struct cfg_server *cs = &gb->cfg->servers[j];
			if (set->failed || set->literal)
				continue;
			/* Every server this name gave must still be among its
			 * addresses... */
			for (size_t i = 0; i < gb->nservers; i++) {
				if (gb->servers[i].cfg != cs)
					continue;
				bool found = false;
				for (size_t k = 0; k < set->count && !found; k++)
					found = same_sockaddr(&set->addrs[k], &gb->servers[i].sockaddr);
				if (!found)
					return true;
			}
			/* ...and every address a server of the backend, whichever
			 * entry gave it (an address listed twice is one server). */
			for (size_t k = 0; k < set->count; k++) {
				const struct gen_server *found = NULL;
				for (size_t i = 0; i < gb->nservers && found == NULL; i++)
					if (same_sockaddr(&set->addrs[k], &gb->servers[i].sockaddr))
						found = &gb->servers[i];
				if (found == NULL)
					return true;
				/* ...with its SRV record's weight (when this entry gave it) */
				if (set->weights != NULL && found->cfg == cs &&
				    (found->given_weight != set->weights[k] || found->srv_target == NULL ||
				     strcmp(found->srv_target, set->targets[k]) != 0))
					return true;
			}
		}
	}
	return false;
}

struct gen *gen_acquire(struct gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void gen_release(struct gen *g)
{
	if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g);
}

void gen_close_dropped_sockets(const struct gen *old, struct gen_lineage newer)
{
	for (size_t i = 0; i < old->nlisteners; i++)
		for (int k = 0; k < old->listeners[i].nfds; k++)
			if (!socket_held(newer, old->listeners[i].fds[k]))
				close(old->listeners[i].fds[k]);
}
