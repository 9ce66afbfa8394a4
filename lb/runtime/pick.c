/* pick: the next server for a try. See pick.h. */
#include "pick.h"

#include "clock.h"
#include "fastrand.h"

/* A server in slow start starts at this share of its weight and limit. */
#define RAMP_SHARE_MIN 0.05

struct pick_context {
	struct gen_backend *backend;
	const int *tried;
	size_t ntried;
	bool any_health; /* panic or last resort: health does not matter */
	bool free_slot_only;
	bool ramp; /* slow start thins out ramping servers */
	uint64_t now_ms; /* for ramp, read once */
};

double pick_ramp_share(const struct gen_backend *b, size_t i, uint64_t now_ms)
{
	uint64_t since = atomic_load_explicit(&b->servers[i].state->ramp_since_ms, memory_order_relaxed);
	uint64_t span = b->cfg->slow_start_ms;
	if (since == 0 || span == 0 || now_ms >= since + span)
		return 1.0;
	double share = now_ms > since ? (double)(now_ms - since) / (double)span : 0.0;
	return share > RAMP_SHARE_MIN ? share : RAMP_SHARE_MIN;
}

static bool pick_usable(void *ctx, size_t i)
{
	struct pick_context *pc = ctx;
	for (size_t t = 0; t < pc->ntried; t++)
		if (pc->tried[t] == (int)i)
			return false;
	if (pc->free_slot_only && !server_state_slot_free(pc->backend->servers[i].state))
		return false;
	if (!(pc->any_health ? gen_server_eligible(pc->backend, i) : gen_server_usable(pc->backend, i)))
		return false;
	if (pc->ramp && atomic_load_explicit(&pc->backend->servers[i].state->ramp_since_ms, memory_order_relaxed) != 0) {
		if (pc->now_ms == 0)
			pc->now_ms = clock_ms();
		double share = pick_ramp_share(pc->backend, i, pc->now_ms);
		if (share < 1.0 && (double)(fastrand_next() >> 11) * 0x1.0p-53 >= share)
			return false; /* ramping: passed over this time */
	}
	return true;
}

static unsigned pick_load(void *ctx, size_t i)
{
	const struct pick_context *pc = ctx;
	return atomic_load_explicit(&pc->backend->servers[i].state->active, memory_order_relaxed);
}

/* The worker's cursor of b, made at its first pick: only that worker
 * writes its slot, and gen_free frees them once no worker holds b. */
static struct balance_cursor *cursor_of(struct gen_backend *b, int worker)
{
	if (b->cursors[worker] == NULL)
		b->cursors[worker] = balance_cursor_create(b->balancer);
	return b->cursors[worker];
}

int pick_next_server(struct gen_backend *b, int worker, const struct server_tries *tries, const void *key,
		     size_t key_len, bool free_slot_only)
{
	if (tries->count > (size_t)b->cfg->retries || tries->count >= PICK_MAX_TRIES)
		return -1;
	struct balance_cursor *cursor = cursor_of(b, worker);
	if (cursor == NULL)
		return -1;
	struct pick_context pc = { .backend = b,
				   .tried = tries->tried,
				   .ntried = tries->count,
				   .free_slot_only = free_slot_only,
				   .ramp = b->cfg->slow_start_ms > 0 && b->cfg->balance != BALANCE_HASH };
	struct balance_request req = {
		.usable = pick_usable,
		.load = pick_load,
		.ctx = &pc,
		.key = key,
		.key_len = key_len,
		.has_key = key != NULL,
		.random = b->cfg->balance == BALANCE_RANDOM ? fastrand_next() : 0,
	};
	bool panic = atomic_load_explicit(&b->state->panic, memory_order_relaxed);
	pc.any_health = panic;
	int i = balance_pick(b->balancer, cursor, &req);
	if (i < 0 && pc.ramp) {
		pc.ramp = false; /* every candidate was ramping, and passed over */
		i = balance_pick(b->balancer, cursor, &req);
	}
	if (i < 0 && !panic && b->cfg->panic_threshold_percent > 0) {
		if (pc.free_slot_only) {
			/* Usable servers that are only full: the request waits for
			 * them (queue.h), it does not fall back on a down one. */
			pc.free_slot_only = false;
			if (balance_pick(b->balancer, cursor, &req) >= 0)
				return -1;
		}
		pc.any_health = true; /* the last resort */
		i = balance_pick(b->balancer, cursor, &req);
	}
	return i;
}
