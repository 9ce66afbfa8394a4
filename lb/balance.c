/*
 * balance: building a balancer, dispatching a pick to its algorithm family,
 * and the stable hash every family shares.
 *
 *   balance_rr.c    smooth weighted round-robin (also hash without key)
 *   balance_lc.c    least_conn and random (power of two choices)
 *   balance_hash.c  Maglev and the consistent-hash ring, bounded loads
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "balance_internal.h"

/*
 * XXH64 (Yann Collet's xxHash, 64-bit variant), written out here so that
 * the result is the same on every machine, compiler and process: input bytes
 * are assembled little-endian explicitly and no seed comes from the process.
 * It is fast on long keys (8 bytes per round) and its avalanche is good
 * enough that `hash % M` spreads keys evenly over a Maglev table.
 */
#define XXH_PRIME64_1 0x9E3779B185EBCA87ULL
#define XXH_PRIME64_2 0xC2B2AE3D27D4EB4FULL
#define XXH_PRIME64_3 0x165667B19E3779F9ULL
#define XXH_PRIME64_4 0x85EBCA77C2B2AE63ULL
#define XXH_PRIME64_5 0x27D4EB2F165667C5ULL

static uint64_t xxh_rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_read64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t xxh_read32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
	acc += input * XXH_PRIME64_2;
	acc = xxh_rotl64(acc, 31);
	return acc * XXH_PRIME64_1;
}

static uint64_t xxh_merge_round(uint64_t acc, uint64_t val)
{
	acc ^= xxh_round(0, val);
	return acc * XXH_PRIME64_1 + XXH_PRIME64_4;
}

uint64_t balance_hash64_seeded(const void *data, size_t len, uint64_t seed)
{
	/* data may be NULL when len is 0; pointer arithmetic on NULL is not. */
	const unsigned char *p = len ? data : (const unsigned char *)"";
	const unsigned char *end = p + len;
	uint64_t h;

	if (len >= 32) {
		const unsigned char *limit = end - 32;
		uint64_t v1 = seed + XXH_PRIME64_1 + XXH_PRIME64_2;
		uint64_t v2 = seed + XXH_PRIME64_2;
		uint64_t v3 = seed;
		uint64_t v4 = seed - XXH_PRIME64_1;
		do {
			v1 = xxh_round(v1, xxh_read64(p));
			v2 = xxh_round(v2, xxh_read64(p + 8));
			v3 = xxh_round(v3, xxh_read64(p + 16));
			v4 = xxh_round(v4, xxh_read64(p + 24));
			p += 32;
		} while (p <= limit);
		h = xxh_rotl64(v1, 1) + xxh_rotl64(v2, 7) + xxh_rotl64(v3, 12) + xxh_rotl64(v4, 18);
		h = xxh_merge_round(h, v1);
		h = xxh_merge_round(h, v2);
		h = xxh_merge_round(h, v3);
		h = xxh_merge_round(h, v4);
	} else {
		h = seed + XXH_PRIME64_5;
	}
	h += (uint64_t)len;

	while (end - p >= 8) {
		h ^= xxh_round(0, xxh_read64(p));
		h = xxh_rotl64(h, 27) * XXH_PRIME64_1 + XXH_PRIME64_4;
		p += 8;
	}
	if (end - p >= 4) {
		h ^= (uint64_t)xxh_read32(p) * XXH_PRIME64_1;
		h = xxh_rotl64(h, 23) * XXH_PRIME64_2 + XXH_PRIME64_3;
		p += 4;
	}
	while (p < end) {
		h ^= (uint64_t)*p * XXH_PRIME64_5;
		h = xxh_rotl64(h, 11) * XXH_PRIME64_1;
		p++;
	}

	/* Final avalanche: every input bit affects every output bit. */
	h ^= h >> 33;
	h *= XXH_PRIME64_2;
	h ^= h >> 29;
	h *= XXH_PRIME64_3;
	h ^= h >> 32;
	return h;
}

uint64_t balance_hash64(const void *data, size_t len)
{
	return balance_hash64_seeded(data, len, 0);
}

bool balance_less_loaded(unsigned load_a, int weight_a, unsigned load_b, int weight_b)
{
	/* load <= 2^32-1 and weight <= 256: the products fit in 64 bits. */
	return (uint64_t)load_a * (uint64_t)weight_b < (uint64_t)load_b * (uint64_t)weight_a;
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
	b->usable_scratch = calloc(n_alloc, sizeof(*b->usable_scratch));
	b->rank_to_index = calloc(n_alloc, sizeof(*b->rank_to_index));
	b->verdict = calloc(n_alloc, sizeof(*b->verdict));
	b->load_scratch = calloc(n_alloc, sizeof(*b->load_scratch));
	if (!b->servers || !b->usable_scratch || !b->rank_to_index || !b->verdict || !b->load_scratch)
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
	free(b->usable_scratch);
	free(b->rank_to_index);
	free(b->maglev_table);
	free(b->ring_points);
	free(b->verdict);
	free(b->load_scratch);
	free(b);
}

int balance_pick(struct balancer *b, const struct balance_request *req)
{
	if (b->nservers == 0)
		return -1;
	switch (b->params.kind) {
	case BALANCE_ROUND_ROBIN:
		return balance_pick_round_robin(b, req);
	case BALANCE_LEAST_CONN:
		return balance_pick_least_conn(b, req);
	case BALANCE_RANDOM:
		return balance_pick_random(b, req);
	case BALANCE_HASH:
		if (!req->has_key)
			return balance_pick_round_robin(b, req);
		return balance_pick_hash(b, req);
	}
	return -1;
}
