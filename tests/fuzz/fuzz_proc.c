/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proc.c - libFuzzer target for the parsers of kernel text: /proc/PID/
 * statm, smaps_rollup and task/TID/children (memprobe.c), and the cgroup
 * files memory.current, memory.stat, memory.events, /proc/self/cgroup and
 * /proc/self/mountinfo (cgroup.c). Every input goes through every parser,
 * so one corpus serves them all; what a parser accepts is checked against
 * what the text can hold.
 *
 *	tests/fuzz/fuzz_proc -max_total_time=600 CORPUS_DIR (see Makefile.am)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cgroup.h"
#include "memprobe.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_proc: invariant broken: %s\n", what);
		abort();
	}
}

static void
fuzz_memprobe(const char *buf, size_t max)
{
	static const long pages[] = { 4096, 65536, 1L << 40 };
	pid_t pids[64];
	uint64_t rss, pss, uss;
	size_t i, n;

	for (i = 0; i < sizeof pages / sizeof pages[0]; i++)
		if (memprobe_parse_statm(buf, pages[i], &rss) == 0)
			check(rss % (uint64_t)pages[i] == 0,
			    "statm rss is whole pages");
	if (memprobe_parse_smaps_rollup(buf, &rss, &pss, &uss) == 0)
		check(rss % 1024 == 0 && pss % 1024 == 0 && uss % 1024 == 0,
		    "smaps_rollup values are whole kB");
	n = memprobe_parse_children(buf, pids, max);
	check(n <= max, "children count within max");
	for (i = 0; i < n; i++)
		check(pids[i] > 0, "children pid positive");
}

/* The path found must be a piece of one line of buf, and absolute. */
static void
check_path(const char *buf, const char *path)
{
	check(path[0] == '/', "cgroup path absolute");
	check(strchr(path, '\n') == NULL, "cgroup path on one line");
	check(strstr(buf, path) != NULL, "cgroup path taken from the text");
}

static void
fuzz_cgroup(const char *buf)
{
	static const char *const keys[] = { "anon", "total_rss",
	    "total_rss_huge", "oom_kill", "high" };
	static const enum cgroup_version versions[] = { CG_V1, CG_V2 };
	char *path, *point, *root;
	uint64_t v;
	size_t i;

	(void)cgroup_parse_u64(buf, &v);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		(void)cgroup_parse_keyed(buf, keys[i], &v);
	check(cgroup_parse_keyed(buf, "", &v) == -1, "empty key refused");
	for (i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		if ((path = cgroup_parse_self(buf, versions[i])) != NULL) {
			check_path(buf, path);
			free(path);
		}
		point = root = NULL;
		if (cgroup_parse_mountinfo(buf, versions[i], &point,
		    &root) == 0) {
			check(point != NULL && root != NULL,
			    "mountinfo gives both paths");
			free(point);
			free(root);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	/* The daemon reads into buffers it NUL-terminates; so do we, at
	 * the exact size, so that ASan sees any read past the end. */
	buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	fuzz_memprobe(buf, size > 0 ? data[0] % 65 : 64);
	fuzz_cgroup(buf);
	free(buf);
	return 0;
}
