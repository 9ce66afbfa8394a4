/*
 * Differential libFuzzer target: lb's own head parser (lb/core/http_msg.c: no
 * libhttp-parser in the proxy any more) against libhttp-parser, the
 * packaged, fuzzed parser it replaced. lb is stricter on purpose (the list
 * in lb/core/http_msg.h), so the rule is one-way: whatever lb accepts,
 * libhttp-parser must accept too, with the same method (requests) or
 * status (responses), the same number of fields, and the same framing
 * (chunked, or the same Content-Length). One difference is decided
 * (http_msg.h, "Field names are exact"): libhttp-parser takes a field whose
 * name only starts with "Transfer-Encoding" for one; lb refuses such a
 * request and treats such a response field as unknown, so responses with
 * one are not compared.
 *
 * Input: byte 0 selects the request method (for the response: HEAD means
 * no body) and whether the request asked for an upgrade; the rest is
 * parsed, whole and as the head that http_head_length() finds in it. The
 * first "@@" followed by one byte d is replaced by a run of 'a' that brings
 * the input to HTTP_MAX_HEAD_SIZE + d - 128 bytes, so that the 80 KiB limit
 * is crossed in every position (a field value, a name, the reason phrase...).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilb/core -o build/fuzz_http_response_diff \
 *       test/fuzz/fuzz_http_response_diff.c lb/core/http_msg.c lb/core/http_body.c lb/core/http_rewrite.c -lhttp_parser
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

#include <http_parser.h>

#include "http_msg.h"

static struct http_head mine;
static struct http_header mine_fields[HTTP_DEFAULT_MAX_HEADERS];
static char big[HTTP_MAX_HEAD_SIZE + 4096];

static void mismatch(const char *what, const char *buf, size_t len)
{
	fprintf(stderr, "http_msg differential: %s\n  lb: %d %s\n  input (%zu bytes): ", what, mine.status,
		mine.error ? mine.error : "(ok)", len);
	for (size_t i = 0; i < len && i < 400; i++)
		fprintf(stderr, (buf[i] >= 0x20 && buf[i] < 0x7f) ? "%c" : "\\x%02x", (unsigned char)buf[i]);
	fputc('\n', stderr);
	abort();
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
	return 1; /* no body: the head is what is compared */
}

/* libhttp-parser over buf as a request or a response: true when it took
 * the whole head. */
static bool lhp_parse(const char *buf, size_t len, enum http_parser_type type, http_parser *p,
		      struct lhp_result *result)
{
	static const http_parser_settings settings = { .on_header_field = lhp_field,
							.on_headers_complete = lhp_complete };
	*result = (struct lhp_result){ 0, false };
	http_parser_init(p, type);
	p->data = result;
	http_parser_execute(p, &settings, buf, len);
	enum http_errno err = HTTP_PARSER_ERRNO(p);
	return (err == HPE_OK || err == HPE_CB_headers_complete) && result->complete;
}

/* The framing lb decided must be libhttp-parser's. */
static void compare_framing(const http_parser *p, const char *buf, size_t len)
{
	if (mine.framing == HTTP_FRAMING_CHUNKED && !(p->flags & F_CHUNKED))
		mismatch("chunked for lb only", buf, len);
	if (mine.framing == HTTP_FRAMING_LENGTH && p->content_length != mine.content_length)
		mismatch("Content-Length differs", buf, len);
}

static bool te_prefixed_name(const char *buf)
{
	static const char te[] = "transfer-encoding";
	for (uint32_t i = 0; i < mine.nheaders; i++) {
		const struct http_span *n = &mine.headers[i].name;
		if (n->len > sizeof(te) - 1 && strncasecmp(buf + n->off, te, sizeof(te) - 1) == 0)
			return true;
	}
	return false;
}

static void compare_response(const char *buf, size_t len, enum http_method method, bool upgrade)
{
	if (http_parse_response(buf, len, method, upgrade, &mine) != HTTP_MSG_OK)
		return;
	if (mine.status < 100 || mine.status > 599 || mine.version_minor > 1)
		mismatch("status out of range", buf, len);
	if (te_prefixed_name(buf))
		return; /* the decided difference */
	http_parser p;
	struct lhp_result result;
	if (!lhp_parse(buf, len, HTTP_RESPONSE, &p, &result))
		mismatch("response accepted by lb, refused by libhttp-parser", buf, len);
	if (p.status_code != mine.status || result.fields != mine.nheaders)
		mismatch("response status or fields", buf, len);
	compare_framing(&p, buf, len);
}

static void compare_request(const char *buf, size_t len)
{
	if (http_parse_request(buf, len, &mine) != HTTP_MSG_OK)
		return;
	http_parser p;
	struct lhp_result result;
	if (!lhp_parse(buf, len, HTTP_REQUEST, &p, &result))
		mismatch("request accepted by lb, refused by libhttp-parser", buf, len);
	if (p.method != mine.method || result.fields != mine.nheaders)
		mismatch("request method or fields", buf, len);
	compare_framing(&p, buf, len);
}

static void compare_all(const char *buf, size_t len, uint8_t selector)
{
	static const enum http_method methods[] = { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_CONNECT };
	enum http_method method = methods[selector & 3];
	bool upgrade = (selector & 4) != 0;

	compare_response(buf, len, method, upgrade);
	compare_request(buf, len);

	size_t pos = 0;
	size_t head_len = http_head_length(buf, len, &pos);
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
