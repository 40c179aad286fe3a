/* SPDX-License-Identifier: MIT */
/*
 * children.h - recycle_scope = children: the direct children of a worker
 * that is a prefork server's master (gunicorn, uWSGI, PHP-FPM...), each
 * measured, limited and drained on its own.
 *
 * The master forks and reaps its children and replaces one that exits;
 * the daemon only watches them. Each sample of a ready master lists its
 * children (its kept /proc descriptors), samples each child's own subtree
 * with the pool's prefilter (statm, smaps_rollup only near a limit), and
 * applies the pool's limits to it: recycle_memory (recycle_samples,
 * jitter), kill_memory, max_lifetime. A recycle sends child_drain_signal,
 * waits drain_timeout, then kills the child's tree; at most max_recycling
 * children of a pool drain at once. A child is held by a pidfd, which also
 * tells when it exits (the master reaps it).
 *
 * The structs are visible to control.c, which reads them for status; only
 * children.c writes them.
 */
#ifndef RECYCLERD_CHILDREN_H
#define RECYCLERD_CHILDREN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "growth.h"
#include "memprobe.h"
#include "policy.h"

#include <sys/queue.h>

struct worker;

/* At most this many children of one master are watched. */
#define CHILDREN_MAX	1024

enum child_state {
	CS_SERVING,		/* sampled; perhaps waiting for a drain place */
	CS_DRAINING,		/* child_drain_signal sent */
	CS_KILLED,		/* SIGKILL sent to its tree */
	CS_EXITED,		/* exited, not yet reaped by the master */
};

struct child {
	struct children	*set;		/* owner */
	pid_t		 pid;
	int		 pidfd;		/* -1 without pidfds */
	struct memprobe	*probe;
	enum child_state state;
	double		 seen_mono;	/* first seen: its uptime counts from
					 * there, within a sample of its fork */
	double		 jitter_u;
	struct policy_limits limits;	/* in force at its last sample */

	struct mem_sample last;
	uint64_t	 memory;	/* in the pool's metric */
	bool		 memory_exact;	/* false: bounded by rss only */
	uint64_t	 peak;
	unsigned int	 samples;
	unsigned int	 over_count;
	struct growth	 growth;
	bool		 baseline;	/* over recycle_memory at its first
					 * sample: no memory recycle for it */

	enum reason	 recycle_reason; /* NONE, or condemned */
	char		 recycle_detail[160];
	uint64_t	 recycle_at;	/* memory at the decision */
	double		 recycle_mono;
	double		 drain_mono;
	bool		 seen;		/* in the last listing */

	ev_timer	 timer;		/* drain_timeout */
	ev_io		 exit_io;	/* its pidfd: readable once exited */
};

/*
 * What the masters of one pool share (struct pool's children): their sets,
 * for max_recycling across the pool, and the pool's counts of child
 * recycles. A zeroed struct after TAILQ_INIT is empty.
 */
struct children_pool {
	TAILQ_HEAD(, children) sets;
	uint64_t	 recycles[REASON__COUNT];	/* by reason */
	unsigned int	 ncpu;
};

struct children {
	struct worker	*master;
	struct children_pool *cp;
	TAILQ_ENTRY(children) entry;	/* in cp->sets */
	struct child	**v;		/* sorted by pid */
	unsigned int	 n;
	unsigned int	 draining;	/* CS_DRAINING or CS_KILLED */
};

/*
 * One sample of the children of w, a ready master of a pool with
 * recycle_scope = children, and what follows from it.
 */
void	 children_check(struct worker *w, struct children_pool *,
	    double now);
/* The last figures of its children, summed (pool_recycle_memory). */
uint64_t children_memory(const struct children *);
/* The master is gone: stop watching (its children go with its tree). */
void	 children_free(struct children *);

/* Inline: status (control.c, also built into the unit tests) reads them. */
static inline const char *
child_state_name(const struct child *c)
{
	static const char *const names[] = {
		[CS_SERVING] = "serving", [CS_DRAINING] = "draining",
		[CS_KILLED] = "killed", [CS_EXITED] = "exited",
	};

	if (c->state == CS_SERVING && c->recycle_reason != REASON_NONE)
		return "waiting";	/* for a drain place */
	return names[c->state];
}

static inline double
child_uptime(const struct child *c, double now)
{
	return now > c->seen_mono ? now - c->seen_mono : 0.0;
}

#endif /* RECYCLERD_CHILDREN_H */
