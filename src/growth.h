/* SPDX-License-Identifier: MIT */
/*
 * growth.h - recent memory samples of one worker and its growth rate.
 *
 * A fixed ring of (time, tasks, bytes) points; least-squares slopes of bytes
 * over time and over tasks. Pure: no I/O, no clock, no allocation.
 */
#ifndef RECYCLERD_GROWTH_H
#define RECYCLERD_GROWTH_H

#include <stddef.h>
#include <stdint.h>

#define GROWTH_POINTS	32

struct growth {
	double		 t[GROWTH_POINTS];	/* seconds, any origin */
	double		 tasks[GROWTH_POINTS];
	double		 bytes[GROWTH_POINTS];
	unsigned int	 head;			/* next slot to write */
	unsigned int	 n;			/* points held, <= GROWTH_POINTS */
};

void	growth_init(struct growth *);
void	growth_add(struct growth *, double t, uint64_t tasks, uint64_t bytes);
/*
 * Slopes by least squares. Returns 0 and stores bytes/s (and bytes/task)
 * when there are at least 3 points spread in time (and in tasks); -1 when
 * there is not enough to say, leaving the output untouched.
 */
int	growth_per_sec(const struct growth *, double *bytes_per_s);
/* The same slope over the points of the last window_s seconds only (up to
 * the newest point): a growth that speeds up shows there first. */
int	growth_recent_per_sec(const struct growth *, double window_s,
	    double *bytes_per_s);
/* Seconds from the oldest point held to the newest; 0 with fewer than 2. */
double	growth_span(const struct growth *);
int	growth_per_task(const struct growth *, double *bytes_per_task);

#endif /* RECYCLERD_GROWTH_H */
