/* queue: per-server limits and the backend's queue. See queue.h. */
#include "queue.h"

#include <pthread.h>
#include <unistd.h>

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
	unsigned peak = atomic_load_explicit(&st->active_peak, memory_order_relaxed);
	while (active + 1 > peak &&
	       !atomic_compare_exchange_weak_explicit(&st->active_peak, &peak, active + 1, memory_order_relaxed,
						      memory_order_relaxed))
		;
	return true;
}

static void link_remove(struct queue_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

static void link_append(struct queue_link *head, struct queue_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/* The index in w's backend of the server whose state is st, when w may
 * take it: a candidate (eligible; healthy unless the backend panics), not
 * tried, its key's server for hash. -1 otherwise. Under the queue lock. */
static int waiter_accepts(const struct queue_waiter *w, const struct server_state *st)
{
	const struct gen_backend *b = w->backend;
	for (size_t j = 0; j < b->nservers; j++) {
		if (b->servers[j].state != st)
			continue;
		if (w->want >= 0 && (size_t)w->want != j)
			return -1;
		for (size_t t = 0; t < w->tries->count; t++)
			if (w->tries->tried[t] == (int)j)
				return -1;
		bool panic = atomic_load_explicit(&b->state->panic, memory_order_relaxed);
		return (panic ? gen_server_eligible(b, j) : gen_server_usable(b, j)) ? (int)j : -1;
	}
	return -1;
}

/* Hand w the slot it now holds on its server j, and tell its worker.
 * Under the queue lock. */
static void grant(struct backend_state *bs, struct queue_waiter *w, int j)
{
	link_remove(&w->link);
	atomic_fetch_sub_explicit(&bs->queue_length, 1, memory_order_relaxed);
	w->granted = j;
	struct worker *wk = w->worker;
	pthread_mutex_lock(&wk->grants_lock);
	w->where = QUEUE_GRANTED;
	link_append(&wk->grants, &w->link);
	pthread_mutex_unlock(&wk->grants_lock);
	uint64_t one = 1;
	ssize_t n = write(wk->grant_fd, &one, sizeof(one));
	(void)n; /* a full eventfd (never in practice) is still readable */
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
	if (atomic_load_explicit(&bs->queue_length, memory_order_relaxed) >= (unsigned)max) {
		pthread_mutex_unlock(&bs->queue_lock);
		atomic_fetch_add_explicit(&bs->queue_rejected[QUEUE_REJECT_FULL], 1, memory_order_relaxed);
		return false;
	}
	w->since_ms = clock_ms();
	w->granted = -1;
	w->where = QUEUE_WAITING;
	link_append(&bs->queue, &w->link);
	atomic_fetch_add_explicit(&bs->queue_length, 1, memory_order_seq_cst);
	dispatch_locked(w->backend);
	pthread_mutex_unlock(&bs->queue_lock);
	return true;
}

bool queue_leave(struct queue_waiter *w)
{
	struct backend_state *bs = w->backend->state;
	pthread_mutex_lock(&bs->queue_lock);
	bool waiting = w->where == QUEUE_WAITING;
	if (waiting) {
		link_remove(&w->link);
		w->where = QUEUE_NOWHERE;
		atomic_fetch_sub_explicit(&bs->queue_length, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&bs->queue_lock);
	if (waiting || w->where == QUEUE_NOWHERE)
		return false;
	/* Granted, and the grant not delivered yet: only this worker takes
	 * it from its list, and that is us. */
	pthread_mutex_lock(&w->worker->grants_lock);
	link_remove(&w->link);
	w->where = QUEUE_NOWHERE;
	pthread_mutex_unlock(&w->worker->grants_lock);
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

void queue_deliver_grants(struct worker *wk)
{
	struct queue_link mine = { &mine, &mine };
	pthread_mutex_lock(&wk->grants_lock);
	if (wk->grants.next != &wk->grants) {
		mine.next = wk->grants.next;
		mine.prev = wk->grants.prev;
		mine.next->prev = &mine;
		mine.prev->next = &mine;
		wk->grants.next = wk->grants.prev = &wk->grants;
	}
	pthread_mutex_unlock(&wk->grants_lock);
	/* Each waiter's where is still QUEUE_GRANTED: queue_leave on this
	 * thread would take it from `mine`, which is fine while we walk, as
	 * each is unlinked before its on_grant runs. */
	while (mine.next != &mine) {
		struct queue_waiter *w = (struct queue_waiter *)mine.next;
		link_remove(&w->link);
		w->where = QUEUE_NOWHERE;
		w->on_grant(w);
	}
}
