/* relay: see relay.h. */
#include "relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

void relay_setup(struct bufferevent *bev)
{
	bufferevent_setwatermark(bev, EV_WRITE, RELAY_LOW_WATER, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, RELAY_HIGH_WATER);
}

void relay_backpressure(struct bufferevent *src, struct bufferevent *dst)
{
	size_t queued = evbuffer_get_length(bufferevent_get_output(dst));
	if (queued >= RELAY_HIGH_WATER)
		bufferevent_disable(src, EV_READ);
	else if (queued < RELAY_LOW_WATER)
		bufferevent_enable(src, EV_READ);
}

size_t relay_move(struct bufferevent *src, struct bufferevent *dst)
{
	struct evbuffer *in = bufferevent_get_input(src);
	size_t n = evbuffer_get_length(in);
	if (n > 0)
		evbuffer_add_buffer(bufferevent_get_output(dst), in);
	relay_backpressure(src, dst);
	return n;
}

void relay_pass_half_close(bool src_eof, struct bufferevent *dst, bool *dst_shut)
{
	if (src_eof && !*dst_shut && evbuffer_get_length(bufferevent_get_output(dst)) == 0) {
		shutdown(bufferevent_getfd(dst), SHUT_WR);
		*dst_shut = true;
	}
}
