/*
 * conn.c: one peer connection of an instance's channel: bytes received
 * and not yet consumed (with a descriptor passed beside them, for QEMU's
 * SET_DATAFD), and answers written in bounded time, so that a client
 * taking one byte at a time cannot hold the instance.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "instance.h"

#define CONN_INITIAL_CAP 8192
#define SEND_TIMEOUT_MS	 5000 /* for the client to take a whole answer */

void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	if (c->passed_fd != -1)
		close(c->passed_fd);
	c->fd = c->passed_fd = -1;
	c->len = 0;
}

/* Writes all of buf, waiting at most SEND_TIMEOUT_MS in all for a slow
 * reader (a peer taking one byte at a time cannot hold the instance
 * longer). Returns 0, or -1 after closing the connection. */
int
conn_send(struct conn *c, const uint8_t *buf, size_t len)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
	int64_t deadline = mono_ms() + SEND_TIMEOUT_MS, left;
	ssize_t n;

	while (len > 0 && c->fd != -1) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			log_warn("send");
			break;
		}
		left = deadline - mono_ms();
		if (left > 0 && poll(&pfd, 1, (int)left) > 0)
			continue;
		log_warnx("the client did not take its answer within %d ms; closing",
		    SEND_TIMEOUT_MS);
		break;
	}
	if (len == 0)
		return 0;
	conn_close(c);
	return -1;
}

/* Makes room for need bytes in c's buffer (need is already bounded). */
int
conn_reserve(struct conn *c, size_t need)
{
	uint8_t *p;
	size_t cap;

	if (need <= c->cap)
		return 0;
	cap = c->cap ? c->cap : CONN_INITIAL_CAP;
	while (cap < need)
		cap *= 2;
	p = realloc(c->buf, cap);
	if (p == NULL)
		return -1;
	c->buf = p;
	c->cap = cap;
	return 0;
}

/* Reads what is available on c, keeping a passed descriptor. Returns the
 * number of bytes read, 0 at end of stream, or -1 with errno (EAGAIN: nothing
 * is there yet). */
ssize_t
conn_fill(struct conn *c, size_t want)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov;
	struct msghdr msg = {0};
	struct cmsghdr *cm;
	ssize_t n;

	if (conn_reserve(c, c->len + want) == -1)
		return -1;
	iov.iov_base = c->buf + c->len;
	iov.iov_len = c->cap - c->len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (c->is_unix) {
		msg.msg_control = cbuf.space;
		msg.msg_controllen = sizeof(cbuf.space);
	}
	do
		n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
			if (c->passed_fd != -1)
				close(c->passed_fd);
			c->passed_fd = fd;
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		}
	}
	c->len += (size_t)n;
	return n;
}

void
conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}
