/*
 * tcp: TCP-mode sessions.
 *
 * One visible state machine: the conn and timer callbacks only note what
 * happened and call tcp_drive, which decides everything from the conns'
 * flags (eof, error, connected) and buffers. Buffers are bounded (relay.h).
 *
 * Timeouts: timeouts.connect bounds each connect attempt; timeouts.idle (the
 * backend's) closes a connection through which no byte moved either way for
 * that long: every byte relayed moves the deadline (deadline.h makes that
 * cheap).
 */
#include "tcp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "deadline.h"
#include "health.h"
#include "log.h"
#include "netutil.h"
#include "pick.h"
#include "relay.h"
#include "session.h"


enum tcp_state {
	TCP_PROXY_HEADER, /* proxy_protocol: waiting for the PROXY header */
	TCP_CONNECTING, /* waiting for a server connect to complete */
	TCP_RELAYING, /* bytes flow; half-closes are passed on */
	TCP_CLOSING, /* done: free everything */
};

struct tcp_session {
	struct session_link link; /* first: the worker's list */
	struct worker *worker;
	struct gen *gen; /* the generation it started under (a reference) */
	const struct gen_listener *listener;
	struct gen_backend *backend;
	enum tcp_state state;

	struct conn *client;
	struct conn *server;
	int server_index; /* -1 until picked */
	struct server_tries tries;
	bool timer_fired;

	struct deadline deadline; /* the one timer: see deadline.h */
	struct timeval started;
	uint64_t bytes_from_client, bytes_from_server;
	struct sockaddr_storage peer;
};

static void tcp_drive(struct tcp_session *s);

static struct timeval now_cached(const struct tcp_session *s)
{
	struct timeval tv;
	event_base_gettimeofday_cached(s->worker->base, &tv);
	return tv;
}

static void timer_arm(struct tcp_session *s, uint64_t ms)
{
	s->timer_fired = false;
	deadline_set(&s->deadline, ms);
}

static struct gen_server *current_server(const struct tcp_session *s)
{
	return s->server_index >= 0 ? &s->backend->servers[s->server_index] : NULL;
}

static void release_server(struct tcp_session *s)
{
	struct gen_server *gs = current_server(s);
	if (gs != NULL)
		atomic_fetch_sub_explicit(&gs->state->active, 1, memory_order_relaxed);
	conn_free(s->server);
	s->server = NULL;
	s->server_index = -1;
}

static void access_log_line(const struct tcp_session *s)
{
	if (!log_access_enabled())
		return;
	char ip[64];
	struct timeval now = now_cached(s);
	const struct gen_server *gs = current_server(s);
	netutil_format_ip(&s->peer, ip, sizeof(ip));
	log_access("%s %s %s %s tcp - - - %llu %llu %llums", ip, s->listener->cfg->name, s->backend->cfg->name,
		   gs ? gs->state->addr : "-", (unsigned long long)s->bytes_from_client,
		   (unsigned long long)s->bytes_from_server,
		   (unsigned long long)netutil_elapsed_ms(&s->started, &now));
}

static void tcp_session_free(struct tcp_session *s)
{
	access_log_line(s);
	release_server(s);
	conn_free(s->client);
	deadline_free(&s->deadline);
	worker_session_remove(s->worker, &s->link);
	gen_release(s->gen);
	free(s);
}

static void tcp_session_destroy(struct session_link *link)
{
	tcp_session_free((struct tcp_session *)link);
}

static void on_conn_event(struct conn *c, void *arg)
{
	(void)c;
	tcp_drive(arg);
}

static void on_deadline(void *arg)
{
	struct tcp_session *s = arg;
	s->timer_fired = true;
	tcp_drive(s);
}

/* Pick a server not tried yet and start connecting. false: no candidate. */
static bool connect_next_server(struct tcp_session *s)
{
	size_t key_len;
	const void *key = netutil_ip_bytes(&s->peer, &key_len);

	release_server(s);
	int i = pick_next_server(s->backend, &s->tries, key, key_len);
	if (i < 0)
		return false;
	struct gen_server *gs = &s->backend->servers[i];
	s->server_index = i;
	atomic_fetch_add_explicit(&gs->state->active, 1, memory_order_relaxed);
	s->server = conn_connect(s->worker->base, (struct sockaddr *)&gs->sockaddr, gs->sockaddr_len, on_conn_event, s);
	if (s->server == NULL) {
		/* No socket: lb's own shortage, never the server's (SPEC 6). */
		int err = errno;
		if (err == EMFILE || err == ENFILE)
			worker_out_of_descriptors(s->worker, err);
		health_note_own_failure("new server connection", err);
		return false;
	}
	timer_arm(s, s->backend->cfg->timeouts.connect_ms);
	return true;
}

/* err: the connect's errno, 0 for a timeout. */
static void note_connect_failure(struct tcp_session *s, int err)
{
	struct gen_server *gs = current_server(s);
	if (err == 0)
		health_note_failure(s->backend, (size_t)s->server_index, "connect timeout");
	else
		health_note_connect_failure(s->backend, (size_t)s->server_index, err);
	log_debug("backend %s: connect to %s failed: %s", s->backend->cfg->name, gs->state->addr,
		  err ? strerror(err) : "timeout");
}

/* Relay src's bytes to dst, counting them for the session and the server. */
static void relay(struct tcp_session *s, struct conn *src, struct conn *dst, uint64_t *counter,
		  atomic_uint_fast64_t *server_counter)
{
	size_t n = relay_move(src, dst);
	if (n > 0) {
		*counter += n;
		atomic_fetch_add_explicit(server_counter, n, memory_order_relaxed);
		timer_arm(s, s->backend->cfg->timeouts.idle_ms);
	}
}

static void relay_start(struct tcp_session *s)
{
	health_note_success(current_server(s)->state);
	s->state = TCP_RELAYING;
	timer_arm(s, s->backend->cfg->timeouts.idle_ms);
}

/* One pass of the state machine; false when it must wait for an event. */
static bool tcp_step(struct tcp_session *s)
{
	switch (s->state) {
	case TCP_PROXY_HEADER: {
		/* The client is the one the front balancer names; a connection
		 * without a valid header within timeouts.header is closed. */
		int rc = session_take_proxy_header(s->client, &s->peer);
		if (rc == 0 && !s->timer_fired)
			return false;
		s->timer_fired = false;
		if (rc <= 0 || !connect_next_server(s)) {
			s->state = TCP_CLOSING;
			return true;
		}
		s->state = TCP_CONNECTING;
		return true;
	}
	case TCP_CONNECTING:
		if (s->client->error || (s->client->eof && evbuffer_get_length(s->client->in) == 0)) {
			s->state = TCP_CLOSING; /* gone before we reached a server */
			return true;
		}
		if (s->timer_fired || s->server->error) {
			note_connect_failure(s, s->timer_fired ? 0 : s->server->error_code);
			s->timer_fired = false;
			if (!connect_next_server(s)) {
				log_debug("listener %s: no server for a tcp connection", s->listener->cfg->name);
				s->state = TCP_CLOSING;
			}
			return true;
		}
		if (!s->server->connected)
			return false;
		relay_start(s);
		return true;
	case TCP_RELAYING:
		if (s->client->error || s->server->error || s->timer_fired) {
			s->state = TCP_CLOSING;
			return true;
		}
		relay(s, s->client, s->server, &s->bytes_from_client, &current_server(s)->state->bytes_out);
		relay(s, s->server, s->client, &s->bytes_from_server, &current_server(s)->state->bytes_in);
		conn_flush(s->server);
		conn_flush(s->client);
		bool upstream_done = relay_pass_half_close(s->client, s->server);
		bool downstream_done = relay_pass_half_close(s->server, s->client);
		if (upstream_done && downstream_done) {
			s->state = TCP_CLOSING;
			return true;
		}
		return false;
	case TCP_CLOSING:
		tcp_session_free(s);
		return false;
	}
	return false;
}

static void tcp_drive(struct tcp_session *s)
{
	while (tcp_step(s))
		;
}

int tcp_session_start(struct worker *w, const struct gen_listener *l, int fd, const struct sockaddr_storage *peer,
		      socklen_t peer_len)
{
	struct tcp_session *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		return -1;
	}
	s->link.destroy = tcp_session_destroy;
	s->worker = w;
	s->gen = gen_acquire(w->gen);
	s->listener = l;
	s->backend = l->backend;
	s->server_index = -1;
	s->state = TCP_CONNECTING;
	memcpy(&s->peer, peer, peer_len);
	worker_session_add(w, &s->link);
	/* The client is read while connecting, to notice if it leaves; its
	 * bytes wait in its input, bounded by the conn's read limit. */
	s->client = conn_open(w->base, fd, on_conn_event, s);
	int timer_ok = deadline_init(&s->deadline, w->base, on_deadline, s);
	if (s->client == NULL || timer_ok < 0) {
		if (s->client == NULL)
			close(fd);
		tcp_session_free(s);
		return 0; /* the count was already dropped by the free */
	}
	s->started = now_cached(s);
	if (l->cfg->proxy_protocol) {
		s->state = TCP_PROXY_HEADER;
		timer_arm(s, l->cfg->timeouts.header_ms);
	} else if (!connect_next_server(s)) {
		log_debug("listener %s: no server for a tcp connection", l->cfg->name);
		s->state = TCP_CLOSING;
	}
	tcp_drive(s);
	return 0;
}
