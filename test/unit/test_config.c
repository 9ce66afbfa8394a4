/*
 * Unit tests of lb/core/config.c: one test per promised behaviour (SPEC 2 and 4).
 * Run from the repository root: the reference configs are read as
 * conf/lb.yaml and conf/demo.yaml.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Messages call the file what the caller calls it: here "lb.yaml". */
#define NAME "lb.yaml"

static const char minimal[] = "listeners:\n"
			      "  - name: web\n"
			      "    bind: \"*:8080\"\n"
			      "    backend: app\n"
			      "backends:\n"
			      "  - name: app\n"
			      "    servers:\n"
			      "      - addr: 127.0.0.1:9001\n";

static int load(const char *text, struct lb_config **cfg, struct config_errors *errs)
{
	return config_load_string(NAME, text, strlen(text), cfg, errs);
}

/* Loads a valid text; the caller frees the config. */
static struct lb_config *load_ok(const char *text)
{
	struct lb_config *cfg = NULL;
	struct config_errors errs;
	int rc = load(text, &cfg, &errs);

	for (size_t i = 0; i < errs.count; i++)
		print_error("unexpected: %s\n", errs.lines[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(errs.count, 0);
	assert_non_null(cfg);
	config_errors_free(&errs);
	return cfg;
}

/* The text must fail with exactly these error lines, in this order. */
static void assert_errors(const char *text, const char *const *expected, size_t n)
{
	struct lb_config *cfg = (struct lb_config *)1;
	struct config_errors errs;
	int rc = load(text, &cfg, &errs);
	bool same = errs.count == n;

	for (size_t i = 0; same && i < n; i++)
		same = strcmp(errs.lines[i], expected[i]) == 0;
	for (size_t i = 0; !same && i < errs.count; i++)
		print_error("got: %s\n", errs.lines[i]);
	assert_int_equal(rc, -1);
	assert_null(cfg);
	assert_int_equal(errs.count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(errs.lines[i], expected[i]);
	config_errors_free(&errs);
}

static void assert_one_error(const char *text, const char *expected)
{
	assert_errors(text, &expected, 1);
}

/* The minimal config with `line` inserted after line `after` (1-based). */
static char *minimal_with(int after, const char *line)
{
	const char *p = minimal;
	char *out = malloc(sizeof minimal + strlen(line) + 1);
	size_t head;

	assert_non_null(out);
	for (int i = 0; i < after; i++)
		p = strchr(p, '\n') + 1;
	head = (size_t)(p - minimal);
	memcpy(out, minimal, head);
	strcpy(out + head, line);
	strcat(out, p);
	return out;
}

static void assert_minimal_with_error(int after, const char *line, const char *expected)
{
	char *text = minimal_with(after, line);

	assert_one_error(text, expected);
	free(text);
}

/* ---- defaults and full configs ---- */

static void test_minimal_config_gets_every_default(void **state)
{
	struct lb_config *cfg = load_ok(minimal);
	const struct cfg_listener *l;
	const struct cfg_backend *b;

	(void)state;
	assert_string_equal(cfg->path, NAME);
	assert_int_equal(cfg->global.workers, 0);
	assert_true(cfg->global.reuseport);
	assert_false(cfg->global.cpu_affinity);
	assert_int_equal(cfg->global.max_connections, 10000);
	assert_int_equal(cfg->global.max_header_fields, 100);
	assert_string_equal(cfg->global.pidfile, "");
	assert_string_equal(cfg->global.user, "");
	assert_int_equal(cfg->global.grace_ms, 10000);
	assert_int_equal(cfg->global.drain_delay_ms, 0);
	assert_int_equal(cfg->global.log.level, LOG_LEVEL_INFO);
	assert_string_equal(cfg->global.log.target, "stderr");
	assert_string_equal(cfg->global.access_log, "off");
	assert_int_equal(cfg->global.nresolvers, 0);
	assert_false(cfg->admin.enabled);
	assert_string_equal(cfg->admin.bind.text, "127.0.0.1:9090");
	assert_string_equal(cfg->admin.bind.host, "127.0.0.1");
	assert_int_equal(cfg->admin.bind.port, 9090);
	assert_string_equal(cfg->admin.token, "");

	assert_int_equal(cfg->nlisteners, 1);
	l = &cfg->listeners[0];
	assert_string_equal(l->name, "web");
	assert_string_equal(l->bind.text, "*:8080");
	assert_string_equal(l->bind.host, "");
	assert_int_equal(l->bind.port, 8080);
	assert_int_equal(l->mode, LISTENER_MODE_HTTP);
	assert_string_equal(l->backend, "app");
	assert_int_equal(l->backend_index, 0);
	assert_int_equal(l->max_header_size, 16 * 1024);
	assert_false(l->proxy_protocol);
	assert_int_equal(l->timeouts.client_ms, 30000);
	assert_int_equal(l->timeouts.header_ms, 10000);

	assert_int_equal(cfg->nbackends, 1);
	b = &cfg->backends[0];
	assert_string_equal(b->name, "app");
	assert_int_equal(b->balance, BALANCE_ROUND_ROBIN);
	assert_int_equal(b->hash.key, HASH_KEY_SOURCE_IP);
	assert_null(b->hash.key_name);
	assert_int_equal(b->hash.method, HASH_METHOD_MAGLEV);
	assert_true(b->hash.bounded_load == 0);
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "127.0.0.1:9001");
	assert_string_equal(b->servers[0].addr.host, "127.0.0.1");
	assert_int_equal(b->servers[0].addr.port, 9001);
	assert_int_equal(b->servers[0].weight, 1);
	assert_int_equal(b->servers[0].line, 8);
	assert_int_equal(b->resolve_interval_ms, 30000);
	assert_int_equal(b->health.type, CHECK_TCP);
	assert_string_equal(b->health.path, "/");
	assert_string_equal(b->health.host, "");
	assert_int_equal(b->health.expect_min, 200);
	assert_int_equal(b->health.expect_max, 399);
	assert_int_equal(b->health.interval_ms, 2000);
	assert_int_equal(b->health.timeout_ms, 1000);
	assert_int_equal(b->health.rise, 2);
	assert_int_equal(b->health.fall, 3);
	assert_int_equal(b->passive.failures, 5);
	assert_int_equal(b->passive.cooldown_ms, 5000);
	assert_int_equal(b->passive.max_ejected_percent, 50);
	assert_int_equal(b->panic_threshold_percent, 50);
	assert_int_equal(b->retries, 2);
	assert_int_equal(b->retry_budget_percent, 20);
	assert_int_equal(b->keepalive, 32);
	assert_int_equal(b->max_connections, CFG_LIMIT_NONE);
	assert_int_equal(b->servers[0].max_connections, CFG_LIMIT_NONE);
	assert_int_equal(b->max_connections_cap, 1000);
	assert_int_equal(b->queue_max, 1000);
	assert_int_equal(b->slow_start_ms, 0);
	assert_int_equal(b->send_proxy, 0);
	assert_int_equal(b->timeouts.connect_ms, 2000);
	assert_int_equal(b->timeouts.queue_ms, 2000); /* the connect timeout */
	assert_int_equal(b->timeouts.response_ms, 30000);
	assert_int_equal(b->timeouts.idle_ms, 60000);
	config_free(cfg);
}

static const char full[] = "global:\n"
			   "  workers: 4\n"
			   "  reuseport: false\n"
			   "  cpu_affinity: true\n"
			   "  max_connections: 500\n"
			   "  max_header_fields: 250\n"
			   "  pidfile: /run/lb.pid\n"
			   "  user: nobody\n"
			   "  grace: 1m\n"
			   "  drain_delay: 5s\n"
			   "  log:\n"
			   "    level: debug\n"
			   "    target: /var/log/lb.log\n"
			   "  access_log: stderr\n"
			   "  resolvers: [\"10.0.0.2:53\", \"[2001:db8::1]:5353\"]\n"
			   "admin:\n"
			   "  bind: \"[::1]:9191\"\n"
			   "  token: s3cret\n"
			   "listeners:\n"
			   "  - name: web\n"
			   "    bind: \"*:8080\"\n"
			   "    mode: tcp\n"
			   "    backend: api\n"
			   "    max_header_size: 32k\n"
			   "    proxy_protocol: yes\n"
			   "    timeouts:\n"
			   "      client: 45s\n"
			   "      header: 250ms\n"
			   "  - name: web2\n"
			   "    bind: 127.0.0.1:8081\n"
			   "    backend: app\n"
			   "    proxy_protocol: On\n"
			   "backends:\n"
			   "  - name: app\n"
			   "    servers:\n"
			   "      - addr: 127.0.0.1:9001\n"
			   "  - name: api\n"
			   "    balance: hash\n"
			   "    hash:\n"
			   "      key: \"cookie:session\"\n"
			   "      method: ring\n"
			   "      bounded_load: 1.25\n"
			   "    servers:\n"
			   "      - addr: api.internal:80\n"
			   "        weight: 0\n"
			   "        max_connections: 7\n"
			   "      - addr: \"[::1]:9002\"\n"
			   "        weight: 256\n"
			   "    resolve_interval: 5m\n"
			   "    health_check:\n"
			   "      type: http\n"
			   "      path: /healthz\n"
			   "      host: api.example.com\n"
			   "      expect: \"204\"\n"
			   "      interval: 500ms\n"
			   "      timeout: 2h\n"
			   "      rise: 5\n"
			   "      fall: 7\n"
			   "    passive:\n"
			   "      failures: 0\n"
			   "      cooldown: 1h\n"
			   "      max_ejected: 34%\n"
			   "    panic_threshold: 0\n"
			   "    retries: 10\n"
			   "    retry_budget: 35%\n"
			   "    keepalive: 0\n"
			   "    max_connections: auto\n"
			   "    max_connections_cap: 300\n"
			   "    queue: {max: 0}\n"
			   "    slow_start: 30s\n"
			   "    send_proxy: v2\n"
			   "    timeouts:\n"
			   "      queue: 750ms\n"
			   "      connect: 3s\n"
			   "      response: 1m\n"
			   "      idle: 2m\n";

static void test_full_config_sets_every_key(void **state)
{
	struct lb_config *cfg = load_ok(full);
	const struct cfg_listener *l;
	const struct cfg_backend *b;

	(void)state;
	assert_int_equal(cfg->global.workers, 4);
	assert_false(cfg->global.reuseport);
	assert_true(cfg->global.cpu_affinity);
	assert_int_equal(cfg->global.max_connections, 500);
	assert_int_equal(cfg->global.max_header_fields, 250);
	assert_string_equal(cfg->global.pidfile, "/run/lb.pid");
	assert_string_equal(cfg->global.user, "nobody");
	assert_int_equal(cfg->global.grace_ms, 60000);
	assert_int_equal(cfg->global.drain_delay_ms, 5000);
	assert_int_equal(cfg->global.log.level, LOG_LEVEL_DEBUG);
	assert_string_equal(cfg->global.log.target, "/var/log/lb.log");
	assert_string_equal(cfg->global.access_log, "stderr");
	assert_int_equal(cfg->global.nresolvers, 2);
	assert_string_equal(cfg->global.resolvers[0].host, "10.0.0.2");
	assert_int_equal(cfg->global.resolvers[0].port, 53);
	assert_string_equal(cfg->global.resolvers[1].host, "2001:db8::1");
	assert_string_equal(cfg->global.resolvers[1].text, "[2001:db8::1]:5353");
	assert_int_equal(cfg->global.resolvers[1].port, 5353);
	assert_true(cfg->admin.enabled);
	assert_string_equal(cfg->admin.bind.host, "::1");
	assert_int_equal(cfg->admin.bind.port, 9191);
	assert_string_equal(cfg->admin.token, "s3cret");

	assert_int_equal(cfg->nlisteners, 2);
	l = &cfg->listeners[0];
	assert_string_equal(l->name, "web");
	assert_int_equal(l->mode, LISTENER_MODE_TCP);
	assert_string_equal(l->backend, "api");
	assert_int_equal(l->backend_index, 1);
	assert_int_equal(l->max_header_size, 32 * 1024);
	assert_true(l->proxy_protocol);
	assert_int_equal(l->timeouts.client_ms, 45000);
	assert_int_equal(l->timeouts.header_ms, 250);
	l = &cfg->listeners[1];
	assert_string_equal(l->bind.host, "127.0.0.1");
	assert_int_equal(l->bind.port, 8081);
	assert_int_equal(l->backend_index, 0);
	assert_true(l->proxy_protocol);

	assert_int_equal(cfg->nbackends, 2);
	b = &cfg->backends[1];
	assert_string_equal(b->name, "api");
	assert_int_equal(b->balance, BALANCE_HASH);
	assert_int_equal(b->hash.key, HASH_KEY_COOKIE);
	assert_string_equal(b->hash.key_name, "session");
	assert_int_equal(b->hash.method, HASH_METHOD_RING);
	assert_true(b->hash.bounded_load == 1.25);
	assert_int_equal(b->nservers, 2);
	assert_string_equal(b->servers[0].addr.host, "api.internal");
	assert_int_equal(b->servers[0].addr.port, 80);
	assert_int_equal(b->servers[0].weight, 0);
	assert_string_equal(b->servers[1].addr.host, "::1");
	assert_int_equal(b->servers[1].weight, 256);
	assert_int_equal(b->resolve_interval_ms, 300000);
	assert_int_equal(b->health.type, CHECK_HTTP);
	assert_string_equal(b->health.path, "/healthz");
	assert_string_equal(b->health.host, "api.example.com");
	assert_int_equal(b->health.expect_min, 204);
	assert_int_equal(b->health.expect_max, 204);
	assert_int_equal(b->health.interval_ms, 500);
	assert_int_equal(b->health.timeout_ms, 7200000);
	assert_int_equal(b->health.rise, 5);
	assert_int_equal(b->health.fall, 7);
	assert_int_equal(b->passive.failures, 0);
	assert_int_equal(b->passive.cooldown_ms, 3600000);
	assert_int_equal(b->passive.max_ejected_percent, 34);
	assert_int_equal(b->panic_threshold_percent, 0);
	assert_int_equal(b->retries, 10);
	assert_int_equal(b->retry_budget_percent, 35);
	assert_int_equal(b->keepalive, 0);
	assert_int_equal(b->max_connections, CFG_LIMIT_AUTO);
	assert_int_equal(b->servers[0].max_connections, 7);
	assert_int_equal(b->servers[1].max_connections, CFG_LIMIT_AUTO); /* the backend's */
	assert_int_equal(b->max_connections_cap, 300);
	assert_int_equal(b->queue_max, 0);
	assert_int_equal(b->slow_start_ms, 30000);
	assert_int_equal(b->send_proxy, 2);
	assert_int_equal(b->timeouts.queue_ms, 750);
	assert_int_equal(b->timeouts.connect_ms, 3000);
	assert_int_equal(b->timeouts.response_ms, 60000);
	assert_int_equal(b->timeouts.idle_ms, 120000);
	config_free(cfg);
}

static void test_hash_key_header_and_uri(void **state)
{
	char *text = minimal_with(6, "    hash: {key: \"header:X-User\"}\n");
	struct lb_config *cfg = load_ok(text);

	(void)state;
	assert_int_equal(cfg->backends[0].hash.key, HASH_KEY_HEADER);
	assert_string_equal(cfg->backends[0].hash.key_name, "X-User");
	config_free(cfg);
	free(text);
	text = minimal_with(6, "    hash: {key: uri}\n");
	cfg = load_ok(text);
	assert_int_equal(cfg->backends[0].hash.key, HASH_KEY_URI);
	assert_null(cfg->backends[0].hash.key_name);
	config_free(cfg);
	free(text);
}

static void test_zero_listeners_allowed_with_admin(void **state)
{
	struct lb_config *cfg = load_ok("admin:\n");

	(void)state;
	assert_true(cfg->admin.enabled);
	assert_string_equal(cfg->admin.bind.text, "127.0.0.1:9090");
	assert_int_equal(cfg->nlisteners, 0);
	config_free(cfg);
}


/* ---- TLS (SPEC 12) ---- */

static const char tls_config[] = "listeners:\n"
				 "  - name: web\n"
				 "    bind: \"*:8443\"\n"
				 "    backend: app\n"
				 "    tls:\n"
				 "      certificates:\n"
				 "        - cert: /etc/lb/a.pem\n"
				 "          key: a.key\n"
				 "        - cert: b.pem\n"
				 "          key: b.key\n"
				 "      min_version: \"1.3\"\n"
				 "      ciphersuites: TLS_AES_128_GCM_SHA256\n"
				 "      alpn: [http/1.1]\n"
				 "      strict_sni: true\n"
				 "      session_tickets: false\n"
				 "      client_ca: ca.pem\n"
				 "      verify_client: optional\n"
				 "      ktls: true\n"
				 "backends:\n"
				 "  - name: app\n"
				 "    tls:\n"
				 "      verify: false\n"
				 "      sni: app.internal\n"
				 "    servers:\n"
				 "      - addr: 127.0.0.1:9001\n"
				 "  - name: plain\n"
				 "    servers:\n"
				 "      - addr: 127.0.0.1:9002\n"
				 "  - name: defaults\n"
				 "    tls:\n"
				 "    servers:\n"
				 "      - addr: 127.0.0.1:9003\n";

static void test_tls_keys_are_read_with_their_places(void **state)
{
	struct lb_config *cfg = load_ok(tls_config);
	const struct cfg_listener_tls *t = &cfg->listeners[0].tls;

	(void)state;
	assert_true(t->enabled);
	assert_int_equal(t->ncertificates, 2);
	assert_string_equal(t->certificates[0].cert.value, "/etc/lb/a.pem");
	assert_string_equal(t->certificates[0].cert.where, "lb.yaml:7:17: listeners[0].tls.certificates[0].cert");
	/* config_load_string has no directory: relative names stay as written */
	assert_string_equal(t->certificates[0].key.value, "a.key");
	assert_string_equal(t->certificates[1].key.where, "lb.yaml:10:16: listeners[0].tls.certificates[1].key");
	assert_int_equal(t->min_version, TLS_MIN_1_3);
	assert_string_equal(t->ciphers.value, "");
	assert_string_equal(t->ciphersuites.value, "TLS_AES_128_GCM_SHA256");
	assert_int_equal(t->alpn_len, 9);
	assert_memory_equal(t->alpn, "\x08http/1.1", 9);
	assert_true(t->strict_sni);
	assert_false(t->session_tickets);
	assert_string_equal(t->client_ca.value, "ca.pem");
	assert_int_equal(t->verify_client, TLS_VERIFY_CLIENT_OPTIONAL);
	assert_true(t->ktls);

	const struct cfg_backend_tls *b = &cfg->backends[0].tls;
	assert_true(b->enabled);
	assert_false(b->verify);
	assert_string_equal(b->sni, "app.internal");
	assert_string_equal(b->ca.value, "");
	assert_false(cfg->backends[1].tls.enabled);
	assert_true(cfg->backends[2].tls.enabled); /* "tls:" alone: on, with its defaults */
	assert_true(cfg->backends[2].tls.verify);
	assert_false(cfg->listeners[0].tls.ticket_key_file.where != NULL);
	config_free(cfg);
}

static void test_tls_defaults(void **state)
{
	char *text = minimal_with(4, "    tls:\n      certificates:\n        - {cert: c.pem, key: c.key}\n");
	struct lb_config *cfg = load_ok(text);
	const struct cfg_listener_tls *t = &cfg->listeners[0].tls;

	(void)state;
	assert_true(t->enabled);
	assert_int_equal(t->min_version, TLS_MIN_1_2);
	assert_memory_equal(t->alpn, "\x08http/1.1", 9);
	assert_false(t->strict_sni);
	assert_true(t->session_tickets);
	assert_string_equal(t->ticket_key_file.value, "");
	assert_int_equal(t->verify_client, TLS_VERIFY_CLIENT_OFF);
	assert_false(t->ktls);
	assert_false(cfg->backends[0].tls.enabled);
	config_free(cfg);
	free(text);
}

static void test_http2_and_alpn_h2(void **state)
{
	(void)state;
	char *text = minimal_with(4, "    http2: true\n");
	struct lb_config *cfg = load_ok(text);
	assert_true(cfg->listeners[0].http2);
	assert_false(cfg_listener_offers_h2(&cfg->listeners[0]));
	config_free(cfg);
	free(text);
	text = minimal_with(4, "    tls:\n      certificates: [{cert: c, key: k}]\n      alpn: [h2, http/1.1, h2]\n");
	cfg = load_ok(text);
	assert_int_equal(cfg->listeners[0].tls.alpn_len, 12);
	assert_memory_equal(cfg->listeners[0].tls.alpn, "\x02h2\x08http/1.1", 12);
	assert_true(cfg_listener_offers_h2(&cfg->listeners[0]));
	config_free(cfg);
	free(text);
}

static void test_tls_errors(void **state)
{
	(void)state;
	assert_minimal_with_error(4, "    tls:\n      min_version: \"1.2\"\n",
				  "lb.yaml:6:7: listeners[0].tls: missing required key \"certificates\"");
	assert_minimal_with_error(4, "    tls:\n      certificates: []\n",
				  "lb.yaml:6:21: listeners[0].tls.certificates: expected a sequence of at least one "
				  "{cert, key}, got a sequence");
	assert_minimal_with_error(4, "    tls:\n      certificates:\n        - cert: c.pem\n",
				  "lb.yaml:7:11: listeners[0].tls.certificates[0]: missing required key \"key\"");
	assert_minimal_with_error(4, "    tls:\n      certificates: [{cert: c, key: k}]\n      alpn: [h3]\n",
				  "lb.yaml:7:14: listeners[0].tls.alpn: expected a sequence of protocols: h2, http/1.1, "
				  "got \"h3\"");
	assert_minimal_with_error(4, "    mode: tcp\n    tls:\n      certificates: [{cert: c, key: k}]\n"
				     "      alpn: [h2, http/1.1]\n",
				  "lb.yaml:7:7: listeners[0].tls.alpn: h2 needs mode: http");
	assert_minimal_with_error(4, "    http2: true\n    tls:\n      certificates: [{cert: c, key: k}]\n",
				  "lb.yaml:5:12: listeners[0].http2: a TLS listener offers HTTP/2 by ALPN: tls.alpn: "
				  "[h2, http/1.1]");
	assert_minimal_with_error(4, "    mode: tcp\n    http2: true\n",
				  "lb.yaml:6:12: listeners[0].http2: HTTP/2 needs mode: http");
	assert_minimal_with_error(4, "    tls:\n      certificates: [{cert: c, key: k}]\n      min_version: \"1.1\"\n",
				  "lb.yaml:7:20: listeners[0].tls.min_version: expected 1.2 or 1.3, got \"1.1\"");
	assert_minimal_with_error(4, "    tls:\n      certificates: [{cert: c, key: k}]\n      verify_client: required\n",
				  "lb.yaml:6:7: listeners[0].tls: verify_client: required needs client_ca, the "
				  "certificates that sign clients");
	assert_minimal_with_error(4, "    tls: on\n",
				  "lb.yaml:5:10: listeners[0].tls: expected a mapping with certificates, got \"on\"");
	assert_minimal_with_error(6, "    tls:\n      client_key: k.pem\n",
				  "lb.yaml:8:7: backends[0].tls: client_cert and client_key go together: client_cert is "
				  "missing");
}

static void test_reference_config_is_valid(void **state)
{
	struct lb_config *cfg = NULL;
	struct config_errors errs;
	int rc = config_load_file("conf/lb.yaml", &cfg, &errs);

	(void)state;
	for (size_t i = 0; i < errs.count; i++)
		print_error("%s\n", errs.lines[i]);
	assert_int_equal(rc, 0);
	assert_true(cfg->admin.enabled);
	assert_string_equal(cfg->admin.bind.text, "127.0.0.1:9090");
	assert_int_equal(cfg->nlisteners, 1);
	assert_int_equal(cfg->listeners[0].bind.port, 8080);
	assert_int_equal(cfg->nbackends, 1);
	assert_int_equal(cfg->backends[0].nservers, 3);
	config_errors_free(&errs);
	config_free(cfg);
}

static void test_demo_config_is_valid(void **state)
{
	struct lb_config *cfg = NULL;
	struct config_errors errs;
	int rc = config_load_file("conf/demo.yaml", &cfg, &errs);
	const struct cfg_backend *b;

	(void)state;
	for (size_t i = 0; i < errs.count; i++)
		print_error("%s\n", errs.lines[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->global.workers, 1);
	assert_int_equal(cfg->global.log.level, LOG_LEVEL_INFO);
	assert_true(cfg->admin.enabled);
	assert_int_equal(cfg->admin.bind.port, 9090);
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "web");
	assert_string_equal(cfg->listeners[0].bind.text, "*:8080");
	assert_int_equal(cfg->listeners[0].mode, LISTENER_MODE_HTTP);
	b = &cfg->backends[cfg->listeners[0].backend_index];
	assert_string_equal(b->name, "app");
	assert_int_equal(b->balance, BALANCE_ROUND_ROBIN);
	assert_int_equal(b->nservers, 3);
	assert_string_equal(b->servers[0].addr.text, "127.0.0.1:9001");
	assert_string_equal(b->servers[1].addr.text, "127.0.0.1:9002");
	assert_string_equal(b->servers[2].addr.text, "127.0.0.1:9003");
	assert_int_equal(b->health.type, CHECK_TCP);
	assert_int_equal(b->health.interval_ms, 1000);
	config_errors_free(&errs);
	config_free(cfg);
}

/* ---- one test per class of error ---- */

static void test_weight_out_of_range_reports_file_line_column_path(void **state)
{
	static const char text[] = "global:\n"
				   "  log:\n"
				   "    level: info\n"
				   "listeners:\n"
				   "  - name: web\n"
				   "    bind: \"*:8080\"\n"
				   "    backend: app\n"
				   "backends:\n"
				   "-\n"
				   " name: app\n"
				   " servers:\n"
				   " - addr: 127.0.0.1:9001\n"
				   " - addr: 127.0.0.1:9002\n"
				   "   weight: heavy\n";

	(void)state;
	assert_one_error(text, "lb.yaml:14:12: backends[0].servers[1].weight: "
			       "expected an integer 0..256, got \"heavy\"");
	assert_minimal_with_error(8, "        weight: 257\n",
				  "lb.yaml:9:17: backends[0].servers[0].weight: "
				  "expected an integer 0..256, got \"257\"");
}

static void test_unknown_key_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(0, "global:\n  foo: 1\n",
				  "lb.yaml:2:3: global: unknown key \"foo\", expected one of: "
				  "workers, reuseport, cpu_affinity, max_connections, max_header_fields, pidfile, user, grace, drain_delay, log, "
				  "access_log, resolvers");
	assert_minimal_with_error(0, "colour: blue\n",
				  "lb.yaml:1:1: unknown key \"colour\", expected one of: "
				  "global, admin, listeners, backends");
}

static void test_wrong_node_type_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(0, "global: [1, 2]\n",
				  "lb.yaml:1:9: global: expected a mapping, got a sequence");
	assert_minimal_with_error(4, "    timeouts: 5s\n",
				  "lb.yaml:5:15: listeners[0].timeouts: expected a mapping, got \"5s\"");
	assert_minimal_with_error(4, "    mode: {a: 1}\n",
				  "lb.yaml:5:11: listeners[0].mode: expected http or tcp, got a mapping");
	assert_minimal_with_error(8, "      - 127.0.0.2:1\n",
				  "lb.yaml:9:9: backends[0].servers[1]: expected a mapping (a server), "
				  "got \"127.0.0.2:1\"");
	assert_minimal_with_error(0, "global: {grace: {a: 1}}\n",
				  "lb.yaml:1:17: global.grace: expected a duration from 0ms to 168h "
				  "with a unit (ms, s, m, h), got a mapping");
	assert_one_error("listeners: web\n",
			 "lb.yaml:1:12: listeners: expected a sequence of listeners, got \"web\"");
}

static void test_duplicate_key_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(4, "    backend: app\n",
				  "lb.yaml:5:5: listeners[0].backend: duplicate key \"backend\", "
				  "first given at line 4");
}

static void test_duration_without_unit_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(0, "global:\n  grace: 5\n",
				  "lb.yaml:2:10: global.grace: duration without unit: expected a "
				  "duration from 0ms to 168h with a unit (ms, s, m, h), got \"5\"");
	assert_minimal_with_error(4, "    timeouts: {client: 2d}\n",
				  "lb.yaml:5:24: listeners[0].timeouts.client: expected a duration "
				  "from 1ms to 168h with a unit (ms, s, m, h), got \"2d\"");
}

static void test_bad_size_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(4, "    max_header_size: 16kb\n",
				  "lb.yaml:5:22: listeners[0].max_header_size: expected a size from "
				  "256 to 80k (bytes, or with k, m, g), got \"16kb\"");
	assert_minimal_with_error(4, "    max_header_size: 255\n",
				  "lb.yaml:5:22: listeners[0].max_header_size: expected a size from "
				  "256 to 80k (bytes, or with k, m, g), got \"255\"");
	assert_minimal_with_error(4, "    max_header_size: 81k\n",
				  "lb.yaml:5:22: listeners[0].max_header_size: expected a size from "
				  "256 to 80k (bytes, or with k, m, g), got \"81k\"");
}

static void test_bad_percentage_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(6, "    panic_threshold: 150%\n",
				  "lb.yaml:7:22: backends[0].panic_threshold: expected a percentage 0%..100%, "
				  "such as 50%, got \"150%\"");
	assert_minimal_with_error(6, "    passive:\n      max_ejected: half\n",
				  "lb.yaml:8:20: backends[0].passive.max_ejected: expected a percentage 0%..100%, "
				  "such as 50%, got \"half\"");
}

static void test_bad_address_is_an_error(void **state)
{
	static const char text[] = "listeners:\n"
				   "  - name: web\n"
				   "    bind: \"*:0\"\n"
				   "    backend: app\n"
				   "backends:\n"
				   "  - name: app\n"
				   "    servers:\n"
				   "      - addr: \"*:9001\"\n"
				   "      - addr: ::1:9002\n";
	static const char *const expected[] = {
		"lb.yaml:3:11: listeners[0].bind: expected an address HOST:PORT, [IPV6]:PORT or "
		"*:PORT with a port 1..65535, got \"*:0\"",
		"lb.yaml:8:15: backends[0].servers[0].addr: expected an address HOST:PORT or "
		"[IPV6]:PORT with a port 1..65535, or srv:NAME, got \"*:9001\"",
		"lb.yaml:9:15: backends[0].servers[1].addr: expected an address HOST:PORT or "
		"[IPV6]:PORT with a port 1..65535, or srv:NAME, got \"::1:9002\"",
	};

	(void)state;
	assert_errors(text, expected, 3);
}

static const char two_listeners[] = "listeners:\n"
				    "  - name: web\n"
				    "    bind: \"*:8080\"\n"
				    "    backend: app\n"
				    "  - name: %s\n"
				    "    bind: \"%s\"\n"
				    "    backend: %s\n"
				    "backends:\n"
				    "  - name: app\n"
				    "    servers:\n"
				    "      - addr: 127.0.0.1:9001\n";

static void assert_two_listeners_error(const char *name, const char *bind, const char *backend,
				       const char *expected)
{
	char text[sizeof two_listeners + 128];

	snprintf(text, sizeof text, two_listeners, name, bind, backend);
	assert_one_error(text, expected);
}

static void test_duplicate_listener_name_is_an_error(void **state)
{
	(void)state;
	assert_two_listeners_error("web", "*:8081", "app",
				   "lb.yaml:5:11: listeners[1].name: duplicate listener name "
				   "\"web\", also listeners[0] at line 2");
}

static void test_duplicate_bind_is_an_error(void **state)
{
	(void)state;
	assert_two_listeners_error("web2", "*:8080", "app",
				   "lb.yaml:6:11: listeners[1].bind: address *:8080 already used by "
				   "listeners[0]");
	assert_one_error("admin: {bind: \"127.0.0.1:8080\"}\n"
			 "listeners:\n"
			 "  - {name: web, bind: \"127.0.0.1:8080\", backend: app}\n"
			 "backends:\n"
			 "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n",
			 "lb.yaml:3:23: listeners[0].bind: address 127.0.0.1:8080 already used "
			 "by admin.bind");
	/* the same address spelled another way: what a bind would meet */
	assert_two_listeners_error("web2", "0.0.0.0:8080", "app",
				   "lb.yaml:6:11: listeners[1].bind: address 0.0.0.0:8080 already used by "
				   "listeners[0]");
	assert_one_error("listeners:\n"
			 "  - {name: a, bind: \"[::1]:8080\", backend: app}\n"
			 "  - {name: b, bind: \"[0:0::1]:8080\", backend: app}\n"
			 "backends:\n"
			 "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n",
			 "lb.yaml:3:21: listeners[1].bind: address [0:0::1]:8080 already used by listeners[0]");
	assert_one_error("admin: {bind: \"127.0.0.1:8080\"}\n"
			 "listeners:\n"
			 "  - {name: web, bind: \"*:8080\", backend: app}\n"
			 "backends:\n"
			 "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n",
			 "lb.yaml:3:23: listeners[0].bind: address *:8080 already used by admin.bind");
	/* lb's IPv6 sockets take IPv4 too: "[::]" covers every address */
	assert_one_error("admin: {bind: \"127.0.0.1:8080\"}\n"
			 "listeners:\n"
			 "  - {name: web, bind: \"[::]:8080\", backend: app}\n"
			 "backends:\n"
			 "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n",
			 "lb.yaml:3:23: listeners[0].bind: address [::]:8080 already used by admin.bind");
	assert_one_error("listeners:\n"
			 "  - {name: a, bind: \"*:8080\", backend: app}\n"
			 "  - {name: b, bind: \"[::ffff:127.0.0.1]:8080\", backend: app}\n"
			 "backends:\n"
			 "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n",
			 "lb.yaml:3:21: listeners[1].bind: address [::ffff:127.0.0.1]:8080 already used by listeners[0]");
	/* a name is judged by its text: what it resolves to is for the bind */
	struct lb_config *cfg = NULL;
	struct config_errors errs;
	static const char named[] = "admin: {bind: \"*:8080\"}\n"
				    "listeners:\n"
				    "  - {name: web, bind: \"localhost:8080\", backend: app}\n"
				    "backends:\n"
				    "  - {name: app, servers: [{addr: \"127.0.0.1:1\"}]}\n";
	assert_int_equal(config_load_string("lb.yaml", named, sizeof(named) - 1, &cfg, &errs), 0);
	config_free(cfg);
	config_errors_free(&errs);
}

static void test_missing_backend_reference_is_an_error(void **state)
{
	(void)state;
	assert_two_listeners_error("web2", "*:8081", "x",
				   "lb.yaml:7:14: listeners[1].backend: no backend named \"x\"");
}

static void test_duplicate_backend_name_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(8, "  - name: app\n    servers: [{addr: \"127.0.0.2:1\"}]\n",
				  "lb.yaml:9:11: backends[1].name: duplicate backend name \"app\", "
				  "also backends[0] at line 6");
}

static void test_duplicate_server_addr_is_an_error(void **state)
{
	(void)state;
	assert_minimal_with_error(8, "      - addr: 127.0.0.1:9001\n",
				  "lb.yaml:9:15: backends[0].servers[1].addr: duplicate server "
				  "127.0.0.1:9001, also backends[0].servers[0] at line 8");
}

static void test_srv_server_is_a_name_without_port_or_weight(void **state)
{
	(void)state;
	char *text = minimal_with(8, "      - addr: srv:_http._tcp.app.example.\n");
	struct lb_config *cfg = load_ok(text);
	const struct cfg_server *s = &cfg->backends[0].servers[1];
	assert_true(cfg_server_is_srv(s));
	assert_string_equal(s->addr.host, "_http._tcp.app.example."); /* absolute, as written */
	assert_string_equal(s->addr.text, "srv:_http._tcp.app.example.");
	assert_false(cfg_server_is_srv(&cfg->backends[0].servers[0]));
	config_free(cfg);
	free(text);

	assert_minimal_with_error(8, "      - addr: srv:_http._tcp.app.example\n        weight: 3\n",
				  "lb.yaml:10:17: backends[0].servers[1].weight: an srv: server takes its weights "
				  "from its SRV records");
	assert_minimal_with_error(8, "      - addr: srv:_http._tcp.app:80\n",
				  "lb.yaml:9:15: backends[0].servers[1].addr: expected an address HOST:PORT or "
				  "[IPV6]:PORT with a port 1..65535, or srv:NAME, got \"srv:_http._tcp.app:80\"");
	assert_minimal_with_error(8, "      - addr: \"srv:\"\n",
				  "lb.yaml:9:15: backends[0].servers[1].addr: expected an address HOST:PORT or "
				  "[IPV6]:PORT with a port 1..65535, or srv:NAME, got \"srv:\"");
	assert_minimal_with_error(8, "      - addr: srv:10.0.0.1\n",
				  "lb.yaml:9:15: backends[0].servers[1].addr: expected an address HOST:PORT or "
				  "[IPV6]:PORT with a port 1..65535, or srv:NAME, got \"srv:10.0.0.1\"");
	text = minimal_with(8, "      - addr: srv:_http._tcp.App\n      - addr: srv:_http._tcp.app\n");
	assert_one_error(text, "lb.yaml:10:15: backends[0].servers[2].addr: duplicate server "
			       "srv:_http._tcp.app, also backends[0].servers[1] at line 9");
	free(text);
}

static void test_missing_required_keys_are_errors(void **state)
{
	static const char text[] = "listeners:\n"
				   "  - mode: tcp\n"
				   "backends:\n"
				   "  - balance: random\n"
				   "  - name: app\n"
				   "    servers:\n"
				   "      - weight: 2\n"
				   "  - name: empty\n"
				   "    servers: []\n";
	static const char *const expected[] = {
		"lb.yaml:2:5: listeners[0]: missing required key \"name\"",
		"lb.yaml:2:5: listeners[0]: missing required key \"bind\"",
		"lb.yaml:2:5: listeners[0]: missing required key \"backend\"",
		"lb.yaml:4:5: backends[0]: missing required key \"name\"",
		"lb.yaml:4:5: backends[0]: missing required key \"servers\"",
		"lb.yaml:7:9: backends[1].servers[0]: missing required key \"addr\"",
		"lb.yaml:9:14: backends[2].servers: expected at least one server, got an empty list",
	};

	(void)state;
	assert_errors(text, expected, sizeof expected / sizeof expected[0]);
}

static void test_no_listeners_without_admin_is_an_error(void **state)
{
	(void)state;
	assert_one_error("global: {workers: 2}\n",
			 "lb.yaml:1:1: listeners: expected at least one listener (or an admin "
			 "section), got none");
}

static void test_yaml_syntax_error_is_reported_with_position(void **state)
{
	(void)state;
	assert_one_error("listeners: [1, 2\n",
			 "lb.yaml:2:1: YAML syntax error: did not find expected ',' or ']' "
			 "(while parsing a flow sequence at 1:12)");
	assert_one_error("a: b: c\n",
			 "lb.yaml:1:5: YAML syntax error: mapping values are not allowed in "
			 "this context");
}

static void test_empty_file_is_an_error(void **state)
{
	static const char *const texts[] = { "", "# only a comment\n", "\n\n" };

	(void)state;
	for (size_t i = 0; i < 3; i++)
		assert_one_error(texts[i], "lb.yaml:1:1: expected a mapping with listeners and "
					   "backends, got an empty file");
}

static void test_top_level_not_mapping_is_an_error(void **state)
{
	(void)state;
	assert_one_error("- a\n- b\n", "lb.yaml:1:1: expected a mapping (global, admin, "
					 "listeners, backends) at the top level, got a sequence");
	assert_one_error("hello\n", "lb.yaml:1:1: expected a mapping (global, admin, "
				    "listeners, backends) at the top level, got \"hello\"");
}

static void test_several_errors_are_all_reported_in_file_order(void **state)
{
	static const char text[] = "global:\n"
				   "  grace: 5\n"
				   "  workers: many\n"
				   "listeners:\n"
				   "  - name: web\n"
				   "    bind: \"*:99999\"\n"
				   "    backend: nope\n"
				   "    colour: blue\n"
				   "backends:\n"
				   "  - name: app\n"
				   "    servers:\n"
				   "      - addr: 127.0.0.1:9001\n"
				   "        weight: 300\n";
	static const char *const expected[] = {
		"lb.yaml:2:10: global.grace: duration without unit: expected a duration from 0ms "
		"to 168h with a unit (ms, s, m, h), got \"5\"",
		"lb.yaml:3:12: global.workers: expected auto or an integer 1..64, got \"many\"",
		"lb.yaml:6:11: listeners[0].bind: expected an address HOST:PORT, [IPV6]:PORT or "
		"*:PORT with a port 1..65535, got \"*:99999\"",
		"lb.yaml:7:14: listeners[0].backend: no backend named \"nope\"",
		"lb.yaml:8:5: listeners[0]: unknown key \"colour\", expected one of: name, bind, "
		"mode, backend, max_header_size, proxy_protocol, http2, timeouts, tls",
		"lb.yaml:13:17: backends[0].servers[0].weight: expected an integer 0..256, got "
		"\"300\"",
	};

	(void)state;
	assert_errors(text, expected, sizeof expected / sizeof expected[0]);
}

static void test_other_value_checks(void **state)
{
	(void)state;
	assert_minimal_with_error(6, "    hash: {key: \"cookie:\"}\n",
				  "lb.yaml:7:17: backends[0].hash.key: expected header:NAME or "
				  "cookie:NAME with a non-empty token NAME, got \"cookie:\"");
	assert_minimal_with_error(6, "    hash: {bounded_load: 1.0}\n",
				  "lb.yaml:7:26: backends[0].hash.bounded_load: expected 0 (off) or a "
				  "number above 1.0 and at most 100, such as 1.25, got \"1.0\"");
	assert_minimal_with_error(6, "    health_check: {expect: 399-200}\n",
				  "lb.yaml:7:28: backends[0].health_check.expect: expected a status "
				  "code 100..599 or a range such as 200-399, got \"399-200\"");
	assert_minimal_with_error(6, "    health_check: {rise: 0}\n",
				  "lb.yaml:7:26: backends[0].health_check.rise: expected an integer "
				  "1..1000, got \"0\"");
	assert_minimal_with_error(6, "    max_connections: lots\n",
				  "lb.yaml:7:22: backends[0].max_connections: expected auto or an integer "
				  "0..100000 (0 = unlimited), got \"lots\"");
	assert_minimal_with_error(6, "    send_proxy: v3\n",
				  "lb.yaml:7:17: backends[0].send_proxy: expected off, v1 or v2, got \"v3\"");
	assert_minimal_with_error(6, "    queue: {max: -1}\n",
				  "lb.yaml:7:18: backends[0].queue.max: expected an integer 0..1000000, got "
				  "\"-1\"");
	assert_minimal_with_error(6, "    retry_budget: 120%\n",
				  "lb.yaml:7:19: backends[0].retry_budget: expected a percentage 0%..100%, such as 50%, got "
				  "\"120%\"");
	assert_minimal_with_error(6, "    retries: 11\n",
				  "lb.yaml:7:14: backends[0].retries: expected an integer 0..10, got "
				  "\"11\"");
	assert_minimal_with_error(6, "    balance: fastest\n",
				  "lb.yaml:7:14: backends[0].balance: expected round_robin, "
				  "least_conn, random or hash, got \"fastest\"");
	assert_minimal_with_error(4, "    proxy_protocol: maybe\n",
				  "lb.yaml:5:21: listeners[0].proxy_protocol: expected true or false, "
				  "got \"maybe\"");
	assert_minimal_with_error(0, "global: {log: {level: loud}}\n",
				  "lb.yaml:1:23: global.log.level: expected error, warn, info or "
				  "debug, got \"loud\"");
}

static void test_aliases_are_rejected(void **state)
{
	(void)state;
	assert_one_error("admin: &a {token: x}\nglobal: *a\n",
			 "lb.yaml:2:9: aliases (*name) are not supported, write the value out");
	/* the likely way to meet one by accident: an unquoted wildcard bind */
	assert_one_error("listeners:\n  - name: web\n    bind: *:8080\n",
			 "lb.yaml:3:12: YAML syntax error: did not find expected alphabetic or "
			 "numeric character (while scanning an alias at 3:11); quote values "
			 "starting with *, e.g. \"*:8080\"");
}

static void test_deep_nesting_is_rejected(void **state)
{
	size_t n = 100000;
	char *text = malloc(n + 1);

	(void)state;
	memset(text, '[', n);
	text[n] = '\0';
	assert_one_error(text, "lb.yaml:1:65: expected at most 64 nested levels, got more");
	free(text);
}

static void test_binary_garbage_is_an_error_not_a_crash(void **state)
{
	static const char nul[] = "admin:\n  token: \"a\\0b\"\n";
	unsigned seed = 12345;
	struct lb_config *cfg;
	struct config_errors errs;
	char text[4096];

	(void)state;
	assert_one_error("a: \x01\x02\n",
			 "lb.yaml:1:4: YAML syntax error: control characters are not allowed "
			 "(byte 0x01)");
	assert_one_error(nul, "lb.yaml:2:10: a value must not contain a NUL byte");
	/* embedded NUL bytes in the raw text */
	assert_int_equal(config_load_string(NAME, "a\0b", 3, &cfg, &errs), -1);
	assert_true(errs.count >= 1);
	config_errors_free(&errs);
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof text; i++) {
			seed = seed * 1103515245u + 12345u;
			text[i] = (char)(seed >> 16);
		}
		assert_int_equal(config_load_string(NAME, text, sizeof text, &cfg, &errs), -1);
		assert_true(errs.count >= 1);
		config_errors_free(&errs);
	}
	/* YAML-shaped noise reaches the section walkers, not just the reader */
	for (int round = 0; round < 2000; round++) {
		static const char alphabet[] = "  \n\n-:{}[],'\"#&*!|>.ab0123456789smhk"
					       "listeners:backends:servers:global:admin:name:"
					       "addr:bind:weight:";
		size_t len = 1 + round % 300;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			text[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
		}
		if (config_load_string(NAME, text, len, &cfg, &errs) == 0)
			config_free(cfg);
		else
			assert_true(errs.count >= 1);
		config_errors_free(&errs);
	}
}

static void test_too_many_errors_are_capped(void **state)
{
	size_t size = 200 * 32;
	char *text = malloc(size), *p = text;
	struct lb_config *cfg;
	struct config_errors errs;

	(void)state;
	p += sprintf(p, "global:\n");
	for (int i = 0; i < 150; i++)
		p += sprintf(p, "  k%d: 1\n", i);
	assert_int_equal(load(text, &cfg, &errs), -1);
	assert_int_equal(errs.count, 101);
	assert_string_equal(errs.lines[100], "lb.yaml: too many errors, stopped after 100");
	config_errors_free(&errs);
	free(text);
}

static void test_second_document_is_an_error(void **state)
{
	(void)state;
	assert_one_error("admin:\n---\nadmin:\n",
			 "lb.yaml:2:1: expected one YAML document, found a second one");
}

static void test_load_file_reports_unreadable_file(void **state)
{
	struct lb_config *cfg = (struct lb_config *)1;
	struct config_errors errs;

	(void)state;
	assert_int_equal(config_load_file("/nonexistent/lb.yaml", &cfg, &errs), CONFIG_UNREADABLE);
	assert_null(cfg);
	assert_int_equal(errs.count, 1);
	assert_string_equal(errs.lines[0], "/nonexistent/lb.yaml: cannot read: No such file or directory");
	config_errors_free(&errs);
}

/* ---- value parsers ---- */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} good[] = { { "250ms", 250 }, { "2s", 2000 }, { "5m", 300000 }, { "1h", 3600000 },
		     { "0ms", 0 }, { "007s", 7000 } };
	static const char *const bad[] = { "5", "", "s", "2 s", "2S", "-1s", "1.5s", "2sec",
					   "+2s", " 2s", "99999999999999999999ms",
					   "18446744073709551615h" };
	uint64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(config_parse_duration(good[i].text, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(config_parse_duration(bad[i], &ms), -1);
	assert_int_equal(config_parse_duration(NULL, &ms), -1);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *text;
		size_t bytes;
	} good[] = { { "512", 512 }, { "16k", 16384 }, { "16K", 16384 }, { "1m", 1048576 },
		     { "1g", 1073741824 }, { "0", 0 } };
	static const char *const bad[] = { "", "k", "1kb", "-1", "1.5k", "1t", " 1",
					   "99999999999999999999", "18446744073709551615k" };
	size_t bytes;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(config_parse_size(good[i].text, &bytes), 0);
		assert_int_equal(bytes, good[i].bytes);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(config_parse_size(bad[i], &bytes), -1);
}

static void test_parse_percent(void **state)
{
	static const struct {
		const char *text;
		int percent;
	} good[] = { { "50%", 50 }, { "0", 0 }, { "0%", 0 }, { "100%", 100 }, { "7", 7 } };
	static const char *const bad[] = { "", "%", "101%", "50%%", "-1%", "12.5%", " 5%", "5 %", "5x" };
	int percent;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(config_parse_percent(good[i].text, &percent), 0);
		assert_int_equal(percent, good[i].percent);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(config_parse_percent(bad[i], &percent), -1);
}

static void test_descriptors_wanted_count_connections_pools_and_checks(void **state)
{
	struct lb_config *cfg = load_ok(minimal); /* 10000 connections, one server, keepalive 32 */
	(void)state;
	assert_int_equal(config_descriptors_wanted(cfg, 2), 2 * 10000 + 64 + 4 * 2 + 1 + 1 * (1 + 32 * 2));
	config_free(cfg);
}

static void test_parse_addr(void **state)
{
	static const struct {
		const char *text, *host;
		unsigned port;
	} good[] = { { "127.0.0.1:80", "127.0.0.1", 80 },
		     { "[::1]:443", "::1", 443 },
		     { "[2001:db8::1]:65535", "2001:db8::1", 65535 },
		     { "*:8080", "", 8080 },
		     { "api.internal:53", "api.internal", 53 },
		     { "localhost:1", "localhost", 1 } };
	static const char *const bad[] = { "127.0.0.1", ":80", "host:0", "host:65536", "::1:80",
					   "[::1]80", "[zz]:80", "[]:80", "host:8o", "host:",
					   "1.2.3.999:80", "a b:80", "", "host:+80", "host:000080",
					   "*:", "[::1]", "h\x01:80" };
	struct cfg_addr addr;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		memset(&addr, 0, sizeof addr);
		assert_int_equal(config_parse_addr(good[i].text, &addr), 0);
		assert_string_equal(addr.text, good[i].text);
		assert_string_equal(addr.host, good[i].host);
		assert_int_equal(addr.port, good[i].port);
		config_addr_free(&addr);
		assert_null(addr.text);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&addr, 0, sizeof addr);
		assert_int_equal(config_parse_addr(bad[i], &addr), -1);
		assert_null(addr.text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_config_gets_every_default),
		cmocka_unit_test(test_full_config_sets_every_key),
		cmocka_unit_test(test_hash_key_header_and_uri),
		cmocka_unit_test(test_zero_listeners_allowed_with_admin),
		cmocka_unit_test(test_reference_config_is_valid),
		cmocka_unit_test(test_demo_config_is_valid),
		cmocka_unit_test(test_weight_out_of_range_reports_file_line_column_path),
		cmocka_unit_test(test_unknown_key_is_an_error),
		cmocka_unit_test(test_wrong_node_type_is_an_error),
		cmocka_unit_test(test_duplicate_key_is_an_error),
		cmocka_unit_test(test_duration_without_unit_is_an_error),
		cmocka_unit_test(test_bad_size_is_an_error),
		cmocka_unit_test(test_bad_address_is_an_error),
		cmocka_unit_test(test_duplicate_listener_name_is_an_error),
		cmocka_unit_test(test_duplicate_bind_is_an_error),
		cmocka_unit_test(test_missing_backend_reference_is_an_error),
		cmocka_unit_test(test_duplicate_backend_name_is_an_error),
		cmocka_unit_test(test_duplicate_server_addr_is_an_error),
		cmocka_unit_test(test_srv_server_is_a_name_without_port_or_weight),
		cmocka_unit_test(test_missing_required_keys_are_errors),
		cmocka_unit_test(test_no_listeners_without_admin_is_an_error),
		cmocka_unit_test(test_yaml_syntax_error_is_reported_with_position),
		cmocka_unit_test(test_empty_file_is_an_error),
		cmocka_unit_test(test_top_level_not_mapping_is_an_error),
		cmocka_unit_test(test_several_errors_are_all_reported_in_file_order),
		cmocka_unit_test(test_other_value_checks),
		cmocka_unit_test(test_aliases_are_rejected),
		cmocka_unit_test(test_deep_nesting_is_rejected),
		cmocka_unit_test(test_binary_garbage_is_an_error_not_a_crash),
		cmocka_unit_test(test_too_many_errors_are_capped),
		cmocka_unit_test(test_second_document_is_an_error),
		cmocka_unit_test(test_load_file_reports_unreadable_file),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_parse_percent),
		cmocka_unit_test(test_bad_percentage_is_an_error),
		cmocka_unit_test(test_descriptors_wanted_count_connections_pools_and_checks),
		cmocka_unit_test(test_tls_keys_are_read_with_their_places),
		cmocka_unit_test(test_tls_defaults),
		cmocka_unit_test(test_tls_errors),
		cmocka_unit_test(test_http2_and_alpn_h2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
