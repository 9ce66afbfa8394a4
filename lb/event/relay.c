/* relay: see relay.h. */
#include "relay.h"

#include <errno.h>

#include <event2/buffer.h>

#include "conn.h"

void relay_backpressure(struct conn *src, struct conn *dst)
{
	/* What the kernel takes now is not queued: measured after a write,
	 * a burst that it took whole cannot leave src paused with nothing
	 * left to call the owner back (no write event would ever come). */
	conn_flush(dst);
	size_t queued = conn_unsent(dst);
	bool want = src->want_read;
	if (queued >= RELAY_HIGH_WATER)
		want = false;
	else if (queued < RELAY_LOW_WATER)
		want = true;
	if (want != src->want_read) {
		src->want_read = want;
		conn_sync(src);
	}
}

size_t relay_move(struct conn *src, struct conn *dst)
{
	size_t n = conn_input_length(src);
	if (n > 0) {
		if (!conn_buffers_ensure(dst)) { /* dst gave its buffers back while idle */
			dst->error = true;
			dst->error_code = ENOMEM;
			return 0;
		}
		evbuffer_add_buffer(dst->out, src->in);
		conn_sync(src); /* its input was full, perhaps */
	}
	relay_backpressure(src, dst);
	return n;
}

bool relay_pass_half_close(const struct conn *src, struct conn *dst)
{
	if (src->eof && conn_input_length(src) == 0)
		conn_shutdown_write(dst);
	return dst->write_shut;
}
