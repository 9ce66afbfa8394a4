/*
 * tls_context: the OpenSSL contexts a generation builds from its
 * configuration (SPEC 12): one struct tls_server per TLS listener, one
 * struct tls_client per backend that speaks TLS to its servers.
 *
 * They belong to the generation (gen.h): a reload reads the certificate
 * files again, new connections take the new contexts, open ones keep the
 * SSL (and through it the context) they started with. A file that cannot
 * be read, a key that does not match its certificate, a cipher list
 * OpenSSL refuses: each is an error "FILE:LINE:COL: key: message" naming
 * the key in lb.yaml, and the generation is not built (lb -t reports the
 * same; a reload keeps the old generation). An expired certificate is
 * only a warning.
 *
 * Server side: SNI picks the certificate (exact name, then a wildcard
 * one label deep, then the first certificate; strict_sni refuses a name
 * none covers). Certificates for the same names with different key types
 * (ECDSA and RSA) share a context, and OpenSSL picks by what the client
 * accepts. Session tickets use the keys of tls_tickets.h.
 */
#ifndef LB_TLS_CONTEXT_H
#define LB_TLS_CONTEXT_H

#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_server;
struct tls_client;

/* For the listener called `name`; NULL with the reason in err. */
struct tls_server *tls_server_new(const struct cfg_listener_tls *cfg, const char *name, char *err, size_t errlen);
void tls_server_free(struct tls_server *s); /* NULL is fine */

/* The context a new connection starts with (SNI may switch it). */
SSL_CTX *tls_server_ctx(const struct tls_server *s);

/* The certificates, in the order configured: the file and its notAfter. */
size_t tls_server_certificates(const struct tls_server *s);
const char *tls_server_certificate_file(const struct tls_server *s, size_t i);
time_t tls_server_certificate_expiry(const struct tls_server *s, size_t i);

/* NULL with the reason in err. */
struct tls_client *tls_client_new(const struct cfg_backend_tls *cfg, char *err, size_t errlen);
void tls_client_free(struct tls_client *c); /* NULL is fine */
SSL_CTX *tls_client_ctx(const struct tls_client *c);

/* Every TLS context of cfg built once and dropped (lb -t, and before a
 * start): each one that fails is reported (a line naming the key's place),
 * all of them in one run. Returns how many failed. */
size_t tls_check_config(const struct lb_config *cfg, void (*report)(const char *line, void *arg), void *arg);

#endif
