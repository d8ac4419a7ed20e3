/*
 * fresh.c: freshness anchored in the host TPM (docs/state.md).
 *
 * vtpmd keeps a manifest, STATE/freshness.manifest, of every instance's
 * latest recorded generation of permanent state (and the SHA-256 of that
 * file), bound to a value of a monotonic counter in the host TPM
 * (src/hwtpm/hwtpm_counter.c) and authenticated with HMAC-SHA256 under a
 * key that exists at rest only sealed to the host TPM under the approval
 * policy (STATE/freshness.key), as the state keys are. A deleted vTPM
 * leaves a tombstone, which only an operator removes.
 *
 * Commit: the manifest's slot for C+1 is written in place (the slot not
 * holding C's; one fdatasync), then the counter is incremented to C+1,
 * then the workers whose reports it covers are acknowledged. Reports that
 * arrive while a commit runs wait for the next one, which covers them all
 * (one increment for many instances). A slot written for a value is never
 * written again with other content: a failed increment is finished first.
 *
 * The file: a header block, then two slots of slot_len bytes (a multiple
 * of 4096, so that the two never share a disk block); the slot for value C
 * is slot C % 2.
 *   off len  header
 *     0   8  magic "VTPMDFM2"
 *     8   4  slot_len, big-endian
 *   4096     slot 0, then slot 1
 *   off len  slot
 *     0   8  magic "VTPMDFS\0"
 *     8   8  the counter value C it is bound to, big-endian (0: being set up)
 *    16   4  number of entries n, big-endian
 *    20 84n  entries: UUID (36 ASCII), generation (8, big-endian), SHA-256 (32),
 *            deleted (8: Unix time of the vTPM's delete, 0: live)
 * 20+84n 32  HMAC-SHA256 of the slot's bytes above
 *    ...     zeros to slot_len
 * The first format ("VTPMDFM\0", one record of 76-byte entries written by
 * rename) is read once and converted.
 *
 * Each instance directory also holds freshness.bind: the anchor id and an
 * HMAC of the instance's UUID under the manifest's key, written before its
 * first start under this anchor. An instance the manifest does not know
 * starts with state only if its binding is this anchor's: state hidden
 * while the anchor was set up again (--reanchor) does not.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "manager.h"

#define FRESH_MAGIC       "VTPMDFM2"
#define FRESH_V1_MAGIC    "VTPMDFM"
#define FRESH_V1_HDR_LEN  20
#define FRESH_V1_ENTRY    (36 + 8 + STORE_DIGEST_LEN)
#define FRESH_SLOT_MAGIC  "VTPMDFS"
#define FRESH_BLOCK       4096 /* the header's size, and the slots' unit */
#define FRESH_SLOT_HDR    20
#define FRESH_ENTRY_LEN   (36 + 8 + STORE_DIGEST_LEN + 8)
#define FRESH_MAC_LEN	  32
#define FRESH_BIND        "freshness.bind"
#define FRESH_KEY_LEN	  32
#define FRESH_SEALED_MAX  4096
#define FRESH_MAX_ENTRIES 65536
#define FRESH_RETRY_MS	  1000 /* a failed commit is tried again after this */
#define FRESH_VERIFY_MS	  100  /* the counter is read back at most this late */
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

/* The bytes a slot of n entries needs, and the slot size (room to grow,
 * in whole blocks) a manifest written whole gives it. */
static size_t
fresh_slot_need(size_t n)
{
	return FRESH_SLOT_HDR + n * FRESH_ENTRY_LEN + FRESH_MAC_LEN;
}

static size_t
fresh_slot_size(size_t n)
{
	size_t want = fresh_slot_need(n) + fresh_slot_need(n) / 2;

	return (want + FRESH_BLOCK - 1) / FRESH_BLOCK * FRESH_BLOCK;
}

/* Fills slot (slot_len bytes, at least fresh_slot_need) with the entries
 * bound to counter value c, and its MAC. 0, or -1 with err. */
static int
fresh_slot_encode(
    const struct fresh *f, uint64_t c, uint8_t *slot, size_t slot_len, struct err *err)
{
	unsigned int maclen = FRESH_MAC_LEN;
	uint8_t *p = slot + FRESH_SLOT_HDR;

	memset(slot, 0, slot_len);
	memcpy(slot, FRESH_SLOT_MAGIC, sizeof(FRESH_SLOT_MAGIC));
	fresh_put_be(slot + 8, c, 8);
	fresh_put_be(slot + 16, f->n, 4);
	for (size_t i = 0; i < f->n; i++, p += FRESH_ENTRY_LEN) {
		memcpy(p, f->e[i].uuid, 36);
		fresh_put_be(p + 36, f->e[i].gen, 8);
		memcpy(p + 44, f->e[i].digest, STORE_DIGEST_LEN);
		fresh_put_be(p + 44 + STORE_DIGEST_LEN, (uint64_t)f->e[i].deleted, 8);
	}
	if (HMAC(EVP_sha256(), f->mac_key, 32, slot, (size_t)(p - slot), p, &maclen) == NULL)
		return err_set(err, ERR_FAILED, "cannot authenticate the manifest");
	return 0;
}

/* Writes the whole manifest (a new file, renamed: the first time, and when
 * the entries outgrow a slot) with only the slot for c. */
static int
fresh_write_whole(struct manager *m, uint64_t c, struct err *err)
{
	struct fresh *f = &m->fresh;
	size_t slot_len = fresh_slot_size(f->n), len = FRESH_BLOCK + 2 * slot_len;
	char path[PATH_MAX];
	uint8_t *buf;
	int rc;

	buf = calloc(1, len);
	if (buf == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	memcpy(buf, FRESH_MAGIC, 8);
	fresh_put_be(buf + 8, slot_len, 4);
	rc = fresh_slot_encode(f, c, buf + FRESH_BLOCK + (c % 2) * slot_len, slot_len, err);
	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (rc == 0 && (rc = fileio_write_atomic(path, buf, len, 0600)) == -1)
		err_errno(err, "%s", path);
	free(buf);
	if (rc == 0)
		f->slot_len = slot_len;
	return rc;
}

/*
 * Writes the manifest for counter value c, durably: in place, into slot
 * c % 2 (the other holds the value before, which a torn write leaves
 * whole), with one fdatasync and no rename. 0, or -1 with err.
 */
static int
fresh_write(struct manager *m, uint64_t c, struct err *err)
{
	struct fresh *f = &m->fresh;
	char path[PATH_MAX];
	uint8_t *slot;
	ssize_t n = -1;
	int fd, rc;

	if (f->slot_len < fresh_slot_need(f->n))
		return fresh_write_whole(m, c, err);
	slot = malloc(f->slot_len);
	if (slot == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	rc = fresh_slot_encode(f, c, slot, f->slot_len, err);
	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (rc == 0) {
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd != -1) {
			do {
				n = pwrite(fd, slot, f->slot_len,
				    (off_t)(FRESH_BLOCK + (c % 2) * f->slot_len));
			} while (n == -1 && errno == EINTR);
			if (n == (ssize_t)f->slot_len && fdatasync(fd) == -1)
				n = -1;
			close(fd);
		}
		if (n != (ssize_t)f->slot_len)
			rc = n >= 0 ? err_set(err, ERR_IO, "%s: short write", path)
			            : err_errno(err, "%s", path);
	}
	free(slot);
	return rc;
}

/* Decodes n entries at p into m->fresh (v1: without their deleted time). */
static int
fresh_decode(struct fresh *f, const uint8_t *p, size_t n, bool v1, struct err *err)
{
	size_t len = v1 ? FRESH_V1_ENTRY : FRESH_ENTRY_LEN;

	free(f->e);
	f->n = 0;
	f->e = calloc(n + 1, sizeof(*f->e));
	if (f->e == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	f->n = n;
	for (size_t i = 0; i < n; i++, p += len) {
		memcpy(f->e[i].uuid, p, 36);
		f->e[i].uuid[36] = '\0';
		f->e[i].gen = fresh_get_be(p + 36, 8);
		memcpy(f->e[i].digest, p + 44, STORE_DIGEST_LEN);
		f->e[i].deleted = v1 ? 0 : (int64_t)fresh_get_be(p + 44 + STORE_DIGEST_LEN, 8);
	}
	return 0;
}

/* Whether bytes [0, len - 32) of buf authenticate under the manifest's
 * key with the MAC in the last 32. */
static bool
fresh_mac_ok(const struct fresh *f, const uint8_t *buf, size_t len)
{
	uint8_t mac[FRESH_MAC_LEN];
	unsigned int maclen = FRESH_MAC_LEN;

	return HMAC(EVP_sha256(), f->mac_key, 32, buf, len - FRESH_MAC_LEN, mac, &maclen) != NULL &&
	       CRYPTO_memcmp(mac, buf + len - FRESH_MAC_LEN, FRESH_MAC_LEN) == 0;
}

/* The manifest as read: its slots that authenticate and their values. */
struct fresh_file {
	uint8_t *buf;
	size_t len, slot_len;
	bool v1;
	bool valid[2];
	uint64_t c[2];
};

/* Checks slot i of ff: its magic, size and MAC. */
static void
fresh_slot_check(const struct fresh *f, struct fresh_file *ff, int i)
{
	const uint8_t *slot = ff->buf + FRESH_BLOCK + (size_t)i * ff->slot_len;
	size_t n = (size_t)fresh_get_be(slot + 16, 4);

	ff->valid[i] = memcmp(slot, FRESH_SLOT_MAGIC, sizeof(FRESH_SLOT_MAGIC)) == 0 &&
	               n <= FRESH_MAX_ENTRIES && fresh_slot_need(n) <= ff->slot_len &&
	               fresh_mac_ok(f, slot, fresh_slot_need(n));
	ff->c[i] = ff->valid[i] ? fresh_get_be(slot + 8, 8) : 0;
}

/* Checks the first format's one record, as slot 0 of ff. */
static void
fresh_v1_check(const struct fresh *f, struct fresh_file *ff)
{
	size_t n = ff->len >= FRESH_V1_HDR_LEN ? (size_t)fresh_get_be(ff->buf + 16, 4) : 0;

	ff->v1 = true;
	ff->valid[0] = n <= FRESH_MAX_ENTRIES &&
	               ff->len == FRESH_V1_HDR_LEN + n * FRESH_V1_ENTRY + FRESH_MAC_LEN &&
	               fresh_mac_ok(f, ff->buf, ff->len);
	ff->c[0] = ff->valid[0] ? fresh_get_be(ff->buf + 8, 8) : 0;
}

/* Reads the manifest and checks its slots. 0, or -1 with err (ERR_ABSENT:
 * no manifest; ERR_CORRUPT: no slot authenticates). */
static int
fresh_read(struct manager *m, struct fresh_file *ff, struct err *err)
{
	const size_t max = FRESH_BLOCK + 2 * fresh_slot_size(FRESH_MAX_ENTRIES);
	char path[PATH_MAX];

	memset(ff, 0, sizeof(*ff));
	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (fileio_read(path, max, &ff->buf, &ff->len) == -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s: missing", path);
		return err_errno(err, "%s", path);
	}
	if (ff->len >= 8 && memcmp(ff->buf, FRESH_V1_MAGIC, 8) == 0) {
		fresh_v1_check(&m->fresh, ff);
	} else if (ff->len >= FRESH_BLOCK && memcmp(ff->buf, FRESH_MAGIC, 8) == 0) {
		ff->slot_len = (size_t)fresh_get_be(ff->buf + 8, 4);
		if (ff->slot_len % FRESH_BLOCK == 0 && ff->slot_len != 0 &&
		    ff->len == FRESH_BLOCK + 2 * ff->slot_len) {
			fresh_slot_check(&m->fresh, ff, 0);
			fresh_slot_check(&m->fresh, ff, 1);
		}
	}
	if (ff->valid[0] || ff->valid[1])
		return 0;
	free(ff->buf);
	ff->buf = NULL;
	return err_set(err, ERR_CORRUPT,
	    "%s does not authenticate (altered, or written with "
	    "another key)",
	    path);
}

/* Loads slot i of ff into m->fresh. */
static int
fresh_load(struct manager *m, const struct fresh_file *ff, int i, struct err *err)
{
	const uint8_t *slot = ff->v1 ? ff->buf : ff->buf + FRESH_BLOCK + (size_t)i * ff->slot_len;
	size_t hdr = FRESH_SLOT_HDR; /* the first format's header has a slot's layout */

	m->fresh.slot_len = ff->v1 ? 0 : ff->slot_len; /* the first format is rewritten whole */
	return fresh_decode(&m->fresh, slot + hdr, (size_t)fresh_get_be(slot + 16, 4), ff->v1, err);
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

/* Refuses every instance: the state directory is not the latest. */
static int fresh_refuse_all(struct manager *m, struct err *err, const char *fmt, ...)
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

/* Another writer moved the counter: every instance is refused (the
 * manifest is behind the counter now; nothing acknowledged is at risk). */
static int
fresh_alarm(struct manager *m, uint64_t t, uint64_t want, struct err *err)
{
	m->fresh.ready = false;
	return fresh_refuse_all(m, err,
	    "the host TPM's freshness counter (NV 0x%08x) reads %llu "
	    "where vtpmd's increments brought it to %llu: another program increments it (with "
	    "the owner's authorization, or a second vtpmd on a copy of this state directory); "
	    "every instance is refused until an operator finds it (docs/state.md)",
	    HWTPM_COUNTER_NV, (unsigned long long)t, (unsigned long long)want);
}

/* The counter read afresh, reconnecting once when the host TPM was lost. */
static int
fresh_counter_now(struct manager *m, uint64_t *t, struct err *err)
{
	if (hwtpm_counter_read(m->hw, t, err) == 0)
		return 0;
	if (!hwtpm_recover(m->hw) ||
	    hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, m->fresh.auth, false, t, err) == -1)
		return err_wrap(err, "host TPM");
	return 0;
}

/* Reads the counter back after vtpmd's increment to f->verify: it must
 * have moved by exactly one. 0, or -1 with err (ERR_CORRUPT: refused). */
static int
fresh_verify(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint64_t t, want = f->verify;

	if (want == 0)
		return 0;
	if (fresh_counter_now(m, &t, err) == -1)
		return err_wrap(err, "reading the freshness counter back");
	f->verify = 0;
	return t == want ? 0 : fresh_alarm(m, t, want, err);
}

/*
 * Finishes a commit whose increment failed or was not confirmed: its slot,
 * for counter+1, is on disk (a copy of the file taken since may hold it),
 * so it may not be written again with other content; the counter is
 * brought to it first. 0, or -1 with err.
 */
static int
fresh_finish(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint64_t t;

	if (fresh_counter_now(m, &t, err) == -1)
		return -1;
	if (t == f->counter) {
		if (hwtpm_counter_increment(m->hw, err) == -1)
			return err_wrap(err, "host TPM");
		f->commits++;
		f->verify = t + 1;
		if (fresh_verify(m, err) == -1)
			return -1;
	} else if (t != f->counter + 1) {
		return fresh_alarm(m, t, f->counter + 1, err);
	}
	f->counter++;
	f->pending = false;
	return 0;
}

/* The commit: the slot for C+1, then the counter to C+1. 0, or -1 with
 * err (nothing may be acknowledged then). The entries were changed before
 * the call: a failed commit leaves them dirty, and the next flush or check
 * commits them before anything they cover counts as recorded (else a
 * retry would find its reports "covered already" and acknowledge writes
 * no counter covers). The counter is read back later (fresh_verify): each
 * read-back checks every increment of vtpmd's since the last, so commits in
 * a burst share one, off the guests' path (fresh_verify_due). */
static int
fresh_commit(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	int64_t t0 = mono_us(), t1;

	f->dirty = true;
	if (f->pending && fresh_finish(m, err) == -1)
		return -1;
	if (fresh_write(m, f->counter + 1, err) == -1)
		return -1;
	f->pending = true;
	t1 = mono_us();
	if (hwtpm_counter_increment(m->hw, err) == 0) {
		f->pending = false;
		f->counter++;
		f->verify = f->counter;
	} else if (fresh_finish(m, err) == -1) { /* at once, reconnected */
		return -1;
	}
	f->dirty = false;
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

/* Makes a new freshness key and seals it to STATE/freshness.key (over
 * the one there, for --reanchor). 0, or -1 with err. */
static int
fresh_key_make(struct manager *m, uint8_t *key, struct err *err)
{
	uint8_t policy[TPM_DIGEST_LEN], *blob = NULL;
	char path[PATH_MAX];
	size_t len = 0;
	int rc;

	fresh_path(m, FRESH_KEY, path, sizeof(path));
	if (RAND_priv_bytes(key, FRESH_KEY_LEN) != 1 ||
	    policy_auth_digest(&m->policy, policy) == -1)
		return err_set(err, ERR_FAILED, "cannot make the freshness key");
	if (hwtpm_seal(m->hw, key, FRESH_KEY_LEN, policy, &blob, &len, err) == -1)
		return err_wrap(err, "host TPM: seal the freshness key");
	rc = fileio_write_atomic(path, blob, len, 0600);
	free(blob);
	if (rc == -1)
		return err_errno(err, "%s", path);
	return 0;
}

/* Unseals STATE/freshness.key. 0, or -1 with err (ERR_ABSENT: none). */
static int
fresh_key_unseal(struct manager *m, uint8_t *key, struct err *err)
{
	const struct policy_entry *e;
	char path[PATH_MAX];
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc;

	fresh_path(m, FRESH_KEY, path, sizeof(path));
	if (fileio_read(path, FRESH_SEALED_MAX, &blob, &len) == -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s: missing", path);
		return err_errno(err, "%s", path);
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

/* The keys derived from the freshness key: the counter's authValue, the
 * manifest's MAC key, and the anchor id that names the key. */
static int
fresh_derive_all(struct fresh *f, const uint8_t *key, struct err *err)
{
	uint8_t id[32];

	if (fresh_derive(key, "vtpmd freshness counter", f->auth) == -1 ||
	    fresh_derive(key, "vtpmd freshness manifest", f->mac_key) == -1 ||
	    fresh_derive(key, "vtpmd freshness anchor id", id) == -1)
		return err_set(err, ERR_FAILED, "cannot derive the freshness keys");
	hex_encode(id, 8, f->anchor_id);
	return 0;
}

/* v's binding to this anchor: HMAC of its UUID under the manifest's key. */
static int
fresh_binding_mac(const struct fresh *f, const struct vtpm *v, uint8_t out[32])
{
	static const char label[] = "vtpmd freshness binding ";
	unsigned int len = 32;
	uint8_t msg[sizeof(label) + 36];

	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), v->uuid, 36);
	return HMAC(EVP_sha256(), f->mac_key, 32, msg, sizeof(msg), out, &len) == NULL ? -1 : 0;
}

/* Writes STATE/instances/NAME/freshness.bind: "ANCHOR-ID HMAC\n". */
static int
fresh_binding_write(struct manager *m, const struct vtpm *v, struct err *err)
{
	char path[PATH_MAX], text[16 + 1 + 64 + 2];
	uint8_t mac[32];

	if (registry_path(&m->cfg, v->name, FRESH_BIND, path, sizeof(path)) == -1)
		return err_set(err, ERR_FAILED, "path too long");
	if (fresh_binding_mac(&m->fresh, v, mac) == -1)
		return err_set(err, ERR_FAILED, "cannot compute %s", path);
	memcpy(text, m->fresh.anchor_id, 16);
	text[16] = ' ';
	hex_encode(mac, 32, text + 17);
	text[81] = '\n';
	if (fileio_write_atomic(path, text, 82, 0600) == -1)
		return err_errno(err, "%s", path);
	return 0;
}

/* Whether v's binding is this anchor's; the anchor id it names (or "none")
 * in found (17 bytes). */
static bool
fresh_binding_ok(struct manager *m, const struct vtpm *v, char found[17])
{
	uint8_t *buf = NULL, mac[32], want[32];
	char path[PATH_MAX], hex[65] = "";
	size_t len = 0;
	bool ok;

	snprintf(found, 17, "none");
	if (registry_path(&m->cfg, v->name, FRESH_BIND, path, sizeof(path)) == -1 ||
	    fileio_read(path, 256, &buf, &len) == -1)
		return false;
	if (len == 82)
		memcpy(hex, buf + 17, 64);
	ok = len == 82 && buf[16] == ' ' && hex_decode(hex, mac, 32) == 0 &&
	     fresh_binding_mac(&m->fresh, v, want) == 0 && CRYPTO_memcmp(mac, want, 32) == 0;
	if (len >= 16) {
		memcpy(found, buf, 16);
		found[16] = '\0';
		for (int i = 0; i < 16; i++)
			if (!isxdigit((unsigned char)found[i]))
				found[i] = '?';
	}
	free(buf);
	return ok;
}

/* Binds every instance without a live entry to this anchor (set-up, and
 * the first format's conversion), so that its first write may be in
 * flight at a crash. */
static int
fresh_bind_unrecorded(struct manager *m, struct err *err)
{
	char found[17];

	for (size_t i = 0; i < m->n; i++) {
		const struct fresh_entry *e = fresh_find(&m->fresh, m->vtpms[i]->uuid);
		if ((e == NULL || e->deleted != 0) && !fresh_binding_ok(m, m->vtpms[i], found) &&
		    fresh_binding_write(m, m->vtpms[i], err) == -1)
			return -1;
	}
	return 0;
}

/* Opens the counter for a manifest whose best slot is bound to value c:
 * its value in *t, defined when the set-up was interrupted (c = 0). */
static int
fresh_counter_attach(struct manager *m, uint64_t c, uint64_t *t, struct err *err)
{
	char path[PATH_MAX];

	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, m->fresh.auth, c == 0, t, err) == 0)
		return 0;
	if (err->kind == ERR_ABSENT || err->kind == ERR_FOREIGN)
		return fresh_refuse_all(m, err,
		    "%s: the host TPM's freshness counter is gone or not "
		    "vtpmd's (%s): a host TPM cleared, its NV index undefined, or state from "
		    "another "
		    "host; every instance is refused (docs/state.md)",
		    path, err->msg);
	return -1;
}

/* The slot of ff to take against the counter's value t: the one for t+1
 * (a commit a stop interrupted after its slot), else the one for t, else
 * one of a set-up interrupted before the counter was known (0); -1. */
static int
fresh_pick(const struct fresh_file *ff, uint64_t t)
{
	for (int i = 0; i < 2; i++)
		if (ff->valid[i] && ff->c[i] == t + 1)
			return i;
	for (int i = 0; i < 2; i++)
		if (ff->valid[i] && ff->c[i] == t)
			return i;
	for (int i = 0; i < 2; i++)
		if (ff->valid[i] && ff->c[i] == 0 && !(ff->valid[1 - i] && ff->c[1 - i] != 0))
			return i;
	return -1;
}

/*
 * Binds the manifest read (ff) to the host TPM's counter, value T: the
 * slot for T is taken, or the one for T+1 (its commit is finished now).
 * A manifest whose slots are older than T was restored from a backup:
 * every instance is refused. The first format is converted.
 */
static int
fresh_attach(struct manager *m, const struct fresh_file *ff, struct err *err)
{
	struct fresh *f = &m->fresh;
	int hi = !ff->valid[0] || (ff->valid[1] && ff->c[1] > ff->c[0]) ? 1 : 0, i;
	char path[PATH_MAX];
	uint64_t t;

	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (fresh_counter_attach(m, ff->c[hi], &t, err) == -1)
		return -1;
	i = fresh_pick(ff, t);
	if (i == -1 && ff->c[hi] < t)
		return fresh_refuse_all(m, err,
		    "%s is bound to counter value %llu, but the host "
		    "TPM's counter is at %llu: the state directory was restored from a backup or "
		    "a snapshot, and every instance in it may be older than what its guest "
		    "was told; every instance is refused (docs/state.md)",
		    path, (unsigned long long)ff->c[hi], (unsigned long long)t);
	if (i == -1)
		return fresh_refuse_all(m, err,
		    "%s is bound to counter value %llu, ahead of the "
		    "host TPM's counter (%llu): not this host's TPM, or a counter replaced; every "
		    "instance is refused (docs/state.md)",
		    path, (unsigned long long)ff->c[hi], (unsigned long long)t);
	if (fresh_load(m, ff, i, err) == -1)
		return -1;
	f->counter = t;
	if (ff->c[i] == t + 1) {
		log_info("%s: finishing a commit a stop interrupted (counter %llu to %llu)", path,
		    (unsigned long long)t, (unsigned long long)t + 1);
		f->pending = true;
		if (fresh_finish(m, err) == -1)
			return -1;
	}
	if (!ff->v1 && ff->c[i] != 0)
		return 0;
	if (ff->v1)
		log_info("%s: converted to the two-slot format (counter %llu)", path,
		    (unsigned long long)f->counter);
	/* set-up interrupted before the counter was known, or converted */
	if (fresh_write_whole(m, f->counter, err) == -1)
		return -1;
	return fresh_bind_unrecorded(m, err);
}

/* Sets up the manifest with a new key: every instance's current state is
 * recorded as its latest and bound to this anchor. */
static int
fresh_setup(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint64_t t;

	for (size_t i = 0; i < m->n; i++) {
		if (fresh_record_file(m, m->vtpms[i], err) == -1)
			return -1;
		if (f->reanchor)
			log_warnx("freshness: %s: its state on disk recorded as its latest "
			          "(--reanchor)",
			    m->vtpms[i]->name);
	}
	if (fresh_write_whole(m, 0, err) == -1)
		return -1;
	if (hwtpm_counter_open(m->hw, HWTPM_COUNTER_NV, f->auth, true, &t, err) == -1) {
		if (err->kind == ERR_FOREIGN)
			err_wrap(err, "NV index 0x%08x is in use by another program; vtpmd needs it "
			    "for its freshness counter", HWTPM_COUNTER_NV);
		return -1;
	}
	f->counter = t;
	if (fresh_write_whole(m, t, err) == -1)
		return -1;
	for (size_t i = 0; i < m->n; i++)
		if (fresh_binding_write(m, m->vtpms[i], err) == -1)
			return -1;
	log_info("freshness: manifest of %zu instances bound to the host TPM's counter (%llu), "
	         "anchor %s",
	    f->n, (unsigned long long)t, f->anchor_id);
	return 0;
}

/* Why a first setup may not be made (the key is missing), into why, or
 * "": the counter still in the host TPM, a manifest, or instances with
 * state, any of which a setup would take for the latest. */
static int
fresh_setup_blocked(struct manager *m, char *why, size_t len, struct err *err)
{
	uint8_t digest[STORE_DIGEST_LEN];
	char path[PATH_MAX];
	size_t n = 0, used;
	uint64_t gen;
	bool present;

	why[0] = '\0';
	if (hwtpm_counter_present(m->hw, HWTPM_COUNTER_NV, &present, err) == -1)
		return -1;
	if (present)
		snprintf(why, len, "the host TPM holds vtpmd's freshness counter (NV 0x%08x); ",
		    HWTPM_COUNTER_NV);
	fresh_path(m, FRESH_MANIFEST, path, sizeof(path));
	if (access(path, F_OK) == 0)
		snprintf(why + strlen(why), len - strlen(why), "%s exists; ", path);
	for (size_t i = 0; i < m->n; i++) {
		int rc = fresh_file(m, m->vtpms[i], &gen, digest, err);
		if (rc == -1 && err->kind != ERR_CORRUPT)
			return -1;
		if (rc == 0 && gen == 0)
			continue;
		used = strlen(why);
		if (n++ < 8)
			snprintf(why + used, len - used, "%s%s has TPM state", n > 1 ? ", " : "",
			    m->vtpms[i]->name);
	}
	if (n > 8)
		snprintf(why + strlen(why), len - strlen(why), " (and %zu more)", n - 8);
	used = strlen(why);
	if (used >= 2 && strcmp(why + used - 2, "; ") == 0)
		why[used - 2] = '\0';
	return 0;
}

/*
 * The operator's --reanchor: a new key, a new counter (the old index
 * undefined with the owner's authorization), and every instance's state
 * on disk recorded as its latest, whatever its age: a rollback if old
 * state was put back, so it is logged, instance by instance.
 */
static int
fresh_reanchor(struct manager *m, uint8_t *key, struct err *err)
{
	struct fresh *f = &m->fresh;
	bool present;

	log_warnx("freshness: --reanchor: the anchor (%s) is set up again; every instance's state "
	          "on disk is taken for its latest, and deleted vTPMs' tombstones are dropped",
	    f->refused[0] != '\0' ? f->refused : "missing");
	f->refused[0] = '\0';
	free(f->e);
	f->e = NULL;
	f->n = 0;
	f->slot_len = 0;
	f->pending = false;
	f->verify = 0;
	if (hwtpm_counter_present(m->hw, HWTPM_COUNTER_NV, &present, err) == -1 ||
	    (present && hwtpm_counter_undefine(m->hw, HWTPM_COUNTER_NV, err) == -1))
		return err_wrap(err, "--reanchor");
	if (fresh_key_make(m, key, err) == -1 || fresh_derive_all(f, key, err) == -1)
		return -1;
	return fresh_setup(m, err);
}

/* The anchor as found: key unsealed, manifest read and bound to the
 * counter; or, without a key, a first setup when nothing forbids it. */
static int
fresh_open(struct manager *m, uint8_t *key, struct err *err)
{
	struct fresh_file ff;
	char why[ERR_MSG_MAX / 2];
	int rc;

	if (fresh_key_unseal(m, key, err) == -1) {
		if (err->kind != ERR_ABSENT)
			return -1;
		if (fresh_setup_blocked(m, why, sizeof(why), err) == -1)
			return -1;
		if (why[0] != '\0')
			return fresh_refuse_all(m, err,
			    "freshness: STATE/%s is missing, yet %s: a "
			    "first setup would take whatever state is on disk for the latest (a "
			    "rollback, if old state was put back); every instance is refused. If "
			    "the "
			    "anchor is truly lost and the state on disk is the latest, start vtpmd "
			    "once with --reanchor (docs/state.md)",
			    FRESH_KEY, why);
		if (fresh_key_make(m, key, err) == -1 ||
		    fresh_derive_all(&m->fresh, key, err) == -1)
			return -1;
		return fresh_setup(m, err);
	}
	if (fresh_derive_all(&m->fresh, key, err) == -1)
		return -1;
	if (fresh_read(m, &ff, err) == -1) {
		if (err->kind == ERR_ABSENT || err->kind == ERR_CORRUPT)
			return fresh_refuse_all(m, err,
			    "%s; the sealed freshness key exists, so the "
			    "manifest was removed or replaced: every instance is refused "
			    "(docs/state.md)",
			    err->msg);
		return -1;
	}
	rc = fresh_attach(m, &ff, err);
	free(ff.buf);
	return rc;
}

/*
 * Makes the freshness state ready: the key unsealed (or made), the
 * manifest read and bound to the host TPM's counter (or set up). Needs an
 * approved host configuration, as every start does. Returns 0, or -1
 * with err: ERR_CORRUPT when the state directory is not the latest (every
 * start is refused until an operator acts: --reanchor, once).
 */
int
fresh_ensure(struct manager *m, struct err *err)
{
	struct fresh *f = &m->fresh;
	uint8_t *key;
	int rc = -1;

	if (f->ready)
		return 0;
	if (f->refused[0] != '\0' && !f->reanchor)
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
	if (f->refused[0] == '\0')
		rc = fresh_open(m, key, err);
	if (rc == -1 && f->reanchor && (f->refused[0] != '\0' || err->kind == ERR_CORRUPT))
		rc = fresh_reanchor(m, key, err);
	else if (rc == 0 && f->reanchor)
		log_info("freshness: --reanchor: the anchor is sound; nothing is set up again");
	secret_free(key, FRESH_KEY_LEN);
	if (f->reanchor && rc == 0)
		f->reanchor = false; /* once */
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

/* The refusal of a deleted vTPM restored (its tombstone e). */
static int
fresh_deleted(const struct vtpm *v, const struct fresh_entry *e, struct err *err)
{
	char when[32] = "?";
	struct tm tm;
	time_t t = (time_t)e->deleted;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	return err_set(err, ERR_CORRUPT,
	    "%s: its vTPM (UUID %s) was deleted on %s, at generation "
	    "%llu: a deleted vTPM restored from a backup does not start; the files were left "
	    "untouched. Remove it (vtpmctl delete %s --force), or, to bring that vTPM back as it "
	    "is, forget its deletion first (vtpmctl host forget-deleted %s)",
	    v->name, v->uuid, when, (unsigned long long)e->gen, v->name, v->uuid);
}

/* An instance the manifest does not know, with state of generation gen:
 * a first write in flight at a crash if it is bound to this anchor; else
 * state from before the anchor was set up again. */
static int
fresh_unrecorded(struct manager *m, const struct vtpm *v, uint64_t gen, struct err *err)
{
	char found[17];

	if (fresh_binding_ok(m, v, found))
		return 0;
	return err_set(err, ERR_CORRUPT,
	    "%s: its TPM state (generation %llu) was never recorded "
	    "under this host's freshness anchor %s (its binding names %s): state hidden while "
	    "the anchor was set up again, restored from a backup, or from another host; "
	    "refusing to start it; the files were left untouched. Delete it (vtpmctl delete %s "
	    "--force)",
	    v->name, (unsigned long long)gen, m->fresh.anchor_id, found, v->name);
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
 * first; an instance the manifest does not know yet is bound to this
 * anchor (no state), or recorded (its first write in flight). Returns 0,
 * or -1 with err: ERR_CORRUPT for older state, naming both generations,
 * for a deleted vTPM, and for state of another anchor (refuse to start,
 * touch nothing).
 */
int
fresh_check(struct manager *m, struct vtpm *v, struct err *err)
{
	uint8_t digest[STORE_DIGEST_LEN];
	struct fresh_entry *e;
	char found[17];
	uint64_t gen;

	if (fresh_ensure(m, err) == -1)
		return -1;
	if (m->fresh.dirty && fresh_commit(m, err) == -1)
		return err_wrap(err, "recording an earlier change");
	if (fresh_file(m, v, &gen, digest, err) == -1)
		return err->kind == ERR_CORRUPT ? 0 : -1; /* the worker refuses it, by name */
	e = fresh_find(&m->fresh, v->uuid);
	if (e != NULL && e->deleted != 0)
		return fresh_deleted(v, e, err);
	if (e != NULL && gen == e->gen && CRYPTO_memcmp(digest, e->digest, STORE_DIGEST_LEN) == 0)
		return 0;
	/* A new vTPM: nothing to roll back; bound to this anchor before its
	 * first write, which is recorded. */
	if (e == NULL && gen == 0)
		return fresh_binding_ok(m, v, found) ? 0 : fresh_binding_write(m, v, err);
	if (e != NULL && gen < e->gen && gen != 0 && gen == v->revert_allowed)
		return fresh_revert_accept(v, gen, e);
	if (e != NULL && gen != e->gen + 1)
		return fresh_rollback(v, gen, e, err);
	if (e == NULL && fresh_unrecorded(m, v, gen, err) == -1)
		return -1;
	if (e == NULL && (e = fresh_add(&m->fresh, v->uuid)) == NULL)
		return err_set(err, ERR_FAILED, "out of memory for the manifest");
	log_info("%s: generation %llu of its TPM state recorded (%s)", v->name,
	    (unsigned long long)gen, gen == e->gen + 1 ? "written before a stop" : "first record");
	e->gen = gen;
	memcpy(e->digest, digest, STORE_DIGEST_LEN);
	if (fresh_commit(m, err) == -1 || fresh_verify(m, err) == -1)
		return err_wrap(err, "recording its generation");
	return 0;
}

/*
 * Records v's delete: its entry becomes a tombstone (its UUID, last
 * generation and the time), which only an operator removes
 * (fresh_forget_deleted), so that its directory restored from a backup
 * does not start. The delete of an original whose copy is left (the
 * operator's choice, copies.sh) records the copy's state instead.
 */
void
fresh_forget(struct manager *m, const struct vtpm *v)
{
	struct fresh *f = &m->fresh;
	const struct vtpm *copy = NULL;
	struct fresh_entry *e;
	struct err err;

	/* A copy's delete (or renew) leaves the original's entry. */
	if (v->copy_of[0] != '\0')
		return;
	/* Without the anchor the entry stays live: only the latest state
	 * put back would start then, never an older one. */
	if (fresh_ensure(m, &err) == -1) {
		log_warnx("%s: no tombstone: %s", v->name, err.msg);
		return;
	}
	e = fresh_find(f, v->uuid);
	for (size_t i = 0; i < m->n && copy == NULL; i++)
		if (m->vtpms[i] != v && strcmp(m->vtpms[i]->uuid, v->uuid) == 0)
			copy = m->vtpms[i];
	if (copy != NULL) {
		log_info("%s: the delete of %s leaves it alone: its state is recorded as that "
		         "vTPM's latest",
		    copy->name, v->name);
		if (fresh_record_file(m, copy, &err) == -1) {
			log_warnx("%s: %s", copy->name, err.msg);
			return;
		}
	} else {
		if (e == NULL && (e = fresh_add(f, v->uuid)) == NULL) {
			log_warnx("%s: no tombstone (out of memory)", v->name);
			return;
		}
		e->deleted = (int64_t)time(NULL);
	}
	if (fresh_commit(m, &err) == -1 || fresh_verify(m, &err) == -1)
		log_warnx(
		    "%s: its manifest entry is recorded at the next commit: %s", v->name, err.msg);
}

/*
 * The operator's removal of a deleted vTPM's tombstone (vtpmctl host
 * forget-deleted UUID): its directory, put back, then starts as the state
 * it holds. Returns 0, or -1 with err (ERR_ABSENT: no such tombstone).
 */
int
fresh_forget_deleted(struct manager *m, const char *uuid, struct err *err)
{
	struct fresh *f = &m->fresh;
	struct fresh_entry *e;

	if (fresh_ensure(m, err) == -1)
		return -1;
	e = fresh_find(f, uuid);
	if (e == NULL || e->deleted == 0)
		return err_set(err, ERR_ABSENT, "no deleted vTPM with UUID %s is recorded", uuid);
	log_warnx(
	    "freshness: the deletion of vTPM %s (generation %llu) forgotten at the operator's "
	    "request: its state, put back, starts as it is",
	    uuid, (unsigned long long)e->gen);
	*e = f->e[--f->n];
	if (fresh_commit(m, err) == -1 || fresh_verify(m, err) == -1)
		return err_wrap(err, "recording it");
	return 0;
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
/* Reads the counter back once FRESH_VERIFY_MS passed since the first
 * commit it has not checked (fresh_flush): a guest writing in a loop waits
 * for one read-back in that time, not one a write. */
static void
fresh_verify_due(struct manager *m)
{
	struct err err;

	if (m->fresh.verify_at == 0 || mono_ms() < m->fresh.verify_at)
		return;
	m->fresh.verify_at = 0;
	if (fresh_verify(m, &err) == -1 && m->fresh.refused[0] == '\0')
		log_warnx("freshness: %s", err.msg);
}

void
fresh_flush(struct manager *m)
{
	struct fresh_entry *e;
	bool need = m->fresh.dirty, want = false;
	struct err err;

	for (size_t i = 0; i < m->n; i++)
		want |= m->vtpms[i]->commit_want && m->vtpms[i]->prov == NULL;
	want |= need; /* a failed commit is retried even with no new report */
	if (!want || (m->fresh.retry_at != 0 && mono_ms() < m->fresh.retry_at)) {
		fresh_verify_due(m);
		return;
	}
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
	/* After the answers, once the writes pause (fresh_verify_due): another
	 * writer of the counter leaves the manifest behind it (a refusal at the
	 * next start), never a rollback, so the alarm may come a little later. */
	if (m->fresh.verify != 0 && m->fresh.verify_at == 0)
		m->fresh.verify_at = mono_ms() + FRESH_VERIFY_MS;
	fresh_verify_due(m);
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
	int64_t next = budget_next_deadline(m);

	if (m->fresh.retry_at != 0 && (next == -1 || m->fresh.retry_at < next))
		next = m->fresh.retry_at;
	if (m->fresh.verify_at != 0 && (next == -1 || m->fresh.verify_at < next))
		next = m->fresh.verify_at;
	return next;
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
