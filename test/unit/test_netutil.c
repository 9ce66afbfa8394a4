/* netutil: address formatting (a hand-written fast path for IPv4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "netutil.h"

static void assert_formats_as_inet_ntop(int family, const char *text)
{
	struct sockaddr_storage ss;
	char out[64], expected[64];
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	void *addr = family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
				       : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	assert_int_equal(inet_pton(family, text, addr), 1);
	assert_non_null(inet_ntop(family, addr, expected, sizeof(expected)));
	union sockaddr_ip ip;
	netutil_sockaddr_ip(&ip, &ss);
	netutil_format_ip(&ip, out, sizeof(out));
	assert_string_equal(out, expected);
}

static void test_ipv4_addresses_format_like_inet_ntop(void **state)
{
	(void)state;
	static const char *const addrs[] = { "0.0.0.0", "127.0.0.1", "255.255.255.255", "10.20.30.40",
					     "1.100.99.9", "192.168.1.254", "9.90.109.200" };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
		assert_formats_as_inet_ntop(AF_INET, addrs[i]);
	/* every octet value in every position (the others vary too) */
	for (unsigned position = 0; position < 4; position++) {
		for (unsigned v = 0; v < 256; v++) {
			unsigned o[4];
			for (unsigned i = 0; i < 4; i++)
				o[i] = i == position ? v : (v * 7 + i * 31) % 256;
			char text[32];
			snprintf(text, sizeof(text), "%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
			assert_formats_as_inet_ntop(AF_INET, text);
		}
	}
}

static void test_ipv6_addresses_format_like_inet_ntop(void **state)
{
	(void)state;
	assert_formats_as_inet_ntop(AF_INET6, "::1");
	assert_formats_as_inet_ntop(AF_INET6, "2001:db8::7");
}

static void test_unknown_family_formats_as_unknown(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	char out[64];
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	union sockaddr_ip ip;
	netutil_sockaddr_ip(&ip, &ss);
	assert_int_equal(ip.sa.sa_family, AF_UNSPEC);
	netutil_format_ip(&ip, out, sizeof(out));
	assert_string_equal(out, "unknown");
}

/* A copy keeps the whole IPv6 address (port, scope) in its 28 bytes. */
static void test_sockaddr_ip_keeps_an_ipv6_address_whole(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	memset(&ss, 0xee, sizeof(ss));
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	v6->sin6_family = AF_INET6;
	v6->sin6_port = htons(8443);
	v6->sin6_flowinfo = 0;
	v6->sin6_scope_id = 7;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &v6->sin6_addr), 1);
	union sockaddr_ip ip;
	netutil_sockaddr_ip(&ip, &ss);
	assert_memory_equal(&ip.v6, v6, sizeof(*v6));
	size_t len;
	const unsigned char *bytes = netutil_ip_bytes(&ip, &len);
	assert_int_equal(len, 4); /* IPv4-mapped: the IPv4 key */
	assert_memory_equal(bytes, "\x0a\x01\x02\x03", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_addresses_format_like_inet_ntop),
		cmocka_unit_test(test_ipv6_addresses_format_like_inet_ntop),
		cmocka_unit_test(test_unknown_family_formats_as_unknown),
		cmocka_unit_test(test_sockaddr_ip_keeps_an_ipv6_address_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
