/* SPDX-License-Identifier: MIT */
/*
 * leaky_worker.c - an example worker in C that leaks memory on purpose.
 *
 * It does "tasks" in a loop and never frees the buffer it touched in each
 * one, so its private resident memory grows by --leak per task. It tells
 * its supervisor about itself with sd_notify() from libsystemd: READY=1
 * once started, TASKS=n after each task. The same program works under
 * systemd (Type=notify) and under recyclerd, and standalone.
 *
 * The integration tests build it as tests/helpers/cworker and start
 * hundreds of them, so it allocates nothing at start beyond --baseline.
 * The other options make it misbehave the way tests need: ignore the drain
 * signal, fork children, never become ready, crash, or exit at once.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define MAX_CHILDREN	64

struct options {
	uint64_t	 leak_bytes;		/* per task */
	uint64_t	 interval_ms;		/* between tasks */
	uint64_t	 baseline_bytes;	/* touched before READY=1 */
	uint64_t	 child_bytes;		/* touched by each child */
	unsigned int	 children;
	unsigned long	 crash_after;		/* tasks; 0 = never */
	int		 exit_code;		/* -1 = run normally */
	bool		 ignore_term;
	bool		 no_ready;
};

static volatile sig_atomic_t stop_signal;
/* Head of the chain of leaked buffers: storing through a volatile keeps the
 * compiler from proving the allocations dead and dropping them. */
static void *volatile leaked;
static const char *progname = "leaky_worker";

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: %s [--leak SIZE] [--interval MS] [--baseline SIZE]\n"
	    "       [--ignore-term] [--children N] [--child-mem SIZE]\n"
	    "       [--no-ready] [--crash-after N] [--exit-code C]\n"
	    "A worker that leaks SIZE (default 1M) per task, one task every\n"
	    "MS milliseconds (default 100), and reports to NOTIFY_SOCKET.\n",
	    progname);
}

/* "512K", "4M", "1G", "4096": bytes, binary multiples. */
static int
parse_size(const char *s, uint64_t *bytes)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || end == s || s[0] == '-')
		return -1;
	switch (*end) {
	case '\0':
		*bytes = n;
		return 0;
	case 'k': case 'K':
		n <<= 10;
		break;
	case 'm': case 'M':
		n <<= 20;
		break;
	case 'g': case 'G':
		n <<= 30;
		break;
	default:
		return -1;
	}
	if (end[1] != '\0' && strcmp(end + 1, "B") != 0 &&
	    strcmp(end + 1, "iB") != 0)
		return -1;
	*bytes = n;
	return 0;
}

static int
parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || n > max)
		return -1;
	*out = n;
	return 0;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "leak",	 required_argument, NULL, 'l' },
		{ "interval",	 required_argument, NULL, 'i' },
		{ "baseline",	 required_argument, NULL, 'b' },
		{ "children",	 required_argument, NULL, 'c' },
		{ "child-mem",	 required_argument, NULL, 'm' },
		{ "crash-after", required_argument, NULL, 'x' },
		{ "exit-code",	 required_argument, NULL, 'e' },
		{ "ignore-term", no_argument,	    NULL, 'T' },
		{ "no-ready",	 no_argument,	    NULL, 'R' },
		{ "help",	 no_argument,	    NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long n = 0;
	int c, idx = -1;

	*o = (struct options){ .leak_bytes = 1 << 20, .interval_ms = 100,
	    .exit_code = -1 };
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		int bad = 0;

		switch (c) {
		case 'l':
			bad = parse_size(optarg, &o->leak_bytes);
			break;
		case 'i':
			bad = parse_ulong(optarg, 86400000UL, &n);
			o->interval_ms = n;
			break;
		case 'b':
			bad = parse_size(optarg, &o->baseline_bytes);
			break;
		case 'c':
			bad = parse_ulong(optarg, MAX_CHILDREN, &n);
			o->children = (unsigned int)n;
			break;
		case 'm':
			bad = parse_size(optarg, &o->child_bytes);
			break;
		case 'x':
			bad = parse_ulong(optarg, (unsigned long)-1, &n);
			o->crash_after = n;
			break;
		case 'e':
			bad = parse_ulong(optarg, 255, &n);
			o->exit_code = (int)n;
			break;
		case 'T':
			o->ignore_term = true;
			break;
		case 'R':
			o->no_ready = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
		if (bad) {
			fprintf(stderr, "%s: invalid value for --%s: %s\n",
			    progname, idx >= 0 ? longopts[idx].name : "?",
			    optarg);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument: %s\n", progname,
		    argv[optind]);
		exit(2);
	}
}

/* Allocate size bytes and write one byte per page so all of it is resident
 * and private; the buffer is chained to `leaked` and never freed. */
static void
touch(uint64_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *p;
	uint64_t off;
	void *prev;

	if (size == 0)
		return;
	if (size < sizeof(void *))
		size = sizeof(void *);
	if ((p = malloc(size)) == NULL) {
		fprintf(stderr, "%s: cannot allocate %llu bytes\n", progname,
		    (unsigned long long)size);
		exit(1);
	}
	for (off = 0; off < size; off += (uint64_t)page)
		p[off] = 1;
	p[size - 1] = 1;
	prev = leaked;
	memcpy(p, &prev, sizeof prev);
	leaked = p;
}

static void
on_signal(int sig)
{
	stop_signal = sig;
}

static void
set_signals(bool ignore)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a signal must cut the pause between tasks short. */
	sa.sa_handler = ignore ? SIG_IGN : on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* Children hold their memory and sleep until a signal ends them. */
static unsigned int
spawn_children(const struct options *o, pid_t *pids)
{
	unsigned int i, n = 0;

	for (i = 0; i < o->children; i++) {
		pid_t pid = fork();

		if (pid == -1) {
			fprintf(stderr, "%s: fork: %s\n", progname,
			    strerror(errno));
			break;
		}
		if (pid == 0) {
			struct sigaction sa;

			memset(&sa, 0, sizeof sa);
			sa.sa_handler = o->ignore_term ? SIG_IGN : SIG_DFL;
			sigaction(SIGTERM, &sa, NULL);
			sigaction(SIGINT, &sa, NULL);
			touch(o->child_bytes);
			for (;;)
				pause();
		}
		pids[n++] = pid;
	}
	return n;
}

static void
reap_children(const pid_t *pids, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	for (i = 0; i < n; i++)
		while (waitpid(pids[i], NULL, 0) == -1 && errno == EINTR)
			;
}

/* Sleep ms unless a stop signal arrives first. */
static void
pause_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
	    (long)(ms % 1000) * 1000000L };

	while (!stop_signal && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	const char *pool = getenv("RECYCLERD_POOL");
	const char *slot = getenv("RECYCLERD_WORKER");
	pid_t children[MAX_CHILDREN];
	unsigned int nchildren;
	unsigned long tasks = 0;
	struct options o;
	int status = 0;

	parse_options(argc, argv, &o);
	printf("%s: pid %ld pool %s slot %s\n", progname, (long)getpid(),
	    pool ? pool : "-", slot ? slot : "-");
	fflush(stdout);
	if (o.exit_code >= 0) {
		fprintf(stderr, "%s: pid %ld exiting with status %d at once\n",
		    progname, (long)getpid(), o.exit_code);
		return o.exit_code;
	}

	set_signals(o.ignore_term);
	touch(o.baseline_bytes);
	nchildren = spawn_children(&o, children);
	/* sd_notify() returns <= 0 when there is no supervisor; that is fine
	 * for a standalone run, and a worker must never die of it. */
	if (!o.no_ready)
		(void)sd_notify(0, "READY=1");

	for (;;) {
		pause_ms(o.interval_ms);
		if (stop_signal)
			break;
		touch(o.leak_bytes);
		tasks++;
		(void)sd_notifyf(0, "TASKS=%lu", tasks);
		if (o.crash_after && tasks >= o.crash_after) {
			status = 3;
			break;
		}
	}

	reap_children(children, nchildren);
	fprintf(stderr, "%s: pid %ld exiting with status %d after %lu tasks\n",
	    progname, (long)getpid(), status, tasks);
	return status;
}
