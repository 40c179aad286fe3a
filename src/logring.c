/* SPDX-License-Identifier: MIT */
/*
 * logring.c - a fixed ring of the last LOGRING_MAX output lines. One per
 * daemon (the relays and the control socket share it), allocated at the
 * first line; a line's text is its own allocation, at most LOGRING_LINE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logring.h"
#include "util.h"

static struct logline	*ring;
static size_t		 head, count;
static uint64_t		 seq;

void
logring_add(const char *pool, int slot, pid_t pid, const char *stream,
    const char *text, size_t len)
{
	struct logline *l;
	struct timespec ts;

	if (ring == NULL)
		ring = xcalloc(LOGRING_MAX, sizeof *ring);
	l = &ring[head];
	free(l->text);
	if (len > LOGRING_LINE)
		len = LOGRING_LINE;
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
	head = (head + 1) % LOGRING_MAX;
	if (count < LOGRING_MAX)
		count++;
}

size_t
logring_count(void)
{
	return count;
}

const struct logline *
logring_get(size_t i)
{
	if (i >= count)
		return NULL;
	return &ring[(head + LOGRING_MAX - count + i) % LOGRING_MAX];
}

void
logring_clear(void)
{
	size_t i;

	if (ring != NULL)
		for (i = 0; i < LOGRING_MAX; i++)
			free(ring[i].text);
	free(ring);
	ring = NULL;
	head = count = 0;
}
