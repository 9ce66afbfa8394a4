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
	netutil_format_ip(&ss, out, sizeof(out));
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
	netutil_format_ip(&ss, out, sizeof(out));
	assert_string_equal(out, "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_addresses_format_like_inet_ntop),
		cmocka_unit_test(test_ipv6_addresses_format_like_inet_ntop),
		cmocka_unit_test(test_unknown_family_formats_as_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
