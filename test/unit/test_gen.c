/*
 * test_gen: listening sockets across generations (lb/runtime/gen.h), with
 * real sockets on 127.0.0.1 and no event loop: a bind that stays keeps its
 * sockets, reuseport gives one per worker, and a listener removed and added
 * again before the generation that had it retired takes its sockets back
 * instead of failing with EADDRINUSE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gen.h"
#include "resolve.h"

/* A port free on 127.0.0.1 right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* A generation of the configuration with listeners on `ports` (0 ends it). */
static struct gen *build(const int *ports, bool reuseport, struct gen_lineage alive, int workers)
{
	char text[2048];
	int n = snprintf(text, sizeof(text), "global:\n  reuseport: %s\nlisteners:\n", reuseport ? "true" : "false");
	for (int i = 0; ports[i] != 0; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      "  - name: l%d\n    bind: \"127.0.0.1:%d\"\n    mode: tcp\n    backend: app\n", i,
			      ports[i]);
	snprintf(text + n, sizeof(text) - (size_t)n,
		 "backends:\n  - name: app\n    health_check: {type: none}\n    servers: [{addr: \"127.0.0.1:9\"}]\n");
	struct lb_config *cfg = NULL;
	struct config_errors errs = { 0 };
	assert_int_equal(config_load_string("gen.yaml", text, strlen(text), &cfg, &errs), 0);
	config_errors_free(&errs);
	struct resolution res;
	assert_int_equal(resolve_config_literals(cfg, &res), 0);
	char err[256] = "";
	struct gen *g = gen_create(cfg, &res, alive, workers, err, sizeof(err));
	resolution_free(&res);
	if (g == NULL)
		print_message("gen_create: %s\n", err);
	return g;
}

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void test_reuseport_gives_a_socket_per_worker_and_a_kept_bind_keeps_them(void **state)
{
	(void)state;
	int ports[] = { free_port(), 0 };
	struct gen *first = build(ports, true, (struct gen_lineage){ 0 }, 3);
	assert_non_null(first);
	assert_int_equal(first->listeners[0].nfds, 3);
	for (int w = 0; w < 3; w++)
		assert_int_equal(gen_listener_fd(&first->listeners[0], w), first->listeners[0].fds[w]);

	const struct gen *alive[] = { first };
	struct gen *second = build(ports, true, (struct gen_lineage){ alive, 1 }, 3);
	assert_non_null(second);
	assert_int_equal(second->listeners[0].nfds, 3);
	assert_memory_equal(second->listeners[0].fds, first->listeners[0].fds, 3 * sizeof(int));

	/* first retires: its sockets live on in second. */
	const struct gen *newer[] = { second };
	gen_close_dropped_sockets(first, (struct gen_lineage){ newer, 1 });
	for (int w = 0; w < 3; w++)
		assert_true(is_open(second->listeners[0].fds[w]));
	gen_release(first);
	int kept[3];
	memcpy(kept, second->listeners[0].fds, sizeof(kept));
	gen_close_dropped_sockets(second, (struct gen_lineage){ 0 });
	gen_release(second);
	for (int w = 0; w < 3; w++)
		assert_false(is_open(kept[w]));
}

static void test_without_reuseport_every_worker_shares_one_socket(void **state)
{
	(void)state;
	int ports[] = { free_port(), 0 };
	struct gen *g = build(ports, false, (struct gen_lineage){ 0 }, 4);
	assert_non_null(g);
	assert_int_equal(g->listeners[0].nfds, 1);
	for (int w = 0; w < 4; w++)
		assert_int_equal(gen_listener_fd(&g->listeners[0], w), g->listeners[0].fds[0]);
	gen_close_dropped_sockets(g, (struct gen_lineage){ 0 });
	gen_release(g);
}

/* Two quick reloads: the second generation drops listener B, the third
 * adds it again while the first (which still has B's sockets open, its
 * workers not yet moved on) is alive. Both with and without reuseport. */
static void test_a_listener_removed_and_added_again_takes_back_its_sockets(void **state)
{
	(void)state;
	for (int reuseport = 0; reuseport <= 1; reuseport++) {
		int a = free_port(), b = free_port();
		int both[] = { a, b, 0 }, only_a[] = { a, 0 };
		struct gen *first = build(both, reuseport, (struct gen_lineage){ 0 }, 2);
		assert_non_null(first);
		const struct gen *one[] = { first };
		struct gen *second = build(only_a, reuseport, (struct gen_lineage){ one, 1 }, 2);
		assert_non_null(second);
		const struct gen *two[] = { first, second };
		struct gen *third = build(both, reuseport, (struct gen_lineage){ two, 2 }, 2);
		assert_non_null(third); /* not EADDRINUSE */
		assert_int_equal(third->listeners[1].nfds, first->listeners[1].nfds);
		assert_memory_equal(third->listeners[1].fds, first->listeners[1].fds,
				    (size_t)first->listeners[1].nfds * sizeof(int));

		/* first and second retire: B's sockets stay open for third. */
		const struct gen *after_first[] = { second, third }, *after_second[] = { third };
		gen_close_dropped_sockets(first, (struct gen_lineage){ after_first, 2 });
		gen_close_dropped_sockets(second, (struct gen_lineage){ after_second, 1 });
		gen_release(first);
		gen_release(second);
		for (int k = 0; k < third->listeners[1].nfds; k++)
			assert_true(is_open(third->listeners[1].fds[k]));
		gen_close_dropped_sockets(third, (struct gen_lineage){ 0 });
		gen_release(third);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuseport_gives_a_socket_per_worker_and_a_kept_bind_keeps_them),
		cmocka_unit_test(test_without_reuseport_every_worker_shares_one_socket),
		cmocka_unit_test(test_a_listener_removed_and_added_again_takes_back_its_sockets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
