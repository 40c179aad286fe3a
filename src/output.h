/* SPDX-License-Identifier: MIT */
/*
 * output.h - relay a worker's stdout or stderr into the log, one line at a
 * time, tagged with the pool, the slot and the pid.
 *
 * A relay lives until its pipe reaches EOF, which may be after the worker
 * was reaped (a grandchild can hold the pipe), so relays are owned by the
 * daemon's list, not by the worker.
 */
#ifndef RECYCLERD_OUTPUT_H
#define RECYCLERD_OUTPUT_H

#include <sys/types.h>

struct recyclerd;

/* Watch fd (the read end; taken over). */
void	output_start(struct recyclerd *, int fd, const char *pool, int slot,
	    pid_t pid, const char *stream);
/* Read what is buffered, then close every relay (at exit). */
void	output_close_all(struct recyclerd *);

#endif /* RECYCLERD_OUTPUT_H */
