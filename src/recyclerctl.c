/* SPDX-License-Identifier: MIT */
/*
 * recyclerctl.c - the command-line client of recyclerd's control socket.
 *
 * It sends one request line, reads one JSON answer line of any size (no
 * silence longer than RESPONSE_TIMEOUT_MS) and prints it: raw with --json, else as tables and
 * short lines for people. `status -w` and `top` repeat `status` like top(1)
 * until interrupted. Everything the daemon sends is data: worker STATUS=
 * texts and pool names are printed with control characters masked, so a
 * worker cannot drive the operator's terminal.
 *
 * Exit status: 0 done, 1 the daemon answered with an error, 2 no answer
 * (cannot connect, timeout, malformed answer), 3 `status` found a pool
 * stopped or failed (as systemctl status does), 64 bad usage. Options may
 * come before or after the command (getopt permutes; `--` ends them).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"		/* CONFIG_DEFAULT_SOCKET only */
#include "units.h"
#include "util.h"

/* The daemon's default control_socket, whatever the prefix. */
#define DEFAULT_SOCKET		CONFIG_DEFAULT_SOCKET
#define RESPONSE_TIMEOUT_MS	10000
#define WATCH_MIN_MS		100

#define EXIT_ERROR		1	/* the daemon said no */
#define EXIT_NO_ANSWER		2	/* no daemon, or no sense from it */
#define EXIT_POOL_DOWN		3	/* status: a pool stopped or failed */

struct opts {
	const char	*socket_path;
	bool		 json;
};

/* A connection to the daemon; fd -1 when closed. */
struct conn {
	const char	*path;
	int		 fd;
	char		*rest;		/* read past the answer's newline */
	size_t		 nrest;
};

#define FOLLOW_LINE_MAX	(1u << 20)	/* longer: not the protocol */

static volatile sig_atomic_t interrupted;

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: recyclerctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	    "\n"
	    "commands:\n"
	    "  status [-w[SECONDS]] [--exact] [POOL]\n"
	    "                                pools and workers (-w: refresh;\n"
	    "                                --exact: memory read now, with\n"
	    "                                smaps_rollup)\n"
	    "  top [POOL]                    status, refreshed every second\n"
	    "  recycle POOL [WORKER|all]     replace workers gracefully\n"
	    "  scale POOL N                  run N workers\n"
	    "  stop POOL                     drain every worker of the pool\n"
	    "  start POOL                    start a stopped or failed pool\n"
	    "  reload                        re-read the configuration\n"
	    "  events [N] [-f] [--pool POOL] [--reason REASON]\n"
	    "                                the last N events (default 50);\n"
	    "                                -f: then each new one\n"
	    "  logs [POOL [SLOT]] [-f] [-n N] worker output, the last N lines\n"
	    "                                (50); -f: then each new one\n"
	    "  config [POOL]                 the configuration in force\n"
	    "  metrics                       Prometheus text format\n"
	    "  version                       the daemon's version\n"
	    "\n"
	    "options:\n"
	    "  -s, --socket SOCKET  control socket (default $RECYCLERD_SOCKET "
	    "or\n"
	    "                       %s)\n"
	    "  -j, --json           print the daemon's JSON answer as is\n"
	    "  -w, --watch[=SECONDS] status: refresh every SECONDS (1s)\n"
	    "  -V, --version        print recyclerctl's version and exit\n"
	    "  -h, --help           print this help and exit\n",
	    DEFAULT_SOCKET);
}

static _Noreturn void
usage_error(const char *fmt, ...) PRINTFLIKE(1, 2);

static _Noreturn void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("recyclerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(recyclerctl --help lists the commands)\n", stderr);
	exit(EX_USAGE);
}

/* ---- talking to the daemon ---- */

static double
now_ms(void)
{
	return mono_now() * 1000.0;
}

static int
conn_open(struct conn *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (strlen(c->path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		int saved = errno;

		close(c->fd);
		c->fd = -1;
		errno = saved;
		return -1;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	/* What came after the last answer belongs to this connection. */
	free(c->rest);
	c->rest = NULL;
	c->nrest = 0;
}

/* Why connect() failed, as the operator needs it. */
static void
connect_message(const struct conn *c, int err, char *buf, size_t size)
{
	snprintf(buf, size, "cannot connect to %s: %s; %s", c->path,
	    strerror(err), err == EACCES || err == EPERM ?
	    "only root and members of the daemon's control_group may use it" :
	    "is recyclerd running? (set -s or RECYCLERD_SOCKET)");
}

/* Wait for events on fd until the deadline; 1 ready, 0 timeout, -1 error
 * (EINTR when interrupted). */
static int
wait_fd(int fd, short events, double deadline_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	double left;
	int rc;

	for (;;) {
		left = deadline_ms - now_ms();
		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, (int)left + 1);
		if (rc == -1 && errno == EINTR && !interrupted)
			continue;
		return rc;
	}
}

/*
 * Send line and read one answer line into *answer (caller frees, no
 * newline). 0, or -1 with a message in msg.
 */
static int
conn_request(struct conn *c, const char *line, char **answer, char *msg,
    size_t msgsize)
{
	double deadline = now_ms() + RESPONSE_TIMEOUT_MS;
	size_t len = strlen(line), off = 0, cap = 4096, got = 0;
	char *buf = NULL, *nl;
	ssize_t n;
	int rc;

	while (off < len) {
		if ((rc = wait_fd(c->fd, POLLOUT, deadline)) <= 0)
			goto fail_wait;
		n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(msg, msgsize, "%s: %s", c->path,
			    strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	buf = xmalloc(cap);
	for (;;) {
		if ((rc = wait_fd(c->fd, POLLIN, deadline)) <= 0)
			goto fail_wait;
		/* Answers of any size: a status of many workers is
		 * megabytes, and comes as the daemon writes it. */
		if (got + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = recv(c->fd, buf + got, cap - got - 1, 0);
		if (n == -1 && errno == EINTR && !interrupted)
			continue;
		if (n == -1) {
			snprintf(msg, msgsize, "%s: %s", c->path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0) {
			snprintf(msg, msgsize, "%s: connection closed "
			    "before an answer", c->path);
			goto fail;
		}
		/* Only the new bytes can hold the newline. The timeout is
		 * for silence: a long answer that keeps coming is awaited. */
		nl = memchr(buf + got, '\n', (size_t)n);
		got += (size_t)n;
		deadline = now_ms() + RESPONSE_TIMEOUT_MS;
		if (nl != NULL) {
			*nl = '\0';
			*answer = buf;
			/* A followed answer's next lines may have come too. */
			free(c->rest);
			c->nrest = got - (size_t)(nl + 1 - buf);
			c->rest = xmalloc(c->nrest + 1);
			memcpy(c->rest, nl + 1, c->nrest);
			return 0;
		}
	}

fail_wait:
	if (rc == 0)
		snprintf(msg, msgsize, "%s: no answer within %ds", c->path,
		    RESPONSE_TIMEOUT_MS / 1000);
	else
		snprintf(msg, msgsize, "%s: %s", c->path, strerror(errno));
fail:
	free(buf);
	return -1;
}

/* ---- reading answers ---- */

static json_object *
jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *
jstr(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	return v && json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : NULL;
}

static bool
jnum(json_object *o, const char *key, double *d)
{
	json_object *v = jget(o, key);

	if (v == NULL || !(json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double)))
		return false;
	*d = json_object_get_double(v);
	return true;
}

/* A count or a size; 0 when absent, null or negative. */
static uint64_t
jcount(json_object *v)
{
	int64_t n;

	if (v == NULL || !json_object_is_type(v, json_type_int))
		return 0;
	n = json_object_get_int64(v);
	return n > 0 ? (uint64_t)n : 0;
}

static uint64_t
ju64(json_object *o, const char *key)
{
	return jcount(jget(o, key));
}

/* Text from the daemon, control characters masked (it may come from a
 * worker's STATUS=). keep_newlines for multi-line errors. */
static void
put_clean(FILE *f, const char *s, bool keep_newlines)
{
	for (; s && *s; s++)
		fputc(((unsigned char)*s < 0x20 && !(keep_newlines &&
		    *s == '\n')) || *s == 0x7f ? '?' : *s, f);
}

static char *
clean(const char *s)
{
	size_t len;
	char *out;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		return xstrdup("?");
	put_clean(f, s, false);
	fclose(f);
	return out;
}

static char *
fmt_size_or_dash(json_object *o, const char *key, char *buf, size_t size)
{
	double d;

	if (!jnum(o, key, &d) || d < 0)
		return strcpy(buf, "-");
	return units_format_size((uint64_t)d, buf, size);
}

/* "+1.5M", "-200K", "+0B"; "-" when unknown. */
static char *
fmt_growth(json_object *o, const char *key, char *buf, size_t size)
{
	char tmp[32];
	double d;

	if (!jnum(o, key, &d))
		return strcpy(buf, "-");
	units_format_size((uint64_t)((d < 0 ? -d : d) + 0.5), tmp, sizeof tmp);
	snprintf(buf, size, "%s%s", d < 0 ? "-" : "+", tmp);
	return buf;
}

/* "4.2s", "5m12s": tenths under a minute, whole seconds above. */
static char *
fmt_seconds(json_object *o, const char *key, char *buf, size_t size)
{
	uint64_t ms;
	double d;

	if (!jnum(o, key, &d) || d < 0)
		return strcpy(buf, "-");
	ms = (uint64_t)(d * 1000.0);
	ms = ms < 60000 ? ms / 100 * 100 : ms / 1000 * 1000;
	return units_format_duration(ms, buf, size);
}

/* ---- tables ---- */

#define COLS_MAX	14

struct table {
	size_t		 ncols;
	const char	*head[COLS_MAX];
	bool		 right[COLS_MAX];	/* numbers align right */
	char		**cells;		/* rows * ncols, owned */
	size_t		 nrows;
};

static void
table_add(struct table *t, char **row)
{
	size_t i;

	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols *
	    sizeof *t->cells);
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = row[i];
	t->nrows++;
}

static void
table_print(FILE *f, struct table *t)
{
	size_t w[COLS_MAX], i, r, len;
	const char *s;

	for (i = 0; i < t->ncols; i++)
		w[i] = strlen(t->head[i]);
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++)
			if ((len = strlen(t->cells[r * t->ncols + i])) > w[i])
				w[i] = len;
	for (r = 0; r <= t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			s = r == 0 ? t->head[i] : t->cells[(r - 1) *
			    t->ncols + i];
			if (i == t->ncols - 1)	/* last: no padding */
				fprintf(f, "%s", s);
			else
				fprintf(f, t->right[i] ? "%*s  " : "%-*s  ",
				    (int)w[i], s);
		}
		fputc('\n', f);
	}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* ---- printing answers ---- */

/*
 * CPU % of a worker between two frames of top or status -w: the daemon
 * gives CPU seconds, the last frame's are kept here by pid.
 */
#define CPU_KEEP	4096
static struct cpu_seen {
	uint64_t	 pid;
	double		 cpu;
	double		 at;		/* the daemon's uptime then */
} cpu_prev[CPU_KEEP], cpu_next[CPU_KEEP];
static size_t ncpu_prev, ncpu_next;
static double frame_uptime;

static char *
fmt_cpu(json_object *w, char *buf, size_t size)
{
	uint64_t pid = ju64(w, "pid");
	double cpu;
	size_t i;

	snprintf(buf, size, "-");
	if (!jnum(w, "cpu_seconds", &cpu))
		return buf;
	if (ncpu_next < CPU_KEEP)
		cpu_next[ncpu_next++] = (struct cpu_seen){ pid, cpu,
		    frame_uptime };
	for (i = 0; i < ncpu_prev; i++)
		if (cpu_prev[i].pid == pid && frame_uptime > cpu_prev[i].at)
			snprintf(buf, size, "%.1f", 100.0 * (cpu -
			    cpu_prev[i].cpu) / (frame_uptime - cpu_prev[i].at));
	return buf;
}

/* A frame is printed: its figures are the next one's baseline. */
static void
cpu_frame_done(void)
{
	memcpy(cpu_prev, cpu_next, ncpu_next * sizeof *cpu_next);
	ncpu_prev = ncpu_next;
	ncpu_next = 0;
}

static void
print_worker_row(struct table *t, json_object *w)
{
	char *row[COLS_MAX], buf[64], *status;
	const char *text = jstr(w, "status_text");
	const char *rr = jstr(w, "recycle_reason");
	const char *sr = jstr(w, "stop_reason");
	const char *ps = jstr(w, "prespawn");
	double d;

	xasprintf(&row[0], "%" PRIu64, ju64(w, "slot"));
	xasprintf(&row[1], "%" PRIu64, ju64(w, "pid"));
	row[2] = clean(jstr(w, "state"));
	row[3] = xstrdup(fmt_seconds(w, "uptime", buf, sizeof buf));
	row[4] = xstrdup(jnum(w, "tasks", &d) ? (snprintf(buf, sizeof buf,
	    "%.0f", d), buf) : "-");
	row[5] = xstrdup(fmt_size_or_dash(w, "rss", buf, sizeof buf));
	row[6] = xstrdup(fmt_size_or_dash(w, "pss", buf, sizeof buf));
	row[7] = xstrdup(fmt_size_or_dash(w, "uss", buf, sizeof buf));
	row[8] = xstrdup(fmt_size_or_dash(w, "threshold", buf, sizeof buf));
	row[9] = xstrdup(fmt_growth(w, "growth_bytes_per_s", buf, sizeof buf));
	row[10] = xstrdup(fmt_growth(w, "growth_bytes_per_task", buf,
	    sizeof buf));
	if (rr != NULL || sr != NULL)
		xasprintf(&status, "[%s: %s]%s%s", rr ? "recycling" : "stopping",
		    rr ? rr : sr, text ? " " : "", text ? text : "");
	else if (ps != NULL)
		xasprintf(&status, "[prespawn: %s]%s%s", ps, text ? " " : "",
		    text ? text : "");
	else
		status = xstrdup(text ? text : "");
	row[11] = clean(status);
	free(status);
	/* Before STATUS, the last column, which is not padded. */
	row[13] = row[11];
	row[11] = xstrdup(fmt_cpu(w, buf, sizeof buf));
	row[12] = xstrdup(jnum(w, "restarts", &d) ? (snprintf(buf,
	    sizeof buf, "%.0f", d), buf) : "-");
	table_add(t, row);
}

/*
 * recycle_scope = children: one row per child of a master, under its
 * row, "child" in the SLOT column; columns a child has not are "-".
 */
static void
print_child_rows(struct table *t, json_object *w)
{
	json_object *cs = jget(w, "children"), *c;
	char *row[COLS_MAX], buf[64], *status;
	const char *rr;
	size_t i;

	if (cs == NULL || !json_object_is_type(cs, json_type_array))
		return;
	for (i = 0; i < json_object_array_length(cs); i++) {
		c = json_object_array_get_idx(cs, i);
		rr = jstr(c, "recycle_reason");
		row[0] = xstrdup("child");
		xasprintf(&row[1], "%" PRIu64, ju64(c, "pid"));
		row[2] = clean(jstr(c, "state"));
		row[3] = xstrdup(fmt_seconds(c, "uptime", buf, sizeof buf));
		row[4] = xstrdup("-");
		row[5] = xstrdup(fmt_size_or_dash(c, "rss", buf, sizeof buf));
		row[6] = xstrdup(fmt_size_or_dash(c, "pss", buf, sizeof buf));
		row[7] = xstrdup(fmt_size_or_dash(c, "uss", buf, sizeof buf));
		row[8] = xstrdup(fmt_size_or_dash(c, "threshold", buf,
		    sizeof buf));
		row[9] = xstrdup(fmt_growth(c, "growth_bytes_per_s", buf,
		    sizeof buf));
		row[10] = xstrdup("-");
		row[11] = xstrdup("-");
		row[12] = xstrdup("-");
		if (rr != NULL)
			xasprintf(&status, "[recycling: %s]", rr);
		else
			status = xstrdup(json_object_get_boolean(jget(c,
			    "baseline_error")) ? "[over recycle_memory at its "
			    "first sample: configuration error]" : "");
		row[13] = clean(status);
		free(status);
		table_add(t, row);
	}
}

/* spawn = template: one line for the template the workers fork from. */
static void
print_template(FILE *f, json_object *tp)
{
	const char *err = jstr(tp, "last_error");
	char buf[64];
	double d;

	if (tp == NULL || !json_object_is_type(tp, json_type_object))
		return;
	if (jnum(tp, "pid", &d)) {
		fprintf(f, "  template %" PRIu64 " [pid %.0f]: ",
		    ju64(tp, "generation"), d);
		put_clean(f, jstr(tp, "state"), false);
		fprintf(f, ", up %s", fmt_seconds(tp, "uptime", buf,
		    sizeof buf));
		fprintf(f, ", rss %s", fmt_size_or_dash(tp, "rss", buf,
		    sizeof buf));
		fprintf(f, ", pss %s", fmt_size_or_dash(tp, "pss", buf,
		    sizeof buf));
	} else {
		fputs("  template: ", f);
		put_clean(f, jstr(tp, "state"), false);
		if (jnum(tp, "restart_in", &d))
			fprintf(f, " (next in %s)", fmt_seconds(tp,
			    "restart_in", buf, sizeof buf));
	}
	fprintf(f, ", forks %" PRIu64 ", failures %" PRIu64,
	    ju64(tp, "forks"), ju64(tp, "failures"));
	if (ju64(tp, "old") > 0)
		fprintf(f, ", %" PRIu64 " old retiring", ju64(tp, "old"));
	fputc('\n', f);
	if (err != NULL) {
		fputs("  template last error: ", f);
		put_clean(f, err, false);
		fputc('\n', f);
	}
}

static void
print_pool(FILE *f, json_object *p)
{
	struct table t = { .ncols = 14, .head = { "SLOT", "PID", "STATE",
		"UPTIME", "TASKS", "RSS", "PSS", "USS", "THRESHOLD",
		"GROWTH/S", "GROWTH/TASK", "CPU%", "RESTARTS", "STATUS" },
		.right = { true, true, false, true, true, true, true, true,
		true, true, true, true, true, false } };
	json_object *rec = jget(p, "recycles"), *ws = jget(p, "workers");
	const char *sep = " (";
	char buf[64];
	size_t i;
	double d;

	fputs("pool ", f);
	put_clean(f, jstr(p, "name"), false);
	fprintf(f, ": ");
	put_clean(f, jstr(p, "state"), false);
	fprintf(f, ", ready %" PRIu64 "/%" PRIu64 ", recycles %" PRIu64,
	    ju64(p, "ready"), ju64(p, "desired"), ju64(p, "recycles_total"));
	if (rec != NULL && json_object_is_type(rec, json_type_object)) {
		json_object_object_foreach(rec, key, val) {
			if (jcount(val) == 0)
				continue;
			fprintf(f, "%s", sep);
			put_clean(f, key, false);
			fprintf(f, " %" PRIu64, jcount(val));
			sep = ", ";
		}
		if (*sep == ',')
			fputc(')', f);
	}
	if (jget(p, "child_recycles_total") != NULL)
		fprintf(f, ", child recycles %" PRIu64,
		    ju64(p, "child_recycles_total"));
	fprintf(f, ", crashes %" PRIu64, ju64(p, "crashes"));
	if (ju64(p, "failed_starts"))
		fprintf(f, ", failed starts %" PRIu64,
		    ju64(p, "failed_starts"));
	if (ju64(p, "oom_kills"))
		fprintf(f, ", oom kills %" PRIu64, ju64(p, "oom_kills"));
	fputc('\n', f);

	fputs("  metric ", f);
	put_clean(f, jstr(p, "metric"), false);
	if (jnum(p, "recycle_memory", &d))
		fprintf(f, ", recycle_memory %s", fmt_size_or_dash(p,
		    "recycle_memory", buf, sizeof buf));
	if (jnum(p, "kill_memory", &d))
		fprintf(f, ", kill_memory %s", fmt_size_or_dash(p,
		    "kill_memory", buf, sizeof buf));
	if (jnum(p, "max_tasks", &d))
		fprintf(f, ", max_tasks %.0f", d);
	if (jnum(p, "max_lifetime", &d))
		fprintf(f, ", max_lifetime %s", fmt_seconds(p, "max_lifetime",
		    buf, sizeof buf));
	fputc('\n', f);

	print_template(f, jget(p, "template"));

	if (ws == NULL || !json_object_is_type(ws, json_type_array) ||
	    json_object_array_length(ws) == 0) {
		fputs("  (no workers)\n", f);
		return;
	}
	for (i = 0; i < json_object_array_length(ws); i++) {
		print_worker_row(&t, json_object_array_get_idx(ws, i));
		print_child_rows(&t, json_object_array_get_idx(ws, i));
	}
	table_print(f, &t);
}

static void
print_status(FILE *f, json_object *o)
{
	json_object *pools = jget(o, "pools");
	char buf[64];
	size_t i;

	if (!jnum(o, "uptime", &frame_uptime))
		frame_uptime = 0;
	fputs("recyclerd ", f);
	put_clean(f, jstr(o, "version"), false);
	fprintf(f, ", pid %" PRIu64 ", up %s\n", ju64(o, "pid"),
	    fmt_seconds(o, "uptime", buf, sizeof buf));
	/* Only when there are some: someone else's process used a socket. */
	if (ju64(o, "notify_dropped") > 0)
		fprintf(f, "notify: %" PRIu64 " datagrams dropped (sender "
		    "neither root nor the socket's user)\n",
		    ju64(o, "notify_dropped"));
	if (pools == NULL || !json_object_is_type(pools, json_type_array))
		return;
	if (json_object_array_length(pools) == 0)
		fputs("\n(no pools)\n", f);
	for (i = 0; i < json_object_array_length(pools); i++) {
		fputc('\n', f);
		print_pool(f, json_object_array_get_idx(pools, i));
	}
	cpu_frame_done();
}

static void
print_event(FILE *f, json_object *e)
{
	json_object *st = jget(e, "status");
	const char *s;
	char buf[64];
	double d;

	put_clean(f, jstr(e, "time"), false);
	fputs("  ", f);
	put_clean(f, jstr(e, "pool"), false);
	if (jnum(e, "slot", &d))
		fprintf(f, "/%.0f", d);
	if (jnum(e, "pid", &d))
		fprintf(f, " [pid %.0f]", d);
	if (jnum(e, "child", &d))
		fprintf(f, " child %.0f", d);
	fputs("  ", f);
	put_clean(f, jstr(e, "kind"), false);
	if ((s = jstr(e, "reason")) != NULL) {
		fputs(" (", f);
		put_clean(f, s, false);
		fputc(')', f);
	}
	if (jnum(st, "exit", &d))
		fprintf(f, "  exit %.0f", d);
	else if ((s = jstr(st, "signal")) != NULL) {
		fputs("  ", f);
		put_clean(f, s, false);
		if (json_object_get_boolean(jget(st, "core_dumped")))
			fputs(" (core dumped)", f);
	}
	if (jnum(e, "uptime", &d))
		fprintf(f, "  uptime %s", fmt_seconds(e, "uptime", buf,
		    sizeof buf));
	if (jnum(e, "tasks", &d) && d > 0)
		fprintf(f, "  tasks %.0f", d);
	if (jnum(e, "memory", &d))
		fprintf(f, "  memory %s", fmt_size_or_dash(e, "memory", buf,
		    sizeof buf));
	if (jnum(e, "peak", &d))
		fprintf(f, "  peak %s", fmt_size_or_dash(e, "peak", buf,
		    sizeof buf));
	if ((s = jstr(e, "detail")) != NULL) {
		fputs(": ", f);
		put_clean(f, s, false);
	}
	fputc('\n', f);
}

/* A line of worker output: "TIME  POOL/SLOT [pid N] STREAM: TEXT". */
static void
print_logline(FILE *f, json_object *l)
{
	double d;

	put_clean(f, jstr(l, "time"), false);
	fputs("  ", f);
	put_clean(f, jstr(l, "pool"), false);
	if (jnum(l, "slot", &d))
		fprintf(f, "/%.0f", d);
	if (jnum(l, "pid", &d))
		fprintf(f, " [pid %.0f]", d);
	fputc(' ', f);
	put_clean(f, jstr(l, "stream"), false);
	fputs(": ", f);
	put_clean(f, jstr(l, "text"), false);
	fputc('\n', f);
}

/* The human form of a successful answer to words[0]. */
static void
print_answer(FILE *f, char **words, json_object *o)
{
	const char *cmd = words[0];
	json_object *evs;
	size_t i;
	double d;

	if (strcmp(cmd, "status") == 0) {
		print_status(f, o);
	} else if (strcmp(cmd, "events") == 0) {
		evs = jget(o, "events");
		if (evs == NULL || !json_object_is_type(evs, json_type_array))
			return;
		if (json_object_array_length(evs) == 0 && jget(o, "follow") == NULL)
			fputs("(no events)\n", f);
		for (i = 0; i < json_object_array_length(evs); i++)
			print_event(f, json_object_array_get_idx(evs, i));
	} else if (strcmp(cmd, "logs") == 0) {
		evs = jget(o, "lines");
		if (evs == NULL || !json_object_is_type(evs, json_type_array))
			return;
		for (i = 0; i < json_object_array_length(evs); i++)
			print_logline(f, json_object_array_get_idx(evs, i));
	} else if (strcmp(cmd, "metrics") == 0) {
		fputs(jstr(o, "metrics") ? jstr(o, "metrics") : "", f);
	} else if (strcmp(cmd, "config") == 0) {
		put_clean(f, jstr(o, "config") ? jstr(o, "config") : "", true);
	} else if (strcmp(cmd, "version") == 0) {
		fputs("recyclerd ", f);
		put_clean(f, jstr(o, "version"), false);
		fputc('\n', f);
	} else if (strcmp(cmd, "recycle") == 0) {
		d = 0;
		(void)jnum(o, "recycling", &d);
		fputs("ok: ", f);
		if (d == 0)
			fputs("no worker to recycle (none ready, or already "
			    "recycling) in ", f);
		else
			fprintf(f, "recycling %.0f worker%s of ", d,
			    d == 1 ? "" : "s");
		put_clean(f, jstr(o, "pool"), false);
		fputc('\n', f);
	} else if (strcmp(cmd, "reload") == 0) {
		fputs("ok: configuration reloaded\n", f);
	} else {	/* scale, stop, start */
		fputs("ok: pool ", f);
		put_clean(f, jstr(o, "pool"), false);
		fputs(": ", f);
		put_clean(f, jstr(o, "state"), false);
		fprintf(f, ", %" PRIu64 " worker%s wanted\n",
		    ju64(o, "desired"), ju64(o, "desired") == 1 ? "" : "s");
	}
}

/* ---- commands ---- */

static const struct command {
	const char	*name;
	int		 min_args;
	int		 max_args;
	const char	*usage;
} commands[] = {
	{ "status", 0, 1, "status [-w[SECONDS]] [--exact] [POOL]" },
	{ "top", 0, 1, "top [POOL]" },
	{ "recycle", 1, 2, "recycle POOL [WORKER|all]" },
	{ "scale", 2, 2, "scale POOL N" },
	{ "stop", 1, 1, "stop POOL" },
	{ "start", 1, 1, "start POOL" },
	{ "reload", 0, 0, "reload" },
	{ "events", 0, 1, "events [N] [-f] [--pool POOL] [--reason REASON]" },
	{ "logs", 0, 2, "logs [POOL [SLOT]] [-f] [-n N]" },
	{ "config", 0, 1, "config [POOL]" },
	{ "metrics", 0, 0, "metrics" },
	{ "version", 0, 0, "version" },
};

/* "recycle web 2\n"; words that would not survive the trip are refused. */
static char *
request_line(char **words, int n)
{
	size_t len = 2;
	char *line, *s;
	int i;

	for (i = 0; i < n; i++) {
		if (words[i][0] == '\0')
			usage_error("empty argument");
		for (s = words[i]; *s != '\0'; s++)
			if ((unsigned char)*s <= ' ' || *s == 0x7f)
				usage_error("argument \"%s\" contains white "
				    "space or a control character", words[i]);
		len += strlen(words[i]) + 1;
	}
	line = xmalloc(len);
	line[0] = '\0';
	for (i = 0; i < n; i++) {
		strcat(line, words[i]);
		strcat(line, i + 1 < n ? " " : "\n");
	}
	return line;
}

/* A pool of a status answer is stopped or failed. */
static bool
pool_down(json_object *o)
{
	json_object *pools = jget(o, "pools");
	const char *st;
	size_t i;

	if (pools == NULL || !json_object_is_type(pools, json_type_array))
		return false;
	for (i = 0; i < json_object_array_length(pools); i++) {
		st = jstr(json_object_array_get_idx(pools, i), "state");
		if (st != NULL && (strcmp(st, "stopped") == 0 ||
		    strcmp(st, "failed") == 0))
			return true;
	}
	return false;
}

/*
 * Ask once and print. Returns the exit status; msg gets the reason for
 * EXIT_NO_ANSWER and EXIT_ERROR.
 */
static int
ask(struct conn *c, const struct opts *o, char **words, int n, FILE *out,
    char *msg, size_t msgsize)
{
	char *line = request_line(words, n), *answer = NULL;
	json_object *j, *ok;
	int rc;

	if (c->fd == -1 && conn_open(c) == -1) {
		connect_message(c, errno, msg, msgsize);
		free(line);
		return EXIT_NO_ANSWER;
	}
	rc = conn_request(c, line, &answer, msg, msgsize);
	free(line);
	if (rc == -1) {
		conn_close(c);
		return EXIT_NO_ANSWER;
	}
	j = json_tokener_parse(answer);
	if (j == NULL || !json_object_object_get_ex(j, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean)) {
		snprintf(msg, msgsize, "%s: malformed answer: %.200s", c->path,
		    answer);
		json_object_put(j);
		free(answer);
		conn_close(c);
		return EXIT_NO_ANSWER;
	}
	if (o->json)
		fprintf(out, "%s\n", answer);
	rc = 0;
	if (!json_object_get_boolean(ok)) {
		snprintf(msg, msgsize, "%s", jstr(j, "error") ?
		    jstr(j, "error") : "error without a message");
		rc = EXIT_ERROR;
	} else {
		if (!o->json)
			print_answer(out, words, j);
		if (strcmp(words[0], "status") == 0 && pool_down(j))
			rc = EXIT_POOL_DOWN;
	}
	json_object_put(j);
	free(answer);
	return rc;
}

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Sleep ms unless interrupted first. */
static void
nap(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
		(long)(ms % 1000) * 1000000L };

	while (!interrupted && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Repeat `status` every interval_ms until SIGINT, like top(1). */
static int
watch(struct conn *c, const struct opts *o, char **words, int n,
    uint64_t interval_ms)
{
	struct sigaction sa = { .sa_handler = on_sigint };
	bool tty = isatty(STDOUT_FILENO);
	char msg[4096], every[32], *text;
	size_t len;
	FILE *f;
	int i, rc;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);	/* no SA_RESTART: wake up */
	units_format_duration(interval_ms, every, sizeof every);
	if (tty && !o->json)
		fputs("\033[?1049h", stdout);	/* the alternate screen */
	while (!interrupted) {
		if ((f = open_memstream(&text, &len)) == NULL) {
			perror("recyclerctl");
			return EXIT_NO_ANSWER;
		}
		rc = ask(c, o, words, n, f, msg, sizeof msg);
		if (rc != 0 && rc != EXIT_POOL_DOWN) {
			fprintf(f, "recyclerctl: ");
			put_clean(f, msg, true);
			fprintf(f, "\n");
			conn_close(c);	/* try afresh next time */
		}
		fclose(f);
		if (!interrupted) {
			if (!o->json) {
				printf("\033[H\033[2Jevery %s:", every);
				for (i = 0; i < n; i++) {
					putchar(' ');
					put_clean(stdout, words[i], false);
				}
				printf("  (Ctrl-C to quit)\n\n");
			}
			fwrite(text, 1, len, stdout);
			fflush(stdout);
		}
		free(text);
		nap(interval_ms);
	}
	if (tty && !o->json)
		fputs("\033[?1049l", stdout);
	fflush(stdout);
	return 0;
}

/* Print one line of a followed answer: an event object. */
static int
follow_line(const struct opts *o, const char *line)
{
	json_object *j;

	if (o->json) {
		printf("%s\n", line);
	} else {
		if ((j = json_tokener_parse(line)) == NULL ||
		    !json_object_is_type(j, json_type_object)) {
			json_object_put(j);
			fprintf(stderr, "recyclerctl: malformed event: %.200s\n",
			    line);
			return -1;
		}
		if (jget(j, "text") != NULL)
			print_logline(stdout, j);
		else
			print_event(stdout, j);
		json_object_put(j);
	}
	fflush(stdout);
	return 0;
}

/* After `events ... follow`: print each line the daemon sends, until
 * Ctrl-C (0) or the daemon hangs up (EXIT_NO_ANSWER). */
static int
follow(struct conn *c, const struct opts *o)
{
	struct sigaction sa = { .sa_handler = on_sigint };
	size_t len = c->nrest, cap = c->nrest + 4096;
	char *buf = xmalloc(cap), *nl, *line;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int rc = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);	/* no SA_RESTART: wake up */
	sigaction(SIGTERM, &sa, NULL);
	memcpy(buf, c->rest, c->nrest);
	for (;;) {
		line = buf;
		while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))
		    != NULL) {
			*nl = '\0';
			if (follow_line(o, line) == -1) {
				rc = EXIT_NO_ANSWER;
				goto out;
			}
			line = nl + 1;
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len >= FOLLOW_LINE_MAX) {
			fprintf(stderr, "recyclerctl: %s: line too long\n",
			    c->path);
			rc = EXIT_NO_ANSWER;
			goto out;
		}
		if (cap - len < 4096)
			buf = xrealloc(buf, cap *= 2);
		if (poll(&pfd, 1, -1) == -1) {
			if (errno == EINTR && !interrupted)
				continue;
			break;
		}
		n = recv(c->fd, buf + len, cap - len, 0);
		if (n == -1 && errno == EINTR && !interrupted)
			continue;
		if (n <= 0) {
			if (!interrupted) {
				fprintf(stderr, "recyclerctl: %s: %s\n", c->path,
				    n == 0 ? "the daemon closed the connection" :
				    strerror(errno));
				rc = EXIT_NO_ANSWER;
			}
			break;
		}
		len += (size_t)n;
	}
out:
	free(buf);
	return rc;
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(commands); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "follow", no_argument, NULL, 'f' },
		{ "lines", required_argument, NULL, 'n' },
		{ "pool", required_argument, NULL, 'P' },
		{ "reason", required_argument, NULL, 'R' },
		{ "exact", no_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pool_opt = NULL, *reason_opt = NULL;
	char *ev_words[6], pool_word[512], reason_word[128], lines_word[64];
	const char *lines_opt = NULL;
	bool follow_opt = false;
	const char *watch_arg = NULL;
	bool watch_opt = false, exact_opt = false;
	char *exact_words[3];
	struct opts o = { NULL, false };
	struct conn c = { NULL, -1, NULL, 0 };
	const struct command *cmd;
	uint64_t interval_ms = 0;
	char msg[8192], **words, *status_words[2] = { (char *)"status", NULL };
	int ch, n, rc, exact;

	/* No '+': options may follow the command (`status web --json`). */
	while ((ch = getopt_long(argc, argv, "s:jVhw::fn:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			lines_opt = optarg;
			break;
		case 'f':
			follow_opt = true;
			break;
		case 'P':
			pool_opt = optarg;
			break;
		case 'R':
			reason_opt = optarg;
			break;
		case 'E':
			exact_opt = true;
			break;
		case 'w':
			watch_opt = true;
			watch_arg = optarg;
			break;
		case 's':
			o.socket_path = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'V':
			printf("recyclerctl %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (o.socket_path == NULL)
		o.socket_path = getenv("RECYCLERD_SOCKET");
	if (o.socket_path == NULL || *o.socket_path == '\0')
		o.socket_path = DEFAULT_SOCKET;
	c.path = o.socket_path;
	if (optind == argc)
		usage_error("no command given");
	words = argv + optind;
	n = argc - optind;
	if ((cmd = find_command(words[0])) == NULL)
		usage_error("unknown command: %s", words[0]);

	/* status -w [SECONDS] and top: client-side repetition. */
	if (strcmp(cmd->name, "top") == 0) {
		interval_ms = 1000;
		status_words[1] = n > 1 ? words[1] : NULL;
		if (n > 2)
			usage_error("usage: top [POOL]");
		words = status_words;
		n = status_words[1] ? 2 : 1;
	} else if (watch_opt) {
		/* The interval is -w's own value (-w2, --watch=2), never the
		 * next word: that one is a pool name. */
		if (strcmp(cmd->name, "status") != 0)
			usage_error("-w is an option of status only");
		interval_ms = 1000;
		if (watch_arg != NULL && units_parse_duration(watch_arg,
		    &interval_ms) != NULL)
			usage_error("status -w: invalid interval \"%s\"",
			    watch_arg);
		if (interval_ms < WATCH_MIN_MS)
			usage_error("status -w: interval below %dms",
			    WATCH_MIN_MS);
	}
	/* status --exact: passed on, the daemon reads the figures. */
	if (exact_opt) {
		if (strcmp(cmd->name, "status") != 0 || n > 2)
			usage_error("usage: %s", find_command("status")->usage);
		exact_words[0] = words[0];
		exact_words[1] = (char *)"--exact";
		exact_words[2] = n > 1 ? words[1] : NULL;
		words = exact_words;
		n++;
	}
	exact = strcmp(cmd->name, "status") == 0 && n > 1 &&
	    strcmp(words[1], "--exact") == 0;
	if (n - 1 - exact < cmd->min_args || n - 1 - exact > cmd->max_args)
		usage_error("usage: %s", cmd->usage);
	if ((pool_opt || reason_opt) && strcmp(cmd->name, "events") != 0)
		usage_error("--pool and --reason are options of events");
	if (follow_opt && strcmp(cmd->name, "events") != 0 &&
	    strcmp(cmd->name, "logs") != 0)
		usage_error("-f is an option of events and logs");
	if (lines_opt && strcmp(cmd->name, "logs") != 0)
		usage_error("-n is an option of logs");
	if (strcmp(cmd->name, "logs") == 0) {
		/* logs [POOL [SLOT]] [lines=N] [follow] on the wire. */
		int k;

		for (k = 0; k < n; k++)
			ev_words[k] = words[k];
		if (lines_opt != NULL) {
			snprintf(lines_word, sizeof lines_word, "lines=%s",
			    lines_opt);
			ev_words[k++] = lines_word;
		}
		if (follow_opt)
			ev_words[k++] = (char *)"follow";
		ev_words[k] = NULL;
		words = ev_words;
		n = k;
	}
	if (strcmp(cmd->name, "events") == 0) {
		/* events [N] [pool=P] [reason=R] [follow] on the wire. */
		int k = 0;

		ev_words[k++] = words[0];
		if (n > 1)
			ev_words[k++] = words[1];
		if (pool_opt != NULL) {
			snprintf(pool_word, sizeof pool_word, "pool=%s",
			    pool_opt);
			ev_words[k++] = pool_word;
		}
		if (reason_opt != NULL) {
			snprintf(reason_word, sizeof reason_word, "reason=%s",
			    reason_opt);
			ev_words[k++] = reason_word;
		}
		if (follow_opt)
			ev_words[k++] = (char *)"follow";
		ev_words[k] = NULL;
		words = ev_words;
		n = k;
	}

	if (interval_ms > 0) {
		rc = watch(&c, &o, words, n, interval_ms);
		conn_close(&c);
		return rc;
	}
	rc = ask(&c, &o, words, n, stdout, msg, sizeof msg);
	if (rc == 0 && follow_opt) {
		fflush(stdout);
		rc = follow(&c, &o);
	}
	conn_close(&c);
	if (rc != 0) {
		fputs("recyclerctl: ", stderr);
		put_clean(stderr, msg, true);
		fputc('\n', stderr);
	}
	if (fflush(stdout) == EOF && rc == 0)
		rc = EXIT_ERROR;
	return rc;
}
