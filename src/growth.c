/* SPDX-License-Identifier: MIT */
/*
 * growth.c - least-squares growth of one worker's memory.
 *
 * Owns a ring of the last GROWTH_POINTS (time, tasks, bytes) points and
 * fits bytes over time and bytes over tasks. It neither samples nor keeps a
 * clock: the caller adds points; status and metrics read the slopes.
 */
#include <math.h>
#include <string.h>

#include "growth.h"

void
growth_init(struct growth *g)
{
	memset(g, 0, sizeof *g);
}

/* Once full, each point replaces the oldest one. */
void
growth_add(struct growth *g, double t, uint64_t tasks, uint64_t bytes)
{
	g->t[g->head] = t;
	g->tasks[g->head] = (double)tasks;
	g->bytes[g->head] = (double)bytes;
	g->head = (g->head + 1) % GROWTH_POINTS;
	if (g->n < GROWTH_POINTS)
		g->n++;
}

double
growth_span(const struct growth *g)
{
	unsigned int newest, oldest;

	if (g->n < 2)
		return 0.0;
	newest = (g->head + GROWTH_POINTS - 1) % GROWTH_POINTS;
	oldest = (g->head + GROWTH_POINTS - g->n) % GROWTH_POINTS;
	return g->t[newest] - g->t[oldest];
}

/*
 * Slope of y over x by least squares, over the points held (the order in
 * the ring does not matter to a fit). Sums are taken about the means, so
 * seconds of uptime (1e6) and gigabytes (1e9) lose no precision to the
 * squares of large numbers. -1 with fewer than 3 points or when x does not
 * vary, leaving *slope untouched.
 */
static int
fit_slope(const double *x, const double *y, unsigned int n, double *slope)
{
	double x_mean = 0, y_mean = 0, x_min, x_max, sxx = 0, sxy = 0, dx, s;
	unsigned int i;

	if (n < 3)
		return -1;
	x_min = x_max = x[0];
	for (i = 0; i < n; i++) {
		x_mean += x[i];
		y_mean += y[i];
		if (x[i] < x_min)
			x_min = x[i];
		if (x[i] > x_max)
			x_max = x[i];
	}
	/* Compared on the raw values: a mean of equal numbers need not be
	 * exactly equal to them, which would fake a tiny spread. */
	if (!(x_max > x_min))
		return -1;
	x_mean /= n;
	y_mean /= n;
	for (i = 0; i < n; i++) {
		dx = x[i] - x_mean;
		sxx += dx * dx;
		sxy += dx * (y[i] - y_mean);
	}
	if (!(sxx > 0))
		return -1;
	s = sxy / sxx;
	if (!isfinite(s))
		return -1;
	*slope = s;
	return 0;
}

int
growth_per_sec(const struct growth *g, double *bytes_per_s)
{
	return fit_slope(g->t, g->bytes, g->n, bytes_per_s);
}

int
growth_recent_per_sec(const struct growth *g, double window_s,
    double *bytes_per_s)
{
	double t[GROWTH_POINTS], b[GROWTH_POINTS], since;
	unsigned int i, k, n = 0;

	if (g->n == 0)
		return -1;
	since = g->t[(g->head + GROWTH_POINTS - 1) % GROWTH_POINTS] - window_s;
	for (i = 0; i < g->n; i++) {
		k = (g->head + GROWTH_POINTS - g->n + i) % GROWTH_POINTS;
		if (g->t[k] >= since) {
			t[n] = g->t[k];
			b[n++] = g->bytes[k];
		}
	}
	return fit_slope(t, b, n, bytes_per_s);
}

/* At least two distinct task counts: a worker that reports none has none. */
int
growth_per_task(const struct growth *g, double *bytes_per_task)
{
	return fit_slope(g->tasks, g->bytes, g->n, bytes_per_task);
}
