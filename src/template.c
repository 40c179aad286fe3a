/* SPDX-License-Identifier: MIT */
/*
 * template.c - spawn = template: one process loads the application, the
 * workers are forked from it. See template.h for the protocol and the
 * rules; recyclerd-protocol(7) for what the template must do.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "orphans.h"
#include "pool.h"
#include "recyclerd.h"
#include "template.h"
#include "units.h"
#include "util.h"
#include "worker.h"

#define ANSWER_MAX	512	/* "PID=123" or "ERROR=<text>" */
#define EARLY_MAX	64	/* exits reaped before their PID= */
#define STASH_MAX	16	/* notify datagrams before their PID= */
#define STASH_BYTES	4096
#define BACKOFF_MAX_MS	(60 * 1000)	/* as pool.c's */
/* A template's socket closes as it exits, a moment before the kernel
 * makes it a zombie: the exit, not the closed socket, is the news. */
#define CLOSE_GRACE	0.2

struct tmpl {
	TAILQ_ENTRY(tmpl) entry;
	struct templates *set;
	struct worker	*w;		/* its process (is_template) */
	unsigned int	 gen;
	int		 fd;		/* our end of the pair, -1 once shut */
	ev_io		 io;
	ev_timer	 answer;	/* the oldest owed answer's deadline */
	struct worker	**owed;		/* FORKs sent, oldest first */
	size_t		 nowed, owed_cap;
	bool		 ready;
	bool		 retired;	/* no more forks; drained once it owes
					 * nothing */
	bool		 broken;	/* failed: its exit is a failure, and
					 * the next one starts after it */
	bool		 explained;	/* last_error says why already */
	bool		 closed;	/* its end closed: exiting, or broken
					 * if still alive after CLOSE_GRACE */
};

struct templates {
	struct pool	*pool;
	TAILQ_HEAD(, tmpl) all;
	struct tmpl	*cur;		/* the one forks go to */
	unsigned int	 gen;
	unsigned int	 failures;	/* consecutive, for the backoff */
	uint64_t	 forks, failed;
	char		 last_error[192];
	ev_timer	 restart;	/* crash backoff */
};

/*
 * Daemon-wide, small and bounded: exits reaped before the template's
 * answer named them, and notify datagrams sent by a worker before it.
 * Both matter only while some fork is owed, and are dropped when none is.
 */
static struct {
	pid_t		 pid;
	int		 status;
} early[EARLY_MAX];
static size_t nearly;

static struct {
	pid_t		 pid;
	size_t		 len;
	char		 buf[STASH_BYTES + 1];
} stash[STASH_MAX];
static size_t nstash;
static unsigned int nforking;	/* owed answers, all templates */

static void	tmpl_break(struct tmpl *, const char *fmt, ...)
		    PRINTFLIKE(2, 3);
static void	tmpl_free(struct tmpl *);
static void	tmpl_shut(struct tmpl *);
static struct tmpl *tmpl_of(struct pool *, struct worker *);
static bool	tmpl_wanted(const struct pool *);

#define plog(p, prio, ...) do {						\
	struct log_ctx plog_ctx_ = { .pool = (p)->name, .worker = -1 };	\
	log_ctx((prio), &plog_ctx_, __VA_ARGS__);			\
} while (0)

#define tlog(t, prio, ...) do {						\
	char tlog_buf_[256];						\
									\
	snprintf(tlog_buf_, sizeof tlog_buf_, __VA_ARGS__);		\
	wlog((t)->w, (prio), "template %u: %s", (t)->gen, tlog_buf_);	\
} while (0)

static struct templates *
set_of(struct pool *p)
{
	struct templates *ts = p->tmpl;

	if (ts != NULL)
		return ts;
	ts = p->tmpl = xcalloc(1, sizeof *ts);
	ts->pool = p;
	TAILQ_INIT(&ts->all);
	ev_init(&ts->restart, NULL);
	return ts;
}

/* ---- forks owed ---- */

static void
owed_push(struct tmpl *t, struct worker *w)
{
	if (t->nowed == t->owed_cap) {
		t->owed_cap = t->owed_cap ? t->owed_cap * 2 : 8;
		t->owed = xrealloc(t->owed, t->owed_cap * sizeof *t->owed);
	}
	t->owed[t->nowed++] = w;
	if (nforking++ == 0)
		nearly = nstash = 0;	/* left from earlier forks */
}

static struct worker *
owed_pop(struct tmpl *t)
{
	struct worker *w;

	if (t->nowed == 0)
		return NULL;
	w = t->owed[0];
	memmove(t->owed, t->owed + 1, --t->nowed * sizeof *t->owed);
	nforking--;
	return w;
}

/* The deadline of the oldest owed answer: ready_timeout after it was asked
 * for (the fork time counts toward the worker's start, not past it). */
static void
answer_arm(struct tmpl *t)
{
	struct ev_loop *loop = t->set->pool->rd->loop;
	double left;

	ev_timer_stop(loop, &t->answer);
	if (t->nowed == 0)
		return;
	left = t->owed[0]->spawn_mono +
	    (double)t->owed[0]->cfg->ready_timeout_ms / 1000.0 - mono_now();
	ev_timer_set(&t->answer, left > 0.001 ? left : 0.001, 0.0);
	ev_timer_start(loop, &t->answer);
}

/*
 * A worker the template will never fork: an exit of a process that never
 * ran, a failed start (its slot backs off; rapid_fail counts it).
 */
static void
fork_failed(struct worker *w)
{
	w->failed = true;
	w->reaped = true;
	pool_worker_exited(w->pool, w, W_EXITCODE(1, 0));	/* frees w */
}

static bool
early_take(pid_t pid, int *status)
{
	size_t i;

	for (i = 0; i < nearly; i++)
		if (early[i].pid == pid) {
			*status = early[i].status;
			early[i] = early[--nearly];
			return true;
		}
	return false;
}

static void
stash_replay(struct worker *w)
{
	size_t i = 0;

	while (i < nstash) {
		if (stash[i].pid != w->pid) {
			i++;
			continue;
		}
		pool_worker_notify(w->pool, w, stash[i].buf, stash[i].len);
		stash[i] = stash[--nstash];
		if (w->reaped || w->state != WS_STARTING)
			break;
	}
}

/* PID=<pid>: the worker exists, re-parented to us. */
static void
fork_answered(struct tmpl *t, struct worker *w, const char *value)
{
	struct pool *p = t->set->pool;
	char *end;
	long pid;
	pid_t ppid;
	int status;

	errno = 0;
	pid = strtol(value, &end, 10);
	if (errno != 0 || *end != '\0' || pid <= 0 || pid != (pid_t)pid) {
		tmpl_break(t, "answered PID=%.32s: not a pid", value);
		fork_failed(w);
		return;
	}
	/* Reaped already (it exited before we read the answer)? */
	if (early_take((pid_t)pid, &status)) {
		w->pid = (pid_t)pid;
		w->forking = false;
		wlog(w, LOG_WARNING, "forked by template %u, and gone before "
		    "its PID= was read", t->gen);
		w->reaped = true;
		pool_worker_exited(p, w, status);
		return;
	}
	/* Only our own unreaped child: its pid cannot change hands, and a
	 * template cannot name someone else's process for us to signal. */
	if (proc_stat_ids((pid_t)pid, &ppid, NULL, NULL) == -1 ||
	    ppid != p->rd->pid) {
		tmpl_break(t, "answered PID=%ld, which is not a child of "
		    "recyclerd (the worker must fork twice)", pid);
		fork_failed(w);
		return;
	}
	t->set->forks++;
	if (orphans_claim(p->rd->orphans, (pid_t)pid))
		wlog(w, LOG_DEBUG, "forked ahead by template %u: adopted as its "
		    "orphan until now", t->gen);
	worker_forked(w, (pid_t)pid);
	/* In its own group even if it could not move itself (a pool user may
	 * not write there); the template's pages stay charged to it. Looked
	 * at first: on v1 a move makes the daemon wait for an RCU grace
	 * period, and the worker normally moved itself before the answer. */
	if (w->cg != NULL && !cgroup_contains(w->cg, (pid_t)pid) &&
	    cgroup_attach(w->cg, (pid_t)pid) == -1 && errno != ESRCH)
		wlog(w, LOG_WARNING, "unable to move it into %s: %s",
		    cgroup_path(w->cg), strerror(errno));
	if (w->state != WS_STARTING) {
		/* Stopped while it was being forked: it never served. */
		worker_kill(w, w->stop_reason);
		return;
	}
	/* Asked of a template that a deploy has retired since: old code,
	 * replaced as soon as it is ready. */
	w->stale_template = t->retired && tmpl_wanted(p);
	stash_replay(w);
	if (w->state == WS_STARTING && !w->failed &&
	    w->cfg->ready == READY_SPAWN)
		pool_worker_ready(p, w);
}

/* One answer, for the oldest FORK. */
static void
tmpl_answer(struct tmpl *t, char *buf, size_t len)
{
	struct worker *w;
	char *text;

	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\0'))
		len--;
	buf[len] = '\0';
	if ((w = owed_pop(t)) == NULL) {
		tmpl_break(t, "sent \"%.64s\" though no FORK was asked", buf);
		return;
	}
	answer_arm(t);
	if (strncmp(buf, "PID=", 4) == 0) {
		fork_answered(t, w, buf + 4);
	} else if (strncmp(buf, "ERROR=", 6) == 0) {
		text = text_sanitize(buf + 6, strlen(buf + 6), 120);
		wlog(w, LOG_ERR, "template %u could not fork it: ERROR=%s",
		    t->gen, text);
		snprintf(t->set->last_error, sizeof t->set->last_error,
		    "template %u answered ERROR=%s", t->gen, text);
		free(text);
		fork_failed(w);
	} else {
		tmpl_break(t, "answered \"%.64s\" (expected PID= or ERROR=)",
		    buf);
		fork_failed(w);
	}
}

/* Has the template exited (not reaped yet)? Then its socket closed with it. */
static bool
tmpl_exited(const struct tmpl *t)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	return !t->w->reaped && waitid(P_PID, (id_t)t->w->pid, &si,
	    WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == t->w->pid;
}

/* Its end is closed: it is exiting (its exit tells why), or it closed the
 * socket and lives on (tmpl_answer_cb() breaks it after CLOSE_GRACE). */
static void
tmpl_closed(struct tmpl *t)
{
	if (t->closed)
		return;
	t->broken = t->closed = true;
	tmpl_shut(t);
	ev_timer_set(&t->answer, CLOSE_GRACE, 0.0);
	ev_timer_start(t->set->pool->rd->loop, &t->answer);
}

static void
tmpl_read(struct tmpl *t)
{
	char buf[ANSWER_MAX + 1];
	ssize_t n;

	while (t->fd != -1) {
		n = recv(t->fd, buf, ANSWER_MAX, MSG_DONTWAIT | MSG_TRUNC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1 && errno == ECONNRESET)
			n = 0;		/* closed with a datagram unread */
		if (n <= 0 && (t->w->state == WS_DRAINING ||
		    t->w->state == WS_KILLED)) {
			tmpl_shut(t);	/* on its way out, as asked */
			return;
		}
		if (n == 0) {
			tmpl_closed(t);
			return;
		}
		if (n < 0) {
			tmpl_break(t, "unable to read its answers: %s",
			    strerror(errno));
			return;
		}
		if (n > ANSWER_MAX) {
			tmpl_break(t, "sent an answer longer than %d bytes",
			    ANSWER_MAX);
			return;
		}
		tmpl_answer(t, buf, (size_t)n);
	}
}

static void
tmpl_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tmpl *t = io->data;
	struct pool *p = t->set->pool;

	(void)loop;
	(void)revents;
	tmpl_read(t);
	template_reconcile(p);
}

static void
tmpl_answer_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
	struct tmpl *t = timer->data;
	char d[32];

	(void)loop;
	(void)revents;
	if (t->closed) {
		if (!tmpl_exited(t))
			tmpl_break(t, "closed its end of "
			    "RECYCLERD_TEMPLATE_FD");
		return;
	}
	tmpl_read(t);		/* an answer may be waiting already */
	if (t->nowed == 0 || t->fd == -1)
		return;
	tmpl_break(t, "no answer to FORK within ready_timeout %s",
	    units_format_duration(t->owed[0]->cfg->ready_timeout_ms, d,
	    sizeof d));
	template_reconcile(t->set->pool);
}

/* Stop using it: its socket shut, the forks it owes failed. */
static void
tmpl_shut(struct tmpl *t)
{
	struct worker *w;

	if (t->fd != -1) {
		ev_io_stop(t->set->pool->rd->loop, &t->io);
		close(t->fd);
		t->fd = -1;
	}
	ev_timer_stop(t->set->pool->rd->loop, &t->answer);
	while ((w = owed_pop(t)) != NULL) {
		wlog(w, LOG_WARNING, "template %u failed before it answered "
		    "the FORK", t->gen);
		fork_failed(w);
	}
	if (t->set->cur == t)
		t->set->cur = NULL;
}

/*
 * The template is of no more use (protocol error, no answer, closed
 * socket, ready_timeout): logged, in status, killed; its exit is then a
 * failure that the backoff and rapid_fail count.
 */
static void
tmpl_break(struct tmpl *t, const char *fmt, ...)
{
	struct templates *ts = t->set;
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	tlog(t, LOG_ERR, "%s; killing it", why);
	snprintf(ts->last_error, sizeof ts->last_error, "template %u %s",
	    t->gen, why);
	t->broken = t->explained = true;
	t->w->failed = true;
	worker_kill(t->w, REASON_CRASH);
	tmpl_shut(t);
}

static void
restart_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
	struct templates *ts = timer->data;

	(void)loop;
	(void)revents;
	template_reconcile(ts->pool);
}

static void
tmpl_start(struct templates *ts)
{
	struct pool *p = ts->pool;
	struct worker_host host;
	struct tmpl *t;
	struct worker *w;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		plog(p, LOG_ERR, "unable to make a template socket pair: %s",
		    strerror(errno));
		goto backoff;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	host = pool_host(p);
	w = worker_spawn_template(&host, ++ts->gen, p->snap, p->cfg, sv[1]);
	close(sv[1]);
	if (w == NULL) {
		close(sv[0]);
		goto backoff;
	}
	t = xcalloc(1, sizeof *t);
	t->set = ts;
	t->w = w;
	t->gen = ts->gen;
	t->fd = sv[0];
	ev_io_init(&t->io, tmpl_io_cb, t->fd, EV_READ);
	t->io.data = t;
	ev_io_start(p->rd->loop, &t->io);
	ev_init(&t->answer, tmpl_answer_cb);
	t->answer.data = t;
	TAILQ_INSERT_TAIL(&ts->all, t, entry);
	ts->cur = t;
	tlog(t, LOG_INFO, "started: %s", p->cfg->argv[0]);
	return;
backoff:
	ts->failures++;
	ev_timer_init(&ts->restart, restart_cb, (double)policy_backoff(
	    p->cfg->restart_backoff_ms, ts->failures, BACKOFF_MAX_MS) / 1000.0,
	    0.0);
	ts->restart.data = ts;
	ev_timer_start(p->rd->loop, &ts->restart);
}

static bool
tmpl_wanted(const struct pool *p)
{
	return p->cfg->spawn == SPAWN_TEMPLATE && p->state == POOL_RUNNING &&
	    !p->rd->stopping && p->desired > 0;
}

void
template_reconcile(struct pool *p)
{
	struct templates *ts = p->tmpl;
	struct tmpl *t;
	bool want = tmpl_wanted(p);

	if (ts == NULL && !want)
		return;
	ts = set_of(p);
	/* A broken one is replaced after its exit, with the backoff. */
	TAILQ_FOREACH(t, &ts->all, entry)
		if (t->broken)
			break;
	if (want && ts->cur == NULL && !ev_is_active(&ts->restart) &&
	    t == NULL)
		tmpl_start(ts);
	/* Retire what forks no more, once it owes nothing: the previous
	 * generations once the current one is ready, all when none is
	 * wanted. */
	TAILQ_FOREACH(t, &ts->all, entry) {
		if (t == ts->cur && want)
			continue;
		if (t == ts->cur)
			ts->cur = NULL;
		t->retired = true;
		if (t->nowed > 0 || t->broken ||
		    (want && (ts->cur == NULL || !ts->cur->ready)))
			continue;
		if (t->w->state == WS_STARTING || t->w->state == WS_READY) {
			tlog(t, LOG_INFO, "retired, draining with %s",
			    units_signal_name(t->w->cfg->drain_signal));
			worker_drain(t->w, want ? REASON_RELOAD : REASON_SCALE,
			    t->w->cfg->drain_timeout_ms);
		}
	}
}

struct worker *
template_fork(struct pool *p, unsigned int slot, unsigned int gen)
{
	struct templates *ts = set_of(p);
	struct tmpl *t = ts->cur;
	char msg[64];
	union {
		struct cmsghdr	 align;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	struct worker_host host;
	struct worker *w;
	int len, fd = -1;
	ssize_t n;

	if (t == NULL || !t->ready || t->fd == -1)
		return NULL;		/* pool_template_ready() calls back */
	host = pool_host(p);
	w = worker_forking(&host, slot, gen, p->snap, p->cfg);
	len = snprintf(msg, sizeof msg, "FORK slot=%u generation=%u", slot,
	    gen);
	iov.iov_base = msg;
	iov.iov_len = (size_t)len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (w->cg != NULL && (fd = cgroup_open_path(w->cg)) != -1) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof ctl.buf;
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	n = sendmsg(t->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (fd != -1)
		close(fd);
	if (n != len) {
		w->reaped = true;
		worker_free(w);
		if (n == -1 && errno == EAGAIN)
			return NULL;	/* it is behind: a later answer wakes us */
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
			tmpl_closed(t);
			return NULL;
		}
		tmpl_break(t, "unable to send FORK: %s",
		    n == -1 ? strerror(errno) : "short write");
		return NULL;
	}
	owed_push(t, w);
	if (t->nowed == 1)
		answer_arm(t);
	return w;
}

void
template_renew(struct pool *p, const char *why)
{
	struct templates *ts = p->tmpl;

	if (ts == NULL || ts->cur == NULL || !tmpl_wanted(p))
		return;
	tlog(ts->cur, LOG_INFO, "%s: starting a new template; workers are "
	    "forked from it once it is ready", why);
	ts->cur->retired = true;
	ts->cur = NULL;
	ev_timer_stop(p->rd->loop, &ts->restart);
	tmpl_start(ts);
	template_reconcile(p);
}

static struct tmpl *
tmpl_of(struct pool *p, struct worker *w)
{
	struct tmpl *t;

	if (p->tmpl == NULL)
		return NULL;
	TAILQ_FOREACH(t, &p->tmpl->all, entry)
		if (t->w == w)
			return t;
	return NULL;
}

void
template_exited(struct pool *p, struct worker *w, int status)
{
	struct templates *ts = p->tmpl;
	struct tmpl *t = tmpl_of(p, w);
	double up = mono_now() - w->spawn_mono;
	bool failure, expected;
	struct event e = { .slot = -1, .pid = w->pid, .status = status,
		.uptime_s = up, .kind = "template", .reason = REASON_CRASH };
	uint64_t delay_ms;
	char st[64], d[32];

	if (t == NULL) {		/* cannot happen: forget the process */
		worker_free(w);
		return;
	}
	units_format_status(status, st, sizeof st);
	expected = !t->broken && (w->state == WS_DRAINING ||
	    w->state == WS_KILLED) && w->stop_reason != REASON_KILL_MEMORY;
	failure = t->broken || (!expected && !t->retired);
	if (t->nowed > 0 || t->fd != -1)
		tmpl_shut(t);
	if (t == ts->cur)
		ts->cur = NULL;
	if (!failure) {
		tlog(t, LOG_INFO, "%s after %.2fs", st, up);
	} else {
		if (!t->explained)
			snprintf(ts->last_error, sizeof ts->last_error,
			    "template %u %s after %.2fs%s", t->gen, st, up,
			    t->ready ? "" : ", before READY=1");
		ts->failed++;
		snprintf(e.pool, sizeof e.pool, "%s", p->name);
		snprintf(e.detail, sizeof e.detail, "%.*s",
		    (int)sizeof e.detail - 1, ts->last_error);
		events_add(p->rd->events, &e);
		/* As a slot's: the backoff starts over after min_uptime of
		 * service. */
		if (t->ready && up * 1000 >= (double)p->cfg->min_uptime_ms)
			ts->failures = 0;
		ts->failures++;
		delay_ms = policy_backoff(p->cfg->restart_backoff_ms,
		    ts->failures, BACKOFF_MAX_MS);
		if (!pool_template_failure(p, w) || !tmpl_wanted(p)) {
			tlog(t, LOG_WARNING, "failed: %s after %.2fs", st, up);
		} else {
			tlog(t, LOG_WARNING, "failed: %s after %.2fs; a new "
			    "template in %s (workers keep running)", st, up,
			    units_format_duration(delay_ms, d, sizeof d));
			ev_timer_init(&ts->restart, restart_cb,
			    (double)delay_ms / 1000.0, 0.0);
			ts->restart.data = ts;
			ev_timer_start(p->rd->loop, &ts->restart);
		}
	}
	worker_kill_leftovers(w);
	tmpl_free(t);
	template_reconcile(p);
}

void
template_timeout(struct pool *p, struct worker *w)
{
	struct tmpl *t = tmpl_of(p, w);
	char d[32];

	notify_flush(p->rd->notify);	/* READY=1 may be waiting */
	if (t == NULL || w->state != WS_STARTING || t->ready)
		return;
	tmpl_break(t, "no READY=1 within ready_timeout %s",
	    units_format_duration(w->cfg->ready_timeout_ms, d, sizeof d));
}

static void
tmpl_ready(struct pool *p, struct tmpl *t)
{
	struct worker *w = t->w;

	worker_set_ready(w);
	t->ready = true;
	tlog(t, LOG_INFO, "ready: forking workers");
	if (t == p->tmpl->cur) {
		template_reconcile(p);	/* retire the previous ones */
		pool_template_ready(p);
	}
}

void
template_notify(struct pool *p, struct worker *w, char *buf, size_t len)
{
	struct tmpl *t = tmpl_of(p, w);
	char *line, *save = NULL;

	(void)len;
	if (t == NULL)
		return;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "READY=1") == 0 && !t->ready &&
		    w->state == WS_STARTING && !t->broken)
			tmpl_ready(p, t);
		else if (strncmp(line, "STATUS=", 7) == 0) {
			free(w->status);
			w->status = xstrdup(line + 7);
		}
	}
}

/* Sample it; kill_memory is the one limit a template has. */
static void
tmpl_check(struct pool *p, struct tmpl *t, double now)
{
	char a[16], b[16];

	if (t->w->state != WS_READY || worker_sample(t->w, now,
	    t->w->limits.kill_memory != 0) == -1)
		return;
	if (t->w->limits.kill_memory == 0 ||
	    t->w->memory < t->w->limits.kill_memory)
		return;
	snprintf(p->tmpl->last_error, sizeof p->tmpl->last_error,
	    "template %u %s %s > kill_memory %s", t->gen,
	    mem_metric_name(t->w->cfg->memory_metric),
	    units_format_size(t->w->memory, a, sizeof a),
	    units_format_size(t->w->limits.kill_memory, b, sizeof b));
	tlog(t, LOG_WARNING, "%s over kill_memory %s, killing it", a, b);
	t->broken = t->explained = true;
	worker_kill(t->w, REASON_KILL_MEMORY);
	tmpl_shut(t);
}

void
template_sample(struct pool *p, double now)
{
	struct tmpl *t, *next;

	if (p->tmpl == NULL)
		return;
	TAILQ_FOREACH_SAFE(t, &p->tmpl->all, entry, next)
		tmpl_check(p, t, now);
}

void
template_event(struct pool *p, struct worker *w)
{
	struct tmpl *t = tmpl_of(p, w);

	if (t != NULL)
		tmpl_check(p, t, mono_now());
}

void
template_shutdown(struct pool *p)
{
	struct tmpl *t;

	if (p->tmpl == NULL)
		return;
	ev_timer_stop(p->rd->loop, &p->tmpl->restart);
	TAILQ_FOREACH(t, &p->tmpl->all, entry) {
		t->retired = true;
		worker_drain(t->w, REASON_SHUTDOWN, p->cfg->shutdown_timeout_ms);
	}
	p->tmpl->cur = NULL;
}

void
template_kill_all(struct pool *p)
{
	struct tmpl *t;

	if (p->tmpl == NULL)
		return;
	TAILQ_FOREACH(t, &p->tmpl->all, entry)
		if (t->w->state != WS_KILLED)
			worker_kill(t->w, REASON_SHUTDOWN);
}

bool
template_is_gone(const struct pool *p)
{
	return p->tmpl == NULL || TAILQ_EMPTY(&p->tmpl->all);
}

static void
tmpl_free(struct tmpl *t)
{
	struct ev_loop *loop = t->set->pool->rd->loop;

	TAILQ_REMOVE(&t->set->all, t, entry);
	if (t->set->cur == t)
		t->set->cur = NULL;
	if (t->fd != -1) {
		ev_io_stop(loop, &t->io);
		close(t->fd);
	}
	ev_timer_stop(loop, &t->answer);
	free(t->owed);
	worker_free(t->w);
	free(t);
}

void
template_free(struct pool *p)
{
	struct tmpl *t;

	if (p->tmpl == NULL)
		return;
	while ((t = TAILQ_FIRST(&p->tmpl->all)) != NULL) {
		nforking -= (unsigned int)t->nowed;
		t->nowed = 0;		/* pool_free frees those workers */
		tmpl_free(t);
	}
	ev_timer_stop(p->rd->loop, &p->tmpl->restart);
	free(p->tmpl);
	p->tmpl = NULL;
}

void
template_info(const struct pool *p, struct template_info *ti)
{
	const struct templates *ts = p->tmpl;
	const struct tmpl *t;

	memset(ti, 0, sizeof *ti);
	if (ts == NULL)
		return;
	if (ts->cur != NULL) {
		ti->w = ts->cur->w;
		ti->ready = ts->cur->ready;
		ti->generation = ts->cur->gen;
	}
	TAILQ_FOREACH(t, &ts->all, entry) {
		ti->inflight += (unsigned int)t->nowed;
		ti->old += t != ts->cur;
	}
	ti->forks = ts->forks;
	ti->failures = ts->failed;
	ti->last_error = ts->last_error[0] != '\0' ? ts->last_error : NULL;
	if (ev_is_active(&ts->restart))
		ti->restart_in = ev_timer_remaining(p->rd->loop,
		    (ev_timer *)&ts->restart);
}

/* ---- daemon-wide ---- */

void
template_poll(struct recyclerd *rd)
{
	struct pool *p;
	struct tmpl *t, *next;

	if (nforking == 0)
		return;
	LIST_FOREACH(p, &rd->pools, entry) {
		if (p->tmpl == NULL)
			continue;
		TAILQ_FOREACH_SAFE(t, &p->tmpl->all, entry, next)
			if (t->nowed > 0)
				tmpl_read(t);
	}
}

bool
template_forking(struct recyclerd *rd)
{
	(void)rd;
	return nforking > 0;
}

bool
template_reaped(struct recyclerd *rd, pid_t pid, int status)
{
	(void)rd;
	if (nforking == 0)
		return false;
	if (nearly == EARLY_MAX)
		memmove(early, early + 1, --nearly * sizeof *early);
	early[nearly].pid = pid;
	early[nearly].status = status;
	nearly++;
	return true;
}

bool
template_stash(struct recyclerd *rd, pid_t pid, const char *buf, size_t len)
{
	(void)rd;
	if (nforking == 0 || nstash == STASH_MAX || len > STASH_BYTES)
		return false;
	stash[nstash].pid = pid;
	stash[nstash].len = len;
	memcpy(stash[nstash].buf, buf, len);
	stash[nstash].buf[len] = '\0';
	nstash++;
	return true;
}
