/* SPDX-License-Identifier: MIT */
/*
 * notify.h - the workers' NOTIFY_SOCKET: a unix datagram socket that speaks
 * the sd_notify protocol, with the sender's pid from SCM_CREDENTIALS.
 *
 * This module only receives, checks and splits datagrams; who the sender is
 * and what a message means is decided by the callback (pool.c).
 */
#ifndef RECYCLERD_NOTIFY_H
#define RECYCLERD_NOTIFY_H

#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

#include "util.h"

struct notify;

/* One datagram from pid; buf is NUL-terminated, lines "KEY=VALUE". */
typedef void notify_cb(void *arg, pid_t pid, char *buf, size_t len);

/* Bind path, the socket of the daemon's own uid (a stale socket file
 * there is replaced; a live one is EADDRINUSE, another file EEXIST). NULL
 * with errno. Other users' sockets sit next to it, named
 * <path minus .sock>.<uid>.sock. */
struct notify	*notify_open(struct ev_loop *, const char *path, notify_cb *,
		    void *arg);
void		 notify_close(struct notify *);	/* unlinks ours; NULL ok */
/* The pools' users: each gets a socket of its own, mode 0600 and owned by
 * it (made if missing, retried if making it failed); the sockets of other
 * users are closed and removed. A datagram reaches the callback only if
 * its sender is root or the socket's user: others are dropped before any
 * /proc read, and counted. */
void		 notify_allow_uids(struct notify *, const uid_t *, size_t);
unsigned long long notify_dropped_uid(const struct notify *);
/* The NOTIFY_SOCKET of uid's workers; its socket is made if missing (an
 * error is logged if that fails). */
const char	*notify_path(struct notify *, uid_t);
/* Handle every datagram already queued (before a worker's exit is
 * recorded, so its last messages count). */
void		 notify_flush(struct notify *);

/*
 * Split a datagram into assignments: calls fn(arg, key, value) for each
 * non-empty line; a line without '=' is passed with value NULL. Modifies
 * buf. Pure.
 */
void	notify_split(char *buf, size_t len,
	    void (*fn)(void *arg, const char *key, const char *value),
	    void *arg);

#endif /* RECYCLERD_NOTIFY_H */
