/* tls_context: OpenSSL contexts from the configuration. See tls_context.h. */
#include "tls_context.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "tls_tickets.h"

/* ECDHE key exchange and AEAD ciphers only: what "" means for TLS 1.2. */
#define DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define CERT_NAMES_MAX 64 /* names of one certificate SNI looks at */

/* A name SNI may ask for, and the context whose certificates cover it. */
struct sni_name {
	char *name; /* lower case; "*.example.com" for a wildcard */
	SSL_CTX *ctx;
};

struct tls_server {
	const struct cfg_listener_tls *cfg;
	/* OpenSSL resumes a session only in the context it was made in:
	 * this listener, with these client-certificate rules. */
	unsigned char session_context[SSL_MAX_SID_CTX_LENGTH];
	SSL_CTX **ctxs; /* [0] is the default */
	size_t nctxs;
	struct sni_name *names;
	size_t nnames;
	time_t *expiry; /* per configured certificate */
	struct tls_ticket_keys *ticket_keys; /* from ticket_key_file, else NULL */
};

struct tls_client {
	SSL_CTX *ctx;
};

/* OpenSSL's reason for what just failed (and an empty error queue). */
static const char *openssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		snprintf(buf, len, "%s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
	ERR_clear_error();
	return buf;
}

/* ---- the server side ---- */

static SSL_CTX *find_ctx(const struct tls_server *s, const char *name)
{
	for (size_t i = 0; i < s->nnames; i++)
		if (strcasecmp(s->names[i].name, name) == 0)
			return s->names[i].ctx;
	const char *dot = strchr(name, '.');
	if (dot == NULL || dot == name)
		return NULL;
	for (size_t i = 0; i < s->nnames; i++) /* "*.example.com" covers one label */
		if (s->names[i].name[0] == '*' && strcasecmp(s->names[i].name + 1, dot) == 0)
			return s->names[i].ctx;
	return NULL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *s = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx = name != NULL ? find_ctx(s, name) : NULL;
	if (ctx == NULL) {
		if (!s->cfg->strict_sni)
			return SSL_TLSEXT_ERR_OK; /* the default certificate */
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (ctx != SSL_get_SSL_CTX(ssl))
		SSL_set_SSL_CTX(ssl, ctx);
	return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		   unsigned int inlen, void *arg)
{
	const struct tls_server *s = arg;
	(void)ssl;
	unsigned char *chosen = NULL;
	if (SSL_select_next_proto(&chosen, outlen, s->cfg->alpn, (unsigned int)s->cfg->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: go on without ALPN */
	*out = chosen;
	return SSL_TLSEXT_ERR_OK;
}

/* What every context of a listener shares. */
static int configure_server_ctx(struct tls_server *s, SSL_CTX *ctx, char *err, size_t errlen)
{
	const struct cfg_listener_tls *cfg = s->cfg;
	char why[128];
	SSL_CTX_set_min_proto_version(ctx, cfg->min_version == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 (cfg->session_tickets ? 0 : SSL_OP_NO_TICKET));
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	/* kTLS: OpenSSL hands the records to the kernel where it can (on the
	 * socket's own BIO: tls_conn.h), and falls back to making them itself.
	 * A peer's EOF without close_notify then reads as an EOF, as it does
	 * on lb's BIO. */
	if (cfg->ktls)
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Resumption is by tickets only: no session cache shared (and
	 * locked) by the workers. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, s->session_context, sizeof(s->session_context));
	if (!cfg->session_tickets)
		SSL_CTX_set_num_tickets(ctx, 0);
	else if (tls_tickets_use(ctx, s->ticket_keys) < 0) {
		snprintf(err, errlen, "session tickets: %s", openssl_reason(why, sizeof(why)));
		return -1;
	}
	const char *ciphers = cfg->ciphers.value[0] != '\0' ? cfg->ciphers.value : DEFAULT_CIPHERS;
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(err, errlen, "%s: OpenSSL knows no cipher in \"%s\"", cfg->ciphers.where ? cfg->ciphers.where : "ciphers",
			 ciphers);
		ERR_clear_error();
		return -1;
	}
	if (cfg->ciphersuites.value[0] != '\0' && SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites.value) != 1) {
		snprintf(err, errlen, "%s: OpenSSL refuses the TLS 1.3 cipher suites \"%s\"", cfg->ciphersuites.where,
			 cfg->ciphersuites.value);
		ERR_clear_error();
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, s);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, s);
	if (cfg->verify_client != TLS_VERIFY_CLIENT_OFF) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca.value, NULL) != 1) {
			snprintf(err, errlen, "%s: cannot read the CA certificates %s: %s", cfg->client_ca.where,
				 cfg->client_ca.value, openssl_reason(why, sizeof(why)));
			return -1;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca.value);
		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
		int mode = SSL_VERIFY_PEER;
		if (cfg->verify_client == TLS_VERIFY_CLIENT_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return 0;
}

static time_t certificate_expiry(X509 *x)
{
	struct tm tm;
	const ASN1_TIME *t = X509_get0_notAfter(x);
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* The DNS names of x (its subjectAltNames, else its common name), lower
 * case, into names; their count. */
static size_t certificate_names(X509 *x, char **names, size_t max)
{
	size_t n = 0;
	GENERAL_NAMES *alt = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; alt != NULL && i < sk_GENERAL_NAME_num(alt) && n < max; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
		if (g->type != GEN_DNS)
			continue;
		const char *text = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		int len = ASN1_STRING_length(g->d.dNSName);
		if (text != NULL && len > 0 && memchr(text, '\0', (size_t)len) == NULL &&
		    (names[n] = strndup(text, (size_t)len)) != NULL)
			n++;
	}
	GENERAL_NAMES_free(alt);
	if (n == 0) {
		char cn[256];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0 &&
		    (names[0] = strdup(cn)) != NULL)
			n = 1;
	}
	for (size_t i = 0; i < n; i++)
		for (char *p = names[i]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return n;
}

/* Load certificate i into ctx: its chain, its key, and whether they match. */
static int load_certificate(SSL_CTX *ctx, const struct cfg_tls_certificate *c, char *err, size_t errlen)
{
	char why[128];
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert.value) != 1) {
		snprintf(err, errlen, "%s: cannot read the certificate %s: %s", c->cert.where, c->cert.value,
			 openssl_reason(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key.value, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();
		bool mismatch = ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
				ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH;
		snprintf(err, errlen, "%s: %s %s: %s", c->key.where,
			 mismatch ? "the key does not match the certificate" : "cannot read the key", c->key.value,
			 openssl_reason(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: the key %s does not match the certificate %s", c->key.where, c->key.value,
			 c->cert.value);
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static bool same_names(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = false;
		for (size_t j = 0; j < nb && !found; j++)
			found = strcmp(a[i], b[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* The context of an earlier certificate for exactly these names, to hold
 * this one too (another key type), or NULL. */
static SSL_CTX *context_for_names(const struct tls_server *s, char **names, size_t n)
{
	for (size_t c = 0; c < s->nctxs; c++) {
		char *theirs[CERT_NAMES_MAX];
		size_t count = 0;
		for (size_t i = 0; i < s->nnames && count < CERT_NAMES_MAX; i++)
			if (s->names[i].ctx == s->ctxs[c])
				theirs[count++] = s->names[i].name;
		if (count > 0 && same_names(names, n, theirs, count))
			return s->ctxs[c];
	}
	return NULL;
}

static int add_certificate(struct tls_server *s, size_t index, char *err, size_t errlen)
{
	const struct cfg_tls_certificate *c = &s->cfg->certificates[index];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || configure_server_ctx(s, ctx, err, errlen) < 0 || load_certificate(ctx, c, err, errlen) < 0) {
		if (ctx == NULL)
			snprintf(err, errlen, "%s: out of memory", c->cert.where);
		SSL_CTX_free(ctx);
		return -1;
	}
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	s->expiry[index] = certificate_expiry(leaf);
	if (s->expiry[index] != 0 && s->expiry[index] < time(NULL))
		log_warn("%s: the certificate %s has expired", c->cert.where, c->cert.value);

	char *names[CERT_NAMES_MAX];
	size_t n = certificate_names(leaf, names, CERT_NAMES_MAX);
	SSL_CTX *shared = index > 0 ? context_for_names(s, names, n) : NULL;
	int rc = 0;
	if (shared != NULL) {
		/* Same names, another key type: OpenSSL holds one of each. */
		SSL_CTX_free(ctx);
		rc = load_certificate(shared, c, err, errlen);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		return rc;
	}
	SSL_CTX **ctxs = realloc(s->ctxs, (s->nctxs + 1) * sizeof(*ctxs));
	struct sni_name *all = realloc(s->names, (s->nnames + n) * sizeof(*all));
	if (ctxs != NULL)
		s->ctxs = ctxs;
	if (all != NULL)
		s->names = all;
	if (ctxs == NULL || all == NULL) {
		snprintf(err, errlen, "%s: out of memory", c->cert.where);
		SSL_CTX_free(ctx);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		return -1;
	}
	s->ctxs[s->nctxs++] = ctx;
	for (size_t i = 0; i < n; i++)
		s->names[s->nnames++] = (struct sni_name){ .name = names[i], .ctx = ctx };
	return 0;
}

/* The listener's name, its verify_client and the CA certificates it
 * trusts for clients, hashed: a ticket from another listener, or from
 * before a change of these rules (tickets outlive reloads), is not
 * resumed, so it cannot skip a client certificate check. The same on
 * every instance configured alike (ticket_key_file). */
static int make_session_context(struct tls_server *s, const char *name, char *err, size_t errlen)
{
	const struct cfg_listener_tls *cfg = s->cfg;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(md, name, strlen(name) + 1) == 1 &&
		  EVP_DigestUpdate(md, &cfg->verify_client, sizeof(cfg->verify_client)) == 1;
	if (ok && cfg->verify_client != TLS_VERIFY_CLIENT_OFF) {
		FILE *f = fopen(cfg->client_ca.value, "rb");
		if (f == NULL) {
			snprintf(err, errlen, "%s: cannot read the CA certificates %s: %s", cfg->client_ca.where,
				 cfg->client_ca.value, strerror(errno));
			EVP_MD_CTX_free(md);
			return -1;
		}
		unsigned char buf[4096];
		size_t n;
		while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
			ok = EVP_DigestUpdate(md, buf, n) == 1;
		fclose(f);
	}
	ok = ok && EVP_DigestFinal_ex(md, digest, &len) == 1 && len >= sizeof(s->session_context);
	EVP_MD_CTX_free(md);
	if (!ok) {
		snprintf(err, errlen, "out of memory");
		ERR_clear_error();
		return -1;
	}
	memcpy(s->session_context, digest, sizeof(s->session_context));
	return 0;
}

/* The kernel lists its TLS module among the TCP upper layers (it may still
 * load on first use where modules can be loaded). */
static bool kernel_tls_listed(void)
{
	char ulps[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	if (f == NULL)
		return false;
	bool ok = fgets(ulps, sizeof(ulps), f) != NULL;
	fclose(f);
	for (char *w = strtok(ulps, " \n"); ok && w != NULL; w = strtok(NULL, " \n"))
		if (strcmp(w, "tls") == 0)
			return true;
	return false;
}

struct tls_server *tls_server_new(const struct cfg_listener_tls *cfg, const char *name, char *err, size_t errlen)
{
	struct tls_server *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->expiry = calloc(cfg->ncertificates, sizeof(*s->expiry))) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	if (make_session_context(s, name, err, errlen) < 0) {
		tls_server_free(s);
		return NULL;
	}
	if (cfg->session_tickets && cfg->ticket_key_file.value[0] != '\0' &&
	    (s->ticket_keys = tls_tickets_load(&cfg->ticket_key_file, err, errlen)) == NULL) {
		tls_server_free(s);
		return NULL;
	}
	if (cfg->ktls && !kernel_tls_listed())
		log_info("listener %s: ktls: the kernel lists no tls module (tcp_available_ulp); lb makes the "
			 "records unless it loads (lb_tls_ktls_total says)", name);
	for (size_t i = 0; i < cfg->ncertificates; i++) {
		if (add_certificate(s, i, err, errlen) < 0) {
			tls_server_free(s);
			return NULL;
		}
	}
	return s;
}

void tls_server_free(struct tls_server *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nctxs; i++)
		SSL_CTX_free(s->ctxs[i]); /* an open connection holds its own reference */
	for (size_t i = 0; i < s->nnames; i++)
		free(s->names[i].name);
	free(s->ctxs);
	free(s->names);
	free(s->expiry);
	tls_tickets_free(s->ticket_keys);
	free(s);
}

SSL_CTX *tls_server_ctx(const struct tls_server *s)
{
	return s->ctxs[0];
}

size_t tls_server_certificates(const struct tls_server *s)
{
	return s->cfg->ncertificates;
}

const char *tls_server_certificate_file(const struct tls_server *s, size_t i)
{
	return s->cfg->certificates[i].cert.value;
}

time_t tls_server_certificate_expiry(const struct tls_server *s, size_t i)
{
	return s->expiry[i];
}

/* ---- the client side ---- */

struct tls_client *tls_client_new(const struct cfg_backend_tls *cfg, char *err, size_t errlen)
{
	char why[128];
	struct tls_client *c = calloc(1, sizeof(*c));
	if (c == NULL || (c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	SSL_CTX *ctx = c->ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (cfg->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		int ok = cfg->ca.value[0] != '\0' ? SSL_CTX_load_verify_locations(ctx, cfg->ca.value, NULL)
						  : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			snprintf(err, errlen, "%s: cannot read the CA certificates %s: %s",
				 cfg->ca.where ? cfg->ca.where : "tls.ca", cfg->ca.value[0] ? cfg->ca.value : "(system store)",
				 openssl_reason(why, sizeof(why)));
			tls_client_free(c);
			return NULL;
		}
	}
	if (cfg->client_cert.value[0] != '\0') {
		const struct cfg_tls_certificate pair = { .cert = cfg->client_cert, .key = cfg->client_key };
		if (load_certificate(ctx, &pair, err, errlen) < 0) {
			tls_client_free(c);
			return NULL;
		}
	}
	return c;
}

void tls_client_free(struct tls_client *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

SSL_CTX *tls_client_ctx(const struct tls_client *c)
{
	return c->ctx;
}

size_t tls_check_config(const struct lb_config *cfg, void (*report)(const char *line, void *arg), void *arg)
{
	char err[512];
	size_t problems = 0;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (!cfg->listeners[i].tls.enabled)
			continue;
		struct tls_server *s = tls_server_new(&cfg->listeners[i].tls, cfg->listeners[i].name, err, sizeof(err));
		if (s == NULL) {
			report(err, arg);
			problems++;
		}
		tls_server_free(s);
	}
	for (size_t i = 0; i < cfg->nbackends; i++) {
		if (!cfg->backends[i].tls.enabled)
			continue;
		struct tls_client *c = tls_client_new(&cfg->backends[i].tls, err, sizeof(err));
		if (c == NULL) {
			report(err, arg);
			problems++;
		}
		tls_client_free(c);
	}
	return problems;
}
