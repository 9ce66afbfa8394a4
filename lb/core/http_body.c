/* http_body: HTTP/1.x body framing (Content-Length, chunked, until close),
 * fed as bytes arrive. See http_msg.h. */
#include "http_msg.h"

#include "http_chars.h"

enum chunk_state {
	CS_SIZE_FIRST, /* first hex digit of a chunk-size */
	CS_SIZE, /* further hex digits, or BWS, ';', CR */
	CS_SIZE_BWS, /* whitespace after the size: only ';' (an extension) may follow */
	CS_EXT, /* chunk extensions, ignored, until CR */
	CS_SIZE_LF, /* LF ending the chunk-size line */
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER_START, /* a trailer field line, or the CR of the final empty line */
	CS_TRAILER_NAME,
	CS_TRAILER_VALUE,
	CS_TRAILER_LF,
	CS_FINAL_LF,
	CS_DONE,
};

void http_body_init(struct http_body *body, enum http_framing framing, uint64_t content_length)
{
	body->framing = framing;
	body->remaining = 0;
	body->payload = 0;
	body->line_len = 0;
	body->trailer_len = 0;
	body->state = CS_SIZE_FIRST;
	if (framing == HTTP_FRAMING_LENGTH)
		body->remaining = content_length;
	if (framing == HTTP_FRAMING_NONE || (framing == HTTP_FRAMING_LENGTH && content_length == 0))
		body->state = CS_DONE;
}

void http_body_init_head(struct http_body *body, const struct http_head *h)
{
	http_body_init(body, h->framing, h->content_length);
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static enum http_body_status chunked_feed(struct http_body *b, const char *data, size_t len, size_t *used)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)data[i];
		int d;
		switch ((enum chunk_state)b->state) {
		case CS_SIZE_FIRST:
			d = hex_value(c);
			if (d < 0)
				goto fail;
			b->remaining = (uint64_t)d;
			b->line_len = 1;
			b->state = CS_SIZE;
			break;
		case CS_SIZE:
			if (++b->line_len > HTTP_MAX_CHUNK_LINE)
				goto fail;
			d = hex_value(c);
			if (d >= 0) {
				if (b->remaining >> 60)
					goto fail; /* a 65th bit */
				b->remaining = (b->remaining << 4) | (uint64_t)d;
			} else if (c == ';') {
				b->state = CS_EXT;
			} else if (is_ows(c)) {
				b->state = CS_SIZE_BWS;
			} else if (c == '\r') {
				b->state = CS_SIZE_LF;
			} else {
				goto fail;
			}
			break;
		case CS_SIZE_BWS:
			if (++b->line_len > HTTP_MAX_CHUNK_LINE)
				goto fail;
			if (c == ';')
				b->state = CS_EXT;
			else if (!is_ows(c))
				goto fail;
			break;
		case CS_EXT:
			if (++b->line_len > HTTP_MAX_CHUNK_LINE)
				goto fail;
			if (c == '\r')
				b->state = CS_SIZE_LF;
			else if (!is_field_char(c))
				goto fail;
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				goto fail;
			b->state = b->remaining == 0 ? CS_TRAILER_START : CS_DATA;
			break;
		case CS_DATA: {
			size_t n = len - i;
			if ((uint64_t)n > b->remaining)
				n = (size_t)b->remaining;
			b->remaining -= n;
			b->payload += n;
			i += n;
			if (b->remaining == 0)
				b->state = CS_DATA_CR;
			continue;
		}
		case CS_DATA_CR:
			if (c != '\r')
				goto fail;
			b->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				goto fail;
			b->state = CS_SIZE_FIRST;
			break;
		case CS_TRAILER_START:
			if (++b->trailer_len > HTTP_MAX_TRAILERS)
				goto fail;
			if (c == '\r')
				b->state = CS_FINAL_LF;
			else if (is_tchar(c))
				b->state = CS_TRAILER_NAME;
			else
				goto fail; /* obs-fold, empty name, junk */
			break;
		case CS_TRAILER_NAME:
			if (++b->trailer_len > HTTP_MAX_TRAILERS)
				goto fail;
			if (c == ':')
				b->state = CS_TRAILER_VALUE;
			else if (!is_tchar(c))
				goto fail;
			break;
		case CS_TRAILER_VALUE:
			if (++b->trailer_len > HTTP_MAX_TRAILERS)
				goto fail;
			if (c == '\r')
				b->state = CS_TRAILER_LF;
			else if (!is_field_char(c))
				goto fail;
			break;
		case CS_TRAILER_LF:
			if (c != '\n')
				goto fail;
			b->state = CS_TRAILER_START;
			break;
		case CS_FINAL_LF:
			if (c != '\n')
				goto fail;
			b->state = CS_DONE;
			*used = i + 1;
			return HTTP_BODY_DONE;
		case CS_DONE:
			*used = i;
			return HTTP_BODY_DONE;
		}
		i++;
	}
	*used = len;
	return b->state == CS_DONE ? HTTP_BODY_DONE : HTTP_BODY_MORE;
fail:
	*used = i;
	return HTTP_BODY_ERROR;
}

enum http_body_status http_body_feed(struct http_body *body, const char *data, size_t len, size_t *used)
{
	if (body->state == CS_DONE) {
		*used = 0;
		return HTTP_BODY_DONE;
	}
	switch (body->framing) {
	case HTTP_FRAMING_NONE:
		*used = 0;
		return HTTP_BODY_DONE;
	case HTTP_FRAMING_LENGTH: {
		size_t n = len;
		if ((uint64_t)n > body->remaining)
			n = (size_t)body->remaining;
		body->remaining -= n;
		body->payload += n;
		*used = n;
		if (body->remaining > 0)
			return HTTP_BODY_MORE;
		body->state = CS_DONE;
		return HTTP_BODY_DONE;
	}
	case HTTP_FRAMING_CHUNKED:
		return chunked_feed(body, data, len, used);
	case HTTP_FRAMING_UNTIL_CLOSE:
	case HTTP_FRAMING_TUNNEL:
		body->payload += len;
		*used = len;
		return HTTP_BODY_MORE;
	}
	*used = 0;
	return HTTP_BODY_ERROR;
}

bool http_body_done(const struct http_body *body)
{
	return body->state == CS_DONE;
}

size_t http_body_payload_ahead(const struct http_body *body)
{
	if (body->state == CS_DONE)
		return 0;
	switch (body->framing) {
	case HTTP_FRAMING_LENGTH:
		return body->remaining > SIZE_MAX ? SIZE_MAX : (size_t)body->remaining;
	case HTTP_FRAMING_CHUNKED:
		if (body->state != CS_DATA)
			return 0;
		return body->remaining > SIZE_MAX ? SIZE_MAX : (size_t)body->remaining;
	case HTTP_FRAMING_UNTIL_CLOSE:
	case HTTP_FRAMING_TUNNEL:
		return SIZE_MAX;
	case HTTP_FRAMING_NONE:
		break;
	}
	return 0;
}

bool http_body_in_trailers(const struct http_body *body)
{
	return body->framing == HTTP_FRAMING_CHUNKED && body->state >= CS_TRAILER_START && body->state < CS_DONE;
}

bool http_body_eof_ok(const struct http_body *body)
{
	return body->state == CS_DONE || body->framing == HTTP_FRAMING_UNTIL_CLOSE ||
	       body->framing == HTTP_FRAMING_TUNNEL;
}

