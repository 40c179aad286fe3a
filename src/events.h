/* SPDX-License-Identifier: MIT */
/*
 * events.h - a bounded ring of recent worker events (recycles, kills,
 * crashes, OOM kills, pool failures), newest last, for `events` and logs.
 */
#ifndef RECYCLERD_EVENTS_H
#define RECYCLERD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

#define EVENTS_MAX	1024

struct event {
	uint64_t	 seq;		/* 1, 2, ... over the daemon's life */
	double		 wall;		/* seconds since the epoch */
	char		 pool[40];
	int		 slot;		/* -1 for pool events */
	pid_t		 pid;
	const char	*kind;		/* "recycle" "kill" "crash" "exit"
					 * "oom" "failed" "config" */
	enum reason	 reason;
	int		 status;	/* wait status, -1 if none */
	double		 uptime_s;
	uint64_t	 tasks;
	uint64_t	 memory;	/* bytes at the decision, 0 = unknown */
	uint64_t	 peak;		/* bytes */
	char		 detail[160];	/* "pss 212M > 200M for 2 samples" */
	bool		 overshoot;	/* drained at once past max_overshoot */
	pid_t		 child;		/* recycle_scope = children: the child
					 * of the worker (pid) it is about */
};

struct events;

struct events	*events_new(void);
void		 events_free(struct events *);	/* NULL ok */
/* Copy ev into the ring, stamping seq and wall; returns the stored one. */
const struct event *events_add(struct events *, const struct event *);
/* Number held. */
size_t		 events_count(const struct events *);
/* The i-th held event, 0 = oldest. */
const struct event *events_get(const struct events *, size_t i);

#endif /* RECYCLERD_EVENTS_H */
