/*
 * attest_http.c: vtpm-attest's client of vtpm-ca (docs/ca-api.md): one
 * HTTP/1.1 request with a JSON body per TCP connection, the answer parsed
 * with http-parser and jansson. The CA closes every connection after its
 * answer.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>

#include "attest.h"

#define AH_TIMEOUT_S 30
#define AH_MAX_REPLY (1u << 20)

struct ah_reply {
	const char *body;
	size_t body_len;
	bool done;
};

static void ah_fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ah_fail(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || why_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

/* Splits http://HOST[:PORT][/PREFIX] into host, port and path prefix. */
static int
ah_parse_url(const char *url, char *host, size_t host_len, char *port, size_t port_len,
    char *prefix, size_t prefix_len)
{
	const char *p, *slash, *colon;

	if (strncmp(url, "http://", 7) != 0)
		return -1;
	p = url + 7;
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
	snprintf(port, port_len, "%.*s", colon != NULL ? (int)(slash - colon - 1) : 2,
	    colon != NULL ? colon + 1 : "80");
	snprintf(prefix, prefix_len, "%s", slash);
	if (prefix[0] != '\0' && prefix[strlen(prefix) - 1] == '/')
		prefix[strlen(prefix) - 1] = '\0';
	return 0;
}

static int
ah_connect(const char *host, const char *port, char *why, size_t why_len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	struct timeval tv = {.tv_sec = AH_TIMEOUT_S};
	int fd = -1, r;

	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		ah_fail(why, why_len, "%s: %s", host, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
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
	if (fd == -1)
		ah_fail(why, why_len, "connecting to %s:%s: %s", host, port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

static int
ah_send(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EPIPE || errno == ECONNRESET ? 0 : -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static char *
ah_recv(int fd, size_t *len, char *why, size_t why_len)
{
	size_t cap = 8192, got = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	while (buf != NULL) {
		if (got == cap) {
			if (cap >= AH_MAX_REPLY || (p = realloc(buf, cap * 2)) == NULL)
				break;
			buf = p;
			cap *= 2;
		}
		n = recv(fd, buf + got, cap - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0 || (n == -1 && errno == ECONNRESET && got > 0)) {
			*len = got;
			return buf;
		}
		if (n == -1)
			break;
		got += (size_t)n;
	}
	ah_fail(why, why_len, "reading the answer: %s",
	    buf == NULL       ? "out of memory"
	    : errno == EAGAIN ? "timed out"
	                      : strerror(errno));
	free(buf);
	return NULL;
}

static int
ah_on_body(http_parser *hp, const char *at, size_t len)
{
	struct ah_reply *r = hp->data;

	if (r->body == NULL)
		r->body = at;
	r->body_len += len;
	return 0;
}

static int
ah_on_complete(http_parser *hp)
{
	((struct ah_reply *)hp->data)->done = true;
	http_parser_pause(hp, 1);
	return 0;
}

static int
ah_parse_reply(const char *buf, size_t len, int *status, json_t **reply, char *why, size_t why_len)
{
	static const http_parser_settings settings = {
	    .on_body = ah_on_body,
	    .on_message_complete = ah_on_complete,
	};
	struct ah_reply r = {0};
	json_error_t jerr;
	http_parser hp;

	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &r;
	http_parser_execute(&hp, &settings, buf, len);
	if (!r.done && HTTP_PARSER_ERRNO(&hp) == HPE_OK)
		http_parser_execute(&hp, &settings, buf, 0);
	if (!r.done) {
		ah_fail(why, why_len, "malformed HTTP answer");
		return -1;
	}
	*status = hp.status_code;
	*reply = json_loadb(r.body != NULL ? r.body : "", r.body_len, 0, &jerr);
	if (*reply == NULL) {
		ah_fail(why, why_len, "answer (HTTP %d) is not JSON: %s", *status, jerr.text);
		return -1;
	}
	return 0;
}

int
attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, char *why, size_t why_len)
{
	char host[256], port[16], prefix[512], *payload = NULL, *req = NULL, *resp = NULL;
	size_t resp_len = 0;
	int fd = -1, n, ret = -1;

	*reply = NULL;
	*status = 0;
	if (ah_parse_url(
	        base_url, host, sizeof(host), port, sizeof(port), prefix, sizeof(prefix)) == -1) {
		ah_fail(why, why_len, "%s: not an http://HOST:PORT URL", base_url);
		return -1;
	}
	if (body != NULL && (payload = json_dumps((const json_t *)body, JSON_COMPACT)) == NULL) {
		ah_fail(why, why_len, "out of memory");
		return -1;
	}
	n = asprintf(&req,
	    "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vtpm-attest\r\n"
	    "Accept: application/json\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
	    method, prefix, path, host, payload ? "Content-Type: application/json\r\n" : "",
	    payload ? strlen(payload) : (size_t)0, payload ? payload : "");
	if (n < 0) {
		req = NULL;
		ah_fail(why, why_len, "out of memory");
		goto out;
	}
	if ((fd = ah_connect(host, port, why, why_len)) == -1)
		goto out;
	if (ah_send(fd, req, (size_t)n) == -1) {
		ah_fail(why, why_len, "sending to %s: %s", base_url, strerror(errno));
		goto out;
	}
	shutdown(fd, SHUT_WR);
	if ((resp = ah_recv(fd, &resp_len, why, why_len)) == NULL)
		goto out;
	ret = ah_parse_reply(resp, resp_len, status, (json_t **)reply, why, why_len);
out:
	if (fd != -1)
		close(fd);
	free(resp);
	free(req);
	free(payload);
	return ret;
}

int
attest_http_status(const char *base_url, const char *serial, char *why, size_t why_len)
{
	char path[128], inner[ATTEST_WHY_MAX];
	const char *st, *err;
	json_t *reply = NULL;
	int status, ret = -1;

	snprintf(path, sizeof(path), "/v1/status/%s", serial);
	if (attest_http_json(base_url, "GET", path, NULL, &status, (struct json_t **)&reply, inner,
	        sizeof(inner)) == -1) {
		ah_fail(why, why_len, "revocation unknown: vtpm-ca at %s: %s", base_url, inner);
		return -1;
	}
	st = json_string_value(json_object_get(reply, "status"));
	err = json_string_value(json_object_get(reply, "error"));
	if (status == 200 && (json_is_true(json_object_get(reply, "revoked")) ||
	                         (st != NULL && strcmp(st, "revoked") == 0))) {
		st = json_string_value(json_object_get(reply, "reason"));
		ah_fail(why, why_len, "revoked%s%s", st ? ": " : "", st ? st : "");
		ret = 1;
	} else if (status == 200) {
		ret = 0;
	} else {
		ah_fail(why, why_len, "revocation unknown: vtpm-ca answered HTTP %d%s%s", status,
		    err ? ": " : "", err ? err : "");
	}
	json_decref(reply);
	return ret;
}
