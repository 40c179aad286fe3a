/* SPDX-License-Identifier: MIT */
/*
 * notify.c - receive sd_notify datagrams from workers.
 *
 * SO_PASSCRED makes the kernel attach the sender's pid, uid and gid to every
 * datagram, whatever the sender claims; the pid is what pool.c checks
 * against its workers. The socket file is mode 0666 so that workers running
 * as another user can send: who sent is checked per message, not by the
 * file mode.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

#define NOTIFY_MAX	4096	/* sd_notify messages are small */
#define NOTIFY_BURST	64	/* datagrams per wake-up, then yield */

struct notify {
	struct ev_loop	*loop;
	ev_io		 io;
	int		 fd;
	char		*path;
	notify_cb	*cb;
	void		*arg;
};

static void
notify_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct notify *n = io->data;
	char buf[NOTIFY_MAX + 1];
	union {
		struct cmsghdr	 align;
		char		 buf[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = { buf, NOTIFY_MAX };
	struct msghdr msg;
	struct cmsghdr *c;
	struct ucred cred;
	ssize_t len;
	int i;
	bool have_cred;

	(void)loop;
	(void)revents;
	for (i = 0; i < NOTIFY_BURST; i++) {
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = &ctl;
		msg.msg_controllen = sizeof ctl;
		len = recvmsg(n->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC |
		    MSG_TRUNC);
		if (len == -1) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn_errno("notify: recvmsg");
			return;
		}
		have_cred = false;
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_CREDENTIALS &&
			    c->cmsg_len == CMSG_LEN(sizeof cred)) {
				memcpy(&cred, CMSG_DATA(c), sizeof cred);
				have_cred = true;
			} else if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS) {
				/* Nobody passes us descriptors: close them. */
				int *fds = (int *)CMSG_DATA(c);
				size_t k, nfd = (c->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int);

				for (k = 0; k < nfd; k++)
					close(fds[k]);
			}
		}
		if (!have_cred || cred.pid <= 0) {
			log_warn("notify: dropped a message without sender "
			    "credentials");
			continue;
		}
		if ((size_t)len > NOTIFY_MAX || (msg.msg_flags & MSG_TRUNC)) {
			log_warn("notify: dropped a message from pid %ld: "
			    "longer than %d bytes", (long)cred.pid,
			    NOTIFY_MAX);
			continue;
		}
		buf[len] = '\0';
		n->cb(n->arg, cred.pid, buf, (size_t)len);
	}
}

struct notify *
notify_open(struct ev_loop *loop, const char *path, notify_cb *cb, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct notify *n;
	int one = 1, fd, e;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return NULL;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    chmod(path, 0666) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	n = xcalloc(1, sizeof *n);
	n->loop = loop;
	n->fd = fd;
	n->path = xstrdup(path);
	n->cb = cb;
	n->arg = arg;
	ev_io_init(&n->io, notify_read_cb, fd, EV_READ);
	n->io.data = n;
	ev_io_start(loop, &n->io);
	return n;
}

void
notify_close(struct notify *n)
{
	if (n == NULL)
		return;
	ev_io_stop(n->loop, &n->io);
	close(n->fd);
	(void)unlink(n->path);
	free(n->path);
	free(n);
}

void
notify_flush(struct notify *n)
{
	if (n != NULL)
		notify_read_cb(n->loop, &n->io, EV_READ);
}

const char *
notify_path(const struct notify *n)
{
	return n->path;
}

void
notify_split(char *buf, size_t len,
    void (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	char *line = buf, *end = buf + len, *nl, *eq;

	while (line < end) {
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL)
			nl = end;
		*nl = '\0';
		if (*line != '\0') {
			if ((eq = strchr(line, '=')) != NULL) {
				*eq = '\0';
				fn(arg, line, eq + 1);
			} else {
				fn(arg, line, NULL);
			}
		}
		line = nl + 1;
	}
}
