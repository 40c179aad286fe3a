/* SPDX-License-Identifier: MIT */
/*
 * spawner.h - the spawn server: a small process, forked at start-up, that
 * creates the workers for the daemon.
 *
 * Forking from the daemon costs in proportion to what the daemon holds: a
 * copy of its page tables, copy-on-write faults until the child execs, and
 * a copy of its descriptor table, with several descriptors per worker. At
 * 10,000 workers that made each spawn cost milliseconds, so starting a pool
 * was quadratic. The spawn server holds a handful of descriptors and a
 * small heap, and clones each worker with CLONE_PARENT: the worker is the
 * daemon's child all the same (its exit, PR_SET_PDEATHSIG and the reaping
 * are the daemon's), only the cost of creating it stays constant.
 *
 * The daemon sends one request per worker (the spawn_req and its
 * descriptors, SCM_RIGHTS) on a SOCK_SEQPACKET pair and waits for the pid,
 * before it returns to its loop: no exit can be reaped before its ev_child
 * is started. When the server is gone (or a request is too large for one
 * datagram), the daemon forks the worker itself, as it did before.
 */
#ifndef RECYCLERD_SPAWNER_H
#define RECYCLERD_SPAWNER_H

#include <sys/types.h>

struct spawn_req;
struct spawner;

/* Fork the server; NULL (errno set) if it cannot be started. */
struct spawner	*spawner_start(void);
/* Close our end (the server exits on EOF), reap it, forget it. */
void		 spawner_stop(struct spawner *);
/* spawn_start() through the server, or in this process without one. */
pid_t		 spawner_spawn(struct spawner *, const struct spawn_req *,
		    int *status_fd);
/* The server's pid, 0 when there is none (for status and the tests). */
pid_t		 spawner_pid(const struct spawner *);

#endif /* RECYCLERD_SPAWNER_H */
