/*
 * fresh.c: freshness anchored in the host TPM (docs/state.md).
 *
 * vtpmd keeps a manifest, STATE/freshness.manifest, of every instance's
 * latest recorded generation of permanent state (and the SHA-256 of that
 * file), bound to a value of a monotonic counter in the host TPM
 * (src/hwtpm/hwtpm_counter.c) and authenticated with HMAC-SHA256 under a
 * key that exists at rest only sealed to the host TPM under the approval
 * policy (STATE/freshness.key), as the state keys are.
 *
 * Commit: the manifest is written for C+1 (atomically, synced), then the
 * counter is incremented to C+1, then the workers whose reports it covers
 * are acknowledged. Reports that arrive while a commit runs wait for the
 * next one, which covers them all (one increment for many instances).
 *
 *   off len  field
 *     0   8  magic "VTPMDFM\0"
 *     8   8  the counter value C it is bound to, big-endian (0: being set up)
 *    16   4  number of entries n, big-endian
 *    20 76n  entries: UUID (36 ASCII), generation (8, big-endian), SHA-256 (32)
 * 20+76n 32  HMAC-SHA256 of all the above
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "manager.h"

#define FRESH_MAGIC	  "VTPMDFM"
#define FRESH_HDR_LEN	  20
#define FRESH_ENTRY_LEN	  (36 + 8 + STORE_DIGEST_LEN)
#define FRESH_MAC_LEN	  32
#define FRESH_KEY_LEN	  32
#define FRESH_SEALED_MAX  4096
#define FRESH_MAX_ENTRIES 65536
#define FRESH_RETRY_MS	  1000 /* a failed commit is tried again after this */
#define FRESH_REPORTS_PER_ROUND 4    /* reports read from one worker per round of the loop */

/* The commit channel's messages (src/instance/instance_commit.c). */
static const uint8_t fresh_report_magic[4] = {'V', 'T', 'C', 'R'};
static const uint8_t fresh_ack_magic[4] = {'V', 'T', 'C', 'A'};
static const uint8_t fresh_strict_magic[4] = {'V', 'T', 'C', 'S'};
static const uint8_t fresh_permit_magic[4] = {'V', 'T', 'C', 'P'};
static const uint8_t fresh_revert_magic[4] = {'V', 'T', 'C', 'V'};

static void
fresh_path(const struct manager *m, const char *leaf, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", m->cfg.state_dir, leaf);
}

static void
fresh_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
fresh_get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One of the two keys derived from the sealed one: the manifest's MAC key
 * and the counter's authValue. */
static int
fresh_derive(const uint8_t *key, const char *label, uint8_t out[32])
{
	unsigned int len = 32;

	return HMAC(EVP_sha256(), key, FRESH_KEY_LEN, (const uint8_t *)label, strlen(label), out,
		   &len) == NULL ? -1 : 0;
}

static struct fresh_entry *
fresh_find(struct fresh *f, const char *uuid)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->e[i].uuid, uuid) == 0)
			return &f->e[i];
	return NULL;
}

static struct fresh_entry *
fresh_add(struct fresh *f, const char *uuid)
{
	struct fresh_entry *grown;

	if (f->n >= FRESH_MAX_ENTRIES)
		return NULL;
	grown = realloc(f->e, (f->n + 1) * sizeof(*f->e));
	if (grown == NULL)
		return NULL;
	f->e = grown;
	memset(&f->e[f->n], 0, sizeof(f->e[0]));
	snprintf(f->e[f->n].uuid, sizeof(f->e[0].uuid), "%s", uuid);
	return &f->e[f->n++];
}

/* Writes the manifest for counter value c, durably. 0, or -1 with err. */
static int
fresh_write(struct manager *m, uint64_t c, struct err *err)
{
	struct fresh *f = &m->fresh;
	size_t len = FRESH_HDR_LEN + f->n * FRESH_ENTRY_LEN + FRESH_MAC_LEN;
	unsigned int maclen = FRESH_MAC_LEN;
	char path[PATH_MAX];
	uint8_t *buf, *p;
	int rc;

	buf = calloc(1, len);
	if (buf == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	memcpy(buf, FRESH_MAGIC, sizeof(FRESH_MAGIC));
	fresh_put_be(buf + 8, c, 8);
	fresh_put_be(buf + 16, f->n, 4);
	p = buf + FRESH_HDR_LEN;
	for (size_t i = 0; i < f->n; i++, p += FRESH_ENTRY_LEN) {
		memcpy(p, f->e[i].uuid, 36);
		fresh_put_be(p + 36, f->e[i].gen, 8);
		memcpy(p + 44, f->e[i].digest, STORE_DIGEST_LEN);
	}
	if (HMAC(EVP_sha256(), f->mac_key, 32, buf, len - FRESH_MAC_LEN, p, &maclen) == NULL) {
		free(buf);
		return err_set(err, ERR_FAILED, "cannot authenticate the manifest");
	}
	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	rc = fileio_write_atomic(path, buf, len, 0600);
	free(buf);
	if (rc == -1)
		return err_errno(err, "%s", path);
	return 0;
}

/* Reads and authenticates the manifest into m->fresh; its counter value in
 * *c. 0, or -1 with err (ERR_ABSENT: no manifest; ERR_CORRUPT). */
static int
fresh_read(struct manager *m, uint64_t *c, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint8_t *buf = NULL, mac[FRESH_MAC_LEN], *p;
	unsigned int maclen = FRESH_MAC_LEN;
	char path[PATH_MAX];
	size_t len = 0, n;

	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (fileio_read(path, FRESH_HDR_LEN + FRESH_MAX_ENTRIES * FRESH_ENTRY_LEN + FRESH_MAC_LEN,
		&buf, &len) == -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s: missing", path);
		return err_errno(err, "%s", path);
	}
	n = len >= FRESH_HDR_LEN ? (size_t)fresh_get_be(buf + 16, 4) : 0;
	if (len < FRESH_HDR_LEN + FRESH_MAC_LEN || memcmp(buf, FRESH_MAGIC, 8) != 0 ||
	    len != FRESH_HDR_LEN + n * FRESH_ENTRY_LEN + FRESH_MAC_LEN ||
	    HMAC(EVP_sha256(), f->mac_key, 32, buf, len - FRESH_MAC_LEN, mac, &maclen) == NULL ||
	    CRYPTO_memcmp(mac, buf + len - FRESH_MAC_LEN, FRESH_MAC_LEN) != 0) {
		free(buf);
		return err_set(err, ERR_CORRUPT, "%s does not authenticate (altered, or written "
		    "with another key)", path);
	}
	*c = fresh_get_be(buf + 8, 8);
	free(f->e);
	f->e = calloc(n + 1, sizeof(*f->e));
	if (f->e == NULL) {
		free(buf);
		f->n = 0;
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	}
	f->n = n;
	p = buf + FRESH_HDR_LEN;
	for (size_t i = 0; i < n; i++, p += FRESH_ENTRY_LEN) {
		memcpy(f->e[i].uuid, p, 36);
		f->e[i].uuid[36] = '\0';
		f->e[i].gen = fresh_get_be(p + 36, 8);
		memcpy(f->e[i].digest, p + 44, STORE_DIGEST_LEN);
	}
	free(buf);
	return 0;
}

/* The generation and digest of v's permanent state file (0 and zeros when
 * it has none). 0, or -1 with err (ERR_CORRUPT: not a state file). */
static int
fresh_file(struct manager *m, const struct vtpm *v, uint64_t *gen,
    uint8_t digest[STORE_DIGEST_LEN], struct err *err)
{
	char path[PATH_MAX];

	*gen = 0;
	memset(digest, 0, STORE_DIGEST_LEN);
	if (registry_path(&m->cfg, v->name, "state/permanent.state", path, sizeof(path)) == -1)
		return err_set(err, ERR_FAILED, "path too long");
	if (store_file_digest(path, gen, digest, err) == 0)
		return 0;
	if (err->kind == ERR_ABSENT) {
		*gen = 0;
		memset(digest, 0, STORE_DIGEST_LEN);
		return 0;
	}
	return -1;
}

/* Opens the counter again (after a reconnection) and brings it to the
 * manifest's value c, when one increment is missing. */
static int
fresh_counter_reopen(struct manager *m, uint64_t c, struct err *err)
{
	uint64_t t;

	if (hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, m->fresh.auth, false, &t, err) == -1)
		return -1;
	if (t + 1 == c && hwtpm_counter_increment(m->hw, err) == -1)
		return -1;
	if (t != c && t + 1 != c)
		return err_set(err, ERR_CORRUPT, "the host TPM's counter is at %llu, the manifest at "
		    "%llu", (unsigned long long)t, (unsigned long long)c);
	return 0;
}

/* The commit: manifest for C+1, then the counter to C+1. 0, or -1 with err
 * (nothing may be acknowledged then). The entries were changed before the
 * call: a failed commit leaves them dirty, and the next flush or check
 * commits them before anything they cover counts as recorded (else a
 * retry would find its reports "covered already" and acknowledge writes
 * no counter covers). */
static int
fresh_commit(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint64_t next = f->counter + 1;
	int64_t t0 = mono_us(), t1;

	f->dirty = true;
	if (fresh_write(m, next, err) == -1)
		return -1;
	t1 = mono_us();
	if (hwtpm_counter_increment(m->hw, err) == -1 &&
	    (!hwtpm_recover(m->hw) || fresh_counter_reopen(m, next, err) == -1)) {
		err_wrap(err, "host TPM");
		return -1;
	}
	f->dirty = false;
	f->counter = next;
	f->commits++;
	f->increment_us += mono_us() - t1;
	f->commit_us += mono_us() - t0;
	metrics_hist_observe_us(&m->metrics.state_commit, mono_us() - t0);
	return 0;
}

/* Sets v's entry to its state file on disk (first record, or upgrade). */
static int
fresh_record_file(struct manager *m, const struct vtpm *v, struct err *err)
{
	struct fresh_entry *e = fresh_find(&m->fresh, v->uuid);
	uint8_t digest[STORE_DIGEST_LEN];
	uint64_t gen;

	if (fresh_file(m, v, &gen, digest, err) == -1)
		return err->kind == ERR_CORRUPT ? 0 : -1; /* the worker refuses it */
	if (e == NULL && (e = fresh_add(&m->fresh, v->uuid)) == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	e->gen = gen;
	memcpy(e->digest, digest, STORE_DIGEST_LEN);
	return 0;
}

/* The key that authenticates the manifest and authorizes the counter:
 * made and sealed at the first need (*made), else unsealed. */
static int
fresh_key(struct manager *m, uint8_t *key, bool *made, struct err *err)
{
	uint8_t policy[TPM_DIGEST_LEN], *blob = NULL;
	const struct policy_entry *e;
	char path[PATH_MAX];
	size_t len = 0;
	int rc;

	fresh_path(m, FRESH_KEY, path, sizeof(path));
	*made = false;
	if (fileio_read(path, FRESH_SEALED_MAX, &blob, &len) == -1) {
		if (errno != ENOENT)
			return err_errno(err, "%s", path);
		if (RAND_priv_bytes(key, FRESH_KEY_LEN) != 1 ||
		    policy_auth_digest(&m->policy, policy) == -1)
			return err_set(err, ERR_FAILED, "cannot make the freshness key");
		if (hwtpm_seal(m->hw, key, FRESH_KEY_LEN, policy, &blob, &len, err) == -1)
			return err_wrap(err, "host TPM: seal the freshness key");
		rc = fileio_write_atomic(path, blob, len, 0600);
		free(blob);
		if (rc == -1)
			return err_errno(err, "%s", path);
		*made = true;
		return 0;
	}
	e = policy_approved_now(m, "the freshness key", err);
	rc = e == NULL ? -1
		       : hwtpm_unseal(m->hw, blob, len, &m->cfg.pcrs, &e->ap, key, FRESH_KEY_LEN, err);
	free(blob);
	hwtpm_flush_pending(m->hw);
	if (rc == -1 && e != NULL)
		err_wrap(err, "host TPM: unseal %s", path);
	return rc;
}

/* Refuses every instance: the state directory is not the latest. */
static int
fresh_refuse_all(struct manager *m, struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
fresh_refuse_all(struct manager *m, struct err *err, const char *fmt, ...)
{
	struct fresh *f = &m->fresh;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->refused, sizeof(f->refused), fmt, ap);
	va_end(ap);
	log_errorx("%s", f->refused);
	return err_set(err, ERR_CORRUPT, "%s", f->refused);
}

/* Binds a manifest just read, for counter value c, to the host TPM's
 * counter (finishing a commit a crash interrupted). */
static int
fresh_bind(struct manager *m, uint64_t c, struct err *err)
{
	char path[PATH_MAX];
	uint64_t t;

	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, m->fresh.auth, c == 0, &t, err) == -1) {
		if (err->kind == ERR_ABSENT || err->kind == ERR_FOREIGN)
			return fresh_refuse_all(m, err, "%s: the host TPM's freshness counter is gone or "
			    "not vtpmd's (%s): a host TPM cleared, or state from another host; every "
			    "instance is refused", path, err->msg);
		return -1;
	}
	if (c == 0) { /* set-up interrupted before the counter was known */
		m->fresh.counter = t;
		return fresh_write(m, t, err);
	}
	if (c == t + 1) {
		log_info("%s: finishing a commit a stop interrupted (counter %llu to %llu)", path,
		    (unsigned long long)t, (unsigned long long)c);
		if (hwtpm_counter_increment(m->hw, err) == -1)
			return err_wrap(err, "host TPM");
		t = c;
	}
	if (c < t)
		return fresh_refuse_all(m, err, "%s is bound to counter value %llu, but the host "
		    "TPM's counter is at %llu: the state directory was restored from a backup or "
		    "a snapshot, and every instance in it may be older than what its guest "
		    "was told; every instance is refused (docs/state.md)", path,
		    (unsigned long long)c, (unsigned long long)t);
	if (c != t)
		return fresh_refuse_all(m, err, "%s is bound to counter value %llu, ahead of the "
		    "host TPM's counter (%llu): not this host's TPM, or a counter replaced; every "
		    "instance is refused (docs/state.md)", path, (unsigned long long)c,
		    (unsigned long long)t);
	m->fresh.counter = t;
	return 0;
}

/* Sets up the manifest at the first need: every instance's current state is
 * recorded (vtpmd before freshness, or none yet). */
static int
fresh_setup(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint64_t t;

	for (size_t i = 0; i < m->n; i++)
		if (fresh_record_file(m, m->vtpms[i], err) == -1)
			return -1;
	if (fresh_write(m, 0, err) == -1)
		return -1;
	if (hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, f->auth, true, &t, err) == -1) {
		if (err->kind == ERR_FOREIGN)
			err_wrap(err, "NV index 0x%08x is in use by another program; vtpmd needs it "
			    "for its freshness counter", HWTPM_COUNTER_NV);
		return -1;
	}
	f->counter = t;
	if (fresh_write(m, t, err) == -1)
		return -1;
	log_info("freshness: manifest of %zu instances bound to the host TPM's counter (%llu)",
	    f->n, (unsigned long long)t);
	return 0;
}

/*
 * Makes the freshness state ready: the key unsealed (or made), the
 * manifest read and bound to the host TPM's counter (or set up). Needs an
 * approved host configuration, as every start does. Returns 0, or -1
 * with err: ERR_CORRUPT when the state directory is not the latest (every
 * start is refused until an operator acts).
 */
int
fresh_ensure(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint8_t *key;
	bool made;
	uint64_t c = 0;
	int rc = -1;

	if (f->ready)
		return 0;
	if (f->refused[0] != '\0')
		return err_set(err, ERR_CORRUPT, "%s", f->refused);
	key = secret_alloc(FRESH_KEY_LEN);
	if (f->auth == NULL)
		f->auth = secret_alloc(32);
	if (f->mac_key == NULL)
		f->mac_key = secret_alloc(32);
	if (key == NULL || f->auth == NULL || f->mac_key == NULL) {
		secret_free(key, FRESH_KEY_LEN);
		return err_set(err, ERR_FAILED, "out of memory");
	}
	if (fresh_key(m, key, &made, err) == -1)
		goto out;
	if (fresh_derive(key, "vtpmd freshness counter", f->auth) == -1 ||
	    fresh_derive(key, "vtpmd freshness manifest", f->mac_key) == -1) {
		err_set(err, ERR_FAILED, "cannot derive the freshness keys");
		goto out;
	}
	if (made)
		rc = fresh_setup(m, err);
	else if ((rc = fresh_read(m, &c, err)) == 0)
		rc = fresh_bind(m, c, err);
	else if (err->kind == ERR_ABSENT || err->kind == ERR_CORRUPT)
		rc = fresh_refuse_all(m, err, "%s; the sealed freshness key exists, so the manifest "
		    "was removed or replaced: every instance is refused (docs/state.md)", err->msg);
out:
	secret_free(key, FRESH_KEY_LEN);
	f->ready = rc == 0;
	return rc;
}

/* The refusal of v's state, older than what was recorded. */
static int
fresh_rollback(const struct vtpm *v, uint64_t gen, const struct fresh_entry *e, struct err *err)
{
	if (gen == e->gen)
		return err_set(err, ERR_CORRUPT, "%s: its TPM state is generation %llu, but not "
		    "the generation %llu vtpmd recorded (another copy of it, restored from a "
		    "backup?): refusing to start it; the files were left untouched. Put back its "
		    "latest state, or delete it (vtpmctl delete %s --force)", v->name,
		    (unsigned long long)gen, (unsigned long long)e->gen, v->name);
	if (gen > e->gen)
		return err_set(err, ERR_CORRUPT, "%s: its TPM state is generation %llu, ahead of "
		    "generation %llu, the last vtpmd recorded, by more than one write: not a "
		    "state this vtpmd wrote; refusing to start it (files left untouched)", v->name,
		    (unsigned long long)gen, (unsigned long long)e->gen);
	return err_set(err, ERR_CORRUPT, "%s: its TPM state is generation %llu, older than "
	    "generation %llu, the last vtpmd recorded (a rollback: restored from a backup or a "
	    "snapshot?): refusing to start it; the files were left untouched. Put back its "
	    "latest state, or delete it (vtpmctl delete %s --force)", v->name,
	    (unsigned long long)gen, (unsigned long long)e->gen, v->name);
}

/* Older state the operator authorised, once (v->revert_allowed,
 * snapshot.c): accepted for this start, whose worker stores it as the
 * generation after the one recorded (v->revert_next), so that the
 * numbering never goes back; the commit records that write as any. The
 * manifest is unchanged until then: a start that fails before it leaves
 * the older state refused again. */
static int
fresh_revert_accept(struct vtpm *v, uint64_t gen, const struct fresh_entry *e)
{
	v->revert_from = e->gen;
	v->revert_next = e->gen + 1;
	log_info("%s: its TPM state is generation %llu, older than generation %llu, recorded: "
		 "a revert the operator authorised; it is stored as generation %llu", v->name,
	    (unsigned long long)gen, (unsigned long long)e->gen, (unsigned long long)e->gen + 1);
	return 0;
}

/*
 * Checks v's state on disk against the manifest, before a start or at an
 * adoption: the generation recorded is accepted, and the one after it (a
 * write in flight when vtpmd or the worker stopped), which is recorded
 * first; an instance the manifest does not know yet is recorded. Returns 0,
 * or -1 with err: ERR_CORRUPT for older state, naming both generations
 * (refuse to start, touch nothing).
 */
int
fresh_check(struct manager *m, struct vtpm *v, struct err *err)
{
	uint8_t digest[STORE_DIGEST_LEN];
	struct fresh_entry *e;
	uint64_t gen;

	if (fresh_ensure(m, err) == -1)
		return -1;
	if (m->fresh.dirty && fresh_commit(m, err) == -1)
		return err_wrap(err, "recording an earlier change");
	if (fresh_file(m, v, &gen, digest, err) == -1)
		return err->kind == ERR_CORRUPT ? 0 : -1; /* the worker refuses it, by name */
	e = fresh_find(&m->fresh, v->uuid);
	if (e != NULL && gen == e->gen && CRYPTO_memcmp(digest, e->digest, STORE_DIGEST_LEN) == 0)
		return 0;
	/* A new vTPM: nothing to roll back; its first write is recorded. */
	if (e == NULL && gen == 0)
		return 0;
	if (e != NULL && gen < e->gen && gen != 0 && gen == v->revert_allowed)
		return fresh_revert_accept(v, gen, e);
	if (e != NULL && gen != e->gen + 1)
		return fresh_rollback(v, gen, e, err);
	if (e == NULL && (e = fresh_add(&m->fresh, v->uuid)) == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	log_info("%s: generation %llu of its TPM state recorded (%s)", v->name,
	    (unsigned long long)gen, gen == e->gen + 1 ? "written before a stop" : "first record");
	e->gen = gen;
	memcpy(e->digest, digest, STORE_DIGEST_LEN);
	if (fresh_commit(m, err) == -1)
		return err_wrap(err, "recording its generation");
	return 0;
}

/* Forgets v's entry (a delete of the original): a copy of it left behind
 * starts as a new record (the operator chose it, docs/state.md). */
void
fresh_forget(struct manager *m, const struct vtpm *v)
{
	struct fresh *f = &m->fresh;
	struct fresh_entry *e = fresh_find(f, v->uuid);
	struct err err;

	/* A copy's delete (or renew) leaves the original's entry. */
	if (!f->ready || e == NULL || v->copy_of[0] != '\0')
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->vtpms[i] != v && strcmp(m->vtpms[i]->uuid, v->uuid) == 0)
			log_info("%s: the delete of %s leaves it alone: its state will be recorded at "
				 "its next start", m->vtpms[i]->name, v->name);
	*e = f->e[--f->n];
	if (fresh_commit(m, &err) == -1)
		log_warnx("%s: its manifest entry stays until the next commit: %s", v->name, err.msg);
}

/* A report of a revert by SET_STATEBLOB (VTCV), which vtpmd permitted
 * (fresh_permit), read as a report: the revert is to be recorded
 * (snapshot_flushed) once the commit covers it. */
static void
fresh_revert_report(struct manager *m, struct vtpm *v)
{
	const struct fresh_entry *e = fresh_find(&m->fresh, v->uuid);

	if (v->commit_revert)
		return; /* sent again (vtpmd reconnected) */
	v->commit_revert = true;
	v->revert_from = e != NULL ? e->gen : 0;
	v->revert_next = v->commit_gen;
}

/* Reads at most max of v's worker's reports (commit channel); the last
 * one is kept for fresh_flush. A closed channel is dropped, and so is the
 * channel of a worker ended for breaking the protocol (budget_report),
 * unless relaxed: a worker vtpmd provisioned reports without waiting. */
static void
fresh_channel_drain(struct manager *m, struct vtpm *v, size_t max, bool relaxed)
{
	struct fresh_entry *e;
	uint64_t gen, recorded;
	ssize_t n;
	bool revert;

	for (size_t reports = 0; reports < max;) {
		n = read(v->commit_fd, v->commit_buf + v->commit_len,
		    sizeof(v->commit_buf) - v->commit_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close(v->commit_fd);
			v->commit_fd = -1;
			v->commit_len = 0;
			return;
		}
		v->commit_len += (size_t)n;
		if (v->commit_len < sizeof(v->commit_buf))
			continue;
		v->commit_len = 0;
		reports++;
		revert = memcmp(v->commit_buf, fresh_revert_magic, 4) == 0;
		if (!revert && memcmp(v->commit_buf, fresh_report_magic, 4) != 0) {
			log_warnx("%s: not a commit report on its channel; closing it", v->name);
			close(v->commit_fd);
			v->commit_fd = -1;
			return;
		}
		gen = fresh_get_be(v->commit_buf + 4, 8);
		e = fresh_find(&m->fresh, v->uuid);
		recorded = e != NULL ? e->gen : 0;
		if (!relaxed && !budget_report(v, gen, v->commit_buf + 12, recorded)) {
			close(v->commit_fd); /* it was ended */
			v->commit_fd = -1;
			return;
		}
		if (!relaxed && budget_stale(v, gen, recorded))
			continue; /* dropped: counted and logged by budget_report */
		v->commit_want = true;
		m->metrics.state_writes++;
		v->commit_gen = gen;
		memcpy(v->commit_digest, v->commit_buf + 12, STORE_DIGEST_LEN);
		if (revert)
			fresh_revert_report(m, v);
	}
}

/* Reads v's worker's reports for one round of the loop: at most
 * FRESH_REPORTS_PER_ROUND, so that a worker that floods its channel does
 * not hold the loop from the others (an intact one has one at a time). */
void
fresh_channel_read(struct manager *m, struct vtpm *v)
{
	fresh_channel_drain(m, v, FRESH_REPORTS_PER_ROUND, false);
}

static void
fresh_ack(struct vtpm *v)
{
	uint8_t msg[12];

	v->commit_want = false;
	if (v->commit_fd == -1)
		return;
	budget_acked(v, v->commit_gen);
	memcpy(msg, fresh_ack_magic, 4);
	fresh_put_be(msg + 4, v->commit_gen, 8);
	/* A worker that ended after its last report (a stop's write) is not
	 * there to read the acknowledgement: its write is recorded all the
	 * same, and its end is handled through its pidfd. */
	if (send(v->commit_fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) !=
	        (ssize_t)sizeof(msg) &&
	    errno != EPIPE && errno != ECONNRESET)
		log_warn("%s: commit channel", v->name);
}

/*
 * The group commit: every report read in this round of the loop is
 * recorded by one manifest write and one counter increment, then
 * acknowledged. A report of an older generation than the one recorded is
 * never acknowledged (logged). On failure the reports wait for a retry.
 */
void
fresh_flush(struct manager *m)
{
	struct fresh_entry *e;
	bool need = m->fresh.dirty, want = false;
	struct err err;

	for (size_t i = 0; i < m->n; i++)
		want |= m->vtpms[i]->commit_want && m->vtpms[i]->prov == NULL;
	want |= need; /* a failed commit is retried even with no new report */
	if (!want || (m->fresh.retry_at != 0 && mono_ms() < m->fresh.retry_at))
		return;
	if (fresh_ensure(m, &err) == -1) {
		log_warnx("freshness: cannot record the workers' writes yet: %s", err.msg);
		m->fresh.retry_at = mono_ms() + FRESH_RETRY_MS;
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];

		v->budget.held = false;
		/* A vTPM being provisioned holds nothing (--commit-relaxed): its
		 * last report is recorded once, by fresh_strict. */
		if (!v->commit_want || v->prov != NULL)
			continue;
		e = fresh_find(&m->fresh, v->uuid);
		if (e == NULL && (e = fresh_add(&m->fresh, v->uuid)) == NULL)
			continue;
		if (v->commit_gen < e->gen) {
			log_warnx("%s: its worker reports generation %llu, older than %llu, recorded; "
				  "not acknowledged", v->name, (unsigned long long)v->commit_gen,
			    (unsigned long long)e->gen);
			v->commit_want = false;
			continue;
		}
		if (v->commit_gen == e->gen &&
		    CRYPTO_memcmp(e->digest, v->commit_digest, STORE_DIGEST_LEN) == 0)
			continue; /* covered already (a report sent again) */
		if (!budget_take(m, v))
			continue; /* waits for its instance's commit budget */
		e->gen = v->commit_gen;
		memcpy(e->digest, v->commit_digest, STORE_DIGEST_LEN);
		need = true;
	}
	if (need && fresh_commit(m, &err) == -1) {
		log_warnx("freshness: commit failed, retrying in %d ms: %s", FRESH_RETRY_MS, err.msg);
		m->fresh.retry_at = mono_ms() + FRESH_RETRY_MS;
		return;
	}
	m->fresh.retry_at = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->vtpms[i]->commit_want && m->vtpms[i]->prov == NULL &&
		    !m->vtpms[i]->budget.held)
			fresh_ack(m->vtpms[i]);
}

/* Whether v's worker has a report not yet acknowledged. */
static bool
fresh_waiting(const struct vtpm *v)
{
	return v->commit_want;
}

/*
 * Ends the relaxed mode of a worker started for provisioning (vtpmd's own
 * commands to it, from its loop, would wait forever for acknowledgements
 * that loop is to send): its reports so far are read and recorded, then
 * it is told to hold answers from now on (VTCS), before any guest reaches
 * it. Returns 0, or -1 with err.
 */
int
fresh_strict(struct manager *m, struct vtpm *v, struct err *err)
{
	uint8_t msg[12];

	if (v->commit_fd == -1)
		return err_set(err, ERR_FAILED, "%s: no commit channel to its worker", v->name);
	fresh_channel_drain(m, v, SIZE_MAX, true); /* provisioning's reports, all of them */
	m->fresh.retry_at = 0;
	fresh_flush(m);
	if (fresh_waiting(v))
		return err_set(err, ERR_FAILED, "%s: its state could not be recorded (see the log)",
		    v->name);
	memcpy(msg, fresh_strict_magic, 4);
	fresh_put_be(msg + 4, 0, 8);
	if (v->commit_fd == -1 ||
	    send(v->commit_fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(msg))
		return err_set(err, ERR_FAILED, "%s: commit channel: %s", v->name, strerror(errno));
	return 0;
}

/* Permits v's worker one revert by SET_STATEBLOB to a permanent blob of
 * generation gen (0 withdraws it): VTCP on its commit channel. A worker
 * not running gets it at its next start. */
void
fresh_permit(struct vtpm *v, uint64_t gen)
{
	uint8_t msg[12];

	if (v->commit_fd == -1)
		return;
	memcpy(msg, fresh_permit_magic, 4);
	fresh_put_be(msg + 4, gen, 8);
	if (send(v->commit_fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof(msg))
		log_warn("%s: commit channel: the revert's permit", v->name);
}

/* When fresh_flush retries, or commits a report that waits for its
 * instance's commit budget, or -1. */
int64_t
fresh_next_deadline(const struct manager *m)
{
	int64_t budget = budget_next_deadline(m);

	if (m->fresh.retry_at != 0 && (budget == -1 || m->fresh.retry_at < budget))
		return m->fresh.retry_at;
	return budget;
}

/* The generation and digest of v's state last recorded (0 and zeros:
 * none yet). 0, or -1 with err (fresh_ensure's). */
int
fresh_recorded(struct manager *m, const struct vtpm *v, uint64_t *gen,
    uint8_t digest[STORE_DIGEST_LEN], struct err *err)
{
	const struct fresh_entry *e;

	if (fresh_ensure(m, err) == -1)
		return -1;
	e = fresh_find(&m->fresh, v->uuid);
	*gen = e != NULL ? e->gen : 0;
	if (e != NULL)
		memcpy(digest, e->digest, STORE_DIGEST_LEN);
	else
		memset(digest, 0, STORE_DIGEST_LEN);
	return 0;
}

void
fresh_free(struct fresh *f)
{
	secret_free(f->auth, 32);
	secret_free(f->mac_key, 32);
	f->auth = f->mac_key = NULL;
	free(f->e);
	f->e = NULL;
	f->n = 0;
}
