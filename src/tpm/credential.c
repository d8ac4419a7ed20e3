/*
 * credential.c: TPM2_MakeCredential in software (see credential.h).
 *
 * TPM 2.0 Part 1 ("Credential Protection", "Secret Sharing", "Protected
 * Storage", "Key Derivation Functions"), for an EK with nameAlg H = SHA-256
 * and symmetric AES-128-CFB:
 *
 *   seed      a secret of H's digest size shared with the EK alone:
 *             RSA: 32 random bytes; encSecret = RSA-OAEP(EK, H, MGF1-H,
 *                  label "IDENTITY\0", seed)
 *             ECC: ephemeral key (d, Q) on the EK's curve, Z = x([d]EK),
 *                  seed = KDFe(H, Z, "IDENTITY", Q.x, EK.x, 256);
 *                  encSecret = TPMS_ECC_POINT Q
 *   symKey      = KDFa(H, seed, "STORAGE", Name(AK), -, 128)
 *   encIdentity = AES-128-CFB(symKey, IV 0, TPM2B_DIGEST credential)
 *   hmacKey     = KDFa(H, seed, "INTEGRITY", -, -, 256)
 *   outerHMAC   = HMAC-H(hmacKey, encIdentity || Name(AK))
 *   credentialBlob = TPM2B_ID_OBJECT(TPM2B_DIGEST outerHMAC || encIdentity)
 *
 * Coordinates are written at the curve's full size (32 bytes, leading
 * zeros kept), as the TPM writes its own points; EK.x is used exactly as
 * the EK's public area holds it, as the TPM does. Seeds and derived keys are
 * wiped before return; the ephemeral private key dies with its EVP_PKEY.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "credential.h"

#define CRED_DIGEST_LEN    32 /* SHA-256, the only nameAlg accepted */
#define CRED_SEED_LEN      CRED_DIGEST_LEN
#define CRED_SYM_KEY_BITS  128
#define CRED_RSA_BITS      2048
#define CRED_RSA_LEN       (CRED_RSA_BITS / 8)
#define CRED_RSA_EXPONENT  65537
#define CRED_ECC_LEN       32 /* a NIST P-256 coordinate */
#define CRED_ECC_POINT_LEN (2 + CRED_ECC_LEN + 2 + CRED_ECC_LEN)
#define CRED_KDF_MAX_BITS  65536
#define CRED_MAX_PARTS     5

/* OpenSSL takes parameter strings as char *; these are never written. */
static char cred_sha256[] = "SHA256";
static char cred_p256[] = "prime256v1";
static char cred_oaep[] = OSSL_PKEY_RSA_PAD_MODE_OAEP;
/* The longest secret-sharing label, its NUL included ("IDENTITY"). */
#define CRED_LABEL_MAX 16


/* One input to a hash or HMAC; p may be NULL when len is 0. */
struct cred_part {
	const void *p;
	size_t len;
};

static void
cred_put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
cred_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* HMAC-SHA-256 of the concatenation of n parts, into out. */
static int
cred_hmac(const uint8_t *key, size_t key_len, const struct cred_part *in, size_t n,
    uint8_t out[static CRED_DIGEST_LEN], struct err *err)
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, cred_sha256, 0),
	    OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx = NULL;
	size_t i, out_len = 0;
	int ret = -1;

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(ctx, key, key_len, params) != 1)
		goto out;
	for (i = 0; i < n; i++)
		if (in[i].len > 0 && EVP_MAC_update(ctx, in[i].p, in[i].len) != 1)
			goto out;
	if (EVP_MAC_final(ctx, out, &out_len, CRED_DIGEST_LEN) != 1 || out_len != CRED_DIGEST_LEN)
		goto out;
	ret = 0;
out:
	if (ret != 0)
		err_ssl(err, "HMAC-SHA-256");
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ret;
}

/* SHA-256 of the concatenation of n parts, into out. */
static int
cred_sha(const struct cred_part *in, size_t n, uint8_t out[static CRED_DIGEST_LEN], struct err *err)
{
	EVP_MD_CTX *ctx;
	size_t i;
	int ret = -1;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < n; i++)
		if (in[i].len > 0 && EVP_DigestUpdate(ctx, in[i].p, in[i].len) != 1)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		goto out;
	ret = 0;
out:
	if (ret != 0)
		err_ssl(err, "SHA-256");
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* The checks common to both KDFs. */
static int
cred_kdf_args(const char *what, const char *label, const uint8_t *a, size_t a_len, const uint8_t *b,
    size_t b_len, const uint8_t *out, size_t bits, struct err *err)
{
	if (label == NULL || out == NULL || (a == NULL && a_len > 0) || (b == NULL && b_len > 0)) {
		err_set(err, ERR_INVALID, "%s: missing argument", what);
		return -1;
	}
	if (bits == 0 || bits > CRED_KDF_MAX_BITS) {
		err_set(err, ERR_INVALID, "%s: %zu bits asked (1 to %d)", what, bits, CRED_KDF_MAX_BITS);
		return -1;
	}
	return 0;
}

/*
 * Both KDFs: out = the first (bits + 7) / 8 bytes of block(1) || block(2)
 * || ..., where block(i) is taken over parts with parts[0] = [i]32: with
 * key NULL SHA-256 (KDFe), else HMAC-SHA-256 under key (KDFa).
 */
static int
cred_kdf(const uint8_t *key, size_t key_len, struct cred_part *parts, size_t n, uint8_t *out,
    size_t bits, struct err *err)
{
	uint8_t counter[4], block[CRED_DIGEST_LEN];
	size_t len = (bits + 7) / 8, off, take;
	uint32_t i;
	int ret = -1;

	parts[0].p = counter;
	parts[0].len = sizeof(counter);
	for (i = 1, off = 0; off < len; i++, off += take) {
		cred_put32(counter, i);
		if ((key != NULL ? cred_hmac(key, key_len, parts, n, block, err)
		                 : cred_sha(parts, n, block, err)) != 0)
			goto out;
		take = len - off < sizeof(block) ? len - off : sizeof(block);
		memcpy(out + off, block, take);
	}
	/* Part 1: when bits is not a multiple of 8, the excess high-order bits
	 * of the first octet are cleared. */
	if (bits % 8 != 0)
		out[0] &= (uint8_t)((1u << (bits % 8)) - 1);
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	parts[0].p = NULL; /* counter dies with this frame */
	parts[0].len = 0;
	return ret;
}

int
credential_kdfa(const uint8_t *key, size_t key_len, const char *label, const uint8_t *context_u,
    size_t context_u_len, const uint8_t *context_v, size_t context_v_len, uint8_t *out, size_t bits,
    struct err *err)
{
	uint8_t l[4];
	struct cred_part parts[CRED_MAX_PARTS] = {
	    {NULL, 0}, /* the counter */
	    {label, label != NULL ? strlen(label) + 1 : 0},
	    {context_u, context_u_len},
	    {context_v, context_v_len},
	    {l, sizeof(l)},
	};

	if (cred_kdf_args(
	        "KDFa", label, context_u, context_u_len, context_v, context_v_len, out, bits, err) != 0)
		return -1;
	if (key == NULL || key_len == 0) {
		err_set(err, ERR_INVALID, "KDFa: no key");
		return -1;
	}
	cred_put32(l, (uint32_t)bits);
	return cred_kdf(key, key_len, parts, CRED_MAX_PARTS, out, bits, err);
}

int
credential_kdfe(const uint8_t *z, size_t z_len, const char *use, const uint8_t *party_u,
    size_t party_u_len, const uint8_t *party_v, size_t party_v_len, uint8_t *out, size_t bits,
    struct err *err)
{
	struct cred_part parts[CRED_MAX_PARTS] = {
	    {NULL, 0}, /* the counter */
	    {z, z_len},
	    {use, use != NULL ? strlen(use) + 1 : 0},
	    {party_u, party_u_len},
	    {party_v, party_v_len},
	};

	if (cred_kdf_args("KDFe", use, party_u, party_u_len, party_v, party_v_len, out, bits, err) != 0)
		return -1;
	if (z == NULL && z_len > 0) {
		err_set(err, ERR_INVALID, "KDFe: missing argument");
		return -1;
	}
	return cred_kdf(NULL, 0, parts, CRED_MAX_PARTS, out, bits, err);
}

/* Unmarshals a whole TPM2B_PUBLIC (nothing after it) into pub. */
static int
cred_parse_public(const uint8_t *buf, size_t len, TPMT_PUBLIC *pub, struct err *err)
{
	size_t size, off = 0;
	TSS2_RC rc;

	if (buf == NULL || len < 2) {
		err_set(err, ERR_INVALID, "public area: truncated (%zu bytes)", buf == NULL ? 0 : len);
		return -1;
	}
	size = (size_t)buf[0] << 8 | buf[1];
	if (size != len - 2) {
		err_set(err, ERR_INVALID, 
		    "public area: TPM2B_PUBLIC declares %zu bytes but %zu follow", size, len - 2);
		return -1;
	}
	memset(pub, 0, sizeof(*pub));
	rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(buf + 2, size, &off, pub);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_INVALID, "public area: not a valid TPMT_PUBLIC: %s", Tss2_RC_Decode(rc));
		return -1;
	}
	if (off != size) {
		err_set(err, ERR_INVALID, "public area: %zu bytes after the TPMT_PUBLIC", size - off);
		return -1;
	}
	return 0;
}

int
credential_public_name(
    const uint8_t *public, size_t len, uint8_t name[static CREDENTIAL_NAME_LEN], struct err *err)
{
	TPMT_PUBLIC pub;
	struct cred_part tpmt;

	if (cred_parse_public(public, len, &pub, err) != 0)
		return -1;
	if (pub.nameAlg != TPM2_ALG_SHA256) {
		err_set(err, ERR_INVALID, "public area: nameAlg 0x%04x is not SHA-256 (0x000b)", pub.nameAlg);
		return -1;
	}
	/* The TPM hashes its own marshalling; an unmarshal that consumed every
	 * byte means these are the same bytes. */
	tpmt.p = public + 2;
	tpmt.len = len - 2;
	cred_put16(name, TPM2_ALG_SHA256);
	return cred_sha(&tpmt, 1, name + 2, err);
}

static int
cred_check_sym(const TPMT_SYM_DEF_OBJECT *sym, struct err *err)
{
	if (sym->algorithm != TPM2_ALG_AES || sym->keyBits.aes != CRED_SYM_KEY_BITS ||
	    sym->mode.aes != TPM2_ALG_CFB) {
		err_set(err, ERR_INVALID, 
		    "EK: symmetric algorithm 0x%04x, %u bits, mode 0x%04x is not AES-128-CFB",
		    sym->algorithm, sym->keyBits.aes, sym->mode.aes);
		return -1;
	}
	return 0;
}

static int
cred_check_rsa(const TPMS_RSA_PARMS *parms, const TPM2B_PUBLIC_KEY_RSA *n, struct err *err)
{
	if (cred_check_sym(&parms->symmetric, err) != 0)
		return -1;
	if (parms->scheme.scheme != TPM2_ALG_NULL) {
		err_set(err, ERR_INVALID, "EK: RSA scheme 0x%04x is not TPM_ALG_NULL", parms->scheme.scheme);
		return -1;
	}
	if (parms->keyBits != CRED_RSA_BITS) {
		err_set(err, ERR_INVALID, "EK: RSA-%u is not accepted; only RSA-2048 and NIST P-256 EKs are",
		    parms->keyBits);
		return -1;
	}
	if (parms->exponent != 0 && parms->exponent != CRED_RSA_EXPONENT) {
		err_set(err, ERR_INVALID, "EK: RSA exponent %u is not 65537", parms->exponent);
		return -1;
	}
	if (n->size != CRED_RSA_LEN || (n->buffer[0] & 0x80) == 0) {
		err_set(err, ERR_INVALID, "EK: RSA modulus is not 2048 bits long (%u bytes)", n->size);
		return -1;
	}
	return 0;
}

static int
cred_check_ecc(const TPMS_ECC_PARMS *parms, const TPMS_ECC_POINT *q, struct err *err)
{
	if (cred_check_sym(&parms->symmetric, err) != 0)
		return -1;
	if (parms->scheme.scheme != TPM2_ALG_NULL || parms->kdf.scheme != TPM2_ALG_NULL) {
		err_set(err, ERR_INVALID, "EK: ECC scheme 0x%04x and KDF 0x%04x are not both TPM_ALG_NULL",
		    parms->scheme.scheme, parms->kdf.scheme);
		return -1;
	}
	if (parms->curveID != TPM2_ECC_NIST_P256) {
		err_set(err, ERR_INVALID, "EK: ECC curve 0x%04x is not accepted; only NIST P-256 (0x0003) and "
		            "RSA-2048 EKs are",
		    parms->curveID);
		return -1;
	}
	if (q->x.size == 0 || q->x.size > CRED_ECC_LEN || q->y.size == 0 ||
	    q->y.size > CRED_ECC_LEN) {
		err_set(err, ERR_INVALID, "EK: ECC point coordinates of %u and %u bytes (1 to %d)", q->x.size,
		    q->y.size, CRED_ECC_LEN);
		return -1;
	}
	return 0;
}

/* Refuses every EK but the kinds credential.h names. */
static int
cred_check_ek(const TPMT_PUBLIC *ek, struct err *err)
{
	const TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

	if (ek->nameAlg != TPM2_ALG_SHA256) {
		err_set(err, ERR_INVALID, "EK: nameAlg 0x%04x is not SHA-256 (0x000b)", ek->nameAlg);
		return -1;
	}
	if ((ek->objectAttributes & need) != need ||
	    (ek->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) != 0) {
		err_set(err, ERR_INVALID, "EK: attributes 0x%08x are not those of a restricted decryption key",
		    ek->objectAttributes);
		return -1;
	}
	switch (ek->type) {
	case TPM2_ALG_RSA: return cred_check_rsa(&ek->parameters.rsaDetail, &ek->unique.rsa, err);
	case TPM2_ALG_ECC: return cred_check_ecc(&ek->parameters.eccDetail, &ek->unique.ecc, err);
	default:
		err_set(err, ERR_INVALID, "EK: type 0x%04x is neither RSA (0x0001) nor ECC (0x0023)", ek->type);
		return -1;
	}
}

/* The EK's RSA public key, or NULL. */
static EVP_PKEY *
cred_rsa_key(const TPMS_RSA_PARMS *parms, const TPM2B_PUBLIC_KEY_RSA *n, struct err *err)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	if ((bn_n = BN_bin2bn(n->buffer, n->size, NULL)) == NULL || (bn_e = BN_new()) == NULL ||
	    BN_set_word(bn_e, parms->exponent != 0 ? parms->exponent : CRED_RSA_EXPONENT) != 1 ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		err_ssl(err, "EK: RSA public key");
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_e);
	BN_free(bn_n);
	return key;
}

/* RSA secret sharing: a random seed, encrypted to the key with OAEP
 * under label (its NUL included, as the TPM expects). */
static int
cred_rsa_share(const TPMT_PUBLIC *ek, const char *label, uint8_t seed[static CRED_SEED_LEN],
    uint8_t enc[static CRED_RSA_LEN], struct err *err)
{
	unsigned char oaep_label[CRED_LABEL_MAX];
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, cred_oaep, 0),
	    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, cred_sha256, 0),
	    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, cred_sha256, 0),
	    OSSL_PARAM_construct_octet_string(
	        OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, oaep_label, strlen(label) + 1),
	    OSSL_PARAM_construct_end(),
	};
	EVP_PKEY *key;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = CRED_RSA_LEN;
	int ret = -1;

	memcpy(oaep_label, label, strlen(label) + 1);
	if ((key = cred_rsa_key(&ek->parameters.rsaDetail, &ek->unique.rsa, err)) == NULL)
		return -1;
	if (RAND_priv_bytes(seed, CRED_SEED_LEN) != 1) {
		err_ssl(err, "seed: random bytes");
		goto out;
	}
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init_ex(ctx, params) != 1 ||
	    EVP_PKEY_encrypt(ctx, enc, &len, seed, CRED_SEED_LEN) != 1 || len != CRED_RSA_LEN) {
		err_ssl(err, "seed: RSA-OAEP encryption to the EK");
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ret;
}

/* The EK's P-256 public key, or NULL when its point is not on the curve. */
static EVP_PKEY *
cred_ecc_key(const TPMS_ECC_POINT *q, struct err *err)
{
	uint8_t pt[1 + 2 * CRED_ECC_LEN] = {0x04}; /* uncompressed: 04 || x || y */
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, cred_p256, 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
	    OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;

	memcpy(pt + 1 + CRED_ECC_LEN - q->x.size, q->x.buffer, q->x.size);
	memcpy(pt + 1 + 2 * CRED_ECC_LEN - q->y.size, q->y.buffer, q->y.size);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		err_ssl(err, "EK: ECC public point is not a point of NIST P-256");
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* A fresh P-256 key pair, or NULL. */
static EVP_PKEY *
cred_ecc_ephemeral(struct err *err)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_group_name(ctx, cred_p256) != 1 || EVP_PKEY_generate(ctx, &key) != 1) {
		err_ssl(err, "ephemeral P-256 key");
		EVP_PKEY_free(key);
		key = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/*
 * ECC secret sharing (one-pass ECDH, C(1e, 1s)): seed from an ephemeral key
 * agreed with the EK; enc is the marshalled ephemeral TPMS_ECC_POINT.
 */
static int
cred_ecc_share(const TPMT_PUBLIC *ek, const char *label, uint8_t seed[static CRED_SEED_LEN],
    uint8_t enc[static CRED_ECC_POINT_LEN], struct err *err)
{
	const TPM2B_ECC_PARAMETER *ek_x = &ek->unique.ecc.x;
	EVP_PKEY *ek_key, *eph = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t z[CRED_ECC_LEN], q[1 + 2 * CRED_ECC_LEN];
	size_t z_len = sizeof(z), q_len = 0;
	int ret = -1;

	if ((ek_key = cred_ecc_key(&ek->unique.ecc, err)) == NULL)
		return -1;
	if ((eph = cred_ecc_ephemeral(err)) == NULL)
		goto out;
	/* OpenSSL's ECDH output is Z's x-coordinate at the field size. */
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, ek_key) != 1 ||
	    EVP_PKEY_derive(ctx, z, &z_len) != 1 || z_len != sizeof(z)) {
		err_ssl(err, "seed: ECDH with the EK");
		goto out;
	}
	if (EVP_PKEY_get_octet_string_param(
	        eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, q, sizeof(q), &q_len) != 1 ||
	    q_len != sizeof(q) || q[0] != 0x04) {
		err_ssl(err, "seed: ephemeral public point");
		goto out;
	}
	if (credential_kdfe(z, sizeof(z), label, q + 1, CRED_ECC_LEN, ek_x->buffer, ek_x->size,
	        seed, 8 * CRED_SEED_LEN, err) != 0)
		goto out;
	cred_put16(enc, CRED_ECC_LEN);
	memcpy(enc + 2, q + 1, CRED_ECC_LEN);
	cred_put16(enc + 2 + CRED_ECC_LEN, CRED_ECC_LEN);
	memcpy(enc + 4 + CRED_ECC_LEN, q + 1 + CRED_ECC_LEN, CRED_ECC_LEN);
	ret = 0;
out:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(eph);
	EVP_PKEY_free(ek_key);
	return ret;
}

/* AES-128-CFB with a zero IV over len bytes of in, into out. */
static int
cred_cfb(const uint8_t key[static CRED_SYM_KEY_BITS / 8], const uint8_t *in, size_t len,
    uint8_t *out, struct err *err)
{
	static const uint8_t iv[16];
	EVP_CIPHER_CTX *ctx;
	int n, fin, ret = -1;

	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv) != 1 ||
	    EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, out + n, &fin) != 1 || (size_t)n + (size_t)fin != len)
		err_ssl(err, "credential: AES-128-CFB");
	else
		ret = 0;
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

/*
 * Writes the TPM2B_ID_OBJECT for secret, bound to the AK's Name, under
 * seed: blob_len = 2 + 2 + 32 + 2 + secret_len bytes.
 */
static int
cred_wrap(const uint8_t seed[static CRED_SEED_LEN], const uint8_t *name, size_t name_len,
    const uint8_t *secret, size_t secret_len, uint8_t *blob, size_t blob_len, struct err *err)
{
	uint8_t sym_key[CRED_SYM_KEY_BITS / 8], hmac_key[CRED_DIGEST_LEN];
	uint8_t plain[2 + CREDENTIAL_MAX_SECRET];
	uint8_t *enc = blob + 4 + CRED_DIGEST_LEN;
	size_t enc_len = 2 + secret_len;
	struct cred_part outer[2] = {{enc, enc_len}, {name, name_len}};
	int ret = -1;

	cred_put16(blob, blob_len - 2);
	cred_put16(blob + 2, CRED_DIGEST_LEN);
	cred_put16(plain, secret_len);
	memcpy(plain + 2, secret, secret_len);
	if (credential_kdfa(seed, CRED_SEED_LEN, "STORAGE", name, name_len, NULL, 0, sym_key,
	        CRED_SYM_KEY_BITS, err) != 0 ||
	    cred_cfb(sym_key, plain, enc_len, enc, err) != 0 ||
	    credential_kdfa(seed, CRED_SEED_LEN, "INTEGRITY", NULL, 0, NULL, 0, hmac_key,
	        8 * CRED_DIGEST_LEN, err) != 0 ||
	    cred_hmac(hmac_key, sizeof(hmac_key), outer, 2, blob + 4, err) != 0)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(sym_key, sizeof(sym_key));
	OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
	OPENSSL_cleanse(plain, sizeof(plain));
	return ret;
}

/* The AK's Name and the credential, before any work. */
static int
cred_check_inputs(const uint8_t *ak_name, size_t ak_name_len, const uint8_t *secret,
    size_t secret_len, struct err *err)
{
	if (ak_name == NULL || ak_name_len != CREDENTIAL_NAME_LEN || ak_name[0] != 0x00 ||
	    ak_name[1] != TPM2_ALG_SHA256) {
		err_set(err, ERR_INVALID, "AK Name: %zu bytes, nameAlg 0x%04x; expected a SHA-256 Name "
		            "(0x000b and 32 bytes)",
		    ak_name == NULL ? 0 : ak_name_len,
		    ak_name == NULL || ak_name_len < 2 ? 0
		                                       : (unsigned)(ak_name[0] << 8 | ak_name[1]));
		return -1;
	}
	if (secret == NULL || secret_len == 0 || secret_len > CREDENTIAL_MAX_SECRET) {
		err_set(err, ERR_INVALID, "credential: %zu bytes (1 to %d)", secret == NULL ? 0 : secret_len,
		    CREDENTIAL_MAX_SECRET);
		return -1;
	}
	return 0;
}

/*
 * Secret sharing with the key ek (checked by cred_check_ek): the seed, and
 * *enc, the malloc'd marshalled TPM2B_ENCRYPTED_SECRET that carries it.
 */
static int
cred_share(const TPMT_PUBLIC *ek, const char *label, uint8_t seed[static CRED_SEED_LEN],
    uint8_t **enc, size_t *enc_len, struct err *err)
{
	size_t len = 2 + (ek->type == TPM2_ALG_RSA ? CRED_RSA_LEN : CRED_ECC_POINT_LEN);
	uint8_t *s;

	if (label == NULL || strlen(label) + 1 > CRED_LABEL_MAX) {
		err_set(err, ERR_INVALID, "secret sharing: no label or a label too long");
		return -1;
	}
	if ((s = malloc(len)) == NULL) {
		err_set(err, ERR_INVALID, "secret sharing: out of memory");
		return -1;
	}
	cred_put16(s, len - 2);
	if ((ek->type == TPM2_ALG_RSA ? cred_rsa_share(ek, label, seed, s + 2, err)
	                              : cred_ecc_share(ek, label, seed, s + 2, err)) != 0) {
		OPENSSL_cleanse(seed, CRED_SEED_LEN);
		free(s);
		return -1;
	}
	*enc = s;
	*enc_len = len;
	return 0;
}

int
credential_share_secret(const uint8_t *public, size_t public_len, const char *label,
    uint8_t seed[static CREDENTIAL_SEED_LEN], uint8_t **enc_secret, size_t *enc_secret_len,
    struct err *err)
{
	TPMT_PUBLIC key;

	if (enc_secret == NULL || enc_secret_len == NULL) {
		err_set(err, ERR_INVALID, "credential_share_secret: missing output argument");
		return -1;
	}
	*enc_secret = NULL;
	*enc_secret_len = 0;
	if (cred_parse_public(public, public_len, &key, err) != 0 || cred_check_ek(&key, err) != 0)
		return -1;
	return cred_share(&key, label, seed, enc_secret, enc_secret_len, err);
}

int
credential_make(const uint8_t *ek_public, size_t ek_public_len, const uint8_t *ak_name,
    size_t ak_name_len, const uint8_t *secret, size_t secret_len, uint8_t **blob, size_t *blob_len,
    uint8_t **enc_secret, size_t *enc_secret_len, struct err *err)
{
	TPMT_PUBLIC ek;
	uint8_t seed[CRED_SEED_LEN];
	uint8_t *b = NULL, *s = NULL;
	size_t b_len, s_len = 0;
	int ret = -1;

	if (blob == NULL || blob_len == NULL || enc_secret == NULL || enc_secret_len == NULL) {
		err_set(err, ERR_INVALID, "credential_make: missing output argument");
		return -1;
	}
	*blob = *enc_secret = NULL;
	*blob_len = *enc_secret_len = 0;
	if (cred_check_inputs(ak_name, ak_name_len, secret, secret_len, err) != 0 ||
	    cred_parse_public(ek_public, ek_public_len, &ek, err) != 0 || cred_check_ek(&ek, err) != 0)
		return -1;
	b_len = 2 + 2 + CRED_DIGEST_LEN + 2 + secret_len;
	if ((b = malloc(b_len)) == NULL) {
		err_set(err, ERR_INVALID, "credential_make: out of memory");
		return -1;
	}
	if (cred_share(&ek, "IDENTITY", seed, &s, &s_len, err) != 0)
		goto out;
	if (cred_wrap(seed, ak_name, ak_name_len, secret, secret_len, b, b_len, err) != 0)
		goto out;
	*blob = b;
	*blob_len = b_len;
	*enc_secret = s;
	*enc_secret_len = s_len;
	b = s = NULL;
	ret = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	free(b);
	free(s);
	return ret;
}
