/* SPDX-License-Identifier: MIT */
/*
 * util.h - allocation that cannot fail, the monotonic clock, small helpers.
 *
 * Nothing here knows about workers or pools; every module may include it.
 */
#ifndef RECYCLERD_UTIL_H
#define RECYCLERD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#define MUST_CHECK	__attribute__((warn_unused_result))
#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* glibc's <sys/queue.h> lacks the _SAFE iterators of the BSDs. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif
#ifndef LIST_FOREACH_SAFE
#define LIST_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = LIST_FIRST(head);					\
	    (var) != NULL && ((tvar) = LIST_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
int	 xasprintf(char **, const char *, ...) PRINTFLIKE(2, 3);
/* fmt formatted, or a copy of fallback if it cannot be (a message that
 * must get out: too long for an int, or no memory); caller frees. */
char	*vasprintf_or(const char *fallback, const char *fmt, va_list)
	    PRINTFLIKE(2, 0);

/* A copy of fd that never lands on 0..2 and is close-on-exec; -1 with
 * errno set. */
int	 dup_cloexec(int fd);

/* Seconds on CLOCK_MONOTONIC. */
double	 mono_now(void);
/* Microseconds on CLOCK_MONOTONIC (for MONOTONIC_USEC and benchmarks). */
uint64_t mono_usec(void);

/* Free a NULL-terminated array of strings and the array; NULL is a no-op. */
void	 strv_free(char **);
/* Number of strings in a NULL-terminated array. */
size_t	 strv_len(char *const *);
/* Deep copy of a NULL-terminated array; NULL gives NULL. */
char	**strv_dup(char *const *);

/*
 * Read the whole of a small file through a kept descriptor with pread(),
 * NUL-terminated. Returns the length, or -1 with errno set.
 */
ssize_t	 read_fd_at0(int fd, char *buf, size_t size);

/*
 * Parent, process group and session of pid from /proc/PID/stat; 0, or -1
 * if it is gone or unreadable. Any output pointer may be NULL.
 */
int	 proc_stat_ids(pid_t pid, pid_t *ppid, pid_t *pgrp, pid_t *sid);

/* Set O_NONBLOCK on fd; 0 or -1 with errno set. */
int	 fd_set_nonblock(int fd);

/*
 * Decimal digits only, as a count: no sign, no space, no base prefix (what
 * strtoull() would skip or accept), at most max. 0, or -1 when s is not
 * such a number.
 */
int	 parse_digits(const char *s, uint64_t max, uint64_t *v);

/* A numeric user or group id: digits, below (uid_t)-1 (which means "no
 * id" to setresuid). 0, or -1. */
int	 parse_id(const char *s, uint32_t *id);

/*
 * A copy of the first len bytes of s that is valid UTF-8 without control
 * characters: an invalid sequence or a control character (C0, DEL, C1)
 * becomes U+FFFD; the copy holds at most max bytes and ends on a
 * character. Text from workers goes through this at receipt, so every
 * answer that shows it is valid JSON for strict clients.
 */
char	*text_sanitize(const char *s, size_t len, size_t max);

/*
 * Copy s into buf (size > 0, NUL-terminated, truncated on a whole escape)
 * with control bytes other than tab written as \xNN: a worker's bytes in
 * a log line cannot move the terminal's cursor or forge a line.
 */
void	 text_escape(const char *s, char *buf, size_t size);

/*
 * A token bucket: rate per second, up to burst at once. ratelimit_take()
 * says whether one more message may go out now; when it may and some
 * were held back, *suppressed says how many (and the count restarts).
 */
struct ratelimit {
	double		 tokens;
	double		 last;		/* mono time of the last refill; 0 */
	unsigned int	 suppressed;
};
int	 ratelimit_take(struct ratelimit *, double now, double rate,
	    double burst, unsigned int *suppressed);

#endif /* RECYCLERD_UTIL_H */
