/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control socket: a unix stream server speaking one request
 * per line and one JSON object per response line (json-c).
 *
 * control.c is a thin layer: it parses requests, checks the peer
 * (SO_PEERCRED: root or a member of control_group), calls pool and daemon
 * functions, and encodes the answers. It holds no state of its own besides
 * its clients. Hostile clients are bounded: line length, client count,
 * idle time, output buffer; a slow reader never blocks the loop.
 */
#ifndef RECYCLERD_CONTROL_H
#define RECYCLERD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Bounds on what one client may cost the daemon. */
#define CONTROL_LINE_MAX	4096		/* bytes of a request, no '\n' */
#define CONTROL_WORDS_MAX	8		/* words of a request */
#define CONTROL_CLIENTS_MAX	64		/* connected at once */
#define CONTROL_IDLE_S		60.0		/* silence before a hang-up */
#define CONTROL_OUTPUT_MAX	(4u << 20)	/* unread answer bytes */

struct recyclerd;
struct control;

/* Who sent a request: SO_PEERCRED at accept, and the verdict on it. */
struct control_peer {
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;
	bool		 allowed;	/* root or a member of control_group */
};

/*
 * Bind control_socket (mode 0660, group control_group). A stale socket file
 * from a dead daemon is replaced; one that a live daemon answers on is an
 * error. NULL after logging why.
 */
struct control	*control_open(struct recyclerd *);
void		 control_close(struct control *);	/* unlinks; NULL ok */
/* After a reload: the socket file's group follows control_group. */
void		 control_reconfigure(struct control *);

/*
 * Parse one request line into words (pure; for tests and the fuzzer).
 * Returns the number of words (<= max), or -1 when the line is not valid
 * (not printable ASCII/UTF-8, too many words). Modifies line.
 */
int		 control_split(char *line, char **words, int max);

/*
 * Answer one request line (its '\n' removed) from peer, as the server does
 * for every line: the response is one JSON object with no newline; caller
 * frees. Runs the command (a state-changing one is logged). Exported for
 * the unit tests and the fuzzer, which drive it without a socket.
 */
char		*control_execute(struct recyclerd *,
		    const struct control_peer *peer, char *line);

#endif /* RECYCLERD_CONTROL_H */
