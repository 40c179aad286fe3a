/* SPDX-License-Identifier: MIT */
/*
 * logring.h - the last lines of worker output (stdout and stderr), for
 * `logs` on the control socket; the log and the journal get every line
 * regardless.
 */
#ifndef RECYCLERD_LOGRING_H
#define RECYCLERD_LOGRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOGRING_MAX	4096		/* lines kept, over all pools */
#define LOGRING_LINE	2048		/* longer lines come in pieces */

struct logline {
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
size_t		 logring_count(void);
/* The i-th held line, 0 = oldest. */
const struct logline *logring_get(size_t i);
void		 logring_clear(void);

#endif /* RECYCLERD_LOGRING_H */
