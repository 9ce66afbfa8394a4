/* resolve: server addresses, by dns.h. See resolve.h. */
#include "resolve.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "netutil.h"
#include "srv.h"

/* One round of queries for every named server of a configuration. */
struct batch {
	struct resolution res;
	const struct lb_config *cfg;
	struct config_ref *cfg_ref; /* keeps cfg alive while answers may come (NULL at load) */
	size_t pending;
	bool issuing; /* still sending queries: completion waits for the end */
	void (*done)(struct batch *b, void *arg);
	void *arg;
};

/* One question out: a host name's addresses, an srv: name's records, or
 * (target != NULL) the addresses of one SRV target. */
struct query {
	struct batch *batch;
	struct dns *dns;
	size_t backend, server;
	int weight; /* a target's: its record's */
	char *target;
};

static bool parse_literal(const struct cfg_addr *addr, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *in = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, addr->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(addr->port);
		return true;
	}
	if (inet_pton(AF_INET6, addr->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(addr->port);
		return true;
	}
	return false;
}

static void addr_set_clear(struct addr_set *set)
{
	for (size_t i = 0; set->targets != NULL && i < set->count; i++)
		free(set->targets[i]);
	free(set->targets);
	free(set->weights);
	free(set->addrs);
	set->addrs = NULL;
	set->weights = NULL;
	set->targets = NULL;
	set->count = set->cap = 0;
}

/* Append sa, once. target NULL: a host name's address. An address two SRV
 * targets give is one server with the sum of their weights (at most 256)
 * and the first target name in sort order: the same whatever order the
 * answers came in. Returns -1 out of memory. */
static int addr_set_add(struct addr_set *set, const struct sockaddr_storage *sa, int weight, const char *target)
{
	size_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	for (size_t i = 0; i < set->count; i++) {
		if (memcmp(&set->addrs[i], sa, len) != 0)
			continue;
		if (target != NULL && set->targets != NULL) {
			set->weights[i] = set->weights[i] + weight > 256 ? 256 : set->weights[i] + weight;
			if (strcmp(target, set->targets[i]) < 0) {
				char *name = strdup(target);
				if (name == NULL)
					return -1;
				free(set->targets[i]);
				set->targets[i] = name;
			}
		}
		return 0;
	}
	if (set->count == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 4;
		struct sockaddr_storage *addrs = realloc(set->addrs, cap * sizeof(*addrs));
		if (addrs == NULL)
			return -1;
		set->addrs = addrs;
		if (target != NULL) {
			int *weights = realloc(set->weights, cap * sizeof(*weights));
			if (weights == NULL)
				return -1;
			set->weights = weights;
			char **targets = realloc(set->targets, cap * sizeof(*targets));
			if (targets == NULL)
				return -1;
			set->targets = targets;
		}
		set->cap = cap;
	}
	if (target != NULL) {
		if ((set->targets[set->count] = strdup(target)) == NULL)
			return -1;
		set->weights[set->count] = weight;
	}
	set->addrs[set->count++] = *sa;
	return 0;
}

void resolution_free(struct resolution *res)
{
	for (size_t b = 0; res->sets != NULL && b < res->nbackends; b++) {
		for (size_t j = 0; res->sets[b] != NULL && j < res->nservers[b]; j++)
			addr_set_clear(&res->sets[b][j]);
		free(res->sets[b]);
	}
	free(res->sets);
	free(res->nservers);
	memset(res, 0, sizeof(*res));
}

static void batch_finish_if_done(struct batch *b)
{
	if (!b->issuing && b->pending == 0)
		b->done(b, b->arg);
}

static void query_end(struct query *q)
{
	struct batch *b = q->batch;
	free(q->target);
	free(q);
	b->pending--;
	batch_finish_if_done(b);
}

static struct query *query_new(struct batch *b, struct dns *dns, size_t backend, size_t server)
{
	struct query *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	*q = (struct query){ .batch = b, .dns = dns, .backend = backend, .server = server };
	b->pending++;
	return q;
}

static void warn_unresolved(const struct query *q, const char *what, enum dns_status status)
{
	const struct lb_config *cfg = q->batch->cfg;
	log_warn("backend %s: server %s does not resolve%s%s: %s", cfg->backends[q->backend].name,
		 cfg->backends[q->backend].servers[q->server].addr.text, what[0] ? ": target " : "", what,
		 dns_status_text(status));
}

static void on_addresses(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t count)
{
	struct query *q = arg;
	struct addr_set *set = &q->batch->res.sets[q->backend][q->server];

	if (status == DNS_OK) {
		for (size_t i = 0; i < count; i++)
			if (addr_set_add(set, &addrs[i], q->weight, q->target) < 0)
				set->failed = true;
	} else if (status == DNS_NOT_FOUND && q->target != NULL) {
		warn_unresolved(q, q->target, status); /* a target that is gone: left out */
	} else {
		set->failed = true; /* keeps what it had */
		if (status != DNS_CANCELLED)
			warn_unresolved(q, q->target != NULL ? q->target : "", status);
	}
	query_end(q);
}

static void on_srv_records(void *arg, enum dns_status status, const struct srv_record *records, size_t count)
{
	struct query *q = arg;
	struct batch *b = q->batch;
	struct addr_set *set = &b->res.sets[q->backend][q->server];
	int *weights = count > 0 ? calloc(count, sizeof(*weights)) : NULL;

	if (status != DNS_OK || (count > 0 && weights == NULL)) {
		set->failed = true;
		if (status != DNS_CANCELLED)
			warn_unresolved(q, "", status == DNS_OK ? DNS_FAILED : status);
		free(weights);
		query_end(q);
		return;
	}
	srv_select(records, count, weights);
	for (size_t i = 0; i < count && !set->failed; i++) {
		if (weights[i] < 0)
			continue;
		struct query *t = query_new(b, q->dns, q->backend, q->server);
		if (t == NULL || (t->target = strdup(records[i].target)) == NULL) {
			set->failed = true;
			if (t != NULL)
				query_end(t);
			break;
		}
		t->weight = weights[i];
		/* A target is an absolute name (RFC 2782): no search list. */
		char absolute[300];
		snprintf(absolute, sizeof(absolute), "%s.", t->target);
		dns_addresses(q->dns, absolute, records[i].port, on_addresses, t);
	}
	free(weights);
	query_end(q);
}

/* Fill b->res for cfg: literals at once, names by queries (dns NULL: no
 * queries, every name counts as failed: it keeps what it had). */
static int batch_start(struct batch *b, struct dns *dns, const struct lb_config *cfg)
{
	b->cfg = cfg;
	b->res.nbackends = cfg->nbackends;
	b->res.sets = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*b->res.sets));
	b->res.nservers = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*b->res.nservers));
	if (b->res.sets == NULL || b->res.nservers == NULL)
		return -1;
	b->issuing = true;
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct cfg_backend *cb = &cfg->backends[i];
		b->res.sets[i] = calloc(cb->nservers ? cb->nservers : 1, sizeof(struct addr_set));
		if (b->res.sets[i] == NULL)
			return -1;
		b->res.nservers[i] = cb->nservers;
		for (size_t j = 0; j < cb->nservers; j++) {
			const struct cfg_server *cs = &cb->servers[j];
			struct addr_set *set = &b->res.sets[i][j];
			struct sockaddr_storage literal;
			if (!cfg_server_is_srv(cs) && parse_literal(&cs->addr, &literal)) {
				set->literal = true;
				if (addr_set_add(set, &literal, 0, NULL) < 0)
					return -1;
				continue;
			}
			if (dns == NULL) {
				set->failed = true;
				continue;
			}
			struct query *q = query_new(b, dns, i, j);
			if (q == NULL)
				return -1;
			if (cfg_server_is_srv(cs))
				dns_srv(dns, cs->addr.host, on_srv_records, q);
			else
				dns_addresses(dns, cs->addr.host, cs->addr.port, on_addresses, q);
		}
	}
	b->issuing = false;
	batch_finish_if_done(b);
	return 0;
}

/* ---- at load time: no waiting ---- */

static void on_literals_done(struct batch *b, void *arg)
{
	(void)b;
	(void)arg;
}

int resolve_config_literals(const struct lb_config *cfg, struct resolution *out)
{
	struct batch b = { .done = on_literals_done };
	int rc = batch_start(&b, NULL, cfg);
	if (rc < 0) {
		resolution_free(&b.res);
		memset(out, 0, sizeof(*out));
		return -1;
	}
	*out = b.res;
	return 0;
}

/* ---- periodic, on the control loop ---- */

struct resolver {
	struct event_base *base;
	struct dns *dns;
	struct event *timer;
	struct config_ref *cfg; /* followed (a reference) */
	struct batch *running;
	bool again; /* resolve_now asked while a batch for another generation ran */
	resolver_done_fn *on_done; /* after the batch that resolve_now asked for */
	void *done_arg;
	resolver_result_fn *on_result;
	void *arg;
	char nameservers[1024]; /* the resolvers list dns was made for */
	uint64_t interval_ms; /* 0 = nothing to re-resolve */
};

static void resolver_arm(struct resolver *r)
{
	if (r->interval_ms == 0) {
		event_del(r->timer);
		return;
	}
	struct timeval tv = netutil_timeval_ms(r->interval_ms);
	event_add(r->timer, &tv);
}

static void batch_run(struct resolver *r);

static void batch_free(struct batch *b)
{
	resolution_free(&b->res);
	config_ref_release(b->cfg_ref);
	free(b);
}

/* A batch given up (out of memory while starting it): the queries already
 * out still answer into it; the last one frees it. */
static void on_abandoned_done(struct batch *b, void *arg)
{
	(void)arg;
	batch_free(b);
}

static void on_periodic_done(struct batch *b, void *arg)
{
	struct resolver *r = arg;
	bool current = r->cfg != NULL && b->cfg_ref == r->cfg;
	/* Only a resolution of what runs now may change it. */
	if (current)
		r->on_result(&b->res, r->arg);
	batch_free(b);
	r->running = NULL;
	if (r->again) {
		r->again = false;
		batch_run(r);
	} else if (current && r->on_done != NULL) {
		resolver_done_fn *done = r->on_done;
		r->on_done = NULL;
		done(r->done_arg);
	}
}

static void on_resolve_timer(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;
	(void)fd;
	(void)what;
	resolver_arm(r);
	if (r->running != NULL)
		return; /* the previous round is still out: skip this one */
	batch_run(r);
}

/* Resolve r->cfg's servers now; the batch reports through on_periodic_done
 * (perhaps before this returns: names in /etc/hosts). */
static void batch_run(struct resolver *r)
{
	if (r->cfg == NULL || r->dns == NULL)
		return; /* stopping, or between two name server lists */
	struct batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return;
	b->done = on_periodic_done;
	b->arg = r;
	b->cfg_ref = config_ref_acquire(r->cfg);
	r->running = b;
	if (batch_start(b, r->dns, r->cfg->cfg) < 0) {
		r->running = NULL;
		b->done = on_abandoned_done;
		b->issuing = false;
		if (b->pending == 0)
			batch_free(b);
	}
}

struct resolver *resolver_start(struct event_base *base, resolver_result_fn *on_result, void *arg)
{
	struct resolver *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->base = base;
	r->on_result = on_result;
	r->arg = arg;
	r->timer = evtimer_new(base, on_resolve_timer, r);
	if (r->timer == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static void nameservers_key(const struct lb_config *cfg, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < cfg->global.nresolvers && n < cap; i++) {
		int m = snprintf(out + n, cap - n, "%s,", cfg->global.resolvers[i].text);
		if (m > 0)
			n += (size_t)m;
	}
}

/* Ends every query out (a running batch ends, from inside this call). */
static void resolver_drop_dns(struct resolver *r)
{
	struct dns *old = r->dns;
	r->dns = NULL; /* what the ending batch would start again waits */
	dns_free(old);
}

void resolver_follow(struct resolver *r, struct config_ref *ref)
{
	char key[sizeof(r->nameservers)];
	const struct lb_config *cfg = ref->cfg;

	if (r->cfg != ref) {
		config_ref_release(r->cfg);
		r->cfg = config_ref_acquire(ref);
	}
	nameservers_key(cfg, key, sizeof(key));
	if (r->dns == NULL || strcmp(key, r->nameservers) != 0) {
		resolver_drop_dns(r);
		r->dns = dns_new(r->base, cfg->global.resolvers, cfg->global.nresolvers);
		snprintf(r->nameservers, sizeof(r->nameservers), "%s", key);
	}
	r->interval_ms = 0;
	for (size_t b = 0; b < cfg->nbackends; b++) {
		const struct cfg_backend *cb = &cfg->backends[b];
		struct sockaddr_storage literal;
		for (size_t j = 0; j < cb->nservers; j++) {
			if (!cfg_server_is_srv(&cb->servers[j]) && parse_literal(&cb->servers[j].addr, &literal))
				continue;
			if (r->interval_ms == 0 || cb->resolve_interval_ms < r->interval_ms)
				r->interval_ms = cb->resolve_interval_ms;
		}
	}
	resolver_arm(r);
}

void resolver_resolve_now(struct resolver *r, resolver_done_fn *done, void *arg)
{
	/* A pending `done` (start's announcement) stays until a round of the
	 * configuration followed then is over, whatever reloads ask meanwhile. */
	if (done != NULL) {
		r->on_done = done;
		r->done_arg = arg;
	}
	if (r->running != NULL) {
		r->again = true; /* its answers are for another generation, or old */
		if (r->running->cfg_ref != r->cfg && r->dns != NULL)
			dns_cancel(r->dns); /* another generation's: it ends now, and the next starts */
		return;
	}
	batch_run(r);
	if (r->running == NULL && r->on_done != NULL) { /* over already, nothing to resolve, or no memory */
		resolver_done_fn *pending = r->on_done;
		r->on_done = NULL;
		pending(r->done_arg);
	}
}

void resolver_stop(struct resolver *r)
{
	if (r == NULL)
		return;
	config_ref_release(r->cfg);
	r->cfg = NULL;
	r->again = false;
	r->on_done = NULL;
	resolver_drop_dns(r); /* a running batch ends now and lets go of its configuration */
	event_free(r->timer);
	free(r);
}
