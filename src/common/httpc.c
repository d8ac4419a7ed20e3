/*
 * httpc.c: the client side of vtpmd's HTTP/JSON protocols (vtpmctl to
 * vtpmd, vtpm-attest and vtpmd to vtpm-ca): one request on a connected
 * socket, the whole answer read until the server closes (servers answer
 * with "Connection: close"), parsed with http-parser, its body with
 * jansson. Connecting is the caller's business (unix or TCP), or
 * httpc_url.c's for a URL (which brings TLS: this file moves bytes through
 * whatever struct httpc_io says, so that a program without URLs, vtpmctl,
 * loads no libssl).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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


/* recv() or send() of io's bytes, or io->move's: n bytes, 0 at the end
 * of the stream, -1 with errno (EAGAIN when the socket's timeout passed). */
static ssize_t
httpc_io_move(const struct httpc_io *io, void *buf, size_t len, bool out)
{
	if (io->move != NULL)
		return io->move(io, buf, len, out);
	return out ? send(io->fd, buf, len, MSG_NOSIGNAL) : recv(io->fd, buf, len, 0);
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

/* Parses a whole HTTP response into r (its body, in buf or r->copy) and
 * *status; 0, or -1 with err (r->copy freed). */
static int
httpc_parse_whole(const char *buf, size_t len, struct httpc_reply *r, int *status, struct err *err)
{
	static const http_parser_settings settings = {
	    .on_body = httpc_on_body,
	    .on_message_complete = httpc_on_complete,
	};
	enum http_errno e;
	http_parser hp;

	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = r;
	http_parser_execute(&hp, &settings, buf, len);
	if (!r->done && HTTP_PARSER_ERRNO(&hp) == HPE_OK)
		http_parser_execute(&hp, &settings, buf, 0); /* end of stream */
	e = HTTP_PARSER_ERRNO(&hp);
	if (!r->nomem && r->done && (e == HPE_OK || e == HPE_PAUSED)) {
		*status = hp.status_code;
		return 0;
	}
	if (r->nomem)
		err_set(err, ERR_FAILED, "out of memory");
	else
		err_set(err, ERR_INVALID, "malformed HTTP answer (%s)",
		    r->done ? http_errno_description(e) : "incomplete");
	free(r->copy);
	r->copy = NULL;
	return -1;
}

/* Parses a whole HTTP response: status, then the body as JSON (any value). */
int
httpc_parse_response(const char *buf, size_t len, int *status, json_t **reply, struct err *err)
{
	struct httpc_reply r = {0};
	json_error_t jerr;

	*reply = NULL;
	if (httpc_parse_whole(buf, len, &r, status, err) == -1)
		return -1;
	*reply = json_loadb(r.body != NULL ? r.body : "", r.body_len, JSON_DECODE_ANY, &jerr);
	free(r.copy);
	if (*reply == NULL) {
		err_set(err, ERR_INVALID, "answer (HTTP %d) is not JSON: %s", *status, jerr.text);
		return -1;
	}
	return 0;
}

/* Parses a whole HTTP response: status, and the body as it is (malloc'd,
 * NUL-terminated, *body_len bytes; the caller frees it). 0, or -1 with
 * err. */
int
httpc_parse_raw(
    const char *buf, size_t len, int *status, char **body, size_t *body_len, struct err *err)
{
	struct httpc_reply r = {0};

	*body = NULL;
	*body_len = 0;
	if (httpc_parse_whole(buf, len, &r, status, err) == -1)
		return -1;
	if ((*body = malloc(r.body_len + 1)) == NULL) {
		free(r.copy);
		return err_set(err, ERR_FAILED, "out of memory");
	}
	if (r.body_len > 0)
		memcpy(*body, r.body, r.body_len);
	(*body)[r.body_len] = '\0';
	*body_len = r.body_len;
	free(r.copy);
	return 0;
}

/*
 * Sends METHOD target (with body, a JSON value, when not NULL) on the
 * connection io and reads the raw answer until the server closes.
 * Returns 0 with *resp (malloc'd, the caller frees it) and *resp_len, or
 * -1 with err (ERR_UNREACHABLE, ERR_TIMEOUT, ERR_INVALID when the answer
 * is too large).
 */
int
httpc_send_recv(const struct httpc_io *io, const char *method, const char *host, const char *agent,
    const char *headers, const char *target, const json_t *body, char **resp, size_t *resp_len,
    struct err *err)
{
	char *payload = NULL, *req = NULL;
	int n, ret = -1;

	*resp = NULL;
	if (body != NULL && (payload = json_dumps(body, JSON_COMPACT)) == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	n = asprintf(&req,
	    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: application/json\r\n"
	    "%sConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
	    method, target, host, agent, headers != NULL ? headers : "",
	    payload ? "Content-Type: application/json\r\n" : "",
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
	/* On a plain socket, the end of the request; over TLS the server's
	 * close_notify ends the answer, and a half-close would only add a
	 * record. */
	if (io->move == NULL)
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
	if (httpc_send_recv(&io, method, host, agent, NULL, target, body, &resp, &resp_len, err) ==
	    0)
		ret = httpc_parse_response(resp, resp_len, status, reply, err);
	free(resp);
	return ret;
}
