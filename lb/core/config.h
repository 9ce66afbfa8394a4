/*
 * config: the YAML configuration file turned into typed, validated structs.
 *
 * Pure code (libyaml, no sockets, no libevent). Every key of SPEC section 4
 * has a field here; defaults are applied by config_load_*, so a caller never
 * sees an unset value. A struct lb_config is immutable once loaded: the
 * runtime (gen.c) builds a generation from it and never writes to it.
 *
 * Errors: every problem found in a file is collected (not just the first),
 * each as one line "FILE:LINE:COL: key.path: message", e.g.
 *   lb.yaml:14:12: backends[0].servers[1].weight: expected an integer 0..256, got "heavy"
 */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_value.h" /* the value syntax: struct cfg_addr, config_parse_* */

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

enum listener_mode { LISTENER_MODE_HTTP, LISTENER_MODE_TCP, LISTENER_MODE_COUNT };

enum balance_kind {
	BALANCE_ROUND_ROBIN,
	BALANCE_LEAST_CONN,
	BALANCE_RANDOM,
	BALANCE_HASH,
};

enum hash_key_kind { HASH_KEY_SOURCE_IP, HASH_KEY_URI, HASH_KEY_HEADER, HASH_KEY_COOKIE };

enum hash_method { HASH_METHOD_MAGLEV, HASH_METHOD_RING };

enum check_type { CHECK_NONE, CHECK_TCP, CHECK_HTTP };

enum tls_min_version { TLS_MIN_1_2, TLS_MIN_1_3 };

enum tls_verify_client { TLS_VERIFY_CLIENT_OFF, TLS_VERIFY_CLIENT_OPTIONAL, TLS_VERIFY_CLIENT_REQUIRED };

/* A value that is checked where it is used, not by the loader: a file
 * (read when a generation is built, and by lb -t) or an OpenSSL cipher
 * list. So the key's place comes with it: `where` is "FILE:LINE:COL:
 * key.path", the start of any message about it. value "" = not given
 * (where is then NULL). A relative file name starts at the configuration
 * file's directory. */
struct cfg_located {
	char *value;
	char *where;
};

struct cfg_tls_certificate {
	struct cfg_located cert; /* the chain, leaf first */
	struct cfg_located key;
};

/* listeners[].tls: terminate TLS (SPEC 12). */
struct cfg_listener_tls {
	bool enabled; /* the key is there */
	struct cfg_tls_certificate *certificates; /* SNI picks; [0] is the default */
	size_t ncertificates;
	enum tls_min_version min_version;
	struct cfg_located ciphers; /* TLS 1.2; "" = ECDHE + AEAD only */
	struct cfg_located ciphersuites; /* TLS 1.3; "" = OpenSSL's */
	unsigned char alpn[32]; /* the protocols offered, in ALPN wire format */
	size_t alpn_len;
	bool strict_sni;
	bool session_tickets;
	struct cfg_located ticket_key_file; /* "" = random keys, rotated */
	struct cfg_located client_ca;
	enum tls_verify_client verify_client;
	bool ktls; /* let the kernel make the records where it can (SSL_OP_ENABLE_KTLS) */
};

/* backends[].tls: speak TLS to the servers. */
struct cfg_backend_tls {
	bool enabled;
	bool verify; /* the chain and the name */
	struct cfg_located ca; /* "" = the system store */
	char *sni; /* "" = the server's host name */
	struct cfg_located client_cert, client_key;
};

/* max_connections values besides 1..CFG_LIMIT_MAX */
#define CFG_LIMIT_NONE 0 /* unlimited */
#define CFG_LIMIT_AUTO (-1) /* adaptive (limiter.h), at most max_connections_cap */
#define CFG_LIMIT_INHERIT (-2) /* servers[]: the backend's */
#define CFG_LIMIT_MAX 100000

struct cfg_server {
	struct cfg_addr addr; /* port 0: "srv:NAME", addresses, ports and weights from SRV records */
	int weight; /* 0..256; an srv: server's come from DNS */
	int max_connections; /* CFG_LIMIT_*, or 1..CFG_LIMIT_MAX */
	unsigned line; /* where it was written, for messages */
};

static inline bool cfg_server_is_srv(const struct cfg_server *s)
{
	return s->addr.port == 0;
}

struct cfg_health {
	enum check_type type;
	char *path; /* "/" */
	char *host; /* "" = none given */
	int expect_min, expect_max; /* 200-399 */
	uint64_t interval_ms, timeout_ms;
	int rise, fall;
};

struct cfg_backend {
	char *name;
	enum balance_kind balance;
	struct {
		enum hash_key_kind key;
		char *key_name; /* NAME of header:NAME / cookie:NAME, else NULL */
		enum hash_method method;
		double bounded_load; /* 0 = off, else > 1.0 */
	} hash;
	struct cfg_server *servers;
	size_t nservers;
	uint64_t resolve_interval_ms;
	struct cfg_health health;
	struct {
		int failures; /* 0 = off */
		uint64_t cooldown_ms; /* the shortest time out; repeated ejections back off */
		int max_ejected_percent; /* 0..100 of the backend's servers */
	} passive;
	int panic_threshold_percent; /* 0 = off; see health_policy.h */
	int retries;
	int retry_budget_percent; /* retries in flight, of the backend's requests in flight (at least 3) */
	int keepalive;
	/* Overload (SPEC 13): concurrent requests (http) or connections (tcp)
	 * per server, the queue in front of them, the ramp after a return. */
	int max_connections; /* CFG_LIMIT_NONE, CFG_LIMIT_AUTO or 1..CFG_LIMIT_MAX */
	int max_connections_cap; /* auto's bound */
	int queue_max; /* waiting requests; 0 = none (503 at once) */
	uint64_t slow_start_ms; /* 0 = off */
	int send_proxy; /* 0 = off, else the PROXY protocol version (1, 2) sent first on server connections */
	struct {
		uint64_t connect_ms, response_ms, idle_ms;
		uint64_t queue_ms; /* the connect timeout unless given */
	} timeouts;
	struct cfg_backend_tls tls;
};

struct cfg_listener {
	char *name;
	struct cfg_addr bind;
	enum listener_mode mode;
	char *backend; /* name, as written */
	size_t backend_index; /* index into lb_config.backends, set by validation */
	size_t max_header_size;
	bool proxy_protocol;
	bool http2; /* plain listener: HTTP/2 with prior knowledge too (h2c) */
	struct {
		uint64_t client_ms, header_ms;
	} timeouts;
	struct cfg_listener_tls tls;
};

/* TLS with "h2" among the ALPN protocols offered. */
static inline bool cfg_listener_offers_h2(const struct cfg_listener *l)
{
	for (size_t at = 0; l->tls.enabled && at < l->tls.alpn_len; at += 1 + l->tls.alpn[at])
		if (l->tls.alpn[at] == 2 && l->tls.alpn[at + 1] == 'h' && l->tls.alpn[at + 2] == '2')
			return true;
	return false;
}

struct lb_config {
	char *path; /* the file it came from */
	struct {
		int workers; /* 0 = auto (one per CPU, at most LB_MAX_WORKERS); 1..64 */
		bool reuseport; /* a listening socket per worker and listener (else one shared) */
		bool cpu_affinity; /* worker i runs on CPU i */
		int max_connections;
		int max_header_fields; /* per request or response head (http_msg.h) */
		char *pidfile; /* "" = none */
		char *user; /* "" = stay */
		uint64_t grace_ms;
		uint64_t drain_delay_ms; /* SIGTERM: /healthz answers 503 this long before the listeners close */
		struct {
			enum log_level level;
			char *target; /* "stderr", "syslog" or a path */
		} log;
		char *access_log; /* "off", "stderr" or a path */
		struct cfg_addr *resolvers;
		size_t nresolvers;
	} global;
	struct {
		bool enabled; /* false when the file has no admin section */
		struct cfg_addr bind;
		char *token; /* "" = no token */
		int max_connections; /* open at once; more are answered 503 */
	} admin;
	struct cfg_listener *listeners;
	size_t nlisteners;
	struct cfg_backend *backends;
	size_t nbackends;
};

/* A configuration shared by whoever holds a reference: the generations
 * built from it (gen.h), a resolution in progress (resolve.h). The last
 * release frees it. Thread-safe. */
struct config_ref {
	atomic_int refs;
	struct lb_config *cfg;
};

/* Takes cfg (freed on failure: NULL, ENOMEM). One reference. */
struct config_ref *config_ref_new(struct lb_config *cfg);
struct config_ref *config_ref_acquire(struct config_ref *ref);
void config_ref_release(struct config_ref *ref); /* NULL is fine */

/* The error lines of one load, in file order. */
struct config_errors {
	char **lines;
	size_t count;
};

/*
 * Load and validate. On success returns 0 and *out owns a config to be
 * released with config_free. On failure returns -1 (CONFIG_UNREADABLE when
 * the file itself could not be read), *out is NULL, and errs holds at least
 * one line. errs must be released with config_errors_free in both cases.
 * `name` is what messages call the file.
 */
#define CONFIG_UNREADABLE (-2)
int config_load_file(const char *path, struct lb_config **out, struct config_errors *errs);
int config_load_string(const char *name, const char *text, size_t len, struct lb_config **out,
		       struct config_errors *errs);
void config_free(struct lb_config *cfg);
void config_errors_free(struct config_errors *errs);

/* Descriptors lb may need with `workers` event loops: two per proxied
 * connection (client and server), the idle pools (keepalive per server per
 * worker), one health probe per server, and a margin for listeners, the
 * admin endpoint, logs and event loops. */
unsigned long config_descriptors_wanted(const struct lb_config *cfg, int workers);

#endif
