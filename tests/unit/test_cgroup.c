/* SPDX-License-Identifier: MIT */
/*
 * test_cgroup.c - the pure side of cgroup.c: the /proc/self/cgroup,
 * mountinfo and counter-file parsers, and the v2/v1/none choice against
 * fixture trees under data/cgroup/ (fake /proc and /sys/fs/cgroup). Nothing
 * here writes to a cgroup filesystem, or to the fixtures: the choice is
 * tested through cgroup_probe() + cgroup_choose(), and cgroup_root_open()
 * only where it must refuse or fall back to none without preparing anything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

#ifndef TEST_DATA
#error "TEST_DATA must be the absolute path of tests/unit/data"
#endif
#define CG_DATA		TEST_DATA "/cgroup"

static char *
read_data(const char *name)
{
	char path[1024];
	FILE *fp;
	char *buf;
	long len;

	snprintf(path, sizeof path, "%s/%s", CG_DATA, name);
	fp = fopen(path, "re");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len >= 0);
	rewind(fp);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	return buf;
}

/* /proc/self/cgroup */

static void
test_self_v2_line(void **state)
{
	char *p;

	(void)state;
	p = cgroup_parse_self("0::/system.slice/recyclerd.service\n", CG_V2);
	assert_string_equal(p, "/system.slice/recyclerd.service");
	free(p);
	p = cgroup_parse_self("0::/\n", CG_V2);
	assert_string_equal(p, "/");
	free(p);
	/* No final newline; a v1 line before it. */
	p = cgroup_parse_self("4:memory:/a\n0::/b/c", CG_V2);
	assert_string_equal(p, "/b/c");
	free(p);
	assert_null(cgroup_parse_self("4:memory:/a\n", CG_V2));
	/* "0:name=x:/" is hierarchy 0 with a name, not the unified line. */
	assert_null(cgroup_parse_self("0:name=x:/y\n", CG_V2));
}

static void
test_self_v1_line(void **state)
{
	char *buf, *p;

	(void)state;
	buf = read_data("files/proc-self-cgroup-hybrid");
	p = cgroup_parse_self(buf, CG_V1);
	assert_string_equal(p, "/process_api/1526ba46eaede9a94ec60a456211bcca");
	free(p);
	p = cgroup_parse_self(buf, CG_V2);
	assert_string_equal(p, "/");
	free(p);
	free(buf);

	/* Co-mounted controllers, first and last in the list. */
	p = cgroup_parse_self("5:hugetlb,memory:/x\n", CG_V1);
	assert_string_equal(p, "/x");
	free(p);
	p = cgroup_parse_self("5:memory,hugetlb:/y\n", CG_V1);
	assert_string_equal(p, "/y");
	free(p);
	/* Names that merely contain "memory" are other hierarchies. */
	assert_null(cgroup_parse_self("9:name=memory2:/z\n0::/\n", CG_V1));
	assert_null(cgroup_parse_self("9:memoryx:/z\n", CG_V1));
	assert_null(cgroup_parse_self("0::/\n", CG_V1));
}

static void
test_self_malformed(void **state)
{
	(void)state;
	assert_null(cgroup_parse_self("", CG_V2));
	assert_null(cgroup_parse_self("garbage\n", CG_V1));
	assert_null(cgroup_parse_self("4:memory\n", CG_V1));
	assert_null(cgroup_parse_self("4:memory:relative\n", CG_V1));
	assert_null(cgroup_parse_self("0::/x\n", CG_NONE));
}

/* /proc/self/mountinfo */

static void
test_mountinfo_hybrid(void **state)
{
	char *buf, *point = NULL, *root = NULL;

	(void)state;
	buf = read_data("hybrid/proc/self/mountinfo");
	assert_int_equal(cgroup_parse_mountinfo(buf, CG_V1, &point, &root), 0);
	assert_string_equal(point, "/sys/fs/cgroup/memory");
	assert_string_equal(root, "/");
	free(point);
	free(root);
	assert_int_equal(cgroup_parse_mountinfo(buf, CG_V2, &point, &root), 0);
	assert_string_equal(point, "/sys/fs/cgroup/unified");
	free(point);
	free(root);
	free(buf);
}

static void
test_mountinfo_comounted_and_container(void **state)
{
	char *buf, *point = NULL, *root = NULL;

	(void)state;
	buf = read_data("v1-only/proc/self/mountinfo");
	assert_int_equal(cgroup_parse_mountinfo(buf, CG_V1, &point, &root), 0);
	assert_string_equal(point, "/sys/fs/cgroup/memory,hugetlb");
	free(point);
	free(root);
	assert_int_equal(cgroup_parse_mountinfo(buf, CG_V2, &point, &root), -1);
	free(buf);

	buf = read_data("v1-container/proc/self/mountinfo");
	assert_int_equal(cgroup_parse_mountinfo(buf, CG_V1, &point, &root), 0);
	assert_string_equal(point, "/sys/fs/cgroup/memory");
	assert_string_equal(root, "/docker/0123abcd");
	free(point);
	free(root);
	free(buf);
}

static void
test_mountinfo_escapes_and_optional_fields(void **state)
{
	/* Two optional fields before "-", a space escaped as \040. */
	const char *mi = "36 25 0:31 / /mnt/cg\\040two rw shared:9 master:1 "
	    "- cgroup2 none rw\n";
	char *point = NULL, *root = NULL;

	(void)state;
	assert_int_equal(cgroup_parse_mountinfo(mi, CG_V2, &point, &root), 0);
	assert_string_equal(point, "/mnt/cg two");
	free(point);
	free(root);
	/* A cgroup v1 mount without memory is not the memory hierarchy. */
	assert_int_equal(cgroup_parse_mountinfo("31 30 0:28 / /c rw - cgroup "
	    "cgroup rw,cpu,cpuacct\n", CG_V1, &point, &root), -1);
	/* fs type must match exactly. */
	assert_int_equal(cgroup_parse_mountinfo("31 30 0:28 / /c rw - "
	    "cgroup2x x rw\n", CG_V2, &point, &root), -1);
	assert_int_equal(cgroup_parse_mountinfo("short line\n\n", CG_V2,
	    &point, &root), -1);
}

/* Counter files */

static void
test_parse_u64(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(cgroup_parse_u64("67108864\n", &v), 0);
	assert_int_equal(v, 67108864);
	assert_int_equal(cgroup_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cgroup_parse_u64("max\n", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(cgroup_parse_u64("18446744073709551615\n", &v), 0);
	assert_true(v == UINT64_MAX);
	v = 7;
	assert_int_equal(cgroup_parse_u64("", &v), -1);
	assert_int_equal(cgroup_parse_u64("-1\n", &v), -1);
	assert_int_equal(cgroup_parse_u64("12x\n", &v), -1);
	assert_int_equal(cgroup_parse_u64("maximum\n", &v), -1);
	assert_int_equal(cgroup_parse_u64("18446744073709551616\n", &v), -1);
	assert_int_equal(v, 7);
}

/* Captured in the test VM (tests/vm) after an OOM kill under memory.max
 * with memory.oom.group = 1, and after crossing memory.high. */
static void
test_memory_events_v2(void **state)
{
	char *buf;
	uint64_t v;

	(void)state;
	buf = read_data("files/v2-memory.events-oom");
	assert_int_equal(cgroup_parse_keyed(buf, "high", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cgroup_parse_keyed(buf, "max", &v), 0);
	assert_int_equal(v, 18);
	/* "oom" must not match "oom_kill" nor the other way round. */
	assert_int_equal(cgroup_parse_keyed(buf, "oom", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(cgroup_parse_keyed(buf, "oom_kill", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(cgroup_parse_keyed(buf, "oom_group_kill", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(cgroup_parse_keyed(buf, "oom_k", &v), -1);
	assert_int_equal(cgroup_parse_keyed(buf, "", &v), -1);
	free(buf);

	buf = read_data("files/v2-memory.events-high");
	assert_int_equal(cgroup_parse_keyed(buf, "high", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(cgroup_parse_keyed(buf, "oom_kill", &v), 0);
	assert_int_equal(v, 0);
	free(buf);
}

static void
test_memory_stat_v2(void **state)
{
	char *buf;
	uint64_t v;

	(void)state;
	buf = read_data("files/v2-memory.stat");
	assert_int_equal(cgroup_parse_keyed(buf, "anon", &v), 0);
	assert_int_equal(v, 33554432);
	assert_int_equal(cgroup_parse_keyed(buf, "pgfault", &v), 0);
	assert_int_equal(v, 8199);
	assert_int_equal(cgroup_parse_keyed(buf, "slab", &v), 0);
	assert_int_equal(v, 344);
	assert_int_equal(cgroup_parse_keyed(buf, "total_rss", &v), -1);
	free(buf);
	/* A longer key first on the line must not satisfy a shorter one. */
	assert_int_equal(cgroup_parse_keyed("anon_thp 5\ninactive_anon 6\n"
	    "anon 7\n", "anon", &v), 0);
	assert_int_equal(v, 7);
	/* Last line without a newline. */
	assert_int_equal(cgroup_parse_keyed("file 1\nanon 9", "anon", &v), 0);
	assert_int_equal(v, 9);
	assert_int_equal(cgroup_parse_keyed("anon x\n", "anon", &v), -1);
}

static void
test_memory_stat_v1(void **state)
{
	char *buf;
	uint64_t v;

	(void)state;
	/* Captured on a v1 host; total_rss raised so it differs from rss. */
	buf = read_data("files/v1-memory.stat");
	assert_int_equal(cgroup_parse_keyed(buf, "total_rss", &v), 0);
	assert_int_equal(v, 4022272);
	assert_int_equal(cgroup_parse_keyed(buf, "rss", &v), 0);
	assert_int_equal(v, 2011136);
	assert_int_equal(cgroup_parse_keyed(buf, "total_rss_huge", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cgroup_parse_keyed(buf, "hierarchical_memory_limit",
	    &v), 0);
	assert_true(v == 9223372036854771712ULL);
	assert_int_equal(cgroup_parse_keyed(buf, "anon", &v), -1);
	free(buf);
}

static void
test_memory_oom_control_v1(void **state)
{
	char *buf;
	uint64_t v = 9;

	(void)state;
	buf = read_data("files/v1-memory.oom_control");
	assert_int_equal(cgroup_parse_keyed(buf, "oom_kill", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cgroup_parse_keyed(buf, "oom_kill_disable", &v), 0);
	assert_int_equal(cgroup_parse_keyed(buf, "under_oom", &v), 0);
	free(buf);
	assert_int_equal(cgroup_parse_keyed("oom_kill_disable 0\nunder_oom 0\n"
	    "oom_kill 3\n", "oom_kill", &v), 0);
	assert_int_equal(v, 3);
	/* Old kernels have no oom_kill line. */
	assert_int_equal(cgroup_parse_keyed("oom_kill_disable 0\nunder_oom 0\n",
	    "oom_kill", &v), -1);
}

/* The choice */

struct probe_case {
	const char	*name;
	const char	*v2_root;	/* below sys/, NULL = none */
	bool		 v2_writable;
	bool		 v2_memory;
	const char	*v1_root;
	bool		 v1_writable;
	int		 auto_is, v2_is, v1_is;	/* cgroup_choose() results */
};

static const struct probe_case probe_cases[] = {
	{ "v2-memory", "/system.slice/recyclerd.service", true, true,
	    NULL, false, CG_V2, CG_V2, -1 },
	{ "v2-nomemory", "/system.slice/recyclerd.service", true, false,
	    NULL, false, CG_NONE, -1, -1 },
	{ "v2-supervisor", "/system.slice/recyclerd.service", true, true,
	    NULL, false, CG_V2, CG_V2, -1 },
	{ "v2-readonly", "/user.slice/user-1000.slice/session-2.scope", false,
	    true, NULL, false, CG_NONE, -1, -1 },
	{ "hybrid", "/unified", true, false,
	    "/memory/process_api/1526ba46eaede9a94ec60a456211bcca", true,
	    CG_V1, -1, CG_V1 },
	{ "v1-only", NULL, false, false, "/memory,hugetlb/recyclerd", true,
	    CG_V1, -1, CG_V1 },
	{ "v1-container", "/unified", true, false, "/memory", true,
	    CG_V1, -1, CG_V1 },
	{ "v1-readonly", NULL, false, false,
	    "/memory/system.slice/recyclerd.service", false, CG_NONE, -1, -1 },
	{ "none", NULL, false, false, NULL, false, CG_NONE, -1, -1 },
};

static void
check_root(const char *got, const char *dir, const char *want)
{
	char path[1024];

	if (want == NULL) {
		assert_null(got);
		return;
	}
	snprintf(path, sizeof path, "%s%s", dir, want);
	assert_non_null(got);
	assert_string_equal(got, path);
}

static void
test_probe_and_choose_fixtures(void **state)
{
	char proc[512], sys[512];
	struct cgroup_probe p;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(probe_cases); i++) {
		const struct probe_case *c = &probe_cases[i];

		print_message("fixture %s\n", c->name);
		snprintf(proc, sizeof proc, "%s/%s/proc", CG_DATA, c->name);
		snprintf(sys, sizeof sys, "%s/%s/sys", CG_DATA, c->name);
		cgroup_probe(proc, sys, &p);
		check_root(p.v2_root, sys, c->v2_root);
		if (c->v2_root != NULL) {
			assert_int_equal(p.v2_writable, c->v2_writable);
			assert_int_equal(p.v2_memory, c->v2_memory);
		}
		check_root(p.v1_root, sys, c->v1_root);
		if (c->v1_root != NULL)
			assert_int_equal(p.v1_writable, c->v1_writable);

		why = NULL;
		assert_int_equal(cgroup_choose(CGROUP_AUTO, &p, &why),
		    c->auto_is);
		assert_non_null(why);
		why = NULL;
		assert_int_equal(cgroup_choose(CGROUP_V2, &p, &why), c->v2_is);
		assert_non_null(why);
		assert_non_null(strstr(why, "v2"));
		why = NULL;
		assert_int_equal(cgroup_choose(CGROUP_V1, &p, &why), c->v1_is);
		assert_non_null(why);
		assert_non_null(strstr(why, "v1"));
		assert_int_equal(cgroup_choose(CGROUP_NONE, &p, &why), CG_NONE);
		cgroup_probe_fini(&p);
		assert_null(p.v2_root);
	}
}

static void
test_choose_reasons(void **state)
{
	struct cgroup_probe p = { 0 };
	const char *why;

	(void)state;
	assert_int_equal(cgroup_choose(CGROUP_V2, &p, &why), -1);
	assert_non_null(strstr(why, "no cgroup v2"));
	p.v2_root = (char *)"/x";
	assert_int_equal(cgroup_choose(CGROUP_V2, &p, &why), -1);
	assert_non_null(strstr(why, "memory controller"));
	p.v2_memory = true;
	assert_int_equal(cgroup_choose(CGROUP_V2, &p, &why), -1);
	assert_non_null(strstr(why, "not writable"));
	p.v2_writable = true;
	assert_int_equal(cgroup_choose(CGROUP_V2, &p, &why), CG_V2);
	/* v2 wins over v1 in auto when both could work. */
	p.v1_root = (char *)"/y";
	p.v1_writable = true;
	assert_int_equal(cgroup_choose(CGROUP_AUTO, &p, &why), CG_V2);
	p.v2_writable = false;
	assert_int_equal(cgroup_choose(CGROUP_AUTO, &p, &why), CG_V1);
	p.v1_writable = false;
	assert_int_equal(cgroup_choose(CGROUP_AUTO, &p, &why), CG_NONE);
	assert_non_null(strstr(why, "/proc"));
	assert_int_equal(cgroup_choose(CGROUP_V1, &p, &why), -1);
	assert_non_null(strstr(why, "not writable"));
}

/* cgroup_root_open() where it must not prepare anything. */
static void
test_root_open_refuses_or_falls_back(void **state)
{
	static const struct {
		const char	*name;
		enum cgroup_mode mode;
		bool		 is_null;
	} cases[] = {
		{ "hybrid", CGROUP_V2, true },
		{ "v2-memory", CGROUP_V1, true },
		{ "v2-readonly", CGROUP_V2, true },
		{ "v1-readonly", CGROUP_V1, true },
		{ "none", CGROUP_V1, true },
		{ "none", CGROUP_AUTO, false },
		{ "v2-nomemory", CGROUP_AUTO, false },
		{ "v1-readonly", CGROUP_AUTO, false },
		{ "v2-memory", CGROUP_NONE, false },
	};
	char proc[512], sys[512];
	struct cgroup_root *r;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		print_message("fixture %s mode %d\n", cases[i].name,
		    (int)cases[i].mode);
		snprintf(proc, sizeof proc, "%s/%s/proc", CG_DATA,
		    cases[i].name);
		snprintf(sys, sizeof sys, "%s/%s/sys", CG_DATA, cases[i].name);
		why = NULL;
		r = cgroup_root_open(cases[i].mode, proc, sys, NULL, &why);
		assert_non_null(why);
		if (cases[i].is_null) {
			assert_null(r);
			assert_int_equal(errno, ENOTSUP);
			continue;
		}
		assert_non_null(r);
		assert_int_equal(cgroup_root_version(r), CG_NONE);
		assert_string_equal(cgroup_root_path(r), "");
		cgroup_root_close(r);
	}
}

/* With cgroup = none everything is a cheap error. */
static void
test_none_is_inert(void **state)
{
	struct cgroup_root *r;
	const char *why;
	uint64_t v;

	(void)state;
	r = cgroup_root_open(CGROUP_NONE, "/nonexistent", "/nonexistent",
	    NULL, &why);
	assert_non_null(r);
	assert_int_equal(cgroup_root_version(r), CG_NONE);
	assert_null(cgroup_pool_open(r, "web", 0));
	assert_int_equal(errno, ENOTSUP);
	assert_null(cgroup_worker_open(NULL, 0, 0, 0, 0));
	assert_int_equal(cgroup_memory_usage(NULL, &v), -1);
	assert_int_equal(cgroup_memory_anon(NULL, &v), -1);
	assert_int_equal(cgroup_attach(NULL, 0), -1);
	assert_int_equal(cgroup_dir_fd(NULL), -1);
	assert_int_equal(cgroup_join_fd(NULL), -1);
	assert_false(cgroup_contains(NULL, 1));
	assert_int_equal(cgroup_nprocs(NULL), -1);
	assert_int_equal(cgroup_kill(NULL), -1);
	assert_int_equal(cgroup_set_high(NULL, 1), -1);
	assert_int_equal(cgroup_set_max(NULL, 1), -1);
	assert_int_equal(cgroup_threshold_arm(NULL, 1, true), -1);
	assert_false(cgroup_threshold_consume(NULL));
	assert_true(cgroup_oom_kills(NULL) == 0);
	assert_string_equal(cgroup_path(NULL), "");
	cgroup_close(NULL);
	cgroup_root_close(r);
	cgroup_root_close(NULL);
	assert_int_equal(cgroup_root_version(NULL), CG_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_v2_line),
		cmocka_unit_test(test_self_v1_line),
		cmocka_unit_test(test_self_malformed),
		cmocka_unit_test(test_mountinfo_hybrid),
		cmocka_unit_test(test_mountinfo_comounted_and_container),
		cmocka_unit_test(test_mountinfo_escapes_and_optional_fields),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_memory_events_v2),
		cmocka_unit_test(test_memory_stat_v2),
		cmocka_unit_test(test_memory_stat_v1),
		cmocka_unit_test(test_memory_oom_control_v1),
		cmocka_unit_test(test_probe_and_choose_fixtures),
		cmocka_unit_test(test_choose_reasons),
		cmocka_unit_test(test_root_open_refuses_or_falls_back),
		cmocka_unit_test(test_none_is_inert),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
