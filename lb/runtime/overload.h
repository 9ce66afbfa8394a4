/*
 * overload: the control thread's side of SPEC 13. Every OVERLOAD_TICK_MS
 * it sets each server's limit (server_state.limit, which queue.h enforces)
 * from its max_connections: a number as written, `auto` from the server's
 * limiter (limiter.h) fed with the latencies the workers sampled in the
 * window, and either scaled down while the server is in slow start; then
 * it hands slots that came free that way to the queue's waiters.
 */
#ifndef LB_OVERLOAD_H
#define LB_OVERLOAD_H

#include "gen.h"
#include "limiter.h"

#define OVERLOAD_TICK_MS 100

/* auto starts a server at this limit (and never above max_connections_cap). */
#define OVERLOAD_AUTO_INITIAL LIMITER_INITIAL

/* One tick over the generation that runs. new_window: the window's
 * samples go to auto's limiters (every OVERLOAD_TICK_MS); false: only set
 * the limits (right after a generation is built, so that they hold before
 * it serves). Control thread. */
void overload_tick(struct gen *g, bool new_window);

/* A worker's sample for max_connections: auto: a request to server i of b
 * that took latency_us from being sent to its response head. */
static inline void overload_sample(const struct gen_backend *b, size_t i, uint64_t latency_us)
{
	struct server_state *st = b->servers[i].state;
	atomic_fetch_add_explicit(&st->latency_sum_us, latency_us, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->latency_count, 1, memory_order_relaxed);
}

#endif
