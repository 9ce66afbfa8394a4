/*
 * pick: which server takes the next try of a request (http) or connection
 * (tcp) of a generation's backend (SPEC 5, 6): the balancer's choice among
 * the candidates health allows, with the retry rules. Called by workers
 * at once, each with its own cursor of each backend (balance.h: the room a
 * pick writes); shares and rotations are the process's, not per worker.
 */
#ifndef LB_PICK_H
#define LB_PICK_H

#include <stddef.h>

#include "gen.h"

/* The servers one request (http) or connection (tcp) has tried: SPEC 6
 * allows 1 + retries tries, never the same server twice. retries <= 10
 * (config.c). Zero it for each new request. */
#define PICK_MAX_TRIES 11
struct server_tries {
	int tried[PICK_MAX_TRIES];
	size_t count;
};

/*
 * The server for the next try of a request or connection: a candidate of b
 * not tried yet, while b's retries allow one more try (the caller records
 * the try: pick_record). key/key_len: the hash key (NULL = none). worker:
 * the calling worker's index (0..LB_MAX_WORKERS-1), whose cursor the pick
 * uses. free_slot_only: only servers below their limit (queue.h) are
 * candidates. -1 when there is none (or no memory for the worker's first
 * cursor of b).
 *
 * Candidates are the usable servers; in panic (health_policy.h) every
 * eligible one. Unless panic is off for b (panic_threshold 0), a request
 * that has tried every usable server goes on to the others while tries
 * remain: one of them may be back before its checks say so. A server in
 * slow start (backends[].slow_start) is a candidate with the share of its
 * ramp (but for hash, which must not move keys).
 */
int pick_next_server(struct gen_backend *b, int worker, const struct server_tries *tries, const void *key,
		     size_t key_len, bool free_slot_only);

static inline void pick_record(struct server_tries *tries, int i)
{
	tries->tried[tries->count++] = i;
}

/* Slow start: the share of its full weight and limit that server i of b
 * takes at time now_ms (clock_ms), 0 < share <= 1. */
double pick_ramp_share(const struct gen_backend *b, size_t i, uint64_t now_ms);

#endif
