/* state: runtime state of servers and backends. See state.h. */
#include "state.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

struct server_state *server_state_new(const char *backend, const char *addr)
{
	struct server_state *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->backend = strdup(backend);
	s->addr = strdup(addr);
	if (s->backend == NULL || s->addr == NULL) {
		free(s->backend);
		free(s->addr);
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	atomic_init(&s->up, true);
	s->runtime_weight = -1;
	return s;
}

struct server_state *server_state_acquire(struct server_state *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void server_state_release(struct server_state *s)
{
	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(s->backend);
	free(s->addr);
	free(s->limiter);
	free(s);
}

const double lb_duration_bounds[LB_DURATION_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
							  0.1,   0.25,   0.5,   1,    2.5,   10 };

const char *const tls_result_names[TLS_RESULT_COUNT] = { "ok", "failed", "closed", "timeout" };

/* A zeroed state of `size` bytes that starts with a struct named_ref:
 * one reference, a copy of name. NULL: ENOMEM. */
static void *named_new(size_t size, const char *name)
{
	struct named_ref *r = calloc(1, size);
	if (r == NULL)
		return NULL;
	r->name = strdup(name);
	if (r->name == NULL) {
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	return r;
}

static void named_acquire(struct named_ref *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

/* Drop one reference; the last one frees the state (r is its start). */
static void named_release(struct named_ref *r)
{
	if (r == NULL || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(r->name);
	free(r);
}

struct listener_state *listener_state_new(const char *name)
{
	return named_new(sizeof(struct listener_state), name);
}

struct listener_state *listener_state_acquire(struct listener_state *st)
{
	named_acquire(&st->ref);
	return st;
}

void listener_state_release(struct listener_state *st)
{
	named_release(st != NULL ? &st->ref : NULL);
}

const char *const queue_reject_names[QUEUE_REJECT_COUNT] = { "full", "timeout" };

struct backend_state *backend_state_new(const char *name)
{
	struct backend_state *st = named_new(sizeof(struct backend_state), name);
	if (st == NULL)
		return NULL;
	pthread_mutex_init(&st->queue_lock, NULL);
	st->queue.prev = st->queue.next = &st->queue;
	return st;
}

struct backend_state *backend_state_acquire(struct backend_state *st)
{
	named_acquire(&st->ref);
	return st;
}

void backend_state_release(struct backend_state *st)
{
	named_release(st != NULL ? &st->ref : NULL);
}

void server_state_came_up(struct server_state *st)
{
	uint64_t now = clock_ms();
	atomic_store(&st->ramp_since_ms, now > 0 ? now : 1);
}

void duration_observe(struct duration_histogram *h, uint64_t us)
{
	size_t i = 0;
	while (i < LB_DURATION_BUCKETS && (double)us > lb_duration_bounds[i] * 1e6)
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}
