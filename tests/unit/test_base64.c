/*
 * test_base64.c: base64 (src/base64.c): the RFC 4648 test vectors both
 * ways, and refusal of everything that is not the one canonical encoding
 * (whitespace, missing or misplaced padding, non-zero trailing bits, other
 * alphabets), and of output larger than the caller's buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"

static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void
test_vectors(void **state)
{
	uint8_t out[16];
	size_t len;
	char *enc;

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		enc = base64_encode((const uint8_t *)vectors[i][0], strlen(vectors[i][0]));
		assert_non_null(enc);
		assert_string_equal(enc, vectors[i][1]);
		free(enc);
		assert_int_equal(base64_decode(vectors[i][1], out, sizeof(out), &len), 0);
		assert_int_equal(len, strlen(vectors[i][0]));
		assert_memory_equal(out, vectors[i][0], len);
	}
}

static void
test_all_bytes(void **state)
{
	uint8_t in[256], out[256];
	size_t len;
	char *enc;

	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n += 17) {
		enc = base64_encode(in, n);
		assert_non_null(enc);
		assert_int_equal(base64_decode(enc, out, sizeof(out), &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(out, in, n);
		free(enc);
	}
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
	    "Zg",       /* no padding */
	    "Zg=",      /* short padding */
	    "Zh==",     /* non-zero trailing bits */
	    "Zm9=",     /* ditto, one pad */
	    "Z===",     /* too much padding */
	    "=Zg=",     /* padding first */
	    "Zg==Zg==", /* padding inside */
	    "Zm9v\n",   /* whitespace */
	    " Zm9v",    /* whitespace */
	    "Zm-v",     /* base64url */
	    "Zm_v",     /* base64url */
	    "Zm9v====", /* a group of padding */
	};
	uint8_t out[16];
	size_t len = 99;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (base64_decode(bad[i], out, sizeof(out), &len) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(len, 0);
	}
}

static void
test_max(void **state)
{
	uint8_t out[6];
	size_t len;

	(void)state;
	assert_int_equal(base64_decode("Zm9vYmFy", out, 6, &len), 0);
	assert_int_equal(base64_decode("Zm9vYmFy", out, 5, &len), -1);
	assert_int_equal(base64_decode("Zm9vYg==", out, 4, &len), 0);
	assert_int_equal(base64_decode("Zm9vYg==", out, 3, &len), -1);
	assert_int_equal(base64_decode("Zm9vYmE=", out, 5, &len), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_all_bytes),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_max),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
