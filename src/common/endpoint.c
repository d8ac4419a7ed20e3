/*
 * endpoint.c: the socket addresses vtpmd listens on or connects to,
 * written "unix:PATH" or "tcp:HOST:PORT" (HOST numeric, IPv4 or [IPv6]).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

/* Parses spec into *ep. Returns 0, or -1 when spec is malformed. */
int
endpoint_parse(const char *spec, struct endpoint *ep)
{
	struct in6_addr a6;
	struct in_addr a4;
	const char *hp, *colon;
	char *end;
	unsigned long port;
	size_t hlen;

	memset(ep, 0, sizeof(*ep));
	if (strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] == '\0' || strlen(spec + 5) >= sizeof(ep->path))
			return -1;
		ep->kind = ENDPOINT_UNIX;
		memcpy(ep->path, spec + 5, strlen(spec + 5) + 1);
		return 0;
	}
	if (strncmp(spec, "tcp:", 4) != 0)
		return -1;
	hp = spec + 4;
	if (*hp == '[') {
		colon = strstr(hp, "]:");
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - hp - 1);
		hp++;
		colon++;
	} else {
		colon = strrchr(hp, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - hp);
	}
	if (hlen == 0 || hlen >= sizeof(ep->host))
		return -1;
	memcpy(ep->host, hp, hlen);
	ep->host[hlen] = '\0';
	if (inet_pton(AF_INET, ep->host, &a4) != 1 && inet_pton(AF_INET6, ep->host, &a6) != 1)
		return -1; /* only numeric addresses: no name lookup in a daemon */
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port > 65535)
		return -1;
	ep->kind = ENDPOINT_TCP;
	ep->port = (uint16_t)port;
	return 0;
}

void
endpoint_format(const struct endpoint *ep, char *buf, size_t len)
{
	if (ep->kind == ENDPOINT_UNIX)
		snprintf(buf, len, "unix:%s", ep->path);
	else if (strchr(ep->host, ':') != NULL)
		snprintf(buf, len, "tcp:[%s]:%u", ep->host, ep->port);
	else
		snprintf(buf, len, "tcp:%s:%u", ep->host, ep->port);
}

/* Fills a sockaddr for ep; returns its length or 0 when the host is not a
 * numeric address. */
socklen_t
endpoint_sockaddr(const struct endpoint *ep, struct sockaddr_storage *ss)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (ep->kind == ENDPOINT_UNIX) {
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, ep->path, strlen(ep->path) + 1);
		return sizeof(*sun);
	}
	if (inet_pton(AF_INET, ep->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep->port);
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, ep->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ep->port);
		return sizeof(*sin6);
	}
	return 0;
}

/*
 * Makes way for a unix socket at ep->path: nothing there, or a socket that
 * nobody accepts on (left by a crash), which is removed. Anything else is
 * kept: a live socket (EADDRINUSE) or a file that is not a socket (EEXIST).
 * The probe does not block, even when the live listener's backlog is full.
 */
static int
endpoint_unix_stale(const struct endpoint *ep, const struct sockaddr *sa, socklen_t sl)
{
	struct stat sb;
	int probe, rc;

	if (lstat(ep->path, &sb) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe == -1)
		return -1;
	rc = connect(probe, sa, sl);
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(probe);
		errno = EADDRINUSE;
		return -1;
	}
	close(probe);
	if (errno != ECONNREFUSED && errno != ENOENT)
		return -1;
	return unlink(ep->path) == -1 && errno != ENOENT ? -1 : 0;
}

/*
 * Returns a listening, non-blocking, close-on-exec socket for ep, or -1
 * with errno (EADDRINUSE when another process serves it, EEXIST when the
 * path holds something other than a socket). A stale unix socket (nobody
 * accepting) is replaced; a live one is not. A unix socket's file is left
 * mode 0600, for its creator only; a caller that serves another user
 * widens it after this returns (instance.c's --socket-group).
 */
int
endpoint_listen(const struct endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	sl = endpoint_sockaddr(ep, &ss);
	if (sl == 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* TCP_NODELAY is inherited by the accepted sockets (Linux): an answer
	 * sent in two writes (TLS's application data, then close_notify) must
	 * not wait for the peer's delayed ACK. */
	if (ep->kind == ENDPOINT_TCP) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (ep->kind == ENDPOINT_UNIX && endpoint_unix_stale(ep, (struct sockaddr *)&ss, sl) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, 16) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (ep->kind == ENDPOINT_UNIX && chmod(ep->path, 0600) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Returns a connected, blocking, close-on-exec socket, or -1 with errno. */
int
endpoint_connect(const struct endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	sl = endpoint_sockaddr(ep, &ss);
	if (sl == 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (ep->kind == ENDPOINT_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}
