/*
 * Unit tests of lb/core/ticket_keys.c: the session ticket keys of a file,
 * and the rotation of the process's random keys (tls_tickets.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ticket_keys.h"

#define PERIOD (12 * 3600)

static struct ticket_key key_named(unsigned char c)
{
	struct ticket_key k;
	memset(&k, c, sizeof(k));
	return k;
}

static void test_a_file_holds_whole_keys(void **state)
{
	(void)state;
	unsigned char bytes[3 * TICKET_KEY_BYTES + 1];
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)i;
	struct ticket_keys k;
	struct ticket_key found;

	assert_int_equal(ticket_keys_parse(&k, bytes, 2 * TICKET_KEY_BYTES), 0);
	assert_int_equal(k.count, 2);
	assert_memory_equal(k.keys[0].name, bytes, 16);
	assert_memory_equal(k.keys[0].hmac, bytes + 16, 32);
	assert_memory_equal(k.keys[0].aes, bytes + 48, 32);
	assert_memory_equal(k.keys[1].name, bytes + TICKET_KEY_BYTES, 16);
	assert_int_equal(ticket_keys_find(&k, bytes, 0, 0, &found), 1); /* the first encrypts */
	assert_int_equal(ticket_keys_find(&k, bytes + TICKET_KEY_BYTES, 0, 0, &found), 2);
	assert_memory_equal(found.aes, bytes + TICKET_KEY_BYTES + 48, 32);
	assert_int_equal(ticket_keys_find(&k, bytes + 1, 0, 0, &found), 0);

	assert_int_equal(ticket_keys_parse(&k, bytes, 0), -1);
	assert_int_equal(ticket_keys_parse(&k, bytes, 48), -1); /* a 48-byte key is not one of lb's */
	assert_int_equal(ticket_keys_parse(&k, bytes, TICKET_KEY_BYTES + 1), -1);
	unsigned char many[(TICKET_KEYS_MAX + 1) * TICKET_KEY_BYTES] = { 0 };
	assert_int_equal(ticket_keys_parse(&k, many, TICKET_KEYS_MAX * TICKET_KEY_BYTES), 0);
	assert_int_equal(ticket_keys_parse(&k, many, sizeof(many)), -1);
}

/* A fresh key every period; the one before still decrypts (its tickets
 * are renewed), the one before that is gone. */
static void test_rotation_keeps_the_previous_key_one_period(void **state)
{
	(void)state;
	struct ticket_keys k = { .count = 0 };
	struct ticket_key a = key_named('a'), b = key_named('b'), c = key_named('c'), found;

	assert_true(ticket_keys_due(&k, 1000, PERIOD)); /* none yet */
	ticket_keys_rotate(&k, &a, 1000);
	assert_false(ticket_keys_due(&k, 1000 + PERIOD - 1, PERIOD));
	assert_true(ticket_keys_due(&k, 1000 + PERIOD, PERIOD));
	assert_int_equal(ticket_keys_find(&k, a.name, 1000 + PERIOD - 1, PERIOD, &found), 1);

	ticket_keys_rotate(&k, &b, 1000 + PERIOD);
	uint64_t t = 1000 + PERIOD + 1;
	assert_int_equal(ticket_keys_find(&k, b.name, t, PERIOD, &found), 1);
	assert_int_equal(ticket_keys_find(&k, a.name, t, PERIOD, &found), 2);
	assert_memory_equal(&found, &a, sizeof(a));

	ticket_keys_rotate(&k, &c, 1000 + 2 * PERIOD);
	t = 1000 + 2 * PERIOD + 1;
	assert_int_equal(k.count, 2);
	assert_int_equal(ticket_keys_find(&k, c.name, t, PERIOD, &found), 1);
	assert_int_equal(ticket_keys_find(&k, b.name, t, PERIOD, &found), 2);
	assert_int_equal(ticket_keys_find(&k, a.name, t, PERIOD, &found), 0);
	/* a clock that went back: a fresh key rather than one that never expires */
	assert_true(ticket_keys_due(&k, 10, PERIOD));
}

/* Rotations happen when tickets are issued: without any, keys still age
 * out (the previous a period after its replacement, the current after
 * two), so no key decrypts for ever. */
static void test_keys_expire_without_rotations(void **state)
{
	(void)state;
	struct ticket_keys k = { .count = 0 };
	struct ticket_key a = key_named('a'), b = key_named('b'), found;

	ticket_keys_rotate(&k, &a, 0);
	ticket_keys_rotate(&k, &b, PERIOD);
	assert_int_equal(ticket_keys_find(&k, a.name, 2 * PERIOD - 1, PERIOD, &found), 2);
	assert_int_equal(ticket_keys_find(&k, a.name, 2 * PERIOD, PERIOD, &found), 0);
	assert_int_equal(ticket_keys_find(&k, b.name, 3 * PERIOD - 1, PERIOD, &found), 1);
	assert_int_equal(ticket_keys_find(&k, b.name, 3 * PERIOD, PERIOD, &found), 0);
	assert_int_equal(ticket_keys_find(&k, b.name, PERIOD - 1, PERIOD, &found), 0); /* clock went back */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_file_holds_whole_keys),
		cmocka_unit_test(test_rotation_keeps_the_previous_key_one_period),
		cmocka_unit_test(test_keys_expire_without_rotations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
