/* health: active and passive health checks. See health.h. */
#include "health.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "health_policy.h"
#include "http_msg.h"
#include "log.h"
#include "proxy_proto.h"
#include "tls_conn.h"
#include "netutil.h"

#define PROBE_HEAD_MAX (16 * 1024) /* a check's response head, at most */
#define EJECT_REFUSED_LOG_MS 10000 /* "not ejected" said once per server per this */

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
	struct event_base *base;
	struct event *timer; /* next probe, or this probe's timeout */
	struct conn *probe; /* NULL between probes */
	bool request_sent; /* http: this probe's GET is written */
	SSL_CTX *tls; /* backends[].tls: probes go over TLS (a reference), else NULL */
	int send_proxy; /* backends[].send_proxy: probes start with a PROXY header naming no client */
	char tls_name[256]; /* the name the server's certificate must carry */
	int successes, failures; /* in a row; successes only since the last ejection */
	uint64_t ejections_seen; /* state->ejections when successes were last counted */
	uint64_t ejections_at_probe; /* state->ejections when this probe started */
	char last_check[128];
	bool seen; /* still in the current generation (during health_sync) */
};

static struct checker *checkers;
static const struct gen *current; /* borrowed: see health_sync */
static struct event *tick; /* HEALTH_TICK_MS: ejections ending, panic */

/* Ejection decisions (which read other servers' states) one at a time. */
static pthread_mutex_t eject_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_uint_fast64_t own_failures;
static atomic_uint_fast64_t own_failure_logged_s;

void health_note_own_failure(const char *what, int err)
{
	atomic_fetch_add_explicit(&own_failures, 1, memory_order_relaxed);
	uint64_t now_s = clock_ms() / 1000;
	uint64_t last = atomic_load_explicit(&own_failure_logged_s, memory_order_relaxed);
	if (last != now_s && atomic_compare_exchange_strong(&own_failure_logged_s, &last, now_s))
		log_error("lb's own failure, not counted against any server: %s: %s", what, strerror(err));
}

uint64_t health_own_failures(void)
{
	return atomic_load_explicit(&own_failures, memory_order_relaxed);
}

static void checker_schedule(struct checker *c, uint64_t ms);

/* End an ejection whose time is up: after the cooldown, once the active
 * check has passed `rise` times since the ejection (at once without one). */
static void checker_try_return(struct checker *c)
{
	struct server_state *st = c->state;
	if (!atomic_load(&st->ejected) || clock_ms() < atomic_load(&st->ejected_until_ms))
		return;
	bool checked = c->cfg.type != CHECK_NONE;
	if (checked && (c->successes < c->cfg.rise || c->ejections_seen != atomic_load(&st->ejections)))
		return;
	pthread_mutex_lock(&eject_lock);
	atomic_store(&st->consecutive_failures, 0);
	atomic_store(&st->ejected, false);
	pthread_mutex_unlock(&eject_lock);
	if (!atomic_load(&st->up))
		return; /* still down by its checks: "up" is said when they pass */
	server_state_came_up(st);
	if (checked)
		log_info("server %s/%s up (%d passed checks)", c->backend, st->addr, c->successes);
	else
		log_info("server %s/%s up (passive cooldown over)", c->backend, st->addr);
}

enum probe_result { PROBE_OK, PROBE_FAILED, PROBE_NOT_RUN };

/* strerror(err) as a phrase inside a log line: "connection refused", as
 * SPEC 6's example has it, not "Connection refused". Returns buf. */
static const char *error_phrase(int err, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(err));
	if (isupper((unsigned char)buf[0]) && islower((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

static void probe_end(struct checker *c, enum probe_result result, const char *why)
{
	struct server_state *st = c->state;
	if (c->probe != NULL) {
		conn_free(c->probe);
		c->probe = NULL;
	}
	if (c->cfg.type == CHECK_NONE)
		return; /* turned off by a reload meanwhile */
	checker_schedule(c, c->cfg.interval_ms);
	if (result == PROBE_NOT_RUN) { /* lb's own shortage says nothing of the server */
		snprintf(c->last_check, sizeof(c->last_check), "not run: %s", why);
		return;
	}
	snprintf(c->last_check, sizeof(c->last_check), "%s", result == PROBE_OK ? "ok" : why);
	/* Successes count towards the end of an ejection only from after it. */
	uint64_t ejections = atomic_load(&st->ejections);
	if (ejections != c->ejections_seen) {
		c->ejections_seen = ejections;
		c->successes = 0;
		if (c->ejections_at_probe != ejections)
			return; /* this probe began before the ejection */
	}
	bool up = atomic_load(&st->up);
	if (result == PROBE_OK) {
		c->failures = 0;
		if (c->successes < INT_MAX)
			c->successes++;
		if (!up && c->successes >= c->cfg.rise) {
			atomic_store(&st->up, true);
			if (!atomic_load(&st->ejected)) {
				server_state_came_up(st);
				log_info("server %s/%s up (%d passed checks)", c->backend, st->addr, c->successes);
			}
		}
		checker_try_return(c);
	} else {
		c->successes = 0;
		c->failures++;
		if (up && c->failures >= c->cfg.fall) {
			atomic_store(&st->up, false);
			log_warn("server %s/%s down (%d failed checks: %s)", c->backend, st->addr, c->failures, why);
		}
	}
}

/* The response head at the front of the input, parsed by the proxy's own
 * strict parser: its status, -1 while incomplete, 0 when it is not a valid
 * response head (a status line like "HTTP/1.1  200" or "HTTP/1.1 2000"
 * included). */
static int read_status(struct evbuffer *in)
{
	static struct http_head head; /* control thread only */
	static struct http_header fields[HTTP_DEFAULT_MAX_HEADERS];
	size_t len = evbuffer_get_length(in), n = len < PROBE_HEAD_MAX ? len : PROBE_HEAD_MAX, scan = 0;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	size_t head_len = buf ? http_head_length(buf, n, &scan) : 0;
	if (head_len == 0)
		return n >= PROBE_HEAD_MAX ? 0 : -1;
	http_head_init(&head, fields, HTTP_DEFAULT_MAX_HEADERS);
	if (http_parse_response(buf, head_len, HTTP_GET, false, &head) != HTTP_MSG_OK)
		return 0;
	return head.status;
}

/* Everything a probe sees: connected (for TLS, the handshake is over),
 * the response, EOF, an error. */
static void on_probe(struct conn *pc, void *arg)
{
	struct checker *c = arg;
	char why[160];

	if (pc->error) {
		const char *tls_failure = tls_conn_failure(pc);
		if (tls_failure[0] != '\0') {
			snprintf(why, sizeof(why), "TLS: %s", tls_failure);
			probe_end(c, PROBE_FAILED, why);
		} else if (netutil_errno_is_local(pc->error_code)) {
			health_note_own_failure("health check", pc->error_code);
			probe_end(c, PROBE_NOT_RUN, error_phrase(pc->error_code, why, sizeof(why)));
		} else {
			probe_end(c, PROBE_FAILED, error_phrase(pc->error_code, why, sizeof(why)));
		}
		return;
	}
	if (!pc->connected) {
		if (pc->eof)
			probe_end(c, PROBE_FAILED, "closed during the TLS handshake");
		return;
	}
	if (c->cfg.type == CHECK_TCP) {
		probe_end(c, PROBE_OK, NULL);
		return;
	}
	if (!c->request_sent) {
		const char *host = c->host[0] ? c->host : c->state->addr;
		evbuffer_add_printf(pc->out,
				    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lb-health-check\r\n"
				    "Connection: close\r\n\r\n",
				    c->path, host);
		c->request_sent = true;
		conn_flush(pc);
		return;
	}
	int status = conn_input_length(pc) > 0 ? read_status(pc->in) : -1;
	if (status < 0) {
		if (pc->eof)
			probe_end(c, PROBE_FAILED, "closed before a complete response head");
		return;
	}
	if (status == 0) {
		probe_end(c, PROBE_FAILED, "invalid response");
		return;
	}
	if (status < c->cfg.expect_min || status > c->cfg.expect_max) {
		snprintf(why, sizeof(why), "status %d", status);
		probe_end(c, PROBE_FAILED, why);
		return;
	}
	probe_end(c, PROBE_OK, NULL);
}

/* A probe that could not even start, with errno err: lb's own shortage
 * says nothing of the server. */
static void probe_not_started(struct checker *c, int err)
{
	char why[128];
	if (netutil_errno_is_local(err)) {
		health_note_own_failure("health check", err);
		probe_end(c, PROBE_NOT_RUN, error_phrase(err, why, sizeof(why)));
	} else {
		probe_end(c, PROBE_FAILED, error_phrase(err, why, sizeof(why)));
	}
}

static void probe_start(struct checker *c)
{
	c->ejections_at_probe = atomic_load(&c->state->ejections);
	c->request_sent = false;
	struct timeval tv = netutil_timeval_ms(c->cfg.timeout_ms);
	event_add(c->timer, &tv);
	/* conn_connect makes the socket, so a failure's errno is its own. */
	c->probe = conn_connect(c->base, NULL, (struct sockaddr *)&c->addr, c->addr_len, on_probe, c);
	if (c->probe == NULL) {
		probe_not_started(c, errno);
		return;
	}
	if (c->tls != NULL && tls_conn_connect(c->probe, c->tls, c->tls_name, NULL) < 0) {
		probe_not_started(c, ENOMEM);
		return;
	}
	if (c->send_proxy != 0) {
		/* v1 "PROXY UNKNOWN" / v2 LOCAL: the balancer's own connection,
		 * in the clear before a TLS handshake */
		unsigned char header[PROXY_V1_MAX_LENGTH];
		size_t n = proxy_write(c->send_proxy, NULL, NULL, header, sizeof(header));
		if ((c->tls != NULL ? tls_conn_send_first(c->probe, header, n) : evbuffer_add(c->probe->out, header, n)) < 0)
			probe_not_started(c, ENOMEM);
	}
}

static void on_checker_timer(evutil_socket_t fd, short what, void *arg)
{
	struct checker *c = arg;
	(void)fd;
	(void)what;
	if (c->probe != NULL) {
		probe_end(c, PROBE_FAILED, "timeout");
		return;
	}
	if (c->cfg.type != CHECK_NONE)
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
	memcpy(&c->addr, &s->sockaddr, s->sockaddr_len);
	c->addr_len = s->sockaddr_len;
	/* Over TLS when the backend speaks it: a tcp check then passes once
	 * the handshake (and the certificate) does. A probe under way keeps
	 * its own SSL. */
	SSL_CTX_free(c->tls);
	c->tls = NULL;
	c->send_proxy = b->cfg->send_proxy;
	if (b->tls != NULL && SSL_CTX_up_ref(tls_client_ctx(b->tls)) == 1) {
		c->tls = tls_client_ctx(b->tls);
		snprintf(c->tls_name, sizeof(c->tls_name), "%s", gen_server_tls_name(b, s));
	}
	if (c->cfg.type == CHECK_NONE) {
		/* Checks off (perhaps by a reload): no probe may still judge the
		 * server, and nothing would bring a down one back. */
		if (c->probe != NULL) {
			conn_free(c->probe);
			c->probe = NULL;
		}
		if (c->timer != NULL)
			event_del(c->timer);
		c->successes = c->failures = 0;
		if (!atomic_load(&c->state->up)) {
			atomic_store(&c->state->up, true);
			log_info("server %s/%s up (health checks turned off)", c->backend, c->state->addr);
		}
	}
}

static void checker_free(struct checker *c)
{
	conn_free(c->probe);
	SSL_CTX_free(c->tls);
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

/* Decide each backend's panic flag; say when it changes. */
static void backends_update_panic(const struct gen *g)
{
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		size_t eligible = 0, healthy = 0;
		for (size_t i = 0; i < gb->nservers; i++) {
			if (!gen_server_eligible(gb, i))
				continue;
			eligible++;
			healthy += server_state_healthy(gb->servers[i].state);
		}
		bool panic = health_panic(healthy, eligible, gb->cfg->panic_threshold_percent);
		if (atomic_exchange(&gb->state->panic, panic) == panic)
			continue;
		if (panic)
			log_warn("backend %s: panic: %zu of %zu servers healthy (panic_threshold %d%%); balancing "
				 "across all of them",
				 gb->cfg->name, healthy, eligible, gb->cfg->panic_threshold_percent);
		else
			log_info("backend %s: panic over: %zu of %zu servers healthy", gb->cfg->name, healthy, eligible);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (struct checker *c = checkers; c != NULL; c = c->next)
		checker_try_return(c);
	if (current != NULL)
		backends_update_panic(current);
}

int health_sync(struct event_base *base, const struct gen *g)
{
	bool first = checkers == NULL;
	size_t total = 0, n = 0;

	current = g; /* even if what follows fails: the previous one may go */

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
				if (c->cfg.type != CHECK_NONE && c->probe == NULL && !evtimer_pending(c->timer, NULL))
					checker_schedule(c, 0); /* checks turned on by the reload */
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
			if (c->cfg.type != CHECK_NONE)
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
	if (tick == NULL) {
		tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
		struct timeval tv = netutil_timeval_ms(HEALTH_TICK_MS);
		if (tick == NULL || event_add(tick, &tv) < 0)
			return -1;
	}
	backends_update_panic(g);
	return 0;
}

void health_stop_all(void)
{
	while (checkers != NULL) {
		struct checker *c = checkers;
		checkers = c->next;
		checker_free(c);
	}
	if (tick != NULL) {
		event_free(tick);
		tick = NULL;
	}
	current = NULL;
}

const char *health_last_check(const struct server_state *state)
{
	const struct checker *c = checker_find(state);
	return c ? c->last_check : "";
}

/* Of the servers of b that may take requests (weight > 0, not drained):
 * how many, and how many of those are out by their health (down or
 * ejected). */
static size_t servers_out(const struct gen_backend *b, size_t *eligible)
{
	size_t out = 0;
	*eligible = 0;
	for (size_t i = 0; i < b->nservers; i++) {
		if (!gen_server_eligible(b, i))
			continue;
		(*eligible)++;
		out += !server_state_healthy(b->servers[i].state);
	}
	return out;
}

/* Eject server i of b after its n-th consecutive failure, if max_ejected
 * allows (health_policy.h). */
static void eject(struct gen_backend *b, size_t i, unsigned n, const char *why)
{
	struct server_state *st = b->servers[i].state;
	const struct cfg_backend *cfg = b->cfg;
	uint64_t now = clock_ms();

	pthread_mutex_lock(&eject_lock);
	/* Already out, or back meanwhile (its count was reset by the return:
	 * failures from before it must not eject it again). */
	if (atomic_load(&st->ejected) || atomic_load(&st->consecutive_failures) < (unsigned)cfg->passive.failures) {
		pthread_mutex_unlock(&eject_lock);
		return;
	}
	size_t eligible;
	size_t out = servers_out(b, &eligible);
	if (!health_eject_allowed(out, eligible, cfg->passive.max_ejected_percent)) {
		bool say = now >= st->eject_refused_logged_ms + EJECT_REFUSED_LOG_MS || st->eject_refused_logged_ms == 0;
		if (say)
			st->eject_refused_logged_ms = now;
		pthread_mutex_unlock(&eject_lock);
		if (say)
			log_warn("server %s/%s not ejected after %u consecutive failures (%s): %zu of %zu servers "
				 "are out already (passive.max_ejected %d%%)",
				 cfg->name, st->addr, n, why, out, eligible, cfg->passive.max_ejected_percent);
		return;
	}
	uint64_t previous_at = atomic_load(&st->ejected_at_ms);
	unsigned multiplier = health_backoff_multiplier(atomic_load(&st->ejection_multiplier), now - previous_at,
							cfg->passive.cooldown_ms);
	uint64_t cooldown = cfg->passive.cooldown_ms * multiplier;
	atomic_store(&st->ejection_multiplier, multiplier);
	atomic_store(&st->ejected_at_ms, now);
	atomic_store(&st->ejected_until_ms, now + cooldown);
	atomic_fetch_add(&st->ejections, 1);
	atomic_store(&st->ejected, true);
	pthread_mutex_unlock(&eject_lock);
	log_warn("server %s/%s down (%u consecutive failures: %s; ejected for at least %llums)", cfg->name, st->addr,
		 n, why, (unsigned long long)cooldown);
}

void health_note_failure(struct gen_backend *b, size_t i, const char *why)
{
	struct server_state *st = b->servers[i].state;
	int threshold = b->cfg->passive.failures;
	atomic_fetch_add_explicit(&st->failures, 1, memory_order_relaxed);
	unsigned n = atomic_fetch_add_explicit(&st->consecutive_failures, 1, memory_order_relaxed) + 1;
	/* Try at the threshold, and again after as many more failures (an
	 * ejection refused by max_ejected may be allowed by then). */
	if (threshold > 0 && n >= (unsigned)threshold && (n - (unsigned)threshold) % (unsigned)threshold == 0)
		eject(b, i, n, why);
}

void health_note_connect_failure(struct gen_backend *b, size_t i, int err)
{
	if (netutil_errno_is_local(err)) {
		char what[300];
		snprintf(what, sizeof(what), "connect to %s/%s", b->cfg->name, b->servers[i].state->addr);
		health_note_own_failure(what, err);
		return;
	}
	char why[128];
	health_note_failure(b, i, err ? error_phrase(err, why, sizeof(why)) : "connect timeout");
}

void health_note_success(struct server_state *state)
{
	if (atomic_load_explicit(&state->consecutive_failures, memory_order_relaxed) != 0)
		atomic_store_explicit(&state->consecutive_failures, 0, memory_order_relaxed);
}
