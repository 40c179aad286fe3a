/* SPDX-License-Identifier: MIT */
/*
 * spawn.c - the child side of starting a worker, and the status pipe.
 *
 * Order in the child: default signal dispositions and an empty mask (libev
 * blocks some, and an ignored SIGPIPE would survive exec), a new session
 * (so -pid reaches the whole tree and the terminal's Ctrl-C does not),
 * cgroup placement, standard descriptors, listening sockets at 3..,
 * everything else close-on-exec, directory, the capability bounding set
 * (dropping needs CAP_SETPCAP: before setuid), credentials (groups, gid,
 * uid: in that order, while we still may), PR_SET_PDEATHSIG (after the
 * last credential change, which clears it; then check that the parent did
 * not die already), PR_SET_NO_NEW_PRIVS, exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>
#ifdef HAVE_LINUX_SCHED_H
#include <linux/sched.h>
#endif

#include "spawn.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum step { ST_SIGNALS, ST_SETSID, ST_PDEATHSIG, ST_CGROUP, ST_STDIO,
	ST_FDS, ST_CHDIR, ST_SETGROUPS, ST_SETGID, ST_SETUID, ST_EXEC,
	ST_CAPBSET, ST_NO_NEW_PRIVS };

static const char *const step_names[] = {
	[ST_SIGNALS] = "signals", [ST_SETSID] = "setsid",
	[ST_PDEATHSIG] = "pdeathsig", [ST_CGROUP] = "cgroup placement",
	[ST_STDIO] = "stdio", [ST_FDS] = "listening sockets",
	[ST_CHDIR] = "chdir", [ST_SETGROUPS] = "setgroups",
	[ST_SETGID] = "setgid", [ST_SETUID] = "setuid", [ST_EXEC] = "exec",
	[ST_CAPBSET] = "capability bounding set",
	[ST_NO_NEW_PRIVS] = "no_new_privs",
};

struct status_msg {
	int32_t		 err;
	int32_t		 step;
};

/* Decimal pid into buf (no libc formatting: async-signal-safe). */
static void
put_pid(char *buf, pid_t pid)
{
	char tmp[16];
	size_t n = 0, i;
	unsigned long v = (unsigned long)pid;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
}

static _Noreturn void
child_fail(int fd, enum step step)
{
	struct status_msg m = { errno, step };

	if (write(fd, &m, sizeof m) == -1) {
		/* nothing left to tell anyone */
	}
	_exit(127);
}

/* Move the listening sockets to 3, 4, ...: first above every target so
 * that no dup2 overwrites a source still needed. */
static int
child_fds(const struct spawn_req *r)
{
	int high[64], base = 3 + (int)r->nfds + 1;
	size_t i;

	if (r->nfds > 64) {
		errno = EMFILE;
		return -1;
	}
	for (i = 0; i < r->nfds; i++) {
		high[i] = fcntl(r->fds[i], F_DUPFD_CLOEXEC, base);
		if (high[i] == -1)
			return -1;
	}
	for (i = 0; i < r->nfds; i++)
		if (dup2(high[i], 3 + (int)i) == -1)	/* clears CLOEXEC */
			return -1;
	/* Whatever else we inherited stays out of the worker. */
	return spawn_close_from(3 + (int)r->nfds, true);
}

/* One descriptor at or above low: closed, or marked close-on-exec. */
static void
close_one(int fd, bool cloexec)
{
	int fl;

	if (!cloexec)
		(void)close(fd);
	else if ((fl = fcntl(fd, F_GETFD)) != -1 && !(fl & FD_CLOEXEC))
		(void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

/*
 * Without close_range: the entries of /proc/self/fd, read with getdents64
 * (opendir would allocate). -1 when /proc cannot be read.
 */
static int
close_from_proc(int low, bool cloexec)
{
	char buf[4096];
	long n, off;
	int dir, fd;

	if ((dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (off = 0; off < n;) {
			const char *name = buf + off + 19;	/* d_name */
			unsigned short reclen;

			memcpy(&reclen, buf + off + 16, sizeof reclen);
			off += reclen;
			if (*name < '0' || *name > '9')
				continue;
			for (fd = 0; *name >= '0' && *name <= '9'; name++)
				fd = fd * 10 + (*name - '0');
			if (fd >= low && fd != dir)
				close_one(fd, cloexec);
		}
	}
	(void)close(dir);
	return n == 0 ? 0 : -1;
}

int
spawn_close_from(int low, bool cloexec)
{
	struct rlimit rl;
	rlim_t fd, max;

	if (syscall(SYS_close_range, (unsigned int)low, ~0U,
	    cloexec ? CLOSE_RANGE_CLOEXEC : 0U) == 0)
		return 0;
	/* Before Linux 5.9 (ENOSYS), or 5.9/5.10 without the flag
	 * (EINVAL): the same, one descriptor at a time. */
	if (errno != ENOSYS && errno != EINVAL)
		return -1;
	if (close_from_proc(low, cloexec) == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	max = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1U << 20) ?
	    (1U << 20) : rl.rlim_cur;
	for (fd = (rlim_t)low; fd < max; fd++)
		close_one((int)fd, cloexec);
	return 0;
}

/* Drop every capability not in keep from the bounding set. */
static int
drop_bounding_set(uint64_t keep)
{
	int cap;

	/* The kernel knows caps 0..cap_last_cap; PR_CAPBSET_READ fails
	 * with EINVAL above that. */
	for (cap = 0; cap < 64 && prctl(PR_CAPBSET_READ, cap) >= 0; cap++)
		if (!(keep & ((uint64_t)1 << cap)) &&
		    prctl(PR_CAPBSET_DROP, cap) == -1)
			return -1;
	return 0;
}

static _Noreturn void
child(const struct spawn_req *r, int status_fd, pid_t parent, bool placed)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int sig, null, fd, i;

	/* Keep the status pipe above the descriptors the worker gets. */
	if ((fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 3 + (int)r->nfds + 1)) != -1)
		status_fd = fd;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) == -1)
		child_fail(status_fd, ST_SIGNALS);
	if (setsid() == -1)
		child_fail(status_fd, ST_SETSID);
	if (!placed && r->cgroup_join_fd != -1 &&
	    write(r->cgroup_join_fd, "0", 1) == -1)
		child_fail(status_fd, ST_CGROUP);
	for (i = 0; i < 2; i++)
		if (r->pid_vars[i] != NULL)
			put_pid(strchr(r->pid_vars[i], '=') + 1, getpid());

	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1 ||
	    dup2(null, STDIN_FILENO) == -1 ||
	    dup2(r->stdout_fd != -1 ? r->stdout_fd : null, STDOUT_FILENO) == -1 ||
	    dup2(r->stderr_fd != -1 ? r->stderr_fd : null, STDERR_FILENO) == -1)
		child_fail(status_fd, ST_STDIO);
	if (child_fds(r) == -1)
		child_fail(status_fd, ST_FDS);
	if (r->nofile >= 0) {
		/* Workers get the limit we were started with: select()-based
		 * programs break on descriptors above 1023. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = (rlim_t)r->nofile;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	if (r->directory != NULL && chdir(r->directory) == -1)
		child_fail(status_fd, ST_CHDIR);
	if (r->drop_caps && drop_bounding_set(r->capabilities) == -1)
		child_fail(status_fd, ST_CAPBSET);
	if (r->set_ids) {
		if (setgroups(r->ngroups, r->groups) == -1)
			child_fail(status_fd, ST_SETGROUPS);
		if (setresgid(r->gid, r->gid, r->gid) == -1)
			child_fail(status_fd, ST_SETGID);
		if (setresuid(r->uid, r->uid, r->uid) == -1)
			child_fail(status_fd, ST_SETUID);
	}
	/* A credential change clears the parent-death signal: set it after
	 * the last one, then make sure the parent did not die before. */
	if (r->pdeathsig != 0) {
		if (prctl(PR_SET_PDEATHSIG, r->pdeathsig) == -1)
			child_fail(status_fd, ST_PDEATHSIG);
		if (getppid() != parent) {
			errno = ESRCH;
			child_fail(status_fd, ST_PDEATHSIG);
		}
	}
	if (r->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		child_fail(status_fd, ST_NO_NEW_PRIVS);
	execve(r->argv[0], r->argv, r->envp);
	child_fail(status_fd, ST_EXEC);
}

/*
 * clone3 into the cgroup (cgroup_fd != -1) and/or as our parent's child
 * (sibling); -1 with errno when the kernel cannot. With CLONE_PARENT the
 * kernel takes the exit signal from the caller's own (SIGCHLD) and wants
 * 0 here.
 */
static pid_t
clone3_flags(int cgroup_fd, bool sibling)
{
#if defined(HAVE_DECL_SYS_CLONE3) && HAVE_DECL_SYS_CLONE3 && \
    defined(CLONE_INTO_CGROUP)
	struct clone_args a;

	memset(&a, 0, sizeof a);
	a.flags = sibling ? CLONE_PARENT : 0;
	a.exit_signal = sibling ? 0 : SIGCHLD;
	if (cgroup_fd != -1) {
		a.flags |= CLONE_INTO_CGROUP;
		a.cgroup = (uint64_t)cgroup_fd;
	}
	return (pid_t)syscall(SYS_clone3, &a, sizeof a);
#else
	(void)cgroup_fd;
	(void)sibling;
	errno = ENOSYS;
	return -1;
#endif
}

pid_t
spawn_fork(const struct spawn_req *r, int status_wfd, pid_t parent,
    bool sibling)
{
	sigset_t all, old;
	bool placed = false;
	pid_t pid = -1;
	int saved;

	/*
	 * Every signal blocked across the fork: one that arrived in the child
	 * before child() reset the handlers would run ours (or be ignored, in
	 * the spawn server) and be lost, and a drain signal sent at once
	 * would then wait for drain_timeout's SIGKILL. Blocked, it stays
	 * pending until the child has default handlers and unblocks.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	if (r->cgroup_dir_fd != -1) {
		pid = clone3_flags(r->cgroup_dir_fd, sibling);
		placed = pid != -1;
	}
	if (pid == -1 && sibling)
		pid = clone3_flags(-1, true);
	if (pid == -1 && sibling && errno == ENOSYS)	/* before Linux 5.3 */
		pid = (pid_t)syscall(SYS_clone, (unsigned long)CLONE_PARENT,
		    0UL, 0UL, 0UL, 0UL);
	if (pid == -1 && !sibling)
		pid = fork();
	if (pid == 0)
		child(r, status_wfd, parent, placed);
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return pid;
}

pid_t
spawn_start(const struct spawn_req *r, int *status_fd)
{
	pid_t pid;
	int p[2], saved;

	/* Non-blocking for our end; an 8-byte write to an empty pipe never
	 * blocks the child anyway. */
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	pid = spawn_fork(r, p[1], getpid(), false);
	saved = errno;
	close(p[1]);
	if (pid == -1) {
		close(p[0]);
		errno = saved;
		return -1;
	}
	*status_fd = p[0];
	return pid;
}

int
spawn_status(int fd, struct spawn_error *e)
{
	struct status_msg m;
	ssize_t n;

	do
		n = read(fd, &m, sizeof m);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return 0;
	e->err = 0;
	e->step = NULL;
	if (n == (ssize_t)sizeof m) {
		e->err = m.err;
		e->step = (m.step >= 0 && m.step <= ST_NO_NEW_PRIVS) ?
		    step_names[m.step] : "set-up";
	} else if (n != 0) {
		e->err = n == -1 ? errno : EPROTO;
		e->step = "status pipe";
	}
	return 1;
}
