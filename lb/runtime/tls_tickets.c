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

#define KEY_FILE_MAX 16 /* keys read from one file */

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

struct tls_ticket_keys {
	struct ticket_key keys[KEY_FILE_MAX]; /* [0] encrypts */
	size_t count;
};

/* The process's random keys: [0] encrypts, [1] (the one before) decrypts. */
static struct {
	pthread_mutex_t lock;
	struct ticket_key keys[2];
	size_t count;
	time_t made; /* of keys[0] */
} random_keys = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int keys_index = -1;
static pthread_once_t keys_index_once = PTHREAD_ONCE_INIT;

static void keys_index_make(void)
{
	keys_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The key that encrypts now (the random one rotated when due). */
static bool current_key(const struct tls_ticket_keys *keys, struct ticket_key *out)
{
	if (keys != NULL) {
		*out = keys->keys[0];
		return true;
	}
	time_t now = time(NULL);
	bool ok = true;
	pthread_mutex_lock(&random_keys.lock);
	if (random_keys.count == 0 || now - random_keys.made >= TLS_TICKET_ROTATE_S) {
		struct ticket_key fresh;
		ok = RAND_bytes((unsigned char *)&fresh, sizeof(fresh)) == 1;
		if (ok) {
			random_keys.keys[1] = random_keys.keys[0];
			random_keys.keys[0] = fresh;
			random_keys.count = random_keys.count == 0 ? 1 : 2;
			random_keys.made = now;
		}
	}
	if (ok && random_keys.count > 0)
		*out = random_keys.keys[0];
	ok = ok && random_keys.count > 0;
	pthread_mutex_unlock(&random_keys.lock);
	return ok;
}

/* The key named `name`: 1 the current one, 2 an older one, 0 none. */
static int find_key(const struct tls_ticket_keys *keys, const unsigned char *name, struct ticket_key *out)
{
	int found = 0;
	if (keys != NULL) {
		for (size_t i = 0; i < keys->count && found == 0; i++)
			if (memcmp(keys->keys[i].name, name, 16) == 0) {
				*out = keys->keys[i];
				found = i == 0 ? 1 : 2;
			}
		return found;
	}
	pthread_mutex_lock(&random_keys.lock);
	for (size_t i = 0; i < random_keys.count && found == 0; i++)
		if (memcmp(random_keys.keys[i].name, name, 16) == 0) {
			*out = random_keys.keys[i];
			found = i == 0 ? 1 : 2;
		}
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
	unsigned char buf[KEY_FILE_MAX * sizeof(struct ticket_key) + 1];
	FILE *f = fopen(file->value, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read %s: %s", file->where, file->value, strerror(errno));
		return NULL;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	bool failed = ferror(f);
	fclose(f);
	if (failed || n == 0 || n % sizeof(struct ticket_key) != 0 || n > KEY_FILE_MAX * sizeof(struct ticket_key)) {
		snprintf(err, errlen, "%s: %s must hold 1 to %d keys of 80 bytes (openssl rand 80), got %zu bytes",
			 file->where, file->value, KEY_FILE_MAX, n);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	struct tls_ticket_keys *keys = calloc(1, sizeof(*keys));
	if (keys == NULL) {
		snprintf(err, errlen, "%s: out of memory", file->where);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	keys->count = n / sizeof(struct ticket_key);
	for (size_t i = 0; i < keys->count; i++) {
		const unsigned char *k = buf + i * sizeof(struct ticket_key);
		memcpy(keys->keys[i].name, k, 16);
		memcpy(keys->keys[i].hmac, k + 16, 32);
		memcpy(keys->keys[i].aes, k + 48, 32);
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
