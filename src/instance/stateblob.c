/*
 * stateblob.c: the format of a state blob that leaves the worker through
 * the control channel (GET_STATEBLOB, and back in by SET_STATEBLOB): the
 * libtpms blob encrypted and authenticated, never in the clear.
 *
 *   off   len  field
 *     0     8  magic "VTPMDBL\0"
 *     8     2  format version (1), big-endian
 *    10     1  kind: 1 permanent, 2 volatile, 3 savestate
 *    11     1  TPM version the blob belongs to: 1 (TPM 1.2) or 2 (TPM 2.0)
 *    12     1  key source: 1 this host's blob key, 2 the instance's state key
 *              (a standalone instance), 3 a transfer key wrapped to a
 *              Binding Key (migration, issue #13; refused today)
 *    13     3  zero
 *    16    16  instance UUID (zero for a standalone instance)
 *    32     8  generation of the instance's permanent state, big-endian
 *    40    32  key id: which key the content key comes from (source 1: a
 *              digest of this host's sealed blob key; 2: derived from the
 *              state key; 3: the destination Binding Key's Name digest)
 *    72     2  W, the wrapped key's length, big-endian (0 for sources 1, 2)
 *    74     W  wrapped key (source 3: the transfer key, RSA-OAEP to the BK)
 *  74+W    12  GCM nonce (random)
 *  86+W     4  payload length n, big-endian
 *  90+W     n  payload: the libtpms blob, AES-256-GCM encrypted
 *  90+W+n  16  GCM tag; the additional data is every byte before the payload
 *
 * The content key of sources 1 and 2 is HKDF-SHA256 (RFC 5869, no salt)
 * of the host's or the state key with info "vtpmd state blob v1" followed
 * by the 16 UUID bytes, so each instance has its own. This module does no
 * I/O and holds no key; instance_ctrl.c uses it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "instance.h"

#define SB_MAGIC       "VTPMDBL"
#define SB_VERSION     1
#define SB_FIXED_LEN   74 /* the header up to the wrapped key */
#define SB_NONCE_LEN   12
#define SB_TAG_LEN     16
#define SB_WRAPPED_MAX 512
#define SB_INFO        "vtpmd state blob v1"
#define SB_ID_INFO     "vtpmd state blob key id v1"

static const char *const stateblob_errs[] = {
    [STATEBLOB_OK] = "ok",
    [STATEBLOB_TRUNCATED] = "is truncated",
    [STATEBLOB_NOT_WRAPPED] = "is no wrapped vtpmd state blob (no plaintext state is taken)",
    [STATEBLOB_FUTURE_FORMAT] = "has an unknown format version or key source",
    [STATEBLOB_TRANSFER] = "is wrapped to a Binding Key for migration (not taken yet)",
    [STATEBLOB_OTHER_KEY] = "is wrapped for another host (or another state key)",
    [STATEBLOB_OTHER_INSTANCE] = "is another instance's",
    [STATEBLOB_TOO_LARGE] = "declares a payload larger than any TPM state",
    [STATEBLOB_TRAILING] = "has bytes after its end",
    [STATEBLOB_AUTH_FAILED] = "failed authentication (altered, or not made with this key)",
    [STATEBLOB_NOMEM] = "could not be read: out of memory",
};

const char *
stateblob_strerror(enum stateblob_verdict v)
{
	if ((size_t)v >= sizeof(stateblob_errs) / sizeof(stateblob_errs[0]))
		return "unknown error";
	return stateblob_errs[v];
}

static void
sb_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
sb_get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* HKDF-SHA256 of ikm (no salt) with info label || uuid, out_len bytes.
 * Returns 0, or -1. */
static int
sb_hkdf(const uint8_t *ikm, size_t ikm_len, const char *label,
    const uint8_t uuid[STATEBLOB_UUID_LEN], uint8_t *out, size_t out_len)
{
	char digest[] = "SHA256", info[64];
	int label_len = snprintf(info, sizeof(info), "%s", label);
	OSSL_PARAM params[4];
	EVP_KDF_CTX *ctx;
	EVP_KDF *kdf;
	int rc = -1;

	if (label_len < 0 || (size_t)label_len + STATEBLOB_UUID_LEN > sizeof(info))
		return -1;
	memcpy(info + label_len, uuid, STATEBLOB_UUID_LEN);
	kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_INFO, info, (size_t)label_len + STATEBLOB_UUID_LEN);
	params[3] = OSSL_PARAM_construct_end();
	if (ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* The content key of instance uuid under a host's blob key (source 1);
 * the manager derives it and hands it to the worker. 0, or -1. */
int
stateblob_instance_key(const uint8_t host_key[STATE_KEY_LEN],
    const uint8_t uuid[STATEBLOB_UUID_LEN], uint8_t out[STATE_KEY_LEN])
{
	return sb_hkdf(host_key, STATE_KEY_LEN, SB_INFO, uuid, out, STATE_KEY_LEN);
}

/* Fills k for a standalone instance whose only key is its state key
 * (source 2): no UUID, the content key and the key id derived from the
 * state key. 0, or -1. */
int
stateblob_key_from_state_key(const uint8_t state_key[STATE_KEY_LEN], struct stateblob_key *k)
{
	memset(k, 0, sizeof(*k));
	k->source = STATEBLOB_SOURCE_STATE_KEY;
	if (sb_hkdf(state_key, STATE_KEY_LEN, SB_INFO, k->uuid, k->key, STATE_KEY_LEN) == -1 ||
	    sb_hkdf(state_key, STATE_KEY_LEN, SB_ID_INFO, k->uuid, k->key_id,
	        STATEBLOB_KEY_ID_LEN) == -1)
		return -1;
	return 0;
}

/*
 * Wraps payload (a libtpms blob of kind, of the instance's permanent
 * generation gen) under k into a malloc'd *out of *out_len bytes.
 * Returns 0, or -1 (out of memory, payload too large, a cipher failure).
 */
int
stateblob_wrap(const struct stateblob_key *k, enum state_kind kind, unsigned int tpm_version,
    uint64_t generation, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len)
{
	size_t aad_len = SB_FIXED_LEN + SB_NONCE_LEN + 4;
	uint8_t *b;

	if (len > STATEFILE_MAX_PAYLOAD || k->source == STATEBLOB_SOURCE_TRANSFER)
		return -1;
	b = calloc(1, aad_len + len + SB_TAG_LEN);
	if (b == NULL)
		return -1;
	memcpy(b, SB_MAGIC, sizeof(SB_MAGIC));
	sb_put_be(b + 8, SB_VERSION, 2);
	b[10] = (uint8_t)kind;
	b[11] = (uint8_t)tpm_version;
	b[12] = k->source;
	memcpy(b + 16, k->uuid, STATEBLOB_UUID_LEN);
	sb_put_be(b + 32, generation, 8);
	memcpy(b + 40, k->key_id, STATEBLOB_KEY_ID_LEN);
	sb_put_be(b + 72, 0, 2); /* no wrapped key: sources 1 and 2 */
	sb_put_be(b + SB_FIXED_LEN + SB_NONCE_LEN, len, 4);
	if (RAND_bytes(b + SB_FIXED_LEN, SB_NONCE_LEN) != 1 ||
	    statefile_gcm(1, k->key, b + SB_FIXED_LEN, b, aad_len, payload, len, b + aad_len,
	        b + aad_len + len) != 0) {
		free(b);
		return -1;
	}
	*out = b;
	*out_len = aad_len + len + SB_TAG_LEN;
	return 0;
}

/* Parses the header into *info; *wrapped_len and *payload_len from it. */
static enum stateblob_verdict
sb_parse(const uint8_t *in, size_t len, struct stateblob_info *info, size_t *wrapped_len,
    size_t *payload_len)
{
	size_t w, n;

	if (len < 8 || memcmp(in, SB_MAGIC, sizeof(SB_MAGIC)) != 0)
		return len < 8 ? STATEBLOB_TRUNCATED : STATEBLOB_NOT_WRAPPED;
	if (len < SB_FIXED_LEN)
		return STATEBLOB_TRUNCATED;
	if (sb_get_be(in + 8, 2) != SB_VERSION || in[12] < STATEBLOB_SOURCE_HOST ||
	    in[12] > STATEBLOB_SOURCE_TRANSFER)
		return STATEBLOB_FUTURE_FORMAT;
	info->kind = (enum state_kind)in[10];
	info->tpm_version = in[11];
	info->source = in[12];
	memcpy(info->uuid, in + 16, STATEBLOB_UUID_LEN);
	info->generation = sb_get_be(in + 32, 8);
	memcpy(info->key_id, in + 40, STATEBLOB_KEY_ID_LEN);
	w = (size_t)sb_get_be(in + 72, 2);
	if (w > SB_WRAPPED_MAX)
		return STATEBLOB_FUTURE_FORMAT;
	if (len < SB_FIXED_LEN + w + SB_NONCE_LEN + 4)
		return STATEBLOB_TRUNCATED;
	n = (size_t)sb_get_be(in + SB_FIXED_LEN + w + SB_NONCE_LEN, 4);
	if (n > STATEFILE_MAX_PAYLOAD)
		return STATEBLOB_TOO_LARGE;
	if (len < SB_FIXED_LEN + w + SB_NONCE_LEN + 4 + n + SB_TAG_LEN)
		return STATEBLOB_TRUNCATED;
	if (len > SB_FIXED_LEN + w + SB_NONCE_LEN + 4 + n + SB_TAG_LEN)
		return STATEBLOB_TRAILING;
	*wrapped_len = w;
	*payload_len = n;
	return STATEBLOB_OK;
}

/*
 * Opens a wrapped blob under k. *info is filled as soon as the header
 * parses (so that a refusal can name what the blob claims); on
 * STATEBLOB_OK it is authenticated and *payload is a malloc'd plaintext
 * (the caller wipes and frees it). The caller checks kind, TPM version
 * and generation. Nothing is allocated on error.
 */
enum stateblob_verdict
stateblob_unwrap(const struct stateblob_key *k, const uint8_t *in, size_t len,
    struct stateblob_info *info, uint8_t **payload, size_t *payload_len)
{
	enum stateblob_verdict v;
	size_t w = 0, n = 0, aad_len;
	uint8_t *plain;

	memset(info, 0, sizeof(*info));
	v = sb_parse(in, len, info, &w, &n);
	if (v != STATEBLOB_OK)
		return v;
	if (info->source == STATEBLOB_SOURCE_TRANSFER)
		return STATEBLOB_TRANSFER;
	if (info->source != k->source ||
	    CRYPTO_memcmp(info->key_id, k->key_id, STATEBLOB_KEY_ID_LEN) != 0)
		return STATEBLOB_OTHER_KEY;
	if (CRYPTO_memcmp(info->uuid, k->uuid, STATEBLOB_UUID_LEN) != 0)
		return STATEBLOB_OTHER_INSTANCE;
	aad_len = SB_FIXED_LEN + w + SB_NONCE_LEN + 4;
	plain = malloc(n + 1);
	if (plain == NULL)
		return STATEBLOB_NOMEM;
	if (statefile_gcm(0, k->key, in + SB_FIXED_LEN + w, in, aad_len, in + aad_len, n, plain,
	        (uint8_t *)(in + aad_len + n)) != 0) {
		OPENSSL_cleanse(plain, n + 1);
		free(plain);
		return STATEBLOB_AUTH_FAILED;
	}
	*payload = plain;
	*payload_len = n;
	return STATEBLOB_OK;
}
