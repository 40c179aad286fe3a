/* SPDX-License-Identifier: MIT */
/*
 * notify_worker.c - the smallest `ready = notify` worker, for bench/scale.sh:
 * it sends READY=1 to $NOTIFY_SOCKET and waits for a signal. Plain libc (no
 * libsystemd), so that ten thousand of them cost little memory.
 *
 * Build: cc -std=gnu11 -O2 -o notify_worker bench/notify_worker.c
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
main(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t len;
	int fd;

	if (path == NULL || strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "notify_worker: no usable NOTIFY_SOCKET\n");
		return 1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, len) != 7) {
		perror("notify_worker: READY=1");
		return 1;
	}
	close(fd);
	for (;;)
		pause();	/* until the drain signal's default action */
}
