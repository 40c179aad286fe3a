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

/* Lowest memory limit in force (recycle or kill), 0 if none: below it a
 * statm reading is enough and smaps_rollup need not be read. */
uint64_t policy_prefilter(const struct policy_limits *);

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

#endif /* RECYCLERD_POLICY_H */
