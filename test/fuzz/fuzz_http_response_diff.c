/*
 * Differential libFuzzer target: http_parse_response() (own status-line and
 * field scan, no libhttp-parser) against the previous implementation, which
 * ran libhttp-parser after the same strict scan (test/fuzz/http_msg_reference.c,
 * a frozen copy of lb/http_msg.c as of commit 08d8435). Requests, which are
 * parsed without libhttp-parser too now, are compared with libhttp-parser
 * itself (compare_request).
 *
 * On every input both must give the same verdict and, when it is OK, the
 * same parsed head: start, length, version, status, reason, interim, every
 * header span with its id and flags, framing, content_length, keep_alive,
 * upgrade, expect_continue, the header indexes (and, for requests, method
 * and target). Only the error strings may differ. The two limits
 * libhttp-parser used to add for responses (80 KiB, Content-Length cap) are
 * now checked by our own code, see http_msg.h. One difference is decided
 * and encoded (http_msg.h, "Field names are exact"): libhttp-parser takes
 * any field whose name starts with "Transfer-Encoding" (e.g.
 * "Transfer-Encodingx") for a Transfer-Encoding in its TE + Content-Length
 * check; a response is no longer refused for it. For such inputs the
 * reference parses a copy where those names are changed to "Xransfer-..."
 * (same length, still an unrecognised field), and everything must match but
 * the HOP_BY_HOP flag of those fields (a Connection token may name them).
 *
 * Input: byte 0 selects the request method and whether the request asked
 * for an upgrade; the rest is parsed, whole and as the head that
 * http_head_length() finds in it. The first "@@" followed by one byte d is
 * replaced by a run of 'a' that brings the input to HTTP_MAX_HEAD_SIZE +
 * d - 128 bytes, so that the 80 KiB limit is crossed in every position (a
 * field value, a name, the reason phrase...).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilb -o build/fuzz_http_response_diff \
 *       test/fuzz/fuzz_http_response_diff.c lb/http_msg.c lb/http_body.c lb/http_rewrite.c -lhttp_parser
 *   build/fuzz_http_response_diff -max_total_time=180 -dict=test/fuzz/http_response.dict \
 *       test/fuzz/corpus/http_response/
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strncasecmp */

#include "http_msg.h"
#include <http_parser.h>

/* The reference, its public functions renamed ref_*. http_msg.h is already
 * included, so its own #include is a no-op and both share the types. */
#define http_head_length ref_http_head_length
#define http_parse_request ref_http_parse_request
#define http_parse_response ref_http_parse_response
#define http_verdict_status ref_http_verdict_status
#define http_header_find ref_http_header_find
#define http_client_keep_alive ref_http_client_keep_alive
#define http_body_init ref_http_body_init
#define http_body_init_head ref_http_body_init_head
#define http_body_feed ref_http_body_feed
#define http_body_done ref_http_body_done
#define http_body_eof_ok ref_http_body_eof_ok
#define http_rewrite_request ref_http_rewrite_request
#define http_rewrite_response ref_http_rewrite_response
#define http_error_response ref_http_error_response
#include "../test/fuzz/http_msg_reference.c"
#undef http_head_length
#undef http_parse_request
#undef http_parse_response
#undef http_verdict_status
#undef http_header_find
#undef http_client_keep_alive
#undef http_body_init
#undef http_body_init_head
#undef http_body_feed
#undef http_body_done
#undef http_body_eof_ok
#undef http_rewrite_request
#undef http_rewrite_response
#undef http_error_response

static struct http_head mine, ref;
static struct http_header mine_fields[HTTP_DEFAULT_MAX_HEADERS], ref_fields[HTTP_DEFAULT_MAX_HEADERS];
static char big[HTTP_MAX_HEAD_SIZE + 4096];

static void mismatch(const char *what, const char *buf, size_t len)
{
	fprintf(stderr, "http_msg differential: %s differs\n  new: %d %s\n  ref: %s\n  input (%zu bytes): ", what,
		mine.status, mine.error ? mine.error : "(ok)", ref.error ? ref.error : "(ok)", len);
	for (size_t i = 0; i < len && i < 400; i++)
		fprintf(stderr, (buf[i] >= 0x20 && buf[i] < 0x7f) ? "%c" : "\\x%02x", (unsigned char)buf[i]);
	fputc('\n', stderr);
	abort();
}

#define SAME(field, buf, len)                       \
	do {                                        \
		if (mine.field != ref.field)        \
			mismatch(#field, buf, len); \
	} while (0)

#define SAME_SPAN(span, buf, len)            \
	do {                                 \
		SAME(span.off, buf, len);    \
		SAME(span.len, buf, len);    \
	} while (0)

static void compare_heads(const char *buf, size_t len)
{
	SAME(is_request, buf, len);
	SAME(start, buf, len);
	SAME(length, buf, len);
	SAME(version_minor, buf, len);
	SAME(method, buf, len);
	if ((mine.method_name == NULL) != (ref.method_name == NULL) ||
	    (mine.method_name != NULL && strcmp(mine.method_name, ref.method_name) != 0))
		mismatch("method_name", buf, len);
	SAME_SPAN(target, buf, len);
	SAME(status, buf, len);
	SAME_SPAN(reason, buf, len);
	SAME(interim, buf, len);
	SAME(nheaders, buf, len);
	for (uint32_t i = 0; i < mine.nheaders; i++) {
		SAME_SPAN(headers[i].name, buf, len);
		SAME_SPAN(headers[i].value, buf, len);
		SAME(headers[i].id, buf, len);
		SAME(headers[i].flags, buf, len);
	}
	SAME(framing, buf, len);
	SAME(content_length, buf, len);
	SAME(keep_alive, buf, len);
	SAME(upgrade, buf, len);
	SAME(expect_continue, buf, len);
	SAME(host_index, buf, len);
	SAME(request_id_index, buf, len);
	SAME(forwarded_for_index, buf, len);
}

static char renamed[sizeof(big)];
static bool renamed_field[HTTP_DEFAULT_MAX_HEADERS];

/* The decided difference: a copy of buf where each field name longer than
 * "transfer-encoding" and starting with it starts with 'X' instead. False
 * when there is no such name. Uses mine's spans: call after an OK parse. */
static bool rename_te_prefixed_fields(const char *buf, size_t len)
{
	static const char te[] = "transfer-encoding";
	bool any = false;
	memcpy(renamed, buf, len);
	for (uint32_t i = 0; i < mine.nheaders; i++) {
		const struct http_span *n = &mine.headers[i].name;
		renamed_field[i] = n->len > sizeof(te) - 1 && strncasecmp(buf + n->off, te, sizeof(te) - 1) == 0;
		if (renamed_field[i]) {
			renamed[n->off] = 'X';
			any = true;
		}
	}
	return any;
}

static void compare_response(const char *buf, size_t len, enum http_method method, bool upgrade)
{
	enum http_verdict v = http_parse_response(buf, len, method, upgrade, &mine);
	enum http_verdict r = ref_http_parse_response(buf, len, method, upgrade, &ref);
	if (v == HTTP_MSG_OK && r != HTTP_MSG_OK && rename_te_prefixed_fields(buf, len)) {
		r = ref_http_parse_response(renamed, len, method, upgrade, &ref);
		if (r != HTTP_MSG_OK)
			mismatch("response verdict (Transfer-Encoding-prefixed names renamed)", buf, len);
		for (uint32_t i = 0; i < mine.nheaders && i < ref.nheaders; i++)
			if (renamed_field[i])
				ref.headers[i].flags = mine.headers[i].flags;
		compare_heads(buf, len);
		return;
	}
	if (v != r)
		mismatch("response verdict", buf, len);
	if (v == HTTP_MSG_OK) {
		compare_heads(buf, len);
		if (mine.status < 100 || mine.status > 599 || mine.version_minor > 1)
			mismatch("status range", buf, len);
	} else if (mine.error == NULL) {
		mismatch("error string", buf, len);
	}
}

struct lhp_result {
	uint32_t fields;
	bool complete;
};

static int lhp_field(http_parser *p, const char *at, size_t n)
{
	(void)at;
	(void)n;
	((struct lhp_result *)p->data)->fields++;
	return 0;
}

static int lhp_complete(http_parser *p)
{
	((struct lhp_result *)p->data)->complete = true;
	return 1; /* stop at the end of the head: the body is not ours to check */
}

/* Requests are parsed without libhttp-parser now: whatever lb accepts,
 * libhttp-parser must accept too, as the same method with the same fields
 * and framing (lb may refuse more: the strictness list in http_msg.h). */
static void compare_request(const char *buf, size_t len)
{
	if (http_parse_request(buf, len, &mine) != HTTP_MSG_OK)
		return;
	static const http_parser_settings settings = { .on_header_field = lhp_field,
							.on_headers_complete = lhp_complete };
	struct lhp_result result = { 0, false };
	http_parser p;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &result;
	http_parser_execute(&p, &settings, buf, len);
	enum http_errno err = HTTP_PARSER_ERRNO(&p);
	if ((err != HPE_OK && err != HPE_CB_headers_complete) || !result.complete)
		mismatch("request accepted by lb, refused by libhttp-parser", buf, len);
	if (p.method != mine.method || result.fields != mine.nheaders)
		mismatch("request method or fields", buf, len);
	bool chunked = (p.flags & F_CHUNKED) != 0;
	if (chunked != (mine.framing == HTTP_FRAMING_CHUNKED))
		mismatch("request framing", buf, len);
	if (mine.framing == HTTP_FRAMING_LENGTH && p.content_length != mine.content_length)
		mismatch("request content-length", buf, len);
}

static void compare_all(const char *buf, size_t len, uint8_t selector)
{
	static const enum http_method methods[] = { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_CONNECT };
	enum http_method method = methods[selector & 3];
	bool upgrade = (selector & 4) != 0;

	compare_response(buf, len, method, upgrade);
	compare_request(buf, len);

	size_t pos = 0, ref_pos = 0;
	size_t head_len = http_head_length(buf, len, &pos);
	if (head_len != ref_http_head_length(buf, len, &ref_pos) || pos != ref_pos)
		mismatch("http_head_length", buf, len);
	if (head_len > 0 && head_len < len) {
		compare_response(buf, head_len, method, upgrade);
		compare_request(buf, head_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	if (size == 0)
		return 0;
	http_head_init(&mine, mine_fields, HTTP_DEFAULT_MAX_HEADERS);
	http_head_init(&ref, ref_fields, HTTP_DEFAULT_MAX_HEADERS);
	uint8_t selector = bytes[0];
	const char *data = (const char *)bytes + 1;
	size_t len = size - 1;

	compare_all(data, len, selector);

	const char *mark = len >= 3 ? memmem(data, len - 1, "@@", 2) : NULL;
	if (mark != NULL && (size_t)(mark - data) + 3 <= len) {
		size_t before = (size_t)(mark - data);
		size_t after = len - before - 3;
		size_t target = HTTP_MAX_HEAD_SIZE + (size_t)(unsigned char)mark[2] - 128;
		if (before + after < target && target <= sizeof(big)) {
			size_t pad = target - before - after;
			memcpy(big, data, before);
			memset(big + before, 'a', pad);
			memcpy(big + before + pad, mark + 3, after);
			compare_all(big, target, selector);
		}
	}
	return 0;
}
