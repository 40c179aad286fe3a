/* SPDX-License-Identifier: MIT */
/*
 * spawn.h - fork (or clone3 into a cgroup) and exec one worker process.
 *
 * Everything the child needs is prepared by the parent beforehand; the
 * child only makes async-signal-safe calls. A failed exec (or chdir, setuid,
 * ...) is reported through a close-on-exec pipe: EOF on the pipe means the
 * exec happened. The parent does not wait for it (starting 200 workers
 * must not stall the loop): it watches the pipe.
 */
#ifndef RECYCLERD_SPAWN_H
#define RECYCLERD_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spawn_req {
	char *const	*argv;		/* argv[0] is an absolute path */
	char *const	*envp;		/* complete environment */
	char		*pid_vars[2];	/* NULL, or "NAME=" entries of envp
					 * with room for 12 more bytes: the
					 * child writes its own pid there
					 * (LISTEN_PID, WATCHDOG_PID) */
	const char	*directory;	/* NULL = inherit */
	bool		 set_ids;
	uid_t		 uid;
	gid_t		 gid;
	const gid_t	*groups;	/* supplementary groups when set_ids */
	size_t		 ngroups;
	const int	*fds;		/* passed at 3, 4, ... */
	size_t		 nfds;
	int		 stdout_fd;	/* write ends, or -1 for /dev/null */
	int		 stderr_fd;
	int		 cgroup_dir_fd;	/* v2: clone3 CLONE_INTO_CGROUP, or -1 */
	int		 cgroup_join_fd; /* else write "0" here (tasks on v1), or -1 */
	int		 pdeathsig;	/* signal when the daemon dies */
	long		 nofile;	/* RLIMIT_NOFILE soft limit to restore
					 * (the daemon raised its own), or -1 */
	bool		 drop_caps;	/* shrink the bounding set to: */
	uint64_t	 capabilities;	/* bit n = keep capability n */
	bool		 no_new_privs;	/* PR_SET_NO_NEW_PRIVS before exec */
};

/* What failed in the child, for the message. */
struct spawn_error {
	int		 err;		/* errno, 0 if the exec happened */
	const char	*step;		/* "exec", "chdir", "setuid", ... */
};

/*
 * Start the process in its own session. Returns its pid, or -1 with errno
 * if no process was created. It does not wait for the exec: *status_fd
 * gets the non-blocking, close-on-exec read end of the status pipe, which
 * the caller watches and hands to spawn_status() (and then closes).
 */
pid_t	spawn_start(const struct spawn_req *, int *status_fd);

/*
 * The fork itself, for spawn_start() and the spawn server (spawner.c):
 * the child reports failures on status_wfd and checks that parent is its
 * parent. With sibling, the process becomes the child of our own parent
 * (CLONE_PARENT): the daemon's, though the spawn server created it.
 */
pid_t	spawn_fork(const struct spawn_req *, int status_wfd, pid_t parent,
	    bool sibling);

/*
 * Read the outcome: 0 when nothing is known yet (the child has not exec'd
 * nor failed), 1 when *e says it: e->err == 0 means the exec happened;
 * otherwise that child is exiting with 127 and must still be reaped.
 */
int	spawn_status(int status_fd, struct spawn_error *e);

/*
 * Close (or with cloexec, mark close-on-exec) every descriptor from low up:
 * close_range, or where the kernel has none (before 5.9) the entries of
 * /proc/self/fd, or every number below the open files limit. Async-signal-
 * safe, for a child after fork. 0, or -1 with errno.
 */
int	spawn_close_from(int low, bool cloexec);

#endif /* RECYCLERD_SPAWN_H */
