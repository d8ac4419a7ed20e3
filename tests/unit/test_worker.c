/*
 * test_worker.c: the manager's side of its workers (src/manager/worker.c),
 * each test in a fresh mkdtemp state and run directory.
 *
 * This program is its own worker: set as the manager's worker_exe, it is
 * spawned as `vtpmd-instance ...` and main runs fake_worker, which does
 * what VTPMD_TEST_WORKER says (become ready, exit with a status, write
 * something else than READY, hang, ignore SIGTERM) and reports what it was
 * given (its key, its command line, its descriptors) in files in its state
 * directory. Run as `vtpmd instance ...` (worker_exe empty), main runs the
 * real instance_main, for one test of a worker that serves a TPM.
 *
 * Covered: the spawn (the state directory, the command line, only the key
 * pipe, the readiness pipe and stdio inherited, stdin and stdout on
 * /dev/null, the pid file with the kernel's start time, a spawn that
 * fails), the key handed over, readiness read from the non-blocking pipe
 * as the manager's loop does (worker_ready: nothing yet, READY, anything
 * else), a worker that exits before it is ready (its status put into
 * words by worker_exited), one aborted before it got its key or when its
 * key could not be written (worker_abort), worker_exited's statuses,
 * a stop as the loop does it (worker_stop asks, the pidfd says it ended,
 * worker_exited collects), with a worker that ignores SIGTERM
 * (worker_stop_kill), adoption by pid
 * file (and every way a pid file can name the wrong process), socket
 * paths. The readiness deadline is the loop's (test_manager.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

#define MODE_ENV "VTPMD_TEST_WORKER"

/* ---- the fake worker ---- */

static void
fake_report(const char *state, const char *name, const void *buf, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", state, name);
	(void)fileio_write_atomic(path, buf, len, 0600);
}

/* Its open descriptors, in order, and where stdin and stdout lead. */
static void
fake_report_fds(const char *state)
{
	char out[512] = "", link[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	size_t off = 0;
	ssize_t n;
	DIR *d;
	int fds[64], nfds = 0;

	d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL && nfds < 64)
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			fds[nfds++] = atoi(de->d_name);
	closedir(d);
	for (int i = 0; i < nfds; i++)
		for (int j = i + 1; j < nfds; j++)
			if (fds[j] < fds[i]) {
				int t = fds[i];
				fds[i] = fds[j];
				fds[j] = t;
			}
	for (int i = 0; i < nfds; i++)
		off += (size_t)snprintf(out + off, sizeof(out) - off, "%s%d", i ? " " : "", fds[i]);
	for (int fd = 0; fd < 2; fd++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		off += (size_t)snprintf(out + off, sizeof(out) - off, "\n%d %s", fd, target);
	}
	fake_report(state, "fds", out, strlen(out));
}

static void
fake_report_argv(const char *state, int argc, char **argv)
{
	char out[4096] = "";
	size_t off = 0;

	for (int i = 0; i < argc; i++)
		off += (size_t)snprintf(out + off, sizeof(out) - off, "%s\n", argv[i]);
	fake_report(state, "argv", out, strlen(out));
}

/*
 * VTPMD_TEST_WORKER: "ready" (then waits for a signal), "ready,exit:N"
 * (then exits N), "ready,ignore-term", "exit:N" (after reading the key),
 * "garbage" (writes something else than READY), "hang" (never ready).
 */
static int
fake_worker(int argc, char **argv)
{
	const char *mode = getenv(MODE_ENV), *state = ".", *exit_at;
	uint8_t key[256];
	size_t got = 0;
	ssize_t n;

	if (mode == NULL)
		return 99;
	/* Whatever happens to the test, no fake outlives it for long. */
	alarm(30);
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--state") == 0)
			state = argv[i + 1];
	fake_report_fds(state);
	fake_report_argv(state, argc, argv);
	while (got < sizeof(key) && (n = read(3, key + got, sizeof(key) - got)) > 0)
		got += (size_t)n;
	fake_report(state, "key", key, got);
	exit_at = strstr(mode, "exit:");
	if (strncmp(mode, "ready", 5) == 0) {
		if (strstr(mode, "ignore-term") != NULL)
			signal(SIGTERM, SIG_IGN);
		if (write(4, "READY\n", 6) != 6)
			_exit(98);
		close(4);
		if (exit_at != NULL)
			_exit(atoi(exit_at + 5));
		for (;;)
			pause();
	}
	if (exit_at != NULL)
		_exit(atoi(exit_at + 5));
	if (strcmp(mode, "garbage") == 0) {
		if (write(4, "NOPE\n", 5) != 5)
			_exit(98);
		_exit(0);
	}
	for (;;) /* hang */
		pause();
}

/* ---- fixture ---- */

static const uint8_t key[STATE_KEY_LEN] = {0x77, 0x6f, 0x72, 0x6b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28};
/* The blob key record that follows the state key on the pipe. */
static const uint8_t blob_rec[STATEBLOB_KEY_RECORD_LEN] = {0x62, 0x6c, 0x6f, 0x62, 9, 8, 7};

struct fixture {
	char root[64];
	struct manager *m;
	struct vtpm *v;
	struct worker_pending p;
	char path[PATH_MAX];
};

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char dir[PATH_MAX];
	ssize_t n;

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-worker.XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	f->m = calloc(1, sizeof(*f->m));
	if (f->m == NULL)
		return -1;
	config_defaults(&f->m->cfg);
	snprintf(f->m->cfg.state_dir, sizeof(f->m->cfg.state_dir), "%s/state", f->root);
	snprintf(f->m->cfg.run_dir, sizeof(f->m->cfg.run_dir), "%s/run", f->root);
	f->m->cfg.worker_uid_base = 0; /* no sandbox: the test need not be root */
	f->m->cfg.log_level = LOG_LEVEL_WARN;
	n = readlink("/proc/self/exe", f->m->self, sizeof(f->m->self) - 1);
	if (n <= 0)
		return -1;
	f->m->self[n] = '\0';
	snprintf(f->m->worker_exe, sizeof(f->m->worker_exe), "%s", f->m->self);
	snprintf(dir, sizeof(dir), "%s/instances/vm1", f->m->cfg.state_dir);
	if (fileio_mkdirs(dir, 0700) == -1 || mkdir(f->m->cfg.run_dir, 0700) == -1)
		return -1;
	f->v = registry_new("vm1", 2, 3);
	if (f->v == NULL)
		return -1;
	f->p.keyfd = f->p.readyfd = -1;
	unsetenv(MODE_ENV);
	*state = f;
	return 0;
}

/* Ends a worker the test left behind (its session is its own: nothing
 * else would). */
static void
reap(struct vtpm *v)
{
	int status;

	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, &status, 0);
	}
	if (v->pidfd != -1)
		close(v->pidfd);
	if (v->readyfd != -1)
		close(v->readyfd);
	v->pid = 0;
	v->pidfd = -1;
	v->readyfd = -1;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int ret;

	reap(f->v);
	if (f->p.keyfd != -1)
		close(f->p.keyfd);
	if (f->p.readyfd != -1)
		close(f->p.readyfd);
	workerlog_close(f->m, f->v, true);
	free(f->v);
	free(f->m);
	unsetenv(MODE_ENV);
	ret = nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

static const char *
run_file(struct fixture *f, const char *leaf)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->m->cfg.run_dir, leaf);
	return f->path;
}

static const char *
state_file(struct fixture *f, const char *leaf)
{
	snprintf(f->path, sizeof(f->path), "%s/instances/vm1/state/%s", f->m->cfg.state_dir, leaf);
	return f->path;
}

static char *
slurp(const char *path, size_t *len)
{
	uint8_t *buf;
	size_t n;

	if (fileio_read(path, 1 << 20, &buf, &n) == -1)
		fail_msg("%s: %s", path, strerror(errno));
	buf = realloc(buf, n + 1);
	assert_non_null(buf);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return (char *)buf;
}

/* The kernel's start time of pid (/proc/PID/stat, field 22), read here
 * independently of worker.c. */
static unsigned long long
starttime(pid_t pid)
{
	char path[64], text[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	p = strrchr(text, ')');
	assert_non_null(p);
	/* Fields 3 to 21 follow ") ". */
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		assert_non_null(p);
		p++;
	}
	return strtoull(p, NULL, 10);
}

static bool
alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

/* Spawns the fake worker in mode and hands it the key, as
 * lifecycle_start does. */
static void
spawn(struct fixture *f, const char *mode)
{
	struct err err = {0};

	setenv(MODE_ENV, mode, 1);
	if (worker_fork(f->m, f->v, &f->p, &err) != 0)
		fail_msg("worker_fork: %s", err.msg);
	assert_true(f->v->pid > 0);
	assert_true(f->v->pidfd >= 0);
	assert_true(f->p.keyfd >= 0 && f->p.readyfd >= 0);
	if (worker_send_key(&f->p, key, blob_rec, &err) != 0)
		fail_msg("worker_send_key: %s", err.msg);
	assert_int_equal(f->p.keyfd, -1);
	f->v->readyfd = f->p.readyfd;
	f->p.readyfd = -1;
}

/* Waits, as the manager's loop does, for the readiness pipe: returns
 * worker_ready's verdict, 1 (READY) or -1 (anything else). */
static int
wait_ready(struct fixture *f)
{
	struct pollfd pfd = {.fd = f->v->readyfd, .events = POLLIN};
	int rc;

	do {
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		rc = worker_ready(f->v);
	} while (rc == 0);
	assert_int_equal(f->v->readyfd, -1); /* closed once it has spoken */
	return rc;
}

static void
start_ready(struct fixture *f, const char *mode)
{
	spawn(f, mode);
	assert_int_equal(wait_ready(f), 1);
}

/* Waits until the worker's pidfd says it ended. */
static void
wait_pidfd(struct vtpm *v)
{
	struct pollfd pfd = {.fd = v->pidfd, .events = POLLIN};

	assert_int_equal(poll(&pfd, 1, 10000), 1);
}

/* ---- tests ---- */

static void
test_socket_paths(void **state)
{
	struct fixture *f = *state;
	char ctrl[PATH_MAX], data[PATH_MAX], want[PATH_MAX];

	worker_socket_paths(&f->m->cfg, "vm1", ctrl, sizeof(ctrl), data, sizeof(data));
	snprintf(want, sizeof(want), "%s/vm1.sock.ctrl", f->m->cfg.run_dir);
	assert_string_equal(ctrl, want);
	snprintf(want, sizeof(want), "%s/vm1.sock", f->m->cfg.run_dir);
	assert_string_equal(data, want);
}

/* Stops f's worker as the loop does: worker_stop, its pidfd readable, then
 * worker_exited. Nothing to stop: nothing done. */
static void
stop_worker(struct fixture *f)
{
	struct pollfd pfd = {.fd = f->v->pidfd, .events = POLLIN};
	struct err err;

	if (f->v->pid <= 0)
		return;
	assert_int_equal(worker_stop(f->v), 0);
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	worker_exited(f->m, f->v, &err);
}

/* A worker that becomes ready: its command line, its descriptors, its key,
 * its pid file; stopped, it leaves nothing in the run directory. */
static void
test_spawn_ready(void **state)
{
	struct fixture *f = *state;
	char want[4096], line[64], *text;
	struct stat sb;
	size_t len;
	pid_t pid;
	int stray;

	/* A descriptor the manager holds without close-on-exec. */
	stray = open("/dev/null", O_RDONLY);
	assert_true(stray >= 0);
	start_ready(f, "ready");
	close(stray);
	pid = f->v->pid;
	assert_true(f->v->child);
	assert_true(f->v->pidfd >= 0);
	assert_int_equal(f->p.keyfd, -1);
	assert_int_equal(f->p.readyfd, -1);
	assert_true(alive(pid));

	assert_int_equal(stat(state_file(f, ""), &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	text = slurp(state_file(f, "key"), &len);
	assert_int_equal(len, STATE_KEY_LEN + STATEBLOB_KEY_RECORD_LEN);
	assert_memory_equal(text, key, STATE_KEY_LEN);
	assert_memory_equal(text + STATE_KEY_LEN, blob_rec, STATEBLOB_KEY_RECORD_LEN);
	free(text);

	text = slurp(state_file(f, "argv"), NULL);
	snprintf(want, sizeof(want),
	    "vtpmd-instance\n--name\nvm1\n--state\n%s/instances/vm1/state\n"
	    "--ctrl\nunix:%s/vm1.sock.ctrl\n--data\nunix:%s/vm1.sock\n--key-fd\n3\n"
	    "--blob-key-fd\n3\n--ready-fd\n4\n--commit-fd\n5\n--commit-listen\n"
	    "unix:%s/vm1.commit\n--nv-rate\n20\n--startup\nclear\n--tpm\n2\n--log-level\nwarn\n"
	    "--log-relayed\n",
	    f->m->cfg.state_dir, f->m->cfg.run_dir, f->m->cfg.run_dir, f->m->cfg.run_dir);
	assert_string_equal(text, want);
	free(text);

	text = slurp(state_file(f, "fds"), NULL);
	assert_string_equal(text, "0 1 2 3 4 5\n0 /dev/null\n1 /dev/null");
	free(text);

	text = slurp(run_file(f, "vm1.pid"), NULL);
	snprintf(line, sizeof(line), "%d %llu\n", (int)pid, starttime(pid));
	assert_string_equal(text, line);
	free(text);

	/* Stopped: the pid file and any socket files are gone. */
	fileio_write_atomic(run_file(f, "vm1.sock"), "", 0, 0600);
	fileio_write_atomic(run_file(f, "vm1.sock.ctrl"), "", 0, 0600);
	stop_worker(f);
	assert_false(alive(pid));
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);
	assert_int_equal(access(run_file(f, "vm1.sock"), F_OK), -1);
	assert_int_equal(access(run_file(f, "vm1.sock.ctrl"), F_OK), -1);
	stop_worker(f); /* nothing left to stop */
}

/* A TPM 1.2 instance and a log level are passed on. */
static void
test_spawn_args(void **state)
{
	struct fixture *f = *state;
	char *text;

	f->v->tpm_version = 1;
	f->m->cfg.log_level = LOG_LEVEL_DEBUG;
	start_ready(f, "ready");
	text = slurp(state_file(f, "argv"), NULL);
	assert_non_null(strstr(text, "\n--tpm\n1.2\n"));
	assert_non_null(strstr(text, "\n--log-level\ndebug\n"));
	assert_null(strstr(text, "--sandbox-uid"));
	assert_null(strstr(text, "--socket-group"));
	free(text);
	stop_worker(f);

	f->m->cfg.socket_gid = 4242;
	start_ready(f, "ready");
	text = slurp(state_file(f, "argv"), NULL);
	assert_non_null(strstr(text, "\n--socket-group\n4242\n"));
	free(text);
	stop_worker(f);
}

/* Until the worker writes, its pipe has nothing: worker_ready says so and
 * keeps the pipe. */
static void
test_ready_nothing_yet(void **state)
{
	struct fixture *f = *state;
	int fd;

	spawn(f, "hang");
	fd = f->v->readyfd;
	assert_int_equal(worker_ready(f->v), 0);
	assert_int_equal(f->v->readyfd, fd);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	worker_abort(f->m, f->v, &f->p);
	assert_int_equal(f->v->readyfd, -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

/* What a worker that ends before it is ready has to say: the pipe says
 * "not ready", the worker's end (its pidfd) the rest. */
static void
expect_refused(struct fixture *f, const char *mode, const char *msg)
{
	struct err err = {0};
	pid_t pid;

	spawn(f, mode);
	assert_int_equal(wait_ready(f), -1);
	wait_pidfd(f->v);
	assert_true(worker_exited(f->m, f->v, &err) >= 0);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", mode, err.msg, msg);
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);
	/* Reaped: no zombie of it is left. */
	pid = waitpid(-1, NULL, WNOHANG);
	assert_true(pid == -1 && errno == ECHILD);
}

static void
test_exit_before_ready(void **state)
{
	struct fixture *f = *state;

	expect_refused(f, "exit:3", "its state cannot be read (see the log); it was not replaced");
	expect_refused(f, "exit:4", "in use by another process");
	expect_refused(f, "exit:2", "rejected its command line");
	expect_refused(f, "exit:1", "exited with status 1");
	expect_refused(f, "garbage", "exited with status 0");
}

/* A spawn that fails leaves nothing running and no descriptor open. */
static void
test_spawn_fails(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};
	int before, after;

	before = open("/dev/null", O_RDONLY);
	close(before);
	snprintf(f->m->worker_exe, sizeof(f->m->worker_exe), "%s/no-such-worker", f->root);
	assert_int_equal(worker_fork(f->m, f->v, &f->p, &err), -1);
	assert_non_null(strstr(err.msg, "no-such-worker"));
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->p.keyfd, -1);
	assert_int_equal(f->p.readyfd, -1);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);
	after = open("/dev/null", O_RDONLY);
	close(after);
	assert_int_equal(after, before);
}

/* The key could not be unsealed: the worker, waiting for it, is ended
 * and forgotten. */
static void
test_abort_before_key(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};
	int keyfd, readyfd;
	pid_t pid;

	setenv(MODE_ENV, "ready", 1);
	assert_int_equal(worker_fork(f->m, f->v, &f->p, &err), 0);
	pid = f->v->pid;
	keyfd = f->p.keyfd;
	readyfd = f->p.readyfd;
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), 0);
	worker_abort(f->m, f->v, &f->p);
	/* Both pipes closed, not merely forgotten. */
	assert_int_equal(fcntl(keyfd, F_GETFD), -1);
	assert_int_equal(fcntl(readyfd, F_GETFD), -1);
	assert_false(alive(pid));
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_int_equal(f->p.keyfd, -1);
	assert_int_equal(f->p.readyfd, -1);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);
	assert_true(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* A worker that ends before it reads its key (killed here while it waits
 * for it): the write fails without a SIGPIPE, and worker_abort leaves
 * nothing of it. */
static void
test_exit_before_key(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	setenv(MODE_ENV, "hang", 1);
	assert_int_equal(worker_fork(f->m, f->v, &f->p, &err), 0);
	kill(f->v->pid, SIGKILL);
	wait_pidfd(f->v);
	assert_int_equal(worker_send_key(&f->p, key, blob_rec, &err), -1);
	assert_non_null(strstr(err.msg, "key pipe"));
	worker_abort(f->m, f->v, &f->p);
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_int_equal(f->p.keyfd, -1);
	assert_int_equal(f->p.readyfd, -1);
	assert_true(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* worker_exited: the status of a child (128+signal when killed) and its
 * words; the pid file is removed. */
static void
test_exited(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	start_ready(f, "ready,exit:3");
	wait_pidfd(f->v);
	assert_int_equal(worker_exited(f->m, f->v, &err), 3);
	assert_non_null(strstr(err.msg, "its state cannot be read"));
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(f->v->pidfd, -1);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);

	start_ready(f, "ready");
	kill(f->v->pid, SIGKILL);
	wait_pidfd(f->v);
	err_clear(&err);
	assert_int_equal(worker_exited(f->m, f->v, &err), 128 + SIGKILL);
	assert_string_equal(err.msg, "killed by signal 9");

	start_ready(f, "ready,exit:0");
	wait_pidfd(f->v);
	assert_int_equal(worker_exited(f->m, f->v, &err), 0);
	assert_string_equal(err.msg, "exited with status 0");
}

/* An adopted worker's status is not ours to know. */
static void
test_exited_adopted(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};
	pid_t pid;
	int status;

	start_ready(f, "ready,exit:5");
	pid = f->v->pid;
	wait_pidfd(f->v);
	f->v->child = false;
	assert_int_equal(worker_exited(f->m, f->v, &err), -1);
	assert_string_equal(err.msg, "exited");
	assert_int_equal(f->v->pid, 0);
	assert_int_equal(access(run_file(f, "vm1.pid"), F_OK), -1);
	/* (Its real parent, this test, collects it.) */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 5);
}

/* A worker that ignores SIGTERM is killed after 5 s (here, at once). */
static void
test_terminate_stubborn(void **state)
{
	struct fixture *f = *state;
	struct pollfd pfd;
	struct err err;
	pid_t pid;

	start_ready(f, "ready,ignore-term");
	pid = f->v->pid;
	pfd = (struct pollfd){.fd = f->v->pidfd, .events = POLLIN};
	assert_int_equal(worker_stop(f->v), 0);
	assert_int_equal(poll(&pfd, 1, 200), 0); /* SIGTERM ignored */
	assert_true(alive(pid));
	worker_stop_kill(f->v);
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(worker_exited(f->m, f->v, &err), 128 + SIGKILL);
	assert_false(alive(pid));
	assert_int_equal(f->v->pid, 0);
	assert_true(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* A restarted manager takes over its worker through the pid file. */
static void
test_adopt(void **state)
{
	struct fixture *f = *state;
	struct vtpm *again = registry_new("vm1", 2, 3);
	struct pollfd pfd = {.events = POLLIN};

	assert_non_null(again);
	start_ready(f, "ready");
	assert_int_equal(worker_adopt(f->m, again), 0);
	assert_int_equal(again->pid, f->v->pid);
	assert_false(again->child);
	assert_true(again->pidfd >= 0);
	pfd.fd = again->pidfd;
	assert_int_equal(poll(&pfd, 1, 0), 0); /* it runs */
	kill(f->v->pid, SIGKILL);
	assert_int_equal(poll(&pfd, 1, 10000), 1); /* and it is watched */
	assert_true(workerlog_fd(again) >= 0);	    /* its log channel, opened again */
	close(again->pidfd);
	workerlog_close(f->m, again, false);
	free(again);
}

/* A worker adopted before it listens for commits (its vtpmd died while it
 * was starting) is connected once it listens, not left waiting for the
 * next restart. */
static void
test_adopt_commit_later(void **state)
{
	struct fixture *f = *state;
	struct vtpm *again = registry_new("vm1", 2, 3);
	struct vtpm **saved = f->m->vtpms;
	size_t saved_n = f->m->n;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd, afd;

	assert_non_null(again);
	start_ready(f, "ready");
	assert_int_equal(worker_adopt(f->m, again), 0);
	assert_int_equal(again->commit_fd, -1); /* nothing listens yet */
	assert_true(again->commit_retry_at != 0);
	f->m->vtpms = &again;
	f->m->n = 1;
	assert_int_equal(worker_commit_next(f->m), again->commit_retry_at);
	worker_commit_retry(f->m); /* not due yet: nothing tried */
	assert_int_equal(again->commit_fd, -1);

	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vm1.commit", f->m->cfg.run_dir);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	again->commit_retry_at = mono_ms(); /* due */
	worker_commit_retry(f->m);
	assert_true(again->commit_fd >= 0);
	assert_int_equal(again->commit_retry_at, 0);
	assert_int_equal(worker_commit_next(f->m), -1);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);

	f->m->vtpms = saved;
	f->m->n = saved_n;
	close(afd);
	close(lfd);
	unlink(sa.sun_path);
	close(again->commit_fd);
	kill(f->v->pid, SIGKILL);
	close(again->pidfd);
	workerlog_close(f->m, again, false);
	free(again);
}

/* A pid file that names anything but this instance's live worker. */
static void
expect_not_adopted(struct fixture *f, const char *name, const char *line)
{
	struct vtpm *v = registry_new(name, 2, 0);
	char leaf[96];

	assert_non_null(v);
	snprintf(leaf, sizeof(leaf), "%s.pid", name);
	if (line != NULL)
		assert_int_equal(
		    fileio_write_atomic(run_file(f, leaf), line, strlen(line), 0600), 0);
	if (worker_adopt(f->m, v) != -1)
		fail_msg("%s: pid file \"%s\" adopted", name, line != NULL ? line : "(none)");
	assert_int_equal(v->pid, 0);
	assert_int_equal(v->pidfd, -1);
	free(v);
}

static void
test_adopt_refused(void **state)
{
	struct fixture *f = *state;
	char line[64];
	pid_t pid;

	start_ready(f, "ready");
	pid = f->v->pid;
	expect_not_adopted(f, "nofile", NULL);
	expect_not_adopted(f, "vm2", "garbage\n");
	expect_not_adopted(f, "vm2", "");
	expect_not_adopted(f, "vm2", "1 1\n");
	expect_not_adopted(f, "vm2", "-5 7\n");
	/* vm1's worker, in another instance's pid file. */
	snprintf(line, sizeof(line), "%d %llu\n", (int)pid, starttime(pid));
	expect_not_adopted(f, "vm2", line);
	/* The pid, with another start time (the pid was reused). */
	snprintf(line, sizeof(line), "%d %llu\n", (int)pid, starttime(pid) + 1);
	expect_not_adopted(f, "vm1", line);
	/* A live process that is no worker: this test. */
	snprintf(line, sizeof(line), "%d %llu\n", (int)getpid(), starttime(getpid()));
	expect_not_adopted(f, "vm1", line);
	/* A worker that has gone. */
	snprintf(line, sizeof(line), "%d %llu\n", (int)pid, starttime(pid));
	stop_worker(f);
	expect_not_adopted(f, "vm1", line);
}

/* The real worker: `vtpmd instance` (this program, worker_exe empty) with
 * its key and readiness through the pipes serves a TPM on its data socket
 * and, stopped, exits 0 with its state written. */
/* Acknowledges the worker's commit reports, as vtpmd's fresh.c does (here
 * without a host TPM), until fd has an answer to read: the worker holds
 * each answer, and each permanent write after the first, until then. */
static void
ack_until_readable(const struct vtpm *v, int fd)
{
	uint8_t report[COMMIT_REPORT_LEN], ack[12] = {'V', 'T', 'C', 'A'};
	struct pollfd p[2];

	for (int round = 0; round < 100; round++) {
		p[0] = (struct pollfd){.fd = v->commit_fd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = fd, .events = POLLIN};
		assert_true(poll(p, 2, 10000) > 0);
		if (p[1].revents != 0)
			return;
		assert_int_equal(read(v->commit_fd, report, sizeof(report)), sizeof(report));
		assert_memory_equal(report, "VTCR", 4);
		memcpy(ack + 4, report + 4, 8);
		assert_int_equal(write(v->commit_fd, ack, sizeof(ack)), sizeof(ack));
	}
	fail_msg("no answer after 100 acknowledgements");
}

static void
test_real_worker(void **state)
{
	static const uint8_t get_random[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8};
	struct fixture *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	struct vtpm *again = registry_new("vm1", 2, 3);
	struct err err = {0};
	uint8_t rsp[64];
	size_t got = 0;
	ssize_t n;
	char *text;
	int fd;

	assert_non_null(again);
	f->m->worker_exe[0] = '\0';
	start_ready(f, "real");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vm1.sock", f->m->cfg.run_dir);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, get_random, sizeof(get_random)), sizeof(get_random));
	ack_until_readable(f->v, fd);
	while (got < 20 && (n = read(fd, rsp + got, sizeof(rsp) - got)) > 0)
		got += (size_t)n;
	close(fd);
	assert_int_equal(got, 20);
	assert_int_equal(rsp[5], 20);
	assert_int_equal(rsp[6] | rsp[7] | rsp[8] | rsp[9], 0); /* TPM_RC_SUCCESS */

	/* Its command line is one a restarted manager adopts. */
	assert_int_equal(worker_adopt(f->m, again), 0);
	assert_true(again->commit_fd >= 0); /* its commit listener */
	close(again->commit_fd);
	close(again->pidfd);
	workerlog_close(f->m, again, false);
	free(again);

	assert_int_equal(kill(f->v->pid, SIGTERM), 0);
	wait_pidfd(f->v);
	if (worker_exited(f->m, f->v, &err) != 0)
		fail_msg("the worker ended: %s", err.msg);
	text = slurp(state_file(f, "permanent.state"), NULL);
	free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    T(test_socket_paths),
	    T(test_spawn_ready),
	    T(test_spawn_args),
	    T(test_ready_nothing_yet),
	    T(test_exit_before_ready),
	    T(test_spawn_fails),
	    T(test_abort_before_key),
	    T(test_exit_before_key),
	    T(test_exited),
	    T(test_exited_adopted),
	    T(test_terminate_stubborn),
	    T(test_adopt),
	    T(test_adopt_commit_later),
	    T(test_adopt_refused),
	    T(test_real_worker),
	};

	/* Spawned as a worker. */
	if (argc > 0 && strcmp(argv[0], "vtpmd-instance") == 0)
		return fake_worker(argc, argv);
	if (argc > 1 && strcmp(argv[1], "instance") == 0)
		return instance_main(argc - 1, argv + 1);

	setvbuf(stdout, NULL, _IONBF, 0);
	/* As vtpmd: a worker gone before its key is written is no reason to
	 * die of SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	log_init("test_worker", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
