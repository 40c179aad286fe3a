/* SPDX-License-Identifier: MIT */
/*
 * listen.h - the listening sockets of a pool, held by the daemon.
 *
 * The daemon binds each "listen" address once and keeps the descriptors for
 * as long as the pool exists, so a recycled worker never closes a socket:
 * the kernel goes on queueing connections for the other workers and the
 * replacement. Sockets passed by systemd (LISTEN_FDS, sd_listen_fds_with_
 * names) are adopted by name for "systemd:NAME".
 */
#ifndef RECYCLERD_LISTEN_H
#define RECYCLERD_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "util.h"

/* The identity of a unix socket file bind() made (ino 0: none): a reload
 * changes the mode and owner of that inode only, never of a file that
 * replaced it. */
struct listen_file {
	dev_t		 dev;
	ino_t		 ino;
};

struct listen_set {
	int		*fds;		/* in the order of the listen keys */
	struct listen_file *files;	/* of each fd */
	char		**names;	/* LISTEN_FDNAMES entries */
	char		**keys;		/* listen_key() of each: reload matches
					 * a new address to an old fd by it */
	size_t		 n;
};

/*
 * Adopt the sockets systemd passed to the daemon (call once at start-up,
 * before anything else opens descriptors). Idempotent.
 */
void	listen_adopt_systemd(void);

/*
 * Open (bind + listen) every address of the pool, or reuse the one an
 * existing set already holds for the same address (reload). Returns 0, or
 * -1 after adding "pool P: listen ADDR: why" to *err (caller frees).
 */
int	listen_open(const struct pool_config *, const struct listen_set *reuse,
	    struct listen_set *out, char **err) MUST_CHECK;
/* Close the descriptors that the set holds and free it (systemd sockets
 * are kept for a later reload). */
void	listen_close(struct listen_set *);
/* Undo a listen_open() whose set will not be used: close it, and remove
 * the socket files it created (not those of sockets reused from reuse). */
void	listen_discard(struct listen_set *, const struct listen_set *reuse);

/*
 * The address of a listen spec in a canonical form ("tcp:0.0.0.0:80" for
 * "tcp:80", "tcp6:[::1]:80", "unix:/abs/path", "systemd:NAME"), options
 * left out: two specs with the same key bind the same socket. Caller frees.
 */
char	*listen_key(const struct listen_spec *);

#endif /* RECYCLERD_LISTEN_H */
