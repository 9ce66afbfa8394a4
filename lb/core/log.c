/* log: see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

/* A target is stderr, syslog, or a file descriptor opened from a path.
 * Paths are kept so log_reopen can open them again. */
enum target_kind { TARGET_OFF, TARGET_STDERR, TARGET_SYSLOG, TARGET_FILE };

struct log_target {
	_Atomic enum target_kind kind; /* read by every worker */
	_Atomic int fd;
	char path[1024];
};

static _Atomic int log_level = LOG_LEVEL_INFO;
static struct log_target error_log = { .kind = TARGET_STDERR, .fd = 2 };
static struct log_target access_log = { .kind = TARGET_OFF, .fd = -1 };

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int syslog_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static int open_append(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* Parse a target string into *t (opening files). Returns 0 or -1. */
static int target_set(struct log_target *t, const char *text, int allow_off)
{
	int fd = -1;
	enum target_kind kind;

	if (allow_off && strcmp(text, "off") == 0) {
		kind = TARGET_OFF;
	} else if (strcmp(text, "stderr") == 0) {
		kind = TARGET_STDERR;
		fd = 2;
	} else if (strcmp(text, "syslog") == 0) {
		kind = TARGET_SYSLOG;
		openlog("lb", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	} else {
		kind = TARGET_FILE;
		fd = open_append(text);
		if (fd < 0)
			return -1;
	}
	int old = atomic_load(&t->fd);
	if (t->kind == TARGET_FILE && kind == TARGET_FILE && old > 2) {
		/* Same descriptor number, new file: a worker writing right now
		 * can never hit a closed or reused descriptor. */
		dup2(fd, old);
		close(fd);
	} else {
		/* A change of kind (rare): the old file stays open, for the
		 * same reason. */
		atomic_store(&t->fd, fd);
	}
	t->kind = kind;
	snprintf(t->path, sizeof(t->path), "%s", text);
	return 0;
}

int log_configure(enum log_level level, const char *target, const char *access_target)
{
	if (target_set(&error_log, target, 0) < 0)
		return -1;
	if (target_set(&access_log, access_target, 1) < 0)
		return -1;
	atomic_store(&log_level, level);
	return 0;
}

static void target_reopen(struct log_target *t)
{
	if (t->kind != TARGET_FILE)
		return;
	int fd = open_append(t->path);
	if (fd < 0)
		return; /* keep writing to the old file rather than nowhere */
	dup2(fd, atomic_load(&t->fd)); /* see target_set: the number stays */
	close(fd);
}

void log_reopen(void)
{
	target_reopen(&error_log);
	target_reopen(&access_log);
}

void log_shutdown(void)
{
	if (error_log.kind == TARGET_FILE)
		close(atomic_exchange(&error_log.fd, 2));
	if (access_log.kind == TARGET_FILE)
		close(atomic_exchange(&access_log.fd, -1));
	error_log.kind = TARGET_STDERR;
	access_log.kind = TARGET_OFF;
}

int log_enabled(enum log_level level)
{
	return (int)level <= atomic_load(&log_level);
}

int log_access_enabled(void)
{
	return access_log.kind != TARGET_OFF;
}

static void write_line(int fd, const char *line, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere else to report a failing log */
		line += n;
		len -= (size_t)n;
	}
}

/* "2026-11-25T21:04:05.123Z". The second is formatted once per second per
 * thread (strftime is costly), the milliseconds by hand. */
static size_t format_time(char *buf, size_t cap)
{
	static _Thread_local time_t cached_second = -1;
	static _Thread_local char cached[32];
	static _Thread_local size_t cached_len;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_second) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_second = tv.tv_sec;
	}
	if (cap < cached_len + 6)
		return 0;
	memcpy(buf, cached, cached_len);
	unsigned ms = (unsigned)(tv.tv_usec / 1000);
	char *p = buf + cached_len;
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	*p++ = 'Z';
	return cached_len + 5;
}

/* Format prefix + message + '\n' into line; returns the length. */
static size_t format_line(char *line, const char *prefix, const char *fmt, va_list ap)
{
	size_t n = format_time(line, LOG_LINE_MAX);
	int m = snprintf(line + n, LOG_LINE_MAX - n, " %s", prefix);
	n += m > 0 ? (size_t)m : 0;
	m = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
	if (m > 0)
		n += (size_t)m < LOG_LINE_MAX - n - 1 ? (size_t)m : LOG_LINE_MAX - n - 2;
	line[n++] = '\n';
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	if (error_log.kind == TARGET_SYSLOG) {
		vsyslog(syslog_priorities[level], fmt, ap);
	} else {
		char line[LOG_LINE_MAX];
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "lb[%d]: %s: ", (int)getpid(), level_names[level]);
		size_t n = format_line(line, prefix, fmt, ap);
		write_line(atomic_load(&error_log.fd), line, n);
	}
	va_end(ap);
}

void log_access(const char *fmt, ...)
{
	if (access_log.kind == TARGET_OFF)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (access_log.kind == TARGET_SYSLOG) {
		vsyslog(LOG_INFO, fmt, ap);
	} else {
		char line[LOG_LINE_MAX];
		size_t n = format_line(line, "", fmt, ap);
		write_line(atomic_load(&access_log.fd), line, n);
	}
	va_end(ap);
}
