/*
 * libFuzzer target for lb/core/http_msg.c: finding heads (resumably), parsing
 * requests and responses, rewriting them, and the body decoders, over
 * arbitrary bytes. Besides memory safety (ASan/UBSan) it checks invariants:
 * - http_head_length() fed in pieces finds what it finds in one call;
 * - a rewritten head is a valid head again, with the same framing;
 * - the chunked decoder gives the same result whatever the split;
 * - every prefix of a head that parses is a valid prefix (no early 400).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Ilb/core test/fuzz/fuzz_http_msg.c lb/core/http_msg.c lb/core/http_body.c lb/core/http_rewrite.c -lhttp_parser
 *   ./a.out -max_total_time=180 test/fuzz/corpus/http_msg/
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_msg.h"

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static struct http_head head, again;
static struct http_header head_fields[HTTP_DEFAULT_MAX_HEADERS], again_fields[HTTP_DEFAULT_MAX_HEADERS];
static char out[1 << 17];

/* http_head_length in pieces of 1..16 bytes must agree with one call. */
static size_t find_head(const char *data, size_t size, unsigned step_seed)
{
	size_t pos = 0;
	size_t whole = http_head_length(data, size, &pos);

	size_t found = 0, prev = 0;
	pos = 0;
	for (size_t len = 0; len < size && found == 0;) {
		len += 1 + (step_seed = step_seed * 1103515245u + 12345u, (step_seed >> 16) % 16);
		if (len > size)
			len = size;
		found = http_head_length(data, len, &pos);
		if (found == 0) {
			CHECK(pos <= len);
			CHECK(pos >= prev);
			prev = pos;
		} else {
			CHECK(found <= len);
		}
	}
	CHECK(found == whole);
	return whole;
}

/* Feeds body bytes whole and in small pieces; both must agree. */
static void check_body(enum http_framing framing, uint64_t content_length, const char *data, size_t size,
		       unsigned seed)
{
	struct http_body whole, split;
	size_t used_whole = 0;
	http_body_init(&whole, framing, content_length);
	enum http_body_status st_whole = http_body_feed(&whole, data, size, &used_whole);
	CHECK(used_whole <= size);
	if (st_whole == HTTP_BODY_MORE)
		CHECK(used_whole == size);

	http_body_init(&split, framing, content_length);
	size_t pos = 0;
	enum http_body_status st = http_body_done(&split) ? HTTP_BODY_DONE : HTTP_BODY_MORE;
	size_t used_total = 0;
	while (pos < size) {
		size_t step = 1 + (seed = seed * 1103515245u + 12345u, (seed >> 16) % 7);
		if (step > size - pos)
			step = size - pos;
		size_t used = 0;
		st = http_body_feed(&split, data + pos, step, &used);
		CHECK(used <= step);
		used_total += used;
		if (st != HTTP_BODY_MORE)
			break;
		CHECK(used == step);
		pos += step;
	}
	if (size == 0 && framing == HTTP_FRAMING_NONE)
		st_whole = st = HTTP_BODY_DONE, used_whole = used_total = 0;
	CHECK(st == st_whole);
	CHECK(used_total == used_whole);
	CHECK(split.payload == whole.payload);
	CHECK(http_body_done(&split) == http_body_done(&whole));
}

static void check_request(const char *data, size_t size, size_t head_len)
{
	enum http_verdict v = http_parse_request(data, head_len, &head);
	if (v != HTTP_MSG_OK) {
		CHECK(head.error != NULL);
		CHECK(http_verdict_status(v) >= 400);
		return;
	}
	CHECK(head.length == head_len);
	CHECK(head.nheaders <= HTTP_DEFAULT_MAX_HEADERS);
	for (size_t n = 0; n < head_len; n++)
		CHECK(http_request_prefix_valid(data, n));
	CHECK(head.framing == HTTP_FRAMING_NONE || head.framing == HTTP_FRAMING_LENGTH ||
	      head.framing == HTTP_FRAMING_CHUNKED);

	const struct http_request_forward fwd = {
		.client_addr = "203.0.113.9",
		.client_addr_len = 11,
		.request_id = "fuzz-id",
		.request_id_len = 7,
		.server_keep_alive = (size & 1) != 0,
	};
	size_t n = http_rewrite_request(data, &head, &fwd, out, sizeof(out));
	CHECK(n > 0);
	CHECK(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
	/* too small a buffer is refused, never overrun */
	CHECK(http_rewrite_request(data, &head, &fwd, out, n - 1) == 0);
	n = http_rewrite_request(data, &head, &fwd, out, n);

	size_t pos = 0;
	CHECK(http_head_length(out, n, &pos) == n);
	enum http_verdict v2 = http_parse_request(out, n, &again);
	CHECK(v2 == HTTP_MSG_OK || v2 == HTTP_MSG_TOO_LARGE);
	if (v2 == HTTP_MSG_OK) {
		CHECK(again.method == head.method);
		CHECK(again.framing == head.framing);
		CHECK(again.content_length == head.content_length);
		CHECK(again.upgrade == head.upgrade);
		CHECK(again.target.len == head.target.len);
		CHECK(memcmp(out + again.target.off, data + head.target.off, head.target.len) == 0);
	}

	check_body(head.framing, head.content_length, data + head_len, size - head_len, (unsigned)size);
}

static void check_response(const char *data, size_t size, size_t head_len, uint8_t selector)
{
	static const enum http_method methods[] = { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT };
	enum http_method method = methods[selector & 3];
	bool upgrade = (selector & 4) != 0;
	enum http_verdict v = http_parse_response(data, head_len, method, upgrade, &head);
	if (v != HTTP_MSG_OK) {
		CHECK(v == HTTP_MSG_BAD_RESPONSE);
		return;
	}
	CHECK(head.status >= 100 && head.status <= 599);
	const struct http_response_forward fwd = { .close_client = (selector & 8) != 0,
						   .client_http10 = (selector & 16) != 0 };
	size_t n = http_rewrite_response(data, &head, &fwd, out, sizeof(out));
	CHECK(n > 0);
	size_t pos = 0;
	CHECK(http_head_length(out, n, &pos) == n);
	enum http_verdict v2 = http_parse_response(out, n, method, upgrade, &again);
	if (v2 != HTTP_MSG_OK) { /* only the added Connection field can tip it over */
		CHECK(strcmp(again.error, "too many header fields") == 0);
		return;
	}
	CHECK(again.status == head.status);
	CHECK(again.framing == head.framing);
	CHECK(again.content_length == head.content_length);

	check_body(head.framing, head.content_length, data + head_len, size - head_len, selector);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	const char *data = (const char *)bytes;
	uint8_t selector = size > 0 ? bytes[size - 1] : 0;
	http_head_init(&head, head_fields, HTTP_DEFAULT_MAX_HEADERS);
	http_head_init(&again, again_fields, HTTP_DEFAULT_MAX_HEADERS);

	/* Once no request can follow, none can after more bytes either. */
	bool was_valid = true;
	for (size_t n = 0; n <= size && n <= 512; n++) {
		bool valid = http_request_prefix_valid(data, n);
		CHECK(was_valid || !valid);
		was_valid = valid;
	}

	size_t head_len = find_head(data, size, selector);
	if (head_len > 0) {
		check_request(data, size, head_len);
		check_response(data, size, head_len, selector);
	}

	/* the whole input as a chunked body, and as a fixed-length one */
	check_body(HTTP_FRAMING_CHUNKED, 0, data, size, selector);
	check_body(HTTP_FRAMING_LENGTH, selector, data, size, selector);

	int status = 200 + (int)(selector % 4) * 100 + (int)(size % 32);
	size_t n = http_error_response(status, selector & 1, selector & 2, out, sizeof(out));
	if (n > 0) {
		size_t pos = 0;
		size_t h = http_head_length(out, n, &pos);
		CHECK(h > 0 && http_parse_response(out, h, HTTP_GET, false, &again) == HTTP_MSG_OK);
		CHECK(again.status == status);
		CHECK((selector & 2) ? n == h : n > h); /* no body to a HEAD request */
	}
	return 0;
}
