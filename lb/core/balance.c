/*
 * balance: building a balancer and dispatching a pick to its algorithm
 * family (the stable hash they share is XXH64, balance_internal.h).
 *
 *   balance_rr.c    smooth weighted round-robin (also hash without key)
 *   balance_load.c  least_conn and random (power of two choices)
 *   balance_hash.c  Maglev and the consistent-hash ring, bounded loads
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "balance_internal.h"

uint64_t balance_hash64(const void *data, size_t len)
{
	return balance_hash64_seeded(data, len, 0);
}

static bool balance_is_prime(size_t n)
{
	if (n < 2)
		return false;
	for (size_t d = 2; d <= n / d; d++)
		if (n % d == 0)
			return false;
	return true;
}

/* qsort has no context argument in C11, so the comparison reads the
 * servers through this array of pointers. */
struct balance_rank_entry {
	const struct balance_server *server;
	size_t index;
};

static int balance_rank_compare(const void *a, const void *b)
{
	const struct balance_rank_entry *x = a, *y = b;
	int c = strcmp(x->server->id, y->server->id);
	if (c != 0)
		return c;
	/* Same id twice (the configuration should refuse it): weight, then the
	 * caller's order, is the only tie-break left. */
	if (x->server->weight != y->server->weight)
		return x->server->weight < y->server->weight ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* rank_to_index: the servers sorted by id, so that hash tables are built
 * the same way whatever order the caller listed the servers in. */
static int balance_rank_servers(struct balancer *b)
{
	struct balance_rank_entry *entries = calloc(b->nservers ? b->nservers : 1, sizeof(*entries));
	if (!entries)
		return -1;
	for (size_t i = 0; i < b->nservers; i++) {
		entries[i].server = &b->servers[i];
		entries[i].index = i;
	}
	qsort(entries, b->nservers, sizeof(*entries), balance_rank_compare);
	for (size_t r = 0; r < b->nservers; r++)
		b->rank_to_index[r] = entries[r].index;
	free(entries);
	return 0;
}

struct balancer *balancer_create(const struct balance_params *params, const struct balance_server *servers,
				 size_t nservers)
{
	size_t n_alloc = nservers ? nservers : 1; /* calloc(0) may return NULL */
	struct balancer *b;

	if (params->maglev_size != 0 && !balance_is_prime(params->maglev_size)) {
		errno = EINVAL;
		return NULL;
	}
	/* The tables store ranks in 32 bits. */
	if (nservers > UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < nservers; i++) {
		if (servers[i].weight < 0 || servers[i].weight > 256 || !servers[i].id) {
			errno = EINVAL;
			return NULL;
		}
	}

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->params = *params;
	b->nservers = nservers;
	b->maglev_size = params->maglev_size ? params->maglev_size : 65537;

	b->servers = calloc(n_alloc, sizeof(*b->servers));
	b->rank_to_index = calloc(n_alloc, sizeof(*b->rank_to_index));
	if (!b->servers || !b->rank_to_index)
		goto fail;
	for (size_t i = 0; i < nservers; i++) {
		b->servers[i].weight = servers[i].weight;
		size_t id_size = strlen(servers[i].id) + 1;
		char *id = malloc(id_size);
		if (!id)
			goto fail;
		memcpy(id, servers[i].id, id_size);
		b->servers[i].id = id;
	}
	if (balance_rank_servers(b) != 0)
		goto fail;
	if (balance_rr_init(b) != 0)
		goto fail;

	if (params->kind == BALANCE_HASH) {
		int built = params->method == HASH_METHOD_RING ? ring_build(b) : maglev_build(b);
		if (built != 0)
			goto fail;
	}
	return b;

fail:
	balancer_free(b);
	errno = ENOMEM;
	return NULL;
}

void balancer_free(struct balancer *b)
{
	if (!b)
		return;
	if (b->servers) {
		for (size_t i = 0; i < b->nservers; i++)
			free((char *)b->servers[i].id);
		free(b->servers);
	}
	balance_rr_free(b);
	free(b->rank_to_index);
	free(b->maglev_table);
	free(b->ring_points);
	free(b);
}

struct balance_cursor *balance_cursor_create(const struct balancer *b)
{
	size_t n_alloc = b->nservers ? b->nservers : 1;
	struct balance_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nservers = b->nservers;
	c->member = calloc(n_alloc, sizeof(*c->member));
	c->usable = calloc(n_alloc, sizeof(*c->usable));
	c->verdict = calloc(n_alloc, sizeof(*c->verdict));
	c->load = calloc(n_alloc, sizeof(*c->load));
	if (!c->member || !c->usable || !c->verdict || !c->load) {
		balance_cursor_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

void balance_cursor_free(struct balance_cursor *c)
{
	if (!c)
		return;
	free(c->member);
	free(c->usable);
	free(c->verdict);
	free(c->load);
	free(c);
}

int balance_pick(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	if (b->nservers == 0 || c->nservers != b->nservers)
		return -1;
	switch (b->params.kind) {
	case BALANCE_ROUND_ROBIN:
		return balance_pick_round_robin(b, c, req);
	case BALANCE_LEAST_CONN:
		return balance_pick_least_conn(b, c, req);
	case BALANCE_RANDOM:
		return balance_pick_random(b, c, req);
	case BALANCE_HASH:
		if (!req->has_key)
			return balance_pick_round_robin(b, c, req);
		return balance_pick_hash(b, c, req);
	}
	return -1;
}
