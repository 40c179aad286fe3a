/* SPDX-License-Identifier: MIT */
/*
 * template_worker.c - a preloaded pool's worker in C (spawn = template),
 * with librecyclerd-worker.
 *
 * The template "loads the application": PRELOAD bytes (default 32M) of
 * data, every page written, as a real program's tables or model would be.
 * The workers it forks share those pages with it copy-on-write (the pool's
 * PSS stays near one copy) and serve a trivial HTTP response on the
 * inherited socket (fd 3, the pool's listen key): a JSON line saying who
 * answered, and a checksum of the preloaded data. Each request leaks
 * LEAK_PER_REQUEST bytes (default 0; K, M suffixes) for recycling to
 * contain. SIGTERM drains: no new connection, exit 0.
 *
 *	[pool hello]
 *	command = /usr/lib/recyclerd/template_worker
 *	spawn = template
 *	listen = tcp:127.0.0.1:8080
 *	ready = notify
 *	workers = 4
 *
 * With spawn = exec every worker loads its own copy instead: the same
 * program works both ways, and under no supervisor at all it says so.
 *
 *	cc -o template_worker template_worker.c -lrecyclerd-worker
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "recyclerd-worker.h"

static volatile sig_atomic_t draining;
/* The application, loaded once in the template. */
static unsigned char *preload;
static size_t preload_size;
static size_t leak_per_request;
/* Leaked buffers, chained: stored through a volatile so that the compiler
 * cannot prove them dead. */
static void *volatile leaked;
/* LISTEN_PID as this worker got it (recyclerd_listen_fds() unsets it). */
static char listen_pid[24];

static void
on_drain(int sig)
{
	(void)sig;
	draining = 1;
}

/* "512K", "32M", "4096": bytes; (size_t)-1 if not a size. */
static size_t
parse_size(const char *s)
{
	unsigned long long n;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return (size_t)-1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0)
		return (size_t)-1;
	switch (*end) {
	case 'K': case 'k':
		n <<= 10, end++;
		break;
	case 'M': case 'm':
		n <<= 20, end++;
		break;
	case 'G': case 'g':
		n <<= 30, end++;
		break;
	}
	return *end == '\0' ? (size_t)n : (size_t)-1;
}

static size_t
env_size(const char *name, const char *def)
{
	const char *v = getenv(name);
	size_t n = parse_size(v != NULL ? v : def);

	if (n == (size_t)-1) {
		fprintf(stderr, "template_worker: %s=%s: not a size (use e.g. "
		    "64K, 32M)\n", name, v);
		exit(2);
	}
	return n;
}

/* Reading the shared data does not copy it: one byte a page. */
static unsigned long
preload_sum(void)
{
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < preload_size; i += 4096)
		sum += preload[i];
	return sum;
}

static void
leak(void)
{
	void **p;
	size_t i;

	if (leak_per_request < sizeof(void *))
		return;
	if ((p = malloc(leak_per_request)) == NULL)
		return;
	for (i = 0; i < leak_per_request; i += 4096)
		((unsigned char *)p)[i] = 1;	/* resident, private */
	*p = leaked;
	leaked = p;
}

static void
answer(int c, unsigned long served)
{
	char req[8192], body[512], resp[1024];
	size_t got = 0;
	ssize_t r;
	int n, len;

	/* The request head, up to the blank line (the body is ignored). */
	while (got < sizeof(req) - 1) {
		r = read(c, req + got, sizeof(req) - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	leak();
	len = snprintf(body, sizeof(body), "{\"pid\": %ld, \"ppid\": %ld, "
	    "\"sid\": %ld, \"slot\": \"%s\", \"generation\": \"%s\", "
	    "\"listen_pid\": \"%s\", \"request\": %lu, \"preload_sum\": "
	    "%lu}\n", (long)getpid(), (long)getppid(), (long)getsid(0),
	    getenv("RECYCLERD_WORKER") ? getenv("RECYCLERD_WORKER") : "",
	    getenv("RECYCLERD_GENERATION") ?
	    getenv("RECYCLERD_GENERATION") : "",
	    listen_pid, served,
	    preload_sum());
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\n"
	    "Connection: close\r\n\r\n%s", len, body);
	for (got = 0; got < (size_t)n; got += (size_t)r) {
		r = send(c, resp + got, (size_t)n - got, MSG_NOSIGNAL);
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0)
			break;
	}
}

/* One worker: accept on fd 3 until the drain signal. */
static int
run_worker(void *arg)
{
	struct sigaction sa = { .sa_handler = on_drain };
	struct pollfd pfd = { .fd = RECYCLERD_LISTEN_FDS_START,
	    .events = POLLIN };
	unsigned long served = 0;
	int n, c;

	(void)arg;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (getenv("LISTEN_PID") != NULL)
		snprintf(listen_pid, sizeof(listen_pid), "%s",
		    getenv("LISTEN_PID"));
	if ((n = recyclerd_listen_fds()) < 1) {
		fprintf(stderr, "template_worker: no listening socket (the pool "
		    "needs a listen key)\n");
		return 2;
	}
	recyclerd_notify("READY=1");
	while (!draining) {
		/* Other workers accept on this socket too: the accept of a
		 * connection another one took fails with EAGAIN. */
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		c = accept4(pfd.fd, NULL, NULL, SOCK_CLOEXEC);
		if (c == -1)
			continue;
		answer(c, ++served);
		close(c);
		recyclerd_notifyf("TASKS=%lu", served);
	}
	close(pfd.fd);
	return 0;
}

int
main(void)
{
	size_t i;
	int r;

	preload_size = env_size("PRELOAD", "32M");
	leak_per_request = env_size("LEAK_PER_REQUEST", "0");
	/* Loaded here, before any fork: every page written once, so that
	 * it is resident in the template and shared by the workers. */
	if (preload_size > 0 && (preload = malloc(preload_size)) == NULL) {
		fprintf(stderr, "template_worker: cannot allocate %zu bytes\n",
		    preload_size);
		return 1;
	}
	for (i = 0; i < preload_size; i++)
		preload[i] = (unsigned char)(i * 7 + 1);
	if ((r = recyclerd_serve_template(run_worker, NULL)) < 0) {
		fprintf(stderr, "template_worker: cannot serve as a template: "
		    "%s\n", strerror(-r));
		return 1;
	}
	return r;
}
