/* test_evmem: lb/event/evmem.c, libevent's per-descriptor entries in an
 * address range of their own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "evmem.h"

static void on_nothing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* What the module is for: every descriptor number a base sees costs it one
 * entry, and those entries come from the range, not from the heap. */
static void test_a_base_keeps_its_descriptor_entries_in_the_range(void **state)
{
	(void)state;
	enum { PAIRS = 100 };
	int fds[PAIRS][2];
	for (int i = 0; i < PAIRS; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
	size_t before = evmem_slots_in_use();
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct event *events[PAIRS];
	for (int i = 0; i < PAIRS; i++) {
		events[i] = event_new(base, fds[i][0], EV_READ | EV_PERSIST, on_nothing, NULL);
		assert_non_null(events[i]);
		assert_int_equal(event_add(events[i], NULL), 0);
	}
	assert_true(evmem_slots_in_use() >= before + PAIRS);
	assert_true(evmem_bytes_committed() >= PAIRS * EVMEM_SMALL);
	for (int i = 0; i < PAIRS; i++)
		event_free(events[i]);
	event_base_free(base);
	assert_int_equal(evmem_slots_in_use(), before); /* all given back with the base */
	for (int i = 0; i < PAIRS; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

static void test_small_from_the_range_large_from_malloc(void **state)
{
	(void)state;
	size_t before = evmem_slots_in_use();
	char *small = evmem_malloc(EVMEM_SMALL), *tiny = evmem_malloc(1), *large = evmem_malloc(EVMEM_SMALL + 1);
	assert_non_null(small);
	assert_non_null(tiny);
	assert_non_null(large);
	assert_true(evmem_owns(small));
	assert_true(evmem_owns(tiny));
	assert_false(evmem_owns(large));
	assert_ptr_not_equal(small, tiny);
	assert_true((uintptr_t)small % 8 == 0 && (uintptr_t)tiny % 8 == 0);
	assert_int_equal(evmem_slots_in_use(), before + 2);
	memset(small, 0xa5, EVMEM_SMALL);
	memset(tiny, 0x5a, 1);
	memset(large, 0x11, EVMEM_SMALL + 1);
	for (int k = 0; k < EVMEM_SMALL; k++)
		assert_int_equal((unsigned char)small[k], 0xa5); /* the neighbour did not write over it */
	evmem_free(large);
	evmem_free(tiny);
	/* A freed slot is handed out again. */
	char *again = evmem_malloc(8);
	assert_ptr_equal(again, tiny);
	evmem_free(again);
	evmem_free(small);
	assert_int_equal(evmem_slots_in_use(), before);
}

static void test_realloc_moves_out_of_the_range_when_grown(void **state)
{
	(void)state;
	size_t before = evmem_slots_in_use();
	char *p = evmem_realloc(NULL, 12);
	assert_true(evmem_owns(p));
	memcpy(p, "twelve bytes", 12);
	assert_ptr_equal(evmem_realloc(p, EVMEM_SMALL), p); /* still fits its slot */
	char *grown = evmem_realloc(p, 100);
	assert_non_null(grown);
	assert_false(evmem_owns(grown));
	assert_memory_equal(grown, "twelve bytes", 12);
	assert_int_equal(evmem_slots_in_use(), before); /* the slot went back */
	char *larger = evmem_realloc(grown, 1000); /* plain realloc */
	assert_non_null(larger);
	assert_memory_equal(larger, "twelve bytes", 12);
	evmem_free(larger);
	char *q = evmem_malloc(4);
	assert_null(evmem_realloc(q, 0)); /* realloc to nothing frees */
	assert_int_equal(evmem_slots_in_use(), before);
	evmem_free(NULL);
}

/* What libevent returns for the caller to free may be a slot: evmem_free
 * takes it back (free() would abort: lb/admin/admin.c decodes paths so). */
static void test_memory_libevent_hands_out_goes_back_through_evmem_free(void **state)
{
	(void)state;
	size_t before = evmem_slots_in_use();
	char *short_one = evhttp_uridecode("/backends/%41", 0, NULL);
	char *long_one = evhttp_uridecode("/backends/a-long-name", 0, NULL);
	assert_string_equal(short_one, "/backends/A");
	assert_string_equal(long_one, "/backends/a-long-name");
	assert_true(evmem_owns(short_one));
	assert_false(evmem_owns(long_one));
	evmem_free(short_one);
	evmem_free(long_one);
	assert_int_equal(evmem_slots_in_use(), before);
}

/* Every worker's base allocates through it at once. */
enum { ROUNDS = 20000, HELD = 64 };

static void *churn(void *arg)
{
	uintptr_t me = (uintptr_t)arg;
	char *held[HELD] = { 0 };
	for (unsigned i = 0; i < ROUNDS; i++) {
		unsigned k = (i * 7919u + (unsigned)me) % HELD;
		if (held[k] != NULL) {
			for (int b = 0; b < EVMEM_SMALL; b++)
				if (held[k][b] != (char)me)
					return (void *)1; /* another thread wrote into a slot of mine */
			evmem_free(held[k]);
		}
		held[k] = evmem_malloc(EVMEM_SMALL);
		if (held[k] == NULL)
			return (void *)1;
		memset(held[k], (char)me, EVMEM_SMALL);
	}
	for (int k = 0; k < HELD; k++)
		evmem_free(held[k]);
	return NULL;
}

static void test_threads_never_share_a_slot(void **state)
{
	(void)state;
	size_t before = evmem_slots_in_use();
	pthread_t threads[4];
	for (uintptr_t t = 0; t < 4; t++)
		assert_int_equal(pthread_create(&threads[t], NULL, churn, (void *)(t + 1)), 0);
	for (int t = 0; t < 4; t++) {
		void *result;
		assert_int_equal(pthread_join(threads[t], &result), 0);
		assert_null(result);
	}
	assert_int_equal(evmem_slots_in_use(), before);
}

int main(void)
{
	if (evmem_install() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_base_keeps_its_descriptor_entries_in_the_range),
		cmocka_unit_test(test_small_from_the_range_large_from_malloc),
		cmocka_unit_test(test_realloc_moves_out_of_the_range_when_grown),
		cmocka_unit_test(test_memory_libevent_hands_out_goes_back_through_evmem_free),
		cmocka_unit_test(test_threads_never_share_a_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
