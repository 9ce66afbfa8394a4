/* worker: event loop threads. See worker.h for who may touch what. */
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "exclusive.h"
#include "listener.h"
#include "slab.h"
#include "log.h"

/* How soon accepting is retried after EMFILE or at max_connections when no
 * session of this worker ends first (another worker's may). */
#define ACCEPT_RETRY_MS 50

void wake_fd_signal(int fd)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is already non-zero: the wake-up is pending. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("eventfd write: %s", strerror(errno));
}

/* Watch ap's socket. A shared one wakes one idle worker per connection
 * (exclusive.h), not every worker (each of which would find nothing but
 * one); where the kernel cannot, every worker wakes, and it still works. */
static void accept_point_watch(struct accept_point *ap)
{
	struct worker *w = ap->worker;
	if (event_add(ap->event, NULL) != 0 || !ap->shared)
		return;
	if (w->epoll_fd == EPOLL_FD_UNKNOWN)
		w->epoll_fd = exclusive_epoll_fd(w->base, w->wake_fd);
	if (w->epoll_fd < 0)
		return;
	if (exclusive_watch(w->epoll_fd, ap->fd) != 0) {
		static atomic_flag said = ATOMIC_FLAG_INIT;
		if (!atomic_flag_test_and_set(&said))
			log_info("the kernel refuses EPOLLEXCLUSIVE: each connection to a shared listening socket "
				 "wakes every idle worker");
		w->epoll_fd = -1;
	}
}

static void accept_points_enable(struct worker *w, bool enable)
{
	for (size_t i = 0; i < w->naccept_points; i++) {
		if (enable)
			accept_point_watch(&w->accept_points[i]);
		else
			event_del(w->accept_points[i].event);
	}
}

static void accept_pause(struct worker *w)
{
	if (w->accept_paused)
		return;
	w->accept_paused = true;
	accept_points_enable(w, false);
	struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
	event_add(w->accept_resume_timer, &tv);
}

static bool at_connection_limit(const struct worker *w)
{
	return atomic_load_explicit(&lb_counters.connections_active, memory_order_relaxed) >=
	       (unsigned)w->gen->cfg->global.max_connections;
}

/* A place under global.max_connections, taken before the accept: every
 * worker counts against the same limit, and a check followed by an
 * increment would let two of them past it at once. */
static bool take_connection_place(const struct worker *w)
{
	unsigned max = (unsigned)w->gen->cfg->global.max_connections;
	unsigned now = atomic_load_explicit(&lb_counters.connections_active, memory_order_relaxed);
	do {
		if (now >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&lb_counters.connections_active, &now, now + 1,
						       memory_order_relaxed, memory_order_relaxed));
	return true;
}

static void give_back_connection_place(void)
{
	atomic_fetch_sub_explicit(&lb_counters.connections_active, 1, memory_order_relaxed);
}

static void accept_try_resume(struct worker *w)
{
	if (!w->accept_paused || atomic_load(&w->stopping))
		return;
	if (at_connection_limit(w)) {
		struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
		event_add(w->accept_resume_timer, &tv);
		return;
	}
	w->accept_paused = false;
	event_del(w->accept_resume_timer);
	accept_points_enable(w, true);
}

/* Once a second: memory that stayed unused goes back (slab.h). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	atomic_store_explicit(&w->ticked_ms, clock_ms(), memory_order_relaxed);
	slab_trim(w->server_conns);
	if (w->handlers->tick != NULL)
		w->handlers->tick(w);
}

static void on_accept_resume_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	accept_try_resume(arg);
}

/* EMFILE and friends: the connection stays in the backlog; pause instead of
 * spinning on a socket that stays readable, and say so once a second,
 * whichever worker meets it. */
static void accept_failed(struct worker *w, const char *what, int err)
{
	static atomic_llong last_logged;
	long long now = (long long)time(NULL), last = atomic_load_explicit(&last_logged, memory_order_relaxed);
	if (now != last && atomic_compare_exchange_strong(&last_logged, &last, now))
		log_error("%s: %s; pausing accepts", what, strerror(err));
	accept_pause(w);
}

void worker_out_of_descriptors(struct worker *w, int err)
{
	accept_failed(w, "cannot open a server connection", err);
}

/* Connections accepted per readiness report and listener, at most: a
 * burst drains in one wake-up, and one busy listener cannot starve the
 * others. As many as the kernel says are waiting: accepting until EAGAIN
 * would end every wake-up with a failed accept4 (a fifth of the calls
 * under a close-per-request load, each making and unmaking a socket), and
 * accepting one per report (nginx's default) cost 10% more CPU per request
 * in the extra loop iterations. A connection that arrives meanwhile keeps
 * the socket readable for the next turn of the loop. */
#define ACCEPT_BUDGET 64

static void on_accept_ready(evutil_socket_t fd, short what, void *arg)
{
	struct accept_point *ap = arg;
	struct worker *w = ap->worker;
	(void)what;

	int waiting = listener_waiting(fd); /* -1: unknown, accept until EAGAIN */
	if (waiting == 0)
		return; /* another worker took it: the socket is shared */
	int budget = waiting > 0 && waiting < ACCEPT_BUDGET ? waiting : ACCEPT_BUDGET;
	for (int n = 0; n < budget; n++) {
		if (!take_connection_place(w)) {
			accept_pause(w);
			return;
		}
		struct sockaddr_storage peer;
		socklen_t peer_len;
		int client = listener_accept(fd, &peer, &peer_len);
		if (client < 0) {
			int err = errno;
			give_back_connection_place();
			if (err == EAGAIN)
				return; /* another worker took it (shared socket), or the count was stale */
			char what[128];
			snprintf(what, sizeof(what), "listener %s: accept", ap->listener->cfg->name);
			accept_failed(w, what, err);
			return;
		}
		struct worker_counters *mine = &lb_counters.workers[w->index];
		atomic_fetch_add_explicit(&mine->connections_total, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&mine->connections_active, 1, memory_order_relaxed);
		int rc = w->handlers->start[ap->listener->cfg->mode](w, ap->listener, client, &peer, peer_len);
		if (rc < 0) {
			/* The session closed the socket; keep the count right. */
			give_back_connection_place();
			atomic_fetch_sub_explicit(&mine->connections_active, 1, memory_order_relaxed);
		}
	}
}

static void accept_points_free(struct worker *w)
{
	for (size_t i = 0; i < w->naccept_points; i++)
		event_free(w->accept_points[i].event);
	free(w->accept_points);
	w->accept_points = NULL;
	w->naccept_points = 0;
}

static int accept_points_create(struct worker *w)
{
	const struct gen *g = w->gen;
	w->accept_points = calloc(g->nlisteners ? g->nlisteners : 1, sizeof(*w->accept_points));
	if (w->accept_points == NULL)
		return -1;
	for (size_t i = 0; i < g->nlisteners; i++) {
		struct accept_point *ap = &w->accept_points[w->naccept_points];
		ap->worker = w;
		ap->listener = &g->listeners[i];
		ap->fd = gen_listener_fd(ap->listener, w->index);
		ap->shared = ap->listener->nfds == 1 && g->workers > 1;
		ap->event = event_new(w->base, ap->fd, EV_READ | EV_PERSIST, on_accept_ready, ap);
		if (ap->event == NULL)
			return -1;
		w->naccept_points++;
		if (!w->accept_paused)
			accept_point_watch(ap);
	}
	return 0;
}

/* Accept for g from now on. Sessions keep the generation they hold. */
static void worker_switch_gen(struct worker *w, struct gen *g)
{
	accept_points_free(w);
	gen_release(w->gen);
	w->gen = g;
	if (!atomic_load(&w->stopping) && accept_points_create(w) < 0)
		log_error("worker %d: out of memory creating accept events", w->index);
	atomic_store(&w->acked_gen, g->id);
}

static void sessions_destroy_all(struct worker *w)
{
	while (w->sessions.next != &w->sessions)
		w->sessions.next->destroy(w->sessions.next);
}

/* Tell every session keep-alive ends; a session may free itself meanwhile. */
static void sessions_stop_all(struct worker *w, enum session_stop why)
{
	struct session_link *link = w->sessions.next;
	while (link != &w->sessions) {
		struct session_link *next = link->next;
		if (link->stop != NULL)
			link->stop(link, why);
		link = next;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t count;
	(void)what;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("worker %d: eventfd read: %s", w->index, strerror(errno));
	if (atomic_load(&w->stop_now)) {
		event_base_loopbreak(w->base);
		return;
	}
	struct gen *g = atomic_exchange(&w->pending_gen, NULL);
	if (g != NULL) {
		/* The file read again, not a rebuild for a DNS answer or a
		 * runtime weight (those keep the configuration). */
		bool reloaded = g->cfg_ref != w->gen->cfg_ref;
		worker_switch_gen(w, g);
		if (reloaded)
			sessions_stop_all(w, SESSION_STOP_RELOADED);
	}
	unsigned drains = atomic_load(&w->drains);
	if (drains != w->drains_seen) /* counted: a drain, undrain, drain between two wake-ups is one */
		sessions_stop_all(w, SESSION_STOP_KEEPALIVE);
	w->drains_seen = drains;
	if (atomic_load(&w->stopping) && !atomic_load(&w->accepting_stopped)) {
		/* Connections already queued on the sockets are served, not
		 * reset when the sockets close (a connection that comes in
		 * between this and the close still is). */
		for (size_t i = 0; i < w->naccept_points && !w->accept_paused; i++)
			on_accept_ready(w->accept_points[i].fd, EV_READ, &w->accept_points[i]);
		accept_points_free(w);
		event_del(w->accept_resume_timer);
		atomic_store(&w->accepting_stopped, true);
		sessions_stop_all(w, SESSION_STOP_KEEPALIVE);
	}
	wake_fd_signal(w->control_fd);
	if (atomic_load(&w->stopping) && w->nsessions == 0)
		event_base_loopbreak(w->base);
}

void worker_post_mail(struct worker *w, struct worker_mail *m)
{
	pthread_mutex_lock(&w->mail_lock);
	queue_link_append(&w->mail, &m->link);
	wake_fd_signal(w->mail_fd); /* under the lock: the worker's fd is open while it has mail to take */
	pthread_mutex_unlock(&w->mail_lock);
}

void worker_recall_mail(struct worker *w, struct worker_mail *m)
{
	pthread_mutex_lock(&w->mail_lock);
	queue_link_remove(&m->link); /* from w->mail, or from on_mail's batch (this thread's) */
	pthread_mutex_unlock(&w->mail_lock);
}

/* Mail came: deliver it all, in the order posted. */
static void on_mail(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t count;
	(void)what;
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("worker %d: mail eventfd read: %s", w->index, strerror(errno));
	struct queue_link batch;
	queue_link_init(&batch);
	pthread_mutex_lock(&w->mail_lock);
	if (w->mail.next != &w->mail) {
		batch.next = w->mail.next;
		batch.prev = w->mail.prev;
		batch.next->prev = batch.prev->next = &batch;
		queue_link_init(&w->mail);
	}
	pthread_mutex_unlock(&w->mail_lock);
	/* A delivery may recall a later one (worker_recall_mail unlinks it
	 * from the batch): take them off one by one. */
	while (batch.next != &batch) {
		struct worker_mail *m = (struct worker_mail *)batch.next;
		queue_link_remove(&m->link);
		m->deliver(m);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	sessions_destroy_all(w);
	if (w->handlers->at_exit != NULL)
		w->handlers->at_exit(w);
	slab_destroy(w->server_conns); /* every server connection is closed by now */
	w->server_conns = NULL;
	accept_points_free(w);
	event_free(w->accept_resume_timer);
	event_free(w->tick_timer);
	event_free(w->wake_event);
	event_free(w->mail_event);
	gen_release(w->gen);
	w->gen = NULL;
	struct gen *pending = atomic_exchange(&w->pending_gen, NULL);
	gen_release(pending);
	event_base_free(w->base);
	w->base = NULL;
	atomic_store(&w->exited, true);
	wake_fd_signal(w->control_fd);
	return NULL;
}

/* global.cpu_affinity: worker i on the i-th CPU this process may use
 * (counting around when there are more workers than CPUs). */
static void pin_to_cpu(struct worker *w)
{
	cpu_set_t allowed, one;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) == 0) {
		log_warn("worker %d: cpu_affinity: cannot read the allowed CPUs: %s", w->index, strerror(errno));
		return;
	}
	int nth = w->index % CPU_COUNT(&allowed), cpu = -1;
	for (int c = 0; c < CPU_SETSIZE && nth >= 0; c++)
		if (CPU_ISSET(c, &allowed) && nth-- == 0)
			cpu = c;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	int rc = pthread_setaffinity_np(w->thread, sizeof(one), &one);
	if (rc != 0)
		log_warn("worker %d: cpu_affinity: cannot pin to CPU %d: %s", w->index, cpu, strerror(rc));
	else
		log_info("worker %d runs on CPU %d", w->index, cpu);
}

int worker_start(struct worker *w, int index, struct gen *gen, int control_fd, const struct worker_handlers *handlers)
{
	struct event_config *ec = event_config_new();

	memset(w, 0, sizeof(*w));
	w->index = index;
	w->handlers = handlers;
	w->control_fd = control_fd;
	w->wake_fd = -1;
	w->mail_fd = -1;
	w->epoll_fd = EPOLL_FD_UNKNOWN;
	pthread_mutex_init(&w->mail_lock, NULL);
	queue_link_init(&w->mail);
	w->sessions.next = w->sessions.prev = &w->sessions;
	atomic_init(&w->ticked_ms, clock_ms());
	if (ec == NULL)
		return -1;
	/* Nothing else touches this base from another thread. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (w->base == NULL)
		goto fail;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0)
		goto fail;
	w->wake_event = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
	w->mail_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->mail_fd < 0)
		goto fail;
	w->mail_event = event_new(w->base, w->mail_fd, EV_READ | EV_PERSIST, on_mail, w);
	if (w->mail_event == NULL)
		goto fail;
	event_add(w->mail_event, NULL);
	w->accept_resume_timer = evtimer_new(w->base, on_accept_resume_timer, w);
	w->tick_timer = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	if (w->wake_event == NULL || w->accept_resume_timer == NULL || w->tick_timer == NULL)
		goto fail;
	event_add(w->wake_event, NULL);
	struct timeval second = { 1, 0 };
	event_add(w->tick_timer, &second);
	w->server_conns = slab_create(sizeof(struct conn), 64 * 1024);
	if (w->server_conns == NULL)
		goto fail;
	w->gen = gen_acquire(gen);
	atomic_store(&w->acked_gen, gen->id);
	if (accept_points_create(w) < 0)
		goto fail;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		goto fail;
	char name[16];
	snprintf(name, sizeof(name), "lb-worker-%d", index);
	pthread_setname_np(w->thread, name); /* top -H, /proc/PID/task/TID/comm */
	if (gen->cfg->global.cpu_affinity)
		pin_to_cpu(w);
	return 0;
fail:
	accept_points_free(w);
	slab_destroy(w->server_conns);
	if (w->accept_resume_timer)
		event_free(w->accept_resume_timer);
	if (w->tick_timer)
		event_free(w->tick_timer);
	if (w->wake_event)
		event_free(w->wake_event);
	if (w->mail_event)
		event_free(w->mail_event);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	if (w->mail_fd >= 0)
		close(w->mail_fd);
	gen_release(w->gen);
	if (w->base)
		event_base_free(w->base);
	return -1;
}

void worker_post_gen(struct worker *w, struct gen *gen)
{
	struct gen *old = atomic_exchange(&w->pending_gen, gen_acquire(gen));
	gen_release(old); /* a generation the worker never picked up */
	wake_fd_signal(w->wake_fd);
}

void worker_post_stop(struct worker *w, bool now)
{
	atomic_store(&w->stopping, true);
	if (now)
		atomic_store(&w->stop_now, true);
	wake_fd_signal(w->wake_fd);
}

void worker_post_drain(struct worker *w, bool draining)
{
	atomic_store(&w->draining, draining);
	if (draining)
		atomic_fetch_add(&w->drains, 1);
	wake_fd_signal(w->wake_fd);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
	close(w->wake_fd);
	w->wake_fd = -1;
	close(w->mail_fd);
	w->mail_fd = -1;
}

void worker_session_add(struct worker *w, struct session_link *link)
{
	link->next = w->sessions.next;
	link->prev = &w->sessions;
	w->sessions.next->prev = link;
	w->sessions.next = link;
	w->nsessions++;
}

void worker_session_remove(struct worker *w, struct session_link *link)
{
	link->prev->next = link->next;
	link->next->prev = link->prev;
	link->next = link->prev = link;
	w->nsessions--;
	if (!link->uncounted) {
		atomic_fetch_sub_explicit(&lb_counters.connections_active, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&lb_counters.workers[w->index].connections_active, 1,
					  memory_order_relaxed);
	}
	if (w->accept_paused)
		accept_try_resume(w);
	if (w->nsessions == 0 && atomic_load(&w->stopping))
		event_base_loopbreak(w->base);
}
