/*
 * Unit tests of lb/event/relay.c: backpressure measured after the write.
 * Real conns on socket pairs, one event base (never dispatched: the
 * relay's calls are what is tested).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "relay.h"

static void on_event(struct conn *c, void *arg)
{
	(void)c;
	(void)arg;
}

/* A conn on one end of a socket pair with room for `buffer` bytes each
 * way; *peer is the other end. */
static struct conn *open_pair(struct event_base *base, int buffer, int *peer)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
	}
	struct conn *c = conn_open(base, sv[0], on_event, NULL);
	assert_non_null(c);
	*peer = sv[1];
	return c;
}

/* A burst above the high water that the kernel takes whole leaves nothing
 * queued: the source stays readable (else no write event would ever come
 * to resume it, and the relay would stall). */
static void test_burst_taken_whole_keeps_reading(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	int src_peer, dst_peer;
	struct conn *src = open_pair(base, 4 << 20, &src_peer);
	struct conn *dst = open_pair(base, 4 << 20, &dst_peer);
	size_t burst = RELAY_HIGH_WATER + 64 * 1024;
	char *bytes = calloc(1, burst);
	assert_non_null(bytes);
	evbuffer_add(src->in, bytes, burst);

	assert_int_equal(relay_move(src, dst), burst);
	assert_int_equal(conn_unsent(dst), 0);
	assert_true(src->want_read);

	free(bytes);
	conn_free(src);
	conn_free(dst);
	close(src_peer);
	close(dst_peer);
	conn_thread_exit();
	event_base_free(base);
}

/* What the kernel refuses does count: above the high water, src pauses;
 * once the peer has read and the output drained below the low water, it
 * reads again. */
static void test_refused_bytes_pause_then_resume(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	int src_peer, dst_peer;
	struct conn *src = open_pair(base, 4 << 20, &src_peer);
	struct conn *dst = open_pair(base, 64 * 1024, &dst_peer);
	size_t burst = 2 * RELAY_HIGH_WATER;
	char *bytes = calloc(1, burst);
	assert_non_null(bytes);
	evbuffer_add(src->in, bytes, burst);

	relay_move(src, dst);
	assert_true(conn_unsent(dst) >= RELAY_HIGH_WATER);
	assert_false(src->want_read);

	/* the peer reads everything; the conn writes more when the loop says
	 * it may (its write event), then the owner looks again */
	for (int round = 0; round < 1000 && conn_unsent(dst) > 0; round++) {
		while (read(dst_peer, bytes, burst) > 0)
			;
		event_base_loop(base, EVLOOP_NONBLOCK);
		relay_backpressure(src, dst);
	}
	assert_int_equal(conn_unsent(dst), 0);
	assert_true(src->want_read);

	free(bytes);
	conn_free(src);
	conn_free(dst);
	close(src_peer);
	close(dst_peer);
	conn_thread_exit();
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_taken_whole_keeps_reading),
		cmocka_unit_test(test_refused_bytes_pause_then_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
