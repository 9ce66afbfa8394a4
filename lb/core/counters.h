/*
 * counters: process-wide counters. Workers count connections, the control
 * thread counts reloads, the admin endpoint reads them all. Atomics only:
 * any thread, no lock.
 */
#ifndef LB_COUNTERS_H
#define LB_COUNTERS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "state.h"

/* What one worker counts, on a cache line of its own (no false sharing). */
struct worker_counters {
	alignas(64) atomic_uint connections_active; /* client connections it holds */
	atomic_uint_fast64_t connections_total; /* accepted */
};

struct lb_counters {
	atomic_uint connections_active; /* client connections open (max_connections) */
	atomic_uint_fast64_t reloads_ok;
	atomic_uint_fast64_t reloads_failed;
	atomic_int nworkers; /* set once at start */
	struct worker_counters workers[LB_MAX_WORKERS];
};
extern struct lb_counters lb_counters;

/* Client connections accepted by every worker. */
uint64_t counters_connections_total(void);

#endif
