/*
 * lifecycle.c: one vTPM's life as the manager runs it: create (a fresh
 * state key sealed to the host TPM under the approval policy, its
 * directory made whole before it is renamed into place), start (unseal,
 * then hand the key to a new worker through a pipe; the key is never
 * written anywhere), stop, delete. Refusals to unseal name the host PCRs
 * that differ from every approved configuration and the command that
 * approves the present one.
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

#include "manager.h"

#define LIFECYCLE_SEALED_MAX 4096
#define LIFECYCLE_UUID_LEN 16

struct vtpm *
lifecycle_find(struct manager *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->vtpms[i]->name, name) == 0)
			return m->vtpms[i];
	return NULL;
}

/* The sealed secret: the state key, then the instance's UUID, so a sealed
 * key swapped in from another instance is recognised as such. */
struct lifecycle_sealed {
	uint8_t key[STATE_KEY_LEN];
	uint8_t uuid[LIFECYCLE_UUID_LEN];
};

static int
lifecycle_uuid_bytes(const char *uuid, uint8_t out[LIFECYCLE_UUID_LEN])
{
	char hex[33];
	size_t n = 0;

	for (const char *p = uuid; *p != '\0' && n < 32; p++)
		if (*p != '-')
			hex[n++] = *p;
	hex[n] = '\0';
	return hex_decode(hex, out, LIFECYCLE_UUID_LEN);
}

/* Marks v failed or refused (st) for why, which vtpmctl info shows. */
void
lifecycle_set_error(struct vtpm *v, enum vtpm_state st, const char *why)
{
	v->state = st;
	snprintf(v->error, sizeof(v->error), "%s", why);
	log_warnx("%s: %s", v->name, why);
}

/*
 * A refusal to unseal, as one message that fits an instance's error: the
 * cause (cut to fit, never the advice), then how to approve the host's
 * configuration. lifecycle_refusal_room is the room left for the cause,
 * without its NUL.
 */
#define LIFECYCLE_REFUSAL "refusing to unseal the state key: "

static void
lifecycle_refusal_advice(const struct manager *m, char *buf, size_t len)
{
	snprintf(buf, len, ". If this host change is expected, approve it: %s.",
	    policy_approve_advice(m));
}

static size_t
lifecycle_refusal_room(const struct manager *m)
{
	char advice[200];
	size_t used;

	lifecycle_refusal_advice(m, advice, sizeof(advice));
	used = strlen(LIFECYCLE_REFUSAL) + strlen(advice);
	return used < sizeof(((struct vtpm *)0)->error) - 1
	    ? sizeof(((struct vtpm *)0)->error) - 1 - used
	    : 0;
}

static void
lifecycle_refusal(const struct manager *m, const char *cause, struct err *err)
{
	char advice[200];

	lifecycle_refusal_advice(m, advice, sizeof(advice));
	err_set(err, ERR_REFUSED, "%s%.*s%s", LIFECYCLE_REFUSAL, (int)lifecycle_refusal_room(m),
	    cause, advice);
}

/*
 * Checks the Name of the object in v's sealed.key (blob, read from path)
 * against the one recorded in v's instance.json at create, so that a key
 * file swapped for another object is refused before it reaches the host
 * TPM: another instance's, or one that anyone able to use the host TPM
 * made under the SRK with the same (public) approval policy and a key of
 * their choosing beside this instance's (public) UUID. The record sits
 * beside the key file, so this notices a swap of sealed.key alone (a
 * restore that mixed files, a write that reached only it), not one by a
 * writer of the whole directory, who rewrites the record too: that needs
 * a manifest the host TPM anchors. On the host-TPM link, it is the
 * Name computed from the blob and covered by the sessions' HMACs
 * (hwtpm_unseal) that refuses a swapped object. A record older than the
 * Name learns it from this blob; *learn says so. Returns 0, or -1 with err.
 */
static int
lifecycle_check_sealed_name(struct vtpm *v, const char *path, const uint8_t *blob, size_t len,
    char hex[static 2 * HWTPM_NAME_LEN + 1], struct err *err)
{
	uint8_t name[HWTPM_NAME_LEN];

	if (hwtpm_sealed_name(blob, len, name, err) == -1)
		return err_wrap(err, "%s", path);
	hex_encode(name, sizeof(name), hex);
	if (v->sealed_name[0] == '\0' || strcmp(hex, v->sealed_name) == 0)
		return 0;
	return err_set(err, ERR_FOREIGN, "%s is not the object sealed for %s at create: its Name "
	    "%.16s… differs from %.16s… recorded in instance.json (the key file of another "
	    "instance, or one made elsewhere?); restore the instance's own sealed.key", path,
	    v->name, hex, v->sealed_name);
}

/*
 * Unseals v's state key into sealed (secret memory), under the approval
 * of the host PCR values (fresh reads when fresh is true). Returns 0, or
 * -1 with err: ERR_POLICY when the values are in no approved configuration
 * (cached values may be stale: only then is v left untouched, for the
 * caller to retry with fresh ones), ERR_HOST_TPM when the host TPM failed,
 * another kind otherwise; v's state and error are set in those cases.
 */
static int
lifecycle_unseal_once(struct manager *m, struct vtpm *v, struct lifecycle_sealed *sealed,
    bool fresh, struct err *err)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	uint8_t uuid[LIFECYCLE_UUID_LEN], *blob = NULL;
	const struct policy_entry *e;
	char path[PATH_MAX], name[2 * HWTPM_NAME_LEN + 1];
	size_t len;
	int rc;

	rc = fresh ? policy_current(m, values, digest, err)
		   : policy_current_cached(m, values, digest, err);
	if (rc == -1) {
		err_wrap(err, "host TPM");
		goto failed;
	}
	e = policy_find(&m->policy, digest);
	if (e == NULL && !fresh)
		return err_set(err, ERR_POLICY, "the host PCRs read before are in no approved "
		    "configuration");
	if (e == NULL) {
		char explain[sizeof(v->error)];
		policy_explain(&m->policy, m->cfg.pcrs.mask, values, explain,
		    lifecycle_refusal_room(m) + 1);
		lifecycle_refusal(m, explain, err);
		goto refused;
	}
	if (registry_path(&m->cfg, v->name, "sealed.key", path, sizeof(path)) == -1 ||
	    fileio_read(path, LIFECYCLE_SEALED_MAX, &blob, &len) == -1) {
		err_errno(err, "%s", path);
		goto failed;
	}
	if (lifecycle_check_sealed_name(v, path, blob, len, name, err) == -1) {
		free(blob);
		goto failed;
	}
	rc = hwtpm_unseal(m->hw, blob, len, &m->cfg.pcrs, &e->ap, (uint8_t *)sealed,
	    sizeof(*sealed), err);
	free(blob);
	if (rc == -1 && err->kind == ERR_POLICY && !fresh)
		return -1;
	if (rc == -1 && err->kind == ERR_FOREIGN) {
		/* the cause first: err->msg is both what is written and read */
		err_wrap(err, "%s was not sealed by this host's TPM (copied from another host?)",
		    path);
		goto failed;
	}
	if (rc == -1 && err->kind == ERR_POLICY) {
		char cause[ERR_MSG_MAX];
		snprintf(cause, sizeof(cause), "%s", err->msg);
		lifecycle_refusal(m, cause, err);
		goto refused;
	}
	if (rc == -1) {
		err_wrap(err, "unseal %s", path);
		goto failed;
	}
	if (lifecycle_uuid_bytes(v->uuid, uuid) == -1 ||
	    CRYPTO_memcmp(uuid, sealed->uuid, sizeof(uuid)) != 0) {
		OPENSSL_cleanse(sealed, sizeof(*sealed));
		err_set(err, ERR_FOREIGN, "%s holds the key of another instance, not of %s "
		    "(files swapped?)", path, v->name);
		goto failed;
	}
	/* The host's blob key, at the first start, under the same approval. */
	if (blobkey_load(m, e, err) == -1) {
		OPENSSL_cleanse(sealed, sizeof(*sealed));
		goto failed;
	}
	if (v->sealed_name[0] == '\0') {
		snprintf(v->sealed_name, sizeof(v->sealed_name), "%s", name);
		v->unsaved = true; /* lifecycle_start saves the record */
		log_info("%s: sealed object's Name %.16s… recorded in instance.json", v->name, name);
	}
	return 0;
refused:
	lifecycle_set_error(v, VTPM_REFUSED, err->msg);
	err->kind = ERR_REFUSED;
	return -1;
failed:
	lifecycle_set_error(v, VTPM_FAILED, err->msg);
	return -1;
}

/* Unseals with the PCR values read before; when they turn out stale (the
 * host PCRs changed), reads them again and retries once; after a host-TPM
 * failure, reconnects and retries once. */
static int
lifecycle_unseal(struct manager *m, struct vtpm *v, struct lifecycle_sealed *sealed,
    struct err *err)
{
	int rc = lifecycle_unseal_once(m, v, sealed, false, err);

	if (rc == -1 && err->kind == ERR_POLICY)
		rc = lifecycle_unseal_once(m, v, sealed, true, err);
	if (rc == -1 && err->kind == ERR_HOST_TPM && hwtpm_recover(m->hw))
		rc = lifecycle_unseal_once(m, v, sealed, true, err);
	return rc;
}

/*
 * Starts v's worker: spawn, unseal under the approved policy, hand the key
 * over. The worker then starts on its own while the loop serves others;
 * the loop watches its readiness pipe (v->readyfd), its end (v->pidfd) and
 * its deadline (v->ready_by), and calls lifecycle_ready,
 * lifecycle_start_ended or lifecycle_start_late. Returns 1 when v runs
 * already, 0 with the start under way (v->start_pending), or -1 with
 * v->state (failed or refused), v->error and err set (ERR_REFUSED for a
 * refusal to unseal); no worker runs then.
 */
static int
lifecycle_start_now(struct manager *m, struct vtpm *v, struct err *err)
{
	struct lifecycle_sealed *sealed;
	struct worker_pending pending;
	uint8_t *blob_rec;
	int64_t t0, tf, t1;
	int rc;

	if (v->state == VTPM_RUNNING)
		return 1;
	if (v->copy_of[0] != '\0') {
		registry_copy_refusal(v, err);
		lifecycle_set_error(v, VTPM_FAILED, err->msg);
		return -1;
	}
	/* Older state than recorded is refused before any key is unsealed,
	 * unless the operator authorised a revert to it (snapshot.c). */
	v->revert_next = 0;
	if (fresh_check(m, v, err) == -1) {
		/* the freshness key unseals only in an approved configuration too */
		bool refused = err->kind == ERR_CORRUPT || err->kind == ERR_POLICY;
		if (err->kind == ERR_POLICY)
			err->kind = ERR_REFUSED;
		lifecycle_set_error(v, refused ? VTPM_REFUSED : VTPM_FAILED, err->msg);
		return -1;
	}
	if (v->revert_next != 0)
		snapshot_reverted(m, v, "start");
	v->state = VTPM_STARTING;
	sealed = secret_alloc(sizeof(*sealed) + STATEBLOB_KEY_RECORD_LEN);
	if (sealed == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		lifecycle_set_error(v, VTPM_FAILED, err->msg);
		return -1;
	}
	blob_rec = (uint8_t *)(sealed + 1);
	t0 = mono_us();
	if (worker_fork(m, v, &pending, err) == -1) {
		err_wrap(err, "worker");
		lifecycle_set_error(v, VTPM_FAILED, err->msg);
		secret_free(sealed, sizeof(*sealed) + STATEBLOB_KEY_RECORD_LEN);
		return -1;
	}
	tf = mono_us();
	/* a revert authorised and not taken by this start: for QEMU's loadvm */
	if (v->revert_allowed != 0)
		fresh_permit(v, v->revert_allowed);
	rc = lifecycle_unseal(m, v, sealed, err);
	t1 = mono_us();
	if (rc == 0)
		metrics_hist_observe_us(&m->metrics.unseal, t1 - tf);
	/* The worker starts with its key while the host TPM drops the
	 * unsealed object: one round trip off the start's path. */
	if (rc == 0 && blobkey_record(m, sealed->uuid, blob_rec) == -1) {
		err_set(err, ERR_FAILED, "cannot derive the instance's state-blob key");
		lifecycle_set_error(v, VTPM_FAILED, err->msg);
		rc = -1;
	}
	if (rc == 0 && worker_send_key(&pending, sealed->key, blob_rec, err) == -1) {
		err_wrap(err, "worker");
		lifecycle_set_error(v, VTPM_FAILED, err->msg);
		rc = -1;
	}
	secret_free(sealed, sizeof(*sealed) + STATEBLOB_KEY_RECORD_LEN);
	hwtpm_flush_pending(m->hw);
	if (rc == -1) {
		worker_abort(m, v, &pending);
		return -1;
	}
	/* The record's sync, too, overlaps the worker's start. */
	if (v->unsaved && registry_save(&m->cfg, v) == 0)
		v->unsaved = false;
	v->readyfd = pending.readyfd;
	v->start_pending = true;
	v->ready_late = false;
	v->ready_by = mono_ms() + m->ready_timeout_ms;
	v->start_us = t0;
	log_debug("%s: forked in %lld µs, unsealed in %lld µs", v->name, (long long)(tf - t0),
	    (long long)(t1 - tf));
	return 0;
}

/* lifecycle_start_now, and its failure counted for GET /metrics. */
int
lifecycle_start(struct manager *m, struct vtpm *v, struct err *err)
{
	int rc = lifecycle_start_now(m, v, err);

	if (rc == -1)
		manager_metrics_start_failed(m, err, NULL);
	return rc;
}

/*
 * v's readiness pipe is readable. Returns 0 once its worker serves (v
 * running), 1 while its start is still under way: nothing has come yet,
 * or the worker failed (anything but READY), in which case it is killed
 * if still alive and its end, on v->pidfd, completes the start.
 */
int
lifecycle_ready(struct manager *m, struct vtpm *v)
{
	int rc = worker_ready(v);

	if (rc == 0)
		return 1;
	if (rc == -1) {
		kill(v->pid, SIGKILL);
		return 1;
	}
	v->start_pending = false;
	v->state = VTPM_RUNNING;
	v->error[0] = '\0';
	v->started_at_ms = mono_ms();
	v->restart_at_ms = 0;
	m->metrics.starts++;
	log_debug("%s: worker ready %lld µs after its spawn", v->name,
	    (long long)(mono_us() - v->start_us));
	log_info("%s: worker %d serving", v->name, (int)v->pid);
	return 0;
}

/* v's worker ended before it served (v->pidfd is readable): reaps it.
 * Returns -1, with v failed and its error in v->error and err. */
int
lifecycle_start_ended(struct manager *m, struct vtpm *v, struct err *err)
{
	bool late = v->ready_late;
	struct err why;

	worker_exited(m, v, &why);
	v->start_pending = false;
	v->ready_late = false;
	if (late)
		err_set(err, ERR_TIMEOUT, "worker did not become ready within %d ms",
		    m->ready_timeout_ms);
	else
		err_set(err, why.kind, "worker %s", why.msg);
	manager_metrics_start_failed(m, NULL, late ? "not-ready" : "worker-ended");
	lifecycle_set_error(v, VTPM_FAILED, err->msg);
	return -1;
}

/* v's start passed its deadline: its worker is killed, and its end
 * completes the start (lifecycle_start_ended). */
void
lifecycle_start_late(struct manager *m, struct vtpm *v)
{
	v->ready_late = true;
	if (v->readyfd != -1)
		close(v->readyfd);
	v->readyfd = -1;
	kill(v->pid, SIGKILL);
}

/* Calls off v's start: its worker is killed and forgotten; v is stopped. */
void
lifecycle_start_cancel(struct manager *m, struct vtpm *v)
{
	worker_abort(m, v, NULL);
	v->start_pending = false;
	v->ready_late = false;
	v->state = VTPM_STOPPED;
	log_info("%s: start called off", v->name);
}

/* Schedules v's next start after its back-off, doubled (100 ms first, 30 s
 * at most): a transient failure retries, by itself. */
void
lifecycle_retry_later(struct vtpm *v, int64_t now)
{
	v->backoff_ms = v->backoff_ms ? v->backoff_ms * 2 : LIFECYCLE_BACKOFF_MIN_MS;
	if (v->backoff_ms > LIFECYCLE_BACKOFF_MAX_MS)
		v->backoff_ms = LIFECYCLE_BACKOFF_MAX_MS;
	v->restart_at_ms = now + v->backoff_ms;
}

/*
 * Begins to stop v: its worker is asked to save its state and end. Does
 * not wait: returns 0 with the stop under way (lifecycle_stopped or
 * lifecycle_stop_late end it, on the loop's events), or 1 when v is
 * stopped already (it had no worker, or one that cannot be watched and
 * was killed).
 */
int
lifecycle_stop(struct manager *m, struct vtpm *v)
{
	v->restart_at_ms = 0;
	v->backoff_ms = 0;
	if (v->start_pending)
		lifecycle_start_cancel(m, v);
	if (v->pid > 0 && worker_stop(v) == 0) {
		v->stopping = true;
		v->stop_killed = false;
		v->stop_by = mono_ms() + LIFECYCLE_STOP_TIMEOUT_MS;
		log_info("%s: stopping worker %d", v->name, (int)v->pid);
		return 0;
	}
	if (v->pid > 0)
		worker_abort(m, v, NULL);
	v->state = VTPM_STOPPED;
	log_info("%s: stopped", v->name);
	return 1;
}

/* v's worker ended while it was being stopped: collected, v is stopped. */
void
lifecycle_stopped(struct manager *m, struct vtpm *v)
{
	struct err err;

	if (v->pid > 0 && worker_exited(m, v, &err) > 0)
		log_info("%s: worker %s", v->name, err.msg);
	v->stopping = false;
	v->state = VTPM_STOPPED;
	log_info("%s: stopped", v->name);
}

/*
 * v's stop passed its deadline: a worker that ignored SIGTERM is killed
 * (its end awaited again, for as long); one that outlived SIGKILL too is
 * forgotten. Returns true when v is stopped (the stop ended), false while
 * its end is still awaited.
 */
bool
lifecycle_stop_late(struct manager *m, struct vtpm *v)
{
	if (!v->stop_killed) {
		worker_stop_kill(v);
		v->stop_killed = true;
		v->stop_by = mono_ms() + LIFECYCLE_STOP_TIMEOUT_MS;
		return false;
	}
	log_warnx("%s: worker %d outlived SIGKILL by %d ms; forgetting it", v->name, (int)v->pid,
	    LIFECYCLE_STOP_TIMEOUT_MS);
	worker_forget(m, v);
	v->stopping = false;
	v->state = VTPM_STOPPED;
	return true;
}

static unsigned int
lifecycle_free_slot(const struct manager *m)
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
lifecycle_add(struct manager *m, struct vtpm *v)
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
lifecycle_mkdir_creating(struct manager *m, const char *name, const char *dir, struct err *err)
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
		err_set(err, ERR_FAILED, "path too long");
		return -1;
	}
	if (mkdir(tmp, 0700) == -1 || fileio_write_atomic(marker, "", 0, 0600) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", tmp, strerror(errno));
		fileio_remove_tree(tmp);
		return -1;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) == -1) {
		err_set(err, ERR_FAILED, errno == EEXIST ? "%s exists already on disk (an unreadable "
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

/* Records in v the Name of the object hwtpm_seal just made (blob), which
 * every unseal compares (lifecycle_check_sealed_name). Returns 0 or -1. */
static int
lifecycle_record_sealed_name(struct vtpm *v, const uint8_t *blob, size_t len, struct err *err)
{
	uint8_t name[HWTPM_NAME_LEN];

	if (hwtpm_sealed_name(blob, len, name, err) == -1)
		return err_wrap(err, "the sealed key hwtpm_seal returned");
	hex_encode(name, sizeof(name), v->sealed_name);
	return 0;
}

int
lifecycle_create(struct manager *m, const char *name, unsigned int tpm_version, struct vtpm **out,
    struct err *err)
{
	char dir[PATH_MAX], path[PATH_MAX], ctrl[PATH_MAX], data[PATH_MAX];
	uint8_t policy[TPM_DIGEST_LEN], *blob = NULL;
	struct lifecycle_sealed *sealed = NULL;
	struct vtpm *v = NULL;
	size_t len = 0;
	int ret = -1;

	worker_socket_paths(&m->cfg, name, ctrl, sizeof(ctrl), data, sizeof(data));
	if (strlen(ctrl) >= 108) {
		err_set(err, ERR_FAILED, "socket path %s is too long for a unix socket: use a "
		    "shorter name or run-dir", ctrl);
		return -1;
	}
	v = registry_new(name, tpm_version, lifecycle_free_slot(m));
	sealed = secret_alloc(sizeof(*sealed));
	if (v == NULL || sealed == NULL || registry_path(&m->cfg, name, NULL, dir, sizeof(dir)) ||
	    registry_path(&m->cfg, name, "sealed.key", path, sizeof(path))) {
		err_set(err, ERR_FAILED, "out of memory or path too long");
		goto out;
	}
	if (lifecycle_mkdir_creating(m, name, dir, err) == -1)
		goto out;
	if (registry_path(&m->cfg, name, "sealed.key", path, sizeof(path)) == -1) {
		err_set(err, ERR_FAILED, "path too long");
		goto fail;
	}
	if (RAND_priv_bytes(sealed->key, sizeof(sealed->key)) != 1 ||
	    lifecycle_uuid_bytes(v->uuid, sealed->uuid) == -1 ||
	    policy_auth_digest(&m->policy, policy) == -1) {
		err_set(err, ERR_FAILED, "cannot generate the state key");
		goto fail;
	}
	if (hwtpm_seal(m->hw, (uint8_t *)sealed, sizeof(*sealed), policy, &blob, &len, err) == -1 &&
	    (!hwtpm_recover(m->hw) ||
	        hwtpm_seal(m->hw, (uint8_t *)sealed, sizeof(*sealed), policy, &blob, &len, err) == -1)) {
		err_wrap(err, "host TPM");
		goto fail;
	}
	if (lifecycle_record_sealed_name(v, blob, len, err) == -1)
		goto fail;
	if (fileio_write_atomic(path, blob, len, 0600) == -1 || registry_save(&m->cfg, v) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (lifecycle_add(m, v) == -1) {
		err_set(err, ERR_FAILED, "out of memory");
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

/* Recomputes which instances are copies, and says which may start now. */
static void
lifecycle_recount_copies(struct manager *m)
{
	char was[VTPM_NAME_MAX + 1];
	struct vtpm *const *arr = m->vtpms;
	bool *copy = calloc(m->n + 1, sizeof(*copy));

	for (size_t i = 0; copy != NULL && i < m->n; i++)
		copy[i] = arr[i]->copy_of[0] != '\0';
	registry_mark_copies(arr, m->n);
	for (size_t i = 0; copy != NULL && i < m->n; i++) {
		if (!copy[i] || arr[i]->copy_of[0] != '\0')
			continue;
		snprintf(was, sizeof(was), "%s", arr[i]->name);
		log_info("%s: no longer a copy of another instance here; it may start", was);
		arr[i]->error[0] = '\0';
		if (arr[i]->state == VTPM_FAILED)
			arr[i]->state = VTPM_STOPPED;
	}
	free(copy);
}

/* Deletes v: its worker, its directory (state and sealed key) and its
 * record. v is freed. */
int
lifecycle_delete(struct manager *m, struct vtpm *v)
{
	char dir[PATH_MAX], gone[PATH_MAX], instances[PATH_MAX];
	uint8_t r[8];
	int dfd;

	if (v->start_pending)
		lifecycle_start_cancel(m, v);
	/* Its state goes: the worker need not save it, and is killed at once
	 * (a stop under way included). */
	if (v->pid > 0)
		worker_abort(m, v, NULL);
	v->stopping = false;
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
	workerlog_close(m, v, true);
	fresh_forget(m, v);
	log_info("%s: deleted", v->name);
	/* Its copies, or the instance it was a copy of, may stand alone now. */
	lifecycle_recount_copies(m);
	free(v);
	return 0;
}

/* Ends a create: the instance is complete (sealed key, record, EK
 * certificates when provisioned) and survives a restart of vtpmd. */
int
lifecycle_create_done(struct manager *m, struct vtpm *v, struct err *err)
{
	char path[PATH_MAX];
	int dfd;

	if (registry_path(&m->cfg, v->name, REGISTRY_CREATING, path, sizeof(path)) == -1 ||
	    unlink(path) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		return -1;
	}
	registry_path(&m->cfg, v->name, NULL, path, sizeof(path));
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1 || fsync(dfd) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
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
