/*
 * netutil: small socket helpers shared by the sessions.
 */
#ifndef LB_NETUTIL_H
#define LB_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

/* The address part of a peer ("127.0.0.1", "::1") into out. */
void netutil_format_ip(const struct sockaddr_storage *sa, char *out, size_t cap);

/* Pointer to and length of the raw address bytes (the source_ip hash key);
 * an IPv4-mapped IPv6 address gives its IPv4 bytes. */
const void *netutil_ip_bytes(const struct sockaddr_storage *sa, size_t *len);

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
