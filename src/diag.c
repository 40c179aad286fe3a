/* SPDX-License-Identifier: MIT */
/*
 * diag.c - a list of diagnostics ("file:line: [section] key: what is wrong").
 *
 * config_load() and the reload path collect every problem here instead of
 * stopping at the first; the caller decides where they go: stderr for
 * `recyclerd -t`, the log for a refused reload. Nothing here prints on its
 * own.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

/* Append one formatted message. */
void
diag_add(struct diag *d, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = vasprintf_or("out of memory formatting a diagnostic", fmt, ap);
	va_end(ap);
	d->msgs = xrealloc(d->msgs, (d->n + 1) * sizeof *d->msgs);
	d->msgs[d->n++] = msg;
}

/* Write every message on its own line. */
void
diag_print(const struct diag *d, FILE *fp)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		fprintf(fp, "%s\n", d->msgs[i]);
}

/* Log every message at the given priority. */
void
diag_log(const struct diag *d, int prio)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		log_msg(prio, "%s", d->msgs[i]);
}

/* Free the messages; the list is empty and reusable afterwards. */
void
diag_free(struct diag *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
}
