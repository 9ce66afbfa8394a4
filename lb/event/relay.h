/*
 * relay: moving bytes between two conns with bounded buffers, as the TCP
 * session and the HTTP tunnel and body relays do.
 *
 * Backpressure: a side is not read while the other side holds
 * RELAY_HIGH_WATER bytes or more that the kernel has not taken (measured
 * right after writing what it takes now); it is read again once that
 * drains below RELAY_LOW_WATER (the owner is called back after each
 * write, and calls relay_backpressure again). A conn's input is itself capped at
 * RELAY_HIGH_WATER (conn.read_limit), so memory per direction stays under
 * about twice that.
 */
#ifndef LB_RELAY_H
#define LB_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

#define RELAY_HIGH_WATER CONN_DEFAULT_READ_LIMIT
#define RELAY_LOW_WATER (64 * 1024)

/* Move everything src has read into dst's output (taking dst's buffers
 * back if it gave them up while idle: conn_buffers_release). Returns the
 * bytes moved; 0 with dst->error set (ENOMEM) when they cannot be had. */
size_t relay_move(struct conn *src, struct conn *dst);

/* Write dst's output as far as the kernel takes it now, then pause or
 * resume reading src according to what is left. */
void relay_backpressure(struct conn *src, struct conn *dst);

/* Once src is finished (EOF) and dst's output is flushed, shut dst's write
 * side so the peer sees the half-close. Returns true once that is done. */
bool relay_pass_half_close(const struct conn *src, struct conn *dst);

#endif
