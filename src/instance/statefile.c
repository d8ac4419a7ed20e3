/*
 * statefile.c: the format of one state blob at rest.
 *
 *   off len  field
 *     0   8  magic "VTPMDST\0"
 *     8   2  format version (1), big-endian
 *    10   1  kind: 1 permanent, 2 volatile, 3 savestate
 *    11   1  protection: 1 AES-256-GCM, 2 none (SHA-256 checksum only)
 *    12   1  TPM version the blob belongs to: 1 (TPM 1.2) or 2 (TPM 2.0)
 *    13   3  bit 23: a snapshot of this permanent state may be out (the
 *            first client command retires it: instance_snapshot.c); bits
 *            0..22: writes since the last one a client's command caused
 *            (vtpmd's own: manufacture, the orderly shutdown at power-off,
 *            a snapshot's mark), big-endian, saturating; zero in files of
 *            older vtpmd and in volatile and savestate files
 *    16   8  generation, big-endian: of permanent state, incremented by
 *            every write; of volatile and savestate, the generation of the
 *            permanent state it was taken with (its stamp)
 *    24   4  payload length, big-endian
 *    28  12  GCM nonce (zero when unprotected)
 *    40   n  payload, encrypted when protected
 *  40+n  16  GCM tag over header and payload, or
 *  40+n  32  SHA-256 of header and payload when unprotected
 *
 * The whole header is authenticated (GCM additional data), so a kind,
 * TPM version or generation cannot be changed without detection. This
 * module does no I/O; store.c reads and writes the files.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "instance.h"

#define SF_MAGIC "VTPMDST"
#define SF_VERSION 1
#define SF_HEADER_LEN 40
#define SF_NONCE_OFF 28
#define SF_NONCE_LEN 12
#define SF_GCM_TAG_LEN 16
#define SF_SHA_LEN 32
#define SF_PROT_GCM 1
#define SF_PROT_NONE 2

static const char *const statefile_errs[] = {
	[STATEFILE_OK] = "ok",
	[STATEFILE_TRUNCATED] = "file is truncated",
	[STATEFILE_BAD_MAGIC] = "not a vtpmd state file",
	[STATEFILE_FUTURE_FORMAT] = "written by a newer vtpmd (unknown format version)",
	[STATEFILE_WRONG_KIND] = "holds a different kind of state than its name says",
	[STATEFILE_WRONG_TPM] = "holds the state of a different TPM version",
	[STATEFILE_TOO_LARGE] = "declared payload is larger than any TPM state",
	[STATEFILE_TRAILING] = "has bytes after its end (corrupted)",
	[STATEFILE_NEEDS_KEY] = "is encrypted but the instance was given no key",
	[STATEFILE_UNPROTECTED] = "is unprotected but the instance was given a key (refusing a downgrade)",
	[STATEFILE_AUTH_FAILED] = "failed authentication: wrong key, or the file was altered",
	[STATEFILE_NOMEM] = "out of memory",
};

const char *
statefile_strerror(enum statefile_verdict err)
{
	if ((size_t)err >= sizeof(statefile_errs) / sizeof(statefile_errs[0]))
		return "unknown error";
	return statefile_errs[err];
}

static void
sf_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
sf_get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

size_t
statefile_encoded_size(size_t payload_len, bool encrypted)
{
	return SF_HEADER_LEN + payload_len + (encrypted ? SF_GCM_TAG_LEN : SF_SHA_LEN);
}

/* AES-256-GCM over (aad, in) into out and tag (16 bytes), with a 12-byte
 * nonce; decrypts when enc is 0. Also the cipher of stateblob.c. Returns
 * 0, or -1 (on decryption: authentication failed). */
int
statefile_gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
    size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx;
	int n, ret = -1;

	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -1;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SF_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SF_GCM_TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SF_GCM_TAG_LEN, tag) != 1)
		goto out;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

/*
 * Encodes payload as a state file into out (out_len must be at least
 * statefile_encoded_size). key is 32 bytes, or NULL for an unprotected
 * file. Returns the encoded length, or -1.
 */
int
statefile_encode(const struct statefile_info *info, const uint8_t *key,
    const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_len)
{
	size_t total = statefile_encoded_size(payload_len, key != NULL);

	if (payload_len > STATEFILE_MAX_PAYLOAD || out_len < total)
		return -1;
	memset(out, 0, SF_HEADER_LEN);
	memcpy(out, SF_MAGIC, sizeof(SF_MAGIC));
	sf_put_be(out + 8, SF_VERSION, 2);
	out[10] = (uint8_t)info->kind;
	out[11] = key != NULL ? SF_PROT_GCM : SF_PROT_NONE;
	out[12] = (uint8_t)info->tpm_version;
	sf_put_be(out + 13,
	    (info->since_client & STATEFILE_SINCE_CLIENT_MAX) |
		(info->snapshot_out ? STATEFILE_SNAPSHOT_BIT : 0),
	    3);
	sf_put_be(out + 16, info->generation, 8);
	sf_put_be(out + 24, payload_len, 4);
	if (key == NULL) {
		memcpy(out + SF_HEADER_LEN, payload, payload_len);
		SHA256(out, SF_HEADER_LEN + payload_len, out + SF_HEADER_LEN + payload_len);
		return (int)total;
	}
	if (RAND_bytes(out + SF_NONCE_OFF, SF_NONCE_LEN) != 1)
		return -1;
	if (statefile_gcm(1, key, out + SF_NONCE_OFF, out, SF_HEADER_LEN, payload, payload_len,
		out + SF_HEADER_LEN, out + SF_HEADER_LEN + payload_len) != 0)
		return -1;
	return (int)total;
}

static enum statefile_verdict
sf_check_header(const uint8_t *in, size_t in_len, const struct statefile_info *expect,
    bool have_key, size_t *payload_len)
{
	size_t plen, trailer;

	if (in_len < 8 || memcmp(in, SF_MAGIC, sizeof(SF_MAGIC)) != 0)
		return in_len < 8 ? STATEFILE_TRUNCATED : STATEFILE_BAD_MAGIC;
	if (in_len < SF_HEADER_LEN)
		return STATEFILE_TRUNCATED;
	if (sf_get_be(in + 8, 2) != SF_VERSION)
		return STATEFILE_FUTURE_FORMAT;
	if (in[11] != SF_PROT_GCM && in[11] != SF_PROT_NONE)
		return STATEFILE_FUTURE_FORMAT;
	if (in[10] != expect->kind)
		return STATEFILE_WRONG_KIND;
	if (in[12] != expect->tpm_version)
		return STATEFILE_WRONG_TPM;
	plen = (size_t)sf_get_be(in + 24, 4);
	if (plen > STATEFILE_MAX_PAYLOAD)
		return STATEFILE_TOO_LARGE;
	trailer = in[11] == SF_PROT_GCM ? SF_GCM_TAG_LEN : SF_SHA_LEN;
	if (in_len < SF_HEADER_LEN + plen + trailer)
		return STATEFILE_TRUNCATED;
	if (in_len > SF_HEADER_LEN + plen + trailer)
		return STATEFILE_TRAILING;
	if (in[11] == SF_PROT_GCM && !have_key)
		return STATEFILE_NEEDS_KEY;
	if (in[11] == SF_PROT_NONE && have_key)
		return STATEFILE_UNPROTECTED;
	*payload_len = plen;
	return STATEFILE_OK;
}

/*
 * Decodes a state file. expect gives the kind and TPM version the caller
 * wants; key is 32 bytes or NULL. On STATEFILE_OK, *payload is a malloc'd
 * copy of the plaintext (the caller wipes and frees it with free()) and
 * *generation is set.
 * Nothing is allocated on error.
 */
enum statefile_verdict
statefile_decode(const uint8_t *key, const uint8_t *in, size_t in_len,
    const struct statefile_info *expect, uint64_t *generation, uint8_t **payload,
    size_t *payload_len)
{
	uint8_t digest[SF_SHA_LEN];
	enum statefile_verdict err;
	size_t plen = 0;
	uint8_t *plain;

	err = sf_check_header(in, in_len, expect, key != NULL, &plen);
	if (err != STATEFILE_OK)
		return err;
	/* One spare byte so that an empty payload still gets a real pointer. */
	plain = malloc(plen + 1);
	if (plain == NULL)
		return STATEFILE_NOMEM;
	if (key == NULL) {
		SHA256(in, SF_HEADER_LEN + plen, digest);
		if (CRYPTO_memcmp(digest, in + SF_HEADER_LEN + plen, SF_SHA_LEN) != 0) {
			free(plain);
			return STATEFILE_AUTH_FAILED;
		}
		memcpy(plain, in + SF_HEADER_LEN, plen);
	} else if (statefile_gcm(0, key, in + SF_NONCE_OFF, in, SF_HEADER_LEN, in + SF_HEADER_LEN, plen,
	               plain, (uint8_t *)(in + SF_HEADER_LEN + plen)) != 0) {
		OPENSSL_cleanse(plain, plen + 1);
		free(plain);
		return STATEFILE_AUTH_FAILED;
	}
	*generation = sf_get_be(in + 16, 8);
	*payload = plain;
	*payload_len = plen;
	return STATEFILE_OK;
}
