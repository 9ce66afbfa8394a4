/*
 * deadline: one timer per session that is cheap to move.
 *
 * A session sets a new deadline at almost every step (header, connect,
 * response, idle after every byte relayed, client keep-alive). Re-adding a
 * libevent timer each time costs a heap operation per step; instead the
 * event stays armed at the earliest time it might be needed, and a later
 * deadline only records the new due time. When the event fires before the
 * due time, it re-arms itself for the rest; when the due time has passed,
 * it calls the owner. Times come from CLOCK_MONOTONIC_COARSE (no syscall,
 * immune to wall-clock steps; a few ms of resolution is plenty here).
 */
#ifndef LB_DEADLINE_H
#define LB_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h> /* the event lives in the deadline: no allocation */

struct deadline {
	struct event event;
	bool ready; /* deadline_init succeeded */
	uint64_t due_ms; /* when the owner's current deadline passes */
	uint64_t armed_ms; /* when the event fires, if pending */
	bool pending;
	void (*expired)(void *arg);
	void *arg;
};

/* Returns 0, or -1 when the event cannot be set up. */
int deadline_init(struct deadline *d, struct event_base *base, void (*expired)(void *arg), void *arg);

/* The deadline is `ms` from now, replacing the previous one. */
void deadline_set(struct deadline *d, uint64_t ms);

void deadline_free(struct deadline *d);

#endif
