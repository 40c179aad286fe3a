/* SPDX-License-Identifier: MIT */
/*
 * output.c - worker stdout/stderr into the log.
 *
 * Lines longer than the buffer are cut and relayed in pieces rather than
 * held: a worker that never writes a newline cannot make us grow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "logring.h"
#include "output.h"
#include "recyclerd.h"

#define OUTPUT_LINE	2048

struct output {
	LIST_ENTRY(output) entry;
	struct recyclerd *rd;
	ev_io		 io;
	int		 fd;
	char		 pool[40];
	int		 slot;
	pid_t		 pid;
	const char	*stream;	/* "stdout" or "stderr" */
	size_t		 len;
	char		 buf[OUTPUT_LINE];
};

static void
output_emit(struct output *o, const char *line, size_t len)
{
	struct log_ctx ctx = { .pool = o->pool, .worker = o->slot,
		.pid = o->pid };

	log_ctx(LOG_INFO, &ctx, "%s: %.*s", o->stream, (int)len, line);
	logring_add(o->pool, o->slot, o->pid, o->stream, line, len);
}

static void
output_free(struct output *o)
{
	if (o->len > 0)
		output_emit(o, o->buf, o->len);
	ev_io_stop(o->rd->loop, &o->io);
	close(o->fd);
	LIST_REMOVE(o, entry);
	free(o);
}

/* Emit every complete line held; keep the tail. */
static void
output_lines(struct output *o)
{
	char *start = o->buf, *nl;
	size_t left = o->len;

	while ((nl = memchr(start, '\n', left)) != NULL) {
		output_emit(o, start, (size_t)(nl - start));
		left -= (size_t)(nl - start) + 1;
		start = nl + 1;
	}
	if (left == sizeof o->buf) {		/* full, no newline */
		output_emit(o, start, left);
		left = 0;
	}
	memmove(o->buf, start, left);
	o->len = left;
}

static void
output_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct output *o = io->data;
	ssize_t n;
	int i;

	(void)loop;
	(void)revents;
	for (i = 0; i < 16; i++) {
		n = read(o->fd, o->buf + o->len, sizeof o->buf - o->len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			output_free(o);
			return;
		}
		o->len += (size_t)n;
		output_lines(o);
	}
}

void
output_start(struct recyclerd *rd, int fd, const char *pool, int slot,
    pid_t pid, const char *stream)
{
	struct output *o = xcalloc(1, sizeof *o);

	o->rd = rd;
	o->fd = fd;
	snprintf(o->pool, sizeof o->pool, "%s", pool);
	o->slot = slot;
	o->pid = pid;
	o->stream = stream;
	(void)fd_set_nonblock(fd);
	ev_io_init(&o->io, output_read_cb, fd, EV_READ);
	o->io.data = o;
	ev_io_start(rd->loop, &o->io);
	LIST_INSERT_HEAD(&rd->outputs, o, entry);
}

void
output_close_all(struct recyclerd *rd)
{
	struct output *o;
	ssize_t n;

	while ((o = LIST_FIRST(&rd->outputs)) != NULL) {
		while (o->len < sizeof o->buf &&
		    (n = read(o->fd, o->buf + o->len,
		    sizeof o->buf - o->len)) > 0) {
			o->len += (size_t)n;
			output_lines(o);
		}
		output_free(o);
	}
	logring_clear();
}
