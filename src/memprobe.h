/* SPDX-License-Identifier: MIT */
/*
 * memprobe.h - memory of a worker's process tree, read from /proc.
 *
 * The parsers are pure functions over a buffer. A struct memprobe belongs to
 * one worker process: it keeps descriptors on the worker's own statm and
 * children files so a sample costs a few pread()s, and walks descendants
 * through /proc/PID/task/TID/children. smaps_rollup, which walks page tables
 * and stalls the worker's mmap meanwhile, is read only when asked for.
 */
#ifndef RECYCLERD_MEMPROBE_H
#define RECYCLERD_MEMPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* One reading of a process tree, in bytes. */
struct mem_sample {
	uint64_t	 rss;
	uint64_t	 pss;		/* valid when has_smaps */
	uint64_t	 uss;		/* valid when has_smaps */
	bool		 has_smaps;
	unsigned int	 nprocs;	/* processes counted */
};

/* statm: "size resident shared text lib data dt" in pages -> rss bytes. */
int	memprobe_parse_statm(const char *buf, long page_size, uint64_t *rss)
	    MUST_CHECK;
/* smaps_rollup: Rss, Pss, Private_Clean + Private_Dirty (+ Private_Hugetlb)
 * in kB -> bytes. -1 if Rss or Pss is missing. */
int	memprobe_parse_smaps_rollup(const char *buf, uint64_t *rss,
	    uint64_t *pss, uint64_t *uss) MUST_CHECK;
/* children: space-separated pids; up to max stored, returns the count
 * stored (pids past max are dropped). */
size_t	memprobe_parse_children(const char *buf, pid_t *pids, size_t max);

struct memprobe;

/* Open the kept descriptors for pid; NULL with errno if it is gone. */
struct memprobe *memprobe_new(pid_t pid);
void	memprobe_free(struct memprobe *);	/* NULL ok */

/*
 * Sample the tree rooted at the probe's pid. RSS always; PSS and USS only
 * when with_smaps. Processes that vanish meanwhile are skipped. Returns 0,
 * or -1 with errno (ESRCH) when the root itself is gone.
 */
int	memprobe_sample(struct memprobe *, bool with_smaps,
	    struct mem_sample *) MUST_CHECK;

/*
 * The same, with the trees of extra roots counted too (processes that left
 * the root's tree but belong to it: orphans re-parented to the daemon).
 */
int	memprobe_sample_roots(struct memprobe *, const pid_t *extra,
	    size_t nextra, bool with_smaps, struct mem_sample *) MUST_CHECK;
/*
 * The pids the last memprobe_sample*() walked if it was this probe's (the
 * root first, then descendants and extra roots, some possibly gone
 * meanwhile); 0 if it did not walk. Valid until the next sample of any
 * probe.
 */
size_t	memprobe_last_walk(const struct memprobe *, const pid_t **pids);

/*
 * The root process alone, no walk: a prefork master's own memory when its
 * children are measured each on its own (recycle_scope = children). Same
 * errors as memprobe_sample().
 */
int	memprobe_sample_root(struct memprobe *, bool with_smaps,
	    struct mem_sample *) MUST_CHECK;
/* Direct children of the probe's root (of all its threads), through its
 * kept descriptors; returns the count stored, at most max. */
size_t	memprobe_root_children(struct memprobe *, pid_t *pids, size_t max);

/* Pids of the tree rooted at root (root first); returns the count. */
size_t	memprobe_tree(pid_t root, pid_t *pids, size_t max);

/* Direct children of pid (of all its threads); returns the count. */
size_t	memprobe_children(pid_t pid, pid_t *pids, size_t max);

/*
 * Reads made so far, by kind, for the metrics: statm and smaps_rollup
 * counted here, cgroup counters by the caller (memprobe_count).
 */
enum probe_kind { PROBE_STATM, PROBE_SMAPS, PROBE_CGROUP, PROBE__COUNT };
void	 memprobe_count(enum probe_kind);
uint64_t memprobe_reads(enum probe_kind);
const char *memprobe_kind_name(enum probe_kind);

/* The daemon's own resident set, in bytes (0 if unreadable). */
uint64_t memprobe_self_rss(void);

#endif /* RECYCLERD_MEMPROBE_H */
