/*
 * ca_db.c: vtpm-ca's records in SQLite (the only file that sees it).
 *
 * One database file, created by `vtpm-ca init` (mode 0600), in WAL mode
 * with full synchronisation (an issued serial is on disk before its
 * certificate leaves), a busy timeout so that the CLI can revoke or trust
 * while `serve` runs, and a schema version table: a database of another
 * version is refused rather than guessed at. Every statement is prepared
 * with bound parameters; nothing from a request is pasted into SQL.
 *
 * Failures fill the caller's struct err (docs/architecture.md, "Errors")
 * with the kinds ca.h lists beside the functions. What SQLite itself
 * reports (ca_db_fail) keeps its message and is ERR_EXISTS for a duplicate
 * key, ERR_IO when it is the file system's doing, ERR_FAILED otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "ca.h"

#define CA_DB_BUSY_MS 5000
/* Redeemed vEK evidence nonces are kept this long after they expired (a
 * clock set back by less still finds them redeemed). */
#define CA_DB_NONCE_GRACE 300

struct ca_db {
	sqlite3 *h;
	bool outer; /* in a caller's transaction (ca_db_begin) */
};

static const char *const ca_db_schema[] = {
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE issued ("
    " serial TEXT PRIMARY KEY,"
    " role TEXT NOT NULL CHECK (role IN ('privacy', 'virtualization')),"
    " kind TEXT NOT NULL CHECK (kind IN ('ck', 'ak', 'ek')),"
    " subject TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " certificate TEXT NOT NULL,"
    " issued_at INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL)",
    "CREATE TABLE revocations ("
    " serial TEXT PRIMARY KEY,"
    " revoked_at INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " foreign_cert INTEGER NOT NULL)",
    "CREATE TABLE trust ("
    " id INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN"
    "  ('manufacturer', 'virtualization', 'privacy', 'approval-key')),"
    " name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " added_at INTEGER NOT NULL,"
    " UNIQUE (kind, fingerprint))",
    "CREATE TABLE host_configs ("
    " id TEXT PRIMARY KEY,"
    " bank TEXT NOT NULL,"
    " pcr_values TEXT NOT NULL,"
    " policy TEXT NOT NULL UNIQUE,"
    " approved_at INTEGER NOT NULL)",
    "CREATE TABLE challenges ("
    " id TEXT PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('ck', 'ak')),"
    " request TEXT NOT NULL,"
    " secret_hash BLOB NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX challenges_expiry ON challenges (expires_at)",
    /* One vTPM, one identity, fresh evidence (issue #11, item 4): the
     * nonces redeemed (SHA-256 only, until they expire: a nonce handed out
     * is not recorded, ca_nonce.c; client is no longer written),
     * and the identity each EK certificate bound: a sealed object's Name
     * and a UUID belong to one vTPM, which has one vEK per key type. */
    "CREATE TABLE ek_nonces ("
    " hash BLOB PRIMARY KEY,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX ek_nonces_expiry ON ek_nonces (expires_at)",
    "CREATE TABLE vtpm_identities ("
    " sealed_name TEXT NOT NULL,"
    " instance_uuid TEXT NOT NULL,"
    " key_type TEXT NOT NULL CHECK (key_type IN ('rsa2048', 'ecc-p256')),"
    " vek TEXT NOT NULL UNIQUE,"
    " bound_at INTEGER NOT NULL,"
    " PRIMARY KEY (sealed_name, key_type))",
    "CREATE INDEX vtpm_identities_uuid ON vtpm_identities (instance_uuid)",
    /* One vTPM, one closed set of vEKs (issue #11, item 4): the whole set
     * a sealed object's first EK certificate request named, each member
     * as vtpm_identities.vek ('' for no vEK of that type); a later
     * request naming another set for that sealed object is refused. */
    "CREATE TABLE vtpm_vek_sets ("
    " sealed_name TEXT PRIMARY KEY,"
    " rsa2048 TEXT NOT NULL,"
    " ecc_p256 TEXT NOT NULL,"
    " recorded_at INTEGER NOT NULL)",
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL,"
    " action TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL)",
    /*
     * Issue #11, admitted hosts and challenge limits. hosts: the host EKs
     * the Privacy CA certifies CKs for, one name each (ek_key: hex SHA-256
     * of the EK's SubjectPublicKeyInfo), with the CK certificate issued
     * last (revoked as superseded when the next is issued) and the
     * host's approval key (hex X || Y; "" when admitted without one), whose
     * PolicyAuthorize the CK's authPolicy must be. challenges:
     * the EK each was made for and the client network that asked (an IPv4
     * /24, an IPv6 /48), which the limits count (docs/ca-api.md, "Limits").
     */
    "CREATE TABLE hosts ("
    " name TEXT PRIMARY KEY,"
    " ek_key TEXT NOT NULL UNIQUE,"
    " ek_certificate TEXT NOT NULL,"
    " added_at INTEGER NOT NULL,"
    " ck_serial TEXT,"
    " approval_key TEXT NOT NULL DEFAULT '')",
    "ALTER TABLE challenges ADD COLUMN ek_key TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE challenges ADD COLUMN client TEXT NOT NULL DEFAULT ''",
    /* The key a challenge's credential was made for (its TPM2B_PUBLIC, as
     * the parent read it), the only key its certificate may name. */
    "ALTER TABLE challenges ADD COLUMN key_public BLOB NOT NULL DEFAULT x''",
    /* The client address each vEK evidence nonce was handed to (before
     * nonces were stateless; '' since). */
    "ALTER TABLE ek_nonces ADD COLUMN client TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX ek_nonces_client ON ek_nonces (client, expires_at)",
    "CREATE INDEX challenges_client ON challenges (client, expires_at)",
    /*
     * Revocation that reaches every leaf (issue #11, item 5). lineage: the
     * certificates an issued certificate descends from, as its VtpmdLineage
     * extension names them (an EK certificate: the host CK's; an AK
     * certificate: the vEK certificate's and the CK's), so that revoking
     * either revokes it too (ca_db_revoke_tx). Serials are those of the
     * parents' issuers, which may be other CAs (16 random bytes each: one
     * serial names one certificate). crl_numbers: the last cRLNumber each
     * role (and the root) signed.
     */
    "CREATE TABLE lineage ("
    " serial TEXT PRIMARY KEY REFERENCES issued (serial),"
    " ck_serial TEXT NOT NULL,"
    " vek_serial TEXT)",
    "CREATE INDEX lineage_ck ON lineage (ck_serial)",
    "CREATE INDEX lineage_vek ON lineage (vek_serial)",
    "CREATE TABLE crl_numbers ("
    " role TEXT PRIMARY KEY CHECK (role IN ('privacy', 'virtualization', 'root')),"
    " number INTEGER NOT NULL)",
    /*
     * One host, one CK (review of issue #11, finding 1): the host EK each
     * CK certificate was issued for. A CK issued for an EK revokes every
     * earlier one for that EK, whatever name it had (a renamed or
     * re-admitted host), and `host remove` revokes them all.
     */
    "CREATE TABLE ck_eks ("
    " serial TEXT PRIMARY KEY REFERENCES issued (serial),"
    " ek_key TEXT NOT NULL)",
    "CREATE INDEX ck_eks_ek ON ck_eks (ek_key)",
};

static const char *const ca_trust_names[CA_TRUST_KINDS] = {
    [CA_TRUST_MANUFACTURER] = "manufacturer",
    [CA_TRUST_VIRTUALIZATION] = "virtualization",
    [CA_TRUST_PRIVACY] = "privacy",
    [CA_TRUST_APPROVAL_KEY] = "approval-key",
};

const char *
ca_trust_name(enum ca_trust_kind kind)
{
	return (unsigned)kind < CA_TRUST_KINDS ? ca_trust_names[kind] : "?";
}

int
ca_trust_parse(const char *s, enum ca_trust_kind *kind)
{
	for (int i = 0; i < CA_TRUST_KINDS; i++) {
		if (strcmp(s, ca_trust_names[i]) == 0) {
			*kind = (enum ca_trust_kind)i;
			return 0;
		}
	}
	return -1;
}

/* The kind of a failure SQLite reports (an extended result code): a row
 * with another's key is ERR_EXISTS, another constraint ERR_INVALID. Not
 * ERR_BUSY for SQLITE_BUSY: that kind says CA_PENDING_MAX challenges are
 * open, and the parent answers it as such. */
static enum err_kind
ca_db_kind(int rc)
{
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return ERR_EXISTS;
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT: return ERR_INVALID;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM: return ERR_IO;
	default: return ERR_FAILED;
	}
}

static int ca_db_fail(struct ca_db *db, struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills err with what failed and SQLite's message; returns -1. */
static int
ca_db_fail(struct ca_db *db, struct err *err, const char *fmt, ...)
{
	char msg[CA_WHY_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (db->h == NULL)
		return err_set(err, ERR_FAILED, "%s", msg);
	return err_set(
	    err, ca_db_kind(sqlite3_extended_errcode(db->h)), "%s: %s", msg, sqlite3_errmsg(db->h));
}

static int
ca_db_exec(struct ca_db *db, const char *sql, struct err *err)
{
	if (sqlite3_exec(db->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return ca_db_fail(db, err, "%.60s", sql);
	return 0;
}

/* A function's own transaction: BEGIN IMMEDIATE (the write lock at once,
 * waiting out another writer for CA_DB_BUSY_MS), or, inside a caller's
 * transaction (ca_db_begin), a savepoint, so that the caller's commit or
 * rollback decides. */
static int
ca_db_tx_begin(struct ca_db *db, struct err *err)
{
	return ca_db_exec(db, db->outer ? "SAVEPOINT ca_db_tx" : "BEGIN IMMEDIATE", err);
}

static int
ca_db_tx_commit(struct ca_db *db, struct err *err)
{
	return ca_db_exec(db, db->outer ? "RELEASE ca_db_tx" : "COMMIT", err);
}

static void
ca_db_tx_abort(struct ca_db *db)
{
	sqlite3_exec(db->h, db->outer ? "ROLLBACK TO ca_db_tx; RELEASE ca_db_tx" : "ROLLBACK", NULL,
	    NULL, NULL);
}

int
ca_db_begin(struct ca_db *db, struct err *err)
{
	if (db->outer)
		return err_set(err, ERR_FAILED, "a transaction is open already");
	if (ca_db_exec(db, "BEGIN IMMEDIATE", err) == -1)
		return -1;
	db->outer = true;
	return 0;
}

int
ca_db_end(struct ca_db *db, bool commit, struct err *err)
{
	int rc = 0;

	if (!db->outer)
		return err_set(err, ERR_FAILED, "no transaction is open");
	db->outer = false;
	if (commit && (rc = ca_db_exec(db, "COMMIT", err)) == 0)
		return 0;
	sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static sqlite3_stmt *
ca_db_prepare(struct ca_db *db, const char *sql, struct err *err)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		ca_db_fail(db, err, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Copies a text column into a fixed-size field. */
static void
ca_db_text(sqlite3_stmt *st, int col, char *out, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(out, len, "%s", t != NULL ? (const char *)t : "");
}

static int
ca_db_create_schema(struct ca_db *db, struct err *err)
{
	char sql[64];

	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(ca_db_schema) / sizeof(ca_db_schema[0]); i++)
		if (ca_db_exec(db, ca_db_schema[i], err) == -1)
			goto fail;
	snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", CA_DB_SCHEMA_VERSION);
	if (ca_db_exec(db, sql, err) == -1 || ca_db_tx_commit(db, err) == -1)
		goto fail;
	return 0;
fail:
	ca_db_tx_abort(db);
	return -1;
}

static int
ca_db_check_version(struct ca_db *db, struct err *err)
{
	sqlite3_stmt *st;
	int ret = -1, v;

	st = ca_db_prepare(db, "SELECT version FROM schema_version", NULL);
	if (st == NULL)
		return err_set(
		    err, ERR_INVALID, "not a vtpm-ca database (create one with 'vtpm-ca init')");
	if (sqlite3_step(st) != SQLITE_ROW) {
		err_set(err, ERR_INVALID, "the database has no schema version");
		goto out;
	}
	v = sqlite3_column_int(st, 0);
	if (v != CA_DB_SCHEMA_VERSION) {
		err_set(err, ERR_INVALID,
		    "database schema version %d, this vtpm-ca reads version %d%s", v,
		    CA_DB_SCHEMA_VERSION, v > CA_DB_SCHEMA_VERSION ? ": use a newer vtpm-ca" : "");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

struct ca_db *
ca_db_open(const char *path, bool create, struct err *err)
{
	struct ca_db *db = calloc(1, sizeof(*db));
	bool created = false;
	int fd;

	if (db == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	if (create) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1) {
			if (errno == EEXIST)
				err_set(err, ERR_EXISTS, "exists already");
			else
				err_set(err, ERR_IO, "%s", strerror(errno));
			goto fail;
		}
		close(fd);
		created = true;
	}
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		ca_db_fail(db, err, "open");
		if (!create && access(path, F_OK) == -1)
			err_set(err, ERR_ABSENT,
			    "no such database (create one with 'vtpm-ca init --db %s')", path);
		goto fail;
	}
	sqlite3_busy_timeout(db->h, CA_DB_BUSY_MS);
	sqlite3_extended_result_codes(db->h, 1);
	if (ca_db_exec(db, "PRAGMA journal_mode = WAL", err) == -1 ||
	    ca_db_exec(db, "PRAGMA synchronous = FULL", err) == -1 ||
	    ca_db_exec(db, "PRAGMA foreign_keys = ON", err) == -1)
		goto fail;
	if (create ? ca_db_create_schema(db, err) : ca_db_check_version(db, err))
		goto fail;
	return db;
fail:
	ca_db_close(db);
	if (created)
		unlink(path); /* only what this call made */
	return NULL;
}

void
ca_db_close(struct ca_db *db)
{
	if (db == NULL)
		return;
	sqlite3_close(db->h);
	free(db);
}

/* Steps a statement that returns no rows. A row with the key of another
 * is ERR_EXISTS, said with exists when not NULL. */
static int
ca_db_step_done(
    struct ca_db *db, sqlite3_stmt *st, const char *what, const char *exists, struct err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return 0;
	if (exists != NULL && ca_db_kind(rc) == ERR_EXISTS)
		return err_set(err, ERR_EXISTS, "%s", exists);
	return ca_db_fail(db, err, "%s", what);
}

/* ---- issued certificates and revocations ---- */

/* The lineage row of an issued certificate, when it has parents. */
static int
ca_db_lineage_add(struct ca_db *db, const struct ca_issued *rec, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (rec->parent_ck[0] == '\0')
		return 0;
	st = ca_db_prepare(
	    db, "INSERT INTO lineage (serial, ck_serial, vek_serial) VALUES (?, ?, ?)", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, rec->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->parent_ck, -1, SQLITE_STATIC);
	if (rec->parent_vek[0] != '\0')
		sqlite3_bind_text(st, 3, rec->parent_vek, -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "record the certificate's lineage", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

static int
ca_db_issued_insert(struct ca_db *db, const struct ca_issued *rec, const char *pem, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(db,
	    "INSERT INTO issued (serial, role, kind, subject, detail, "
	    "certificate, issued_at, not_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, rec->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, rec->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, rec->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, rec->detail, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, rec->issued_at);
	sqlite3_bind_int64(st, 8, rec->not_after);
	rc = ca_db_step_done(db, st, "record the issued certificate", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

/* The certificate and its lineage, in one transaction. */
int
ca_db_issued_add(struct ca_db *db, const struct ca_issued *rec, const char *pem, struct err *err)
{
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_issued_insert(db, rec, pem, err) == -1 || ca_db_lineage_add(db, rec, err) == -1 ||
	    ca_db_tx_commit(db, err) == -1) {
		ca_db_tx_abort(db);
		return -1;
	}
	return 0;
}

int
ca_db_issued_list(
    struct ca_db *db, int (*fn)(void *ctx, const struct ca_issued *rec), void *ctx, struct err *err)
{
	struct ca_issued rec;
	sqlite3_stmt *st;
	int ret = 0, rc;

	st = ca_db_prepare(db,
	    "SELECT i.serial, i.role, i.kind, i.subject, i.detail, "
	    "i.certificate, i.issued_at, i.not_after, r.revoked_at, r.reason "
	    "FROM issued i LEFT JOIN revocations r ON r.serial = i.serial "
	    "ORDER BY i.issued_at, i.rowid",
	    err);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&rec, 0, sizeof(rec));
		ca_db_text(st, 0, rec.serial, sizeof(rec.serial));
		ca_db_text(st, 1, rec.role, sizeof(rec.role));
		ca_db_text(st, 2, rec.kind, sizeof(rec.kind));
		ca_db_text(st, 3, rec.subject, sizeof(rec.subject));
		ca_db_text(st, 4, rec.detail, sizeof(rec.detail));
		rec.certificate = (const char *)sqlite3_column_text(st, 5);
		rec.issued_at = sqlite3_column_int64(st, 6);
		rec.not_after = sqlite3_column_int64(st, 7);
		rec.revoked = sqlite3_column_type(st, 8) != SQLITE_NULL;
		rec.revoked_at = sqlite3_column_int64(st, 8);
		ca_db_text(st, 9, rec.reason, sizeof(rec.reason));
		if (fn(ctx, &rec) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list issued certificates");
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_ak_valid(struct ca_db *db, const char *vek_serial, int64_t now,
    int (*fn)(void *ctx, const char *serial, const uint8_t *der, size_t len), void *ctx,
    struct err *err)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	uint8_t *der = NULL;
	size_t der_len = 0, off;
	const char *pem;
	sqlite3_stmt *st;
	int ret = 0, rc, stop = 0;

	st = ca_db_prepare(db,
	    "SELECT i.serial, i.certificate FROM lineage l JOIN issued i ON i.serial = l.serial "
	    "LEFT JOIN revocations r ON r.serial = i.serial WHERE l.vek_serial = ? "
	    "AND i.kind = 'ak' AND r.serial IS NULL AND i.not_after > ? ORDER BY i.issued_at",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, vek_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ca_db_text(st, 0, serial, sizeof(serial));
		pem = (const char *)sqlite3_column_text(st, 1);
		off = 0;
		if (pem == NULL ||
		    certs_pem_next(pem, strlen(pem), &off, &der, &der_len, err) != 1) {
			ret = err_set(err, ERR_FAILED,
			    "certificate %s: its record holds no certificate", serial);
			break;
		}
		stop = fn(ctx, serial, der, der_len);
		free(der);
		der = NULL;
		if (stop != 0)
			break;
	}
	if (ret == 0 && stop == 0 && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list the AK certificates beneath %s", vek_serial);
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_issued_get(struct ca_db *db, const char *serial, struct ca_issued *out, uint8_t **der,
    size_t *der_len, struct err *err)
{
	sqlite3_stmt *st;
	const char *pem;
	size_t off = 0;
	int rc, ret = -1;

	*der = NULL;
	*der_len = 0;
	memset(out, 0, sizeof(*out));
	st = ca_db_prepare(db,
	    "SELECT i.serial, i.role, i.kind, i.subject, i.detail, i.certificate, i.issued_at, "
	    "i.not_after, r.revoked_at, r.reason FROM issued i "
	    "LEFT JOIN revocations r ON r.serial = i.serial WHERE i.serial = ?",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err_set(err, ERR_ABSENT, "certificate %s was not issued here", serial);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ca_db_fail(db, err, "look up certificate %s", serial);
		goto out;
	}
	ca_db_text(st, 0, out->serial, sizeof(out->serial));
	ca_db_text(st, 1, out->role, sizeof(out->role));
	ca_db_text(st, 2, out->kind, sizeof(out->kind));
	ca_db_text(st, 3, out->subject, sizeof(out->subject));
	ca_db_text(st, 4, out->detail, sizeof(out->detail));
	out->issued_at = sqlite3_column_int64(st, 6);
	out->not_after = sqlite3_column_int64(st, 7);
	out->revoked = sqlite3_column_type(st, 8) != SQLITE_NULL;
	out->revoked_at = sqlite3_column_int64(st, 8);
	ca_db_text(st, 9, out->reason, sizeof(out->reason));
	pem = (const char *)sqlite3_column_text(st, 5);
	if (pem == NULL || certs_pem_next(pem, strlen(pem), &off, der, der_len, err) != 1) {
		err_set(err, ERR_FAILED, "certificate %s: its record holds no certificate", serial);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Whether serial was issued here: 1, 0, or -1 with err. */
static int
ca_db_is_issued(struct ca_db *db, const char *serial, struct err *err)
{
	sqlite3_stmt *st = ca_db_prepare(db, "SELECT 1 FROM issued WHERE serial = ?", err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return rc == SQLITE_ROW;
	}
	ca_db_fail(db, err, "look up serial");
	sqlite3_finalize(st);
	return -1;
}

/* Inserts one revocation row. */
static int
ca_db_revocation_add(struct ca_db *db, const char *serial, const char *reason, int64_t now,
    bool foreign, struct err *err)
{
	char exists[CERTS_SERIAL_HEX_MAX + 32];
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(db,
	    "INSERT INTO revocations (serial, revoked_at, reason, foreign_cert) "
	    "VALUES (?, ?, ?, ?)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, foreign);
	snprintf(exists, sizeof(exists), "serial %s is revoked already", serial);
	rc = ca_db_step_done(db, st, "record the revocation", exists, err);
	sqlite3_finalize(st);
	return rc;
}

/* A certificate beneath a revoked one. */
struct ca_db_child {
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	char kind[8];
	bool under_ck; /* its CK was revoked, else its vEK */
};

/* The certificates issued here directly beneath serial (by their lineage)
 * and not revoked yet: *children malloc'd, *n of them. */
static int
ca_db_children(
    struct ca_db *db, const char *serial, struct ca_db_child **children, size_t *n, struct err *err)
{
	struct ca_db_child *v = NULL, *grown;
	sqlite3_stmt *st;
	int rc;

	*children = NULL;
	*n = 0;
	st = ca_db_prepare(db,
	    "SELECT l.serial, i.kind, l.ck_serial = ?1 FROM lineage l "
	    "JOIN issued i ON i.serial = l.serial "
	    "WHERE (l.ck_serial = ?1 OR l.vek_serial = ?1) "
	    "AND l.serial NOT IN (SELECT serial FROM revocations) ORDER BY i.rowid",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((grown = realloc(v, (*n + 1) * sizeof(*v))) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = grown;
		ca_db_text(st, 0, v[*n].serial, sizeof(v[*n].serial));
		ca_db_text(st, 1, v[*n].kind, sizeof(v[*n].kind));
		v[*n].under_ck = sqlite3_column_int(st, 2) != 0;
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		*n = 0;
		return rc == SQLITE_NOMEM ? err_set(err, ERR_FAILED, "out of memory")
		                          : ca_db_fail(db, err, "look up the certificates beneath");
	}
	*children = v;
	return 0;
}

/* Revokes every certificate beneath serial (revoked a moment ago with
 * reason), each with a reason naming it, each audited. */
static int
ca_db_revoke_children(
    struct ca_db *db, const char *serial, const char *reason, int64_t now, struct err *err)
{
	char why[CA_DETAIL_MAX], detail[CA_DETAIL_MAX];
	struct ca_db_child *c = NULL;
	size_t n = 0;
	int ret = -1;

	if (ca_db_children(db, serial, &c, &n, err) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		snprintf(why, sizeof(why), "%s certificate %s revoked%s%s",
		    c[i].under_ck ? "CK" : "vEK", serial, reason[0] != '\0' ? ": " : "", reason);
		snprintf(detail, sizeof(detail), "serial %s (%s): %s", c[i].serial, c[i].kind, why);
		if (ca_db_revocation_add(db, c[i].serial, why, now, false, err) == -1 ||
		    ca_db_audit(db, now, "revoke", "cascaded", detail, err) == -1)
			goto out;
	}
	ret = 0;
out:
	free(c);
	return ret;
}

/* Inside an open transaction: the revocation of serial, its audit row,
 * then those of every certificate beneath it. The one revoke path: a CK
 * revoked for any reason (the CLI, a rotation) takes its leaves with it. */
int
ca_db_revoke_tx(struct ca_db *db, const char *serial, const char *reason, int64_t now, bool foreign,
    struct err *err)
{
	char detail[CA_DETAIL_MAX];
	int issued = ca_db_is_issued(db, serial, err);

	if (issued == -1)
		return -1;
	if (!issued && !foreign)
		return err_set(
		    err, ERR_ABSENT, "no certificate with serial %s was issued here", serial);
	snprintf(detail, sizeof(detail), "serial %s%s%s%s", serial, !issued ? " (foreign)" : "",
	    reason[0] != '\0' ? ": " : "", reason);
	if (ca_db_revocation_add(db, serial, reason, now, !issued, err) == -1 ||
	    ca_db_audit(db, now, "revoke", "done", detail, err) == -1)
		return -1;
	return ca_db_revoke_children(db, serial, reason, now, err);
}

int
ca_db_revoke(struct ca_db *db, const char *serial, const char *reason, int64_t now, bool foreign,
    struct err *err)
{
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_revoke_tx(db, serial, reason, now, foreign, err) == -1 ||
	    ca_db_tx_commit(db, err) == -1) {
		ca_db_tx_abort(db);
		return -1;
	}
	return 0;
}

/* The last cRLNumber of role, plus one, recorded. */
static int
ca_db_crl_number(struct ca_db *db, const char *role, uint64_t *number, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(db,
	    "INSERT INTO crl_numbers (role, number) VALUES (?1, 1) "
	    "ON CONFLICT (role) DO UPDATE SET number = number + 1 RETURNING number",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, role, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*number = (uint64_t)sqlite3_column_int64(st, 0);
	if (rc == SQLITE_ROW && sqlite3_step(st) == SQLITE_DONE) {
		sqlite3_finalize(st);
		return 0;
	}
	ca_db_fail(db, err, "count the CRL");
	sqlite3_finalize(st);
	return -1;
}

/* The revocations of the certificates role issued that expire at since
 * or later. */
static int
ca_db_crl_entries(struct ca_db *db, const char *role, int64_t since, struct certs_crl_entry **out,
    size_t *n, struct err *err)
{
	struct certs_crl_entry *v = NULL, *grown;
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(db,
	    "SELECT r.serial, r.revoked_at FROM revocations r "
	    "JOIN issued i ON i.serial = r.serial WHERE i.role = ? AND i.not_after >= ? "
	    "ORDER BY r.rowid",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((grown = realloc(v, (*n + 1) * sizeof(*v))) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = grown;
		ca_db_text(st, 0, v[*n].serial, sizeof(v[*n].serial));
		v[*n].revoked_at = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		*n = 0;
		return rc == SQLITE_NOMEM ? err_set(err, ERR_FAILED, "out of memory")
		                          : ca_db_fail(db, err, "list the revocations");
	}
	*out = v;
	return 0;
}

int
ca_db_crl(struct ca_db *db, const char *role, int64_t expired_before, uint64_t *number,
    struct certs_crl_entry **entries, size_t *n, struct err *err)
{
	*entries = NULL;
	*n = 0;
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_crl_number(db, role, number, err) == -1 ||
	    ca_db_crl_entries(db, role, expired_before, entries, n, err) == -1 ||
	    ca_db_tx_commit(db, err) == -1) {
		ca_db_tx_abort(db);
		free(*entries);
		*entries = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

int
ca_db_status(struct ca_db *db, const char *serial, struct ca_status *out, struct err *err)
{
	sqlite3_stmt *st;
	int ret = -1, rc;

	memset(out, 0, sizeof(*out));
	st = ca_db_prepare(db,
	    "SELECT (SELECT COUNT(*) FROM issued WHERE serial = ?1), "
	    "r.revoked_at, r.reason FROM (SELECT 1) "
	    "LEFT JOIN revocations r ON r.serial = ?1",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ca_db_fail(db, err, "look up serial");
		goto out;
	}
	out->issued_here = sqlite3_column_int(st, 0) > 0;
	out->revoked = sqlite3_column_type(st, 1) != SQLITE_NULL;
	out->revoked_at = sqlite3_column_int64(st, 1);
	ca_db_text(st, 2, out->reason, sizeof(out->reason));
	if (out->issued_here || out->revoked)
		ret = 0;
	else
		err_set(err, ERR_ABSENT, "no certificate with serial %s was issued or revoked here",
		    serial);
out:
	sqlite3_finalize(st);
	return ret;
}

/* ---- trust store ---- */

int
ca_db_trust_add(struct ca_db *db, enum ca_trust_kind kind, const char *name,
    const char *fingerprint, const char *data, int64_t now, struct err *err)
{
	char exists[64];
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(db,
	    "INSERT INTO trust (kind, name, fingerprint, data, added_at) "
	    "VALUES (?, ?, ?, ?, ?)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, ca_trust_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	snprintf(exists, sizeof(exists), "this %s is trusted already", ca_trust_name(kind));
	rc = ca_db_step_done(db, st, "add to the trust store", exists, err);
	sqlite3_finalize(st);
	return rc;
}

int
ca_db_trust_list(struct ca_db *db, int kind, int (*fn)(void *ctx, const struct ca_trust *t),
    void *ctx, struct err *err)
{
	struct ca_trust t;
	char kname[32];
	sqlite3_stmt *st;
	int ret = 0, rc;

	st = ca_db_prepare(db,
	    "SELECT id, kind, name, fingerprint, data, added_at FROM trust "
	    "WHERE ?1 IS NULL OR kind = ?1 ORDER BY id",
	    err);
	if (st == NULL)
		return -1;
	if (kind >= 0)
		sqlite3_bind_text(
		    st, 1, ca_trust_name((enum ca_trust_kind)kind), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&t, 0, sizeof(t));
		t.id = sqlite3_column_int64(st, 0);
		ca_db_text(st, 1, kname, sizeof(kname));
		if (ca_trust_parse(kname, &t.kind) == -1)
			continue;
		ca_db_text(st, 2, t.name, sizeof(t.name));
		ca_db_text(st, 3, t.fingerprint, sizeof(t.fingerprint));
		t.data = (const char *)sqlite3_column_text(st, 4);
		t.added_at = sqlite3_column_int64(st, 5);
		if (t.data == NULL || fn(ctx, &t) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list the trust store");
	sqlite3_finalize(st);
	return ret;
}

/* ---- host configurations ---- */

int
ca_db_host_config_add(struct ca_db *db, const struct ca_host_config *hc, struct err *err)
{
	char policy[2 * TPM_DIGEST_LEN + 1], *values = NULL;
	json_t *o = pcrpolicy_values_json(hc->mask, hc->values);
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (o == NULL || (values = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	hex_encode(hc->policy, TPM_DIGEST_LEN, policy);
	st = ca_db_prepare(db,
	    "INSERT INTO host_configs (id, bank, pcr_values, policy, "
	    "approved_at) VALUES (?, 'sha256', ?, ?, ?)",
	    err);
	if (st == NULL)
		goto out;
	sqlite3_bind_text(st, 1, hc->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, values, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, policy, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, hc->approved_at);
	rc = ca_db_step_done(db, st, "add the host configuration",
	    "a host configuration with this id or these PCR values is approved already", err);
out:
	sqlite3_finalize(st);
	free(values);
	json_decref(o);
	return rc;
}

/* Fills hc from a row (id, pcr_values, policy, approved_at). */
static int
ca_db_host_config_row(sqlite3_stmt *st, struct ca_host_config *hc)
{
	const char *values = (const char *)sqlite3_column_text(st, 1);
	char policy[2 * TPM_DIGEST_LEN + 1];
	json_t *o;
	int ret;

	memset(hc, 0, sizeof(*hc));
	ca_db_text(st, 0, hc->id, sizeof(hc->id));
	ca_db_text(st, 2, policy, sizeof(policy));
	hc->approved_at = sqlite3_column_int64(st, 3);
	o = values != NULL ? json_loads(values, 0, NULL) : NULL;
	ret = o != NULL && pcrpolicy_values_parse(o, &hc->mask, hc->values) == 0 &&
	              hex_decode(policy, hc->policy, TPM_DIGEST_LEN) == 0
	          ? 0
	          : -1;
	json_decref(o);
	return ret;
}

int
ca_db_host_config_find(struct ca_db *db, const uint8_t policy[TPM_DIGEST_LEN],
    struct ca_host_config *hc, struct err *err)
{
	char hex[2 * TPM_DIGEST_LEN + 1];
	sqlite3_stmt *st;
	int ret = -1, rc;

	memset(hc, 0, sizeof(*hc));
	hex_encode(policy, TPM_DIGEST_LEN, hex);
	st = ca_db_prepare(db,
	    "SELECT id, pcr_values, policy, approved_at FROM host_configs "
	    "WHERE policy = ?",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (ca_db_host_config_row(st, hc) == 0)
			ret = 0;
		else
			err_set(err, ERR_CORRUPT, "host configuration record is malformed");
	} else if (rc == SQLITE_DONE) {
		err_set(
		    err, ERR_ABSENT, "no host configuration with PolicyPCR %s is approved", hex);
	} else {
		ca_db_fail(db, err, "look up the host configuration");
	}
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_host_config_list(struct ca_db *db, int (*fn)(void *ctx, const struct ca_host_config *hc),
    void *ctx, struct err *err)
{
	struct ca_host_config hc;
	sqlite3_stmt *st;
	int ret = 0, rc;

	st = ca_db_prepare(db,
	    "SELECT id, pcr_values, policy, approved_at FROM host_configs "
	    "ORDER BY approved_at, id",
	    err);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ca_db_host_config_row(st, &hc) == -1)
			continue;
		if (fn(ctx, &hc) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list host configurations");
	sqlite3_finalize(st);
	return ret;
}

/* ---- challenges ---- */

static const char *
ca_db_kind_name(enum ca_kind kind)
{
	return kind == CA_KIND_CK ? "ck" : "ak";
}

/* Open challenges (unused, not expired), all of them or those of one
 * client (client not NULL) and of one EK from it (ek_key not NULL): their
 * count, or -1 with err. */
static int64_t
ca_db_challenges_open(
    struct ca_db *db, int64_t now, const char *client, const char *ek_key, struct err *err)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	st = ca_db_prepare(db,
	    "SELECT COUNT(*) FROM challenges WHERE used = 0 AND expires_at > ?1 "
	    "AND (?2 IS NULL OR client = ?2) AND (?3 IS NULL OR ek_key = ?3)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	if (client != NULL)
		sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	if (ek_key != NULL)
		sqlite3_bind_text(st, 3, ek_key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		ca_db_fail(db, err, "count challenges");
	sqlite3_finalize(st);
	return n;
}

int64_t
ca_db_challenges_purge(struct ca_db *db, int64_t now, struct err *err)
{
	sqlite3_stmt *st = ca_db_prepare(db, "DELETE FROM challenges WHERE expires_at < ?", err);
	int64_t n = -1;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now - CA_DB_CHALLENGE_GRACE);
	if (ca_db_step_done(db, st, "forget expired challenges", NULL, err) == 0)
		n = sqlite3_changes(db->h);
	sqlite3_finalize(st);
	return n;
}

/* Whether one more challenge for c fits the limits: 0, or -1 with err
 * (ERR_REFUSED: the client's or the EK's share is open; ERR_BUSY: all). */
static int
ca_db_challenge_fits(struct ca_db *db, const struct ca_challenge_rec *c,
    const struct ca_challenge_limits *lim, struct err *err)
{
	int64_t n;

	if ((n = ca_db_challenges_open(db, c->now, c->client, c->ek_key, err)) == -1)
		return -1;
	if (n >= lim->per_ek)
		return err_set(err, ERR_REFUSED,
		    "%lld challenges for this EK are open from %s (at most %lld: "
		    "challenges_per_ek)",
		    (long long)n, c->client, (long long)lim->per_ek);
	if ((n = ca_db_challenges_open(db, c->now, c->client, NULL, err)) == -1)
		return -1;
	if (n >= lim->per_client)
		return err_set(err, ERR_REFUSED,
		    "%lld challenges are open from %s (at most %lld: challenges_per_client)",
		    (long long)n, c->client, (long long)lim->per_client);
	if ((n = ca_db_challenges_open(db, c->now, NULL, NULL, err)) == -1)
		return -1;
	if (n >= lim->total)
		return err_set(err, ERR_BUSY, "%lld challenges are open", (long long)n);
	return 0;
}

int
ca_db_challenge_add(struct ca_db *db, const struct ca_challenge_rec *c,
    const struct ca_challenge_limits *lim, struct err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_challenges_purge(db, c->now, err) == -1 ||
	    ca_db_challenge_fits(db, c, lim, err) == -1)
		goto out;
	st = ca_db_prepare(db,
	    "INSERT INTO challenges (id, kind, request, secret_hash, "
	    "created_at, expires_at, ek_key, client, key_public) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    err);
	if (st == NULL)
		goto out;
	sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ca_db_kind_name(c->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c->request, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, c->hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, c->now);
	sqlite3_bind_int64(st, 6, c->expires_at);
	sqlite3_bind_text(st, 7, c->ek_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, c->client, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, c->key_public, (int)c->key_public_len, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "record the challenge", NULL, err);
out:
	sqlite3_finalize(st);
	if (rc == 0 && ca_db_tx_commit(db, err) == -1)
		rc = -1;
	if (rc == -1)
		ca_db_tx_abort(db);
	return rc;
}

/* A challenge's row as read. */
struct ca_db_challenge {
	bool found, used;
	int64_t expires_at;
	struct ca_challenge_taken t;
};

/* Reads a challenge row (kind, request, secret_hash, expires_at, used):
 * 0 with c filled (c->found false when there is none), or -1 with err. */
static int
ca_db_challenge_read(struct ca_db *db, const char *id, struct ca_db_challenge *c, struct err *err)
{
	sqlite3_stmt *st;
	const char *k, *req;
	int ret = -1, step;

	memset(c, 0, sizeof(*c));
	st = ca_db_prepare(db,
	    "SELECT kind, request, secret_hash, expires_at, used, ek_key, key_public "
	    "FROM challenges WHERE id = ?",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (step != SQLITE_ROW) {
		ca_db_fail(db, err, "look up the challenge");
		goto out;
	}
	k = (const char *)sqlite3_column_text(st, 0);
	req = (const char *)sqlite3_column_text(st, 1);
	if (k == NULL || req == NULL || sqlite3_column_bytes(st, 2) != 32 ||
	    sqlite3_column_bytes(st, 6) > (int)sizeof(c->t.key_public)) {
		err_set(err, ERR_CORRUPT, "challenge record is malformed");
		goto out;
	}
	c->found = true;
	c->used = sqlite3_column_int(st, 4) != 0;
	c->expires_at = sqlite3_column_int64(st, 3);
	if (!c->used && (c->t.request = strdup(req)) == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	c->t.kind = strcmp(k, "ck") == 0 ? CA_KIND_CK : CA_KIND_AK;
	memcpy(c->t.hash, sqlite3_column_blob(st, 2), 32);
	ca_db_text(st, 5, c->t.ek_key, sizeof(c->t.ek_key));
	c->t.key_public_len = (size_t)sqlite3_column_bytes(st, 6);
	if (c->t.key_public_len > 0)
		memcpy(c->t.key_public, sqlite3_column_blob(st, 6), c->t.key_public_len);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_challenge_take(
    struct ca_db *db, const char *id, int64_t now, struct ca_challenge_taken *out, struct err *err)
{
	struct ca_db_challenge c = {0};
	sqlite3_stmt *st = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_challenge_read(db, id, &c, err) == -1)
		goto fail;
	if (c.found && !c.used) {
		st = ca_db_prepare(db, "UPDATE challenges SET used = 1 WHERE id = ?", err);
		if (st == NULL)
			goto fail;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (ca_db_step_done(db, st, "mark the challenge used", NULL, err) == -1)
			goto fail;
	}
	if (ca_db_tx_commit(db, err) == -1)
		goto fail;
	if (!c.found)
		err_set(err, ERR_ABSENT, "challenge unknown");
	else if (c.used)
		err_set(err, ERR_REFUSED, "challenge used");
	else if (now >= c.expires_at)
		err_set(err, ERR_TIMEOUT, "challenge expired");
	else {
		*out = c.t;
		c.t.request = NULL;
		ret = 0;
	}
	goto out;
fail:
	ca_db_tx_abort(db);
out:
	sqlite3_finalize(st);
	free(c.t.request);
	return ret;
}

/* ---- admitted hosts ---- */

int
ca_db_host_add(struct ca_db *db, const char *name, const char *ek_key, const char *pem,
    const struct approval_pub *approval, int64_t now, struct err *err)
{
	char key_hex[2 * sizeof(approval->x) + 2 * sizeof(approval->y) + 1] = "";
	struct ca_host h;
	struct err inner = {0};
	sqlite3_stmt *st;
	int rc;

	if (ca_db_host_find(db, ek_key, &h, &inner) == 0)
		return err_set(
		    err, ERR_EXISTS, "this EK is admitted already, as host \"%s\"", h.name);
	if (inner.kind != ERR_ABSENT)
		return err_set(err, inner.kind, "%s", inner.msg);
	if (approval != NULL) {
		hex_encode(approval->x, sizeof(approval->x), key_hex);
		hex_encode(approval->y, sizeof(approval->y), key_hex + 2 * sizeof(approval->x));
	}
	st = ca_db_prepare(db,
	    "INSERT INTO hosts (name, ek_key, ek_certificate, added_at, approval_key) "
	    "VALUES (?, ?, ?, ?, ?)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ek_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_text(st, 5, key_hex, -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "admit the host",
	    "a host of this name is admitted already, with another EK", err);
	sqlite3_finalize(st);
	return rc;
}

/* Fills h from a row (name, ek_key, ck_serial, added_at, ek_certificate,
 * approval_key); an approval key that is not 64 bytes in hex is none. */
static void
ca_db_host_row(sqlite3_stmt *st, struct ca_host *h)
{
	const char *key = (const char *)sqlite3_column_text(st, 5);
	uint8_t xy[sizeof(h->approval.x) + sizeof(h->approval.y)];

	memset(h, 0, sizeof(*h));
	ca_db_text(st, 0, h->name, sizeof(h->name));
	ca_db_text(st, 1, h->ek_key, sizeof(h->ek_key));
	ca_db_text(st, 2, h->ck_serial, sizeof(h->ck_serial));
	h->added_at = sqlite3_column_int64(st, 3);
	h->ek_certificate = (const char *)sqlite3_column_text(st, 4);
	if (key != NULL && hex_decode(key, xy, sizeof(xy)) == 0) {
		memcpy(h->approval.x, xy, sizeof(h->approval.x));
		memcpy(h->approval.y, xy + sizeof(h->approval.x), sizeof(h->approval.y));
		h->has_approval = true;
	}
}

#define CA_DB_HOST_COLUMNS "name, ek_key, ck_serial, added_at, ek_certificate, approval_key"

/* The host whose column (name or ek_key) is value: 0, or -1 with err
 * (ERR_ABSENT). */
static int
ca_db_host_by(
    struct ca_db *db, bool by_name, const char *value, struct ca_host *out, struct err *err)
{
	sqlite3_stmt *st;
	int ret = -1, rc;

	memset(out, 0, sizeof(*out));
	st = ca_db_prepare(db,
	    by_name ? "SELECT " CA_DB_HOST_COLUMNS " FROM hosts WHERE name = ?"
	            : "SELECT " CA_DB_HOST_COLUMNS " FROM hosts WHERE ek_key = ?",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ca_db_host_row(st, out);
		out->ek_certificate = NULL;
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		err_set(err, ERR_ABSENT, "no host %s %s is admitted", by_name ? "named" : "with EK",
		    value);
	} else {
		ca_db_fail(db, err, "look up the host");
	}
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_host_find(struct ca_db *db, const char *ek_key, struct ca_host *out, struct err *err)
{
	return ca_db_host_by(db, false, ek_key, out, err);
}

/* Within a transaction: revokes (reason) every CK certificate of the host
 * EK ek_key but keep, and the one serial names (a record of a database
 * whose CKs name no EK); the last revoked into last ("" when none). */
static int
ca_db_ck_revoke_all(struct ca_db *db, const char *ek_key, const char *serial, const char *keep,
    const char *reason, int64_t now, char last[static CERTS_SERIAL_HEX_MAX + 1], struct err *err)
{
	char next[CERTS_SERIAL_HEX_MAX + 1];
	struct ca_status prev;
	sqlite3_stmt *st;
	struct err e = {0};
	int rc;

	last[0] = '\0';
	if (serial[0] != '\0' && strcmp(serial, keep) != 0) {
		rc = ca_db_status(db, serial, &prev, &e);
		if (rc == -1 && e.kind != ERR_ABSENT)
			return err_set(err, e.kind, "%s", e.msg);
		if (rc == 0 && !prev.revoked) {
			if (ca_db_revoke_tx(db, serial, reason, now, false, err) == -1)
				return -1;
			snprintf(last, CERTS_SERIAL_HEX_MAX + 1, "%s", serial);
		}
	}
	for (;;) {
		st = ca_db_prepare(db,
		    "SELECT c.serial FROM ck_eks c WHERE c.ek_key = ?1 AND c.serial <> ?2 AND "
		    "NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) LIMIT 1",
		    err);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, ek_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, keep, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			ca_db_text(st, 0, next, sizeof(next));
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return ca_db_fail(db, err, "look up the host's CK certificates");
		if (ca_db_revoke_tx(db, next, reason, now, false, err) == -1)
			return -1;
		snprintf(last, CERTS_SERIAL_HEX_MAX + 1, "%s", next);
	}
}

static int
ca_db_host_delete(struct ca_db *db, const char *name, struct err *err)
{
	sqlite3_stmt *st = ca_db_prepare(db, "DELETE FROM hosts WHERE name = ?", err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "remove the host", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

int
ca_db_host_remove(struct ca_db *db, const char *name, int64_t now, struct ca_host *was,
    char revoked[static CERTS_SERIAL_HEX_MAX + 1], struct err *err)
{
	revoked[0] = '\0';
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_host_by(db, true, name, was, err) == -1 ||
	    ca_db_ck_revoke_all(
	        db, was->ek_key, was->ck_serial, "", "host removed", now, revoked, err) == -1 ||
	    ca_db_host_delete(db, name, err) == -1 || ca_db_tx_commit(db, err) == -1) {
		ca_db_tx_abort(db);
		revoked[0] = '\0';
		return -1;
	}
	return 0;
}

int
ca_db_host_list(
    struct ca_db *db, int (*fn)(void *ctx, const struct ca_host *h), void *ctx, struct err *err)
{
	struct ca_host h;
	sqlite3_stmt *st;
	int ret = 0, rc;

	st = ca_db_prepare(db, "SELECT " CA_DB_HOST_COLUMNS " FROM hosts ORDER BY name", err);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ca_db_host_row(st, &h);
		if (fn(ctx, &h) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list the hosts");
	sqlite3_finalize(st);
	return ret;
}

int
ca_db_host_check(struct ca_db *db, const char *name, const char *ek_key, bool admit_any,
    bool *unknown, struct err *err)
{
	struct ca_host by_ek, by_name;
	struct err e1 = {0}, e2 = {0};
	int r1 = ca_db_host_by(db, false, ek_key, &by_ek, &e1);
	int r2 = r1 == 0 ? 0 : ca_db_host_by(db, true, name, &by_name, &e2);

	*unknown = false;
	if (r1 == -1 && e1.kind != ERR_ABSENT)
		return err_set(err, e1.kind, "%s", e1.msg);
	if (r1 == 0 && strcmp(by_ek.name, name) == 0)
		return 0;
	if (r1 == 0)
		return err_set(err, ERR_REFUSED,
		    "this host EK is admitted as host \"%s\", not \"%s\"", by_ek.name, name);
	if (r2 == -1 && e2.kind != ERR_ABSENT)
		return err_set(err, e2.kind, "%s", e2.msg);
	if (r2 == 0)
		return err_set(err, ERR_REFUSED,
		    "host name \"%s\" belongs to another EK (key SHA-256 %s)", name,
		    by_name.ek_key);
	if (!admit_any)
		return err_set(
		    err, ERR_REFUSED, "this host EK (key SHA-256 %s) is not admitted", ek_key);
	*unknown = true;
	return 0;
}

/* Within ca_db_ck_record's transaction: every earlier CK certificate of
 * the host's EK revoked as superseded (unless revoked already), whatever
 * name it was issued under; the new one recorded with its EK and as the
 * host's last. */
static int
ca_db_ck_supersede(struct ca_db *db, const char *name, const char *ek_key, const char *serial,
    int64_t now, char superseded[static CERTS_SERIAL_HEX_MAX + 1], struct err *err)
{
	struct ca_host h;
	sqlite3_stmt *st;
	int rc;

	superseded[0] = '\0';
	if (ca_db_host_by(db, true, name, &h, err) == -1 ||
	    ca_db_ck_revoke_all(
	        db, ek_key, h.ck_serial, serial, "superseded", now, superseded, err) == -1)
		return -1;
	st = ca_db_prepare(db, "INSERT INTO ck_eks (serial, ek_key) VALUES (?, ?)", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ek_key, -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "record the CK's host EK", NULL, err);
	sqlite3_finalize(st);
	if (rc == -1)
		return -1;
	st = ca_db_prepare(db, "UPDATE hosts SET ck_serial = ? WHERE name = ?", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "record the host's CK", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

/* The host EK ck_serial was issued for (into ek_key; "" when its record,
 * older than ck_eks, names none): 0, or -1 with err. */
static int
ca_db_ck_ek(struct ca_db *db, const char *serial, char ek_key[static 65], struct err *err)
{
	sqlite3_stmt *st = ca_db_prepare(db, "SELECT ek_key FROM ck_eks WHERE serial = ?", err);
	int rc;

	ek_key[0] = '\0';
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ca_db_text(st, 0, ek_key, 65);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return ca_db_fail(db, err, "look up the CK's host EK");
	return 0;
}

int
ca_db_ck_usable(struct ca_db *db, const struct ca_issued *ck, int64_t now, struct err *err)
{
	struct ca_host h;
	char ek_key[65];
	struct err e = {0};

	if (strcmp(ck->kind, "ck") != 0)
		return err_set(err, ERR_REFUSED, "certificate %s is not a CK's", ck->serial);
	if (ck->revoked)
		return err_set(err, ERR_REFUSED, "CK certificate %s is revoked", ck->serial);
	if (now > ck->not_after)
		return err_set(err, ERR_REFUSED, "CK certificate %s has expired", ck->serial);
	if (ca_db_host_by(db, true, ck->subject, &h, &e) == -1) {
		if (e.kind != ERR_ABSENT)
			return err_set(err, e.kind, "%s", e.msg);
		return err_set(err, ERR_REFUSED,
		    "CK certificate %s names host \"%s\", which is no longer admitted", ck->serial,
		    ck->subject);
	}
	if (ca_db_ck_ek(db, ck->serial, ek_key, err) == -1)
		return -1;
	if (ek_key[0] != '\0' && strcmp(ek_key, h.ek_key) != 0)
		return err_set(err, ERR_REFUSED,
		    "CK certificate %s was issued for another EK than host \"%s\" is admitted with",
		    ck->serial, ck->subject);
	if (strcmp(h.ck_serial, ck->serial) != 0)
		return err_set(err, ERR_REFUSED,
		    "CK certificate %s is not host \"%s\"'s current CK certificate", ck->serial,
		    ck->subject);
	return 0;
}

int
ca_db_ck_record(struct ca_db *db, const struct ca_issued *rec, const char *pem, const char *ek_key,
    bool admit, char superseded[static CERTS_SERIAL_HEX_MAX + 1], struct err *err)
{
	bool unknown;

	superseded[0] = '\0';
	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	if (ca_db_host_check(db, rec->subject, ek_key, admit, &unknown, err) == -1 ||
	    (unknown &&
	        ca_db_host_add(db, rec->subject, ek_key, "", NULL, rec->issued_at, err) == -1) ||
	    ca_db_issued_insert(db, rec, pem, err) == -1 || ca_db_lineage_add(db, rec, err) == -1 ||
	    ca_db_ck_supersede(
	        db, rec->subject, ek_key, rec->serial, rec->issued_at, superseded, err) == -1 ||
	    ca_db_tx_commit(db, err) == -1) {
		ca_db_tx_abort(db);
		superseded[0] = '\0';
		return -1;
	}
	return 0;
}

/* ---- vEK evidence nonces ---- */

int
ca_db_nonce_take(struct ca_db *db, const uint8_t hash[static 32], int64_t expires_at, int64_t now,
    struct err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	st = ca_db_prepare(db, "DELETE FROM ek_nonces WHERE expires_at < ?", err);
	if (st == NULL)
		goto out;
	sqlite3_bind_int64(st, 1, now - CA_DB_NONCE_GRACE);
	if (ca_db_step_done(db, st, "forget expired nonces", NULL, err) == -1)
		goto out;
	sqlite3_finalize(st);
	st = ca_db_prepare(db,
	    "INSERT INTO ek_nonces (hash, created_at, expires_at, used) VALUES (?, ?, ?, 1)", err);
	if (st == NULL)
		goto out;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, expires_at);
	rc = ca_db_step_done(db, st, "record the nonce redeemed", "", err);
	if (rc == -1 && err != NULL && err->kind == ERR_EXISTS)
		err_set(err, ERR_REFUSED, "the nonce was used before: the evidence is replayed");
out:
	sqlite3_finalize(st);
	if (rc == 0 && ca_db_tx_commit(db, err) == -1)
		rc = -1;
	if (rc == -1)
		ca_db_tx_abort(db);
	return rc;
}

/* ---- vTPM identities ---- */

/* Compares a recorded identity (a row: sealed_name, instance_uuid,
 * key_type, vek) with id: 1 the same, 0 unrelated, -1 a conflict (err). */
static int
ca_db_identity_compare(sqlite3_stmt *st, const struct ca_vtpm_identity *id, struct err *err)
{
	char name[sizeof(id->sealed_name)], uuid[CERTS_UUID_LEN + 1], type[16], vek[65];
	bool same_name, same_uuid, same_type, same_vek;

	ca_db_text(st, 0, name, sizeof(name));
	ca_db_text(st, 1, uuid, sizeof(uuid));
	ca_db_text(st, 2, type, sizeof(type));
	ca_db_text(st, 3, vek, sizeof(vek));
	same_name = strcmp(name, id->sealed_name) == 0;
	same_uuid = strcmp(uuid, id->instance_uuid) == 0;
	same_type = strcmp(type, id->key_type) == 0;
	same_vek = strcmp(vek, id->vek) == 0;
	if (same_name && same_uuid && same_type && same_vek)
		return 1;
	if (same_name && !same_uuid)
		return err_set(err, ERR_REFUSED,
		    "the sealed object %.16s... belongs to vTPM %s, not %s", name, uuid,
		    id->instance_uuid);
	if (same_uuid && !same_name)
		return err_set(err, ERR_REFUSED,
		    "vTPM %s is bound to another sealed object (%.16s...)", uuid, name);
	if (same_vek)
		return err_set(
		    err, ERR_REFUSED, "this vEK is certified already for vTPM %s (%s)", uuid, type);
	if (same_name && same_type)
		return err_set(err, ERR_REFUSED,
		    "vTPM %s has another %s vEK (%.16s...): one sealed object vouches for one "
		    "vEK of each type",
		    uuid, type, vek);
	return 0;
}

/* Looks for id or a conflict with it: 1 recorded, 0 neither, -1 with err
 * (ERR_REFUSED: a conflict). */
static int
ca_db_identity_find(struct ca_db *db, const struct ca_vtpm_identity *id, struct err *err)
{
	sqlite3_stmt *st;
	int found = 0, rc;

	st = ca_db_prepare(db,
	    "SELECT sealed_name, instance_uuid, key_type, vek FROM vtpm_identities "
	    "WHERE sealed_name = ?1 OR instance_uuid = ?2 OR vek = ?3",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id->sealed_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id->instance_uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id->vek, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int c = ca_db_identity_compare(st, id, err);

		if (c == -1) {
			found = -1;
			break;
		}
		if (c == 1)
			found = 1;
	}
	if (found != -1 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		found = ca_db_fail(db, err, "look up vTPM identities");
	sqlite3_finalize(st);
	return found;
}

static const char *const ca_db_vek_types[EVIDENCE_VEK_TYPES] = {
    [EVIDENCE_VEK_RSA_2048] = "rsa2048", [EVIDENCE_VEK_ECC_P256] = "ecc-p256"};

/* The recorded set rec against id's: 0 the same, -1 ERR_REFUSED naming
 * the first type where they differ. */
static int
ca_db_vek_set_compare(char rec[EVIDENCE_VEK_TYPES][2 * CERTS_DIGEST_LEN + 1],
    const struct ca_vtpm_identity *id, struct err *err)
{
	char has[64] = "";

	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++)
		if (rec[t][0] != '\0')
			snprintf(has + strlen(has), sizeof(has) - strlen(has), "%s%s",
			    has[0] != '\0' ? " and " : "", ca_db_vek_types[t]);
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++)
		if (rec[t][0] == '\0' && id->vek_set[t][0] != '\0')
			return err_set(err, ERR_REFUSED,
			    "vTPM %s has no %s vEK: its vEKs (%s) were recorded at its first EK "
			    "certificate request, and its sealed object vouches for no vEK added "
			    "later",
			    id->instance_uuid, ca_db_vek_types[t], has);
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		if (strcmp(rec[t], id->vek_set[t]) == 0)
			continue;
		return err_set(err, ERR_REFUSED,
		    "vTPM %s has another set of vEKs: its %s vEK (%.16s...) was recorded at its "
		    "first EK certificate request (%s), and this request names %s",
		    id->instance_uuid, ca_db_vek_types[t], rec[t], has,
		    id->vek_set[t][0] != '\0' ? "another" : "none");
	}
	return 0;
}

/* Within the caller's transaction: records id's vEK set for its sealed
 * object, or finds the same set recorded. 0, or -1 with err (ERR_REFUSED:
 * another set is recorded). */
static int
ca_db_vek_set_bind(
    struct ca_db *db, const struct ca_vtpm_identity *id, int64_t now, struct err *err)
{
	char rec[EVIDENCE_VEK_TYPES][2 * CERTS_DIGEST_LEN + 1];
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(
	    db, "SELECT rsa2048, ecc_p256 FROM vtpm_vek_sets WHERE sealed_name = ?", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id->sealed_name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ca_db_text(st, 0, rec[EVIDENCE_VEK_RSA_2048], sizeof(rec[0]));
		ca_db_text(st, 1, rec[EVIDENCE_VEK_ECC_P256], sizeof(rec[0]));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return ca_db_vek_set_compare(rec, id, err);
	if (rc != SQLITE_DONE)
		return ca_db_fail(db, err, "look up the vTPM's vEK set");
	st = ca_db_prepare(db,
	    "INSERT INTO vtpm_vek_sets (sealed_name, rsa2048, ecc_p256, recorded_at) "
	    "VALUES (?, ?, ?, ?)",
	    err);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id->sealed_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id->vek_set[EVIDENCE_VEK_RSA_2048], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id->vek_set[EVIDENCE_VEK_ECC_P256], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	rc = ca_db_step_done(db, st, "record the vTPM's vEK set", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

int
ca_db_vtpm_bind(struct ca_db *db, const struct ca_vtpm_identity *id, int64_t now, struct err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, found;

	if (ca_db_tx_begin(db, err) == -1)
		return -1;
	found = ca_db_identity_find(db, id, err);
	if (found == -1 || ca_db_vek_set_bind(db, id, now, err) == -1)
		goto out;
	if (found == 0) {
		st = ca_db_prepare(db,
		    "INSERT INTO vtpm_identities (sealed_name, instance_uuid, key_type, vek, "
		    "bound_at) VALUES (?, ?, ?, ?, ?)",
		    err);
		if (st == NULL)
			goto out;
		sqlite3_bind_text(st, 1, id->sealed_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id->instance_uuid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, id->key_type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, id->vek, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, now);
		if (ca_db_step_done(db, st, "record the vTPM's identity", NULL, err) == -1)
			goto out;
	}
	rc = ca_db_tx_commit(db, err);
out:
	sqlite3_finalize(st);
	if (rc == -1)
		ca_db_tx_abort(db);
	return rc;
}

/* ---- audit trail ---- */

int
ca_db_audit(struct ca_db *db, int64_t now, const char *action, const char *outcome,
    const char *detail, struct err *err)
{
	sqlite3_stmt *st;
	int rc;

	st = ca_db_prepare(
	    db, "INSERT INTO audit (time, action, outcome, detail) VALUES (?, ?, ?, ?)", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, detail != NULL ? detail : "", -1, SQLITE_STATIC);
	rc = ca_db_step_done(db, st, "write the audit trail", NULL, err);
	sqlite3_finalize(st);
	return rc;
}

int
ca_db_audit_list(
    struct ca_db *db, int (*fn)(void *ctx, const struct ca_audit *a), void *ctx, struct err *err)
{
	struct ca_audit a;
	sqlite3_stmt *st;
	int ret = 0, rc;

	st = ca_db_prepare(
	    db, "SELECT id, time, action, outcome, detail FROM audit ORDER BY id", err);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&a, 0, sizeof(a));
		a.id = sqlite3_column_int64(st, 0);
		a.time = sqlite3_column_int64(st, 1);
		ca_db_text(st, 2, a.action, sizeof(a.action));
		ca_db_text(st, 3, a.outcome, sizeof(a.outcome));
		ca_db_text(st, 4, a.detail, sizeof(a.detail));
		if (fn(ctx, &a) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = ca_db_fail(db, err, "list the audit trail");
	sqlite3_finalize(st);
	return ret;
}

/* The open (unanswered, unexpired) challenges, and the vEK evidence
 * nonces redeemed and kept against replay (unexpired), at now, for GET
 * /metrics: 0, or -1 with err. */
int
ca_db_open_counts(
    struct ca_db *db, int64_t now, int64_t *challenges, int64_t *nonces, struct err *err)
{
	sqlite3_stmt *st;

	*nonces = -1;
	if ((*challenges = ca_db_challenges_open(db, now, NULL, NULL, err)) == -1)
		return -1;
	st = ca_db_prepare(db, "SELECT COUNT(*) FROM ek_nonces WHERE expires_at > ?", err);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) == SQLITE_ROW)
		*nonces = sqlite3_column_int64(st, 0);
	else
		ca_db_fail(db, err, "count nonces");
	sqlite3_finalize(st);
	return *nonces == -1 ? -1 : 0;
}
