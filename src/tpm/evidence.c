/*
 * evidence.c: TPM 2.0 attestation evidence, parsed and checked (see
 * evidence.h).
 *
 * Decoding is tpm2-tss's libtss2-mu, which bounds every count and size by
 * its structures' capacities. Two of its habits are worked around here:
 * Tss2_MU_TPM2B_PUBLIC_Unmarshal (3.2) neither bounds the inner TPMT_PUBLIC
 * by the declared size nor reports its failure, so the size field is read
 * here and the TPMT_PUBLIC unmarshalled within it; and a union whose
 * selector is TPM_ALG_NULL unmarshals as nothing, successfully, so every
 * selector (object type, signature algorithm) is checked afterwards.
 * Signatures are checked with OpenSSL's EVP interface.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "evidence.h"

/* The fixed-size fields of evidence.h hold what tpm2-tss's do. */
_Static_assert(sizeof(((TPM2B_DIGEST *)0)->buffer) == EVIDENCE_DIGEST_MAX, "digest size");
/* tpm2-tss's TPMU_NAME is padded to 68 bytes: longer Names are refused. */
_Static_assert(sizeof(((TPM2B_NAME *)0)->name) >= EVIDENCE_NAME_MAX, "name size");
_Static_assert(sizeof(((TPM2B_DATA *)0)->buffer) == EVIDENCE_DATA_MAX, "data size");
_Static_assert(sizeof(((TPM2B_PUBLIC_KEY_RSA *)0)->buffer) == EVIDENCE_RSA_MAX, "RSA size");
_Static_assert(TPM2_NUM_PCR_BANKS == EVIDENCE_MAX_BANKS, "PCR banks");
_Static_assert(TPM2_PCR_SELECT_MAX * 8 == EVIDENCE_MAX_PCRS, "PCR select size");
_Static_assert(TPM2_GENERATED_VALUE == 0xff544347, "TPM_GENERATED_VALUE");
_Static_assert(TPM2_ST_ATTEST_CERTIFY == EVIDENCE_ST_CERTIFY, "TPM_ST_ATTEST_CERTIFY");
_Static_assert(TPM2_ST_ATTEST_QUOTE == EVIDENCE_ST_QUOTE, "TPM_ST_ATTEST_QUOTE");
_Static_assert(TPMA_OBJECT_RESTRICTED == EVIDENCE_OBJ_RESTRICTED, "TPMA_OBJECT");
_Static_assert(TPMA_OBJECT_SIGN_ENCRYPT == EVIDENCE_OBJ_SIGN, "TPMA_OBJECT");

#define EV_RSA_EXPONENT 65537
#define EV_REASON_MAX   200

/* OpenSSL takes parameter strings as char *; these are never written. */
static char ev_p256[] = "prime256v1";
static char ev_p384[] = "secp384r1";


static uint16_t
ev_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The hash algorithms this module computes, or NULL. */
static const EVP_MD *
ev_md(uint16_t alg)
{
	switch (alg) {
	case EVIDENCE_ALG_SHA1: return EVP_sha1();
	case EVIDENCE_ALG_SHA256: return EVP_sha256();
	case EVIDENCE_ALG_SHA384: return EVP_sha384();
	case EVIDENCE_ALG_SHA512: return EVP_sha512();
	default: return NULL;
	}
}

/* The digest size of a hash algorithm a PCR bank may use, or 0. */
static size_t
ev_digest_size(uint16_t alg)
{
	switch (alg) {
	case EVIDENCE_ALG_SHA1: return TPM2_SHA1_DIGEST_SIZE;
	case EVIDENCE_ALG_SHA256: return TPM2_SHA256_DIGEST_SIZE;
	case EVIDENCE_ALG_SHA384: return TPM2_SHA384_DIGEST_SIZE;
	case EVIDENCE_ALG_SHA512: return TPM2_SHA512_DIGEST_SIZE;
	case TPM2_ALG_SM3_256: return TPM2_SM3_256_DIGEST_SIZE;
	default: return 0;
	}
}

/* A name for an algorithm in messages: buf receives it, and is returned. */
static const char *
ev_alg_name(uint16_t alg, char buf[static 16])
{
	static const struct {
		uint16_t alg;
		const char *name;
	} names[] = {
	    {EVIDENCE_ALG_RSA, "RSA"},
	    {EVIDENCE_ALG_SHA1, "sha1"},
	    {EVIDENCE_ALG_KEYEDHASH, "KEYEDHASH"},
	    {EVIDENCE_ALG_SHA256, "sha256"},
	    {EVIDENCE_ALG_SHA384, "sha384"},
	    {EVIDENCE_ALG_SHA512, "sha512"},
	    {EVIDENCE_ALG_NULL, "NULL"},
	    {EVIDENCE_ALG_RSASSA, "RSASSA"},
	    {EVIDENCE_ALG_RSAPSS, "RSAPSS"},
	    {EVIDENCE_ALG_ECDSA, "ECDSA"},
	    {EVIDENCE_ALG_ECC, "ECC"},
	    {EVIDENCE_ALG_SYMCIPHER, "SYMCIPHER"},
	    {TPM2_ALG_SM3_256, "sm3_256"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].alg == alg) {
			snprintf(buf, 16, "%s", names[i].name);
			return buf;
		}
	snprintf(buf, 16, "alg 0x%04x", alg);
	return buf;
}

/* The PCRs of mask as "0,1,16" ("none" when empty). */
static const char *
ev_format_mask(uint32_t mask, char *buf, size_t len)
{
	size_t off = 0;

	snprintf(buf, len, "none");
	for (unsigned int i = 0; i < EVIDENCE_MAX_PCRS && off < len; i++)
		if (mask & (UINT32_C(1) << i))
			off +=
			    (size_t)snprintf(buf + off, len - off, "%s%u", off > 0 ? "," : "", i);
	return buf;
}

/* H_alg(in) into out (EVIDENCE_DIGEST_MAX bytes), its size to *out_len. */
static int
ev_hash(uint16_t alg, const uint8_t *in, size_t len, uint8_t out[static EVIDENCE_DIGEST_MAX],
    size_t *out_len, struct err *err)
{
	const EVP_MD *md = ev_md(alg);
	unsigned int n = 0;
	char a[16];

	if (md == NULL) {
		err_ssl(err, "hash %s is not supported", ev_alg_name(alg, a));
		return -1;
	}
	if (EVP_Digest(in, len, out, &n, md, NULL) != 1) {
		err_ssl(err, "hash %s", ev_alg_name(alg, a));
		return -1;
	}
	*out_len = n;
	return 0;
}

/* ---- public areas ---- */

/* Unmarshals a whole TPM2B_PUBLIC (nothing after it) into pub. */
static int
ev_unmarshal_public(const uint8_t *buf, size_t len, TPMT_PUBLIC *pub, struct err *err)
{
	size_t size, off = 0;
	TSS2_RC rc;

	memset(pub, 0, sizeof(*pub));
	if (buf == NULL || len < 2) {
		err_ssl(err, "public area: truncated (%zu bytes)", buf == NULL ? 0 : len);
		return -1;
	}
	size = ev_get16(buf);
	if (size != len - 2) {
		err_ssl(err, "public area: TPM2B_PUBLIC declares %zu bytes but %zu follow",
		    size, len - 2);
		return -1;
	}
	rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(buf + 2, size, &off, pub);
	if (rc != TSS2_RC_SUCCESS) {
		memset(pub, 0, sizeof(*pub));
		err_ssl(err, "public area: not a valid TPMT_PUBLIC: %s", Tss2_RC_Decode(rc));
		return -1;
	}
	if (off != size) {
		err_ssl(err, "public area: %zu bytes after the TPMT_PUBLIC", size - off);
		return -1;
	}
	return 0;
}

/* An RSA public area into out: a recognised size must be exact. */
static int
ev_public_rsa(const TPMT_PUBLIC *p, struct evidence_public *out, struct err *err)
{
	const TPMS_RSA_PARMS *parms = &p->parameters.rsaDetail;
	const TPM2B_PUBLIC_KEY_RSA *n = &p->unique.rsa;

	out->scheme = parms->scheme.scheme;
	if (out->scheme != TPM2_ALG_NULL && out->scheme != TPM2_ALG_RSAES)
		out->scheme_hash = parms->scheme.details.anySig.hashAlg;
	out->exponent = parms->exponent != 0 ? parms->exponent : EV_RSA_EXPONENT;
	switch (parms->keyBits) {
	case 2048: out->key = EVIDENCE_KEY_RSA_2048; break;
	case 3072: out->key = EVIDENCE_KEY_RSA_3072; break;
	case 4096: out->key = EVIDENCE_KEY_RSA_4096; break;
	default: return 0; /* read, not recognised */
	}
	if (n->size != parms->keyBits / 8 || (n->buffer[0] & 0x80) == 0) {
		err_ssl(err, "public area: an RSA-%u key with a modulus of %u bytes",
		    parms->keyBits, n->size);
		return -1;
	}
	memcpy(out->modulus, n->buffer, n->size);
	out->modulus_len = n->size;
	return 0;
}

/* An ECC public area into out: a recognised curve's point must fit. */
static int
ev_public_ecc(const TPMT_PUBLIC *p, struct evidence_public *out, struct err *err)
{
	const TPMS_ECC_PARMS *parms = &p->parameters.eccDetail;
	const TPMS_ECC_POINT *q = &p->unique.ecc;
	size_t size;

	out->scheme = parms->scheme.scheme;
	if (out->scheme != TPM2_ALG_NULL)
		out->scheme_hash = parms->scheme.details.anySig.hashAlg;
	out->curve = parms->curveID;
	switch (parms->curveID) {
	case TPM2_ECC_NIST_P256: out->key = EVIDENCE_KEY_ECC_P256, size = 32; break;
	case TPM2_ECC_NIST_P384: out->key = EVIDENCE_KEY_ECC_P384, size = 48; break;
	default: return 0; /* read, not recognised */
	}
	if (q->x.size == 0 || q->x.size > size || q->y.size == 0 || q->y.size > size) {
		err_ssl(err, "public area: ECC point coordinates of %u and %u bytes (1 to %zu)", q->x.size,
		    q->y.size, size);
		return -1;
	}
	memcpy(out->ecc_x + size - q->x.size, q->x.buffer, q->x.size);
	memcpy(out->ecc_y + size - q->y.size, q->y.buffer, q->y.size);
	out->ecc_len = size;
	return 0;
}

/* The fields of p (the TPMT_PUBLIC marshalled in tpmt) into out. */
static int
ev_public_fields(const TPMT_PUBLIC *p, const uint8_t *tpmt, size_t tpmt_len,
    struct evidence_public *out, struct err *err)
{
	uint8_t digest[EVIDENCE_DIGEST_MAX];
	size_t digest_len;
	char a[16];

	out->type = p->type;
	out->name_alg = p->nameAlg;
	out->attributes = p->objectAttributes;
	out->scheme = out->scheme_hash = TPM2_ALG_NULL;
	if (ev_md(p->nameAlg) == NULL) {
		err_ssl(err, "public area: nameAlg %s is not SHA-1, SHA-256, SHA-384 or "
		    "SHA-512",
		    ev_alg_name(p->nameAlg, a));
		return -1;
	}
	/* The TPM allows an empty policy or one of nameAlg's size. */
	if (p->authPolicy.size != 0 && p->authPolicy.size != ev_digest_size(p->nameAlg)) {
		err_ssl(err, "public area: authPolicy of %u bytes with nameAlg %s",
		    p->authPolicy.size, ev_alg_name(p->nameAlg, a));
		return -1;
	}
	memcpy(out->auth_policy, p->authPolicy.buffer, p->authPolicy.size);
	out->auth_policy_len = p->authPolicy.size;
	/* Name = nameAlg || H_nameAlg(the TPMT_PUBLIC as marshalled). */
	if (ev_hash(p->nameAlg, tpmt, tpmt_len, digest, &digest_len, err) != 0)
		return -1;
	out->name[0] = (uint8_t)(p->nameAlg >> 8);
	out->name[1] = (uint8_t)p->nameAlg;
	memcpy(out->name + 2, digest, digest_len);
	out->name_len = 2 + digest_len;
	switch (p->type) {
	case TPM2_ALG_RSA: return ev_public_rsa(p, out, err);
	case TPM2_ALG_ECC: return ev_public_ecc(p, out, err);
	case TPM2_ALG_KEYEDHASH:
	case TPM2_ALG_SYMCIPHER: return 0;
	default:
		err_ssl(err, "public area: type %s is not an object type",
		    ev_alg_name(p->type, a));
		return -1;
	}
}

int
evidence_parse_public(
    const uint8_t *buf, size_t len, struct evidence_public *out, struct err *err)
{
	TPMT_PUBLIC p;

	memset(out, 0, sizeof(*out));
	if (ev_unmarshal_public(buf, len, &p, err) != 0)
		return -1;
	/* An unmarshal that consumed every byte read exactly these bytes, so
	 * they are the TPM's marshalling of p, which the Name is over. */
	if (ev_public_fields(&p, buf + 2, len - 2, out, err) != 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return 0;
}

bool
evidence_key_is_restricted_signing(const struct evidence_public *pub)
{
	const uint32_t need = EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_SIGN | EVIDENCE_OBJ_FIXED_TPM |
	                      EVIDENCE_OBJ_FIXED_PARENT | EVIDENCE_OBJ_SENSITIVE_ORIG;

	return pub != NULL && pub->key != EVIDENCE_KEY_NONE && (pub->attributes & need) == need &&
	       (pub->attributes & EVIDENCE_OBJ_DECRYPT) == 0;
}

/* ---- attestation structures ---- */

/* The QUOTE's selection into out; no bank twice. */
static int
ev_attest_pcrs(
    const TPML_PCR_SELECTION *sel, struct evidence_pcr_select *out, struct err *err)
{
	char a[16];

	/* libtss2-mu bounds count by TPM2_NUM_PCR_BANKS and sizeofSelect by
	 * TPM2_PCR_SELECT_MAX, as the asserts above say evidence.h does. */
	out->count = sel->count;
	for (uint32_t i = 0; i < sel->count; i++) {
		const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
		uint32_t mask = 0;

		for (uint32_t j = 0; j < i; j++)
			if (sel->pcrSelections[j].hash == s->hash) {
				err_ssl(err, "attestation: PCR bank %s selected twice",
				    ev_alg_name(s->hash, a));
				return -1;
			}
		for (unsigned int k = 0; k < s->sizeofSelect; k++)
			mask |= (uint32_t)s->pcrSelect[k] << (8 * k);
		out->bank[i].hash_alg = s->hash;
		out->bank[i].mask = mask;
	}
	return 0;
}

/* A TPM2B_NAME of the attestation into out (EVIDENCE_NAME_MAX bytes). */
static int
ev_attest_name(
    const TPM2B_NAME *n, const char *what, uint8_t *out, size_t *out_len, struct err *err)
{
	if (n->size > EVIDENCE_NAME_MAX) {
		err_ssl(err, "attestation: %s of %u bytes (at most %d)", what, n->size,
		    EVIDENCE_NAME_MAX);
		return -1;
	}
	memcpy(out, n->name, n->size);
	*out_len = n->size;
	return 0;
}

/* The fields of at (a CERTIFY or QUOTE) into out. */
static int
ev_attest_fields(const TPMS_ATTEST *at, struct evidence_attest *out, struct err *err)
{
	if (at->clockInfo.safe != TPM2_NO && at->clockInfo.safe != TPM2_YES) {
		err_ssl(err, "attestation: clockInfo.safe is %u, not 0 or 1",
		    at->clockInfo.safe);
		return -1;
	}
	out->type = at->type;
	if (ev_attest_name(&at->qualifiedSigner, "qualifiedSigner", out->signer, &out->signer_len,
	        err) != 0)
		return -1;
	memcpy(out->extra, at->extraData.buffer, at->extraData.size);
	out->extra_len = at->extraData.size;
	out->clock.clock = at->clockInfo.clock;
	out->clock.reset_count = at->clockInfo.resetCount;
	out->clock.restart_count = at->clockInfo.restartCount;
	out->clock.safe = at->clockInfo.safe == TPM2_YES;
	out->firmware = at->firmwareVersion;
	if (at->type == TPM2_ST_ATTEST_CERTIFY) {
		const TPMS_CERTIFY_INFO *c = &at->attested.certify;

		if (ev_attest_name(
		        &c->name, "certified Name", out->name, &out->name_len, err) != 0)
			return -1;
		return ev_attest_name(&c->qualifiedName, "certified qualifiedName",
		    out->qualified_name, &out->qualified_name_len, err);
	}
	memcpy(out->pcr_digest, at->attested.quote.pcrDigest.buffer,
	    at->attested.quote.pcrDigest.size);
	out->pcr_digest_len = at->attested.quote.pcrDigest.size;
	return ev_attest_pcrs(&at->attested.quote.pcrSelect, &out->pcrs, err);
}

int
evidence_parse_attest(
    const uint8_t *buf, size_t len, struct evidence_attest *out, struct err *err)
{
	TPMS_ATTEST at;
	uint32_t magic = 0;
	uint16_t type = 0;
	size_t off = 0;
	TSS2_RC rc;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len < 6) {
		err_ssl(err, "attestation: truncated (%zu bytes)", buf == NULL ? 0 : len);
		return -1;
	}
	/* The header first, for a precise refusal of what is not evidence. */
	if (Tss2_MU_UINT32_Unmarshal(buf, len, &off, &magic) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2_ST_Unmarshal(buf, len, &off, &type) != TSS2_RC_SUCCESS) {
		err_ssl(err, "attestation: truncated header");
		return -1;
	}
	if (magic != TPM2_GENERATED_VALUE) {
		err_ssl(err, "attestation: magic 0x%08x is not TPM_GENERATED_VALUE "
		    "(0xff544347)",
		    magic);
		return -1;
	}
	if (type != TPM2_ST_ATTEST_CERTIFY && type != TPM2_ST_ATTEST_QUOTE) {
		err_ssl(err, "attestation: type 0x%04x is neither CERTIFY (0x8017) nor "
		    "QUOTE (0x8018)",
		    type);
		return -1;
	}
	off = 0;
	rc = Tss2_MU_TPMS_ATTEST_Unmarshal(buf, len, &off, &at);
	if (rc != TSS2_RC_SUCCESS)
		err_ssl(err, "attestation: malformed or truncated TPMS_ATTEST: %s",
		    Tss2_RC_Decode(rc));
	else if (off != len)
		err_ssl(err, "attestation: %zu bytes after the TPMS_ATTEST", len - off);
	else
		ret = ev_attest_fields(&at, out, err);
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---- signatures ---- */

/* The RSA public key of pub, or NULL. */
static EVP_PKEY *
ev_pkey_rsa(const struct evidence_public *pub, struct err *err)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *n = NULL, *e = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	if ((n = BN_bin2bn(pub->modulus, (int)pub->modulus_len, NULL)) == NULL ||
	    (e = BN_new()) == NULL || BN_set_word(e, pub->exponent) != 1 ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		err_ssl(err, "signing key: not a usable RSA public key");
		EVP_PKEY_free(key);
		key = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(e);
	BN_free(n);
	return key;
}

/* The ECC public key of pub, or NULL when its point is not on its curve. */
static EVP_PKEY *
ev_pkey_ecc(const struct evidence_public *pub, struct err *err)
{
	uint8_t pt[1 + 2 * EVIDENCE_ECC_MAX];
	char *group = pub->key == EVIDENCE_KEY_ECC_P256 ? ev_p256 : ev_p384;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * pub->ecc_len),
	    OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx, *check = NULL;
	EVP_PKEY *key = NULL;

	pt[0] = 0x04; /* uncompressed: 04 || x || y */
	memcpy(pt + 1, pub->ecc_x, pub->ecc_len);
	memcpy(pt + 1 + pub->ecc_len, pub->ecc_y, pub->ecc_len);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
	    (check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_public_check(check) != 1) {
		err_ssl(err, "signing key: its ECC point is not a point of %s",
		    pub->key == EVIDENCE_KEY_ECC_P256 ? "NIST P-256" : "NIST P-384");
		EVP_PKEY_free(key);
		key = NULL;
	}
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* Unmarshals a whole TPMT_SIGNATURE (nothing after it) into s. */
static int
ev_unmarshal_signature(const uint8_t *buf, size_t len, TPMT_SIGNATURE *s, struct err *err)
{
	size_t off = 0;
	TSS2_RC rc;

	memset(s, 0, sizeof(*s));
	if (buf == NULL || len < 2) {
		err_ssl(err, "signature: truncated (%zu bytes)", buf == NULL ? 0 : len);
		return -1;
	}
	rc = Tss2_MU_TPMT_SIGNATURE_Unmarshal(buf, len, &off, s);
	if (rc != TSS2_RC_SUCCESS) {
		err_ssl(err, "signature: malformed or truncated TPMT_SIGNATURE: %s",
		    Tss2_RC_Decode(rc));
		return -1;
	}
	if (off != len) {
		err_ssl(err, "signature: %zu bytes after the TPMT_SIGNATURE", len - off);
		return -1;
	}
	return 0;
}

/* Whether signature s may be checked with key pub: its algorithm fits
 * the key, its hash is SHA-256 or SHA-384, and both are the key's scheme
 * when it names one. */
static int
ev_check_scheme(
    const struct evidence_public *pub, const TPMT_SIGNATURE *s, struct err *err)
{
	bool rsa = pub->type == TPM2_ALG_RSA;
	uint16_t hash;
	char a[16], b[16], c[16], d[16];

	if (rsa ? s->sigAlg != TPM2_ALG_RSASSA && s->sigAlg != TPM2_ALG_RSAPSS
	        : s->sigAlg != TPM2_ALG_ECDSA) {
		err_ssl(err, "signature: algorithm %s is not %s",
		    ev_alg_name(s->sigAlg, a), rsa ? "RSASSA or RSAPSS" : "ECDSA");
		return -1;
	}
	hash = s->signature.any.hashAlg;
	if (hash != TPM2_ALG_SHA256 && hash != TPM2_ALG_SHA384) {
		err_ssl(err, "signature: hash %s is not sha256 or sha384",
		    ev_alg_name(hash, a));
		return -1;
	}
	if (pub->scheme != TPM2_ALG_NULL &&
	    (s->sigAlg != pub->scheme || hash != pub->scheme_hash)) {
		err_ssl(err, "signature: %s with %s, but the key's scheme is %s with %s",
		    ev_alg_name(s->sigAlg, a), ev_alg_name(hash, b), ev_alg_name(pub->scheme, c),
		    ev_alg_name(pub->scheme_hash, d));
		return -1;
	}
	return 0;
}

/* The DER ECDSA-Sig-Value of an ECDSA signature s, malloc'd into *der
 * (OPENSSL_free), for a curve of size bytes. */
static int
ev_ecdsa_der(
    const TPMS_SIGNATURE_ECC *s, size_t size, uint8_t **der, size_t *der_len, struct err *err)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *p = NULL;
	int n, ret = -1;

	*der = NULL;
	if (s->signatureR.size == 0 || s->signatureR.size > size || s->signatureS.size == 0 ||
	    s->signatureS.size > size) {
		err_ssl(err, "signature: ECDSA r and s of %u and %u bytes (1 to %zu)",
		    s->signatureR.size, s->signatureS.size, size);
		return -1;
	}
	if ((sig = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(s->signatureR.buffer, s->signatureR.size, NULL)) == NULL ||
	    (sv = BN_bin2bn(s->signatureS.buffer, s->signatureS.size, NULL)) == NULL ||
	    ECDSA_SIG_set0(sig, r, sv) != 1) {
		err_ssl(err, "signature: ECDSA");
		BN_free(r);
		BN_free(sv);
		goto out;
	}
	if ((n = i2d_ECDSA_SIG(sig, &p)) <= 0) {
		err_ssl(err, "signature: ECDSA encoding");
		goto out;
	}
	*der = p;
	*der_len = (size_t)n;
	ret = 0;
out:
	ECDSA_SIG_free(sig);
	return ret;
}

/* Checks sig_bytes (the raw signature: RSA, or DER ECDSA) over msg with key
 * under s's algorithm and hash. */
static int
ev_evp_verify(EVP_PKEY *key, const TPMT_SIGNATURE *s, const uint8_t *sig_bytes, size_t sig_len,
    const uint8_t *msg, size_t msg_len, struct err *err)
{
	const char *md = s->signature.any.hashAlg == TPM2_ALG_SHA256 ? "SHA256" : "SHA384";
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	int ok = -1, ret = -1;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, key, NULL) != 1 ||
	    (s->sigAlg == TPM2_ALG_RSAPSS &&
	        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1))) {
		err_ssl(err, "signature: cannot set up the verification");
		goto out;
	}
	ok = EVP_DigestVerify(ctx, sig_bytes, sig_len, msg, msg_len);
	if (ok != 1) {
		ERR_clear_error();
		err_ssl(err, "signature: does not verify with the signing key");
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

int
evidence_verify_signature(const uint8_t *pub, size_t pub_len, const uint8_t *msg, size_t msg_len,
    const uint8_t *sig, size_t sig_len, struct err *err)
{
	const uint32_t restricted = EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_SIGN;
	struct evidence_public key;
	TPMT_SIGNATURE s;
	EVP_PKEY *pkey = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int ret = -1;

	if (evidence_parse_public(pub, pub_len, &key, err) != 0)
		return -1;
	if (key.key == EVIDENCE_KEY_NONE) {
		err_ssl(err, "signing key: not an RSA-2048/3072/4096 or NIST P-256/P-384 "
		    "key");
		return -1;
	}
	if ((key.attributes & restricted) != restricted ||
	    (key.attributes & EVIDENCE_OBJ_DECRYPT) != 0) {
		err_ssl(err, "signing key: attributes 0x%08x are not those of a "
		    "restricted signing key",
		    key.attributes);
		return -1;
	}
	if (msg == NULL && msg_len > 0) {
		err_ssl(err, "signature: no message");
		return -1;
	}
	if (ev_unmarshal_signature(sig, sig_len, &s, err) != 0 ||
	    ev_check_scheme(&key, &s, err) != 0)
		return -1;
	if (key.type == TPM2_ALG_RSA) {
		const TPM2B_PUBLIC_KEY_RSA *r = &s.signature.rsassa.sig; /* rsapss: same layout */

		if (s.sigAlg == TPM2_ALG_RSAPSS)
			r = &s.signature.rsapss.sig;
		if (r->size != key.modulus_len) {
			err_ssl(err, "signature: %u bytes for an RSA key of %zu", r->size,
			    key.modulus_len);
			goto out;
		}
		if ((pkey = ev_pkey_rsa(&key, err)) == NULL)
			goto out;
		ret = ev_evp_verify(pkey, &s, r->buffer, r->size, msg, msg_len, err);
	} else {
		if ((pkey = ev_pkey_ecc(&key, err)) == NULL ||
		    ev_ecdsa_der(&s.signature.ecdsa, key.ecc_len, &der, &der_len, err) !=
		        0)
			goto out;
		ret = ev_evp_verify(pkey, &s, der, der_len, msg, msg_len, err);
	}
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	return ret;
}

/* The signature scheme of a key known only by its SubjectPublicKeyInfo:
 * the algorithm must fit the key (RSASSA or RSAPSS for RSA, ECDSA for EC),
 * the hash be SHA-256 or SHA-384. */
static int
ev_check_spki_scheme(bool rsa, const TPMT_SIGNATURE *s, struct err *err)
{
	struct evidence_public any = {
	    .type = rsa ? TPM2_ALG_RSA : TPM2_ALG_ECC,
	    .scheme = TPM2_ALG_NULL,
	};

	return ev_check_scheme(&any, s, err);
}

int
evidence_verify_signature_spki(const uint8_t *spki, size_t spki_len, const uint8_t *msg,
    size_t msg_len, const uint8_t *sig, size_t sig_len, struct err *err)
{
	const unsigned char *p = spki;
	EVP_PKEY *pkey = NULL;
	TPMT_SIGNATURE s;
	uint8_t *der = NULL;
	size_t der_len = 0, size;
	bool rsa;
	int ret = -1;

	if (spki == NULL || spki_len == 0 || spki_len > LONG_MAX ||
	    (pkey = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL || p != spki + spki_len) {
		err_ssl(err, "signing key: not a DER SubjectPublicKeyInfo");
		goto out;
	}
	rsa = EVP_PKEY_is_a(pkey, "RSA");
	if (!rsa && !EVP_PKEY_is_a(pkey, "EC")) {
		err_ssl(err, "signing key: neither RSA nor ECC");
		goto out;
	}
	if (msg == NULL && msg_len > 0) {
		err_ssl(err, "signature: no message");
		goto out;
	}
	if (ev_unmarshal_signature(sig, sig_len, &s, err) != 0 ||
	    ev_check_spki_scheme(rsa, &s, err) != 0)
		goto out;
	size = (size_t)(EVP_PKEY_get_bits(pkey) + 7) / 8;
	if (rsa) {
		const TPM2B_PUBLIC_KEY_RSA *r =
		    s.sigAlg == TPM2_ALG_RSAPSS ? &s.signature.rsapss.sig : &s.signature.rsassa.sig;

		if (r->size != size) {
			err_ssl(err, "signature: %u bytes for an RSA key of %zu", r->size,
			    size);
			goto out;
		}
		ret = ev_evp_verify(pkey, &s, r->buffer, r->size, msg, msg_len, err);
	} else {
		if (ev_ecdsa_der(&s.signature.ecdsa, size, &der, &der_len, err) != 0)
			goto out;
		ret = ev_evp_verify(pkey, &s, der, der_len, msg, msg_len, err);
	}
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	return ret;
}

/* ---- checks ---- */

int
evidence_pcr_digest(uint16_t hash_alg, const struct evidence_pcr_select *sel,
    const struct evidence_pcr_values *vals, size_t n_vals, uint8_t out[static EVIDENCE_DIGEST_MAX],
    size_t *out_len, struct err *err)
{
	const EVP_MD *md = ev_md(hash_alg);
	EVP_MD_CTX *ctx = NULL;
	unsigned int n = 0;
	char a[16], pcrs[128];
	int ret = -1;

	memset(out, 0, EVIDENCE_DIGEST_MAX);
	*out_len = 0;
	if (md == NULL) {
		err_ssl(err, "PCR digest: hash %s is not supported", ev_alg_name(hash_alg, a));
		return -1;
	}
	if (sel == NULL || sel->count > EVIDENCE_MAX_BANKS || (vals == NULL && n_vals > 0)) {
		err_ssl(err, "PCR digest: bad arguments");
		return -1;
	}
	for (size_t i = 0; i < n_vals; i++)
		for (size_t j = 0; j < i; j++)
			if (vals[i].hash_alg == vals[j].hash_alg) {
				err_ssl(err, "PCR values: bank %s given twice",
				    ev_alg_name(vals[i].hash_alg, a));
				return -1;
			}
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
		err_ssl(err, "PCR digest");
		goto out;
	}
	for (size_t b = 0; b < sel->count; b++) {
		const struct evidence_pcr_bank *bank = &sel->bank[b];
		const struct evidence_pcr_values *v = NULL;
		size_t size = ev_digest_size(bank->hash_alg);

		if (bank->mask == 0)
			continue;
		for (size_t i = 0; i < n_vals && v == NULL; i++)
			if (vals[i].hash_alg == bank->hash_alg)
				v = &vals[i];
		if (size == 0) {
			err_ssl(err, "PCR digest: bank %s has no known digest size",
			    ev_alg_name(bank->hash_alg, a));
			goto out;
		}
		if (v == NULL || (bank->mask & ~v->mask) != 0) {
			err_ssl(err, "PCR digest: no value given for %s PCRs %s",
			    ev_alg_name(bank->hash_alg, a),
			    ev_format_mask(
			        bank->mask & ~(v != NULL ? v->mask : 0), pcrs, sizeof(pcrs)));
			goto out;
		}
		for (unsigned int i = 0; i < EVIDENCE_MAX_PCRS; i++)
			if ((bank->mask & (UINT32_C(1) << i)) != 0 &&
			    EVP_DigestUpdate(ctx, v->value[i], size) != 1) {
				err_ssl(err, "PCR digest");
				goto out;
			}
	}
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1) {
		err_ssl(err, "PCR digest");
		goto out;
	}
	*out_len = n;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* Whether serial number now is behind prev (RFC 1982, modulo 2^32). */
static bool
ev_behind(uint32_t now, uint32_t prev)
{
	return now != prev && (uint32_t)(now - prev) >= UINT32_C(0x80000000);
}

int
evidence_check_clock(
    const struct evidence_clock *prev, const struct evidence_clock *now, struct err *err)
{
	bool powered_again;

	if (prev == NULL || now == NULL) {
		err_ssl(err, "clock: bad arguments");
		return -1;
	}
	if (ev_behind(now->reset_count, prev->reset_count)) {
		err_ssl(err, "clock: resetCount went backwards (%u after %u): an older or "
		    "cleared TPM state",
		    now->reset_count, prev->reset_count);
		return -1;
	}
	if (now->reset_count == prev->reset_count &&
	    ev_behind(now->restart_count, prev->restart_count)) {
		err_ssl(err, "clock: restartCount went backwards (%u after %u) without a "
		    "TPM Reset: an older TPM state",
		    now->restart_count, prev->restart_count);
		return -1;
	}
	powered_again =
	    now->reset_count != prev->reset_count || now->restart_count != prev->restart_count;
	if (now->clock < prev->clock && !powered_again) {
		err_ssl(err, "clock: went backwards (%llu ms after %llu ms) without a TPM "
		    "Reset or Restart",
		    (unsigned long long)now->clock, (unsigned long long)prev->clock);
		return -1;
	}
	if (now->clock < prev->clock && now->safe) {
		err_ssl(err, "clock: went backwards (%llu ms after %llu ms) though the TPM "
		    "reports no greater value before it (safe)",
		    (unsigned long long)now->clock, (unsigned long long)prev->clock);
		return -1;
	}
	return 0;
}

/* The vals entry of bank alg with PCRs in it, or NULL. */
static const struct evidence_pcr_values *
ev_find_values(const struct evidence_pcr_values *vals, size_t n_vals, uint16_t alg)
{
	for (size_t i = 0; i < n_vals; i++)
		if (vals[i].hash_alg == alg && vals[i].mask != 0)
			return &vals[i];
	return NULL;
}

/* The selection's bank alg with PCRs in it, or NULL. */
static const struct evidence_pcr_bank *
ev_find_bank(const struct evidence_pcr_select *sel, uint16_t alg)
{
	for (size_t i = 0; i < sel->count; i++)
		if (sel->bank[i].hash_alg == alg && sel->bank[i].mask != 0)
			return &sel->bank[i];
	return NULL;
}

/* Whether the quote selects exactly the PCRs vals gives. */
static int
ev_check_coverage(const struct evidence_attest *a, const struct evidence_pcr_values *vals,
    size_t n_vals, struct err *err)
{
	char alg[16], q[128], g[128];

	for (size_t i = 0; i < a->pcrs.count; i++) {
		const struct evidence_pcr_bank *b = &a->pcrs.bank[i];
		const struct evidence_pcr_values *v = ev_find_values(vals, n_vals, b->hash_alg);

		if (b->mask != 0 && (v == NULL || v->mask != b->mask)) {
			err_ssl(err, "quote: selects %s PCRs %s, the values given are for "
			    "PCRs %s",
			    ev_alg_name(b->hash_alg, alg), ev_format_mask(b->mask, q, sizeof(q)),
			    ev_format_mask(v != NULL ? v->mask : 0, g, sizeof(g)));
			return -1;
		}
	}
	for (size_t i = 0; i < n_vals; i++)
		if (vals[i].mask != 0 && ev_find_bank(&a->pcrs, vals[i].hash_alg) == NULL) {
			err_ssl(err, "quote: selects no %s PCRs, values are given for PCRs "
			    "%s",
			    ev_alg_name(vals[i].hash_alg, alg),
			    ev_format_mask(vals[i].mask, g, sizeof(g)));
			return -1;
		}
	return 0;
}

/* The hash of a quote's pcrDigest, known by its size. */
static uint16_t
ev_quote_hash(size_t digest_len)
{
	switch (digest_len) {
	case TPM2_SHA1_DIGEST_SIZE: return TPM2_ALG_SHA1;
	case TPM2_SHA256_DIGEST_SIZE: return TPM2_ALG_SHA256;
	case TPM2_SHA384_DIGEST_SIZE: return TPM2_ALG_SHA384;
	case TPM2_SHA512_DIGEST_SIZE: return TPM2_ALG_SHA512;
	default: return TPM2_ALG_NULL;
	}
}

/* Whether the attestation's extraData is exactly want. */
static int
ev_check_extra(const struct evidence_attest *a, const uint8_t *want, size_t want_len,
    const char *what, struct err *err)
{
	if ((want == NULL && want_len > 0) || want_len > EVIDENCE_DATA_MAX) {
		err_ssl(err, "%s: bad arguments", what);
		return -1;
	}
	if (a->extra_len != want_len || (want_len > 0 && memcmp(a->extra, want, want_len) != 0)) {
		err_ssl(err, "%s: extraData (%zu bytes) is not the one expected (%zu bytes)", what,
		    a->extra_len, want_len);
		return -1;
	}
	return 0;
}

int
evidence_check_quote(const struct evidence_attest *a, const uint8_t *nonce, size_t nonce_len,
    const struct evidence_pcr_values *vals, size_t n_vals, const struct evidence_clock *prev,
    struct err *err)
{
	uint8_t digest[EVIDENCE_DIGEST_MAX];
	size_t digest_len;
	uint16_t hash;

	if (a == NULL || (vals == NULL && n_vals > 0) || a->pcrs.count > EVIDENCE_MAX_BANKS) {
		err_ssl(err, "quote: bad arguments");
		return -1;
	}
	if (a->type != EVIDENCE_ST_QUOTE) {
		err_ssl(err, "quote: the attestation is of type 0x%04x%s, not QUOTE "
		    "(0x8018)",
		    a->type, a->type == EVIDENCE_ST_CERTIFY ? " (CERTIFY)" : "");
		return -1;
	}
	if (ev_check_extra(a, nonce, nonce_len, "quote", err) != 0 ||
	    ev_check_coverage(a, vals, n_vals, err) != 0)
		return -1;
	if ((hash = ev_quote_hash(a->pcr_digest_len)) == TPM2_ALG_NULL) {
		err_ssl(err, "quote: a pcrDigest of %zu bytes", a->pcr_digest_len);
		return -1;
	}
	if (evidence_pcr_digest(hash, &a->pcrs, vals, n_vals, digest, &digest_len, err) !=
	    0)
		return -1;
	if (digest_len != a->pcr_digest_len || memcmp(digest, a->pcr_digest, digest_len) != 0) {
		err_ssl(err, "quote: its PCR digest is not the digest of the PCR values "
		    "given");
		return -1;
	}
	if (prev != NULL && evidence_check_clock(prev, &a->clock, err) != 0)
		return -1;
	return 0;
}

int
evidence_check_certify(const struct evidence_attest *a, const uint8_t *certified_public,
    size_t certified_public_len, const uint8_t *extra, size_t extra_len, struct err *err)
{
	struct evidence_public pub;
	struct err reason;

	if (a == NULL) {
		err_ssl(err, "certify: bad arguments");
		return -1;
	}
	if (a->type != EVIDENCE_ST_CERTIFY) {
		err_ssl(err, "certify: the attestation is of type 0x%04x%s, not CERTIFY "
		    "(0x8017)",
		    a->type, a->type == EVIDENCE_ST_QUOTE ? " (QUOTE)" : "");
		return -1;
	}
	if (ev_check_extra(a, extra, extra_len, "certify", err) != 0)
		return -1;
	if (evidence_parse_public(
	        certified_public, certified_public_len, &pub, &reason) != 0) {
		err_ssl(err, "certify: the certified object's %s", reason.msg);
		return -1;
	}
	if (a->name_len != pub.name_len || memcmp(a->name, pub.name, pub.name_len) != 0) {
		err_ssl(err, "certify: the certified Name is not the Name of the public "
		    "area given");
		return -1;
	}
	return 0;
}

/* A UUID's canonical text: 8-4-4-4-12 lowercase hexadecimal digits. */
static bool
ev_uuid_text(const char *uuid)
{
	if (strlen(uuid) != EVIDENCE_VEK_UUID_LEN)
		return false;
	for (size_t i = 0; i < EVIDENCE_VEK_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? uuid[i] != '-' : strchr("0123456789abcdef", uuid[i]) == NULL)
			return false;
	}
	return true;
}

/* Whether a TPM2B_PUBLIC's size field is its length. */
static bool
ev_tpm2b_whole(const uint8_t *pub, size_t len)
{
	return pub != NULL && len >= 2 && (size_t)ev_get16(pub) == len - 2;
}

int
evidence_vek_set_digest(const struct evidence_vek_set *set, uint8_t out[static 32], struct err *err)
{
	static const char label[] = EVIDENCE_VEK_SET_LABEL;
	static const uint8_t none[2] = {0, 0};
	EVP_MD_CTX *ctx;
	size_t members = 0;
	int ok;

	memset(out, 0, 32);
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		if (set->pub[t] == NULL && set->len[t] == 0)
			continue;
		if (!ev_tpm2b_whole(set->pub[t], set->len[t]))
			return err_set(err, ERR_INVALID,
			    "a vEK of the set: its TPM2B_PUBLIC size is not its length");
		members++;
	}
	if (members == 0)
		return err_set(err, ERR_INVALID, "the vEK set is empty");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, label, sizeof(label)) == 1;
	for (size_t t = 0; ok && t < EVIDENCE_VEK_TYPES; t++)
		ok = set->pub[t] != NULL ? EVP_DigestUpdate(ctx, set->pub[t], set->len[t]) == 1
		                         : EVP_DigestUpdate(ctx, none, sizeof(none)) == 1;
	ok = ok && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_ssl(err, "SHA-256 of the vEK set");
	return 0;
}

int
evidence_vek_qualifying(const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN],
    const uint8_t *vek_public, size_t vek_public_len, const char *uuid,
    const uint8_t set_digest[static 32], uint8_t out[static 32], struct err *err)
{
	static const char label[] = EVIDENCE_VEK_LABEL;
	EVP_MD_CTX *ctx;
	int ok;

	memset(out, 0, 32);
	if (!ev_tpm2b_whole(vek_public, vek_public_len))
		return err_set(err, ERR_INVALID, "the vEK's TPM2B_PUBLIC size is not its length");
	if (!ev_uuid_text(uuid))
		return err_set(
		    err, ERR_INVALID, "the instance UUID is not 36 lowercase characters");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, label, sizeof(label)) == 1 &&
	     EVP_DigestUpdate(ctx, nonce, EVIDENCE_VEK_NONCE_LEN) == 1 &&
	     EVP_DigestUpdate(ctx, vek_public + 2, vek_public_len - 2) == 1 &&
	     EVP_DigestUpdate(ctx, uuid, EVIDENCE_VEK_UUID_LEN) == 1 &&
	     EVP_DigestUpdate(ctx, set_digest, 32) == 1 && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_ssl(err, "SHA-256 of the vEK evidence");
	return 0;
}
