/* limiter: adaptive concurrency limit of one server. See limiter.h. */
#include <math.h>

#include "limiter.h"

#define TOLERANCE 1.2      /* latency this far above the minimum is still "near" it */
#define JITTER_TOLERANCE 3 /* ... or 1 + 3 x the noise, when that is more */
#define JITTER_MAX 0.5     /* one window's change counts as noise up to e^0.5 */
#define DROP_SEEN 0.7      /* a run of cuts looks at the latency at this share of its start */
#define FLAT 0.9           /* ... and finds it flat at this share of the start's, or more */
#define DECAY 0.9          /* an app-limited limit above its resting value, per window */
#define PROBE_EVERY 100    /* windows of full use between two probes of the minimum */
#define PROBE 0.65         /* the limit during a probe, a share of the current one */

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void limiter_init(struct limiter *l, int initial, int cap)
{
	if (cap < 1)
		cap = 1;
	*l = (struct limiter){ .cap = cap, .windows_to_probe = PROBE_EVERY };
	l->initial = (int)clamp(initial, 1, cap);
	l->limit = l->initial;
}

int limiter_value(const struct limiter *l)
{
	return (int)lround(l->limit);
}

/* Latency near the minimum: grow, or relax when app-limited, or probe. */
static void limiter_grow(struct limiter *l, double latency, unsigned in_flight, double ratio)
{
	l->run_inflight = 0;
	if (l->probe_restore > 0) { /* the probe window measured; back to work */
		l->limit = fmax(l->limit, l->probe_restore);
		l->probe_restore = 0;
		return;
	}
	if (2.0 * in_flight < l->limit) { /* app-limited */
		double rest = fmax(l->initial, 2.0 * in_flight);
		if (l->limit > rest)
			l->limit = fmax(rest, l->limit * DECAY);
		else
			l->limit = fmin(rest, l->limit * sqrt(l->tolerance / ratio));
		return;
	}
	if (--l->windows_to_probe <= 0) {
		l->windows_to_probe = PROBE_EVERY;
		l->probe_restore = l->limit;
		l->run_inflight = in_flight; /* a slow probe window may start a run */
		l->run_latency_us = latency;
		l->limit *= PROBE;
		return;
	}
	l->limit *= sqrt(l->tolerance / ratio);
}

/* The latency was ours, not the server's: it is the minimum now, and the
 * limit goes back to where the run of cuts started. */
static void limiter_rebase(struct limiter *l, double latency)
{
	l->min_latency_us = latency;
	l->limit = fmax(l->limit, l->run_inflight);
	l->run_inflight = 0;
}

/* Latency well above the minimum: queueing, unless cutting does not help. */
static void limiter_shrink(struct limiter *l, double latency, unsigned in_flight, double ratio)
{
	l->probe_restore = 0; /* slow even at the probe's lower limit: stay there */
	if (l->limit <= 1) { /* nothing left to cut: one at a time is no load */
		limiter_rebase(l, latency);
		return;
	}
	if (l->run_inflight == 0 || latency > l->run_latency_us / FLAT) {
		/* a new run, or the server got slower since it began: from here */
		l->run_inflight = in_flight;
		l->run_latency_us = latency;
	} else if (in_flight <= DROP_SEEN * l->run_inflight) {
		if (latency >= FLAT * l->run_latency_us) {
			limiter_rebase(l, latency);
			return;
		}
		l->run_inflight = in_flight; /* it fell with us: queueing; go on from here */
		l->run_latency_us = latency;
	}
	l->limit *= fmax(0.5, sqrt(l->tolerance / ratio));
}

/* How much the latency moves from one window to the next by itself: only
 * over windows whose concurrency stayed within 1/16 of the one before, two
 * in a row (a window may report the latency of requests sent in the one
 * before). The tolerance widens with it, so that noise is not taken for
 * queueing. */
static void limiter_measure_noise(struct limiter *l, double latency, unsigned in_flight)
{
	bool steady = fabs((double)in_flight - l->last_inflight) * 16 <= in_flight;
	if (steady && l->steady && l->last_latency_us > 0) {
		double change = fabs(log(latency / l->last_latency_us));
		l->jitter += (fmin(change, JITTER_MAX) - l->jitter) / 8;
	}
	l->steady = steady;
	l->last_latency_us = latency;
	l->last_inflight = in_flight;
	l->tolerance = 1 + fmax(TOLERANCE - 1, JITTER_TOLERANCE * l->jitter);
}

int limiter_update(struct limiter *l, uint64_t count, double mean_latency_us, unsigned inflight_max)
{
	if (count == 0 || !isfinite(mean_latency_us) || mean_latency_us <= 0)
		return limiter_value(l);
	/* The requests sent in this window met the limit in force; those above
	 * it were left over from before a cut and are draining. */
	unsigned limit = (unsigned)limiter_value(l);
	unsigned in_flight = inflight_max < limit ? inflight_max : limit;
	if (l->min_latency_us <= 0 && in_flight <= 1) {
		limiter_rebase(l, mean_latency_us); /* one at a time is no load */
	} else if (mean_latency_us < l->min_latency_us) {
		if (mean_latency_us * TOLERANCE < l->min_latency_us)
			l->windows_to_probe = 1; /* much faster: are we past its knee now? */
		l->min_latency_us = mean_latency_us;
	}
	limiter_measure_noise(l, mean_latency_us, in_flight);
	double ratio = l->min_latency_us > 0 ? mean_latency_us / l->min_latency_us : INFINITY;
	if (ratio <= l->tolerance)
		limiter_grow(l, mean_latency_us, in_flight, ratio);
	else
		limiter_shrink(l, mean_latency_us, in_flight, ratio);
	l->limit = clamp(l->limit, 1, l->cap);
	return limiter_value(l);
}
