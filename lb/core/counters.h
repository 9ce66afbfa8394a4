/*
 * counters: process-wide counters. Workers count connections, the control
 * thread counts reloads, the admin endpoint reads them all. Atomics only:
 * any thread, no lock.
 */
#ifndef LB_COUNTERS_H
#define LB_COUNTERS_H

#include <stdatomic.h>

struct lb_counters {
	atomic_uint connections_active; /* client connections open */
	atomic_uint_fast64_t connections_total;
	atomic_uint_fast64_t reloads_ok;
	atomic_uint_fast64_t reloads_failed;
};
extern struct lb_counters lb_counters;

#endif
