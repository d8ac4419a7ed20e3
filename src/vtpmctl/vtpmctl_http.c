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
	if (rc == -1 && e.kind == ERR_ABSENT) {
		vtpmctl_fail("cannot connect to vtpmd at %s: %s", vtpmctl_socket, e.msg);
		if (saved == EACCES || saved == EPERM)
			fprintf(stderr, "vtpmctl: hint: run vtpmctl as root or as vtpmd's user\n");
		else
			fprintf(stderr, "vtpmctl: hint: check that vtpmd is running (systemctl "
			                "status vtpmd), or name its socket with --socket PATH or "
			                "VTPMD_SOCKET\n");
		return EXIT_RUNTIME;
	}
	if (rc == -1) {
		vtpmctl_fail("%s %s via %s: %s", method, path, vtpmctl_socket, e.msg);
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
