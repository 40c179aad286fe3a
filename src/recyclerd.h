/* SPDX-License-Identifier: MIT */
/*
 * recyclerd.h - the daemon context: one struct recyclerd, owned by main.c.
 * Data only: no function of main.c is declared here, none is called from
 * another module (the reload hook is a pointer main.c fills in).
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

	/* Reload the configuration from disk (main.c sets it; the control
	 * socket calls it, so that nothing links back to main.c); 0, or -1
	 * if it was refused and the running one is kept. *err (may be NULL)
	 * gets the diagnostics joined by newlines; caller frees. */
	int		(*reload)(struct recyclerd *, char **err);
};

#endif /* RECYCLERD_RECYCLERD_H */
