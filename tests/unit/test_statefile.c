/*
 * test_statefile.c: the state file codec (src/instance/statefile.c): round trips,
 * the layout of the header, and every way a file is refused, including a
 * flipped bit at every position of a small file.
 *
 * Every decode reads a buffer of exactly the length it is given, so that
 * the sanitizers catch a read past it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "instance/instance.h"

#define HDR     40
#define GCM_TAG 16
#define SHA_LEN 32

static const uint8_t key[STATE_KEY_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87,
    0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

static const struct statefile_info perm2 = {
    .kind = STATE_PERMANENT,
    .tpm_version = 2,
    .generation = 7,
};

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint8_t *
make_payload(size_t len)
{
	uint8_t *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

/* Encodes payload into a malloc'd buffer of exactly the encoded size. */
static uint8_t *
encode(const struct statefile_info *info, const uint8_t *k, const uint8_t *payload, size_t plen,
    size_t *len)
{
	uint8_t *out;
	int n;

	*len = statefile_encoded_size(plen, k != NULL);
	out = malloc(*len);
	assert_non_null(out);
	n = statefile_encode(info, k, payload, plen, out, *len);
	assert_int_equal(n, *len);
	return out;
}

/* Decodes a copy of the first len bytes of in, made in a buffer of exactly
 * len bytes. On success the payload is compared with want and freed. */
static enum statefile_verdict
decode(const uint8_t *k, const uint8_t *in, size_t len, const struct statefile_info *expect,
    uint64_t *gen, const uint8_t *want, size_t want_len)
{
	uint8_t *copy = malloc(len > 0 ? len : 1), *payload = NULL;
	enum statefile_verdict err;
	size_t plen = 0;

	assert_non_null(copy);
	memcpy(copy, in, len);
	err = statefile_decode(k, copy, len, expect, gen, &payload, &plen);
	free(copy);
	if (err == STATEFILE_OK) {
		assert_non_null(payload);
		assert_int_equal(plen, want_len);
		if (want_len > 0)
			assert_memory_equal(payload, want, want_len);
		free(payload);
	}
	return err;
}

static void
check_header(const uint8_t *f, const struct statefile_info *info, bool encrypted, size_t plen)
{
	static const uint8_t zero[12];

	assert_memory_equal(f, "VTPMDST\0", 8);
	assert_int_equal(get_be(f + 8, 2), 1);
	assert_int_equal(f[10], info->kind);
	assert_int_equal(f[11], encrypted ? 1 : 2);
	assert_int_equal(f[12], info->tpm_version);
	assert_memory_equal(f + 13, zero, 3);
	assert_true(get_be(f + 16, 8) == info->generation);
	assert_int_equal(get_be(f + 24, 4), plen);
	if (!encrypted)
		assert_memory_equal(f + 28, zero, 12);
	else if (memcmp(f + 28, zero, 12) == 0)
		fail_msg("encrypted file has an all-zero nonce");
}

static void
roundtrip(const uint8_t *k, size_t plen)
{
	uint8_t *payload = make_payload(plen), *f;
	size_t len;
	uint64_t gen = 0;

	f = encode(&perm2, k, payload, plen, &len);
	assert_int_equal(len, HDR + plen + (k != NULL ? GCM_TAG : SHA_LEN));
	check_header(f, &perm2, k != NULL, plen);
	if (k != NULL && plen >= 16)
		assert_memory_not_equal(f + HDR, payload, plen);
	if (k == NULL && plen > 0)
		assert_memory_equal(f + HDR, payload, plen);
	assert_int_equal(decode(k, f, len, &perm2, &gen, payload, plen), STATEFILE_OK);
	assert_true(gen == perm2.generation);
	free(f);
	free(payload);
}

static void
test_roundtrip_encrypted(void **state)
{
	roundtrip(key, 100);
	roundtrip(key, 1);
	roundtrip(key, 4096);
}

static void
test_roundtrip_plaintext(void **state)
{
	roundtrip(NULL, 100);
	roundtrip(NULL, 1);
	roundtrip(NULL, 4096);
}

static void
test_roundtrip_empty(void **state)
{
	roundtrip(key, 0);
	roundtrip(NULL, 0);
}

/* The largest payload round-trips; one byte more is refused. */
static void
test_max_payload(void **state)
{
	uint8_t *payload = make_payload(STATEFILE_MAX_PAYLOAD), *f, *out;
	size_t len, big = statefile_encoded_size(STATEFILE_MAX_PAYLOAD + 1, true);
	uint64_t gen;

	f = encode(&perm2, key, payload, STATEFILE_MAX_PAYLOAD, &len);
	assert_int_equal(
	    decode(key, f, len, &perm2, &gen, payload, STATEFILE_MAX_PAYLOAD), STATEFILE_OK);
	free(f);
	free(payload);
	payload = make_payload(STATEFILE_MAX_PAYLOAD + 1);
	out = malloc(big);
	assert_non_null(out);
	assert_int_equal(
	    statefile_encode(&perm2, key, payload, STATEFILE_MAX_PAYLOAD + 1, out, big), -1);
	assert_int_equal(
	    statefile_encode(&perm2, NULL, payload, STATEFILE_MAX_PAYLOAD + 1, out, big), -1);
	free(out);
	free(payload);
}

/* An output buffer one byte short is refused, not overrun. */
static void
test_encode_short_buffer(void **state)
{
	uint8_t payload[10] = {0}, *out;
	size_t need;

	for (int enc = 0; enc < 2; enc++) {
		need = statefile_encoded_size(sizeof(payload), enc);
		out = malloc(need - 1);
		assert_non_null(out);
		assert_int_equal(statefile_encode(&perm2, enc ? key : NULL, payload,
		                     sizeof(payload), out, need - 1),
		    -1);
		free(out);
	}
}

static void
check_truncations(const uint8_t *k)
{
	uint8_t *payload = make_payload(20), *f;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, k, payload, 20, &len);
	for (size_t n = 0; n < len; n++) {
		enum statefile_verdict err = decode(k, f, n, &perm2, &gen, payload, 20);
		if (err != STATEFILE_TRUNCATED)
			fail_msg("%s file cut to %zu of %zu bytes: %d (%s)",
			    k ? "encrypted" : "plaintext", n, len, err, statefile_strerror(err));
	}
	free(f);
	free(payload);
}

static void
test_truncated_every_length(void **state)
{
	check_truncations(key);
	check_truncations(NULL);
}

static void
test_bad_magic(void **state)
{
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, key, payload, sizeof(payload), &len);
	for (int i = 0; i < 8; i++) {
		f[i] ^= 0x20;
		assert_int_equal(decode(key, f, len, &perm2, &gen, NULL, 0), STATEFILE_BAD_MAGIC);
		/* Anything that is not a state file, however short. */
		assert_int_equal(decode(key, f, 8, &perm2, &gen, NULL, 0), STATEFILE_BAD_MAGIC);
		f[i] ^= 0x20;
	}
	free(f);
}

static void
test_future_format(void **state)
{
	const uint16_t versions[] = {0, 2, 3, 0x100, 0xffff};
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, key, payload, sizeof(payload), &len);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		put_be(f + 8, versions[i], 2);
		assert_int_equal(
		    decode(key, f, len, &perm2, &gen, NULL, 0), STATEFILE_FUTURE_FORMAT);
	}
	put_be(f + 8, 1, 2);
	/* An unknown protection scheme. */
	for (int prot = 0; prot < 256; prot++) {
		if (prot == 1 || prot == 2)
			continue;
		f[11] = (uint8_t)prot;
		assert_int_equal(
		    decode(key, f, len, &perm2, &gen, NULL, 0), STATEFILE_FUTURE_FORMAT);
	}
	free(f);
}

static void
test_wrong_kind(void **state)
{
	struct statefile_info vol = perm2, save = perm2;
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	vol.kind = STATE_VOLATILE;
	save.kind = STATE_SAVESTATE;
	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		f = encode(&perm2, k, payload, sizeof(payload), &len);
		assert_int_equal(decode(k, f, len, &vol, &gen, NULL, 0), STATEFILE_WRONG_KIND);
		assert_int_equal(decode(k, f, len, &save, &gen, NULL, 0), STATEFILE_WRONG_KIND);
		free(f);
		f = encode(&vol, k, payload, sizeof(payload), &len);
		assert_int_equal(decode(k, f, len, &perm2, &gen, NULL, 0), STATEFILE_WRONG_KIND);
		assert_int_equal(
		    decode(k, f, len, &vol, &gen, payload, sizeof(payload)), STATEFILE_OK);
		free(f);
	}
}

static void
test_wrong_tpm(void **state)
{
	struct statefile_info perm1 = perm2;
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	perm1.tpm_version = 1;
	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		f = encode(&perm2, k, payload, sizeof(payload), &len);
		assert_int_equal(decode(k, f, len, &perm1, &gen, NULL, 0), STATEFILE_WRONG_TPM);
		free(f);
		f = encode(&perm1, k, payload, sizeof(payload), &len);
		assert_int_equal(decode(k, f, len, &perm2, &gen, NULL, 0), STATEFILE_WRONG_TPM);
		assert_int_equal(
		    decode(k, f, len, &perm1, &gen, payload, sizeof(payload)), STATEFILE_OK);
		free(f);
	}
}

/* A declared payload length above the limit is refused before the length
 * of the input is even considered. */
static void
test_too_large(void **state)
{
	const uint32_t lens[] = {STATEFILE_MAX_PAYLOAD + 1, 0x80000000u, 0xffffffffu};
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		f = encode(&perm2, k, payload, sizeof(payload), &len);
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			put_be(f + 24, lens[i], 4);
			assert_int_equal(
			    decode(k, f, len, &perm2, &gen, NULL, 0), STATEFILE_TOO_LARGE);
			assert_int_equal(
			    decode(k, f, HDR, &perm2, &gen, NULL, 0), STATEFILE_TOO_LARGE);
		}
		/* Exactly the limit is plausible: this file is just short. */
		put_be(f + 24, STATEFILE_MAX_PAYLOAD, 4);
		assert_int_equal(decode(k, f, len, &perm2, &gen, NULL, 0), STATEFILE_TRUNCATED);
		free(f);
	}
}

static void
test_trailing_bytes(void **state)
{
	uint8_t payload[4] = {1, 2, 3, 4}, *f, *longer;
	size_t len;
	uint64_t gen;

	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		f = encode(&perm2, k, payload, sizeof(payload), &len);
		longer = calloc(1, len + 100);
		assert_non_null(longer);
		memcpy(longer, f, len);
		assert_int_equal(
		    decode(k, longer, len + 1, &perm2, &gen, NULL, 0), STATEFILE_TRAILING);
		assert_int_equal(
		    decode(k, longer, len + 100, &perm2, &gen, NULL, 0), STATEFILE_TRAILING);
		free(longer);
		free(f);
	}
}

static void
test_needs_key(void **state)
{
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, key, payload, sizeof(payload), &len);
	assert_int_equal(decode(NULL, f, len, &perm2, &gen, NULL, 0), STATEFILE_NEEDS_KEY);
	free(f);
}

/* An unprotected file is not accepted where a key is in use: that would
 * let whoever can write the directory replace the state undetected. */
static void
test_unprotected_with_key(void **state)
{
	uint8_t payload[4] = {1, 2, 3, 4}, *f;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, NULL, payload, sizeof(payload), &len);
	assert_int_equal(decode(key, f, len, &perm2, &gen, NULL, 0), STATEFILE_UNPROTECTED);
	/* Relabelling an encrypted file as unprotected does not help either. */
	free(f);
	f = encode(&perm2, key, payload, sizeof(payload), &len);
	f[11] = 2;
	assert_int_not_equal(decode(key, f, len, &perm2, &gen, NULL, 0), STATEFILE_OK);
	assert_int_not_equal(decode(NULL, f, len, &perm2, &gen, NULL, 0), STATEFILE_OK);
	free(f);
}

/*
 * Flips every bit of a small file, one at a time. Bytes the header checks
 * read give their own error; every other byte (reserved, generation,
 * nonce, payload, tag or checksum) must fail authentication.
 */
static void
check_bit_flips(const uint8_t *k)
{
	const LargestIntegralType length_errs[] = {
	    STATEFILE_TRUNCATED, STATEFILE_TRAILING, STATEFILE_TOO_LARGE};
	uint8_t payload[8] = {'s', 'e', 'c', 'r', 'e', 't', '!', 0}, *f;
	enum statefile_verdict err, want;
	size_t len;
	uint64_t gen;

	f = encode(&perm2, k, payload, sizeof(payload), &len);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1 << bit);
			err = decode(k, f, len, &perm2, &gen, NULL, 0);
			f[i] ^= (uint8_t)(1 << bit);
			if (i < 8)
				want = STATEFILE_BAD_MAGIC;
			else if (i < 10 || i == 11)
				want = STATEFILE_FUTURE_FORMAT;
			else if (i == 10)
				want = STATEFILE_WRONG_KIND;
			else if (i == 12)
				want = STATEFILE_WRONG_TPM;
			else if (i >= 24 && i < 28) {
				assert_in_set(err, length_errs, 3);
				continue;
			} else
				want = STATEFILE_AUTH_FAILED;
			if (err != want)
				fail_msg("%s file, byte %zu bit %d flipped: %d (%s), want %d",
				    k ? "encrypted" : "plaintext", i, bit, err,
				    statefile_strerror(err), want);
		}
	}
	/* And the file itself is still good. */
	assert_int_equal(decode(k, f, len, &perm2, &gen, payload, sizeof(payload)), STATEFILE_OK);
	free(f);
}

static void
test_bit_flips_encrypted(void **state)
{
	check_bit_flips(key);
}

static void
test_bit_flips_plaintext(void **state)
{
	check_bit_flips(NULL);
}

/* The kind and TPM version bytes are authenticated: a permanent file
 * relabelled as volatile (or TPM 2.0 as 1.2) passes the header checks
 * and must then fail authentication. */
static void
test_header_relabel(void **state)
{
	struct statefile_info vol = perm2, perm1 = perm2;
	uint8_t payload[8] = {0}, *f;
	size_t len;
	uint64_t gen;

	vol.kind = STATE_VOLATILE;
	perm1.tpm_version = 1;
	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		f = encode(&perm2, k, payload, sizeof(payload), &len);
		f[10] = STATE_VOLATILE;
		assert_int_equal(decode(k, f, len, &vol, &gen, NULL, 0), STATEFILE_AUTH_FAILED);
		f[10] = STATE_PERMANENT;
		f[12] = 1;
		assert_int_equal(decode(k, f, len, &perm1, &gen, NULL, 0), STATEFILE_AUTH_FAILED);
		f[12] = 2;
		/* A rolled-back generation number. */
		f[23] = 6;
		assert_int_equal(decode(k, f, len, &perm2, &gen, NULL, 0), STATEFILE_AUTH_FAILED);
		free(f);
	}
}

static void
test_wrong_key(void **state)
{
	uint8_t payload[32], other[STATE_KEY_LEN], *f;
	size_t len;
	uint64_t gen;

	memset(payload, 0x5a, sizeof(payload));
	f = encode(&perm2, key, payload, sizeof(payload), &len);
	for (size_t i = 0; i < STATE_KEY_LEN; i += 7) {
		memcpy(other, key, sizeof(other));
		other[i] ^= 0x01;
		assert_int_equal(
		    decode(other, f, len, &perm2, &gen, NULL, 0), STATEFILE_AUTH_FAILED);
	}
	memset(other, 0, sizeof(other));
	assert_int_equal(decode(other, f, len, &perm2, &gen, NULL, 0), STATEFILE_AUTH_FAILED);
	assert_int_equal(decode(key, f, len, &perm2, &gen, payload, sizeof(payload)), STATEFILE_OK);
	free(f);
}

static void
test_generation_carried(void **state)
{
	const uint64_t gens[] = {0, 1, 0x100, 0x0102030405060708ull, UINT64_MAX};
	struct statefile_info info = perm2;
	uint8_t payload[3] = {9, 8, 7}, *f;
	size_t len;
	uint64_t gen;

	for (int enc = 0; enc < 2; enc++) {
		const uint8_t *k = enc ? key : NULL;

		for (size_t i = 0; i < sizeof(gens) / sizeof(gens[0]); i++) {
			info.generation = gens[i];
			f = encode(&info, k, payload, sizeof(payload), &len);
			assert_true(get_be(f + 16, 8) == gens[i]);
			gen = gens[i] + 12345;
			assert_int_equal(
			    decode(k, f, len, &info, &gen, payload, sizeof(payload)), STATEFILE_OK);
			assert_true(gen == gens[i]);
			free(f);
		}
	}
}

/* Each encoding draws a fresh nonce, so equal payloads never share one. */
static void
test_nonces_differ(void **state)
{
	uint8_t payload[64], *a, *b;
	size_t alen, blen;

	memset(payload, 0x42, sizeof(payload));
	a = encode(&perm2, key, payload, sizeof(payload), &alen);
	b = encode(&perm2, key, payload, sizeof(payload), &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, 28);
	assert_memory_not_equal(a + 28, b + 28, 12);
	assert_memory_not_equal(a + HDR, b + HDR, sizeof(payload));
	assert_memory_not_equal(a + HDR + sizeof(payload), b + HDR + sizeof(payload), GCM_TAG);
	free(a);
	free(b);
}

/*
 * The format, checked with OpenSSL directly rather than through the codec:
 * AES-256-GCM with the nonce at offset 28 and the whole 40-byte header as
 * additional data, or SHA-256 over header and payload. Files written by
 * one version of vtpmd must stay readable by the next.
 */
static void
test_format_independent(void **state)
{
	uint8_t payload[48], plain[48], digest[SHA_LEN], *f;
	EVP_CIPHER_CTX *ctx;
	size_t len;
	int n;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(0xc0 ^ i);
	f = encode(&perm2, key, payload, sizeof(payload), &len);
	ctx = EVP_CIPHER_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL), 1);
	assert_int_equal(EVP_DecryptInit_ex(ctx, NULL, NULL, key, f + 28), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, f, HDR), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, plain, &n, f + HDR, sizeof(payload)), 1);
	assert_int_equal(
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, f + HDR + sizeof(payload)), 1);
	assert_int_equal(EVP_DecryptFinal_ex(ctx, plain + n, &n), 1);
	EVP_CIPHER_CTX_free(ctx);
	assert_memory_equal(plain, payload, sizeof(payload));
	free(f);

	f = encode(&perm2, NULL, payload, sizeof(payload), &len);
	SHA256(f, HDR + sizeof(payload), digest);
	assert_memory_equal(f + HDR + sizeof(payload), digest, SHA_LEN);
	free(f);
}

static void
test_strerror(void **state)
{
	for (int e = STATEFILE_OK; e <= STATEFILE_NOMEM; e++) {
		const char *s = statefile_strerror((enum statefile_verdict)e);

		assert_non_null(s);
		assert_true(strlen(s) > 0);
		assert_string_not_equal(s, "unknown error");
		for (int o = STATEFILE_OK; o < e; o++)
			assert_string_not_equal(s, statefile_strerror((enum statefile_verdict)o));
	}
	assert_string_equal(
	    statefile_strerror((enum statefile_verdict)(STATEFILE_NOMEM + 1)), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_encrypted),
	    cmocka_unit_test(test_roundtrip_plaintext),
	    cmocka_unit_test(test_roundtrip_empty),
	    cmocka_unit_test(test_max_payload),
	    cmocka_unit_test(test_encode_short_buffer),
	    cmocka_unit_test(test_truncated_every_length),
	    cmocka_unit_test(test_bad_magic),
	    cmocka_unit_test(test_future_format),
	    cmocka_unit_test(test_wrong_kind),
	    cmocka_unit_test(test_wrong_tpm),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_needs_key),
	    cmocka_unit_test(test_unprotected_with_key),
	    cmocka_unit_test(test_bit_flips_encrypted),
	    cmocka_unit_test(test_bit_flips_plaintext),
	    cmocka_unit_test(test_header_relabel),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_generation_carried),
	    cmocka_unit_test(test_nonces_differ),
	    cmocka_unit_test(test_format_independent),
	    cmocka_unit_test(test_strerror),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
