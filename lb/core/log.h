/*
 * log: the error log (level + target) and the access log.
 *
 * Thread-safe: every line is formatted into a local buffer and written with
 * one write(2) to an O_APPEND descriptor, so lines of different workers never
 * interleave. The descriptors are swapped atomically by log_reopen (SIGUSR1,
 * after logrotate) and log_configure (reload); a writer racing with a swap
 * may write its line to the old file, which is what logrotate expects.
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include "config.h"

/* Before log_configure runs, lines of level info and above go to stderr. */

/* Apply global.log and global.access_log. Returns 0, or -1 with errno when
 * a file cannot be opened (the previous targets stay in place). */
int log_configure(enum log_level level, const char *target, const char *access_target);

/* Reopen file targets (same paths). */
void log_reopen(void);

/* Close everything (at exit). */
void log_shutdown(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* True when lines of this level are written (skip formatting work otherwise). */
int log_enabled(enum log_level level);

/* Access log: is it on, and write one line (the text, without newline). */
int log_access_enabled(void);
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
