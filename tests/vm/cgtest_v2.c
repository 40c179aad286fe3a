/* SPDX-License-Identifier: MIT */
/*
 * cgtest_v2.c - src/cgroup.c against a real cgroup v2 memory controller,
 * inside the test VM (tests/vm/run.sh). Run it as the only process of a
 * delegated group ROOT (argv[1]); it prints one "ok"/"FAIL" line per check
 * and exits 1 when any failed. Checks, in one boot: stale group cleanup at
 * open, the daemon's move into ROOT/supervisor and +memory, pool and worker
 * groups with their limits, clone3(CLONE_INTO_CGROUP) placement,
 * memory.current, the memory.high threshold event through memory.events,
 * memory.max OOM kills (memory.oom.group), cgroup.kill of a tree, re-open
 * from inside ROOT/supervisor, removal on close, and the fallback when
 * another process shares ROOT.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

#include "cgroup.h"

#define MIB		(1024ULL * 1024)

static const char *root_path;	/* argv[1]: the delegated group */
static int failures;

static void PRINTFLIKE(2, 3)
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static const char *cat(const char *fmt, ...) PRINTFLIKE(1, 2);

/* First line of a file, newline dropped; "" when unreadable. */
static const char *
cat(const char *fmt, ...)
{
	static char buf[4096];
	char path[1024];
	va_list ap;
	FILE *fp;

	va_start(ap, fmt);
	vsnprintf(path, sizeof path, fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	if ((fp = fopen(path, "re")) != NULL) {
		if (fgets(buf, sizeof buf, fp) == NULL)
			buf[0] = '\0';
		fclose(fp);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool
file_has(const char *path, const char *word)
{
	char buf[4096];
	FILE *fp = fopen(path, "re");
	size_t n;

	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, word) != NULL;
}

static bool
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static uint64_t
keyed(const char *dir, const char *file, const char *key)
{
	char path[1024], buf[8192];
	FILE *fp;
	size_t n;
	uint64_t v = 0;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if (cgroup_parse_keyed(buf, key, &v) == -1)
		return 0;
	return v;
}

/* Copy a file to the second serial port (host: build/ttyS1.out). */
static void
capture(const char *label, const char *dir, const char *file)
{
	char path[1024], buf[8192];
	size_t n;
	FILE *in, *out;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((in = fopen(path, "re")) == NULL)
		return;
	if ((out = fopen("/dev/ttyS1", "we")) != NULL) {
		fprintf(out, "==> %s %s <==\n", label, file);
		while ((n = fread(buf, 1, sizeof buf, in)) > 0)
			fwrite(buf, 1, n, out);
		fclose(out);
	}
	fclose(in);
}

/* Children */

struct kid {
	pid_t	 pid;
	int	 to_kid;	/* parent -> child: 'g' = go on */
	int	 from_kid;	/* child -> parent: 'r' = ready */
};

static void
touch_mib(double mib)
{
	size_t len = (size_t)(mib * (double)MIB), off;
	char *m;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(3);
	for (off = 0; off < len; off += 4096)
		m[off] = 1;
}

/*
 * The child's life: fork sleepers, say 'r', wait for 'g' when asked to,
 * touch mib MiB, say 'r' again, sleep until killed.
 */
static _Noreturn void
kid_main(int in, int out, int sleepers, bool wait_go, double mib)
{
	char c;
	int i;

	for (i = 0; i < sleepers; i++)
		if (fork() == 0)
			for (;;)
				pause();
	if (write(out, "r", 1) != 1)
		_exit(4);
	if (wait_go && read(in, &c, 1) != 1)
		_exit(5);
	touch_mib(mib);
	if (write(out, "r", 1) != 1)
		_exit(4);
	for (;;)
		pause();
}

/* Start a child in cg: clone3(CLONE_INTO_CGROUP), or fork + attach. */
static bool
kid_start(struct kid *k, const struct cgroup *cg, bool use_clone3,
    int sleepers, bool wait_go, double mib)
{
	struct clone_args a;
	int down[2], up[2];

	if (pipe2(down, O_CLOEXEC) == -1 || pipe2(up, O_CLOEXEC) == -1)
		return false;
	if (use_clone3) {
		memset(&a, 0, sizeof a);
		a.flags = CLONE_INTO_CGROUP;
		a.exit_signal = SIGCHLD;
		a.cgroup = (uint64_t)cgroup_dir_fd(cg);
		k->pid = (pid_t)syscall(SYS_clone3, &a, sizeof a);
	} else {
		k->pid = fork();
		if (k->pid == 0 && write(cgroup_join_fd(cg), "0", 1) != 1)
			_exit(2);
	}
	if (k->pid == -1)
		return false;
	if (k->pid == 0)
		kid_main(down[0], up[1], sleepers, wait_go, mib);
	close(down[0]);
	close(up[1]);
	k->to_kid = down[1];
	k->from_kid = up[0];
	return true;
}

static bool
kid_wait_ready(struct kid *k, int timeout_ms)
{
	struct pollfd p = { k->from_kid, POLLIN, 0 };
	char c;

	return poll(&p, 1, timeout_ms) == 1 && read(k->from_kid, &c, 1) == 1;
}

static void
kid_close(struct kid *k)
{
	close(k->to_kid);
	close(k->from_kid);
}

/* Reap n processes (ours or orphans: we are a subreaper) in timeout_ms;
 * how many died of SIGKILL. */
static int
reap_killed(int n, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;
	int st, killed = 0, got = 0;

	while (got < n && now_s() < end) {
		if (waitpid(-1, &st, WNOHANG) > 0) {
			got++;
			if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
				killed++;
		} else {
			sleep_ms(5);
		}
	}
	return killed;
}

/* The checks */

/* A run that died left ROOT/poolx/worker-0-1 with a sleeper inside. */
static pid_t
make_stale(void)
{
	char path[1024], pid_text[32];
	pid_t pid;
	int fd;

	snprintf(path, sizeof path, "%s/poolx", root_path);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/poolx/worker-0-1", root_path);
	mkdir(path, 0755);
	if ((pid = fork()) == 0)
		for (;;)
			pause();
	snprintf(path, sizeof path, "%s/poolx/worker-0-1/cgroup.procs",
	    root_path);
	snprintf(pid_text, sizeof pid_text, "%d", (int)pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	check(fd != -1 && write(fd, pid_text, strlen(pid_text)) > 0,
	    "stale: sleeper %d placed in poolx/worker-0-1", (int)pid);
	if (fd != -1)
		close(fd);
	return pid;
}

static struct cgroup_root *
check_open(void)
{
	struct cgroup_root *r;
	const char *why = "";
	char path[1024];
	pid_t stale;
	int st;

	stale = make_stale();
	r = cgroup_root_open(CGROUP_AUTO, "/proc", "/sys/fs/cgroup", NULL, &why);
	check(r != NULL && cgroup_root_version(r) == CG_V2,
	    "open: auto chose v2 (%s)", why);
	if (r == NULL)
		exit(1);
	check(strcmp(cgroup_root_path(r), root_path) == 0, "open: ROOT is %s",
	    cgroup_root_path(r));
	snprintf(path, sizeof path, "0::%s/supervisor",
	    root_path + strlen("/sys/fs/cgroup"));
	check(strcmp(cat("/proc/self/cgroup"), path) == 0,
	    "open: daemon moved to ROOT/supervisor (%s)",
	    cat("/proc/self/cgroup"));
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", root_path);
	check(file_has(path, "memory"), "open: +memory in ROOT subtree_control");
	check(waitpid(stale, &st, 0) == stale && WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGKILL, "stale: sleeper killed");
	snprintf(path, sizeof path, "%s/poolx", root_path);
	check(!exists(path), "stale: poolx/worker-0-1 and poolx removed");
	return r;
}

static void
check_groups_and_usage(struct cgroup *pool)
{
	struct cgroup *w;
	uint64_t usage = 0, anon = 0;
	char want[256], path[1024];
	struct kid k;
	bool ok;

	check(strcmp(cat("%s/memory.max", cgroup_path(pool)), "268435456") ==
	    0, "pool: memory.max = 256M");
	snprintf(path, sizeof path, "%s/cgroup.subtree_control",
	    cgroup_path(pool));
	check(file_has(path, "memory"), "pool: +memory in subtree_control");
	w = cgroup_worker_open(pool, 0, 1, 200 * MIB, 100 * MIB);
	check(w != NULL, "worker: worker-0-1 created");
	if (w == NULL)
		return;
	check(strcmp(cat("%s/memory.oom.group", cgroup_path(w)), "1") == 0,
	    "worker: memory.oom.group = 1");
	check(strcmp(cat("%s/memory.high", cgroup_path(w)), "209715200") == 0,
	    "worker: memory.high = 200M");
	check(strcmp(cat("%s/memory.max", cgroup_path(w)), "104857600") == 0,
	    "worker: memory.max = 100M");
	check(cgroup_dir_fd(w) >= 0, "worker: cgroup_dir_fd for clone3");

	if (!kid_start(&k, w, true, 0, false, 32)) {
		check(false, "clone3(CLONE_INTO_CGROUP): %s", strerror(errno));
		cgroup_close(w);
		return;
	}
	check(kid_wait_ready(&k, 10000) && kid_wait_ready(&k, 20000),
	    "clone3 child touched 32 MiB");
	snprintf(want, sizeof want, "0::%s",
	    cgroup_path(w) + strlen("/sys/fs/cgroup"));
	check(strcmp(cat("/proc/%d/cgroup", (int)k.pid), want) == 0,
	    "clone3: child started in %s", want);
	/* Read first: argument evaluation order is unspecified. */
	ok = cgroup_memory_usage(w, &usage) == 0 && usage >= 32 * MIB;
	check(ok, "memory.current %llu >= 32 MiB", (unsigned long long)usage);
	ok = cgroup_memory_anon(w, &anon) == 0 && anon >= 32 * MIB;
	check(ok, "memory.stat anon %llu >= 32 MiB", (unsigned long long)anon);
	check(cgroup_nprocs(w) == 1, "nprocs = 1");
	capture("usage", cgroup_path(w), "memory.stat");
	cgroup_close(w);
	check(reap_killed(1, 5000) == 1, "close: child killed");
	kid_close(&k);
}

static void
check_threshold_high(struct cgroup *pool)
{
	uint64_t base = 0, thr;
	struct pollfd p;
	struct cgroup *w;
	double t0;
	struct kid k;
	int fd;

	w = cgroup_worker_open(pool, 1, 1, 0, 0);
	check(w != NULL, "high: worker-1-1 created");
	if (w == NULL || !kid_start(&k, w, true, 0, true, 49)) {
		cgroup_close(w);
		return;
	}
	/* 48 MiB over the baseline, touched 49: a 2% overshoot barely
	 * throttles (the penalty grows with the square of the overage). */
	kid_wait_ready(&k, 10000);
	if (cgroup_memory_usage(w, &base) == -1)
		base = 0;
	thr = base + 48 * MIB;
	fd = cgroup_threshold_arm(w, thr, true);
	check(fd >= 0, "high: armed at %llu bytes (fd %d)",
	    (unsigned long long)thr, fd);
	check(strtoull(cat("%s/memory.high", cgroup_path(w)), NULL, 10) == thr,
	    "high: memory.high = threshold");
	check(!cgroup_threshold_consume(w), "high: nothing to consume yet");
	t0 = now_s();
	/* The child touches 49 MiB on 'g'. */
	if (write(k.to_kid, "g", 1) != 1)
		check(false, "high: cannot start the child");
	p = (struct pollfd){ fd, POLLIN, 0 };
	check(poll(&p, 1, 20000) == 1, "high: memory.events fd readable after "
	    "%.2fs", now_s() - t0);
	check(cgroup_threshold_consume(w), "high: consume says fired "
	    "(memory.events high %llu)", (unsigned long long)keyed(
	    cgroup_path(w), "memory.events", "high"));
	check(cgroup_threshold_arm(w, 0, true) == -1 &&
	    strcmp(cat("%s/memory.high", cgroup_path(w)), "max") == 0,
	    "high: disarm puts memory.high back to max");
	check(kid_wait_ready(&k, 20000), "high: child finished in %.2fs",
	    now_s() - t0);
	capture("high", cgroup_path(w), "memory.events");
	cgroup_close(w);
	reap_killed(1, 5000);
	kid_close(&k);
}

static void
check_oom(struct cgroup *pool)
{
	struct cgroup *w;
	struct kid k;
	double t0 = now_s();
	int killed;

	w = cgroup_worker_open(pool, 2, 1, 0, 16 * MIB);
	check(w != NULL, "oom: worker-2-1 with memory.max 16M");
	if (w == NULL)
		return;
	check(cgroup_oom_kills(w) == 0, "oom: no kill yet");
	/* A sleeper beside the hog: memory.oom.group takes it too. */
	if (!kid_start(&k, w, true, 1, false, 64)) {
		cgroup_close(w);
		return;
	}
	killed = reap_killed(2, 30000);
	check(killed == 2, "oom: hog and its sleeper SIGKILLed in %.2fs "
	    "(memory.oom.group)", now_s() - t0);
	check(cgroup_oom_kills(w) >= 1, "oom: cgroup_oom_kills = %llu",
	    (unsigned long long)cgroup_oom_kills(w));
	check(keyed(cgroup_path(w), "memory.events", "oom_group_kill") >= 1,
	    "oom: memory.events oom_group_kill %llu",
	    (unsigned long long)keyed(cgroup_path(w), "memory.events",
	    "oom_group_kill"));
	capture("oom", cgroup_path(w), "memory.events");
	cgroup_close(w);
	kid_close(&k);
}

/* cgroup_attach moves a named process (the daemon's way for a template's
 * worker that could not), cgroup_contains sees it; a pid of 0 is refused. */
static void
check_attach(struct cgroup *w)
{
	pid_t pid;

	check(cgroup_attach(w, 0) == -1 && errno == EINVAL,
	    "attach: pid 0 refused (EINVAL)");
	pid = fork();
	if (pid == -1)
		return;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	check(!cgroup_contains(w, pid), "attach: [pid %d] not there yet",
	    (int)pid);
	check(cgroup_attach(w, pid) == 0 && cgroup_contains(w, pid),
	    "attach: [pid %d] moved in by cgroup.procs", (int)pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void
check_kill_tree(struct cgroup *pool)
{
	struct cgroup *w;
	char path[1024];
	struct kid k;

	w = cgroup_worker_open(pool, 3, 1, 0, 0);
	check(w != NULL, "kill: worker-3-1 created");
	if (w != NULL)
		check_attach(w);
	if (w == NULL || !kid_start(&k, w, false, 3, false, 1)) {
		cgroup_close(w);
		return;
	}
	check(kid_wait_ready(&k, 10000) && kid_wait_ready(&k, 10000),
	    "kill: fork + cgroup_attach child with 3 sleepers");
	check(cgroup_nprocs(w) == 4, "kill: nprocs = %d", cgroup_nprocs(w));
	check(cgroup_kill(w) == 0, "kill: cgroup.kill written");
	check(reap_killed(4, 5000) == 4, "kill: all 4 SIGKILLed");
	check(cgroup_nprocs(w) == 0, "kill: group empty");
	snprintf(path, sizeof path, "%s", cgroup_path(w));
	cgroup_close(w);
	check(!exists(path), "kill: close removed %s", path);
	kid_close(&k);
}

/* Open again from inside ROOT/supervisor; root_close removes leftovers. */
static void
check_reopen_and_root_close(void)
{
	struct cgroup_root *r;
	struct cgroup *pool, *w;
	const char *why = "";
	char path[1024];
	struct kid k;

	r = cgroup_root_open(CGROUP_V2, "/proc", "/sys/fs/cgroup", NULL, &why);
	check(r != NULL && strcmp(cgroup_root_path(r), root_path) == 0,
	    "reopen: ROOT still %s from supervisor (%s)", root_path, why);
	if (r == NULL)
		return;
	pool = cgroup_pool_open(r, "left", 0);
	w = pool != NULL ? cgroup_worker_open(pool, 0, 1, 0, 0) : NULL;
	check(w != NULL, "reopen: pool and worker");
	if (w != NULL && kid_start(&k, w, true, 0, false, 1)) {
		kid_wait_ready(&k, 10000);
		kid_close(&k);
	}
	snprintf(path, sizeof path, "%s/left", root_path);
	cgroup_root_close(r);
	check(reap_killed(1, 5000) == 1, "root close: child killed");
	check(!exists(path), "root close: %s removed", path);
}

static void
move_self(const char *dir)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1 ||
	    write(fd, "0", 1) != 1)
		check(false, "cannot move into %s: %s", dir, strerror(errno));
	if (fd != -1)
		close(fd);
}

/*
 * ROOT shared with another process: once we are in ROOT/supervisor the
 * other one is an internal process, so +memory is refused (EBUSY): v2 must
 * fail, auto must fall back to none and say why.
 */
static void
check_shared_root_falls_back(void)
{
	char busy[] = "/sys/fs/cgroup/busy", sup[] = "/sys/fs/cgroup/busy/"
	    "supervisor", back[1024];
	struct cgroup_root *r;
	const char *why = "";
	pid_t pid;

	snprintf(back, sizeof back, "%s/supervisor", root_path);
	if (mkdir(busy, 0755) == -1) {
		check(false, "shared: mkdir %s: %s", busy, strerror(errno));
		return;
	}
	move_self(busy);
	if ((pid = fork()) == 0)
		for (;;)
			pause();
	r = cgroup_root_open(CGROUP_V2, "/proc", "/sys/fs/cgroup", NULL, &why);
	check(r == NULL && strstr(why, "subtree_control") != NULL,
	    "shared: v2 refused (%s)", why);
	cgroup_root_close(r);
	r = cgroup_root_open(CGROUP_AUTO, "/proc", "/sys/fs/cgroup", NULL, &why);
	check(r != NULL && cgroup_root_version(r) == CG_NONE &&
	    strstr(why, "/proc") != NULL, "shared: auto fell back to none "
	    "(%s)", why);
	cgroup_root_close(r);
	kill(pid, SIGKILL);
	reap_killed(1, 5000);
	move_self(back);
	rmdir(sup);
	check(rmdir(busy) == 0, "shared: clean up %s", busy);
}

int
main(int argc, char **argv)
{
	struct cgroup_root *r;
	struct cgroup *pool;
	char path[1024];
	double t0 = now_s();

	if (argc != 2 || strncmp(argv[1], "/sys/fs/cgroup/", 15) != 0) {
		fprintf(stderr, "usage: cgtest_v2 /sys/fs/cgroup/GROUP\n");
		return 2;
	}
	root_path = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	r = check_open();
	pool = cgroup_pool_open(r, "web", 256 * MIB);
	check(pool != NULL, "pool: web created");
	if (pool == NULL)
		return 1;
	check_groups_and_usage(pool);
	check_threshold_high(pool);
	check_oom(pool);
	check_kill_tree(pool);
	snprintf(path, sizeof path, "%s", cgroup_path(pool));
	cgroup_close(pool);
	check(!exists(path), "close: pool removed");
	cgroup_root_close(r);
	check_reopen_and_root_close();
	check_shared_root_falls_back();

	printf("cgtest_v2: %d failure(s), %.1fs\n", failures, now_s() - t0);
	return failures == 0 ? 0 : 1;
}
