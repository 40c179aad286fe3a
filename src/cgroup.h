/* SPDX-License-Identifier: MIT */
/*
 * cgroup.h - per-worker memory cgroups, v2 or v1, and their kernel events.
 *
 * The daemon owns one tree: ROOT/POOL/worker-N-G (G: a generation counter,
 * so a replacement and the worker it replaces never share a group). On v2
 * ROOT is the daemon's own cgroup; the daemon moves itself into a leaf
 * ROOT/supervisor and enables +memory in ROOT's subtree_control. On v1 ROOT
 * is the daemon's memory cgroup (/proc/self/cgroup "memory:" line). With
 * cgroup = none every function here is a cheap no-op returning an error.
 *
 * Nothing here uses libev: event sources are returned as descriptors that
 * the caller watches (ev_io) and then calls cgroup_*_consume() on.
 */
#ifndef RECYCLERD_CGROUP_H
#define RECYCLERD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"		/* enum cgroup_mode */
#include "util.h"

enum cgroup_version { CG_NONE = 0, CG_V1 = 1, CG_V2 = 2 };

struct cgroup_root;		/* the daemon's tree */
struct cgroup;			/* one pool or one worker group */

/*
 * Pick and prepare the hierarchy. mode AUTO: v2 when the daemon's own v2
 * cgroup is writable with the memory controller available, else v1 when its
 * memory v1 cgroup is writable, else none. *why gets a static sentence
 * explaining the choice (for the log). Kills and removes groups left by an
 * earlier run (any POOL/worker-* below ROOT). Never NULL: falls back to
 * CG_NONE unless mode names a version that cannot be used, then NULL and
 * *why says why.
 * proc_root and sys_root are "/proc" and "/sys/fs/cgroup" except in tests.
 * instance (NULL ok): on v1, ROOT becomes a directory of that name below
 * the daemon's memory cgroup, created if needed and removed at close, so
 * that daemons sharing a cgroup never touch each other's groups.
 */
struct cgroup_root *cgroup_root_open(enum cgroup_mode mode,
	    const char *proc_root, const char *sys_root, const char *instance,
	    const char **why);
/*
 * (cgroup.c) *why is static text, or names the file and errno when setting
 * up the chosen version failed; it stays valid until the next open. Auto
 * falls back v2 -> v1 -> none when preparing a version fails. A daemon
 * already in ROOT/supervisor (an earlier open) keeps ROOT as the parent.
 * Stale groups are waited for up to 2 s each (before the loop starts).
 */
/*
 * Kill and remove every group still open (workers, then pools; their
 * structs are freed: do not use them afterwards), wait up to 2 s for
 * groups still busy, and free. On v2 the daemon stays in ROOT/supervisor.
 * NULL ok.
 */
void	cgroup_root_close(struct cgroup_root *);
/* Retry removing groups that were still busy when closed (a v1 memcg goes
 * offline asynchronously); returns how many are still pending. */
size_t	cgroup_root_tidy(struct cgroup_root *);
enum cgroup_version cgroup_root_version(const struct cgroup_root *);
const char *cgroup_root_path(const struct cgroup_root *);	/* "" if none */

/*
 * Pool group ROOT/POOL, with pool_memory_max as its limit (0 = none).
 * NULL with errno: ENOTSUP (none), EINVAL (a name that is not a plain
 * directory name, or "supervisor", "worker-N-G", "cgroup.*", "memory.*").
 * An existing ROOT/POOL is reused. Each group keeps 5 descriptors open.
 */
struct cgroup *cgroup_pool_open(struct cgroup_root *, const char *pool,
	    uint64_t pool_memory_max);
/*
 * Worker group POOL/worker-SLOT-GEN with memory_high/memory_max (0 = none);
 * on v2 also memory.oom.group = 1. v1 has no memory.high: memory_high is
 * ignored there, and cgroup_set_high() fails with EOPNOTSUPP (log it once).
 * NULL with errno (EEXIST: that slot and generation are in use). Slot
 * CGROUP_TEMPLATE makes the group of a template, POOL/template-GEN.
 */
#define CGROUP_TEMPLATE	0xffffffffu
struct cgroup *cgroup_worker_open(struct cgroup *pool, unsigned int slot,
	    unsigned int gen, uint64_t memory_high, uint64_t memory_max);
/*
 * Kill what is left (cgroup.kill, or SIGKILL each pid on v1), rmdir, free.
 * Does not block for more than ~10 ms: a group whose dying processes keep
 * it busy is removed later (next open or cgroup_root_close). Closing a pool
 * with workers still open defers its removal until the last one closes.
 * NULL ok.
 */
void	cgroup_close(struct cgroup *);
const char *cgroup_path(const struct cgroup *);

/* Directory fd for clone3(CLONE_INTO_CGROUP) on v2, else -1. */
int	cgroup_dir_fd(const struct cgroup *);
/* A new O_PATH, close-on-exec descriptor of its directory (v1 and v2),
 * for a template's forked worker; -1 with errno. */
int	cgroup_open_path(const struct cgroup *);
/* Move process pid (all its threads) into the group: cgroup.procs; 0 or
 * -1 with errno. On v1 that waits for an RCU grace period (8-20 ms). */
int	cgroup_attach(const struct cgroup *, pid_t pid);
/* Whether pid is in the group (cgroup.procs lists it); false on error. */
bool	cgroup_contains(const struct cgroup *, pid_t pid);
/*
 * The kept descriptor a forked child writes "0" to between fork and exec,
 * to join the group: cgroup.procs, or on v1 tasks, which moves the
 * calling thread alone (the child of a fork has no other) and without
 * the wait of a v1 cgroup.procs write for an RCU grace period (8-20 ms,
 * the most of what a spawn cost). -1 if none.
 */
int	cgroup_join_fd(const struct cgroup *);

/* memory.current (v2) / memory.usage_in_bytes (v1), bytes; -1 on error. */
int	cgroup_memory_usage(const struct cgroup *, uint64_t *bytes);
/* anon from memory.stat ("anon" v2 / "total_rss" v1, plus total_rss_huge
 * since v1 counts transparent huge pages apart), bytes. */
int	cgroup_memory_anon(const struct cgroup *, uint64_t *bytes);
/* Set memory.high (v2 only, else -1 EOPNOTSUPP) / memory.max|limit_in_bytes;
 * 0 = max. */
int	cgroup_set_high(struct cgroup *, uint64_t bytes);
int	cgroup_set_max(struct cgroup *, uint64_t bytes);
/* Number of processes in the group. */
int	cgroup_nprocs(const struct cgroup *);
/* Kill every process in the group with SIGKILL (cgroup.kill on v2). */
int	cgroup_kill(struct cgroup *);

/*
 * Event source for "usage crossed threshold": v1 cgroup.event_control with
 * an eventfd on memory.usage_in_bytes; v2 an inotify fd on memory.events
 * (and memory.high set to the threshold when use_high). Returns an fd to
 * watch for reading, or -1 (no event support: poll instead). Re-arming
 * replaces the previous threshold.
 * (cgroup.c) The fd belongs to the module. v1: a new eventfd per arm; the
 * previous one is closed, so stop its watcher before re-arming. v2: one
 * inotify fd shared by every group of the root (libev allows one watcher
 * per group on the same fd; consume sorts the events out), stable across
 * re-arms. Without use_high the v2 fd still wakes on memory.max/OOM events.
 * The kernel keeps notifying while a group stays over memory.high, and a
 * worker over memory.high without swap is throttled, not killed. bytes == 0
 * disarms (memory.high back to what cgroup_set_high() set) and returns -1
 * with errno 0.
 */
int	cgroup_threshold_arm(struct cgroup *, uint64_t bytes, bool use_high);
/*
 * Drain the event fd; returns true when the threshold event fired: v2 with
 * use_high, the memory.events "high" count grew; otherwise (v1 signals
 * both directions) an event came and usage is now at or over the threshold.
 */
bool	cgroup_threshold_consume(struct cgroup *);

/*
 * OOM kills seen so far in this group (memory.events oom_kill on v2,
 * memory.oom_control oom_kill on v1). Returns the count, or 0.
 */
uint64_t cgroup_oom_kills(const struct cgroup *);

/* Pure parsers, unit-tested against fixtures. */
int	cgroup_parse_keyed(const char *buf, const char *key, uint64_t *val)
	    MUST_CHECK;
/* The path of the controller's line in /proc/self/cgroup ("0::/x" for v2,
 * "N:memory:/x" or "N:...,memory,...:/x" for v1); NULL if absent. */
char	*cgroup_parse_self(const char *buf, enum cgroup_version);
/* (cgroup.c) One number as in memory.current; "max" gives UINT64_MAX. */
int	cgroup_parse_u64(const char *buf, uint64_t *val) MUST_CHECK;
/* (cgroup.c) The first cgroup2 (CG_V2) or memory cgroup v1 (CG_V1) mount
 * in a /proc/self/mountinfo text: mount point and mounted cgroup path
 * (malloc'd, caller frees); 0, or -1 when none. */
int	cgroup_parse_mountinfo(const char *buf, enum cgroup_version,
	    char **mnt_point, char **mnt_root) MUST_CHECK;

/*
 * (cgroup.c) What cgroup_root_open() decides from, split out so that tests
 * can check the choice against fixture trees without writing anything.
 * cgroup_probe() reads proc_root/self/{cgroup,mountinfo}; mount points
 * under /sys/fs/cgroup are taken relative to sys_root. Writability is
 * access(W_OK) on ROOT, its cgroup.procs (and v2 cgroup.subtree_control).
 */
struct cgroup_probe {
	char		*v2_root;	/* NULL: no cgroup2 mount or 0:: line */
	bool		 v2_writable;
	bool		 v2_memory;	/* "memory" in ROOT/cgroup.controllers */
	char		*v1_root;	/* NULL: no memory v1 mount or line */
	bool		 v1_writable;
};
void	cgroup_probe(const char *proc_root, const char *sys_root,
	    struct cgroup_probe *);
void	cgroup_probe_fini(struct cgroup_probe *);
/* A pure function: CG_V2, CG_V1, CG_NONE, or -1 when mode names a version
 * that cannot be used; *why always gets a static sentence. */
int	cgroup_choose(enum cgroup_mode, const struct cgroup_probe *,
	    const char **why);

#endif /* RECYCLERD_CGROUP_H */
