/*
 * balance_internal: what the balance_*.c files share and nobody else sees.
 *
 * struct balancer is one allocation family owned by balancer_create and
 * released by balancer_free. Picks share it across threads: its tables are
 * read-only, what a pick changes is atomic (the round-robin ticket, the
 * least_conn scan start) or, on round-robin's rare path, under rr.lock;
 * what a pick writes for itself is the picker's struct balance_cursor.
 * Every array is sized at creation, so balance_pick never allocates.
 *
 * Two index spaces appear here and must not be mixed up:
 *   - the caller's index i: position in the servers[] given to
 *     balancer_create; it is what balance_pick returns and what the
 *     usable()/load() callbacks take;
 *   - the rank r: position of the server once all servers are sorted by
 *     (id, weight). Hash tables are built in rank order and store ranks, so
 *     that the key-to-server mapping never depends on the caller's order.
 *     rank_to_index[r] translates back.
 */
#ifndef LB_BALANCE_INTERNAL_H
#define LB_BALANCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance_types.h"

/* XXH64 from Debian's libxxhash, inlined (no library to link): the same
 * value on every machine, compiler and process (the unit test pins it). */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* How many distinct usable sets the smooth round-robin remembers a state
 * for (see balance_rr.c): the regular set plus a few one-off sets that a
 * retry ("every server except the one that just failed") produces. */
#define BALANCE_RR_SLOTS 4

/* One smooth round-robin state: the "current weight" of every server for
 * one particular set of participating servers. */
struct balance_rr_slot {
	int64_t *current; /* [nservers], by caller index */
	bool *member; /* [nservers]: took part in the picks of this slot */
	uint64_t last_used; /* picks counter value at last use, for LRU */
	bool in_use;
};

/* What one pick has learnt about a server so far; reset at each pick so
 * that usable() and load() are asked at most once per server per pick. */
enum balance_verdict {
	BALANCE_VERDICT_UNKNOWN = 0,
	BALANCE_VERDICT_UNUSABLE, /* usable() said no, or weight 0 */
	BALANCE_VERDICT_ACCEPTABLE, /* usable and, with bounded_load, under its cap */
	BALANCE_VERDICT_OVER_CAP, /* usable but over its bounded_load cap */
};

/* A point of the consistent-hash ring. */
struct ring_point {
	uint64_t hash;
	uint32_t rank;
};

/* Smooth round-robin, shared by every picker (balance_rr.c). */
struct balance_rr {
	/* Every server of weight > 0 takes part (the usual case): the
	 * period of picks precomputed, walked by an atomic ticket. */
	uint32_t *sequence; /* [period] caller indices; NULL: too long, use slots */
	size_t period; /* sum of the weights */
	atomic_uint_fast64_t ticket;
	/* Any other set of participants: a state per set, under the lock. */
	pthread_mutex_t lock;
	struct balance_rr_slot slots[BALANCE_RR_SLOTS];
	uint64_t picks; /* counts slot picks, drives the slots' LRU */
};

struct balancer {
	struct balance_params params;
	struct balance_server *servers; /* copy; ids owned (strdup) */
	size_t nservers;

	struct balance_rr rr; /* also the fallback of hash without key */
	atomic_size_t least_conn_start; /* where the next scan starts, so ties rotate */

	/* Hashing (BALANCE_HASH). */
	size_t *rank_to_index; /* [nservers] */
	size_t nweighted; /* servers of weight > 0: the ones in the tables */
	uint32_t *maglev_table; /* [maglev_size] ranks; NULL when no server has weight */
	size_t maglev_size;
	struct ring_point *ring_points; /* sorted by (hash, rank) */
	size_t ring_npoints;
};

/* One picker's room (balance.h), every array [nservers]. */
struct balance_cursor {
	size_t nservers;
	bool *member; /* round-robin: who takes part in this pick */
	size_t *usable; /* random: the usable servers of this pick */
	uint8_t *verdict; /* hash: enum balance_verdict, per pick */
	unsigned *load; /* hash: loads read for bounded_load */
};

/* The stable hash of keys and ids: XXH64 with a seed (data may be NULL
 * when len is 0). balance_hash64 (balance.h) is seed 0. */
static inline uint64_t balance_hash64_seeded(const void *data, size_t len, uint64_t seed)
{
	return (uint64_t)XXH64(len ? data : "", len, seed);
}

/* True when a is less loaded than b relative to weight: load_a/weight_a <
 * load_b/weight_b, compared by cross-multiplication (exact, no floats; load
 * <= 2^32-1 and weight <= 256, so the products fit in 64 bits). Both
 * weights must be > 0. */
static inline bool balance_less_loaded(unsigned load_a, int weight_a, unsigned load_b, int weight_b)
{
	return (uint64_t)load_a * (uint64_t)weight_b < (uint64_t)load_b * (uint64_t)weight_a;
}

/* balance_rr.c */
int balance_rr_init(struct balancer *b);
void balance_rr_free(struct balancer *b);
int balance_pick_round_robin(struct balancer *b, struct balance_cursor *c, const struct balance_request *req);

/* balance_load.c */
int balance_pick_least_conn(struct balancer *b, struct balance_cursor *c, const struct balance_request *req);
int balance_pick_random(struct balancer *b, struct balance_cursor *c, const struct balance_request *req);

/* balance_hash.c: tables built once, from servers sorted by id. */
int maglev_build(struct balancer *b);
int ring_build(struct balancer *b);
int balance_pick_hash(struct balancer *b, struct balance_cursor *c, const struct balance_request *req);

#endif
