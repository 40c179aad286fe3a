/* SPDX-License-Identifier: MIT */
/*
 * orphans.c - track, measure and kill the processes re-parented to us.
 * See orphans.h; docs/ARCHITECTURE.md says why it is done this way.
 *
 * Two maps by pid, both growing hashes: the orphans (our children that are
 * not workers), and the descendants each worker's last tree walk saw, from
 * which an orphan is attributed. A worker's walk updates its own entries
 * only (stamped with its walk number), so a walk costs O(its tree) and
 * nothing when it has no children; the sweep costs O(our children).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <ev.h>

#include "guard.h"
#include "spawner.h"
#include "log.h"
#include "memprobe.h"
#include "orphans.h"
#include "recyclerd.h"
#include "util.h"

/* The daemon's children read in one sweep, and a killed orphan's tree. */
#define SWEEP_MAX	16384
#define TREE_MAX	4096
#define ENVIRON_SIZE	(64 * 1024)
/* A dead worker's descendants are killed on sight for this many sweeps:
 * re-parenting is immediate, so one sweep would do; two leave a margin. */
#define DOOMED_SWEEPS	2

struct pidnode {
	pid_t		 pid;
	struct pidnode	*next;
};

struct pidhash {
	struct pidnode	**b;
	size_t		 nb;		/* power of two */
	size_t		 n;
};

struct orphan {
	struct pidnode	 node;		/* first: the hash hands it back */
	int		 pidfd;		/* -1 without pidfd_open() */
	struct orphan_owner *owner;	/* NULL: not attributed */
	bool		 killed;
	LIST_ENTRY(orphan) entry;	/* in owner->list or o->unknown */
};

struct desc {
	struct pidnode	 node;		/* first */
	struct orphan_owner *owner;	/* NULL: its worker is gone */
	unsigned int	 stamp;		/* owner->walk_gen that saw it */
	unsigned long	 doomed_at;	/* sweep number, when owner is NULL */
	TAILQ_ENTRY(desc) doomed;
};

struct orphans {
	struct recyclerd *rd;
	const struct orphans_find *find;
	struct pidhash	 orphans;
	struct pidhash	 descs;
	struct orphan_list unknown;
	TAILQ_HEAD(, desc) doomed;	/* oldest first */
	unsigned long	 sweeps;
	ev_timer	 timer;
	ev_child	 child;		/* pid 0: every exit of a child */
};

static pid_t scratch[SWEEP_MAX];

/* ---- hash ---- */

static size_t
ph_bucket(const struct pidhash *h, pid_t pid)
{
	return ((size_t)(unsigned int)pid * 2654435761u) & (h->nb - 1);
}

static struct pidnode *
ph_get(const struct pidhash *h, pid_t pid)
{
	struct pidnode *e;

	if (h->nb == 0)
		return NULL;
	for (e = h->b[ph_bucket(h, pid)]; e != NULL; e = e->next)
		if (e->pid == pid)
			return e;
	return NULL;
}

static void
ph_put(struct pidhash *h, struct pidnode *e)
{
	struct pidnode **old = h->b, *x, *next;
	size_t oldnb = h->nb, i, k;

	if (h->n >= h->nb) {
		h->nb = h->nb ? h->nb * 2 : 64;
		h->b = xcalloc(h->nb, sizeof *h->b);
		for (i = 0; i < oldnb; i++)
			for (x = old[i]; x != NULL; x = next) {
				next = x->next;
				k = ph_bucket(h, x->pid);
				x->next = h->b[k];
				h->b[k] = x;
			}
		free(old);
	}
	k = ph_bucket(h, e->pid);
	e->next = h->b[k];
	h->b[k] = e;
	h->n++;
}

static void
ph_del(struct pidhash *h, struct pidnode *e)
{
	struct pidnode **pp;

	for (pp = &h->b[ph_bucket(h, e->pid)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			h->n--;
			return;
		}
}

/* ---- processes ---- */

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd != -1)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

static void
orphan_signal(const struct orphan *or, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (or->pidfd != -1) {
		(void)syscall(SYS_pidfd_send_signal, or->pidfd, sig, NULL, 0);
		return;
	}
#endif
	/* Unreaped, so the pid is still this process's. */
	(void)kill(or->node.pid, sig);
}

/* SIGKILL it and what it forked (listed first: once it is gone its
 * children come to us, and we want them dead, not adopted). */
static void
orphan_kill(struct orphan *or)
{
	pid_t tree[TREE_MAX];
	size_t i, n;

	if (or->killed)
		return;
	n = memprobe_tree(or->node.pid, tree, TREE_MAX);
	orphan_signal(or, SIGKILL);
	for (i = 1; i < n; i++)
		(void)kill(tree[i], SIGKILL);
	or->killed = true;
}

static struct log_ctx
orphan_ctx(const struct orphan *or)
{
	struct log_ctx ctx = { .pid = or->node.pid, .worker = -1 };

	if (or->owner != NULL) {
		ctx = or->owner->ctx;
		ctx.pid = or->node.pid;
	}
	return ctx;
}

/* ---- attribution ---- */

/* RECYCLERD_POOL and RECYCLERD_WORKER -> the oldest worker in that slot. */
static struct orphan_owner *
attribute_environ(struct orphans *o, pid_t pid)
{
	static char buf[ENVIRON_SIZE];
	const char *pool = NULL, *slot = NULL, *s;
	char path[64];
	unsigned long n;
	ssize_t len;
	char *end;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	len = read_fd_at0(fd, buf, sizeof buf);
	close(fd);
	if (len <= 0)
		return NULL;
	for (s = buf; s < buf + len; s += strlen(s) + 1) {
		if (strncmp(s, "RECYCLERD_POOL=", 15) == 0)
			pool = s + 15;
		else if (strncmp(s, "RECYCLERD_WORKER=", 17) == 0)
			slot = s + 17;
	}
	if (pool == NULL || slot == NULL)
		return NULL;
	errno = 0;
	n = strtoul(slot, &end, 10);
	if (errno != 0 || *end != '\0' || end == slot)
		return NULL;
	return o->find->by_slot(o->rd, pool, n);
}

/*
 * Whose is it? *doomed when its worker is gone. Cheapest and surest first:
 * the last tree walks saw it; it shares a session or process group with a
 * worker or an orphan of one; its environment names a pool and slot (which
 * it could forge, hence last).
 */
static struct orphan_owner *
attribute(struct orphans *o, pid_t pid, bool *doomed, const char **how)
{
	struct desc *d = (struct desc *)ph_get(&o->descs, pid);
	struct orphan_owner *w;
	struct orphan *or;
	pid_t ids[2];
	size_t i;

	*doomed = false;
	if (d != NULL) {
		*how = "its worker's tree";
		*doomed = d->owner == NULL;
		return d->owner;
	}
	*how = "its session";
	if (proc_stat_ids(pid, NULL, &ids[1], &ids[0]) == 0)
		for (i = 0; i < nitems(ids); i++) {
			if ((w = o->find->by_pid(o->rd, ids[i])) != NULL)
				return w;
			or = (struct orphan *)ph_get(&o->orphans, ids[i]);
			if (or != NULL && or->owner != NULL)
				return or->owner;
		}
	*how = "its environment";
	return attribute_environ(o, pid);
}

static void
adopt(struct orphans *o, pid_t pid)
{
	struct orphan *or = xcalloc(1, sizeof *or);
	struct log_ctx ctx;
	const char *how;
	bool doomed;

	or->node.pid = pid;
	or->pidfd = pidfd_open_(pid);
	ph_put(&o->orphans, &or->node);
	guard_add_pid(o->rd->guard, pid);
	or->owner = attribute(o, pid, &doomed, &how);
	if (or->owner != NULL)
		LIST_INSERT_HEAD(&or->owner->list, or, entry);
	else
		LIST_INSERT_HEAD(&o->unknown, or, entry);
	ctx = orphan_ctx(or);
	if (doomed || (or->owner != NULL && or->owner->killed)) {
		/* It escaped a kill of its tree. */
		log_info("killing orphan [pid %ld]: left by a worker that was "
		    "killed or is gone", (long)pid);
		orphan_kill(or);
	} else if (or->owner != NULL) {
		log_ctx(LOG_DEBUG, &ctx, "adopted orphan (by %s)", how);
	} else {
		log_debug("adopted orphan [pid %ld] of no known worker",
		    (long)pid);
	}
}

/* It was reaped (or will never be ours again): forget it. */
static void
forget(struct orphans *o, struct orphan *or)
{
	ph_del(&o->orphans, &or->node);
	LIST_REMOVE(or, entry);
	guard_del_pid(o->rd->guard, or->node.pid);
	if (or->pidfd != -1)
		close(or->pidfd);
	free(or);
}

/* One of the daemon's own helpers: the guard, the spawn server. */
static bool
is_helper(const struct orphans *o, pid_t pid)
{
	return pid == guard_pid(o->rd->guard) ||
	    pid == spawner_pid(o->rd->spawner);
}

/* Our child, and neither a worker, a helper nor a known orphan. */
static bool
is_new_child(struct orphans *o, pid_t pid)
{
	pid_t ppid;

	return proc_stat_ids(pid, &ppid, NULL, NULL) == 0 &&
	    ppid == o->rd->pid && !is_helper(o, pid) &&
	    !o->find->forking(o->rd) &&
	    pidmap_get(&o->rd->pidmap, pid) == NULL &&
	    ph_get(&o->orphans, pid) == NULL;
}

/* ---- sweep and reap ---- */

static void
prune_doomed(struct orphans *o)
{
	struct desc *d;

	while ((d = TAILQ_FIRST(&o->doomed)) != NULL &&
	    d->doomed_at + DOOMED_SWEEPS <= o->sweeps) {
		TAILQ_REMOVE(&o->doomed, d, doomed);
		ph_del(&o->descs, &d->node);
		free(d);
	}
}

void
orphans_sweep(struct orphans *o)
{
	size_t i, n;

	o->sweeps++;
	/* A template's worker is our child before its PID= answer is read:
	 * read them first, and leave the unknown children to the next sweep
	 * while an answer is still owed. */
	o->find->poll(o->rd);
	n = memprobe_children(o->rd->pid, scratch, nitems(scratch));
	for (i = 0; i < n; i++) {
		if (is_helper(o, scratch[i]) ||
		    pidmap_get(&o->rd->pidmap, scratch[i]) != NULL ||
		    ph_get(&o->orphans, scratch[i]) != NULL ||
		    o->find->forking(o->rd))
			continue;
		adopt(o, scratch[i]);
	}
	prune_doomed(o);
}

static void
on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	orphans_sweep(t->data);
}

/*
 * Every exit of a child: libev reaps with waitpid(-1) and hands each to
 * the watchers of its pid and to those of pid 0. Workers have their own.
 */
static void
on_child(struct ev_loop *loop, ev_child *c, int revents)
{
	struct orphans *o = c->data;
	struct orphan *or;
	struct log_ctx ctx;

	(void)loop;
	(void)revents;
	if (!WIFEXITED(c->rstatus) && !WIFSIGNALED(c->rstatus))
		return;
	if ((or = (struct orphan *)ph_get(&o->orphans, c->rpid)) != NULL) {
		if (or->owner != NULL) {
			ctx = orphan_ctx(or);
			log_ctx(LOG_DEBUG, &ctx, "orphan reaped");
		} else {
			log_debug("orphan [pid %ld] reaped", (long)c->rpid);
		}
		forget(o, or);
		/* A template's spare, forked ahead, is its orphan until an
		 * answer names it: that answer may be on its way. */
		if (o->find->forking(o->rd))
			(void)o->find->reaped(o->rd, c->rpid, c->rstatus);
	} else if (pidmap_get(&o->rd->pidmap, c->rpid) == NULL &&
	    !is_helper(o, c->rpid) &&
	    !o->find->reaped(o->rd, c->rpid, c->rstatus)) {
		log_debug("reaped pid %ld, re-parented to us and gone before "
		    "a sweep saw it", (long)c->rpid);
	}
}

bool
orphans_claim(struct orphans *o, pid_t pid)
{
	struct orphan *or = (struct orphan *)ph_get(&o->orphans, pid);

	if (or == NULL)
		return false;
	forget(o, or);
	return true;
}

void
orphan_owner_init(struct orphan_owner *w, struct log_ctx ctx)
{
	memset(w, 0, sizeof *w);
	LIST_INIT(&w->list);
	w->ctx = ctx;
}

struct orphans *
orphans_new(struct recyclerd *rd, const struct orphans_find *find)
{
	struct orphans *o = xcalloc(1, sizeof *o);

	o->rd = rd;
	o->find = find;
	LIST_INIT(&o->unknown);
	TAILQ_INIT(&o->doomed);
	ev_timer_init(&o->timer, on_sweep, 1.0, 1.0);
	o->timer.data = o;
	ev_timer_start(rd->loop, &o->timer);
	ev_child_init(&o->child, on_child, 0, 0);
	o->child.data = o;
	ev_child_start(rd->loop, &o->child);
	return o;
}

void
orphans_set_interval(struct orphans *o, double interval)
{
	if (o == NULL || interval <= 0.0 || interval == o->timer.repeat)
		return;
	o->timer.repeat = interval;
	ev_timer_again(o->rd->loop, &o->timer);
}

/* Wait up to a second for the killed to be reaped. */
static void
reap_killed(pid_t *pids, size_t n)
{
	size_t i, left = n;
	int tries;

	for (tries = 0; tries < 100 && left > 0; tries++) {
		for (i = 0, left = 0; i < n; i++) {
			if (pids[i] == 0)
				continue;
			if (waitpid(pids[i], NULL, WNOHANG) == 0)
				left++;
			else
				pids[i] = 0;
		}
		if (left > 0)
			usleep(10000);
	}
}

/*
 * Shutdown: the workers are gone and their orphans were killed with them;
 * what is left reached us without a worker we could name, or after the
 * last sweep. Its worker's drain_signal was its chance to be stopped
 * gracefully by the one who started it: it gets SIGKILL.
 */
void
orphans_free(struct orphans *o)
{
	pid_t guard;
	struct pidnode *e;
	struct orphan *or;
	size_t i, n;

	if (o == NULL)
		return;
	ev_timer_stop(o->rd->loop, &o->timer);
	ev_child_stop(o->rd->loop, &o->child);
	orphans_sweep(o);
	while ((or = LIST_FIRST(&o->unknown)) != NULL) {
		if (!or->killed)
			log_info("killing orphan [pid %ld] at shutdown: of no "
			    "known worker",
			    (long)or->node.pid);
		orphan_kill(or);
		forget(o, or);
	}
	/* Anything else still a child of ours (not the guard). */
	guard = guard_pid(o->rd->guard);
	n = memprobe_children(o->rd->pid, scratch, nitems(scratch));
	for (i = 0; i < n; i++)
		if (scratch[i] != guard)
			(void)kill(scratch[i], SIGKILL);
		else
			scratch[i] = 0;
	reap_killed(scratch, n);
	/* Doomed entries, and those of workers never freed (a start that
	 * was refused). */
	for (i = 0; i < o->descs.nb; i++)
		while ((e = o->descs.b[i]) != NULL) {
			o->descs.b[i] = e->next;
			free(e);
		}
	free(o->descs.b);
	free(o->orphans.b);
	free(o);
}

/* ---- the workers' side ---- */

void
orphans_walked(struct orphans *o, struct orphan_owner *w, const pid_t *pids,
    size_t n)
{
	struct desc *d;
	size_t i;

	if (n <= 1 && w->ndesc == 0)
		return;			/* the common case: no children */
	w->walk_gen++;
	for (i = 1; i < n; i++) {
		d = (struct desc *)ph_get(&o->descs, pids[i]);
		if (d == NULL) {
			d = xcalloc(1, sizeof *d);
			d->node.pid = pids[i];
			ph_put(&o->descs, &d->node);
		} else if (d->owner == NULL) {
			/* The pid of a dead worker's process, reused. */
			TAILQ_REMOVE(&o->doomed, d, doomed);
		}
		d->owner = w;
		d->stamp = w->walk_gen;
	}
	for (i = 0; i < w->ndesc; i++) {
		d = (struct desc *)ph_get(&o->descs, w->desc[i]);
		if (d == NULL || d->owner != w || d->stamp == w->walk_gen)
			continue;
		/* Gone from its tree: dead, or re-parented to us, which the
		 * sweep would see only after this entry is gone. */
		if (is_new_child(o, d->node.pid))
			adopt(o, d->node.pid);
		ph_del(&o->descs, &d->node);
		free(d);
	}
	if (n - 1 > w->desc_cap) {
		w->desc_cap = n - 1;
		w->desc = xrealloc(w->desc, w->desc_cap * sizeof *w->desc);
	}
	w->ndesc = n > 0 ? n - 1 : 0;
	if (w->ndesc > 0)
		memcpy(w->desc, pids + 1, w->ndesc * sizeof *w->desc);
}

size_t
orphans_roots(struct orphans *o, struct orphan_owner *w, pid_t *pids,
    size_t max)
{
	struct orphan *or;
	size_t n = 0;

	(void)o;
	LIST_FOREACH(or, &w->list, entry) {
		if (n == max)
			break;
		if (!or->killed)
			pids[n++] = or->node.pid;
	}
	return n;
}

void
orphans_kill_owner(struct orphans *o, struct orphan_owner *w)
{
	struct orphan *or;

	(void)o;
	LIST_FOREACH(or, &w->list, entry)
		orphan_kill(or);
}

void
orphans_owner_gone(struct orphans *o, struct orphan_owner *w)
{
	struct orphan *or;
	struct desc *d;
	size_t i;

	while ((or = LIST_FIRST(&w->list)) != NULL) {
		orphan_kill(or);
		LIST_REMOVE(or, entry);
		or->owner = NULL;
		LIST_INSERT_HEAD(&o->unknown, or, entry);	/* until reaped */
	}
	for (i = 0; i < w->ndesc; i++) {
		d = (struct desc *)ph_get(&o->descs, w->desc[i]);
		if (d == NULL || d->owner != w)
			continue;
		d->owner = NULL;
		d->doomed_at = o->sweeps;
		TAILQ_INSERT_TAIL(&o->doomed, d, doomed);
	}
	free(w->desc);
	w->desc = NULL;
	w->ndesc = w->desc_cap = 0;
}
