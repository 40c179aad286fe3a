/* SPDX-License-Identifier: MIT */
/*
 * template.h - spawn = template: a pool's command runs once as the
 * template, and every worker is forked from it.
 *
 * The template is a struct worker (is_template) that is in none of the
 * pool's lists: it is spawned, watched, sampled, drained and killed as a
 * worker is, but its exit, its READY=1 and its timeouts come here. The
 * daemon asks it for a worker with one datagram on an AF_UNIX
 * SOCK_SEQPACKET pair, "FORK slot=N generation=G" (the worker's cgroup
 * directory, O_PATH, in SCM_RIGHTS), and it answers "PID=<pid>" or
 * "ERROR=<text>", in order. Until the answer the worker has pid 0
 * (forking); its process is our child (a double fork re-parents it to us)
 * before we know its pid, so the orphan sweep and the notify socket ask
 * here first (template_forking(), template_stash()), and an exit reaped
 * before the answer is kept (template_reaped()).
 *
 * A template that dies, never sends READY=1 within ready_timeout, answers
 * ERROR=, does not answer within ready_timeout or closes its end is named
 * in the log and in status; the forks it owed fail as failed starts (their
 * slots back off); it is restarted with the crash backoff and counts
 * toward rapid_fail. Workers already forked keep running. A renewal
 * (recycle all, or a reload that respawns) starts a new template; forks
 * wait for its READY=1, and the old one is drained once it owes no answer.
 */
#ifndef RECYCLERD_TEMPLATE_H
#define RECYCLERD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pool;
struct recyclerd;
struct worker;

/* What status shows of a pool's template. */
struct template_info {
	struct worker	*w;		/* the current one, or NULL */
	bool		 ready;
	unsigned int	 generation;	/* of the current one, 0 if none */
	unsigned int	 old;		/* previous ones still running */
	unsigned int	 inflight;	/* FORKs not answered yet */
	uint64_t	 forks;		/* workers forked, ever */
	uint64_t	 failures;	/* templates that failed, ever */
	const char	*last_error;	/* NULL, or why the last one failed */
	double		 restart_in;	/* seconds of backoff left, or 0 */
};

/* ---- from pool.c ---- */

/* Start the pool's template when one is wanted, drain the ones that are
 * not (spawn = exec, pool stopped, removed, retired templates). */
void		 template_reconcile(struct pool *);
/* A worker for slot from the template, forking (pid 0); NULL when the
 * pool must wait for a ready template (not a failure). */
struct worker	*template_fork(struct pool *, unsigned int slot,
		    unsigned int gen);
/* New code: start a new template; forks wait for its READY=1; the old one
 * is drained once the new one is ready and it owes no answer. */
void		 template_renew(struct pool *, const char *why);
/* The template w exited (reaped) / its ready_timeout expired / it sent a
 * datagram on the notify socket. */
void		 template_exited(struct pool *, struct worker *, int status);
void		 template_timeout(struct pool *, struct worker *);
void		 template_notify(struct pool *, struct worker *, char *buf,
		    size_t len);
/* Sample the templates (kill_memory applies); at once after a cgroup
 * threshold event of template w. */
void		 template_sample(struct pool *, double now);
void		 template_event(struct pool *, struct worker *);
void		 template_shutdown(struct pool *);
void		 template_kill_all(struct pool *);
/* No template process left (a pool is empty only then). */
bool		 template_is_gone(const struct pool *);
/* pool_free(): the processes are gone; forget the rest. */
void		 template_free(struct pool *);
void		 template_info(const struct pool *, struct template_info *);

/* ---- daemon-wide ---- */

/* Read every template's answers now. */
void		 template_poll(struct recyclerd *);
/* Some template owes an answer: an unknown child may be its worker. */
bool		 template_forking(struct recyclerd *);
/* An unknown child was reaped: keep its status if a fork is owed (true). */
bool		 template_reaped(struct recyclerd *, pid_t, int status);
/* A notify datagram from an unknown pid while a fork is owed: kept and
 * replayed when the PID= answer names it (true). */
bool		 template_stash(struct recyclerd *, pid_t, const char *buf,
		    size_t len);

#endif /* RECYCLERD_TEMPLATE_H */
