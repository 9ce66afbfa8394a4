/*
 * conn: a non-blocking socket with an input and an output buffer, as the
 * proxy sessions use it. A leaner replacement for libevent's bufferevent on
 * the hot path, built to spend as few system calls per request as possible:
 *
 *   - reads: one readv per readiness into the input buffer (a second one
 *     only when the first filled all the space offered), no FIONREAD ioctl;
 *   - writes: conn_flush writes at once (speculatively, as HAProxy does);
 *     the write event is registered only when the kernel refused part of
 *     the output, and removed again once it is written;
 *   - the read event stays registered as long as the owner wants to read
 *     and the input holds less than read_limit bytes, so a busy connection
 *     costs no epoll_ctl per request.
 *
 * Memory follows traffic: the read event lives in the conn (which its
 * owner may embed: conn_open_at), the write event is made the first time a
 * write has to wait,
 * and an idle conn (a keep-alive client between requests, a pooled server
 * connection) gives its two buffers back (conn_buffers_release) until
 * bytes arrive or its owner writes again (conn_buffers_ensure).
 *
 * A transport (struct conn_transport) may stand between the socket and the
 * buffers: TLS (tls_conn.h) reads ciphertext from the socket and puts
 * plaintext into `in`, and encrypts `out` on its way to the socket. The
 * owner sees plaintext either way; conn_unsent counts what the transport
 * still holds.
 *
 * The owner gets one callback, `on_event`, after something happened
 * (bytes read, EOF, error, connected, output drained); it reads the flags
 * and buffers itself, then calls conn_flush / conn_sync. Single-threaded:
 * a conn belongs to one worker's event loop.
 */
#ifndef LB_CONN_H
#define LB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/event_struct.h> /* the read event lives in the conn */

/* A conn's input is not read beyond this (the owner may change
 * read_limit): what bounds memory per direction (relay.h). */
#define CONN_DEFAULT_READ_LIMIT (256 * 1024)

struct event_base;
struct event;
struct evbuffer;
struct conn;
struct slab;

typedef void conn_callback(struct conn *c, void *arg);

/* What a transport does in place of the plain socket calls. Each runs on
 * the conn's thread and reports through the conn's flags (eof, error). */
struct conn_transport {
	/* The socket is readable: bring what it holds into c->in (whose
	 * buffers are there), as far as c->read_limit allows. */
	void (*receive)(struct conn *c);
	/* Move c->out towards the socket, as far as the kernel takes it. */
	void (*send)(struct conn *c);
	/* Bytes held below c->out, not yet taken by the kernel. */
	size_t (*unsent)(const struct conn *c);
	/* Input is ready without a read from the socket (receive stopped at
	 * read_limit with more at hand). */
	bool (*input_ready)(const struct conn *c);
	/* Writability would let it move bytes now (what decides whether the
	 * write event is registered). */
	bool (*wants_socket)(const struct conn *c);
	/* The owner is done sending: say so in the protocol (close_notify). */
	void (*finish)(struct conn *c);
	/* Idle: give back what memory can be made again. */
	void (*release)(struct conn *c);
	/* The conn closes: free the transport's state. */
	void (*close)(struct conn *c);
};

struct conn {
	int fd;
	/* Both NULL while released (conn_buffers_release), both there once
	 * bytes were read or conn_buffers_ensure ran. */
	struct evbuffer *in;
	struct evbuffer *out;
	struct event *read_event; /* persistent EV_READ: &read_storage */
	struct event *write_event; /* persistent EV_WRITE, made when first needed, registered only then */
	struct event_base *base;
	struct event read_storage;
	bool embedded; /* in its owner's memory (conn_open_at): conn_free does not free it */
	bool slab_owned; /* from a slab (conn_connect): conn_free gives it back there */
	const struct conn_transport *transport; /* NULL = plain socket calls */
	void *transport_state;
	conn_callback *on_event;
	void *arg;
	size_t read_limit; /* no reading while the input holds this much */

	bool want_read; /* the owner's wish */
	bool reading; /* read_event registered */
	bool writing; /* write_event registered */
	bool connecting; /* a connect is in progress */
	bool connected; /* the connect completed (set once) */
	bool eof; /* the peer finished sending */
	bool error; /* reset, refused, ...: the connection is unusable */
	int error_code; /* errno of the error */
	bool write_shut; /* shutdown(SHUT_WR) done */
	bool shut_wanted; /* conn_shutdown_write asked: done once the transport's last bytes are out */
};

/* Take over an accepted socket `fd` (non-blocking). Reading starts at
 * once. Returns NULL on failure (fd is then still the caller's to close). */
struct conn *conn_open(struct event_base *base, int fd, conn_callback *cb, void *arg);

/* The same in memory the caller provides (a session embeds its client's
 * conn). 0, or -1 (fd is then still the caller's to close); conn_free
 * releases what it holds either way, and leaves c's memory alone. */
int conn_open_at(struct conn *c, struct event_base *base, int fd, conn_callback *cb, void *arg);

/* A conn with no socket below it (fd -1): its transport alone moves its
 * bytes (an HTTP/2 stream seen as a connection of its own, h2.h). It never
 * waits for the kernel: the transport calls conn_wake when it has news
 * (input, room for output, an error), and the owner hears it from the
 * loop, after the transport's receive ran. 0, or -1 out of memory (c then
 * holds nothing). conn_free leaves c's memory alone. */
int conn_open_virtual(struct conn *c, struct event_base *base, const struct conn_transport *transport, void *state,
		      conn_callback *cb, void *arg);
void conn_wake(struct conn *c);

/* Start a non-blocking connect. Completion or failure is reported through
 * the callback (connected, or error). NULL with errno when no socket could
 * be made. The conn comes from `slab` (slab.h: the calling thread's, which
 * must outlive it) or, when NULL, from malloc. */
struct conn *conn_connect(struct event_base *base, struct slab *slab, const struct sockaddr *sa, socklen_t salen,
			  conn_callback *cb, void *arg);

/* Change the owner (a pooled connection handed to a session). */
void conn_set_callback(struct conn *c, conn_callback *cb, void *arg);

/* Read what the socket holds now, without waiting for the event loop (a
 * just-accepted HTTP connection usually has its request already: see
 * TCP_DEFER_ACCEPT in gen.c). The owner is not called back. */
void conn_read_now(struct conn *c);

/* Write what the output holds now; register for writability if the kernel
 * takes only part of it. A failed write sets error and is reported through
 * the callback. */
void conn_flush(struct conn *c);

/* Apply the read wish and the read limit: (un)register the read event when
 * that changes anything. Call after consuming input or changing want_read. */
void conn_sync(struct conn *c);

/* Once the output is empty, shut the write side (a half-close). */
void conn_shutdown_write(struct conn *c);

/* Nothing in either buffer and nothing to write: free the buffers and the
 * write event (a keep-alive connection between requests, a pooled one, a
 * quiet TCP tunnel). Not after EOF: such a conn is finishing. The next read
 * brings the buffers back; an owner that writes first calls
 * conn_buffers_ensure (relay_move does). */
void conn_buffers_release(struct conn *c);

/* The buffers are there (again). false when there was no memory for them. */
bool conn_buffers_ensure(struct conn *c);

/* A thread that used conns ends: free the buffers it kept for reuse. */
void conn_thread_exit(void);

/* Bytes waiting in the input (0 while the buffers are released). */
size_t conn_input_length(const struct conn *c);

/* Bytes written by the owner that the kernel has not taken yet: the
 * output and what the transport holds. */
size_t conn_unsent(const struct conn *c);

/* For transports: the plain socket calls, on a buffer of their choice.
 * conn_socket_read sets eof or error; conn_socket_write sets error. */
void conn_socket_read(struct conn *c, struct evbuffer *into, size_t limit);
void conn_socket_write(struct conn *c, struct evbuffer *from);
/* The same into or from plain memory: the bytes read (0 at EOF, or when
 * nothing was there) or written. */
size_t conn_socket_read_to(struct conn *c, void *into, size_t len);
size_t conn_socket_write_from(struct conn *c, const void *from, size_t len);
/* Empty buffers from, and back to, the thread's cache. */
struct evbuffer *conn_buffer_take(void);
void conn_buffer_give(struct evbuffer *b);

/* Close the socket, free everything. NULL is fine. */
void conn_free(struct conn *c);

/* The same with a reset instead of a FIN (SO_LINGER 0): for a server
 * connection abandoned in the middle of an exchange. */
void conn_abort(struct conn *c);

#endif
