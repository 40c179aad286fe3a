/* SPDX-License-Identifier: MIT */
/*
 * policy.c - pure decisions about one worker: keep it, recycle it or kill
 * it, and why. Also the arithmetic of jitter, backoff and rapid failure.
 */
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

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

void
policy_split_scope(const struct policy_limits *l,
    struct policy_limits *master, struct policy_limits *child)
{
	struct policy_limits m = *l, c = *l;

	m.recycle_memory = 0;
	m.max_lifetime_ms = 0;
	c.max_tasks = 0;
	if (master != NULL)
		*master = m;
	if (child != NULL)
		*child = c;
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

uint64_t
policy_overshoot_bound(uint64_t recycle_memory, uint32_t overshoot_ppm)
{
	if (recycle_memory == 0 || overshoot_ppm == 0)
		return 0;
	return recycle_memory + (uint64_t)((double)recycle_memory *
	    ((double)overshoot_ppm / 1e6));
}

uint64_t
policy_condemned_floor(const struct policy_limits *lim, uint32_t overshoot_ppm)
{
	uint64_t low = policy_overshoot_bound(lim->recycle_memory,
	    overshoot_ppm);

	if (lim->kill_memory != 0 && (low == 0 || lim->kill_memory < low))
		low = lim->kill_memory;
	return low;
}

double
policy_urgency(uint64_t memory, uint64_t limit, double growth_per_s,
    double start_s)
{
	double predicted = (double)memory;

	if (limit == 0)
		return 0.0;
	if (growth_per_s > 0.0 && start_s > 0.0)
		predicted += growth_per_s * start_s;
	return predicted / (double)limit;
}

bool
policy_predict_cross(uint64_t memory, uint64_t limit, double growth_per_s,
    double horizon_s)
{
	if (limit == 0 || growth_per_s <= 0.0 || horizon_s <= 0.0 ||
	    memory >= limit || memory < limit / 4)
		return false;
	return (double)(limit - memory) / growth_per_s <= horizon_s;
}

double
policy_start_horizon(const double *ring, size_t ring_size, size_t n,
    size_t next)
{
	double h = 0.0;
	size_t i, k = n < PRESPAWN_RECENT ? n : PRESPAWN_RECENT;

	for (i = 1; i <= k; i++) {
		double v = ring[(next + ring_size - i) % ring_size];

		if (v > h)
			h = v;
	}
	return h;
}

unsigned int
policy_max_recycling(unsigned int configured, unsigned int workers,
    unsigned int ncpu)
{
	unsigned int n = (workers + 1) / 2, cap = ncpu > 2 ? ncpu : 2;

	if (configured != 0)
		return configured;
	if (n > cap)
		n = cap;
	return n > 0 ? n : 1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
policy_median(double *v, size_t n)
{
	if (n == 0)
		return 0.0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static const char *const exit_kind_names[] = {
	[EXIT_RECYCLE] = "recycle",
	[EXIT_KILL] = "kill",
	[EXIT_EXIT] = "exit",
	[EXIT_OOM] = "oom",
	[EXIT_CRASH] = "crash",
};

const char *
exit_kind_name(enum exit_kind k)
{
	if ((unsigned int)k >= sizeof exit_kind_names / sizeof *exit_kind_names)
		return "?";
	return exit_kind_names[k];
}

struct exit_class
policy_classify_exit(const struct exit_facts *f)
{
	struct exit_class c = { .kind = EXIT_CRASH, .reason = REASON_CRASH };

	c.reset_failures = f->ready && f->uptime_ms >= f->min_uptime_ms;
	if (f->stopping && !f->failed) {
		c.reason = f->stop_reason;
		if (f->stop_reason == REASON_KILL_MEMORY) {
			c.kind = EXIT_KILL;
		} else if (reason_is_recycle(f->stop_reason)) {
			c.kind = EXIT_RECYCLE;
			c.count_recycle = true;
		} else {
			c.kind = EXIT_EXIT;
		}
		return c;
	}
	/* SIGKILL alone is no proof: the group's OOM kill count must have
	 * grown too, and not because we killed it ourselves. */
	if (!f->stopping && f->oom_kill && WIFSIGNALED(f->status) &&
	    WTERMSIG(f->status) == SIGKILL) {
		c.kind = EXIT_OOM;
		c.reason = REASON_OOM;
		c.oom = true;
		c.count_recycle = true;
		c.failure = c.failed_start = !f->ready;
		return c;
	}
	c.failure = true;
	c.failed_start = !f->ready;
	/* A failed start says which: ready_timeout, else the exec. */
	if (f->failed && f->stop_reason != REASON_NONE)
		c.reason = f->stop_reason;
	return c;
}
