/* SPDX-License-Identifier: MIT */
/*
 * guard.c - the process that kills the workers' sessions when the daemon
 * dies. See guard.h. The guard itself ignores terminal signals (Ctrl-C
 * reaches the daemon's whole process group) and exits only on EOF.
 *
 * The daemon keeps its own copy of what it told the guard (the sessions,
 * the cgroup record): if the guard dies (killed by hand, the OOM killer),
 * a new one is forked and told all of it again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "guard.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#define CGROUP_REC_MAX	(sizeof(int32_t) + sizeof(uint16_t) + 1 + PATH_MAX)

/*
 * An orphan's pid travels with this bit set: pids and sessions stay below
 * 2^22 (PID_MAX_LIMIT), so a record never means both.
 */
#define GUARD_PID_BIT	0x40000000

/* Orphans, each with a pidfd taken when told (-1 without pidfd_open). */
struct pidset {
	struct {
		pid_t	 pid;
		int	 fd;
	}		*v;
	size_t		 n, cap;
};

/*
 * A set of positive pids (sessions, or orphans on the daemon's side): open
 * addressing with linear probing, 0 marks a free slot, deletion by
 * backward shift. O(1) per worker start and exit at any pool size.
 */
struct sidset {
	pid_t		*v;
	size_t		 n, cap;	/* cap: a power of two, or 0 */
};

struct guard {
	pid_t		 pid;
	int		 fd;		/* write end, or -1 */
	struct sidset	 sids;		/* what the guard was told: sessions */
	struct sidset	 pids;		/* and orphans */
	char		 cgroup_rec[CGROUP_REC_MAX];
	size_t		 cgroup_len;	/* 0: none sent */
	struct ev_loop	*loop;		/* NULL until guard_watch */
	ev_child	 child;		/* the guard's exit */
	ev_timer	 retry;		/* a new guard could not be forked */
};

static size_t
sidset_home(const struct sidset *s, pid_t sid)
{
	return ((size_t)sid * 2654435761u) & (s->cap - 1);
}

/* The slot of sid, or of the free slot where it would go. */
static size_t
sidset_find(const struct sidset *s, pid_t sid)
{
	size_t i = sidset_home(s, sid);

	while (s->v[i] != 0 && s->v[i] != sid)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static void
sidset_add(struct sidset *s, pid_t sid)
{
	struct sidset bigger;
	size_t i;

	if (sid <= 0)
		return;
	if ((s->n + 1) * 2 > s->cap) {
		bigger.cap = s->cap ? s->cap * 2 : 64;
		bigger.n = 0;
		bigger.v = xcalloc(bigger.cap, sizeof *bigger.v);
		for (i = 0; i < s->cap; i++)
			if (s->v[i] != 0)
				sidset_add(&bigger, s->v[i]);
		free(s->v);
		*s = bigger;
	}
	i = sidset_find(s, sid);
	if (s->v[i] == 0) {
		s->v[i] = sid;
		s->n++;
	}
}

static void
sidset_del(struct sidset *s, pid_t sid)
{
	size_t i, j, home;

	if (s->cap == 0 || s->v[i = sidset_find(s, sid)] == 0)
		return;
	/* Backward shift: move up each later entry of the run whose home
	 * does not lie cyclically in (i, j]. */
	for (j = i;;) {
		s->v[i] = 0;
		for (;;) {
			j = (j + 1) & (s->cap - 1);
			if (s->v[j] == 0) {
				s->n--;
				return;
			}
			home = sidset_home(s, s->v[j]);
			if (i <= j ? (i < home && home <= j) :
			    (i < home || home <= j))
				continue;
			break;
		}
		s->v[i] = s->v[j];
		i = j;
	}
}

static int
sidset_has(const struct sidset *s, pid_t sid)
{
	return s->cap != 0 && s->v[sidset_find(s, sid)] == sid;
}

/* Kill every process whose session is in the set; returns how many. */
static int
sweep(const struct sidset *s)
{
	struct dirent *de;
	int killed = 0;
	DIR *d;
	pid_t sid;

	for (size_t i = 0; i < s->cap; i++)
		if (s->v[i] != 0 && kill(-s->v[i], SIGKILL) == 0)
			killed++;
	if ((d = opendir("/proc")) == NULL)
		return killed;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (proc_stat_ids((pid_t)atoi(de->d_name), NULL, NULL,
		    &sid) == 0 && sid > 0 && sidset_has(s, sid) &&
		    kill((pid_t)atoi(de->d_name), SIGKILL) == 0)
			killed++;
	}
	closedir(d);
	return killed;
}

static void
pidset_add(struct pidset *s, pid_t pid)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n].pid = pid;
#ifdef SYS_pidfd_open
	s->v[s->n].fd = (int)syscall(SYS_pidfd_open, pid, 0);
#else
	s->v[s->n].fd = -1;
#endif
	s->n++;
}

static void
pidset_del(struct pidset *s, pid_t pid)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].pid == pid) {
			if (s->v[i].fd != -1)
				close(s->v[i].fd);
			s->v[i] = s->v[--s->n];
			return;
		}
}

/*
 * The orphans, and the sessions they lead (a daemon that called setsid()
 * and its children): the session sweep takes those. A pidfd that no
 * longer names a live process makes the signal fail, not go astray.
 */
static void
kill_orphans(const struct pidset *p, struct sidset *s)
{
	pid_t sid;
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (proc_stat_ids(p->v[i].pid, NULL, NULL, &sid) == 0 &&
		    sid == p->v[i].pid && !sidset_has(s, sid))
			sidset_add(s, sid);
#ifdef SYS_pidfd_send_signal
		if (p->v[i].fd != -1) {
			(void)syscall(SYS_pidfd_send_signal, p->v[i].fd,
			    SIGKILL, NULL, 0);
			continue;
		}
#endif
		(void)kill(p->v[i].pid, SIGKILL);
	}
}

/* SIGKILL every process listed in dir/cgroup.procs; returns how many. */
static int
kill_procs(const char *dir)
{
	char path[PATH_MAX];
	int killed = 0;
	long pid;
	FILE *f;

	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fscanf(f, "%ld", &pid) == 1)
		if (kill((pid_t)pid, SIGKILL) == 0)
			killed++;
	fclose(f);
	return killed;
}

/*
 * Remove the cgroup directories below dir (and dir itself when asked),
 * deepest first, killing what is still in them: groups the daemon made and
 * can no longer remove itself.
 */
static void
remove_groups(const char *dir, bool self)
{
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int i;

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			/* Not our own leaf (v2): we and the daemon are in
			 * it, and pools can never be named so. */
			if (de->d_type != DT_DIR || de->d_name[0] == '.' ||
			    strcmp(de->d_name, "supervisor") == 0)
				continue;
			snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
			remove_groups(sub, true);
		}
		closedir(d);
	}
	if (!self)
		return;
	for (i = 0; i < 100; i++) {
		(void)kill_procs(dir);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		usleep(10000);		/* killed processes take a moment */
	}
}

static _Noreturn void
guard_main(int fd)
{
	struct sidset set = { 0 };
	struct pidset orphans = { 0 };
	sigset_t none;
	char cgroup[PATH_MAX] = "";
	bool cgroup_self = false;
	int32_t rec;
	uint16_t len;
	ssize_t n;
	int i;

	prctl(PR_SET_NAME, "recyclerd-guard");
	/* Forked from a running libev loop: drop its handlers and mask. */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		n = read(fd, &rec, sizeof rec);
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof rec)
			break;		/* EOF: the daemon is gone */
		if (rec > 0 && (rec & GUARD_PID_BIT) != 0) {
			pidset_add(&orphans, rec & ~GUARD_PID_BIT);
		} else if (rec < 0 && (-rec & GUARD_PID_BIT) != 0) {
			pidset_del(&orphans, -rec & ~GUARD_PID_BIT);
		} else if (rec > 0) {
			sidset_add(&set, rec);
		} else if (rec < 0) {
			sidset_del(&set, -rec);
		} else {
			/* 0: a cgroup tree follows (u16 length, flag, path). */
			if (read(fd, &len, sizeof len) != (ssize_t)sizeof len ||
			    len >= sizeof cgroup ||
			    read(fd, &cgroup_self, 1) != 1 ||
			    read(fd, cgroup, len) != (ssize_t)len)
				break;
			cgroup[len] = '\0';
		}
	}
	kill_orphans(&orphans, &set);
	/* A worker may fork while we sweep: sweep until a pass kills none. */
	for (i = 0; i < 10 && sweep(&set) > 0; i++)
		usleep(10000);
	if (cgroup[0] != '\0')
		remove_groups(cgroup, cgroup_self);
	free(set.v);
	free(orphans.v);
	_exit(0);
}

/* Fork a guard process; its pid, or -1 with errno. *fd gets the write end. */
static pid_t
guard_fork(int *fd)
{
	int p[2], e;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		e = errno;
		close(p[0]);
		close(p[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		/* Keep only the pipe: the daemon's sockets must die with it. */
		if (p[0] != 3 && dup2(p[0], 3) == -1)
			_exit(1);
		(void)spawn_close_from(4, false);
		guard_main(3);
	}
	close(p[0]);
	*fd = p[1];
	return pid;
}

struct guard *
guard_start(void)
{
	struct guard *g;
	int fd;
	pid_t pid;

	if ((pid = guard_fork(&fd)) == -1)
		return NULL;
	g = xcalloc(1, sizeof *g);
	g->pid = pid;
	g->fd = fd;
	return g;
}

static void guard_restart(struct guard *);

/* One record (below PIPE_BUF: it cannot interleave); false if the guard
 * is gone. */
static bool
guard_write(struct guard *g, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(g->fd, buf, len);
	while (n == -1 && errno == EINTR);
	return n == (ssize_t)len;
}

static void
guard_send(struct guard *g, int32_t rec)
{
	if (g == NULL || g->fd == -1)
		return;
	if (!guard_write(g, &rec, sizeof rec) && errno == EPIPE) {
		log_warn("guard process [pid %ld] is gone (its pipe is "
		    "closed)", (long)g->pid);
		guard_restart(g);
	}
}

/* Tell a new guard everything the last one knew. */
static bool
guard_replay(struct guard *g)
{
	size_t i;
	int32_t rec;

	if (g->cgroup_len > 0 && !guard_write(g, g->cgroup_rec, g->cgroup_len))
		return false;
	for (i = 0; i < g->sids.cap; i++) {
		rec = (int32_t)g->sids.v[i];
		if (rec != 0 && !guard_write(g, &rec, sizeof rec))
			return false;
	}
	for (i = 0; i < g->pids.cap; i++) {
		rec = (int32_t)g->pids.v[i] | GUARD_PID_BIT;
		if (g->pids.v[i] != 0 && !guard_write(g, &rec, sizeof rec))
			return false;
	}
	return true;
}

/*
 * The guard died: fork a new one and tell it the current sessions and
 * cgroups. The old one is reaped by the loop (its watcher, or libev's
 * catch-all when it is not watched any more).
 */
static void
guard_restart(struct guard *g)
{
	pid_t pid;
	int fd;

	if (g->fd != -1) {
		close(g->fd);
		g->fd = -1;
	}
	if (g->loop != NULL)
		ev_child_stop(g->loop, &g->child);
	if ((pid = guard_fork(&fd)) == -1) {
		log_err_errno("unable to fork a new guard process (retrying "
		    "in 1s)");
		if (g->loop != NULL && !ev_is_active(&g->retry)) {
			ev_timer_set(&g->retry, 1.0, 0.0);
			ev_timer_start(g->loop, &g->retry);
		}
		return;
	}
	g->pid = pid;
	g->fd = fd;
	if (g->loop != NULL) {
		ev_child_set(&g->child, pid, 0);
		ev_child_start(g->loop, &g->child);
	}
	if (!guard_replay(g))
		log_warn_errno("unable to brief the new guard process");
	log_notice("started a new guard process [pid %ld] for %zu worker "
	    "session%s", (long)pid, g->sids.n, g->sids.n == 1 ? "" : "s");
}

static void
guard_child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct guard *g = c->data;
	int st = c->rstatus;

	(void)revents;
	ev_child_stop(loop, c);
	if (WIFSIGNALED(st))
		log_warn("guard process [pid %ld] was killed by signal %d",
		    (long)c->rpid, WTERMSIG(st));
	else
		log_warn("guard process [pid %ld] exited with status %d",
		    (long)c->rpid, WEXITSTATUS(st));
	guard_restart(g);
}

static void
guard_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	guard_restart(t->data);
}

void
guard_watch(struct guard *g, struct ev_loop *loop)
{
	if (g == NULL)
		return;
	g->loop = loop;
	ev_child_init(&g->child, guard_child_cb, g->pid, 0);
	g->child.data = g;
	ev_child_start(loop, &g->child);
	ev_init(&g->retry, guard_retry_cb);
	g->retry.data = g;
}

void
guard_add(struct guard *g, pid_t sid)
{
	if (g == NULL)
		return;
	sidset_add(&g->sids, sid);
	guard_send(g, (int32_t)sid);
}

void
guard_del(struct guard *g, pid_t sid)
{
	if (g == NULL)
		return;
	sidset_del(&g->sids, sid);
	guard_send(g, -(int32_t)sid);
}

void
guard_add_pid(struct guard *g, pid_t pid)
{
	if (g == NULL)
		return;
	sidset_add(&g->pids, pid);
	guard_send(g, (int32_t)pid | GUARD_PID_BIT);
}

void
guard_del_pid(struct guard *g, pid_t pid)
{
	if (g == NULL)
		return;
	sidset_del(&g->pids, pid);
	guard_send(g, -((int32_t)pid | GUARD_PID_BIT));
}

void
guard_cgroups(struct guard *g, const char *path, bool remove_self)
{
	size_t len = strlen(path);
	int32_t zero = 0;
	uint16_t len16 = (uint16_t)len;
	bool flag = remove_self;
	char *buf;

	if (g == NULL || len >= PATH_MAX)
		return;
	buf = g->cgroup_rec;
	memcpy(buf, &zero, sizeof zero);
	memcpy(buf + sizeof zero, &len16, sizeof len16);
	memcpy(buf + sizeof zero + sizeof len16, &flag, 1);
	memcpy(buf + sizeof zero + sizeof len16 + 1, path, len);
	g->cgroup_len = sizeof zero + sizeof len16 + 1 + len;
	if (g->fd != -1 && !guard_write(g, buf, g->cgroup_len) &&
	    errno == EPIPE)
		guard_restart(g);
}

pid_t
guard_pid(const struct guard *g)
{
	return g ? g->pid : 0;
}

void
guard_stop(struct guard *g)
{
	if (g == NULL)
		return;
	if (g->loop != NULL) {
		ev_child_stop(g->loop, &g->child);
		ev_timer_stop(g->loop, &g->retry);
	}
	if (g->fd != -1)
		close(g->fd);
	/* libev may have reaped it already; ECHILD is fine. */
	while (g->fd != -1 && waitpid(g->pid, NULL, 0) == -1 && errno == EINTR)
		;
	free(g->sids.v);
	free(g->pids.v);
	free(g);
}
