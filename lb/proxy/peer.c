/* peer: a session's server side. See peer.h. */
#include "peer.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "health.h"
#include "log.h"
#include "pool.h"
#include "proxy_proto.h"
#include "tls_conn.h"
#include "worker.h"

void peer_init(struct peer *p)
{
	p->conn = NULL;
	p->index = -1;
	p->reused = false;
	p->retry = false;
	p->free_retry = false;
	p->tries.count = 0;
	p->waiter.where = QUEUE_NOWHERE;
	queue_link_init(&p->waiter.mail.link);
	p->private_conn = NULL;
	p->private_index = -1;
}

void peer_forget_private(struct peer *p)
{
	if (p->private_conn != NULL) {
		conn_free(p->private_conn);
		p->private_conn = NULL;
	}
}

/* The private connection, idle, heard something: the server closed it
 * (or sent what nobody asked for). */
static void on_private_event(struct conn *c, void *arg)
{
	(void)c;
	peer_forget_private(arg);
}

/* send_proxy: this client's own idle connection to server i, if it has
 * one that may carry a request now (use_pool: one that lb could repeat
 * should the server have just closed it). Any other is closed. */
static struct conn *take_private(struct peer *p, int i, bool use_pool)
{
	struct conn *c = p->private_conn;
	if (c != NULL && (!use_pool || p->private_index != i || c->eof || c->error || !conn_buffers_ensure(c)))
		peer_forget_private(p);
	c = p->private_conn;
	p->private_conn = NULL;
	return c;
}

/* Retries in flight stay within retry_budget percent of the backend's
 * requests in flight, or 3 (Envoy's budget), so that retries cannot
 * multiply an overload. A retry after a connect that failed (refused,
 * reset) or a server that closed without answering is free (free_retry): a
 * server going away is no overload, and a rolling restart must cost no
 * request. What counts is what an overload looks like: a connect that
 * times out (a full accept queue drops SYNs). */
static bool retry_budget_allows(const struct gen_backend *b)
{
	unsigned active = atomic_load_explicit(&b->state->active, memory_order_relaxed);
	unsigned retries = atomic_load_explicit(&b->state->retries_active, memory_order_relaxed);
	unsigned budget = (unsigned)((uint64_t)active * (unsigned)b->cfg->retry_budget_percent / 100);
	return retries < (budget > 3 ? budget : 3);
}

/* p holds a slot of server i now: record the try, count it. */
static void slot_held(struct peer *p, struct gen_backend *b, int i)
{
	p->index = i;
	p->retry = p->tries.count > 0 && !p->free_retry;
	p->free_retry = false;
	if (p->retry)
		atomic_fetch_add_explicit(&b->state->retries_active, 1, memory_order_relaxed);
	pick_record(&p->tries, i);
	atomic_fetch_add_explicit(&b->servers[i].state->requests, 1, memory_order_relaxed);
}

/* May slots run out (a server has a limit, or requests wait)? */
static bool limited(const struct gen_backend *b)
{
	return atomic_load_explicit(&b->state->limited, memory_order_relaxed) || queue_length(b) > 0;
}

int peer_pick(struct peer *p, struct gen_backend *b, struct worker *w, const void *key, size_t key_len)
{
	if (p->tries.count > 0 && !p->free_retry && !retry_budget_allows(b)) {
		atomic_fetch_add_explicit(&b->state->retries_refused, 1, memory_order_relaxed);
		return PEER_PICK_NONE;
	}
	if (!limited(b)) {
		int i = pick_next_server(b, w->index, &p->tries, key, key_len, false);
		if (i < 0)
			return PEER_PICK_NONE;
		if (slot_take(b, (size_t)i)) {
			slot_held(p, b, i);
			return i;
		}
		/* a limit came just now: as below */
	}
	/* Slots may run out. Requests that wait go first (FIFO): a new one
	 * joins them. hash: the key's server or nothing (no silent move). */
	bool hash = b->cfg->balance == BALANCE_HASH;
	p->waiter.want = -1;
	for (int attempt = 0; attempt < 3; attempt++) {
		bool waiting = queue_length(b) > 0;
		int i = pick_next_server(b, w->index, &p->tries, key, key_len, !hash && !waiting);
		if (i < 0) {
			if (!hash && !waiting && pick_next_server(b, w->index, &p->tries, key, key_len, false) >= 0)
				return PEER_PICK_FULL; /* candidates, all full */
			return PEER_PICK_NONE;
		}
		if (!waiting && slot_take(b, (size_t)i)) {
			slot_held(p, b, i);
			return i;
		}
		if (hash || waiting) {
			p->waiter.want = hash ? i : -1;
			return PEER_PICK_FULL;
		}
		/* another worker took the last slot between the look and the take */
	}
	return PEER_PICK_FULL;
}

static void peer_on_grant(struct queue_waiter *qw)
{
	struct peer *p = (struct peer *)((char *)qw - offsetof(struct peer, waiter));
	slot_held(p, qw->backend, qw->granted);
	duration_observe(&qw->backend->state->queue_time, (clock_ms() - qw->since_ms) * 1000);
	p->on_slot(p);
}

bool peer_wait(struct peer *p, struct gen_backend *b, struct worker *w, void (*on_slot)(struct peer *p))
{
	p->on_slot = on_slot;
	p->waiter.backend = b;
	p->waiter.tries = &p->tries;
	p->waiter.worker = w;
	p->waiter.on_grant = peer_on_grant;
	return queue_join(&p->waiter);
}

bool peer_wait_timed_out(struct peer *p)
{
	if (!peer_waiting(p))
		return false;
	bool granted = queue_leave(&p->waiter);
	duration_observe(&p->waiter.backend->state->queue_time, (clock_ms() - p->waiter.since_ms) * 1000);
	if (granted)
		slot_held(p, p->waiter.backend, p->waiter.granted);
	else
		atomic_fetch_add_explicit(&p->waiter.backend->state->queue_rejected[QUEUE_REJECT_TIMEOUT], 1,
					  memory_order_relaxed);
	return granted;
}

/* backends[].tls: the new connection to gs goes on TLS, offering the
 * worker's last session with that server. */
static int start_tls(struct conn *c, const struct gen_backend *b, const struct gen_server *gs, const struct worker *w)
{
	return tls_conn_connect(c, tls_client_ctx(b->tls), gen_server_tls_name(b, gs), gs->tls_sessions[w->index]);
}

/* A pooled connection made under this backend's TLS settings: pooled
 * before a reload that turned backends[].tls on or off, or changed how
 * servers are verified, it is not used (it would skip the new checks). */
static bool pooled_conn_fits(const struct conn *c, const struct gen_backend *b)
{
	SSL *ssl = tls_conn_ssl(c);
	if (b->tls == NULL)
		return ssl == NULL;
	return ssl != NULL && SSL_get_SSL_CTX(ssl) == tls_client_ctx(b->tls);
}

/* Keep the session of a TLS connection to gs for the worker's next one.
 * Even after a resumption: a TLS 1.3 client uses a ticket once (OpenSSL
 * marks the resumed session spent), and the server sent fresh ones. */
static void keep_tls_session(const struct gen_backend *b, struct gen_server *gs, const struct worker *w,
			     const struct conn *c)
{
	SSL *ssl = tls_conn_ssl(c);
	if (ssl == NULL || !tls_conn_established(c) || SSL_get_SSL_CTX(ssl) != tls_client_ctx(b->tls))
		return; /* made under other settings (a reload since): not offered with these */
	if (SSL_get0_session(ssl) == gs->tls_sessions[w->index])
		return; /* kept already (a pooled connection, request after request) */
	SSL_SESSION *session = SSL_get1_session(ssl);
	if (session == NULL)
		return;
	if (!SSL_SESSION_is_resumable(session)) {
		SSL_SESSION_free(session);
		return;
	}
	SSL_SESSION_free(gs->tls_sessions[w->index]);
	gs->tls_sessions[w->index] = session;
}

/* backends[].send_proxy: the header goes first on the new connection
 * (in the clear, before a TLS handshake). 0, or -1 without memory. */
static int send_proxy_header(struct conn *c, const struct gen_backend *b, const struct peer_client *client)
{
	struct sockaddr_storage local = { 0 }, source = { 0 };
	socklen_t len = sizeof(local);
	unsigned char header[PROXY_V1_MAX_LENGTH + PROXY_V2_FIXED_LENGTH + 36];
	bool known = false;
	if (client != NULL && client->to != NULL) {
		memcpy(&local, client->to, client->to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									   : sizeof(struct sockaddr_in));
		known = true;
	} else if (client != NULL) {
		known = getsockname(client->conn->fd, (struct sockaddr *)&local, &len) == 0;
	}
	if (known)
		memcpy(&source, client->addr, sizeof(*client->addr));
	size_t n = proxy_write(b->cfg->send_proxy, known ? &source : NULL, known ? &local : NULL, header,
			       sizeof(header));
	if (b->tls != NULL)
		return tls_conn_send_first(c, header, n);
	return evbuffer_add(c->out, header, n);
}

enum peer_attach peer_attach(struct peer *p, struct gen_backend *b, struct worker *w, bool use_pool,
			     const struct peer_client *client, conn_callback *cb, void *arg)
{
	struct gen_server *gs = &b->servers[p->index];
	if (b->cfg->send_proxy != 0) /* a connection speaks for the one client its header named */
		p->conn = take_private(p, p->index, use_pool);
	else
		p->conn = use_pool ? pool_take(w, gs->state) : NULL;
	if (p->conn != NULL && !pooled_conn_fits(p->conn, b)) {
		conn_free(p->conn);
		p->conn = NULL;
	}
	p->reused = p->conn != NULL;
	if (p->reused) {
		conn_set_callback(p->conn, cb, arg);
		return PEER_READY;
	}
	p->conn = conn_connect(w->base, w->server_conns, (struct sockaddr *)&gs->sockaddr, gs->sockaddr_len, cb, arg);
	if (p->conn != NULL && ((b->tls != NULL && start_tls(p->conn, b, gs, w) < 0) ||
				(b->cfg->send_proxy != 0 && send_proxy_header(p->conn, b, client) < 0))) {
		conn_free(p->conn);
		p->conn = NULL;
		errno = ENOMEM;
	}
	if (p->conn != NULL)
		return PEER_CONNECTING;
	/* No socket: lb's own shortage, never the server's (SPEC 6). */
	int err = errno;
	if (err == EMFILE || err == ENFILE)
		worker_out_of_descriptors(w, err);
	health_note_own_failure("new server connection", err);
	return PEER_NO_SOCKET;
}

void peer_release(struct peer *p, struct gen_backend *b, struct worker *w, enum peer_release how, bool surplus_ok)
{
	if (peer_waiting(p) && queue_leave(&p->waiter))
		slot_release(p->waiter.backend, (size_t)p->waiter.granted); /* given meanwhile: to the next */
	peer_drop_conn(p, b, w, how, surplus_ok);
	if (p->index < 0)
		return;
	if (p->retry) {
		atomic_fetch_sub_explicit(&b->state->retries_active, 1, memory_order_relaxed);
		p->retry = false;
	}
	slot_release(b, (size_t)p->index);
	p->index = -1;
}

/* Idle connections a worker keeps to gs: keepalive, or the server's
 * limit when larger, so that a server held at its limit (auto above
 * keepalive) is not reconnected to for every request above it. */
static int pool_size(const struct gen_backend *b, const struct gen_server *gs)
{
	unsigned limit = atomic_load_explicit(&gs->state->limit, memory_order_relaxed);
	return limit > (unsigned)b->cfg->keepalive ? (int)limit : b->cfg->keepalive;
}

void peer_drop_conn(struct peer *p, struct gen_backend *b, struct worker *w, enum peer_release how, bool surplus_ok)
{
	struct gen_server *gs = peer_server(p, b);
	if (p->conn != NULL) {
		if (gs != NULL && b->tls != NULL && !p->conn->error)
			keep_tls_session(b, gs, w, p->conn);
		if (how == PEER_TO_POOL && gs != NULL && b->cfg->keepalive > 0 && b->cfg->send_proxy == 0) {
			pool_put(w, gs->state, p->conn, pool_size(b, gs), b->cfg->timeouts.idle_ms, surplus_ok);
		} else if (how == PEER_TO_POOL && gs != NULL && b->cfg->keepalive > 0) {
			peer_forget_private(p); /* (none while one is in use) */
			p->private_conn = p->conn;
			p->private_index = p->index;
			conn_set_callback(p->conn, on_private_event, p);
			p->conn->want_read = true; /* to hear the server close it */
			conn_sync(p->conn);
			conn_buffers_release(p->conn);
		} else if (how == PEER_ABORT)
			conn_abort(p->conn);
		else
			conn_free(p->conn);
		p->conn = NULL;
	}
	if (how != PEER_TO_POOL)
		peer_forget_private(p);
}

void peer_note_failure(const struct peer *p, struct gen_backend *b, const char *why)
{
	struct gen_server *gs = peer_server(p, b);
	if (gs == NULL)
		return;
	health_note_failure(b, (size_t)p->index, why);
	log_debug("backend %s: server %s: %s", b->cfg->name, gs->state->addr, why);
}

void peer_note_connect_failure(struct peer *p, struct gen_backend *b, int err)
{
	if (p->index < 0)
		return;
	p->free_retry = err != 0; /* refused, reset: the server is not there; a timeout counts */
	if (err == 0)
		health_note_failure(b, (size_t)p->index, "connect timeout");
	else
		health_note_connect_failure(b, (size_t)p->index, err);
}

void peer_note_success(const struct peer *p, const struct gen_backend *b)
{
	struct gen_server *gs = peer_server(p, b);
	if (gs != NULL)
		health_note_success(gs->state);
}

void peer_count_bytes(const struct peer *p, const struct gen_backend *b, uint64_t to_server, uint64_t from_server)
{
	struct gen_server *gs = peer_server(p, b);
	if (gs == NULL)
		return;
	if (to_server > 0)
		atomic_fetch_add_explicit(&gs->state->bytes_out, to_server, memory_order_relaxed);
	if (from_server > 0)
		atomic_fetch_add_explicit(&gs->state->bytes_in, from_server, memory_order_relaxed);
}
