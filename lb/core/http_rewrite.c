/* http_rewrite: the heads lb sends on (forwarding fields, hop-by-hop fields
 * removed) and its own answers. See http_msg.h. */
#include "http_msg.h"

#include <stdio.h>
#include <string.h>

#include "http_chars.h"

struct out_buf {
	char *p;
	size_t len;
	size_t cap;
	bool overflow;
};

static void put(struct out_buf *o, const void *s, size_t n)
{
	if (o->overflow || n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* Where field line i ends (its CRLF included): the next line's start, or the
 * final empty line. */
static uint32_t line_end(const struct http_head *h, uint32_t i)
{
	return i + 1 < h->nheaders ? h->headers[i + 1].name.off : h->length - 2;
}

/* Copies the start line, then the field lines kept[i], merging runs of
 * consecutive kept lines into one copy. */
static void copy_head(struct out_buf *o, const char *buf, const struct http_head *h, bool (*keep)(const struct http_head *, const struct http_header *))
{
	uint32_t first = h->nheaders > 0 ? h->headers[0].name.off : h->length - 2;
	put(o, buf + h->start, first - h->start);

	uint32_t run_start = 0, run_end = 0;
	bool in_run = false;
	for (uint32_t i = 0; i < h->nheaders; i++) {
		if (keep(h, &h->headers[i])) {
			if (!in_run)
				run_start = h->headers[i].name.off;
			in_run = true;
			run_end = line_end(h, i);
		} else if (in_run) {
			put(o, buf + run_start, run_end - run_start);
			in_run = false;
		}
	}
	if (in_run)
		put(o, buf + run_start, run_end - run_start);
}

static bool keep_request_field(const struct http_head *h, const struct http_header *f)
{
	if (f->id == HTTP_HDR_X_FORWARDED_FOR || f->id == HTTP_HDR_X_FORWARDED_PROTO || f->id == HTTP_HDR_X_CLIENT_SUBJECT)
		return false; /* re-emitted by lb (a client must not claim a certificate) */
	if (f->id == HTTP_HDR_UPGRADE && h->upgrade)
		return true;
	return !(f->flags & HTTP_HEADER_HOP_BY_HOP);
}

static bool keep_response_field(const struct http_head *h, const struct http_header *f)
{
	if (f->id == HTTP_HDR_UPGRADE && h->framing == HTTP_FRAMING_TUNNEL)
		return true;
	return !(f->flags & HTTP_HEADER_HOP_BY_HOP);
}

size_t http_rewrite_request(const char *buf, const struct http_head *req, const struct http_request_forward *fwd,
			    char *out, size_t cap)
{
	struct out_buf o = { out, 0, cap, false };
	copy_head(&o, buf, req, keep_request_field);

	if (req->upgrade)
		PUT_LIT(&o, "Connection: upgrade\r\n");
	else if (!fwd->server_keep_alive)
		PUT_LIT(&o, "Connection: close\r\n");
	else if (req->version_minor == 0)
		PUT_LIT(&o, "Connection: keep-alive\r\n");

	PUT_LIT(&o, "X-Forwarded-For: ");
	bool first = true;
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const struct http_header *f = &req->headers[i];
		if (f->id != HTTP_HDR_X_FORWARDED_FOR || (f->flags & HTTP_HEADER_HOP_BY_HOP) || f->value.len == 0)
			continue;
		if (!first)
			PUT_LIT(&o, ", ");
		put(&o, buf + f->value.off, f->value.len);
		first = false;
	}
	if (fwd->client_addr_len > 0) {
		if (!first)
			PUT_LIT(&o, ", ");
		put(&o, fwd->client_addr, fwd->client_addr_len);
	}
	if (fwd->https)
		PUT_LIT(&o, "\r\nX-Forwarded-Proto: https\r\n");
	else
		PUT_LIT(&o, "\r\nX-Forwarded-Proto: http\r\n");
	if (fwd->client_subject != NULL) {
		PUT_LIT(&o, "X-Client-Subject: ");
		put(&o, fwd->client_subject, strlen(fwd->client_subject));
		PUT_LIT(&o, "\r\n");
	}

	bool has_request_id = false;
	for (uint32_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].id == HTTP_HDR_X_REQUEST_ID && !(req->headers[i].flags & HTTP_HEADER_HOP_BY_HOP))
			has_request_id = true;
	if (!has_request_id && fwd->request_id_len > 0) {
		PUT_LIT(&o, "X-Request-Id: ");
		put(&o, fwd->request_id, fwd->request_id_len);
		PUT_LIT(&o, "\r\n");
	}
	PUT_LIT(&o, "\r\n");
	return o.overflow ? 0 : o.len;
}

size_t http_rewrite_response(const char *buf, const struct http_head *resp, const struct http_response_forward *fwd,
			     char *out, size_t cap)
{
	struct out_buf o = { out, 0, cap, false };
	copy_head(&o, buf, resp, keep_response_field);

	if (resp->framing == HTTP_FRAMING_TUNNEL)
		PUT_LIT(&o, "Connection: upgrade\r\n");
	else if (resp->interim)
		; /* the exchange goes on: nothing to announce yet */
	else if (fwd->close_client)
		PUT_LIT(&o, "Connection: close\r\n");
	else if (fwd->client_http10)
		PUT_LIT(&o, "Connection: keep-alive\r\n");
	PUT_LIT(&o, "\r\n");
	return o.overflow ? 0 : o.len;
}

size_t http_error_response(int status, bool close, bool head_request, char *out, size_t cap)
{
	if (status < 100 || status > 599)
		return 0;
	const char *reason = http_status_str((enum http_status)status);
	if (reason == NULL || reason[0] == '<') /* "<unknown>" */
		return 0;
	char body[64];
	int body_len = snprintf(body, sizeof(body), "%d %s\n", status, reason);
	if (body_len < 0 || (size_t)body_len >= sizeof(body))
		return 0;
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: text/plain\r\n"
			 "Content-Length: %d\r\n"
			 "%s%s"
			 "\r\n"
			 "%s",
			 status, reason, body_len, status == 503 ? "Retry-After: 1\r\n" : "",
			 close ? "Connection: close\r\n" : "", head_request ? "" : body);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}
