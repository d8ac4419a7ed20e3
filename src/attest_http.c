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

#include <jansson.h>

#include "attest.h"
#include "vtpmd.h"

#define AH_TIMEOUT_S 30


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

int
attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, char *why, size_t why_len)
{
	char host[256], port[16], prefix[512], target[1024];
	int fd, rc;

	*reply = NULL;
	*status = 0;
	if (ah_parse_url(
	        base_url, host, sizeof(host), port, sizeof(port), prefix, sizeof(prefix)) == -1) {
		ah_fail(why, why_len, "%s: not an http://HOST:PORT URL", base_url);
		return -1;
	}
	snprintf(target, sizeof(target), "%s%s", prefix, path);
	if ((fd = ah_connect(host, port, why, why_len)) == -1)
		return -1;
	rc = httpc_exchange(fd, method, host, "vtpm-attest", target, body, status, reply, why,
	    why_len);
	close(fd);
	return rc == HTTPC_OK ? 0 : -1;
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
