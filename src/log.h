/* SPDX-License-Identifier: MIT */
/*
 * log.h - levels, stderr or journal output, die().
 *
 * On a terminal (or any plain stderr) every line carries a timestamp and the
 * level. Under systemd (JOURNAL_STREAM matches stderr) lines go to the journal
 * with structured fields. Callers that have a worker or a pool in hand pass
 * them through struct log_ctx so the fields are filled in.
 */
#ifndef RECYCLERD_LOG_H
#define RECYCLERD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include <sys/types.h>

#include "util.h"

/* Structured fields of one log line; any member may be NULL/0 (absent). */
struct log_ctx {
	const char	*pool;		/* POOL= */
	int		 worker;	/* WORKER= slot, -1 = absent */
	pid_t		 pid;		/* WORKER_PID=, 0 = absent */
	const char	*reason;	/* REASON= */
	uint64_t	 memory;	/* MEMORY= bytes, 0 = absent */
	const char	*message_id;	/* MESSAGE_ID= (128-bit hex) */
};

#define LOG_CTX_NONE	((struct log_ctx){ .worker = -1 })

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_STDERR, LOG_TARGET_JOURNAL };

void	log_init(enum log_target, int max_level);
void	log_set_level(int max_level);
/* True when lines go to the journal (then worker output goes there too). */
bool	log_to_journal(void);
int	log_get_level(void);
/* Parse "debug", "info", "notice", "warning", "err"; -1 if unknown. */
int	log_level_parse(const char *);
const char *log_level_name(int);

void	log_msg(int prio, const char *fmt, ...) PRINTFLIKE(2, 3);
void	log_msg_errno(int prio, int err, const char *fmt, ...) PRINTFLIKE(3, 4);
void	log_ctx(int prio, const struct log_ctx *, const char *fmt, ...)
	    PRINTFLIKE(3, 4);
void	log_vctx(int prio, const struct log_ctx *, const char *fmt, va_list)
	    PRINTFLIKE(3, 0);
_Noreturn void die(int exitcode, const char *fmt, ...) PRINTFLIKE(2, 3);

#define log_err(...)		log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)		log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)		log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)		log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)		log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_warn_errno(...)	log_msg_errno(LOG_WARNING, errno, __VA_ARGS__)
#define log_err_errno(...)	log_msg_errno(LOG_ERR, errno, __VA_ARGS__)

#endif /* RECYCLERD_LOG_H */
