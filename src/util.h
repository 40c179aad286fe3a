/* SPDX-License-Identifier: MIT */
/*
 * util.h - allocation that cannot fail, the monotonic clock, small helpers.
 *
 * Nothing here knows about workers or pools; every module may include it.
 */
#ifndef RECYCLERD_UTIL_H
#define RECYCLERD_UTIL_H

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

#endif /* RECYCLERD_UTIL_H */
