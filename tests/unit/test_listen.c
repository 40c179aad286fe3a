/* SPDX-License-Identifier: MIT */
/*
 * test_listen.c - the listening sockets of a pool, on real sockets: TCP and
 * unix binds, socket file mode and stale files, reuse on reload (dup, not a
 * second bind), error messages (pool, address, errno text, nothing left
 * open), and the sockets systemd passes.
 *
 * Adoption runs in a child process: listen_adopt_systemd() adopts once per
 * process and the sockets must sit at fd 3 and 4.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"

/* A pool with up to 4 listen specs, built by hand (no parser needed). */
struct fixture {
	struct pool_config pc;
	struct listen_spec ls[4];
	char dir[64];
};

static struct fixture fx;

static int
setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof fx);
	fx.pc.name = (char *)"web";
	fx.pc.listen = fx.ls;
	fx.pc.listen_backlog = 16;
	strcpy(fx.dir, "/tmp/test_listen.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(fx.ls); i++) {
		free(fx.ls[i].text);
		free(fx.ls[i].name);
		free(fx.ls[i].host);
		free(fx.ls[i].owner);
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "unable to remove %s\n", fx.dir);
	return 0;
}

/* Append a spec as the parser would leave it (name defaulted). */
static struct listen_spec *
add_spec(const char *text, int kind, int family, const char *host,
    uint16_t port)
{
	struct listen_spec *ls = &fx.ls[fx.pc.nlisten++];

	ls->text = strdup(text);
	ls->kind = kind;
	ls->family = family;
	ls->host = host ? strdup(host) : NULL;
	ls->port = port;
	ls->name = strdup("web");
	return ls;
}

static struct listen_spec *
add_unix(const char *file, mode_t mode)
{
	char path[128], text[160];
	struct listen_spec *ls;

	snprintf(path, sizeof path, "%s/%s", fx.dir, file);
	snprintf(text, sizeof text, "unix:%s", path);
	ls = add_spec(text, LISTEN_UNIX, AF_UNIX, path, 0);
	ls->mode = mode;
	return ls;
}

static int
fd_listens(int fd)
{
	int on = 0;
	socklen_t len = sizeof on;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1)
		return 0;
	return on;
}

static uint16_t
fd_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static ino_t
fd_inode(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static int
open_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;			/* the directory's own fd */
}

/* A blocking connect to 127.0.0.1:port; 0 on success. */
static int
connect_tcp(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd, rc;

	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
	close(fd);
	return rc;
}

/* A test's own listener on 127.0.0.1, port chosen by the kernel, without
 * SO_REUSEADDR. */
static int
listener_tcp(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 4), 0);
	*port = fd_port(fd);
	return fd;
}

/* --- pure ---------------------------------------------------------------- */

static void
test_key_is_canonical(void **state)
{
	struct listen_spec ls;
	char *k;

	(void)state;
	memset(&ls, 0, sizeof ls);
	ls.kind = LISTEN_TCP;
	ls.family = AF_UNSPEC;
	ls.port = 80;
	k = listen_key(&ls);			/* tcp:80 */
	assert_string_equal(k, "tcp:0.0.0.0:80");
	free(k);

	ls.family = AF_INET;
	ls.host = (char *)"0.0.0.0";		/* tcp:0.0.0.0:80 */
	k = listen_key(&ls);
	assert_string_equal(k, "tcp:0.0.0.0:80");
	free(k);

	ls.family = AF_INET6;
	ls.host = (char *)"0:0::0001";		/* tcp6:[0:0::0001]:80 */
	k = listen_key(&ls);
	assert_string_equal(k, "tcp6:[::1]:80");
	free(k);

	ls.host = NULL;				/* tcp6:80 */
	k = listen_key(&ls);
	assert_string_equal(k, "tcp6:[::]:80");
	free(k);

	ls.kind = LISTEN_UNIX;
	ls.host = (char *)"/run/app.sock";	/* unix:app.sock,mode=0660 */
	ls.mode = 0660;
	k = listen_key(&ls);
	assert_string_equal(k, "unix:/run/app.sock");
	free(k);

	memset(&ls, 0, sizeof ls);
	ls.kind = LISTEN_SYSTEMD;
	ls.text = (char *)"systemd:web,name=front";
	ls.name = (char *)"front";
	k = listen_key(&ls);
	assert_string_equal(k, "systemd:web");
	free(k);
}

/* --- TCP and unix binds --------------------------------------------------- */

static void
test_tcp_binds_and_listens(void **state)
{
	struct listen_set s;
	char *err = NULL;
	int fl;

	(void)state;
	add_spec("tcp:127.0.0.1:0", LISTEN_TCP, AF_INET, "127.0.0.1", 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), 0);
	assert_null(err);
	assert_int_equal(s.n, 1);
	assert_true(s.fds[0] > 2);
	assert_true(fd_listens(s.fds[0]));
	assert_true(fd_port(s.fds[0]) > 0);
	assert_string_equal(s.names[0], "web");
	assert_string_equal(s.keys[0], "tcp:127.0.0.1:0");
	/* Close-on-exec (workers get copies at 3..), and blocking. */
	assert_true(fcntl(s.fds[0], F_GETFD) & FD_CLOEXEC);
	fl = fcntl(s.fds[0], F_GETFL);
	assert_false(fl & O_NONBLOCK);
	assert_int_equal(connect_tcp(fd_port(s.fds[0])), 0);
	listen_close(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.fds);
}

static void
test_unix_binds_with_mode(void **state)
{
	struct listen_set s;
	struct listen_spec *ls;
	struct stat st;
	char *err = NULL;

	(void)state;
	ls = add_unix("app.sock", 0660);
	free(ls->name);
	ls->name = strdup("front");		/* ,name=front */
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_true(fd_listens(s.fds[0]));
	assert_string_equal(s.names[0], "front");
	assert_int_equal(lstat(ls->host, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	listen_close(&s);
	/* Closing leaves the file: a reload's next set may still use it. */
	assert_int_equal(lstat(ls->host, &st), 0);
}

static void
test_unix_owner_is_applied(void **state)
{
	struct listen_set s;
	struct listen_spec *ls;
	struct stat st;
	char *err = NULL;

	(void)state;
	if (geteuid() != 0)
		skip();
	ls = add_unix("owned.sock", 0600);
	ls->owner = strdup("1234:4321");
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), 0);
	assert_int_equal(lstat(ls->host, &st), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 4321);
	assert_int_equal(st.st_mode & 07777, 0600);
	listen_close(&s);
}

/* A socket file left by an earlier run (nobody listens) is replaced. */
static void
test_unix_stale_socket_is_replaced(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct listen_set s;
	struct listen_spec *ls;
	char *err = NULL;
	int fd;

	(void)state;
	ls = add_unix("stale.sock", 0);
	strcpy(sun.sun_path, ls->host);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);			/* the file stays, nobody listens */
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), 0);
	assert_null(err);
	assert_true(fd_listens(s.fds[0]));
	listen_close(&s);
}

static void
test_unix_regular_file_is_not_removed(void **state)
{
	struct listen_set s;
	struct listen_spec *ls;
	char *err = NULL, *want;
	FILE *f;

	(void)state;
	ls = add_unix("data.txt", 0);
	f = fopen(ls->host, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	assert_int_equal(s.n, 0);
	assert_int_equal(asprintf(&want, "pool web: listen %s: %s exists and "
	    "is not a socket", ls->text, ls->host) > 0, 1);
	assert_string_equal(err, want);
	assert_int_equal(access(ls->host, F_OK), 0);
	free(want);
	free(err);
}

/* --- reuse on reload ------------------------------------------------------ */

static void
test_reuse_dups_instead_of_binding(void **state)
{
	struct listen_set old, next;
	char *err = NULL;
	uint16_t port;

	(void)state;
	add_spec("tcp:127.0.0.1:0", LISTEN_TCP, AF_INET, "127.0.0.1", 0);
	add_unix("app.sock", 0600);
	assert_int_equal(listen_open(&fx.pc, NULL, &old, &err), 0);
	port = fd_port(old.fds[0]);

	/* The reloaded pool changes the unix mode: same socket, new mode.
	 * Port 0 would bind a different port if it were bound again. */
	fx.ls[1].mode = 0666;
	assert_int_equal(listen_open(&fx.pc, &old, &next, &err), 0);
	assert_null(err);
	assert_int_equal(next.n, 2);
	assert_int_not_equal(next.fds[0], old.fds[0]);
	assert_int_equal(fd_inode(next.fds[0]), fd_inode(old.fds[0]));
	assert_int_equal(fd_inode(next.fds[1]), fd_inode(old.fds[1]));
	assert_int_equal(fd_port(next.fds[0]), port);
	assert_true(fcntl(next.fds[0], F_GETFD) & FD_CLOEXEC);
	{
		struct stat st;

		assert_int_equal(lstat(fx.ls[1].host, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0666);
	}

	/* The old set goes; the socket stays open and listening. */
	listen_close(&old);
	assert_true(fd_listens(next.fds[0]));
	assert_int_equal(connect_tcp(port), 0);
	listen_close(&next);
	assert_int_not_equal(connect_tcp(port), 0);
}

/*
 * A user who may write the socket's directory swaps the socket file for a
 * link to a file of root's and waits for a reload: the reload must not
 * chmod/chown through the link (the victim keeps its mode and owner) and
 * keeps the socket.
 */
static void
test_reuse_never_follows_a_swapped_link(void **state)
{
	struct listen_set old, next;
	struct listen_spec *ls;
	struct stat st;
	char victim[128], *err = NULL;
	FILE *f;

	(void)state;
	snprintf(victim, sizeof victim, "%s/victim", fx.dir);
	assert_non_null(f = fopen(victim, "w"));
	fclose(f);
	assert_int_equal(chmod(victim, 0600), 0);
	ls = add_unix("app.sock", 0666);
	if (geteuid() == 0)
		ls->owner = strdup("1234:4321");
	assert_int_equal(listen_open(&fx.pc, NULL, &old, &err), 0);
	assert_int_equal(unlink(ls->host), 0);
	assert_int_equal(symlink(victim, ls->host), 0);

	assert_int_equal(listen_open(&fx.pc, &old, &next, &err), 0);
	assert_null(err);
	assert_int_equal(next.n, 1);
	assert_true(fd_listens(next.fds[0]));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_gid, getegid());
	listen_close(&old);
	listen_close(&next);
}

/* The same with another socket file in its place: not ours, left alone. */
static void
test_reuse_leaves_a_replaced_socket_alone(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct listen_set old, next;
	struct listen_spec *ls;
	struct stat st;
	char *err = NULL;
	int fd;

	(void)state;
	ls = add_unix("app.sock", 0600);
	assert_int_equal(listen_open(&fx.pc, NULL, &old, &err), 0);
	assert_int_equal(unlink(ls->host), 0);
	strcpy(sun.sun_path, ls->host);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	assert_int_equal(chmod(ls->host, 0640), 0);
	ls->mode = 0666;
	assert_int_equal(listen_open(&fx.pc, &old, &next, &err), 0);
	assert_int_equal(lstat(ls->host, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	close(fd);
	listen_close(&old);
	listen_close(&next);
}

/* A link planted where the socket goes, in a directory another user may
 * write: removed (not followed), and the socket is made in its place. In
 * a directory only root may write, it is the operator's: refused. */
static void
test_unix_planted_link(void **state)
{
	struct listen_set s;
	struct listen_spec *ls;
	struct stat st;
	char victim[128], *err = NULL;
	FILE *f;

	(void)state;
	snprintf(victim, sizeof victim, "%s/victim", fx.dir);
	assert_non_null(f = fopen(victim, "w"));
	fclose(f);
	assert_int_equal(chmod(victim, 0600), 0);
	ls = add_unix("app.sock", 0666);
	assert_int_equal(symlink(victim, ls->host), 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	assert_non_null(strstr(err, "not a socket (a symbolic link"));
	free(err);
	err = NULL;

	assert_int_equal(chmod(fx.dir, 01777), 0);	/* sticky: still ours */
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(chmod(fx.dir, 0777), 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), 0);
	assert_int_equal(lstat(ls->host, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0666);
	assert_int_equal(stat(victim, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	listen_close(&s);
}

/* An address that is not in the previous set is bound anew. */
static void
test_reuse_binds_new_addresses(void **state)
{
	struct listen_set old, next;
	char *err = NULL;

	(void)state;
	add_spec("tcp:127.0.0.1:0", LISTEN_TCP, AF_INET, "127.0.0.1", 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &old, &err), 0);
	add_unix("new.sock", 0);
	assert_int_equal(listen_open(&fx.pc, &old, &next, &err), 0);
	assert_int_equal(next.n, 2);
	assert_int_equal(fd_inode(next.fds[0]), fd_inode(old.fds[0]));
	assert_true(fd_listens(next.fds[1]));
	listen_close(&old);
	listen_close(&next);
}

/* --- errors --------------------------------------------------------------- */

static void
test_tcp_port_in_use_names_pool_address_and_errno(void **state)
{
	struct listen_set s;
	char *err = NULL, text[64], want[128];
	uint16_t port;
	int busy, before;

	(void)state;
	busy = listener_tcp(&port);
	add_unix("first.sock", 0);	/* opened, then closed on the error */
	snprintf(text, sizeof text, "tcp:127.0.0.1:%u", port);
	add_spec(text, LISTEN_TCP, AF_INET, "127.0.0.1", port);
	before = open_fd_count();
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	snprintf(want, sizeof want, "pool web: listen %s: %s", text,
	    strerror(EADDRINUSE));
	assert_string_equal(err, want);
	assert_int_equal(s.n, 0);
	assert_null(s.fds);
	assert_int_equal(open_fd_count(), before);
	/* The unix socket opened first was removed with its descriptor. */
	assert_int_not_equal(access(fx.ls[0].host, F_OK), 0);
	free(err);
	close(busy);
}

static void
test_unix_path_in_use_is_refused(void **state)
{
	struct listen_set first, second;
	char *err = NULL, *want;

	(void)state;
	add_unix("busy.sock", 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &first, &err), 0);
	/* Same path again without reuse: it is live, never stolen. */
	assert_int_equal(listen_open(&fx.pc, NULL, &second, &err), -1);
	assert_int_equal(asprintf(&want, "pool web: listen %s: %s",
	    fx.ls[0].text, strerror(EADDRINUSE)) > 0, 1);
	assert_string_equal(err, want);
	assert_true(fd_listens(first.fds[0]));
	free(want);
	free(err);
	listen_close(&first);
}

static void
test_unresolvable_host(void **state)
{
	struct listen_set s;
	char *err = NULL;

	(void)state;
	add_spec("tcp:no-such-host.invalid:80", LISTEN_TCP, AF_UNSPEC,
	    "no-such-host.invalid", 80);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	assert_non_null(strstr(err, "pool web: listen "
	    "tcp:no-such-host.invalid:80: cannot resolve no-such-host.invalid: "));
	free(err);
}

/* --- systemd -------------------------------------------------------------- */

static void
test_systemd_name_without_sockets(void **state)
{
	struct listen_set s;
	char *err = NULL;

	(void)state;
	add_spec("systemd:web", LISTEN_SYSTEMD, AF_UNSPEC, NULL, 0);
	assert_int_equal(listen_open(&fx.pc, NULL, &s, &err), -1);
	assert_string_equal(err, "pool web: listen systemd:web: no socket of "
	    "that name was passed by systemd (have: none)");
	assert_int_equal(s.n, 0);
	free(err);
}

/* In the child: report the failed condition and exit 1. */
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "test_listen.c:%d: %s\n", __LINE__, #cond);	\
		_exit(1);						\
	}								\
} while (0)

/*
 * Play systemd in a child (adoption happens once per process, and the
 * sockets must sit at 3 and 4): sockets named web and admin, our pid.
 */
static void
adopt_in_child(void)
{
	struct listen_set s;
	char *err = NULL, pid[16];
	uint16_t port;
	int a, b;

	a = listener_tcp(&port);
	b = listener_tcp(&port);
	CHECK(dup2(a, 3) == 3 && dup2(b, 4) == 4);
	if (a != 3 && a != 4)
		close(a);
	if (b != 3 && b != 4)
		close(b);
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "web:admin", 1);
	listen_adopt_systemd();
	listen_adopt_systemd();			/* idempotent */
	/* Workers must not see the daemon's own LISTEN_* variables. */
	CHECK(getenv("LISTEN_PID") == NULL);
	CHECK(getenv("LISTEN_FDS") == NULL);
	CHECK(getenv("LISTEN_FDNAMES") == NULL);

	/* systemd:admin,name=ctl: the socket at 4, named ctl for workers. */
	add_spec("systemd:admin,name=ctl", LISTEN_SYSTEMD, AF_UNSPEC, NULL, 0);
	free(fx.ls[0].name);
	fx.ls[0].name = strdup("ctl");
	CHECK(listen_open(&fx.pc, NULL, &s, &err) == 0);
	CHECK(s.n == 1);
	CHECK(s.fds[0] > 4);
	CHECK(fd_inode(s.fds[0]) == fd_inode(4));
	CHECK(strcmp(s.names[0], "ctl") == 0);
	CHECK(strcmp(s.keys[0], "systemd:admin") == 0);
	CHECK(fcntl(s.fds[0], F_GETFD) & FD_CLOEXEC);
	listen_close(&s);
	/* The adopted originals stay for the next reload. */
	CHECK(fcntl(3, F_GETFD) != -1 && fcntl(4, F_GETFD) != -1);
	CHECK(fd_listens(4));

	/* An unknown name lists the ones there are. */
	free(fx.ls[0].text);
	fx.ls[0].text = strdup("systemd:nope");
	CHECK(listen_open(&fx.pc, NULL, &s, &err) == -1);
	CHECK(strcmp(err, "pool web: listen systemd:nope: no socket of that "
	    "name was passed by systemd (have: web, admin)") == 0);
	free(err);
	_exit(0);
}

static void
test_systemd_sockets_are_adopted_and_dup_ed(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		adopt_in_child();
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_is_canonical),
		cmocka_unit_test_setup_teardown(test_tcp_binds_and_listens,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reuse_never_follows_a_swapped_link, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reuse_leaves_a_replaced_socket_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_planted_link,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_binds_with_mode,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_owner_is_applied,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unix_stale_socket_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unix_regular_file_is_not_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reuse_dups_instead_of_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse_binds_new_addresses,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tcp_port_in_use_names_pool_address_and_errno, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_unix_path_in_use_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unresolvable_host,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_systemd_name_without_sockets, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_systemd_sockets_are_adopted_and_dup_ed, setup,
		    teardown),
	};

	log_init(LOG_TARGET_STDERR, LOG_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
