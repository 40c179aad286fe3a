/* SPDX-License-Identifier: MIT */
/*
 * log.c - log lines to stderr (with time and level) or to the journal
 * (with structured fields), and die().
 *
 * The target is picked once by log_init(): LOG_TARGET_AUTO means the journal
 * when JOURNAL_STREAM names the device and inode of our stderr (systemd
 * connected it), else stderr. Lines are written with one write() each so
 * they never interleave with worker output relayed by output.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"

static struct {
	int	 max_level;
	bool	 journal;
} logger = { LOG_INFO, false };

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg",	[LOG_ALERT] = "alert",
	[LOG_CRIT] = "crit",	[LOG_ERR] = "err",
	[LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",	[LOG_DEBUG] = "debug",
};

static bool
stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void
log_init(enum log_target target, int max_level)
{
	logger.max_level = max_level;
	switch (target) {
	case LOG_TARGET_AUTO:
		logger.journal = stderr_is_journal();
		break;
	case LOG_TARGET_JOURNAL:
		logger.journal = true;
		break;
	case LOG_TARGET_STDERR:
		logger.journal = false;
		break;
	}
}

void
log_set_level(int max_level)
{
	logger.max_level = max_level;
}

bool
log_to_journal(void)
{
	return logger.journal;
}

int
log_get_level(void)
{
	return logger.max_level;
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcmp(s, "error") == 0)
		return LOG_ERR;
	if (strcmp(s, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 || (size_t)level >= nitems(level_names))
		return "?";
	return level_names[level];
}

/* "pool web worker 3 [pid 4711]: " from the context, into buf. */
static void
format_prefix(const struct log_ctx *ctx, char *buf, size_t size)
{
	int n = 0;

	buf[0] = '\0';
	if (ctx == NULL || ctx->pool == NULL)
		return;
	n = snprintf(buf, size, "pool %s", ctx->pool);
	if (ctx->worker >= 0 && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, " worker %d",
		    ctx->worker);
	if (ctx->pid > 0 && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, " [pid %ld]",
		    (long)ctx->pid);
	if (n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, ": ");
}

static void
emit_journal(int prio, const struct log_ctx *ctx, const char *msg)
{
	char worker[16], pid[24], mem[32];

	snprintf(worker, sizeof worker, "%d", ctx ? ctx->worker : -1);
	snprintf(pid, sizeof pid, "%ld", ctx ? (long)ctx->pid : 0L);
	snprintf(mem, sizeof mem, "%llu",
	    ctx ? (unsigned long long)ctx->memory : 0ULL);
	/* Absent fields are sent as empty assignments of a dummy field, so
	 * the argument list stays fixed. */
	sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
	    "SYSLOG_IDENTIFIER=recyclerd",
	    ctx && ctx->pool ? "POOL=%s" : "RECYCLERD_NOPOOL=%s",
	    ctx && ctx->pool ? ctx->pool : "",
	    ctx && ctx->worker >= 0 ? "WORKER=%s" : "RECYCLERD_NOWORKER=%s",
	    ctx && ctx->worker >= 0 ? worker : "",
	    ctx && ctx->pid > 0 ? "WORKER_PID=%s" : "RECYCLERD_NOPID=%s",
	    ctx && ctx->pid > 0 ? pid : "",
	    ctx && ctx->reason ? "REASON=%s" : "RECYCLERD_NOREASON=%s",
	    ctx && ctx->reason ? ctx->reason : "",
	    ctx && ctx->memory ? "MEMORY=%s" : "RECYCLERD_NOMEMORY=%s",
	    ctx && ctx->memory ? mem : "",
	    ctx && ctx->message_id ? "MESSAGE_ID=%s" : "RECYCLERD_NOID=%s",
	    ctx && ctx->message_id ? ctx->message_id : "",
	    NULL);
}

static void
emit_stderr(int prio, const char *prefix, const char *msg)
{
	char line[4096], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03ld %-7s %s%s\n", stamp,
	    ts.tv_nsec / 1000000, log_level_name(prio), prefix, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, (size_t)n) == -1) {
		/* stderr is gone; nowhere left to report it */
	}
}

void
log_vctx(int prio, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[3072], prefix[256];
	int saved = errno;

	if (prio > logger.max_level)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	format_prefix(ctx, prefix, sizeof prefix);
	if (logger.journal) {
		char full[3400];

		snprintf(full, sizeof full, "%s%s", prefix, msg);
		emit_journal(prio, ctx, full);
	} else {
		/* Worker text (its output, its notify lines) may hold escape
		 * sequences and newlines: shown as \xNN, never sent raw. */
		char esc[sizeof msg * 4];

		text_escape(msg, esc, sizeof esc);
		emit_stderr(prio, prefix, esc);
	}
	errno = saved;
}

void
log_ctx(int prio, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vctx(prio, ctx, fmt, ap);
	va_end(ap);
}

void
log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vctx(prio, NULL, fmt, ap);
	va_end(ap);
}

void
log_msg_errno(int prio, int err, const char *fmt, ...)
{
	char msg[3072];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg(prio, "%s: %s", msg, strerror(err));
}

void
die(int exitcode, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vctx(LOG_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(exitcode);
}
