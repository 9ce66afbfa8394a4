/*
 * relay: moving bytes between two bufferevents with bounded buffers, as the
 * TCP session and the HTTP tunnel and body relays do.
 *
 * Backpressure: a side is not read while the other side's output holds
 * RELAY_HIGH_WATER bytes or more; it is read again once that output drains
 * below RELAY_LOW_WATER (the destination's write callback fires there: set
 * it up with relay_setup). Memory per direction stays under about
 * RELAY_HIGH_WATER + one read.
 */
#ifndef LB_RELAY_H
#define LB_RELAY_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct evbuffer;

#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER (64 * 1024)

/* Watermarks on a bufferevent that takes part in a relay. */
void relay_setup(struct bufferevent *bev);

/* Move everything src has read into dst's output. Returns the bytes moved. */
size_t relay_move(struct bufferevent *src, struct bufferevent *dst);

/* Pause or resume reading src according to how full dst's output is. */
void relay_backpressure(struct bufferevent *src, struct bufferevent *dst);

/* Once src is finished (EOF) and dst's output is flushed, shut dst's write
 * side so the peer sees the half-close. Sets *dst_shut when done. */
void relay_pass_half_close(bool src_eof, struct bufferevent *dst, bool *dst_shut);

#endif
