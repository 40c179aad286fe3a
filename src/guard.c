/* SPDX-License-Identifier: MIT */
/*
 * guard.c - the process that kills the workers' sessions when the daemon
 * dies. See guard.h. The guard itself ignores terminal signals (Ctrl-C
 * reaches the daemon's whole process group) and exits only on EOF.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"
#include "util.h"

struct guard {
	pid_t		 pid;
	int		 fd;		/* write end */
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

static _Noreturn void
guard_main(int fd)
{
	struct sidset set = { 0 };
	int32_t rec;
	ssize_t n;
	int i;

	prctl(PR_SET_NAME, "recyclerd-guard");
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
		if (rec > 0)
			sidset_add(&set, rec);
		else if (rec < 0)
			sidset_del(&set, -rec);
	}
	/* A worker may fork while we sweep: sweep until a pass kills none. */
	for (i = 0; i < 10 && sweep(&set) > 0; i++)
		usleep(10000);
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
		close(p[1]);
		guard_main(p[0]);
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
