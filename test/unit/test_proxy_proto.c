/* Unit tests for lb/core/proxy_proto.c: the PROXY protocol header, versions 1
 * and 2, that listeners with proxy_protocol: true expect (SPEC 11). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static struct proxy_header h;

#define S(lit) (lit), (sizeof(lit) - 1)

static enum proxy_result parse(const void *buf, size_t len)
{
	memset(&h, 0xA5, sizeof(h));
	return proxy_parse(buf, len, &h);
}

static void assert_address(const struct sockaddr_storage *ss, int family, const char *addr, unsigned port)
{
	char text[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, family);
	if (family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, ss, sizeof(sin));
		assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)));
		assert_int_equal(ntohs(sin.sin_port), port);
	} else {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, ss, sizeof(sin6));
		assert_non_null(inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)));
		assert_int_equal(ntohs(sin6.sin6_port), port);
		assert_int_equal(sin6.sin6_scope_id, 0);
	}
	assert_string_equal(text, addr);
}

static void assert_local(size_t length, int version)
{
	assert_int_equal(h.length, length);
	assert_true(h.local);
	assert_int_equal(h.version, version);
	assert_int_equal(h.source.ss_family, AF_UNSPEC);
	assert_int_equal(h.destination.ss_family, AF_UNSPEC);
}

/* Every proper prefix of buf[0..len) is INCOMPLETE, the whole is OK and
 * occupies all of it. */
static void assert_incomplete_until_whole(const void *buf, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (parse(buf, k) != PROXY_INCOMPLETE)
			fail_msg("prefix of %zu bytes (of %zu): %d, expected INCOMPLETE", k, len, parse(buf, k));
	assert_int_equal(parse(buf, len), PROXY_OK);
	assert_int_equal(h.length, len);
}

/* The shortest prefix of buf[0..len) that is INVALID; checks that every
 * shorter one is INCOMPLETE and every longer one INVALID. Fails if the
 * whole is not INVALID. */
static size_t first_invalid(const void *buf, size_t len)
{
	size_t k = 0;
	while (k <= len && parse(buf, k) == PROXY_INCOMPLETE)
		k++;
	if (k > len || parse(buf, k) != PROXY_INVALID)
		fail_msg("%.*s: %d at %zu bytes, expected INVALID", (int)len, (const char *)buf, parse(buf, k), k);
	for (size_t longer = k; longer <= len; longer++)
		if (parse(buf, longer) != PROXY_INVALID)
			fail_msg("%.*s: INVALID at %zu bytes but not at %zu", (int)len, (const char *)buf, k, longer);
	return k;
}

/* Each line of a NULL-terminated list is INVALID (and stays so). */
static void assert_lines_invalid(const char *const *lines)
{
	for (size_t i = 0; lines[i] != NULL; i++)
		first_invalid(lines[i], strlen(lines[i]));
}

/* Builds a version 2 header: signature, version/command, family/transport,
 * block length, block. Returns its length. */
static unsigned char v2[PROXY_MAX_LENGTH + 64];

static size_t v2_header(unsigned version_command, unsigned family_transport, const void *block, size_t block_len)
{
	static const unsigned char signature[12] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
	};
	memcpy(v2, signature, sizeof(signature));
	v2[12] = (unsigned char)version_command;
	v2[13] = (unsigned char)family_transport;
	v2[14] = (unsigned char)(block_len >> 8);
	v2[15] = (unsigned char)block_len;
	if (block_len > 0)
		memcpy(v2 + 16, block, block_len);
	return 16 + block_len;
}

/* 192.0.2.1:56324 -> 198.51.100.7:443 */
static const unsigned char block_tcp4[12] = {
	192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB,
};

/* 2001:db8::1:56324 -> 2001:db8::2:443 */
static const unsigned char block_tcp6[36] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	0xDC, 0x04, 0x01, 0xBB,
};

/* ALPN "h2", AUTHORITY "example.com", NOOP of 3 bytes, SSL with version. */
static const unsigned char tlvs[] = {
	0x01, 0x00, 0x02, 'h', '2',
	0x02, 0x00, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
	0x04, 0x00, 0x03, 0, 0, 0,
	0x20, 0x00, 0x0C, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x04, 'T', 'L', 'S', '1',
};

static size_t v2_with_tlvs(unsigned family_transport, const unsigned char *addresses, size_t addresses_len)
{
	unsigned char block[256];
	memcpy(block, addresses, addresses_len);
	memcpy(block + addresses_len, tlvs, sizeof(tlvs));
	return v2_header(0x21, family_transport, block, addresses_len + sizeof(tlvs));
}

/* ------------------------------------------------------------------------ */
/* version 1                                                                 */

static void test_v1_tcp4_gives_addresses_and_length(void **state)
{
	(void)state;
	static const char line[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";

	assert_int_equal(parse(S(line)), PROXY_OK);
	assert_int_equal(h.length, strlen(line));
	assert_false(h.local);
	assert_int_equal(h.version, 1);
	assert_address(&h.source, AF_INET, "192.168.0.1", 56324);
	assert_address(&h.destination, AF_INET, "192.168.0.11", 443);
}

static void test_v1_tcp6_gives_addresses_and_length(void **state)
{
	(void)state;
	static const char line[] = "PROXY TCP6 2001:DB8::1 fe80::1:2 65535 0\r\n";

	assert_int_equal(parse(S(line)), PROXY_OK);
	assert_int_equal(h.length, strlen(line));
	assert_false(h.local);
	assert_address(&h.source, AF_INET6, "2001:db8::1", 65535);
	assert_address(&h.destination, AF_INET6, "fe80::1:2", 0);
}

static void test_v1_tcp6_accepts_ipv4_mapped_addresses(void **state)
{
	(void)state;
	/* what inet_ntop() writes for a v4-mapped address, so what a sender
	 * with a dual-stack socket sends */
	assert_int_equal(parse(S("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n")), PROXY_OK);
	assert_address(&h.source, AF_INET6, "::ffff:192.0.2.1", 1);
	assert_address(&h.destination, AF_INET6, "::1", 2);
	/* the longest IPv6 text: 45 characters */
	assert_int_equal(parse(S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::1 1 2\r\n")), PROXY_OK);
	assert_address(&h.source, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
}

static void test_v1_unknown_is_local(void **state)
{
	(void)state;
	assert_int_equal(parse(S("PROXY UNKNOWN\r\n")), PROXY_OK);
	assert_local(15, 1);
	assert_int_equal(parse(S("PROXY UNKNOWN \r\n")), PROXY_OK);
	assert_local(16, 1);
	/* anything before the CRLF is ignored */
	static const char line[] = "PROXY UNKNOWN 10.0.0.1 whatever, even  two spaces\r\nGET";
	assert_int_equal(parse(S(line)), PROXY_OK);
	assert_local(sizeof(line) - 1 - 3, 1);
}

static void test_v1_longest_line_of_107_bytes_is_accepted(void **state)
{
	(void)state;
	static const char line[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
				   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	static const char tcp6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
				   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	assert_int_equal(strlen(line), PROXY_V1_MAX_LENGTH);
	assert_int_equal(parse(S(line)), PROXY_OK);
	assert_local(PROXY_V1_MAX_LENGTH, 1);
	assert_int_equal(parse(S(tcp6)), PROXY_OK);
	assert_int_equal(h.length, 104);
	assert_address(&h.source, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
}

static void test_v1_leaves_the_bytes_that_follow(void **state)
{
	(void)state;
	static const char data[] = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\nGET / HTTP/1.1\r\n\r\n";

	assert_int_equal(parse(S(data)), PROXY_OK);
	assert_int_equal(h.length, strlen("PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n"));
	/* whatever follows, even garbage or another header */
	assert_int_equal(parse(S("PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n\r\r\0PROXY")), PROXY_OK);
	assert_int_equal(h.length, 38);
}

static void test_v1_prefixes_are_incomplete_then_ok(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
		"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 56324 443\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		NULL,
	};
	for (size_t i = 0; lines[i] != NULL; i++)
		assert_incomplete_until_whole(lines[i], strlen(lines[i]));
}

static void test_v1_rejects_double_spaces(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY  TCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP4  10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0.1  10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2  1000 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000  80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80 \r\n",
		" PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY\tTCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY UNKNOWN\t\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	/* refused as soon as the second space arrives */
	assert_int_equal(first_invalid(S("PROXY TCP4 10.0.0.1  10.0.0.2 1000 80\r\n")), 21);
}

static void test_v1_rejects_bad_addresses(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY TCP4 256.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0.1.5 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0. 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 .10.0.0 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10..0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 010.0.0.1 10.0.0.2 1000 80\r\n", /* leading zero: octal? */
		"PROXY TCP4 10.0.0.01 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 0x0a.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 167772161 10.0.0.2 1000 80\r\n",
		"PROXY TCP4 10.0.0.1 ::1 1000 80\r\n", /* family mismatch */
		"PROXY TCP6 ::1 10.0.0.1 1000 80\r\n",
		"PROXY TCP6 2001:db8::1::2 ::1 1000 80\r\n",
		"PROXY TCP6 2001:db8:0:0:0:0:0:0:1 ::1 1000 80\r\n",
		"PROXY TCP6 12345::1 ::1 1000 80\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1000 80\r\n", /* no scope */
		"PROXY TCP6 [::1] ::1 1000 80\r\n",
		"PROXY TCP6 ::g ::1 1000 80\r\n",
		"PROXY TCP4  10.0.0.2 1000 80\r\n", /* empty */
		"PROXY TCP6 ::1  1000 80\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	/* IPv4: refused at the byte that makes it impossible */
	assert_int_equal(first_invalid(S("PROXY TCP4 256.0.0.1 10.0.0.2 1000 80\r\n")), 14);
	assert_int_equal(first_invalid(S("PROXY TCP4 010.0.0.1 10.0.0.2 1000 80\r\n")), 13);
	assert_int_equal(first_invalid(S("PROXY TCP4 10.0.0.1.5 10.0.0.2 1000 80\r\n")), 20);
	/* IPv6: longer than any IPv6 text (45), refused at its 46th byte */
	assert_int_equal(first_invalid(S("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0000:00 ::1 1 2\r\n")),
			 11 + 46);
	assert_int_equal(first_invalid(S("PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n")), 34);
}

static void test_v1_rejects_port_65536_and_malformed_ports(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 65536\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 100000 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 +1000 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 -1 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 01000 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 00 80\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80x\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 0x50\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000\r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 \r\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80 443\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	assert_int_equal(parse(S("PROXY TCP4 10.0.0.1 10.0.0.2 65535 0\r\n")), PROXY_OK);
	assert_address(&h.source, AF_INET, "10.0.0.1", 65535);
	assert_address(&h.destination, AF_INET, "10.0.0.2", 0);
}

static void test_v1_rejects_missing_crlf_within_107_bytes(void **state)
{
	(void)state;
	char line[PROXY_MAX_LENGTH];

	/* "PROXY UNKNOWN " then filler: incomplete up to 106 bytes, invalid at 107 */
	memcpy(line, "PROXY UNKNOWN ", 14);
	memset(line + 14, 'x', sizeof(line) - 14);
	assert_int_equal(first_invalid(line, sizeof(line)), PROXY_V1_MAX_LENGTH);

	/* a CRLF that ends at byte 108 comes too late, even at byte 107 */
	memcpy(line + PROXY_V1_MAX_LENGTH - 1, "\r\n", 2);
	assert_int_equal(first_invalid(line, PROXY_V1_MAX_LENGTH + 1), PROXY_V1_MAX_LENGTH);
	/* one byte earlier it fits */
	memcpy(line + PROXY_V1_MAX_LENGTH - 2, "\r\n", 2);
	assert_int_equal(parse(line, sizeof(line)), PROXY_OK);
	assert_local(PROXY_V1_MAX_LENGTH, 1);
}

static void test_v1_rejects_lowercase_proxy(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"proxy TCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"Proxy TCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY tcp4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY unknown\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	assert_int_equal(first_invalid(S("proxy TCP4 10.0.0.1 10.0.0.2 1000 80\r\n")), 1);
	assert_int_equal(first_invalid(S("Proxy TCP4 10.0.0.1 10.0.0.2 1000 80\r\n")), 2);
}

static void test_v1_rejects_wrong_protocol_word(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY UDP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP5 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP 10.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY TCP410.0.0.1 10.0.0.2 1000 80\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY UNKNOW\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"PROXYTCP4 10.0.0.1 10.0.0.2 1000 80\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	assert_int_equal(first_invalid(S("PROXY TCP5 10.0.0.1 10.0.0.2 1000 80\r\n")), 10);
}

static void test_v1_rejects_bare_cr_or_lf(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\n",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\rX",
		"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\r\n",
		"PROXY UNKNOWN\n",
		"PROXY UNKNOWN \n",
		"PROXY UNKNOWN junk\njunk\r\n",
		"PROXY UNKNOWN junk\rjunk\r\n",
		NULL,
	};
	assert_lines_invalid(lines);
	/* a CR alone may still get its LF */
	assert_int_equal(parse(S("PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r")), PROXY_INCOMPLETE);
}

/* ------------------------------------------------------------------------ */
/* version 2                                                                 */

static void test_v2_tcp4_gives_addresses_and_length(void **state)
{
	(void)state;
	size_t len = v2_header(0x21, 0x11, block_tcp4, sizeof(block_tcp4));

	assert_int_equal(len, 28);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, 28);
	assert_false(h.local);
	assert_int_equal(h.version, 2);
	assert_address(&h.source, AF_INET, "192.0.2.1", 56324);
	assert_address(&h.destination, AF_INET, "198.51.100.7", 443);
}

static void test_v2_tcp4_skips_tlvs(void **state)
{
	(void)state;
	size_t len = v2_with_tlvs(0x11, block_tcp4, sizeof(block_tcp4));

	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, 28 + sizeof(tlvs));
	assert_false(h.local);
	assert_address(&h.source, AF_INET, "192.0.2.1", 56324);
	assert_address(&h.destination, AF_INET, "198.51.100.7", 443);
}

static void test_v2_tcp6_gives_addresses_and_length(void **state)
{
	(void)state;
	size_t len = v2_header(0x21, 0x21, block_tcp6, sizeof(block_tcp6));

	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, 52);
	assert_false(h.local);
	assert_address(&h.source, AF_INET6, "2001:db8::1", 56324);
	assert_address(&h.destination, AF_INET6, "2001:db8::2", 443);
}

static void test_v2_tcp6_skips_tlvs(void **state)
{
	(void)state;
	size_t len = v2_with_tlvs(0x21, block_tcp6, sizeof(block_tcp6));

	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, 52 + sizeof(tlvs));
	assert_address(&h.source, AF_INET6, "2001:db8::1", 56324);
	assert_address(&h.destination, AF_INET6, "2001:db8::2", 443);
}

static void test_v2_leaves_the_bytes_that_follow(void **state)
{
	(void)state;
	size_t len = v2_header(0x21, 0x11, block_tcp4, sizeof(block_tcp4));

	memcpy(v2 + len, "GET / HTTP/1.1\r\n", 16);
	assert_int_equal(parse(v2, len + 16), PROXY_OK);
	assert_int_equal(h.length, len);
}

static void test_v2_local_keeps_the_peer(void **state)
{
	(void)state;
	/* as senders do it: family UNSPEC, no block */
	size_t len = v2_header(0x20, 0x00, NULL, 0);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16, 2);

	/* with an address block anyway: skipped, not used */
	len = v2_header(0x20, 0x11, block_tcp4, sizeof(block_tcp4));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(28, 2);

	/* the family byte is ignored, even undefined values or a short block */
	len = v2_header(0x20, 0xFF, block_tcp4, 3);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(19, 2);
}

static void test_v2_unspec_family_is_local(void **state)
{
	(void)state;
	size_t len = v2_header(0x21, 0x00, NULL, 0);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16, 2);

	len = v2_header(0x21, 0x00, tlvs, sizeof(tlvs));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16 + sizeof(tlvs), 2);

	/* a family with an unspecified transport: no addresses to read */
	len = v2_header(0x21, 0x10, NULL, 0);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16, 2);
}

static void test_v2_udp_and_unix_are_local_but_valid(void **state)
{
	(void)state;
	static const unsigned char unix_block[216] = "/run/front.sock";
	size_t len = v2_header(0x21, 0x12, block_tcp4, sizeof(block_tcp4));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(28, 2);

	len = v2_header(0x21, 0x22, block_tcp6, sizeof(block_tcp6));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(52, 2);

	len = v2_header(0x21, 0x31, unix_block, sizeof(unix_block));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16 + 216, 2);

	len = v2_header(0x21, 0x32, unix_block, sizeof(unix_block));
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_local(16 + 216, 2);
}

static void test_v2_rejects_bad_version(void **state)
{
	(void)state;
	static const unsigned version_commands[] = { 0x01, 0x11, 0x31, 0xF1, 0x10 };
	for (size_t i = 0; i < sizeof(version_commands) / sizeof(version_commands[0]); i++) {
		size_t len = v2_header(version_commands[i], 0x11, block_tcp4, sizeof(block_tcp4));
		/* as soon as the version byte is there */
		assert_int_equal(first_invalid(v2, len), 13);
	}
}

static void test_v2_rejects_bad_command(void **state)
{
	(void)state;
	static const unsigned version_commands[] = { 0x22, 0x23, 0x2F };
	for (size_t i = 0; i < sizeof(version_commands) / sizeof(version_commands[0]); i++) {
		size_t len = v2_header(version_commands[i], 0x11, block_tcp4, sizeof(block_tcp4));
		assert_int_equal(first_invalid(v2, len), 13);
	}
}

static void test_v2_rejects_undefined_family_or_transport(void **state)
{
	(void)state;
	static const unsigned family_transports[] = { 0x41, 0xF1, 0x13, 0x1F, 0x03, 0x40 };
	for (size_t i = 0; i < sizeof(family_transports) / sizeof(family_transports[0]); i++) {
		size_t len = v2_header(0x21, family_transports[i], block_tcp4, sizeof(block_tcp4));
		assert_int_equal(first_invalid(v2, len), 14);
	}
}

static void test_v2_rejects_block_shorter_than_addresses(void **state)
{
	(void)state;
	static const unsigned char zeros[216];
	static const struct {
		unsigned family_transport;
		size_t block;
	} cases[] = { { 0x11, 11 }, { 0x12, 0 }, { 0x21, 35 }, { 0x21, 12 }, { 0x22, 35 }, { 0x31, 215 }, { 0x32, 108 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = v2_header(0x21, cases[i].family_transport, zeros, cases[i].block);
		/* as soon as the length field is there */
		assert_int_equal(first_invalid(v2, len), 16);
	}
}

static void test_v2_rejects_block_above_limit(void **state)
{
	(void)state;
	static unsigned char block[PROXY_V2_MAX_BLOCK + 1];
	memcpy(block, block_tcp4, sizeof(block_tcp4));

	size_t len = v2_header(0x21, 0x11, block, PROXY_V2_MAX_BLOCK + 1);
	assert_int_equal(first_invalid(v2, len), 16);
	v2[14] = 0xFF;
	v2[15] = 0xFF;
	assert_int_equal(parse(v2, 16), PROXY_INVALID);

	len = v2_header(0x21, 0x11, block, PROXY_V2_MAX_BLOCK);
	assert_int_equal(len, PROXY_MAX_LENGTH);
	assert_int_equal(parse(v2, len - 1), PROXY_INCOMPLETE);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, PROXY_MAX_LENGTH);
	assert_address(&h.source, AF_INET, "192.0.2.1", 56324);
}

static void test_v2_truncated_is_incomplete(void **state)
{
	(void)state;
	size_t len = v2_header(0x21, 0x11, block_tcp4, sizeof(block_tcp4));
	assert_incomplete_until_whole(v2, len);
	len = v2_with_tlvs(0x11, block_tcp4, sizeof(block_tcp4));
	assert_incomplete_until_whole(v2, len);
	len = v2_header(0x21, 0x21, block_tcp6, sizeof(block_tcp6));
	assert_incomplete_until_whole(v2, len);
	len = v2_with_tlvs(0x21, block_tcp6, sizeof(block_tcp6));
	assert_incomplete_until_whole(v2, len);
	len = v2_header(0x20, 0x00, NULL, 0);
	assert_incomplete_until_whole(v2, len);
}

static void test_v2_signature_mismatch_is_invalid_at_once(void **state)
{
	(void)state;
	for (size_t i = 0; i < 12; i++) {
		size_t len = v2_header(0x21, 0x11, block_tcp4, sizeof(block_tcp4));
		v2[i] ^= 0x40;
		assert_int_equal(first_invalid(v2, len), i + 1);
	}
	/* a version 1 signature-lookalike: "\r\n\r\n" then not NUL */
	assert_int_equal(first_invalid(S("\r\n\r\nGET / HTTP/1.1\r\n")), 5);
}

/* ------------------------------------------------------------------------ */
/* either version                                                            */

static void test_empty_input_is_incomplete(void **state)
{
	(void)state;
	assert_int_equal(parse("", 0), PROXY_INCOMPLETE);
	assert_int_equal(proxy_parse(NULL, 0, &h), PROXY_INCOMPLETE);
}

static void test_plain_http_is_invalid_at_first_byte_that_cannot_start_a_header(void **state)
{
	(void)state;
	assert_int_equal(first_invalid(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), 1);
	assert_int_equal(first_invalid(S("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")), 1);
	assert_int_equal(first_invalid(S("POST / HTTP/1.1\r\nHost: a\r\n\r\n")), 2);
	assert_int_equal(first_invalid(S("PUT / HTTP/1.1\r\nHost: a\r\n\r\n")), 2);
	assert_int_equal(first_invalid(S("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n")), 2);
	/* a TLS ClientHello */
	assert_int_equal(first_invalid(S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")), 1);
}

static void test_longest_header_is_decided_within_max_length(void **state)
{
	(void)state;
	/* the longest wait there is: a v2 header announcing the largest block */
	static unsigned char block[PROXY_V2_MAX_BLOCK];
	size_t len = v2_header(0x21, 0x00, block, sizeof(block));
	assert_int_equal(parse(v2, PROXY_MAX_LENGTH - 1), PROXY_INCOMPLETE);
	assert_int_equal(parse(v2, len), PROXY_OK);
	assert_int_equal(h.length, PROXY_MAX_LENGTH);
}

static void test_out_is_untouched_unless_ok(void **state)
{
	(void)state;
	struct proxy_header before, out;
	memset(&before, 0x5A, sizeof(before));
	memcpy(&out, &before, sizeof(out));

	assert_int_equal(proxy_parse(S("PROXY TCP4 10.0.0.1"), &out), PROXY_INCOMPLETE);
	assert_memory_equal(&out, &before, sizeof(out));
	assert_int_equal(proxy_parse(S("GET /"), &out), PROXY_INVALID);
	assert_memory_equal(&out, &before, sizeof(out));
}

/* ---- writing (backends[].send_proxy) ---- */

static struct sockaddr_storage addr(int family, const char *text, unsigned port)
{
	struct sockaddr_storage ss = { 0 };
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	}
	return ss;
}

static void test_write_v1_tcp4_and_tcp6_read_back(void **state)
{
	(void)state;
	char out[PROXY_V1_MAX_LENGTH];
	struct sockaddr_storage s = addr(AF_INET, "192.0.2.7", 40000), d = addr(AF_INET, "10.0.0.1", 443);
	size_t n = proxy_write(1, &s, &d, out, sizeof(out));
	assert_int_equal(n, strlen("PROXY TCP4 192.0.2.7 10.0.0.1 40000 443\r\n"));
	assert_memory_equal(out, "PROXY TCP4 192.0.2.7 10.0.0.1 40000 443\r\n", n);
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_int_equal(h.length, n);
	assert_address(&h.source, AF_INET, "192.0.2.7", 40000);
	assert_address(&h.destination, AF_INET, "10.0.0.1", 443);

	s = addr(AF_INET6, "2001:db8::1", 1), d = addr(AF_INET6, "2001:db8::2", 65535);
	n = proxy_write(1, &s, &d, out, sizeof(out));
	assert_memory_equal(out, "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", n);
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_address(&h.source, AF_INET6, "2001:db8::1", 1);
	assert_address(&h.destination, AF_INET6, "2001:db8::2", 65535);
}

static void test_write_v2_tcp4_and_tcp6_read_back(void **state)
{
	(void)state;
	unsigned char out[PROXY_V2_FIXED_LENGTH + 36];
	struct sockaddr_storage s = addr(AF_INET, "198.51.100.9", 5555), d = addr(AF_INET, "127.0.0.1", 8080);
	size_t n = proxy_write(2, &s, &d, out, sizeof(out));
	assert_int_equal(n, PROXY_V2_FIXED_LENGTH + 12);
	assert_int_equal(out[12], 0x21);
	assert_int_equal(out[13], 0x11);
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_address(&h.source, AF_INET, "198.51.100.9", 5555);
	assert_address(&h.destination, AF_INET, "127.0.0.1", 8080);

	s = addr(AF_INET6, "::1", 9), d = addr(AF_INET6, "fe80::1", 10);
	n = proxy_write(2, &s, &d, out, sizeof(out));
	assert_int_equal(n, PROXY_V2_FIXED_LENGTH + 36);
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_address(&h.source, AF_INET6, "::1", 9);
	assert_address(&h.destination, AF_INET6, "fe80::1", 10);
}

static void test_write_mapped_pairs_and_mixed_families(void **state)
{
	(void)state;
	unsigned char out[PROXY_V1_MAX_LENGTH];
	/* a dual-stack socket's IPv4 client: TCP4, whichever side is mapped */
	struct sockaddr_storage s = addr(AF_INET6, "::ffff:192.0.2.1", 7), d = addr(AF_INET, "10.1.1.1", 80);
	size_t n = proxy_write(1, &s, &d, out, sizeof(out));
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_address(&h.source, AF_INET, "192.0.2.1", 7);
	d = addr(AF_INET6, "::ffff:127.0.0.1", 8080);
	n = proxy_write(1, &s, &d, out, sizeof(out));
	assert_memory_equal(out, "PROXY TCP4 192.0.2.1 127.0.0.1 7 8080\r\n", n);

	/* a real IPv6 client of an IPv4 address: both as IPv6, as HAProxy does */
	s = addr(AF_INET6, "2001:db8::7", 7);
	d = addr(AF_INET, "10.1.1.1", 80);
	n = proxy_write(1, &s, &d, out, sizeof(out));
	assert_memory_equal(out, "PROXY TCP6 2001:db8::7 ::ffff:10.1.1.1 7 80\r\n", n);

	/* no client to name (a health check) */
	assert_int_equal(proxy_write(1, NULL, NULL, out, sizeof(out)), strlen("PROXY UNKNOWN\r\n"));
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
	n = proxy_write(2, NULL, NULL, out, sizeof(out));
	assert_int_equal(n, PROXY_V2_FIXED_LENGTH);
	assert_int_equal(parse(out, n), PROXY_OK);
	assert_local(PROXY_V2_FIXED_LENGTH, 2);
	assert_int_equal(out[12], 0x20);
	assert_int_equal(out[13], 0x00);
}

static void test_write_v2_bytes_exactly(void **state)
{
	(void)state;
	static const unsigned char want[] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
					      0x21, 0x11, 0x00, 0x0c, 192,  0,	  2,    7,    10,   0,	  0,    1,
					      0x9c, 0x40, 0x01, 0xbb };
	unsigned char out[PROXY_V2_FIXED_LENGTH + 36];
	struct sockaddr_storage s = addr(AF_INET, "192.0.2.7", 40000), d = addr(AF_INET, "10.0.0.1", 443);
	size_t n = proxy_write(2, &s, &d, out, sizeof(out));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void test_write_refuses_small_buffers_and_other_versions(void **state)
{
	(void)state;
	unsigned char out[PROXY_V2_FIXED_LENGTH + 36];
	struct sockaddr_storage s = addr(AF_INET, "192.0.2.7", 1), d = addr(AF_INET, "10.0.0.1", 2);
	assert_int_equal(proxy_write(2, &s, &d, out, PROXY_V2_FIXED_LENGTH + 11), 0);
	assert_int_equal(proxy_write(1, &s, &d, out, 10), 0);
	assert_int_equal(proxy_write(3, &s, &d, out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_v1_tcp4_and_tcp6_read_back),
		cmocka_unit_test(test_write_v2_tcp4_and_tcp6_read_back),
		cmocka_unit_test(test_write_mapped_pairs_and_mixed_families),
		cmocka_unit_test(test_write_v2_bytes_exactly),
		cmocka_unit_test(test_write_refuses_small_buffers_and_other_versions),
		cmocka_unit_test(test_v1_tcp4_gives_addresses_and_length),
		cmocka_unit_test(test_v1_tcp6_gives_addresses_and_length),
		cmocka_unit_test(test_v1_tcp6_accepts_ipv4_mapped_addresses),
		cmocka_unit_test(test_v1_unknown_is_local),
		cmocka_unit_test(test_v1_longest_line_of_107_bytes_is_accepted),
		cmocka_unit_test(test_v1_leaves_the_bytes_that_follow),
		cmocka_unit_test(test_v1_prefixes_are_incomplete_then_ok),
		cmocka_unit_test(test_v1_rejects_double_spaces),
		cmocka_unit_test(test_v1_rejects_bad_addresses),
		cmocka_unit_test(test_v1_rejects_port_65536_and_malformed_ports),
		cmocka_unit_test(test_v1_rejects_missing_crlf_within_107_bytes),
		cmocka_unit_test(test_v1_rejects_lowercase_proxy),
		cmocka_unit_test(test_v1_rejects_wrong_protocol_word),
		cmocka_unit_test(test_v1_rejects_bare_cr_or_lf),
		cmocka_unit_test(test_v2_tcp4_gives_addresses_and_length),
		cmocka_unit_test(test_v2_tcp4_skips_tlvs),
		cmocka_unit_test(test_v2_tcp6_gives_addresses_and_length),
		cmocka_unit_test(test_v2_tcp6_skips_tlvs),
		cmocka_unit_test(test_v2_leaves_the_bytes_that_follow),
		cmocka_unit_test(test_v2_local_keeps_the_peer),
		cmocka_unit_test(test_v2_unspec_family_is_local),
		cmocka_unit_test(test_v2_udp_and_unix_are_local_but_valid),
		cmocka_unit_test(test_v2_rejects_bad_version),
		cmocka_unit_test(test_v2_rejects_bad_command),
		cmocka_unit_test(test_v2_rejects_undefined_family_or_transport),
		cmocka_unit_test(test_v2_rejects_block_shorter_than_addresses),
		cmocka_unit_test(test_v2_rejects_block_above_limit),
		cmocka_unit_test(test_v2_truncated_is_incomplete),
		cmocka_unit_test(test_v2_signature_mismatch_is_invalid_at_once),
		cmocka_unit_test(test_empty_input_is_incomplete),
		cmocka_unit_test(test_plain_http_is_invalid_at_first_byte_that_cannot_start_a_header),
		cmocka_unit_test(test_longest_header_is_decided_within_max_length),
		cmocka_unit_test(test_out_is_untouched_unless_ok),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
