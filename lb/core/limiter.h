/*
 * limiter: the adaptive concurrency limit of one server
 * (`max_connections: auto`, issue 15). Pure arithmetic over what the caller
 * measured in one window (about 100 ms): no clock, no I/O, one thread.
 *
 * The gradient idea of Netflix's concurrency-limits and Envoy's adaptive
 * concurrency filter. Tracked: the limit (a double, rounded when read); the
 * no-load latency `min_latency`, the lowest window mean seen; the window
 * where the current run of cuts began; the window-to-window noise of the
 * latency. Each window with requests gives ratio = latency / min_latency:
 *
 * - ratio <= tolerance: grow by sqrt(tolerance / ratio), x1.095 a window
 *   at most on a quiet server (20 to 200 in 25 windows). The tolerance is
 *   1.2: a server whose latency grows with the square of its concurrency
 *   then runs about 7% past its knee, at 93% of its peak. A noisier server
 *   gets 1 + 3 x its noise (the mean change of log latency between windows
 *   at about the same concurrency), so that noise does not pass for
 *   queueing. An app-limited window (fewer than
 *   half the limit in flight) says nothing about more concurrency: the
 *   limit relaxes instead toward max(initial, 2 x in flight), x0.9 a
 *   window when above it, so an unused limit neither grows without bound
 *   nor stays high and stale.
 * - ratio > tolerance: queueing. Cut by sqrt(tolerance / ratio), at most
 *   by half a window. The square root is the exact step for latency that
 *   grows with the square of concurrency and a damped half step for linear
 *   queueing, so the limit settles without oscillating.
 * - The minimum never sticks. Too high: every 100 windows at full use (at
 *   once when a window was much faster than the minimum) the limit drops
 *   to x0.65 for one window and comes back; the latency there is the
 *   no-load one, and the minimum takes it if lower. Too low: when a run of
 *   cuts has taken the concurrency to 0.7 of where it began and the
 *   latency did not fall with it (stayed above 0.9 of it), that latency is
 *   the server's own, not queueing: it becomes the minimum and the limit
 *   goes back to where the run began. So does a limit of 1 that is slow.
 * - At the start the minimum is unknown and every window counts as
 *   queueing: the limit halves until the latency stops falling with it
 *   (the case above), 2 to 6 windows from LIMITER_INITIAL.
 *
 * The concurrency of a window is min(inflight_max, the limit in force):
 * requests above the limit after a cut are only draining. Always 1..cap.
 */
#ifndef LB_LIMITER_H
#define LB_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

/* The limit the caller starts a server at (clamped to its cap): Netflix's
 * default; the start-up halving finds a knee below it in a few windows. */
#define LIMITER_INITIAL 20

struct limiter {
	double limit;          /* 1..cap; limiter_value rounds it */
	double min_latency_us; /* no-load latency; 0 = not known yet */
	unsigned run_inflight; /* where the run of cuts began (0 = no run) ... */
	double run_latency_us; /* ... and its latency there */
	double probe_restore;  /* the limit to return to after a probe, 0 = none */
	int windows_to_probe;
	double jitter;         /* mean |log| change of latency between windows */
	double tolerance;      /* this window's */
	double last_latency_us;
	unsigned last_inflight;
	bool steady;           /* the last window's concurrency was the one before's */
	int initial, cap;
};

/* Start at `initial` (clamped to 1..cap). cap >= 1. */
void limiter_init(struct limiter *l, int initial, int cap);

/* One window: count requests completed, mean_latency_us their mean latency,
 * inflight_max the most in flight at once. Returns the new limit, 1..cap
 * (unchanged for a window with count == 0, or a latency that is not a
 * positive finite number). */
int limiter_update(struct limiter *l, uint64_t count, double mean_latency_us, unsigned inflight_max);

/* The limit to enforce now, 1..cap. */
int limiter_value(const struct limiter *l);

#endif
