/*
 * dns: asynchronous DNS queries on a libevent loop, by c-ares.
 *
 * One channel per configured list of name servers (global.resolvers, or
 * /etc/resolv.conf's when that list is empty; /etc/hosts is read either
 * way, as the system's resolver does). A query tries each server twice,
 * 1.5 s the first round and 3 s the second (c-ares doubles it), then fails
 * with DNS_TIMEOUT. An answer may come inside the call that asked (a name
 * in /etc/hosts), else on the loop; dns_free ends every query still out,
 * calling it back at once with DNS_CANCELLED. Control thread only.
 */
#ifndef LB_DNS_H
#define LB_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config_value.h"
#include "srv.h"

struct event_base;
struct dns;

enum dns_status {
	DNS_OK,
	DNS_NOT_FOUND, /* the name does not exist, or has no such record */
	DNS_TIMEOUT, /* no server answered */
	DNS_SERVER_FAILURE, /* SERVFAIL */
	DNS_REFUSED, /* REFUSED (a server that does not serve this name) */
	DNS_UNREACHABLE, /* ICMP: no DNS server listening there */
	DNS_FAILED, /* a bad answer, no memory, ... */
	DNS_CANCELLED, /* dns_free while the query was out */
};

const char *dns_status_text(enum dns_status status);

/* NULL on failure (logged). A server that is not an IP address is logged
 * and left out. */
struct dns *dns_new(struct event_base *base, const struct cfg_addr *servers, size_t nservers);
void dns_free(struct dns *d);

/* End every query out now (each is called back with DNS_CANCELLED inside
 * this call; queries those callbacks start are not ended). */
void dns_cancel(struct dns *d);

/* Every A and AAAA address of host, with `port`. addrs is the callee's
 * only during the call. */
typedef void dns_addresses_fn(void *arg, enum dns_status status, const struct sockaddr_storage *addrs,
			      size_t count);
void dns_addresses(struct dns *d, const char *host, uint16_t port, dns_addresses_fn *done, void *arg);

/* The SRV records of name (targets without their final dot; the callee's
 * only during the call). */
typedef void dns_srv_fn(void *arg, enum dns_status status, const struct srv_record *records, size_t count);
void dns_srv(struct dns *d, const char *name, dns_srv_fn *done, void *arg);

#endif
