/* SPDX-License-Identifier: MIT */
/*
 * test_cgroup_live.c - cgroup.c against the real cgroup v1 memory
 * controller of this machine: groups, placement, usage, eventfd thresholds,
 * OOM kills under memory.limit_in_bytes, killing a tree, removal, and the
 * clean-up of groups an earlier run left behind.
 *
 * The test first moves itself into a private group PRIV = (its own memory
 * cgroup)/cgtest-PID, so the ROOT that cgroup_root_open() uses (and whose
 * stale groups it kills) holds nothing but this test. Everything below PRIV
 * is killed and removed at exit, on failure too. Exits 77 (skipped) when the
 * v1 memory hierarchy is missing or not writable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

#define MIB		(1024ULL * 1024)
#define SKIP		77

static char	*parent_cg;	/* our memory cgroup when we started */
static char	*priv_cg;	/* parent_cg/cgtest-PID: ROOT for the tests */
static pid_t	 kids[64];	/* every process we forked, for teardown */
static size_t	 nkids;

/* Helpers that do not depend on cgroup.c */

static int
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static long long
read_number(const char *path)
{
	char buf[64] = "";
	FILE *fp = fopen(path, "re");
	long long v = -1;

	if (fp == NULL)
		return -1;
	if (fgets(buf, sizeof buf, fp) != NULL)
		v = atoll(buf);
	fclose(fp);
	return v;
}

static bool
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Kill every process below dir, then remove the directories bottom-up. */
static void
nuke(const char *dir)
{
	char path[1024], procs[1100];
	struct dirent *d;
	DIR *dp;
	FILE *fp;
	int pass, pid, found;

	for (pass = 0; pass < 50; pass++) {
		snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
		if ((fp = fopen(procs, "re")) == NULL)
			break;
		found = 0;
		while (fscanf(fp, "%d", &pid) == 1) {
			kill(pid, SIGKILL);
			found++;
		}
		fclose(fp);
		if (found == 0)
			break;
		sleep_ms(10);
	}
	if ((dp = opendir(dir)) != NULL) {
		while ((d = readdir(dp)) != NULL) {
			if (d->d_type != DT_DIR || d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
			nuke(path);
		}
		closedir(dp);
	}
	for (pass = 0; pass < 200 && rmdir(dir) == -1 && errno == EBUSY;
	    pass++)
		sleep_ms(10);
}

static void
reap_kids(void)
{
	size_t i;

	for (i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		continue;
	nkids = 0;
}

static void
cleanup_at_exit(void)
{
	char path[1024];

	reap_kids();
	if (priv_cg == NULL)
		return;
	/* Out of PRIV first, or rmdir would find us in it. */
	snprintf(path, sizeof path, "%s/cgroup.procs", parent_cg);
	write_file(path, "0");
	nuke(priv_cg);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		continue;
	if (exists(priv_cg))
		fprintf(stderr, "test_cgroup_live: could not remove %s\n",
		    priv_cg);
}

/* Remove what crashed earlier runs of this test left (cgtest-DEADPID). */
static void
clean_old_runs(void)
{
	char path[1024];
	struct dirent *d;
	DIR *dp;
	int pid;

	if ((dp = opendir(parent_cg)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (sscanf(d->d_name, "cgtest-%d", &pid) != 1 ||
		    (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		snprintf(path, sizeof path, "%s/%s", parent_cg, d->d_name);
		nuke(path);
	}
	closedir(dp);
}

/* Children */

static pid_t
remember(pid_t pid)
{
	assert_true(pid > 0);
	assert_true(nkids < nitems(kids));
	kids[nkids++] = pid;
	return pid;
}

/* Block until fd is readable; false on timeout. */
static bool
wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void
touch_mib(size_t mib)
{
	size_t len = mib * MIB, off;
	char *m;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(3);
	for (off = 0; off < len; off += 4096)
		m[off] = 1;
}

/*
 * Fork a child that joins cg itself (as spawn.c does between fork and
 * exec), forks nkids extra sleepers, touches mib MiB, says 'r' on the
 * returned pipe and sleeps.
 */
static pid_t
spawn_child(const struct cgroup *cg, size_t mib, int sleepers, int *ready_fd)
{
	int p[2], i;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (write(cgroup_join_fd(cg), "0", 1) != 1)
			_exit(2);
		for (i = 0; i < sleepers; i++)
			if (fork() == 0) {
				close(p[1]);
				for (;;)
					pause();
			}
		touch_mib(mib);
		if (write(p[1], "r", 1) != 1)
			_exit(4);
		for (;;)
			pause();
	}
	close(p[1]);
	*ready_fd = p[0];
	return remember(pid);
}

/* Wait for pid to end; its wait status, or -1 after timeout_ms. */
static int
wait_exit(pid_t pid, int timeout_ms)
{
	int st, waited;

	for (waited = 0; waited < timeout_ms; waited += 5) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		sleep_ms(5);
	}
	return -1;
}

static bool
killed_by_sigkill(int st)
{
	return st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* Per-test root: opened in setup, closed in teardown even on failure. */

static int
setup_root(void **state)
{
	struct cgroup_root *r;
	const char *why = NULL;

	r = cgroup_root_open(CGROUP_V1, "/proc", "/sys/fs/cgroup", NULL, &why);
	if (r == NULL) {
		fprintf(stderr, "cgroup_root_open: %s\n", why);
		return -1;
	}
	*state = r;
	return 0;
}

static int
teardown_root(void **state)
{
	cgroup_root_close(*state);
	reap_kids();
	return 0;
}

/* Tests */

static void
test_root_is_private_v1(void **state)
{
	struct cgroup_root *r = *state;

	assert_int_equal(cgroup_root_version(r), CG_V1);
	assert_string_equal(cgroup_root_path(r), priv_cg);
}

static void
test_usage_and_threshold_event(void **state)
{
	struct cgroup_root *r = *state;
	struct cgroup *pool, *w;
	uint64_t usage = 0, anon = 0;
	int efd, efd2, ready;
	pid_t pid;
	char c;

	assert_non_null(pool = cgroup_pool_open(r, "p", 0));
	assert_non_null(w = cgroup_worker_open(pool, 0, 1, 0, 0));
	assert_true(exists(cgroup_path(w)));
	assert_int_equal(cgroup_memory_usage(w, &usage), 0);
	assert_true(usage < 32 * MIB);

	/* Armed before the allocation, as the daemon arms at start. */
	efd = cgroup_threshold_arm(w, 32 * MIB, false);
	assert_true(efd >= 0);
	assert_false(cgroup_threshold_consume(w));

	pid = spawn_child(w, 64, 0, &ready);
	assert_true(wait_readable(ready, 10000));
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	assert_true(wait_readable(efd, 5000));
	assert_true(cgroup_threshold_consume(w));
	assert_false(cgroup_threshold_consume(w));

	assert_int_equal(cgroup_memory_usage(w, &usage), 0);
	assert_true(usage >= 64 * MIB);
	assert_int_equal(cgroup_memory_anon(w, &anon), 0);
	assert_true(anon >= 64 * MIB);
	assert_int_equal(cgroup_memory_usage(pool, &usage), 0);
	assert_true(usage >= 64 * MIB);
	assert_int_equal(cgroup_nprocs(w), 1);
	assert_int_equal(cgroup_nprocs(pool), 0);

	/* Re-arming above usage: a new eventfd, nothing to report. */
	efd2 = cgroup_threshold_arm(w, 256 * MIB, false);
	assert_true(efd2 >= 0);
	assert_false(wait_readable(efd2, 50));
	assert_false(cgroup_threshold_consume(w));
	/* Disarm. */
	assert_int_equal(cgroup_threshold_arm(w, 0, false), -1);

	assert_int_equal(cgroup_kill(w), 0);
	assert_true(killed_by_sigkill(wait_exit(pid, 5000)));
	assert_true(cgroup_oom_kills(w) == 0);
	cgroup_close(w);
	cgroup_close(pool);
}

static void
test_memory_max_oom_kill(void **state)
{
	struct cgroup_root *r = *state;
	struct cgroup *pool, *w;
	char path[1024];
	int ready;
	pid_t pid;

	assert_non_null(pool = cgroup_pool_open(r, "oom", 0));
	assert_non_null(w = cgroup_worker_open(pool, 1, 1, 0, 16 * MIB));
	snprintf(path, sizeof path, "%s/memory.limit_in_bytes",
	    cgroup_path(w));
	assert_int_equal(read_number(path), 16 * MIB);
	assert_true(cgroup_oom_kills(w) == 0);

	pid = spawn_child(w, 64, 0, &ready);
	assert_true(killed_by_sigkill(wait_exit(pid, 20000)));
	close(ready);
	assert_true(cgroup_oom_kills(w) >= 1);
	cgroup_close(w);
	cgroup_close(pool);
}

static void
test_kill_tree(void **state)
{
	struct cgroup_root *r = *state;
	struct cgroup *pool, *w;
	char path[1024];
	int ready, st, reaped, waited;
	pid_t pid;
	char c;

	assert_non_null(pool = cgroup_pool_open(r, "tree", 0));
	assert_non_null(w = cgroup_worker_open(pool, 2, 7, 0, 0));
	snprintf(path, sizeof path, "%s", cgroup_path(w));
	pid = spawn_child(w, 1, 3, &ready);
	assert_true(wait_readable(ready, 10000));
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	assert_int_equal(cgroup_nprocs(w), 4);

	assert_int_equal(cgroup_kill(w), 0);
	/* The child and its three sleepers (ours: we are a subreaper). */
	for (reaped = 0, waited = 0; reaped < 4 && waited < 5000; ) {
		pid_t got = waitpid(-1, &st, WNOHANG);

		if (got > 0) {
			assert_true(killed_by_sigkill(st));
			reaped++;
		} else {
			sleep_ms(5);
			waited += 5;
		}
	}
	assert_int_equal(reaped, 4);
	(void)pid;
	nkids = 0;
	assert_int_equal(cgroup_nprocs(w), 0);
	cgroup_close(w);
	assert_false(exists(path));
	cgroup_close(pool);
}

static void
test_limits_v1(void **state)
{
	struct cgroup_root *r = *state;
	struct cgroup *pool, *w;
	char path[1024];

	assert_non_null(pool = cgroup_pool_open(r, "lim", 512 * MIB));
	snprintf(path, sizeof path, "%s/memory.limit_in_bytes",
	    cgroup_path(pool));
	assert_int_equal(read_number(path), 512 * MIB);
	/* memory_high is ignored on v1; cgroup_set_high says why. */
	assert_non_null(w = cgroup_worker_open(pool, 0, 1, 8 * MIB, 0));
	errno = 0;
	assert_int_equal(cgroup_set_high(w, 8 * MIB), -1);
	assert_int_equal(errno, EOPNOTSUPP);
	assert_int_equal(cgroup_set_max(w, 64 * MIB), 0);
	snprintf(path, sizeof path, "%s/memory.limit_in_bytes",
	    cgroup_path(w));
	assert_int_equal(read_number(path), 64 * MIB);
	assert_int_equal(cgroup_set_max(w, 0), 0);
	assert_true(read_number(path) > (long long)(1ULL << 40));
	/* Placement on v1 is by a write, not clone3: a forked child joins
	 * by tasks (itself alone), the daemon moves a whole process by
	 * cgroup.procs. */
	assert_int_equal(cgroup_dir_fd(w), -1);
	assert_true(cgroup_join_fd(w) >= 0);
	{
		struct cgroup *w2;
		int rfd;
		char c;
		pid_t kid = spawn_child(w, 1, 0, &rfd);

		assert_int_equal(read(rfd, &c, 1), 1);
		close(rfd);
		assert_true(cgroup_contains(w, kid));
		assert_non_null(w2 = cgroup_worker_open(pool, 1, 2, 0, 0));
		assert_false(cgroup_contains(w2, kid));
		assert_int_equal(cgroup_attach(w2, kid), 0);
		assert_true(cgroup_contains(w2, kid));
		assert_false(cgroup_contains(w, kid));
		assert_int_equal(cgroup_attach(w2, 0), -1);
		assert_int_equal(errno, EINVAL);
		kill(kid, SIGKILL);
		assert_true(WIFSIGNALED(wait_exit(kid, 5000)));
		cgroup_close(w2);
	}
	/* Same slot and generation twice is a bug of the caller. */
	assert_null(cgroup_worker_open(pool, 0, 1, 0, 0));
	assert_int_equal(errno, EEXIST);
	assert_null(cgroup_pool_open(r, "supervisor", 0));
	assert_int_equal(errno, EINVAL);
	assert_null(cgroup_pool_open(r, "a/b", 0));
	cgroup_close(w);
	cgroup_close(pool);
}

static bool tidy_until_gone(struct cgroup_root *, const char *);

static void
test_close_removes_groups(void **state)
{
	struct cgroup_root *r = *state;
	struct cgroup *pool, *w1, *w2;
	char ppath[1024], w1path[1024];
	int ready;
	pid_t pid;
	char c;

	assert_non_null(pool = cgroup_pool_open(r, "gone", 0));
	assert_non_null(w1 = cgroup_worker_open(pool, 0, 1, 0, 0));
	assert_non_null(w2 = cgroup_worker_open(pool, 1, 1, 0, 0));
	snprintf(ppath, sizeof ppath, "%s", cgroup_path(pool));
	snprintf(w1path, sizeof w1path, "%s", cgroup_path(w1));
	pid = spawn_child(w1, 1, 0, &ready);
	assert_true(wait_readable(ready, 10000));
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);

	/* Pool closed first: it waits for its last worker. */
	cgroup_close(pool);
	assert_true(exists(ppath));
	cgroup_close(w1);	/* kills the sleeping child */
	assert_true(killed_by_sigkill(wait_exit(pid, 5000)));
	/* A group its last process just left may still be busy: closing
	 * never waits, cgroup_root_tidy() removes it a little later. */
	assert_true(tidy_until_gone(r, w1path));
	assert_true(exists(ppath));
	cgroup_close(w2);
	assert_true(tidy_until_gone(r, ppath));
}

/* Retry the busy groups for up to 5 s; true once path is gone. */
static bool
tidy_until_gone(struct cgroup_root *r, const char *path)
{
	int i;

	for (i = 0; i < 500 && exists(path); i++) {
		(void)cgroup_root_tidy(r);
		usleep(10000);
	}
	return !exists(path);
}

static void
test_root_close_removes_open_groups(void **state)
{
	struct cgroup_root *r;
	struct cgroup *pool, *w;
	char ppath[1024];
	const char *why;
	int ready;
	pid_t pid;
	char c;

	(void)state;
	assert_non_null(r = cgroup_root_open(CGROUP_V1, "/proc",
	    "/sys/fs/cgroup", NULL, &why));
	assert_non_null(pool = cgroup_pool_open(r, "left", 0));
	assert_non_null(w = cgroup_worker_open(pool, 0, 1, 0, 0));
	snprintf(ppath, sizeof ppath, "%s", cgroup_path(pool));
	pid = spawn_child(w, 1, 0, &ready);
	assert_true(wait_readable(ready, 10000));
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	cgroup_root_close(r);
	assert_true(killed_by_sigkill(wait_exit(pid, 5000)));
	assert_false(exists(ppath));
}

/* A run that died left ROOT/poolx/worker-0-1 with a live process in it. */
static void
test_stale_groups_are_killed_and_removed(void **state)
{
	char poolx[1024], stale[1100], inner[1200], keep[1024], keep2[1100];
	char procs[1300], text[32];
	struct cgroup_root *r;
	const char *why;
	pid_t pid, pid2;
	int i;

	(void)state;
	snprintf(poolx, sizeof poolx, "%s/poolx", priv_cg);
	snprintf(stale, sizeof stale, "%s/worker-0-1", poolx);
	snprintf(inner, sizeof inner, "%s/nested", stale);
	snprintf(keep, sizeof keep, "%s/keep", priv_cg);
	snprintf(keep2, sizeof keep2, "%s/not-a-worker", keep);
	assert_int_equal(mkdir(poolx, 0755), 0);
	assert_int_equal(mkdir(stale, 0755), 0);
	assert_int_equal(mkdir(inner, 0755), 0);
	assert_int_equal(mkdir(keep, 0755), 0);
	assert_int_equal(mkdir(keep2, 0755), 0);

	/* Two sleepers, one in the worker group, one in a group below it. */
	for (i = 0; i < 2; i++) {
		pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		remember(pid);
		snprintf(procs, sizeof procs, "%s/cgroup.procs",
		    i == 0 ? stale : inner);
		snprintf(text, sizeof text, "%d", (int)pid);
		assert_int_equal(write_file(procs, text), 0);
	}
	pid = kids[nkids - 2];
	pid2 = kids[nkids - 1];

	assert_non_null(r = cgroup_root_open(CGROUP_V1, "/proc",
	    "/sys/fs/cgroup", NULL, &why));
	assert_true(killed_by_sigkill(wait_exit(pid, 5000)));
	assert_true(killed_by_sigkill(wait_exit(pid2, 5000)));
	nkids -= 2;
	assert_false(exists(stale));
	assert_false(exists(poolx));
	/* Not named like ours: left alone. */
	assert_true(exists(keep2));
	cgroup_root_close(r);
	assert_int_equal(rmdir(keep2), 0);
	assert_int_equal(rmdir(keep), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_root_is_private_v1,
		    setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_usage_and_threshold_event,
		    setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_memory_max_oom_kill,
		    setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_kill_tree,
		    setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_limits_v1,
		    setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_close_removes_groups,
		    setup_root, teardown_root),
		cmocka_unit_test(test_root_close_removes_open_groups),
		cmocka_unit_test(test_stale_groups_are_killed_and_removed),
	};
	struct cgroup_probe p;
	char path[1024];
	int rc;

	cgroup_probe("/proc", "/sys/fs/cgroup", &p);
	if (p.v1_root == NULL || !p.v1_writable) {
		printf("SKIP: no writable cgroup v1 memory hierarchy (%s)\n",
		    p.v1_root != NULL ? p.v1_root : "not mounted");
		cgroup_probe_fini(&p);
		return SKIP;
	}
	parent_cg = xstrdup(p.v1_root);
	cgroup_probe_fini(&p);
	clean_old_runs();

	xasprintf(&priv_cg, "%s/cgtest-%d", parent_cg, (int)getpid());
	if (mkdir(priv_cg, 0755) == -1) {
		printf("SKIP: cannot create %s: %s\n", priv_cg,
		    strerror(errno));
		return SKIP;
	}
	atexit(cleanup_at_exit);
	snprintf(path, sizeof path, "%s/cgroup.procs", priv_cg);
	if (write_file(path, "0") == -1) {
		printf("SKIP: cannot move into %s: %s\n", priv_cg,
		    strerror(errno));
		return SKIP;
	}
	/* Sleepers forked by our children are reaped here. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	cleanup_at_exit();
	free(priv_cg);
	priv_cg = NULL;
	free(parent_cg);
	return rc;
}
