/*
 * replica: the backend server behind lb in the demo, the integration tests
 * and the benchmarks. One file, one thread, libevent bufferevents.
 *
 *   replica [-p PORT] [-a ADDR] [-n NAME] [-d DELAY_MS] [-o N] [-m tcp|http]
 *           [-e] [-g] [-P PIDFILE]
 *
 *   -p PORT     listen port (default 9000; 0 = any, the real one is printed)
 *   -a ADDR     listen address, numeric IPv4 or IPv6 (default 127.0.0.1)
 *   -n NAME     name in X-Replica and bodies (default "replica-PORT")
 *   -d MS       delay every HTTP response but /healthz, /stats and
 *               /control/... by MS milliseconds
 *   -o N        overload mode (an overloaded database): see below
 *   -m MODE     http (default) or tcp (raw echo); -e is short for -m tcp
 *   -g          tcp mode: greet each connection with "NAME\n" before echoing
 *   -P PIDFILE  write the pid there (removed again on a clean exit)
 *
 * In service: a request is in service from its head being parsed until its
 * response is queued in full (or its connection ends: a /hang stays in
 * service until then), one at a time per connection. /healthz, /stats and
 * /control/... never count: they are the instruments, not the load. /stats
 * reports "in_flight" (in service now) and "peak_in_flight" (the most at
 * once since start or since the last /control/reset-peak, which sets it to
 * the current in_flight).
 *
 * Overload mode (-o N): a request's base service time is its delay, -d MS
 * plus /delay/MS; it takes base * max(1, (c/N)^2) ms instead, where c is
 * the number of requests in service when it arrives, itself included, so
 * a fixed cost up to N at once, and more than proportionally slower
 * beyond: throughput, c / (base * (c/N)^2) = N^2 / (base * c) requests per
 * ms, falls as load grows past N. c is fixed at arrival; a request whose
 * client has gone stays in service until its time is up, as a query does.
 * It is a timer, not CPU work (one thread serves every connection at
 * once). A request with no base time (no -d, no /delay) is answered at
 * once; /healthz, /stats and /control/... are never slowed.
 *
 * Once listening it prints "replica NAME listening on ADDR:PORT" on stdout;
 * tests wait for that line. SIGTERM and SIGINT exit 0; a bind failure exits
 * 1, a usage error 2.
 *
 * HTTP routes (the query string is ignored):
 *   GET /healthz             200 "ok\n"; 500 or no answer per /control
 *   /echo[/...]              the request body, and every request header as
 *                            X-Echo-<name>, plus X-Echo-Request-Line
 *   /count[/...]             the number of request body bytes, in decimal
 *   /bytes/N, /chunked/N     N bytes, byte i = i % 251; /chunked in
 *                            Transfer-Encoding: chunked, 16 KiB chunks
 *   /status/CODE             that status (200..599)
 *   /delay/MS                answer after MS ms (added to -d)
 *   /close, /hang, /reset    answer then close; never answer; RST at once
 *   /stats                   JSON: name, connections, requests,
 *                            in_flight, peak_in_flight, ...
 *   /ws + Upgrade: websocket 101, then a raw echo of every byte
 *   /control/health/fail|ok, /control/hang-health   set /healthz behaviour
 *   /control/reset-peak      peak_in_flight = in_flight now; 200 "ok\n"
 *   anything else            200 "NAME\n"
 *
 * Each connection is one state machine (enum conn_state) run by one driver,
 * conn_drive(); libevent callbacks only record what happened and call it.
 * Requests on a connection are handled strictly one after the other, which
 * is what makes pipelining come out in order.
 *
 * Memory per connection is bounded: the bufferevent stops reading once
 * INPUT_HIGH bytes wait unprocessed, and no state produces output while
 * more than OUTPUT_HIGH bytes wait to be sent. The one exception is /echo,
 * which holds the whole body (up to ECHO_BODY_MAX) before answering, so
 * that a naive test client may send its whole request before reading.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define HEAD_MAX (64 * 1024)            /* request line + headers; 431 beyond */
#define LINE_MAX_CHUNKED (8 * 1024)     /* one chunk-size or trailer line */
#define TRAILER_MAX (64 * 1024)         /* all trailer lines of one body */
#define ECHO_BODY_MAX (64ULL << 20)     /* /echo holds its body; 413 beyond */
#define CONTENT_LENGTH_MAX (1ULL << 62)
#define CHUNK_SIZE_MAX (1ULL << 60)
#define BYTES_MAX (1ULL << 40)          /* /bytes/N and /chunked/N */
#define DELAY_MAX_MS 3600000u
#define INPUT_HIGH (1024 * 1024)        /* bufferevent read high watermark */
#define OUTPUT_HIGH (1024 * 1024)       /* produce no output above this */
#define OUTPUT_LOW (256 * 1024)         /* write callback wakes the driver */
#define SINGLE_IO_MAX (256 * 1024)      /* bytes per read()/write() call */
#define BYTES_PIECE (64 * 1024)         /* /bytes body added per step */
#define CHUNKED_PIECE (16 * 1024)       /* /chunked chunk size */
#define PATTERN_PERIOD 251
#define LINGER_MS 2000                  /* wait for the client's FIN */
#define ACCEPT_RETRY_MS 100             /* after EMFILE and friends */
#define NAME_MAX_LEN 200

#define ADD_LITERAL(buf, s) evbuffer_add((buf), (s), sizeof(s) - 1)

enum replica_mode { MODE_HTTP, MODE_TCP };

/* What /healthz does, set through /control. */
enum health_state { HEALTH_OK, HEALTH_FAIL, HEALTH_HANG };

enum conn_state {
	CONN_HTTP_HEAD,    /* waiting for a complete request head */
	CONN_HTTP_BODY,    /* consuming the request body */
	CONN_HTTP_DELAY,   /* body consumed; waiting for the delay timer */
	CONN_HTTP_RESPOND, /* writing the response, generated bodies included */
	CONN_HTTP_HANG,    /* never answering; discarding input until EOF */
	CONN_ECHO,         /* raw echo: tcp mode, and /ws after the 101 */
	CONN_FLUSH_CLOSE,  /* sending what is queued, then shutting down */
	CONN_LINGER,       /* write side shut; discarding input until EOF */
	CONN_DONE          /* to be freed */
};

/* What a driver step asks for: run the (new) state now, or wait for an
 * event (input, output drained, EOF, timer). */
enum step { STEP_NEXT, STEP_WAIT };

enum body_framing { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

enum chunk_state { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER };

enum route {
	ROUTE_NAME,    /* 200 "NAME\n" */
	ROUTE_STATUS,  /* conn.status with conn.text or "CODE REASON\n" */
	ROUTE_ECHO,
	ROUTE_COUNT,
	ROUTE_BYTES,   /* conn.route_arg bytes */
	ROUTE_CHUNKED, /* conn.route_arg bytes, chunked */
	ROUTE_CLOSE,
	ROUTE_HANG,
	ROUTE_RESET,
	ROUTE_STATS,
	ROUTE_WS,
	ROUTE_CONTROL, /* set replica.health to conn.route_arg, 200 "ok\n" */
	ROUTE_RESET_PEAK /* peak_in_flight = in_flight, 200 "ok\n" */
};

/* A parsed request head. The pointers are into conn.head. */
struct http_request {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	size_t line_len;            /* the request line, at the head's start */
	bool http10;
	enum body_framing framing;
	uint64_t content_length;
	bool has_content_length;
	bool conn_close;            /* Connection: close */
	bool conn_keep_alive;       /* Connection: keep-alive */
	bool must_close;            /* framing was ambiguous: close after */
	bool upgrade_websocket;
	bool expect_continue;
};

struct conn {
	struct bufferevent *bev;
	struct event *timer;        /* delay and linger; made on first use */
	struct conn *prev, *next;   /* replica.conns */
	enum conn_state state;
	bool read_eof;              /* the client shut its write side */
	bool timer_expired;

	/* The current request, from its head being parsed to the end of its
	 * response. The head is kept (not left in the input buffer) because
	 * /echo writes its headers back after the whole body has arrived. */
	char *head;
	size_t head_cap;
	size_t head_scanned;        /* input already searched for "\r\n\r\n" */
	struct http_request req;
	bool head_method;           /* HEAD: the response has no body */
	bool keep_alive;
	enum route route;
	uint64_t route_arg;
	int status;
	const char *text;
	unsigned delay_ms;
	bool instrument;            /* /healthz, /stats, /control/: not load */
	bool in_flight;             /* counted in replica.in_flight */
	bool response_started;

	/* The request body being consumed. */
	enum chunk_state chunk_state;
	uint64_t body_left;         /* of the Content-Length, or of the chunk */
	uint64_t body_received;     /* decoded body bytes so far */
	size_t trailer_bytes;
	struct evbuffer *echo_body; /* /echo only; kept for reuse */

	/* The generated response body (/bytes, /chunked). */
	uint64_t gen_left;
	uint64_t gen_offset;
	bool gen_chunked;
	bool gen_last_chunk;        /* "0\r\n\r\n" still to send */
};

static struct replica {
	/* options */
	const char *name;
	const char *addr;
	int port;
	unsigned delay_ms;
	unsigned overload_n;        /* -o N; 0 = off */
	enum replica_mode mode;
	bool greeting;
	const char *pidfile;

	char name_buf[32];
	char *name_line;            /* "NAME\n" */
	size_t name_line_len;
	char *name_json;            /* NAME with '"' and '\\' escaped */

	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_retry;
	struct event *sigterm, *sigint;

	enum health_state health;
	unsigned long long connections_total;
	unsigned long long connections_active;
	unsigned long long requests_total;
	unsigned long long healthz_total;
	unsigned long long in_flight;      /* requests in service now */
	unsigned long long peak_in_flight; /* since start or reset-peak */
	struct conn *conns;         /* every live connection, freed at exit */
} replica = {
	.addr = "127.0.0.1",
	.port = 9000,
	.mode = MODE_HTTP,
};

/* Body bytes for /bytes and /chunked: pattern[i] = i % 251, long enough
 * that any piece of up to BYTES_PIECE bytes starting at any offset of the
 * period is one contiguous slice, added by reference without copying. */
static unsigned char pattern[PATTERN_PERIOD + BYTES_PIECE];

static void conn_drive(struct conn *c);

/* ---------------------------------------------------------------- */
/* Pure helpers: parsing, no libevent.                               */

static bool is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decimal digits only, no sign, no spaces; 0 or -1 if empty, not all
 * digits, or above max. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static bool bytes_equal_nocase(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* The next non-empty element of a comma-separated header value, without
 * surrounding whitespace; false at the end. */
static bool list_next(const char **p, const char *end, const char **elem,
		      size_t *elem_len)
{
	while (*p < end) {
		const char *s = *p;
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma != NULL ? comma : end;

		*p = comma != NULL ? comma + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			*elem = s;
			*elem_len = (size_t)(e - s);
			return true;
		}
	}
	return false;
}

static bool list_contains(const char *v, size_t n, const char *token)
{
	const char *p = v, *elem;
	size_t len;

	while (list_next(&p, v + n, &elem, &len))
		if (bytes_equal_nocase(elem, len, token))
			return true;
	return false;
}

/* "METHOD SP TARGET SP HTTP/D.D"; 0, 400 or 505. */
static int http_parse_request_line(const char *line, size_t n,
				   struct http_request *req)
{
	const char *end = line + n;
	const char *sp1 = memchr(line, ' ', n), *target, *sp2, *version;

	if (sp1 == NULL || sp1 == line)
		return 400;
	for (const char *q = line; q < sp1; q++)
		if (!is_tchar((unsigned char)*q))
			return 400;
	target = sp1 + 1;
	sp2 = memchr(target, ' ', (size_t)(end - target));
	if (sp2 == NULL || sp2 == target)
		return 400;
	for (const char *q = target; q < sp2; q++)
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
			return 400;
	version = sp2 + 1;
	if (end - version != 8 || memcmp(version, "HTTP/", 5) != 0 ||
	    version[5] < '0' || version[5] > '9' || version[6] != '.' ||
	    version[7] < '0' || version[7] > '9')
		return 400;
	if (version[5] != '1')
		return 505;
	req->method = line;
	req->method_len = (size_t)(sp1 - line);
	req->target = target;
	req->target_len = (size_t)(sp2 - target);
	req->line_len = n;
	req->http10 = version[7] == '0';
	return 0;
}

/* One "name: value" line; 0 or 400. *te_chunked_last tracks whether the
 * last transfer coding seen so far is chunked. */
static int http_parse_header(const char *line, size_t n,
			     struct http_request *req, bool *te_seen,
			     bool *te_chunked_last)
{
	const char *colon = memchr(line, ':', n), *v, *vend;
	size_t name_len, vlen;

	if (colon == NULL || colon == line)
		return 400; /* also rejects obsolete line folding */
	name_len = (size_t)(colon - line);
	for (size_t i = 0; i < name_len; i++)
		if (!is_tchar((unsigned char)line[i]))
			return 400;
	v = colon + 1;
	vend = line + n;
	while (v < vend && (*v == ' ' || *v == '\t'))
		v++;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	vlen = (size_t)(vend - v);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
			return 400;
	}

	if (bytes_equal_nocase(line, name_len, "content-length")) {
		uint64_t cl;

		if (parse_u64(v, vlen, CONTENT_LENGTH_MAX, &cl) != 0)
			return 400;
		if (req->has_content_length && cl != req->content_length)
			return 400;
		req->has_content_length = true;
		req->content_length = cl;
	} else if (bytes_equal_nocase(line, name_len, "transfer-encoding")) {
		const char *p = v, *elem;
		size_t len;
		bool any = false;

		*te_seen = true;
		while (list_next(&p, vend, &elem, &len)) {
			any = true;
			*te_chunked_last = bytes_equal_nocase(elem, len,
							      "chunked");
		}
		if (!any)
			return 400;
	} else if (bytes_equal_nocase(line, name_len, "connection")) {
		if (list_contains(v, vlen, "close"))
			req->conn_close = true;
		if (list_contains(v, vlen, "keep-alive"))
			req->conn_keep_alive = true;
	} else if (bytes_equal_nocase(line, name_len, "upgrade")) {
		if (list_contains(v, vlen, "websocket"))
			req->upgrade_websocket = true;
	} else if (bytes_equal_nocase(line, name_len, "expect")) {
		if (bytes_equal_nocase(v, vlen, "100-continue"))
			req->expect_continue = true;
	}
	return 0;
}

/* Parses head[0..len), which ends with its first "\r\n\r\n". Returns 0, or
 * the status to refuse the request with (then the connection closes). */
static int http_parse_head(const char *head, size_t len,
			   struct http_request *req)
{
	const char *p = head, *end = head + len;
	bool first = true, te_seen = false, te_chunked_last = false;

	memset(req, 0, sizeof(*req));
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line = p;
		size_t n;
		int status;

		/* Lines end in CRLF; a bare LF is refused. A bare CR is a
		 * control character, refused by the field checks. */
		if (nl == NULL || nl == p || nl[-1] != '\r')
			return 400;
		n = (size_t)(nl - 1 - p);
		p = nl + 1;
		if (first) {
			status = http_parse_request_line(line, n, req);
			first = false;
		} else if (n == 0) {
			break;
		} else {
			status = http_parse_header(line, n, req, &te_seen,
						   &te_chunked_last);
		}
		if (status != 0)
			return status;
	}

	/* RFC 9112 6.3: chunked must be the final coding; with both
	 * Transfer-Encoding and Content-Length, the former wins and the
	 * connection must close afterwards (request smuggling). */
	if (te_seen) {
		if (!te_chunked_last)
			return 400;
		req->framing = BODY_CHUNKED;
		if (req->has_content_length)
			req->must_close = true;
	} else if (req->has_content_length && req->content_length > 0) {
		req->framing = BODY_LENGTH;
	} else {
		req->framing = BODY_NONE;
	}
	return 0;
}

/* The path of a request target: absolute-form loses scheme and authority,
 * and the query and fragment go. */
static void http_target_path(const char *t, size_t n, const char **path,
			     size_t *path_len)
{
	size_t i = 0, start;

	if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
		i = 7;
	else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		i = 8;
	if (i > 0)
		while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
			i++;
	start = i;
	while (i < n && t[i] != '?' && t[i] != '#')
		i++;
	if (i == start) {
		*path = "/";
		*path_len = 1;
	} else {
		*path = t + start;
		*path_len = i - start;
	}
}

static bool path_is(const char *path, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(path, lit, n) == 0;
}

/* lit itself, or anything below it ("/echo", "/echo/x"). */
static bool path_under(const char *path, size_t n, const char *lit)
{
	size_t len = strlen(lit);

	return n >= len && memcmp(path, lit, len) == 0 &&
	       (n == len || path[len] == '/');
}

/* For "PREFIX<number>": -1 if path does not start with prefix, else 0 with
 * *value set, or 1 when the number is malformed or above max. */
static int path_number(const char *path, size_t n, const char *prefix,
		       uint64_t max, uint64_t *value)
{
	size_t len = strlen(prefix);

	if (n < len || memcmp(path, prefix, len) != 0)
		return -1;
	return parse_u64(path + len, n - len, max, value) == 0 ? 0 : 1;
}

static const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---------------------------------------------------------------- */
/* Connections.                                                      */

static struct evbuffer *conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

static struct evbuffer *conn_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	c->timer_expired = true;
	conn_drive(c);
}

/* Arms the connection's one timer; conn.timer_expired turns true when it
 * fires. Returns -1 if the timer cannot be made. */
static int conn_arm_timer(struct conn *c, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
			      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	if (c->timer == NULL) {
		c->timer = evtimer_new(replica.base, conn_timer_cb, c);
		if (c->timer == NULL)
			return -1;
	}
	c->timer_expired = false;
	return evtimer_add(c->timer, &tv);
}

/* Gives up on the connection: it is freed without another byte. */
static enum step conn_abort(struct conn *c)
{
	c->state = CONN_DONE;
	return STEP_NEXT;
}

/* The request just routed on c enters service, unless it is an
 * instrument; in overload mode its delay becomes base * max(1, (c/N)^2),
 * c = the requests in service with it. */
static void flight_begin(struct conn *c)
{
	double n, ms;

	if (c->instrument)
		return;
	c->in_flight = true;
	replica.in_flight++;
	if (replica.in_flight > replica.peak_in_flight)
		replica.peak_in_flight = replica.in_flight;
	if (replica.overload_n == 0 || replica.in_flight <= replica.overload_n)
		return;
	n = (double)replica.in_flight / replica.overload_n;
	ms = c->delay_ms * n * n + 0.5;
	c->delay_ms = ms > DELAY_MAX_MS ? DELAY_MAX_MS : (unsigned)ms;
}

/* The request on c leaves service (idempotent). */
static void flight_end(struct conn *c)
{
	if (c->in_flight) {
		c->in_flight = false;
		replica.in_flight--;
	}
}

static void conn_free(struct conn *c)
{
	flight_end(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		replica.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	replica.connections_active--;
	bufferevent_free(c->bev); /* closes the socket */
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->echo_body != NULL)
		evbuffer_free(c->echo_body);
	free(c->head);
	free(c);
}

/* Raw echo, for tcp mode and /ws. On the client's EOF, what is left is
 * sent, then the write side is shut (conn_flush_close), so a half-close
 * travels back through a proxy. */
static enum step conn_echo(struct conn *c)
{
	struct evbuffer *in = conn_input(c), *out = conn_output(c);

	if (evbuffer_get_length(out) <= OUTPUT_HIGH)
		evbuffer_add_buffer(out, in);
	if (c->read_eof && evbuffer_get_length(in) == 0) {
		c->state = CONN_FLUSH_CLOSE;
		return STEP_NEXT;
	}
	return STEP_WAIT;
}

/* Once everything queued is written, shut the write side. If the client
 * has not closed yet, linger, reading and discarding, until it does:
 * closing with unread input would send an RST that can destroy the
 * response before the client reads it. */
static enum step conn_flush_close(struct conn *c)
{
	flight_end(c); /* a refused or cut request is done */
	if (evbuffer_get_length(conn_output(c)) > 0)
		return STEP_WAIT;
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	if (c->read_eof || conn_arm_timer(c, LINGER_MS) != 0) {
		c->state = CONN_DONE;
		return STEP_NEXT;
	}
	c->state = CONN_LINGER;
	return STEP_NEXT;
}

static enum step conn_linger(struct conn *c)
{
	struct evbuffer *in = conn_input(c);

	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->read_eof || c->timer_expired) {
		c->state = CONN_DONE;
		return STEP_NEXT;
	}
	return STEP_WAIT;
}

/* ---------------------------------------------------------------- */
/* HTTP responses.                                                   */

/* Status line, X-Replica and the Connection header the keep-alive decision
 * calls for. The caller adds its headers and ends the head. */
static void http_head_begin(struct conn *c, int status)
{
	struct evbuffer *out = conn_output(c);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nX-Replica: %s\r\n",
			    status, http_reason(status), replica.name);
	if (!c->keep_alive)
		ADD_LITERAL(out, "Connection: close\r\n");
	else if (c->req.http10)
		ADD_LITERAL(out, "Connection: keep-alive\r\n");
}

static void http_head_end(struct conn *c, const char *content_type,
			  uint64_t content_length)
{
	evbuffer_add_printf(conn_output(c),
			    "Content-Type: %s\r\nContent-Length: %llu\r\n\r\n",
			    content_type, (unsigned long long)content_length);
}

static void http_send_simple(struct conn *c, int status,
			     const char *content_type, const char *body,
			     size_t len)
{
	http_head_begin(c, status);
	http_head_end(c, content_type, len);
	if (!c->head_method)
		evbuffer_add(conn_output(c), body, len);
}

/* Answers status, with a "CODE REASON\n" body unless the status forbids
 * one, and closes the connection afterwards. */
static void http_fail(struct conn *c, int status)
{
	char body[64];
	int len = snprintf(body, sizeof(body), "%d %s\n", status,
			   http_reason(status));

	c->keep_alive = false;
	http_send_simple(c, status, "text/plain", body, (size_t)len);
	c->state = CONN_FLUSH_CLOSE;
}

static void http_send_status(struct conn *c)
{
	char body[64];
	const char *text = c->text;
	size_t len;

	if (c->status == 204 || c->status == 304) {
		/* No body, and so no Content-Length (RFC 9110 8.6). */
		http_head_begin(c, c->status);
		ADD_LITERAL(conn_output(c), "\r\n");
		return;
	}
	if (text == NULL) {
		snprintf(body, sizeof(body), "%d %s\n", c->status,
			 http_reason(c->status));
		text = body;
	}
	len = strlen(text);
	http_send_simple(c, c->status, "text/plain", text, len);
}

/* Every request header comes back as "X-Echo-<name>: <value>", in order
 * and unchanged, hop-by-hop ones included: tests read exactly what the
 * proxy forwarded. The head was validated by http_parse_head. */
static void http_send_echo(struct conn *c)
{
	struct evbuffer *out = conn_output(c);
	const char *p = c->head + c->req.line_len + 2;

	http_head_begin(c, 200);
	ADD_LITERAL(out, "X-Echo-Request-Line: ");
	evbuffer_add(out, c->head, c->req.line_len);
	ADD_LITERAL(out, "\r\n");
	for (;;) {
		const char *nl = strchr(p, '\n');
		const char *colon, *v, *vend;

		if (nl - 1 == p)
			break; /* the blank line */
		colon = memchr(p, ':', (size_t)(nl - p));
		v = colon + 1;
		vend = nl - 1;
		while (v < vend && (*v == ' ' || *v == '\t'))
			v++;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		ADD_LITERAL(out, "X-Echo-");
		evbuffer_add(out, p, (size_t)(colon - p));
		ADD_LITERAL(out, ": ");
		evbuffer_add(out, v, (size_t)(vend - v));
		ADD_LITERAL(out, "\r\n");
		p = nl + 1;
	}
	http_head_end(c, "application/octet-stream",
		      evbuffer_get_length(c->echo_body));
	if (c->head_method)
		evbuffer_drain(c->echo_body, evbuffer_get_length(c->echo_body));
	else
		evbuffer_add_buffer(out, c->echo_body);
}

static void http_send_stats(struct conn *c)
{
	char body[512 + 2 * NAME_MAX_LEN];
	int len;

	len = snprintf(body, sizeof(body),
		       "{\"name\":\"%s\",\"connections\":%llu,"
		       "\"requests\":%llu,\"active_connections\":%llu,"
		       "\"healthz_requests\":%llu,\"in_flight\":%llu,"
		       "\"peak_in_flight\":%llu}\n",
		       replica.name_json, replica.connections_total,
		       replica.requests_total, replica.connections_active,
		       replica.healthz_total, replica.in_flight,
		       replica.peak_in_flight);
	http_send_simple(c, 200, "application/json", body, (size_t)len);
}

/* Writes the response head, and the body unless it is generated in
 * steps by http_respond. May move to another state (hang, reset, the
 * /ws tunnel). */
static void http_start_response(struct conn *c)
{
	struct evbuffer *out = conn_output(c);
	char body[32];
	int len;

	switch (c->route) {
	case ROUTE_NAME:
		http_send_simple(c, 200, "text/plain", replica.name_line,
				 replica.name_line_len);
		break;
	case ROUTE_STATUS:
		http_send_status(c);
		break;
	case ROUTE_ECHO:
		http_send_echo(c);
		break;
	case ROUTE_COUNT:
		len = snprintf(body, sizeof(body), "%llu",
			       (unsigned long long)c->body_received);
		http_send_simple(c, 200, "text/plain", body, (size_t)len);
		break;
	case ROUTE_BYTES:
		http_head_begin(c, 200);
		http_head_end(c, "application/octet-stream", c->route_arg);
		c->gen_left = c->head_method ? 0 : c->route_arg;
		break;
	case ROUTE_CHUNKED:
		http_head_begin(c, 200);
		ADD_LITERAL(out, "Content-Type: application/octet-stream\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n");
		c->gen_chunked = true;
		c->gen_left = c->head_method ? 0 : c->route_arg;
		c->gen_last_chunk = !c->head_method;
		break;
	case ROUTE_CLOSE:
		c->keep_alive = false;
		http_send_simple(c, 200, "text/plain", replica.name_line,
				 replica.name_line_len);
		break;
	case ROUTE_HANG:
		c->state = CONN_HTTP_HANG;
		break;
	case ROUTE_RESET: {
		/* A zero linger time makes close() send an RST. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER,
			   &lg, sizeof(lg));
		c->state = CONN_DONE;
		break;
	}
	case ROUTE_STATS:
		http_send_stats(c);
		break;
	case ROUTE_WS:
		evbuffer_add_printf(out,
				    "HTTP/1.1 101 Switching Protocols\r\n"
				    "X-Replica: %s\r\nUpgrade: websocket\r\n"
				    "Connection: Upgrade\r\n\r\n",
				    replica.name);
		flight_end(c); /* the tunnel is not a request */
		c->state = CONN_ECHO;
		break;
	case ROUTE_CONTROL:
		replica.health = (enum health_state)c->route_arg;
		http_send_simple(c, 200, "text/plain", "ok\n", 3);
		break;
	case ROUTE_RESET_PEAK:
		replica.peak_in_flight = replica.in_flight;
		http_send_simple(c, 200, "text/plain", "ok\n", 3);
		break;
	}
}

/* Decides everything about the request its head allows: route, delay,
 * keep-alive. */
static void http_route(struct conn *c)
{
	const struct http_request *req = &c->req;
	const char *path;
	size_t n;
	uint64_t v;
	int r;

	http_target_path(req->target, req->target_len, &path, &n);
	c->route = ROUTE_NAME;
	c->route_arg = 0;
	c->status = 200;
	c->text = NULL;
	/* The instruments answer at once and are no load. */
	c->instrument = path_is(path, n, "/healthz") ||
			path_is(path, n, "/stats") ||
			path_under(path, n, "/control");
	c->delay_ms = c->instrument ? 0 : replica.delay_ms;
	c->head_method = req->method_len == 4 &&
			 memcmp(req->method, "HEAD", 4) == 0;
	if (req->http10)
		c->keep_alive = req->conn_keep_alive && !req->conn_close;
	else
		c->keep_alive = !req->conn_close;
	if (req->must_close)
		c->keep_alive = false;

	if (path_is(path, n, "/healthz")) {
		replica.healthz_total++;
		c->delay_ms = 0;
		if (replica.health == HEALTH_HANG) {
			c->route = ROUTE_HANG;
		} else {
			c->route = ROUTE_STATUS;
			c->status = replica.health == HEALTH_OK ? 200 : 500;
			c->text = replica.health == HEALTH_OK ? "ok\n"
							      : "fail\n";
		}
	} else if (path_under(path, n, "/echo")) {
		c->route = ROUTE_ECHO;
	} else if (path_under(path, n, "/count")) {
		c->route = ROUTE_COUNT;
	} else if (path_is(path, n, "/stats")) {
		c->route = ROUTE_STATS;
	} else if (path_is(path, n, "/close")) {
		c->route = ROUTE_CLOSE;
	} else if (path_is(path, n, "/hang")) {
		c->route = ROUTE_HANG;
	} else if (path_is(path, n, "/reset")) {
		c->route = ROUTE_RESET;
	} else if (path_is(path, n, "/ws") && req->upgrade_websocket) {
		c->route = ROUTE_WS;
	} else if (path_is(path, n, "/control/health/fail")) {
		c->route = ROUTE_CONTROL;
		c->route_arg = HEALTH_FAIL;
	} else if (path_is(path, n, "/control/health/ok")) {
		c->route = ROUTE_CONTROL;
		c->route_arg = HEALTH_OK;
	} else if (path_is(path, n, "/control/hang-health")) {
		c->route = ROUTE_CONTROL;
		c->route_arg = HEALTH_HANG;
	} else if (path_is(path, n, "/control/reset-peak")) {
		c->route = ROUTE_RESET_PEAK;
	} else if (path_under(path, n, "/control")) {
		/* Reserved, so that a mistyped control fails loudly. */
		c->route = ROUTE_STATUS;
		c->status = 404;
	} else if ((r = path_number(path, n, "/bytes/", BYTES_MAX, &v)) >= 0) {
		c->route = r == 0 ? ROUTE_BYTES : ROUTE_STATUS;
		c->route_arg = v;
		c->status = r == 0 ? 200 : 400;
	} else if ((r = path_number(path, n, "/chunked/", BYTES_MAX, &v)) >= 0) {
		c->route = r == 0 ? ROUTE_CHUNKED : ROUTE_STATUS;
		c->route_arg = v;
		c->status = r == 0 ? 200 : 400;
	} else if ((r = path_number(path, n, "/status/", 599, &v)) >= 0) {
		c->route = ROUTE_STATUS;
		c->status = r == 0 && v >= 200 ? (int)v : 400;
	} else if ((r = path_number(path, n, "/delay/", DELAY_MAX_MS, &v)) >= 0) {
		if (r == 0) {
			c->delay_ms += (unsigned)v;
		} else {
			c->route = ROUTE_STATUS;
			c->status = 400;
		}
	}
}

/* Waits for a complete head, parses and routes it. */
static enum step http_read_head(struct conn *c)
{
	struct evbuffer *in = conn_input(c), *out = conn_output(c);
	struct evbuffer_ptr start, end;
	size_t len, head_len;
	int status;

	/* Backpressure: a pipelining client that does not read gets no more
	 * answers until it does; its requests wait in the input buffer,
	 * which stops growing at INPUT_HIGH. */
	if (evbuffer_get_length(out) > OUTPUT_HIGH)
		return STEP_WAIT;

	/* Empty lines before a request are ignored (RFC 9112 2.2). */
	while (c->head_scanned == 0 && evbuffer_get_length(in) > 0) {
		char crlf[2];
		ev_ssize_t got = evbuffer_copyout(in, crlf, 2);

		if (crlf[0] == '\n')
			evbuffer_drain(in, 1);
		else if (crlf[0] == '\r' && got == 2 && crlf[1] == '\n')
			evbuffer_drain(in, 2);
		else
			break;
	}

	len = evbuffer_get_length(in);
	if (len == 0)
		goto need_more;
	if (evbuffer_ptr_set(in, &start, c->head_scanned,
			     EVBUFFER_PTR_SET) != 0)
		return conn_abort(c);
	end = evbuffer_search(in, "\r\n\r\n", 4, &start);
	if (end.pos < 0) {
		if (len > HEAD_MAX) {
			http_fail(c, 431);
			return STEP_NEXT;
		}
		/* Resume the search where a split "\r\n\r\n" may begin. */
		c->head_scanned = len >= 3 ? len - 3 : 0;
		goto need_more;
	}
	head_len = (size_t)end.pos + 4;
	c->head_scanned = 0;
	if (head_len > HEAD_MAX) {
		http_fail(c, 431);
		return STEP_NEXT;
	}
	if (head_len + 1 > c->head_cap) {
		char *head = realloc(c->head, head_len + 1);

		if (head == NULL)
			return conn_abort(c);
		c->head = head;
		c->head_cap = head_len + 1;
	}
	evbuffer_remove(in, c->head, head_len);
	c->head[head_len] = '\0';

	status = http_parse_head(c->head, head_len, &c->req);
	if (status != 0) {
		http_fail(c, status);
		return STEP_NEXT;
	}
	replica.requests_total++;
	http_route(c);
	flight_begin(c);

	if (c->route == ROUTE_ECHO && c->req.framing == BODY_LENGTH &&
	    c->req.content_length > ECHO_BODY_MAX) {
		http_fail(c, 413); /* refused before a byte is uploaded */
		return STEP_NEXT;
	}
	if (c->route == ROUTE_ECHO && c->echo_body == NULL) {
		c->echo_body = evbuffer_new();
		if (c->echo_body == NULL)
			return conn_abort(c);
	}
	c->body_received = 0;
	c->body_left = c->req.framing == BODY_LENGTH ? c->req.content_length
						     : 0;
	c->chunk_state = CHUNK_SIZE;
	c->trailer_bytes = 0;
	if (c->req.expect_continue && !c->req.http10 &&
	    c->req.framing != BODY_NONE)
		ADD_LITERAL(out, "HTTP/1.1 100 Continue\r\n\r\n");
	c->state = CONN_HTTP_BODY;
	return STEP_NEXT;

need_more:
	if (c->read_eof) {
		c->state = CONN_FLUSH_CLOSE;
		return STEP_NEXT;
	}
	return STEP_WAIT;
}

/* Takes n decoded body bytes from the input: into the echo buffer for
 * /echo, otherwise away. -1 (and a 413 queued) when /echo overflows. */
static int http_consume_body(struct conn *c, size_t n)
{
	struct evbuffer *in = conn_input(c);

	if (c->route == ROUTE_ECHO) {
		if (c->body_received + n > ECHO_BODY_MAX) {
			http_fail(c, 413);
			return -1;
		}
		evbuffer_remove_buffer(in, c->echo_body, n);
	} else {
		evbuffer_drain(in, n);
	}
	c->body_received += n;
	return 0;
}

/* A line ending in CRLF from the input, without it, in buf (cap bytes).
 * 1 when read, 0 when incomplete, -1 when longer than cap - 1. */
static int read_crlf_line(struct evbuffer *in, char *buf, size_t cap,
			  size_t *len)
{
	size_t eol_len;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len,
						      EVBUFFER_EOL_CRLF_STRICT);

	if (eol.pos < 0)
		return evbuffer_get_length(in) >= cap ? -1 : 0;
	if ((size_t)eol.pos >= cap)
		return -1;
	evbuffer_remove(in, buf, (size_t)eol.pos);
	evbuffer_drain(in, eol_len);
	buf[eol.pos] = '\0';
	*len = (size_t)eol.pos;
	return 1;
}

/* One step of the chunked decoder: 1 progressed, 0 needs more input,
 * -1 failed (response queued, state changed). */
static int http_read_chunked(struct conn *c)
{
	struct evbuffer *in = conn_input(c);
	char line[LINE_MAX_CHUNKED];
	size_t len = 0, n, i;
	uint64_t size = 0;
	int r = 0, digit;

	switch (c->chunk_state) {
	case CHUNK_SIZE:
		r = read_crlf_line(in, line, sizeof(line), &len);
		if (r <= 0)
			goto fail_or_wait;
		for (i = 0; i < len; i++) {
			digit = hex_value((unsigned char)line[i]);
			if (digit < 0)
				break;
			if (size > CHUNK_SIZE_MAX >> 4)
				goto bad;
			size = size * 16 + (unsigned)digit;
		}
		if (i == 0)
			goto bad;
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i < len && line[i] != ';')
			goto bad; /* extensions after ';' are ignored */
		if (size == 0) {
			c->chunk_state = CHUNK_TRAILER;
		} else {
			c->body_left = size;
			c->chunk_state = CHUNK_DATA;
		}
		return 1;
	case CHUNK_DATA:
		n = evbuffer_get_length(in);
		if (n == 0)
			return 0;
		if (n > c->body_left)
			n = (size_t)c->body_left;
		if (http_consume_body(c, n) != 0)
			return -1;
		c->body_left -= n;
		if (c->body_left == 0)
			c->chunk_state = CHUNK_DATA_END;
		return 1;
	case CHUNK_DATA_END:
		if (evbuffer_get_length(in) < 2)
			return 0;
		evbuffer_copyout(in, line, 2);
		if (line[0] != '\r' || line[1] != '\n')
			goto bad;
		evbuffer_drain(in, 2);
		c->chunk_state = CHUNK_SIZE;
		return 1;
	case CHUNK_TRAILER:
		r = read_crlf_line(in, line, sizeof(line), &len);
		if (r <= 0)
			goto fail_or_wait;
		c->trailer_bytes += len + 2;
		if (c->trailer_bytes > TRAILER_MAX)
			goto bad;
		if (len == 0) {
			c->req.framing = BODY_NONE; /* the body is complete */
			return 1;
		}
		if (memchr(line, ':', len) == NULL ||
		    !is_tchar((unsigned char)line[0]))
			goto bad;
		return 1;
	}
bad:
	http_fail(c, 400);
	return -1;
fail_or_wait:
	if (r < 0)
		goto bad;
	return 0;
}

static enum step http_read_body(struct conn *c)
{
	struct evbuffer *in = conn_input(c);
	size_t n;
	int r;

	switch (c->req.framing) {
	case BODY_NONE:
		break;
	case BODY_LENGTH:
		n = evbuffer_get_length(in);
		if (n > c->body_left)
			n = (size_t)c->body_left;
		if (n > 0 && http_consume_body(c, n) != 0)
			return STEP_NEXT;
		c->body_left -= n;
		if (c->body_left > 0)
			goto need_more;
		break;
	case BODY_CHUNKED:
		while ((r = http_read_chunked(c)) > 0)
			if (c->req.framing == BODY_NONE)
				break;
		if (r < 0)
			return STEP_NEXT;
		if (r == 0)
			goto need_more;
		break;
	}

	/* The body is complete. */
	c->response_started = false;
	c->gen_left = 0;
	c->gen_offset = 0;
	c->gen_chunked = false;
	c->gen_last_chunk = false;
	if (c->delay_ms > 0) {
		if (conn_arm_timer(c, c->delay_ms) != 0)
			return conn_abort(c);
		c->state = CONN_HTTP_DELAY;
	} else {
		c->state = CONN_HTTP_RESPOND;
	}
	return STEP_NEXT;

need_more:
	if (c->read_eof) {
		/* Truncated body: what was answered before still goes out. */
		c->state = CONN_FLUSH_CLOSE;
		return STEP_NEXT;
	}
	return STEP_WAIT;
}

static enum step http_wait_delay(struct conn *c)
{
	if (!c->timer_expired)
		return STEP_WAIT;
	c->state = CONN_HTTP_RESPOND;
	return STEP_NEXT;
}

/* The request is answered: on to the next one, or close. */
static enum step http_request_done(struct conn *c)
{
	flight_end(c);
	/* Keep the head buffer for the next request unless a big head
	 * grew it. */
	if (c->head_cap > 16 * 1024) {
		free(c->head);
		c->head = NULL;
		c->head_cap = 0;
	}
	c->head_method = false;
	c->state = c->keep_alive ? CONN_HTTP_HEAD : CONN_FLUSH_CLOSE;
	return STEP_NEXT;
}

static enum step http_respond(struct conn *c)
{
	struct evbuffer *out = conn_output(c);

	if (!c->response_started) {
		c->response_started = true;
		http_start_response(c);
		if (c->state != CONN_HTTP_RESPOND)
			return STEP_NEXT;
	}
	/* Generated bodies go out in pieces, only while the output buffer
	 * is below OUTPUT_HIGH: the write callback resumes us. */
	while (c->gen_left > 0) {
		size_t piece = c->gen_chunked ? CHUNKED_PIECE : BYTES_PIECE;
		size_t offset = (size_t)(c->gen_offset % PATTERN_PERIOD);

		if (evbuffer_get_length(out) > OUTPUT_HIGH)
			return STEP_WAIT;
		if (piece > c->gen_left)
			piece = (size_t)c->gen_left;
		if (c->gen_chunked)
			evbuffer_add_printf(out, "%zx\r\n", piece);
		evbuffer_add_reference(out, pattern + offset, piece, NULL,
				       NULL);
		if (c->gen_chunked)
			ADD_LITERAL(out, "\r\n");
		c->gen_left -= piece;
		c->gen_offset += piece;
	}
	if (c->gen_last_chunk) {
		ADD_LITERAL(out, "0\r\n\r\n");
		c->gen_last_chunk = false;
	}
	return http_request_done(c);
}

static enum step http_hang(struct conn *c)
{
	struct evbuffer *in = conn_input(c);

	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->read_eof) {
		c->state = CONN_FLUSH_CLOSE;
		return STEP_NEXT;
	}
	return STEP_WAIT;
}

/* The one driver: runs the connection's state machine until it has to
 * wait for an event. May free c. */
static void conn_drive(struct conn *c)
{
	for (;;) {
		enum step step = STEP_WAIT;

		switch (c->state) {
		case CONN_HTTP_HEAD:
			step = http_read_head(c);
			break;
		case CONN_HTTP_BODY:
			step = http_read_body(c);
			break;
		case CONN_HTTP_DELAY:
			step = http_wait_delay(c);
			break;
		case CONN_HTTP_RESPOND:
			step = http_respond(c);
			break;
		case CONN_HTTP_HANG:
			step = http_hang(c);
			break;
		case CONN_ECHO:
			step = conn_echo(c);
			break;
		case CONN_FLUSH_CLOSE:
			step = conn_flush_close(c);
			break;
		case CONN_LINGER:
			step = conn_linger(c);
			break;
		case CONN_DONE:
			conn_free(c);
			return;
		}
		if (step == STEP_WAIT)
			return;
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_drive(arg);
}

/* Called when the output has drained to OUTPUT_LOW or below. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_drive(arg);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR)
		c->state = CONN_DONE; /* RST, EPIPE: nobody to answer */
	else if (what & BEV_EVENT_EOF)
		c->read_eof = true;   /* bufferevent stops reading by itself */
	conn_drive(c);
}

/* ---------------------------------------------------------------- */
/* Listener, signals, main.                                          */

static void listener_accept_cb(struct evconnlistener *listener,
			       evutil_socket_t fd, struct sockaddr *sa,
			       int socklen, void *arg)
{
	struct conn *c;
	int one = 1;

	(void)listener;
	(void)sa;
	(void)socklen;
	(void)arg;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->bev = bufferevent_socket_new(replica.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	/* Small responses must leave at once, not wait for an ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
	bufferevent_set_max_single_read(c->bev, SINGLE_IO_MAX);
	bufferevent_set_max_single_write(c->bev, SINGLE_IO_MAX);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);

	c->next = replica.conns;
	if (c->next != NULL)
		c->next->prev = c;
	replica.conns = c;
	replica.connections_total++;
	replica.connections_active++;

	if (replica.mode == MODE_TCP) {
		c->state = CONN_ECHO;
		if (replica.greeting)
			evbuffer_add(conn_output(c), replica.name_line,
				     replica.name_line_len);
	} else {
		c->state = CONN_HTTP_HEAD;
	}
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	evconnlistener_enable(replica.listener);
}

/* Out of descriptors or memory: accepting again at once would spin, so
 * pause accepting for a moment (memcached does the same). */
static void listener_error_cb(struct evconnlistener *listener, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };

	(void)arg;
	fprintf(stderr, "replica: accept: %s\n", strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(listener);
		evtimer_add(replica.accept_retry, &tv);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(replica.base);
}

/* Binds and listens on replica.addr:replica.port; sets replica.port to
 * the real port. Returns the socket, or -1 with a message printed. */
static int listen_socket_open(void)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);
	char port[16];
	int fd = -1, one = 1, rc;

	snprintf(port, sizeof(port), "%d", replica.port);
	rc = getaddrinfo(replica.addr, port, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "replica: address %s: %s\n", replica.addr,
			gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		fprintf(stderr, "replica: socket: %s\n", strerror(errno));
		goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) {
		fprintf(stderr, "replica: cannot listen on %s:%d: %s\n",
			replica.addr, replica.port, strerror(errno));
		goto fail;
	}
	if (ss.ss_family == AF_INET)
		replica.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		replica.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	freeaddrinfo(ai);
	return fd;
fail:
	if (fd != -1)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: replica [-p PORT] [-a ADDR] [-n NAME] [-d DELAY_MS] [-o N]\n"
		"               [-m tcp|http] [-e] [-g] [-P PIDFILE]\n"
		"  -p PORT     listen port (default 9000, 0 = any)\n"
		"  -a ADDR     listen address (default 127.0.0.1)\n"
		"  -n NAME     replica name (default replica-PORT)\n"
		"  -d MS       delay every HTTP answer but /healthz, /stats, /control/*\n"
		"  -o N        overload: a request that finds c in service (itself\n"
		"              included) takes its delay x max(1, (c/N)^2)\n"
		"  -m MODE     http (default) or tcp (echo); -e = -m tcp\n"
		"  -g          tcp mode: send \"NAME\\n\" first on each connection\n"
		"  -P PIDFILE  write the process id there\n");
}

static int parse_options(int argc, char **argv)
{
	uint64_t v;
	int opt;

	while ((opt = getopt(argc, argv, "p:a:n:d:o:m:P:egh")) != -1) {
		switch (opt) {
		case 'p':
			if (parse_u64(optarg, strlen(optarg), 65535, &v) != 0) {
				fprintf(stderr, "replica: bad port: %s\n", optarg);
				return -1;
			}
			replica.port = (int)v;
			break;
		case 'a':
			replica.addr = optarg;
			break;
		case 'n':
			replica.name = optarg;
			break;
		case 'd':
			if (parse_u64(optarg, strlen(optarg), DELAY_MAX_MS, &v) != 0) {
				fprintf(stderr, "replica: bad delay: %s\n", optarg);
				return -1;
			}
			replica.delay_ms = (unsigned)v;
			break;
		case 'o':
			if (parse_u64(optarg, strlen(optarg), 1000000, &v) != 0 ||
			    v == 0) {
				fprintf(stderr, "replica: bad overload limit: %s\n",
					optarg);
				return -1;
			}
			replica.overload_n = (unsigned)v;
			break;
		case 'm':
			if (strcmp(optarg, "tcp") == 0) {
				replica.mode = MODE_TCP;
			} else if (strcmp(optarg, "http") == 0) {
				replica.mode = MODE_HTTP;
			} else {
				fprintf(stderr, "replica: bad mode: %s\n", optarg);
				return -1;
			}
			break;
		case 'e':
			replica.mode = MODE_TCP;
			break;
		case 'g':
			replica.greeting = true;
			break;
		case 'P':
			replica.pidfile = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "replica: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* The name goes into a header, a JSON string and bodies: printable ASCII
 * only. Builds "NAME\n" and the JSON-escaped form. */
static int name_prepare(void)
{
	size_t len = strlen(replica.name), j = 0;

	if (len == 0 || len > NAME_MAX_LEN) {
		fprintf(stderr, "replica: name must be 1..%d characters\n",
			NAME_MAX_LEN);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (replica.name[i] < 0x20 || replica.name[i] > 0x7e) {
			fprintf(stderr, "replica: name must be printable ASCII\n");
			return -1;
		}
	}
	replica.name_line = malloc(len + 2);
	replica.name_json = malloc(2 * len + 1);
	if (replica.name_line == NULL || replica.name_json == NULL) {
		fprintf(stderr, "replica: out of memory\n");
		return -1;
	}
	memcpy(replica.name_line, replica.name, len);
	replica.name_line[len] = '\n';
	replica.name_line[len + 1] = '\0';
	replica.name_line_len = len + 1;
	for (size_t i = 0; i < len; i++) {
		if (replica.name[i] == '"' || replica.name[i] == '\\')
			replica.name_json[j++] = '\\';
		replica.name_json[j++] = replica.name[i];
	}
	replica.name_json[j] = '\0';
	return 0;
}

static int pidfile_write(void)
{
	FILE *f = fopen(replica.pidfile, "w");

	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
	    fclose(f) != 0) {
		fprintf(stderr, "replica: %s: %s\n", replica.pidfile,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int fd, status = 1;

	if (parse_options(argc, argv) != 0) {
		usage(stderr);
		return 2;
	}
	/* A vanished client must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i % PATTERN_PERIOD);

	fd = listen_socket_open();
	if (fd == -1)
		return 1;
	if (replica.name == NULL) {
		snprintf(replica.name_buf, sizeof(replica.name_buf),
			 "replica-%d", replica.port);
		replica.name = replica.name_buf;
	}
	if (name_prepare() != 0) {
		close(fd);
		goto out;
	}

	/* Overload mode measures service times of a few ms: timers to the
	 * microsecond (timerfd), not epoll_wait's milliseconds. */
	if (replica.overload_n > 0) {
		struct event_config *cfg = event_config_new();

		if (cfg != NULL) {
			event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
			replica.base = event_base_new_with_config(cfg);
			event_config_free(cfg);
		}
	} else {
		replica.base = event_base_new();
	}
	if (replica.base == NULL) {
		close(fd);
		goto fail_libevent;
	}
	replica.listener = evconnlistener_new(replica.base, listener_accept_cb,
					      NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (replica.listener == NULL) {
		close(fd);
		goto fail_libevent;
	}
	evconnlistener_set_error_cb(replica.listener, listener_error_cb);
	replica.accept_retry = evtimer_new(replica.base, accept_retry_cb, NULL);
	replica.sigterm = evsignal_new(replica.base, SIGTERM, signal_cb, NULL);
	replica.sigint = evsignal_new(replica.base, SIGINT, signal_cb, NULL);
	if (replica.accept_retry == NULL || replica.sigterm == NULL ||
	    replica.sigint == NULL || evsignal_add(replica.sigterm, NULL) != 0 ||
	    evsignal_add(replica.sigint, NULL) != 0)
		goto fail_libevent;

	if (replica.pidfile != NULL && pidfile_write() != 0)
		goto out;
	printf("replica %s listening on %s:%d\n", replica.name, replica.addr,
	       replica.port);
	fflush(stdout);

	if (event_base_dispatch(replica.base) == -1)
		goto fail_libevent;
	status = 0;
	goto out;

fail_libevent:
	fprintf(stderr, "replica: libevent setup failed\n");
out:
	while (replica.conns != NULL)
		conn_free(replica.conns);
	if (replica.listener != NULL)
		evconnlistener_free(replica.listener);
	if (replica.accept_retry != NULL)
		event_free(replica.accept_retry);
	if (replica.sigterm != NULL)
		event_free(replica.sigterm);
	if (replica.sigint != NULL)
		event_free(replica.sigint);
	if (replica.base != NULL)
		event_base_free(replica.base);
	if (status == 0 && replica.pidfile != NULL)
		unlink(replica.pidfile);
	free(replica.name_line);
	free(replica.name_json);
	libevent_global_shutdown();
	return status;
}
