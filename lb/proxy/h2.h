/*
 * h2: HTTP/2 from clients (RFC 9113), by libnghttp2, as nghttpx does it:
 * every stream becomes an HTTP/1.1 request of its own, balanced, retried,
 * timed and logged by http.c exactly as one that came over HTTP/1.1.
 *
 * The client connection (TLS with ALPN "h2", or plain with the prior-
 * knowledge preface on a listener with http2: true) is owned by an
 * http.c session, which hands its bytes to the h2_conn here. Each stream
 * is seen by http.c as a connection of its own: a virtual conn (conn.h,
 * no socket) whose transport is the stream:
 *   - receive: the request as HTTP/1.1 bytes (the head made from the
 *     HEADERS frame: ":authority" as Host, cookies joined with "; ",
 *     "Transfer-Encoding: chunked" when the body has no length; then the
 *     DATA, chunk-framed if so), EOF once the client ended the stream;
 *   - send: the HTTP/1.1 response http.c writes, read back into HEADERS,
 *     DATA (without the chunked framing) and trailers.
 * Flow control is backpressure: a request's DATA is acknowledged (window
 * update) only as http.c takes it, and a response is taken from http.c
 * only while less than H2_STREAM_BUFFER of it waits for the client's
 * window.
 *
 * Limits: lb's own SETTINGS (100 concurrent streams, 64 KiB stream window,
 * 1 MiB connection window, header list = the listener's max_header_size);
 * nghttp2's checks of HTTP messaging (RFC 9113 8.2 and 8.3: malformed
 * names and values, connection-specific fields, TE other than trailers,
 * pseudo-header misuse, content-length against DATA: each a stream error,
 * never forwarded); Rapid Reset, CONTINUATION, SETTINGS and PING floods
 * by nghttp2's rate limits.
 *
 * Single-threaded: an h2_conn and its streams belong to one worker.
 */
#ifndef LB_H2_H
#define LB_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conn.h"

struct worker;
struct gen_listener;
struct h2_conn;

/* A stream's request is there: start its HTTP/1.1 session on a virtual
 * conn over (transport, state) (conn_open_virtual). owner: what
 * h2_conn_new was given. 0, or -1 when it could not start (the stream is
 * refused). */
typedef int h2_stream_start_fn(void *owner, const struct conn_transport *transport, void *state);

/* The 24 bytes a client speaking HTTP/2 with prior knowledge starts with. */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* Do buf[0..len) begin, or could they begin, the preface? */
bool h2_preface_prefix(const char *buf, size_t len);

/* Take over client (its input is the client's first bytes), for the
 * session `owner`, which starts the streams. NULL when out of memory. */
struct h2_conn *h2_conn_new(struct conn *client, struct worker *w, const struct gen_listener *l,
			    h2_stream_start_fn *start, void *owner);

/* The client connection had an event: read what came, write what is due.
 * false once the connection is over (the caller then frees it and closes
 * the client). */
bool h2_conn_drive(struct h2_conn *h);

/* No stream's request is being served (the caller's idle timeout runs,
 * also while a client dawdles over a header block). */
bool h2_conn_idle(const struct h2_conn *h);

/* Stop taking streams (GOAWAY with the last stream id): the streams in
 * flight finish, then h2_conn_drive says over. */
void h2_conn_shutdown(struct h2_conn *h);

/* Free it; streams still running get a reset. */
void h2_conn_free(struct h2_conn *h);

#endif
