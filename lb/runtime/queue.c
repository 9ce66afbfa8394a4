/* queue: per-server limits and the backend's queue. See queue.h. */
#include "queue.h"

#include <pthread.h>

#include "clock.h"
#include "worker.h"

bool slot_take(struct gen_backend *b, size_t i)
{
	struct server_state *st = b->servers[i].state;
	unsigned active = atomic_load_explicit(&st->active, memory_order_relaxed);
	for (;;) {
		unsigned limit = atomic_load_explicit(&st->limit, memory_order_relaxed);
		if (limit != 0 && active >= limit)
			return false;
		if (atomic_compare_exchange_weak_explicit(&st->active, &active, active + 1, memory_order_acq_rel,
							  memory_order_relaxed))
			break;
	}
	atomic_fetch_add_explicit(&b->state->active, 1, memory_order_relaxed);
	if (b->servers[i].cfg->max_connections != CFG_LIMIT_AUTO)
		return true; /* the peak is auto's sample alone */
	unsigned peak = atomic_load_explicit(&st->active_peak, memory_order_relaxed);
	while (active + 1 > peak &&
	       !atomic_compare_exchange_weak_explicit(&st->active_peak, &peak, active + 1, memory_order_relaxed,
						      memory_order_relaxed))
		;
	return true;
}

static bool tried(const struct queue_waiter *w, size_t j)
{
	for (size_t t = 0; t < w->tries->count; t++)
		if (w->tries->tried[t] == (int)j)
			return true;
	return false;
}

/* Health as pick.h sees it: healthy servers, or any eligible one in panic
 * or when no healthy one is left to try (the last resort). */
static bool health_allows(const struct queue_waiter *w, size_t j)
{
	const struct gen_backend *b = w->backend;
	if (gen_server_usable(b, j))
		return true;
	if (!gen_server_eligible(b, j))
		return false;
	if (atomic_load_explicit(&b->state->panic, memory_order_relaxed))
		return true;
	if (b->cfg->panic_threshold_percent == 0)
		return false;
	for (size_t k = 0; k < b->nservers; k++)
		if (!tried(w, k) && gen_server_usable(b, k))
			return false;
	return true;
}

/* The index in w's backend of the server whose state is st, when w may
 * take it: a candidate as for a pick, not tried, its key's server for
 * hash. -1 otherwise. Under the queue lock. */
static int waiter_accepts(const struct queue_waiter *w, const struct server_state *st)
{
	const struct gen_backend *b = w->backend;
	for (size_t j = 0; j < b->nservers; j++) {
		if (b->servers[j].state != st)
			continue;
		if ((w->want >= 0 && (size_t)w->want != j) || tried(w, j))
			return -1;
		return health_allows(w, j) ? (int)j : -1;
	}
	return -1;
}

/* The grant reaches its waiter, on the waiter's worker. */
static void deliver_grant(struct worker_mail *m)
{
	struct queue_waiter *w = (struct queue_waiter *)m;
	w->where = QUEUE_NOWHERE;
	w->on_grant(w);
}

/* Hand w the slot it now holds on its server j, and tell its worker.
 * Under the queue lock. */
static void grant(struct backend_state *bs, struct queue_waiter *w, int j)
{
	queue_link_remove(&w->mail.link);
	atomic_fetch_sub_explicit(&bs->queue_length, 1, memory_order_relaxed);
	w->granted = j;
	w->where = QUEUE_GRANTED;
	w->mail.deliver = deliver_grant;
	worker_post_mail(w->worker, &w->mail);
}

/* The oldest waiter that may use the server of state st, granted the
 * slot the caller holds on it. false: nobody may. Under the queue lock. */
static bool grant_to_oldest(struct backend_state *bs, const struct server_state *st)
{
	for (struct queue_link *l = bs->queue.next; l != &bs->queue; l = l->next) {
		struct queue_waiter *w = (struct queue_waiter *)l;
		int j = waiter_accepts(w, st);
		if (j >= 0) {
			grant(bs, w, j);
			return true;
		}
	}
	return false;
}

static void slot_free_now(struct gen_backend *b, struct server_state *st)
{
	atomic_fetch_sub_explicit(&st->active, 1, memory_order_acq_rel);
	atomic_fetch_sub_explicit(&b->state->active, 1, memory_order_relaxed);
}

/* Free slots of b's servers to waiters, oldest first. Under the queue lock. */
static void dispatch_locked(struct gen_backend *b)
{
	struct backend_state *bs = b->state;
	for (size_t i = 0; i < b->nservers && bs->queue.next != &bs->queue; i++) {
		while (bs->queue.next != &bs->queue && slot_take(b, i)) {
			if (!grant_to_oldest(bs, b->servers[i].state)) {
				slot_free_now(b, b->servers[i].state);
				break;
			}
		}
	}
}

void slot_release(struct gen_backend *b, size_t i)
{
	struct backend_state *bs = b->state;
	struct server_state *st = b->servers[i].state;
	if (atomic_load_explicit(&bs->queue_length, memory_order_seq_cst) == 0) {
		slot_free_now(b, st);
		atomic_thread_fence(memory_order_seq_cst); /* against queue_join's look at the slots */
		/* Someone may have joined between the look and the release:
		 * it found no slot, so it is given this one now. */
		if (atomic_load_explicit(&bs->queue_length, memory_order_seq_cst) != 0)
			queue_dispatch(b);
		return;
	}
	pthread_mutex_lock(&bs->queue_lock);
	unsigned limit = atomic_load_explicit(&st->limit, memory_order_relaxed);
	bool within = limit == 0 || atomic_load_explicit(&st->active, memory_order_relaxed) <= limit;
	if (!within || !grant_to_oldest(bs, st))
		slot_free_now(b, st); /* the limit shrank below what is held, or nobody may use it */
	pthread_mutex_unlock(&bs->queue_lock);
}

bool queue_join(struct queue_waiter *w)
{
	struct backend_state *bs = w->backend->state;
	int max = w->backend->cfg->queue_max;
	pthread_mutex_lock(&bs->queue_lock);
	bool full = atomic_load_explicit(&bs->queue_length, memory_order_relaxed) >= (unsigned)max;
	w->since_ms = clock_ms();
	w->granted = -1;
	w->where = QUEUE_WAITING;
	queue_link_append(&bs->queue, &w->mail.link);
	atomic_fetch_add_explicit(&bs->queue_length, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst); /* against slot_release's look at the length */
	/* Free slots go to the waiters in order. A full queue still lets w
	 * have one that nobody before it may use (its key's idle server). */
	dispatch_locked(w->backend);
	if (full && w->where == QUEUE_WAITING) {
		queue_link_remove(&w->mail.link);
		w->where = QUEUE_NOWHERE;
		atomic_fetch_sub_explicit(&bs->queue_length, 1, memory_order_relaxed);
		pthread_mutex_unlock(&bs->queue_lock);
		atomic_fetch_add_explicit(&bs->queue_rejected[QUEUE_REJECT_FULL], 1, memory_order_relaxed);
		return false;
	}
	pthread_mutex_unlock(&bs->queue_lock);
	return true;
}

bool queue_leave(struct queue_waiter *w)
{
	struct backend_state *bs = w->backend->state;
	pthread_mutex_lock(&bs->queue_lock);
	bool waiting = w->where == QUEUE_WAITING;
	if (waiting) {
		queue_link_remove(&w->mail.link);
		w->where = QUEUE_NOWHERE;
		atomic_fetch_sub_explicit(&bs->queue_length, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&bs->queue_lock);
	if (waiting || w->where == QUEUE_NOWHERE)
		return false;
	/* Granted, and the grant not delivered yet: only this worker
	 * delivers it, and that is us. */
	worker_recall_mail(w->worker, &w->mail);
	w->where = QUEUE_NOWHERE;
	return true;
}

void queue_dispatch(struct gen_backend *b)
{
	struct backend_state *bs = b->state;
	pthread_mutex_lock(&bs->queue_lock);
	dispatch_locked(b);
	pthread_mutex_unlock(&bs->queue_lock);
}

uint64_t queue_oldest_ms(const struct gen_backend *b)
{
	struct backend_state *bs = b->state;
	uint64_t oldest = 0;
	pthread_mutex_lock(&bs->queue_lock);
	if (bs->queue.next != &bs->queue) {
		uint64_t since = ((struct queue_waiter *)bs->queue.next)->since_ms, now = clock_ms();
		oldest = now > since ? now - since : 0;
	}
	pthread_mutex_unlock(&bs->queue_lock);
	return oldest;
}
