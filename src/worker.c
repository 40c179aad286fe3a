/* SPDX-License-Identifier: MIT */
/*
 * worker.c - start, watch, sample, drain and kill one worker process.
 *
 * Every state change goes through worker_set_state(). The ev_child watcher
 * is started right after the fork, before control returns to the loop, so
 * no exit can be missed; libev reaps every child (workers, and orphans that
 * reach us as subreaper), so nothing else here calls waitpid().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "cgroup.h"
#include "config.h"
#include "guard.h"
#include "listen.h"
#include "orphans.h"
#include "output.h"
#include "recyclerd.h"
#include "spawn.h"
#include "spawner.h"
#include "units.h"
#include "worker.h"

#define TREE_MAX	4096

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434	/* Linux 5.3; older headers */
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

/* ---- signals that reach our processes only ---- */

/* A descriptor that names pid's process for good, or -1 (no pidfds). */
static int
pid_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int
pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/*
 * Is the worker's process still ours to wait for (alive or a zombie)? Then
 * its pid, and the process group of the same number, cannot be another's.
 * WNOWAIT leaves the reaping to libev; nothing else in the daemon reaps,
 * and it does so only in the loop, so the answer holds until we return to
 * it.
 */
static bool
worker_unreaped(const struct worker *w)
{
	siginfo_t si;

	if (w->reaped)
		return false;
	return waitid(P_PID, (id_t)w->pid, &si,
	    WEXITED | WNOHANG | WNOWAIT) == 0;
}

/*
 * Signal the worker's own process: through its pidfd, which the kernel
 * never points at another process, else with kill() only while it is known
 * unreaped. -1 with errno ESRCH when it is gone.
 */
static int
worker_signal(struct worker *w, int sig)
{
	if (w->pidfd != -1)
		return pidfd_signal(w->pidfd, sig);
	if (w->pid == 0 || !worker_unreaped(w)) {	/* 0: still forking */
		errno = ESRCH;
		return -1;
	}
	return kill(w->pid, sig);
}

/* Now, in the clock ticks of /proc/PID/stat's start times. */
static unsigned long long
boot_ticks(void)
{
	unsigned long long hz = (unsigned long long)sysconf(_SC_CLK_TCK);
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * hz +
	    (unsigned long long)ts.tv_nsec * hz / 1000000000ull;
}

/*
 * Session id and start time (clock ticks after boot) of pid, from
 * /proc/PID/stat; -1 if it is gone.
 */
static int
proc_sid_start(pid_t pid, pid_t *sid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	int fd, si;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After the name: state ppid pgrp session ... field 22 starttime. */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1, " %*c %*d %*d "
	    "%d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
	    "%llu", &si, start) != 2)
		return -1;
	*sid = si;
	return 0;
}

/*
 * After the reap, the number of its session and group is free once they
 * are empty, and may name a stranger's. A member of its session that
 * started before the worker was reaped proves the session never emptied
 * (no process joins a session; it can only be born in it), so that all of
 * its members are ours. Each is signalled through a pidfd opened before
 * its stat is read: a pid that changed hands in between is never
 * signalled. Without pidfds, nothing is signalled after the reap.
 */
static void
signal_reaped_session(struct worker *w, int sig)
{
	unsigned long long start;
	struct dirent *de;
	bool ours = false;
	pid_t pid, sid;
	int fds[64], fd;
	size_t n = 0, i;
	DIR *d;

	/*
	 * A scan of /proc costs in proportion to every process on the
	 * machine, once per exit: a shutdown of thousands of workers would be
	 * quadratic. A worker alone at its last sample, with no orphans, has
	 * nothing to scan for; a child it forked since then was re-parented
	 * to us when it died, and orphans.c takes it from there.
	 */
	if (w->samples > 0 && w->last.nprocs <= 1 && LIST_EMPTY(&w->orph.list))
		return;
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL && n < nitems(fds)) {
		if ((pid = (pid_t)strtol(de->d_name, NULL, 10)) <= 0 ||
		    proc_sid_start(pid, &sid, &start) == -1 || sid != w->pid)
			continue;
		/* Pinned first, then read again: the reading is of it. */
		if ((fd = pid_open(pid)) == -1)
			continue;
		if (proc_sid_start(pid, &sid, &start) == 0 && sid == w->pid) {
			ours |= start <= w->reaped_ticks;
			fds[n++] = fd;
		} else {
			close(fd);
		}
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		if (ours)
			(void)pidfd_signal(fds[i], sig);
		close(fds[i]);
	}
}

/* Its whole process group (it leads one); see signal_reaped_session(). */
static void
worker_signal_group(struct worker *w, int sig)
{
	if (w->pid == 0)
		return;			/* no process yet: no group */
	if (worker_unreaped(w)) {
		if (kill(-w->pid, sig) == -1 && errno != ESRCH)
			wlog(w, LOG_WARNING, "unable to kill process group: "
			    "%s", strerror(errno));
		return;
	}
	signal_reaped_session(w, sig);
}

static const char *const state_names[] = {
	[WS_STARTING] = "starting",
	[WS_READY] = "ready",
	[WS_DRAINING] = "draining",
	[WS_KILLED] = "killed",
};

const char *
worker_state_name(enum worker_state s)
{
	return state_names[s];
}

struct log_ctx
worker_ctx(const struct worker *w)
{
	return (struct log_ctx){ .pool = w->pool_name,
		.worker = w->is_template ? -1 : (int)w->slot, .pid = w->pid };
}

double
worker_uptime(const struct worker *w, double now)
{
	return now - w->spawn_mono;
}

static void
worker_set_state(struct worker *w, enum worker_state next)
{
	enum worker_state prev = w->state;

	wlog(w, LOG_DEBUG, "%s -> %s", state_names[prev], state_names[next]);
	w->state = next;
	w->state_mono = mono_now();
	w->orph.killed = next == WS_KILLED;
	w->ops->state(w, prev);
}

void
worker_set_limits(struct worker *w, const struct pool_config *cfg)
{
	struct policy_limits *l = &w->limits;

	l->recycle_memory = policy_jitter(cfg->recycle_memory, cfg->jitter_ppm,
	    w->jitter_u);
	l->kill_memory = cfg->kill_memory;
	l->max_tasks = policy_jitter(cfg->max_tasks, cfg->jitter_ppm,
	    w->jitter_u);
	l->max_lifetime_ms = policy_jitter(cfg->max_lifetime_ms,
	    cfg->jitter_ppm, w->jitter_u);
	l->recycle_samples = cfg->recycle_samples ? cfg->recycle_samples : 1;
	/* A prefork master: its children carry the limits (children.c). */
	if (cfg->recycle_scope == SCOPE_CHILDREN)
		policy_split_scope(l, l, NULL);
}

/*
 * The exec status pipe: EOF once the exec happened, or what failed. Called
 * when it is readable and, before an exit is recorded, to learn why.
 */
static void
worker_exec_status(struct worker *w)
{
	struct spawn_error se;

	if (w->exec_fd == -1 || spawn_status(w->exec_fd, &se) == 0)
		return;
	ev_io_stop(w->rd->loop, &w->exec_io);
	close(w->exec_fd);
	w->exec_fd = -1;
	if (se.err != 0) {
		wlog(w, LOG_ERR, "unable to start %s: %s: %s", w->cfg->argv[0],
		    se.step, strerror(se.err));
		w->failed = true;	/* it exits 127: ev_child reaps it */
	}
}

static void
worker_exec_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	worker_exec_status(io->data);
}

static void
worker_child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct worker *w = c->data;

	(void)revents;
	ev_child_stop(loop, c);
	ev_timer_stop(loop, &w->timer);
	w->reaped = true;		/* its pid is free from now on */
	w->reaped_ticks = boot_ticks();
	worker_exec_status(w);		/* a failed exec is no crash */
	w->ops->exited(w, c->rstatus);	/* frees w */
}

/* Every process of the tree, SIGKILL. */
static void
kill_tree(struct worker *w)
{
	pid_t pids[TREE_MAX];
	size_t i, n;

	/* Outside its session, perhaps outside its cgroup (found by
	 * environment): by pidfd, whatever the rest takes. */
	orphans_kill_owner(w->rd->orphans, &w->orph);
	if (w->cg != NULL && cgroup_kill(w->cg) == 0)
		return;
	if (w->pid == 0)
		return;			/* still forking: nothing to walk */
	n = memprobe_tree(w->pid, pids, TREE_MAX);
	worker_signal_group(w, SIGKILL);
	for (i = 0; i < n; i++)
		(void)kill(pids[i], SIGKILL);
}

static void
worker_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	switch (w->state) {
	case WS_STARTING:
		w->ops->timeout(w);
		break;
	case WS_DRAINING:
		wlog(w, LOG_WARNING, "still running %.1fs after %s, killing "
		    "its process tree", mono_now() - w->state_mono,
		    units_signal_name(w->cfg->drain_signal));
		worker_set_state(w, WS_KILLED);
		kill_tree(w);
		break;
	case WS_READY:
		/* A confirming sample after a threshold event. */
		w->ops->event(w);
		break;
	case WS_KILLED:
		break;
	}
}

static void
worker_cg_event_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker *w = io->data;

	(void)loop;
	(void)revents;
	if (cgroup_threshold_consume(w->cg))
		w->ops->event(w);
}

void
worker_arm_events(struct worker *w)
{
	struct ev_loop *loop = w->rd->loop;
	enum mem_metric metric = w->cfg->memory_metric;
	uint64_t bytes = policy_prefilter(&w->limits);
	bool use_high;
	int fd;

	if (w->cg == NULL)
		return;
	ev_io_stop(loop, &w->cg_event);
	/* memory.high doubles as the v2 event source, but it throttles a
	 * worker over it: only where the operator set no memory.high and the
	 * metric is the cgroup's own (so crossing it means recycling). */
	use_high = w->cfg->memory_high == 0 && w->recycle_reason == REASON_NONE &&
	    (metric == METRIC_CGROUP || metric == METRIC_CGROUP_ANON);
	if (w->recycle_reason != REASON_NONE)
		bytes = 0;
	if ((fd = cgroup_threshold_arm(w->cg, bytes, use_high)) == -1) {
		if (bytes != 0 && errno != 0)
			wlog(w, LOG_DEBUG, "no cgroup threshold events: %s",
			    strerror(errno));
		return;
	}
	w->high_armed = use_high;
	ev_io_init(&w->cg_event, worker_cg_event_cb, fd, EV_READ);
	w->cg_event.data = w;
	ev_io_start(loop, &w->cg_event);
}

void
worker_disarm_events(struct worker *w)
{
	if (w->cg == NULL)
		return;
	ev_io_stop(w->rd->loop, &w->cg_event);
	(void)cgroup_threshold_arm(w->cg, 0, false);
	if (w->high_armed) {
		/* Do not throttle it while it drains. */
		(void)cgroup_set_high(w->cg, w->cfg->memory_high);
		w->high_armed = false;
	}
}

void
worker_confirm_soon(struct worker *w)
{
	struct ev_loop *loop = w->rd->loop;

	if (w->state != WS_READY || ev_is_active(&w->timer))
		return;
	ev_timer_set(&w->timer, 0.010, 0.0);
	ev_timer_start(loop, &w->timer);
}

/*
 * The environment of one worker: the pool's base, then our variables.
 * Strings that the child completes with its pid are returned in pid_vars.
 */
static char **
worker_env(const struct worker *w, const struct worker_host *p,
    char *pid_vars[2], int tmpl_fd)
{
	const struct pool_config *cfg = w->cfg;
	size_t n = strv_len(p->env), i = 0, k;
	char **env = xcalloc(n + 8, sizeof *env);
	char *names;
	size_t len;

	for (k = 0; k < n; k++)
		env[i++] = xstrdup(p->env[k]);
	/* The template's descriptor follows the sockets (spawn_req.fds). */
	if (tmpl_fd != -1)
		xasprintf(&env[i++], "RECYCLERD_TEMPLATE_FD=%zu",
		    3 + p->sockets->n);
	else
		xasprintf(&env[i++], "RECYCLERD_WORKER=%u", w->slot);
	pid_vars[0] = pid_vars[1] = NULL;
	if (p->sockets->n > 0) {
		xasprintf(&env[i++], "LISTEN_FDS=%zu", p->sockets->n);
		xasprintf(&env[i], "LISTEN_PID=%16s", "");
		pid_vars[0] = env[i++];
		for (len = 0, k = 0; k < p->sockets->n; k++)
			len += strlen(p->sockets->names[k]) + 1;
		names = xmalloc(len + sizeof "LISTEN_FDNAMES=");
		strcpy(names, "LISTEN_FDNAMES=");
		for (k = 0; k < p->sockets->n; k++) {
			if (k > 0)
				strcat(names, ":");
			strcat(names, p->sockets->names[k]);
		}
		env[i++] = names;
	}
	if (cfg->watchdog_ms != 0) {
		xasprintf(&env[i++], "WATCHDOG_USEC=%llu",
		    (unsigned long long)cfg->watchdog_ms * 1000);
		xasprintf(&env[i], "WATCHDOG_PID=%16s", "");
		pid_vars[1] = env[i++];
	}
	env[i] = NULL;
	return env;
}

/* A worker not yet started: its fields, limits and watchers. */
static struct worker *
worker_new(const struct worker_host *p, unsigned int slot, unsigned int gen,
    struct config *snap, const struct pool_config *cfg)
{
	struct worker *w = xcalloc(1, sizeof *w);

	w->pool = p->pool;
	w->rd = p->rd;
	w->pool_name = p->name;
	w->ops = p->ops;
	w->slot = slot;
	w->gen = gen;
	w->snap = config_ref(snap);
	w->cfg = cfg;
	w->jitter_u = (double)random() / ((double)RAND_MAX + 1.0);
	worker_set_limits(w, cfg);
	growth_init(&w->growth);
	ev_child_init(&w->child, worker_child_cb, 0, 0);
	w->child.data = w;
	ev_init(&w->timer, worker_timer_cb);
	w->timer.data = w;
	w->exec_fd = -1;
	w->pidfd = -1;
	ev_io_init(&w->cg_event, worker_cg_event_cb, -1, EV_READ);
	orphan_owner_init(&w->orph, worker_ctx(w));
	return w;
}

/* Its stdout and stderr: journal streams, or pipes we read (out[0],
 * err[0]); -1 where neither could be made. */
static void
worker_stdio(const struct worker_host *p, int out[2], int err[2])
{
	if (log_to_journal()) {
		/* Straight into the journal, one identifier per pool. */
		char ident[64];

		snprintf(ident, sizeof ident, "recyclerd/%s", p->name);
		out[1] = sd_journal_stream_fd(ident, LOG_INFO, 1);
		err[1] = sd_journal_stream_fd(ident, LOG_WARNING, 1);
		out[1] = out[1] < 0 ? -1 : out[1];
		err[1] = err[1] < 0 ? -1 : err[1];
	} else if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1) {
		log_warn_errno("pool %s: unable to make output pipes", p->name);
	}
}

/* What the spawner needs to start it; env is the caller's to free. */
static void
worker_request(const struct worker *w, const struct worker_host *p, char **env,
    int stdout_fd, int stderr_fd, struct spawn_req *req)
{
	const struct pool_config *cfg = w->cfg;

	req->argv = cfg->argv;
	req->envp = env;
	req->directory = cfg->directory;
	req->set_ids = cfg->user != NULL || cfg->group != NULL;
	req->uid = cfg->user != NULL ? cfg->uid : getuid();
	req->gid = cfg->gid;
	req->groups = p->groups;
	req->ngroups = p->ngroups;
	req->fds = p->sockets->fds;
	req->nfds = p->sockets->n;
	req->stdout_fd = stdout_fd;
	req->stderr_fd = stderr_fd;
	req->cgroup_dir_fd = w->cg ? cgroup_dir_fd(w->cg) : -1;
	req->cgroup_join_fd = w->cg ? cgroup_join_fd(w->cg) : -1;
	req->pdeathsig = SIGKILL;
	req->nofile = p->rd->nofile;
	req->drop_caps = cfg->capabilities != CAPS_ALL;
	req->capabilities = cfg->capabilities;
	req->no_new_privs = cfg->no_new_privs;
}

/* Its own group below the pool's, when the pool has one. */
static void
worker_open_cgroup(struct worker *w, const struct worker_host *p)
{
	const struct pool_config *cfg = w->cfg;

	if (p->cg != NULL && (w->cg = cgroup_worker_open(p->cg,
	    w->is_template ? CGROUP_TEMPLATE : w->slot, w->gen,
	    cfg->memory_high, cfg->memory_max)) == NULL)
		log_warn("pool %s %s %u: unable to create its cgroup: %s; "
		    "it runs in the pool's group, measured through /proc, "
		    "without its own memory_high or memory_max", p->name,
		    w->is_template ? "template" : "worker",
		    w->is_template ? w->gen : w->slot, strerror(errno));
}

static struct worker *
worker_start(const struct worker_host *p, unsigned int slot, unsigned int gen,
    struct config *snap, const struct pool_config *cfg, int tmpl_fd)
{
	struct recyclerd *rd = p->rd;
	struct spawn_req req = { 0 };
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, *fds = NULL;
	struct worker *w = worker_new(p, slot, gen, snap, cfg);
	char **env;
	pid_t pid;

	w->is_template = tmpl_fd != -1;
	worker_open_cgroup(w, p);
	env = worker_env(w, p, req.pid_vars, tmpl_fd);
	worker_stdio(p, out, err);
	worker_request(w, p, env, out[1], err[1], &req);
	if (tmpl_fd != -1) {
		/* Its end of the pair after the sockets, not in LISTEN_FDS. */
		fds = xcalloc(p->sockets->n + 1, sizeof *fds);
		if (p->sockets->n > 0)
			memcpy(fds, p->sockets->fds,
			    p->sockets->n * sizeof *fds);
		fds[p->sockets->n] = tmpl_fd;
		req.fds = fds;
		req.nfds = p->sockets->n + 1;
	}

	pid = spawner_spawn(rd->spawner, &req, &w->exec_fd);
	strv_free(env);
	free(fds);
	if (out[1] != -1)
		close(out[1]);
	if (err[1] != -1)
		close(err[1]);
	if (pid == -1) {
		log_err("pool %s %s %u: unable to fork: %s", p->name,
		    tmpl_fd != -1 ? "template" : "worker",
		    tmpl_fd != -1 ? gen : slot, strerror(errno));
		if (out[0] != -1)
			close(out[0]);
		if (err[0] != -1)
			close(err[0]);
		cgroup_close(w->cg);
		config_unref(w->snap);
		free(w);
		return NULL;
	}

	w->pid = pid;
	w->orph.ctx.pid = pid;
	w->pidfd = pid_open(pid);	/* unreaped: it is our child */
	ev_child_set(&w->child, pid, 0);
	ev_child_start(rd->loop, &w->child);	/* before the loop runs */
	guard_add(rd->guard, pid);
	pidmap_add(&rd->pidmap, pid, w);
	if (out[0] != -1)
		output_start(rd, out[0], p->name, (int)slot, pid, "stdout");
	if (err[0] != -1)
		output_start(rd, err[0], p->name, (int)slot, pid, "stderr");
	w->spawn_mono = w->state_mono = mono_now();
	w->state = WS_STARTING;	/* the first state, not a transition */
	ev_io_init(&w->exec_io, worker_exec_cb, w->exec_fd, EV_READ);
	w->exec_io.data = w;
	ev_io_start(rd->loop, &w->exec_io);
	if ((w->probe = memprobe_new(pid)) == NULL && errno != ESRCH)
		wlog(w, LOG_WARNING, "unable to open its /proc files: %s; "
		    "trying again at each sample", strerror(errno));
	wlog(w, LOG_INFO, "spawned");
	/* Spawning takes a while: count ready_timeout from now, not from
	 * the loop's cached time at the start of this turn. */
	ev_now_update(rd->loop);
	ev_timer_set(&w->timer, (double)cfg->ready_timeout_ms / 1000.0, 0.0);
	ev_timer_start(rd->loop, &w->timer);
	return w;
}

struct worker *
worker_spawn(const struct worker_host *p, unsigned int slot, unsigned int gen,
    struct config *snap, const struct pool_config *cfg)
{
	return worker_start(p, slot, gen, snap, cfg, -1);
}

struct worker *
worker_spawn_template(const struct worker_host *p, unsigned int gen,
    struct config *snap, const struct pool_config *cfg, int tmpl_fd)
{
	return worker_start(p, CGROUP_TEMPLATE, gen, snap, cfg, tmpl_fd);
}

struct worker *
worker_forking(const struct worker_host *p, unsigned int slot,
    unsigned int gen, struct config *snap, const struct pool_config *cfg)
{
	struct worker *w = worker_new(p, slot, gen, snap, cfg);

	w->forking = true;
	worker_open_cgroup(w, p);
	w->spawn_mono = w->state_mono = mono_now();
	w->state = WS_STARTING;	/* the first state, not a transition */
	return w;
}

void
worker_forked(struct worker *w, pid_t pid)
{
	struct recyclerd *rd = w->rd;

	w->forking = false;
	w->pid = pid;
	w->orph.ctx.pid = pid;
	w->pidfd = pid_open(pid);	/* unreaped: it is our child */
	ev_child_set(&w->child, pid, 0);
	ev_child_start(rd->loop, &w->child);
	guard_add(rd->guard, pid);
	pidmap_add(&rd->pidmap, pid, w);
	if ((w->probe = memprobe_new(pid)) == NULL && errno != ESRCH)
		wlog(w, LOG_WARNING, "unable to open its /proc files: %s; "
		    "trying again at each sample", strerror(errno));
	wlog(w, LOG_INFO, "forked by the template after %.3fs",
	    mono_now() - w->spawn_mono);
	if (w->state != WS_STARTING)
		return;		/* stopped while forking: the caller kills it */
	ev_now_update(rd->loop);
	ev_timer_set(&w->timer, (double)w->cfg->ready_timeout_ms / 1000.0,
	    0.0);
	ev_timer_start(rd->loop, &w->timer);
}

void
worker_free(struct worker *w)
{
	struct recyclerd *rd;

	if (w == NULL)
		return;
	rd = w->rd;
	ev_child_stop(rd->loop, &w->child);
	ev_timer_stop(rd->loop, &w->timer);
	ev_io_stop(rd->loop, &w->cg_event);
	ev_io_stop(rd->loop, &w->exec_io);
	if (w->exec_fd != -1)
		close(w->exec_fd);
	orphans_owner_gone(rd->orphans, &w->orph);
	if (w->pidfd != -1)
		close(w->pidfd);
	if (w->log_limit.suppressed > 0)
		wlog(w, LOG_WARNING, "notify: %u messages suppressed",
		    w->log_limit.suppressed);
	if (w->pid != 0) {		/* 0: the template never forked it */
		pidmap_del(&rd->pidmap, w->pid);
		guard_del(rd->guard, w->pid);
	}
	memprobe_free(w->probe);
	cgroup_close(w->cg);
	config_unref(w->snap);
	free(w->status);
	free(w);
}

void
worker_set_ready(struct worker *w)
{
	w->ready_mono = mono_now();
	ev_timer_stop(w->rd->loop, &w->timer);
	worker_set_state(w, WS_READY);
	wlog(w, LOG_INFO, "ready after %.3fs", w->ready_mono - w->spawn_mono);
	worker_arm_events(w);
}

void
worker_drain(struct worker *w, enum reason why, uint64_t timeout_ms)
{
	struct ev_loop *loop = w->rd->loop;

	if (w->state == WS_KILLED)
		return;
	if (w->state == WS_DRAINING) {
		/* Already on its way out: only ever bring the deadline in. */
		double left = ev_timer_remaining(loop, &w->timer);

		if ((double)timeout_ms / 1000.0 < left) {
			ev_timer_stop(loop, &w->timer);
			ev_timer_set(&w->timer, (double)timeout_ms / 1000.0,
			    0.0);
			ev_timer_start(loop, &w->timer);
		}
		return;
	}
	w->stop_reason = why;
	ev_timer_stop(loop, &w->timer);
	worker_disarm_events(w);
	worker_set_state(w, WS_DRAINING);
	if (why != REASON_STOPPING) {
		if (worker_signal(w, w->cfg->drain_signal) == -1 &&
		    errno != ESRCH)
			wlog(w, LOG_WARNING, "unable to send %s: %s",
			    units_signal_name(w->cfg->drain_signal),
			    strerror(errno));
		/* For latency measurements (bench/): -v shows it. */
		wlog(w, LOG_DEBUG, "sent %s at monotonic %lluus",
		    units_signal_name(w->cfg->drain_signal),
		    (unsigned long long)mono_usec());
	}
	ev_timer_set(&w->timer, (double)timeout_ms / 1000.0, 0.0);
	ev_timer_start(loop, &w->timer);
}

void
worker_kill(struct worker *w, enum reason why)
{
	if (w->state != WS_DRAINING || w->stop_reason == REASON_NONE)
		w->stop_reason = why;
	ev_timer_stop(w->rd->loop, &w->timer);
	worker_disarm_events(w);
	worker_set_state(w, WS_KILLED);
	kill_tree(w);
}

void
worker_kill_leftovers(struct worker *w)
{
	/* The worker led its session and process group; a group outlives
	 * its leader while members remain, and its id is not reused. */
	if (w->cg != NULL)
		(void)cgroup_kill(w->cg);
	worker_signal_group(w, SIGKILL);
	orphans_kill_owner(w->rd->orphans, &w->orph);
}

/*
 * A prefork master is its own process: children.c walks the rest. So is a
 * template: what it forks (a worker on its way, a spare forked ahead) is
 * not its memory, and would count its shared pages again under rss.
 */
static bool
probe_root_only(const struct worker *w)
{
	return w->cfg->recycle_scope == SCOPE_CHILDREN || w->is_template;
}

/* Sample its tree with its orphans, and tell orphans.c what the walk saw. */
static int
worker_probe(struct worker *w, bool with_smaps, struct mem_sample *s)
{
	struct orphans *o = w->rd->orphans;
	pid_t extra[64];
	const pid_t *seen;
	size_t n;

	if (probe_root_only(w))
		return memprobe_sample_root(w->probe, with_smaps, s);
	n = orphans_roots(o, &w->orph, extra, nitems(extra));
	if (memprobe_sample_roots(w->probe, extra, n, with_smaps, s) == -1)
		return -1;
	if ((n = memprobe_last_walk(w->probe, &seen)) > 0)
		orphans_walked(o, &w->orph, seen, n);
	return 0;
}

int
worker_probe_exact(struct worker *w, double now, struct mem_sample *s)
{
	pid_t extra[64];
	size_t n;

	if (w->probe == NULL)
		return -1;
	if (w->exact_mono == 0 || now - w->exact_mono >= EXACT_REUSE ||
	    now < w->exact_mono) {
		/* Not worker_probe(): what the walk saw is the sampler's to
		 * tell orphans.c. */
		n = orphans_roots(w->rd->orphans, &w->orph, extra,
		    nitems(extra));
		if ((probe_root_only(w) ?
		    memprobe_sample_root(w->probe, true, &w->exact) :
		    memprobe_sample_roots(w->probe, extra, n, true,
		    &w->exact)) == -1)
			return -1;
		w->exact_mono = now;
	}
	*s = w->exact;
	return 0;
}

/*
 * A sample that confirms a crossing of recycle_memory (the first was
 * exact, recycle_samples asks for more): rss minus the gap the crossing's
 * read measured stands for the figure while it is still over. Pages the
 * worker has written since count whole in both rss and the figure; pages
 * it has un-shared raise the figure, not rss, so the estimate errs low.
 * Under the limit, or with a gap older than the confirmation takes,
 * smaps_rollup is read.
 */
static bool
confirms_crossing(const struct worker *w, const struct mem_sample *s,
    double now)
{
	return w->recycle_reason == REASON_NONE && w->over_count > 0 &&
	    w->limits.recycle_memory != 0 && w->gap_mono != 0 &&
	    now - w->gap_mono <= (double)w->limits.recycle_samples *
	    (double)w->cfg->sample_interval_ms / 1000.0 && !s->has_smaps &&
	    s->rss > w->smaps_gap &&
	    s->rss - w->smaps_gap > w->limits.recycle_memory;
}

int
worker_sample(struct worker *w, double now, bool force_smaps)
{
	enum mem_metric metric = w->cfg->memory_metric;
	uint64_t bound, floor_bytes, v;
	struct mem_sample s;
	bool gap_fresh, gap_known;

	/* Once condemned, recycle_memory is behind it: smaps_rollup (the
	 * costly read, of the largest workers) only near a bound that still
	 * matters, kill_memory or max_overshoot. rss at or above the bound
	 * (the metric is at most rss) sends for the exact figure. So does
	 * the lead a prediction needs, unless a read in the last
	 * SMAPS_GAP_LEAD_S measured the gap: rss minus that gap stands for
	 * the figure there (memory_est). For SMAPS_GAP_TRUST_S after a read
	 * the estimate alone decides when to read again: within a sample's
	 * growth of the bound, rss itself being over it or not. Most of a
	 * worker's growth is its own pages; this saves reads while the
	 * shared part keeps rss above pss. A crossing is always judged on
	 * an exact figure. */
	bound = w->recycle_reason != REASON_NONE ?
	    policy_condemned_floor(&w->limits, w->cfg->max_overshoot_ppm) :
	    policy_prefilter(&w->limits);
	floor_bytes = bound;
	gap_fresh = w->gap_mono != 0 && now - w->gap_mono <= SMAPS_GAP_TRUST_S;
	gap_known = w->gap_mono != 0 && now - w->gap_mono <= SMAPS_GAP_LEAD_S;
	if (bound != 0 && gap_fresh) {
		uint64_t step = 0;
		double rate;

		if (growth_per_sec(&w->growth, &rate) == 0 && rate > 0)
			step = (uint64_t)(rate *
			    (double)w->cfg->sample_interval_ms / 1000.0);
		/* Above the bound too, by the gap: rss under this floor
		 * puts the estimate a step below the bound, and the estimate
		 * is what the thresholds compare then (below). */
		floor_bytes = (bound > step + 1 ? bound - step : 1) +
		    w->smaps_gap;
	} else if (bound != 0 && !gap_known) {
		floor_bytes = bound > w->smaps_lead + 1 ?
		    bound - w->smaps_lead : 1;
	}	/* known, not fresh: the lead's estimate, rss at the bound reads */

	/* Not opened at spawn (EMFILE, ENOMEM...): try again now; a gone
	 * process says ESRCH, and its exit is on its way. */
	if (w->probe == NULL && (w->probe = memprobe_new(w->pid)) != NULL)
		wlog(w, LOG_NOTICE, "its /proc files are open: measured from "
		    "now on");
	if (w->probe == NULL)
		return -1;
	if ((metric == METRIC_CGROUP || metric == METRIC_CGROUP_ANON) &&
	    w->cg != NULL) {
		memprobe_count(PROBE_CGROUP);
		if ((metric == METRIC_CGROUP ?
		    cgroup_memory_usage(w->cg, &v) :
		    cgroup_memory_anon(w->cg, &v)) == -1)
			return -1;
		w->cgroup_bytes = w->memory = w->memory_est = v;
		w->memory_exact = true;
		if (force_smaps && worker_probe(w, true, &s) == 0)
			w->last = s;
		growth_add(&w->growth, now, w->tasks, v);
	} else {
		bool smaps_now = (metric == METRIC_PSS || metric == METRIC_USS) &&
		    (force_smaps || w->rd->no_prefilter);

		/* (cgroup metrics without a cgroup, read as rss: pool.c
		 * warned) */
		if (worker_probe(w, smaps_now, &s) == -1)
			return -1;
		if (confirms_crossing(w, &s, now)) {
			w->memory = s.rss - w->smaps_gap;
			w->memory_exact = true;
		} else {
			if (metric_needs_smaps(metric, &s, floor_bytes) &&
			    worker_probe(w, true, &s) == -1)
				return -1;
			w->memory = metric_value(metric, &s, &w->memory_exact);
		}
		w->last = s;
		if (s.has_smaps) {
			w->smaps_gap = s.rss > w->memory ? s.rss - w->memory : 0;
			w->gap_mono = now;
		}
		w->memory_est = w->memory_exact ? w->memory : gap_known &&
		    s.rss > w->smaps_gap ? s.rss - w->smaps_gap : 0;
		/* An inexact value is under every threshold: rss below the
		 * bound, or over it and under the floor of a fresh gap, where
		 * the estimate is a step below the bound. */
		if (!w->memory_exact && bound != 0 && w->memory >= bound)
			w->memory = w->memory_est;
		growth_add(&w->growth, now, w->tasks, s.rss);
	}
	if (w->memory_exact && w->memory > w->peak)
		w->peak = w->memory;
	if (w->last.rss > w->peak_rss)
		w->peak_rss = w->last.rss;
	return 0;
}
