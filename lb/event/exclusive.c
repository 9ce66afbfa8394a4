/* exclusive: a shared listening socket woken one worker at a time. See exclusive.h. */
#include "exclusive.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Does epoll set epfd hold target? Its /proc fdinfo lists one "tfd:" line
 * per descriptor it watches. */
static bool epoll_holds(int epfd, int target)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	bool found = false;
	int tfd;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = sscanf(line, "tfd: %d", &tfd) == 1 && tfd == target;
	fclose(f);
	return found;
}

static bool is_epoll(int fd)
{
	char path[64], link[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventpoll]") == 0;
}

int exclusive_epoll_fd(struct event_base *base, int registered_fd)
{
	if (strcmp(event_base_get_method(base), "epoll") != 0)
		return -1;
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL)
		return -1;
	int found = -1;
	struct dirent *d;
	while (found < 0 && (d = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(d->d_name, &end, 10);
		if (*end != '\0' || end == d->d_name || fd == dirfd(dir))
			continue;
		if (is_epoll((int)fd) && epoll_holds((int)fd, registered_fd))
			found = (int)fd;
	}
	closedir(dir);
	return found;
}

int exclusive_watch(int epfd, int fd)
{
	/* libevent's data is the descriptor itself (epoll.c: data.fd). */
	struct epoll_event plain = { .events = EPOLLIN, .data.fd = fd };
	struct epoll_event exclusive = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = fd };
	if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) != 0)
		return -1;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &exclusive) == 0)
		return 0;
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &plain); /* as libevent had it */
	return -1;
}
