/*
 * snapshot.c: snapshots and reverts, explicit operator actions
 * (docs/state.md, "Operator snapshots and reverts").
 *
 * Going back to older state is a rollback, which fresh.c refuses. An
 * operator may authorise one, once, for one generation of one instance:
 * allow-revert (a VM's storage snapshot or backup put back by hand), or
 * a restore of a snapshot vtpmd took. The next start accepts that
 * generation once; its worker stores it as the generation after the last
 * recorded (the numbering never goes back) and vtpmd records it as any
 * write. Each accepted revert is logged and appended to
 * STATE/instances/NAME/reverts.json, which info shows the last of.
 * Authorisations live in vtpmd's memory only, never in a file that
 * whoever writes the state directory could forge; a restart of vtpmd
 * forgets them.
 *
 * A snapshot is a copy of the instance's permanent state file as it is
 * at rest (encrypted and authenticated under its state key), of a
 * generation the manifest records (or the write in flight after it), in
 * STATE/instances/NAME/snapshots/ (root's, out of the worker's reach):
 * GEN.state, and GEN.json {generation, sha256 of the file, taken, label}.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "manager.h"

#define SNAPSHOT_DIR     "snapshots"
#define SNAPSHOT_REVERTS "reverts.json"

static void
snapshot_now(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* STATE/instances/NAME/snapshots/LEAF (LEAF NULL: the directory). */
static int
snapshot_path(struct manager *m, const struct vtpm *v, const char *leaf, char *buf, size_t len,
    struct err *err)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "%s%s%s", SNAPSHOT_DIR, leaf != NULL ? "/" : "",
	    leaf != NULL ? leaf : "");
	if (registry_path(&m->cfg, v->name, rel, buf, len) == -1)
		return err_set(err, ERR_FAILED, "%s: path too long", v->name);
	return 0;
}

/* The path of snapshot gen's file of kind ("state" or "json"). */
static int
snapshot_file(struct manager *m, const struct vtpm *v, uint64_t gen, const char *kind,
    char *buf, size_t len, struct err *err)
{
	char leaf[48];

	snprintf(leaf, sizeof(leaf), "%llu.%s", (unsigned long long)gen, kind);
	return snapshot_path(m, v, leaf, buf, len, err);
}

/* Whether v's worker runs or is starting (its state file moves). */
static bool
snapshot_running(const struct vtpm *v)
{
	return v->pid > 0 || v->state == VTPM_RUNNING || v->start_pending;
}

/* A label is one line of printable text: it goes to the log and to a
 * terminal. */
static bool
snapshot_label_ok(const char *label)
{
	size_t n = strlen(label);

	if (n > SNAPSHOT_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
			return false;
	return true;
}

/* Reads snapshot gen's record; NULL with err (ERR_ABSENT: none). */
static json_t *
snapshot_record(struct manager *m, const struct vtpm *v, uint64_t gen, struct err *err)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *rec;

	if (snapshot_file(m, v, gen, "json", path, sizeof(path), err) == -1)
		return NULL;
	rec = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (rec == NULL && access(path, F_OK) == -1 && errno == ENOENT) {
		err_set(err, ERR_ABSENT, "%s has no snapshot of generation %llu; list its snapshots "
		    "with 'vtpmctl snapshots %s'", v->name, (unsigned long long)gen, v->name);
		return NULL;
	}
	if (!json_is_object(rec) ||
	    json_integer_value(json_object_get(rec, "generation")) != (json_int_t)gen ||
	    !json_is_string(json_object_get(rec, "sha256"))) {
		json_decref(rec);
		err_set(err, ERR_CORRUPT, "%s: not a snapshot record of generation %llu", path,
		    (unsigned long long)gen);
		return NULL;
	}
	return rec;
}

/* Copies the state file at from to a new snapshot file at to (durably),
 * and reads the generation and digest of exactly what was copied. */
static int
snapshot_copy(const char *from, const char *to, uint64_t *gen,
    uint8_t digest[STORE_DIGEST_LEN], struct err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if (fileio_read(from, statefile_encoded_size(STATEFILE_MAX_PAYLOAD, false), &buf, &len) ==
	    -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "no TPM state yet (never started): nothing to "
			    "snapshot");
		return err_errno(err, "%s", from);
	}
	rc = fileio_write_atomic(to, buf, len, 0600);
	free(buf);
	if (rc == -1)
		return err_errno(err, "%s", to);
	return store_file_digest(to, gen, digest, err);
}

/* Writes snapshot gen's record. */
static int
snapshot_write_record(struct manager *m, const struct vtpm *v, uint64_t gen,
    const uint8_t digest[STORE_DIGEST_LEN], const char *label, json_t **out, struct err *err)
{
	char path[PATH_MAX], hex[2 * STORE_DIGEST_LEN + 1], taken[32];
	json_t *rec;
	char *text;
	int rc;

	hex_encode(digest, STORE_DIGEST_LEN, hex);
	snapshot_now(taken);
	rec = json_pack("{s:I, s:s, s:s, s:s}", "generation", (json_int_t)gen, "sha256", hex,
	    "taken", taken, "label", label);
	text = rec != NULL ? json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (text == NULL || snapshot_file(m, v, gen, "json", path, sizeof(path), err) == -1) {
		free(text);
		json_decref(rec);
		return text == NULL ? err_set(err, ERR_FAILED, "out of memory") : -1;
	}
	rc = fileio_write_atomic(path, text, strlen(text), 0600);
	free(text);
	if (rc == -1) {
		json_decref(rec);
		return err_errno(err, "%s", path);
	}
	*out = rec;
	return 0;
}

/*
 * Takes a snapshot of v's permanent state, running or not: the file as it
 * is at rest, of the generation recorded or the write in flight after it
 * (never older state that was put back). *out is its record. Returns 0,
 * or -1 with err: ERR_ABSENT (no state yet), ERR_EXISTS (that generation
 * has one), ERR_CORRUPT (the file is not the recorded state).
 */
int
snapshot_take(struct manager *m, struct vtpm *v, const char *label, json_t **out,
    struct err *err)
{
	char dir[PATH_MAX], live[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	uint8_t digest[STORE_DIGEST_LEN], want[STORE_DIGEST_LEN];
	uint64_t gen = 0, recorded;
	struct err ignored;
	json_t *old;

	if (!snapshot_label_ok(label))
		return err_set(err, ERR_INVALID, "a label is at most %d printable characters on "
		    "one line", SNAPSHOT_LABEL_MAX);
	if (fresh_recorded(m, v, &recorded, want, err) == -1 ||
	    snapshot_path(m, v, NULL, dir, sizeof(dir), err) == -1 ||
	    snapshot_path(m, v, ".taking", tmp, sizeof(tmp), err) == -1)
		return -1;
	if (registry_path(&m->cfg, v->name, "state/permanent.state", live, sizeof(live)) == -1)
		return err_set(err, ERR_FAILED, "%s: path too long", v->name);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return err_errno(err, "%s", dir);
	if (snapshot_copy(live, tmp, &gen, digest, err) == -1) {
		unlink(tmp);
		return err->kind == ERR_ABSENT ? err_wrap(err, "%s", v->name) : -1;
	}
	if (!(gen == recorded && CRYPTO_memcmp(digest, want, STORE_DIGEST_LEN) == 0) &&
	    gen != recorded + 1) {
		unlink(tmp);
		return err_set(err, ERR_CORRUPT, "%s: its state file is generation %llu, not the "
		    "generation %llu vtpmd recorded (put back from a backup?): no snapshot taken",
		    v->name, (unsigned long long)gen, (unsigned long long)recorded);
	}
	if ((old = snapshot_record(m, v, gen, &ignored)) != NULL) {
		unlink(tmp);
		err_set(err, ERR_EXISTS, "%s: generation %llu has a snapshot already (taken %s, "
		    "label '%s'): the state has not changed since", v->name,
		    (unsigned long long)gen, json_string_value(json_object_get(old, "taken")),
		    json_string_value(json_object_get(old, "label")));
		json_decref(old);
		return -1;
	}
	if (snapshot_file(m, v, gen, "state", path, sizeof(path), err) == -1)
		return -1;
	if (rename(tmp, path) == -1) {
		unlink(tmp);
		return err_errno(err, "%s", path);
	}
	if (snapshot_write_record(m, v, gen, digest, label, out, err) == -1)
		return -1;
	log_info("%s: snapshot of generation %llu of its TPM state taken (label '%s')", v->name,
	    (unsigned long long)gen, label);
	return 0;
}

static int
snapshot_by_generation(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The generation a snapshot's record file is named after ("GEN.json"),
 * or 0 for any other name. */
static uint64_t
snapshot_name_generation(const char *name)
{
	unsigned long long gen;
	char *end;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	errno = 0;
	gen = strtoull(name, &end, 10);
	if (errno != 0 || strcmp(end, ".json") != 0)
		return 0;
	return (uint64_t)gen;
}

/* The generations of the snapshots in dir, sorted, in a malloc'd *out
 * (NULL when there are none). */
static int
snapshot_generations(const char *dir, uint64_t **out, size_t *out_n, struct err *err)
{
	uint64_t *gens = NULL, *grown, gen;
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	*out = NULL;
	*out_n = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : err_errno(err, "%s", dir);
	while ((de = readdir(d)) != NULL) {
		if ((gen = snapshot_name_generation(de->d_name)) == 0)
			continue;
		grown = realloc(gens, (n + 1) * sizeof(*gens));
		if (grown == NULL) {
			closedir(d);
			free(gens);
			return err_set(err, ERR_FAILED, "out of memory");
		}
		gens = grown;
		gens[n++] = gen;
	}
	closedir(d);
	if (gens != NULL)
		qsort(gens, n, sizeof(*gens), snapshot_by_generation);
	*out = gens;
	*out_n = n;
	return 0;
}

/* v's snapshots, by generation (a record that does not read is logged and
 * left out); NULL with err. */
json_t *
snapshot_list(struct manager *m, const struct vtpm *v, struct err *err)
{
	char dir[PATH_MAX];
	uint64_t *gens = NULL;
	struct err bad;
	json_t *arr, *rec;
	size_t n = 0;

	if (snapshot_path(m, v, NULL, dir, sizeof(dir), err) == -1 ||
	    snapshot_generations(dir, &gens, &n, err) == -1)
		return NULL;
	arr = json_array();
	for (size_t i = 0; arr != NULL && gens != NULL && i < n; i++) {
		if ((rec = snapshot_record(m, v, gens[i], &bad)) != NULL)
			json_array_append_new(arr, rec);
		else
			log_warnx("%s: %s", v->name, bad.msg);
	}
	free(gens);
	if (arr == NULL)
		err_set(err, ERR_FAILED, "out of memory");
	return arr;
}

/* Whether gen is a generation v can go back to: from 1, older than the
 * one recorded. 0, or -1 with err (ERR_INVALID). */
static int
snapshot_older(const struct vtpm *v, uint64_t gen, uint64_t recorded, struct err *err)
{
	if (gen != 0 && gen < recorded)
		return 0;
	return err_set(err, ERR_INVALID, "%s: generation %llu is not older than generation %llu, "
	    "the last vtpmd recorded of its TPM state: nothing to revert to (a revert goes back "
	    "to a generation from 1 to %llu)", v->name, (unsigned long long)gen,
	    (unsigned long long)recorded, (unsigned long long)(recorded > 0 ? recorded - 1 : 0));
}

/*
 * Authorises one revert of v to generation gen, older than the one
 * recorded: its next start accepts that state once (fresh.c). by and how
 * are recorded with it. Returns 0, or -1 with err: ERR_INVALID when gen
 * is no older than what is recorded.
 */
int
snapshot_allow_revert(struct manager *m, struct vtpm *v, uint64_t gen, uid_t by,
    const char *how, struct err *err)
{
	uint8_t digest[STORE_DIGEST_LEN];
	uint64_t recorded;

	if (fresh_recorded(m, v, &recorded, digest, err) == -1 ||
	    snapshot_older(v, gen, recorded, err) == -1)
		return -1;
	if (v->revert_allowed != 0 && v->revert_allowed != gen)
		log_info("%s: the authorisation of a revert to generation %llu is replaced",
		    v->name, (unsigned long long)v->revert_allowed);
	v->revert_allowed = gen;
	v->revert_by = by;
	v->revert_how = how;
	/* a running worker takes it for a SET_STATEBLOB (QEMU's loadvm) */
	fresh_permit(v, gen);
	log_notice("%s: revert authorised by uid %u (%s): generation %llu of its TPM state, older "
		 "than generation %llu, recorded, is accepted once (at its next start, or from "
		 "SET_STATEBLOB)", v->name, (unsigned int)by, how, (unsigned long long)gen,
	    (unsigned long long)recorded);
	return 0;
}

/* Replaces v's state file with snapshot gen's, checked against its record.
 * The volatile state of the state replaced is left to the worker, which
 * removes it at the revert. */
static int
snapshot_put_back(struct manager *m, struct vtpm *v, uint64_t gen, const json_t *rec,
    struct err *err)
{
	char path[PATH_MAX], live[PATH_MAX], hex[2 * STORE_DIGEST_LEN + 1];
	uint8_t digest[STORE_DIGEST_LEN];
	uint64_t file_gen = 0;

	if (snapshot_file(m, v, gen, "state", path, sizeof(path), err) == -1)
		return -1;
	if (store_file_digest(path, &file_gen, digest, err) == -1)
		return err->kind == ERR_ABSENT
			   ? err_set(err, ERR_CORRUPT, "%s: the snapshot's state file is missing",
			         path)
			   : -1;
	hex_encode(digest, STORE_DIGEST_LEN, hex);
	if (file_gen != gen || strcmp(hex, json_string_value(json_object_get(rec, "sha256"))) != 0)
		return err_set(err, ERR_CORRUPT, "%s is not the state its record names (altered or "
		    "replaced): nothing restored", path);
	if (registry_path(&m->cfg, v->name, "state/permanent.state", live, sizeof(live)) == -1)
		return err_set(err, ERR_FAILED, "%s: path too long", v->name);
	/* the state replaced is kept as a snapshot of its own first */
	if (snapshot_copy(path, live, &file_gen, digest, err) == -1)
		return -1;
	return 0;
}

/*
 * Restores v, stopped, to its snapshot of generation gen: the state it
 * holds is kept as a snapshot first (when it has none), the snapshot's
 * file is put in place, and one revert to it is authorised for the next
 * start. Returns 0, or -1 with err: ERR_BUSY (it runs), ERR_ABSENT (no
 * such snapshot), ERR_INVALID (not older than the state it holds),
 * ERR_CORRUPT (the snapshot does not match its record).
 */
int
snapshot_restore(struct manager *m, struct vtpm *v, uint64_t gen, uid_t by, struct err *err)
{
	uint8_t digest[STORE_DIGEST_LEN];
	uint64_t recorded;
	json_t *rec, *kept = NULL;
	char label[64];
	int rc;

	if (snapshot_running(v))
		return err_set(err, ERR_BUSY, "%s runs: a restore replaces the TPM state under "
		    "its guest", v->name);
	if ((rec = snapshot_record(m, v, gen, err)) == NULL)
		return -1;
	if (fresh_recorded(m, v, &recorded, digest, err) == -1 ||
	    snapshot_older(v, gen, recorded, err) == -1) {
		json_decref(rec);
		return -1;
	}
	snprintf(label, sizeof(label), "before the restore of generation %llu",
	    (unsigned long long)gen);
	/* (unless it is no recorded state, or none: nothing to keep then) */
	if (snapshot_take(m, v, label, &kept, err) == -1 && err->kind != ERR_EXISTS &&
	    err->kind != ERR_CORRUPT && err->kind != ERR_ABSENT) {
		json_decref(rec);
		return err_wrap(err, "keeping the state it holds");
	}
	json_decref(kept);
	rc = snapshot_put_back(m, v, gen, rec, err);
	json_decref(rec);
	if (rc == -1)
		return -1;
	log_notice("%s: snapshot of generation %llu put back by uid %u (generation %llu was "
		 "recorded)", v->name, (unsigned long long)gen, (unsigned int)by,
	    (unsigned long long)recorded);
	return snapshot_allow_revert(m, v, gen, by, "restore", err);
}

/* Deletes v's snapshot of generation gen (its record, then its file).
 * Returns 0, or -1 with err (ERR_ABSENT: no such snapshot). */
int
snapshot_delete(struct manager *m, const struct vtpm *v, uint64_t gen, uid_t by,
    struct err *err)
{
	char rec[PATH_MAX], file[PATH_MAX];

	if (snapshot_file(m, v, gen, "json", rec, sizeof(rec), err) == -1 ||
	    snapshot_file(m, v, gen, "state", file, sizeof(file), err) == -1)
		return -1;
	if (unlink(rec) == -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s has no snapshot of generation %llu; list "
			    "its snapshots with 'vtpmctl snapshots %s'", v->name,
			    (unsigned long long)gen, v->name);
		return err_errno(err, "%s", rec);
	}
	if (unlink(file) == -1 && errno != ENOENT)
		log_warn("%s: %s", v->name, file);
	log_info("%s: snapshot of generation %llu deleted by uid %u", v->name,
	    (unsigned long long)gen, (unsigned int)by);
	return 0;
}

/* Reads reverts.json (an empty list when there is none). */
static json_t *
snapshot_reverts_read(struct manager *m, const struct vtpm *v, char *path, size_t len)
{
	json_error_t jerr;
	json_t *arr;

	if (registry_path(&m->cfg, v->name, SNAPSHOT_REVERTS, path, len) == -1)
		return NULL;
	arr = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (arr == NULL && access(path, F_OK) == -1 && errno == ENOENT)
		return json_array();
	if (!json_is_array(arr)) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/*
 * A revert v->revert_allowed authorised took place, via "start" (fresh_check
 * accepted it for the start under way) or "SET_STATEBLOB" (the worker
 * reported it, and the commit covered it): it is recorded (reverts.json,
 * the log) and the authorisation is spent. At a start, whether or not the
 * start then succeeds: one that fails before its worker stores the state
 * leaves it refused again, never a revert unrecorded.
 */
void
snapshot_reverted(struct manager *m, struct vtpm *v, const char *via)
{
	const char *how = v->revert_how != NULL ? v->revert_how : "allow-revert";
	json_int_t by = v->revert_by;
	char path[PATH_MAX], at[32];
	json_t *arr, *rec;
	char *text = NULL;

	/* a worker's permit outlives a restart of vtpmd, its record does not */
	if (v->revert_allowed == 0) {
		how = "permitted before vtpmd restarted";
		by = -1;
	}
	snapshot_now(at);
	log_notice("%s: REVERTED from generation %llu of its TPM state to generation %llu, stored "
		 "as generation %llu, via %s; authorised by uid %lld (%s)", v->name,
	    (unsigned long long)v->revert_from, (unsigned long long)v->revert_allowed,
	    (unsigned long long)v->revert_next, via, (long long)by, how);
	arr = snapshot_reverts_read(m, v, path, sizeof(path));
	rec = json_pack("{s:I, s:I, s:I, s:s, s:I, s:s, s:s}", "from", (json_int_t)v->revert_from,
	    "to", (json_int_t)v->revert_allowed, "generation", (json_int_t)v->revert_next, "at",
	    at, "by_uid", by, "how", how, "via", via);
	if (arr != NULL && rec != NULL && json_array_append(arr, rec) == 0)
		text = json_dumps(arr, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL || fileio_write_atomic(path, text, strlen(text), 0600) == -1)
		log_warnx("%s: cannot record the revert in %s (the log above records it)", v->name,
		    path);
	free(text);
	json_decref(rec);
	json_decref(arr);
	v->revert_allowed = 0;
	v->revert_how = NULL;
}

/* After a group commit: the reverts by SET_STATEBLOB it covered are
 * recorded (their reports acknowledged). */
void
snapshot_flushed(struct manager *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		if (!v->commit_revert || v->commit_want)
			continue;
		v->commit_revert = false;
		snapshot_reverted(m, v, "SET_STATEBLOB");
	}
}

/* The "revert" member of an INSTANCE: the last revert, and a pending
 * authorisation; NULL when there is neither. */
json_t *
snapshot_revert_json(struct manager *m, const struct vtpm *v)
{
	char path[PATH_MAX];
	json_t *arr, *o;
	size_t n;

	arr = snapshot_reverts_read(m, v, path, sizeof(path));
	n = json_array_size(arr);
	if (n == 0 && v->revert_allowed == 0) {
		json_decref(arr);
		return NULL;
	}
	o = json_object();
	if (o != NULL && n > 0) {
		json_object_set(o, "last", json_array_get(arr, n - 1));
		json_object_set_new(o, "count", json_integer((json_int_t)n));
	}
	if (o != NULL && v->revert_allowed != 0)
		json_object_set_new(o, "allowed", json_integer((json_int_t)v->revert_allowed));
	json_decref(arr);
	return o;
}
