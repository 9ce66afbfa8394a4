/* dns: c-ares on a libevent loop. See dns.h. */
#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DNS_TIMEOUT_MS 1500 /* per try; c-ares doubles it each round of the servers */
#define DNS_TRIES 2

struct dns_socket {
	ares_socket_t fd; /* ARES_SOCKET_BAD = free */
	struct event *event;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	bool channel_ready;
	struct event *timer; /* c-ares' next timeout */
	struct dns_socket *sockets; /* c-ares opens a UDP and maybe a TCP socket per server */
	size_t nsockets;
};

const char *dns_status_text(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NOT_FOUND:
		return "no such name or record";
	case DNS_TIMEOUT:
		return "timeout (no DNS server answered)";
	case DNS_SERVER_FAILURE:
		return "server failure (SERVFAIL)";
	case DNS_REFUSED:
		return "refused by the DNS server";
	case DNS_UNREACHABLE:
		return "no DNS server listening";
	case DNS_CANCELLED:
		return "cancelled";
	case DNS_FAILED:
		break;
	}
	return "DNS failure";
}

static enum dns_status status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
	case ARES_ENONAME:
	case ARES_EBADNAME: /* a name that cannot be: none such */
		return DNS_NOT_FOUND;
	case ARES_ETIMEOUT:
		return DNS_TIMEOUT;
	case ARES_ESERVFAIL:
		return DNS_SERVER_FAILURE;
	case ARES_EREFUSED:
		return DNS_REFUSED;
	case ARES_ECONNREFUSED:
		return DNS_UNREACHABLE;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return DNS_CANCELLED;
	default:
		return DNS_FAILED;
	}
}

/* After every turn of c-ares: wake up for its next timeout. */
static void dns_arm_timer(struct dns *d)
{
	struct timeval tv;
	if (ares_timeout(d->channel, NULL, &tv) != NULL)
		event_add(d->timer, &tv);
	else
		event_del(d->timer);
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD, (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* time out what is due */
	dns_arm_timer(d);
}

/* c-ares says which of its sockets to watch, and for what. */
static void on_socket_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = arg;
	struct dns_socket *slot = NULL, *free_slot = NULL;
	for (size_t i = 0; i < d->nsockets && slot == NULL; i++) {
		if (d->sockets[i].fd == fd)
			slot = &d->sockets[i];
		else if (d->sockets[i].fd == ARES_SOCKET_BAD && free_slot == NULL)
			free_slot = &d->sockets[i];
	}
	if (slot != NULL) {
		event_free(slot->event);
		slot->event = NULL;
		slot->fd = ARES_SOCKET_BAD;
	}
	if (!readable && !writable)
		return;
	if (slot == NULL && free_slot == NULL) {
		size_t n = d->nsockets ? d->nsockets * 2 : 4;
		struct dns_socket *grown = realloc(d->sockets, n * sizeof(*grown));
		if (grown != NULL) {
			for (size_t i = d->nsockets; i < n; i++)
				grown[i] = (struct dns_socket){ .fd = ARES_SOCKET_BAD };
			free_slot = &grown[d->nsockets];
			d->sockets = grown;
			d->nsockets = n;
		}
	}
	slot = slot != NULL ? slot : free_slot;
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	if (slot == NULL || (slot->event = event_new(d->base, fd, what, on_socket, d)) == NULL ||
	    event_add(slot->event, NULL) != 0) {
		/* Not watched: its query ends by its timeout. */
		log_error("dns: cannot watch a DNS socket");
		if (slot != NULL && slot->event != NULL) {
			event_free(slot->event);
			slot->event = NULL;
		}
		return;
	}
	slot->fd = fd;
}

/* "ip:port,[ip6]:port" of the servers that are IP addresses. */
static void servers_csv(const struct cfg_addr *servers, size_t n, char *out, size_t cap)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char raw[sizeof(struct in6_addr)];
		bool v4 = inet_pton(AF_INET, servers[i].host, raw) == 1;
		if (!v4 && inet_pton(AF_INET6, servers[i].host, raw) != 1) {
			log_warn("global.resolvers: cannot use %s: not an IP address", servers[i].text);
			continue;
		}
		int m = snprintf(out + used, cap - used, v4 ? "%s%s:%u" : "%s[%s]:%u", used ? "," : "", servers[i].host,
				 servers[i].port);
		if (m < 0 || (size_t)m >= cap - used)
			break;
		used += (size_t)m;
	}
}

struct dns *dns_new(struct event_base *base, const struct cfg_addr *servers, size_t nservers)
{
	static bool library_ready;
	if (!library_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			log_error("dns: c-ares does not initialise");
			return NULL;
		}
		library_ready = true;
	}
	struct dns *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->base = base;
	d->timer = evtimer_new(base, on_timer, d);
	struct ares_options options = {
		.timeout = DNS_TIMEOUT_MS,
		.tries = DNS_TRIES,
		.sock_state_cb = on_socket_state,
		.sock_state_cb_data = d,
		/* Own name servers: names are asked as written, as evdns did
		 * (resolv.conf's search list belongs to its own servers). */
		.flags = nservers > 0 ? ARES_FLAG_NOSEARCH : 0,
	};
	int rc = d->timer == NULL ? ARES_ENOMEM
				  : ares_init_options(&d->channel, &options,
						      ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
							      ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		log_error("dns: %s", ares_strerror(rc));
		dns_free(d);
		return NULL;
	}
	d->channel_ready = true;
	if (nservers > 0) {
		char csv[2048];
		servers_csv(servers, nservers, csv, sizeof(csv));
		rc = ares_set_servers_ports_csv(d->channel, csv);
		if (rc != ARES_SUCCESS)
			log_warn("global.resolvers: %s", ares_strerror(rc));
	}
	return d;
}

void dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	if (d->channel_ready)
		ares_destroy(d->channel); /* calls back every query still out */
	for (size_t i = 0; i < d->nsockets; i++)
		if (d->sockets[i].event != NULL)
			event_free(d->sockets[i].event);
	free(d->sockets);
	if (d->timer != NULL)
		event_free(d->timer);
	free(d);
}

void dns_cancel(struct dns *d)
{
	ares_cancel(d->channel);
	dns_arm_timer(d);
}

/* ---- addresses ---- */

struct addresses_query {
	dns_addresses_fn *done;
	void *arg;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
	struct addresses_query *q = arg;
	struct sockaddr_storage *addrs = NULL;
	size_t count = 0, n = 0;
	(void)timeouts;

	for (struct ares_addrinfo_node *p = result != NULL ? result->nodes : NULL; p != NULL; p = p->ai_next)
		n++;
	if (status == ARES_SUCCESS && n > 0 && (addrs = calloc(n, sizeof(*addrs))) == NULL)
		status = ARES_ENOMEM;
	for (struct ares_addrinfo_node *p = addrs != NULL ? result->nodes : NULL; p != NULL; p = p->ai_next) {
		if (p->ai_addrlen > sizeof(*addrs) || (p->ai_family != AF_INET && p->ai_family != AF_INET6))
			continue;
		bool seen = false; /* an address may come twice */
		for (size_t i = 0; i < count && !seen; i++)
			seen = memcmp(&addrs[i], p->ai_addr, p->ai_addrlen) == 0;
		if (!seen)
			memcpy(&addrs[count++], p->ai_addr, p->ai_addrlen);
	}
	if (status == ARES_SUCCESS && count == 0)
		status = ARES_ENODATA;
	q->done(q->arg, status_of(status), addrs, count);
	free(addrs);
	if (result != NULL)
		ares_freeaddrinfo(result);
	free(q);
}

void dns_addresses(struct dns *d, const char *host, uint16_t port, dns_addresses_fn *done, void *arg)
{
	struct addresses_query *q = malloc(sizeof(*q));
	if (q == NULL) {
		done(arg, DNS_FAILED, NULL, 0);
		return;
	}
	*q = (struct addresses_query){ .done = done, .arg = arg };
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	struct ares_addrinfo_hints hints = { .ai_flags = ARES_AI_NUMERICSERV, .ai_family = AF_UNSPEC,
					     .ai_socktype = SOCK_STREAM };
	ares_getaddrinfo(d->channel, host, service, &hints, on_addrinfo, q);
	dns_arm_timer(d);
}

/* ---- SRV ---- */

struct srv_query {
	dns_srv_fn *done;
	void *arg;
};

static void on_srv(void *arg, int status, int timeouts, unsigned char *answer, int length)
{
	struct srv_query *q = arg;
	struct ares_srv_reply *replies = NULL;
	struct srv_record *records = NULL;
	size_t count = 0;
	(void)timeouts;

	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(answer, length, &replies);
	for (struct ares_srv_reply *r = replies; r != NULL; r = r->next)
		count++;
	if (status == ARES_SUCCESS && count > 0 && (records = calloc(count, sizeof(*records))) == NULL)
		status = ARES_ENOMEM;
	size_t i = 0;
	for (struct ares_srv_reply *r = records != NULL ? replies : NULL; r != NULL; r = r->next, i++) {
		size_t len = strlen(r->host);
		if (len > 1 && r->host[len - 1] == '.')
			r->host[len - 1] = '\0';
		records[i] = (struct srv_record){ .target = r->host, .priority = r->priority, .weight = r->weight,
						  .port = r->port };
	}
	if (status == ARES_SUCCESS && count == 0)
		status = ARES_ENODATA;
	q->done(q->arg, status_of(status), records, records != NULL ? count : 0);
	free(records);
	if (replies != NULL)
		ares_free_data(replies);
	free(q);
}

void dns_srv(struct dns *d, const char *name, dns_srv_fn *done, void *arg)
{
	struct srv_query *q = malloc(sizeof(*q));
	if (q == NULL) {
		done(arg, DNS_FAILED, NULL, 0);
		return;
	}
	*q = (struct srv_query){ .done = done, .arg = arg };
	ares_search(d->channel, name, ns_c_in, ns_t_srv, on_srv, q);
	dns_arm_timer(d);
}
