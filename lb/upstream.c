/* upstream: per-worker pools of idle server connections. See upstream.h. */
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>

#include "netutil.h"

struct idle_conn {
	struct bufferevent *bev;
	struct server_state *state; /* a reference */
	struct worker *worker;
	struct idle_conn *prev, *next; /* in state->pools[worker] */
	struct idle_conn *all_prev, *all_next; /* in the worker's list of all */
};

/* Per worker: every idle connection, to close them all at exit. The worker
 * struct stays free of upstream details; the head lives here, one per worker. */
static _Thread_local struct idle_conn *worker_idle_head;

static void idle_unlink(struct idle_conn *c)
{
	struct idle_pool *pool = &c->state->pools[c->worker->index];
	if (c->prev)
		c->prev->next = c->next;
	else
		pool->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pool->count--;
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		worker_idle_head = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
}

static void idle_close(struct idle_conn *c)
{
	idle_unlink(c);
	bufferevent_free(c->bev);
	server_state_release(c->state);
	free(c);
}

/* Anything happening on an idle connection ends it: EOF, error, timeout,
 * or bytes the server sent unasked (a late or bogus response). */
static void on_idle_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	idle_close(arg);
}

static void on_idle_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	idle_close(arg);
}

struct bufferevent *upstream_pool_take(struct worker *w, struct server_state *state)
{
	struct idle_conn *c = state->pools[w->index].head;
	if (c == NULL)
		return NULL;
	struct bufferevent *bev = c->bev;
	idle_unlink(c);
	server_state_release(c->state);
	free(c);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_disable(bev, EV_READ);
	return bev;
}

void upstream_pool_put(struct worker *w, struct server_state *state, struct bufferevent *bev, int keepalive,
		       uint64_t idle_ms)
{
	struct idle_pool *pool = &state->pools[w->index];
	struct idle_conn *c = NULL;

	if ((int)pool->count >= keepalive || (c = calloc(1, sizeof(*c))) == NULL) {
		bufferevent_free(bev);
		return;
	}
	c->bev = bev;
	c->state = server_state_acquire(state);
	c->worker = w;
	c->next = pool->head; /* LIFO: the warmest connection is reused first */
	if (pool->head)
		pool->head->prev = c;
	pool->head = c;
	pool->count++;
	c->all_next = worker_idle_head;
	if (worker_idle_head)
		worker_idle_head->all_prev = c;
	worker_idle_head = c;

	struct timeval idle = netutil_timeval_ms(idle_ms);
	bufferevent_setcb(bev, on_idle_read, NULL, on_idle_event, c);
	bufferevent_set_timeouts(bev, &idle, NULL);
	bufferevent_enable(bev, EV_READ);
}

void upstream_pool_close_all(struct worker *w)
{
	(void)w;
	while (worker_idle_head != NULL)
		idle_close(worker_idle_head);
}
