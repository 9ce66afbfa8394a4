/*
 * admin: the admin endpoint (SPEC 9): /healthz, /stats (JSON), /metrics
 * (Prometheus text format 0.0.4), and drain/enable of a server.
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

/* Serve g->cfg->admin (nothing when disabled). On a bind failure returns
 * NULL and writes the reason to err; *out is NULL when admin is disabled. */
int admin_start(struct event_base *base, const struct gen *g, struct admin **out, char *err, size_t errlen);

/* A new generation: serve its counters; rebind when admin.bind changed.
 * Returns 0, or -1 with err (the previous endpoint keeps running). */
int admin_update(struct event_base *base, struct admin **admin, const struct gen *g, char *err, size_t errlen);

void admin_stop(struct admin *admin);

#endif
