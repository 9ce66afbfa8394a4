/*
 * balance: choosing a server. Pure code: no sockets, no libevent, no clock.
 *
 * A struct balancer is built once per backend per configuration generation
 * (and rebuilt only on reload), from the servers' identities and weights.
 * Per-request state that changes (up/down, drained, excluded because this
 * request already tried it, active load) is not copied into the balancer:
 * the caller answers it through the callbacks of struct balance_request, so
 * a health change never needs a rebuild.
 *
 * Thread safety: round-robin and least_conn picks mutate the balancer
 * (weights, cursor), and every pick writes scratch arrays; the caller
 * serialises picks on one balancer (pick.c's per-backend lock), except
 * those that balance_pick_mutates says leave it alone and that bring their
 * own scratch (random, hash with a key: lock-free). balancer_create/free
 * are not concurrent with picks.
 */
#ifndef LB_BALANCE_H
#define LB_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance_types.h"

struct balancer;

/* Returns NULL on allocation failure (errno ENOMEM), or on invalid input
 * (errno EINVAL: maglev_size not prime, a weight outside 0..256, a NULL id).
 * servers[] is copied (ids included). All tables are built here. */
struct balancer *balancer_create(const struct balance_params *params, const struct balance_server *servers,
				 size_t nservers);
void balancer_free(struct balancer *b);

/* Index into the servers[] given at creation, or -1 when no server is usable. */
int balance_pick(struct balancer *b, const struct balance_request *req);

/* Does a pick change the balancer itself (round-robin weights and the
 * least_conn cursor; hash without a key falls back to round-robin)? When
 * not, picks with their own scratch may run concurrently, unlocked. */
bool balance_pick_mutates(const struct balancer *b, bool has_key);

/* Servers of the balancer: what a struct balance_scratch must hold. */
size_t balance_size(const struct balancer *b);

/* The stable 64-bit hash used for keys and ids (exposed for tests). */
uint64_t balance_hash64(const void *data, size_t len);

#endif
