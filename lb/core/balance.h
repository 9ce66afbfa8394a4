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
 * Thread safety: any number of threads pick from one balancer at once,
 * each with its own struct balance_cursor (the room a pick writes into).
 * What picks share stays shared, so round-robin shares are exact for all
 * picks together (as under HAProxy's lock, unlike nginx's per-process
 * state): the usual round-robin pick and least_conn's rotation are atomic,
 * and only round-robin over a reduced set (a server down, a retry) takes a
 * lock (balance_rr.c). balancer_free only after the last pick.
 */
#ifndef LB_BALANCE_H
#define LB_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance_types.h"

struct balancer;
struct balance_cursor;

/* Returns NULL on allocation failure (errno ENOMEM), or on invalid input
 * (errno EINVAL: maglev_size not prime, a weight outside 0..256, a NULL id).
 * servers[] is copied (ids included). All tables are built here. */
struct balancer *balancer_create(const struct balance_params *params, const struct balance_server *servers,
				 size_t nservers);
void balancer_free(struct balancer *b);

/* A picker's room for picks from b (and only b); NULL on allocation failure. */
struct balance_cursor *balance_cursor_create(const struct balancer *b);
void balance_cursor_free(struct balance_cursor *c);

/* Index into the servers[] given at creation, or -1 when no server is
 * usable. c: a cursor of b that no other thread uses meanwhile. */
int balance_pick(struct balancer *b, struct balance_cursor *c, const struct balance_request *req);

/* The stable 64-bit hash used for keys and ids (exposed for tests). */
uint64_t balance_hash64(const void *data, size_t len);

#endif
