/*
 * test_approval.c: the approval key (src/tpm/approval.c). vtpmd's own key
 * (SEC1 PEM, written and read without OpenSSL's PEM code) and keys an
 * administrator makes with OpenSSL (PKCS#8, SEC1 with its parameters
 * block) sign approvals that verify under the public point read from the
 * same file; public keys are told apart from private ones; keys of
 * another curve, truncated or garbled files are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/common.h"
#include "tpm/tpm.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_approval.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/key.pem", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Signs an approval with the key at path and checks it verifies under the
 * public point read from the same file. */
static void
sign_and_verify(const char *path)
{
	uint8_t policy[TPM_DIGEST_LEN];
	struct approval ap = {0};
	struct approval_pub pub;

	memset(policy, 0x5c, sizeof(policy));
	assert_int_equal(approval_key_is_private(path), 1);
	assert_int_equal(approval_key_public(path, &pub), 0);
	assert_int_equal(approval_sign(path, policy, &ap), 0);
	assert_memory_equal(&ap.pub, &pub, sizeof(pub));
	assert_int_equal(approval_verify(&ap), 0);
	ap.policy[0] ^= 1;
	assert_int_not_equal(approval_verify(&ap), 0);
}

/* Writes key with OpenSSL: PKCS#8, SEC1 ("traditional") or public only. */
enum form { PKCS8, SEC1, PUBLIC };

static void
write_openssl(const char *path, EVP_PKEY *key, enum form form)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	switch (form) {
	case PKCS8: assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1); break;
	case SEC1:
		fputs("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
		    f);
		assert_int_equal(
		    PEM_write_PrivateKey_ex(f, key, NULL, NULL, 0, NULL, NULL, NULL, "type-specific"), 1);
		break;
	case PUBLIC: assert_int_equal(PEM_write_PUBKEY(f, key), 1); break;
	}
	assert_int_equal(fclose(f), 0);
}

/* The uncompressed point of an OpenSSL key, as struct approval_pub. */
static void
openssl_point(EVP_PKEY *key, struct approval_pub *pub)
{
	uint8_t pt[65];
	size_t len = 0;

	assert_int_equal(
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len), 1);
	assert_int_equal(len, 65);
	memcpy(pub->x, pt + 1, 32);
	memcpy(pub->y, pt + 33, 32);
}

static void
test_own_key(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key;
	FILE *fp;

	assert_int_equal(approval_key_create(f->path), 0);
	sign_and_verify(f->path);
	/* OpenSSL reads what vtpmd writes. */
	fp = fopen(f->path, "r");
	assert_non_null(fp);
	key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(key);
	assert_true(EVP_PKEY_is_a(key, "EC"));
	EVP_PKEY_free(key);
	/* Never over an existing file. */
	assert_int_equal(approval_key_create(f->path), -1);
}

static void
test_openssl_keys(void **state)
{
	struct fixture *f = *state;
	const enum form forms[] = {PKCS8, SEC1};
	struct approval_pub want, got;
	EVP_PKEY *key = EVP_EC_gen("P-256");

	assert_non_null(key);
	openssl_point(key, &want);
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		unlink(f->path);
		write_openssl(f->path, key, forms[i]);
		sign_and_verify(f->path);
		assert_int_equal(approval_key_public(f->path, &got), 0);
		assert_memory_equal(&got, &want, sizeof(want));
	}
	unlink(f->path);
	write_openssl(f->path, key, PUBLIC);
	assert_int_equal(approval_key_is_private(f->path), 0);
	assert_int_equal(approval_key_public(f->path, &got), 0);
	assert_memory_equal(&got, &want, sizeof(want));
	EVP_PKEY_free(key);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t policy[TPM_DIGEST_LEN] = {0};
	struct approval ap;
	struct approval_pub pub;
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	char *text;
	long len;
	FILE *fp;

	/* Another curve. */
	assert_non_null(p384);
	write_openssl(f->path, p384, PKCS8);
	assert_int_equal(approval_sign(f->path, policy, &ap), -1);
	assert_int_equal(approval_key_public(f->path, &pub), -1);
	EVP_PKEY_free(p384);
	/* Garbled base64, then a truncated key. */
	unlink(f->path);
	assert_int_equal(approval_key_create(f->path), 0);
	fp = fopen(f->path, "r+");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 40, SEEK_SET), 0);
	fputc('*', fp);
	fclose(fp);
	assert_int_equal(approval_sign(f->path, policy, &ap), -1);
	unlink(f->path);
	assert_int_equal(approval_key_create(f->path), 0);
	fp = fopen(f->path, "r");
	assert_non_null(fp);
	text = calloc(1, 4096);
	assert_non_null(text);
	len = (long)fread(text, 1, 4095, fp);
	fclose(fp);
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	/* The first line of base64 only, then the armour's end. */
	fwrite(text, 1, 31 + 65, fp);
	fputs("-----END EC PRIVATE KEY-----\n", fp);
	fclose(fp);
	assert_true(len > 96);
	assert_int_equal(approval_sign(f->path, policy, &ap), -1);
	free(text);
	/* Missing and empty files. */
	unlink(f->path);
	assert_int_equal(approval_key_public(f->path, &pub), -1);
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(approval_key_is_private(f->path), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_own_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_openssl_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
