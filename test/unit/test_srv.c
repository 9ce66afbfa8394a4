/* Unit tests of lb/core/srv.c: which SRV records are servers, with what weight. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "srv.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_only_the_lowest_priority_is_used(void **state)
{
	(void)state;
	const struct srv_record r[] = {
		{ "b.example", 20, 5, 80 },
		{ "a.example", 10, 3, 80 },
		{ "c.example", 10, 1, 81 },
	};
	int w[N(r)];
	assert_int_equal(srv_select(r, N(r), w), 2);
	assert_int_equal(w[0], -1);
	assert_int_equal(w[1], 3);
	assert_int_equal(w[2], 1);
}

static void test_weights_above_256_are_scaled_keeping_ratios(void **state)
{
	(void)state;
	const struct srv_record r[] = {
		{ "a", 0, 65535, 80 },
		{ "b", 0, 32768, 80 },
		{ "c", 0, 1, 80 }, /* would round to 0: stays 1 */
		{ "d", 0, 0, 80 },
	};
	int w[N(r)];
	assert_int_equal(srv_select(r, N(r), w), 4);
	assert_int_equal(w[0], 256);
	assert_int_equal(w[1], 128);
	assert_int_equal(w[2], 1);
	assert_int_equal(w[3], 0); /* 0 beside others: no new requests */
}

static void test_all_zero_weights_share_equally(void **state)
{
	(void)state;
	const struct srv_record r[] = { { "a", 1, 0, 80 }, { "b", 1, 0, 80 } };
	int w[N(r)];
	assert_int_equal(srv_select(r, N(r), w), 2);
	assert_int_equal(w[0], 1);
	assert_int_equal(w[1], 1);
}

static void test_small_weights_are_kept_as_they_are(void **state)
{
	(void)state;
	const struct srv_record r[] = { { "a", 0, 256, 80 }, { "b", 0, 100, 80 } };
	int w[N(r)];
	assert_int_equal(srv_select(r, N(r), w), 2);
	assert_int_equal(w[0], 256);
	assert_int_equal(w[1], 100);
}

static void test_a_dot_target_offers_nothing(void **state)
{
	(void)state;
	const struct srv_record dot[] = { { ".", 0, 0, 0 } };
	int w[1];
	assert_int_equal(srv_select(dot, 1, w), 0);
	assert_int_equal(w[0], -1);
	/* and does not hide real targets of a higher priority value */
	const struct srv_record mixed[] = { { "", 0, 1, 80 }, { "a", 5, 2, 80 } };
	int w2[2];
	assert_int_equal(srv_select(mixed, 2, w2), 1);
	assert_int_equal(w2[0], -1);
	assert_int_equal(w2[1], 2);
	assert_int_equal(srv_select(mixed, 0, w2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_the_lowest_priority_is_used),
		cmocka_unit_test(test_weights_above_256_are_scaled_keeping_ratios),
		cmocka_unit_test(test_all_zero_weights_share_equally),
		cmocka_unit_test(test_small_weights_are_kept_as_they_are),
		cmocka_unit_test(test_a_dot_target_offers_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
