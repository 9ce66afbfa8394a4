/* pick: the next server for a try. See pick.h. */
#include "pick.h"

#include <pthread.h>
#include <stdlib.h>

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

/* This thread's scratch for picks (balance_types.h), grown to the largest
 * backend it picked from; freed by pick_thread_exit. */
static _Thread_local struct balance_scratch scratch;

static struct balance_scratch *scratch_for(size_t servers)
{
	if (scratch.capacity >= servers)
		return &scratch;
	size_t *usable = realloc(scratch.usable, servers * sizeof(*usable));
	if (usable != NULL)
		scratch.usable = usable;
	uint8_t *verdict = realloc(scratch.verdict, servers * sizeof(*verdict));
	if (verdict != NULL)
		scratch.verdict = verdict;
	unsigned *load = realloc(scratch.load, servers * sizeof(*load));
	if (load != NULL)
		scratch.load = load;
	if (usable == NULL || verdict == NULL || load == NULL)
		return NULL; /* the balancer's own, under the lock */
	scratch.capacity = servers;
	return &scratch;
}

void pick_thread_exit(void)
{
	free(scratch.usable);
	free(scratch.verdict);
	free(scratch.load);
	scratch = (struct balance_scratch){ 0 };
}

int pick_next_server(struct gen_backend *b, struct server_tries *tries, const void *key, size_t key_len)
{
	if (tries->count > (size_t)b->cfg->retries || tries->count >= PICK_MAX_TRIES)
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
	/* Only what changes the balancer is serialised: random and hash picks
	 * with a key read shared tables and write this thread's scratch. */
	req.scratch = scratch_for(balance_size(b->balancer));
	bool lock = req.scratch == NULL || balance_pick_mutates(b->balancer, req.has_key);
	if (lock)
		pthread_mutex_lock(&b->pick_lock);
	int i = balance_pick(b->balancer, &req);
	if (i < 0 && !panic && b->cfg->panic_threshold_percent > 0) {
		pc.any_health = true; /* the last resort */
		i = balance_pick(b->balancer, &req);
	}
	if (lock)
		pthread_mutex_unlock(&b->pick_lock);
	if (i >= 0)
		tries->tried[tries->count++] = i;
	return i;
}
