/*
 * poison: memory lb hands out itself (slabs, evmem's range) marked
 * unusable while free under AddressSanitizer, so that a use after free is
 * caught there as it would be with malloc; nothing otherwise.
 */
#ifndef LB_POISON_H
#define LB_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define LB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LB_ASAN 1
#endif
#endif

#ifdef LB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
