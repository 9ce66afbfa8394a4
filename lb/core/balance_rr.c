/*
 * balance_rr: smooth weighted round-robin, nginx's algorithm.
 *
 * Every server has a "current weight". At each pick every participating
 * server adds its weight to its current weight, the largest current weight
 * wins (first in the servers[] order on a tie), and the winner gives back
 * the total weight of the participants. Weights 5:1:1 give a a b a c a a:
 * the heavy server is spread out instead of served in bursts, and over every
 * window of sum(weights) consecutive picks each server is chosen exactly
 * weight times, as long as the set of participants does not change. The
 * current weights then return to all zero after every sum(weights) picks.
 *
 * Participants are the servers of weight > 0 that usable() accepts. That
 * set changes in two ways: a server goes down or is drained (lasting), or a
 * retry excludes the server that just failed (one request). nginx keeps one
 * state and simply skips absent servers, which breaks exact shares for
 * a while after each change. Instead we keep one state per participant set
 * in a few slots (least recently used is recycled, a new set starts from
 * all zero): a new set is exact from its first pick, a retry's one-off set
 * does not disturb the regular set's sequence, and when a server comes
 * back, the regular set resumes where it left off.
 *
 * The state is shared by every thread that picks (lb's workers), so that
 * shares are exact for the whole process, as under HAProxy's lock and
 * unlike nginx's per-process state. The usual set, every server of weight
 * > 0, costs no lock: its period of sum(weights) picks is computed once
 * and an atomic ticket walks it. Other sets (a server down, a retry) take
 * the slots under a mutex; such picks are the rare ones.
 */
#include <stdlib.h>
#include <string.h>

#include "balance_internal.h"

/* The precomputed period is skipped (slots only) beyond this much work:
 * n x sum(weights) steps at creation, 64 Mi = 256 servers of weight 256. */
#define BALANCE_RR_PRECOMPUTE_MAX (64u << 20)

/* One smooth round-robin step over the participants: the winner. */
static int balance_rr_step(const struct balancer *b, int64_t *current, const bool *member)
{
	int64_t total = 0;
	int best = -1;
	for (size_t i = 0; i < b->nservers; i++) {
		if (!member[i])
			continue;
		current[i] += b->servers[i].weight;
		total += b->servers[i].weight;
		if (best < 0 || current[i] > current[best])
			best = (int)i;
	}
	current[best] -= total;
	return best;
}

/* The period of the usual set (every server of weight > 0), from all zero. */
static int balance_rr_precompute(struct balancer *b)
{
	size_t period = 0;
	for (size_t i = 0; i < b->nservers; i++)
		period += (size_t)b->servers[i].weight;
	b->rr.period = period;
	if (period == 0 || b->nservers > BALANCE_RR_PRECOMPUTE_MAX / period)
		return 0;
	int64_t *current = calloc(b->nservers, sizeof(*current));
	bool *member = calloc(b->nservers, sizeof(*member));
	b->rr.sequence = calloc(period, sizeof(*b->rr.sequence));
	if (!current || !member || !b->rr.sequence) {
		free(current);
		free(member);
		return -1;
	}
	for (size_t i = 0; i < b->nservers; i++)
		member[i] = b->servers[i].weight > 0;
	for (size_t p = 0; p < period; p++)
		b->rr.sequence[p] = (uint32_t)balance_rr_step(b, current, member);
	free(current);
	free(member);
	return 0;
}

int balance_rr_init(struct balancer *b)
{
	size_t n_alloc = b->nservers ? b->nservers : 1;

	atomic_init(&b->rr.ticket, 0);
	if (pthread_mutex_init(&b->rr.lock, NULL) != 0)
		return -1;
	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		struct balance_rr_slot *slot = &b->rr.slots[s];
		slot->current = calloc(n_alloc, sizeof(*slot->current));
		slot->member = calloc(n_alloc, sizeof(*slot->member));
		if (!slot->current || !slot->member)
			return -1; /* balance_rr_free releases what was allocated */
	}
	return balance_rr_precompute(b);
}

void balance_rr_free(struct balancer *b)
{
	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		free(b->rr.slots[s].current);
		free(b->rr.slots[s].member);
	}
	free(b->rr.sequence);
	pthread_mutex_destroy(&b->rr.lock);
}

/* The slot whose participant set is exactly `member`, or a recycled one
 * (unused first, else least recently used) reset to all zero. */
static struct balance_rr_slot *balance_rr_slot_for(struct balancer *b, const bool *member)
{
	struct balance_rr_slot *victim = NULL;

	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		struct balance_rr_slot *slot = &b->rr.slots[s];
		if (slot->in_use && memcmp(slot->member, member, b->nservers * sizeof(*member)) == 0)
			return slot;
		if (!victim || (victim->in_use && (!slot->in_use || slot->last_used < victim->last_used)))
			victim = slot;
	}
	memcpy(victim->member, member, b->nservers * sizeof(*member));
	memset(victim->current, 0, b->nservers * sizeof(*victim->current));
	victim->in_use = true;
	return victim;
}

int balance_pick_round_robin(struct balancer *b, struct balance_cursor *c, const struct balance_request *req)
{
	struct balance_rr *rr = &b->rr; /* the ticket, and the slots under the lock */
	bool *member = c->member;
	size_t participants = 0, weighted = 0;

	for (size_t i = 0; i < b->nservers; i++) {
		weighted += b->servers[i].weight > 0;
		member[i] = b->servers[i].weight > 0 && req->usable(req->ctx, i);
		participants += member[i];
	}
	if (participants == 0)
		return -1;
	if (participants == weighted && rr->sequence != NULL) {
		uint64_t ticket = atomic_fetch_add_explicit(&rr->ticket, 1, memory_order_relaxed);
		return (int)rr->sequence[ticket % rr->period];
	}
	pthread_mutex_lock(&rr->lock);
	struct balance_rr_slot *slot = balance_rr_slot_for(b, member);
	slot->last_used = ++rr->picks;
	int best = balance_rr_step(b, slot->current, member);
	pthread_mutex_unlock(&rr->lock);
	return best;
}
