/* SPDX-License-Identifier: MIT */
/*
 * probe_cost.c - CPU cost of memprobe_sample() per worker, RSS and PSS.
 *
 * Forks N idle children (each touching a little memory of its own, and
 * with -g one idle grandchild), opens a probe on each, then samples all of
 * them for a number of rounds, with and without smaps_rollup, and prints
 * the CPU time (user + system, from getrusage) per sample. The budget for
 * the RSS path is 5 us per worker-sample at 1000 workers per second.
 *
 * Build and run (not part of make check):
 *   gcc -std=gnu11 -D_GNU_SOURCE -O2 -Isrc bench/probe_cost.c \
 *       src/memprobe.c src/util.c -o /tmp/probe_cost
 *   /tmp/probe_cost [-g] [children [rounds]]      (defaults: 200 children,
 *                                                   200 rounds)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memprobe.h"

#define CHILD_TOUCH_BYTES	(256 * 1024)

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

static double
cpu_usec(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/*
 * The floor: the three syscalls a sample of a single-threaded worker
 * without children makes, on descriptors of our own, without parsing.
 * Also the cost of a bare syscall on this machine, to scale by.
 */
static void
run_floor(const pid_t *pids, int n, int rounds)
{
	int (*fds)[3] = xcalloc((size_t)n, sizeof *fds);
	char path[64], buf[256];
	struct stat st;
	double cpu0, cpu1;
	long samples = (long)n * rounds, i;
	int r, k;

	for (k = 0; k < n; k++) {
		snprintf(path, sizeof path, "/proc/%d/statm", (int)pids[k]);
		fds[k][0] = open(path, O_RDONLY | O_CLOEXEC);
		snprintf(path, sizeof path, "/proc/%d/task", (int)pids[k]);
		fds[k][1] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		snprintf(path, sizeof path, "/proc/%d/task/%d/children",
		    (int)pids[k], (int)pids[k]);
		fds[k][2] = open(path, O_RDONLY | O_CLOEXEC);
	}
	cpu0 = cpu_usec();
	for (i = 0; i < samples; i++)
		syscall(SYS_getppid);
	cpu1 = cpu_usec();
	printf("%-22s %8.2f us cpu/call\n", "bare syscall (getppid)",
	    (cpu1 - cpu0) / (double)samples);
	cpu0 = cpu_usec();
	for (r = 0; r < rounds; r++)
		for (k = 0; k < n; k++) {
			if (pread(fds[k][0], buf, sizeof buf, 0) == -1 ||
			    fstat(fds[k][1], &st) == -1 ||
			    pread(fds[k][2], buf, sizeof buf, 0) == -1)
				abort();
		}
	cpu1 = cpu_usec();
	printf("%-22s %8.2f us cpu/sample  (pread statm, fstat task, "
	    "pread children)\n", "floor: 3 raw syscalls",
	    (cpu1 - cpu0) / (double)samples);
	for (k = 0; k < n; k++)
		for (r = 0; r < 3; r++)
			close(fds[k][r]);
	free(fds);
}

/* Sample every probe rounds times; CPU and wall microseconds per sample. */
static void
run(const char *what, struct memprobe **probes, int n, int rounds,
    bool with_smaps)
{
	struct mem_sample s;
	double cpu0, cpu1;
	uint64_t wall0, wall1;
	unsigned long failed = 0, nprocs = 0;
	int r, i;

	cpu0 = cpu_usec();
	wall0 = mono_usec();
	for (r = 0; r < rounds; r++)
		for (i = 0; i < n; i++) {
			if (memprobe_sample(probes[i], with_smaps, &s) == -1)
				failed++;
			else
				nprocs += s.nprocs;
		}
	cpu1 = cpu_usec();
	wall1 = mono_usec();
	printf("%-22s %8.2f us cpu/sample  %8.2f us wall/sample  "
	    "(%d samples, %.1f procs/sample, %lu failed)\n", what,
	    (cpu1 - cpu0) / ((double)n * rounds),
	    (double)(wall1 - wall0) / ((double)n * rounds), n * rounds,
	    (double)nprocs / ((double)n * rounds), failed);
}

int
main(int argc, char **argv)
{
	struct memprobe **probes;
	pid_t *pids;
	int n = 200, rounds = 200, i, argi = 1;
	bool grandchild = false;

	if (argi < argc && strcmp(argv[argi], "-g") == 0) {
		grandchild = true;
		argi++;
	}
	if (argi < argc)
		n = atoi(argv[argi++]);
	if (argi < argc)
		rounds = atoi(argv[argi++]);
	if (n <= 0 || rounds <= 0) {
		fprintf(stderr, "usage: probe_cost [-g] [children [rounds]]\n");
		return 64;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pids = xcalloc((size_t)n, sizeof *pids);
	probes = xcalloc((size_t)n, sizeof *probes);
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == -1) {
			fprintf(stderr,
			    "probe_cost: cannot fork child %d: %s\n", i,
			    strerror(errno));
			n = i;
			break;
		}
		if (pids[i] == 0) {
			if (grandchild && fork() == 0)
				idle_forever();
			idle_forever();
		}
	}
	if (n == 0)
		return 1;
	usleep(300000);		/* let them touch their pages */
	for (i = 0; i < n; i++) {
		probes[i] = memprobe_new(pids[i]);
		if (probes[i] == NULL) {
			fprintf(stderr, "probe_cost: cannot probe pid %d: %s\n",
			    (int)pids[i], strerror(errno));
			return 1;
		}
	}
	printf("%d children%s, %d rounds, self rss %llu KiB\n", n,
	    grandchild ? " with one grandchild each" : "", rounds,
	    (unsigned long long)(memprobe_self_rss() / 1024));
	run("rss (statm)", probes, n, 1, false);	/* warm caches */
	if (!grandchild)
		run_floor(pids, n, rounds);
	run("rss (statm)", probes, n, rounds, false);
	run("rss+pss+uss (smaps)", probes, n, rounds, true);

	for (i = 0; i < n; i++) {
		memprobe_free(probes[i]);
		kill(pids[i], SIGKILL);
	}
	/* As subreaper, the grandchildren (killed by PDEATHSIG) come here. */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		continue;
	free(probes);
	free(pids);
	return 0;
}
