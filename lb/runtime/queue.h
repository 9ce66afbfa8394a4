/*
 * queue: per-server concurrency limits and the backend's queue (SPEC 13).
 *
 * A slot is one request (http) or connection (tcp) in progress on a
 * server: server_state.active counts them, server_state.limit caps them
 * (0 = no cap). slot_take never goes past the cap, whichever worker asks.
 *
 * A request that finds no candidate with a free slot waits in its
 * backend's FIFO (backend_state.queue, shared by every worker and every
 * generation of the backend). Slots are handed over, not freed, while
 * someone waits: slot_release gives the slot to the oldest waiter that may
 * use that server, so a request that arrives later cannot overtake one
 * that waits. A waiter may take any candidate server it has not tried,
 * or, for balance: hash, only its key's server (it never silently moves).
 * The grant goes to the waiter's own worker as mail (worker.h), which its
 * loop delivers: the waiter's on_grant runs on its own thread.
 *
 * Locks: backend_state.queue_lock, then the worker's mail lock (never the
 * other way round). A waiter is touched by other threads only under them.
 */
#ifndef LB_QUEUE_H
#define LB_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "gen.h"
#include "pick.h"

#include "worker.h"

enum queue_where {
	QUEUE_NOWHERE, /* its worker's alone */
	QUEUE_WAITING, /* in the backend's FIFO */
	QUEUE_GRANTED, /* in its worker's grants, holding a slot of server `granted` */
};

struct queue_waiter {
	/* first: in the backend's FIFO (its link) while waiting, posted to
	 * its worker (worker.h) once granted */
	struct worker_mail mail;
	/* Written under the locks (by a granting thread too), read freely by
	 * the waiter's worker: atomic. */
	_Atomic enum queue_where where;
	struct gen_backend *backend; /* of the waiter's generation (its session holds it) */
	const struct server_tries *tries; /* servers it may not take again */
	int want; /* hash: the one server index it may take; -1 = any candidate */
	uint64_t since_ms; /* clock_ms() when it joined */
	int granted; /* server index (in backend) whose slot it holds once granted */
	struct worker *worker;
	void (*on_grant)(struct queue_waiter *w); /* on its worker's thread */
};

/* Take a slot of server i of b: false when it is at its limit. */
bool slot_take(struct gen_backend *b, size_t i);

/* Give back a slot of server i of b: to the oldest waiter that may use
 * it, else free. */
void slot_release(struct gen_backend *b, size_t i);

/* Requests waiting in b's queue. */
static inline unsigned queue_length(const struct gen_backend *b)
{
	return atomic_load_explicit(&b->state->queue_length, memory_order_relaxed);
}

/* Wait in b's queue (w->backend) at the back; slots free now go to the
 * waiters at once, in order (w may be granted before this returns: its
 * on_grant still runs from its worker's loop). false when the queue is
 * full (or off: queue.max 0), counted as rejected. */
bool queue_join(struct queue_waiter *w);

/* Leave the queue (timeout, the client went away). Returns true when w
 * had been granted meanwhile and was not told yet: it holds a slot of
 * w->granted now, and the caller uses it or gives it back. */
bool queue_leave(struct queue_waiter *w);

/* Hand the free slots of b's servers to its waiters (after a limit grew,
 * a server came back): the control thread, every overload tick. */
void queue_dispatch(struct gen_backend *b);

/* How long the oldest waiter of b has waited, in ms (0: none). */
uint64_t queue_oldest_ms(const struct gen_backend *b);

#endif
