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
	int fd, rc, saved;

	*reply = NULL;
	*status = 0;
	fd = vtpmctl_connect(socket);
	if (fd == -1) {
		saved = errno;
		vtpmctl_why(why, why_len, "%s", strerror(saved));
		errno = saved;
		return VTPMCTL_HTTP_CONNECT;
	}
	rc = httpc_exchange(fd, method, "vtpmd", "vtpmctl", path, body, status, reply, why, why_len);
	close(fd);
	if (rc == HTTPC_OK)
		return VTPMCTL_HTTP_OK;
	return rc == HTTPC_PROTOCOL ? VTPMCTL_HTTP_PROTOCOL : VTPMCTL_HTTP_IO;
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
