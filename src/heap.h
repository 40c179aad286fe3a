/* SPDX-License-Identifier: MIT */
/*
 * heap.h - an intrusive binary heap, highest key first, ties in the order
 * of insertion. The node lives in the item (container_of to get it back)
 * and knows its index, so removal and a key change cost O(log n).
 */
#ifndef RECYCLERD_HEAP_H
#define RECYCLERD_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct heap_node {
	double		 key;
	uint64_t	 seq;		/* insertion order, for ties */
	size_t		 idx;		/* position in the heap's array */
};

struct heap {
	struct heap_node **v;
	size_t		 n, cap;
	uint64_t	 next_seq;
};

void		 heap_free(struct heap *);	/* the array, not the items */
void		 heap_push(struct heap *, struct heap_node *, double key);
void		 heap_remove(struct heap *, struct heap_node *);
/* Change the key of a node in the heap and restore the order. */
void		 heap_update(struct heap *, struct heap_node *, double key);
struct heap_node *heap_top(const struct heap *);	/* NULL if empty */
struct heap_node *heap_pop(struct heap *);		/* NULL if empty */
static inline size_t
heap_size(const struct heap *h)
{
	return h->n;
}

#endif /* RECYCLERD_HEAP_H */
