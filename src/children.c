/* SPDX-License-Identifier: MIT */
/*
 * children.c - recycle_scope = children: each direct child of a prefork
 * master sampled, limited and drained on its own (see children.h).
 *
 * Cost per sample of a master: one read of its children file (kept
 * descriptors), a sort of the pids, and per child one statm pread on a
 * kept descriptor (plus its own children file while it has any, and
 * smaps_rollup only at or above the lowest limit). Opening a probe, a
 * pidfd and checking the parent happen once per child, when it is first
 * seen.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "children.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "orphans.h"
#include "recyclerd.h"
#include "units.h"
#include "worker.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434	/* Linux 5.3; older headers */
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

/* The pids of one listing: the daemon has one thread. */
static pid_t	 kids[CHILDREN_MAX + 1];

static struct ev_loop *
child_loop(const struct child *c)
{
	return c->set->master->rd->loop;
}

static int
child_signal(struct child *c, int sig)
{
	if (c->pidfd != -1)
		return (int)syscall(SYS_pidfd_send_signal, c->pidfd, sig,
		    NULL, 0);
	return kill(c->pid, sig);
}

/* Its process and every descendant, SIGKILL. */
static void
child_kill_tree(struct child *c)
{
	pid_t pids[1024];
	size_t i, n;

	/* Descendants first, by number (as a worker's tree without a
	 * cgroup), then the child itself through its pidfd. */
	n = memprobe_tree(c->pid, pids, nitems(pids));
	for (i = 1; i < n; i++)
		(void)kill(pids[i], SIGKILL);
	(void)child_signal(c, SIGKILL);
}

/* Parent of pid from /proc/PID/stat, 0 if unreadable. */
static pid_t
proc_ppid(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2, "%*c %d",
	    &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

static bool child_exited(struct child *);
static void pool_children_kick(struct children_pool *, double);

static void
child_exit_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct child *c = io->data;

	(void)revents;
	ev_io_stop(loop, io);
	if (child_exited(c))
		pool_children_kick(c->set->cp, mono_now());
}

static void
child_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct child *c = t->data;
	struct worker *w = c->set->master;

	(void)loop;
	(void)revents;
	if (c->state != CS_DRAINING)
		return;
	wlog(w, LOG_WARNING, "child %d still running %.1fs after %s, killing "
	    "its process tree", (int)c->pid, mono_now() - c->drain_mono,
	    units_signal_name(w->cfg->child_drain_signal));
	c->state = CS_KILLED;
	child_kill_tree(c);
}

/*
 * A new child of the master: a pidfd first, then its probe, then its
 * parent checked, so that both name the master's child and not a process
 * that took a reaped child's number meanwhile. NULL if it is gone.
 */
static struct child *
child_new(struct children *set, pid_t pid, double now)
{
	struct worker *w = set->master;
	struct child *c = xcalloc(1, sizeof *c);

	c->set = set;
	c->pid = pid;
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if ((c->probe = memprobe_new(pid)) == NULL ||
	    proc_ppid(pid) != w->pid) {
		memprobe_free(c->probe);
		if (c->pidfd != -1)
			close(c->pidfd);
		free(c);
		return NULL;
	}
	c->seen_mono = now;
	c->jitter_u = (double)random() / ((double)RAND_MAX + 1.0);
	growth_init(&c->growth);
	ev_init(&c->timer, child_timer_cb);
	c->timer.data = c;
	ev_io_init(&c->exit_io, child_exit_cb, c->pidfd, EV_READ);
	c->exit_io.data = c;
	if (c->pidfd != -1) {
		(void)fcntl(c->pidfd, F_SETFD, FD_CLOEXEC);
		ev_io_start(w->rd->loop, &c->exit_io);
	}
	wlog(w, LOG_DEBUG, "child %d seen", (int)pid);
	return c;
}

static void
child_free(struct child *c)
{
	struct ev_loop *loop = child_loop(c);

	ev_timer_stop(loop, &c->timer);
	ev_io_stop(loop, &c->exit_io);
	if (c->pidfd != -1)
		close(c->pidfd);
	memprobe_free(c->probe);
	free(c);
}

/* The pool's limits for one child, jittered with its own draw. */
static void
child_limits(struct child *c)
{
	const struct pool_config *cfg = c->set->master->cfg;
	struct policy_limits l = {
		.recycle_memory = policy_jitter(cfg->recycle_memory,
		    cfg->jitter_ppm, c->jitter_u),
		.kill_memory = cfg->kill_memory,
		.max_lifetime_ms = policy_jitter(cfg->max_lifetime_ms,
		    cfg->jitter_ppm, c->jitter_u),
		.recycle_samples = cfg->recycle_samples ?
		    cfg->recycle_samples : 1,
	};

	policy_split_scope(&l, NULL, &c->limits);
}

static const char *
child_metric(const struct child *c)
{
	enum mem_metric m = c->set->master->cfg->memory_metric;

	return c->memory_exact ? mem_metric_name(m) : "rss";
}

/*
 * Its subtree, as worker_sample() does a worker's: statm first, and
 * smaps_rollup only when rss is at or above the lowest limit that still
 * matters (uss <= pss <= rss). -1 when it is gone.
 */
static int
child_sample(struct child *c, double now)
{
	const struct worker *w = c->set->master;
	enum mem_metric metric = w->cfg->memory_metric;
	bool smaps = metric == METRIC_PSS || metric == METRIC_USS;
	uint64_t floor_bytes;
	struct mem_sample s;

	floor_bytes = c->recycle_reason != REASON_NONE ?
	    policy_condemned_floor(&c->limits, 0) :
	    policy_prefilter(&c->limits);
	if (memprobe_sample(c->probe, smaps && w->rd->no_prefilter,
	    &s) == -1 ||
	    (metric_needs_smaps(metric, &s, floor_bytes) &&
	    memprobe_sample(c->probe, true, &s) == -1))
		return -1;
	c->memory = metric_value(metric, &s, &c->memory_exact);
	c->last = s;
	growth_add(&c->growth, now, 0, s.rss);
	if (c->memory_exact && c->memory > c->peak)
		c->peak = c->memory;
	return 0;
}

static void
child_event(struct child *c, const char *kind, enum reason why,
    const char *detail, double now)
{
	struct worker *w = c->set->master;
	struct event e = { .slot = (int)w->slot, .pid = w->pid,
		.child = c->pid, .kind = kind, .reason = why, .status = -1,
		.uptime_s = child_uptime(c, now), .memory = c->recycle_at,
		.peak = c->peak };

	snprintf(e.pool, sizeof e.pool, "%s", w->pool_name);
	snprintf(e.detail, sizeof e.detail, "%s", detail);
	events_add(w->rd->events, &e);
}

/* Children of the pool draining now, and how many may. */
static unsigned int
pool_children_draining(const struct children_pool *cp, unsigned int *total)
{
	const struct children *set;
	unsigned int n = 0;

	*total = 0;
	TAILQ_FOREACH(set, &cp->sets, entry) {
		n += set->draining;
		*total += set->n;
	}
	return n;
}

static void
child_drain(struct child *c, double now)
{
	struct worker *w = c->set->master;
	int sig = w->cfg->child_drain_signal;

	c->state = CS_DRAINING;
	c->drain_mono = now;
	c->set->draining++;
	c->set->cp->recycles[c->recycle_reason]++;
	if (child_signal(c, sig) == -1 && errno != ESRCH)
		wlog(w, LOG_WARNING, "child %d: unable to send %s: %s",
		    (int)c->pid, units_signal_name(sig), strerror(errno));
	ev_timer_set(&c->timer, (double)w->cfg->drain_timeout_ms / 1000.0,
	    0.0);
	ev_timer_start(w->rd->loop, &c->timer);
}

/* Waiting children of the pool drain, oldest decision first, while
 * max_recycling allows. */
static void
pool_children_kick(struct children_pool *cp, double now)
{
	struct children *set;
	struct child *best;
	unsigned int draining, total, max, i;

	if (TAILQ_EMPTY(&cp->sets))
		return;
	draining = pool_children_draining(cp, &total);
	max = policy_max_recycling(
	    TAILQ_FIRST(&cp->sets)->master->cfg->max_recycling, total,
	    cp->ncpu);
	while (draining < max) {
		best = NULL;
		TAILQ_FOREACH(set, &cp->sets, entry) {
			if (set->master->state != WS_READY)
				continue;
			for (i = 0; i < set->n; i++) {
				struct child *c = set->v[i];

				if (c->state == CS_SERVING &&
				    c->recycle_reason != REASON_NONE &&
				    (best == NULL ||
				    c->recycle_mono < best->recycle_mono))
					best = c;
			}
		}
		if (best == NULL)
			return;
		child_drain(best, now);
		draining++;
	}
}

/*
 * Exited (its pidfd said so, or the master reaped it): record it. True
 * when that freed a drain place (the caller then kicks the pool, not
 * from inside a walk of the set).
 */
static bool
child_exited(struct child *c)
{
	double now = mono_now();
	char detail[256];
	bool was_stopping = c->state == CS_DRAINING || c->state == CS_KILLED;

	if (c->state == CS_EXITED)
		return false;
	ev_timer_stop(child_loop(c), &c->timer);
	if (was_stopping) {
		c->set->draining--;
		snprintf(detail, sizeof detail, "child %d: %s%s", (int)c->pid,
		    c->recycle_detail, c->state == CS_KILLED ?
		    "; killed after drain_timeout" : "");
		child_event(c, c->recycle_reason == REASON_KILL_MEMORY ?
		    "kill" : "recycle", c->recycle_reason, detail, now);
		wlog(c->set->master, LOG_INFO, "child %d exited after %s "
		    "(%s), %.3fs after the signal", (int)c->pid,
		    c->state == CS_KILLED ? "SIGKILL" : units_signal_name(
		    c->set->master->cfg->child_drain_signal),
		    reason_name(c->recycle_reason), now - c->drain_mono);
	}
	c->state = CS_EXITED;
	return was_stopping;
}

static void
child_condemn(struct child *c, enum reason why, const char *detail,
    double now)
{
	struct worker *w = c->set->master;
	struct log_ctx ctx = worker_ctx(w);
	char up[32];

	c->recycle_reason = why;
	c->recycle_at = c->memory;
	c->recycle_mono = now;
	snprintf(c->recycle_detail, sizeof c->recycle_detail, "%s", detail);
	ctx.reason = reason_name(why);
	ctx.memory = c->memory;
	units_format_duration((uint64_t)(child_uptime(c, now) * 1000), up,
	    sizeof up);
	log_ctx(LOG_NOTICE, &ctx, "recycling child %d (%s): %s, uptime %s",
	    (int)c->pid, reason_name(why), detail, up);
}

static void
child_kill(struct child *c, double now)
{
	struct worker *w = c->set->master;
	struct log_ctx ctx = worker_ctx(w);
	char a[16], b[16], detail[160];

	snprintf(detail, sizeof detail, "%s %s > kill_memory %s",
	    child_metric(c), units_format_size(c->memory, a, sizeof a),
	    units_format_size(c->limits.kill_memory, b, sizeof b));
	ctx.reason = reason_name(REASON_KILL_MEMORY);
	ctx.memory = c->memory;
	log_ctx(LOG_WARNING, &ctx, "killing child %d (kill_memory): %s",
	    (int)c->pid, detail);
	if (c->state == CS_SERVING)
		c->set->draining++;
	c->recycle_reason = REASON_KILL_MEMORY;
	c->recycle_at = c->memory;
	snprintf(c->recycle_detail, sizeof c->recycle_detail, "%s", detail);
	c->drain_mono = now;
	c->state = CS_KILLED;
	ev_timer_stop(w->rd->loop, &c->timer);
	c->set->cp->recycles[REASON_KILL_MEMORY]++;
	child_kill_tree(c);
}

/* Over recycle_memory at its first sample: the threshold is below what a
 * fresh child of this server takes. Its pool's error, not a recycle. */
static void
child_baseline(struct child *c, double now)
{
	struct worker *w = c->set->master;
	char a[16], b[16], detail[160];

	c->baseline = true;
	units_format_size(c->memory, a, sizeof a);
	units_format_size(c->limits.recycle_memory, b, sizeof b);
	wlog(w, LOG_ERR, "configuration error: child %d: %s %s >= "
	    "recycle_memory %s at its first sample: the threshold is below "
	    "a new child's baseline; not recycling it for memory",
	    (int)c->pid, child_metric(c), a, b);
	snprintf(detail, sizeof detail, "child %d: recycle_memory %s is "
	    "below the baseline %s", (int)c->pid, b, a);
	c->recycle_at = c->memory;
	child_event(c, "config", REASON_MEMORY, detail, now);
	c->recycle_at = 0;
}

static void
child_check(struct child *c, double now)
{
	struct policy_input in = { .has_memory = true };
	enum reason why = REASON_NONE;
	enum verdict v;
	char detail[160], a[16], b[16];

	if (c->state != CS_SERVING)
		return;
	child_limits(c);
	if (child_sample(c, now) == -1)
		return;			/* gone: its exit is on its way */
	if (c->recycle_reason != REASON_NONE) {
		/* Waiting for a drain place: only kill_memory matters. */
		if (c->limits.kill_memory != 0 && c->memory_exact &&
		    c->memory > c->limits.kill_memory)
			child_kill(c, now);
		return;
	}
	in.memory = c->memory;
	in.uptime_ms = (uint64_t)(child_uptime(c, now) * 1000);
	in.first_sample = c->samples++ == 0;
	if (c->baseline)
		in.has_memory = c->limits.kill_memory != 0 &&
		    c->memory > c->limits.kill_memory;
	v = policy_check(&c->limits, &in, &c->over_count, &why);
	switch (v) {
	case VERDICT_KEEP:
		break;
	case VERDICT_BASELINE:
		child_baseline(c, now);
		break;
	case VERDICT_KILL:
		child_kill(c, now);
		break;
	case VERDICT_RECYCLE:
		if (why == REASON_MEMORY)
			snprintf(detail, sizeof detail, "%s %s > %s for %u "
			    "samples", child_metric(c),
			    units_format_size(c->memory, a, sizeof a),
			    units_format_size(c->limits.recycle_memory, b,
			    sizeof b), c->limits.recycle_samples);
		else
			snprintf(detail, sizeof detail, "uptime %s >= %s",
			    units_format_duration(in.uptime_ms, a, sizeof a),
			    units_format_duration(c->limits.max_lifetime_ms,
			    b, sizeof b));
		child_condemn(c, why, detail, now);
		break;
	}
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Merge the sorted listing into the sorted set: known children kept, new
 * ones added, the ones the master reaped dropped (an exit not yet
 * recorded is recorded now: without pidfds this is how it is seen).
 */
static void
children_merge(struct children *set, const pid_t *pids, size_t n,
    double now)
{
	struct child **v = xcalloc(n + 1, sizeof *v), *c;
	size_t i = 0, j = 0, k = 0;

	while (i < set->n || j < n) {
		if (j == n || (i < set->n && set->v[i]->pid < pids[j])) {
			c = set->v[i++];
			(void)child_exited(c);
			child_free(c);
		} else if (i == set->n || pids[j] < set->v[i]->pid) {
			if ((c = child_new(set, pids[j], now)) != NULL)
				v[k++] = c;
			j++;
		} else {
			v[k++] = set->v[i++];
			j++;
		}
	}
	free(set->v);
	set->v = v;
	set->n = (unsigned int)k;
}

void
children_check(struct worker *w, struct children_pool *cp, double now)
{
	struct children *set = w->children;
	size_t n, i;

	if (w->probe == NULL)
		return;
	if (set == NULL) {
		set = w->children = xcalloc(1, sizeof *set);
		set->master = w;
		set->cp = cp;
		TAILQ_INSERT_TAIL(&cp->sets, set, entry);
	}
	kids[0] = w->pid;
	n = memprobe_root_children(w->probe, kids + 1, CHILDREN_MAX);
	/* What orphans.c learns from a tree walk: a child re-parented to
	 * the daemon (its master died) is then adopted at once. */
	orphans_walked(w->rd->orphans, &w->orph, kids, n + 1);
	qsort(kids + 1, n, sizeof *kids, cmp_pid);
	children_merge(set, kids + 1, n, now);
	for (i = 0; i < set->n && w->state == WS_READY; i++)
		child_check(set->v[i], now);
	pool_children_kick(cp, now);
}

uint64_t
children_memory(const struct children *set)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; set != NULL && i < set->n; i++)
		if (set->v[i]->state != CS_EXITED)
			sum += set->v[i]->last.rss > set->v[i]->memory ?
			    set->v[i]->last.rss : set->v[i]->memory;
	return sum;
}

void
children_free(struct children *set)
{
	unsigned int i;

	if (set == NULL)
		return;
	TAILQ_REMOVE(&set->cp->sets, set, entry);
	for (i = 0; i < set->n; i++)
		child_free(set->v[i]);
	free(set->v);
	free(set);
}
