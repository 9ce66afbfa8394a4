/* tls_conn: TLS as a conn transport. See tls_conn.h. */
#include "tls_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"

struct tls_conn {
	SSL *ssl;
	struct evbuffer *cin, *cout; /* ciphertext; NULL while released */
	struct tls_counters *counters; /* server side: where handshakes are counted */
	const char *plain_http_answer;
	bool established; /* the handshake is over */
	bool counted; /* its outcome was counted */
	bool raw_eof; /* the socket's EOF (or close_notify): plaintext EOF once the rest is read */
	bool more; /* receive stopped at read_limit with records at hand */
	bool on_socket; /* OpenSSL reads and writes the socket itself (kTLS): no BIO of ours */
	bool write_blocked; /* on_socket: OpenSSL holds bytes the kernel refused (a record, a
			    * handshake flight, close_notify): writability, then the same call again */
	bool shutting; /* on_socket: close_notify waits in OpenSSL (SSL_shutdown to repeat) */
	bool fresh; /* nothing sent since the conn was idle: the next record is a short one */
	struct timespec started; /* server side: the accept, for the handshake's duration */
	char failure[96];
};

static struct tls_conn *state_of(const struct conn *c)
{
	return c->transport_state;
}

/* Per thread, the memory one receive or one send works in: the ciphertext
 * read from the socket (when the conn held none) until OpenSSL has taken
 * it, the plaintext of the records being made, and the ciphertext made
 * (when the conn held none unsent) until the kernel has it. What is left
 * at the end (half a record, what the kernel refused) moves into the conn's
 * own buffers, so the common case costs no allocation and an idle conn
 * holds nothing. */
#define SCRATCH_IN (32 * 1024)
/* A send encrypts while less than a record is unsent: a short first record
 * and a full one, with their overhead. */
#define SCRATCH_OUT (TLS_RECORD_FIRST + TLS_RECORD_MAX + 1024)
static _Thread_local struct {
	struct tls_conn *in_user, *out_user; /* who reads from in / writes to out now, or NULL */
	size_t in_len, in_pos, out_len;
	unsigned char in[SCRATCH_IN];
	unsigned char plain[TLS_RECORD_MAX];
	unsigned char out[SCRATCH_OUT];
} scratch;

/* ---- the BIO over the two ciphertext buffers ---- */

static int bio_write(BIO *bio, const char *data, size_t len, size_t *written)
{
	struct tls_conn *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (scratch.out_user == t && scratch.out_len + len <= SCRATCH_OUT) {
		memcpy(scratch.out + scratch.out_len, data, len);
		scratch.out_len += len;
		*written = len;
		return 1;
	}
	if (t->cout == NULL && (t->cout = conn_buffer_take()) == NULL)
		return 0;
	if (scratch.out_user == t) { /* no room: what is there goes first */
		if (evbuffer_add(t->cout, scratch.out, scratch.out_len) != 0)
			return 0;
		scratch.out_user = NULL;
	}
	if (evbuffer_add(t->cout, data, len) != 0)
		return 0;
	*written = len;
	return 1;
}

static int bio_read(BIO *bio, char *out, size_t len, size_t *read)
{
	struct tls_conn *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (scratch.in_user == t && scratch.in_pos < scratch.in_len) {
		size_t n = scratch.in_len - scratch.in_pos;
		if (n > len)
			n = len;
		memcpy(out, scratch.in + scratch.in_pos, n);
		scratch.in_pos += n;
		*read = n;
		return 1;
	}
	int n = t->cin != NULL ? evbuffer_remove(t->cin, out, len) : 0;
	if (n <= 0) {
		BIO_set_retry_read(bio); /* nothing yet: the socket will bring more */
		return 0;
	}
	*read = (size_t)n;
	return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct tls_conn *t = BIO_get_data(bio);
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* the conn writes cout when it writes */
	case BIO_CTRL_PENDING:
		return (long)((t->cin != NULL ? evbuffer_get_length(t->cin) : 0) +
			      (scratch.in_user == t ? scratch.in_len - scratch.in_pos : 0));
	case BIO_CTRL_WPENDING:
		return (long)((t->cout != NULL ? evbuffer_get_length(t->cout) : 0) +
			      (scratch.out_user == t ? scratch.out_len : 0));
	default:
		return 0;
	}
}

static int bio_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static void bio_method_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lb evbuffer");
	if (m == NULL)
		return;
	BIO_meth_set_write_ex(m, bio_write);
	BIO_meth_set_read_ex(m, bio_read);
	BIO_meth_set_ctrl(m, bio_ctrl);
	BIO_meth_set_create(m, bio_create);
	bio_method = m;
}

/* ---- the transport ---- */

static void count(struct tls_conn *t, enum tls_result result)
{
	if (t->counted || t->counters == NULL)
		return;
	t->counted = true;
	atomic_fetch_add_explicit(&t->counters->handshakes[result], 1, memory_order_relaxed);
	if (result != TLS_RESULT_OK)
		return;
	if (SSL_session_reused(t->ssl))
		atomic_fetch_add_explicit(&t->counters->resumed, 1, memory_order_relaxed);
	if (t->on_socket && BIO_get_ktls_send(SSL_get_wbio(t->ssl)))
		atomic_fetch_add_explicit(&t->counters->ktls_send, 1, memory_order_relaxed);
	if (t->on_socket && BIO_get_ktls_recv(SSL_get_rbio(t->ssl)))
		atomic_fetch_add_explicit(&t->counters->ktls_recv, 1, memory_order_relaxed);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t us = (now.tv_sec - t->started.tv_sec) * 1000000 + (now.tv_nsec - t->started.tv_nsec) / 1000;
	duration_observe(&t->counters->durations, us > 0 ? (uint64_t)us : 0);
}

/* The scratch output to the socket; what the kernel refuses into cout. */
static void write_scratch_output(struct conn *c, struct tls_conn *t)
{
	if (scratch.out_user != t)
		return;
	scratch.out_user = NULL;
	size_t done = conn_socket_write_from(c, scratch.out, scratch.out_len);
	if (done == scratch.out_len || c->error)
		return;
	if ((t->cout == NULL && (t->cout = conn_buffer_take()) == NULL) ||
	    evbuffer_add(t->cout, scratch.out + done, scratch.out_len - done) != 0) {
		c->error = true;
		c->error_code = ENOMEM;
	}
}

/* A fatal TLS error: the connection is unusable. OpenSSL's error queue is
 * per thread and must be left empty for the next conn. */
static void fail(struct conn *c, struct tls_conn *t)
{
	unsigned long e = ERR_peek_last_error();
	if (t->failure[0] == '\0') {
		if (e != 0)
			ERR_error_string_n(e, t->failure, sizeof(t->failure));
		else
			snprintf(t->failure, sizeof(t->failure), "connection closed during the TLS handshake");
	}
	/* A client that speaks plain HTTP to a TLS port gets a plain answer
	 * (nginx's 400), not a mute close. */
	if (t->plain_http_answer != NULL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
		/* The rest of the request, still unread on_socket, would turn
		 * the close into a reset that can destroy the answer. */
		char rest[4096];
		for (int i = 0; t->on_socket && i < 4 && recv(c->fd, rest, sizeof(rest), MSG_DONTWAIT) > 0; i++)
			;
		(void)send(c->fd, t->plain_http_answer, strlen(t->plain_http_answer), MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	ERR_clear_error();
	/* The alert that says why goes out before the close (best effort). */
	write_scratch_output(c, t);
	if (!c->error && t->cout != NULL && evbuffer_get_length(t->cout) > 0)
		conn_socket_write(c, t->cout);
	if (!c->error) {
		c->error = true;
		c->error_code = EPROTO;
	}
	count(t, t->established ? TLS_RESULT_OK : TLS_RESULT_FAILED);
}

static void handshake(struct conn *c, struct tls_conn *t)
{
	int r = SSL_do_handshake(t->ssl);
	t->write_blocked = false; /* this was the call to repeat, if any */
	if (r == 1) {
		t->established = true;
		count(t, TLS_RESULT_OK);
		if (!SSL_is_server(t->ssl))
			c->connected = true;
		return;
	}
	int err = SSL_get_error(t->ssl, r);
	if (err == SSL_ERROR_ZERO_RETURN) /* on_socket: the peer closed (an unexpected EOF is one) */
		t->raw_eof = true;
	if (err == SSL_ERROR_WANT_WRITE && t->on_socket)
		t->write_blocked = true; /* part of a flight waits in OpenSSL */
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_ZERO_RETURN) {
		if (t->raw_eof) {
			count(t, TLS_RESULT_CLOSED);
			ERR_clear_error();
			if (!SSL_is_server(t->ssl)) { /* the server closed on us: a failed connect */
				snprintf(t->failure, sizeof(t->failure), "the server closed during the TLS handshake");
				c->error = true;
				c->error_code = ECONNRESET;
			}
		}
		return;
	}
	fail(c, t);
}

/* Decrypt what is at hand into c->in, up to read_limit, and at most
 * DECRYPT_BUDGET bytes of ciphertext or DECRYPT_CALLS records per
 * readiness, as a plain conn reads: a fast sender cannot starve the others
 * (on_socket, where OpenSSL reads the socket itself, nor can tiny records
 * padded to 16 KiB); the rest waits in the socket, or at hand (`more`). */
#define DECRYPT_BUDGET (64 * 1024)
#define DECRYPT_CALLS 64

/* Input that needs no readiness of the socket to go on: what lb read
 * already (cin, the scratch) and what OpenSSL holds. On the socket,
 * OpenSSL reads one record at a time, so a record it holds in part leaves
 * the rest in the socket, which wakes the loop by itself; only plaintext
 * it decrypted and still holds would not (and waking on anything more
 * would let a flood re-activate itself within one pass of the loop). */
static bool input_at_hand(const struct tls_conn *t)
{
	if (t->on_socket)
		return SSL_pending(t->ssl) > 0;
	return (t->cin != NULL && evbuffer_get_length(t->cin) > 0) ||
	       (scratch.in_user == t && scratch.in_pos < scratch.in_len) || SSL_has_pending(t->ssl) == 1;
}

static void decrypt(struct conn *c, struct tls_conn *t)
{
	BIO *rbio = SSL_get_rbio(t->ssl);
	uint64_t read_before = BIO_number_read(rbio);
	t->more = false;
	for (int calls = 0; !c->error; calls++) {
		if (calls >= DECRYPT_CALLS || BIO_number_read(rbio) - read_before >= DECRYPT_BUDGET ||
		    evbuffer_get_length(c->in) >= c->read_limit) {
			t->more = input_at_hand(t);
			return;
		}
		/* Into the scratch when the input is empty (a small request
		 * then costs a small chain: see conn.c's first_read), else
		 * straight into the buffer. */
		struct evbuffer_iovec vec = { scratch.plain, sizeof(scratch.plain) };
		bool direct = evbuffer_get_length(c->in) > 0;
		if (direct && evbuffer_reserve_space(c->in, TLS_RECORD_MAX, &vec, 1) < 1) {
			c->error = true;
			c->error_code = ENOMEM;
			return;
		}
		size_t n = 0;
		int r = SSL_read_ex(t->ssl, vec.iov_base, vec.iov_len, &n);
		vec.iov_len = r == 1 ? n : 0;
		if (direct) {
			evbuffer_commit_space(c->in, &vec, 1);
		} else if (vec.iov_len > 0 && evbuffer_add(c->in, scratch.plain, vec.iov_len) != 0) {
			c->error = true;
			c->error_code = ENOMEM;
			return;
		}
		if (r == 1)
			continue;
		switch (SSL_get_error(t->ssl, r)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return;
		case SSL_ERROR_ZERO_RETURN: /* close_notify */
			t->raw_eof = true;
			ERR_clear_error();
			return;
		default:
			fail(c, t);
			return;
		}
	}
}

/* What OpenSSL did not take of the scratch input (half a record, or the
 * rest beyond read_limit) into the conn's own buffer. */
static void keep_scratch_input(struct conn *c, struct tls_conn *t)
{
	if (scratch.in_user != t)
		return;
	scratch.in_user = NULL;
	size_t left = scratch.in_len - scratch.in_pos;
	if (left == 0)
		return;
	if ((t->cin == NULL && (t->cin = conn_buffer_take()) == NULL) ||
	    evbuffer_add(t->cin, scratch.in + scratch.in_pos, left) != 0) {
		c->error = true;
		c->error_code = ENOMEM;
	}
}

static void tls_receive(struct conn *c)
{
	struct tls_conn *t = state_of(c);
	/* Input at hand (beyond read_limit last time, or read in plain before
	 * the handshake): that first, the socket at the next readiness. */
	bool at_hand = t->more;
	t->more = false;
	if (!at_hand && !t->on_socket) {
		if (t->cin == NULL || evbuffer_get_length(t->cin) == 0) {
			scratch.in_len = conn_socket_read_to(c, scratch.in, SCRATCH_IN);
			scratch.in_pos = 0;
			scratch.in_user = t;
		} else {
			conn_socket_read(c, t->cin, c->read_limit);
		}
		t->raw_eof = t->raw_eof || c->eof;
		c->eof = false; /* the plaintext's EOF comes after its last byte */
	}
	if (!c->error && !t->established)
		handshake(c, t);
	if (!c->error && t->established)
		decrypt(c, t);
	keep_scratch_input(c, t);
	if (c->error)
		return;
	if (t->raw_eof && !t->more)
		c->eof = true;
}

static size_t tls_unsent(const struct conn *c)
{
	const struct tls_conn *t = state_of(c);
	if (t->on_socket) /* OpenSSL holds the refused record: its size is its own */
		return t->write_blocked ? 1 : 0;
	return (t->cout != NULL ? evbuffer_get_length(t->cout) : 0) + (scratch.out_user == t ? scratch.out_len : 0);
}

/* Send close_notify (the peer's is not awaited). On lb's BIO it lands in
 * cout; on_socket, what the kernel refuses waits in OpenSSL, and the
 * socket's own half-close waits for it (unsent). */
static void shut_tls(struct tls_conn *t)
{
	int r = SSL_shutdown(t->ssl);
	t->shutting = t->on_socket && r < 0 && SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE;
	t->write_blocked = t->shutting;
	ERR_clear_error();
}

static void tls_send(struct conn *c)
{
	struct tls_conn *t = state_of(c);
	if (t->shutting) {
		shut_tls(t); /* close_notify again: nothing follows it */
		return;
	}
	while (!c->error) {
		if (tls_unsent(c) == 0 && !t->on_socket) { /* else the scratch would jump the queue */
			scratch.out_user = t;
			scratch.out_len = 0;
		}
		if (!t->established)
			handshake(c, t);
		/* Encrypt only once the kernel took the last records: bounded. */
		while (t->established && !c->error && c->out != NULL && evbuffer_get_length(c->out) > 0 &&
		       (t->on_socket || tls_unsent(c) < TLS_RECORD_MAX)) {
			/* One record from the front of the output, however many
			 * chains it spans (a head and a body: one record, not two).
			 * The first after an idle time fits one TCP segment, so
			 * that the peer can decrypt the start of a response
			 * before the rest has arrived (nginx's ssl_buffer_size,
			 * HAProxy's dynamic record size). After a refusal
			 * on_socket, the same bytes again: the output only grew. */
			size_t cap = t->fresh && !t->write_blocked ? TLS_RECORD_FIRST : TLS_RECORD_MAX;
			ev_ssize_t n = evbuffer_copyout(c->out, scratch.plain, cap);
			size_t written = 0;
			int r = n > 0 ? SSL_write_ex(t->ssl, scratch.plain, (size_t)n, &written) : 0;
			if (r == 1) {
				evbuffer_drain(c->out, written);
				t->write_blocked = false;
				t->fresh = false;
				continue;
			}
			int err = SSL_get_error(t->ssl, r);
			if (err == SSL_ERROR_WANT_WRITE && t->on_socket)
				t->write_blocked = true;
			else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				fail(c, t);
			break;
		}
		if (t->on_socket)
			return; /* OpenSSL wrote to the socket itself */
		write_scratch_output(c, t);
		if (t->cout != NULL && evbuffer_get_length(t->cout) > 0)
			conn_socket_write(c, t->cout);
		if (tls_unsent(c) > 0 || !t->established || c->out == NULL || evbuffer_get_length(c->out) == 0)
			return; /* the kernel is full, or nothing more to encrypt now */
	}
	scratch.out_user = NULL;
}

static bool tls_input_ready(const struct conn *c)
{
	return state_of(c)->more;
}

/* Ciphertext waits for the kernel, or plaintext could be encrypted now:
 * not before the handshake, which only reads move on. */
static bool tls_wants_socket(const struct conn *c)
{
	const struct tls_conn *t = state_of(c);
	return tls_unsent(c) > 0 || (t->established && c->out != NULL && evbuffer_get_length(c->out) > 0);
}

static void tls_finish(struct conn *c)
{
	struct tls_conn *t = state_of(c);
	if (t->established && !c->error)
		shut_tls(t);
}

static void give_back(struct evbuffer **b)
{
	if (*b == NULL)
		return;
	if (evbuffer_get_length(*b) == 0)
		conn_buffer_give(*b);
	else
		evbuffer_free(*b);
	*b = NULL;
}

static void tls_release(struct conn *c)
{
	struct tls_conn *t = state_of(c);
	t->fresh = true;
	if (t->cin != NULL && evbuffer_get_length(t->cin) == 0)
		give_back(&t->cin);
	if (t->cout != NULL && evbuffer_get_length(t->cout) == 0)
		give_back(&t->cout);
}

static void tls_close(struct conn *c)
{
	struct tls_conn *t = state_of(c);
	if (!t->established)
		count(t, TLS_RESULT_CLOSED); /* a reset, or lb closing: unless said otherwise already */
	/* A session is resumable only after a clean shutdown: without
	 * SSL_shutdown, SSL_free marks it bad. */
	if (t->established && !c->error && (t->shutting || !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))) {
		SSL_shutdown(t->ssl);
		if (t->cout != NULL)
			conn_socket_write(c, t->cout); /* best effort: it is closing */
	}
	ERR_clear_error();
	SSL_free(t->ssl); /* and the BIO */
	give_back(&t->cin);
	give_back(&t->cout);
	free(t);
}

static const struct conn_transport tls_transport = {
	.receive = tls_receive,
	.send = tls_send,
	.unsent = tls_unsent,
	.input_ready = tls_input_ready,
	.wants_socket = tls_wants_socket,
	.finish = tls_finish,
	.release = tls_release,
	.close = tls_close,
};

/* c's new TLS state over a new SSL of ctx, on lb's BIO or (on_socket) on
 * the socket itself; NULL without memory. */
static struct tls_conn *attach(struct conn *c, SSL_CTX *ctx, bool on_socket)
{
	pthread_once(&bio_method_once, bio_method_make);
	if (bio_method == NULL)
		return NULL;
	struct tls_conn *t = calloc(1, sizeof(*t));
	SSL *ssl = SSL_new(ctx);
	BIO *bio = on_socket ? BIO_new_socket(c->fd, BIO_NOCLOSE) : BIO_new(bio_method);
	if (t == NULL || ssl == NULL || bio == NULL) {
		free(t);
		SSL_free(ssl);
		BIO_free(bio);
		ERR_clear_error();
		return NULL;
	}
	if (!on_socket)
		BIO_set_data(bio, t);
	SSL_set_bio(ssl, bio, bio);
	t->ssl = ssl;
	t->on_socket = on_socket;
	t->fresh = true;
	c->transport = &tls_transport;
	c->transport_state = t;
	return t;
}

int tls_conn_accept(struct conn *c, SSL_CTX *ctx, struct tls_counters *counters, const char *plain_http_answer,
		    bool on_socket)
{
	/* Bytes read in plain (after a PROXY header) are not on the socket
	 * any more: such a conn stays on lb's BIO. */
	on_socket = on_socket && (c->in == NULL || evbuffer_get_length(c->in) == 0);
	struct tls_conn *t = attach(c, ctx, on_socket);
	if (t == NULL)
		return -1;
	t->counters = counters;
	t->plain_http_answer = plain_http_answer;
	clock_gettime(CLOCK_MONOTONIC, &t->started);
	SSL_set_accept_state(t->ssl);
	/* What was read in plain (after a PROXY header) is the first ciphertext. */
	if (c->in != NULL && evbuffer_get_length(c->in) > 0) {
		if ((t->cin = conn_buffer_take()) == NULL) {
			tls_close(c);
			c->transport = NULL;
			c->transport_state = NULL;
			return -1;
		}
		evbuffer_add_buffer(t->cin, c->in);
		t->more = true; /* decrypt it without waiting for the socket */
	}
	return 0;
}

int tls_conn_connect(struct conn *c, SSL_CTX *ctx, const char *name, SSL_SESSION *session)
{
	struct tls_conn *t = attach(c, ctx, false);
	if (t == NULL)
		return -1;
	SSL_set_connect_state(t->ssl);
	bool ok = true;
	if (name != NULL && name[0] != '\0') {
		unsigned char ip[16];
		bool literal = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
		if (literal) /* an address is checked, never sent (RFC 6066 3) */
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1;
		else
			ok = SSL_set_tlsext_host_name(t->ssl, name) == 1 && SSL_set1_host(t->ssl, name) == 1;
	}
	if (ok && session != NULL) {
		/* A copy: OpenSSL marks a TLS 1.3 session spent once used, and
		 * the caller's stays good for the connections after this one
		 * (the server takes a ticket more than once). */
		SSL_SESSION *copy = SSL_SESSION_dup(session);
		ok = copy != NULL && SSL_set_session(t->ssl, copy) == 1;
		SSL_SESSION_free(copy);
	}
	if (!ok) {
		tls_close(c);
		c->transport = NULL;
		c->transport_state = NULL;
		return -1;
	}
	return 0;
}

int tls_conn_send_first(struct conn *c, const void *data, size_t len)
{
	struct tls_conn *t = state_of(c);
	/* In cout, the handshake's records queue behind them (tls_send uses
	 * the scratch only while nothing is unsent). */
	if (t->cout == NULL && (t->cout = conn_buffer_take()) == NULL)
		return -1;
	return evbuffer_add(t->cout, data, len) == 0 ? 0 : -1;
}

SSL *tls_conn_ssl(const struct conn *c)
{
	return c->transport == &tls_transport ? state_of(c)->ssl : NULL;
}

bool tls_conn_established(const struct conn *c)
{
	return c->transport != &tls_transport || state_of(c)->established;
}

bool tls_conn_alpn_is(const struct conn *c, const char *protocol)
{
	const unsigned char *chosen = NULL;
	unsigned int len = 0;
	if (c->transport != &tls_transport || !state_of(c)->established)
		return false;
	SSL_get0_alpn_selected(state_of(c)->ssl, &chosen, &len);
	return chosen != NULL && len == strlen(protocol) && memcmp(chosen, protocol, len) == 0;
}

void tls_conn_note_timeout(struct conn *c)
{
	if (c->transport == &tls_transport)
		count(state_of(c), TLS_RESULT_TIMEOUT);
}

const char *tls_conn_failure(const struct conn *c)
{
	return c->transport == &tls_transport ? state_of(c)->failure : "";
}
