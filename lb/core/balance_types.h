/*
 * balance_types: the data a balancer is built from and asked with (see
 * balance.h for the functions). Types only, so that the algorithm files
 * (balance_internal.h) share them without depending on the dispatcher.
 */
#ifndef LB_BALANCE_TYPES_H
#define LB_BALANCE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* One server as the balancer sees it. `id` is the identity that hashing
 * uses ("127.0.0.1:9001"): the mapping of keys depends only on ids and
 * weights, never on the order of this array nor on the process. */
struct balance_server {
	const char *id;
	int weight; /* 0..256; 0 is never picked */
};

struct balance_params {
	enum balance_kind kind;
	enum hash_method method; /* for BALANCE_HASH */
	double bounded_load; /* for BALANCE_HASH: 0 = off; cap formula in balance_hash.c */
	size_t maglev_size; /* 0 = default 65537; must be prime */
};

struct balance_request {
	/* May server i take this request? (up, not drained, not already tried) */
	bool (*usable)(void *ctx, size_t i);
	/* Its active requests/connections now (least_conn, random, bounded_load). */
	unsigned (*load)(void *ctx, size_t i);
	void *ctx;
	/* Hash key for BALANCE_HASH; has_key false = fall back to round-robin. */
	const void *key;
	size_t key_len;
	bool has_key;
	/* Two random numbers for BALANCE_RANDOM, supplied by the caller so that
	 * the module stays deterministic under test. */
	uint64_t random;
};

#endif
