/* SPDX-License-Identifier: MIT */
/*
 * pool.h - a pool of workers: desired count, spawn and respawn scheduling,
 * crash backoff, overlapped recycling, sampling.
 *
 * A pool owns its workers (a list; a slot may hold two processes while one
 * replaces the other), one sample timer and one respawn timer per slot. It
 * keeps a reference to the configuration snapshot it runs.
 */
#ifndef RECYCLERD_POOL_H
#define RECYCLERD_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <ev.h>

#include "children.h"
#include "listen.h"
#include "policy.h"
#include "worker.h"

struct config;
struct pool_config;
struct recyclerd;
struct templates;
struct worker;

enum pool_state {
	POOL_RUNNING,
	POOL_STOPPED,		/* stop command: no workers wanted */
	POOL_FAILED,		/* rapid_fail: no respawns until started */
	POOL_REMOVED,		/* gone from the configuration: draining */
};

#define POOL_FAIL_RING	1024	/* > the largest rapid_fail */

/*
 * A slot is a worker number (RECYCLERD_WORKER). It lists the processes
 * that run under its number (usually one; two while one replaces the
 * other) so that every question about a slot costs O(1), whatever the
 * size of the pool.
 */
struct slot {
	struct pool	*pool;
	unsigned int	 index;
	unsigned int	 failures;	/* consecutive, for the backoff */
	unsigned int	 nready;	/* members in WS_READY */
	uint64_t	 starts;	/* processes started in it, ever */
	bool		 settled;	/* counted in pool->nsettled */
	bool		 queued;	/* on pool->work */
	TAILQ_HEAD(, worker) members;
	TAILQ_ENTRY(slot) work_entry;
	ev_timer	 respawn;	/* pending restart after a failure */
};

struct pool {
	LIST_ENTRY(pool) entry;
	struct recyclerd *rd;
	char		*name;
	struct config	*snap;		/* running snapshot (ref) */
	const struct pool_config *cfg;	/* this pool's section in snap */
	enum pool_state	 state;
	unsigned int	 desired;	/* workers wanted (scale changes it) */

	TAILQ_HEAD(, worker) workers;
	unsigned int	 nworkers;
	struct slot	**slots;	/* each allocated once: timers never move */
	unsigned int	 nslots;
	unsigned int	 next_gen;

	/*
	 * Kept up to date at every change, so that no event walks the pool:
	 * workers by state, slots below desired that are settled (a ready
	 * worker, or a failure), places of max_recycling in use.
	 */
	unsigned int	 nstate[WS__COUNT];
	unsigned int	 nsettled;
	unsigned int	 recycling;
	/* Work for the next reconciliation, which runs once per loop turn
	 * (pool_run_deferred): slots that may need a process, workers that
	 * wait for a recycle place (in the order they asked), and whether
	 * workers past the wanted count must be drained. */
	TAILQ_HEAD(, slot) work;
	struct heap	 pending;	/* by urgency: policy_urgency() */
	bool		 dirty;
	bool		 trim;

	char		**env;		/* base environment for its workers */
	gid_t		*groups;	/* supplementary groups of user */
	size_t		 ngroups;
	struct listen_set sockets;	/* held for every worker */
	struct cgroup	*cg;		/* ROOT/POOL, or NULL */
	struct templates *tmpl;		/* spawn = template, or NULL */

	ev_timer	 sample;	/* every sample_interval */
	ev_timer	 more;		/* more spawns due: next loop turn */
	unsigned int	 spawned_now;	/* spawns in this reconcile */
	double		 fail_times[POOL_FAIL_RING];
	unsigned int	 fail_head;
	unsigned int	 baseline_strikes;	/* threshold below baseline */
	double		 baseline_next_log;

	/* Counters, over the pool's life. */
	uint64_t	 recycles[REASON__COUNT];
	uint64_t	 crashes;
	uint64_t	 failed_starts;
	uint64_t	 spawn_failures;	/* fork or pipe failed: no process */
	uint64_t	 spawns;
	uint64_t	 overshoot_drains;	/* max_overshoot: no overlap */
	uint64_t	 prespawns;		/* replacements started early */
	uint64_t	 prespawn_misses;	/* of which drained unused */
	/* recycle_scope = children: its masters' children, and those
	 * drained or killed, by reason. */
	struct children_pool children;
	/* Exits by reason, each exit counted once: REASON_* as recorded
	 * (crash, oom, a recycle reason, scale, shutdown), and
	 * EXIT_FAILED_START for any that never became ready. */
#define EXIT_FAILED_START	REASON__COUNT
	uint64_t	 exits[REASON__COUNT + 1];

	/* How long a process of this pool takes from spawn to ready: the
	 * median of the last START_RING, for prespawn and urgency. */
#define START_RING	16
	double		 start_s[START_RING];
	unsigned int	 nstart;
	double		 start_median;
	double		 start_horizon;	/* policy_start_horizon() */
	unsigned int	 ncpu;

	/* Peak / recycle_memory of the workers recycled for memory, when
	 * they began to drain: a histogram over OVERSHOOT_BUCKETS. */
#define OVERSHOOT_BUCKETS 7
	uint64_t	 overshoot_hist[OVERSHOOT_BUCKETS];
	uint64_t	 overshoot_count;
	double		 overshoot_sum;
};

/* Upper bounds of the overshoot histogram's buckets (the last is +Inf). */
extern const double pool_overshoot_bounds[OVERSHOOT_BUCKETS];

/* The pool of that name in rd->pools: a running one (not removed), or any,
 * a removed one still draining included. NULL if none. */
struct pool	*pool_find(struct recyclerd *, const char *name);
struct pool	*pool_find_any(struct recyclerd *, const char *name);
/* The oldest process in that slot of a pool of that name, or NULL. */
struct worker	*pool_slot_oldest(struct recyclerd *, const char *name,
		    unsigned long slot);

/*
 * Create a pool for section cfg of snap and start its workers, with the
 * sockets listen_open() opened for it (the pool takes them; *sockets is
 * left empty). Opening every pool's sockets first is what lets a start or
 * a reload be refused whole.
 */
struct pool	*pool_new(struct recyclerd *, struct config *snap,
		    const struct pool_config *cfg, struct listen_set *sockets);
void		 pool_free(struct pool *);
/* Run a new configuration with its sockets (taken, as by pool_new):
 * recycles the workers one by one if the way they run changed. */
void		 pool_apply(struct pool *, struct config *snap,
		    const struct pool_config *cfg, struct listen_set *sockets);
/* Drain every worker and forget the pool once they are gone. */
void		 pool_remove(struct pool *);

/* Control commands. */
void		 pool_start(struct pool *);
void		 pool_stop(struct pool *);
void		 pool_scale(struct pool *, unsigned int n);
/* Recycle one slot (slot >= 0) or every worker (-1), gracefully. Returns
 * the number of workers marked, or -1 if slot has no worker. */
int		 pool_recycle(struct pool *, int slot, enum reason);

/* Daemon shutdown: drain all within shutdown_timeout; kill_all: now. */
void		 pool_shutdown(struct pool *);
void		 pool_kill_all(struct pool *);

/*
 * The reconciliation asked for since the last loop turn, if any: spawns,
 * recycles, drains. Called by the daemon once per loop iteration (an
 * ev_prepare), never from inside a pool's own callbacks.
 */
void		 pool_run_deferred(struct pool *);

bool		 pool_is_empty(const struct pool *);
/* max_recycling in force (auto resolved). */
unsigned int	 pool_max_recycling(const struct pool *);
/* Every wanted slot has been tried once (ready, or failed). */
bool		 pool_is_settled(const struct pool *);
unsigned int	 pool_count(const struct pool *, int state);
const char	*pool_state_name(enum pool_state);

/*
 * For template.c, the pool module's second file (spawn = template): what
 * its workers are started with; a worker became ready, or exited (frees
 * it); its template is ready (forks can start); a template failed
 * (counted toward rapid_fail; false when the pool just failed).
 */
struct worker_host pool_host(struct pool *);
void		 pool_worker_ready(struct pool *, struct worker *);
void		 pool_worker_exited(struct pool *, struct worker *, int status);
void		 pool_template_ready(struct pool *);
bool		 pool_template_failure(struct pool *, struct worker *);

/* A worker's notify message (main.c reads the notify socket). */
void		 pool_worker_notify(struct pool *, struct worker *, char *buf,
		    size_t len);

#endif /* RECYCLERD_POOL_H */
