/*
 * test_manager.c: the manager's loop never waits (src/manager/): its
 * requests to CAs run in children with an overall deadline (caclient.c),
 * against CAs played here by forked servers on loopback: one that answers,
 * refuses, fails, trickles its answer or says nothing, and a port where
 * nobody listens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "manager/manager.h"

/* --- a CA on loopback --------------------------------------------------- */

enum fake_ca { CA_ANSWER, CA_REFUSE, CA_FAIL, CA_TRICKLE, CA_SILENT };

struct ca_server {
	int fd;	   /* the listening socket (-1 when closed) */
	pid_t pid; /* the server, or 0 (CA_SILENT: nobody accepts) */
	char url[64];
};

/* Reads a request until the client has sent it all (it shuts down its
 * side after sending). */
static void
ca_read_request(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
}

static void
ca_send(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* The server's side: one connection, answered as mode says. */
static void __attribute__((noreturn))
ca_serve(int lfd, enum fake_ca mode)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
	static const char refused[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 29\r\n\r\n"
				      "{\"error\":\"no\",\"hint\":\"ask\"}\n\n";
	static const char failed[] = "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}";
	static const char slow[] = "HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"pad\":\"";
	struct timespec pause = {.tv_nsec = 50 * 1000000};
	int fd = accept(lfd, NULL, NULL);

	if (fd == -1)
		_exit(1);
	ca_read_request(fd);
	switch (mode) {
	case CA_ANSWER: ca_send(fd, ok); break;
	case CA_REFUSE: ca_send(fd, refused); break;
	case CA_FAIL: ca_send(fd, failed); break;
	case CA_TRICKLE:
		for (size_t i = 0; i < sizeof(slow) - 1; i++) {
			if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1)
				_exit(0);
			nanosleep(&pause, NULL);
		}
		for (;;) {
			if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
				_exit(0);
			nanosleep(&pause, NULL);
		}
	case CA_SILENT: break;
	}
	close(fd);
	_exit(0);
}

/* A CA on 127.0.0.1, on a port the kernel picks. */
static void
ca_start(struct ca_server *ca, enum fake_ca mode)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ca->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ca->fd >= 0);
	assert_int_equal(bind(ca->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(ca->fd, 8), 0);
	assert_int_equal(getsockname(ca->fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(ca->url, sizeof(ca->url), "http://127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
	ca->pid = 0;
	if (mode == CA_SILENT)
		return; /* connections wait in the backlog, unanswered */
	ca->pid = fork();
	assert_true(ca->pid >= 0);
	if (ca->pid == 0)
		ca_serve(ca->fd, mode);
}

static void
ca_stop(struct ca_server *ca)
{
	if (ca->pid > 0) {
		kill(ca->pid, SIGKILL);
		waitpid(ca->pid, NULL, 0);
	}
	if (ca->fd != -1)
		close(ca->fd);
	ca->fd = -1;
	ca->pid = 0;
}

/* Moves c on, as the manager's loop does, until it ends or max_ms pass.
 * Returns how long it took (ms), or -1 when it did not end. */
static int64_t
ca_run(struct caclient *c, int max_ms)
{
	int64_t start = mono_ms(), wait;
	struct pollfd p;

	while (mono_ms() - start < max_ms) {
		p = (struct pollfd){.fd = caclient_fd(c), .events = POLLIN};
		wait = caclient_deadline(c) - mono_ms();
		wait = wait < 0 ? 0 : wait > 100 ? 100 : wait;
		assert_true(poll(&p, 1, (int)wait) >= 0);
		if (caclient_step(c))
			return mono_ms() - start;
	}
	return -1;
}

/* No child of this process is left: nothing to reap, nothing running. */
static void
assert_no_children(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static json_t *
ca_body(void)
{
	json_t *b = json_pack("{s:s}", "kind", "ck");

	assert_non_null(b);
	return b;
}

/* --- caclient: one request to a CA in a child -------------------------- */

static void
test_ca_answer(void **state)
{
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body(), *reply = NULL;

	ca_start(&ca, CA_ANSWER);
	c = caclient_post(ca.url, "/v1/privacy/challenge", body, 5, &err);
	assert_non_null(c);
	assert_true(caclient_fd(c) >= 0);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_fd(c), -1);
	assert_int_equal(caclient_result(c, &reply, &err), 0);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	/* Ended: more steps change nothing. */
	assert_true(caclient_step(c));
	json_decref(reply);
	caclient_free(c);
	json_decref(body);
	ca_stop(&ca);
	assert_no_children();
}

static void
test_ca_refused_and_failed(void **state)
{
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body(), *reply = NULL;
	char want[160];

	ca_start(&ca, CA_REFUSE);
	c = caclient_post(ca.url, "/x", body, 5, &err);
	assert_non_null(c);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_result(c, &reply, &err), -1);
	assert_null(reply);
	assert_int_equal(err.kind, ERR_REFUSED);
	snprintf(want, sizeof(want), "CA at %s refused /x (HTTP 403): no; CA's hint: ask", ca.url);
	assert_string_equal(err.msg, want);
	caclient_free(c);
	ca_stop(&ca);

	/* A CA that fails (5xx) is as good as unreachable. */
	ca_start(&ca, CA_FAIL);
	c = caclient_post(ca.url, "/x", body, 5, &err);
	assert_non_null(c);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_result(c, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_non_null(strstr(err.msg, "(HTTP 500): no reason given"));
	caclient_free(c);
	ca_stop(&ca);
	json_decref(body);
	assert_no_children();
}

static void
test_ca_unreachable(void **state)
{
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body(), *reply = NULL;
	char url[64];

	/* A port that was just free: nobody listens there. */
	ca_start(&ca, CA_SILENT);
	snprintf(url, sizeof(url), "%s", ca.url);
	ca_stop(&ca);
	c = caclient_post(url, "/x", body, 5, &err);
	assert_non_null(c);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_result(c, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_non_null(strstr(err.msg, "connecting to 127.0.0.1:"));
	assert_int_equal(strncmp(err.msg, "CA at http://127.0.0.1:", 23), 0);
	caclient_free(c);
	json_decref(body);
	assert_no_children();
}

/* A CA that trickles its answer, or says nothing: the request ends at its
 * deadline, not before and not much after, with an error naming the CA
 * and the deadline, and its child is gone. */
static void
test_ca_deadline(void **state)
{
	static const enum fake_ca modes[] = {CA_TRICKLE, CA_SILENT};
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body(), *reply = NULL;
	char want[160];
	int64_t ms;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ca_start(&ca, modes[i]);
		c = caclient_post(ca.url, "/v1/virtualization/ek-certificate", body, 1, &err);
		assert_non_null(c);
		ms = ca_run(c, 5000);
		assert_true(ms >= 950);
		assert_true(ms < 1500);
		assert_int_equal(caclient_fd(c), -1);
		assert_int_equal(caclient_result(c, &reply, &err), -1);
		assert_int_equal(err.kind, ERR_TIMEOUT);
		snprintf(want, sizeof(want), "CA at %s: no answer to "
		    "/v1/virtualization/ek-certificate within 1 s (ca-timeout)", ca.url);
		assert_string_equal(err.msg, want);
		caclient_free(c);
		ca_stop(&ca);
		assert_no_children();
	}
	json_decref(body);
}

/* A request abandoned while it runs (its operation was called off, vtpmd
 * stops) leaves no process behind. */
static void
test_ca_abandoned(void **state)
{
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body();

	ca_start(&ca, CA_SILENT);
	c = caclient_post(ca.url, "/x", body, 30, &err);
	assert_non_null(c);
	assert_false(caclient_step(c));
	caclient_free(c);
	caclient_free(NULL);
	ca_stop(&ca);
	json_decref(body);
	assert_no_children();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ca_answer),
	    cmocka_unit_test(test_ca_refused_and_failed),
	    cmocka_unit_test(test_ca_unreachable),
	    cmocka_unit_test(test_ca_deadline),
	    cmocka_unit_test(test_ca_abandoned),
	};

	log_init("test_manager", LOG_LEVEL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
