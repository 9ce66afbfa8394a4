/* h2: HTTP/2 client connections, every stream an HTTP/1.1 session. See h2.h. */
#include "h2.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "gen.h"
#include "http_msg.h"
#include "log.h"
#include "relay.h"
#include "worker.h"

#define H2_MAX_STREAMS 100
#define H2_STREAM_WINDOW (64 * 1024)
#define H2_CONN_WINDOW (1024 * 1024)
#define H2_STREAM_BUFFER (64 * 1024) /* response bytes taken from http.c ahead of the client's window */
#define H2_CONN_BUFFER (1024 * 1024) /* the same for all the streams of a connection, ... */
#define H2_STREAM_FLOOR (16 * 1024) /* ... beyond what each may hold whatever the others do */
#define H2_CLIENT_OUT_MAX (64 * 1024) /* frames queued for the client before nghttp2 is asked for more */
#define H2_NEW_STREAMS_PER_READ (2 * H2_MAX_STREAMS) /* nginx's bound on streams opened per read event */
#define H2_CONTINUATIONS_MAX 8 /* per header block, as nghttp2 1.61 (CVE-2024-28182) */
#define H2_STREAMS_PER_CONN 1000000 /* then GOAWAY: the client opens another connection (a bound on any one connection's life) */
#define H2_GLITCH_BURST 200 /* stream errors a client causes, at once (MadeYouReset), ... */
#define H2_GLITCHES_PER_S 33 /* ... and then per second, as nghttp2 1.61 bounds resets */
#define H2_FLOOD_SLACK (1024 * 1024) /* nginx's heuristic: bytes read / 8 > payload + this = a flood */

struct h2_field {
	uint32_t name, name_len, value, value_len; /* offsets into the stream's header text */
};

/* The connection's list of its streams (a head of its own, not a whole
 * stream struct). */
struct stream_link {
	struct stream_link *prev, *next;
};

/* One stream: held by nghttp2 (until on_stream_close) and by its virtual
 * conn (until the transport's close); freed when both let go. */
struct h2_stream {
	struct stream_link link; /* first: the connection's list */
	struct h2_conn *h2; /* NULL once the connection is gone */
	int32_t id;
	bool held_by_nghttp2, held_by_conn;
	struct conn *conn; /* the virtual conn, while held_by_conn */

	/* the request */
	char *text; /* pseudo-headers and fields as received */
	size_t text_len, text_cap;
	struct h2_field *fields; /* grown as they come: max_header_size bounds them (on_header) */
	size_t nfields, fields_cap;
	int method, scheme, authority, path; /* index into fields, -1 = absent */
	bool head_request;
	bool chunked; /* the body goes out chunked (no content-length) */
	bool in_trailers; /* HEADERS after the request's head: trailers */
	bool req_end; /* the client ended the stream */
	bool req_started; /* the http.c session runs */
	struct evbuffer *req; /* HTTP/1.1 bytes for http.c */
	size_t unconsumed; /* DATA payload bytes given to req, not yet acknowledged to the stream */

	/* the response */
	struct evbuffer *resp; /* payload for DATA frames */
	char *head; /* response head bytes gathered (rarely split) */
	size_t scan_pos;
	bool head_sent, resp_done, resp_failed, deferred;
	bool wants_room; /* response bytes wait in http.c for the connection's buffer */
	struct http_body body;
	char *trailers; /* the chunked trailer section as received */
	size_t trailers_len;
	bool closed; /* nghttp2 closed it (reset, or both sides done) */
	bool reset_when_sent; /* answered early: RST_STREAM NO_ERROR once its END_STREAM is out */
	bool zombie; /* closed unfinished while its http.c session still runs */
};

struct h2_conn {
	nghttp2_session *session;
	struct conn *client;
	h2_stream_start_fn *start;
	void *owner;
	struct event *flush_event; /* mem_send from outside a drive (a stream had news) */
	struct stream_link streams; /* of struct h2_stream */
	size_t open_streams; /* open for nghttp2 */
	size_t zombies; /* reset streams whose http.c session has not ended yet: they count as open */
	size_t running; /* streams whose http.c session runs (a header block still coming is none) */
	unsigned new_streams; /* opened during this read */
	uint64_t streams_taken;
	size_t max_header_size; /* the listener's: decoded fields of one stream, at most */
	double glitch_budget; /* a token bucket: H2_GLITCH_BURST, refilled at H2_GLITCHES_PER_S */
	uint64_t glitch_ms; /* clock_ms() of its last refill */
	unsigned continuations; /* in the header block being received */
	uint64_t bytes_read, payload; /* payload: DATA and header bytes, and 1/16 of DATA sent */
	size_t buffered; /* response bytes of all streams waiting for the client (at most ~H2_CONN_BUFFER) */
	bool shutting_down;
	bool failed; /* a protocol error: GOAWAY sent, closing */
};

static const struct conn_transport stream_transport;

bool h2_preface_prefix(const char *buf, size_t len)
{
	size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
	return memcmp(buf, H2_PREFACE, n) == 0;
}

/* ---- streams ---- */

static void buffered_sub(struct h2_conn *h, size_t n);
static void glitch(struct h2_conn *h);

static void stream_maybe_free(struct h2_stream *st)
{
	if (st->held_by_nghttp2 || st->held_by_conn)
		return;
	if (st->link.prev != NULL) {
		st->link.prev->next = st->link.next;
		st->link.next->prev = st->link.prev;
	}
	if (st->h2 != NULL && st->resp != NULL)
		buffered_sub(st->h2, evbuffer_get_length(st->resp));
	if (st->req != NULL)
		evbuffer_free(st->req);
	if (st->resp != NULL)
		evbuffer_free(st->resp);
	free(st->text);
	free(st->fields);
	free(st->head);
	free(st->trailers);
	free(st);
}

static void stream_wake(struct h2_stream *st);

/* n response bytes left h->buffered (sent, or their stream is gone):
 * whoever waited for room gets it. */
static void buffered_sub(struct h2_conn *h, size_t n)
{
	size_t was = h->buffered;
	h->buffered -= n;
	if (was >= H2_CONN_BUFFER && h->buffered < H2_CONN_BUFFER)
		for (struct stream_link *l = h->streams.next; l != &h->streams; l = l->next) {
			struct h2_stream *s = (struct h2_stream *)l;
			if (s->wants_room) {
				s->wants_room = false;
				stream_wake(s);
			}
		}
}

static void flush_soon(struct h2_conn *h)
{
	if (h != NULL && h->flush_event != NULL)
		event_active(h->flush_event, EV_WRITE, 0);
}

/* The stream's http.c session has news. */
static void stream_wake(struct h2_stream *st)
{
	if (st->held_by_conn && st->conn != NULL)
		conn_wake(st->conn);
}

static int text_append(struct h2_stream *st, const uint8_t *p, size_t n, uint32_t *off)
{
	if (st->text_len + n + 1 > st->text_cap) {
		size_t cap = st->text_cap ? st->text_cap * 2 : 1024;
		while (cap < st->text_len + n + 1)
			cap *= 2;
		char *text = realloc(st->text, cap);
		if (text == NULL)
			return -1;
		st->text = text;
		st->text_cap = cap;
	}
	*off = (uint32_t)st->text_len;
	memcpy(st->text + st->text_len, p, n);
	st->text_len += n;
	return 0;
}

static bool field_is(const struct h2_stream *st, const struct h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name_len == n && memcmp(st->text + f->name, name, n) == 0;
}

static void put(struct evbuffer *b, const struct h2_stream *st, uint32_t off, uint32_t len)
{
	evbuffer_add(b, st->text + off, len);
}

/* The request head in HTTP/1.1 (h2.h). -1 when it cannot be one. */
static int stream_request_head(struct h2_stream *st)
{
	if (st->method < 0 || st->path < 0 || st->scheme < 0)
		return -1; /* RFC 9113 8.3.1 (nghttp2 checks it too) */
	const struct h2_field *m = &st->fields[st->method], *p = &st->fields[st->path];
	const struct h2_field *scheme = &st->fields[st->scheme];
	bool web = (scheme->value_len == 4 && memcmp(st->text + scheme->value, "http", 4) == 0) ||
		   (scheme->value_len == 5 && memcmp(st->text + scheme->value, "https", 5) == 0);
	bool asterisk = p->value_len == 1 && st->text[p->value] == '*' && m->value_len == 7 &&
			memcmp(st->text + m->value, "OPTIONS", 7) == 0;
	if (!web || p->value_len == 0 || (st->text[p->value] != '/' && !asterisk))
		return -1; /* an origin-form path of http(s) only: never an absolute URI to pass on */
	struct evbuffer *b = st->req;
	bool has_length = false, has_host = false, has_cookie = false;
	put(b, st, m->value, m->value_len);
	evbuffer_add(b, " ", 1);
	put(b, st, p->value, p->value_len);
	evbuffer_add(b, " HTTP/1.1\r\n", 11);
	if (st->authority >= 0) {
		evbuffer_add(b, "Host: ", 6);
		put(b, st, st->fields[st->authority].value, st->fields[st->authority].value_len);
		evbuffer_add(b, "\r\n", 2);
		has_host = true;
	}
	for (size_t i = 0; i < st->nfields; i++) {
		const struct h2_field *f = &st->fields[i];
		if (f->name_len > 0 && st->text[f->name] == ':')
			continue;
		if (field_is(st, f, "host")) {
			if (has_host)
				continue; /* :authority wins (RFC 9113 8.3.1) */
			has_host = true;
		}
		if (field_is(st, f, "cookie")) {
			has_cookie = true;
			continue; /* joined below */
		}
		if (field_is(st, f, "content-length"))
			has_length = true;
		put(b, st, f->name, f->name_len);
		evbuffer_add(b, ": ", 2);
		put(b, st, f->value, f->value_len);
		evbuffer_add(b, "\r\n", 2);
	}
	if (has_cookie) { /* RFC 9113 8.2.3: one field, crumbs joined with "; " */
		bool first = true;
		evbuffer_add(b, "Cookie: ", 8);
		for (size_t i = 0; i < st->nfields; i++) {
			if (!field_is(st, &st->fields[i], "cookie"))
				continue;
			if (!first)
				evbuffer_add(b, "; ", 2);
			put(b, st, st->fields[i].value, st->fields[i].value_len);
			first = false;
		}
		evbuffer_add(b, "\r\n", 2);
	}
	if (!has_host)
		return -1;
	st->chunked = !st->req_end && !has_length;
	if (st->chunked)
		evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
	evbuffer_add(b, "\r\n", 2);
	return 0;
}

/* The client ended the request: the last chunk (with trailers) if chunked. */
static void stream_request_end(struct h2_stream *st)
{
	if (st->req_end)
		return;
	st->req_end = true;
	if (!st->chunked)
		return;
	evbuffer_add(st->req, "0\r\n", 3);
	for (size_t i = 0; st->in_trailers && i < st->nfields; i++) {
		const struct h2_field *f = &st->fields[i];
		if (f->name_len > 0 && st->text[f->name] == ':')
			continue;
		put(st->req, st, f->name, f->name_len);
		evbuffer_add(st->req, ": ", 2);
		put(st->req, st, f->value, f->value_len);
		evbuffer_add(st->req, "\r\n", 2);
	}
	evbuffer_add(st->req, "\r\n", 2);
}

/* ---- the stream as a connection, for http.c (the transport) ---- */

/* Reset by the client, or its connection gone. */
static bool stream_cut(const struct h2_stream *st)
{
	return st->closed || st->h2 == NULL;
}

static void stream_receive(struct conn *c)
{
	struct h2_stream *st = c->transport_state;
	st->conn = c; /* the session's conn: known from its first read */
	size_t have = evbuffer_get_length(c->in);
	size_t room = c->read_limit > have ? c->read_limit - have : 0;
	size_t n = evbuffer_remove_buffer(st->req, c->in, room);
	(void)n;
	/* DATA taken: the client may send as much again (h2.h). */
	size_t left = evbuffer_get_length(st->req);
	if (st->unconsumed > left && st->h2 != NULL) {
		size_t done = st->unconsumed - left;
		st->unconsumed = left;
		if (!st->closed) {
			nghttp2_session_consume_stream(st->h2->session, st->id, done);
			flush_soon(st->h2);
		}
	}
	if (left == 0 && st->req_end)
		c->eof = true;
	if (stream_cut(st) && !c->error && !(c->eof && st->resp_done)) {
		/* Reset, or the connection is gone: nothing more will come. A
		 * stream whose response went out whole just ends; any other is
		 * an error, also after its request ended (http.c then aborts
		 * the server request, or leaves the queue). */
		if (st->resp_done) {
			c->eof = true;
		} else {
			c->error = true;
			c->error_code = ECONNRESET;
		}
	}
}

static void submit_rst(struct h2_stream *st, uint32_t code)
{
	if (st->h2 == NULL || st->closed)
		return;
	nghttp2_submit_rst_stream(st->h2->session, NGHTTP2_FLAG_NONE, st->id, code);
	flush_soon(st->h2);
}

static bool stream_submit_trailers(struct h2_stream *st);

static ssize_t on_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
			    uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
	struct h2_stream *st = source->ptr;
	struct h2_conn *h = user_data;
	(void)session;
	(void)stream_id;
	size_t before = evbuffer_get_length(st->resp);
	int n = evbuffer_remove(st->resp, buf, length);
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	buffered_sub(h, (size_t)n);
	size_t after = before - (size_t)n;
	if ((before >= H2_STREAM_BUFFER && after < H2_STREAM_BUFFER) || (after == 0 && n > 0))
		stream_wake(st); /* room again, or all of it out: http.c may write more, or finish */
	if (evbuffer_get_length(st->resp) == 0 && st->resp_done) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->trailers_len > 0) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* the trailers end it */
			if (!stream_submit_trailers(st))
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* nothing would end it: reset */
		}
		stream_wake(st); /* all sent: http.c may finish */
	} else if (n == 0) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return n;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
}

/* Fields of an HTTP/1.1 head (or trailer section) as HTTP/2 ones: names in
 * lower case (into names), hop-by-hop ones left out. Returns the count. */
static size_t h1_fields(const char *buf, const struct http_head *head, nghttp2_nv *nv, size_t cap, char *names)
{
	size_t n = 0, used = 0;
	for (uint32_t i = 0; i < head->nheaders && n < cap; i++) {
		const struct http_header *f = &head->headers[i];
		if ((f->flags & HTTP_HEADER_HOP_BY_HOP) || f->id == HTTP_HDR_TRANSFER_ENCODING)
			continue; /* connection-specific: not in HTTP/2 (RFC 9113 8.2.2) */
		lower_copy(names + used, buf + f->name.off, f->name.len);
		nv[n++] = (nghttp2_nv){ .name = (uint8_t *)names + used, .namelen = f->name.len,
					.value = (uint8_t *)buf + f->value.off, .valuelen = f->value.len,
					.flags = NGHTTP2_NV_FLAG_NONE };
		used += f->name.len;
	}
	return n;
}

/* Room to turn the HTTP/1.1 head (or trailer section) buf[0..len) into
 * HTTP/2 fields: one block, freed with free(), sized by the head's lines
 * (every field takes one), so that no count of fields is refused here
 * (http.c held a head to global.max_header_fields, trailers to
 * HTTP_MAX_TRAILERS bytes; on_frame_not_send resets what nghttp2 will not
 * send). NULL: ENOMEM. */
struct h1_room {
	struct http_header *fields;
	uint32_t cap;
	nghttp2_nv *nv; /* cap + 1: the response's :status first */
	char *names; /* the names in lower case */
};

static void *h1_room_new(const char *buf, size_t len, struct h1_room *r)
{
	size_t lines = 1;
	for (const char *p = buf, *end = buf + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		lines++;
	char *block = malloc((lines + 1) * sizeof(nghttp2_nv) + lines * sizeof(struct http_header) + len + 1);
	if (block == NULL)
		return NULL;
	r->nv = (nghttp2_nv *)block;
	r->fields = (struct http_header *)(block + (lines + 1) * sizeof(nghttp2_nv));
	r->names = (char *)(r->fields + lines);
	r->cap = (uint32_t)lines;
	return block;
}

/* Would the client take these fields? Its SETTINGS_MAX_HEADER_LIST_SIZE
 * (name + value + 32 bytes each, RFC 9113 6.5.2) is advice, but clients
 * such as Python's h2 close the whole connection past it: lb resets the
 * one stream instead. */
static bool client_takes(const struct h2_stream *st, const nghttp2_nv *nv, size_t n)
{
	uint64_t size = 0;
	for (size_t i = 0; i < n; i++)
		size += nv[i].namelen + nv[i].valuelen + 32;
	return size <= nghttp2_session_get_remote_settings(st->h2->session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
}

/* A response head from http.c: HEADERS (and the body's framing to undo). */
static bool stream_take_head(struct h2_stream *st, struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	if (len > HTTP_MAX_HEAD_SIZE + 4)
		len = HTTP_MAX_HEAD_SIZE + 4;
	const char *buf = (const char *)evbuffer_pullup(out, (ev_ssize_t)len);
	size_t head_len = http_head_length(buf, len, &st->scan_pos);
	if (head_len == 0) {
		if (len > HTTP_MAX_HEAD_SIZE)
			st->resp_failed = true;
		return false;
	}
	struct h1_room room;
	void *block = h1_room_new(buf, head_len, &room);
	struct http_head head;
	if (block != NULL)
		http_head_init(&head, room.fields, room.cap);
	/* HTTP/2 has no transfer codings: a gzip-coded body cannot pass as
	 * content (RFC 9113 8.2.2), so the stream is reset, not misled. */
	if (block == NULL ||
	    http_parse_response(buf, head_len, st->head_request ? HTTP_HEAD : HTTP_GET, false, &head) != HTTP_MSG_OK ||
	    head.framing == HTTP_FRAMING_TUNNEL || head.transfer_coded) {
		free(block);
		st->resp_failed = true;
		return false;
	}
	nghttp2_nv *nv = room.nv;
	char status[4];
	snprintf(status, sizeof(status), "%03d", head.status);
	nv[0] = (nghttp2_nv){ .name = (uint8_t *)":status", .namelen = 7, .value = (uint8_t *)status, .valuelen = 3 };
	size_t n = 1 + h1_fields(buf, &head, nv + 1, room.cap, room.names);
	if (!client_takes(st, nv, n)) {
		free(block);
		st->resp_failed = true;
		return false;
	}
	int rc;
	if (head.interim) {
		rc = nghttp2_submit_headers(st->h2->session, NGHTTP2_FLAG_NONE, st->id, NULL, nv, n, NULL);
	} else {
		http_body_init_head(&st->body, &head);
		bool body = !http_body_done(&st->body);
		nghttp2_data_provider provider = { .source.ptr = st, .read_callback = on_data_read };
		rc = nghttp2_submit_response(st->h2->session, st->id, nv, n, body ? &provider : NULL);
		st->head_sent = true;
		st->resp_done = !body;
	}
	free(block);
	evbuffer_drain(out, head_len);
	st->scan_pos = 0;
	if (rc != 0)
		st->resp_failed = true;
	return rc == 0;
}

/* The trailing HEADERS that end the stream. false: none could be
 * submitted (ENOMEM, or more than the client takes), so nothing would
 * end it. */
static bool stream_submit_trailers(struct h2_stream *st)
{
	/* The trailer section as a head: a dummy status line before it. */
	static const char line[] = "HTTP/1.1 200 OK\r\n";
	size_t len = sizeof(line) - 1 + st->trailers_len;
	char *buf = malloc(len + 1);
	struct h1_room room;
	void *block = buf != NULL ? h1_room_new(st->trailers, st->trailers_len, &room) : NULL;
	int rc = -1;
	if (block != NULL) {
		struct http_head head;
		http_head_init(&head, room.fields, room.cap);
		memcpy(buf, line, sizeof(line) - 1);
		memcpy(buf + sizeof(line) - 1, st->trailers, st->trailers_len);
		if (http_parse_response(buf, len, HTTP_GET, false, &head) == HTTP_MSG_OK) {
			size_t n = h1_fields(buf, &head, room.nv, room.cap, room.names);
			if (client_takes(st, room.nv, n))
				rc = nghttp2_submit_trailer(st->h2->session, st->id, room.nv, n);
		} else {
			rc = nghttp2_submit_trailer(st->h2->session, st->id, NULL, 0); /* ends the stream all the same */
		}
	}
	free(buf);
	free(block);
	return rc == 0;
}

/* Body bytes from http.c, their framing undone into st->resp. */
static void stream_take_body(struct h2_stream *st, struct evbuffer *out)
{
	st->wants_room = false; /* set again below while there is none */
	while (evbuffer_get_length(out) > 0 && !st->resp_done && !st->resp_failed &&
	       evbuffer_get_length(st->resp) < H2_STREAM_BUFFER) {
		/* Every stream may hold H2_STREAM_FLOOR whatever the others
		 * hold: the one the client reads now must not wait behind
		 * streams whose windows it keeps shut. */
		if (st->h2->buffered >= H2_CONN_BUFFER && evbuffer_get_length(st->resp) >= H2_STREAM_FLOOR) {
			st->wants_room = true;
			break;
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
			break;
		const char *p = v.iov_base;
		size_t len = v.iov_len, i = 0;
		while (i < len && !http_body_done(&st->body)) {
			size_t ahead = http_body_payload_ahead(&st->body), used = 0;
			bool trailer = http_body_in_trailers(&st->body);
			size_t n = ahead > 0 ? (ahead < len - i ? ahead : len - i) : 1;
			if (http_body_feed(&st->body, p + i, n, &used) == HTTP_BODY_ERROR) {
				st->resp_failed = true;
				break;
			}
			if (ahead > 0) {
				evbuffer_add(st->resp, p + i, used);
				st->h2->buffered += used;
			} else if (trailer && used > 0) {
				char *t = realloc(st->trailers, st->trailers_len + used);
				if (t == NULL) {
					st->resp_failed = true;
					break;
				}
				st->trailers = t;
				memcpy(t + st->trailers_len, p + i, used);
				st->trailers_len += used;
			}
			i += used;
			if (used == 0)
				break;
		}
		evbuffer_drain(out, i);
		if (http_body_done(&st->body))
			st->resp_done = true;
	}
	if (st->resp_done && st->trailers_len <= 2) {
		st->trailers_len = 0; /* only the final CRLF: no trailers */
	}
}

static void stream_send(struct conn *c)
{
	struct h2_stream *st = c->transport_state;
	st->conn = c;
	if (st->h2 == NULL || st->closed) {
		evbuffer_drain(c->out, evbuffer_get_length(c->out)); /* nobody to send it to */
		if (!st->resp_done) {
			c->error = true;
			c->error_code = ECONNRESET;
		}
		return;
	}
	bool had_resp = evbuffer_get_length(st->resp) > 0;
	while (evbuffer_get_length(c->out) > 0 && !st->resp_failed && !st->head_sent)
		if (!stream_take_head(st, c->out))
			break;
	if (st->head_sent)
		stream_take_body(st, c->out);
	if (st->resp_done)
		evbuffer_drain(c->out, evbuffer_get_length(c->out)); /* nothing follows a response here */
	if (st->resp_failed) {
		submit_rst(st, NGHTTP2_INTERNAL_ERROR);
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		return;
	}
	if (st->head_sent && (st->deferred || !had_resp) &&
	    (evbuffer_get_length(st->resp) > 0 || st->resp_done)) {
		st->deferred = false;
		nghttp2_session_resume_data(st->h2->session, st->id);
	}
	flush_soon(st->h2);
}

/* What waits for the client. Once the stream's buffer or the
 * connection's is full, it says "full" (relay.h's high water), so that
 * http.c stops reading the server at once instead of gathering up to
 * 256 KiB per stream in its own output. */
static size_t stream_unsent(const struct conn *c)
{
	const struct h2_stream *st = c->transport_state;
	if (st->h2 == NULL || st->closed)
		return 0;
	size_t waiting = evbuffer_get_length(st->resp);
	if (st->wants_room || waiting >= H2_STREAM_BUFFER)
		return waiting > RELAY_HIGH_WATER ? waiting : RELAY_HIGH_WATER;
	return waiting;
}

/* Only what stream_receive would change: else conn_sync would wake the
 * session again and again (a spin). */
static bool stream_input_ready(const struct conn *c)
{
	const struct h2_stream *st = c->transport_state;
	if (c->error)
		return false;
	if (c->eof) /* the request is all in: only a cut before the response's end is news */
		return stream_cut(st) && !st->resp_done;
	return evbuffer_get_length(st->req) > 0 || st->req_end || stream_cut(st);
}

static bool stream_wants_socket(const struct conn *c)
{
	(void)c;
	return false;
}

/* http.c ends the response by closing (a body until close): it is whole. */
static void stream_finish(struct conn *c)
{
	struct h2_stream *st = c->transport_state;
	if (st->head_sent && st->body.framing == HTTP_FRAMING_UNTIL_CLOSE && !st->resp_done) {
		st->resp_done = true;
		if (st->h2 != NULL && !st->closed) {
			st->deferred = false;
			nghttp2_session_resume_data(st->h2->session, st->id);
			flush_soon(st->h2);
		}
	}
}

static void stream_release(struct conn *c)
{
	(void)c;
}

static void stream_close(struct conn *c)
{
	struct h2_stream *st = c->transport_state;
	if (!c->error)
		stream_finish(c); /* a body until close ends here; after an error (cut short) it does not */
	if (!st->resp_done) {
		/* REFUSED_STREAM says the request was not processed, and clients
		 * send it again: only when http.c wrote nothing at all (a head
		 * it wrote in its last pass may not have been taken yet). */
		bool answered = st->head_sent || c->error || (c->out != NULL && evbuffer_get_length(c->out) > 0);
		submit_rst(st, answered ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_REFUSED_STREAM);
	} else if (!st->req_end) {
		/* Answered before the request ended (RFC 9113 8.1): NO_ERROR
		 * tells the client to stop sending, once the response's
		 * END_STREAM is out (a reset before it would cut the response). */
		if (!stream_cut(st) && nghttp2_session_get_stream_local_close(st->h2->session, st->id) == 1)
			submit_rst(st, NGHTTP2_NO_ERROR);
		else
			st->reset_when_sent = true;
	}
	st->unconsumed = 0; /* what it will never read: the connection's credit went back on arrival */
	if (st->h2 != NULL) {
		flush_soon(st->h2); /* the owner sees one stream fewer (its idle timeout, a shutdown's end) */
		st->h2->running--;
		if (st->zombie)
			st->h2->zombies--;
	}
	st->held_by_conn = false;
	st->conn = NULL;
	stream_maybe_free(st);
}

static const struct conn_transport stream_transport = {
	.receive = stream_receive,
	.send = stream_send,
	.unsent = stream_unsent,
	.input_ready = stream_input_ready,
	.wants_socket = stream_wants_socket,
	.finish = stream_finish,
	.release = stream_release,
	.close = stream_close,
};

/* ---- nghttp2's callbacks ---- */

static struct h2_stream *stream_of(nghttp2_session *session, int32_t id)
{
	return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *h = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (h->shutting_down) { /* after our GOAWAY: refused, the client may retry it elsewhere */
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (++h->new_streams > H2_NEW_STREAMS_PER_READ) {
		h->failed = true; /* a flood: the connection ends */
		nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (h->open_streams + h->zombies >= 2 * H2_MAX_STREAMS) {
		/* Reset streams whose requests are still being aborted count
		 * (Rapid Reset: nghttp2 forgets a stream at its RST), with as
		 * much slack again for a client that cancels one and opens
		 * the next in one write, as RFC 9113 5.1.2 lets it. */
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (++h->streams_taken == H2_STREAMS_PER_CONN)
		h2_conn_shutdown(h); /* this one is served, then the client reconnects */
	struct h2_stream *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->h2 = h;
	st->id = frame->hd.stream_id;
	st->method = st->scheme = st->authority = st->path = -1;
	st->req = evbuffer_new();
	st->resp = evbuffer_new();
	st->held_by_nghttp2 = true;
	st->link.next = h->streams.next;
	st->link.prev = &h->streams;
	h->streams.next->prev = &st->link;
	h->streams.next = &st->link;
	if (st->req == NULL || st->resp == NULL ||
	    nghttp2_session_set_stream_user_data(session, st->id, st) != 0) {
		st->held_by_nghttp2 = false;
		stream_maybe_free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	h->open_streams++;
	return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
	(void)flags;
	struct h2_stream *st = stream_of(session, frame->hd.stream_id);
	if (st == NULL)
		return 0;
	((struct h2_conn *)user_data)->payload += namelen + valuelen;
	if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && !st->in_trailers) {
		st->in_trailers = true; /* request trailers replace the fields kept */
		st->nfields = 0;
	}
	struct h2_conn *h = user_data;
	/* The decoded size, as SETTINGS_MAX_HEADER_LIST_SIZE counts it: a few
	 * bytes of HPACK may name a 4 KiB table entry hundreds of times. */
	if (st->text_len + namelen + valuelen + 32 * (st->nfields + 1) > h->max_header_size) {
		glitch(h);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset */
	}
	if (st->nfields == st->fields_cap) {
		size_t cap = st->fields_cap ? 2 * st->fields_cap : 16;
		struct h2_field *fields = realloc(st->fields, cap * sizeof(*fields));
		if (fields == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		st->fields = fields;
		st->fields_cap = cap;
	}
	struct h2_field *f = &st->fields[st->nfields];
	if (text_append(st, name, namelen, &f->name) < 0 || text_append(st, value, valuelen, &f->value) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	f->name_len = (uint32_t)namelen;
	f->value_len = (uint32_t)valuelen;
	int index = (int)st->nfields++;
	if (!st->in_trailers && namelen > 0 && name[0] == ':') {
		if (field_is(st, f, ":method")) {
			st->method = index;
			st->head_request = valuelen == 4 && memcmp(value, "HEAD", 4) == 0;
		} else if (field_is(st, f, ":scheme")) {
			st->scheme = index;
		} else if (field_is(st, f, ":authority")) {
			st->authority = index;
		} else if (field_is(st, f, ":path")) {
			st->path = index;
		}
	}
	return 0;
}

static void stream_start(struct h2_conn *h, struct h2_stream *st)
{
	if (stream_request_head(st) < 0) {
		submit_rst(st, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->req_started = true;
	st->held_by_conn = true; /* the session's conn holds it from here */
	h->running++;
	if (h->start(h->owner, &stream_transport, st) < 0 && st->held_by_conn) {
		st->held_by_conn = false;
		h->running--;
		submit_rst(st, NGHTTP2_REFUSED_STREAM);
	}
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *h = user_data;
	struct h2_stream *st = frame->hd.stream_id != 0 ? stream_of(session, frame->hd.stream_id) : NULL;
	if (st == NULL)
		return 0;
	bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (!st->req_started) {
			st->req_end = end;
			stream_start(h, st);
		} else if (end) {
			stream_request_end(st); /* trailers */
		}
		break;
	case NGHTTP2_DATA:
		if (end)
			stream_request_end(st);
		break;
	default:
		return 0;
	}
	stream_wake(st);
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
			 void *user_data)
{
	(void)flags;
	((struct h2_conn *)user_data)->payload += len;
	struct h2_stream *st = stream_of(session, stream_id);
	if (st == NULL || !st->held_by_conn) {
		nghttp2_session_consume(session, stream_id, len); /* nobody reads it */
		return 0;
	}
	if (st->chunked) {
		char size[24];
		int n = snprintf(size, sizeof(size), "%zx\r\n", len);
		evbuffer_add(st->req, size, (size_t)n);
	}
	evbuffer_add(st->req, data, len);
	if (st->chunked)
		evbuffer_add(st->req, "\r\n", 2);
	/* The connection's credit comes back at once, the stream's as http.c
	 * takes the bytes: a stream whose body waits (queued, a slow server)
	 * holds its own window only, never the others' (as nginx). So a
	 * connection holds at most H2_MAX_STREAMS x H2_STREAM_WINDOW. */
	nghttp2_session_consume_connection(session, len);
	st->unconsumed += len;
	stream_wake(st);
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
	struct h2_conn *h = user_data;
	(void)error_code;
	struct h2_stream *st = stream_of(session, stream_id);
	if (st == NULL)
		return 0;
	h->open_streams--;
	st->closed = true;
	st->held_by_nghttp2 = false;
	if (st->held_by_conn && !st->resp_done) {
		st->zombie = true;
		h->zombies++;
	}
	stream_wake(st);
	stream_maybe_free(st);
	return 0;
}

/* A HEADERS frame nghttp2 would not send: a header block over its bound
 * (64 KiB as nghttp2_hd_deflate_bound estimates it: a response head or
 * trailer section of thousands of fields, or of long ones). Trailers come
 * after the last DATA went out without END_STREAM, and a response head
 * was taken as sent: nothing else would end the stream. */
static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
			     void *user_data)
{
	(void)lib_error_code;
	(void)user_data;
	struct h2_stream *st = frame->hd.type == NGHTTP2_HEADERS ? stream_of(session, frame->hd.stream_id) : NULL;
	if (st != NULL)
		submit_rst(st, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

/* A client that makes lb reset streams or refuse frames again and again
 * (MadeYouReset, CVE-2025-8671, and other "glitches" nghttp2 1.52 does
 * not count) loses its connection: GOAWAY ENHANCE_YOUR_CALM. */
static void glitch(struct h2_conn *h)
{
	uint64_t now = clock_ms();
	h->glitch_budget += (double)(now - h->glitch_ms) * H2_GLITCHES_PER_S / 1000.0;
	if (h->glitch_budget > H2_GLITCH_BURST)
		h->glitch_budget = H2_GLITCH_BURST;
	h->glitch_ms = now;
	h->glitch_budget -= 1;
	if (h->glitch_budget < 0 && !h->failed) {
		h->failed = true;
		nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
	}
}

/* CONTINUATION frames are counted here too, whatever the library does: a
 * header block in more than H2_CONTINUATIONS_MAX of them ends the
 * connection (an nghttp2 without the back-ported limit would buffer and
 * decode every one). */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data)
{
	struct h2_conn *h = user_data;
	(void)session;
	if (hd->type != NGHTTP2_CONTINUATION) {
		h->continuations = 0;
		return 0;
	}
	if (++h->continuations > H2_CONTINUATIONS_MAX) {
		h->failed = true;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

/* A stream error the client caused (a malformed field, a bad frame on a
 * stream), not one lb chose: a server that failed (INTERNAL_ERROR), a
 * stream refused at a limit, a cancel, an early answer (NO_ERROR). */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *h = user_data;
	/* The client's WINDOW_UPDATEs acknowledging a download are no flood
	 * (Go's client sends two per 4 KiB read); a sixteenth of what was
	 * sent covers them many times over and leaves little room for junk. */
	if (frame->hd.type == NGHTTP2_DATA)
		h->payload += frame->hd.length / 16;
	if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
		struct h2_stream *st = stream_of(session, frame->hd.stream_id);
		/* not once the client ended its side too: the stream is closed */
		if (st != NULL && st->reset_when_sent && nghttp2_session_get_stream_remote_close(session, st->id) == 0)
			submit_rst(st, NGHTTP2_NO_ERROR);
	}
	if (frame->hd.type != NGHTTP2_RST_STREAM)
		return 0;
	switch (frame->rst_stream.error_code) {
	case NGHTTP2_NO_ERROR:
	case NGHTTP2_INTERNAL_ERROR:
	case NGHTTP2_REFUSED_STREAM:
	case NGHTTP2_CANCEL:
		break;
	default:
		glitch(user_data);
	}
	return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int error, void *user_data)
{
	(void)session;
	(void)frame;
	(void)error;
	glitch(user_data);
	return 0;
}

/* ---- the connection ---- */

/* What nghttp2 has to send, H2_CLIENT_OUT_MAX at a time, for as long as
 * the kernel takes it all; once it does not, the client connection's
 * writability (the session's drive) brings the next. */
static void send_frames(struct h2_conn *h)
{
	for (;;) {
		size_t produced = 0;
		while (evbuffer_get_length(h->client->out) < H2_CLIENT_OUT_MAX) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(h->session, &data);
			if (n < 0) {
				h->failed = true;
				break;
			}
			if (n == 0)
				break;
			evbuffer_add(h->client->out, data, (size_t)n);
			produced += (size_t)n;
		}
		conn_flush(h->client);
		if (produced == 0 || h->failed || h->client->error || conn_unsent(h->client) > 0 ||
		    !nghttp2_session_want_write(h->session))
			break;
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *h = arg;
	(void)fd;
	(void)what;
	/* The owner's drive writes (h2_conn_drive), and sees the connection
	 * turn idle, fail or end; it may free h. */
	h->client->on_event(h->client, h->client->arg);
}

struct h2_conn *h2_conn_new(struct conn *client, struct worker *w, const struct gen_listener *l,
			    h2_stream_start_fn *start, void *owner)
{
	struct h2_conn *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	if (h == NULL)
		return NULL;
	h->client = client;
	h->start = start;
	h->owner = owner;
	h->glitch_budget = H2_GLITCH_BURST;
	h->glitch_ms = clock_ms();
	h->max_header_size = l->cfg->max_header_size;
	h->streams.next = h->streams.prev = &h->streams;
	h->flush_event = event_new(w->base, -1, 0, on_flush, h);
	if (h->flush_event == NULL || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
	nghttp2_option_set_no_auto_window_update(opt, 1);
#ifdef LB_H2_MAX_CONTINUATIONS /* the Makefile asks the linker */
	nghttp2_option_set_max_continuations(opt, H2_CONTINUATIONS_MAX); /* CVE-2024-28182 */
#endif
#ifdef LB_H2_RESET_RATE_LIMIT
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33); /* CVE-2023-44487 */
#endif
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	if (nghttp2_session_server_new2(&h->session, cb, h, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)l->cfg->max_header_size },
	};
	if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, settings, sizeof(settings) / sizeof(settings[0])) !=
		    0 ||
	    nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
		goto fail;
	return h;
fail:
	if (cb != NULL)
		nghttp2_session_callbacks_del(cb);
	if (opt != NULL)
		nghttp2_option_del(opt);
	h2_conn_free(h);
	return NULL;
}

bool h2_conn_drive(struct h2_conn *h)
{
	struct conn *c = h->client;
	h->new_streams = 0;
	while (!h->failed && conn_input_length(c) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
			break;
		ssize_t n = nghttp2_session_mem_recv(h->session, v.iov_base, v.iov_len);
		h->bytes_read += v.iov_len;
		if (n >= 0 && h->bytes_read / 8 > h->payload + H2_FLOOD_SLACK) {
			/* Frames that carry next to nothing (padding, empty DATA,
			 * PRIORITY, ...) at a rate nothing honest needs: nginx's
			 * flood heuristic. */
			log_info("HTTP/2 flood from a client: %llu bytes read for %llu bytes of payload",
				 (unsigned long long)h->bytes_read, (unsigned long long)h->payload);
			nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
			n = -1;
		}
		if (n < 0) {
			/* A connection error: nghttp2 queued its GOAWAY; say it and go. */
			h->failed = true;
			evbuffer_drain(c->in, evbuffer_get_length(c->in));
			break;
		}
		evbuffer_drain(c->in, (size_t)n);
	}
	conn_sync(c);
	if (c->out != NULL || conn_buffers_ensure(c))
		send_frames(h);
	if (c->error)
		return false;
	if (h->failed)
		return conn_unsent(c) > 0 && !c->eof; /* the GOAWAY out, then close */
	if (c->eof)
		return false; /* HTTP/2 has no half-close: the client left */
	if (!nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session) && conn_unsent(c) == 0)
		return false; /* GOAWAY both ways, nothing left */
	return true;
}

bool h2_conn_idle(const struct h2_conn *h)
{
	return h->running == 0;
}

void h2_conn_shutdown(struct h2_conn *h)
{
	if (h->shutting_down)
		return;
	h->shutting_down = true;
	/* Graceful: the streams up to the last one taken finish (RFC 9113 6.8). */
	nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->session),
			      NGHTTP2_NO_ERROR, NULL, 0);
	flush_soon(h);
}

void h2_conn_free(struct h2_conn *h)
{
	if (h == NULL)
		return;
	/* Streams still in http.c sessions: their connection is gone. */
	struct stream_link *l = h->streams.next;
	while (l != &h->streams) { /* a circular list: never NULL */
		struct stream_link *next = l->next;
		struct h2_stream *st = (struct h2_stream *)l;
		st->h2 = NULL;
		st->closed = true;
		st->held_by_nghttp2 = false;
		l->prev->next = l->next;
		l->next->prev = l->prev;
		l->prev = l->next = NULL;
		stream_wake(st);
		stream_maybe_free(st);
		l = next;
	}
	if (h->session != NULL)
		nghttp2_session_del(h->session);
	if (h->flush_event != NULL)
		event_free(h->flush_event);
	free(h);
}
