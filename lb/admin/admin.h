/*
 * admin: the admin endpoint (SPEC 9): /healthz, /stats (JSON), /metrics
 * (Prometheus text format 0.0.4), drain/enable and the runtime weight of a
 * server, and the drain of the whole instance (/healthz answers 503).
 *
 * It runs on the control thread's event loop, never on a proxy worker, and
 * reads the shared counters (atomics) of the current generation. Its HTTP
 * server is admin_server.h (a connection cap, a whole-head timeout, the
 * proxy's strict parser), so garbage, floods and slow clients cost neither
 * the proxy nor the health checks on the same thread anything.
 */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include "gen.h"

struct event_base;
struct admin;

/* What the process and the admin endpoint tell each other, owned by the
 * process (control.c) so that it outlives a rebind of the endpoint and
 * works without one. The control thread alone touches it. */
struct admin_instance {
	/* Drained (SIGTERM with global.drain_delay, or POST /drain):
	 * /healthz answers 503 while lb still serves, so that whatever
	 * balances in front of it takes it out first. */
	bool draining;
	uint64_t draining_since_ms; /* clock_ms() */
	bool stopping; /* set at SIGTERM: a drain cannot be undone */
	/* The last reload's result, for lbctl reload: "ok", or "failed" and
	 * its error lines. */
	const char *last_reload; /* NULL (none yet), "ok" or "failed" */
	unsigned long last_reload_gen; /* the generation running after it */
	char **last_reload_errors;
	size_t last_reload_nerrors;
	/* A runtime weight was set (server_state.runtime_weight): build and
	 * publish a generation with it. Returns 0, or -1 with err. */
	int (*weights_changed)(void *arg, char *err, size_t errlen);
	/* draining changed (admin_instance_drain, _undrain): keep-alive ends
	 * in the workers while it drains. May be NULL. */
	void (*drain_changed)(void *arg, bool draining);
	void *arg; /* of both */
};

/* Record a reload's result (errors copied, at most 64 kept). */
void admin_instance_reloaded(struct admin_instance *in, bool ok, unsigned long gen_id, const char *const *errors,
			     size_t nerrors);
/* Drain the instance, or serve again (no-op when it already is so). */
void admin_instance_drain(struct admin_instance *in);
void admin_instance_undrain(struct admin_instance *in);
void admin_instance_free(struct admin_instance *in);

/* Serve g->cfg->admin (nothing when disabled). On a bind failure returns
 * NULL and writes the reason to err; *out is NULL when admin is disabled. */
int admin_start(struct event_base *base, const struct gen *g, struct admin_instance *in, struct admin **out,
		char *err, size_t errlen);

/* A new generation: serve its counters; rebind when admin.bind changed.
 * Returns 0, or -1 with err (the previous endpoint keeps running). */
int admin_update(struct event_base *base, struct admin **admin, const struct gen *g, struct admin_instance *in,
		 char *err, size_t errlen);

/* The running configuration rebuilt (same file): serve g's counters,
 * nothing else changes (NULL is fine). Safe from inside a request. */
void admin_follow(struct admin *admin, const struct gen *g);

void admin_stop(struct admin *admin);

#endif
