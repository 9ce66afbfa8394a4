/*
 * http: HTTP-mode sessions (SPEC 7).
 *
 * One client connection is one struct http_session; its requests are served
 * one after the other (pipelined requests wait in the input buffer, so they
 * are answered in order). Each request is balanced on its own and goes over
 * a pooled server connection when one is idle, else a new one.
 *
 * The state machine, driven by http_drive() only (callbacks just record):
 *
 *   [PROXY_HEADER] --> READ_HEAD --> CONNECTING --> EXCHANGE --> READ_HEAD
 *                          |  |          |  ^          |  |    (keep-alive)
 *                          |  |          +--+ retry    |  +--> TUNNEL (101)
 *                          |  +-> QUEUED (every server full: wait for a slot)
 *                          v                           v
 *   FLUSH_CLOSE (lb's own answer, or the last response) --> [LINGER] --> CLOSING
 *
 * EXCHANGE streams the request body to the server and the response back,
 * each through an http_body framing tracker (the bytes go verbatim). Both
 * directions are bounded: see relay.h. Between two requests a keep-alive
 * connection moves to the worker's newest generation.
 *
 * Timeouts (one deadline per session, deadline.h):
 *   READ_HEAD: timeouts.header from the first byte of a request (and from
 *   accept for the first one: slowloris), timeouts.client while idle between
 *   requests; QUEUED: timeouts.queue; CONNECTING: timeouts.connect; EXCHANGE: the backend's
 *   timeouts.idle while the request body moves, timeouts.response from its
 *   end to the response head, then timeouts.idle again, moved by every byte
 *   relayed; FLUSH_CLOSE: timeouts.client.
 */
#include "http.h"

#include <errno.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "fastrand.h"
#include "h2.h"
#include "http_msg.h"
#include "log.h"
#include "netutil.h"
#include "overload.h"
#include "relay.h"
#include "session.h"
#include "slab.h"
#include "tls_conn.h"

#define RESPONSE_HEAD_MAX (64 * 1024)
#define HEAD_REWRITE_SLACK 1024 /* room for the fields lb adds */
#define CLIENT_SUBJECT_MAX 512 /* of X-Client-Subject: within the slack */
/* To a client that sends plain HTTP to a TLS port (as nginx answers). */
#define PLAIN_HTTP_ANSWER                                                                                        \
	"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 49\r\nConnection: close\r\n\r\n" \
	"The plain HTTP request was sent to an HTTPS port\n"
#define RETRY_BODY_MAX (64 * 1024) /* bodies kept for a retry, at most */
#define HASH_KEY_MAX 256
#define LINGER_MS 1000 /* reading after our close, so the client gets our answer */
#define LOG_TARGET_MAX 256
#define PIPELINE_UNSENT_MAX (64 * 1024) /* see output_allows_next_request */

enum http_state {
	HTTP_PROXY_HEADER, /* proxy_protocol: waiting for the PROXY header */
	HTTP_READ_HEAD, /* waiting for a complete request head */
	HTTP_QUEUED, /* every candidate server is at its limit: waiting for a slot (queue.h) */
	HTTP_CONNECTING, /* a new server connection is being made */
	HTTP_EXCHANGE, /* request going out, response coming back */
	HTTP_TUNNEL, /* after 101: raw bytes both ways */
	HTTP_H2, /* the connection speaks HTTP/2: h2.c runs it, each stream a session of its own */
	HTTP_FLUSH_CLOSE, /* writing the last bytes to the client */
	HTTP_LINGER, /* our side shut: draining the client until it closes */
	HTTP_CLOSING, /* free everything */
};

/* One request and its response: what lb keeps only while a request is in
 * flight. An idle keep-alive connection holds none, so it costs little
 * memory. Exchanges come from a slab of the worker's (struct http_memory),
 * so taking one costs no malloc, and what a burst took goes back to the
 * kernel afterwards. */
struct http_exchange {
	uint32_t fields; /* room per head: global.max_header_fields when made */
	bool in_slab; /* else malloc'd: EXCHANGE_SLABS sizes were out at once */
	bool logged; /* request_complete ran */
	char *req_out; /* rewritten head, kept for retries: req_out_room, or malloc'd when larger */
	size_t req_out_len, req_out_cap;
	struct evbuffer *req_body_copy; /* whole small body, for retries; NULL if none */
	struct http_body req_body;
	bool req_done; /* every request byte is in the server's output */
	bool retriable; /* idempotent and body absent or kept */
	char hash_key[HASH_KEY_MAX];
	size_t hash_key_len;
	bool has_hash_key;
	char request_id[72];
	char log_target[LOG_TARGET_MAX];
	const char *method_name;
	struct timeval req_started;
	struct timeval sent_at; /* to its server: auto's latency runs from here to the response head */
	uint64_t req_bytes, resp_bytes;
	bool request_sent; /* some server got (part of) this request */
	bool server_refused_tls; /* a server failed its TLS handshake (bad certificate: 502, not 503) */

	/* the response */
	size_t resp_scan_pos;
	bool resp_started; /* a byte of it came: timeouts.idle runs, no longer timeouts.response */
	bool resp_head_done;
	struct http_body resp_body;
	int status; /* sent to the client, 0 = none yet */

	/* Last, and not zeroed when taken: the parser fills them before
	 * anything reads them. Their fields follow the struct in its
	 * allocation, `fields` each, then REQ_OUT_ROOM bytes for req_out. */
	struct http_head req;
	struct http_head resp;
};

/* Room for the rewritten request head inside the exchange: most heads fit. */
#define REQ_OUT_ROOM 2048

struct http_session {
	struct session session; /* first: what every session has (session.h) */
	enum http_state state;
	unsigned requests_served;

	/* what happened, besides the conns' own flags (eof, error, connected) */
	bool no_keepalive; /* the worker stops or the instance drains: close when idle */
	bool must_linger; /* lb answered itself: linger after the close (flush_close) */
	bool close_client; /* after this response */

	/* reading the next request */
	bool head_timer_started;
	bool output_wait; /* a pipelined request waits for the client to read */
	size_t output_wait_unsent; /* what it had not read at the last look */
	size_t scan_pos; /* http_head_length resume point */

	struct http_exchange *x; /* the request in flight; NULL between requests */
	struct h2_conn *h2; /* HTTP_H2 */
	bool h2_idle_timed; /* HTTP_H2: the idle timeout runs since it last became idle */
	bool h2_idle_goaway; /* HTTP_H2: told GOAWAY for being idle; the next timeout closes */
	char *stream_subject; /* an HTTP/2 stream's: its connection's client certificate subject */
};
/* Every idle client connection is one, in a slab slot of 832 bytes with
 * its header (slab.c): most of the 1 KiB an idle connection may cost. So
 * the client's address is formatted when a request needs it, not kept. */
_Static_assert(sizeof(struct http_session) <= 816, "an idle connection's session outgrew its budget");

/* The client's address, formatted into buf. */
static const char *client_ip(const struct http_session *s, char buf[INET6_ADDRSTRLEN])
{
	netutil_format_ip(&s->session.client_addr, buf, INET6_ADDRSTRLEN);
	return buf;
}

static void http_drive(struct http_session *s);

/* ---- small helpers ---- */

static bool method_idempotent(enum http_method m)
{
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_PUT || m == HTTP_DELETE ||
	       m == HTTP_TRACE;
}

/* A request id: 16 hex digits from a per-thread xorshift stream. */
static void request_id_generate(char *out, size_t cap)
{
	/* By hand: snprintf cost a tenth of the per-request instructions. */
	static const char hex[] = "0123456789abcdef";
	uint64_t v = fastrand_next();
	if (cap < 17)
		return;
	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[16] = '\0';
}

static void copy_span(char *out, size_t cap, const char *buf, struct http_span span)
{
	size_t n = span.len < cap - 1 ? span.len : cap - 1;
	memcpy(out, buf + span.off, n);
	out[n] = '\0';
}

/* ---- the server connection ---- */

/* Give up the server connection: back to the pool when `reusable`. */
static void server_release(struct http_session *s, bool reusable)
{
	/* A connection opened for a request that could not take a pooled one
	 * adds no surplus to the pool (pool.h). */
	peer_release(&s->session.server, s->session.backend, s->session.worker, reusable ? PEER_TO_POOL : PEER_ABORT,
		     s->x != NULL && s->x->retriable);
}

static void note_server_failure(struct http_session *s, const char *why)
{
	peer_note_failure(&s->session.server, s->session.backend, why);
}

static void count_server_bytes(struct http_session *s, uint64_t to_server, uint64_t from_server)
{
	peer_count_bytes(&s->session.server, s->session.backend, to_server, from_server);
}

/* The server broke HTTP (lb answers 502, or cuts the response): the
 * operator must see why, so at warn level, but at most once a second,
 * whatever the rate of such responses. */
static void note_invalid_response(struct http_session *s, const char *why)
{
	static atomic_uint_fast64_t last_logged_s;
	struct timeval now = session_now(&s->session);
	uint64_t second = (uint64_t)now.tv_sec, last = atomic_load_explicit(&last_logged_s, memory_order_relaxed);
	if (last != second && atomic_compare_exchange_strong(&last_logged_s, &last, second))
		log_warn("backend %s: server %s sent an invalid response (%s) to %s %s", s->session.backend->cfg->name,
			 peer_server(&s->session.server, s->session.backend)->state->addr, why,
			 s->x->method_name ? s->x->method_name : "-", s->x->log_target);
	note_server_failure(s, why);
}

/* ---- access log and the end of a request ---- */

/* A request ended (answered by a server or by lb): the duration histogram
 * and the access log line. */
static void request_complete(struct http_session *s)
{
	if (s->x == NULL || s->x->method_name == NULL || s->x->logged)
		return; /* nothing of a request arrived, or already counted */
	s->x->logged = true;
	struct timeval now = session_now(&s->session);
	int64_t elapsed = ((int64_t)now.tv_sec - s->x->req_started.tv_sec) * 1000000 +
			  ((int64_t)now.tv_usec - s->x->req_started.tv_usec);
	uint64_t us = elapsed > 0 ? (uint64_t)elapsed : 0; /* the wall clock may step back */
	duration_observe(&s->session.backend->state->durations, us);
	if (!log_access_enabled())
		return;
	const struct gen_server *gs = peer_server(&s->session.server, s->session.backend);
	char ip[INET6_ADDRSTRLEN];
	log_access("%s %s %s %s %s %s %d %llu %llu %llums %s", client_ip(s, ip), s->session.listener->cfg->name,
		   s->session.backend->cfg->name, gs ? gs->state->addr : "-", s->x->method_name, s->x->log_target, s->x->status,
		   (unsigned long long)s->x->req_bytes, (unsigned long long)s->x->resp_bytes,
		   (unsigned long long)(us / 1000), s->x->request_id);
}

/* ---- the exchange of a request ---- */

/* A worker's slabs (slab.h): sessions, and exchanges by size (their
 * field room follows max_header_fields, which a reload may change while
 * older exchanges are still out; a slab of a size no longer wanted goes
 * once empty). */
#define EXCHANGE_SLABS 4
struct http_memory {
	struct slab *sessions;
	struct slab *exchanges[EXCHANGE_SLABS];
};

#define SESSION_BLOCK (64 * 1024)
#define EXCHANGE_BLOCK (64 * 1024)

static struct http_memory *http_memory_of(struct worker *w)
{
	if (w->http_memory == NULL) {
		struct http_memory *m = calloc(1, sizeof(*m));
		if (m == NULL || (m->sessions = slab_create(sizeof(struct http_session), SESSION_BLOCK)) == NULL) {
			free(m);
			return NULL;
		}
		w->http_memory = m;
	}
	return w->http_memory;
}

static size_t exchange_size(uint32_t fields)
{
	return sizeof(struct http_exchange) + 2 * (size_t)fields * sizeof(struct http_header) + REQ_OUT_ROOM;
}

/* The slab for exchanges of `size` bytes, made if needed. */
static struct slab *exchange_slab(struct http_memory *m, size_t size)
{
	int free_slot = -1;
	for (int i = 0; i < EXCHANGE_SLABS; i++) {
		if (m->exchanges[i] != NULL && slab_object_size(m->exchanges[i]) == size)
			return m->exchanges[i];
		if (m->exchanges[i] != NULL && slab_in_use(m->exchanges[i]) == 0) {
			slab_destroy(m->exchanges[i]); /* a size no longer wanted */
			m->exchanges[i] = NULL;
		}
		if (m->exchanges[i] == NULL && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return NULL; /* four sizes out at once (reloads in a row, long tunnels): malloc */
	return m->exchanges[free_slot] = slab_create(size, EXCHANGE_BLOCK);
}

/* Ready for a new request (what its steps read before they write it). */
static void exchange_reset(struct http_exchange *x)
{
	x->logged = false;
	x->req_out_len = 0;
	x->req_body_copy = NULL;
	x->req_done = x->retriable = x->has_hash_key = false;
	x->hash_key_len = 0;
	x->request_id[0] = '\0';
	x->log_target[0] = '\0';
	x->method_name = NULL;
	x->req_bytes = x->resp_bytes = 0;
	x->request_sent = x->server_refused_tls = false;
	x->resp_scan_pos = 0;
	x->resp_started = x->resp_head_done = false;
	x->status = 0;
}

static char *req_out_room(struct http_exchange *x)
{
	return (char *)((struct http_header *)(x + 1) + 2 * (size_t)x->fields);
}

/* The exchange for the request that starts arriving. false when there is
 * no memory for it. */
static bool exchange_take(struct http_session *s)
{
	uint32_t fields = (uint32_t)s->session.gen->cfg->global.max_header_fields;
	struct http_memory *m = http_memory_of(s->session.worker);
	struct slab *slab = m != NULL ? exchange_slab(m, exchange_size(fields)) : NULL;
	struct http_exchange *x = slab != NULL ? slab_alloc(slab) : malloc(exchange_size(fields));
	if (x == NULL)
		return false;
	x->in_slab = slab != NULL;
	x->fields = fields;
	struct http_header *field_room = (struct http_header *)(x + 1);
	http_head_init(&x->req, field_room, fields);
	http_head_init(&x->resp, field_room + fields, fields);
	x->req_out = req_out_room(x);
	x->req_out_cap = REQ_OUT_ROOM;
	exchange_reset(x);
	x->req_started = session_now(&s->session); /* again when the head is complete */
	s->x = x;
	return true;
}

/* A larger rewritten head than REQ_OUT_ROOM goes back to malloc. */
static void exchange_drop_large_head(struct http_exchange *x)
{
	if (x->req_out != req_out_room(x)) {
		free(x->req_out);
		x->req_out = req_out_room(x);
		x->req_out_cap = REQ_OUT_ROOM;
	}
}

/* The request is over and no other waits: its exchange goes back to the
 * slab (the server connection let go of req_out already). */
static void exchange_give_back(struct http_session *s)
{
	struct http_exchange *x = s->x;
	if (x == NULL)
		return;
	s->x = NULL;
	if (x->req_body_copy != NULL)
		evbuffer_free(x->req_body_copy);
	exchange_drop_large_head(x);
	if (x->in_slab)
		slab_free(x);
	else
		free(x);
}

void http_worker_tick(struct worker *w)
{
	struct http_memory *m = w->http_memory;
	if (m == NULL)
		return;
	slab_trim(m->sessions);
	for (int i = 0; i < EXCHANGE_SLABS; i++)
		if (m->exchanges[i] != NULL)
			slab_trim(m->exchanges[i]);
}

void http_worker_exit(struct worker *w)
{
	struct http_memory *m = w->http_memory;
	if (m == NULL)
		return;
	slab_destroy(m->sessions);
	for (int i = 0; i < EXCHANGE_SLABS; i++)
		slab_destroy(m->exchanges[i]);
	free(m);
	w->http_memory = NULL;
}

/* Forget the request just finished, ready for the next one. */
static void request_reset(struct http_session *s)
{
	s->scan_pos = 0;
	s->head_timer_started = false;
	s->session.server.tries.count = 0;
	if (s->x == NULL)
		return;
	if (s->x->req_body_copy != NULL) {
		evbuffer_free(s->x->req_body_copy);
		s->x->req_body_copy = NULL;
	}
	exchange_drop_large_head(s->x);
	exchange_reset(s->x);
}

/* ---- lb's own answers ---- */

static void flush_then_close(struct http_session *s)
{
	s->state = HTTP_FLUSH_CLOSE;
	session_timer_arm(&s->session, s->session.listener->cfg->timeouts.client_ms); /* a client that stops reading */
}

/* Answer with lb's own status and close after it. */
static void respond_error(struct http_session *s, int status)
{
	char buf[512];
	/* method_name: set once the request head parsed */
	bool head_request = s->x != NULL && s->x->method_name != NULL && s->x->req.method == HTTP_HEAD;
	size_t n = http_error_response(status, true, head_request, buf, sizeof(buf));

	if (s->x != NULL && s->x->status == 0 && n > 0) {
		evbuffer_add(s->session.client->out, buf, n);
		s->x->status = status;
		s->x->resp_bytes += n;
		if (s->x->method_name == NULL)
			s->x->method_name = "-";
		if (s->x->log_target[0] == '\0')
			snprintf(s->x->log_target, sizeof(s->x->log_target), "-");
		request_complete(s);
	}
	server_release(s, false);
	s->must_linger = true;
	s->session.client->want_read = false; /* nothing more is read until the answer is out */
	flush_then_close(s);
}

/* ---- reading a request ---- */

/* The hash key of the request per backend hash.key, copied. */
static void hash_key_extract(struct http_session *s, const char *buf)
{
	const struct cfg_backend *cfg = s->session.backend->cfg;
	struct http_span span = { 0, 0 };
	bool found = false;

	if (cfg->balance != BALANCE_HASH)
		return;
	switch (cfg->hash.key) {
	case HASH_KEY_SOURCE_IP: {
		size_t len;
		const void *ip = netutil_ip_bytes(&s->session.client_addr, &len);
		memcpy(s->x->hash_key, ip, len);
		s->x->hash_key_len = len;
		s->x->has_hash_key = true;
		return;
	}
	case HASH_KEY_URI:
		span = s->x->req.target;
		found = true;
		break;
	case HASH_KEY_HEADER: {
		int i = http_header_find(buf, &s->x->req, cfg->hash.key_name, strlen(cfg->hash.key_name));
		if (i >= 0) {
			span = s->x->req.headers[i].value;
			found = true;
		}
		break;
	}
	case HASH_KEY_COOKIE:
		found = http_cookie_find(buf, &s->x->req, cfg->hash.key_name, strlen(cfg->hash.key_name), &span);
		break;
	}
	if (!found)
		return; /* no key: balance_pick falls back to round-robin */
	s->x->hash_key_len = span.len < HASH_KEY_MAX ? span.len : HASH_KEY_MAX;
	memcpy(s->x->hash_key, buf + span.off, s->x->hash_key_len);
	s->x->has_hash_key = true;
}

static bool start_attempt(struct http_session *s);
static bool wait_for_slot(struct http_session *s);

/* A chunked body is checked as far as it has arrived before any server is
 * chosen, so that a smuggling attempt sent in one piece (an invalid chunk
 * size) never reaches a server. Bytes arriving later are checked as they
 * are relayed; an error then cuts the server connection mid-request. */
static bool chunked_prefix_valid(const struct http_session *s)
{
	if (s->x->req.framing != HTTP_FRAMING_CHUNKED)
		return true;
	struct http_body probe = s->x->req_body;
	struct evbuffer_iovec vec[8];
	int n = evbuffer_peek(s->session.client->in, RELAY_HIGH_WATER, NULL, vec, 8);
	enum http_body_status st = HTTP_BODY_MORE;
	for (int i = 0; i < n && i < 8 && st == HTTP_BODY_MORE; i++) {
		size_t used;
		st = http_body_feed(&probe, vec[i].iov_base, vec[i].iov_len, &used);
	}
	return st != HTTP_BODY_ERROR;
}

/* The subject of the client's verified certificate (listeners[].tls
 * verify_client), RFC 2253 with control characters escaped, or NULL. */
static const char *client_subject(const struct http_session *s, char *buf, size_t cap)
{
	const struct gen_listener *l = s->session.listener;
	if (s->stream_subject != NULL)
		return s->stream_subject;
	SSL *ssl = tls_conn_ssl(s->session.client);
	if (l->tls == NULL || l->cfg->tls.verify_client == TLS_VERIFY_CLIENT_OFF || ssl == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	BIO *mem = cert != NULL ? BIO_new(BIO_s_mem()) : NULL;
	if (mem == NULL)
		return NULL;
	X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
	int n = BIO_read(mem, buf, (int)cap - 1);
	BIO_free(mem);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* A complete head of head_len bytes is at the front of the client input. */
static bool dispatch_request(struct http_session *s, const char *buf, size_t head_len)
{
	struct evbuffer *in = s->session.client->in;
	enum http_verdict verdict = http_parse_request(buf, head_len, &s->x->req);

	s->x->req_started = session_now(&s->session);
	if (verdict != HTTP_MSG_OK) {
		char ip[INET6_ADDRSTRLEN];
		log_debug("listener %s: %s: %s", s->session.listener->cfg->name, client_ip(s, ip), s->x->req.error);
		respond_error(s, http_verdict_status(verdict));
		return true;
	}
	s->x->method_name = s->x->req.method_name;
	copy_span(s->x->log_target, sizeof(s->x->log_target), buf, s->x->req.target);
	if (s->x->req.request_id_index >= 0)
		copy_span(s->x->request_id, sizeof(s->x->request_id), buf, s->x->req.headers[s->x->req.request_id_index].value);
	else
		request_id_generate(s->x->request_id, sizeof(s->x->request_id));
	hash_key_extract(s, buf);

	size_t need = head_len + HEAD_REWRITE_SLACK;
	if (need > s->x->req_out_cap) {
		char *large = malloc(need); /* until the request is over */
		if (large == NULL) {
			respond_error(s, 503);
			return true;
		}
		s->x->req_out = large;
		s->x->req_out_cap = need;
	}
	char subject[CLIENT_SUBJECT_MAX], ip[INET6_ADDRSTRLEN];
	client_ip(s, ip);
	struct http_request_forward fwd = {
		.client_addr = ip,
		.client_addr_len = strlen(ip),
		.request_id = s->x->request_id,
		.request_id_len = strlen(s->x->request_id),
		.server_keep_alive = s->session.backend->cfg->keepalive > 0,
		.https = s->session.listener->tls != NULL,
		.client_subject = client_subject(s, subject, sizeof(subject)),
	};
	s->x->req_out_len = http_rewrite_request(buf, &s->x->req, &fwd, s->x->req_out, s->x->req_out_cap);
	if (s->x->req_out_len == 0) {
		respond_error(s, 431);
		return true;
	}
	evbuffer_drain(in, head_len);
	s->x->req_bytes = head_len;
	http_body_init_head(&s->x->req_body, &s->x->req);
	s->x->req_done = http_body_done(&s->x->req_body);

	/* Keep what a retry needs: nothing more for a bodiless request; a small
	 * Content-Length body that has fully arrived is moved aside whole. */
	s->x->retriable = method_idempotent(s->x->req.method) && s->x->req.framing != HTTP_FRAMING_TUNNEL;
	if (!s->x->req_done) {
		if (s->x->req.framing == HTTP_FRAMING_LENGTH && s->x->req.content_length <= RETRY_BODY_MAX &&
		    evbuffer_get_length(in) >= s->x->req.content_length && (s->x->req_body_copy = evbuffer_new()) != NULL) {
			evbuffer_remove_buffer(in, s->x->req_body_copy, (size_t)s->x->req.content_length);
			s->x->req_bytes += s->x->req.content_length;
			s->x->req_done = true;
		} else {
			s->x->retriable = false;
		}
	}
	if (s->x->req.upgrade)
		s->x->retriable = false;
	if (!s->x->req_done && !chunked_prefix_valid(s)) {
		respond_error(s, 400);
		return true;
	}
	return start_attempt(s);
}

/* A pipelined request waits while the answers before it are unsent, so
 * that a client sending requests without reading the responses cannot make
 * lb buffer them (SPEC 7, 10), as HAProxy and nginx stop reading. The
 * client has timeouts.client to read, counted again whenever it reads some;
 * then the connection closes. False while the request must wait (or the
 * session was told to close). */
static bool output_allows_next_request(struct http_session *s)
{
	size_t unsent = evbuffer_get_length(s->session.client->out);
	if (unsent < PIPELINE_UNSENT_MAX) {
		if (s->output_wait) {
			s->output_wait = false;
			s->head_timer_started = false; /* the header timer starts now */
		}
		return true;
	}
	if (!s->output_wait || unsent < s->output_wait_unsent) {
		s->output_wait = true;
		session_timer_arm(&s->session, s->session.listener->cfg->timeouts.client_ms);
	} else if (s->session.timer_fired) {
		s->state = HTTP_CLOSING; /* it stopped reading */
	}
	s->output_wait_unsent = unsent;
	return false;
}

static int http_stream_start(void *owner, const struct conn_transport *transport, void *state);
static bool follow_newest_generation(struct http_session *s);

/* Is this connection HTTP/2? Over TLS, ALPN said so; in plain, on a
 * listener with http2: true, its first bytes are the client preface.
 * 1: yes, 0: no, -1: not known yet (part of the preface is there). */
static int speaks_h2(const struct http_session *s, size_t len)
{
	const struct cfg_listener *lc = s->session.listener->cfg;
	if (s->requests_served > 0)
		return 0;
	if (lc->tls.enabled)
		return tls_conn_alpn_is(s->session.client, "h2") ? 1 : 0;
	if (!lc->http2)
		return 0;
	size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
	const char *buf = (const char *)evbuffer_pullup(s->session.client->in, (ev_ssize_t)n);
	if (!h2_preface_prefix(buf, n))
		return 0;
	return n == H2_PREFACE_LEN ? 1 : -1;
}

static bool start_h2(struct http_session *s)
{
	s->h2 = h2_conn_new(s->session.client, s->session.worker, s->session.listener, http_stream_start, s);
	s->state = s->h2 != NULL ? HTTP_H2 : HTTP_CLOSING;
	return true;
}

/* HTTP/2: h2.c reads and writes; the session times the connection out
 * when no stream is open for timeouts.client. */
static bool h2_step(struct http_session *s)
{
	bool fired = s->session.timer_fired;
	s->session.timer_fired = false;
	if (fired && h2_conn_idle(s->h2)) {
		if (s->h2_idle_goaway) { /* still there a timeout after its GOAWAY: closed */
			s->state = HTTP_CLOSING;
			return true;
		}
		h2_conn_shutdown(s->h2); /* idle for timeouts.client: GOAWAY, then the client goes */
		s->h2_idle_goaway = true;
		session_timer_arm(&s->session, s->session.listener->cfg->timeouts.client_ms);
	}
	if (!h2_conn_drive(s->h2)) {
		if (s->session.client->error) {
			s->state = HTTP_CLOSING;
			return true;
		}
		/* Its last frames (a GOAWAY) out, then a lingering close, so that
		 * a client still sending gets them instead of a reset. */
		s->must_linger = true;
		flush_then_close(s);
		return true;
	}
	/* Armed when it turns idle, not at every frame: PINGs do not keep
	 * an idle connection. */
	bool idle = h2_conn_idle(s->h2);
	if (idle && !s->h2_idle_timed)
		session_timer_arm(&s->session, s->session.listener->cfg->timeouts.client_ms);
	s->h2_idle_timed = idle;
	return false;
}

/* Empty lines between requests (some clients end a body with one more
 * CRLF): ignored (RFC 9112 2.2), so that the connection stays idle under
 * timeouts.client instead of starting a head that never comes (408). */
static void drain_empty_lines(struct conn *client)
{
	const unsigned char *first; /* pullup of one byte: the first chain's own pointer, no copy */
	while (client->in != NULL && evbuffer_get_length(client->in) > 0 &&
	       (first = evbuffer_pullup(client->in, 1)) != NULL && (*first == '\r' || *first == '\n'))
		evbuffer_drain(client->in, 1);
}

static bool read_request_head(struct http_session *s)
{
	if (s->requests_served > 0 && !s->head_timer_started)
		drain_empty_lines(s->session.client);
	size_t len = conn_input_length(s->session.client); /* 0 while idle: no buffers */
	const struct cfg_listener *lc = s->session.listener->cfg;

	if (s->session.client->error) {
		s->state = HTTP_CLOSING;
		return true;
	}
	if (len == 0) {
		if (s->session.client->eof || s->no_keepalive || s->session.timer_fired) {
			if (s->session.timer_fired && session_handshaking(&s->session))
				tls_conn_note_timeout(s->session.client);
			s->state = HTTP_CLOSING; /* idle: close without a word */
			return true;
		}
		return false;
	}
	int h2 = s->x == NULL ? speaks_h2(s, len) : 0;
	if (h2 > 0)
		return start_h2(s);
	if (h2 < 0) {
		if (s->session.client->eof || s->session.timer_fired) {
			s->state = HTTP_CLOSING;
			return true;
		}
		return false;
	}
	if (!output_allows_next_request(s))
		return s->state != HTTP_READ_HEAD;
	if (s->x == NULL && !exchange_take(s)) {
		s->state = HTTP_CLOSING; /* no memory for it */
		return true;
	}
	if (!s->head_timer_started) {
		s->head_timer_started = true;
		if (s->requests_served > 0)
			session_timer_arm(&s->session, lc->timeouts.header_ms);
	}
	size_t n = len < lc->max_header_size ? len : lc->max_header_size;
	const char *buf = (const char *)evbuffer_pullup(s->session.client->in, (ev_ssize_t)n);
	size_t head_len = http_head_length(buf, n, &s->scan_pos);
	if (head_len == 0) {
		if (n >= lc->max_header_size) {
			respond_error(s, 431);
			return true;
		}
		if (s->session.client->eof || !http_request_prefix_valid(buf, n)) {
			respond_error(s, 400); /* no request can follow: at once, not at the timeout */
			return true;
		}
		if (s->session.timer_fired) {
			respond_error(s, 408);
			return true;
		}
		return false;
	}
	return dispatch_request(s, buf, head_len);
}

/* The PROXY header of a front L4 balancer: the client is the one it names.
 * A connection without one is closed (it did not come through the front);
 * the header must arrive within timeouts.header, like a request head. */
static bool read_proxy_header(struct http_session *s)
{
	int rc = session_take_proxy_header(&s->session);
	if (rc == 0 && !s->session.timer_fired)
		return false;
	if (rc <= 0) {
		char ip[INET6_ADDRSTRLEN];
		log_debug("listener %s: %s: no valid PROXY header", s->session.listener->cfg->name, client_ip(s, ip));
		s->state = HTTP_CLOSING;
		return true;
	}
	s->state = HTTP_READ_HEAD;
	if (s->session.listener->tls != NULL && session_start_tls(&s->session, PLAIN_HTTP_ANSWER) < 0)
		s->state = HTTP_CLOSING;
	return true;
}

/* ---- the server side ---- */

static void send_request(struct http_session *s)
{
	s->session.server.conn->want_read = true;
	/* By reference, not copied: req_out and req_body_copy stay unchanged
	 * until this server connection is done with them (pooled with an empty
	 * output, or freed) and are kept for a retry; libevent refcounts the
	 * body's chains, so freeing req_body_copy first is safe too. */
	struct evbuffer *out = s->session.server.conn->out;
	evbuffer_add_reference(out, s->x->req_out, s->x->req_out_len, NULL, NULL);
	size_t body = 0;
	if (s->x->req_body_copy != NULL) {
		body = evbuffer_get_length(s->x->req_body_copy);
		evbuffer_add_buffer_reference(out, s->x->req_body_copy);
	}
	count_server_bytes(s, s->x->req_out_len + body, 0);
	s->x->sent_at = session_now(&s->session);
	s->x->resp_scan_pos = 0;
	s->x->resp_started = false;
	s->x->request_sent = true;
	s->state = HTTP_EXCHANGE;
	/* timeouts.response runs from the end of the request; while a body is
	 * still coming, each piece of it moves an idle deadline instead. */
	const struct cfg_backend *cfg = s->session.backend->cfg;
	session_timer_arm(&s->session, s->x->req_done ? cfg->timeouts.response_ms : cfg->timeouts.idle_ms);
}

/* Send the request to the server whose slot it holds: over an idle pooled
 * connection when use_pool allows and there is one, else over a new one. */
static bool attempt_on(struct http_session *s, bool use_pool)
{
	struct peer_client client = { &s->session.client_addr,
				      s->session.proxied_to.sa.sa_family != AF_UNSPEC ? &s->session.proxied_to.sa : NULL,
				      s->session.client };
	switch (peer_attach(&s->session.server, s->session.backend, s->session.worker, use_pool, &client,
			    session_on_event, &s->session)) {
	case PEER_READY:
		send_request(s);
		return true;
	case PEER_CONNECTING:
		s->state = HTTP_CONNECTING;
		session_timer_arm(&s->session, s->session.backend->cfg->timeouts.connect_ms);
		return true;
	case PEER_NO_SOCKET:
		break;
	}
	respond_error(s, 503);
	return true;
}

static void on_slot(struct peer *p)
{
	struct session *session = (struct session *)((char *)p - offsetof(struct session, server));
	http_drive((struct http_session *)session);
}

/* Every candidate is at its limit: wait in the backend's queue, for at
 * most timeouts.queue; a full queue answers 503 (with Retry-After) now. */
static bool wait_for_slot(struct http_session *s)
{
	if (!peer_wait(&s->session.server, s->session.backend, s->session.worker, on_slot)) {
		respond_error(s, 503);
		return true;
	}
	s->state = HTTP_QUEUED;
	s->session.client->want_read = true; /* to see the client leave */
	session_timer_arm(&s->session, s->session.backend->cfg->timeouts.queue_ms);
	return false;
}

/* Is the rest of the request's body in the client's input already (a
 * chunked body, or one too large to set aside, waits there unread)? */
static bool request_body_buffered(const struct http_session *s)
{
	struct evbuffer *in = s->session.client->in;
	struct http_body probe = s->x->req_body;
	struct evbuffer_ptr at;
	struct evbuffer_iovec v;
	if (in == NULL || evbuffer_ptr_set(in, &at, 0, EVBUFFER_PTR_SET) < 0)
		return false;
	while (evbuffer_peek(in, -1, &at, &v, 1) >= 1 && v.iov_len > 0) { /* chunk by chunk, all of them */
		size_t used = 0;
		enum http_body_status st = http_body_feed(&probe, v.iov_base, v.iov_len, &used);
		if (st != HTTP_BODY_MORE)
			return st == HTTP_BODY_DONE;
		if (evbuffer_ptr_set(in, &at, v.iov_len, EVBUFFER_PTR_ADD) < 0)
			return false;
	}
	return false;
}

/* In the queue: a slot came (go on), the client left (its place goes at
 * once, with the session), or timeouts.queue passed (503, unless a slot
 * came meanwhile). A client that half-closed after a whole request still
 * waits for its answer (HAProxy without abortonclose). */
static bool queued(struct http_session *s)
{
	struct peer *p = &s->session.server;
	if (!peer_waiting(p) && p->index >= 0)
		return attempt_on(s, s->x->retriable);
	/* A client that left (an HTTP/2 stream's EOF is its END_STREAM, the
	 * normal end of a body still to be read: only a reset counts); its
	 * FIN after the whole request is a half-close. */
	bool left = s->session.client->eof && !s->x->req_done && s->session.client->fd >= 0 &&
		    !request_body_buffered(s);
	if (s->session.client->error || left) {
		s->state = HTTP_CLOSING;
		return true;
	}
	if (!s->session.timer_fired)
		return false;
	if (peer_wait_timed_out(p))
		return attempt_on(s, s->x->retriable);
	respond_error(s, 503);
	return true;
}

/* Pick a server not tried yet and send to it. Answers 503/502 when none is left. */
static bool start_attempt(struct http_session *s)
{
	struct gen_backend *b = s->session.backend;

	/* Out of servers or tries: 503 when none could even be reached
	 * (nothing was sent: the client may retry, as HAProxy answers), else 502. */
	int i = peer_pick(&s->session.server, b, s->session.worker, s->x->has_hash_key ? s->x->hash_key : NULL, s->x->hash_key_len);
	if (i == PEER_PICK_FULL)
		return wait_for_slot(s);
	if (i < 0) {
		respond_error(s, s->x->request_sent || s->x->server_refused_tls ? 502 : 503);
		return true;
	}
	/* A pooled connection may be closed by the server just as the request
	 * arrives (its keep-alive timeout, a restart, a request limit), and
	 * then nobody knows whether the request was applied. lb repeats what
	 * it may repeat (below, in exchange()); a request it could not repeat
	 * (POST, a body it did not keep) goes on a new connection, as
	 * HAProxy's "http-reuse safe" reasons. */
	return attempt_on(s, s->x->retriable);
}

/* After a failure already noted: try another server for this request if
 * SPEC 6 allows it. */
static bool retry_or_fail(struct http_session *s, bool allowed, int status)
{
	server_release(s, false);
	if (allowed)
		return start_attempt(s);
	respond_error(s, status);
	return true;
}

static bool connecting(struct http_session *s)
{
	if (s->session.client->error) {
		s->state = HTTP_CLOSING;
		return true;
	}
	/* Nothing was sent, and no byte of the body consumed (it waits in the
	 * client input, or whole in req_body_copy): any request may go to
	 * another server. */
	if (s->session.timer_fired) {
		s->session.timer_fired = false;
		note_server_failure(s, "connect timeout");
		return retry_or_fail(s, true, 502);
	}
	if (s->session.server.conn->error || s->session.server.conn->eof) {
		int err = s->session.server.conn->error ? s->session.server.conn->error_code : ECONNRESET;
		const char *tls_failure = tls_conn_failure(s->session.server.conn);
		if (tls_failure[0] != '\0')
			s->x->server_refused_tls = true;
		peer_note_connect_failure(&s->session.server, s->session.backend, err);
		log_debug("backend %s: connect to %s failed: %s", s->session.backend->cfg->name,
			  peer_server(&s->session.server, s->session.backend)->state->addr,
			  tls_failure[0] != '\0' ? tls_failure : strerror(err));
		return retry_or_fail(s, true, 502);
	}
	if (!s->session.server.conn->connected)
		return false;
	send_request(s);
	return true;
}

/* Move body bytes of one message from src to dst, as far as its framing
 * goes. Returns -1 on a framing error, else the bytes moved. */
static ssize_t pump_body(struct http_body *body, struct evbuffer *src, struct evbuffer *dst)
{
	size_t moved = 0;

	while (!http_body_done(body) && evbuffer_get_length(src) > 0) {
		struct evbuffer_iovec vec[8];
		int n = evbuffer_peek(src, -1, NULL, vec, 8);
		size_t take = 0;
		enum http_body_status st = HTTP_BODY_MORE;
		for (int i = 0; i < n && i < 8 && st == HTTP_BODY_MORE; i++) {
			size_t used = 0;
			st = http_body_feed(body, vec[i].iov_base, vec[i].iov_len, &used);
			take += used;
		}
		if (st == HTTP_BODY_ERROR)
			return -1;
		if (take == 0)
			break;
		evbuffer_remove_buffer(src, dst, take);
		moved += take;
	}
	return (ssize_t)moved;
}

static bool pump_request_body(struct http_session *s)
{
	if (s->x->req_done)
		return true;
	ssize_t n = pump_body(&s->x->req_body, s->session.client->in, s->session.server.conn->out);
	if (n < 0) {
		respond_error(s, 400);
		return false;
	}
	s->x->req_bytes += (uint64_t)n;
	count_server_bytes(s, (uint64_t)n, 0);
	s->x->req_done = http_body_done(&s->x->req_body);
	if (n > 0) {
		bool awaiting_response = s->x->req_done && !s->x->resp_started;
		const struct cfg_backend *cfg = s->session.backend->cfg;
		session_timer_arm(&s->session, awaiting_response ? cfg->timeouts.response_ms : cfg->timeouts.idle_ms);
	}
	relay_backpressure(s->session.client, s->session.server.conn);
	return true;
}

static void count_response(struct http_session *s)
{
	struct gen_server *gs = peer_server(&s->session.server, s->session.backend);
	int class = s->x->resp.status / 100;
	if (gs != NULL && class >= 1 && class <= 5)
		atomic_fetch_add_explicit(&gs->state->responses[class], 1, memory_order_relaxed);
}

static void start_tunnel(struct http_session *s)
{
	s->state = HTTP_TUNNEL;
	session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
	s->session.client->want_read = true;
}

/* An interim (1xx) head went by: the final head follows; it was
 * progress, as any byte relayed. */
static bool interim_passed(struct http_session *s)
{
	s->x->resp_scan_pos = 0;
	session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
	return true;
}

/* Forward a response head from the front of the server input. Returns
 * false while incomplete; may answer 502 itself. */
static bool forward_response_head(struct http_session *s)
{
	struct evbuffer *in = s->session.server.conn->in;
	size_t len = evbuffer_get_length(in);
	size_t n = len < RESPONSE_HEAD_MAX ? len : RESPONSE_HEAD_MAX;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	size_t head_len = http_head_length(buf, n, &s->x->resp_scan_pos);

	if (head_len == 0) {
		if (n >= RESPONSE_HEAD_MAX || s->session.server.conn->eof || s->session.server.conn->error) {
			note_invalid_response(s, "incomplete or oversized response head");
			respond_error(s, 502);
			return true;
		}
		if (s->session.timer_fired) { /* part of a head, then nothing */
			note_server_failure(s, "response timeout");
			respond_error(s, 504);
			return true;
		}
		return false;
	}
	if (http_parse_response(buf, head_len, s->x->req.method, s->x->req.upgrade, &s->x->resp) != HTTP_MSG_OK) {
		note_invalid_response(s, s->x->resp.error ? s->x->resp.error : "invalid head");
		respond_error(s, 502);
		return true;
	}
	if (s->x->resp.interim && s->x->req.version_minor == 0) {
		/* HTTP/1.0 has no 1xx: not for such a client (RFC 9110 15.2) */
		evbuffer_drain(in, head_len);
		count_server_bytes(s, 0, head_len);
		return interim_passed(s);
	}
	bool tunnel = s->x->resp.framing == HTTP_FRAMING_TUNNEL;
	if (!s->x->resp.interim) {
		/* A client's FIN after pipelined requests: those it sent are
		 * answered first (SPEC 7), then the connection closes. */
		bool client_done = s->session.client->eof && conn_input_length(s->session.client) == 0;
		s->close_client = s->close_client || s->no_keepalive || worker_draining(s->session.worker) ||
				  client_done || !s->x->req_done || !http_client_keep_alive(&s->x->req, &s->x->resp);
	}
	struct http_response_forward fwd = { .close_client = s->close_client && !tunnel,
					     .client_http10 = s->x->req.version_minor == 0 };
	struct evbuffer *out = s->session.client->out;
	struct evbuffer_iovec vec;
	if (evbuffer_reserve_space(out, (ev_ssize_t)(head_len + HEAD_REWRITE_SLACK), &vec, 1) < 1) {
		respond_error(s, 502);
		return true;
	}
	size_t out_len = http_rewrite_response(buf, &s->x->resp, &fwd, vec.iov_base, vec.iov_len);
	if (out_len == 0) {
		note_invalid_response(s, "response head too large to rewrite");
		respond_error(s, 502);
		return true;
	}
	vec.iov_len = out_len;
	evbuffer_commit_space(out, &vec, 1);
	evbuffer_drain(in, head_len);
	s->x->resp_bytes += out_len;
	count_server_bytes(s, 0, head_len);
	if (s->x->resp.interim)
		return interim_passed(s);
	s->x->status = s->x->resp.status;
	s->x->resp_head_done = true;
	count_response(s);
	const struct peer *p = &s->session.server;
	if (p->index >= 0 && s->session.backend->servers[p->index].cfg->max_connections == CFG_LIMIT_AUTO) {
		struct timeval now = session_now(&s->session);
		int64_t us = ((int64_t)now.tv_sec - s->x->sent_at.tv_sec) * 1000000 + (now.tv_usec - s->x->sent_at.tv_usec);
		overload_sample(s->session.backend, (size_t)p->index, us > 0 ? (uint64_t)us : 0);
	}
	if (s->x->resp.status >= 500)
		note_server_failure(s, "5xx response");
	else
		peer_note_success(&s->session.server, s->session.backend);
	if (tunnel) {
		start_tunnel(s);
		return true;
	}
	http_body_init_head(&s->x->resp_body, &s->x->resp);
	session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
	return true;
}

/* Between two requests, a keep-alive connection moves to the worker's
 * newest generation, so a reload reaches clients that keep their
 * connections (in-flight requests finish on the generation they started
 * on, SPEC 3). Returns false when its listener is gone from the new
 * configuration: the connection then closes after this response. */
static bool follow_newest_generation(struct http_session *s)
{
	struct gen *newest = s->session.worker->gen;
	if (s->session.gen == newest)
		return true;
	const struct cfg_listener *old = s->session.listener->cfg;
	for (size_t i = 0; i < newest->nlisteners; i++) {
		const struct gen_listener *l = &newest->listeners[i];
		if (strcmp(l->cfg->name, old->name) == 0 && l->fds[0] == s->session.listener->fds[0] && l->cfg->mode == old->mode &&
		    (l->tls != NULL) == (s->session.listener->tls != NULL)) {
			struct gen *previous = s->session.gen;
			peer_forget_private(&s->session.server); /* its server's number was the old generation's */
			s->session.gen = gen_acquire(newest);
			s->session.listener = l;
			s->session.backend = l->backend;
			gen_release(previous);
			return true;
		}
	}
	return false;
}

/* The response is complete: recycle the server connection, log, move on. */
static void finish_exchange(struct http_session *s)
{
	bool reusable = s->x->resp.keep_alive && s->x->req_done && !s->session.server.conn->eof && !s->session.server.conn->error &&
			evbuffer_get_length(s->session.server.conn->in) == 0 && conn_unsent(s->session.server.conn) == 0;
	request_complete(s);
	server_release(s, reusable);
	request_reset(s);
	drain_empty_lines(s->session.client); /* a CRLF after the body: still idle */
	if (evbuffer_get_length(s->session.client->in) == 0)
		exchange_give_back(s); /* idle until the next request */
	s->requests_served++;
	if (s->close_client || !follow_newest_generation(s)) {
		flush_then_close(s);
		return;
	}
	s->state = HTTP_READ_HEAD;
	s->session.client->want_read = true;
	session_timer_arm(&s->session, s->session.listener->cfg->timeouts.client_ms);
}

/* The response is cut short after its head went out (the caller noted
 * the server's failure): the client conn is marked failed too, so that a
 * stream of an HTTP/2 client is reset rather than ended as if whole (a
 * TCP client just sees the connection close). */
static bool cut_response(struct http_session *s)
{
	s->session.client->error = true;
	s->state = HTTP_CLOSING;
	return true;
}

static bool exchange(struct http_session *s)
{
	if (s->session.client->error) {
		s->state = HTTP_CLOSING;
		return true;
	}
	if (!pump_request_body(s))
		return true;
	if (!s->x->resp_head_done) {
		struct evbuffer *in = s->session.server.conn->in;
		if (evbuffer_get_length(in) == 0) {
			if (s->session.server.conn->eof || s->session.server.conn->error) {
				if (s->session.server.reused && s->x->retriable) {
					/* A pooled connection the server had just dropped
					 * (its keep-alive timeout raced with our reuse):
					 * not the server's failure, and no try used up;
					 * the same server again on a new connection, as
					 * nginx does. */
					peer_drop_conn(&s->session.server, s->session.backend, s->session.worker,
						       PEER_ABORT, false);
					return attempt_on(s, false);
				}
				/* A server that died with the request: an idempotent
				 * request is safe to repeat elsewhere (SPEC 6). A
				 * server going away (a restart) is no overload: the
				 * retry is outside the retry budget. */
				note_server_failure(s, "closed before responding");
				s->session.server.free_retry = true;
				return retry_or_fail(s, s->x->retriable, 502);
			}
			if (s->session.timer_fired && !s->x->req_done && conn_unsent(s->session.server.conn) > 0) {
				/* the body waits for the server, which stopped reading it */
				note_server_failure(s, "stopped reading the request");
				respond_error(s, 504);
				return true;
			}
			if (s->session.timer_fired && !s->x->req_done) {
				respond_error(s, 408); /* the client's body stalled */
				return true;
			}
			if (s->session.timer_fired) {
				note_server_failure(s, "response timeout");
				respond_error(s, 504);
				return true;
			}
			if (s->session.client->eof && !s->x->req_done) {
				s->state = HTTP_CLOSING; /* the client gave up mid-request */
				return true;
			}
			return false;
		}
		if (!s->x->resp_started) {
			/* timeouts.response runs until the first byte of the
			 * response (an interim 1xx too), timeouts.idle from there */
			s->x->resp_started = true;
			session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
		}
		if (!forward_response_head(s))
			return false;
		return true; /* state may have changed, or an interim head was sent */
	}
	ssize_t n = pump_body(&s->x->resp_body, s->session.server.conn->in, s->session.client->out);
	if (n < 0) {
		note_invalid_response(s, "invalid body framing");
		return cut_response(s); /* the head is out: nothing to say but close */
	}
	if (n > 0) {
		s->x->resp_bytes += (uint64_t)n;
		count_server_bytes(s, 0, (uint64_t)n);
		session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
	}
	if (http_body_done(&s->x->resp_body)) {
		/* before the last bytes are flushed: a client that has its whole
		 * answer finds the server's slot given back (/stats "active") */
		finish_exchange(s);
		return true;
	}
	relay_backpressure(s->session.server.conn, s->session.client);
	if (s->session.server.conn->eof || s->session.server.conn->error) {
		if (!http_body_eof_ok(&s->x->resp_body) || s->session.server.conn->error) {
			note_server_failure(s, "closed in the middle of a response");
			return cut_response(s);
		}
		s->close_client = true; /* the body ended with the connection */
		finish_exchange(s);
		return true;
	}
	if (s->session.client->eof && !s->x->req_done) {
		s->state = HTTP_CLOSING;
		return true;
	}
	if (s->session.timer_fired) {
		note_server_failure(s, "idle timeout in a response");
		return cut_response(s);
	}
	return false;
}

static bool tunnel(struct http_session *s)
{
	if (s->session.client->error || s->session.server.conn->error) {
		s->state = HTTP_CLOSING;
		return true;
	}
	size_t up = relay_move(s->session.client, s->session.server.conn);
	size_t down = relay_move(s->session.server.conn, s->session.client);
	if (s->session.client->error || s->session.server.conn->error) { /* no memory (relay_move) */
		s->state = HTTP_CLOSING;
		return true;
	}
	s->x->req_bytes += up;
	s->x->resp_bytes += down;
	count_server_bytes(s, up, down);
	if (up + down > 0)
		session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
	conn_flush(s->session.server.conn);
	conn_flush(s->session.client);
	bool upstream_done = relay_pass_half_close(s->session.client, s->session.server.conn);
	bool downstream_done = relay_pass_half_close(s->session.server.conn, s->session.client);
	if ((upstream_done && downstream_done) || s->session.timer_fired) {
		request_complete(s);
		s->state = HTTP_CLOSING;
		return true;
	}
	return false;
}

/* Our answer is out: shut our side, read what the client still sends (so
 * the kernel does not reset the connection under our answer), then close. */
static bool linger(struct http_session *s)
{
	struct evbuffer *in = s->session.client->in;
	evbuffer_drain(in, evbuffer_get_length(in));
	if (s->session.client->eof || s->session.client->error || s->session.timer_fired) {
		s->state = HTTP_CLOSING;
		return true;
	}
	return false;
}

static void http_session_free(struct http_session *s)
{
	if (s->x != NULL && s->x->method_name != NULL && !s->x->logged) {
		/* Cut off in the middle: 499 when the client left (nginx's
		 * code), 502 when the server failed. Still one log line. */
		if (s->x->status == 0)
			s->x->status = s->session.client->error || s->session.client->eof ? 499 : 502;
		request_complete(s);
	}
	server_release(s, false);
	request_reset(s);
	exchange_give_back(s);
	h2_conn_free(s->h2);
	free(s->stream_subject);
	session_close(&s->session);
	slab_free(s);
}

/* The last answer is being written: once it is out, close. After an
 * answer of lb's own, or when the client has sent more than we read, shut
 * our side first and linger, so that the client gets the answer instead of
 * a reset; after a normal last response with nothing more sent, close at
 * once (as nginx's lingering_close does), which spares a shutdown, a wake-up
 * and a read per connection. */
static bool flush_close(struct http_session *s)
{
	conn_flush(s->session.client);
	if (s->session.client->error || s->session.timer_fired) {
		s->state = HTTP_CLOSING;
		return true;
	}
	if (conn_unsent(s->session.client) > 0)
		return false;
	if (!s->must_linger && evbuffer_get_length(s->session.client->in) == 0) {
		s->state = HTTP_CLOSING;
		return true;
	}
	conn_shutdown_write(s->session.client);
	s->session.client->want_read = true;
	s->state = HTTP_LINGER;
	session_timer_arm(&s->session, LINGER_MS);
	return true;
}

/* Run the state machine until it waits for an event, then write what it
 * produced and (un)register reads as the buffers now require. */
static void http_drive(struct http_session *s)
{
	for (;;) {
		bool progressed = false;
		switch (s->state) {
		case HTTP_PROXY_HEADER:
			progressed = read_proxy_header(s);
			break;
		case HTTP_READ_HEAD:
			progressed = read_request_head(s);
			break;
		case HTTP_QUEUED:
			progressed = queued(s);
			break;
		case HTTP_CONNECTING:
			progressed = connecting(s);
			break;
		case HTTP_EXCHANGE:
			progressed = exchange(s);
			break;
		case HTTP_TUNNEL:
			progressed = tunnel(s);
			break;
		case HTTP_H2:
			progressed = h2_step(s);
			break;
		case HTTP_FLUSH_CLOSE:
			progressed = flush_close(s);
			break;
		case HTTP_LINGER:
			progressed = linger(s);
			break;
		case HTTP_CLOSING:
			http_session_free(s);
			return;
		}
		if (!progressed)
			break;
	}
	if (s->session.server.conn != NULL && s->state != HTTP_CONNECTING) {
		conn_flush(s->session.server.conn);
		conn_sync(s->session.server.conn);
	}
	conn_flush(s->session.client);
	conn_sync(s->session.client);
	if ((s->state == HTTP_READ_HEAD && s->x == NULL) || (s->state == HTTP_H2 && h2_conn_idle(s->h2)))
		conn_buffers_release(s->session.client); /* idle: once the answer is out */
}

static void http_drive_session(struct session *session)
{
	http_drive((struct http_session *)session);
}

static void http_session_destroy(struct session_link *link)
{
	http_session_free((struct http_session *)link);
}

/* The worker stops or the instance drains: idle keep-alive connections
 * close now, busy ones after their current response. While draining, a
 * connection that has not had its first request yet (its TLS handshake
 * may be under way) still gets it answered: its client chose this
 * instance for it. */
static void http_session_stop(struct session_link *link, enum session_stop why)
{
	struct http_session *s = (struct http_session *)link;
	if (why == SESSION_STOP_RELOADED) {
		/* HTTP/2: GOAWAY, the streams in flight finish on their
		 * generation, the client's next ones come on a new connection
		 * (SPEC 14). An HTTP/1.1 connection's next request simply takes
		 * the new generation (follow_newest_generation). */
		if (s->h2 != NULL && s->state == HTTP_H2) {
			h2_conn_shutdown(s->h2);
			http_drive(s);
		}
		return;
	}
	s->close_client = true;
	if (s->requests_served == 0 && s->h2 == NULL && !atomic_load(&s->session.worker->stopping))
		return; /* its first response says Connection: close */
	s->no_keepalive = true;
	if (s->h2 != NULL)
		h2_conn_shutdown(s->h2); /* GOAWAY: the streams in flight finish */
	if (s->state == HTTP_READ_HEAD || s->state == HTTP_H2)
		http_drive(s);
}

int http_session_start(struct worker *w, const struct gen_listener *l, int fd, const struct sockaddr_storage *peer,
		       socklen_t peer_len)
{
	struct http_memory *m = http_memory_of(w);
	struct http_session *s = m != NULL ? slab_alloc(m->sessions) : NULL;
	if (s == NULL) {
		close(fd);
		return -1;
	}
	memset(s, 0, sizeof(*s));
	s->state = l->cfg->proxy_protocol ? HTTP_PROXY_HEADER : HTTP_READ_HEAD;
	if (session_open(&s->session, w, l, fd, peer, peer_len, http_drive_session, http_session_destroy,
			 http_session_stop) < 0) {
		http_session_free(s);
		return 0; /* the free dropped the connection count */
	}
	if (l->tls != NULL && !l->cfg->proxy_protocol && session_start_tls(&s->session, PLAIN_HTTP_ANSWER) < 0) {
		http_session_free(s);
		return 0;
	}
	if (l->cfg->max_header_size > s->session.client->read_limit)
		s->session.client->read_limit = l->cfg->max_header_size; /* room for a whole head */
	/* The first request's head must arrive within timeouts.header of the
	 * accept (slowloris); later ones within it of their first byte. */
	s->head_timer_started = true;
	session_timer_arm(&s->session, l->cfg->timeouts.header_ms);
	/* The request is usually there already (TCP_DEFER_ACCEPT): serve it
	 * now rather than after another trip through epoll. */
	conn_read_now(s->session.client);
	http_drive(s);
	return 0;
}

/* An HTTP/2 stream (h2.h) of the connection `owner`: a session of its own
 * on a virtual conn, as if its request had come on a connection of its
 * own, under the newest generation (as a keep-alive connection's next
 * request is). */
static int http_stream_start(void *owner, const struct conn_transport *transport, void *state)
{
	struct http_session *conn = owner;
	struct worker *w = conn->session.worker;
	if (!follow_newest_generation(conn)) {
		h2_conn_shutdown(conn->h2); /* its listener is gone: no more streams */
		return -1;
	}
	const struct gen_listener *l = conn->session.listener;
	struct http_memory *m = http_memory_of(w);
	struct http_session *s = m != NULL ? slab_alloc(m->sessions) : NULL;
	if (s == NULL)
		return -1;
	memset(s, 0, sizeof(*s));
	s->state = HTTP_READ_HEAD;
	s->close_client = true; /* one request per stream: its response, whole, ends it */
	char subject[512];
	const char *who = client_subject(conn, subject, sizeof(subject)); /* the connection's TLS */
	if (who != NULL)
		s->stream_subject = strdup(who);
	if (session_open_virtual(&s->session, w, conn->session.gen, l, &conn->session, transport, state,
				 http_drive_session, http_session_destroy, http_session_stop) < 0) {
		bool opened = s->session.client != NULL;
		http_session_free(s);
		return opened ? 0 : -1; /* once open, the conn's close told the stream */
	}
	/* A stream's request body waits in its stream window (64 KiB), not in
	 * a connection's worth of buffer: 100 streams must stay cheap. */
	s->session.client->read_limit = l->cfg->max_header_size > 64 * 1024 ? l->cfg->max_header_size : 64 * 1024;
	s->head_timer_started = true;
	session_timer_arm(&s->session, l->cfg->timeouts.header_ms);
	conn_read_now(s->session.client);
	http_drive(s);
	return 0;
}
