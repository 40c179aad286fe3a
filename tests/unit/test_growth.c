/* SPDX-License-Identifier: MIT */
/*
 * test_growth.c - least-squares slopes on synthetic samples: exact lines,
 * ring wrap-around, noise, and the cases with too little to say.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "growth.h"

#define MIB		(1024.0 * 1024.0)
#define KIB		1024.0
#define SENTINEL	-12345.0

/* |a - b| <= tol, without libm. */
static void
assert_near(double a, double b, double tol)
{
	double d = a > b ? a - b : b - a;

	if (!(d <= tol))
		fail_msg("%.9g is not within %g of %.9g", a, tol, b);
}

static void
test_exact_line_per_second(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	/* 1 MiB/s from 200 MiB, sampled every 0.25 s. */
	for (i = 0; i < 10; i++)
		growth_add(&g, 0.25 * i, 0,
		    (uint64_t)(200 * MIB + 0.25 * i * MIB));
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, MIB, 1e-6);
}

static void
test_exact_line_per_task(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	uint64_t tasks;
	int i;

	(void)state;
	growth_init(&g);
	/* 4 KiB per task, tasks arriving unevenly. */
	for (i = 0, tasks = 0; i < 12; i++, tasks += (uint64_t)(i % 3) * 7)
		growth_add(&g, i, tasks, 50000000 + tasks * 4096);
	assert_int_equal(growth_per_task(&g, &slope), 0);
	assert_near(slope, 4 * KIB, 1e-9);
}

static void
test_large_clock_and_sizes_keep_precision(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	/* A month of uptime, 6 GiB resident, growing 3 bytes/s. */
	for (i = 0; i < GROWTH_POINTS; i++)
		growth_add(&g, 2.6e6 + i, 0, (6ULL << 30) + 3ULL * (uint64_t)i);
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, 3.0, 1e-6);
}

static void
test_shrinking_gives_negative_slope(void **state)
{
	struct growth g;
	double slope = SENTINEL;

	(void)state;
	growth_init(&g);
	growth_add(&g, 10, 0, 3000);
	growth_add(&g, 11, 0, 2000);
	growth_add(&g, 12, 0, 1000);
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, -1000, 1e-9);
}

static void
test_noisy_line_fits_least_squares(void **state)
{
	static const double noise[] = { 5, -3, 0, 4, -6 };
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	for (i = 0; i < 5; i++)
		growth_add(&g, i, 0, (uint64_t)(1000 + 100 * i + noise[i]));
	/* sum((x - 2) * noise) / sum((x - 2)^2)
	 * = (-10 + 3 + 0 + 4 - 12) / 10 */
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, 100 - 1.5, 1e-9);
}

static void
test_ring_keeps_only_the_last_points(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	/* Flat for a long while, then 2 KiB/s for a full ring (and then some):
	 * the flat past must be forgotten entirely. */
	for (i = 0; i < 100; i++)
		growth_add(&g, i, (uint64_t)i, 1 << 20);
	for (i = 100; i < 100 + GROWTH_POINTS + 5; i++)
		growth_add(&g, i, (uint64_t)i,
		    (uint64_t)(1 << 20) + (uint64_t)(i - 99) * 2048);
	assert_int_equal(g.n, GROWTH_POINTS);
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, 2048, 1e-9);
	assert_int_equal(growth_per_task(&g, &slope), 0);
	assert_near(slope, 2048, 1e-9);
}

static void
test_ring_partly_rewritten_mixes_old_and_new(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	/* One straight line across the wrap: ring order is irrelevant. */
	for (i = 0; i < GROWTH_POINTS + GROWTH_POINTS / 2; i++)
		growth_add(&g, 0.5 * i, 0, 4096 + 512 * (uint64_t)i);
	assert_int_equal(g.head, GROWTH_POINTS / 2);
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, 1024, 1e-9);
}

static void
test_too_few_points_leave_output(void **state)
{
	struct growth g;
	double slope = SENTINEL;

	(void)state;
	growth_init(&g);
	assert_int_equal(growth_per_sec(&g, &slope), -1);
	assert_int_equal(growth_per_task(&g, &slope), -1);
	growth_add(&g, 1, 1, 100);
	assert_int_equal(growth_per_sec(&g, &slope), -1);
	growth_add(&g, 2, 2, 200);
	assert_int_equal(growth_per_sec(&g, &slope), -1);
	assert_int_equal(growth_per_task(&g, &slope), -1);
	assert_near(slope, SENTINEL, 0);
	growth_add(&g, 3, 3, 300);
	assert_int_equal(growth_per_sec(&g, &slope), 0);
	assert_near(slope, 100, 1e-9);
}

static void
test_same_instant_leaves_output(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	/* 0.1 is inexact: a mean of 0.1s may differ from 0.1 by an ulp. */
	for (i = 0; i < 7; i++)
		growth_add(&g, 0.1, (uint64_t)i, 1000 * (uint64_t)i);
	assert_int_equal(growth_per_sec(&g, &slope), -1);
	assert_near(slope, SENTINEL, 0);
	assert_int_equal(growth_per_task(&g, &slope), 0);
	assert_near(slope, 1000, 1e-9);
}

static void
test_constant_tasks_leave_output(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	for (i = 0; i < GROWTH_POINTS; i++)
		growth_add(&g, i, 17, 1000 * (uint64_t)i);
	assert_int_equal(growth_per_task(&g, &slope), -1);
	assert_near(slope, SENTINEL, 0);
	assert_int_equal(growth_per_sec(&g, &slope), 0);

	/* Two distinct values are enough. */
	growth_add(&g, GROWTH_POINTS, 18, 1000ULL * GROWTH_POINTS);
	assert_int_equal(growth_per_task(&g, &slope), 0);
}

static void
test_init_forgets(void **state)
{
	struct growth g;
	double slope = SENTINEL;
	int i;

	(void)state;
	growth_init(&g);
	for (i = 0; i < 5; i++)
		growth_add(&g, i, (uint64_t)i, (uint64_t)i);
	growth_init(&g);
	assert_int_equal(g.n, 0);
	assert_int_equal(growth_per_sec(&g, &slope), -1);
}

/* The span is what the points reach back, before and after the ring wraps. */
static void
test_span_is_oldest_to_newest_point(void **state)
{
	struct growth g;
	int i;

	(void)state;
	growth_init(&g);
	assert_true(growth_span(&g) == 0.0);
	growth_add(&g, 100.0, 0, 1);
	assert_true(growth_span(&g) == 0.0);
	growth_add(&g, 100.5, 0, 2);
	assert_true(fabs(growth_span(&g) - 0.5) < 1e-9);
	for (i = 2; i < GROWTH_POINTS + 10; i++)
		growth_add(&g, 100.0 + 0.25 * i, 0, (uint64_t)i);
	/* The last GROWTH_POINTS points: i from 10 to GROWTH_POINTS + 9. */
	assert_true(fabs(growth_span(&g) - 0.25 * (GROWTH_POINTS - 1)) <
	    1e-9);
}

/* A growth that speeds up: 10 MB/s for 2 s, then 60 MB/s for 1 s. The
 * whole ring's slope lags behind; the last second's is the new rate, and
 * it is the last second's even after the ring wrapped. */
static void
test_recent_slope_follows_a_speed_up(void **state)
{
	struct growth g;
	double all = 0, recent = 0, bytes = 0;
	int i;

	(void)state;
	growth_init(&g);
	assert_int_equal(growth_recent_per_sec(&g, 1.0, &recent), -1);
	for (i = 0; i <= 30; i++) {
		if (i > 0)
			bytes += (i <= 20 ? 10e6 : 60e6) * 0.1;
		growth_add(&g, 500.0 + 0.1 * i, 0, (uint64_t)bytes);
	}
	assert_int_equal(growth_per_sec(&g, &all), 0);
	assert_int_equal(growth_recent_per_sec(&g, 1.0, &recent), 0);
	assert_true(all < 40e6);
	assert_true(fabs(recent - 60e6) < 1e3);
	for (; i <= 60; i++) {	/* wraps: 60 MB/s all along now */
		bytes += 60e6 * 0.1;
		growth_add(&g, 500.0 + 0.1 * i, 0, (uint64_t)bytes);
	}
	assert_int_equal(growth_recent_per_sec(&g, 0.5, &recent), 0);
	assert_true(fabs(recent - 60e6) < 1e3);
	/* A window holding fewer than 3 points says nothing. */
	recent = -1;
	assert_int_equal(growth_recent_per_sec(&g, 0.15, &recent), -1);
	assert_true(recent == -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_line_per_second),
		cmocka_unit_test(test_exact_line_per_task),
		cmocka_unit_test(test_large_clock_and_sizes_keep_precision),
		cmocka_unit_test(test_shrinking_gives_negative_slope),
		cmocka_unit_test(test_noisy_line_fits_least_squares),
		cmocka_unit_test(test_ring_keeps_only_the_last_points),
		cmocka_unit_test(test_ring_partly_rewritten_mixes_old_and_new),
		cmocka_unit_test(test_too_few_points_leave_output),
		cmocka_unit_test(test_same_instant_leaves_output),
		cmocka_unit_test(test_constant_tasks_leave_output),
		cmocka_unit_test(test_init_forgets),
		cmocka_unit_test(test_span_is_oldest_to_newest_point),
		cmocka_unit_test(test_recent_slope_follows_a_speed_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
