/*
 * tls_tickets: the keys that encrypt TLS session tickets (stateless
 * resumption), outside the generations.
 *
 * Without a key file, the process makes random keys at its first ticket
 * and rotates them every TLS_TICKET_ROTATE_S seconds; the previous key
 * still decrypts (its tickets are renewed), so a reload, which keeps the
 * process, keeps every ticket valid. With `ticket_key_file`, the keys come
 * from the file: several lb instances given the same file resume each
 * other's sessions. The file holds one or more 80-byte keys (name 16,
 * HMAC 32, AES 32 bytes: `openssl rand 80 > FILE`, nginx's format); the
 * first encrypts, all decrypt, and a reload reads the file again.
 */
#ifndef LB_TLS_TICKETS_H
#define LB_TLS_TICKETS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

#define TLS_TICKET_ROTATE_S (12 * 3600)

struct tls_ticket_keys;

/* The keys of a file (the key ticket_key_file); NULL with the reason in err. */
struct tls_ticket_keys *tls_tickets_load(const struct cfg_located *file, char *err, size_t errlen);
void tls_tickets_free(struct tls_ticket_keys *keys); /* NULL is fine */

/* Encrypt and decrypt tickets for ctx with keys (NULL = the process's
 * random keys). keys must outlive ctx. 0, or -1. */
int tls_tickets_use(SSL_CTX *ctx, struct tls_ticket_keys *keys);

#endif
