/* SPDX-License-Identifier: MIT */
/*
 * heap.c - see heap.h.
 */
#include <stdlib.h>

#include "heap.h"
#include "util.h"

/* Does a come out before b? */
static bool
before(const struct heap_node *a, const struct heap_node *b)
{
	return a->key > b->key || (a->key == b->key && a->seq < b->seq);
}

static void
place(struct heap *h, struct heap_node *n, size_t i)
{
	h->v[i] = n;
	n->idx = i;
}

static void
sift_up(struct heap *h, size_t i)
{
	struct heap_node *n = h->v[i];

	while (i > 0 && before(n, h->v[(i - 1) / 2])) {
		place(h, h->v[(i - 1) / 2], i);
		i = (i - 1) / 2;
	}
	place(h, n, i);
}

static void
sift_down(struct heap *h, size_t i)
{
	struct heap_node *n = h->v[i];
	size_t c;

	while ((c = 2 * i + 1) < h->n) {
		if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
			c++;
		if (!before(h->v[c], n))
			break;
		place(h, h->v[c], i);
		i = c;
	}
	place(h, n, i);
}

void
heap_free(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

void
heap_push(struct heap *h, struct heap_node *n, double key)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->v = xrealloc(h->v, h->cap * sizeof *h->v);
	}
	n->key = key;
	n->seq = h->next_seq++;
	place(h, n, h->n++);
	sift_up(h, n->idx);
}

void
heap_remove(struct heap *h, struct heap_node *n)
{
	size_t i = n->idx;
	struct heap_node *last = h->v[--h->n];

	if (i == h->n)
		return;
	place(h, last, i);
	sift_up(h, i);
	sift_down(h, last->idx);
}

void
heap_update(struct heap *h, struct heap_node *n, double key)
{
	n->key = key;
	sift_up(h, n->idx);
	sift_down(h, n->idx);
}

struct heap_node *
heap_top(const struct heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

struct heap_node *
heap_pop(struct heap *h)
{
	struct heap_node *top = heap_top(h);

	if (top != NULL)
		heap_remove(h, top);
	return top;
}
