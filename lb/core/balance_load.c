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

/* The usable server (usable[0..n), but skip if not SIZE_MAX) that the
 * point `at` in 0..(their weights' sum - 1) falls on. */
static size_t weighted_at(const struct balancer *b, const size_t *usable, size_t n, size_t skip, uint64_t at)
{
	size_t last = 0;
	for (size_t k = 0; k < n; k++) {
		if (usable[k] == skip)
			continue;
		last = usable[k];
		uint64_t w = (uint64_t)b->servers[last].weight;
		if (at < w)
			return last;
		at -= w;
	}
	return last;
}

/*
 * random: power of two choices (Mitzenmacher). Two distinct usable servers
 * are drawn by weight (as HAProxy's and nginx's random do: idle servers
 * take shares in proportion to their weights), the low 32 bits of
 * req->random choosing the first and the high 32 bits the second among
 * the others; the lower load/weight wins, the first drawn on a tie. With
 * one usable server it is the answer. Two choices instead of one bring
 * the maximum load from about log n / log log n above the mean down to
 * log log n: see the test.
 */
int balance_pick_random(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	size_t *usable = c->usable;
	size_t nusable = 0;
	uint64_t total = 0;
	size_t first, second;
	unsigned first_load, second_load;

	for (size_t i = 0; i < b->nservers; i++)
		if (b->servers[i].weight > 0 && req->usable(req->ctx, i)) {
			usable[nusable++] = i;
			total += (uint64_t)b->servers[i].weight;
		}
	if (nusable == 0)
		return -1;
	if (nusable == 1)
		return (int)usable[0];

	first = weighted_at(b, usable, nusable, SIZE_MAX, balance_random_below((uint32_t)req->random, total));
	uint64_t others = total - (uint64_t)b->servers[first].weight;
	second = weighted_at(b, usable, nusable, first, balance_random_below((uint32_t)(req->random >> 32), others));

	first_load = req->load(req->ctx, first);
	second_load = req->load(req->ctx, second);
	if (balance_less_loaded(second_load, b->servers[second].weight, first_load, b->servers[first].weight))
		return (int)second;
	return (int)first;
}
