/*
 * stall-client: a misbehaving client for tests. It opens many connections
 * to a socket, sends the start of a message on each, and stalls.
 *
 *   stall-client [--count N] [--send HEX] [--hold MS] [--wait MS] ENDPOINT
 *
 * Opens N connections to ENDPOINT (unix:PATH or tcp:HOST:PORT; default 1),
 * each given at most 5 s to get into the server's backlog, and sends the
 * bytes HEX (default none) on each. With --wait, a socket that is not
 * there yet, not listening or not open to this user is tried again, as
 * fast as it can, for up to MS milliseconds (a client that lies in wait
 * for a socket to appear). Then prints
 *
 *   connected C failed F
 *
 * and waits, reading and discarding whatever comes back, until the peer has
 * closed every connection or MS milliseconds (default 60000) have passed.
 * Last it prints
 *
 *   closed K answered A last T
 *
 * K connections were closed by the peer, A of them had received bytes, and
 * the last close came T ms after the "connected" line (0 when none did).
 * Exit status 0, or 2 for a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

#define STALL_CONNECT_MS 5000

static int64_t
stall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* A non-blocking connection to ss, or -1 when it was not accepted into
 * the backlog within STALL_CONNECT_MS, or, for a socket absent, refusing
 * or forbidden, within wait_ms. */
static int
stall_connect(const struct sockaddr_storage *ss, socklen_t sl, long wait_ms)
{
	struct timespec pause = {.tv_nsec = 1000000}, lurk = {.tv_nsec = 100000};
	int64_t deadline = stall_now_ms() + STALL_CONNECT_MS;
	int64_t absent_until = stall_now_ms() + wait_ms;
	struct pollfd pfd;
	socklen_t el = sizeof(int);
	int fd, err = 0;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	for (;;) {
		if (connect(fd, (const struct sockaddr *)ss, sl) == 0)
			return fd;
		/* A unix socket whose backlog is full says EAGAIN: try again. */
		if (errno == EAGAIN && stall_now_ms() < deadline) {
			nanosleep(&pause, NULL);
			continue;
		}
		if ((errno == ENOENT || errno == ECONNREFUSED || errno == EACCES) &&
		    stall_now_ms() < absent_until) {
			nanosleep(&lurk, NULL);
			continue;
		}
		break;
	}
	if (errno == EINPROGRESS) {
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, STALL_CONNECT_MS) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
			return fd;
	}
	close(fd);
	return -1;
}

static uint8_t *
stall_hex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *p;

	if (n % 2 != 0 || (p = malloc(n / 2 + 1)) == NULL)
		return NULL;
	if (hex_decode(hex, p, n / 2) == -1) {
		free(p);
		return NULL;
	}
	*len = n / 2;
	return p;
}

static void
stall_usage(void)
{
	fprintf(stderr,
	    "usage: stall-client [--count N] [--send HEX] [--hold MS] [--wait MS] ENDPOINT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	struct endpoint ep;
	struct pollfd *pfd;
	uint8_t *msg = NULL, scratch[4096];
	bool *answered;
	size_t msg_len = 0;
	long count = 1, hold = 60000, wait = 0;
	int connected = 0, failed = 0, closed = 0, nanswered = 0, i = 1, fd;
	int64_t start, last = 0, end;
	socklen_t sl;

	log_init("stall-client", LOG_LEVEL_WARN);
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--count") == 0)
			count = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--hold") == 0)
			hold = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--wait") == 0)
			wait = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--send") == 0 &&
		         (msg = stall_hex(argv[i + 1], &msg_len)) != NULL)
			continue;
		else
			stall_usage();
	}
	if (i + 1 != argc || count < 1 || count > 10000 || hold < 0 || wait < 0 ||
	    endpoint_parse(argv[i], &ep) == -1 || (sl = endpoint_sockaddr(&ep, &ss)) == 0)
		stall_usage();
	pfd = calloc((size_t)count, sizeof(*pfd));
	answered = calloc((size_t)count, sizeof(*answered));
	if (pfd == NULL || answered == NULL)
		fatal(1, "calloc");

	for (long k = 0; k < count; k++) {
		fd = stall_connect(&ss, sl, wait);
		if (fd == -1) {
			failed++;
			continue;
		}
		if (msg_len > 0 && send(fd, msg, msg_len, MSG_NOSIGNAL) != (ssize_t)msg_len) {
			/* Already closed by the server: it counts as closed. */
			closed++;
			close(fd);
			connected++;
			continue;
		}
		pfd[connected++] = (struct pollfd){.fd = fd, .events = POLLIN};
	}
	printf("connected %d failed %d\n", connected, failed);
	fflush(stdout);

	start = stall_now_ms();
	end = start + hold;
	while (closed < connected) {
		int64_t now = stall_now_ms();
		if (now >= end)
			break;
		if (poll(pfd, (nfds_t)connected, (int)(end - now)) <= 0)
			continue;
		for (int k = 0; k < connected; k++) {
			ssize_t n;
			if (pfd[k].fd == -1 || pfd[k].revents == 0)
				continue;
			n = recv(pfd[k].fd, scratch, sizeof(scratch), MSG_DONTWAIT);
			if (n > 0) {
				answered[k] = true;
				continue;
			}
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			close(pfd[k].fd);
			pfd[k].fd = -1;
			closed++;
			nanswered += answered[k];
			last = stall_now_ms() - start;
		}
	}
	printf("closed %d answered %d last %lld\n", closed, nanswered, (long long)last);
	for (int k = 0; k < connected; k++)
		if (pfd[k].fd != -1)
			close(pfd[k].fd);
	free(pfd);
	free(answered);
	free(msg);
	return 0;
}
