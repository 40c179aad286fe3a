/* SPDX-License-Identifier: MIT */
/*
 * fuzz_notify.c - libFuzzer target for the workers' notify messages: each
 * input is sent as one datagram to a real notify socket (notify.c: receive,
 * credentials, length check, NUL-termination) and the callback splits it
 * with notify_split(), as pool.c does. The assignments it yields must be
 * exactly those of a plain reading of the datagram: one per line whose C
 * string is not empty, the key up to the first '=', the value after it (or
 * NULL without one). The same input is also split in a heap buffer of its
 * exact size, where ASan sees a read or write past the end.
 *
 *	tests/fuzz/fuzz_notify -max_total_time=600 CORPUS_DIR (see Makefile.am)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "notify.h"

#define MSG_MAX		4096	/* notify.c's NOTIFY_MAX */

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct expect {
	const uint8_t	*data;	/* the datagram as sent */
	size_t		 size;
	size_t		 pos;	/* where the next line starts */
	unsigned int	 calls;
	unsigned int	 datagrams;
};

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_notify: invariant broken: %s\n", what);
		abort();
	}
}

/* Move to the next line whose C string is not empty; false at the end. */
static bool
next_line(struct expect *e, const char **line, size_t *len)
{
	const uint8_t *nl;
	size_t end;

	while (e->pos < e->size) {
		nl = memchr(e->data + e->pos, '\n', e->size - e->pos);
		end = nl == NULL ? e->size : (size_t)(nl - e->data);
		*line = (const char *)e->data + e->pos;
		*len = strnlen(*line, end - e->pos);
		e->pos = end + 1;
		if (*len > 0)
			return true;
	}
	return false;
}

static void
on_assign(void *arg, const char *key, const char *value)
{
	struct expect *e = arg;
	const char *line, *eq;
	size_t len, klen;

	check(next_line(e, &line, &len), "no more assignments than lines");
	e->calls++;
	eq = memchr(line, '=', len);
	klen = eq == NULL ? len : (size_t)(eq - line);
	check(strlen(key) == klen && memcmp(key, line, klen) == 0,
	    "key is the line up to '='");
	if (eq == NULL) {
		check(value == NULL, "no value without '='");
		return;
	}
	check(value != NULL, "a value after '='");
	check(strlen(value) == len - klen - 1 &&
	    memcmp(value, eq + 1, len - klen - 1) == 0,
	    "value is the rest of the line");
}

static void
split_and_check(struct expect *e, char *buf, size_t len)
{
	const char *line;
	size_t n;

	e->pos = 0;
	notify_split(buf, len, on_assign, e);
	check(!next_line(e, &line, &n), "every line assigned");
}

static void
on_datagram(void *arg, pid_t pid, char *buf, size_t len)
{
	struct expect *e = arg;

	e->datagrams++;
	check(pid == getpid(), "sender pid from the credentials");
	check(len == e->size && memcmp(buf, e->data, len) == 0,
	    "datagram received whole");
	check(buf[len] == '\0', "datagram NUL-terminated");
	split_and_check(e, buf, len);
}

static struct notify *n;
static int client = -1;
static char dir[] = "/tmp/fuzz_notify.XXXXXX";
static char path[sizeof dir + 16];
static struct expect cur;

static void
cleanup(void)
{
	notify_close(n);
	(void)rmdir(dir);
}

static void
setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	log_init(LOG_TARGET_STDERR, LOG_ERR);	/* no warning per drop */
	check(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/notify", dir);
	n = notify_open(ev_default_loop(0), path, on_datagram, &cur);
	check(n != NULL, "notify_open");
	atexit(cleanup);
	client = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	check(client != -1, "socket");
	strcpy(sa.sun_path, path);
	check(connect(client, (struct sockaddr *)&sa, sizeof sa) == 0,
	    "connect");
	/* Room for the largest datagram the fuzzer makes. */
	(void)setsockopt(client, SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 20 },
	    sizeof(int));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	if (n == NULL)
		setup();
	memset(&cur, 0, sizeof cur);
	cur.data = data;
	cur.size = size;

	/* Through the socket: dropped when longer than MSG_MAX. */
	check(send(client, data, size, 0) == (ssize_t)size, "send");
	notify_flush(n);
	check(cur.datagrams == (size <= MSG_MAX ? 1u : 0u),
	    "one callback per datagram, none for an oversized one");

	/* Straight to the splitter, in a buffer of the exact size. */
	buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	split_and_check(&cur, buf, size);
	free(buf);
	return 0;
}
