/* SPDX-License-Identifier: MIT */
/*
 * guard.c - the process that kills the workers' sessions when the daemon
 * dies. See guard.h. The guard itself ignores terminal signals (Ctrl-C
 * reaches the daemon's whole process group) and exits only on EOF.
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

#include "guard.h"
#include "util.h"

struct guard {
	pid_t		 pid;
	int		 fd;		/* write end */
};

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

struct sidset {
	pid_t		*v;
	size_t		 n, cap;
};

static void
sidset_add(struct sidset *s, pid_t sid)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = sid;
}

static void
sidset_del(struct sidset *s, pid_t sid)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == sid) {
			s->v[i] = s->v[--s->n];
			return;
		}
}

static int
sidset_has(const struct sidset *s, pid_t sid)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == sid)
			return 1;
	return 0;
}

/* Kill every process whose session is in the set; returns how many. */
static int
sweep(const struct sidset *s)
{
	struct dirent *de;
	int killed = 0;
	DIR *d;
	pid_t sid;

	for (size_t i = 0; i < s->n; i++)
		if (kill(-s->v[i], SIGKILL) == 0)
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

struct guard *
guard_start(void)
{
	struct guard *g;
	int p[2], e;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		e = errno;
		close(p[0]);
		close(p[1]);
		errno = e;
		return NULL;
	}
	if (pid == 0) {
		/* Keep only the pipe: the daemon's sockets must die with it. */
		if (p[0] != 3 && dup2(p[0], 3) == -1)
			_exit(1);
		syscall(SYS_close_range, 4U, ~0U, 0U);
		guard_main(3);
	}
	close(p[0]);
	g = xmalloc(sizeof *g);
	g->pid = pid;
	g->fd = p[1];
	return g;
}

static void
guard_send(struct guard *g, int32_t rec)
{
	ssize_t n;

	if (g == NULL || g->fd == -1)
		return;
	do
		n = write(g->fd, &rec, sizeof rec);
	while (n == -1 && errno == EINTR);
}

void
guard_add(struct guard *g, pid_t sid)
{
	guard_send(g, (int32_t)sid);
}

void
guard_del(struct guard *g, pid_t sid)
{
	guard_send(g, -(int32_t)sid);
}

void
guard_add_pid(struct guard *g, pid_t pid)
{
	guard_send(g, (int32_t)pid | GUARD_PID_BIT);
}

void
guard_del_pid(struct guard *g, pid_t pid)
{
	guard_send(g, -((int32_t)pid | GUARD_PID_BIT));
}

void
guard_cgroups(struct guard *g, const char *path, bool remove_self)
{
	size_t len = strlen(path);
	char buf[sizeof(int32_t) + sizeof(uint16_t) + 1 + PATH_MAX];
	int32_t zero = 0;
	uint16_t len16 = (uint16_t)len;
	bool flag = remove_self;
	ssize_t n;

	if (g == NULL || g->fd == -1 || len >= PATH_MAX)
		return;
	/* One write: below PIPE_BUF it cannot interleave with others. */
	memcpy(buf, &zero, sizeof zero);
	memcpy(buf + sizeof zero, &len16, sizeof len16);
	memcpy(buf + sizeof zero + sizeof len16, &flag, 1);
	memcpy(buf + sizeof zero + sizeof len16 + 1, path, len);
	do
		n = write(g->fd, buf, sizeof zero + sizeof len16 + 1 + len);
	while (n == -1 && errno == EINTR);
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
	close(g->fd);
	/* libev may have reaped it already; ECHILD is fine. */
	while (waitpid(g->pid, NULL, 0) == -1 && errno == EINTR)
		;
	free(g);
}
