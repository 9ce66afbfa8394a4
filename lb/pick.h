/*
 * pick: which server takes the next try of a request (http) or connection
 * (tcp) of a generation's backend (SPEC 5, 6): the balancer's choice among
 * the candidates health allows, with the retry rules. Called by workers;
 * the balancer is shared: picks that change it (round-robin, least_conn)
 * are serialised by the backend's pick_lock, the others (random, hash with
 * a key) run unlocked on per-thread scratch.
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
 * not tried yet, while b's retries allow one more try (the try is recorded).
 * key/key_len: the hash key (NULL = none). -1 when there is none.
 *
 * Candidates are the usable servers; in panic (health_policy.h) every
 * eligible one. Unless panic is off for b (panic_threshold 0), a request
 * that has tried every usable server goes on to the others while tries
 * remain: one of them may be back before its checks say so.
 */
int pick_next_server(struct gen_backend *b, struct server_tries *tries, const void *key, size_t key_len);

/* A worker thread ends: free its scratch. */
void pick_thread_exit(void);

#endif
