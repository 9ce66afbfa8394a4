/*
 * config: the YAML file turned into a struct lb_config. See config.h.
 *
 * Two passes. First libyaml's event stream becomes a small tree of nodes
 * (config_tree.c), each with its 1-based line and column, so that a message
 * can point at any node and so that checks spanning the file (duplicate
 * names, a listener's backend) can run once everything is read. Then the
 * tree is walked against tables of keys, one per section (here); an entry
 * names the key, its type (config_value.c parses the values), its bounds
 * and the field it sets. Every error is recorded and the walk goes on, so
 * one run reports them all.
 *
 * Limits, chosen so that no input can make the loader crash, spin or eat
 * memory out of proportion to the file (they are also in conf/lb.yaml):
 *   - files above CONFIG_FILE_MAX bytes are refused;
 *   - nesting deeper than CONFIG_DEPTH_MAX is refused (the tree is freed
 *     recursively; the bound keeps that recursion shallow);
 *   - aliases (*name) are refused: they are never needed here and are the
 *     way to make a small file expand into a huge tree;
 *   - at most CONFIG_ERRORS_MAX errors are reported, then one line saying so;
 *   - cross-section checks sort (n log n), never compare every pair.
 */
#include "config.h"
#include "config_tree.h"
#include "config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (16u << 20)
#define CONFIG_KEYS_MAX 24 /* keys in the largest section table, rounded up */
#define CONFIG_PATH_MAX 192
#define CONFIG_SHOW_MAX 60 /* bytes of a bad value quoted in a message */
#define CONFIG_NAME_MAX 64
#define CONFIG_DURATION_MAX (168ull * 3600 * 1000) /* 7 days */

/* Enums are stored through an int pointer by the table-driven setter. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum listener_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum balance_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hash_method) == sizeof(int), "enum size");
_Static_assert(sizeof(enum check_type) == sizeof(int), "enum size");

/* ---- errors ------------------------------------------------------------ */


static int config_error_cmp(const void *a, const void *b)
{
	const struct config_error_line *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int config_errors_add(struct config_errors *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int config_errors_add(struct config_errors *errs, const char *fmt, ...)
{
	char **grown = realloc(errs->lines, (errs->count + 1) * sizeof *grown);
	va_list ap;
	int n;

	if (!grown)
		return -1;
	errs->lines = grown;
	va_start(ap, fmt);
	n = vasprintf(&errs->lines[errs->count], fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	errs->count++;
	return 0;
}

/* Moves the collected errors, sorted into file order, to errs. */
static void config_errors_finish(struct config_ctx *ctx, struct config_errors *errs)
{
	if (ctx->nerrors) {
		qsort(ctx->errors, ctx->nerrors, sizeof *ctx->errors, config_error_cmp);
		errs->lines = calloc(ctx->nerrors, sizeof *errs->lines);
		if (!errs->lines) {
			ctx->oom = true;
		} else {
			for (size_t i = 0; i < ctx->nerrors; i++) {
				errs->lines[i] = ctx->errors[i].text;
				ctx->errors[i].text = NULL;
			}
			errs->count = ctx->nerrors;
		}
	}
	for (size_t i = 0; i < ctx->nerrors; i++)
		free(ctx->errors[i].text);
	free(ctx->errors);
	ctx->errors = NULL;
	ctx->nerrors = 0;
	if (ctx->too_many)
		config_errors_add(errs, "%s: too many errors, stopped after %d", ctx->name,
				  CONFIG_ERRORS_MAX);
	if (ctx->oom)
		config_errors_add(errs, "%s: out of memory", ctx->name);
}

void config_errors_free(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->count; i++)
		free(errs->lines[i]);
	free(errs->lines);
	errs->lines = NULL;
	errs->count = 0;
}

/*
 * A value as quoted in a message: at most CONFIG_SHOW_MAX bytes, control
 * bytes, quotes and backslashes escaped, so a binary file cannot garble the
 * terminal or the log. Collections are named instead.
 */
static const char *config_show(const struct config_node *node, char *buf, size_t size)
{
	size_t used = 0, n;
	const unsigned char *s;

	if (node->kind == CONFIG_NODE_MAPPING)
		return "a mapping";
	if (node->kind == CONFIG_NODE_SEQUENCE)
		return "a sequence";
	s = (const unsigned char *)node->text;
	n = strlen(node->text);
	if (n > CONFIG_SHOW_MAX) {
		n = CONFIG_SHOW_MAX;
		while (n > 0 && (s[n] & 0xc0) == 0x80) /* do not cut a UTF-8 sequence */
			n--;
	}
	buf[used++] = '"';
	for (size_t i = 0; i < n && used + 8 < size; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			used += (size_t)snprintf(buf + used, size - used, "\\x%02x", s[i]);
		else if (s[i] == '"' || s[i] == '\\')
			used += (size_t)snprintf(buf + used, size - used, "\\%c", s[i]);
		else
			buf[used++] = (char)s[i];
	}
	if (n < strlen(node->text))
		used += (size_t)snprintf(buf + used, size - used, "...");
	buf[used++] = '"';
	buf[used] = '\0';
	return buf;
}

/* "expected WHAT, got VALUE" at the node. */
static void config_error_expected(struct config_ctx *ctx, const struct config_node *node,
				  const char *path, const char *what)
{
	char shown[CONFIG_SHOW_MAX * 4 + 16];

	config_error(ctx, node->line, node->col, path, "expected %s, got %s", what,
		     config_show(node, shown, sizeof shown));
}

/* ---- memory helpers ---------------------------------------------------- */

static char *config_strdup(struct config_ctx *ctx, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		ctx->oom = true;
	return copy;
}

/* Replaces *field (owned) by a copy of s. */
static void config_set_string(struct config_ctx *ctx, char **field, const char *s)
{
	char *copy = config_strdup(ctx, s);

	if (!copy)
		return;
	free(*field);
	*field = copy;
}

/* ---- key tables ---------------------------------------------------------- */

enum config_kind {
	CONFIG_INT,
	CONFIG_DURATION,
	CONFIG_SIZE,
	CONFIG_PERCENT, /* an int 0..100, written "50%" (or a bare 0..100) */
	CONFIG_BOOL,
	CONFIG_STRING,
	CONFIG_ENUM,
	CONFIG_ADDR,
	CONFIG_FILE, /* a struct cfg_located: a file name, remembered with its place */
	CONFIG_LOCATED, /* a struct cfg_located: a string checked later, with its place */
	CONFIG_MAP, /* a nested section whose fields live in the same struct */
	CONFIG_CUSTOM,
};

/* CONFIG_STRING flavours */
enum config_string_kind {
	CONFIG_STRING_ANY, /* no control characters */
	CONFIG_STRING_NONEMPTY,
	CONFIG_STRING_NAME, /* listener/backend names: used in URLs and metric labels */
	CONFIG_STRING_REQUEST_PATH,
	CONFIG_STRING_NO_SPACE,
};

/* CONFIG_ADDR flavours */
enum config_addr_kind { CONFIG_ADDR_WILDCARD, CONFIG_ADDR_HOST, CONFIG_ADDR_SERVER /* HOST, or srv:NAME */ };

struct config_key;
typedef void config_custom_fn(struct config_ctx *ctx, const struct config_node *node, void *base,
			      const char *path);

struct config_key {
	const char *name;
	enum config_kind kind;
	size_t offset; /* of the field in the section's base struct */
	long long min, max; /* CONFIG_INT, CONFIG_DURATION (ms), CONFIG_SIZE */
	int flavour; /* enum config_string_kind or config_addr_kind */
	const char *const *names; /* CONFIG_ENUM: NULL-terminated, index = value */
	const struct config_key *sub; /* CONFIG_MAP */
	config_custom_fn *custom; /* CONFIG_CUSTOM: parses the node itself */
	bool required;
};

#define KEY(type, key, field, ...) { .name = key, .offset = offsetof(type, field), __VA_ARGS__ }
#define KEY_CUSTOM(key, fn, ...) { .name = key, .kind = CONFIG_CUSTOM, .custom = fn, __VA_ARGS__ }

static const char *const config_log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const config_mode_names[] = { "http", "tcp", NULL };
static const char *const config_balance_names[] = { "round_robin", "least_conn", "random", "hash",
						    NULL };
static const char *const config_method_names[] = { "maglev", "ring", NULL };
static const char *const config_check_type_names[] = { "none", "tcp", "http", NULL };
static const char *const config_tls_version_names[] = { "1.2", "1.3", NULL };
static const char *const config_verify_client_names[] = { "off", "optional", "required", NULL };
static const char *const config_send_proxy_names[] = { "off", "v1", "v2", NULL }; /* index = version */

static config_custom_fn config_set_workers, config_set_resolvers, config_set_admin,
	config_set_listeners, config_set_backends, config_set_servers, config_set_hash_key,
	config_set_bounded_load, config_set_expect, config_set_listener_tls, config_set_certificates,
	config_set_alpn, config_set_backend_tls, config_set_backend_limit, config_set_server_limit;

#define DURATION(lo) .kind = CONFIG_DURATION, .min = (lo), .max = (long long)CONFIG_DURATION_MAX

static const struct config_key config_log_keys[] = {
	KEY(struct lb_config, "level", global.log.level, .kind = CONFIG_ENUM,
	    .names = config_log_level_names),
	KEY(struct lb_config, "target", global.log.target, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NONEMPTY),
	{ 0 },
};

static const struct config_key config_global_keys[] = {
	KEY_CUSTOM("workers", config_set_workers),
	KEY(struct lb_config, "reuseport", global.reuseport, .kind = CONFIG_BOOL),
	KEY(struct lb_config, "cpu_affinity", global.cpu_affinity, .kind = CONFIG_BOOL),
	KEY(struct lb_config, "max_connections", global.max_connections, .kind = CONFIG_INT,
	    .min = 1, .max = 1000000),
	KEY(struct lb_config, "max_header_fields", global.max_header_fields, .kind = CONFIG_INT,
	    .min = 8, .max = 10000),
	KEY(struct lb_config, "pidfile", global.pidfile, .kind = CONFIG_STRING),
	KEY(struct lb_config, "user", global.user, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NO_SPACE),
	KEY(struct lb_config, "grace", global.grace_ms, DURATION(0)),
	KEY(struct lb_config, "drain_delay", global.drain_delay_ms, DURATION(0)),
	KEY(struct lb_config, "log", global.log, .kind = CONFIG_MAP, .sub = config_log_keys),
	KEY(struct lb_config, "access_log", global.access_log, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NONEMPTY),
	KEY_CUSTOM("resolvers", config_set_resolvers),
	{ 0 },
};

static const struct config_key config_admin_keys[] = {
	KEY(struct lb_config, "bind", admin.bind, .kind = CONFIG_ADDR,
	    .flavour = CONFIG_ADDR_WILDCARD),
	KEY(struct lb_config, "token", admin.token, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NO_SPACE),
	KEY(struct lb_config, "max_connections", admin.max_connections, .kind = CONFIG_INT, .min = 1,
	    .max = 10000),
	{ 0 },
};

static const struct config_key config_listener_timeout_keys[] = {
	KEY(struct cfg_listener, "client", timeouts.client_ms, DURATION(1)),
	KEY(struct cfg_listener, "header", timeouts.header_ms, DURATION(1)),
	{ 0 },
};

static const struct config_key config_listener_keys[] = {
	KEY(struct cfg_listener, "name", name, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NAME, .required = true),
	KEY(struct cfg_listener, "bind", bind, .kind = CONFIG_ADDR, .flavour = CONFIG_ADDR_WILDCARD,
	    .required = true),
	KEY(struct cfg_listener, "mode", mode, .kind = CONFIG_ENUM, .names = config_mode_names),
	KEY(struct cfg_listener, "backend", backend, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NAME, .required = true),
	/* at most libhttp-parser's limit for a head (http_msg.h HTTP_MAX_HEAD_SIZE) */
	KEY(struct cfg_listener, "max_header_size", max_header_size, .kind = CONFIG_SIZE,
	    .min = 256, .max = 80 * 1024),
	KEY(struct cfg_listener, "proxy_protocol", proxy_protocol, .kind = CONFIG_BOOL),
	KEY(struct cfg_listener, "http2", http2, .kind = CONFIG_BOOL),
	KEY(struct cfg_listener, "timeouts", timeouts, .kind = CONFIG_MAP,
	    .sub = config_listener_timeout_keys),
	KEY_CUSTOM("tls", config_set_listener_tls),
	{ 0 },
};

static const struct config_key config_listener_tls_keys[] = {
	KEY_CUSTOM("certificates", config_set_certificates, .required = true),
	KEY(struct cfg_listener_tls, "min_version", min_version, .kind = CONFIG_ENUM,
	    .names = config_tls_version_names),
	KEY(struct cfg_listener_tls, "ciphers", ciphers, .kind = CONFIG_LOCATED),
	KEY(struct cfg_listener_tls, "ciphersuites", ciphersuites, .kind = CONFIG_LOCATED),
	KEY_CUSTOM("alpn", config_set_alpn),
	KEY(struct cfg_listener_tls, "strict_sni", strict_sni, .kind = CONFIG_BOOL),
	KEY(struct cfg_listener_tls, "session_tickets", session_tickets, .kind = CONFIG_BOOL),
	KEY(struct cfg_listener_tls, "ticket_key_file", ticket_key_file, .kind = CONFIG_FILE),
	KEY(struct cfg_listener_tls, "client_ca", client_ca, .kind = CONFIG_FILE),
	KEY(struct cfg_listener_tls, "verify_client", verify_client, .kind = CONFIG_ENUM,
	    .names = config_verify_client_names),
	KEY(struct cfg_listener_tls, "ktls", ktls, .kind = CONFIG_BOOL),
	{ 0 },
};

static const struct config_key config_certificate_keys[] = {
	KEY(struct cfg_tls_certificate, "cert", cert, .kind = CONFIG_FILE, .required = true),
	KEY(struct cfg_tls_certificate, "key", key, .kind = CONFIG_FILE, .required = true),
	{ 0 },
};

static const struct config_key config_backend_tls_keys[] = {
	KEY(struct cfg_backend_tls, "verify", verify, .kind = CONFIG_BOOL),
	KEY(struct cfg_backend_tls, "ca", ca, .kind = CONFIG_FILE),
	KEY(struct cfg_backend_tls, "sni", sni, .kind = CONFIG_STRING, .flavour = CONFIG_STRING_NO_SPACE),
	KEY(struct cfg_backend_tls, "client_cert", client_cert, .kind = CONFIG_FILE),
	KEY(struct cfg_backend_tls, "client_key", client_key, .kind = CONFIG_FILE),
	{ 0 },
};

static const struct config_key config_hash_keys[] = {
	KEY_CUSTOM("key", config_set_hash_key),
	KEY(struct cfg_backend, "method", hash.method, .kind = CONFIG_ENUM,
	    .names = config_method_names),
	KEY_CUSTOM("bounded_load", config_set_bounded_load),
	{ 0 },
};

static const struct config_key config_health_keys[] = {
	KEY(struct cfg_backend, "type", health.type, .kind = CONFIG_ENUM,
	    .names = config_check_type_names),
	KEY(struct cfg_backend, "path", health.path, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_REQUEST_PATH),
	KEY(struct cfg_backend, "host", health.host, .kind = CONFIG_STRING,
	    .flavour = CONFIG_STRING_NO_SPACE),
	KEY_CUSTOM("expect", config_set_expect),
	KEY(struct cfg_backend, "interval", health.interval_ms, DURATION(1)),
	KEY(struct cfg_backend, "timeout", health.timeout_ms, DURATION(1)),
	KEY(struct cfg_backend, "rise", health.rise, .kind = CONFIG_INT, .min = 1, .max = 1000),
	KEY(struct cfg_backend, "fall", health.fall, .kind = CONFIG_INT, .min = 1, .max = 1000),
	{ 0 },
};

static const struct config_key config_passive_keys[] = {
	KEY(struct cfg_backend, "failures", passive.failures, .kind = CONFIG_INT, .min = 0,
	    .max = 1000000),
	KEY(struct cfg_backend, "cooldown", passive.cooldown_ms, DURATION(0)),
	KEY(struct cfg_backend, "max_ejected", passive.max_ejected_percent, .kind = CONFIG_PERCENT),
	{ 0 },
};

static const struct config_key config_queue_keys[] = {
	KEY(struct cfg_backend, "max", queue_max, .kind = CONFIG_INT, .min = 0, .max = 1000000),
	{ 0 },
};

static const struct config_key config_backend_timeout_keys[] = {
	KEY(struct cfg_backend, "queue", timeouts.queue_ms, DURATION(1)),
	KEY(struct cfg_backend, "connect", timeouts.connect_ms, DURATION(1)),
	KEY(struct cfg_backend, "response", timeouts.response_ms, DURATION(1)),
	KEY(struct cfg_backend, "idle", timeouts.idle_ms, DURATION(1)),
	{ 0 },
};

static const struct config_key config_backend_keys[] = {
	KEY(struct cfg_backend, "name", name, .kind = CONFIG_STRING, .flavour = CONFIG_STRING_NAME,
	    .required = true),
	KEY(struct cfg_backend, "balance", balance, .kind = CONFIG_ENUM,
	    .names = config_balance_names),
	KEY(struct cfg_backend, "hash", hash, .kind = CONFIG_MAP, .sub = config_hash_keys),
	KEY_CUSTOM("servers", config_set_servers, .required = true),
	/* at least 1s: each round is a DNS query per host-name server */
	KEY(struct cfg_backend, "resolve_interval", resolve_interval_ms, DURATION(1000)),
	KEY(struct cfg_backend, "health_check", health, .kind = CONFIG_MAP,
	    .sub = config_health_keys),
	KEY(struct cfg_backend, "passive", passive, .kind = CONFIG_MAP, .sub = config_passive_keys),
	KEY(struct cfg_backend, "panic_threshold", panic_threshold_percent, .kind = CONFIG_PERCENT),
	/* a request is tried on at most 1 + 10 servers: beyond that the
	 * backend is down, and more attempts only delay the 502 */
	KEY(struct cfg_backend, "retries", retries, .kind = CONFIG_INT, .min = 0, .max = 10),
	KEY(struct cfg_backend, "retry_budget", retry_budget_percent, .kind = CONFIG_PERCENT),
	KEY(struct cfg_backend, "keepalive", keepalive, .kind = CONFIG_INT, .min = 0,
	    .max = 10000),
	KEY_CUSTOM("max_connections", config_set_backend_limit),
	KEY(struct cfg_backend, "max_connections_cap", max_connections_cap, .kind = CONFIG_INT, .min = 1,
	    .max = CFG_LIMIT_MAX),
	KEY(struct cfg_backend, "queue", queue_max, .kind = CONFIG_MAP, .sub = config_queue_keys),
	KEY(struct cfg_backend, "slow_start", slow_start_ms, DURATION(0)),
	KEY(struct cfg_backend, "send_proxy", send_proxy, .kind = CONFIG_ENUM, .names = config_send_proxy_names),
	KEY(struct cfg_backend, "timeouts", timeouts, .kind = CONFIG_MAP,
	    .sub = config_backend_timeout_keys),
	KEY_CUSTOM("tls", config_set_backend_tls),
	{ 0 },
};

static const struct config_key config_server_keys[] = {
	KEY(struct cfg_server, "addr", addr, .kind = CONFIG_ADDR, .flavour = CONFIG_ADDR_SERVER,
	    .required = true),
	KEY(struct cfg_server, "weight", weight, .kind = CONFIG_INT, .min = 0, .max = 256),
	KEY_CUSTOM("max_connections", config_set_server_limit),
	{ 0 },
};

static const struct config_key config_top_keys[] = {
	KEY(struct lb_config, "global", global, .kind = CONFIG_MAP, .sub = config_global_keys),
	KEY_CUSTOM("admin", config_set_admin),
	KEY_CUSTOM("listeners", config_set_listeners),
	KEY_CUSTOM("backends", config_set_backends),
	{ 0 },
};

static size_t config_key_index(const struct config_key *table, const char *name)
{
	size_t i;

	for (i = 0; table[i].name; i++)
		if (strcmp(table[i].name, name) == 0)
			break;
	return i;
}

/* ---- describing what a key wants ----------------------------------------- */

static void config_format_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
}

static void config_format_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes != 0 && bytes % (1024 * 1024) == 0)
		snprintf(buf, size, "%" PRIu64 "m", bytes / (1024 * 1024));
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(buf, size, "%" PRIu64 "k", bytes / 1024);
	else
		snprintf(buf, size, "%" PRIu64, bytes);
}

/* "a or b", "a, b or c" */
static void config_format_names(const char *const *names, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] && used < size; i++) {
		const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";

		used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, names[i]);
	}
}

static void config_describe(const struct config_key *key, char *buf, size_t size)
{
	char lo[32], hi[32], names[256];

	switch (key->kind) {
	case CONFIG_INT:
		snprintf(buf, size, "an integer %lld..%lld", key->min, key->max);
		return;
	case CONFIG_DURATION:
		config_format_duration((uint64_t)key->min, lo, sizeof lo);
		config_format_duration((uint64_t)key->max, hi, sizeof hi);
		snprintf(buf, size, "a duration from %s to %s with a unit (ms, s, m, h)", lo, hi);
		return;
	case CONFIG_SIZE:
		config_format_size((uint64_t)key->min, lo, sizeof lo);
		config_format_size((uint64_t)key->max, hi, sizeof hi);
		snprintf(buf, size, "a size from %s to %s (bytes, or with k, m, g)", lo, hi);
		return;
	case CONFIG_PERCENT:
		snprintf(buf, size, "a percentage 0%%..100%%, such as 50%%");
		return;
	case CONFIG_BOOL:
		snprintf(buf, size, "true or false");
		return;
	case CONFIG_ENUM:
		config_format_names(key->names, names, sizeof names);
		snprintf(buf, size, "%s", names);
		return;
	case CONFIG_ADDR:
		snprintf(buf, size, "%s with a port 1..65535%s",
			 key->flavour == CONFIG_ADDR_WILDCARD ? "an address HOST:PORT, [IPV6]:PORT or *:PORT"
							     : "an address HOST:PORT or [IPV6]:PORT",
			 key->flavour == CONFIG_ADDR_SERVER ? ", or srv:NAME" : "");
		return;
	case CONFIG_STRING:
		switch (key->flavour) {
		case CONFIG_STRING_NONEMPTY:
			snprintf(buf, size, "a non-empty string without control characters");
			return;
		case CONFIG_STRING_NAME:
			snprintf(buf, size, "a name of 1 to %d letters, digits, '_', '-' or '.'",
				 CONFIG_NAME_MAX);
			return;
		case CONFIG_STRING_REQUEST_PATH:
			snprintf(buf, size, "a request path starting with \"/\", without spaces");
			return;
		case CONFIG_STRING_NO_SPACE:
			snprintf(buf, size, "a string without spaces or control characters");
			return;
		default:
			snprintf(buf, size, "a string without control characters");
			return;
		}
	case CONFIG_FILE:
		snprintf(buf, size, "a file name");
		return;
	case CONFIG_LOCATED:
		snprintf(buf, size, "a string");
		return;
	case CONFIG_MAP:
		snprintf(buf, size, "a mapping");
		return;
	case CONFIG_CUSTOM:
		break;
	}
	snprintf(buf, size, "a value");
}

/* ---- setting one field ----------------------------------------------------- */

static bool config_string_valid(const char *s, int flavour)
{
	size_t len = strlen(s);

	if (flavour == CONFIG_STRING_NAME && (len == 0 || len > CONFIG_NAME_MAX))
		return false;
	if (flavour == CONFIG_STRING_NONEMPTY && len == 0)
		return false;
	if (flavour == CONFIG_STRING_REQUEST_PATH && s[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == ' ' && (flavour == CONFIG_STRING_NO_SPACE ||
				 flavour == CONFIG_STRING_REQUEST_PATH))
			return false;
		if (flavour == CONFIG_STRING_NAME && !isalnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

static bool config_all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Sets a scalar field from a scalar node. Returns -1 on a bad value. */
static int config_set_scalar(struct config_ctx *ctx, const struct config_key *key,
			     const struct config_node *node, void *field)
{
	const char *text = node->text;
	long long integer;
	uint64_t ms;
	size_t bytes;
	struct cfg_addr addr;
	int rc;

	switch (key->kind) {
	case CONFIG_INT:
		if (config_parse_integer(text, &integer) < 0 || integer < key->min || integer > key->max)
			return -1;
		*(int *)field = (int)integer;
		return 0;
	case CONFIG_DURATION:
		if (config_parse_duration(text, &ms) < 0 || ms < (uint64_t)key->min ||
		    ms > (uint64_t)key->max)
			return -1;
		*(uint64_t *)field = ms;
		return 0;
	case CONFIG_SIZE:
		if (config_parse_size(text, &bytes) < 0 || bytes < (size_t)key->min ||
		    bytes > (size_t)key->max)
			return -1;
		*(size_t *)field = bytes;
		return 0;
	case CONFIG_PERCENT:
		return config_parse_percent(text, (int *)field);
	case CONFIG_BOOL:
		if (!strcasecmp(text, "true") || !strcasecmp(text, "yes") || !strcasecmp(text, "on"))
			*(bool *)field = true;
		else if (!strcasecmp(text, "false") || !strcasecmp(text, "no") ||
			 !strcasecmp(text, "off"))
			*(bool *)field = false;
		else
			return -1;
		return 0;
	case CONFIG_ENUM:
		for (int i = 0; key->names[i]; i++) {
			if (strcmp(text, key->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		return -1;
	case CONFIG_STRING:
		if (!config_string_valid(text, key->flavour))
			return -1;
		config_set_string(ctx, field, text);
		return 0;
	case CONFIG_ADDR:
		if (key->flavour == CONFIG_ADDR_SERVER && strncmp(text, "srv:", 4) == 0)
			rc = config_srv_parse(text, &addr);
		else
			rc = config_addr_parse(text, &addr);
		if (rc == -2) {
			ctx->oom = true;
			return 0;
		}
		if (rc < 0 || (key->flavour != CONFIG_ADDR_WILDCARD && addr.host[0] == '\0')) {
			if (rc == 0)
				config_addr_free(&addr);
			return -1;
		}
		config_addr_free(field);
		*(struct cfg_addr *)field = addr;
		return 0;
	default:
		return -1;
	}
}

static void config_apply_mapping(struct config_ctx *ctx, const struct config_node *node,
				 const struct config_key *table, void *base, const char *path,
				 struct config_pos *marks);

static void config_located_free(struct cfg_located *f)
{
	free(f->value);
	free(f->where);
	f->value = f->where = NULL;
}

/* Kept with "FILE:LINE:COL: path" for the messages of whoever uses it
 * later; relative file names start at the configuration's directory, so
 * that lb finds them from wherever it was started. */
static void config_set_located(struct config_ctx *ctx, const struct config_node *node, struct cfg_located *f,
			       const char *path, bool file)
{
	if (node->kind != CONFIG_NODE_SCALAR || !config_string_valid(node->text, CONFIG_STRING_ANY)) {
		config_error_expected(ctx, node, path, file ? "a file name" : "a string");
		return;
	}
	config_located_free(f);
	if (node->text[0] == '\0') {
		f->value = config_strdup(ctx, "");
		return;
	}
	bool relative = file && node->text[0] != '/' && ctx->dir != NULL;
	size_t n = (relative ? strlen(ctx->dir) + 1 : 0) + strlen(node->text) + 1;
	size_t w = strlen(ctx->name) + strlen(path) + 32;
	f->value = malloc(n);
	f->where = malloc(w);
	if (f->value == NULL || f->where == NULL) {
		config_located_free(f);
		ctx->oom = true;
		return;
	}
	snprintf(f->value, n, "%s%s%s", relative ? ctx->dir : "", relative ? "/" : "", node->text);
	snprintf(f->where, w, "%s:%u:%u: %s", ctx->name, node->line, node->col, path);
}

static void config_apply_value(struct config_ctx *ctx, const struct config_key *key,
			       const struct config_node *node, void *base, const char *path)
{
	char what[256], shown[CONFIG_SHOW_MAX * 4 + 16];

	if (node->kind == CONFIG_NODE_BAD)
		return;
	if (key->kind == CONFIG_CUSTOM) {
		key->custom(ctx, node, base, path);
		return;
	}
	if (key->kind == CONFIG_FILE || key->kind == CONFIG_LOCATED) {
		config_set_located(ctx, node, (struct cfg_located *)((char *)base + key->offset), path,
				   key->kind == CONFIG_FILE);
		return;
	}
	if (key->kind == CONFIG_MAP) {
		if (config_node_is_null(node))
			return;
		if (node->kind != CONFIG_NODE_MAPPING)
			config_error_expected(ctx, node, path, "a mapping");
		else
			config_apply_mapping(ctx, node, key->sub, base, path, NULL);
		return;
	}
	if (node->kind == CONFIG_NODE_SCALAR &&
	    config_set_scalar(ctx, key, node, (char *)base + key->offset) == 0)
		return;
	config_describe(key, what, sizeof what);
	if (key->kind == CONFIG_DURATION && node->kind == CONFIG_NODE_SCALAR &&
	    config_all_digits(node->text))
		config_error(ctx, node->line, node->col, path, "duration without unit: expected %s, got %s",
			     what, config_show(node, shown, sizeof shown));
	else
		config_error_expected(ctx, node, path, what);
}

static void config_join_path(char *buf, size_t size, const char *path, const char *key)
{
	if (path[0])
		snprintf(buf, size, "%s.%s", path, key);
	else
		snprintf(buf, size, "%s", key);
}

/*
 * Applies every key of a mapping node through the table. marks (optional,
 * CONFIG_KEYS_MAX entries) receives the position of each key's value.
 * Reports unknown, duplicate and missing required keys.
 */
static void config_apply_mapping(struct config_ctx *ctx, const struct config_node *node,
				 const struct config_key *table, void *base, const char *path,
				 struct config_pos *marks)
{
	struct config_pos seen[CONFIG_KEYS_MAX] = { { 0, 0 } };
	char sub[CONFIG_PATH_MAX], shown[CONFIG_SHOW_MAX * 4 + 16], names[512];

	for (size_t i = 0; i + 1 < node->count; i += 2) {
		const struct config_node *key = node->items[i], *value = node->items[i + 1];
		size_t index;

		if (key->kind == CONFIG_NODE_BAD)
			continue;
		if (key->kind != CONFIG_NODE_SCALAR) {
			config_error(ctx, key->line, key->col, path, "expected a key, got %s",
				     config_show(key, shown, sizeof shown));
			continue;
		}
		index = config_key_index(table, key->text);
		if (!table[index].name) {
			size_t used = 0;

			for (size_t k = 0; table[k].name && used < sizeof names; k++)
				used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
							 k ? ", " : "", table[k].name);
			config_error(ctx, key->line, key->col, path,
				     "unknown key %s, expected one of: %s",
				     config_show(key, shown, sizeof shown), names);
			continue;
		}
		config_join_path(sub, sizeof sub, path, table[index].name);
		if (seen[index].line) {
			config_error(ctx, key->line, key->col, sub,
				     "duplicate key \"%s\", first given at line %u", key->text,
				     seen[index].line);
			continue;
		}
		seen[index] = (struct config_pos){ key->line, key->col };
		if (marks)
			marks[index] = (struct config_pos){ value->line, value->col };
		config_apply_value(ctx, &table[index], value, base, sub);
	}
	for (size_t k = 0; table[k].name; k++)
		if (table[k].required && !seen[k].line)
			config_error(ctx, node->line, node->col, path, "missing required key \"%s\"",
				     table[k].name);
}

/* A sequence item that must be a mapping of the given table. */
static void config_apply_item(struct config_ctx *ctx, const struct config_node *node,
			      const struct config_key *table, void *base, const char *path,
			      struct config_pos *marks, const char *what)
{
	char expected[64];

	if (node->kind == CONFIG_NODE_BAD)
		return;
	if (node->kind != CONFIG_NODE_MAPPING) {
		snprintf(expected, sizeof expected, "a mapping (%s)", what);
		config_error_expected(ctx, node, path, expected);
		return;
	}
	config_apply_mapping(ctx, node, table, base, path, marks);
}

/* For a key that wants a sequence: 1 = go on, 0 = nothing to do. */
static int config_want_sequence(struct config_ctx *ctx, const struct config_node *node,
				const char *path, const char *what)
{
	if (config_node_is_null(node))
		return 0;
	if (node->kind != CONFIG_NODE_SEQUENCE) {
		config_error_expected(ctx, node, path, what);
		return 0;
	}
	return 1;
}

/* ---- defaults ---------------------------------------------------------------- */

static void config_addr_default(struct config_ctx *ctx, struct cfg_addr *addr, const char *text)
{
	if (config_addr_parse(text, addr) != 0)
		ctx->oom = true; /* the defaults are well-formed */
}

static void config_global_defaults(struct config_ctx *ctx, struct lb_config *cfg)
{
	cfg->global.workers = 0;
	cfg->global.reuseport = true;
	cfg->global.cpu_affinity = false;
	cfg->global.max_connections = 10000;
	cfg->global.max_header_fields = 100; /* http_msg.h HTTP_DEFAULT_MAX_HEADERS; HAProxy: 101 */
	cfg->global.pidfile = config_strdup(ctx, "");
	cfg->global.user = config_strdup(ctx, "");
	cfg->global.grace_ms = 10000;
	cfg->global.log.level = LOG_LEVEL_INFO;
	cfg->global.log.target = config_strdup(ctx, "stderr");
	cfg->global.access_log = config_strdup(ctx, "off");
	cfg->admin.enabled = false;
	config_addr_default(ctx, &cfg->admin.bind, "127.0.0.1:9090");
	cfg->admin.token = config_strdup(ctx, "");
	cfg->admin.max_connections = 32;
}

static void config_listener_defaults(struct config_ctx *ctx, struct cfg_listener *l)
{
	l->name = config_strdup(ctx, "");
	l->bind.text = config_strdup(ctx, "");
	l->bind.host = config_strdup(ctx, "");
	l->mode = LISTENER_MODE_HTTP;
	l->backend = config_strdup(ctx, "");
	l->max_header_size = 16 * 1024;
	l->proxy_protocol = false;
	l->timeouts.client_ms = 30000;
	l->timeouts.header_ms = 10000;
}

static void config_backend_defaults(struct config_ctx *ctx, struct cfg_backend *b)
{
	b->name = config_strdup(ctx, "");
	b->balance = BALANCE_ROUND_ROBIN;
	b->hash.key = HASH_KEY_SOURCE_IP;
	b->hash.key_name = NULL;
	b->hash.method = HASH_METHOD_MAGLEV;
	b->hash.bounded_load = 0;
	b->resolve_interval_ms = 30000;
	b->health.type = CHECK_TCP;
	b->health.path = config_strdup(ctx, "/");
	b->health.host = config_strdup(ctx, "");
	b->health.expect_min = 200;
	b->health.expect_max = 399;
	b->health.interval_ms = 2000;
	b->health.timeout_ms = 1000;
	b->health.rise = 2;
	b->health.fall = 3;
	b->passive.failures = 5;
	b->passive.cooldown_ms = 5000;
	b->passive.max_ejected_percent = 50;
	b->panic_threshold_percent = 50;
	b->retries = 2;
	b->retry_budget_percent = 20;
	b->keepalive = 32;
	b->max_connections = CFG_LIMIT_NONE;
	b->max_connections_cap = 1000;
	b->queue_max = 1000;
	b->timeouts.connect_ms = 2000;
	b->timeouts.response_ms = 30000;
	b->timeouts.idle_ms = 60000;
}

static void config_server_defaults(struct config_ctx *ctx, struct cfg_server *s)
{
	s->addr.text = config_strdup(ctx, "");
	s->addr.host = config_strdup(ctx, "");
	s->weight = 1;
	s->max_connections = CFG_LIMIT_INHERIT;
}

/* ---- custom keys ---------------------------------------------------------------- */

static bool config_want_scalar(struct config_ctx *ctx, const struct config_node *node,
			       const char *path, const char *what)
{
	if (node->kind == CONFIG_NODE_SCALAR)
		return true;
	config_error_expected(ctx, node, path, what);
	return false;
}

static void config_set_workers(struct config_ctx *ctx, const struct config_node *node, void *base,
			       const char *path)
{
	static const char what[] = "auto or an integer 1..64";
	struct lb_config *cfg = base;
	long long n;

	if (!config_want_scalar(ctx, node, path, what))
		return;
	if (strcmp(node->text, "auto") == 0)
		cfg->global.workers = 0;
	else if (config_parse_integer(node->text, &n) == 0 && n >= 1 && n <= 64)
		cfg->global.workers = (int)n;
	else
		config_error_expected(ctx, node, path, what);
}

/* max_connections: auto, or an integer 0..CFG_LIMIT_MAX (0 = unlimited). */
static void config_set_limit(struct config_ctx *ctx, const struct config_node *node, const char *path, int *out)
{
	static const char what[] = "auto or an integer 0..100000 (0 = unlimited)";
	long long n;

	if (!config_want_scalar(ctx, node, path, what))
		return;
	if (strcmp(node->text, "auto") == 0)
		*out = CFG_LIMIT_AUTO;
	else if (config_parse_integer(node->text, &n) == 0 && n >= 0 && n <= CFG_LIMIT_MAX)
		*out = (int)n;
	else
		config_error_expected(ctx, node, path, what);
}

static void config_set_backend_limit(struct config_ctx *ctx, const struct config_node *node, void *base,
				     const char *path)
{
	config_set_limit(ctx, node, path, &((struct cfg_backend *)base)->max_connections);
}

static void config_set_server_limit(struct config_ctx *ctx, const struct config_node *node, void *base,
				    const char *path)
{
	config_set_limit(ctx, node, path, &((struct cfg_server *)base)->max_connections);
}

static void config_set_resolvers(struct config_ctx *ctx, const struct config_node *node, void *base,
				 const char *path)
{
	static const struct config_key resolver = { .name = "resolvers",
						    .kind = CONFIG_ADDR,
						    .flavour = CONFIG_ADDR_HOST };
	struct lb_config *cfg = base;
	char sub[CONFIG_PATH_MAX];

	if (!config_want_sequence(ctx, node, path, "a sequence of addresses IP:PORT") ||
	    node->count == 0)
		return;
	cfg->global.resolvers = calloc(node->count, sizeof *cfg->global.resolvers);
	if (!cfg->global.resolvers) {
		ctx->oom = true;
		return;
	}
	cfg->global.nresolvers = node->count;
	for (size_t i = 0; i < node->count; i++) {
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		/* the struct is zeroed, so the setter's config_addr_free is a no-op */
		config_apply_value(ctx, &resolver, node->items[i], &cfg->global.resolvers[i], sub);
		const char *host = cfg->global.resolvers[i].host;
		unsigned char raw[sizeof(struct in6_addr)];
		if (host != NULL && host[0] != '\0' && inet_pton(AF_INET, host, raw) != 1 &&
		    inet_pton(AF_INET6, host, raw) != 1)
			config_error(ctx, node->items[i]->line, node->items[i]->col, sub,
				     "expected a name server's IP address with its port (IP:PORT or [IPV6]:PORT), "
				     "got the host name %s", host);
	}
}

static void config_set_admin(struct config_ctx *ctx, const struct config_node *node, void *base,
			     const char *path)
{
	struct lb_config *cfg = base;

	cfg->admin.enabled = true;
	if (config_node_is_null(node)) /* "admin:" alone: enabled with defaults */
		return;
	if (node->kind != CONFIG_NODE_MAPPING) {
		config_error_expected(ctx, node, path, "a mapping");
		return;
	}
	config_apply_mapping(ctx, node, config_admin_keys, cfg, path, NULL);
}

/* HTTP/2 is HTTP mode's; over TLS, ALPN offers it (tls.alpn), in plain,
 * http2: true (prior knowledge). */
static void config_check_http2(struct config_ctx *ctx, const struct cfg_listener *l, const struct config_pos *marks,
			       const char *path)
{
	const struct config_pos *at = &marks[config_key_index(config_listener_keys, "http2")];
	bool alpn_h2 = cfg_listener_offers_h2(l);
	char sub[CONFIG_PATH_MAX + 16];

	if (l->http2 && l->tls.enabled) {
		snprintf(sub, sizeof sub, "%s.http2", path);
		config_error(ctx, at->line, at->col, sub,
			     "a TLS listener offers HTTP/2 by ALPN: tls.alpn: [h2, http/1.1]");
	} else if (l->http2 && l->mode != LISTENER_MODE_HTTP) {
		snprintf(sub, sizeof sub, "%s.http2", path);
		config_error(ctx, at->line, at->col, sub, "HTTP/2 needs mode: http");
	} else if (alpn_h2 && l->mode != LISTENER_MODE_HTTP) {
		at = &marks[config_key_index(config_listener_keys, "tls")];
		snprintf(sub, sizeof sub, "%s.tls.alpn", path);
		config_error(ctx, at->line, at->col, sub, "h2 needs mode: http");
	}
}

static void config_set_listeners(struct config_ctx *ctx, const struct config_node *node, void *base,
				 const char *path)
{
	struct lb_config *cfg = base;
	char sub[CONFIG_PATH_MAX];

	if (!config_node_is_null(node) && node->kind != CONFIG_NODE_SEQUENCE)
		ctx->listeners_malformed = true;
	if (!config_want_sequence(ctx, node, path, "a sequence of listeners") || node->count == 0)
		return;
	cfg->listeners = calloc(node->count, sizeof *cfg->listeners);
	ctx->listener_marks = calloc(node->count * CONFIG_KEYS_MAX, sizeof *ctx->listener_marks);
	if (!cfg->listeners || !ctx->listener_marks) {
		ctx->oom = true;
		return;
	}
	cfg->nlisteners = node->count;
	for (size_t i = 0; i < node->count; i++) {
		config_listener_defaults(ctx, &cfg->listeners[i]);
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		config_apply_item(ctx, node->items[i], config_listener_keys, &cfg->listeners[i], sub,
				  &ctx->listener_marks[i * CONFIG_KEYS_MAX], "a listener");
		config_check_http2(ctx, &cfg->listeners[i], &ctx->listener_marks[i * CONFIG_KEYS_MAX], sub);
	}
}

static void config_set_backends(struct config_ctx *ctx, const struct config_node *node, void *base,
				const char *path)
{
	struct lb_config *cfg = base;
	char sub[CONFIG_PATH_MAX];

	if (!config_want_sequence(ctx, node, path, "a sequence of backends") || node->count == 0)
		return;
	cfg->backends = calloc(node->count, sizeof *cfg->backends);
	ctx->backend_marks = calloc(node->count * CONFIG_KEYS_MAX, sizeof *ctx->backend_marks);
	if (!cfg->backends || !ctx->backend_marks) {
		ctx->oom = true;
		return;
	}
	cfg->nbackends = node->count;
	for (size_t i = 0; i < node->count; i++) {
		config_backend_defaults(ctx, &cfg->backends[i]);
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		config_apply_item(ctx, node->items[i], config_backend_keys, &cfg->backends[i], sub,
				  &ctx->backend_marks[i * CONFIG_KEYS_MAX], "a backend");
		struct cfg_backend *b = &cfg->backends[i];
		if (b->timeouts.queue_ms == 0)
			b->timeouts.queue_ms = b->timeouts.connect_ms;
		for (size_t j = 0; j < b->nservers; j++)
			if (b->servers[j].max_connections == CFG_LIMIT_INHERIT)
				b->servers[j].max_connections = b->max_connections;
	}
}

static void config_set_hash_key(struct config_ctx *ctx, const struct config_node *node, void *base,
				const char *path)
{
	static const char what[] = "source_ip, uri, header:NAME or cookie:NAME";
	struct cfg_backend *b = base;
	const char *text = node->text, *name = NULL;
	enum hash_key_kind kind;

	if (!config_want_scalar(ctx, node, path, what))
		return;
	if (strcmp(text, "source_ip") == 0) {
		kind = HASH_KEY_SOURCE_IP;
	} else if (strcmp(text, "uri") == 0) {
		kind = HASH_KEY_URI;
	} else if (strncmp(text, "header:", 7) == 0) {
		kind = HASH_KEY_HEADER;
		name = text + 7;
	} else if (strncmp(text, "cookie:", 7) == 0) {
		kind = HASH_KEY_COOKIE;
		name = text + 7;
	} else {
		config_error_expected(ctx, node, path, what);
		return;
	}
	if (name) {
		/* an HTTP token (RFC 9110 5.6.2): what a header or cookie name can be */
		bool ok = name[0] != '\0';

		for (const char *p = name; *p && ok; p++)
			ok = isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p);
		if (!ok) {
			config_error_expected(ctx, node, path,
					      "header:NAME or cookie:NAME with a non-empty token NAME");
			return;
		}
		name = config_strdup(ctx, name);
		if (!name)
			return;
	}
	free(b->hash.key_name);
	b->hash.key = kind;
	b->hash.key_name = (char *)name;
}

static void config_set_bounded_load(struct config_ctx *ctx, const struct config_node *node,
				    void *base, const char *path)
{
	static const char what[] = "0 (off) or a number above 1.0 and at most 100, such as 1.25";
	struct cfg_backend *b = base;
	char *end;
	double v;

	if (!config_want_scalar(ctx, node, path, what))
		return;
	errno = 0;
	v = strtod(node->text, &end);
	if (node->text[0] == '\0' || !isdigit((unsigned char)node->text[0]) || *end != '\0' ||
	    errno != 0 || !isfinite(v) || (v != 0 && (v <= 1.0 || v > 100))) {
		config_error_expected(ctx, node, path, what);
		return;
	}
	b->hash.bounded_load = v;
}

static void config_set_listener_tls(struct config_ctx *ctx, const struct config_node *node, void *base,
				    const char *path)
{
	struct cfg_listener_tls *t = &((struct cfg_listener *)base)->tls;

	if (node->kind != CONFIG_NODE_MAPPING) {
		config_error_expected(ctx, node, path, "a mapping with certificates");
		return;
	}
	t->enabled = true;
	t->min_version = TLS_MIN_1_2;
	t->ciphers.value = config_strdup(ctx, "");
	t->ciphersuites.value = config_strdup(ctx, "");
	static const char http11[] = "http/1.1";
	t->alpn[0] = sizeof(http11) - 1;
	memcpy(t->alpn + 1, http11, sizeof(http11) - 1);
	t->alpn_len = sizeof(http11);
	t->session_tickets = true;
	t->ticket_key_file.value = config_strdup(ctx, "");
	t->client_ca.value = config_strdup(ctx, "");
	t->verify_client = TLS_VERIFY_CLIENT_OFF;
	config_apply_mapping(ctx, node, config_listener_tls_keys, t, path, NULL);
	if (t->verify_client != TLS_VERIFY_CLIENT_OFF && t->client_ca.value != NULL && t->client_ca.value[0] == '\0')
		config_error(ctx, node->line, node->col, path,
			     "verify_client: %s needs client_ca, the certificates that sign clients",
			     config_verify_client_names[t->verify_client]);
}

static void config_set_certificates(struct config_ctx *ctx, const struct config_node *node, void *base,
				    const char *path)
{
	struct cfg_listener_tls *t = base;
	char sub[CONFIG_PATH_MAX];

	if (node->kind != CONFIG_NODE_SEQUENCE || node->count == 0) {
		config_error_expected(ctx, node, path, "a sequence of at least one {cert, key}");
		return;
	}
	t->certificates = calloc(node->count, sizeof *t->certificates);
	if (!t->certificates) {
		ctx->oom = true;
		return;
	}
	t->ncertificates = node->count;
	for (size_t i = 0; i < node->count; i++) {
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		config_apply_item(ctx, node->items[i], config_certificate_keys, &t->certificates[i], sub, NULL,
				  "a certificate: cert and key");
	}
}

/* Only what lb speaks: h2 and http/1.1, in the order of preference. */
static void config_set_alpn(struct config_ctx *ctx, const struct config_node *node, void *base,
			    const char *path)
{
	static const char what[] = "a sequence of protocols: h2, http/1.1";
	struct cfg_listener_tls *t = base;
	size_t len = 0;

	if (node->kind != CONFIG_NODE_SEQUENCE || node->count == 0) {
		config_error_expected(ctx, node, path, what);
		return;
	}
	for (size_t i = 0; i < node->count; i++) {
		const struct config_node *item = node->items[i];

		if (item->kind != CONFIG_NODE_SCALAR ||
		    (strcmp(item->text, "http/1.1") != 0 && strcmp(item->text, "h2") != 0)) {
			config_error_expected(ctx, item, path, what);
			return;
		}
		size_t n = strlen(item->text);
		bool repeat = false; /* offered once is enough */
		for (size_t at = 0; at < len && !repeat; at += 1 + t->alpn[at])
			repeat = t->alpn[at] == n && memcmp(t->alpn + at + 1, item->text, n) == 0;
		if (repeat)
			continue;
		t->alpn[len] = (unsigned char)n;
		memcpy(t->alpn + len + 1, item->text, n);
		len += 1 + n;
	}
	t->alpn_len = len;
}

static void config_set_backend_tls(struct config_ctx *ctx, const struct config_node *node, void *base,
				   const char *path)
{
	struct cfg_backend_tls *t = &((struct cfg_backend *)base)->tls;

	if (!config_node_is_null(node) && node->kind != CONFIG_NODE_MAPPING) {
		config_error_expected(ctx, node, path, "a mapping");
		return;
	}
	t->enabled = true;
	t->verify = true;
	t->ca.value = config_strdup(ctx, "");
	t->sni = config_strdup(ctx, "");
	t->client_cert.value = config_strdup(ctx, "");
	t->client_key.value = config_strdup(ctx, "");
	if (config_node_is_null(node)) /* "tls:" alone: the defaults */
		return;
	config_apply_mapping(ctx, node, config_backend_tls_keys, t, path, NULL);
	bool cert = t->client_cert.value != NULL && t->client_cert.value[0] != '\0';
	bool key = t->client_key.value != NULL && t->client_key.value[0] != '\0';
	if (cert != key)
		config_error(ctx, node->line, node->col, path, "client_cert and client_key go together: %s is missing",
			     cert ? "client_key" : "client_cert");
}

static int config_parse_status(const char *text, const char **end, int *code)
{
	uint64_t v;

	if (config_parse_digits(text, &v, end) < 0 || *end - text != 3 || v < 100 || v > 599)
		return -1;
	*code = (int)v;
	return 0;
}

static void config_set_expect(struct config_ctx *ctx, const struct config_node *node, void *base,
			      const char *path)
{
	static const char what[] = "a status code 100..599 or a range such as 200-399";
	struct cfg_backend *b = base;
	const char *end;
	int lo, hi;

	if (!config_want_scalar(ctx, node, path, what))
		return;
	if (config_parse_status(node->text, &end, &lo) < 0)
		goto bad;
	hi = lo;
	if (*end == '-' && config_parse_status(end + 1, &end, &hi) < 0)
		goto bad;
	if (*end != '\0' || lo > hi)
		goto bad;
	b->health.expect_min = lo;
	b->health.expect_max = hi;
	return;
bad:
	config_error_expected(ctx, node, path, what);
}

/* ---- checks across items ------------------------------------------------------ */

struct config_keyed {
	const char *key;
	size_t index;
};

static int config_keyed_cmp(const void *a, const void *b)
{
	const struct config_keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * For every item, the index of the first earlier item with the same key, or
 * SIZE_MAX; NULL keys take no part. Sorting keeps this n log n on huge files.
 * Returns NULL when out of memory.
 */
static size_t *config_first_duplicates(struct config_ctx *ctx, char *const *keys, size_t n)
{
	struct config_keyed *sorted = calloc(n ? n : 1, sizeof *sorted);
	size_t *first = calloc(n ? n : 1, sizeof *first);
	size_t m = 0;

	if (!sorted || !first) {
		ctx->oom = true;
		free(sorted);
		free(first);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		first[i] = SIZE_MAX;
		if (keys[i])
			sorted[m++] = (struct config_keyed){ keys[i], i };
	}
	qsort(sorted, m, sizeof *sorted, config_keyed_cmp);
	for (size_t i = 1; i < m; i++) {
		if (strcmp(sorted[i].key, sorted[i - 1].key) == 0)
			first[sorted[i].index] = first[sorted[i - 1].index] == SIZE_MAX
							 ? sorted[i - 1].index
							 : first[sorted[i - 1].index];
	}
	free(sorted);
	return first;
}

/* An address's host in one spelling: IP literals as inet_ntop writes them
 * ("0:0::1" is "::1", "::ffff:1.2.3.4" is "1.2.3.4": lb's IPv6 sockets
 * take IPv4 too), "*" (kept as "") as "0.0.0.0" (what a bind to it
 * means), names in lower case. Returns the family (AF_INET, AF_INET6),
 * or 0 for a name. */
static int config_canonical_host(const char *host, char *out, size_t len)
{
	struct in6_addr ip6;
	struct in_addr ip4;
	if (host[0] == '\0')
		host = "0.0.0.0";
	if (inet_pton(AF_INET, host, &ip4) == 1 && inet_ntop(AF_INET, &ip4, out, (socklen_t)len) != NULL)
		return AF_INET;
	if (inet_pton(AF_INET6, host, &ip6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&ip6) && inet_ntop(AF_INET, &ip6.s6_addr[12], out, (socklen_t)len) != NULL)
			return AF_INET;
		if (inet_ntop(AF_INET6, &ip6, out, (socklen_t)len) != NULL)
			return AF_INET6;
	}
	snprintf(out, len, "%s", host);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

static char *config_addr_key(struct config_ctx *ctx, const struct cfg_addr *addr)
{
	char host[256], *key;

	config_canonical_host(addr->host, host, sizeof host);
	if (asprintf(&key, "%s|%u", host, (unsigned)addr->port) < 0) {
		ctx->oom = true;
		return NULL;
	}
	return key;
}

/* Would binds to a and b collide: the same port and the same address, or
 * one of them a wildcard that takes the other ("0.0.0.0" every IPv4
 * address; "::" every address, lb's IPv6 sockets taking IPv4 too)? A host
 * name is judged by its text only: what it resolves to is for the bind. */
static bool config_binds_collide(const struct cfg_addr *a, const struct cfg_addr *b)
{
	char ha[256], hb[256];

	if (a->port != b->port)
		return false;
	int fa = config_canonical_host(a->host, ha, sizeof ha), fb = config_canonical_host(b->host, hb, sizeof hb);
	if (strcmp(ha, hb) == 0)
		return true;
	if (fa == 0 || fb == 0)
		return false;
	return strcmp(ha, "::") == 0 || strcmp(hb, "::") == 0 || (fa == fb && (strcmp(ha, "0.0.0.0") == 0 ||
										strcmp(hb, "0.0.0.0") == 0));
}

static void config_free_keys(char **keys, size_t n)
{
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
}

/* Called by config_set_servers once a backend's servers are read. */
static void config_check_servers(struct config_ctx *ctx, const struct cfg_backend *b,
				 const struct config_pos *marks, const char *path)
{
	char **keys = calloc(b->nservers, sizeof *keys);
	size_t *first = NULL;

	if (!keys) {
		ctx->oom = true;
		return;
	}
	for (size_t i = 0; i < b->nservers; i++)
		if (b->servers[i].addr.host != NULL && b->servers[i].addr.host[0] != '\0') /* parsed (srv: too) */
			keys[i] = config_addr_key(ctx, &b->servers[i].addr);
	first = config_first_duplicates(ctx, keys, b->nservers);
	for (size_t i = 0; first && i < b->nservers; i++) {
		char sub[CONFIG_PATH_MAX];

		if (first[i] == SIZE_MAX)
			continue;
		snprintf(sub, sizeof sub, "%s[%zu].addr", path, i);
		config_error(ctx, marks[i].line, marks[i].col, sub,
			     "duplicate server %s, also %s[%zu] at line %u", b->servers[i].addr.text,
			     path, first[i], marks[first[i]].line);
	}
	free(first);
	config_free_keys(keys, b->nservers);
}

static void config_set_servers(struct config_ctx *ctx, const struct config_node *node, void *base,
			       const char *path)
{
	struct cfg_backend *b = base;
	struct config_pos *marks = NULL, *item_marks = NULL;
	size_t addr_index = config_key_index(config_server_keys, "addr");
	size_t weight_index = config_key_index(config_server_keys, "weight");
	char sub[CONFIG_PATH_MAX];

	if (config_node_is_null(node) || (node->kind == CONFIG_NODE_SEQUENCE && node->count == 0)) {
		config_error(ctx, node->line, node->col, path,
			     "expected at least one server, got an empty list");
		return;
	}
	if (!config_want_sequence(ctx, node, path, "a sequence of servers"))
		return;
	b->servers = calloc(node->count, sizeof *b->servers);
	marks = calloc(node->count, sizeof *marks);
	item_marks = calloc(node->count * CONFIG_KEYS_MAX, sizeof *item_marks);
	if (!b->servers || !marks || !item_marks) {
		ctx->oom = true;
		goto done;
	}
	b->nservers = node->count;
	for (size_t i = 0; i < node->count; i++) {
		struct config_pos *m = &item_marks[i * CONFIG_KEYS_MAX];

		config_server_defaults(ctx, &b->servers[i]);
		b->servers[i].line = node->items[i]->line;
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		config_apply_item(ctx, node->items[i], config_server_keys, &b->servers[i], sub, m,
				  "a server");
		marks[i] = m[addr_index];
		if (b->servers[i].addr.host != NULL && b->servers[i].addr.host[0] != '\0' &&
		    cfg_server_is_srv(&b->servers[i]) &&
		    m[weight_index].line != 0) {
			snprintf(sub, sizeof sub, "%s[%zu].weight", path, i);
			config_error(ctx, m[weight_index].line, m[weight_index].col, sub,
				     "an srv: server takes its weights from its SRV records");
		}
	}
	config_check_servers(ctx, b, marks, path);
done:
	free(marks);
	free(item_marks);
}

static void config_check_duplicate_names(struct config_ctx *ctx, const char *section, char **names,
			       size_t n, const struct config_pos *marks, size_t name_index)
{
	size_t *first = config_first_duplicates(ctx, names, n);

	for (size_t i = 0; first && i < n; i++) {
		const struct config_pos *m = &marks[i * CONFIG_KEYS_MAX + name_index];
		char path[CONFIG_PATH_MAX];

		if (first[i] == SIZE_MAX)
			continue;
		snprintf(path, sizeof path, "%ss[%zu].name", section, i);
		config_error(ctx, m->line, m->col, path,
			     "duplicate %s name \"%s\", also %ss[%zu] at line %u", section, names[i],
			     section, first[i], marks[first[i] * CONFIG_KEYS_MAX + name_index].line);
	}
	free(first);
}

static void config_check_binds(struct config_ctx *ctx)
{
	const struct lb_config *cfg = ctx->cfg;
	size_t n = cfg->nlisteners, bind_index = config_key_index(config_listener_keys, "bind");

	/* Pairs: listeners are few, and "*:P" beside "127.0.0.1:P" is no
	 * duplicate of text, yet the second bind fails. */
	for (size_t i = 0; i < n; i++) {
		const struct cfg_addr *bind = &cfg->listeners[i].bind;
		const struct config_pos *m = &ctx->listener_marks[i * CONFIG_KEYS_MAX + bind_index];
		char path[CONFIG_PATH_MAX];
		size_t j = 0;

		if (!bind->port)
			continue; /* malformed: already reported */
		while (j < i && !(cfg->listeners[j].bind.port && config_binds_collide(bind, &cfg->listeners[j].bind)))
			j++;
		snprintf(path, sizeof path, "listeners[%zu].bind", i);
		if (j < i)
			config_error(ctx, m->line, m->col, path, "address %s already used by listeners[%zu]", bind->text, j);
		else if (cfg->admin.enabled && config_binds_collide(bind, &cfg->admin.bind))
			config_error(ctx, m->line, m->col, path, "address %s already used by admin.bind", bind->text);
	}
}

/* Sets every listener's backend_index; reports names that match no backend. */
static void config_check_backend_refs(struct config_ctx *ctx)
{
	struct lb_config *cfg = ctx->cfg;
	size_t n = cfg->nbackends, backend_index = config_key_index(config_listener_keys, "backend");
	struct config_keyed *sorted = calloc(n ? n : 1, sizeof *sorted);

	if (!sorted) {
		ctx->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = (struct config_keyed){ cfg->backends[i].name, i };
	qsort(sorted, n, sizeof *sorted, config_keyed_cmp);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct cfg_listener *l = &cfg->listeners[i];
		const struct config_pos *m = &ctx->listener_marks[i * CONFIG_KEYS_MAX + backend_index];
		size_t lo = 0, hi = n;
		char path[CONFIG_PATH_MAX];

		if (l->backend[0] == '\0') /* missing or malformed: already reported */
			continue;
		while (lo < hi) { /* the first backend of that name, if several */
			size_t mid = lo + (hi - lo) / 2;

			if (strcmp(sorted[mid].key, l->backend) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < n && strcmp(sorted[lo].key, l->backend) == 0) {
			l->backend_index = sorted[lo].index;
			continue;
		}
		snprintf(path, sizeof path, "listeners[%zu].backend", i);
		config_error(ctx, m->line, m->col, path, "no backend named \"%s\"", l->backend);
	}
	free(sorted);
}

static void config_check(struct config_ctx *ctx, const struct config_pos *top_marks)
{
	struct lb_config *cfg = ctx->cfg;
	size_t listeners_index = config_key_index(config_top_keys, "listeners");
	char **names;

	if (ctx->oom)
		return;
	if (cfg->nlisteners == 0 && !cfg->admin.enabled && !ctx->listeners_malformed) {
		const struct config_pos *m = &top_marks[listeners_index];

		config_error(ctx, m->line ? m->line : 1, m->line ? m->col : 1, "listeners",
			     "expected at least one listener (or an admin section), got none");
	}
	if (cfg->nlisteners) {
		names = calloc(cfg->nlisteners, sizeof *names);
		if (!names) {
			ctx->oom = true;
			return;
		}
		for (size_t i = 0; i < cfg->nlisteners; i++)
			names[i] = cfg->listeners[i].name[0] ? cfg->listeners[i].name : NULL;
		config_check_duplicate_names(ctx, "listener", names, cfg->nlisteners, ctx->listener_marks,
				   config_key_index(config_listener_keys, "name"));
		free(names);
		config_check_binds(ctx);
	}
	if (cfg->nbackends) {
		names = calloc(cfg->nbackends, sizeof *names);
		if (!names) {
			ctx->oom = true;
			return;
		}
		for (size_t i = 0; i < cfg->nbackends; i++)
			names[i] = cfg->backends[i].name[0] ? cfg->backends[i].name : NULL;
		config_check_duplicate_names(ctx, "backend", names, cfg->nbackends, ctx->backend_marks,
				   config_key_index(config_backend_keys, "name"));
		free(names);
	}
	config_check_backend_refs(ctx);
}

/* ---- shared configurations and what they need -------------------------------- */

struct config_ref *config_ref_new(struct lb_config *cfg)
{
	struct config_ref *ref = calloc(1, sizeof(*ref));
	if (ref == NULL) {
		config_free(cfg);
		return NULL;
	}
	atomic_init(&ref->refs, 1);
	ref->cfg = cfg;
	return ref;
}

struct config_ref *config_ref_acquire(struct config_ref *ref)
{
	atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
	return ref;
}

void config_ref_release(struct config_ref *ref)
{
	if (ref != NULL && atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 1) {
		config_free(ref->cfg);
		free(ref);
	}
}

unsigned long config_descriptors_wanted(const struct lb_config *cfg, int workers)
{
	unsigned long wanted = 2 * (unsigned long)cfg->global.max_connections + 64 + 4 * (unsigned long)workers;
	wanted += cfg->nlisteners;
	for (size_t b = 0; b < cfg->nbackends; b++) {
		const struct cfg_backend *be = &cfg->backends[b];
		wanted += be->nservers * (1 + (unsigned long)be->keepalive * (unsigned long)workers);
	}
	return wanted;
}

/* ---- loading ------------------------------------------------------------------- */

static void config_listener_tls_free(struct cfg_listener_tls *t)
{
	for (size_t i = 0; i < t->ncertificates; i++) {
		config_located_free(&t->certificates[i].cert);
		config_located_free(&t->certificates[i].key);
	}
	free(t->certificates);
	config_located_free(&t->ciphers);
	config_located_free(&t->ciphersuites);
	config_located_free(&t->ticket_key_file);
	config_located_free(&t->client_ca);
}

static void config_backend_free(struct cfg_backend *b)
{
	free(b->tls.sni);
	config_located_free(&b->tls.ca);
	config_located_free(&b->tls.client_cert);
	config_located_free(&b->tls.client_key);
	free(b->name);
	free(b->hash.key_name);
	for (size_t i = 0; i < b->nservers; i++)
		config_addr_free(&b->servers[i].addr);
	free(b->servers);
	free(b->health.path);
	free(b->health.host);
}

void config_free(struct lb_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->global.pidfile);
	free(cfg->global.user);
	free(cfg->global.log.target);
	free(cfg->global.access_log);
	for (size_t i = 0; i < cfg->global.nresolvers; i++)
		config_addr_free(&cfg->global.resolvers[i]);
	free(cfg->global.resolvers);
	config_addr_free(&cfg->admin.bind);
	free(cfg->admin.token);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		config_addr_free(&cfg->listeners[i].bind);
		free(cfg->listeners[i].backend);
		config_listener_tls_free(&cfg->listeners[i].tls);
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nbackends; i++)
		config_backend_free(&cfg->backends[i]);
	free(cfg->backends);
	free(cfg);
}

static void config_validate_tree(struct config_ctx *ctx, const struct config_node *root)
{
	struct config_pos top_marks[CONFIG_KEYS_MAX] = { { 0, 0 } };
	char shown[CONFIG_SHOW_MAX * 4 + 16];

	if (!root || config_node_is_null(root)) {
		config_error(ctx, root ? root->line : 1, root ? root->col : 1, NULL,
			     "expected a mapping with listeners and backends, got an empty file");
		return;
	}
	if (root->kind == CONFIG_NODE_BAD)
		return;
	if (root->kind != CONFIG_NODE_MAPPING) {
		config_error(ctx, root->line, root->col, NULL,
			     "expected a mapping (global, admin, listeners, backends) at the top level, got %s",
			     config_show(root, shown, sizeof shown));
		return;
	}
	config_apply_mapping(ctx, root, config_top_keys, ctx->cfg, "", top_marks);
	config_check(ctx, top_marks);
}

static int config_load(const char *name, const char *dir, const char *text, size_t len, struct lb_config **out,
		       struct config_errors *errs)
{
	struct config_ctx ctx = { .name = name ? name : "config", .dir = dir, .text = text, .len = len };
	struct config_node *root = NULL;

	*out = NULL;
	errs->lines = NULL;
	errs->count = 0;
	ctx.cfg = calloc(1, sizeof *ctx.cfg);
	if (!ctx.cfg) {
		ctx.oom = true;
		goto done;
	}
	ctx.cfg->path = config_strdup(&ctx, ctx.name);
	config_global_defaults(&ctx, ctx.cfg);
	if (!text) {
		ctx.text = "";
		ctx.len = 0;
	}
	if (config_tree_read(&ctx, &root) == 0)
		config_validate_tree(&ctx, root);
	config_node_free(root);
done:
	free(ctx.listener_marks);
	free(ctx.backend_marks);
	config_errors_finish(&ctx, errs);
	if (errs->count || ctx.oom) {
		config_free(ctx.cfg);
		return -1;
	}
	*out = ctx.cfg;
	return 0;
}

int config_load_string(const char *name, const char *text, size_t len, struct lb_config **out,
		       struct config_errors *errs)
{
	return config_load(name, NULL, text, len, out, errs);
}

/* The whole file into memory, at most CONFIG_FILE_MAX bytes. -1 with errno. */
static int config_read_file(const char *path, char **text, size_t *len)
{
	size_t cap = 4096, used = 0;
	char *buf = NULL;
	FILE *f = fopen(path, "rb");
	int saved;

	if (!f)
		return -1;
	for (;;) {
		size_t n;

		if (used == cap || !buf) {
			char *grown;

			if (buf)
				cap *= 2;
			grown = realloc(buf, cap);
			if (!grown) {
				errno = ENOMEM;
				goto fail;
			}
			buf = grown;
		}
		n = fread(buf + used, 1, cap - used, f);
		used += n;
		if (used > CONFIG_FILE_MAX) {
			errno = EFBIG;
			goto fail;
		}
		if (n == 0) {
			if (ferror(f))
				goto fail;
			break;
		}
	}
	fclose(f);
	*text = buf;
	*len = used;
	return 0;
fail:
	saved = errno ? errno : EIO;
	free(buf);
	fclose(f);
	errno = saved;
	return -1;
}

int config_load_file(const char *path, struct lb_config **out, struct config_errors *errs)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	errs->lines = NULL;
	errs->count = 0;
	errno = 0;
	if (config_read_file(path, &text, &len) < 0) {
		config_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
		return CONFIG_UNREADABLE;
	}
	char *dir = strdup(path);
	if (dir == NULL) {
		free(text);
		config_errors_add(errs, "%s: out of memory", path);
		return -1;
	}
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	rc = config_load(path, dir, text, len, out, errs);
	free(dir);
	free(text);
	return rc;
}
