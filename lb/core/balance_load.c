/*
 * balance_load: choosing by load. least_conn scans every server; random
 * (power of two choices) looks at two.
 *
 * Load is the caller's count of active requests (http) or connections
 * (tcp), read through req->load(). It is compared relative to weight,
 * load_a / weight_a < load_b / weight_b, by cross-multiplication so that no
 * float rounding can make two equal ratios differ.
 */
#include "balance_internal.h"

/*
 * least_conn: the usable server with the lowest load/weight. Ties (all idle
 * servers, typically) go round-robin: the scan starts one past the previous
 * winner, whichever thread picked it, and only a strictly lower ratio
 * replaces the first candidate, so with equal loads consecutive picks
 * rotate over all servers.
 */
int balance_pick_least_conn(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	size_t n = b->nservers;
	size_t start = atomic_load_explicit(&b->least_conn_start, memory_order_relaxed);
	int best = -1;
	unsigned best_load = 0;

	(void)c;
	for (size_t step = 0; step < n; step++) {
		size_t i = (start + step) % n;
		unsigned load;

		if (b->servers[i].weight == 0 || !req->usable(req->ctx, i))
			continue;
		load = req->load(req->ctx, i);
		if (best < 0 || balance_less_loaded(load, b->servers[i].weight, best_load, b->servers[best].weight)) {
			best = (int)i;
			best_load = load;
		}
	}
	/* A plain store: picks at the same moment may start alike. */
	if (best >= 0)
		atomic_store_explicit(&b->least_conn_start, ((size_t)best + 1) % n, memory_order_relaxed);
	return best;
}

/* A uniform number in 0..n-1 from 32 random bits, by multiply-and-shift
 * (Lemire) rather than %, which keeps the high bits that matter. */
static size_t balance_random_below(uint32_t random, size_t n)
{
	return (size_t)(((uint64_t)random * (uint64_t)n) >> 32);
}

/*
 * random: power of two choices (Mitzenmacher). Two distinct usable servers
 * are drawn uniformly, the low 32 bits of req->random choosing the first
 * and the high 32 bits the second among the others; the lower load/weight
 * wins, the first drawn on a tie. With one usable server it is the answer.
 * Two choices instead of one bring the maximum load from about
 * log n / log log n above the mean down to log log n: see the test.
 */
int balance_pick_random(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	size_t *usable = c->usable;
	size_t nusable = 0;
	size_t first, second;
	unsigned first_load, second_load;

	for (size_t i = 0; i < b->nservers; i++)
		if (b->servers[i].weight > 0 && req->usable(req->ctx, i))
			usable[nusable++] = i;
	if (nusable == 0)
		return -1;
	if (nusable == 1)
		return (int)usable[0];

	first = balance_random_below((uint32_t)req->random, nusable);
	second = balance_random_below((uint32_t)(req->random >> 32), nusable - 1);
	if (second >= first)
		second++; /* skip the first: the two candidates are distinct */
	first = usable[first];
	second = usable[second];

	first_load = req->load(req->ctx, first);
	second_load = req->load(req->ctx, second);
	if (balance_less_loaded(second_load, b->servers[second].weight, first_load, b->servers[first].weight))
		return (int)second;
	return (int)first;
}
