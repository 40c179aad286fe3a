/* SPDX-License-Identifier: MIT */
/*
 * sampling_alternatives.c - what each way of reading an idle worker's
 * memory from /proc costs, per worker-sample, in the pattern the daemon
 * has: every interval, one sweep over all workers, caches cold between
 * sweeps.
 *
 * bench/sampling_cpu.sh measures the daemon as a whole; this program
 * splits a sample into its system calls, so that a change to
 * memprobe_sample() can be judged before it is written. It forks N idle
 * single-threaded children without children of their own (what
 * tests/helpers/cworker is when idle), keeps descriptors on their /proc
 * files as memprobe.c does, and runs every strategy once per sweep, in
 * turn, so that all of them see the same machine load. CPU time is the
 * thread's own (CLOCK_THREAD_CPUTIME_ID) around each strategy's sweep.
 *
 * Strategies (syscalls per worker-sample):
 *   current        pread statm, fstat task, pread children    (3)
 *   stat+children  pread stat (rss and num_threads), pread children (2)
 *   statm+children pread statm, pread children                (2)
 *   walk-1/4       pread statm; fstat + children every 4th    (1.5)
 *   statm          pread statm alone                          (1)
 *   stat           pread stat alone                           (1)
 *   smaps          pread smaps_rollup alone                   (1)
 *   getppid        a bare system call, for scale              (1)
 *
 * Build and run (not part of make check):
 *   gcc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra \
 *       bench/sampling_alternatives.c -o /tmp/sampling_alternatives
 *   /tmp/sampling_alternatives [children [sweeps [interval_ms]]]
 *                              (defaults: 200 children, 100 sweeps, 100 ms)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_TOUCH_BYTES	(256 * 1024)
#define PROC_BUF_SIZE		4096

enum strategy {
	S_CURRENT,
	S_STAT_CHILDREN,
	S_STATM_CHILDREN,
	S_WALK_QUARTER,
	S_STATM,
	S_STAT,
	S_SMAPS,
	S_GETPPID,
	S_COUNT
};

static const char *const strategy_names[S_COUNT] = {
	[S_CURRENT] = "current (3 syscalls)",
	[S_STAT_CHILDREN] = "stat+children (2)",
	[S_STATM_CHILDREN] = "statm+children (2)",
	[S_WALK_QUARTER] = "walk-1/4 (1.5)",
	[S_STATM] = "statm (1)",
	[S_STAT] = "stat (1)",
	[S_SMAPS] = "smaps_rollup (1)",
	[S_GETPPID] = "getppid (1)",
};

/* The kept descriptors of one child, as struct memprobe has them. */
struct child {
	pid_t	 pid;
	int	 statm_fd;
	int	 stat_fd;
	int	 task_fd;
	int	 children_fd;
	int	 smaps_fd;
};

/* Whatever is read is folded in here, so no read can be optimized away. */
static unsigned long sink;

static void
idle_forever(void)
{
	char *p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p = mmap(NULL, CHILD_TOUCH_BYTES, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		memset(p, 1, CHILD_TOUCH_BYTES);
	for (;;)
		pause();
}

static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
open_at(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_RDONLY | O_CLOEXEC);

	if (fd == -1) {
		fprintf(stderr, "sampling_alternatives: cannot open %s: %s\n",
		    name, strerror(errno));
		exit(1);
	}
	return fd;
}

static void
child_open(struct child *c)
{
	char path[64];
	int dirfd;

	snprintf(path, sizeof path, "/proc/%d", (int)c->pid);
	dirfd = open_at(AT_FDCWD, path, O_DIRECTORY);
	c->statm_fd = open_at(dirfd, "statm", 0);
	c->stat_fd = open_at(dirfd, "stat", 0);
	c->task_fd = open_at(dirfd, "task", O_DIRECTORY);
	snprintf(path, sizeof path, "task/%d/children", (int)c->pid);
	c->children_fd = open_at(dirfd, path, 0);
	c->smaps_fd = open_at(dirfd, "smaps_rollup", 0);
	close(dirfd);
}

static void
read_fd(int fd, char *buf)
{
	ssize_t len = pread(fd, buf, PROC_BUF_SIZE - 1, 0);

	if (len == -1) {
		perror("sampling_alternatives: pread");
		exit(1);
	}
	buf[len] = '\0';
	sink += (unsigned long)len + (unsigned char)buf[0];
}

/*
 * /proc/PID/stat: "pid (comm) S ppid ...": after the last ')', num_threads
 * is the 18th field and rss (pages) the 22nd. Parsed as the daemon would.
 */
static void
parse_stat(const char *buf, unsigned long *threads, unsigned long *rss)
{
	const char *p = strrchr(buf, ')');
	int field;

	*threads = *rss = 0;
	if (p == NULL)
		return;
	p += 2;
	for (field = 1; *p != '\0' && field < 22; p++)
		if (*p == ' ' && ++field == 18)
			*threads = strtoul(p + 1, NULL, 10);
	*rss = strtoul(p, NULL, 10);
}

static void
sample(struct child *c, enum strategy s, unsigned int sweep)
{
	char buf[PROC_BUF_SIZE];
	unsigned long threads, rss;
	struct stat st;

	switch (s) {
	case S_CURRENT:
		read_fd(c->statm_fd, buf);
		if (fstat(c->task_fd, &st) == -1)
			exit(1);
		sink += st.st_nlink;
		read_fd(c->children_fd, buf);
		break;
	case S_STAT_CHILDREN:
		read_fd(c->stat_fd, buf);
		parse_stat(buf, &threads, &rss);
		sink += threads + rss;
		if (threads == 1)
			read_fd(c->children_fd, buf);
		break;
	case S_STATM_CHILDREN:
		read_fd(c->statm_fd, buf);
		read_fd(c->children_fd, buf);
		break;
	case S_WALK_QUARTER:
		read_fd(c->statm_fd, buf);
		/* Staggered, so that every sweep costs the same. */
		if ((sweep + (unsigned int)c->pid) % 4 == 0) {
			if (fstat(c->task_fd, &st) == -1)
				exit(1);
			sink += st.st_nlink;
			read_fd(c->children_fd, buf);
		}
		break;
	case S_STATM:
		read_fd(c->statm_fd, buf);
		break;
	case S_STAT:
		read_fd(c->stat_fd, buf);
		break;
	case S_SMAPS:
		read_fd(c->smaps_fd, buf);
		break;
	case S_GETPPID:
		sink += (unsigned long)syscall(SYS_getppid);
		break;
	case S_COUNT:
		break;
	}
}

int
main(int argc, char **argv)
{
	struct child *children;
	uint64_t ns[S_COUNT] = { 0 }, t0;
	struct timespec pause_ts;
	int n = 200, sweeps = 100, interval_ms = 100, i, r, s;

	if (argc > 1)
		n = atoi(argv[1]);
	if (argc > 2)
		sweeps = atoi(argv[2]);
	if (argc > 3)
		interval_ms = atoi(argv[3]);
	if (n <= 0 || sweeps <= 0 || interval_ms < 0) {
		fprintf(stderr, "usage: sampling_alternatives [children "
		    "[sweeps [interval_ms]]]\n");
		return 64;
	}
	children = calloc((size_t)n, sizeof *children);
	if (children == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		children[i].pid = fork();
		if (children[i].pid == -1) {
			fprintf(stderr, "sampling_alternatives: cannot fork "
			    "child %d: %s\n", i, strerror(errno));
			n = i;
			break;
		}
		if (children[i].pid == 0)
			idle_forever();
	}
	usleep(300000);		/* let them touch their pages */
	for (i = 0; i < n; i++)
		child_open(&children[i]);

	/* The daemon sleeps between sweeps; here too, between strategies,
	 * so that each one starts as cold as the daemon's sweep does. */
	t0 = (uint64_t)interval_ms * 1000000u / S_COUNT;
	pause_ts.tv_sec = (time_t)(t0 / 1000000000u);
	pause_ts.tv_nsec = (long)(t0 % 1000000000u);
	for (r = 0; r < sweeps; r++)
		for (s = 0; s < S_COUNT; s++) {
			nanosleep(&pause_ts, NULL);
			t0 = thread_cpu_ns();
			for (i = 0; i < n; i++)
				sample(&children[i], (enum strategy)s,
				    (unsigned int)r);
			ns[s] += thread_cpu_ns() - t0;
		}

	printf("%d idle children, %d sweeps, %d ms between sweeps\n", n,
	    sweeps, interval_ms);
	printf("%-22s %12s %12s\n", "strategy", "us/sample", "%core@1k/1Hz");
	for (s = 0; s < S_COUNT; s++) {
		double us = (double)ns[s] / 1000.0 / ((double)n * sweeps);

		printf("%-22s %12.2f %11.3f%%\n", strategy_names[s], us,
		    us * 1000 / 1e6 * 100);
	}

	for (i = 0; i < n; i++)
		kill(children[i].pid, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		continue;
	free(children);
	return sink == 42 ? 2 : 0;	/* keep sink alive */
}
