/*
 * httpc_url.c: one request to a server named by a base URL
 * (http[s]://HOST[:PORT][/PREFIX]) over a new TCP connection: vtpmd's and
 * vtpm-attest's requests to vtpm-ca. The request and answer are httpc.c's.
 *
 * https:// speaks TLS 1.3 (tls.c) and checks the server by the caller's
 * root or pin before any byte of the request goes out. Plain http:// is
 * for loopback labs: it connects only to loopback addresses (127.0.0.0/8,
 * ::1, checked on the addresses the name resolves to) and is refused for
 * any other, since anyone on the path could read and answer; its first use
 * in a process is logged as a warning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

/* httpc_io's move for a TLS connection (io->ctx): as recv() and send()
 * would say, with EPROTO when TLS failed. */
static ssize_t
httpc_tls_move(const struct httpc_io *io, void *buf, size_t len, bool out)
{
	struct tls_conn *tls = io->ctx;
	enum tls_io r;
	size_t n = 0;

	errno = 0;
	r = out ? tls_write(tls, buf, len, &n, NULL) : tls_read(tls, buf, len, &n, NULL);
	switch (r) {
	case TLS_IO_OK: return (ssize_t)n;
	case TLS_IO_EOF: return 0;
	case TLS_IO_WANT_READ:
	case TLS_IO_WANT_WRITE: errno = EAGAIN; return -1;
	case TLS_IO_ERROR: break;
	}
	if (errno == 0 || errno == EAGAIN)
		errno = EPROTO;
	return -1;
}

/* A URL split: https or not, host, port and path prefix. */
struct httpc_url {
	bool tls;
	char host[256];
	char port[16];
	char prefix[512];
};

/* Splits http[s]://HOST[:PORT][/PREFIX] into u. */
static int
httpc_parse_url(const char *url, struct httpc_url *u)
{
	const size_t host_len = sizeof(u->host), port_len = sizeof(u->port);
	const char *p, *slash, *colon;
	char *host = u->host, *port = u->port, *prefix = u->prefix;

	u->tls = strncmp(url, "https://", 8) == 0;
	if (!u->tls && strncmp(url, "http://", 7) != 0)
		return -1;
	p = url + (u->tls ? 8 : 7);
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if ((colon != NULL ? colon : slash) == p ||
	    (size_t)((colon != NULL ? colon : slash) - p) >= host_len)
		return -1;
	snprintf(host, host_len, "%.*s", (int)((colon != NULL ? colon : slash) - p), p);
	if (colon != NULL && (slash - colon < 2 || (size_t)(slash - colon) > port_len))
		return -1;
	snprintf(port, port_len, "%.*s", colon != NULL ? (int)(slash - colon - 1) : 3,
	    colon != NULL ? colon + 1
	    : u->tls      ? "443"
	                  : "80");
	snprintf(prefix, sizeof(u->prefix), "%s", slash);
	if (prefix[0] != '\0' && prefix[strlen(prefix) - 1] == '/')
		prefix[strlen(prefix) - 1] = '\0';
	return 0;
}

/* Whether ai's address is a loopback address (127.0.0.0/8, ::1, or IPv4's
 * loopback mapped into IPv6); copied out, as the sockaddr may be less
 * aligned than its family's structure. */
static bool
httpc_is_loopback(const struct addrinfo *ai)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;

	if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(a4)) {
		memcpy(&a4, ai->ai_addr, sizeof(a4));
		return (ntohl(a4.sin_addr.s_addr) >> 24) == 127;
	}
	if (ai->ai_family != AF_INET6 || ai->ai_addrlen < sizeof(a6))
		return false;
	memcpy(&a6, ai->ai_addr, sizeof(a6));
	return IN6_IS_ADDR_LOOPBACK(&a6.sin6_addr) ||
	       (IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr) && a6.sin6_addr.s6_addr[12] == 127);
}

/* Connects to host:port, trying each address it resolves to; with
 * loopback_only, only loopback addresses (plain HTTP), and none is
 * refused (ERR_REFUSED) before any connection is made. */
static int
httpc_connect_tcp(
    const char *host, const char *port, int timeout_s, bool loopback_only, struct err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	struct timeval tv = {.tv_sec = timeout_s};
	int fd = -1, r, tried = 0, one = 1;

	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		err_set(err, ERR_UNREACHABLE, "%s: %s", host, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (loopback_only && !httpc_is_loopback(ai))
			continue;
		tried++;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		/* No Nagle: over TLS the request follows the handshake's Finished
		 * in a second write, which would otherwise wait for the server's
		 * delayed ACK (40 ms on Linux) on every request. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = errno;
		close(fd);
		fd = -1;
		errno = r;
	}
	if (tried == 0)
		err_set(err, ERR_REFUSED,
		    "plain http:// is for loopback addresses only, and %s is not one: use "
		    "https:// with the server's TLS root or pin",
		    host);
	else if (fd == -1)
		err_set(
		    err, ERR_UNREACHABLE, "connecting to %s:%s: %s", host, port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/*
 * Checks a base URL before it is used: http[s]://HOST[:PORT][/PREFIX];
 * https:// needs tls to give a root or a pin. The first plain http:// URL
 * a process checks is logged as a warning (a process that forks for its
 * requests checks in the parent, which warns once). 0, or -1 with err
 * (ERR_INVALID).
 */
int
httpc_check_url(const char *base_url, const struct tls_peer *tls, struct err *err)
{
	static bool warned;
	struct httpc_url u;

	if (httpc_parse_url(base_url, &u) == -1)
		return err_set(err, ERR_INVALID, "%s: not an https://HOST[:PORT] URL", base_url);
	if (u.tls && (tls == NULL || (tls->root_pem == NULL && !tls->pinned)))
		return err_set(err, ERR_INVALID,
		    "%s: no TLS root or pin to check the server's certificate by", base_url);
	if (!u.tls && !warned) {
		log_warnx("%s: plain http://, no TLS: anyone on the path can read and answer; "
		          "for loopback labs only (production: https://)",
		    base_url);
		warned = true;
	}
	return 0;
}

/*
 * One request to an HTTP server named by a base URL (http[s]://HOST[:PORT]
 * [/PREFIX]) over a new TCP connection, each socket operation bounded by
 * timeout_s seconds; path is appended to the URL's prefix. https:// checks
 * the server as tls says (a root or a pin) before the request goes out;
 * http:// reaches loopback addresses only. The answer is not parsed:
 * returns 0 with the raw answer in *resp (malloc'd, the caller frees it)
 * and *resp_len, or -1 with err (as httpc_exchange's; ERR_UNTRUSTED when
 * the server's TLS certificate is not the one expected, ERR_REFUSED for
 * plain http:// to a non-loopback address, ERR_INVALID for a URL
 * httpc_check_url refuses).
 */
int
httpc_fetch_url(const char *base_url, const struct tls_peer *tls, const char *agent,
    const char *headers, int timeout_s, const char *method, const char *path,
    const struct json_t *body, char **resp, size_t *resp_len, struct err *err)
{
	struct httpc_io io = {.fd = -1};
	struct tls_conn *tls_conn = NULL;
	struct httpc_url u;
	char target[1024];
	int rc = -1;

	*resp = NULL;
	*resp_len = 0;
	if (httpc_check_url(base_url, tls, err) == -1 || httpc_parse_url(base_url, &u) == -1)
		return -1;
	snprintf(target, sizeof(target), "%s%s", u.prefix, path);
	if ((io.fd = httpc_connect_tcp(u.host, u.port, timeout_s, !u.tls, err)) == -1)
		return -1;
	if (u.tls && (tls_conn = tls_connect(io.fd, u.host, tls, err)) != NULL)
		io = (struct httpc_io){.fd = io.fd, .move = httpc_tls_move, .ctx = tls_conn};
	if (!u.tls || tls_conn != NULL)
		rc = httpc_send_recv(
		    &io, method, u.host, agent, headers, target, body, resp, resp_len, err);
	tls_conn_free(tls_conn);
	close(io.fd);
	return rc;
}

/*
 * httpc_fetch_url, and the answer parsed: returns 0 with the status and
 * the JSON answer (caller frees), or -1 with err (as httpc_exchange's);
 * *reply is NULL then.
 */
int
httpc_request_url(const char *base_url, const struct tls_peer *tls, const char *agent,
    int timeout_s, const char *method, const char *path, const struct json_t *body, int *status,
    struct json_t **reply, struct err *err)
{
	char *resp = NULL;
	size_t resp_len = 0;
	int rc = -1;

	*reply = NULL;
	*status = 0;
	if (httpc_fetch_url(base_url, tls, agent, NULL, timeout_s, method, path, body, &resp,
	        &resp_len, err) == 0)
		rc = httpc_parse_response(resp, resp_len, status, reply, err);
	free(resp);
	return rc;
}
