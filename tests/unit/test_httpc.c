/*
 * test_httpc.c: the HTTP/JSON client (src/common/httpc.c).
 *
 * - httpc_parse_response on whole answers: what it accepts (a length, no
 *   length and the end of the stream, chunked in one or several chunks,
 *   any JSON value, a status of any class) and what it refuses as
 *   ERR_INVALID (not HTTP, incomplete, a bad chunk, a body that is not
 *   JSON), every one also cut at every byte.
 * - httpc_exchange against a peer written here, a thread on the other end
 *   of a socketpair: the request it sends (method, target, headers, body,
 *   its end), good answers, answers in small pieces, a peer that closes
 *   early, with or without reading (ERR_INVALID, ERR_UNREACHABLE), one that
 *   never answers or never reads (ERR_TIMEOUT through SO_RCVTIMEO and
 *   SO_SNDTIMEO), and the 16 MiB bound on an answer.
 * - httpc_request_url: URLs refused, a refused connection
 *   (ERR_UNREACHABLE), a request to a server on 127.0.0.1 at a port the
 *   kernel chose (the URL's prefix and the path joined), its timeout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/common.h"

/* ---- link-time fake: realloc fails when armed (WRAP_test_httpc) ---- */

void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);

static bool realloc_fails;

void *
__wrap_realloc(void *p, size_t size)
{
	if (realloc_fails)
		return NULL;
	return __real_realloc(p, size);
}

/* ---- httpc_parse_response ---- */

static int
parse(const char *text, int *status, json_t **reply, struct err *err)
{
	err_clear(err);
	return httpc_parse_response(text, strlen(text), status, reply, err);
}

static json_t *
parse_ok(const char *text, int want_status)
{
	struct err err;
	json_t *reply = NULL;
	int status = 0;

	if (parse(text, &status, &reply, &err) != 0)
		fail_msg("refused (%s): %s", err.msg, text);
	assert_int_equal(status, want_status);
	assert_non_null(reply);
	return reply;
}

static void
parse_refused(const char *text, const char *why)
{
	struct err err;
	json_t *reply = (json_t *)1;
	int status = 0;

	if (parse(text, &status, &reply, &err) != -1)
		fail_msg("accepted: %s", text);
	assert_int_equal(err.kind, ERR_INVALID);
	assert_null(reply);
	if (why != NULL && strstr(err.msg, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err.msg, why);
}

static void
test_parse_good(void **state)
{
	json_t *r;

	r = parse_ok("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	             "Content-Length: 11\r\n\r\n{\"ok\":true}",
	    200);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* A refusal is an answer here: the caller reads the status. */
	r = parse_ok("HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 17\r\n\r\n"
	             "{\"error\":\"no\"}   ",
	    422);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "no");
	json_decref(r);
	/* Any JSON value. */
	r = parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[1,2]", 200);
	assert_int_equal(json_array_size(r), 2);
	json_decref(r);
	r = parse_ok("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n42", 500);
	assert_int_equal(json_integer_value(r), 42);
	json_decref(r);
	/* No length: the body ends with the stream. */
	r = parse_ok("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\":1}", 200);
	assert_int_equal(json_integer_value(json_object_get(r, "a")), 1);
	json_decref(r);
	r = parse_ok("HTTP/1.0 201 Created\r\n\r\n\"made\"", 201);
	assert_string_equal(json_string_value(r), "made");
	json_decref(r);
	/* What follows a complete answer is not read. */
	r = parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 500 No\r\n\r\n", 200);
	assert_int_equal(json_object_size(r), 0);
	json_decref(r);
}

static void
test_parse_chunked(void **state)
{
	json_t *r;

	r = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "7\r\n{\"a\":1}\r\n0\r\n\r\n",
	    200);
	assert_int_equal(json_integer_value(json_object_get(r, "a")), 1);
	json_decref(r);
	/* Several chunks (a proxy's re-chunking): the body is their bytes
	 * only, without the chunk framing between them. */
	r = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "3\r\n{\"a\r\n4\r\n\":12\r\n1;ext=1\r\n}\r\n0\r\n\r\n",
	    200);
	assert_int_equal(json_integer_value(json_object_get(r, "a")), 12);
	json_decref(r);
	r = parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "2\r\n[1\r\n2\r\n,2\r\n1\r\n]\r\n0\r\nX-Trailer: 1\r\n\r\n",
	    200);
	assert_int_equal(json_array_size(r), 2);
	assert_int_equal(json_integer_value(json_array_get(r, 1)), 2);
	json_decref(r);
	parse_refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
	    "malformed HTTP answer");
	/* The last chunk never came. */
	parse_refused(
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "incomplete");
}

static void
test_parse_refused(void **state)
{
	struct err err;
	json_t *reply;
	int status = 0;

	parse_refused("", "incomplete");
	parse_refused("SSH-2.0-OpenSSH_9.2\r\n", "malformed HTTP answer");
	parse_refused("HTTP/1.1 abc OK\r\n\r\n{}", "malformed HTTP answer");
	parse_refused("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "malformed HTTP answer");
	/* The stream ended before the length it declared. */
	parse_refused("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "incomplete");
	parse_refused("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "incomplete");
	/* Not JSON: the message names the status. */
	parse_refused("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
	              "Content-Length: 13\r\n\r\n<html></html>",
	    "answer (HTTP 502) is not JSON");
	parse_refused("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n{\"a\":1", "is not JSON");
	parse_refused("HTTP/1.1 204 No Content\r\n\r\n", "(HTTP 204) is not JSON");
	{
		static const char nul[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\0{}";
		reply = (json_t *)1;
		assert_int_equal(
		    httpc_parse_response(nul, sizeof(nul) - 1, &status, &reply, &err), -1);
		assert_int_equal(err.kind, ERR_INVALID);
		assert_non_null(strstr(err.msg, "is not JSON"));
		assert_null(reply);
	}
	/* The status is still given with a body that is not JSON. */
	assert_int_equal(
	    parse("HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", &status, &reply, &err), -1);
	assert_int_equal(status, 503);
}

/* Every good answer, cut at every byte, is incomplete (never accepted as
 * something else, never read past its end: ASan sees the exact buffer). */
static void
test_parse_cut(void **state)
{
	static const char *const answers[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\n{\"a\r\n4\r\n\":12\r\n1\r\n}\r\n0\r\n\r\n",
	};
	struct err err;
	json_t *reply;
	int status;

	for (size_t a = 0; a < sizeof(answers) / sizeof(answers[0]); a++) {
		size_t len = strlen(answers[a]);

		for (size_t cut = 0; cut < len; cut++) {
			char *buf = malloc(cut + 1);

			assert_non_null(buf);
			memcpy(buf, answers[a], cut);
			err_clear(&err);
			reply = NULL;
			if (httpc_parse_response(buf, cut, &status, &reply, &err) != -1)
				fail_msg("answer %zu cut at %zu accepted", a, cut);
			assert_int_equal(err.kind, ERR_INVALID);
			assert_null(reply);
			free(buf);
		}
	}
}

/* ---- httpc_exchange against a peer thread ---- */

enum peer_mode {
	PEER_ANSWER,       /* read the request to its end, write the answer, close */
	PEER_CLOSE,        /* read the request, close without an answer */
	PEER_CLOSE_UNREAD, /* wait for the request, close without reading it */
	PEER_SILENT,       /* read the request, then say nothing until told to go */
	PEER_DEAF,         /* read nothing, say nothing, until told to go */
	PEER_EARLY,        /* write the answer, read a little of the request, close */
	PEER_RESET,        /* write the answer, wait for the request, close unread */
};

struct peer {
	enum peer_mode mode;
	int fd;
	const char *answer;
	size_t answer_len;
	size_t chunk;       /* write the answer in pieces of this size (0: at once) */
	int quit[2];        /* a byte here ends PEER_SILENT and PEER_DEAF */
	char request[8192]; /* the start of what it read */
	size_t request_len;
	pthread_t thread;
};

/* Reads until the client ends its request (shutdown), keeping its first
 * bytes. */
static void
peer_read_request(struct peer *p)
{
	char scratch[4096];
	ssize_t n;

	for (;;) {
		if (p->request_len + 1 < sizeof(p->request))
			n = recv(p->fd, p->request + p->request_len,
			    sizeof(p->request) - 1 - p->request_len, 0);
		else
			n = recv(p->fd, scratch, sizeof(scratch), 0);
		if (n <= 0)
			break;
		if (p->request_len + 1 < sizeof(p->request))
			p->request_len += (size_t)n;
	}
	p->request[p->request_len] = '\0';
}

static void
peer_wait_quit(struct peer *p)
{
	struct pollfd pfd = {.fd = p->quit[0], .events = POLLIN};

	(void)poll(&pfd, 1, 30000);
}

/* Writes the answer, in pieces of p->chunk bytes when set. */
static void
peer_write_answer(struct peer *p)
{
	size_t off = 0, n;
	ssize_t w;

	while (off < p->answer_len) {
		n = p->answer_len - off;
		if (p->chunk != 0 && p->chunk < n)
			n = p->chunk;
		w = send(p->fd, p->answer + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* Waits for the first bytes of the request, reading none. */
static void
peer_wait_request(struct peer *p)
{
	struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

	(void)poll(&pfd, 1, 30000);
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	char head[64];

	if (p->mode == PEER_ANSWER || p->mode == PEER_CLOSE || p->mode == PEER_SILENT)
		peer_read_request(p);
	if (p->mode == PEER_ANSWER || p->mode == PEER_EARLY || p->mode == PEER_RESET)
		peer_write_answer(p);
	if (p->mode == PEER_CLOSE_UNREAD || p->mode == PEER_RESET)
		peer_wait_request(p);
	if (p->mode == PEER_EARLY)
		(void)recv(p->fd, head, sizeof(head), 0);
	if (p->mode == PEER_SILENT || p->mode == PEER_DEAF)
		peer_wait_quit(p);
	close(p->fd);
	return NULL;
}

static void
set_timeout(int fd, int opt, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)), 0);
}

/* Starts a peer; returns the client's end of the connection. Both ends
 * give up after 10 s of silence: a test that goes wrong fails, never hangs. */
static int
peer_start(struct peer *p, enum peer_mode mode, const char *answer, size_t answer_len)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->answer = answer;
	p->answer_len = answer_len;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe2(p->quit, O_CLOEXEC), 0);
	p->fd = sv[1];
	set_timeout(sv[0], SO_RCVTIMEO, 10000);
	set_timeout(sv[1], SO_RCVTIMEO, 10000);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
	return sv[0];
}

/* Tells the peer to go, closes the client's end (a peer still reading
 * sees its end) and waits for it. */
static void
peer_end(struct peer *p, int client)
{
	assert_int_equal(write(p->quit[1], "q", 1), 1);
	close(client);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	close(p->quit[0]);
	close(p->quit[1]);
}

static const char good_answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Connection: close\r\nContent-Length: 16\r\n\r\n"
                                  "{\"serial\": \"0a\"}";

/* The request: request line, headers, the body's length and type, the
 * body; then the client's half of the stream ends. */
static void
test_exchange_request(void **state)
{
	struct peer p;
	struct err err = {0};
	json_t *body, *reply = NULL;
	char want[512];
	int fd, status = 0;

	body = json_pack("{s:s, s:i}", "csr", "AAAA", "n", 7);
	assert_non_null(body);
	fd = peer_start(&p, PEER_ANSWER, good_answer, strlen(good_answer));
	assert_int_equal(httpc_exchange(fd, "POST", "ca.example", "vtpmd/test", "/v1/ek-cert", body,
	                     &status, &reply, &err),
	    0);
	peer_end(&p, fd);
	assert_int_equal(status, 200);
	assert_string_equal(json_string_value(json_object_get(reply, "serial")), "0a");
	json_decref(reply);
	snprintf(want, sizeof(want),
	    "POST /v1/ek-cert HTTP/1.1\r\nHost: ca.example\r\nUser-Agent: vtpmd/test\r\n"
	    "Accept: application/json\r\nConnection: close\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen("{\"csr\":\"AAAA\",\"n\":7}"), "{\"csr\":\"AAAA\",\"n\":7}");
	assert_string_equal(p.request, want);
	json_decref(body);

	/* Without a body: no type, a zero length. */
	fd = peer_start(&p, PEER_ANSWER, good_answer, strlen(good_answer));
	assert_int_equal(
	    httpc_exchange(fd, "GET", "h", "a", "/v1/list", NULL, &status, &reply, &err), 0);
	peer_end(&p, fd);
	assert_string_equal(p.request, "GET /v1/list HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\n"
	                               "Accept: application/json\r\nConnection: close\r\n"
	                               "Content-Length: 0\r\n\r\n");
	json_decref(reply);
}

/* An answer that arrives a few bytes at a time is read whole. */
static void
test_exchange_trickled_answer(void **state)
{
	static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                              "5\r\n{\"a\":\r\n3\r\n 5}\r\n0\r\n\r\n";
	struct peer p;
	struct err err = {0};
	json_t *reply = NULL;
	int fd, status = 0;

	for (size_t chunk = 1; chunk <= 7; chunk += 3) {
		fd = peer_start(&p, PEER_ANSWER, good_answer, strlen(good_answer));
		p.chunk = chunk;
		assert_int_equal(
		    httpc_exchange(fd, "GET", "h", "a", "/", NULL, &status, &reply, &err), 0);
		peer_end(&p, fd);
		assert_string_equal(json_string_value(json_object_get(reply, "serial")), "0a");
		json_decref(reply);
	}
	fd = peer_start(&p, PEER_ANSWER, chunked, strlen(chunked));
	p.chunk = 2;
	assert_int_equal(httpc_exchange(fd, "GET", "h", "a", "/", NULL, &status, &reply, &err), 0);
	peer_end(&p, fd);
	assert_int_equal(json_integer_value(json_object_get(reply, "a")), 5);
	json_decref(reply);
}

/* Returns httpc_exchange's result with err, and checks that it gave no
 * reply when it failed. */
static int
exchange(int fd, struct err *err)
{
	json_t *reply = (json_t *)1;
	int status = -1, rc;

	err_clear(err);
	rc = httpc_exchange(fd, "GET", "h", "a", "/", NULL, &status, &reply, err);
	if (rc == -1) {
		assert_null(reply);
		assert_int_equal(status, 0);
	} else {
		json_decref(reply);
	}
	return rc;
}

static void
test_exchange_peer_closes(void **state)
{
	static const char half[] = "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"se";
	struct peer p;
	struct err err;
	int fd, sv[2];

	/* After part of an answer. */
	fd = peer_start(&p, PEER_ANSWER, half, strlen(half));
	assert_int_equal(exchange(fd, &err), -1);
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_INVALID);
	assert_non_null(strstr(err.msg, "incomplete"));

	/* After reading the request, without a word. */
	fd = peer_start(&p, PEER_CLOSE, NULL, 0);
	assert_int_equal(exchange(fd, &err), -1);
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_INVALID);

	/* Without reading it: the connection is reset. */
	fd = peer_start(&p, PEER_CLOSE_UNREAD, NULL, 0);
	assert_int_equal(exchange(fd, &err), -1);
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_UNREACHABLE);

	/* Gone before the request was sent: no SIGPIPE, the answer (none)
	 * is still looked for. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(exchange(sv[0], &err), -1);
	assert_true(err.kind == ERR_INVALID || err.kind == ERR_UNREACHABLE);
	close(sv[0]);

	/* Not a socket at all. */
	err_clear(&err);
	assert_int_equal(exchange(-1, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
}

/* A refusal answered before the request was read whole (EPIPE on the
 * rest), or an answer followed by a reset (the server closed without
 * reading the request): the answer is still the answer. */
static void
test_exchange_early_answer(void **state)
{
	static const char refusal[] = "HTTP/1.1 413 Too Large\r\nContent-Length: 17\r\n\r\n"
	                              "{\"error\":\"size\"}\n";
	char *big = malloc(4 << 20);
	json_t *body, *reply = NULL;
	struct err err = {0};
	struct peer p;
	int fd, status = 0;

	assert_non_null(big);
	memset(big, 'a', (4 << 20) - 1);
	big[(4 << 20) - 1] = '\0';
	body = json_pack("{s:s}", "blob", big);
	assert_non_null(body);
	fd = peer_start(&p, PEER_EARLY, refusal, strlen(refusal));
	if (httpc_exchange(fd, "POST", "h", "a", "/", body, &status, &reply, &err) != 0)
		fail_msg("httpc_exchange: %s", err.msg);
	peer_end(&p, fd);
	assert_int_equal(status, 413);
	assert_string_equal(json_string_value(json_object_get(reply, "error")), "size");
	json_decref(reply);
	json_decref(body);
	free(big);

	fd = peer_start(&p, PEER_RESET, good_answer, strlen(good_answer));
	if (httpc_exchange(fd, "GET", "h", "a", "/", NULL, &status, &reply, &err) != 0)
		fail_msg("httpc_exchange: %s", err.msg);
	peer_end(&p, fd);
	assert_int_equal(status, 200);
	json_decref(reply);
}

/* A peer that never answers: ERR_TIMEOUT once SO_RCVTIMEO has passed. */
static void
test_exchange_receive_timeout(void **state)
{
	struct peer p;
	struct err err;
	int64_t t0, waited;
	int fd;

	fd = peer_start(&p, PEER_SILENT, NULL, 0);
	set_timeout(fd, SO_RCVTIMEO, 100);
	t0 = mono_ms();
	assert_int_equal(exchange(fd, &err), -1);
	waited = mono_ms() - t0;
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_TIMEOUT);
	assert_non_null(strstr(err.msg, "no answer within the time limit"));
	assert_true(waited >= 90 && waited < 5000);
	/* It had the whole request. */
	assert_non_null(strstr(p.request, "GET / HTTP/1.1\r\n"));
}

/* A peer that reads nothing while a large body is sent: ERR_TIMEOUT once
 * SO_SNDTIMEO has passed. */
static void
test_exchange_send_timeout(void **state)
{
	char *big = malloc(2 << 20);
	struct peer p;
	struct err err = {0};
	json_t *body, *reply = NULL;
	int fd, status = 0;

	assert_non_null(big);
	memset(big, 'b', (2 << 20) - 1);
	big[(2 << 20) - 1] = '\0';
	body = json_pack("{s:s}", "blob", big);
	assert_non_null(body);
	fd = peer_start(&p, PEER_DEAF, NULL, 0);
	set_timeout(fd, SO_SNDTIMEO, 100);
	assert_int_equal(
	    httpc_exchange(fd, "POST", "h", "a", "/", body, &status, &reply, &err), -1);
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_TIMEOUT);
	assert_non_null(strstr(err.msg, "sending the request: timed out"));
	assert_null(reply);
	json_decref(body);
	free(big);
}

/* An answer of HTTPC_MAX_RESPONSE bytes is read; one byte more is refused
 * (ERR_INVALID) without being read to its end. */
static char *
sized_answer(size_t total)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[";
	char *a = malloc(total);

	assert_non_null(a);
	memcpy(a, head, strlen(head));
	memset(a + strlen(head), ' ', total - strlen(head) - 1);
	a[total - 1] = ']';
	return a;
}

static void
test_exchange_answer_bound(void **state)
{
	char *answer = sized_answer(HTTPC_MAX_RESPONSE + 1);
	struct peer p;
	struct err err;
	int fd;

	fd = peer_start(&p, PEER_ANSWER, answer, HTTPC_MAX_RESPONSE + 1);
	assert_int_equal(exchange(fd, &err), -1);
	/* The client gave up: the peer's writes fail, it ends. */
	close(fd);
	assert_int_equal(pthread_join(p.thread, NULL), 0);
	close(p.quit[0]);
	close(p.quit[1]);
	assert_int_equal(err.kind, ERR_INVALID);
	assert_non_null(strstr(err.msg, "answer larger than 16777216 bytes"));

	answer[HTTPC_MAX_RESPONSE - 1] = ']';
	fd = peer_start(&p, PEER_ANSWER, answer, HTTPC_MAX_RESPONSE);
	assert_int_equal(exchange(fd, &err), 0);
	peer_end(&p, fd);
	free(answer);
}

/* Memory running out while an answer is read, or its chunks joined, is
 * said as such (ERR_FAILED), never left unexplained. */
static void
test_out_of_memory(void **state)
{
	static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                              "3\r\n{\"a\r\n4\r\n\":12\r\n1\r\n}\r\n0\r\n\r\n";
	char *answer = sized_answer(100000);
	struct peer p;
	struct err err;
	json_t *reply = (json_t *)1;
	int fd, status;

	fd = peer_start(&p, PEER_ANSWER, answer, 100000);
	realloc_fails = true;
	assert_int_equal(exchange(fd, &err), -1);
	realloc_fails = false;
	peer_end(&p, fd);
	assert_int_equal(err.kind, ERR_FAILED);
	assert_string_equal(err.msg, "out of memory");

	err_clear(&err);
	realloc_fails = true;
	assert_int_equal(httpc_parse_response(chunked, strlen(chunked), &status, &reply, &err), -1);
	realloc_fails = false;
	assert_int_equal(err.kind, ERR_FAILED);
	assert_string_equal(err.msg, "out of memory");
	assert_null(reply);
	free(answer);
}

/* ---- httpc_request_url ---- */

static int
url_request(
    const char *url, const char *path, int timeout_s, int *status, json_t **reply, struct err *err)
{
	err_clear(err);
	return httpc_request_url(
	    url, NULL, "vtpmd/test", timeout_s, "GET", path, NULL, status, reply, err);
}

static void
test_url_refused(void **state)
{
	static const char *const bad[] = {"", "ftp://127.0.0.1", "http://", "https://",
	    "http:///x", "http://:80", "http://127.0.0.1:", "http://127.0.0.1:/x", "127.0.0.1:80",
	    "http://127.0.0.1:123456789012345678"};
	char longhost[400];
	struct err err;
	json_t *reply = (json_t *)1;
	int status = -1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (url_request(bad[i], "/", 1, &status, &reply, &err) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(err.kind, ERR_INVALID);
		assert_non_null(strstr(err.msg, "not an https://HOST[:PORT] URL"));
		assert_null(reply);
		assert_int_equal(status, 0);
	}
	/* https:// without a root or pin to check the server by */
	assert_int_equal(url_request("https://127.0.0.1:1", "/", 1, &status, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_INVALID);
	assert_non_null(strstr(err.msg, "no TLS root or pin"));
	snprintf(longhost, sizeof(longhost), "http://%0300d:80", 7);
	assert_int_equal(url_request(longhost, "/", 1, &status, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_INVALID);
}

/* Plain http:// reaches loopback addresses only: any other is refused
 * before a connection is tried (192.0.2.1, TEST-NET-1, would time out). */
static void
test_url_plain_http_loopback_only(void **state)
{
	static const char *const off[] = {"http://192.0.2.1:8080", "http://10.1.2.3",
	    "http://0.0.0.0:80", "http://128.0.0.1:80"};
	struct err err;
	json_t *reply = NULL;
	int status = -1;

	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		if (url_request(off[i], "/", 30, &status, &reply, &err) != -1)
			fail_msg("\"%s\" reached", off[i]);
		assert_int_equal(err.kind, ERR_REFUSED);
		assert_non_null(strstr(err.msg, "plain http:// is for loopback addresses only"));
		assert_null(reply);
	}
}

/* A TCP socket on 127.0.0.1 at a port the kernel chose; listening or
 * not. */
static int
tcp_socket(bool listening, int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Nothing listens at the port (it stays bound here, so nobody else can
 * take it meanwhile). */
static void
test_url_unreachable(void **state)
{
	struct err err;
	json_t *reply = NULL;
	char url[64];
	int fd, port, status;

	fd = tcp_socket(false, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	assert_int_equal(url_request(url, "/", 2, &status, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_non_null(strstr(err.msg, "connecting to 127.0.0.1:"));
	assert_null(reply);
	close(fd);
}

/* A server thread: accepts one connection and runs a peer on it. */
struct server {
	int listen_fd;
	struct peer p;
	pthread_t thread;
};

static void *
server_main(void *arg)
{
	struct server *s = arg;

	s->p.fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (s->p.fd != -1)
		peer_main(&s->p);
	return NULL;
}

static void
server_start(struct server *s, enum peer_mode mode, const char *answer, int *port)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = tcp_socket(true, port);
	s->p.mode = mode;
	s->p.answer = answer;
	s->p.answer_len = answer != NULL ? strlen(answer) : 0;
	assert_int_equal(pipe2(s->p.quit, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void
server_end(struct server *s)
{
	assert_int_equal(write(s->p.quit[1], "q", 1), 1);
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	close(s->p.quit[0]);
	close(s->p.quit[1]);
	close(s->listen_fd);
}

/* The URL's prefix (its trailing slash dropped) and the path make the
 * target; the host is named. */
static void
test_url_request(void **state)
{
	struct server s;
	struct err err;
	json_t *reply = NULL;
	char url[64];
	int port, status = 0;

	server_start(&s, PEER_ANSWER, good_answer, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ca/", port);
	if (url_request(url, "/v1/ek-cert", 5, &status, &reply, &err) != 0)
		fail_msg("httpc_request_url: %s", err.msg);
	server_end(&s);
	assert_int_equal(status, 200);
	assert_string_equal(json_string_value(json_object_get(reply, "serial")), "0a");
	json_decref(reply);
	assert_true(strncmp(s.p.request, "GET /ca/v1/ek-cert HTTP/1.1\r\nHost: 127.0.0.1\r\n",
	                strlen("GET /ca/v1/ek-cert HTTP/1.1\r\nHost: 127.0.0.1\r\n")) == 0);
	assert_non_null(strstr(s.p.request, "User-Agent: vtpmd/test\r\n"));
}

/* timeout_s bounds the wait for a server that says nothing. */
static void
test_url_timeout(void **state)
{
	struct server s;
	struct err err;
	json_t *reply = NULL;
	char url[64];
	int64_t t0, waited;
	int port, status = 0;

	server_start(&s, PEER_SILENT, NULL, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	t0 = mono_ms();
	assert_int_equal(url_request(url, "/", 1, &status, &reply, &err), -1);
	waited = mono_ms() - t0;
	server_end(&s);
	assert_int_equal(err.kind, ERR_TIMEOUT);
	assert_true(waited >= 900 && waited < 10000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_chunked),
	    cmocka_unit_test(test_parse_refused),
	    cmocka_unit_test(test_parse_cut),
	    cmocka_unit_test(test_exchange_request),
	    cmocka_unit_test(test_exchange_trickled_answer),
	    cmocka_unit_test(test_exchange_peer_closes),
	    cmocka_unit_test(test_exchange_early_answer),
	    cmocka_unit_test(test_exchange_receive_timeout),
	    cmocka_unit_test(test_exchange_send_timeout),
	    cmocka_unit_test(test_exchange_answer_bound),
	    cmocka_unit_test(test_out_of_memory),
	    cmocka_unit_test(test_url_refused),
	    cmocka_unit_test(test_url_plain_http_loopback_only),
	    cmocka_unit_test(test_url_unreachable),
	    cmocka_unit_test(test_url_request),
	    cmocka_unit_test(test_url_timeout),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
