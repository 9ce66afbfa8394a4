/* overload: limits, auto and slow start, from the control thread. See overload.h. */
#include "overload.h"

#include <math.h>
#include <stdlib.h>

#include "clock.h"
#include "limiter.h"
#include "pick.h"
#include "queue.h"

/* auto: the window's samples to the server's limiter (made at its first
 * window); its limit. */
static unsigned limiter_window(struct server_state *st, int cap, bool new_window)
{
	if (st->limiter == NULL) {
		st->limiter = malloc(sizeof(*st->limiter));
		if (st->limiter == NULL)
			return OVERLOAD_AUTO_INITIAL; /* out of memory: a fixed guess */
		limiter_init(st->limiter, OVERLOAD_AUTO_INITIAL, cap);
	}
	if (!new_window)
		return (unsigned)limiter_value(st->limiter);
	uint64_t count = atomic_exchange_explicit(&st->latency_count, 0, memory_order_relaxed);
	uint64_t sum = atomic_exchange_explicit(&st->latency_sum_us, 0, memory_order_relaxed);
	unsigned peak = atomic_exchange_explicit(&st->active_peak, atomic_load(&st->active), memory_order_relaxed);
	double mean = count > 0 ? (double)sum / (double)count : 0.0;
	return (unsigned)limiter_update(st->limiter, count, mean, peak);
}

/* auto's limit, within the cap in force (a reload may have lowered it
 * since the limiter was made with the cap of its day). */
static unsigned auto_limit(struct server_state *st, int cap, bool new_window)
{
	unsigned limit = limiter_window(st, cap, new_window);
	return limit > (unsigned)cap ? (unsigned)cap : limit;
}

static void backend_tick(struct gen_backend *b, uint64_t now, bool new_window)
{
	bool limited = false;
	for (size_t i = 0; i < b->nservers; i++) {
		struct server_state *st = b->servers[i].state;
		int wanted = b->servers[i].cfg->max_connections;
		unsigned limit = wanted == CFG_LIMIT_AUTO ? auto_limit(st, b->cfg->max_connections_cap, new_window)
			       : wanted > 0		  ? (unsigned)wanted
							  : 0;
		double share = pick_ramp_share(b, i, now);
		if (share >= 1.0 && atomic_load_explicit(&st->ramp_since_ms, memory_order_relaxed) != 0)
			atomic_store(&st->ramp_since_ms, 0); /* the ramp is over */
		if (limit > 0 && share < 1.0) {
			unsigned ramped = (unsigned)ceil(limit * share);
			limit = ramped > 0 ? ramped : 1;
		}
		atomic_store_explicit(&st->limit, limit, memory_order_relaxed);
		limited |= limit != 0;
	}
	atomic_store_explicit(&b->state->limited, limited, memory_order_relaxed);
	if (queue_length(b) > 0)
		queue_dispatch(b);
}

void overload_tick(struct gen *g, bool new_window)
{
	uint64_t now = clock_ms();
	for (size_t b = 0; b < g->nbackends; b++)
		backend_tick(&g->backends[b], now, new_window);
}
