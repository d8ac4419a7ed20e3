/*
 * fdsend: sends bytes on a socket another process holds, as that process
 * would, for tests of what a peer does with a message it did not expect
 * (tests/integration/ca-sandbox.sh: a malformed message "from" vtpm-ca's
 * network child to its parent).
 *
 *   fdsend PID FD HEX   duplicates descriptor FD of process PID
 *                       (pidfd_getfd: root, Linux 5.6 or later) and sends
 *                       the bytes HEX on it as one send(); HEX "" sends
 *                       nothing on a stream socket and an empty record on
 *                       a SOCK_SEQPACKET one (which its reader cannot tell
 *                       from the end of the connection)
 *
 * Exits 0 when the bytes were sent whole, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/common.h"

#define FDSEND_MAX 65536

static long
fdsend_number(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 0 || v > max)
		fatalx(EXIT_USAGE, "not a number from 0 to %ld: %s", max, s);
	return v;
}

int
main(int argc, char **argv)
{
	static uint8_t buf[FDSEND_MAX];
	size_t len;
	long pid, fd;
	int pidfd, sock;
	ssize_t n;

	log_init("fdsend", LOG_LEVEL_INFO);
	if (argc != 4)
		fatalx(EXIT_USAGE, "usage: fdsend PID FD HEX");
	pid = fdsend_number(argv[1], INT_MAX);
	fd = fdsend_number(argv[2], INT_MAX);
	len = strlen(argv[3]) / 2;
	if (strlen(argv[3]) % 2 != 0 || len > sizeof(buf) ||
	    (len > 0 && hex_decode(argv[3], buf, len) == -1))
		fatalx(
		    EXIT_USAGE, "HEX: 0 to %d bytes as an even number of hex digits", FDSEND_MAX);
	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (pidfd == -1)
		fatal(EXIT_RUNTIME, "pidfd_open %ld", pid);
	sock = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
	if (sock == -1)
		fatal(EXIT_RUNTIME, "pidfd_getfd %ld of %ld", fd, pid);
	n = send(sock, buf, len, MSG_NOSIGNAL);
	if (n != (ssize_t)len)
		fatal(EXIT_RUNTIME, "send on descriptor %ld of %ld", fd, pid);
	close(sock);
	close(pidfd);
	return EXIT_OK;
}
