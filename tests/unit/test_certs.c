/*
 * test_certs.c: X.509 issuance and checking (src/tpm/certs.c). One hierarchy
 * (root -> Privacy CA, root -> Virtualization CA) is made for the group in a
 * mkdtemp directory; the tests read every certificate back with OpenSSL and
 * check each field, OID, criticality and key usage, compare the vtpmd
 * extensions with DER written out by hand here, and make chain verification
 * fail in each way it should (wrong root, expired, not yet valid, tampered,
 * an end-entity certificate used as an issuer, malformed input).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define YEAR        (INT64_C(365) * 24 * 3600)
#define UUID        "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23"
#define UUID_BYTES  "\x3f\x1c\x2a\x9e\x5b\x7d\x4e\x21\x9c\x0a\x7d\x4b\x8e\x6f\x1a\x23"
#define HOST_CONFIG "approved-2024-06-01"
#define OID_BC      "2.5.29.19"
#define OID_KU      "2.5.29.15"
#define OID_EKU     "2.5.29.37"
#define OID_SAN     "2.5.29.17"
#define OID_SDA     "2.5.29.9"
#define OID_AKI     "2.5.29.35"
#define OID_SKI     "2.5.29.14"
#define OID_CP      "2.5.29.32"

/* The group's hierarchy and leaves. */
static struct {
	char dir[64];
	int64_t now;
	struct certs_validity cav, leafv;
	struct certs_ca *root, *privacy, *virt;
	uint8_t *root_der, *privacy_der, *virt_der;
	size_t root_len, privacy_len, virt_len;
	EVP_PKEY *rsa_key, *ecc_key, *ak_key, *ck_key, *host_ek_key;
	struct certs_pkey *rsa, *ecc, *ak, *ck;
	uint8_t ck_digest[CERTS_DIGEST_LEN], host_ek_digest[CERTS_DIGEST_LEN];
	uint8_t *ek_rsa, *ek_ecc, *ak_cert, *ck_cert;
	size_t ek_rsa_len, ek_ecc_len, ak_cert_len, ck_cert_len;
} F;

static const char *
path(const char *name)
{
	static char buf[4][128];
	static int next;

	next = (next + 1) % 4;
	snprintf(buf[next], sizeof(buf[next]), "%s/%s", F.dir, name);
	return buf[next];
}

static X509 *
parse(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	return x;
}

static uint8_t *
dup_bytes(const uint8_t *p, size_t len)
{
	uint8_t *q = malloc(len);

	assert_non_null(q);
	memcpy(q, p, len);
	return q;
}

/* The public half of k, as callers hand it to certs.c. */
static struct certs_pkey *
pub_of(EVP_PKEY *k)
{
	unsigned char *spki = NULL;
	struct certs_pkey *pk;
	int n;

	n = i2d_PUBKEY(k, &spki);
	assert_true(n > 0);
	pk = certs_pkey_from_spki(spki, (size_t)n);
	OPENSSL_free(spki);
	assert_non_null(pk);
	return pk;
}

static EVP_PKEY *
read_key(const char *name)
{
	FILE *f = fopen(path(name), "r");
	EVP_PKEY *k;

	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	return k;
}

static void
ek_req(struct certs_ek_req *req, const struct certs_pkey *ek, const struct certs_validity *v)
{
	memset(req, 0, sizeof(*req));
	req->ek = ek;
	certs_tpm_defaults(&req->tpm);
	req->virt.is_virtual = true;
	memcpy(req->virt.ck_digest, F.ck_digest, CERTS_DIGEST_LEN);
	snprintf(req->virt.host_config, sizeof(req->virt.host_config), "%s", HOST_CONFIG);
	snprintf(req->virt.instance_uuid, sizeof(req->virt.instance_uuid), "%s", UUID);
	req->validity = *v;
}

static uint8_t *
issue_ek(const struct certs_ca *ca, const struct certs_pkey *ek, const struct certs_validity *v,
    size_t *len)
{
	struct certs_ek_req req;
	uint8_t *der = NULL;
	struct err err = {0};

	ek_req(&req, ek, v);
	if (certs_issue_ek(ca, &req, &der, len, &err) != 0)
		fail_msg("certs_issue_ek: %s", err.msg);
	return der;
}

static int
setup(void **state)
{
	struct certs_ak_req akr = {0};
	struct certs_ck_req ckr = {0};
	struct err err = {0};

	snprintf(F.dir, sizeof(F.dir), "/tmp/vtpmd-certs.XXXXXX");
	if (mkdtemp(F.dir) == NULL)
		return -1;
	F.now = time(NULL);
	F.cav = (struct certs_validity){F.now - 3600, F.now + 20 * YEAR};
	F.leafv = (struct certs_validity){F.now - 60, F.now + 10 * YEAR};
	F.root = certs_ca_create("vtpmd Root CA", CERTS_CA_ROOT, NULL, &F.cav, path("root.key"),
	    path("root.pem"), &err);
	if (F.root == NULL)
		goto fail;
	F.privacy = certs_ca_create("vtpmd Privacy CA", CERTS_CA_ISSUING, F.root, &F.cav,
	    path("privacy.key"), path("privacy.pem"), &err);
	F.virt = certs_ca_create("vtpmd Virtualization CA", CERTS_CA_ISSUING, F.root, &F.cav,
	    path("virt.key"), path("virt.pem"), &err);
	if (F.privacy == NULL || F.virt == NULL ||
	    certs_ca_cert(F.root, &F.root_der, &F.root_len) != 0 ||
	    certs_ca_cert(F.privacy, &F.privacy_der, &F.privacy_len) != 0 ||
	    certs_ca_cert(F.virt, &F.virt_der, &F.virt_len) != 0)
		goto fail;

	F.rsa_key = EVP_RSA_gen(2048);
	F.ecc_key = EVP_EC_gen("P-256");
	F.ak_key = EVP_EC_gen("P-256");
	F.ck_key = EVP_EC_gen("P-256");
	F.host_ek_key = EVP_EC_gen("P-256");
	if (F.rsa_key == NULL || F.ecc_key == NULL || F.ak_key == NULL || F.ck_key == NULL ||
	    F.host_ek_key == NULL)
		goto fail;
	F.rsa = pub_of(F.rsa_key);
	F.ecc = pub_of(F.ecc_key);
	F.ak = pub_of(F.ak_key);
	F.ck = pub_of(F.ck_key);

	ckr.ck = F.ck;
	ckr.host = "host-a.example";
	ckr.validity = F.leafv;
	{
		struct certs_pkey *hek = pub_of(F.host_ek_key);
		int r = certs_pkey_digest(hek, F.host_ek_digest);
		certs_pkey_free(hek);
		if (r != 0)
			goto fail;
	}
	memcpy(ckr.host_ek_digest, F.host_ek_digest, CERTS_DIGEST_LEN);
	if (certs_issue_ck(F.privacy, &ckr, &F.ck_cert, &F.ck_cert_len, &err) != 0 ||
	    certs_cert_key_digest(F.ck_cert, F.ck_cert_len, F.ck_digest) != 0)
		goto fail;

	F.ek_rsa = issue_ek(F.virt, F.rsa, &F.leafv, &F.ek_rsa_len);
	F.ek_ecc = issue_ek(F.virt, F.ecc, &F.leafv, &F.ek_ecc_len);
	akr.ak = F.ak;
	akr.subject = "vm-a attestation key";
	akr.validity = F.leafv;
	if (certs_ak_from_ek(F.ek_rsa, F.ek_rsa_len, &akr, &err) != 0 ||
	    certs_issue_ak(F.privacy, &akr, &F.ak_cert, &F.ak_cert_len, &err) != 0)
		goto fail;
	*state = NULL;
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", err.msg);
	return -1;
}

static int
teardown(void **state)
{
	certs_ca_free(F.root);
	certs_ca_free(F.privacy);
	certs_ca_free(F.virt);
	free(F.root_der);
	free(F.privacy_der);
	free(F.virt_der);
	EVP_PKEY_free(F.rsa_key);
	EVP_PKEY_free(F.ecc_key);
	EVP_PKEY_free(F.ak_key);
	EVP_PKEY_free(F.ck_key);
	EVP_PKEY_free(F.host_ek_key);
	certs_pkey_free(F.rsa);
	certs_pkey_free(F.ecc);
	certs_pkey_free(F.ak);
	certs_pkey_free(F.ck);
	free(F.ek_rsa);
	free(F.ek_ecc);
	free(F.ak_cert);
	free(F.ck_cert);
	fileio_remove_tree(F.dir);
	return 0;
}

/* Extension checks. */

struct want_ext {
	const char *oid;
	int critical;
};

/* x has exactly the extensions in want, with those criticalities. */
static void
assert_extensions(X509 *x, const struct want_ext *want, int n)
{
	char oid[128];

	assert_int_equal(X509_get_ext_count(x), n);
	for (int i = 0; i < n; i++) {
		ASN1_OBJECT *obj = OBJ_txt2obj(want[i].oid, 1);
		int at = X509_get_ext_by_OBJ(x, obj, -1);
		if (at < 0)
			fail_msg("extension %s missing", want[i].oid);
		assert_true(X509_get_ext_by_OBJ(x, obj, at) < 0);
		OBJ_obj2txt(oid, sizeof(oid), obj, 1);
		if (X509_EXTENSION_get_critical(X509_get_ext(x, at)) != want[i].critical)
			fail_msg("extension %s: critical should be %d", oid, want[i].critical);
		ASN1_OBJECT_free(obj);
	}
}

/* The DER value of x's only extension with the given OID. */
static const ASN1_OCTET_STRING *
ext_value(X509 *x, const char *oid)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int at = X509_get_ext_by_OBJ(x, obj, -1);

	ASN1_OBJECT_free(obj);
	assert_true(at >= 0);
	return X509_EXTENSION_get_data(X509_get_ext(x, at));
}

static void
assert_value(X509 *x, const char *oid, const void *der, size_t len)
{
	const ASN1_OCTET_STRING *v = ext_value(x, oid);

	assert_int_equal(ASN1_STRING_length(v), len);
	assert_memory_equal(ASN1_STRING_get0_data(v), der, len);
}

static void
assert_eku(X509 *x, const char *oid)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	char txt[64];

	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	OBJ_obj2txt(txt, sizeof(txt), sk_ASN1_OBJECT_value(eku, 0), 1);
	assert_string_equal(txt, oid);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}

static void
assert_policy(X509 *x, const char *oid)
{
	CERTIFICATEPOLICIES *cp = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
	char txt[80];

	assert_non_null(cp);
	assert_int_equal(sk_POLICYINFO_num(cp), 1);
	OBJ_obj2txt(txt, sizeof(txt), sk_POLICYINFO_value(cp, 0)->policyid, 1);
	assert_string_equal(txt, oid);
	sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
}

/* basicConstraints: critical, CA flag and pathlen (-1: absent). */
static void
assert_bc(X509 *x, bool ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca != 0, ca);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	BASIC_CONSTRAINTS_free(bc);
}

/* AKI's key id is the issuer's SKI. */
static void
assert_aki(X509 *x, const uint8_t *issuer_der, size_t issuer_len)
{
	X509 *issuer = parse(issuer_der, issuer_len);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);

	assert_non_null(ski);
	assert_non_null(akid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(ski, akid), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuer)), 0);
	X509_free(issuer);
}

/* The common shape: v3, positive 16-byte serial, ECDSA-SHA256. */
static void
assert_common(X509 *x)
{
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER); /* not negative */
	assert_int_equal(ASN1_STRING_length(serial), 16);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
}

static void
assert_name(const X509_NAME *n, const char *want)
{
	char buf[256];

	X509_NAME_oneline(n, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* The vtpmd extension as the test writes its DER by hand. */
static size_t
vext_der(uint8_t *out, bool is_virtual)
{
	size_t n = 0, clen = strlen(HOST_CONFIG);
	size_t body = 3 + 3 + 2 + CERTS_DIGEST_LEN + 2 + clen + 2 + 16;

	out[n++] = 0x30;
	out[n++] = (uint8_t)body;
	memcpy(out + n, "\x02\x01\x01", 3); /* version 1 */
	n += 3;
	out[n++] = 0x01; /* BOOLEAN */
	out[n++] = 0x01;
	out[n++] = is_virtual ? 0xff : 0x00;
	out[n++] = 0x04;
	out[n++] = CERTS_DIGEST_LEN;
	memcpy(out + n, F.ck_digest, CERTS_DIGEST_LEN);
	n += CERTS_DIGEST_LEN;
	out[n++] = 0x0c; /* UTF8String */
	out[n++] = (uint8_t)clen;
	memcpy(out + n, HOST_CONFIG, clen);
	n += clen;
	out[n++] = 0x04;
	out[n++] = 16;
	memcpy(out + n, UUID_BYTES, 16);
	n += 16;
	return n;
}

/* SubjectDirectoryAttributes { tpmSpecification { "2.0", 0, 164 } }. */
static const uint8_t sda_der[] = {
    0x30,
    0x19,
    0x30,
    0x17,
    0x06,
    0x05,
    0x67,
    0x81,
    0x05,
    0x02,
    0x10,
    0x31,
    0x0e,
    0x30,
    0x0c,
    0x0c,
    0x03,
    '2',
    '.',
    '0',
    0x02,
    0x01,
    0x00,
    0x02,
    0x02,
    0x00,
    0xa4,
};

/* The SAN: one directoryName, three RDNs of one UTF8String each. */
static void
assert_tpm_san(X509 *x, int critical)
{
	static const char *oids[] = {
	    CERTS_OID_TCG_TPM_MANUFACTURER, CERTS_OID_TCG_TPM_MODEL, CERTS_OID_TCG_TPM_VERSION};
	static const char *values[] = {"id:49424D00", "vtpmd-vTPM", "id:20191023"};
	GENERAL_NAMES *gens;
	GENERAL_NAME *gn;
	int crit = -1;
	char txt[64];

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	assert_non_null(gens);
	assert_int_equal(crit, critical);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	gn = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(gn->type, GEN_DIRNAME);
	assert_int_equal(X509_NAME_entry_count(gn->d.directoryName), 3);
	for (int i = 0; i < 3; i++) {
		X509_NAME_ENTRY *e = X509_NAME_get_entry(gn->d.directoryName, i);
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(e);
		assert_int_equal(X509_NAME_ENTRY_set(e), i); /* its own RDN */
		OBJ_obj2txt(txt, sizeof(txt), X509_NAME_ENTRY_get_object(e), 1);
		assert_string_equal(txt, oids[i]);
		assert_int_equal(ASN1_STRING_type(s), V_ASN1_UTF8STRING);
		assert_int_equal(ASN1_STRING_length(s), strlen(values[i]));
		assert_memory_equal(ASN1_STRING_get0_data(s), values[i], strlen(values[i]));
	}
	GENERAL_NAMES_free(gens);
}

static void
assert_ek_info(const uint8_t *der, size_t len)
{
	struct certs_ek_info info;
	struct err err = {0};

	if (certs_ek_info(der, len, &info, &err) != 0)
		fail_msg("certs_ek_info: %s", err.msg);
	assert_string_equal(info.manufacturer, "id:49424D00");
	assert_string_equal(info.model, "vtpmd-vTPM");
	assert_string_equal(info.version, "id:20191023");
	assert_true(info.has_spec);
	assert_string_equal(info.family, "2.0");
	assert_int_equal(info.level, 0);
	assert_int_equal(info.revision, 164);
}

static void
assert_virtual(const uint8_t *der, size_t len)
{
	struct certs_virtual v;
	struct err err = {0};

	if (certs_parse_virtual(der, len, &v, &err) != 0)
		fail_msg("certs_parse_virtual: %s", err.msg);
	assert_true(v.is_virtual);
	assert_memory_equal(v.ck_digest, F.ck_digest, CERTS_DIGEST_LEN);
	assert_string_equal(v.host_config, HOST_CONFIG);
	assert_string_equal(v.instance_uuid, UUID);
}

/* CAs. */

static void
test_ca_hierarchy(void **state)
{
	static const struct want_ext ca_exts[] = {
	    {OID_BC, 1}, {OID_KU, 1}, {OID_SKI, 0}, {OID_AKI, 0}};
	X509 *root = parse(F.root_der, F.root_len);
	X509 *privacy = parse(F.privacy_der, F.privacy_len);
	X509 *virt = parse(F.virt_der, F.virt_len);
	struct stat sb;

	assert_name(X509_get_subject_name(root), "/O=vtpmd/CN=vtpmd Root CA");
	assert_name(X509_get_issuer_name(root), "/O=vtpmd/CN=vtpmd Root CA");
	assert_name(X509_get_subject_name(privacy), "/O=vtpmd/CN=vtpmd Privacy CA");
	assert_name(X509_get_subject_name(virt), "/O=vtpmd/CN=vtpmd Virtualization CA");
	for (int i = 0; i < 3; i++) {
		X509 *x = i == 0 ? root : i == 1 ? privacy : virt;
		EVP_PKEY *k = X509_get0_pubkey(x);
		assert_common(x);
		assert_extensions(x, ca_exts, 4);
		assert_bc(x, true, i == 0 ? 1 : 0);
		assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		assert_true(EVP_PKEY_is_a(k, "EC"));
		assert_int_equal(EVP_PKEY_get_bits(k), 256);
	}
	assert_aki(root, F.root_der, F.root_len); /* self-signed: AKI = own SKI */
	assert_aki(privacy, F.root_der, F.root_len);
	assert_aki(virt, F.root_der, F.root_len);
	assert_int_equal(X509_verify(privacy, X509_get0_pubkey(root)), 1);
	assert_int_equal(X509_verify(root, X509_get0_pubkey(root)), 1);

	assert_int_equal(stat(path("root.key"), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(path("virt.key"), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	X509_free(root);
	X509_free(privacy);
	X509_free(virt);
}

static void
test_ca_load(void **state)
{
	struct certs_ca *ca;
	uint8_t *der = NULL;
	size_t len = 0;
	struct err err = {0};

	ca = certs_ca_load(path("virt.key"), path("virt.pem"), &err);
	assert_non_null(ca);
	assert_int_equal(certs_ca_cert(ca, &der, &len), 0);
	assert_int_equal(len, F.virt_len);
	assert_memory_equal(der, F.virt_der, len);
	free(der);
	certs_ca_free(ca);

	/* The key of another CA. */
	assert_null(certs_ca_load(path("root.key"), path("virt.pem"), &err));
	assert_non_null(strstr(err.msg, "does not match"));
	/* No such file. */
	assert_null(certs_ca_load(path("none.key"), path("virt.pem"), &err));
	assert_non_null(strstr(err.msg, "none.key"));
	/* A certificate is not a key. */
	assert_null(certs_ca_load(path("virt.pem"), path("virt.pem"), &err));
	certs_ca_free(NULL);
}

/* An end-entity certificate and its key cannot be loaded as a CA. */
static void
test_ca_load_not_ca(void **state)
{
	FILE *f = fopen(path("ak.key"), "w");
	struct err err = {0};

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, F.ak_key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(certs_write_pem(path("ak.pem"), F.ak_cert, F.ak_cert_len), 0);
	assert_null(certs_ca_load(path("ak.key"), path("ak.pem"), &err));
	assert_non_null(strstr(err.msg, "not a CA"));
	unlink(path("ak.key"));
	unlink(path("ak.pem"));
}

static void
test_ca_refusals(void **state)
{
	struct certs_validity bad = {F.now, F.now - 1};
	uint8_t *before = NULL, *after = NULL;
	size_t blen = 0, alen = 0;
	struct err err = {0};

	/* Never overwrites a key; leaves nothing behind when it fails. */
	assert_int_equal(fileio_read(path("root.key"), 4096, &before, &blen), 0);
	assert_null(certs_ca_create(
	    "x", CERTS_CA_ROOT, NULL, &F.cav, path("root.key"), path("x.pem"), &err));
	assert_non_null(strstr(err.msg, "root.key"));
	assert_int_equal(fileio_read(path("root.key"), 4096, &after, &alen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	assert_int_equal(access(path("x.pem"), F_OK), -1);
	free(before);
	free(after);
	assert_null(certs_ca_create(
	    "x", CERTS_CA_ROOT, NULL, &F.cav, path("x.key"), path("root.pem"), &err));
	assert_int_equal(access(path("x.key"), F_OK), -1);

	/* A root has no parent; an issuing CA certifies no CA. */
	assert_null(certs_ca_create(
	    "x", CERTS_CA_ROOT, F.root, &F.cav, path("x.key"), path("x.pem"), &err));
	assert_null(certs_ca_create(
	    "x", CERTS_CA_ISSUING, F.virt, &F.cav, path("x.key"), path("x.pem"), &err));
	assert_non_null(strstr(err.msg, "pathlen 0"));
	/* Names and validity. */
	assert_null(certs_ca_create(
	    "", CERTS_CA_ROOT, NULL, &F.cav, path("x.key"), path("x.pem"), &err));
	assert_null(certs_ca_create(
	    "x", CERTS_CA_ROOT, NULL, &bad, path("x.key"), path("x.pem"), &err));
	assert_non_null(strstr(err.msg, "validity"));
	assert_int_equal(access(path("x.key"), F_OK), -1);
	assert_int_equal(access(path("x.pem"), F_OK), -1);
}

/* A single self-signed CA for a role certifies vEKs on its own. */
static void
test_single_ca(void **state)
{
	struct certs_ca *ca;
	uint8_t *ca_der = NULL, *ek;
	size_t ca_len = 0, ek_len = 0;
	struct err err = {0};
	X509 *x;

	ca = certs_ca_create("vtpmd Virtualization CA", CERTS_CA_ISSUING, NULL, &F.cav,
	    path("single.key"), path("single.pem"), &err);
	assert_non_null(ca);
	assert_int_equal(certs_ca_cert(ca, &ca_der, &ca_len), 0);
	x = parse(ca_der, ca_len);
	assert_bc(x, true, 0);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	X509_free(x);
	ek = issue_ek(ca, F.rsa, &F.leafv, &ek_len);
	assert_int_equal(certs_verify_chain(&(struct certs_der){ek, ek_len}, NULL, 0,
	                     &(struct certs_der){ca_der, ca_len}, 1, F.now, &err),
	    CERTS_VALID);
	free(ek);
	free(ca_der);
	certs_ca_free(ca);
}

/* vEK certificates. */

static const struct want_ext ek_exts[] = {
    {OID_BC, 1},
    {OID_KU, 1},
    {OID_EKU, 0},
    {OID_SAN, 1},
    {OID_SDA, 0},
    {OID_AKI, 0},
    {OID_CP, 0},
    {CERTS_OID_VIRTUAL_EXT, 0},
};

static void
assert_ek(const uint8_t *der, size_t len, EVP_PKEY *key, uint32_t ku)
{
	X509 *x = parse(der, len);
	uint8_t vext[128];
	size_t vlen = vext_der(vext, true);

	assert_common(x);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	assert_name(X509_get_issuer_name(x), "/O=vtpmd/CN=vtpmd Virtualization CA");
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), key), 1);
	assert_extensions(x, ek_exts, 8);
	assert_bc(x, false, -1);
	assert_int_equal(X509_get_key_usage(x), ku);
	assert_eku(x, CERTS_OID_TCG_KP_EK);
	assert_tpm_san(x, 1);
	assert_value(x, OID_SDA, sda_der, sizeof(sda_der));
	assert_aki(x, F.virt_der, F.virt_len);
	assert_policy(x, CERTS_OID_POLICY_VEK);
	assert_value(x, CERTS_OID_VIRTUAL_EXT, vext, vlen);
	X509_free(x);
	assert_ek_info(der, len);
	assert_virtual(der, len);
}

static void
test_ek_rsa(void **state)
{
	assert_ek(F.ek_rsa, F.ek_rsa_len, F.rsa_key, KU_KEY_ENCIPHERMENT);
}

static void
test_ek_ecc(void **state)
{
	assert_ek(F.ek_ecc, F.ek_ecc_len, F.ecc_key, KU_KEY_AGREEMENT);
}

/* The model, version and "virtual" flag go where the request says. */
static void
test_ek_fields_follow_request(void **state)
{
	struct certs_ek_req req;
	struct certs_ek_info info;
	struct certs_virtual v;
	uint8_t *der = NULL, vext[128];
	size_t len = 0, vlen = vext_der(vext, false);
	struct err err = {0};
	X509 *x;

	ek_req(&req, F.ecc, &F.leafv);
	req.tpm.manufacturer = 0x494E5443; /* "INTC" */
	snprintf(req.tpm.model, sizeof(req.tpm.model), "%s", "other model");
	req.tpm.firmware = 0x00070055;
	req.tpm.revision = 138;
	req.virt.is_virtual = false;
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), 0);
	assert_int_equal(certs_ek_info(der, len, &info, &err), 0);
	assert_string_equal(info.manufacturer, "id:494E5443");
	assert_string_equal(info.model, "other model");
	assert_string_equal(info.version, "id:00070055");
	assert_int_equal(info.revision, 138);
	assert_int_equal(certs_parse_virtual(der, len, &v, &err), 0);
	assert_false(v.is_virtual);
	assert_string_equal(v.instance_uuid, UUID);
	x = parse(der, len);
	assert_value(x, CERTS_OID_VIRTUAL_EXT, vext, vlen);
	X509_free(x);
	free(der);
}

static void
test_ek_refusals(void **state)
{
	struct certs_validity inverted = {F.now, F.now};
	struct certs_pkey *small, *ed;
	EVP_PKEY *k;
	struct certs_ek_req req;
	uint8_t *der = NULL;
	size_t len = 0;
	struct err err = {0};

	ek_req(&req, F.rsa, &F.leafv);
	snprintf(req.virt.instance_uuid, sizeof(req.virt.instance_uuid), "%s",
	    "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a2g");
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);
	assert_non_null(strstr(err.msg, "UUID"));
	snprintf(req.virt.instance_uuid, sizeof(req.virt.instance_uuid), "%s",
	    "3f1c2a9e5b7d-4e21-9c0a-7d4b8e6f1a23-");
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);

	ek_req(&req, F.rsa, &F.leafv);
	req.virt.host_config[0] = '\0';
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);
	memset(req.virt.host_config, 'a', sizeof(req.virt.host_config)); /* no NUL */
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);

	ek_req(&req, F.rsa, &inverted);
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);
	assert_non_null(strstr(err.msg, "validity"));

	k = EVP_RSA_gen(1024);
	small = pub_of(k);
	EVP_PKEY_free(k);
	ek_req(&req, small, &F.leafv);
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);
	certs_pkey_free(small);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ed = pub_of(k);
	EVP_PKEY_free(k);
	ek_req(&req, ed, &F.leafv);
	assert_int_equal(certs_issue_ek(F.virt, &req, &der, &len, &err), -1);
	certs_pkey_free(ed);
	assert_null(der);
}

/* Keys from TPM public areas. */
static void
test_pkey_from_tpm(void **state)
{
	uint8_t mod[256], pt[65], d1[CERTS_DIGEST_LEN], d2[CERTS_DIGEST_LEN];
	uint8_t x1[32] = {1}, y1[32] = {1};
	struct certs_pkey *a, *b;
	BIGNUM *n = NULL;
	size_t len = 0;

	assert_int_equal(EVP_PKEY_get_bn_param(F.rsa_key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(BN_bn2binpad(n, mod, sizeof(mod)), sizeof(mod));
	BN_free(n);
	a = certs_pkey_from_rsa(mod, sizeof(mod), 0);
	b = certs_pkey_from_rsa(mod, sizeof(mod), 65537);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(certs_pkey_digest(a, d1), 0);
	assert_int_equal(certs_pkey_digest(F.rsa, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1)); /* same key as the SPKI path */
	assert_int_equal(certs_pkey_digest(b, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1)); /* 0 means 65537 */
	certs_pkey_free(a);
	certs_pkey_free(b);
	assert_int_equal(certs_cert_key_digest(F.ek_rsa, F.ek_rsa_len, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1)); /* and as the certificate has it */
	assert_null(certs_pkey_from_rsa(mod, 255, 0));
	assert_null(certs_pkey_from_rsa(mod, sizeof(mod), 4));
	mod[0] = 0;
	assert_null(certs_pkey_from_rsa(mod, sizeof(mod), 0));

	assert_int_equal(EVP_PKEY_get_octet_string_param(
	                     F.ecc_key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len),
	    1);
	assert_int_equal(len, 65);
	a = certs_pkey_from_ecc_p256(pt + 1, pt + 33);
	assert_non_null(a);
	assert_int_equal(certs_pkey_digest(a, d1), 0);
	assert_int_equal(certs_pkey_digest(F.ecc, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1));
	certs_pkey_free(a);
	pt[64] ^= 1; /* off the curve */
	assert_null(certs_pkey_from_ecc_p256(pt + 1, pt + 33));
	assert_null(certs_pkey_from_ecc_p256(x1, y1));

	a = certs_pkey_from_cert(F.ek_ecc, F.ek_ecc_len);
	assert_non_null(a);
	assert_int_equal(certs_pkey_digest(a, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1));
	certs_pkey_free(a);
	assert_null(certs_pkey_from_cert(F.ek_ecc, F.ek_ecc_len - 1));
	certs_pkey_free(NULL);
}

/* A key that passed OpenSSL's public key check is not checked again
 * (certs.c, certs_keys_passed); a key that failed fails every time, also
 * after others passed, and a point next to one that passed is checked
 * afresh (off the curve). */
static void
test_pkey_check_remembered(void **state)
{
	uint8_t mod[256], bad[256], pt[65];
	struct certs_pkey *a;
	BIGNUM *n = NULL;
	size_t len = 0;

	assert_int_equal(EVP_PKEY_get_bn_param(F.rsa_key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(BN_bn2binpad(n, mod, sizeof(mod)), sizeof(mod));
	BN_free(n);
	memset(bad, 0xff, sizeof(bad)); /* 2^2048 - 1: divisible by 3 */
	for (int i = 0; i < 3; i++) {
		a = certs_pkey_from_rsa(mod, sizeof(mod), 65537);
		assert_non_null(a);
		certs_pkey_free(a);
		assert_null(certs_pkey_from_rsa(bad, sizeof(bad), 65537));
	}

	assert_int_equal(EVP_PKEY_get_octet_string_param(
	                     F.ecc_key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len),
	    1);
	for (int i = 0; i < 3; i++) {
		a = certs_pkey_from_ecc_p256(pt + 1, pt + 33);
		assert_non_null(a);
		certs_pkey_free(a);
		pt[64] ^= 1; /* off the curve */
		assert_null(certs_pkey_from_ecc_p256(pt + 1, pt + 33));
		pt[64] ^= 1;
	}
}

static void
test_pkey_spki(void **state)
{
	uint8_t *spki = NULL, *longer;
	size_t len = 0;

	assert_int_equal(certs_pkey_spki(F.ecc, &spki, &len), 0);
	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, spki, len);
	longer[len] = 0;
	assert_null(certs_pkey_from_spki(longer, len + 1)); /* trailing byte */
	assert_null(certs_pkey_from_spki(longer, len - 1));
	assert_null(certs_pkey_from_spki(longer, 0));
	free(longer);
	free(spki);
}

/* vAK and CK certificates. */

static void
test_ak(void **state)
{
	static const struct want_ext ak_exts[] = {
	    {OID_BC, 1},
	    {OID_KU, 1},
	    {OID_EKU, 0},
	    {OID_AKI, 0},
	    {OID_CP, 0},
	    {OID_SAN, 0},
	    {OID_SDA, 0},
	    {CERTS_OID_VIRTUAL_EXT, 0},
	};
	X509 *x = parse(F.ak_cert, F.ak_cert_len), *ek = parse(F.ek_rsa, F.ek_rsa_len);
	const ASN1_OCTET_STRING *a, *b;

	assert_common(x);
	assert_name(X509_get_subject_name(x), "/CN=vm-a attestation key");
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), F.ak_key), 1);
	assert_extensions(x, ak_exts, 8);
	assert_bc(x, false, -1);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_eku(x, CERTS_OID_TCG_KP_AIK);
	assert_aki(x, F.privacy_der, F.privacy_len);
	assert_policy(x, CERTS_OID_POLICY_VAK);
	assert_tpm_san(x, 0);
	assert_value(x, OID_SDA, sda_der, sizeof(sda_der));
	a = ext_value(x, CERTS_OID_VIRTUAL_EXT);
	b = ext_value(ek, CERTS_OID_VIRTUAL_EXT);
	assert_int_equal(ASN1_OCTET_STRING_cmp(a, b), 0); /* copied unchanged */
	assert_virtual(F.ak_cert, F.ak_cert_len);
	assert_ek_info(F.ak_cert, F.ak_cert_len);
	X509_free(x);
	X509_free(ek);
}

/* Only an AK certificate passes for one (certs_check_ak): not a vEK's,
 * a CK's, a CA's. */
static void
test_check_ak_role(void **state)
{
	struct err err = {0};

	assert_int_equal(certs_check_ak(F.ak_cert, F.ak_cert_len, &err), 0);
	assert_int_equal(certs_check_ak(F.ek_rsa, F.ek_rsa_len, &err), -1);
	assert_non_null(strstr(err.msg, "an endorsement key's certificate, not an AK certificate"));
	assert_int_equal(certs_check_ak(F.ek_ecc, F.ek_ecc_len, &err), -1);
	assert_int_equal(certs_check_ak(F.ck_cert, F.ck_cert_len, &err), -1);
	assert_non_null(strstr(err.msg, "a host key's certificate (CK or BK)"));
	assert_int_equal(certs_check_ak(F.privacy_der, F.privacy_len, &err), -1);
	assert_non_null(strstr(err.msg, "a CA's certificate"));
	assert_int_equal(certs_check_ak((const uint8_t *)"junk", 4, &err), -1);
}

/* An empty subject makes the repeated subjectAltName critical. */
static void
test_ak_empty_subject(void **state)
{
	struct certs_ak_req akr = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	struct err err = {0};
	X509 *x;

	akr.ak = F.ak;
	akr.subject = "";
	akr.validity = F.leafv;
	assert_int_equal(certs_ak_from_ek(F.ek_ecc, F.ek_ecc_len, &akr, &err), 0);
	assert_int_equal(certs_issue_ak(F.privacy, &akr, &der, &len, &err), 0);
	x = parse(der, len);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	assert_tpm_san(x, 1);
	X509_free(x);
	free(der);

	/* Without TPM attributes, an empty subject is refused ... */
	der = NULL;
	memset(&akr.tpm, 0, sizeof(akr.tpm));
	memset(&akr.virt, 0, sizeof(akr.virt));
	assert_int_equal(certs_ak_from_ek(F.ck_cert, F.ck_cert_len, &akr, &err), -1);
	assert_int_equal(certs_issue_ak(F.privacy, &akr, &der, &len, &err), -1);
	assert_null(der);
	/* ... but a named AK of a non-virtual TPM is plain. */
	akr.subject = "plain";
	assert_int_equal(certs_issue_ak(F.privacy, &akr, &der, &len, &err), 0);
	x = parse(der, len);
	assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
	X509_free(x);
	{
		struct certs_virtual v;
		assert_int_equal(certs_parse_virtual(der, len, &v, &err), 0);
		assert_false(v.is_virtual);
	}
	free(der);
	der = NULL;

	/* Garbage for a vEK certificate; TPM attributes that do not end. */
	assert_int_equal(
	    certs_ak_from_ek((const uint8_t *)"\x30\x03\x02\x01\x01", 5, &akr, &err), -1);
	assert_non_null(strstr(err.msg, "not a DER certificate"));
	assert_int_equal(certs_ak_from_ek(F.ek_rsa, F.ek_rsa_len, &akr, &err), 0);
	memset(akr.tpm.model, 'm', sizeof(akr.tpm.model));
	assert_int_equal(certs_issue_ak(F.privacy, &akr, &der, &len, &err), -1);
	assert_null(der);
	assert_int_equal(certs_ak_from_ek(F.ek_rsa, F.ek_rsa_len, &akr, &err), 0);
	akr.subject = "a subject of more than sixty-four bytes, which no common name allows";
	assert_int_equal(certs_issue_ak(F.privacy, &akr, &der, &len, &err), -1);
	assert_null(der);
}

static void
test_ck(void **state)
{
	static const struct want_ext ck_exts[] = {
	    {OID_BC, 1},
	    {OID_KU, 1},
	    {OID_EKU, 0},
	    {OID_AKI, 0},
	    {OID_CP, 0},
	    {CERTS_OID_HOST_KEY_EXT, 0},
	};
	X509 *x = parse(F.ck_cert, F.ck_cert_len);
	struct certs_host_key hk;
	struct err err = {0};
	uint8_t want[2 + 3 + 2 + 14 + 2 + CERTS_DIGEST_LEN];

	assert_common(x);
	assert_name(X509_get_subject_name(x), "/CN=host-a.example");
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), F.ck_key), 1);
	assert_extensions(x, ck_exts, 6);
	assert_bc(x, false, -1);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_eku(x, CERTS_OID_TCG_KP_AIK);
	assert_aki(x, F.privacy_der, F.privacy_len);
	assert_policy(x, CERTS_OID_POLICY_HOST_CK);
	/* VtpmdHostKey { 1, "host-a.example", digest } */
	memcpy(want,
	    "\x30\x35\x02\x01\x01\x0c\x0e"
	    "host-a.example\x04\x20",
	    23);
	memcpy(want + 23, F.host_ek_digest, CERTS_DIGEST_LEN);
	assert_value(x, CERTS_OID_HOST_KEY_EXT, want, sizeof(want));
	X509_free(x);

	assert_int_equal(certs_parse_ck(F.ck_cert, F.ck_cert_len, &hk, &err), 0);
	assert_string_equal(hk.host, "host-a.example");
	assert_memory_equal(hk.host_ek_digest, F.host_ek_digest, CERTS_DIGEST_LEN);
	assert_int_equal(certs_parse_ck(F.ek_rsa, F.ek_rsa_len, &hk, &err), -1);
	assert_non_null(strstr(err.msg, "CK"));
	/* A CK is not virtual. */
	{
		struct certs_virtual v;
		assert_int_equal(
		    certs_parse_virtual(F.ck_cert, F.ck_cert_len, &v, &err), 0);
		assert_false(v.is_virtual);
	}
}

static void
test_ck_refusals(void **state)
{
	struct certs_ck_req req = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	struct err err = {0};

	req.ck = F.ck;
	req.validity = F.leafv;
	req.host = "";
	assert_int_equal(certs_issue_ck(F.privacy, &req, &der, &len, &err), -1);
	req.host = NULL;
	assert_int_equal(certs_issue_ck(F.privacy, &req, &der, &len, &err), -1);
	assert_null(der);
}

/* Chain verification. */

static enum certs_verdict
verify(const uint8_t *leaf, size_t len, const struct certs_der *inter, size_t ni,
    const uint8_t *root, size_t root_len, int64_t at, struct err *err)
{
	struct certs_der l = {leaf, len}, r = {root, root_len};

	return certs_verify_chain(&l, inter, ni, &r, 1, at, err);
}

static void
test_verify_valid(void **state)
{
	struct certs_der both[] = {{F.privacy_der, F.privacy_len}, {F.virt_der, F.virt_len}};
	struct err err = {0};

	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &both[1], 1, F.root_der, F.root_len, F.now,
	                     &err),
	    CERTS_VALID);
	assert_int_equal(verify(F.ek_ecc, F.ek_ecc_len, both, 2, F.root_der, F.root_len, F.now, &err),
	    CERTS_VALID);
	assert_int_equal(verify(F.ak_cert, F.ak_cert_len, both, 2, F.root_der, F.root_len, F.now,
	                     &err),
	    CERTS_VALID);
	assert_int_equal(verify(F.ck_cert, F.ck_cert_len, both, 1, F.root_der, F.root_len, F.now,
	                     &err),
	    CERTS_VALID);
	/* The intermediates themselves. */
	assert_int_equal(verify(F.virt_der, F.virt_len, NULL, 0, F.root_der, F.root_len, F.now, &err),
	    CERTS_VALID);
}

static void
test_verify_wrong_root(void **state)
{
	struct certs_der virt = {F.virt_der, F.virt_len};
	struct certs_der privacy = {F.privacy_der, F.privacy_len};
	struct certs_ca *other, *twin;
	uint8_t *o = NULL, *t = NULL;
	size_t olen = 0, tlen = 0;
	struct err err = {0};

	other = certs_ca_create("another root", CERTS_CA_ROOT, NULL, &F.cav, path("other.key"),
	    path("other.pem"), &err);
	/* An impostor with the real root's name. */
	twin = certs_ca_create("vtpmd Root CA", CERTS_CA_ROOT, NULL, &F.cav, path("twin.key"),
	    path("twin.pem"), &err);
	assert_non_null(other);
	assert_non_null(twin);
	assert_int_equal(certs_ca_cert(other, &o, &olen), 0);
	assert_int_equal(certs_ca_cert(twin, &t, &tlen), 0);

	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &virt, 1, o, olen, F.now, &err),
	    CERTS_UNTRUSTED);
	assert_non_null(strstr(err.msg, "depth 1"));
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &virt, 1, t, tlen, F.now, &err),
	    CERTS_UNTRUSTED);
	/* No intermediate, the wrong one, or the intermediate as the root. */
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, NULL, 0, F.root_der, F.root_len, F.now, &err),
	    CERTS_UNTRUSTED);
	assert_non_null(strstr(err.msg, "depth 0"));
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &privacy, 1, F.root_der, F.root_len, F.now,
	                     &err),
	    CERTS_UNTRUSTED);
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, NULL, 0, F.virt_der, F.virt_len, F.now, &err),
	    CERTS_UNTRUSTED);
	free(o);
	free(t);
	certs_ca_free(other);
	certs_ca_free(twin);
}

static void
test_verify_time(void **state)
{
	struct certs_validity later = {F.now + YEAR, F.now + 2 * YEAR};
	struct certs_der virt = {F.virt_der, F.virt_len};
	uint8_t *ek;
	size_t len = 0;
	struct err err = {0};

	ek = issue_ek(F.virt, F.ecc, &later, &len);
	assert_int_equal(verify(ek, len, &virt, 1, F.root_der, F.root_len, F.now, &err),
	    CERTS_NOT_YET_VALID);
	assert_non_null(strstr(err.msg, "not yet valid"));
	assert_non_null(strstr(err.msg, "depth 0"));
	assert_int_equal(
	    verify(ek, len, &virt, 1, F.root_der, F.root_len, F.now + 3 * YEAR, &err),
	    CERTS_EXPIRED);
	assert_non_null(strstr(err.msg, "expired"));
	assert_non_null(strstr(err.msg, "depth 0"));
	assert_int_equal(verify(ek, len, &virt, 1, F.root_der, F.root_len, F.now + YEAR + YEAR / 2,
	                     &err),
	    CERTS_VALID);
	free(ek);
	/* An expired CA fails its leaves. */
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &virt, 1, F.root_der, F.root_len,
	                     F.now + 21 * YEAR, &err),
	    CERTS_EXPIRED);
}

static void
test_verify_tampered(void **state)
{
	struct certs_der virt = {F.virt_der, F.virt_len};
	struct certs_der bad_virt;
	uint8_t *copy;
	struct err err = {0};
	uint8_t *model;

	/* The signature. */
	copy = dup_bytes(F.ek_rsa, F.ek_rsa_len);
	copy[F.ek_rsa_len - 1] ^= 0x01;
	assert_int_equal(
	    verify(copy, F.ek_rsa_len, &virt, 1, F.root_der, F.root_len, F.now, &err),
	    CERTS_BAD_SIGNATURE);
	assert_non_null(strstr(err.msg, "signature"));
	free(copy);
	/* The signed body: the model string. */
	copy = dup_bytes(F.ek_rsa, F.ek_rsa_len);
	model = memmem(copy, F.ek_rsa_len, "vtpmd-vTPM", 10);
	assert_non_null(model);
	model[0] = 'V';
	assert_int_equal(
	    verify(copy, F.ek_rsa_len, &virt, 1, F.root_der, F.root_len, F.now, &err),
	    CERTS_BAD_SIGNATURE);
	free(copy);
	/* The intermediate's signature. */
	copy = dup_bytes(F.virt_der, F.virt_len);
	copy[F.virt_len - 1] ^= 0x01;
	bad_virt = (struct certs_der){copy, F.virt_len};
	assert_int_equal(verify(F.ek_rsa, F.ek_rsa_len, &bad_virt, 1, F.root_der, F.root_len, F.now,
	                     &err),
	    CERTS_BAD_SIGNATURE);
	assert_non_null(strstr(err.msg, "depth 1"));
	free(copy);
}

/* A certificate made here, outside certs.c: issuer signs, ext lines in
 * OpenSSL's configuration syntax. */
static X509 *
make_cert(X509 *issuer, EVP_PKEY *issuer_key, const char *cn, EVP_PKEY *key, const char *bc,
    const char *ku, const char *aki)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	const char *vals[] = {bc, ku, "hash", aki};
	int nids[] = {NID_basic_constraints, NID_key_usage, NID_subject_key_identifier,
	    NID_authority_key_identifier};

	assert_non_null(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(
	                     n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0),
	    1);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_set_issuer_name(x, X509_get_subject_name(issuer));
	X509_set_subject_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	for (int i = 0; i < 4 && vals[i] != NULL; i++) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, nids[i], vals[i]);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static enum certs_verdict
verify_x509(X509 *leaf, X509 *inter, struct err *err)
{
	unsigned char *l = NULL, *i = NULL;
	int ll = i2d_X509(leaf, &l), il = i2d_X509(inter, &i);
	struct certs_der ld = {l, (size_t)ll}, id = {i, (size_t)il};
	struct certs_der rd = {F.root_der, F.root_len};
	enum certs_verdict v;

	v = certs_verify_chain(&ld, &id, 1, &rd, 1, F.now, err);
	OPENSSL_free(l);
	OPENSSL_free(i);
	return v;
}

/* An end-entity certificate cannot issue. */
static void
test_verify_not_ca(void **state)
{
	EVP_PKEY *root_key = read_key("root.key"), *mid_key = EVP_EC_gen("P-256");
	EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
	X509 *root = parse(F.root_der, F.root_len), *mid, *leaf, *ak, *ak_leaf;
	struct err err = {0};

	/* The control: a proper intermediate works ... */
	mid = make_cert(root, root_key, "mid", mid_key, "critical,CA:TRUE", "critical,keyCertSign",
	    "keyid:always");
	leaf = make_cert(mid, mid_key, "leaf", leaf_key, "critical,CA:FALSE",
	    "critical,digitalSignature", "keyid:always");
	assert_int_equal(verify_x509(leaf, mid, &err), CERTS_VALID);
	X509_free(mid);
	X509_free(leaf);
	/* ... and with CA:FALSE it does not, even with keyCertSign. */
	mid = make_cert(root, root_key, "mid", mid_key, "critical,CA:FALSE", "critical,keyCertSign",
	    "keyid:always");
	leaf = make_cert(mid, mid_key, "leaf", leaf_key, "critical,CA:FALSE",
	    "critical,digitalSignature", "keyid:always");
	assert_int_equal(verify_x509(leaf, mid, &err), CERTS_NOT_CA);
	assert_non_null(strstr(err.msg, "depth 1"));
	X509_free(mid);
	X509_free(leaf);

	/* The vAK certificate and key used as an issuer. */
	ak = parse(F.ak_cert, F.ak_cert_len);
	ak_leaf = make_cert(
	    ak, F.ak_key, "leaf", leaf_key, "critical,CA:FALSE", "critical,digitalSignature", NULL);
	assert_int_not_equal(verify_x509(ak_leaf, ak, &err), CERTS_VALID);
	X509_free(ak);
	X509_free(ak_leaf);

	X509_free(root);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(mid_key);
	EVP_PKEY_free(leaf_key);
}

/* CA:FALSE with keyCertSign does not load as a CA either. */
static void
test_ca_load_ca_false(void **state)
{
	EVP_PKEY *root_key = read_key("root.key"), *mid_key = EVP_EC_gen("P-256");
	X509 *root = parse(F.root_der, F.root_len), *mid;
	struct err err = {0};
	FILE *f;

	mid = make_cert(root, root_key, "mid", mid_key, "critical,CA:FALSE", "critical,keyCertSign",
	    "keyid:always");
	f = fopen(path("mid.key"), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, mid_key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	f = fopen(path("mid.pem"), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, mid), 1);
	assert_int_equal(fclose(f), 0);
	assert_null(certs_ca_load(path("mid.key"), path("mid.pem"), &err));
	assert_non_null(strstr(err.msg, "not a CA"));
	unlink(path("mid.key"));
	unlink(path("mid.pem"));
	X509_free(mid);
	X509_free(root);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(mid_key);
}

static void
test_verify_malformed(void **state)
{
	struct certs_der junk = {(const uint8_t *)"\x30\x03\x02\x01\x01", 5};
	struct certs_der root = {F.root_der, F.root_len}, ek = {F.ek_rsa, F.ek_rsa_len};
	struct certs_der empty = {F.ek_rsa, 0}, cut = {F.ek_rsa, F.ek_rsa_len - 1};
	struct err err = {0};

	assert_int_equal(
	    certs_verify_chain(&junk, NULL, 0, &root, 1, F.now, &err), CERTS_MALFORMED);
	assert_non_null(strstr(err.msg, "leaf"));
	assert_int_equal(
	    certs_verify_chain(&ek, &junk, 1, &root, 1, F.now, &err), CERTS_MALFORMED);
	assert_int_equal(
	    certs_verify_chain(&ek, NULL, 0, &junk, 1, F.now, &err), CERTS_MALFORMED);
	assert_int_equal(certs_verify_chain(&empty, NULL, 0, &root, 1, F.now, &err),
	    CERTS_MALFORMED);
	assert_int_equal(
	    certs_verify_chain(&cut, NULL, 0, &root, 1, F.now, NULL), CERTS_MALFORMED);
	/* No roots at all. */
	assert_int_equal(
	    certs_verify_chain(&ek, NULL, 0, NULL, 0, F.now, &err), CERTS_UNTRUSTED);
	for (int v = CERTS_VALID; v <= CERTS_INVALID; v++)
		for (int w = CERTS_VALID; w < v; w++)
			assert_string_not_equal(certs_verdict_name((enum certs_verdict)v),
			    certs_verdict_name((enum certs_verdict)w));
}

/* A throwaway self-signed certificate carrying one raw extension. */
static uint8_t *
cert_with_ext(const char *oid, const void *value, size_t vlen, int copies, size_t *len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	uint8_t *out;
	int n;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	ASN1_OCTET_STRING_set(os, value, (int)vlen);
	for (int i = 0; i < copies; i++) {
		X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	out = dup_bytes(der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	X509_free(x);
	EVP_PKEY_free(k);
	return out;
}

static void
test_parse_virtual_malformed(void **state)
{
	uint8_t good[128], bad[128], *der;
	size_t glen = vext_der(good, true), len = 0;
	struct certs_virtual v;
	struct err err = {0};

	/* The hand-made DER parses, so the refusals below are about the fault. */
	der = cert_with_ext(CERTS_OID_VIRTUAL_EXT, good, glen, 1, &len);
	assert_int_equal(certs_parse_virtual(der, len, &v, &err), 0);
	assert_true(v.is_virtual);
	assert_string_equal(v.instance_uuid, UUID);
	free(der);
	/* Twice. */
	der = cert_with_ext(CERTS_OID_VIRTUAL_EXT, good, glen, 2, &len);
	assert_int_equal(certs_parse_virtual(der, len, &v, &err), -1);
	assert_non_null(strstr(err.msg, "more than once"));
	free(der);
	/* Version 2; a BOOLEAN that is not DER; a short digest; trailing bytes. */
	for (int c = 0; c < 4; c++) {
		size_t blen = glen;
		memcpy(bad, good, glen);
		switch (c) {
		case 0: bad[4] = 2; break;
		case 1: bad[7] = 0x01; break;
		case 2: bad[9] = CERTS_DIGEST_LEN - 1; break;
		case 3: bad[blen++] = 0; break;
		}
		der = cert_with_ext(CERTS_OID_VIRTUAL_EXT, bad, blen, 1, &len);
		assert_int_equal(certs_parse_virtual(der, len, &v, &err), -1);
		assert_false(v.is_virtual);
		free(der);
	}
	assert_int_equal(certs_parse_virtual(good, glen, &v, &err), -1);
	/* No extension: not virtual. */
	assert_int_equal(certs_parse_virtual(F.root_der, F.root_len, &v, &err), 0);
	assert_false(v.is_virtual);
}

/* The other common encoding: all three attributes in one RDN. */
static void
test_ek_info_foreign(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *dn = X509_NAME_new();
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	struct certs_ek_info info;
	unsigned char *der = NULL;
	struct err err = {0};
	int n;

	X509_NAME_add_entry_by_txt(dn, CERTS_OID_TCG_TPM_MANUFACTURER, V_ASN1_UTF8STRING,
	    (const unsigned char *)"id:49465800", -1, -1, 0);
	X509_NAME_add_entry_by_txt(dn, CERTS_OID_TCG_TPM_MODEL, V_ASN1_UTF8STRING,
	    (const unsigned char *)"SLB 9670 TPM2.0", -1, -1, -1);
	X509_NAME_add_entry_by_txt(dn, CERTS_OID_TCG_TPM_VERSION, V_ASN1_UTF8STRING,
	    (const unsigned char *)"id:0755", -1, -1, -1);
	assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(dn, 2)), 0);
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn);
	sk_GENERAL_NAME_push(gens, gn);
	X509_set_version(x, X509_VERSION_3);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_int_equal(certs_ek_info(der, (size_t)n, &info, &err), 0);
	assert_string_equal(info.manufacturer, "id:49465800");
	assert_string_equal(info.model, "SLB 9670 TPM2.0");
	assert_string_equal(info.version, "id:0755");
	assert_false(info.has_spec);
	OPENSSL_free(der);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(k);

	/* Not an EK certificate. */
	assert_int_equal(certs_ek_info(F.ck_cert, F.ck_cert_len, &info, &err), -1);
	assert_int_equal(certs_ek_info(F.ek_rsa, 10, &info, &err), -1);
}

static void
test_files(void **state)
{
	uint8_t *der = NULL;
	size_t len = 0;

	assert_int_equal(certs_write_pem(path("ek.pem"), F.ek_ecc, F.ek_ecc_len), 0);
	assert_int_equal(certs_read(path("ek.pem"), &der, &len), 0);
	assert_int_equal(len, F.ek_ecc_len);
	assert_memory_equal(der, F.ek_ecc, len);
	free(der);
	assert_int_equal(fileio_write_atomic(path("ek.der"), F.ek_ecc, F.ek_ecc_len, 0644), 0);
	assert_int_equal(certs_read(path("ek.der"), &der, &len), 0);
	assert_int_equal(len, F.ek_ecc_len);
	assert_memory_equal(der, F.ek_ecc, len);
	free(der);
	assert_int_equal(certs_read(path("root.key"), &der, &len), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(certs_read(path("missing.pem"), &der, &len), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(certs_write_pem(path("junk.pem"), F.ek_ecc, 12), -1);
	assert_int_equal(access(path("junk.pem"), F_OK), -1);
}

/* PEM in memory, issuers and subjects (for vtpm-ca's protocol and trust
 * store). */
static void
test_pem_and_issuer(void **state)
{
	char *a = certs_pem_encode(F.privacy_der, F.privacy_len);
	char *b = certs_pem_encode(F.root_der, F.root_len), *text, subject[256];
	uint8_t *der = NULL;
	size_t off = 0, len = 0, n;
	struct err err = {0};

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(strstr(a, "-----BEGIN CERTIFICATE-----\n"));
	text = malloc(strlen(a) + strlen(b) + 64);
	assert_non_null(text);
	sprintf(text, "leading text\n%s\nbetween\n%strailing\n", a, b);
	n = strlen(text);
	assert_int_equal(certs_pem_next(text, n, &off, &der, &len, &err), 1);
	assert_int_equal(len, F.privacy_len);
	assert_memory_equal(der, F.privacy_der, len);
	free(der);
	assert_int_equal(certs_pem_next(text, n, &off, &der, &len, &err), 1);
	assert_int_equal(len, F.root_len);
	assert_memory_equal(der, F.root_der, len);
	free(der);
	assert_int_equal(certs_pem_next(text, n, &off, &der, &len, &err), 0);
	assert_null(der);
	/* A damaged body. */
	off = 0;
	text[strlen("leading text\n") + 40] ^= 0x01;
	assert_int_equal(certs_pem_next(text, n, &off, &der, &len, &err), -1);
	assert_null(der);
	assert_true(err.msg[0] != '\0');
	free(text);
	free(a);
	free(b);
	assert_null(certs_pem_encode(F.root_der, F.root_len - 1));

	assert_int_equal(certs_issued_by(F.ek_ecc, F.ek_ecc_len, F.virt_der, F.virt_len), 1);
	assert_int_equal(certs_issued_by(F.ek_ecc, F.ek_ecc_len, F.privacy_der, F.privacy_len), 0);
	assert_int_equal(certs_issued_by(F.ek_ecc, F.ek_ecc_len, F.root_der, F.root_len), 0);
	assert_int_equal(certs_issued_by(F.virt_der, F.virt_len, F.root_der, F.root_len), 1);
	assert_int_equal(certs_issued_by(F.root_der, F.root_len, F.root_der, F.root_len), 1);
	assert_int_equal(certs_issued_by(F.virt_der, F.virt_len, F.virt_der, F.virt_len), 0);
	assert_int_equal(certs_issued_by(F.root_der, 10, F.root_der, F.root_len), -1);

	assert_int_equal(certs_subject(F.privacy_der, F.privacy_len, subject, sizeof(subject)), 0);
	assert_non_null(strstr(subject, "CN=vtpmd Privacy CA"));
	assert_int_equal(certs_subject(F.privacy_der, 3, subject, sizeof(subject)), -1);
}

/* The path that verified: the issuers up to and with the root, whatever
 * else was offered. */
static void
test_verify_path(void **state)
{
	struct certs_der offered[] = {{F.privacy_der, F.privacy_len}, {F.root_der, F.root_len},
	    {F.virt_der, F.virt_len}};
	struct certs_der leaf = {F.ek_rsa, F.ek_rsa_len}, root = {F.root_der, F.root_len};
	struct certs_der chain[4], other;
	struct certs_ca *ca;
	uint8_t *o = NULL;
	size_t n = 99, olen = 0;
	struct err err = {0};

	assert_int_equal(certs_verify_path(&leaf, offered, 3, &root, 1, F.now, chain, 4, &n, &err),
	    CERTS_VALID);
	assert_int_equal(n, 2);
	assert_int_equal(chain[0].len, F.virt_len);
	assert_memory_equal(chain[0].der, F.virt_der, F.virt_len);
	assert_int_equal(chain[1].len, F.root_len);
	assert_memory_equal(chain[1].der, F.root_der, F.root_len);
	certs_path_clear(chain, &n);
	assert_int_equal(n, 0);
	/* Too long for the room given. */
	assert_int_equal(certs_verify_path(&leaf, offered, 3, &root, 1, F.now, chain, 1, &n, &err),
	    CERTS_INVALID);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err.msg, "2 issuers"));
	/* Another root: nothing. */
	ca = certs_ca_create("vtpmd Root CA", CERTS_CA_ROOT, NULL, &F.cav, path("pathroot.key"),
	    path("pathroot.pem"), &err);
	assert_non_null(ca);
	assert_int_equal(certs_ca_cert(ca, &o, &olen), 0);
	other = (struct certs_der){o, olen};
	assert_int_equal(certs_verify_path(&leaf, offered, 3, &other, 1, F.now, chain, 4, &n, &err),
	    CERTS_UNTRUSTED);
	assert_int_equal(n, 0);
	free(o);
	certs_ca_free(ca);
}

/* der re-signed by the Virtualization CA after fn changed it. */
static uint8_t *
resign(const uint8_t *der, size_t len, void (*fn)(X509 *), size_t *out_len)
{
	EVP_PKEY *key = read_key("virt.key");
	X509 *x = parse(der, len);
	unsigned char *p = NULL;
	uint8_t *out;
	int n;

	fn(x);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	n = i2d_X509(x, &p);
	assert_true(n > 0);
	out = dup_bytes(p, (size_t)n);
	*out_len = (size_t)n;
	OPENSSL_free(p);
	X509_free(x);
	EVP_PKEY_free(key);
	return out;
}

static void
drop_ext(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	X509_EXTENSION_free(X509_delete_ext(x, i));
}

static void
drop_san(X509 *x)
{
	drop_ext(x, NID_subject_alt_name);
}

static void
drop_eku(X509 *x)
{
	drop_ext(x, NID_ext_key_usage);
}

static void
drop_sda(X509 *x)
{
	drop_ext(x, NID_subject_directory_attributes);
}

static void
drop_policy(X509 *x)
{
	drop_ext(x, NID_certificate_policies);
}

static void
drop_bc(X509 *x)
{
	drop_ext(x, NID_basic_constraints);
}

static void
san_not_critical(X509 *x)
{
	X509_EXTENSION_set_critical(X509_get_ext(x, X509_get_ext_by_NID(x, NID_subject_alt_name, -1)),
	    0);
}

static void
ku_signing(X509 *x)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();

	drop_ext(x, NID_key_usage);
	ASN1_BIT_STRING_set_bit(ku, 0, 1); /* digitalSignature */
	ASN1_BIT_STRING_set_bit(ku, 2, 1); /* keyEncipherment */
	X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT);
	ASN1_BIT_STRING_free(ku);
}

/* certs_check_vek, certs_check_ck, certs_check_root: what vtpmd's CAs
 * issue passes, anything missing or of another kind does not. */
static void
test_check_profiles(void **state)
{
	static const struct {
		void (*fn)(X509 *);
		const char *why;
	} defects[] = {
	    {drop_san, "subjectAltName"},
	    {drop_eku, "tcg-kp-EKCertificate"},
	    {drop_sda, "tpmSpecification"},
	    {drop_policy, "vEK policy"},
	    {drop_bc, "end entity"},
	    {san_not_critical, "not critical"},
	    {ku_signing, "keyUsage"},
	};
	struct certs_ek_info info;
	struct certs_host_key hk;
	struct err err = {0};
	uint8_t *bad;
	size_t len;

	assert_int_equal(certs_check_vek(F.ek_rsa, F.ek_rsa_len, &info, &err), 0);
	assert_string_equal(info.model, CERTS_VTPM_MODEL);
	assert_true(info.has_spec);
	assert_int_equal(certs_check_vek(F.ek_ecc, F.ek_ecc_len, &info, &err), 0);
	for (size_t i = 0; i < sizeof(defects) / sizeof(defects[0]); i++) {
		bad = resign(F.ek_rsa, F.ek_rsa_len, defects[i].fn, &len);
		err.msg[0] = '\0';
		assert_int_equal(certs_check_vek(bad, len, &info, &err), -1);
		if (strstr(err.msg, defects[i].why) == NULL)
			fail_msg("defect %zu: '%s' does not say '%s'", i, err.msg, defects[i].why);
		free(bad);
	}
	/* Other kinds of certificate. */
	assert_int_equal(certs_check_vek(F.ck_cert, F.ck_cert_len, &info, &err), -1);
	assert_int_equal(certs_check_vek(F.ak_cert, F.ak_cert_len, &info, &err), -1);
	assert_int_equal(certs_check_vek(F.virt_der, F.virt_len, &info, &err), -1);
	assert_int_equal(certs_check_vek(F.ek_rsa, 5, &info, &err), -1);

	assert_int_equal(certs_check_ck(F.ck_cert, F.ck_cert_len, &hk, &err), 0);
	assert_string_equal(hk.host, "host-a.example");
	assert_memory_equal(hk.host_ek_digest, F.host_ek_digest, CERTS_DIGEST_LEN);
	assert_int_equal(certs_check_ck(F.ak_cert, F.ak_cert_len, &hk, &err), -1);
	assert_non_null(strstr(err.msg, "host CK policy"));
	assert_int_equal(certs_check_ck(F.ek_ecc, F.ek_ecc_len, &hk, &err), -1);
	assert_non_null(strstr(err.msg, "keyUsage"));
	assert_int_equal(certs_check_ck(F.privacy_der, F.privacy_len, &hk, &err), -1);

	assert_int_equal(certs_check_root(F.root_der, F.root_len, &err), 0);
	assert_int_equal(certs_check_root(F.virt_der, F.virt_len, &err), -1);
	assert_non_null(strstr(err.msg, "not self-signed"));
	assert_int_equal(certs_check_root(F.ck_cert, F.ck_cert_len, &err), -1);
	assert_int_equal(certs_check_root(F.root_der, 3, &err), -1);
}

/* Big-endian bytes of a key parameter, left-padded to len. */
static void
key_param(EVP_PKEY *k, const char *name, uint8_t *out, size_t len)
{
	BIGNUM *bn = NULL;

	assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
	assert_int_equal(BN_bn2binpad(bn, out, (int)len), (int)len);
	BN_free(bn);
}

/* certs_cert_key_is_rsa, certs_cert_key_is_p256: a certificate's key
 * against a TPM public area's numbers. */
static void
test_cert_key_is(void **state)
{
	uint8_t n[256], x[32], y[32];

	key_param(F.rsa_key, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n));
	key_param(F.ecc_key, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(x));
	key_param(F.ecc_key, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y));
	assert_int_equal(certs_cert_key_is_rsa(F.ek_rsa, F.ek_rsa_len, n, sizeof(n), 0), 1);
	assert_int_equal(certs_cert_key_is_rsa(F.ek_rsa, F.ek_rsa_len, n, sizeof(n), 65537), 1);
	assert_int_equal(certs_cert_key_is_rsa(F.ek_rsa, F.ek_rsa_len, n, sizeof(n), 3), 0);
	assert_int_equal(certs_cert_key_is_p256(F.ek_ecc, F.ek_ecc_len, x, y), 1);
	assert_int_equal(certs_cert_key_is_p256(F.ek_ecc, F.ek_ecc_len, y, x), 0);
	/* Another key, another type, not a certificate. */
	assert_int_equal(certs_cert_key_is_p256(F.ck_cert, F.ck_cert_len, x, y), 0);
	assert_int_equal(certs_cert_key_is_rsa(F.ek_ecc, F.ek_ecc_len, n, sizeof(n), 0), 0);
	assert_int_equal(certs_cert_key_is_p256(F.ek_rsa, F.ek_rsa_len, x, y), 0);
	n[sizeof(n) - 1] ^= 1;
	assert_int_equal(certs_cert_key_is_rsa(F.ek_rsa, F.ek_rsa_len, n, sizeof(n), 0), 0);
	assert_int_equal(certs_cert_key_is_rsa(F.ek_rsa, 10, n, sizeof(n), 0), -1);
	assert_int_equal(certs_cert_key_is_p256(NULL, 0, x, y), -1);
}

/* An AK certificate's references read in one light parse, as a challenger
 * does per verification: its own, and the vEK and CK certificates its
 * VtpmdLineage names; none for one without (a vTPM's: is_virtual). */
static void
test_cert_lineage(void **state)
{
	struct certs_ak_req akr = {.ak = F.ak, .subject = "vm-a attestation key"};
	struct certs_ref self, ref;
	struct certs_lineage l;
	struct err err = {0};
	bool is_virtual;
	uint8_t *der = NULL;
	size_t len = 0;

	assert_int_equal(
	    certs_cert_lineage(F.ak_cert, F.ak_cert_len, &self, &l, &is_virtual, &err), 0);
	assert_false(l.present);
	assert_true(is_virtual);
	assert_int_equal(certs_cert_ref(F.ak_cert, F.ak_cert_len, &ref, &err), 0);
	assert_memory_equal(&self, &ref, sizeof(ref));

	akr.validity = F.leafv;
	assert_int_equal(certs_ak_from_ek(F.ek_ecc, F.ek_ecc_len, &akr, &err), 0);
	akr.lineage.present = true;
	akr.lineage.has_vek = true;
	assert_int_equal(certs_cert_ref(F.ck_cert, F.ck_cert_len, &akr.lineage.ck, &err), 0);
	assert_int_equal(certs_cert_ref(F.ek_ecc, F.ek_ecc_len, &akr.lineage.vek, &err), 0);
	if (certs_issue_ak(F.privacy, &akr, &der, &len, &err) != 0)
		fail_msg("certs_issue_ak: %s", err.msg);
	assert_int_equal(certs_cert_lineage(der, len, &self, &l, &is_virtual, &err), 0);
	assert_true(l.present && l.has_vek && is_virtual);
	assert_memory_equal(&l.ck, &akr.lineage.ck, sizeof(l.ck));
	assert_memory_equal(&l.vek, &akr.lineage.vek, sizeof(l.vek));
	assert_int_equal(certs_cert_ref(der, len, &ref, &err), 0);
	assert_memory_equal(&self, &ref, sizeof(ref));
	assert_int_equal(certs_cert_lineage(der, len - 1, &self, &l, &is_virtual, &err), -1);
	assert_int_equal(certs_cert_lineage(der, 10, &self, &l, &is_virtual, &err), -1);
	free(der);
}

/* A CRL of ca listing serial, current from F.now until next_update. */
static uint8_t *
crl_of(const struct certs_ca *ca, const char *serial, int64_t next_update, size_t *len)
{
	struct certs_crl_entry e = {.revoked_at = F.now - 10};
	struct certs_crl_req req = {.number = 7,
	    .this_update = F.now - 60,
	    .next_update = next_update,
	    .entries = &e,
	    .n = 1};
	struct err err = {0};
	uint8_t *der = NULL;

	snprintf(e.serial, sizeof(e.serial), "%s", serial);
	if (certs_issue_crl(ca, &req, &der, len, &err) != 0)
		fail_msg("certs_issue_crl: %s", err.msg);
	return der;
}

/* A challenger's CRLs: checked once when added (signer among the issuers
 * given and chaining to a root, current), then looked up by reference. */
static void
test_crls(void **state)
{
	const struct certs_der issuers[] = {
	    {F.privacy_der, F.privacy_len}, {F.virt_der, F.virt_len}};
	const struct certs_der root = {F.root_der, F.root_len};
	char ak_serial[CERTS_SERIAL_HEX_MAX + 1];
	struct certs_ref ak, ck, ek;
	struct certs_crls *s = certs_crls_new();
	uint8_t *der, *stale;
	size_t len, stale_len, n = 0;
	uint64_t number = 0;
	int64_t next = 0, at = 0;
	struct err err = {0};
	char *pem;

	assert_non_null(s);
	assert_int_equal(certs_cert_serial(F.ak_cert, F.ak_cert_len, ak_serial), 0);
	assert_int_equal(certs_cert_ref(F.ak_cert, F.ak_cert_len, &ak, &err), 0);
	assert_int_equal(certs_cert_ref(F.ck_cert, F.ck_cert_len, &ck, &err), 0);
	assert_int_equal(certs_cert_ref(F.ek_ecc, F.ek_ecc_len, &ek, &err), 0);
	der = crl_of(F.privacy, ak_serial, F.now + 3600, &len);
	assert_int_equal(certs_crl_info(der, len, &number, &next, &n), 0);
	assert_int_equal(number, 7);
	assert_int_equal(next, F.now + 3600);
	assert_int_equal(n, 1);
	pem = certs_crl_pem(der, len);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "-----BEGIN X509 CRL-----"));

	/* refused: signed by a CA not given, past its nextUpdate, altered, not a CRL */
	assert_int_equal(certs_crls_add(s, der, len, &issuers[1], 1, &root, 1, F.now, &err), -1);
	assert_non_null(strstr(err.msg, "signed by no CA certificate given"));
	stale = crl_of(F.privacy, ak_serial, F.now - 1, &stale_len);
	assert_int_equal(
	    certs_crls_add(s, stale, stale_len, issuers, 2, &root, 1, F.now, &err), -1);
	stale[stale_len - 5] ^= 1;
	assert_int_equal(
	    certs_crls_add(s, stale, stale_len, issuers, 2, &root, 1, F.now - 30, &err), -1);
	assert_int_equal(
	    certs_crls_add(s, F.ak_cert, F.ak_cert_len, issuers, 2, &root, 1, F.now, &err), -1);
	/* a lookup without the issuer's CRL is unknown, not "not revoked" */
	assert_int_equal(certs_crls_lookup(s, &ak, &at, &err), -1);

	assert_int_equal(certs_crls_add(s, der, len, issuers, 2, &root, 1, F.now, &err), 0);
	assert_int_equal(certs_crls_lookup(s, &ak, &at, &err), 1);
	assert_int_equal(at, F.now - 10);
	assert_int_equal(certs_crls_lookup(s, &ck, &at, &err), 0);
	assert_int_equal(certs_crls_lookup(s, &ek, &at, &err), -1);
	free(der);
	free(stale);
	free(pem);
	certs_crls_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ca_hierarchy),
	    cmocka_unit_test(test_ca_load),
	    cmocka_unit_test(test_ca_load_not_ca),
	    cmocka_unit_test(test_ca_refusals),
	    cmocka_unit_test(test_single_ca),
	    cmocka_unit_test(test_ek_rsa),
	    cmocka_unit_test(test_ek_ecc),
	    cmocka_unit_test(test_ek_fields_follow_request),
	    cmocka_unit_test(test_ek_refusals),
	    cmocka_unit_test(test_pkey_from_tpm),
	    cmocka_unit_test(test_pkey_check_remembered),
	    cmocka_unit_test(test_pkey_spki),
	    cmocka_unit_test(test_ak),
	    cmocka_unit_test(test_check_ak_role),
	    cmocka_unit_test(test_ak_empty_subject),
	    cmocka_unit_test(test_ck),
	    cmocka_unit_test(test_ck_refusals),
	    cmocka_unit_test(test_verify_valid),
	    cmocka_unit_test(test_verify_wrong_root),
	    cmocka_unit_test(test_verify_time),
	    cmocka_unit_test(test_verify_tampered),
	    cmocka_unit_test(test_verify_not_ca),
	    cmocka_unit_test(test_ca_load_ca_false),
	    cmocka_unit_test(test_verify_malformed),
	    cmocka_unit_test(test_parse_virtual_malformed),
	    cmocka_unit_test(test_ek_info_foreign),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_pem_and_issuer),
	    cmocka_unit_test(test_verify_path),
	    cmocka_unit_test(test_check_profiles),
	    cmocka_unit_test(test_cert_key_is),
	    cmocka_unit_test(test_cert_lineage),
	    cmocka_unit_test(test_crls),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, setup, teardown);
}
