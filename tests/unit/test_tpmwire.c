/*
 * test_tpmwire.c: the TPM frame header, the data channel's framing, and the
 * commands vtpmd sends on its own (src/instance/tpmwire.c), checked byte for byte
 * against the TPM 2.0 and TPM 1.2 specifications.
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

#define GUARD 0xa5

/* Runs a builder into a buffer with guard bytes after the frame. */
static void
expect_frame(size_t (*build)(uint8_t[static 12], unsigned int), unsigned int tpm_version,
    const uint8_t *want, size_t want_len)
{
	uint8_t out[16];

	memset(out, GUARD, sizeof(out));
	assert_int_equal(build(out, tpm_version), want_len);
	assert_memory_equal(out, want, want_len);
	for (size_t i = want_len; i < sizeof(out); i++)
		assert_int_equal(out[i], GUARD);
}

static void
test_header_parse(void **state)
{
	const uint8_t startup[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44};
	const uint8_t pattern[] = {
	    0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0xff};
	struct tpm_header h;

	assert_int_equal(tpmwire_header(startup, sizeof(startup), &h), 0);
	assert_int_equal(h.tag, 0x8001);
	assert_int_equal(h.size, 12);
	assert_int_equal(h.code, 0x144);
	/* Every byte lands in its place, big-endian; bytes after the header
	 * are not part of it. */
	assert_int_equal(tpmwire_header(pattern, sizeof(pattern), &h), 0);
	assert_int_equal(h.tag, 0xa1b2);
	assert_int_equal(h.size, 0xc3d4e5f6);
	assert_int_equal(h.code, 0x0718293a);
}

static void
test_header_short(void **state)
{
	uint8_t *buf;
	struct tpm_header h;

	for (size_t n = 0; n < TPM_HEADER_LEN; n++) {
		/* Exactly n bytes, so a read past them is caught. */
		buf = malloc(n > 0 ? n : 1);
		assert_non_null(buf);
		memset(buf, 0x80, n);
		assert_int_equal(tpmwire_header(buf, n, &h), -1);
		free(buf);
	}
	buf = calloc(1, TPM_HEADER_LEN);
	assert_non_null(buf);
	assert_int_equal(tpmwire_header(buf, TPM_HEADER_LEN, &h), 0);
	assert_int_equal(h.tag, 0);
	assert_int_equal(h.size, 0);
	assert_int_equal(h.code, 0);
	free(buf);
}

static void
test_startup_clear_tpm2(void **state)
{
	const uint8_t want[] = {
	    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x00};

	expect_frame(tpmwire_startup_clear, 2, want, sizeof(want));
}

static void
test_shutdown_state_tpm2(void **state)
{
	const uint8_t want[] = {
	    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x45, 0x00, 0x01};

	expect_frame(tpmwire_shutdown_state, 2, want, sizeof(want));
}

static void
test_startup_clear_tpm12(void **state)
{
	const uint8_t want[] = {
	    0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99, 0x00, 0x01};

	expect_frame(tpmwire_startup_clear, 1, want, sizeof(want));
}

/* TPM 1.2 has no Shutdown(STATE): TPM_SaveState takes no parameter. */
static void
test_savestate_tpm12(void **state)
{
	const uint8_t want[] = {0x00, 0xc1, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x98};

	expect_frame(tpmwire_shutdown_state, 1, want, sizeof(want));
}

/* The size field of every built command is its length. */
static void
test_built_sizes_consistent(void **state)
{
	size_t (*builders[])(uint8_t[static 12], unsigned int) = {
	    tpmwire_startup_clear,
	    tpmwire_shutdown_state,
	};
	struct tpm_header h;
	uint8_t out[12];
	size_t n;

	for (size_t b = 0; b < 2; b++) {
		for (unsigned int v = 1; v <= 2; v++) {
			n = builders[b](out, v);
			assert_int_equal(tpmwire_header(out, n, &h), 0);
			assert_int_equal(h.size, n);
			assert_int_equal(h.tag, v == 2 ? 0x8001 : 0x00c1);
		}
	}
}

static void
test_error_tpm2(void **state)
{
	const uint8_t want[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x01};
	const uint8_t want2[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0a, 0xa1, 0xb2, 0xc3, 0xd4};
	uint8_t out[14];

	memset(out, GUARD, sizeof(out));
	assert_int_equal(tpmwire_error(out, 2, 0x101), TPM_HEADER_LEN); /* TPM_RC_FAILURE */
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(tpmwire_error(out, 2, 0xa1b2c3d4), TPM_HEADER_LEN);
	assert_memory_equal(out, want2, sizeof(want2));
	for (size_t i = TPM_HEADER_LEN; i < sizeof(out); i++)
		assert_int_equal(out[i], GUARD);
}

static void
test_error_tpm12(void **state)
{
	/* TPM_BAD_ORDINAL in a TPM_TAG_RSP_COMMAND frame. */
	const uint8_t want[] = {0x00, 0xc4, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x0a};
	uint8_t out[14];

	memset(out, GUARD, sizeof(out));
	assert_int_equal(tpmwire_error(out, 1, 0x0a), TPM_HEADER_LEN);
	assert_memory_equal(out, want, sizeof(want));
	for (size_t i = TPM_HEADER_LEN; i < sizeof(out); i++)
		assert_int_equal(out[i], GUARD);
}

static bool
is_shutdown(const uint8_t *cmd, size_t len, unsigned int tpm_version)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	bool ret;

	assert_non_null(copy);
	memcpy(copy, cmd, len);
	ret = tpmwire_is_shutdown(copy, len, tpm_version);
	free(copy);
	return ret;
}

static void
test_is_shutdown_tpm2(void **state)
{
	const uint8_t shutdown_clear[] = {
	    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x45, 0x00, 0x00};
	const uint8_t sessions[] = {
	    0x80, 0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x45, 0x00, 0x01};
	const uint8_t pcr_read[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x7e};
	uint8_t cmd[12];
	size_t n;

	n = tpmwire_shutdown_state(cmd, 2);
	assert_true(is_shutdown(cmd, n, 2));
	assert_true(is_shutdown(shutdown_clear, sizeof(shutdown_clear), 2));
	assert_true(is_shutdown(sessions, sizeof(sessions), 2));
	assert_false(is_shutdown(pcr_read, sizeof(pcr_read), 2));
	n = tpmwire_startup_clear(cmd, 2);
	assert_false(is_shutdown(cmd, n, 2));
	/* The TPM 1.2 ordinal means nothing to a TPM 2.0. */
	n = tpmwire_shutdown_state(cmd, 1);
	assert_false(is_shutdown(cmd, n, 2));
	/* Too short to be a command. */
	n = tpmwire_shutdown_state(cmd, 2);
	for (size_t len = 0; len < TPM_HEADER_LEN; len++)
		assert_false(is_shutdown(cmd, len, 2));
}

static void
test_is_shutdown_tpm12(void **state)
{
	const uint8_t get_random[] = {
	    0x00, 0xc1, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x46, 0x00, 0x00, 0x00, 0x10};
	uint8_t cmd[12];
	size_t n;

	n = tpmwire_shutdown_state(cmd, 1);
	assert_true(is_shutdown(cmd, n, 1));
	assert_false(is_shutdown(get_random, sizeof(get_random), 1));
	n = tpmwire_startup_clear(cmd, 1);
	assert_false(is_shutdown(cmd, n, 1));
	n = tpmwire_shutdown_state(cmd, 2);
	assert_false(is_shutdown(cmd, n, 1));
	n = tpmwire_shutdown_state(cmd, 1);
	for (size_t len = 0; len < TPM_HEADER_LEN; len++)
		assert_false(is_shutdown(cmd, len, 1));
}

/* Frames exactly len bytes of buf (copied, so a read past them is caught). */
static enum tpmwire_frame
frame(const uint8_t *buf, size_t len, uint32_t max, size_t *need)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum tpmwire_frame f;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	f = tpmwire_frame(copy, len, max, need);
	free(copy);
	return f;
}

static void
test_frame_whole_and_partial(void **state)
{
	/* Two GetRandom(4) in one write, then the start of a third. */
	const uint8_t two[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00,
	    0x04, 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x04, 0x80};
	size_t need = 99;

	assert_int_equal(frame(two, sizeof(two), 4096, &need), TPMWIRE_COMPLETE);
	assert_int_equal(need, 12);
	assert_int_equal(frame(two + 12, sizeof(two) - 12, 4096, &need), TPMWIRE_COMPLETE);
	assert_int_equal(need, 12);
	/* While the header is incomplete, the header is what it needs. */
	for (size_t len = 0; len < TPM_HEADER_LEN; len++) {
		need = 99;
		assert_int_equal(frame(two, len, 4096, &need), TPMWIRE_INCOMPLETE);
		assert_int_equal(need, TPM_HEADER_LEN);
	}
	/* Then the whole declared size. */
	for (size_t len = TPM_HEADER_LEN; len < 12; len++) {
		assert_int_equal(frame(two, len, 4096, &need), TPMWIRE_INCOMPLETE);
		assert_int_equal(need, 12);
	}
	assert_int_equal(frame(two + 24, 1, 4096, &need), TPMWIRE_INCOMPLETE);
	assert_int_equal(need, TPM_HEADER_LEN);
}

static void
test_frame_sizes(void **state)
{
	/* A bare header declaring size, e.g. TPM2_Startup's tag and code. */
	uint8_t hdr[TPM_HEADER_LEN] = {0x80, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x44};
	const uint32_t bad[] = {0, 1, 9, 4097, 0x10000, 0x7fffffff, 0xffffffff};
	size_t need;

	/* 10 (a command without parameters) and max are the bounds. */
	hdr[5] = 10;
	assert_int_equal(frame(hdr, sizeof(hdr), 4096, &need), TPMWIRE_COMPLETE);
	assert_int_equal(need, 10);
	hdr[4] = 0x10;
	hdr[5] = 0x00;
	assert_int_equal(frame(hdr, sizeof(hdr), 4096, &need), TPMWIRE_INCOMPLETE);
	assert_int_equal(need, 4096);
	assert_int_equal(frame(hdr, sizeof(hdr), 4095, &need), TPMWIRE_BAD_SIZE);
	assert_int_equal(need, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hdr[2] = (uint8_t)(bad[i] >> 24);
		hdr[3] = (uint8_t)(bad[i] >> 16);
		hdr[4] = (uint8_t)(bad[i] >> 8);
		hdr[5] = (uint8_t)bad[i];
		need = 99;
		assert_int_equal(frame(hdr, sizeof(hdr), 4096, &need), TPMWIRE_BAD_SIZE);
		assert_int_equal(need, 0);
	}
	/* TPM 1.2 frames the same way: the tag is not looked at. */
	{
		const uint8_t savestate[] = {0x00, 0xc1, 0, 0, 0, 0x0a, 0, 0, 0, 0x98};
		assert_int_equal(
		    frame(savestate, sizeof(savestate), 4096, &need), TPMWIRE_COMPLETE);
		assert_int_equal(need, 10);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_parse),
	    cmocka_unit_test(test_header_short),
	    cmocka_unit_test(test_startup_clear_tpm2),
	    cmocka_unit_test(test_shutdown_state_tpm2),
	    cmocka_unit_test(test_startup_clear_tpm12),
	    cmocka_unit_test(test_savestate_tpm12),
	    cmocka_unit_test(test_built_sizes_consistent),
	    cmocka_unit_test(test_error_tpm2),
	    cmocka_unit_test(test_error_tpm12),
	    cmocka_unit_test(test_is_shutdown_tpm2),
	    cmocka_unit_test(test_is_shutdown_tpm12),
	    cmocka_unit_test(test_frame_whole_and_partial),
	    cmocka_unit_test(test_frame_sizes),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
