/* SPDX-License-Identifier: MIT */
/*
 * test_memprobe.c - the /proc parsers against captured and broken files, and
 * the probe against real process trees this test forks: a child and its
 * grandchild, a grandchild forked by a non-main thread, a zombie.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memprobe.h"

#ifndef TEST_DATA
#error "TEST_DATA must name the tests/unit/data directory"
#endif

#define MIB		(1024 * 1024)
#define KIB		1024
/* The fixtures were captured with 4 KiB pages. */
#define PAGE		4096

/* ---- fixtures ---------------------------------------------------------- */

/* Load TEST_DATA/proc/name into buf, NUL-terminated. */
static void
load(const char *name, char *buf, size_t size)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "%s/proc/%s", TEST_DATA, name);
	f = fopen(path, "re");
	if (f == NULL)
		fail_msg("cannot open fixture %s: %s", path, strerror(errno));
	n = fread(buf, 1, size - 1, f);
	assert_false(ferror(f));
	fclose(f);
	buf[n] = '\0';
}

/* ---- statm ------------------------------------------------------------- */

static void
test_statm_fixtures(void **state)
{
	char buf[256];
	uint64_t rss = 1;

	(void)state;
	load("statm-python.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_statm(buf, PAGE, &rss), 0);
	assert_int_equal(rss, 4660ULL * PAGE);
	load("statm-sleep.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_statm(buf, PAGE, &rss), 0);
	assert_int_equal(rss, 457ULL * PAGE);
	load("statm-kthread.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_statm(buf, PAGE, &rss), 0);
	assert_int_equal(rss, 0);
}

static void
test_statm_page_size_scales(void **state)
{
	uint64_t rss = 0;

	(void)state;
	assert_int_equal(memprobe_parse_statm("10 3 1 1 0 2 0\n", 65536, &rss),
	    0);
	assert_int_equal(rss, 3ULL * 65536);
}

static void
test_statm_broken_fixtures_leave_output(void **state)
{
	static const char *const names[] = {
		"statm-truncated.txt", "statm-garbage.txt",
		"smaps_rollup-python.txt", "children-empty.txt",
	};
	char buf[1024];
	uint64_t rss = 42;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(names); i++) {
		load(names[i], buf, sizeof buf);
		assert_int_equal(memprobe_parse_statm(buf, PAGE, &rss), -1);
		assert_int_equal(rss, 42);
	}
}

static void
test_statm_bad_strings_leave_output(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"5944",				/* one field */
		"5944\n",
		"5944 4660",			/* resident may be cut short */
		"5944 ",
		" 5944 4660 1420\n",		/* leading space */
		"5944  4660 1420\n",		/* double space */
		"-5944 4660 1420\n",
		"5944 -4660 1420\n",
		"5944 46x0 1420\n",
		"5944\t4660 1420\n",
		"1 99999999999999999999999 0\n",	/* number overflow */
		"1 18446744073709551615 0\n",		/* bytes overflow */
		"0x10 0x10 0\n",
	};
	uint64_t rss = 42;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++) {
		if (memprobe_parse_statm(bad[i], PAGE, &rss) != -1)
			fail_msg("accepted statm \"%s\"", bad[i]);
		assert_int_equal(rss, 42);
	}
	assert_int_equal(memprobe_parse_statm("1 2 3\n", 0, &rss), -1);
	assert_int_equal(memprobe_parse_statm("1 2 3\n", -4096, &rss), -1);
	assert_int_equal(memprobe_parse_statm(NULL, PAGE, &rss), -1);
	assert_int_equal(rss, 42);
}

static void
test_statm_minimal_complete_fields(void **state)
{
	uint64_t rss = 0;

	(void)state;
	/* Only size and resident matter; each must be complete. */
	assert_int_equal(memprobe_parse_statm("7 5 ", PAGE, &rss), 0);
	assert_int_equal(rss, 5ULL * PAGE);
	assert_int_equal(memprobe_parse_statm("7 6\n", PAGE, &rss), 0);
	assert_int_equal(rss, 6ULL * PAGE);
}

/* ---- smaps_rollup ------------------------------------------------------ */

static void
test_smaps_fixtures(void **state)
{
	char buf[4096];
	uint64_t rss = 0, pss = 0, uss = 0;

	(void)state;
	load("smaps_rollup-python.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_smaps_rollup(buf, &rss, &pss, &uss), 0);
	assert_int_equal(rss, 18640ULL * KIB);
	assert_int_equal(pss, 17069ULL * KIB);
	assert_int_equal(uss, (3912ULL + 12960) * KIB);

	load("smaps_rollup-sleep.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_smaps_rollup(buf, &rss, &pss, &uss), 0);
	assert_int_equal(rss, 1828ULL * KIB);
	assert_int_equal(pss, 301ULL * KIB);
	assert_int_equal(uss, 108ULL * KIB);
}

static void
test_smaps_private_hugetlb_counts_in_uss(void **state)
{
	char buf[4096];
	uint64_t rss = 0, pss = 0, uss = 0;

	(void)state;
	load("smaps_rollup-hugetlb.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_smaps_rollup(buf, &rss, &pss, &uss), 0);
	assert_int_equal(rss, 1828ULL * KIB);
	assert_int_equal(uss, (108ULL + 2048) * KIB);
}

static void
test_smaps_broken_fixtures_leave_output(void **state)
{
	static const char *const names[] = {
		"smaps_rollup-truncated.txt", "smaps_rollup-garbage.txt",
		"statm-python.txt", "children-kthreadd.txt",
		"children-empty.txt",
	};
	char buf[4096];
	uint64_t rss = 1, pss = 2, uss = 3;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(names); i++) {
		load(names[i], buf, sizeof buf);
		if (memprobe_parse_smaps_rollup(buf, &rss, &pss, &uss) != -1)
			fail_msg("accepted %s", names[i]);
		assert_int_equal(rss, 1);
		assert_int_equal(pss, 2);
		assert_int_equal(uss, 3);
	}
}

static void
test_smaps_truncated_anywhere_is_refused(void **state)
{
	char full[4096], cut[4096];
	uint64_t rss = 1, pss = 2, uss = 3;
	size_t len, at;
	char *private_dirty_end;

	(void)state;
	load("smaps_rollup-python.txt", full, sizeof full);
	len = strlen(full);
	/* Every cut up to the end of the last field we need must fail. */
	private_dirty_end = strchr(strstr(full, "Private_Dirty:"), '\n');
	assert_non_null(private_dirty_end);
	for (at = 0; at <= (size_t)(private_dirty_end - full); at++) {
		memcpy(cut, full, at);
		cut[at] = '\0';
		if (memprobe_parse_smaps_rollup(cut, &rss, &pss, &uss) != -1)
			fail_msg("accepted a cut at byte %zu of %zu", at, len);
	}
	assert_int_equal(rss, 1);
	assert_int_equal(pss, 2);
	assert_int_equal(uss, 3);
	/* Past it, the figures are complete. */
	memcpy(cut, full, at);
	cut[at] = '\0';
	assert_int_equal(memprobe_parse_smaps_rollup(cut, &rss, &pss, &uss), 0);
	assert_int_equal(uss, (3912ULL + 12960) * KIB);
}

static void
test_smaps_minimal_and_reordered(void **state)
{
	uint64_t rss = 0, pss = 0, uss = 0;

	(void)state;
	/* No header, no Private_Hugetlb (older kernels), Pss_* first. */
	assert_int_equal(memprobe_parse_smaps_rollup(
	    "Pss_Dirty:\t9 kB\nPrivate_Dirty: 3 kB\nPss: 5 kB\n"
	    "Private_Clean: 1 kB\nRss:\t8 kB\nSwapPss: 77 kB\n",
	    &rss, &pss, &uss), 0);
	assert_int_equal(rss, 8 * KIB);
	assert_int_equal(pss, 5 * KIB);
	assert_int_equal(uss, 4 * KIB);
}

static void
test_smaps_bad_strings_leave_output(void **state)
{
	static const char *const bad[] = {
		"",
		"Rss: 8 kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n",	/* no dirty */
		"Pss: 5 kB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 3 kB\n",
		"Rss: 8 kB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 3 kB\n",
		"Rss: 8 kB\nPss_Dirty: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",		/* Pss only as prefix */
		"Rss: 8 kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB",		/* last line cut */
		"Rss: 8 MB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",
		"Rss: kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",
		"Rss: -8 kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",
		"Rss: 8 kB extra\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",
		"Rss: 8 kB\nRss: 9 kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",			/* duplicate */
		"Rss: 99999999999999999 kB\nPss: 5 kB\nPrivate_Clean: 1 kB\n"
		    "Private_Dirty: 3 kB\n",		/* bytes overflow */
		/* The sum of private fields overflows. */
		"Rss: 8 kB\nPss: 5 kB\nPrivate_Clean: 18014398509481983 kB\n"
		    "Private_Dirty: 18014398509481983 kB\n"
		    "Private_Hugetlb: 18014398509481983 kB\n",
		"rss: 8 kB\npss: 5 kB\nprivate_clean: 1 kB\n"
		    "private_dirty: 3 kB\n",
	};
	uint64_t rss = 1, pss = 2, uss = 3;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++) {
		if (memprobe_parse_smaps_rollup(bad[i], &rss, &pss, &uss) != -1)
			fail_msg("accepted smaps_rollup #%zu \"%s\"", i,
			    bad[i]);
		assert_int_equal(rss, 1);
		assert_int_equal(pss, 2);
		assert_int_equal(uss, 3);
	}
	assert_int_equal(memprobe_parse_smaps_rollup(NULL, &rss, &pss, &uss),
	    -1);
}

/* ---- children ---------------------------------------------------------- */

static void
test_children_fixtures(void **state)
{
	char buf[1024];
	pid_t pids[64];

	(void)state;
	load("children-python.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_children(buf, pids, nitems(pids)), 3);
	assert_int_equal(pids[0], 9308);
	assert_int_equal(pids[1], 9309);
	assert_int_equal(pids[2], 9310);

	load("children-kthreadd.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_children(buf, pids, nitems(pids)), 58);
	assert_int_equal(pids[0], 3);
	assert_int_equal(pids[57], 9224);

	load("children-empty.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_children(buf, pids, nitems(pids)), 0);
}

static void
test_children_max_drops_the_rest(void **state)
{
	char buf[1024];
	pid_t pids[4] = { -1, -1, -1, -1 };

	(void)state;
	load("children-kthreadd.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_children(buf, pids, 3), 3);
	assert_int_equal(pids[2], 5);
	assert_int_equal(pids[3], -1);
	assert_int_equal(memprobe_parse_children(buf, pids, 0), 0);
	assert_int_equal(memprobe_parse_children(buf, NULL, 0), 0);
}

static void
test_children_stop_at_garbage(void **state)
{
	static const struct {
		const char	*buf;
		size_t		 count;
	} cases[] = {
		{ "", 0 },
		{ "   \n", 0 },
		{ "42", 1 },
		{ "42 ", 1 },
		{ " 42\n43\t44 ", 3 },
		{ "12 abc 34", 1 },
		{ "12 34x 56", 1 },
		{ "0 5", 0 },
		{ "7 -3", 1 },
		{ "7 +3", 1 },
		{ "7 2147483647 2147483648 9", 2 },
		{ "7 99999999999999999999999 9", 1 },
		{ "\x01\x02", 0 },
	};
	char buf[64];
	pid_t pids[8];
	size_t i;

	(void)state;
	load("children-garbage.txt", buf, sizeof buf);
	assert_int_equal(memprobe_parse_children(buf, pids, nitems(pids)), 2);
	assert_int_equal(pids[1], 813);
	for (i = 0; i < nitems(cases); i++) {
		if (memprobe_parse_children(cases[i].buf, pids, nitems(pids)) !=
		    cases[i].count)
			fail_msg("children \"%s\": expected %zu", cases[i].buf,
			    cases[i].count);
	}
	assert_int_equal(memprobe_parse_children(NULL, pids, 8), 0);
}

/* ---- live process trees -------------------------------------------------- */

/* Children and grandchildren this test started: killed by the teardown. */
static pid_t started[8];
static size_t nstarted;

static volatile char *touched;

/* Map and touch bytes of private anonymous memory (mmap: fork-safe). */
static void
touch(size_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	memset(p, 0x5a, bytes);
	touched = p;
}

/* In a forked process: die with the parent, tell it our pid, then wait. */
static _Noreturn void
report_and_wait(int fd)
{
	pid_t self = getpid();

	if (write(fd, &self, sizeof self) != sizeof self)
		_exit(3);
	for (;;)
		pause();
}

/* Parent pid of pid from /proc/PID/stat, or -1. */
static pid_t
parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int ppid = -1;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command name may hold anything */
	if (p == NULL || sscanf(p, ") %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

static void
forked_setup(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(60);	/* whatever happens to the test */
}

struct thread_arg {
	int		 fd;
	size_t		 bytes;
	pthread_barrier_t forked;	/* nothing is touched before the fork */
};

/* A non-main thread forks the grandchild, then lives on. */
static void *
forking_thread(void *arg)
{
	struct thread_arg *ta = arg;

	if (fork() == 0) {
		forked_setup();
		touch(ta->bytes);
		report_and_wait(ta->fd);
	}
	pthread_barrier_wait(&ta->forked);
	for (;;)
		pause();
	return NULL;
}

/*
 * Fork a child touching child_bytes whose grandchild touches gc_bytes. The
 * grandchild is forked before anything is touched, so nothing is shared,
 * by the main thread or, with by_thread, by a second thread. Returns the
 * child's pid and the grandchild's in *gc once both are ready.
 */
static pid_t
start_tree(size_t child_bytes, size_t gc_bytes, bool by_thread, pid_t *gc)
{
	struct thread_arg ta = { .bytes = gc_bytes };
	struct pollfd pfd;
	pthread_t thread;
	pid_t child, got;
	int fds[2], i;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	ta.fd = fds[1];
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		forked_setup();
		if (by_thread) {
			pthread_barrier_init(&ta.forked, NULL, 2);
			if (pthread_create(&thread, NULL, forking_thread, &ta))
				_exit(4);
			pthread_barrier_wait(&ta.forked);
		} else if (fork() == 0) {
			forked_setup();
			touch(gc_bytes);
			report_and_wait(fds[1]);
		}
		touch(child_bytes);
		report_and_wait(fds[1]);
	}
	started[nstarted++] = child;
	close(fds[1]);
	*gc = -1;
	for (i = 0; i < 2; i++) {
		pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(read(fds[0], &got, sizeof got), sizeof got);
		if (got != child) {
			*gc = got;
			started[nstarted++] = got;
		}
	}
	close(fds[0]);
	assert_true(*gc > 0);
	return child;
}

/* Kill and reap everything started (we are a subreaper: orphans too). */
static int
stop_all(void **state)
{
	size_t i;

	(void)state;
	for (i = nstarted; i-- > 0;)
		kill(started[i], SIGKILL);
	for (i = 0; i < nstarted; i++)
		waitpid(started[i], NULL, 0);
	nstarted = 0;
	return 0;
}

static volatile sig_atomic_t fork_now;

static void
on_usr1(int sig)
{
	(void)sig;
	fork_now = 1;
}

/*
 * A worker alone at its last walk is walked again only every few samples:
 * a child it forks later is counted within that many plain samples, and at
 * once by a smaps sample (taken near a limit).
 */
static void
test_late_child_of_a_lone_worker_is_found(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	struct pollfd pfd;
	pid_t child, gc;
	int fds[2], i;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	signal(SIGUSR1, on_usr1);
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		forked_setup();
		while (!fork_now)
			pause();
		if (fork() == 0) {
			forked_setup();
			touch(16 * MIB);
			report_and_wait(fds[1]);
		}
		for (;;)
			pause();
	}
	signal(SIGUSR1, SIG_DFL);
	started[nstarted++] = child;
	close(fds[1]);
	assert_non_null(p = memprobe_new(child));
	assert_int_equal(memprobe_sample(p, false, &s), 0);
	assert_int_equal(s.nprocs, 1);

	assert_int_equal(kill(child, SIGUSR1), 0);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(read(fds[0], &gc, sizeof gc), sizeof gc);
	started[nstarted++] = gc;
	close(fds[0]);

	for (i = 0; i < 16 && s.nprocs < 2; i++)
		assert_int_equal(memprobe_sample(p, false, &s), 0);
	assert_int_equal(s.nprocs, 2);
	assert_true(i <= 8);
	assert_true(s.rss >= 16ULL * MIB);
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_int_equal(s.nprocs, 2);
	memprobe_free(p);
	stop_all(state);
}

static void
test_sample_counts_child_and_grandchild(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	pid_t child, gc;

	child = start_tree(32 * MIB, 16 * MIB, false, &gc);
	p = memprobe_new(child);
	assert_non_null(p);

	assert_int_equal(memprobe_sample(p, false, &s), 0);
	assert_false(s.has_smaps);
	assert_int_equal(s.nprocs, 2);
	assert_true(s.rss >= 48ULL * MIB);

	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_true(s.has_smaps);
	assert_int_equal(s.nprocs, 2);
	assert_true(s.uss >= 48ULL * MIB);
	/* Both map the same libc: shared pages make each figure stricter. */
	assert_true(s.uss < s.pss);
	assert_true(s.pss < s.rss);

	/* The smaps_rollup descriptor is kept: a second read works too. */
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_true(s.pss >= 48ULL * MIB);

	stop_all(state);
	errno = 0;
	assert_int_equal(memprobe_sample(p, false, &s), -1);
	assert_int_equal(errno, ESRCH);
	errno = 0;
	assert_int_equal(memprobe_sample(p, true, &s), -1);
	assert_int_equal(errno, ESRCH);
	memprobe_free(p);

	errno = 0;
	assert_null(memprobe_new(child));
	assert_int_equal(errno, ESRCH);
}

static void
test_sample_grandchild_of_a_second_thread(void **state)
{
	char path[64], buf[256];
	struct memprobe *p;
	struct mem_sample s;
	pid_t child, gc, pids[8];
	FILE *f;

	child = start_tree(8 * MIB, 16 * MIB, true, &gc);

	/* The main thread's children file does not list it... */
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)child,
	    (int)child);
	f = fopen(path, "re");
	assert_non_null(f);
	buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
	fclose(f);
	assert_string_equal(buf, "");

	/* ...but the probe walks every thread's. */
	p = memprobe_new(child);
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, false, &s), 0);
	assert_int_equal(s.nprocs, 2);
	assert_true(s.rss >= 24ULL * MIB);
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_int_equal(s.nprocs, 2);
	assert_true(s.uss >= 24ULL * MIB);
	assert_true(s.uss <= s.pss && s.pss <= s.rss);
	memprobe_free(p);

	assert_int_equal(memprobe_tree(child, pids, nitems(pids)), 2);
	assert_int_equal(pids[0], child);
	assert_int_equal(pids[1], gc);
}

static void
test_tree_lists_root_first(void **state)
{
	pid_t child, gc, pids[8] = { 0 };

	child = start_tree(MIB, MIB, false, &gc);
	assert_int_equal(memprobe_tree(child, pids, nitems(pids)), 2);
	assert_int_equal(pids[0], child);
	assert_int_equal(pids[1], gc);

	/* Bounded by max: the root alone. */
	pids[1] = 0;
	assert_int_equal(memprobe_tree(child, pids, 1), 1);
	assert_int_equal(pids[0], child);
	assert_int_equal(pids[1], 0);
	assert_int_equal(memprobe_tree(child, pids, 0), 0);

	/* The grandchild alone is a tree of one. */
	assert_int_equal(memprobe_tree(gc, pids, nitems(pids)), 1);
	assert_int_equal(pids[0], gc);

	stop_all(state);
	assert_int_equal(memprobe_tree(child, pids, nitems(pids)), 0);
}

/*
 * A chain of depth processes, each the child of the previous one, each
 * touching bytes; with zombie_leaf the last one has exited unreaped. pids
 * receives them from the top down (the zombie's pid too).
 */
static void
start_chain(int depth, size_t bytes, bool zombie_leaf, pid_t *pids)
{
	struct pollfd pfd;
	siginfo_t info;
	pid_t pid = -1, got;
	int fds[2], level, i, j;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	for (level = 0; level < depth; level++) {
		pid = fork();
		assert_true(pid != -1);
		if (pid != 0)
			break;
		forked_setup();
		if (level == depth - 1 && zombie_leaf) {
			got = getpid();
			if (write(fds[1], &got, sizeof got) != sizeof got)
				_exit(3);
			_exit(0);
		}
	}
	if (level > 0) {
		/* In the chain: level is our depth, pid our child. */
		if (zombie_leaf && level == depth - 1)
			waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
		touch(bytes);
		report_and_wait(fds[1]);
	}
	started[nstarted++] = pid;
	close(fds[1]);
	for (i = 0; i < depth; i++) {
		pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(read(fds[0], &got, sizeof got), sizeof got);
		pids[i] = got;
	}
	close(fds[0]);
	/* Order them from the top: each one's parent comes first. */
	for (i = 0; i < depth; i++)
		for (j = i; j < depth; j++)
			if (parent_of(pids[j]) ==
			    (i > 0 ? pids[i - 1] : getpid())) {
				got = pids[i];
				pids[i] = pids[j];
				pids[j] = got;
				break;
			}
	for (i = 1; i < depth; i++)
		started[nstarted++] = pids[i];
}

static void
test_sample_walks_a_deep_chain(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	pid_t chain[5], tree[8];
	size_t i;

	start_chain(5, 4 * MIB, false, chain);
	assert_int_equal(memprobe_tree(chain[0], tree, nitems(tree)), 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(tree[i], chain[i]);
	/* Bounded: the walk stops adding at max. */
	assert_int_equal(memprobe_tree(chain[0], tree, 3), 3);
	assert_int_equal(tree[2], chain[2]);

	p = memprobe_new(chain[0]);
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_int_equal(s.nprocs, 5);
	assert_true(s.uss >= 20ULL * MIB);
	memprobe_free(p);
}

static void
test_sample_zombie_descendant_counts_nothing(void **state)
{
	struct memprobe *p;
	struct mem_sample with_zombie, alone;
	pid_t chain[2];

	start_chain(2, 8 * MIB, true, chain);
	p = memprobe_new(chain[0]);
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, true, &with_zombie), 0);
	assert_int_equal(with_zombie.nprocs, 2);
	assert_true(with_zombie.uss >= 8ULL * MIB);
	assert_true(with_zombie.uss <= with_zombie.pss &&
	    with_zombie.pss <= with_zombie.rss);
	memprobe_free(p);

	/* Which is right: the zombie itself holds no memory. */
	p = memprobe_new(chain[1]);
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, true, &alone), 0);
	assert_int_equal(alone.nprocs, 1);
	assert_int_equal(alone.rss, 0);
	assert_int_equal(alone.pss, 0);
	memprobe_free(p);
}

/* Descriptors open in this process. */
static int
count_fds(void)
{
	char path[64];
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if (access(path, F_OK) == 0)
			n++;
	}
	return n;
}

static void
test_probe_leaks_no_descriptor(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	pid_t child, gc, pids[8];
	int before, i;

	child = start_tree(MIB, MIB, true, &gc);
	before = count_fds();
	p = memprobe_new(child);
	assert_non_null(p);
	assert_int_equal(count_fds(), before + 1);	/* statm */
	for (i = 0; i < 3; i++) {
		assert_int_equal(memprobe_sample(p, i > 0, &s), 0);
		assert_int_equal(s.nprocs, 2);
	}
	/* + task directory and children file (it has a child), then
	 * smaps_rollup */
	assert_int_equal(count_fds(), before + 4);
	assert_int_equal(memprobe_tree(child, pids, nitems(pids)), 2);
	(void)memprobe_self_rss();
	memprobe_free(p);
	assert_int_equal(count_fds(), before);
}

/*
 * A worker without children keeps only its statm open: the walk
 * descriptors are opened for the walk every LONE_REWALK samples and closed
 * again; a child makes it keep them.
 */
static void
test_lone_worker_keeps_one_descriptor(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	struct pollfd pfd;
	pid_t child, gc;
	int fds[2], before, i;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	signal(SIGUSR1, on_usr1);
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		forked_setup();
		while (!fork_now)
			pause();
		if (fork() == 0) {
			forked_setup();
			report_and_wait(fds[1]);
		}
		/* Reap it when the test kills it: alone again. */
		while (wait(NULL) == -1 && errno == EINTR)
			;
		for (;;)
			pause();
	}
	signal(SIGUSR1, SIG_DFL);
	started[nstarted++] = child;
	close(fds[1]);
	before = count_fds();
	assert_non_null(p = memprobe_new(child));
	assert_int_equal(count_fds(), before + 1);
	for (i = 0; i < 20; i++) {
		assert_int_equal(memprobe_sample(p, false, &s), 0);
		assert_int_equal(s.nprocs, 1);
		assert_int_equal(count_fds(), before + 1);
	}

	assert_int_equal(kill(child, SIGUSR1), 0);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(read(fds[0], &gc, sizeof gc), sizeof gc);
	started[nstarted++] = gc;
	close(fds[0]);
	for (i = 0; i < 16 && s.nprocs < 2; i++)
		assert_int_equal(memprobe_sample(p, false, &s), 0);
	assert_int_equal(s.nprocs, 2);
	assert_int_equal(count_fds(), before - 1 + 3);	/* pipe end closed */

	assert_int_equal(kill(gc, SIGKILL), 0);
	for (i = 0; i < 1000 && s.nprocs > 1; i++) {
		usleep(10000);
		assert_int_equal(memprobe_sample(p, false, &s), 0);
	}
	assert_int_equal(s.nprocs, 1);
	assert_int_equal(count_fds(), before - 1 + 1);
	memprobe_free(p);
	assert_int_equal(count_fds(), before - 1);
	stop_all(state);
}

static void
test_sample_zombie_root_has_no_memory(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	siginfo_t info;
	pid_t child;

	(void)state;
	child = fork();
	assert_true(child != -1);
	if (child == 0)
		_exit(0);
	started[nstarted++] = child;	/* reaped by stop_all on failure */
	/* Wait for it to exit but leave it a zombie. */
	assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT),
	    0);
	p = memprobe_new(child);
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_true(s.has_smaps);
	assert_int_equal(s.nprocs, 1);
	assert_int_equal(s.rss, 0);
	assert_int_equal(s.pss, 0);
	assert_int_equal(s.uss, 0);

	assert_int_equal(waitpid(child, NULL, 0), child);
	nstarted = 0;
	errno = 0;
	assert_int_equal(memprobe_sample(p, true, &s), -1);
	assert_int_equal(errno, ESRCH);
	memprobe_free(p);
}

static void
test_new_refuses_bad_pids(void **state)
{
	(void)state;
	errno = 0;
	assert_null(memprobe_new(0));
	assert_int_equal(errno, EINVAL);
	assert_null(memprobe_new(-1));
	memprobe_free(NULL);
	assert_int_equal(memprobe_tree(-1, (pid_t[1]){ 0 }, 1), 0);
}

static void
test_sample_self(void **state)
{
	struct memprobe *p;
	struct mem_sample s;
	uint64_t self;

	(void)state;
	self = memprobe_self_rss();
	assert_true(self > 0);
	p = memprobe_new(getpid());
	assert_non_null(p);
	assert_int_equal(memprobe_sample(p, true, &s), 0);
	assert_int_equal(s.nprocs, 1);
	assert_true(s.rss > 0 && s.uss <= s.pss && s.pss <= s.rss);
	memprobe_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statm_fixtures),
		cmocka_unit_test(test_statm_page_size_scales),
		cmocka_unit_test(test_statm_broken_fixtures_leave_output),
		cmocka_unit_test(test_statm_bad_strings_leave_output),
		cmocka_unit_test(test_statm_minimal_complete_fields),
		cmocka_unit_test(test_smaps_fixtures),
		cmocka_unit_test(test_smaps_private_hugetlb_counts_in_uss),
		cmocka_unit_test(test_smaps_broken_fixtures_leave_output),
		cmocka_unit_test(test_smaps_truncated_anywhere_is_refused),
		cmocka_unit_test(test_smaps_minimal_and_reordered),
		cmocka_unit_test(test_smaps_bad_strings_leave_output),
		cmocka_unit_test(test_children_fixtures),
		cmocka_unit_test(test_children_max_drops_the_rest),
		cmocka_unit_test(test_children_stop_at_garbage),
		cmocka_unit_test_teardown(
		    test_sample_counts_child_and_grandchild, stop_all),
		cmocka_unit_test_teardown(
		    test_late_child_of_a_lone_worker_is_found, stop_all),
		cmocka_unit_test_teardown(
		    test_sample_grandchild_of_a_second_thread, stop_all),
		cmocka_unit_test_teardown(test_tree_lists_root_first,
		    stop_all),
		cmocka_unit_test_teardown(test_sample_walks_a_deep_chain,
		    stop_all),
		cmocka_unit_test_teardown(
		    test_sample_zombie_descendant_counts_nothing, stop_all),
		cmocka_unit_test_teardown(test_probe_leaks_no_descriptor,
		    stop_all),
		cmocka_unit_test_teardown(test_sample_zombie_root_has_no_memory,
		    stop_all),
		cmocka_unit_test_teardown(test_lone_worker_keeps_one_descriptor,
		    stop_all),
		cmocka_unit_test(test_new_refuses_bad_pids),
		cmocka_unit_test(test_sample_self),
	};

	/* Reap the grandchildren the tests kill, not leave them to init. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
