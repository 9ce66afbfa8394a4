/*
 * proxy_proto: the PROXY protocol header, versions 1 and 2.
 * See proxy_proto.h for the contract and the decisions taken.
 *
 * Both parsers read the bytes front to back and check each part as soon as
 * it has arrived, so that a verdict is given on the shortest prefix that
 * decides it, and never depends on a byte that has not arrived: that is what
 * makes "INVALID now is INVALID forever" hold (test/fuzz/fuzz_proxy_proto.c
 * checks it on every prefix).
 *
 * Internally each step returns PROXY_OK for "this part is there and valid,
 * go on", PROXY_INCOMPLETE or PROXY_INVALID to stop with that verdict.
 */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* version 1                                                                 */

/* A cursor over the first bytes of a version 1 line. Only the first
 * PROXY_V1_MAX_LENGTH bytes may belong to the line: once that many have
 * arrived, running out of bytes means the line is too long. */
struct v1_scan {
	const char *text;
	size_t avail; /* bytes visible: min(len, PROXY_V1_MAX_LENGTH) */
	bool capped; /* len >= PROXY_V1_MAX_LENGTH: no later byte can help */
	size_t pos;
};

/* The verdict when the line goes on past the bytes visible. */
static enum proxy_result v1_out_of_bytes(const struct v1_scan *s)
{
	return s->capped ? PROXY_INVALID : PROXY_INCOMPLETE;
}

/* Matches the literal `lit` at the cursor and moves past it. */
static enum proxy_result v1_expect(struct v1_scan *s, const char *lit)
{
	for (; *lit != '\0'; lit++, s->pos++) {
		if (s->pos == s->avail)
			return v1_out_of_bytes(s);
		if (s->text[s->pos] != *lit)
			return PROXY_INVALID;
	}
	return PROXY_OK;
}

/* The protocol word and the separator that follows it when there is always
 * one. None is a prefix of another, so a partial match picks at most one. */
static const struct {
	const char *word;
	int family;
} v1_protocols[] = {
	{ "TCP4 ", AF_INET },
	{ "TCP6 ", AF_INET6 },
	{ "UNKNOWN", AF_UNSPEC },
};

static enum proxy_result v1_protocol(struct v1_scan *s, int *family)
{
	size_t left = s->avail - s->pos;
	bool partial = false;

	for (size_t i = 0; i < sizeof(v1_protocols) / sizeof(v1_protocols[0]); i++) {
		size_t n = strlen(v1_protocols[i].word);
		size_t compared = left < n ? left : n;
		if (memcmp(s->text + s->pos, v1_protocols[i].word, compared) != 0)
			continue;
		if (compared < n) {
			partial = true;
			continue;
		}
		s->pos += n;
		*family = v1_protocols[i].family;
		return PROXY_OK;
	}
	return partial ? v1_out_of_bytes(s) : PROXY_INVALID;
}

/* "UNKNOWN" is followed by CRLF, or by a space and anything up to CRLF
 * (which the protocol says to ignore); a bare LF is no line end. */
static enum proxy_result v1_unknown_rest(struct v1_scan *s)
{
	if (s->pos < s->avail && s->text[s->pos] == ' ') {
		s->pos++;
		while (s->pos < s->avail && s->text[s->pos] != '\r' && s->text[s->pos] != '\n')
			s->pos++;
	}
	return v1_expect(s, "\r\n");
}

enum v1_field_kind { V1_IPV4, V1_IPV6, V1_PORT };

/* Longest text of each kind: "255.255.255.255", INET6_ADDRSTRLEN - 1 (an
 * IPv6 address ending in a dotted IPv4 one), "65535". */
static const size_t v1_field_max[] = {
	[V1_IPV4] = 15,
	[V1_IPV6] = 45,
	[V1_PORT] = 5,
};

static bool is_hex_letter(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Scans one field up to the byte `end` (not consumed). Every byte is checked
 * as it comes, so that a field that can no longer become valid is refused
 * before its end arrives: for IPv4 addresses and ports exactly (decimal
 * numbers without leading zero, octets up to 255 and four of them, ports up
 * to 65535), for IPv6 addresses by character set and length only
 * (inet_pton() judges the complete text). On PROXY_OK, *start is the offset
 * of the field and *number the port's value (ports only).
 */
static enum proxy_result v1_field(struct v1_scan *s, enum v1_field_kind kind, char end, size_t *start,
				  unsigned *number)
{
	unsigned value = 0, digits = 0, dots = 0;

	*start = s->pos;
	for (;; s->pos++) {
		if (s->pos == s->avail)
			return v1_out_of_bytes(s);
		char c = s->text[s->pos];
		if (c == end)
			break;
		if (s->pos - *start == v1_field_max[kind])
			return PROXY_INVALID;
		bool digit = c >= '0' && c <= '9';
		if (kind == V1_IPV6) {
			if (!digit && !is_hex_letter(c) && c != ':' && c != '.')
				return PROXY_INVALID;
			continue;
		}
		if (kind == V1_IPV4 && c == '.') {
			if (digits == 0 || ++dots > 3)
				return PROXY_INVALID;
			value = digits = 0;
			continue;
		}
		if (!digit || (digits == 1 && value == 0))
			return PROXY_INVALID; /* not a digit, or after a leading zero */
		value = value * 10 + (unsigned)(c - '0');
		digits++;
		if (value > (kind == V1_PORT ? 65535u : 255u))
			return PROXY_INVALID;
	}
	if (digits == 0 && kind != V1_IPV6)
		return PROXY_INVALID; /* empty port, empty last octet */
	if (kind == V1_IPV4 && dots != 3)
		return PROXY_INVALID;
	if (s->pos == *start)
		return PROXY_INVALID; /* empty IPv6 address */
	*number = value;
	return PROXY_OK;
}

/* An address field, checked by inet_pton() once complete. `addr` is a
 * struct in_addr or struct in6_addr according to `family`. */
static enum proxy_result v1_address(struct v1_scan *s, int family, char end, void *addr)
{
	char text[46]; /* INET6_ADDRSTRLEN */
	size_t start;
	unsigned unused;
	enum proxy_result r = v1_field(s, family == AF_INET ? V1_IPV4 : V1_IPV6, end, &start, &unused);

	if (r != PROXY_OK)
		return r;
	/* v1_field_max keeps it within text[] */
	memcpy(text, s->text + start, s->pos - start);
	text[s->pos - start] = '\0';
	return inet_pton(family, text, addr) == 1 ? PROXY_OK : PROXY_INVALID;
}

static enum proxy_result v1_port(struct v1_scan *s, char end, in_port_t *port)
{
	size_t start;
	unsigned value;
	enum proxy_result r = v1_field(s, V1_PORT, end, &start, &value);

	if (r == PROXY_OK)
		*port = htons((uint16_t)value);
	return r;
}

static void set_ipv4(struct sockaddr_storage *ss, struct in_addr addr, in_port_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr = addr;
	sin.sin_port = port;
	memcpy(ss, &sin, sizeof(sin));
}

static void set_ipv6(struct sockaddr_storage *ss, const struct in6_addr *addr, in_port_t port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = *addr;
	sin6.sin6_port = port;
	memcpy(ss, &sin6, sizeof(sin6));
}

/* Steps through the line in order, stopping at the first step that is not
 * PROXY_OK. */
#define V1_STEP(call)                     \
	do {                              \
		enum proxy_result r_ = (call); \
		if (r_ != PROXY_OK)       \
			return r_;        \
	} while (0)

static enum proxy_result parse_v1(const char *text, size_t len, struct proxy_header *h)
{
	struct v1_scan s = {
		.text = text,
		.avail = len < PROXY_V1_MAX_LENGTH ? len : PROXY_V1_MAX_LENGTH,
		.capped = len >= PROXY_V1_MAX_LENGTH,
		.pos = 0,
	};
	int family = AF_UNSPEC;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} source, destination;
	in_port_t source_port, destination_port;

	V1_STEP(v1_expect(&s, "PROXY "));
	V1_STEP(v1_protocol(&s, &family));
	h->version = 1;
	if (family == AF_UNSPEC) {
		V1_STEP(v1_unknown_rest(&s));
		h->length = s.pos;
		h->local = true;
		return PROXY_OK;
	}
	V1_STEP(v1_address(&s, family, ' ', &source));
	V1_STEP(v1_expect(&s, " "));
	V1_STEP(v1_address(&s, family, ' ', &destination));
	V1_STEP(v1_expect(&s, " "));
	V1_STEP(v1_port(&s, ' ', &source_port));
	V1_STEP(v1_expect(&s, " "));
	V1_STEP(v1_port(&s, '\r', &destination_port));
	V1_STEP(v1_expect(&s, "\r\n"));

	h->length = s.pos;
	h->local = false;
	if (family == AF_INET) {
		set_ipv4(&h->source, source.v4, source_port);
		set_ipv4(&h->destination, destination.v4, destination_port);
	} else {
		set_ipv6(&h->source, &source.v6, source_port);
		set_ipv6(&h->destination, &destination.v6, destination_port);
	}
	return PROXY_OK;
}

/* ------------------------------------------------------------------------ */
/* version 2                                                                 */

static const unsigned char v2_signature[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

enum { V2_COMMAND_LOCAL = 0x0, V2_COMMAND_PROXY = 0x1 };
enum { V2_FAMILY_UNSPEC = 0x0, V2_FAMILY_INET = 0x1, V2_FAMILY_INET6 = 0x2, V2_FAMILY_UNIX = 0x3 };
enum { V2_TRANSPORT_UNSPEC = 0x0, V2_TRANSPORT_STREAM = 0x1, V2_TRANSPORT_DGRAM = 0x2 };

/* Bytes of source and destination addresses (and ports) per family. */
static const size_t v2_address_size[] = {
	[V2_FAMILY_UNSPEC] = 0,
	[V2_FAMILY_INET] = 2 * 4 + 2 * 2,
	[V2_FAMILY_INET6] = 2 * 16 + 2 * 2,
	[V2_FAMILY_UNIX] = 2 * 108,
};

/* Byte offsets in the fixed part. */
enum { V2_VERSION_COMMAND = 12, V2_FAMILY_TRANSPORT = 13, V2_BLOCK_LENGTH = 14 };

static enum proxy_result parse_v2(const unsigned char *p, size_t len, struct proxy_header *h)
{
	size_t compared = len < sizeof(v2_signature) ? len : sizeof(v2_signature);
	if (memcmp(p, v2_signature, compared) != 0)
		return PROXY_INVALID;

	if (len <= V2_VERSION_COMMAND)
		return PROXY_INCOMPLETE;
	unsigned version = p[V2_VERSION_COMMAND] >> 4, command = p[V2_VERSION_COMMAND] & 0x0F;
	if (version != 2 || (command != V2_COMMAND_LOCAL && command != V2_COMMAND_PROXY))
		return PROXY_INVALID;

	/* LOCAL ignores the family byte, as the protocol says. */
	if (len <= V2_FAMILY_TRANSPORT)
		return PROXY_INCOMPLETE;
	unsigned family = p[V2_FAMILY_TRANSPORT] >> 4, transport = p[V2_FAMILY_TRANSPORT] & 0x0F;
	if (command == V2_COMMAND_PROXY && (family > V2_FAMILY_UNIX || transport > V2_TRANSPORT_DGRAM))
		return PROXY_INVALID;

	if (len < PROXY_V2_FIXED_LENGTH)
		return PROXY_INCOMPLETE;
	size_t block = (size_t)p[V2_BLOCK_LENGTH] << 8 | p[V2_BLOCK_LENGTH + 1];
	if (block > PROXY_V2_MAX_BLOCK)
		return PROXY_INVALID;
	bool has_addresses = command == V2_COMMAND_PROXY && transport != V2_TRANSPORT_UNSPEC;
	if (has_addresses && block < v2_address_size[family])
		return PROXY_INVALID;
	if (len - PROXY_V2_FIXED_LENGTH < block)
		return PROXY_INCOMPLETE;

	h->version = 2;
	h->length = PROXY_V2_FIXED_LENGTH + block;
	h->local = !has_addresses || transport != V2_TRANSPORT_STREAM ||
		   (family != V2_FAMILY_INET && family != V2_FAMILY_INET6);
	if (h->local)
		return PROXY_OK;

	/* source address, destination address, source port, destination port,
	 * all in network byte order, then TLVs that we skip. */
	const unsigned char *block_start = p + PROXY_V2_FIXED_LENGTH;
	in_port_t source_port, destination_port;
	if (family == V2_FAMILY_INET) {
		struct in_addr source, destination;
		memcpy(&source, block_start, 4);
		memcpy(&destination, block_start + 4, 4);
		memcpy(&source_port, block_start + 8, 2);
		memcpy(&destination_port, block_start + 10, 2);
		set_ipv4(&h->source, source, source_port);
		set_ipv4(&h->destination, destination, destination_port);
	} else {
		struct in6_addr source, destination;
		memcpy(&source, block_start, 16);
		memcpy(&destination, block_start + 16, 16);
		memcpy(&source_port, block_start + 32, 2);
		memcpy(&destination_port, block_start + 34, 2);
		set_ipv6(&h->source, &source, source_port);
		set_ipv6(&h->destination, &destination, destination_port);
	}
	return PROXY_OK;
}

/* ------------------------------------------------------------------------ */

enum proxy_result proxy_parse(const void *buf, size_t len, struct proxy_header *out)
{
	const unsigned char *p = buf;
	struct proxy_header h;
	enum proxy_result r;

	if (len == 0)
		return PROXY_INCOMPLETE;
	memset(&h, 0, sizeof(h)); /* local: both addresses AF_UNSPEC */
	if (p[0] == 'P')
		r = parse_v1(buf, len, &h);
	else if (p[0] == v2_signature[0])
		r = parse_v2(p, len, &h);
	else
		r = PROXY_INVALID;
	if (r == PROXY_OK)
		memcpy(out, &h, sizeof(h));
	return r;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

/* The IPv4 address of an IPv4-mapped IPv6 one (::ffff:a.b.c.d). */
static bool unmapped_ipv4(const struct sockaddr_storage *ss, struct sockaddr_in *out)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return false;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	memcpy(&out->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
	out->sin_port = in6->sin6_port;
	return true;
}

/* An IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
static void mapped_ipv6(struct sockaddr_storage *ss)
{
	struct sockaddr_in in;
	memcpy(&in, ss, sizeof(in));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(in6, 0, sizeof(*in6));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = in.sin_port;
	in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&in6->sin6_addr.s6_addr[12], &in.sin_addr, 4);
}

/* Is ss an IPv4 address, plain or v4-mapped? */
static bool ipv4_kind(const struct sockaddr_storage *ss)
{
	struct sockaddr_in ignored;
	return ss->ss_family == AF_INET || unmapped_ipv4(ss, &ignored);
}

/* The pair in one family, or AF_UNSPEC (no pair, or not IP): two IPv4
 * ones (plain or v4-mapped, as a dual-stack socket gives them) as IPv4,
 * else both as IPv6 (an IPv4 one v4-mapped beside a real IPv6 one, as
 * HAProxy sends such a pair). */
static int pair_family(const struct sockaddr_storage *source, const struct sockaddr_storage *destination,
		       struct sockaddr_storage *src, struct sockaddr_storage *dst)
{
	if (source == NULL || destination == NULL)
		return AF_UNSPEC;
	*src = *source;
	*dst = *destination;
	for (int i = 0; i < 2; i++) {
		int family = (i == 0 ? src : dst)->ss_family;
		if (family != AF_INET && family != AF_INET6)
			return AF_UNSPEC;
	}
	struct sockaddr_in v4;
	if (ipv4_kind(src) && ipv4_kind(dst)) {
		if (unmapped_ipv4(src, &v4))
			memcpy(src, &v4, sizeof(v4));
		if (unmapped_ipv4(dst, &v4))
			memcpy(dst, &v4, sizeof(v4));
		return AF_INET;
	}
	if (src->ss_family == AF_INET)
		mapped_ipv6(src);
	if (dst->ss_family == AF_INET)
		mapped_ipv6(dst);
	return AF_INET6;
}

static size_t write_v1(int family, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		       char *out, size_t cap)
{
	int n;
	if (family == AF_UNSPEC) {
		n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
	} else {
		char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
		const void *sa, *da;
		unsigned sp, dp;
		if (family == AF_INET) {
			sa = &((const struct sockaddr_in *)src)->sin_addr;
			da = &((const struct sockaddr_in *)dst)->sin_addr;
			sp = ntohs(((const struct sockaddr_in *)src)->sin_port);
			dp = ntohs(((const struct sockaddr_in *)dst)->sin_port);
		} else {
			sa = &((const struct sockaddr_in6 *)src)->sin6_addr;
			da = &((const struct sockaddr_in6 *)dst)->sin6_addr;
			sp = ntohs(((const struct sockaddr_in6 *)src)->sin6_port);
			dp = ntohs(((const struct sockaddr_in6 *)dst)->sin6_port);
		}
		inet_ntop(family, sa, s, sizeof(s));
		inet_ntop(family, da, d, sizeof(d));
		n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", family == AF_INET ? "TCP4" : "TCP6", s, d, sp, dp);
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t write_v2(int family, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		       unsigned char *out, size_t cap)
{
	size_t block = family == AF_INET ? 12 : family == AF_INET6 ? 36 : 0;
	if (cap < PROXY_V2_FIXED_LENGTH + block)
		return 0;
	memcpy(out, v2_signature, sizeof(v2_signature));
	out[12] = family == AF_UNSPEC ? 0x20 : 0x21; /* version 2, LOCAL or PROXY */
	out[13] = family == AF_INET ? 0x11 : family == AF_INET6 ? 0x21 : 0x00; /* TCP over v4/v6, or UNSPEC */
	out[14] = (unsigned char)(block >> 8);
	out[15] = (unsigned char)block;
	unsigned char *b = out + PROXY_V2_FIXED_LENGTH;
	if (family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
		memcpy(b, &s->sin_addr, 4);
		memcpy(b + 4, &d->sin_addr, 4);
		memcpy(b + 8, &s->sin_port, 2);
		memcpy(b + 10, &d->sin_port, 2);
	} else if (family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src, *d = (const struct sockaddr_in6 *)dst;
		memcpy(b, &s->sin6_addr, 16);
		memcpy(b + 16, &d->sin6_addr, 16);
		memcpy(b + 32, &s->sin6_port, 2);
		memcpy(b + 34, &d->sin6_port, 2);
	}
	return PROXY_V2_FIXED_LENGTH + block;
}

size_t proxy_write(int version, const struct sockaddr_storage *source, const struct sockaddr_storage *destination,
		   void *out, size_t cap)
{
	struct sockaddr_storage src = { 0 }, dst = { 0 };
	int family = pair_family(source, destination, &src, &dst);
	if (version == 1)
		return write_v1(family, &src, &dst, out, cap);
	if (version == 2)
		return write_v2(family, &src, &dst, out, cap);
	return 0;
}
