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

#include "config.h"

/* A non-blocking socket listening on addr ("*:PORT" is IPv4 any, as
 * nginx's "listen *:PORT"), with SO_REUSEADDR. -1 on failure, with the
 * reason (naming `what`) in err. */
int listener_open(const struct cfg_addr *addr, const char *what, char *err, size_t errlen);

/* Options that follow a proxy listener's configuration, set again when a
 * reload takes its socket over (the mode may have changed). With
 * defer_accept, a connection is handed over once its first bytes arrived
 * (nginx's "deferred"). Returns 0 or -1 (errno). */
int listener_tune(int fd, bool defer_accept);

#endif
