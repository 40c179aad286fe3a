/* SPDX-License-Identifier: MIT */
/*
 * listen.c - bind, adopt and hand over the listening sockets of pools.
 *
 * A pool's sockets belong to the daemon, not to its workers: workers get
 * copies at fd 3.. (sd_listen_fds compatible) and may exit at any time, but
 * the socket itself lives as long as the pool does, so the kernel keeps
 * queueing connections while a worker is recycled and none is refused.
 *
 * Addresses: "tcp:PORT" binds 0.0.0.0 (IPv4 only; add "tcp6:PORT" for
 * [::]), "tcp:HOST:PORT" binds the first address HOST resolves to that can
 * be bound, every IPv6 socket is IPV6_V6ONLY so the IPv4 and IPv6 sockets
 * of one port never collide. "unix:PATH" removes a stale socket file first
 * (never a live one, never a file that is not a socket) and never unlinks
 * the file on close: on a reload the next set still uses it. "systemd:NAME"
 * takes every socket systemd passed under that FileDescriptorName= (a
 * socket unit may have several ListenStream= lines sharing one name).
 *
 * Every set owns its descriptors: reused and systemd sockets are dup'ed,
 * so listen_close() closes everything it holds and nothing else.
 *
 * The sockets systemd passed are kept in module-static state, the one
 * exception to "no globals outside main.c": systemd passes them once per
 * process lifetime, before any pool exists, and every configuration (every
 * reload) must find them again; they are never closed.
 *
 * Sockets stay blocking: the daemon never accepts on them. O_NONBLOCK is
 * a flag of the open file description, shared with every worker, so the
 * workers choose it (and all workers of a pool should choose the same).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listen.h"
#include "log.h"

/* The sockets systemd passed (see the comment at the top). */
static struct {
	bool		 adopted;	/* listen_adopt_systemd() ran */
	int		*fds;
	char		**names;	/* NULL-terminated, from libsystemd */
	size_t		 n;
} sd_socks;

/* "a, b, c" of the names systemd passed, or "none"; caller frees. */
static char *
sd_names_joined(void)
{
	size_t i, len = 1;
	char *s;

	if (sd_socks.n == 0)
		return xstrdup("none");
	for (i = 0; i < sd_socks.n; i++)
		len += strlen(sd_socks.names[i]) + 2;
	s = xmalloc(len);
	s[0] = '\0';
	for (i = 0; i < sd_socks.n; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, sd_socks.names[i]);
	}
	return s;
}

void
listen_adopt_systemd(void)
{
	char **names = NULL, *joined;
	int n, i;

	if (sd_socks.adopted)
		return;
	sd_socks.adopted = true;
	/* unset_environment = 1: our LISTEN_* must not reach the workers
	 * (they get their own); it also sets FD_CLOEXEC on the sockets. */
	n = sd_listen_fds_with_names(1, &names);
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	if (n < 0) {
		log_msg_errno(LOG_WARNING, -n, "ignoring the sockets passed "
		    "by systemd (LISTEN_FDS)");
		strv_free(names);
		return;
	}
	if (n == 0 || names == NULL) {
		strv_free(names);
		return;
	}
	sd_socks.fds = xcalloc((size_t)n, sizeof *sd_socks.fds);
	for (i = 0; i < n; i++)
		sd_socks.fds[i] = SD_LISTEN_FDS_START + i;
	sd_socks.names = names;
	sd_socks.n = (size_t)n;
	joined = sd_names_joined();
	log_info("adopted %d socket%s passed by systemd: %s", n,
	    n == 1 ? "" : "s", joined);
	free(joined);
}

/* The NAME of "systemd:NAME[,options]", from the text as written: the
 * name= option may have replaced the spec's name (the LISTEN_FDNAMES entry
 * the workers see). Caller frees. */
static char *
systemd_name(const struct listen_spec *ls)
{
	const char *s = ls->text;
	size_t len;
	char *name;

	if (s == NULL || strncmp(s, "systemd:", 8) != 0)
		return xstrdup(ls->name ? ls->name : "");
	len = strcspn(s + 8, ",");
	name = xmalloc(len + 1);
	memcpy(name, s + 8, len);
	name[len] = '\0';
	return name;
}

char *
listen_key(const struct listen_spec *ls)
{
	char buf[INET6_ADDRSTRLEN], *key, *name;
	unsigned char addr[sizeof(struct in6_addr)];
	const char *host = ls->host;

	switch (ls->kind) {
	case LISTEN_TCP:
		if (ls->family == AF_INET6) {
			if (host == NULL)
				host = "::";
			/* One spelling per address: "::0001" is "::1". */
			else if (inet_pton(AF_INET6, host, addr) == 1 &&
			    inet_ntop(AF_INET6, addr, buf, sizeof buf) != NULL)
				host = buf;
			xasprintf(&key, "tcp6:[%s]:%u", host, ls->port);
		} else {
			if (host == NULL)
				host = "0.0.0.0";
			xasprintf(&key, "tcp:%s:%u", host, ls->port);
		}
		return key;
	case LISTEN_UNIX:
		xasprintf(&key, "unix:%s", host ? host : "");
		return key;
	case LISTEN_SYSTEMD:
		name = systemd_name(ls);
		xasprintf(&key, "systemd:%s", name);
		free(name);
		return key;
	}
	return xstrdup("?");
}

/* --- TCP ------------------------------------------------------------------ */

static int
bind_tcp_one(const struct addrinfo *ai, int backlog)
{
	int fd, on = 1, err;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
	    ai->ai_protocol);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == -1)
		goto fail;
	/* Without it [::]:80 would also take 0.0.0.0:80 and collide with a
	 * tcp:80 of the same or another pool. */
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) == -1)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, backlog) == -1)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int
open_tcp(const struct listen_spec *ls, int backlog, char **why)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int fd = -1, rc, err = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* "tcp:PORT" is IPv4 only (see the top of the file). */
	hints.ai_family = ls->family == AF_UNSPEC && ls->host == NULL ?
	    AF_INET : ls->family;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
	snprintf(port, sizeof port, "%u", ls->port);
	/* A numeric address never touches the resolver; a name does. */
	rc = getaddrinfo(ls->host, port, &hints, &res);
	if (rc == EAI_NONAME && ls->host != NULL) {
		hints.ai_flags &= ~AI_NUMERICHOST;
		rc = getaddrinfo(ls->host, port, &hints, &res);
	}
	if (rc != 0) {
		xasprintf(why, "cannot resolve %s: %s", ls->host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		if ((fd = bind_tcp_one(ai, backlog)) == -1 && err == 0)
			err = errno;
	freeaddrinfo(res);
	if (fd == -1)
		*why = xstrdup(strerror(err ? err : EADDRNOTAVAIL));
	return fd;
}

/* --- unix ----------------------------------------------------------------- */

/*
 * The socket file's mode and owner are set without ever following a link:
 * the directory may belong to the workers' user (the documented /run/php
 * setups), who may swap the file for a symbolic link at any time.
 *  - The mode is set on the socket before bind() (fchmod on the socket
 *    descriptor; bind() creates the file with that mode minus the umask,
 *    which is 0 meanwhile): the file is born with it.
 *  - The owner, and a mode changed by a reload, go through an O_PATH |
 *    O_NOFOLLOW descriptor of the file, checked to be a socket created by
 *    us (created: a socket of our uid; reused: the very inode bind()
 *    made, whose identity the set records).
 * A file that is no longer ours is left alone and the error logged.
 */

/* Does a process accept connections on the socket file at path? */
static bool
unix_is_live(const struct sockaddr_un *sun)
{
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return false;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	/* EAGAIN: its backlog is full, so somebody listens. */
	rc = rc == 0 || errno == EAGAIN;
	close(fd);
	return rc;
}

/* May a user other than root (or us) change the entries of path's
 * directory? Then a link there is a plant, not the operator's. */
static bool
unix_dir_is_shared(const char *path)
{
	char *dir = xstrdup(path), *slash;
	struct stat st;
	bool shared;

	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	if (slash == NULL || stat(dir, &st) == -1)
		shared = false;
	else
		shared = (st.st_uid != 0 && st.st_uid != geteuid()) ||
		    ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0);
	free(dir);
	return shared;
}

/*
 * Remove what an earlier run left at the path: a socket file nobody
 * listens on. A live socket belongs to another process (we would steal its
 * address), any other file is not ours: both are errors. One exception: a
 * symbolic link in a directory that another user may write is that user's
 * plant (a link to a file of root's, waiting for our chmod): the link
 * itself is removed, never followed, so the pool still starts.
 */
static int
unix_remove_stale(const struct sockaddr_un *sun, char **why)
{
	const char *path = sun->sun_path;
	struct stat st;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		xasprintf(why, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode) && unix_dir_is_shared(path)) {
		log_warn("listen unix:%s: removing a symbolic link that a user "
		    "other than root put there (never followed)", path);
		if (unlink(path) == -1 && errno != ENOENT) {
			xasprintf(why, "unable to remove the symbolic link "
			    "%s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!S_ISSOCK(st.st_mode)) {
		xasprintf(why, "%s exists and is not a socket%s", path,
		    S_ISLNK(st.st_mode) ? " (a symbolic link: never "
		    "followed)" : "");
		return -1;
	}
	if (unix_is_live(sun)) {
		*why = xstrdup(strerror(EADDRINUSE));
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		xasprintf(why, "unable to remove stale socket %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* uid and gid of "user[:group]" (by name or number); gid -1 = keep. */
static int
parse_owner(const char *owner, uid_t *uid, gid_t *gid, char **why)
{
	char *user = xstrdup(owner), *group, *end;
	struct passwd *pw;
	struct group *gr;
	unsigned long v;
	int rc = -1;

	if ((group = strchr(user, ':')) != NULL)
		*group++ = '\0';
	*gid = (gid_t)-1;
	errno = 0;
	if ((pw = getpwnam(user)) != NULL)
		*uid = pw->pw_uid;
	else if (*user != '\0' && (v = strtoul(user, &end, 10), *end == '\0'))
		*uid = (uid_t)v;
	else {
		xasprintf(why, "owner=%s: unknown user %s", owner, user);
		goto out;
	}
	if (group != NULL) {
		if ((gr = getgrnam(group)) != NULL)
			*gid = gr->gr_gid;
		else if (*group != '\0' &&
		    (v = strtoul(group, &end, 10), *end == '\0'))
			*gid = (gid_t)v;
		else {
			xasprintf(why, "owner=%s: unknown group %s", owner,
			    group);
			goto out;
		}
	}
	rc = 0;
out:
	free(user);
	return rc;
}

/*
 * An O_PATH descriptor of the socket file at path, never through a link,
 * checked to be ours: the inode in *id if it has one (reuse), else a
 * socket owned by our uid (just created), recorded into *id. -1 with *why.
 */
static int
unix_open_file(const char *path, struct listen_file *id, char **why)
{
	struct stat st;
	int fd;

	/* O_PATH | O_NOFOLLOW opens a link itself: fstat tells. */
	if ((fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		xasprintf(why, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		xasprintf(why, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (id->ino != 0 ? st.st_dev != id->dev || st.st_ino != id->ino :
	    !S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		xasprintf(why, "%s is no longer the socket file recyclerd "
		    "created (replaced by %s)", path, S_ISLNK(st.st_mode) ?
		    "a symbolic link, never followed" : S_ISSOCK(st.st_mode) ?
		    "another socket" : "another file");
		goto fail;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * mode= and owner= on the socket file through fd (an O_PATH descriptor
 * from unix_open_file()). fchmod() would change the socket, not the file,
 * and an O_PATH descriptor refuses fchmod(): chmod its /proc/self/fd link,
 * which names that very inode. fchownat(AT_EMPTY_PATH) takes O_PATH.
 */
static int
unix_apply_perms(const struct listen_spec *ls, int fd, bool set_mode,
    char **why)
{
	char proc[64];
	uid_t uid;
	gid_t gid;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (set_mode && ls->mode != 0 && chmod(proc, ls->mode) == -1) {
		xasprintf(why, "chmod %04o %s: %s", (unsigned int)ls->mode,
		    ls->host, strerror(errno));
		return -1;
	}
	if (ls->owner == NULL)
		return 0;
	if (parse_owner(ls->owner, &uid, &gid, why) == -1)
		return -1;
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) == -1) {
		xasprintf(why, "chown %s %s: %s", ls->owner, ls->host,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Unlink path if it is still the file id (not one that replaced it). */
static void
unix_unlink_ours(const char *path, const struct listen_file *id)
{
	struct stat st;

	if (id->ino != 0 && lstat(path, &st) == 0 && st.st_dev == id->dev &&
	    st.st_ino == id->ino)
		unlink(path);
}

static int
open_unix(const struct listen_spec *ls, int backlog, struct listen_file *id,
    char **why)
{
	struct sockaddr_un sun;
	mode_t old_umask = 0;
	int fd, pfd = -1, rc, err;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (ls->host == NULL || strlen(ls->host) >= sizeof sun.sun_path) {
		*why = xstrdup("socket path too long");
		return -1;
	}
	strcpy(sun.sun_path, ls->host);
	if (unix_remove_stale(&sun, why) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		*why = xstrdup(strerror(errno));
		return -1;
	}
	/* The file is born with the mode (see above); without a mode it
	 * gets the umask's. One thread: nobody else sees the umask. */
	if (ls->mode != 0 && fchmod(fd, ls->mode) == -1) {
		xasprintf(why, "fchmod %04o: %s", (unsigned int)ls->mode,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (ls->mode != 0)
		old_umask = umask(0);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	err = errno;
	if (ls->mode != 0)
		umask(old_umask);
	if (rc == -1) {
		*why = xstrdup(strerror(err));
		close(fd);
		return -1;
	}
	if ((pfd = unix_open_file(ls->host, id, why)) == -1 ||
	    unix_apply_perms(ls, pfd, false, why) == -1)
		goto fail;
	if (listen(fd, backlog) == -1) {
		*why = xstrdup(strerror(errno));
		goto fail;
	}
	close(pfd);
	return fd;
fail:
	/* The file is ours if it still is the one we made. */
	unix_unlink_ours(ls->host, id);
	if (pfd != -1)
		close(pfd);
	close(fd);
	return -1;
}

/* --- systemd -------------------------------------------------------------- */

/* Indexes of the sockets systemd passed as NAME into idx[]; the count. */
static size_t
sd_lookup(const char *name, size_t *idx)
{
	size_t i, n = 0;

	for (i = 0; i < sd_socks.n; i++)
		if (strcmp(sd_socks.names[i], name) == 0)
			idx[n++] = i;
	return n;
}

/* The local port of a TCP socket, 0 if unknown. */
static unsigned int
sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	memset(&ss, 0, sizeof ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* --- sets ----------------------------------------------------------------- */

static void
set_add(struct listen_set *s, int fd, const char *name, const char *key,
    const struct listen_file *id)
{
	s->fds = xrealloc(s->fds, (s->n + 1) * sizeof *s->fds);
	s->files = xrealloc(s->files, (s->n + 1) * sizeof *s->files);
	s->files[s->n] = *id;
	s->names = xrealloc(s->names, (s->n + 2) * sizeof *s->names);
	s->keys = xrealloc(s->keys, (s->n + 2) * sizeof *s->keys);
	s->fds[s->n] = fd;
	s->names[s->n] = xstrdup(name);
	s->keys[s->n] = xstrdup(key);
	s->n++;
	s->names[s->n] = NULL;
	s->keys[s->n] = NULL;
}

/* Index in set of the socket with this key, or -1. */
static ssize_t
set_find(const struct listen_set *s, const char *key)
{
	size_t i;

	for (i = 0; s != NULL && s->keys != NULL && i < s->n; i++)
		if (s->keys[i] != NULL && strcmp(s->keys[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * Mode and owner again on a reused socket's file, if it still is the file
 * bind() made (id). If it is not (removed, or replaced by a link or
 * another file: only someone who may write the directory can do that), it
 * is left alone and the error logged; the socket itself keeps working for
 * the workers, so the reload goes on. A chmod/chown that fails on our own
 * file is an error of the reload.
 */
static int
reuse_unix_perms(const struct listen_spec *ls, const struct log_ctx *ctx,
    struct listen_file *id, char **why)
{
	int pfd;

	if ((pfd = unix_open_file(ls->host, id, why)) == -1) {
		log_ctx(LOG_ERR, ctx, "listen %s: %s; its mode and owner are "
		    "left alone, the socket is kept", ls->text, *why);
		free(*why);
		*why = NULL;
		return 0;
	}
	if (unix_apply_perms(ls, pfd, true, why) == -1) {
		close(pfd);
		return -1;
	}
	close(pfd);
	return 0;
}

/*
 * The socket of an address the previous set already holds: dup it, and
 * apply what may have changed (backlog, mode, owner). listen() again on a
 * listening socket only updates its backlog.
 */
static int
reuse_one(const struct listen_spec *ls, const struct log_ctx *ctx, int old,
    int backlog, struct listen_file *id, char **why)
{
	int fd;

	if ((fd = dup_cloexec(old)) == -1) {
		xasprintf(why, "dup: %s", strerror(errno));
		return -1;
	}
	if (ls->kind == LISTEN_UNIX && reuse_unix_perms(ls, ctx, id, why) == -1)
		goto fail;
	if (listen(fd, backlog) == -1) {
		*why = xstrdup(strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Every socket of one spec into s; -1 with *why on error. *created tells
 * whether a unix socket file was made (to remove it if a later spec fails). */
static int
open_spec(const struct pool_config *pc, const struct listen_spec *ls,
    const struct listen_set *reuse, struct listen_set *s, bool *created,
    char **why)
{
	struct log_ctx ctx = LOG_CTX_NONE;
	struct listen_file id = { 0, 0 };
	char *key = listen_key(ls), *name, *have;
	const char *fdname = ls->name ? ls->name : pc->name;
	size_t *idx, i, n;
	ssize_t old;
	int fd, backlog = pc->listen_backlog > 0 ? pc->listen_backlog : 1024;
	int rc = -1;

	*created = false;
	ctx.pool = pc->name;
	if (ls->kind == LISTEN_SYSTEMD) {
		name = systemd_name(ls);
		idx = xcalloc(sd_socks.n + 1, sizeof *idx);
		if ((n = sd_lookup(name, idx)) == 0) {
			have = sd_names_joined();
			xasprintf(why, "no socket of that name was passed by "
			    "systemd (have: %s)", have);
			free(have);
		}
		for (i = 0; i < n; i++) {
			if ((fd = dup_cloexec(sd_socks.fds[idx[i]])) == -1) {
				xasprintf(why, "dup: %s", strerror(errno));
				break;
			}
			set_add(s, fd, fdname, key, &id);
		}
		if (n > 0 && i == n) {
			log_ctx(LOG_DEBUG, &ctx, "listen %s: %zu socket%s "
			    "from systemd", ls->text, n, n == 1 ? "" : "s");
			rc = 0;
		}
		free(idx);
		free(name);
		free(key);
		return rc;
	}

	if ((old = set_find(reuse, key)) >= 0) {
		id = reuse->files[old];
		fd = reuse_one(ls, &ctx, reuse->fds[old], backlog, &id, why);
		if (fd != -1)
			log_ctx(LOG_DEBUG, &ctx, "listen %s: keeping its socket",
			    ls->text);
	} else {
		fd = ls->kind == LISTEN_TCP ? open_tcp(ls, backlog, why) :
		    open_unix(ls, backlog, &id, why);
		/* Say which port port 0 got: clients need it. */
		if (fd != -1 && ls->kind == LISTEN_TCP && ls->port == 0)
			log_ctx(LOG_INFO, &ctx, "listening on %s (port %u)",
			    ls->text, sock_port(fd));
		else if (fd != -1)
			log_ctx(LOG_INFO, &ctx, "listening on %s", ls->text);
		*created = fd != -1 && ls->kind == LISTEN_UNIX;
	}
	if (fd != -1) {
		set_add(s, fd, fdname, key, &id);
		rc = 0;
	}
	free(key);
	return rc;
}

int
listen_open(const struct pool_config *pc, const struct listen_set *reuse,
    struct listen_set *out, char **err)
{
	struct listen_set s = { NULL, NULL, NULL, NULL, 0 };
	/* Per spec: 1 + the set index of the socket file this call made. */
	size_t *made = xcalloc(pc->nlisten + 1, sizeof *made);
	char *why = NULL;
	size_t i;
	bool created;

	for (i = 0; i < pc->nlisten; i++) {
		if (open_spec(pc, &pc->listen[i], reuse, &s, &created,
		    &why) == 0) {
			made[i] = created ? s.n : 0;
			continue;
		}
		xasprintf(err, "pool %s: listen %s: %s", pc->name,
		    pc->listen[i].text, why ? why : "failed");
		free(why);
		/* Leave nothing behind: the socket files this call made go
		 * too (never one a reused socket still has). */
		while (i-- > 0)
			if (made[i] != 0)
				unix_unlink_ours(pc->listen[i].host,
				    &s.files[made[i] - 1]);
		listen_close(&s);
		free(made);
		*out = s;
		return -1;
	}
	free(made);
	*out = s;
	return 0;
}

void
listen_discard(struct listen_set *s, const struct listen_set *reuse)
{
	size_t i;

	for (i = 0; s != NULL && i < s->n; i++)
		if (s->keys[i] != NULL && strncmp(s->keys[i], "unix:/", 6) == 0 &&
		    set_find(reuse, s->keys[i]) == -1)
			(void)unlink(s->keys[i] + 5);
	listen_close(s);
}

void
listen_close(struct listen_set *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	free(s->files);
	strv_free(s->names);
	strv_free(s->keys);
	memset(s, 0, sizeof *s);
}
