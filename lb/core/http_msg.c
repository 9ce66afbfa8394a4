/*
 * http_msg: HTTP/1.x heads: finding them, parsing requests and responses.
 * Body framing is http_body.c, rewriting http_rewrite.c; http_msg.h is the
 * contract of all three, with the decisions taken.
 *
 * Parsing a head is two linear passes over bytes already in cache:
 *   1. scan_head(): our strict line-by-line scan. It validates every byte
 *      of the start line and of each field line (CRLF only, no obs-fold, no
 *      whitespace before the colon, token names, field-vchar values) and
 *      records the field spans, classified by name;
 *   2. request_semantics() / response_semantics(): method, target form,
 *      framing, keep-alive, upgrade, Host, hop-by-hop marking from the
 *      recognised fields only.
 *
 * libhttp-parser used to run between them; it cost a tenth (requests) to a
 * quarter (responses) of lb's instructions per proxied request
 * (scripts/callgrind.sh). test/fuzz/fuzz_http_response_diff.c holds what
 * this accepts to libhttp-parser's verdicts, both directions.
 */
#include "http_msg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "http_chars.h"

static enum http_header_id classify_header(const char *name, size_t len)
{
	switch (len) {
	case 2:
		if (EQ_LIT(name, len, "te"))
			return HTTP_HDR_TE;
		break;
	case 4:
		if (EQ_LIT(name, len, "host"))
			return HTTP_HDR_HOST;
		break;
	case 6:
		if (EQ_LIT(name, len, "expect"))
			return HTTP_HDR_EXPECT;
		break;
	case 7:
		if (EQ_LIT(name, len, "upgrade"))
			return HTTP_HDR_UPGRADE;
		if (EQ_LIT(name, len, "trailer"))
			return HTTP_HDR_TRAILER;
		break;
	case 10:
		if (EQ_LIT(name, len, "connection"))
			return HTTP_HDR_CONNECTION;
		if (EQ_LIT(name, len, "keep-alive"))
			return HTTP_HDR_KEEP_ALIVE;
		break;
	case 12:
		if (EQ_LIT(name, len, "x-request-id"))
			return HTTP_HDR_X_REQUEST_ID;
		break;
	case 14:
		if (EQ_LIT(name, len, "content-length"))
			return HTTP_HDR_CONTENT_LENGTH;
		break;
	case 15:
		if (EQ_LIT(name, len, "x-forwarded-for"))
			return HTTP_HDR_X_FORWARDED_FOR;
		break;
	case 16:
		if (EQ_LIT(name, len, "proxy-connection"))
			return HTTP_HDR_PROXY_CONNECTION;
		if (EQ_LIT(name, len, "x-client-subject"))
			return HTTP_HDR_X_CLIENT_SUBJECT;
		break;
	case 17:
		if (EQ_LIT(name, len, "transfer-encoding"))
			return HTTP_HDR_TRANSFER_ENCODING;
		if (EQ_LIT(name, len, "x-forwarded-proto"))
			return HTTP_HDR_X_FORWARDED_PROTO;
		break;
	default:
		break;
	}
	return HTTP_HDR_OTHER;
}

/* ------------------------------------------------------------------------ */
/* Finding the head                                                          */

size_t http_head_length(const char *buf, size_t len, size_t *scan_pos)
{
	/*
	 * The leading CR/LF bytes (ignored empty lines) are not end candidates.
	 * Counting them is O(1): at most 2 * HTTP_MAX_LEADING_EMPTY_LINES bytes;
	 * more empty lines end the head early and the parser refuses it.
	 * scan_pos never points before them, and when it points at an LF that
	 * LF still awaits its lookahead.
	 */
	size_t lead = 0;
	while (lead < len && lead < 2 * HTTP_MAX_LEADING_EMPTY_LINES && (buf[lead] == '\r' || buf[lead] == '\n'))
		lead++;

	size_t i = *scan_pos > lead ? *scan_pos : lead;
	while (i < len) {
		const char *lf = memchr(buf + i, '\n', len - i);
		if (lf == NULL)
			break;
		size_t j = (size_t)(lf - buf);
		if (j + 1 >= len) {
			*scan_pos = j;
			return 0;
		}
		if (buf[j + 1] == '\n')
			return j + 2;
		if (buf[j + 1] == '\r') {
			if (j + 2 >= len) {
				*scan_pos = j;
				return 0;
			}
			if (buf[j + 2] == '\n')
				return j + 3;
		}
		i = j + 1;
	}
	*scan_pos = len;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Pass 1: the strict pre-scan                                               */

static enum http_verdict fail(struct http_head *h, enum http_verdict verdict, const char *why)
{
	h->error = why;
	return verdict;
}

static void head_reset(struct http_head *h, bool is_request)
{
	h->is_request = is_request;
	h->start = 0;
	h->length = 0;
	h->version_minor = 1;
	h->method = HTTP_GET;
	h->method_name = NULL;
	h->target = (struct http_span){ 0, 0 };
	h->status = 0;
	h->reason = (struct http_span){ 0, 0 };
	h->interim = false;
	h->nheaders = 0;
	h->framing = HTTP_FRAMING_NONE;
	h->content_length = 0;
	h->transfer_coded = false;
	h->keep_alive = false;
	h->upgrade = false;
	h->expect_continue = false;
	h->host_index = -1;
	h->request_id_index = -1;
	h->forwarded_for_index = -1;
	h->error = NULL;
}

/* "HTTP/1.0" or "HTTP/1.1" at buf[0..8). -1 when it is another valid-looking
 * version, -2 when it is not a version at all. */
static int parse_version(const char *v)
{
	if (memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return -2;
	if (v[5] == '1' && (v[7] == '0' || v[7] == '1'))
		return v[7] - '0';
	return -1;
}

bool http_request_prefix_valid(const char *buf, size_t len)
{
	size_t p = 0;
	/* Ignored empty lines, as scan_head takes them; a lone CR may be the
	 * start of one. */
	for (int n = 0; n < HTTP_MAX_LEADING_EMPTY_LINES && p < len && buf[p] == '\r'; n++) {
		if (p + 1 == len)
			return true;
		if (buf[p + 1] != '\n')
			return false;
		p += 2;
	}
	size_t i = p;
	while (i < len && i - p < HTTP_MAX_METHOD_LENGTH && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == len)
		return true;
	if (i == p || buf[i] != ' ')
		return false;
	size_t t = ++i;
	while (i < len && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
		i++;
	if (i == len)
		return true;
	if (i == t || buf[i] != ' ')
		return false;
	static const char version[] = "HTTP/d.d\r\n"; /* d: a digit */
	for (size_t v = 0, k = i + 1; k < len && v < sizeof(version) - 1; v++, k++) {
		unsigned char c = (unsigned char)buf[k];
		if (version[v] == 'd' ? (c < '0' || c > '9') : c != (unsigned char)version[v])
			return false;
	}
	return true;
}

/* method SP request-target SP HTTP-version, line = buf[p..eol). */
static enum http_verdict scan_request_line(const char *buf, size_t p, size_t eol, struct http_head *h)
{
	size_t i = p;
	while (i < eol && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == p || i == eol || buf[i] != ' ')
		return fail(h, HTTP_MSG_BAD_REQUEST, "invalid method in request line");
	size_t t = ++i;
	/* request-target: visible ASCII only (RFC 9112 3.2); SP, HTAB, controls,
	 * DEL and non-ASCII bytes are refused. */
	while (i < eol && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
		i++;
	if (i == t || i == eol || buf[i] != ' ')
		return fail(h, HTTP_MSG_BAD_REQUEST, "invalid request-target");
	h->target.off = (uint32_t)t;
	h->target.len = (uint32_t)(i - t);
	i++;
	if (eol - i != 8)
		return fail(h, HTTP_MSG_BAD_REQUEST, "invalid HTTP version");
	int minor = parse_version(buf + i);
	if (minor < 0)
		return fail(h, HTTP_MSG_BAD_REQUEST,
			    minor == -1 ? "unsupported HTTP version" : "invalid HTTP version");
	h->version_minor = (uint8_t)minor;
	return HTTP_MSG_OK;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase], line = buf[p..eol). The SP after
 * the code is optional: many servers omit it when the reason is empty. */
static enum http_verdict scan_status_line(const char *buf, size_t p, size_t eol, struct http_head *h)
{
	if (eol - p < 12 || buf[p + 8] != ' ')
		return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid status line");
	int minor = parse_version(buf + p);
	if (minor < 0)
		return fail(h, HTTP_MSG_BAD_RESPONSE, "unsupported HTTP version");
	h->version_minor = (uint8_t)minor;
	const char *s = buf + p + 9;
	if (s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid status code");
	h->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	size_t i = p + 12;
	if (i < eol) {
		if (buf[i] != ' ')
			return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid status line");
		i++;
	}
	h->reason.off = (uint32_t)i;
	for (; i < eol; i++)
		if (!is_field_char((unsigned char)buf[i]))
			return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid character in reason phrase");
	h->reason.len = (uint32_t)(eol - h->reason.off);
	return HTTP_MSG_OK;
}

/*
 * Validates the whole head line by line and records its fields. Errors are
 * reported with `bad` (400 or 502) except too many fields (431 for requests).
 */
/* A name with '_' that, read with '-' for '_', is a recognised field (see
 * http_msg.h). The longest recognised name has 17 bytes. */
static bool disguised_header(const char *name, size_t len)
{
	char folded[17];
	if (len > sizeof(folded) || memchr(name, '_', len) == NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		folded[i] = name[i] == '_' ? '-' : name[i];
	return classify_header(folded, len) != HTTP_HDR_OTHER;
}

static enum http_verdict scan_head(const char *buf, size_t len, struct http_head *h)
{
	const enum http_verdict bad = h->is_request ? HTTP_MSG_BAD_REQUEST : HTTP_MSG_BAD_RESPONSE;
	size_t p = 0;

	if (len > UINT32_MAX)
		return fail(h, h->is_request ? HTTP_MSG_TOO_LARGE : bad, "head too large");
	for (int n = 0; n < HTTP_MAX_LEADING_EMPTY_LINES && p + 1 < len && buf[p] == '\r' && buf[p + 1] == '\n'; n++)
		p += 2;
	h->start = (uint32_t)p;

	const char *lf = p < len ? memchr(buf + p, '\n', len - p) : NULL;
	if (lf == NULL)
		return fail(h, bad, "incomplete head");
	size_t eol = (size_t)(lf - buf);
	if (eol == p || buf[eol - 1] != '\r')
		return fail(h, bad, eol == p ? "empty start line" : "bare LF in start line");
	eol--; /* at the CR */
	enum http_verdict v = h->is_request ? scan_request_line(buf, p, eol, h) : scan_status_line(buf, p, eol, h);
	if (v != HTTP_MSG_OK)
		return v;

	/*
	 * Field lines in one pass per byte, no memchr: `end` is just past the
	 * last LF of the buffer, so that each byte loop below (tchar, OWS,
	 * field-char: LF is none of them) stops at an LF at the latest, and a
	 * line starting at or after `end` has no LF: incomplete. A line is valid
	 * only if its value ends at a CR followed by LF, which is then the first
	 * LF of the line: the same lines, cut at the same places, as splitting
	 * at each LF first would give.
	 */
	size_t end = len;
	while (end > p && buf[end - 1] != '\n')
		end--;
	for (p = eol + 2;;) {
		if (p >= end)
			return fail(h, bad, "incomplete head");
		unsigned char c = (unsigned char)buf[p];
		if (c == '\r' && buf[p + 1] == '\n') { /* the empty line; p + 1 < end: buf[p] is no LF */
			if (p + 2 != len)
				return fail(h, bad, "bytes after the end of the head");
			break;
		}
		if (is_ows(c))
			return fail(h, bad, "obs-fold (field line starting with whitespace)");

		size_t i = p;
		while (is_tchar((unsigned char)buf[i]))
			i++;
		if (buf[i] != ':') {
			if (buf[i] == '\n' || (buf[i] == '\r' && buf[i + 1] != '\n'))
				return fail(h, bad, "bare LF or CR in header section");
			return fail(h, bad, is_ows((unsigned char)buf[i]) ? "whitespace between field name and colon"
									  : "invalid character in field name");
		}
		if (i == p)
			return fail(h, bad, "empty field name");
		size_t name_end = i++;
		while (is_ows((unsigned char)buf[i]))
			i++;
		size_t value_start = i;
		while (is_field_char((unsigned char)buf[i]))
			i++;
		if (buf[i] != '\r' || buf[i + 1] != '\n') /* i < end - 1 when buf[i] is CR */
			return fail(h, bad, buf[i] == '\n' || buf[i] == '\r' ? "bare LF or CR in header section"
									    : "invalid character in field value");
		eol = i;
		while (i > value_start && is_ows((unsigned char)buf[i - 1]))
			i--;

		if (h->nheaders == h->max_headers)
			return fail(h, h->is_request ? HTTP_MSG_TOO_LARGE : bad, "too many header fields");
		if (h->is_request && disguised_header(buf + p, name_end - p))
			return fail(h, bad, "underscore in the name of a framing, hop-by-hop or forwarding field");
		struct http_header *f = &h->headers[h->nheaders++];
		f->name.off = (uint32_t)p;
		f->name.len = (uint32_t)(name_end - p);
		f->value.off = (uint32_t)value_start;
		f->value.len = (uint32_t)(i - value_start);
		f->id = (uint8_t)classify_header(buf + p, name_end - p);
		f->flags = 0;
		p = eol + 2;
	}
	h->length = (uint32_t)len;
	return HTTP_MSG_OK;
}

/* ------------------------------------------------------------------------ */
/* Pass 2: semantics                                                         */

/* Calls fn(ctx, element, len) for each element of a comma list, OWS trimmed;
 * empty elements are passed too (len 0). Stops when fn returns false. */
static bool for_each_element(const char *v, size_t n, bool (*fn)(void *, const char *, size_t), void *ctx)
{
	size_t i = 0;
	for (;;) {
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (s < e && is_ows((unsigned char)v[s]))
			s++;
		while (e > s && is_ows((unsigned char)v[e - 1]))
			e--;
		if (!fn(ctx, v + s, e - s))
			return false;
		if (i == n)
			return true;
		i++;
	}
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

struct codings {
	bool invalid; /* an empty element, or one with parameters or junk */
	bool last_chunked;
	unsigned chunked_count;
	unsigned count; /* elements in all */
	bool unknown; /* a coding other than chunked we do not know */
};

static bool note_coding(void *ctx, const char *s, size_t n)
{
	struct codings *c = ctx;
	if (!is_token(s, n)) {
		c->invalid = true;
		return false;
	}
	c->count++;
	c->last_chunked = EQ_LIT(s, n, "chunked");
	if (c->last_chunked) {
		c->chunked_count++;
	} else if (!EQ_LIT(s, n, "gzip") && !EQ_LIT(s, n, "x-gzip") && !EQ_LIT(s, n, "deflate") &&
		   !EQ_LIT(s, n, "compress") && !EQ_LIT(s, n, "x-compress")) {
		c->unknown = true;
	}
	return true;
}

struct connection_tokens {
	bool close;
	bool keep_alive;
	bool upgrade;
	bool others; /* tokens naming other fields */
};

static bool note_connection_token(void *ctx, const char *s, size_t n)
{
	struct connection_tokens *t = ctx;
	if (EQ_LIT(s, n, "close"))
		t->close = true;
	else if (EQ_LIT(s, n, "keep-alive"))
		t->keep_alive = true;
	else if (EQ_LIT(s, n, "upgrade"))
		t->upgrade = true;
	else if (n > 0)
		t->others = true;
	return true;
}

/* Fields a Connection token may not remove: removing them would change the
 * framing or the routing of what is forwarded. */
static bool protected_from_connection(uint8_t id)
{
	return id == HTTP_HDR_TRANSFER_ENCODING || id == HTTP_HDR_CONTENT_LENGTH || id == HTTP_HDR_HOST;
}

struct mark_ctx {
	struct http_head *h;
	const char *buf;
};

static bool mark_named_field(void *ctx, const char *s, size_t n)
{
	struct mark_ctx *m = ctx;
	if (n == 0 || EQ_LIT(s, n, "close") || EQ_LIT(s, n, "keep-alive") || EQ_LIT(s, n, "upgrade"))
		return true;
	for (uint32_t i = 0; i < m->h->nheaders; i++) {
		struct http_header *f = &m->h->headers[i];
		if (f->name.len == n && !protected_from_connection(f->id) && equal_nocase(m->buf + f->name.off, s, n))
			f->flags |= HTTP_HEADER_HOP_BY_HOP;
	}
	return true;
}

/* 1*DIGIT, at most HTTP_MAX_CONTENT_LENGTH. */
static bool parse_content_length(const char *s, size_t n, uint64_t *out)
{
	if (n == 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (HTTP_MAX_CONTENT_LENGTH - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* RFC 3986 host [":" port] bytes: unreserved, sub-delims, ":", "[", "]", "%". */
static bool valid_host(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (strchr("-._~!$&'()*+,;=:[]%", c) == NULL || c == '\0')
			return false;
	}
	return true;
}

/* What the recognised fields say, gathered in one pass. */
struct field_summary {
	unsigned content_lengths;
	uint64_t content_length;
	bool content_length_invalid;
	unsigned transfer_encodings;
	struct codings codings;
	unsigned hosts;
	bool host_invalid;
	struct connection_tokens connection;
	bool has_upgrade;
	bool expect_continue;
};

static void summarise_fields(const char *buf, struct http_head *h, struct field_summary *s)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < h->nheaders; i++) {
		struct http_header *f = &h->headers[i];
		const char *v = buf + f->value.off;
		size_t n = f->value.len;
		switch (f->id) {
		case HTTP_HDR_CONTENT_LENGTH:
			if (++s->content_lengths == 1 && !parse_content_length(v, n, &s->content_length))
				s->content_length_invalid = true;
			break;
		case HTTP_HDR_TRANSFER_ENCODING:
			s->transfer_encodings++;
			if (!s->codings.invalid)
				for_each_element(v, n, note_coding, &s->codings);
			break;
		case HTTP_HDR_HOST:
			if (++s->hosts == 1) {
				h->host_index = (int)i;
				s->host_invalid = !valid_host(v, n);
			}
			break;
		case HTTP_HDR_CONNECTION:
			f->flags |= HTTP_HEADER_HOP_BY_HOP;
			for_each_element(v, n, note_connection_token, &s->connection);
			break;
		case HTTP_HDR_UPGRADE:
			f->flags |= HTTP_HEADER_HOP_BY_HOP;
			if (n > 0)
				s->has_upgrade = true;
			break;
		case HTTP_HDR_PROXY_CONNECTION:
		case HTTP_HDR_KEEP_ALIVE:
		case HTTP_HDR_TE:
		case HTTP_HDR_TRAILER:
			f->flags |= HTTP_HEADER_HOP_BY_HOP;
			break;
		case HTTP_HDR_EXPECT:
			if (EQ_LIT(v, n, "100-continue"))
				s->expect_continue = true;
			break;
		case HTTP_HDR_X_FORWARDED_FOR:
			if (h->forwarded_for_index < 0)
				h->forwarded_for_index = (int)i;
			break;
		case HTTP_HDR_X_REQUEST_ID:
			if (h->request_id_index < 0)
				h->request_id_index = (int)i;
			break;
		default:
			break;
		}
	}
	if (s->connection.others) {
		struct mark_ctx m = { h, buf };
		for (uint32_t i = 0; i < h->nheaders; i++)
			if (h->headers[i].id == HTTP_HDR_CONNECTION)
				for_each_element(buf + h->headers[i].value.off, h->headers[i].value.len,
						 mark_named_field, &m);
	}
}

static bool version_keep_alive(const struct http_head *h, const struct field_summary *s)
{
	if (s->connection.close)
		return false;
	return h->version_minor >= 1 || s->connection.keep_alive;
}

/* A field whose name starts with "Transfer-Encoding" and goes on
 * ("Transfer-Encodingx"): libhttp-parser, and so perhaps a server, takes it
 * for a Transfer-Encoding (http_msg.h). */
static bool te_prefixed_field(const char *buf, const struct http_head *h)
{
	for (uint32_t i = 0; i < h->nheaders; i++) {
		const struct http_header *f = &h->headers[i];
		if (f->name.len > 17 && equal_nocase(buf + f->name.off, "transfer-encoding", 17))
			return true;
	}
	return false;
}

static enum http_verdict request_semantics(const char *buf, struct http_head *h)
{
	struct field_summary s;
	summarise_fields(buf, h, &s);

	if (h->method == HTTP_CONNECT)
		return fail(h, HTTP_MSG_NOT_IMPLEMENTED, "CONNECT is not supported");
	if (s.hosts > 1)
		return fail(h, HTTP_MSG_BAD_REQUEST, "several Host fields");
	if (s.hosts == 0 && h->version_minor >= 1)
		return fail(h, HTTP_MSG_BAD_REQUEST, "HTTP/1.1 request without Host");
	if (s.host_invalid)
		return fail(h, HTTP_MSG_BAD_REQUEST, "invalid Host");
	if (s.content_lengths > 0 && s.transfer_encodings > 0)
		return fail(h, HTTP_MSG_BAD_REQUEST, "both Content-Length and Transfer-Encoding");
	if (te_prefixed_field(buf, h))
		return fail(h, HTTP_MSG_BAD_REQUEST, "a field named like Transfer-Encoding");
	if (s.content_lengths > 1)
		return fail(h, HTTP_MSG_BAD_REQUEST, "several Content-Length fields");
	if (s.content_length_invalid)
		return fail(h, HTTP_MSG_BAD_REQUEST, "invalid Content-Length");
	if (s.transfer_encodings > 0) {
		if (h->version_minor == 0)
			return fail(h, HTTP_MSG_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
		if (s.codings.invalid)
			return fail(h, HTTP_MSG_BAD_REQUEST, "invalid Transfer-Encoding");
		if (!s.codings.last_chunked)
			return fail(h, HTTP_MSG_BAD_REQUEST, "Transfer-Encoding does not end with chunked");
		if (s.codings.chunked_count > 1)
			return fail(h, HTTP_MSG_BAD_REQUEST, "chunked applied more than once");
		if (s.codings.unknown)
			return fail(h, HTTP_MSG_NOT_IMPLEMENTED, "unknown transfer coding");
		/* Only "Transfer-Encoding: chunked", as nginx: a server that
		 * honours only that exact form would read any other as no body,
		 * and the chunks as the next request. */
		if (s.transfer_encodings > 1)
			return fail(h, HTTP_MSG_BAD_REQUEST, "several Transfer-Encoding fields");
		if (s.codings.count > 1)
			return fail(h, HTTP_MSG_NOT_IMPLEMENTED, "a transfer coding before chunked");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (s.content_lengths == 1 && s.content_length > 0) {
		h->framing = HTTP_FRAMING_LENGTH;
		h->content_length = s.content_length;
	} else {
		h->framing = HTTP_FRAMING_NONE;
	}

	h->keep_alive = version_keep_alive(h, &s);
	/* RFC 9110 7.8: Upgrade in an HTTP/1.0 request is ignored. */
	h->upgrade = h->version_minor >= 1 && s.connection.upgrade && s.has_upgrade;
	/* RFC 9110 10.1.1: likewise for 100-continue. */
	h->expect_continue = h->version_minor >= 1 && s.expect_continue;
	return HTTP_MSG_OK;
}

static enum http_verdict response_semantics(const char *buf, struct http_head *h, enum http_method request_method,
					    bool request_upgrade)
{
	struct field_summary s;
	summarise_fields(buf, h, &s);

	if (s.content_lengths > 0 && s.transfer_encodings > 0)
		return fail(h, HTTP_MSG_BAD_RESPONSE, "both Content-Length and Transfer-Encoding");
	if (s.content_lengths > 1)
		return fail(h, HTTP_MSG_BAD_RESPONSE, "several Content-Length fields");
	if (s.content_length_invalid)
		return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid Content-Length");
	if (s.transfer_encodings > 0) {
		if (h->version_minor == 0)
			return fail(h, HTTP_MSG_BAD_RESPONSE, "Transfer-Encoding in an HTTP/1.0 response");
		if (s.codings.invalid)
			return fail(h, HTTP_MSG_BAD_RESPONSE, "invalid Transfer-Encoding");
		if (s.codings.chunked_count > 1)
			return fail(h, HTTP_MSG_BAD_RESPONSE, "chunked applied more than once");
	}

	h->keep_alive = version_keep_alive(h, &s);
	if (h->status == 101) {
		if (!request_upgrade || !s.has_upgrade)
			return fail(h, HTTP_MSG_BAD_RESPONSE, "unexpected 101 Switching Protocols");
		h->framing = HTTP_FRAMING_TUNNEL;
		h->keep_alive = false;
		return HTTP_MSG_OK;
	}
	if (h->status < 200) {
		h->interim = true;
		h->framing = HTTP_FRAMING_NONE;
		return HTTP_MSG_OK;
	}
	if (request_method == HTTP_HEAD || h->status == 204 || h->status == 304) {
		h->framing = HTTP_FRAMING_NONE;
	} else if (s.transfer_encodings > 0) {
		/* RFC 9112 6.3: chunked not last in a response: read until close. */
		h->framing = s.codings.last_chunked ? HTTP_FRAMING_CHUNKED : HTTP_FRAMING_UNTIL_CLOSE;
		h->transfer_coded = s.codings.count > s.codings.chunked_count;
	} else if (s.content_lengths == 1) {
		h->framing = s.content_length > 0 ? HTTP_FRAMING_LENGTH : HTTP_FRAMING_NONE;
		h->content_length = s.content_length;
	} else {
		h->framing = HTTP_FRAMING_UNTIL_CLOSE;
	}
	if (h->framing == HTTP_FRAMING_UNTIL_CLOSE)
		h->keep_alive = false;
	return HTTP_MSG_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */

/* The methods libhttp-parser knows (its enum http_method, which lb uses),
 * by name: methods are case-sensitive tokens (RFC 9110 9.1). */
static const struct {
	const char *name;
	uint8_t len;
	uint8_t method;
} known_methods[] = {
#define METHOD(num, id, text) { #text, sizeof(#text) - 1, HTTP_##id },
	HTTP_METHOD_MAP(METHOD)
#undef METHOD
};

static bool method_lookup(const char *token, size_t len, enum http_method *out)
{
	for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
		if (known_methods[i].len == len && memcmp(known_methods[i].name, token, len) == 0) {
			*out = (enum http_method)known_methods[i].method;
			return true;
		}
	}
	return false;
}

/* RFC 9112 3.2: origin-form ("/path?query"), absolute-form
 * ("scheme://authority/path"), or asterisk-form ("*"); authority-form is
 * CONNECT's, which lb refuses anyway. Its bytes were checked to be visible
 * ASCII already. Absolute-form as libhttp-parser takes it, minus userinfo
 * (RFC 9110 4.2.4: an error): a scheme of letters, "://", an authority of
 * host and port characters, then the end, a path or a query. */
static bool target_form_valid(const char *t, size_t len)
{
	if (len > 0 && t[0] == '/')
		return true;
	if (len == 1 && t[0] == '*')
		return true;
	size_t i = 0;
	while (i < len && isalpha((unsigned char)t[i]))
		i++;
	if (i == 0 || len - i < 4 || memcmp(t + i, "://", 3) != 0)
		return false;
	size_t authority = i += 3;
	static const char host_chars[] = "-._~!$&'()*+,;=:%[]";
	while (i < len && (isalnum((unsigned char)t[i]) || strchr(host_chars, t[i]) != NULL))
		i++;
	return i > authority && (i == len || t[i] == '/' || t[i] == '?');
}

/* One strict parser for both directions (no libhttp-parser on the hot
 * path: it cost a tenth of the instructions of a request): scan_head()
 * checks the request line and every field line, request_semantics() the
 * framing and host fields. test/fuzz/fuzz_http_request_diff.c holds the
 * verdicts to libhttp-parser's, with the documented differences above. */
enum http_verdict http_parse_request(const char *buf, size_t len, struct http_head *out)
{
	head_reset(out, true);
	enum http_verdict v = scan_head(buf, len, out);
	if (v != HTTP_MSG_OK)
		return v;
	if (len > HTTP_MAX_HEAD_SIZE)
		return fail(out, HTTP_MSG_TOO_LARGE, "head larger than 80 KiB");
	/* the method is the token before the target's SP (scan_request_line) */
	if (!method_lookup(buf + out->start, out->target.off - 1 - out->start, &out->method))
		return fail(out, HTTP_MSG_NOT_IMPLEMENTED, "unknown method");
	out->method_name = http_method_str(out->method);
	if (out->method != HTTP_CONNECT && !target_form_valid(buf + out->target.off, out->target.len))
		return fail(out, HTTP_MSG_BAD_REQUEST, "request-target neither origin, absolute nor asterisk form");
	return request_semantics(buf, out); /* CONNECT: 501 there */
}

/* No libhttp-parser here: scan_head() parses the status line and checks
 * every field line, response_semantics() the framing fields. Every error is
 * a 502, so the order of the checks does not matter. */
enum http_verdict http_parse_response(const char *buf, size_t len, enum http_method request_method,
				      bool request_upgrade, struct http_head *out)
{
	head_reset(out, false);
	if (len > HTTP_MAX_HEAD_SIZE)
		return fail(out, HTTP_MSG_BAD_RESPONSE, "head larger than 80 KiB");
	enum http_verdict v = scan_head(buf, len, out);
	if (v != HTTP_MSG_OK)
		return v;
	return response_semantics(buf, out, request_method, request_upgrade);
}

int http_verdict_status(enum http_verdict verdict)
{
	switch (verdict) {
	case HTTP_MSG_OK:
		return 0;
	case HTTP_MSG_BAD_REQUEST:
		return 400;
	case HTTP_MSG_TOO_LARGE:
		return 431;
	case HTTP_MSG_NOT_IMPLEMENTED:
		return 501;
	case HTTP_MSG_BAD_RESPONSE:
		return 502;
	}
	return 400;
}

int http_header_find(const char *buf, const struct http_head *h, const char *name, size_t name_len)
{
	for (uint32_t i = 0; i < h->nheaders; i++)
		if (h->headers[i].name.len == name_len && equal_nocase(buf + h->headers[i].name.off, name, name_len))
			return (int)i;
	return -1;
}

bool http_cookie_find(const char *buf, const struct http_head *h, const char *name, size_t name_len,
		      struct http_span *value)
{
	for (uint32_t i = 0; i < h->nheaders; i++) {
		const struct http_header *f = &h->headers[i];
		if (!EQ_LIT(buf + f->name.off, f->name.len, "cookie"))
			continue;
		/* cookie-pair *( ";" SP cookie-pair ), RFC 6265 4.2.1; lenient on spaces */
		const char *v = buf + f->value.off, *end = v + f->value.len;
		while (v < end) {
			while (v < end && (*v == ' ' || *v == ';'))
				v++;
			const char *item_end = memchr(v, ';', (size_t)(end - v));
			if (item_end == NULL)
				item_end = end;
			if ((size_t)(item_end - v) > name_len && memcmp(v, name, name_len) == 0 && v[name_len] == '=') {
				value->off = (uint32_t)(v + name_len + 1 - buf);
				value->len = (uint32_t)(item_end - (v + name_len + 1));
				return true;
			}
			v = item_end;
		}
	}
	return false;
}

bool http_client_keep_alive(const struct http_head *request, const struct http_head *response)
{
	if (!request->keep_alive)
		return false;
	if (response->framing == HTTP_FRAMING_UNTIL_CLOSE || response->framing == HTTP_FRAMING_TUNNEL)
		return false;
	/* An HTTP/1.0 client cannot read chunked framing: only a server
	 * breaking RFC 9112 6.1 sends it, and then the close delimits. */
	if (request->version_minor == 0 && response->framing == HTTP_FRAMING_CHUNKED)
		return false;
	return true;
}
