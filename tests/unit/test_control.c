/* SPDX-License-Identifier: MIT */
/*
 * test_control.c - the control protocol without a socket: control_split()
 * edge cases, and every command through control_execute() against the
 * in-memory daemon of fake_daemon.c (answers parsed back with json-c).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "control.h"
#include "fake_daemon.h"
#include "memprobe.h"

/* ---- control_split ---- */

static int
split(const char *text, char **words, int max, char *buf, size_t size)
{
	snprintf(buf, size, "%s", text);
	return control_split(buf, words, max);
}

static void
test_split_empty_line_has_no_words(void **state)
{
	char buf[64], *w[4];

	(void)state;
	assert_int_equal(split("", w, 4, buf, sizeof buf), 0);
	assert_int_equal(split("   ", w, 4, buf, sizeof buf), 0);
	assert_int_equal(split(" \t \t", w, 4, buf, sizeof buf), 0);
	assert_int_equal(split("\r", w, 4, buf, sizeof buf), 0);
}

static void
test_split_on_spaces_and_tabs(void **state)
{
	char buf[64], *w[4];

	(void)state;
	assert_int_equal(split("  recycle \t web\tall  ", w, 4, buf,
	    sizeof buf), 3);
	assert_string_equal(w[0], "recycle");
	assert_string_equal(w[1], "web");
	assert_string_equal(w[2], "all");
	assert_int_equal(split("status", w, 4, buf, sizeof buf), 1);
	assert_string_equal(w[0], "status");
}

static void
test_split_strips_one_trailing_cr(void **state)
{
	char buf[64], *w[4];

	(void)state;
	assert_int_equal(split("status web\r", w, 4, buf, sizeof buf), 2);
	assert_string_equal(w[1], "web");
	/* Only one: a second is a control character like any other. */
	assert_int_equal(split("status\r\r", w, 4, buf, sizeof buf), -1);
	assert_int_equal(split("sta\rtus", w, 4, buf, sizeof buf), -1);
}

static void
test_split_rejects_control_characters(void **state)
{
	static const char *const bad[] = { "status\x01", "\x1b[2J", "a\nb",
		"del\x7f", "\x1f", "scale web\x0b 3" };
	char buf[64], *w[4];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(split(bad[i], w, 4, buf, sizeof buf), -1);
}

static void
test_split_checks_utf8(void **state)
{
	static const char *const bad[] = { "\xff", "\xc0\xaf", "a\xe2\x82",
		"\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xf8\x88\x80\x80" };
	char buf[64], *w[4];
	size_t i;

	(void)state;
	assert_int_equal(split("status caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90"
	    "\xb3", w, 4, buf, sizeof buf), 4);
	assert_string_equal(w[1], "caf\xc3\xa9");
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(split(bad[i], w, 4, buf, sizeof buf), -1);
}

static void
test_split_refuses_too_many_words(void **state)
{
	char buf[64], *w[4];

	(void)state;
	assert_int_equal(split("a b c", w, 3, buf, sizeof buf), 3);
	assert_int_equal(split("a b c d", w, 3, buf, sizeof buf), -1);
	assert_int_equal(split("a b c ", w, 3, buf, sizeof buf), 3);
	assert_int_equal(split("a", w, 0, buf, sizeof buf), -1);
	assert_int_equal(split(" ", w, 0, buf, sizeof buf), 0);
}

static void
test_split_keeps_long_words_whole(void **state)
{
	char *line = malloc(CONTROL_LINE_MAX + 1), *w[2];

	(void)state;
	memset(line, 'x', CONTROL_LINE_MAX);
	line[0] = ' ';
	line[CONTROL_LINE_MAX] = '\0';
	assert_int_equal(control_split(line, w, 2), 1);
	assert_int_equal(strlen(w[0]), CONTROL_LINE_MAX - 1);
	free(line);
}

/* ---- control_execute ---- */

struct fixture {
	struct recyclerd *rd;
	struct control_peer root;
	json_object	*last;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	f->rd = fake_daemon_new();
	f->root.allowed = true;
	f->root.pid = 1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	json_object_put(f->last);
	fake_daemon_free(f->rd);
	free(f);
	return 0;
}

/* Run one request; check the answer is one JSON object on one line. */
static json_object *
run_as(struct fixture *f, const struct control_peer *peer, const char *req)
{
	char *line = strdup(req), *answer;
	json_object *o, *ok;

	answer = control_execute(f->rd, peer, line);
	free(line);
	assert_null(strchr(answer, '\n'));
	o = json_tokener_parse(answer);
	if (o == NULL)
		fail_msg("not JSON: %s", answer);
	free(answer);
	assert_true(json_object_is_type(o, json_type_object));
	assert_true(json_object_object_get_ex(o, "ok", &ok));
	assert_true(json_object_is_type(ok, json_type_boolean));
	json_object_put(f->last);
	f->last = o;
	return o;
}

static json_object *
run(struct fixture *f, const char *req)
{
	return run_as(f, &f->root, req);
}

static json_object *
get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no key %s in %s", key, json_object_to_json_string(o));
	return v;
}

static bool
is_ok(json_object *o)
{
	return json_object_get_boolean(get(o, "ok"));
}

static const char *
error_of(json_object *o)
{
	assert_false(is_ok(o));
	return json_object_get_string(get(o, "error"));
}

static void
assert_error(struct fixture *f, const char *req, const char *needle)
{
	const char *e = error_of(run(f, req));

	if (strstr(e, needle) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", req, e, needle);
}

static void
test_version(void **state)
{
	struct fixture *f = *state;
	json_object *o = run(f, "version");

	assert_true(is_ok(o));
	assert_string_equal(json_object_get_string(get(o, "version")),
	    PACKAGE_VERSION);
}

static void
test_bad_requests_get_an_error(void **state)
{
	struct fixture *f = *state;

	assert_error(f, "", "empty request");
	assert_error(f, "   ", "empty request");
	assert_error(f, "frobnicate", "unknown command: frobnicate "
	    "(commands: status, recycle, scale, stop, start, reload, events, "
	    "logs, config, metrics, version)");
	assert_error(f, "STATUS", "unknown command");
	assert_error(f, "status a b", "usage: status [--exact] [POOL]");
	assert_error(f, "status --exact a b", "usage: status [--exact] [POOL]");
	assert_error(f, "status --exactly", "usage: status [--exact] [POOL]");
	assert_error(f, "recycle", "usage: recycle POOL [WORKER|all]");
	assert_error(f, "scale web", "usage: scale POOL N");
	assert_error(f, "stop", "usage: stop POOL");
	assert_error(f, "start a b", "usage: start POOL");
	assert_error(f, "reload now", "usage: reload");
	assert_error(f, "events 1 2", "usage: events [N]");
	assert_error(f, "metrics x", "usage: metrics");
	assert_error(f, "version x", "usage: version");
	assert_error(f, "status\x01", "control character");
	assert_error(f, "status \xff", "UTF-8");
	assert_error(f, "a b c d e f g h i", "too many words");
	assert_int_equal(fake_scales + fake_stops + fake_starts +
	    fake_recycles + fake_reloads, 0);
}

static void
test_permission_denied_for_every_command(void **state)
{
	static const char *const reqs[] = { "version", "status", "metrics",
		"recycle web", "", "frob", "reload" };
	struct fixture *f = *state;
	struct control_peer nobody = { .uid = 65534, .gid = 65534,
		.pid = 2, .allowed = false };
	size_t i;

	for (i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
		assert_string_equal(error_of(run_as(f, &nobody, reqs[i])),
		    "permission denied: uid 65534 is not root or a member of "
		    "group wheel");
	assert_int_equal(fake_recycles + fake_reloads, 0);
}

static json_object *
find_pool(json_object *status, const char *name)
{
	json_object *pools = get(status, "pools"), *p;
	size_t i;

	for (i = 0; i < json_object_array_length(pools); i++) {
		p = json_object_array_get_idx(pools, i);
		if (strcmp(json_object_get_string(get(p, "name")), name) == 0)
			return p;
	}
	fail_msg("no pool %s", name);
	return NULL;
}

static int64_t
num(json_object *o, const char *key)
{
	return json_object_get_int64(get(o, key));
}

static void
test_status_reports_pools_and_workers(void **state)
{
	struct fixture *f = *state;
	json_object *o = run(f, "status --exact"), *web, *ws, *w, *rec;

	assert_true(is_ok(o));
	assert_string_equal(json_object_get_string(get(o, "version")),
	    PACKAGE_VERSION);
	assert_int_equal(num(o, "pid"), 4242);
	assert_true(json_object_get_double(get(o, "uptime")) >= 3600);
	assert_int_equal(json_object_array_length(get(o, "pools")), 2);
	assert_string_equal(json_object_get_string(get(find_pool(o,
	    "odd\"pool\\"), "state")), "stopped");

	web = find_pool(o, "web");
	assert_string_equal(json_object_get_string(get(web, "state")),
	    "running");
	assert_int_equal(num(web, "desired"), 2);
	assert_int_equal(num(web, "size"), 3);
	assert_int_equal(num(web, "ready"), 2);
	assert_int_equal(num(web, "starting"), 1);
	assert_int_equal(num(web, "draining"), 0);
	assert_int_equal(num(web, "crashes"), 3);
	assert_int_equal(num(web, "failed_starts"), 1);
	assert_int_equal(num(web, "oom_kills"), 2);
	assert_int_equal(num(web, "recycles_total"), 6);
	assert_string_equal(json_object_get_string(get(web, "metric")), "pss");
	assert_int_equal(num(web, "recycle_memory"), 200 << 20);
	rec = get(web, "recycles");
	assert_int_equal(num(rec, "memory"), 5);
	assert_int_equal(num(rec, "manual"), 1);
	assert_int_equal(num(rec, "tasks"), 0);
	assert_false(json_object_object_get_ex(rec, "crash", NULL));
	assert_false(json_object_object_get_ex(rec, "shutdown", NULL));

	/* By slot, oldest first. */
	ws = get(web, "workers");
	assert_int_equal(json_object_array_length(ws), 3);
	w = json_object_array_get_idx(ws, 0);
	assert_int_equal(num(w, "slot"), 0);
	assert_int_equal(num(w, "pid"), 1001);
	assert_string_equal(json_object_get_string(get(w, "state")), "ready");
	assert_int_equal(num(w, "rss"), 100 << 20);
	assert_int_equal(num(w, "pss"), 75 << 20);	/* read for --exact */
	assert_int_equal(num(w, "uss"), 50 << 20);
	assert_int_equal(num(w, "threshold"), (200 << 20) - (3 << 20));
	assert_int_equal(num(w, "max_tasks"), 990);
	assert_true(json_object_is_type(get(w, "growth_bytes_per_s"),
	    json_type_double));
	assert_true(json_object_get_double(get(w, "growth_bytes_per_s")) >
	    999999.0);
	assert_null(get(w, "recycle_reason"));
	assert_null(get(w, "status_text"));
	assert_true(json_object_get_double(get(w, "uptime")) >= 125.5);

	w = json_object_array_get_idx(ws, 1);
	assert_int_equal(num(w, "pid"), 1002);
	assert_string_equal(json_object_get_string(get(w, "recycle_reason")),
	    "memory");
	assert_string_equal(json_object_get_string(get(w, "status_text")),
	    "serving \"requests\"");

	w = json_object_array_get_idx(ws, 2);
	assert_int_equal(num(w, "pid"), 1003);
	assert_string_equal(json_object_get_string(get(w, "state")),
	    "starting");
	assert_null(get(w, "rss"));
	assert_null(get(w, "pss"));
	assert_null(get(w, "uss"));
	assert_null(get(w, "growth_bytes_per_s"));
	assert_null(get(w, "growth_bytes_per_task"));
}

static void
test_status_of_one_pool(void **state)
{
	struct fixture *f = *state;
	json_object *o = run(f, "status web");

	assert_true(is_ok(o));
	assert_int_equal(json_object_array_length(get(o, "pools")), 1);
	find_pool(o, "web");
	assert_error(f, "status nope", "no such pool: nope");
	assert_error(f, "status --exact nope", "no such pool: nope");
	o = run(f, "status --exact web");
	assert_true(is_ok(o));
	assert_int_equal(json_object_array_length(get(o, "pools")), 1);
	find_pool(o, "web");
}

/* Without --exact, what the sampler last read: no smaps_rollup figures. */
static void
test_status_shows_the_last_sample(void **state)
{
	struct fixture *f = *state;
	json_object *o = run(f, "status web"), *w;

	w = json_object_array_get_idx(get(find_pool(o, "web"), "workers"), 0);
	assert_int_equal(num(w, "rss"), 100 << 20);
	assert_null(get(w, "pss"));
	assert_null(get(w, "uss"));
	assert_int_equal(num(w, "memory"), 75 << 20);
	assert_int_equal(num(w, "samples"), 0);
}

static void
test_recycle(void **state)
{
	struct fixture *f = *state;
	json_object *o;

	o = run(f, "recycle web");
	assert_true(is_ok(o));
	assert_int_equal(num(o, "recycling"), 2);
	assert_int_equal(fake_last_slot, -1);
	o = run(f, "recycle web all");
	assert_int_equal(num(o, "recycling"), 2);
	assert_int_equal(fake_last_slot, -1);
	o = run(f, "recycle web 1");
	assert_int_equal(num(o, "recycling"), 1);
	assert_int_equal(fake_last_slot, 1);
	assert_error(f, "recycle web 7", "pool web has no worker 7");
	assert_error(f, "recycle web x", "recycle: invalid worker x");
	assert_error(f, "recycle web -1", "recycle: invalid worker -1");
	assert_error(f, "recycle nope", "no such pool: nope");
	assert_int_equal(fake_recycles, 4);
}

static void
test_scale_stop_start(void **state)
{
	struct fixture *f = *state;
	json_object *o;

	o = run(f, "scale web 5");
	assert_true(is_ok(o));
	assert_string_equal(json_object_get_string(get(o, "pool")), "web");
	assert_int_equal(num(o, "desired"), 5);
	assert_int_equal(fake_last_scale, 5);
	assert_true(is_ok(run(f, "scale web 0")));
	assert_true(is_ok(run(f, "scale web 10000")));
	assert_error(f, "scale web 10001", "scale: invalid count 10001");
	assert_error(f, "scale web -1", "scale: invalid count");
	assert_error(f, "scale web 1e3", "scale: invalid count");
	assert_error(f, "scale nope 1", "no such pool: nope");
	assert_int_equal(fake_scales, 3);

	o = run(f, "stop web");
	assert_string_equal(json_object_get_string(get(o, "state")),
	    "stopped");
	o = run(f, "start web");
	assert_string_equal(json_object_get_string(get(o, "state")),
	    "running");
	assert_error(f, "stop nope", "no such pool: nope");
	assert_error(f, "start nope", "no such pool: nope");
	assert_int_equal(fake_stops, 1);
	assert_int_equal(fake_starts, 1);
}

static void
test_reload_reports_the_diagnostics(void **state)
{
	struct fixture *f = *state;

	assert_error(f, "reload", "recyclerd.conf:3: [pool web] wrokers: "
	    "unknown key\n/etc/recyclerd/recyclerd.conf:4:");
	assert_true(is_ok(run(f, "reload")));
	assert_int_equal(fake_reloads, 2);
}

static void
test_events_newest_last(void **state)
{
	struct fixture *f = *state;
	json_object *o = run(f, "events"), *evs, *e, *st;
	const char *t;

	assert_true(is_ok(o));
	evs = get(o, "events");
	assert_int_equal(json_object_array_length(evs), 3);

	e = json_object_array_get_idx(evs, 0);
	assert_int_equal(num(e, "seq"), 1);
	t = json_object_get_string(get(e, "time"));
	assert_int_equal(strlen(t), strlen("2024-05-01T12:00:00.123Z"));
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
	assert_string_equal(json_object_get_string(get(e, "kind")),
	    "recycle");
	assert_string_equal(json_object_get_string(get(e, "reason")),
	    "memory");
	assert_int_equal(num(get(e, "status"), "exit"), 0);
	assert_int_equal(num(e, "slot"), 0);
	assert_int_equal(num(e, "pid"), 999);
	assert_int_equal(num(e, "memory"), 210 << 20);
	assert_string_equal(json_object_get_string(get(e, "detail")),
	    "pss 212M > 200M for 2 samples");

	e = json_object_array_get_idx(evs, 1);
	st = get(e, "status");
	assert_string_equal(json_object_get_string(get(st, "signal")),
	    "SIGSEGV");
	assert_true(json_object_get_boolean(get(st, "core_dumped")));

	e = json_object_array_get_idx(evs, 2);
	assert_int_equal(num(e, "seq"), 3);
	assert_null(get(e, "slot"));
	assert_null(get(e, "pid"));
	assert_null(get(e, "status"));
	assert_null(get(e, "detail"));

	o = run(f, "events 1");
	evs = get(o, "events");
	assert_int_equal(json_object_array_length(evs), 1);
	assert_int_equal(num(json_object_array_get_idx(evs, 0), "seq"), 3);
	o = run(f, "events 0");
	assert_int_equal(json_object_array_length(get(o, "events")), 0);
	assert_true(is_ok(run(f, "events 1024")));
	assert_error(f, "events 1025", "events: invalid count 1025");
	assert_error(f, "events many", "events: invalid count many");
}

static void
assert_has(const char *text, const char *needle)
{
	if (strstr(text, needle) == NULL)
		fail_msg("metrics lack: %s", needle);
}

static void
test_metrics_exposition(void **state)
{
	struct fixture *f = *state;
	uint64_t rss_before = memprobe_self_rss(), rss_after, rss;
	json_object *o = run(f, "metrics");
	const char *m, *at;

	rss_after = memprobe_self_rss();
	assert_true(is_ok(o));
	m = json_object_get_string(get(o, "metrics"));
	assert_has(m, "# HELP recyclerd_worker_exits_total ");
	assert_has(m, "# TYPE recyclerd_worker_exits_total counter\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"web\","
	    "reason=\"memory\"} 5\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"web\","
	    "reason=\"watchdog\"} 0\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"odd\\\"pool\\\\\","
	    "reason=\"manual\"} 0\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"web\","
	    "reason=\"crash\"} 2\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"web\","
	    "reason=\"failed_start\"} 1\n");
	assert_has(m, "recyclerd_worker_exits_total{pool=\"web\","
	    "reason=\"oom\"} 2\n");
	assert_null(strstr(m, "recyclerd_recycles_total"));
	assert_null(strstr(m, "recyclerd_crashes_total"));
	assert_has(m, "recyclerd_workers{pool=\"web\",state=\"ready\"} 2\n");
	assert_has(m, "recyclerd_workers{pool=\"web\",state=\"killed\"} 0\n");
	assert_has(m, "recyclerd_pool_state{pool=\"web\",state=\"running\"} "
	    "1\n");
	assert_has(m, "recyclerd_pool_state{pool=\"web\",state=\"failed\"} "
	    "0\n");
	assert_has(m, "recyclerd_pool_desired_workers{pool=\"web\"} 2\n");
	assert_has(m, "recyclerd_pool_info{pool=\"web\","
	    "memory_metric=\"pss\"} 1\n");
	assert_has(m, "recyclerd_worker_info{pool=\"web\",slot=\"0\","
	    "pid=\"1001\",state=\"ready\"} 1\n");
	assert_has(m, "recyclerd_worker_memory_bytes{pool=\"web\",slot=\"0\","
	    "metric=\"rss\"} 104857600\n");
	assert_null(strstr(m, "metric=\"memory\""));
	assert_null(strstr(m, "pid=\"1001\",metric"));
	assert_has(m, "# TYPE recyclerd_worker_tasks_total counter\n");
	assert_has(m, "recyclerd_worker_tasks_total{pool=\"web\",slot=\"1\"} "
	    "34\n");
	assert_has(m, "# TYPE recyclerd_worker_start_time_seconds gauge\n");
	assert_null(strstr(m, "uptime_seconds"));
	assert_has(m, "recyclerd_worker_growth_bytes_per_second{pool=\"web\","
	    "slot=\"0\"} ");
	/* This process's own resident set (memprobe.c is the real one). */
	assert_non_null(at = strstr(m, "\nprocess_resident_memory_bytes "));
	assert_int_equal(sscanf(at, "\nprocess_resident_memory_bytes %" SCNu64,
	    &rss), 1);
	assert_true(rss > 0 && rss % 4096 == 0);
	assert_true(rss >= rss_before / 2 && rss <= rss_after * 2);
	assert_has(m, "# TYPE process_cpu_seconds_total counter\n");
	assert_has(m, "# TYPE process_start_time_seconds gauge\n");
	assert_has(m, "# TYPE process_open_fds gauge\n");
	assert_null(strstr(m, "recyclerd_daemon_rss_bytes"));
	assert_has(m, "recyclerd_events_total 3\n");
	assert_has(m, "recyclerd_notify_dropped_total 5\n");
	assert_has(m, "recyclerd_build_info{version=\"" PACKAGE_VERSION
	    "\"} 1\n");
	assert_int_equal(m[strlen(m) - 1], '\n');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_empty_line_has_no_words),
		cmocka_unit_test(test_split_on_spaces_and_tabs),
		cmocka_unit_test(test_split_strips_one_trailing_cr),
		cmocka_unit_test(test_split_rejects_control_characters),
		cmocka_unit_test(test_split_checks_utf8),
		cmocka_unit_test(test_split_refuses_too_many_words),
		cmocka_unit_test(test_split_keeps_long_words_whole),
		cmocka_unit_test_setup_teardown(test_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_get_an_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_permission_denied_for_every_command, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_status_reports_pools_and_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_shows_the_last_sample,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_of_one_pool,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_recycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale_stop_start, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_reload_reports_the_diagnostics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_newest_last, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_metrics_exposition, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
