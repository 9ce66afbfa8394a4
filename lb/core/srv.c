/* srv: which SRV records are servers. See srv.h. */
#include "srv.h"

#include <string.h>

#define LB_WEIGHT_MAX 256

static int no_target(const struct srv_record *r)
{
	return r->target == NULL || r->target[0] == '\0' || strcmp(r->target, ".") == 0;
}

size_t srv_select(const struct srv_record *records, size_t n, int *weights)
{
	uint16_t lowest = UINT16_MAX;
	unsigned max_weight = 0;
	size_t used = 0;

	for (size_t i = 0; i < n; i++)
		if (!no_target(&records[i]) && records[i].priority < lowest)
			lowest = records[i].priority;
	for (size_t i = 0; i < n; i++) {
		weights[i] = -1;
		if (no_target(&records[i]) || records[i].priority != lowest)
			continue;
		weights[i] = records[i].weight;
		if (records[i].weight > max_weight)
			max_weight = records[i].weight;
		used++;
	}
	for (size_t i = 0; i < n; i++) {
		if (weights[i] < 0)
			continue;
		if (max_weight == 0)
			weights[i] = 1;
		else if (max_weight > LB_WEIGHT_MAX && weights[i] > 0) {
			unsigned scaled = ((unsigned)weights[i] * LB_WEIGHT_MAX + max_weight / 2) / max_weight;
			weights[i] = scaled > 0 ? (int)scaled : 1;
		}
	}
	return used;
}
