/*
 * worker: one event loop thread that accepts and runs sessions.
 *
 * Each worker has its own event_base and touches no other worker's data.
 * The control thread talks to a worker only through the atomic fields
 * marked "control -> worker" and a wake-up eventfd; the worker answers
 * through the fields marked "worker -> control" and the control's eventfd.
 * Each worker accepts from its own socket of each listener (reuseport),
 * or all poll one shared socket (every idle worker wakes for each
 * connection: libevent 2.1 cannot ask for EPOLLEXCLUSIVE); the sockets
 * belong to generations.
 */
#ifndef LB_WORKER_H
#define LB_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "counters.h"
#include "gen.h"

struct event_base;
struct event;
struct worker;
struct worker_pools;
struct http_memory;
struct slab;

/* What a worker runs, handed down by the control thread: the worker knows
 * no proxy (as nginx sets a listener's handler). start[mode] begins a
 * session on an accepted socket (it owns fd from then on; < 0 when it
 * could not even start); at_exit runs on the worker's thread as it ends. */
typedef int worker_session_start_fn(struct worker *w, const struct gen_listener *l, int fd,
				    const struct sockaddr_storage *peer, socklen_t peer_len);
struct worker_handlers {
	worker_session_start_fn *start[LISTENER_MODE_COUNT]; /* by enum listener_mode */
	void (*tick)(struct worker *w); /* once a second on the worker's thread; may be NULL */
	void (*at_exit)(struct worker *w);
};

/* Why a worker tells its sessions to stop (session_link.stop). */
enum session_stop {
	SESSION_STOP_KEEPALIVE, /* the worker stops, or the instance drains: keep-alive ends */
	SESSION_STOP_RELOADED, /* a reload (the file read again): HTTP/2 connections get GOAWAY (SPEC 14) */
};

/* Every session (tcp or http) starts with this link, so a worker can count
 * its sessions and free them all when it is stopped before they end. */
struct session_link {
	struct session_link *prev, *next;
	void (*destroy)(struct session_link *link);
	/* KEEPALIVE: close now when idle, else after the current response;
	 * RELOADED: what the protocol does on a reload. May free the session.
	 * NULL = no-op (a TCP session runs to its end). */
	void (*stop)(struct session_link *link, enum session_stop why);
	bool uncounted; /* not a connection (an HTTP/2 stream's session): no connection counter */
};

struct accept_point {
	struct worker *worker;
	const struct gen_listener *listener;
	int fd; /* the listening socket it accepts from */
	bool shared; /* every worker polls fd (global.reuseport: false): watched with EPOLLEXCLUSIVE */
	struct event *event;
};

/* A message to a worker from any thread, delivered on the worker's loop
 * (queue.h's grants of a slot to a waiting session). */
struct worker_mail {
	struct queue_link link; /* first: in the worker's mail until delivered */
	void (*deliver)(struct worker_mail *m); /* on the worker's thread */
};

/* worker.epoll_fd before the first shared listening socket needs it. */
#define EPOLL_FD_UNKNOWN (-2)

struct worker {
	int index;
	const struct worker_handlers *handlers;
	pthread_t thread;
	struct event_base *base;
	int wake_fd; /* eventfd the control writes to */
	struct event *wake_event;
	int control_fd; /* the control's eventfd, written after each answer */

	/* control -> worker */
	_Atomic(struct gen *) pending_gen; /* a reference handed over */
	atomic_bool stopping; /* stop accepting, exit when no session is left */
	atomic_bool stop_now; /* exit at once, closing every session */
	atomic_bool draining; /* the instance drains: HTTP keep-alive ends (worker_draining) */
	atomic_uint drains; /* drains begun: each closes the idle connections once */

	/* worker -> control */
	atomic_ulong acked_gen; /* id of the generation it accepts for */
	atomic_bool accepting_stopped;
	atomic_bool exited;
	atomic_uint_fast64_t ticked_ms; /* clock_ms() of its last tick: its loop turns (systemd watchdog) */

	/* any thread -> worker: mail (worker_post_mail) */
	pthread_mutex_t mail_lock;
	struct queue_link mail; /* of struct worker_mail, under mail_lock */
	int mail_fd; /* eventfd: written after a post */
	struct event *mail_event;

	/* the worker's own */
	struct gen *gen; /* a reference */
	struct accept_point *accept_points;
	size_t naccept_points;
	int epoll_fd; /* its base's epoll set (exclusive.h): -1 none, EPOLL_FD_UNKNOWN not looked up yet */
	unsigned drains_seen; /* drains acted upon */
	bool accept_paused; /* at max_connections or after EMFILE */
	struct event *accept_resume_timer;
	struct event *tick_timer; /* handlers->tick, and its own slab trimmed */
	struct worker_pools *pools; /* idle server connections: pool.c's, NULL until used */
	struct slab *server_conns; /* where its server connections live (slab.h: memory back after a burst) */
	struct slab *tcp_sessions; /* the tcp proxy's sessions, NULL until used; freed by handlers->at_exit */
	struct http_memory *http_memory; /* the http proxy's slabs (sessions, requests), NULL until
					    used; freed by handlers->at_exit */
	struct session_link sessions; /* list head */
	size_t nsessions;
};

/* Create the worker's loop (in the calling thread) and start its thread
 * on `gen` (a new reference is taken). Returns 0 or -1. */
int worker_start(struct worker *w, int index, struct gen *gen, int control_fd, const struct worker_handlers *handlers);

/* Post m to w (any thread): w's loop calls m->deliver(m) soon. */
void worker_post_mail(struct worker *w, struct worker_mail *m);

/* On w's own thread: take back m, posted and not delivered yet. */
void worker_recall_mail(struct worker *w, struct worker_mail *m);

/* Control side: hand over a new generation / ask to stop. Thread-safe. */
void worker_post_gen(struct worker *w, struct gen *gen);
void worker_post_stop(struct worker *w, bool now);

/* The instance drains (POST /drain, SIGTERM with drain_delay) or serves
 * again: while it drains, idle keep-alive connections close and every
 * response ends its connection, so that clients reconnect, through
 * whatever balances in front of lb, to an instance that stays. */
void worker_post_drain(struct worker *w, bool draining);

/* Session side: should keep-alive end after this response? */
static inline bool worker_draining(const struct worker *w)
{
	return atomic_load_explicit(&w->draining, memory_order_relaxed);
}

/* Control side, after the thread exited: join and free. */
void worker_join(struct worker *w);

/* Session side, on the worker's thread: no descriptor left for a server
 * connection (EMFILE, ENFILE): pause accepting as for a failed accept. */
void worker_out_of_descriptors(struct worker *w, int err);

/* Session side, on the worker's thread. */
void worker_session_add(struct worker *w, struct session_link *link);
void worker_session_remove(struct worker *w, struct session_link *link);

/* Wake an eventfd (control or worker). */
void wake_fd_signal(int fd);

#endif
