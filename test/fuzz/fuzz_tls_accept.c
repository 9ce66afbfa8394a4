/*
 * libFuzzer target for lb/event/tls_conn.c: a client's first bytes on a TLS
 * listener (SPEC 12), through the real transport. The input is written to
 * one end of a socket pair, split in two where its first byte says (a
 * ClientHello that arrives in pieces); the other end is an accepted conn
 * put on TLS with an ECDSA certificate made at start. Besides memory safety
 * (ASan/UBSan) it checks:
 * - the conn never yields plaintext before its handshake is over;
 * - a failed handshake leaves the conn in error, with a reason;
 * - after the peer's EOF the conn reports EOF or an error, never waits;
 * - OpenSSL's error queue is left empty (the next conn of the thread
 *   would read a stale error).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Ilb/core -Ilb/event test/fuzz/fuzz_tls_accept.c \
 *       lb/event/tls_conn.c lb/event/conn.c lb/core/slab.c -levent -lssl -lcrypto
 *   ./a.out -max_total_time=120 test/fuzz/corpus/tls_accept/
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "tls_conn.h"

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static struct event_base *base;
static SSL_CTX *ctx;

static SSL_CTX *make_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	CHECK(key != NULL && cert != NULL);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz.test", -1, -1, 0);
	X509_set_issuer_name(cert, name);
	CHECK(X509_sign(cert, key, EVP_sha256()) > 0);
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	CHECK(c != NULL && SSL_CTX_use_certificate(c, cert) == 1 && SSL_CTX_use_PrivateKey(c, key) == 1);
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				    SSL_MODE_RELEASE_BUFFERS);
	X509_free(cert);
	EVP_PKEY_free(key);
	return c;
}

static void on_event(struct conn *c, void *arg)
{
	(void)c;
	(void)arg;
}

/* What the conn must say after being fed. */
static void check(struct conn *c)
{
	if (!tls_conn_established(c))
		CHECK(conn_input_length(c) == 0);
	if (c->error && !tls_conn_established(c))
		CHECK(tls_conn_failure(c)[0] != '\0' || c->error_code != EPROTO);
	CHECK(ERR_peek_error() == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (base == NULL) {
		base = event_base_new();
		ctx = make_ctx();
	}
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	struct conn *c = conn_open(base, sv[0], on_event, NULL);
	CHECK(c != NULL);
	CHECK(tls_conn_accept(c, ctx, NULL, "HTTP/1.1 400 Bad Request\r\n\r\n", false) == 0);

	size_t cut = size > 0 ? (size_t)data[0] * size / 256 : 0;
	const uint8_t *parts[2] = { data, data + cut };
	size_t lens[2] = { cut, size - cut };
	for (int i = 0; i < 2 && !c->error; i++) {
		if (lens[i] > 0)
			CHECK(write(sv[1], parts[i], lens[i]) == (ssize_t)lens[i]);
		conn_read_now(c);
		conn_flush(c);
		check(c);
	}
	if (!c->error) {
		shutdown(sv[1], SHUT_WR);
		conn_read_now(c);
		check(c);
		CHECK(c->eof || c->error);
	}
	conn_free(c);
	close(sv[1]);
	conn_thread_exit();
	return 0;
}
