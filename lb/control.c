/*
 * control: signals, reload and stop. See control.h.
 *
 * Reload, step by step (SPEC 3):
 *   1. read and validate the file; on any error log every line and keep the
 *      current generation untouched;
 *   2. build the new generation: it takes over the listening sockets whose
 *      bind is unchanged and the server states of servers that stay, and
 *      binds new listeners (a failed bind fails the reload, nothing changes);
 *   3. hand it to every worker; each answers by storing the id it accepts for;
 *   4. once every worker accepts for the new generation, the old one is
 *      retired: sockets it alone had are closed and our reference dropped
 *      (its sessions keep it alive until they end).
 */
#include "control.h"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "conn.h"
#include "daemon.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "overload.h"
#include "resolve.h"
#include "tcp.h"
#include "pool.h"
#include "worker.h"

struct retiring_gen {
	struct gen *old;
	unsigned long successor_id;
};

struct control {
	const char *config_path;
	struct event_base *base;
	struct gen *current;
	struct worker *workers;
	int nworkers;
	unsigned long descriptor_limit; /* RLIMIT_NOFILE's soft limit, raised at start */
	int wake_fd; /* workers write here after answering */
	struct retiring_gen *retiring;
	size_t nretiring;
	const struct gen **alive; /* room for lineage(): nretiring + 1 */
	bool stop_requested; /* SIGTERM/SIGINT came: draining (drain_delay), then stopping */
	bool stopping; /* the listeners close, in-flight requests finish */
	bool announce_pending; /* "lb running" once the workers serve the current generation */
	unsigned long reload_ready_id; /* READY=1 to systemd once the workers serve this one; 0 = none */
	bool sockets_closed;
	struct event *drain_timer;
	struct event *grace_timer;
	struct event *trim_timer;
	struct event *watchdog_timer;
	struct event *overload_timer;
	uint64_t watchdog_ms; /* systemd's WatchdogSec, 0 = none */
	int hung_worker; /* the worker whose loop stopped turning, -1 = none */
	struct admin *admin;
	struct admin_instance instance; /* drained or not, the last reload: admin.h */
	struct resolver *resolver;
};

int control_workers_wanted(const struct lb_config *cfg)
{
	if (cfg->global.workers > 0)
		return cfg->global.workers;
	/* The CPUs lb may run on (taskset, a container's cpuset), as HAProxy
	 * counts them; all the online ones when that cannot be read. */
	cpu_set_t allowed;
	long n = sched_getaffinity(0, sizeof(allowed), &allowed) == 0 ? CPU_COUNT(&allowed) : sysconf(_SC_NPROCESSORS_ONLN);
	if (n > LB_MAX_WORKERS)
		n = LB_MAX_WORKERS; /* server_state keeps a pool per worker */
	return n > 0 ? (int)n : 1;
}

/* Once a second: malloc's free pages go back after a burst (daemon.h). */
static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	daemon_trim_memory();
}

/* A worker's loop that has not turned (ticked) for this long, or for the
 * watchdog interval if longer, is hung: systemd hears no more WATCHDOG=1
 * and restarts lb. */
#define WORKER_HUNG_MS 3000

/* Every half watchdog interval: WATCHDOG=1, while every worker's loop
 * turns (the control loop's own turning is the timer itself). */
static void on_watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	(void)fd;
	(void)what;
	uint64_t now = clock_ms();
	uint64_t limit = c->watchdog_ms > WORKER_HUNG_MS ? c->watchdog_ms : WORKER_HUNG_MS;
	for (int i = 0; i < c->nworkers; i++) {
		struct worker *w = &c->workers[i];
		uint64_t ticked = atomic_load_explicit(&w->ticked_ms, memory_order_relaxed);
		if (atomic_load(&w->exited) || now < ticked || now - ticked <= limit)
			continue;
		if (c->hung_worker != i)
			log_error("worker %d has not turned its event loop for %llums: no WATCHDOG=1 to systemd", i,
				  (unsigned long long)(now - ticked));
		c->hung_worker = i;
		return;
	}
	if (c->hung_worker >= 0)
		log_info("worker %d turns again: WATCHDOG=1 to systemd", c->hung_worker);
	c->hung_worker = -1;
	daemon_notify("WATCHDOG=1");
}

/* Limits (max_connections, auto, slow start) and the queues. */
static void on_overload_tick(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	(void)fd;
	(void)what;
	overload_tick(c->current, true);
}

/* A worker's second: memory unused for a while goes back. */
static void worker_tick(struct worker *w)
{
	pool_trim(w);
	http_worker_tick(w);
	tcp_worker_tick(w);
}

/* A worker's end: its idle pools and spare request state. */
static void worker_at_exit(struct worker *w)
{
	pool_close_all(w);
	http_worker_exit(w);
	tcp_worker_exit(w);
	conn_thread_exit();
}

/* What the workers run: the proxies, and what they leave behind. */
static const struct worker_handlers proxies = {
	.start = { [LISTENER_MODE_HTTP] = http_session_start, [LISTENER_MODE_TCP] = tcp_session_start },
	.tick = worker_tick,
	.at_exit = worker_at_exit,
};

bool control_descriptor_warning(const struct lb_config *cfg, int workers, unsigned long limit, char *out,
				size_t cap)
{
	unsigned long wanted = config_descriptors_wanted(cfg, workers);
	if (limit >= wanted)
		return false;
	snprintf(out, cap,
		 "the open-file limit is %lu, but max_connections %d with %d workers may need %lu descriptors (2 per "
		 "connection, plus pools, checks, listeners); raise it (ulimit -n, LimitNOFILE=) or lower "
		 "global.max_connections",
		 limit, cfg->global.max_connections, workers, wanted);
	return true;
}

/* What a valid configuration may still get wrong, said at start and reload.
 * At the limit, accepts pause and connects fail as lb's own failures
 * (never the servers'), but clients wait: say so at start and reload. */
static void config_warnings(const struct lb_config *cfg, int workers, unsigned long limit)
{
	char msg[512];
	if (control_descriptor_warning(cfg, workers, limit, msg, sizeof(msg)))
		log_warn("%s", msg);
	if (cfg->global.drain_delay_ms > 0 && !cfg->admin.enabled)
		log_warn("global.drain_delay without an admin section: no /healthz shows the drain, the stop "
			 "only waits");
}

static bool all_workers_at(const struct control *c, unsigned long gen_id)
{
	for (int i = 0; i < c->nworkers; i++)
		if (atomic_load(&c->workers[i].acked_gen) < gen_id)
			return false;
	return true;
}

/* The generations alive after retiring[first], oldest first, and the
 * current one: where sockets live on (gen.h). */
static struct gen_lineage newer_than(struct control *c, size_t first)
{
	size_t n = 0;
	for (size_t i = first + 1; i < c->nretiring; i++)
		c->alive[n++] = c->retiring[i].old;
	if (c->current != NULL)
		c->alive[n++] = c->current;
	return (struct gen_lineage){ c->alive, n };
}

/* Every generation alive, oldest first. */
static struct gen_lineage all_alive(struct control *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nretiring; i++)
		c->alive[n++] = c->retiring[i].old;
	c->alive[n++] = c->current;
	return (struct gen_lineage){ c->alive, n };
}

/* At the stop: close every listening socket once. A socket may be shared
 * by several of the generations still around (taken over by each reload):
 * each is closed by the newest generation that has it. */
static void close_all_sockets(struct control *c)
{
	if (c->sockets_closed)
		return;
	for (size_t i = 0; i < c->nretiring; i++)
		gen_close_dropped_sockets(c->retiring[i].old, newer_than(c, i));
	gen_close_dropped_sockets(c->current, (struct gen_lineage){ 0 });
	c->sockets_closed = true;
}

/* Drop the generations every worker has moved past. Sockets a newer
 * generation took over live on in it; a generation retires only after
 * its predecessor did. */
static void retire_generations(struct control *c)
{
	size_t kept = 0;
	for (size_t i = 0; i < c->nretiring; i++) {
		struct retiring_gen *r = &c->retiring[i];
		if (all_workers_at(c, r->successor_id)) {
			gen_close_dropped_sockets(r->old, newer_than(c, i));
			gen_release(r->old);
		} else {
			c->retiring[kept++] = *r;
		}
	}
	c->nretiring = kept;
}

/* Room for one more retiring generation, so that publishing cannot fail. */
static int retiring_reserve(struct control *c)
{
	struct retiring_gen *grown = realloc(c->retiring, (c->nretiring + 1) * sizeof(*c->retiring));
	if (grown == NULL)
		return -1;
	c->retiring = grown;
	const struct gen **alive = realloc(c->alive, (c->nretiring + 2) * sizeof(*c->alive));
	if (alive == NULL)
		return -1;
	c->alive = alive;
	return 0;
}

/* Make g the running generation: for the workers, the health checks, the
 * admin endpoint and the resolver. The previous one retires (see top).
 * new_config: g comes from a reload (the admin endpoint may move); else it
 * is the running configuration rebuilt (DNS, a runtime weight), perhaps
 * from inside an admin request, which must not lose its endpoint. */
static void publish(struct control *c, struct gen *g, bool new_config)
{
	char err[512];

	c->retiring[c->nretiring++] = (struct retiring_gen){ .old = c->current, .successor_id = g->id };
	c->current = g;
	overload_tick(g, false); /* its limits hold before it serves */
	if (health_sync(c->base, g) < 0)
		log_error("generation %lu: out of memory starting health checks", g->id);
	if (!new_config)
		admin_follow(c->admin, g);
	else if (admin_update(c->base, &c->admin, g, &c->instance, err, sizeof(err)) < 0)
		log_error("generation %lu: %s; the admin endpoint stays where it was", g->id, err);
	resolver_follow(c->resolver, g->cfg_ref);
	for (int i = 0; i < c->nworkers; i++)
		worker_post_gen(&c->workers[i], g);
}

static void announce_when_serving(struct control *c);

static void reload(struct control *c)
{
	struct lb_config *cfg = NULL;
	struct config_errors errs = { 0 };
	struct resolution res = { 0 };
	char err[512] = "";

	log_info("reload: reading %s", c->config_path);
	struct timespec started;
	clock_gettime(CLOCK_MONOTONIC, &started);
	daemon_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
		      (unsigned long long)started.tv_sec * 1000000ull + (unsigned long long)started.tv_nsec / 1000,
		      c->config_path);
	if (config_load_file(c->config_path, &cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			log_error("%s", errs.lines[i]);
		log_error("reload failed: %zu error(s); still running generation %lu", errs.count, c->current->id);
		daemon_notify("READY=1\nSTATUS=reload failed: %s; still running generation %lu",
			      errs.count > 0 ? errs.lines[0] : "", c->current->id);
		admin_instance_reloaded(&c->instance, false, c->current->id, (const char *const *)errs.lines, errs.count);
		config_errors_free(&errs);
		atomic_fetch_add(&lb_counters.reloads_failed, 1);
		return;
	}
	config_errors_free(&errs);
	if (control_workers_wanted(cfg) != c->nworkers)
		log_warn("reload: a change of global.workers takes effect at the next restart");
	if (cfg->global.cpu_affinity != c->current->cfg->global.cpu_affinity)
		log_warn("reload: a change of global.cpu_affinity takes effect at the next restart");
	if (cfg->global.reuseport != c->current->cfg->global.reuseport)
		log_warn("reload: a change of global.reuseport applies to listeners bound from now on");
	config_warnings(cfg, c->nworkers, c->descriptor_limit);
	if (retiring_reserve(c) < 0 || resolve_config_literals(cfg, &res) < 0) {
		config_free(cfg);
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	struct gen *g = gen_create(cfg, &res, all_alive(c), c->nworkers, err, sizeof(err));
	resolution_free(&res);
	if (g == NULL)
		goto fail;
	const struct lb_config *now = g->cfg;
	if (log_configure(now->global.log.level, now->global.log.target, now->global.access_log) < 0)
		log_error("reload: cannot open log target: %s; keeping the previous one", strerror(errno));
	publish(c, g, true);
	gen_forget_stale_weights(g);
	atomic_fetch_add(&lb_counters.reloads_ok, 1);
	log_info("reload: generation %lu running", g->id);
	admin_instance_reloaded(&c->instance, true, g->id, NULL, 0);
	c->reload_ready_id = g->id; /* READY=1 once every worker serves it */
	announce_when_serving(c);
	/* Its host names kept their addresses (new ones have none yet): now
	 * ask DNS, without waiting for the answer here. */
	resolver_resolve_now(c->resolver, NULL, NULL);
	return;
fail:
	log_error("reload failed: %s; still running generation %lu", err, c->current->id);
	daemon_notify("READY=1\nSTATUS=reload failed: %s; still running generation %lu", err, c->current->id);
	const char *line = err;
	admin_instance_reloaded(&c->instance, false, c->current->id, &line, 1);
	atomic_fetch_add(&lb_counters.reloads_failed, 1);
}

/* While the instance drains, HTTP keep-alive ends (worker.h). */
static void on_drain_changed(void *arg, bool draining)
{
	struct control *c = arg;
	for (int i = 0; i < c->nworkers; i++)
		worker_post_drain(&c->workers[i], draining);
}

/* A runtime weight was set (admin): the running configuration and
 * addresses, built anew with it. */
static int on_weights_changed(void *arg, char *err, size_t errlen)
{
	struct control *c = arg;
	struct resolution res = { 0 };

	if (c->stopping) {
		snprintf(err, errlen, "lb is stopping");
		return -1;
	}
	if (retiring_reserve(c) < 0 || resolve_config_literals(c->current->cfg, &res) < 0) {
		resolution_free(&res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct gen *g = gen_rebuild(all_alive(c), &res, err, errlen);
	resolution_free(&res);
	if (g == NULL)
		return -1;
	log_info("runtime weight set: generation %lu running", g->id);
	publish(c, g, false);
	return 0;
}

/* Say "running" (and end -d's wait, and tell systemd READY=1) once the
 * first resolution is over and every worker accepts for the generation it
 * gave; after a reload, READY=1 again once every worker serves the new
 * generation (systemd's RELOADING=1 ... READY=1). */
static void announce_when_serving(struct control *c)
{
	if (c->reload_ready_id != 0 && !c->announce_pending && all_workers_at(c, c->reload_ready_id)) {
		daemon_notify("READY=1\nSTATUS=serving generation %lu", c->reload_ready_id);
		c->reload_ready_id = 0;
	}
	if (!c->announce_pending || !all_workers_at(c, c->current->id))
		return;
	c->announce_pending = false;
	c->reload_ready_id = 0; /* this READY=1 covers it */
	log_info("lb running: generation %lu, %d worker(s), %zu listener(s)", c->current->id, c->nworkers,
		 c->current->nlisteners);
	daemon_ready();
	daemon_notify("READY=1\nSTATUS=serving generation %lu", c->current->id);
}

static void on_first_resolution(void *arg)
{
	struct control *c = arg;
	c->announce_pending = true;
	announce_when_serving(c);
}

/* A resolution of the running configuration: a new generation when host
 * names resolve to other addresses. */
static void on_resolution(const struct resolution *res, void *arg)
{
	struct control *c = arg;
	char err[512];

	if (c->stopping || !gen_resolution_differs(c->current, res) || retiring_reserve(c) < 0)
		return;
	struct gen *g = gen_rebuild(all_alive(c), res, err, sizeof(err));
	if (g == NULL) {
		log_error("servers re-resolved, but: %s; still running generation %lu", err, c->current->id);
		return;
	}
	log_info("servers re-resolved: generation %lu running", g->id);
	publish(c, g, false);
	gen_forget_stale_weights(g); /* an SRV weight that changed wins over a runtime one, for good */
}

static void on_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	(void)fd;
	(void)what;
	log_warn("grace period over: closing the remaining connections");
	for (int i = 0; i < c->nworkers; i++)
		worker_post_stop(&c->workers[i], true);
}

static void stop_gracefully(struct control *c)
{
	if (c->stopping)
		return;
	c->stopping = true;
	if (c->drain_timer != NULL)
		event_del(c->drain_timer);
	daemon_notify("STATUS=stopping: finishing in-flight connections");
	log_info("stopping: finishing in-flight connections for up to %llums",
		 (unsigned long long)c->current->cfg->global.grace_ms);
	for (int i = 0; i < c->nworkers; i++)
		worker_post_stop(&c->workers[i], false);
	struct timeval tv = { .tv_sec = (time_t)(c->current->cfg->global.grace_ms / 1000),
			      .tv_usec = (suseconds_t)(c->current->cfg->global.grace_ms % 1000) * 1000 };
	c->grace_timer = evtimer_new(c->base, on_grace_expired, c);
	if (c->grace_timer != NULL)
		event_add(c->grace_timer, &tv);
}

static void on_drain_delay_over(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stop_gracefully(arg);
}

/* SIGTERM, SIGINT: /healthz answers 503 for global.drain_delay (less the
 * time the instance was already drained by POST /drain) while lb still
 * serves, so that a front balancer takes it out; then the graceful stop.
 * A second signal cuts the delay short. */
static void request_stop(struct control *c)
{
	if (c->stop_requested) {
		if (!c->stopping)
			log_info("stopping now: a second signal cut drain_delay short");
		stop_gracefully(c);
		return;
	}
	c->stop_requested = true;
	c->reload_ready_id = 0; /* no READY=1 after STOPPING=1 */
	const struct lb_config *cfg = c->current->cfg;
	uint64_t now = clock_ms();
	uint64_t drained_for = c->instance.draining ? now - c->instance.draining_since_ms : 0;
	uint64_t delay = cfg->global.drain_delay_ms > drained_for ? cfg->global.drain_delay_ms - drained_for : 0;
	admin_instance_drain(&c->instance);
	c->instance.stopping = true;
	/* systemd: stopping, and give us the drain and grace (and a margin)
	 * even where TimeoutStopSec is shorter. */
	daemon_notify("STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=draining: /healthz answers 503 for %llums",
		      (unsigned long long)(delay + cfg->global.grace_ms + 5000) * 1000ull, (unsigned long long)delay);
	if (delay == 0) {
		stop_gracefully(c);
		return;
	}
	log_info("stopping: /healthz answers 503 for %llums (drain_delay) while lb still serves",
		 (unsigned long long)delay);
	struct timeval tv = { .tv_sec = (time_t)(delay / 1000), .tv_usec = (suseconds_t)(delay % 1000) * 1000 };
	c->drain_timer = evtimer_new(c->base, on_drain_delay_over, c);
	if (c->drain_timer == NULL || event_add(c->drain_timer, &tv) != 0)
		stop_gracefully(c); /* out of memory: no delay rather than no stop */
}

/* A worker answered: retire generations, progress a stop. */
static void on_workers_answered(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	uint64_t count;
	(void)what;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("control eventfd read: %s", strerror(errno));
	retire_generations(c);
	announce_when_serving(c);
	if (!c->stopping)
		return;
	bool all_stopped_accepting = true, all_exited = true;
	for (int i = 0; i < c->nworkers; i++) {
		all_stopped_accepting &= atomic_load(&c->workers[i].accepting_stopped) ||
					 atomic_load(&c->workers[i].exited);
		all_exited &= atomic_load(&c->workers[i].exited);
	}
	if (all_stopped_accepting)
		close_all_sockets(c); /* no worker polls them any more */
	if (all_exited)
		event_base_loopbreak(c->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct control *c = arg;
	(void)what;
	switch (sig) {
	case SIGHUP:
		if (c->stop_requested)
			log_info("SIGHUP ignored: lb is stopping");
		else
			reload(c);
		break;
	case SIGTERM:
	case SIGINT:
		request_stop(c);
		break;
	case SIGQUIT:
		log_info("SIGQUIT: stopping at once");
		daemon_remove_pidfile();
		_exit(0);
	case SIGUSR1:
		log_reopen();
		log_info("log files reopened");
		break;
	}
}

int control_run(struct gen *first, const char *config_path)
{
	static const int signals[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };
	struct event *signal_events[sizeof(signals) / sizeof(signals[0])] = { 0 };
	struct control c = { .config_path = config_path, .current = first, .wake_fd = -1, .hung_worker = -1 };
	c.instance.weights_changed = on_weights_changed;
	c.instance.drain_changed = on_drain_changed;
	c.instance.arg = &c;
	struct event *wake_event = NULL;
	char err[256] = "";
	int status = 3;
	int started = 0;

	c.base = event_base_new();
	c.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c.base == NULL || c.wake_fd < 0) {
		log_error("cannot create the control loop: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		signal_events[i] = evsignal_new(c.base, signals[i], on_signal, &c);
		if (signal_events[i] == NULL || event_add(signal_events[i], NULL) != 0)
			goto out;
	}
	wake_event = event_new(c.base, c.wake_fd, EV_READ | EV_PERSIST, on_workers_answered, &c);
	if (wake_event == NULL || event_add(wake_event, NULL) != 0)
		goto out;
	c.trim_timer = event_new(c.base, -1, EV_PERSIST, on_trim_tick, &c);
	struct timeval second = { 1, 0 };
	if (c.trim_timer == NULL || event_add(c.trim_timer, &second) != 0)
		goto out;
	overload_tick(first, false);
	c.overload_timer = event_new(c.base, -1, EV_PERSIST, on_overload_tick, &c);
	struct timeval tick = { 0, OVERLOAD_TICK_MS * 1000 };
	if (c.overload_timer == NULL || event_add(c.overload_timer, &tick) != 0)
		goto out;

	/* The admin endpoint binds before privileges go, like the listeners. */
	if (admin_start(c.base, first, &c.instance, &c.admin, err, sizeof(err)) < 0) {
		log_error("cannot start: %s", err);
		goto out;
	}
	err[0] = '\0';
	if (daemon_drop_privileges(first->cfg->global.user, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (err[0] != '\0')
		log_warn("%s", err);

	c.nworkers = control_workers_wanted(first->cfg);
	atomic_store(&lb_counters.nworkers, c.nworkers);
	c.descriptor_limit = daemon_raise_descriptor_limit();
	config_warnings(first->cfg, c.nworkers, c.descriptor_limit);
	c.workers = calloc((size_t)c.nworkers, sizeof(*c.workers));
	if (c.workers == NULL)
		goto out;
	for (; started < c.nworkers; started++) {
		if (worker_start(&c.workers[started], started, first, c.wake_fd, &proxies) < 0) {
			log_error("cannot start worker %d", started);
			goto out;
		}
	}
	if (health_sync(c.base, first) < 0)
		goto out;
	c.watchdog_ms = daemon_watchdog_usec() / 1000;
	if (c.watchdog_ms > 0) {
		uint64_t half = c.watchdog_ms / 2 > 0 ? c.watchdog_ms / 2 : 1;
		struct timeval every = { .tv_sec = (time_t)(half / 1000), .tv_usec = (suseconds_t)(half % 1000) * 1000 };
		c.watchdog_timer = event_new(c.base, -1, EV_PERSIST, on_watchdog_tick, &c);
		if (c.watchdog_timer == NULL || event_add(c.watchdog_timer, &every) != 0)
			goto out;
		log_info("systemd watchdog: WATCHDOG=1 every %llums while every worker's loop turns",
			 (unsigned long long)half);
	}
	c.resolver = resolver_start(c.base, on_resolution, &c);
	if (c.resolver == NULL)
		goto out;
	resolver_follow(c.resolver, first->cfg_ref);
	/* Listening and serving the written addresses already; "running" (and
	 * the end of -d) once host names had their first answer or gave up. */
	resolver_resolve_now(c.resolver, on_first_resolution, &c);
	event_base_dispatch(c.base);
	status = 0;
	log_info("stopped");
out:
	if (status != 0) {
		c.stopping = true;
		for (int i = 0; i < started; i++)
			worker_post_stop(&c.workers[i], true);
	}
	resolver_stop(c.resolver); /* first: its last round lets go of its configuration */
	for (int i = 0; i < started; i++)
		worker_join(&c.workers[i]);
	health_stop_all();
	admin_stop(c.admin);
	conn_thread_exit(); /* the admin endpoint's and the checks' */
	free(c.workers);
	close_all_sockets(&c);
	for (size_t i = 0; i < c.nretiring; i++)
		gen_release(c.retiring[i].old);
	free(c.retiring);
	free(c.alive);
	gen_release(c.current);
	admin_instance_free(&c.instance);
	if (c.drain_timer)
		event_free(c.drain_timer);
	if (c.grace_timer)
		event_free(c.grace_timer);
	if (c.trim_timer)
		event_free(c.trim_timer);
	if (c.watchdog_timer)
		event_free(c.watchdog_timer);
	if (c.overload_timer)
		event_free(c.overload_timer);
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signal_events[i])
			event_free(signal_events[i]);
	if (wake_event)
		event_free(wake_event);
	if (c.wake_fd >= 0)
		close(c.wake_fd);
	if (c.base)
		event_base_free(c.base);
	return status;
}
