/*
 * pool: idle keep-alive connections to servers, pooled per worker and per
 * server (SPEC 4 `keepalive`).
 *
 * Only the owning worker touches its pools. A pooled connection keeps
 * reading: if the server closes it or sends something unasked, it is closed
 * and leaves the pool, so a connection the server closed is not handed out
 * (a close that races with the hand-out is caught by the HTTP session's
 * retry, SPEC 6). A sweep once a second closes connections idle longer
 * than timeouts.idle (they are never handed out either), connections to
 * servers that no generation has any more (a reload removed them), and, in
 * a pool holding more than `keepalive`, the surplus idle for a second or
 * more.
 * Each pooled connection holds a reference to its server_state.
 */
#ifndef LB_POOL_H
#define LB_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "gen.h"
#include "worker.h"

struct conn;

/* An idle connection to `state`, or NULL. The caller sets its callback. */
struct conn *pool_take(struct worker *w, struct server_state *state);

/* Park a connection whose exchange completed (input empty, nothing owed).
 * With surplus_ok, the pool may exceed `keepalive` during a burst; the
 * surplus is closed once it has been idle a second. Without it (a
 * connection opened for a request that could not take a pooled one, see
 * http.c), a full pool closes the connection at once: such requests
 * would otherwise pile up idle connections at the rate they arrive.
 * keepalive 0 closes it at once. */
void pool_put(struct worker *w, struct server_state *state, struct conn *c, int keepalive,
		       uint64_t idle_ms, bool surplus_ok);

/* Once a second on the worker's thread: memory unused since the last
 * call goes back (slab.h). */
void pool_trim(struct worker *w);

/* Close every idle connection of the worker and free its pools (at exit,
 * on the worker's thread). */
void pool_close_all(struct worker *w);

#endif
