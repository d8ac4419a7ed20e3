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
 * Single-threaded: API requests and worker events are handled one at a
 * time, so two operations on one instance cannot interleave.
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

#include "vtpmd.h"

#define MANAGER_BACKOFF_MIN_MS 100
#define MANAGER_BACKOFF_MAX_MS 30000
#define MANAGER_STABLE_MS 60000
#define MANAGER_SEALED_MAX 4096
#define MANAGER_UUID_LEN 16
#define MANAGER_MAX_POLL 512

static volatile sig_atomic_t manager_signalled;

static void
manager_on_signal(int sig)
{
	manager_signalled = sig;
}

int64_t
manager_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
manager_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct vtpm *
manager_find(struct manager *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->vtpms[i]->name, name) == 0)
			return m->vtpms[i];
	return NULL;
}

/* The sealed secret: the state key, then the instance's UUID, so a sealed
 * key swapped in from another instance is recognised as such. */
struct manager_sealed {
	uint8_t key[STATE_KEY_LEN];
	uint8_t uuid[MANAGER_UUID_LEN];
};

static int
manager_uuid_bytes(const char *uuid, uint8_t out[MANAGER_UUID_LEN])
{
	char hex[33];
	size_t n = 0;

	for (const char *p = uuid; *p != '\0' && n < 32; p++)
		if (*p != '-')
			hex[n++] = *p;
	hex[n] = '\0';
	return hex_decode(hex, out, MANAGER_UUID_LEN);
}

static void
manager_set_error(struct vtpm *v, enum vtpm_state st, const char *why)
{
	v->state = st;
	snprintf(v->error, sizeof(v->error), "%s", why);
	log_warnx("%s: %s", v->name, why);
}

/*
 * After a host-TPM failure that is not a refusal: the TPM may have gone
 * away or restarted (losing vtpmd's sessions). Reconnects; returns true
 * when the TPM answers again, so that the caller may retry once.
 */
bool
manager_host_tpm_recover(struct manager *m)
{
	if (hwtpm_reconnect(m->hw) == 0) {
		log_info("host TPM: reconnected");
		return true;
	}
	log_warnx("host TPM unavailable: %s; running vTPMs keep serving, operations that need "
	    "it fail until it is back", hwtpm_error());
	return false;
}

/* The command that approves the host's present configuration: vtpmd
 * signs it with the key it holds, or the administrator signs it with the
 * private key when vtpmd holds only the public one. */
static const char *
manager_approve_advice(const struct manager *m)
{
	return m->policy.private_held
	    ? "vtpmctl policy approve --current"
	    : "vtpmctl policy approve --current --key FILE (the administrator's private key)";
}

/*
 * A refusal to unseal, as one message that fits an instance's error: the
 * cause (cut to fit, never the advice), then how to approve the host's
 * configuration. manager_refusal_room is the room left for the cause,
 * without its NUL.
 */
#define MANAGER_REFUSAL "refusing to unseal the state key: "

static void
manager_refusal_advice(const struct manager *m, char *buf, size_t len)
{
	snprintf(buf, len, ". If this host change is expected, approve it: %s.",
	    manager_approve_advice(m));
}

static size_t
manager_refusal_room(const struct manager *m)
{
	char advice[200];
	size_t used;

	manager_refusal_advice(m, advice, sizeof(advice));
	used = strlen(MANAGER_REFUSAL) + strlen(advice);
	return used < sizeof(((struct vtpm *)0)->error) - 1
	    ? sizeof(((struct vtpm *)0)->error) - 1 - used
	    : 0;
}

static void
manager_refusal(const struct manager *m, const char *cause, char *why, size_t why_len)
{
	char advice[200];

	manager_refusal_advice(m, advice, sizeof(advice));
	snprintf(why, why_len, "%s%.*s%s", MANAGER_REFUSAL, (int)manager_refusal_room(m), cause,
	    advice);
}

/* Unseals v's state key into sealed (secret memory), under the approval
 * of the host PCR values (fresh reads when fresh is true). Returns 0, -1
 * with v's state and error set, or HWTPM_ERR_POLICY when cached values may
 * be stale (the caller retries with fresh ones). */
#define MANAGER_HOST_TPM_FAILED (-4) /* a host-TPM failure, not a refusal */

static int
manager_unseal_once(struct manager *m, struct vtpm *v, struct manager_sealed *sealed, bool fresh)
{
	uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN], digest[HWTPM_DIGEST_LEN];
	uint8_t uuid[MANAGER_UUID_LEN], *blob = NULL;
	const struct policy_entry *e;
	char path[PATH_MAX], why[VTPM_ERROR_LEN];
	size_t len;
	int rc;

	rc = fresh ? policy_current(m, values, digest) : policy_current_cached(m, values, digest);
	if (rc == -1) {
		snprintf(why, sizeof(why), "host TPM: %s", hwtpm_error());
		manager_set_error(v, VTPM_FAILED, why);
		return MANAGER_HOST_TPM_FAILED;
	}
	e = policy_find(&m->policy, digest);
	if (e == NULL && !fresh)
		return HWTPM_ERR_POLICY;
	if (e == NULL) {
		char explain[sizeof(v->error)];
		policy_explain(&m->policy, m->cfg.pcrs.mask, values, explain,
		    manager_refusal_room(m) + 1);
		manager_refusal(m, explain, why, sizeof(why));
		manager_set_error(v, VTPM_REFUSED, why);
		return -1;
	}
	if (registry_path(&m->cfg, v->name, "sealed.key", path, sizeof(path)) == -1 ||
	    fileio_read(path, MANAGER_SEALED_MAX, &blob, &len) == -1) {
		snprintf(why, sizeof(why), "%s: %s", path, strerror(errno));
		manager_set_error(v, VTPM_FAILED, why);
		return -1;
	}
	rc = hwtpm_unseal(m->hw, blob, len, &m->cfg.pcrs, &e->ap, (uint8_t *)sealed,
	    sizeof(*sealed));
	free(blob);
	if (rc == HWTPM_ERR_POLICY && !fresh)
		return HWTPM_ERR_POLICY;
	if (rc == HWTPM_ERR_FOREIGN) {
		snprintf(why, sizeof(why), "%s was not sealed by this host's TPM (copied from "
		    "another host?): %s", path, hwtpm_error());
		manager_set_error(v, VTPM_FAILED, why);
		return -1;
	}
	if (rc == HWTPM_ERR_POLICY) {
		manager_refusal(m, hwtpm_error(), why, sizeof(why));
		manager_set_error(v, VTPM_REFUSED, why);
		return -1;
	}
	if (rc != 0) {
		snprintf(why, sizeof(why), "unseal %s: %s", path, hwtpm_error());
		manager_set_error(v, VTPM_FAILED, why);
		return MANAGER_HOST_TPM_FAILED;
	}
	if (manager_uuid_bytes(v->uuid, uuid) == -1 ||
	    CRYPTO_memcmp(uuid, sealed->uuid, sizeof(uuid)) != 0) {
		OPENSSL_cleanse(sealed, sizeof(*sealed));
		snprintf(why, sizeof(why), "%s holds the key of another instance, not of %s "
		    "(files swapped?)", path, v->name);
		manager_set_error(v, VTPM_FAILED, why);
		return -1;
	}
	return 0;
}

/* Unseals with the PCR values read before; when they turn out stale (the
 * host PCRs changed), reads them again and retries once; after a host-TPM
 * failure, reconnects and retries once. */
static int
manager_unseal(struct manager *m, struct vtpm *v, struct manager_sealed *sealed)
{
	int rc = manager_unseal_once(m, v, sealed, false);

	if (rc == HWTPM_ERR_POLICY)
		rc = manager_unseal_once(m, v, sealed, true);
	if (rc == MANAGER_HOST_TPM_FAILED && manager_host_tpm_recover(m))
		rc = manager_unseal_once(m, v, sealed, true);
	return rc == MANAGER_HOST_TPM_FAILED ? -1 : rc;
}

/*
 * Starts v's worker: unseal under the approved policy, spawn, wait until it
 * serves. Returns 0, or -1 with v->state (failed or refused) and v->error
 * set and copied to why.
 */
int
manager_start(struct manager *m, struct vtpm *v, char *why, size_t why_len)
{
	struct manager_sealed *sealed;
	struct worker_pending pending;
	int64_t t0, tf, t1;
	char err[512];
	int rc;

	if (v->state == VTPM_RUNNING)
		return 0;
	v->state = VTPM_STARTING;
	sealed = secret_alloc(sizeof(*sealed));
	if (sealed == NULL) {
		snprintf(why, why_len, "out of memory");
		v->state = VTPM_FAILED;
		return -1;
	}
	t0 = manager_now_us();
	if (worker_fork(m, v, &pending, err, sizeof(err)) == -1) {
		char msg[600];
		snprintf(msg, sizeof(msg), "worker %s", err);
		manager_set_error(v, VTPM_FAILED, msg);
		secret_free(sealed, sizeof(*sealed));
		snprintf(why, why_len, "%s", v->error);
		return -1;
	}
	tf = manager_now_us();
	rc = manager_unseal(m, v, sealed);
	t1 = manager_now_us();
	/* The worker starts with its key while the host TPM drops the
	 * unsealed object: one round trip off the start's path. */
	if (rc == 0 && worker_send_key(&pending, sealed->key, err, sizeof(err)) == -1) {
		char msg[600];
		snprintf(msg, sizeof(msg), "worker %s", err);
		manager_set_error(v, VTPM_FAILED, msg);
		rc = -1;
		worker_finish(m, v, &pending, NULL, err, sizeof(err));
	}
	hwtpm_flush_pending(m->hw);
	/* The record's sync, too, overlaps the worker's start. */
	if (rc == 0 && v->unsaved && registry_save(&m->cfg, v) == 0)
		v->unsaved = false;
	if (rc == 0) {
		rc = worker_finish(m, v, &pending, sealed->key, err, sizeof(err));
		if (rc == -1) {
			char msg[600];
			snprintf(msg, sizeof(msg), "worker %s", err);
			manager_set_error(v, VTPM_FAILED, msg);
		}
	} else if (pending.keyfd != -1) {
		worker_finish(m, v, &pending, NULL, err, sizeof(err));
	}
	secret_free(sealed, sizeof(*sealed));
	if (rc == -1) {
		snprintf(why, why_len, "%s", v->error);
		return -1;
	}
	log_debug("%s: forked in %lld µs, unsealed in %lld µs, worker ready in %lld µs", v->name,
	    (long long)(tf - t0), (long long)(t1 - tf), (long long)(manager_now_us() - t1));
	v->state = VTPM_RUNNING;
	v->error[0] = '\0';
	v->started_at_ms = manager_now_ms();
	v->restart_at_ms = 0;
	log_info("%s: worker %d serving", v->name, (int)v->pid);
	return 0;
}

/* Stops v's worker (it saves its state first). */
int
manager_stop(struct manager *m, struct vtpm *v)
{
	worker_terminate(m, v);
	v->state = VTPM_STOPPED;
	v->restart_at_ms = 0;
	v->backoff_ms = 0;
	log_info("%s: stopped", v->name);
	return 0;
}

static unsigned int
manager_free_slot(const struct manager *m)
{
	unsigned int slot = 0;
	bool used;

	do {
		used = false;
		for (size_t i = 0; i < m->n && !used; i++)
			used = m->vtpms[i]->slot == slot;
		if (used)
			slot++;
	} while (used);
	return slot;
}

static int
manager_add(struct manager *m, struct vtpm *v)
{
	struct vtpm **grown;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	grown = realloc(m->vtpms, (m->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	m->vtpms = grown;
	m->vtpms[m->n++] = v;
	return 0;
}

/*
 * Creates instance name: its directory, a fresh 256-bit state key sealed
 * to the host TPM (the key itself never reaches the disk) and its record.
 * The TPM inside is manufactured by the worker at its first start.
 * Returns 0 with *out, or -1 with why (nothing is left behind).
 */
/*
 * Makes the new instance directory dir, born holding REGISTRY_CREATING:
 * it is made under a temporary name (REGISTRY_NEW…) with the marker and
 * renamed into place, so that a vtpmd killed at any step leaves either
 * nothing under the instance's name or a directory the next vtpmd knows
 * to remove (manager_resume). Returns 0, or -1 with why.
 */
static int
manager_mkdir_creating(struct manager *m, const char *name, const char *dir, char *why,
    size_t why_len)
{
	char tmp[PATH_MAX], marker[PATH_MAX], instances[PATH_MAX];
	uint8_t r[8];
	int dfd;

	snprintf(instances, sizeof(instances), "%s/instances", m->cfg.state_dir);
	if (RAND_bytes(r, sizeof(r)) != 1 ||
	    snprintf(tmp, sizeof(tmp), "%s/%s%s-%02x%02x%02x%02x%02x%02x%02x%02x", instances,
	        REGISTRY_NEW, name, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) >=
	        (int)sizeof(tmp) ||
	    snprintf(marker, sizeof(marker), "%s/%s", tmp, REGISTRY_CREATING) >=
	        (int)sizeof(marker)) {
		snprintf(why, why_len, "path too long");
		return -1;
	}
	if (mkdir(tmp, 0700) == -1 || fileio_write_atomic(marker, "", 0, 0600) == -1) {
		snprintf(why, why_len, "%s: %s", tmp, strerror(errno));
		fileio_remove_tree(tmp);
		return -1;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) == -1) {
		snprintf(why, why_len, errno == EEXIST ? "%s exists already on disk (an unreadable "
		    "instance? see vtpmd's log)" : "%s: %s", dir, strerror(errno));
		fileio_remove_tree(tmp);
		return -1;
	}
	dfd = open(instances, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int
manager_create(struct manager *m, const char *name, unsigned int tpm_version, struct vtpm **out,
    char *why, size_t why_len)
{
	char dir[PATH_MAX], path[PATH_MAX], ctrl[PATH_MAX], data[PATH_MAX];
	uint8_t policy[HWTPM_DIGEST_LEN], *blob = NULL;
	struct manager_sealed *sealed = NULL;
	struct vtpm *v = NULL;
	size_t len = 0;
	int ret = -1;

	worker_socket_paths(&m->cfg, name, ctrl, sizeof(ctrl), data, sizeof(data));
	if (strlen(ctrl) >= 108) {
		snprintf(why, why_len, "socket path %s is too long for a unix socket: use a "
		    "shorter name or run-dir", ctrl);
		return -1;
	}
	v = registry_new(name, tpm_version, manager_free_slot(m));
	sealed = secret_alloc(sizeof(*sealed));
	if (v == NULL || sealed == NULL || registry_path(&m->cfg, name, NULL, dir, sizeof(dir)) ||
	    registry_path(&m->cfg, name, "sealed.key", path, sizeof(path))) {
		snprintf(why, why_len, "out of memory or path too long");
		goto out;
	}
	if (manager_mkdir_creating(m, name, dir, why, why_len) == -1)
		goto out;
	if (registry_path(&m->cfg, name, "sealed.key", path, sizeof(path)) == -1) {
		snprintf(why, why_len, "path too long");
		goto fail;
	}
	if (RAND_priv_bytes(sealed->key, sizeof(sealed->key)) != 1 ||
	    manager_uuid_bytes(v->uuid, sealed->uuid) == -1 ||
	    policy_auth_digest(&m->policy, policy) == -1) {
		snprintf(why, why_len, "cannot generate the state key");
		goto fail;
	}
	if (hwtpm_seal(m->hw, (uint8_t *)sealed, sizeof(*sealed), policy, &blob, &len) == -1 &&
	    (!manager_host_tpm_recover(m) ||
	        hwtpm_seal(m->hw, (uint8_t *)sealed, sizeof(*sealed), policy, &blob, &len) == -1)) {
		snprintf(why, why_len, "host TPM: %s", hwtpm_error());
		goto fail;
	}
	if (fileio_write_atomic(path, blob, len, 0600) == -1 || registry_save(&m->cfg, v) == -1) {
		snprintf(why, why_len, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (manager_add(m, v) == -1) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	v->creating = true;
	*out = v;
	v = NULL;
	ret = 0;
	goto out;
fail:
	fileio_remove_tree(dir);
out:
	secret_free(sealed, sizeof(*sealed));
	free(blob);
	free(v);
	return ret;
}

/* Deletes v: its worker, its directory (state and sealed key) and its
 * record. v is freed. */
int
manager_delete(struct manager *m, struct vtpm *v)
{
	char dir[PATH_MAX], gone[PATH_MAX], instances[PATH_MAX];
	uint8_t r[8];
	int dfd;

	if (v->pid > 0)
		worker_terminate(m, v);
	/* Renamed first, so that a delete interrupted at any point is either
	 * not done or finished by the next vtpmd (registry_load). */
	if (registry_path(&m->cfg, v->name, NULL, dir, sizeof(dir)) == -1 ||
	    RAND_bytes(r, sizeof(r)) != 1 ||
	    snprintf(instances, sizeof(instances), "%s/instances", m->cfg.state_dir) < 0 ||
	    snprintf(gone, sizeof(gone), "%s/%s%s-%02x%02x%02x%02x%02x%02x%02x%02x", instances,
	        REGISTRY_DELETING, v->name, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) >=
	        (int)sizeof(gone) ||
	    rename(dir, gone) == -1)
		return -1;
	dfd = open(instances, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		fsync(dfd);
		close(dfd);
	}
	if (fileio_remove_tree(gone) == -1)
		log_warn("%s: left for the next start to remove", gone);
	for (size_t i = 0; i < m->n; i++) {
		if (m->vtpms[i] == v) {
			m->vtpms[i] = m->vtpms[--m->n];
			break;
		}
	}
	log_info("%s: deleted", v->name);
	free(v);
	return 0;
}

/* Ends a create: the instance is complete (sealed key, record, EK
 * certificates when provisioned) and survives a restart of vtpmd. */
int
manager_create_done(struct manager *m, struct vtpm *v, char *why, size_t why_len)
{
	char path[PATH_MAX];
	int dfd;

	if (registry_path(&m->cfg, v->name, REGISTRY_CREATING, path, sizeof(path)) == -1 ||
	    unlink(path) == -1) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	registry_path(&m->cfg, v->name, NULL, path, sizeof(path));
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1 || fsync(dfd) == -1) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		if (dfd != -1)
			close(dfd);
		return -1;
	}
	close(dfd);
	v->creating = false;
	log_info("%s: created (TPM %s, uuid %s)", v->name, v->tpm_version == 2 ? "2.0" : "1.2",
	    v->uuid);
	return 0;
}

/* A worker ended: restart it when it should run, with back-off after a
 * crash; state it cannot read is never replaced, so no restart then. */
static void
manager_worker_ended(struct manager *m, struct vtpm *v)
{
	int64_t now = manager_now_ms();
	pid_t pid = v->pid;
	char why[256];
	int status;

	status = worker_exited(m, v, why, sizeof(why));
	if (!v->desired_running) {
		v->state = VTPM_STOPPED;
		return;
	}
	if (status == EXIT_STATE || status == EXIT_BUSY || status == EXIT_USAGE) {
		char msg[300];
		snprintf(msg, sizeof(msg), "worker %s; not restarted", why);
		manager_set_error(v, VTPM_FAILED, msg);
		return;
	}
	if (now - v->started_at_ms > MANAGER_STABLE_MS || status == 0)
		v->backoff_ms = 0;
	v->backoff_ms = v->backoff_ms == 0 ? MANAGER_BACKOFF_MIN_MS
					   : (v->backoff_ms * 2 > MANAGER_BACKOFF_MAX_MS
						     ? MANAGER_BACKOFF_MAX_MS
						     : v->backoff_ms * 2);
	if (status == 0) {
		/* Orderly: QEMU sent SHUTDOWN as its VM stopped. */
		log_info("%s: worker finished (VM shut down); restarting it", v->name);
		v->restart_at_ms = now;
	} else {
		log_warnx("%s: worker (pid %d) %s; restarting in %u ms", v->name, (int)pid, why,
		    v->backoff_ms);
		snprintf(v->error, sizeof(v->error), "worker %s", why);
		v->restart_at_ms = now + v->backoff_ms;
	}
	v->restarts++;
	v->state = VTPM_STARTING;
}

static void
manager_restarts_due(struct manager *m)
{
	int64_t now = manager_now_ms();
	char why[512];

	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		if (v->restart_at_ms == 0 || v->restart_at_ms > now || !v->desired_running)
			continue;
		v->restart_at_ms = 0;
		if (manager_start(m, v, why, sizeof(why)) == -1 && v->state == VTPM_FAILED) {
			/* Transient failures retry; refusals wait for an approval. */
			v->backoff_ms = v->backoff_ms ? v->backoff_ms * 2 : MANAGER_BACKOFF_MIN_MS;
			if (v->backoff_ms > MANAGER_BACKOFF_MAX_MS)
				v->backoff_ms = MANAGER_BACKOFF_MAX_MS;
			v->restart_at_ms = now + v->backoff_ms;
		}
	}
}

static int
manager_timeout(struct manager *m)
{
	int64_t now = manager_now_ms(), next = -1;
	int api = api_next_timeout(m->api);

	for (size_t i = 0; i < m->n; i++) {
		int64_t due = m->vtpms[i]->restart_at_ms;
		if (due != 0 && (next == -1 || due < next))
			next = due;
	}
	if (next != -1) {
		next = next > now ? next - now : 0;
		if (api == -1 || next < api)
			return (int)next;
	}
	return api;
}

static void
manager_loop(struct manager *m)
{
	struct pollfd pfd[MANAGER_MAX_POLL];
	struct vtpm *owner[MANAGER_MAX_POLL];
	sigset_t unblocked;
	struct timespec ts, *tsp;
	int napi, n, timeout;

	sigemptyset(&unblocked);
	while (!manager_signalled) {
		napi = api_pollfds(m->api, pfd, MANAGER_MAX_POLL);
		n = napi;
		for (size_t i = 0; i < m->n && n < MANAGER_MAX_POLL; i++) {
			if (m->vtpms[i]->pidfd == -1)
				continue;
			owner[n] = m->vtpms[i];
			pfd[n++] = (struct pollfd){.fd = m->vtpms[i]->pidfd, .events = POLLIN};
		}
		timeout = manager_timeout(m);
		tsp = NULL;
		if (timeout >= 0) {
			ts.tv_sec = timeout / 1000;
			ts.tv_nsec = (long)(timeout % 1000) * 1000000;
			tsp = &ts;
		}
		if (ppoll(pfd, (nfds_t)n, tsp, &unblocked) == -1) {
			if (errno == EINTR)
				continue;
			fatal(EXIT_RUNTIME, "poll");
		}
		for (int i = napi; i < n; i++)
			if (pfd[i].revents)
				manager_worker_ended(m, owner[i]);
		api_process(m->api, pfd, napi);
		manager_restarts_due(m);
	}
}

static void
manager_usage(FILE *f)
{
	fprintf(f,
	    "usage: vtpmd [--config FILE] [--root-tcti TCTI] [--state-dir DIR] [--run-dir DIR]\n"
	    "             [--socket PATH] [--log-level L]\n"
	    "       vtpmd -n --config FILE\n"
	    "       vtpmd instance …          (one vTPM worker; see vtpmd instance --help)\n"
	    "\n"
	    "The vTPM service: owns the host TPM, runs one sandboxed vTPM worker per\n"
	    "virtual machine, and seals every vTPM's state key to the host TPM.\n"
	    "\n"
	    "  --config FILE     configuration (key = value lines; see docs/config.md)\n"
	    "  --root-tcti TCTI  host TPM (default device:/dev/tpmrm0; for a simulator\n"
	    "                    swtpm:host=127.0.0.1,port=P — which protects nothing)\n"
	    "  --state-dir DIR   instances and approvals (default /var/lib/vtpmd)\n"
	    "  --run-dir DIR     worker sockets and pid files (default /run/vtpmd)\n"
	    "  --socket PATH     control API socket (default /run/vtpmd/api.sock)\n"
	    "  --log-level L     error, warn, info (default) or debug\n"
	    "  -n                check the configuration, report problems as FILE:LINE, exit\n"
	    "\n"
	    "Runs in the foreground and logs to stderr. Operate it with vtpmctl.\n"
	    "Exit status: 0 after SIGTERM (workers keep serving; a new vtpmd adopts them);\n"
	    "1 runtime error (e.g. host TPM unavailable); 2 usage or configuration error;\n"
	    "4 another vtpmd manages the state directory.\n");
}

static void
manager_parse_args(int argc, char **argv, struct config *cfg, bool *check_only)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"root-tcti", required_argument, NULL, 't'},
		{"state-dir", required_argument, NULL, 's'},
		{"run-dir", required_argument, NULL, 'r'},
		{"socket", required_argument, NULL, 'S'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *keys[128] = {0}, *vals[128] = {0};
	const char *config = NULL;
	char why[256];
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
		if (config_set(cfg, keys[i], vals[i], why, sizeof(why)) == -1)
			fatalx(EXIT_USAGE, "--%s: %s", keys[i], why);
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
 * previous vtpmd, start the others. */
static void
manager_resume(struct manager *m)
{
	char why[512];

	if (registry_load(&m->cfg, &m->vtpms, &m->n) == -1)
		fatal(EXIT_RUNTIME, "%s/instances", m->cfg.state_dir);
	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		bool adopted = worker_adopt(m, v) == 0;

		if (v->creating) {
			/* Its create never answered: undo it, worker included. */
			log_info("%s: removing an instance whose create was interrupted", v->name);
			if (manager_delete(m, v) == -1)
				log_warn("%s: cannot remove it", v->name);
			i--;
			continue;
		}
		if (adopted && !v->desired_running) {
			log_info("%s: stopping worker %d, which should not run", v->name,
			    (int)v->pid);
			v->state = VTPM_RUNNING;
			manager_stop(m, v);
			continue;
		}
		if (adopted) {
			v->state = VTPM_RUNNING;
			v->started_at_ms = manager_now_ms();
			log_info("%s: adopted running worker %d", v->name, (int)v->pid);
			continue;
		}
		if (v->desired_running)
			manager_start(m, v, why, sizeof(why));
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

/* Workers run vtpmd-instance from this executable's directory when it is
 * there (it maps fewer libraries), else this executable's instance mode. */
static void
manager_find_worker_exe(struct manager *m)
{
	char *slash;

	snprintf(m->worker_exe, sizeof(m->worker_exe), "%s", m->self);
	slash = strrchr(m->worker_exe, '/');
	if (slash != NULL && (size_t)(slash - m->worker_exe) + sizeof("/vtpmd-instance") <=
	    sizeof(m->worker_exe))
		memcpy(slash + 1, "vtpmd-instance", sizeof("vtpmd-instance"));
	if (slash == NULL || access(m->worker_exe, X_OK) == -1)
		m->worker_exe[0] = '\0';
	log_debug("workers run %s", m->worker_exe[0] ? m->worker_exe : "vtpmd instance");
}

int
manager_main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = manager_on_signal};
	struct manager m = {.lockfd = -1};
	char why[512], path[PATH_MAX];
	sigset_t block;
	ssize_t n;

	config_defaults(&m.cfg);
	log_init("vtpmd", LOG_LEVEL_INFO);
	/* tpm2-tss would log each expected TPM error; vtpmd reports its own. */
	setenv("TSS2_LOG", "all+none", 0);
	{
		bool check_only;
		manager_parse_args(argc, argv, &m.cfg, &check_only);
	}
	log_init("vtpmd", m.cfg.log_level);
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
	m.hw = hwtpm_open(m.cfg.tcti);
	if (m.hw == NULL)
		fatalx(EXIT_RUNTIME, "host TPM %s: %s; check the TCTI (--root-tcti) and that the "
		    "TPM is present", m.cfg.tcti, hwtpm_error());
	if (hwtpm_is_simulator(m.hw))
		log_warnx("host TPM %s is a simulator: it provides NO hardware protection",
		    m.cfg.tcti);
	snprintf(path, sizeof(path), "%s/srk.name", m.cfg.state_dir);
	if (hwtpm_pin_srk(m.hw, path) == -1)
		fatalx(EXIT_RUNTIME, "host TPM %s: %s", m.cfg.tcti, hwtpm_error());
	if (policy_load(&m, why, sizeof(why)) == -1)
		fatalx(EXIT_RUNTIME, "%s", why);
	if (enrol_load(&m, why, sizeof(why)) == -1)
		fatalx(EXIT_RUNTIME, "host enrolment record: %s", why);
	if (m.enrol.enrolled)
		log_info("host enrolled with the Privacy CA at %s as \"%s\"", m.enrol.privacy_ca,
		    m.enrol.host);
	manager_resume(&m);
	m.api = api_listen(m.cfg.socket, manager_api, &m);
	if (m.api == NULL)
		fatal(errno == EADDRINUSE ? EXIT_BUSY : EXIT_RUNTIME, "%s: cannot listen",
		    m.cfg.socket);
	log_info("serving the API on %s (%zu instances)", m.cfg.socket, m.n);

	manager_loop(&m);

	log_info("signal %d: exiting; workers keep serving and a new vtpmd adopts them",
	    (int)manager_signalled);
	api_close(m.api);
	hwtpm_close(m.hw);
	for (size_t i = 0; i < m.n; i++) {
		if (m.vtpms[i]->pidfd != -1)
			close(m.vtpms[i]->pidfd);
		free(m.vtpms[i]);
	}
	free(m.vtpms);
	free(m.policy.entries);
	enrol_free(&m.enrol);
	close(m.lockfd);
	return EXIT_OK;
}
