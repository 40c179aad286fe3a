/* SPDX-License-Identifier: MIT */
/*
 * logring.h - the last lines of worker output (stdout and stderr), for
 * `logs` on the control socket; the log and the journal get every line
 * regardless.
 *
 * A bounded ring per pool: each pool keeps its last LOGRING_POOL lines, so
 * a chatty pool never pushes out another pool's, and LOGRING_MAX bounds
 * them all. Lines are read in the order they came, over every pool.
 */
#ifndef RECYCLERD_LOGRING_H
#define RECYCLERD_LOGRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#define LOGRING_POOL	1024		/* lines kept per pool */
#define LOGRING_MAX	16384		/* lines kept over all pools */
#define LOGRING_LINE	2048		/* longer lines come in pieces */

struct logpool;

struct logline {
	TAILQ_ENTRY(logline) all;	/* every line, oldest first */
	TAILQ_ENTRY(logline) same;	/* its pool's lines, oldest first */
	struct logpool	*lp;
	uint64_t	 seq;		/* 1, 2, ... over the daemon's life */
	double		 wall;		/* seconds since the epoch */
	char		 pool[40];
	int		 slot;
	pid_t		 pid;
	const char	*stream;	/* "stdout" or "stderr" */
	char		*text;		/* no newline */
};

void		 logring_add(const char *pool, int slot, pid_t pid,
		    const char *stream, const char *text, size_t len);
/* The oldest and newest lines held, and the neighbours of one; NULL past
 * either end. */
const struct logline *logring_first(void);
const struct logline *logring_last(void);
const struct logline *logring_next(const struct logline *);
const struct logline *logring_prev(const struct logline *);
void		 logring_clear(void);

#endif /* RECYCLERD_LOGRING_H */
