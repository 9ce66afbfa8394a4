/*
 * fastrand: the one pseudo-random stream of lb, for picks (power of two
 * choices) and request ids. Fast, not secret: xorshift64* with one state
 * per thread (no lock, no sharing), seeded from the wall clock, the process
 * id and the thread, so that two lb instances, or two threads, do not draw
 * the same numbers.
 */
#ifndef LB_FASTRAND_H
#define LB_FASTRAND_H

#include <stdint.h>

/* The next 64 random bits of this thread's stream. */
uint64_t fastrand_next(void);

#endif
