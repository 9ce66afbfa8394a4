/* Unit tests for lb/core/http_msg.c: finding, parsing and rewriting HTTP/1.x
 * heads, body framing and chunked decoding, SPEC section 7. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_msg.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static struct http_head head; /* large: not on the stack of every test */
static struct http_header head_fields[HTTP_DEFAULT_MAX_HEADERS]; /* head's room (main) */

#define S(lit) (lit), (sizeof(lit) - 1)

static enum http_verdict parse_req(const char *s, size_t n)
{
	return http_parse_request(s, n, &head);
}

static enum http_verdict parse_resp(const char *s, size_t n, enum http_method method, bool upgrade)
{
	return http_parse_response(s, n, method, upgrade, &head);
}

/* The value of field `name` in the last parsed head, as a C string. */
static const char *field(const char *buf, const char *name)
{
	static char value[512];
	int i = http_header_find(buf, &head, name, strlen(name));
	if (i < 0)
		return NULL;
	snprintf(value, sizeof(value), "%.*s", (int)head.headers[i].value.len, buf + head.headers[i].value.off);
	return value;
}

static void assert_span(const char *buf, struct http_span span, const char *expected)
{
	assert_int_equal(span.len, strlen(expected));
	assert_memory_equal(buf + span.off, expected, span.len);
}

/* Expects each request of a NULL-terminated list to get `verdict`. */
static void assert_requests_get(const char *const *requests, enum http_verdict verdict)
{
	for (size_t i = 0; requests[i] != NULL; i++) {
		enum http_verdict v = parse_req(requests[i], strlen(requests[i]));
		if (v != verdict)
			fail_msg("request %zu %s: verdict %d (%s), expected %d", i, requests[i], v,
				 head.error ? head.error : "no error", verdict);
	}
}

/* Feeds a whole body in one span. */
static enum http_body_status feed_all(struct http_body *b, const char *s, size_t n, size_t *used)
{
	return http_body_feed(b, s, n, used);
}

/* Feeds a body in spans whose sizes come from `split` (0 = one byte at a
 * time, else random sizes 1..split with a fixed seed); returns the status of
 * the last feed and the total bytes used. */
static enum http_body_status feed_split(struct http_body *b, const char *s, size_t n, size_t split, size_t *used_total)
{
	unsigned seed = (unsigned)rand();
	size_t pos = 0;
	enum http_body_status st = HTTP_BODY_MORE;
	*used_total = 0;
	while (pos < n) {
		size_t step = 1;
		if (split > 0) {
			seed = seed * 1103515245u + 12345u;
			step = 1 + (seed >> 16) % split;
		}
		if (step > n - pos)
			step = n - pos;
		size_t used = 0;
		st = http_body_feed(b, s + pos, step, &used);
		assert_true(used <= step);
		*used_total += used;
		if (st != HTTP_BODY_MORE)
			return st;
		assert_int_equal(used, step);
		pos += step;
	}
	return st;
}

/* ------------------------------------------------------------------------ */
/* finding heads                                                             */

static void test_head_length_finds_complete_head(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t pos = 0;
	assert_int_equal(http_head_length(S(req), &pos), sizeof(req) - 1);
}

static void test_head_length_finds_pipelined_heads_one_after_another(void **state)
{
	(void)state;
	static const char two[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3";
	size_t pos = 0;
	size_t first = http_head_length(S(two), &pos);
	assert_int_equal(first, 28);
	assert_int_equal(parse_req(two, first), HTTP_MSG_OK);
	assert_span(two, head.target, "/1");

	pos = 0;
	size_t second = http_head_length(two + first, sizeof(two) - 1 - first, &pos);
	assert_int_equal(second, 28);
	assert_int_equal(parse_req(two + first, second), HTTP_MSG_OK);
	assert_span(two + first, head.target, "/2");

	pos = 0;
	assert_int_equal(http_head_length(two + first + second, sizeof(two) - 1 - first - second, &pos), 0);
}

static void test_head_split_across_many_scans_is_found_once(void **state)
{
	(void)state;
	static const char req[] = "\r\nPOST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc";
	size_t head_len = sizeof(req) - 1 - 3;
	/* One byte more per call: found exactly when the final LF arrives. */
	size_t pos = 0, prev = 0;
	for (size_t len = 1; len <= sizeof(req) - 1; len++) {
		size_t found = http_head_length(req, len, &pos);
		if (len < head_len) {
			assert_int_equal(found, 0);
			assert_true(pos >= prev); /* never rescans from the start */
			assert_true(pos <= len);
			prev = pos;
		} else {
			assert_int_equal(found, head_len);
			break;
		}
	}
	assert_int_equal(parse_req(req, head_len), HTTP_MSG_OK);
	assert_int_equal(head.start, 2);
	assert_int_equal(head.content_length, 3);
}

static void test_head_length_recognises_lf_only_heads_which_are_then_refused(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\nHost: a\n\n";
	size_t pos = 0;
	assert_int_equal(http_head_length(S(req), &pos), sizeof(req) - 1);
	assert_int_equal(parse_req(S(req)), HTTP_MSG_BAD_REQUEST);
}

static void test_head_length_too_many_leading_empty_lines_end_early(void **state)
{
	(void)state;
	static const char junk[] = "\r\n\r\n\r\n\r\n";
	size_t pos = 0;
	size_t n = http_head_length(S(junk), &pos);
	assert_int_not_equal(n, 0); /* no waiting for a head that never comes */
	assert_int_equal(parse_req(junk, n), HTTP_MSG_BAD_REQUEST);
}

/* ------------------------------------------------------------------------ */
/* requests                                                                  */

static void test_simple_get_is_parsed(void **state)
{
	(void)state;
	static const char req[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_true(head.is_request);
	assert_int_equal(head.method, HTTP_GET);
	assert_string_equal(head.method_name, "GET");
	assert_span(req, head.target, "/index.html?q=1");
	assert_int_equal(head.version_minor, 1);
	assert_int_equal(head.nheaders, 2);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
	assert_true(head.keep_alive);
	assert_false(head.upgrade);
	assert_int_equal(head.host_index, 0);
	assert_span(req, head.headers[head.host_index].value, "example.com");
	assert_int_equal(head.request_id_index, -1);
	assert_int_equal(head.forwarded_for_index, -1);
	assert_int_equal(head.length, sizeof(req) - 1);
}

static void test_post_with_content_length_is_length_framed(void **state)
{
	(void)state;
	static const char req[] = "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1234\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_int_equal(head.method, HTTP_POST);
	assert_int_equal(head.framing, HTTP_FRAMING_LENGTH);
	assert_int_equal(head.content_length, 1234);
}

static void test_content_length_zero_means_no_body(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
}

static void test_chunked_request_is_chunked_framed(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_CHUNKED);
	/* codings spread over several field lines: a server reading only one
	 * line would frame it otherwise */
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
				     "Transfer-Encoding: chunked\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
				     "Transfer-Encoding: chunked\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
}

static void test_coding_before_chunked_is_501_in_requests(void **state)
{
	(void)state;
	/* as nginx: a server honouring only "chunked" would see no body */
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")),
			 HTTP_MSG_NOT_IMPLEMENTED);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n")),
			 HTTP_MSG_OK);
}

static void test_unknown_transfer_coding_is_501(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n")),
			 HTTP_MSG_NOT_IMPLEMENTED);
	assert_int_equal(http_verdict_status(HTTP_MSG_NOT_IMPLEMENTED), 501);
}

static void test_http10_closes_by_default_and_keeps_alive_on_request(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET / HTTP/1.0\r\n\r\n")), HTTP_MSG_OK); /* no Host needed */
	assert_int_equal(head.version_minor, 0);
	assert_false(head.keep_alive);
	assert_int_equal(parse_req(S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")), HTTP_MSG_OK);
	assert_true(head.keep_alive);
}

static void test_http11_keeps_alive_unless_close(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_true(head.keep_alive);
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n")), HTTP_MSG_OK);
	assert_false(head.keep_alive);
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")),
			 HTTP_MSG_OK);
	assert_false(head.keep_alive);
}

static void test_upgrade_request_is_detected(void **state)
{
	(void)state;
	static const char ws[] = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
				 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
	assert_int_equal(parse_req(S(ws)), HTTP_MSG_OK);
	assert_true(head.upgrade);
	/* Upgrade alone, or Connection: upgrade alone, is no upgrade */
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")), HTTP_MSG_OK);
	assert_false(head.upgrade);
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n")), HTTP_MSG_OK);
	assert_false(head.upgrade);
	/* RFC 9110 7.8: ignored in HTTP/1.0 */
	assert_int_equal(parse_req(S("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")),
			 HTTP_MSG_OK);
	assert_false(head.upgrade);
}

static void test_expect_100_continue_is_detected(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n")),
			 HTTP_MSG_OK);
	assert_true(head.expect_continue);
	assert_int_equal(parse_req(S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")), HTTP_MSG_OK);
	assert_false(head.expect_continue);
}

static void test_request_id_and_forwarded_for_are_located(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nx-request-id: abc\r\nHost: a\r\nX-FORWARDED-FOR: 10.0.0.1\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_int_equal(head.request_id_index, 0);
	assert_int_equal(head.host_index, 1);
	assert_int_equal(head.forwarded_for_index, 2);
	assert_span(req, head.headers[0].value, "abc");
}

static void test_field_value_ows_is_trimmed(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t b  c \t \r\nX-B:\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_string_equal(field(req, "x-a"), "b  c");
	assert_string_equal(field(req, "X-B"), "");
}

static void test_leading_empty_lines_are_ignored(void **state)
{
	(void)state;
	static const char req[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_int_equal(head.start, 4);
	assert_int_equal(parse_req(S("\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
}

static void test_header_names_match_case_insensitively(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nhOsT: a\r\nX-Custom: 1\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	assert_int_equal(head.host_index, 0);
	assert_int_equal(http_header_find(req, &head, S("x-CUSTOM")), 1);
	assert_int_equal(http_header_find(req, &head, S("x-custo")), -1);
}

static void test_too_many_headers_is_431(void **state)
{
	(void)state;
	char req[8192];
	size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 1; i < HTTP_DEFAULT_MAX_HEADERS; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-%d: v\r\n", i);
	memcpy(req + n, "\r\n", 2);
	assert_int_equal(parse_req(req, n + 2), HTTP_MSG_OK); /* exactly the maximum */
	assert_int_equal(head.nheaders, HTTP_DEFAULT_MAX_HEADERS);
	n += (size_t)snprintf(req + n, sizeof(req) - n, "X-last: v\r\n\r\n");
	assert_int_equal(parse_req(req, n), HTTP_MSG_TOO_LARGE);
	assert_int_equal(http_verdict_status(HTTP_MSG_TOO_LARGE), 431);
}

static void test_missing_host_in_http11_is_400(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
}

static void test_several_hosts_are_400(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
}

static void test_invalid_field_names_are_400(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX@A: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX\"A: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_invalid_request_lines_are_400(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", /* space in target */
		"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", /* accepted by http_parser */
		"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", /* accepted by http_parser */
		"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / http/1.1\r\nHost: a\r\n\r\n",
		"GET /\r\n\r\n", /* HTTP/0.9 */
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
		"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
		"GET a HTTP/1.1\r\nHost: a\r\n\r\n", /* not origin-form: http_parser refuses */
		"\r\n",
		"",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_unknown_method_is_501(void **state)
{
	(void)state;
	static const char *const unknown[] = {
		"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
		"get / HTTP/1.1\r\nHost: a\r\n\r\n", /* methods are case-sensitive */
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		NULL,
	};
	assert_requests_get(unknown, HTTP_MSG_NOT_IMPLEMENTED);
	assert_int_equal(parse_req(S("PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_string_equal(head.method_name, "PATCH");
}

/* ------------------------------------------------------------------------ */
/* request smuggling, SPEC 7: every case is a 400                            */

static void test_smuggling_content_length_and_transfer_encoding(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_differing_content_lengths(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

/* Decision: identical duplicates are refused too (as nginx does). */
static void test_smuggling_identical_duplicate_content_lengths_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_invalid_content_lengths(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", /* 2^64 */
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
	/* large values are fine (libhttp-parser caps them a little below 2^64);
	 * OWS around the value too */
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  999999999999999999 \r\n\r\n")),
			 HTTP_MSG_OK);
	assert_true(head.content_length == 999999999999999999ull);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_transfer_encoding_last_not_chunked(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", /* http_parser accepts */
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", /* RFC 9112 6.1 */
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_obs_fold(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n",
		"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_whitespace_before_colon(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", /* accepted by http_parser */
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n",
		NULL,
	};
	assert_requests_get(bad, HTTP_MSG_BAD_REQUEST);
}

static void test_smuggling_nul_cr_lf_inside_fields(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-\0A: b\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-\rA: b\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nTransfer-Encoding: chunked\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n") },
		{ S("GET / HTTP/1.1\nHost: a\r\n\r\n") },
		{ S("GET / HTTP/1.1\r\nHost: a\n\r\n") },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum http_verdict v = parse_req(bad[i].s, bad[i].n);
		if (v != HTTP_MSG_BAD_REQUEST)
			fail_msg("case %zu: verdict %d", i, v);
	}
}

static void test_obs_text_in_values_is_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xc3\xa9\r\n\r\n")), HTTP_MSG_OK);
}

static void test_head_with_trailing_bytes_is_refused(void **state)
{
	(void)state;
	/* the caller must pass exactly the head http_head_length() found */
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n")), HTTP_MSG_BAD_REQUEST);
}

/* ------------------------------------------------------------------------ */
/* responses                                                                 */

static void test_response_with_content_length(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
	assert_int_equal(parse_resp(S(resp), HTTP_GET, false), HTTP_MSG_OK);
	assert_false(head.is_request);
	assert_int_equal(head.status, 200);
	assert_span(resp, head.reason, "OK");
	assert_int_equal(head.framing, HTTP_FRAMING_LENGTH);
	assert_int_equal(head.content_length, 12);
	assert_true(head.keep_alive);
	assert_false(head.interim);
}

static void test_response_chunked(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_CHUNKED);
	assert_true(head.keep_alive);
	assert_false(head.transfer_coded);
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_CHUNKED);
	assert_true(head.transfer_coded); /* what HTTP/2 cannot carry */
}

static void test_response_to_head_has_no_body(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"), HTTP_HEAD, false), HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
	assert_true(head.keep_alive);
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_HEAD, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
}

static void test_response_204_and_304_have_no_body(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 204 No Content\r\n\r\n"), HTTP_GET, false), HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
	assert_true(head.keep_alive);
	assert_int_equal(parse_resp(S("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
}

static void test_response_1xx_is_interim(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_PUT, false), HTTP_MSG_OK);
	assert_true(head.interim);
	assert_int_equal(head.framing, HTTP_FRAMING_NONE);
	assert_int_equal(parse_resp(S("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_true(head.interim);
}

static void test_response_101_is_a_tunnel_only_when_asked(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	assert_int_equal(parse_resp(S(resp), HTTP_GET, true), HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_TUNNEL);
	assert_false(head.interim);
	assert_false(head.keep_alive);
	assert_int_equal(parse_resp(S(resp), HTTP_GET, false), HTTP_MSG_BAD_RESPONSE);
	assert_int_equal(parse_resp(S("HTTP/1.1 101 Switching Protocols\r\n\r\n"), HTTP_GET, true),
			 HTTP_MSG_BAD_RESPONSE);
}

static void test_response_without_length_is_until_close(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_UNTIL_CLOSE);
	assert_false(head.keep_alive);
	/* RFC 9112 6.3: chunked not last in a response */
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_int_equal(head.framing, HTTP_FRAMING_UNTIL_CLOSE);
}

static void test_response_keep_alive_per_version_and_connection(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), HTTP_GET, false), HTTP_MSG_OK);
	assert_false(head.keep_alive);
	assert_int_equal(parse_resp(S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"),
				    HTTP_GET, false),
			 HTTP_MSG_OK);
	assert_true(head.keep_alive);
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"), HTTP_GET,
				    false),
			 HTTP_MSG_OK);
	assert_false(head.keep_alive);
}

static void test_response_status_line_without_reason_is_accepted(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(parse_resp(S(resp), HTTP_GET, false), HTTP_MSG_OK);
	assert_int_equal(head.status, 404);
	assert_int_equal(head.reason.len, 0);
}

static void test_response_status_line_edge_cases(void **state)
{
	(void)state;
	/* RFC 9112 4: an empty reason, with or without its SP */
	static const char with_sp[] = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(parse_resp(S(with_sp), HTTP_GET, false), HTTP_MSG_OK);
	assert_int_equal(head.status, 404);
	assert_int_equal(head.reason.off, sizeof("HTTP/1.1 404 ") - 1);
	assert_int_equal(head.reason.len, 0);
	/* a reason of HTAB / SP / VCHAR / obs-text, a leading SP kept */
	static const char odd[] = "HTTP/1.0 599  Caf\xc3\xa9\t ok \r\nContent-Length: 1\r\n\r\n";
	assert_int_equal(parse_resp(S(odd), HTTP_GET, false), HTTP_MSG_OK);
	assert_int_equal(head.status, 599);
	assert_int_equal(head.version_minor, 0);
	assert_span(odd, head.reason, " Caf\xc3\xa9\t ok ");
	/* the edges of the code range */
	assert_int_equal(parse_resp(S("HTTP/1.1 100\r\n\r\n"), HTTP_GET, false), HTTP_MSG_OK);
	assert_true(head.interim);
	assert_int_equal(parse_resp(S("HTTP/1.1 199 X\r\n\r\n"), HTTP_GET, false), HTTP_MSG_OK);
	assert_true(head.interim);

	static const char *const bad[] = {
		"HTTP/1.1 200 O\x01K\r\n\r\n", /* a control in the reason */
		"HTTP/1.1 200 O\x7fK\r\n\r\n", /* DEL */
		"HTTP/1.1 200 OK\rX\r\n\r\n", /* bare CR */
		"HTTP/1.1 200\tOK\r\n\r\n", /* HTAB instead of SP */
		"HTTP/1.1\t200 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 20a OK\r\n\r\n",
		"HTTP/1.1 +20 OK\r\n\r\n",
		"HTTP/1.1 000 OK\r\n\r\n",
		"HTTP/1.1 999 OK\r\n\r\n",
		"HTTP/1.1 \r\n\r\n", /* no code */
		"HTTP/1.1\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n", /* the version is case-sensitive */
		"HTTP/1.2 200 OK\r\n\r\n",
		"HTTP/0.9 200 OK\r\n\r\n",
		"HTTP/01.1 200 OK\r\n\r\n",
		"HTTP/1.10 200 OK\r\n\r\n",
		"HTTP/1 200 OK\r\n\r\n",
		" HTTP/1.1 200 OK\r\n\r\n",
		"\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", /* three empty lines first */
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		enum http_verdict v = parse_resp(bad[i], strlen(bad[i]), HTTP_GET, false);
		if (v != HTTP_MSG_BAD_RESPONSE)
			fail_msg("response %zu: verdict %d", i, v);
	}
}

static void test_response_content_length_cap_is_libhttp_parsers(void **state)
{
	(void)state;
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551609\r\n\r\n"), HTTP_GET,
				    false),
			 HTTP_MSG_OK);
	assert_true(head.content_length == HTTP_MAX_CONTENT_LENGTH);
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551610\r\n\r\n"), HTTP_GET,
				    false),
			 HTTP_MSG_BAD_RESPONSE);
	/* and requests, where libhttp-parser checks it too */
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551609\r\n\r\n")),
			 HTTP_MSG_OK);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551610\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
}

/* A head of exactly n bytes: status or request line, empty lines first when
 * lead, one field padded to size. */
static size_t padded_head(char *buf, size_t n, const char *start_line, bool lead)
{
	size_t len = (size_t)sprintf(buf, "%s%s\r\nX-Pad: ", lead ? "\r\n\r\n" : "", start_line);
	while (len < n - 4)
		buf[len++] = 'a';
	memcpy(buf + len, "\r\n\r\n", 4);
	return len + 4;
}

static void test_heads_above_80_kib_are_refused(void **state)
{
	(void)state;
	static char buf[HTTP_MAX_HEAD_SIZE + 16];
	for (int lead = 0; lead <= 1; lead++) {
		size_t n = padded_head(buf, HTTP_MAX_HEAD_SIZE, "HTTP/1.1 200 OK", lead);
		assert_int_equal(parse_resp(buf, n, HTTP_GET, false), HTTP_MSG_OK);
		n = padded_head(buf, HTTP_MAX_HEAD_SIZE + 1, "HTTP/1.1 200 OK", lead);
		assert_int_equal(parse_resp(buf, n, HTTP_GET, false), HTTP_MSG_BAD_RESPONSE);
		n = padded_head(buf, HTTP_MAX_HEAD_SIZE, "GET / HTTP/1.0", lead);
		assert_int_equal(parse_req(buf, n), HTTP_MSG_OK);
		n = padded_head(buf, HTTP_MAX_HEAD_SIZE + 1, "GET / HTTP/1.0", lead);
		assert_int_equal(parse_req(buf, n), HTTP_MSG_TOO_LARGE);
	}
}

static void test_invalid_responses_are_502(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 600 High\r\n\r\n",
		"HTTP/1.1 20 Short\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		enum http_verdict v = parse_resp(bad[i], strlen(bad[i]), HTTP_GET, false);
		if (v != HTTP_MSG_BAD_RESPONSE)
			fail_msg("response %zu: verdict %d", i, v);
	}
	assert_int_equal(http_verdict_status(HTTP_MSG_BAD_RESPONSE), 502);
}

static void test_response_many_headers_is_502_not_431(void **state)
{
	(void)state;
	char resp[8192];
	size_t n = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i <= HTTP_DEFAULT_MAX_HEADERS; i++)
		n += (size_t)snprintf(resp + n, sizeof(resp) - n, "X-%d: v\r\n", i);
	n += (size_t)snprintf(resp + n, sizeof(resp) - n, "\r\n");
	assert_int_equal(parse_resp(resp, n, HTTP_GET, false), HTTP_MSG_BAD_RESPONSE);
}

static void test_client_keep_alive_needs_a_known_end(void **state)
{
	(void)state;
	static struct http_head req, resp;
	static struct http_header req_fields[8], resp_fields[8];
	http_head_init(&req, req_fields, 8);
	http_head_init(&resp, resp_fields, 8);
	assert_int_equal(http_parse_request(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &req), HTTP_MSG_OK);
	assert_int_equal(http_parse_response(S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), HTTP_GET, false, &resp),
			 HTTP_MSG_OK);
	assert_true(http_client_keep_alive(&req, &resp));
	assert_int_equal(http_parse_response(S("HTTP/1.1 200 OK\r\n\r\n"), HTTP_GET, false, &resp), HTTP_MSG_OK);
	assert_false(http_client_keep_alive(&req, &resp));
	assert_int_equal(http_parse_request(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), &req),
			 HTTP_MSG_OK);
	assert_int_equal(http_parse_response(S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), HTTP_GET, false, &resp),
			 HTTP_MSG_OK);
	assert_false(http_client_keep_alive(&req, &resp));
}

/* ------------------------------------------------------------------------ */
/* body framing                                                              */

static const char chunked_body[] = "5\r\nhello\r\n"
				   "1;ext=1;name=\"quoted value\"\r\n,\r\n"
				   "00006 ; ext\r\n world\r\n"
				   "A\r\n0123456789\r\n"
				   "0\r\n\r\n";
#define CHUNKED_PAYLOAD 22 /* 5 + 1 + 6 + 10 */

static void test_chunked_decoder_whole_body(void **state)
{
	(void)state;
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(feed_all(&b, S(chunked_body), &used), HTTP_BODY_DONE);
	assert_int_equal(used, sizeof(chunked_body) - 1);
	assert_true(b.payload == CHUNKED_PAYLOAD);
	assert_true(http_body_done(&b));
	/* fed again after the end: nothing belongs to it */
	assert_int_equal(http_body_feed(&b, S("GET"), &used), HTTP_BODY_DONE);
	assert_int_equal(used, 0);
}

static void test_chunked_decoder_one_byte_at_a_time_gives_same_result(void **state)
{
	(void)state;
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(feed_split(&b, S(chunked_body), 0, &used), HTTP_BODY_DONE);
	assert_int_equal(used, sizeof(chunked_body) - 1);
	assert_true(b.payload == CHUNKED_PAYLOAD);
}

/* Feed s in the pieces that `cuts` (ascending, within 0..n) make. */
static enum http_body_status feed_cut(struct http_body *b, const char *s, size_t n, const size_t *cuts, size_t ncuts,
				      size_t *used_total)
{
	size_t pos = 0;
	*used_total = 0;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : n, used = 0;
		enum http_body_status st = http_body_feed(b, s + pos, end - pos, &used);
		*used_total += used;
		if (st != HTTP_BODY_MORE)
			return st;
		assert_int_equal(used, end - pos);
		pos = end;
	}
	return HTTP_BODY_MORE;
}

static void assert_whole_chunked_body(const size_t *cuts, size_t ncuts)
{
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(feed_cut(&b, S(chunked_body), cuts, ncuts, &used), HTTP_BODY_DONE);
	assert_int_equal(used, sizeof(chunked_body) - 1);
	assert_true(b.payload == CHUNKED_PAYLOAD);
}

static void test_chunked_decoder_random_splits_give_same_result(void **state)
{
	(void)state;
	const size_t n = sizeof(chunked_body) - 1;
	/* Every way of cutting it in two and in three pieces... */
	for (size_t i = 0; i <= n; i++) {
		assert_whole_chunked_body((size_t[]){ i }, 1);
		for (size_t j = i; j <= n; j++)
			assert_whole_chunked_body((size_t[]){ i, j }, 2);
	}
	/* ...and many pieces, at places a seeded PRNG chooses. */
	for (unsigned seed = 1; seed <= 200; seed++) {
		struct http_body b;
		size_t used;
		http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
		srand(seed);
		assert_int_equal(feed_split(&b, S(chunked_body), 1 + (size_t)rand() % 12, &used), HTTP_BODY_DONE);
		assert_int_equal(used, n);
		assert_true(b.payload == CHUNKED_PAYLOAD);
	}
}

static void test_chunked_decoder_reports_where_next_message_starts(void **state)
{
	(void)state;
	static const char stream[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(http_body_feed(&b, S(stream), &used), HTTP_BODY_DONE);
	assert_int_equal(used, 13);
	assert_memory_equal(stream + used, "GET", 3);
}

static void test_chunked_decoder_accepts_trailers(void **state)
{
	(void)state;
	static const char body[] = "4\r\nwiki\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum:abc\r\n\r\nNEXT";
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(http_body_feed(&b, S(body), &used), HTTP_BODY_DONE);
	assert_int_equal(used, sizeof(body) - 1 - 4);
	assert_true(b.payload == 4);
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(feed_split(&b, body, sizeof(body) - 1 - 4, 0, &used), HTTP_BODY_DONE);
}

static void test_chunked_decoder_refuses_invalid_trailers(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"0\r\nX: a\r\n folded\r\n\r\n",
		"0\r\nX : a\r\n\r\n",
		"0\r\n: a\r\n\r\n",
		"0\r\nX: a\nY: b\r\n\r\n",
		"0\r\nX: a\0\r\n\r\n",
		"0\r\n\n",
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		struct http_body b;
		size_t used;
		http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
		size_t n = strlen(bad[i]);
		if (i == 4)
			n = 13; /* includes the NUL */
		if (http_body_feed(&b, bad[i], n, &used) != HTTP_BODY_ERROR)
			fail_msg("trailer case %zu accepted", i);
	}
}

static void test_smuggling_invalid_chunk_sizes(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"-1\r\n",
		"+1\r\n",
		"0x5\r\nhello\r\n0\r\n\r\n",
		" 5\r\nhello\r\n0\r\n\r\n",
		"5 \r\nhello\r\n0\r\n\r\n", /* whitespace not followed by an extension */
		"g\r\n",
		"\r\n",
		"5\nhello\r\n0\r\n\r\n", /* bare LF */
		"5\rhello\r\n0\r\n\r\n",
		"5\r\nhelloX\r\n0\r\n\r\n", /* data longer than the size */
		"5\r\nhello\n0\r\n\r\n",
		"10000000000000000\r\n", /* 2^64: overflow */
		"fffffffffffffffff\r\n",
		"5;ext\x01\r\nhello\r\n",
		"5;ext\nhello\r\n",
		"0\r\n\r\r",
		"1_0\r\n",
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		struct http_body b;
		size_t used;
		http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
		if (http_body_feed(&b, bad[i], strlen(bad[i]), &used) != HTTP_BODY_ERROR)
			fail_msg("chunk case %zu (%s) accepted", i, bad[i]);
		assert_true(used < strlen(bad[i]));
	}
	/* the largest size parses (and waits for its data) */
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(http_body_feed(&b, S("FFFFFFFFFFFFFFFF\r\nab"), &used), HTTP_BODY_MORE);
	assert_true(b.remaining == UINT64_MAX - 2);
}

static void test_chunk_size_line_is_bounded(void **state)
{
	(void)state;
	static char line[HTTP_MAX_CHUNK_LINE + 16];
	memset(line, 'a', sizeof(line));
	memcpy(line, "1;", 2);
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(http_body_feed(&b, line, sizeof(line), &used), HTTP_BODY_ERROR);
	/* leading zeros count too */
	memset(line, '0', sizeof(line));
	http_body_init(&b, HTTP_FRAMING_CHUNKED, 0);
	assert_int_equal(http_body_feed(&b, line, sizeof(line), &used), HTTP_BODY_ERROR);
}

static void test_length_decoder_counts_down_content_length(void **state)
{
	(void)state;
	static const char stream[] = "0123456789GET /next";
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_LENGTH, 10);
	assert_int_equal(http_body_feed(&b, stream, 4, &used), HTTP_BODY_MORE);
	assert_int_equal(used, 4);
	assert_false(http_body_done(&b));
	assert_false(http_body_eof_ok(&b)); /* truncated if the peer closes now */
	assert_int_equal(http_body_feed(&b, stream + 4, sizeof(stream) - 1 - 4, &used), HTTP_BODY_DONE);
	assert_int_equal(used, 6);
	assert_true(b.payload == 10);
	assert_true(http_body_done(&b));
	assert_true(http_body_eof_ok(&b));
}

static void test_no_body_is_done_at_once(void **state)
{
	(void)state;
	struct http_body b;
	size_t used = 99;
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	http_body_init_head(&b, &head);
	assert_true(http_body_done(&b));
	assert_int_equal(http_body_feed(&b, S("GET /2"), &used), HTTP_BODY_DONE);
	assert_int_equal(used, 0);
}

static void test_until_close_never_completes_before_eof(void **state)
{
	(void)state;
	struct http_body b;
	size_t used;
	http_body_init(&b, HTTP_FRAMING_UNTIL_CLOSE, 0);
	static const char looks_like_an_end[] = "0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
	for (int i = 0; i < 3; i++) {
		assert_int_equal(http_body_feed(&b, S(looks_like_an_end), &used), HTTP_BODY_MORE);
		assert_int_equal(used, sizeof(looks_like_an_end) - 1);
	}
	assert_false(http_body_done(&b));
	assert_true(http_body_eof_ok(&b));
	assert_true(b.payload == 3 * (sizeof(looks_like_an_end) - 1));
}

/* ------------------------------------------------------------------------ */
/* rewriting                                                                 */

static char out[8192];

static const struct http_request_forward fwd_default = {
	.client_addr = "192.0.2.7",
	.client_addr_len = 9,
	.request_id = "gen-42",
	.request_id_len = 6,
	.server_keep_alive = true,
};

static size_t rewrite_req(const char *req, size_t n, const struct http_request_forward *fwd)
{
	assert_int_equal(parse_req(req, n), HTTP_MSG_OK);
	size_t len = http_rewrite_request(req, &head, fwd, out, sizeof(out) - 1);
	assert_int_not_equal(len, 0);
	out[len] = '\0';
	return len;
}

static void test_request_rewrite_removes_hop_by_hop_fields(void **state)
{
	(void)state;
	static const char req[] = "GET /p?x=1 HTTP/1.1\r\n"
				  "Host: example.com\r\n"
				  "Connection: keep-alive, X-Secret, close\r\n"
				  "Keep-Alive: timeout=5\r\n"
				  "Proxy-Connection: keep-alive\r\n"
				  "TE: trailers\r\n"
				  "Trailer: X-Sum\r\n"
				  "Upgrade: h2c\r\n"
				  "x-secret: 1\r\n"
				  "Accept: */*\r\n"
				  "\r\n";
	rewrite_req(S(req), &fwd_default);
	assert_string_equal(out, "GET /p?x=1 HTTP/1.1\r\n"
				 "Host: example.com\r\n"
				 "Accept: */*\r\n"
				 "X-Forwarded-For: 192.0.2.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Request-Id: gen-42\r\n"
				 "\r\n");
}

static void test_request_rewrite_connection_cannot_remove_framing_fields(void **state)
{
	(void)state;
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host\r\n"
				  "Content-Length: 3\r\n\r\n";
	rewrite_req(S(req), &fwd_default);
	assert_non_null(strstr(out, "\r\nHost: a\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Length: 3\r\n"));
	static const char te[] = "POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n";
	rewrite_req(S(te), &fwd_default);
	assert_non_null(strstr(out, "\r\nTransfer-Encoding: chunked\r\n"));
}

static void test_request_rewrite_appends_to_x_forwarded_for(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nHost: a\r\n"
				  "x-forwarded-for: 10.0.0.2, 10.0.0.3\r\n\r\n";
	rewrite_req(S(req), &fwd_default);
	assert_non_null(strstr(out, "\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n"));
	/* one field only */
	assert_null(strstr(strstr(out, "X-Forwarded-For") + 1, "X-Forwarded-For"));
	assert_null(strstr(out, "x-forwarded-for"));
}

static void test_request_rewrite_replaces_x_forwarded_proto(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n";
	rewrite_req(S(req), &fwd_default);
	assert_null(strstr(out, "https"));
	assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
}

static void test_request_rewrite_keeps_request_id_or_adds_generated(void **state)
{
	(void)state;
	static const char with[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-7\r\n\r\n";
	rewrite_req(S(with), &fwd_default);
	assert_non_null(strstr(out, "\r\nX-Request-Id: client-7\r\n"));
	assert_null(strstr(out, "gen-42"));
	static const char without[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	rewrite_req(S(without), &fwd_default);
	assert_non_null(strstr(out, "\r\nX-Request-Id: gen-42\r\n"));
}

static void test_request_rewrite_keeps_line_host_and_transfer_encoding_verbatim(void **state)
{
	(void)state;
	static const char req[] = "POST /a%20b?c HTTP/1.1\r\nHOST:  Example.COM:8080 \r\nTransfer-Encoding: Chunked\r\n\r\n";
	rewrite_req(S(req), &fwd_default);
	assert_memory_equal(out, "POST /a%20b?c HTTP/1.1\r\nHOST:  Example.COM:8080 \r\nTransfer-Encoding: Chunked\r\n",
			    sizeof("POST /a%20b?c HTTP/1.1\r\nHOST:  Example.COM:8080 \r\nTransfer-Encoding: Chunked\r\n") - 1);
}

static void test_request_rewrite_http10_keep_alive_and_close(void **state)
{
	(void)state;
	static const char req10[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	rewrite_req(S(req10), &fwd_default);
	assert_memory_equal(out, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n", 40);
	static const char req11[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_request_forward fwd = fwd_default;
	fwd.server_keep_alive = false;
	rewrite_req(S(req11), &fwd);
	assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
	rewrite_req(S(req11), &fwd_default);
	assert_null(strstr(out, "Connection"));
}

static void test_request_rewrite_upgrade_keeps_upgrade(void **state)
{
	(void)state;
	static const char ws[] = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
				 "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
	rewrite_req(S(ws), &fwd_default);
	assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strstr(out, "\r\nConnection: upgrade\r\n"));
	assert_null(strstr(out, "keep-alive"));
	assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: k\r\n"));
}

static void test_request_rewrite_output_parses_again(void **state)
{
	(void)state;
	static const char req[] = "POST /x HTTP/1.1\r\nHost: a\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 7\r\n\r\n";
	size_t len = rewrite_req(S(req), &fwd_default);
	static struct http_head again;
	static struct http_header again_fields[HTTP_DEFAULT_MAX_HEADERS];
	http_head_init(&again, again_fields, HTTP_DEFAULT_MAX_HEADERS);
	assert_int_equal(http_parse_request(out, len, &again), HTTP_MSG_OK);
	assert_int_equal(again.framing, HTTP_FRAMING_LENGTH);
	assert_int_equal(again.content_length, 7);
	assert_int_equal(again.nheaders, 5); /* Host, Content-Length, XFF, XFP, X-Request-Id */
}

static void test_request_rewrite_that_does_not_fit_returns_0(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(parse_req(S(req)), HTTP_MSG_OK);
	size_t full = http_rewrite_request(req, &head, &fwd_default, out, sizeof(out));
	assert_int_not_equal(full, 0);
	for (size_t cap = 0; cap < full; cap++)
		assert_int_equal(http_rewrite_request(req, &head, &fwd_default, out, cap), 0);
	assert_int_equal(http_rewrite_request(req, &head, &fwd_default, out, full), full);
}

static size_t rewrite_resp(const char *resp, size_t n, enum http_method method, bool upgrade,
			   const struct http_response_forward *fwd)
{
	assert_int_equal(parse_resp(resp, n, method, upgrade), HTTP_MSG_OK);
	size_t len = http_rewrite_response(resp, &head, fwd, out, sizeof(out) - 1);
	assert_int_not_equal(len, 0);
	out[len] = '\0';
	return len;
}

static void test_response_rewrite_removes_hop_by_hop_and_keeps_transfer_encoding(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Backend\r\nKeep-Alive: timeout=5\r\n"
				   "X-Backend: b1\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n";
	const struct http_response_forward fwd = { .close_client = false, .client_http10 = false };
	rewrite_resp(S(resp), HTTP_GET, false, &fwd);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n");
}

static void test_response_rewrite_announces_close_or_http10_keep_alive(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
	const struct http_response_forward close = { .close_client = true, .client_http10 = false };
	rewrite_resp(S(resp), HTTP_GET, false, &close);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
	const struct http_response_forward keep10 = { .close_client = false, .client_http10 = true };
	rewrite_resp(S(resp), HTTP_GET, false, &keep10);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
}

static void test_response_rewrite_101_keeps_upgrade(void **state)
{
	(void)state;
	static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: x\r\n\r\n";
	const struct http_response_forward fwd = { .close_client = true, .client_http10 = false };
	rewrite_resp(S(resp), HTTP_GET, true, &fwd);
	assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				 "Sec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n");
}

static void test_response_rewrite_interim_adds_nothing(void **state)
{
	(void)state;
	const struct http_response_forward fwd = { .close_client = true, .client_http10 = false };
	rewrite_resp(S("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_PUT, false, &fwd);
	assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
}

/* ------------------------------------------------------------------------ */
/* lb's own answers                                                          */

static void test_error_responses_are_well_formed(void **state)
{
	(void)state;
	static const int statuses[] = { 400, 408, 413, 431, 501, 502, 503, 504 };
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		for (int close = 0; close <= 1; close++) {
			size_t n = http_error_response(statuses[i], close, false, out, sizeof(out));
			assert_int_not_equal(n, 0);
			size_t pos = 0;
			size_t head_len = http_head_length(out, n, &pos);
			assert_int_not_equal(head_len, 0);
			assert_int_equal(parse_resp(out, head_len, HTTP_GET, false), HTTP_MSG_OK);
			assert_int_equal(head.status, statuses[i]);
			assert_int_equal(head.framing, HTTP_FRAMING_LENGTH);
			assert_int_equal(head.content_length, n - head_len); /* the body is all that follows */
			assert_string_equal(field(out, "Content-Type"), "text/plain");
			assert_int_equal(out[n - 1], '\n');
			char prefix[8];
			snprintf(prefix, sizeof(prefix), "%d ", statuses[i]);
			assert_memory_equal(out + head_len, prefix, 4);
			assert_int_equal(head.keep_alive, !close);
			if (close)
				assert_string_equal(field(out, "Connection"), "close");
			else
				assert_null(field(out, "Connection"));
			if (statuses[i] == 503)
				assert_string_equal(field(out, "Retry-After"), "1");
			else
				assert_null(field(out, "Retry-After"));
		}
	}
	size_t n = http_error_response(503, true, false, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
				 "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
				 "503 Service Unavailable\n");
}

static void test_error_response_to_head_is_the_head_alone(void **state)
{
	(void)state;
	char get[512];
	size_t full = http_error_response(503, true, false, get, sizeof(get));
	size_t n = http_error_response(503, true, true, out, sizeof(out));
	size_t pos = 0;
	assert_int_equal(http_head_length(out, n, &pos), n); /* nothing after the head */
	assert_memory_equal(out, get, n); /* the same head, Content-Length included */
	assert_int_equal(parse_resp(out, n, HTTP_HEAD, false), HTTP_MSG_OK);
	char length[16];
	snprintf(length, sizeof(length), "%zu", full - n);
	assert_string_equal(field(out, "Content-Length"), length); /* what GET's body would be */
}

static void test_error_response_unknown_status_or_no_room_is_0(void **state)
{
	(void)state;
	assert_int_equal(http_error_response(299, true, false, out, sizeof(out)), 0);
	assert_int_equal(http_error_response(42, true, false, out, sizeof(out)), 0);
	size_t n = http_error_response(400, true, false, out, sizeof(out));
	assert_int_equal(http_error_response(400, true, false, out, n), 0);
	assert_int_equal(http_error_response(400, true, false, out, n + 1), n);
}

/* ------------------------------------------------------------------------ */
/* request lines checked as they arrive; disguised field names               */

static void test_every_prefix_of_a_valid_request_is_a_valid_prefix(void **state)
{
	static const char *const valid[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\n\r\nPOST /x?y=1 HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	(void)state;
	for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
		size_t len = strlen(valid[v]);
		assert_int_equal(parse_req(valid[v], len), HTTP_MSG_OK);
		for (size_t n = 0; n <= len; n++)
			assert_true(http_request_prefix_valid(valid[v], n));
	}
}

static void test_garbage_is_no_request_prefix_after_a_few_bytes(void **state)
{
	(void)state;
	assert_false(http_request_prefix_valid(S("\x16\x03\x01\x02")));                /* TLS */
	assert_false(http_request_prefix_valid(S("GET\t/")));                            /* HTAB */
	assert_false(http_request_prefix_valid(S(" GET /")));                             /* leading SP */
	assert_false(http_request_prefix_valid(S("GET  /")));                             /* two SP */
	assert_false(http_request_prefix_valid(S("GET /\x01")));                          /* CTL in target */
	assert_false(http_request_prefix_valid(S("GET / HTTQ")));
	assert_false(http_request_prefix_valid(S("GET / HTTP/x")));
	assert_false(http_request_prefix_valid(S("GET / HTTP/1.1\n")));                   /* bare LF */
	assert_false(http_request_prefix_valid(S("GET / HTTP/1.1 ")));
	assert_false(http_request_prefix_valid(S("\r\n\r\n\r\nGET")));                   /* 3 empty lines */
	assert_false(http_request_prefix_valid(S("\rX")));
	assert_false(http_request_prefix_valid(S("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))); /* 33-byte method */
	assert_true(http_request_prefix_valid(S("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")));   /* 32: may be one */
	assert_true(http_request_prefix_valid(S("GET /a HTTP/1.1\r\nX: \x01"))); /* fields: later */
	assert_true(http_request_prefix_valid(S("")));
	assert_true(http_request_prefix_valid(S("\r")));
}

static void test_underscore_names_of_framing_and_forwarding_fields_are_400(void **state)
{
	static const char *const refused[] = {
		"Transfer_Encoding: chunked", "content_length: 5", "Connection_: x", "X_Forwarded_For: 1.2.3.4",
		"keep_alive: 1", "X-Forwarded_Proto: https", "x_request_id: 1",
	};
	char req[256];
	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int n = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\nContent-Length: 0\r\n\r\n",
				 refused[i]);
		enum http_verdict v = parse_req(req, (size_t)n);
		/* "Connection_" is no recognised name: it passes. */
		if (strncmp(refused[i], "Connection_", 11) == 0) {
			assert_int_equal(v, HTTP_MSG_OK);
			continue;
		}
		assert_int_equal(v, HTTP_MSG_BAD_REQUEST);
		assert_non_null(strstr(head.error, "underscore"));
	}
	/* Other underscore names pass unchanged, and responses are not judged. */
	assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nX_Custom_Thing: 1\r\n\r\n")), HTTP_MSG_OK);
	assert_string_equal(field("GET / HTTP/1.1\r\nHost: a\r\nX_Custom_Thing: 1\r\n\r\n", "X_Custom_Thing"), "1");
	assert_int_equal(parse_resp(S("HTTP/1.1 200 OK\r\nContent_Length: 5\r\nContent-Length: 0\r\n\r\n"), HTTP_GET,
				    false),
			 HTTP_MSG_OK);
}

static const char *cookie(const char *req, const char *name)
{
	static char value[256];
	struct http_span span;
	assert_int_equal(parse_req(req, strlen(req)), HTTP_MSG_OK);
	if (!http_cookie_find(req, &head, name, strlen(name), &span))
		return NULL;
	snprintf(value, sizeof(value), "%.*s", (int)span.len, req + span.off);
	return value;
}

static void test_cookie_is_found_in_any_cookie_field_by_exact_name(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nCookie: sid=1; user=ann\r\n"
				  "cookie: theme=dark;lang=en\r\n\r\n";
	assert_string_equal(cookie(req, "sid"), "1");
	assert_string_equal(cookie(req, "user"), "ann");
	assert_string_equal(cookie(req, "theme"), "dark");
	assert_string_equal(cookie(req, "lang"), "en"); /* no space after ';' */
	assert_null(cookie(req, "us"));  /* a prefix of a name is not the name */
	assert_null(cookie(req, "ser")); /* nor a suffix */
	assert_null(cookie(req, "missing"));
	assert_null(cookie("GET / HTTP/1.1\r\nHost: a\r\nX-Cookie: sid=1\r\n\r\n", "sid"));
	assert_string_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=\r\n\r\n", "a"), ""); /* empty value */
	assert_string_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; a=2\r\n\r\n", "a"), "1"); /* the first */
}

static void test_request_target_forms_without_libhttp_parser(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("GET http://h.example/x?y HTTP/1.1\r\nHost: h.example\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(parse_req(S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(parse_req(S("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(parse_req(S("GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET 1http://h/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET ** HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET a+b://x/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET http://x<y/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("GET http://[::1]:8080?q HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(parse_req(S("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP_MSG_OK);
	assert_int_equal(head.method, HTTP_MSEARCH);
}

static void test_field_named_like_transfer_encoding_is_400_in_requests(void **state)
{
	(void)state;
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
				     "Transfer-Encodingx: gzip\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding-Foo: x\r\n\r\n")),
			 HTTP_MSG_BAD_REQUEST);
	assert_int_equal(parse_req(S("POST / HTTP/1.1\r\nHost: a\r\nX-Transfer-Encoding: x\r\n\r\n")),
			 HTTP_MSG_OK);
}

int main(void)
{
	http_head_init(&head, head_fields, HTTP_DEFAULT_MAX_HEADERS);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_target_forms_without_libhttp_parser),
		cmocka_unit_test(test_field_named_like_transfer_encoding_is_400_in_requests),
		cmocka_unit_test(test_cookie_is_found_in_any_cookie_field_by_exact_name),
		cmocka_unit_test(test_every_prefix_of_a_valid_request_is_a_valid_prefix),
		cmocka_unit_test(test_garbage_is_no_request_prefix_after_a_few_bytes),
		cmocka_unit_test(test_underscore_names_of_framing_and_forwarding_fields_are_400),
		cmocka_unit_test(test_head_length_finds_complete_head),
		cmocka_unit_test(test_head_length_finds_pipelined_heads_one_after_another),
		cmocka_unit_test(test_head_split_across_many_scans_is_found_once),
		cmocka_unit_test(test_head_length_recognises_lf_only_heads_which_are_then_refused),
		cmocka_unit_test(test_head_length_too_many_leading_empty_lines_end_early),
		cmocka_unit_test(test_simple_get_is_parsed),
		cmocka_unit_test(test_post_with_content_length_is_length_framed),
		cmocka_unit_test(test_content_length_zero_means_no_body),
		cmocka_unit_test(test_chunked_request_is_chunked_framed),
		cmocka_unit_test(test_coding_before_chunked_is_501_in_requests),
		cmocka_unit_test(test_unknown_transfer_coding_is_501),
		cmocka_unit_test(test_http10_closes_by_default_and_keeps_alive_on_request),
		cmocka_unit_test(test_http11_keeps_alive_unless_close),
		cmocka_unit_test(test_upgrade_request_is_detected),
		cmocka_unit_test(test_expect_100_continue_is_detected),
		cmocka_unit_test(test_request_id_and_forwarded_for_are_located),
		cmocka_unit_test(test_field_value_ows_is_trimmed),
		cmocka_unit_test(test_leading_empty_lines_are_ignored),
		cmocka_unit_test(test_header_names_match_case_insensitively),
		cmocka_unit_test(test_too_many_headers_is_431),
		cmocka_unit_test(test_missing_host_in_http11_is_400),
		cmocka_unit_test(test_several_hosts_are_400),
		cmocka_unit_test(test_invalid_field_names_are_400),
		cmocka_unit_test(test_invalid_request_lines_are_400),
		cmocka_unit_test(test_unknown_method_is_501),
		cmocka_unit_test(test_smuggling_content_length_and_transfer_encoding),
		cmocka_unit_test(test_smuggling_differing_content_lengths),
		cmocka_unit_test(test_smuggling_identical_duplicate_content_lengths_are_refused),
		cmocka_unit_test(test_smuggling_invalid_content_lengths),
		cmocka_unit_test(test_smuggling_transfer_encoding_last_not_chunked),
		cmocka_unit_test(test_smuggling_obs_fold),
		cmocka_unit_test(test_smuggling_whitespace_before_colon),
		cmocka_unit_test(test_smuggling_nul_cr_lf_inside_fields),
		cmocka_unit_test(test_smuggling_invalid_chunk_sizes),
		cmocka_unit_test(test_obs_text_in_values_is_accepted),
		cmocka_unit_test(test_head_with_trailing_bytes_is_refused),
		cmocka_unit_test(test_response_with_content_length),
		cmocka_unit_test(test_response_chunked),
		cmocka_unit_test(test_response_to_head_has_no_body),
		cmocka_unit_test(test_response_204_and_304_have_no_body),
		cmocka_unit_test(test_response_1xx_is_interim),
		cmocka_unit_test(test_response_101_is_a_tunnel_only_when_asked),
		cmocka_unit_test(test_response_without_length_is_until_close),
		cmocka_unit_test(test_response_keep_alive_per_version_and_connection),
		cmocka_unit_test(test_response_status_line_without_reason_is_accepted),
		cmocka_unit_test(test_response_status_line_edge_cases),
		cmocka_unit_test(test_response_content_length_cap_is_libhttp_parsers),
		cmocka_unit_test(test_heads_above_80_kib_are_refused),
		cmocka_unit_test(test_invalid_responses_are_502),
		cmocka_unit_test(test_response_many_headers_is_502_not_431),
		cmocka_unit_test(test_client_keep_alive_needs_a_known_end),
		cmocka_unit_test(test_chunked_decoder_whole_body),
		cmocka_unit_test(test_chunked_decoder_one_byte_at_a_time_gives_same_result),
		cmocka_unit_test(test_chunked_decoder_random_splits_give_same_result),
		cmocka_unit_test(test_chunked_decoder_reports_where_next_message_starts),
		cmocka_unit_test(test_chunked_decoder_accepts_trailers),
		cmocka_unit_test(test_chunked_decoder_refuses_invalid_trailers),
		cmocka_unit_test(test_chunk_size_line_is_bounded),
		cmocka_unit_test(test_length_decoder_counts_down_content_length),
		cmocka_unit_test(test_no_body_is_done_at_once),
		cmocka_unit_test(test_until_close_never_completes_before_eof),
		cmocka_unit_test(test_request_rewrite_removes_hop_by_hop_fields),
		cmocka_unit_test(test_request_rewrite_connection_cannot_remove_framing_fields),
		cmocka_unit_test(test_request_rewrite_appends_to_x_forwarded_for),
		cmocka_unit_test(test_request_rewrite_replaces_x_forwarded_proto),
		cmocka_unit_test(test_request_rewrite_keeps_request_id_or_adds_generated),
		cmocka_unit_test(test_request_rewrite_keeps_line_host_and_transfer_encoding_verbatim),
		cmocka_unit_test(test_request_rewrite_http10_keep_alive_and_close),
		cmocka_unit_test(test_request_rewrite_upgrade_keeps_upgrade),
		cmocka_unit_test(test_request_rewrite_output_parses_again),
		cmocka_unit_test(test_request_rewrite_that_does_not_fit_returns_0),
		cmocka_unit_test(test_response_rewrite_removes_hop_by_hop_and_keeps_transfer_encoding),
		cmocka_unit_test(test_response_rewrite_announces_close_or_http10_keep_alive),
		cmocka_unit_test(test_response_rewrite_101_keeps_upgrade),
		cmocka_unit_test(test_response_rewrite_interim_adds_nothing),
		cmocka_unit_test(test_error_responses_are_well_formed),
		cmocka_unit_test(test_error_response_to_head_is_the_head_alone),
		cmocka_unit_test(test_error_response_unknown_status_or_no_room_is_0),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
