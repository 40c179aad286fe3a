/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - Prometheus text exposition of pools, workers and counters.
 *
 * Every family is written whole (HELP, TYPE, then all its samples) because
 * the format forbids interleaving families. Counters with a label set known
 * in advance (reasons, states) are written with their zeros, so a rate()
 * has a series to start from before the first event. Per-worker series
 * carry the pid: a recycled worker is a new series, as it is a new process.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "events.h"
#include "growth.h"
#include "memprobe.h"
#include "notify.h"
#include "policy.h"
#include "pool.h"
#include "recyclerd.h"
#include "util.h"
#include "worker.h"

void
metrics_put_label(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{pool="P"` -- the caller adds its labels, then closes with pool_end. */
static void
pool_begin(FILE *f, const char *name, const struct pool *p)
{
	fprintf(f, "%s{pool=\"", name);
	metrics_put_label(f, p->name);
	fputc('"', f);
}

static void
worker_begin(FILE *f, const char *name, const struct worker *w)
{
	pool_begin(f, name, w->pool);
	fprintf(f, ",slot=\"%u\",pid=\"%ld\"", w->slot, (long)w->pid);
}

static void
put_u64(FILE *f, uint64_t v)
{
	fprintf(f, "} %" PRIu64 "\n", v);
}

static void
put_double(FILE *f, double v)
{
	fprintf(f, "} %.3f\n", v);
}

static void
render_daemon(FILE *f, struct recyclerd *rd, double now)
{
	size_t n = events_count(rd->events);
	const struct event *last = n ? events_get(rd->events, n - 1) : NULL;
	int k;

	family(f, "recyclerd_build_info", "gauge",
	    "Version of the running daemon (always 1).");
	fprintf(f, "recyclerd_build_info{version=\"");
	metrics_put_label(f, PACKAGE_VERSION);
	fprintf(f, "\"} 1\n");

	family(f, "recyclerd_uptime_seconds", "gauge",
	    "Seconds since the daemon started.");
	fprintf(f, "recyclerd_uptime_seconds %.3f\n", now - rd->started_mono);

	family(f, "recyclerd_daemon_rss_bytes", "gauge",
	    "Resident set size of the daemon itself.");
	fprintf(f, "recyclerd_daemon_rss_bytes %" PRIu64 "\n",
	    memprobe_self_rss());

	family(f, "recyclerd_probe_reads_total", "counter",
	    "Memory readings made: statm and smaps_rollup files of /proc, "
	    "cgroup counters.");
	for (k = 0; k < PROBE__COUNT; k++)
		fprintf(f, "recyclerd_probe_reads_total{kind=\"%s\"} %" PRIu64
		    "\n", memprobe_kind_name((enum probe_kind)k),
		    memprobe_reads((enum probe_kind)k));

	/* The ring forgets old events; their sequence number does not. */
	family(f, "recyclerd_events_total", "counter",
	    "Worker and pool events recorded since the daemon started.");
	fprintf(f, "recyclerd_events_total %" PRIu64 "\n",
	    last ? last->seq : 0);

	family(f, "recyclerd_notify_dropped_total", "counter",
	    "Notify datagrams dropped because their sender was neither root "
	    "nor the user of the socket they came in on.");
	fprintf(f, "recyclerd_notify_dropped_total %llu\n",
	    notify_dropped_uid(rd->notify));
}

static void
render_pools(FILE *f, struct recyclerd *rd)
{
	static const enum pool_state pstates[] = { POOL_RUNNING, POOL_STOPPED,
		POOL_FAILED, POOL_REMOVED };
	static const enum worker_state wstates[] = { WS_STARTING, WS_READY,
		WS_DRAINING, WS_KILLED };
	struct pool *p;
	size_t i;
	int r;

	family(f, "recyclerd_pool_state", "gauge",
	    "State of the pool: 1 for the current state, 0 for the others.");
	LIST_FOREACH(p, &rd->pools, entry)
		for (i = 0; i < nitems(pstates); i++) {
			pool_begin(f, "recyclerd_pool_state", p);
			fprintf(f, ",state=\"%s\"", pool_state_name(pstates[i]));
			put_u64(f, p->state == pstates[i]);
		}

	family(f, "recyclerd_pool_desired_workers", "gauge",
	    "Workers the pool wants (configured or scaled).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_pool_desired_workers", p);
		put_u64(f, p->desired);
	}

	family(f, "recyclerd_workers", "gauge",
	    "Worker processes of the pool by state.");
	LIST_FOREACH(p, &rd->pools, entry)
		for (i = 0; i < nitems(wstates); i++) {
			pool_begin(f, "recyclerd_workers", p);
			fprintf(f, ",state=\"%s\"", worker_state_name(wstates[i]));
			put_u64(f, pool_count(p, (int)wstates[i]));
		}

	family(f, "recyclerd_recycles_total", "counter",
	    "Workers recycled (replaced on purpose), by reason.");
	LIST_FOREACH(p, &rd->pools, entry)
		for (r = 0; r < REASON__COUNT; r++) {
			if (!reason_is_recycle((enum reason)r))
				continue;
			pool_begin(f, "recyclerd_recycles_total", p);
			fprintf(f, ",reason=\"%s\"", reason_name((enum reason)r));
			put_u64(f, p->recycles[r]);
		}

	family(f, "recyclerd_crashes_total", "counter",
	    "Workers that exited on their own (failed starts included).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_crashes_total", p);
		put_u64(f, p->crashes);
	}

	family(f, "recyclerd_failed_starts_total", "counter",
	    "Workers that exited or timed out before becoming ready.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_failed_starts_total", p);
		put_u64(f, p->failed_starts);
	}

	family(f, "recyclerd_spawn_failures_total", "counter",
	    "Worker starts that failed before a process existed (fork).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_spawn_failures_total", p);
		put_u64(f, p->spawn_failures);
	}

	family(f, "recyclerd_oom_kills_total", "counter",
	    "Workers killed by the kernel OOM killer.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_oom_kills_total", p);
		put_u64(f, p->recycles[REASON_OOM]);
	}

	family(f, "recyclerd_spawns_total", "counter",
	    "Worker processes started.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_spawns_total", p);
		put_u64(f, p->spawns);
	}

	family(f, "recyclerd_overshoot_drains_total", "counter",
	    "Workers drained at once, without overlap, past max_overshoot.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_overshoot_drains_total", p);
		put_u64(f, p->overshoot_drains);
	}

	family(f, "recyclerd_prespawns_total", "counter",
	    "Replacements started early: a crossing was predicted (prespawn).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_prespawns_total", p);
		put_u64(f, p->prespawns);
	}

	family(f, "recyclerd_pool_start_seconds", "gauge",
	    "Median time from spawn to ready of the pool's last processes.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_pool_start_seconds", p);
		put_double(f, p->start_median);
	}

	family(f, "recyclerd_recycle_overshoot_ratio", "histogram",
	    "Peak memory / recycle_memory of workers recycled for memory, "
	    "when they began to drain.");
	LIST_FOREACH(p, &rd->pools, entry) {
		uint64_t cum = 0;

		for (i = 0; i < OVERSHOOT_BUCKETS; i++) {
			cum += p->overshoot_hist[i];
			pool_begin(f, "recyclerd_recycle_overshoot_ratio_bucket", p);
			if (isinf(pool_overshoot_bounds[i]))
				fprintf(f, ",le=\"+Inf\"");
			else
				fprintf(f, ",le=\"%g\"", pool_overshoot_bounds[i]);
			put_u64(f, cum);
		}
		pool_begin(f, "recyclerd_recycle_overshoot_ratio_sum", p);
		put_double(f, p->overshoot_sum);
		pool_begin(f, "recyclerd_recycle_overshoot_ratio_count", p);
		put_u64(f, p->overshoot_count);
	}

	family(f, "recyclerd_pending_recycles", "gauge",
	    "Workers waiting for a recycle place (max_recycling).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_pending_recycles", p);
		put_u64(f, heap_size(&p->pending));
	}
}

static void
render_memory(FILE *f, const struct worker *w)
{
	static const char *const names[] = { "rss", "pss", "uss", "memory" };
	uint64_t v[4] = { w->last.rss, w->last.pss, w->last.uss, w->memory };
	bool known[4] = { w->last.rss != 0, w->last.has_smaps,
		w->last.has_smaps, w->memory != 0 };
	size_t i;

	for (i = 0; i < nitems(names); i++) {
		if (!known[i])
			continue;
		worker_begin(f, "recyclerd_worker_memory_bytes", w);
		fprintf(f, ",metric=\"%s\"", names[i]);
		put_u64(f, v[i]);
	}
}

static void
render_workers(FILE *f, struct recyclerd *rd, double now)
{
	const struct worker *w;
	struct pool *p;
	double g;

	family(f, "recyclerd_worker_memory_bytes", "gauge",
	    "Memory of the worker's process tree at its last sample; "
	    "metric=\"memory\" is the value the pool's memory_metric compares "
	    "(an RSS upper bound while recyclerd_worker_memory_exact is 0).");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry)
			render_memory(f, w);

	/* Below the lowest threshold a pss/uss pool reads only statm. */
	family(f, "recyclerd_worker_memory_exact", "gauge",
	    "1 when metric=\"memory\" was read in the pool's memory_metric "
	    "at the last sample, 0 when it is the RSS upper bound.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			if (w->memory == 0)
				continue;
			worker_begin(f, "recyclerd_worker_memory_exact", w);
			put_u64(f, w->memory_exact);
		}

	family(f, "recyclerd_worker_peak_bytes", "gauge",
	    "Highest exact reading of the worker in the pool's metric; absent "
	    "until there is one.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			if (w->peak == 0)
				continue;
			worker_begin(f, "recyclerd_worker_peak_bytes", w);
			put_u64(f, w->peak);
		}

	family(f, "recyclerd_worker_recycle_threshold_bytes", "gauge",
	    "recycle_memory in force for the worker (after jitter).");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			if (w->limits.recycle_memory == 0)
				continue;
			worker_begin(f,
			    "recyclerd_worker_recycle_threshold_bytes", w);
			put_u64(f, w->limits.recycle_memory);
		}

	family(f, "recyclerd_worker_tasks", "gauge",
	    "Tasks the worker reported done (TASKS=).");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			worker_begin(f, "recyclerd_worker_tasks", w);
			put_u64(f, w->tasks);
		}

	family(f, "recyclerd_worker_uptime_seconds", "gauge",
	    "Seconds since the worker was started.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			worker_begin(f, "recyclerd_worker_uptime_seconds", w);
			put_double(f, worker_uptime(w, now));
		}

	family(f, "recyclerd_worker_growth_bytes_per_second", "gauge",
	    "Memory growth of the worker over its recent samples "
	    "(least squares); absent until there are enough samples.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			if (growth_per_sec(&w->growth, &g) == -1 || !isfinite(g))
				continue;
			worker_begin(f,
			    "recyclerd_worker_growth_bytes_per_second", w);
			put_double(f, g);
		}

	family(f, "recyclerd_worker_growth_bytes_per_task", "gauge",
	    "Memory growth of the worker per completed task; absent until "
	    "tasks are reported.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			if (growth_per_task(&w->growth, &g) == -1 ||
			    !isfinite(g))
				continue;
			worker_begin(f,
			    "recyclerd_worker_growth_bytes_per_task", w);
			put_double(f, g);
		}
}

int
metrics_render(struct recyclerd *rd, char **out)
{
	double now = mono_now();
	size_t len;
	FILE *f;

	if ((f = open_memstream(out, &len)) == NULL)
		return -1;
	render_daemon(f, rd, now);
	render_pools(f, rd);
	render_workers(f, rd, now);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		errno = ENOMEM;
		return -1;
	}
	return 0;
}
