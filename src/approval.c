/*
 * approval.c: the administrator's approval key. It signs the PCR policy
 * digests of approved host configurations (TPM2_PolicyAuthorize), so a
 * host update needs one signature instead of re-sealing every vTPM. The
 * private key is a PEM file (mode 0600); vtpmd can be given only the
 * public half, leaving the private key with the administrator.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "vtpmd.h"

/* Creates a new P-256 private key at path (must not exist). Returns 0/-1. */
int
approval_key_create(const char *path)
{
	EVP_PKEY *key = NULL;
	FILE *f = NULL;
	int fd, ret = -1;

	key = EVP_EC_gen("P-256");
	if (key == NULL)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		goto out;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		goto out;
	}
	if (PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto out;
	ret = 0;
out:
	if (f != NULL && fclose(f) != 0)
		ret = -1;
	if (ret != 0 && fd != -1)
		unlink(path);
	EVP_PKEY_free(key);
	return ret;
}

/* The digest an administrator signs to approve policy, as
 * TPM2_PolicyAuthorize checks it: SHA-256(approvedPolicy || policyRef). */
int
approval_digest(const uint8_t policy[HWTPM_DIGEST_LEN], uint8_t ahash[HWTPM_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, policy, HWTPM_DIGEST_LEN) == 1 &&
	    EVP_DigestUpdate(ctx, APPROVAL_POLICY_REF, strlen(APPROVAL_POLICY_REF)) == 1 &&
	    EVP_DigestFinal_ex(ctx, ahash, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Reads a PEM private or public P-256 key. */
static EVP_PKEY *
approval_read(const char *path, bool need_private)
{
	EVP_PKEY *key = NULL;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (key == NULL && !need_private) {
		rewind(f);
		key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	}
	fclose(f);
	if (key != NULL && !EVP_PKEY_is_a(key, "EC")) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

static int
approval_point(EVP_PKEY *key, struct approval_pub *pub)
{
	uint8_t pt[65];
	size_t len = 0;

	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len) != 1 ||
	    len != 65 || pt[0] != 0x04)
		return -1;
	memcpy(pub->x, pt + 1, 32);
	memcpy(pub->y, pt + 33, 32);
	return 0;
}

/* The public point of the key at path (private or public PEM). */
int
approval_key_public(const char *path, struct approval_pub *pub)
{
	EVP_PKEY *key = approval_read(path, false);
	int ret;

	if (key == NULL)
		return -1;
	ret = approval_point(key, pub);
	EVP_PKEY_free(key);
	return ret;
}

/* Signs the approval of policy with the private key at path into *ap. */
int
approval_sign(const char *path, const uint8_t policy[HWTPM_DIGEST_LEN], struct approval *ap)
{
	uint8_t ahash[HWTPM_DIGEST_LEN], der[80];
	const unsigned char *p = der;
	EVP_PKEY_CTX *ctx = NULL;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	EVP_PKEY *key;
	size_t dlen = sizeof(der);
	int ret = -1;

	key = approval_read(path, true);
	if (key == NULL)
		return -1;
	if (approval_point(key, &ap->pub) == -1 || approval_digest(policy, ahash) == -1)
		goto out;
	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_sign(ctx, der, &dlen, ahash, sizeof(ahash)) != 1)
		goto out;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	if (sig == NULL)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, ap->sig_r, 32) != 32 || BN_bn2binpad(s, ap->sig_s, 32) != 32)
		goto out;
	memcpy(ap->policy, policy, HWTPM_DIGEST_LEN);
	ret = 0;
out:
	ECDSA_SIG_free(sig);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ret;
}

/* Checks ap's signature over ap->policy with ap->pub, in software, before
 * vtpmd stores an approval made elsewhere. Returns 0 when valid. */
int
approval_verify(const struct approval *ap)
{
	uint8_t pt[65], ahash[HWTPM_DIGEST_LEN], *der = NULL;
	char group[] = "P-256";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int dlen, ret = -1;

	pt[0] = 0x04;
	memcpy(pt + 1, ap->pub.x, 32);
	memcpy(pt + 33, ap->pub.y, 32);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	EVP_PKEY_CTX_free(ctx);
	ctx = NULL;
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(ap->sig_r, 32, NULL);
	s = BN_bin2bn(ap->sig_s, 32, NULL);
	if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;
	dlen = i2d_ECDSA_SIG(sig, &der);
	if (dlen <= 0 || approval_digest(ap->policy, ahash) == -1)
		goto out;
	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1)
		goto out;
	if (EVP_PKEY_verify(ctx, der, (size_t)dlen, ahash, sizeof(ahash)) == 1)
		ret = 0;
out:
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ret;
}
