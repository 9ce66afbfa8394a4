/*
 * evmem: libevent's per-descriptor entries kept apart from the heap.
 *
 * An event_base allocates a small entry (16 bytes) the first time it sees a
 * descriptor number and keeps it until the base is freed. Those numbers are
 * first reached during a burst of connections, so with plain malloc the
 * entries land between the burst's buffers, one every few hundred bytes,
 * and once the burst is over and its buffers freed not one page can go back
 * to the kernel: 5,000 pooled server connections held 3.6 MB of free heap
 * beside 0.3 MB of entries. evmem gives libevent's allocations of at most
 * EVMEM_SMALL bytes their own address range; everything else is plain
 * malloc, realloc and free.
 *
 * evmem_install must run before libevent allocates anything (start of main).
 * Thread-safe: every worker's base allocates through it.
 *
 * So memory a libevent call returns for the caller to free (evhttp_uridecode,
 * evhttp_encode_uri, evbuffer_readln, ...) may be a slot of the range: give
 * it back with evmem_free, never free(). Under AddressSanitizer the slots
 * have no redzones (an overflow into the next one goes unseen); free slots
 * are poisoned, so a use after free is still caught.
 */
#ifndef LB_EVMEM_H
#define LB_EVMEM_H

#include <stdbool.h>
#include <stddef.h>

#define EVMEM_SMALL 16

/* Route libevent's allocations (event_set_mem_functions). Returns 0, or -1
 * when no address range could be reserved (libevent then keeps malloc). */
int evmem_install(void);

/* The allocator itself, for tests: small slots come from the range while
 * it has room, then from malloc; evmem_free and evmem_realloc take either. */
void *evmem_malloc(size_t size);
void *evmem_realloc(void *p, size_t size);
void evmem_free(void *p);

/* p is a slot of the range. */
bool evmem_owns(const void *p);

/* Slots handed out now, and bytes of the range made usable so far. */
size_t evmem_slots_in_use(void);
size_t evmem_bytes_committed(void);

#endif
