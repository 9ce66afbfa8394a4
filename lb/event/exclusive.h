/*
 * exclusive: one listening socket shared by every worker, woken one worker
 * at a time (EPOLLEXCLUSIVE, Linux 4.5), for global.reuseport: false.
 *
 * libevent 2.1 registers descriptors with plain EPOLLIN and has no way to
 * ask for more, and a nested epoll with the flag wakes every worker anyway
 * (the kernel honours it only for a thread waiting in epoll_wait on the set
 * that holds the socket). So the registration libevent made for the
 * listening socket is replaced, in libevent's own epoll set, by one with
 * EPOLLEXCLUSIVE and the same data: libevent still dispatches it to its
 * event. libevent never touches it again until event_del (EPOLL_CTL_DEL,
 * which works on either); after each event_add, call exclusive_watch again.
 *
 * That holds while the socket has exactly one event in the base, EV_READ:
 * a second event, or another flag (EV_CLOSED, EV_WRITE), makes libevent
 * issue EPOLL_CTL_MOD, which the kernel refuses on an exclusive entry, and
 * the event_add fails.
 *
 * The kernel wakes the first idle worker in the socket's queue: on a quiet
 * machine one worker takes nearly every connection, and long-lived ones
 * arriving slowly all stay with it. reuseport spreads them.
 */
#ifndef LB_EXCLUSIVE_H
#define LB_EXCLUSIVE_H

#include <event2/event.h>

/* The epoll descriptor of base, found as the epoll set that holds
 * registered_fd (a descriptor base has a pending event on, and only base):
 * -1 when the base is not epoll or it cannot be found. */
int exclusive_epoll_fd(struct event_base *base, int registered_fd);

/* Re-register fd, just added to epoll set epfd by event_add with EV_READ,
 * with EPOLLIN | EPOLLEXCLUSIVE. 0, or -1 when the kernel refuses the flag
 * (fd is then registered as libevent had it). */
int exclusive_watch(int epfd, int fd);

#endif
