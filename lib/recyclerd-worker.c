/* SPDX-License-Identifier: MIT */
/*
 * recyclerd-worker.c - the worker's side of recyclerd's protocol: notify,
 * listen_fds and the template loop of preloaded pools (spawn = template).
 *
 * The template answers each "FORK slot=N generation=G" datagram with a
 * double fork, done ahead of the request (struct spare): the intermediate
 * child exits at once (the template reaps it), so the worker-to-be waits
 * re-parented to recyclerd, a subreaper. The worker reports its own pid
 * once it is in its session and cgroup, and the template answers PID=
 * only then, so the daemon never hears of a worker that does not exist
 * yet or sits in the wrong cgroup.
 *
 * Plain POSIX and Linux calls, no libsystemd: a worker links this in and
 * runs anywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recyclerd-worker.h"

#define NOTIFY_MAX	4096	/* as the daemon's buffer */
#define REQUEST_MAX	4096	/* a FORK request is one short line */
#define FDS_MAX		4	/* one expected: the cgroup directory */
#define ANSWER_MAX	256

/*
 * What recyclerd_listen_fds() took from the environment, so that the
 * workers of a template that called it before serving get the sockets
 * too: the count (0: none) and LISTEN_FDNAMES (NULL: none).
 */
static int listen_n;
static char *listen_names;

int
recyclerd_notify(const char *msg)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	size_t n;
	ssize_t r;
	int fd, saved;

	if (e == NULL || *e == '\0')
		return 0;
	n = strlen(e);
	if ((*e != '/' && *e != '@') || n >= sizeof(sun.sun_path))
		return -EINVAL;
	memcpy(sun.sun_path, e, n);
	if (*e == '@')
		sun.sun_path[0] = '\0';		/* abstract namespace */
	len = offsetof(struct sockaddr_un, sun_path) + n;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	do
		r = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		    (struct sockaddr *)&sun, len);
	while (r == -1 && errno == EINTR);
	saved = errno;
	close(fd);
	return r == -1 ? -saved : 1;
}

int
recyclerd_notifyf(const char *fmt, ...)
{
	char buf[NOTIFY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -EMSGSIZE;
	return recyclerd_notify(buf);
}

/* A decimal number that fits in a long, whole string; -1 if not. */
static long
parse_number(const char *s, long max)
{
	char *end;
	long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	return v;
}

static void
unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int
recyclerd_listen_fds(void)
{
	const char *names;
	long pid, n, i;
	int flags;

	pid = parse_number(getenv("LISTEN_PID"), 0x7fffffff);
	if (pid != (long)getpid()) {
		unset_listen_env();
		return 0;
	}
	if (getenv("LISTEN_FDS") == NULL) {
		unset_listen_env();
		return 0;
	}
	n = parse_number(getenv("LISTEN_FDS"), 65536);
	if (n < 0) {
		unset_listen_env();
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		int fd = RECYCLERD_LISTEN_FDS_START + (int)i;

		if ((flags = fcntl(fd, F_GETFD)) == -1 ||
		    fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1) {
			unset_listen_env();
			return -errno;
		}
	}
	/* Kept for the workers of a template (see serve_template). */
	free(listen_names);
	listen_names = NULL;
	if ((names = getenv("LISTEN_FDNAMES")) != NULL)
		listen_names = strdup(names);
	listen_n = (int)n;
	unset_listen_env();
	return (int)n;
}

/* The template's descriptor from RECYCLERD_TEMPLATE_FD: -1 if none,
 * -2 if set but not an AF_UNIX SOCK_SEQPACKET socket. */
static int
template_fd(void)
{
	const char *e = getenv("RECYCLERD_TEMPLATE_FD");
	int fd, type, domain;
	socklen_t len;

	if (e == NULL)
		return -1;
	fd = (int)parse_number(e, 0x7fffffff);
	unsetenv("RECYCLERD_TEMPLATE_FD");	/* not the workers' business */
	if (fd < 0)
		return -2;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    type != SOCK_SEQPACKET)
		return -2;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1 ||
	    domain != AF_UNIX)
		return -2;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -2;
	return fd;
}

/*
 * "FORK slot=N generation=G [key=value ...]": fills slot and generation,
 * or writes the reason into err and returns -1. Unknown keys are ignored:
 * the daemon may add fields.
 */
static int
parse_fork(char *req, long *slot, long *gen, char *err, size_t errlen)
{
	char *w, *save, *eq;
	bool first = true;

	*slot = *gen = -1;
	if (strlen(req) > 0 && req[strlen(req) - 1] == '\n')
		req[strlen(req) - 1] = '\0';
	for (w = strtok_r(req, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (first) {
			if (strcmp(w, "FORK") != 0) {
				snprintf(err, errlen, "unknown request "
				    "'%.32s', expected FORK", w);
				return -1;
			}
			first = false;
			continue;
		}
		if ((eq = strchr(w, '=')) == NULL || eq == w) {
			snprintf(err, errlen, "field '%.32s' is not key=value",
			    w);
			return -1;
		}
		*eq = '\0';
		if (strcmp(w, "slot") == 0 || strcmp(w, "generation") == 0) {
			long v = parse_number(eq + 1, 0x7fffffffL);

			if (v < 0) {
				snprintf(err, errlen, "%s='%.32s' is not a "
				    "number", w, eq + 1);
				return -1;
			}
			*(strcmp(w, "slot") == 0 ? slot : gen) = v;
		}
	}
	if (first) {
		snprintf(err, errlen, "empty request, expected FORK");
		return -1;
	}
	if (*slot < 0 || *gen < 0) {
		snprintf(err, errlen, "no %s= field",
		    *slot < 0 ? "slot" : "generation");
		return -1;
	}
	return 0;
}

static void
write_all(int fd, const char *s)
{
	size_t len = strlen(s);
	ssize_t r;

	while (len > 0) {
		r = write(fd, s, len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		s += r;
		len -= (size_t)r;
	}
}

/* "0" into dirfd/name; 0 or -errno. */
static int
write_zero(int dirfd, const char *name)
{
	int fd, saved;
	ssize_t r;

	fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	r = write(fd, "0", 1);
	saved = errno;
	close(fd);
	return r == 1 ? 0 : -saved;
}

/*
 * Into the group below dirfd. On cgroup v1, by its tasks file: that moves
 * the calling thread alone, which is all of a process just forked, and
 * spares the wait for an RCU grace period that a v1 cgroup.procs write
 * makes (8-20 ms, most of what a fork from the template costs). v2 has
 * no tasks file: cgroup.procs.
 */
static int
enter_cgroup(int dirfd)
{
	return write_zero(dirfd, "tasks") == 0 ? 0 :
	    write_zero(dirfd, "cgroup.procs");
}

/* The descriptors of an SCM_RIGHTS message into fds; their count. */
static int
received_fds(struct msghdr *mh, int *fds, int max)
{
	struct cmsghdr *c;
	int n = 0, i, k;

	for (c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
			    sizeof(int));
			if (n < max)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

/*
 * In the worker-to-be: session, cgroup, environment, then the pid to the
 * template on report. false (the error reported) if it cannot become a
 * worker.
 */
static bool
become_worker(int report, int cgfd, long slot, long gen)
{
	char buf[ANSWER_MAX];
	int r;

	if (setsid() == -1) {
		snprintf(buf, sizeof(buf), "ERROR=setsid: %s",
		    strerror(errno));
		write_all(report, buf);
		return false;
	}
	if (cgfd >= 0 && (r = enter_cgroup(cgfd)) < 0) {
		snprintf(buf, sizeof(buf), "ERROR=cannot enter the cgroup: "
		    "cgroup.procs: %s", strerror(-r));
		write_all(report, buf);
		return false;
	}
	if (cgfd >= 0)
		close(cgfd);
	if (listen_n > 0) {
		snprintf(buf, sizeof(buf), "%d", listen_n);
		setenv("LISTEN_FDS", buf, 1);
		if (listen_names != NULL)
			setenv("LISTEN_FDNAMES", listen_names, 1);
		snprintf(buf, sizeof(buf), "%ld", (long)getpid());
		setenv("LISTEN_PID", buf, 1);
	}
	snprintf(buf, sizeof(buf), "%ld", slot);
	setenv("RECYCLERD_WORKER", buf, 1);
	snprintf(buf, sizeof(buf), "%ld", gen);
	setenv("RECYCLERD_GENERATION", buf, 1);
	signal(SIGCHLD, SIG_DFL);
	/* Last: the template answers with what it reads here. */
	snprintf(buf, sizeof(buf), "PID=%ld", (long)getpid());
	write_all(report, buf);
	close(report);
	return true;
}

/*
 * A worker forked ahead of its FORK request. Its intermediate process
 * exited as soon as it had forked it, so it waits already re-parented to
 * the daemon (which holds it as the template's orphan, killed with the
 * template, until an answer names it). A request then costs no fork (the
 * template's page tables copied twice, two new processes to schedule on a
 * busy machine) and no exit on the way to PID= (the intermediate's, the
 * template woken to reap it): one wake-up, the spare's.
 */
struct spare {
	int		 chan;	/* to the worker-to-be: its request; its
				 * PID= (or ERROR=) back; EOF, it exits.
				 * -1: no spare */
	pid_t		 inter;	/* the intermediate until reaped, else 0 */
};

/* Control data for one descriptor (a cgroup's, SCM_RIGHTS), aligned. */
union one_fd {
	struct cmsghdr	 align;
	char		 buf[CMSG_SPACE(sizeof(int))];
};

static void
reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/* The intermediate is gone (a zombie since it forked): reap it. */
static void
spare_reaped(struct spare *s)
{
	if (s->inter != 0) {
		reap(s->inter);
		s->inter = 0;
	}
}

/* No more use for it: EOF tells the worker-to-be to exit. */
static void
spare_discard(struct spare *s)
{
	if (s->chan == -1)
		return;
	close(s->chan);
	s->chan = -1;
	spare_reaped(s);
}

/* One datagram of at most len - 1 bytes into buf, its descriptors into
 * control (for received_fds()); mh says what came (msg_flags). */
static ssize_t
recv_datagram(int fd, char *buf, size_t len, void *control, size_t clen,
    struct msghdr *mh, struct iovec *iov)
{
	memset(mh, 0, sizeof(*mh));
	iov->iov_base = buf;
	iov->iov_len = len - 1;
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	mh->msg_control = control;
	mh->msg_controllen = clen;
	return recvmsg(fd, mh, MSG_CMSG_CLOEXEC);
}

/* In the worker-to-be: its request, then the worker's life. */
static void __attribute__((noreturn))
wait_request(int chan, recyclerd_worker_fn run_worker, void *arg)
{
	union one_fd cbuf;
	struct msghdr mh;
	struct iovec iov;
	char req[64];
	long slot, gen;
	int fd = -1;
	ssize_t n;

	while ((n = recv_datagram(chan, req, sizeof(req), cbuf.buf,
	    sizeof(cbuf.buf), &mh, &iov)) == -1 && errno == EINTR)
		;
	if (n <= 0)
		_exit(0);		/* discarded */
	req[n] = '\0';
	if (received_fds(&mh, &fd, 1) == 0)
		fd = -1;
	if (sscanf(req, "%ld %ld", &slot, &gen) != 2 ||
	    !become_worker(chan, fd, slot, gen))
		_exit(1);
	exit(run_worker(arg));
}

/* Both forks, ahead of the request; the intermediate exits at once. -1
 * with errno when the first fails (a failed second one is an intermediate
 * that exits: EOF on the channel). */
static int
spare_make(int sock, struct spare *s, recyclerd_worker_fn run_worker,
    void *arg)
{
	int sv[2];
	pid_t pid, child;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	fflush(NULL);		/* no buffered output written twice */
	if ((pid = fork()) == -1) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* The template's end is its alone: it closes with it. */
		close(sock);
		close(sv[0]);
		if ((child = fork()) == 0)
			wait_request(sv[1], run_worker, arg);
		_exit(child == -1);
	}
	close(sv[1]);
	s->inter = pid;
	s->chan = sv[0];
	return 0;
}

/* The request to the spare (used up either way); the answer to send (PID=
 * or ERROR=) into answer. -1 when the spare was gone before it got the
 * request (a fresh one may try again). */
static int
fork_worker(struct spare *s, int cgfd, long slot, long gen, char *answer,
    size_t len)
{
	union one_fd cbuf;
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *c;
	char req[64], buf[ANSWER_MAX];
	ssize_t r;

	/* Long since, as a rule; once it has been, the worker is re-parented
	 * before it reads a byte of the request. */
	spare_reaped(s);
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = req;
	iov.iov_len = (size_t)snprintf(req, sizeof(req), "%ld %ld", slot, gen);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (cgfd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &cgfd, sizeof(int));
	}
	if (sendmsg(s->chan, &mh, MSG_NOSIGNAL) == -1) {
		snprintf(answer, len, "ERROR=the forked worker is gone: %s",
		    strerror(errno));
		spare_discard(s);
		return -1;
	}
	while ((r = recv(s->chan, buf, sizeof(buf) - 1, 0)) == -1 &&
	    errno == EINTR)
		;
	close(s->chan);
	s->chan = -1;
	buf[r > 0 ? r : 0] = '\0';
	if (strncmp(buf, "PID=", 4) == 0 || strncmp(buf, "ERROR=", 6) == 0)
		snprintf(answer, len, "%s", buf);
	else
		snprintf(answer, len, "ERROR=the worker exited before it "
		    "reported its pid");
	return 0;
}

/* One request: the answer into answer. */
static void
serve_one(int sock, char *req, ssize_t len, int flags, int *fds, int nfds,
    struct spare *spare, recyclerd_worker_fn run_worker, void *arg,
    char *answer, size_t alen)
{
	char err[128];
	long slot, gen;
	int tries;

	if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
		snprintf(answer, alen, "ERROR=request longer than %d bytes or "
		    "with more than %d descriptors", REQUEST_MAX - 1, FDS_MAX);
		return;
	}
	if (nfds > 1) {
		snprintf(answer, alen, "ERROR=more than one descriptor "
		    "(expected a cgroup directory)");
		return;
	}
	if (memchr(req, '\0', (size_t)len) != NULL) {
		snprintf(answer, alen, "ERROR=bad request: NUL byte");
		return;
	}
	req[len] = '\0';
	if (parse_fork(req, &slot, &gen, err, sizeof(err)) == -1) {
		snprintf(answer, alen, "ERROR=bad request: %s", err);
		return;
	}
	/* Twice at most: a spare killed while it waited (the OOM killer, a
	 * stray signal) is replaced by a fresh one, not reported. */
	for (tries = 0; tries < 2; tries++) {
		if (spare->chan == -1 &&
		    spare_make(sock, spare, run_worker, arg) == -1) {
			snprintf(answer, alen, "ERROR=fork: %s",
			    strerror(errno));
			return;
		}
		if (fork_worker(spare, nfds == 1 ? fds[0] : -1, slot, gen,
		    answer, alen) == 0)
			return;
	}
}

int
recyclerd_serve_template(recyclerd_worker_fn run_worker, void *arg)
{
	char req[REQUEST_MAX], answer[ANSWER_MAX];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(FDS_MAX * sizeof(int))];
	} cbuf;
	struct spare spare = { .chan = -1, .inter = 0 };
	int sock, fds[FDS_MAX], nfds, i, r;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	if ((sock = template_fd()) == -1)
		return run_worker(arg);
	if (sock == -2)
		return -EBADF;
	/* Sockets not taken yet: kept for the workers all the same. */
	if (listen_n == 0 && recyclerd_listen_fds() < 0)
		return -EINVAL;
	(void)spare_make(sock, &spare, run_worker, arg);	/* or on demand */
	r = recyclerd_notify("READY=1\nSTATUS=template: waiting for FORK "
	    "requests");
	if (r < 0)
		goto out;
	for (;;) {
		/* Between requests: the next one costs no fork. */
		if (spare.chan == -1)
			(void)spare_make(sock, &spare, run_worker, arg);
		n = recv_datagram(sock, req, sizeof(req), cbuf.buf,
		    sizeof(cbuf.buf), &mh, &iov);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != ECONNRESET) {
			r = -errno;
			goto out;
		}
		nfds = n == -1 ? 0 : received_fds(&mh, fds, FDS_MAX);
		if (n <= 0 && nfds == 0)
			break;		/* the daemon closed its end */
		serve_one(sock, req, n, mh.msg_flags, fds, nfds, &spare,
		    run_worker, arg, answer, sizeof(answer));
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (send(sock, answer, strlen(answer), MSG_NOSIGNAL) == -1 &&
		    errno != EINTR)
			break;
	}
	r = 0;
out:
	spare_discard(&spare);
	close(sock);
	return r;
}
