/*
 * test_ca_db.c: vtpm-ca's records (src/ca/ca_db.c), each
 * test with a database in a fresh mkdtemp directory: the schema and its
 * version, issued certificates and revocations, the trust store, host
 * configurations, challenges (single use, expiry, the cap on open ones,
 * the limits per client address and per EK, expired ones purged), admitted
 * hosts (one name, one EK; a CK rotated revokes the one before) and the
 * audit trail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "ca/ca.h"

#define NOW INT64_C(1700000000)

struct fixture {
	char dir[64];
	char path[128];
	struct ca_db *db;
	struct err err; /* what the last call that failed said */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err err;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ca_db.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/ca.db", f->dir);
	f->db = ca_db_open(f->path, true, &err);
	if (f->db == NULL)
		fail_msg("ca_db_open: %s", err.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	ca_db_close(f->db);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- schema ---- */

static int
count_issued(void *ctx, const struct ca_issued *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static int
count_trust(void *ctx, const struct ca_trust *t)
{
	(void)t;
	(*(int *)ctx)++;
	return 0;
}

static int
count_configs(void *ctx, const struct ca_host_config *hc)
{
	(void)hc;
	(*(int *)ctx)++;
	return 0;
}

static int
count_audit(void *ctx, const struct ca_audit *a)
{
	(void)a;
	(*(int *)ctx)++;
	return 0;
}

static void
test_schema_created(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	int n = 0;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ca_db_issued_list(f->db, count_issued, &n, &f->err), 0);
	assert_int_equal(ca_db_trust_list(f->db, -1, count_trust, &n, &f->err), 0);
	assert_int_equal(ca_db_host_config_list(f->db, count_configs, &n, &f->err), 0);
	assert_int_equal(ca_db_audit_list(f->db, count_audit, &n, &f->err), 0);
	assert_int_equal(n, 0);
}

static void
test_create_refuses_existing(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	assert_null(ca_db_open(f->path, true, &err));
	assert_int_equal(err.kind, ERR_EXISTS);
	assert_non_null(strstr(err.msg, "exists already"));
	/* and the existing database is untouched */
	assert_int_equal(access(f->path, F_OK), 0);
	assert_int_equal(ca_db_audit(f->db, NOW, "a", "done", "still here", &f->err), 0);
}

static void
test_reopen(void **state)
{
	struct fixture *f = *state;
	struct ca_status st;
	struct ca_db *db;
	struct err err;

	assert_int_equal(ca_db_revoke(f->db, "abc", "r", NOW, true, &f->err), 0);
	ca_db_close(f->db);
	f->db = NULL;
	db = ca_db_open(f->path, false, &err);
	if (db == NULL)
		fail_msg("reopen: %s", err.msg);
	f->db = db;
	assert_int_equal(ca_db_status(db, "abc", &st, &f->err), 0);
	assert_true(st.revoked);
}

static void
test_open_missing_or_foreign(void **state)
{
	struct fixture *f = *state;
	char path[160];
	struct err err = {0};
	FILE *fp;

	snprintf(path, sizeof(path), "%s/none.db", f->dir);
	assert_null(ca_db_open(path, false, &err));
	assert_int_equal(err.kind, ERR_ABSENT);
	assert_non_null(strstr(err.msg, "no such database"));
	assert_int_equal(access(path, F_OK), -1); /* not created by a mere open */
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("not a database at all, but long enough to look like a file header.......", fp);
	fclose(fp);
	assert_null(ca_db_open(path, false, &err));
	assert_int_equal(err.kind, ERR_FAILED); /* SQLite's "file is not a database" */
	unlink(path);
}

static void
test_future_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	sqlite3 *h = NULL;

	/* As a newer vtpm-ca would leave the file. */
	ca_db_close(f->db);
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(h, "UPDATE schema_version SET version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	f->db = ca_db_open(f->path, false, &err);
	assert_null(f->db);
	assert_int_equal(err.kind, ERR_INVALID);
	assert_non_null(strstr(err.msg, "schema version 99"));
	assert_non_null(strstr(err.msg, "newer"));
}

/* ---- issued certificates and revocations ---- */

static struct ca_issued
issued(const char *serial, const char *kind)
{
	struct ca_issued r = {0};

	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	snprintf(
	    r.role, sizeof(r.role), "%s", strcmp(kind, "ek") == 0 ? "virtualization" : "privacy");
	snprintf(r.kind, sizeof(r.kind), "%s", kind);
	snprintf(r.subject, sizeof(r.subject), "subject of %s", serial);
	snprintf(r.detail, sizeof(r.detail), "detail");
	r.issued_at = NOW;
	r.not_after = NOW + 100;
	return r;
}

struct collected {
	int n;
	struct ca_issued rec[4];
	char pem[4][64];
};

static int
collect_issued(void *ctx, const struct ca_issued *r)
{
	struct collected *c = ctx;

	if (c->n < 4) {
		c->rec[c->n] = *r;
		snprintf(c->pem[c->n], sizeof(c->pem[c->n]), "%s", r->certificate);
	}
	c->n++;
	return 0;
}

static void
test_issued_list_and_revoke(void **state)
{
	struct fixture *f = *state;
	struct ca_issued a = issued("1a", "ck"), b = issued("2b", "ek");
	struct collected c = {0};
	struct ca_status st;

	assert_int_equal(ca_db_issued_add(f->db, &a, "PEM-A", &f->err), 0);
	assert_int_equal(ca_db_issued_add(f->db, &b, "PEM-B", &f->err), 0);
	assert_int_equal(ca_db_issued_add(f->db, &a, "PEM-A2", &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_non_null(strstr(f->err.msg, "record the issued certificate: UNIQUE constraint"));
	/* another constraint is no duplicate: SQLite's message says which */
	snprintf(b.role, sizeof(b.role), "root");
	snprintf(b.serial, sizeof(b.serial), "3c");
	assert_int_equal(ca_db_issued_add(f->db, &b, "PEM-C", &f->err), -1);
	assert_int_equal(f->err.kind, ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "CHECK constraint failed"));
	assert_int_equal(ca_db_issued_list(f->db, collect_issued, &c, &f->err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.rec[0].serial, "1a");
	assert_string_equal(c.rec[0].kind, "ck");
	assert_string_equal(c.pem[0], "PEM-A");
	assert_string_equal(c.rec[1].role, "virtualization");
	assert_false(c.rec[0].revoked);

	/* issued, not revoked */
	assert_int_equal(ca_db_status(f->db, "1a", &st, &f->err), 0);
	assert_true(st.issued_here);
	assert_false(st.revoked);
	/* revoked once, with its reason */
	assert_int_equal(ca_db_revoke(f->db, "1a", "key compromise", NOW + 5, false, &f->err), 0);
	assert_int_equal(ca_db_revoke(f->db, "1a", "again", NOW + 6, false, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_string_equal(f->err.msg, "serial 1a is revoked already");
	assert_int_equal(ca_db_status(f->db, "1a", &st, &f->err), 0);
	assert_true(st.revoked);
	assert_int_equal(st.revoked_at, NOW + 5);
	assert_string_equal(st.reason, "key compromise");
	c.n = 0;
	assert_int_equal(ca_db_issued_list(f->db, collect_issued, &c, &f->err), 0);
	assert_true(c.rec[0].revoked);
	assert_false(c.rec[1].revoked);
	assert_string_equal(c.rec[0].reason, "key compromise");
}

static void
test_revoke_unknown_and_foreign(void **state)
{
	struct fixture *f = *state;
	struct ca_status st;

	assert_int_equal(ca_db_status(f->db, "ff", &st, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_int_equal(ca_db_revoke(f->db, "ff", "", NOW, false, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_int_equal(ca_db_status(f->db, "ff", &st, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_int_equal(ca_db_revoke(f->db, "ff", "host EK", NOW, true, &f->err), 0);
	assert_int_equal(ca_db_status(f->db, "ff", &st, &f->err), 0);
	assert_false(st.issued_here);
	assert_true(st.revoked);
}

/* ---- trust store ---- */

struct trust_seen {
	int n;
	enum ca_trust_kind kind[4];
	char name[4][32], data[4][32];
};

static int
collect_trust(void *ctx, const struct ca_trust *t)
{
	struct trust_seen *s = ctx;

	if (s->n < 4) {
		s->kind[s->n] = t->kind;
		snprintf(s->name[s->n], sizeof(s->name[0]), "%s", t->name);
		snprintf(s->data[s->n], sizeof(s->data[0]), "%s", t->data);
	}
	s->n++;
	return 0;
}

static void
test_trust(void **state)
{
	struct fixture *f = *state;
	struct trust_seen s = {0};

	assert_int_equal(
	    ca_db_trust_add(f->db, CA_TRUST_MANUFACTURER, "mfr", "fp1", "PEM1", NOW, &f->err), 0);
	assert_int_equal(
	    ca_db_trust_add(f->db, CA_TRUST_APPROVAL_KEY, "key", "fp2", "X,Y", NOW, &f->err), 0);
	/* the same fingerprint under another kind is another entry */
	assert_int_equal(
	    ca_db_trust_add(f->db, CA_TRUST_PRIVACY, "p", "fp1", "PEM1", NOW, &f->err), 0);
	assert_int_equal(
	    ca_db_trust_add(f->db, CA_TRUST_MANUFACTURER, "again", "fp1", "PEM1", NOW, &f->err),
	    -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_string_equal(f->err.msg, "this manufacturer is trusted already");
	assert_int_equal(
	    ca_db_trust_list(f->db, CA_TRUST_MANUFACTURER, collect_trust, &s, &f->err), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.name[0], "mfr");
	assert_string_equal(s.data[0], "PEM1");
	s.n = 0;
	assert_int_equal(ca_db_trust_list(f->db, -1, collect_trust, &s, &f->err), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.kind[1], CA_TRUST_APPROVAL_KEY);
	s.n = 0;
	assert_int_equal(
	    ca_db_trust_list(f->db, CA_TRUST_VIRTUALIZATION, collect_trust, &s, &f->err), 0);
	assert_int_equal(s.n, 0);
}

static void
test_trust_names(void **state)
{
	enum ca_trust_kind k;

	(void)state;
	for (int i = 0; i < CA_TRUST_KINDS; i++) {
		assert_int_equal(ca_trust_parse(ca_trust_name((enum ca_trust_kind)i), &k), 0);
		assert_int_equal(k, i);
	}
	assert_int_equal(ca_trust_parse("root", &k), -1);
	assert_string_equal(ca_trust_name(CA_TRUST_APPROVAL_KEY), "approval-key");
}

/* ---- host configurations ---- */

static struct ca_host_config
config(const char *id, uint8_t fill, uint8_t policy_byte)
{
	struct ca_host_config hc = {0};

	snprintf(hc.id, sizeof(hc.id), "%s", id);
	hc.mask = 1u << 0 | 1u << 7;
	memset(hc.values[0], fill, TPM_DIGEST_LEN);
	memset(hc.values[7], fill + 1, TPM_DIGEST_LEN);
	memset(hc.policy, policy_byte, TPM_DIGEST_LEN);
	hc.approved_at = NOW;
	return hc;
}

static void
test_host_configs(void **state)
{
	struct fixture *f = *state;
	struct ca_host_config a = config("host-a", 0x11, 0xaa), b = config("host-b", 0x22, 0xbb);
	struct ca_host_config got, dup_id = config("host-a", 0x33, 0xcc),
	                           dup_policy = config("host-c", 0x44, 0xaa);
	uint8_t other[TPM_DIGEST_LEN];
	int n = 0;

	assert_int_equal(ca_db_host_config_add(f->db, &a, &f->err), 0);
	assert_int_equal(ca_db_host_config_add(f->db, &b, &f->err), 0);
	assert_int_equal(ca_db_host_config_add(f->db, &dup_id, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_int_equal(ca_db_host_config_add(f->db, &dup_policy, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_non_null(strstr(f->err.msg, "approved already"));
	assert_int_equal(ca_db_host_config_find(f->db, a.policy, &got, &f->err), 0);
	assert_string_equal(got.id, "host-a");
	assert_int_equal(got.mask, a.mask);
	assert_memory_equal(got.values[0], a.values[0], TPM_DIGEST_LEN);
	assert_memory_equal(got.values[7], a.values[7], TPM_DIGEST_LEN);
	assert_memory_equal(got.policy, a.policy, TPM_DIGEST_LEN);
	memset(other, 0xdd, sizeof(other));
	assert_int_equal(ca_db_host_config_find(f->db, other, &got, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_int_equal(ca_db_host_config_list(f->db, count_configs, &n, &f->err), 0);
	assert_int_equal(n, 2);
}

/* ---- challenges ---- */

static const struct ca_challenge_limits LIMITS = {CA_PENDING_MAX, 64, 4};

/* A challenge from client for EK ek_key, with the default limits. */
static int
add_from(struct fixture *f, const char *id, enum ca_kind kind, const char *request,
    const uint8_t h[32], int64_t now, int64_t expires_at, const char *client, const char *ek_key)
{
	struct ca_challenge_rec c = {.id = id,
	    .kind = kind,
	    .request = request,
	    .hash = h,
	    .ek_key = ek_key,
	    .client = client,
	    .now = now,
	    .expires_at = expires_at,
	    .key_public = (const uint8_t *)"KEY",
	    .key_public_len = 3};

	return ca_db_challenge_add(f->db, &c, &LIMITS, &f->err);
}

static int
add(struct fixture *f, const char *id, enum ca_kind kind, const char *request, const uint8_t h[32],
    int64_t now, int64_t expires_at)
{
	char client[32];
	static int n;

	/* each from a client and an EK of its own: the cap on all is what counts */
	snprintf(client, sizeof(client), "192.0.2.%d", ++n % 250);
	return add_from(f, id, kind, request, h, now, expires_at, client, client);
}

static void
hash_of(uint8_t h[32], uint8_t b)
{
	memset(h, b, 32);
}

static void
test_challenge_single_use(void **state)
{
	struct fixture *f = *state;
	struct ca_challenge_taken t;
	uint8_t h[32];

	hash_of(h, 0x5a);
	assert_int_equal(add(f, "c1", CA_KIND_AK, "{\"kind\":\"ak\"}", h, NOW, NOW + 300), 0);
	assert_int_equal(add(f, "c1", CA_KIND_AK, "{}", h, NOW, NOW + 300), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_int_equal(ca_db_challenge_take(f->db, "c1", NOW + 10, &t, &f->err), 0);
	assert_int_equal(t.kind, CA_KIND_AK);
	assert_string_equal(t.request, "{\"kind\":\"ak\"}");
	assert_memory_equal(t.hash, h, 32);
	assert_int_equal(t.key_public_len, 3);
	assert_memory_equal(t.key_public, "KEY", 3);
	free(t.request);
	/* a second answer, right or wrong, finds it used */
	assert_int_equal(ca_db_challenge_take(f->db, "c1", NOW + 11, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_string_equal(f->err.msg, "challenge used");
	assert_null(t.request);
	assert_int_equal(ca_db_challenge_take(f->db, "nope", NOW, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_string_equal(f->err.msg, "challenge unknown");
	assert_null(t.request);
}

static void
test_challenge_expiry(void **state)
{
	struct fixture *f = *state;
	struct ca_challenge_taken t;
	uint8_t h[32];

	hash_of(h, 1);
	assert_int_equal(add(f, "e1", CA_KIND_CK, "{}", h, NOW, NOW + 300), 0);
	assert_int_equal(add(f, "e2", CA_KIND_CK, "{}", h, NOW, NOW + 300), 0);
	/* at its expiry time exactly it is expired, and taking it uses it */
	assert_int_equal(ca_db_challenge_take(f->db, "e1", NOW + 300, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_TIMEOUT);
	assert_string_equal(f->err.msg, "challenge expired");
	assert_null(t.request);
	assert_int_equal(ca_db_challenge_take(f->db, "e1", NOW, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	/* one second before, it is answered */
	assert_int_equal(ca_db_challenge_take(f->db, "e2", NOW + 299, &t, &f->err), 0);
	assert_int_equal(t.kind, CA_KIND_CK);
	free(t.request);
	/* a challenge that expires at once (challenge_expiry_seconds 0) */
	assert_int_equal(add(f, "e3", CA_KIND_CK, "{}", h, NOW, NOW), 0);
	assert_int_equal(ca_db_challenge_take(f->db, "e3", NOW, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_TIMEOUT);
}

static void
test_challenge_old_forgotten(void **state)
{
	struct fixture *f = *state;
	struct ca_challenge_taken t;
	uint8_t h[32];

	hash_of(h, 2);
	assert_int_equal(add(f, "old", CA_KIND_CK, "{}", h, NOW - 3 * 86400, NOW - 2 * 86400), 0);
	assert_int_equal(ca_db_challenge_take(f->db, "old", NOW, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_TIMEOUT);
	assert_int_equal(add(f, "new", CA_KIND_CK, "{}", h, NOW, NOW + 300), 0);
	assert_int_equal(ca_db_challenge_take(f->db, "old", NOW, &t, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
}

static void
test_challenge_cap(void **state)
{
	struct fixture *f = *state;
	uint8_t h[32];
	char sql[256];

	hash_of(h, 3);
	sqlite3 *raw = NULL;

	/* CA_PENDING_MAX open challenges, written directly by a second
	 * connection to the same file */
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < CA_PENDING_MAX; i++) {
		snprintf(sql, sizeof(sql),
		    "INSERT INTO challenges (id, kind, request, secret_hash, created_at, "
		    "expires_at) "
		    "VALUES ('p%d', 'ck', '{}', zeroblob(32), %lld, %lld)",
		    i, (long long)NOW, (long long)NOW + 300);
		assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	assert_int_equal(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_int_equal(add(f, "one-more", CA_KIND_CK, "{}", h, NOW, NOW + 300), -1);
	assert_int_equal(f->err.kind, ERR_BUSY);
	assert_string_equal(f->err.msg, "10000 challenges are open");
	/* once they have expired, new ones are taken again */
	assert_int_equal(add(f, "later", CA_KIND_CK, "{}", h, NOW + 300, NOW + 600), 0);
}

/* One client cannot take the others' challenges: a client address holds
 * at most per_client open challenges and per_ek for one EK; another
 * client, or the same EK from another address, still gets its own. */
static void
test_challenge_limits(void **state)
{
	struct fixture *f = *state;
	char id[32], ek[16];
	uint8_t h[32];
	int i;

	hash_of(h, 4);
	for (i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		assert_int_equal(add_from(f, id, CA_KIND_CK, "{}", h, NOW, NOW + 300,
		                     "198.51.100.7", "ek-of-rack1"),
		    0);
	}
	assert_int_equal(
	    add_from(f, "a4", CA_KIND_CK, "{}", h, NOW, NOW + 300, "198.51.100.7", "ek-of-rack1"),
	    -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_string_equal(f->err.msg, "4 challenges for this EK are open from 198.51.100.7 "
	                                "(at most 4: challenges_per_ek)");
	/* the same EK from another address (its own host), another EK from it */
	assert_int_equal(
	    add_from(f, "b0", CA_KIND_CK, "{}", h, NOW, NOW + 300, "192.0.2.1", "ek-of-rack1"), 0);
	for (i = 0; i < 60; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		snprintf(ek, sizeof(ek), "ek%d", i);
		assert_int_equal(
		    add_from(f, id, CA_KIND_AK, "{}", h, NOW, NOW + 300, "198.51.100.7", ek), 0);
	}
	assert_int_equal(
	    add_from(f, "c60", CA_KIND_AK, "{}", h, NOW, NOW + 300, "198.51.100.7", "ek60"), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_string_equal(f->err.msg,
	    "64 challenges are open from 198.51.100.7 (at most 64: challenges_per_client)");
	assert_int_equal(
	    add_from(f, "d0", CA_KIND_AK, "{}", h, NOW, NOW + 300, "192.0.2.1", "ek60"), 0);
	/* used or expired ones count no more */
	assert_int_equal(
	    add_from(f, "c60", CA_KIND_AK, "{}", h, NOW + 300, NOW + 600, "198.51.100.7", "ek60"),
	    0);
}

static int
count_rows(struct fixture *f)
{
	sqlite3 *raw = NULL;
	sqlite3_stmt *st = NULL;
	int n;

	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(raw, "SELECT COUNT(*) FROM challenges", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(raw);
	return n;
}

/* Expired challenges leave no rows behind: purged a grace period after
 * they expired, by every new challenge and by the timer's purge. */
static void
test_challenge_purge(void **state)
{
	struct fixture *f = *state;
	uint8_t h[32];

	hash_of(h, 5);
	assert_int_equal(add(f, "p1", CA_KIND_CK, "{}", h, NOW, NOW + 10), 0);
	assert_int_equal(add(f, "p2", CA_KIND_CK, "{}", h, NOW, NOW + 300), 0);
	assert_int_equal(ca_db_challenges_purge(f->db, NOW + 10 + CA_DB_CHALLENGE_GRACE, NULL), 0);
	assert_int_equal(count_rows(f), 2);
	assert_int_equal(
	    ca_db_challenges_purge(f->db, NOW + 11 + CA_DB_CHALLENGE_GRACE, &f->err), 1);
	assert_int_equal(count_rows(f), 1);
	assert_int_equal(
	    add(f, "p3", CA_KIND_CK, "{}", h, NOW + 301 + CA_DB_CHALLENGE_GRACE, NOW + 900), 0);
	assert_int_equal(count_rows(f), 1); /* p2 went, p3 came */
}

/* ---- admitted hosts ---- */

static const char EK_A[] = "aaaa000000000000000000000000000000000000000000000000000000000001";
static const char EK_B[] = "bbbb000000000000000000000000000000000000000000000000000000000002";

static int
count_hosts(void *ctx, const struct ca_host *h)
{
	(void)h;
	(*(int *)ctx)++;
	return 0;
}

static void
test_hosts_one_name_one_ek(void **state)
{
	struct fixture *f = *state;
	struct ca_host h, was;
	bool unknown;
	int n = 0;

	assert_int_equal(ca_db_host_add(f->db, "rack1", EK_A, "PEM-A", NULL, NOW, &f->err), 0);
	/* the same name twice, one EK under two names */
	assert_int_equal(ca_db_host_add(f->db, "rack1", EK_B, "PEM-B", NULL, NOW, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_non_null(strstr(f->err.msg, "a host of this name is admitted already"));
	assert_int_equal(ca_db_host_add(f->db, "rack2", EK_A, "PEM-A", NULL, NOW, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_EXISTS);
	assert_string_equal(f->err.msg, "this EK is admitted already, as host \"rack1\"");
	assert_int_equal(ca_db_host_list(f->db, count_hosts, &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ca_db_host_find(f->db, EK_A, &h, &f->err), 0);
	assert_string_equal(h.name, "rack1");
	assert_false(h.has_approval);
	/* a host admitted with its approval key keeps it */
	struct approval_pub key;
	memset(key.x, 0xa1, sizeof(key.x));
	memset(key.y, 0x1b, sizeof(key.y));
	assert_int_equal(ca_db_host_add(f->db, "rack9", EK_B, "PEM-B", &key, NOW, &f->err), 0);
	assert_int_equal(ca_db_host_find(f->db, EK_B, &h, &f->err), 0);
	assert_true(h.has_approval);
	assert_memory_equal(h.approval.x, key.x, sizeof(key.x));
	assert_memory_equal(h.approval.y, key.y, sizeof(key.y));
	assert_int_equal(ca_db_host_remove(f->db, "rack9", &was, &f->err), 0);

	/* who may have a CK certificate for which name */
	assert_int_equal(ca_db_host_check(f->db, "rack1", EK_A, false, &unknown, &f->err), 0);
	assert_false(unknown);
	assert_int_equal(ca_db_host_check(f->db, "rack2", EK_A, false, &unknown, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_string_equal(
	    f->err.msg, "this host EK is admitted as host \"rack1\", not \"rack2\"");
	assert_int_equal(ca_db_host_check(f->db, "rack1", EK_B, true, &unknown, &f->err), -1);
	assert_non_null(strstr(f->err.msg, "host name \"rack1\" belongs to another EK"));
	assert_int_equal(ca_db_host_check(f->db, "rack2", EK_B, false, &unknown, &f->err), -1);
	assert_non_null(strstr(f->err.msg, "is not admitted"));
	/* the lab switch: an EK and a name nobody has */
	assert_int_equal(ca_db_host_check(f->db, "rack2", EK_B, true, &unknown, &f->err), 0);
	assert_true(unknown);

	assert_int_equal(ca_db_host_remove(f->db, "rack1", &was, &f->err), 0);
	assert_string_equal(was.ek_key, EK_A);
	assert_int_equal(ca_db_host_remove(f->db, "rack1", &was, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_ABSENT);
	assert_int_equal(ca_db_host_check(f->db, "rack1", EK_A, false, &unknown, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
}

static struct ca_issued
ck_rec(const char *serial, const char *host)
{
	struct ca_issued r = {.issued_at = NOW, .not_after = NOW + 1000};

	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	snprintf(r.role, sizeof(r.role), "privacy");
	snprintf(r.kind, sizeof(r.kind), "ck");
	snprintf(r.subject, sizeof(r.subject), "%s", host);
	return r;
}

/* A host's next CK certificate revokes the one before, superseded, in the
 * same transaction; a refused one records nothing. */
static void
test_ck_rotation(void **state)
{
	struct fixture *f = *state;
	struct ca_issued r1 = ck_rec("c1", "rack1"), r2 = ck_rec("c2", "rack1"),
	                 r3 = ck_rec("c3", "rack2"), r4 = ck_rec("c4", "rack1");
	char old[CERTS_SERIAL_HEX_MAX + 1];
	struct ca_status st;
	struct ca_host h;

	assert_int_equal(ca_db_host_add(f->db, "rack1", EK_A, "PEM-A", NULL, NOW, &f->err), 0);
	assert_int_equal(ca_db_ck_record(f->db, &r1, "PEM1", EK_A, false, old, &f->err), 0);
	assert_string_equal(old, "");
	assert_int_equal(ca_db_ck_record(f->db, &r2, "PEM2", EK_A, false, old, &f->err), 0);
	assert_string_equal(old, "c1");
	assert_int_equal(ca_db_status(f->db, "c1", &st, &f->err), 0);
	assert_true(st.revoked);
	assert_string_equal(st.reason, "superseded");
	assert_int_equal(ca_db_status(f->db, "c2", &st, &f->err), 0);
	assert_false(st.revoked);
	assert_int_equal(ca_db_host_find(f->db, EK_A, &h, &f->err), 0);
	assert_string_equal(h.ck_serial, "c2");

	/* another host's name, an unadmitted EK: nothing recorded */
	assert_int_equal(ca_db_ck_record(f->db, &r3, "PEM3", EK_A, false, old, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_int_equal(ca_db_ck_record(f->db, &r4, "PEM4", EK_B, false, old, &f->err), -1);
	assert_int_equal(f->err.kind, ERR_REFUSED);
	assert_int_equal(ca_db_status(f->db, "c3", &st, &f->err), -1);
	assert_int_equal(ca_db_status(f->db, "c4", &st, &f->err), -1);
	assert_int_equal(ca_db_status(f->db, "c2", &st, &f->err), 0);
	assert_false(st.revoked);

	/* the lab switch admits an EK and a name nobody has, at its first CK */
	assert_int_equal(ca_db_ck_record(f->db, &r3, "PEM3", EK_B, true, old, &f->err), 0);
	assert_int_equal(ca_db_host_find(f->db, EK_B, &h, &f->err), 0);
	assert_string_equal(h.name, "rack2");
	assert_string_equal(h.ck_serial, "c3");
}

/* ---- audit ---- */

struct audit_seen {
	int n;
	struct ca_audit a[3];
};

static int
collect_audit(void *ctx, const struct ca_audit *a)
{
	struct audit_seen *s = ctx;

	if (s->n < 3)
		s->a[s->n] = *a;
	s->n++;
	return 0;
}

static void
test_audit(void **state)
{
	struct fixture *f = *state;
	struct audit_seen s = {0};

	assert_int_equal(
	    ca_db_audit(f->db, NOW, "privacy/challenge", "refused", "wrong", &f->err), 0);
	assert_int_equal(
	    ca_db_audit(f->db, NOW + 1, "privacy/certify", "issued", "serial 1a", &f->err), 0);
	assert_int_equal(ca_db_audit(f->db, NOW + 2, "revoke", "done", NULL, &f->err), 0);
	assert_int_equal(ca_db_audit_list(f->db, collect_audit, &s, &f->err), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.a[0].action, "privacy/challenge");
	assert_string_equal(s.a[0].outcome, "refused");
	assert_string_equal(s.a[1].detail, "serial 1a");
	assert_string_equal(s.a[2].detail, "");
	assert_int_equal(s.a[2].time, NOW + 2);
	assert_true(s.a[0].id < s.a[1].id);
}

/* SQL in a value stays a value. */
static void
test_values_are_bound(void **state)
{
	struct fixture *f = *state;
	struct ca_status st;
	const char *evil = "x'); DROP TABLE revocations; --";

	assert_int_equal(ca_db_revoke(f->db, evil, evil, NOW, true, &f->err), 0);
	assert_int_equal(ca_db_status(f->db, evil, &st, &f->err), 0);
	assert_string_equal(st.reason, evil);
}

/* A CRL lists a revoked certificate until one CRL made after its expiry
 * has listed it (ca_db_crl's expired_before: the caller's now - validity),
 * then drops it; the revocation itself is kept; each CRL has the next
 * number. */
static void
test_crl_prunes_expired(void **state)
{
	struct fixture *f = *state;
	struct ca_issued a = issued("e1", "ak"), b = issued("e2", "ak"), c = issued("e3", "ak");
	struct certs_crl_entry *v = NULL;
	struct ca_status st;
	uint64_t number = 0;
	size_t n = 0;

	a.not_after = NOW + 10;
	b.not_after = NOW + 1000;
	c.not_after = NOW + 1000;
	assert_int_equal(ca_db_issued_add(f->db, &a, "PEM-A", &f->err), 0);
	assert_int_equal(ca_db_issued_add(f->db, &b, "PEM-B", &f->err), 0);
	assert_int_equal(ca_db_issued_add(f->db, &c, "PEM-C", &f->err), 0);
	assert_int_equal(ca_db_revoke(f->db, "e1", "key compromise", NOW + 1, false, &f->err), 0);
	assert_int_equal(ca_db_revoke(f->db, "e2", "key compromise", NOW + 1, false, &f->err), 0);

	/* before e1 expires, and on the first CRL after (now - validity <= its end) */
	for (int64_t before = NOW; before <= NOW + 10; before += 10) {
		assert_int_equal(ca_db_crl(f->db, "privacy", before, &number, &v, &n, &f->err), 0);
		assert_int_equal(n, 2);
		assert_string_equal(v[0].serial, "e1");
		assert_string_equal(v[1].serial, "e2");
		free(v);
	}
	assert_int_equal(number, 2);
	/* every later one: e1 gone, e2 (valid) kept, e3 (not revoked) never there */
	assert_int_equal(ca_db_crl(f->db, "privacy", NOW + 11, &number, &v, &n, &f->err), 0);
	assert_int_equal(number, 3);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "e2");
	free(v);
	assert_int_equal(ca_db_status(f->db, "e1", &st, &f->err), 0);
	assert_true(st.revoked);
	assert_string_equal(st.reason, "key compromise");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_schema_created),
	    T(test_create_refuses_existing),
	    T(test_reopen),
	    T(test_open_missing_or_foreign),
	    T(test_future_schema_refused),
	    T(test_issued_list_and_revoke),
	    T(test_crl_prunes_expired),
	    T(test_revoke_unknown_and_foreign),
	    T(test_trust),
	    cmocka_unit_test(test_trust_names),
	    T(test_host_configs),
	    T(test_challenge_single_use),
	    T(test_challenge_expiry),
	    T(test_challenge_old_forgotten),
	    T(test_challenge_cap),
	    T(test_challenge_limits),
	    T(test_challenge_purge),
	    T(test_hosts_one_name_one_ek),
	    T(test_ck_rotation),
	    T(test_audit),
	    T(test_values_are_bound),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	log_init("test_ca_db", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
