/* SPDX-License-Identifier: MIT */
/*
 * worker.h - one worker process: its state, its watchers, its readings.
 *
 * A worker owns its pid, its ev_child, its one timer (ready_timeout while
 * starting, the drain deadline while draining), its memory probe and its
 * recent samples. It does not decide when to start, recycle or respawn:
 * pool.c does, through the worker_ops it gives, and pool.c frees workers
 * (its exited callback).
 *
 * The struct is visible to pool.c and control.c, which read its fields;
 * only worker.c and pool.c write them.
 */
#ifndef RECYCLERD_WORKER_H
#define RECYCLERD_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <ev.h>

#include "config.h"
#include "growth.h"
#include "heap.h"
#include "log.h"
#include "memprobe.h"
#include "orphans.h"
#include "policy.h"
#include "util.h"

struct cgroup;
struct config;
struct listen_set;
struct pool;
struct pool_config;
struct recyclerd;
struct worker;

enum worker_state {
	WS_STARTING,		/* forked, not yet ready */
	WS_READY,		/* serving, sampled */
	WS_DRAINING,		/* drain_signal sent, waiting for its exit */
	WS_KILLED,		/* SIGKILL sent to its tree */
};
#define WS__COUNT	(WS_KILLED + 1)

/* Bytes of a STATUS= text kept (after text_sanitize()): a datagram holds
 * NOTIFY_MAX, and invalid bytes grow threefold into U+FFFD. */
#define STATUS_MAX	4096

/*
 * What a worker tells its owner. pool.c gives these at spawn: the worker
 * calls no function of the pool module, so dependencies point one way,
 * pool -> worker.
 */
struct worker_ops {
	/* w went from prev to its current state. */
	void	(*state)(struct worker *, enum worker_state prev);
	/* It was reaped: the owner records the exit and frees w. */
	void	(*exited)(struct worker *, int status);
	/* ready_timeout passed while it was starting. */
	void	(*timeout)(struct worker *);
	/* A cgroup threshold event fired, or a confirming sample is due. */
	void	(*event)(struct worker *);
};

/* What a worker is started with besides its pool section: its pool's. */
struct worker_host {
	struct recyclerd *rd;
	struct pool	*pool;		/* the owner, opaque here */
	const char	*name;		/* the pool's; outlives its workers */
	const struct worker_ops *ops;
	char *const	*env;		/* base environment */
	const gid_t	*groups;	/* supplementary groups of user */
	size_t		 ngroups;
	const struct listen_set *sockets; /* held for every worker */
	struct cgroup	*cg;		/* the pool's group, or NULL */
};

struct worker {
	TAILQ_ENTRY(worker) entry;
	TAILQ_ENTRY(worker) slot_entry;	/* its slot's members */
	struct heap_node pending_node;	/* waiting for a recycle place */
	bool		 pending;
	struct pool	*pool;		/* owner; outlives the worker */
	struct recyclerd *rd;
	const char	*pool_name;	/* its pool's name */
	const struct worker_ops *ops;	/* its pool's */
	unsigned int	 slot;		/* RECYCLERD_WORKER, stable */
	unsigned int	 gen;		/* process number within the pool */

	/* The process. */
	pid_t		 pid;
	int		 pidfd;		/* pins the process; -1 if no pidfds */
	bool		 reaped;	/* pid may be another's from now on */
	unsigned long long reaped_ticks; /* when, in /proc start-time ticks */
	enum worker_state state;
	double		 spawn_mono;
	double		 ready_mono;	/* 0 until ready */
	double		 state_mono;
	struct config	*snap;		/* snapshot it was started with (ref) */
	const struct pool_config *cfg;	/* its pool section in snap */

	/* Limits in force, jittered once per worker with jitter_u. */
	double		 jitter_u;
	struct policy_limits limits;

	/* What it told us and what we measured. */
	uint64_t	 tasks;		/* TASKS= */
	char		*status;	/* STATUS= text (text_sanitize()), or NULL */
	struct ratelimit log_limit;	/* warnings its messages cause */
	struct memprobe	*probe;
	struct mem_sample last;		/* last /proc reading */
	uint64_t	 cgroup_bytes;	/* last cgroup reading */
	uint64_t	 memory;	/* last value in the pool's metric */
	bool		 memory_exact;	/* false: bounded by rss only */
	uint64_t	 memory_est;	/* memory when exact; else, for
					 * SMAPS_GAP_LEAD_S after the gap below
					 * was measured, rss - gap: what
					 * predictions use; 0 unknown */
	uint64_t	 peak;		/* highest exact value seen, bytes */
	uint64_t	 peak_rss;	/* highest rss seen, bytes */
	unsigned int	 samples;	/* samples since ready */
	struct mem_sample exact;	/* last worker_probe_exact() reading */
	double		 exact_mono;	/* when; 0 never */
	unsigned int	 over_count;	/* consecutive samples over */
	struct growth	 growth;
	uint64_t	 smaps_lead;	/* read smaps this far below the bound
					 * that matters, to predict in time:
					 * prespawn's crossing, or
					 * max_overshoot's next sample */
	uint64_t	 smaps_gap;	/* rss - the metric at the last
					 * smaps_rollup read (pss, uss) */
	double		 gap_mono;	/* when; 0 never */
	double		 baseline_hold_until;	/* no memory recycle before */
	double		 watchdog_mono;	/* last WATCHDOG=1 */

	/* Recycling. */
	enum reason	 recycle_reason; /* pending or in progress; NONE */
	char		 recycle_detail[160];
	double		 recycle_mono;	/* when the recycle was asked for */
	uint64_t	 recycle_memory_at; /* memory then (or at an overshoot
					 * drain): the event's figure */
	bool		 overshot;	/* drained at once: max_overshoot */
	/* prespawn: a replacement asked for ahead of a predicted crossing,
	 * recycle_reason still NONE (nothing is decided); standby: it is
	 * ready and waits for the crossing, since standby_mono; missed: a
	 * standby waited in vain once, no more predictions for this one. */
	bool		 prespawned;
	bool		 standby;
	bool		 prespawn_missed;
	double		 standby_mono;
	struct worker	*replaced_by;	/* replacement starting for us */
	struct worker	*replaces;	/* the worker we will replace */
	enum reason	 stop_reason;	/* why drained or killed */
	bool		 failed;	/* failed start (exec, ready_timeout) */
	/* spawn = template (template.c): this is the pool's template, not
	 * in its lists; or a worker asked of a template, pid 0 until the
	 * template answers PID=. */
	bool		 is_template;
	bool		 forking;
	bool		 stale_template; /* forked by a retired template:
					 * recycled once ready */

	struct cgroup	*cg;		/* its group, or NULL */
	bool		 high_armed;	/* memory.high set as the event source */
	uint64_t	 oom_kills;	/* kernel OOM kills seen in its group */
	ev_child	 child;
	ev_timer	 timer;
	ev_io		 cg_event;	/* threshold events (cgroup) */
	int		 exec_fd;	/* exec status pipe until it spoke */
	ev_io		 exec_io;

	/* Its processes re-parented to the daemon, and the descendants its
	 * last tree walk saw (orphans.c's). */
	struct orphan_owner orph;

	/* recycle_scope = children: its children (children.c), or NULL. */
	struct children	*children;
};

/*
 * Start a worker in slot for the pool described by host, with its pool
 * section cfg of snap. Returns NULL if no process could be created
 * (logged); a worker whose exec failed is returned with failed set: its
 * ev_child reports the exit.
 */
struct worker	*worker_spawn(const struct worker_host *, unsigned int slot,
		    unsigned int gen, struct config *snap,
		    const struct pool_config *cfg);
/*
 * spawn = template. worker_spawn_template() starts the pool's command as
 * the template of generation gen, with tmpl_fd passed after the sockets as
 * RECYCLERD_TEMPLATE_FD (the caller keeps its own copy). worker_forking()
 * makes a worker for slot, with its cgroup, whose process the template has
 * yet to fork (pid 0, forking set); worker_forked() gives it its pid (our
 * child, unreaped) and starts its watchers as worker_spawn() does.
 */
struct worker	*worker_spawn_template(const struct worker_host *,
		    unsigned int gen, struct config *snap,
		    const struct pool_config *cfg, int tmpl_fd);
struct worker	*worker_forking(const struct worker_host *, unsigned int slot,
		    unsigned int gen, struct config *snap,
		    const struct pool_config *cfg);
void		 worker_forked(struct worker *, pid_t pid);
/* Stop its watchers and free it; the process must be reaped. */
void		 worker_free(struct worker *);

void		 worker_set_ready(struct worker *);
/* Send drain_signal and arm the kill deadline (timeout_ms). */
void		 worker_drain(struct worker *, enum reason, uint64_t timeout_ms);
/* SIGKILL its whole tree now (its orphans included). */
void		 worker_kill(struct worker *, enum reason);
/* SIGKILL what is left of its process group and its orphans after it was
 * reaped. */
void		 worker_kill_leftovers(struct worker *);
/* Watch the cgroup threshold for the lowest limit in force (at ready, and
 * when limits change); disarm when it is being recycled. */
void		 worker_arm_events(struct worker *);
void		 worker_disarm_events(struct worker *);
/* Sample again in 10 ms (after an event, to confirm quickly). */
void		 worker_confirm_soon(struct worker *);
/* Recompute the jittered limits from cfg (at spawn and on reload). */
void		 worker_set_limits(struct worker *, const struct pool_config *);

/*
 * From one /proc sample s to a figure in metric, for workers and for the
 * children of a prefork master (children.c). pss and uss need smaps_rollup,
 * a page-table walk worth it only near a limit (uss <= pss <= rss): true
 * when s lacks it and rss is at or above floor (0: no limit), so the caller
 * samples again with smaps. Then the figure: pss or uss when s has them
 * (exact), else rss (exact for the other metrics, a bound for pss and uss).
 */
static inline bool
metric_needs_smaps(enum mem_metric m, const struct mem_sample *s,
    uint64_t floor)
{
	return (m == METRIC_PSS || m == METRIC_USS) && !s->has_smaps &&
	    floor != 0 && s->rss >= floor;
}

static inline uint64_t
metric_value(enum mem_metric m, const struct mem_sample *s, bool *exact)
{
	bool smaps_metric = m == METRIC_PSS || m == METRIC_USS;

	*exact = !smaps_metric || s->has_smaps;
	if (smaps_metric && s->has_smaps)
		return m == METRIC_PSS ? s->pss : s->uss;
	return s->rss;
}

/*
 * Take one sample: statm of the tree (its orphans as extra roots; the walk
 * also tells orphans.c who its descendants are), smaps_rollup when the metric needs it
 * and rss is at or above the lowest limit (or force_smaps), the cgroup
 * counter for cgroup metrics. Updates memory, peak, growth. -1 when the
 * process is gone (its exit is on its way).
 */
int		 worker_sample(struct worker *, double now, bool force_smaps);

/*
 * An exact reading (statm and smaps_rollup of its tree, its orphans
 * included) for "status --exact", into *s only: the sampler's state
 * (memory, peak, growth, samples) is left alone. A reading less than
 * EXACT_REUSE seconds old is reused rather than taken again, so operators
 * asking in a loop cost one page-table walk per worker per second at most.
 * -1 when the process is gone.
 */
#define EXACT_REUSE	1.0
/* Seconds the rss - pss (or uss) gap of the last smaps read is trusted
 * below a bound (worker_sample): rss - gap stands for the metric, and
 * smaps_rollup is read only within a sample's growth of the bound. In the
 * lead a prediction needs, where only an estimate is asked for, the gap
 * is trusted SMAPS_GAP_LEAD_S: a worker's shared part changes slowly. */
#define SMAPS_GAP_TRUST_S	1.0
#define SMAPS_GAP_LEAD_S	5.0
int		 worker_probe_exact(struct worker *, double now,
		    struct mem_sample *s);

double		 worker_uptime(const struct worker *, double now);
const char	*worker_state_name(enum worker_state);
struct log_ctx	 worker_ctx(const struct worker *);

#define wlog(w, prio, ...) do {						\
	struct log_ctx wlog_ctx_ = worker_ctx(w);			\
	log_ctx((prio), &wlog_ctx_, __VA_ARGS__);			\
} while (0)

#endif /* RECYCLERD_WORKER_H */
