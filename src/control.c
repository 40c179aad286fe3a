/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control socket: a unix stream server, one request per
 * line, one JSON object per response line.
 *
 * The module owns the listening socket and its clients, nothing else:
 * every command reads or calls pool and daemon functions, and every answer
 * is built with json-c from what they hold at that moment. A client costs
 * at most one line buffer, its unread answers (CONTROL_OUTPUT_MAX) and a
 * slot among CONTROL_CLIENTS_MAX; it is hung up on after CONTROL_IDLE_S of
 * silence. Sockets are non-blocking and answers are queued behind a write
 * watcher, so a client that does not read never stalls the loop.
 *
 * Who may do what is decided once, at accept: root, the daemon's own user,
 * or a peer whose group or supplementary groups include control_group, may
 * run every command; anyone else gets a permission error for every request.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <json-c/json.h>

#include "children.h"
#include "config.h"
#include "events.h"
#include "growth.h"
#include "log.h"
#include "logring.h"
#include "metrics.h"
#include "notify.h"
#include "policy.h"
#include "pool.h"
#include "template.h"
#include "recyclerd.h"
#include "units.h"
#include "util.h"
#include "worker.h"

#define EVENTS_DEFAULT		50
#define SCALE_MAX		10000
#define ACCEPT_BURST		64	/* accepts per callback, for fairness */
#define ACCEPT_PAUSE_S		1.0	/* after EMFILE and the like */
#define FULL_LOG_INTERVAL_S	10.0	/* "too many clients" log rate */
#define READ_CHUNK		4096
#define REQUESTS_PER_TURN	4	/* then let the loop serve others */
#define OUT_KEEP		65536	/* output buffer kept between answers */
#define OUT_LOW			(256u << 10)	/* a long answer goes on below */

#define STR_(x)			#x
#define STR(x)			STR_(x)

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS		59	/* Linux 4.13; older libc headers */
#endif

enum cursor_kind { CUR_NONE, CUR_STATUS, CUR_TEXT, CUR_FOLLOW };

struct cursor {
	enum cursor_kind kind;
	double		 now;
	/* status: the pools named at the request, in order. */
	char		**pools;
	size_t		 npools;
	size_t		 ipool;		/* the one being written */
	bool		 any_pool;	/* one was written */
	bool		 in_workers;	/* its "workers" array is open */
	bool		 any_worker;	/* one was written in it */
	unsigned int	 slot;		/* (slot, gen) of the last written */
	unsigned int	 gen;
	bool		 exact;		/* status --exact */
	/* text: a string value, JSON-escaped piece by piece. */
	char		*text;
	size_t		 text_len;
	size_t		 text_off;
	/* follow: events after seq, of that pool and reason (if set); one
	 * JSON line each, until the client hangs up. */
	uint64_t	 seq;
	char		*pool;
	int		 reason;	/* -1 for any */
	bool		 logs;		/* worker output lines, not events */
	int		 lslot;		/* logs: -1 for any */
};

struct client {
	TAILQ_ENTRY(client) entry;
	struct control	*ctl;
	int		 fd;
	struct control_peer peer;
	bool		 refusal_logged;	/* once per connection */

	/* Bytes read and not yet looked at: rbuf[rbuf_off, rbuf_len). */
	char		 rbuf[READ_CHUNK];
	size_t		 rbuf_off;
	size_t		 rbuf_len;

	/* The request being read: a line and room for its NUL. */
	char		 in[CONTROL_LINE_MAX + 1];
	size_t		 in_len;
	bool		 discarding;	/* skipping the rest of a long line */
	bool		 eof;		/* peer shut down its writing side */

	/* Answers not yet taken by the peer: out[out_off, out_len). */
	char		*out;
	size_t		 out_off;
	size_t		 out_len;
	size_t		 out_cap;
	/* The rest of a long answer, written as out drains below OUT_LOW;
	 * no other request is read until it is complete. */
	struct cursor	 cur;

	ev_io		 rio;
	ev_io		 wio;
	ev_timer	 idle;
	ev_timer	 more;		/* rbuf has more: next loop turn */
};

struct control {
	struct recyclerd *rd;
	int		 fd;
	char		*path;
	dev_t		 dev;		/* of the socket file we bound: */
	ino_t		 ino;		/* unlink only that one at exit */
	ev_io		 accept_io;
	ev_timer	 accept_pause;
	double		 full_logged_mono;
	TAILQ_HEAD(, client) clients;
	unsigned int	 nclients;
	/* `events follow` clients, woken after a loop turn that added an
	 * event; the watcher runs only while there are some. */
	ev_check	 follow_check;
	unsigned int	 nfollowers;
};

/* ---- request parsing (pure) ---- */

/*
 * Length of the UTF-8 sequence at s if it is a well-formed one (no overlong
 * forms, no surrogates, nothing above U+10FFFF), else 0.
 */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* the NUL ends here too */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* control_split() that also says why a line was refused. */
static int
split_line(char *line, char **words, int max, const char **why)
{
	size_t len = strlen(line), k;
	unsigned char *s;
	int n = 0;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (s = (unsigned char *)line; *s != '\0'; s += k) {
		if ((*s < 0x20 && *s != '\t') || *s == 0x7f) {
			*why = "request contains a control character";
			return -1;
		}
		if ((k = utf8_len(s)) == 0) {
			*why = "request is not valid UTF-8";
			return -1;
		}
	}
	for (s = (unsigned char *)line; *s != '\0';) {
		while (*s == ' ' || *s == '\t')
			*s++ = '\0';
		if (*s == '\0')
			break;
		if (n == max) {
			*why = "request has too many words";
			return -1;
		}
		words[n++] = (char *)s;
		while (*s != '\0' && *s != ' ' && *s != '\t')
			s++;
	}
	return n;
}

int
control_split(char *line, char **words, int max)
{
	const char *why;

	return split_line(line, words, max, &why);
}

/* ---- answers ---- */

static json_object *
reply_ok(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *
reply_error(const char *fmt, ...) PRINTFLIKE(1, 2);

static json_object *
reply_error(const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = vasprintf_or("out of memory", fmt, ap);
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	free(msg);
	return o;
}

static void
add(json_object *o, const char *key, json_object *v)
{
	json_object_object_add(o, key, v);
}

/* As int64: json-c before 0.14 has no uint64, and no count or size of
 * ours comes near 2^63. */
static json_object *
j_u64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

/* 0 means "off" or "not known" for limits and readings. */
static json_object *
j_u64_or_null(uint64_t v)
{
	return v ? j_u64(v) : NULL;
}

/* A double with a fixed number of decimals (json-c would print 17). */
static json_object *
j_double(double v, int decimals)
{
	char buf[64];

	if (!isfinite(v))
		return NULL;
	snprintf(buf, sizeof buf, "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

static json_object *
j_str_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

/* ---- status ---- */

/* Most urgent first, as the pool takes them (heap.h's order). */
static int
pending_cmp(const void *a, const void *b)
{
	const struct heap_node *x = &(*(const struct worker *const *)a)->
	    pending_node;
	const struct heap_node *y = &(*(const struct worker *const *)b)->
	    pending_node;

	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The waiting recycles of p in the order they will begin; caller frees. */
static struct worker **
pending_sorted(const struct pool *p, size_t *n)
{
	struct worker **v = xcalloc(heap_size(&p->pending) + 1, sizeof *v);
	size_t i;

	for (i = 0; i < heap_size(&p->pending); i++)
		v[i] = (struct worker *)((char *)p->pending.v[i] -
		    offsetof(struct worker, pending_node));
	qsort(v, i, sizeof *v, pending_cmp);
	*n = i;
	return v;
}

/*
 * What status shows of w's memory: the sampler's last reading, or with
 * --exact one of worker_probe_exact(), which leaves the sampler's state
 * alone. Status only reads: it never samples, so asking in a loop neither
 * stalls the workers nor skews their growth estimates.
 */
struct worker_mem {
	struct mem_sample s;
	uint64_t	 memory;
	bool		 exact;
	uint64_t	 peak;
};

static void
worker_mem(struct worker *w, double now, bool exact, struct worker_mem *m)
{
	enum mem_metric metric = w->cfg->memory_metric;

	m->s = w->last;
	m->memory = w->memory;
	m->exact = w->memory_exact;
	m->peak = w->peak;
	if (!exact || worker_probe_exact(w, now, &m->s) == -1)
		return;
	/* The cgroup counter is exact already, and not this probe's. */
	if (metric == METRIC_RSS || metric == METRIC_PSS ||
	    metric == METRIC_USS) {
		m->memory = metric == METRIC_RSS ? m->s.rss :
		    metric == METRIC_PSS ? m->s.pss : m->s.uss;
		m->exact = true;
		if (m->memory > m->peak)
			m->peak = m->memory;
	}
}

/*
 * User + system CPU seconds of the worker's process and of its children
 * it reaped, from /proc/PID/stat (fields 14 to 17), read for a status
 * only; top turns two of them into a percentage. null if unreadable.
 */
static json_object *
worker_cpu_json(pid_t pid)
{
	unsigned long long ut, st, cut, cst;
	char path[64], buf[1024], *p;
	long hz = sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if (hz <= 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
	    &ut, &st, &cut, &cst) != 4)
		return NULL;
	return j_double((double)(ut + st + cut + cst) / (double)hz, 2);
}

/*
 * recycle_scope = children: a master's children as the last sample saw
 * them (status never samples them; --exact reads only the workers).
 */
static json_object *
children_json(const struct children *set, double now)
{
	json_object *a = json_object_new_array(), *o;
	const struct child *c;
	unsigned int i;
	double g;

	for (i = 0; set != NULL && i < set->n; i++) {
		c = set->v[i];
		o = json_object_new_object();
		add(o, "pid", json_object_new_int64(c->pid));
		add(o, "state", json_object_new_string(child_state_name(c)));
		add(o, "uptime", j_double(child_uptime(c, now), 3));
		add(o, "rss", c->samples ? j_u64(c->last.rss) : NULL);
		add(o, "pss", c->last.has_smaps ? j_u64(c->last.pss) : NULL);
		add(o, "uss", c->last.has_smaps ? j_u64(c->last.uss) : NULL);
		add(o, "memory", c->samples ? j_u64(c->memory) : NULL);
		add(o, "memory_exact",
		    json_object_new_boolean(c->memory_exact));
		add(o, "samples", j_u64(c->samples));
		add(o, "threshold", j_u64_or_null(c->limits.recycle_memory));
		add(o, "kill_threshold", j_u64_or_null(c->limits.kill_memory));
		add(o, "max_lifetime", c->limits.max_lifetime_ms ?
		    j_double((double)c->limits.max_lifetime_ms / 1000.0, 3) :
		    NULL);
		add(o, "growth_bytes_per_s", growth_per_sec(&c->growth,
		    &g) == 0 ? j_double(g, 1) : NULL);
		add(o, "peak", j_u64(c->peak));
		add(o, "baseline_error", json_object_new_boolean(c->baseline));
		add(o, "recycle_reason", c->recycle_reason != REASON_NONE ?
		    json_object_new_string(reason_name(c->recycle_reason)) :
		    NULL);
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *
worker_json(struct worker *w, double now, bool exact, struct worker **pend,
    size_t npend)
{
	json_object *o = json_object_new_object();
	struct worker_mem m;
	struct worker **at;
	double g;

	worker_mem(w, now, exact, &m);
	add(o, "slot", json_object_new_int64(w->slot));
	add(o, "pid", json_object_new_int64(w->pid));
	add(o, "state", json_object_new_string(worker_state_name(w->state)));
	add(o, "uptime", j_double(worker_uptime(w, now), 3));
	add(o, "tasks", j_u64(w->tasks));
	add(o, "rss", j_u64_or_null(m.s.rss));
	add(o, "pss", m.s.has_smaps ? j_u64(m.s.pss) : NULL);
	add(o, "uss", m.s.has_smaps ? j_u64(m.s.uss) : NULL);
	add(o, "memory", j_u64_or_null(m.memory));
	add(o, "memory_exact", json_object_new_boolean(m.exact));
	add(o, "samples", j_u64(w->samples));
	add(o, "metric", json_object_new_string(
	    mem_metric_name(w->cfg->memory_metric)));
	add(o, "threshold", j_u64_or_null(w->limits.recycle_memory));
	add(o, "kill_threshold", j_u64_or_null(w->limits.kill_memory));
	add(o, "max_tasks", j_u64_or_null(w->limits.max_tasks));
	add(o, "max_lifetime", w->limits.max_lifetime_ms ?
	    j_double((double)w->limits.max_lifetime_ms / 1000.0, 3) : NULL);
	add(o, "growth_bytes_per_s", growth_per_sec(&w->growth, &g) == 0 ?
	    j_double(g, 1) : NULL);
	add(o, "growth_bytes_per_task", growth_per_task(&w->growth, &g) == 0 ?
	    j_double(g, 1) : NULL);
	add(o, "peak", j_u64(m.peak));
	add(o, "status_text", j_str_or_null(w->status));
	add(o, "recycle_reason", w->recycle_reason != REASON_NONE ?
	    json_object_new_string(reason_name(w->recycle_reason)) : NULL);
	add(o, "stop_reason", (w->state == WS_DRAINING ||
	    w->state == WS_KILLED) && w->stop_reason != REASON_NONE ?
	    json_object_new_string(reason_name(w->stop_reason)) : NULL);
	/* A recycle waiting for its place: where in the queue, since when. */
	at = w->pending ? bsearch(&w, pend, npend, sizeof *pend, pending_cmp) :
	    NULL;
	add(o, "queue_position", at ? j_u64((uint64_t)(at - pend) + 1) : NULL);
	add(o, "waiting", w->recycle_reason != REASON_NONE &&
	    w->state == WS_READY ? j_double(now - w->recycle_mono, 3) : NULL);
	add(o, "overshoot", json_object_new_boolean(w->overshot));
	/* prespawn: its replacement asked for ahead of a crossing. */
	add(o, "prespawn", !w->prespawned ? NULL : json_object_new_string(
	    w->pending ? "waiting" : w->standby ? "standby" : "starting"));
	add(o, "cpu_seconds", worker_cpu_json(w->pid));
	add(o, "restarts", w->slot < w->pool->nslots &&
	    w->pool->slots[w->slot] != NULL &&
	    w->pool->slots[w->slot]->starts > 0 ?
	    j_u64(w->pool->slots[w->slot]->starts - 1) : NULL);
	if (w->cfg->recycle_scope == SCOPE_CHILDREN)
		add(o, "children", children_json(w->children, now));
	return o;
}

/* spawn = template: the template forks go to, or null. */
static json_object *
template_json(const struct pool *p)
{
	struct template_info ti;
	json_object *o;
	struct worker *w;

	template_info(p, &ti);
	o = json_object_new_object();
	if ((w = ti.w) != NULL) {
		add(o, "pid", json_object_new_int64(w->pid));
		add(o, "generation", j_u64(ti.generation));
		add(o, "state", json_object_new_string(
		    worker_state_name(w->state)));
		add(o, "uptime", j_double(worker_uptime(w, mono_now()), 3));
		add(o, "rss", j_u64_or_null(w->last.rss));
		add(o, "pss", w->last.has_smaps ? j_u64(w->last.pss) : NULL);
		add(o, "memory", j_u64_or_null(w->memory));
		add(o, "status_text", j_str_or_null(w->status));
	} else {
		add(o, "pid", NULL);
		add(o, "generation", NULL);
		add(o, "state", json_object_new_string(ti.restart_in > 0 ?
		    "backoff" : "none"));
	}
	add(o, "forks", j_u64(ti.forks));
	add(o, "forking", j_u64(ti.inflight));
	add(o, "old", j_u64(ti.old));
	add(o, "failures", j_u64(ti.failures));
	add(o, "last_error", j_str_or_null(ti.last_error));
	add(o, "restart_in", ti.restart_in > 0 ? j_double(ti.restart_in, 3) :
	    NULL);
	return o;
}

static int
worker_cmp(const void *a, const void *b)
{
	const struct worker *x = *(const struct worker *const *)a;
	const struct worker *y = *(const struct worker *const *)b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

static json_object *
pool_json(struct pool *p)
{
	json_object *o = json_object_new_object(), *rec;
	uint64_t total = 0;
	int r;

	add(o, "name", json_object_new_string(p->name));
	add(o, "state", json_object_new_string(pool_state_name(p->state)));
	add(o, "desired", j_u64(p->desired));
	add(o, "configured", j_u64(p->cfg->workers));
	add(o, "size", j_u64(p->nworkers));
	add(o, "starting", j_u64(pool_count(p, WS_STARTING)));
	add(o, "ready", j_u64(pool_count(p, WS_READY)));
	add(o, "draining", j_u64(pool_count(p, WS_DRAINING)));
	add(o, "killed", j_u64(pool_count(p, WS_KILLED)));

	rec = json_object_new_object();
	for (r = 0; r < REASON__COUNT; r++)
		if (reason_is_recycle((enum reason)r)) {
			add(rec, reason_name((enum reason)r),
			    j_u64(p->recycles[r]));
			total += p->recycles[r];
		}
	add(o, "recycles", rec);
	add(o, "recycles_total", j_u64(total));
	add(o, "oom_kills", j_u64(p->recycles[REASON_OOM]));
	add(o, "crashes", j_u64(p->crashes));
	add(o, "failed_starts", j_u64(p->failed_starts));
	add(o, "spawn_failures", j_u64(p->spawn_failures));
	add(o, "spawns", j_u64(p->spawns));
	add(o, "max_recycling", j_u64(pool_max_recycling(p)));
	add(o, "recycling", j_u64(p->recycling));
	add(o, "pending", j_u64(heap_size(&p->pending)));
	add(o, "overshoot_drains", j_u64(p->overshoot_drains));
	add(o, "prespawns", j_u64(p->prespawns));
	add(o, "prespawn_misses", j_u64(p->prespawn_misses));
	add(o, "start_time", p->nstart ? j_double(p->start_median, 3) : NULL);
	add(o, "start_horizon", p->nstart ? j_double(p->start_horizon, 3) :
	    NULL);
	add(o, "recycle_scope", json_object_new_string(
	    recycle_scope_name(p->cfg->recycle_scope)));
	if (p->cfg->recycle_scope == SCOPE_CHILDREN) {
		/* Children the daemon drained or killed; not in "recycles",
		 * which counts the pool's own processes. */
		static const enum reason why[] = {
			REASON_MEMORY, REASON_KILL_MEMORY, REASON_LIFETIME,
		};
		size_t i;

		total = 0;
		rec = json_object_new_object();
		for (i = 0; i < nitems(why); i++) {
			add(rec, reason_name(why[i]),
			    j_u64(p->children.recycles[why[i]]));
			total += p->children.recycles[why[i]];
		}
		add(o, "child_recycles", rec);
		add(o, "child_recycles_total", j_u64(total));
	}
	add(o, "spawn", json_object_new_string(p->cfg->spawn ==
	    SPAWN_TEMPLATE ? "template" : "exec"));
	add(o, "template", p->cfg->spawn == SPAWN_TEMPLATE ||
	    !template_is_gone(p) ? template_json(p) : NULL);

	add(o, "metric", json_object_new_string(
	    mem_metric_name(p->cfg->memory_metric)));
	add(o, "recycle_memory", j_u64_or_null(p->cfg->recycle_memory));
	add(o, "kill_memory", j_u64_or_null(p->cfg->kill_memory));
	add(o, "max_tasks", j_u64_or_null(p->cfg->max_tasks));
	add(o, "max_lifetime", p->cfg->max_lifetime_ms ?
	    j_double((double)p->cfg->max_lifetime_ms / 1000.0, 3) : NULL);

	/* Its "workers" follow, written by the cursor (status_step()). */
	return o;
}

/* ---- answers written as the socket drains ---- */

/*
 * A status answer of thousands of workers is megabytes: it is written a
 * few hundred workers at a time, when the client has taken what came
 * before (OUT_LOW), rather than built whole. The cursor finds its place
 * again by name and by key, never by pointer, so pools and workers that
 * come and go between two steps are handled: a pool removed meanwhile is
 * closed short, a worker reaped is not listed, one started behind the
 * cursor is not listed either. The answer stays one JSON line.
 */
/* Where the cursor writes: a client's output buffer, or a string. */
struct sink {
	void		(*put)(void *, const char *, size_t);
	void		*arg;
};

#define CURSOR_WORKERS	128		/* worker objects per step */
#define CURSOR_TEXT	65536		/* bytes of text per step */

static void
cursor_free(struct cursor *cur)
{
	strv_free(cur->pools);
	free(cur->text);
	free(cur->pool);
	memset(cur, 0, sizeof *cur);
}

static void
put_str(const struct sink *k, const char *s)
{
	k->put(k->arg, s, strlen(s));
}

static const char *
json_plain(json_object *o)
{
	return json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* o without its closing brace, then more: the object stays open. */
static void
put_open(const struct sink *k, json_object *o, const char *more)
{
	const char *s = json_plain(o);

	k->put(k->arg, s, strlen(s) - 1);
	put_str(k, more);
	json_object_put(o);
}

static void
put_json(const struct sink *k, json_object *o)
{
	put_str(k, json_plain(o));
	json_object_put(o);
}

static bool
worker_after(const struct worker *w, unsigned int slot, unsigned int gen)
{
	return w->slot > slot || (w->slot == slot && w->gen > gen);
}

/* Up to CURSOR_WORKERS more workers of p, or the end of its array. */
static void
status_workers(struct cursor *cur, struct pool *p, const struct sink *k)
{
	struct worker *w, **sorted, **pend;
	size_t i, n = 0, npend;

	/* By slot, then oldest first: a replacement follows its worker. */
	sorted = xcalloc(p->nworkers + 1, sizeof *sorted);
	TAILQ_FOREACH(w, &p->workers, entry)
		if (n <= p->nworkers && (!cur->any_worker ||
		    worker_after(w, cur->slot, cur->gen)))
			sorted[n++] = w;
	qsort(sorted, n, sizeof *sorted, worker_cmp);
	pend = pending_sorted(p, &npend);
	for (i = 0; i < n && i < CURSOR_WORKERS; i++) {
		if (cur->any_worker)
			put_str(k, ",");
		put_json(k, worker_json(sorted[i], cur->now, cur->exact, pend,
		    npend));
		cur->any_worker = true;
		cur->slot = sorted[i]->slot;
		cur->gen = sorted[i]->gen;
	}
	free(pend);
	if (i == n) {
		put_str(k, "]}");
		cur->in_workers = false;
		cur->ipool++;
	}
	free(sorted);
}

/* One step of a status answer; false when it is complete. */
static bool
status_step(struct recyclerd *rd, struct cursor *cur, const struct sink *k)
{
	struct pool *p;

	while (cur->ipool < cur->npools) {
		p = pool_find(rd, cur->pools[cur->ipool]);
		if (p == NULL) {
			/* Removed by a reload meanwhile. */
			if (cur->in_workers)
				put_str(k, "]}");
			cur->in_workers = false;
			cur->ipool++;
			continue;
		}
		if (!cur->in_workers) {
			if (cur->any_pool)
				put_str(k, ",");
			cur->any_pool = true;
			put_open(k, pool_json(p), ",\"workers\":[");
			cur->in_workers = true;
			cur->any_worker = false;
		}
		status_workers(cur, p, k);
		return true;
	}
	put_str(k, "]}");
	return false;
}

/* One step of a text answer ("metrics"); false when it is complete. */
static bool
text_step(struct cursor *cur, const struct sink *k)
{
	size_t n = cur->text_len - cur->text_off;
	json_object *o;
	const char *s;

	if (n == 0) {
		put_str(k, "\"}");
		return false;
	}
	if (n > CURSOR_TEXT)
		n = CURSOR_TEXT;
	/* json-c escapes byte by byte: pieces join into the whole. */
	o = json_object_new_string_len(cur->text + cur->text_off, (int)n);
	s = json_plain(o);
	k->put(k->arg, s + 1, strlen(s) - 2);	/* without its quotes */
	json_object_put(o);
	cur->text_off += n;
	return true;
}

static bool
event_matches(const struct cursor *cur, const struct event *e)
{
	return (cur->pool == NULL || strcmp(cur->pool, e->pool) == 0) &&
	    (cur->reason < 0 || (int)e->reason == cur->reason);
}

static json_object *event_json(const struct event *);

static bool
line_matches(const struct cursor *cur, const struct logline *l)
{
	return (cur->pool == NULL || strcmp(cur->pool, l->pool) == 0) &&
	    (cur->lslot < 0 || l->slot == cur->lslot);
}

static void format_wall(double, char *, size_t);

/* Worker text as JSON wants it: valid UTF-8, no control characters. */
static json_object *
j_text(const char *s)
{
	size_t n = strlen(s), i = 0, o = 0, l;
	char *t = xmalloc(n + 1);
	json_object *j;

	while (i < n) {
		l = utf8_len((const unsigned char *)s + i);
		if (l == 0 || (l == 1 && ((unsigned char)s[i] < ' ' ||
		    s[i] == 0x7f))) {
			t[o++] = '?';
			i++;
		} else {
			memcpy(t + o, s + i, l);
			o += l;
			i += l;
		}
	}
	j = json_object_new_string_len(t, (int)o);
	free(t);
	return j;
}

static json_object *
logline_json(const struct logline *l)
{
	json_object *o = json_object_new_object();
	char when[64];

	format_wall(l->wall, when, sizeof when);
	add(o, "seq", j_u64(l->seq));
	add(o, "time", json_object_new_string(when));
	add(o, "pool", json_object_new_string(l->pool));
	add(o, "slot", json_object_new_int(l->slot));
	add(o, "pid", json_object_new_int64(l->pid));
	add(o, "stream", json_object_new_string(l->stream));
	add(o, "text", j_text(l->text));
	return o;
}

/* The output lines relayed since the last step, one JSON line each. */
static void
follow_logs(struct cursor *cur, const struct sink *k)
{
	const struct logline *l, *from = NULL;
	json_object *o;

	for (l = logring_last(); l != NULL && l->seq > cur->seq;
	    l = logring_prev(l))
		from = l;
	for (l = from; l != NULL; l = logring_next(l)) {
		cur->seq = l->seq;
		if (!line_matches(cur, l))
			continue;
		o = logline_json(l);
		put_str(k, json_plain(o));
		put_str(k, "\n");
		json_object_put(o);
	}
}

/* The events recorded since the last step, one JSON line each. */
static void
follow_step(struct recyclerd *rd, struct cursor *cur, const struct sink *k)
{
	size_t n = events_count(rd->events), i = n;
	const struct event *e;
	json_object *o;

	if (cur->logs) {
		follow_logs(cur, k);
		return;
	}
	while (i > 0 && events_get(rd->events, i - 1)->seq > cur->seq)
		i--;
	for (; i < n; i++) {
		e = events_get(rd->events, i);
		cur->seq = e->seq;
		if (!event_matches(cur, e))
			continue;
		o = event_json(e);
		put_str(k, json_plain(o));
		put_str(k, "\n");
		json_object_put(o);
	}
}

/* Write the next part of the answer; false (and cur freed) when done. */
static bool
cursor_step(struct recyclerd *rd, struct cursor *cur, const struct sink *k)
{
	bool more = false;

	switch (cur->kind) {
	case CUR_STATUS:
		more = status_step(rd, cur, k);
		break;
	case CUR_TEXT:
		more = text_step(cur, k);
		break;
	case CUR_FOLLOW:	/* once here: control_execute() cannot wait */
		follow_step(rd, cur, k);
		break;
	case CUR_NONE:
		break;
	}
	if (!more)
		cursor_free(cur);
	return more;
}

/* ---- commands ---- */

struct request {
	struct recyclerd *rd;
	const struct control_peer *peer;
	int		 argc;		/* arguments after the command */
	char		**argv;
	struct cursor	*cur;		/* a command that streams starts it */
};

static json_object *
cmd_status(struct request *rq)
{
	struct recyclerd *rd = rq->rd;
	struct cursor *cur = rq->cur;
	struct pool *p, *only = NULL;
	char **argv = rq->argv;
	int argc = rq->argc;
	bool exact = false;
	json_object *o;
	size_t n = 0;

	/* Pool names start with a letter or digit: no pool is "--exact". */
	if (argc > 0 && strcmp(argv[0], "--exact") == 0) {
		exact = true;
		argc--, argv++;
	}
	if (argc > 1 || (argc == 1 && argv[0][0] == '-'))
		return reply_error("usage: status [--exact] [POOL]");
	if (argc == 1 && (only = pool_find(rd, argv[0])) == NULL)
		return reply_error("no such pool: %s", argv[0]);
	/* The head now; "pools" from the cursor, a step at a time. */
	cur->kind = CUR_STATUS;
	cur->exact = exact;
	cur->now = mono_now();
	LIST_FOREACH(p, &rd->pools, entry)
		n++;
	cur->pools = xcalloc(n + 1, sizeof *cur->pools);
	LIST_FOREACH(p, &rd->pools, entry)
		if (only == NULL || p == only)
			cur->pools[cur->npools++] = xstrdup(p->name);
	o = reply_ok();
	add(o, "version", json_object_new_string(PACKAGE_VERSION));
	add(o, "pid", json_object_new_int64(rd->pid));
	add(o, "uptime", j_double(cur->now - rd->started_mono, 3));
	add(o, "notify_dropped", j_u64(notify_dropped_uid(rd->notify)));
	add(o, "pools", json_object_new_array());	/* opened by the cursor */
	return o;
}

/* Parse a count argument; NULL or an error reply. */
static json_object *
parse_count(const char *cmd, const char *what, const char *s, uint64_t max,
    uint64_t *v)
{
	const char *why = units_parse_uint(s, 0, max, v);

	if (why == NULL)
		return NULL;
	return reply_error("%s: invalid %s %s: %s (0 to %" PRIu64 ")", cmd,
	    what, s, why, max);
}

static json_object *
pool_reply(const struct pool *p)
{
	json_object *o = reply_ok();

	add(o, "pool", json_object_new_string(p->name));
	add(o, "state", json_object_new_string(pool_state_name(p->state)));
	add(o, "desired", j_u64(p->desired));
	return o;
}

static json_object *
cmd_recycle(struct request *rq)
{
	json_object *err, *o;
	uint64_t slot = 0;
	bool all = rq->argc < 2 || strcmp(rq->argv[1], "all") == 0;
	struct pool *p;
	int n;

	if (!all && (err = parse_count("recycle", "worker", rq->argv[1],
	    SCALE_MAX - 1, &slot)) != NULL)
		return err;
	if ((p = pool_find(rq->rd, rq->argv[0])) == NULL)
		return reply_error("no such pool: %s", rq->argv[0]);
	n = pool_recycle(p, all ? -1 : (int)slot, REASON_MANUAL);
	if (n < 0)
		return reply_error("pool %s has no worker %" PRIu64, p->name,
		    slot);
	o = reply_ok();
	add(o, "pool", json_object_new_string(p->name));
	add(o, "recycling", json_object_new_int(n));
	return o;
}

static json_object *
cmd_scale(struct request *rq)
{
	json_object *err;
	struct pool *p;
	uint64_t n;

	if ((err = parse_count("scale", "count", rq->argv[1], SCALE_MAX,
	    &n)) != NULL)
		return err;
	if ((p = pool_find(rq->rd, rq->argv[0])) == NULL)
		return reply_error("no such pool: %s", rq->argv[0]);
	pool_scale(p, (unsigned int)n);
	return pool_reply(p);
}

static json_object *
cmd_stop(struct request *rq)
{
	struct pool *p;

	if ((p = pool_find(rq->rd, rq->argv[0])) == NULL)
		return reply_error("no such pool: %s", rq->argv[0]);
	pool_stop(p);
	return pool_reply(p);
}

static json_object *
cmd_start(struct request *rq)
{
	struct pool *p;

	if ((p = pool_find(rq->rd, rq->argv[0])) == NULL)
		return reply_error("no such pool: %s", rq->argv[0]);
	pool_start(p);
	return pool_reply(p);
}

static json_object *
cmd_reload(struct request *rq)
{
	json_object *o;
	char *err = NULL;

	if (rq->rd->reload == NULL)
		return reply_error("reload: not available");
	if (rq->rd->reload(rq->rd, &err) == 0) {
		free(err);
		return reply_ok();
	}
	o = reply_error("reload refused, running configuration kept: %s",
	    err && *err ? err : "unknown error");
	free(err);
	return o;
}

/* {"exit":3}, {"signal":"SIGKILL","core_dumped":true} or NULL. */
static json_object *
status_json(int status)
{
	json_object *o;

	if (status == -1)
		return NULL;
	o = json_object_new_object();
	if (WIFEXITED(status)) {
		add(o, "exit", json_object_new_int(WEXITSTATUS(status)));
	} else if (WIFSIGNALED(status)) {
		add(o, "signal", json_object_new_string(
		    units_signal_name(WTERMSIG(status))));
		if (WCOREDUMP(status))
			add(o, "core_dumped", json_object_new_boolean(1));
	} else {
		add(o, "wait_status", json_object_new_int(status));
	}
	return o;
}

/* ISO 8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z */
static void
format_wall(double wall, char *buf, size_t size)
{
	time_t secs = wall > 0 ? (time_t)wall : 0;	/* truncates */
	unsigned int ms = wall > 0 ?
	    (unsigned int)((wall - (double)secs) * 1000.0) % 1000u : 0;
	char date[32];
	struct tm tm;

	if (gmtime_r(&secs, &tm) == NULL ||
	    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(date, sizeof date, "1970-01-01T00:00:00");
	snprintf(buf, size, "%s.%03uZ", date, ms);
}

static json_object *
event_json(const struct event *e)
{
	json_object *o = json_object_new_object();
	char when[64];

	format_wall(e->wall, when, sizeof when);
	add(o, "seq", j_u64(e->seq));
	add(o, "time", json_object_new_string(when));
	add(o, "pool", json_object_new_string(e->pool));
	add(o, "slot", e->slot >= 0 ? json_object_new_int(e->slot) : NULL);
	add(o, "pid", e->pid > 0 ? json_object_new_int64(e->pid) : NULL);
	add(o, "kind", json_object_new_string(e->kind ? e->kind : "?"));
	add(o, "reason", e->reason != REASON_NONE ?
	    json_object_new_string(reason_name(e->reason)) : NULL);
	add(o, "status", status_json(e->status));
	add(o, "uptime", e->slot >= 0 ? j_double(e->uptime_s, 3) : NULL);
	add(o, "tasks", j_u64(e->tasks));
	add(o, "memory", j_u64_or_null(e->memory));
	add(o, "peak", j_u64_or_null(e->peak));
	add(o, "detail", j_str_or_null(e->detail));
	add(o, "overshoot", json_object_new_boolean(e->overshoot));
	add(o, "child", e->child > 0 ? json_object_new_int64(e->child) : NULL);
	return o;
}

/*
 * events [N] [pool=POOL] [reason=REASON] [follow]: the last N events that
 * match; with follow, the connection then carries each new one that
 * matches, one JSON object a line, until the client hangs up.
 */
static json_object *
cmd_events(struct request *rq)
{
	struct cursor *cur = rq->cur;
	const char *pool = NULL, *a;
	json_object *err, *o, *arr;
	uint64_t want = EVENTS_DEFAULT;
	bool follow = false, counted = false;
	size_t n, i, start;
	int reason = -1, r, k;

	for (k = 0; k < rq->argc; k++) {
		a = rq->argv[k];
		if (strcmp(a, "follow") == 0 && !follow) {
			follow = true;
		} else if (strncmp(a, "pool=", 5) == 0 && pool == NULL) {
			pool = a + 5;
		} else if (strncmp(a, "reason=", 7) == 0 && reason < 0) {
			for (r = 1; r < REASON__COUNT; r++)
				if (strcmp(a + 7, reason_name((enum reason)r))
				    == 0)
					reason = r;
			if (reason < 0)
				return reply_error("events: unknown reason %s",
				    a + 7);
		} else if (!counted && strchr(a, '=') == NULL &&
		    strcmp(a, "follow") != 0) {
			if ((err = parse_count("events", "count", a,
			    EVENTS_MAX, &want)) != NULL)
				return err;
			counted = true;
		} else {
			return reply_error("usage: events [N] [pool=POOL] "
			    "[reason=REASON] [follow]");
		}
	}
	cur->pool = pool ? xstrdup(pool) : NULL;
	cur->reason = reason;
	n = events_count(rq->rd->events);
	/* The last `want` that match, oldest first. */
	for (start = n, i = 0; start > 0 && i < want; start--)
		if (event_matches(cur, events_get(rq->rd->events, start - 1)))
			i++;
	arr = json_object_new_array();
	for (i = start; i < n; i++)
		if (event_matches(cur, events_get(rq->rd->events, i)))
			json_object_array_add(arr,
			    event_json(events_get(rq->rd->events, i)));
	if (follow) {
		cur->kind = CUR_FOLLOW;
		cur->seq = n ? events_get(rq->rd->events, n - 1)->seq : 0;
	} else {
		cursor_free(cur);
	}
	o = reply_ok();
	add(o, "events", arr);
	if (follow)
		add(o, "follow", json_object_new_boolean(true));
	return o;
}

/*
 * logs [POOL [SLOT]] [N] [follow]: the last N lines (default 50) of
 * worker output kept in the ring, then, with follow, each new one.
 */
static json_object *
cmd_logs(struct request *rq)
{
	struct cursor *cur = rq->cur;
	const char *pool = NULL, *slot = NULL, *a;
	json_object *err, *o, *arr;
	const struct logline *l, *from;
	uint64_t want = EVENTS_DEFAULT, v, i;
	bool follow = false;
	int k;

	for (k = 0; k < rq->argc; k++) {
		a = rq->argv[k];
		if (strcmp(a, "follow") == 0 && !follow)
			follow = true;
		else if (strncmp(a, "lines=", 6) == 0) {
			if ((err = parse_count("logs", "count", a + 6,
			    LOGRING_MAX, &want)) != NULL)
				return err;
		} else if (pool == NULL)
			pool = a;
		else if (slot == NULL)
			slot = a;
		else
			return reply_error("usage: logs [POOL [SLOT]] "
			    "[lines=N] [follow]");
	}
	if (pool != NULL && pool_find(rq->rd, pool) == NULL)
		return reply_error("no such pool: %s", pool);
	cur->lslot = -1;
	if (slot != NULL) {
		if ((err = parse_count("logs", "slot", slot, SCALE_MAX,
		    &v)) != NULL)
			return err;
		cur->lslot = (int)v;
	}
	cur->pool = pool ? xstrdup(pool) : NULL;
	cur->logs = true;
	/* The last `want` matching lines, oldest first. */
	for (l = logring_last(), from = NULL, i = 0; l != NULL && i < want;
	    l = logring_prev(l))
		if (line_matches(cur, l)) {
			from = l;
			i++;
		}
	arr = json_object_new_array();
	for (l = from; l != NULL; l = logring_next(l))
		if (line_matches(cur, l))
			json_object_array_add(arr, logline_json(l));
	if (follow) {
		cur->kind = CUR_FOLLOW;
		l = logring_last();
		cur->seq = l != NULL ? l->seq : 0;
	} else {
		cursor_free(cur);
	}
	o = reply_ok();
	add(o, "lines", arr);
	if (follow)
		add(o, "follow", json_object_new_boolean(true));
	return o;
}

/* config [POOL]: the configuration in force, as a file, defaults marked. */
static json_object *
cmd_config(struct request *rq)
{
	const char *pool = rq->argc == 1 ? rq->argv[0] : NULL;
	json_object *o;
	char *text = NULL;
	size_t len;
	FILE *f;

	if (pool != NULL && pool_find(rq->rd, pool) == NULL)
		return reply_error("no such pool: %s", pool);
	if ((f = open_memstream(&text, &len)) == NULL)
		return reply_error("config: %s", strerror(errno));
	if (config_dump(rq->rd->cfg, pool, f) == -1 || fclose(f) != 0) {
		free(text);
		return reply_error("config: %s", strerror(ENOMEM));
	}
	rq->cur->kind = CUR_TEXT;
	rq->cur->text = text;
	rq->cur->text_len = strlen(text);
	o = reply_ok();
	add(o, "config", json_object_new_string(""));	/* opened below */
	return o;
}

static json_object *
cmd_metrics(struct request *rq)
{
	json_object *o;
	char *text;

	if (metrics_render(rq->rd, &text) == -1)
		return reply_error("metrics: %s", strerror(errno));
	/* The text is escaped into the answer as the client takes it. */
	rq->cur->kind = CUR_TEXT;
	rq->cur->text = text;
	rq->cur->text_len = strlen(text);
	o = reply_ok();
	add(o, "metrics", json_object_new_string(""));	/* opened below */
	return o;
}

static json_object *
cmd_version(struct request *rq)
{
	json_object *o = reply_ok();

	add(o, "version", json_object_new_string(PACKAGE_VERSION));
	return o;
}

static const struct command {
	const char	*name;
	int		 min_args;
	int		 max_args;
	bool		 changes_state;	/* logged */
	const char	*usage;
	json_object	*(*run)(struct request *);
} commands[] = {
	{ "status", 0, 2, false, "status [--exact] [POOL]", cmd_status },
	{ "recycle", 1, 2, true, "recycle POOL [WORKER|all]", cmd_recycle },
	{ "scale", 2, 2, true, "scale POOL N", cmd_scale },
	{ "stop", 1, 1, true, "stop POOL", cmd_stop },
	{ "start", 1, 1, true, "start POOL", cmd_start },
	{ "reload", 0, 0, true, "reload", cmd_reload },
	{ "events", 0, 4, false, "events [N] [pool=POOL] [reason=REASON] "
	    "[follow]", cmd_events },
	{ "logs", 0, 4, false, "logs [POOL [SLOT]] [lines=N] [follow]",
	    cmd_logs },
	{ "config", 0, 1, false, "config [POOL]", cmd_config },
	{ "metrics", 0, 0, false, "metrics", cmd_metrics },
	{ "version", 0, 0, false, "version", cmd_version },
};

#define COMMAND_LIST \
	"status, recycle, scale, stop, start, reload, events, logs, config, " \
	"metrics, version"

static json_object *
permission_error(struct recyclerd *rd, const struct control_peer *peer)
{
	if (rd->cfg->control_group == NULL)
		return reply_error("permission denied: uid %lu is not root "
		    "(no control_group is set)", (unsigned long)peer->uid);
	return reply_error("permission denied: uid %lu is not root or a "
	    "member of group %s", (unsigned long)peer->uid,
	    rd->cfg->control_group);
}

/* "recycle web all", for the log. */
static void
join_words(char **words, int n, char *buf, size_t size)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
		    i ? " " : "", words[i]);
}

/*
 * The answer to line: a whole one, or (cur started) the head of one whose
 * last member, an empty array or string, the cursor goes on to fill.
 */
static json_object *
dispatch(struct recyclerd *rd, const struct control_peer *peer, char *line,
    struct cursor *cur)
{
	char *words[CONTROL_WORDS_MAX], text[256];
	const struct command *c = NULL;
	struct request rq = { rd, peer, 0, NULL, cur };
	json_object *o, *err;
	const char *why;
	size_t i;
	int n;

	if (!peer->allowed)
		return permission_error(rd, peer);
	if ((n = split_line(line, words, CONTROL_WORDS_MAX, &why)) == -1)
		return reply_error("%s", why);
	if (n == 0)
		return reply_error("empty request (commands: " COMMAND_LIST
		    ")");
	for (i = 0; i < nitems(commands) && c == NULL; i++)
		if (strcmp(words[0], commands[i].name) == 0)
			c = &commands[i];
	if (c == NULL)
		return reply_error("unknown command: %s (commands: "
		    COMMAND_LIST ")", words[0]);
	if (n - 1 < c->min_args || n - 1 > c->max_args)
		return reply_error("usage: %s", c->usage);
	rq.argc = n - 1;
	rq.argv = words + 1;
	/* Logged before it runs, so the log reads cause, then effects. */
	if (c->changes_state) {
		join_words(words, n, text, sizeof text);
		log_info("control: uid %lu: %s", (unsigned long)peer->uid,
		    text);
	}
	o = c->run(&rq);
	if (c->changes_state && json_object_object_get_ex(o, "error", &err))
		log_warn("control: uid %lu: %s refused: %s",
		    (unsigned long)peer->uid, text,
		    json_object_get_string(err));
	return o;
}

/* The answer to line into k: whole, or its head with cur started. */
static void
answer_start(struct recyclerd *rd, const struct control_peer *peer,
    char *line, struct cursor *cur, const struct sink *k)
{
	json_object *o = dispatch(rd, peer, line, cur);
	const char *s = json_plain(o);

	/* A streamed answer's head ends in its open member: `[]}`, `""}`;
	 * a followed one is whole, and its lines come after. */
	k->put(k->arg, s, strlen(s) - (cur->kind != CUR_NONE &&
	    cur->kind != CUR_FOLLOW ? 2 : 0));
	json_object_put(o);
}

struct strbuf {
	char		*s;
	size_t		 len;
	size_t		 cap;
};

static void
strbuf_put(void *arg, const char *s, size_t len)
{
	struct strbuf *b = arg;

	if (b->len + len + 1 > b->cap) {
		b->cap = b->len + len + 1 > 2 * b->cap ? b->len + len + 1 :
		    2 * b->cap;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

char *
control_execute(struct recyclerd *rd, const struct control_peer *peer,
    char *line)
{
	struct cursor cur = { .kind = CUR_NONE };
	struct strbuf b = { NULL, 0, 0 };
	struct sink k = { strbuf_put, &b };

	answer_start(rd, peer, line, &cur, &k);
	while (cursor_step(rd, &cur, &k))
		continue;
	return b.s;
}

/* ---- clients ---- */

static void
client_free(struct client *c)
{
	struct control *ctl = c->ctl;
	struct ev_loop *loop = ctl->rd->loop;

	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->idle);
	ev_timer_stop(loop, &c->more);
	close(c->fd);
	TAILQ_REMOVE(&ctl->clients, c, entry);
	ctl->nclients--;
	if (c->cur.kind == CUR_FOLLOW && --ctl->nfollowers == 0)
		ev_check_stop(loop, &ctl->follow_check);
	cursor_free(&c->cur);
	free(c->out);
	free(c);
}

static void
client_queue(struct client *c, const char *s, size_t len)
{
	size_t need;

	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + len;
	if (need > c->out_cap && c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		need = c->out_len + len;
	}
	if (need > c->out_cap) {
		c->out_cap = need > 2 * c->out_cap ? need : 2 * c->out_cap;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, s, len);
	c->out_len += len;
}

static size_t
client_pending(const struct client *c)
{
	return c->out_len - c->out_off;
}

static void
client_put(void *arg, const char *s, size_t len)
{
	client_queue(arg, s, len);
}

/*
 * The next steps of a long answer, up to OUT_LOW more bytes: the unread
 * limit is on what a client leaves unread, never on an answer's size.
 * When it is complete, the requests that waited behind it are next.
 */
static void
client_produce(struct client *c)
{
	struct sink k = { client_put, c };
	size_t goal = client_pending(c) + OUT_LOW;

	if (c->cur.kind == CUR_FOLLOW) {	/* never complete */
		follow_step(c->ctl->rd, &c->cur, &k);
		return;
	}
	while (client_pending(c) < goal) {
		if (!cursor_step(c->ctl->rd, &c->cur, &k)) {
			client_queue(c, "\n", 1);
			ev_timer_start(c->ctl->rd->loop, &c->more);
			break;
		}
	}
}

/*
 * Send what the socket takes now; watch for room if anything is left.
 * Returns false when c was freed (error, done after EOF, or a reader too
 * slow to keep its unread answers under CONTROL_OUTPUT_MAX).
 */
static bool
client_flush(struct client *c)
{
	struct ev_loop *loop = c->ctl->rd->loop;
	bool progress = false;
	ssize_t n;

	/* Once per call: a fast reader of a long answer still waits its
	 * turn in the loop, behind the write watcher. */
	if (c->cur.kind != CUR_NONE && client_pending(c) < OUT_LOW)
		client_produce(c);
	while (client_pending(c) > 0) {
		n = send(c->fd, c->out + c->out_off, client_pending(c),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			log_debug("control: uid %lu pid %ld: %s",
			    (unsigned long)c->peer.uid, (long)c->peer.pid,
			    n == 0 ? "hung up" : strerror(errno));
			client_free(c);
			return false;
		}
		c->out_off += (size_t)n;
		progress = true;
	}
	if (progress)
		ev_timer_again(loop, &c->idle);
	if (client_pending(c) == 0 && c->cur.kind == CUR_FOLLOW) {
		ev_io_stop(loop, &c->wio);	/* until the next event */
		return true;
	}
	if (client_pending(c) == 0 && c->cur.kind == CUR_NONE) {
		c->out_off = c->out_len = 0;
		if (c->out_cap > OUT_KEEP) {	/* a big answer is gone */
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
		ev_io_stop(loop, &c->wio);
		if (c->eof) {
			client_free(c);
			return false;
		}
		return true;
	}
	if (client_pending(c) > CONTROL_OUTPUT_MAX) {
		log_warn("control: uid %lu pid %ld: disconnecting a client that "
		    "does not read its answers (%zu bytes unread)",
		    (unsigned long)c->peer.uid, (long)c->peer.pid,
		    client_pending(c));
		client_free(c);
		return false;
	}
	ev_io_start(loop, &c->wio);
	return true;
}

static void
client_reply(struct client *c, const char *json)
{
	client_queue(c, json, strlen(json));
	client_queue(c, "\n", 1);
}

/* One complete line is in c->in[0, in_len). */
static void
client_request(struct client *c)
{
	struct sink k = { client_put, c };

	c->in[c->in_len] = '\0';
	if (!c->peer.allowed && !c->refusal_logged) {
		c->refusal_logged = true;
		log_warn("control: uid %lu pid %ld: refused: not root or a "
		    "member of control_group %s", (unsigned long)c->peer.uid,
		    (long)c->peer.pid, c->ctl->rd->cfg->control_group ?
		    c->ctl->rd->cfg->control_group : "(none set)");
	}
	if (c->peer.allowed && strlen(c->in) != c->in_len) {
		client_reply(c, "{\"ok\":false,\"error\":\"request contains a "
		    "control character\"}");
		return;
	}
	answer_start(c->ctl->rd, &c->peer, c->in, &c->cur, &k);
	if (c->cur.kind == CUR_FOLLOW) {
		client_queue(c, "\n", 1);
		if (c->ctl->nfollowers++ == 0)
			ev_check_start(c->ctl->rd->loop, &c->ctl->follow_check);
		/* Its reading side only tells when it hangs up. */
		ev_io_start(c->ctl->rd->loop, &c->rio);
		return;
	}
	if (c->cur.kind == CUR_NONE)
		client_queue(c, "\n", 1);
	else		/* the rest as the client reads (client_flush()) */
		client_produce(c);	/* a short one is complete now */
}

/*
 * Split what was read into lines and answer them, at most
 * REQUESTS_PER_TURN at a time: a client that pipelines many costly
 * requests must not keep the loop from the others. A line too long is
 * answered once and its rest skipped up to the next newline.
 */
static void
client_feed(struct client *c)
{
	const char *buf, *nl;
	size_t len, n;
	int answered = 0;

	while (c->rbuf_off < c->rbuf_len && answered < REQUESTS_PER_TURN &&
	    client_pending(c) <= CONTROL_OUTPUT_MAX &&
	    c->cur.kind == CUR_NONE) {
		buf = c->rbuf + c->rbuf_off;
		n = c->rbuf_len - c->rbuf_off;
		nl = memchr(buf, '\n', n);
		len = nl ? (size_t)(nl - buf) : n;
		if (c->discarding) {
			c->discarding = nl == NULL;
		} else if (c->in_len + len > CONTROL_LINE_MAX) {
			client_reply(c, "{\"ok\":false,\"error\":\"request "
			    "line longer than " STR(CONTROL_LINE_MAX)
			    " bytes\"}");
			answered++;
			c->in_len = 0;
			c->discarding = nl == NULL;
		} else {
			memcpy(c->in + c->in_len, buf, len);
			c->in_len += len;
			if (nl != NULL) {
				client_request(c);
				answered++;
				c->in_len = 0;
			}
		}
		c->rbuf_off += len + (nl != NULL);
	}
}

/* Answer what can be answered this turn, then send. May free c. */
static void
client_work(struct client *c)
{
	struct ev_loop *loop = c->ctl->rd->loop;

	client_feed(c);
	if (c->cur.kind == CUR_FOLLOW) {
		/* Requests after follow are not read; hang-ups are. */
	} else if (c->cur.kind != CUR_NONE) {
		/* Read nothing more until the long answer is out: its end
		 * starts the more timer (client_produce()). */
		ev_io_stop(loop, &c->rio);
	} else if (c->rbuf_off < c->rbuf_len) {
		/* Read nothing more until the rest is answered. */
		ev_io_stop(loop, &c->rio);
		ev_timer_start(loop, &c->more);
	} else if (!c->eof) {
		ev_io_start(loop, &c->rio);
	}
	(void)client_flush(c);		/* may free c */
}

static void
client_more_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	client_work(t->data);		/* may free it */
}

static void
client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct client *c = io->data;
	ssize_t n;

	(void)revents;
	n = recv(c->fd, c->rbuf, sizeof c->rbuf, MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n == -1) {
		log_debug("control: uid %lu pid %ld: %s",
		    (unsigned long)c->peer.uid, (long)c->peer.pid,
		    strerror(errno));
		client_free(c);
		return;
	}
	ev_timer_again(loop, &c->idle);
	if (c->cur.kind == CUR_FOLLOW) {
		if (n == 0)		/* done following */
			client_free(c);
		return;			/* anything else it sends is ignored */
	}
	c->rbuf_off = 0;
	c->rbuf_len = (size_t)n;
	if (n == 0) {
		/* Half-closed: answer what was asked, then hang up. A last
		 * line without its newline still counts. */
		c->eof = true;
		ev_io_stop(loop, &c->rio);
		if (c->in_len > 0 && !c->discarding)
			client_request(c);
		c->in_len = 0;
	}
	client_work(c);			/* may free c */
}

static void
client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	(void)client_flush(io->data);	/* may free it */
}

static void
client_idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct client *c = t->data;

	(void)revents;
	if (c->cur.kind == CUR_FOLLOW) {	/* waiting is its job */
		ev_timer_again(loop, &c->idle);
		return;
	}
	log_debug("control: uid %lu pid %ld: idle for %.0fs, hanging up",
	    (unsigned long)c->peer.uid, (long)c->peer.pid, CONTROL_IDLE_S);
	client_free(c);
}

/* After a loop turn: send followers the events it added. */
static void
control_follow_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct control *ctl = w->data;
	struct client *c, *next;
	size_t n = events_count(ctl->rd->events);
	uint64_t last = n ? events_get(ctl->rd->events, n - 1)->seq : 0;
	const struct logline *ll = logring_last();
	uint64_t last_line = ll != NULL ? ll->seq : 0;

	(void)loop;
	(void)revents;
	for (c = TAILQ_FIRST(&ctl->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->cur.kind == CUR_FOLLOW &&
		    c->cur.seq < (c->cur.logs ? last_line : last))
			(void)client_flush(c);	/* may free c */
	}
}

/* Supplementary groups of the peer, as they were at connect time, else
 * as /proc says now. Returns true when gid is among them. */
static bool
peer_has_group(int fd, pid_t pid, gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof groups;
	char path[64], *line = NULL, *s, *end;
	size_t cap = 0, i;
	bool found = false;
	unsigned long g;
	FILE *f;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
		for (i = 0; i < len / sizeof groups[0]; i++)
			if (groups[i] == gid)
				return true;
		return false;
	}
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (!found && getline(&line, &cap, f) != -1) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (s = line + 7;; s = end) {
			errno = 0;
			g = strtoul(s, &end, 10);
			if (end == s || errno != 0)
				break;
			if ((gid_t)g == gid) {
				found = true;
				break;
			}
		}
		break;
	}
	free(line);
	fclose(f);
	return found;
}

static bool
peer_allowed(const struct config *cfg, int fd, const struct ucred *uc)
{
	/* Our own user too: a daemon run without root answers its owner. */
	if (uc->uid == 0 || uc->uid == geteuid())
		return true;
	if (cfg->control_group == NULL)
		return false;
	return uc->gid == cfg->control_gid ||
	    peer_has_group(fd, uc->pid, cfg->control_gid);
}

static void
client_new(struct control *ctl, int fd)
{
	struct ev_loop *loop = ctl->rd->loop;
	struct ucred uc;
	socklen_t len = sizeof uc;
	struct client *c;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1) {
		log_warn_errno("control: unable to read a client's credentials");
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->ctl = ctl;
	c->fd = fd;
	c->peer.uid = uc.uid;
	c->peer.gid = uc.gid;
	c->peer.pid = uc.pid;
	c->peer.allowed = peer_allowed(ctl->rd->cfg, fd, &uc);
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	ev_init(&c->idle, client_idle_cb);
	c->idle.repeat = CONTROL_IDLE_S;
	ev_timer_init(&c->more, client_more_cb, 0.0, 0.0);
	c->rio.data = c->wio.data = c->idle.data = c->more.data = c;
	TAILQ_INSERT_TAIL(&ctl->clients, c, entry);
	ctl->nclients++;
	ev_io_start(loop, &c->rio);
	ev_timer_again(loop, &c->idle);
	log_debug("control: client uid %lu gid %lu pid %ld%s",
	    (unsigned long)uc.uid, (unsigned long)uc.gid, (long)uc.pid,
	    c->peer.allowed ? "" : " (not allowed)");
}

/* Over the limit: say so if the socket takes it now, and hang up. */
static void
refuse_client(struct control *ctl, int fd)
{
	static const char msg[] =
	    "{\"ok\":false,\"error\":\"too many clients\"}\n";
	double now = mono_now();

	(void)send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (now - ctl->full_logged_mono >= FULL_LOG_INTERVAL_S) {
		ctl->full_logged_mono = now;
		log_warn("control: refusing clients: %u connected already "
		    "(at most %u)", ctl->nclients, CONTROL_CLIENTS_MAX);
	}
}

static void
control_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct control *ctl = io->data;
	int fd, i;

	(void)revents;
	for (i = 0; i < ACCEPT_BURST; i++) {
		fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors: the socket stays readable, so
			 * stop watching it for a while instead of spinning. */
			log_warn_errno("control: unable to accept a client; "
			    "pausing for %.0fs", ACCEPT_PAUSE_S);
			ev_io_stop(loop, &ctl->accept_io);
			ev_timer_set(&ctl->accept_pause, ACCEPT_PAUSE_S, 0.0);
			ev_timer_start(loop, &ctl->accept_pause);
			return;
		}
		if (ctl->nclients >= CONTROL_CLIENTS_MAX)
			refuse_client(ctl, fd);
		else
			client_new(ctl, fd);
	}
}

static void
control_pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct control *ctl = t->data;

	(void)revents;
	ev_io_start(loop, &ctl->accept_io);
}

/* ---- the listening socket ---- */

/*
 * Is a daemon answering on path? 0: no (nothing there, or a stale socket,
 * now removed); -1: yes, or the file is not ours to remove (logged).
 */
static int
clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		log_err_errno("control socket %s", path);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control socket %s: exists and is not a socket; "
		    "refusing to replace it", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		log_err_errno("control socket %s: socket", path);
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		/* EAGAIN: its backlog is full, so someone is listening. */
		close(fd);
		log_err("control socket %s is in use by a running daemon",
		    path);
		return -1;
	}
	rc = errno;
	close(fd);
	if (rc != ECONNREFUSED && rc != ENOENT) {
		log_msg_errno(LOG_ERR, rc, "control socket %s: unable to tell "
		    "whether a daemon is listening", path);
		return -1;
	}
	if (rc == ECONNREFUSED) {
		log_notice("control socket %s: replacing a stale socket", path);
		if (unlink(path) == -1 && errno != ENOENT) {
			log_err_errno("control socket %s: unable to remove "
			    "the stale socket", path);
			return -1;
		}
	}
	return 0;
}

/*
 * Mode 0660 and group control_group (else root's): who may connect. On
 * the file bind() made (dev, ino), through an O_PATH | O_NOFOLLOW
 * descriptor: never through a link, never on a file that replaced ours.
 * fchmod() would change the socket, not the file: chmod its /proc/self/fd
 * link, which names that very inode.
 */
static int
set_access(const struct config *cfg, const char *path, dev_t dev, ino_t ino)
{
	char proc[64];
	struct stat st;
	int fd, rc = -1;

	if ((fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_err_errno("control socket %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || st.st_dev != dev || st.st_ino != ino) {
		log_err("control socket %s: no longer the socket file we "
		    "made; its mode and group are left alone", path);
		goto out;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (chmod(proc, 0660) == -1) {
		log_err_errno("control socket %s: chmod 0660", path);
		goto out;
	}
	/* Not root: the socket stays ours, in control_group if one is set. */
	if ((geteuid() == 0 || cfg->control_group != NULL) &&
	    fchownat(fd, "", geteuid() == 0 ? 0 : (uid_t)-1,
	    cfg->control_group != NULL ? cfg->control_gid : 0,
	    AT_EMPTY_PATH) == -1) {
		log_err_errno("control socket %s: chown to group %s", path,
		    cfg->control_group != NULL ? cfg->control_group : "root");
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

struct control *
control_open(struct recyclerd *rd)
{
	const char *path = rd->cfg->control_socket;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct control *ctl;
	struct stat st;
	mode_t old_mask;
	int fd, rc;

	if (strlen(path) >= sizeof sun.sun_path) {
		log_err("control socket %s: path longer than %zu bytes", path,
		    sizeof sun.sun_path - 1);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (clear_stale(path, &sun) == -1)
		return NULL;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		log_err_errno("control socket %s: socket", path);
		return NULL;
	}
	/* Born 0660 rather than opened up and then narrowed. */
	old_mask = umask(0117);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old_mask);
	if (rc == -1) {
		log_err_errno("unable to bind control socket %s", path);
		close(fd);
		return NULL;
	}
	if (lstat(path, &st) == -1) {
		log_err_errno("control socket %s", path);
		goto fail;
	}
	if (set_access(rd->cfg, path, st.st_dev, st.st_ino) == -1)
		goto fail;
	if (listen(fd, SOMAXCONN) == -1) {
		log_err_errno("control socket %s", path);
		goto fail;
	}

	ctl = xcalloc(1, sizeof *ctl);
	ctl->rd = rd;
	ctl->fd = fd;
	ctl->path = xstrdup(path);
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	ctl->full_logged_mono = -FULL_LOG_INTERVAL_S;
	TAILQ_INIT(&ctl->clients);
	ev_io_init(&ctl->accept_io, control_accept_cb, fd, EV_READ);
	ctl->accept_io.data = ctl;
	ev_init(&ctl->accept_pause, control_pause_cb);
	ctl->accept_pause.data = ctl;
	ev_check_init(&ctl->follow_check, control_follow_cb);
	ctl->follow_check.data = ctl;
	ev_io_start(rd->loop, &ctl->accept_io);
	log_info("control socket %s", path);
	return ctl;

fail:
	unlink(path);
	close(fd);
	return NULL;
}

void
control_reconfigure(struct control *ctl)
{
	if (ctl != NULL)
		(void)set_access(ctl->rd->cfg, ctl->path, ctl->dev,
		    ctl->ino);
}

void
control_close(struct control *ctl)
{
	struct client *c;
	struct stat st;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(c);
	ev_io_stop(ctl->rd->loop, &ctl->accept_io);
	ev_timer_stop(ctl->rd->loop, &ctl->accept_pause);
	ev_check_stop(ctl->rd->loop, &ctl->follow_check);
	close(ctl->fd);
	/* Another daemon may have taken the path over since: not ours. */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
