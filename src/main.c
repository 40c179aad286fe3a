/* SPDX-License-Identifier: MIT */
/*
 * main.c - options, start-up order, signals, reload, shutdown, and the
 * daemon's own conversation with systemd.
 *
 * One thread and one libev default loop. main() reads as the start-up
 * order; the reasons for the order are written next to each step.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <systemd/sd-daemon.h>

#include "cgroup.h"
#include "config.h"
#include "control.h"
#include "events.h"
#include "guard.h"
#include "listen.h"
#include "log.h"
#include "memprobe.h"
#include "notify.h"
#include "orphans.h"
#include "output.h"
#include "pool.h"
#include "recyclerd.h"
#include "spawner.h"
#include "template.h"
#include "units.h"
#include "worker.h"

#define EXIT_BAD_CONFIG_TEST	1	/* -t: the design's "exits 0 or 1" */

static int	recyclerd_reload(struct recyclerd *, char **err);
static void	recyclerd_stop(struct recyclerd *);
static void	recyclerd_check(struct recyclerd *);

struct args {
	const char	*config_path;
	bool		 check_only;
	int		 verbose;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: recyclerd [-t] [-v] [-c FILE]\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  -t, --test         check the configuration and exit 0 or 1\n"
	    "  -v, --verbose      log debug messages\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         print this help and exit\n",
	    CONFIG_DEFAULT_PATH);
}

static void
args_parse(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	a->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:tvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->config_path = optarg;
			break;
		case 't':
			a->check_only = true;
			break;
		case 'v':
			a->verbose++;
			break;
		case 'V':
			printf("recyclerd %s\n", PACKAGE_VERSION);
			exit(EXIT_SUCCESS);
		case 'h':
			usage(stdout);
			exit(EXIT_SUCCESS);
		default:
			usage(stderr);
			exit(EX_USAGE);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "recyclerd: unexpected argument: %s\n",
		    argv[optind]);
		usage(stderr);
		exit(EX_USAGE);
	}
}

/* ---- the workers' notify socket ---- */

/*
 * The worker that pid is, or descends from; NULL if none. A template
 * speaks for itself only: a process below it is one of its forks on the
 * way to being re-parented to us (its intermediate may not have exited
 * yet), never the template.
 */
static struct worker *
worker_of_sender(struct recyclerd *rd, pid_t sender)
{
	struct worker *w;
	pid_t pid = sender;
	int depth;

	for (depth = 0; depth < 16 && pid > 1 && pid != rd->pid; depth++) {
		if ((w = pidmap_get(&rd->pidmap, pid)) != NULL)
			return w->is_template && pid != sender ? NULL : w;
		if (proc_stat_ids(pid, &pid, NULL, NULL) == -1)
			return NULL;
	}
	return NULL;
}

/* How orphans.c names a worker (it knows no workers or pools). */
static struct orphan_owner *
owner_by_pid(struct recyclerd *rd, pid_t pid)
{
	struct worker *w = pidmap_get(&rd->pidmap, pid);

	return w != NULL ? &w->orph : NULL;
}

static struct orphan_owner *
owner_by_slot(struct recyclerd *rd, const char *pool, unsigned long slot)
{
	struct worker *w = pool_slot_oldest(rd, pool, slot);

	return w != NULL ? &w->orph : NULL;
}

static const struct orphans_find orphans_find = {
	.by_pid = owner_by_pid,
	.by_slot = owner_by_slot,
	.poll = template_poll,
	.forking = template_forking,
	.reaped = template_reaped,
};

static void
on_notify(void *arg, pid_t pid, char *buf, size_t len)
{
	static double window_start;
	static unsigned int dropped;
	struct recyclerd *rd = arg;
	struct worker *w = worker_of_sender(rd, pid);
	double now;

	if (w == NULL && template_forking(rd)) {
		/* Perhaps a template's worker whose PID= is still unread. */
		template_poll(rd);
		if ((w = worker_of_sender(rd, pid)) == NULL &&
		    template_stash(rd, pid, buf, len))
			return;
	}
	if (w != NULL) {
		pool_worker_notify(w->pool, w, buf, len);
		return;
	}
	/* Rate-limited: a hostile sender must not flood the log. */
	now = mono_now();
	if (now - window_start > 1.0) {
		if (dropped > 10)
			log_warn("notify: dropped %u more messages from "
			    "processes that are not workers", dropped - 10);
		window_start = now;
		dropped = 0;
	}
	if (++dropped <= 10)
		log_warn("notify: dropped message from pid %ld: not a worker",
		    (long)pid);
}

/* One notify socket per user of the pools that run (removed ones still
 * draining included); the others' are removed. */
static void
notify_allow_pools(struct recyclerd *rd)
{
	uid_t *uids = NULL;
	size_t n = 0;
	struct pool *p;

	LIST_FOREACH(p, &rd->pools, entry) {
		uids = xrealloc(uids, (n + 1) * sizeof *uids);
		uids[n++] = p->cfg->user != NULL ? p->cfg->uid : geteuid();
	}
	notify_allow_uids(rd->notify, uids, n);
	free(uids);
}

/* ---- systemd ---- */

static void
service_status(struct recyclerd *rd, const char *state)
{
	unsigned int pools = 0, ready = 0, workers = 0;
	unsigned long long recycles = 0, crashes = 0;
	struct pool *p;
	int r;

	LIST_FOREACH(p, &rd->pools, entry) {
		pools++;
		workers += p->nworkers;
		ready += pool_count(p, WS_READY);
		crashes += p->crashes;
		for (r = 0; r < REASON__COUNT; r++)
			recycles += p->recycles[r];
	}
	sd_notifyf(0, "%s%sSTATUS=%u pool%s, %u/%u workers ready, "
	    "%llu recycles, %llu crashes", state ? state : "",
	    state ? "\n" : "", pools, pools == 1 ? "" : "s", ready, workers,
	    recycles, crashes);
}

static void
on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	sd_notify(0, "WATCHDOG=1");
}

/* Remove worker groups that were still busy when their worker left. */
static void
on_tidy(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct recyclerd *rd = t->data;

	(void)loop;
	(void)revents;
	(void)cgroup_root_tidy(rd->cg);
}

static void
recyclerd_check(struct recyclerd *rd)
{
	struct pool *p, *next;
	bool settled = true, empty = true, freed = false;

	LIST_FOREACH_SAFE(p, &rd->pools, entry, next) {
		if (p->state == POOL_REMOVED && pool_is_empty(p)) {
			log_info("pool %s: removed", p->name);
			pool_free(p);
			freed = true;
			continue;
		}
		if (!pool_is_settled(p))
			settled = false;
		if (!pool_is_empty(p))
			empty = false;
	}
	if (freed && !rd->stopping)	/* its user's socket may go now */
		notify_allow_pools(rd);
	if (rd->stopping) {
		if (empty) {
			rd->done = true;
			ev_break(rd->loop, EVBREAK_ALL);
		}
		return;
	}
	if (settled && !rd->reported_ready) {
		rd->reported_ready = true;
		log_info("ready: all pools are up");
		/* Off the default path, say how recyclerctl gets here. */
		if (strcmp(rd->cfg->control_socket, CONFIG_DEFAULT_SOCKET) != 0)
			log_info("to see them: recyclerctl -s %s status",
			    rd->cfg->control_socket);
		service_status(rd, "READY=1");
		rd->status_mono = mono_now();
	} else if (rd->reported_ready && mono_now() - rd->status_mono >= 1.0) {
		service_status(rd, NULL);	/* at most once a second */
		rd->status_mono = mono_now();
	}
}

/*
 * Once per loop turn, before it blocks: the pools' reconciliations asked
 * for by this turn's events, then what follows for the daemon (READY=1,
 * STATUS=, removed pools freed, the end of a shutdown). Pools never call
 * back into main: their work is collected here, so no pool is freed while
 * its own code is on the stack.
 */
static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct recyclerd *rd = w->data;
	struct pool *p;

	(void)loop;
	(void)revents;
	LIST_FOREACH(p, &rd->pools, entry)
		pool_run_deferred(p);
	recyclerd_check(rd);
}

/* ---- reload and stop ---- */

/*
 * Orphans are looked for as often as the most often sampled pool samples
 * (an orphan is measured from the sample after it is found), at least
 * every second (they are killed at shutdown and by the guard only once
 * found).
 */
static double
sweep_interval(const struct config *cfg)
{
	uint64_t ms = 1000;
	size_t i;

	for (i = 0; i < cfg->npools; i++)
		if (cfg->pools[i]->sample_interval_ms < ms)
			ms = cfg->pools[i]->sample_interval_ms;
	return ms < 10 ? 0.010 : (double)ms / 1000.0;
}

static char *
diag_join(const struct diag *d)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < d->n; i++)
		len += strlen(d->msgs[i]) + 1;
	s = xmalloc(len);
	s[0] = '\0';
	for (i = 0; i < d->n; i++) {
		strcat(s, d->msgs[i]);
		if (i + 1 < d->n)
			strcat(s, "\n");
	}
	return s;
}

/*
 * Open the sockets of every pool of cfg into sets[] (the running pools'
 * sockets are reused), all or nothing: this is the one step of a start or
 * a reload that can fail once the configuration is valid. -1 with *err,
 * and nothing left open or created.
 */
static int
open_sockets(struct recyclerd *rd, const struct config *cfg,
    struct listen_set *sets, char **err)
{
	const struct pool_config *pc;
	struct pool *p;
	size_t i;

	for (i = 0; i < cfg->npools; i++) {
		pc = cfg->pools[i];
		p = pool_find_any(rd, pc->name);
		if (pc->nlisten == 0 || listen_open(pc, p ? &p->sockets : NULL,
		    &sets[i], err) == 0)
			continue;
		while (i-- > 0) {
			p = pool_find_any(rd, cfg->pools[i]->name);
			listen_discard(&sets[i], p ? &p->sockets : NULL);
		}
		return -1;
	}
	return 0;
}

static int
recyclerd_reload(struct recyclerd *rd, char **err)
{
	struct diag d = DIAG_INIT;
	struct listen_set *sets;
	struct config *next;
	struct pool *p, *tmp;
	size_t i, pos;
	char *perr = NULL;
	const char *key;
	enum config_change change;

	log_info("reloading %s", rd->config_path);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)mono_usec());
	if ((next = config_load(rd->config_path, &d)) == NULL) {
		diag_log(&d, LOG_ERR);
		log_err("reload failed, keeping the running configuration");
		if (err != NULL)
			*err = diag_join(&d);
		diag_free(&d);
		service_status(rd, "READY=1");
		return -1;
	}
	/* Every pool's sockets first: a reload applies whole or not at all. */
	sets = xcalloc(next->npools + 1, sizeof *sets);
	if (open_sockets(rd, next, sets, &perr) == -1) {
		log_err("%s", perr);
		log_err("reload refused, keeping the running configuration");
		if (err != NULL)
			*err = perr;
		else
			free(perr);
		free(sets);
		config_unref(next);
		diag_free(&d);
		service_status(rd, "READY=1");
		return -1;
	}
	pos = 0;
	while ((key = config_diff_daemon(rd->cfg, next, &pos, &change)) !=
	    NULL)
		if (change == CHANGE_RESTART)
			log_warn("%s changed: takes effect at the next start",
			    key);
	log_set_level(log_get_level() == LOG_DEBUG ? LOG_DEBUG :
	    next->log_level);

	for (i = 0; i < next->npools; i++) {
		const struct pool_config *pc = next->pools[i];

		if ((p = pool_find_any(rd, pc->name)) != NULL)
			pool_apply(p, next, pc, &sets[i]);
		else
			(void)pool_new(rd, next, pc, &sets[i]);
	}
	free(sets);
	LIST_FOREACH_SAFE(p, &rd->pools, entry, tmp)
		if (p->state != POOL_REMOVED &&
		    config_find_pool(next, p->name) == NULL)
			pool_remove(p);
	config_unref(rd->cfg);
	rd->cfg = next;
	orphans_set_interval(rd->orphans, sweep_interval(next));
	control_reconfigure(rd->control);	/* control_group may change */
	notify_allow_pools(rd);
	diag_free(&d);
	log_info("reloaded %s", rd->config_path);
	service_status(rd, "READY=1");
	return 0;
}

static void
recyclerd_stop(struct recyclerd *rd)
{
	struct pool *p;
	unsigned int n = 0;

	if (rd->stopping)
		return;
	rd->stopping = true;
	LIST_FOREACH(p, &rd->pools, entry)
		n += p->nworkers;
	log_info("stopping %u worker%s", n, n == 1 ? "" : "s");
	sd_notify(0, "STOPPING=1");
	LIST_FOREACH(p, &rd->pools, entry)
		pool_shutdown(p);
	recyclerd_check(rd);
}

/* ---- signals ---- */

static void
on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct recyclerd *rd = w->data;
	struct pool *p;

	(void)loop;
	(void)revents;
	if (rd->stopping) {
		log_warn("got %s while stopping, killing the workers now",
		    units_signal_name(w->signum));
		LIST_FOREACH(p, &rd->pools, entry)
			pool_kill_all(p);
		return;
	}
	log_info("got %s", units_signal_name(w->signum));
	recyclerd_stop(rd);
}

static void
on_quit_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct recyclerd *rd = w->data;
	struct pool *p;

	(void)revents;
	log_warn("got SIGQUIT, killing the workers and exiting now");
	rd->stopping = true;
	LIST_FOREACH(p, &rd->pools, entry)
		pool_kill_all(p);
	recyclerd_check(rd);
	(void)loop;
}

static void
on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	if (((struct recyclerd *)w->data)->stopping)
		return;
	(void)recyclerd_reload(w->data, NULL);
}

static void
on_status_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct recyclerd *rd = w->data;
	struct worker *wk;
	struct pool *p;
	double now = mono_now();
	char a[16];

	(void)loop;
	(void)revents;
	LIST_FOREACH(p, &rd->pools, entry) {
		log_info("pool %s: %s, %u/%u workers, %llu crashes", p->name,
		    pool_state_name(p->state), pool_count(p, WS_READY),
		    p->desired, (unsigned long long)p->crashes);
		TAILQ_FOREACH(wk, &p->workers, entry)
			wlog(wk, LOG_INFO, "%s, uptime %.1fs, tasks %llu, "
			    "%s %s", worker_state_name(wk->state),
			    worker_uptime(wk, now),
			    (unsigned long long)wk->tasks,
			    mem_metric_name(wk->cfg->memory_metric),
			    units_format_size(wk->memory, a, sizeof a));
	}
}

static void
signals_setup(struct recyclerd *rd)
{
	static const struct {
		int	 signum;
		void	(*cb)(struct ev_loop *, ev_signal *, int);
	} table[] = {
		{ SIGTERM, on_stop_signal },
		{ SIGINT, on_stop_signal },
		{ SIGHUP, on_reload_signal },
		{ SIGQUIT, on_quit_signal },
		{ SIGUSR1, on_status_signal },
	};
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < nitems(table); i++) {
		ev_signal_init(&rd->sig[i], table[i].cb, table[i].signum);
		rd->sig[i].data = rd;
		ev_signal_start(rd->loop, &rd->sig[i]);
	}
}

/* ---- start-up ---- */

/*
 * mkdir -p for the directory of path, mode 0755, and check that directory:
 * the control and notify sockets are made and removed by path in it, so
 * nobody but root (or our own uid) may change its entries. Refused: a
 * directory (or a link to one) owned by another user, or writable by group
 * or others unless sticky and root's (/tmp: others cannot rename or remove
 * our files there). Exits with a clear error.
 */
static void
make_parent_dir(const char *path)
{
	char *dir = xstrdup(path), *p;
	struct stat st;
	int fd;

	if ((p = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (p == dir) {
		p[1] = '\0';
	} else {
		*p = '\0';
		for (p = dir + 1; *p != '\0'; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(dir, 0755) == -1 && errno != EEXIST)
				die(EX_OSERR, "unable to create the directory "
				    "%s of %s: %s", dir, path, strerror(errno));
			*p = '/';
		}
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			die(EX_OSERR, "unable to create the directory %s of "
			    "%s: %s", dir, path, strerror(errno));
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		die(EX_OSERR, "directory %s of %s: %s", dir, path,
		    strerror(errno));
	close(fd);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		die(EX_CONFIG, "directory %s of %s is owned by uid %lu, not by "
		    "root: another user could replace the sockets there",
		    dir, path, (unsigned long)st.st_uid);
	if ((st.st_mode & 022) != 0 &&
	    ((st.st_mode & S_ISVTX) == 0 || st.st_uid != 0))
		die(EX_CONFIG, "directory %s of %s is writable by %s (mode "
		    "%04o): another user could replace the sockets there",
		    dir, path, st.st_mode & 020 ? "its group" : "others",
		    (unsigned int)(st.st_mode & 07777));
	free(dir);
}

/*
 * The workers' NOTIFY_SOCKET lives next to the control socket and is named
 * after it (control.sock: control.notify.sock), so two daemons whose
 * control sockets share a directory never share a notify socket.
 */
static char *
notify_socket_path(const struct config *cfg)
{
	const char *c = cfg->control_socket;
	size_t len = strlen(c);
	char *path;

	if (len > 5 && strcmp(c + len - 5, ".sock") == 0)
		len -= 5;
	xasprintf(&path, "%.*s.notify.sock", (int)len, c);
	return path;
}


/*
 * The v1 instance directory: one per control socket, since the control
 * socket is what makes two daemons on one machine distinct.
 */
static char *
cgroup_instance_name(const struct config *cfg)
{
	uint32_t h = 2166136261u;
	const char *c;
	char *name;

	for (c = cfg->control_socket; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	xasprintf(&name, "recyclerd-%08x", (unsigned int)h);
	return name;
}

/* Each worker holds a few /proc and cgroup descriptors open. */
static void
raise_nofile(struct recyclerd *rd)
{
	struct rlimit rl;

	rd->nofile = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rd->nofile = (long)rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn_errno("unable to raise the open files limit");
	}
}

static void
start_pools(struct recyclerd *rd)
{
	struct listen_set *sets = xcalloc(rd->cfg->npools + 1, sizeof *sets);
	char *err = NULL;
	size_t i;

	if (open_sockets(rd, rd->cfg, sets, &err) == -1) {
		log_err("%s", err);
		log_err("refusing to start with a pool that cannot run");
		free(err);
		free(sets);
		recyclerd_stop(rd);
		rd->exit_code = EX_OSERR;
		return;
	}
	for (i = 0; i < rd->cfg->npools; i++)
		(void)pool_new(rd, rd->cfg, rd->cfg->pools[i], &sets[i]);
	free(sets);
}

/*
 * Started with 0, 1 or 2 closed, the first file we open would become our
 * stderr (log lines written into the control socket, a cgroup file...):
 * /dev/null onto them before anything is opened.
 */
static void
sanitize_stdio(void)
{
	int fd, null;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		if ((null = open("/dev/null", O_RDWR)) == -1)
			_exit(EX_OSERR);
		if (null != fd) {
			(void)dup2(null, fd);
			(void)close(null);
		}
	}
}

int
main(int argc, char **argv)
{
	struct recyclerd rd = { 0 };
	struct diag d = DIAG_INIT;
	struct args a = { 0 };
	const char *why = NULL;
	uint64_t wd_usec = 0;
	char *path, *instance;
	const char *e;
	struct pool *p;

	/* First: a closed stdio, and SIGPIPE before the first log write. */
	sanitize_stdio();
	signal(SIGPIPE, SIG_IGN);
	args_parse(argc, argv, &a);
	rd.config_path = (char *)a.config_path;

	/* Config first: a bad file must fail before anything is started. */
	rd.cfg = config_load(a.config_path, &d);
	diag_print(&d, stderr);
	diag_free(&d);
	if (rd.cfg == NULL)
		return a.check_only ? EXIT_BAD_CONFIG_TEST : EX_CONFIG;
	if (a.check_only) {
		printf("%s: configuration ok (%zu pool%s)\n", a.config_path,
		    rd.cfg->npools, rd.cfg->npools == 1 ? "" : "s");
		config_unref(rd.cfg);
		return EXIT_SUCCESS;
	}

	log_init(LOG_TARGET_AUTO, a.verbose ? LOG_DEBUG : rd.cfg->log_level);
	log_info("recyclerd %s starting with %s", PACKAGE_VERSION,
	    a.config_path);
	rd.pid = getpid();
	rd.started_mono = mono_now();
	srandom((unsigned int)(rd.pid ^ (pid_t)mono_usec()));
	LIST_INIT(&rd.pools);
	LIST_INIT(&rd.outputs);
	if ((e = getenv("RECYCLERD_NO_PREFILTER")) != NULL && strcmp(e, "1") == 0) {
		rd.no_prefilter = true;
		log_warn("RECYCLERD_NO_PREFILTER=1: reading smaps_rollup at "
		    "every sample (for benchmarks)");
	}

	/* Sockets systemd passed us, before anything else opens a fd. */
	listen_adopt_systemd();
	/* Orphaned grandchildren of workers come back to us to be reaped. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn_errno("unable to become a subreaper");

	rd.loop = ev_default_loop(EVFLAG_AUTO);
	rd.events = events_new();
	raise_nofile(&rd);

	/* Sockets next: a live daemon on the same path is an error, found
	 * before we touch anything of its (its cgroups, its notify socket). */
	make_parent_dir(rd.cfg->control_socket);
	rd.reload = recyclerd_reload;
	if ((rd.control = control_open(&rd)) == NULL)
		exit(EX_OSERR);			/* control_open logged why */
	path = notify_socket_path(rd.cfg);
	if ((rd.notify = notify_open(rd.loop, path, on_notify, &rd)) == NULL)
		die(EX_OSERR, "unable to bind the notify socket %s: %s", path,
		    strerror(errno));
	free(path);
	signals_setup(&rd);

	/* cgroups: this also kills what an earlier run of ours left. */
	instance = cgroup_instance_name(rd.cfg);
	rd.cg = cgroup_root_open(rd.cfg->cgroup, "/proc", "/sys/fs/cgroup",
	    instance, &why);
	free(instance);
	if (rd.cg == NULL)
		die(EX_OSERR, "cgroup = %s: %s", cgroup_mode_name(rd.cfg->cgroup),
		    why ? why : "unavailable");
	log_info("cgroups: %s%s%s", cgroup_root_version(rd.cg) == CG_NONE ?
	    "none" : cgroup_root_path(rd.cg), why ? ": " : "", why ? why : "");
	/* The guard after the cgroup set-up: on v2 it must share our leaf
	 * (no process may stay in the root that enables +memory). */
	if ((rd.guard = guard_start()) == NULL)
		die(EX_OSERR, "unable to fork the guard process: %s",
		    strerror(errno));
	guard_watch(rd.guard, rd.loop);
	/* The spawn server too, while we are small: see spawner.h. */
	if ((rd.spawner = spawner_start()) == NULL)
		log_warn_errno("unable to fork the spawn server; forking "
		    "workers from the daemon");
	if (cgroup_root_version(rd.cg) == CG_NONE) {
		cgroup_root_close(rd.cg);
		rd.cg = NULL;
	} else {
		/* v1: our instance directory, all of it; v2: the pools below
		 * the delegated root, which systemd removes itself. */
		guard_cgroups(rd.guard, cgroup_root_path(rd.cg),
		    cgroup_root_version(rd.cg) == CG_V1);
	}

	/* After the guard: it is a child of ours, and no orphan. */
	rd.orphans = orphans_new(&rd, &orphans_find);
	orphans_set_interval(rd.orphans, sweep_interval(rd.cfg));

	if (rd.cg != NULL) {
		ev_timer_init(&rd.tidy, on_tidy, 1.0, 1.0);
		rd.tidy.data = &rd;
		ev_timer_start(rd.loop, &rd.tidy);
	}
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		ev_timer_init(&rd.watchdog, on_watchdog, 0.0,
		    (double)wd_usec / 2e6);
		ev_timer_again(rd.loop, &rd.watchdog);
	}

	/* Workers last; READY=1 goes out once every pool has settled. */
	ev_prepare_init(&rd.deferred, on_prepare);
	rd.deferred.data = &rd;
	ev_prepare_start(rd.loop, &rd.deferred);
	start_pools(&rd);
	notify_allow_pools(&rd);
	recyclerd_check(&rd);
	if (!rd.done)			/* a refused start may be over already */
		ev_run(rd.loop, 0);

	/* Orderly exit: everything freed, so valgrind reports real leaks. */
	log_info("stopped");
	while ((p = LIST_FIRST(&rd.pools)) != NULL)
		pool_free(p);
	ev_prepare_stop(rd.loop, &rd.deferred);
	ev_timer_stop(rd.loop, &rd.watchdog);
	ev_timer_stop(rd.loop, &rd.tidy);
	control_close(rd.control);
	notify_close(rd.notify);
	output_close_all(&rd);
	spawner_stop(rd.spawner);
	rd.spawner = NULL;
	cgroup_root_close(rd.cg);	/* before the guard could sweep them */
	orphans_free(rd.orphans);	/* kills what is left of our children */
	guard_stop(rd.guard);
	events_free(rd.events);
	pidmap_clear(&rd.pidmap);
	config_unref(rd.cfg);
	ev_loop_destroy(rd.loop);
	return rd.exit_code;
}
