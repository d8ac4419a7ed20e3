/*
 * test_credential.c: TPM2_MakeCredential in software (src/tpm/credential.c).
 *
 * - KDFa and KDFe against published known answers: the KDFa self-test
 *   vector of the TCG reference implementation (KdfTestData.h), and vectors
 *   from github.com/chrisfenner/tpm-test-vectors (kdfe.json; the KDFa
 *   example of its README).
 * - ECC secret sharing against that project's ecc_labeled_encaps vector
 *   "12_P256_SHA256_256_restricted" (label IDENTITY, validated there with
 *   TPM2_ActivateCredential): the ephemeral key is fixed by wrapping
 *   EVP_PKEY_generate at link time (WRAP_test_credential in the Makefile),
 *   so the encrypted secret must match byte for byte, and the blob must open
 *   under the vector's seed.
 * - Round trips through a software ActivateCredential written here from the
 *   specification, with RSA-2048 and P-256 EKs whose private keys the test
 *   holds; a credential bound to one AK Name does not open for another.
 * - Names against ones a TPM computed (a vTPM's EK and AK, tpm2-tools).
 * - Every malformed or refused input, each with its reason.
 *
 * Inputs are passed in buffers of exactly their length, so that the
 * sanitizers catch a read past one. tests/integration/credential.sh checks
 * the same code against TPM2_ActivateCredential of a real (v)TPM.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "common/common.h"
#include "tpm/tpm.h"

/* The last failure of a credential_* call. */
static struct err cerr;

/* ---- link-time fake: a fixed "ephemeral" key when one is armed ---- */

int __real_EVP_PKEY_generate(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey);
int __wrap_EVP_PKEY_generate(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey);

static EVP_PKEY *armed_ephemeral; /* handed out (and disarmed) by the next generate */

int
__wrap_EVP_PKEY_generate(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey)
{
	if (armed_ephemeral == NULL)
		return __real_EVP_PKEY_generate(ctx, ppkey);
	*ppkey = armed_ephemeral;
	armed_ephemeral = NULL;
	return 1;
}

/* ---- helpers ---- */

/* Decodes the hex string s into a malloc'd buffer of exactly its length
 * (at least 1 byte allocated), setting *len. */
static uint8_t *
unhex(const char *s, size_t *len)
{
	uint8_t *out;

	*len = strlen(s) / 2;
	out = malloc(*len > 0 ? *len : 1);
	assert_non_null(out);
	assert_int_equal(hex_decode(s, out, *len), 0);
	return out;
}

static void
assert_hex_equal(const uint8_t *got, size_t got_len, const char *want_hex)
{
	size_t len;
	uint8_t *want = unhex(want_hex, &len);

	assert_int_equal(got_len, len);
	assert_memory_equal(got, want, len);
	free(want);
}

static uint8_t *
dup_exact(const uint8_t *p, size_t len)
{
	uint8_t *q = malloc(len > 0 ? len : 1);

	assert_non_null(q);
	memcpy(q, p, len);
	return q;
}

static void
put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned
get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* TCG EK Credential Profile, PolicyA-SHA256 (the L-1/L-2 authPolicy). */
static const uint8_t policy_a[32] = {
    0x83,
    0x71,
    0x97,
    0x67,
    0x44,
    0x84,
    0xb3,
    0xf8,
    0x1a,
    0x90,
    0xcc,
    0x8d,
    0x46,
    0xa5,
    0xd7,
    0x24,
    0xfd,
    0x52,
    0xd7,
    0x6e,
    0x06,
    0x52,
    0x0b,
    0x64,
    0xf2,
    0xa1,
    0xda,
    0x1b,
    0x33,
    0x14,
    0x69,
    0xaa,
};

/* A name of the given nameAlg whose digest bytes are all fill. */
static void
fill_name(uint8_t name[CREDENTIAL_NAME_LEN], uint8_t fill)
{
	put16(name, 0x000b);
	memset(name + 2, fill, CREDENTIAL_NAME_LEN - 2);
}

/* The L-1 (RSA) or L-2 (ECC) EK template with key's public part. */
static void
ek_template(EVP_PKEY *key, TPMT_PUBLIC *pub)
{
	memset(pub, 0, sizeof(*pub));
	pub->nameAlg = TPM2_ALG_SHA256;
	pub->objectAttributes = 0x000300b2;
	pub->authPolicy.size = sizeof(policy_a);
	memcpy(pub->authPolicy.buffer, policy_a, sizeof(policy_a));
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		TPMS_RSA_PARMS *p = &pub->parameters.rsaDetail;
		BIGNUM *n = NULL;

		pub->type = TPM2_ALG_RSA;
		p->symmetric.algorithm = TPM2_ALG_AES;
		p->symmetric.keyBits.aes = 128;
		p->symmetric.mode.aes = TPM2_ALG_CFB;
		p->scheme.scheme = TPM2_ALG_NULL;
		p->keyBits = 2048;
		p->exponent = 0;
		assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
		assert_int_equal(BN_bn2binpad(n, pub->unique.rsa.buffer, 256), 256);
		pub->unique.rsa.size = 256;
		BN_free(n);
	} else {
		TPMS_ECC_PARMS *p = &pub->parameters.eccDetail;
		uint8_t q[65];
		size_t q_len = 0;

		pub->type = TPM2_ALG_ECC;
		p->symmetric.algorithm = TPM2_ALG_AES;
		p->symmetric.keyBits.aes = 128;
		p->symmetric.mode.aes = TPM2_ALG_CFB;
		p->scheme.scheme = TPM2_ALG_NULL;
		p->curveID = TPM2_ECC_NIST_P256;
		p->kdf.scheme = TPM2_ALG_NULL;
		assert_int_equal(EVP_PKEY_get_octet_string_param(
		                     key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, q, sizeof(q), &q_len),
		    1);
		assert_int_equal(q_len, 65);
		pub->unique.ecc.x.size = 32;
		memcpy(pub->unique.ecc.x.buffer, q + 1, 32);
		pub->unique.ecc.y.size = 32;
		memcpy(pub->unique.ecc.y.buffer, q + 33, 32);
	}
}

/* Marshals pub as a TPM2B_PUBLIC into a malloc'd buffer of exactly its size. */
static uint8_t *
marshal_public(const TPMT_PUBLIC *pub, size_t *len)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;

	assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(pub, buf + 2, sizeof(buf) - 2, &off), 0);
	put16(buf, (unsigned)off);
	*len = off + 2;
	return dup_exact(buf, *len);
}

static EVP_PKEY *
new_key(int rsa)
{
	EVP_PKEY *key = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
	                    : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(key);
	return key;
}

/* A P-256 public key from a marshalled TPMS_ECC_POINT of 32-byte
 * coordinates (len bytes at p), or NULL. */
static EVP_PKEY *
ecc_point_key(const uint8_t *p, size_t len)
{
	uint8_t pt[65] = {0x04};
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
	    OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;

	if (len != 68 || get16(p) != 32 || get16(p + 34) != 32)
		return NULL;
	memcpy(pt + 1, p + 2, 32);
	memcpy(pt + 33, p + 36, 32);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	assert_non_null(ctx);
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* The seed a key's owner recovers from a TPM2B_ENCRYPTED_SECRET (Part 1,
 * "Secret Sharing") made for purpose use, with ek the private key.
 * Returns 0 or -1. */
static int
soft_seed_for(const char *use, EVP_PKEY *ek, const TPMT_PUBLIC *ek_pub, const uint8_t *enc,
    size_t enc_len, uint8_t seed[32])
{
	char sha256[] = "SHA256", oaep[] = "oaep";
	unsigned char label[16];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *q;
	uint8_t z[32];
	size_t len;
	int ret = -1;

	if (enc_len < 2 || get16(enc) != enc_len - 2)
		return -1;
	if (ek_pub->type == TPM2_ALG_RSA) {
		OSSL_PARAM params[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, oaep, 0),
		    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, sha256, 0),
		    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, sha256, 0),
		    OSSL_PARAM_construct_octet_string(
		        OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, label, strlen(use) + 1),
		    OSSL_PARAM_construct_end(),
		};
		uint8_t out[256];

		assert_true(strlen(use) < sizeof(label));
		memcpy(label, use, strlen(use) + 1);
		len = sizeof(out);
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek, NULL);
		assert_non_null(ctx);
		if (EVP_PKEY_decrypt_init_ex(ctx, params) == 1 &&
		    EVP_PKEY_decrypt(ctx, out, &len, enc + 2, enc_len - 2) == 1 && len == 32) {
			memcpy(seed, out, 32);
			ret = 0;
		}
		EVP_PKEY_CTX_free(ctx);
		return ret;
	}
	if ((q = ecc_point_key(enc + 2, enc_len - 2)) == NULL)
		return -1;
	len = sizeof(z);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek, NULL);
	assert_non_null(ctx);
	if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, q) == 1 &&
	    EVP_PKEY_derive(ctx, z, &len) == 1 && len == 32 &&
	    credential_kdfe(z, 32, use, enc + 4, 32, ek_pub->unique.ecc.x.buffer,
	        ek_pub->unique.ecc.x.size, seed, 256, &cerr) == 0)
		ret = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(q);
	return ret;
}

/* soft_seed_for a credential. */
static int
soft_seed(
    EVP_PKEY *ek, const TPMT_PUBLIC *ek_pub, const uint8_t *enc, size_t enc_len, uint8_t seed[32])
{
	return soft_seed_for("IDENTITY", ek, ek_pub, enc, enc_len, seed);
}

/* TPM2_ActivateCredential's unwrapping (Part 1, "Credential Protection")
 * of a TPM2B_ID_OBJECT under seed for the object called name. Returns the
 * credential's length, or -1 when the blob is malformed or its HMAC fails. */
static int
soft_unwrap(const uint8_t seed[32], const uint8_t name[CREDENTIAL_NAME_LEN], const uint8_t *blob,
    size_t blob_len, uint8_t *out)
{
	static const uint8_t iv[16];
	uint8_t hmac_key[32], sym_key[16], mac[32], plain[2 + 64], *msg;
	const uint8_t *enc;
	size_t enc_len, mac_len = 0;
	EVP_CIPHER_CTX *c;
	int n;

	if (blob_len < 4 + 32 + 2 || get16(blob) != blob_len - 2 || get16(blob + 2) != 32)
		return -1;
	enc = blob + 36;
	enc_len = blob_len - 36;
	if (enc_len > sizeof(plain))
		return -1;
	assert_int_equal(
	    credential_kdfa(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, hmac_key, 256, &cerr), 0);
	msg = malloc(enc_len + CREDENTIAL_NAME_LEN);
	assert_non_null(msg);
	memcpy(msg, enc, enc_len);
	memcpy(msg + enc_len, name, CREDENTIAL_NAME_LEN);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hmac_key, 32, msg,
	    enc_len + CREDENTIAL_NAME_LEN, mac, sizeof(mac), &mac_len));
	free(msg);
	if (memcmp(mac, blob + 4, 32) != 0)
		return -1;
	assert_int_equal(
	    credential_kdfa(seed, 32, "STORAGE", name, CREDENTIAL_NAME_LEN, NULL, 0, sym_key, 128, &cerr),
	    0);
	c = EVP_CIPHER_CTX_new();
	assert_non_null(c);
	assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_128_cfb128(), NULL, sym_key, iv), 1);
	assert_int_equal(EVP_DecryptUpdate(c, plain, &n, enc, (int)enc_len), 1);
	EVP_CIPHER_CTX_free(c);
	if (get16(plain) != enc_len - 2)
		return -1;
	memcpy(out, plain + 2, enc_len - 2);
	return (int)(enc_len - 2);
}

/* credential_make on exact-size copies of its inputs; returns its result. */
static int
make(const uint8_t *ek, size_t ek_len, const uint8_t *name, size_t name_len, const uint8_t *secret,
    size_t secret_len, uint8_t **blob, size_t *blob_len, uint8_t **enc, size_t *enc_len)
{
	uint8_t *e = dup_exact(ek, ek_len), *n = dup_exact(name, name_len);
	uint8_t *s = dup_exact(secret, secret_len);
	int rc;

	rc = credential_make(e, ek_len, n, name_len, s, secret_len, blob, blob_len, enc, enc_len, &cerr);
	free(e);
	free(n);
	free(s);
	return rc;
}

/* ---- KDFs ---- */

static void
test_kdfa_tcg_selftest(void **state)
{
	size_t key_len, u_len, v_len;
	uint8_t *key = unhex("271fa08bbdc5060ec3dfa928ff9b73123a12da0c", &key_len);
	uint8_t *u = unhex("ce244f395dca7391", &u_len), *v = unhex("da504031ddf12e83", &v_len);
	uint8_t out[20];

	assert_int_equal(
	    credential_kdfa(key, key_len, "KDFSELFTESTLABEL", u, u_len, v, v_len, out, 160, &cerr), 0);
	assert_hex_equal(out, sizeof(out), "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4");
	free(key);
	free(u);
	free(v);
}

static void
test_kdfa_partial_byte(void **state)
{
	size_t key_len, u_len, v_len;
	uint8_t *key = unhex("aff14e568afc0ea51eea748c8915df067c7700", &key_len);
	uint8_t *u = unhex("ce4edfb881540700e300", &u_len);
	uint8_t *v =
	    unhex("68ddb4a0e59d74cd34dfe631d91e1ea3fbc95865440adedff7e9d011890fba", &v_len);
	uint8_t out[15];

	assert_int_equal(
	    credential_kdfa(key, key_len, "IDENTITY", u, u_len, v, v_len, out, 116, &cerr), 0);
	assert_hex_equal(out, sizeof(out), "019ed5e0956338ddda4413ecee5cf2");
	free(key);
	free(u);
	free(v);
}

static void
test_kdfe_vectors(void **state)
{
	static const struct {
		const char *z, *use, *u, *v;
		size_t bits;
		const char *result;
	} vec[] = {
	    {"fd4f9daba331a0a50a4e4c5fdf55034267", "CFB", "93bc3d509a00",
	        "beb773b718a4642d40ac3f80d34f2361b7c5f47cf7f69bb397a45b00", 744,
	        "cf21b4a548a004a64acf5e5a5a199cfa3407fe691f0eb73a7ec664a973bb22c9fd79155cd0972e"
	        "0f2b1c135e61749723833e7cfc9e82df2e74e46ab0c3a9a25d64016c1de347bb48d134d9c92e37"
	        "043497839c57aec585b0f434c79ff5"},
	    {"ffe8361b9fdfe01398db23a1b2a1bc35ffe737", "IDENTITY", "", "ff26e2f76cb6fbf1", 659,
	        "007d2cb3d906980fbce09d1bfe42b8d3c827c2d9fed082e0344e40c80f08c0a9eb629068d66164"
	        "fbf03b3e18124f8ae3400647cf06f6c43be3740a49ec96c25f9115cff6625822878a451c601fa6"
	        "bf749d2321"},
	    {"e89fc5304cf46c1cf7d1f5de5d3d1ec7eddc80b0386700", "SECRET",
	        "e602bc959fd97af0405649e0c80e02e9dd64e9d79e698292b043c79dfa9f9261", "", 431,
	        "3a8e893b8b76cdddbf87845b2567fa7152577829f6a55b73cb82d4a1f0342a051d6e50e20ec2f9"
	        "6bc4de38d7d0d79a9caf99e1d574b9"},
	};

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		size_t z_len, u_len, v_len, out_len = (vec[i].bits + 7) / 8;
		uint8_t *z = unhex(vec[i].z, &z_len), *u = unhex(vec[i].u, &u_len);
		uint8_t *v = unhex(vec[i].v, &v_len), *out = malloc(out_len);

		assert_non_null(out);
		assert_int_equal(credential_kdfe(z, z_len, vec[i].use, u_len > 0 ? u : NULL, u_len,
		                     v_len > 0 ? v : NULL, v_len, out, vec[i].bits, &cerr),
		    0);
		assert_hex_equal(out, out_len, vec[i].result);
		free(z);
		free(u);
		free(v);
		free(out);
	}
}

static void
test_kdf_bad_arguments(void **state)
{
	uint8_t key[32] = {1}, out[32];

	assert_int_equal(
	    credential_kdfa(key, sizeof(key), "STORAGE", NULL, 0, NULL, 0, out, 0, &cerr), -1);
	assert_non_null(strstr(cerr.msg, "bits"));
	assert_int_equal(credential_kdfa(key, sizeof(key), NULL, NULL, 0, NULL, 0, out, 128, &cerr), -1);
	assert_int_equal(
	    credential_kdfa(key, sizeof(key), "STORAGE", NULL, 5, NULL, 0, out, 128, &cerr), -1);
	assert_int_equal(credential_kdfa(NULL, 0, "STORAGE", NULL, 0, NULL, 0, out, 128, &cerr), -1);
	assert_int_equal(credential_kdfe(key, 32, "IDENTITY", NULL, 0, NULL, 0, out, 65537, &cerr), -1);
	assert_int_equal(credential_kdfe(NULL, 3, "IDENTITY", NULL, 0, NULL, 0, out, 256, &cerr), -1);
}

/* ---- Names ---- */

/* An ECC AK and an ECC EK of a vTPM, with the Names the TPM gave them
 * (tpm2_createak -n, tpm2_readpublic). */
static const char ak_public_hex[] =
    "00580023000b00050072000000100018000b000300100020d17c81d85233c54add5905bdb2aaeb5940eeca782"
    "a8efaecab75b922f2e50c2f0020be5d3a9561e844f528a8ea3ea97c494ef9fbedaa7171241d71be62a96346591"
    "e";
static const char ak_name_hex[] =
    "000bd2cc16cf82559ff2d3e372c9f15d8e22f02b92178e5a8acf10ccaa24be549d92";
static const char ek_public_hex[] =
    "007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00"
    "06008000430010000300100020416ba278453021a49ecb65a1bb52f4a7033c7ca3d74bed64b0930d37babbc06b"
    "00208ccef4b7d94ccc8069c9df8db301c8d351cd369d5cb33cd0ceda1e1b442887f9";
static const char ek_name_hex[] =
    "000b538de5972f9a20d39616747c0427a039a7d87f69fc87709bc6b48a44162216c4";

static void
test_public_name(void **state)
{
	size_t len;
	uint8_t *pub, name[CREDENTIAL_NAME_LEN];

	pub = unhex(ak_public_hex, &len);
	assert_int_equal(credential_public_name(pub, len, name, &cerr), 0);
	assert_hex_equal(name, sizeof(name), ak_name_hex);
	free(pub);
	pub = unhex(ek_public_hex, &len);
	assert_int_equal(credential_public_name(pub, len, name, &cerr), 0);
	assert_hex_equal(name, sizeof(name), ek_name_hex);
	free(pub);
}

static void
test_public_name_refused(void **state)
{
	size_t len;
	uint8_t *pub = unhex(ak_public_hex, &len), *copy, name[CREDENTIAL_NAME_LEN];

	/* Every truncation, with the size field left as it was or made to
	 * match: never read past the buffer, always refused. */
	for (size_t cut = 0; cut < len; cut++) {
		copy = dup_exact(pub, cut);
		assert_int_equal(credential_public_name(copy, cut, name, &cerr), -1);
		if (cut >= 2) {
			put16(copy, (unsigned)(cut - 2));
			assert_int_equal(credential_public_name(copy, cut, name, &cerr), -1);
		}
		free(copy);
	}
	assert_int_equal(credential_public_name(NULL, 0, name, &cerr), -1);

	/* A byte after the TPMT_PUBLIC, inside the TPM2B. */
	copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, pub, len);
	copy[len] = 0;
	put16(copy, (unsigned)(len - 1));
	assert_int_equal(credential_public_name(copy, len + 1, name, &cerr), -1);
	assert_non_null(strstr(cerr.msg, "after the TPMT_PUBLIC"));
	free(copy);

	/* nameAlg SHA-1. */
	copy = dup_exact(pub, len);
	put16(copy + 4, TPM2_ALG_SHA1);
	assert_int_equal(credential_public_name(copy, len, name, &cerr), -1);
	assert_non_null(strstr(cerr.msg, "nameAlg 0x0004"));
	free(copy);
	free(pub);
}

/* ---- secret sharing (a session's salt) ---- */

/* A salt shared with a key (RSA or ECC) is what its owner recovers for
 * "SECRET", and not for another purpose. */
static void
share_roundtrip(int rsa)
{
	EVP_PKEY *key = new_key(rsa);
	TPMT_PUBLIC pub;
	uint8_t seed[CREDENTIAL_SEED_LEN], got[32], *public, *enc = NULL;
	size_t public_len, enc_len = 0;

	ek_template(key, &pub);
	public = marshal_public(&pub, &public_len);
	assert_int_equal(
	    credential_share_secret(public, public_len, "SECRET", seed, &enc, &enc_len, &cerr), 0);
	assert_int_equal(enc_len, rsa ? 2 + 256 : 2 + 68);
	assert_int_equal(soft_seed_for("SECRET", key, &pub, enc, enc_len, got), 0);
	assert_memory_equal(got, seed, sizeof(seed));
	if (soft_seed_for("IDENTITY", key, &pub, enc, enc_len, got) == 0)
		assert_memory_not_equal(got, seed, sizeof(seed));
	free(enc);
	free(public);
	EVP_PKEY_free(key);
}

static void
test_share_secret(void **state)
{
	share_roundtrip(0);
	share_roundtrip(1);
}

static void
test_share_secret_refused(void **state)
{
	EVP_PKEY *key = new_key(0);
	TPMT_PUBLIC pub;
	uint8_t seed[CREDENTIAL_SEED_LEN], *public, *enc = (uint8_t *)1;
	size_t public_len, enc_len = 1;

	ek_template(key, &pub);
	public = marshal_public(&pub, &public_len);
	assert_int_equal(credential_share_secret(public, public_len, "A LABEL FAR TOO LONG", seed,
	                     &enc, &enc_len, &cerr),
	    -1);
	assert_null(enc);
	assert_int_equal(enc_len, 0);
	assert_non_null(strstr(cerr.msg, "label"));
	assert_int_equal(
	    credential_share_secret(public, public_len - 1, "SECRET", seed, &enc, &enc_len, &cerr), -1);
	assert_null(enc);
	free(public);
	EVP_PKEY_free(key);
}

/* ---- MakeCredential ---- */

/* Makes a credential of secret_len bytes for a fresh EK (RSA or ECC) and
 * checks that its owner recovers it for the right Name only. */
static void
roundtrip(int rsa, size_t secret_len)
{
	EVP_PKEY *key = new_key(rsa);
	TPMT_PUBLIC pub;
	uint8_t name[CREDENTIAL_NAME_LEN], other[CREDENTIAL_NAME_LEN],
	    secret[CREDENTIAL_MAX_SECRET];
	uint8_t seed[32], out[64], *ek, *blob = NULL, *enc = NULL;
	size_t ek_len, blob_len = 0, enc_len = 0;

	ek_template(key, &pub);
	ek = marshal_public(&pub, &ek_len);
	fill_name(name, 0x5a);
	fill_name(other, 0x5b);
	for (size_t i = 0; i < secret_len; i++)
		secret[i] = (uint8_t)(0xc0 + i);
	assert_int_equal(make(ek, ek_len, name, sizeof(name), secret, secret_len, &blob, &blob_len,
	                     &enc, &enc_len),
	    0);
	assert_int_equal(blob_len, 2 + 2 + 32 + 2 + secret_len);
	assert_int_equal(get16(blob), blob_len - 2);
	assert_int_equal(enc_len, rsa ? 2 + 256 : 2 + 68);
	assert_int_equal(get16(enc), enc_len - 2);
	assert_int_equal(soft_seed(key, &pub, enc, enc_len, seed), 0);
	assert_int_equal(soft_unwrap(seed, name, blob, blob_len, out), (int)secret_len);
	assert_memory_equal(out, secret, secret_len);
	assert_int_equal(soft_unwrap(seed, other, blob, blob_len, out), -1);
	blob[blob_len - 1] ^= 1;
	assert_int_equal(soft_unwrap(seed, name, blob, blob_len, out), -1);
	free(blob);
	free(enc);
	free(ek);
	EVP_PKEY_free(key);
}

static void
test_make_rsa(void **state)
{
	roundtrip(1, 32);
	roundtrip(1, 1);
}

static void
test_make_ecc(void **state)
{
	roundtrip(0, 32);
	roundtrip(0, 16);
}

static void
test_make_fresh_each_time(void **state)
{
	size_t ek_len, b1_len, b2_len, e1_len, e2_len;
	uint8_t *ek = unhex(ek_public_hex, &ek_len), name[CREDENTIAL_NAME_LEN], secret[32] = {7};
	uint8_t *b1, *b2, *e1, *e2;

	fill_name(name, 1);
	assert_int_equal(make(ek, ek_len, name, sizeof(name), secret, sizeof(secret), &b1, &b1_len,
	                     &e1, &e1_len),
	    0);
	assert_int_equal(make(ek, ek_len, name, sizeof(name), secret, sizeof(secret), &b2, &b2_len,
	                     &e2, &e2_len),
	    0);
	assert_int_equal(b1_len, b2_len);
	assert_int_equal(e1_len, e2_len);
	assert_memory_not_equal(b1, b2, b1_len);
	assert_memory_not_equal(e1, e2, e1_len);
	free(b1);
	free(b2);
	free(e1);
	free(e2);
	free(ek);
}

/* tpm-test-vectors ecc_labeled_encaps "12_P256_SHA256_256_restricted": its
 * EK has AES-256 (0x0100 bits); secret sharing does not depend on the
 * symmetric algorithm, so the test makes it AES-128 (0x0080), the only one
 * credential_make accepts. */
static const char vec12_public_hex[] =
    "005a0023000b00030460000000060080004300100003001000"
    "20fe4cf1f3e8f583c19e1af6190a7c20751658914a93cd77efb871cb1557377560"
    "002007b6b7c55bea1d17b1a9d96f367cf315b2942d517fd8642e9d9157036831c4d5";
static const char vec12_ephemeral_hex[] =
    "9efafbaf83563f8ac5a27815eae1017ca78c92f9cde976b1a2e0ad95b8a19bc1";
static const char vec12_seed_hex[] =
    "2a03ff2b874e44d36a567e67a0bf08227b9e65a0e9ca5215d4a9e573c23159a1";
static const char vec12_ciphertext_hex[] =
    "0044" /* the TPM2B_ENCRYPTED_SECRET's size */
    "002017ca41bd94c7f12436cf135ff1852408ef6a1ee1989e4e6250ef73c348dd6fa9"
    "0020346f6016d6f6a2ef8e07df6d7b53b362005fc21cda1e1ab25e61f38a87e017b8";

/* A P-256 private key with scalar d (32 bytes), as an ECPrivateKey
 * without a public key (OpenSSL computes it). */
static EVP_PKEY *
p256_private(const uint8_t *d)
{
	static const uint8_t head[] = {0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20};
	static const uint8_t tail[] = {
	    0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
	uint8_t der[sizeof(head) + 32 + sizeof(tail)];
	const uint8_t *p = der;
	EVP_PKEY *key;

	memcpy(der, head, sizeof(head));
	memcpy(der + sizeof(head), d, 32);
	memcpy(der + sizeof(head) + 32, tail, sizeof(tail));
	key = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, sizeof(der));
	assert_non_null(key);
	return key;
}

static void
test_make_ecc_known_answer(void **state)
{
	size_t ek_len, d_len, seed_len;
	uint8_t *ek = unhex(vec12_public_hex, &ek_len), *d = unhex(vec12_ephemeral_hex, &d_len);
	uint8_t *seed = unhex(vec12_seed_hex, &seed_len);
	uint8_t name[CREDENTIAL_NAME_LEN], secret[20], out[64], *blob, *enc;
	size_t blob_len, enc_len;

	fill_name(name, 0x33);
	memset(secret, 0x42, sizeof(secret));
	armed_ephemeral = p256_private(d);
	assert_int_equal(make(ek, ek_len, name, sizeof(name), secret, sizeof(secret), &blob,
	                     &blob_len, &enc, &enc_len),
	    0);
	assert_null(armed_ephemeral);
	assert_hex_equal(enc, enc_len, vec12_ciphertext_hex);
	assert_int_equal(soft_unwrap(seed, name, blob, blob_len, out), (int)sizeof(secret));
	assert_memory_equal(out, secret, sizeof(secret));
	free(blob);
	free(enc);
	free(seed);
	free(d);
	free(ek);
}

/* An ephemeral point whose x has a leading zero byte keeps its 32-byte
 * size in the encrypted secret (the TPM uses x as marshalled, so the seed
 * depends on it), and the credential still opens. */
static void
test_make_ecc_leading_zero(void **state)
{
	EVP_PKEY *ek_key = new_key(0), *eph = NULL;
	TPMT_PUBLIC pub;
	uint8_t q[65], name[CREDENTIAL_NAME_LEN], secret[32] = {9}, seed[32], out[64];
	uint8_t *ek, *blob, *enc;
	size_t q_len, ek_len, blob_len, enc_len;

	for (int i = 0; i < 100000 && eph == NULL; i++) {
		eph = new_key(0);
		assert_int_equal(EVP_PKEY_get_octet_string_param(
		                     eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, q, sizeof(q), &q_len),
		    1);
		if (q[1] != 0) {
			EVP_PKEY_free(eph);
			eph = NULL;
		}
	}
	assert_non_null(eph);
	ek_template(ek_key, &pub);
	ek = marshal_public(&pub, &ek_len);
	fill_name(name, 0x77);
	armed_ephemeral = eph;
	assert_int_equal(make(ek, ek_len, name, sizeof(name), secret, sizeof(secret), &blob,
	                     &blob_len, &enc, &enc_len),
	    0);
	assert_int_equal(enc_len, 2 + 68);
	assert_int_equal(get16(enc + 2), 32);
	assert_memory_equal(enc + 4, q + 1, 32);
	assert_int_equal(soft_seed(ek_key, &pub, enc, enc_len, seed), 0);
	assert_int_equal(soft_unwrap(seed, name, blob, blob_len, out), (int)sizeof(secret));
	assert_memory_equal(out, secret, sizeof(secret));
	free(blob);
	free(enc);
	free(ek);
	EVP_PKEY_free(ek_key);
}

/* The ways an EK is changed into one credential_make must refuse. */
enum mutation {
	MUT_KEYEDHASH,
	MUT_SIGNING,
	MUT_NOT_RESTRICTED,
	MUT_SHA1_NAMEALG,
	MUT_AES256,
	MUT_SYM_NULL,
	MUT_RSA1024,
	MUT_RSA_EXPONENT3,
	MUT_RSA_OAEP_SCHEME,
	MUT_P384,
	MUT_ECC_OFF_CURVE,
	MUT_ECC_ECDH_SCHEME,
};

static const struct {
	enum mutation m;
	int rsa;
	const char *reason; /* expected in cerr.msg */
} mutations[] = {
    {MUT_KEYEDHASH, 1, "neither RSA"},
    {MUT_SIGNING, 1, "restricted decryption"},
    {MUT_NOT_RESTRICTED, 0, "restricted decryption"},
    {MUT_SHA1_NAMEALG, 1, "nameAlg 0x0004"},
    {MUT_SHA1_NAMEALG, 0, "nameAlg 0x0004"},
    {MUT_AES256, 1, "not AES-128-CFB"},
    {MUT_SYM_NULL, 0, "not AES-128-CFB"},
    {MUT_RSA1024, 1, "RSA-1024"},
    {MUT_RSA_EXPONENT3, 1, "exponent 3"},
    {MUT_RSA_OAEP_SCHEME, 1, "scheme 0x0017"},
    {MUT_P384, 0, "curve 0x0004"},
    {MUT_ECC_OFF_CURVE, 0, "not a point of NIST P-256"},
    {MUT_ECC_ECDH_SCHEME, 0, "scheme 0x0019"},
};

static void
mutate(TPMT_PUBLIC *pub, enum mutation m)
{
	switch (m) {
	case MUT_KEYEDHASH:
		memset(&pub->parameters, 0, sizeof(pub->parameters));
		memset(&pub->unique, 0, sizeof(pub->unique));
		pub->type = TPM2_ALG_KEYEDHASH;
		pub->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
		pub->unique.keyedHash.size = 32;
		break;
	case MUT_SIGNING: pub->objectAttributes |= TPMA_OBJECT_SIGN_ENCRYPT; break;
	case MUT_NOT_RESTRICTED: pub->objectAttributes &= ~TPMA_OBJECT_RESTRICTED; break;
	case MUT_SHA1_NAMEALG:
		pub->nameAlg = TPM2_ALG_SHA1;
		pub->authPolicy.size = 20;
		break;
	case MUT_AES256: pub->parameters.rsaDetail.symmetric.keyBits.aes = 256; break;
	case MUT_SYM_NULL: pub->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL; break;
	case MUT_RSA1024:
		pub->parameters.rsaDetail.keyBits = 1024;
		pub->unique.rsa.size = 128;
		break;
	case MUT_RSA_EXPONENT3: pub->parameters.rsaDetail.exponent = 3; break;
	case MUT_RSA_OAEP_SCHEME:
		pub->parameters.rsaDetail.scheme.scheme = TPM2_ALG_OAEP;
		pub->parameters.rsaDetail.scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
		break;
	case MUT_P384:
		pub->parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
		pub->unique.ecc.x.size = pub->unique.ecc.y.size = 48;
		break;
	case MUT_ECC_OFF_CURVE: pub->unique.ecc.y.buffer[31] ^= 1; break;
	case MUT_ECC_ECDH_SCHEME:
		pub->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDH;
		pub->parameters.eccDetail.scheme.details.ecdh.hashAlg = TPM2_ALG_SHA256;
		break;
	}
}

/* credential_make must fail with outputs cleared and reason in the error. */
static void
assert_refused(const uint8_t *ek, size_t ek_len, const uint8_t *name, size_t name_len,
    const uint8_t *secret, size_t secret_len, const char *reason)
{
	uint8_t *blob = (uint8_t *)1, *enc = (uint8_t *)1;
	size_t blob_len = 1, enc_len = 1;

	assert_int_equal(
	    make(ek, ek_len, name, name_len, secret, secret_len, &blob, &blob_len, &enc, &enc_len),
	    -1);
	assert_null(blob);
	assert_null(enc);
	assert_int_equal(blob_len, 0);
	assert_int_equal(enc_len, 0);
	if (reason != NULL && strstr(cerr.msg, reason) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", cerr.msg, reason);
}

static void
test_make_refuses_eks(void **state)
{
	EVP_PKEY *keys[2] = {new_key(0), new_key(1)};
	uint8_t name[CREDENTIAL_NAME_LEN], secret[32] = {1}, *ek;
	size_t ek_len;
	TPMT_PUBLIC pub;

	fill_name(name, 9);
	for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
		ek_template(keys[mutations[i].rsa], &pub);
		mutate(&pub, mutations[i].m);
		ek = marshal_public(&pub, &ek_len);
		assert_refused(
		    ek, ek_len, name, sizeof(name), secret, sizeof(secret), mutations[i].reason);
		free(ek);
	}
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
}

static void
test_make_refuses_malformed(void **state)
{
	size_t ek_len;
	uint8_t *ek = unhex(ek_public_hex, &ek_len), *copy;
	uint8_t name[CREDENTIAL_NAME_LEN], sha1_name[22], secret[33] = {1};

	fill_name(name, 3);
	/* Every truncation of a real EK's public area. */
	for (size_t cut = 0; cut < ek_len; cut++) {
		copy = dup_exact(ek, cut);
		assert_refused(copy, cut, name, sizeof(name), secret, 32, "public area");
		if (cut >= 2) {
			put16(copy, (unsigned)(cut - 2));
			assert_refused(copy, cut, name, sizeof(name), secret, 32, "public area");
		}
		free(copy);
	}
	/* AK Names: SHA-1, a SHA-256-sized digest under another nameAlg, short. */
	put16(sha1_name, TPM2_ALG_SHA1);
	memset(sha1_name + 2, 4, 20);
	assert_refused(ek, ek_len, sha1_name, sizeof(sha1_name), secret, 32, "SHA-256 Name");
	put16(name, TPM2_ALG_SHA384);
	assert_refused(ek, ek_len, name, sizeof(name), secret, 32, "nameAlg 0x000c");
	fill_name(name, 3);
	assert_refused(ek, ek_len, name, sizeof(name) - 1, secret, 32, "SHA-256 Name");
	/* Credentials: empty, and longer than the EK's nameAlg digest. */
	assert_refused(ek, ek_len, name, sizeof(name), secret, 0, "credential");
	assert_refused(ek, ek_len, name, sizeof(name), secret, 33, "credential: 33 bytes");
	assert_int_equal(
	    credential_make(ek, ek_len, name, sizeof(name), secret, 32, NULL, NULL, NULL, NULL, &cerr),
	    -1);
	free(ek);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kdfa_tcg_selftest),
	    cmocka_unit_test(test_kdfa_partial_byte),
	    cmocka_unit_test(test_kdfe_vectors),
	    cmocka_unit_test(test_kdf_bad_arguments),
	    cmocka_unit_test(test_public_name),
	    cmocka_unit_test(test_public_name_refused),
	    cmocka_unit_test(test_share_secret),
	    cmocka_unit_test(test_share_secret_refused),
	    cmocka_unit_test(test_make_rsa),
	    cmocka_unit_test(test_make_ecc),
	    cmocka_unit_test(test_make_fresh_each_time),
	    cmocka_unit_test(test_make_ecc_known_answer),
	    cmocka_unit_test(test_make_ecc_leading_zero),
	    cmocka_unit_test(test_make_refuses_eks),
	    cmocka_unit_test(test_make_refuses_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
