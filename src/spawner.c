/* SPDX-License-Identifier: MIT */
/*
 * spawner.c - the spawn server. See spawner.h.
 *
 * A request is one datagram: a fixed header, the supplementary groups,
 * then argv, envp and the directory as NUL-terminated strings, with the
 * descriptors in SCM_RIGHTS in a fixed order (status pipe, stdout,
 * stderr, cgroup directory, cgroup.procs - each when present - then the
 * listening sockets). The answer is the pid, or the errno of the clone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "spawner.h"
#include "util.h"

#define REQ_MAX		(192 * 1024)	/* one datagram */
#define SOCKETS_MAX	64		/* as spawn.c's child_fds() */
#define FDS_MAX		(5 + SOCKETS_MAX)
#define REPLY_TIMEOUT_MS 5000
#define PID_ROOM	13		/* digits of a pid, and the NUL */

enum {
	W_STDOUT = 1 << 0, W_STDERR = 1 << 1, W_CG_DIR = 1 << 2,
	W_CG_JOIN = 1 << 3, W_DIRECTORY = 1 << 4, W_SET_IDS = 1 << 5,
	W_DROP_CAPS = 1 << 6, W_NO_NEW_PRIVS = 1 << 7,
};

struct wire {
	uint32_t	 flags;
	uint32_t	 uid, gid;
	int32_t		 pdeathsig;
	int64_t		 nofile;
	uint64_t	 capabilities;
	int32_t		 parent;
	int32_t		 pid_var[2];	/* index in envp, or -1 */
	uint32_t	 ngroups, nfds, argc, envc;
};

struct reply {
	int32_t		 pid;
	int32_t		 err;
};

struct spawner {
	pid_t		 pid;
	int		 fd;
	char		*buf;		/* REQ_MAX bytes, for requests */
};

/* ---- the server ---- */

static void
close_all(const int *fds, size_t n)
{
	while (n > 0)
		close(fds[--n]);
}

/* The next NUL-terminated string of [*p, end); NULL if there is none. */
static char *
next_string(char **p, char *end)
{
	char *s = *p, *nul;

	if (s >= end || (nul = memchr(s, '\0', (size_t)(end - s))) == NULL)
		return NULL;
	*p = nul + 1;
	return s;
}

/*
 * Decode one request into r (arrays in *argv, *envp, *groups; the pid
 * variables copied with room for a pid) and start it. Returns the pid, or
 * -1 with errno.
 */
static pid_t
serve_one(char *buf, size_t len, const int *fds, size_t nfds)
{
	struct spawn_req r = { 0 };
	struct wire w;
	char **argv = NULL, **envp = NULL, *p, *end = buf + len;
	gid_t *groups = NULL;
	size_t i, want, k = 1;
	pid_t pid = -1;

	errno = EPROTO;
	if (len < sizeof w)
		return -1;
	memcpy(&w, buf, sizeof w);
	want = 1 + !!(w.flags & W_STDOUT) + !!(w.flags & W_STDERR) +
	    !!(w.flags & W_CG_DIR) + !!(w.flags & W_CG_JOIN) + w.nfds;
	if (w.nfds > SOCKETS_MAX || nfds != want || w.ngroups > 65536 ||
	    w.argc == 0 || w.argc > REQ_MAX || w.envc > REQ_MAX ||
	    sizeof w + (size_t)w.ngroups * sizeof(uint32_t) > len)
		return -1;
	p = buf + sizeof w;
	groups = xcalloc(w.ngroups + 1, sizeof *groups);
	for (i = 0; i < w.ngroups; i++, p += sizeof(uint32_t)) {
		uint32_t g;

		memcpy(&g, p, sizeof g);
		groups[i] = (gid_t)g;
	}
	argv = xcalloc(w.argc + 1, sizeof *argv);
	envp = xcalloc(w.envc + 1, sizeof *envp);
	for (i = 0; i < w.argc; i++)
		if ((argv[i] = next_string(&p, end)) == NULL)
			goto out;
	for (i = 0; i < w.envc; i++)
		if ((envp[i] = next_string(&p, end)) == NULL)
			goto out;
	if ((w.flags & W_DIRECTORY) &&
	    (r.directory = next_string(&p, end)) == NULL)
		goto out;
	for (i = 0; i < 2; i++) {
		if (w.pid_var[i] < 0)
			continue;
		if ((uint32_t)w.pid_var[i] >= w.envc)
			goto out;
		/* The child writes its pid after the '=': make room. */
		want = strlen(envp[w.pid_var[i]]) + PID_ROOM;
		r.pid_vars[i] = xcalloc(1, want);
		memcpy(r.pid_vars[i], envp[w.pid_var[i]], want - PID_ROOM);
		envp[w.pid_var[i]] = r.pid_vars[i];
	}

	r.argv = argv;
	r.envp = envp;
	r.set_ids = (w.flags & W_SET_IDS) != 0;
	r.uid = (uid_t)w.uid;
	r.gid = (gid_t)w.gid;
	r.groups = groups;
	r.ngroups = w.ngroups;
	r.stdout_fd = (w.flags & W_STDOUT) ? fds[k++] : -1;
	r.stderr_fd = (w.flags & W_STDERR) ? fds[k++] : -1;
	r.cgroup_dir_fd = (w.flags & W_CG_DIR) ? fds[k++] : -1;
	r.cgroup_join_fd = (w.flags & W_CG_JOIN) ? fds[k++] : -1;
	r.fds = fds + k;
	r.nfds = w.nfds;
	r.pdeathsig = w.pdeathsig;
	r.nofile = (long)w.nofile;
	r.drop_caps = (w.flags & W_DROP_CAPS) != 0;
	r.capabilities = w.capabilities;
	r.no_new_privs = (w.flags & W_NO_NEW_PRIVS) != 0;
	pid = spawn_fork(&r, fds[0], (pid_t)w.parent, true);
out:
	free(r.pid_vars[0]);
	free(r.pid_vars[1]);
	free(argv);
	free(envp);
	free(groups);
	return pid;
}

static _Noreturn void
server_main(int fd)
{
	union {
		char		 buf[CMSG_SPACE(FDS_MAX * sizeof(int))];
		struct cmsghdr	 align;
	} u;
	char *buf = xmalloc(REQ_MAX);
	int fds[FDS_MAX];

	for (;;) {
		struct iovec iov = { buf, REQ_MAX };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = u.buf, .msg_controllen = sizeof u.buf };
		struct cmsghdr *c;
		struct reply rep;
		size_t nfds = 0;
		ssize_t n;

		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* EOF: the daemon closed or died */
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS) {
				nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
			}
		if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || nfds == 0) {
			rep.pid = -1;
			rep.err = EPROTO;
		} else {
			rep.pid = serve_one(buf, (size_t)n, fds, nfds);
			rep.err = rep.pid == -1 ? errno : 0;
		}
		close_all(fds, nfds);
		if (send(fd, &rep, sizeof rep, MSG_NOSIGNAL) == -1)
			break;
	}
	free(buf);
	_exit(0);
}

struct spawner *
spawner_start(void)
{
	static const int quiet[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
		SIGUSR1, SIGUSR2, SIGPIPE };
	struct spawner *s;
	pid_t daemon = getpid(), pid;
	int sv[2], e, fd;
	size_t i;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return NULL;
	}
	if (pid == 0) {
		/* Terminal signals reach the daemon's whole process group:
		 * the server leaves when the daemon does, on EOF or by
		 * PR_SET_PDEATHSIG, not on Ctrl-C. */
		for (i = 0; i < nitems(quiet); i++)
			signal(quiet[i], SIG_IGN);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != daemon)
			_exit(1);
		(void)prctl(PR_SET_NAME, "recyclerd-spawn");
		/* Only the socket: a handful of descriptors is the point. */
		if (sv[1] != 3 && dup2(sv[1], 3) == -1)
			_exit(1);
		if (syscall(SYS_close_range, 4U, ~0U, 0U) == -1)
			for (fd = 4; fd < 65536; fd++)
				(void)close(fd);
		server_main(3);
	}
	close(sv[1]);
	s = xmalloc(sizeof *s);
	s->pid = pid;
	s->fd = sv[0];
	s->buf = xmalloc(REQ_MAX);
	return s;
}

void
spawner_stop(struct spawner *s)
{
	int i;

	if (s == NULL)
		return;
	if (s->fd != -1) {
		/* EOF: the server exits. Reaped here, since the loop that
		 * reaps children has ended: the orphan sweep that follows
		 * would take our own helper for somebody's leftover. A
		 * second at most, then SIGKILL. */
		close(s->fd);
		for (i = 0; i < 100 && waitpid(s->pid, NULL, WNOHANG) == 0;
		    i++)
			(void)poll(NULL, 0, 10);
		if (i == 100) {
			(void)kill(s->pid, SIGKILL);
			(void)waitpid(s->pid, NULL, 0);
		}
	}
	free(s->buf);
	free(s);
}

pid_t
spawner_pid(const struct spawner *s)
{
	return s != NULL && s->fd != -1 ? s->pid : 0;
}

/* ---- the daemon's side ---- */

static void
server_lost(struct spawner *s, const char *why)
{
	log_warn("spawn server [pid %ld] %s: forking workers from the "
	    "daemon from now on", (long)s->pid, why);
	close(s->fd);
	s->fd = -1;
	(void)kill(s->pid, SIGKILL);	/* reaped by the loop */
}

/* Append the request to buf; -1 when it does not fit in one datagram. */
static ssize_t
encode(const struct spawn_req *r, char *buf)
{
	struct wire w = { 0 };
	size_t len = sizeof w, n, i;
	char *const *v;
	int j;

	w.flags = (r->stdout_fd != -1 ? W_STDOUT : 0) |
	    (r->stderr_fd != -1 ? W_STDERR : 0) |
	    (r->cgroup_dir_fd != -1 ? W_CG_DIR : 0) |
	    (r->cgroup_join_fd != -1 ? W_CG_JOIN : 0) |
	    (r->directory != NULL ? W_DIRECTORY : 0) |
	    (r->set_ids ? W_SET_IDS : 0) |
	    (r->drop_caps ? W_DROP_CAPS : 0) |
	    (r->no_new_privs ? W_NO_NEW_PRIVS : 0);
	w.uid = (uint32_t)r->uid;
	w.gid = (uint32_t)r->gid;
	w.pdeathsig = r->pdeathsig;
	w.nofile = r->nofile;
	w.capabilities = r->capabilities;
	w.parent = (int32_t)getpid();
	w.ngroups = (uint32_t)r->ngroups;
	w.nfds = (uint32_t)r->nfds;
	w.pid_var[0] = w.pid_var[1] = -1;
	for (i = 0; i < r->ngroups; i++, len += sizeof(uint32_t)) {
		uint32_t g = (uint32_t)r->groups[i];

		if (len + sizeof g > REQ_MAX)
			return -1;
		memcpy(buf + len, &g, sizeof g);
	}
	for (v = r->argv; *v != NULL; v++, w.argc++) {
		if (len + (n = strlen(*v) + 1) > REQ_MAX)
			return -1;
		memcpy(buf + len, *v, n);
		len += n;
	}
	for (v = r->envp; *v != NULL; v++, w.envc++) {
		for (j = 0; j < 2; j++)
			if (*v == r->pid_vars[j])
				w.pid_var[j] = (int32_t)w.envc;
		if (len + (n = strlen(*v) + 1) > REQ_MAX)
			return -1;
		memcpy(buf + len, *v, n);
		len += n;
	}
	if (r->directory != NULL) {
		if (len + (n = strlen(r->directory) + 1) > REQ_MAX)
			return -1;
		memcpy(buf + len, r->directory, n);
		len += n;
	}
	memcpy(buf, &w, sizeof w);
	return (ssize_t)len;
}

/*
 * Ask the server. The pid (or -1 and errno for a failed clone, which the
 * caller handles like a failed fork); -2 when the server could not answer
 * and the caller should fork itself.
 */
static pid_t
ask(struct spawner *s, const struct spawn_req *r, int status_wfd)
{
	char *buf = s->buf;
	union {
		char		 buf[CMSG_SPACE(FDS_MAX * sizeof(int))];
		struct cmsghdr	 align;
	} u;
	int fds[FDS_MAX], extra[4] = { r->stdout_fd, r->stderr_fd,
		r->cgroup_dir_fd, r->cgroup_join_fd };
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	struct iovec iov;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	struct reply rep;
	size_t nfds = 0, i;
	ssize_t len, n;
	int rc;

	if (r->nfds > SOCKETS_MAX || (len = encode(r, buf)) == -1)
		return -2;		/* too large: fork it ourselves */
	fds[nfds++] = status_wfd;
	for (i = 0; i < nitems(extra); i++)
		if (extra[i] != -1)
			fds[nfds++] = extra[i];
	for (i = 0; i < r->nfds; i++)
		fds[nfds++] = r->fds[i];
	iov.iov_base = buf;
	iov.iov_len = (size_t)len;
	msg.msg_control = u.buf;
	msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));

	do
		n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (errno == EMSGSIZE || errno == ENOBUFS)
			return -2;
		server_lost(s, strerror(errno));
		return -2;
	}
	do
		rc = poll(&pfd, 1, REPLY_TIMEOUT_MS);
	while (rc == -1 && errno == EINTR);
	if (rc == 0) {
		server_lost(s, "did not answer within 5s");
		return -2;
	}
	do
		n = recv(s->fd, &rep, sizeof rep, 0);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof rep) {
		server_lost(s, n == 0 ? "exited" : "answered garbage");
		return -2;
	}
	if (rep.pid > 0)
		return (pid_t)rep.pid;
	if (rep.err == ENOSYS || rep.err == EINVAL || rep.err == EPERM ||
	    rep.err == EPROTO) {
		/* This kernel (or valgrind) will not clone for our parent. */
		server_lost(s, strerror(rep.err));
		return -2;
	}
	errno = rep.err;		/* EAGAIN, ENOMEM: a failed fork */
	return -1;
}

pid_t
spawner_spawn(struct spawner *s, const struct spawn_req *r, int *status_fd)
{
	int p[2], saved;
	pid_t pid;

	if (s == NULL || s->fd == -1)
		return spawn_start(r, status_fd);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	pid = ask(s, r, p[1]);
	saved = errno;
	close(p[1]);
	if (pid == -2) {
		close(p[0]);
		return spawn_start(r, status_fd);
	}
	if (pid == -1) {
		close(p[0]);
		errno = saved;
		return -1;
	}
	*status_fd = p[0];
	return pid;
}
