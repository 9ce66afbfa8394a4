/* pick: the next server for a try. See pick.h. */
#include "pick.h"

#include "fastrand.h"

struct pick_context {
	struct gen_backend *backend;
	const int *tried;
	size_t ntried;
	bool any_health; /* panic or last resort: health does not matter */
};

static bool pick_usable(void *ctx, size_t i)
{
	const struct pick_context *pc = ctx;
	for (size_t t = 0; t < pc->ntried; t++)
		if (pc->tried[t] == (int)i)
			return false;
	return pc->any_health ? gen_server_eligible(pc->backend, i) : gen_server_usable(pc->backend, i);
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

int pick_next_server(struct gen_backend *b, int worker, struct server_tries *tries, const void *key, size_t key_len)
{
	if (tries->count > (size_t)b->cfg->retries || tries->count >= PICK_MAX_TRIES)
		return -1;
	struct balance_cursor *cursor = cursor_of(b, worker);
	if (cursor == NULL)
		return -1;
	struct pick_context pc = { .backend = b, .tried = tries->tried, .ntried = tries->count };
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
	if (i < 0 && !panic && b->cfg->panic_threshold_percent > 0) {
		pc.any_health = true; /* the last resort */
		i = balance_pick(b->balancer, cursor, &req);
	}
	if (i >= 0)
		tries->tried[tries->count++] = i;
	return i;
}
