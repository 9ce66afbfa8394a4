/* daemon: see daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready_fd = -1;
static char pidfile_path[4096];

int daemon_detach(void)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		/* Parent: report the child's startup as our exit status, so
		 * `lb -d` returns only once the pid file is there. */
		char byte;
		close(pipefd[1]);
		ssize_t n;
		do
			n = read(pipefd[0], &byte, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 3);
	}
	close(pipefd[0]);
	ready_fd = pipefd[1];
	/* No chdir("/"): relative paths given at start (-c, -p, log files in
	 * the configuration) keep their meaning for reloads and SIGUSR1;
	 * systemd starts services in / anyway. */
	if (setsid() < 0)
		return -1;
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		return -1;
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	if (null > 2)
		close(null);
	return 0;
}

void daemon_ready(void)
{
	if (ready_fd < 0)
		return;
	ssize_t n = write(ready_fd, "", 1);
	(void)n; /* the parent is gone if this fails: nothing to tell */
	close(ready_fd);
	ready_fd = -1;
}

void daemon_notify(const char *fmt, ...)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = where != NULL ? strlen(where) : 0;
	if (len == 0 || len >= sizeof(sa.sun_path) || (where[0] != '/' && where[0] != '@'))
		return;
	memcpy(sa.sun_path, where, len);
	if (where[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket */
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	ssize_t sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	(void)sent; /* nobody listening: nothing to tell */
	close(fd);
}

unsigned long long daemon_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	if (usec == NULL || (pid != NULL && strtol(pid, NULL, 10) != (long)getpid()))
		return 0;
	char *end = NULL;
	unsigned long long n = strtoull(usec, &end, 10);
	return end != usec && *end == '\0' ? n : 0;
}

int daemon_write_pidfile(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return 0;
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) != 0)
		return -1;
	/* Remember an absolute path: -d changes directory to /. */
	if (realpath(path, pidfile_path) == NULL)
		snprintf(pidfile_path, sizeof(pidfile_path), "%s", path);
	return 0;
}

void daemon_remove_pidfile(void)
{
	if (pidfile_path[0] != '\0')
		unlink(pidfile_path);
	pidfile_path[0] = '\0';
}

int daemon_drop_privileges(const char *user, char *err, size_t errlen)
{
	if (user == NULL || user[0] == '\0')
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "global.user %s ignored: not started as root", user);
		return 0;
	}
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "global.user: no user named \"%s\"", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		snprintf(err, errlen, "global.user: cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

unsigned long daemon_raise_descriptor_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}

unsigned long daemon_descriptor_hard_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return rl.rlim_max == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_max;
}

/* What the workers freed stays in malloc's arenas (and in RSS) until
 * trimmed: the top of each arena at free() beyond M_TRIM_THRESHOLD, free
 * pages in the middle only by malloc_trim(0). A trim holds each arena's
 * lock while it walks it, and pages it returns fault in again when reused:
 * so only when more lies free than after the previous trim (free bytes stay
 * counted once their pages are returned) by a quarter of what is in use.
 * Under load the free bytes swing with the traffic, a small part of what
 * is in use; after a burst they dwarf it (5,000 pooled connections left
 * 3.6 MB free beside 0.3 MB in use), and a burst beside a large working
 * set still frees more than a quarter of it. */
#define TRIM_MIN_GROWTH ((size_t)256 << 10)

void daemon_tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 512 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	mallopt(M_MXFAST, 0);
}

void daemon_trim_memory(void)
{
	static size_t free_after_last_trim;
	struct mallinfo2 m = mallinfo2();
	if (m.fordblks < free_after_last_trim)
		free_after_last_trim = m.fordblks; /* reused since */
	size_t grown = m.fordblks - free_after_last_trim;
	if (grown > TRIM_MIN_GROWTH && grown > m.uordblks / 4) {
		malloc_trim(0);
		free_after_last_trim = mallinfo2().fordblks;
	}
}
