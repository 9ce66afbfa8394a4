/*
 * health: is a server up? (SPEC 6)
 *
 * Active checks run on the control thread's event loop, never on a proxy
 * worker: one checker per server of the current generation, probing every
 * health_check.interval (tcp: connect; http: GET path, status in expect),
 * each probe bounded by timeout. `fall` failures in a row take the server
 * down, `rise` successes bring it back. First probes are spread over the
 * interval so N servers are not probed in one burst; a server added by a
 * reload is probed at once.
 *
 * Passive checks run in the workers: `passive.failures` consecutive connect
 * failures or 5xx answers take a server down at once; for `passive.cooldown`
 * after that, active successes do not count; then the active check decides
 * (with `type: none`, the server simply comes back after the cooldown).
 *
 * The verdict is server_state.up (atomic), read by every pick. Checkers are
 * keyed by server_state, which a reload carries over for servers that stay,
 * so a reload keeps each server's health and its checker's counters; checks
 * of removed servers stop.
 */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include "gen.h"

struct event_base;

/* Control thread: start checking the servers of g, and after a reload the
 * servers of the new g (keeping the checkers of servers that stay). */
int health_sync(struct event_base *base, const struct gen *g);

/* Control thread: stop every checker (at exit). */
void health_stop_all(void);

/* What the last check of a server said ("ok", "connection refused", ...),
 * or "" when none ran. Control thread only (the admin endpoint). */
const char *health_last_check(const struct server_state *state);

/* Workers: a request or connection to the server failed (connect failure,
 * 5xx, reset) or succeeded. Thread-safe. */
void health_note_failure(struct server_state *state, const struct cfg_backend *cfg, const char *why);
void health_note_success(struct server_state *state);

#endif
