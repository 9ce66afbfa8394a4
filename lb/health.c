/* health: active and passive health checks. See health.h. */
#include "health.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "netutil.h"

#define STATUS_LINE_MAX 256

/* One server's checker. Owned by the checker list; control thread only. */
struct checker {
	struct checker *next;
	struct server_state *state; /* a reference */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char backend[128];
	struct cfg_health cfg; /* copy; path and host point into the strings below */
	char path[1024];
	char host[256];
	uint64_t cooldown_ms;
	struct event_base *base;
	struct event *timer; /* next probe, or this probe's timeout */
	struct bufferevent *probe; /* NULL between probes */
	int successes, failures; /* in a row */
	char last_check[128];
	bool seen; /* still in the current generation (during health_sync) */
};

static struct checker *checkers;

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void checker_schedule(struct checker *c, uint64_t ms);

static void probe_end(struct checker *c, bool ok, const char *why)
{
	if (c->probe != NULL) {
		bufferevent_free(c->probe);
		c->probe = NULL;
	}
	snprintf(c->last_check, sizeof(c->last_check), "%s", ok ? "ok" : why);
	bool up = atomic_load(&c->state->up);
	if (ok) {
		c->failures = 0;
		bool cooling = monotonic_ms() < atomic_load(&c->state->passive_down_until_ms);
		/* Successes count towards rise only once the server is down
		 * and out of its passive cooldown. */
		c->successes = up || cooling ? 0 : c->successes + 1;
		if (!up && !cooling && c->successes >= c->cfg.rise) {
			atomic_store(&c->state->consecutive_failures, 0);
			atomic_store(&c->state->up, true);
			log_info("server %s/%s up (%d passed checks)", c->backend, c->state->addr, c->successes);
		}
	} else {
		c->successes = 0;
		c->failures++;
		if (up && c->failures >= c->cfg.fall) {
			atomic_store(&c->state->up, false);
			log_warn("server %s/%s down (%d failed checks: %s)", c->backend, c->state->addr, c->failures,
				 why);
		}
	}
	checker_schedule(c, c->cfg.interval_ms);
}

/* "HTTP/1.1 200 OK\r\n" at the front of the input: the status, or -1 when
 * not complete yet, or 0 when it is not a status line. */
static int read_status(struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(len < STATUS_LINE_MAX ? len : STATUS_LINE_MAX));
	const char *eol = buf ? memchr(buf, '\n', len < STATUS_LINE_MAX ? len : STATUS_LINE_MAX) : NULL;
	if (eol == NULL)
		return len >= STATUS_LINE_MAX ? 0 : -1;
	int status = 0;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' || sscanf(buf + 9, "%3d", &status) != 1)
		return 0;
	return status;
}

static void on_probe_read(struct bufferevent *bev, void *arg)
{
	struct checker *c = arg;
	int status = read_status(bufferevent_get_input(bev));
	char why[64];

	if (status < 0)
		return;
	if (status == 0) {
		probe_end(c, false, "invalid response");
		return;
	}
	if (status < c->cfg.expect_min || status > c->cfg.expect_max) {
		snprintf(why, sizeof(why), "status %d", status);
		probe_end(c, false, why);
		return;
	}
	probe_end(c, true, NULL);
}

static void on_probe_event(struct bufferevent *bev, short what, void *arg)
{
	struct checker *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->cfg.type == CHECK_TCP) {
			probe_end(c, true, NULL);
			return;
		}
		const char *host = c->host[0] ? c->host : c->state->addr;
		evbuffer_add_printf(bufferevent_get_output(bev),
				    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lb-health-check\r\n"
				    "Connection: close\r\n\r\n",
				    c->path, host);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	if (what & BEV_EVENT_EOF)
		probe_end(c, false, "closed without a status line");
	else
		probe_end(c, false, err ? evutil_socket_error_to_string(err) : "connection error");
}

static void probe_start(struct checker *c)
{
	c->probe = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->probe == NULL) {
		probe_end(c, false, "out of memory");
		return;
	}
	bufferevent_setcb(c->probe, on_probe_read, NULL, on_probe_event, c);
	struct timeval tv = netutil_timeval_ms(c->cfg.timeout_ms);
	event_add(c->timer, &tv);
	if (bufferevent_socket_connect(c->probe, (struct sockaddr *)&c->addr, (int)c->addr_len) < 0)
		probe_end(c, false, strerror(errno));
}

static void on_checker_timer(evutil_socket_t fd, short what, void *arg)
{
	struct checker *c = arg;
	(void)fd;
	(void)what;
	if (c->probe != NULL) {
		probe_end(c, false, "timeout");
		return;
	}
	if (c->cfg.type == CHECK_NONE) {
		/* Only passive checks: back after the cooldown. */
		if (!atomic_load(&c->state->up) && monotonic_ms() >= atomic_load(&c->state->passive_down_until_ms)) {
			atomic_store(&c->state->consecutive_failures, 0);
			atomic_store(&c->state->up, true);
			log_info("server %s/%s up (passive cooldown over)", c->backend, c->state->addr);
		}
		checker_schedule(c, c->cooldown_ms > 1000 ? 1000 : c->cooldown_ms + 1);
		return;
	}
	probe_start(c);
}

static void checker_schedule(struct checker *c, uint64_t ms)
{
	struct timeval tv = netutil_timeval_ms(ms);
	event_add(c->timer, &tv);
}

static void checker_configure(struct checker *c, const struct gen_backend *b, const struct gen_server *s)
{
	snprintf(c->backend, sizeof(c->backend), "%s", b->cfg->name);
	c->cfg = b->cfg->health;
	snprintf(c->path, sizeof(c->path), "%s", b->cfg->health.path);
	snprintf(c->host, sizeof(c->host), "%s", b->cfg->health.host);
	c->cfg.path = c->path;
	c->cfg.host = c->host;
	c->cooldown_ms = b->cfg->passive.cooldown_ms;
	memcpy(&c->addr, &s->sockaddr, s->sockaddr_len);
	c->addr_len = s->sockaddr_len;
}

static void checker_free(struct checker *c)
{
	if (c->probe)
		bufferevent_free(c->probe);
	if (c->timer)
		event_free(c->timer);
	server_state_release(c->state);
	free(c);
}

static struct checker *checker_find(const struct server_state *state)
{
	for (struct checker *c = checkers; c != NULL; c = c->next)
		if (c->state == state)
			return c;
	return NULL;
}

int health_sync(struct event_base *base, const struct gen *g)
{
	bool first = checkers == NULL;
	size_t total = 0, n = 0;

	for (struct checker *c = checkers; c != NULL; c = c->next)
		c->seen = false;
	for (size_t b = 0; b < g->nbackends; b++)
		total += g->backends[b].nservers;
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++, n++) {
			struct checker *c = checker_find(gb->servers[i].state);
			if (c != NULL) {
				c->seen = true;
				checker_configure(c, gb, &gb->servers[i]); /* the new interval etc. */
				continue;
			}
			c = calloc(1, sizeof(*c));
			if (c == NULL)
				return -1;
			c->state = server_state_acquire(gb->servers[i].state);
			c->base = base;
			c->seen = true;
			c->timer = evtimer_new(base, on_checker_timer, c);
			if (c->timer == NULL) {
				checker_free(c);
				return -1;
			}
			checker_configure(c, gb, &gb->servers[i]);
			c->next = checkers;
			checkers = c;
			/* At start, spread the first probes over one interval;
			 * a server added by a reload is probed at once. */
			uint64_t delay = first && total > 0 ? c->cfg.interval_ms * n / total : 0;
			if (c->cfg.type == CHECK_NONE)
				delay = 1000;
			checker_schedule(c, delay);
		}
	}
	/* Servers gone from the configuration: their checks stop. */
	struct checker **link = &checkers;
	while (*link != NULL) {
		struct checker *c = *link;
		if (!c->seen) {
			*link = c->next;
			checker_free(c);
		} else {
			link = &c->next;
		}
	}
	return 0;
}

void health_stop_all(void)
{
	while (checkers != NULL) {
		struct checker *c = checkers;
		checkers = c->next;
		checker_free(c);
	}
}

const char *health_last_check(const struct server_state *state)
{
	const struct checker *c = checker_find(state);
	return c ? c->last_check : "";
}

void health_note_failure(struct server_state *state, const struct cfg_backend *cfg, const char *why)
{
	atomic_fetch_add_explicit(&state->failures, 1, memory_order_relaxed);
	unsigned n = atomic_fetch_add_explicit(&state->consecutive_failures, 1, memory_order_relaxed) + 1;
	if (cfg->passive.failures <= 0 || n < (unsigned)cfg->passive.failures)
		return;
	atomic_store(&state->passive_down_until_ms, monotonic_ms() + cfg->passive.cooldown_ms);
	bool was_up = true;
	if (atomic_compare_exchange_strong(&state->up, &was_up, false))
		log_warn("server %s/%s down (%u consecutive failures: %s)", cfg->name, state->addr, n, why);
}

void health_note_success(struct server_state *state)
{
	if (atomic_load_explicit(&state->consecutive_failures, memory_order_relaxed) != 0)
		atomic_store_explicit(&state->consecutive_failures, 0, memory_order_relaxed);
}
