/* SPDX-License-Identifier: MIT */
/*
 * memprobe.c - RSS, PSS and USS of a worker's process tree, read from /proc.
 *
 * A probe owns a descriptor on its root process's statm (and smaps_rollup
 * once asked for), and on its task directory and main-thread children file
 * while the root has children, so sampling allocates nothing: a
 * single-threaded worker with children costs three syscalls (pread statm,
 * fstat task, pread children), one without children one (it is walked
 * only every LONE_REWALK samples, its two walk descriptors opened for that
 * walk and closed again while it stays alone: at ten thousand workers,
 * two descriptors each count against RLIMIT_NOFILE). The kept descriptors
 * are bound to the process, not to its number, so a reused pid is never
 * mistaken for the worker. Descendants are found through the children
 * files, opened, read and closed as the walk meets them, in scratch space
 * shared by all probes (the daemon has one thread). Deciding what a figure
 * means (thresholds, metric, jitter) is left to policy.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memprobe.h"

/*
 * At most this many processes per tree: a fork bomb in a worker must not
 * make a sample run away. Every process is visited once, breadth first, so
 * this also bounds the depth.
 */
#define MEMPROBE_MAX_PROCS	4096
/* A children file holds up to 8 bytes per pid ("4194303 "). */
#define CHILDREN_BUF_SIZE	(64 * 1024)
/* "size resident shared text lib data dt\n": 7 numbers of at most 20 digits. */
#define STATM_BUF_SIZE		160
/* smaps_rollup is about 700 bytes on 6.x kernels. */
#define SMAPS_BUF_SIZE		4096
#define DENTS_BUF_SIZE		4096
#define PROC_PATH_SIZE		64

struct memprobe {
	pid_t		 pid;
	long		 page_size;	/* bytes, cached from sysconf() */
	int		 statm_fd;
	int		 children_fd;	/* /proc/PID/task/PID/children */
	int		 task_fd;	/* st_nlink is 2 + live threads */
					/* both -1 while the root is lone */
	int		 smaps_fd;	/* -1 until with_smaps is first asked */
	bool		 lone;		/* the last walk found no descendant */
	unsigned int	 unwalked;	/* samples since that walk */
};

/*
 * A worker that had no children at the last walk is walked again only every
 * LONE_REWALK samples: the walk (thread count, children file) costs twice
 * the statm read it would accompany, and most workers never fork. A new
 * child is then counted up to LONE_REWALK samples late; smaps samples (near
 * a limit) always walk.
 */
#define LONE_REWALK	8

/*
 * Scratch space of a walk, shared by every probe: the daemon has one
 * thread, and 80 KiB per worker would cost a thousand workers 80 MiB of
 * address space and a cold cache line or two per sample. Nothing survives
 * from one call to the next.
 */
static struct {
	pid_t		 queue[MEMPROBE_MAX_PROCS];
	char		 children[CHILDREN_BUF_SIZE];
} scratch;
/* How many pids of scratch.queue the last sample's walk found, and whose
 * walk it was (NULL when the last sample did not walk). */
static size_t last_walk_n;
static const struct memprobe *last_walk_probe;

/* A breadth-first walk: queue[0..n) are the pids found so far. */
struct walk {
	pid_t		*queue;
	size_t		 n;
	size_t		 max;
	char		*buf;		/* for children files */
	size_t		 buf_size;
};

/*
 * Parse a decimal number at *pp and move *pp past it. -1 without digits or
 * on overflow.
 */
static int
parse_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	unsigned int d;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		d = (unsigned int)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return 0;
}

static int
mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -1;
	*out = a * b;
	return 0;
}

/* Only size and resident are read; both must be complete. */
int
memprobe_parse_statm(const char *buf, long page_size, uint64_t *rss)
{
	const char *p = buf;
	uint64_t size_pages, resident_pages, bytes;

	if (buf == NULL || page_size <= 0)
		return -1;
	if (parse_u64(&p, &size_pages) == -1 || *p++ != ' ')
		return -1;
	if (parse_u64(&p, &resident_pages) == -1)
		return -1;
	/*
	 * The kernel ends every field with a space or the newline: a number
	 * that runs into the end of the buffer may have lost digits.
	 */
	if (*p != ' ' && *p != '\n')
		return -1;
	if (mul_u64(resident_pages, (uint64_t)page_size, &bytes) == -1)
		return -1;
	*rss = bytes;
	return 0;
}

enum {
	SR_RSS,
	SR_PSS,
	SR_PRIVATE_CLEAN,
	SR_PRIVATE_DIRTY,
	SR_PRIVATE_HUGETLB,
	SR_NFIELDS
};

static const char *const smaps_keys[SR_NFIELDS] = {
	[SR_RSS] = "Rss",
	[SR_PSS] = "Pss",
	[SR_PRIVATE_CLEAN] = "Private_Clean",
	[SR_PRIVATE_DIRTY] = "Private_Dirty",
	[SR_PRIVATE_HUGETLB] = "Private_Hugetlb",
};

#define SR_REQUIRED	((1u << SR_RSS) | (1u << SR_PSS) | \
			 (1u << SR_PRIVATE_CLEAN) | (1u << SR_PRIVATE_DIRTY))

/* Index of the field named by line[0..len), or -1 if we do not use it. */
static int
smaps_key(const char *line, size_t len)
{
	int i;

	for (i = 0; i < SR_NFIELDS; i++)
		if (strlen(smaps_keys[i]) == len &&
		    memcmp(line, smaps_keys[i], len) == 0)
			return i;
	return -1;
}

/* "   1234 kB" up to the end of the line at eol -> bytes. */
static int
smaps_value(const char *p, const char *eol, uint64_t *bytes)
{
	uint64_t kib;

	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	if (parse_u64(&p, &kib) == -1 || p > eol)
		return -1;
	if (eol - p != 3 || memcmp(p, " kB", 3) != 0)
		return -1;
	return mul_u64(kib, 1024, bytes);
}

/*
 * Only complete lines count: a read cut short ends without its newline, and
 * a field on that last line is treated as missing. A field we use that
 * appears twice or has a malformed value makes the whole buffer garbage.
 */
int
memprobe_parse_smaps_rollup(const char *buf, uint64_t *rss, uint64_t *pss,
    uint64_t *uss)
{
	uint64_t v[SR_NFIELDS] = { 0 };
	unsigned int seen = 0;
	const char *line, *eol, *colon;
	uint64_t private_bytes;
	int k;

	if (buf == NULL)
		return -1;
	for (line = buf; (eol = strchr(line, '\n')) != NULL; line = eol + 1) {
		colon = memchr(line, ':', (size_t)(eol - line));
		if (colon == NULL)
			continue;	/* the "[rollup]" header line */
		k = smaps_key(line, (size_t)(colon - line));
		if (k == -1)
			continue;
		if ((seen & (1u << k)) != 0 ||
		    smaps_value(colon + 1, eol, &v[k]) == -1)
			return -1;
		seen |= 1u << k;
	}
	if ((seen & SR_REQUIRED) != SR_REQUIRED)
		return -1;
	private_bytes = v[SR_PRIVATE_CLEAN] + v[SR_PRIVATE_DIRTY];
	if (private_bytes < v[SR_PRIVATE_CLEAN] ||
	    private_bytes + v[SR_PRIVATE_HUGETLB] < private_bytes)
		return -1;
	*rss = v[SR_RSS];
	*pss = v[SR_PSS];
	*uss = private_bytes + v[SR_PRIVATE_HUGETLB];
	return 0;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\t';
}

/* Parsing stops at the first token that is not a pid (1..INT32_MAX). */
size_t
memprobe_parse_children(const char *buf, pid_t *pids, size_t max)
{
	const char *p = buf;
	size_t n = 0;
	uint64_t v;

	if (buf == NULL)
		return 0;
	while (n < max) {
		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		if (parse_u64(&p, &v) == -1 || v == 0 || v > INT32_MAX ||
		    (*p != '\0' && !is_space(*p)))
			break;
		pids[n++] = (pid_t)v;
	}
	return n;
}

/* A process that vanished, or has no memory map any more (zombie). */
static int
is_gone(int err)
{
	return err == ENOENT || err == ESRCH;
}

/*
 * statm and smaps_rollup are single_open() seq files: the kernel formats the
 * whole file on the first read, so one pread() into a larger buffer gets it
 * all, where read_fd_at0() would spend a second syscall (about 1 us on a VM)
 * only to see the end of file. A read that fills the buffer may have been
 * cut: the parsers refuse an unterminated field or line.
 */
static ssize_t
pread_once(int fd, char *buf, size_t size)
{
	ssize_t len;

	do
		len = pread(fd, buf, size - 1, 0);
	while (len == -1 && errno == EINTR);
	if (len == -1)
		return -1;
	buf[len] = '\0';
	return len;
}

/*
 * open, read, close; -1 with errno on failure. is_single_show: one read
 * (pread_once()); otherwise read until the end (children files, which the
 * kernel hands out a page at a time).
 */
static ssize_t
read_at0(int dirfd, const char *path, char *buf, size_t size,
    bool is_single_show)
{
	ssize_t len;
	int fd, err;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (is_single_show)
		len = pread_once(fd, buf, size);
	else
		len = read_fd_at0(fd, buf, size);
	err = errno;
	close(fd);
	errno = err;
	return len;
}

/* Append the pids of a children file just read into w->buf. */
static void
walk_queue(struct walk *w, ssize_t len)
{
	char *last_space;

	if (len <= 0)
		return;
	if ((size_t)len == w->buf_size - 1) {
		/* The buffer is full: the last pid may be cut short. */
		last_space = strrchr(w->buf, ' ');
		if (last_space == NULL)
			return;
		last_space[1] = '\0';
	}
	w->n += memprobe_parse_children(w->buf, w->queue + w->n,
	    w->max - w->n);
}

/*
 * Children of every thread of pid: a child's parent is the thread that
 * forked it, and a thread's children move to a sibling when it exits.
 * task_fd is the kept /proc/PID/task descriptor, or -1 to open one.
 */
static void
walk_threads(struct walk *w, pid_t pid, int task_fd)
{
	union {
		struct dirent64	 d;
		char		 bytes[DENTS_BUF_SIZE];
	} dents;
	const struct dirent64 *d;
	const char *name;
	char path[PROC_PATH_SIZE];
	uint64_t tid;
	ssize_t nread, off;
	int dirfd = task_fd;

	if (dirfd == -1) {
		snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
		dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd == -1)
			return;
	} else if (lseek(dirfd, 0, SEEK_SET) == -1) {
		return;
	}
	while (w->n < w->max &&
	    (nread = getdents64(dirfd, dents.bytes, sizeof dents.bytes)) > 0) {
		for (off = 0; off < nread && w->n < w->max;
		    off += d->d_reclen) {
			d = (const struct dirent64 *)(dents.bytes + off);
			name = d->d_name;
			if (parse_u64(&name, &tid) == -1 || *name != '\0' ||
			    tid > INT32_MAX)
				continue;	/* "." and ".." */
			snprintf(path, sizeof path, "%d/children", (int)tid);
			walk_queue(w, read_at0(dirfd, path, w->buf,
			    w->buf_size, false));
		}
	}
	if (dirfd != task_fd)
		close(dirfd);
}

/*
 * Queue the children of pid. The kept descriptors of a root are passed in;
 * descendants pass -1 and are opened by number. -1 if pid is gone.
 */
static int
walk_children(struct walk *w, pid_t pid, int task_fd, int children_fd)
{
	char path[PROC_PATH_SIZE];
	struct stat st;
	ssize_t len;

	if (w->n >= w->max)
		return 0;
	if (task_fd != -1) {
		if (fstat(task_fd, &st) == -1)
			return -1;
	} else {
		snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
		if (stat(path, &st) == -1)
			return -1;
	}
	/*
	 * The kernel reports 2 + live threads as the task directory's link
	 * count (proc_task_getattr). A group leader that exited before its
	 * threads stays counted, so 3 really means one thread and its
	 * children file is the only one; anything else walks every thread.
	 */
	if (st.st_nlink != 3) {
		walk_threads(w, pid, task_fd);
		return 0;
	}
	if (children_fd != -1) {
		len = read_fd_at0(children_fd, w->buf, w->buf_size);
	} else {
		snprintf(path, sizeof path, "/proc/%d/task/%d/children",
		    (int)pid, (int)pid);
		len = read_at0(AT_FDCWD, path, w->buf, w->buf_size, false);
	}
	if (len == -1)
		return is_gone(errno) ? -1 : 0;
	walk_queue(w, len);
	return 0;
}

/*
 * The task directory and main-thread children file of the root, kept while
 * it has children. Opened by number, hence before the statm read that
 * follows: if the root is still there after the opens, the number was not
 * reused meanwhile and the descriptors are the root's. -1 with errno.
 */
static int
open_walk_fds(struct memprobe *p)
{
	char path[PROC_PATH_SIZE];
	int err;

	if (p->task_fd != -1)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/task", (int)p->pid);
	p->task_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->task_fd == -1)
		return -1;
	snprintf(path, sizeof path, "%d/children", (int)p->pid);
	p->children_fd = openat(p->task_fd, path, O_RDONLY | O_CLOEXEC);
	if (p->children_fd == -1) {
		err = errno;
		close(p->task_fd);
		p->task_fd = -1;
		errno = err;
		return -1;
	}
	return 0;
}

static void
close_walk_fds(struct memprobe *p)
{
	if (p->children_fd != -1)
		close(p->children_fd);
	if (p->task_fd != -1)
		close(p->task_fd);
	p->children_fd = p->task_fd = -1;
}

/*
 * NULL with errno ESRCH if pid is gone, EOPNOTSUPP on a kernel without
 * CONFIG_PROC_CHILDREN, or the open's errno (EMFILE). Only statm is kept
 * open from here; the first sample walks (opening the walk descriptors)
 * and decides whether the root is lone.
 */
struct memprobe *
memprobe_new(pid_t pid)
{
	static bool children_known;	/* the kernel has children files */
	struct memprobe *p;
	char path[PROC_PATH_SIZE];
	int dirfd, fd, err;

	if (pid <= 0) {
		errno = EINVAL;
		return NULL;
	}
	p = xcalloc(1, sizeof *p);
	p->pid = pid;
	p->page_size = sysconf(_SC_PAGESIZE);
	if (p->page_size <= 0)
		p->page_size = 4096;
	p->statm_fd = p->children_fd = p->task_fd = p->smaps_fd = -1;

	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1)
		goto fail;
	p->statm_fd = openat(dirfd, "statm", O_RDONLY | O_CLOEXEC);
	if (p->statm_fd == -1)
		goto fail_dir;
	/* Once per daemon: the kernel's configuration does not change. */
	snprintf(path, sizeof path, "task/%d/children", (int)pid);
	if (!children_known) {
		if ((fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC)) == -1) {
			/*
			 * Without CONFIG_PROC_CHILDREN the process is there
			 * but its children file is not: say so rather than
			 * "gone".
			 */
			if (errno == ENOENT &&
			    pread_once(p->statm_fd, path, sizeof path) != -1)
				errno = EOPNOTSUPP;
			goto fail_dir;
		}
		close(fd);
		children_known = true;
	}
	close(dirfd);
	return p;

fail_dir:
	err = errno;
	close(dirfd);
	errno = err;
fail:
	err = is_gone(errno) ? ESRCH : errno;
	memprobe_free(p);
	errno = err;
	return NULL;
}

void
memprobe_free(struct memprobe *p)
{
	if (p == NULL)
		return;
	if (p->statm_fd != -1)
		close(p->statm_fd);
	close_walk_fds(p);
	if (p->smaps_fd != -1)
		close(p->smaps_fd);
	free(p);
}

/* What smaps_rollup said about one process. */
enum smaps_state {
	SMAPS_UNASKED,		/* with_smaps was false */
	SMAPS_READ,		/* rss, pss and uss parsed */
	SMAPS_GONE,		/* no memory map any more: exiting or zombie */
	SMAPS_UNKNOWN,		/* unreadable or garbage */
};

struct proc_mem {
	enum smaps_state smaps;
	uint64_t	 statm_rss;
	uint64_t	 rss, pss, uss;	/* from smaps_rollup when SMAPS_READ */
};

/* Classify a read of smaps_rollup (len -1 with errno) and parse it. */
static void
proc_mem_smaps(struct proc_mem *m, ssize_t len, const char *smaps)
{
	if (len == -1)
		m->smaps = is_gone(errno) ? SMAPS_GONE : SMAPS_UNKNOWN;
	else if (memprobe_parse_smaps_rollup(smaps, &m->rss, &m->pss,
	    &m->uss) == -1)
		m->smaps = SMAPS_UNKNOWN;
	else
		m->smaps = SMAPS_READ;
}

/*
 * Add one process to s. With smaps_rollup, all three figures come from it,
 * one snapshot, so uss <= pss <= rss holds (statm's counters are per-CPU
 * estimates that may lag a few pages behind). One exception: smaps counts
 * hugetlbfs pages only in *_Hugetlb, so Private_Hugetlb enters uss but
 * neither rss nor pss.
 */
static void
sample_add(struct mem_sample *s, const struct proc_mem *m)
{
	s->nprocs++;
	switch (m->smaps) {
	case SMAPS_UNASKED:
		s->rss += m->statm_rss;
		break;
	case SMAPS_READ:
		s->rss += m->rss;
		s->pss += m->pss;
		s->uss += m->uss;
		break;
	case SMAPS_GONE:
		break;
	case SMAPS_UNKNOWN:
		/*
		 * A descendant that changed credentials, or garbage: its RSS
		 * bounds its PSS and USS. Overstating keeps a leak in a
		 * grandchild from going unnoticed.
		 */
		s->rss += m->statm_rss;
		s->pss += m->statm_rss;
		s->uss += m->statm_rss;
		break;
	}
}

static uint64_t probe_reads[PROBE__COUNT];

void
memprobe_count(enum probe_kind k)
{
	probe_reads[k]++;
}

uint64_t
memprobe_reads(enum probe_kind k)
{
	return probe_reads[k];
}

const char *
memprobe_kind_name(enum probe_kind k)
{
	static const char *const names[] = { [PROBE_STATM] = "statm",
		[PROBE_SMAPS] = "smaps", [PROBE_CGROUP] = "cgroup" };

	return (size_t)k < PROBE__COUNT ? names[k] : "?";
}

/* Statm (and smaps_rollup) of a descendant; -1 if it vanished. */
static int
sample_descendant(struct memprobe *p, pid_t pid, bool with_smaps,
    struct mem_sample *s)
{
	char statm[STATM_BUF_SIZE], smaps[SMAPS_BUF_SIZE];
	char path[PROC_PATH_SIZE];
	struct proc_mem m = { .smaps = SMAPS_UNASKED };
	ssize_t len;

	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	probe_reads[PROBE_STATM]++;
	if (read_at0(AT_FDCWD, path, statm, sizeof statm, true) == -1 ||
	    memprobe_parse_statm(statm, p->page_size, &m.statm_rss) == -1)
		return -1;
	if (with_smaps) {
		probe_reads[PROBE_SMAPS]++;
		snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
		len = read_at0(AT_FDCWD, path, smaps, sizeof smaps, true);
		proc_mem_smaps(&m, len, smaps);
	}
	sample_add(s, &m);
	return 0;
}

/*
 * The root, through the kept descriptors; -1 with errno. Unlike a
 * descendant's, its unreadable smaps_rollup is an error for the caller to
 * report, not something to paper over.
 */
static int
sample_root(struct memprobe *p, bool with_smaps, struct mem_sample *s)
{
	char statm[STATM_BUF_SIZE], smaps[SMAPS_BUF_SIZE];
	char path[PROC_PATH_SIZE];
	struct proc_mem m = { .smaps = SMAPS_UNASKED };
	int open_err = 0;
	ssize_t len;

	if (with_smaps && p->smaps_fd == -1) {
		/*
		 * Opened by number, hence before the statm read below: if the
		 * root is still there after the open, the number was not
		 * reused meanwhile and the descriptor is the root's.
		 */
		snprintf(path, sizeof path, "/proc/%d/smaps_rollup",
		    (int)p->pid);
		p->smaps_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (p->smaps_fd == -1)
			open_err = errno;
	}
	probe_reads[PROBE_STATM]++;
	if (pread_once(p->statm_fd, statm, sizeof statm) == -1) {
		if (is_gone(errno))
			errno = ESRCH;
		return -1;
	}
	if (memprobe_parse_statm(statm, p->page_size, &m.statm_rss) == -1) {
		errno = EBADMSG;
		return -1;
	}
	if (with_smaps) {
		if (p->smaps_fd == -1) {
			/* A zombie's open fails with ESRCH: no mm. */
			errno = open_err;
			len = -1;
		} else {
			probe_reads[PROBE_SMAPS]++;
			len = pread_once(p->smaps_fd, smaps, sizeof smaps);
		}
		proc_mem_smaps(&m, len, smaps);
		if (m.smaps == SMAPS_UNKNOWN) {
			if (len != -1)
				errno = EBADMSG;
			return -1;
		}
	}
	sample_add(s, &m);
	return 0;
}

/*
 * Errors concern the root only: ESRCH when it is gone, EBADMSG when its
 * statm or smaps_rollup is garbage, or the errno of reading its
 * smaps_rollup (EACCES). A zombie root samples as zero bytes. With
 * with_smaps, rss is smaps_rollup's too, so uss <= pss <= rss.
 */
int
memprobe_sample(struct memprobe *p, bool with_smaps, struct mem_sample *out)
{
	return memprobe_sample_roots(p, NULL, 0, with_smaps, out);
}

/*
 * Extra roots (a worker's adopted orphans) join the queue after the root's
 * children: they and their trees are walked and counted like descendants,
 * and one that vanished is skipped. With extra roots there is always a
 * walk, since the lone shortcut only knows about the root.
 */
int
memprobe_sample_roots(struct memprobe *p, const pid_t *extra, size_t nextra,
    bool with_smaps, struct mem_sample *out)
{
	struct mem_sample s = { .has_smaps = with_smaps };
	struct walk w = {
		.queue = scratch.queue,
		.n = 1,
		.max = nitems(scratch.queue),
		.buf = scratch.children,
		.buf_size = sizeof scratch.children,
	};
	size_t i;
	bool walk;

	w.queue[0] = p->pid;
	last_walk_probe = NULL;
	walk = !p->lone || with_smaps || nextra > 0 ||
	    ++p->unwalked >= LONE_REWALK;
	/* Before sample_root(): its statm read proves them the root's. If
	 * the opens fail (EMFILE), the walk below goes by number. */
	if (walk)
		(void)open_walk_fds(p);
	if (sample_root(p, with_smaps, &s) == -1)
		return -1;
	if (!walk) {
		*out = s;
		return 0;
	}
	(void)walk_children(&w, p->pid, p->task_fd, p->children_fd);
	p->lone = w.n == 1;
	p->unwalked = 0;
	/* Alone: no need to keep them for the next walk, 8 samples away. A
	 * worker with adopted orphans walks at every sample: kept. */
	if (p->lone && nextra == 0)
		close_walk_fds(p);
	for (i = 0; i < nextra && w.n < w.max; i++)
		w.queue[w.n++] = extra[i];
	for (i = 1; i < w.n; i++) {
		/* One that vanished took none of its children along: they
		 * went to a subreaper, out of this tree. */
		if (sample_descendant(p, w.queue[i], with_smaps, &s) == -1)
			continue;
		(void)walk_children(&w, w.queue[i], -1, -1);
	}
	last_walk_n = w.n;
	last_walk_probe = p;
	*out = s;
	return 0;
}

int
memprobe_sample_root(struct memprobe *p, bool with_smaps,
    struct mem_sample *out)
{
	struct mem_sample s = { .has_smaps = with_smaps };

	last_walk_probe = NULL;
	if (sample_root(p, with_smaps, &s) == -1)
		return -1;
	*out = s;
	return 0;
}

/*
 * The walk descriptors stay open: a master is asked at every sample, and
 * its pid cannot be reused while it is the daemon's unreaped child.
 */
size_t
memprobe_root_children(struct memprobe *p, pid_t *pids, size_t max)
{
	struct walk w = {
		.queue = pids,
		.max = max,
		.buf = scratch.children,
		.buf_size = sizeof scratch.children,
	};

	(void)open_walk_fds(p);
	(void)walk_children(&w, p->pid, p->task_fd, p->children_fd);
	return w.n;
}

size_t
memprobe_last_walk(const struct memprobe *p, const pid_t **pids)
{
	*pids = scratch.queue;
	return p == last_walk_probe ? last_walk_n : 0;
}

/* The vanished are left out; the walk uses the caller's array as its queue. */
size_t
memprobe_tree(pid_t root, pid_t *pids, size_t max)
{
	struct walk w = {
		.queue = pids,
		.n = 1,
		.max = max,
		.buf = scratch.children,
		.buf_size = sizeof scratch.children,
	};
	size_t i, alive = 0;

	if (max == 0 || root <= 0)
		return 0;
	pids[0] = root;
	for (i = 0; i < w.n; i++) {
		/* Compact out the vanished: alive <= i, so nothing pending is
		 * overwritten; children are appended at w.n. */
		if (walk_children(&w, pids[i], -1, -1) == 0)
			pids[alive++] = pids[i];
	}
	return alive;
}

size_t
memprobe_children(pid_t pid, pid_t *pids, size_t max)
{
	struct walk w = {
		.queue = pids,
		.max = max,
		.buf = scratch.children,
		.buf_size = sizeof scratch.children,
	};

	(void)walk_children(&w, pid, -1, -1);
	return w.n;
}

/* Opened and closed each time: the daemon asks rarely (status, metrics). */
uint64_t
memprobe_self_rss(void)
{
	char statm[STATM_BUF_SIZE];
	uint64_t rss;

	if (read_at0(AT_FDCWD, "/proc/self/statm", statm, sizeof statm,
	    true) == -1 ||
	    memprobe_parse_statm(statm, sysconf(_SC_PAGESIZE), &rss) == -1)
		return 0;
	return rss;
}
