/*
 * netutil: small socket helpers shared by the sessions.
 */
#ifndef LB_NETUTIL_H
#define LB_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

/* An IPv4 or IPv6 socket address in the room it needs: 28 bytes where a
 * sockaddr_storage takes 128, and every idle connection keeps two. */
union sockaddr_ip {
	struct sockaddr sa; /* AF_UNSPEC: none */
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

/* Copy an IPv4 or IPv6 address; any other family gives AF_UNSPEC. */
void netutil_sockaddr_ip(union sockaddr_ip *out, const struct sockaddr_storage *ss);

/* The address part of a peer ("127.0.0.1", "::1") into out. */
void netutil_format_ip(const union sockaddr_ip *sa, char *out, size_t cap);

/* Pointer to and length of the raw address bytes (the source_ip hash key);
 * an IPv4-mapped IPv6 address gives its IPv4 bytes. */
const void *netutil_ip_bytes(const union sockaddr_ip *sa, size_t *len);

/* Milliseconds between two timevals (b - a), 0 when negative. */
uint64_t netutil_elapsed_ms(const struct timeval *a, const struct timeval *b);

/* Is errno `err` of a socket or connect lb's own shortage (descriptors,
 * memory, buffers) rather than anything the peer did? (EADDRNOTAVAIL is
 * not: it also means an address that can never work, such as ::1 on a
 * host without IPv6.) */
bool netutil_errno_is_local(int err);

/* A timeval of `ms` milliseconds. */
struct timeval netutil_timeval_ms(uint64_t ms);

#endif
