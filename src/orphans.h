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

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "log.h"

struct orphan;
struct orphans;
struct recyclerd;

LIST_HEAD(orphan_list, orphan);

/*
 * What this module keeps for each worker, embedded in it (struct worker's
 * orph): orphans.c knows nothing of workers or pools, only these.
 */
struct orphan_owner {
	struct orphan_list list;	/* its adopted orphans */
	pid_t		*desc;		/* descendants its last walk saw */
	size_t		 ndesc, desc_cap;
	unsigned int	 walk_gen;
	bool		 killed;	/* its tree is being killed */
	struct log_ctx	 ctx;		/* its pool, slot and pid, for logs */
};

/*
 * How the daemon names an owner: the live worker with that pid, or the
 * oldest in that slot of that pool (RECYCLERD_POOL, RECYCLERD_WORKER).
 * NULL when there is none. And what the templates owe (main.c fills it).
 */
struct orphans_find {
	struct orphan_owner *(*by_pid)(struct recyclerd *, pid_t);
	struct orphan_owner *(*by_slot)(struct recyclerd *, const char *pool,
	    unsigned long slot);
	/* spawn = template: read the templates' answers now; whether one is
	 * owed (then an unknown child may be a worker whose PID= is unread,
	 * not an orphan); an unknown child was reaped: true when its status
	 * was kept for an owed answer. */
	void	(*poll)(struct recyclerd *);
	bool	(*forking)(struct recyclerd *);
	bool	(*reaped)(struct recyclerd *, pid_t, int status);
};

void		 orphan_owner_init(struct orphan_owner *, struct log_ctx);
/* Start the sweep timer and the catch-all child watcher. */
struct orphans	*orphans_new(struct recyclerd *, const struct orphans_find *);
/* After the loop: SIGKILL every child left but the guard, reap, free. */
void		 orphans_free(struct orphans *);
/* Sweep every interval seconds (the shortest sample_interval). */
void		 orphans_set_interval(struct orphans *, double interval);
/* Find the children we do not know yet and adopt them. */
void		 orphans_sweep(struct orphans *);

/* The pids seen in w's tree walk (pids[0] is the worker itself). */
void		 orphans_walked(struct orphans *, struct orphan_owner *,
		    const pid_t *pids, size_t n);
/* Its live orphans, the extra roots of its tree; returns the count. */
size_t		 orphans_roots(struct orphans *, struct orphan_owner *,
		    pid_t *pids, size_t max);
/* SIGKILL its orphans and their trees. */
void		 orphans_kill_owner(struct orphans *, struct orphan_owner *);
/* A template's answer named pid, an orphan of the template's so far (a
 * worker forked ahead, waiting for its request): a worker from now on,
 * not an orphan. false if it was none. */
bool		 orphans_claim(struct orphans *, pid_t pid);
/* Its worker is being freed: its orphans are killed, and any process seen
 * in its tree that reaches us later is killed on sight. */
void		 orphans_owner_gone(struct orphans *, struct orphan_owner *);

#endif /* RECYCLERD_ORPHANS_H */
