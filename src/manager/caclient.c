/*
 * caclient.c: the manager's requests to the CAs (the Privacy CA at
 * enrolment, the Virtualization CA at provisioning), each run by a
 * short-lived child, so that the manager's loop never waits on the network
 * (docs/architecture.md, "The manager's loop").
 *
 * Why a child rather than non-blocking sockets driven by the loop:
 *  - resolving the CA's host name (getaddrinfo) blocks, and has no
 *    non-blocking form short of threads; OpenBSD's ntpd hands DNS to a
 *    child for the same reason;
 *  - the deadline of a request is then absolute and simple, whatever the
 *    request is doing (resolving, connecting, a CA trickling its answer
 *    one byte at a time, which no per-read timeout catches): at the
 *    deadline the child is killed;
 *  - the child runs the blocking client of src/common/httpc.c unchanged;
 *    no second, incremental HTTP client has to be written and fuzzed.
 * A fork per request (two per enrolment, one per EK) costs about a
 * millisecond, nothing next to a network round trip.
 *
 * The child only moves bytes: it sends the request and writes the raw
 * answer to a pipe, 'A' and the answer, or 'E' and a one-line reason
 * (resolving or connecting failed, a socket operation timed out), or 'U'
 * and the reason the CA's TLS certificate was refused. For an https://
 * CA the TLS handshake, and the check of the CA's certificate against
 * ca-tls-root (read by the manager at each request, so that a new root
 * takes effect without a restart) or ca-tls-pin, happen in the child too. The
 * manager reads the pipe from its loop and parses the answer as it always
 * did. The child keeps nothing it does not need: every descriptor but
 * stderr and its pipe is closed (the state directory's lock, the host TPM,
 * the API socket, pidfds), it dies with the manager (PR_SET_PDEATHSIG),
 * runs as nobody when the manager is root, holds no key (key memory is
 * wiped in children, secret.c) and ends with _exit (no atexit handler, no
 * sanitizer report about a copy of the manager's memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "manager.h"

#define CACLIENT_MAX_ANSWER (1u << 20) /* a certificate and its chain */
#define CACLIENT_NOBODY     65534
#define CACLIENT_OUT        3 /* the child's end of the pipe */

struct caclient {
	pid_t pid;        /* the child, until reaped (0 then) */
	int fd;           /* the pipe's read end (non-blocking), -1 once at its end */
	int64_t deadline; /* monotonic ms */
	int timeout_s;
	bool timed_out;
	bool too_large;
	char url[256];
	char path[128];
	char who[300]; /* "Privacy CA at URL", "Virtualization CA at URL": for messages */
	char headers[96];             /* "X-Vtpmd-Instance: NAME\r\n", or "" */
	char for_whom[80];            /* " (instance NAME)" for the log, or "" */
	struct caclient_stats *stats; /* where caclient_result counts it, or NULL */
	int64_t begun_us;             /* caclient_post's time */
	struct tls_peer tls; /* https://: the ca-tls-root's PEM text (malloc'd) */
	uint8_t *buf; /* what the child sent */
	size_t len, cap;
};

/* Writes all of buf to the child's pipe; gives up quietly (the parent
 * then sees a short answer). */
static void
caclient_write(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(CACLIENT_OUT, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* The child's confinement before it touches the network: only its pipe
 * (CACLIENT_OUT) and stdio open, default signals, nobody's identity when
 * root. Returns 0, or -1 when any step failed. */
static int
caclient_confine(pid_t parent, int timeout_s)
{
	sigset_t none;

	if (close_range(CACLIENT_OUT + 1, ~0u, 0) == -1)
		return -1;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* A second bound, should the parent's kill never come. */
	alarm((unsigned int)timeout_s + 1);
	if (geteuid() == 0 &&
	    (setgroups(0, NULL) == -1 ||
	        setresgid(CACLIENT_NOBODY, CACLIENT_NOBODY, CACLIENT_NOBODY) == -1 ||
	        setresuid(CACLIENT_NOBODY, CACLIENT_NOBODY, CACLIENT_NOBODY) == -1))
		return -1;
	/* After the change of identity, which clears a parent-death signal
	 * set before it; then the parent must still be there. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		return -1;
	return 0;
}

/* The child: runs the request and reports on its pipe. Never returns. */
static void __attribute__((noreturn))
caclient_child(int fd, pid_t parent, const struct caclient *c, const json_t *body)
{
	static const char broken[] = "Ecannot set up the request's process";
	struct err err = {0};
	char *raw = NULL;
	size_t len = 0;

	if (fd != CACLIENT_OUT && dup2(fd, CACLIENT_OUT) == -1)
		_exit(1);
	if (caclient_confine(parent, c->timeout_s) == -1) {
		caclient_write(broken, sizeof(broken) - 1);
		_exit(1);
	}
	if (httpc_fetch_url(c->url, &c->tls, "vtpmd", c->headers, c->timeout_s, "POST", c->path,
	        body, &raw, &len, &err) == 0) {
		caclient_write("A", 1);
		caclient_write(raw, len);
	} else {
		caclient_write(err.kind == ERR_UNTRUSTED ? "U" : "E", 1);
		caclient_write(err.msg, strlen(err.msg));
	}
	_exit(0);
}

/* Who a request goes to, for messages: the role its path names. */
static void
caclient_name(struct caclient *c)
{
	const char *role = "";

	if (strncmp(c->path, "/v1/privacy/", 12) == 0)
		role = "Privacy ";
	else if (strncmp(c->path, "/v1/virtualization/", 19) == 0)
		role = "Virtualization ";
	snprintf(c->who, sizeof(c->who), "%sCA at %s", role, c->url);
}

/* How an https:// CA's TLS certificate is checked, into c->tls: by the
 * pinned key (ca-tls-pin), or by the roots in ca-tls-root, read now. */
static int
caclient_tls(struct caclient *c, const struct config *cfg, struct err *err)
{
	uint8_t *pem = NULL;
	size_t len = 0;

	if (strncmp(c->url, "https://", 8) != 0)
		return 0;
	tls_client_warm(); /* inherited by this request's child and the next ones' */
	if (cfg != NULL && cfg->ca_tls_pin[0] != '\0') {
		if (tls_pin_parse(cfg->ca_tls_pin, c->tls.pin, err) == -1)
			return err_wrap(err, "%s: ca-tls-pin", c->who);
		c->tls.pinned = true;
		return 0;
	}
	if (cfg == NULL || cfg->ca_tls_root[0] == '\0')
		return err_set(err, ERR_INVALID,
		    "%s: no TLS root or pin to check its certificate by: set ca-tls-root "
		    "(the PEM root the CA's TLS certificate chains to) or ca-tls-pin in vtpmd's "
		    "configuration",
		    c->who);
	if (fileio_read(cfg->ca_tls_root, CACLIENT_TLS_ROOT_MAX, &pem, &len) == -1)
		return err_errno(err, "%s: ca-tls-root %s", c->who, cfg->ca_tls_root);
	c->tls.root_pem = (const char *)pem;
	c->tls.root_pem_len = len;
	return 0;
}

/*
 * Starts a POST of body (a JSON value) to url+path in a child, with an
 * overall deadline of timeout_s seconds from now; an https:// url's
 * server is checked against cfg's ca-tls-pin or the PEM roots in the file
 * ca-tls-root, a plain http:// one reaches loopback only (warned once). Returns the
 * request, to be polled (caclient_fd, caclient_deadline, caclient_step)
 * and freed with caclient_free, or NULL with err.
 */
struct caclient *
caclient_post(const char *url, const struct config *cfg, const char *path,
    const struct json_t *body, int timeout_s, const char *instance, struct caclient_stats *stats,
    struct err *err)
{
	struct caclient *c = calloc(1, sizeof(*c));
	pid_t parent = getpid();
	int p[2] = {-1, -1};

	if (c == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	snprintf(c->url, sizeof(c->url), "%s", url);
	snprintf(c->path, sizeof(c->path), "%s", path);
	if (instance != NULL) {
		snprintf(c->headers, sizeof(c->headers), "X-Vtpmd-Instance: %s\r\n", instance);
		snprintf(c->for_whom, sizeof(c->for_whom), " (instance %s)", instance);
	}
	c->stats = stats;
	c->begun_us = mono_us();
	caclient_name(c);
	if (caclient_tls(c, cfg, err) == -1)
		goto fail;
	if (httpc_check_url(url, &c->tls, err) == -1) {
		err_wrap(err, "CA");
		goto fail;
	}
	c->timeout_s = timeout_s;
	c->fd = -1;
	if (pipe2(p, O_CLOEXEC) == -1 || fcntl(p[0], F_SETFL, O_NONBLOCK) == -1) {
		err_errno(err, "%s: pipe", c->who);
		goto fail;
	}
	c->deadline = mono_ms() + (int64_t)timeout_s * 1000;
	c->pid = fork();
	if (c->pid == -1) {
		err_errno(err, "%s: fork", c->who);
		goto fail;
	}
	if (c->pid == 0) {
		close(p[0]);
		caclient_child(p[1], parent, c, (const json_t *)body);
	}
	close(p[1]);
	c->fd = p[0];
	log_debug("%s: POST %s%s in process %d", c->who, path, c->for_whom, (int)c->pid);
	return c;
fail:
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	free((char *)c->tls.root_pem);
	free(c);
	return NULL;
}

/* What the loop polls for POLLIN: the pipe, or -1 once the request has
 * ended. */
int
caclient_fd(const struct caclient *c)
{
	return c->fd;
}

/* When the request must have ended (monotonic ms). */
int64_t
caclient_deadline(const struct caclient *c)
{
	return c->deadline;
}

/* Ends the child, killed unless it has finished, and reaps it. */
static void
caclient_stop(struct caclient *c, bool kill_it)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (c->pid <= 0)
		return;
	/* Killed, it dies at once: waiting for it is not waiting on the CA. */
	if (kill_it)
		kill(c->pid, SIGKILL);
	while (waitpid(c->pid, NULL, 0) == -1 && errno == EINTR)
		;
	c->pid = 0;
}

/* Reads what has arrived; false when the pipe has more to give. */
static bool
caclient_read(struct caclient *c)
{
	uint8_t *p;
	ssize_t n;

	for (;;) {
		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 4096;
			if (cap > CACLIENT_MAX_ANSWER + 1)
				cap = CACLIENT_MAX_ANSWER + 1;
			if (cap == c->cap) {
				c->too_large = true;
				return true;
			}
			if ((p = realloc(c->buf, cap)) == NULL)
				return true;
			c->buf = p;
			c->cap = cap;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n <= 0)
			return true;
		c->len += (size_t)n;
	}
}

/*
 * Moves the request on: reads what the child sent, and ends the request
 * when the answer is whole or the deadline has passed (the child is then
 * killed). Call it when caclient_fd is readable and at the deadline.
 * Returns true once the request has ended (caclient_result then says
 * how); later calls change nothing.
 */
bool
caclient_step(struct caclient *c)
{
	if (c->fd == -1)
		return true;
	if (caclient_read(c)) {
		/* Its answer whole (the child is ending), too large, or not to be
		 * kept (memory, a read error): killed either way, so that
		 * reaping it never waits on the CA. */
		caclient_stop(c, true);
		return true;
	}
	if (mono_ms() >= c->deadline) {
		c->timed_out = true;
		caclient_stop(c, true);
		log_warnx("%s: no answer to %s%s within %d s; request abandoned", c->who, c->path,
		    c->for_whom, c->timeout_s);
		return true;
	}
	return false;
}

/* A non-200 answer as an error quoting the CA's reason: ERR_UNREACHABLE
 * for 5xx (the CA failed), ERR_REFUSED otherwise. */
static int
caclient_refusal(const struct caclient *c, int status, const json_t *reply, struct err *err)
{
	const char *error = json_string_value(json_object_get(reply, "error"));
	const char *hint = json_string_value(json_object_get(reply, "hint"));

	return err_set(err, status >= 500 ? ERR_UNREACHABLE : ERR_REFUSED,
	    "%s refused %s (HTTP %d): %s%s%s", c->who, c->path, status,
	    error ? error : "no reason given", hint ? "; CA's hint: " : "", hint ? hint : "");
}

const char *const caclient_request_names[CACLIENT_REQUESTS] = {
    "challenge", "certify", "nonce", "ek-certificate", "other"};

/* c's request among caclient_request_names: its path's last segment. */
static size_t
caclient_request_index(const struct caclient *c)
{
	const char *last = strrchr(c->path, '/');
	size_t i;

	for (i = 0; i < CACLIENT_REQUESTS - 1; i++)
		if (last != NULL && strcmp(last + 1, caclient_request_names[i]) == 0)
			break;
	return i;
}

/*
 * The outcome of an ended request: 0 with a 200 answer's JSON in *reply
 * (the caller frees it), or -1 with err naming the CA: ERR_TIMEOUT (no
 * whole answer within the deadline), ERR_UNREACHABLE (no answer, a
 * malformed one, or the CA failed: 5xx), ERR_REFUSED (4xx, the CA's reason
 * quoted).
 */
static int
caclient_outcome(const struct caclient *c, struct json_t **reply, struct err *err)
{
	struct err inner = {0};
	int status;

	*reply = NULL;
	if (c->timed_out)
		return err_set(err, ERR_TIMEOUT,
		    "%s: no answer to %s within %d s (ca-timeout)", c->who, c->path,
		    c->timeout_s);
	if (c->too_large)
		return err_set(err, ERR_UNREACHABLE, "%s: answer to %s larger than %u bytes",
		    c->who, c->path, CACLIENT_MAX_ANSWER);
	if (c->len == 0 || (c->buf[0] != 'A' && c->buf[0] != 'E' && c->buf[0] != 'U'))
		return err_set(err, ERR_UNREACHABLE,
		    "%s: the request's process ended "
		    "without an answer",
		    c->who);
	if (c->buf[0] == 'E' || c->buf[0] == 'U')
		return err_set(err, c->buf[0] == 'U' ? ERR_UNTRUSTED : ERR_UNREACHABLE,
		    "%s: %.*s", c->who, (int)(c->len - 1 < 512 ? c->len - 1 : 512),
		    (const char *)c->buf + 1);
	if (httpc_parse_response((const char *)c->buf + 1, c->len - 1, &status, reply, &inner) ==
	    -1)
		return err_set(err, ERR_UNREACHABLE, "%s: %s", c->who, inner.msg);
	if (status == 200)
		return 0;
	caclient_refusal(c, status, *reply, err);
	json_decref(*reply);
	*reply = NULL;
	return -1;
}

/* caclient_outcome, counted in the stats the request was given: its time
 * since caclient_post, and its failure by kind. Call it once. */
int
caclient_result(const struct caclient *c, struct json_t **reply, struct err *err)
{
	struct err mine = {0};
	struct err *e = err != NULL ? err : &mine;
	int rc = caclient_outcome(c, reply, e);

	if (c->stats == NULL)
		return rc;
	metrics_hist_observe_us(
	    &c->stats->latency[caclient_request_index(c)], mono_us() - c->begun_us);
	if (rc == -1)
		metrics_count(&c->stats->errors, err_kind_name(e->kind));
	return rc;
}

/* Abandons the request if it runs (the child is killed and reaped) and
 * frees it. NULL-safe. */
void
caclient_free(struct caclient *c)
{
	if (c == NULL)
		return;
	caclient_stop(c, true);
	free(c->buf);
	free((char *)c->tls.root_pem);
	free(c);
}
