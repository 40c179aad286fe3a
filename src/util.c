/* SPDX-License-Identifier: MIT */
/*
 * util.c - allocation that aborts on failure, the monotonic clock, string
 * vectors and descriptor helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static _Noreturn void
oom(void)
{
	static const char msg[] = "recyclerd: out of memory\n";

	if (write(STDERR_FILENO, msg, sizeof msg - 1) == -1) {
		/* nothing left to tell anyone */
	}
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *old, size_t size)
{
	void *p = realloc(old, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

int
xasprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(out, fmt, ap);
	va_end(ap);
	if (n == -1)
		oom();
	return n;
}

char *
vasprintf_or(const char *fallback, const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) == -1)
		s = xstrdup(fallback);
	return s;
}

int
dup_cloexec(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t
mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
strv_free(char **v)
{
	char **p;

	if (v == NULL)
		return;
	for (p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

size_t
strv_len(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

char **
strv_dup(char *const *v)
{
	size_t i, n;
	char **copy;

	if (v == NULL)
		return NULL;
	n = strv_len(v);
	copy = xcalloc(n + 1, sizeof *copy);
	for (i = 0; i < n; i++)
		copy[i] = xstrdup(v[i]);
	return copy;
}

ssize_t
read_fd_at0(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	if (size == 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		n = pread(fd, buf + len, size - 1 - len, (off_t)len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

int
proc_stat_ids(pid_t pid, pid_t *ppid, pid_t *pgrp, pid_t *sid)
{
	char path[64], buf[512], *p;
	int pp, pg, si, fd;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %d %d %d", &pp, &pg, &si) != 3)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	if (pgrp != NULL)
		*pgrp = pg;
	if (sid != NULL)
		*sid = si;
	return 0;
}

int
fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
parse_digits(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (n > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return 0;
}

int
parse_id(const char *s, uint32_t *id)
{
	uint64_t v;

	if (parse_digits(s, (uint32_t)-1 - 1, &v) == -1)
		return -1;
	*id = (uint32_t)v;
	return 0;
}

/* Code point of the well-formed UTF-8 sequence at s (n bytes left) and its
 * length, or 0 when it is not one: overlong, surrogate, too high, cut. */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		*cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		*cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		*cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && *cp < 0x800) || (len == 4 && *cp < 0x10000) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff) || *cp > 0x10ffff)
		return 0;
	return len;
}

char *
text_sanitize(const char *s, size_t len, size_t max)
{
	static const char repl[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *u = (const unsigned char *)s;
	char *out = xmalloc(max + 1);
	size_t i = 0, o = 0, k;
	uint32_t cp;

	while (i < len) {
		k = utf8_decode(u + i, len - i, &cp);
		if (k == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			if (o + 3 > max)
				break;
			memcpy(out + o, repl, 3);
			o += 3;
			i += k ? k : 1;
			continue;
		}
		if (o + k > max)
			break;
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	return out;
}

void
text_escape(const char *s, char *buf, size_t size)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;

	for (; *u != '\0'; u++) {
		if ((*u < 0x20 && *u != '\t') || *u == 0x7f) {
			if (o + 4 >= size)
				break;
			snprintf(buf + o, 5, "\\x%02x", *u);
			o += 4;
		} else {
			if (o + 1 >= size)
				break;
			buf[o++] = (char)*u;
		}
	}
	buf[o] = '\0';
}

int
ratelimit_take(struct ratelimit *rl, double now, double rate, double burst,
    unsigned int *suppressed)
{
	if (rl->last == 0 || now - rl->last > burst / rate)
		rl->tokens = burst;
	else
		rl->tokens += (now - rl->last) * rate;
	if (rl->tokens > burst)
		rl->tokens = burst;
	rl->last = now;
	if (rl->tokens < 1.0) {
		rl->suppressed++;
		return 0;
	}
	rl->tokens -= 1.0;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return 1;
}
