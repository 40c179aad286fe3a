/* SPDX-License-Identifier: MIT */
/*
 * config.c - INI files to an immutable struct config snapshot.
 *
 * Loading is parse-then-apply. First inih reads the main file and then every
 * *.conf of pools_dir (sorted by name); a line reader of our own numbers the
 * lines, finds section headers and syntax errors, and the key handler only
 * records (file, line, section, key, value) entries, rejecting unknown keys
 * and keys set twice. Then the snapshot is built from one table (opts[]):
 * built-in defaults, written like user input and parsed by the same code,
 * are overridden by pool keys written in [recyclerd], which are overridden
 * in turn by each [pool NAME]. Checks that need more than one key, or the
 * system (users, groups, PATH, directories), run last. Every problem becomes
 * one diagnostic naming file:line, section and key; any diagnostic makes
 * config_load() return NULL.
 *
 * Nothing here touches a process or a socket.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <ini.h>

#include "log.h"
#include "units.h"
#include "util.h"

#define POOL_NAME_MAX	32
#define FDNAME_MAX	255
#define SUN_PATH_MAX	(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* --- The key table ------------------------------------------------------ */

enum opt_type {
	OPT_PATH,	/* char *; relative to the directory of its file */
	OPT_CTLGROUP,	/* control_group name, resolved into control_gid */
	OPT_LOGLEVEL,	/* int LOG_ERR..LOG_DEBUG */
	OPT_ENUM,	/* int-sized enum; names in opt->names */
	OPT_ARGV,	/* char **, shell-like words */
	OPT_ENV,	/* char ** of KEY=VALUE; merged by KEY */
	OPT_NAME,	/* char *: user or group, resolved by validation */
	OPT_DIR,	/* char *: an existing directory, stored absolute */
	OPT_UINT,	/* unsigned int, int or uint64_t within [min, max] */
	OPT_BYTES,	/* uint64_t */
	OPT_MSEC,	/* uint64_t within [min, max]; max 0 = no bound */
	OPT_PERCENT,	/* uint32_t parts per million, at most max */
	OPT_SIGNAL,	/* int */
	OPT_BOOL,	/* bool */
	OPT_RAPID,	/* rapid_fail and rapid_fail_window_ms */
	OPT_LISTEN,	/* struct listen_spec array and its count */
	OPT_CAPS,	/* uint64_t capability set, CAPS_ALL for all */
};

struct opt {
	const char	*section;	/* "recyclerd" or "pool" */
	const char	*name;
	enum opt_type	 type;
	size_t		 offset;	/* into struct config or pool_config */
	size_t		 size;		/* of that field */
	const char	*def;		/* as a user would write it; NULL = none */
	uint64_t	 min, max;
	const char *const *names;	/* OPT_ENUM */
	unsigned int	 flags;
#define OPT_REPEAT	0x1		/* may be written more than once */
#define OPT_MAIN_ONLY	0x2		/* only in the main file */
#define OPT_SOCKET	0x4		/* a unix socket path: length bound */
#define OPT_AUTO	0x8		/* OPT_UINT: "auto" stores 0 */
	/* What a reload that changes the key needs (enum config_change);
	 * a key with none of these respawns the workers, the safe choice. */
#define OPT_CHANGE_RESPAWN 0x0
#define OPT_CHANGE_NONE	0x10
#define OPT_CHANGE_LIMITS 0x20
#define OPT_CHANGE_RESTART 0x40
};

#define CHANGE_OF(flags) \
	((flags) & OPT_CHANGE_RESTART ? CHANGE_RESTART : \
	 (flags) & OPT_CHANGE_LIMITS ? CHANGE_LIMITS : \
	 (flags) & OPT_CHANGE_NONE ? CHANGE_NONE : CHANGE_RESPAWN)

static const char *const cgroup_names[] = {
	[CGROUP_AUTO] = "auto", [CGROUP_V2] = "v2", [CGROUP_V1] = "v1",
	[CGROUP_NONE] = "none", NULL,
};
static const char *const scope_names[] = {
	[SCOPE_TREE] = "tree", [SCOPE_CHILDREN] = "children", NULL,
};
static const char *const ready_names[] = {
	[READY_SPAWN] = "spawn", [READY_NOTIFY] = "notify", NULL,
};
static const char *const spawn_names[] = {
	[SPAWN_EXEC] = "exec", [SPAWN_TEMPLATE] = "template", NULL,
};
static const char *const metric_names[] = {
	[METRIC_RSS] = "rss", [METRIC_PSS] = "pss", [METRIC_USS] = "uss",
	[METRIC_CGROUP] = "cgroup", [METRIC_CGROUP_ANON] = "cgroup_anon", NULL,
};

#define D(f)	offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define P(f)	offsetof(struct pool_config, f), \
		sizeof(((struct pool_config *)0)->f)
#define HOUR_MS	(3600 * 1000)

/*
 * Every key, once: X(section, name, type, field, default, min, max, names,
 * flags). It expands into config_keys[] (public) and opts[] (the parser's),
 * so the two cannot drift apart. The OPT_CHANGE_* flag says what a reload
 * changing the key needs; config_diff_pool() and config_diff_daemon() walk
 * the table with it.
 */
#define CONFIG_OPTIONS(X) \
	X("recyclerd", "pools_dir", OPT_PATH, D(pools_dir), \
	    SYSCONFDIR "/recyclerd/pools.d", 0, 0, NULL, \
	    OPT_MAIN_ONLY | OPT_CHANGE_NONE) \
	X("recyclerd", "control_socket", OPT_PATH, D(control_socket), \
	    CONFIG_DEFAULT_SOCKET, 0, 0, NULL, \
	    OPT_SOCKET | OPT_CHANGE_RESTART) \
	X("recyclerd", "control_group", OPT_CTLGROUP, D(control_group), \
	    NULL, 0, 0, NULL, OPT_CHANGE_NONE) \
	X("recyclerd", "log_level", OPT_LOGLEVEL, D(log_level), "info", \
	    0, 0, NULL, OPT_CHANGE_NONE) \
	X("recyclerd", "cgroup", OPT_ENUM, D(cgroup), "auto", 0, 0, \
	    cgroup_names, OPT_CHANGE_RESTART) \
	X("pool", "command", OPT_ARGV, P(argv), NULL, 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "workers", OPT_UINT, P(workers), "1", 0, 10000, NULL, \
	    OPT_CHANGE_NONE) \
	X("pool", "user", OPT_NAME, P(user), NULL, 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "group", OPT_NAME, P(group), NULL, 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "directory", OPT_DIR, P(directory), NULL, 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "environment", OPT_ENV, P(env), NULL, 0, 0, NULL, \
	    OPT_REPEAT | OPT_CHANGE_RESPAWN) \
	X("pool", "no_new_privs", OPT_BOOL, P(no_new_privs), NULL, 0, 0, \
	    NULL, OPT_CHANGE_RESPAWN) \
	X("pool", "capabilities", OPT_CAPS, P(capabilities), NULL, 0, 0, \
	    NULL, OPT_CHANGE_RESPAWN) \
	X("pool", "ready", OPT_ENUM, P(ready), "spawn", 0, 0, ready_names, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "spawn", OPT_ENUM, P(spawn), "exec", 0, 0, spawn_names, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "ready_timeout", OPT_MSEC, P(ready_timeout_ms), "30s", \
	    1, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "memory_metric", OPT_ENUM, P(memory_metric), "pss", 0, 0, \
	    metric_names, OPT_CHANGE_NONE) \
	X("pool", "recycle_memory", OPT_BYTES, P(recycle_memory), "0", \
	    0, 0, NULL, OPT_CHANGE_LIMITS) \
	X("pool", "kill_memory", OPT_BYTES, P(kill_memory), "0", 0, 0, NULL, \
	    OPT_CHANGE_LIMITS) \
	X("pool", "max_tasks", OPT_UINT, P(max_tasks), "0", 0, UINT64_MAX, \
	    NULL, OPT_CHANGE_LIMITS) \
	X("pool", "max_lifetime", OPT_MSEC, P(max_lifetime_ms), "0", 0, 0, \
	    NULL, OPT_CHANGE_LIMITS) \
	X("pool", "jitter", OPT_PERCENT, P(jitter_ppm), "5%", 0, 500000, \
	    NULL, OPT_CHANGE_LIMITS) \
	X("pool", "drain_signal", OPT_SIGNAL, P(drain_signal), "SIGTERM", \
	    0, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "drain_timeout", OPT_MSEC, P(drain_timeout_ms), "10s", \
	    0, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "overlap", OPT_BOOL, P(overlap), "yes", 0, 0, NULL, \
	    OPT_CHANGE_NONE) \
	X("pool", "max_recycling", OPT_UINT, P(max_recycling), "auto", 1, \
	    10000, NULL, OPT_AUTO | OPT_CHANGE_NONE) \
	X("pool", "max_overshoot", OPT_PERCENT, P(max_overshoot_ppm), "25%", \
	    0, 1000000, NULL, OPT_CHANGE_NONE) \
	X("pool", "prespawn", OPT_BOOL, P(prespawn), "yes", 0, 0, NULL, \
	    OPT_CHANGE_NONE) \
	X("pool", "recycle_scope", OPT_ENUM, P(recycle_scope), "tree", 0, 0, \
	    scope_names, OPT_CHANGE_RESPAWN) \
	X("pool", "child_drain_signal", OPT_SIGNAL, P(child_drain_signal), \
	    "SIGTERM", 0, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "recycle_samples", OPT_UINT, P(recycle_samples), "2", \
	    1, 100, NULL, OPT_CHANGE_LIMITS) \
	X("pool", "restart_backoff", OPT_MSEC, P(restart_backoff_ms), "1s", \
	    1, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "min_uptime", OPT_MSEC, P(min_uptime_ms), "10s", 0, 0, \
	    NULL, OPT_CHANGE_NONE) \
	X("pool", "rapid_fail", OPT_RAPID, P(rapid_fail), "5/60s", 0, 0, \
	    NULL, OPT_CHANGE_NONE) \
	X("pool", "sample_interval", OPT_MSEC, P(sample_interval_ms), "1s", \
	    10, HOUR_MS, NULL, OPT_CHANGE_NONE) \
	X("pool", "shutdown_timeout", OPT_MSEC, P(shutdown_timeout_ms), \
	    "30s", 0, 0, NULL, OPT_CHANGE_NONE) \
	X("pool", "memory_high", OPT_BYTES, P(memory_high), "0", 0, 0, \
	    NULL, OPT_CHANGE_RESPAWN) \
	X("pool", "memory_max", OPT_BYTES, P(memory_max), "0", 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN) \
	X("pool", "pool_memory_max", OPT_BYTES, P(pool_memory_max), "0", \
	    0, 0, NULL, OPT_CHANGE_LIMITS) \
	X("pool", "pool_recycle_memory", OPT_BYTES, P(pool_recycle_memory), \
	    "0", 0, 0, NULL, OPT_CHANGE_LIMITS) \
	X("pool", "listen", OPT_LISTEN, P(listen), NULL, 0, 0, NULL, \
	    OPT_REPEAT | OPT_CHANGE_RESPAWN) \
	X("pool", "listen_backlog", OPT_UINT, P(listen_backlog), "1024", \
	    1, 65535, NULL, OPT_CHANGE_RESPAWN) \
	X("pool", "watchdog", OPT_MSEC, P(watchdog_ms), "0", 0, 0, NULL, \
	    OPT_CHANGE_RESPAWN)

#define KEY_ROW(sec, name, type, field, def, min, max, names, flags) \
	{ sec, name, def, CHANGE_OF(flags) },
#define OPT_ROW(sec, name, type, field, def, min, max, names, flags) \
	{ sec, name, type, field, def, min, max, names, flags },

const struct config_key config_keys[] = {
	CONFIG_OPTIONS(KEY_ROW)
	{ NULL, NULL, NULL, CHANGE_NONE },
};

static const struct opt opts[] = {
	CONFIG_OPTIONS(OPT_ROW)
};

#define NOPTS	nitems(opts)

static size_t
opt_index(const char *name)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return i;
	return NOPTS;
}

static bool
opt_is_pool(const struct opt *o)
{
	return strcmp(o->section, "pool") == 0;
}

/* --- What the files said ------------------------------------------------ */

struct src {
	char		*path;		/* as opened, for messages */
	char		*dir;		/* absolute directory of the file */
	bool		 is_main;
};

enum sec_kind { SEC_DAEMON, SEC_POOL, SEC_IGNORED };

struct entry {
	const struct section *sec;
	int		 line;
	size_t		 opt;		/* index into opts[] */
	char		*value;
};

struct section {
	const struct src *src;
	int		 line;		/* of the [header] */
	enum sec_kind	 kind;
	char		*title;		/* "recyclerd", "pool web": messages */
	char		*pool;		/* SEC_POOL: the name */
	struct entry	*entries;
	size_t		 n;
};

enum line_kind { LK_NONE, LK_KEY, LK_CONT, LK_SECTION, LK_BAD };

struct cfg_parse {
	struct diag	*diag;
	size_t		 diag_first;	/* messages before ours: not deduped */

	struct src	**srcs;
	size_t		 nsrcs;
	struct section	**secs;
	size_t		 nsecs;

	/* The file being read. */
	FILE		*fp;
	const struct src *src;
	int		 line;
	int		 first_syntax;	/* first line we called a syntax error */
	enum line_kind	 kind;		/* of the line inih is handling */
	bool		 has_prev_key;	/* inih would continue an indented line */
	struct section	*cur;		/* NULL before the first header */
	struct entry	*last;		/* entry a continuation line extends */
	char		*buf;
	size_t		 bufsize;
	struct stat	 main_st;	/* pools_dir may hold the main file */
};

/* Add a diagnostic unless the same text is already there (inherited keys). */
static void PRINTFLIKE(2, 3)
cfg_error(struct cfg_parse *p, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	size_t i;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	if (msg == NULL) {
		diag_add(p->diag, "out of memory");
		return;
	}
	for (i = p->diag_first; i < p->diag->n; i++) {
		if (strcmp(p->diag->msgs[i], msg) == 0) {
			free(msg);
			return;
		}
	}
	diag_add(p->diag, "%s", msg);
	free(msg);
}

/* A '#' after a blank: most likely a comment that inih kept in the value. */
static bool
has_hash_comment(const char *value)
{
	const char *h;

	for (h = strchr(value, '#'); h != NULL; h = strchr(h + 1, '#'))
		if (h > value && isspace((unsigned char)h[-1]))
			return true;
	return false;
}

/* "FILE:LINE: [section] key = value: why", citing the entry. */
static void
entry_error(struct cfg_parse *p, const struct entry *e, const char *why)
{
	cfg_error(p, "%s:%d: [%s] %s = %s: %s%s", e->sec->src->path, e->line,
	    e->sec->title, opts[e->opt].name, e->value, why,
	    has_hash_comment(e->value) ? "; note: inline comments start with "
	    "';', not '#'" : "");
}

/* --- Paths -------------------------------------------------------------- */

/* Collapse "//", "/./" and a trailing "/" or "/."; ".." is left alone. */
static char *
path_clean(char *path)
{
	char *r = path, *w = path;

	while (*r != '\0') {
		if (r[0] == '/' && (r[1] == '/' ||
		    (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	if (w > path + 1 && w[-1] == '/')
		w--;
	if (w == path)
		*w++ = path[0] == '/' ? '/' : '.';
	*w = '\0';
	return path;
}

/* rel made absolute against dir (itself absolute); caller frees. */
static char *
path_join(const char *dir, const char *rel)
{
	char *s;

	if (rel[0] == '/' || dir == NULL)
		s = xstrdup(rel);
	else
		xasprintf(&s, "%s/%s", dir, rel);
	return path_clean(s);
}

/* Absolute directory of a file path; caller frees. */
static char *
path_dir_abs(const char *path)
{
	const char *slash = strrchr(path, '/');
	char cwd[PATH_MAX], *dir, *abs;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else {
		dir = xstrdup(path);
		dir[slash - path] = '\0';
	}
	if (dir[0] == '/')
		return path_clean(dir);
	if (getcwd(cwd, sizeof cwd) == NULL)
		snprintf(cwd, sizeof cwd, ".");
	abs = path_join(cwd, dir);
	free(dir);
	return abs;
}

/* --- Users and groups --------------------------------------------------- */

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/*
 * Look a user (user: uid and primary gid) or a group (gid) up by name, or
 * by number; false if unknown. The buffer grows while the entry does not
 * fit (ERANGE: a group with many members), up to a few MiB.
 */
static bool
lookup_id(const char *name, bool user, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *pwres = NULL;
	struct group gr, *grres = NULL;
	bool num = all_digits(name);
	size_t size = 16384;
	uint32_t id = 0;
	char *buf;
	int rc;

	/* strtoul() would wrap 4294967296 to 0: root. */
	if (num && parse_id(name, &id) == -1)
		return false;
	for (;;) {
		buf = xmalloc(size);
		if (user && num)
			rc = getpwuid_r((uid_t)id, &pw, buf, size, &pwres);
		else if (user)
			rc = getpwnam_r(name, &pw, buf, size, &pwres);
		else if (num)
			rc = getgrgid_r((gid_t)id, &gr, buf, size, &grres);
		else
			rc = getgrnam_r(name, &gr, buf, size, &grres);
		if (rc != ERANGE || size > 1024 * 1024)
			break;
		free(buf);
		size *= 4;
	}
	if (pwres != NULL) {
		*uid = pw.pw_uid;
		*gid = pw.pw_gid;
	}
	if (grres != NULL)
		*gid = gr.gr_gid;
	free(buf);
	return pwres != NULL || grres != NULL;
}

static bool
lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	return lookup_id(name, true, uid, gid);
}

static bool
lookup_group(const char *name, gid_t *gid)
{
	return lookup_id(name, false, NULL, gid);
}

/* Why name is no user (what "user"/"group"): out of range, or unknown. */
static const char *
id_error(const char *name, bool user)
{
	uint32_t id;

	if (all_digits(name) && parse_id(name, &id) == -1)
		return user ? "user id out of range (0 to 4294967294)" :
		    "group id out of range (0 to 4294967294)";
	return user ? "unknown user" : "unknown group";
}

/* --- Shell-like words --------------------------------------------------- */

/*
 * Split like a shell without a shell: blanks separate words, '...' is
 * literal, "..." honours \" and \\ only, a backslash outside quotes takes
 * the next character literally. No variables, globs or operators.
 */
static const char *
split_words(const char *s, char ***out)
{
	char **v = NULL, *w = xmalloc(strlen(s) + 1);
	size_t n = 0, len = 0;
	bool in_word = false;
	const char *why = NULL;

	for (; *s != '\0' && why == NULL; s++) {
		if (isspace((unsigned char)*s)) {
			if (in_word) {
				w[len] = '\0';
				v = xrealloc(v, (n + 2) * sizeof *v);
				v[n++] = xstrdup(w);
				len = 0;
				in_word = false;
			}
			continue;
		}
		in_word = true;
		if (*s == '\'') {
			for (s++; *s != '\0' && *s != '\''; s++)
				w[len++] = *s;
			if (*s == '\0')
				why = "unterminated quote";
		} else if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++) {
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				w[len++] = *s;
			}
			if (*s == '\0')
				why = "unterminated quote";
		} else if (*s == '\\') {
			if (s[1] == '\0')
				why = "backslash at the end of the value";
			else
				w[len++] = *++s;
		} else
			w[len++] = *s;
		if (why != NULL)
			s--;	/* the loop's s++ must not step past the NUL */
	}
	if (why == NULL && in_word) {
		w[len] = '\0';
		v = xrealloc(v, (n + 2) * sizeof *v);
		v[n++] = xstrdup(w);
	}
	free(w);
	if (why != NULL) {
		if (v != NULL)
			v[n] = NULL;
		strv_free(v);
		return why;
	}
	if (v == NULL)
		v = xcalloc(1, sizeof *v);
	v[n] = NULL;
	*out = v;
	return NULL;
}

static bool
env_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (i = 1; i < len; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* Set KEY=VALUE in a strv, replacing an earlier KEY. Takes kv. */
static char **
env_set(char **env, char *kv)
{
	size_t n = strv_len(env), i, klen = strcspn(kv, "=");

	for (i = 0; i < n; i++) {
		if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=') {
			free(env[i]);
			env[i] = kv;
			return env;
		}
	}
	env = xrealloc(env, (n + 2) * sizeof *env);
	env[n] = kv;
	env[n + 1] = NULL;
	return env;
}

/* --- listen addresses --------------------------------------------------- */

static void
listen_spec_fini(struct listen_spec *ls)
{
	free(ls->text);
	free(ls->name);
	free(ls->host);
	free(ls->owner);
	memset(ls, 0, sizeof *ls);
}

static void
listen_spec_copy(struct listen_spec *dst, const struct listen_spec *src)
{
	*dst = *src;
	dst->text = src->text ? xstrdup(src->text) : NULL;
	dst->name = src->name ? xstrdup(src->name) : NULL;
	dst->host = src->host ? xstrdup(src->host) : NULL;
	dst->owner = src->owner ? xstrdup(src->owner) : NULL;
}

/* A LISTEN_FDNAMES entry, as systemd accepts it (no ':' separator). */
static bool
fdname_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > FDNAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (*s < ' ' || *s >= 127 || *s == ':')
			return false;
	return true;
}

static const char *
parse_port(const char *s, uint16_t *port)
{
	uint64_t v;

	if (units_parse_uint(s, 0, 65535, &v) != NULL)
		return "invalid port (0..65535)";
	*port = (uint16_t)v;
	return NULL;
}

/* "tcp:HOST:PORT", "tcp:PORT", "tcp6:[ADDR]:PORT" or "tcp6:PORT". */
static const char *
parse_tcp(char *rest, bool v6, struct listen_spec *ls)
{
	struct in6_addr a6;
	struct in_addr a4;
	char *colon, *host;
	const char *p;

	ls->kind = LISTEN_TCP;
	ls->family = v6 ? AF_INET6 : AF_UNSPEC;
	if (all_digits(rest))
		return parse_port(rest, &ls->port);
	if ((colon = strrchr(rest, ':')) == NULL)
		return "missing port (tcp:HOST:PORT)";
	*colon = '\0';
	host = rest;
	if (host[0] == '[') {
		if (colon == host + 1 || colon[-1] != ']')
			return "invalid IPv6 address (tcp6:[ADDR]:PORT)";
		colon[-1] = '\0';
		host++;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "invalid IPv6 address (tcp6:[ADDR]:PORT)";
		ls->family = AF_INET6;
	} else if (v6) {
		return "IPv6 address needs brackets (tcp6:[ADDR]:PORT)";
	} else if (*host == '\0') {
		return "missing host (tcp:HOST:PORT or tcp:PORT)";
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		ls->family = AF_INET;
	} else {
		for (p = host; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '.')
				return strchr(host, ':') != NULL ?
				    "IPv6 address needs tcp6:[ADDR]:PORT" :
				    "invalid host name";
	}
	ls->host = xstrdup(host);
	return parse_port(colon + 1, &ls->port);
}

/* ",name=web", ",mode=0660", ",owner=www-data:www-data". */
static const char *
parse_listen_option(char *opt, struct listen_spec *ls)
{
	char *val = strchr(opt, '='), *grp;
	uid_t uid;
	gid_t gid;
	unsigned long mode;

	if (val == NULL)
		return "invalid option (name=, mode= or owner=)";
	*val++ = '\0';
	if (strcmp(opt, "name") == 0) {
		if (!fdname_valid(val))
			return "invalid name (1..255 printable characters, "
			    "no ':')";
		free(ls->name);
		ls->name = xstrdup(val);
	} else if (strcmp(opt, "mode") == 0) {
		if (ls->kind != LISTEN_UNIX)
			return "mode= applies to unix: sockets only";
		if (*val == '\0' || strspn(val, "01234567") != strlen(val) ||
		    (mode = strtoul(val, NULL, 8)) > 0777)
			return "invalid mode (octal, e.g. 0660)";
		ls->mode = (mode_t)mode;
	} else if (strcmp(opt, "owner") == 0) {
		if (ls->kind != LISTEN_UNIX)
			return "owner= applies to unix: sockets only";
		if ((grp = strchr(val, ':')) != NULL)
			*grp = '\0';
		if (!lookup_user(val, &uid, &gid))
			return all_digits(val) ? "unknown user or id out of "
			    "range in owner=" : "unknown user in owner=";
		if (grp != NULL && !lookup_group(grp + 1, &gid))
			return all_digits(grp + 1) ? "unknown group or id out "
			    "of range in owner=" : "unknown group in owner=";
		if (grp != NULL)
			*grp = ':';
		free(ls->owner);
		ls->owner = xstrdup(val);
	} else
		return "unknown option (name=, mode= or owner=)";
	return NULL;
}

/* One listen word into ls (zeroed by the caller); why is written on error. */
static const char *
parse_listen_word(const char *word, const struct src *src,
    struct listen_spec *ls)
{
	char *copy = xstrdup(word), *addr, *next, *rest;
	const char *why = NULL;

	ls->text = xstrdup(word);
	next = copy;
	addr = strsep(&next, ",");
	if (strncmp(addr, "tcp:", 4) == 0)
		why = parse_tcp(addr + 4, false, ls);
	else if (strncmp(addr, "tcp6:", 5) == 0)
		why = parse_tcp(addr + 5, true, ls);
	else if (strncmp(addr, "unix:", 5) == 0) {
		rest = addr + 5;
		ls->kind = LISTEN_UNIX;
		ls->family = AF_UNIX;
		if (*rest == '\0')
			why = "missing socket path (unix:PATH)";
		else {
			ls->host = path_join(src ? src->dir : NULL, rest);
			if (strlen(ls->host) > SUN_PATH_MAX)
				why = "socket path too long";
		}
	} else if (strncmp(addr, "systemd:", 8) == 0) {
		ls->kind = LISTEN_SYSTEMD;
		ls->family = AF_UNSPEC;
		if (!fdname_valid(addr + 8))
			why = "invalid systemd socket name (systemd:NAME)";
		else
			ls->name = xstrdup(addr + 8);
	} else
		why = "unknown address type (use tcp:, tcp6:, unix: or systemd:)";
	while (why == NULL && next != NULL)
		why = parse_listen_option(strsep(&next, ","), ls);
	free(copy);
	return why;
}

/* --- Pool configurations ------------------------------------------------ */

static void
pool_config_free(struct pool_config *pc)
{
	size_t i;

	if (pc == NULL)
		return;
	free(pc->name);
	free(pc->file);
	strv_free(pc->argv);
	strv_free(pc->env);
	free(pc->user);
	free(pc->group);
	free(pc->directory);
	for (i = 0; i < pc->nlisten; i++)
		listen_spec_fini(&pc->listen[i]);
	free(pc->listen);
	free(pc);
}

static struct pool_config *
pool_config_dup(const struct pool_config *src)
{
	struct pool_config *pc = xmalloc(sizeof *pc);
	size_t i;

	*pc = *src;
	pc->name = src->name ? xstrdup(src->name) : NULL;
	pc->file = src->file ? xstrdup(src->file) : NULL;
	pc->argv = strv_dup(src->argv);
	pc->env = strv_dup(src->env);
	pc->user = src->user ? xstrdup(src->user) : NULL;
	pc->group = src->group ? xstrdup(src->group) : NULL;
	pc->directory = src->directory ? xstrdup(src->directory) : NULL;
	pc->listen = src->nlisten ?
	    xcalloc(src->nlisten, sizeof *pc->listen) : NULL;
	for (i = 0; i < src->nlisten; i++)
		listen_spec_copy(&pc->listen[i], &src->listen[i]);
	return pc;
}

/* --- Applying one value ------------------------------------------------- */

/* Why a number is out of [min, max], in the units of the key. */
static const char *
range_why(const struct opt *o, char *why, size_t size)
{
	char lo[32], hi[32];

	if (o->type == OPT_MSEC) {
		units_format_duration(o->min, lo, sizeof lo);
		units_format_duration(o->max, hi, sizeof hi);
		if (o->max == 0)
			snprintf(why, size, "must be at least %s", lo);
		else
			snprintf(why, size, "out of range (%s..%s)", lo, hi);
		if (o->min == 1 && o->max == 0)
			snprintf(why, size, "must be greater than 0");
	} else
		snprintf(why, size, "out of range (%llu..%llu%s)",
		    (unsigned long long)o->min, (unsigned long long)o->max,
		    (o->flags & OPT_AUTO) ? ", or auto" : "");
	return why;
}

static void
store_uint(void *field, size_t size, uint64_t v)
{
	unsigned int u = (unsigned int)v;

	if (size == sizeof(uint64_t))
		memcpy(field, &v, sizeof v);
	else
		memcpy(field, &u, sizeof u);	/* int fields hold small values */
}

/* Names recyclerd sets for each worker: environment= may not. */
static bool
env_name_reserved(const char *kv)
{
	static const char *const reserved[] = { "NOTIFY_SOCKET=", "LISTEN_",
		"WATCHDOG_", "RECYCLERD_POOL=", "RECYCLERD_WORKER=" };
	size_t i;

	for (i = 0; i < nitems(reserved); i++)
		if (strncmp(kv, reserved[i], strlen(reserved[i])) == 0)
			return true;
	return false;
}

/* Capability names of <linux/capability.h>, by number. */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

/* "none", "all", or capability names (CAP_ optional, any case). */
static const char *
apply_caps(uint64_t *field, const char *value, char *why, size_t size)
{
	char **words;
	const char *err, *w;
	uint64_t set = 0;
	size_t i, c;

	if ((err = split_words(value, &words)) != NULL)
		return err;
	if (words[0] == NULL) {
		strv_free(words);
		return "empty value (use none, all or capability names such "
		    "as CAP_NET_BIND_SERVICE)";
	}
	if (words[1] == NULL && (strcasecmp(words[0], "none") == 0 ||
	    strcasecmp(words[0], "all") == 0)) {
		*field = strcasecmp(words[0], "all") == 0 ? CAPS_ALL : 0;
		strv_free(words);
		return NULL;
	}
	for (i = 0; words[i] != NULL; i++) {
		w = words[i];
		for (c = 0; c < nitems(cap_names); c++)
			if (strcasecmp(w, cap_names[c]) == 0 ||
			    strcasecmp(w, cap_names[c] + 4) == 0)
				break;
		if (c == nitems(cap_names)) {
			snprintf(why, size, "unknown capability %s (use none, "
			    "all or names such as CAP_NET_BIND_SERVICE)", w);
			strv_free(words);
			return why;
		}
		set |= (uint64_t)1 << c;
	}
	strv_free(words);
	*field = set;
	return NULL;
}

static const char *
apply_env(char ***field, const char *value)
{
	char **words, **env;
	const char *why;
	size_t i;

	if ((why = split_words(value, &words)) != NULL)
		return why;
	for (i = 0; words[i] != NULL; i++) {
		if (strchr(words[i], '=') == NULL ||
		    !env_name_valid(words[i], strcspn(words[i], "="))) {
			strv_free(words);
			return "expected NAME=VALUE words (NAME of letters, "
			    "digits and '_', not starting with a digit)";
		}
		if (env_name_reserved(words[i])) {
			strv_free(words);
			return "NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*, "
			    "RECYCLERD_POOL and RECYCLERD_WORKER are set by "
			    "recyclerd itself";
		}
	}
	env = strv_dup(*field);
	for (i = 0; words[i] != NULL; i++)
		env = env_set(env, xstrdup(words[i]));
	strv_free(words);
	if (env == NULL)
		env = xcalloc(1, sizeof *env);
	strv_free(*field);
	*field = env;
	return NULL;
}

static const char *
apply_listen(struct pool_config *pc, const char *value, const struct src *src,
    char *why, size_t size)
{
	struct listen_spec *ls;
	const char *err;
	char **words;
	size_t i, n, j;

	if ((err = split_words(value, &words)) != NULL)
		return err;
	n = strv_len(words);
	if (n == 0) {
		strv_free(words);
		return "empty value";
	}
	ls = xcalloc(n, sizeof *ls);
	for (i = 0; i < n; i++) {
		if ((err = parse_listen_word(words[i], src, &ls[i])) != NULL) {
			if (n == 1)
				snprintf(why, size, "%s", err);
			else
				snprintf(why, size, "%s: %s", words[i], err);
			for (j = 0; j <= i; j++)
				listen_spec_fini(&ls[j]);
			free(ls);
			strv_free(words);
			return why;
		}
	}
	strv_free(words);
	pc->listen = xrealloc(pc->listen, (pc->nlisten + n) * sizeof *ls);
	memcpy(pc->listen + pc->nlisten, ls, n * sizeof *ls);
	pc->nlisten += n;
	free(ls);
	return NULL;
}

/* "N" or "N/DURATION". */
static const char *
apply_rapid(struct pool_config *pc, const char *value)
{
	char *copy = xstrdup(value), *slash = strchr(copy, '/');
	uint64_t n, window_ms = 60 * 1000;
	const char *why = NULL;

	if (slash != NULL)
		*slash = '\0';
	/* N failures are counted in a ring of POOL_FAIL_RING entries. */
	if (units_parse_uint(copy, 0, 1000, &n) != NULL)
		why = "invalid rapid_fail (N from 0 to 1000, or N/DURATION, "
		    "e.g. 5/60s)";
	else if (slash != NULL &&
	    (units_parse_duration(slash + 1, &window_ms) != NULL ||
	    window_ms == 0))
		why = "invalid rapid_fail window (a duration above 0, "
		    "e.g. 5/60s)";
	free(copy);
	if (why != NULL)
		return why;
	pc->rapid_fail = (unsigned int)n;
	pc->rapid_fail_window_ms = window_ms;
	return NULL;
}

/*
 * Parse value for o and store it into base (struct config for daemon keys,
 * struct pool_config for pool keys). src is the file the value comes from
 * (NULL for built-in defaults). Returns NULL or why it is wrong (static, or
 * written into why).
 */
static const char *
opt_apply(const struct opt *o, void *base, const char *value,
    const struct src *src, char *why, size_t size)
{
	void *field = (char *)base + o->offset;
	struct config *cfg = base;
	struct stat st;
	const char *err;
	uint64_t u64;
	uint32_t u32;
	bool b;
	char **argv, *path;
	int i;

	switch (o->type) {
	case OPT_PATH:
		if (*value == '\0')
			return "empty path";
		path = path_join(src ? src->dir : NULL, value);
		if ((o->flags & OPT_SOCKET) && strlen(path) > SUN_PATH_MAX) {
			free(path);
			return "socket path too long";
		}
		free(*(char **)field);
		*(char **)field = path;
		return NULL;
	case OPT_CTLGROUP:
		if (!lookup_group(value, &cfg->control_gid))
			return id_error(value, false);
		free(cfg->control_group);
		cfg->control_group = xstrdup(value);
		return NULL;
	case OPT_LOGLEVEL:
		i = log_level_parse(value);
		if (i < LOG_ERR || i > LOG_DEBUG)
			return "unknown log level (use debug, info, notice, "
			    "warning or err)";
		cfg->log_level = i;
		return NULL;
	case OPT_ENUM:
		for (i = 0; o->names[i] != NULL; i++) {
			if (strcmp(value, o->names[i]) == 0) {
				memcpy(field, &i, sizeof i);
				return NULL;
			}
		}
		snprintf(why, size, "unknown value (use %s", o->names[0]);
		for (i = 1; o->names[i] != NULL; i++)
			snprintf(why + strlen(why), size - strlen(why), "%s%s",
			    o->names[i + 1] ? ", " : " or ", o->names[i]);
		snprintf(why + strlen(why), size - strlen(why), ")");
		return why;
	case OPT_ARGV:
		if ((err = split_words(value, &argv)) != NULL)
			return err;
		if (argv[0] == NULL) {
			strv_free(argv);
			return "empty command";
		}
		strv_free(*(char ***)field);
		*(char ***)field = argv;
		return NULL;
	case OPT_ENV:
		return apply_env(field, value);
	case OPT_NAME:
		if (*value == '\0')
			return "empty name";
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	case OPT_DIR:
		if (*value == '\0')
			return "empty path";
		path = path_join(src ? src->dir : NULL, value);
		if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
			snprintf(why, size, "%s: %s", path,
			    access(path, F_OK) == -1 ? strerror(errno) :
			    "not a directory");
			free(path);
			return why;
		}
		free(*(char **)field);
		*(char **)field = path;
		return NULL;
	case OPT_UINT:
		if ((o->flags & OPT_AUTO) && strcmp(value, "auto") == 0) {
			store_uint(field, o->size, 0);
			return NULL;
		}
		if ((err = units_parse_uint(value, 0, UINT64_MAX, &u64)) != NULL)
			return err;
		if (u64 < o->min || u64 > o->max)
			return range_why(o, why, size);
		store_uint(field, o->size, u64);
		return NULL;
	case OPT_BYTES:
		if ((err = units_parse_size(value, &u64)) != NULL)
			return err;
		memcpy(field, &u64, sizeof u64);
		return NULL;
	case OPT_MSEC:
		if ((err = units_parse_duration(value, &u64)) != NULL)
			return err;
		if (u64 < o->min || (o->max != 0 && u64 > o->max))
			return range_why(o, why, size);
		memcpy(field, &u64, sizeof u64);
		return NULL;
	case OPT_PERCENT:
		if ((err = units_parse_percent(value, &u32)) != NULL)
			return err;
		if (u32 > o->max) {
			snprintf(why, size, "out of range (0%%..%u%%)",
			    (unsigned int)(o->max / 10000));
			return why;
		}
		memcpy(field, &u32, sizeof u32);
		return NULL;
	case OPT_SIGNAL:
		if ((err = units_parse_signal(value, &i)) != NULL)
			return err;
		memcpy(field, &i, sizeof i);
		return NULL;
	case OPT_BOOL:
		if ((err = units_parse_bool(value, &b)) != NULL)
			return err;
		memcpy(field, &b, sizeof b);
		return NULL;
	case OPT_RAPID:
		return apply_rapid(base, value);
	case OPT_LISTEN:
		return apply_listen(base, value, src, why, size);
	case OPT_CAPS:
		return apply_caps(field, value, why, size);
	}
	return "internal error: unknown option type (this is a bug)";
}

/* Built-in defaults of one section kind, through the user-input parser. */
static void
apply_defaults(void *base, bool pool)
{
	char why[256];
	const char *err;
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		if (opts[i].def == NULL || opt_is_pool(&opts[i]) != pool)
			continue;
		err = opt_apply(&opts[i], base, opts[i].def, NULL, why,
		    sizeof why);
		if (err != NULL) {
			log_err("internal error: default %s = %s: %s "
			    "(this is a bug)", opts[i].name, opts[i].def, err);
			abort();
		}
	}
}

/* --- Reading files ------------------------------------------------------ */

/* Mirror of inih's inline-comment-aware search (';' after a blank). */
static const char *
find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	    !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static bool
pool_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > POOL_NAME_MAX || !isalnum((unsigned char)*s))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("_.-", *s) == NULL)
			return false;
	return true;
}

/* A [header] line: start a section, or an ignored one after an error. */
static void
section_begin(struct cfg_parse *p, const char *text, size_t len)
{
	struct section *s = xcalloc(1, sizeof *s), *other;
	const char *name;
	size_t i;

	s->src = p->src;
	s->line = p->line;
	while (len > 0 && isspace((unsigned char)*text))
		text++, len--;
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	s->title = strndup(text, len);
	if (s->title == NULL)
		s->title = xstrdup("");
	s->kind = SEC_IGNORED;
	if (strcmp(s->title, "recyclerd") == 0)
		s->kind = SEC_DAEMON;
	else if (strncmp(s->title, "pool", 4) == 0 &&
	    (s->title[4] == '\0' || isspace((unsigned char)s->title[4]))) {
		for (name = s->title + 4; isspace((unsigned char)*name); name++)
			;
		if (!pool_name_valid(name))
			cfg_error(p, "%s:%d: [%s]: invalid pool name (1 to %d "
			    "letters, digits, '_', '.' or '-', starting with a "
			    "letter or digit)", p->src->path, p->line, s->title,
			    POOL_NAME_MAX);
		else
			s->kind = SEC_POOL;
		/* One space, whatever was written, so messages read alike. */
		xasprintf(&s->pool, "%s", name);
		free(s->title);
		xasprintf(&s->title, "pool %s", s->pool);
	} else
		cfg_error(p, "%s:%d: [%s]: unknown section", p->src->path,
		    p->line, s->title);
	for (i = 0; s->kind == SEC_POOL && i < p->nsecs; i++) {
		other = p->secs[i];
		if (other->kind == SEC_POOL && strcmp(other->pool, s->pool) == 0) {
			cfg_error(p, "%s:%d: [%s]: pool defined twice (first at "
			    "%s:%d)", p->src->path, p->line, s->title,
			    other->src->path, other->line);
			s->kind = SEC_IGNORED;
		}
	}
	p->secs = xrealloc(p->secs, (p->nsecs + 1) * sizeof *p->secs);
	p->secs[p->nsecs++] = s;
	p->cur = s;
	p->last = NULL;
}

/*
 * Classify a line the way inih will, before inih sees it: section headers
 * open our sections (inih does not report them), indented lines after a key
 * continue it, and lines inih will reject are reported here, every one of
 * them, with their line number.
 */
static void
classify_line(struct cfg_parse *p, const char *line)
{
	const char *start = line, *end;
	size_t len;

	if (p->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (isspace((unsigned char)*start))
		start++;
	len = strlen(start);
	while (len > 0 && isspace((unsigned char)start[len - 1]))
		len--;
	if (len == 0 || *start == ';' || *start == '#') {
		p->kind = LK_NONE;
	} else if (p->has_prev_key && start > line) {
		p->kind = LK_CONT;
	} else if (*start == '[') {
		end = find_chars_or_comment(start + 1, "]");
		if (*end == ']') {
			p->kind = LK_SECTION;
			p->has_prev_key = false;
			section_begin(p, start + 1, (size_t)(end - start - 1));
		} else
			p->kind = LK_BAD;
	} else {
		end = find_chars_or_comment(start, "=:");
		if (*end == '=' || *end == ':') {
			p->kind = LK_KEY;
			while (end > start && isspace((unsigned char)end[-1]))
				end--;
			p->has_prev_key = end > start;
		} else
			p->kind = LK_BAD;
	}
	if (p->kind == LK_BAD) {
		cfg_error(p, "%s:%d: syntax error (expected [section] or "
		    "key = value)", p->src->path, p->line);
		if (p->first_syntax == 0)
			p->first_syntax = p->line;
	}
}

/* inih reader: one line per call, numbered and classified. */
static char *
cfg_read_line(char *buf, int size, void *stream)
{
	struct cfg_parse *p = stream;
	ssize_t len = getline(&p->buf, &p->bufsize, p->fp);

	if (len == -1)
		return NULL;
	p->line++;
	/*
	 * inih cannot take more than size - 2 bytes with the newline: at
	 * most size - 3 characters before it (197 with inih's 200).
	 */
	if (len > size - 2) {
		cfg_error(p, "%s:%d: line too long (more than %d characters)",
		    p->src->path, p->line, size - 3);
		p->kind = LK_NONE;
		snprintf(buf, (size_t)size, "\n");
		return buf;
	}
	memcpy(buf, p->buf, (size_t)len + 1);
	classify_line(p, buf);
	return buf;
}

/* The entry already holding key o in this section (all of [recyclerd]). */
static const struct entry *
find_entry(const struct cfg_parse *p, const struct section *s, size_t o)
{
	const struct section *t;
	size_t i, j;

	for (i = 0; i < p->nsecs; i++) {
		t = p->secs[i];
		if (t != s && !(s->kind == SEC_DAEMON && t->kind == SEC_DAEMON))
			continue;
		for (j = 0; j < t->n; j++)
			if (t->entries[j].opt == o)
				return &t->entries[j];
	}
	return NULL;
}

/* inih handler: records the entry; problems are ours to report, not inih's. */
static int
cfg_on_key(void *user, const char *section, const char *name,
    const char *value)
{
	struct cfg_parse *p = user;
	struct section *s = p->cur;
	const struct entry *prev;
	struct entry *e;
	char *joined;
	size_t o;

	(void)section;		/* ours is not truncated at 50 bytes */
	if (p->kind == LK_CONT) {
		if (p->last != NULL) {
			xasprintf(&joined, "%s %s", p->last->value, value);
			free(p->last->value);
			p->last->value = joined;
		}
		return 1;
	}
	p->last = NULL;
	if (s == NULL) {
		cfg_error(p, "%s:%d: %s = %s: key outside any section (add "
		    "[recyclerd] or [pool NAME] above it)", p->src->path,
		    p->line, name, value);
		return 1;
	}
	if (s->kind == SEC_IGNORED)
		return 1;
	if ((o = opt_index(name)) == NOPTS) {
		cfg_error(p, "%s:%d: [%s] %s: unknown key", p->src->path,
		    p->line, s->title, name);
		return 1;
	}
	if (s->kind == SEC_POOL && !opt_is_pool(&opts[o])) {
		cfg_error(p, "%s:%d: [%s] %s = %s: only allowed in [recyclerd]",
		    p->src->path, p->line, s->title, name, value);
		return 1;
	}
	if ((opts[o].flags & OPT_MAIN_ONLY) && !p->src->is_main) {
		cfg_error(p, "%s:%d: [%s] %s = %s: only allowed in the main "
		    "file", p->src->path, p->line, s->title, name, value);
		return 1;
	}
	if (!(opts[o].flags & OPT_REPEAT) && (prev = find_entry(p, s, o))) {
		if (prev->sec->src == p->src)
			cfg_error(p, "%s:%d: [%s] %s = %s: already set at line "
			    "%d", p->src->path, p->line, s->title, name, value,
			    prev->line);
		else
			cfg_error(p, "%s:%d: [%s] %s = %s: already set at "
			    "%s:%d", p->src->path, p->line, s->title, name,
			    value, prev->sec->src->path, prev->line);
		return 1;
	}
	s->entries = xrealloc(s->entries, (s->n + 1) * sizeof *s->entries);
	e = &s->entries[s->n++];
	e->sec = s;
	e->line = p->line;
	e->opt = o;
	e->value = xstrdup(value);
	p->last = e;
	return 1;
}

/* --- Who may change the configuration ------------------------------------ */

/*
 * As sshd does: the configuration names the programs that run as root and
 * as other users, so a file, or a directory above it, that a user other
 * than root (or the daemon's own uid) could change is refused. A directory
 * writable by group or others passes only if it is sticky and root's
 * (/tmp): others can neither rename nor remove what is in it. Checked on
 * the opened descriptor (fstat), so the file read is the file checked.
 */
static bool
perm_ok(struct cfg_parse *p, const char *path, const struct stat *st,
    bool is_dir)
{
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		cfg_error(p, "%s: owned by uid %lu, neither root nor "
		    "recyclerd's: refusing a configuration another user could "
		    "change", path, (unsigned long)st->st_uid);
		return false;
	}
	if ((st->st_mode & 022) != 0 && !(is_dir && st->st_uid == 0 &&
	    (st->st_mode & S_ISVTX) != 0)) {
		cfg_error(p, "%s: writable by %s (mode %04o): refusing a "
		    "configuration another user could change", path,
		    (st->st_mode & 022) == 022 ? "its group and others" :
		    st->st_mode & 020 ? "its group" : "others",
		    (unsigned int)(st->st_mode & 07777));
		return false;
	}
	return true;
}

/* Every directory above path (links resolved: the real ones). */
static bool
perm_parents_ok(struct cfg_parse *p, const char *path)
{
	char *real, *slash;
	struct stat st;
	bool ok = true;

	if ((real = realpath(path, NULL)) == NULL)
		return true;		/* opening it reports the error */
	while (ok && (slash = strrchr(real, '/')) != NULL) {
		slash[slash == real ? 1 : 0] = '\0';
		if (stat(real, &st) == 0)
			ok = perm_ok(p, real, &st, true);
		if (slash == real)
			break;
	}
	free(real);
	return ok;
}

/* Read one file into sections and entries; false if it could not be read. */
static bool
cfg_parse_file(struct cfg_parse *p, const char *path, bool is_main)
{
	struct src *src = xcalloc(1, sizeof *src);
	struct stat st;
	int rc;

	src->path = xstrdup(path);
	src->dir = path_dir_abs(path);
	src->is_main = is_main;
	p->srcs = xrealloc(p->srcs, (p->nsrcs + 1) * sizeof *p->srcs);
	p->srcs[p->nsrcs++] = src;

	if ((p->fp = fopen(path, "re")) == NULL) {
		cfg_error(p, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fileno(p->fp), &st) == -1 || !perm_ok(p, path, &st, false) ||
	    !perm_parents_ok(p, path)) {
		fclose(p->fp);
		p->fp = NULL;
		return false;
	}
	if (is_main)
		p->main_st = st;
	p->src = src;
	p->line = 0;
	p->first_syntax = 0;
	p->has_prev_key = false;
	p->cur = NULL;
	p->last = NULL;
	rc = ini_parse_stream(cfg_read_line, p, cfg_on_key, p);
	if (ferror(p->fp))
		cfg_error(p, "%s: read error: %s", path, strerror(errno));
	fclose(p->fp);
	p->fp = NULL;
	/* Our classifier should have seen it; never let one slip by. */
	if (rc > 0 && (p->first_syntax == 0 || rc < p->first_syntax))
		cfg_error(p, "%s:%d: syntax error", path, rc);
	else if (rc < 0)
		cfg_error(p, "%s: cannot parse (inih error %d)", path, rc);
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.conf of pools_dir, sorted by name; a missing directory is empty. */
static void
cfg_parse_dir(struct cfg_parse *p, const char *dir, const struct entry *where)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL, *path;
	size_t n = 0, i, len;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return;
		if (where != NULL)
			entry_error(p, where, strerror(errno));
		else
			cfg_error(p, "pools_dir %s: %s", dir, strerror(errno));
		return;
	}
	if (fstat(dirfd(d), &st) == -1 || !perm_ok(p, dir, &st, true) ||
	    !perm_parents_ok(p, dir)) {
		closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, cmp_str);
	for (i = 0; i < n; i++) {
		xasprintf(&path, "%s/%s", strcmp(dir, "/") ? dir : "", names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    !(st.st_dev == p->main_st.st_dev &&
		    st.st_ino == p->main_st.st_ino))
			cfg_parse_file(p, path, false);
		free(path);
		free(names[i]);
	}
	free(names);
}

/* --- Building the snapshot ---------------------------------------------- */

/* Where each key of a pool got its value; NULL = built-in default. */
struct pool_build {
	struct pool_config	*pc;
	const struct section	*sec;		/* the [pool] or [recyclerd] */
	const struct entry	*where[NOPTS];
	bool			 failed[NOPTS];	/* a value was refused */
};

static void
pool_error(struct cfg_parse *p, const struct pool_build *b, size_t o,
    const char *why)
{
	if (b->where[o] != NULL)
		entry_error(p, b->where[o], why);
	else
		cfg_error(p, "%s:%d: [%s] %s = %s: %s", b->sec->src->path,
		    b->sec->line, b->sec->title, opts[o].name,
		    opts[o].def ? opts[o].def : "", why);
}

/* Apply the entries of one section into a daemon config and/or a pool. */
static void
apply_section(struct cfg_parse *p, const struct section *s,
    struct config *cfg, struct pool_build *b)
{
	bool listen_reset = false;
	const struct entry *e;
	const struct opt *o;
	const char *err;
	char why[512];
	size_t i;

	for (i = 0; i < s->n; i++) {
		e = &s->entries[i];
		o = &opts[e->opt];
		if (!opt_is_pool(o)) {
			if (cfg == NULL)
				continue;
			err = opt_apply(o, cfg, e->value, s->src, why,
			    sizeof why);
		} else {
			/* A pool's own listen list replaces the inherited one. */
			if (o->type == OPT_LISTEN && !listen_reset) {
				listen_reset = true;
				while (b->pc->nlisten > 0)
					listen_spec_fini(
					    &b->pc->listen[--b->pc->nlisten]);
			}
			err = opt_apply(o, b->pc, e->value, s->src, why,
			    sizeof why);
			if (err == NULL)
				b->where[e->opt] = e;
		}
		if (err != NULL) {
			entry_error(p, e, err);
			if (b != NULL)
				b->failed[e->opt] = true;
		}
	}
}

/* The command: argv[0] found in PATH, or an existing executable file. */
static void
check_command(struct cfg_parse *p, struct pool_build *b)
{
	struct pool_config *pc = b->pc;
	size_t o = opt_index("command");
	const char *path_env, *dir;
	char *paths, *next, *cand, why[PATH_MAX + 64];
	bool seen_nonexec = false;
	struct stat st;

	if (strchr(pc->argv[0], '/') != NULL) {
		cand = path_join(pc->directory, pc->argv[0]);
		if (stat(cand, &st) == -1)
			snprintf(why, sizeof why, "%s: %s", cand,
			    strerror(errno));
		else if (!S_ISREG(st.st_mode) || access(cand, X_OK) == -1)
			snprintf(why, sizeof why, "%s: not executable", cand);
		else
			why[0] = '\0';
		free(cand);
		if (why[0] != '\0')
			pool_error(p, b, o, why);
		return;
	}
	if ((path_env = getenv("PATH")) == NULL || *path_env == '\0')
		path_env = "/usr/local/bin:/usr/bin:/bin";
	paths = xstrdup(path_env);
	for (next = paths; next != NULL;) {
		dir = strsep(&next, ":");
		xasprintf(&cand, "%s/%s", *dir ? dir : ".", pc->argv[0]);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				free(pc->argv[0]);
				pc->argv[0] = cand;
				free(paths);
				return;
			}
			seen_nonexec = true;
		}
		free(cand);
	}
	free(paths);
	snprintf(why, sizeof why, "%s: %s", pc->argv[0], seen_nonexec ?
	    "not executable" : "command not found in PATH");
	pool_error(p, b, o, why);
}

/* Checks that need the whole pool, the daemon keys or the system. */
static void
validate_pool(struct cfg_parse *p, const struct config *cfg,
    struct pool_build *b, bool is_template)
{
	struct pool_config *pc = b->pc;
	static const char *const limits[] = {
		"memory_high", "memory_max", "pool_memory_max",
	};
	char why[256], a[32];
	size_t i, o;
	gid_t gid;

	/* After a refused command or directory, more would only be noise. */
	if (pc->argv == NULL) {
		if (!is_template && !b->failed[opt_index("command")])
			cfg_error(p, "%s:%d: [%s] command: required key missing",
			    b->sec->src->path, b->sec->line, b->sec->title);
	} else if (!b->failed[opt_index("directory")])
		check_command(p, b);
	if (pc->user != NULL && !lookup_user(pc->user, &pc->uid, &pc->gid))
		pool_error(p, b, opt_index("user"), id_error(pc->user, true));
	if (pc->group != NULL) {
		if (lookup_group(pc->group, &gid))
			pc->gid = gid;
		else
			pool_error(p, b, opt_index("group"),
			    id_error(pc->group, false));
	}
	/* Privilege defaults follow user=: a worker that runs as another
	 * user gains nothing (setuid binaries, file capabilities) on exec. */
	if (b->where[opt_index("no_new_privs")] == NULL)
		pc->no_new_privs = pc->user != NULL;
	if (b->where[opt_index("capabilities")] == NULL)
		pc->capabilities = pc->user != NULL && pc->uid != 0 ? 0 :
		    CAPS_ALL;
	if (pc->recycle_memory != 0 && pc->kill_memory != 0 &&
	    pc->kill_memory <= pc->recycle_memory) {
		snprintf(why, sizeof why, "must be greater than recycle_memory "
		    "(%s)", units_format_size(pc->recycle_memory, a, sizeof a));
		pool_error(p, b, opt_index("kill_memory"), why);
	}
	if (cfg->cgroup == CGROUP_NONE) {
		if (pc->memory_metric == METRIC_CGROUP ||
		    pc->memory_metric == METRIC_CGROUP_ANON)
			pool_error(p, b, opt_index("memory_metric"),
			    "needs cgroups, but [recyclerd] cgroup = none");
		for (i = 0; i < nitems(limits); i++) {
			o = opt_index(limits[i]);
			if (*(uint64_t *)((char *)pc + opts[o].offset) != 0)
				pool_error(p, b, o, "is a cgroup limit, but "
				    "[recyclerd] cgroup = none");
		}
	}
	/* A cgroup counter is the master's whole group, every child in it:
	 * no figure of one child. Refused rather than silently measured by
	 * another metric. */
	if (pc->recycle_scope == SCOPE_CHILDREN &&
	    (pc->memory_metric == METRIC_CGROUP ||
	    pc->memory_metric == METRIC_CGROUP_ANON))
		pool_error(p, b, opt_index("memory_metric"), "a cgroup "
		    "counter covers the master and all its children at once: "
		    "with recycle_scope = children use pss, uss or rss");
	for (i = 0; !is_template && i < pc->nlisten; i++)
		if (pc->listen[i].name == NULL)
			pc->listen[i].name = xstrdup(pc->name);
}

static int
cmp_section_pool(const void *a, const void *b)
{
	const struct section *x = *(const struct section *const *)a;
	const struct section *y = *(const struct section *const *)b;

	return strcmp(x->pool, y->pool);
}

/* Template, then one pool per [pool] section, sorted by name. */
static void
build_pools(struct cfg_parse *p, struct config *cfg,
    const struct pool_build *tmpl)
{
	struct section **pools = NULL;
	struct pool_build b;
	size_t n = 0, i;

	for (i = 0; i < p->nsecs; i++) {
		if (p->secs[i]->kind != SEC_POOL)
			continue;
		pools = xrealloc(pools, (n + 1) * sizeof *pools);
		pools[n++] = p->secs[i];
	}
	if (n > 0)
		qsort(pools, n, sizeof *pools, cmp_section_pool);
	cfg->pools = n ? xcalloc(n, sizeof *cfg->pools) : NULL;
	for (i = 0; i < n; i++) {
		b = *tmpl;
		b.pc = pool_config_dup(tmpl->pc);
		b.sec = pools[i];
		b.pc->name = xstrdup(pools[i]->pool);
		b.pc->file = xstrdup(pools[i]->src->path);
		b.pc->line = pools[i]->line;
		apply_section(p, pools[i], NULL, &b);
		validate_pool(p, cfg, &b, false);
		cfg->pools[cfg->npools++] = b.pc;
	}
	free(pools);
}

/*
 * Order our diagnostics as the files were read, by line: the build step
 * reports pool by pool, but a reader goes down the file.
 */
static void
cfg_sort_diag(struct cfg_parse *p)
{
	struct { char *msg; size_t file; long line; } *v, t;
	size_t n = p->diag->n - p->diag_first, i, j, len;
	const char *m;
	char *end;

	v = xcalloc(n ? n : 1, sizeof *v);
	for (i = 0; i < n; i++) {
		m = v[i].msg = p->diag->msgs[p->diag_first + i];
		v[i].file = p->nsrcs;		/* unplaced: last */
		for (j = 0; j < p->nsrcs; j++) {
			len = strlen(p->srcs[j]->path);
			if (strncmp(m, p->srcs[j]->path, len) != 0 ||
			    m[len] != ':')
				continue;
			v[i].file = j;
			v[i].line = strtol(m + len + 1, &end, 10);
			if (*end != ':')
				v[i].line = 0;
			break;
		}
	}
	for (i = 1; i < n; i++) {	/* insertion sort: stable, n is small */
		t = v[i];
		for (j = i; j > 0 && (v[j - 1].file > t.file ||
		    (v[j - 1].file == t.file && v[j - 1].line > t.line)); j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
	for (i = 0; i < n; i++)
		p->diag->msgs[p->diag_first + i] = v[i].msg;
	free(v);
}

static void
cfg_parse_fini(struct cfg_parse *p)
{
	struct section *s;
	size_t i, j;

	for (i = 0; i < p->nsecs; i++) {
		s = p->secs[i];
		for (j = 0; j < s->n; j++)
			free(s->entries[j].value);
		free(s->entries);
		free(s->title);
		free(s->pool);
		free(s);
	}
	free(p->secs);
	for (i = 0; i < p->nsrcs; i++) {
		free(p->srcs[i]->path);
		free(p->srcs[i]->dir);
		free(p->srcs[i]);
	}
	free(p->srcs);
	free(p->buf);
}

/* Read, check and build; NULL after adding diagnostics. */
struct config *
config_load(const char *path, struct diag *diag)
{
	struct cfg_parse p = { .diag = diag, .diag_first = diag->n };
	struct pool_build tmpl = { 0 };
	const struct entry *pools_dir = NULL;
	struct config *cfg;
	size_t i, o = opt_index("pools_dir");
	bool pools_dir_ok = true;
	char why[256];

	if (!cfg_parse_file(&p, path, true)) {
		cfg_parse_fini(&p);
		return NULL;
	}
	cfg = xcalloc(1, sizeof *cfg);
	cfg->refs = 1;
	cfg->path = xstrdup(path);
	apply_defaults(cfg, false);

	/* pools_dir first: it says which other files there are. */
	for (i = 0; i < p.nsecs && pools_dir == NULL; i++)
		if (p.secs[i]->kind == SEC_DAEMON)
			pools_dir = find_entry(&p, p.secs[i], o);
	if (pools_dir != NULL && opt_apply(&opts[o], cfg, pools_dir->value,
	    pools_dir->sec->src, why, sizeof why) != NULL)
		pools_dir_ok = false;	/* reported with the other keys */
	if (pools_dir_ok)
		cfg_parse_dir(&p, cfg->pools_dir, pools_dir);

	/* [recyclerd]: daemon keys, and the defaults of every pool. */
	tmpl.pc = xcalloc(1, sizeof *tmpl.pc);
	apply_defaults(tmpl.pc, true);
	for (i = 0; i < p.nsecs; i++) {
		if (p.secs[i]->kind != SEC_DAEMON)
			continue;
		tmpl.sec = p.secs[i];
		apply_section(&p, p.secs[i], cfg, &tmpl);
	}
	if (tmpl.sec != NULL)
		validate_pool(&p, cfg, &tmpl, true);
	build_pools(&p, cfg, &tmpl);
	pool_config_free(tmpl.pc);
	cfg_sort_diag(&p);
	cfg_parse_fini(&p);

	if (diag->n > p.diag_first) {
		config_unref(cfg);
		return NULL;
	}
	return cfg;
}

/* Take one more reference. */
struct config *
config_ref(struct config *cfg)
{
	cfg->refs++;
	return cfg;
}

/* Drop a reference; the last one frees the snapshot. */
void
config_unref(struct config *cfg)
{
	size_t i;

	if (cfg == NULL || --cfg->refs > 0)
		return;
	for (i = 0; i < cfg->npools; i++)
		pool_config_free(cfg->pools[i]);
	free(cfg->pools);
	free(cfg->path);
	free(cfg->pools_dir);
	free(cfg->control_socket);
	free(cfg->control_group);
	free(cfg);
}

/* The pool called name, or NULL. */
const struct pool_config *
config_find_pool(const struct config *cfg, const char *name)
{
	size_t lo = 0, hi = cfg->npools, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(name, cfg->pools[mid]->name);
		if (c == 0)
			return cfg->pools[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* --- Comparing pools ---------------------------------------------------- */

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
strv_eq(char *const *a, char *const *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return strv_len(a) == strv_len(b);
	for (i = 0; a[i] != NULL && b[i] != NULL; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return a[i] == NULL && b[i] == NULL;
}

static bool
listen_eq(const struct listen_spec *a, const struct listen_spec *b)
{
	return a->kind == b->kind && a->port == b->port &&
	    a->family == b->family && a->mode == b->mode &&
	    str_eq(a->name, b->name) && str_eq(a->host, b->host) &&
	    str_eq(a->owner, b->owner);
}

/*
 * Does key o differ between a and b, the struct config or struct
 * pool_config of its section? By the type of its field, with the fields
 * that come with it (uid and gid of user and group, the failure window of
 * rapid_fail, the count of listen).
 */
static bool
opt_differs(const struct opt *o, const void *a, const void *b)
{
	const char *fa = (const char *)a + o->offset;
	const char *fb = (const char *)b + o->offset;
	const struct pool_config *pa = a, *pb = b;
	size_t i;

	switch (o->type) {
	case OPT_PATH:
	case OPT_DIR:
		return !str_eq(*(char *const *)fa, *(char *const *)fb);
	case OPT_CTLGROUP:
		return !str_eq(*(char *const *)fa, *(char *const *)fb) ||
		    ((const struct config *)a)->control_gid !=
		    ((const struct config *)b)->control_gid;
	case OPT_ARGV:
	case OPT_ENV:
		return !strv_eq(*(char **const *)fa, *(char **const *)fb);
	case OPT_NAME:
		if (!str_eq(*(char *const *)fa, *(char *const *)fb))
			return true;
		/* Resolved ids: gid follows user when no group is set. */
		if (o->offset == offsetof(struct pool_config, user))
			return pa->user != NULL && (pa->uid != pb->uid ||
			    (pa->group == NULL && pa->gid != pb->gid));
		return pa->group != NULL && pa->gid != pb->gid;
	case OPT_RAPID:
		return pa->rapid_fail != pb->rapid_fail ||
		    pa->rapid_fail_window_ms != pb->rapid_fail_window_ms;
	case OPT_LISTEN:
		if (pa->nlisten != pb->nlisten)
			return true;
		for (i = 0; i < pa->nlisten; i++)
			if (!listen_eq(&pa->listen[i], &pb->listen[i]))
				return true;
		return false;
	case OPT_LOGLEVEL:
	case OPT_ENUM:
	case OPT_UINT:
	case OPT_BYTES:
	case OPT_MSEC:
	case OPT_PERCENT:
	case OPT_SIGNAL:
	case OPT_BOOL:
	case OPT_CAPS:
		/* A number or bool of o->size bytes: no padding inside. */
		return memcmp(fa, fb, o->size) != 0;
	}
	return true;	/* a new type compares as changed: respawn */
}

/*
 * The keys of section that differ between a and b, one per call from
 * opts[*pos] on; NULL at the end.
 */
static const struct opt *
opt_next_change(const char *section, const void *a, const void *b,
    size_t *pos)
{
	const struct opt *o;

	while (*pos < NOPTS) {
		o = &opts[(*pos)++];
		if (strcmp(o->section, section) == 0 && opt_differs(o, a, b))
			return o;
	}
	return NULL;
}

enum config_change
config_diff_pool(const struct pool_config *a, const struct pool_config *b,
    const char **first_key)
{
	enum config_change most = CHANGE_NONE, c;
	const struct opt *o;
	size_t pos = 0;

	*first_key = NULL;
	while ((o = opt_next_change("pool", a, b, &pos)) != NULL) {
		c = CHANGE_OF(o->flags);
		if (*first_key == NULL || c > most) {
			most = c;
			*first_key = o->name;
		}
	}
	return most;
}

const char *
config_diff_daemon(const struct config *a, const struct config *b,
    size_t *pos, enum config_change *change)
{
	const struct opt *o = opt_next_change("recyclerd", a, b, pos);

	if (o == NULL)
		return NULL;
	*change = CHANGE_OF(o->flags);
	return o->name;
}

bool
pool_config_equal(const struct pool_config *a, const struct pool_config *b)
{
	const char *key;

	(void)config_diff_pool(a, b, &key);
	return key == NULL && str_eq(a->name, b->name);
}

/* --- Names -------------------------------------------------------------- */

/* "rss", "pss", "uss", "cgroup", "cgroup_anon". */
const char *
mem_metric_name(enum mem_metric m)
{
	if ((size_t)m >= nitems(metric_names) - 1)
		return "?";
	return metric_names[m];
}

/* "spawn", "notify". */
const char *
ready_mode_name(enum ready_mode r)
{
	if ((size_t)r >= nitems(ready_names) - 1)
		return "?";
	return ready_names[r];
}

/* "auto", "v2", "v1", "none". */
const char *
cgroup_mode_name(enum cgroup_mode c)
{
	if ((size_t)c >= nitems(cgroup_names) - 1)
		return "?";
	return cgroup_names[c];
}

const char *
recycle_scope_name(enum recycle_scope s)
{
	if ((size_t)s >= nitems(scope_names) - 1)
		return "?";
	return scope_names[s];
}

/* --- The effective configuration, as a file ------------------------------ */

/* A word that split_words() gives back as it is. */
static void
dump_word(FILE *f, const char *w)
{
	const char *s;

	if (*w != '\0' && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789_@%+=:,./-") == strlen(w)) {
		fputs(w, f);
		return;
	}
	fputc('"', f);
	for (s = w; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void
dump_ms(FILE *f, uint64_t ms)
{
	if (ms == 0)
		fputc('0', f);
	else if (ms % 1000 == 0)
		fprintf(f, "%" PRIu64 "s", ms / 1000);
	else
		fprintf(f, "%" PRIu64 "ms", ms);
}

static uint64_t
load_uint(const void *field, size_t size)
{
	if (size == sizeof(uint64_t))
		return *(const uint64_t *)field;
	if (size == sizeof(int))
		return (uint64_t)*(const unsigned int *)field;
	return *(const uint16_t *)field;
}

/*
 * Write o's value in base as the parser reads it; false when it has none
 * (an unset name or path, an empty list). Lists go one line each, with
 * their key, so the caller prints a key only for single values.
 */
static bool
dump_value(FILE *f, const struct opt *o, const void *base)
{
	const void *field = (const char *)base + o->offset;
	const struct pool_config *pc = base;
	const struct config *cfg = base;
	char *const *v;
	uint64_t u, caps;
	uint32_t ppm;
	size_t i;
	int n;
	bool b;

	switch (o->type) {
	case OPT_PATH:
	case OPT_NAME:
	case OPT_DIR:
		if (*(char *const *)field == NULL)
			return false;
		dump_word(f, *(char *const *)field);
		return true;
	case OPT_CTLGROUP:
		if (cfg->control_group == NULL)
			return false;
		dump_word(f, cfg->control_group);
		return true;
	case OPT_LOGLEVEL:
		fputs(log_level_name(cfg->log_level), f);
		return true;
	case OPT_ENUM:
		memcpy(&n, field, sizeof n);
		fputs(o->names[n], f);
		return true;
	case OPT_ARGV:
		if ((v = *(char **const *)field) == NULL)
			return false;
		for (i = 0; v[i] != NULL; i++) {
			if (i > 0)
				fputc(' ', f);
			dump_word(f, v[i]);
		}
		return true;
	case OPT_ENV:
		if ((v = *(char **const *)field) == NULL || v[0] == NULL)
			return false;
		for (i = 0; v[i] != NULL; i++) {
			fprintf(f, "%s%s = ", i ? "\n" : "", o->name);
			dump_word(f, v[i]);
		}
		return true;
	case OPT_UINT:
		u = load_uint(field, o->size);
		if ((o->flags & OPT_AUTO) && u == 0)
			fputs("auto", f);
		else
			fprintf(f, "%" PRIu64, u);
		return true;
	case OPT_BYTES:
		memcpy(&u, field, sizeof u);
		fprintf(f, "%" PRIu64, u);
		return true;
	case OPT_MSEC:
		memcpy(&u, field, sizeof u);
		dump_ms(f, u);
		return true;
	case OPT_PERCENT:
		memcpy(&ppm, field, sizeof ppm);
		if (ppm % 10000 == 0)
			fprintf(f, "%u%%", ppm / 10000);
		else
			fprintf(f, "%g%%", ppm / 10000.0);
		return true;
	case OPT_SIGNAL:
		memcpy(&n, field, sizeof n);
		fputs(units_signal_name(n), f);
		return true;
	case OPT_BOOL:
		memcpy(&b, field, sizeof b);
		fputs(b ? "yes" : "no", f);
		return true;
	case OPT_RAPID:
		fprintf(f, "%u/", pc->rapid_fail);
		dump_ms(f, pc->rapid_fail_window_ms);
		return true;
	case OPT_LISTEN:
		for (i = 0; i < pc->nlisten; i++) {
			fprintf(f, "%s%s = ", i ? "\n" : "", o->name);
			dump_word(f, pc->listen[i].text);
		}
		return pc->nlisten > 0;
	case OPT_CAPS:
		memcpy(&caps, field, sizeof caps);
		if (caps == CAPS_ALL || caps == 0) {
			fputs(caps == 0 ? "none" : "all", f);
			return true;
		}
		for (n = 0, i = 0; i < nitems(cap_names); i++)
			if (caps & ((uint64_t)1 << i))
				fprintf(f, "%s%s", n++ ? " " : "", cap_names[i]);
		return true;
	}
	return false;
}

static char *
dump_string(const struct opt *o, const void *base, bool *set)
{
	char *text = NULL;
	size_t len;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	*set = dump_value(f, o, base);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Every key of one section kind, the built-in defaults marked. */
static void
dump_section(FILE *f, const void *base, const void *defaults, bool pool)
{
	char *v, *d;
	bool set, dset;
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		if (opt_is_pool(&opts[i]) != pool)
			continue;
		v = dump_string(&opts[i], base, &set);
		d = dump_string(&opts[i], defaults, &dset);
		if (v == NULL || d == NULL)
			;
		else if (!set)
			fprintf(f, "; %s = (unset)\n", opts[i].name);
		else if (opts[i].type == OPT_ENV || opts[i].type == OPT_LISTEN)
			fprintf(f, "%s\n", v);
		else if ((opts[i].flags & OPT_MAIN_ONLY) && !pool)
			fprintf(f, "; %s = %s  (the pools below were read from "
			    "it)\n", opts[i].name, v);
		else
			fprintf(f, "%s = %s%s\n", opts[i].name, v,
			    dset && strcmp(v, d) == 0 ? "  ; default" : "");
		free(v);
		free(d);
	}
}

int
config_dump(const struct config *cfg, const char *pool, FILE *f)
{
	struct config *dc = xcalloc(1, sizeof *dc);
	struct pool_config *dp = xcalloc(1, sizeof *dp);
	size_t i;

	apply_defaults(dc, false);
	apply_defaults(dp, true);
	fprintf(f, "; The effective configuration of recyclerd %s: every key, "
	    "\"; default\" after\n; the built-in defaults. `recyclerd -t -c "
	    "FILE` reads it back.\n", PACKAGE_VERSION);
	if (pool == NULL) {
		fputs("\n[recyclerd]\n", f);
		dump_section(f, cfg, dc, false);
	}
	for (i = 0; i < cfg->npools; i++) {
		if (pool != NULL && strcmp(cfg->pools[i]->name, pool) != 0)
			continue;
		fprintf(f, "\n[pool %s]\n", cfg->pools[i]->name);
		dump_section(f, cfg->pools[i], dp, true);
	}
	pool_config_free(dp);
	free(dc->pools_dir);
	free(dc->control_socket);
	free(dc->control_group);
	free(dc);
	return ferror(f) ? -1 : 0;
}
