/* listener: listening sockets. See listener.h. */
#include "listener.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

/* Binds are addresses, or names resolved when the configuration loads. */
static int resolve_bind(const struct cfg_addr *addr, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	char port[8];

	snprintf(port, sizeof(port), "%u", addr->port);
	if (addr->host[0] == '\0')
		hints.ai_family = AF_INET;
	return getaddrinfo(addr->host[0] ? addr->host : NULL, port, &hints, out);
}

/* A socket bound to addr, listening when `listen_too`. */
static int bound_socket(const struct cfg_addr *addr, const char *what, bool reuseport, bool listen_too, char *err,
			size_t errlen)
{
	struct addrinfo *ai = NULL;
	int fd = -1, one = 1;
	int rc = resolve_bind(addr, &ai);

	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot resolve %s: %s", what, addr->text, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto fail;
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		goto fail;
	if (listen_too && listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	freeaddrinfo(ai);
	return fd;
fail:
	snprintf(err, errlen, "%s: cannot listen on %s: %s", what, addr->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

int listener_open(const struct cfg_addr *addr, const char *what, bool reuseport, char *err, size_t errlen)
{
	return bound_socket(addr, what, reuseport, true, err, errlen);
}

int listener_probe(const struct cfg_addr *addr, const char *what, char *err, size_t errlen)
{
	int fd = bound_socket(addr, what, false, false, err, errlen);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int listener_tune(int fd, bool defer_accept)
{
	int one = 1;
	/* Accepted sockets inherit it: no Nagle delay on small answers,
	 * without a setsockopt per connection. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return -1;
	int defer_s = defer_accept ? 1 : 0;
	return setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
}

int listener_accept(int fd, struct sockaddr_storage *peer, socklen_t *peer_len)
{
	for (;;) {
		*peer_len = sizeof(*peer);
		int client = accept4(fd, (struct sockaddr *)peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (client >= 0)
			return client;
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
			return -1;
	}
}

int listener_waiting(int fd)
{
	/* A listener's tcp_info reports its accept queue in tcpi_unacked (and
	 * the backlog in tcpi_sacked), read without the socket lock; the first
	 * 32 bytes hold both. */
	struct tcp_info info;
	socklen_t len = offsetof(struct tcp_info, tcpi_sacked) + sizeof(info.tcpi_sacked);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state != TCP_LISTEN ||
	    len < offsetof(struct tcp_info, tcpi_unacked) + sizeof(info.tcpi_unacked))
		return -1;
	return info.tcpi_unacked > INT_MAX ? INT_MAX : (int)info.tcpi_unacked;
}
