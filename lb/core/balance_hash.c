/*
 * balance_hash: a key chooses the server, through a Maglev table (default)
 * or a consistent-hash ring.
 *
 * Both tables are built once, in balancer_create, from the servers sorted
 * by id (ranks, see balance_internal.h) and from their weights only, so
 * every lb instance with the same servers maps a key to the same server,
 * whatever their order in the configuration. Health never rebuilds a
 * table: a lookup walks from the key's own position to the following ones
 * until it meets a usable server, so a down server's keys go to the next
 * candidate and come back when it does, and nobody else's keys move.
 *
 * Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads", 2017), when params.bounded_load = c > 0: with T the total
 * load of the usable servers, W their total weight, and the request being
 * placed counted in, a usable server i of weight w_i and load L_i is
 * acceptable when
 *
 *     L_i + 1 <= ceil(c * (T + 1) * w_i / W)
 *
 * i.e. at most c times its weighted share of the mean; with equal weights
 * this is the paper's L_i + 1 <= ceil(c * (T + 1) / n). The walk goes on
 * past servers over their cap. With c >= 1 some usable server is always
 * acceptable (if every L_i >= c (T + 1) w_i / W, summing gives T >= c (T + 1),
 * impossible); otherwise the first usable server of the walk is taken.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance_internal.h"

#define MAGLEV_EMPTY UINT32_MAX
#define RING_POINTS_PER_WEIGHT 160

/* Distinct seeds so that a server's Maglev offset and skip are two
 * independent hashes of its id. */
#define MAGLEV_OFFSET_SEED 0x6d61676c65766f66ULL /* "maglevof" */
#define MAGLEV_SKIP_SEED 0x6d61676c6576736bULL /* "maglevsk" */

/*
 * Maglev (Eisenbud et al., NSDI 2016), with weights. Server r's preference
 * list is the permutation offset, offset + skip, offset + 2 skip, ... mod M
 * (M prime and 1 <= skip < M, so it visits every slot). Servers take turns
 * in rank order, each taking its next preferred slot not yet filled, until
 * the table is full; a server of weight w takes w turns per round, so its
 * share of the table is w / sum(weights) within one round's rounding.
 * Weight-0 servers are left out.
 */
int maglev_build(struct balancer *b)
{
	size_t m = b->maglev_size;
	size_t n = b->nservers;
	uint64_t *position = NULL, *skip = NULL;
	size_t filled = 0;
	int rc = -1;

	for (size_t r = 0; r < n; r++)
		if (b->servers[b->rank_to_index[r]].weight > 0)
			b->nweighted++;
	if (b->nweighted == 0)
		return 0; /* no table: every pick answers -1 */

	b->maglev_table = malloc(m * sizeof(*b->maglev_table));
	position = calloc(n, sizeof(*position));
	skip = calloc(n, sizeof(*skip));
	if (!b->maglev_table || !position || !skip)
		goto out;

	for (size_t r = 0; r < n; r++) {
		const char *id = b->servers[b->rank_to_index[r]].id;
		size_t len = strlen(id);
		position[r] = balance_hash64_seeded(id, len, MAGLEV_OFFSET_SEED) % m;
		skip[r] = balance_hash64_seeded(id, len, MAGLEV_SKIP_SEED) % (m - 1) + 1;
	}
	for (size_t slot = 0; slot < m; slot++)
		b->maglev_table[slot] = MAGLEV_EMPTY;

	while (filled < m) {
		for (size_t r = 0; r < n && filled < m; r++) {
			int weight = b->servers[b->rank_to_index[r]].weight;
			for (int turn = 0; turn < weight && filled < m; turn++) {
				/* The table is not full, so a free slot lies ahead
				 * on r's permutation, which covers every slot. */
				while (b->maglev_table[position[r]] != MAGLEV_EMPTY)
					position[r] = (position[r] + skip[r]) % m;
				b->maglev_table[position[r]] = (uint32_t)r;
				position[r] = (position[r] + skip[r]) % m;
				filled++;
			}
		}
	}
	rc = 0;
out:
	free(position);
	free(skip);
	return rc;
}

static int ring_point_compare(const void *a, const void *b)
{
	const struct ring_point *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	/* A 64-bit collision: rank, not the caller's order, decides. */
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/*
 * Ring (Karger et al.): RING_POINTS_PER_WEIGHT points per unit of weight,
 * point k of a server at hash(id "#" k), sorted. A key belongs to the first
 * point at or after its hash, wrapping around.
 */
int ring_build(struct balancer *b)
{
	size_t total = 0, next = 0;
	char *name = NULL;

	for (size_t r = 0; r < b->nservers; r++) {
		int weight = b->servers[b->rank_to_index[r]].weight;
		if (weight > 0)
			b->nweighted++;
		total += (size_t)weight * RING_POINTS_PER_WEIGHT;
	}
	if (total == 0)
		return 0;

	b->ring_points = malloc(total * sizeof(*b->ring_points));
	if (!b->ring_points)
		return -1;
	for (size_t r = 0; r < b->nservers; r++) {
		const struct balance_server *server = &b->servers[b->rank_to_index[r]];
		size_t id_len = strlen(server->id);
		size_t points = (size_t)server->weight * RING_POINTS_PER_WEIGHT;
		/* id, '#', up to 5 digits (256 * 160 points), NUL; room to spare */
		char *grown = realloc(name, id_len + 24);
		if (!grown) {
			free(name);
			return -1;
		}
		name = grown;
		for (size_t k = 0; k < points; k++) {
			int len = snprintf(name, id_len + 24, "%s#%zu", server->id, k);
			b->ring_points[next].hash = balance_hash64_seeded(name, (size_t)len, 0);
			b->ring_points[next].rank = (uint32_t)r;
			next++;
		}
	}
	free(name);
	qsort(b->ring_points, total, sizeof(*b->ring_points), ring_point_compare);
	b->ring_npoints = total;
	return 0;
}

/* The state of one lookup's walk. */
struct hash_walk {
	const struct balancer *b;
	const struct balance_request *req;
	uint8_t *verdict; /* [nservers]: the cursor's */
	unsigned *load; /* [nservers]: the cursor's */
	size_t rejected; /* distinct servers met that cannot take the key */
	int first_usable; /* first usable server met, the fallback */
};

/* Marks a server already counted in walk->rejected, inside verdict[]. */
#define HASH_WALK_MET 0x80

/* Reads usable() and load() of every server once, for the bounded-load cap. */
static bool hash_walk_prepare_bounded(struct hash_walk *walk)
{
	const struct balancer *b = walk->b;
	uint64_t total_load = 0, total_weight = 0;

	for (size_t i = 0; i < b->nservers; i++) {
		int weight = b->servers[i].weight;
		if (weight == 0 || !walk->req->usable(walk->req->ctx, i)) {
			walk->verdict[i] = BALANCE_VERDICT_UNUSABLE;
			continue;
		}
		walk->load[i] = walk->req->load(walk->req->ctx, i);
		total_load += walk->load[i];
		total_weight += (uint64_t)weight;
	}
	if (total_weight == 0)
		return false;
	for (size_t i = 0; i < b->nservers; i++) {
		double cap;
		if (walk->verdict[i] == BALANCE_VERDICT_UNUSABLE)
			continue;
		/* c * ((T + 1) * w_i) / W in this order: with a factor such as
		 * 1.25 the product is exact and the division correctly rounded,
		 * so a cap that is an integer in theory is one here too. */
		cap = ceil(b->params.bounded_load * (double)((total_load + 1) * (uint64_t)b->servers[i].weight) /
			   (double)total_weight);
		walk->verdict[i] = (double)walk->load[i] + 1.0 <= cap ? BALANCE_VERDICT_ACCEPTABLE
								       : BALANCE_VERDICT_OVER_CAP;
	}
	return true;
}

enum hash_walk_step { HASH_WALK_CONTINUE, HASH_WALK_FOUND, HASH_WALK_EXHAUSTED };

/* Considers server i met on the walk: FOUND when it is acceptable,
 * EXHAUSTED when every server in the table has now been rejected. */
static enum hash_walk_step hash_walk_meet(struct hash_walk *walk, size_t i)
{
	uint8_t verdict = walk->verdict[i];

	if (verdict == BALANCE_VERDICT_UNKNOWN) {
		/* Without bounded loads, usable() is asked lazily, once. */
		verdict = walk->req->usable(walk->req->ctx, i) ? BALANCE_VERDICT_ACCEPTABLE
							       : BALANCE_VERDICT_UNUSABLE;
		walk->verdict[i] = verdict;
	}
	if (verdict == BALANCE_VERDICT_ACCEPTABLE)
		return HASH_WALK_FOUND;
	if (!(verdict & HASH_WALK_MET)) {
		walk->verdict[i] |= HASH_WALK_MET;
		walk->rejected++;
		if (verdict == BALANCE_VERDICT_OVER_CAP && walk->first_usable < 0)
			walk->first_usable = (int)i;
	}
	return walk->rejected == walk->b->nweighted ? HASH_WALK_EXHAUSTED : HASH_WALK_CONTINUE;
}

/* From the key's slot to the following ones, at most once around. */
static int maglev_walk(struct hash_walk *walk, uint64_t key_hash)
{
	const struct balancer *b = walk->b;
	size_t m = b->maglev_size;
	size_t slot = key_hash % m;

	for (size_t step = 0; step < m; step++) {
		size_t i = b->rank_to_index[b->maglev_table[slot]];
		enum hash_walk_step next = hash_walk_meet(walk, i);
		if (next == HASH_WALK_FOUND)
			return (int)i;
		if (next == HASH_WALK_EXHAUSTED)
			break;
		if (++slot == m)
			slot = 0;
	}
	return walk->first_usable;
}

/* The first ring point whose hash is >= key_hash, or 0 past the last. */
static size_t ring_lower_bound(const struct balancer *b, uint64_t key_hash)
{
	size_t low = 0, high = b->ring_npoints;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		if (b->ring_points[mid].hash < key_hash)
			low = mid + 1;
		else
			high = mid;
	}
	return low == b->ring_npoints ? 0 : low;
}

/* From the key's point clockwise, at most once around. */
static int ring_walk(struct hash_walk *walk, uint64_t key_hash)
{
	const struct balancer *b = walk->b;
	size_t point = ring_lower_bound(b, key_hash);

	for (size_t step = 0; step < b->ring_npoints; step++) {
		size_t i = b->rank_to_index[b->ring_points[point].rank];
		enum hash_walk_step next = hash_walk_meet(walk, i);
		if (next == HASH_WALK_FOUND)
			return (int)i;
		if (next == HASH_WALK_EXHAUSTED)
			break;
		if (++point == b->ring_npoints)
			point = 0;
	}
	return walk->first_usable;
}

int balance_pick_hash(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	struct hash_walk walk = { .b = b, .req = req, .verdict = c->verdict, .load = c->load, .first_usable = -1 };
	uint64_t key_hash;

	if (b->nweighted == 0)
		return -1;
	memset(walk.verdict, BALANCE_VERDICT_UNKNOWN, b->nservers * sizeof(*walk.verdict));
	if (b->params.bounded_load > 0 && !hash_walk_prepare_bounded(&walk))
		return -1; /* nobody usable */

	key_hash = balance_hash64_seeded(req->key, req->key_len, 0);
	if (b->params.method == HASH_METHOD_RING)
		return ring_walk(&walk, key_hash);
	return maglev_walk(&walk, key_hash);
}
