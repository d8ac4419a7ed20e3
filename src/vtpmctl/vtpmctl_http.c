/*
 * vtpmctl_http.c: vtpmctl's side of the API: one HTTP/1.1 request over
 * vtpmd's unix socket (the exchange itself is httpc.c's), and the
 * reporting of failures in words an operator can act on.
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

#include "vtpmctl.h"


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

/*
 * Sends METHOD path (with body, a JSON value, when not NULL) to the API
 * socket and waits for the answer. Returns 0 with *status, the HTTP
 * status, and *reply, the JSON body (the caller frees it); or -1 with err:
 * ERR_ABSENT when the socket could not be reached (errno is connect's),
 * otherwise as httpc_exchange's.
 */
int
vtpmctl_http_request(const char *socket, const char *method, const char *path, const json_t *body,
    int *status, json_t **reply, struct err *err)
{
	int fd, rc, saved;

	*reply = NULL;
	*status = 0;
	fd = vtpmctl_connect(socket);
	if (fd == -1) {
		saved = errno;
		err_set(err, ERR_ABSENT, "%s", strerror(saved));
		errno = saved;
		return -1;
	}
	rc = httpc_exchange(fd, method, "vtpmd", "vtpmctl", path, body, status, reply, err);
	close(fd);
	return rc;
}

/* Reports a request that failed before vtpmd answered (e, with saved
 * errno: connect's for ERR_ABSENT); returns EXIT_RUNTIME. */
static int
vtpmctl_report_failed(const char *method, const char *path, const struct err *e, int saved)
{
	if (e->kind == ERR_ABSENT) {
		vtpmctl_fail("cannot connect to vtpmd at %s: %s", vtpmctl_socket, e->msg);
		if (saved == EACCES || saved == EPERM)
			fprintf(stderr, "vtpmctl: hint: run vtpmctl as root or as vtpmd's user\n");
		else
			fprintf(stderr, "vtpmctl: hint: check that vtpmd is running (systemctl "
			                "status vtpmd), or name its socket with --socket PATH or "
			                "VTPMD_SOCKET\n");
		return EXIT_RUNTIME;
	}
	vtpmctl_fail("%s %s via %s: %s", method, path, vtpmctl_socket, e->msg);
	fprintf(stderr, "vtpmctl: hint: check vtpmd's log (journalctl -u vtpmd)\n");
	return EXIT_RUNTIME;
}

/* Reports vtpmd's refusal, its JSON error and hint (reply may be NULL);
 * returns EXIT_RUNTIME. */
static int
vtpmctl_report_refused(const json_t *reply, int status)
{
	vtpmctl_fail("%s (HTTP %d)",
	    vtpmctl_str(reply, "error", "vtpmd refused the request without saying why"), status);
	if (json_string_value(json_object_get(reply, "hint")) != NULL)
		fprintf(stderr, "vtpmctl: hint: %s\n", vtpmctl_str(reply, "hint", ""));
	return EXIT_RUNTIME;
}

/*
 * Makes one API call and reports failures on stderr: an unreachable vtpmd
 * (naming the socket), a broken answer, or vtpmd's error and hint. Returns
 * EXIT_OK with *reply set (the caller frees it), or EXIT_RUNTIME.
 */
int
vtpmctl_call(const char *method, const char *path, const json_t *body, json_t **reply)
{
	struct err e;
	int status, saved, rc;

	rc = vtpmctl_http_request(vtpmctl_socket, method, path, body, &status, reply, &e);
	saved = errno;
	if (rc == -1)
		return vtpmctl_report_failed(method, path, &e, saved);
	if (status >= 200 && status < 300)
		return EXIT_OK;
	vtpmctl_report_refused(*reply, status);
	json_decref(*reply);
	*reply = NULL;
	return EXIT_RUNTIME;
}

/* GET path, whose 200 answer is text, not JSON (GET /metrics). */
static int
vtpmctl_get_raw(const char *path, int *status, char **text, size_t *len, struct err *e)
{
	const struct httpc_io io = {.fd = vtpmctl_connect(vtpmctl_socket)};
	char *resp = NULL;
	size_t resp_len = 0;
	int rc = -1, saved;

	if (io.fd == -1) {
		saved = errno;
		err_set(e, ERR_ABSENT, "%s", strerror(saved));
		errno = saved;
		return -1;
	}
	if (httpc_send_recv(
	        &io, "GET", "vtpmd", "vtpmctl", NULL, path, NULL, &resp, &resp_len, e) == 0)
		rc = httpc_parse_raw(resp, resp_len, status, text, len, e);
	free(resp);
	close(io.fd);
	return rc;
}

/*
 * GET path and its text answer, failures reported as vtpmctl_call's.
 * Returns EXIT_OK with *text (malloc'd, NUL-terminated, *len bytes; the
 * caller frees it), or EXIT_RUNTIME.
 */
int
vtpmctl_get_text(const char *path, char **text, size_t *len)
{
	json_t *reply;
	struct err e;
	int status = 0, saved;

	if (vtpmctl_get_raw(path, &status, text, len, &e) == -1) {
		saved = errno;
		return vtpmctl_report_failed("GET", path, &e, saved);
	}
	if (status == 200)
		return EXIT_OK;
	reply = json_loadb(*text, *len, 0, NULL);
	vtpmctl_report_refused(reply, status);
	json_decref(reply);
	free(*text);
	*text = NULL;
	return EXIT_RUNTIME;
}
