/*
 * ca_crypto.c: the primitives vtpm-ca needs beyond certs.c, credential.c
 * and evidence.c: OpenSSL's initialisation (before the network child's
 * sandbox closes the filesystem), SHA-256 (challenge secrets, qualifying
 * data), HMAC-SHA-256 (stateless nonces), random bytes (challenge ids
 * and secrets), a constant-time comparison and wiping. The only file of
 * the program that sees OpenSSL.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ca.h"

int
ca_crypto_init(void)
{
	return OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) == 1 ? 0 : -1;
}

/* SHA-256 of a. */
int
ca_sha256(const uint8_t *a, size_t alen, uint8_t out[static 32])
{
	unsigned int n = 0;

	return EVP_Digest(a, alen, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

int
ca_hmac_sha256(
    const uint8_t *key, size_t key_len, const uint8_t *a, size_t alen, uint8_t out[static 32])
{
	size_t n = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, a, alen, out, 32, &n) ==
	    NULL)
		return -1;
	return n == 32 ? 0 : -1;
}

int
ca_random(uint8_t *out, size_t len)
{
	return len <= INT32_MAX && RAND_bytes(out, (int)len) == 1 ? 0 : -1;
}

bool
ca_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void
ca_cleanse(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}
