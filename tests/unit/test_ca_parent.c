/*
 * test_ca_parent.c: the parent of `vtpm-ca serve` answering its network
 * child (src/ca/ca_parent.c), with a database and CA keys in a fresh
 * mkdtemp directory and the child's end of a SOCK_SEQPACKET socketpair
 * read here. What a child taken over cannot get round: a CK or AK
 * certificate only right after a challenge of that kind and id was taken
 * with its secret, once; a wrong secret uses the challenge up; an EK
 * certificate only under an approved host configuration, the one the
 * parent finds, with a nonce the parent made, once and in time, for a
 * vTPM identity (sealed object, UUID, one vEK per type) no other vTPM
 * holds, within the vEK set the sealed object's first request named; the
 * lineage a vEK or AK certificate names is written into it and recorded,
 * so that revoking a CK revokes the certificates beneath it (each
 * audited), no AK is issued beneath a revoked CK, and the CRLs list them;
 * requests of a role not served end the child; every challenge,
 * certificate and reported refusal leaves an audit row; an answer the
 * child does not take ends it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>
#include <sqlite3.h>

#include "ca/ca_msg.h"

#define ID0  "00112233445566778899aabbccddeeff"
#define UUID "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23"
/* host-a's EK: the hex of 32 bytes 0xee, as add_challenge and issue_ck_msg send it */
#define EK_A "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

/* P-256's generator: a valid point for a key the parent certifies. */
static const uint8_t GX[32] = {0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6,
    0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39,
    0x45, 0xd8, 0x98, 0xc2, 0x96};
static const uint8_t GY[32] = {0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb,
    0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40,
    0x68, 0x37, 0xbf, 0x51, 0xf5};

struct fixture {
	char dir[64];
	struct ca_parent p;
	int child; /* the child's end */
	struct ca_msg in, reply;
};

/* DIR/name, in one of two buffers used in turn (a key and its
 * certificate in one call). */
static char *
fx_path(const struct fixture *f, const char *name)
{
	static char path[2][160];
	static int turn;

	turn = !turn;
	snprintf(path[turn], sizeof(path[turn]), "%s/%s", f->dir, name);
	return path[turn];
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct certs_validity v = {0, CERTS_NO_EXPIRY};
	struct certs_ca *root;
	struct err err;
	uint8_t *der = NULL;
	size_t len = 0;
	int sv[2];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ca_parent.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->p.db = ca_db_open(fx_path(f, "ca.db"), true, &err);
	if (f->p.db == NULL)
		fail_msg("ca_db_open: %s", err.msg);
	root = certs_ca_create(
	    "root", CERTS_CA_ROOT, NULL, &v, fx_path(f, "root.key"), fx_path(f, "root.pem"), &err);
	if (root == NULL)
		fail_msg("certs_ca_create: %s", err.msg);
	f->p.privacy = certs_ca_create("privacy", CERTS_CA_ISSUING, root, &v,
	    fx_path(f, "privacy.key"), fx_path(f, "privacy.pem"), &err);
	f->p.virt = certs_ca_create("virt", CERTS_CA_ISSUING, root, &v, fx_path(f, "virt.key"),
	    fx_path(f, "virt.pem"), &err);
	assert_non_null(f->p.privacy);
	assert_non_null(f->p.virt);
	assert_int_equal(certs_ca_cert(root, &der, &len), 0);
	memcpy(f->p.root.der, der, len);
	f->p.root.len = len;
	free(der);
	certs_ca_free(root);
	ca_settings_defaults(&f->p.cfg);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", EK_A, "PEM", NULL, 1, NULL), 0);
	assert_non_null(f->p.out = calloc(1, sizeof(*f->p.out)));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ca_parent_reset(&f->p, sv[0]);
	f->child = sv[1];
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	static const char *const files[] = {"ca.db", "ca.db-wal", "ca.db-shm", "root.key",
	    "root.pem", "privacy.key", "privacy.pem", "virt.key", "virt.pem"};

	close(f->p.fd);
	close(f->child);
	ca_db_close(f->p.db);
	certs_ca_free(f->p.privacy);
	certs_ca_free(f->p.virt);
	free(f->p.out);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(fx_path(f, files[i]));
	rmdir(f->dir);
	free(f);
	return 0;
}

/* The parent handles f->in; 0 with its answer (of type want) in f->reply,
 * or -1 (the child would be ended). */
static int
handle(struct fixture *f, enum ca_msg_type want)
{
	struct err err = {0};

	f->in.hdr.len = (uint32_t)(ca_msg_size(&f->in) - sizeof(f->in.hdr));
	assert_int_equal(ca_msg_check(&f->in, ca_msg_size(&f->in), CA_MSG_TO_PARENT, &err), 0);
	if (ca_parent_handle(&f->p, &f->in, &err) == -1) {
		assert_true(err.msg[0] != '\0');
		return -1;
	}
	assert_int_equal(ca_msg_recv(f->child, &f->reply, CA_MSG_TO_CHILD, &err), 1);
	assert_int_equal(f->reply.hdr.type, want);
	return 0;
}

/* A challenge of kind recorded with the SHA-256 of secret; its id. */
static void
add_challenge(struct fixture *f, enum ca_kind kind, const uint8_t secret[32], char id[33])
{
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = kind;
	assert_int_equal(ca_sha256(secret, 32, f->in.u.challenge_add.hash), 0);
	strcpy(f->in.u.challenge_add.subject, kind == CA_KIND_CK ? "host-a" : UUID);
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	memset(f->in.u.challenge_add.ek_key, 0xee, 32);
	f->in.u.challenge_add.len = 2;
	memcpy(f->in.u.challenge_add.request, "{}", 2);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
	assert_int_equal(f->reply.u.challenge_added.rc, CA_MSG_OK);
	assert_int_equal(f->reply.u.challenge_added.expires_in, 300);
	memcpy(id, f->reply.u.challenge_added.id, 33);
}

/* A host admitted with an approval key: its CK challenge is recorded only
 * for the key vtpmd makes (attributes, authPolicy = PolicyAuthorize of
 * that key), refused otherwise, nothing recorded. */
static void
test_ck_template_checked(void **state)
{
	struct fixture *f = *state;
	struct approval_pub key;
	struct ca_host was;
	uint8_t secret[32] = {7}, policy[TPM_DIGEST_LEN];
	const uint32_t vtpmd_ck = EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT |
	                          EVIDENCE_OBJ_SENSITIVE_ORIG | EVIDENCE_OBJ_RESTRICTED |
	                          EVIDENCE_OBJ_SIGN;
	struct {
		uint32_t attrs;
		bool with_policy;
		uint8_t flip;
		const char *why; /* NULL: recorded */
	} cases[] = {
	    {vtpmd_ck, true, 0, NULL},
	    {vtpmd_ck | EVIDENCE_OBJ_USER_WITH_AUTH, true, 0, "the CK has userWithAuth"},
	    {vtpmd_ck | EVIDENCE_OBJ_ADMIN_WITH_POL, true, 0, "adminWithPolicy"},
	    {vtpmd_ck & ~EVIDENCE_OBJ_FIXED_TPM, true, 0, "not a restricted signing key"},
	    {vtpmd_ck, false, 0, "authPolicy is not the PolicyAuthorize"},
	    {vtpmd_ck, true, 1, "authPolicy is not the PolicyAuthorize"},
	};

	memset(key.x, 0x11, sizeof(key.x));
	memset(key.y, 0x22, sizeof(key.y));
	assert_int_equal(pcrpolicy_authorize(&key, policy), 0);
	assert_int_equal(ca_db_host_remove(f->p.db, "host-a", &was, NULL), 0);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", EK_A, "PEM", &key, 1, NULL), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
		f->in.u.challenge_add.kind = CA_KIND_CK;
		assert_int_equal(ca_sha256(secret, 32, f->in.u.challenge_add.hash), 0);
		strcpy(f->in.u.challenge_add.subject, "host-a");
		strcpy(f->in.u.challenge_add.client, "192.0.2.1");
		memset(f->in.u.challenge_add.ek_key, 0xee, 32);
		f->in.u.challenge_add.key_attributes = cases[i].attrs;
		if (cases[i].with_policy) {
			f->in.u.challenge_add.key_policy_len = sizeof(policy);
			memcpy(f->in.u.challenge_add.key_policy, policy, sizeof(policy));
			f->in.u.challenge_add.key_policy[0] ^= cases[i].flip;
		}
		f->in.u.challenge_add.len = 2;
		memcpy(f->in.u.challenge_add.request, "{}", 2);
		assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
		if (cases[i].why == NULL) {
			assert_int_equal(f->reply.u.challenge_added.rc, CA_MSG_OK);
			continue;
		}
		assert_int_equal(f->reply.u.challenge_added.rc, CA_MSG_REFUSED);
		assert_non_null(strstr(f->reply.u.challenge_added.reason, cases[i].why));
	}
}

static enum ca_msg_rc
take(struct fixture *f, const char *id, const uint8_t secret[32])
{
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_TAKE);
	strcpy(f->in.u.challenge_take.id, id);
	f->in.u.challenge_take.secret_len = 32;
	memcpy(f->in.u.challenge_take.secret, secret, 32);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_TAKEN), 0);
	return (enum ca_msg_rc)f->reply.u.challenge_taken.rc;
}

static void
issue_ck_msg(struct fixture *f, const char *id)
{
	ca_msg_init(&f->in, CA_MSG_ISSUE_CK);
	strcpy(f->in.u.issue_ck.id, id);
	strcpy(f->in.u.issue_ck.host, "host-a");
	memset(f->in.u.issue_ck.host_ek_digest, 0xee, 32);
	f->in.u.issue_ck.key.type = CA_KEY_ECC_P256;
	memcpy(f->in.u.issue_ck.key.x, GX, 32);
	memcpy(f->in.u.issue_ck.key.y, GY, 32);
}

/* A lineage reference to serial under a 20-byte issuer key identifier. */
static void
msg_ref(struct ca_msg_ref *r, const char *serial)
{
	r->keyid_len = 20;
	memset(r->keyid, 0x5a, 20);
	strcpy(r->serial, serial);
}

static void
issue_ak_msg(struct fixture *f, const char *id)
{
	struct ca_msg_issue_ak *q = &f->in.u.issue_ak;

	ca_msg_init(&f->in, CA_MSG_ISSUE_AK);
	strcpy(q->id, id);
	q->key.type = CA_KEY_ECC_P256;
	memcpy(q->key.x, GX, 32);
	memcpy(q->key.y, GY, 32);
	strcpy(q->tpm.manufacturer, "id:49424D00");
	strcpy(q->tpm.model, "vtpmd-vTPM");
	strcpy(q->tpm.version, "id:20191023");
	q->virt.is_virtual = 1;
	strcpy(q->virt.host_config, "host-a-1");
	strcpy(q->virt.instance_uuid, UUID);
	msg_ref(&q->vek, "4e");
	msg_ref(&q->ck, "7c");
}

struct audit_count {
	const char *action, *outcome;
	int n;
};

static int
count_audit(void *ctx, const struct ca_audit *a)
{
	struct audit_count *c = ctx;

	if (strcmp(a->action, c->action) == 0 && strcmp(a->outcome, c->outcome) == 0)
		c->n++;
	return 0;
}

/* Audit rows of action and outcome. */
static int
audited(struct fixture *f, const char *action, const char *outcome)
{
	struct audit_count c = {action, outcome, 0};

	assert_int_equal(ca_db_audit_list(f->p.db, count_audit, &c, NULL), 0);
	return c.n;
}

static void
test_issue_needs_a_taken_challenge(void **state)
{
	struct fixture *f = *state;

	issue_ck_msg(f, ID0);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	issue_ak_msg(f, ID0);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(audited(f, "privacy/certify", "issued"), 0);
}

static void
test_challenge_then_certificate_once(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32], wrong[32];
	char id[33], other[33];

	memset(secret, 0x5a, sizeof(secret));
	memset(wrong, 0x5b, sizeof(wrong));
	add_challenge(f, CA_KIND_CK, secret, id);
	assert_int_equal(audited(f, "privacy/challenge", "challenged"), 1);

	/* a wrong secret uses the challenge up */
	assert_int_equal(take(f, id, wrong), CA_MSG_WRONG);
	assert_int_equal(take(f, id, secret), CA_MSG_USED);
	issue_ck_msg(f, id);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(take(f, ID0, secret), CA_MSG_NOTFOUND);

	/* the right secret: the stored request comes back */
	add_challenge(f, CA_KIND_CK, secret, id);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	assert_int_equal(f->reply.u.challenge_taken.kind, CA_KIND_CK);
	assert_int_equal(f->reply.u.challenge_taken.len, 2);
	/* ... for this challenge's kind and id only, and once */
	issue_ak_msg(f, id);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	add_challenge(f, CA_KIND_CK, secret, id);
	add_challenge(f, CA_KIND_CK, secret, other);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ck_msg(f, other);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	add_challenge(f, CA_KIND_CK, secret, id);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ck_msg(f, id);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_true(f->reply.u.issued.len > 0);
	{
		struct certs_host_key hk;
		struct err err;
		assert_int_equal(
		    certs_parse_ck(f->reply.u.issued.der, f->reply.u.issued.len, &hk, &err), 0);
		assert_string_equal(hk.host, "host-a");
	}
	assert_int_equal(audited(f, "privacy/certify", "issued"), 1);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1); /* the permit is used up */
}

/* Runs sql on the database through a second connection. */
static void
raw_sql(struct fixture *f, const char *sql)
{
	sqlite3 *h = NULL;

	assert_int_equal(sqlite3_open(fx_path(f, "ca.db"), &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

/* What the records say about a challenge becomes the answer's code: an
 * expired one, CA_PENDING_MAX open ones, records that fail (with their
 * reason). */
static void
test_challenge_outcomes_answered(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32];
	char id[33];

	memset(secret, 0x77, sizeof(secret));
	f->p.cfg.challenge_ttl = 0; /* expires at once */
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = CA_KIND_CK;
	assert_int_equal(ca_sha256(secret, 32, f->in.u.challenge_add.hash), 0);
	strcpy(f->in.u.challenge_add.subject, "host-a");
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	memset(f->in.u.challenge_add.ek_key, 0xee, 32);
	f->in.u.challenge_add.len = 2;
	memcpy(f->in.u.challenge_add.request, "{}", 2);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
	assert_int_equal(f->reply.u.challenge_added.rc, CA_MSG_OK);
	memcpy(id, f->reply.u.challenge_added.id, 33);
	assert_int_equal(take(f, id, secret), CA_MSG_EXPIRED);
	assert_int_equal(take(f, id, secret), CA_MSG_USED);

	f->p.cfg.challenge_ttl = 300;
	raw_sql(f,
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
	    "INSERT INTO challenges (id, kind, request, secret_hash, created_at, expires_at) "
	    "SELECT 'p' || i, 'ck', '{}', zeroblob(32), 0, 1 << 40 FROM n");
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = CA_KIND_CK;
	strcpy(f->in.u.challenge_add.subject, "host-a");
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	memset(f->in.u.challenge_add.ek_key, 0xee, 32);
	f->in.u.challenge_add.len = 2;
	memcpy(f->in.u.challenge_add.request, "{}", 2);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
	assert_int_equal(f->reply.u.challenge_added.rc, CA_MSG_FULL);
	assert_string_equal(f->reply.u.challenge_added.reason, "10000 challenges are open");

	raw_sql(f, "DROP TABLE challenges");
	assert_int_equal(take(f, id, secret), CA_MSG_FAILED);
	assert_non_null(strstr(f->reply.u.challenge_taken.reason, "no such table: challenges"));
}

static void
test_ak_from_typed_values(void **state)
{
	struct fixture *f = *state;
	struct certs_virtual v;
	struct err err;
	uint8_t secret[32];
	char id[33];

	memset(secret, 0x11, sizeof(secret));
	add_challenge(f, CA_KIND_AK, secret, id);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ak_msg(f, id);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_int_equal(
	    certs_parse_virtual(f->reply.u.issued.der, f->reply.u.issued.len, &v, &err), 0);
	assert_true(v.is_virtual);
	assert_string_equal(v.instance_uuid, UUID);
	assert_string_equal(v.host_config, "host-a-1");
}

/* A nonce from the parent (NONCE_ADD), into nonce. */
static void
get_nonce(struct fixture *f, uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN])
{
	ca_msg_init(&f->in, CA_MSG_NONCE_ADD);
	assert_int_equal(handle(f, CA_MSG_NONCE_ADDED), 0);
	assert_int_equal(f->reply.u.nonce_added.rc, CA_MSG_OK);
	assert_int_equal(f->reply.u.nonce_added.expires_in, f->p.cfg.nonce_ttl);
	memcpy(nonce, f->reply.u.nonce_added.nonce, EVIDENCE_VEK_NONCE_LEN);
}

/* Puts key into the vEK set of the ISSUE_EK in f->in, in its type's slot. */
static void
ek_set_add(struct fixture *f, const struct ca_msg_key *key)
{
	size_t t = key->type == CA_KEY_RSA_2048 ? EVIDENCE_VEK_RSA_2048 : EVIDENCE_VEK_ECC_P256;

	f->in.u.issue_ek.vek_set[t] = *key;
}

/* An ISSUE_EK for the P-256 key k * G (k = 1: GX, GY; else a point the
 * test derives), the sealed object named by its last byte, UUID uuid,
 * under PolicyPCR 0x42…, with nonce. */
static void
issue_ek_msg(struct fixture *f, const struct ca_msg_key *key, uint8_t sealed, const char *uuid,
    const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN])
{
	struct ca_msg_issue_ek *q = &f->in.u.issue_ek;

	ca_msg_init(&f->in, CA_MSG_ISSUE_EK);
	q->vek = *key;
	ek_set_add(f, key);
	memcpy(q->nonce, nonce, EVIDENCE_VEK_NONCE_LEN);
	q->sealed_name_len = 34;
	q->sealed_name[1] = 0x0b; /* TPM_ALG_SHA256 */
	memset(q->sealed_name + 2, 0x5e, 31);
	q->sealed_name[33] = sealed;
	memset(q->policy, 0x42, sizeof(q->policy));
	strcpy(q->ck_serial, "7c");
	msg_ref(&q->ck, "7c");
	strcpy(q->host, "host-a");
	strcpy(q->instance_uuid, uuid);
}

/* The P-256 generator as a key. */
static struct ca_msg_key
key_g(void)
{
	struct ca_msg_key k = {.type = CA_KEY_ECC_P256};

	memcpy(k.x, GX, 32);
	memcpy(k.y, GY, 32);
	return k;
}

/* Another valid P-256 key (2G, from OpenSSL). */
static struct ca_msg_key
key_2g(void)
{
	struct ca_msg_key k = {.type = CA_KEY_ECC_P256};
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = EC_POINT_new(g);
	BIGNUM *two = BN_new(), *x = BN_new(), *y = BN_new();

	assert_non_null(pt);
	assert_true(BN_set_word(two, 2));
	assert_true(EC_POINT_mul(g, pt, two, NULL, NULL, NULL));
	assert_true(EC_POINT_get_affine_coordinates(g, pt, x, y, NULL));
	assert_int_equal(BN_bn2binpad(x, k.x, 32), 32);
	assert_int_equal(BN_bn2binpad(y, k.y, 32), 32);
	BN_free(two);
	BN_free(x);
	BN_free(y);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return k;
}

/* A fresh RSA-2048 key. */
static struct ca_msg_key
key_rsa(void)
{
	struct ca_msg_key k = {.type = CA_KEY_RSA_2048, .exponent = 65537};
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	BIGNUM *n = NULL;

	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(BN_bn2binpad(n, k.modulus, sizeof(k.modulus)), sizeof(k.modulus));
	BN_free(n);
	EVP_PKEY_free(pk);
	return k;
}

/* ISSUE_EK's outcome, and the reason when refused. */
static uint32_t
issue_ek(struct fixture *f)
{
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	return f->reply.u.issued.rc;
}

static void
approve_0x42(struct fixture *f)
{
	struct ca_host_config hc = {.id = "host-a-1", .mask = 1};

	memset(hc.policy, 0x42, sizeof(hc.policy));
	assert_int_equal(ca_db_host_config_add(f->p.db, &hc, NULL), 0);
}

static void
test_ek_under_an_approved_configuration(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_key g = key_g();
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	struct certs_virtual v;
	struct err err;

	get_nonce(f, nonce);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_NOTFOUND);

	approve_0x42(f);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_string_equal(f->reply.u.issued.host_config, "host-a-1");
	assert_int_equal(
	    certs_parse_virtual(f->reply.u.issued.der, f->reply.u.issued.len, &v, &err), 0);
	assert_string_equal(v.host_config, "host-a-1");
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 1);

	/* and its status, as the child asks it */
	ca_msg_init(&f->in, CA_MSG_STATUS_GET);
	strcpy(f->in.u.status_get.serial, f->reply.u.issued.serial);
	assert_int_equal(handle(f, CA_MSG_STATUS), 0);
	assert_int_equal(f->reply.u.status.rc, CA_MSG_OK);
	assert_int_equal(f->reply.u.status.issued_here, 1);
	assert_int_equal(f->reply.u.status.revoked, 0);
	strcpy(f->in.u.status_get.serial, "abc");
	assert_int_equal(handle(f, CA_MSG_STATUS), 0);
	assert_int_equal(f->reply.u.status.rc, CA_MSG_NOTFOUND);
}

/* An EK certificate under CK "7c" (the configuration approved), its
 * serial in serial. */
static void
issue_ek_under_7c(struct fixture *f, char serial[CERTS_SERIAL_HEX_MAX + 1])
{
	struct ca_msg_key g = key_g();
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];

	get_nonce(f, nonce);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	strcpy(serial, f->reply.u.issued.serial);
}

/* An AK certificate beneath vEK certificate vek and CK "7c": the ISSUED
 * answer in f->reply. */
static void
issue_ak_under(struct fixture *f, const char *vek)
{
	uint8_t secret[32];
	char id[33];

	memset(secret, 0x33, sizeof(secret));
	add_challenge(f, CA_KIND_AK, secret, id);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ak_msg(f, id);
	strcpy(f->in.u.issue_ak.vek.serial, vek);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
}

/* The number of entries of a role's CRL, as the child gets it. */
static size_t
crl_entries(struct fixture *f, enum ca_role role)
{
	uint64_t number = 0;
	int64_t next = 0;
	size_t n = 0;

	ca_msg_init(&f->in, CA_MSG_CRL_GET);
	f->in.u.crl_get.role = role;
	assert_int_equal(handle(f, CA_MSG_CRL), 0);
	assert_int_equal(f->reply.u.crl.rc, CA_MSG_OK);
	assert_int_equal(
	    certs_crl_info(f->reply.u.crl.der, f->reply.u.crl.len, &number, &next, &n), 0);
	assert_true(number >= 1);
	assert_true(next > time(NULL));
	return n;
}

static void
test_lineage_cascade_and_crl(void **state)
{
	struct fixture *f = *state;
	struct ca_host_config hc = {.id = "host-a-1", .mask = 1};
	char ek[CERTS_SERIAL_HEX_MAX + 1], ak[CERTS_SERIAL_HEX_MAX + 1];
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], hash[32];
	struct ca_msg_key g = key_g();
	struct certs_lineage l;
	struct ca_status st;
	struct err err;

	memset(hc.policy, 0x42, sizeof(hc.policy));
	assert_int_equal(ca_db_host_config_add(f->p.db, &hc, NULL), 0);
	issue_ek_under_7c(f, ek);
	assert_int_equal(
	    certs_parse_lineage(f->reply.u.issued.der, f->reply.u.issued.len, &l, &err), 0);
	assert_true(l.present);
	assert_false(l.has_vek);
	assert_string_equal(l.ck.serial, "7c");
	issue_ak_under(f, ek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	strcpy(ak, f->reply.u.issued.serial);
	assert_int_equal(
	    certs_parse_lineage(f->reply.u.issued.der, f->reply.u.issued.len, &l, &err), 0);
	assert_true(l.has_vek);
	assert_string_equal(l.vek.serial, ek);
	assert_string_equal(l.ck.serial, "7c");
	assert_int_equal(crl_entries(f, CA_ROLE_PRIVACY), 0);

	/* the CK (another CA's here) revoked: both beneath it, each audited */
	assert_int_equal(ca_db_revoke(f->p.db, "7c", "host retired", time(NULL), true, &err), 0);
	assert_int_equal(ca_db_status(f->p.db, ek, &st, &err), 0);
	assert_true(st.revoked);
	assert_string_equal(st.reason, "CK certificate 7c revoked: host retired");
	assert_int_equal(ca_db_status(f->p.db, ak, &st, &err), 0);
	assert_true(st.revoked);
	assert_int_equal(audited(f, "revoke", "done"), 1);
	assert_int_equal(audited(f, "revoke", "cascaded"), 2);
	assert_int_equal(crl_entries(f, CA_ROLE_PRIVACY), 1);
	assert_int_equal(crl_entries(f, CA_ROLE_VIRTUALIZATION), 1);

	/* and no AK certificate beneath it, whatever the child says */
	issue_ak_under(f, "4e");
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_FAILED);
	assert_non_null(strstr(f->reply.u.issued.reason, "CK certificate 7c is revoked"));
	/* nor an EK certificate, refused before its nonce is taken */
	get_nonce(f, nonce);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(issue_ek(f), CA_MSG_FAILED);
	assert_non_null(strstr(f->reply.u.issued.reason, "CK certificate 7c is revoked"));
	assert_int_equal(ca_sha256(nonce, sizeof(nonce), hash), 0);
	assert_int_equal(ca_db_nonce_take(f->p.db, hash, time(NULL), &err), 0);
}

/* A nonce works once, in time, and only one the parent made. */
static void
test_ek_nonce_fresh_once(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_key g = key_g();
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], made_up[EVIDENCE_VEK_NONCE_LEN];

	approve_0x42(f);
	memset(made_up, 0xab, sizeof(made_up));
	issue_ek_msg(f, &g, 1, UUID, made_up);
	assert_int_equal(issue_ek(f), CA_MSG_UNKNOWN);
	assert_non_null(strstr(f->reply.u.issued.reason, "not handed out"));
	get_nonce(f, nonce);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(issue_ek(f), CA_MSG_USED);
	assert_non_null(strstr(f->reply.u.issued.reason, "replayed"));
	f->p.cfg.nonce_ttl = 0;
	get_nonce(f, nonce);
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(issue_ek(f), CA_MSG_EXPIRED);
	/* a nonce refused once is used up: the same again is a replay */
	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(issue_ek(f), CA_MSG_USED);
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 1);
	assert_int_equal(audited(f, "virtualization/nonce", "issued"), 2);
}

/* One step of an identity test: an ISSUE_EK of key, with other in its
 * vEK set (or NULL), and its outcome. */
struct ek_step {
	const struct ca_msg_key *key, *other;
	uint8_t sealed;
	const char *uuid;
	uint32_t rc;
	const char *why;
};

static void
ek_steps(struct fixture *f, const struct ek_step *steps, size_t n)
{
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];

	for (size_t i = 0; i < n; i++) {
		get_nonce(f, nonce);
		issue_ek_msg(f, steps[i].key, steps[i].sealed, steps[i].uuid, nonce);
		if (steps[i].other != NULL)
			ek_set_add(f, steps[i].other);
		if (issue_ek(f) != steps[i].rc)
			fail_msg("step %zu: outcome %u (%s)", i, f->reply.u.issued.rc,
			    f->reply.u.issued.reason);
		if (steps[i].why != NULL && strstr(f->reply.u.issued.reason, steps[i].why) == NULL)
			fail_msg("step %zu: %s", i, f->reply.u.issued.reason);
	}
}

/* One sealed object, one UUID, one vEK per type; the same again is a
 * re-issue. */
static void
test_ek_one_identity(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_key g = key_g(), g2 = key_2g(), rsa = key_rsa();
	static const char *const other_uuid = "0b5e3f7c-1d2a-4c3b-8e9f-a0b1c2d3e4f5";
	const struct ek_step steps[] = {
	    {&g, &rsa, 1, UUID, CA_MSG_OK, NULL}, {&g, &rsa, 1, UUID, CA_MSG_OK, NULL}, /* again */
	    {&g2, &rsa, 1, UUID, CA_MSG_CONFLICT, "another ecc-p256 vEK"},  /* a second vEK */
	    {&g2, NULL, 1, other_uuid, CA_MSG_CONFLICT, "belongs to vTPM"}, /* a made-up UUID */
	    {&g2, NULL, 2, UUID, CA_MSG_CONFLICT, "bound to another sealed object"},
	    {&g, NULL, 2, other_uuid, CA_MSG_CONFLICT, "certified already"}, /* the vEK elsewhere */
	    {&rsa, &g, 1, UUID, CA_MSG_OK, NULL},        /* the RSA vEK of the same vTPM */
	    {&g2, NULL, 2, other_uuid, CA_MSG_OK, NULL}, /* another vTPM */
	};

	approve_0x42(f);
	ek_steps(f, steps, sizeof(steps) / sizeof(steps[0]));
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 4);
}

/* The rows of a table of f's database. */
static int
rows(struct fixture *f, const char *table)
{
	char sql[96];
	sqlite3_stmt *st;
	int n;

	sqlite3 *h;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(
	    sqlite3_open_v2(fx_path(f, "ca.db"), &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/* The first request for a sealed object closes its vTPM's vEK set: a vEK
 * of a type the set has none of, or any other set, is refused (the vTPM
 * made with one EK type, whose other type root would fill with a key of
 * its own), and nothing is recorded or issued; the set named again is a
 * re-issue. */
static void
test_ek_closed_set(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_key g = key_g(), g2 = key_2g(), rsa = key_rsa(), rsa2 = key_rsa();
	static const char *const uuid3 = "7d1e0a52-9c3b-4f8e-a1d2-5b6c7d8e9f00",
	                         *const uuid4 = "0b5e3f7c-1d2a-4c3b-8e9f-a0b1c2d3e4f5",
	                         *const uuid5 = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
	const struct ek_step steps[] = {
	    /* an RSA-only vTPM: no ECC vEK later, its RSA vEK named in a larger set neither */
	    {&rsa, NULL, 3, uuid3, CA_MSG_OK, NULL},
	    {&g, &rsa, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
	    {&g, NULL, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
	    {&rsa, &g, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
	    {&rsa, NULL, 3, uuid3, CA_MSG_OK, NULL}, /* re-issued */
	    /* an ECC-only vTPM: no RSA vEK later */
	    {&g, NULL, 4, uuid4, CA_MSG_OK, NULL},
	    {&rsa2, &g, 4, uuid4, CA_MSG_CONFLICT, "has no rsa2048 vEK"},
	    /* a vTPM with both: a request that leaves one out names another set */
	    {&g2, &rsa2, 5, uuid5, CA_MSG_OK, NULL},
	    {&g2, NULL, 5, uuid5, CA_MSG_CONFLICT, "another set of vEKs"},
	    {&rsa2, NULL, 5, uuid5, CA_MSG_CONFLICT, "another set of vEKs"},
	    {&rsa2, &g2, 5, uuid5, CA_MSG_OK, NULL},
	};

	approve_0x42(f);
	ek_steps(f, steps, sizeof(steps) / sizeof(steps[0]));
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 5);
	assert_int_equal(rows(f, "vtpm_identities"), 4);
	assert_int_equal(rows(f, "vtpm_vek_sets"), 3);
}

/* ca_msg_check of f->in, as the parent's receive makes it. */
static int
check_in(struct fixture *f, struct err *err)
{
	f->in.hdr.len = (uint32_t)(ca_msg_size(&f->in) - sizeof(f->in.hdr));
	return ca_msg_check(&f->in, ca_msg_size(&f->in), CA_MSG_TO_PARENT, err);
}

/* An ISSUE_EK whose vEK is not the member of its type in its set, or
 * whose set holds a key in the other type's slot, is malformed (the
 * parent ends a child that sends one). */
static void
test_ek_set_malformed(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_key g = key_g(), g2 = key_2g(), rsa = key_rsa();
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN] = {0};
	struct err err;

	issue_ek_msg(f, &g, 1, UUID, nonce);
	assert_int_equal(check_in(f, &err), 0);
	ek_set_add(f, &g2);
	assert_int_equal(check_in(f, &err), -1);
	assert_non_null(strstr(err.msg, "not its member"));
	issue_ek_msg(f, &g, 1, UUID, nonce);
	f->in.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048] = g;
	assert_int_equal(check_in(f, &err), -1);
	assert_non_null(strstr(err.msg, "slot"));
	issue_ek_msg(f, &rsa, 1, UUID, nonce);
	memset(&f->in.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048], 0, sizeof(rsa));
	assert_int_equal(check_in(f, &err), -1);
	assert_non_null(strstr(err.msg, "not its member"));
}

static void
test_roles_not_served(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32] = {0};

	f->p.cfg.role = CA_ROLE_VIRTUALIZATION;
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = CA_KIND_CK;
	strcpy(f->in.u.challenge_add.subject, "host-a");
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	memset(f->in.u.challenge_add.ek_key, 0xee, 32);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), -1);
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_TAKE);
	strcpy(f->in.u.challenge_take.id, ID0);
	f->in.u.challenge_take.secret_len = 32;
	memcpy(f->in.u.challenge_take.secret, secret, 32);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_TAKEN), -1);
	f->p.cfg.role = CA_ROLE_PRIVACY;
	ca_msg_init(&f->in, CA_MSG_ISSUE_EK);
	f->in.u.issue_ek.vek.type = CA_KEY_ECC_P256;
	f->in.u.issue_ek.vek_set[EVIDENCE_VEK_ECC_P256] = f->in.u.issue_ek.vek;
	strcpy(f->in.u.issue_ek.ck_serial, "1");
	msg_ref(&f->in.u.issue_ek.ck, "1");
	strcpy(f->in.u.issue_ek.instance_uuid, UUID);
	f->in.u.issue_ek.sealed_name_len = 34;
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	ca_msg_init(&f->in, CA_MSG_CRL_GET);
	f->in.u.crl_get.role = CA_ROLE_VIRTUALIZATION;
	assert_int_equal(handle(f, CA_MSG_CRL), -1);
	ca_msg_init(&f->in, CA_MSG_NONCE_ADD);
	assert_int_equal(handle(f, CA_MSG_NONCE_ADDED), -1);
	/* READY is no request once the child serves */
	ca_msg_init(&f->in, CA_MSG_READY);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
}

static void
test_refusals_audited_and_permit_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32];
	char id[33];

	memset(secret, 0x77, sizeof(secret));
	add_challenge(f, CA_KIND_CK, secret, id);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	ca_msg_init(&f->in, CA_MSG_AUDIT);
	f->in.u.audit.action = CA_ACTION_CERTIFY;
	f->in.u.audit.outcome = CA_OUTCOME_REFUSED;
	strcpy(f->in.u.audit.detail, "CK certificate refused: revoked");
	assert_int_equal(handle(f, CA_MSG_AUDITED), 0);
	assert_int_equal(f->reply.u.audited.rc, CA_MSG_OK);
	assert_int_equal(audited(f, "privacy/certify", "refused"), 1);
	/* the request is over: its challenge certifies nothing any more */
	issue_ck_msg(f, id);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
}

static void
test_trust_and_approval_keys(void **state)
{
	struct fixture *f = *state;
	static const char x[] = "1111111111111111111111111111111111111111111111111111111111111111";
	static const char xy[] = "1111111111111111111111111111111111111111111111111111111111111111,"
	                         "2222222222222222222222222222222222222222222222222222222222222222";

	ca_msg_init(&f->in, CA_MSG_TRUST_LIST);
	f->in.u.trust_list.kind = CA_TRUST_PRIVACY;
	assert_int_equal(handle(f, CA_MSG_TRUST_END), 0);
	assert_int_equal(f->reply.u.trust_end.count, 0);
	assert_int_equal(
	    ca_db_trust_add(f->p.db, CA_TRUST_PRIVACY, "p", x, "-----PEM-----", 1, NULL), 0);
	assert_int_equal(handle(f, CA_MSG_TRUST_ENTRY), 0);
	assert_int_equal(f->reply.u.trust_entry.len, 13);
	assert_int_equal(ca_msg_recv(f->child, &f->reply, CA_MSG_TO_CHILD, NULL), 1);
	assert_int_equal(f->reply.hdr.type, CA_MSG_TRUST_END);
	assert_int_equal(f->reply.u.trust_end.count, 1);

	ca_msg_init(&f->in, CA_MSG_APPROVAL_GET);
	memset(f->in.u.approval_get.x, 0x11, 32);
	memset(f->in.u.approval_get.y, 0x22, 32);
	assert_int_equal(handle(f, CA_MSG_APPROVAL), 0);
	assert_int_equal(f->reply.u.approval.trusted, 0);
	assert_int_equal(ca_db_trust_add(f->p.db, CA_TRUST_APPROVAL_KEY, "k", x, xy, 1, NULL), 0);
	assert_int_equal(handle(f, CA_MSG_APPROVAL), 0);
	assert_int_equal(f->reply.u.approval.rc, CA_MSG_OK);
	assert_int_equal(f->reply.u.approval.trusted, 1);
}

static void
test_answer_not_taken(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	close(f->child);
	f->child = -1;
	ca_msg_init(&f->in, CA_MSG_STATUS_GET);
	strcpy(f->in.u.status_get.serial, "1");
	f->in.hdr.len = (uint32_t)(ca_msg_size(&f->in) - sizeof(f->in.hdr));
	assert_int_equal(ca_parent_handle(&f->p, &f->in, &err), -1);
	assert_int_equal(err.kind, ERR_IO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_issue_needs_a_taken_challenge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_then_certificate_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_outcomes_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ak_from_typed_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ek_under_an_approved_configuration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lineage_cascade_and_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_nonce_fresh_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_one_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_closed_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_set_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roles_not_served, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_refusals_audited_and_permit_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trust_and_approval_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_not_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ck_template_checked, setup, teardown),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
