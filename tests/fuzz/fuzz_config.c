/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - libFuzzer target for the configuration parser: the input
 * is written as a main file and config_load() reads it, the same entry point
 * as `recyclerd -t`. A line "--8<--" splits the input: what follows goes to
 * pools.d/fuzz.conf beside the main file (seeds set pools_dir = pools.d), so
 * the pools_dir path is fuzzed too. Either a snapshot or diagnostics, never
 * both; a snapshot's pools are sorted, found by name, and equal to
 * themselves.
 *
 *	tests/fuzz/fuzz_config -max_total_time=600 CORPUS_DIR (see Makefile.am)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CUT	"\n--8<--\n"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz_config.XXXXXX";
static char main_path[sizeof dir + 16], pool_path[sizeof dir + 32];
static char pools_dir[sizeof dir + 16];

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
		abort();
	}
}

static void
put_file(const char *path, const uint8_t *data, size_t size)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	check(fd != -1, "open a file in the scratch directory");
	check(size == 0 || write(fd, data, size) == (ssize_t)size, "write");
	close(fd);
}

static void
cleanup(void)
{
	(void)unlink(pool_path);
	(void)rmdir(pools_dir);
	(void)unlink(main_path);
	(void)rmdir(dir);
}

static void
setup(void)
{
	log_init(LOG_TARGET_STDERR, LOG_ERR);
	check(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(main_path, sizeof main_path, "%s/main.conf", dir);
	snprintf(pools_dir, sizeof pools_dir, "%s/pools.d", dir);
	snprintf(pool_path, sizeof pool_path, "%s/fuzz.conf", pools_dir);
	check(mkdir(pools_dir, 0755) == 0, "mkdir pools.d");
	atexit(cleanup);
}

static void
check_snapshot(const struct config *cfg)
{
	const struct pool_config *pc;
	size_t i;

	check(cfg->refs == 1, "one reference");
	check(cfg->pools_dir != NULL && cfg->control_socket != NULL,
	    "daemon paths set");
	for (i = 0; i < cfg->npools; i++) {
		pc = cfg->pools[i];
		check(pc->name != NULL && pc->name[0] != '\0', "pool named");
		check(i == 0 || strcmp(cfg->pools[i - 1]->name, pc->name) < 0,
		    "pools sorted by name, no duplicate");
		check(config_find_pool(cfg, pc->name) == pc,
		    "pool found by name");
		check(pool_config_equal(pc, pc), "pool equal to itself");
		check(pc->argv != NULL && pc->argv[0] != NULL &&
		    pc->argv[0][0] == '/', "command resolved to a path");
		check(pc->nlisten == 0 || pc->listen != NULL, "listen list");
	}
	check(config_find_pool(cfg, "") == NULL, "no pool named \"\"");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag d = DIAG_INIT;
	struct config *cfg;
	const uint8_t *cut;
	size_t i;

	if (main_path[0] == '\0')
		setup();
	cut = memmem(data, size, CUT, sizeof CUT - 1);
	if (cut != NULL) {
		put_file(main_path, data, (size_t)(cut - data) + 1);
		cut += sizeof CUT - 1;
		put_file(pool_path, cut, size - (size_t)(cut - data));
	} else {
		put_file(main_path, data, size);
		(void)unlink(pool_path);
	}
	cfg = config_load(main_path, &d);
	check((cfg == NULL) == (d.n > 0), "a snapshot or diagnostics");
	for (i = 0; i < d.n; i++)
		check(d.msgs[i] != NULL && d.msgs[i][0] != '\0',
		    "diagnostic not empty");
	if (cfg != NULL) {
		check_snapshot(cfg);
		check(config_ref(cfg) == cfg, "config_ref");
		config_unref(cfg);
		config_unref(cfg);
	}
	diag_free(&d);
	return 0;
}
