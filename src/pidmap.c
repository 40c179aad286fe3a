/* SPDX-License-Identifier: MIT */
/*
 * pidmap.c - linear probing with backward-shift deletion: no tombstones,
 * so a map that sees millions of spawns and exits never needs a rebuild.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pidmap.h"
#include "util.h"

#define PIDMAP_MIN	64

static size_t
home(const struct pidmap *m, pid_t pid)
{
	uint32_t h = (uint32_t)pid * 2654435761u;	/* Knuth */

	return (size_t)(h ^ (h >> 16)) & (m->cap - 1);
}

/* The slot holding pid, or the empty one where it would go. */
static struct pidmap_slot *
probe(const struct pidmap *m, pid_t pid)
{
	size_t i = home(m, pid);

	while (m->slots[i].pid != 0 && m->slots[i].pid != pid)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static void
grow(struct pidmap *m)
{
	struct pidmap old = *m;
	size_t i;

	m->cap = old.cap == 0 ? PIDMAP_MIN : old.cap * 2;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	for (i = 0; i < old.cap; i++)
		if (old.slots[i].pid != 0)
			*probe(m, old.slots[i].pid) = old.slots[i];
	free(old.slots);
}

void
pidmap_add(struct pidmap *m, pid_t pid, void *value)
{
	struct pidmap_slot *s;

	if ((m->n + 1) * 4 > m->cap * 3)
		grow(m);
	s = probe(m, pid);
	if (s->pid == 0)
		m->n++;
	s->pid = pid;
	s->value = value;
}

void
pidmap_del(struct pidmap *m, pid_t pid)
{
	size_t i, j, h, mask = m->cap - 1;

	if (m->cap == 0)
		return;
	i = (size_t)(probe(m, pid) - m->slots);
	if (m->slots[i].pid == 0)
		return;
	m->n--;
	/* Pull back every entry of the run after i that may move: one whose
	 * home is not cyclically within (i, j]. */
	for (j = (i + 1) & mask; m->slots[j].pid != 0; j = (j + 1) & mask) {
		h = home(m, m->slots[j].pid);
		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].pid = 0;
	m->slots[i].value = NULL;
}

void *
pidmap_get(const struct pidmap *m, pid_t pid)
{
	if (m->cap == 0 || pid <= 0)
		return NULL;
	return probe(m, pid)->value;
}

void
pidmap_clear(struct pidmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}
