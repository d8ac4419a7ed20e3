/*
 * notify-recv.c: the receiving end of systemd's readiness protocol, for
 * testing a service's sd_notify without systemd as PID 1. It binds a unix
 * datagram socket at PATH (as systemd does for NOTIFY_SOCKET), writes a line
 * to --ready-fd once it is bound, and prints each datagram it receives on
 * stdout (newlines inside one become spaces, so that a datagram is a line),
 * flushed at once. It exits 0 after a datagram holding WANT (a line such as
 * READY=1), 1 after TIMEOUT seconds without one.
 *
 *   notify-recv PATH WANT TIMEOUT [READY_FD]
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Whether datagram msg (newline-separated assignments) holds the line want. */
static int
holds_line(const char *msg, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = msg; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, want, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static int
bind_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify-recv: %s: path too long\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		fprintf(stderr, "notify-recv: %s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	char buf[4096], line[4096];
	struct timespec now;
	time_t deadline;
	struct pollfd pfd;
	int fd;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: notify-recv PATH WANT TIMEOUT [READY_FD]\n");
		return 2;
	}
	if ((fd = bind_socket(argv[1])) == -1)
		return 1;
	if (argc == 5) {
		int ready = atoi(argv[4]);

		if (write(ready, "BOUND\n", 6) != 6 || close(ready) == -1)
			return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	deadline = now.tv_sec + atoi(argv[3]);
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	for (;;) {
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline) {
			fprintf(stderr, "notify-recv: no %s within %s s\n", argv[2], argv[3]);
			return 1;
		}
		if (poll(&pfd, 1, (int)(deadline - now.tv_sec) * 1000) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			continue;
		buf[n] = '\0';
		memcpy(line, buf, (size_t)n + 1);
		while (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (line[i] == '\n')
				line[i] = ' ';
		printf("%s\n", line);
		fflush(stdout);
		if (holds_line(buf, argv[2]))
			return 0;
	}
}
