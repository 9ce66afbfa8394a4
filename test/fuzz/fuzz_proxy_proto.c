/*
 * libFuzzer target for lb/core/proxy_proto.c: the PROXY protocol header over
 * arbitrary bytes. Besides memory safety (ASan/UBSan) it checks the contract
 * of proxy_parse() (proxy_proto.h):
 * - every prefix gives INCOMPLETE or the verdict of the whole, and the same
 *   header when it is OK; a prefix shorter than the header is INCOMPLETE;
 * - PROXY_MAX_LENGTH bytes or more are never INCOMPLETE;
 * - an OK header lies within the input and within PROXY_MAX_LENGTH; a local
 *   one has no addresses, another has two of the same family, AF_INET or
 *   AF_INET6, and which one agrees with the header's bytes;
 * - a version 1 TCP4 line is canonical: writing its header back with
 *   inet_ntop() gives the same bytes; a TCP6 one written back parses to the
 *   same addresses and ports;
 * - proxy_write (backends[].send_proxy) of any header parsed, in both
 *   versions, parses back to the same addresses (v4-mapped IPv6 ones as
 *   IPv4), a local one to a local one.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Ilb/core test/fuzz/fuzz_proxy_proto.c lb/core/proxy_proto.c
 *   ./a.out -max_total_time=120 test/fuzz/corpus/proxy_proto/
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static bool same_header(const struct proxy_header *a, const struct proxy_header *b)
{
	return a->length == b->length && a->local == b->local && a->version == b->version &&
	       memcmp(&a->source, &b->source, sizeof(a->source)) == 0 &&
	       memcmp(&a->destination, &b->destination, sizeof(a->destination)) == 0;
}

static void check_header(const uint8_t *data, size_t size, const struct proxy_header *h)
{
	static const struct sockaddr_storage zero;

	CHECK(h->length > 0 && h->length <= size && h->length <= PROXY_MAX_LENGTH);
	CHECK(h->version == 1 || h->version == 2);
	if (h->local) {
		CHECK(memcmp(&h->source, &zero, sizeof(zero)) == 0);
		CHECK(memcmp(&h->destination, &zero, sizeof(zero)) == 0);
		return;
	}
	int family = h->source.ss_family;
	CHECK(family == AF_INET || family == AF_INET6);
	CHECK(h->destination.ss_family == family);
	if (h->version == 2) {
		CHECK(data[12] == 0x21);
		CHECK(data[13] == (family == AF_INET ? 0x11 : 0x21));
		return;
	}
	CHECK(h->length <= PROXY_V1_MAX_LENGTH);
	CHECK(memcmp(data, family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ", 11) == 0);

	/* Write the line back from the header. */
	char source[INET6_ADDRSTRLEN], destination[INET6_ADDRSTRLEN], line[160];
	unsigned source_port, destination_port;
	if (family == AF_INET) {
		struct sockaddr_in s, d;
		memcpy(&s, &h->source, sizeof(s));
		memcpy(&d, &h->destination, sizeof(d));
		CHECK(inet_ntop(AF_INET, &s.sin_addr, source, sizeof(source)) != NULL);
		CHECK(inet_ntop(AF_INET, &d.sin_addr, destination, sizeof(destination)) != NULL);
		source_port = ntohs(s.sin_port);
		destination_port = ntohs(d.sin_port);
	} else {
		struct sockaddr_in6 s, d;
		memcpy(&s, &h->source, sizeof(s));
		memcpy(&d, &h->destination, sizeof(d));
		CHECK(inet_ntop(AF_INET6, &s.sin6_addr, source, sizeof(source)) != NULL);
		CHECK(inet_ntop(AF_INET6, &d.sin6_addr, destination, sizeof(destination)) != NULL);
		source_port = ntohs(s.sin6_port);
		destination_port = ntohs(d.sin6_port);
	}
	int n = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n", family == AF_INET ? '4' : '6', source,
			 destination, source_port, destination_port);
	CHECK(n > 0 && (size_t)n < sizeof(line));
	if (family == AF_INET) {
		CHECK((size_t)n == h->length && memcmp(line, data, h->length) == 0);
		return;
	}
	/* IPv6 text has several spellings: compare what they mean. A canonical
	 * line may be longer than the original (v4-mapped spellings). */
	struct proxy_header again;
	if ((size_t)n <= PROXY_V1_MAX_LENGTH) {
		CHECK(proxy_parse(line, (size_t)n, &again) == PROXY_OK);
		CHECK(again.length == (size_t)n && !again.local);
		CHECK(memcmp(&again.source, &h->source, sizeof(h->source)) == 0);
		CHECK(memcmp(&again.destination, &h->destination, sizeof(h->destination)) == 0);
	}
}

static bool v4_mapped(const struct sockaddr_storage *ss)
{
	struct sockaddr_in6 in6;
	memcpy(&in6, ss, sizeof(in6));
	return ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr);
}

/* What proxy_write makes of h, in either version, reads back as h. */
static void check_written(const struct proxy_header *h)
{
	for (int version = 1; version <= 2; version++) {
		unsigned char out[PROXY_V1_MAX_LENGTH + PROXY_V2_FIXED_LENGTH + 36];
		struct proxy_header back;
		size_t n = proxy_write(version, h->local ? NULL : &h->source, h->local ? NULL : &h->destination, out,
				       sizeof(out));
		CHECK(n > 0);
		CHECK(proxy_parse(out, n, &back) == PROXY_OK && back.length == n && back.version == version);
		CHECK(back.local == h->local);
		if (h->local || v4_mapped(&h->source) || v4_mapped(&h->destination))
			continue;
		CHECK(memcmp(&back.source, &h->source, sizeof(back.source)) == 0);
		CHECK(memcmp(&back.destination, &h->destination, sizeof(back.destination)) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header whole, part;
	enum proxy_result verdict = proxy_parse(data, size, &whole);

	if (size >= PROXY_MAX_LENGTH)
		CHECK(verdict != PROXY_INCOMPLETE);
	if (verdict == PROXY_OK) {
		check_header(data, size, &whole);
		check_written(&whole);
	}

	/* Every prefix: INCOMPLETE, or the same verdict (and header). Parsing
	 * looks at no more than PROXY_MAX_LENGTH bytes, so this stays linear. */
	for (size_t k = 0; k < size; k++) {
		enum proxy_result r = proxy_parse(data, k, &part);
		if (r == PROXY_INCOMPLETE)
			continue;
		CHECK(r == verdict);
		if (r == PROXY_OK) {
			CHECK(k >= whole.length);
			CHECK(same_header(&part, &whole));
		}
	}
	if (verdict == PROXY_OK) {
		CHECK(proxy_parse(data, whole.length - 1, &part) == PROXY_INCOMPLETE);
	}
	return 0;
}
