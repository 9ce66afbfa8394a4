/* evmem: libevent's small allocations in a range of their own. See evmem.h. */
#include "evmem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>

#include "poison.h"

/* Reserved as inaccessible address space (costs no memory and no commit
 * charge) and made usable COMMIT_STEP at a time: 16M slots, one per
 * descriptor number per event base, before malloc takes over. */
#define RESERVED ((size_t)256 << 20)
#define COMMIT_STEP ((size_t)64 << 10)

static struct {
	pthread_mutex_t lock;
	char *start; /* NULL until reserved */
	size_t committed; /* bytes usable from start */
	size_t used; /* bytes handed out at least once from start */
	void *free_slots; /* linked through each slot's first bytes */
	size_t in_use;
} range = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int reserve(void)
{
	void *p = mmap(NULL, RESERVED, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	range.start = p;
	return 0;
}

bool evmem_owns(const void *p)
{
	return range.start != NULL && (uintptr_t)p - (uintptr_t)range.start < RESERVED;
}

/* A slot, or NULL when the range is used up (or was never reserved). */
static void *slot_take(void)
{
	void *slot = NULL;
	pthread_mutex_lock(&range.lock);
	if (range.free_slots != NULL) {
		slot = range.free_slots;
		UNPOISON(slot, EVMEM_SMALL);
		memcpy(&range.free_slots, slot, sizeof(void *));
	} else if (range.start != NULL && range.used < RESERVED) {
		if (range.used == range.committed &&
		    mprotect(range.start + range.committed, COMMIT_STEP, PROT_READ | PROT_WRITE) == 0)
			range.committed += COMMIT_STEP;
		if (range.used < range.committed) {
			slot = range.start + range.used;
			range.used += EVMEM_SMALL;
		}
	}
	if (slot != NULL)
		range.in_use++;
	pthread_mutex_unlock(&range.lock);
	return slot;
}

static void slot_give(void *slot)
{
	pthread_mutex_lock(&range.lock);
	memcpy(slot, &range.free_slots, sizeof(void *));
	POISON(slot, EVMEM_SMALL);
	range.free_slots = slot;
	range.in_use--;
	pthread_mutex_unlock(&range.lock);
}

void *evmem_malloc(size_t size)
{
	if (size > 0 && size <= EVMEM_SMALL) {
		void *slot = slot_take();
		if (slot != NULL)
			return slot;
	}
	return malloc(size);
}

void evmem_free(void *p)
{
	if (evmem_owns(p))
		slot_give(p);
	else
		free(p);
}

void *evmem_realloc(void *p, size_t size)
{
	if (p == NULL)
		return evmem_malloc(size);
	if (!evmem_owns(p))
		return realloc(p, size);
	if (size == 0) {
		slot_give(p);
		return NULL;
	}
	if (size <= EVMEM_SMALL)
		return p; /* the slot holds it */
	void *moved = malloc(size);
	if (moved == NULL)
		return NULL; /* p stays valid, as realloc's does */
	memcpy(moved, p, EVMEM_SMALL);
	slot_give(p);
	return moved;
}

size_t evmem_slots_in_use(void)
{
	pthread_mutex_lock(&range.lock);
	size_t n = range.in_use;
	pthread_mutex_unlock(&range.lock);
	return n;
}

size_t evmem_bytes_committed(void)
{
	pthread_mutex_lock(&range.lock);
	size_t n = range.committed;
	pthread_mutex_unlock(&range.lock);
	return n;
}

int evmem_install(void)
{
	if (range.start == NULL && reserve() != 0)
		return -1;
	event_set_mem_functions(evmem_malloc, evmem_realloc, evmem_free);
	return 0;
}
