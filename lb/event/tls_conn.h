/*
 * tls_conn: TLS as a conn transport (conn.h), with OpenSSL 3.
 *
 * The SSL object reads and writes through a BIO of our own over two
 * evbuffers of ciphertext, not over the socket: a wake-up still costs one
 * readv (into the ciphertext input) and one writev (of the ciphertext
 * output), SSL_read_ex decrypts straight into the conn's input, and "want
 * write" simply means ciphertext is waiting. (bufferevent_openssl would
 * cost a copy and an ioctl per read.) The owner of the conn sees plaintext
 * in c->in and writes plaintext to c->out, as over a plain socket.
 *
 * A server-side conn (an accepted client) starts from the bytes already in
 * c->in, so a PROXY header can be taken off in plain first. A client-side
 * conn (to a server) reports `connected` only once its handshake is over,
 * so the owner's connect timeout and retries cover the handshake.
 *
 * (With listeners[].tls.ktls, OpenSSL reads and writes the socket itself
 * instead, so that the kernel can take the records over: see
 * tls_conn_accept.)
 *
 * Records are written up to TLS_RECORD_MAX bytes (the first after an idle
 * time up to TLS_RECORD_FIRST); the ciphertext output is
 * refilled only once the kernel took it, so memory per direction stays
 * bounded by the conn's own output plus one record.
 */
#ifndef LB_TLS_CONN_H
#define LB_TLS_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "state.h" /* struct tls_counters */

struct conn;

#define TLS_RECORD_MAX (16 * 1024)
/* The first record after an idle time: with its 22 bytes of overhead
 * (TLS 1.3, AES-GCM), one 1460-byte TCP segment with room for options. */
#define TLS_RECORD_FIRST 1360

/* Put c (open, plain so far) on TLS as the server side, with a new SSL of
 * ctx. Bytes already in c->in are the first ciphertext. `counters` (may be
 * NULL) must outlive c. A client that sends plain HTTP instead of a
 * handshake gets plain_http_answer (NULL = nothing) before the close.
 * on_socket: OpenSSL works on the socket itself, not on lb's BIO, which
 * kTLS needs (ctx with SSL_OP_ENABLE_KTLS; where the kernel takes it, the
 * records are then made by the kernel); not when bytes were read already.
 * 0, or -1 without memory (c is unchanged). */
int tls_conn_accept(struct conn *c, SSL_CTX *ctx, struct tls_counters *counters, const char *plain_http_answer,
		    bool on_socket);

/* Put c (connecting) on TLS as the client side. `name` (NULL = none) is
 * what the server's certificate must name (a host name or an address;
 * checked when ctx verifies at all), and is sent as SNI unless it is an
 * address; a copy of `session` (NULL = none) is offered for resumption.
 * 0, or -1 (c unchanged). */
int tls_conn_connect(struct conn *c, SSL_CTX *ctx, const char *name, SSL_SESSION *session);

/* Bytes that go on the wire in the clear before the handshake (a PROXY
 * header): right after tls_conn_connect, before anything is sent. 0, or
 * -1 without memory. */
int tls_conn_send_first(struct conn *c, const void *data, size_t len);

/* The conn's SSL when it is on TLS, else NULL. */
SSL *tls_conn_ssl(const struct conn *c);

/* The handshake is over (true for a plain conn). */
bool tls_conn_established(const struct conn *c);

/* The handshake is over and chose this ALPN protocol ("h2"). */
bool tls_conn_alpn_is(const struct conn *c, const char *protocol);

/* Count a handshake the owner gave up on (its deadline passed) once. */
void tls_conn_note_timeout(struct conn *c);

/* OpenSSL's reason for the last failure of this conn's handshake, or "". */
const char *tls_conn_failure(const struct conn *c);

#endif
