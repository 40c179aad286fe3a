/* SPDX-License-Identifier: MIT */
/*
 * fake_daemon.h - a struct recyclerd with pools, workers and events but no
 * loop, no process and no socket, for the control unit tests and fuzzer.
 *
 * fake_daemon.c also stands in for the functions of pool.c, worker.c and
 * main.c that control.c and metrics.c call, so those two link without the
 * loop, the processes and the sockets; the core modules (config, log,
 * memprobe, growth, ...) are the real ones.
 */
#ifndef RECYCLERD_FAKE_DAEMON_H
#define RECYCLERD_FAKE_DAEMON_H

struct recyclerd;

/*
 * Pool "web" (running, 2 slots: slot 0 ready, slot 1 ready and being
 * replaced by a starting worker), pool `odd"pool\` (stopped, empty), three
 * events, control_group "wheel".
 */
struct recyclerd *fake_daemon_new(void);
void	fake_daemon_free(struct recyclerd *);

/* Calls of the stand-ins since fake_daemon_new(). */
extern int fake_reloads, fake_recycles, fake_scales, fake_stops, fake_starts;
/* Last arguments seen by the stand-ins. */
extern int fake_last_slot;
extern unsigned int fake_last_scale;

#endif /* RECYCLERD_FAKE_DAEMON_H */
