/* tls_tickets: session ticket keys. See tls_tickets.h. */
#include "tls_tickets.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ticket_keys.h"

struct tls_ticket_keys {
	struct ticket_keys keys; /* from a file: never rotated */
};

/* The process's random keys, rotated every TLS_TICKET_ROTATE_S. */
static struct {
	pthread_mutex_t lock;
	struct ticket_keys keys;
} random_keys = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int keys_index = -1;
static pthread_once_t keys_index_once = PTHREAD_ONCE_INIT;

static void keys_index_make(void)
{
	keys_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static uint64_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* The key that encrypts now (the random one rotated when due). */
static bool current_key(const struct tls_ticket_keys *file, struct ticket_key *out)
{
	if (file != NULL) {
		*out = file->keys.keys[0];
		return true;
	}
	uint64_t now = now_s();
	bool ok = true;
	pthread_mutex_lock(&random_keys.lock);
	if (ticket_keys_due(&random_keys.keys, now, TLS_TICKET_ROTATE_S)) {
		struct ticket_key fresh;
		ok = RAND_bytes((unsigned char *)&fresh, sizeof(fresh)) == 1;
		if (ok)
			ticket_keys_rotate(&random_keys.keys, &fresh, now);
		OPENSSL_cleanse(&fresh, sizeof(fresh));
	}
	ok = ok && random_keys.keys.count > 0;
	if (ok)
		*out = random_keys.keys.keys[0];
	pthread_mutex_unlock(&random_keys.lock);
	return ok;
}

/* The key named `name`: 1 the current one, 2 an older one, 0 none. */
static int find_key(const struct tls_ticket_keys *file, const unsigned char *name, struct ticket_key *out)
{
	if (file != NULL)
		return ticket_keys_find(&file->keys, name, 0, 0, out);
	uint64_t now = now_s();
	pthread_mutex_lock(&random_keys.lock);
	int found = ticket_keys_find(&random_keys.keys, name, now, TLS_TICKET_ROTATE_S, out);
	pthread_mutex_unlock(&random_keys.lock);
	return found;
}

static int set_mac_key(EVP_MAC_CTX *mac, unsigned char *hmac)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, hmac, 32),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0),
		OSSL_PARAM_construct_end(),
	};
	return EVP_MAC_CTX_set_params(mac, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback: 1 = done (encrypted, or decrypted with the
 * current key), 2 = decrypted with an older key (send a fresh ticket),
 * 0 = unknown key (a full handshake), -1 = error. */
static int on_ticket(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac,
		     int encrypt)
{
	const struct tls_ticket_keys *keys = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index);
	struct ticket_key key;
	int rc = 1;
	if (encrypt) {
		if (!current_key(keys, &key) || RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return -1;
		memcpy(name, key.name, 16);
		if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1)
			rc = -1;
	} else {
		rc = find_key(keys, name, &key);
		if (rc != 0 && EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1)
			rc = -1;
	}
	if (rc > 0 && set_mac_key(mac, key.hmac) < 0)
		rc = -1;
	OPENSSL_cleanse(&key, sizeof(key));
	return rc;
}

int tls_tickets_use(SSL_CTX *ctx, struct tls_ticket_keys *keys)
{
	pthread_once(&keys_index_once, keys_index_make);
	if (keys_index < 0 || SSL_CTX_set_ex_data(ctx, keys_index, keys) != 1)
		return -1;
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket) == 1 ? 0 : -1;
}

struct tls_ticket_keys *tls_tickets_load(const struct cfg_located *file, char *err, size_t errlen)
{
	unsigned char buf[TICKET_KEYS_MAX * TICKET_KEY_BYTES + 1];
	FILE *f = fopen(file->value, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read %s: %s", file->where, file->value, strerror(errno));
		return NULL;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	bool failed = ferror(f);
	fclose(f);
	struct tls_ticket_keys *keys = calloc(1, sizeof(*keys));
	if (keys == NULL) {
		snprintf(err, errlen, "%s: out of memory", file->where);
	} else if (failed || ticket_keys_parse(&keys->keys, buf, n) < 0) {
		snprintf(err, errlen, "%s: %s must hold 1 to %d keys of %d bytes (openssl rand %d), got %zu bytes",
			 file->where, file->value, TICKET_KEYS_MAX, TICKET_KEY_BYTES, TICKET_KEY_BYTES, n);
		free(keys);
		keys = NULL;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return keys;
}

void tls_tickets_free(struct tls_ticket_keys *keys)
{
	if (keys == NULL)
		return;
	OPENSSL_cleanse(keys, sizeof(*keys));
	free(keys);
}
