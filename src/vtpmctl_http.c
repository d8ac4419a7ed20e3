/*
 * vtpmctl_http.c: vtpmctl's side of the API: one HTTP/1.1 request over
 * vtpmd's unix socket, the response parsed with http-parser, its body with
 * jansson. vtpmd closes every connection after its answer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <http_parser.h>

#include "vtpmctl.h"

struct vtpmctl_response {
	const char *body;
	size_t body_len;
	bool done;
};

static void vtpmctl_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
vtpmctl_why(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

/* Connects to the unix socket at path; -1 with errno. */
static int
vtpmctl_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = VTPMCTL_TIMEOUT_S};
	int fd, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Sends all of buf. A server that answers before reading everything (a
 * refusal) closes early: EPIPE then leaves the answer to be read. */
static int
vtpmctl_send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
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

/* Reads until the server closes; returns a malloc'd buffer or NULL. */
static char *
vtpmctl_recv_all(int fd, size_t *len, char *why, size_t why_len)
{
	size_t cap = 8192, got = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	while (buf != NULL) {
		if (got == cap) {
			if (cap >= VTPMCTL_MAX_RESPONSE) {
				vtpmctl_why(why, why_len, "answer larger than %u bytes",
				    VTPMCTL_MAX_RESPONSE);
				break;
			}
			p = realloc(buf, cap * 2);
			if (p == NULL)
				break;
			buf = p;
			cap *= 2;
		}
		n = recv(fd, buf + got, cap - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET && got > 0)
			n = 0; /* the answer came before the reset */
		if (n == 0) {
			*len = got;
			return buf;
		}
		if (n == -1) {
			vtpmctl_why(why, why_len, "%s",
			    errno == EAGAIN || errno == EWOULDBLOCK
			        ? "no answer within the time limit"
			        : strerror(errno));
			break;
		}
		got += (size_t)n;
	}
	if (buf == NULL)
		vtpmctl_why(why, why_len, "out of memory");
	free(buf);
	return NULL;
}

static int
vtpmctl_on_body(http_parser *hp, const char *at, size_t len)
{
	struct vtpmctl_response *r = hp->data;

	if (r->body == NULL)
		r->body = at;
	r->body_len += len;
	return 0;
}

static int
vtpmctl_on_complete(http_parser *hp)
{
	struct vtpmctl_response *r = hp->data;

	r->done = true;
	http_parser_pause(hp, 1);
	return 0;
}

/* Parses the response in buf: status, then the body as JSON. */
static enum vtpmctl_http_err
vtpmctl_parse_response(
    const char *buf, size_t len, int *status, json_t **reply, char *why, size_t why_len)
{
	static const http_parser_settings settings = {
	    .on_body = vtpmctl_on_body,
	    .on_message_complete = vtpmctl_on_complete,
	};
	struct vtpmctl_response r = {0};
	enum http_errno e;
	json_error_t jerr;
	http_parser hp;

	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &r;
	http_parser_execute(&hp, &settings, buf, len);
	if (!r.done && HTTP_PARSER_ERRNO(&hp) == HPE_OK)
		http_parser_execute(&hp, &settings, buf, 0); /* end of stream */
	e = HTTP_PARSER_ERRNO(&hp);
	if (!r.done || (e != HPE_OK && e != HPE_PAUSED)) {
		vtpmctl_why(why, why_len, "malformed HTTP answer (%s)",
		    r.done ? http_errno_description(e) : "incomplete");
		return VTPMCTL_HTTP_PROTOCOL;
	}
	*status = hp.status_code;
	*reply = json_loadb(r.body != NULL ? r.body : "", r.body_len, JSON_DECODE_ANY, &jerr);
	if (*reply == NULL) {
		vtpmctl_why(why, why_len, "answer (HTTP %d) is not JSON: %s", *status, jerr.text);
		return VTPMCTL_HTTP_PROTOCOL;
	}
	return VTPMCTL_HTTP_OK;
}

/*
 * Sends METHOD path (with body, a JSON value, when not NULL) to the API
 * socket and waits for the answer. On VTPMCTL_HTTP_OK, *status is the HTTP
 * status and *reply the JSON body (the caller frees it); otherwise why says
 * what failed (for VTPMCTL_HTTP_CONNECT, errno is connect's).
 */
enum vtpmctl_http_err
vtpmctl_http_request(const char *socket, const char *method, const char *path, const json_t *body,
    int *status, json_t **reply, char *why, size_t why_len)
{
	enum vtpmctl_http_err ret = VTPMCTL_HTTP_IO;
	char *payload = NULL, *req = NULL, *resp = NULL;
	size_t resp_len = 0;
	int fd = -1, n, saved;

	*reply = NULL;
	*status = 0;
	fd = vtpmctl_connect(socket);
	if (fd == -1) {
		saved = errno;
		vtpmctl_why(why, why_len, "%s", strerror(saved));
		errno = saved;
		return VTPMCTL_HTTP_CONNECT;
	}
	if (body != NULL && (payload = json_dumps(body, JSON_COMPACT)) == NULL) {
		vtpmctl_why(why, why_len, "out of memory");
		goto out;
	}
	n = asprintf(&req,
	    "%s %s HTTP/1.1\r\n"
	    "Host: vtpmd\r\n"
	    "User-Agent: vtpmctl\r\n"
	    "Accept: application/json\r\n"
	    "Connection: close\r\n"
	    "%s"
	    "Content-Length: %zu\r\n"
	    "\r\n"
	    "%s",
	    method, path, payload ? "Content-Type: application/json\r\n" : "",
	    payload ? strlen(payload) : (size_t)0, payload ? payload : "");
	if (n < 0) {
		req = NULL;
		vtpmctl_why(why, why_len, "out of memory");
		goto out;
	}
	if (vtpmctl_send_all(fd, req, (size_t)n) == -1) {
		vtpmctl_why(why, why_len, "sending the request: %s",
		    errno == EAGAIN ? "timed out" : strerror(errno));
		goto out;
	}
	shutdown(fd, SHUT_WR);
	resp = vtpmctl_recv_all(fd, &resp_len, why, why_len);
	if (resp == NULL)
		goto out;
	ret = vtpmctl_parse_response(resp, resp_len, status, reply, why, why_len);
out:
	free(resp);
	free(req);
	free(payload);
	if (fd != -1)
		close(fd);
	return ret;
}

/*
 * Makes one API call and reports failures on stderr: an unreachable vtpmd
 * (naming the socket), a broken answer, or vtpmd's error and hint. Returns
 * EXIT_OK with *reply set (the caller frees it), or EXIT_RUNTIME.
 */
int
vtpmctl_call(const char *method, const char *path, const json_t *body, json_t **reply)
{
	enum vtpmctl_http_err err;
	char why[256];
	int status, saved;

	err = vtpmctl_http_request(
	    vtpmctl_socket, method, path, body, &status, reply, why, sizeof(why));
	saved = errno;
	switch (err) {
	case VTPMCTL_HTTP_OK: break;
	case VTPMCTL_HTTP_CONNECT:
		vtpmctl_fail("cannot connect to vtpmd at %s: %s", vtpmctl_socket, why);
		if (saved == EACCES || saved == EPERM)
			fprintf(stderr, "vtpmctl: hint: run vtpmctl as root or as vtpmd's user\n");
		else
			fprintf(stderr, "vtpmctl: hint: check that vtpmd is running (systemctl "
			                "status vtpmd), or name its socket with --socket PATH or "
			                "VTPMD_SOCKET\n");
		return EXIT_RUNTIME;
	case VTPMCTL_HTTP_IO:
	case VTPMCTL_HTTP_PROTOCOL:
		vtpmctl_fail("%s %s via %s: %s", method, path, vtpmctl_socket, why);
		fprintf(stderr, "vtpmctl: hint: check vtpmd's log (journalctl -u vtpmd)\n");
		return EXIT_RUNTIME;
	}
	if (status >= 200 && status < 300)
		return EXIT_OK;
	vtpmctl_fail("%s (HTTP %d)",
	    vtpmctl_str(*reply, "error", "vtpmd refused the request without saying why"), status);
	if (json_string_value(json_object_get(*reply, "hint")) != NULL)
		fprintf(stderr, "vtpmctl: hint: %s\n", vtpmctl_str(*reply, "hint", ""));
	json_decref(*reply);
	*reply = NULL;
	return EXIT_RUNTIME;
}
