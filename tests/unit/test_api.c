/*
 * test_api.c: the control API server (src/common/api.c): api_parse over good and
 * bad requests, split at every byte, and whole exchanges through a real
 * api_listen socket in a fresh directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"

/* --- api_parse ------------------------------------------------------------ */

struct parsed {
	enum api_parse res;
	int status;
	struct err err;
	struct api_request req;
};

static void
parse(const char *s, struct parsed *p)
{
	p->res =
	    api_parse((const uint8_t *)s, strlen(s), &p->req, &p->status, &p->err);
}

/* Expects s to be refused with status, and nothing left to free. */
static void
expect_error(const char *s, int status, const char *why_part)
{
	struct parsed p;

	parse(s, &p);
	if (p.res != API_PARSE_ERROR || p.status != status)
		fail_msg("expected %d for %.200s, got result %d status %d (%s)", status, s, p.res,
		    p.status, p.err.msg);
	assert_null(p.req.body);
	assert_true(p.err.msg[0] != '\0');
	if (why_part != NULL && strstr(p.err.msg, why_part) == NULL)
		fail_msg("reason '%s' lacks '%s'", p.err.msg, why_part);
}

/* Every strict prefix of s is INCOMPLETE and asks for more than it has;
 * s itself is COMPLETE. */
static void
expect_complete_only_whole(const char *s)
{
	size_t len = strlen(s);
	struct api_request req;
	struct err err;
	int status;

	for (size_t k = 0; k < len; k++) {
		enum api_parse r =
		    api_parse((const uint8_t *)s, k, &req, &status, &err);
		if (r != API_PARSE_INCOMPLETE)
			fail_msg("prefix of %zu/%zu bytes: result %d status %d (%s)", k, len, r,
			    status, err.msg);
		assert_true(req.need > k);
		assert_null(req.body);
	}
	assert_int_equal(api_parse((const uint8_t *)s, len, &req, &status, &err),
	    API_PARSE_COMPLETE);
	assert_int_equal(req.need, len);
	api_request_clear(&req);
}

static const char *const good_requests[] = {
    "GET /v1/instances HTTP/1.1\r\nHost: vtpmd\r\n\r\n",
    "GET /v1/instances/vm-a?x=1 HTTP/1.0\r\n\r\n",
    "POST /v1/instances HTTP/1.1\r\nHost: vtpmd\r\nContent-Type: application/json\r\n"
    "Content-Length: 31\r\n\r\n{\"name\": \"vm-a\", \"tpm\": \"2.0\"}\n",
    "POST /v1/instances/vm-a/start HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    "DELETE /v1/instances/vm-a?force=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v1/host HTTP/1.1\nHost: vtpmd\n\n",
};

static void
test_parse_get(void **state)
{
	struct parsed p;

	parse(good_requests[0], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(p.req.method, API_GET);
	assert_string_equal(p.req.path, "/v1/instances");
	assert_string_equal(p.req.query, "");
	assert_null(p.req.body);
	api_request_clear(&p.req);
	assert_null(p.req.body);
}

static void
test_parse_query_and_decoding(void **state)
{
	struct parsed p;

	parse("GET /v1/instances/vm%2Da%5f1?force=1&x=%41#frag HTTP/1.1\r\n\r\n", &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_string_equal(p.req.path, "/v1/instances/vm-a_1");
	assert_string_equal(p.req.query, "force=1&x=%41");
	api_request_clear(&p.req);

	parse(good_requests[1], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_string_equal(p.req.path, "/v1/instances/vm-a");
	assert_string_equal(p.req.query, "x=1");
	api_request_clear(&p.req);
}

static void
test_parse_post_body(void **state)
{
	struct parsed p;
	json_t *body;

	parse(good_requests[2], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(p.req.method, API_POST);
	assert_string_equal(p.req.path, "/v1/instances");
	body = (json_t *)p.req.body;
	assert_non_null(body);
	assert_true(json_is_object(body));
	assert_string_equal(json_string_value(json_object_get(body, "name")), "vm-a");
	assert_string_equal(json_string_value(json_object_get(body, "tpm")), "2.0");
	api_request_clear(&p.req);

	parse(good_requests[3], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(p.req.method, API_POST);
	assert_null(p.req.body);
	api_request_clear(&p.req);
}

static void
test_parse_delete_and_other(void **state)
{
	struct parsed p;

	parse(good_requests[4], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(p.req.method, API_DELETE);
	assert_string_equal(p.req.path, "/v1/instances/vm-a");
	assert_string_equal(p.req.query, "force=1");
	api_request_clear(&p.req);

	/* Valid HTTP methods the API does not use reach the handler (405). */
	parse("PUT /v1/instances HTTP/1.1\r\n\r\n", &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(p.req.method, API_OTHER);
	api_request_clear(&p.req);
}

static void
test_parse_split_everywhere(void **state)
{
	for (size_t i = 0; i < sizeof(good_requests) / sizeof(good_requests[0]); i++)
		expect_complete_only_whole(good_requests[i]);
}

static void
test_parse_bad_method(void **state)
{
	expect_error("FOO /v1/instances HTTP/1.1\r\n\r\n", 400, "method");
	expect_error("get /v1/instances HTTP/1.1\r\n\r\n", 400, NULL);
	expect_error("1GET / HTTP/1.1\r\n\r\n", 400, NULL);
}

static void
test_parse_bad_version(void **state)
{
	expect_error("GET / HTTP/x.1\r\n\r\n", 400, "version");
	expect_error("GET / HXTP/1.1\r\n\r\n", 400, NULL);
	expect_error("GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0");
	expect_error("GET / HTTP/0.9\r\n\r\n", 505, NULL);
}

static void
test_parse_bad_target(void **state)
{
	expect_error("GET /v1/../etc/passwd HTTP/1.1\r\n\r\n", 400, "..");
	expect_error("GET /v1/instances/.. HTTP/1.1\r\n\r\n", 400, "..");
	expect_error("GET /v1/%2e%2e/x HTTP/1.1\r\n\r\n", 400, "..");
	expect_error("GET /v1/%2E%2E HTTP/1.1\r\n\r\n", 400, "..");
	expect_error("GET /v1/./x HTTP/1.1\r\n\r\n", 400, "'.'");
	expect_error("GET /v1/a%00b HTTP/1.1\r\n\r\n", 400, "%00");
	expect_error("GET /v1/a%0ab HTTP/1.1\r\n\r\n", 400, "control");
	expect_error("GET /v1/a%7fb HTTP/1.1\r\n\r\n", 400, "control");
	expect_error("GET /v1/a%20b HTTP/1.1\r\n\r\n", 400, "space");
	expect_error("GET /v1/a%ffb HTTP/1.1\r\n\r\n", 400, "non-ASCII");
	expect_error("GET /v1/a\tb HTTP/1.1\r\n\r\n", 400, NULL);
	expect_error("GET /v1/a\xc3\xa9 HTTP/1.1\r\n\r\n", 400, NULL);
	expect_error("GET /v1/a%2Fb HTTP/1.1\r\n\r\n", 400, "'/'");
	expect_error("GET /v1/a%zzb HTTP/1.1\r\n\r\n", 400, "escape");
	expect_error("GET /v1/a%4 HTTP/1.1\r\n\r\n", 400, "escape");
	expect_error("GET /v1/a% HTTP/1.1\r\n\r\n", 400, "escape");
	expect_error("GET /v1/x?a\tb HTTP/1.1\r\n\r\n", 400, NULL);
	expect_error("GET http://vtpmd/v1/instances HTTP/1.1\r\n\r\n", 400, "path");
	expect_error("GET * HTTP/1.1\r\n\r\n", 400, "path");
	expect_error("CONNECT vtpmd:80 HTTP/1.1\r\n\r\n", 400, NULL);
}

static void
test_parse_long_target(void **state)
{
	char req[2048], seg[300];

	memset(seg, 'a', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = '\0';
	snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\n\r\n", seg);
	expect_error(req, 414, "path");
	snprintf(req, sizeof(req), "GET /x?%s HTTP/1.1\r\n\r\n", seg);
	expect_error(req, 414, "query");
	snprintf(req, sizeof(req), "GET /%s%s%s%s HTTP/1.1\r\n\r\n", seg, seg, seg, seg);
	expect_error(req, 414, "target");
}

static void
test_parse_sizes(void **state)
{
	char *big;
	size_t head;
	struct parsed p;

	/* Refused as soon as the head declares too much. */
	expect_error("POST /v1/instances HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413,
	    "Content-Length");
	expect_error("POST /v1/instances HTTP/1.1\r\nContent-Length: 65537\r\n\r\n{", 413, NULL);
	expect_error("POST /v1/instances HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n"
	             "\r\n",
	    400, NULL);
	/* Head plus body just above the limit: refused before the body comes. */
	head = strlen("POST /x HTTP/1.1\r\nContent-Length: 65530\r\n\r\n");
	assert_true(head + 65530 > API_MAX_REQUEST);
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 65530\r\n\r\n", 413, NULL);

	/* A body of exactly the largest size that fits is accepted. */
	head = strlen("POST /x HTTP/1.1\r\nContent-Length: 65490\r\n\r\n");
	big = malloc(API_MAX_REQUEST + 2);
	assert_non_null(big);
	snprintf(big, API_MAX_REQUEST + 2, "POST /x HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
	    (size_t)API_MAX_REQUEST - head);
	assert_int_equal(strlen(big), head);
	big[head] = '{';
	big[head + 1] = '"';
	memset(big + head + 2, 'a', API_MAX_REQUEST - head - 6);
	memcpy(big + API_MAX_REQUEST - 4, "\":1}", 5);
	assert_int_equal(strlen(big), API_MAX_REQUEST);
	parse(big, &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_non_null(p.req.body);
	api_request_clear(&p.req);
	/* Any byte more is too much. */
	memcpy(big + API_MAX_REQUEST, "x", 2);
	expect_error(big, 413, NULL);
	free(big);

	/* A body still arriving when the buffer passes the limit. */
	big = malloc(API_MAX_REQUEST + 100);
	assert_non_null(big);
	head = (size_t)sprintf(big, "POST /x HTTP/1.1\r\nContent-Length: 65536\r\n\r\n");
	memset(big + head, ' ', API_MAX_REQUEST + 10 - head);
	big[API_MAX_REQUEST + 10] = '\0';
	expect_error(big, 413, NULL);
	free(big);
}

static void
test_parse_oversized_head(void **state)
{
	char *req = malloc(10000);
	size_t n;

	assert_non_null(req);
	n = (size_t)sprintf(req, "GET /v1/host HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', 9000 - n);
	req[9000] = '\0';
	/* Not finished and already too long. */
	expect_error(req, 431, NULL);
	strcpy(req + 9000, "\r\n\r\n");
	expect_error(req, 431, NULL);

	/* A head of exactly 8192 bytes is fine; 8193 is not. */
	n = (size_t)sprintf(req, "GET /v1/host HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', 8192 - 4 - n);
	strcpy(req + 8192 - 4, "\r\n\r\n");
	expect_complete_only_whole(req);
	n = (size_t)sprintf(req, "GET /v1/host HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', 8193 - 4 - n);
	strcpy(req + 8193 - 4, "\r\n\r\n");
	expect_error(req, 431, NULL);
	free(req);
}

static void
test_parse_bad_body(void **state)
{
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]", 400, "object");
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n\"x\"", 400, "object");
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nnull", 400, "object");
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n{\"a\":", 400, "JSON");
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n{\"a\":1}xx", 400, "JSON");
	expect_error(
	    "POST /x HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"a\":2}", 400, "JSON");
	expect_error(
	    "POST /x HTTP/1.1\r\nContent-Length: 14\r\n\r\n{\"a\":\"\\u0000\"}", 400, "JSON");
}

static void
test_parse_length_required(void **state)
{
	/* A body without Content-Length, and chunked bodies. */
	expect_error("POST /x HTTP/1.1\r\n\r\n{\"a\":1}", 411, "Content-Length");
	expect_error(
	    "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "Transfer-Encoding");
	expect_error("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n"
	             "0\r\n\r\n",
	    411, NULL);
	expect_error("POST /x HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 411, NULL);
	/* Both headers, or two lengths: malformed. */
	expect_error(
	    "POST /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, NULL);
}

/* X-Vtpmd-Instance: an instance name, kept; anything else refused. */
static void
test_parse_instance_header(void **state)
{
	char longer[256];
	struct parsed p;

	parse("POST /v1/virtualization/nonce HTTP/1.1\r\nx-vtpmd-INSTANCE: vm-a_1.b\r\n"
	      "Content-Length: 2\r\n\r\n{}",
	    &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_string_equal(p.req.instance, "vm-a_1.b");
	api_request_clear(&p.req);
	parse(good_requests[0], &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_string_equal(p.req.instance, "");
	api_request_clear(&p.req);
	expect_error("GET / HTTP/1.1\r\nX-Vtpmd-Instance: ../etc\r\n\r\n", 400,
	    "X-Vtpmd-Instance: not an instance name");
	expect_error("GET / HTTP/1.1\r\nX-Vtpmd-Instance: -a\r\n\r\n", 400, "instance name");
	expect_error("GET / HTTP/1.1\r\nX-Vtpmd-Instance: a b\r\n\r\n", 400, "instance name");
	snprintf(longer, sizeof(longer), "GET / HTTP/1.1\r\nX-Vtpmd-Instance: %065d\r\n\r\n", 0);
	expect_error(longer, 400, "longer than 64");
	snprintf(longer, sizeof(longer), "GET / HTTP/1.1\r\nX-Vtpmd-Instance: %064d\r\n\r\n", 0);
	parse(longer, &p);
	assert_int_equal(p.res, API_PARSE_COMPLETE);
	assert_int_equal(strlen(p.req.instance), 64);
	api_request_clear(&p.req);
}

static void
test_parse_trailing_data(void **state)
{
	expect_error("GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /y HTTP/1.1\r\n\r\n", 400,
	    "one request");
	expect_error("POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}{}", 400, NULL);
}

static void
test_parse_malformed_headers(void **state)
{
	expect_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, NULL);
	expect_error("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, NULL);
	expect_error("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, NULL);
	expect_error("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, NULL);
}

static void
test_parse_empty(void **state)
{
	struct api_request req;
	int status;
	struct err err;

	assert_int_equal(api_parse((const uint8_t *)"", 0, &req, &status, &err),
	    API_PARSE_INCOMPLETE);
	assert_int_equal(req.need, 1);
	/* the reason may be omitted (NULL). */
	assert_int_equal(
	    api_parse((const uint8_t *)"XX", 2, &req, &status, NULL), API_PARSE_ERROR);
	assert_int_equal(status, 400);
}

static void
test_error_object(void **state)
{
	struct api_response r = api_error(409, "instance vm-a exists", "pick another name");
	char *s;

	assert_int_equal(r.status, 409);
	s = json_dumps((json_t *)r.body, JSON_COMPACT);
	assert_string_equal(
	    s, "{\"error\":\"instance vm-a exists\",\"hint\":\"pick another name\"}");
	free(s);
	json_decref((json_t *)r.body);
	r = api_error(500, "broken", NULL);
	s = json_dumps((json_t *)r.body, JSON_COMPACT);
	assert_string_equal(s, "{\"error\":\"broken\"}");
	free(s);
	json_decref((json_t *)r.body);
}

/* --- the server, through a real socket -------------------------------------- */

struct fixture {
	char dir[64];
	char path[128];
	struct api_server *srv;
	int calls;
	size_t big; /* when non-zero, the handler answers with a string this long */
	struct api_request last;
	bool last_had_body;
	char last_body[256];
};

/* Echoes the request back: {"method", "path", "query", "body", "uid"}. */
static struct api_response
echo_handler(void *ctx, const struct api_request *req)
{
	struct fixture *f = ctx;
	static const char *const names[] = {"GET", "POST", "DELETE", "OTHER"};
	struct api_response r = {.status = 200};
	json_t *o;

	f->calls++;
	f->last = *req;
	f->last.body = NULL;
	f->last_had_body = req->body != NULL;
	if (req->body != NULL) {
		char *s = json_dumps((json_t *)req->body, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(f->last_body, sizeof(f->last_body), "%s", s);
		free(s);
	}
	if (strcmp(req->path, "/missing") == 0)
		return api_error(404, "no such thing", "look elsewhere");
	if (strcmp(req->path, "/later") == 0)
		return api_deferred();
	if (f->big != 0) {
		char *s = malloc(f->big + 1);
		memset(s, 'x', f->big);
		s[f->big] = '\0';
		r.body = (struct json_t *)json_pack("{s:s}", "big", s);
		free(s);
		return r;
	}
	o = json_pack("{s:s, s:s, s:s}", "method", names[req->method], "path", req->path, "query",
	    req->query);
	if (req->body != NULL)
		json_object_set(o, "body", (json_t *)req->body);
	r.body = (struct json_t *)o;
	if (req->method == API_POST)
		r.status = 201;
	return r;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_api.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/run/api.sock", f->dir);
	log_init("test_api", LOG_LEVEL_ERROR);
	f->srv = api_listen(f->path, echo_handler, f);
	assert_non_null(f->srv);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	api_close(f->srv);
	snprintf(p, sizeof(p), "%s/run", f->dir);
	rmdir(p);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static int
client_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One poll round of the server (and optionally client fd cfd for events),
 * then api_process. Returns cfd's revents. */
static short
serve_once(struct api_server *srv, int cfd, short cevents, int timeout)
{
	struct pollfd fds[API_MAX_CONNECTIONS + 2];
	int n = api_pollfds(srv, fds, API_MAX_CONNECTIONS + 1), t = api_next_timeout(srv);
	short rev = 0;

	if (cfd != -1)
		fds[n] = (struct pollfd){.fd = cfd, .events = cevents};
	if (t == -1 || t > timeout)
		t = timeout;
	assert_true(poll(fds, (nfds_t)n + (cfd != -1), t) >= 0);
	if (cfd != -1)
		rev = fds[n].revents;
	api_process(srv, fds, n);
	return rev;
}

/* Sends req (len bytes) on a new connection while serving, and returns
 * everything the server answered (NUL-terminated; *out_len bytes). */
static char *
exchange_fd(struct api_server *srv, int fd, const void *req, size_t len, size_t *out_len)
{
	size_t sent = 0, got = 0, cap = 1 << 16;
	char *out = malloc(cap + 1);
	int rounds = 0;

	assert_non_null(out);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	for (;;) {
		short ev = POLLIN | (sent < len ? POLLOUT : 0);
		short rev = serve_once(srv, fd, ev, 100);
		ssize_t n;

		assert_true(++rounds < 500);
		if (sent < len && (rev & POLLOUT)) {
			n = send(fd, (const char *)req + sent, len - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n == -1 && errno == EPIPE)
				sent = len;
		}
		if (rev & (POLLIN | POLLHUP | POLLERR)) {
			if (got == cap) {
				cap *= 2;
				out = realloc(out, cap + 1);
				assert_non_null(out);
			}
			n = recv(fd, out + got, cap - got, 0);
			if (n == 0 || (n == -1 && errno == ECONNRESET))
				break;
			if (n > 0)
				got += (size_t)n;
		}
	}
	close(fd);
	out[got] = '\0';
	if (out_len != NULL)
		*out_len = got;
	return out;
}

static char *
exchange(struct fixture *f, const char *req)
{
	int fd = client_connect(f->path);

	assert_true(fd >= 0);
	return exchange_fd(f->srv, fd, req, strlen(req), NULL);
}

static void
test_server_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char body[] =
	    "{\"method\":\"POST\",\"path\":\"/v1/instances\",\"query\":\"a=b\","
	    "\"body\":{\"name\":\"vm-a\"}}\n";
	char expect[512], *out;

	out = exchange(f, "POST /v1/instances?a=b HTTP/1.1\r\nHost: vtpmd\r\n"
	                  "Content-Length: 15\r\n\r\n{\"name\":\"vm-a\"}");
	snprintf(expect, sizeof(expect),
	    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s",
	    strlen(body), body);
	assert_string_equal(out, expect);
	free(out);
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->last.peer_uid, geteuid());
	assert_int_equal(f->last.peer_pid, getpid());
	assert_true(f->last_had_body);
	assert_string_equal(f->last_body, "{\"name\":\"vm-a\"}");

	out = exchange(f, "GET /missing HTTP/1.1\r\n\r\n");
	assert_string_equal(out,
	    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 50\r\n"
	    "Connection: close\r\n\r\n{\"error\":\"no such thing\",\"hint\":\"look elsewhere\"}\n");
	free(out);
	/* Nothing left open. */
	assert_int_equal(api_next_timeout(f->srv), -1);
}

static void
test_server_malformed(void **state)
{
	struct fixture *f = *state;
	char *out;

	out = exchange(f, "GET /v1/../x HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(out, "\"error\":\"'..' in path\""));
	assert_non_null(strstr(out, "\"hint\":"));
	free(out);
	out = exchange(f, "POST /x HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
	assert_non_null(strstr(out, "HTTP/1.1 413 "));
	free(out);
	assert_int_equal(f->calls, 0);
	/* The server still serves. */
	out = exchange(f, "GET /ok HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	free(out);
	assert_int_equal(f->calls, 1);
}

static void
test_server_refused_body_is_drained(void **state)
{
	struct fixture *f = *state;
	size_t len = 200000, n;
	char *req = malloc(len), *out;
	int fd;

	/* The head is refused at once; the client keeps sending its body and
	 * must still read the answer rather than a reset. */
	assert_non_null(req);
	n = (size_t)sprintf(req, "POST /x HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", len);
	memset(req + n, ' ', len - n);
	fd = client_connect(f->path);
	out = exchange_fd(f->srv, fd, req, len, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 413 "));
	free(out);
	free(req);
}

static void
test_server_eof_mid_request(void **state)
{
	struct fixture *f = *state;
	char *out;
	int fd;

	fd = client_connect(f->path);
	assert_int_equal(send(fd, "GET /x HT", 9, 0), 9);
	shutdown(fd, SHUT_WR);
	out = exchange_fd(f->srv, fd, "", 0, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 400 "));
	assert_non_null(strstr(out, "ended before"));
	free(out);

	/* A client that connects and closes gets nothing and costs nothing. */
	fd = client_connect(f->path);
	close(fd);
	for (int i = 0; i < 3; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(api_next_timeout(f->srv), -1);
	assert_int_equal(f->calls, 0);
}

static void
test_server_slow_reader(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *out, *body;
	int fd;

	/* A response far larger than the socket buffers: api_process must
	 * return while the client reads nothing, and the rest must follow. */
	f->big = 4u << 20;
	fd = client_connect(f->path);
	assert_int_equal(send(fd, "GET /big HTTP/1.1\r\n\r\n", 21, 0), 21);
	for (int i = 0; i < 5; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(f->calls, 1);
	assert_true(api_next_timeout(f->srv) > 0);
	assert_true(api_next_timeout(f->srv) <= API_IDLE_TIMEOUT_MS);
	out = exchange_fd(f->srv, fd, "", 0, &len);
	body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	assert_int_equal(strlen(body + 4), f->big + strlen("{\"big\":\"\"}\n"));
	free(out);
	f->big = 0;
}

/* Sends req on a new connection and serves a few rounds; the handler
 * deferred it (f->last.ticket names it). Returns the client's end. */
static int
send_deferred(struct fixture *f, const char *req)
{
	int fd = client_connect(f->path);
	char c;

	assert_true(fd >= 0);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	for (int i = 0; i < 5; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(strcmp(f->last.path, "/later"), 0);
	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	return fd;
}

static void
test_server_deferred(void **state)
{
	struct fixture *f = *state;
	uint64_t first, second;
	char *out;
	int a, b;

	/* A request answered later waits without a deadline, while others
	 * are served. */
	a = send_deferred(f, "GET /later HTTP/1.1\r\n\r\n");
	first = f->last.ticket;
	assert_true(first != 0);
	assert_int_equal(api_next_timeout(f->srv), -1);
	out = exchange(f, "GET /ok HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	free(out);
	b = send_deferred(f, "POST /later HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
	second = f->last.ticket;
	assert_true(second != first);

	/* Answered in the other order; each gets its own answer. */
	assert_int_equal(api_answer(f->srv, second, api_error(504, "too slow", "retry")), 0);
	out = exchange_fd(f->srv, b, "", 0, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 504 Gateway Timeout\r\n"));
	assert_non_null(strstr(out, "\"error\":\"too slow\""));
	free(out);
	assert_int_equal(api_answer(f->srv, first,
	    (struct api_response){.status = 200, .body = (struct json_t *)json_pack("{s:b}", "late", 1)}),
	    0);
	out = exchange_fd(f->srv, a, "", 0, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(out, "{\"late\":true}"));
	free(out);

	/* A ticket answered already, or never given, is refused (the body
	 * is freed all the same). */
	assert_int_equal(api_answer(f->srv, first, api_error(500, "twice", NULL)), -1);
	assert_int_equal(api_answer(f->srv, 0, api_error(500, "none", NULL)), -1);
	assert_int_equal(f->calls, 3);

	/* One still waiting when the server closes is closed with it. */
	a = send_deferred(f, "GET /later HTTP/1.1\r\n\r\n");
	close(a);
}

static bool
polls_fd(struct api_server *srv, int fd)
{
	struct pollfd fds[API_MAX_CONNECTIONS + 1];
	int n = api_pollfds(srv, fds, API_MAX_CONNECTIONS + 1);

	for (int i = 0; i < n; i++)
		if (fds[i].fd == fd)
			return true;
	return false;
}

/* Whether the server closed fd without answering (and fd is not open). */
static bool
closed_unanswered(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static void
test_server_connection_limit(void **state)
{
	struct fixture *f = *state;
	int fds[API_MAX_CONNECTIONS + 1], listener, closed = 0;
	struct pollfd pfd[API_MAX_CONNECTIONS + 1];
	char *out;

	assert_int_equal(api_pollfds(f->srv, pfd, API_MAX_CONNECTIONS + 1), 1);
	listener = pfd[0].fd;
	/* Every slot taken by a client that stalls: half send nothing, half
	 * the start of a request. */
	for (int i = 0; i < API_MAX_CONNECTIONS; i++) {
		fds[i] = client_connect(f->path);
		assert_true(fds[i] >= 0);
		if (i % 2 == 1)
			assert_int_equal(send(fds[i], "GET /x", 6, 0), 6);
	}
	for (int i = 0; i < 5; i++)
		serve_once(f->srv, -1, 0, 20);
	/* Full, but of stalled clients: the listener stays in the poll set. */
	assert_int_equal(
	    api_pollfds(f->srv, pfd, API_MAX_CONNECTIONS + 1), API_MAX_CONNECTIONS + 1);
	assert_true(polls_fd(f->srv, listener));
	/* With max too small, the listener comes first, then connections. */
	assert_int_equal(api_pollfds(f->srv, pfd, 3), 3);

	/* A new client is served at once; the client silent longest (one that
	 * sent nothing) made room and was closed unanswered. */
	fds[API_MAX_CONNECTIONS] = client_connect(f->path);
	out = exchange_fd(f->srv, fds[API_MAX_CONNECTIONS], "GET /b HTTP/1.1\r\n\r\n", 19, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 "));
	assert_string_equal(f->last.path, "/b");
	free(out);
	for (int i = 0; i < API_MAX_CONNECTIONS; i++) {
		if (closed_unanswered(fds[i])) {
			closed++;
			assert_int_equal(i % 2, 0);
		}
		close(fds[i]);
	}
	assert_int_equal(closed, 1);
	for (int i = 0; i < 5; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(api_next_timeout(f->srv), -1);

	/* Requests being answered are never dropped: with every slot writing
	 * an answer its client does not read yet, the listener leaves the
	 * poll set and a new client waits in the backlog. */
	f->big = 512u << 10;
	for (int i = 0; i < API_MAX_CONNECTIONS; i++) {
		fds[i] = client_connect(f->path);
		assert_true(fds[i] >= 0);
		assert_int_equal(send(fds[i], "GET /big HTTP/1.1\r\n\r\n", 21, 0), 21);
	}
	for (int i = 0; i < 10 && f->calls < API_MAX_CONNECTIONS + 1; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(f->calls, API_MAX_CONNECTIONS + 1);
	assert_false(polls_fd(f->srv, listener));
	fds[API_MAX_CONNECTIONS] = client_connect(f->path);
	assert_int_equal(send(fds[API_MAX_CONNECTIONS], "GET /c HTTP/1.1\r\n\r\n", 19, 0), 19);
	for (int i = 0; i < 3; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(f->calls, API_MAX_CONNECTIONS + 1);
	/* Once one answer is taken, the waiting client gets the free slot. */
	out = exchange_fd(f->srv, fds[0], "", 0, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 "));
	free(out);
	f->big = 0;
	out = exchange_fd(f->srv, fds[API_MAX_CONNECTIONS], "", 0, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 "));
	assert_string_equal(f->last.path, "/c");
	free(out);
	for (int i = 1; i < API_MAX_CONNECTIONS; i++)
		close(fds[i]);
	for (int i = 0; i < 5; i++)
		serve_once(f->srv, -1, 0, 20);
	assert_int_equal(api_next_timeout(f->srv), -1);
}

static void
test_server_forbidden(void **state)
{
	struct fixture *f = *state;
	char dir[160];
	int pipefd[2], status;
	pid_t pid;

	if (geteuid() != 0)
		skip(); /* needs another uid to connect as */
	/* Let an unprivileged uid reach the socket, then check that it is
	 * refused by credentials rather than by file mode. */
	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[512] = "";
		size_t got = 0;
		ssize_t n;
		int fd;

		close(pipefd[0]);
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(3);
		fd = client_connect(f->path);
		if (fd == -1)
			_exit(4);
		if (send(fd, "GET /x HTTP/1.1\r\n\r\n", 19, MSG_NOSIGNAL) != 19)
			_exit(5);
		while ((n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		_exit(strstr(buf, "HTTP/1.1 403 Forbidden\r\n") != NULL ? 0 : 6);
	}
	close(pipefd[1]);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		serve_once(f->srv, -1, 0, 10);
	}
	close(pipefd[0]);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(f->calls, 0);
}

static void
test_listen_socket_file(void **state)
{
	struct fixture *f = *state;
	struct api_server *second;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	char dir[160], other[160];
	int fd;

	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	/* A live server is not replaced. */
	errno = 0;
	assert_null(api_listen(f->path, echo_handler, f));
	assert_int_equal(errno, EADDRINUSE);

	/* A stale socket is. */
	snprintf(other, sizeof(other), "%s/stale.sock", f->dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", other);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	second = api_listen(other, echo_handler, f);
	assert_non_null(second);
	api_close(second);
	assert_int_equal(lstat(other, &st), -1);

	/* Anything else at the path is left alone. */
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	errno = 0;
	assert_null(api_listen(other, echo_handler, f));
	assert_int_equal(errno, EEXIST);
	assert_int_equal(unlink(other), 0);

	/* A path too long for a unix socket. */
	memset(other, 'a', sizeof(other) - 1);
	other[0] = '/';
	other[sizeof(other) - 1] = '\0';
	assert_null(api_listen(other, echo_handler, f));
	assert_null(api_listen("", echo_handler, f));
	api_close(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_get),
	    cmocka_unit_test(test_parse_query_and_decoding),
	    cmocka_unit_test(test_parse_post_body),
	    cmocka_unit_test(test_parse_delete_and_other),
	    cmocka_unit_test(test_parse_split_everywhere),
	    cmocka_unit_test(test_parse_bad_method),
	    cmocka_unit_test(test_parse_bad_version),
	    cmocka_unit_test(test_parse_bad_target),
	    cmocka_unit_test(test_parse_long_target),
	    cmocka_unit_test(test_parse_sizes),
	    cmocka_unit_test(test_parse_oversized_head),
	    cmocka_unit_test(test_parse_bad_body),
	    cmocka_unit_test(test_parse_length_required),
	    cmocka_unit_test(test_parse_instance_header),
	    cmocka_unit_test(test_parse_trailing_data),
	    cmocka_unit_test(test_parse_malformed_headers),
	    cmocka_unit_test(test_parse_empty),
	    cmocka_unit_test(test_error_object),
	    cmocka_unit_test_setup_teardown(test_server_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_refused_body_is_drained, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_eof_mid_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_slow_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_deferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_connection_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_forbidden, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_socket_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
