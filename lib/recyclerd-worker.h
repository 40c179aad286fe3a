/* SPDX-License-Identifier: MIT */
/*
 * recyclerd-worker.h - the worker's side of recyclerd's protocol in C:
 * sd_notify(), sd_listen_fds() and the template loop of preloaded pools
 * (spawn = template), without libsystemd.
 *
 *	cc -o app app.c -lrecyclerd-worker
 *
 * The protocol is in recyclerd-protocol(7), the guide in
 * docs/writing-workers.md (shipped in /usr/share/doc/recyclerd).
 */
#ifndef RECYCLERD_WORKER_H
#define RECYCLERD_WORKER_H

#ifdef __cplusplus
extern "C" {
#endif

#define RECYCLERD_LISTEN_FDS_START 3

/*
 * One datagram to NOTIFY_SOCKET ("READY=1", "TASKS=12\nSTATUS=idle"):
 * 1 when sent, 0 when there is no NOTIFY_SOCKET (not supervised), -errno
 * on failure. Abstract socket names ("@name") work as under systemd.
 */
int recyclerd_notify(const char *msg);

/* recyclerd_notify() of a printf format. */
int recyclerd_notifyf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * As sd_listen_fds(1): the number of sockets passed to this process (fds 3
 * to 3 + n - 1) when LISTEN_PID is its pid, else 0; -EINVAL when
 * LISTEN_FDS is not a number. Sets FD_CLOEXEC on them and removes
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the environment (a
 * template's workers get them back from recyclerd_serve_template()).
 */
int recyclerd_listen_fds(void);

/*
 * A preloaded pool's template, or the worker itself.
 *
 * Without RECYCLERD_TEMPLATE_FD in the environment (spawn = exec, or run by
 * hand): returns run_worker(arg).
 *
 * Under spawn = template: sends READY=1 and answers each FORK request of
 * the daemon with a double fork, made ahead of the request (one worker
 * waits, forked, for its slot: a request costs no fork). In each worker
 * (its own session and cgroup; RECYCLERD_WORKER, RECYCLERD_GENERATION and
 * LISTEN_PID set; the template's descriptor closed) it calls
 * run_worker(arg) and exit()s with its return value. In the template it
 * returns 0 once the daemon closes its end, or -errno if it cannot serve
 * (a bad RECYCLERD_TEMPLATE_FD, READY=1 not sent).
 *
 * Call it from a single-threaded process: fork() copies only the calling
 * thread. Bad requests are answered ERROR=... and the loop goes on.
 */
typedef int (*recyclerd_worker_fn)(void *arg);
int recyclerd_serve_template(recyclerd_worker_fn run_worker, void *arg);

#ifdef __cplusplus
}
#endif

#endif
