/* SPDX-License-Identifier: MIT */
/*
 * template_probe.c - a template built on librecyclerd-worker whose workers
 * report what they were given (tests/helpers/template_probe; the Python
 * twin is template_probe.py). Each worker writes one JSON line to
 * $PROBE_DIR/worker-<pid>.json: pid, ppid, sid, its environment's
 * RECYCLERD_* and LISTEN_* values, what recyclerd_listen_fds() returned,
 * whether the template descriptor is still open, and its cgroup file, then
 * sleeps until SIGTERM (exit 0) or exits PROBE_EXIT at once if set.
 *
 * "notify MSG" and "listen_fds" as arguments run the two functions alone
 * and print the result (the tests' checks of notify and listen_fds).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recyclerd-worker.h"

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL ? v : "";
}

static int
run_worker(void *arg)
{
	const char *dir = getenv("PROBE_DIR"), *template_fd = arg;
	char path[4096], tmp[4200], cg[256] = "", listen_pid[32];
	sigset_t set;
	FILE *f;
	int n, sig, fd, fd_open;

	/* First: any file opened below may take the number. */
	fd_open = template_fd != NULL &&
	    fcntl(atoi(template_fd), F_GETFD) != -1;
	/* Before recyclerd_listen_fds(), which unsets it. */
	snprintf(listen_pid, sizeof(listen_pid), "%s", env("LISTEN_PID"));
	n = recyclerd_listen_fds();
	if ((fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC)) != -1) {
		ssize_t r = read(fd, cg, sizeof(cg) - 1);

		cg[r > 0 ? r : 0] = '\0';
		cg[strcspn(cg, "\n\"\\")] = '\0';
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/worker-%ld.json", dir ? dir : ".",
	    (long)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return 3;
	fprintf(f, "{\"pid\": %ld, \"ppid\": %ld, \"sid\": %ld, "
	    "\"worker\": \"%s\", \"generation\": \"%s\", \"listen_pid\": "
	    "\"%s\", \"listen_fds\": %d, \"listen_env_left\": %d, "
	    "\"template_fd_env\": \"%s\", \"template_fd_open\": %d, "
	    "\"cgroup\": \"%s\"}\n", (long)getpid(), (long)getppid(),
	    (long)getsid(0), env("RECYCLERD_WORKER"),
	    env("RECYCLERD_GENERATION"), listen_pid, n,
	    getenv("LISTEN_FDS") != NULL, env("RECYCLERD_TEMPLATE_FD"),
	    fd_open, cg);
	fclose(f);
	rename(tmp, path);
	if (getenv("PROBE_EXIT") != NULL)
		return atoi(getenv("PROBE_EXIT"));
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
	return 0;
}

int
main(int argc, char **argv)
{
	static char fdtext[32];
	const char *t = getenv("RECYCLERD_TEMPLATE_FD");
	int r;

	if (argc == 3 && strcmp(argv[1], "notify") == 0) {
		printf("%d\n", recyclerd_notify(argv[2]));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "listen_fds") == 0) {
		r = recyclerd_listen_fds();
		printf("%d %s %s %d\n", r, getenv("LISTEN_PID") ? "set" : "unset",
		    getenv("LISTEN_FDS") ? "set" : "unset",
		    r > 0 ? (fcntl(3, F_GETFD) & FD_CLOEXEC) != 0 : -1);
		return 0;
	}
	/* Taking the sockets in the template first must not lose them for
	 * the workers. */
	if (getenv("PROBE_LISTEN_IN_TEMPLATE") != NULL)
		recyclerd_listen_fds();
	if (t != NULL)
		snprintf(fdtext, sizeof(fdtext), "%s", t);
	r = recyclerd_serve_template(run_worker, t != NULL ? fdtext : NULL);
	if (r < 0) {
		fprintf(stderr, "template_probe: %s\n", strerror(-r));
		return 1;
	}
	return r;
}
