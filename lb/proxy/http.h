/*
 * http: the HTTP-mode session (SPEC 7). Each request on a client connection
 * is balanced on its own, sent over a pooled or new server connection, and
 * its response relayed; bodies stream with bounded buffers; pipelined
 * requests are answered in order; after a 101 bytes are tunnelled.
 */
#ifndef LB_HTTP_H
#define LB_HTTP_H

#include <sys/socket.h>

#include "worker.h"

/* Take over the accepted socket `fd`. Returns 0, or -1 after closing fd. */
int http_session_start(struct worker *w, const struct gen_listener *l, int fd, const struct sockaddr_storage *peer,
		       socklen_t peer_len);

/* Once a second on the worker's thread: memory unused since the last
 * tick goes back (slab.h). */
void http_worker_tick(struct worker *w);

/* A worker ends, its sessions gone: free its http memory (on its thread). */
void http_worker_exit(struct worker *w);

#endif
