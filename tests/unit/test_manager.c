/*
 * test_manager.c: the manager's loop never waits (src/manager/).
 *
 *  - Its requests to CAs run in children with an overall deadline
 *    (caclient.c), against CAs played here by forked servers on loopback:
 *    one that answers, refuses, fails, trickles its answer or says
 *    nothing, and a port where nobody listens.
 *  - A start is answered when its worker is ready, failed or late, while
 *    the loop (manager_step) answers other requests at once: the real
 *    loop, API server, routes and operations, with the host TPM and the
 *    worker faked at link time (WRAP_test_manager in the Makefile): the
 *    unseal gives back what sealed.key holds, and the "worker" is a shell
 *    script that reads its key on fd 3 and answers (or not) on fd 4.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <limits.h>

#include "manager/manager.h"

/* --- a CA on loopback --------------------------------------------------- */

enum fake_ca { CA_ANSWER, CA_REFUSE, CA_FAIL, CA_TRICKLE, CA_SILENT };

struct ca_server {
	int fd;    /* the listening socket (-1 when closed) */
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
static void __attribute__((noreturn)) ca_serve(int lfd, enum fake_ca mode)
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
	struct manager_metrics mm;

	manager_metrics_init(&mm);
	ca_start(&ca, CA_ANSWER);
	c = caclient_post(ca.url, NULL, "/v1/privacy/challenge", body, 5, "vm-a", &mm.ca, &err);
	assert_non_null(c);
	assert_true(caclient_fd(c) >= 0);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_fd(c), -1);
	assert_int_equal(caclient_result(c, &reply, &err), 0);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	/* Counted, as a challenge (GET /metrics) */
	assert_int_equal(mm.ca.latency[0].count, 1);
	assert_string_equal(caclient_request_names[0], "challenge");
	assert_int_equal(metrics_count_get(&mm.ca.errors, "unreachable"), 0);
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
	struct manager_metrics mm;

	manager_metrics_init(&mm);
	ca_start(&ca, CA_REFUSE);
	c = caclient_post(ca.url, NULL, "/x", body, 5, NULL, &mm.ca, &err);
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
	c = caclient_post(ca.url, NULL, "/x", body, 5, NULL, &mm.ca, &err);
	assert_non_null(c);
	assert_true(ca_run(c, 5000) >= 0);
	assert_int_equal(caclient_result(c, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_non_null(strstr(err.msg, "(HTTP 500): no reason given"));
	/* both counted, as "other" requests, by the kind of their failure */
	assert_int_equal(mm.ca.latency[CACLIENT_REQUESTS - 1].count, 2);
	assert_int_equal(metrics_count_get(&mm.ca.errors, "refused"), 1);
	assert_int_equal(metrics_count_get(&mm.ca.errors, "unreachable"), 1);
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
	c = caclient_post(url, NULL, "/x", body, 5, NULL, NULL, &err);
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
		c = caclient_post(
		    ca.url, NULL, "/v1/virtualization/ek-certificate", body, 1, NULL, NULL, &err);
		assert_non_null(c);
		ms = ca_run(c, 5000);
		assert_true(ms >= 950);
		assert_true(ms < 1500);
		assert_int_equal(caclient_fd(c), -1);
		assert_int_equal(caclient_result(c, &reply, &err), -1);
		assert_int_equal(err.kind, ERR_TIMEOUT);
		snprintf(want, sizeof(want),
		    "Virtualization CA at %s: no answer to "
		    "/v1/virtualization/ek-certificate within 1 s (ca-timeout)",
		    ca.url);
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
	c = caclient_post(ca.url, NULL, "/x", body, 30, NULL, NULL, &err);
	assert_non_null(c);
	assert_false(caclient_step(c));
	caclient_free(c);
	caclient_free(NULL);
	ca_stop(&ca);
	json_decref(body);
	assert_no_children();
}

void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);

/* realloc fails in this process (not in its children) while set. */
static pid_t realloc_fails_in;

void *
__wrap_realloc(void *p, size_t size)
{
	if (realloc_fails_in != 0 && getpid() == realloc_fails_in)
		return NULL;
	return __real_realloc(p, size);
}

/* A request whose answer cannot be kept (memory runs out) ends at once,
 * its child killed, rather than waiting for the child to end by itself
 * (here, a CA that trickles: at its alarm, a second after the deadline). */
static void
test_ca_out_of_memory(void **state)
{
	struct ca_server ca;
	struct caclient *c;
	struct err err = {0};
	json_t *body = ca_body(), *reply = NULL;
	int64_t ms;

	ca_start(&ca, CA_TRICKLE);
	c = caclient_post(ca.url, NULL, "/x", body, 1, NULL, NULL, &err);
	assert_non_null(c);
	realloc_fails_in = getpid();
	ms = ca_run(c, 5000);
	realloc_fails_in = 0;
	assert_true(ms >= 0);
	assert_int_equal(caclient_result(c, &reply, &err), -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	caclient_free(c);
	ca_stop(&ca);
	json_decref(body);
	assert_no_children();
	assert_true(ms < 1500);
}

/* The one child of pid, once it has one (/proc's children list). */
static pid_t
child_of(pid_t pid)
{
	char path[64];
	long kid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	while (kid == 0) {
		f = fopen(path, "r");
		assert_non_null(f);
		if (fscanf(f, "%ld", &kid) != 1)
			kid = 0;
		fclose(f);
	}
	return (pid_t)kid;
}

/* Whether pid runs as uid (its real, effective and saved uids). */
static bool
runs_as(pid_t pid, uid_t uid)
{
	char path[64], line[256], want[64];
	bool yes = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(
	    want, sizeof(want), "Uid:\t%u\t%u\t%u\t", (unsigned)uid, (unsigned)uid, (unsigned)uid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, want, strlen(want)) == 0)
			yes = true;
	fclose(f);
	return yes;
}

/* A request's child dies with the manager, also after it became nobody
 * (vtpmd as root): a change of credentials clears a parent-death signal
 * set before it, and the child would live on, connected to the CA, until
 * its alarm (ca-timeout + 1 s). The test adopts the orphan (subreaper). */
static void
test_ca_dies_with_manager(void **state)
{
	struct ca_server ca;
	struct pollfd p = {.events = POLLIN};
	json_t *body = ca_body();
	pid_t manager, child;
	int ready[2], ended;
	char c;

	ca_start(&ca, CA_SILENT);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe(ready), 0);
	manager = fork();
	assert_true(manager >= 0);
	if (manager == 0) {
		struct err err = {0};
		close(ready[0]);
		if (caclient_post(ca.url, NULL, "/x", body, 30, NULL, NULL, &err) == NULL)
			_exit(1);
		(void)!write(ready[1], "p", 1);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	child = child_of(manager);
	p.fd = (int)syscall(SYS_pidfd_open, child, 0);
	assert_true(p.fd >= 0);
	/* As root, the child becomes nobody before it connects. */
	while (geteuid() == 0 && !runs_as(child, 65534) && poll(&p, 1, 1) == 0)
		;
	kill(manager, SIGKILL);
	assert_int_equal(waitpid(manager, NULL, 0), manager);
	ended = poll(&p, 1, 2000);
	close(p.fd);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	ca_stop(&ca);
	json_decref(body);
	assert_no_children();
	assert_int_equal(ended, 1);
}

/* --- link-time fakes: the host TPM and the worker ---------------------- */

int __wrap_policy_current_cached(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err);
const struct policy_entry *__wrap_policy_find(
    const struct policy *p, const uint8_t digest[TPM_DIGEST_LEN]);
int __wrap_hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret, size_t secret_len,
    struct err *err);
int __wrap_hwtpm_sealed_name(const uint8_t *blob, size_t blob_len,
    uint8_t name[static HWTPM_NAME_LEN], struct err *err);
void __wrap_hwtpm_flush_pending(struct hwtpm *hw);
int __wrap_fresh_check(struct manager *m, struct vtpm *v, struct err *err);
bool __wrap_hwtpm_available(const struct hwtpm *hw);
int __real_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
    const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
    const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);

/* What the next worker does: a shell script, run with the worker's
 * descriptors (3 its key, 4 its readiness pipe). */
static const char *worker_script;
static const struct policy_entry approved;

int
__wrap_policy_current_cached(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err)
{
	memset(values, 0, TPM_PCRS * TPM_DIGEST_LEN);
	memset(digest, 0, TPM_DIGEST_LEN);
	return 0;
}

const struct policy_entry *
__wrap_policy_find(const struct policy *p, const uint8_t digest[TPM_DIGEST_LEN])
{
	return &approved;
}

/* The sealed secret is a state key (zeros here) and the instance's UUID;
 * the test's sealed.key holds the UUID. */
int
__wrap_hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret, size_t secret_len,
    struct err *err)
{
	assert_int_equal(secret_len, STATE_KEY_LEN + blob_len);
	memset(secret, 0, STATE_KEY_LEN);
	memcpy(secret + STATE_KEY_LEN, blob, blob_len);
	return 0;
}

/* The test's sealed.key is no TPM blob: its "Name" is the SHA-256 Name
 * tag and the UUID it holds, zero-padded. */
int
__wrap_hwtpm_sealed_name(const uint8_t *blob, size_t blob_len, uint8_t name[static HWTPM_NAME_LEN],
    struct err *err)
{
	memset(name, 0, HWTPM_NAME_LEN);
	name[1] = 0x0b;
	memcpy(name + 2, blob, blob_len < HWTPM_NAME_LEN - 2 ? blob_len : HWTPM_NAME_LEN - 2);
	return 0;
}

/* Freshness (fresh.c) needs the host TPM; its own tests are integration
 * tests (freshness.sh). */
int
__wrap_fresh_check(struct manager *m, struct vtpm *v, struct err *err)
{
	(void)m;
	(void)v;
	(void)err;
	return 0;
}

void
__wrap_hwtpm_flush_pending(struct hwtpm *hw)
{
}

bool
__wrap_hwtpm_available(const struct hwtpm *hw)
{
	return true;
}

int
__wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	const char *sh[] = {"sh", "-c", worker_script, NULL};

	return __real_posix_spawn(pid, "/bin/sh", fa, attr, (char *const *)sh, envp);
}

/* --- a manager with one instance, vm1 ---------------------------------- */

#define SCRIPT_READY "head -c 32 <&3 >/dev/null; echo READY >&4; exec sleep 30"
#define SCRIPT_SLOW  "head -c 32 <&3 >/dev/null; sleep 0.3; echo READY >&4; exec sleep 30"
#define SCRIPT_EXITS "head -c 32 <&3 >/dev/null; exit 3"
#define SCRIPT_MUTE  "head -c 32 <&3 >/dev/null; exec sleep 30"

struct fixture {
	char dir[64];
	char sock[128];
	struct manager m;
	struct vtpm *v;
	sigset_t unblocked;
};

static void
fixture_instance(struct fixture *f, const char *name)
{
	char path[PATH_MAX], hex[33];
	uint8_t uuid[16];
	size_t n = 0;
	FILE *fp;

	f->v = registry_new(name, 2, (unsigned int)f->m.n);
	assert_non_null(f->v);
	assert_int_equal(registry_path(&f->m.cfg, name, NULL, path, sizeof(path)), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(registry_save(&f->m.cfg, f->v), 0);
	for (const char *p = f->v->uuid; *p != '\0'; p++)
		if (*p != '-')
			hex[n++] = *p;
	hex[n] = '\0';
	assert_int_equal(hex_decode(hex, uuid, sizeof(uuid)), 0);
	assert_int_equal(registry_path(&f->m.cfg, name, "sealed.key", path, sizeof(path)), 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(uuid, 1, sizeof(uuid), fp), sizeof(uuid));
	fclose(fp);
	f->m.vtpms = realloc(f->m.vtpms, (f->m.n + 1) * sizeof(*f->m.vtpms));
	assert_non_null(f->m.vtpms);
	f->m.vtpms[f->m.n++] = f->v;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[160];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_manager.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	config_defaults(&f->m.cfg);
	f->m.cfg.worker_uid_base = 0;
	f->m.cfg.log_level = LOG_LEVEL_ERROR;
	snprintf(f->m.cfg.state_dir, sizeof(f->m.cfg.state_dir), "%s/state", f->dir);
	snprintf(f->m.cfg.run_dir, sizeof(f->m.cfg.run_dir), "%s/run", f->dir);
	snprintf(path, sizeof(path), "%s/instances", f->m.cfg.state_dir);
	assert_int_equal(fileio_mkdirs(path, 0700), 0);
	assert_int_equal(fileio_mkdirs(f->m.cfg.run_dir, 0700), 0);
	snprintf(f->sock, sizeof(f->sock), "%s/api.sock", f->m.cfg.run_dir);
	snprintf(f->m.self, sizeof(f->m.self), "/nonexistent/vtpmd");
	f->m.lockfd = -1;
	f->m.ready_timeout_ms = WORKER_READY_TIMEOUT_MS;
	/* The host's state-blob key, as if unsealed before (blobkey.c). */
	f->m.blob_key = secret_alloc(STATE_KEY_LEN);
	assert_non_null(f->m.blob_key);
	f->m.api = api_listen(f->sock, manager_api, &f->m);
	assert_non_null(f->m.api);
	sigemptyset(&f->unblocked);
	fixture_instance(f, "vm1");
	worker_script = SCRIPT_READY;
	/* Should the loop ever wait for good, the test dies rather than hang. */
	alarm(30);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	alarm(0);
	ops_shutdown(&f->m);
	api_close(f->m.api);
	for (size_t i = 0; i < f->m.n; i++) {
		if (f->m.vtpms[i]->pid > 0) {
			kill(f->m.vtpms[i]->pid, SIGKILL);
			waitpid(f->m.vtpms[i]->pid, NULL, 0);
		}
		if (f->m.vtpms[i]->pidfd != -1)
			close(f->m.vtpms[i]->pidfd);
		workerlog_close(&f->m, f->m.vtpms[i], true);
		free(f->m.vtpms[i]);
	}
	free(f->m.vtpms);
	blobkey_forget(&f->m);
	assert_int_equal(fileio_remove_tree(f->dir), 0);
	assert_no_children();
	free(f);
	return 0;
}

/* A client that sent req to the API; its end, non-blocking. */
static int
client_send(struct fixture *f, const char *req)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	return fd;
}

/* Runs the loop until the client fd has its whole answer (the server
 * closed), and returns it (malloc'd); *ms is how long that took. */
static char *
client_answer(struct fixture *f, int fd, int64_t *ms)
{
	int64_t start = mono_ms();
	size_t len = 0, cap = 1 << 16;
	char *out = malloc(cap + 1);
	ssize_t n;

	assert_non_null(out);
	for (;;) {
		n = recv(fd, out + len, cap - len, 0);
		if (n > 0) {
			len += (size_t)n;
			assert_true(len < cap);
			continue;
		}
		if (n == 0)
			break;
		assert_true(errno == EAGAIN);
		manager_step(&f->m, &f->unblocked);
	}
	close(fd);
	out[len] = '\0';
	if (ms != NULL)
		*ms = mono_ms() - start;
	return out;
}

/* Whether the client has no answer (yet). */
static bool
client_waits(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

#define START_VM1 "POST /v1/instances/vm1/start HTTP/1.1\r\n\r\n"
#define LIST      "GET /v1/instances HTTP/1.1\r\n\r\n"

/* --- starts: answered when the worker is ready, failed or late --------- */

/* A start is answered once its worker is ready; meanwhile the loop
 * answers others at once. */
static void
test_start_answered_when_ready(void **state)
{
	struct fixture *f = *state;
	char *out;
	int64_t ms;
	int a, b;

	worker_script = SCRIPT_SLOW;
	a = client_send(f, START_VM1);
	for (int i = 0; i < 3 && !f->v->start_pending; i++)
		manager_step(&f->m, &f->unblocked);
	assert_true(f->v->start_pending);
	assert_int_equal(f->v->state, VTPM_STARTING);
	assert_true(client_waits(a));

	b = client_send(f, LIST);
	out = client_answer(f, b, &ms);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "\"state\":\"starting\""));
	assert_true(ms < 100);
	free(out);
	assert_true(client_waits(a));

	out = client_answer(f, a, &ms);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "\"state\":\"running\""));
	assert_true(ms >= 100);
	free(out);
	assert_int_equal(f->v->state, VTPM_RUNNING);
	assert_false(f->v->start_pending);
	assert_int_equal(f->v->readyfd, -1);
	assert_int_equal(f->v->op, VTPM_OP_NONE);

	/* Running: a start answers at once. */
	out = client_answer(f, client_send(f, START_VM1), NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	free(out);
}

/* A worker that ends before it is ready fails its start with the reason
 * its exit status gives; it is reaped. */
static void
test_start_worker_ends(void **state)
{
	struct fixture *f = *state;
	char *out;

	worker_script = SCRIPT_EXITS;
	out = client_answer(f, client_send(f, START_VM1), NULL);
	assert_non_null(strstr(out, "HTTP/1.1 500 "));
	assert_non_null(strstr(out, "worker its state cannot be read"));
	free(out);
	assert_int_equal(f->v->state, VTPM_FAILED);
	assert_false(f->v->start_pending);
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_no_children();
}

/* A worker that never says it is ready is killed at the start's deadline,
 * and the start fails saying so. */
static void
test_start_deadline(void **state)
{
	struct fixture *f = *state;
	char *out;
	int64_t ms;

	f->m.ready_timeout_ms = 300;
	worker_script = SCRIPT_MUTE;
	out = client_answer(f, client_send(f, START_VM1), &ms);
	assert_non_null(strstr(out, "HTTP/1.1 500 "));
	assert_non_null(strstr(out, "worker did not become ready within 300 ms"));
	assert_true(ms >= 290);
	assert_true(ms < 2000);
	free(out);
	assert_int_equal(f->v->state, VTPM_FAILED);
	assert_no_children();
}

/* While a start is in flight, other operations on the instance are
 * refused at once, and reads are answered. */
static void
test_busy_while_starting(void **state)
{
	struct fixture *f = *state;
	char *out;
	int a;

	worker_script = SCRIPT_SLOW;
	a = client_send(f, START_VM1);
	while (!f->v->start_pending)
		manager_step(&f->m, &f->unblocked);
	out =
	    client_answer(f, client_send(f, "POST /v1/instances/vm1/stop HTTP/1.1\r\n\r\n"), NULL);
	assert_non_null(strstr(out, "HTTP/1.1 409 "));
	assert_non_null(strstr(out, "an operation on vm1 is in progress (its start)"));
	free(out);
	out = client_answer(
	    f, client_send(f, "DELETE /v1/instances/vm1?force=1 HTTP/1.1\r\n\r\n"), NULL);
	assert_non_null(strstr(out, "HTTP/1.1 409 "));
	free(out);
	out = client_answer(f, a, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	free(out);
	out =
	    client_answer(f, client_send(f, "POST /v1/instances/vm1/stop HTTP/1.1\r\n\r\n"), NULL);
	assert_non_null(strstr(out, "\"state\":\"stopped\""));
	free(out);
	assert_no_children();
}

/* A restart that nobody waits for: a start that fails is tried again
 * after the back-off; one that an API start joins answers it. */
static void
test_restart_retries_and_joins(void **state)
{
	struct fixture *f = *state;
	char *out;
	int a;

	f->v->desired_running = true;
	f->v->restart_at_ms = mono_ms();
	worker_script = SCRIPT_EXITS;
	while (f->v->op != VTPM_OP_RESTART)
		manager_step(&f->m, &f->unblocked);
	while (f->v->start_pending)
		manager_step(&f->m, &f->unblocked);
	assert_int_equal(f->v->state, VTPM_FAILED);
	assert_int_equal(f->v->backoff_ms, LIFECYCLE_BACKOFF_MIN_MS);
	assert_true(f->v->restart_at_ms > 0);

	/* The next try starts slowly; a start request joins it. */
	worker_script = SCRIPT_SLOW;
	while (!f->v->start_pending)
		manager_step(&f->m, &f->unblocked);
	assert_int_equal(f->v->op, VTPM_OP_RESTART);
	a = client_send(f, START_VM1);
	while (f->v->op == VTPM_OP_RESTART)
		manager_step(&f->m, &f->unblocked);
	assert_int_equal(f->v->op, VTPM_OP_START);
	assert_true(f->v->start_pending);
	out = client_answer(f, a, NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "\"state\":\"running\""));
	free(out);
}

/* API_MAX_CONNECTIONS starts that wait for their workers do not shut the
 * API: their requests wait beside the connections being read and
 * answered, and a list is answered at once. */
static void
test_deferred_requests_leave_room(void **state)
{
	struct fixture *f = *state;
	int fds[API_MAX_CONNECTIONS];
	char name[32], req[96], *out;
	struct vtpm *vm1 = f->v;
	int64_t ms;

	for (int i = 1; i < API_MAX_CONNECTIONS; i++) {
		snprintf(name, sizeof(name), "vm-%d", i + 1);
		fixture_instance(f, name);
	}
	f->v = vm1;
	worker_script = "head -c 32 <&3 >/dev/null; sleep 3; echo READY >&4; exec sleep 30";
	for (int i = 0; i < API_MAX_CONNECTIONS; i++) {
		snprintf(req, sizeof(req), "POST /v1/instances/%s/start HTTP/1.1\r\n\r\n",
		    f->m.vtpms[i]->name);
		fds[i] = client_send(f, req);
	}
	for (int i = 0; i < API_MAX_CONNECTIONS; i++)
		while (!f->m.vtpms[i]->start_pending)
			manager_step(&f->m, &f->unblocked);
	out = client_answer(f, client_send(f, LIST), &ms);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	free(out);
	assert_true(ms < 1000);
	for (int i = 0; i < API_MAX_CONNECTIONS; i++)
		assert_true(client_waits(fds[i]));
	for (int i = 0; i < API_MAX_CONNECTIONS; i++) {
		out = client_answer(f, fds[i], NULL);
		assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
		free(out);
	}
}

/* --- the loop's poll set: every instance is in it --------------------- */

#define MANY_INSTANCES 600 /* more than the 512 entries the poll set once held */

/* With many instances, the last one's worker ending is still seen: the
 * poll set holds every instance's pidfd (and readiness pipe, and CA
 * request), not the first few hundred. Here MANY_INSTANCES instances
 * "run" (pidfd a pipe nobody writes to, so never readable) and the last
 * one's worker ends (its pidfd readable). */
static void
test_many_instances(void **state)
{
	struct fixture *f = *state;
	struct vtpm **all, *last;
	int quiet[2], ended[2];
	char name[32], *out;
	bool gone, running;

	assert_int_equal(pipe2(quiet, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ended, O_CLOEXEC), 0);
	assert_int_equal(write(ended[1], "x", 1), 1);
	close(ended[1]);
	all = realloc(f->m.vtpms, (1 + MANY_INSTANCES) * sizeof(*all));
	assert_non_null(all);
	f->m.vtpms = all;
	for (unsigned int i = 1; i <= MANY_INSTANCES; i++) {
		snprintf(name, sizeof(name), "many-%u", i);
		all[i] = registry_new(name, 2, i);
		assert_non_null(all[i]);
		all[i]->state = VTPM_RUNNING;
		all[i]->pidfd = i < MANY_INSTANCES ? fcntl(quiet[0], F_DUPFD_CLOEXEC, 0) : ended[0];
		assert_true(all[i]->pidfd >= 0);
		f->m.n++;
	}
	close(quiet[0]);
	last = all[MANY_INSTANCES];
	/* One round answers a request and sees the last worker's end. */
	out = client_answer(f, client_send(f, "GET /v1/instances/vm1 HTTP/1.1\r\n\r\n"), NULL);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	free(out);
	gone = last->pidfd == -1 && last->state == VTPM_STOPPED;
	running = all[1]->state == VTPM_RUNNING;
	close(quiet[1]);
	assert_true(running);
	assert_true(gone);
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
	    cmocka_unit_test(test_ca_dies_with_manager),
	    cmocka_unit_test(test_ca_out_of_memory),
	    cmocka_unit_test_setup_teardown(test_start_answered_when_ready, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_worker_ends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_while_starting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_retries_and_joins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_instances, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_requests_leave_room, setup, teardown),
	};

	log_init("test_manager", LOG_LEVEL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
