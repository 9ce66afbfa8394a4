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

/* Two conns on socket pairs, src's input holding `burst` bytes to relay to
 * dst, whose socket takes about dst_buffer bytes at once. */
struct relay_case {
	struct event_base *base;
	struct conn *src, *dst;
	int src_peer, dst_peer;
	char *bytes;
	size_t burst;
};

static void case_start(struct relay_case *rc, size_t burst, int dst_buffer)
{
	rc->base = event_base_new();
	assert_non_null(rc->base);
	rc->src = open_pair(rc->base, 4 << 20, &rc->src_peer);
	rc->dst = open_pair(rc->base, dst_buffer, &rc->dst_peer);
	rc->burst = burst;
	rc->bytes = calloc(1, burst);
	assert_non_null(rc->bytes);
	evbuffer_add(rc->src->in, rc->bytes, burst);
}

static void case_finish(struct relay_case *rc)
{
	free(rc->bytes);
	conn_free(rc->src);
	conn_free(rc->dst);
	close(rc->src_peer);
	close(rc->dst_peer);
	conn_thread_exit();
	event_base_free(rc->base);
}

/* A burst above the high water that the kernel takes whole leaves nothing
 * queued: the source stays readable (else no write event would ever come
 * to resume it, and the relay would stall). */
static void test_burst_taken_whole_keeps_reading(void **state)
{
	(void)state;
	struct relay_case rc;
	case_start(&rc, RELAY_HIGH_WATER + 64 * 1024, 4 << 20);

	assert_int_equal(relay_move(rc.src, rc.dst), rc.burst);
	assert_int_equal(conn_unsent(rc.dst), 0);
	assert_true(rc.src->want_read);
	case_finish(&rc);
}

/* What the kernel refuses does count: above the high water, src pauses;
 * once the peer has read and the output drained below the low water, it
 * reads again. */
static void test_refused_bytes_pause_then_resume(void **state)
{
	(void)state;
	struct relay_case rc;
	case_start(&rc, 2 * RELAY_HIGH_WATER, 64 * 1024);

	relay_move(rc.src, rc.dst);
	assert_true(conn_unsent(rc.dst) >= RELAY_HIGH_WATER);
	assert_false(rc.src->want_read);

	/* the peer reads everything; the conn writes more when the loop says
	 * it may (its write event), then the owner looks again */
	for (int round = 0; round < 1000 && conn_unsent(rc.dst) > 0; round++) {
		while (read(rc.dst_peer, rc.bytes, rc.burst) > 0)
			;
		event_base_loop(rc.base, EVLOOP_NONBLOCK);
		relay_backpressure(rc.src, rc.dst);
	}
	assert_int_equal(conn_unsent(rc.dst), 0);
	assert_true(rc.src->want_read);
	case_finish(&rc);
}

/* A quiet tunnel gives its buffers back on both sides (tcp.c); the next
 * bytes find their way: relay_move takes dst's back, and src's came back
 * with its read. */
static void test_a_released_side_takes_its_buffers_back(void **state)
{
	(void)state;
	struct relay_case rc;
	case_start(&rc, 1000, 4 << 20);
	relay_move(rc.src, rc.dst);
	char got[1000];
	assert_int_equal(read(rc.dst_peer, got, sizeof(got)), 1000);
	conn_buffers_release(rc.src);
	conn_buffers_release(rc.dst);
	assert_null(rc.src->in);
	assert_null(rc.dst->out);
	assert_int_equal(relay_move(rc.src, rc.dst), 0); /* nothing, and nothing breaks */
	assert_null(rc.dst->out);

	assert_int_equal(write(rc.src_peer, "twelve bytes", 12), 12);
	conn_read_now(rc.src);
	assert_int_equal(conn_input_length(rc.src), 12);
	assert_int_equal(relay_move(rc.src, rc.dst), 12);
	assert_false(rc.dst->error);
	assert_int_equal(read(rc.dst_peer, got, sizeof(got)), 12);
	assert_memory_equal(got, "twelve bytes", 12);
	assert_false(relay_pass_half_close(rc.src, rc.dst));
	case_finish(&rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_taken_whole_keeps_reading),
		cmocka_unit_test(test_refused_bytes_pause_then_resume),
		cmocka_unit_test(test_a_released_side_takes_its_buffers_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
