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
 */
#include <stdlib.h>
#include <string.h>

#include "balance_internal.h"

int balance_rr_init(struct balancer *b)
{
	size_t n_alloc = b->nservers ? b->nservers : 1;

	b->rr_scratch_member = calloc(n_alloc, sizeof(*b->rr_scratch_member));
	if (!b->rr_scratch_member)
		return -1;
	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		struct balance_rr_slot *slot = &b->rr_slots[s];
		slot->current = calloc(n_alloc, sizeof(*slot->current));
		slot->member = calloc(n_alloc, sizeof(*slot->member));
		if (!slot->current || !slot->member)
			return -1; /* balance_rr_free releases what was allocated */
	}
	return 0;
}

void balance_rr_free(struct balancer *b)
{
	free(b->rr_scratch_member);
	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		free(b->rr_slots[s].current);
		free(b->rr_slots[s].member);
	}
}

/* The slot whose participant set is exactly `member`, or a recycled one
 * (unused first, else least recently used) reset to all zero. */
static struct balance_rr_slot *balance_rr_slot_for(struct balancer *b, const bool *member)
{
	struct balance_rr_slot *victim = NULL;

	for (size_t s = 0; s < BALANCE_RR_SLOTS; s++) {
		struct balance_rr_slot *slot = &b->rr_slots[s];
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

int balance_pick_round_robin(struct balancer *b, const struct balance_request *req)
{
	bool *member = b->rr_scratch_member;
	struct balance_rr_slot *slot;
	int64_t total = 0;
	size_t participants = 0;
	int best = -1;

	for (size_t i = 0; i < b->nservers; i++) {
		member[i] = b->servers[i].weight > 0 && req->usable(req->ctx, i);
		participants += member[i];
	}
	if (participants == 0)
		return -1;

	slot = balance_rr_slot_for(b, member);
	slot->last_used = ++b->rr_picks;
	for (size_t i = 0; i < b->nservers; i++) {
		if (!member[i])
			continue;
		slot->current[i] += b->servers[i].weight;
		total += b->servers[i].weight;
		if (best < 0 || slot->current[i] > slot->current[best])
			best = (int)i;
	}
	slot->current[best] -= total;
	return best;
}
