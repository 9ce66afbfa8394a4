/*
 * session: what the HTTP and TCP sessions (http.c, tcp.c) share above the
 * connection layer. The seed of one session layer: for now, the PROXY
 * protocol step of a listener with proxy_protocol.
 */
#ifndef LB_SESSION_H
#define LB_SESSION_H

#include <sys/socket.h>

struct conn;

/* Take a PROXY v1/v2 header from the front of c's input (proxy_proto.h).
 * Returns 1 when it was there (drained; *peer is the original client
 * unless the header says LOCAL), 0 while it is incomplete, -1 when the
 * connection does not start with one. */
int session_take_proxy_header(struct conn *c, struct sockaddr_storage *peer);

#endif
