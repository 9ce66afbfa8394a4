/*
 * tcp: TCP-mode sessions.
 *
 * One visible state machine: libevent callbacks only record what happened
 * (bytes readable, EOF, error, connected, timer) and call tcp_drive, which
 * decides everything. Buffers are bounded: a side stops being read while the
 * other side's output holds RELAY_HIGH_WATER bytes or more, and resumes when
 * that output drains below RELAY_LOW_WATER.
 *
 * Timeouts: timeouts.connect bounds each connect attempt; timeouts.idle (the
 * backend's) closes a connection through which no byte moved either way for
 * that long. One timer per session serves both, re-armed lazily: activity
 * only stamps last_activity, the timer checks it when it fires.
 */
#include "tcp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "netutil.h"
#include "relay.h"

#define MAX_TRIES 16 /* retries is at most 10: config.c validates it */

enum tcp_state {
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

	struct bufferevent *client;
	struct bufferevent *server;
	int server_index; /* -1 until picked */
	int tried[MAX_TRIES];
	size_t ntried;

	/* what happened, recorded by callbacks */
	bool connected, connect_failed, timer_fired;
	bool client_eof, server_eof; /* read side finished */
	bool client_shut, server_shut; /* our write side to them shut */
	bool broken; /* reset or error: abort both sides */
	int connect_error;

	struct event *timer;
	struct timeval started, connect_started, last_activity;
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
	struct timeval tv = netutil_timeval_ms(ms);
	event_add(s->timer, &tv);
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
	if (s->server != NULL) {
		bufferevent_free(s->server);
		s->server = NULL;
	}
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
	if (s->client != NULL)
		bufferevent_free(s->client);
	if (s->timer != NULL)
		event_free(s->timer);
	worker_session_remove(s->worker, &s->link);
	gen_release(s->gen);
	free(s);
}

static void tcp_session_destroy(struct session_link *link)
{
	tcp_session_free((struct tcp_session *)link);
}

/* ---- callbacks: record, then drive ---- */

static void on_client_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	tcp_drive(arg);
}

static void on_server_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	tcp_drive(arg);
}

static void on_write_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	tcp_drive(arg);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct tcp_session *s = arg;
	(void)bev;
	if (what & BEV_EVENT_EOF)
		s->client_eof = true;
	else if (what & BEV_EVENT_ERROR)
		s->broken = true;
	tcp_drive(s);
}

static void on_server_event(struct bufferevent *bev, short what, void *arg)
{
	struct tcp_session *s = arg;
	(void)bev;
	if (s->state == TCP_CONNECTING) {
		if (what & BEV_EVENT_CONNECTED) {
			s->connected = true;
		} else {
			s->connect_failed = true;
			s->connect_error = EVUTIL_SOCKET_ERROR();
		}
	} else if (what & BEV_EVENT_EOF) {
		s->server_eof = true;
	} else if (what & BEV_EVENT_ERROR) {
		s->broken = true;
	}
	tcp_drive(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_session *s = arg;
	(void)fd;
	(void)what;
	s->timer_fired = true;
	tcp_drive(s);
}

/* ---- actions ---- */

/* Pick a server not tried yet and start connecting. false: no candidate. */
static bool connect_next_server(struct tcp_session *s)
{
	size_t key_len;
	const void *key = netutil_ip_bytes(&s->peer, &key_len);

	release_server(s);
	if (s->ntried > (size_t)s->backend->cfg->retries || s->ntried >= MAX_TRIES)
		return false;
	int i = gen_pick_server(s->backend, s->tried, s->ntried, key, key_len);
	if (i < 0)
		return false;
	struct gen_server *gs = &s->backend->servers[i];
	s->tried[s->ntried++] = i;
	s->server_index = i;
	atomic_fetch_add_explicit(&gs->state->active, 1, memory_order_relaxed);
	s->connected = s->connect_failed = false;
	s->server = bufferevent_socket_new(s->worker->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->server == NULL)
		return false;
	bufferevent_setcb(s->server, on_server_read, on_write_drained, on_server_event, s);
	relay_setup(s->server);
	s->connect_started = now_cached(s);
	timer_arm(s, s->backend->cfg->timeouts.connect_ms);
	if (bufferevent_socket_connect(s->server, (struct sockaddr *)&gs->sockaddr, (int)gs->sockaddr_len) < 0) {
		/* Failed at once (e.g. no route): treat like a refused connect. */
		s->connect_failed = true;
		s->connect_error = errno;
	}
	return true;
}

static void note_connect_failure(struct tcp_session *s, const char *why)
{
	struct gen_server *gs = current_server(s);
	health_note_failure(gs->state, s->backend->cfg, why);
	log_debug("backend %s: connect to %s failed: %s", s->backend->cfg->name, gs->state->addr, why);
}

/* Relay src's bytes to dst, counting them for the session and the server. */
static void relay(struct tcp_session *s, struct bufferevent *src, struct bufferevent *dst, uint64_t *counter,
		  atomic_uint_fast64_t *server_counter)
{
	size_t n = relay_move(src, dst);
	if (n > 0) {
		*counter += n;
		atomic_fetch_add_explicit(server_counter, n, memory_order_relaxed);
		s->last_activity = now_cached(s);
	}
}

static void relay_start(struct tcp_session *s)
{
	struct gen_server *gs = current_server(s);
	health_note_success(gs->state);
	s->state = TCP_RELAYING;
	s->last_activity = now_cached(s);
	timer_arm(s, s->backend->cfg->timeouts.idle_ms);
	bufferevent_enable(s->server, EV_READ | EV_WRITE);
	bufferevent_enable(s->client, EV_READ | EV_WRITE);
}

/* The idle timer fired: close if nothing moved for timeouts.idle. */
static bool idle_expired(struct tcp_session *s)
{
	struct timeval now = now_cached(s);
	uint64_t idle_ms = s->backend->cfg->timeouts.idle_ms;
	uint64_t quiet = netutil_elapsed_ms(&s->last_activity, &now);
	if (quiet >= idle_ms)
		return true;
	timer_arm(s, idle_ms - quiet);
	return false;
}

static void tcp_drive(struct tcp_session *s)
{
	for (;;) {
		switch (s->state) {
		case TCP_CONNECTING:
			if (s->client_eof && evbuffer_get_length(bufferevent_get_input(s->client)) == 0) {
				s->state = TCP_CLOSING; /* gave up before we reached a server */
				continue;
			}
			if (s->broken) {
				s->state = TCP_CLOSING;
				continue;
			}
			if (s->timer_fired) {
				s->timer_fired = false;
				s->connect_failed = true;
				s->connect_error = ETIMEDOUT;
			}
			if (s->connect_failed) {
				note_connect_failure(s, strerror(s->connect_error));
				if (!connect_next_server(s)) {
					log_debug("listener %s: no server for a tcp connection", s->listener->cfg->name);
					s->state = TCP_CLOSING;
				}
				continue;
			}
			if (!s->connected)
				return;
			relay_start(s);
			continue;
		case TCP_RELAYING:
			if (s->broken) {
				s->state = TCP_CLOSING;
				continue;
			}
			if (s->timer_fired) {
				s->timer_fired = false;
				if (idle_expired(s)) {
					s->state = TCP_CLOSING;
					continue;
				}
			}
			relay(s, s->client, s->server, &s->bytes_from_client, &current_server(s)->state->bytes_out);
			relay(s, s->server, s->client, &s->bytes_from_server, &current_server(s)->state->bytes_in);
			relay_pass_half_close(s->client_eof, s->server, &s->server_shut);
			relay_pass_half_close(s->server_eof, s->client, &s->client_shut);
			if (s->client_shut && s->server_shut) {
				s->state = TCP_CLOSING;
				continue;
			}
			return;
		case TCP_CLOSING:
			tcp_session_free(s);
			return;
		}
	}
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
	s->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(w->base, on_timer, s);
	if (s->client == NULL || s->timer == NULL) {
		if (s->client == NULL)
			close(fd);
		tcp_session_free(s);
		return 0; /* the count was already dropped by the free */
	}
	s->started = now_cached(s);
	bufferevent_setcb(s->client, on_client_read, on_write_drained, on_client_event, s);
	/* Keep reading the client while connecting, to notice if it leaves;
	 * its bytes wait in the input buffer, bounded by the high water. */
	relay_setup(s->client);
	bufferevent_enable(s->client, EV_READ);
	if (!connect_next_server(s)) {
		log_debug("listener %s: no server for a tcp connection", l->cfg->name);
		s->state = TCP_CLOSING;
	}
	tcp_drive(s);
	return 0;
}
