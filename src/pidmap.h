/* SPDX-License-Identifier: MIT */
/*
 * pidmap.h - an open hash of pid -> pointer that grows with its entries.
 *
 * A leaf: it knows nothing of workers or of the daemon. A zeroed struct is
 * an empty map; look-ups stay O(1) at any number of workers (the table
 * doubles when it is three quarters full, and never shrinks).
 */
#ifndef RECYCLERD_PIDMAP_H
#define RECYCLERD_PIDMAP_H

#include <stddef.h>
#include <sys/types.h>

struct pidmap_slot {
	pid_t		 pid;		/* 0: empty */
	void		*value;
};

struct pidmap {
	struct pidmap_slot *slots;
	size_t		 cap;		/* 0 or a power of two */
	size_t		 n;
};

/* Map pid (> 0) to value, replacing what it mapped to. */
void	 pidmap_add(struct pidmap *, pid_t, void *value);
/* Forget pid; nothing if it is not there. */
void	 pidmap_del(struct pidmap *, pid_t);
/* What pid maps to, or NULL. */
void	*pidmap_get(const struct pidmap *, pid_t);
/* Free the table; the map is empty again. */
void	 pidmap_clear(struct pidmap *);

#endif /* RECYCLERD_PIDMAP_H */
