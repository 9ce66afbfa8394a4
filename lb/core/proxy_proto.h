/*
 * proxy_proto: the PROXY protocol header (HAProxy, "The PROXY protocol
 * Versions 1 & 2") that a front L4 balancer sends before the client's bytes,
 * on listeners with proxy_protocol: true (SPEC 11). Pure code: no sockets,
 * no libevent, no allocation, no clock, no global state.
 *
 * The session calls proxy_parse() on the bytes received so far at the start
 * of the connection, again after each read while it says PROXY_INCOMPLETE,
 * until it says PROXY_OK (drain out->length bytes, then go on with what
 * follows: they are the client's) or PROXY_INVALID (close at once: the
 * protocol's section 2.1 asks to abort "as soon as possible"). A connection
 * that stays PROXY_INCOMPLETE is the caller's business (its header timeout).
 * A listener that expects the header never guesses: no header is INVALID.
 *
 * The verdict depends only on the bytes given, and more bytes never change a
 * verdict already given: INVALID on a prefix is INVALID on anything longer,
 * OK on a prefix is the same OK (same header, same length) on anything
 * longer. Bytes after the header are never looked at.
 *
 * Version 1 (text), decisions:
 * - "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ..." and
 *   "PROXY UNKNOWN" followed by CRLF or by a space and anything but CR and LF
 *   up to CRLF (ignored, as the protocol requires). Case-sensitive, exactly one
 *   space between fields, no space before the CRLF, CRLF only (a bare CR or LF
 *   is invalid).
 * - Addresses: what inet_pton() accepts for the announced family (so
 *   "::ffff:10.0.0.1" in TCP6, as inet_ntop() writes it), and for IPv4 no
 *   leading zero in an octet ("010.0.0.1" could be octal). Ports: 0..65535 in
 *   decimal, no sign, no leading zero.
 * - The whole line, CRLF included, is at most PROXY_V1_MAX_LENGTH bytes; so
 *   107 bytes without a CRLF are invalid.
 * - A prefix is INCOMPLETE only while it can still become a valid line:
 *   "PRO" or "PROXY TCP4 10.0" wait for more, "GET " or "PROXY TCP4 300"
 *   are invalid at once, so a plain HTTP client is refused on its first byte.
 *   Inside an IPv6 address the check before its end is only the character
 *   set and length; inet_pton() decides when the address is complete.
 *
 * Version 2 (binary), decisions:
 * - The 12-byte signature, then version 2 with command LOCAL (0) or PROXY (1);
 *   anything else is invalid as soon as that byte has arrived.
 * - LOCAL: the connection comes from the front balancer itself (health
 *   checks): local, keep the real peer; the family byte and the address block
 *   are ignored, as the protocol requires.
 * - PROXY: family UNSPEC/INET/INET6/UNIX and transport UNSPEC/STREAM/DGRAM
 *   (other nibbles invalid). TCP over IPv4 (0x11) and over IPv6 (0x21) give
 *   the addresses; every other valid combination (UNSPEC, UDP, UNIX) is
 *   local: accepted, the real peer is kept, as the protocol allows. A block
 *   shorter than the addresses of its family (12, 36, 216 bytes; nothing when
 *   family or transport is UNSPEC) is invalid.
 * - The bytes after the addresses (TLVs: ALPN, authority, SSL, CRC32C...)
 *   are skipped without being parsed: the protocol lets a receiver "skip over
 *   and ignore" them, and lb has no use for them.
 * - The block is at most PROXY_V2_MAX_BLOCK bytes: a header announcing more
 *   is invalid as soon as its length field has arrived, so the caller never
 *   buffers more than PROXY_MAX_LENGTH bytes for it.
 */
#ifndef LB_PROXY_PROTO_H
#define LB_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h> /* struct sockaddr_storage */

/* A version 1 line, CRLF included, is never longer ("PROXY UNKNOWN" with two
 * full IPv6 addresses and ports: the protocol's worst case). */
#define PROXY_V1_MAX_LENGTH 107

/* Fixed part of a version 2 header: signature, version/command, family,
 * length of the block that follows. */
#define PROXY_V2_FIXED_LENGTH 16

/* The largest version 2 address block (addresses and TLVs) accepted. The
 * protocol allows 65535; real senders put addresses and a few short TLVs. */
#define PROXY_V2_MAX_BLOCK 4096

/* The longest header accepted. proxy_parse() never answers PROXY_INCOMPLETE
 * on this many bytes: a caller's buffer of this size is always enough. */
#define PROXY_MAX_LENGTH (PROXY_V2_FIXED_LENGTH + PROXY_V2_MAX_BLOCK)

enum proxy_result {
	PROXY_INCOMPLETE, /* a valid header so far: read more */
	PROXY_OK, /* a complete, valid header: see struct proxy_header */
	PROXY_INVALID, /* not a valid header, whatever follows: close */
};

struct proxy_header {
	size_t length; /* bytes the header occupies at the start: the caller drains them */
	bool local; /* v1 UNKNOWN, v2 LOCAL, or v2 without TCP addresses: keep the real peer */
	/* When !local: the original client and the address it connected to,
	 * both AF_INET or both AF_INET6, port included (network byte order as
	 * in any sockaddr). When local: both zero (AF_UNSPEC). */
	struct sockaddr_storage source;
	struct sockaddr_storage destination;
	int version; /* 1 or 2: for logs */
};

/* Parses the header at the start of buf[0..len), the bytes that have
 * arrived so far on the connection (len may be 0). Fills *out on PROXY_OK
 * only; leaves it untouched otherwise. */
enum proxy_result proxy_parse(const void *buf, size_t len, struct proxy_header *out);

/* A header to send (backends[].send_proxy): version 1 or 2, for a client
 * at `source` that connected to `destination`, each AF_INET or AF_INET6:
 * two IPv4 addresses (plain or v4-mapped) go as TCP4, else both as TCP6
 * (an IPv4 one v4-mapped), v2 PROXY over STREAM; NULL or another family
 * says nothing of the client: v1 "PROXY UNKNOWN", v2 LOCAL (what a health
 * check sends). Writes
 * at most PROXY_V1_MAX_LENGTH (v1) or PROXY_V2_FIXED_LENGTH + 36 (v2)
 * bytes to out; returns the length, 0 if cap is too small. proxy_parse
 * reads back what it writes. */
size_t proxy_write(int version, const struct sockaddr_storage *source, const struct sockaddr_storage *destination,
		   void *out, size_t cap);

#endif
