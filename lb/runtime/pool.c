/* pool: per-worker pools of idle server connections. See pool.h. */
#include "pool.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "netutil.h"
#include "slab.h"

#define SWEEP_INTERVAL_MS 1000
/* A pool may hold more than `keepalive` connections for a moment: a burst
 * of concurrent requests returns them all at once, and closing the surplus
 * at once would make the next burst open them all again (connection churn
 * at high concurrency). Surplus connections idle this long are closed by
 * the sweep, so only `keepalive` of them are kept once the burst is over. */
#define SURPLUS_IDLE_MS 1000

struct idle_conn {
	struct conn *conn;
	struct server_state *state; /* a reference */
	struct worker *worker;
	struct timeval idle_since;
	struct timeval expires; /* idle_since + timeouts.idle */
	int keepalive; /* connections the pool keeps for good */
	struct idle_conn *prev, *next; /* in state->pools[worker] */
	struct idle_conn *all_prev, *all_next; /* in the worker's list of all */
};

/* A worker's own: every idle connection of every server (for the sweep
 * and the exit), and the sweep timer. Made at the worker's first pool_put,
 * freed by pool_close_all; only that worker's thread touches it. */
struct worker_pools {
	struct idle_conn *idle_head;
	struct event *sweep_timer;
	struct slab *links; /* the struct idle_conn: one per pooled request, no malloc */
};

static void on_sweep(evutil_socket_t fd, short what, void *arg);

static struct worker_pools *worker_pools_get(struct worker *w)
{
	if (w->pools != NULL)
		return w->pools;
	struct worker_pools *wp = calloc(1, sizeof(*wp));
	if (wp == NULL || (wp->sweep_timer = evtimer_new(w->base, on_sweep, w)) == NULL ||
	    (wp->links = slab_create(sizeof(struct idle_conn), 16 * 1024)) == NULL) {
		if (wp != NULL && wp->sweep_timer != NULL)
			event_free(wp->sweep_timer);
		free(wp);
		return NULL;
	}
	w->pools = wp;
	return wp;
}

static void idle_unlink(struct idle_conn *ic)
{
	struct idle_pool *pool = &ic->state->pools[ic->worker->index];
	if (ic->prev)
		ic->prev->next = ic->next;
	else
		pool->head = ic->next;
	if (ic->next)
		ic->next->prev = ic->prev;
	pool->count--;
	if (ic->all_prev)
		ic->all_prev->all_next = ic->all_next;
	else
		ic->worker->pools->idle_head = ic->all_next;
	if (ic->all_next)
		ic->all_next->all_prev = ic->all_prev;
}

/* Unlink and free the bookkeeping; returns the connection. */
static struct conn *idle_remove(struct idle_conn *ic)
{
	struct conn *c = ic->conn;
	idle_unlink(ic);
	server_state_release(ic->state);
	slab_free(ic);
	return c;
}

/* Anything happening on an idle connection ends it: EOF, error, or bytes
 * the server sent unasked (a late or bogus response). */
static void on_idle_event(struct conn *c, void *arg)
{
	(void)c;
	conn_free(idle_remove(arg));
}

static bool expired(const struct idle_conn *ic, const struct timeval *now)
{
	return timercmp(now, &ic->expires, >=);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval now;
	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(w->base, &now);
	struct timeval surplus_age = netutil_timeval_ms(SURPLUS_IDLE_MS), surplus_before;
	timersub(&now, &surplus_age, &surplus_before);
	struct worker_pools *wp = w->pools;
	struct idle_conn *ic = wp->idle_head;
	while (ic != NULL) {
		struct idle_conn *next = ic->all_next;
		bool surplus = (int)ic->state->pools[w->index].count > ic->keepalive &&
			       timercmp(&ic->idle_since, &surplus_before, <=);
		bool retired = atomic_load_explicit(&ic->state->retired, memory_order_relaxed);
		if (surplus || retired || expired(ic, &now))
			conn_free(idle_remove(ic));
		ic = next;
	}
	if (wp->idle_head != NULL) {
		struct timeval tv = netutil_timeval_ms(SWEEP_INTERVAL_MS);
		event_add(wp->sweep_timer, &tv);
	}
}

struct conn *pool_take(struct worker *w, struct server_state *state)
{
	struct timeval now;
	event_base_gettimeofday_cached(w->base, &now);
	for (;;) {
		struct idle_conn *ic = state->pools[w->index].head;
		if (ic == NULL)
			return NULL;
		bool stale = expired(ic, &now);
		struct conn *c = idle_remove(ic);
		if (!stale && conn_buffers_ensure(c))
			return c;
		conn_free(c);
	}
}

void pool_put(struct worker *w, struct server_state *state, struct conn *c, int keepalive,
		       uint64_t idle_ms, bool surplus_ok)
{
	struct idle_pool *pool = &state->pools[w->index];
	struct idle_conn *ic = NULL;

	bool full = (!surplus_ok && pool->count >= (unsigned)keepalive) || atomic_load(&state->retired);
	struct worker_pools *wp = keepalive > 0 && !full ? worker_pools_get(w) : NULL;
	if (wp == NULL || (ic = slab_alloc(wp->links)) == NULL) {
		conn_free(c);
		return;
	}
	memset(ic, 0, sizeof(*ic));
	ic->conn = c;
	ic->state = server_state_acquire(state);
	ic->worker = w;
	ic->keepalive = keepalive;
	struct timeval idle = netutil_timeval_ms(idle_ms);
	event_base_gettimeofday_cached(w->base, &ic->idle_since);
	timeradd(&ic->idle_since, &idle, &ic->expires);
	ic->next = pool->head; /* LIFO: the warmest connection is reused first */
	if (pool->head)
		pool->head->prev = ic;
	pool->head = ic;
	pool->count++;
	ic->all_next = wp->idle_head;
	if (wp->idle_head)
		wp->idle_head->all_prev = ic;
	wp->idle_head = ic;
	if (!event_pending(wp->sweep_timer, EV_TIMEOUT, NULL)) {
		struct timeval tv = netutil_timeval_ms(SWEEP_INTERVAL_MS);
		event_add(wp->sweep_timer, &tv);
	}
	conn_set_callback(c, on_idle_event, ic);
	c->want_read = true;
	conn_sync(c);
	conn_buffers_release(c); /* an idle connection holds no buffer */
}

void pool_trim(struct worker *w)
{
	if (w->pools != NULL)
		slab_trim(w->pools->links);
}

void pool_close_all(struct worker *w)
{
	struct worker_pools *wp = w->pools;
	if (wp == NULL)
		return;
	while (wp->idle_head != NULL)
		conn_free(idle_remove(wp->idle_head));
	event_free(wp->sweep_timer);
	slab_destroy(wp->links);
	free(wp);
	w->pools = NULL;
}
