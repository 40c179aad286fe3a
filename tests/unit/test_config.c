/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - config_load() over the fixtures in data/config: good-*.conf
 * load with the right values (defaults, [recyclerd] pool defaults, pools_dir
 * merged and sorted, environment, quoting, paths), and every bad-*.conf is
 * refused with each diagnostic line of its bad-*.expect ("@DIR@" stands for
 * the fixture directory), every diagnostic naming file:line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

#ifndef TEST_DATA
#error "TEST_DATA must be the absolute path of tests/unit/data"
#endif

#define CONF_DIR	TEST_DATA "/config"
#define KiB	((uint64_t)1 << 10)
#define MiB	((uint64_t)1 << 20)
#define GiB	((uint64_t)1 << 30)

static struct config *
load(const char *name, struct diag *d)
{
	char *path;
	struct config *cfg;

	xasprintf(&path, "%s/%s", CONF_DIR, name);
	cfg = config_load(path, d);
	free(path);
	return cfg;
}

/* Load a file that must be good; print its diagnostics if it is not. */
static struct config *
load_good(const char *name)
{
	struct diag d = DIAG_INIT;
	struct config *cfg = load(name, &d);

	if (cfg == NULL) {
		diag_print(&d, stderr);
		diag_free(&d);
		fail_msg("%s did not load", name);
	}
	assert_int_equal(d.n, 0);
	diag_free(&d);
	return cfg;
}

static const struct pool_config *
pool(const struct config *cfg, const char *name)
{
	const struct pool_config *pc = config_find_pool(cfg, name);

	if (pc == NULL)
		fail_msg("no pool %s", name);
	return pc;
}

static void
assert_strv(char *const *v, const char *const *want, size_t n)
{
	size_t i;

	assert_non_null(v);
	for (i = 0; i < n; i++) {
		if (v[i] == NULL)
			fail_msg("missing word %zu \"%s\"", i, want[i]);
		assert_string_equal(v[i], want[i]);
	}
	assert_null(v[n]);
}

static void
test_minimal_file_gets_every_default(void **state)
{
	struct config *cfg = load_good("good-minimal.conf");
	const struct pool_config *pc;

	(void)state;
	assert_string_equal(cfg->pools_dir, CONF_DIR "/pools.d-none");
	assert_string_equal(cfg->control_socket, "/run/recyclerd/control.sock");
	assert_null(cfg->control_group);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->cgroup, CGROUP_AUTO);
	assert_int_equal(cfg->npools, 1);

	pc = pool(cfg, "web");
	assert_string_equal(pc->name, "web");
	assert_string_equal(pc->file, CONF_DIR "/good-minimal.conf");
	assert_int_equal(pc->line, 4);
	assert_strv(pc->argv, (const char *[]){ "/bin/true" }, 1);
	assert_true(pc->env == NULL || pc->env[0] == NULL);
	assert_null(pc->user);
	assert_null(pc->group);
	assert_null(pc->directory);
	assert_int_equal(pc->workers, 1);
	assert_int_equal(pc->ready, READY_SPAWN);
	assert_int_equal(pc->ready_timeout_ms, 30000);
	assert_int_equal(pc->memory_metric, METRIC_PSS);
	assert_int_equal(pc->recycle_memory, 0);
	assert_int_equal(pc->kill_memory, 0);
	assert_int_equal(pc->max_tasks, 0);
	assert_int_equal(pc->max_lifetime_ms, 0);
	assert_int_equal(pc->jitter_ppm, 50000);
	assert_int_equal(pc->recycle_samples, 2);
	assert_int_equal(pc->sample_interval_ms, 1000);
	assert_int_equal(pc->drain_signal, SIGTERM);
	assert_int_equal(pc->drain_timeout_ms, 10000);
	assert_int_equal(pc->shutdown_timeout_ms, 30000);
	assert_true(pc->overlap);
	assert_int_equal(pc->max_recycling, 0);	/* auto */
	assert_int_equal(pc->max_overshoot_ppm, 250000);
	assert_true(pc->prespawn);
	assert_int_equal(pc->restart_backoff_ms, 1000);
	assert_int_equal(pc->min_uptime_ms, 10000);
	assert_int_equal(pc->rapid_fail, 5);
	assert_int_equal(pc->rapid_fail_window_ms, 60000);
	assert_int_equal(pc->memory_high, 0);
	assert_int_equal(pc->memory_max, 0);
	assert_int_equal(pc->pool_memory_max, 0);
	assert_int_equal(pc->pool_recycle_memory, 0);
	assert_int_equal(pc->nlisten, 0);
	assert_int_equal(pc->listen_backlog, 1024);
	assert_int_equal(pc->watchdog_ms, 0);
	config_unref(cfg);
}

static void
test_full_file_daemon_keys(void **state)
{
	struct config *cfg = load_good("good-full.conf");

	(void)state;
	assert_string_equal(cfg->path, CONF_DIR "/good-full.conf");
	assert_string_equal(cfg->pools_dir, CONF_DIR "/pools.d-good");
	assert_string_equal(cfg->control_socket, CONF_DIR "/run/control.sock");
	assert_string_equal(cfg->control_group, "root");
	assert_int_equal(cfg->control_gid, 0);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_int_equal(cfg->cgroup, CGROUP_V2);
	config_unref(cfg);
}

static void
test_pools_dir_files_are_merged_and_sorted(void **state)
{
	struct config *cfg = load_good("good-full.conf");
	static const char *const names[] = { "alpha", "beta", "mid", "zeta" };
	size_t i;

	(void)state;
	/* .hidden.conf, README and *.conf~ are not pool files. */
	assert_int_equal(cfg->npools, nitems(names));
	for (i = 0; i < nitems(names); i++)
		assert_string_equal(cfg->pools[i]->name, names[i]);
	assert_null(config_find_pool(cfg, "hidden"));
	assert_null(config_find_pool(cfg, "nope"));
	assert_string_equal(pool(cfg, "zeta")->file,
	    CONF_DIR "/pools.d-good/20-zeta.conf");
	assert_int_equal(pool(cfg, "zeta")->line, 1);
	assert_int_equal(pool(cfg, "beta")->line, 2);
	config_unref(cfg);
}

static void
test_recyclerd_section_sets_pool_defaults(void **state)
{
	struct config *cfg = load_good("good-full.conf");
	const struct pool_config *zeta = pool(cfg, "zeta");
	const struct pool_config *beta = pool(cfg, "beta");

	(void)state;
	/* Inherited from [recyclerd]. */
	assert_int_equal(zeta->workers, 3);
	assert_int_equal(zeta->recycle_memory, 300 * MiB);
	assert_strv(zeta->env, (const char *[]){ "A=1", "B=2", "LANG=C.UTF-8" },
	    3);
	assert_int_equal(zeta->nlisten, 1);
	assert_int_equal(zeta->listen[0].port, 9999);
	assert_string_equal(zeta->listen[0].name, "zeta");
	assert_int_equal(zeta->rapid_fail, 10);
	assert_int_equal(zeta->rapid_fail_window_ms, 5 * 60000);
	/* Overridden by the pool; environment merges by name. */
	assert_int_equal(beta->workers, 0);
	assert_int_equal(beta->recycle_memory, 300 * MiB);
	assert_strv(beta->env, (const char *[]){ "A=override", "B=2",
	    "LANG=C.UTF-8" }, 3);
	assert_int_equal(beta->nlisten, 1);
	assert_int_equal(beta->listen[0].port, 7000);
	assert_string_equal(beta->listen[0].name, "beta");
	/* A bare command name is found in PATH. */
	assert_strv(beta->argv, (const char *[]){ "/usr/bin/true" }, 1);
	config_unref(cfg);
}

static void
test_every_pool_value_kind_is_parsed(void **state)
{
	struct config *cfg = load_good("good-full.conf");
	const struct pool_config *pc = pool(cfg, "mid");

	(void)state;
	assert_strv(pc->argv, (const char *[]){ "/usr/bin/sh", "-c",
	    "echo \"hello world\"; exit 0", "two words", "a \"q\" \\ b" }, 5);
	assert_strv(pc->env, (const char *[]){ "A=1", "B=3", "LANG=C.UTF-8",
	    "C=x y" }, 4);
	assert_string_equal(pc->directory, CONF_DIR "/scripts");
	assert_string_equal(pc->user, "nobody");
	assert_string_equal(pc->group, "root");
	assert_int_equal(pc->uid, 65534);
	assert_int_equal(pc->gid, 0);		/* group beats nobody's own */
	assert_int_equal(pc->ready, READY_NOTIFY);
	assert_int_equal(pc->ready_timeout_ms, 1500);
	assert_int_equal(pc->memory_metric, METRIC_CGROUP_ANON);
	assert_int_equal(pc->recycle_memory, 300 * MiB);
	assert_int_equal(pc->kill_memory, 3 * GiB / 2);
	assert_int_equal(pc->max_tasks, 1000);
	assert_int_equal(pc->max_lifetime_ms, 6 * 3600 * 1000);
	assert_int_equal(pc->jitter_ppm, 25000);
	assert_int_equal(pc->drain_signal, SIGQUIT);
	assert_int_equal(pc->drain_timeout_ms, 90000);
	assert_false(pc->overlap);
	assert_int_equal(pc->max_recycling, 2);
	assert_int_equal(pc->recycle_samples, 3);
	assert_int_equal(pc->restart_backoff_ms, 250);
	assert_int_equal(pc->min_uptime_ms, 5000);
	assert_int_equal(pc->rapid_fail, 3);
	assert_int_equal(pc->rapid_fail_window_ms, 60000);
	assert_int_equal(pc->sample_interval_ms, 50);
	assert_int_equal(pc->shutdown_timeout_ms, 120000);
	assert_int_equal(pc->memory_high, 512 * MiB);
	assert_int_equal(pc->memory_max, GiB);
	assert_int_equal(pc->pool_memory_max, 4 * GiB);
	assert_int_equal(pc->pool_recycle_memory, 3 * GiB);
	assert_int_equal(pc->listen_backlog, 128);
	assert_int_equal(pc->watchdog_ms, 30000);
	config_unref(cfg);
}

static void
test_listen_addresses(void **state)
{
	struct config *cfg = load_good("good-full.conf");
	const struct pool_config *pc = pool(cfg, "mid");
	const struct listen_spec *ls = pc->listen;

	(void)state;
	/* The pool's own listen keys replace the inherited tcp:9999. */
	assert_int_equal(pc->nlisten, 5);
	assert_string_equal(ls[0].text, "tcp:127.0.0.1:8080,name=web");
	assert_int_equal(ls[0].kind, LISTEN_TCP);
	assert_string_equal(ls[0].host, "127.0.0.1");
	assert_int_equal(ls[0].port, 8080);
	assert_int_equal(ls[0].family, AF_INET);
	assert_string_equal(ls[0].name, "web");

	assert_int_equal(ls[1].kind, LISTEN_TCP);
	assert_string_equal(ls[1].host, "::1");
	assert_int_equal(ls[1].port, 8081);
	assert_int_equal(ls[1].family, AF_INET6);
	assert_string_equal(ls[1].name, "mid");

	assert_int_equal(ls[2].kind, LISTEN_UNIX);
	assert_string_equal(ls[2].host, CONF_DIR "/sock/app.sock");
	assert_int_equal(ls[2].mode, 0660);
	assert_string_equal(ls[2].owner, "root:root");
	assert_string_equal(ls[2].name, "mid");

	assert_int_equal(ls[3].kind, LISTEN_SYSTEMD);
	assert_string_equal(ls[3].name, "api");

	assert_int_equal(ls[4].kind, LISTEN_TCP);
	assert_string_equal(ls[4].host, "localhost");
	assert_int_equal(ls[4].port, 0);
	assert_int_equal(ls[4].family, AF_UNSPEC);
	config_unref(cfg);
}

static void
test_main_file_in_pools_dir_is_read_once(void **state)
{
	struct config *cfg = load_good("pools.d-self/main.conf");

	(void)state;
	assert_string_equal(cfg->pools_dir, CONF_DIR "/pools.d-self");
	assert_int_equal(cfg->npools, 2);
	assert_string_equal(cfg->pools[0]->name, "other");
	assert_string_equal(cfg->pools[1]->name, "self");
	config_unref(cfg);
}

static void
test_continuation_line_and_relative_command(void **state)
{
	struct config *cfg = load_good("good-full.conf");
	const struct pool_config *pc = pool(cfg, "alpha");

	(void)state;
	/* Relative to directory, checked there, kept as written for exec. */
	assert_strv(pc->argv, (const char *[]){ "./run.sh", "--port", "1",
	    "--verbose" }, 4);
	assert_string_equal(pc->directory, CONF_DIR "/scripts");
	assert_int_equal(pc->rapid_fail, 0);
	assert_int_equal(pc->uid, 65534);
	assert_int_equal(pc->gid, 65534);	/* nobody's primary group */
	config_unref(cfg);
}

static void
test_reference_files_load(void **state)
{
	struct config *cfg;
	const struct pool_config *pc;

	(void)state;
	cfg = load_good("../../../../conf/recyclerd.conf");
	config_unref(cfg);

	cfg = load_good("good-example.conf");
	assert_true(cfg->npools >= 1);
	pc = cfg->pools[0];
	assert_string_equal(pc->argv[0], "/usr/bin/python3");
	config_unref(cfg);
}

static void
test_reference_file_lists_every_key(void **state)
{
	char *path, *text, pat[128];
	size_t i, n;
	FILE *fp;

	(void)state;
	xasprintf(&path, "%s/../../../conf/recyclerd.conf", TEST_DATA);
	fp = fopen(path, "re");
	assert_non_null(fp);
	text = xmalloc(1 << 20);
	n = fread(text, 1, (1 << 20) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	for (i = 0; config_keys[i].name != NULL; i++) {
		snprintf(pat, sizeof pat, "\n%s = ", config_keys[i].name);
		if (strstr(text, pat) == NULL) {
			snprintf(pat, sizeof pat, "\n;%s = ",
			    config_keys[i].name);
			if (strstr(text, pat) == NULL)
				fail_msg("conf/recyclerd.conf lacks %s",
				    config_keys[i].name);
		}
	}
	free(text);
	free(path);
}

static void
test_key_table_is_consistent(void **state)
{
	static const char *const want[] = {
		"pools_dir", "control_socket", "control_group", "log_level",
		"cgroup",
		"command", "workers", "user", "group", "directory",
		"environment", "no_new_privs", "capabilities", "ready", "spawn", "ready_timeout", "memory_metric",
		"recycle_memory", "kill_memory", "max_tasks", "max_lifetime",
		"jitter", "drain_signal", "drain_timeout", "overlap",
		"max_recycling", "max_overshoot", "prespawn",
		"recycle_scope", "child_drain_signal",
		"recycle_samples", "restart_backoff",
		"min_uptime", "rapid_fail", "sample_interval",
		"shutdown_timeout", "memory_high", "memory_max",
		"pool_memory_max", "pool_recycle_memory", "listen",
		"listen_backlog", "watchdog",
	};
	size_t i;

	(void)state;
	for (i = 0; config_keys[i].name != NULL; i++) {
		assert_true(i < nitems(want));
		assert_string_equal(config_keys[i].name, want[i]);
		assert_string_equal(config_keys[i].section,
		    i < 5 ? "recyclerd" : "pool");
	}
	assert_int_equal(i, nitems(want));
	/* Required or "none": no default to write. */
	for (i = 0; config_keys[i].name != NULL; i++) {
		if (strcmp(config_keys[i].name, "command") == 0 ||
		    strcmp(config_keys[i].name, "user") == 0 ||
		    strcmp(config_keys[i].name, "group") == 0 ||
		    strcmp(config_keys[i].name, "directory") == 0 ||
		    strcmp(config_keys[i].name, "environment") == 0 ||
		    strcmp(config_keys[i].name, "no_new_privs") == 0 ||
		    strcmp(config_keys[i].name, "capabilities") == 0 ||
		    strcmp(config_keys[i].name, "listen") == 0 ||
		    strcmp(config_keys[i].name, "control_group") == 0)
			assert_null(config_keys[i].def);
		else
			assert_non_null(config_keys[i].def);
	}
}

static void
test_pool_config_equal_compares_what_runs(void **state)
{
	struct config *a = load_good("good-full.conf");
	struct config *b = load_good("good-full.conf");
	struct pool_config copy;
	size_t i;

	(void)state;
	for (i = 0; i < a->npools; i++)
		assert_true(pool_config_equal(a->pools[i], b->pools[i]));
	assert_false(pool_config_equal(pool(a, "alpha"), pool(a, "beta")));

	copy = *pool(a, "mid");		/* shallow: never freed */
	copy.line = 999;
	copy.file = (char *)"elsewhere.conf";
	assert_true(pool_config_equal(&copy, pool(b, "mid")));
	copy.workers++;
	assert_false(pool_config_equal(&copy, pool(b, "mid")));
	copy = *pool(a, "mid");
	copy.nlisten--;
	assert_false(pool_config_equal(&copy, pool(b, "mid")));
	copy = *pool(a, "mid");
	copy.env = pool(a, "zeta")->env;
	assert_false(pool_config_equal(&copy, pool(b, "mid")));
	config_unref(a);
	config_unref(b);
}

/* Load text written to a file of its own; the test fails if it is bad. */
static struct config *
load_text(const char *text)
{
	char path[] = "/tmp/test_config.XXXXXX";
	struct diag d = DIAG_INIT;
	struct config *cfg;
	int fd = mkstemp(path);
	FILE *fp;

	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	cfg = config_load(path, &d);
	unlink(path);
	if (cfg == NULL) {
		diag_print(&d, stderr);
		fail_msg("did not load:\n%s", text);
	}
	diag_free(&d);
	return cfg;
}

/*
 * What a reload changing each key needs, as recyclerd.conf(5) says under
 * RELOADING: one or more rows per key of config_keys[] (two values that
 * load), so that a new key must be given its kind here too.
 */
static const struct {
	const char		*key, *from, *to;
	enum config_change	 want;
} changes[] = {
	{ "pools_dir", "pools.d-none", "pools.d-none2", CHANGE_NONE },
	{ "control_socket", "run/a.sock", "run/b.sock", CHANGE_RESTART },
	{ "control_group", "root", "0", CHANGE_NONE },
	{ "log_level", "info", "debug", CHANGE_NONE },
	{ "cgroup", "auto", "none", CHANGE_RESTART },
	{ "command", "/bin/true", "/bin/false", CHANGE_RESPAWN },
	{ "command", "/bin/true", "/bin/true x", CHANGE_RESPAWN },
	{ "workers", "1", "2", CHANGE_NONE },
	{ "user", "root", "nobody", CHANGE_RESPAWN },
	{ "group", "root", "0", CHANGE_RESPAWN },
	{ "directory", "/", "/tmp", CHANGE_RESPAWN },
	{ "environment", "A=1", "A=2", CHANGE_RESPAWN },
	{ "environment", "A=1", "A=1 B=1", CHANGE_RESPAWN },
	{ "no_new_privs", "no", "yes", CHANGE_RESPAWN },
	{ "capabilities", "none", "CAP_NET_BIND_SERVICE", CHANGE_RESPAWN },
	{ "ready", "spawn", "notify", CHANGE_RESPAWN },
	{ "spawn", "exec", "template", CHANGE_RESPAWN },
	{ "ready_timeout", "30s", "1m", CHANGE_NONE },
	{ "memory_metric", "pss", "rss", CHANGE_NONE },
	{ "recycle_memory", "100M", "200M", CHANGE_LIMITS },
	{ "kill_memory", "0", "1G", CHANGE_LIMITS },
	{ "max_tasks", "0", "100", CHANGE_LIMITS },
	{ "max_lifetime", "0", "1h", CHANGE_LIMITS },
	{ "jitter", "5%", "10%", CHANGE_LIMITS },
	{ "drain_signal", "SIGTERM", "SIGQUIT", CHANGE_NONE },
	{ "drain_timeout", "10s", "20s", CHANGE_NONE },
	{ "overlap", "yes", "no", CHANGE_NONE },
	{ "max_recycling", "auto", "2", CHANGE_NONE },
	{ "max_overshoot", "25%", "50%", CHANGE_NONE },
	{ "prespawn", "no", "yes", CHANGE_NONE },
	{ "recycle_scope", "tree", "children", CHANGE_RESPAWN },
	{ "child_drain_signal", "SIGTERM", "SIGQUIT", CHANGE_NONE },
	{ "recycle_samples", "2", "3", CHANGE_LIMITS },
	{ "restart_backoff", "1s", "2s", CHANGE_NONE },
	{ "min_uptime", "10s", "20s", CHANGE_NONE },
	{ "rapid_fail", "5/60s", "3/60s", CHANGE_NONE },
	{ "rapid_fail", "5/60s", "5/30s", CHANGE_NONE },
	{ "sample_interval", "1s", "2s", CHANGE_NONE },
	{ "shutdown_timeout", "30s", "1m", CHANGE_NONE },
	{ "memory_high", "0", "512M", CHANGE_RESPAWN },
	{ "memory_max", "0", "1G", CHANGE_RESPAWN },
	{ "pool_memory_max", "0", "4G", CHANGE_LIMITS },
	{ "pool_recycle_memory", "0", "3G", CHANGE_LIMITS },
	{ "listen", "tcp:127.0.0.1:0", "tcp:127.0.0.1:1", CHANGE_RESPAWN },
	{ "listen", "tcp:127.0.0.1:0", "tcp:127.0.0.1:0 tcp:[::1]:0",
	    CHANGE_RESPAWN },
	{ "listen", "unix:a.sock,mode=0600", "unix:a.sock,mode=0660",
	    CHANGE_RESPAWN },
	{ "listen_backlog", "1024", "128", CHANGE_RESPAWN },
	{ "watchdog", "0", "30s", CHANGE_RESPAWN },
};

/* One small configuration, key = value where its section is. */
static struct config *
load_with(const char *section, const char *key, const char *value)
{
	struct config *cfg;
	char *text;
	bool daemon = strcmp(section, "recyclerd") == 0;

	xasprintf(&text, "[recyclerd]\n%s%s%s%s%s\n[pool p]\n%s%s%s%s%s\n",
	    strcmp(key, "pools_dir") == 0 ? "" : "pools_dir = pools.d-none\n",
	    daemon ? key : "", daemon ? " = " : "", daemon ? value : "",
	    daemon ? "\n" : "",
	    strcmp(key, "command") == 0 ? "" : "command = /bin/true\n",
	    daemon ? "" : key, daemon ? "" : " = ", daemon ? "" : value,
	    daemon ? "" : "\n");
	cfg = load_text(text);
	free(text);
	return cfg;
}

static enum config_change
key_change(const char *name)
{
	size_t i;

	for (i = 0; config_keys[i].name != NULL; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return config_keys[i].change;
	fail_msg("no key %s in config_keys[]", name);
	return CHANGE_NONE;
}

/* Changing each key (and only it) needs what the table says, and says it. */
static void
test_each_key_change_needs_its_kind(void **state)
{
	struct config *a, *b;
	enum config_change got, other;
	const char *key, *same, *section;
	size_t i, pos;
	bool found;

	(void)state;
	for (i = 0; config_keys[i].name != NULL; i++) {
		found = false;
		for (pos = 0; pos < nitems(changes); pos++)
			found |= strcmp(changes[pos].key,
			    config_keys[i].name) == 0;
		if (!found)
			fail_msg("key %s has no row in changes[]: say what "
			    "a reload changing it needs", config_keys[i].name);
	}
	for (i = 0; i < nitems(changes); i++) {
		section = NULL;
		for (pos = 0; config_keys[pos].name != NULL; pos++)
			if (strcmp(config_keys[pos].name, changes[i].key) == 0)
				section = config_keys[pos].section;
		assert_non_null(section);
		if (key_change(changes[i].key) != changes[i].want)
			fail_msg("%s: the table says change %d, want %d",
			    changes[i].key, key_change(changes[i].key),
			    changes[i].want);
		a = load_with(section, changes[i].key, changes[i].from);
		b = load_with(section, changes[i].key, changes[i].to);
		if (strcmp(section, "pool") == 0) {
			got = config_diff_pool(a->pools[0], b->pools[0], &key);
			assert_false(pool_config_equal(a->pools[0],
			    b->pools[0]));
			assert_int_equal(config_diff_pool(a->pools[0],
			    a->pools[0], &same), CHANGE_NONE);
			assert_null(same);
		} else {
			pos = 0;
			key = config_diff_daemon(a, b, &pos, &got);
			assert_null(config_diff_daemon(a, b, &pos, &other));
			pos = 0;
			assert_null(config_diff_daemon(a, a, &pos, &other));
		}
		if (key == NULL || strcmp(key, changes[i].key) != 0 ||
		    got != changes[i].want)
			fail_msg("%s = %s -> %s: change %d of key %s, want %d "
			    "of %s", changes[i].key, changes[i].from,
			    changes[i].to, got, key ? key : "(none)",
			    changes[i].want, changes[i].key);
		config_unref(a);
		config_unref(b);
	}
}

/* The few that matter most, spelled out; the strongest change wins. */
static void
test_diff_names_the_strongest_change(void **state)
{
	struct config *a = load_good("good-full.conf");
	struct config *b = load_good("good-full.conf");
	struct pool_config copy = *pool(b, "mid");	/* shallow */
	const char *key;

	(void)state;
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_NONE);
	assert_null(key);
	copy.workers++;
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_NONE);
	assert_string_equal(key, "workers");
	copy.recycle_memory++;
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_LIMITS);
	assert_string_equal(key, "recycle_memory");
	copy.watchdog_ms++;
	copy.argv = pool(a, "alpha")->argv;
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_RESPAWN);
	assert_string_equal(key, "command");
	copy = *pool(b, "mid");
	copy.uid++;		/* user = nobody renumbered */
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_RESPAWN);
	assert_string_equal(key, "user");
	copy = *pool(b, "mid");
	copy.gid++;		/* group = root renumbered */
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_RESPAWN);
	assert_string_equal(key, "group");
	copy = *pool(b, "mid");
	copy.rapid_fail_window_ms++;
	assert_int_equal(config_diff_pool(pool(a, "mid"), &copy, &key),
	    CHANGE_NONE);
	assert_string_equal(key, "rapid_fail");
	config_unref(a);
	config_unref(b);
}

static void
test_refcount_keeps_snapshot_alive(void **state)
{
	struct config *cfg = load_good("good-minimal.conf");

	(void)state;
	assert_int_equal(cfg->refs, 1);
	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(cfg->refs, 2);
	config_unref(cfg);
	assert_int_equal(cfg->refs, 1);
	assert_string_equal(cfg->pools[0]->name, "web");
	config_unref(cfg);
	config_unref(NULL);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(mem_metric_name(METRIC_RSS), "rss");
	assert_string_equal(mem_metric_name(METRIC_PSS), "pss");
	assert_string_equal(mem_metric_name(METRIC_USS), "uss");
	assert_string_equal(mem_metric_name(METRIC_CGROUP), "cgroup");
	assert_string_equal(mem_metric_name(METRIC_CGROUP_ANON), "cgroup_anon");
	assert_string_equal(ready_mode_name(READY_SPAWN), "spawn");
	assert_string_equal(ready_mode_name(READY_NOTIFY), "notify");
	assert_string_equal(cgroup_mode_name(CGROUP_AUTO), "auto");
	assert_string_equal(cgroup_mode_name(CGROUP_V2), "v2");
	assert_string_equal(cgroup_mode_name(CGROUP_V1), "v1");
	assert_string_equal(cgroup_mode_name(CGROUP_NONE), "none");
}

static void
test_missing_main_file_is_reported(void **state)
{
	struct diag d = DIAG_INIT;

	(void)state;
	assert_null(load("no-such-file.conf", &d));
	assert_int_equal(d.n, 1);
	assert_string_equal(d.msgs[0], CONF_DIR "/no-such-file.conf: cannot open: "
	    "No such file or directory");
	diag_free(&d);
	assert_int_equal(d.n, 0);
}

static void
test_earlier_diagnostics_do_not_fail_a_good_load(void **state)
{
	struct diag d = DIAG_INIT;
	struct config *cfg;

	(void)state;
	diag_add(&d, "something %s", "earlier");
	cfg = load("good-minimal.conf", &d);
	assert_non_null(cfg);
	assert_int_equal(d.n, 1);
	config_unref(cfg);
	diag_free(&d);
}

/* A bad value in [recyclerd] is reported once, not once per pool. */
static void
test_inherited_error_is_reported_once(void **state)
{
	static const char text[] =
	    "[recyclerd]\npools_dir = pools.d-none\nrecycle_memory = 2M\n"
	    "kill_memory = 1M\n[pool a]\ncommand = /bin/true\n"
	    "[pool b]\ncommand = /bin/true\n";
	char path[] = "/tmp/test_config.XXXXXX";
	struct diag d = DIAG_INIT;
	int fd = mkstemp(path);
	FILE *fp;

	(void)state;
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	assert_null(config_load(path, &d));
	if (d.n != 1)
		diag_print(&d, stderr);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.msgs[0], ":4: [recyclerd] kill_memory = 1M: "
	    "must be greater than recycle_memory (2M)"));
	diag_free(&d);
	unlink(path);
}

/* recycle_scope = children has no figure per child in a cgroup counter:
 * a cgroup metric is refused, naming the key; pss loads. */
static void
test_children_scope_refuses_cgroup_metrics(void **state)
{
	static const char bad[] =
	    "[recyclerd]\npools_dir = pools.d-none\n[pool a]\n"
	    "command = /bin/true\nrecycle_scope = children\n"
	    "memory_metric = cgroup\n";
	static const char good[] =
	    "[recyclerd]\npools_dir = pools.d-none\n[pool a]\n"
	    "command = /bin/true\nrecycle_scope = children\n"
	    "child_drain_signal = QUIT\n";
	char path[] = "/tmp/test_config.XXXXXX";
	struct diag d = DIAG_INIT;
	struct config *cfg;
	int fd = mkstemp(path);
	FILE *fp;

	(void)state;
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(bad, fp);
	fclose(fp);
	assert_null(config_load(path, &d));
	if (d.n != 1)
		diag_print(&d, stderr);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.msgs[0], ":6: [pool a] memory_metric = "
	    "cgroup: a cgroup counter covers the master and all its "
	    "children"));
	diag_free(&d);
	unlink(path);
	cfg = load_text(good);
	assert_int_equal(cfg->pools[0]->recycle_scope, SCOPE_CHILDREN);
	assert_int_equal(cfg->pools[0]->child_drain_signal, SIGQUIT);
	assert_string_equal(recycle_scope_name(SCOPE_CHILDREN), "children");
	config_unref(cfg);
	cfg = load_text("[recyclerd]\npools_dir = pools.d-none\n[pool a]\n"
	    "command = /bin/true\n");
	assert_int_equal(cfg->pools[0]->recycle_scope, SCOPE_TREE);
	assert_int_equal(cfg->pools[0]->child_drain_signal, SIGTERM);
	config_unref(cfg);
}

/* The expected lines of bad-X.expect, "@DIR@" replaced; NULL-terminated. */
static char **
read_expect(const char *conf)
{
	char *path, *line = NULL, *nl, *at, *out, *subst;
	size_t cap = 0, n = 0;
	char **v = NULL;
	FILE *fp;

	xasprintf(&path, "%s/%.*s.expect", CONF_DIR, (int)(strlen(conf) - 5), conf);
	fp = fopen(path, "re");
	if (fp == NULL)
		fail_msg("%s: missing", path);
	while (getline(&line, &cap, fp) != -1) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (*line == '\0')
			continue;
		out = xstrdup(line);
		while ((at = strstr(out, "@DIR@")) != NULL) {
			*at = '\0';
			xasprintf(&subst, "%s%s%s", out, CONF_DIR, at + 5);
			free(out);
			out = subst;
		}
		v = xrealloc(v, (n + 2) * sizeof *v);
		v[n++] = out;
		v[n] = NULL;
	}
	free(line);
	fclose(fp);
	free(path);
	if (n == 0)
		fail_msg("%s.expect is empty", conf);
	return v;
}

/* "DIR/...conf:LINE: ..." */
static bool
names_file_and_line(const char *msg)
{
	const char *p;

	if (strncmp(msg, CONF_DIR "/", strlen(CONF_DIR) + 1) != 0)
		return false;
	p = strstr(msg, ".conf:");
	if (p == NULL)
		return false;
	p += 6;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == ':';
}

static void
check_bad_file(const char *conf)
{
	struct diag d = DIAG_INIT;
	struct config *cfg = load(conf, &d);
	char **expect = read_expect(conf);
	bool ok = true;
	size_t i, j;

	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("%s loaded", conf);
	}
	for (i = 0; expect[i] != NULL; i++) {
		for (j = 0; j < d.n; j++)
			if (strstr(d.msgs[j], expect[i]) != NULL)
				break;
		if (j == d.n) {
			fprintf(stderr, "%s: expected \"%s\"\n", conf,
			    expect[i]);
			ok = false;
		}
	}
	for (j = 0; j < d.n; j++) {
		if (!names_file_and_line(d.msgs[j])) {
			fprintf(stderr, "%s: no file:line in \"%s\"\n", conf,
			    d.msgs[j]);
			ok = false;
		}
	}
	if (!ok) {
		fprintf(stderr, "%s: got:\n", conf);
		diag_print(&d, stderr);
	}
	strv_free(expect);
	diag_free(&d);
	if (!ok)
		fail_msg("%s: diagnostics differ", conf);
}

static void
test_bad_files_are_refused_with_their_diagnostics(void **state)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i, len;
	DIR *d;

	(void)state;
	d = opendir(CONF_DIR);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (strncmp(de->d_name, "bad-", 4) != 0 || len < 5 ||
		    strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		names = xrealloc(names, (n + 2) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
		names[n] = NULL;
	}
	closedir(d);
	assert_true(n >= 15);
	for (i = 0; i < n; i++)
		check_bad_file(names[i]);
	strv_free(names);
}

static void
test_diag_print_writes_one_line_each(void **state)
{
	struct diag d = DIAG_INIT;
	char buf[128];
	FILE *fp = tmpfile();

	(void)state;
	diag_add(&d, "a.conf:%d: first", 1);
	diag_add(&d, "a.conf:%d: second", 2);
	diag_print(&d, fp);
	diag_log(&d, LOG_DEBUG);	/* below the default level: silent */
	rewind(fp);
	assert_non_null(fgets(buf, sizeof buf, fp));
	assert_string_equal(buf, "a.conf:1: first\n");
	assert_non_null(fgets(buf, sizeof buf, fp));
	assert_string_equal(buf, "a.conf:2: second\n");
	assert_null(fgets(buf, sizeof buf, fp));
	fclose(fp);
	diag_free(&d);
}

static int
setup(void **state)
{
	(void)state;
	/* PATH lookups must not depend on who runs the tests. */
	setenv("PATH", "/usr/bin:/bin", 1);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_file_gets_every_default),
		cmocka_unit_test(test_full_file_daemon_keys),
		cmocka_unit_test(test_pools_dir_files_are_merged_and_sorted),
		cmocka_unit_test(test_recyclerd_section_sets_pool_defaults),
		cmocka_unit_test(test_every_pool_value_kind_is_parsed),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_main_file_in_pools_dir_is_read_once),
		cmocka_unit_test(test_continuation_line_and_relative_command),
		cmocka_unit_test(test_reference_files_load),
		cmocka_unit_test(test_reference_file_lists_every_key),
		cmocka_unit_test(test_key_table_is_consistent),
		cmocka_unit_test(test_children_scope_refuses_cgroup_metrics),
		cmocka_unit_test(test_pool_config_equal_compares_what_runs),
		cmocka_unit_test(test_each_key_change_needs_its_kind),
		cmocka_unit_test(test_diff_names_the_strongest_change),
		cmocka_unit_test(test_refcount_keeps_snapshot_alive),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_missing_main_file_is_reported),
		cmocka_unit_test(test_earlier_diagnostics_do_not_fail_a_good_load),
		cmocka_unit_test(test_inherited_error_is_reported_once),
		cmocka_unit_test(test_bad_files_are_refused_with_their_diagnostics),
		cmocka_unit_test(test_diag_print_writes_one_line_each),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
