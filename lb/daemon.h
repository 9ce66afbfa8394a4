/*
 * daemon: the process around the event loops: detaching, the pid file,
 * dropping privileges, descriptor limits, malloc. Called by main before
 * any thread starts, except daemon_trim_memory.
 */
#ifndef LB_DAEMON_H
#define LB_DAEMON_H

#include <stddef.h>

/* Fork into the background: the parent waits until the child called
 * daemon_ready (then exits 0) or died (then exits 3). In the child:
 * setsid, stdio to /dev/null (the working directory stays, so relative
 * paths keep their meaning). Returns 0 in the child, -1 on error. */
int daemon_detach(void);

/* Tell a waiting parent that startup finished (no-op when not detached). */
void daemon_ready(void);

/* Tell the service manager (systemd Type=notify: $NOTIFY_SOCKET, a path or
 * an abstract "@name") how lb is: "READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=...", newline-separated. No-op without $NOTIFY_SOCKET; best
 * effort (a datagram, never waited for). */
void daemon_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* systemd's WatchdogSec=: the interval ($WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or ours) within which "WATCHDOG=1" must come,
 * in microseconds; 0 = no watchdog. */
unsigned long long daemon_watchdog_usec(void);

/* Write getpid() to path ("" = none). Returns 0 or -1 with errno. */
int daemon_write_pidfile(const char *path);
void daemon_remove_pidfile(void);

/* Raise the soft limit on open descriptors to the hard limit. Returns the
 * soft limit now in force. */
unsigned long daemon_raise_descriptor_limit(void);

/* The hard limit: what daemon_raise_descriptor_limit would give. */
unsigned long daemon_descriptor_hard_limit(void);

/* Before any allocation of note: fixed malloc thresholds, so that malloc
 * gives memory back after a burst (glibc would raise them for good after
 * the first large buffer freed), and no fastbins (they made every 16 KiB
 * read buffer consolidate the heap). */
void daemon_tune_malloc(void);

/* Free pages in the middle of malloc's arenas go back to the kernel when
 * more lies free than after the previous trim by 256 KiB and by a quarter
 * of what is in use. Once a second, from one thread (the control loop). */
void daemon_trim_memory(void);

/* Become `user` when running as root. "" = stay. Returns 0 or -1 with a
 * message in err. */
int daemon_drop_privileges(const char *user, char *err, size_t errlen);

#endif
