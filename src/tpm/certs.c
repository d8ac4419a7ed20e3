/*
 * certs.c: X.509 for vtpmd's certificate authorities and challenger, with
 * OpenSSL 3 (the only file that sees its X.509 types; see certs.h).
 *
 * CAs: ECC P-256 keys, ECDSA with SHA-256. P-256 because the CA certifies
 * RSA-2048 and P-256 endorsement keys (about 112 and 128 bits of strength:
 * a stronger CA key buys nothing), because every TPM 2.0 and HSM can hold a
 * P-256 key should the CA keys move into one, and because EK certificates
 * live in the vTPM's NV indices, where P-256 signatures keep them small.
 *
 *   root            O=vtpmd, CN=NAME; CA:TRUE, pathlen 1 (critical);
 *                   keyUsage keyCertSign, cRLSign (critical); SKI; AKI
 *   issuing CA      the same with pathlen 0: the Privacy CA and the
 *                   Virtualization CA, under a root or self-signed
 *
 * Leaves (serial: 16 random bytes, positive; AKI = the CA's key id):
 *
 *   vEK (TCG EK Credential Profile for TPM Family 2.0, sections 3.1-3.2)
 *     subject         empty
 *     subjectAltName  critical (the subject is empty: RFC 5280 4.2.1.6);
 *                     one directoryName of three RDNs, each a UTF8String:
 *                     tcg-at-tpmManufacturer "id:" + 8 hex digits of the TCG
 *                     vendor id, tcg-at-tpmModel, tcg-at-tpmVersion "id:" +
 *                     8 hex digits of TPM_PT_FIRMWARE_VERSION_1
 *     subjectDirectoryAttributes  tcg-at-tpmSpecification
 *                     TPMSpecification ::= SEQUENCE { family UTF8String,
 *                     level INTEGER, revision INTEGER }
 *     basicConstraints CA:FALSE (critical)
 *     keyUsage        keyEncipherment (RSA) or keyAgreement (ECC), critical
 *     extKeyUsage     tcg-kp-EKCertificate
 *     certificatePolicies  CERTS_OID_POLICY_VEK
 *     VtpmdVirtualTPM (below), not critical
 *   vAK: subject CN=NAME (or empty, then the SAN is critical); the vEK's
 *     subjectAltName, subjectDirectoryAttributes and VtpmdVirtualTPM
 *     copied; CA:FALSE; keyUsage
 *     digitalSignature (critical); extKeyUsage tcg-kp-AIKCertificate;
 *     certificatePolicies CERTS_OID_POLICY_VAK
 *   CK: subject CN=HOST; CA:FALSE; keyUsage digitalSignature (critical);
 *     extKeyUsage tcg-kp-AIKCertificate; certificatePolicies
 *     CERTS_OID_POLICY_HOST_CK; VtpmdHostKey (below), not critical
 *
 * vtpmd's extensions, DER, under the arc in certs.h (2.25.<UUID>):
 *
 *   VtpmdVirtualTPM ::= SEQUENCE {              -- CERTS_OID_VIRTUAL_EXT
 *       version       INTEGER { v1(1) },
 *       virtual       BOOLEAN,                  -- TRUE: a vtpmd virtual TPM
 *       hostCkDigest  OCTET STRING (SIZE (32)), -- SHA-256 of the DER
 *                                               -- SubjectPublicKeyInfo of the
 *                                               -- host's Certifying Key
 *       hostConfigId  UTF8String (SIZE (1..128)), -- the approved host
 *                                               -- configuration
 *       instanceUuid  OCTET STRING (SIZE (16)), -- the vTPM instance's UUID
 *       hostName      UTF8String (SIZE (1..64)) OPTIONAL }
 *                                               -- the host's name in its CK
 *                                               -- certificate
 *
 *   VtpmdHostKey ::= SEQUENCE {                 -- CERTS_OID_HOST_KEY_EXT
 *       version       INTEGER { v1(1) },
 *       hostName      UTF8String (SIZE (1..64)),
 *       hostEkDigest  OCTET STRING (SIZE (32)) } -- SHA-256 of the host EK's
 *                                               -- SubjectPublicKeyInfo
 *
 *   VtpmdLineage ::= SEQUENCE {                 -- CERTS_OID_LINEAGE_EXT, in
 *       version       INTEGER { v1(1) },        -- vEK and AK certificates
 *       ck            CertRef,                  -- the host CK's certificate
 *       vek       [0] EXPLICIT CertRef OPTIONAL } -- AK: the vEK certificate
 *   CertRef ::= SEQUENCE {                      -- as AuthorityKeyIdentifier
 *       issuerKeyId   OCTET STRING (SIZE (1..64)), -- names an issuer's
 *       serial        INTEGER }                 -- certificate: the keyIdentifier
 *                                               -- of the certificate's own AKI
 *
 * Certificates of a CA given a CRL URL carry cRLDistributionPoints: one
 * DistributionPoint whose fullName is that URI (not critical).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "tpm.h"
#include "certs.h"

#define CERTS_SERIAL_LEN 16
#define CERTS_FILE_MAX   (1u << 20)
#define CERTS_OID_TXT    128 /* room for any OID this file handles */
#define CERTS_EXT_V1     1
#define CERTS_OID_SDA    "2.5.29.9" /* subjectDirectoryAttributes */

/* keyUsage bit numbers (RFC 5280 4.2.1.3). */
enum certs_ku {
	CERTS_KU_DIGITAL_SIGNATURE = 1 << 0,
	CERTS_KU_KEY_ENCIPHERMENT = 1 << 2,
	CERTS_KU_KEY_AGREEMENT = 1 << 4,
	CERTS_KU_KEY_CERT_SIGN = 1 << 5,
	CERTS_KU_CRL_SIGN = 1 << 6,
};

struct certs_pkey {
	EVP_PKEY *pkey;
};

struct certs_ca {
	EVP_PKEY *key;
	X509 *cert;
	ASN1_OCTET_STRING *keyid; /* what certificates it issues carry in AKI */
};

/* ASN.1 templates of the structures above (OpenSSL's macros, which the
 * formatter cannot read). */
/* clang-format off */
struct certs_vext {
	ASN1_INTEGER *version;
	ASN1_BOOLEAN is_virtual;
	ASN1_OCTET_STRING *ck_digest;
	ASN1_UTF8STRING *host_config;
	ASN1_OCTET_STRING *uuid;
	ASN1_UTF8STRING *host; /* optional */
};

ASN1_SEQUENCE(certs_vext_asn1) = {
	ASN1_SIMPLE(struct certs_vext, version, ASN1_INTEGER),
	ASN1_SIMPLE(struct certs_vext, is_virtual, ASN1_BOOLEAN),
	ASN1_SIMPLE(struct certs_vext, ck_digest, ASN1_OCTET_STRING),
	ASN1_SIMPLE(struct certs_vext, host_config, ASN1_UTF8STRING),
	ASN1_SIMPLE(struct certs_vext, uuid, ASN1_OCTET_STRING),
	ASN1_OPT(struct certs_vext, host, ASN1_UTF8STRING),
} static_ASN1_SEQUENCE_END_name(struct certs_vext, certs_vext_asn1)

struct certs_hostkey {
	ASN1_INTEGER *version;
	ASN1_UTF8STRING *host;
	ASN1_OCTET_STRING *ek_digest;
};

ASN1_SEQUENCE(certs_hostkey_asn1) = {
	ASN1_SIMPLE(struct certs_hostkey, version, ASN1_INTEGER),
	ASN1_SIMPLE(struct certs_hostkey, host, ASN1_UTF8STRING),
	ASN1_SIMPLE(struct certs_hostkey, ek_digest, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END_name(struct certs_hostkey, certs_hostkey_asn1)

struct certs_tpmspec {
	ASN1_UTF8STRING *family;
	ASN1_INTEGER *level;
	ASN1_INTEGER *revision;
};

ASN1_SEQUENCE(certs_tpmspec_asn1) = {
	ASN1_SIMPLE(struct certs_tpmspec, family, ASN1_UTF8STRING),
	ASN1_SIMPLE(struct certs_tpmspec, level, ASN1_INTEGER),
	ASN1_SIMPLE(struct certs_tpmspec, revision, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END_name(struct certs_tpmspec, certs_tpmspec_asn1)

struct certs_certref {
	ASN1_OCTET_STRING *issuer_keyid;
	ASN1_INTEGER *serial;
};

ASN1_SEQUENCE(certs_certref_asn1) = {
	ASN1_SIMPLE(struct certs_certref, issuer_keyid, ASN1_OCTET_STRING),
	ASN1_SIMPLE(struct certs_certref, serial, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END_name(struct certs_certref, certs_certref_asn1)

struct certs_lext {
	ASN1_INTEGER *version;
	struct certs_certref *ck;
	struct certs_certref *vek; /* optional */
};

ASN1_SEQUENCE(certs_lext_asn1) = {
	ASN1_SIMPLE(struct certs_lext, version, ASN1_INTEGER),
	ASN1_SIMPLE(struct certs_lext, ck, certs_certref_asn1),
	ASN1_EXP_OPT(struct certs_lext, vek, certs_certref_asn1, 0),
} static_ASN1_SEQUENCE_END_name(struct certs_lext, certs_lext_asn1)

/*
 * A certificate read for its serial and extensions alone
 * (certs_cert_lineage, once per verification): every other field is kept
 * as it came (ASN1_ANY). OpenSSL 3's d2i_X509 decodes the public key
 * through its decoders, which costs most of a parse; a challenger that
 * only needs the references of an AK certificate the quote's check has
 * parsed and verified already does without.
 */
struct certs_light_tbs {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serial;
	ASN1_TYPE *signature, *issuer, *validity, *subject, *spki;
	ASN1_BIT_STRING *issuer_uid, *subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
};

ASN1_SEQUENCE(certs_light_tbs_asn1) = {
	ASN1_EXP_OPT(struct certs_light_tbs, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(struct certs_light_tbs, serial, ASN1_INTEGER),
	ASN1_SIMPLE(struct certs_light_tbs, signature, ASN1_ANY),
	ASN1_SIMPLE(struct certs_light_tbs, issuer, ASN1_ANY),
	ASN1_SIMPLE(struct certs_light_tbs, validity, ASN1_ANY),
	ASN1_SIMPLE(struct certs_light_tbs, subject, ASN1_ANY),
	ASN1_SIMPLE(struct certs_light_tbs, spki, ASN1_ANY),
	ASN1_IMP_OPT(struct certs_light_tbs, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(struct certs_light_tbs, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(struct certs_light_tbs, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END_name(struct certs_light_tbs, certs_light_tbs_asn1)

struct certs_light {
	struct certs_light_tbs *tbs;
	ASN1_TYPE *algorithm, *signature;
};

ASN1_SEQUENCE(certs_light_asn1) = {
	ASN1_SIMPLE(struct certs_light, tbs, certs_light_tbs_asn1),
	ASN1_SIMPLE(struct certs_light, algorithm, ASN1_ANY),
	ASN1_SIMPLE(struct certs_light, signature, ASN1_ANY),
} static_ASN1_SEQUENCE_END_name(struct certs_light, certs_light_asn1)

/* SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute */
ASN1_ITEM_TEMPLATE(certs_sda_asn1) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, certs_sda_asn1, X509_ATTRIBUTE)
static_ASN1_ITEM_TEMPLATE_END(certs_sda_asn1)

                          /* clang-format on */

                          /* Parses exactly len bytes of DER as a certificate, or returns NULL. */
                          static X509
                          * certs_d2i(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* x as a malloc'd DER buffer. */
static int
certs_i2d(X509 *x, uint8_t **der, size_t *len)
{
	unsigned char *p;
	uint8_t *buf;
	int n;

	n = i2d_X509(x, NULL);
	if (n <= 0)
		return -1;
	buf = malloc((size_t)n);
	if (buf == NULL)
		return -1;
	p = buf;
	if (i2d_X509(x, &p) != n) {
		free(buf);
		return -1;
	}
	*der = buf;
	*len = (size_t)n;
	return 0;
}

/* Decodes all of der as an item of type it, or returns NULL. */
static ASN1_VALUE *
certs_item_d2i_bytes(const uint8_t *der, size_t len, const ASN1_ITEM *it)
{
	const unsigned char *p = der;
	ASN1_VALUE *v;

	if (len > LONG_MAX)
		return NULL;
	v = ASN1_item_d2i(NULL, &p, (long)len, it);
	if (v != NULL && p != der + len) {
		ASN1_item_free(v, it);
		v = NULL;
	}
	return v;
}

/* The same of an OCTET STRING's content. */
static ASN1_VALUE *
certs_item_d2i(const ASN1_OCTET_STRING *os, const ASN1_ITEM *it)
{
	return certs_item_d2i_bytes(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), it);
}

static int
certs_oid_is(const ASN1_OBJECT *obj, const char *oid)
{
	char txt[CERTS_OID_TXT];
	int n;

	n = OBJ_obj2txt(txt, sizeof(txt), obj, 1);
	return n > 0 && (size_t)n < sizeof(txt) && strcmp(txt, oid) == 0;
}

/* Copies an ASN.1 string of at most max bytes and no NUL into dst[max+1]. */
static int
certs_copy_str(char *dst, size_t max, const ASN1_STRING *s)
{
	int n = ASN1_STRING_length(s);
	const unsigned char *p = ASN1_STRING_get0_data(s);

	if (n <= 0 || (size_t)n > max || memchr(p, '\0', (size_t)n) != NULL)
		return -1;
	memcpy(dst, p, (size_t)n);
	dst[n] = '\0';
	return 0;
}

static int
certs_uint32(const ASN1_INTEGER *a, uint32_t *v)
{
	uint64_t u;

	if (ASN1_INTEGER_get_uint64(&u, a) != 1 || u > UINT32_MAX)
		return -1;
	*v = (uint32_t)u;
	return 0;
}

/* "8-4-4-4-12" hexadecimal to 16 bytes. */
static int
certs_uuid_parse(const char *s, uint8_t out[static 16])
{
	char hex[33];
	size_t j = 0;

	if (strlen(s) != CERTS_UUID_LEN)
		return -1;
	for (size_t i = 0; i < CERTS_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash != (s[i] == '-'))
			return -1;
		if (!dash)
			hex[j++] = s[i];
	}
	hex[j] = '\0';
	return hex_decode(hex, out, 16);
}

static void
certs_uuid_format(const uint8_t in[static 16], char out[static CERTS_UUID_LEN + 1])
{
	char hex[33];
	size_t j = 0;

	hex_encode(in, 16, hex);
	for (size_t i = 0; i < CERTS_UUID_LEN; i++)
		out[i] = (i == 8 || i == 13 || i == 18 || i == 23) ? '-' : hex[j++];
	out[CERTS_UUID_LEN] = '\0';
}

/* Public keys. */

static struct certs_pkey *
certs_pkey_wrap(EVP_PKEY *pkey)
{
	struct certs_pkey *k;

	if (pkey == NULL)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	return k;
}

/*
 * Public keys that passed EVP_PKEY_public_check in this thread, by the
 * SHA-256 of their type and parameters (certs_key_digest). OpenSSL's check
 * of an RSA key (SP 800-56B: an odd modulus without small factors,
 * composite by Miller-Rabin rounds over all of it) takes milliseconds, and
 * the CA meets one vEK several times per request (the vEK set, its
 * identity, the certificate). The check of one key always comes out the
 * same, so a key seen to pass is not checked again; one that failed is
 * checked every time. Per thread: no lock.
 */
#define CERTS_KEYS_PASSED 16
static _Thread_local struct {
	uint8_t digest[CERTS_KEYS_PASSED][32];
	unsigned int n, next;
} certs_keys_passed;

static bool
certs_key_passed_before(const uint8_t digest[static 32])
{
	for (unsigned int i = 0; i < certs_keys_passed.n; i++)
		if (memcmp(certs_keys_passed.digest[i], digest, 32) == 0)
			return true;
	return false;
}

static void
certs_key_passed_now(const uint8_t digest[static 32])
{
	memcpy(certs_keys_passed.digest[certs_keys_passed.next], digest, 32);
	certs_keys_passed.next = (certs_keys_passed.next + 1) % CERTS_KEYS_PASSED;
	if (certs_keys_passed.n < CERTS_KEYS_PASSED)
		certs_keys_passed.n++;
}

/* The digest a key is remembered by: SHA-256 of tag (the type), a and b
 * (a fixed-size part first, so that no two keys share the input). */
static int
certs_key_digest(const char *tag, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    uint8_t digest[static 32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(md, tag, strlen(tag) + 1) == 1 &&
	         EVP_DigestUpdate(md, a, alen) == 1 && EVP_DigestUpdate(md, b, blen) == 1 &&
	         EVP_DigestFinal_ex(md, digest, NULL) == 1;

	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* A public key of type from params, which must pass OpenSSL's public key
 * check, unless the key of digest (certs_key_digest) passed it before. */
static EVP_PKEY *
certs_fromdata(const char *type, OSSL_PARAM *params, const uint8_t digest[static 32])
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	if (certs_key_passed_before(digest))
		goto out;
	EVP_PKEY_CTX_free(ctx);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	} else {
		certs_key_passed_now(digest);
	}
out:
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return pkey;
}

/* An RSA public key from a TPM public area: the big-endian modulus (2048
 * to 4096 bits, no leading zero byte) and the exponent, where 0 means the
 * TPM's default 65537. Returns NULL when they are not such a key. */
struct certs_pkey *
certs_pkey_from_rsa(const uint8_t *modulus, size_t len, uint32_t exponent)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *n = NULL, *e = NULL;
	EVP_PKEY *pkey = NULL;
	uint8_t digest[32], be[4];

	if (exponent == 0)
		exponent = 65537;
	if (modulus == NULL || len < 256 || len > 512 || modulus[0] == 0 || exponent < 3 ||
	    exponent % 2 == 0)
		return NULL;
	be[0] = (uint8_t)(exponent >> 24);
	be[1] = (uint8_t)(exponent >> 16);
	be[2] = (uint8_t)(exponent >> 8);
	be[3] = (uint8_t)exponent;
	if (certs_key_digest("RSA", be, sizeof(be), modulus, len, digest) == -1)
		goto out;
	n = BN_bin2bn(modulus, (int)len, NULL);
	e = BN_new();
	bld = OSSL_PARAM_BLD_new();
	if (n == NULL || e == NULL || bld == NULL || BN_set_word(e, exponent) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	if (params != NULL)
		pkey = certs_fromdata("RSA", params, digest);
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	ERR_clear_error();
	return certs_pkey_wrap(pkey);
}

/* A P-256 public key from a TPM public area's point. Returns NULL when the
 * point is not on the curve. */
struct certs_pkey *
certs_pkey_from_ecc_p256(const uint8_t x[static 32], const uint8_t y[static 32])
{
	char group[] = "P-256";
	OSSL_PARAM params[3];
	uint8_t pt[65], digest[32];

	pt[0] = 0x04;
	memcpy(pt + 1, x, 32);
	memcpy(pt + 33, y, 32);
	if (certs_key_digest(group, pt, sizeof(pt), NULL, 0, digest) == -1)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
	params[2] = OSSL_PARAM_construct_end();
	return certs_pkey_wrap(certs_fromdata("EC", params, digest));
}

/* A public key from exactly len bytes of DER SubjectPublicKeyInfo. */
struct certs_pkey *
certs_pkey_from_spki(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey != NULL && p != der + len) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	ERR_clear_error();
	return certs_pkey_wrap(pkey);
}

/* The public key of a DER certificate. */
struct certs_pkey *
certs_pkey_from_cert(const uint8_t *der, size_t len)
{
	EVP_PKEY *pkey = NULL;
	X509 *x;

	x = certs_d2i(der, len);
	if (x != NULL)
		pkey = X509_get_pubkey(x);
	X509_free(x);
	ERR_clear_error();
	return certs_pkey_wrap(pkey);
}

void
certs_pkey_free(struct certs_pkey *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

/* k as DER SubjectPublicKeyInfo, malloc'd. */
int
certs_pkey_spki(const struct certs_pkey *k, uint8_t **der, size_t *len)
{
	unsigned char *p;
	uint8_t *buf;
	int n;

	n = i2d_PUBKEY(k->pkey, NULL);
	if (n <= 0)
		return -1;
	buf = malloc((size_t)n);
	if (buf == NULL)
		return -1;
	p = buf;
	if (i2d_PUBKEY(k->pkey, &p) != n) {
		free(buf);
		return -1;
	}
	*der = buf;
	*len = (size_t)n;
	return 0;
}

static int
certs_evp_digest(EVP_PKEY *pkey, uint8_t out[static CERTS_DIGEST_LEN])
{
	unsigned char *spki = NULL;
	int n, ret = -1;

	n = i2d_PUBKEY(pkey, &spki);
	if (n > 0 && EVP_Digest(spki, (size_t)n, out, NULL, EVP_sha256(), NULL) == 1)
		ret = 0;
	OPENSSL_free(spki);
	return ret;
}

/* The key's identity throughout vtpmd: SHA-256 of its DER
 * SubjectPublicKeyInfo. */
int
certs_pkey_digest(const struct certs_pkey *k, uint8_t out[static CERTS_DIGEST_LEN])
{
	return certs_evp_digest(k->pkey, out);
}

/* The same digest for the key a DER certificate certifies. */
int
certs_cert_key_digest(const uint8_t *der, size_t len, uint8_t out[static CERTS_DIGEST_LEN])
{
	X509 *x = certs_d2i(der, len);
	int ret = -1;

	if (x != NULL && X509_get0_pubkey(x) != NULL)
		ret = certs_evp_digest(X509_get0_pubkey(x), out);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* Whether the big-endian bytes in[0 .. len) are the number bn. */
static bool
certs_bn_is(const BIGNUM *bn, const uint8_t *in, size_t len)
{
	BIGNUM *v = len <= INT_MAX ? BN_bin2bn(in, (int)len, NULL) : NULL;
	bool same = v != NULL && bn != NULL && BN_cmp(v, bn) == 0;

	BN_free(v);
	return same;
}

/*
 * Whether the key a DER certificate certifies is the RSA key of a TPM
 * public area: modulus (big-endian) and exponent (0: 65537). Returns 1, 0,
 * or -1 when the certificate cannot be read. The numbers are compared as
 * they are, without certs_pkey_from_rsa's check of the key, which costs
 * milliseconds: the key compared against is the caller's own.
 */
int
certs_cert_key_is_rsa(
    const uint8_t *der, size_t len, const uint8_t *modulus, size_t modulus_len, uint32_t exponent)
{
	X509 *x = certs_d2i(der, len);
	BIGNUM *n = NULL, *e = NULL;
	EVP_PKEY *k;
	int ret = -1;

	if (x == NULL || (k = X509_get0_pubkey(x)) == NULL)
		goto out;
	ret = 0;
	if (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
	    certs_bn_is(n, modulus, modulus_len) && BN_is_word(e, exponent ? exponent : 65537))
		ret = 1;
out:
	BN_free(n);
	BN_free(e);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* The same for a NIST P-256 point. */
int
certs_cert_key_is_p256(
    const uint8_t *der, size_t len, const uint8_t px[static 32], const uint8_t py[static 32])
{
	X509 *x = certs_d2i(der, len);
	BIGNUM *bx = NULL, *by = NULL;
	char group[32] = "";
	EVP_PKEY *k;
	int ret = -1;

	if (x == NULL || (k = X509_get0_pubkey(x)) == NULL)
		goto out;
	ret = 0;
	if (EVP_PKEY_is_a(k, "EC") &&
	    EVP_PKEY_get_utf8_string_param(
	        k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) == 1 &&
	    strcmp(group, "prime256v1") == 0 &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 && certs_bn_is(bx, px, 32) &&
	    certs_bn_is(by, py, 32))
		ret = 1;
out:
	BN_free(bx);
	BN_free(by);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* a as lowercase hex without leading zeros: 0, or -1 when it is negative
 * or longer than RFC 5280 allows. */
static int
certs_serial_hex(const ASN1_INTEGER *a, char out[static CERTS_SERIAL_HEX_MAX + 1])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(a, NULL);
	char *hex = NULL;
	const char *p;
	int ret = -1;

	out[0] = '\0';
	if (bn == NULL || BN_is_negative(bn) || (hex = BN_bn2hex(bn)) == NULL)
		goto out;
	for (p = hex; *p == '0' && p[1] != '\0'; p++)
		;
	if (strlen(p) > CERTS_SERIAL_HEX_MAX)
		goto out;
	for (size_t i = 0; p[i] != '\0'; i++)
		out[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 'a' : p[i]);
	out[strlen(p)] = '\0';
	ret = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return ret;
}

/* Sets a to the serial in hex (1 to CERTS_SERIAL_HEX_MAX digits). */
static int
certs_serial_set(ASN1_INTEGER *a, const char *hex)
{
	size_t n = strlen(hex);
	BIGNUM *bn = NULL;
	int ok;

	ok = n > 0 && n <= CERTS_SERIAL_HEX_MAX && BN_hex2bn(&bn, hex) == (int)n &&
	     BN_to_ASN1_INTEGER(bn, a) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

/* The serial number of a DER certificate, lowercase hex without leading
 * zeros ("0" for zero), in out (NUL-terminated). Added for the challenger's
 * revocation query (vtpm-attest verify --ca). */
int
certs_cert_serial(const uint8_t *der, size_t len, char out[static CERTS_SERIAL_HEX_MAX + 1])
{
	X509 *x = certs_d2i(der, len);
	int ret = -1;

	out[0] = '\0';
	if (x != NULL)
		ret = certs_serial_hex(X509_get0_serialNumber(x), out);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* Copies a key identifier of 1 to CERTS_KEYID_MAX bytes. */
static int
certs_keyid_copy(const ASN1_OCTET_STRING *os, uint8_t out[static CERTS_KEYID_MAX], size_t *len)
{
	int n = os != NULL ? ASN1_STRING_length(os) : 0;

	if (n <= 0 || n > CERTS_KEYID_MAX)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(os), (size_t)n);
	*len = (size_t)n;
	return 0;
}

/* The reference of x (certs_cert_ref). */
static int
certs_ref_of(X509 *x, struct certs_ref *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (certs_serial_hex(X509_get0_serialNumber(x), out->serial) == -1)
		return err_ssl(err, "its serial number is negative or longer than 20 octets");
	if (certs_keyid_copy(
	        X509_get0_authority_key_id(x), out->issuer_keyid, &out->issuer_keyid_len) == -1)
		return err_ssl(err, "it names no issuer key identifier (AuthorityKeyIdentifier)");
	return 0;
}

int
certs_cert_ref(const uint8_t *der, size_t len, struct certs_ref *out, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (x == NULL)
		err_ssl(err, "not a DER certificate");
	else
		ret = certs_ref_of(x, out, err);
	X509_free(x);
	return ret;
}

/* Building certificates. */

/* A name of O=org (when not NULL) and CN=cn (when not empty). */
static X509_NAME *
certs_name(const char *org, const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	if (n == NULL)
		return NULL;
	if (org != NULL && X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8,
	                       (const unsigned char *)org, -1, -1, 0) != 1)
		goto fail;
	if (cn != NULL && cn[0] != '\0' &&
	    X509_NAME_add_entry_by_NID(
	        n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
		goto fail;
	return n;
fail:
	X509_NAME_free(n);
	return NULL;
}

static int
certs_set_serial(X509 *x)
{
	uint8_t b[CERTS_SERIAL_LEN];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] = (b[0] & 0x7f) | 0x40; /* positive, and 16 octets long */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int
certs_set_validity(X509 *x, const struct certs_validity *v)
{
	ASN1_TIME *nb, *na;
	int ok;

	if (v->not_before < 0 || v->not_before >= v->not_after || v->not_after > CERTS_NO_EXPIRY)
		return -1;
	nb = ASN1_TIME_set(NULL, (time_t)v->not_before);
	na = ASN1_TIME_set(NULL, (time_t)v->not_after);
	ok = nb != NULL && na != NULL && X509_set1_notBefore(x, nb) == 1 &&
	     X509_set1_notAfter(x, na) == 1;
	ASN1_TIME_free(nb);
	ASN1_TIME_free(na);
	return ok ? 0 : -1;
}

/* A version 3 certificate without extensions; subject NULL means empty. */
static X509 *
certs_cert_new(const X509_NAME *issuer, EVP_PKEY *pub, const X509_NAME *subject,
    const struct certs_validity *v, struct err *err)
{
	X509 *x = X509_new();

	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 || certs_set_serial(x) == -1 ||
	    X509_set_issuer_name(x, issuer) != 1 ||
	    (subject != NULL && X509_set_subject_name(x, subject) != 1) ||
	    X509_set_pubkey(x, pub) != 1) {
		err_ssl(err, "new certificate");
		X509_free(x);
		return NULL;
	}
	if (certs_set_validity(x, v) == -1) {
		err_ssl(err, "validity: need 0 <= notBefore < notAfter <= 9999-12-31");
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
certs_add_bc(X509 *x, bool ca, int pathlen)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	int ok;

	if (bc == NULL)
		return -1;
	bc->ca = ca ? 0xff : 0;
	if (pathlen >= 0) {
		bc->pathlen = ASN1_INTEGER_new();
		if (bc->pathlen == NULL || ASN1_INTEGER_set(bc->pathlen, pathlen) != 1) {
			BASIC_CONSTRAINTS_free(bc);
			return -1;
		}
	}
	ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
	BASIC_CONSTRAINTS_free(bc);
	return ok ? 0 : -1;
}

/* keyUsage, critical, from a mask of enum certs_ku. */
static int
certs_add_ku(X509 *x, int mask)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int ok = ku != NULL;

	for (int bit = 0; ok && bit < 9; bit++)
		if (mask & (1 << bit))
			ok = ASN1_BIT_STRING_set_bit(ku, bit, 1) == 1;
	ok = ok && X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
	ASN1_BIT_STRING_free(ku);
	return ok ? 0 : -1;
}

static int
certs_add_eku(X509 *x, const char *oid)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int ok = 0;

	if (eku != NULL && obj != NULL && sk_ASN1_OBJECT_push(eku, obj) > 0) {
		obj = NULL;
		ok = X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
	}
	ASN1_OBJECT_free(obj);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return ok ? 0 : -1;
}

static int
certs_add_policy(X509 *x, const char *oid)
{
	CERTIFICATEPOLICIES *pols = sk_POLICYINFO_new_null();
	POLICYINFO *pi = POLICYINFO_new();
	int ok = 0;

	if (pols == NULL || pi == NULL)
		goto out;
	ASN1_OBJECT_free(pi->policyid);
	pi->policyid = OBJ_txt2obj(oid, 1);
	if (pi->policyid == NULL || sk_POLICYINFO_push(pols, pi) <= 0)
		goto out;
	pi = NULL;
	ok = X509_add1_ext_i2d(x, NID_certificate_policies, pols, 0, X509V3_ADD_DEFAULT) == 1;
out:
	POLICYINFO_free(pi);
	sk_POLICYINFO_pop_free(pols, POLICYINFO_free);
	return ok ? 0 : -1;
}

/* The SKI of x's key: SHA-1 of the subjectPublicKey bits (RFC 5280
 * 4.2.1.2, method 1), as OpenSSL computes it for "hash". */
static ASN1_OCTET_STRING *
certs_key_id(const X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	ASN1_OCTET_STRING *os;
	unsigned int n = 0;

	if (X509_pubkey_digest(x, EVP_sha1(), md, &n) != 1)
		return NULL;
	os = ASN1_OCTET_STRING_new();
	if (os != NULL && ASN1_OCTET_STRING_set(os, md, (int)n) != 1) {
		ASN1_OCTET_STRING_free(os);
		os = NULL;
	}
	return os;
}

static int
certs_add_aki(X509 *x, const ASN1_OCTET_STRING *keyid)
{
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	int ok = 0;

	if (akid == NULL)
		return -1;
	akid->keyid = ASN1_OCTET_STRING_dup(keyid);
	if (akid->keyid != NULL)
		ok = X509_add1_ext_i2d(
		         x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
	AUTHORITY_KEYID_free(akid);
	return ok ? 0 : -1;
}

/* Adds an extension whose value is the DER of val, of ASN.1 type it. */
static int
certs_add_item(X509 *x, const ASN1_OBJECT *obj, int crit, const void *val, const ASN1_ITEM *it)
{
	ASN1_OCTET_STRING *os = NULL;
	X509_EXTENSION *ext = NULL;
	unsigned char *der = NULL;
	int n, ok = 0;

	n = ASN1_item_i2d((const ASN1_VALUE *)val, &der, it);
	os = ASN1_OCTET_STRING_new();
	if (n <= 0 || os == NULL || ASN1_OCTET_STRING_set(os, der, n) != 1)
		goto out;
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, crit, os);
	ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

static int
certs_add_item_oid(X509 *x, const char *oid, int crit, const void *val, const ASN1_ITEM *it)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int ret = -1;

	if (obj != NULL)
		ret = certs_add_item(x, obj, crit, val, it);
	ASN1_OBJECT_free(obj);
	return ret;
}

static int
certs_name_add(X509_NAME *n, const char *oid, const char *value)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int ok;

	ok = obj != NULL && X509_NAME_add_entry_by_OBJ(n, obj, V_ASN1_UTF8STRING,
	                        (const unsigned char *)value, -1, -1, 0) == 1;
	ASN1_OBJECT_free(obj);
	return ok ? 0 : -1;
}

/* subjectAltName: one directoryName with the three TCG device attributes,
 * each in its own RDN, as text ("id:49424D00", a model, "id:20191023"). */
static int
certs_add_tpm_san_text(X509 *x, const char *manuf, const char *model, const char *version, int crit)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	X509_NAME *dn = X509_NAME_new();
	int ok = 0;

	if (gens == NULL || gn == NULL || dn == NULL ||
	    certs_name_add(dn, CERTS_OID_TCG_TPM_MANUFACTURER, manuf) == -1 ||
	    certs_name_add(dn, CERTS_OID_TCG_TPM_MODEL, model) == -1 ||
	    certs_name_add(dn, CERTS_OID_TCG_TPM_VERSION, version) == -1)
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn);
	dn = NULL;
	if (sk_GENERAL_NAME_push(gens, gn) <= 0)
		goto out;
	gn = NULL;
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, crit, X509V3_ADD_DEFAULT) == 1;
out:
	X509_NAME_free(dn);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

/* The same from an engine's values. */
static int
certs_add_tpm_san(X509 *x, const struct certs_tpm *tpm, int crit)
{
	char manuf[16], version[16];

	snprintf(manuf, sizeof(manuf), "id:%08X", (unsigned int)tpm->manufacturer);
	snprintf(version, sizeof(version), "id:%08X", (unsigned int)tpm->firmware);
	return certs_add_tpm_san_text(x, manuf, tpm->model, version, crit);
}

/* subjectDirectoryAttributes holding tcg-at-tpmSpecification. */
static int
certs_add_tpm_spec(X509 *x, const char *family, uint32_t level, uint32_t revision)
{
	STACK_OF(X509_ATTRIBUTE) *attrs = sk_X509_ATTRIBUTE_new_null();
	struct certs_tpmspec *spec = NULL;
	X509_ATTRIBUTE *attr = NULL;
	ASN1_OBJECT *obj = OBJ_txt2obj(CERTS_OID_TCG_TPM_SPEC, 1);
	unsigned char *der = NULL;
	int n, ok = 0;

	spec = (struct certs_tpmspec *)ASN1_item_new(ASN1_ITEM_rptr(certs_tpmspec_asn1));
	if (attrs == NULL || obj == NULL || spec == NULL ||
	    ASN1_STRING_set(spec->family, family, -1) != 1 ||
	    ASN1_INTEGER_set_uint64(spec->level, level) != 1 ||
	    ASN1_INTEGER_set_uint64(spec->revision, revision) != 1)
		goto out;
	n = ASN1_item_i2d((ASN1_VALUE *)spec, &der, ASN1_ITEM_rptr(certs_tpmspec_asn1));
	if (n <= 0)
		goto out;
	attr = X509_ATTRIBUTE_create_by_OBJ(NULL, obj, V_ASN1_SEQUENCE, der, n);
	if (attr == NULL || sk_X509_ATTRIBUTE_push(attrs, attr) <= 0)
		goto out;
	attr = NULL;
	ok = certs_add_item(x, OBJ_nid2obj(NID_subject_directory_attributes), 0, attrs,
	         ASN1_ITEM_rptr(certs_sda_asn1)) == 0;
out:
	OPENSSL_free(der);
	X509_ATTRIBUTE_free(attr);
	sk_X509_ATTRIBUTE_pop_free(attrs, X509_ATTRIBUTE_free);
	ASN1_item_free((ASN1_VALUE *)spec, ASN1_ITEM_rptr(certs_tpmspec_asn1));
	ASN1_OBJECT_free(obj);
	return ok ? 0 : -1;
}

static int
certs_add_virtual(X509 *x, const struct certs_virtual *virt)
{
	struct certs_vext *v;
	uint8_t uuid[16];
	int ok;

	if (certs_uuid_parse(virt->instance_uuid, uuid) == -1)
		return -1;
	v = (struct certs_vext *)ASN1_item_new(ASN1_ITEM_rptr(certs_vext_asn1));
	ok = v != NULL && ASN1_INTEGER_set(v->version, CERTS_EXT_V1) == 1 &&
	     ASN1_OCTET_STRING_set(v->ck_digest, virt->ck_digest, CERTS_DIGEST_LEN) == 1 &&
	     ASN1_STRING_set(v->host_config, virt->host_config, -1) == 1 &&
	     ASN1_OCTET_STRING_set(v->uuid, uuid, sizeof(uuid)) == 1;
	if (ok && virt->host[0] != '\0')
		ok = (v->host = ASN1_UTF8STRING_new()) != NULL &&
		     ASN1_STRING_set(v->host, virt->host, -1) == 1;
	if (ok) {
		v->is_virtual = virt->is_virtual ? 0xff : 0;
		ok = certs_add_item_oid(
		         x, CERTS_OID_VIRTUAL_EXT, 0, v, ASN1_ITEM_rptr(certs_vext_asn1)) == 0;
	}
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(certs_vext_asn1));
	return ok ? 0 : -1;
}

static int
certs_add_hostkey(X509 *x, const char *host, const uint8_t digest[static CERTS_DIGEST_LEN])
{
	struct certs_hostkey *h;
	int ok;

	h = (struct certs_hostkey *)ASN1_item_new(ASN1_ITEM_rptr(certs_hostkey_asn1));
	ok = h != NULL && ASN1_INTEGER_set(h->version, CERTS_EXT_V1) == 1 &&
	     ASN1_STRING_set(h->host, host, -1) == 1 &&
	     ASN1_OCTET_STRING_set(h->ek_digest, digest, CERTS_DIGEST_LEN) == 1 &&
	     certs_add_item_oid(
	         x, CERTS_OID_HOST_KEY_EXT, 0, h, ASN1_ITEM_rptr(certs_hostkey_asn1)) == 0;
	ASN1_item_free((ASN1_VALUE *)h, ASN1_ITEM_rptr(certs_hostkey_asn1));
	return ok ? 0 : -1;
}

/* Fills a CertRef from ref. */
static int
certs_certref_set(struct certs_certref *r, const struct certs_ref *ref)
{
	if (ref->issuer_keyid_len == 0 || ref->issuer_keyid_len > CERTS_KEYID_MAX)
		return -1;
	if (ASN1_OCTET_STRING_set(r->issuer_keyid, ref->issuer_keyid, (int)ref->issuer_keyid_len) !=
	        1 ||
	    certs_serial_set(r->serial, ref->serial) == -1)
		return -1;
	return 0;
}

static int
certs_certref_get(const struct certs_certref *r, struct certs_ref *ref)
{
	if (certs_keyid_copy(r->issuer_keyid, ref->issuer_keyid, &ref->issuer_keyid_len) == -1 ||
	    certs_serial_hex(r->serial, ref->serial) == -1)
		return -1;
	return 0;
}

/* The VtpmdLineage extension, when l->present. */
static int
certs_add_lineage(X509 *x, const struct certs_lineage *l)
{
	struct certs_lext *v;
	int ok;

	if (!l->present)
		return 0;
	v = (struct certs_lext *)ASN1_item_new(ASN1_ITEM_rptr(certs_lext_asn1));
	ok = v != NULL && ASN1_INTEGER_set(v->version, CERTS_EXT_V1) == 1 &&
	     certs_certref_set(v->ck, &l->ck) == 0;
	if (ok && l->has_vek)
		ok = (v->vek = (struct certs_certref *)ASN1_item_new(
		          ASN1_ITEM_rptr(certs_certref_asn1))) != NULL &&
		     certs_certref_set(v->vek, &l->vek) == 0;
	if (ok)
		ok = certs_add_item_oid(
		         x, CERTS_OID_LINEAGE_EXT, 0, v, ASN1_ITEM_rptr(certs_lext_asn1)) == 0;
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(certs_lext_asn1));
	return ok ? 0 : -1;
}

/* cRLDistributionPoints with one fullName URI, when uri is not NULL. */
static int
certs_add_crl_uri(X509 *x, const char *uri)
{
	STACK_OF(DIST_POINT) *dps = NULL;
	DIST_POINT *dp = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	int ok = 0;

	if (uri == NULL || uri[0] == '\0')
		return 0;
	if ((dps = sk_DIST_POINT_new_null()) == NULL || (dp = DIST_POINT_new()) == NULL ||
	    (dp->distpoint = DIST_POINT_NAME_new()) == NULL ||
	    (dp->distpoint->name.fullname = sk_GENERAL_NAME_new_null()) == NULL ||
	    (gn = GENERAL_NAME_new()) == NULL || (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    ASN1_STRING_set(ia5, uri, -1) != 1)
		goto out;
	dp->distpoint->type = 0; /* fullName */
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn) <= 0)
		goto out;
	gn = NULL;
	if (sk_DIST_POINT_push(dps, dp) <= 0)
		goto out;
	dp = NULL;
	ok = X509_add1_ext_i2d(x, NID_crl_distribution_points, dps, 0, X509V3_ADD_DEFAULT) == 1;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	DIST_POINT_free(dp);
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return ok ? 0 : -1;
}

static const EVP_MD *
certs_md(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) > 256)
		return EVP_sha384();
	return EVP_sha256();
}

/* Signs x with key, checks the signature, and encodes x. */
static int
certs_sign(X509 *x, EVP_PKEY *key, uint8_t **der, size_t *len, struct err *err)
{
	if (X509_sign(x, key, certs_md(key)) <= 0 || X509_verify(x, key) != 1) {
		err_ssl(err, "signing the certificate");
		return -1;
	}
	if (certs_i2d(x, der, len) == -1) {
		err_ssl(err, "encoding the certificate");
		return -1;
	}
	return 0;
}

/* CAs. */

void
certs_ca_free(struct certs_ca *ca)
{
	if (ca == NULL)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	ASN1_OCTET_STRING_free(ca->keyid);
	free(ca);
}

/* A CA from its key and certificate, which it takes when it succeeds, after
 * checking that they belong together and that the certificate is a CA's.
 * Returns NULL with why, leaving key and cert to the caller. */
static struct certs_ca *
certs_ca_new(EVP_PKEY *key, X509 *cert, struct err *err)
{
	uint32_t flags = X509_get_extension_flags(cert);
	const ASN1_OCTET_STRING *ski;
	struct certs_ca *ca;

	if (!EVP_PKEY_is_a(key, "EC") && !EVP_PKEY_is_a(key, "RSA")) {
		err_ssl(err, "CA key: neither ECC nor RSA");
		return NULL;
	}
	if (X509_check_private_key(cert, key) != 1) {
		err_ssl(err, "the CA key does not match the CA certificate");
		return NULL;
	}
	if (!(flags & EXFLAG_CA) ||
	    ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN))) {
		err_ssl(err, "not a CA certificate (needs CA:TRUE and keyCertSign)");
		return NULL;
	}
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL) {
		err_ssl(err, "out of memory");
		return NULL;
	}
	ski = X509_get0_subject_key_id(cert);
	ca->keyid = ski != NULL ? ASN1_OCTET_STRING_dup(ski) : certs_key_id(cert);
	if (ca->keyid == NULL) {
		err_ssl(err, "CA key identifier");
		free(ca);
		return NULL;
	}
	ca->key = key;
	ca->cert = cert;
	return ca;
}

/* Creates path (which must not exist) holding buf, synced; on failure it
 * leaves no file behind. */
static int
certs_write_new(const char *path, const void *buf, size_t len, mode_t mode)
{
	const uint8_t *p = buf;
	int fd, saved, ret = -1;
	ssize_t n;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd == -1)
		return -1;
	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1)
		goto out;
	ret = 0;
out:
	saved = errno;
	if (close(fd) == -1 && ret == 0) {
		saved = errno;
		ret = -1;
	}
	if (ret != 0)
		unlink(path);
	errno = saved;
	return ret;
}

/* Writes key (PEM, PKCS#8, mode 0600) and the DER certificate (PEM, mode
 * 0644) to new files. */
static int
certs_ca_write(EVP_PKEY *key, const uint8_t *der, size_t len, const char *key_path,
    const char *cert_path, struct err *err)
{
	BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
	X509 *x = certs_d2i(der, len);
	char *kp = NULL, *cp = NULL;
	long kn, cn;
	int ret = -1;

	if (kb == NULL || cb == NULL || x == NULL ||
	    PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cb, x) != 1) {
		err_ssl(err, "PEM encoding");
		goto out;
	}
	kn = BIO_get_mem_data(kb, &kp);
	cn = BIO_get_mem_data(cb, &cp);
	if (certs_write_new(key_path, kp, (size_t)kn, 0600) == -1) {
		err_ssl(err, "%s: %s", key_path, strerror(errno));
		goto out;
	}
	if (certs_write_new(cert_path, cp, (size_t)cn, 0644) == -1) {
		err_ssl(err, "%s: %s", cert_path, strerror(errno));
		unlink(key_path);
		goto out;
	}
	ret = 0;
out:
	BIO_free(kb);
	BIO_free(cb);
	X509_free(x);
	return ret;
}

static int
certs_ca_check(
    const char *name, enum certs_ca_kind kind, const struct certs_ca *parent, struct err *err)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > CERTS_NAME_MAX)
		err_ssl(err, "CA name: 1 to %d bytes", CERTS_NAME_MAX);
	else if (kind != CERTS_CA_ROOT && kind != CERTS_CA_ISSUING)
		err_ssl(err, "unknown CA kind");
	else if (kind == CERTS_CA_ROOT && parent != NULL)
		err_ssl(err, "a root CA has no parent");
	else if (parent != NULL && X509_get_pathlen(parent->cert) == 0)
		err_ssl(err, "the parent CA may not certify CAs (pathlen 0)");
	else
		return 0;
	return -1;
}

/* Creates a CA named name (its CN): a new P-256 key at key_path and its
 * certificate at cert_path, neither of which may exist; parent signs it, or
 * the key itself when parent is NULL. Returns the CA (free with
 * certs_ca_free), or NULL with why. */
struct certs_ca *
certs_ca_create(const char *name, enum certs_ca_kind kind, const struct certs_ca *parent,
    const struct certs_validity *validity, const char *key_path, const char *cert_path,
    struct err *err)
{
	struct certs_ca *ca = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	X509_NAME *subject = NULL;
	EVP_PKEY *key = NULL;
	X509 *x = NULL, *cert = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	if (certs_ca_check(name, kind, parent, err) == -1)
		return NULL;
	key = EVP_EC_gen("P-256");
	subject = certs_name("vtpmd", name);
	if (key == NULL || subject == NULL) {
		err_ssl(err, "new CA key");
		goto out;
	}
	x = certs_cert_new(parent != NULL ? X509_get_subject_name(parent->cert) : subject, key,
	    subject, validity, err);
	if (x == NULL)
		goto out;
	ski = certs_key_id(x);
	if (ski == NULL || certs_add_bc(x, true, kind == CERTS_CA_ROOT ? 1 : 0) == -1 ||
	    certs_add_ku(x, CERTS_KU_KEY_CERT_SIGN | CERTS_KU_CRL_SIGN) == -1 ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) != 1 ||
	    certs_add_aki(x, parent != NULL ? parent->keyid : ski) == -1) {
		err_ssl(err, "CA certificate extensions");
		goto out;
	}
	if (certs_sign(x, parent != NULL ? parent->key : key, &der, &len, err) == -1 ||
	    certs_ca_write(key, der, len, key_path, cert_path, err) == -1)
		goto out;
	cert = certs_d2i(der, len);
	if (cert == NULL) {
		err_ssl(err, "re-reading the CA certificate");
		goto out;
	}
	ca = certs_ca_new(key, cert, err);
	if (ca != NULL)
		key = NULL, cert = NULL; /* the CA's now */
out:
	free(der);
	X509_free(cert);
	X509_free(x);
	X509_NAME_free(subject);
	ASN1_OCTET_STRING_free(ski);
	EVP_PKEY_free(key);
	return ca;
}

/* A private key from a PEM file, or NULL with why. */
static EVP_PKEY *
certs_read_key(const char *path, struct err *err)
{
	EVP_PKEY *key = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *bio;

	if (fileio_read(path, CERTS_FILE_MAX, &buf, &len) == -1) {
		err_ssl(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio != NULL)
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (key == NULL)
		err_ssl(err, "%s: not a PEM private key", path);
	return key;
}

/* Loads a CA's PEM private key and its certificate (PEM or DER). Returns
 * the CA (free with certs_ca_free), or NULL with why. */
struct certs_ca *
certs_ca_load(const char *key_path, const char *cert_path, struct err *err)
{
	struct certs_ca *ca = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	if (certs_read(cert_path, &der, &len) == -1) {
		err_ssl(err, "%s: %s", cert_path,
		    errno == EINVAL ? "not a certificate" : strerror(errno));
		goto out;
	}
	cert = certs_d2i(der, len);
	key = certs_read_key(key_path, err);
	if (cert != NULL && key != NULL && (ca = certs_ca_new(key, cert, err)) != NULL)
		key = NULL, cert = NULL; /* the CA's now */
out:
	free(der);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ca;
}

/* The CA's certificate as DER, malloc'd. */
int
certs_ca_cert(const struct certs_ca *ca, uint8_t **der, size_t *len)
{
	return certs_i2d(ca->cert, der, len);
}

/* Leaves. */

void
certs_tpm_defaults(struct certs_tpm *tpm)
{
	memset(tpm, 0, sizeof(*tpm));
	tpm->manufacturer = CERTS_VTPM_MANUFACTURER;
	snprintf(tpm->model, sizeof(tpm->model), "%s", CERTS_VTPM_MODEL);
	tpm->firmware = CERTS_VTPM_FIRMWARE;
	snprintf(tpm->family, sizeof(tpm->family), "%s", CERTS_VTPM_FAMILY);
	tpm->level = CERTS_VTPM_LEVEL;
	tpm->revision = CERTS_VTPM_REVISION;
}

static bool
certs_str_ok(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	return n > 0 && n < size;
}

static int
certs_check_ek_req(const struct certs_ek_req *req, int *ku, struct err *err)
{
	uint8_t uuid[16];

	if (req->ek == NULL) {
		err_ssl(err, "no EK public key");
		return -1;
	}
	if (EVP_PKEY_is_a(req->ek->pkey, "RSA") && EVP_PKEY_get_bits(req->ek->pkey) >= 2048)
		*ku = CERTS_KU_KEY_ENCIPHERMENT;
	else if (EVP_PKEY_is_a(req->ek->pkey, "EC"))
		*ku = CERTS_KU_KEY_AGREEMENT;
	else {
		err_ssl(err, "EK: neither RSA (2048 bits or more) nor ECC");
		return -1;
	}
	if (!certs_str_ok(req->tpm.model, sizeof(req->tpm.model)) ||
	    !certs_str_ok(req->tpm.family, sizeof(req->tpm.family))) {
		err_ssl(err, "TPM model and family must not be empty");
		return -1;
	}
	if (!certs_str_ok(req->virt.host_config, sizeof(req->virt.host_config))) {
		err_ssl(err, "host configuration id: 1 to %d bytes", CERTS_HOST_CONFIG_MAX);
		return -1;
	}
	if (certs_uuid_parse(req->virt.instance_uuid, uuid) == -1) {
		err_ssl(err, "instance UUID: not of the form 8-4-4-4-12 hex digits");
		return -1;
	}
	return 0;
}

/* Issues a vEK certificate for req into *der (malloc'd). */
int
certs_issue_ek(const struct certs_ca *ca, const struct certs_ek_req *req, uint8_t **der,
    size_t *len, struct err *err)
{
	X509 *x = NULL;
	int ku, ret = -1;

	if (certs_check_ek_req(req, &ku, err) == -1)
		return -1;
	x = certs_cert_new(
	    X509_get_subject_name(ca->cert), req->ek->pkey, NULL, &req->validity, err);
	if (x == NULL)
		return -1;
	if (certs_add_bc(x, false, -1) == -1 || certs_add_ku(x, ku) == -1 ||
	    certs_add_eku(x, CERTS_OID_TCG_KP_EK) == -1 ||
	    certs_add_tpm_san(x, &req->tpm, 1) == -1 ||
	    certs_add_tpm_spec(x, req->tpm.family, req->tpm.level, req->tpm.revision) == -1 ||
	    certs_add_aki(x, ca->keyid) == -1 || certs_add_policy(x, CERTS_OID_POLICY_VEK) == -1 ||
	    certs_add_virtual(x, &req->virt) == -1 || certs_add_lineage(x, &req->lineage) == -1 ||
	    certs_add_crl_uri(x, req->crl_uri) == -1) {
		err_ssl(err, "EK certificate extensions");
		goto out;
	}
	ret = certs_sign(x, ca->key, der, len, err);
out:
	X509_free(x);
	return ret;
}

/* Finds the only extension of x with the given OID: 0 found, 1 absent, -1
 * present more than once. */
static int
certs_find_ext(const X509 *x, const char *oid, X509_EXTENSION **ext)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int i, ret = -1;

	*ext = NULL;
	if (obj == NULL)
		return -1;
	i = X509_get_ext_by_OBJ(x, obj, -1);
	if (i < 0)
		ret = 1;
	else if (X509_get_ext_by_OBJ(x, obj, i) < 0) {
		*ext = X509_get_ext(x, i);
		ret = 0;
	}
	ASN1_OBJECT_free(obj);
	return ret;
}

/* Decodes the vtpmd extension of x into out: 0, 1 when absent, -1 when
 * malformed (with why). */
static int
certs_virtual_of(const X509 *x, struct certs_virtual *out, struct err *err)
{
	struct certs_vext *v = NULL;
	X509_EXTENSION *ext;
	int64_t version;
	int r, ret = -1;

	memset(out, 0, sizeof(*out));
	r = certs_find_ext(x, CERTS_OID_VIRTUAL_EXT, &ext);
	if (r == 1)
		return 1;
	if (r == -1) {
		err_ssl(err, "the vtpmd extension appears more than once");
		return -1;
	}
	v = (struct certs_vext *)certs_item_d2i(
	    X509_EXTENSION_get_data(ext), ASN1_ITEM_rptr(certs_vext_asn1));
	if (v == NULL || ASN1_INTEGER_get_int64(&version, v->version) != 1 ||
	    version != CERTS_EXT_V1 || (v->is_virtual != 0 && v->is_virtual != 0xff) ||
	    ASN1_STRING_length(v->ck_digest) != CERTS_DIGEST_LEN ||
	    ASN1_STRING_length(v->uuid) != 16 ||
	    certs_copy_str(out->host_config, CERTS_HOST_CONFIG_MAX, v->host_config) == -1 ||
	    (v->host != NULL && certs_copy_str(out->host, CERTS_NAME_MAX, v->host) == -1)) {
		err_ssl(err, "the vtpmd extension is malformed");
		goto out;
	}
	out->is_virtual = v->is_virtual != 0;
	memcpy(out->ck_digest, ASN1_STRING_get0_data(v->ck_digest), CERTS_DIGEST_LEN);
	certs_uuid_format(ASN1_STRING_get0_data(v->uuid), out->instance_uuid);
	ret = 0;
out:
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(certs_vext_asn1));
	return ret;
}

/* The TPM attributes (subjectAltName, subjectDirectoryAttributes) and the
 * vtpmd extension an AK certificate repeats from its vEK certificate. */
static int
certs_add_ak_tpm(X509 *x, const struct certs_ak_req *req, bool san_critical, struct err *err)
{
	const struct certs_ek_info *t = &req->tpm;

	if (t->manufacturer[0] == '\0' && san_critical) {
		err_set(err, ERR_INVALID,
		    "no TPM attributes for the subjectAltName, and the subject is empty");
		return -1;
	}
	if (t->manufacturer[0] != '\0' &&
	    (!certs_str_ok(t->manufacturer, sizeof(t->manufacturer)) ||
	        !certs_str_ok(t->model, sizeof(t->model)) ||
	        !certs_str_ok(t->version, sizeof(t->version)) ||
	        (t->has_spec && !certs_str_ok(t->family, sizeof(t->family))))) {
		err_set(err, ERR_INVALID, "the TPM's manufacturer, model and version are required");
		return -1;
	}
	if (t->manufacturer[0] != '\0' &&
	    (certs_add_tpm_san_text(x, t->manufacturer, t->model, t->version, san_critical) == -1 ||
	        (t->has_spec && certs_add_tpm_spec(x, t->family, t->level, t->revision) == -1))) {
		err_ssl(err, "the TPM attributes");
		return -1;
	}
	if (req->virt.is_virtual && certs_add_virtual(x, &req->virt) == -1) {
		err_ssl(err, "the vtpmd extension");
		return -1;
	}
	return 0;
}

/* The TPM attributes and the vtpmd extension of a vEK certificate, into an
 * AK request. */
int
certs_ak_from_ek(const uint8_t *der, size_t len, struct certs_ak_req *req, struct err *err)
{
	if (certs_ek_info(der, len, &req->tpm, err) == -1 ||
	    certs_parse_virtual(der, len, &req->virt, err) == -1)
		return -1;
	return 0;
}

/* A VtpmdLineage extension's value into out (present). */
static int
certs_lineage_ext(X509_EXTENSION *ext, struct certs_lineage *out, struct err *err)
{
	struct certs_lext *v = NULL;
	int64_t version;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	v = (struct certs_lext *)certs_item_d2i(
	    X509_EXTENSION_get_data(ext), ASN1_ITEM_rptr(certs_lext_asn1));
	if (v == NULL || ASN1_INTEGER_get_int64(&version, v->version) != 1 ||
	    version != CERTS_EXT_V1 || certs_certref_get(v->ck, &out->ck) == -1 ||
	    (v->vek != NULL && certs_certref_get(v->vek, &out->vek) == -1)) {
		memset(out, 0, sizeof(*out));
		err_ssl(err, "the vtpmd lineage extension is malformed");
		goto out;
	}
	out->present = true;
	out->has_vek = v->vek != NULL;
	ret = 0;
out:
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(certs_lext_asn1));
	return ret;
}

/* The VtpmdLineage extension of x (certs_parse_lineage). */
static int
certs_lineage_of(X509 *x, struct certs_lineage *out, struct err *err)
{
	X509_EXTENSION *ext;
	int r;

	memset(out, 0, sizeof(*out));
	r = certs_find_ext(x, CERTS_OID_LINEAGE_EXT, &ext);
	if (r == 1)
		return 0;
	if (r == -1)
		return err_ssl(err, "the vtpmd lineage extension appears more than once");
	return certs_lineage_ext(ext, out, err);
}

int
certs_parse_lineage(const uint8_t *der, size_t len, struct certs_lineage *out, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	int ret;

	memset(out, 0, sizeof(*out));
	if (x == NULL)
		return err_ssl(err, "not a DER certificate");
	ret = certs_lineage_of(x, out, err);
	X509_free(x);
	return ret;
}

static bool
certs_signing_key(EVP_PKEY *k)
{
	return EVP_PKEY_is_a(k, "EC") || (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) >= 2048);
}

/* Issues a vAK certificate for req into *der (malloc'd). The caller has
 * verified the vEK certificate req->tpm and req->virt come from. */
int
certs_issue_ak(const struct certs_ca *ca, const struct certs_ak_req *req, uint8_t **der,
    size_t *len, struct err *err)
{
	bool empty = req->subject == NULL || req->subject[0] == '\0';
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	int ret = -1;

	if (req->ak == NULL || !certs_signing_key(req->ak->pkey)) {
		err_ssl(err, "AK: neither ECC nor RSA of 2048 bits or more");
		return -1;
	}
	if (!empty && strlen(req->subject) > CERTS_NAME_MAX) {
		err_ssl(err, "AK subject: at most %d bytes", CERTS_NAME_MAX);
		return -1;
	}
	if (!empty && (subject = certs_name(NULL, req->subject)) == NULL) {
		err_ssl(err, "AK subject");
		goto out;
	}
	x = certs_cert_new(
	    X509_get_subject_name(ca->cert), req->ak->pkey, subject, &req->validity, err);
	if (x == NULL)
		goto out;
	if (certs_add_bc(x, false, -1) == -1 || certs_add_ku(x, CERTS_KU_DIGITAL_SIGNATURE) == -1 ||
	    certs_add_eku(x, CERTS_OID_TCG_KP_AIK) == -1 || certs_add_aki(x, ca->keyid) == -1 ||
	    certs_add_policy(x, CERTS_OID_POLICY_VAK) == -1 ||
	    certs_add_lineage(x, &req->lineage) == -1 || certs_add_crl_uri(x, req->crl_uri) == -1) {
		err_ssl(err, "AK certificate extensions");
		goto out;
	}
	if (certs_add_ak_tpm(x, req, empty, err) == -1)
		goto out;
	ret = certs_sign(x, ca->key, der, len, err);
out:
	X509_NAME_free(subject);
	X509_free(x);
	return ret;
}

/* Issues the certificate of a host's Certifying Key into *der (malloc'd).
 * The caller has established that the key is a restricted signing key in
 * the TPM whose EK has the digest req->host_ek_digest. */
int
certs_issue_ck(const struct certs_ca *ca, const struct certs_ck_req *req, uint8_t **der,
    size_t *len, struct err *err)
{
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	int ret = -1;

	if (req->ck == NULL || !certs_signing_key(req->ck->pkey)) {
		err_ssl(err, "CK: neither ECC nor RSA of 2048 bits or more");
		return -1;
	}
	if (req->host == NULL || req->host[0] == '\0' || strlen(req->host) > CERTS_NAME_MAX) {
		err_ssl(err, "host name: 1 to %d bytes", CERTS_NAME_MAX);
		return -1;
	}
	subject = certs_name(NULL, req->host);
	if (subject == NULL) {
		err_ssl(err, "CK subject");
		return -1;
	}
	x = certs_cert_new(
	    X509_get_subject_name(ca->cert), req->ck->pkey, subject, &req->validity, err);
	if (x == NULL)
		goto out;
	if (certs_add_bc(x, false, -1) == -1 || certs_add_ku(x, CERTS_KU_DIGITAL_SIGNATURE) == -1 ||
	    certs_add_eku(x, CERTS_OID_TCG_KP_AIK) == -1 || certs_add_aki(x, ca->keyid) == -1 ||
	    certs_add_policy(x, CERTS_OID_POLICY_HOST_CK) == -1 ||
	    certs_add_hostkey(x, req->host, req->host_ek_digest) == -1 ||
	    certs_add_crl_uri(x, req->crl_uri) == -1) {
		err_ssl(err, "CK certificate extensions");
		goto out;
	}
	ret = certs_sign(x, ca->key, der, len, err);
out:
	X509_NAME_free(subject);
	X509_free(x);
	return ret;
}

/* Checking. */

const char *
certs_verdict_name(enum certs_verdict v)
{
	switch (v) {
	case CERTS_VALID: return "valid";
	case CERTS_MALFORMED: return "malformed";
	case CERTS_UNTRUSTED: return "untrusted";
	case CERTS_BAD_SIGNATURE: return "bad signature";
	case CERTS_EXPIRED: return "expired";
	case CERTS_NOT_YET_VALID: return "not yet valid";
	case CERTS_NOT_CA: return "issuer is not a CA";
	case CERTS_INVALID: return "invalid";
	}
	return "unknown";
}

static enum certs_verdict
certs_verdict_of(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return CERTS_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID: return CERTS_NOT_YET_VALID;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: return CERTS_BAD_SIGNATURE;
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED: return CERTS_NOT_CA;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED: return CERTS_UNTRUSTED;
	default: return CERTS_INVALID;
	}
}

static STACK_OF(X509) * certs_stack(const struct certs_der *list, size_t n)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;

	if (sk == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		x = certs_d2i(list[i].der, list[i].len);
		if (x == NULL || sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			sk_X509_pop_free(sk, X509_free);
			return NULL;
		}
	}
	return sk;
}

/* The reason a verification failed, naming the certificate. */
static void
certs_verify_why(X509_STORE_CTX *ctx, struct err *err)
{
	int code = X509_STORE_CTX_get_error(ctx);
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	char subject[256] = "";

	if (cur != NULL)
		X509_NAME_oneline(X509_get_subject_name(cur), subject, sizeof(subject));
	err_ssl(err, "%s (depth %d, subject %s)", X509_verify_cert_error_string(code),
	    X509_STORE_CTX_get_error_depth(ctx), subject[0] != '\0' ? subject : "empty");
}

/* Verifies leaf's chain to one of roots at time at; when path is not NULL
 * and the chain verified, *path is the chain that did (leaf first, root
 * last; the caller frees it). Returns CERTS_VALID or the kind of failure,
 * with why. */
static enum certs_verdict
certs_verify(const struct certs_der *leaf, const struct certs_der *untrusted, size_t n_untrusted,
    const struct certs_der *roots, size_t n_roots, int64_t at, STACK_OF(X509) * *path,
    struct err *err)
{
	enum certs_verdict verdict = CERTS_MALFORMED;
	STACK_OF(X509) *chain = NULL, *anchors = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509 *cert = NULL;

	cert = certs_d2i(leaf->der, leaf->len);
	chain = certs_stack(untrusted, n_untrusted);
	anchors = certs_stack(roots, n_roots);
	if (cert == NULL || chain == NULL || anchors == NULL) {
		err_ssl(err, "%s is not a DER certificate",
		    cert == NULL    ? "the leaf"
		    : chain == NULL ? "an intermediate"
		                    : "a root");
		goto out;
	}
	verdict = CERTS_INVALID;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || ctx == NULL) {
		err_ssl(err, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(anchors); i++)
		if (X509_STORE_add_cert(store, sk_X509_value(anchors, i)) != 1) {
			err_ssl(err, "adding a trusted root");
			goto out;
		}
	if (X509_STORE_CTX_init(ctx, store, cert, chain) != 1) {
		err_ssl(err, "verification context");
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)at);
	if (X509_verify_cert(ctx) == 1) {
		if (path != NULL && (*path = X509_STORE_CTX_get1_chain(ctx)) == NULL) {
			err_ssl(err, "out of memory");
			goto out;
		}
		verdict = CERTS_VALID;
		ERR_clear_error();
		goto out;
	}
	verdict = certs_verdict_of(X509_STORE_CTX_get_error(ctx));
	certs_verify_why(ctx, err);
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(anchors, X509_free);
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	return verdict;
}

/* Verifies leaf's chain to one of roots at time at. Returns CERTS_VALID or
 * the kind of failure, with why. */
enum certs_verdict
certs_verify_chain(const struct certs_der *leaf, const struct certs_der *untrusted,
    size_t n_untrusted, const struct certs_der *roots, size_t n_roots, int64_t at, struct err *err)
{
	return certs_verify(leaf, untrusted, n_untrusted, roots, n_roots, at, NULL, err);
}

/* Frees the DER certificates of a path (certs_verify_path) and empties it. */
void
certs_path_clear(struct certs_der *path, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((void *)path[i].der);
	memset(path, 0, *n * sizeof(*path));
	*n = 0;
}

/*
 * certs_verify_chain, and the chain that verified: leaf's issuers, from
 * the one that signed it up to and with the trusted root, as malloc'd DER
 * in path[0 .. *n_path) (certs_path_clear frees them), so that what is
 * kept or passed on is the chain checked, not the one offered. A chain
 * longer than path_max issuers is CERTS_INVALID.
 */
enum certs_verdict
certs_verify_path(const struct certs_der *leaf, const struct certs_der *untrusted,
    size_t n_untrusted, const struct certs_der *roots, size_t n_roots, int64_t at,
    struct certs_der *path, size_t path_max, size_t *n_path, struct err *err)
{
	STACK_OF(X509) *chain = NULL;
	enum certs_verdict v;
	uint8_t *der;
	size_t len;
	int n;

	*n_path = 0;
	v = certs_verify(leaf, untrusted, n_untrusted, roots, n_roots, at, &chain, err);
	if (v != CERTS_VALID)
		return v;
	n = sk_X509_num(chain);
	if (n < 1 || (size_t)n - 1 > path_max) {
		err_ssl(err, "a chain of %d issuers (at most %zu)", n - 1, path_max);
		v = CERTS_INVALID;
		goto out;
	}
	for (int i = 1; i < n; i++) {
		if (certs_i2d(sk_X509_value(chain, i), &der, &len) == -1) {
			err_ssl(err, "out of memory");
			certs_path_clear(path, n_path);
			v = CERTS_INVALID;
			goto out;
		}
		path[(*n_path)++] = (struct certs_der){der, len};
	}
out:
	sk_X509_pop_free(chain, X509_free);
	return v;
}

/* Reading certificates. */

/* The AuthorityKeyIdentifier keyIdentifier of a light certificate. */
static int
certs_light_aki(X509_EXTENSION *ext, struct certs_ref *self)
{
	AUTHORITY_KEYID *aki = (AUTHORITY_KEYID *)certs_item_d2i(
	    X509_EXTENSION_get_data(ext), ASN1_ITEM_rptr(AUTHORITY_KEYID));
	int r = aki == NULL
	            ? -1
	            : certs_keyid_copy(aki->keyid, self->issuer_keyid, &self->issuer_keyid_len);

	AUTHORITY_KEYID_free(aki);
	return r;
}

/* The serial, AuthorityKeyIdentifier and VtpmdLineage of a light
 * certificate (each extension at most once). */
static int
certs_light_refs(const struct certs_light_tbs *tbs, struct certs_ref *self,
    struct certs_lineage *lineage, struct err *err)
{
	X509_EXTENSION *ext;
	bool aki = false;

	if (certs_serial_hex(tbs->serial, self->serial) == -1)
		return err_ssl(err, "its serial number is negative or longer than 20 octets");
	for (int i = 0; i < sk_X509_EXTENSION_num(tbs->extensions); i++) {
		ext = sk_X509_EXTENSION_value(tbs->extensions, i);
		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_authority_key_identifier) {
			if (aki || certs_light_aki(ext, self) == -1)
				return err_ssl(
				    err, "its AuthorityKeyIdentifier is malformed or repeated");
			aki = true;
		} else if (certs_oid_is(X509_EXTENSION_get_object(ext), CERTS_OID_LINEAGE_EXT)) {
			if (lineage->present)
				return err_ssl(
				    err, "the vtpmd lineage extension appears more than once");
			if (certs_lineage_ext(ext, lineage, err) == -1)
				return -1;
		}
	}
	if (!aki)
		return err_ssl(err, "it names no issuer key identifier (AuthorityKeyIdentifier)");
	return 0;
}

int
certs_cert_lineage(const uint8_t *der, size_t len, struct certs_ref *self,
    struct certs_lineage *lineage, bool *is_virtual, struct err *err)
{
	struct certs_light *c;
	struct certs_virtual v;
	struct err inner;
	int ret = -1;

	*is_virtual = false;
	memset(self, 0, sizeof(*self));
	memset(lineage, 0, sizeof(*lineage));
	c = (struct certs_light *)certs_item_d2i_bytes(der, len, ASN1_ITEM_rptr(certs_light_asn1));
	if (c == NULL)
		return err_ssl(err, "not a DER certificate");
	if (certs_light_refs(c->tbs, self, lineage, err) == 0) {
		/* the marker matters only where the lineage is missing (a full parse) */
		*is_virtual = lineage->present ||
		              (certs_parse_virtual(der, len, &v, &inner) == 0 && v.is_virtual);
		ret = 0;
	}
	ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(certs_light_asn1));
	return ret;
}

/* The vtpmd extension of a DER certificate: 0 (is_virtual false when it
 * has none) or -1 when the certificate or the extension is malformed. */
int
certs_parse_virtual(
    const uint8_t *der, size_t len, struct certs_virtual *out, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	int r;

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	r = certs_virtual_of(x, out, err);
	X509_free(x);
	return r == -1 ? -1 : 0;
}

/* The TCG device attributes of x's subjectAltName (any number of RDNs). */
static int
certs_san_info(const X509 *x, struct certs_ek_info *out, struct err *err)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *gn;
	X509_NAME_ENTRY *e;
	const X509_NAME *dn;
	char *dst;
	int crit = -1, ret = -1;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL) {
		err_ssl(err, "no subjectAltName (or more than one)");
		return -1;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != GEN_DIRNAME)
			continue;
		dn = gn->d.directoryName;
		for (int j = 0; j < X509_NAME_entry_count(dn); j++) {
			e = X509_NAME_get_entry(dn, j);
			if (certs_oid_is(
			        X509_NAME_ENTRY_get_object(e), CERTS_OID_TCG_TPM_MANUFACTURER))
				dst = out->manufacturer;
			else if (certs_oid_is(
			             X509_NAME_ENTRY_get_object(e), CERTS_OID_TCG_TPM_MODEL))
				dst = out->model;
			else if (certs_oid_is(
			             X509_NAME_ENTRY_get_object(e), CERTS_OID_TCG_TPM_VERSION))
				dst = out->version;
			else
				continue;
			if (dst[0] != '\0' || certs_copy_str(dst, CERTS_TPM_STR_MAX,
			                          X509_NAME_ENTRY_get_data(e)) == -1) {
				err_ssl(err, "a TPM attribute is repeated or malformed");
				goto out;
			}
		}
	}
	if (out->manufacturer[0] == '\0' || out->model[0] == '\0' || out->version[0] == '\0') {
		err_ssl(err, "subjectAltName lacks a TPM manufacturer, model or version");
		goto out;
	}
	ret = 0;
out:
	GENERAL_NAMES_free(gens);
	return ret;
}

/* tcg-at-tpmSpecification from x's subjectDirectoryAttributes, if any. */
static int
certs_spec_info(const X509 *x, struct certs_ek_info *out, struct err *err)
{
	STACK_OF(X509_ATTRIBUTE) *attrs = NULL;
	struct certs_tpmspec *spec = NULL;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int i, ret = -1;

	i = X509_get_ext_by_NID(x, NID_subject_directory_attributes, -1);
	if (i < 0)
		return 0;
	if (X509_get_ext_by_NID(x, NID_subject_directory_attributes, i) >= 0)
		goto bad;
	attrs = (STACK_OF(X509_ATTRIBUTE) *)certs_item_d2i(
	    X509_EXTENSION_get_data(X509_get_ext(x, i)), ASN1_ITEM_rptr(certs_sda_asn1));
	if (attrs == NULL)
		goto bad;
	for (i = 0; i < sk_X509_ATTRIBUTE_num(attrs); i++) {
		attr = sk_X509_ATTRIBUTE_value(attrs, i);
		if (!certs_oid_is(X509_ATTRIBUTE_get0_object(attr), CERTS_OID_TCG_TPM_SPEC))
			continue;
		t = X509_ATTRIBUTE_get0_type(attr, 0);
		if (out->has_spec || X509_ATTRIBUTE_count(attr) != 1 || t == NULL ||
		    t->type != V_ASN1_SEQUENCE)
			goto bad;
		spec = (struct certs_tpmspec *)certs_item_d2i(
		    t->value.sequence, ASN1_ITEM_rptr(certs_tpmspec_asn1));
		if (spec == NULL ||
		    certs_copy_str(out->family, CERTS_TPM_STR_MAX, spec->family) == -1 ||
		    certs_uint32(spec->level, &out->level) == -1 ||
		    certs_uint32(spec->revision, &out->revision) == -1)
			goto bad;
		out->has_spec = true;
		ASN1_item_free((ASN1_VALUE *)spec, ASN1_ITEM_rptr(certs_tpmspec_asn1));
		spec = NULL;
	}
	ret = 0;
	goto out;
bad:
	err_ssl(err, "subjectDirectoryAttributes: malformed tpmSpecification");
out:
	ASN1_item_free((ASN1_VALUE *)spec, ASN1_ITEM_rptr(certs_tpmspec_asn1));
	sk_X509_ATTRIBUTE_pop_free(attrs, X509_ATTRIBUTE_free);
	return ret;
}

/* The TPM an EK (or AK) certificate describes: the strings of its
 * subjectAltName and, when present, its tpmSpecification. */
int
certs_ek_info(const uint8_t *der, size_t len, struct certs_ek_info *out, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	if (certs_san_info(x, out, err) == 0 && certs_spec_info(x, out, err) == 0)
		ret = 0;
	else
		memset(out, 0, sizeof(*out));
	X509_free(x);
	return ret;
}

/* The host a CK certificate names, from its VtpmdHostKey extension. */
int
certs_parse_ck(
    const uint8_t *der, size_t len, struct certs_host_key *out, struct err *err)
{
	struct certs_hostkey *h = NULL;
	X509_EXTENSION *ext;
	X509 *x = certs_d2i(der, len);
	int64_t version;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	if (certs_find_ext(x, CERTS_OID_HOST_KEY_EXT, &ext) != 0) {
		err_ssl(err, "not a vtpmd CK certificate (no single host-key extension)");
		goto out;
	}
	h = (struct certs_hostkey *)certs_item_d2i(
	    X509_EXTENSION_get_data(ext), ASN1_ITEM_rptr(certs_hostkey_asn1));
	if (h == NULL || ASN1_INTEGER_get_int64(&version, h->version) != 1 ||
	    version != CERTS_EXT_V1 || ASN1_STRING_length(h->ek_digest) != CERTS_DIGEST_LEN ||
	    certs_copy_str(out->host, CERTS_NAME_MAX, h->host) == -1) {
		err_ssl(err, "the host-key extension is malformed");
		memset(out, 0, sizeof(*out));
		goto out;
	}
	memcpy(out->host_ek_digest, ASN1_STRING_get0_data(h->ek_digest), CERTS_DIGEST_LEN);
	ret = 0;
out:
	ASN1_item_free((ASN1_VALUE *)h, ASN1_ITEM_rptr(certs_hostkey_asn1));
	X509_free(x);
	return ret;
}

/* Profiles: a certificate from elsewhere (a CA's answer) checked against
 * what certs_issue_ek and certs_issue_ck issue. */

/* Whether x's extKeyUsage holds oid. */
static bool
certs_has_eku(const X509 *x, const char *oid)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	bool found = false;

	for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku) && !found; i++)
		found = certs_oid_is(sk_ASN1_OBJECT_value(eku, i), oid);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return found;
}

/* Whether x's certificatePolicies holds oid. */
static bool
certs_has_policy(const X509 *x, const char *oid)
{
	CERTIFICATEPOLICIES *pols = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
	bool found = false;

	for (int i = 0; pols != NULL && i < sk_POLICYINFO_num(pols) && !found; i++)
		found = certs_oid_is(sk_POLICYINFO_value(pols, i)->policyid, oid);
	sk_POLICYINFO_pop_free(pols, POLICYINFO_free);
	return found;
}

/* What every leaf vtpmd's CAs issue states: X.509 v3, extensions that
 * decode and none critical that is not understood, CA:FALSE, a keyUsage
 * (its OpenSSL KU_* bits in *ku). */
static int
certs_check_leaf(X509 *x, uint32_t *ku, struct err *err)
{
	uint32_t flags = X509_get_extension_flags(x);

	if (X509_get_version(x) != X509_VERSION_3) {
		err_ssl(err, "not an X.509 version 3 certificate");
		return -1;
	}
	if (flags & (EXFLAG_INVALID | EXFLAG_CRITICAL)) {
		err_ssl(err, "an extension is malformed, or critical and unknown");
		return -1;
	}
	if (!(flags & EXFLAG_BCONS) || (flags & EXFLAG_CA)) {
		err_ssl(err, "not an end entity's certificate (basicConstraints CA:FALSE missing)");
		return -1;
	}
	*ku = X509_get_key_usage(x);
	if (!(flags & EXFLAG_KUSAGE)) {
		err_ssl(err, "no keyUsage");
		return -1;
	}
	return 0;
}

int
certs_check_ak(const uint8_t *der, size_t len, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	X509_EXTENSION *ext;
	uint32_t flags;
	int ret = -1;

	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	flags = X509_get_extension_flags(x);
	if (flags & (EXFLAG_INVALID | EXFLAG_CRITICAL))
		err_ssl(err, "an extension is malformed, or critical and unknown");
	else if (flags & EXFLAG_CA)
		err_ssl(err, "a CA's certificate, not an AK certificate");
	else if (certs_has_eku(x, CERTS_OID_TCG_KP_EK) || certs_has_policy(x, CERTS_OID_POLICY_VEK))
		err_ssl(err, "an endorsement key's certificate, not an AK certificate");
	else if (certs_has_policy(x, CERTS_OID_POLICY_HOST_CK) ||
	         certs_find_ext(x, CERTS_OID_HOST_KEY_EXT, &ext) != 1)
		err_ssl(err, "a host key's certificate (CK or BK), not an AK certificate");
	else if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE))
		err_ssl(err, "its keyUsage does not allow signing (digitalSignature)");
	else if (!certs_has_eku(x, CERTS_OID_TCG_KP_AIK))
		err_ssl(err, "not an AK certificate: extKeyUsage lacks tcg-kp-AIKCertificate (%s)",
		    CERTS_OID_TCG_KP_AIK);
	else if (certs_find_ext(x, CERTS_OID_VIRTUAL_EXT, &ext) != 1 &&
	         !certs_has_policy(x, CERTS_OID_POLICY_VAK))
		err_ssl(err, "it has the virtual marker but not the vAK policy (%s)",
		    CERTS_OID_POLICY_VAK);
	else
		ret = 0;
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* A trust anchor: a self-signed CA certificate (CA:TRUE, and keyCertSign
 * when it states a keyUsage). Returns 0, or -1 with why. */
int
certs_check_root(const uint8_t *der, size_t len, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	EVP_PKEY *k;
	int ret = -1;

	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	k = X509_get0_pubkey(x);
	if (X509_check_issued(x, x) != X509_V_OK || k == NULL || X509_verify(x, k) != 1)
		err_ssl(err, "not self-signed: give the root of the CA, not an issuing CA");
	else if (!(X509_get_extension_flags(x) & EXFLAG_CA) ||
	         !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		err_ssl(err, "not a CA certificate (needs CA:TRUE and keyCertSign)");
	else
		ret = 0;
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/*
 * Whether a vEK certificate follows the TCG EK Credential Profile as
 * certs_issue_ek issues it: an end entity's (CA:FALSE), keyUsage that of
 * its key (keyEncipherment for RSA, keyAgreement for ECC) and no signing,
 * extKeyUsage tcg-kp-EKCertificate, a subjectAltName with the TPM's
 * manufacturer, model and version (critical when the subject is empty),
 * tcg-at-tpmSpecification, and the vEK policy. *info receives the TPM
 * attributes. Returns 0, or -1 with the first thing missing in why.
 */
int
certs_check_vek(const uint8_t *der, size_t len, struct certs_ek_info *info, struct err *err)
{
	const uint32_t signing = KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION | KU_KEY_CERT_SIGN |
	                         KU_CRL_SIGN;
	X509 *x = certs_d2i(der, len);
	EVP_PKEY *k;
	uint32_t ku, want;
	int i, ret = -1;

	memset(info, 0, sizeof(*info));
	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	if (certs_check_leaf(x, &ku, err) == -1)
		goto out;
	k = X509_get0_pubkey(x);
	want = k != NULL && EVP_PKEY_is_a(k, "RSA") ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT;
	if (!(ku & want) || (ku & signing)) {
		err_ssl(err, "keyUsage is not an EK's (%s, and no signing)",
		    want == KU_KEY_ENCIPHERMENT ? "keyEncipherment" : "keyAgreement");
		goto out;
	}
	if (!certs_has_eku(x, CERTS_OID_TCG_KP_EK)) {
		err_ssl(err, "extKeyUsage lacks tcg-kp-EKCertificate (%s)", CERTS_OID_TCG_KP_EK);
		goto out;
	}
	i = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
	if (X509_NAME_entry_count(X509_get_subject_name(x)) == 0 && i >= 0 &&
	    !X509_EXTENSION_get_critical(X509_get_ext(x, i))) {
		err_ssl(err, "the subject is empty and subjectAltName is not critical");
		goto out;
	}
	if (certs_san_info(x, info, err) == -1 || certs_spec_info(x, info, err) == -1)
		goto out;
	if (!info->has_spec) {
		err_ssl(err, "no tcg-at-tpmSpecification (subjectDirectoryAttributes)");
		goto out;
	}
	if (!certs_has_policy(x, CERTS_OID_POLICY_VEK)) {
		err_ssl(err, "not issued under the vEK policy (%s)", CERTS_OID_POLICY_VEK);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		memset(info, 0, sizeof(*info));
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/*
 * Whether a CK certificate is one certs_issue_ck issues: an end entity's,
 * keyUsage digitalSignature (and no certificate signing), extKeyUsage
 * tcg-kp-AIKCertificate, the host CK policy and the VtpmdHostKey
 * extension, which *out receives. Returns 0, or -1 with why.
 */
int
certs_check_ck(const uint8_t *der, size_t len, struct certs_host_key *out, struct err *err)
{
	X509 *x = certs_d2i(der, len);
	uint32_t ku;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		err_ssl(err, "not a DER certificate");
		return -1;
	}
	if (certs_check_leaf(x, &ku, err) == -1)
		goto out;
	if (!(ku & KU_DIGITAL_SIGNATURE) || (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
		err_ssl(err, "keyUsage is not a CK's (digitalSignature only)");
	else if (!certs_has_eku(x, CERTS_OID_TCG_KP_AIK))
		err_ssl(err, "extKeyUsage lacks tcg-kp-AIKCertificate (%s)", CERTS_OID_TCG_KP_AIK);
	else if (!certs_has_policy(x, CERTS_OID_POLICY_HOST_CK))
		err_ssl(err, "not issued under the host CK policy (%s)", CERTS_OID_POLICY_HOST_CK);
	else
		ret = certs_parse_ck(der, len, out, err);
out:
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* Files. */

/* Writes a DER certificate to path as PEM, replacing it crash-safely.
 * Returns 0, or -1 with errno. */
int
certs_write_pem(const char *path, const uint8_t *der, size_t len)
{
	X509 *x = certs_d2i(der, len);
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;
	int ret = -1;

	if (x == NULL || b == NULL || PEM_write_bio_X509(b, x) != 1) {
		errno = EINVAL;
		goto out;
	}
	n = BIO_get_mem_data(b, &p);
	ret = fileio_write_atomic(path, p, (size_t)n, 0644);
out:
	BIO_free(b);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* Reads the (first) certificate of a PEM or DER file as malloc'd DER.
 * Returns 0, or -1 with errno (EINVAL: not a certificate). */
int
certs_read(const char *path, uint8_t **der, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	BIO *b;
	X509 *x;
	int ret;

	if (fileio_read(path, CERTS_FILE_MAX, &buf, &n) == -1)
		return -1;
	if (memmem(buf, n, "-----BEGIN", 10) == NULL) {
		x = certs_d2i(buf, n);
	} else {
		b = BIO_new_mem_buf(buf, (int)n);
		x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	free(buf);
	ret = x != NULL ? certs_i2d(x, der, len) : -1;
	X509_free(x);
	ERR_clear_error();
	if (ret == -1)
		errno = EINVAL;
	return ret;
}

/* PEM text in memory (vtpm-ca's protocol carries certificates as PEM). */

#define CERTS_PEM_BEGIN "-----BEGIN CERTIFICATE-----"

/* The next certificate of text[*off..len) as malloc'd DER; *off moves past
 * it. Returns 1, 0 when no certificate follows, or -1 when one is
 * malformed (why says so). */
int
certs_pem_next(
    const char *text, size_t len, size_t *off, uint8_t **der, size_t *der_len, struct err *err)
{
	const char *start;
	BIO *b = NULL;
	X509 *x = NULL;
	size_t rest;
	int ret = -1;

	*der = NULL;
	*der_len = 0;
	if (*off >= len)
		return 0;
	start = memmem(text + *off, len - *off, CERTS_PEM_BEGIN, strlen(CERTS_PEM_BEGIN));
	if (start == NULL)
		return 0;
	rest = len - (size_t)(start - text);
	if (rest > INT_MAX || (b = BIO_new_mem_buf(start, (int)rest)) == NULL) {
		err_ssl(err, "PEM text too large");
		goto out;
	}
	if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		err_ssl(err, "malformed PEM certificate");
		goto out;
	}
	if (certs_i2d(x, der, der_len) == -1) {
		err_ssl(err, "out of memory");
		goto out;
	}
	*off = len - (size_t)BIO_pending(b);
	ret = 1;
out:
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return ret;
}

/* A DER certificate as PEM text, malloc'd (free()), or NULL. */
char *
certs_pem_encode(const uint8_t *der, size_t len)
{
	X509 *x = certs_d2i(der, len);
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *out = NULL;
	long n;

	if (x != NULL && b != NULL && PEM_write_bio_X509(b, x) == 1 &&
	    (n = BIO_get_mem_data(b, &p)) > 0 && (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	X509_free(x);
	ERR_clear_error();
	return out;
}

/* Whether issuer's subject names cert's issuer and issuer's key verifies
 * cert's signature: 1 yes, 0 no, -1 when either is not a certificate. */
int
certs_issued_by(const uint8_t *cert, size_t cert_len, const uint8_t *issuer, size_t issuer_len)
{
	X509 *c = certs_d2i(cert, cert_len), *i = certs_d2i(issuer, issuer_len);
	EVP_PKEY *k;
	int ret = -1;

	if (c != NULL && i != NULL) {
		k = X509_get0_pubkey(i);
		ret = X509_check_issued(i, c) == X509_V_OK && k != NULL && X509_verify(c, k) == 1;
	}
	X509_free(i);
	X509_free(c);
	ERR_clear_error();
	return ret;
}

/* A certificate's subject, one line (RFC 2253), into out; or -1. */
int
certs_subject(const uint8_t *der, size_t len, char *out, size_t out_len)
{
	X509 *x = certs_d2i(der, len);
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;
	int ret = -1;

	if (out_len == 0)
		goto out;
	out[0] = '\0';
	if (x == NULL || b == NULL ||
	    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0)
		goto out;
	n = BIO_get_mem_data(b, &p);
	snprintf(out, out_len, "%.*s", (int)(n > 0 ? n : 0), p != NULL ? p : "");
	ret = 0;
out:
	BIO_free(b);
	X509_free(x);
	ERR_clear_error();
	return ret;
}

/* CRLs. */

static int
certs_crl_add_entry(X509_CRL *crl, const struct certs_crl_entry *e)
{
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)e->revoked_at);
	int ok;

	ok = r != NULL && serial != NULL && when != NULL &&
	     certs_serial_set(serial, e->serial) == 0 &&
	     X509_REVOKED_set_serialNumber(r, serial) == 1 &&
	     X509_REVOKED_set_revocationDate(r, when) == 1 && X509_CRL_add0_revoked(crl, r) == 1;
	if (ok)
		r = NULL; /* the CRL's now */
	X509_REVOKED_free(r);
	ASN1_INTEGER_free(serial);
	ASN1_TIME_free(when);
	return ok ? 0 : -1;
}

/* cRLNumber and AuthorityKeyIdentifier. */
static int
certs_crl_add_exts(X509_CRL *crl, const struct certs_ca *ca, uint64_t number)
{
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	int ok;

	ok = num != NULL && akid != NULL && ASN1_INTEGER_set_uint64(num, number) == 1 &&
	     (akid->keyid = ASN1_OCTET_STRING_dup(ca->keyid)) != NULL &&
	     X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT) == 1 &&
	     X509_CRL_add1_ext_i2d(
	         crl, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID_free(akid);
	return ok ? 0 : -1;
}

static int
certs_crl_set_times(X509_CRL *crl, int64_t this_update, int64_t next_update)
{
	ASN1_TIME *tu = ASN1_TIME_set(NULL, (time_t)this_update);
	ASN1_TIME *nu = ASN1_TIME_set(NULL, (time_t)next_update);
	int ok;

	ok = tu != NULL && nu != NULL && X509_CRL_set1_lastUpdate(crl, tu) == 1 &&
	     X509_CRL_set1_nextUpdate(crl, nu) == 1;
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	return ok ? 0 : -1;
}

int
certs_issue_crl(const struct certs_ca *ca, const struct certs_crl_req *req, uint8_t **der,
    size_t *len, struct err *err)
{
	X509_CRL *crl = X509_CRL_new();
	unsigned char *p;
	int n, ret = -1;

	*der = NULL;
	if (req->this_update < 0 || req->next_update <= req->this_update ||
	    req->next_update > CERTS_NO_EXPIRY) {
		err_set(err, ERR_INVALID, "CRL: need 0 <= thisUpdate < nextUpdate <= 9999-12-31");
		goto out;
	}
	if (crl == NULL || X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1 ||
	    certs_crl_set_times(crl, req->this_update, req->next_update) == -1) {
		err_ssl(err, "new CRL");
		goto out;
	}
	for (size_t i = 0; i < req->n; i++)
		if (certs_crl_add_entry(crl, &req->entries[i]) == -1) {
			err_ssl(err, "CRL entry for serial %.40s", req->entries[i].serial);
			goto out;
		}
	if (X509_CRL_sort(crl) != 1 || certs_crl_add_exts(crl, ca, req->number) == -1) {
		err_ssl(err, "CRL extensions");
		goto out;
	}
	if (X509_CRL_sign(crl, ca->key, EVP_sha256()) <= 0 || X509_CRL_verify(crl, ca->key) != 1) {
		err_ssl(err, "signing the CRL");
		goto out;
	}
	if ((n = i2d_X509_CRL(crl, NULL)) <= 0 || (*der = malloc((size_t)n)) == NULL) {
		err_ssl(err, "encoding the CRL");
		goto out;
	}
	p = *der;
	i2d_X509_CRL(crl, &p);
	*len = (size_t)n;
	ret = 0;
out:
	X509_CRL_free(crl);
	return ret;
}

/* A CRL in PEM or DER (all of it), or NULL. */
static X509_CRL *
certs_crl_read(const uint8_t *data, size_t len)
{
	static const char pem[] = "-----BEGIN X509 CRL-----";
	const unsigned char *p = data;
	X509_CRL *crl = NULL;
	BIO *bio;

	if (data == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	if (memmem(data, len, pem, sizeof(pem) - 1) != NULL) {
		if ((bio = BIO_new_mem_buf(data, (int)len)) != NULL)
			crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		BIO_free(bio);
		return crl;
	}
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl != NULL && p != data + len) {
		X509_CRL_free(crl);
		crl = NULL;
	}
	return crl;
}

static int
certs_time_of(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int
certs_crl_info(const uint8_t *der, size_t len, uint64_t *number, int64_t *next_update, size_t *n)
{
	X509_CRL *crl = certs_crl_read(der, len);
	STACK_OF(X509_REVOKED) * revoked;
	ASN1_INTEGER *num = NULL;
	int ret = -1;

	if (crl == NULL)
		goto out;
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	if (num == NULL || ASN1_INTEGER_get_uint64(number, num) != 1 ||
	    certs_time_of(X509_CRL_get0_nextUpdate(crl), next_update) == -1)
		goto out;
	revoked = X509_CRL_get_REVOKED(crl);
	*n = revoked != NULL ? (size_t)sk_X509_REVOKED_num(revoked) : 0; /* none: absent */
	ret = 0;
out:
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	ERR_clear_error();
	return ret;
}

struct certs_crl_one {
	X509_CRL *crl;
	uint8_t keyid[CERTS_KEYID_MAX]; /* its issuer's key identifier */
	size_t keyid_len;
};

struct certs_crls {
	struct certs_crl_one *v;
	size_t n;
};

struct certs_crls *
certs_crls_new(void)
{
	return calloc(1, sizeof(struct certs_crls));
}

void
certs_crls_free(struct certs_crls *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		X509_CRL_free(s->v[i].crl);
	free(s->v);
	free(s);
}

/* The certificate of list whose subject is the CRL's issuer and whose key
 * verifies its signature: its index, or -1. */
static int
certs_crl_signer(X509_CRL *crl, const struct certs_der *list, size_t n, X509 **signer)
{
	X509 *x;

	for (size_t i = 0; i < n; i++) {
		if ((x = certs_d2i(list[i].der, list[i].len)) == NULL)
			continue;
		if (X509_NAME_cmp(X509_get_subject_name(x), X509_CRL_get_issuer(crl)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(x)) == 1) {
			*signer = x;
			return (int)i;
		}
		X509_free(x);
	}
	ERR_clear_error();
	return -1;
}

/* Whether the signer found may sign CRLs and is trusted: a root, or a
 * certificate that chains to one at time at. */
static int
certs_crl_signer_ok(X509 *signer, const struct certs_der *cert, bool is_root,
    const struct certs_der *issuers, size_t n_issuers, const struct certs_der *roots,
    size_t n_roots, int64_t at, struct err *err)
{
	struct err why;
	enum certs_verdict v;

	if ((X509_get_extension_flags(signer) & EXFLAG_KUSAGE) != 0 &&
	    (X509_get_key_usage(signer) & KU_CRL_SIGN) == 0)
		return err_set(err, ERR_UNTRUSTED, "its issuer's key usage does not allow cRLSign");
	if (is_root)
		return 0;
	v = certs_verify_chain(cert, issuers, n_issuers, roots, n_roots, at, &why);
	if (v != CERTS_VALID)
		return err_set(err, ERR_UNTRUSTED, "its issuer's certificate: %s: %s",
		    certs_verdict_name(v), why.msg);
	return 0;
}

/* thisUpdate <= at <= nextUpdate. */
static int
certs_crl_current(X509_CRL *crl, int64_t at, struct err *err)
{
	int64_t this_update, next_update;

	if (certs_time_of(X509_CRL_get0_lastUpdate(crl), &this_update) == -1)
		return err_set(err, ERR_INVALID, "its thisUpdate cannot be read");
	if (certs_time_of(X509_CRL_get0_nextUpdate(crl), &next_update) == -1)
		return err_set(err, ERR_INVALID, "it has no nextUpdate: it could be stale forever");
	if (at < this_update)
		return err_set(err, ERR_INVALID, "it is not valid yet (thisUpdate in the future)");
	if (at > next_update)
		return err_set(
		    err, ERR_INVALID, "it has expired (nextUpdate passed): fetch a new one");
	return 0;
}

/* The key identifier lookups match: the signer's SKI, else SHA-1 of its
 * key (RFC 5280 4.2.1.2, method 1, as certs_key_id). */
static int
certs_crl_keyid(X509 *signer, struct certs_crl_one *one)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(signer);
	ASN1_OCTET_STRING *own = NULL;
	int ret;

	if (ski == NULL)
		ski = own = certs_key_id(signer);
	ret = certs_keyid_copy(ski, one->keyid, &one->keyid_len);
	ASN1_OCTET_STRING_free(own);
	return ret;
}

int
certs_crls_add(struct certs_crls *s, const uint8_t *data, size_t len,
    const struct certs_der *issuers, size_t n_issuers, const struct certs_der *roots,
    size_t n_roots, int64_t at, struct err *err)
{
	struct certs_crl_one one = {0}, *v;
	X509 *signer = NULL;
	int i, ret = -1;
	bool is_root = false;

	if ((one.crl = certs_crl_read(data, len)) == NULL) {
		err_ssl(err, "not a CRL (PEM or DER)");
		return -1;
	}
	i = certs_crl_signer(one.crl, roots, n_roots, &signer);
	if (i >= 0)
		is_root = true;
	else
		i = certs_crl_signer(one.crl, issuers, n_issuers, &signer);
	if (i < 0) {
		err_set(err, ERR_UNTRUSTED,
		    "signed by no CA certificate given (give its issuer's certificate with "
		    "--untrusted)");
		goto out;
	}
	if (certs_crl_signer_ok(signer, is_root ? &roots[i] : &issuers[i], is_root, issuers,
	        n_issuers, roots, n_roots, at, err) == -1 ||
	    certs_crl_current(one.crl, at, err) == -1)
		goto out;
	if (certs_crl_keyid(signer, &one) == -1) {
		err_set(err, ERR_INVALID, "its issuer has no usable key identifier");
		goto out;
	}
	if ((v = realloc(s->v, (s->n + 1) * sizeof(*v))) == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	s->v = v;
	s->v[s->n++] = one;
	one.crl = NULL;
	ret = 0;
out:
	X509_free(signer);
	X509_CRL_free(one.crl);
	return ret;
}

int
certs_crls_lookup(
    const struct certs_crls *s, const struct certs_ref *ref, int64_t *revoked_at, struct err *err)
{
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	X509_REVOKED *r;
	bool covered = false;
	int ret = -1;

	if (serial == NULL || certs_serial_set(serial, ref->serial) == -1) {
		err_set(err, ERR_INVALID, "serial %.40s cannot be looked up", ref->serial);
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct certs_crl_one *one = &s->v[i];

		if (one->keyid_len != ref->issuer_keyid_len ||
		    memcmp(one->keyid, ref->issuer_keyid, one->keyid_len) != 0)
			continue;
		covered = true;
		if (X509_CRL_get0_by_serial(one->crl, &r, serial) == 1) {
			if (certs_time_of(X509_REVOKED_get0_revocationDate(r), revoked_at) == -1)
				*revoked_at = 0;
			ret = 1;
			goto out;
		}
	}
	if (covered)
		ret = 0;
	else
		err_set(err, ERR_ABSENT, "no CRL of its issuer was given");
out:
	ASN1_INTEGER_free(serial);
	return ret;
}

char *
certs_crl_pem(const uint8_t *der, size_t len)
{
	X509_CRL *crl = certs_crl_read(der, len);
	BIO *bio = BIO_new(BIO_s_mem());
	char *text = NULL, *data;
	long n;

	if (crl != NULL && bio != NULL && PEM_write_bio_X509_CRL(bio, crl) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0 && (text = malloc((size_t)n + 1)) != NULL) {
		memcpy(text, data, (size_t)n);
		text[n] = '\0';
	}
	BIO_free(bio);
	X509_CRL_free(crl);
	return text;
}
