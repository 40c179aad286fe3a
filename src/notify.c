/* SPDX-License-Identifier: MIT */
/*
 * notify.c - receive sd_notify datagrams from workers.
 *
 * SO_PASSCRED makes the kernel attach the sender's pid, uid and gid to every
 * datagram, whatever the sender claims; the pid is what main.c checks
 * against its workers. The socket file is mode 0666 so that workers running
 * as another user can send: who sent is checked per message, not by the
 * file mode, in two steps. Here, cheaply: a datagram whose sender uid is
 * neither root nor one of the pools' users is dropped at once, before the
 * callback would read /proc to find the sender's worker (up to 16 reads),
 * so a flood by another local user costs one recvmsg per datagram. Then
 * the callback: the pid must be a worker or in a worker's tree.
 *
 * The file is ours only while its inode is the one bind() made: a stale
 * socket is replaced, a live one (another daemon's) or any other file is
 * an error, and at exit only our own inode is unlinked.
 */
#include <errno.h>
#include <fcntl.h>
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
	dev_t		 dev;		/* of the file bind() made */
	ino_t		 ino;
	notify_cb	*cb;
	void		*arg;
	uid_t		*uids;		/* who may send besides root */
	size_t		 nuids;
	unsigned long long dropped_uid;	/* datagrams refused by uid */
	double		 uid_log_mono;	/* last time they were logged */
	unsigned long long uid_logged;	/* dropped_uid then */
};

static bool
uid_allowed(const struct notify *n, uid_t uid)
{
	size_t i;

	if (uid == 0)
		return true;
	for (i = 0; i < n->nuids; i++)
		if (n->uids[i] == uid)
			return true;
	return false;
}

/* At most one line a second, whatever the flood. */
static void
log_dropped_uid(struct notify *n, uid_t uid, pid_t pid)
{
	double now = mono_now();

	if (now - n->uid_log_mono < 1.0)
		return;
	log_warn("notify: dropped %llu datagram%s from users that run no "
	    "pool (last: uid %lu, pid %ld)", n->dropped_uid - n->uid_logged,
	    n->dropped_uid - n->uid_logged == 1 ? "" : "s",
	    (unsigned long)uid, (long)pid);
	n->uid_log_mono = now;
	n->uid_logged = n->dropped_uid;
}

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
		if (!uid_allowed(n, cred.uid)) {
			n->dropped_uid++;
			log_dropped_uid(n, cred.uid, cred.pid);
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

/*
 * Make room at path: nothing there, or a socket nobody receives on (left
 * by an earlier run: removed). A live socket is another daemon's (EADDRINUSE)
 * and any other file is not ours (EEXIST): never removed.
 */
static int
clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc, e;

	if (lstat(sa->sun_path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	e = errno;
	close(fd);
	if (rc == 0) {
		errno = EADDRINUSE;
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		errno = e;
		return -1;
	}
	if (unlink(sa->sun_path) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

struct notify *
notify_open(struct ev_loop *loop, const char *path, notify_cb *cb, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct notify *n;
	struct stat st;
	mode_t old_mask;
	int one = 1, fd, rc, e;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sa.sun_path, path);
	if (clear_stale(&sa) == -1)
		return NULL;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return NULL;
	/* Born 0666 (no chmod by path afterwards). The directory is root's
	 * and nobody else's (main.c checks), so the lstat names our file. */
	old_mask = umask(0111);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old_mask);
	if (rc == -1 || lstat(path, &st) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == -1) {
		e = errno;
		if (rc == 0)
			unlink(path);
		close(fd);
		errno = e;
		return NULL;
	}
	n = xcalloc(1, sizeof *n);
	n->loop = loop;
	n->fd = fd;
	n->dev = st.st_dev;
	n->ino = st.st_ino;
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
	struct stat st;

	if (n == NULL)
		return;
	ev_io_stop(n->loop, &n->io);
	close(n->fd);
	/* Another daemon may have taken the path over since: not ours. */
	if (lstat(n->path, &st) == 0 && st.st_dev == n->dev &&
	    st.st_ino == n->ino)
		(void)unlink(n->path);
	free(n->uids);
	free(n->path);
	free(n);
}

void
notify_allow_uids(struct notify *n, const uid_t *uids, size_t count)
{
	free(n->uids);
	n->uids = xcalloc(count + 1, sizeof *n->uids);
	if (count > 0)
		memcpy(n->uids, uids, count * sizeof *uids);
	n->nuids = count;
}

unsigned long long
notify_dropped_uid(const struct notify *n)
{
	return n != NULL ? n->dropped_uid : 0;
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
