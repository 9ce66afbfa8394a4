/* netutil: see netutil.h. */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Dotted quad by hand: inet_ntop goes through sprintf, a tenth of the
 * instructions of a short connection. */
static void format_ipv4(const unsigned char *b, char *out)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];
		if (v >= 100)
			*out++ = (char)('0' + v / 100);
		if (v >= 10)
			*out++ = (char)('0' + v / 10 % 10);
		*out++ = (char)('0' + v % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

void netutil_sockaddr_ip(union sockaddr_ip *out, const struct sockaddr_storage *ss)
{
	memset(out, 0, sizeof(*out));
	if (ss->ss_family == AF_INET)
		memcpy(&out->v4, ss, sizeof(out->v4));
	else if (ss->ss_family == AF_INET6)
		memcpy(&out->v6, ss, sizeof(out->v6));
	else
		out->sa.sa_family = AF_UNSPEC;
}

void netutil_format_ip(const union sockaddr_ip *sa, char *out, size_t cap)
{
	int family = sa->sa.sa_family;
	if (family == AF_INET && cap >= INET_ADDRSTRLEN) {
		format_ipv4((const unsigned char *)&sa->v4.sin_addr, out);
		return;
	}
	const void *ip = NULL;
	if (family == AF_INET)
		ip = &sa->v4.sin_addr;
	else if (family == AF_INET6)
		ip = &sa->v6.sin6_addr;
	if (ip == NULL || inet_ntop(family, ip, out, (socklen_t)cap) == NULL)
		snprintf(out, cap, "unknown");
}

const void *netutil_ip_bytes(const union sockaddr_ip *sa, size_t *len)
{
	if (sa->sa.sa_family == AF_INET6) {
		const struct in6_addr *a = &sa->v6.sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) { /* a dual-stack socket's IPv4 client: the same key as over IPv4 */
			*len = sizeof(struct in_addr);
			return &a->s6_addr[12];
		}
		*len = sizeof(struct in6_addr);
		return a;
	}
	*len = sizeof(struct in_addr);
	return &sa->v4.sin_addr;
}

uint64_t netutil_elapsed_ms(const struct timeval *a, const struct timeval *b)
{
	int64_t ms = ((int64_t)b->tv_sec - a->tv_sec) * 1000 + ((int64_t)b->tv_usec - a->tv_usec) / 1000;
	return ms > 0 ? (uint64_t)ms : 0;
}

struct timeval netutil_timeval_ms(uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((ms % 1000) * 1000) };
	return tv;
}

bool netutil_errno_is_local(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
