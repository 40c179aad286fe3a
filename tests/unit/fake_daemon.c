/* SPDX-License-Identifier: MIT */
/*
 * fake_daemon.c - a daemon context held in memory for the control unit
 * tests and fuzzer. Every module is the real one; the calls that would act
 * on processes (recycle, scale, stop, start, an exact probe of a pid that
 * is not ours) and the notify socket's counter (there is no socket) are
 * wrapped at link time (ld --wrap): the wrappers count the calls and
 * change only the fields a status shows, so every request can be replayed
 * any number of times.
 */
#include "fake_daemon.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "config.h"
#include "events.h"
#include "growth.h"
#include "log.h"
#include "memprobe.h"
#include "notify.h"
#include "pool.h"
#include "template.h"
#include "recyclerd.h"
#include "util.h"
#include "worker.h"

int fake_reloads, fake_recycles, fake_scales, fake_stops, fake_starts;
int fake_last_slot;
unsigned int fake_last_scale;

/* ---- wrapped calls (ld --wrap): what would act on processes ---- */

int __wrap_pool_recycle(struct pool *, int, enum reason);
void __wrap_pool_scale(struct pool *, unsigned int);
void __wrap_pool_stop(struct pool *);
void __wrap_pool_start(struct pool *);
int __wrap_worker_probe_exact(struct worker *, double, struct mem_sample *);
unsigned long long __wrap_notify_dropped_uid(const struct notify *);

unsigned long long
__wrap_notify_dropped_uid(const struct notify *n)
{
	(void)n;
	return 5;
}

int
__wrap_pool_recycle(struct pool *p, int slot, enum reason why)
{
	struct worker *w;
	int n = 0;

	(void)why;
	fake_recycles++;
	fake_last_slot = slot;
	if (slot >= 0 && (unsigned int)slot >= p->nslots)
		return -1;
	TAILQ_FOREACH(w, &p->workers, entry)
		if ((slot < 0 || w->slot == (unsigned int)slot) &&
		    w->state == WS_READY)
			n++;
	return n;
}

void
__wrap_pool_scale(struct pool *p, unsigned int n)
{
	fake_scales++;
	fake_last_scale = n;
	p->desired = n;
}

void
__wrap_pool_stop(struct pool *p)
{
	fake_stops++;
	p->state = POOL_STOPPED;
}

void
__wrap_pool_start(struct pool *p)
{
	fake_starts++;
	p->state = POOL_RUNNING;
}

/* status --exact reads smaps_rollup of pids that are not ours: pretend. */
int
__wrap_worker_probe_exact(struct worker *w, double now, struct mem_sample *s)
{
	(void)now;
	if (w->pid == 0 || w->last.rss == 0)
		return -1;
	*s = w->last;
	s->has_smaps = true;
	s->pss = w->last.rss * 3 / 4;
	s->uss = w->last.rss / 2;
	return 0;
}

static int
fake_reload(struct recyclerd *rd, char **err)
{
	(void)rd;
	fake_reloads++;
	if (fake_reloads % 2 == 0)
		return 0;
	if (err != NULL)
		*err = xstrdup("/etc/recyclerd/recyclerd.conf:3: [pool web] "
		    "wrokers: unknown key\n/etc/recyclerd/recyclerd.conf:4: "
		    "[pool web] recycle_memory = 12Q: invalid size");
	return -1;
}

/* ---- the fake daemon ---- */

static struct pool_config *
fake_pool_config(const char *name, unsigned int workers)
{
	struct pool_config *pc = xcalloc(1, sizeof *pc);

	pc->name = xstrdup(name);
	pc->workers = workers;
	pc->memory_metric = METRIC_PSS;
	pc->recycle_memory = 200 << 20;
	pc->kill_memory = 400 << 20;
	pc->max_tasks = 1000;
	pc->max_lifetime_ms = 3600000;
	pc->max_recycling = 1;
	return pc;
}

static struct pool *
fake_pool(struct recyclerd *rd, const char *name, unsigned int nslots,
    enum pool_state state)
{
	struct pool *p = xcalloc(1, sizeof *p);

	p->rd = rd;
	p->name = xstrdup(name);
	p->cfg = fake_pool_config(name, nslots);
	p->state = state;
	p->desired = nslots;
	p->nslots = nslots;
	p->slots = xcalloc(nslots + 1, sizeof *p->slots);
	TAILQ_INIT(&p->workers);
	LIST_INSERT_HEAD(&rd->pools, p, entry);
	return p;
}

static struct worker *
fake_worker(struct pool *p, unsigned int slot, pid_t pid,
    enum worker_state state, uint64_t rss_mib)
{
	struct worker *w = xcalloc(1, sizeof *w);
	double now = mono_now();
	int i;

	w->pool = p;
	w->slot = slot;
	w->gen = p->next_gen++;
	w->pid = pid;
	w->state = state;
	w->spawn_mono = now - 125.5;
	w->ready_mono = state == WS_STARTING ? 0 : now - 125;
	w->cfg = p->cfg;
	w->limits.recycle_memory = p->cfg->recycle_memory - (3 << 20);
	w->limits.kill_memory = p->cfg->kill_memory;
	w->limits.max_tasks = 990;
	w->limits.recycle_samples = 1;
	w->tasks = 17 * (slot + 1);
	w->last.rss = rss_mib << 20;
	w->memory = w->last.rss * 3 / 4;
	w->memory_exact = true;
	w->peak = w->memory + 4096;
	growth_init(&w->growth);
	for (i = 0; i < 5; i++)
		growth_add(&w->growth, now - 5 + i, w->tasks + (uint64_t)i * 2,
		    w->last.rss + (uint64_t)i * 1000000);
	TAILQ_INSERT_TAIL(&p->workers, w, entry);
	p->nworkers++;
	p->nstate[state]++;
	p->spawns++;
	return w;
}

static void
fake_event(struct events *evs, const char *pool, int slot, pid_t pid,
    const char *kind, enum reason why, int status, const char *detail)
{
	struct event e = { .slot = slot, .pid = pid, .kind = kind,
		.reason = why, .status = status, .uptime_s = 61.25,
		.tasks = 12, .memory = 210 << 20, .peak = 211 << 20 };

	snprintf(e.pool, sizeof e.pool, "%s", pool);
	snprintf(e.detail, sizeof e.detail, "%s", detail);
	events_add(evs, &e);
}

struct recyclerd *
fake_daemon_new(void)
{
	struct recyclerd *rd = xcalloc(1, sizeof *rd);
	struct config *cfg = xcalloc(1, sizeof *cfg);
	struct pool *web;
	struct worker *w;

	/* log.c is the real one: the control log lines are not the tests'. */
	log_set_level(LOG_ERR);
	fake_reloads = fake_recycles = fake_scales = 0;
	fake_stops = fake_starts = 0;
	rd->reload = fake_reload;
	cfg->refs = 1;
	cfg->control_socket = xstrdup("/nonexistent/control.sock");
	cfg->control_group = xstrdup("wheel");
	cfg->control_gid = 10;
	rd->cfg = cfg;
	rd->pid = 4242;
	rd->started_mono = mono_now() - 3600;
	rd->events = events_new();
	LIST_INIT(&rd->pools);

	(void)fake_pool(rd, "odd\"pool\\", 0, POOL_STOPPED);
	web = fake_pool(rd, "web", 2, POOL_RUNNING);
	web->recycles[REASON_MEMORY] = 5;
	web->recycles[REASON_MANUAL] = 1;
	web->recycles[REASON_OOM] = 2;
	web->crashes = 3;
	web->failed_starts = 1;
	web->exits[REASON_MEMORY] = 5;
	web->exits[REASON_OOM] = 2;
	web->exits[REASON_CRASH] = 2;
	web->exits[EXIT_FAILED_START] = 1;
	(void)fake_worker(web, 0, 1001, WS_READY, 100);
	w = fake_worker(web, 1, 1002, WS_READY, 190);
	w->recycle_reason = REASON_MEMORY;
	w->status = xstrdup("serving \"requests\"");
	w = fake_worker(web, 1, 1003, WS_STARTING, 0);
	w->memory = 0;
	w->peak = 0;
	growth_init(&w->growth);

	fake_event(rd->events, "web", 0, 999, "recycle", REASON_MEMORY,
	    W_EXITCODE(0, 0), "pss 212M > 200M for 2 samples");
	fake_event(rd->events, "web", 1, 998, "crash", REASON_CRASH,
	    SIGSEGV | WCOREFLAG, "killed by SIGSEGV after 61.25s");
	fake_event(rd->events, "web", -1, 0, "failed", REASON_CRASH, -1, "");
	return rd;
}

void
fake_daemon_free(struct recyclerd *rd)
{
	struct worker *w;
	struct pool *p;

	while ((p = LIST_FIRST(&rd->pools)) != NULL) {
		while ((w = TAILQ_FIRST(&p->workers)) != NULL) {
			TAILQ_REMOVE(&p->workers, w, entry);
			free(w->status);
			free(w);
		}
		LIST_REMOVE(p, entry);
		free(((struct pool_config *)p->cfg)->name);
		free((void *)p->cfg);
		free(p->slots);
		free(p->name);
		free(p);
	}
	events_free(rd->events);
	free(rd->cfg->control_socket);
	free(rd->cfg->control_group);
	free(rd->cfg);
	free(rd);
}
