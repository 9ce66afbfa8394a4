/* admin: the admin endpoint. See admin.h. */
#include "admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin_server.h"
#include "clock.h"
#include "evmem.h"
#include "health.h"
#include "pick.h"
#include "queue.h"
#include "version.h"
#include "counters.h"

struct admin {
	struct admin_server *server;
	const struct gen *gen; /* the current one; the control thread holds it */
	char bind_host[256];
	unsigned bind_port;
	const char *token; /* gen->cfg's: lives as long as the generation */
	struct admin_instance *instance; /* the process's (admin.h) */
};

/* Error lines a reload result keeps, at most. */
#define RELOAD_ERRORS_MAX 64

static void reload_errors_free(struct admin_instance *in)
{
	for (size_t i = 0; i < in->last_reload_nerrors; i++)
		free(in->last_reload_errors[i]);
	free(in->last_reload_errors);
	in->last_reload_errors = NULL;
	in->last_reload_nerrors = 0;
}

void admin_instance_reloaded(struct admin_instance *in, bool ok, unsigned long gen_id, const char *const *errors,
			     size_t nerrors)
{
	reload_errors_free(in);
	in->last_reload = ok ? "ok" : "failed";
	in->last_reload_gen = gen_id;
	if (nerrors > RELOAD_ERRORS_MAX)
		nerrors = RELOAD_ERRORS_MAX;
	if (nerrors == 0 || (in->last_reload_errors = calloc(nerrors, sizeof(char *))) == NULL)
		return; /* out of memory: the result without its lines */
	for (size_t i = 0; i < nerrors; i++)
		if ((in->last_reload_errors[in->last_reload_nerrors] = strdup(errors[i])) != NULL)
			in->last_reload_nerrors++;
}

void admin_instance_drain(struct admin_instance *in)
{
	if (in->draining)
		return;
	in->draining = true;
	in->draining_since_ms = clock_ms();
	if (in->drain_changed != NULL)
		in->drain_changed(in->arg, true);
}

void admin_instance_undrain(struct admin_instance *in)
{
	if (!in->draining)
		return;
	in->draining = false;
	if (in->drain_changed != NULL)
		in->drain_changed(in->arg, false);
}

void admin_instance_free(struct admin_instance *in)
{
	reload_errors_free(in);
}

static time_t started_at;

static void reply_text(struct admin_reply *r, int code, const char *reason, const char *text)
{
	r->status = code;
	r->reason = reason;
	r->content_type = "text/plain; charset=utf-8";
	evbuffer_add_printf(r->body, "%s\n", text);
}

/* Compare without an early exit, so timing says nothing about the token. */
static bool token_matches(const char *given, const char *token)
{
	size_t n = strlen(token), m = strlen(given);
	unsigned char diff = (unsigned char)(n != m);
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(token[i] ^ (i < m ? given[i] : 0));
	return diff == 0;
}

static bool authorized(const struct admin *a, const struct admin_request *req)
{
	if (a->token[0] == '\0')
		return true;
	const char *auth = req->authorization;
	/* the scheme's name is case-insensitive (RFC 9110 11.1) */
	return auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && token_matches(auth + 7, a->token);
}

/* "drain" (admin), "down" (by its checks, or ejected), else "up". */
static const char *server_state_name(const struct server_state *s)
{
	if (atomic_load(&s->drained))
		return "drain";
	return server_state_healthy(s) ? "up" : "down";
}

/* When a passive ejection ends at the earliest, as Unix time in seconds
 * (null when the server is not ejected). */
static void write_ejected_until(struct evbuffer *out, const struct server_state *s)
{
	if (!atomic_load(&s->ejected)) {
		evbuffer_add(out, "null", 4);
		return;
	}
	uint64_t until = atomic_load(&s->ejected_until_ms), now = clock_ms();
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	double left = until > now ? (double)(until - now) / 1000.0 : 0.0;
	evbuffer_add_printf(out, "%.3f", (double)wall.tv_sec + (double)wall.tv_nsec / 1e9 + left);
}

/* JSON string body with the escapes JSON needs. */
static void json_string(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			evbuffer_add_printf(out, "\\%c", c);
		else if (c < 0x20)
			evbuffer_add_printf(out, "\\u%04x", c);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static const char *const balance_names[] = { "round_robin", "least_conn", "random", "hash" };

/* "queue": {"length", "oldest_s", "max", "rejected": {REASON: n}, "retries_refused"} */
static void write_queue(const struct gen_backend *gb, struct evbuffer *out)
{
	const struct backend_state *bs = gb->state;
	evbuffer_add_printf(out, "\"queue\":{\"length\":%u,\"oldest_s\":%.3f,\"max\":%d,\"rejected\":{", queue_length(gb),
			    (double)queue_oldest_ms(gb) / 1000.0, gb->cfg->queue_max);
	for (int r = 0; r < QUEUE_REJECT_COUNT; r++)
		evbuffer_add_printf(out, "%s\"%s\":%llu", r ? "," : "", queue_reject_names[r],
				    (unsigned long long)atomic_load(&bs->queue_rejected[r]));
	evbuffer_add_printf(out, "}},\"retries_refused\":%llu", (unsigned long long)atomic_load(&bs->retries_refused));
}

/* "last_reload": null, or {"result", "generation", "errors": [...]}. */
static void write_last_reload(const struct admin_instance *in, struct evbuffer *out)
{
	if (in->last_reload == NULL) {
		evbuffer_add_printf(out, "\"last_reload\":null");
		return;
	}
	evbuffer_add_printf(out, "\"last_reload\":{\"result\":\"%s\",\"generation\":%lu,\"errors\":[", in->last_reload,
			    in->last_reload_gen);
	for (size_t i = 0; i < in->last_reload_nerrors; i++) {
		if (i > 0)
			evbuffer_add(out, ",", 1);
		json_string(out, in->last_reload_errors[i]);
	}
	evbuffer_add(out, "]}", 2);
}

static void write_stats(const struct admin *a, struct evbuffer *out)
{
	const struct gen *g = a->gen;
	evbuffer_add_printf(out,
			    "{\"version\":\"%s\",\"uptime_s\":%lld,\"generation\":%lu,\"reloads\":%llu,"
			    "\"reloads_failed\":%llu,\"draining\":%s,\"stopping\":%s,",
			    LB_VERSION, (long long)(time(NULL) - started_at), g->id,
			    (unsigned long long)atomic_load(&lb_counters.reloads_ok),
			    (unsigned long long)atomic_load(&lb_counters.reloads_failed),
			    a->instance->draining ? "true" : "false", a->instance->stopping ? "true" : "false");
	write_last_reload(a->instance, out);
	evbuffer_add_printf(out, ",\"connections\":%u,\"connections_total\":%llu,\"backends\":[",
			    atomic_load(&lb_counters.connections_active),
			    (unsigned long long)counters_connections_total());
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		evbuffer_add_printf(out, "%s{\"name\":", b ? "," : "");
		json_string(out, gb->cfg->name);
		evbuffer_add_printf(out, ",\"balance\":\"%s\",\"panic\":%s,", balance_names[gb->cfg->balance],
				    atomic_load(&gb->state->panic) ? "true" : "false");
		write_queue(gb, out);
		evbuffer_add_printf(out, ",\"servers\":[");
		for (size_t i = 0; i < gb->nservers; i++) {
			const struct gen_server *s = &gb->servers[i];
			const struct server_state *st = s->state;
			evbuffer_add_printf(out, "%s{\"addr\":", i ? "," : "");
			json_string(out, st->addr);
			evbuffer_add_printf(out, ",\"state\":\"%s\",\"weight\":%d,\"active\":%u,\"requests\":%llu,"
					    "\"failures\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"responses\":{",
					    server_state_name(st), s->weight, atomic_load(&st->active),
					    (unsigned long long)atomic_load(&st->requests),
					    (unsigned long long)atomic_load(&st->failures),
					    (unsigned long long)atomic_load(&st->bytes_in),
					    (unsigned long long)atomic_load(&st->bytes_out));
			for (int c = 1; c <= 5; c++)
				evbuffer_add_printf(out, "%s\"%dxx\":%llu", c > 1 ? "," : "", c,
						    (unsigned long long)atomic_load(&st->responses[c]));
			evbuffer_add_printf(out, "},\"ejected_until\":");
			write_ejected_until(out, st);
			evbuffer_add_printf(out, ",\"ejections\":%llu,\"limit\":%u,\"slow_start\":%.3f,\"last_check\":",
					    (unsigned long long)atomic_load(&st->ejections), atomic_load(&st->limit),
					    pick_ramp_share(gb, i, clock_ms()));
			json_string(out, health_last_check(st));
			evbuffer_add(out, "}", 1);
		}
		evbuffer_add(out, "]}", 2);
	}
	evbuffer_add(out, "],\"workers\":[", 13);
	for (int i = 0; i < atomic_load(&lb_counters.nworkers); i++)
		evbuffer_add_printf(out, "%s{\"connections\":%u,\"connections_total\":%llu}", i ? "," : "",
				    atomic_load(&lb_counters.workers[i].connections_active),
				    (unsigned long long)atomic_load(&lb_counters.workers[i].connections_total));
	evbuffer_add(out, "]}\n", 3);
}

/* A label value with the escapes of the exposition format. */
static void prom_label(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*s == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void prom_server_labels(struct evbuffer *out, const struct gen_backend *gb, const struct server_state *st)
{
	evbuffer_add(out, "{backend=\"", 10);
	prom_label(out, gb->cfg->name);
	evbuffer_add(out, "\",server=\"", 10);
	prom_label(out, st->addr);
	evbuffer_add(out, "\"", 1);
}

static void prom_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum server_metric {
	METRIC_UP,
	METRIC_EJECTED,
	METRIC_EJECTIONS,
	METRIC_ACTIVE,
	METRIC_FAILURES,
	METRIC_BYTES_IN,
	METRIC_BYTES_OUT,
	METRIC_LIMIT,
};

static uint64_t server_metric(const struct server_state *st, enum server_metric m)
{
	switch (m) {
	case METRIC_UP:
		return server_state_healthy(st) && !atomic_load(&st->drained);
	case METRIC_EJECTED:
		return atomic_load(&st->ejected);
	case METRIC_EJECTIONS:
		return atomic_load(&st->ejections);
	case METRIC_ACTIVE:
		return atomic_load(&st->active);
	case METRIC_FAILURES:
		return atomic_load(&st->failures);
	case METRIC_BYTES_IN:
		return atomic_load(&st->bytes_in);
	case METRIC_BYTES_OUT:
		return atomic_load(&st->bytes_out);
	case METRIC_LIMIT:
		return atomic_load(&st->limit);
	}
	return 0;
}

static void prom_per_server(struct evbuffer *out, const struct gen *g, const char *name, enum server_metric m)
{
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++) {
			evbuffer_add_printf(out, "%s", name);
			prom_server_labels(out, gb, gb->servers[i].state);
			evbuffer_add_printf(out, "} %llu\n", (unsigned long long)server_metric(gb->servers[i].state, m));
		}
	}
}

/* One histogram's series, NAME_bucket{LABEL="VALUE",le=...}, _sum, _count. */
static void prom_histogram(struct evbuffer *out, const char *name, const char *label, const char *value,
			   const struct duration_histogram *h)
{
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= LB_DURATION_BUCKETS; i++) {
		cumulative += atomic_load(&h->buckets[i]);
		evbuffer_add_printf(out, "%s_bucket{%s=\"", name, label);
		prom_label(out, value);
		if (i < LB_DURATION_BUCKETS)
			evbuffer_add_printf(out, "\",le=\"%g\"} %llu\n", lb_duration_bounds[i], (unsigned long long)cumulative);
		else
			evbuffer_add_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
	}
	evbuffer_add_printf(out, "%s_sum{%s=\"", name, label);
	prom_label(out, value);
	evbuffer_add_printf(out, "\"} %.6f\n", (double)atomic_load(&h->sum_us) / 1e6);
	evbuffer_add_printf(out, "%s_count{%s=\"", name, label);
	prom_label(out, value);
	/* The count is the +Inf bucket: read once, so they always agree. */
	evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)cumulative);
}

/* The TLS listeners': handshakes by result, resumptions, and how long
 * each certificate has left (negative once expired). */
static void write_tls_metrics(const struct gen *g, struct evbuffer *out)
{
	prom_header(out, "lb_tls_handshakes_total", "counter", "TLS handshakes with clients, by listener and result.");
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct gen_listener *l = &g->listeners[i];
		if (l->tls == NULL)
			continue;
		for (int r = 0; r < TLS_RESULT_COUNT; r++) {
			evbuffer_add(out, "lb_tls_handshakes_total{listener=\"", 34);
			prom_label(out, l->cfg->name);
			evbuffer_add_printf(out, "\",result=\"%s\"} %llu\n", tls_result_names[r],
					    (unsigned long long)atomic_load(&l->state->tls.handshakes[r]));
		}
	}
	prom_header(out, "lb_tls_resumed_total", "counter", "TLS handshakes that resumed a session, by listener.");
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct gen_listener *l = &g->listeners[i];
		if (l->tls == NULL)
			continue;
		evbuffer_add(out, "lb_tls_resumed_total{listener=\"", 31);
		prom_label(out, l->cfg->name);
		evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)atomic_load(&l->state->tls.resumed));
	}
	prom_header(out, "lb_tls_ktls_total", "counter",
		    "TLS handshakes after which the kernel took the records over (listeners[].tls.ktls), by direction.");
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct gen_listener *l = &g->listeners[i];
		if (l->tls == NULL)
			continue;
		for (int d = 0; d < 2; d++) {
			evbuffer_add(out, "lb_tls_ktls_total{listener=\"", 28);
			prom_label(out, l->cfg->name);
			evbuffer_add_printf(out, "\",direction=\"%s\"} %llu\n", d == 0 ? "send" : "receive",
					    (unsigned long long)atomic_load(d == 0 ? &l->state->tls.ktls_send
										   : &l->state->tls.ktls_recv));
		}
	}
	prom_header(out, "lb_tls_handshake_duration_seconds", "histogram",
		    "Successful TLS handshakes with clients, from the accept to the handshake's end.");
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct gen_listener *l = &g->listeners[i];
		if (l->tls != NULL)
			prom_histogram(out, "lb_tls_handshake_duration_seconds", "listener", l->cfg->name,
				       &l->state->tls.durations);
	}
	prom_header(out, "lb_tls_certificate_expiry_seconds", "gauge",
		    "Seconds until the certificate's notAfter, by listener and certificate file.");
	time_t now = time(NULL);
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct gen_listener *l = &g->listeners[i];
		for (size_t c = 0; l->tls != NULL && c < tls_server_certificates(l->tls); c++) {
			evbuffer_add(out, "lb_tls_certificate_expiry_seconds{listener=\"", 44);
			prom_label(out, l->cfg->name);
			evbuffer_add(out, "\",cert=\"", 8);
			prom_label(out, tls_server_certificate_file(l->tls, c));
			evbuffer_add_printf(out, "\"} %lld\n",
					    (long long)(tls_server_certificate_expiry(l->tls, c) - now));
		}
	}
}

/* One gauge or counter per backend: NAME{backend="B"} VALUE. */
static void prom_backend_value(struct evbuffer *out, const char *name, const struct gen_backend *gb, const char *extra,
			       double value)
{
	evbuffer_add_printf(out, "%s{backend=\"", name);
	prom_label(out, gb->cfg->name);
	evbuffer_add_printf(out, "\"%s} %.15g\n", extra, value);
}

/* SPEC 13: queues, limits, slow start, the retry budget. */
static void write_overload_metrics(const struct gen *g, struct evbuffer *out)
{
	prom_header(out, "lb_backend_queue_length", "gauge", "Requests (tcp: connections) waiting for a server slot.");
	for (size_t b = 0; b < g->nbackends; b++)
		prom_backend_value(out, "lb_backend_queue_length", &g->backends[b], "", queue_length(&g->backends[b]));
	prom_header(out, "lb_backend_queue_oldest_seconds", "gauge", "How long the oldest waiting request has waited.");
	for (size_t b = 0; b < g->nbackends; b++)
		prom_backend_value(out, "lb_backend_queue_oldest_seconds", &g->backends[b], "",
				   (double)queue_oldest_ms(&g->backends[b]) / 1000.0);
	prom_header(out, "lb_queue_rejected_total", "counter",
		    "Requests answered 503 by the queue: full (or off), or waited past timeouts.queue.");
	for (size_t b = 0; b < g->nbackends; b++) {
		for (int r = 0; r < QUEUE_REJECT_COUNT; r++) {
			char extra[32];
			snprintf(extra, sizeof(extra), ",reason=\"%s\"", queue_reject_names[r]);
			prom_backend_value(out, "lb_queue_rejected_total", &g->backends[b], extra,
					   (double)atomic_load(&g->backends[b].state->queue_rejected[r]));
		}
	}
	prom_header(out, "lb_retry_budget_refused_total", "counter", "Retries the retry budget did not allow.");
	for (size_t b = 0; b < g->nbackends; b++)
		prom_backend_value(out, "lb_retry_budget_refused_total", &g->backends[b], "",
				   (double)atomic_load(&g->backends[b].state->retries_refused));
	prom_header(out, "lb_queue_time_seconds", "histogram", "Time requests waited in the queue for a slot.");
	for (size_t b = 0; b < g->nbackends; b++)
		prom_histogram(out, "lb_queue_time_seconds", "backend", g->backends[b].cfg->name,
			       &g->backends[b].state->queue_time);
	prom_header(out, "lb_server_limit", "gauge",
		    "Concurrent requests (tcp: connections) the server may take now; 0 = unlimited.");
	prom_per_server(out, g, "lb_server_limit", METRIC_LIMIT);
	prom_header(out, "lb_server_slow_start_ratio", "gauge", "Share of its weight and limit the server takes (slow start).");
	uint64_t now = clock_ms();
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++) {
			evbuffer_add_printf(out, "lb_server_slow_start_ratio");
			prom_server_labels(out, gb, gb->servers[i].state);
			evbuffer_add_printf(out, "} %.3f\n", pick_ramp_share(gb, i, now));
		}
	}
}

static void write_metrics(const struct admin *a, struct evbuffer *out)
{
	const struct gen *g = a->gen;
	prom_header(out, "lb_connections_active", "gauge", "Client connections open now.");
	evbuffer_add_printf(out, "lb_connections_active %u\n", atomic_load(&lb_counters.connections_active));
	prom_header(out, "lb_connections_total", "counter", "Client connections accepted.");
	evbuffer_add_printf(out, "lb_connections_total %llu\n", (unsigned long long)counters_connections_total());
	int workers = atomic_load(&lb_counters.nworkers);
	prom_header(out, "lb_worker_connections_active", "gauge", "Client connections open now, by worker.");
	for (int i = 0; i < workers; i++)
		evbuffer_add_printf(out, "lb_worker_connections_active{worker=\"%d\"} %u\n", i,
				    atomic_load(&lb_counters.workers[i].connections_active));
	prom_header(out, "lb_worker_connections_total", "counter", "Client connections accepted, by worker.");
	for (int i = 0; i < workers; i++)
		evbuffer_add_printf(out, "lb_worker_connections_total{worker=\"%d\"} %llu\n", i,
				    (unsigned long long)atomic_load(&lb_counters.workers[i].connections_total));
	prom_header(out, "lb_draining", "gauge",
		    "1 while the instance is drained: /healthz answers 503 (SIGTERM's drain_delay, POST /drain).");
	evbuffer_add_printf(out, "lb_draining %d\n", a->instance->draining ? 1 : 0);
	prom_header(out, "lb_reloads_total", "counter", "Configuration reloads by result.");
	evbuffer_add_printf(out, "lb_reloads_total{result=\"ok\"} %llu\nlb_reloads_total{result=\"failed\"} %llu\n",
			    (unsigned long long)atomic_load(&lb_counters.reloads_ok),
			    (unsigned long long)atomic_load(&lb_counters.reloads_failed));
	prom_header(out, "lb_server_up", "gauge",
		    "1 when the server takes new requests (checks pass, not ejected, not drained).");
	prom_per_server(out, g, "lb_server_up", METRIC_UP);
	prom_header(out, "lb_server_ejected", "gauge", "1 while passive health keeps the server out.");
	prom_per_server(out, g, "lb_server_ejected", METRIC_EJECTED);
	prom_header(out, "lb_server_ejections_total", "counter", "Passive ejections of the server.");
	prom_per_server(out, g, "lb_server_ejections_total", METRIC_EJECTIONS);
	prom_header(out, "lb_backend_panic", "gauge",
		    "1 while too few servers are healthy and lb balances across all of them.");
	for (size_t b = 0; b < g->nbackends; b++) {
		evbuffer_add(out, "lb_backend_panic{backend=\"", 26);
		prom_label(out, g->backends[b].cfg->name);
		evbuffer_add_printf(out, "\"} %d\n", atomic_load(&g->backends[b].state->panic) ? 1 : 0);
	}
	prom_header(out, "lb_own_failures_total", "counter",
		    "Connects and checks lb could not make for want of its own descriptors or memory.");
	evbuffer_add_printf(out, "lb_own_failures_total %llu\n", (unsigned long long)health_own_failures());
	prom_header(out, "lb_server_active", "gauge", "Requests (http) or connections (tcp) in progress.");
	prom_per_server(out, g, "lb_server_active", METRIC_ACTIVE);
	prom_header(out, "lb_server_requests_total", "counter", "Responses relayed from the server, by status class.");
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		for (size_t i = 0; i < gb->nservers; i++) {
			for (int c = 1; c <= 5; c++) {
				evbuffer_add_printf(out, "lb_server_requests_total");
				prom_server_labels(out, gb, gb->servers[i].state);
				evbuffer_add_printf(out, ",code=\"%dxx\"} %llu\n", c,
						    (unsigned long long)atomic_load(&gb->servers[i].state->responses[c]));
			}
		}
	}
	prom_header(out, "lb_server_failures_total", "counter", "Connect failures, 5xx answers and broken exchanges.");
	prom_per_server(out, g, "lb_server_failures_total", METRIC_FAILURES);
	prom_header(out, "lb_server_received_bytes_total", "counter", "Bytes received from the server.");
	prom_per_server(out, g, "lb_server_received_bytes_total", METRIC_BYTES_IN);
	prom_header(out, "lb_server_sent_bytes_total", "counter", "Bytes sent to the server.");
	prom_per_server(out, g, "lb_server_sent_bytes_total", METRIC_BYTES_OUT);
	write_tls_metrics(g, out);
	write_overload_metrics(g, out);
	prom_header(out, "lb_request_duration_seconds", "histogram", "HTTP request duration, from head to response end.");
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct backend_state *st = g->backends[b].state;
		prom_histogram(out, "lb_request_duration_seconds", "backend", st->ref.name, &st->durations);
	}
}

/* 200 with a body written by `write`. */
static void serve(const struct admin *a, struct admin_reply *r, const char *type,
		  void (*write)(const struct admin *a, struct evbuffer *out))
{
	write(a, r->body);
	r->status = 200;
	r->reason = "OK";
	r->content_type = type;
}

/* The state of server ADDR of backend NAME in g, or NULL. */
static struct server_state *find_server(const struct gen *g, const char *name, const char *addr,
					const struct gen_server **out)
{
	for (size_t b = 0; b < g->nbackends; b++) {
		const struct gen_backend *gb = &g->backends[b];
		if (strcmp(gb->cfg->name, name) != 0)
			continue;
		for (size_t i = 0; i < gb->nservers; i++) {
			if (strcmp(gb->servers[i].state->addr, addr) == 0) {
				*out = &gb->servers[i];
				return gb->servers[i].state;
			}
		}
	}
	return NULL;
}

/* A runtime weight (0..256) for a server: kept in its state, in force
 * once the control thread published a generation built with it. */
static void set_weight(struct admin *a, struct admin_reply *r, const char *name, const char *addr,
		       struct server_state *st, const struct gen_server *s, const char *text)
{
	char *end = NULL;
	errno = 0;
	long weight = strtol(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || weight > 256) {
		reply_text(r, 400, "Bad Request", "weight: expected an integer 0..256");
		return;
	}
	int was = st->runtime_weight, was_over = st->runtime_weight_over;
	st->runtime_weight = (int)weight;
	st->runtime_weight_over = s->given_weight;
	char why[512] = "";
	if (a->instance->weights_changed == NULL ||
	    a->instance->weights_changed(a->instance->arg, why, sizeof(why)) < 0) {
		st->runtime_weight = was;
		st->runtime_weight_over = was_over;
		char text_out[600];
		snprintf(text_out, sizeof(text_out), "weight not applied: %s", why);
		reply_text(r, 500, "Internal Server Error", text_out);
		return;
	}
	char text_out[600];
	snprintf(text_out, sizeof(text_out), "server %s/%s weight %ld", name, addr, weight);
	reply_text(r, 200, "OK", text_out);
}

/* POST /backends/NAME/servers/ADDR/(drain|enable|weight/N), ADDR
 * URL-encoded or not. */
static void serve_server_action(struct admin *a, const struct admin_request *req, struct admin_reply *r,
				const char *path)
{
	char *decoded = evhttp_uridecode(path, 0, NULL); /* libevent's memory: evmem_free */
	char name[256], addr[256], action[16], arg[16] = "";
	int end = 0;

	if (decoded == NULL) {
		reply_text(r, 400, "Bad Request", "bad path");
		return;
	}
	int fields = sscanf(decoded, "/backends/%255[^/]/servers/%255[^/]/%15[a-z]%n/%15[^/]%n", name, addr, action,
			    &end, arg, &end);
	bool known = (fields == 3 && (strcmp(action, "drain") == 0 || strcmp(action, "enable") == 0)) ||
		     (fields == 4 && strcmp(action, "weight") == 0);
	if (!known || decoded[end] != '\0') {
		evmem_free(decoded);
		reply_text(r, 404, "Not Found", "not found");
		return;
	}
	evmem_free(decoded);
	if (req->method != HTTP_POST) {
		r->allow = "POST";
		reply_text(r, 405, "Method Not Allowed", "use POST");
		return;
	}
	const struct gen_server *s = NULL;
	struct server_state *st = find_server(a->gen, name, addr, &s);
	if (st == NULL) {
		reply_text(r, 404, "Not Found", "no such backend or server");
		return;
	}
	if (strcmp(action, "weight") == 0) {
		set_weight(a, r, name, addr, st, s, arg);
		return;
	}
	bool drain = strcmp(action, "drain") == 0;
	atomic_store(&st->drained, drain);
	char text[600];
	snprintf(text, sizeof(text), "server %s/%s %s", name, addr, drain ? "drained" : "enabled");
	reply_text(r, 200, "OK", text);
}

/* POST /drain, POST /undrain: the whole instance (admin.h). */
static void serve_instance_drain(struct admin *a, const struct admin_request *req, struct admin_reply *r,
				 bool drain)
{
	struct admin_instance *in = a->instance;
	if (req->method != HTTP_POST) {
		r->allow = "POST";
		reply_text(r, 405, "Method Not Allowed", "use POST");
	} else if (drain) {
		admin_instance_drain(in);
		reply_text(r, 200, "OK", "draining: /healthz answers 503; lb still serves");
	} else if (in->stopping) {
		reply_text(r, 409, "Conflict", "stopping: the drain cannot be undone");
	} else {
		admin_instance_undrain(in);
		reply_text(r, 200, "OK", "serving: /healthz answers 200");
	}
}

static void on_admin_request(void *arg, const struct admin_request *req, struct admin_reply *r)
{
	struct admin *a = arg;
	struct evhttp_uri *parsed = evhttp_uri_parse(req->target);
	const char *path = parsed ? evhttp_uri_get_path(parsed) : NULL;

	if (path == NULL) {
		reply_text(r, 400, "Bad Request", "bad request target");
	} else if (!authorized(a, req)) {
		r->authenticate = "Bearer";
		reply_text(r, 401, "Unauthorized", "missing or wrong bearer token");
	} else if (strncmp(path, "/backends/", 10) == 0) {
		serve_server_action(a, req, r, path);
	} else if (strcmp(path, "/drain") == 0 || strcmp(path, "/undrain") == 0) {
		serve_instance_drain(a, req, r, path[1] == 'd');
	} else if (strcmp(path, "/healthz") != 0 && strcmp(path, "/stats") != 0 && strcmp(path, "/metrics") != 0) {
		reply_text(r, 404, "Not Found", "not found");
	} else if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		r->allow = "GET, HEAD";
		reply_text(r, 405, "Method Not Allowed", "use GET");
	} else if (strcmp(path, "/healthz") == 0) {
		if (a->instance->draining)
			reply_text(r, 503, "Service Unavailable", "draining");
		else
			reply_text(r, 200, "OK", "ok");
	} else if (strcmp(path, "/stats") == 0) {
		serve(a, r, "application/json", write_stats);
	} else {
		serve(a, r, "text/plain; version=0.0.4; charset=utf-8", write_metrics);
	}
	if (parsed)
		evhttp_uri_free(parsed);
}

static struct admin *admin_create(struct event_base *base, const struct gen *g, struct admin_instance *in, char *err,
				  size_t errlen)
{
	const struct lb_config *cfg = g->cfg;
	struct admin *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "admin: out of memory");
		return NULL;
	}
	a->gen = g;
	a->instance = in;
	snprintf(a->bind_host, sizeof(a->bind_host), "%s", cfg->admin.bind.host);
	a->bind_port = cfg->admin.bind.port;
	a->token = cfg->admin.token;
	a->server = admin_server_start(base, &cfg->admin.bind, (unsigned)cfg->admin.max_connections, on_admin_request,
				       a, err, errlen);
	if (a->server == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

int admin_start(struct event_base *base, const struct gen *g, struct admin_instance *in, struct admin **out,
		char *err, size_t errlen)
{
	started_at = time(NULL);
	*out = NULL;
	if (!g->cfg->admin.enabled)
		return 0;
	*out = admin_create(base, g, in, err, errlen);
	return *out ? 0 : -1;
}

int admin_update(struct event_base *base, struct admin **admin, const struct gen *g, struct admin_instance *in,
		 char *err, size_t errlen)
{
	const struct lb_config *cfg = g->cfg;
	struct admin *a = *admin;
	const char *host = cfg->admin.bind.host;

	if (a != NULL && cfg->admin.enabled && strcmp(a->bind_host, host) == 0 && a->bind_port == cfg->admin.bind.port) {
		a->gen = g;
		a->token = cfg->admin.token;
		admin_server_set_max_connections(a->server, (unsigned)cfg->admin.max_connections);
		return 0;
	}
	/* Bind changed, or admin switched on or off: a new endpoint, and the
	 * old one stays when the new one cannot bind. */
	struct admin *fresh = NULL;
	if (cfg->admin.enabled && (fresh = admin_create(base, g, in, err, errlen)) == NULL) {
		if (a != NULL) {
			a->gen = g;
			a->token = cfg->admin.token;
		}
		return -1;
	}
	admin_stop(a);
	*admin = fresh;
	return 0;
}

void admin_follow(struct admin *a, const struct gen *g)
{
	if (a != NULL)
		a->gen = g;
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	admin_server_stop(a->server);
	free(a);
}
