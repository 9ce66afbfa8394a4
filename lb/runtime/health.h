/*
 * health: is a server up? (SPEC 6; the rules are in health_policy.h)
 *
 * Active checks run on the control thread's event loop, never on a proxy
 * worker: one checker per server of the current generation, probing every
 * health_check.interval (tcp: connect; http: GET path, status in expect),
 * each probe bounded by timeout. `fall` failures in a row take the server
 * down (server_state.up), `rise` successes bring it back. First probes are
 * spread over the interval so N servers are not probed in one burst; a
 * server added by a reload is probed at once.
 *
 * Passive checks run in the workers: `passive.failures` consecutive connect
 * failures or 5xx answers eject a server (server_state.ejected) for its
 * cooldown, unless max_ejected forbids it. The control thread ends the
 * ejection once the cooldown is over and the active check has passed `rise`
 * times since the ejection (with `type: none`, at the cooldown's end).
 *
 * lb's own shortages (no descriptor or memory: see netutil_errno_is_local) never count against a server, in a probe or in a
 * worker's connect; they are logged at most once a second.
 *
 * Every HEALTH_TICK_MS the control thread also decides each backend's panic
 * flag (backend_state.panic), logging when a backend enters or leaves it.
 *
 * Checkers are keyed by server_state, which a reload carries over for
 * servers that stay, so a reload keeps each server's health and its
 * checker's counters; checks of removed servers stop.
 */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include "gen.h"

struct event_base;

#define HEALTH_TICK_MS 100

/* Control thread: start checking the servers of g, and after a reload the
 * servers of the new g (keeping the checkers of servers that stay). g must
 * stay alive until the next health_sync or health_stop_all. */
int health_sync(struct event_base *base, const struct gen *g);

/* Control thread: stop every checker (at exit). */
void health_stop_all(void);

/* What the last check of a server said ("ok", "connection refused", ...),
 * or "" when none ran. Control thread only (the admin endpoint). */
const char *health_last_check(const struct server_state *state);

/* Workers: a request or connection to server i of b failed (5xx, reset,
 * timeout, ...), or succeeded. Thread-safe. */
void health_note_failure(struct gen_backend *b, size_t i, const char *why);
void health_note_success(struct server_state *state);

/* Workers: a connect to server i of b failed with errno err. lb's own
 * shortage is logged and not counted; anything else is the server's. */
void health_note_connect_failure(struct gen_backend *b, size_t i, int err);

/* lb could not do something for want of its own resources (err as
 * netutil_errno_is_local). Logged at most once a second; counted. */
void health_note_own_failure(const char *what, int err);

/* How many times that happened since start. Thread-safe. */
uint64_t health_own_failures(void);

#endif
