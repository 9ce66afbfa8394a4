/*
 * state: the runtime state of servers and backends (health, drain,
 * counters, idle pools), which outlives configuration generations: every
 * generation with the same (backend name, server address) shares one
 * struct server_state, every one with the same backend name one struct
 * backend_state (gen.c carries them over on reload).
 *
 * Ownership: both are reference-counted. A server_state has one reference
 * per generation containing it, per health checker and per idle pooled
 * connection; a backend_state one per generation. The last release frees.
 * Threads: fields are atomics (workers update counters concurrently), but
 * for the idle pools (each touched only by its worker) and what the
 * comments say otherwise.
 */
#ifndef LB_STATE_H
#define LB_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Worker threads at most: server_state keeps one idle pool per worker. */
#define LB_MAX_WORKERS 64

struct idle_conn;
struct limiter;

/* Idle keep-alive connections of one worker to one server (pool.c);
 * only that worker touches it. */
struct idle_pool {
	struct idle_conn *head;
	unsigned count;
};

/* Runtime state of one server, shared across generations and workers.
 * Every field but pools is atomic: workers update counters concurrently. */
struct server_state {
	atomic_int refs; /* one per generation containing the server, checker, idle connection */
	atomic_int generations; /* generations containing the server */
	atomic_bool retired; /* no generation has it any more: for good (a re-added server gets a new state) */
	char *backend; /* identity: (backend, addr) */
	char *addr;
	atomic_bool up; /* the active checks' verdict; servers start up */
	atomic_bool ejected; /* passive ejection in force (health.h) */
	atomic_bool drained; /* admin drain: no new requests */
	/* A weight set at run time (admin), -1 = none: generations built
	 * while the file still gives the server runtime_weight_over take it
	 * instead (server_state_weight). Control thread only. */
	int runtime_weight;
	int runtime_weight_over;
	atomic_uint active; /* requests (http) or connections (tcp) in progress: slots held */
	/* Overload (SPEC 13). limit: the slots (0 = unlimited), set by the
	 * control thread (overload.c) from max_connections, auto's limiter
	 * and slow start; active never goes above it (queue.h). */
	atomic_uint limit;
	atomic_uint_fast64_t ramp_since_ms; /* slow start: when it came back up (clock_ms); 0 = not ramping */
	/* Latency samples for max_connections: auto, gathered by workers and
	 * taken by the control thread every window. */
	atomic_uint_fast64_t latency_sum_us;
	atomic_uint_fast64_t latency_count;
	atomic_uint active_peak; /* the most slots held at once in the window */
	struct limiter *limiter; /* auto's state (limiter.h), made by the control thread, which alone uses it */
	atomic_uint consecutive_failures; /* passive health */
	/* Passive ejection, written under health.c's ejection lock; read
	 * freely. Times are clock_ms() (clock.h). */
	atomic_uint_fast64_t ejected_at_ms;
	atomic_uint_fast64_t ejected_until_ms; /* the cooldown's end */
	atomic_uint ejection_multiplier; /* backoff: 1 + recent ejections, capped */
	atomic_uint_fast64_t ejections; /* in all */
	uint64_t eject_refused_logged_ms; /* under the ejection lock */
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t failures; /* connect failures, 5xx, resets */
	atomic_uint_fast64_t bytes_in; /* from the server */
	atomic_uint_fast64_t bytes_out; /* to the server */
	atomic_uint_fast64_t responses[6]; /* relayed, by status class: [1] 1xx .. [5] 5xx ([0] unused) */
	struct idle_pool pools[LB_MAX_WORKERS]; /* indexed by worker */
};

/* A new state for (backend, addr): up, one reference. NULL: ENOMEM. */
struct server_state *server_state_new(const char *backend, const char *addr);
struct server_state *server_state_acquire(struct server_state *s);
void server_state_release(struct server_state *s); /* NULL is fine */

/* Is the server healthy (its checks pass and it is not ejected)? */
static inline bool server_state_healthy(const struct server_state *st)
{
	return atomic_load_explicit(&st->up, memory_order_relaxed) &&
	       !atomic_load_explicit(&st->ejected, memory_order_relaxed);
}

/* Has the server a free slot (active below its limit)? A hint for picks:
 * queue.h's slot_take decides. */
static inline bool server_state_slot_free(const struct server_state *st)
{
	unsigned limit = atomic_load_explicit(&st->limit, memory_order_relaxed);
	return limit == 0 || atomic_load_explicit(&st->active, memory_order_relaxed) < limit;
}

/* The server came back up (after being down or ejected): slow start
 * ramps it from now. */
void server_state_came_up(struct server_state *st);

/* The weight a server of configured weight `configured` takes in a
 * generation built now: the runtime weight, unless the file has changed
 * that server's weight since it was set (the file wins; for good once a
 * reload with it succeeded: gen_forget_stale_weights). Control thread. */
static inline int server_state_weight(const struct server_state *st, int configured)
{
	return st->runtime_weight >= 0 && st->runtime_weight_over == configured ? st->runtime_weight : configured;
}

/* Request duration histogram buckets (upper bounds, seconds), for
 * lb_request_duration_seconds; one more bucket counts the rest (+Inf). */
#define LB_DURATION_BUCKETS 12
extern const double lb_duration_bounds[LB_DURATION_BUCKETS];

/* Durations counted into the lb_duration_bounds buckets. Atomics only. */
struct duration_histogram {
	atomic_uint_fast64_t buckets[LB_DURATION_BUCKETS + 1]; /* not cumulative; the last is +Inf */
	atomic_uint_fast64_t sum_us;
};

/* Count one duration of `us` microseconds. Thread-safe. */
void duration_observe(struct duration_histogram *h, uint64_t us);

/* What a state shared across generations by name starts with: one
 * reference per generation that holds it, and the name. */
struct named_ref {
	atomic_int refs;
	char *name;
};

/* Runtime state of one backend, shared across generations by name (like
 * server_state), so its counters survive a reload. Atomics only. */
/* A link in a doubly linked list with a sentinel head (queue.h's FIFO,
 * worker.h's mail). */
struct queue_link {
	struct queue_link *prev, *next;
};

static inline void queue_link_init(struct queue_link *l)
{
	l->prev = l->next = l;
}

static inline void queue_link_append(struct queue_link *head, struct queue_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static inline void queue_link_remove(struct queue_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	queue_link_init(l);
}

/* Why the queue turned a request away: full, or it waited past
 * timeouts.queue. */
enum queue_reject { QUEUE_REJECT_FULL, QUEUE_REJECT_TIMEOUT, QUEUE_REJECT_COUNT };
extern const char *const queue_reject_names[QUEUE_REJECT_COUNT]; /* "full", "timeout" */

struct backend_state {
	struct named_ref ref; /* first */
	struct duration_histogram durations; /* of HTTP requests */
	atomic_bool panic; /* set by the control thread (health.c), read by picks */
	/* Overload (SPEC 13; runtime/queue.h): requests waiting for a slot,
	 * oldest first, from every worker and generation. */
	pthread_mutex_t queue_lock;
	struct queue_link queue; /* of struct queue_waiter, under queue_lock */
	atomic_uint queue_length;
	struct duration_histogram queue_time; /* of requests that waited */
	atomic_uint_fast64_t queue_rejected[QUEUE_REJECT_COUNT];
	atomic_uint active; /* slots held on its servers, in all */
	atomic_bool limited; /* some server has a limit: set by the control thread (overload.c) */
	atomic_uint retries_active; /* slots held by retries */
	atomic_uint_fast64_t retries_refused; /* by the retry budget */
};

/* How TLS handshakes ended (tls_conn.h counts them). */
enum tls_result { TLS_RESULT_OK, TLS_RESULT_FAILED, TLS_RESULT_CLOSED, TLS_RESULT_TIMEOUT, TLS_RESULT_COUNT };
extern const char *const tls_result_names[TLS_RESULT_COUNT]; /* "ok", "failed", "closed", "timeout" */

struct tls_counters {
	atomic_uint_fast64_t handshakes[TLS_RESULT_COUNT];
	atomic_uint_fast64_t resumed; /* of the handshakes that went ok */
	struct duration_histogram durations; /* of the handshakes that went ok, from the accept */
	atomic_uint_fast64_t ktls_send, ktls_recv; /* handshakes after which the kernel took over records */
};

/* Runtime state of one listener, shared across generations by name (like
 * backend_state). Atomics only. */
struct listener_state {
	struct named_ref ref; /* first */
	struct tls_counters tls;
};

struct listener_state *listener_state_new(const char *name);
struct listener_state *listener_state_acquire(struct listener_state *st);
void listener_state_release(struct listener_state *st); /* NULL is fine */

/* A new state for backend `name`, one reference. NULL: ENOMEM. */
struct backend_state *backend_state_new(const char *name);
struct backend_state *backend_state_acquire(struct backend_state *st);
void backend_state_release(struct backend_state *st); /* NULL is fine */


#endif
