/* test_slab: lb/core/slab.c, objects of one size in blocks that go back to
 * the kernel once empty. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "slab.h"

static uint64_t test_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void test_objects_are_distinct_aligned_and_whole(void **state)
{
	(void)state;
	struct slab *s = slab_create(440, 16 * 1024);
	assert_non_null(s);
	enum { N = 200 };
	unsigned char *objects[N];
	for (size_t i = 0; i < N; i++) {
		objects[i] = slab_alloc(s);
		assert_non_null(objects[i]);
		assert_int_equal((uintptr_t)objects[i] % 16, 0);
		memset(objects[i], (int)i, 440);
	}
	assert_int_equal(slab_in_use(s), N);
	assert_true(slab_blocks(s) >= N * 440 / (16 * 1024)); /* several blocks */
	for (size_t i = 0; i < N; i++)
		for (size_t k = 0; k < 440; k++)
			assert_int_equal(objects[i][k], (unsigned char)i); /* nobody wrote over it */
	size_t blocks = slab_blocks(s);
	for (size_t i = 0; i < N; i++)
		slab_free(objects[i]);
	assert_int_equal(slab_in_use(s), 0);
	assert_int_equal(slab_blocks(s), blocks); /* empty, kept until trimmed */
	slab_trim(s);
	assert_int_equal(slab_blocks(s), blocks); /* emptied during this period */
	slab_trim(s);
	assert_int_equal(slab_blocks(s), 0); /* empty through a whole period: unmapped */
	slab_destroy(s);
}

/* Free one of the *nlive objects of 1000 bytes, after checking that it
 * still holds its tag; the last one takes its place. */
static void free_one_at_random(unsigned char **live, uint32_t *tag, size_t *nlive, uint64_t *rnd)
{
	size_t i = test_random(rnd) % *nlive;
	for (size_t k = 0; k < 1000; k += 97)
		assert_int_equal(live[i][k], (unsigned char)tag[i]);
	slab_free(live[i]);
	--*nlive;
	live[i] = live[*nlive];
	tag[i] = tag[*nlive];
}

/* A burst, then the burst leaves: blocks come and go with the objects. */
static void test_random_bursts_give_blocks_back(void **state)
{
	(void)state;
	struct slab *s = slab_create(1000, 8192);
	enum { MAX = 3000 };
	unsigned char **live = calloc(MAX, sizeof(*live));
	uint32_t *tag = calloc(MAX, sizeof(*tag));
	size_t nlive = 0;
	uint64_t rnd = 42;
	size_t peak_blocks = 0;
	for (int round = 0; round < 4; round++) {
		/* grow to MAX with some frees mixed in, then shrink to zero */
		while (nlive < MAX) {
			if (nlive > 0 && test_random(&rnd) % 4 == 0) {
				free_one_at_random(live, tag, &nlive, &rnd);
			} else {
				live[nlive] = slab_alloc(s);
				assert_non_null(live[nlive]);
				tag[nlive] = (uint32_t)test_random(&rnd);
				memset(live[nlive], (unsigned char)tag[nlive], 1000);
				nlive++;
			}
		}
		if (slab_blocks(s) > peak_blocks)
			peak_blocks = slab_blocks(s);
		assert_int_equal(slab_in_use(s), MAX);
		while (nlive > 0)
			free_one_at_random(live, tag, &nlive, &rnd);
		assert_int_equal(slab_in_use(s), 0);
		slab_trim(s);
		slab_trim(s);
		assert_int_equal(slab_blocks(s), 0);
	}
	print_message("peak blocks %zu for %d objects of 1000 bytes in 8 KiB blocks\n", peak_blocks, MAX);
	assert_true(peak_blocks >= MAX / 8 && peak_blocks <= MAX / 7 + 1); /* 8 KiB holds 7 */
	free(live);
	free(tag);
	slab_destroy(s);
}

static void test_free_goes_back_to_its_own_slab(void **state)
{
	(void)state;
	struct slab *a = slab_create(64, 4096), *b = slab_create(256, 4096);
	void *x = slab_alloc(a), *y = slab_alloc(b);
	assert_int_equal(slab_object_size(b), 256);
	slab_free(y);
	assert_int_equal(slab_in_use(a), 1);
	assert_int_equal(slab_in_use(b), 0);
	slab_free(x);
	slab_free(NULL);
	assert_int_equal(slab_in_use(a), 0);
	slab_destroy(a);
	slab_destroy(b);
	slab_destroy(NULL);
}

static void test_an_object_larger_than_the_block_gets_a_block_of_its_own(void **state)
{
	(void)state;
	struct slab *s = slab_create(10000, 4096);
	void *x = slab_alloc(s), *y = slab_alloc(s);
	assert_non_null(x);
	assert_non_null(y);
	memset(x, 1, 10000);
	memset(y, 2, 10000);
	assert_int_equal(slab_blocks(s), 2);
	slab_free(x);
	slab_free(y);
	slab_trim(s);
	slab_trim(s);
	assert_int_equal(slab_blocks(s), 0);
	slab_destroy(s);
}

/* A load that empties and refills a block between two trims keeps it: no
 * map, unmap and fresh page faults per request. */
static void test_a_block_reused_between_trims_stays_mapped(void **state)
{
	(void)state;
	struct slab *s = slab_create(4000, 4096); /* one object per block */
	void *kept = slab_alloc(s);
	for (int period = 0; period < 5; period++) {
		void *x = slab_alloc(s);
		assert_int_equal(slab_blocks(s), 2);
		slab_free(x); /* empty now, and reused next period */
		slab_trim(s);
		assert_int_equal(slab_blocks(s), 2);
	}
	slab_trim(s); /* the second block stayed empty through this period */
	assert_int_equal(slab_blocks(s), 1);
	slab_free(kept);
	slab_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_objects_are_distinct_aligned_and_whole),
		cmocka_unit_test(test_random_bursts_give_blocks_back),
		cmocka_unit_test(test_free_goes_back_to_its_own_slab),
		cmocka_unit_test(test_an_object_larger_than_the_block_gets_a_block_of_its_own),
		cmocka_unit_test(test_a_block_reused_between_trims_stays_mapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
