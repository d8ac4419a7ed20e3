/*
 * manager.c: `vtpmd`, the service (the patent's vTPM service).
 *
 * The only process that talks to the host TPM. It keeps the instance
 * registry, seals each instance's state key to the host TPM when the
 * instance is created, unseals it (under the approved PCR policy) each
 * time the worker starts, and hands it to the worker through a pipe; the
 * key is never written anywhere. It serves the control API and watches
 * its workers, restarting those that die with back-off.
 *
 * Single-threaded, one poll loop (manager_step), which never waits for a
 * worker or a CA: a start waits for its worker's readiness pipe, an
 * enrolment or a provisioning for its CA request's pipe (caclient.c), as
 * events of the loop with deadlines, while the loop serves everyone else;
 * the operations go on from those events (ops.c) and answer the API
 * requests that asked, which wait meanwhile (api_deferred). Events are
 * handled one at a time, and an instance has at most one operation in
 * flight, so two operations on one instance cannot interleave
 * (docs/architecture.md, "The manager's loop").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <systemd/sd-daemon.h>

#include "manager.h"

#define MANAGER_STABLE_MS 60000

static volatile sig_atomic_t manager_signalled;

static void
manager_on_signal(int sig)
{
	manager_signalled = sig;
}

/* A worker ended: restart it when it should run, with back-off after a
 * crash; state it cannot read is never replaced, so no restart then. */
static void
manager_worker_ended(struct manager *m, struct vtpm *v)
{
	int64_t now = mono_ms();
	pid_t pid = v->pid;
	struct err err;
	int status;

	status = worker_exited(m, v, &err);
	if (!v->desired_running) {
		v->state = VTPM_STOPPED;
		return;
	}
	if (status == EXIT_STATE || status == EXIT_BUSY || status == EXIT_USAGE) {
		char msg[300];
		snprintf(msg, sizeof(msg), "worker %s; not restarted", err.msg);
		lifecycle_set_error(v, VTPM_FAILED, msg);
		return;
	}
	if (now - v->started_at_ms > MANAGER_STABLE_MS || status == 0)
		v->backoff_ms = 0;
	v->backoff_ms = v->backoff_ms == 0 ? LIFECYCLE_BACKOFF_MIN_MS
					   : (v->backoff_ms * 2 > LIFECYCLE_BACKOFF_MAX_MS
						     ? LIFECYCLE_BACKOFF_MAX_MS
						     : v->backoff_ms * 2);
	if (status == 0) {
		/* Orderly: QEMU sent SHUTDOWN as its VM stopped. */
		log_info("%s: worker finished (VM shut down); restarting it", v->name);
		v->restart_at_ms = now;
	} else {
		log_warnx("%s: worker (pid %d) %s; restarting in %u ms", v->name, (int)pid, err.msg,
		    v->backoff_ms);
		snprintf(v->error, sizeof(v->error), "worker %s", err.msg);
		v->restart_at_ms = now + v->backoff_ms;
	}
	v->restarts++;
	metrics_count(&m->metrics.restarts, status == 0 ? "vm-shutdown" : "crash");
	v->state = VTPM_STARTING;
}

/* What an entry of the loop's poll set belongs to. Readiness comes first
 * in the set: a worker that served and then died within one round
 * started, then ended. */
enum manager_watch {
	MANAGER_WATCH_READY,
	MANAGER_WATCH_CA,
	MANAGER_WATCH_ENROL,
	MANAGER_WATCH_PID,
	MANAGER_WATCH_LOG,
	MANAGER_WATCH_COMMIT
};
struct manager_fd {
	enum manager_watch what;
	struct vtpm *v; /* NULL for the enrolment */
};

/*
 * The loop's poll set: the API's descriptors, then, per instance, its
 * readiness pipe, its CA request, its worker's log channel and pidfd, and the
 * enrolment's CA request. It grows with the instances (a fixed size would
 * leave the last instances' events out, unseen), and is kept from one
 * round to the next; one loop per process.
 */
struct manager_poll {
	struct pollfd *pfd;
	struct manager_fd *owner;
	size_t cap;
};
static struct manager_poll manager_poll;

/* Room for what m may wait for. When memory runs out, the set keeps the
 * room it has (what does not fit waits for a round with room). */
static size_t
manager_poll_room(const struct manager *m)
{
	size_t need = API_MAX_POLLFDS + 5 * m->n + 1;
	struct manager_poll *p = &manager_poll;
	struct pollfd *pfd;
	struct manager_fd *owner;

	if (need <= p->cap)
		return p->cap;
	pfd = realloc(p->pfd, need * sizeof(*pfd));
	if (pfd != NULL)
		p->pfd = pfd;
	owner = realloc(p->owner, need * sizeof(*owner));
	if (owner != NULL)
		p->owner = owner;
	if (pfd == NULL || owner == NULL)
		log_warnx("out of memory for a poll set of %zu entries; some events wait", need);
	else
		p->cap = need;
	return p->cap;
}

static int
manager_add(int n, int fd, enum manager_watch what, struct vtpm *v)
{
	struct manager_poll *p = &manager_poll;

	if (fd == -1 || (size_t)n >= p->cap)
		return n;
	p->pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
	p->owner[n] = (struct manager_fd){.what = what, .v = v};
	return n + 1;
}

/* Fills the poll set from index n with what the manager's operations and
 * workers wait for; returns the new count. */
static int
manager_pollfds(struct manager *m, int n)
{
	for (size_t i = 0; i < m->n; i++)
		n = manager_add(n, m->vtpms[i]->readyfd, MANAGER_WATCH_READY, m->vtpms[i]);
	for (size_t i = 0; i < m->n; i++)
		if (m->vtpms[i]->prov != NULL && provision_ca(m->vtpms[i]->prov) != NULL)
			n = manager_add(n, caclient_fd(provision_ca(m->vtpms[i]->prov)),
			    MANAGER_WATCH_CA, m->vtpms[i]);
	if (m->enrolling != NULL && enrol_ca(m->enrolling) != NULL)
		n = manager_add(n, caclient_fd(enrol_ca(m->enrolling)), MANAGER_WATCH_ENROL, NULL);
	for (size_t i = 0; i < m->n; i++)
		n = manager_add(n, workerlog_fd(m->vtpms[i]), MANAGER_WATCH_LOG, m->vtpms[i]);
	/* Before the pidfds: a worker's last report is read before its end. */
	for (size_t i = 0; i < m->n; i++)
		n = manager_add(n, m->vtpms[i]->commit_fd, MANAGER_WATCH_COMMIT, m->vtpms[i]);
	for (size_t i = 0; i < m->n; i++)
		n = manager_add(n, m->vtpms[i]->pidfd, MANAGER_WATCH_PID, m->vtpms[i]);
	return n;
}

/* Whether v is still one of m's instances (an event may delete one). */
static bool
manager_has(const struct manager *m, const struct vtpm *v)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->vtpms[i] == v)
			return true;
	return false;
}

/* Hands one event to what waits for it: an instance's start, its
 * provisioning or its worker's end, or the enrolment. */
static void
manager_event(struct manager *m, const struct pollfd *p, const struct manager_fd *o)
{
	struct vtpm *v = o->v;

	if (o->what == MANAGER_WATCH_ENROL) {
		if (m->enrolling != NULL)
			ops_enrol_event(m);
		return;
	}
	/* An earlier event of this round may have deleted v. */
	if (v == NULL || !manager_has(m, v))
		return;
	switch (o->what) {
	case MANAGER_WATCH_READY:
		if (v->readyfd == p->fd)
			ops_ready(m, v);
		break;
	case MANAGER_WATCH_CA:
		if (v->prov != NULL && provision_ca(v->prov) != NULL)
			ops_provision_event(m, v);
		break;
	case MANAGER_WATCH_LOG:
		if (workerlog_fd(v) == p->fd)
			workerlog_read(v);
		break;
	case MANAGER_WATCH_COMMIT:
		if (v->commit_fd == p->fd)
			fresh_channel_read(m, v);
		break;
	case MANAGER_WATCH_PID:
		if (v->pidfd != p->fd)
			break;
		/* Its last lines first (why it ended, often). */
		workerlog_drain(v);
		if (v->stopping)
			ops_stop_ended(m, v);
		else if (v->start_pending)
			ops_worker_ended(m, v);
		else
			manager_worker_ended(m, v);
		break;
	case MANAGER_WATCH_ENROL: break;
	}
}

/* Milliseconds until the earliest deadline of the API, an operation or a
 * scheduled restart, or -1 for none. */
static int
manager_timeout(struct manager *m)
{
	int64_t now = mono_ms(), next = ops_next_deadline(m), retry = fresh_next_deadline(m);
	int64_t connect = worker_commit_next(m);
	int api = api_next_timeout(m->api);

	if (retry != -1 && (next == -1 || retry < next))
		next = retry;
	if (connect != -1 && (next == -1 || connect < next))
		next = connect;
	if (next != -1) {
		next = next > now ? next - now : 0;
		if (api == -1 || next < api)
			return (int)(next < INT32_MAX ? next : INT32_MAX);
	}
	return api;
}

/*
 * One round of the manager's loop: waits (ppoll, with unblocked as the
 * signal mask) until an event or the earliest deadline, then hands out the
 * events: workers' readiness and ends, CA answers, deadlines passed, API
 * requests, restarts due. Nothing in a round waits for a worker or a CA.
 * Returns 0, or -1 when a signal interrupted the wait.
 */
int
manager_step(struct manager *m, const sigset_t *unblocked)
{
	size_t cap = manager_poll_room(m);
	struct pollfd *pfd = manager_poll.pfd;
	struct manager_fd *owner = manager_poll.owner;
	struct timespec ts, *tsp = NULL;
	int napi, n, timeout;

	napi = api_pollfds(m->api, pfd, (int)(cap < INT_MAX ? cap : INT_MAX));
	n = manager_pollfds(m, napi);
	timeout = manager_timeout(m);
	if (timeout >= 0) {
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (long)(timeout % 1000) * 1000000;
		tsp = &ts;
	}
	if (ppoll(pfd, (nfds_t)n, tsp, unblocked) == -1) {
		if (errno == EINTR)
			return -1;
		fatal(EXIT_RUNTIME, "poll");
	}
	for (int i = napi; i < n; i++)
		if (pfd[i].revents != 0)
			manager_event(m, &pfd[i], &owner[i]);
	ops_deadlines(m);
	api_process(m->api, pfd, napi);
	ops_restarts_due(m);
	worker_commit_retry(m);
	/* One commit for every report of this round (group commit), after
	 * the answers: a stop is not held up by recording its last write. */
	fresh_flush(m);
	snapshot_flushed(m);
	return 0;
}

static void
manager_loop(struct manager *m)
{
	sigset_t unblocked;

	sigemptyset(&unblocked);
	while (!manager_signalled)
		manager_step(m, &unblocked);
}

static void
manager_usage(FILE *f)
{
	fprintf(f,
	    "usage: vtpmd [--config FILE] [--root-tcti TCTI] [--state-dir DIR] [--run-dir DIR]\n"
	    "             [--socket PATH] [--log-level L] [--reanchor]\n"
	    "       vtpmd -n --config FILE\n"
	    "       vtpmd instance …          (one vTPM worker; see vtpmd instance --help)\n"
	    "\n"
	    "The vTPM service: owns the host TPM, runs one sandboxed vTPM worker per\n"
	    "virtual machine, and seals every vTPM's state key to the host TPM.\n"
	    "\n"
	    "  --config FILE     configuration (key = value lines; vtpmd.conf(5))\n"
	    "  --root-tcti TCTI  host TPM (default device:/dev/tpmrm0; for a simulator\n"
	    "                    swtpm:host=127.0.0.1,port=P — which protects nothing)\n"
	    "  --state-dir DIR   instances and approvals (default /var/lib/vtpmd)\n"
	    "  --run-dir DIR     worker sockets and pid files (default /run/vtpmd)\n"
	    "  --socket PATH     control API socket (default /run/vtpmd/api.sock)\n"
	    "  --log-level L     error, warn, info (default) or debug\n"
	    "  --reanchor        only when the freshness anchor is lost (every instance\n"
	    "                    refused for it): set it up again, taking each instance's\n"
	    "                    state on disk for its latest; logged (docs/state.md)\n"
	    "  -n                check the configuration, report problems as FILE:LINE, exit\n"
	    "\n"
	    "Runs in the foreground and logs to stderr. Operate it with vtpmctl.\n"
	    "Exit status: 0 after SIGTERM (workers keep serving; a new vtpmd adopts them);\n"
	    "1 runtime error (e.g. host TPM unavailable); 2 usage or configuration error;\n"
	    "4 another vtpmd manages the state directory.\n"
	    "The manual: vtpmd(8).\n");
}

static void
manager_parse_args(int argc, char **argv, struct config *cfg, bool *check_only, bool *reanchor)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"root-tcti", required_argument, NULL, 't'},
		{"state-dir", required_argument, NULL, 's'},
		{"run-dir", required_argument, NULL, 'r'},
		{"socket", required_argument, NULL, 'S'},
		{"log-level", required_argument, NULL, 'l'},
		{"reanchor", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *keys[128] = {0}, *vals[128] = {0};
	const char *config = NULL;
	struct err err;
	int ch, nset = 0, problems;

	*check_only = false;
	while ((ch = getopt_long(argc, argv, "nh", longopts, NULL)) != -1) {
		const char *key = NULL;
		switch (ch) {
		case 'c': config = optarg; break;
		case 't': key = "tcti"; break;
		case 's': key = "state-dir"; break;
		case 'r': key = "run-dir"; break;
		case 'S': key = "socket"; break;
		case 'l': key = "log-level"; break;
		case 'n': *check_only = true; break;
		case 'R': *reanchor = true; break;
		case 'h':
			manager_usage(stdout);
			exit(EXIT_OK);
		default:
			manager_usage(stderr);
			exit(EXIT_USAGE);
		}
		if (key != NULL && nset < 128) {
			keys[nset] = key;
			vals[nset++] = optarg;
		}
	}
	if (optind != argc)
		fatalx(EXIT_USAGE, "unexpected argument: %s (see --help)", argv[optind]);
	if (*check_only && config == NULL)
		fatalx(EXIT_USAGE, "-n checks a configuration file: give --config FILE");
	problems = config != NULL ? config_load(config, cfg, stderr) : 0;
	if (problems < 0)
		fatalx(EXIT_USAGE, "%s: cannot be read", config);
	/* Command-line options override the file. */
	for (int i = 0; i < nset; i++)
		if (config_set(cfg, keys[i], vals[i], &err) == -1)
			fatalx(EXIT_USAGE, "--%s: %s", keys[i], err.msg);
	/* What syntax cannot show (the TCTI's module, the approval key, path
	 * lengths), checked at every start as well as by -n. */
	problems += config_check(config, cfg, !*check_only, stderr);
	if (problems != 0)
		fatalx(EXIT_USAGE, "%s: invalid configuration (see above)",
		    config != NULL ? config : "command line");
	if (*check_only) {
		printf("%s: configuration OK\n", config);
		exit(EXIT_OK);
	}
}

static void
manager_dirs(struct manager *m)
{
	char path[PATH_MAX];

	if (fileio_mkdirs(m->cfg.state_dir, 0700) == -1)
		fatal(EXIT_RUNTIME, "%s", m->cfg.state_dir);
	snprintf(path, sizeof(path), "%s/instances", m->cfg.state_dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		fatal(EXIT_RUNTIME, "%s", path);
	/* Searchable, so that QEMU running as another user reaches its socket. */
	if (fileio_mkdirs(m->cfg.run_dir, 0711) == -1)
		fatal(EXIT_RUNTIME, "%s", m->cfg.run_dir);
	snprintf(path, sizeof(path), "%s/.lock", m->cfg.state_dir);
	m->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (m->lockfd == -1)
		fatal(EXIT_RUNTIME, "%s", path);
	if (flock(m->lockfd, LOCK_EX | LOCK_NB) == -1)
		fatalx(EXIT_BUSY, "%s: another vtpmd manages this state directory",
		    m->cfg.state_dir);
}

/* Brings up the instances that should run: adopt live workers of a
 * previous vtpmd, start the others; a copy of another instance (the same
 * UUID or sealed key) neither starts nor keeps running. */
static void
manager_resume(struct manager *m)
{
	struct err err;

	if (registry_load(&m->cfg, &m->vtpms, &m->n) == -1)
		fatal(EXIT_RUNTIME, "%s/instances", m->cfg.state_dir);
	for (size_t i = 0; i < m->n; i++)
		worker_adopt(m, m->vtpms[i]);
	/* Which one is the original depends on whose worker runs. */
	registry_mark_copies(m->vtpms, m->n);
	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		bool adopted = v->pid > 0;

		if (v->creating) {
			/* Its create never answered: undo it, worker included. */
			log_info("%s: removing an instance whose create was interrupted", v->name);
			if (lifecycle_delete(m, v) == -1)
				log_warn("%s: cannot remove it", v->name);
			i--;
			continue;
		}
		if (v->copy_of[0] != '\0') {
			registry_copy_refusal(v, &err);
			log_warnx("%s", err.msg);
			lifecycle_set_error(v, VTPM_FAILED, err.msg);
			if (adopted) {
				log_warnx("%s: stopping its worker %d: the original runs", v->name,
				    (int)v->pid);
				v->state = VTPM_RUNNING;
				ops_stop(m, v, 200, 0);
			}
			continue;
		}
		if (adopted && !v->desired_running) {
			log_info("%s: stopping worker %d, which should not run", v->name,
			    (int)v->pid);
			v->state = VTPM_RUNNING;
			ops_stop(m, v, 200, 0);
			continue;
		}
		if (adopted && fresh_check(m, v, &err) == -1 && err.kind == ERR_CORRUPT) {
			/* Its files were replaced under it: it may not go on. */
			log_errorx("%s; its worker %d is killed", err.msg, (int)v->pid);
			worker_abort(m, v, NULL);
			lifecycle_set_error(v, VTPM_REFUSED, err.msg);
			continue;
		}
		if (adopted) {
			v->state = VTPM_RUNNING;
			v->started_at_ms = mono_ms();
			log_info("%s: adopted running worker %d", v->name, (int)v->pid);
			continue;
		}
		/* Started in the background: the loop sees each worker serve. */
		if (v->desired_running)
			ops_start(m, v, VTPM_OP_RESUME, 0, &err);
	}
}

/*
 * Workers are sandboxed (chroot, their own uid) only when vtpmd runs as
 * root. Without root, vtpmd refuses to start unless the configuration says
 * worker-uid-base = 0 (its default is not 0): running workers unconfined is
 * then a choice, and only logged.
 */
static void
manager_check_sandbox(const struct config *cfg)
{
	if (cfg->worker_uid_base != 0 && geteuid() != 0)
		fatalx(EXIT_USAGE, "vtpmd is not root (uid %u), so its workers cannot be sandboxed "
		    "(chroot, own uid): run vtpmd as root, or set worker-uid-base = 0 to run "
		    "workers unconfined", (unsigned int)geteuid());
	if (cfg->worker_uid_base == 0)
		log_warnx("workers run without a sandbox (worker-uid-base = 0%s): no chroot, no "
		    "uid of their own", geteuid() != 0 ? ", and vtpmd is not root" : "");
}

/*
 * Workers run vtpmd-instance (it maps fewer libraries than vtpmd), the
 * first found of: beside this executable (the build tree); where an
 * installed tree keeps it, relative to this executable (LIBEXEC_FROM_SBIN,
 * so that a tree installed under DESTDIR or moved whole finds its own);
 * the installed path (LIBEXECDIR/vtpmd-instance). Else this executable's
 * instance mode (`vtpmd instance`). The Makefile defines both paths from
 * PREFIX, SBINDIR and LIBEXECDIR.
 */
#ifndef VTPMD_LIBEXECDIR
#define VTPMD_LIBEXECDIR "/usr/local/libexec/vtpmd"
#endif
#ifndef VTPMD_LIBEXEC_FROM_SBIN
#define VTPMD_LIBEXEC_FROM_SBIN "../libexec/vtpmd"
#endif
static void
manager_find_worker_exe(struct manager *m)
{
	const char *slash = strrchr(m->self, '/');
	int dir = slash != NULL ? (int)(slash - m->self) : 0;
	char candidates[3][sizeof(m->worker_exe)], resolved[PATH_MAX];

	snprintf(candidates[0], sizeof(candidates[0]), "%.*s/vtpmd-instance", dir, m->self);
	snprintf(candidates[1], sizeof(candidates[1]), "%.*s/%s/vtpmd-instance", dir, m->self,
	    VTPMD_LIBEXEC_FROM_SBIN);
	snprintf(candidates[2], sizeof(candidates[2]), "%s/vtpmd-instance", VTPMD_LIBEXECDIR);
	m->worker_exe[0] = '\0';
	for (size_t i = slash != NULL ? 0 : 2; i < 3 && m->worker_exe[0] == '\0'; i++)
		if (access(candidates[i], X_OK) == 0 && realpath(candidates[i], resolved) != NULL &&
		    strlen(resolved) < sizeof(m->worker_exe))
			memcpy(m->worker_exe, resolved, strlen(resolved) + 1);
	log_debug("workers run %s", m->worker_exe[0] ? m->worker_exe : "vtpmd instance");
}

/*
 * systemd's readiness protocol (Type=notify): NOTIFY_SOCKET is taken out
 * of the environment at start, so that no worker or CA child inherits it
 * (nothing but vtpmd may speak for the service), and used once vtpmd
 * serves its API: READY=1 then, STOPPING=1 at a signal. Without
 * NOTIFY_SOCKET (not run by systemd) these do nothing.
 */
static char manager_notify_socket[PATH_MAX];

static void
manager_notify_take(void)
{
	const char *env = getenv("NOTIFY_SOCKET");

	if (env != NULL && strlen(env) < sizeof(manager_notify_socket))
		memcpy(manager_notify_socket, env, strlen(env) + 1);
	unsetenv("NOTIFY_SOCKET");
}

static void
manager_notify(const char *state)
{
	int rc;

	if (manager_notify_socket[0] == '\0')
		return;
	if (setenv("NOTIFY_SOCKET", manager_notify_socket, 1) == -1) {
		log_warn("telling systemd %s", state);
		return;
	}
	rc = sd_notify(1, state); /* 1: unsets NOTIFY_SOCKET again */
	if (rc < 0)
		log_warnx("telling systemd %s: %s", state, strerror(-rc));
}

int
manager_main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = manager_on_signal};
	struct manager m = {.lockfd = -1, .ready_timeout_ms = WORKER_READY_TIMEOUT_MS};
	char path[PATH_MAX];
	struct err err;
	sigset_t block;
	ssize_t n;

	config_defaults(&m.cfg);
	manager_metrics_init(&m.metrics);
	log_init("vtpmd", LOG_LEVEL_INFO);
	/* tpm2-tss would log each expected TPM error; vtpmd reports its own. */
	setenv("TSS2_LOG", "all+none", 0);
	{
		bool check_only;
		manager_parse_args(argc, argv, &m.cfg, &check_only, &m.fresh.reanchor);
	}
	log_init("vtpmd", m.cfg.log_level);
	manager_notify_take();
	manager_check_sandbox(&m.cfg);
	secret_harden_process();
	n = readlink("/proc/self/exe", m.self, sizeof(m.self) - 1);
	if (n <= 0)
		fatal(EXIT_RUNTIME, "readlink /proc/self/exe");
	m.self[n] = '\0';
	manager_find_worker_exe(&m);

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	manager_dirs(&m);
	/* The SRK is checked against its pin before any session is salted to it. */
	snprintf(path, sizeof(path), "%s/srk.name", m.cfg.state_dir);
	m.hw = hwtpm_open(m.cfg.tcti, path, &err);
	if (m.hw == NULL)
		fatalx(EXIT_RUNTIME, "host TPM %s: %s%s", m.cfg.tcti, err.msg,
		    err.kind == ERR_FOREIGN ? "" /* not the pinned SRK: the message says why */
		                            : "; check the TCTI (--root-tcti) and that the TPM is present");
	if (hwtpm_is_simulator(m.hw))
		log_warnx("host TPM %s is a simulator: it provides NO hardware protection",
		    m.cfg.tcti);
	if (policy_load(&m, &err) == -1)
		fatalx(EXIT_RUNTIME, "%s", err.msg);
	if (enrol_load(&m, &err) == -1)
		fatalx(EXIT_RUNTIME, "host enrolment record: %s", err.msg);
	if (m.enrol.enrolled)
		log_info("host enrolled with the Privacy CA at %s as \"%s\"", m.enrol.privacy_ca,
		    m.enrol.host);
	manager_resume(&m);
	m.api = api_listen(m.cfg.socket, manager_api, &m);
	if (m.api == NULL)
		fatal(errno == EADDRINUSE ? EXIT_BUSY : EXIT_RUNTIME, "%s: cannot listen",
		    m.cfg.socket);
	log_info("serving the API on %s (%zu instances)", m.cfg.socket, m.n);
	manager_notify("READY=1\nSTATUS=serving the API");

	manager_loop(&m);
	manager_notify("STOPPING=1");

	log_info("signal %d: exiting; workers keep serving and a new vtpmd adopts them",
	    (int)manager_signalled);
	ops_shutdown(&m);
	api_close(m.api);
	fresh_free(&m.fresh);
	blobkey_forget(&m);
	hwtpm_close(m.hw);
	for (size_t i = 0; i < m.n; i++) {
		if (m.vtpms[i]->pidfd != -1)
			close(m.vtpms[i]->pidfd);
		workerlog_close(&m, m.vtpms[i], false);
		free(m.vtpms[i]);
	}
	free(m.vtpms);
	free(m.policy.entries);
	enrol_free(&m.enrol);
	close(m.lockfd);
	return EXIT_OK;
}
