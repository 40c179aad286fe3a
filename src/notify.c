/* SPDX-License-Identifier: MIT */
/*
 * notify.c - receive sd_notify datagrams from workers.
 *
 * SO_PASSCRED makes the kernel attach the sender's pid, uid and gid to every
 * datagram, whatever the sender claims; the pid is what main.c checks
 * against its workers.
 *
 * One socket per user that runs a pool, mode 0600 and owned by that user:
 * the daemon's own uid (pools without user=) gets <base>, any other user
 * <base minus .sock>.<uid>.sock. Nobody else can even connect, so another
 * local user cannot fill a queue a worker sends to. The uid is checked
 * again per datagram anyway, before the callback would read /proc to find
 * the sender's worker (up to 16 reads): a socket connected by its user and
 * handed to (or kept across a setuid by) another process carries that
 * process's uid, and such datagrams are dropped at once and counted.
 *
 * A file is ours only while its inode is the one bind() made: a stale
 * socket is replaced, a live one (another daemon's) or any other file is
 * an error, and only our own inode is ever unlinked.
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

/* One user's socket. fd -1: making it failed, retried at the next
 * notify_allow_uids() (the path is what that user's workers were told). */
struct notify_sock {
	struct notify	*set;
	ev_io		 io;
	int		 fd;
	uid_t		 uid;		/* its owner, who may send */
	char		*path;
	dev_t		 dev;		/* of the file bind() made */
	ino_t		 ino;
	bool		 keep;		/* for notify_allow_uids() */
};

struct notify {
	struct ev_loop	*loop;
	char		*base;		/* the daemon's own uid's path */
	notify_cb	*cb;
	void		*arg;
	struct notify_sock **socks;
	size_t		 nsocks;
	unsigned long long dropped_uid;	/* datagrams refused by uid */
	double		 uid_log_mono;	/* last time they were logged */
	unsigned long long uid_logged;	/* dropped_uid then */
};

/* At most one line a second, whatever the flood. */
static void
log_dropped_uid(struct notify *n, uid_t uid, pid_t pid)
{
	double now = mono_now();

	if (now - n->uid_log_mono < 1.0)
		return;
	log_warn("notify: dropped %llu datagram%s from users other than "
	    "the socket's (last: uid %lu, pid %ld)", n->dropped_uid - n->uid_logged,
	    n->dropped_uid - n->uid_logged == 1 ? "" : "s",
	    (unsigned long)uid, (long)pid);
	n->uid_log_mono = now;
	n->uid_logged = n->dropped_uid;
}

static void
notify_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct notify_sock *ns = io->data;
	struct notify *n = ns->set;
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
		len = recvmsg(ns->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC |
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
		/* Root may send anywhere; else only the socket's user. */
		if (cred.uid != 0 && cred.uid != ns->uid) {
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

/*
 * Born mode 0600 (fchmod of the socket before bind(), with a umask that
 * cannot widen it), then given to uid through an O_PATH | O_NOFOLLOW
 * descriptor checked to be the very file bind() made. The directory is
 * root's and nobody else's (main.c checks), so the lstat names our file.
 * -1 with errno.
 */
static int
sock_bind(struct notify_sock *ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st, pst;
	mode_t old_mask;
	int one = 1, fd, pfd = -1, rc, e;
	bool made = false;		/* st is the file bind() made */

	if (strlen(ns->path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, ns->path);
	if (clear_stale(&sa) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return -1;
	if (fchmod(fd, 0600) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	old_mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old_mask);
	if (rc == -1 || lstat(ns->path, &st) == -1)
		goto fail;
	made = true;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == -1)
		goto fail;
	if (ns->uid != geteuid()) {
		pfd = open(ns->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (pfd == -1 || fstat(pfd, &pst) == -1)
			goto fail;
		if (pst.st_dev != st.st_dev || pst.st_ino != st.st_ino) {
			errno = ESTALE;		/* not the file we made */
			goto fail;
		}
		if (fchownat(pfd, "", ns->uid, (gid_t)-1,
		    AT_EMPTY_PATH) == -1)
			goto fail;
		close(pfd);
	}
	ns->fd = fd;
	ns->dev = st.st_dev;
	ns->ino = st.st_ino;
	ev_io_init(&ns->io, notify_read_cb, fd, EV_READ);
	ns->io.data = ns;
	ev_io_start(ns->set->loop, &ns->io);
	return 0;

fail:
	e = errno;
	if (pfd != -1)
		close(pfd);
	if (made && lstat(ns->path, &pst) == 0 &&
	    pst.st_dev == st.st_dev && pst.st_ino == st.st_ino)
		unlink(ns->path);
	close(fd);
	errno = e;
	return -1;
}

/* Stop receiving and unlink the file if it is still ours. */
static void
sock_unbind(struct notify_sock *ns)
{
	struct stat st;

	if (ns->fd == -1)
		return;
	ev_io_stop(ns->set->loop, &ns->io);
	close(ns->fd);
	ns->fd = -1;
	/* Another daemon may have taken the path over since: not ours. */
	if (lstat(ns->path, &st) == 0 && st.st_dev == ns->dev &&
	    st.st_ino == ns->ino)
		(void)unlink(ns->path);
}

static struct notify_sock *
sock_find(const struct notify *n, uid_t uid)
{
	size_t i;

	for (i = 0; i < n->nsocks; i++)
		if (n->socks[i]->uid == uid)
			return n->socks[i];
	return NULL;
}

/* The entry for uid, its socket bound (or fd -1 with errno). */
static struct notify_sock *
sock_add(struct notify *n, uid_t uid)
{
	struct notify_sock *ns = xcalloc(1, sizeof *ns);
	size_t len = strlen(n->base);

	ns->set = n;
	ns->fd = -1;
	ns->uid = uid;
	if (uid == geteuid())
		ns->path = xstrdup(n->base);
	else {
		if (len > 5 && strcmp(n->base + len - 5, ".sock") == 0)
			len -= 5;
		xasprintf(&ns->path, "%.*s.%lu.sock", (int)len, n->base,
		    (unsigned long)uid);
	}
	n->socks = xrealloc(n->socks, (n->nsocks + 1) * sizeof *n->socks);
	n->socks[n->nsocks++] = ns;
	(void)sock_bind(ns);
	return ns;
}

static void
sock_free(struct notify_sock *ns)
{
	sock_unbind(ns);
	free(ns->path);
	free(ns);
}

struct notify *
notify_open(struct ev_loop *loop, const char *path, notify_cb *cb, void *arg)
{
	struct notify *n = xcalloc(1, sizeof *n);
	struct notify_sock *ns;
	int e;

	n->loop = loop;
	n->base = xstrdup(path);
	n->cb = cb;
	n->arg = arg;
	/* The daemon's own socket now: a live one at the path is another
	 * daemon's, found before the pools start. */
	ns = sock_add(n, geteuid());
	if (ns->fd == -1) {
		e = errno;
		notify_close(n);
		errno = e;
		return NULL;
	}
	return n;
}

void
notify_close(struct notify *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nsocks; i++)
		sock_free(n->socks[i]);
	free(n->socks);
	free(n->base);
	free(n);
}

void
notify_allow_uids(struct notify *n, const uid_t *uids, size_t count)
{
	struct notify_sock *ns;
	size_t i, j;

	for (i = 0; i < n->nsocks; i++)
		n->socks[i]->keep = false;
	for (i = 0; i < count; i++) {
		if ((ns = sock_find(n, uids[i])) == NULL)
			ns = sock_add(n, uids[i]);
		else if (ns->fd == -1)
			(void)sock_bind(ns);
		else {
			ns->keep = true;
			continue;
		}
		ns->keep = true;
		if (ns->fd == -1)
			log_err("notify: unable to bind %s for uid %lu: %s",
			    ns->path, (unsigned long)ns->uid, strerror(errno));
	}
	/* No pool runs as that user any more: its socket goes. */
	for (i = j = 0; i < n->nsocks; i++) {
		if (n->socks[i]->keep)
			n->socks[j++] = n->socks[i];
		else
			sock_free(n->socks[i]);
	}
	n->nsocks = j;
}

unsigned long long
notify_dropped_uid(const struct notify *n)
{
	return n != NULL ? n->dropped_uid : 0;
}

void
notify_flush(struct notify *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nsocks; i++)
		if (n->socks[i]->fd != -1)
			notify_read_cb(n->loop, &n->socks[i]->io, EV_READ);
}

const char *
notify_path(struct notify *n, uid_t uid)
{
	struct notify_sock *ns;

	if ((ns = sock_find(n, uid)) != NULL)
		return ns->path;
	ns = sock_add(n, uid);
	if (ns->fd == -1)
		log_err("notify: unable to bind %s for uid %lu: %s", ns->path,
		    (unsigned long)uid, strerror(errno));
	return ns->path;
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
