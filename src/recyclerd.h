/* SPDX-License-Identifier: MIT */
/*
 * recyclerd.h - the daemon context: one struct recyclerd, owned by main.c.
 *
 * Modules receive it as an argument (never as a global) to reach the loop,
 * the running configuration, the pools and the shared services (notify
 * socket, events ring, guard, cgroup tree).
 */
#ifndef RECYCLERD_RECYCLERD_H
#define RECYCLERD_RECYCLERD_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <ev.h>

#include "pidmap.h"

struct config;
struct cgroup_root;
struct control;
struct events;
struct guard;
struct notify;
struct orphans;
struct spawner;
struct pool;
struct worker;

struct recyclerd {
	struct ev_loop	*loop;
	char		*config_path;
	struct config	*cfg;		/* running snapshot (one ref) */
	pid_t		 pid;		/* our own, for the children */
	long		 nofile;	/* RLIMIT_NOFILE soft limit at start */

	LIST_HEAD(, pool) pools;	/* every pool, removed ones until empty */
	struct pidmap	 pidmap;	/* live worker pid -> struct worker */

	struct notify	*notify;	/* the workers' NOTIFY_SOCKET */
	struct events	*events;	/* ring of recent events */
	struct guard	*guard;		/* kills every worker if we die */
	struct spawner	*spawner;	/* forks the workers for us */
	struct orphans	*orphans;	/* processes re-parented to us */
	struct cgroup_root *cg;		/* NULL or the per-worker groups */
	struct control	*control;	/* control socket server */
	LIST_HEAD(, output) outputs;	/* relays of worker stdout/stderr */

	ev_prepare	 deferred;	/* once per loop turn: pools, READY */
	ev_signal	 sig[6];
	ev_timer	 watchdog;	/* WATCHDOG=1 to systemd */
	ev_timer	 tidy;		/* busy cgroups left to remove */
	bool		 stopping;	/* SIGTERM/SIGINT received */
	bool		 done;		/* stopping, and every worker is gone */
	bool		 reported_ready; /* READY=1 sent to systemd */
	int		 exit_code;	/* of main(), 0 unless start-up failed */
	bool		 no_prefilter;	/* RECYCLERD_NO_PREFILTER=1: read
					 * smaps_rollup every sample (bench) */
	double		 started_mono;
	double		 status_mono;	/* last STATUS= to systemd */
};

/* Reload the configuration from disk; 0, or -1 if it was refused (the
 * running one is kept). *err (may be NULL) gets the diagnostics joined by
 * newlines; caller frees. */
int	recyclerd_reload(struct recyclerd *, char **err);
/* Begin a graceful stop (as SIGTERM does). */
void	recyclerd_stop(struct recyclerd *);
/* Called when anything changed that may complete start-up or shutdown. */
void	recyclerd_check(struct recyclerd *);

struct pool *recyclerd_find_pool(struct recyclerd *, const char *name);

#endif /* RECYCLERD_RECYCLERD_H */
