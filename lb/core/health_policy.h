/*
 * health_policy: the rules that keep health checking from emptying a
 * backend (SPEC 6). Pure arithmetic over counts and durations: no clock,
 * no atomics, no I/O; health.c and gen.c apply them.
 *
 * - Passive ejection is a short hint, not a sentence: a server that fails
 *   `passive.failures` times in a row is out for `passive.cooldown`, longer
 *   when it was ejected recently too (backoff), and then comes back as soon
 *   as its active check passes `rise` times (or at once, with no check).
 * - Passive ejection never takes out more than max_ejected of the servers
 *   that may take requests (weight > 0, not drained): those already out
 *   (ejected or down) count against it.
 * - Panic: when fewer than panic_threshold of a backend's servers are
 *   healthy, lb balances across all of them, healthy or not, and lets
 *   connect failures and retries find the live ones (Envoy's panic
 *   threshold). A rolling restart can then never empty a backend.
 */
#ifndef LB_HEALTH_POLICY_H
#define LB_HEALTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cooldown multiplier grows by one per recent ejection, up to this. */
#define HEALTH_BACKOFF_MAX 6
/* An ejection is "recent" when the previous one began less than this many
 * cooldowns before it (with the default 5 s: one minute). */
#define HEALTH_BACKOFF_WINDOW 12

/* The multiplier of an ejection that happens `since_previous_ms` after the
 * previous one (which had multiplier `previous`, 0 = none before). */
unsigned health_backoff_multiplier(unsigned previous, uint64_t since_previous_ms, uint64_t cooldown_ms);

/* May one more server be ejected, with `out` of `servers` (those that may
 * take requests) already out? Never beyond floor(servers x percent / 100):
 * with 50%, one of 2 or 3, none of a backend of one. */
bool health_eject_allowed(size_t out, size_t servers, int max_ejected_percent);

/* Is a backend with `healthy` of `eligible` servers (weight > 0, not
 * drained) in panic? Never when threshold_percent is 0 or eligible is 0. */
bool health_panic(size_t healthy, size_t eligible, int threshold_percent);

#endif
