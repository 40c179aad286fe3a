/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - the daemon's state in the Prometheus text exposition format
 * (version 0.0.4), for the control socket's `metrics` command.
 *
 * metrics.c only reads: pools, workers, counters and the events ring, as
 * they stand; it samples nothing (a scrape must stay cheap, so per-worker
 * figures are those of the last sample).
 */
#ifndef RECYCLERD_METRICS_H
#define RECYCLERD_METRICS_H

#include <stdio.h>

struct recyclerd;

/*
 * Render every metric family: # HELP and # TYPE lines, then its samples.
 * Returns 0 and stores the NUL-terminated text in *out (caller frees), or
 * -1 with errno if no buffer could be made.
 */
int	metrics_render(struct recyclerd *, char **out);

/* Write s as a label value: backslash, double quote and newline escaped. */
void	metrics_put_label(FILE *, const char *s);

#endif /* RECYCLERD_METRICS_H */
