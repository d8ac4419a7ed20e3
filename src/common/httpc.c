/*
 * httpc.c: the client side of vtpmd's HTTP/JSON protocols (vtpmctl to
 * vtpmd, vtpm-attest and vtpmd to vtpm-ca): one request on a connected
 * socket, the whole answer read until the server closes (servers answer
 * with "Connection: close"), parsed with http-parser, its body with
 * jansson. Connecting is the caller's business (unix or TCP), or this
 * file's for a URL.
 *
 * URLs: https://HOST[:PORT][/PREFIX] speaks TLS 1.3 (tls.c) and checks the
 * server by the caller's root or pin before any byte of the request goes
 * out. Plain http:// is for loopback labs: it connects only to loopback
 * addresses (127.0.0.0/8, ::1) and is refused for any other, since anyone
 * on the path could read and answer; its first use in a process is
 * logged as a warning.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>

#include "common.h"

/* The answer's body: in the answer itself while its bytes are contiguous
 * there (a Content-Length, one chunk), else joined in copy (chunks). */
struct httpc_reply {
	const char *body;
	size_t body_len;
	char *copy;
	size_t copy_cap;
	bool done;
	bool nomem;
};


/* A connection: a socket, and TLS on it or not. */
struct httpc_io {
	int fd;
	struct tls_conn *tls;
};

/* recv() or send() of io's bytes, through TLS when it has it: n bytes, 0
 * at the end of the stream, -1 with errno (EAGAIN when the socket's
 * timeout passed, EPROTO when TLS failed). */
static ssize_t
httpc_io_move(const struct httpc_io *io, void *buf, size_t len, bool out)
{
	enum tls_io r;
	size_t n = 0;

	if (io->tls == NULL)
		return out ? send(io->fd, buf, len, MSG_NOSIGNAL) : recv(io->fd, buf, len, 0);
	errno = 0;
	r = out ? tls_write(io->tls, buf, len, &n, NULL) : tls_read(io->tls, buf, len, &n, NULL);
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

/* Sends all of buf. A server that answers before reading everything (a
 * refusal) closes early: EPIPE then leaves the answer to be read. */
static int
httpc_send_all(const struct httpc_io *io, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = httpc_io_move(io, (char *)buf, len, true);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (n == -1)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until the server closes; returns a malloc'd buffer of at most
 * HTTPC_MAX_RESPONSE bytes, or NULL. The buffer grows to one byte more than
 * that, to tell an answer of the largest size from a larger one. */
static char *
httpc_recv_all(const struct httpc_io *io, size_t *len, struct err *err)
{
	size_t cap = 8192, got = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	while (buf != NULL) {
		if (got == cap) {
			if (cap > HTTPC_MAX_RESPONSE) {
				err_set(err, ERR_INVALID, "answer larger than %u bytes",
				    HTTPC_MAX_RESPONSE);
				break;
			}
			cap = cap * 2 > HTTPC_MAX_RESPONSE ? HTTPC_MAX_RESPONSE + 1 : cap * 2;
			p = realloc(buf, cap);
			if (p == NULL) {
				err_set(err, ERR_FAILED, "out of memory");
				break;
			}
			buf = p;
		}
		n = httpc_io_move(io, buf + got, cap - got, false);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET && got > 0)
			n = 0; /* the answer came before the reset */
		if (n == 0) {
			*len = got;
			return buf;
		}
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				err_set(err, ERR_TIMEOUT, "no answer within the time limit");
			else
				err_set(err, ERR_UNREACHABLE, "%s", strerror(errno));
			free(buf);
			return NULL;
		}
		got += (size_t)n;
	}
	if (buf == NULL)
		err_set(err, ERR_FAILED, "out of memory");
	free(buf);
	return NULL;
}

/* Makes room for need bytes of body in r->copy, moving the body there the
 * first time. Returns 0, or -1 (r->nomem). */
static int
httpc_body_reserve(struct httpc_reply *r, size_t need)
{
	size_t cap;
	char *p;

	if (r->copy != NULL && need <= r->copy_cap)
		return 0;
	cap = r->copy_cap != 0 ? r->copy_cap : 4096;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(r->copy, cap)) == NULL) {
		r->nomem = true;
		return -1;
	}
	if (r->copy == NULL)
		memcpy(p, r->body, r->body_len);
	r->copy = p;
	r->copy_cap = cap;
	r->body = p;
	return 0;
}

static int
httpc_on_body(http_parser *hp, const char *at, size_t len)
{
	struct httpc_reply *r = hp->data;

	if (r->body == NULL) {
		r->body = at;
	} else if (r->copy != NULL || r->body + r->body_len != at) {
		/* A chunk that does not follow the last one: join them. */
		if (httpc_body_reserve(r, r->body_len + len) == -1)
			return -1;
		memcpy(r->copy + r->body_len, at, len);
	}
	r->body_len += len;
	return 0;
}

static int
httpc_on_complete(http_parser *hp)
{
	struct httpc_reply *r = hp->data;

	r->done = true;
	http_parser_pause(hp, 1);
	return 0;
}

/* Parses a whole HTTP response: status, then the body as JSON (any value). */
int
httpc_parse_response(const char *buf, size_t len, int *status, json_t **reply, struct err *err)
{
	static const http_parser_settings settings = {
		.on_body = httpc_on_body,
		.on_message_complete = httpc_on_complete,
	};
	struct httpc_reply r = {0};
	enum http_errno e;
	json_error_t jerr;
	http_parser hp;

	*reply = NULL;
	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &r;
	http_parser_execute(&hp, &settings, buf, len);
	if (!r.done && HTTP_PARSER_ERRNO(&hp) == HPE_OK)
		http_parser_execute(&hp, &settings, buf, 0); /* end of stream */
	e = HTTP_PARSER_ERRNO(&hp);
	if (r.nomem) {
		free(r.copy);
		return err_set(err, ERR_FAILED, "out of memory");
	}
	if (!r.done || (e != HPE_OK && e != HPE_PAUSED)) {
		free(r.copy);
		err_set(err, ERR_INVALID, "malformed HTTP answer (%s)",
		    r.done ? http_errno_description(e) : "incomplete");
		return -1;
	}
	*status = hp.status_code;
	*reply = json_loadb(r.body != NULL ? r.body : "", r.body_len, JSON_DECODE_ANY, &jerr);
	free(r.copy);
	if (*reply == NULL) {
		err_set(err, ERR_INVALID, "answer (HTTP %d) is not JSON: %s", *status, jerr.text);
		return -1;
	}
	return 0;
}

/*
 * Sends METHOD target (with body, a JSON value, when not NULL) on the
 * connected socket fd and reads the raw answer until the server closes.
 * Returns 0 with *resp (malloc'd, the caller frees it) and *resp_len, or
 * -1 with err (ERR_UNREACHABLE, ERR_TIMEOUT, ERR_INVALID when the answer
 * is too large).
 */
static int
httpc_send_recv(const struct httpc_io *io, const char *method, const char *host,
    const char *agent, const char *target, const json_t *body, char **resp, size_t *resp_len,
    struct err *err)
{
	char *payload = NULL, *req = NULL;
	int n, ret = -1;

	*resp = NULL;
	if (body != NULL && (payload = json_dumps(body, JSON_COMPACT)) == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	n = asprintf(&req,
	    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: application/json\r\n"
	    "Connection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
	    method, target, host, agent, payload ? "Content-Type: application/json\r\n" : "",
	    payload ? strlen(payload) : (size_t)0, payload ? payload : "");
	if (n < 0) {
		req = NULL;
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	if (httpc_send_all(io, req, (size_t)n) == -1) {
		err_set(err, errno == EAGAIN ? ERR_TIMEOUT : ERR_UNREACHABLE, "sending the request: %s",
		    errno == EAGAIN ? "timed out" : strerror(errno));
		goto out;
	}
	/* Over TLS the server's close_notify ends the answer; a half-close
	 * would only add a record. */
	if (io->tls == NULL)
		shutdown(io->fd, SHUT_WR);
	*resp = httpc_recv_all(io, resp_len, err);
	if (*resp != NULL)
		ret = 0;
out:
	free(req);
	free(payload);
	return ret;
}

/*
 * Sends METHOD target (with body, a JSON value, when not NULL) on the
 * connected socket fd, naming host and agent in the headers, and reads
 * and parses the answer. Returns 0 with *status and *reply (the caller
 * frees it), or -1 with err: ERR_UNREACHABLE or ERR_TIMEOUT when the
 * exchange failed, ERR_INVALID when the answer is not HTTP with a JSON
 * body. fd is left
 * open; a timeout on it (SO_RCVTIMEO) bounds the wait.
 */
int
httpc_exchange(int fd, const char *method, const char *host, const char *agent,
    const char *target, const json_t *body, int *status, json_t **reply, struct err *err)
{
	const struct httpc_io io = {.fd = fd};
	char *resp = NULL;
	size_t resp_len = 0;
	int ret = -1;

	*reply = NULL;
	*status = 0;
	if (httpc_send_recv(&io, method, host, agent, target, body, &resp, &resp_len, err) == 0)
		ret = httpc_parse_response(resp, resp_len, status, reply, err);
	free(resp);
	return ret;
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
	    colon != NULL ? colon + 1 : u->tls ? "443" : "80");
	snprintf(prefix, sizeof(u->prefix), "%s", slash);
	if (prefix[0] != '\0' && prefix[strlen(prefix) - 1] == '/')
		prefix[strlen(prefix) - 1] = '\0';
	return 0;
}

/* Whether addr is a loopback address (127.0.0.0/8, ::1, or IPv4's
 * loopback mapped into IPv6). */
static bool
httpc_is_loopback(const struct sockaddr *addr)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;

	if (addr->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
	if (addr->sa_family != AF_INET6)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127;
}

/* Connects to host:port, trying each address it resolves to; with
 * loopback_only, only loopback addresses (plain HTTP), and none is
 * refused (ERR_REFUSED) before any connection is made. */
static int
httpc_connect_tcp(const char *host, const char *port, int timeout_s, bool loopback_only,
    struct err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	struct timeval tv = {.tv_sec = timeout_s};
	int fd = -1, r, tried = 0;

	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		err_set(err, ERR_UNREACHABLE, "%s: %s", host, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (loopback_only && !httpc_is_loopback(ai->ai_addr))
			continue;
		tried++;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
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
		err_set(err, ERR_UNREACHABLE, "connecting to %s:%s: %s", host, port, strerror(errno));
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
    int timeout_s, const char *method, const char *path, const struct json_t *body, char **resp,
    size_t *resp_len, struct err *err)
{
	struct httpc_io io = {.fd = -1};
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
	if (!u.tls || (io.tls = tls_connect(io.fd, u.host, tls, err)) != NULL)
		rc = httpc_send_recv(&io, method, u.host, agent, target, body, resp, resp_len, err);
	tls_conn_free(io.tls);
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
	if (httpc_fetch_url(base_url, tls, agent, timeout_s, method, path, body, &resp, &resp_len,
	        err) == 0)
		rc = httpc_parse_response(resp, resp_len, status, reply, err);
	free(resp);
	return rc;
}
