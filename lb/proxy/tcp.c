/*
 * tcp: TCP-mode sessions.
 *
 * One visible state machine: the conn and timer callbacks only note what
 * happened and call tcp_drive, which decides everything from the conns'
 * flags (eof, error, connected) and buffers. Buffers are bounded (relay.h).
 *
 * A connection that finds every candidate server at its limit waits for a
 * slot in the backend's queue (queue.h), for at most timeouts.queue; a full
 * queue, or the wait running out, closes it.
 *
 * Timeouts: timeouts.connect bounds each connect attempt; timeouts.idle (the
 * backend's) closes a connection through which no byte moved either way for
 * that long: every byte relayed moves the deadline (deadline.h makes that
 * cheap).
 */
#include "tcp.h"

#include <errno.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "netutil.h"
#include "overload.h"
#include "relay.h"
#include "session.h"
#include "slab.h"
#include "tls_conn.h"


enum tcp_state {
	TCP_PROXY_HEADER, /* proxy_protocol: waiting for the PROXY header */
	TCP_HANDSHAKE, /* a TLS listener: waiting for the client's handshake */
	TCP_QUEUED, /* every candidate server is at its limit: waiting for a slot */
	TCP_CONNECTING, /* waiting for a server connect to complete */
	TCP_RELAYING, /* bytes flow; half-closes are passed on */
	TCP_CLOSING, /* done: free everything */
};

struct tcp_session {
	struct session session; /* first: what every session has (session.h) */
	enum tcp_state state;
	struct timeval started;
	struct timeval connect_started; /* max_connections: auto samples the connect time */
	uint64_t bytes_from_client, bytes_from_server;
};

static void tcp_drive(struct session *session);

static void access_log_line(const struct tcp_session *s)
{
	if (!log_access_enabled())
		return;
	const struct session *ss = &s->session;
	char ip[64];
	struct timeval now = session_now(ss);
	const struct gen_server *gs = peer_server(&ss->server, ss->backend);
	netutil_format_ip(&ss->client_addr, ip, sizeof(ip));
	log_access("%s %s %s %s tcp - - - %llu %llu %llums", ip, ss->listener->cfg->name, ss->backend->cfg->name,
		   gs ? gs->state->addr : "-", (unsigned long long)s->bytes_from_client,
		   (unsigned long long)s->bytes_from_server,
		   (unsigned long long)netutil_elapsed_ms(&s->started, &now));
}

static void tcp_session_free(struct tcp_session *s)
{
	access_log_line(s);
	peer_release(&s->session.server, s->session.backend, s->session.worker, PEER_CLOSE, false);
	session_close(&s->session);
	slab_free(s);
}

static void tcp_session_destroy(struct session_link *link)
{
	tcp_session_free((struct tcp_session *)link);
}

/* Connect to the server whose slot the session holds: TCP_CONNECTING, or
 * TCP_CLOSING without a socket. */
static enum tcp_state connect_to_slot(struct tcp_session *s)
{
	struct session *ss = &s->session;
	struct peer_client client = { &ss->client_addr, ss->proxied_to.sa.sa_family != AF_UNSPEC ? &ss->proxied_to.sa : NULL,
				      ss->client };
	if (peer_attach(&ss->server, ss->backend, ss->worker, false, &client, session_on_event, ss) == PEER_NO_SOCKET)
		return TCP_CLOSING;
	s->connect_started = session_now(ss);
	session_timer_arm(ss, ss->backend->cfg->timeouts.connect_ms);
	return TCP_CONNECTING;
}

static void on_slot(struct peer *p)
{
	tcp_drive((struct session *)((char *)p - offsetof(struct session, server)));
}

/* Pick a server not tried yet and start connecting (TCP_CONNECTING), or
 * wait for a slot (TCP_QUEUED); TCP_CLOSING when there is no candidate. */
static enum tcp_state connect_next_server(struct tcp_session *s)
{
	struct session *ss = &s->session;
	size_t key_len;
	const void *key = netutil_ip_bytes(&ss->client_addr, &key_len);

	peer_release(&ss->server, ss->backend, ss->worker, PEER_CLOSE, false);
	int i = peer_pick(&ss->server, ss->backend, ss->worker, key, key_len);
	if (i == PEER_PICK_FULL) {
		if (!peer_wait(&ss->server, ss->backend, ss->worker, on_slot))
			return TCP_CLOSING; /* the queue is full (or off) */
		session_timer_arm(ss, ss->backend->cfg->timeouts.queue_ms);
		return TCP_QUEUED;
	}
	if (i < 0)
		return TCP_CLOSING;
	return connect_to_slot(s);
}

/* err: the connect's errno, 0 for a timeout. */
static void note_connect_failure(struct tcp_session *s, int err)
{
	struct session *ss = &s->session;
	peer_note_connect_failure(&ss->server, ss->backend, err);
	log_debug("backend %s: connect to %s failed: %s", ss->backend->cfg->name,
		  peer_server(&ss->server, ss->backend)->state->addr, err ? strerror(err) : "timeout");
}

/* Relay src's bytes to dst, counting them for the session and the server. */
static void relay(struct tcp_session *s, struct conn *src, struct conn *dst, uint64_t *counter, bool to_server)
{
	struct session *ss = &s->session;
	size_t n = relay_move(src, dst);
	if (n > 0) {
		*counter += n;
		peer_count_bytes(&ss->server, ss->backend, to_server ? n : 0, to_server ? 0 : n);
		session_timer_arm(ss, ss->backend->cfg->timeouts.idle_ms);
	}
}

static void relay_start(struct tcp_session *s)
{
	struct session *ss = &s->session;
	int i = ss->server.index;
	if (i >= 0 && ss->backend->servers[i].cfg->max_connections == CFG_LIMIT_AUTO) {
		struct timeval now = session_now(ss);
		int64_t us = ((int64_t)now.tv_sec - s->connect_started.tv_sec) * 1000000 +
			     (now.tv_usec - s->connect_started.tv_usec);
		overload_sample(ss->backend, (size_t)i, us > 0 ? (uint64_t)us : 0);
	}
	peer_note_success(&s->session.server, s->session.backend);
	s->state = TCP_RELAYING;
	session_timer_arm(&s->session, s->session.backend->cfg->timeouts.idle_ms);
}

/* One pass of the state machine; false when it must wait for an event. */
static bool tcp_step(struct tcp_session *s)
{
	struct session *ss = &s->session;
	struct conn *client = ss->client, *server = ss->server.conn;

	switch (s->state) {
	case TCP_PROXY_HEADER: {
		/* The client is the one the front balancer names; a connection
		 * without a valid header within timeouts.header is closed. */
		int rc = session_take_proxy_header(ss);
		if (rc == 0 && !ss->timer_fired)
			return false;
		ss->timer_fired = false;
		if (rc <= 0) {
			s->state = TCP_CLOSING;
			return true;
		}
		if (ss->listener->tls != NULL) {
			s->state = session_start_tls(ss, NULL) == 0 ? TCP_HANDSHAKE : TCP_CLOSING;
			return true;
		}
		s->state = connect_next_server(s);
		return true;
	}
	case TCP_HANDSHAKE:
		/* The server is chosen once the client is known to speak TLS
		 * (within timeouts.header, as a PROXY header). */
		if (!client->error && !session_handshaking(ss)) {
			ss->timer_fired = false; /* what came with the handshake (even an EOF) is relayed */
			s->state = connect_next_server(s);
			return true;
		}
		if (client->error || client->eof || ss->timer_fired) {
			if (ss->timer_fired)
				tls_conn_note_timeout(client);
			s->state = TCP_CLOSING;
			return true;
		}
		return false;
	case TCP_QUEUED:
		if (!peer_waiting(&ss->server) && ss->server.index >= 0) {
			s->state = connect_to_slot(s);
			return true;
		}
		if (client->error || (client->eof && evbuffer_get_length(client->in) == 0)) {
			s->state = TCP_CLOSING; /* gone while waiting: its place goes with it */
			return true;
		}
		if (!ss->timer_fired)
			return false;
		ss->timer_fired = false;
		if (peer_wait_timed_out(&ss->server)) {
			s->state = connect_to_slot(s); /* a slot came just in time */
			return true;
		}
		log_debug("listener %s: no slot within timeouts.queue", ss->listener->cfg->name);
		s->state = TCP_CLOSING;
		return true;
	case TCP_CONNECTING:
		/* A FIN now is a half-close like any other (SPEC 8): the relay
		 * passes it on, and the server's answer still reaches the client
		 * (a client that had closed for good resets the connection then). */
		if (client->error) {
			s->state = TCP_CLOSING; /* gone before we reached a server */
			return true;
		}
		if (ss->timer_fired || server->error) {
			note_connect_failure(s, ss->timer_fired ? 0 : server->error_code);
			ss->timer_fired = false;
			s->state = connect_next_server(s);
			if (s->state == TCP_CLOSING)
				log_debug("listener %s: no server for a tcp connection", ss->listener->cfg->name);
			return true;
		}
		if (!server->connected)
			return false;
		relay_start(s);
		return true;
	case TCP_RELAYING:
		if (client->error || server->error || ss->timer_fired) {
			s->state = TCP_CLOSING;
			return true;
		}
		relay(s, client, server, &s->bytes_from_client, true);
		relay(s, server, client, &s->bytes_from_server, false);
		if (client->error || server->error) { /* no memory for buffers taken back (relay_move) */
			s->state = TCP_CLOSING;
			return true;
		}
		conn_flush(server);
		conn_flush(client);
		bool upstream_done = relay_pass_half_close(client, server);
		bool downstream_done = relay_pass_half_close(server, client);
		if (upstream_done && downstream_done) {
			s->state = TCP_CLOSING;
			return true;
		}
		/* Nothing in flight either way: an idle tunnel holds no buffers
		 * (each side takes them back with its next byte). */
		conn_buffers_release(client);
		conn_buffers_release(server);
		return false;
	case TCP_CLOSING:
		tcp_session_free(s);
		return false;
	}
	return false;
}

static void tcp_drive(struct session *session)
{
	struct tcp_session *s = (struct tcp_session *)session;
	while (tcp_step(s))
		;
}

void tcp_worker_tick(struct worker *w)
{
	if (w->tcp_sessions != NULL)
		slab_trim(w->tcp_sessions);
}

void tcp_worker_exit(struct worker *w)
{
	slab_destroy(w->tcp_sessions);
	w->tcp_sessions = NULL;
}

int tcp_session_start(struct worker *w, const struct gen_listener *l, int fd, const struct sockaddr_storage *peer,
		      socklen_t peer_len)
{
	if (w->tcp_sessions == NULL)
		w->tcp_sessions = slab_create(sizeof(struct tcp_session), 64 * 1024);
	struct tcp_session *s = w->tcp_sessions != NULL ? slab_alloc(w->tcp_sessions) : NULL;
	if (s == NULL) {
		close(fd);
		return -1;
	}
	memset(s, 0, sizeof(*s));
	s->state = TCP_CONNECTING;
	event_base_gettimeofday_cached(w->base, &s->started); /* the access log's, even on failure */
	/* The client is read while connecting, to notice if it leaves; its
	 * bytes wait in its input, bounded by the conn's read limit. */
	if (session_open(&s->session, w, l, fd, peer, peer_len, tcp_drive, tcp_session_destroy, NULL) < 0) {
		tcp_session_free(s);
		return 0; /* the count was already dropped by the free */
	}
	if (l->cfg->proxy_protocol) {
		s->state = TCP_PROXY_HEADER;
		session_timer_arm(&s->session, l->cfg->timeouts.header_ms);
	} else if (l->tls != NULL) {
		s->state = session_start_tls(&s->session, NULL) == 0 ? TCP_HANDSHAKE : TCP_CLOSING;
		session_timer_arm(&s->session, l->cfg->timeouts.header_ms);
	} else if ((s->state = connect_next_server(s)) == TCP_CLOSING) {
		log_debug("listener %s: no server for a tcp connection", l->cfg->name);
	}
	tcp_drive(&s->session);
	return 0;
}
