/* SPDX-License-Identifier: MIT */
/*
 * policy.h - pure decisions: keep, recycle or kill a worker, and why;
 * jittered limits; crash backoff; rapid-failure detection.
 *
 * No I/O, no clock, no libev: every input is an argument, so each decision
 * is unit-tested without a process.
 */
#ifndef RECYCLERD_POLICY_H
#define RECYCLERD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a worker is stopped; names are what logs, events and metrics show. */
enum reason {
	REASON_NONE,
	REASON_MEMORY,		/* recycle_memory held recycle_samples times */
	REASON_KILL_MEMORY,	/* kill_memory: killed at once */
	REASON_TASKS,		/* max_tasks */
	REASON_LIFETIME,	/* max_lifetime */
	REASON_REQUEST,		/* the worker sent RECYCLE=1 */
	REASON_STOPPING,	/* the worker sent STOPPING=1 on its own */
	REASON_MANUAL,		/* recyclerctl recycle */
	REASON_RELOAD,		/* configuration changed */
	REASON_SCALE,		/* pool scaled down or stopped */
	REASON_SHUTDOWN,	/* daemon stopping */
	REASON_WATCHDOG,	/* no WATCHDOG=1 in time */
	REASON_POOL_MEMORY,	/* pool_recycle_memory: largest worker */
	REASON_OOM,		/* killed by the kernel OOM killer */
	REASON_READY_TIMEOUT,	/* no READY=1 within ready_timeout */
	REASON_CRASH,		/* exited on its own */
	REASON__COUNT
};

const char *reason_name(enum reason);
/* True for reasons that count as recycles (not crashes, not shutdowns). */
bool	reason_is_recycle(enum reason);

enum verdict {
	VERDICT_KEEP,
	VERDICT_RECYCLE,	/* graceful, overlapped */
	VERDICT_KILL,		/* SIGKILL the tree now */
	VERDICT_BASELINE,	/* over recycle_memory at its first sample:
				 * the threshold is below the baseline */
};

/* Limits in force for one worker (already jittered); 0 = off. */
struct policy_limits {
	uint64_t	 recycle_memory;	/* bytes */
	uint64_t	 kill_memory;		/* bytes */
	uint64_t	 max_tasks;
	uint64_t	 max_lifetime_ms;
	unsigned int	 recycle_samples;	/* >= 1 */
};

/* What is known of the worker at one sample. */
struct policy_input {
	uint64_t	 memory;	/* bytes, in the pool's metric */
	bool		 has_memory;	/* false: metric not read this time */
	uint64_t	 tasks;
	uint64_t	 uptime_ms;	/* since spawn */
	bool		 first_sample;	/* first sample since it became ready */
};

/*
 * Decide for one sample. *over_count is the run of consecutive samples over
 * recycle_memory so far; it is updated. *why gets the reason of a verdict
 * other than KEEP.
 */
enum verdict policy_check(const struct policy_limits *,
	    const struct policy_input *, unsigned int *over_count,
	    enum reason *why);

/*
 * recycle_scope = children: the pool's limits l split into the master's
 * and a child's (either may be NULL). The children, each on its own, get
 * recycle_memory, kill_memory, max_lifetime and recycle_samples; a child
 * sends no TASKS=. The master keeps kill_memory (measured on its own
 * process) and max_tasks; it is never recycled for memory or lifetime,
 * which would restart the whole server.
 */
void	policy_split_scope(const struct policy_limits *l,
	    struct policy_limits *master, struct policy_limits *child);

/* Lowest memory limit in force (recycle or kill), 0 if none: below it a
 * statm reading is enough and smaps_rollup need not be read. */
uint64_t policy_prefilter(const struct policy_limits *);

/* ---- recycling under pressure ---- */

/* recycle_memory plus max_overshoot (parts per million of it); 0 when
 * either is off. Past it, a worker waiting for its recycle drains at once. */
uint64_t policy_overshoot_bound(uint64_t recycle_memory, uint32_t overshoot_ppm);

/*
 * Lowest limit that still matters for a worker already condemned (waiting
 * for a recycle place or for its replacement): kill_memory and the
 * overshoot bound, 0 if neither. Below it statm is enough.
 */
uint64_t policy_condemned_floor(const struct policy_limits *,
	    uint32_t overshoot_ppm);

/*
 * Urgency of a waiting recycle: the memory, as a fraction of its limit,
 * that the worker is predicted to reach by the time a replacement started
 * now would be ready (start_s at growth_per_s). Higher goes first. 0 for a
 * worker without a memory limit.
 */
double	policy_urgency(uint64_t memory, uint64_t limit, double growth_per_s,
	    double start_s);

/*
 * Prespawn: true when a worker at memory, growing by growth_per_s, is
 * predicted to reach limit within horizon_s, and is at least a quarter of
 * the way there (the growth of a start-up, from nothing to a baseline, is
 * no trend).
 */
bool	policy_predict_cross(uint64_t memory, uint64_t limit,
	    double growth_per_s, double horizon_s);

/* max_recycling = auto (0): half the workers, rounded up, at most the
 * CPUs (or 2); at least 1. Other values as they are. */
unsigned int policy_max_recycling(unsigned int configured,
	    unsigned int workers, unsigned int ncpu);

/*
 * Prespawn's horizon: how long a replacement started now will take to be
 * ready, from the pool's recent start times (ring[0..n), newest at
 * ring[(next - 1) % ring_size]): the slowest of the last PRESPAWN_RECENT,
 * since under load a replacement starts slower than the pool's first,
 * quiet starts, and being early costs less than being late. 0 when n == 0.
 */
#define PRESPAWN_RECENT	4
/* How much further prespawn looks than the slowest recent start: under
 * load the next start is often slower still, and a replacement ready
 * early only stands by (serving) until the crossing, while one ready late
 * lets the worker grow past its limit. */
#define PRESPAWN_MARGIN	1.5
double	policy_start_horizon(const double *ring, size_t ring_size, size_t n,
	    size_t next);

/* Median of v[0..n) (sorts v); 0 when n == 0. */
double	policy_median(double *v, size_t n);

/*
 * value lowered by up to jitter_ppm parts per million, by the fraction u in
 * [0, 1): value - floor(value * jitter * u). Never below 1 when value >= 1.
 */
uint64_t policy_jitter(uint64_t value, uint32_t jitter_ppm, double u);

/* Delay before restart number `failures` (1 = first): initial_ms doubled
 * per failure, at most max_ms. */
uint64_t policy_backoff(uint64_t initial_ms, unsigned int failures,
	    uint64_t max_ms);

/*
 * Rapid failure: true when more than `limit` of the failure times (seconds,
 * any order) fall within the last window_s before now. limit 0 = never.
 */
bool	policy_rapid_fail(const double *times, size_t n, double now,
	    double window_s, unsigned int limit);

/* ---- exits ---- */

/* What an exit was: the kind of its event, and how logs tell it. */
enum exit_kind {
	EXIT_RECYCLE,		/* stopped for a recycle reason */
	EXIT_KILL,		/* killed over kill_memory */
	EXIT_EXIT,		/* stopped for another reason (scale, shutdown) */
	EXIT_OOM,		/* killed by the kernel OOM killer */
	EXIT_CRASH,		/* exited on its own, or failed to start */
};

const char *exit_kind_name(enum exit_kind);	/* the event's kind */

/* What is known of a worker when its exit is reaped. */
struct exit_facts {
	int		 status;	/* wait status */
	enum reason	 stop_reason;	/* why we stopped it, REASON_NONE */
	bool		 stopping;	/* draining or killed: exit asked for */
	bool		 failed;	/* exec failed, or no READY=1 in time */
	bool		 ready;		/* it became ready */
	bool		 oom_kill;	/* its group counted a new OOM kill */
	uint64_t	 uptime_ms;	/* since spawn */
	uint64_t	 min_uptime_ms;
};

struct exit_class {
	enum exit_kind	 kind;
	enum reason	 reason;	/* of the event and the log lines */
	bool		 oom;		/* the OOM killer's work: say so */
	bool		 failure;	/* counts as a crash: backoff, rapid_fail */
	bool		 failed_start;	/* a failure before it was ready */
	bool		 count_recycle;	/* counts in the recycles of reason */
	bool		 reset_failures; /* served min_uptime: a failure now
					  * starts the slot's backoff over */
};

/*
 * Classify one exit. An exit we asked for is a recycle, a kill or a plain
 * exit, unless the start had failed. An OOM kill we did not ask for is a
 * recycle of sorts once the worker was ready, a failure before (a start
 * that needs more than memory_max loops). Anything else is a crash.
 */
struct exit_class policy_classify_exit(const struct exit_facts *);

#endif /* RECYCLERD_POLICY_H */
