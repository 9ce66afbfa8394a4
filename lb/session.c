/* session: what the HTTP and TCP sessions share. See session.h. */
#include "session.h"

#include <event2/buffer.h>

#include "conn.h"
#include "proxy_proto.h"

int session_take_proxy_header(struct conn *c, struct sockaddr_storage *peer)
{
	size_t len = evbuffer_get_length(c->in);
	if (len > PROXY_MAX_LENGTH)
		len = PROXY_MAX_LENGTH;
	struct proxy_header header;
	switch (proxy_parse(evbuffer_pullup(c->in, (ev_ssize_t)len), len, &header)) {
	case PROXY_INCOMPLETE:
		return c->eof || c->error ? -1 : 0;
	case PROXY_INVALID:
		return -1;
	case PROXY_OK:
		break;
	}
	evbuffer_drain(c->in, header.length);
	if (!header.local)
		*peer = header.source;
	return 1;
}
