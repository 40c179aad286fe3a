/* SPDX-License-Identifier: MIT */
/*
 * test_pidmap.c - the pid map past its first sizes, deletions inside probe
 * runs (backward shift), and replacement of a pid's value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pidmap.h"

#define N	10000

static void *
val(pid_t pid)
{
	return (void *)((uintptr_t)pid * 8 + 8);
}

static void
test_grows(void **state)
{
	struct pidmap m = { 0 };
	pid_t pid;

	(void)state;
	assert_null(pidmap_get(&m, 1));
	pidmap_del(&m, 1);			/* empty: nothing */
	for (pid = 2; pid < 2 + N; pid++)
		pidmap_add(&m, pid, val(pid));
	assert_int_equal(m.n, N);
	/* At most three quarters full, so a look-up stays short. */
	assert_true(m.n * 4 <= m.cap * 3);
	for (pid = 2; pid < 2 + N; pid++)
		assert_ptr_equal(pidmap_get(&m, pid), val(pid));
	assert_null(pidmap_get(&m, 2 + N));
	assert_null(pidmap_get(&m, 0));
	pidmap_clear(&m);
	assert_null(pidmap_get(&m, 2));
}

static void
test_delete_keeps_others(void **state)
{
	struct pidmap m = { 0 };
	pid_t pid;

	(void)state;
	/* Multiples of 64 collide in a small table: long probe runs. */
	for (pid = 64; pid <= 64 * 40; pid += 64)
		pidmap_add(&m, pid, val(pid));
	for (pid = 1; pid < 300; pid++)
		pidmap_add(&m, pid * 7 + 100000, val(pid));
	for (pid = 64; pid <= 64 * 40; pid += 128)
		pidmap_del(&m, pid);
	for (pid = 64; pid <= 64 * 40; pid += 64)
		if ((pid / 64) % 2 == 1)
			assert_null(pidmap_get(&m, pid));
		else
			assert_ptr_equal(pidmap_get(&m, pid), val(pid));
	for (pid = 1; pid < 300; pid++)
		assert_ptr_equal(pidmap_get(&m, pid * 7 + 100000), val(pid));
	assert_int_equal(m.n, 20 + 299);
	pidmap_clear(&m);
}

static void
test_replace(void **state)
{
	struct pidmap m = { 0 };

	(void)state;
	pidmap_add(&m, 42, val(1));
	pidmap_add(&m, 42, val(2));
	assert_int_equal(m.n, 1);
	assert_ptr_equal(pidmap_get(&m, 42), val(2));
	pidmap_del(&m, 42);
	assert_int_equal(m.n, 0);
	assert_null(pidmap_get(&m, 42));
	pidmap_clear(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows),
		cmocka_unit_test(test_delete_keeps_others),
		cmocka_unit_test(test_replace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
