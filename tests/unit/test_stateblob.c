/*
 * test_stateblob.c: the wrapped state blob codec (src/instance/stateblob.c):
 * a round trip and its layout, the keys derived per instance and from a
 * state key, and every way a blob is refused: truncated at every length,
 * a flipped bit at every position, trailing bytes, an unknown version or
 * key source, a transfer blob (issue #13), another key, another instance.
 *
 * Every unwrap reads a buffer of exactly the length it is given, so that
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

#include "instance/instance.h"

#define FIXED 74       /* the header up to the wrapped key */
#define TAIL  (12 + 4) /* nonce and payload length */
#define TAG   16

static const uint8_t host_key[STATE_KEY_LEN] = {0x68, 0x6f, 0x73, 0x74, 1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t uuid_a[STATEBLOB_UUID_LEN] = {0xa1, 0xa2, 0xa3};
static const uint8_t uuid_b[STATEBLOB_UUID_LEN] = {0xb1, 0xb2, 0xb3};
static const uint8_t payload[] = "libtpms state: seeds, keys, NV";

/* The key a worker of host_key gets for uuid. */
static struct stateblob_key
worker_key(const uint8_t *uuid)
{
	struct stateblob_key k = {.source = STATEBLOB_SOURCE_HOST};

	assert_int_equal(stateblob_instance_key(host_key, uuid, k.key), 0);
	memcpy(k.uuid, uuid, STATEBLOB_UUID_LEN);
	memset(k.key_id, 0x4b, STATEBLOB_KEY_ID_LEN);
	return k;
}

static uint8_t *
wrap(const struct stateblob_key *k, uint64_t gen, size_t *len)
{
	uint8_t *out = NULL;

	assert_int_equal(
	    stateblob_wrap(k, STATE_PERMANENT, 2, gen, payload, sizeof(payload), &out, len), 0);
	return out;
}

/* Unwraps a copy of exactly len bytes; returns the verdict. */
static enum stateblob_verdict
unwrap(const struct stateblob_key *k, const uint8_t *blob, size_t len, struct stateblob_info *info)
{
	uint8_t *copy = malloc(len + 1), *plain = NULL;
	size_t plain_len = 0;
	enum stateblob_verdict v;

	assert_non_null(copy);
	memcpy(copy, blob, len);
	v = stateblob_unwrap(k, copy, len, info, &plain, &plain_len);
	if (v == STATEBLOB_OK) {
		assert_int_equal(plain_len, sizeof(payload));
		assert_memory_equal(plain, payload, plain_len);
		free(plain);
	}
	free(copy);
	return v;
}

static void
test_round_trip_and_layout(void **state)
{
	struct stateblob_key k = worker_key(uuid_a);
	struct stateblob_info info;
	size_t len;
	uint8_t *b = wrap(&k, 0x0102030405060708ULL, &len);

	(void)state;
	assert_int_equal(len, FIXED + TAIL + sizeof(payload) + TAG);
	assert_memory_equal(b, "VTPMDBL", 8);
	assert_int_equal(b[8] << 8 | b[9], 1);
	assert_int_equal(b[10], STATE_PERMANENT);
	assert_int_equal(b[11], 2);
	assert_int_equal(b[12], STATEBLOB_SOURCE_HOST);
	assert_memory_equal(b + 16, uuid_a, STATEBLOB_UUID_LEN);
	assert_int_equal(b[32], 1);
	assert_int_equal(b[39], 8);
	assert_memory_equal(b + 40, k.key_id, STATEBLOB_KEY_ID_LEN);
	assert_int_equal(b[72] << 8 | b[73], 0);
	assert_null(memmem(b, len, payload, 8)); /* encrypted */
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_OK);
	assert_int_equal(info.generation, 0x0102030405060708ULL);
	assert_int_equal(info.kind, STATE_PERMANENT);
	assert_int_equal(info.tpm_version, 2);
	free(b);
}

/* Each instance gets its own key; the same state key gives the same. */
static void
test_keys(void **state)
{
	struct stateblob_key a = worker_key(uuid_a), b = worker_key(uuid_b), s1, s2;

	(void)state;
	assert_memory_not_equal(a.key, b.key, STATE_KEY_LEN);
	assert_int_equal(stateblob_key_from_state_key(host_key, &s1), 0);
	assert_int_equal(stateblob_key_from_state_key(host_key, &s2), 0);
	assert_memory_equal(&s1, &s2, sizeof(s1));
	assert_int_equal(s1.source, STATEBLOB_SOURCE_STATE_KEY);
	assert_memory_not_equal(s1.key, host_key, STATE_KEY_LEN);
	assert_memory_not_equal(s1.key, s1.key_id, STATE_KEY_LEN);
}

static void
test_truncated_every_length(void **state)
{
	struct stateblob_key k = worker_key(uuid_a);
	struct stateblob_info info;
	size_t len;
	uint8_t *b = wrap(&k, 1, &len);

	(void)state;
	for (size_t n = 0; n < len; n++)
		assert_int_equal(unwrap(&k, b, n, &info), STATEBLOB_TRUNCATED);
	free(b);
}

/* Every bit of the blob is covered: a flip anywhere is refused. */
static void
test_bit_flips(void **state)
{
	struct stateblob_key k = worker_key(uuid_a);
	struct stateblob_info info;
	size_t len;
	uint8_t *b = wrap(&k, 1, &len);

	(void)state;
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(unwrap(&k, b, len, &info), STATEBLOB_OK);
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_OK);
	free(b);
}

static void
test_refusals(void **state)
{
	struct stateblob_key k = worker_key(uuid_a), other_host = k, other = worker_key(uuid_b);
	struct stateblob_info info;
	uint8_t *b, *longer;
	size_t len;

	(void)state;
	b = wrap(&k, 7, &len);
	memset(other_host.key_id, 0x4c, STATEBLOB_KEY_ID_LEN);
	assert_int_equal(unwrap(&other_host, b, len, &info), STATEBLOB_OTHER_KEY);
	other.source = STATEBLOB_SOURCE_HOST;
	assert_int_equal(unwrap(&other, b, len, &info), STATEBLOB_OTHER_INSTANCE);
	assert_memory_equal(info.uuid, uuid_a, STATEBLOB_UUID_LEN);
	assert_int_equal(
	    unwrap(&k, (const uint8_t *)"not a blob at all", 17, &info), STATEBLOB_NOT_WRAPPED);
	longer = calloc(1, len + 1);
	assert_non_null(longer);
	memcpy(longer, b, len);
	assert_int_equal(unwrap(&k, longer, len + 1, &info), STATEBLOB_TRAILING);
	free(longer);
	b[9] = 2;
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_FUTURE_FORMAT);
	b[9] = 1;
	b[12] = 4;
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_FUTURE_FORMAT);
	b[12] = STATEBLOB_SOURCE_TRANSFER;
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_TRANSFER);
	b[12] = STATEBLOB_SOURCE_HOST;
	b[FIXED + 12] = 0xff; /* payload length above any state */
	assert_int_equal(unwrap(&k, b, len, &info), STATEBLOB_TOO_LARGE);
	free(b);
	k.source = STATEBLOB_SOURCE_TRANSFER;
	assert_int_equal(
	    stateblob_wrap(&k, STATE_PERMANENT, 2, 1, payload, sizeof(payload), &b, &len), -1);
	assert_string_equal(stateblob_strerror(STATEBLOB_OTHER_INSTANCE), "is another instance's");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_and_layout),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_truncated_every_length),
	    cmocka_unit_test(test_bit_flips),
	    cmocka_unit_test(test_refusals),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
