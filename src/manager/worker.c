/*
 * worker.c: the manager's side of a worker, the process that runs one
 * vTPM (`vtpmd instance`).
 *
 * A worker is spawned from vtpmd-instance beside this executable (or from
 * this one, `vtpmd instance`) with only its state key (a pipe on fd 3,
 * closed after 32 bytes; the worker is spawned first and waits on it while
 * the manager unseals the key, so its start-up overlaps the host-TPM round
 * trips), a readiness pipe (fd 4), stderr for its log, and its command
 * line: state directory, sockets and sandbox identity. It runs in its own session so that it
 * outlives the manager: a restarted manager adopts it through the pid
 * file RUN/NAME.pid (pid and kernel start time, so a recycled pid is never
 * mistaken for it). Workers are watched through pidfds, which work for
 * children and adopted processes alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "manager.h"


static int
worker_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

void
worker_socket_paths(const struct config *cfg, const char *name, char *ctrl, size_t clen,
    char *data, size_t dlen)
{
	snprintf(data, dlen, "%s/%s.sock", cfg->run_dir, name);
	snprintf(ctrl, clen, "%s/%s.sock.ctrl", cfg->run_dir, name);
}

/*
 * Who may connect to v's sockets, besides root: its owner (owner_uid, and
 * members of owner_gid when set) if it has one, else members of
 * socket-group, else nobody. 0 in *uid or *gid: unchanged.
 */
static void
worker_socket_owner(const struct manager *m, const struct vtpm *v, uid_t *uid, gid_t *gid)
{
	if (v->owner_uid != -1) {
		*uid = (uid_t)v->owner_uid;
		*gid = v->owner_gid != -1 ? (gid_t)v->owner_gid : 0;
	} else {
		*uid = 0;
		*gid = m->cfg.socket_gid;
	}
}

/*
 * Gives v's sockets to their owner and group (worker_socket_owner; mode
 * 0660 with a group, else 0600), as a worker does with --socket-owner and
 * --socket-group, for a worker started without them (provisioning). The
 * paths are changed, not the descriptors. 0 (also when nobody but root
 * is to connect), or -1 with err.
 */
int
worker_share_sockets(const struct manager *m, const struct vtpm *v, struct err *err)
{
	char ctrl[PATH_MAX], data[PATH_MAX];
	const char *paths[] = {data, ctrl};
	uid_t uid;
	gid_t gid;

	worker_socket_owner(m, v, &uid, &gid);
	if (uid == 0 && gid == 0)
		return 0;
	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (lchown(paths[i], uid != 0 ? uid : (uid_t)-1, gid != 0 ? gid : (gid_t)-1) == -1 ||
		    chmod(paths[i], gid != 0 ? 0660 : 0600) == -1)
			return err_errno(err, "%s: giving it to %u:%u", paths[i], (unsigned int)uid,
			    (unsigned int)gid);
	return 0;
}

static void
worker_pidfile(const struct config *cfg, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.pid", cfg->run_dir, name);
}

/* The worker's commit listener (root's, 0600), for a vtpmd that adopts it. */
static void
worker_commit_path(const struct config *cfg, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.commit", cfg->run_dir, name);
}

/* The kernel's start time of pid (clock ticks since boot), or 0. */
static unsigned long long
worker_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	/* Field 3 follows ") "; the start time is field 22. */
	p += 2;
	for (field = 3; field < 22 && p != NULL; field++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	if (p != NULL)
		start = strtoull(p, NULL, 10);
	return start;
}

static bool
worker_cmdline_matches(pid_t pid, const char *name)
{
	char path[64], buf[4096];
	bool instance = false, named = false;
	const char *prev = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
		if (strcmp(p, "instance") == 0 || strcmp(p, "vtpmd-instance") == 0)
			instance = true;
		if (strcmp(prev, "--name") == 0 && strcmp(p, name) == 0)
			named = true;
		prev = p;
	}
	return instance && named;
}

/* Gives the state directory (and what is in it) to the worker's uid. */
static int
worker_chown_state(const char *dir, uid_t uid, gid_t gid)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (chown(dir, uid, gid) == -1)
		return -1;
	d = opendir(dir);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (fchownat(dirfd(d), de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) == -1)
			ret = -1;
	}
	closedir(d);
	return ret;
}

static void
worker_describe_exit(int status, struct err *err)
{
	if (WIFSIGNALED(status)) {
		err_set(err, ERR_FAILED, "killed by signal %d", WTERMSIG(status));
		return;
	}
	switch (WEXITSTATUS(status)) {
	case EXIT_STATE:
		err_set(err, ERR_FAILED, "its state cannot be read (see the log); it was not "
				       "replaced: restore it or delete the instance");
		break;
	case EXIT_BUSY:
		err_set(err, ERR_FAILED, "its state directory or socket is in use by another "
				       "process");
		break;
	case EXIT_USAGE:
		err_set(err, ERR_FAILED, "it rejected its command line (vtpmd version mismatch?)");
		break;
	default:
		err_set(err, ERR_FAILED, "exited with status %d", WEXITSTATUS(status));
	}
}

/* Reaps the child pid, already killed or ending: a matter of
 * milliseconds, not a wait for a worker's good will. */
static void
worker_reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/*
 * Spawns the worker with fds 0 and 1 on /dev/null, 2 its log channel
 * (workerlog.c), 3 the key pipe, 4 the readiness pipe, 5 its end of the
 * commit channel (fresh.c) (all four above 5 here), nothing else, in its own
 * session with default signals. posix_spawn (a vfork-like clone in glibc)
 * rather than fork: the manager is not copied, so neither the copy nor
 * the copy-on-write faults of the manager's next steps (the unseal, which
 * runs while the worker starts) cost the start anything.
 */
static int
worker_spawn(struct manager *m, struct vtpm *v, const char *state, const int fds[4], pid_t *pid)
{
	char ctrl[PATH_MAX], data[PATH_MAX], ctrl_ep[PATH_MAX + 8], data_ep[PATH_MAX + 8];
	char commit[PATH_MAX], commit_ep[PATH_MAX + 8], rate[16];
	int keyfd = fds[0], readyfd = fds[1], logfd = fds[2], commitfd = fds[3];
	char uid[16], gid[16], sockuid[16], sockgid[16], revert[24];
	uid_t owner;
	gid_t group;
	const char *lvl[] = {"error", "warn", "info", "debug"};
	const char *argv[48];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int n = 0, rc;

	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	snprintf(ctrl_ep, sizeof(ctrl_ep), "unix:%s", ctrl);
	snprintf(data_ep, sizeof(data_ep), "unix:%s", data);
	/* The lean worker executable beside this one, else `vtpmd instance`. */
	if (m->worker_exe[0] != '\0') {
		argv[n++] = "vtpmd-instance";
	} else {
		argv[n++] = "vtpmd";
		argv[n++] = "instance";
	}
	argv[n++] = "--name";
	argv[n++] = v->name;
	argv[n++] = "--state";
	argv[n++] = state;
	argv[n++] = "--ctrl";
	argv[n++] = ctrl_ep;
	argv[n++] = "--data";
	argv[n++] = data_ep;
	argv[n++] = "--key-fd";
	argv[n++] = "3";
	argv[n++] = "--blob-key-fd"; /* after the state key, on the same pipe */
	argv[n++] = "3";
	argv[n++] = "--ready-fd";
	argv[n++] = "4";
	worker_commit_path(&m->cfg, v->name, commit, sizeof(commit));
	snprintf(commit_ep, sizeof(commit_ep), "unix:%s", commit);
	argv[n++] = "--commit-fd";
	argv[n++] = "5";
	argv[n++] = "--commit-listen";
	argv[n++] = commit_ep;
	snprintf(rate, sizeof(rate), "%u", m->cfg.nv_write_rate);
	argv[n++] = "--nv-rate";
	argv[n++] = rate;
	/* vtpmd's own commands to a vTPM it provisions are answered without
	 * waiting for its loop; fresh_strict ends that before any guest. */
	if (v->prov != NULL)
		argv[n++] = "--commit-relaxed";
	/* A revert the operator authorised and fresh_check accepted. */
	if (v->revert_next != 0) {
		snprintf(revert, sizeof(revert), "%llu", (unsigned long long)v->revert_next);
		argv[n++] = "--revert-generation";
		argv[n++] = revert;
	}
	/* Started, so tools can use it at once; QEMU's INIT power-cycles it
	 * and the guest sends its own Startup. */
	argv[n++] = "--startup";
	argv[n++] = "clear";
	argv[n++] = "--tpm";
	argv[n++] = v->tpm_version == 2 ? "2" : "1.2";
	argv[n++] = "--log-level";
	argv[n++] = lvl[m->cfg.log_level];
	argv[n++] = "--log-relayed";
	if (m->cfg.worker_uid_base != 0 && geteuid() == 0) {
		snprintf(uid, sizeof(uid), "%u", (unsigned int)(m->cfg.worker_uid_base + v->slot));
		snprintf(gid, sizeof(gid), "%u", (unsigned int)(m->cfg.worker_uid_base + v->slot));
		argv[n++] = "--sandbox-uid";
		argv[n++] = uid;
		argv[n++] = "--sandbox-gid";
		argv[n++] = gid;
	}
	/* The sockets go to the instance's owner (its QEMU's user), or to
	 * socket-group (QEMU's group) with mode 0660; numbers, so the worker
	 * looks up no names. Not yet for a worker to provision: the manager
	 * sends it commands from its loop, and a client that connected first
	 * would hold them, and the loop, in the worker's line;
	 * worker_share_sockets gives them once it is provisioned. */
	worker_socket_owner(m, v, &owner, &group);
	if (owner != 0 && v->prov == NULL) {
		snprintf(sockuid, sizeof(sockuid), "%u", (unsigned int)owner);
		argv[n++] = "--socket-owner";
		argv[n++] = sockuid;
	}
	if (group != 0 && v->prov == NULL) {
		snprintf(sockgid, sizeof(sockgid), "%u", (unsigned int)group);
		argv[n++] = "--socket-group";
		argv[n++] = sockgid;
	}
	argv[n] = NULL;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, 0, 1)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, keyfd, 3)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, readyfd, 4)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, logfd, 2)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, commitfd, 5)) == 0 &&
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 6)) == 0 &&
	    (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
	                                              POSIX_SPAWN_SETSIGDEF)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&attr, &dfl)) == 0)
		rc = posix_spawn(pid, m->worker_exe[0] != '\0' ? m->worker_exe : m->self, &fa, &attr,
		    (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Records the worker's pid and kernel start time in the run directory as
 * soon as it is forked, so that a vtpmd that dies at any later step
 * leaves a worker the next one adopts (or stops), never an orphan. */
static void
worker_write_pidfile(struct manager *m, const struct vtpm *v)
{
	char pidfile[PATH_MAX], line[64];

	worker_pidfile(&m->cfg, v->name, pidfile, sizeof(pidfile));
	snprintf(line, sizeof(line), "%d %llu\n", (int)v->pid, worker_starttime(v->pid));
	if (fileio_write_runtime(pidfile, line, strlen(line), 0600) == -1)
		log_warn("%s", pidfile);
}

/* Moves *fd above min (close-on-exec kept). Returns 0 or -1. */
static int
worker_fd_above(int *fd, int min)
{
	int nfd;

	if (*fd > min)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, min + 1);
	if (nfd == -1)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

/*
 * Starts v's worker process, which waits for its state key on the pipe
 * in *p: the caller unseals the key meanwhile (host-TPM round trips), then
 * hands it over (worker_send_key) and waits, in its loop, for the
 * readiness pipe p->readyfd (non-blocking; worker_ready reads it) or the
 * worker's end (v->pidfd). Returns 0, or -1 with err (nothing runs then).
 */
int
worker_fork(struct manager *m, struct vtpm *v, struct worker_pending *p, struct err *err)
{
	char state[PATH_MAX];
	int keyp[2] = {-1, -1}, readyp[2] = {-1, -1}, commitp[2] = {-1, -1}, logfd = -1;
	uid_t uid = m->cfg.worker_uid_base + v->slot;
	pid_t pid;
	int rc;

	p->keyfd = p->readyfd = -1;
	if (registry_path(&m->cfg, v->name, "state", state, sizeof(state)) == -1) {
		err_set(err, ERR_FAILED, "state path too long");
		return -1;
	}
	if (mkdir(state, 0700) == -1 && errno != EEXIST) {
		err_set(err, ERR_FAILED, "%s: %s", state, strerror(errno));
		return -1;
	}
	if (m->cfg.worker_uid_base != 0 && geteuid() == 0 &&
	    worker_chown_state(state, uid, uid) == -1) {
		err_set(err, ERR_FAILED, "%s: cannot give it to uid %u: %s", state, (unsigned)uid,
		    strerror(errno));
		return -1;
	}
	if (pipe2(keyp, O_CLOEXEC) == -1 || pipe2(readyp, O_CLOEXEC) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, commitp) == -1) {
		err_set(err, ERR_FAILED, "pipe: %s", strerror(errno));
		goto fail;
	}
	if (workerlog_open(m, v, err) == -1 || (logfd = workerlog_writer(m, v, err)) == -1) {
		err_wrap(err, "its log channel");
		goto fail;
	}
	/* The child's ends above 5, where the spawn's dup2s cannot overwrite
	 * one with the other. */
	if (worker_fd_above(&keyp[0], 5) == -1 || worker_fd_above(&readyp[1], 5) == -1 ||
	    worker_fd_above(&logfd, 5) == -1 || worker_fd_above(&commitp[1], 5) == -1 ||
	    fcntl(commitp[0], F_SETFL, O_NONBLOCK) == -1) {
		err_set(err, ERR_FAILED, "fcntl: %s", strerror(errno));
		goto fail;
	}
	rc = worker_spawn(m, v, state, (const int[4]){keyp[0], readyp[1], logfd, commitp[1]}, &pid);
	if (rc != 0) {
		err_set(err, ERR_FAILED, "spawn %s: %s",
		    m->worker_exe[0] != '\0' ? m->worker_exe : m->self, strerror(rc));
		goto fail;
	}
	close(keyp[0]);
	close(readyp[1]);
	close(logfd);
	close(commitp[1]);
	keyp[0] = readyp[1] = logfd = commitp[1] = -1;
	v->commit_fd = commitp[0];
	v->commit_len = 0;
	v->commit_want = false;
	commitp[0] = -1;
	v->pid = pid;
	v->child = true;
	v->pidfd = worker_pidfd_open(pid);
	if (v->pidfd == -1 || fcntl(readyp[0], F_SETFL, O_NONBLOCK) == -1) {
		/* The loop could not tell when it ends. */
		err_errno(err, "pidfd_open %d", (int)pid);
		kill(pid, SIGKILL);
		worker_reap(pid);
		if (v->pidfd != -1)
			close(v->pidfd);
		v->pidfd = -1;
		v->pid = 0;
		goto fail;
	}
	p->keyfd = keyp[1];
	p->readyfd = readyp[0];
	worker_write_pidfile(m, v);
	return 0;
fail:
	if (logfd != -1)
		close(logfd);
	for (int i = 0; i < 2; i++) {
		if (keyp[i] != -1)
			close(keyp[i]);
		if (readyp[i] != -1)
			close(readyp[i]);
		if (commitp[i] != -1)
			close(commitp[i]);
	}
	return -1;
}

/*
 * Hands the forked worker its state key, then its blob key record
 * (STATEBLOB_KEY_RECORD_LEN bytes: the key that wraps its state blobs,
 * its UUID, the key id), and closes the key pipe, so that it starts while
 * the caller does something else. Returns 0, or -1 with err (the caller
 * then ends the worker with worker_abort).
 */
int
worker_send_key(struct worker_pending *p, const uint8_t *key, const uint8_t *blob_key,
    struct err *err)
{
	/* A pipe holds far more than both: this never blocks. */
	if (write(p->keyfd, key, STATE_KEY_LEN) != STATE_KEY_LEN ||
	    write(p->keyfd, blob_key, STATEBLOB_KEY_RECORD_LEN) != STATEBLOB_KEY_RECORD_LEN) {
		err_set(err, ERR_FAILED, "key pipe: %s", strerror(errno));
		return -1;
	}
	close(p->keyfd);
	p->keyfd = -1;
	return 0;
}

/*
 * Reads v's readiness pipe (v->readyfd) after poll said it is readable.
 * Returns 1 once the worker wrote READY, 0 when nothing has come yet, -1
 * when it ended its pipe or wrote anything else (it failed: the caller
 * waits for its end on v->pidfd, or kills it). The pipe is closed unless
 * 0 is returned.
 */
int
worker_ready(struct vtpm *v)
{
	char buf[8] = {0};
	ssize_t n;

	do
		n = read(v->readyfd, buf, sizeof(buf) - 1);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	close(v->readyfd);
	v->readyfd = -1;
	return n == 6 && memcmp(buf, "READY\n", 6) == 0 ? 1 : -1;
}

/* Connects to an adopted worker's commit listener; the worker sends its
 * pending report again on the new connection. A worker adopted while it
 * was still starting (its vtpmd died meanwhile) may not listen yet: it is
 * tried again every WORKER_COMMIT_RETRY_MS while it runs (worker_commit_retry),
 * its guest's writes waiting until then. */
static void
worker_commit_connect(const struct manager *m, struct vtpm *v)
{
	char path[PATH_MAX];
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	bool first = v->commit_retry_at == 0;
	int fd;

	worker_commit_path(&m->cfg, v->name, path, sizeof(path));
	snprintf(ep.path, sizeof(ep.path), "%s", path);
	fd = endpoint_connect(&ep);
	if (fd == -1 || fcntl(fd, F_SETFL, O_NONBLOCK) == -1) {
		if (first)
			log_warn("%s: no commit channel to its worker (%s) yet: its writes wait "
			         "until it listens",
			    v->name, path);
		if (fd != -1)
			close(fd);
		v->commit_retry_at = mono_ms() + WORKER_COMMIT_RETRY_MS;
		return;
	}
	if (!first)
		log_info("%s: commit channel to its worker connected", v->name);
	v->commit_retry_at = 0;
	v->commit_fd = fd;
	v->commit_len = 0;
	v->commit_want = false;
	v->budget.acked = false; /* its pending report, sent again, is no replay */
}

/* Adopted workers whose commit listener was not there: tried again when due. */
void
worker_commit_retry(struct manager *m)
{
	int64_t now = mono_ms();

	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];

		if (v->commit_retry_at != 0 && now >= v->commit_retry_at) {
			if (v->pid != 0 && v->commit_fd == -1)
				worker_commit_connect(m, v);
			else
				v->commit_retry_at = 0;
		}
	}
}

/* The earliest retry due, or -1. */
int64_t
worker_commit_next(const struct manager *m)
{
	int64_t next = -1;

	for (size_t i = 0; i < m->n; i++) {
		int64_t at = m->vtpms[i]->commit_retry_at;

		if (at != 0 && (next == -1 || at < next))
			next = at;
	}
	return next;
}

/* Takes over a worker that a previous manager started, if its pid file
 * names a live worker of this instance. Returns 0 when adopted. */
int
worker_adopt(struct manager *m, struct vtpm *v)
{
	char pidfile[PATH_MAX];
	unsigned long long start;
	struct err err = {0};
	uint8_t *buf;
	size_t len;
	int pid;

	worker_pidfile(&m->cfg, v->name, pidfile, sizeof(pidfile));
	if (fileio_read(pidfile, 128, &buf, &len) == -1)
		return -1;
	/* NOLINTNEXTLINE(cert-err34-c): our own pid file; a wrong pid fails the checks below */
	if (sscanf((char *)buf, "%d %llu", &pid, &start) != 2 || pid <= 1) {
		free(buf);
		return -1;
	}
	free(buf);
	if (worker_starttime(pid) != start || !worker_cmdline_matches(pid, v->name))
		return -1;
	v->pidfd = worker_pidfd_open(pid);
	if (v->pidfd == -1)
		return -1;
	v->pid = pid;
	v->child = false;
	/* Its log channel, as the vtpmd that started it left it (or, for a
	 * worker an older vtpmd started on its own stderr, a new one it never
	 * writes to). */
	if (workerlog_open(m, v, &err) == -1)
		log_warnx("%s: its log lines are not relayed: %s", v->name, err.msg);
	worker_commit_connect(m, v);
	return 0;
}

/* Forgets v's worker, ended or not (not reaped): its pidfd, readiness pipe,
 * pid file and sockets. */
void
worker_forget(struct manager *m, struct vtpm *v)
{
	char path[PATH_MAX], ctrl[PATH_MAX], data[PATH_MAX];

	if (v->pidfd != -1)
		close(v->pidfd);
	v->pidfd = -1;
	v->pid = 0;
	v->commit_retry_at = 0;
	if (v->readyfd != -1)
		close(v->readyfd);
	v->readyfd = -1;
	worker_pidfile(&m->cfg, v->name, path, sizeof(path));
	unlink(path);
	/* A last report read (the stop's write) is still recorded (fresh.c). */
	if (v->commit_fd != -1)
		close(v->commit_fd);
	v->commit_fd = -1;
	worker_commit_path(&m->cfg, v->name, path, sizeof(path));
	unlink(path);
	/* A sandboxed worker cannot remove its sockets from its chroot. */
	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	unlink(ctrl);
	unlink(data);
}

/*
 * Ends a worker that never served (its key could not be unsealed or
 * handed over, or its start was called off): SIGKILL, reaped at once (a
 * killed process ends at once), forgotten. The key pipe in p, if still
 * open, and v's readiness pipe are closed.
 */
void
worker_abort(struct manager *m, struct vtpm *v, struct worker_pending *p)
{
	if (p != NULL && p->keyfd != -1)
		close(p->keyfd);
	if (p != NULL && p->readyfd != -1)
		close(p->readyfd);
	if (p != NULL)
		p->keyfd = p->readyfd = -1;
	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		if (v->child)
			worker_reap(v->pid);
	}
	worker_forget(m, v);
}

/*
 * Asks v's worker to end: SIGTERM (it saves and exits). Does not wait: its
 * end is an event of the loop (its pidfd), collected by worker_exited.
 * Returns 0 with that end to be awaited, or 1 when it cannot be (a worker
 * without a pidfd; nothing was sent): worker_abort ends it then.
 */
int
worker_stop(struct vtpm *v)
{
	if (v->pidfd == -1)
		return 1;
	kill(v->pid, SIGTERM);
	return 0;
}

/* v's worker ignored SIGTERM past its deadline: SIGKILL, whose end is an
 * event of the loop too. */
void
worker_stop_kill(const struct vtpm *v)
{
	log_warnx("worker %s (pid %d) ignored SIGTERM for %d ms; killing it", v->name, (int)v->pid,
	    LIFECYCLE_STOP_TIMEOUT_MS);
	kill(v->pid, SIGKILL);
}

/*
 * Collects a worker whose pidfd became readable. Returns its exit status
 * (128+signal when killed), or -1 when unknown (an adopted process), with
 * a description in why.
 */
int
worker_exited(struct manager *m, struct vtpm *v, struct err *err)
{
	int status, ret = -1;

	err_set(err, ERR_FAILED, "exited");
	if (v->child && waitpid(v->pid, &status, WNOHANG) == v->pid) {
		worker_describe_exit(status, err);
		ret = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
	}
	worker_forget(m, v);
	return ret;
}
