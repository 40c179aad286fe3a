/* SPDX-License-Identifier: MIT */
/*
 * cgroup.c - the daemon's memory cgroup tree on cgroup v2 or v1.
 *
 * This module owns ROOT/POOL/worker-N-G directories: it finds ROOT (the
 * daemon's own cgroup), kills and removes what an earlier run left there,
 * creates pool and worker groups with their limits, places processes, reads
 * memory counters through kept descriptors, and turns kernel memory events
 * (v1 eventfd thresholds, v2 memory.events notifications) into descriptors
 * the caller watches. It never logs: failures come back as -1/NULL with
 * errno, or as a sentence through *why. It never decides what to do about a
 * worker; pool.c does.
 */
#include "cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_DEFAULT_SYS		"/sys/fs/cgroup"
#define SUPERVISOR		"supervisor"
#define STALE_WAIT_MS		2000	/* per stale group, before the loop */
#define CLOSE_WAIT_MS		0	/* inside the loop: never wait; a busy
					 * group is retried by cgroup_root_tidy */
#define ROOT_CLOSE_WAIT_MS	2000	/* for groups still busy at exit */
#define KILL_PASSES		100	/* v1: re-read cgroup.procs this often */

struct cgroup {
	struct cgroup_root *root;	/* owner; outlives the group */
	struct cgroup	*pool;		/* NULL for a pool group */
	LIST_ENTRY(cgroup) link;	/* root->groups */
	char		*path;		/* absolute */

	/* Kept descriptors (close-on-exec); -1 when the file is absent. */
	int		 dir_fd;
	int		 join_fd;	/* what a process writes 0 to, to join:
					 * cgroup.procs, tasks on v1 (see
					 * cgroup_join_fd()); write only */
	int		 usage_fd;	/* memory.current | memory.usage_in_bytes */
	int		 events_fd;	/* memory.events | memory.oom_control */
	int		 stat_fd;	/* memory.stat */

	/* Pools: open worker groups; a closed pool is freed by its last. */
	unsigned int	 nworkers;
	bool		 is_closed;

	/* Limits as configured, bytes (0 = none). */
	uint64_t	 high_bytes;

	/* Threshold event source; threshold_bytes == 0: not armed. */
	uint64_t	 threshold_bytes;
	bool		 use_high;	/* v2: memory.high holds the threshold */
	int		 event_fd;	/* v1 eventfd, else -1 */
	int		 watch_wd;	/* v2 inotify watch on memory.events */
	bool		 is_notified;	/* v2: an inotify event for us is due */
	uint64_t	 high_events;	/* v2: memory.events "high" last seen */
};

struct cgroup_root {
	enum cgroup_version version;
	char		*path;		/* ROOT; "" when CG_NONE */
	int		 dir_fd;
	int		 inotify_fd;	/* v2 thresholds, shared; -1 until armed */
	LIST_HEAD(, cgroup) groups;	/* workers before their pools */
	char		**pending;	/* killed groups rmdir() found busy */
	size_t		 npending;
	bool		 own_dir;	/* v1: ROOT is our instance directory */
};

/* Why cgroup_root_open() chose what it chose, when it needs details. */
static char why_buf[512];

/* Small file helpers */

static void
sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		continue;
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/* Whole small file, NUL-terminated, malloc'd; NULL with errno on error. */
static char *
slurp(const char *path)
{
	size_t len = 0, size = 4096;
	char *buf;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	buf = xmalloc(size);
	for (;;) {
		if (len + 1 == size)
			buf = xrealloc(buf, size *= 2);
		n = read(fd, buf + len, size - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	saved = errno;
	close(fd);
	if (n == -1) {
		free(buf);
		errno = saved;
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/*
 * One pread() at offset 0. cgroup files produce their whole text in one
 * show, so a read shorter than the buffer is the whole file: this is the
 * per-sample path (~1 µs), so no second read to confirm end of file.
 */
static ssize_t
pread_all(int fd, char *buf, size_t size)
{
	ssize_t n;

	if (fd == -1) {
		errno = EBADF;
		return -1;
	}
	do
		n = pread(fd, buf, size - 1, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n == size - 1) {
		errno = EOVERFLOW;
		return -1;
	}
	buf[n] = '\0';
	return n;
}

static int
write_at(int dir_fd, const char *name, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;
	int fd, saved;

	if ((fd = openat(dir_fd, name, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	do
		n = write(fd, text, len);
	while (n == -1 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n == -1) {
		errno = saved;
		return -1;
	}
	if ((size_t)n != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int
write_bytes_at(int dir_fd, const char *name, uint64_t bytes, bool is_v1)
{
	char text[32];

	if (bytes == 0)
		snprintf(text, sizeof text, "%s", is_v1 ? "-1" : "max");
	else
		snprintf(text, sizeof text, "%llu", (unsigned long long)bytes);
	return write_at(dir_fd, name, text);
}

/* True when the space-separated word occurs in text. */
static bool
has_word(const char *text, const char *word)
{
	size_t len = strlen(word);
	const char *p = text;

	while ((p = strstr(p, word)) != NULL) {
		if ((p == text || isspace((unsigned char)p[-1])) &&
		    (p[len] == '\0' || isspace((unsigned char)p[len])))
			return true;
		p += len;
	}
	return false;
}

static bool
has_word_at(int dir_fd, const char *name, const char *word)
{
	char buf[1024];
	int fd;
	ssize_t n;

	if ((fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	n = pread_all(fd, buf, sizeof buf);
	close(fd);
	return n >= 0 && has_word(buf, word);
}

/* Pure parsers */

/* One decimal number, as in memory.current; "max" reads as UINT64_MAX. */
int
cgroup_parse_u64(const char *buf, uint64_t *val)
{
	unsigned long long v;
	char *end;

	while (*buf == ' ' || *buf == '\t')
		buf++;
	if (strncmp(buf, "max", 3) == 0 && (buf[3] == '\0' ||
	    buf[3] == '\n')) {
		*val = UINT64_MAX;
		return 0;
	}
	if (!isdigit((unsigned char)*buf))
		return -1;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || (*end != '\0' && *end != '\n'))
		return -1;
	*val = v;
	return 0;
}

/* "key value" lines: memory.events, memory.stat, memory.oom_control. */
int
cgroup_parse_keyed(const char *buf, const char *key, uint64_t *val)
{
	size_t klen = strlen(key);
	const char *line;

	if (klen == 0)
		return -1;
	for (line = buf; line != NULL && *line != '\0'; ) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return cgroup_parse_u64(line + klen + 1, val);
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return -1;
}

/* True when the comma-separated list [s, s + len) holds word. */
static bool
list_has(const char *s, size_t len, const char *word)
{
	size_t wlen = strlen(word);
	const char *end = s + len, *comma;

	while (s < end) {
		comma = memchr(s, ',', (size_t)(end - s));
		if (comma == NULL)
			comma = end;
		if ((size_t)(comma - s) == wlen && memcmp(s, word, wlen) == 0)
			return true;
		s = comma + 1;
	}
	return false;
}

char *
cgroup_parse_self(const char *buf, enum cgroup_version version)
{
	const char *line, *c1, *c2, *eol;

	for (line = buf; line != NULL && *line != '\0';
	    line = eol == NULL ? NULL : eol + 1) {
		eol = strchr(line, '\n');
		if (eol == NULL)
			eol = line + strlen(line);
		c1 = memchr(line, ':', (size_t)(eol - line));
		if (c1 == NULL)
			goto next;
		c2 = memchr(c1 + 1, ':', (size_t)(eol - c1 - 1));
		if (c2 == NULL || c2[1] != '/')
			goto next;
		if (version == CG_V2 ? (c1 - line == 1 && line[0] == '0' &&
		    c2 == c1 + 1) : (version == CG_V1 &&
		    list_has(c1 + 1, (size_t)(c2 - c1 - 1), "memory")))
			return strndup(c2 + 1, (size_t)(eol - c2 - 1));
next:
		if (*eol == '\0')
			break;
	}
	return NULL;
}

/* Copy a mountinfo field, undoing its \ooo escapes (space is \040). */
static char *
unescape_field(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 3 < len &&
		    s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' &&
		    s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)((s[i + 1] - '0') * 64 +
			    (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/*
 * The first cgroup2 mount (CG_V2) or cgroup v1 mount with the memory
 * controller (CG_V1) in a /proc/self/mountinfo text: its mount point and
 * the cgroup path mounted there ("/" unless a namespace or bind mount).
 * 0, or -1 when there is none. The caller frees both strings.
 */
int
cgroup_parse_mountinfo(const char *buf, enum cgroup_version version,
    char **mnt_point, char **mnt_root)
{
	const char *line, *eol, *f[6], *sep, *fs, *src, *opts;
	size_t flen[6];
	int i;

	for (line = buf; line != NULL && *line != '\0';
	    line = *eol == '\0' ? NULL : eol + 1) {
		const char *p = line;

		eol = strchr(line, '\n');
		if (eol == NULL)
			eol = line + strlen(line);
		/* id parent maj:min root point options ... - fs src opts */
		for (i = 0; i < 6 && p < eol; i++) {
			f[i] = p;
			while (p < eol && *p != ' ')
				p++;
			flen[i] = (size_t)(p - f[i]);
			while (p < eol && *p == ' ')
				p++;
		}
		if (i < 6)
			continue;
		sep = p;
		while (sep < eol && !(sep[0] == '-' && sep[1] == ' ' &&
		    sep[-1] == ' '))
			sep++;
		if (sep >= eol)
			continue;
		fs = sep + 2;
		src = memchr(fs, ' ', (size_t)(eol - fs));
		if (src == NULL)
			continue;
		opts = memchr(src + 1, ' ', (size_t)(eol - src - 1));
		if (version == CG_V2) {
			if ((size_t)(src - fs) != 7 ||
			    memcmp(fs, "cgroup2", 7) != 0)
				continue;
		} else {
			if ((size_t)(src - fs) != 6 ||
			    memcmp(fs, "cgroup", 6) != 0 || opts == NULL ||
			    !list_has(opts + 1, (size_t)(eol - opts - 1),
			    "memory"))
				continue;
		}
		*mnt_root = unescape_field(f[3], flen[3]);
		*mnt_point = unescape_field(f[4], flen[4]);
		return 0;
	}
	return -1;
}

/* Probing and choosing */

/* Mount points under the real /sys/fs/cgroup move to sys_root (tests). */
static char *
rebase(const char *point, const char *sys_root)
{
	size_t n = strlen(CG_DEFAULT_SYS);
	char *out;

	if (strncmp(point, CG_DEFAULT_SYS, n) == 0 &&
	    (point[n] == '\0' || point[n] == '/')) {
		xasprintf(&out, "%s%s", sys_root, point + n);
		return out;
	}
	return xstrdup(point);
}

/* ROOT = mount point + the cgroup path below the mounted cgroup. */
static char *
join_root(const char *point, const char *mroot, const char *path)
{
	size_t n = strlen(mroot);
	char *out;

	if (strcmp(mroot, "/") != 0 && strncmp(path, mroot, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/'))
		path += n;
	while (*path == '/')
		path++;
	if (*path == '\0')
		return xstrdup(point);
	xasprintf(&out, "%s%s%s", point,
	    point[0] != '\0' && point[strlen(point) - 1] == '/' ? "" : "/",
	    path);
	return out;
}

static bool
access_in(const char *dir, const char *name, int how)
{
	char *p;
	bool ok;

	xasprintf(&p, "%s/%s", dir, name);
	ok = access(p, how) == 0;
	free(p);
	return ok;
}

/* Where would v1 or v2 put ROOT? NULL when that hierarchy is missing. */
static char *
probe_root(const char *self, const char *mountinfo, const char *sys_root,
    enum cgroup_version version)
{
	char *path, *point = NULL, *mroot = NULL, *root, *slash;

	if (self == NULL || (path = cgroup_parse_self(self, version)) == NULL)
		return NULL;
	if (mountinfo != NULL) {
		if (cgroup_parse_mountinfo(mountinfo, version, &point,
		    &mroot) == -1) {
			free(path);
			return NULL;
		}
		root = rebase(point, sys_root);
		free(point);
		point = root;
	} else {
		/* No mountinfo: the usual places. */
		mroot = xstrdup("/");
		if (version == CG_V1)
			xasprintf(&point, "%s/memory", sys_root);
		else if (access_in(sys_root, "cgroup.controllers", F_OK))
			point = xstrdup(sys_root);
		else
			xasprintf(&point, "%s/unified", sys_root);
	}
	/* Already in ROOT/supervisor (an earlier open): ROOT is its parent. */
	if (version == CG_V2 && (slash = strrchr(path, '/')) != NULL &&
	    strcmp(slash + 1, SUPERVISOR) == 0)
		slash[slash == path ? 1 : 0] = '\0';
	root = join_root(point, mroot, path);
	free(point);
	free(mroot);
	free(path);
	return root;
}

void
cgroup_probe(const char *proc_root, const char *sys_root,
    struct cgroup_probe *p)
{
	char *self, *mountinfo, *path, *ctl;

	memset(p, 0, sizeof *p);
	xasprintf(&path, "%s/self/cgroup", proc_root);
	self = slurp(path);
	free(path);
	xasprintf(&path, "%s/self/mountinfo", proc_root);
	mountinfo = slurp(path);
	free(path);

	p->v2_root = probe_root(self, mountinfo, sys_root, CG_V2);
	if (p->v2_root != NULL) {
		p->v2_writable = access(p->v2_root, W_OK) == 0 &&
		    access_in(p->v2_root, "cgroup.procs", W_OK) &&
		    access_in(p->v2_root, "cgroup.subtree_control", W_OK);
		xasprintf(&path, "%s/cgroup.controllers", p->v2_root);
		ctl = slurp(path);
		p->v2_memory = ctl != NULL && has_word(ctl, "memory");
		free(ctl);
		free(path);
	}
	p->v1_root = probe_root(self, mountinfo, sys_root, CG_V1);
	if (p->v1_root != NULL)
		p->v1_writable = access(p->v1_root, W_OK) == 0 &&
		    access_in(p->v1_root, "cgroup.procs", W_OK) &&
		    access_in(p->v1_root, "memory.usage_in_bytes", R_OK);
	free(self);
	free(mountinfo);
}

void
cgroup_probe_fini(struct cgroup_probe *p)
{
	free(p->v2_root);
	free(p->v1_root);
	memset(p, 0, sizeof *p);
}

static bool
v2_usable(const struct cgroup_probe *p)
{
	return p->v2_root != NULL && p->v2_writable && p->v2_memory;
}

static bool
v1_usable(const struct cgroup_probe *p)
{
	return p->v1_root != NULL && p->v1_writable;
}

int
cgroup_choose(enum cgroup_mode mode, const struct cgroup_probe *p,
    const char **why)
{
	switch (mode) {
	case CGROUP_NONE:
		*why = "cgroup = none: memory is measured through /proc";
		return CG_NONE;
	case CGROUP_V2:
		if (p->v2_root == NULL)
			*why = "cgroup = v2: no cgroup v2 hierarchy is mounted";
		else if (!p->v2_memory)
			*why = "cgroup = v2: the memory controller is not "
			    "available in the daemon's cgroup";
		else if (!p->v2_writable)
			*why = "cgroup = v2: the daemon's cgroup is not "
			    "writable (is it delegated?)";
		else
			break;
		errno = ENOTSUP;
		return -1;
	case CGROUP_V1:
		if (p->v1_root == NULL)
			*why = "cgroup = v1: no cgroup v1 memory hierarchy is "
			    "mounted";
		else if (!p->v1_writable)
			*why = "cgroup = v1: the daemon's memory cgroup is not "
			    "writable";
		else {
			*why = "cgroup = v1: per-worker memory cgroups (v1)";
			return CG_V1;
		}
		errno = ENOTSUP;
		return -1;
	case CGROUP_AUTO:
		if (v2_usable(p))
			break;
		if (v1_usable(p)) {
			*why = "cgroup v1 memory controller (no usable cgroup "
			    "v2 memory controller)";
			return CG_V1;
		}
		*why = "no writable memory cgroup: memory is measured "
		    "through /proc";
		return CG_NONE;
	}
	*why = mode == CGROUP_V2 ? "cgroup = v2: per-worker memory cgroups "
	    "(v2)" : "cgroup v2 with the memory controller";
	return CG_V2;
}

/* Processes and removal */

/* Pids in dir/cgroup.procs, malloc'd; count or -1 with errno. */
static ssize_t
read_pids(int dir_fd, pid_t **out)
{
	char buf[4096];
	size_t n = 0, cap = 0;
	pid_t *pids = NULL;
	long cur = -1;
	ssize_t got, i;
	int fd, saved;

	if ((fd = openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		got = read(fd, buf, sizeof buf);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		/* A number may straddle two reads: carry it in cur. */
		for (i = 0; i < got; i++) {
			if (isdigit((unsigned char)buf[i])) {
				cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
				continue;
			}
			if (cur > 0 && out != NULL) {
				if (n == cap)
					pids = xrealloc(pids,
					    (cap = cap ? cap * 2 : 16) *
					    sizeof *pids);
				pids[n] = (pid_t)cur;
			}
			if (cur > 0)
				n++;
			cur = -1;
		}
	}
	saved = errno;
	close(fd);
	if (got == -1) {
		free(pids);
		errno = saved;
		return -1;
	}
	if (cur > 0) {
		if (out != NULL) {
			if (n == cap)
				pids = xrealloc(pids, (cap + 1) * sizeof *pids);
			pids[n] = (pid_t)cur;
		}
		n++;
	}
	if (out != NULL)
		*out = pids;
	return (ssize_t)n;
}

static bool
pid_in(const pid_t *set, size_t n, pid_t pid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (set[i] == pid)
			return true;
	return false;
}

/*
 * SIGKILL every process in the group. v2 cgroup.kill does it atomically,
 * forks included. Otherwise re-read cgroup.procs until a pass finds no pid
 * we have not killed yet: a process forked between our read and our kill is
 * caught on the next pass (a process with SIGKILL pending cannot fork).
 */
static int
kill_group(int dir_fd, bool try_cgroup_kill)
{
	pid_t *pids, *killed = NULL;
	size_t nkilled = 0, cap = 0;
	ssize_t n, i;
	int pass, fresh;

	if (try_cgroup_kill) {
		if (write_at(dir_fd, "cgroup.kill", "1") == 0)
			return 0;
		if (errno != ENOENT)
			return -1;
	}
	for (pass = 0; pass < KILL_PASSES; pass++) {
		if ((n = read_pids(dir_fd, &pids)) == -1) {
			free(killed);
			return -1;
		}
		fresh = 0;
		for (i = 0; i < n; i++) {
			if (pid_in(killed, nkilled, pids[i]))
				continue;
			if (kill(pids[i], SIGKILL) == -1 && errno != ESRCH)
				continue;
			if (nkilled == cap)
				killed = xrealloc(killed,
				    (cap = cap ? cap * 2 : 16) *
				    sizeof *killed);
			killed[nkilled++] = pids[i];
			fresh++;
		}
		free(pids);
		if (fresh == 0)
			break;
	}
	free(killed);
	return 0;
}

/* rmdir, retrying while the killed processes finish exiting. */
static int
rmdir_wait(int parent_fd, const char *name, unsigned int wait_ms)
{
	unsigned int waited = 0;

	for (;;) {
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 ||
		    errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= wait_ms)
			return -1;
		sleep_ms(1);
		waited++;
	}
}

static bool
is_dir_entry(int dir_fd, const struct dirent *d)
{
	struct stat st;

	if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
		return false;
	if (d->d_type == DT_DIR)
		return true;
	if (d->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode);
}

/*
 * A directory stream on a close-on-exec copy of fd (fdopendir takes the
 * descriptor it is given; fd stays ours). NULL with errno set.
 */
static DIR *
opendir_dup(int fd)
{
	DIR *dir;
	int copy, saved;

	if ((copy = dup_cloexec(fd)) == -1)
		return NULL;
	if ((dir = fdopendir(copy)) == NULL) {
		saved = errno;
		close(copy);
		errno = saved;
	}
	return dir;
}

/* Kill everything below and in dir_fd/name, then remove it all. */
static int
remove_tree(int parent_fd, const char *name, bool is_v2,
    unsigned int wait_ms)
{
	struct dirent *d;
	DIR *dir;
	int fd, rc = 0;

	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	/* cgroup.kill takes the whole subtree at once, before the walk. */
	if (kill_group(fd, is_v2) == -1)
		rc = -1;
	if ((dir = opendir_dup(fd)) != NULL) {
		while ((d = readdir(dir)) != NULL)
			if (is_dir_entry(dirfd(dir), d) &&
			    remove_tree(fd, d->d_name, is_v2, wait_ms) == -1)
				rc = -1;
		closedir(dir);
	}
	if (kill_group(fd, false) == -1)
		rc = -1;
	close(fd);
	if (rmdir_wait(parent_fd, name, wait_ms) == -1)
		rc = -1;
	return rc;
}

/* Subdirectories and processes in dir_fd/name, or -1. */
static int
count_content(int parent_fd, const char *name)
{
	struct dirent *d;
	DIR *dir;
	ssize_t n;
	int fd, count = 0;

	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if ((n = read_pids(fd, NULL)) == -1) {
		close(fd);
		return -1;
	}
	count += (int)n;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL)
		if (is_dir_entry(dirfd(dir), d))
			count++;
	closedir(dir);
	return count;
}

/* "worker-" digits "-" digits, as cgroup_worker_open() names them. */
static bool
is_worker_name(const char *s)
{
	if (strncmp(s, "worker-", 7) != 0)
		return false;
	s += 7;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s++ != '-' || !isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	return *s == '\0';
}

/* Kill and remove ROOT/ * /worker-N-G (and pools they leave empty). */
static int
remove_stale(struct cgroup_root *r, const char *own_v2)
{
	struct dirent *d, *w;
	DIR *dir, *pool;
	int pool_fd, removed, rc = 0;
	bool is_v2 = r->version == CG_V2;
	char *sup;

	if ((dir = opendir_dup(r->dir_fd)) == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		if (!is_dir_entry(r->dir_fd, d))
			continue;
		if (strcmp(d->d_name, SUPERVISOR) == 0) {
			xasprintf(&sup, "%s/%s", r->path, SUPERVISOR);
			if (is_v2 && (own_v2 == NULL ||
			    strcmp(own_v2, sup) != 0) &&
			    count_content(r->dir_fd, d->d_name) == 0)
				unlinkat(r->dir_fd, d->d_name, AT_REMOVEDIR);
			free(sup);
			continue;
		}
		pool_fd = openat(r->dir_fd, d->d_name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pool_fd == -1)
			continue;
		if ((pool = opendir_dup(pool_fd)) == NULL) {
			close(pool_fd);
			continue;
		}
		removed = 0;
		while ((w = readdir(pool)) != NULL) {
			if (!is_worker_name(w->d_name) ||
			    !is_dir_entry(pool_fd, w))
				continue;
			if (remove_tree(pool_fd, w->d_name, is_v2,
			    STALE_WAIT_MS) == -1)
				rc = -1;
			else
				removed++;
		}
		closedir(pool);
		close(pool_fd);
		if (removed > 0 && count_content(r->dir_fd, d->d_name) == 0)
			unlinkat(r->dir_fd, d->d_name, AT_REMOVEDIR);
	}
	closedir(dir);
	return rc;
}

/* Retry removing groups that were still busy when closed. */
static void
retry_pending(struct cgroup_root *r)
{
	size_t i, keep = 0;

	for (i = 0; i < r->npending; i++) {
		if (rmdir(r->pending[i]) == 0 || errno == ENOENT)
			free(r->pending[i]);
		else
			r->pending[keep++] = r->pending[i];
	}
	r->npending = keep;
}

/* Opening the root */

static struct cgroup_root *
root_new(enum cgroup_version version, const char *path)
{
	struct cgroup_root *r = xcalloc(1, sizeof *r);

	r->version = version;
	r->path = xstrdup(path != NULL ? path : "");
	r->dir_fd = -1;
	r->inotify_fd = -1;
	LIST_INIT(&r->groups);
	return r;
}

static void
root_free(struct cgroup_root *r)
{
	size_t i;

	close_fd(&r->dir_fd);
	close_fd(&r->inotify_fd);
	for (i = 0; i < r->npending; i++)
		free(r->pending[i]);
	free(r->pending);
	free(r->path);
	free(r);
}

static const char *
fail_why(const char *what, const char *path)
{
	snprintf(why_buf, sizeof why_buf, "%s %s: %s", what, path,
	    strerror(errno));
	return why_buf;
}

/* Own v2 cgroup as an absolute path, to spot our own supervisor group. */
static char *
own_v2_path(const char *proc_root, const char *sys_root)
{
	char *path, *self, *rel, *mi, *point = NULL, *mroot = NULL, *out;

	xasprintf(&path, "%s/self/cgroup", proc_root);
	self = slurp(path);
	free(path);
	rel = self != NULL ? cgroup_parse_self(self, CG_V2) : NULL;
	free(self);
	if (rel == NULL)
		return NULL;
	xasprintf(&path, "%s/self/mountinfo", proc_root);
	mi = slurp(path);
	free(path);
	if (mi == NULL || cgroup_parse_mountinfo(mi, CG_V2, &point,
	    &mroot) == -1) {
		free(mi);
		free(rel);
		return NULL;
	}
	free(mi);
	path = rebase(point, sys_root);
	out = join_root(path, mroot, rel);
	free(path);
	free(point);
	free(mroot);
	free(rel);
	return out;
}

/*
 * v2: clean up, then obey the no-internal-processes rule: the daemon moves
 * into the leaf ROOT/supervisor before +memory goes into ROOT's
 * subtree_control.
 */
static int
prepare_v2(struct cgroup_root *r, const char *own, const char **why)
{
	char *sup;
	int fd;

	remove_stale(r, own);
	xasprintf(&sup, "%s/%s", r->path, SUPERVISOR);
	if (own == NULL || strcmp(own, sup) != 0) {
		if (mkdirat(r->dir_fd, SUPERVISOR, 0755) == -1 &&
		    errno != EEXIST) {
			*why = fail_why("cgroup v2: cannot create", sup);
			free(sup);
			return -1;
		}
		fd = openat(r->dir_fd, SUPERVISOR,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd == -1 || write_at(fd, "cgroup.procs", "0") == -1) {
			*why = fail_why("cgroup v2: cannot move the daemon "
			    "into", sup);
			if (fd != -1)
				close(fd);
			free(sup);
			return -1;
		}
		close(fd);
	}
	free(sup);
	if (!has_word_at(r->dir_fd, "cgroup.subtree_control", "memory") &&
	    write_at(r->dir_fd, "cgroup.subtree_control", "+memory") == -1) {
		/* EBUSY: no internal processes, so others must move out. */
		snprintf(why_buf, sizeof why_buf, "cgroup v2: cannot write "
		    "+memory to %.300s/cgroup.subtree_control: %s%s", r->path,
		    strerror(errno), errno == EBUSY ? " (other processes "
		    "share the daemon's cgroup)" : "");
		*why = why_buf;
		return -1;
	}
	return 0;
}

/* Open ROOT and prepare it for version; -1 with *why on failure. */
static int
prepare(struct cgroup_root *r, const char *proc_root, const char *sys_root,
    const char **why)
{
	char *own;
	int rc;

	r->dir_fd = open(r->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_fd == -1) {
		*why = fail_why("cannot open cgroup", r->path);
		return -1;
	}
	if (r->version == CG_V1) {
		remove_stale(r, NULL);
		return 0;
	}
	own = own_v2_path(proc_root, sys_root);
	rc = prepare_v2(r, own, why);
	free(own);
	return rc;
}

/* The auto fallback's reason: what failed, then what we use instead. */
static const char *
fallback_why(const char *failed, enum cgroup_version next)
{
	char tmp[sizeof why_buf - 64];	/* room for the tail */

	snprintf(tmp, sizeof tmp, "%s", failed);
	snprintf(why_buf, sizeof why_buf, "%s; %s", tmp, next == CG_V1 ?
	    "using the cgroup v1 memory controller instead" :
	    "memory is measured through /proc");
	return why_buf;
}

/*
 * v1 has no delegation: the daemon's memory cgroup may be shared with other
 * processes, other daemons among them. Each instance gets a directory of
 * its own below it, so stale-group cleanup only ever reaches groups left by
 * an earlier run of the same instance.
 */
static char *
v1_instance_path(const char *base, const char *instance)
{
	char *path;

	if (instance == NULL || *instance == '\0')
		return xstrdup(base);
	xasprintf(&path, "%s/%s", base, instance);
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		free(path);
		return NULL;
	}
	return path;
}

struct cgroup_root *
cgroup_root_open(enum cgroup_mode mode, const char *proc_root,
    const char *sys_root, const char *instance, const char **why)
{
	struct cgroup_probe p;
	struct cgroup_root *r = NULL;
	const char *fail;
	char *v1path;
	int v;

	if (proc_root == NULL)
		proc_root = "/proc";
	if (sys_root == NULL)
		sys_root = CG_DEFAULT_SYS;
	if (mode == CGROUP_NONE) {
		(void)cgroup_choose(mode, NULL, why);
		return root_new(CG_NONE, NULL);
	}
	cgroup_probe(proc_root, sys_root, &p);
	if ((v = cgroup_choose(mode, &p, why)) == -1)
		goto fail;
	if (v == CG_V2) {
		r = root_new(CG_V2, p.v2_root);
		if (prepare(r, proc_root, sys_root, &fail) == 0)
			goto out;
		root_free(r);
		*why = fail;
		if (mode != CGROUP_AUTO)
			goto fail;
		v = v1_usable(&p) ? CG_V1 : CG_NONE;
		*why = fallback_why(fail, v);
	}
	if (v == CG_V1) {
		if ((v1path = v1_instance_path(p.v1_root, instance)) == NULL) {
			fail = fail_why("cannot create cgroup", p.v1_root);
			goto v1_failed;
		}
		r = root_new(CG_V1, v1path);
		r->own_dir = strcmp(v1path, p.v1_root) != 0;
		free(v1path);
		if (prepare(r, proc_root, sys_root, &fail) == 0)
			goto out;
		if (r->own_dir)
			(void)rmdir(r->path);
		root_free(r);
v1_failed:
		*why = fail;
		if (mode != CGROUP_AUTO)
			goto fail;
		*why = fallback_why(fail, CG_NONE);
	}
	r = root_new(CG_NONE, NULL);
out:
	cgroup_probe_fini(&p);
	return r;
fail:
	cgroup_probe_fini(&p);
	errno = ENOTSUP;
	return NULL;
}

enum cgroup_version
cgroup_root_version(const struct cgroup_root *r)
{
	return r != NULL ? r->version : CG_NONE;
}

const char *
cgroup_root_path(const struct cgroup_root *r)
{
	return r != NULL ? r->path : "";
}

/* Groups */

static void
group_free(struct cgroup *g)
{
	close_fd(&g->dir_fd);
	close_fd(&g->join_fd);
	close_fd(&g->usage_fd);
	close_fd(&g->events_fd);
	close_fd(&g->stat_fd);
	close_fd(&g->event_fd);
	free(g->path);
	free(g);
}

/* Make parent/name and open its kept descriptors; NULL with errno. */
static struct cgroup *
group_make(struct cgroup_root *r, int parent_fd, const char *parent_path,
    const char *name, bool may_exist)
{
	bool is_v1 = r->version == CG_V1;
	struct cgroup *g;
	int saved;

	if (mkdirat(parent_fd, name, 0755) == -1 &&
	    (errno != EEXIST || !may_exist))
		return NULL;
	g = xcalloc(1, sizeof *g);
	g->root = r;
	g->join_fd = g->usage_fd = g->events_fd = g->stat_fd = -1;
	g->event_fd = g->watch_wd = -1;
	xasprintf(&g->path, "%s/%s", parent_path, name);
	g->dir_fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (g->dir_fd == -1)
		goto fail;
	g->join_fd = openat(g->dir_fd, is_v1 ? "tasks" : "cgroup.procs",
	    O_WRONLY | O_CLOEXEC);
	g->usage_fd = openat(g->dir_fd, is_v1 ? "memory.usage_in_bytes" :
	    "memory.current", O_RDONLY | O_CLOEXEC);
	g->events_fd = openat(g->dir_fd, is_v1 ? "memory.oom_control" :
	    "memory.events", O_RDONLY | O_CLOEXEC);
	g->stat_fd = openat(g->dir_fd, "memory.stat", O_RDONLY | O_CLOEXEC);
	if (g->join_fd == -1 || g->usage_fd == -1 || g->events_fd == -1 ||
	    g->stat_fd == -1)
		goto fail;
	return g;
fail:
	saved = errno;
	if (g->dir_fd != -1)
		unlinkat(parent_fd, name, AT_REMOVEDIR);
	group_free(g);
	errno = saved;
	return NULL;
}

static bool
is_pool_name_ok(const char *s)
{
	return s != NULL && *s != '\0' && strchr(s, '/') == NULL &&
	    strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	    strcmp(s, SUPERVISOR) != 0 && strncmp(s, "cgroup.", 7) != 0 &&
	    strncmp(s, "memory.", 7) != 0 && !is_worker_name(s);
}

struct cgroup *
cgroup_pool_open(struct cgroup_root *r, const char *pool,
    uint64_t pool_memory_max)
{
	struct cgroup *g;
	int saved;

	if (r == NULL || r->version == CG_NONE) {
		errno = ENOTSUP;
		return NULL;
	}
	if (!is_pool_name_ok(pool)) {
		errno = EINVAL;
		return NULL;
	}
	retry_pending(r);
	/* An existing one is ours: stale cleanup emptied it. */
	if ((g = group_make(r, r->dir_fd, r->path, pool, true)) == NULL)
		return NULL;
	if (r->version == CG_V2 &&
	    !has_word_at(g->dir_fd, "cgroup.subtree_control", "memory") &&
	    write_at(g->dir_fd, "cgroup.subtree_control", "+memory") == -1)
		goto fail;
	if (pool_memory_max != 0 && cgroup_set_max(g, pool_memory_max) == -1)
		goto fail;
	LIST_INSERT_HEAD(&r->groups, g, link);
	return g;
fail:
	saved = errno;
	unlinkat(r->dir_fd, pool, AT_REMOVEDIR);
	group_free(g);
	errno = saved;
	return NULL;
}

struct cgroup *
cgroup_worker_open(struct cgroup *pool, unsigned int slot, unsigned int gen,
    uint64_t memory_high, uint64_t memory_max)
{
	struct cgroup_root *r;
	struct cgroup *g;
	char name[64];
	int saved;

	if (pool == NULL || pool->pool != NULL || pool->is_closed) {
		errno = EINVAL;
		return NULL;
	}
	r = pool->root;
	retry_pending(r);
	if (slot == CGROUP_TEMPLATE)
		snprintf(name, sizeof name, "template-%u", gen);
	else
		snprintf(name, sizeof name, "worker-%u-%u", slot, gen);
	if ((g = group_make(r, pool->dir_fd, pool->path, name, false)) == NULL)
		return NULL;
	g->pool = pool;
	/* A worker tree is one unit: the OOM killer takes all of it. */
	if (r->version == CG_V2 &&
	    write_at(g->dir_fd, "memory.oom.group", "1") == -1)
		goto fail;
	/* v1 has no memory.high: ignored here, cgroup_set_high() says so. */
	if (memory_high != 0 && r->version == CG_V2 &&
	    cgroup_set_high(g, memory_high) == -1)
		goto fail;
	if (memory_max != 0 && cgroup_set_max(g, memory_max) == -1)
		goto fail;
	pool->nworkers++;
	LIST_INSERT_HEAD(&r->groups, g, link);
	return g;
fail:
	saved = errno;
	unlinkat(pool->dir_fd, name, AT_REMOVEDIR);
	group_free(g);
	errno = saved;
	return NULL;
}

static void
pending_add(struct cgroup_root *r, const char *path)
{
	r->pending = xrealloc(r->pending, (r->npending + 1) *
	    sizeof *r->pending);
	r->pending[r->npending++] = xstrdup(path);
}

/* Kill, remove the directory (or queue it), free. */
static void
group_remove(struct cgroup *g, unsigned int wait_ms)
{
	struct cgroup_root *r = g->root;
	int parent_fd = g->pool != NULL ? g->pool->dir_fd : r->dir_fd;
	const char *name = strrchr(g->path, '/') + 1;

	if (g->watch_wd != -1 && r->inotify_fd != -1)
		inotify_rm_watch(r->inotify_fd, g->watch_wd);
	(void)kill_group(g->dir_fd, r->version == CG_V2);
	if (rmdir_wait(parent_fd, name, wait_ms) == -1 && errno == EBUSY)
		pending_add(r, g->path);
	LIST_REMOVE(g, link);
	group_free(g);
}

void
cgroup_close(struct cgroup *g)
{
	struct cgroup *pool;

	if (g == NULL)
		return;
	pool = g->pool;
	if (pool == NULL) {
		/* Workers still open keep the pool until the last closes. */
		g->is_closed = true;
		if (g->nworkers == 0)
			group_remove(g, CLOSE_WAIT_MS);
		return;
	}
	group_remove(g, CLOSE_WAIT_MS);
	if (--pool->nworkers == 0 && pool->is_closed)
		group_remove(pool, CLOSE_WAIT_MS);
}

void
cgroup_root_close(struct cgroup_root *r)
{
	struct cgroup *g, *next;
	unsigned int waited;

	if (r == NULL)
		return;
	/* Workers first: a pool directory is removable only when empty. */
	for (g = LIST_FIRST(&r->groups); g != NULL; g = next) {
		next = LIST_NEXT(g, link);
		if (g->pool != NULL) {
			g->pool->nworkers--;
			group_remove(g, CLOSE_WAIT_MS);
		}
	}
	while ((g = LIST_FIRST(&r->groups)) != NULL)
		group_remove(g, CLOSE_WAIT_MS);
	for (waited = 0; r->npending > 0 && waited < ROOT_CLOSE_WAIT_MS;
	    waited += 5) {
		retry_pending(r);
		if (r->npending > 0)
			sleep_ms(5);
	}
	if (r->own_dir)
		(void)rmdir(r->path);	/* busy if a group is still pending */
	root_free(r);
}

size_t
cgroup_root_tidy(struct cgroup_root *r)
{
	if (r == NULL)
		return 0;
	retry_pending(r);
	return r->npending;
}

const char *
cgroup_path(const struct cgroup *g)
{
	return g != NULL ? g->path : "";
}

int
cgroup_dir_fd(const struct cgroup *g)
{
	return g != NULL && g->root->version == CG_V2 ? g->dir_fd : -1;
}

int
cgroup_open_path(const struct cgroup *g)
{
	if (g == NULL || g->dir_fd == -1) {
		errno = EBADF;
		return -1;
	}
	return openat(g->dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

int
cgroup_join_fd(const struct cgroup *g)
{
	return g != NULL ? g->join_fd : -1;
}

int
cgroup_attach(const struct cgroup *g, pid_t pid)
{
	char text[24];
	int fd, len;
	ssize_t n;

	if (g == NULL || g->dir_fd == -1 || pid <= 0) {
		errno = g == NULL ? ENOTSUP : EINVAL;
		return -1;
	}
	/* The whole process: cgroup.procs, whatever join_fd is. */
	if ((fd = openat(g->dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return -1;
	len = snprintf(text, sizeof text, "%ld", (long)pid);
	do
		n = write(fd, text, (size_t)len);
	while (n == -1 && errno == EINTR);
	close(fd);
	return n == -1 ? -1 : 0;
}

bool
cgroup_contains(const struct cgroup *g, pid_t pid)
{
	pid_t *pids = NULL;
	ssize_t n;
	bool found;

	if (g == NULL || g->dir_fd == -1 || (n = read_pids(g->dir_fd,
	    &pids)) == -1)
		return false;
	found = pid_in(pids, (size_t)n, pid);
	free(pids);
	return found;
}

/* Counters and limits */

int
cgroup_memory_usage(const struct cgroup *g, uint64_t *bytes)
{
	char buf[32];

	if (g == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	if (pread_all(g->usage_fd, buf, sizeof buf) == -1)
		return -1;
	if (cgroup_parse_u64(buf, bytes) == -1) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int
cgroup_memory_anon(const struct cgroup *g, uint64_t *bytes)
{
	char buf[8192];
	uint64_t huge;

	if (g == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	if (pread_all(g->stat_fd, buf, sizeof buf) == -1)
		return -1;
	if (g->root->version == CG_V2) {
		if (cgroup_parse_keyed(buf, "anon", bytes) == -1)
			goto bad;
		return 0;
	}
	/* v1 "rss" leaves out sub-groups and transparent huge pages. */
	if (cgroup_parse_keyed(buf, "total_rss", bytes) == -1)
		goto bad;
	if (cgroup_parse_keyed(buf, "total_rss_huge", &huge) == 0)
		*bytes += huge;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int
cgroup_set_high(struct cgroup *g, uint64_t bytes)
{
	if (g == NULL || g->root->version != CG_V2) {
		errno = EOPNOTSUPP;
		return -1;
	}
	/* An armed use_high threshold owns memory.high until disarmed. */
	if (!(g->use_high && g->threshold_bytes != 0) &&
	    write_bytes_at(g->dir_fd, "memory.high", bytes, false) == -1)
		return -1;
	g->high_bytes = bytes;
	return 0;
}

int
cgroup_set_max(struct cgroup *g, uint64_t bytes)
{
	bool is_v1;

	if (g == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	is_v1 = g->root->version == CG_V1;
	return write_bytes_at(g->dir_fd, is_v1 ? "memory.limit_in_bytes" :
	    "memory.max", bytes, is_v1);
}

int
cgroup_nprocs(const struct cgroup *g)
{
	ssize_t n;

	if (g == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	n = read_pids(g->dir_fd, NULL);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int
cgroup_kill(struct cgroup *g)
{
	if (g == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	return kill_group(g->dir_fd, g->root->version == CG_V2);
}

uint64_t
cgroup_oom_kills(const struct cgroup *g)
{
	char buf[512];
	uint64_t n;

	if (g == NULL || pread_all(g->events_fd, buf, sizeof buf) == -1 ||
	    cgroup_parse_keyed(buf, "oom_kill", &n) == -1)
		return 0;
	return n;
}

/* Threshold events */

static uint64_t
high_events(const struct cgroup *g)
{
	char buf[512];
	uint64_t n;

	if (pread_all(g->events_fd, buf, sizeof buf) == -1 ||
	    cgroup_parse_keyed(buf, "high", &n) == -1)
		return 0;
	return n;
}

static void
disarm(struct cgroup *g)
{
	struct cgroup_root *r = g->root;

	close_fd(&g->event_fd);
	if (g->watch_wd != -1 && r->inotify_fd != -1)
		inotify_rm_watch(r->inotify_fd, g->watch_wd);
	g->watch_wd = -1;
	g->is_notified = false;
	if (g->use_high && g->threshold_bytes != 0)
		(void)write_bytes_at(g->dir_fd, "memory.high", g->high_bytes,
		    false);
	g->use_high = false;
	g->threshold_bytes = 0;
}

static int
arm_v1(struct cgroup *g, uint64_t bytes)
{
	char text[80];
	int efd, saved;

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd == -1)
		return -1;
	snprintf(text, sizeof text, "%d %d %llu", efd, g->usage_fd,
	    (unsigned long long)bytes);
	if (write_at(g->dir_fd, "cgroup.event_control", text) == -1) {
		saved = errno;
		close(efd);
		errno = saved;
		return -1;
	}
	/* Closing the previous eventfd unregisters its threshold. */
	disarm(g);
	g->event_fd = efd;
	g->threshold_bytes = bytes;
	return efd;
}

static int
arm_v2(struct cgroup *g, uint64_t bytes, bool use_high)
{
	struct cgroup_root *r = g->root;
	char *path;
	int wd;

	if (r->inotify_fd == -1) {
		r->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (r->inotify_fd == -1)
			return -1;
	}
	xasprintf(&path, "%s/memory.events", g->path);
	wd = inotify_add_watch(r->inotify_fd, path, IN_MODIFY);
	free(path);
	if (wd == -1)
		return -1;
	if (use_high && write_bytes_at(g->dir_fd, "memory.high", bytes,
	    false) == -1) {
		if (wd != g->watch_wd)
			inotify_rm_watch(r->inotify_fd, wd);
		return -1;
	}
	if (g->use_high && !use_high)
		(void)write_bytes_at(g->dir_fd, "memory.high", g->high_bytes,
		    false);
	g->watch_wd = wd;
	g->use_high = use_high;
	g->threshold_bytes = bytes;
	g->high_events = high_events(g);
	return r->inotify_fd;
}

int
cgroup_threshold_arm(struct cgroup *g, uint64_t bytes, bool use_high)
{
	if (g == NULL || g->root->version == CG_NONE) {
		errno = ENOTSUP;
		return -1;
	}
	if (bytes == 0) {
		disarm(g);
		errno = 0;
		return -1;
	}
	if (g->root->version == CG_V1)
		return arm_v1(g, bytes);
	return arm_v2(g, bytes, use_high);
}

/* v2: read every queued inotify event and mark the groups they name. */
static void
drain_inotify(struct cgroup_root *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(
	    struct inotify_event))));
	const struct inotify_event *ev;
	struct cgroup *g;
	ssize_t n, off;

	for (;;) {
		n = read(r->inotify_fd, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (off = 0; off < n; off += (ssize_t)sizeof *ev + ev->len) {
			ev = (const struct inotify_event *)(void *)(buf + off);
			/* On overflow (wd -1) every armed group may be due. */
			LIST_FOREACH(g, &r->groups, link)
				if (g->watch_wd != -1 && (g->watch_wd ==
				    ev->wd || (ev->mask & IN_Q_OVERFLOW)))
					g->is_notified = true;
		}
	}
}

bool
cgroup_threshold_consume(struct cgroup *g)
{
	uint64_t count, usage, high;

	if (g == NULL || g->threshold_bytes == 0)
		return false;
	if (g->root->version == CG_V1) {
		if (g->event_fd == -1 || read(g->event_fd, &count,
		    sizeof count) != (ssize_t)sizeof count)
			return false;
		/* v1 also signals downward crossings: not ours. */
		return cgroup_memory_usage(g, &usage) == 0 &&
		    usage >= g->threshold_bytes;
	}
	drain_inotify(g->root);
	if (!g->is_notified)
		return false;
	g->is_notified = false;
	high = high_events(g);
	if (g->use_high && high > g->high_events) {
		g->high_events = high;
		return true;
	}
	g->high_events = high;
	return cgroup_memory_usage(g, &usage) == 0 &&
	    usage >= g->threshold_bytes;
}
