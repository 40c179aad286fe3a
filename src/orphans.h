/* SPDX-License-Identifier: MIT */
/*
 * orphans.h - processes that left a worker's tree and were re-parented to
 * the daemon, a child subreaper.
 *
 * Such a process sends us nothing: a periodic sweep of the daemon's own
 * children finds it. It is attributed to the worker it came from (the
 * descendants seen by that worker's last tree walk, then its session or
 * process group, then RECYCLERD_POOL and RECYCLERD_WORKER in its
 * environment), measured as an extra root of that worker's tree, and
 * killed with it. One that cannot be attributed is kept in a daemon-wide
 * set and killed at shutdown. Every one is also told to the guard. Each is
 * held through a pidfd where the kernel has them; as our child, its pid
 * cannot be reused before we reap it anyway.
 */
#ifndef RECYCLERD_ORPHANS_H
#define RECYCLERD_ORPHANS_H

#include <stddef.h>
#include <sys/types.h>

struct orphans;
struct recyclerd;
struct worker;

/* Start the sweep timer and the catch-all child watcher. */
struct orphans	*orphans_new(struct recyclerd *);
/* After the loop: SIGKILL every child left but the guard, reap, free. */
void		 orphans_free(struct orphans *);
/* Sweep every interval seconds (the shortest sample_interval). */
void		 orphans_set_interval(struct orphans *, double interval);
/* Find the children we do not know yet and adopt them. */
void		 orphans_sweep(struct orphans *);

/* The pids seen in w's tree walk (pids[0] is the worker itself). */
void		 orphans_walked(struct orphans *, struct worker *,
		    const pid_t *pids, size_t n);
/* Its live orphans, the extra roots of its tree; returns the count. */
size_t		 orphans_roots(struct orphans *, struct worker *, pid_t *pids,
		    size_t max);
/* SIGKILL its orphans and their trees. */
void		 orphans_kill_worker(struct orphans *, struct worker *);
/* w is being freed: its orphans are killed, and any process seen in its
 * tree that reaches us later is killed on sight. */
void		 orphans_worker_gone(struct orphans *, struct worker *);

#endif /* RECYCLERD_ORPHANS_H */
