/*
 * tcp: the TCP-mode session (SPEC 8). A client connection is balanced once,
 * at accept; bytes are relayed both ways with bounded buffers; a half-close
 * is passed on; a failed connect is retried on another server.
 */
#ifndef LB_TCP_H
#define LB_TCP_H

#include <sys/socket.h>

#include "worker.h"

/* Take over the accepted socket `fd`. Returns 0, or -1 after closing fd. */
int tcp_session_start(struct worker *w, const struct gen_listener *l, int fd, const struct sockaddr_storage *peer,
		      socklen_t peer_len);

/* Once a second on the worker's thread: sessions' memory unused since the
 * last tick goes back (slab.h). */
void tcp_worker_tick(struct worker *w);

/* A worker ends, its sessions gone: free the tcp sessions' slab. */
void tcp_worker_exit(struct worker *w);

#endif
