/*
 * clock: lb's one monotonic clock, in milliseconds (CLOCK_MONOTONIC_COARSE:
 * no system call, a few ms of resolution, immune to wall-clock steps). What
 * measures a timeout, a cooldown or a DNS wait reads it; durations reported
 * per request use the worker loop's cached reading (session_now), taken
 * once per loop iteration; log lines format their wall-clock second once.
 */
#ifndef LB_CLOCK_H
#define LB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
