/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the scheduling of one pool: which slot needs a process, which
 * worker is recycled next, how long a crashed slot waits, when the pool
 * gives up.
 *
 * Everything converges in pool_reconcile(), called after every change: it
 * starts what is missing and rolls pending recycles, max_recycling at a
 * time. Recycling is overlapped by default: the replacement is spawned in
 * the same slot, and the old worker is drained only once the replacement is
 * ready, so the pool never serves with fewer than `workers` processes.
 */
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "children.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "template.h"
#include "recyclerd.h"
#include "units.h"
#include "worker.h"

#define BACKOFF_MAX_MS		(60 * 1000)
/* Spawns per loop turn: forking 200 workers in one go would keep the loop
 * (notify messages, samples, the control socket) waiting for seconds. */
#define SPAWN_BATCH		16
#define BASELINE_MAX_MS		(60 * 60 * 1000)

static void pool_reconcile(struct pool *);
static void pool_sample_cb(struct ev_loop *, ev_timer *, int);

/* RECYCLERD_CHECK_INVARIANTS=1 (the test suite sets it): after every
 * reconciliation, recount what the pool keeps counted and abort on a
 * difference. O(workers) each time: for tests, never in production. */
static int check_invariants = -1;

static const char *const pool_state_names[] = {
	[POOL_RUNNING] = "running",
	[POOL_STOPPED] = "stopped",
	[POOL_FAILED] = "failed",
	[POOL_REMOVED] = "removed",
};

const char *
pool_state_name(enum pool_state s)
{
	return pool_state_names[s];
}

#define plog(p, prio, ...) do {						\
	struct log_ctx plog_ctx_ = { .pool = (p)->name, .worker = -1 };	\
	log_ctx((prio), &plog_ctx_, __VA_ARGS__);			\
} while (0)

/*
 * Every change of a pool's state after pool_new() goes through here, so
 * that each one is logged (at debug: the callers log what the operator
 * needs to know, in their own words).
 */
static void
pool_set_state(struct pool *p, enum pool_state next, const char *why)
{
	if (p->state != next)
		plog(p, LOG_DEBUG, "%s -> %s (%s)", pool_state_names[p->state],
		    pool_state_names[next], why);
	p->state = next;
}

/* ---- environment and credentials, prepared once per configuration ---- */

/* Names that describe the daemon's own sockets, watchdog and journal
 * stream (or that we set for each worker): never passed on. */
static bool
env_is_ours(const char *kv)
{
	static const char *const drop[] = { "NOTIFY_SOCKET=", "LISTEN_",
		"WATCHDOG_", "JOURNAL_STREAM=", "RECYCLERD_POOL=",
		"RECYCLERD_WORKER=" };
	size_t i;

	for (i = 0; i < nitems(drop); i++)
		if (strncmp(kv, drop[i], strlen(drop[i])) == 0)
			return true;
	return false;
}

static bool env_overridden(const char *, char *const *);

/* What a user= worker takes from the daemon's environment. */
static bool
env_is_locale(const char *kv)
{
	return strncmp(kv, "PATH=", 5) == 0 || strncmp(kv, "LANG=", 5) == 0 ||
	    strncmp(kv, "LANGUAGE=", 9) == 0 || strncmp(kv, "LC_", 3) == 0 ||
	    strncmp(kv, "TZ=", 3) == 0;
}

/*
 * A user= worker starts from a clean slate, as login(1) would give it:
 * PATH, LANG, LANGUAGE, LC_* and TZ from the daemon, HOME, USER, LOGNAME
 * and SHELL from the user's passwd entry. Never /root or the daemon's
 * other variables. Entries the pool's environment= sets are left out.
 */
static size_t
env_for_user(char **env, const struct pool_config *cfg)
{
	extern char **environ;
	struct passwd *pw;
	size_t i = 0, k;
	char **e;
	char *kv;

	for (e = environ; *e != NULL; e++)
		if (env_is_locale(*e) && !env_overridden(*e, cfg->env))
			env[i++] = xstrdup(*e);
	if (getenv("PATH") == NULL && !env_overridden("PATH=", cfg->env))
		env[i++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	pw = getpwuid(cfg->uid);
	xasprintf(&kv, "HOME=%s", pw != NULL && pw->pw_dir[0] != '\0' ?
	    pw->pw_dir : "/");
	env[i++] = kv;
	if (pw != NULL) {
		xasprintf(&env[i++], "USER=%s", pw->pw_name);
		xasprintf(&env[i++], "LOGNAME=%s", pw->pw_name);
		xasprintf(&env[i++], "SHELL=%s", pw->pw_shell[0] != '\0' ?
		    pw->pw_shell : "/bin/sh");
	}
	/* environment= wins over the four above. */
	for (k = 0; k < i;)
		if (env_overridden(env[k], cfg->env)) {
			free(env[k]);
			env[k] = env[--i];
		} else
			k++;
	return i;
}

static bool
env_overridden(const char *kv, char *const *pool_env)
{
	size_t klen = strcspn(kv, "=");

	for (; pool_env != NULL && *pool_env != NULL; pool_env++)
		if (strncmp(*pool_env, kv, klen + 1) == 0)
			return true;
	return false;
}

static void
pool_prepare(struct pool *p)
{
	extern char **environ;
	const struct pool_config *cfg = p->cfg;
	size_t n = strv_len(environ) + strv_len(cfg->env) + 9, i = 0;
	char **env = xcalloc(n, sizeof *env), **e;
	int ng = 64;

	if (cfg->user != NULL)
		i = env_for_user(env, cfg);
	else
		for (e = environ; *e != NULL; e++)
			if (!env_is_ours(*e) && !env_overridden(*e, cfg->env))
				env[i++] = xstrdup(*e);
	for (e = cfg->env; e != NULL && *e != NULL; e++)
		env[i++] = xstrdup(*e);
	xasprintf(&env[i++], "NOTIFY_SOCKET=%s", notify_path(p->rd->notify,
	    cfg->user != NULL ? cfg->uid : geteuid()));
	xasprintf(&env[i++], "RECYCLERD_POOL=%s", p->name);
	env[i] = NULL;
	strv_free(p->env);
	p->env = env;

	free(p->groups);
	p->groups = NULL;
	p->ngroups = 0;
	if (cfg->user != NULL) {
		p->groups = xcalloc((size_t)ng, sizeof *p->groups);
		if (getgrouplist(cfg->user, cfg->gid, p->groups, &ng) == -1) {
			p->groups = xrealloc(p->groups,
			    (size_t)ng * sizeof *p->groups);
			if (getgrouplist(cfg->user, cfg->gid, p->groups,
			    &ng) == -1)
				ng = 0;
		}
		p->ngroups = (size_t)ng;
	} else if (cfg->group != NULL) {
		p->groups = xcalloc(1, sizeof *p->groups);
		p->groups[0] = cfg->gid;
		p->ngroups = 1;
	}
}

static void
slot_respawn_cb(struct ev_loop *, ev_timer *, int);

/* Grow the slot array to n; slots are never shrunk while the pool lives. */
static void
pool_set_slots(struct pool *p, unsigned int n)
{
	unsigned int i;

	if (n <= p->nslots)
		return;
	p->slots = xrealloc(p->slots, n * sizeof *p->slots);
	for (i = p->nslots; i < n; i++) {
		p->slots[i] = xcalloc(1, sizeof **p->slots);
		p->slots[i]->pool = p;
		p->slots[i]->index = i;
		TAILQ_INIT(&p->slots[i]->members);
		ev_init(&p->slots[i]->respawn, slot_respawn_cb);
		p->slots[i]->respawn.data = p->slots[i];
	}
	p->nslots = n;
}

static unsigned int
ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned int)n : 1;
}

/* ---- bookkeeping: every count the events need, kept up to date ---- */

/*
 * Does w hold one of the pool's max_recycling places? While its
 * replacement starts. The place is released when the replacement is
 * ready (or stands by, prespawn), not when w is reaped: old workers
 * draining do not hold back the next replacements. Without overlap there
 * is no replacement: the place is held while w drains.
 */
static unsigned int
recycle_weight(const struct worker *w, enum worker_state state)
{
	return (w->replaced_by != NULL && !w->standby) || (!w->cfg->overlap &&
	    (state == WS_DRAINING || state == WS_KILLED) &&
	    reason_is_recycle(w->stop_reason));
}

/* A slot is settled once it has a ready worker or has failed: start-up is
 * over for it. Only slots below desired count. */
static void
slot_settle(struct pool *p, struct slot *s)
{
	bool settled = s->nready > 0 || s->failures > 0;

	if (settled == s->settled)
		return;
	s->settled = settled;
	if (s->index < p->desired)
		p->nsettled = settled ? p->nsettled + 1 : p->nsettled - 1;
}

/* desired changed: count again (an operator's action, O(desired)). */
static void
pool_set_desired(struct pool *p, unsigned int n)
{
	unsigned int i;

	p->desired = n;
	pool_set_slots(p, n);
	p->nsettled = 0;
	for (i = 0; i < n; i++)
		p->nsettled += p->slots[i]->settled;
}

/* Look at slot s at the next reconciliation: it may need a process. */
static void
slot_queue(struct pool *p, unsigned int slot)
{
	struct slot *s;

	p->dirty = true;
	if (slot >= p->nslots || (s = p->slots[slot])->queued)
		return;
	s->queued = true;
	TAILQ_INSERT_TAIL(&p->work, s, work_entry);
}

static void
slot_queue_all(struct pool *p)
{
	unsigned int i;

	pool_set_slots(p, p->desired);
	for (i = 0; i < p->desired; i++)
		slot_queue(p, i);
}

static void
pending_remove(struct pool *p, struct worker *w)
{
	if (!w->pending)
		return;
	heap_remove(&p->pending, &w->pending_node);
	w->pending = false;
}

#define pending_worker(n) \
	((struct worker *)((char *)(n) - offsetof(struct worker, pending_node)))

/* How urgent the recycle of w is: see policy_urgency(). */
static double
worker_urgency(const struct pool *p, const struct worker *w)
{
	double rate = 0.0;

	(void)growth_per_sec(&w->growth, &rate);
	return policy_urgency(w->memory, w->limits.recycle_memory, rate,
	    p->start_median);
}

/* Wait for a recycle place (pool_reconcile_now), by urgency. */
static void
pending_add(struct pool *p, struct worker *w)
{
	heap_push(&p->pending, &w->pending_node, worker_urgency(p, w));
	w->pending = true;
}

unsigned int
pool_max_recycling(const struct pool *p)
{
	return policy_max_recycling(p->cfg->max_recycling, p->desired,
	    p->ncpu);
}

const double pool_overshoot_bounds[OVERSHOOT_BUCKETS] = {
	1.0, 1.1, 1.25, 1.5, 2.0, 4.0, INFINITY,
};

/* A worker recycled for memory begins to drain: how far past its limit? */
static void
pool_note_overshoot(struct pool *p, const struct worker *w)
{
	double ratio;
	size_t i;

	if (w->stop_reason != REASON_MEMORY || w->limits.recycle_memory == 0 ||
	    w->peak == 0)
		return;
	ratio = (double)w->peak / (double)w->limits.recycle_memory;
	for (i = 0; ratio > pool_overshoot_bounds[i]; i++)
		;
	p->overshoot_hist[i]++;
	p->overshoot_count++;
	p->overshoot_sum += ratio;
}

static void
pool_worker_state(struct pool *p, struct worker *w, enum worker_state prev)
{
	struct slot *s;

	if (w->is_template)
		return;			/* in no list, no count */
	s = p->slots[w->slot];
	p->nstate[prev]--;
	p->nstate[w->state]++;
	p->recycling += recycle_weight(w, w->state) - recycle_weight(w, prev);
	if (prev == WS_READY)
		s->nready--;
	if (w->state == WS_READY)
		s->nready++;
	slot_settle(p, s);
	if ((w->state == WS_DRAINING || w->state == WS_KILLED) &&
	    (prev == WS_READY || prev == WS_STARTING))
		pool_note_overshoot(p, w);
	if (w->state == WS_DRAINING || w->state == WS_KILLED) {
		pending_remove(p, w);
		slot_queue(p, w->slot);	/* overlap: a successor may start */
	}
	p->dirty = true;
}

/* w joins the pool (just spawned), or leaves it (reaped). */
static void
pool_attach(struct pool *p, struct worker *w)
{
	struct slot *s = p->slots[w->slot];

	TAILQ_INSERT_TAIL(&p->workers, w, entry);
	TAILQ_INSERT_TAIL(&s->members, w, slot_entry);
	s->starts++;
	p->nworkers++;
	p->nstate[w->state]++;
	if (w->state == WS_READY)
		s->nready++;
	slot_settle(p, s);
}

static void
pool_detach(struct pool *p, struct worker *w)
{
	struct slot *s = p->slots[w->slot];

	pending_remove(p, w);
	p->recycling -= recycle_weight(w, w->state);
	p->nstate[w->state]--;
	if (w->state == WS_READY)
		s->nready--;
	slot_settle(p, s);
	TAILQ_REMOVE(&s->members, w, slot_entry);
	TAILQ_REMOVE(&p->workers, w, entry);
	p->nworkers--;
	slot_queue(p, w->slot);
}

/* The replacement relation, both ends and the count at once. */
static void
replacement_link(struct pool *p, struct worker *old, struct worker *r)
{
	unsigned int before = recycle_weight(old, old->state);

	old->replaced_by = r;
	r->replaces = old;
	p->recycling += recycle_weight(old, old->state) - before;
}

static void
replacement_unlink(struct pool *p, struct worker *old)
{
	unsigned int before;

	if (old == NULL || old->replaced_by == NULL)
		return;
	before = recycle_weight(old, old->state);
	old->replaced_by->replaces = NULL;
	old->replaced_by = NULL;
	/* Started ahead for a crossing that is no longer awaited: another
	 * prediction may ask again. */
	old->prespawned = old->standby = false;
	p->recycling += recycle_weight(old, old->state) - before;
}

/* prespawn: the replacement of old is ready before old crossed its limit;
 * it stands by (serving too) and old drains at the crossing. */
static void
replacement_stand_by(struct pool *p, struct worker *old)
{
	unsigned int before = recycle_weight(old, old->state);
	struct worker *r = old->replaced_by;
	char a[16];

	old->standby = true;
	old->standby_mono = mono_now();
	p->recycling += recycle_weight(old, old->state) - before;
	wlog(old, LOG_INFO, "replacement [pid %ld] ready after %.3fs, standing "
	    "by until it crosses recycle_memory %s", (long)r->pid,
	    r->ready_mono - r->spawn_mono, units_format_size(
	    old->limits.recycle_memory, a, sizeof a));
}

/* r, old's replacement, is ready (and stood by, prespawn, if old->standby):
 * old drains now. */
static void
replacement_ready_drain(struct pool *p, struct worker *old, struct worker *r)
{
	char by[48] = "";

	if (old->standby)
		snprintf(by, sizeof by, " (it stood by for %.3fs)",
		    mono_now() - old->standby_mono);
	wlog(old, LOG_INFO, "replacement [pid %ld] ready after %.3fs, "
	    "draining with %s%s", (long)r->pid, r->ready_mono - r->spawn_mono,
	    units_signal_name(old->cfg->drain_signal), by);
	replacement_unlink(p, old);
	worker_drain(old, old->recycle_reason, old->cfg->drain_timeout_ms);
}

/* Recount everything counted above; abort on a difference. */
static void
pool_check_counts(const struct pool *p)
{
	unsigned int nstate[WS__COUNT] = { 0 }, recycling = 0, settled = 0;
	unsigned int n = 0, i, ready, members;
	const struct worker *w;
	bool bad = false;

	TAILQ_FOREACH(w, &p->workers, entry) {
		n++;
		nstate[w->state]++;
		recycling += recycle_weight(w, w->state);
		if (w->slot >= p->nslots ||
		    (w->replaced_by != NULL && w->replaced_by->replaces != w))
			bad = true;
	}
	for (i = 0; i < p->nslots; i++) {
		ready = members = 0;
		TAILQ_FOREACH(w, &p->slots[i]->members, slot_entry) {
			members++;
			ready += w->state == WS_READY;
			bad |= w->slot != i;
		}
		bad |= ready != p->slots[i]->nready;
		bad |= p->slots[i]->settled !=
		    (ready > 0 || p->slots[i]->failures > 0);
		if (i < p->desired)
			settled += p->slots[i]->settled;
	}
	for (i = 0; i < WS__COUNT; i++)
		bad |= nstate[i] != p->nstate[i];
	bad |= n != p->nworkers || recycling != p->recycling ||
	    settled != p->nsettled;
	if (bad) {
		log_err("pool %s: internal counts are off: workers %u/%u, "
		    "recycling %u/%u, settled %u/%u", p->name, p->nworkers, n,
		    p->recycling, recycling, p->nsettled, settled);
		abort();
	}
}

static bool
slot_backing_off(const struct pool *p, unsigned int slot)
{
	return slot < p->nslots && ev_is_active(&p->slots[slot]->respawn);
}

/* ---- counting ---- */

unsigned int
pool_count(const struct pool *p, int state)
{
	return state < 0 ? p->nworkers : p->nstate[state];
}

bool
pool_is_empty(const struct pool *p)
{
	return TAILQ_EMPTY(&p->workers) && template_is_gone(p);
}

/* A worker of the slot, other than but, that serves or will serve. */
static struct worker *
slot_active(const struct pool *p, unsigned int slot, const struct worker *but)
{
	struct worker *w;

	if (slot >= p->nslots)
		return NULL;
	TAILQ_FOREACH(w, &p->slots[slot]->members, slot_entry)
		if (w != but &&
		    (w->state == WS_STARTING || w->state == WS_READY))
			return w;
	return NULL;
}

bool
pool_is_settled(const struct pool *p)
{
	return p->state != POOL_RUNNING || p->nsettled >= p->desired;
}

/* ---- spawning ---- */

static void slot_backoff(struct slot *, uint64_t);

/*
 * No process could be made (EAGAIN, EMFILE, ENOMEM: worker_spawn logged
 * it): retry the slot with the crash backoff, or the pool would stay short
 * for good. Not a rapid_fail failure: the worker never ran, and a machine
 * short of processes should not leave the pool failed once it recovers.
 */
static void
pool_spawn_failed(struct pool *p, unsigned int slot)
{
	struct slot *s;
	uint64_t delay_ms;
	char d[32];

	p->spawn_failures++;
	if (slot >= p->nslots)
		return;
	s = p->slots[slot];
	s->failures++;
	slot_settle(p, s);
	delay_ms = policy_backoff(p->cfg->restart_backoff_ms, s->failures,
	    BACKOFF_MAX_MS);
	plog(p, LOG_WARNING, "worker %u: retrying the start in %s", slot,
	    units_format_duration(delay_ms, d, sizeof d));
	slot_backoff(s, delay_ms);
}

/* What the workers tell us (struct worker_ops). */
static void pool_worker_state(struct pool *, struct worker *,
    enum worker_state);
static void pool_worker_timeout(struct pool *, struct worker *);
static void pool_worker_event(struct pool *, struct worker *);

static void
on_worker_state(struct worker *w, enum worker_state prev)
{
	pool_worker_state(w->pool, w, prev);
}

static void
on_worker_exited(struct worker *w, int status)
{
	pool_worker_exited(w->pool, w, status);
}

static void
on_worker_timeout(struct worker *w)
{
	pool_worker_timeout(w->pool, w);
}

static void
on_worker_event(struct worker *w)
{
	pool_worker_event(w->pool, w);
}

static const struct worker_ops pool_worker_ops = {
	.state = on_worker_state,
	.exited = on_worker_exited,
	.timeout = on_worker_timeout,
	.event = on_worker_event,
};

struct worker_host
pool_host(struct pool *p)
{
	return (struct worker_host){
		.rd = p->rd,
		.pool = p,
		.name = p->name,
		.ops = &pool_worker_ops,
		.env = p->env,
		.groups = p->groups,
		.ngroups = p->ngroups,
		.sockets = &p->sockets,
		.cg = p->cg,
	};
}

static struct worker *
pool_spawn(struct pool *p, unsigned int slot)
{
	struct worker_host host = pool_host(p);
	struct worker *w;

	if (p->spawned_now >= SPAWN_BATCH) {
		if (!ev_is_active(&p->more))
			ev_timer_start(p->rd->loop, &p->more);
		return NULL;
	}
	p->spawned_now++;

	if (p->cfg->spawn == SPAWN_TEMPLATE) {
		/* NULL: no ready template yet; it queues every slot when it
		 * is (pool_template_ready). */
		if ((w = template_fork(p, slot, p->next_gen + 1)) == NULL)
			return NULL;
		p->next_gen++;
		pool_attach(p, w);
		p->spawns++;
		return w;
	}
	w = worker_spawn(&host, slot, ++p->next_gen, p->snap, p->cfg);
	if (w == NULL) {
		pool_spawn_failed(p, slot);
		return NULL;
	}
	pool_attach(p, w);
	p->spawns++;
	if (!w->failed && p->cfg->ready == READY_SPAWN)
		worker_set_ready(w);	/* the caller reconciles */
	return w;
}

static void
slot_respawn_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct slot *s = t->data;

	(void)loop;
	(void)revents;
	slot_queue(s->pool, s->index);
}

static void
slot_backoff(struct slot *s, uint64_t delay_ms)
{
	struct ev_loop *loop = s->pool->rd->loop;

	ev_timer_stop(loop, &s->respawn);
	ev_timer_set(&s->respawn, (double)delay_ms / 1000.0, 0.0);
	ev_timer_start(loop, &s->respawn);
}

/* Begin the graceful recycle of w, overlapped or not; false when no
 * process could be started for it now (it stays pending). */
static bool
pool_begin_recycle(struct pool *p, struct worker *w)
{
	struct worker *r;

	if (!p->cfg->overlap) {
		if (w->prespawned) {	/* overlap turned off by a reload */
			w->prespawned = false;
			return true;
		}
		wlog(w, LOG_INFO, "draining with %s",
		    units_signal_name(w->cfg->drain_signal));
		worker_drain(w, w->recycle_reason, w->cfg->drain_timeout_ms);
		return true;
	}
	if ((r = pool_spawn(p, w->slot)) == NULL)
		return false;		/* no fork now; try again later */
	replacement_link(p, w, r);
	if (r->state == WS_READY && w->prespawned)	/* ready = spawn */
		replacement_stand_by(p, w);
	else if (r->state == WS_READY)
		replacement_ready_drain(p, w, r);
	return true;
}

/* May a new process start in slot now? */
static bool
slot_needs_spawn(const struct pool *p, unsigned int slot)
{
	const struct worker *w;

	if (slot_backing_off(p, slot))
		return false;
	TAILQ_FOREACH(w, &p->slots[slot]->members, slot_entry) {
		if (w->state == WS_STARTING || w->state == WS_READY)
			return false;
		/* Without overlap the old process must be gone first. */
		if (!p->cfg->overlap)
			return false;
	}
	return true;
}

/*
 * Ask for a reconciliation: it runs at the end of this loop turn, from
 * pool_run_deferred(), once however many events asked for it.
 */
static void
pool_reconcile(struct pool *p)
{
	p->dirty = true;
}

/* Slots past the desired count drain (scale down, stop, removal). */
static void
pool_trim(struct pool *p)
{
	struct worker *w, *next;

	TAILQ_FOREACH_SAFE(w, &p->workers, entry, next)
		if ((w->slot >= p->desired || p->state == POOL_STOPPED ||
		    p->state == POOL_REMOVED) &&
		    (w->state == WS_STARTING || w->state == WS_READY))
			worker_drain(w, p->state == POOL_REMOVED ?
			    REASON_RELOAD : REASON_SCALE,
			    w->cfg->drain_timeout_ms);
}

/*
 * Converge the pool towards what is wanted, looking only at what changed:
 * the queued slots and the pending recycles. Each costs O(1).
 */
static void
pool_reconcile_now(struct pool *p)
{
	struct worker **later = NULL, *w;
	struct heap_node *n;
	struct slot *s;
	size_t nlater = 0;
	unsigned int max;

	p->spawned_now = 0;
	if (p->rd->stopping)
		return;
	if (p->trim) {
		p->trim = false;
		pool_trim(p);
	}
	if (p->state != POOL_RUNNING)
		return;

	while ((s = TAILQ_FIRST(&p->work)) != NULL) {
		if (p->spawned_now >= SPAWN_BATCH) {
			ev_timer_start(p->rd->loop, &p->more);
			return;		/* the rest at the next turn */
		}
		TAILQ_REMOVE(&p->work, s, work_entry);
		s->queued = false;
		if (s->index < p->desired && slot_needs_spawn(p, s->index))
			(void)pool_spawn(p, s->index);
	}

	/* Pending recycles, most urgent first, at most max_recycling under
	 * way. A worker whose slot backs off waits and keeps its urgency. */
	max = pool_max_recycling(p);
	while (p->recycling < max && (n = heap_pop(&p->pending)) != NULL) {
		w = pending_worker(n);
		w->pending = false;
		if (slot_backing_off(p, w->slot)) {
			later = xrealloc(later, (nlater + 1) * sizeof *later);
			later[nlater++] = w;
			continue;
		}
		if (!pool_begin_recycle(p, w)) {
			heap_push(&p->pending, &w->pending_node, n->key);
			w->pending = true;
			break;
		}
	}
	while (nlater > 0) {
		w = later[--nlater];
		pending_add(p, w);
	}
	free(later);
}

void
pool_run_deferred(struct pool *p)
{
	template_reconcile(p);
	/* Spawning with ready = spawn makes workers ready at once, which
	 * asks again: loop until nothing is asked (the batch bounds it). */
	while (p->dirty) {
		p->dirty = false;
		pool_reconcile_now(p);
		if (ev_is_active(&p->more))
			break;
	}
	if (check_invariants == -1) {
		const char *e = getenv("RECYCLERD_CHECK_INVARIANTS");

		check_invariants = e != NULL && strcmp(e, "1") == 0;
	}
	if (check_invariants)
		pool_check_counts(p);
}

/* ---- recycling decisions ---- */

/* Ask for the recycle of w; it begins when max_recycling allows. */
static void
pool_want_recycle(struct pool *p, struct worker *w, enum reason why,
    const char *detail)
{
	double now = mono_now();
	char grow[64] = "", a[16], b[16];
	double per_s, per_task;

	if (w->state != WS_READY || w->recycle_reason != REASON_NONE)
		return;
	w->recycle_reason = why;
	if (w->prespawned) {
		char ahead[sizeof w->recycle_detail];

		memcpy(ahead, w->recycle_detail, sizeof ahead);
		snprintf(w->recycle_detail, sizeof w->recycle_detail, "%s; "
		    "replacement started ahead: %.80s", detail, ahead);
	} else
		snprintf(w->recycle_detail, sizeof w->recycle_detail, "%s",
		    detail);
	w->recycle_mono = now;
	w->recycle_memory_at = w->memory;
	w->smaps_lead = 0;	/* recycle_memory is behind it now */
	worker_disarm_events(w);
	if (growth_per_sec(&w->growth, &per_s) == 0) {
		int n = snprintf(grow, sizeof grow, ", growth %s%s/s",
		    per_s < 0 ? "-" : "", units_format_size((uint64_t)(per_s < 0 ?
		    -per_s : per_s), a, sizeof a));

		if (growth_per_task(&w->growth, &per_task) == 0 && n > 0)
			snprintf(grow + n, sizeof grow - (size_t)n, " %s%s/task",
			    per_task < 0 ? "-" : "", units_format_size((uint64_t)
			    (per_task < 0 ? -per_task : per_task), b,
			    sizeof b));
	}
	{
		struct log_ctx ctx = worker_ctx(w);
		char up[32];

		ctx.reason = reason_name(why);
		ctx.memory = w->memory;
		ctx.message_id = "5c0a3b6e9f2d4b7a8e1c0d9f6a4b2e71";
		units_format_duration((uint64_t)(worker_uptime(w, now) * 1000),
		    up, sizeof up);
		log_ctx(LOG_NOTICE, &ctx, "recycling (%s): %s, uptime %s, "
		    "tasks %llu%s", reason_name(why), detail, up,
		    (unsigned long long)w->tasks, grow);
	}
	pool_reconcile(p);
	/* A replacement asked for ahead (prespawn) may be waiting for a
	 * place (as urgent as the worker now is), starting, or ready. */
	w->prespawned = false;
	if (w->standby)
		replacement_ready_drain(p, w, w->replaced_by);
	else if (w->pending)
		heap_update(&p->pending, &w->pending_node,
		    worker_urgency(p, w));
	else if (w->replaced_by == NULL)
		pending_add(p, w);
}

static const char *
metric_label(const struct worker *w)
{
	if (!w->memory_exact && w->cfg->memory_metric != METRIC_RSS &&
	    w->cfg->memory_metric != METRIC_CGROUP &&
	    w->cfg->memory_metric != METRIC_CGROUP_ANON)
		return "rss";
	return mem_metric_name(w->cfg->memory_metric);
}

static void
pool_baseline(struct pool *p, struct worker *w, double now)
{
	uint64_t hold_ms;
	char a[16], b[16], d[32];

	p->baseline_strikes++;
	hold_ms = policy_backoff(p->cfg->min_uptime_ms > p->cfg->restart_backoff_ms ?
	    p->cfg->min_uptime_ms : p->cfg->restart_backoff_ms,
	    p->baseline_strikes, BASELINE_MAX_MS);
	w->baseline_hold_until = now + (double)hold_ms / 1000.0;
	wlog(w, LOG_ERR, "configuration error: %s %s >= recycle_memory %s "
	    "right after becoming ready: the threshold is below the "
	    "program's baseline; not recycling, next check in %s",
	    metric_label(w), units_format_size(w->memory, a, sizeof a),
	    units_format_size(w->limits.recycle_memory, b, sizeof b),
	    units_format_duration(hold_ms, d, sizeof d));
	{
		struct event e = { .slot = (int)w->slot, .pid = w->pid,
			.kind = "config", .reason = REASON_MEMORY,
			.status = -1, .uptime_s = worker_uptime(w, now),
			.tasks = w->tasks, .memory = w->memory,
			.peak = w->peak };

		snprintf(e.pool, sizeof e.pool, "%s", p->name);
		snprintf(e.detail, sizeof e.detail, "recycle_memory %s is "
		    "below the baseline %s", b, a);
		events_add(p->rd->events, &e);
	}
}

/*
 * A worker that stopped sending WATCHDOG=1 is hung: it cannot drain, so its
 * tree is killed at once and the slot respawned. Counted as a recycle.
 */
static void
pool_watchdog_kill(struct pool *p, struct worker *w, const char *why)
{
	struct log_ctx ctx = worker_ctx(w);

	if (w->state != WS_READY && w->state != WS_STARTING)
		return;
	ctx.reason = "watchdog";
	log_ctx(LOG_WARNING, &ctx, "recycling (watchdog): %s, killing it",
	    why);
	snprintf(w->recycle_detail, sizeof w->recycle_detail, "%s", why);
	replacement_unlink(p, w);
	worker_kill(w, REASON_WATCHDOG);
	pool_reconcile(p);
}

static void
pool_check_watchdog(struct pool *p, struct worker *w, double now)
{
	double last = w->watchdog_mono > w->ready_mono ? w->watchdog_mono :
	    w->ready_mono;
	char d[32], why[96];

	if (now - last < (double)w->cfg->watchdog_ms / 1000.0)
		return;
	snprintf(why, sizeof why, "no WATCHDOG=1 for %s",
	    units_format_duration(w->cfg->watchdog_ms, d, sizeof d));
	pool_watchdog_kill(p, w, why);
}

/*
 * A worker already waiting for its recycle (for a place, or for its
 * replacement to be ready): only how urgent it is, and the hard bound of
 * max_overshoot, matter now. The bound is kept, not merely noticed: the
 * worker is drained when it is past it, or will be by the next sample at
 * its growth rate. -1 when it was drained.
 */
static int
pool_check_condemned(struct pool *p, struct worker *w)
{
	uint64_t bound = policy_overshoot_bound(w->limits.recycle_memory,
	    w->cfg->max_overshoot_ppm), next;
	double rate, interval = (double)w->cfg->sample_interval_ms / 1000.0;
	struct log_ctx ctx;
	char a[16], b[16], c[16], by[64] = "";

	if (w->pending)
		heap_update(&p->pending, &w->pending_node,
		    worker_urgency(p, w));
	if (growth_per_sec(&w->growth, &rate) == -1 || !(rate > 0.0))
		rate = 0.0;
	/* The sampler reads the metric itself from this far below. */
	w->smaps_lead = (uint64_t)(rate * interval);
	if (bound == 0 || !w->memory_exact)
		return 0;
	next = w->memory + w->smaps_lead;
	if (next <= bound)
		return 0;
	/* Each such drain costs the pool a ready worker until its
	 * replacement is ready, however many cross together: the bound is
	 * the operator's, the listening sockets' backlog holds the
	 * connections meanwhile. */
	if (w->memory <= bound)
		snprintf(by, sizeof by, " + %s by the next sample",
		    units_format_size(w->smaps_lead, c, sizeof c));
	ctx = worker_ctx(w);
	ctx.reason = reason_name(w->recycle_reason);
	ctx.memory = w->memory;
	log_ctx(LOG_WARNING, &ctx, "over max_overshoot: %s %s%s > %s while "
	    "waiting for %s, draining at once with %s", metric_label(w),
	    units_format_size(w->memory, a, sizeof a), by,
	    units_format_size(bound, b, sizeof b),
	    w->replaced_by != NULL ? "its replacement" : "a recycle place",
	    units_signal_name(w->cfg->drain_signal));
	w->overshot = true;
	w->recycle_memory_at = w->memory;
	p->overshoot_drains++;
	snprintf(w->recycle_detail + strlen(w->recycle_detail),
	    sizeof w->recycle_detail - strlen(w->recycle_detail),
	    "; drained at once past max_overshoot %s", b);
	replacement_unlink(p, w);	/* the replacement goes on starting */
	worker_drain(w, w->recycle_reason, w->cfg->drain_timeout_ms);
	pool_reconcile(p);
	return -1;
}

/* How far prespawn looks ahead: the slowest recent start, a margin, and
 * the sample that notices the crossing. */
static double
prespawn_horizon(const struct pool *p, const struct worker *w)
{
	return p->start_horizon * PRESPAWN_MARGIN +
	    (double)w->cfg->sample_interval_ms / 1000.0;
}

/*
 * prespawn: start the replacement now when the worker is predicted to
 * cross recycle_memory within the time a replacement takes to be ready
 * (and one sample more), so that the swap happens at the limit. Nothing
 * is decided yet: the worker is recycled at the crossing, as without
 * prespawn, its replacement standing by meanwhile.
 */
static void
pool_check_prespawn(struct pool *p, struct worker *w)
{
	double rate, recent, horizon = prespawn_horizon(p, w);
	char detail[160], a[16], b[16], c[16];

	w->smaps_lead = 0;
	if (w->prespawned || w->prespawn_missed || !w->cfg->overlap ||
	    p->nstart == 0 || growth_per_sec(&w->growth, &rate) == -1)
		return;
	/* A growth that speeds up (a worker taking its share of the load
	 * after its start) shows in the recent points first: the faster of
	 * the two, since late costs more than early. */
	if (growth_recent_per_sec(&w->growth, horizon, &recent) == 0 &&
	    recent > rate)
		rate = recent;
	if (rate <= 0.0)
		return;
	/* The prediction needs the metric itself (pss, uss), and the sampler
	 * reads it only near the limit: from as far below it as the worker
	 * grows within the horizon (once a second there, rss minus the gap
	 * it measured standing for it between: "~" in the detail). */
	w->smaps_lead = (uint64_t)(rate * horizon);
	if (w->smaps_lead > w->limits.recycle_memory / 4 * 3)
		w->smaps_lead = w->limits.recycle_memory / 4 * 3;
	/* No more than twice as far ahead as the points reach back: a burst
	 * (a cache warming up after the start) is not a trend yet. */
	if (w->memory_est == 0 || 2.0 * growth_span(&w->growth) < horizon ||
	    !policy_predict_cross(w->memory_est, w->limits.recycle_memory,
	    rate, horizon))
		return;
	snprintf(detail, sizeof detail, "%s %s%s predicted to cross %s in "
	    "%.2fs at %s/s (replacements start in %.2fs)",
	    mem_metric_name(w->cfg->memory_metric), w->memory_exact ? "" : "~",
	    units_format_size(w->memory_est, a, sizeof a),
	    units_format_size(w->limits.recycle_memory, b, sizeof b),
	    (double)(w->limits.recycle_memory - w->memory_est) / rate,
	    units_format_size((uint64_t)rate, c, sizeof c), p->start_horizon);
	p->prespawns++;
	w->prespawned = true;
	snprintf(w->recycle_detail, sizeof w->recycle_detail, "%s", detail);
	pending_add(p, w);
	wlog(w, LOG_NOTICE, "starting its replacement ahead (prespawn): %s",
	    detail);
	pool_reconcile(p);
}

/*
 * A standby that waits in vain: the worker's growth slowed and it did not
 * cross within twice the horizon it was predicted to cross in (and the
 * samples that confirm a crossing). The prediction is not the limit: the
 * worker keeps serving, the standby drains, and this worker is not
 * predicted again (a start wasted at most once per worker).
 */
static void
pool_check_standby(struct pool *p, struct worker *w, double now)
{
	double wait = 2.0 * prespawn_horizon(p, w) +
	    (double)w->limits.recycle_samples *
	    (double)w->cfg->sample_interval_ms / 1000.0;
	struct worker *r = w->replaced_by;
	char a[16], b[16];

	if (now - w->standby_mono < wait)
		return;
	wlog(w, LOG_NOTICE, "prespawn missed: %s %s still below %s after its "
	    "replacement [pid %ld] stood by for %.2fs; keeping it, draining "
	    "the replacement", metric_label(w),
	    units_format_size(w->memory, a, sizeof a),
	    units_format_size(w->limits.recycle_memory, b, sizeof b),
	    (long)r->pid, now - w->standby_mono);
	p->prespawn_misses++;
	replacement_unlink(p, w);
	w->prespawn_missed = true;
	w->recycle_detail[0] = '\0';
	worker_drain(r, REASON_SCALE, r->cfg->drain_timeout_ms);
	pool_reconcile(p);
}

/*
 * One sample of one ready worker and what follows from it. at_baseline:
 * this sample may judge the program's baseline (the one taken at READY=1,
 * or the first sweep after a ready = spawn start), so being over
 * recycle_memory here is a configuration error, not a leak.
 */
static void
pool_check_worker(struct pool *p, struct worker *w, double now,
    bool at_baseline)
{
	struct policy_input in;
	enum verdict v;
	enum reason why = REASON_NONE;
	char detail[160], a[16], b[16], c[16], d[16];
	bool first;

	if (worker_sample(w, now, false) == -1)
		return;			/* gone: its exit is on its way */
	if (w->recycle_reason != REASON_NONE &&
	    pool_check_condemned(p, w) != 0)
		return;
	/* "Right after becoming ready": the first sample, and soon enough
	 * that the worker cannot have grown meanwhile (a busy loop may have
	 * delayed the sweep). */
	first = w->samples++ == 0 && at_baseline && now - w->ready_mono <=
	    2.0 * (double)p->cfg->sample_interval_ms / 1000.0 + 0.25;
	in.memory = w->memory;
	in.has_memory = true;
	in.tasks = w->tasks;
	in.uptime_ms = (uint64_t)(worker_uptime(w, now) * 1000);
	in.first_sample = first;
	if (w->baseline_hold_until > now)
		in.has_memory = w->limits.kill_memory != 0 &&
		    w->memory > w->limits.kill_memory;
	v = policy_check(&w->limits, &in, &w->over_count, &why);
	if (first && v != VERDICT_BASELINE && w->limits.recycle_memory != 0)
		p->baseline_strikes = 0;
	switch (v) {
	case VERDICT_KEEP:
		if (w->standby)
			pool_check_standby(p, w, now);
		else if (w->cfg->prespawn && w->recycle_reason == REASON_NONE &&
		    !first)
			pool_check_prespawn(p, w);
		/* Its replacement is ready: confirm a crossing at once rather
		 * than at the next sweep. */
		if (w->standby && w->over_count > 0)
			worker_confirm_soon(w);
		break;
	case VERDICT_BASELINE:
		pool_baseline(p, w, now);
		break;
	case VERDICT_KILL: {
		struct log_ctx ctx = worker_ctx(w);

		ctx.reason = reason_name(why);
		ctx.memory = w->memory;
		log_ctx(LOG_WARNING, &ctx, "killing (kill_memory): %s %s > %s",
		    metric_label(w), units_format_size(w->memory, a, sizeof a),
		    units_format_size(w->limits.kill_memory, b, sizeof b));
		p->recycles[REASON_KILL_MEMORY]++;
		worker_kill(w, REASON_KILL_MEMORY);
		pool_reconcile(p);
		break;
	}
	case VERDICT_RECYCLE:
		if (why == REASON_MEMORY)
			snprintf(detail, sizeof detail, "%s %s > %s for %u "
			    "samples", metric_label(w),
			    units_format_size(w->memory, a, sizeof a),
			    units_format_size(w->limits.recycle_memory, b, sizeof b),
			    w->limits.recycle_samples);
		else if (why == REASON_TASKS)
			snprintf(detail, sizeof detail, "tasks %llu >= %llu",
			    (unsigned long long)w->tasks,
			    (unsigned long long)w->limits.max_tasks);
		else
			snprintf(detail, sizeof detail, "uptime %s >= %s",
			    units_format_duration(in.uptime_ms, c, sizeof c),
			    units_format_duration(w->limits.max_lifetime_ms,
			    d, sizeof d));
		pool_want_recycle(p, w, why, detail);
		break;
	}
	if (w->cfg->recycle_scope == SCOPE_CHILDREN && w->state == WS_READY)
		children_check(w, &p->children, now);
}

/*
 * pool_recycle_memory: the pool's total (its cgroup, else the sum of its
 * workers) over the limit recycles the largest worker, one at a time.
 */
static void
pool_check_total(struct pool *p)
{
	struct worker *w, *largest = NULL;
	uint64_t total = 0;
	char a[16], b[16], c[16], detail[160];

	TAILQ_FOREACH(w, &p->workers, entry) {
		if (w->recycle_reason == REASON_POOL_MEMORY ||
		    (w->state == WS_DRAINING &&
		    w->stop_reason == REASON_POOL_MEMORY))
			return;		/* one at a time: wait for it */
		total += w->last.rss > w->memory ? w->last.rss : w->memory;
		total += children_memory(w->children);
		if (w->state == WS_READY && w->recycle_reason == REASON_NONE &&
		    (largest == NULL || w->memory > largest->memory))
			largest = w;
	}
	if (p->cg != NULL)
		(void)cgroup_memory_usage(p->cg, &total);
	if (total <= p->cfg->pool_recycle_memory || largest == NULL)
		return;
	snprintf(detail, sizeof detail, "pool %s > pool_recycle_memory %s, "
	    "largest worker %s %s", units_format_size(total, a, sizeof a),
	    units_format_size(p->cfg->pool_recycle_memory, b, sizeof b),
	    metric_label(largest), units_format_size(largest->memory, c, sizeof c));
	pool_want_recycle(p, largest, REASON_POOL_MEMORY, detail);
}

static void
pool_more_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pool *p = t->data;

	(void)loop;
	(void)revents;
	pool_reconcile(p);
}

static void
pool_sample_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pool *p = t->data;
	struct worker *w, *next;
	double now = mono_now();

	(void)revents;
	template_sample(p, now);
	TAILQ_FOREACH_SAFE(w, &p->workers, entry, next) {
		if (w->state != WS_READY)
			continue;
		if (w->cfg->watchdog_ms != 0)
			pool_check_watchdog(p, w, now);
		if (w->state == WS_READY)
			pool_check_worker(p, w, now,
			    w->cfg->ready == READY_SPAWN);
	}
	if (p->cfg->pool_recycle_memory != 0)
		pool_check_total(p);
}

/* A kernel threshold event (or its confirming timer): sample now, and
 * confirm quickly rather than at the next sweep. */
static void
pool_worker_event(struct pool *p, struct worker *w)
{
	if (w->is_template) {
		template_event(p, w);
		return;
	}
	if (w->state != WS_READY)
		return;
	pool_check_worker(p, w, mono_now(), false);
	if (w->state == WS_READY && w->over_count > 0 &&
	    w->recycle_reason == REASON_NONE)
		worker_confirm_soon(w);
}

/* ---- worker callbacks ---- */

/* Spawn to READY=1 of one more process: the pool's start time. */
static void
pool_record_start(struct pool *p, double seconds)
{
	double v[START_RING];
	unsigned int n;

	p->start_s[p->nstart++ % START_RING] = seconds;
	n = p->nstart < START_RING ? p->nstart : START_RING;
	memcpy(v, p->start_s, n * sizeof *v);
	p->start_median = policy_median(v, n);
	p->start_horizon = policy_start_horizon(p->start_s, START_RING, n,
	    p->nstart % START_RING);
}

void
pool_worker_ready(struct pool *p, struct worker *w)
{
	struct worker *old = w->replaces;
	const char *key;

	worker_set_ready(w);
	pool_record_start(p, w->ready_mono - w->spawn_mono);
	if (w->snap != p->snap &&
	    config_diff_pool(w->cfg, p->cfg, &key) >= CHANGE_RESPAWN)
		pool_want_recycle(p, w, REASON_RELOAD, "configuration changed "
		    "while it was starting");
	else if (w->stale_template)
		pool_want_recycle(p, w, REASON_MANUAL, "forked by a template "
		    "retired while it was starting");
	if (old != NULL && old->prespawned && old->state == WS_READY)
		replacement_stand_by(p, old);
	else if (old != NULL)
		replacement_ready_drain(p, old, w);
	pool_reconcile(p);
	/* Its baseline: the program says it is initialised. Sampled now, so
	 * that no later event-driven sample is mistaken for it. */
	if (w->state == WS_READY)
		pool_check_worker(p, w, mono_now(), true);
}

static void
pool_worker_timeout(struct pool *p, struct worker *w)
{
	char d[32];

	if (w->is_template) {
		template_timeout(p, w);
		return;
	}
	/* libev runs expired timers before the I/O of the same turn: a
	 * READY=1 may be waiting in the socket already. */
	notify_flush(p->rd->notify);
	if (w->state != WS_STARTING)
		return;

	wlog(w, LOG_ERR, "no READY=1 within ready_timeout %s, killing it",
	    units_format_duration(w->cfg->ready_timeout_ms, d, sizeof d));
	w->failed = true;
	worker_kill(w, REASON_READY_TIMEOUT);
	(void)p;
}

/*
 * Record a failure of the slot (reset: after min_uptime of service, its
 * backoff starts over); false when the pool just failed.
 */
static bool
pool_count_failure(struct pool *p, struct worker *w, bool reset, double now,
    uint64_t *delay_ms)
{
	struct slot *s = w->slot < p->nslots ? p->slots[w->slot] : NULL;
	unsigned int limit = p->cfg->rapid_fail;
	double window = (double)p->cfg->rapid_fail_window_ms / 1000.0;
	char d[32];

	p->fail_times[p->fail_head++ % POOL_FAIL_RING] = now;
	if (s != NULL) {
		if (reset)
			s->failures = 0;
		s->failures++;
		slot_settle(p, s);
	}
	*delay_ms = policy_backoff(p->cfg->restart_backoff_ms,
	    s ? s->failures : 1, BACKOFF_MAX_MS);
	if (!policy_rapid_fail(p->fail_times, p->fail_head < POOL_FAIL_RING ?
	    p->fail_head : POOL_FAIL_RING, now, window, limit))
		return true;

	pool_set_state(p, POOL_FAILED, "rapid_fail");
	plog(p, LOG_ERR, "failed: %u failures within %s (rapid_fail %u/%s); "
	    "not restarting until started again", limit + 1,
	    units_format_duration(p->cfg->rapid_fail_window_ms, d, sizeof d),
	    limit, d);
	{
		struct event e = { .slot = -1, .kind = "failed",
			.reason = REASON_CRASH, .status = -1 };

		snprintf(e.pool, sizeof e.pool, "%s", p->name);
		snprintf(e.detail, sizeof e.detail, "more than %u failures "
		    "within %s", limit, d);
		events_add(p->rd->events, &e);
	}
	return false;
}

static void pool_record_exit(struct pool *, struct worker *, int);

/* One count per exit, in one place, so that the metric's reasons add up. */
static void
pool_count_exit(struct pool *p, const struct worker *w, bool oom,
    bool failure, enum reason why)
{
	size_t i = why;

	if (oom)
		i = REASON_OOM;
	else if (failure && w->ready_mono == 0)
		i = EXIT_FAILED_START;
	else if (why == REASON_NONE)
		i = REASON_CRASH;
	p->exits[i]++;
}

void
pool_worker_exited(struct pool *p, struct worker *w, int status)
{
	/* Messages it sent before exiting (its last TASKS=, a STOPPING=1
	 * that makes the exit expected) count before the exit does. */
	notify_flush(p->rd->notify);
	if (w->is_template)
		template_exited(p, w, status);	/* frees w */
	else
		pool_record_exit(p, w, status);	/* frees w */
}

void
pool_template_ready(struct pool *p)
{
	slot_queue_all(p);
	pool_reconcile(p);
}

bool
pool_template_failure(struct pool *p, struct worker *w)
{
	uint64_t delay_ms;

	p->crashes++;
	if (p->state != POOL_RUNNING)
		return false;
	return pool_count_failure(p, w, false, mono_now(), &delay_ms);
}

/* The peak in the pool's metric when it was ever measured exactly, else
 * the rss bound that kept it from being measured. */
static void
fmt_peak(const struct worker *w, char *buf, size_t size)
{
	char sz[16];

	if (w->peak == 0 && w->peak_rss == 0)
		snprintf(buf, size, "not sampled");
	else if (w->peak != 0)
		snprintf(buf, size, "%s", units_format_size(w->peak, sz,
		    sizeof sz));
	else
		snprintf(buf, size, "rss %s", units_format_size(w->peak_rss, sz,
		    sizeof sz));
}

/* What policy_classify_exit() needs to know of an exit. */
static struct exit_facts
exit_facts_of(const struct pool *p, const struct worker *w, int status,
    double up)
{
	struct exit_facts f = { .status = status,
		.stop_reason = w->stop_reason,
		.stopping = w->state == WS_DRAINING || w->state == WS_KILLED,
		.failed = w->failed, .ready = w->ready_mono != 0,
		.uptime_ms = (uint64_t)(up * 1000),
		.min_uptime_ms = p->cfg->min_uptime_ms };

	/* The kernel's OOM killer, within its group's memory_max. */
	f.oom_kill = w->cg != NULL && cgroup_oom_kills(w->cg) > w->oom_kills;
	return f;
}

/* A failure: counted, and its slot backs off before the next start. */
static void
pool_exit_failure(struct pool *p, struct worker *w, const struct exit_class *c,
    struct log_ctx *ctx, const char *st, double up, double now)
{
	uint64_t delay_ms = 0;
	char d[32];

	if (c->failed_start)
		p->failed_starts++;
	p->crashes++;
	if (p->state != POOL_RUNNING || p->rd->stopping ||
	    !pool_count_failure(p, w, c->reset_failures, now, &delay_ms) ||
	    slot_active(p, w->slot, w) != NULL || w->slot >= p->desired) {
		log_ctx(LOG_WARNING, ctx, "crashed: %s after %.2fs", st, up);
		return;
	}
	log_ctx(LOG_WARNING, ctx, "crashed: %s after %.2fs; restarting in %s",
	    st, up, units_format_duration(delay_ms, d, sizeof d));
	slot_backoff(p->slots[w->slot], delay_ms);
}

static void
pool_record_exit(struct pool *p, struct worker *w, int status)
{
	double now = mono_now(), up = worker_uptime(w, now);
	struct exit_facts f = exit_facts_of(p, w, status, up);
	struct exit_class c = policy_classify_exit(&f);
	struct event e = { .slot = (int)w->slot, .pid = w->pid,
		.status = status, .uptime_s = up, .tasks = w->tasks,
		/* At the decision: a condemned worker's later samples are
		 * statm's rss bound, not its metric. */
		.memory = w->recycle_reason != REASON_NONE ?
		    w->recycle_memory_at : w->memory,
		.peak = w->peak != 0 ? w->peak : w->peak_rss };
	char st[64], upt[32], pk[40], lim[16];
	struct log_ctx ctx = worker_ctx(w);

	units_format_status(status, st, sizeof st);
	units_format_duration((uint64_t)(up * 1000), upt, sizeof upt);
	fmt_peak(w, pk, sizeof pk);
	snprintf(e.pool, sizeof e.pool, "%s", p->name);
	e.kind = exit_kind_name(c.kind);
	e.reason = c.reason;
	ctx.reason = reason_name(c.reason);
	if (c.count_recycle)
		p->recycles[c.reason]++;
	if (c.oom)
		log_ctx(LOG_WARNING, &ctx, "killed by the kernel OOM killer "
		    "(memory_max %s), uptime %s, tasks %llu, peak %s",
		    units_format_size(w->cfg->memory_max, lim, sizeof lim), upt,
		    (unsigned long long)w->tasks, pk);

	replacement_unlink(p, w);
	replacement_unlink(p, w->replaces);

	if (c.failure) {
		snprintf(e.detail, sizeof e.detail, "%s after %.2fs", st, up);
		pool_exit_failure(p, w, &c, &ctx, st, up, now);
	} else if (c.oom) {
		snprintf(e.detail, sizeof e.detail, "killed by the kernel OOM "
		    "killer");
	} else {
		log_ctx(LOG_INFO, &ctx, "%s (reason %s, uptime %s, tasks %llu, "
		    "peak %s)", st, reason_name(c.reason), upt,
		    (unsigned long long)w->tasks, pk);
		if (c.kind == EXIT_RECYCLE || c.kind == EXIT_KILL) {
			snprintf(e.detail, sizeof e.detail, "%s",
			    w->recycle_detail);
			e.overshoot = w->overshot;
		}
	}
	pool_count_exit(p, w, c.oom, c.failure, e.reason);
	events_add(p->rd->events, &e);

	worker_kill_leftovers(w);
	pool_detach(p, w);
	children_free(w->children);
	worker_free(w);
	pool_reconcile(p);
}

/* ---- notify messages ---- */

/*
 * A worker's bad messages are its own problem, and one datagram can hold
 * thousands of lines: its warnings go through a token bucket (NOTIFY_LOG_
 * BURST at once, NOTIFY_LOG_RATE a second after that), and what was held
 * back is counted in the next line that goes out.
 */
#define NOTIFY_LOG_RATE		1.0
#define NOTIFY_LOG_BURST	10.0

#define nlog(w, prio, ...) do {						\
	unsigned int nlog_held_;					\
									\
	if (ratelimit_take(&(w)->log_limit, mono_now(),			\
	    NOTIFY_LOG_RATE, NOTIFY_LOG_BURST, &nlog_held_)) {		\
		if (nlog_held_ > 0)					\
			wlog((w), LOG_WARNING, "notify: %u messages "	\
			    "suppressed", nlog_held_);			\
		wlog((w), (prio), __VA_ARGS__);				\
	}								\
} while (0)

struct notify_ctx {
	struct pool	*pool;
	struct worker	*worker;
};

static void
notify_ready(struct pool *p, struct worker *w, const char *value)
{
	if (strcmp(value, "1") != 0)
		nlog(w, LOG_WARNING, "notify: ignored READY=%.32s "
		    "(expected READY=1)", value);
	else if (w->state == WS_STARTING && !w->failed)
		pool_worker_ready(p, w);
}

static void
notify_status(struct pool *p, struct worker *w, const char *value)
{
	(void)p;
	free(w->status);
	w->status = text_sanitize(value, strlen(value), STATUS_MAX);
}

static void
notify_tasks(struct pool *p, struct worker *w, const char *value)
{
	char detail[64];
	uint64_t n;

	/* Digits only: strtoull() takes " -1" and "+7". */
	if (parse_digits(value, UINT64_MAX, &n) == -1) {
		nlog(w, LOG_WARNING, "notify: ignored TASKS=%.32s "
		    "(expected a count of completed tasks)", value);
		return;
	}
	if (n < w->tasks)
		nlog(w, LOG_WARNING, "notify: TASKS=%llu is below the "
		    "previous %llu; TASKS is cumulative",
		    (unsigned long long)n, (unsigned long long)w->tasks);
	w->tasks = n;
	if (w->state == WS_READY && w->limits.max_tasks != 0 &&
	    w->tasks >= w->limits.max_tasks) {
		snprintf(detail, sizeof detail, "tasks %llu >= %llu",
		    (unsigned long long)n,
		    (unsigned long long)w->limits.max_tasks);
		pool_want_recycle(p, w, REASON_TASKS, detail);
	}
}

static void
notify_recycle(struct pool *p, struct worker *w, const char *value)
{
	if (strcmp(value, "1") != 0)
		nlog(w, LOG_WARNING, "notify: ignored RECYCLE=%.32s "
		    "(expected RECYCLE=1)", value);
	else
		pool_want_recycle(p, w, REASON_REQUEST,
		    "worker sent RECYCLE=1");
}

static void
notify_stopping(struct pool *p, struct worker *w, const char *value)
{
	if (strcmp(value, "1") != 0 || w->state == WS_DRAINING ||
	    w->state == WS_KILLED)
		return;
	wlog(w, LOG_NOTICE, "recycling (stopping): worker sent STOPPING=1");
	snprintf(w->recycle_detail, sizeof w->recycle_detail,
	    "worker sent STOPPING=1");
	replacement_unlink(p, w->replaces);
	worker_drain(w, REASON_STOPPING, w->cfg->drain_timeout_ms);
	pool_reconcile(p);
}

static void
notify_watchdog(struct pool *p, struct worker *w, const char *value)
{
	w->watchdog_mono = mono_now();
	if (strcmp(value, "trigger") == 0)
		pool_watchdog_kill(p, w, "worker sent WATCHDOG=trigger");
	else if (strcmp(value, "1") != 0)
		nlog(w, LOG_WARNING, "notify: ignored WATCHDOG=%.32s "
		    "(expected WATCHDOG=1 or WATCHDOG=trigger)", value);
}

/* The keys a worker may send, and what each one does. */
static const struct notify_key {
	const char	*key;
	bool		 prefix;	/* KEY and every KEY...: FDSTOREREMOVE */
	void		(*fn)(struct pool *, struct worker *, const char *);
} notify_keys[] = {
	{ "READY", false, notify_ready },
	{ "STATUS", false, notify_status },
	{ "TASKS", false, notify_tasks },
	{ "RECYCLE", false, notify_recycle },
	{ "STOPPING", false, notify_stopping },
	{ "WATCHDOG", false, notify_watchdog },
	/* sd_notify messages meant for systemd itself: harmless. */
	{ "MAINPID", false, NULL },
	{ "ERRNO", false, NULL },
	{ "BUSERROR", false, NULL },
	{ "EXIT_STATUS", false, NULL },
	{ "RELOADING", false, NULL },
	{ "MONOTONIC_USEC", false, NULL },
	{ "EXTEND_TIMEOUT", true, NULL },
	{ "FDSTORE", true, NULL },
	{ "FDNAME", true, NULL },
	{ "WATCHDOG_USEC", false, NULL },
	{ "BARRIER", false, NULL },
};

static void
pool_notify_assign(void *arg, const char *key, const char *value)
{
	struct notify_ctx *nc = arg;
	const struct notify_key *k;
	size_t i;

	if (value == NULL) {
		nlog(nc->worker, LOG_WARNING, "notify: ignored malformed line "
		    "\"%.64s\" (expected KEY=VALUE)", key);
		return;
	}
	for (i = 0; i < sizeof notify_keys / sizeof *notify_keys; i++) {
		k = &notify_keys[i];
		if (k->prefix ? strncmp(key, k->key, strlen(k->key)) == 0 :
		    strcmp(key, k->key) == 0) {
			if (k->fn != NULL)
				k->fn(nc->pool, nc->worker, value);
			return;
		}
	}
	wlog(nc->worker, LOG_DEBUG, "notify: ignored unknown %.64s=", key);
}

void
pool_worker_notify(struct pool *p, struct worker *w, char *buf, size_t len)
{
	struct notify_ctx nc = { p, w };

	if (w->is_template) {
		template_notify(p, w, buf, len);
		return;
	}
	notify_split(buf, len, pool_notify_assign, &nc);
}

/* ---- life of the pool ---- */

struct pool *
pool_find(struct recyclerd *rd, const char *name)
{
	struct pool *p = pool_find_any(rd, name);

	return p != NULL && p->state != POOL_REMOVED ? p : NULL;
}

struct pool *
pool_find_any(struct recyclerd *rd, const char *name)
{
	struct pool *p;

	LIST_FOREACH(p, &rd->pools, entry)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

struct worker *
pool_slot_oldest(struct recyclerd *rd, const char *name, unsigned long slot)
{
	struct worker *w;
	struct pool *p;

	LIST_FOREACH(p, &rd->pools, entry)
		if (strcmp(p->name, name) == 0 && slot < p->nslots &&
		    (w = TAILQ_FIRST(&p->slots[slot]->members)) != NULL)
			return w;
	return NULL;
}

struct pool *
pool_new(struct recyclerd *rd, struct config *snap,
    const struct pool_config *cfg, struct listen_set *sockets)
{
	struct pool *p = xcalloc(1, sizeof *p);

	p->rd = rd;
	p->name = xstrdup(cfg->name);
	p->snap = config_ref(snap);
	p->cfg = cfg;
	p->state = POOL_RUNNING;	/* the first state, not a transition */
	TAILQ_INIT(&p->workers);
	TAILQ_INIT(&p->work);
	p->ncpu = ncpu();
	TAILQ_INIT(&p->children.sets);
	p->children.ncpu = p->ncpu;
	pool_set_desired(p, cfg->workers);
	p->sockets = *sockets;
	memset(sockets, 0, sizeof *sockets);
	if (rd->cg != NULL &&
	    (p->cg = cgroup_pool_open(rd->cg, p->name, cfg->pool_memory_max)) ==
	    NULL)
		plog(p, LOG_WARNING, "unable to create its cgroup: %s; "
		    "measuring through /proc only", strerror(errno));
	if (p->cg == NULL && (cfg->memory_metric == METRIC_CGROUP ||
	    cfg->memory_metric == METRIC_CGROUP_ANON))
		plog(p, LOG_WARNING, "memory_metric = %s but its workers have "
		    "no cgroup: measuring rss through /proc instead",
		    mem_metric_name(cfg->memory_metric));
	pool_prepare(p);
	ev_timer_init(&p->sample, pool_sample_cb, 0.0,
	    (double)cfg->sample_interval_ms / 1000.0);
	p->sample.data = p;
	ev_timer_again(rd->loop, &p->sample);
	ev_timer_init(&p->more, pool_more_cb, 0.0, 0.0);
	p->more.data = p;
	LIST_INSERT_HEAD(&rd->pools, p, entry);
	plog(p, LOG_INFO, "starting %u worker%s: %s", p->desired,
	    p->desired == 1 ? "" : "s", cfg->argv[0]);
	slot_queue_all(p);
	return p;
}

void
pool_free(struct pool *p)
{
	struct worker *w;
	unsigned int i;

	if (p == NULL)
		return;
	ev_timer_stop(p->rd->loop, &p->sample);
	ev_timer_stop(p->rd->loop, &p->more);
	for (i = 0; i < p->nslots; i++) {
		ev_timer_stop(p->rd->loop, &p->slots[i]->respawn);
		free(p->slots[i]);
	}
	template_free(p);
	while ((w = TAILQ_FIRST(&p->workers)) != NULL) {
		TAILQ_REMOVE(&p->workers, w, entry);
		children_free(w->children);
		worker_free(w);
	}
	LIST_REMOVE(p, entry);
	listen_close(&p->sockets);
	cgroup_close(p->cg);
	strv_free(p->env);
	free(p->groups);
	heap_free(&p->pending);
	free(p->slots);
	config_unref(p->snap);
	free(p->name);
	free(p);
}

void
pool_apply(struct pool *p, struct config *snap, const struct pool_config *cfg,
    struct listen_set *sockets)
{
	struct worker *w, *next;
	const char *key;
	bool respawn = config_diff_pool(p->cfg, cfg, &key) >= CHANGE_RESPAWN;
	/* A `scale` holds until the pool's own `workers` changes. */
	unsigned int want = p->state != POOL_REMOVED &&
	    p->cfg->workers == cfg->workers ? p->desired : cfg->workers;

	listen_close(&p->sockets);
	p->sockets = *sockets;
	memset(sockets, 0, sizeof *sockets);
	if (p->cg != NULL)
		(void)cgroup_set_max(p->cg, cfg->pool_memory_max);

	config_unref(p->snap);
	p->snap = config_ref(snap);
	p->cfg = cfg;
	pool_set_desired(p, want);
	pool_prepare(p);
	if (p->state == POOL_REMOVED)
		pool_set_state(p, POOL_RUNNING, "back in the configuration");
	p->trim = true;
	slot_queue_all(p);
	ev_timer_stop(p->rd->loop, &p->sample);
	ev_timer_set(&p->sample, 0.0, (double)cfg->sample_interval_ms / 1000.0);
	ev_timer_again(p->rd->loop, &p->sample);

	if (respawn)
		plog(p, LOG_INFO, "configuration changed (%s): recycling its "
		    "workers %u at a time", key, cfg->max_recycling);
	if (respawn && cfg->spawn == SPAWN_TEMPLATE)
		template_renew(p, "configuration changed");
	/* Running workers keep their process but get the new limits; the
	 * ones to respawn roll max_recycling at a time. Workers still
	 * starting are seen to when they become ready. */
	TAILQ_FOREACH_SAFE(w, &p->workers, entry, next) {
		worker_set_limits(w, cfg);
		if (w->state == WS_READY && w->recycle_reason == REASON_NONE)
			worker_arm_events(w);
		if (respawn)
			pool_want_recycle(p, w, REASON_RELOAD,
			    "configuration changed");
	}
	pool_reconcile(p);
}

void
pool_remove(struct pool *p)
{
	pool_set_state(p, POOL_REMOVED, "removed from the configuration");
	plog(p, LOG_INFO, "removed from the configuration: draining %u "
	    "worker%s", p->nworkers, p->nworkers == 1 ? "" : "s");
	p->trim = true;
	pool_reconcile(p);
}

void
pool_start(struct pool *p)
{
	unsigned int i;

	if (p->state == POOL_FAILED)
		plog(p, LOG_NOTICE, "restarting after failure");
	pool_set_state(p, POOL_RUNNING, "start command");
	for (i = 0; i < p->nslots; i++) {
		ev_timer_stop(p->rd->loop, &p->slots[i]->respawn);
		p->slots[i]->failures = 0;
		slot_settle(p, p->slots[i]);
	}
	pool_set_desired(p, p->desired != 0 ? p->desired : p->cfg->workers);
	memset(p->fail_times, 0, sizeof p->fail_times);
	p->fail_head = 0;
	slot_queue_all(p);
}

void
pool_stop(struct pool *p)
{
	unsigned int i;

	pool_set_state(p, POOL_STOPPED, "stop command");
	for (i = 0; i < p->nslots; i++)
		ev_timer_stop(p->rd->loop, &p->slots[i]->respawn);
	plog(p, LOG_INFO, "stopping %u worker%s", p->nworkers,
	    p->nworkers == 1 ? "" : "s");
	p->trim = true;
	pool_reconcile(p);
}

void
pool_scale(struct pool *p, unsigned int n)
{
	plog(p, LOG_INFO, "scaling from %u to %u worker%s", p->desired, n,
	    n == 1 ? "" : "s");
	pool_set_desired(p, n);
	p->trim = true;
	slot_queue_all(p);
}

int
pool_recycle(struct pool *p, int slot, enum reason why)
{
	struct worker *w, *next;
	int n = 0;

	TAILQ_FOREACH_SAFE(w, &p->workers, entry, next) {
		if (slot >= 0 && w->slot != (unsigned int)slot)
			continue;
		if (w->state != WS_READY || w->recycle_reason != REASON_NONE)
			continue;
		pool_want_recycle(p, w, why, "requested by the operator");
		n++;
	}
	if (n == 0 && slot >= 0 &&
	    slot_active(p, (unsigned int)slot, NULL) == NULL)
		return -1;
	if (slot < 0 && p->cfg->spawn == SPAWN_TEMPLATE)
		template_renew(p, "recycle of every worker");
	pool_reconcile(p);
	return n;
}

void
pool_shutdown(struct pool *p)
{
	struct worker *w;
	unsigned int i;

	for (i = 0; i < p->nslots; i++)
		ev_timer_stop(p->rd->loop, &p->slots[i]->respawn);
	ev_timer_stop(p->rd->loop, &p->sample);
	template_shutdown(p);
	TAILQ_FOREACH(w, &p->workers, entry)
		worker_drain(w, REASON_SHUTDOWN, p->cfg->shutdown_timeout_ms);
}

void
pool_kill_all(struct pool *p)
{
	struct worker *w;

	template_kill_all(p);
	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->state != WS_KILLED)
			worker_kill(w, REASON_SHUTDOWN);
}
