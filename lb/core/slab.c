/* slab: objects of one size in blocks that go back to the kernel. See slab.h. */
#include "slab.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "poison.h"

#define SLAB_ALIGN 16

/* A block: this header, then `capacity` slots of slot_size bytes, each a
 * back pointer to the block followed by the object. */
struct slab_block {
	struct slab *owner;
	struct slab_block *prev, *next; /* in owner->partial or owner->full */
	void *free_slots; /* singly linked through the slots' object area */
	size_t used;
	size_t mapped; /* bytes of the mapping */
	uint64_t empty_since; /* the slab's trim period when it became empty */
};

struct slab {
	size_t object_size;
	size_t slot_size; /* back pointer + object, aligned */
	size_t capacity; /* slots per block */
	size_t block_bytes;
	struct slab_block *partial; /* blocks with a used and a free slot */
	struct slab_block *full;
	struct slab_block *empty; /* most recently emptied first */
	uint64_t period; /* slab_trim calls so far */
	size_t in_use, blocks;
};

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

/* Where the slot's object starts: after the back pointer, aligned. */
#define SLOT_HEADER round_up(sizeof(struct slab_block *), SLAB_ALIGN)
#define BLOCK_HEADER round_up(sizeof(struct slab_block), SLAB_ALIGN)

struct slab *slab_create(size_t object_size, size_t block_size)
{
	struct slab *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	long page = sysconf(_SC_PAGESIZE);
	s->object_size = object_size;
	s->slot_size = SLOT_HEADER + round_up(object_size ? object_size : 1, SLAB_ALIGN);
	size_t wanted = block_size > BLOCK_HEADER + s->slot_size ? block_size : BLOCK_HEADER + s->slot_size;
	s->block_bytes = round_up(wanted, page > 0 ? (size_t)page : 4096);
	s->capacity = (s->block_bytes - BLOCK_HEADER) / s->slot_size;
	return s;
}

static void list_remove(struct slab_block **head, struct slab_block *b)
{
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		*head = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

static void list_push(struct slab_block **head, struct slab_block *b)
{
	b->prev = NULL;
	b->next = *head;
	if (*head != NULL)
		(*head)->prev = b;
	*head = b;
}

static void block_unmap(struct slab *s, struct slab_block *b)
{
	UNPOISON(b, b->mapped); /* the range may be mapped again for others */
	s->blocks--;
	munmap(b, b->mapped);
}

/* A fresh block: every slot on its free list. */
static struct slab_block *block_map(struct slab *s)
{
	void *m = mmap(NULL, s->block_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	struct slab_block *b = m;
	*b = (struct slab_block){ .owner = s, .mapped = s->block_bytes };
	char *slots = (char *)m + BLOCK_HEADER;
	for (size_t i = s->capacity; i-- > 0;) {
		char *slot = slots + i * s->slot_size;
		*(struct slab_block **)slot = b;
		void **object = (void **)(slot + SLOT_HEADER);
		*object = b->free_slots;
		b->free_slots = object;
		POISON(object, s->slot_size - SLOT_HEADER);
	}
	s->blocks++;
	return b;
}

void *slab_alloc(struct slab *s)
{
	struct slab_block *b = s->partial;
	if (b == NULL) {
		b = s->empty;
		if (b != NULL)
			list_remove(&s->empty, b);
		else if ((b = block_map(s)) == NULL)
			return NULL;
		list_push(&s->partial, b);
	}
	void **object = b->free_slots;
	UNPOISON(object, s->slot_size - SLOT_HEADER);
	b->free_slots = *object;
	b->used++;
	s->in_use++;
	if (b->free_slots == NULL) {
		list_remove(&s->partial, b);
		list_push(&s->full, b);
	}
	return object;
}

void slab_free(void *object)
{
	if (object == NULL)
		return;
	struct slab_block *b = *(struct slab_block **)((char *)object - SLOT_HEADER);
	struct slab *s = b->owner;
	bool was_full = b->free_slots == NULL;
	*(void **)object = b->free_slots;
	POISON(object, s->slot_size - SLOT_HEADER);
	b->free_slots = object;
	b->used--;
	s->in_use--;
	if (was_full) {
		list_remove(&s->full, b);
		list_push(&s->partial, b);
	}
	if (b->used > 0)
		return;
	/* Empty: kept for reuse, unmapped by slab_trim if it stays so. */
	list_remove(&s->partial, b);
	b->empty_since = s->period;
	list_push(&s->empty, b);
}

void slab_trim(struct slab *s)
{
	struct slab_block *b = s->empty;
	while (b != NULL) {
		struct slab_block *next = b->next;
		if (b->empty_since < s->period) {
			list_remove(&s->empty, b);
			block_unmap(s, b);
		}
		b = next;
	}
	s->period++;
}

void slab_destroy(struct slab *s)
{
	if (s == NULL)
		return;
	struct slab_block *lists[] = { s->partial, s->full, s->empty };
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct slab_block *b = lists[i];
		while (b != NULL) {
			struct slab_block *next = b->next;
			block_unmap(s, b);
			b = next;
		}
	}
	free(s);
}

size_t slab_in_use(const struct slab *s)
{
	return s->in_use;
}

size_t slab_blocks(const struct slab *s)
{
	return s->blocks;
}

size_t slab_object_size(const struct slab *s)
{
	return s->object_size;
}
