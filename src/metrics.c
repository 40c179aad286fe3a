/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - Prometheus text exposition of pools, workers and counters.
 *
 * Every family is written whole (HELP, TYPE, then all its samples) because
 * the format forbids interleaving families. Counters with a label set known
 * in advance (reasons, states) are written with their zeros, so a rate()
 * has a series to start from before the first event. Per-worker series
 * are keyed by {pool,slot}, the slot's newest process: a recycle resets
 * them rather than starting new series, so their number stays bounded by
 * the pools' sizes. The pid is in recyclerd_worker_info only.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
	fprintf(f, ",slot=\"%u\"", w->slot);
}

/* Wall-clock time of a monotonic instant, for start-time gauges. */
static double
real_of_mono(double mono, double now)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9 - (now - mono);
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

/* Fields 14, 15 (utime, stime) and 22 (starttime) of /proc/self/stat. */
static int
self_stat(double *cpu, double *start)
{
	char buf[1024], *p;
	unsigned long long ut, st, t0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	if (hz <= 0 || (f = fopen("/proc/self/stat", "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'. */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
	    "%*d %*d %*d %*d %llu", &ut, &st, &t0) != 3)
		return -1;
	*cpu = (double)(ut + st) / (double)hz;
	*start = (double)t0 / (double)hz;
	return 0;
}

static double
boot_time(void)
{
	char line[256];
	unsigned long long bt = 0;
	FILE *f;

	if ((f = fopen("/proc/stat", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	fclose(f);
	return (double)bt;
}

static long
open_fds(void)
{
	struct dirent *de;
	long n = 0;
	DIR *d;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;		/* the directory's own fd */
}

/* The standard process_* families of Prometheus clients, for the daemon. */
static void
render_process(FILE *f)
{
	double cpu, start;
	struct rlimit rl;
	long fds;

	family(f, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %" PRIu64 "\n",
	    memprobe_self_rss());
	if (self_stat(&cpu, &start) == 0) {
		family(f, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.");
		fprintf(f, "process_cpu_seconds_total %.2f\n", cpu);
		family(f, "process_start_time_seconds", "gauge",
		    "Start time of the process since unix epoch in seconds.");
		fprintf(f, "process_start_time_seconds %.2f\n",
		    boot_time() + start);
	}
	if ((fds = open_fds()) >= 0) {
		family(f, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		fprintf(f, "process_open_fds %ld\n", fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		family(f, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		fprintf(f, "process_max_fds %llu\n",
		    (unsigned long long)rl.rlim_cur);
	}
}

static void
render_daemon(FILE *f, struct recyclerd *rd)
{
	size_t n = events_count(rd->events);
	const struct event *last = n ? events_get(rd->events, n - 1) : NULL;
	int k;

	family(f, "recyclerd_build_info", "gauge",
	    "Version of the running daemon (always 1).");
	fprintf(f, "recyclerd_build_info{version=\"");
	metrics_put_label(f, PACKAGE_VERSION);
	fprintf(f, "\"} 1\n");

	render_process(f);

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

	family(f, "recyclerd_pool_info", "gauge",
	    "The pool's memory_metric: the series of "
	    "recyclerd_worker_memory_bytes its thresholds compare (always 1).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_pool_info", p);
		fprintf(f, ",memory_metric=\"%s\"",
		    mem_metric_name(p->cfg->memory_metric));
		put_u64(f, 1);
	}

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

	/* Every exit once, by one reason: sum() over reasons is the number
	 * of processes that ended. */
	family(f, "recyclerd_worker_exits_total", "counter",
	    "Worker processes that ended, by reason: a recycle reason, scale, "
	    "shutdown, crash, oom, or failed_start (never became ready).");
	LIST_FOREACH(p, &rd->pools, entry)
		for (r = 0; r <= EXIT_FAILED_START; r++) {
			if (r == REASON_NONE || r == REASON_READY_TIMEOUT)
				continue;	/* counted as crash, failed_start */
			pool_begin(f, "recyclerd_worker_exits_total", p);
			fprintf(f, ",reason=\"%s\"", r == EXIT_FAILED_START ?
			    "failed_start" : reason_name((enum reason)r));
			put_u64(f, p->exits[r]);
		}

	/* recycle_scope = children: the children drained (or killed) by
	 * the daemon; the master replaced them, so they are no exits of
	 * workers. Only the reasons a child can have, only those pools. */
	family(f, "recyclerd_child_recycles_total", "counter",
	    "Children of a prefork master (recycle_scope = children) drained "
	    "or killed, by reason: memory, kill_memory, lifetime.");
	LIST_FOREACH(p, &rd->pools, entry) {
		static const enum reason child_reasons[] = {
			REASON_MEMORY, REASON_KILL_MEMORY, REASON_LIFETIME,
		};

		if (p->cfg->recycle_scope != SCOPE_CHILDREN)
			continue;
		for (i = 0; i < nitems(child_reasons); i++) {
			pool_begin(f, "recyclerd_child_recycles_total", p);
			fprintf(f, ",reason=\"%s\"",
			    reason_name(child_reasons[i]));
			put_u64(f, p->children.recycles[child_reasons[i]]);
		}
	}

	family(f, "recyclerd_spawn_failures_total", "counter",
	    "Worker starts that failed before a process existed (fork).");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_spawn_failures_total", p);
		put_u64(f, p->spawn_failures);
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

	family(f, "recyclerd_prespawn_misses_total", "counter",
	    "Replacements started early that were drained unused: the "
	    "predicted crossing did not come.");
	LIST_FOREACH(p, &rd->pools, entry) {
		pool_begin(f, "recyclerd_prespawn_misses_total", p);
		put_u64(f, p->prespawn_misses);
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

/*
 * The memory series of a worker, one per metric read: rss always, pss and
 * uss when smaps was read, the cgroup's counter for a cgroup pool. The
 * value the pool's thresholds compare is the series named by
 * recyclerd_pool_info's memory_metric (rss while the prefilter holds).
 */
static void
render_memory(FILE *f, const struct worker *w)
{
	enum mem_metric m = w->cfg->memory_metric;
	const char *names[] = { "rss", "pss", "uss", NULL };
	uint64_t v[4] = { w->last.rss, w->last.pss, w->last.uss, w->memory };
	bool known[4] = { w->last.rss != 0, w->last.has_smaps,
		w->last.has_smaps, false };
	size_t i;

	if ((m == METRIC_CGROUP || m == METRIC_CGROUP_ANON) && w->memory != 0) {
		names[3] = mem_metric_name(m);
		known[3] = true;
	}
	for (i = 0; i < nitems(names); i++) {
		if (!known[i])
			continue;
		worker_begin(f, "recyclerd_worker_memory_bytes", w);
		fprintf(f, ",metric=\"%s\"", names[i]);
		put_u64(f, v[i]);
	}
}

/* A per-worker family: false when the worker has no value yet. */
struct wgauge {
	const char	*name;
	const char	*type;
	const char	*help;
	bool		(*get)(const struct worker *, double, double *);
	int		 prec;		/* digits after the point */
};

static bool
g_exact(const struct worker *w, double now, double *v)
{
	(void)now;
	*v = w->memory_exact;
	return w->memory != 0;
}

static bool
g_peak(const struct worker *w, double now, double *v)
{
	(void)now;
	*v = (double)w->peak;
	return w->peak != 0;
}

static bool
g_threshold(const struct worker *w, double now, double *v)
{
	(void)now;
	*v = (double)w->limits.recycle_memory;
	return w->limits.recycle_memory != 0;
}

static bool
g_tasks(const struct worker *w, double now, double *v)
{
	(void)now;
	*v = (double)w->tasks;
	return true;
}

static bool
g_start(const struct worker *w, double now, double *v)
{
	*v = real_of_mono(w->spawn_mono, now);
	return true;
}

static bool
g_ready(const struct worker *w, double now, double *v)
{
	*v = real_of_mono(w->ready_mono, now);
	return w->ready_mono != 0;
}

static bool
g_growth_s(const struct worker *w, double now, double *v)
{
	(void)now;
	return growth_per_sec(&w->growth, v) == 0 && isfinite(*v);
}

static bool
g_growth_task(const struct worker *w, double now, double *v)
{
	(void)now;
	return growth_per_task(&w->growth, v) == 0 && isfinite(*v);
}

static const struct wgauge wgauges[] = {
	{ "recyclerd_worker_memory_exact", "gauge",
	  "1 when the pool's memory_metric was read at the last sample, 0 "
	  "when the thresholds compared the RSS upper bound.", g_exact, 0 },
	{ "recyclerd_worker_peak_bytes", "gauge",
	  "Highest exact reading of the worker in the pool's metric; absent "
	  "until there is one.", g_peak, 0 },
	{ "recyclerd_worker_recycle_threshold_bytes", "gauge",
	  "recycle_memory in force for the worker (after jitter).",
	  g_threshold, 0 },
	{ "recyclerd_worker_tasks_total", "counter",
	  "Tasks the worker reported done (TASKS=); resets with the process.",
	  g_tasks, 0 },
	{ "recyclerd_worker_start_time_seconds", "gauge",
	  "When the worker's process was started, since the Unix epoch.",
	  g_start, 3 },
	{ "recyclerd_worker_ready_time_seconds", "gauge",
	  "When the worker became ready, since the Unix epoch; absent while "
	  "it starts.", g_ready, 3 },
	{ "recyclerd_worker_growth_bytes_per_second", "gauge",
	  "Memory growth of the worker over its recent samples "
	  "(least squares); absent until there are enough samples.",
	  g_growth_s, 3 },
	{ "recyclerd_worker_growth_bytes_per_task", "gauge",
	  "Memory growth of the worker per completed task; absent until "
	  "tasks are reported.", g_growth_task, 3 },
};

/* The slot's newest process stands for the slot: older members are
 * draining and are counted in recyclerd_workers and _info only. */
static bool
slot_newest(const struct worker *w)
{
	return TAILQ_NEXT(w, slot_entry) == NULL;
}

static void
render_workers(FILE *f, struct recyclerd *rd, double now)
{
	const struct worker *w;
	struct pool *p;
	size_t i;
	double v;

	family(f, "recyclerd_worker_info", "gauge",
	    "Every worker process: its pid and state (always 1).");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry) {
			worker_begin(f, "recyclerd_worker_info", w);
			fprintf(f, ",pid=\"%ld\",state=\"%s\"", (long)w->pid,
			    worker_state_name(w->state));
			put_u64(f, 1);
		}

	family(f, "recyclerd_worker_memory_bytes", "gauge",
	    "Memory of the worker's process tree at its last sample, by "
	    "metric read.");
	LIST_FOREACH(p, &rd->pools, entry)
		TAILQ_FOREACH(w, &p->workers, entry)
			if (slot_newest(w))
				render_memory(f, w);

	for (i = 0; i < nitems(wgauges); i++) {
		family(f, wgauges[i].name, wgauges[i].type, wgauges[i].help);
		LIST_FOREACH(p, &rd->pools, entry)
			TAILQ_FOREACH(w, &p->workers, entry) {
				if (!slot_newest(w) || !wgauges[i].get(w, now, &v))
					continue;
				worker_begin(f, wgauges[i].name, w);
				fprintf(f, "} %.*f\n", wgauges[i].prec, v);
			}
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
	render_daemon(f, rd);
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
