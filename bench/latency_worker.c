/* SPDX-License-Identifier: MIT */
/*
 * latency_worker.c - a worker that crosses a memory threshold at a known
 * instant, for bench/detection_latency.sh.
 *
 * It waits --settle MS plus a random 0..--jitter MS, then touches fresh
 * pages as fast as it can. Near the threshold it reads, after every page,
 * the same figure the daemon reads (--metric rss: /proc/self/statm; cgroup:
 * its own memory.usage_in_bytes on v1, memory.current on v2), and the first
 * time that figure is above --threshold it takes CLOCK_MONOTONIC: that is
 * the crossing. It then touches --overshoot more (an allocation "quickly
 * past" the threshold) and prints
 *	crossed USEC
 * on stdout, which the daemon relays into its log. On the drain signal
 * (SIGTERM) the handler takes CLOCK_MONOTONIC again; the worker prints
 *	term USEC
 * and exits 0. USEC is microseconds of CLOCK_MONOTONIC, the clock of the
 * daemon's "sent SIGTERM at monotonic USECus" debug line.
 *
 * With --notify it sends READY=1 to $NOTIFY_SOCKET itself (no libsystemd:
 * the bench builds it with nothing but libc).
 *
 * Build: gcc -std=gnu11 -O2 -o latency_worker bench/latency_worker.c
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1024ULL * 1024)
/* Below this distance to the threshold, read the figure after each page. */
#define NEAR_BYTES	(2 * MIB)

enum metric { METRIC_RSS, METRIC_CGROUP };

struct options {
	uint64_t	 threshold_bytes;
	uint64_t	 overshoot_bytes;
	uint64_t	 settle_ms;
	uint64_t	 jitter_ms;
	enum metric	 metric;
	bool		 notify;
};

static const char *progname = "latency_worker";
static volatile sig_atomic_t term_seen;
static volatile uint64_t term_usec;

static uint64_t
mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static _Noreturn void
fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", progname, what, strerror(errno));
	exit(1);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: %s --threshold SIZE [--metric rss|cgroup] [--overshoot SIZE]\n"
	    "       [--settle MS] [--jitter MS] [--notify]\n", progname);
}

/* "16M", "512K", "4096": bytes. */
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
		break;
	case 'k': case 'K':
		n <<= 10;
		end++;
		break;
	case 'm': case 'M':
		n <<= 20;
		end++;
		break;
	case 'g': case 'G':
		n <<= 30;
		end++;
		break;
	default:
		return -1;
	}
	if (*end != '\0')
		return -1;
	*bytes = n;
	return 0;
}

/* A plain number of milliseconds. */
static int
parse_ms(const char *s, uint64_t *ms)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*ms = n;
	return 0;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "threshold", required_argument, NULL, 't' },
		{ "overshoot", required_argument, NULL, 'o' },
		{ "settle", required_argument, NULL, 's' },
		{ "jitter", required_argument, NULL, 'j' },
		{ "metric", required_argument, NULL, 'm' },
		{ "notify", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof *o);
	o->overshoot_bytes = 2 * MIB;
	o->jitter_ms = 200;
	o->metric = METRIC_RSS;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
		case 'o':
			if (parse_size(optarg, &v) == -1)
				goto bad;
			if (c == 't')
				o->threshold_bytes = v;
			else
				o->overshoot_bytes = v;
			break;
		case 's':
		case 'j':
			if (parse_ms(optarg, &v) == -1)
				goto bad;
			if (c == 's')
				o->settle_ms = v;
			else
				o->jitter_ms = v;
			break;
		case 'm':
			if (strcmp(optarg, "rss") == 0)
				o->metric = METRIC_RSS;
			else if (strcmp(optarg, "cgroup") == 0)
				o->metric = METRIC_CGROUP;
			else
				goto bad;
			break;
		case 'n':
			o->notify = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (o->threshold_bytes == 0 || optind < argc) {
		usage(stderr);
		exit(2);
	}
	return;
bad:
	fprintf(stderr, "%s: bad value: %s\n", progname, optarg);
	exit(2);
}

/* sd_notify(0, "READY=1") without libsystemd; "@" is an abstract name. */
static void
notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (path == NULL || (len = strlen(path)) == 0 ||
	    len >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		fail("socket");
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == -1)
		fail("sendto NOTIFY_SOCKET");
	close(fd);
}

/* The file holding our figure, opened once: pread() on it per page. */
static int
metric_open(enum metric m)
{
	char buf[4096], path[4200], *line, *save, *rel = NULL;
	const char *file = NULL;
	ssize_t n;
	int fd;

	if (m == METRIC_RSS) {
		if ((fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) == -1)
			fail("/proc/self/statm");
		return fd;
	}
	if ((fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC)) == -1)
		fail("/proc/self/cgroup");
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		fail("/proc/self/cgroup");
	buf[n] = '\0';
	/* The v1 memory line wins over "0::" (hybrid hosts have both). */
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *ctl = strchr(line, ':'), *p;

		if (ctl == NULL || (p = strchr(ctl + 1, ':')) == NULL)
			continue;
		*p = '\0';
		if (strcmp(ctl + 1, "memory") == 0 ||
		    strstr(ctl + 1, ",memory") != NULL ||
		    strncmp(ctl + 1, "memory,", 7) == 0) {
			snprintf(path, sizeof path,
			    "/sys/fs/cgroup/memory%s/memory.usage_in_bytes",
			    p + 1);
			file = path;
			break;
		}
		if (ctl[1] == '\0' && rel == NULL)
			rel = p + 1;
	}
	if (file == NULL && rel != NULL) {
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current",
		    rel);
		file = path;
	}
	if (file == NULL) {
		errno = ENOENT;
		fail("no memory cgroup in /proc/self/cgroup");
	}
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
		fail(file);
	return fd;
}

static uint64_t
metric_read(int fd, enum metric m, long page)
{
	char buf[128];
	unsigned long long a, b;
	ssize_t n;

	if ((n = pread(fd, buf, sizeof buf - 1, 0)) <= 0)
		fail("reading the memory figure");
	buf[n] = '\0';
	if (m == METRIC_RSS) {
		if (sscanf(buf, "%llu %llu", &a, &b) != 2)
			fail("parsing /proc/self/statm");
		return (uint64_t)b * (uint64_t)page;
	}
	return strtoull(buf, NULL, 10);
}

static void
on_term(int sig)
{
	(void)sig;
	if (!term_seen) {
		term_usec = mono_usec();	/* clock_gettime: signal-safe */
		term_seen = 1;
	}
}

int
main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	struct options o;
	struct sigaction sa;
	sigset_t block, old;
	uint64_t now_bytes, size, off, crossed = 0, stop_off;
	struct timespec ts;
	unsigned char *p;
	int fd;

	parse_options(argc, argv, &o);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	/* Not blocked while it works: the handler stamps the arrival even
	 * when it comes during the allocation. */
	sigaction(SIGTERM, &sa, NULL);

	fd = metric_open(o.metric);
	if (o.notify)
		notify_ready();
	srandom((unsigned int)(getpid() ^ (pid_t)mono_usec()));
	{
		uint64_t ms = o.settle_ms + (o.jitter_ms ?
		    (uint64_t)random() % (o.jitter_ms + 1) : 0);

		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		while (!term_seen && nanosleep(&ts, &ts) == -1 &&
		    errno == EINTR)
			;
	}

	now_bytes = metric_read(fd, o.metric, page);
	if (!term_seen && now_bytes < o.threshold_bytes) {
		/* Reserve enough: the figure may grow by more than we touch
		 * (page tables), never by less. */
		size = o.threshold_bytes - now_bytes + o.overshoot_bytes +
		    4 * MIB;
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			fail("mmap");
		/* Far from it: touch without looking. */
		stop_off = o.threshold_bytes - now_bytes > NEAR_BYTES ?
		    o.threshold_bytes - now_bytes - NEAR_BYTES : 0;
		for (off = 0; off < stop_off; off += (uint64_t)page)
			p[off] = 1;
		/* Near it: look after every page. */
		for (; off < size; off += (uint64_t)page) {
			p[off] = 1;
			if (metric_read(fd, o.metric, page) > o.threshold_bytes) {
				crossed = mono_usec();
				break;
			}
		}
		if (crossed == 0) {
			errno = ERANGE;
			fail("never went over the threshold");
		}
		/* Quickly past it. */
		stop_off = off + o.overshoot_bytes;
		for (off += (uint64_t)page; off < stop_off && off < size;
		    off += (uint64_t)page)
			p[off] = 1;
		printf("crossed %llu\n", (unsigned long long)crossed);
		fflush(stdout);
	} else if (!term_seen) {
		fprintf(stderr, "%s: already at %llu bytes, over the threshold "
		    "%llu before the leak\n", progname,
		    (unsigned long long)now_bytes,
		    (unsigned long long)o.threshold_bytes);
	}

	/* Blocked between the test and sigsuspend(): no lost wake-up. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (!term_seen)
		sigsuspend(&old);
	printf("term %llu\n", (unsigned long long)term_usec);
	fflush(stdout);
	return 0;
}
