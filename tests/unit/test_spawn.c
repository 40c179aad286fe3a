/* SPDX-License-Identifier: MIT */
/*
 * test_spawn.c - spawn_close_from() where close_range is missing: a
 * seccomp filter makes close_range fail with ENOSYS (as before Linux 5.9),
 * and in a second case getdents64 fail too, so that the /proc/self/fd walk
 * and then the walk up to the open files limit are what is tested. Each
 * case runs in a forked child (filters cannot be removed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#define NFDS	8

/* Fail the listed syscalls with ENOSYS; 0, or -1. */
static int
deny(long nr1, long nr2)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr1, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr2, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/*
 * In the child: open NFDS descriptors, close (or mark) from the middle
 * one, check each. Exit status: 0 ok, 2 set-up, 3 call failed, 4 a
 * descriptor below low touched, 5 one at or above low not handled.
 */
static _Noreturn void
child(bool no_getdents, bool cloexec)
{
	struct rlimit rl = { 256, 256 };
	int fds[NFDS], low, i, fl;

	/* The limit walk then stays short. */
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		_exit(2);
	for (i = 0; i < NFDS; i++)
		if ((fds[i] = open("/dev/null", O_RDONLY)) == -1)
			_exit(2);
	low = fds[NFDS / 2];
	if (deny(SYS_close_range, no_getdents ? SYS_getdents64 :
	    SYS_close_range) == -1)
		_exit(2);
	/* The filter works: close_range is "missing". */
	if (syscall(SYS_close_range, 1000U, 1001U, 0U) != -1 || errno != ENOSYS)
		_exit(2);
	if (spawn_close_from(low, cloexec) == -1)
		_exit(3);
	for (i = 0; i < NFDS; i++) {
		fl = fcntl(fds[i], F_GETFD);
		if (fds[i] < low && (fl == -1 || (fl & FD_CLOEXEC)))
			_exit(4);
		if (fds[i] >= low && (cloexec ? fl == -1 ||
		    !(fl & FD_CLOEXEC) : fl != -1))
			_exit(5);
	}
	_exit(0);
}

static void
run(bool no_getdents, bool cloexec)
{
	int st;
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		child(no_getdents, cloexec);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_close_via_proc(void **state)
{
	(void)state;
	run(false, false);
}

static void
test_cloexec_via_proc(void **state)
{
	(void)state;
	run(false, true);
}

static void
test_close_via_limit(void **state)
{
	(void)state;
	run(true, false);
}

static void
test_cloexec_via_limit(void **state)
{
	(void)state;
	run(true, true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_via_proc),
		cmocka_unit_test(test_cloexec_via_proc),
		cmocka_unit_test(test_close_via_limit),
		cmocka_unit_test(test_cloexec_via_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
