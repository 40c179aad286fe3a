/* SPDX-License-Identifier: MIT */
/*
 * test_units.c - the value syntax of the configuration: every parser over
 * tables of good and bad inputs (units, bounds, overflow, garbage, empty),
 * and the short human formats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util.h"

#define KiB	((uint64_t)1 << 10)
#define MiB	((uint64_t)1 << 20)
#define GiB	((uint64_t)1 << 30)
#define TiB	((uint64_t)1 << 40)

struct good_u64 {
	const char	*in;
	uint64_t	 want;
};

static const struct good_u64 good_sizes[] = {
	{ "0", 0 },
	{ "1", 1 },
	{ "4096", 4096 },
	{ "1B", 1 },
	{ "100b", 100 },
	{ "512K", 512 * KiB },
	{ "512k", 512 * KiB },
	{ "512KB", 512 * KiB },
	{ "512KiB", 512 * KiB },
	{ "512kib", 512 * KiB },
	{ "300M", 300 * MiB },
	{ "300mb", 300 * MiB },
	{ "1G", GiB },
	{ "1GB", GiB },
	{ "1GiB", GiB },
	{ "1.5G", 3 * GiB / 2 },
	{ "0.5K", 512 },
	{ "0.1K", 102 },		/* truncated, never rounded up */
	{ "2T", 2 * TiB },
	{ "1P", (uint64_t)1 << 50 },
	{ "15E", (uint64_t)15 << 60 },
	{ "15.5E", ((uint64_t)31 << 59) },
	{ "17179869183G", ((uint64_t)17179869183) << 30 },
	{ "18446744073709551615", UINT64_MAX },
	{ "007M", 7 * MiB },
};

static const char *const bad_sizes[] = {
	"", " ", "G", "B", "K1", "-1", "+1", "1.5", "1.5B", "12Q", "1.G", ".5G",
	"1 G", " 1G", "1G ", "1GiBB", "1iB", "1KBB", "1e3", "0x10", "1,5G",
	"1..5G", "abc", "16E", "17179869184G", "18446744073709551616",
	"99999999999999999999999", "1G1M",
};

static void
test_size_parses_good_values(void **state)
{
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good_sizes); i++) {
		v = 42;
		if (units_parse_size(good_sizes[i].in, &v) != NULL)
			fail_msg("size \"%s\" rejected", good_sizes[i].in);
		if (v != good_sizes[i].want)
			fail_msg("size \"%s\" = %llu, want %llu",
			    good_sizes[i].in, (unsigned long long)v,
			    (unsigned long long)good_sizes[i].want);
	}
}

static void
test_size_rejects_bad_values_and_leaves_output(void **state)
{
	const char *why;
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad_sizes); i++) {
		v = 42;
		why = units_parse_size(bad_sizes[i], &v);
		if (why == NULL)
			fail_msg("size \"%s\" accepted as %llu", bad_sizes[i],
			    (unsigned long long)v);
		assert_int_equal(v, 42);
		assert_true(strlen(why) > 0);
	}
}

static void
test_size_overflow_says_too_large(void **state)
{
	uint64_t v;

	(void)state;
	assert_string_equal(units_parse_size("16E", &v), "size too large");
	assert_string_equal(units_parse_size("18446744073709551616", &v),
	    "size too large");
	assert_string_equal(units_parse_size("12Q", &v),
	    "invalid size (use K, M or G)");
}

static const struct good_u64 good_durations[] = {
	{ "0", 0 },
	{ "0s", 0 },
	{ "30", 30000 },		/* bare number: seconds */
	{ "1.5", 1500 },
	{ "250ms", 250 },
	{ "250MS", 250 },
	{ "30s", 30000 },
	{ "30sec", 30000 },
	{ "5m", 300000 },
	{ "5min", 300000 },
	{ "1.25m", 75000 },
	{ "6h", 6 * 3600000ULL },
	{ "1d", 86400000 },
	{ "1.5s", 1500 },
	{ "0.5ms", 0 },			/* below the resolution: truncated */
	{ "1m30s", 90000 },
	{ "1h30m", 5400000 },
	{ "2d3h4m5s6ms", 2 * 86400000ULL + 3 * 3600000 + 4 * 60000 + 5006 },
	{ "1s1s", 2000 },
	{ "18446744073709551615ms", UINT64_MAX },
};

static const char *const bad_durations[] = {
	"", " ", "s", "ms", "10x", "10 s", " 10s", "10s ", "1m30", "-1s", "+1s",
	"1.s", ".5s", "1..5s", "1ss", "1msec", "1mm", "1w", "1y", "abc", "1e3",
	"18446744073709551616ms", "18446744073709552s", "213503982335d",
	"18446744073709551615ms1ms", "99999999999999999999999",
};

static void
test_duration_parses_good_values(void **state)
{
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good_durations); i++) {
		v = 42;
		if (units_parse_duration(good_durations[i].in, &v) != NULL)
			fail_msg("duration \"%s\" rejected",
			    good_durations[i].in);
		if (v != good_durations[i].want)
			fail_msg("duration \"%s\" = %llu ms, want %llu",
			    good_durations[i].in, (unsigned long long)v,
			    (unsigned long long)good_durations[i].want);
	}
}

static void
test_duration_rejects_bad_values_and_leaves_output(void **state)
{
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad_durations); i++) {
		v = 42;
		if (units_parse_duration(bad_durations[i], &v) == NULL)
			fail_msg("duration \"%s\" accepted as %llu",
			    bad_durations[i], (unsigned long long)v);
		assert_int_equal(v, 42);
	}
}

static void
test_duration_overflow_says_too_large(void **state)
{
	uint64_t v;

	(void)state;
	assert_string_equal(units_parse_duration("213503982335d", &v),
	    "duration too large");
	assert_non_null(strstr(units_parse_duration("10x", &v),
	    "invalid duration"));
}

static const struct {
	const char	*in;
	uint32_t	 want;
} good_percents[] = {
	{ "0", 0 }, { "0%", 0 }, { "10%", 100000 }, { "2.5%", 25000 },
	{ "50%", 500000 }, { "100%", 1000000 }, { "100.0%", 1000000 },
	{ "0.0001%", 1 }, { "0.00001%", 0 }, { "33.333333%", 333333 },
};

static const char *const bad_percents[] = {
	"", "%", "10", "10 %", " 10%", "10%%", "-1%", "101%", "100.1%",
	"1000000000000000000000%", "ten%", "10%x", "1.%", "00",
};

static void
test_percent_parses_good_and_rejects_bad(void **state)
{
	uint32_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good_percents); i++) {
		v = 42;
		if (units_parse_percent(good_percents[i].in, &v) != NULL)
			fail_msg("percent \"%s\" rejected", good_percents[i].in);
		if (v != good_percents[i].want)
			fail_msg("percent \"%s\" = %u ppm, want %u",
			    good_percents[i].in, v, good_percents[i].want);
	}
	for (i = 0; i < nitems(bad_percents); i++) {
		v = 42;
		if (units_parse_percent(bad_percents[i], &v) == NULL)
			fail_msg("percent \"%s\" accepted as %u",
			    bad_percents[i], v);
		assert_int_equal(v, 42);
	}
}

static const struct {
	const char	*in;
	int		 want;
} good_signals[] = {
	{ "SIGTERM", SIGTERM }, { "TERM", SIGTERM }, { "sigterm", SIGTERM },
	{ "term", SIGTERM }, { "SigTerm", SIGTERM }, { "15", SIGTERM },
	{ "SIGKILL", SIGKILL }, { "9", SIGKILL }, { "HUP", SIGHUP },
	{ "SIGINT", SIGINT }, { "QUIT", SIGQUIT }, { "SIGUSR1", SIGUSR1 },
	{ "usr2", SIGUSR2 }, { "SIGWINCH", SIGWINCH }, { "IOT", SIGABRT },
	{ "SIGCLD", SIGCHLD }, { "1", 1 }, { "64", 64 }, { "34", 34 },
};

static const char *const bad_signals[] = {
	"", "0", "65", "-1", "+15", "15x", "SIG", "sig", "SIGFOO", "FOO",
	"SIG15", "SIGTERM ", " TERM", "SIG TERM", "99999999999999999999999",
};

static void
test_signal_parses_names_and_numbers(void **state)
{
	size_t i;
	int v;

	(void)state;
	for (i = 0; i < nitems(good_signals); i++) {
		v = -1;
		if (units_parse_signal(good_signals[i].in, &v) != NULL)
			fail_msg("signal \"%s\" rejected", good_signals[i].in);
		if (v != good_signals[i].want)
			fail_msg("signal \"%s\" = %d, want %d",
			    good_signals[i].in, v, good_signals[i].want);
	}
	for (i = 0; i < nitems(bad_signals); i++) {
		v = -1;
		if (units_parse_signal(bad_signals[i], &v) == NULL)
			fail_msg("signal \"%s\" accepted as %d", bad_signals[i],
			    v);
		assert_int_equal(v, -1);
	}
}

static void
test_wait_status_text(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(units_format_status(W_EXITCODE(3, 0), buf,
	    sizeof buf), "exited with status 3");
	assert_string_equal(units_format_status(SIGKILL, buf, sizeof buf),
	    "killed by SIGKILL");
	assert_string_equal(units_format_status(SIGSEGV | WCOREFLAG, buf,
	    sizeof buf), "killed by SIGSEGV (core dumped)");
	assert_string_equal(units_format_status(0x137f, buf, sizeof buf),
	    "ended with wait status 0x137f");
}

static void
test_signal_name_round_trips(void **state)
{
	int sig, v;

	(void)state;
	assert_string_equal(units_signal_name(SIGTERM), "SIGTERM");
	assert_string_equal(units_signal_name(SIGKILL), "SIGKILL");
	assert_string_equal(units_signal_name(42), "SIG42");
	assert_string_equal(units_signal_name(0), "SIG0");
	for (sig = 1; sig <= 31; sig++) {
		v = -1;
		assert_null(units_parse_signal(units_signal_name(sig), &v));
		assert_int_equal(v, sig);
	}
}

static void
test_bool_accepts_the_usual_words(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True", "on",
		"1" };
	static const char *const no[] = { "no", "NO", "false", "off", "Off",
		"0" };
	static const char *const bad[] = { "", "y", "n", "2", "maybe", "yes ",
		"enable", "-1" };
	size_t i;
	bool b;

	(void)state;
	for (i = 0; i < nitems(yes); i++) {
		b = false;
		assert_null(units_parse_bool(yes[i], &b));
		assert_true(b);
	}
	for (i = 0; i < nitems(no); i++) {
		b = true;
		assert_null(units_parse_bool(no[i], &b));
		assert_false(b);
	}
	for (i = 0; i < nitems(bad); i++) {
		b = true;
		if (units_parse_bool(bad[i], &b) == NULL)
			fail_msg("bool \"%s\" accepted", bad[i]);
		assert_true(b);
	}
}

static void
test_uint_checks_syntax_and_bounds(void **state)
{
	static const char *const bad[] = { "", " 1", "1 ", "-1", "+1", "1.0",
		"1e3", "0x10", "abc", "18446744073709551616",
		"99999999999999999999999" };
	uint64_t v;
	size_t i;

	(void)state;
	assert_null(units_parse_uint("0", 0, 10, &v));
	assert_int_equal(v, 0);
	assert_null(units_parse_uint("10", 0, 10, &v));
	assert_int_equal(v, 10);
	assert_null(units_parse_uint("007", 0, 10, &v));
	assert_int_equal(v, 7);
	assert_null(units_parse_uint("18446744073709551615", 0, UINT64_MAX,
	    &v));
	assert_true(v == UINT64_MAX);
	v = 42;
	assert_non_null(units_parse_uint("11", 0, 10, &v));
	assert_non_null(units_parse_uint("0", 1, 10, &v));
	assert_int_equal(v, 42);
	for (i = 0; i < nitems(bad); i++) {
		if (units_parse_uint(bad[i], 0, UINT64_MAX, &v) == NULL)
			fail_msg("uint \"%s\" accepted", bad[i]);
		assert_int_equal(v, 42);
	}
}

static void
test_format_size_is_short(void **state)
{
	static const struct {
		uint64_t	 in;
		const char	*want;
	} cases[] = {
		{ 0, "0B" }, { 100, "100B" }, { 1023, "1023B" },
		{ 1024, "1K" }, { 1536, "1.5K" }, { 512 * KiB, "512K" },
		{ 212 * MiB, "212M" }, { 3 * GiB / 2, "1.5G" },
		{ MiB - 1, "1M" },	/* 1023.999K rounds into the next unit */
		{ 2 * TiB, "2T" }, { (uint64_t)1 << 50, "1P" },
		{ UINT64_MAX, "16E" }, { 300 * MiB + 1, "300M" },
		{ 1100 * KiB, "1.1M" },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++)
		assert_string_equal(units_format_size(cases[i].in, buf,
		    sizeof buf), cases[i].want);
}

static void
test_format_duration_is_short(void **state)
{
	static const struct {
		uint64_t	 in;
		const char	*want;
	} cases[] = {
		{ 0, "0ms" }, { 250, "250ms" }, { 999, "999ms" },
		{ 1000, "1s" }, { 1500, "1.5s" }, { 1250, "1.25s" },
		{ 30000, "30s" }, { 59999, "59.999s" }, { 60000, "1m" },
		{ 312000, "5m12s" }, { 312999, "5m12s" },
		{ 3600000, "1h" }, { 7380000, "2h3m" },
		{ 86400000, "1d" }, { 3 * 86400000ULL + 4 * 3600000, "3d4h" },
	};
	char buf[32];
	uint64_t back;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		assert_string_equal(units_format_duration(cases[i].in, buf,
		    sizeof buf), cases[i].want);
		/* What we print, we read back (exactly under a minute). */
		assert_null(units_parse_duration(buf, &back));
		if (cases[i].in < 60000)
			assert_int_equal(back, cases[i].in);
	}
}

/* ---- worker and config input (util.c) ---- */

static void
test_parse_digits_takes_digits_only(void **state)
{
	static const char *const bad[] = {
		"", " 1", "1 ", "-1", " -1", "+7", "0x10", "1e3", "１",
		"18446744073709551616", "99999999999999999999",
	};
	uint64_t v;
	size_t i;

	(void)state;
	assert_int_equal(parse_digits("0", UINT64_MAX, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_digits("007", UINT64_MAX, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(parse_digits("18446744073709551615", UINT64_MAX,
	    &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_digits("100", 99, &v), -1);
	for (i = 0; i < nitems(bad); i++)
		assert_int_equal(parse_digits(bad[i], UINT64_MAX, &v), -1);
}

static void
test_parse_id_stays_in_uid_t(void **state)
{
	uint32_t id;

	(void)state;
	assert_int_equal(parse_id("0", &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(parse_id("4294967294", &id), 0);
	assert_true(id == 4294967294u);
	assert_int_equal(parse_id("4294967295", &id), -1);	/* (uid_t)-1 */
	assert_int_equal(parse_id("4294967296", &id), -1);	/* wraps to 0 */
	assert_int_equal(parse_id("18446744073709551616", &id), -1);
	assert_int_equal(parse_id("-1", &id), -1);
	assert_int_equal(parse_id("", &id), -1);
}

static void
check_sanitize(const char *in, size_t len, size_t max, const char *want)
{
	char *out = text_sanitize(in, len, max);

	assert_string_equal(out, want);
	free(out);
}

#define FFFD	"\xef\xbf\xbd"

static void
test_text_sanitize_gives_valid_utf8(void **state)
{
	(void)state;
	check_sanitize("plain", 5, 100, "plain");
	check_sanitize("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, 100,
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	check_sanitize("a\xff" "b", 3, 100, "a" FFFD "b");
	check_sanitize("\xc0\x80", 2, 100, FFFD FFFD);		/* overlong */
	check_sanitize("\xed\xa0\x80", 3, 100, FFFD FFFD FFFD);	/* surrogate */
	check_sanitize("\xf4\x90\x80\x80", 4, 100,		/* > U+10FFFF */
	    FFFD FFFD FFFD FFFD);
	check_sanitize("\xe2\x82", 2, 100, FFFD FFFD);		/* cut short */
	check_sanitize("\x1b[31m\t\x7f", 7, 100, FFFD "[31m" FFFD FFFD);
	check_sanitize("\xc2\x85", 2, 100, FFFD);			/* C1 */
	check_sanitize("a\0b", 3, 100, "a" FFFD "b");
	/* The bound cuts on a character, never inside one. */
	check_sanitize("abcd", 4, 3, "abc");
	check_sanitize("a\xc3\xa9", 3, 2, "a");
	check_sanitize("ab\xff", 3, 4, "ab");
	check_sanitize("", 0, 0, "");
}

static void
test_text_escape_shows_control_bytes(void **state)
{
	char buf[64];

	(void)state;
	text_escape("ok\tfine", buf, sizeof buf);
	assert_string_equal(buf, "ok\tfine");
	text_escape("\x1b[2J\a\n\x7f\xc3\xa9", buf, sizeof buf);
	assert_string_equal(buf, "\\x1b[2J\\x07\\x0a\\x7f\xc3\xa9");
	text_escape("ab\x1b", buf, 6);		/* no half escape */
	assert_string_equal(buf, "ab");
}

static void
test_ratelimit_bounds_a_burst_and_counts_the_rest(void **state)
{
	struct ratelimit rl = { 0 };
	unsigned int held = 0, sent = 0;
	int i;

	(void)state;
	for (i = 0; i < 2000; i++)
		if (ratelimit_take(&rl, 100.0, 1.0, 10.0, &held))
			sent++;
	assert_int_equal(sent, 10);
	assert_int_equal(held, 0);
	assert_int_equal(ratelimit_take(&rl, 101.5, 1.0, 10.0, &held), 1);
	assert_int_equal(held, 1990);
	assert_int_equal(ratelimit_take(&rl, 101.6, 1.0, 10.0, &held), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parses_good_values),
		cmocka_unit_test(test_size_rejects_bad_values_and_leaves_output),
		cmocka_unit_test(test_size_overflow_says_too_large),
		cmocka_unit_test(test_duration_parses_good_values),
		cmocka_unit_test(
		    test_duration_rejects_bad_values_and_leaves_output),
		cmocka_unit_test(test_duration_overflow_says_too_large),
		cmocka_unit_test(test_percent_parses_good_and_rejects_bad),
		cmocka_unit_test(test_signal_parses_names_and_numbers),
		cmocka_unit_test(test_signal_name_round_trips),
		cmocka_unit_test(test_wait_status_text),
		cmocka_unit_test(test_bool_accepts_the_usual_words),
		cmocka_unit_test(test_uint_checks_syntax_and_bounds),
		cmocka_unit_test(test_format_size_is_short),
		cmocka_unit_test(test_format_duration_is_short),
		cmocka_unit_test(test_parse_digits_takes_digits_only),
		cmocka_unit_test(test_parse_id_stays_in_uid_t),
		cmocka_unit_test(test_text_sanitize_gives_valid_utf8),
		cmocka_unit_test(test_text_escape_shows_control_bytes),
		cmocka_unit_test(test_ratelimit_bounds_a_burst_and_counts_the_rest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
