/*
 * slab: objects of one size in blocks mapped from the kernel and unmapped
 * again once empty, so that what a burst of connections took leaves the
 * process when the burst is over. malloc cannot promise that: a few small
 * long-lived allocations (libevent keeps one per descriptor number) end up
 * between the freed ones on every page, and no page comes free.
 *
 * Each object is preceded by a pointer to its block, so slab_free needs
 * nothing but the object. An empty block is kept for reuse until it has
 * stayed empty through a whole period of slab_trim calls (the owner calls
 * it once a second): a load that swings around a block boundary would
 * otherwise map and unmap, and fault in fresh pages, on every request.
 *
 * Single-threaded: a slab belongs to one thread (one per worker in lb).
 */
#ifndef LB_SLAB_H
#define LB_SLAB_H

#include <stddef.h>

struct slab;

/* Objects of object_size bytes (aligned to 16), in blocks of about
 * block_size bytes (at least one object each). NULL without memory. */
struct slab *slab_create(size_t object_size, size_t block_size);

/* Unmap everything; objects still out become invalid. NULL is fine. */
void slab_destroy(struct slab *s);

/* An object (uninitialised), or NULL without memory. */
void *slab_alloc(struct slab *s);

/* Give back an object from any slab. NULL is fine. */
void slab_free(void *object);

/* Unmap the blocks that stayed empty since the previous call. */
void slab_trim(struct slab *s);

/* Objects out now, and blocks mapped now (for tests and figures). */
size_t slab_in_use(const struct slab *s);
size_t slab_blocks(const struct slab *s);

/* The object size it was made for. */
size_t slab_object_size(const struct slab *s);

#endif
