/* SPDX-License-Identifier: MIT */
/*
 * logring.c - see logring.h. One per daemon (the relays and the control
 * socket share it). Each line is on two lists: all lines, and its pool's;
 * adding one evicts its pool's oldest when the pool is full, else the
 * oldest of all when LOGRING_MAX is reached: O(1) either way. A line's
 * text is its own allocation, at most LOGRING_LINE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logring.h"
#include "util.h"

struct logpool {
	LIST_ENTRY(logpool) entry;
	char		 name[40];
	TAILQ_HEAD(, logline) lines;
	size_t		 n;
};

static TAILQ_HEAD(logline_all, logline) all = TAILQ_HEAD_INITIALIZER(all);
static LIST_HEAD(, logpool) pools = LIST_HEAD_INITIALIZER(pools);
static size_t count;
static uint64_t seq;

/* The pool's ring; pools are few, a list will do. */
static struct logpool *
logpool(const char *name)
{
	struct logpool *lp;

	LIST_FOREACH(lp, &pools, entry)
		if (strncmp(lp->name, name, sizeof lp->name - 1) == 0)
			return lp;
	lp = xcalloc(1, sizeof *lp);
	snprintf(lp->name, sizeof lp->name, "%s", name);
	TAILQ_INIT(&lp->lines);
	LIST_INSERT_HEAD(&pools, lp, entry);
	return lp;
}

static void
evict(struct logline *l)
{
	TAILQ_REMOVE(&all, l, all);
	TAILQ_REMOVE(&l->lp->lines, l, same);
	l->lp->n--;
	count--;
	free(l->text);
	free(l);
}

void
logring_add(const char *pool, int slot, pid_t pid, const char *stream,
    const char *text, size_t len)
{
	struct logpool *lp = logpool(pool);
	struct logline *l;
	struct timespec ts;

	if (lp->n >= LOGRING_POOL)
		evict(TAILQ_FIRST(&lp->lines));
	else if (count >= LOGRING_MAX)
		evict(TAILQ_FIRST(&all));
	if (len > LOGRING_LINE)
		len = LOGRING_LINE;
	l = xcalloc(1, sizeof *l);
	l->text = xmalloc(len + 1);
	memcpy(l->text, text, len);
	l->text[len] = '\0';
	l->seq = ++seq;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	snprintf(l->pool, sizeof l->pool, "%s", pool);
	l->slot = slot;
	l->pid = pid;
	l->stream = stream;
	l->lp = lp;
	TAILQ_INSERT_TAIL(&all, l, all);
	TAILQ_INSERT_TAIL(&lp->lines, l, same);
	lp->n++;
	count++;
}

const struct logline *
logring_first(void)
{
	return TAILQ_FIRST(&all);
}

const struct logline *
logring_last(void)
{
	return TAILQ_LAST(&all, logline_all);
}

const struct logline *
logring_next(const struct logline *l)
{
	return TAILQ_NEXT(l, all);
}

const struct logline *
logring_prev(const struct logline *l)
{
	return TAILQ_PREV(l, logline_all, all);
}

void
logring_clear(void)
{
	struct logpool *lp;
	struct logline *l;

	while ((l = TAILQ_FIRST(&all)) != NULL)
		evict(l);
	while ((lp = LIST_FIRST(&pools)) != NULL) {
		LIST_REMOVE(lp, entry);
		free(lp);
	}
}
