/*
 * http_chars: byte classes of HTTP/1.x (RFC 9110 5.5, 5.6), shared by the
 * pure HTTP files (http_msg.c, http_body.c, http_rewrite.c). Header-only,
 * static inline: nothing here is lb's API.
 */
#ifndef LB_HTTP_CHARS_H
#define LB_HTTP_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 9110 5.6.2 tchar: the bytes of a token (method, field name, coding). */
static const uint8_t tchar[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline bool is_tchar(unsigned char c)
{
	return tchar[c] != 0;
}

/* field-vchar / SP / HTAB (RFC 9110 5.5), obs-text included: every byte but
 * the controls (NUL, CR, LF among them) and DEL. */
static inline bool is_field_char(unsigned char c)
{
	return c >= 0x20 ? c != 0x7f : c == '\t';
}

static inline bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive equality of two byte strings of length n. */
static inline bool equal_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* s[0..n) equals the lower-case literal lit, ignoring case. */
#define EQ_LIT(s, n, lit) ((n) == sizeof(lit) - 1 && equal_nocase((s), (lit), sizeof(lit) - 1))

#endif
