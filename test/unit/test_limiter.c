/*
 * Unit tests for limiter: the adaptive concurrency limit (issue 15).
 *
 * Most tests drive it with the overloaded replica of issue 15, simulated one
 * 100 ms window at a time: the server serves up to n requests at once in
 * service_us each; at concurrency c > n every request takes
 * service_us x (c/n)^2. `clients` closed-loop clients go through the limit:
 * min(clients, limit) are in flight at the server (the rest wait in lb's
 * queue, which the limiter does not see), and each window completes
 * in_flight x 100 ms / latency requests. The latency carries +-5% of noise
 * (uniform, from a fixed seed) unless a test says otherwise. Set
 * LIMITER_TABLE=1 to print what each case measured.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "limiter.h"

#define WINDOW_US 100000.0
#define CAP 1000
/* The promises: in the band [n/2, 2n] within SETTLE windows (20 s) and for
 * STAY windows (30 s) after; at least 85% of the peak n/service_us. */
#define SETTLE 200
#define STAY 300
#define MIN_THROUGHPUT 0.85
/* The start-up probe (limiter.h) is over within this many windows. */
#define STARTUP 10
/* After the service time changes: back in the band within RECOVER windows;
 * after n drops from 64 to 8, within SHRINK. */
#define RECOVER 20
#define SHRINK 5

struct server {
	int n;
	double service_us;
	uint32_t seed;    /* for the noise */
	double noise;     /* its amplitude: 0.05 = +-5%, unless set */
	int lag; /* report the previous window's latency, and its concurrency if higher */
	unsigned last_in_flight;
	double last_latency_us;
};

static double noise(struct server *s)
{
	s->seed = s->seed * 1664525u + 1013904223u; /* Numerical Recipes' LCG */
	double amplitude = s->noise > 0 ? s->noise : 0.05;
	return 1 - amplitude + 2 * amplitude * (double)(s->seed >> 8) / 16777216.0;
}

/* One window through the limiter; returns the requests completed in it. */
static double window(struct limiter *l, struct server *s, unsigned clients)
{
	unsigned limit = (unsigned)limiter_value(l);
	unsigned in_flight = clients < limit ? clients : limit;
	double load = (double)in_flight / s->n;
	double latency = s->service_us * (load > 1 ? load * load : 1) * noise(s);
	double completed = in_flight * WINDOW_US / latency;
	if (s->lag && s->last_in_flight > 0)
		limiter_update(l, (uint64_t)llround(completed), s->last_latency_us,
			       in_flight > s->last_in_flight ? in_flight : s->last_in_flight);
	else
		limiter_update(l, (uint64_t)llround(completed), latency, in_flight);
	s->last_in_flight = in_flight;
	s->last_latency_us = latency;
	return completed;
}

/* Run `windows` windows: the window after the last one with the limit out
 * of [n/band, n x band], and the throughput (share of the peak) from window
 * `from` on. */
struct run {
	int settled;
	double throughput;
	int lowest; /* limit over the whole run */
};

static struct run run_in_band(struct limiter *l, struct server *s, unsigned clients, int windows, int from,
			      int band)
{
	struct run r = { 0, 0, INT_MAX };
	double completed = 0;
	for (int w = 0; w < windows; w++) {
		double c = window(l, s, clients);
		if (w >= from)
			completed += c;
		int limit = limiter_value(l);
		r.lowest = limit < r.lowest ? limit : r.lowest;
		if (band * limit < s->n || limit > band * s->n)
			r.settled = w + 1;
	}
	r.throughput = completed / ((windows - from) * WINDOW_US / s->service_us * s->n);
	return r;
}

static struct run run(struct limiter *l, struct server *s, unsigned clients, int windows, int from)
{
	return run_in_band(l, s, clients, windows, from, 2);
}

/* The slowest settling and the lowest throughput over SEEDS noise seeds,
 * from LIMITER_INITIAL. */
#define SEEDS 10

static struct run worst_of_seeds(const struct server *server, unsigned clients, int band)
{
	struct run worst = { 0, 1e9, INT_MAX };
	for (uint32_t seed = 1; seed <= SEEDS; seed++) {
		struct server s = *server;
		s.seed = seed;
		struct limiter l;
		limiter_init(&l, LIMITER_INITIAL, CAP);
		struct run r = run_in_band(&l, &s, clients, SETTLE + STAY, SETTLE, band);
		worst.settled = r.settled > worst.settled ? r.settled : worst.settled;
		worst.throughput = r.throughput < worst.throughput ? r.throughput : worst.throughput;
	}
	return worst;
}

static const int servers[] = { 4, 16, 64, 200 };
static const double service_times_us[] = { 1000, 20000 };
static const unsigned clients_per_n[] = { 2, 8, 32 };

static void test_an_overloaded_server_is_held_near_its_knee(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
		for (size_t j = 0; j < sizeof service_times_us / sizeof *service_times_us; j++)
			for (size_t k = 0; k < sizeof clients_per_n / sizeof *clients_per_n; k++) {
				struct server s = { .n = servers[i], .service_us = service_times_us[j] };
				unsigned clients = clients_per_n[k] * s.n;
				struct run r = worst_of_seeds(&s, clients, 2);
				if (getenv("LIMITER_TABLE"))
					printf("n %3d  service %5.0f us  clients %4u: settled after %3d windows, "
					       "throughput %5.1f%% (the worst of %d)\n",
					       s.n, s.service_us, clients, r.settled, 100 * r.throughput, SEEDS);
				assert_true(r.settled <= SETTLE);
				assert_true(r.throughput >= MIN_THROUGHPUT);
			}
}

/* Real windows lag: a window completes requests sent in the one before,
 * at its concurrency, and those still in flight after a cut count in its
 * inflight_max. Still in the band, still at 85%. And window means are
 * noisier than +-5% when few requests complete in a window: at +-20% the
 * limit still stays within [n/3, 3n], at 80% of the peak or more. */
static void test_lagging_and_noisy_windows_still_settle(void **state)
{
	(void)state;
	const struct {
		double noise;
		int lag, band;
		double throughput;
	} cases[] = {
		{ 0.05, 1, 2, MIN_THROUGHPUT },
		{ 0.2, 0, 3, 0.8 },
		{ 0.2, 1, 3, 0.8 },
	};
	for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
		for (size_t k = 0; k < sizeof clients_per_n / sizeof *clients_per_n; k++)
			for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
				struct server s = { .n = servers[i], .service_us = 20000,
						    .noise = cases[c].noise, .lag = cases[c].lag };
				unsigned clients = clients_per_n[k] * s.n;
				struct run r = worst_of_seeds(&s, clients, cases[c].band);
				if (getenv("LIMITER_TABLE"))
					printf("noise +-%2.0f%%%s: n %3d  clients %4u: settled after %3d windows, "
					       "throughput %5.1f%% (the worst of %d)\n", 100 * cases[c].noise,
					       cases[c].lag ? ", lagging" : "", s.n, clients, r.settled,
					       100 * r.throughput, SEEDS);
				assert_true(r.settled <= SETTLE);
				assert_true(r.throughput >= cases[c].throughput);
			}
}

static void test_an_unloaded_server_never_makes_its_clients_wait(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
		for (size_t j = 0; j < sizeof service_times_us / sizeof *service_times_us; j++) {
			struct server s = { .n = servers[i], .service_us = service_times_us[j], .seed = 7 };
			const unsigned clients[] = { 1, (unsigned)s.n / 2, (unsigned)s.n };
			for (size_t k = 0; k < 3; k++) {
				struct limiter l;
				limiter_init(&l, LIMITER_INITIAL, CAP);
				/* The start-up probe may take the limit below the
				 * clients for its few windows; once it has found
				 * them again, never. */
				int reached = -1;
				for (int w = 0; w < SETTLE + STAY; w++) {
					window(&l, &s, clients[k]);
					int limit = limiter_value(&l);
					assert_true(limit <= CAP);
					if (reached < 0 && w >= STARTUP && limit >= (int)clients[k])
						reached = w;
					if (reached >= 0)
						assert_true(limit >= (int)clients[k]);
				}
				if (getenv("LIMITER_TABLE"))
					printf("n %3d  service %5.0f us  clients %4u: limit >= clients from window %d on\n",
					       s.n, s.service_us, clients[k], reached);
				/* 20 to 200 at x1.095 a window, after the probe */
				assert_true(reached >= 0 && reached <= 40);
			}
		}
}

/* Settle n/service_us under `clients`, change the server, and run on:
 * settled is then the windows until the limit is back in the (new) band
 * for good. */
static struct run change(int n, double service_us, int new_n, double new_service_us, unsigned clients)
{
	struct server s = { .n = n, .service_us = service_us, .seed = (uint32_t)(n * 31 + new_n) };
	struct limiter l;
	limiter_init(&l, LIMITER_INITIAL, CAP);
	assert_true(run(&l, &s, clients, SETTLE, SETTLE / 2).settled <= SETTLE / 2);
	s.n = new_n;
	s.service_us = new_service_us;
	return run(&l, &s, clients, SETTLE + STAY, SETTLE);
}

static void test_the_minimum_latency_follows_the_server(void **state)
{
	(void)state;
	const double factors[] = { 2, 0.5, 4, 0.25 };
	for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
		for (size_t f = 0; f < sizeof factors / sizeof *factors; f++) {
			int n = servers[i];
			struct run r = change(n, 4000, n, 4000 * factors[f], 8 * n);
			if (getenv("LIMITER_TABLE"))
				printf("n %3d  service 4 ms -> %4.1f ms: back in the band after %d windows "
				       "(lowest %d), throughput %5.1f%%\n",
				       n, 4 * factors[f], r.settled, r.lowest, 100 * r.throughput);
			assert_true(r.settled <= RECOVER);
			assert_true(r.throughput >= MIN_THROUGHPUT);
		}
}

static void test_a_sudden_overload_shrinks_the_limit_at_once(void **state)
{
	(void)state;
	for (size_t j = 0; j < sizeof service_times_us / sizeof *service_times_us; j++)
		for (unsigned clients = 8 * 64; clients <= 32 * 64; clients *= 4) {
			struct run r = change(64, service_times_us[j], 8, service_times_us[j], clients);
			if (getenv("LIMITER_TABLE"))
				printf("n 64 -> 8  service %5.0f us  clients %4u: in [4, 16] after %d windows, "
				       "throughput %5.1f%%\n", service_times_us[j], clients, r.settled,
				       100 * r.throughput);
			assert_true(r.settled <= SHRINK);
			assert_true(r.throughput >= MIN_THROUGHPUT);
		}
}

static void test_app_limited_windows_do_not_grow_the_limit(void **state)
{
	(void)state;
	/* A fast server, a huge cap, ten clients: no window is slow, yet the
	 * limit stays near twice what is used (or the initial limit). */
	struct server s = { .n = 1000, .service_us = 1000, .seed = 3 };
	struct limiter l;
	limiter_init(&l, LIMITER_INITIAL, 1000000);
	for (int w = 0; w < 1000; w++) {
		window(&l, &s, 10);
		assert_true(limiter_value(&l) <= LIMITER_INITIAL * 1.1);
	}
	for (int w = 0; w < 1000; w++) {
		window(&l, &s, 30);
		assert_true(limiter_value(&l) <= 2 * 30 * 1.1);
	}
}

static void test_an_unused_limit_decays_and_grows_back(void **state)
{
	(void)state;
	struct server s = { .n = 200, .service_us = 1000, .seed = 5 };
	struct limiter l;
	limiter_init(&l, LIMITER_INITIAL, CAP);
	run(&l, &s, 1600, SETTLE, 0);
	assert_true(limiter_value(&l) >= 200);
	/* Load drops to 10 clients: back to the initial limit within 2 s. */
	int w = 0;
	while (limiter_value(&l) > LIMITER_INITIAL && w < 1000) {
		window(&l, &s, 10);
		w++;
	}
	if (getenv("LIMITER_TABLE"))
		printf("unused: from the knee of 200 to %d in %d windows\n", LIMITER_INITIAL, w);
	assert_true(w <= 40);
	/* A burst: in the band again within 3 s, at the knee within 5 s. */
	struct run r = run(&l, &s, 1600, 50, 30);
	if (getenv("LIMITER_TABLE"))
		printf("burst: in the band after %d windows\n", r.settled);
	assert_true(r.settled <= 30);
	assert_true(r.throughput >= MIN_THROUGHPUT);
}

/* A window that is no sample leaves the limiter as it was: from then on it
 * answers as a twin that never saw it. */
static void no_sample(const struct limiter *settled, uint64_t count, double latency_us)
{
	struct limiter l = *settled, twin = *settled;
	struct server s = { .n = 16, .service_us = 1000, .seed = 99 }, twin_s = s;
	assert_int_equal(limiter_update(&l, count, latency_us, 7), limiter_value(&twin));
	for (int w = 0; w < 200; w++) {
		window(&l, &s, 128);
		window(&twin, &twin_s, 128);
		assert_int_equal(limiter_value(&l), limiter_value(&twin));
	}
}

static void test_a_window_without_a_sample_changes_nothing(void **state)
{
	(void)state;
	struct server s = { .n = 16, .service_us = 1000, .seed = 9 };
	struct limiter l;
	limiter_init(&l, LIMITER_INITIAL, CAP);
	run(&l, &s, 128, 150, 0);
	no_sample(&l, 0, 1000);
	no_sample(&l, 10, 0);
	no_sample(&l, 10, -1000);
	no_sample(&l, 10, NAN);
	no_sample(&l, 10, -NAN);
	no_sample(&l, 10, INFINITY);
	no_sample(&l, 10, -INFINITY);
}

static void test_the_limit_stays_between_1_and_the_cap(void **state)
{
	(void)state;
	struct limiter l;
	limiter_init(&l, 0, 5);
	assert_int_equal(limiter_value(&l), 1);
	limiter_init(&l, -7, 5);
	assert_int_equal(limiter_value(&l), 1);
	limiter_init(&l, 100, 5);
	assert_int_equal(limiter_value(&l), 5);
	limiter_init(&l, 20, 0); /* against the precondition: still a limit of 1 */
	assert_int_equal(limiter_value(&l), 1);

	const double latencies[] = { 0, -1, NAN, INFINITY, -INFINITY, 1e-300, 5e-324, 1, 1000, 1e6, 1e300, DBL_MAX };
	const uint64_t counts[] = { 0, 1, 1000, UINT64_MAX };
	const unsigned in_flight[] = { 0, 1, 5, 1000, UINT_MAX };
	const int caps[] = { 1, 2, 5, CAP, INT_MAX };
	uint32_t seed = 11;
	for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
		limiter_init(&l, LIMITER_INITIAL, caps[c]);
		for (int w = 0; w < 20000; w++) {
			seed = seed * 1664525u + 1013904223u;
			double latency = latencies[(seed >> 8) % (sizeof latencies / sizeof *latencies)];
			uint64_t count = counts[(seed >> 16) % (sizeof counts / sizeof *counts)];
			unsigned in = in_flight[(seed >> 24) % (sizeof in_flight / sizeof *in_flight)];
			int limit = limiter_update(&l, count, latency, in);
			assert_int_equal(limit, limiter_value(&l));
			assert_true(limit >= 1 && limit <= caps[c]);
		}
		/* Well-formed windows after all that still work. */
		struct server s = { .n = 4, .service_us = 1000, .seed = 1 };
		run(&l, &s, 100, 5, 0);
		assert_true(limiter_value(&l) >= 1 && limiter_value(&l) <= caps[c]);
	}
}

static void test_a_cap_of_1_holds_one_at_a_time(void **state)
{
	(void)state;
	struct server s = { .n = 16, .service_us = 1000, .seed = 2 };
	struct limiter l;
	limiter_init(&l, LIMITER_INITIAL, 1);
	for (int w = 0; w < 500; w++) {
		window(&l, &s, w < 250 ? 1000 : 1);
		assert_int_equal(limiter_value(&l), 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_overloaded_server_is_held_near_its_knee),
		cmocka_unit_test(test_lagging_and_noisy_windows_still_settle),
		cmocka_unit_test(test_an_unloaded_server_never_makes_its_clients_wait),
		cmocka_unit_test(test_the_minimum_latency_follows_the_server),
		cmocka_unit_test(test_a_sudden_overload_shrinks_the_limit_at_once),
		cmocka_unit_test(test_app_limited_windows_do_not_grow_the_limit),
		cmocka_unit_test(test_an_unused_limit_decays_and_grows_back),
		cmocka_unit_test(test_a_window_without_a_sample_changes_nothing),
		cmocka_unit_test(test_the_limit_stays_between_1_and_the_cap),
		cmocka_unit_test(test_a_cap_of_1_holds_one_at_a_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
