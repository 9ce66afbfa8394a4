/* Unit tests for health_policy: ejection backoff and limits, panic (SPEC 6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "health_policy.h"

static void test_first_ejection_has_multiplier_one(void **state)
{
	(void)state;
	assert_int_equal(health_backoff_multiplier(0, 0, 5000), 1);
	assert_int_equal(health_backoff_multiplier(0, 999999, 5000), 1);
}

static void test_repeated_ejections_back_off_up_to_the_cap(void **state)
{
	unsigned m = 0;
	(void)state;
	for (unsigned i = 1; i <= HEALTH_BACKOFF_MAX + 3; i++) {
		m = health_backoff_multiplier(m, 6000, 5000); /* ejected again 6 s later */
		assert_int_equal(m, i < HEALTH_BACKOFF_MAX ? i : HEALTH_BACKOFF_MAX);
	}
}

static void test_an_ejection_long_after_the_last_starts_afresh(void **state)
{
	(void)state;
	assert_int_equal(health_backoff_multiplier(4, 5000 * HEALTH_BACKOFF_WINDOW - 1, 5000), 5);
	assert_int_equal(health_backoff_multiplier(4, 5000 * HEALTH_BACKOFF_WINDOW, 5000), 1);
}

static void test_max_ejected_counts_servers_already_out(void **state)
{
	(void)state;
	/* 50% of 3: one server may be out, not two. */
	assert_true(health_eject_allowed(0, 3, 50));
	assert_false(health_eject_allowed(1, 3, 50));
	/* 50% of 10: five. */
	assert_true(health_eject_allowed(4, 10, 50));
	assert_false(health_eject_allowed(5, 10, 50));
	/* 100%: every one. */
	assert_true(health_eject_allowed(2, 3, 100));
	assert_false(health_eject_allowed(3, 3, 100));
}

static void test_max_ejected_rounds_down_and_zero_is_off(void **state)
{
	(void)state;
	assert_false(health_eject_allowed(0, 1, 50)); /* half of one server is none */
	assert_true(health_eject_allowed(0, 2, 50));
	assert_false(health_eject_allowed(0, 3, 10));
	assert_true(health_eject_allowed(0, 10, 10));
	assert_false(health_eject_allowed(0, 3, 0)); /* 0% = no passive ejection */
	assert_false(health_eject_allowed(0, 0, 50));
}

static void test_panic_below_the_threshold_only(void **state)
{
	(void)state;
	assert_false(health_panic(3, 3, 50));
	assert_false(health_panic(2, 3, 50));
	assert_true(health_panic(1, 3, 50));
	assert_true(health_panic(0, 3, 50));
	assert_false(health_panic(2, 4, 50)); /* exactly half is not below it */
	assert_true(health_panic(1, 4, 50));
	assert_true(health_panic(9, 10, 100));
}

static void test_panic_off_at_zero_and_without_servers(void **state)
{
	(void)state;
	assert_false(health_panic(0, 3, 0));
	assert_false(health_panic(0, 0, 50));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_ejection_has_multiplier_one),
		cmocka_unit_test(test_repeated_ejections_back_off_up_to_the_cap),
		cmocka_unit_test(test_an_ejection_long_after_the_last_starts_afresh),
		cmocka_unit_test(test_max_ejected_counts_servers_already_out),
		cmocka_unit_test(test_max_ejected_rounds_down_and_zero_is_off),
		cmocka_unit_test(test_panic_below_the_threshold_only),
		cmocka_unit_test(test_panic_off_at_zero_and_without_servers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
