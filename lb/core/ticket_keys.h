/*
 * ticket_keys: the keys that encrypt TLS session tickets, as a list. Pure:
 * no OpenSSL, no clock, no lock (tls_tickets.c adds those).
 *
 * The first key encrypts; every key decrypts. A rotation puts a fresh key
 * first and keeps the one before it, so a ticket issued just before a
 * rotation stays good for one more period; older keys go. Rotated keys
 * also expire by age, rotation or not (rotations happen when a ticket is
 * issued): the current one two periods after it came in, the previous one
 * a period after it was replaced. Keys of a file (period 0) never expire.
 * A key is 80 bytes: name 16, HMAC secret 32, AES key 32 (nginx's format).
 */
#ifndef LB_TICKET_KEYS_H
#define LB_TICKET_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TICKET_KEYS_MAX 16
#define TICKET_KEY_BYTES 80

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

struct ticket_keys {
	struct ticket_key keys[TICKET_KEYS_MAX]; /* [0] encrypts */
	size_t count;
	uint64_t made_s; /* when keys[0] came in (rotate) */
};

/* The keys of a file's bytes: 1..TICKET_KEYS_MAX keys of TICKET_KEY_BYTES.
 * 0, or -1 for any other length. */
int ticket_keys_parse(struct ticket_keys *k, const unsigned char *bytes, size_t len);

/* A fresh key is due at `now_s` with rotations every `period_s` (also:
 * there is none yet). */
bool ticket_keys_due(const struct ticket_keys *k, uint64_t now_s, uint64_t period_s);

/* `fresh` encrypts from now on; the key before it still decrypts. */
void ticket_keys_rotate(struct ticket_keys *k, const struct ticket_key *fresh, uint64_t now_s);

/* The key called `name`, still good at `now_s` with rotations every
 * `period_s` (0: keys that never expire), into *out: 1 the one that
 * encrypts, 2 an older one (the ticket deserves a fresh one), 0 none. */
int ticket_keys_find(const struct ticket_keys *k, const unsigned char *name, uint64_t now_s, uint64_t period_s,
		     struct ticket_key *out);

#endif
