/* session: what every proxied client connection has. See session.h. */
#include "session.h"

#include <event2/buffer.h>
#include <string.h>
#include <unistd.h>

#include "proxy_proto.h"
#include "tls_conn.h"

void session_on_event(struct conn *c, void *arg)
{
	struct session *s = arg;
	(void)c;
	s->drive(s);
}

static void on_deadline(void *arg)
{
	struct session *s = arg;
	s->timer_fired = true;
	s->drive(s);
}

int session_open(struct session *s, struct worker *w, const struct gen_listener *l, int fd,
		 const struct sockaddr_storage *client_addr, socklen_t client_addr_len, void (*drive)(struct session *s),
		 void (*destroy)(struct session_link *link), void (*stop)(struct session_link *link, enum session_stop why))
{
	s->link.destroy = destroy;
	s->link.stop = stop;
	s->worker = w;
	s->gen = gen_acquire(w->gen);
	s->listener = l;
	s->backend = l->backend;
	s->drive = drive;
	peer_init(&s->server);
	if (client_addr_len <= sizeof(s->client_addr))
		memcpy(&s->client_addr, client_addr, client_addr_len);
	else
		netutil_sockaddr_ip(&s->client_addr, client_addr);
	worker_session_add(w, &s->link);
	if (conn_open_at(&s->client_conn, w->base, fd, session_on_event, s) != 0) {
		close(fd);
		return -1;
	}
	s->client = &s->client_conn;
	return deadline_init(&s->deadline, w->base, on_deadline, s);
}

int session_open_virtual(struct session *s, struct worker *w, struct gen *g, const struct gen_listener *l,
			 const struct session *parent, const struct conn_transport *transport, void *state,
			 void (*drive)(struct session *s), void (*destroy)(struct session_link *link),
			 void (*stop)(struct session_link *link, enum session_stop why))
{
	s->link.destroy = destroy;
	s->link.stop = stop;
	s->link.uncounted = true;
	s->worker = w;
	s->gen = gen_acquire(g);
	s->listener = l;
	s->backend = l->backend;
	s->drive = drive;
	peer_init(&s->server);
	s->client_addr = parent->client_addr;
	s->proxied_to = parent->proxied_to;
	if (s->proxied_to.sa.sa_family == AF_UNSPEC) {
		/* send_proxy names the address the client connected to: the
		 * connection's, as it would for a request of its own. */
		struct sockaddr_storage local;
		socklen_t len = sizeof(local);
		if (getsockname(parent->client->fd, (struct sockaddr *)&local, &len) == 0 && len <= sizeof(s->proxied_to))
			memcpy(&s->proxied_to, &local, len);
	}
	worker_session_add(w, &s->link);
	if (conn_open_virtual(&s->client_conn, w->base, transport, state, session_on_event, s) != 0)
		return -1;
	s->client = &s->client_conn;
	return deadline_init(&s->deadline, w->base, on_deadline, s);
}

void session_close(struct session *s)
{
	if (s->server.conn != NULL || s->server.index >= 0)
		peer_release(&s->server, s->backend, s->worker, PEER_ABORT, false);
	conn_free(s->client);
	deadline_free(&s->deadline);
	worker_session_remove(s->worker, &s->link);
	gen_release(s->gen);
}

int session_take_proxy_header(struct session *s)
{
	struct conn *c = s->client;
	size_t len = evbuffer_get_length(c->in);
	if (len > PROXY_MAX_LENGTH)
		len = PROXY_MAX_LENGTH;
	struct proxy_header header = { 0 };
	switch (proxy_parse(evbuffer_pullup(c->in, (ev_ssize_t)len), len, &header)) {
	case PROXY_INCOMPLETE:
		return c->eof || c->error ? -1 : 0;
	case PROXY_INVALID:
		return -1;
	case PROXY_OK:
		break;
	}
	evbuffer_drain(c->in, header.length);
	if (!header.local) {
		netutil_sockaddr_ip(&s->client_addr, &header.source);
		netutil_sockaddr_ip(&s->proxied_to, &header.destination);
	}
	return 1;
}

int session_start_tls(struct session *s, const char *plain_http_answer)
{
	const struct gen_listener *l = s->listener;
	if (tls_conn_accept(s->client, tls_server_ctx(l->tls), &l->state->tls, plain_http_answer, l->cfg->tls.ktls) < 0)
		return -1;
	conn_sync(s->client); /* bytes read in plain so far: decrypted from the loop */
	return 0;
}

bool session_handshaking(const struct session *s)
{
	return !tls_conn_established(s->client);
}
