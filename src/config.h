/* SPDX-License-Identifier: MIT */
/*
 * config.h - the configuration snapshot: [recyclerd] and every [pool NAME].
 *
 * config_load() reads the main file and every *.conf in pools_dir (sorted),
 * checks every key and value, and returns an immutable, reference-counted
 * snapshot, or NULL after adding one diagnostic per problem ("file:line:
 * [section] key: what is wrong") to the diag list. Nothing here touches a
 * process or a socket: the daemon, the -t check and the unit tests share it.
 *
 * Any pool key may also be set in [recyclerd]: it is then the default for
 * every pool that does not set it.
 */
#ifndef RECYCLERD_CONFIG_H
#define RECYCLERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util.h"

/*
 * configure's --sysconfdir, passed by Makefile.am to the daemon's build, so
 * that it reads what `make install` installs; design.md's /etc otherwise
 * (the unit tests, which check the man pages' defaults).
 */
#ifndef SYSCONFDIR
#define SYSCONFDIR		"/etc"
#endif
#define CONFIG_DEFAULT_PATH	SYSCONFDIR "/recyclerd/recyclerd.conf"
/* Whatever the prefix: recyclerctl's default (and the unit's /run). */
#define CONFIG_DEFAULT_SOCKET	"/run/recyclerd/control.sock"

enum ready_mode { READY_SPAWN, READY_NOTIFY };
/* exec: every worker runs command; template: command runs once and forks
 * the workers (template.c). */
enum spawn_mode { SPAWN_EXEC, SPAWN_TEMPLATE };

enum mem_metric {
	METRIC_RSS,		/* /proc/PID/statm resident */
	METRIC_PSS,		/* smaps_rollup Pss (statm prefilter) */
	METRIC_USS,		/* smaps_rollup Private_* (statm prefilter) */
	METRIC_CGROUP,		/* memory.current / memory.usage_in_bytes */
	METRIC_CGROUP_ANON,	/* anon from memory.stat */
};

enum cgroup_mode { CGROUP_AUTO, CGROUP_V2, CGROUP_V1, CGROUP_NONE };

/* What a pool's limits apply to (children.h): the worker's tree, or each
 * direct child of the worker, a prefork server's master. */
enum recycle_scope { SCOPE_TREE, SCOPE_CHILDREN };

#define CAPS_ALL	UINT64_MAX	/* capabilities = all: no change */

/* One listening address of a pool ("listen" key). */
struct listen_spec {
	char		*text;		/* as written, for messages */
	char		*name;		/* LISTEN_FDNAMES entry */
	enum { LISTEN_TCP, LISTEN_UNIX, LISTEN_SYSTEMD } kind;
	char		*host;		/* TCP: host or NULL for any; UNIX: path */
	uint16_t	 port;		/* TCP */
	int		 family;	/* AF_INET, AF_INET6, AF_UNSPEC */
	mode_t		 mode;		/* UNIX: socket file mode; 0 = umask */
	char		*owner;		/* UNIX: user[:group] or NULL */
};

/* A [pool NAME] section, fully defaulted and validated. Plain data. */
struct pool_config {
	char		*name;
	char		*file;		/* where the section starts */
	int		 line;

	/* What to run and how. */
	char		**argv;		/* command, split; argv[0] resolved */
	char		**env;		/* environment: KEY=VALUE strings */
	char		*user;		/* NULL = daemon's own */
	char		*group;
	uid_t		 uid;		/* valid when user != NULL */
	gid_t		 gid;		/* valid when user or group != NULL */
	char		*directory;	/* NULL = daemon's cwd */
	unsigned int	 workers;	/* desired ready workers, >= 0 */
	bool		 no_new_privs;	/* resolved: yes by default with user= */
	uint64_t	 capabilities;	/* bounding set kept, bit n = cap n;
					 * CAPS_ALL = left alone (resolved:
					 * none by default for non-root user=) */

	/* Start-up. */
	enum ready_mode	 ready;
	enum spawn_mode	 spawn;
	uint64_t	 ready_timeout_ms;

	/* Recycling triggers; 0 = off. */
	enum mem_metric	 memory_metric;
	uint64_t	 recycle_memory;	/* bytes: graceful, overlapped */
	uint64_t	 kill_memory;		/* bytes: SIGKILL at once */
	uint64_t	 max_tasks;		/* TASKS= count */
	uint64_t	 max_lifetime_ms;
	uint32_t	 jitter_ppm;		/* thresholds lowered by up to this */
	unsigned int	 recycle_samples;	/* consecutive samples over */
	uint64_t	 sample_interval_ms;

	/* Draining. */
	int		 drain_signal;
	uint64_t	 drain_timeout_ms;
	uint64_t	 shutdown_timeout_ms;
	bool		 overlap;
	unsigned int	 max_recycling;		/* 0 = auto */
	uint32_t	 max_overshoot_ppm;	/* of recycle_memory; 0 = off */
	bool		 prespawn;		/* replace before the crossing */
	enum recycle_scope recycle_scope;
	int		 child_drain_signal;	/* recycle_scope = children */

	/* Crash handling. */
	uint64_t	 restart_backoff_ms;	/* first delay; doubles */
	uint64_t	 min_uptime_ms;		/* resets the backoff */
	unsigned int	 rapid_fail;		/* failures within window; 0 = off */
	uint64_t	 rapid_fail_window_ms;

	/* cgroup limits (bytes; 0 = none). */
	uint64_t	 memory_high;
	uint64_t	 memory_max;
	uint64_t	 pool_memory_max;
	uint64_t	 pool_recycle_memory;

	/* Sockets and watchdog. */
	struct listen_spec *listen;
	size_t		 nlisten;
	int		 listen_backlog;
	uint64_t	 watchdog_ms;		/* 0 = off */
};

/* The whole snapshot. */
struct config {
	unsigned int	 refs;
	char		*path;		/* main file */

	/* [recyclerd] */
	char		*pools_dir;
	char		*control_socket;
	char		*control_group;	/* NULL = root only */
	gid_t		 control_gid;
	int		 log_level;	/* LOG_ERR .. LOG_DEBUG */
	enum cgroup_mode cgroup;

	struct pool_config **pools;	/* sorted by name */
	size_t		 npools;
};

/* A list of diagnostics, one string each ("file:line: ..."). */
struct diag {
	char		**msgs;
	size_t		 n;
};
#define DIAG_INIT	((struct diag){ NULL, 0 })
void	diag_add(struct diag *, const char *fmt, ...) PRINTFLIKE(2, 3);
void	diag_print(const struct diag *, FILE *);
void	diag_log(const struct diag *, int prio);
void	diag_free(struct diag *);

/* Load and validate; caller owns the result (config_unref). */
struct config *config_load(const char *path, struct diag *) MUST_CHECK;
/* Write cfg (or only its pool named pool) as a file config_load() reads,
 * every key, built-in defaults marked; -1 on a write error. */
int		 config_dump(const struct config *, const char *pool, FILE *);
struct config *config_ref(struct config *);
void	config_unref(struct config *);		/* frees at zero; NULL ok */

const struct pool_config *config_find_pool(const struct config *,
	    const char *name);

/*
 * What a change of a key needs when the configuration is reloaded, weakest
 * first: the option table says it for each key (config_keys[].change).
 */
enum config_change {
	CHANGE_NONE,	/* nothing: read where it is used (the pool, its
			 * count, workers started from now on) */
	CHANGE_LIMITS,	/* new limits for the live workers and the pool */
	CHANGE_RESPAWN,	/* workers would run differently: recycle them */
	CHANGE_RESTART,	/* takes effect at the next start of the daemon */
};

/*
 * The strongest change needed to go from pool section a to b, walking the
 * option table, and in *first_key the first key (table order) that needs
 * it; CHANGE_NONE and NULL when every key is the same (name, file and line
 * aside).
 */
enum config_change config_diff_pool(const struct pool_config *a,
	    const struct pool_config *b, const char **first_key);
/*
 * The [recyclerd] keys that differ between a and b, one per call: start
 * with *pos = 0; NULL when there is none left. *change says what it needs.
 */
const char *config_diff_daemon(const struct config *a,
	    const struct config *b, size_t *pos, enum config_change *change);
/* True when two pool sections are the same in every key. */
bool	pool_config_equal(const struct pool_config *,
	    const struct pool_config *);

const char *mem_metric_name(enum mem_metric);
const char *ready_mode_name(enum ready_mode);
const char *cgroup_mode_name(enum cgroup_mode);
const char *recycle_scope_name(enum recycle_scope);

/*
 * The keys the parser accepts, for docs and tests: section is "recyclerd"
 * or "pool". Terminated by a NULL name.
 */
struct config_key {
	const char	*section;
	const char	*name;
	const char	*def;		/* default as written, NULL = required/none */
	enum config_change change;	/* what a reload changing it needs */
};
extern const struct config_key config_keys[];

#endif /* RECYCLERD_CONFIG_H */
