/*
 * listener: listening sockets (SPEC 4 listeners[].bind, admin.bind). Made
 * by the control thread: at start and reload for the generations (gen.c,
 * which hands a socket over to the next generation when its bind stays),
 * and for the admin endpoint.
 */
#ifndef LB_LISTENER_H
#define LB_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* A non-blocking socket listening on addr ("*:PORT" is IPv4 any, as
 * nginx's "listen *:PORT"), with SO_REUSEADDR, and SO_REUSEPORT when
 * `reuseport` (several sockets of one bind, the kernel spreading
 * connections over them). -1 on failure, with the reason (naming `what`)
 * in err. */
int listener_open(const struct cfg_addr *addr, const char *what, bool reuseport, char *err, size_t errlen);

/* Is addr free to listen on? Binds a plain socket (no SO_REUSEPORT) and
 * closes it without listening: before sockets with SO_REUSEPORT, which
 * would share the address with another process of the same user. 0, or
 * -1 with the reason (naming `what`) in err. */
int listener_probe(const struct cfg_addr *addr, const char *what, char *err, size_t errlen);

/* Options that follow a proxy listener's configuration, set again when a
 * reload takes its socket over (the mode may have changed). With
 * defer_accept, a connection is handed over once its first bytes arrived
 * (nginx's "deferred"). Returns 0 or -1 (errno). */
int listener_tune(int fd, bool defer_accept);

/* Accept one connection from a non-blocking listening socket: the new
 * socket (non-blocking, close-on-exec), its peer in *peer. Connections
 * that died in the queue are skipped. -1 with errno EAGAIN when none is
 * waiting; -1 with another errno (EMFILE, ENFILE, ENOBUFS, ENOMEM) when lb
 * itself cannot take one now: the connection stays queued and the socket
 * stays readable, so the caller must pause accepting rather than retry at
 * once. One accept path for every listener, proxy or admin. */
int listener_accept(int fd, struct sockaddr_storage *peer, socklen_t *peer_len);

/* Connections waiting in the accept queue of the listening TCP socket fd,
 * as the kernel counts them; -1 when it cannot tell. Asking costs a sixth
 * of the failed accept4 (1.2 us here: it makes and unmakes a socket) that
 * otherwise ends every drain of the queue. */
int listener_waiting(int fd);

#endif
