/*
 * test_ca_parent.c: the parent of `vtpm-ca serve` answering its network
 * child (src/ca/ca_parent.c, ca_verify.c), with a database and CA keys in a
 * fresh mkdtemp directory and the child's end of a SOCK_SEQPACKET
 * socketpair read here. The keys of the TPMs (host EK and CK, vEKs, AKs)
 * are made in software here, their public areas marshalled with tss2-mu
 * as a TPM would, and the CK's attestations signed with its key; the
 * challenge's secret is what the parent drew (ca_random, wrapped at link
 * time: the test plays the TPM that would recover it with
 * TPM2_ActivateCredential).
 *
 * What a child taken over cannot get round: the parent draws a
 * challenge's secret and makes its credential itself, for the EK and the
 * key Name it computed; a CK or AK certificate only right after that
 * challenge was taken with its secret, once, for its key; a CK's host is
 * admitted under that name and its template checked again at issue; an
 * AK only beneath a vEK certificate issued here for the challenge's EK;
 * an EK certificate only on evidence the parent verifies itself (a forged
 * signature, another CK's, a CK not issued here or revoked, another nonce,
 * another sealed object's Name, another vEK, other PCRs, an untrusted
 * approval key are refused, nothing issued), under an approved host
 * configuration, with a nonce the parent made, once and in time, for a
 * vTPM identity no other vTPM holds, within the vEK set the sealed
 * object's first request named; revoking a CK revokes the certificates
 * beneath it (each audited) and the CRLs list them; requests of a role
 * not served end the child; every challenge, certificate and reported
 * refusal leaves an audit row; an answer the child does not take ends it.
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
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <tss2/tss2_mu.h>

#include "ca/ca_msg.h"

#define ID0   "00112233445566778899aabbccddeeff"
#define UUID  "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23"
#define UUID2 "0b5e3f7c-1d2a-4c3b-8e9f-a0b1c2d3e4f5"

/* The last 32 bytes the parent drew: a challenge's secret, or a nonce. */
static uint8_t last_draw[32];
int __real_ca_random(uint8_t *out, size_t len);
int __wrap_ca_random(uint8_t *out, size_t len);

int
__wrap_ca_random(uint8_t *out, size_t len)
{
	int rc = __real_ca_random(out, len);

	if (rc == 0 && len == sizeof(last_draw))
		memcpy(last_draw, out, len);
	return rc;
}

#define ATTRS_KEY                                                                                  \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |        \
	    TPMA_OBJECT_RESTRICTED)
#define ATTRS_EK (ATTRS_KEY | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_DECRYPT)
#define ATTRS_CK (ATTRS_KEY | TPMA_OBJECT_SIGN_ENCRYPT) /* vtpmd's: no userWithAuth */
#define ATTRS_AK (ATTRS_CK | TPMA_OBJECT_USERWITHAUTH)

/* A P-256 key made in software: the TPM's, in these tests. */
struct soft {
	EVP_PKEY *pk;
	uint8_t x[32], y[32];
};

struct fixture {
	char dir[64];
	struct ca_parent p;
	int child; /* the child's end */
	struct ca_msg in, reply;
	struct soft ek, ck, ak, vek1, vek2, other;
	struct ca_msg_public ek_pub, ck_pub, ak_pub, vek1_pub, vek2_pub, rsa_pub, rsa2_pub;
	char ek_key[CA_EK_KEY_HEX + 1];
	struct approval_pub approval;
	uint8_t pcr0[32];
	char ck_serial[CERTS_SERIAL_HEX_MAX + 1];
};

static void
soft_new(struct soft *k)
{
	BIGNUM *x = NULL, *y = NULL;

	assert_non_null(k->pk = EVP_EC_gen("P-256"));
	assert_int_equal(EVP_PKEY_get_bn_param(k->pk, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(k->pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
	assert_int_equal(BN_bn2binpad(x, k->x, 32), 32);
	assert_int_equal(BN_bn2binpad(y, k->y, 32), 32);
	BN_free(x);
	BN_free(y);
}

static void
marshal(struct ca_msg_public *out, const TPM2B_PUBLIC *pub)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	assert_int_equal(
	    Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out->data, sizeof(out->data), &off), TSS2_RC_SUCCESS);
	out->len = (uint32_t)off;
}

/* The TPM2B_PUBLIC of k as an ECC P-256 key with attrs: an EK of the TCG
 * template (AES-128-CFB, no scheme) when attrs has decrypt, else an
 * ECDSA-SHA256 signing key; authPolicy policy (32 bytes) or none. */
static void
pub_ecc(struct ca_msg_public *out, const struct soft *k, uint32_t attrs, const uint8_t *policy)
{
	TPM2B_PUBLIC p = {0};
	TPMS_ECC_PARMS *e = &p.publicArea.parameters.eccDetail;

	p.publicArea.type = TPM2_ALG_ECC;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	p.publicArea.objectAttributes = attrs;
	if (policy != NULL) {
		p.publicArea.authPolicy.size = 32;
		memcpy(p.publicArea.authPolicy.buffer, policy, 32);
	}
	if (attrs & TPMA_OBJECT_DECRYPT) {
		e->symmetric.algorithm = TPM2_ALG_AES;
		e->symmetric.keyBits.aes = 128;
		e->symmetric.mode.aes = TPM2_ALG_CFB;
		e->scheme.scheme = TPM2_ALG_NULL;
	} else {
		e->symmetric.algorithm = TPM2_ALG_NULL;
		e->scheme.scheme = TPM2_ALG_ECDSA;
		e->scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	}
	e->curveID = TPM2_ECC_NIST_P256;
	e->kdf.scheme = TPM2_ALG_NULL;
	p.publicArea.unique.ecc.x.size = 32;
	memcpy(p.publicArea.unique.ecc.x.buffer, k->x, 32);
	p.publicArea.unique.ecc.y.size = 32;
	memcpy(p.publicArea.unique.ecc.y.buffer, k->y, 32);
	marshal(out, &p);
}

/* An RSA-2048 EK of the TCG template, of a fresh key. */
static void
pub_rsa_ek(struct ca_msg_public *out)
{
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	TPM2B_PUBLIC p = {0};
	TPMS_RSA_PARMS *r = &p.publicArea.parameters.rsaDetail;
	BIGNUM *n = NULL;

	assert_non_null(pk);
	p.publicArea.type = TPM2_ALG_RSA;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	p.publicArea.objectAttributes = ATTRS_EK;
	r->symmetric.algorithm = TPM2_ALG_AES;
	r->symmetric.keyBits.aes = 128;
	r->symmetric.mode.aes = TPM2_ALG_CFB;
	r->scheme.scheme = TPM2_ALG_NULL;
	r->keyBits = 2048;
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	p.publicArea.unique.rsa.size = 256;
	assert_int_equal(BN_bn2binpad(n, p.publicArea.unique.rsa.buffer, 256), 256);
	BN_free(n);
	EVP_PKEY_free(pk);
	marshal(out, &p);
}

/* A sealed data object as vtpmd seals a state key, under policy; tag
 * makes its Name. */
static void
pub_sealed(struct ca_msg_public *out, const uint8_t policy[32], uint8_t tag)
{
	TPM2B_PUBLIC p = {0};

	p.publicArea.type = TPM2_ALG_KEYEDHASH;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	p.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
	p.publicArea.authPolicy.size = 32;
	memcpy(p.publicArea.authPolicy.buffer, policy, 32);
	p.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	p.publicArea.unique.keyedHash.size = 32;
	memset(p.publicArea.unique.keyedHash.buffer, tag, 32);
	marshal(out, &p);
}

/* at, marshalled and signed (ECDSA-SHA256) with pk, into s. */
static void
sign_attest(struct ca_msg_signed *s, EVP_PKEY *pk, const TPMS_ATTEST *at)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	TPMT_SIGNATURE sig = {0};
	uint8_t *der = NULL;
	const unsigned char *pp;
	size_t alen = 0, slen = 0, dlen = 0;
	ECDSA_SIG *es;
	const BIGNUM *r, *ss;

	memset(s, 0, sizeof(*s));
	assert_int_equal(
	    Tss2_MU_TPMS_ATTEST_Marshal(at, s->attest, sizeof(s->attest), &alen), TSS2_RC_SUCCESS);
	s->attest_len = (uint32_t)alen;
	assert_non_null(md);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestSign(md, NULL, &dlen, s->attest, alen), 1);
	assert_non_null(der = malloc(dlen));
	assert_int_equal(EVP_DigestSign(md, der, &dlen, s->attest, alen), 1);
	pp = der;
	assert_non_null(es = d2i_ECDSA_SIG(NULL, &pp, (long)dlen));
	ECDSA_SIG_get0(es, &r, &ss);
	sig.sigAlg = TPM2_ALG_ECDSA;
	sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
	sig.signature.ecdsa.signatureR.size = 32;
	sig.signature.ecdsa.signatureS.size = 32;
	BN_bn2binpad(r, sig.signature.ecdsa.signatureR.buffer, 32);
	BN_bn2binpad(ss, sig.signature.ecdsa.signatureS.buffer, 32);
	assert_int_equal(
	    Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, s->sig, sizeof(s->sig), &slen), TSS2_RC_SUCCESS);
	s->sig_len = (uint32_t)slen;
	ECDSA_SIG_free(es);
	free(der);
	EVP_MD_CTX_free(md);
}

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

/* The hex SHA-256 of k's SubjectPublicKeyInfo. */
static void
key_hex(const struct soft *k, char out[CA_EK_KEY_HEX + 1])
{
	struct certs_pkey *pk = certs_pkey_from_ecc_p256(k->x, k->y);
	uint8_t d[CERTS_DIGEST_LEN];

	assert_non_null(pk);
	assert_int_equal(certs_pkey_digest(pk, d), 0);
	certs_pkey_free(pk);
	hex_encode(d, sizeof(d), out);
}

/* The keys of the TPMs; host-a admitted with the host EK (no approval
 * key), the approval key trusted. */
static void
fx_keys(struct fixture *f)
{
	char hex[2 * 64 + 2];
	uint8_t policy[TPM_DIGEST_LEN];

	soft_new(&f->ek);
	soft_new(&f->ck);
	soft_new(&f->ak);
	soft_new(&f->vek1);
	soft_new(&f->vek2);
	soft_new(&f->other);
	pub_ecc(&f->ek_pub, &f->ek, ATTRS_EK, NULL);
	pub_ecc(&f->ck_pub, &f->ck, ATTRS_CK, NULL);
	pub_ecc(&f->ak_pub, &f->ak, ATTRS_AK, NULL);
	pub_ecc(&f->vek1_pub, &f->vek1, ATTRS_EK, NULL);
	pub_ecc(&f->vek2_pub, &f->vek2, ATTRS_EK, NULL);
	pub_rsa_ek(&f->rsa_pub);
	pub_rsa_ek(&f->rsa2_pub);
	key_hex(&f->ek, f->ek_key);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", f->ek_key, "PEM", NULL, 1, NULL), 0);
	memset(f->approval.x, 0x11, 32);
	memset(f->approval.y, 0x22, 32);
	assert_int_equal(pcrpolicy_authorize(&f->approval, policy), 0);
	hex_encode(f->approval.x, 32, hex);
	hex[64] = ',';
	hex_encode(f->approval.y, 32, hex + 65);
	assert_int_equal(
	    ca_db_trust_add(f->p.db, CA_TRUST_APPROVAL_KEY, "k", "approval", hex, 1, NULL), 0);
	memset(f->pcr0, 0x42, sizeof(f->pcr0));
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
	f->p.cfg.role = CA_ROLE_BOTH;
	fx_keys(f);
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
	struct soft *keys[] = {&f->ek, &f->ck, &f->ak, &f->vek1, &f->vek2, &f->other};

	close(f->p.fd);
	close(f->child);
	secret_free(f->p.nonce_key, CA_NONCE_KEY_LEN);
	ca_db_close(f->p.db);
	certs_ca_free(f->p.privacy);
	certs_ca_free(f->p.virt);
	free(f->p.out);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EVP_PKEY_free(keys[i]->pk);
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

/* CHALLENGE_ADD of kind for key under ek (subject: host-a, or the vTPM's
 * UUID); its outcome, and, recorded, its id and the secret the parent drew. */
static uint32_t
challenge(struct fixture *f, enum ca_kind kind, const struct ca_msg_public *ek,
    const struct ca_msg_public *key, char id[33], uint8_t secret[32])
{
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = kind;
	strcpy(f->in.u.challenge_add.subject, kind == CA_KIND_CK ? "host-a" : UUID);
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	f->in.u.challenge_add.ek = *ek;
	f->in.u.challenge_add.key = *key;
	f->in.u.challenge_add.len = 2;
	memcpy(f->in.u.challenge_add.request, "{}", 2);
	memset(last_draw, 0, sizeof(last_draw));
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
	if (f->reply.u.challenge_added.rc != CA_MSG_OK)
		return f->reply.u.challenge_added.rc;
	assert_int_equal(f->reply.u.challenge_added.expires_in, f->p.cfg.challenge_ttl);
	assert_true(f->reply.u.challenge_added.blob_len > 0);
	assert_true(f->reply.u.challenge_added.enc_len > 0);
	memcpy(id, f->reply.u.challenge_added.id, 33);
	memcpy(secret, last_draw, 32);
	return CA_MSG_OK;
}

/* CHALLENGE_ADD of AK key under vEK vek1, naming vEK certificate
 * vek_serial as the child does: its outcome (the reason in f->reply). */
static uint32_t
challenge_beneath(struct fixture *f, const struct ca_msg_public *key, const char *vek_serial)
{
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = CA_KIND_AK;
	strcpy(f->in.u.challenge_add.subject, UUID);
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	f->in.u.challenge_add.ek = f->vek1_pub;
	f->in.u.challenge_add.key = *key;
	strcpy(f->in.u.challenge_add.vek_serial, vek_serial);
	f->in.u.challenge_add.len = 2;
	memcpy(f->in.u.challenge_add.request, "{}", 2);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), 0);
	return f->reply.u.challenge_added.rc;
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
issue_ck_msg(struct fixture *f, const char *id, const char *host)
{
	ca_msg_init(&f->in, CA_MSG_ISSUE_CK);
	strcpy(f->in.u.issue_ck.id, id);
	strcpy(f->in.u.issue_ck.host, host);
}

static void
issue_ak_msg(struct fixture *f, const char *id, const char *vek_serial)
{
	ca_msg_init(&f->in, CA_MSG_ISSUE_AK);
	strcpy(f->in.u.issue_ak.id, id);
	strcpy(f->in.u.issue_ak.vek_serial, vek_serial);
}

/* The host's CK certified through the parent (challenge, secret, ISSUE_CK):
 * its serial in f->ck_serial. */
static void
enrol_ck(struct fixture *f)
{
	uint8_t secret[32];
	char id[33];

	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	strcpy(f->ck_serial, f->reply.u.issued.serial);
}

/* Whether certificate der certifies k. */
static bool
certifies(const uint8_t *der, size_t len, const struct soft *k)
{
	return certs_cert_key_is_p256(der, len, k->x, k->y) == 1;
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

/* Runs sql on the database through a second connection. */
static void
raw_sql(struct fixture *f, const char *sql)
{
	sqlite3 *h = NULL;

	assert_int_equal(sqlite3_open(fx_path(f, "ca.db"), &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

/* The rows of a table of f's database. */
static int
rows(struct fixture *f, const char *table)
{
	char sql[96];
	sqlite3_stmt *st;
	sqlite3 *h;
	int n;

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

/* ---- vEK evidence ---- */

/* A nonce from the parent (NONCE_ADD), into nonce. */
static void
get_nonce(struct fixture *f, uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN])
{
	ca_msg_init(&f->in, CA_MSG_NONCE_ADD);
	strcpy(f->in.u.nonce_add.client, "192.0.2.1");
	assert_int_equal(handle(f, CA_MSG_NONCE_ADDED), 0);
	assert_int_equal(f->reply.u.nonce_added.rc, CA_MSG_OK);
	assert_int_equal(f->reply.u.nonce_added.expires_in, f->p.cfg.nonce_ttl);
	memcpy(nonce, f->reply.u.nonce_added.nonce, EVIDENCE_VEK_NONCE_LEN);
}

/* The slot of a vEK's public area in a vEK set. */
static size_t
slot(const struct ca_msg_public *vek)
{
	struct evidence_public p;

	assert_int_equal(evidence_parse_public(vek->data, vek->len, &p, NULL), 0);
	return p.key == EVIDENCE_KEY_RSA_2048 ? EVIDENCE_VEK_RSA_2048 : EVIDENCE_VEK_ECC_P256;
}

/* What a host makes for an EK certificate; the tests change one thing. */
struct evidence {
	const struct ca_msg_public *vek, *other; /* other: the set's other member, or NULL */
	uint8_t sealed;                          /* the sealed object's tag */
	const char *uuid;
	const uint8_t *nonce;
	EVP_PKEY *signer; /* NULL: the CK */
};

/* The certification of the sealed object and the quote of PCR 0, both
 * with the qualifying data of e, as the host's CK makes them: an
 * ISSUE_EK in f->in. */
static void
ek_msg(struct fixture *f, const struct evidence *e)
{
	struct ca_msg_issue_ek *q = &f->in.u.issue_ek;
	struct evidence_vek_set set = {0};
	struct evidence_public sealed;
	uint8_t policy[TPM_DIGEST_LEN], set_digest[32], extra[32];
	TPMS_ATTEST at = {0};
	EVP_PKEY *signer = e->signer != NULL ? e->signer : f->ck.pk;

	ca_msg_init(&f->in, CA_MSG_ISSUE_EK);
	q->vek_type = (uint32_t)slot(e->vek);
	q->vek_set[q->vek_type] = *e->vek;
	if (e->other != NULL)
		q->vek_set[slot(e->other)] = *e->other;
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++)
		if (q->vek_set[t].len > 0) {
			set.pub[t] = q->vek_set[t].data;
			set.len[t] = q->vek_set[t].len;
		}
	assert_int_equal(evidence_vek_set_digest(&set, set_digest, NULL), 0);
	assert_int_equal(evidence_vek_qualifying(
	                     e->nonce, e->vek->data, e->vek->len, e->uuid, set_digest, extra, NULL),
	    0);
	assert_int_equal(pcrpolicy_authorize(&f->approval, policy), 0);
	pub_sealed(&q->sealed, policy, e->sealed);
	assert_int_equal(evidence_parse_public(q->sealed.data, q->sealed.len, &sealed, NULL), 0);

	at.magic = TPM2_GENERATED_VALUE;
	at.type = TPM2_ST_ATTEST_CERTIFY;
	at.extraData.size = sizeof(extra);
	memcpy(at.extraData.buffer, extra, sizeof(extra));
	at.clockInfo.safe = 1;
	at.attested.certify.name.size = (UINT16)sealed.name_len;
	memcpy(at.attested.certify.name.name, sealed.name, sealed.name_len);
	at.attested.certify.qualifiedName.size = (UINT16)sealed.name_len;
	memcpy(at.attested.certify.qualifiedName.name, sealed.name, sealed.name_len);
	sign_attest(&q->certify, signer, &at);

	memset(&at.attested, 0, sizeof(at.attested));
	at.type = TPM2_ST_ATTEST_QUOTE;
	at.attested.quote.pcrSelect.count = 1;
	at.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	at.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	at.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[0] = 0x01; /* PCR 0 */
	at.attested.quote.pcrDigest.size = 32;
	assert_int_equal(ca_sha256(f->pcr0, 32, at.attested.quote.pcrDigest.buffer), 0);
	sign_attest(&q->quote, signer, &at);

	memcpy(q->nonce, e->nonce, EVIDENCE_VEK_NONCE_LEN);
	q->pcr_mask = 1;
	memcpy(q->pcrs[0], f->pcr0, 32);
	memcpy(q->approval_x, f->approval.x, 32);
	memcpy(q->approval_y, f->approval.y, 32);
	strcpy(q->ck_serial, f->ck_serial);
	strcpy(q->instance_uuid, e->uuid);
}

/* The host configuration of PCR 0 = 0x42…, approved. */
static void
approve(struct fixture *f)
{
	struct ca_host_config hc = {.id = "host-a-1", .mask = 1};
	const struct pcr_selection sel = {.mask = 1};
	uint8_t pcrs[TPM_PCRS][TPM_DIGEST_LEN] = {{0}};

	memcpy(pcrs[0], f->pcr0, 32);
	assert_int_equal(pcrpolicy_digest(&sel, pcrs, hc.policy), 0);
	assert_int_equal(ca_db_host_config_add(f->p.db, &hc, NULL), 0);
}

/* ISSUE_EK of f->in: its outcome (the reason in f->reply when refused). */
static uint32_t
issue_ek(struct fixture *f)
{
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	return f->reply.u.issued.rc;
}

/* An EK certificate for vek (of vTPM UUID, sealed object 1), on fresh
 * evidence: its serial. */
static void
issue_vek(struct fixture *f, const struct ca_msg_public *vek, char serial[CERTS_SERIAL_HEX_MAX + 1])
{
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	const struct evidence e = {.vek = vek, .sealed = 1, .uuid = UUID, .nonce = nonce};

	get_nonce(f, nonce);
	ek_msg(f, &e);
	if (issue_ek(f) != CA_MSG_OK)
		fail_msg("EK certificate refused: %s", f->reply.u.issued.reason);
	strcpy(serial, f->reply.u.issued.serial);
}

/* An AK certificate for f->ak under EK ek, beneath vEK certificate
 * vek_serial: the ISSUED answer in f->reply. */
static void
issue_ak_under(struct fixture *f, const struct ca_msg_public *ek, const char *vek_serial)
{
	uint8_t secret[32];
	char id[33];

	assert_int_equal(challenge(f, CA_KIND_AK, ek, &f->ak_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ak_msg(f, id, vek_serial);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
}

/* ---- challenges: CK and AK ---- */

static void
test_issue_needs_a_taken_challenge(void **state)
{
	struct fixture *f = *state;

	issue_ck_msg(f, ID0, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	issue_ak_msg(f, ID0, "4e");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(audited(f, "privacy/certify", "issued"), 0);
}

/* The parent draws the secret: a secret of the child's choosing, or a
 * wrong one, uses the challenge up; the right one permits one certificate
 * of the challenge's kind, for the key the parent read. */
static void
test_challenge_then_certificate_once(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32], chosen[32];
	char id[33], other[33];

	memset(chosen, 0x41, sizeof(chosen));
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(audited(f, "privacy/challenge", "challenged"), 1);
	assert_int_equal(take(f, id, chosen), CA_MSG_WRONG);
	assert_int_equal(take(f, id, secret), CA_MSG_USED);
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(take(f, ID0, secret), CA_MSG_NOTFOUND);

	/* the right secret: the stored request comes back */
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	assert_int_equal(f->reply.u.challenge_taken.kind, CA_KIND_CK);
	assert_int_equal(f->reply.u.challenge_taken.len, 2);
	/* ... for this challenge's kind and id only, and once */
	issue_ak_msg(f, id, "4e");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(
	    challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, other, secret), CA_MSG_OK);
	assert_int_equal(take(f, other, secret), CA_MSG_OK);
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_true(certifies(f->reply.u.issued.der, f->reply.u.issued.len, &f->ck));
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

/* The parent reads the EK and the key itself: what is no EK, no
 * restricted signing key or no TPM structure is refused, nothing
 * recorded; the credential it makes opens only with that EK, for that
 * key's Name. */
static void
test_challenge_keys_read_by_the_parent(void **state)
{
	struct fixture *f = *state;
	struct ca_msg_public signing_ek, decrypting_key, garbage = {.len = 10};
	uint8_t secret[32];
	char id[33];

	pub_ecc(&signing_ek, &f->ek, ATTRS_CK, NULL);
	pub_ecc(&decrypting_key, &f->ak, ATTRS_EK, NULL);
	memset(garbage.data, 0xff, garbage.len);
	assert_int_equal(
	    challenge(f, CA_KIND_AK, &signing_ek, &f->ak_pub, id, secret), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.challenge_added.reason, "not an endorsement key"));
	assert_int_equal(
	    challenge(f, CA_KIND_AK, &f->vek1_pub, &decrypting_key, id, secret), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.challenge_added.reason, "restricted signing key"));
	assert_int_equal(
	    challenge(f, CA_KIND_AK, &garbage, &f->ak_pub, id, secret), CA_MSG_REFUSED);
	assert_int_equal(
	    challenge(f, CA_KIND_AK, &f->vek1_pub, &garbage, id, secret), CA_MSG_REFUSED);
	assert_int_equal(f->reply.u.challenge_added.blob_len, 0);
	assert_int_equal(rows(f, "challenges"), 0);
	/* a CK for the host EK of host-a, not for another EK under that name */
	assert_int_equal(
	    challenge(f, CA_KIND_CK, &f->vek1_pub, &f->ck_pub, id, secret), CA_MSG_REFUSED);
	assert_int_equal(rows(f, "challenges"), 0);
	assert_int_equal(challenge(f, CA_KIND_AK, &f->vek1_pub, &f->ak_pub, id, secret), CA_MSG_OK);
	assert_int_equal(rows(f, "challenges"), 1);
}

/* A host admitted with an approval key: its CK challenge is recorded only
 * for the key vtpmd makes (attributes, authPolicy = PolicyAuthorize of
 * that key), refused otherwise, nothing recorded; and the template is
 * checked again when the certificate is issued. */
static void
test_ck_template_checked(void **state)
{
	struct fixture *f = *state;
	struct approval_pub key;
	struct ca_msg_public ck;
	struct ca_host was;
	char gone[CERTS_SERIAL_HEX_MAX + 1];
	uint8_t secret[32], policy[TPM_DIGEST_LEN], wrong[TPM_DIGEST_LEN];
	char id[33];
	struct {
		uint32_t attrs;
		const uint8_t *policy;
		const char *why; /* NULL: recorded */
	} cases[] = {
	    {ATTRS_CK, policy, NULL},
	    {ATTRS_CK | TPMA_OBJECT_USERWITHAUTH, policy, "the CK has userWithAuth"},
	    {ATTRS_CK | TPMA_OBJECT_ADMINWITHPOLICY, policy, "adminWithPolicy"},
	    {ATTRS_CK & ~TPMA_OBJECT_FIXEDTPM, policy, "restricted signing key"},
	    {ATTRS_CK, NULL, "authPolicy is not the PolicyAuthorize"},
	    {ATTRS_CK, wrong, "authPolicy is not the PolicyAuthorize"},
	};

	memset(key.x, 0x33, sizeof(key.x));
	memset(key.y, 0x44, sizeof(key.y));
	assert_int_equal(pcrpolicy_authorize(&key, policy), 0);
	memcpy(wrong, policy, sizeof(wrong));
	wrong[0] ^= 1;
	assert_int_equal(ca_db_host_remove(f->p.db, "host-a", 1, &was, gone, NULL), 0);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", f->ek_key, "PEM", &key, 1, NULL), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pub_ecc(&ck, &f->ck, cases[i].attrs, cases[i].policy);
		if (cases[i].why == NULL) {
			assert_int_equal(
			    challenge(f, CA_KIND_CK, &f->ek_pub, &ck, id, secret), CA_MSG_OK);
			continue;
		}
		assert_int_equal(
		    challenge(f, CA_KIND_CK, &f->ek_pub, &ck, id, secret), CA_MSG_REFUSED);
		if (strstr(f->reply.u.challenge_added.reason, cases[i].why) == NULL)
			fail_msg("case %zu: %s", i, f->reply.u.challenge_added.reason);
	}
	assert_int_equal(rows(f, "challenges"), 1);

	/* a CK challenged while its host had no approval key, issued after the
	 * operator gave it one: refused at issue */
	assert_int_equal(ca_db_host_remove(f->p.db, "host-a", 1, &was, gone, NULL), 0);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", f->ek_key, "PEM", NULL, 1, NULL), 0);
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	assert_int_equal(ca_db_host_remove(f->p.db, "host-a", 1, &was, gone, NULL), 0);
	assert_int_equal(ca_db_host_add(f->p.db, "host-a", f->ek_key, "PEM", &key, 1, NULL), 0);
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "authPolicy"));
	assert_int_equal(audited(f, "privacy/certify", "issued"), 0);
}

/* ISSUE_CK names the host: it must be the one the challenge's EK is
 * admitted under. */
static void
test_ck_host_checked_at_issue(void **state)
{
	struct fixture *f = *state;
	char other_ek[CA_EK_KEY_HEX + 1];
	uint8_t secret[32];
	char id[33];

	key_hex(&f->other, other_ek);
	assert_int_equal(ca_db_host_add(f->p.db, "host-b", other_ek, "PEM", NULL, 1, NULL), 0);
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ck_msg(f, id, "host-b");
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_int_equal(audited(f, "privacy/certify", "issued"), 0);
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

	f->p.cfg.challenge_ttl = 0; /* expires at once */
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_EXPIRED);
	assert_int_equal(take(f, id, secret), CA_MSG_USED);

	f->p.cfg.challenge_ttl = 300;
	raw_sql(f,
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
	    "INSERT INTO challenges (id, kind, request, secret_hash, created_at, expires_at) "
	    "SELECT 'p' || i, 'ck', '{}', zeroblob(32), 0, 1 << 40 FROM n");
	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_FULL);
	assert_string_equal(f->reply.u.challenge_added.reason, "10000 challenges are open");
	assert_int_equal(f->reply.u.challenge_added.blob_len, 0); /* no credential leaves */

	raw_sql(f, "DROP TABLE challenges");
	assert_int_equal(take(f, id, secret), CA_MSG_FAILED);
	assert_non_null(strstr(f->reply.u.challenge_taken.reason, "no such table: challenges"));
}

/* An AK certificate for key under vEK vek1, beneath vEK certificate
 * vek_serial: its outcome, the ISSUED answer in f->reply. */
static uint32_t
issue_ak_key(struct fixture *f, const struct ca_msg_public *key, const char *vek_serial)
{
	uint8_t secret[32];
	char id[33];

	assert_int_equal(challenge(f, CA_KIND_AK, &f->vek1_pub, key, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	issue_ak_msg(f, id, vek_serial);
	assert_int_equal(handle(f, CA_MSG_ISSUED), 0);
	return f->reply.u.issued.rc;
}

/* One vEK certificate cannot grow the CRL without bound: the same AK
 * enrolled again gets its valid certificate back (same serial, nothing
 * new recorded), and a new AK is certified only while fewer than
 * ak_certificates_per_vek AK certificates beneath it are valid. */
static void
test_ak_again_and_limit(void **state)
{
	struct fixture *f = *state;
	char vek[CERTS_SERIAL_HEX_MAX + 1], first[CERTS_SERIAL_HEX_MAX + 1];
	char second[CERTS_SERIAL_HEX_MAX + 1];
	struct ca_msg_public ak2_pub, ak3_pub;
	struct soft ak2, ak3;
	struct err err;
	int n;

	approve(f);
	enrol_ck(f);
	issue_vek(f, &f->vek1_pub, vek);
	f->p.cfg.ak_per_vek = 2;
	soft_new(&ak2);
	soft_new(&ak3);
	pub_ecc(&ak2_pub, &ak2, ATTRS_AK, NULL);
	pub_ecc(&ak3_pub, &ak3, ATTRS_AK, NULL);

	assert_int_equal(issue_ak_key(f, &f->ak_pub, vek), CA_MSG_OK);
	strcpy(first, f->reply.u.issued.serial);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(issue_ak_key(f, &f->ak_pub, vek), CA_MSG_OK);
		assert_string_equal(f->reply.u.issued.serial, first);
		assert_true(certifies(f->reply.u.issued.der, f->reply.u.issued.len, &f->ak));
	}
	assert_int_equal(audited(f, "privacy/certify", "returned"), 3);
	assert_int_equal(issue_ak_key(f, &ak2_pub, vek), CA_MSG_OK);
	strcpy(second, f->reply.u.issued.serial);
	assert_string_not_equal(second, first);
	/* the share is taken: a third AK is refused, naming the setting, at
	 * its challenge when the child names the vEK certificate (no
	 * challenge recorded), else at issue */
	n = rows(f, "challenges");
	assert_int_equal(challenge_beneath(f, &ak3_pub, vek), CA_MSG_CONFLICT);
	assert_non_null(strstr(f->reply.u.challenge_added.reason,
	    "2 valid AK certificates (at most 2: ak_certificates_per_vek)"));
	assert_int_equal(rows(f, "challenges"), n);
	assert_int_equal(challenge_beneath(f, &ak2_pub, vek), CA_MSG_OK);
	assert_int_equal(issue_ak_key(f, &ak3_pub, vek), CA_MSG_CONFLICT);
	assert_non_null(strstr(f->reply.u.issued.reason,
	    "2 valid AK certificates (at most 2: ak_certificates_per_vek)"));
	/* the AKs that have one still get it back */
	assert_int_equal(issue_ak_key(f, &ak2_pub, vek), CA_MSG_OK);
	assert_string_equal(f->reply.u.issued.serial, second);
	/* a revoked one no longer counts, and is not returned */
	assert_int_equal(ca_db_revoke(f->p.db, second, "key retired", time(NULL), false, &err), 0);
	assert_int_equal(issue_ak_key(f, &ak3_pub, vek), CA_MSG_OK);
	assert_int_equal(issue_ak_key(f, &ak2_pub, vek), CA_MSG_CONFLICT);
	/* the CK's certificate and three AKs' */
	assert_int_equal(audited(f, "privacy/certify", "issued"), 4);
	EVP_PKEY_free(ak2.pk);
	EVP_PKEY_free(ak3.pk);
}

/* An AK is certified beneath a vEK certificate issued here for the EK the
 * credential was made for; its TPM attributes and vtpmd extension are
 * that certificate's, whatever the child says. */
static void
test_ak_beneath_own_vek(void **state)
{
	struct fixture *f = *state;
	char vek[CERTS_SERIAL_HEX_MAX + 1];
	struct certs_virtual v;
	struct err err;

	approve(f);
	enrol_ck(f);
	issue_vek(f, &f->vek1_pub, vek);
	issue_ak_under(f, &f->vek1_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_true(certifies(f->reply.u.issued.der, f->reply.u.issued.len, &f->ak));
	assert_int_equal(
	    certs_parse_virtual(f->reply.u.issued.der, f->reply.u.issued.len, &v, &err), 0);
	assert_true(v.is_virtual);
	assert_string_equal(v.instance_uuid, UUID);
	assert_string_equal(v.host_config, "host-a-1");
	assert_string_equal(v.host, "host-a");

	/* a vEK certificate not issued here, another vEK's, a CK's */
	issue_ak_under(f, &f->vek1_pub, "4e");
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "not issued here"));
	issue_ak_under(f, &f->vek2_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "another key"));
	issue_ak_under(f, &f->ek_pub, f->ck_serial);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "not a vEK's"));
	assert_int_equal(audited(f, "privacy/certify", "issued"), 2); /* the CK's, the AK's */
}

/* Sets the notAfter the records hold for certificate serial. */
static void
set_not_after(struct fixture *f, const char *serial, long long t)
{
	char sql[160];

	snprintf(
	    sql, sizeof(sql), "UPDATE issued SET not_after = %lld WHERE serial = '%s'", t, serial);
	raw_sql(f, sql);
}

/* Review of #11, findings 1 and 4: no AK certificate beneath a CK
 * certificate that has expired, or whose host is no longer admitted under
 * its name with it as its current CK (revoked or not); and none outliving
 * its CK certificate. */
static void
test_ak_needs_a_usable_ck(void **state)
{
	struct fixture *f = *state;
	char vek[CERTS_SERIAL_HEX_MAX + 1], sql[160];
	const unsigned char *p;
	long long ck_end = (long long)time(NULL) + 3600;
	X509 *x;
	int n;

	approve(f);
	enrol_ck(f);
	issue_vek(f, &f->vek1_pub, vek);

	/* the CK certificate ends in an hour: the AK certificate with it */
	set_not_after(f, f->ck_serial, ck_end);
	issue_ak_under(f, &f->vek1_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	p = f->reply.u.issued.der;
	assert_non_null(x = d2i_X509(NULL, &p, (long)f->reply.u.issued.len));
	assert_true(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), (time_t)ck_end) <= 0);
	X509_free(x);

	/* expired */
	set_not_after(f, f->ck_serial, (long long)time(NULL) - 10);
	issue_ak_under(f, &f->vek1_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "has expired"));
	set_not_after(f, f->ck_serial, ck_end);

	/* not the host's current CK, the host under another name: refused,
	 * though nothing says revoked */
	raw_sql(f, "UPDATE hosts SET ck_serial = '77' WHERE name = 'host-a'");
	issue_ak_under(f, &f->vek1_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "current CK certificate"));
	/* refused at the challenge already, when the child names the vEK
	 * certificate: no challenge used up for nothing */
	n = rows(f, "challenges");
	assert_int_equal(challenge_beneath(f, &f->ak_pub, vek), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.challenge_added.reason, "current CK certificate"));
	assert_int_equal(rows(f, "challenges"), n);
	snprintf(
	    sql, sizeof(sql), "UPDATE hosts SET ck_serial = '%s', name = 'host-b'", f->ck_serial);
	raw_sql(f, sql);
	issue_ak_under(f, &f->vek1_pub, vek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "no longer admitted"));
	assert_int_equal(audited(f, "privacy/certify", "issued"), 2); /* the CK's, one AK's */
}

/* ---- EK certificates ---- */

static void
test_ek_under_an_approved_configuration(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	const struct evidence e = {.vek = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	struct certs_virtual v;
	struct certs_lineage l;
	struct err err;

	enrol_ck(f);
	get_nonce(f, nonce);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_NOTFOUND);

	approve(f);
	get_nonce(f, nonce);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	assert_string_equal(f->reply.u.issued.host_config, "host-a-1");
	assert_true(certifies(f->reply.u.issued.der, f->reply.u.issued.len, &f->vek1));
	assert_int_equal(
	    certs_parse_virtual(f->reply.u.issued.der, f->reply.u.issued.len, &v, &err), 0);
	assert_string_equal(v.host_config, "host-a-1");
	assert_string_equal(v.host, "host-a"); /* the CK record's host */
	assert_string_equal(v.instance_uuid, UUID);
	assert_int_equal(
	    certs_parse_lineage(f->reply.u.issued.der, f->reply.u.issued.len, &l, &err), 0);
	assert_true(l.present);
	assert_string_equal(l.ck.serial, f->ck_serial);
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

/* Evidence the parent verifies itself: each forgery refused with its
 * reason, nothing issued, the nonce not taken (the genuine evidence with
 * it is issued after). */
static void
test_ek_evidence_verified(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], other_nonce[EVIDENCE_VEK_NONCE_LEN];
	const struct evidence good = {
	    .vek = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	struct evidence e;
	struct ca_msg_public sealed2;
	uint8_t policy[TPM_DIGEST_LEN], x;
	char serial[CERTS_SERIAL_HEX_MAX + 1];

	approve(f);
	enrol_ck(f);
	get_nonce(f, nonce);
	get_nonce(f, other_nonce);

	/* a forged signature */
	ek_msg(f, &good);
	f->in.u.issue_ek.certify.sig[f->in.u.issue_ek.certify.sig_len - 1] ^= 1;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "does not verify"));
	ek_msg(f, &good);
	f->in.u.issue_ek.quote.attest[f->in.u.issue_ek.quote.attest_len - 1] ^= 1;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "quote's signature does not verify"));
	/* the evidence of another key than the CK's (a key made in software) */
	e = good;
	e.signer = f->other.pk;
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "does not verify"));
	/* a CK certificate not issued here */
	ek_msg(f, &good);
	strcpy(f->in.u.issue_ek.ck_serial, "7c");
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "not issued here"));
	/* another nonce than the evidence's qualifying data covers */
	ek_msg(f, &good);
	memcpy(f->in.u.issue_ek.nonce, other_nonce, sizeof(other_nonce));
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "certification"));
	/* another vEK, UUID or vEK set than the evidence names */
	ek_msg(f, &good);
	f->in.u.issue_ek.vek_set[EVIDENCE_VEK_ECC_P256] = f->vek2_pub;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	ek_msg(f, &good);
	strcpy(f->in.u.issue_ek.instance_uuid, UUID2);
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	ek_msg(f, &good);
	f->in.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048] = f->rsa_pub;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	/* another sealed object than the certified one (its Name) */
	ek_msg(f, &good);
	assert_int_equal(pcrpolicy_authorize(&f->approval, policy), 0);
	pub_sealed(&sealed2, policy, 2);
	f->in.u.issue_ek.sealed = sealed2;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "certification"));
	/* other PCR values than those quoted */
	ek_msg(f, &good);
	f->in.u.issue_ek.pcrs[0][0] ^= 1;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "quote"));
	/* an approval key not trusted */
	ek_msg(f, &good);
	x = f->in.u.issue_ek.approval_x[0];
	f->in.u.issue_ek.approval_x[0] = (uint8_t)(x ^ 1);
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	/* a vEK in the other type's slot */
	e = good;
	ek_msg(f, &e);
	f->in.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048] = f->vek2_pub;
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "slot"));

	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 0);
	assert_int_equal(rows(f, "vtpm_identities"), 0);
	ek_msg(f, &good);
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	strcpy(serial, f->reply.u.issued.serial);

	/* the evidence of a CK revoked: refused */
	assert_int_equal(
	    ca_db_revoke(f->p.db, f->ck_serial, "host retired", time(NULL), false, NULL), 0);
	e = good;
	e.nonce = other_nonce;
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "revoked"));
}

/* A nonce works once, in time, and only one the parent made. */
static void
test_ek_nonce_fresh_once(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], made_up[EVIDENCE_VEK_NONCE_LEN];
	struct evidence e = {.vek = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = made_up};

	approve(f);
	enrol_ck(f);
	memset(made_up, 0xab, sizeof(made_up));
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_UNKNOWN);
	assert_non_null(strstr(f->reply.u.issued.reason, "not handed out"));
	get_nonce(f, nonce);
	e.nonce = nonce;
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_USED);
	assert_non_null(strstr(f->reply.u.issued.reason, "replayed"));
	f->p.cfg.nonce_ttl = 0;
	get_nonce(f, nonce);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_EXPIRED);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_EXPIRED);
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 1);
	/* one row: the nonce redeemed, kept while it could be replayed */
	assert_int_equal(rows(f, "ek_nonces"), 1);
}

/* A nonce handed out costs no record, however many are asked for; one
 * made under another parent's key (a restarted CA's, another CA's) is
 * unknown; a redeemed one is recorded until it expires. */
static void
test_nonces_stateless(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], other[EVIDENCE_VEK_NONCE_LEN];
	uint8_t key[CA_NONCE_KEY_LEN], hash[32];
	int64_t expires_at = 0, now = time(NULL);
	struct err err;

	for (int i = 0; i < 1000; i++)
		get_nonce(f, nonce);
	assert_int_equal(rows(f, "ek_nonces"), 0);
	assert_int_equal(audited(f, "virtualization/nonce", "issued"), 0);
	/* the nonce names its expiry, under the parent's key only */
	assert_int_equal(ca_nonce_check(f->p.nonce_key, nonce, now, &expires_at, &err), 0);
	assert_true(expires_at >= now + f->p.cfg.nonce_ttl - 1 &&
	            expires_at <= now + f->p.cfg.nonce_ttl + 1);
	assert_int_equal(ca_nonce_check(f->p.nonce_key, nonce, expires_at, &expires_at, &err), -1);
	assert_int_equal(err.kind, ERR_TIMEOUT);
	memset(key, 0x5a, sizeof(key));
	assert_int_equal(ca_nonce_make(key, now + 60, other, &err), 0);
	assert_int_equal(ca_nonce_check(f->p.nonce_key, other, now, &expires_at, &err), -1);
	assert_int_equal(err.kind, ERR_ABSENT);
	/* an expiry changed by the client breaks the MAC */
	memcpy(other, nonce, sizeof(other));
	other[7] ^= 1;
	assert_int_equal(ca_nonce_check(f->p.nonce_key, other, now, &expires_at, &err), -1);
	assert_int_equal(err.kind, ERR_ABSENT);
	/* redeemed once; a redeemed nonce past its expiry is forgotten */
	assert_int_equal(ca_sha256(nonce, sizeof(nonce), hash), 0);
	assert_int_equal(ca_db_nonce_take(f->p.db, hash, now + 60, now, &err), 0);
	assert_int_equal(ca_db_nonce_take(f->p.db, hash, now + 60, now, &err), -1);
	assert_int_equal(err.kind, ERR_REFUSED);
	assert_int_equal(rows(f, "ek_nonces"), 1);
	assert_int_equal(ca_sha256(other, sizeof(other), hash), 0);
	assert_int_equal(ca_db_nonce_take(f->p.db, hash, now + 3660, now + 3600, &err), 0);
	assert_int_equal(rows(f, "ek_nonces"), 1);
}

/* One step of an identity test: an ISSUE_EK of vek, with other in its
 * vEK set (or NULL), and its outcome. */
struct ek_step {
	const struct ca_msg_public *vek, *other;
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
		const struct evidence e = {.vek = steps[i].vek,
		    .other = steps[i].other,
		    .sealed = steps[i].sealed,
		    .uuid = steps[i].uuid,
		    .nonce = nonce};

		get_nonce(f, nonce);
		ek_msg(f, &e);
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
	const struct ca_msg_public *g = &f->vek1_pub, *g2 = &f->vek2_pub, *rsa = &f->rsa_pub;
	const struct ek_step steps[] = {
	    {g, rsa, 1, UUID, CA_MSG_OK, NULL}, {g, rsa, 1, UUID, CA_MSG_OK, NULL}, /* again */
	    {g2, rsa, 1, UUID, CA_MSG_CONFLICT, "another ecc-p256 vEK"}, /* a second vEK */
	    {g2, NULL, 1, UUID2, CA_MSG_CONFLICT, "belongs to vTPM"},    /* a made-up UUID */
	    {g2, NULL, 2, UUID, CA_MSG_CONFLICT, "bound to another sealed object"},
	    {g, NULL, 2, UUID2, CA_MSG_CONFLICT, "certified already"}, /* the vEK elsewhere */
	    {rsa, g, 1, UUID, CA_MSG_OK, NULL},    /* the RSA vEK of the same vTPM */
	    {g2, NULL, 2, UUID2, CA_MSG_OK, NULL}, /* another vTPM */
	};

	approve(f);
	enrol_ck(f);
	ek_steps(f, steps, sizeof(steps) / sizeof(steps[0]));
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 4);
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
	const struct ca_msg_public *g = &f->vek1_pub, *rsa = &f->rsa_pub, *rsa2 = &f->rsa2_pub,
	                           *g3 = &f->vek2_pub;
	static const char *const uuid3 = "7d1e0a52-9c3b-4f8e-a1d2-5b6c7d8e9f00",
	                         *const uuid5 = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";

	{
		const struct ek_step steps[] = {
		    /* an RSA-only vTPM: no ECC vEK later, its RSA vEK in a larger set neither */
		    {rsa, NULL, 3, uuid3, CA_MSG_OK, NULL},
		    {g, rsa, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
		    {g, NULL, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
		    {rsa, g, 3, uuid3, CA_MSG_CONFLICT, "has no ecc-p256 vEK"},
		    {rsa, NULL, 3, uuid3, CA_MSG_OK, NULL}, /* re-issued */
		    /* an ECC-only vTPM: no RSA vEK later */
		    {g, NULL, 4, UUID2, CA_MSG_OK, NULL},
		    {rsa2, g, 4, UUID2, CA_MSG_CONFLICT, "has no rsa2048 vEK"},
		    /* a vTPM with both: a request that leaves one out names another set */
		    {g3, rsa2, 5, uuid5, CA_MSG_OK, NULL},
		    {g3, NULL, 5, uuid5, CA_MSG_CONFLICT, "another set of vEKs"},
		    {rsa2, NULL, 5, uuid5, CA_MSG_CONFLICT, "another set of vEKs"},
		    {rsa2, g3, 5, uuid5, CA_MSG_OK, NULL},
		};
		approve(f);
		enrol_ck(f);
		ek_steps(f, steps, sizeof(steps) / sizeof(steps[0]));
	}
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 5);
	assert_int_equal(rows(f, "vtpm_identities"), 4);
	assert_int_equal(rows(f, "vtpm_vek_sets"), 3);
}

/* One evidence, made for the set's first vEK, certifies the whole set:
 * one ISSUED per member in type order, one nonce taken. */
static void
test_ek_whole_set(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	const struct evidence e = {
	    .vek = &f->rsa_pub, .other = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	struct err err;

	approve(f);
	enrol_ck(f);
	get_nonce(f, nonce);
	ek_msg(f, &e);
	f->in.u.issue_ek.whole_set = 1;
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	assert_int_equal(ca_msg_recv(f->child, &f->reply, CA_MSG_TO_CHILD, &err), 1);
	assert_int_equal(f->reply.hdr.type, CA_MSG_ISSUED);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	assert_true(certifies(f->reply.u.issued.der, f->reply.u.issued.len, &f->vek1));
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 2);
	assert_int_equal(rows(f, "vtpm_identities"), 2);
	/* the same again: a replay */
	ek_msg(f, &e);
	f->in.u.issue_ek.whole_set = 1;
	assert_int_equal(issue_ek(f), CA_MSG_USED);
	/* the evidence of the set's second vEK does not stand for the set */
	get_nonce(f, nonce);
	{
		const struct evidence second = {.vek = &f->vek1_pub,
		    .other = &f->rsa_pub,
		    .sealed = 1,
		    .uuid = UUID,
		    .nonce = nonce};

		ek_msg(f, &second);
	}
	f->in.u.issue_ek.whole_set = 1;
	f->in.hdr.len = (uint32_t)(ca_msg_size(&f->in) - sizeof(f->in.hdr));
	assert_int_equal(ca_msg_check(&f->in, ca_msg_size(&f->in), CA_MSG_TO_PARENT, &err), -1);
	assert_non_null(strstr(err.msg, "the set's first"));
}

/* A whole set is issued in one transaction: a member refused (here the
 * ECC vEK, bound to another vTPM already) refuses the request and leaves
 * nothing of the members before it: no certificate, no identity, no audit
 * row of an issue. */
static void
test_ek_whole_set_all_or_none(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	const struct evidence other = {
	    .vek = &f->vek1_pub, .sealed = 2, .uuid = UUID2, .nonce = nonce};
	const struct evidence e = {
	    .vek = &f->rsa_pub, .other = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	int issued, identities, sets;

	approve(f);
	enrol_ck(f);
	get_nonce(f, nonce);
	ek_msg(f, &other);
	assert_int_equal(issue_ek(f), CA_MSG_OK);
	issued = rows(f, "issued");
	identities = rows(f, "vtpm_identities");
	sets = rows(f, "vtpm_vek_sets");
	get_nonce(f, nonce);
	ek_msg(f, &e);
	f->in.u.issue_ek.whole_set = 1;
	assert_int_equal(issue_ek(f), CA_MSG_CONFLICT);
	assert_non_null(strstr(f->reply.u.issued.reason, UUID2));
	assert_int_equal(rows(f, "issued"), issued);
	assert_int_equal(rows(f, "vtpm_identities"), identities);
	assert_int_equal(rows(f, "vtpm_vek_sets"), sets);
	assert_int_equal(audited(f, "virtualization/ek-certificate", "issued"), 1);
}

/* An ISSUE_EK whose vEK asked for is missing from its set is malformed
 * (the parent ends a child that sends one). */
static void
test_ek_set_malformed(void **state)
{
	struct fixture *f = *state;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN] = {0};
	const struct evidence e = {.vek = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	struct err err;

	strcpy(f->ck_serial, "1");
	ek_msg(f, &e);
	f->in.hdr.len = (uint32_t)(ca_msg_size(&f->in) - sizeof(f->in.hdr));
	assert_int_equal(ca_msg_check(&f->in, ca_msg_size(&f->in), CA_MSG_TO_PARENT, &err), 0);
	f->in.u.issue_ek.vek_type = EVIDENCE_VEK_RSA_2048;
	assert_int_equal(ca_msg_check(&f->in, ca_msg_size(&f->in), CA_MSG_TO_PARENT, &err), -1);
	assert_non_null(strstr(err.msg, "vEK set"));
}

/* A role's CRL as the child gets it, its parts put together: malloc'd,
 * its size in *len; parts: how many messages it came in. */
static uint8_t *
crl_whole(struct fixture *f, enum ca_role role, size_t *len, int *parts)
{
	struct err err = {0};
	uint8_t *der = NULL;
	uint32_t total;

	ca_msg_init(&f->in, CA_MSG_CRL_GET);
	f->in.u.crl_get.role = role;
	assert_int_equal(handle(f, CA_MSG_CRL), 0);
	assert_int_equal(f->reply.u.crl.rc, CA_MSG_OK);
	total = f->reply.u.crl.total;
	assert_non_null(der = malloc(total));
	*len = 0;
	*parts = 0;
	for (;;) {
		assert_int_equal(f->reply.u.crl.total, total);
		assert_int_equal(f->reply.u.crl.offset, *len);
		memcpy(der + *len, f->reply.u.crl.der, f->reply.u.crl.len);
		*len += f->reply.u.crl.len;
		++*parts;
		if (*len == total)
			return der;
		assert_int_equal(ca_msg_recv(f->child, &f->reply, CA_MSG_TO_CHILD, &err), 1);
		assert_int_equal(f->reply.hdr.type, CA_MSG_CRL);
	}
}

/* The number of entries of a role's CRL, as the child gets it. */
static size_t
crl_entries(struct fixture *f, enum ca_role role)
{
	uint64_t number = 0;
	int64_t next = 0;
	size_t n = 0, len;
	int parts;
	uint8_t *der = crl_whole(f, role, &len, &parts);

	assert_int_equal(certs_crl_info(der, len, &number, &next, &n), 0);
	assert_true(number >= 1);
	assert_true(next > time(NULL));
	free(der);
	return n;
}

/* A CRL larger than one message (3000 revoked certificates still valid,
 * about 110 KB) reaches the child whole, in parts. */
static void
test_crl_in_parts(void **state)
{
	struct fixture *f = *state;
	uint64_t number = 0;
	int64_t next = 0;
	size_t n = 0, len;
	int parts;
	uint8_t *der;

	raw_sql(f, "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000) "
	           "INSERT INTO issued (serial, role, kind, subject, detail, certificate, "
	           "issued_at, not_after) SELECT printf('7f%030x', i), 'privacy', 'ak', "
	           "'AK of vTPM " UUID "', '', '', 0, 253402300799 FROM k; "
	           "INSERT INTO revocations (serial, revoked_at, reason, foreign_cert) "
	           "SELECT serial, 1, 'test', 0 FROM issued WHERE kind = 'ak'");
	der = crl_whole(f, CA_ROLE_PRIVACY, &len, &parts);
	assert_true(len > CA_MSG_CRL_MAX);
	assert_int_equal(parts, 2);
	assert_int_equal(certs_crl_info(der, len, &number, &next, &n), 0);
	assert_int_equal(n, 3000);
	free(der);
	/* and the next question is answered as before */
	assert_int_equal(crl_entries(f, CA_ROLE_VIRTUALIZATION), 0);
}

static void
test_lineage_cascade_and_crl(void **state)
{
	struct fixture *f = *state;
	char ek[CERTS_SERIAL_HEX_MAX + 1], ak[CERTS_SERIAL_HEX_MAX + 1];
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], hash[32];
	const struct evidence e = {.vek = &f->vek2_pub, .sealed = 2, .uuid = UUID2, .nonce = nonce};
	struct certs_lineage l;
	struct ca_status st;
	struct err err;

	approve(f);
	enrol_ck(f);
	issue_vek(f, &f->vek1_pub, ek);
	issue_ak_under(f, &f->vek1_pub, ek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_OK);
	strcpy(ak, f->reply.u.issued.serial);
	assert_int_equal(
	    certs_parse_lineage(f->reply.u.issued.der, f->reply.u.issued.len, &l, &err), 0);
	assert_true(l.has_vek);
	assert_string_equal(l.vek.serial, ek);
	assert_string_equal(l.ck.serial, f->ck_serial);
	assert_int_equal(crl_entries(f, CA_ROLE_PRIVACY), 0);

	/* the CK revoked: both beneath it, each audited */
	assert_int_equal(
	    ca_db_revoke(f->p.db, f->ck_serial, "host retired", time(NULL), false, &err), 0);
	assert_int_equal(ca_db_status(f->p.db, ek, &st, &err), 0);
	assert_true(st.revoked);
	assert_non_null(strstr(st.reason, "host retired"));
	assert_int_equal(ca_db_status(f->p.db, ak, &st, &err), 0);
	assert_true(st.revoked);
	assert_int_equal(audited(f, "revoke", "done"), 1);
	assert_int_equal(audited(f, "revoke", "cascaded"), 2);
	assert_int_equal(crl_entries(f, CA_ROLE_PRIVACY), 2);
	assert_int_equal(crl_entries(f, CA_ROLE_VIRTUALIZATION), 1);

	/* and no AK certificate beneath it, whatever the child says */
	issue_ak_under(f, &f->vek1_pub, ek);
	assert_int_equal(f->reply.u.issued.rc, CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "revoked"));
	/* nor an EK certificate, refused before its nonce is taken */
	get_nonce(f, nonce);
	ek_msg(f, &e);
	assert_int_equal(issue_ek(f), CA_MSG_REFUSED);
	assert_non_null(strstr(f->reply.u.issued.reason, "revoked"));
	assert_int_equal(ca_sha256(nonce, sizeof(nonce), hash), 0);
	assert_int_equal(ca_db_nonce_take(f->p.db, hash, time(NULL) + 60, time(NULL), &err), 0);
}

static void
test_roles_not_served(void **state)
{
	struct fixture *f = *state;
	uint8_t secret[32] = {0}, nonce[EVIDENCE_VEK_NONCE_LEN] = {0};
	const struct evidence e = {.vek = &f->vek1_pub, .sealed = 1, .uuid = UUID, .nonce = nonce};
	char id[33];

	f->p.cfg.role = CA_ROLE_VIRTUALIZATION;
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_ADD);
	f->in.u.challenge_add.kind = CA_KIND_CK;
	strcpy(f->in.u.challenge_add.subject, "host-a");
	strcpy(f->in.u.challenge_add.client, "192.0.2.1");
	f->in.u.challenge_add.ek = f->ek_pub;
	f->in.u.challenge_add.key = f->ck_pub;
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_ADDED), -1);
	strcpy(id, ID0);
	ca_msg_init(&f->in, CA_MSG_CHALLENGE_TAKE);
	strcpy(f->in.u.challenge_take.id, id);
	f->in.u.challenge_take.secret_len = 32;
	memcpy(f->in.u.challenge_take.secret, secret, 32);
	assert_int_equal(handle(f, CA_MSG_CHALLENGE_TAKEN), -1);
	f->p.cfg.role = CA_ROLE_PRIVACY;
	strcpy(f->ck_serial, "1");
	ek_msg(f, &e);
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
	ca_msg_init(&f->in, CA_MSG_CRL_GET);
	f->in.u.crl_get.role = CA_ROLE_VIRTUALIZATION;
	assert_int_equal(handle(f, CA_MSG_CRL), -1);
	ca_msg_init(&f->in, CA_MSG_NONCE_ADD);
	strcpy(f->in.u.nonce_add.client, "192.0.2.1");
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

	assert_int_equal(challenge(f, CA_KIND_CK, &f->ek_pub, &f->ck_pub, id, secret), CA_MSG_OK);
	assert_int_equal(take(f, id, secret), CA_MSG_OK);
	ca_msg_init(&f->in, CA_MSG_AUDIT);
	f->in.u.audit.action = CA_ACTION_CERTIFY;
	f->in.u.audit.outcome = CA_OUTCOME_REFUSED;
	strcpy(f->in.u.audit.detail, "CK certificate refused: revoked");
	assert_int_equal(handle(f, CA_MSG_AUDITED), 0);
	assert_int_equal(f->reply.u.audited.rc, CA_MSG_OK);
	assert_int_equal(audited(f, "privacy/certify", "refused"), 1);
	/* the request is over: its challenge certifies nothing any more */
	issue_ck_msg(f, id, "host-a");
	assert_int_equal(handle(f, CA_MSG_ISSUED), -1);
}

static void
test_trust_and_approval_keys(void **state)
{
	struct fixture *f = *state;
	static const char x[] = "1111111111111111111111111111111111111111111111111111111111111111";
	static const char xy[] = "5555555555555555555555555555555555555555555555555555555555555555,"
	                         "6666666666666666666666666666666666666666666666666666666666666666";

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
	memset(f->in.u.approval_get.x, 0x55, 32);
	memset(f->in.u.approval_get.y, 0x66, 32);
	assert_int_equal(handle(f, CA_MSG_APPROVAL), 0);
	assert_int_equal(f->reply.u.approval.trusted, 0);
	assert_int_equal(ca_db_trust_add(f->p.db, CA_TRUST_APPROVAL_KEY, "k2", x, xy, 1, NULL), 0);
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
	    cmocka_unit_test_setup_teardown(
	        test_challenge_keys_read_by_the_parent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ck_template_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ck_host_checked_at_issue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_outcomes_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ak_beneath_own_vek, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ak_needs_a_usable_ck, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ek_under_an_approved_configuration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_evidence_verified, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_nonce_fresh_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nonces_stateless, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ak_again_and_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crl_in_parts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_one_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_closed_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_whole_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_whole_set_all_or_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ek_set_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lineage_cascade_and_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roles_not_served, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_refusals_audited_and_permit_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trust_and_approval_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_not_taken, setup, teardown),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
