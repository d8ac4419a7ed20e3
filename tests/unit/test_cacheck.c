/*
 * test_cacheck.c: what vtpmd accepts from a CA (src/manager/cacheck.c),
 * and that provisioning writes nothing into a vTPM unless every EK
 * certificate passed (src/manager/provision.c).
 *
 * A hierarchy like vtpm-ca's (root -> Privacy CA, root -> Virtualization
 * CA) and another root are made in a mkdtemp directory, with a host CK and
 * vEKs whose TPM2B_PUBLIC areas are marshalled here. cacheck_ck and
 * cacheck_ek are given genuine answers and answers an impostor could give
 * (another key, another root, no root, malformed, another instance, host
 * or CK, another TPM, expired, padded chains), and each refusal must name
 * the CA and the reason. Provisioning runs with the vTPM, the host TPM and
 * the CA faked at link time (WRAP_test_cacheck in the Makefile): the fake
 * vTPM records every NV write, the fake CA answers from a script; a refused
 * answer, first or second, must leave the NV unwritten.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "manager/manager.h"

#define YEAR	    (INT64_C(365) * 24 * 3600)
#define UUID	    "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23"
#define HOST	    "rack1"
#define HOST_CONFIG "rack1-approved"
#define VIRT_URL    "http://virt.example:8440"
#define PRIV_URL    "http://privacy.example:8440"

/* The group's CAs, keys and certificates. */
static struct {
	char dir[64];
	struct certs_validity cav, leafv;
	struct certs_ca *root, *privacy, *virt, *oroot, *ovirt;
	uint8_t *root_der, *virt_der, *privacy_der, *oroot_der, *ovirt_der;
	size_t root_len, virt_len, privacy_len, oroot_len, ovirt_len;
	struct cacheck_roots roots, oroots;
	EVP_PKEY *ck_key, *hek_key, *rsa_key, *ecc_key;
	uint8_t ck_pub[256], rsa_pub[512], ecc_pub[256];
	size_t ck_pub_len, rsa_pub_len, ecc_pub_len;
	uint8_t *ck_cert, *hek_cert;
	size_t ck_cert_len, hek_cert_len;
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

/* --- TPM2B_PUBLIC areas ----------------------------------------------- */

static size_t
put16(uint8_t *p, unsigned int v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

static size_t
put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
	return 4;
}

static size_t
put_bn(uint8_t *p, EVP_PKEY *k, const char *param, size_t len)
{
	BIGNUM *bn = NULL;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	put16(p, (unsigned int)len);
	assert_int_equal(BN_bn2binpad(bn, p + 2, (int)len), (int)len);
	BN_free(bn);
	return 2 + len;
}

/* An ECC P-256 key's TPM2B_PUBLIC: a restricted signing key (the CK) or
 * a restricted decryption key (an EK, AES-128-CFB). */
static size_t
ecc_public(EVP_PKEY *k, bool sign, uint8_t *out)
{
	size_t n = 2;

	n += put16(out + n, 0x0023); /* TPM_ALG_ECC */
	n += put16(out + n, 0x000b); /* SHA-256 */
	n += put32(out + n, sign ? 0x00050472 : 0x000300b2);
	n += put16(out + n, 0); /* authPolicy */
	if (sign) {
		n += put16(out + n, 0x0010);			    /* symmetric NULL */
		n += put16(out + n, 0x0018);			    /* ECDSA */
		n += put16(out + n, 0x000b);			    /* SHA-256 */
	} else {
		n += put16(out + n, 0x0006); /* AES */
		n += put16(out + n, 128);
		n += put16(out + n, 0x0043); /* CFB */
		n += put16(out + n, 0x0010); /* scheme NULL */
	}
	n += put16(out + n, 0x0003); /* NIST P-256 */
	n += put16(out + n, 0x0010); /* kdf NULL */
	n += put_bn(out + n, k, OSSL_PKEY_PARAM_EC_PUB_X, 32);
	n += put_bn(out + n, k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
	put16(out, (unsigned int)(n - 2));
	return n;
}

/* An RSA-2048 EK's TPM2B_PUBLIC. */
static size_t
rsa_public(EVP_PKEY *k, uint8_t *out)
{
	size_t n = 2;

	n += put16(out + n, 0x0001); /* TPM_ALG_RSA */
	n += put16(out + n, 0x000b);
	n += put32(out + n, 0x000300b2);
	n += put16(out + n, 0);
	n += put16(out + n, 0x0006); /* AES */
	n += put16(out + n, 128);
	n += put16(out + n, 0x0043); /* CFB */
	n += put16(out + n, 0x0010); /* scheme NULL */
	n += put16(out + n, 2048);
	n += put32(out + n, 0); /* the default exponent */
	n += put_bn(out + n, k, OSSL_PKEY_PARAM_RSA_N, 256);
	put16(out, (unsigned int)(n - 2));
	return n;
}

/* --- certificates and answers ------------------------------------------ */

static struct certs_pkey *
pub_of(EVP_PKEY *k)
{
	unsigned char *spki = NULL;
	struct certs_pkey *pk;
	int n = i2d_PUBKEY(k, &spki);

	assert_true(n > 0);
	pk = certs_pkey_from_spki(spki, (size_t)n);
	OPENSSL_free(spki);
	assert_non_null(pk);
	return pk;
}

static struct certs_ca *
make_ca(const char *cn, enum certs_ca_kind kind, const struct certs_ca *parent, const char *name,
    uint8_t **der, size_t *len)
{
	char key[32], cert[32];
	struct err err = {0};
	struct certs_ca *ca;

	snprintf(key, sizeof(key), "%s.key", name);
	snprintf(cert, sizeof(cert), "%s.pem", name);
	ca = certs_ca_create(cn, kind, parent, &F.cav, path(key), path(cert), &err);
	if (ca == NULL)
		fail_msg("%s: %s", name, err.msg);
	assert_int_equal(certs_ca_cert(ca, der, len), 0);
	return ca;
}

/* What an EK certificate says, changed per test from the genuine. */
struct ek_spec {
	const struct certs_ca *ca;
	EVP_PKEY *key;
	const char *uuid, *host, *config;
	const uint8_t *ck_cert;
	size_t ck_cert_len;
	uint32_t manufacturer;
	bool not_virtual;
	struct certs_validity validity;
};

static void
ek_spec_genuine(struct ek_spec *s, EVP_PKEY *key)
{
	memset(s, 0, sizeof(*s));
	s->ca = F.virt;
	s->key = key;
	s->uuid = UUID;
	s->host = HOST;
	s->config = HOST_CONFIG;
	s->ck_cert = F.ck_cert;
	s->ck_cert_len = F.ck_cert_len;
	s->manufacturer = CERTS_VTPM_MANUFACTURER;
	s->validity = F.leafv;
}

static uint8_t *
issue_ek(const struct ek_spec *s, size_t *len)
{
	struct certs_ek_req req = {0};
	struct err err = {0};
	uint8_t *der = NULL;

	req.ek = pub_of(s->key);
	certs_tpm_defaults(&req.tpm);
	req.tpm.manufacturer = s->manufacturer;
	req.virt.is_virtual = !s->not_virtual;
	assert_int_equal(certs_cert_key_digest(s->ck_cert, s->ck_cert_len, req.virt.ck_digest), 0);
	snprintf(req.virt.host, sizeof(req.virt.host), "%s", s->host);
	snprintf(req.virt.host_config, sizeof(req.virt.host_config), "%s", s->config);
	snprintf(req.virt.instance_uuid, sizeof(req.virt.instance_uuid), "%s", s->uuid);
	req.validity = s->validity;
	if (certs_issue_ek(s->ca, &req, &der, len, &err) != 0)
		fail_msg("certs_issue_ek: %s", err.msg);
	certs_pkey_free((struct certs_pkey *)req.ek);
	return der;
}

static json_t *
pem_json(const uint8_t *der, size_t len)
{
	char *pem = certs_pem_encode(der, len);
	json_t *s;

	assert_non_null(pem);
	s = json_string(pem);
	free(pem);
	return s;
}

/* An issuing answer: the certificate, and chain[0 .. n). */
static json_t *
answer(const uint8_t *der, size_t len, const struct certs_der *chain, size_t n, const char *config)
{
	json_t *o = json_object(), *a = json_array();

	json_object_set_new(o, "certificate", pem_json(der, len));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, pem_json(chain[i].der, chain[i].len));
	json_object_set_new(o, "chain", a);
	json_object_set_new(o, "serial", json_string("01"));
	if (config != NULL)
		json_object_set_new(o, "host_config", json_string(config));
	return o;
}

/* The Virtualization CA's answer with the EK certificate s describes. */
static json_t *
ek_answer(const struct ek_spec *s)
{
	struct certs_der chain[] = {{F.virt_der, F.virt_len}, {F.root_der, F.root_len}};
	size_t len;
	uint8_t *der = issue_ek(s, &len);
	json_t *o;

	if (s->ca == F.ovirt) {
		chain[0] = (struct certs_der){F.ovirt_der, F.ovirt_len};
		chain[1] = (struct certs_der){F.oroot_der, F.oroot_len};
	}
	o = answer(der, len, chain, 2, s->config);
	free(der);
	return o;
}

static void
roots_of(struct cacheck_roots *r, const uint8_t *der, size_t len)
{
	char *pem = certs_pem_encode(der, len);
	struct err err = {0};

	assert_non_null(pem);
	if (cacheck_roots_parse(pem, strlen(pem), r, &err) != 0)
		fail_msg("roots: %s", err.msg);
	free(pem);
}

static int
setup(void **state)
{
	struct certs_ck_req ckr = {0};
	struct err err = {0};
	int64_t now = time(NULL);

	snprintf(F.dir, sizeof(F.dir), "/tmp/vtpmd-cacheck.XXXXXX");
	if (mkdtemp(F.dir) == NULL)
		return -1;
	F.cav = (struct certs_validity){now - 3600, now + 20 * YEAR};
	F.leafv = (struct certs_validity){now - 60, CERTS_NO_EXPIRY};
	F.root = make_ca("test Root CA", CERTS_CA_ROOT, NULL, "root", &F.root_der, &F.root_len);
	F.privacy = make_ca("test Privacy CA", CERTS_CA_ISSUING, F.root, "privacy", &F.privacy_der,
	    &F.privacy_len);
	F.virt = make_ca(
	    "test Virtualization CA", CERTS_CA_ISSUING, F.root, "virt", &F.virt_der, &F.virt_len);
	/* An impostor's, with the genuine names. */
	F.oroot = make_ca("test Root CA", CERTS_CA_ROOT, NULL, "oroot", &F.oroot_der, &F.oroot_len);
	F.ovirt = make_ca("test Virtualization CA", CERTS_CA_ISSUING, F.oroot, "ovirt", &F.ovirt_der,
	    &F.ovirt_len);
	roots_of(&F.roots, F.root_der, F.root_len);
	roots_of(&F.oroots, F.oroot_der, F.oroot_len);

	F.ck_key = EVP_EC_gen("P-256");
	F.hek_key = EVP_EC_gen("P-256");
	F.rsa_key = EVP_RSA_gen(2048);
	F.ecc_key = EVP_EC_gen("P-256");
	if (F.ck_key == NULL || F.hek_key == NULL || F.rsa_key == NULL || F.ecc_key == NULL)
		return -1;
	F.ck_pub_len = ecc_public(F.ck_key, true, F.ck_pub);
	F.ecc_pub_len = ecc_public(F.ecc_key, false, F.ecc_pub);
	F.rsa_pub_len = rsa_public(F.rsa_key, F.rsa_pub);

	/* The host EK's certificate (only its key matters here). */
	ckr.ck = pub_of(F.hek_key);
	ckr.host = "host EK stand-in";
	ckr.validity = F.leafv;
	if (certs_issue_ck(F.privacy, &ckr, &F.hek_cert, &F.hek_cert_len, &err) != 0)
		goto fail;
	certs_pkey_free((struct certs_pkey *)ckr.ck);
	ckr.ck = pub_of(F.ck_key);
	ckr.host = HOST;
	if (certs_cert_key_digest(F.hek_cert, F.hek_cert_len, ckr.host_ek_digest) != 0 ||
	    certs_issue_ck(F.privacy, &ckr, &F.ck_cert, &F.ck_cert_len, &err) != 0)
		goto fail;
	certs_pkey_free((struct certs_pkey *)ckr.ck);
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
	certs_ca_free(F.oroot);
	certs_ca_free(F.ovirt);
	free(F.root_der);
	free(F.privacy_der);
	free(F.virt_der);
	free(F.oroot_der);
	free(F.ovirt_der);
	cacheck_roots_clear(&F.roots);
	cacheck_roots_clear(&F.oroots);
	EVP_PKEY_free(F.ck_key);
	EVP_PKEY_free(F.hek_key);
	EVP_PKEY_free(F.rsa_key);
	EVP_PKEY_free(F.ecc_key);
	free(F.ck_cert);
	free(F.hek_cert);
	fileio_remove_tree(F.dir);
	return 0;
}

/* --- cacheck_ek ---------------------------------------------------------- */

static void
ek_want(struct cacheck_ek_want *w, bool rsa)
{
	memset(w, 0, sizeof(*w));
	w->url = VIRT_URL;
	w->roots = &F.roots;
	w->type = rsa ? "rsa2048" : "ecc-p256";
	w->vek_public = rsa ? F.rsa_pub : F.ecc_pub;
	w->vek_public_len = rsa ? F.rsa_pub_len : F.ecc_pub_len;
	assert_int_equal(certs_cert_key_digest(F.ck_cert, F.ck_cert_len, w->ck_digest), 0);
	w->host = HOST;
	w->uuid = UUID;
}

/* cacheck_ek refuses reply (consumed) for want, saying each of needles
 * and the CA. */
static void
ek_refused(json_t *reply, const struct cacheck_ek_want *want, const char *needle)
{
	struct cacheck_cert c;
	struct certs_virtual virt;
	struct err err = {0};

	assert_int_equal(cacheck_ek(reply, want, &c, &virt, &err), -1);
	json_decref(reply);
	assert_null(c.der);
	assert_int_equal(c.n_chain, 0);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("'%s' does not say '%s'", err.msg, needle);
	if (strncmp(err.msg, "Virtualization CA at " VIRT_URL ": ", 21 + strlen(VIRT_URL) + 2) != 0)
		fail_msg("'%s' does not name the CA", err.msg);
	assert_int_equal(err.kind, ERR_UNTRUSTED);
}

static void
test_ek_genuine(void **state)
{
	struct cacheck_ek_want want;
	struct cacheck_cert c;
	struct certs_virtual virt;
	struct certs_der padded[] = {{F.privacy_der, F.privacy_len}, {F.oroot_der, F.oroot_len},
	    {F.virt_der, F.virt_len}, {F.root_der, F.root_len}};
	struct ek_spec s;
	struct err err = {0};
	json_t *reply;
	uint8_t *der;
	size_t len;

	for (int rsa = 0; rsa <= 1; rsa++) {
		ek_want(&want, rsa);
		ek_spec_genuine(&s, rsa ? F.rsa_key : F.ecc_key);
		reply = ek_answer(&s);
		if (cacheck_ek(reply, &want, &c, &virt, &err) != 0)
			fail_msg("genuine %s: %s", want.type, err.msg);
		json_decref(reply);
		assert_string_equal(virt.host_config, HOST_CONFIG);
		assert_int_equal(c.n_chain, 2);
		assert_memory_equal(c.chain[0].der, F.virt_der, F.virt_len);
		assert_memory_equal(c.chain[1].der, F.root_der, F.root_len);
		cacheck_cert_clear(&c);
	}
	/* The chain kept is the one that verified, not what was offered. */
	ek_want(&want, true);
	ek_spec_genuine(&s, F.rsa_key);
	der = issue_ek(&s, &len);
	reply = answer(der, len, padded, 4, NULL);
	assert_int_equal(cacheck_ek(reply, &want, &c, &virt, &err), 0);
	assert_int_equal(c.n_chain, 2);
	assert_memory_equal(c.chain[0].der, F.virt_der, F.virt_len);
	cacheck_cert_clear(&c);
	json_decref(reply);
	/* No chain at all: the Virtualization CA is not a root. */
	reply = answer(der, len, NULL, 0, NULL);
	json_object_del(reply, "chain");
	ek_refused(reply, &want, "does not chain to the Virtualization CA root CN=test Root CA");
	free(der);
}

/* (a) another vTPM's genuine certificate; (b) the right key by another
 * CA; no root. */
static void
test_ek_foreign(void **state)
{
	struct cacheck_roots none = {.n = 0};
	struct cacheck_ek_want want;
	struct ek_spec s;

	ek_want(&want, true);
	ek_spec_genuine(&s, F.ecc_key);
	ek_refused(ek_answer(&s), &want, "certifies another key");
	ek_refused(ek_answer(&s), &want, "not this vTPM's rsa2048 EK");
	ek_spec_genuine(&s, F.rsa_key);
	s.ca = F.ovirt;
	ek_refused(ek_answer(&s), &want, "does not chain to the Virtualization CA root");
	want.roots = &F.oroots;
	s.ca = F.virt;
	ek_refused(ek_answer(&s), &want, "does not chain");
	want.roots = &none;
	ek_refused(ek_answer(&s), &want, "no Virtualization CA root to check it against");
}

/* The marker and the TPM the certificate describes. */
static void
test_ek_marker(void **state)
{
	struct cacheck_ek_want want;
	struct ek_spec s;
	json_t *reply;

	ek_want(&want, false);
	ek_spec_genuine(&s, F.ecc_key);
	s.uuid = "00000000-0000-4000-8000-000000000000";
	ek_refused(ek_answer(&s), &want, "names the instance 00000000-0000-4000-8000-000000000000");
	ek_spec_genuine(&s, F.ecc_key);
	s.host = "rack9";
	ek_refused(ek_answer(&s), &want, "names the host \"rack9\"");
	ek_spec_genuine(&s, F.ecc_key);
	s.ck_cert = F.hek_cert;
	s.ck_cert_len = F.hek_cert_len;
	ek_refused(ek_answer(&s), &want, "another host's CK");
	ek_spec_genuine(&s, F.ecc_key);
	s.not_virtual = true;
	ek_refused(ek_answer(&s), &want, "no vtpmd virtual marker");
	ek_spec_genuine(&s, F.ecc_key);
	s.manufacturer = 0x4d534654; /* "MSFT" */
	ek_refused(ek_answer(&s), &want, "names the TPM manufacturer id:4D534654");
	ek_spec_genuine(&s, F.ecc_key);
	reply = ek_answer(&s);
	json_object_set_new(reply, "host_config", json_string("another-config"));
	ek_refused(reply, &want, "\"another-config\"");
	ek_spec_genuine(&s, F.ecc_key);
	s.validity = (struct certs_validity){time(NULL) - 2 * YEAR, time(NULL) - YEAR};
	ek_refused(ek_answer(&s), &want, "expired");
}

/* Answers that hold no certificate, or something else. */
static void
test_ek_malformed(void **state)
{
	struct cacheck_ek_want want;
	struct ek_spec s;
	json_t *reply;
	char *two;

	ek_want(&want, false);
	ek_refused(json_object(), &want, "holds no certificate");
	ek_refused(json_pack("{s:s}", "certificate", "not PEM"), &want, "holds no certificate");
	ek_spec_genuine(&s, F.ecc_key);
	reply = ek_answer(&s);
	json_object_set_new(reply, "chain", json_string("not a list"));
	ek_refused(reply, &want, "\"chain\" is not a list");
	reply = ek_answer(&s);
	json_array_append_new(json_object_get(reply, "chain"), json_integer(1));
	ek_refused(reply, &want, "\"chain\"[2] is not one PEM certificate");
	/* Two certificates where one belongs. */
	reply = ek_answer(&s);
	two = malloc(2 * strlen(json_string_value(json_object_get(reply, "certificate"))) + 1);
	assert_non_null(two);
	strcpy(two, json_string_value(json_object_get(reply, "certificate")));
	strcat(two, json_string_value(json_object_get(reply, "certificate")));
	json_object_set_new(reply, "certificate", json_string(two));
	free(two);
	ek_refused(reply, &want, "holds no certificate");
	/* A CK certificate for the vEK's key: not an EK certificate. */
	{
		struct certs_ck_req ckr = {0};
		struct certs_der chain[] = {{F.privacy_der, F.privacy_len}, {F.root_der, F.root_len}};
		uint8_t *der = NULL;
		size_t len = 0;

		ckr.ck = pub_of(F.ecc_key);
		ckr.host = HOST;
		ckr.validity = F.leafv;
		assert_int_equal(certs_issue_ck(F.privacy, &ckr, &der, &len, NULL), 0);
		certs_pkey_free((struct certs_pkey *)ckr.ck);
		ek_refused(answer(der, len, chain, 2, NULL), &want,
		    "does not follow the TCG EK profile");
		free(der);
	}
}

/* --- cacheck_ck ---------------------------------------------------------- */

static void
ck_want(struct cacheck_ck_want *w)
{
	memset(w, 0, sizeof(*w));
	w->url = PRIV_URL;
	w->roots = &F.roots;
	w->ck_public = F.ck_pub;
	w->ck_public_len = F.ck_pub_len;
	w->host = HOST;
	w->ek_cert = F.hek_cert;
	w->ek_cert_len = F.hek_cert_len;
}

static json_t *
ck_answer(const struct certs_ca *ca, EVP_PKEY *key, const char *host, const uint8_t *hek,
    size_t hek_len)
{
	struct certs_der chain[] = {{F.privacy_der, F.privacy_len}, {F.root_der, F.root_len}};
	struct certs_ck_req ckr = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	json_t *o;

	ckr.ck = pub_of(key);
	ckr.host = host;
	ckr.validity = F.leafv;
	assert_int_equal(certs_cert_key_digest(hek, hek_len, ckr.host_ek_digest), 0);
	assert_int_equal(certs_issue_ck(ca, &ckr, &der, &len, NULL), 0);
	certs_pkey_free((struct certs_pkey *)ckr.ck);
	o = answer(der, len, chain, 2, NULL);
	free(der);
	return o;
}

static void
ck_refused(json_t *reply, const struct cacheck_ck_want *want, const char *needle)
{
	struct cacheck_cert c;
	struct err err = {0};

	assert_int_equal(cacheck_ck(reply, want, &c, &err), -1);
	json_decref(reply);
	assert_null(c.der);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("'%s' does not say '%s'", err.msg, needle);
	if (strstr(err.msg, "Privacy CA at " PRIV_URL ": CK certificate refused: ") != err.msg)
		fail_msg("'%s' does not name the CA", err.msg);
	assert_int_equal(err.kind, ERR_UNTRUSTED);
}

static void
test_ck(void **state)
{
	struct cacheck_ck_want want;
	struct cacheck_cert c;
	struct err err = {0};
	json_t *reply;
	char *pem;

	ck_want(&want);
	reply = ck_answer(F.privacy, F.ck_key, HOST, F.hek_cert, F.hek_cert_len);
	if (cacheck_ck(reply, &want, &c, &err) != 0)
		fail_msg("genuine CK certificate: %s", err.msg);
	json_decref(reply);
	assert_int_equal(c.n_chain, 2);
	pem = cacheck_cert_pem(&c);
	assert_non_null(pem);
	assert_int_equal(strstr(strstr(strstr(pem, "-----BEGIN") + 1, "-----BEGIN") + 1,
	                     "-----BEGIN") != NULL,
	    1);
	free(pem);
	cacheck_cert_clear(&c);
	/* (c) another host's CK certificate; another root; another name or
	 * host EK; not a CK certificate. */
	ck_refused(ck_answer(F.privacy, F.ecc_key, HOST, F.hek_cert, F.hek_cert_len), &want,
	    "certifies another key");
	want.roots = &F.oroots;
	ck_refused(ck_answer(F.privacy, F.ck_key, HOST, F.hek_cert, F.hek_cert_len), &want,
	    "does not chain to the Privacy CA root");
	want.roots = &F.roots;
	ck_refused(ck_answer(F.privacy, F.ck_key, "rack9", F.hek_cert, F.hek_cert_len), &want,
	    "names the host \"rack9\", not \"rack1\"");
	ck_refused(ck_answer(F.privacy, F.ck_key, HOST, F.ck_cert, F.ck_cert_len), &want,
	    "another host EK");
	{
		struct ek_spec s;
		ek_spec_genuine(&s, F.ck_key);
		ck_refused(ek_answer(&s), &want, "it is not a CK certificate");
	}
}

/* --- roots --------------------------------------------------------------- */

static void
test_roots(void **state)
{
	char *root = certs_pem_encode(F.root_der, F.root_len);
	char *virt = certs_pem_encode(F.virt_der, F.virt_len), *many, *back;
	struct cacheck_roots r, copy;
	struct err err = {0};
	char desc[400];

	assert_non_null(root);
	assert_non_null(virt);
	assert_int_equal(cacheck_roots_parse(root, strlen(root), &r, &err), 0);
	assert_int_equal(r.n, 1);
	cacheck_roots_describe(&r, desc, sizeof(desc));
	assert_non_null(strstr(desc, "CN=test Root CA"));
	assert_non_null(strstr(desc, "sha256 "));
	assert_int_equal(cacheck_roots_copy(&copy, &r), 0);
	back = cacheck_roots_pem(&copy);
	assert_string_equal(back, root);
	free(back);
	cacheck_roots_clear(&copy);
	cacheck_roots_clear(&r);
	/* An issuing CA is no root; nor is text without a certificate. */
	assert_int_equal(cacheck_roots_parse(virt, strlen(virt), &r, &err), -1);
	assert_non_null(strstr(err.msg, "certificate 1: not self-signed"));
	assert_int_equal(r.n, 0);
	assert_int_equal(cacheck_roots_parse("no PEM here", 11, &r, &err), -1);
	assert_non_null(strstr(err.msg, "no PEM certificate"));
	/* At most CACHECK_ROOTS_MAX. */
	many = malloc(strlen(root) * (CACHECK_ROOTS_MAX + 1) + 1);
	assert_non_null(many);
	many[0] = '\0';
	for (int i = 0; i <= CACHECK_ROOTS_MAX; i++)
		strcat(many, root);
	assert_int_equal(cacheck_roots_parse(many, strlen(many), &r, &err), -1);
	assert_non_null(strstr(err.msg, "more than"));
	many[strlen(root) * CACHECK_ROOTS_MAX] = '\0';
	assert_int_equal(cacheck_roots_parse(many, strlen(many), &r, &err), 0);
	assert_int_equal(r.n, CACHECK_ROOTS_MAX);
	cacheck_roots_clear(&r);
	assert_int_equal(cacheck_roots_load(path("nothing.pem"), &r, &err), -1);
	assert_non_null(strstr(err.msg, "cannot read"));
	free(many);
	free(root);
	free(virt);
}

/* --- provisioning, with the vTPM, the host TPM and the CA faked --------- */

/* The fake vTPM: the vEKs it makes, the NV writes it received. */
static struct {
	int ek_writes, chain_writes;
	size_t chain_n;
	json_t *answers[2]; /* what the fake CA answers for the RSA and the ECC vEK */
	int posts;          /* EK certificate requests (each for the whole vEK set) */
	int nonces; /* nonce requests, each answered with a nonce */
	bool nonce_in_flight;
} V;

struct guesttpm *__wrap_guesttpm_open(const struct endpoint *ep, struct err *err);
void __wrap_guesttpm_close(struct guesttpm *g);
int __wrap_guesttpm_create_ek(struct guesttpm *g, enum hwtpm_ek_kind kind, uint8_t **pub,
    size_t *len, struct err *err);
int __wrap_guesttpm_write_ek_cert(struct guesttpm *g, enum hwtpm_ek_kind kind, const uint8_t *der,
    size_t der_len, struct err *err);
int __wrap_guesttpm_write_chain(
    struct guesttpm *g, const struct guesttpm_cert *certs, size_t n, struct err *err);
int __wrap_hwtpm_sealed_public(const uint8_t *blob, size_t blob_len, size_t *pub_len,
    struct err *err);
int __wrap_hwtpm_certify_sealed(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, const uint8_t *q, size_t q_len,
    struct hwtpm_attestation *ev, struct err *err);
int __wrap_hwtpm_quote(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    const uint8_t *q, size_t q_len, struct hwtpm_attestation *ev,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);
const struct policy_entry *__wrap_policy_approved_now(
    struct manager *m, const char *what, struct err *err);
struct caclient *__wrap_caclient_post(const char *url, const struct config *cfg, const char *path,
    const struct json_t *body, int timeout_s, const char *instance, struct caclient_stats *stats,
    struct err *err);
bool __wrap_caclient_step(struct caclient *c);
int __wrap_caclient_result(const struct caclient *c, struct json_t **reply, struct err *err);
void __wrap_caclient_free(struct caclient *c);

static int fake_object;

struct guesttpm *
__wrap_guesttpm_open(const struct endpoint *ep, struct err *err)
{
	return (struct guesttpm *)&fake_object;
}

void
__wrap_guesttpm_close(struct guesttpm *g)
{
}

int
__wrap_guesttpm_create_ek(
    struct guesttpm *g, enum hwtpm_ek_kind kind, uint8_t **pub, size_t *len, struct err *err)
{
	const uint8_t *src = kind == HWTPM_EK_RSA ? F.rsa_pub : F.ecc_pub;

	*len = kind == HWTPM_EK_RSA ? F.rsa_pub_len : F.ecc_pub_len;
	*pub = malloc(*len);
	assert_non_null(*pub);
	memcpy(*pub, src, *len);
	return 0;
}

int
__wrap_guesttpm_write_ek_cert(struct guesttpm *g, enum hwtpm_ek_kind kind, const uint8_t *der,
    size_t der_len, struct err *err)
{
	V.ek_writes++;
	return 0;
}

int
__wrap_guesttpm_write_chain(
    struct guesttpm *g, const struct guesttpm_cert *certs, size_t n, struct err *err)
{
	V.chain_writes++;
	V.chain_n = n;
	assert_int_equal(n, 2);
	assert_int_equal(certs[0].len, F.virt_len);
	assert_memory_equal(certs[0].der, F.virt_der, F.virt_len);
	return 0;
}

int
__wrap_hwtpm_sealed_public(const uint8_t *blob, size_t blob_len, size_t *pub_len, struct err *err)
{
	*pub_len = blob_len;
	return 0;
}

/* The host's configuration is approved. */
const struct policy_entry *
__wrap_policy_approved_now(struct manager *m, const char *what, struct err *err)
{
	static const struct policy_entry approved;

	return &approved;
}

int
__wrap_hwtpm_certify_sealed(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, const uint8_t *q, size_t q_len,
    struct hwtpm_attestation *ev, struct err *err)
{
	return 0;
}

int
__wrap_hwtpm_quote(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    const uint8_t *q, size_t q_len, struct hwtpm_attestation *ev,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	memset(values, 0, TPM_PCRS * TPM_DIGEST_LEN);
	return 0;
}

struct caclient *
__wrap_caclient_post(const char *url, const struct config *cfg, const char *path,
    const struct json_t *body, int timeout_s, const char *instance, struct caclient_stats *stats,
    struct err *err)
{
	assert_string_equal(url, VIRT_URL);
	V.nonce_in_flight = strcmp(path, "/v1/virtualization/nonce") == 0;
	if (V.nonce_in_flight) {
		V.nonces++;
		return (struct caclient *)&fake_object;
	}
	assert_string_equal(path, "/v1/virtualization/ek-certificate");
	/* the evidence carries the nonce the CA gave */
	assert_string_equal(json_string_value(json_object_get(body, "nonce")),
	    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=");
	/* one request for the whole set, the RSA vEK first */
	assert_true(json_is_true(json_object_get(body, "whole_set")));
	assert_int_equal(json_array_size(json_object_get(body, "other_veks")), 1);
	V.posts++;
	return (struct caclient *)&fake_object;
}

bool
__wrap_caclient_step(struct caclient *c)
{
	return true;
}

int
__wrap_caclient_result(const struct caclient *c, struct json_t **reply, struct err *err)
{
	if (V.nonce_in_flight) {
		*reply = json_pack("{s:s, s:i}", "nonce",
		    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=", "expires_in", 60);
		return 0;
	}
	*reply = json_pack("{s:[o,o]}", "eks", V.answers[0], V.answers[1]);
	V.answers[0] = V.answers[1] = NULL;
	return 0;
}

void
__wrap_caclient_free(struct caclient *c)
{
}

/* A manager enrolled as HOST with F's CK certificate and roots, and an
 * instance "vm" whose sealed.key exists. */
static void
prov_manager(struct manager *m, struct vtpm *v)
{
	char dir[256], file[300];
	char *ck = certs_pem_encode(F.ck_cert, F.ck_cert_len);

	memset(m, 0, sizeof(*m));
	config_defaults(&m->cfg);
	snprintf(m->cfg.state_dir, sizeof(m->cfg.state_dir), "%s/state", F.dir);
	snprintf(m->cfg.run_dir, sizeof(m->cfg.run_dir), "%s/run", F.dir);
	m->enrol.enrolled = true;
	m->enrol.ck_pem = ck;
	snprintf(m->enrol.virtualization_ca, sizeof(m->enrol.virtualization_ca), "%s", VIRT_URL);
	snprintf(m->enrol.host, sizeof(m->enrol.host), "%s", HOST);
	assert_int_equal(cacheck_roots_copy(&m->enrol.virt_roots, &F.roots), 0);
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "vm");
	snprintf(v->uuid, sizeof(v->uuid), "%s", UUID);
	snprintf(dir, sizeof(dir), "%s/state/instances/vm", F.dir);
	assert_int_equal(fileio_mkdirs(dir, 0700), 0);
	snprintf(file, sizeof(file), "%s/sealed.key", dir);
	assert_int_equal(fileio_write_atomic(file, "sealed", 6, 0600), 0);
	memset(&V, 0, sizeof(V));
}

/* Provisions both EKs with the CA answering first (RSA) and second (ECC)
 * to the request for the set. Returns
 * provision_step's last result, with err. */
static int
provision_both(json_t *first, json_t *second, struct err *err)
{
	struct manager m;
	struct vtpm v;
	struct provision *p;
	int rc;

	prov_manager(&m, &v);
	V.answers[0] = first;
	V.answers[1] = second;
	p = provision_new(&m, 1u << HWTPM_EK_RSA | 1u << HWTPM_EK_ECC, err);
	assert_non_null(p);
	while ((rc = provision_step(&m, &v, p, err)) == 1)
		;
	provision_free(p);
	json_decref(V.answers[0]);
	json_decref(V.answers[1]);
	enrol_free(&m.enrol);
	return rc;
}

static void
test_provision_writes_checked(void **state)
{
	struct ek_spec rsa, ecc;
	struct err err = {0};
	char file[300];

	ek_spec_genuine(&rsa, F.rsa_key);
	ek_spec_genuine(&ecc, F.ecc_key);
	if (provision_both(ek_answer(&rsa), ek_answer(&ecc), &err) != 0)
		fail_msg("genuine answers: %s", err.msg);
	assert_int_equal(V.posts, 1);
	assert_int_equal(V.nonces, 1);
	assert_int_equal(V.ek_writes, 2);
	assert_int_equal(V.chain_writes, 1);
	snprintf(file, sizeof(file), "%s/state/instances/vm/ek.json", F.dir);
	assert_int_equal(access(file, F_OK), 0);
}

/* A refused answer, for the first EK or the second, leaves the NV
 * unwritten. */
static void
test_provision_refused_writes_nothing(void **state)
{
	struct ek_spec rsa, ecc, bad;
	struct err err = {0};

	ek_spec_genuine(&rsa, F.rsa_key);
	ek_spec_genuine(&ecc, F.ecc_key);
	/* (a) the first: another vTPM's (here: the other EK's) certificate. */
	assert_int_equal(provision_both(ek_answer(&ecc), ek_answer(&ecc), &err), -1);
	assert_non_null(strstr(err.msg, "rsa2048 EK certificate refused: it certifies another key"));
	assert_int_equal(V.posts, 1);
	assert_int_equal(V.ek_writes + V.chain_writes, 0);
	/* (b) the second, by another CA, after the first passed. */
	bad = ecc;
	bad.ca = F.ovirt;
	assert_int_equal(provision_both(ek_answer(&rsa), ek_answer(&bad), &err), -1);
	assert_non_null(strstr(err.msg, "ecc-p256 EK certificate refused: it does not chain"));
	assert_int_equal(V.posts, 1);
	assert_int_equal(V.ek_writes + V.chain_writes, 0);
	/* (d) the second, not of this instance. */
	bad = ecc;
	bad.uuid = "00000000-0000-4000-8000-000000000000";
	assert_int_equal(provision_both(ek_answer(&rsa), ek_answer(&bad), &err), -1);
	assert_non_null(strstr(err.msg, "names the instance"));
	assert_int_equal(V.ek_writes + V.chain_writes, 0);
	assert_int_equal(err.kind, ERR_UNTRUSTED);
}

/* No root to check EK certificates against: no provisioning at all. */
static void
test_provision_no_root(void **state)
{
	struct manager m;
	struct vtpm v;
	struct err err = {0};

	prov_manager(&m, &v);
	cacheck_roots_clear(&m.enrol.virt_roots);
	assert_null(provision_new(&m, 1u << HWTPM_EK_RSA, &err));
	assert_non_null(strstr(err.msg, "no Virtualization CA root"));
	assert_int_equal(err.kind, ERR_INVALID);
	/* The configuration's root wins over the enrolment's. */
	snprintf(m.cfg.virt_root, sizeof(m.cfg.virt_root), "%s", path("nothing.pem"));
	assert_int_equal(cacheck_roots_copy(&m.enrol.virt_roots, &F.roots), 0);
	assert_null(provision_new(&m, 1u << HWTPM_EK_RSA, &err));
	assert_non_null(strstr(err.msg, "virtualization-ca-root: cannot read"));
	enrol_free(&m.enrol);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ek_genuine),
	    cmocka_unit_test(test_ek_foreign),
	    cmocka_unit_test(test_ek_marker),
	    cmocka_unit_test(test_ek_malformed),
	    cmocka_unit_test(test_ck),
	    cmocka_unit_test(test_roots),
	    cmocka_unit_test(test_provision_writes_checked),
	    cmocka_unit_test(test_provision_refused_writes_nothing),
	    cmocka_unit_test(test_provision_no_root),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	log_init("test_cacheck", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
