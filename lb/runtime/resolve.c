/* resolve: server addresses, by evdns. See resolve.h. */
#include "resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "netutil.h"

/* One round of queries for every host-name server of a configuration. */
struct batch {
	struct resolution res;
	const struct lb_config *cfg;
	struct config_ref *cfg_ref; /* keeps cfg alive while answers may come (NULL at load) */
	size_t pending;
	bool issuing; /* still sending queries: completion waits for the end */
	void (*done)(struct batch *b, void *arg);
	void *arg;
};

struct query {
	struct batch *batch;
	size_t backend, server;
	uint64_t sent_ms; /* clock_ms() */
};

/* evdns reports a timeout as EAI_FAIL, like a server failure; a query that
 * failed after the whole timeout (every attempt) was not answered. */
#define DNS_TIMEOUT "2" /* seconds, per attempt */
#define DNS_TIMEOUT_S 2
#define DNS_ATTEMPTS "2"

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

void resolution_free(struct resolution *res)
{
	for (size_t b = 0; res->sets != NULL && b < res->nbackends; b++) {
		for (size_t j = 0; res->sets[b] != NULL && j < res->nservers[b]; j++)
			free(res->sets[b][j].addrs);
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

static void on_answer(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct query *q = arg;
	struct batch *b = q->batch;
	struct addr_set *set = &b->res.sets[q->backend][q->server];
	const struct cfg_server *cs = &b->cfg->backends[q->backend].servers[q->server];

	if (result == EVUTIL_EAI_CANCEL) {
		set->failed = true; /* cancelled (reload, stop): nothing to say */
	} else if (result != 0) {
		set->failed = true;
		bool timed_out = result == EVUTIL_EAI_FAIL && clock_ms() - q->sent_ms >= DNS_TIMEOUT_S * 950;
		log_warn("backend %s: server %s does not resolve: %s", b->cfg->backends[q->backend].name, cs->addr.text,
			 timed_out ? "timeout (no DNS server answered)" : evutil_gai_strerror(result));
	} else {
		size_t n = 0;
		for (struct evutil_addrinfo *p = ai; p != NULL; p = p->ai_next)
			n++;
		set->addrs = calloc(n ? n : 1, sizeof(*set->addrs));
		for (struct evutil_addrinfo *p = ai; set->addrs != NULL && p != NULL; p = p->ai_next) {
			if (p->ai_addrlen > sizeof(struct sockaddr_storage))
				continue;
			bool seen = false; /* A and AAAA answers may repeat an address */
			for (size_t i = 0; i < set->count && !seen; i++)
				seen = memcmp(&set->addrs[i], p->ai_addr, p->ai_addrlen) == 0;
			if (!seen)
				memcpy(&set->addrs[set->count++], p->ai_addr, p->ai_addrlen);
		}
		set->failed = set->addrs == NULL;
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	free(q);
	b->pending--;
	batch_finish_if_done(b);
}

/* Fill b->res for cfg: literals at once, host names by queries (dns NULL:
 * no queries, every host name counts as failed: it keeps what it had). */
static int batch_start(struct batch *b, struct evdns_base *dns, const struct lb_config *cfg)
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
			struct addr_set *set = &b->res.sets[i][j];
			struct sockaddr_storage literal;
			if (parse_literal(&cb->servers[j].addr, &literal)) {
				set->literal = true;
				set->addrs = malloc(sizeof(*set->addrs));
				if (set->addrs == NULL)
					return -1;
				set->addrs[0] = literal;
				set->count = 1;
				continue;
			}
			if (dns == NULL) {
				set->failed = true;
				continue;
			}
			struct query *q = calloc(1, sizeof(*q));
			if (q == NULL)
				return -1;
			*q = (struct query){ .batch = b, .backend = i, .server = j };
			q->sent_ms = clock_ms();
			char port[8];
			snprintf(port, sizeof(port), "%u", cb->servers[j].addr.port);
			struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
							 .ai_flags = EVUTIL_AI_NUMERICSERV };
			b->pending++;
			evdns_getaddrinfo(dns, cb->servers[j].addr.host, port, &hints, on_answer, q);
		}
	}
	b->issuing = false;
	batch_finish_if_done(b);
	return 0;
}

/* An evdns base for cfg: its resolvers, or resolv.conf; /etc/hosts too. */
static struct evdns_base *dns_for(struct event_base *base, const struct lb_config *cfg)
{
	bool custom = cfg->global.nresolvers > 0;
	struct evdns_base *dns = evdns_base_new(base, custom ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (dns == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->global.nresolvers; i++)
		if (evdns_base_nameserver_ip_add(dns, cfg->global.resolvers[i].text) != 0)
			log_warn("global.resolvers: cannot use %s", cfg->global.resolvers[i].text);
	evdns_base_load_hosts(dns, NULL);
	evdns_base_set_option(dns, "timeout:", DNS_TIMEOUT);
	evdns_base_set_option(dns, "attempts:", DNS_ATTEMPTS);
	return dns;
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
	struct evdns_base *dns;
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

/* A batch given up (out of memory while starting it): its cancelled
 * queries still answer into it, from the loop; the last one frees it. */
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

/* Resolve r->gen's servers now; the batch reports through on_periodic_done. */
static void batch_run(struct resolver *r)
{
	if (r->cfg == NULL || r->dns == NULL)
		return;
	struct batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return;
	b->done = on_periodic_done;
	b->arg = r;
	b->cfg_ref = config_ref_acquire(r->cfg);
	r->running = b;
	if (batch_start(b, r->dns, r->cfg->cfg) < 0) {
		/* Queries already out are cancelled; libevent reports them from
		 * the loop, into b, which the last of them frees. */
		r->running = NULL;
		b->done = on_abandoned_done;
		b->issuing = false;
		evdns_base_free(r->dns, 1);
		r->dns = dns_for(r->base, r->cfg->cfg);
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
		if (r->dns != NULL)
			evdns_base_free(r->dns, 1); /* a running batch's answers fail: it ends */
		r->dns = dns_for(r->base, cfg);
		snprintf(r->nameservers, sizeof(r->nameservers), "%s", key);
	}
	r->interval_ms = 0;
	for (size_t b = 0; b < cfg->nbackends; b++) {
		const struct cfg_backend *cb = &cfg->backends[b];
		struct sockaddr_storage literal;
		for (size_t j = 0; j < cb->nservers; j++) {
			if (parse_literal(&cb->servers[j].addr, &literal))
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
		return;
	}
	batch_run(r);
	if (r->running == NULL && r->on_done != NULL) { /* nothing to resolve, or no memory */
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
	if (r->dns != NULL) {
		evdns_base_free(r->dns, 1); /* fails the queries still out... */
		r->dns = NULL;
		/* ...in callbacks that libevent defers to the loop: run them, so
		 * that a running batch ends and lets go of its configuration. */
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	}
	event_free(r->timer);
	free(r);
}
