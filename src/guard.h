/* SPDX-License-Identifier: MIT */
/*
 * guard.h - a small child process that outlives the daemon by a moment and
 * kills every worker session it was told about.
 *
 * Workers get PR_SET_PDEATHSIG, but their own children do not, and once the
 * daemon is gone they would be reparented away from us. The guard holds the
 * read end of a pipe; the daemon writes +sid when a worker starts (each
 * worker leads its own session) and -sid when it is reaped. When the daemon
 * dies, for whatever reason, the pipe reaches EOF and the guard SIGKILLs
 * every process still in one of those sessions, kills and removes the
 * cgroups the daemon made, then exits. Processes that left their worker's
 * session and were re-parented to the daemon are sent as pids (+p/-p:
 * the pid with GUARD_PID_BIT set); the guard holds a pidfd on each.
 */
#ifndef RECYCLERD_GUARD_H
#define RECYCLERD_GUARD_H

#include <stdbool.h>
#include <sys/types.h>

struct guard;

struct ev_loop;

/* Fork the guard; NULL with errno if that failed. */
struct guard	*guard_start(void);
/* Watch the guard from loop: when it dies, log it and fork a new one that
 * is told the current sessions and cgroups (also when a write to it finds
 * its pipe closed). */
void		 guard_watch(struct guard *, struct ev_loop *);
/* Stop the guard (it sweeps, finds nothing, exits) and reap it. NULL ok. */
void		 guard_stop(struct guard *);
pid_t		 guard_pid(const struct guard *);
void		 guard_add(struct guard *, pid_t sid);
void		 guard_del(struct guard *, pid_t sid);
/* An orphan re-parented to the daemon (orphans.c): killed too, and its
 * session if it leads one. */
void		 guard_add_pid(struct guard *, pid_t pid);
void		 guard_del_pid(struct guard *, pid_t pid);
/* When the daemon dies, also kill what is in the cgroups below path and
 * remove them (and path itself with remove_self). */
void		 guard_cgroups(struct guard *, const char *path,
		    bool remove_self);

#endif /* RECYCLERD_GUARD_H */
