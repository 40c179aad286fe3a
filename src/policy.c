/* SPDX-License-Identifier: MIT */
/*
 * policy.c - pure decisions about one worker: keep it, recycle it or kill
 * it, and why. Also the arithmetic of jitter, backoff and rapid failure.
 */
#include <stddef.h>

#include "policy.h"

static const char *const reason_names[REASON__COUNT] = {
	[REASON_NONE] = "none",
	[REASON_MEMORY] = "memory",
	[REASON_KILL_MEMORY] = "kill_memory",
	[REASON_TASKS] = "tasks",
	[REASON_LIFETIME] = "lifetime",
	[REASON_REQUEST] = "request",
	[REASON_STOPPING] = "stopping",
	[REASON_MANUAL] = "manual",
	[REASON_RELOAD] = "reload",
	[REASON_SCALE] = "scale",
	[REASON_SHUTDOWN] = "shutdown",
	[REASON_WATCHDOG] = "watchdog",
	[REASON_POOL_MEMORY] = "pool_memory",
	[REASON_OOM] = "oom",
	[REASON_READY_TIMEOUT] = "ready_timeout",
	[REASON_CRASH] = "crash",
};

const char *
reason_name(enum reason r)
{
	if ((unsigned int)r >= REASON__COUNT)
		return "?";
	return reason_names[r];
}

bool
reason_is_recycle(enum reason r)
{
	switch (r) {
	case REASON_MEMORY:
	case REASON_KILL_MEMORY:
	case REASON_TASKS:
	case REASON_LIFETIME:
	case REASON_REQUEST:
	case REASON_STOPPING:
	case REASON_MANUAL:
	case REASON_RELOAD:
	case REASON_WATCHDOG:
	case REASON_POOL_MEMORY:
		return true;
	default:
		return false;
	}
}

enum verdict
policy_check(const struct policy_limits *lim, const struct policy_input *in,
    unsigned int *over_count, enum reason *why)
{
	bool over;

	if (in->has_memory && lim->kill_memory != 0 &&
	    in->memory > lim->kill_memory) {
		*why = REASON_KILL_MEMORY;
		return VERDICT_KILL;
	}

	over = in->has_memory && lim->recycle_memory != 0 &&
	    in->memory > lim->recycle_memory;
	if (!over)
		*over_count = 0;
	else if (in->first_sample) {
		/* Already over at its first look: recycling cannot help. */
		*over_count = 0;
		*why = REASON_MEMORY;
		return VERDICT_BASELINE;
	} else if (++*over_count >= lim->recycle_samples) {
		*why = REASON_MEMORY;
		return VERDICT_RECYCLE;
	}

	if (lim->max_tasks != 0 && in->tasks >= lim->max_tasks) {
		*why = REASON_TASKS;
		return VERDICT_RECYCLE;
	}
	if (lim->max_lifetime_ms != 0 && in->uptime_ms >= lim->max_lifetime_ms) {
		*why = REASON_LIFETIME;
		return VERDICT_RECYCLE;
	}
	return VERDICT_KEEP;
}

uint64_t
policy_prefilter(const struct policy_limits *lim)
{
	uint64_t low = lim->recycle_memory;

	if (lim->kill_memory != 0 && (low == 0 || lim->kill_memory < low))
		low = lim->kill_memory;
	return low;
}

uint64_t
policy_jitter(uint64_t value, uint32_t jitter_ppm, double u)
{
	uint64_t cut;

	if (value == 0 || jitter_ppm == 0 || u <= 0.0)
		return value;
	if (u >= 1.0)
		u = 0.999999;
	/* Truncation of a positive double is its floor. */
	cut = (uint64_t)((double)value * ((double)jitter_ppm / 1e6) * u);
	if (cut >= value)
		return 1;
	return value - cut;
}

uint64_t
policy_backoff(uint64_t initial_ms, unsigned int failures, uint64_t max_ms)
{
	uint64_t d = initial_ms;
	unsigned int i;

	if (max_ms < initial_ms)
		max_ms = initial_ms;
	for (i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	return d < max_ms ? d : max_ms;
}

bool
policy_rapid_fail(const double *times, size_t n, double now, double window_s,
    unsigned int limit)
{
	unsigned int recent = 0;
	size_t i;

	if (limit == 0)
		return false;
	for (i = 0; i < n; i++)
		if (times[i] > now - window_s && times[i] <= now)
			recent++;
	return recent > limit;
}
