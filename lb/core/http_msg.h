/*
 * http_msg: HTTP/1.0 and HTTP/1.1 messages as the proxy sees them. Pure code:
 * no sockets, no libevent, no allocation, no clock, no global state.
 *
 * The HTTP session (http_session.c) drives it in this order, per message:
 *
 *   1. http_head_length() on the bytes received so far, resumably, until it
 *      returns the length of a complete head (or the caller's
 *      max_header_size is reached: 431);
 *   2. http_parse_request() / http_parse_response() on that complete,
 *      contiguous head: a verdict (400 / 431 / 501 / 502) or a struct
 *      http_head of offsets into the caller's buffer;
 *   3. http_rewrite_request() / http_rewrite_response() into an output
 *      buffer: the head to send on;
 *   4. http_body_feed() on the body bytes that follow, as they arrive: how
 *      many of them belong to this message (they are forwarded verbatim,
 *      chunked framing included) and where the next pipelined message starts.
 *
 * Grammar: one strict scan of our own parses request and response heads
 * (start line included). libhttp-parser (the packaged, fuzzed parser) used
 * to run after it on requests; scripts/callgrind.sh showed it costing a
 * tenth of lb's instructions per request, and a differential fuzz target
 * (test/fuzz/fuzz_http_response_diff.c) now checks that every request and
 * response lb accepts, libhttp-parser accepts too with the same method or
 * status, fields and framing. lb only uses libhttp-parser's method
 * names and enum. Request-targets must be origin-, absolute- or
 * asterisk-form (RFC 9112 3.2), as libhttp-parser wanted. Testing
 * libhttp-parser 2.9.4 showed that it accepts, and so we reject here:
 * obs-fold, whitespace between field name and colon, bare LF line endings,
 * HTAB in the request-target, several spaces between request-line parts,
 * versions other than 1.0 and 1.1 (HTTP/0.9, 1.2, 2.0), "chunked" applied
 * twice, status codes outside 100..599. It rejects by itself (and so do we,
 * before it): both Content-Length and Transfer-Encoding, several
 * Content-Lengths, invalid ones, NUL/CTL in fields, bare CR.
 *
 * Decisions (SPEC 7 leaves them open):
 * - Line endings are CRLF only. A bare LF anywhere in a head is 400 (502 for
 *   a response). http_head_length() still recognises an LF-terminated head so
 *   that such a request gets its 400 at once instead of waiting for a timeout.
 * - Up to two empty lines (CRLF) before a start line are ignored (RFC 9112
 *   2.2, clients that send CRLF after a POST body); they belong to the head,
 *   head.start is where the start line begins.
 * - Content-Length: exactly one header of 1*DIGIT (OWS around it), at most
 *   HTTP_MAX_CONTENT_LENGTH (2^64 - 7: libhttp-parser's cap, kept for
 *   responses too so that both sides agree). Duplicates, even identical ones, and lists
 *   ("5, 5") are refused, as nginx does: RFC 9110 8.6 allows it, and a proxy
 *   that merged them would have to rewrite what it forwards.
 * - Transfer-Encoding: a comma list over all its header lines, each element
 *   a bare token (no parameters, no empty elements) else 400. In a request:
 *   last coding not "chunked" -> 400; "chunked" twice -> 400; with
 *   Content-Length -> 400; in HTTP/1.0 -> 400 (RFC 9112 6.1); a coding before
 *   "chunked" that is not gzip, x-gzip, deflate, compress, x-compress -> 501
 *   (SPEC: "unknown transfer coding"); and then, as nginx, any coding before
 *   chunked -> 501 and several Transfer-Encoding lines -> 400: a request is
 *   framed chunked only by one "Transfer-Encoding: chunked" (any case), so
 *   that no server can read its framing otherwise. Responses: a comma list
 *   over all lines, a last coding other than chunked means "until close"
 *   (RFC 9112 6.3), and codings are the client's business.
 * - Several Host headers, or none in HTTP/1.1, -> 400 (RFC 9112 3.2).
 * - A method libhttp-parser does not know (it knows the 34 of enum
 *   http_method; methods are case-sensitive, so "get" is unknown) -> 501.
 *   CONNECT -> 501: lb is a reverse proxy, not a forward proxy.
 * - A response with both Content-Length and Transfer-Encoding -> 502
 *   (RFC 9112 6.3 says it "ought to be handled as an error"); a 101 the
 *   client did not ask for, or without Upgrade -> 502; duplicate
 *   Content-Length -> 502.
 * - Heads above libhttp-parser's built-in 80 KiB limit (HTTP_MAX_HEAD_SIZE,
 *   every byte of the head counted, ignored empty lines included) are 431
 *   (502 for a response, where we check the same limit ourselves).
 * - A request field whose name has an underscore and, read with '-' for
 *   '_', is one this module recognises (Transfer_Encoding, Content_Length,
 *   Connection's hop-by-hop kin, Host, Expect, X_Forwarded_For, ...) is a
 *   400: servers that fold '_' into '-' (CGI-style variables) would take it
 *   for the real one, which lb framed or set differently (smuggling, a
 *   forged client address). Other underscore names pass unchanged (nginx
 *   drops them all, HAProxy passes them all).
 * - Field names are exact tokens (RFC 9110 5.1): libhttp-parser 2.9.4 takes
 *   any name that merely starts with "Transfer-Encoding" ("Transfer-
 *   Encodingx", "Transfer-Encoding-Foo") for a Transfer-Encoding in its
 *   checks (with Content-Length: refused; after a real Transfer-Encoding:
 *   its value counts as the last coding). A request with such a field is a
 *   400 (a server with the same habit would frame it differently); a
 *   response is accepted, the field being an ordinary unknown one.
 * - Status line (responses, RFC 9112 4): "HTTP/1.0" or "HTTP/1.1" exactly,
 *   one SP, three digits 100..599, then either the end of the line, or one
 *   SP and a reason-phrase of HTAB / SP / VCHAR / obs-text (possibly empty:
 *   "HTTP/1.1 404" and "HTTP/1.1 404 " are both accepted, as RFC 9112 4
 *   lets a recipient do). A reason starting with SP ("200  OK") keeps that
 *   SP. libhttp-parser also accepted any control byte but CR/LF in the
 *   reason, several SPs before the code, and codes 000..999: refused.
 */
#ifndef LB_HTTP_MSG_H
#define LB_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h> /* enum http_method */

/* A head longer than this (bytes, ignored empty lines included): 431 (502
 * for a response). libhttp-parser's HTTP_MAX_HEADER_SIZE, which it applies to
 * requests; http_parse_response() applies it itself. */
#define HTTP_MAX_HEAD_SIZE (80 * 1024)

/* The largest Content-Length accepted: libhttp-parser refuses any value
 * whose leading digits exceed (2^64 - 11) / 10, i.e. anything above
 * 2^64 - 7; the response side, parsed without it, keeps the same cap. */
#define HTTP_MAX_CONTENT_LENGTH (UINT64_MAX - 6)

/* More header fields than a head has room for (http_head_init): 431 (502
 * for a response). The default room: global.max_header_fields. */
#define HTTP_DEFAULT_MAX_HEADERS 100

/* Empty lines tolerated before a start line (each "\r\n"). */
#define HTTP_MAX_LEADING_EMPTY_LINES 2

/* Chunked body limits: a chunk-size line (size and extensions) and the whole
 * trailer section are streamed, not buffered, but must stay bounded. */
#define HTTP_MAX_CHUNK_LINE 4096
#define HTTP_MAX_TRAILERS 16384

/* The outcome of parsing a head, and the status lb answers with. */
enum http_verdict {
	HTTP_MSG_OK = 0,
	HTTP_MSG_BAD_REQUEST, /* 400, then close */
	HTTP_MSG_TOO_LARGE, /* 431: too many header fields (requests only) */
	HTTP_MSG_NOT_IMPLEMENTED, /* 501: unknown transfer coding or method */
	HTTP_MSG_BAD_RESPONSE, /* 502: the server's head is invalid */
};

/* How the body of a message ends (RFC 9112 6.3). */
enum http_framing {
	HTTP_FRAMING_NONE, /* no body: the next message starts right after the head */
	HTTP_FRAMING_LENGTH, /* content_length bytes (> 0) */
	HTTP_FRAMING_CHUNKED, /* chunked coding, relayed as is */
	HTTP_FRAMING_UNTIL_CLOSE, /* responses only: the body ends when the server closes */
	HTTP_FRAMING_TUNNEL, /* 101 response: bytes flow both ways until either side closes */
};

/* Header fields the module recognises; everything else is HTTP_HDR_OTHER. */
enum http_header_id {
	HTTP_HDR_OTHER = 0,
	HTTP_HDR_CONNECTION,
	HTTP_HDR_PROXY_CONNECTION,
	HTTP_HDR_KEEP_ALIVE,
	HTTP_HDR_TE,
	HTTP_HDR_TRAILER,
	HTTP_HDR_UPGRADE,
	HTTP_HDR_TRANSFER_ENCODING,
	HTTP_HDR_CONTENT_LENGTH,
	HTTP_HDR_HOST,
	HTTP_HDR_EXPECT,
	HTTP_HDR_X_FORWARDED_FOR,
	HTTP_HDR_X_FORWARDED_PROTO,
	HTTP_HDR_X_REQUEST_ID,
	HTTP_HDR_X_CLIENT_SUBJECT,
};

/* A run of bytes of the head buffer: buf + off, len bytes. */
struct http_span {
	uint32_t off;
	uint32_t len;
};

/* flags of struct http_header */
#define HTTP_HEADER_HOP_BY_HOP 0x01 /* RFC 9110 7.6.1, by name or named in Connection */

/* One field line. The line starts at name.off and ends (CRLF included) where
 * the next one starts. value excludes the OWS around it. */
struct http_header {
	struct http_span name;
	struct http_span value;
	uint8_t id; /* enum http_header_id */
	uint8_t flags; /* HTTP_HEADER_* */
};

/*
 * A parsed head. Every span is an offset into the buffer that was parsed: the
 * struct is only meaningful together with that buffer, which the caller
 * keeps unchanged (it may move it, offsets stay valid) while it uses it.
 * Fixed size; its fields live in an array of the caller's (http_head_init),
 * so that the field limit is a setting (global.max_header_fields).
 */
struct http_head {
	bool is_request;
	uint32_t start; /* start line offset (after ignored empty lines) */
	uint32_t length; /* whole head, final empty line included */
	uint8_t version_minor; /* HTTP/1.<version_minor>: 0 or 1 */

	/* requests */
	enum http_method method;
	const char *method_name; /* static string, e.g. "GET" */
	struct http_span target; /* request-target as received */

	/* responses */
	int status; /* 100..599 */
	struct http_span reason; /* may be empty */
	bool interim; /* 1xx other than 101: forward it, another head follows */

	uint32_t nheaders;
	uint32_t max_headers; /* room in headers[]: set by http_head_init, kept by parsing */
	struct http_header *headers; /* the caller's array */

	enum http_framing framing;
	uint64_t content_length; /* HTTP_FRAMING_LENGTH only, else 0 */
	bool transfer_coded; /* response: a transfer coding besides chunked (gzip, ...) */

	/* Request: the client wants the connection kept after the response.
	 * Response: the server connection may be reused after this response.
	 * From the version and the Connection tokens (close, keep-alive); false
	 * for UNTIL_CLOSE and TUNNEL framings. */
	bool keep_alive;
	bool upgrade; /* request: HTTP/1.1, Connection: upgrade and an Upgrade header */
	bool expect_continue; /* request: HTTP/1.1 and Expect: 100-continue */

	/* Index in headers[] of the first such field, -1 when absent. */
	int host_index;
	int request_id_index; /* X-Request-Id */
	int forwarded_for_index; /* X-Forwarded-For */

	const char *error; /* why the verdict is not OK (static string), else NULL */
};

/*
 * Finds the end of a head: the first empty line after a non-empty one. buf
 * holds the bytes received so far for this message (starting at its first
 * byte); *scan_pos is 0 for a new message and is updated so that the next
 * call, with the same bytes plus more, scans only what is new. The bytes
 * already passed must not change between calls (the buffer may move).
 *
 * Returns the head length (through the final LF) or 0 when incomplete. The
 * caller answers 431 itself when 0 is returned and len >= max_header_size,
 * or when the returned length exceeds it. An LF-only head ("\n\n") is found
 * too, and then refused by the parse functions.
 */
size_t http_head_length(const char *buf, size_t len, size_t *scan_pos);

/* Give h an array of `capacity` fields to parse into. Call once, before
 * the first parse; the array must live as long as h is used. */
static inline void http_head_init(struct http_head *h, struct http_header *fields, uint32_t capacity)
{
	h->headers = fields;
	h->max_headers = capacity;
	h->nheaders = 0;
}

/*
 * Can buf[0..len), an incomplete request head, still become a valid one?
 * Checks the request line as far as it has arrived (method token, SP,
 * visible target, SP, "HTTP/" DIGIT "." DIGIT, CRLF), so that garbage gets
 * its 400 after a few bytes instead of after timeouts.header, as HAProxy
 * and nginx answer. Field lines are left to http_parse_request. Never says
 * false to the prefix of a head that http_parse_request would accept.
 */
bool http_request_prefix_valid(const char *buf, size_t len);

/* Longest method taken for a request line still arriving (the longest one
 * libhttp-parser knows has 11 letters): a longer token is a 400. */
#define HTTP_MAX_METHOD_LENGTH 32

/*
 * Parses a complete request head: buf[0..len) is exactly what
 * http_head_length() returned (anything else is a 400). Fills *out (also on
 * error, where only out->error is meaningful).
 */
enum http_verdict http_parse_request(const char *buf, size_t len, struct http_head *out);

/*
 * Parses a complete response head from a server. request_method and
 * request_upgrade come from the request it answers: responses to HEAD have
 * no body, a 101 is only valid when the request asked for an upgrade.
 * Returns HTTP_MSG_OK or HTTP_MSG_BAD_RESPONSE.
 */
enum http_verdict http_parse_response(const char *buf, size_t len, enum http_method request_method,
				      bool request_upgrade, struct http_head *out);

/* The value of cookie `name` in a parsed head (the first one, searching
 * every Cookie field: "a=1; b=2"), as a span of buf. False when absent. */
bool http_cookie_find(const char *buf, const struct http_head *h, const char *name, size_t name_len,
		      struct http_span *value);

/* The status code lb answers for a verdict: 400, 431, 501, 502 (0 for OK). */
int http_verdict_status(enum http_verdict verdict);

/* Index in h->headers of the first field called name (case-insensitive), or -1. */
int http_header_find(const char *buf, const struct http_head *h, const char *name, size_t name_len);

/*
 * Whether the client connection stays open after this response: the client
 * wants keep-alive and the response's end is known without closing.
 * (Interim responses never end the exchange: do not call it for them.)
 */
bool http_client_keep_alive(const struct http_head *request, const struct http_head *response);

/*
 * Streaming body framing. Initialise from the parsed head, then feed the body
 * bytes as they arrive, in spans of any size. http_body_feed() sets *used to
 * the number of bytes of the span that belong to this message; the caller
 * forwards those verbatim and, on HTTP_BODY_DONE, the bytes after them are
 * the next message. On HTTP_BODY_ERROR (invalid chunked syntax, or limits
 * exceeded) *used is the offset of the offending byte; the caller answers
 * 400 (or 502) and closes. Feeding after DONE returns DONE with *used = 0.
 *
 * Chunked syntax is checked strictly (RFC 9112 7.1): chunk-size is 1*HEXDIG
 * (no sign, no "0x", no whitespace, overflow of 64 bits is an error), then
 * optionally BWS ";" extensions (ignored, VCHAR/obs-text/SP/HTAB), CRLF, the
 * data, CRLF; the last chunk is "0", then trailer fields (token ":" value
 * CRLF, no obs-fold), then CRLF.
 */
enum http_body_status {
	HTTP_BODY_MORE, /* all of the span was used, the message goes on */
	HTTP_BODY_DONE, /* the message ended after *used bytes */
	HTTP_BODY_ERROR,
};

struct http_body {
	enum http_framing framing;
	int state; /* chunked decoder state, private */
	uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in this chunk's data */
	uint64_t payload; /* decoded payload bytes so far (chunk data, not framing) */
	uint32_t line_len; /* bytes of the current chunk-size line */
	uint32_t trailer_len; /* bytes of the trailer section */
};

/* content_length is used only for HTTP_FRAMING_LENGTH. */
void http_body_init(struct http_body *body, enum http_framing framing, uint64_t content_length);

/* Convenience: init from a parsed head. */
void http_body_init_head(struct http_body *body, const struct http_head *h);

enum http_body_status http_body_feed(struct http_body *body, const char *data, size_t len, size_t *used);

/* True once the message is complete (HTTP_BODY_DONE was returned, or NONE). */
bool http_body_done(const struct http_body *body);

/* Decoding (HTTP/2 takes the payload without the chunked framing): how
 * many of the next bytes are payload (chunk data, Content-Length bytes,
 * SIZE_MAX until close), 0 when the next byte is framing; and whether the
 * next bytes belong to the trailer section (its field lines and the final
 * CRLF). Feed payload runs whole and framing byte by byte to tell them
 * apart. */
size_t http_body_payload_ahead(const struct http_body *body);
bool http_body_in_trailers(const struct http_body *body);

/*
 * The peer closed: true when that is a normal end of this body (framing
 * UNTIL_CLOSE or TUNNEL, or already done), false when the body is truncated.
 */
bool http_body_eof_ok(const struct http_body *body);

/*
 * Rewriting. Both functions write a complete head (ending with the empty
 * line) into out[0..cap) and return its length, or 0 when it does not fit
 * (a head is never empty). They need the buffer h was parsed from.
 */
struct http_request_forward {
	const char *client_addr; /* appended to X-Forwarded-For, e.g. "192.0.2.7" */
	size_t client_addr_len;
	const char *request_id; /* X-Request-Id to add when the request has none */
	size_t request_id_len;
	bool server_keep_alive; /* lb wants to reuse the server connection after this */
	bool https; /* the client came over TLS */
	const char *client_subject; /* its verified certificate's subject, or NULL */
};

/*
 * The request to send to the server: request line unchanged; header fields
 * unchanged and in order except that hop-by-hop ones (Connection,
 * Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade and every field named
 * in Connection) are removed, but never Transfer-Encoding, Content-Length
 * nor Host (the body is relayed as framed, and a Connection token must not
 * unframe it); X-Forwarded-For values (all such fields) are merged into one
 * field with the client address appended; X-Forwarded-Proto is replaced by
 * "http" or "https"; X-Client-Subject is removed, and set to
 * fwd->client_subject if any; X-Request-Id is kept, or fwd->request_id added. Then Connection:
 * - upgrade request: Upgrade is kept and "Connection: upgrade" is sent;
 * - else !server_keep_alive: "Connection: close";
 * - else HTTP/1.0 request: "Connection: keep-alive" (1.0 defaults to close);
 * - else none (HTTP/1.1 defaults to keep-alive).
 * The added fields come after the kept ones.
 */
size_t http_rewrite_request(const char *buf, const struct http_head *req, const struct http_request_forward *fwd,
			    char *out, size_t cap);

struct http_response_forward {
	bool close_client; /* lb closes the client connection after this response */
	bool client_http10; /* the request was HTTP/1.0 */
};

/*
 * The response to send to the client: status line unchanged, header fields
 * minus hop-by-hop ones (Transfer-Encoding kept), then:
 * - 101: Upgrade kept and "Connection: upgrade";
 * - interim 1xx: nothing added (fwd is ignored);
 * - close_client: "Connection: close";
 * - else HTTP/1.0 client: "Connection: keep-alive";
 * - else none.
 */
size_t http_rewrite_response(const char *buf, const struct http_head *resp, const struct http_response_forward *fwd,
			     char *out, size_t cap);

/*
 * lb's own answer: "HTTP/1.1 <status> <reason>", Content-Type: text/plain,
 * Content-Length, "Retry-After: 1" for 503, "Connection: close" when close,
 * and a body "<status> <reason>\n" (the head only, with the same
 * Content-Length, for a HEAD request: RFC 9110 9.3.2). Any status
 * libhttp-parser names (400, 408, 413, 431, 501, 502, 503, 504, ...).
 * Returns the length, or 0 when the status is unknown or it does not fit.
 */
size_t http_error_response(int status, bool close, bool head_request, char *out, size_t cap);

#endif
