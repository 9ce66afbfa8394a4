/* counters: see counters.h. */
#include "counters.h"

struct lb_counters lb_counters;

uint64_t counters_connections_total(void)
{
	uint64_t total = 0;
	for (int i = 0; i < LB_MAX_WORKERS; i++)
		total += atomic_load_explicit(&lb_counters.workers[i].connections_total, memory_order_relaxed);
	return total;
}
