/* SPDX-License-Identifier: MIT */
/*
 * events.c - the ring of recent events. Fixed size, allocated once: adding
 * an event never allocates.
 */
#include <stdlib.h>
#include <time.h>

#include "events.h"
#include "util.h"

struct events {
	struct event	 ring[EVENTS_MAX];
	size_t		 head;		/* next slot to write */
	size_t		 n;
	uint64_t	 seq;
};

struct events *
events_new(void)
{
	return xcalloc(1, sizeof(struct events));
}

void
events_free(struct events *ev)
{
	free(ev);
}

const struct event *
events_add(struct events *ev, const struct event *e)
{
	struct event *slot = &ev->ring[ev->head];
	struct timespec ts;

	*slot = *e;
	slot->seq = ++ev->seq;
	clock_gettime(CLOCK_REALTIME, &ts);
	slot->wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	ev->head = (ev->head + 1) % EVENTS_MAX;
	if (ev->n < EVENTS_MAX)
		ev->n++;
	return slot;
}

size_t
events_count(const struct events *ev)
{
	return ev->n;
}

const struct event *
events_get(const struct events *ev, size_t i)
{
	if (i >= ev->n)
		return NULL;
	return &ev->ring[(ev->head + EVENTS_MAX - ev->n + i) % EVENTS_MAX];
}
