/* deadline: see deadline.h. */
#include "deadline.h"

#include <event2/event.h>

#include "clock.h"
#include "netutil.h"

static void arm(struct deadline *d, uint64_t now, uint64_t ms)
{
	struct timeval tv = netutil_timeval_ms(ms);
	event_add(&d->event, &tv);
	d->armed_ms = now + ms;
	d->pending = true;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct deadline *d = arg;
	(void)fd;
	(void)what;
	d->pending = false;
	uint64_t now = clock_ms();
	if (now < d->due_ms) {
		arm(d, now, d->due_ms - now); /* moved later meanwhile */
		return;
	}
	d->expired(d->arg);
}

int deadline_init(struct deadline *d, struct event_base *base, void (*expired)(void *arg), void *arg)
{
	d->pending = false;
	d->expired = expired;
	d->arg = arg;
	d->ready = evtimer_assign(&d->event, base, on_event, d) == 0;
	return d->ready ? 0 : -1;
}

void deadline_set(struct deadline *d, uint64_t ms)
{
	uint64_t now = clock_ms();
	d->due_ms = now + ms;
	if (d->pending && d->armed_ms <= d->due_ms)
		return; /* the event fires first and will look again */
	arm(d, now, ms);
}

void deadline_free(struct deadline *d)
{
	if (d->ready)
		event_del(&d->event);
	d->ready = false;
}
