/* SPDX-License-Identifier: MIT */
/*
 * test_policy.c - the pure decisions: keep, recycle, kill, baseline; the
 * arithmetic of jitter, backoff and rapid failure; what an exit was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>

#include "heap.h"
#include "policy.h"

#define MiB (1024ULL * 1024)

static const struct policy_limits limits = {
	.recycle_memory = 200 * MiB,
	.kill_memory = 500 * MiB,
	.max_tasks = 100,
	.max_lifetime_ms = 60000,
	.recycle_samples = 2,
};

static struct policy_input
at(uint64_t memory)
{
	return (struct policy_input){ .memory = memory, .has_memory = true,
		.uptime_ms = 1000 };
}

static void
test_below_every_limit_keeps(void **state)
{
	struct policy_input in = at(100 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(over, 0);
}

static void
test_soft_limit_must_hold_for_recycle_samples(void **state)
{
	struct policy_input in = at(201 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(over, 1);
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_RECYCLE);
	assert_int_equal(why, REASON_MEMORY);
}

static void
test_a_dip_below_resets_the_run(void **state)
{
	struct policy_input hi = at(201 * MiB), lo = at(150 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	assert_int_equal(policy_check(&limits, &hi, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(policy_check(&limits, &lo, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(over, 0);
	assert_int_equal(policy_check(&limits, &hi, &over, &why),
	    VERDICT_KEEP);
}

static void
test_exactly_at_the_limit_is_not_over(void **state)
{
	struct policy_input in = at(200 * MiB);
	unsigned int over = 5;
	enum reason why = REASON_NONE;

	(void)state;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(over, 0);
}

static void
test_hard_limit_kills_at_once(void **state)
{
	struct policy_input in = at(501 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	in.first_sample = true;		/* even at the first look */
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KILL);
	assert_int_equal(why, REASON_KILL_MEMORY);
}

static void
test_over_at_first_sample_is_a_baseline_error(void **state)
{
	struct policy_input in = at(250 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	in.first_sample = true;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_BASELINE);
	assert_int_equal(over, 0);
}

static void
test_tasks_and_lifetime(void **state)
{
	struct policy_input in = at(1 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	in.tasks = 99;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KEEP);
	in.tasks = 100;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_RECYCLE);
	assert_int_equal(why, REASON_TASKS);
	in.tasks = 0;
	in.uptime_ms = 60000;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_RECYCLE);
	assert_int_equal(why, REASON_LIFETIME);
}

static void
test_unknown_memory_never_recycles_for_memory(void **state)
{
	struct policy_input in = at(900 * MiB);
	unsigned int over = 1;
	enum reason why = REASON_NONE;

	(void)state;
	in.has_memory = false;
	assert_int_equal(policy_check(&limits, &in, &over, &why),
	    VERDICT_KEEP);
	assert_int_equal(over, 0);
}

static void
test_zero_limits_are_off(void **state)
{
	struct policy_limits off = { .recycle_samples = 1 };
	struct policy_input in = at(900 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	in.tasks = 1000000;
	in.uptime_ms = 1000000000;
	assert_int_equal(policy_check(&off, &in, &over, &why), VERDICT_KEEP);
	assert_int_equal(policy_prefilter(&off), 0);
}

/* recycle_scope = children: memory and lifetime limits go to the
 * children, kill_memory to both, tasks to the master only. */
static void
test_split_scope(void **state)
{
	struct policy_limits m, c;
	struct policy_input in = at(300 * MiB);
	unsigned int over = 0;
	enum reason why = REASON_NONE;

	(void)state;
	policy_split_scope(&limits, &m, &c);
	assert_int_equal(m.recycle_memory, 0);
	assert_int_equal(m.max_lifetime_ms, 0);
	assert_int_equal(m.kill_memory, 500 * MiB);
	assert_int_equal(m.max_tasks, 100);
	assert_int_equal(c.recycle_memory, 200 * MiB);
	assert_int_equal(c.kill_memory, 500 * MiB);
	assert_int_equal(c.max_lifetime_ms, 60000);
	assert_int_equal(c.max_tasks, 0);
	assert_int_equal(c.recycle_samples, 2);
	/* The master over recycle_memory is kept; its prefilter is kill. */
	assert_int_equal(policy_check(&m, &in, &over, &why), VERDICT_KEEP);
	assert_int_equal(policy_prefilter(&m), 500 * MiB);
	/* A child over it at its first sample is the baseline error. */
	in.first_sample = true;
	assert_int_equal(policy_check(&c, &in, &over, &why),
	    VERDICT_BASELINE);
	/* In place, and NULL outputs. */
	m = limits;
	policy_split_scope(&m, &m, NULL);
	assert_int_equal(m.recycle_memory, 0);
	policy_split_scope(&limits, NULL, NULL);
}

static void
test_prefilter_is_the_lowest_limit(void **state)
{
	struct policy_limits l = limits;

	(void)state;
	assert_int_equal(policy_prefilter(&l), 200 * MiB);
	l.recycle_memory = 0;
	assert_int_equal(policy_prefilter(&l), 500 * MiB);
	l.recycle_memory = 600 * MiB;
	assert_int_equal(policy_prefilter(&l), 500 * MiB);
}

static void
test_jitter_only_lowers_and_keeps_small_counts(void **state)
{
	(void)state;
	assert_int_equal(policy_jitter(1000, 100000, 0.0), 1000);
	assert_int_equal(policy_jitter(1000, 100000, 0.5), 950);
	assert_int_equal(policy_jitter(1000, 100000, 0.9999999), 901);
	assert_int_equal(policy_jitter(5, 50000, 0.99), 5);	/* 5% of 5 */
	assert_int_equal(policy_jitter(0, 100000, 0.5), 0);	/* off stays off */
	assert_int_equal(policy_jitter(1, 1000000, 0.99), 1);
	assert_true(policy_jitter(200 * MiB, 50000, 0.7) < 200 * MiB);
	assert_true(policy_jitter(200 * MiB, 50000, 0.7) >= 190 * MiB);
}

static void
test_backoff_doubles_up_to_the_cap(void **state)
{
	(void)state;
	assert_int_equal(policy_backoff(100, 1, 60000), 100);
	assert_int_equal(policy_backoff(100, 2, 60000), 200);
	assert_int_equal(policy_backoff(100, 4, 60000), 800);
	assert_int_equal(policy_backoff(100, 40, 60000), 60000);
	assert_int_equal(policy_backoff(90000, 3, 60000), 90000);
}

static void
test_rapid_fail_counts_only_the_window(void **state)
{
	double t[] = { 1.0, 2.0, 3.0, 50.0, 51.0, 52.0 };

	(void)state;
	assert_false(policy_rapid_fail(t, 6, 52.0, 10.0, 3));	/* 3 recent */
	assert_true(policy_rapid_fail(t, 6, 52.0, 10.0, 2));
	assert_true(policy_rapid_fail(t, 6, 52.0, 100.0, 5));
	assert_false(policy_rapid_fail(t, 6, 52.0, 100.0, 6));
	assert_false(policy_rapid_fail(t, 6, 52.0, 100.0, 0));	/* off */
}

static void
test_reason_names_and_kinds(void **state)
{
	(void)state;
	assert_string_equal(reason_name(REASON_MEMORY), "memory");
	assert_string_equal(reason_name(REASON_KILL_MEMORY), "kill_memory");
	assert_string_equal(reason_name(REASON_OOM), "oom");
	assert_true(reason_is_recycle(REASON_TASKS));
	assert_false(reason_is_recycle(REASON_CRASH));
	assert_false(reason_is_recycle(REASON_SHUTDOWN));
	assert_string_equal(reason_name((enum reason)999), "?");
}

#define MiB	(1024ULL * 1024)

struct item {
	struct heap_node node;
	int		 id;
};

static void
test_heap_orders_by_key_then_arrival(void **state)
{
	struct item it[200];
	struct heap h = { 0 };
	struct heap_node *n;
	double last = 1e300;
	uint64_t last_seq = 0;
	int i;

	(void)state;
	for (i = 0; i < 200; i++) {
		it[i].id = i;
		heap_push(&h, &it[i].node, (double)((i * 37) % 11));
	}
	/* Remove some from the middle, change some keys. */
	for (i = 0; i < 200; i += 7)
		heap_remove(&h, &it[i].node);
	for (i = 3; i < 200; i += 7)
		heap_update(&h, &it[i].node, 5.5);
	assert_int_equal(heap_size(&h), 200 - 29);
	while ((n = heap_pop(&h)) != NULL) {
		assert_true(n->key <= last);
		if (n->key == last)
			assert_true(n->seq > last_seq);
		last = n->key;
		last_seq = n->seq;
	}
	assert_null(heap_top(&h));
	heap_free(&h);
}

static void
test_overshoot_bound_and_condemned_floor(void **state)
{
	struct policy_limits l = { .recycle_memory = 128 * MiB };

	(void)state;
	assert_int_equal(policy_overshoot_bound(128 * MiB, 250000), 160 * MiB);
	assert_int_equal(policy_overshoot_bound(128 * MiB, 0), 0);	/* off */
	assert_int_equal(policy_overshoot_bound(0, 250000), 0);
	/* A condemned worker needs smaps only near the overshoot bound or
	 * kill_memory, whichever is lower, never near recycle_memory. */
	assert_int_equal(policy_condemned_floor(&l, 250000), 160 * MiB);
	l.kill_memory = 150 * MiB;
	assert_int_equal(policy_condemned_floor(&l, 250000), 150 * MiB);
	l.kill_memory = 0;
	assert_int_equal(policy_condemned_floor(&l, 0), 0);
}

static void
test_urgency_is_the_predicted_fraction_of_the_limit(void **state)
{
	double fast, slow, over;

	(void)state;
	/* Same memory: the faster grower is more urgent. */
	fast = policy_urgency(130 * MiB, 128 * MiB, 60.0 * MiB, 0.5);
	slow = policy_urgency(130 * MiB, 128 * MiB, 1.0 * MiB, 0.5);
	assert_true(fast > slow);
	/* Further over, not growing: more urgent than a little over. */
	over = policy_urgency(150 * MiB, 128 * MiB, 0.0, 0.5);
	assert_true(over > slow);
	assert_true(policy_urgency(64 * MiB, 128 * MiB, -5.0, 1.0) == 0.5);
	assert_true(policy_urgency(64 * MiB, 0, 1.0, 1.0) == 0.0);
}

static void
test_start_horizon_is_the_slowest_recent_start(void **state)
{
	double ring[8] = { 0 };
	size_t next = 0, n = 0, i;

	(void)state;
	assert_true(policy_start_horizon(ring, 8, 0, 0) == 0.0);
	/* Quiet starts first, then slow ones under load: the slow ones. */
	for (i = 0; i < 6; i++, n++)
		ring[next++ % 8] = 0.5;
	ring[next++ % 8] = 1.4;
	n++;
	assert_true(policy_start_horizon(ring, 8, n, next % 8) == 1.4);
	/* Four quiet starts later, the slow one is forgotten. */
	for (i = 0; i < 4; i++, n++)
		ring[next++ % 8] = 0.6;
	assert_true(policy_start_horizon(ring, 8, 8, next % 8) == 0.6);
	/* Wrapping around the ring. */
	ring[next++ % 8] = 2.0;
	assert_true(policy_start_horizon(ring, 8, 8, next % 8) == 2.0);
}

static void
test_predicted_crossing(void **state)
{
	(void)state;
	/* 100M growing 60M/s crosses 128M in 0.47 s. */
	assert_true(policy_predict_cross(100 * MiB, 128 * MiB, 60.0 * MiB, 0.5));
	assert_false(policy_predict_cross(100 * MiB, 128 * MiB, 60.0 * MiB,
	    0.4));
	/* Not growing, shrinking, already over, below a quarter: no. */
	assert_false(policy_predict_cross(100 * MiB, 128 * MiB, 0.0, 10.0));
	assert_false(policy_predict_cross(100 * MiB, 128 * MiB, -1.0 * MiB,
	    10.0));
	assert_false(policy_predict_cross(130 * MiB, 128 * MiB, 60.0 * MiB,
	    1.0));
	assert_false(policy_predict_cross(31 * MiB, 128 * MiB, 1000.0 * MiB,
	    1.0));
	assert_true(policy_predict_cross(33 * MiB, 128 * MiB, 1000.0 * MiB,
	    1.0));
	assert_false(policy_predict_cross(100 * MiB, 0, 60.0 * MiB, 1.0));
}

static void
test_max_recycling_auto(void **state)
{
	(void)state;
	assert_int_equal(policy_max_recycling(0, 1, 2), 1);
	assert_int_equal(policy_max_recycling(0, 4, 2), 2);
	assert_int_equal(policy_max_recycling(0, 5, 8), 3);
	assert_int_equal(policy_max_recycling(0, 100, 8), 8);
	assert_int_equal(policy_max_recycling(0, 100, 1), 2);
	assert_int_equal(policy_max_recycling(0, 0, 4), 1);
	assert_int_equal(policy_max_recycling(3, 100, 8), 3);	/* as set */
}

static void
test_median(void **state)
{
	double a[] = { 0.9, 0.1, 0.5 }, b[] = { 4.0, 1.0, 3.0, 2.0 };

	(void)state;
	assert_true(policy_median(a, 3) == 0.5);
	assert_true(policy_median(b, 4) == 2.5);
	assert_true(policy_median(NULL, 0) == 0.0);
}

/* ---- exits ---- */

#define EXITED(n)	W_EXITCODE((n), 0)
#define KILLED(sig)	W_EXITCODE(0, (sig))

/* A ready worker, up for 10s of a min_uptime of 5s, that exited 0. */
static struct exit_facts
exit_of(void)
{
	return (struct exit_facts){ .status = EXITED(0), .ready = true,
		.uptime_ms = 10000, .min_uptime_ms = 5000 };
}

static void
assert_exit(const struct exit_facts *f, enum exit_kind kind,
    enum reason reason, bool failure, bool failed_start, bool oom,
    bool count_recycle)
{
	struct exit_class c = policy_classify_exit(f);

	assert_int_equal(c.kind, kind);
	assert_string_equal(reason_name(c.reason), reason_name(reason));
	assert_int_equal(c.failure, failure);
	assert_int_equal(c.failed_start, failed_start);
	assert_int_equal(c.oom, oom);
	assert_int_equal(c.count_recycle, count_recycle);
}

static void
test_exit_asked_for_is_a_recycle_a_kill_or_an_exit(void **state)
{
	struct exit_facts f = exit_of();
	static const enum reason recycles[] = { REASON_MEMORY, REASON_TASKS,
		REASON_LIFETIME, REASON_REQUEST, REASON_STOPPING,
		REASON_MANUAL, REASON_RELOAD, REASON_WATCHDOG,
		REASON_POOL_MEMORY };
	size_t i;

	(void)state;
	f.stopping = true;
	for (i = 0; i < sizeof recycles / sizeof *recycles; i++) {
		f.stop_reason = recycles[i];
		assert_exit(&f, EXIT_RECYCLE, recycles[i], false, false,
		    false, true);
	}
	/* Killed over kill_memory: a kill, not counted as a recycle. */
	f.stop_reason = REASON_KILL_MEMORY;
	f.status = KILLED(SIGKILL);
	assert_exit(&f, EXIT_KILL, REASON_KILL_MEMORY, false, false, false,
	    false);
	/* ... even when the group counted an OOM kill meanwhile. */
	f.oom_kill = true;
	assert_exit(&f, EXIT_KILL, REASON_KILL_MEMORY, false, false, false,
	    false);
	/* Scaled down or shut down: a plain exit, whatever its status. */
	f = exit_of();
	f.stopping = true;
	f.stop_reason = REASON_SCALE;
	f.status = EXITED(3);
	assert_exit(&f, EXIT_EXIT, REASON_SCALE, false, false, false, false);
	f.stop_reason = REASON_SHUTDOWN;
	f.ready = false;	/* stopped while starting: no failed start */
	assert_exit(&f, EXIT_EXIT, REASON_SHUTDOWN, false, false, false,
	    false);
	assert_string_equal(exit_kind_name(EXIT_RECYCLE), "recycle");
	assert_string_equal(exit_kind_name(EXIT_KILL), "kill");
	assert_string_equal(exit_kind_name(EXIT_EXIT), "exit");
	assert_string_equal(exit_kind_name(EXIT_OOM), "oom");
	assert_string_equal(exit_kind_name(EXIT_CRASH), "crash");
}

static void
test_exit_unasked_is_a_crash(void **state)
{
	struct exit_facts f = exit_of();

	(void)state;
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, false, false, false);
	f.status = KILLED(SIGSEGV);
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, false, false, false);
	/* Before READY=1: a failed start too. */
	f.ready = false;
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, true, false, false);
	/* SIGKILL from someone else: no OOM kill counted, a crash. */
	f.ready = true;
	f.status = KILLED(SIGKILL);
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, false, false, false);
	/* An OOM kill counted, but the worker exited on its own. */
	f.oom_kill = true;
	f.status = EXITED(1);
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, false, false, false);
}

static void
test_exit_oom_kill_fails_only_a_start(void **state)
{
	struct exit_facts f = exit_of();

	(void)state;
	f.oom_kill = true;
	f.status = KILLED(SIGKILL);
	assert_exit(&f, EXIT_OOM, REASON_OOM, false, false, true, true);
	/* During start-up it would loop: a failure, still an OOM. */
	f.ready = false;
	assert_exit(&f, EXIT_OOM, REASON_OOM, true, true, true, true);
	/* While draining, the SIGKILL may be ours: an asked-for exit. */
	f.ready = true;
	f.stopping = true;
	f.stop_reason = REASON_MEMORY;
	assert_exit(&f, EXIT_RECYCLE, REASON_MEMORY, false, false, false,
	    true);
}

static void
test_exit_failed_start_says_why(void **state)
{
	struct exit_facts f = exit_of();

	(void)state;
	/* No READY=1 within ready_timeout: killed by us, still a failure. */
	f.ready = false;
	f.failed = true;
	f.stopping = true;
	f.stop_reason = REASON_READY_TIMEOUT;
	f.status = KILLED(SIGKILL);
	assert_exit(&f, EXIT_CRASH, REASON_READY_TIMEOUT, true, true, false,
	    false);
	f.oom_kill = true;	/* our SIGKILL, not the OOM killer's */
	assert_exit(&f, EXIT_CRASH, REASON_READY_TIMEOUT, true, true, false,
	    false);
	/* The exec failed: it exits 127 on its own. */
	f = exit_of();
	f.ready = false;
	f.failed = true;
	f.status = EXITED(127);
	assert_exit(&f, EXIT_CRASH, REASON_CRASH, true, true, false, false);
	/* ... and stays a failure when it was being stopped anyway. */
	f.stopping = true;
	f.stop_reason = REASON_SCALE;
	assert_exit(&f, EXIT_CRASH, REASON_SCALE, true, true, false, false);
}

static void
test_exit_after_min_uptime_resets_the_backoff(void **state)
{
	struct exit_facts f = exit_of();

	(void)state;
	f.status = EXITED(1);
	assert_true(policy_classify_exit(&f).reset_failures);
	f.uptime_ms = f.min_uptime_ms;
	assert_true(policy_classify_exit(&f).reset_failures);
	f.uptime_ms = f.min_uptime_ms - 1;
	assert_false(policy_classify_exit(&f).reset_failures);
	/* Never ready: however long it took, the backoff goes on. */
	f.uptime_ms = 60000;
	f.ready = false;
	assert_false(policy_classify_exit(&f).reset_failures);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_below_every_limit_keeps),
		cmocka_unit_test(test_split_scope),
		cmocka_unit_test(test_soft_limit_must_hold_for_recycle_samples),
		cmocka_unit_test(test_a_dip_below_resets_the_run),
		cmocka_unit_test(test_exactly_at_the_limit_is_not_over),
		cmocka_unit_test(test_hard_limit_kills_at_once),
		cmocka_unit_test(test_over_at_first_sample_is_a_baseline_error),
		cmocka_unit_test(test_tasks_and_lifetime),
		cmocka_unit_test(test_unknown_memory_never_recycles_for_memory),
		cmocka_unit_test(test_zero_limits_are_off),
		cmocka_unit_test(test_prefilter_is_the_lowest_limit),
		cmocka_unit_test(test_jitter_only_lowers_and_keeps_small_counts),
		cmocka_unit_test(test_backoff_doubles_up_to_the_cap),
		cmocka_unit_test(test_rapid_fail_counts_only_the_window),
		cmocka_unit_test(test_reason_names_and_kinds),
		cmocka_unit_test(test_overshoot_bound_and_condemned_floor),
		cmocka_unit_test(test_urgency_is_the_predicted_fraction_of_the_limit),
		cmocka_unit_test(test_start_horizon_is_the_slowest_recent_start),
		cmocka_unit_test(test_predicted_crossing),
		cmocka_unit_test(test_max_recycling_auto),
		cmocka_unit_test(test_median),
		cmocka_unit_test(test_heap_orders_by_key_then_arrival),
		cmocka_unit_test(
		    test_exit_asked_for_is_a_recycle_a_kill_or_an_exit),
		cmocka_unit_test(test_exit_unasked_is_a_crash),
		cmocka_unit_test(test_exit_oom_kill_fails_only_a_start),
		cmocka_unit_test(test_exit_failed_start_says_why),
		cmocka_unit_test(test_exit_after_min_uptime_resets_the_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
