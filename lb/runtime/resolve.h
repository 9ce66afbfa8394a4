/*
 * resolve: the addresses of the configured servers (SPEC 4, 11).
 *
 * A server written as an address is that address. A server written as a
 * host name is every A/AAAA record of the name, each one a server of its
 * own named "ip:port". A server written "srv:NAME" is every address of
 * every target of NAME's SRV records in use (srv.h), each with the port
 * and weight of its record, named "ip:port" too. Queries go through dns.h
 * (c-ares: global.resolvers, or /etc/resolv.conf's servers when that list
 * is empty; /etc/hosts either way):
 *   - when a configuration is loaded (start, SIGHUP), nothing waits on DNS:
 *     resolve_config_literals gives the written addresses at once, and every
 *     name keeps the addresses it had in the running generation (a new
 *     name has none yet); the control thread then asks the resolver to
 *     resolve the new generation at once (resolver_resolve_now), so the
 *     admin endpoint and health checks, on the same thread, never wait;
 *   - then every resolve_interval, asynchronously too;
 *   - either way, a resolution that differs from the running generation is
 *     reported, and the control thread builds a new generation from it
 *     (servers that stay keep their state, as on reload).
 * A name that fails to resolve keeps the addresses it had (a DNS outage
 * must not empty a backend); at start it has none, and is logged. So does
 * an srv: name when its SRV query, or the address query of one of its
 * targets, fails; a target that does not exist (NXDOMAIN, no address) is
 * left out, logged. An SRV answer whose only target is "." empties it.
 */
#ifndef LB_RESOLVE_H
#define LB_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

struct event_base;


/* The addresses of one configured server. */
struct addr_set {
	struct sockaddr_storage *addrs;
	int *weights; /* srv: each address's weight from its record; NULL = the configured weight */
	char **targets; /* srv: each address's target host name (its TLS name); NULL otherwise */
	size_t count, cap;
	bool literal; /* written as an address: its identity is its text */
	bool failed; /* a name that did not resolve this time */
};

/* Addresses of every server of a configuration: sets[b][j] belongs to
 * cfg->backends[b].servers[j]. */
struct resolution {
	size_t nbackends;
	size_t *nservers; /* per backend */
	struct addr_set **sets;
};

/* The servers of cfg without asking DNS: written addresses, and every
 * host name marked failed (it keeps what the previous generation had).
 * Returns 0, or -1 on allocation failure. */
int resolve_config_literals(const struct lb_config *cfg, struct resolution *out);

void resolution_free(struct resolution *res);

/* Periodic re-resolution on the control loop. on_result is called with
 * every resolution of the followed configuration (the callee compares it
 * with what runs, gen_resolution_differs, and may keep nothing of it). */
struct resolver;
typedef void resolver_result_fn(const struct resolution *res, void *arg);

struct resolver *resolver_start(struct event_base *base, resolver_result_fn *on_result, void *arg);

/* Follow a configuration (after start, reload): its resolvers list and
 * intervals. The resolver keeps a reference. */
void resolver_follow(struct resolver *r, struct config_ref *cfg);

/* Resolve the followed generation's host names now (after a load). `done`
 * (may be NULL) is called once that round is over, reported or not. */
typedef void resolver_done_fn(void *arg);
void resolver_resolve_now(struct resolver *r, resolver_done_fn *done, void *arg);

/* Stop, ending a round in progress (its queries are cancelled at once). */
void resolver_stop(struct resolver *r);

#endif
