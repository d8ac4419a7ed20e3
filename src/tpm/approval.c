/*
 * approval.c: the administrator's approval key. It signs the PCR policy
 * digests of approved host configurations (TPM2_PolicyAuthorize), so a
 * host update needs one signature instead of re-sealing every vTPM. The
 * private key is a PEM file (mode 0600); vtpmd can be given only the
 * public half, leaving the private key with the administrator.
 *
 * The private key's bytes stay in secret memory (secret.c: locked, not
 * dumped, wiped on free) and OpenSSL's secure heap. That is why this file
 * reads and writes the PEM and DER of a private key itself rather than
 * with OpenSSL's PEM and encoder/decoder functions: those leave copies of
 * the private scalar in the ordinary heap (found by tests/tools/memscan).
 * Accepted: unencrypted P-256 keys, PKCS#8 ("PRIVATE KEY", what `openssl
 * genpkey` writes) or SEC1 ("EC PRIVATE KEY", what vtpmd writes). Public
 * keys, which are not secret, go through OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "common/common.h"
#include "tpm.h"

#define APPROVAL_SECURE_HEAP (32 * 1024)
#define APPROVAL_PEM_MAX     16384 /* far above any P-256 key's PEM */
#define APPROVAL_D_LEN       32    /* a P-256 private scalar */

/* DER of the object identifiers: id-ecPublicKey, prime256v1. */
static const uint8_t approval_oid_ec[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t approval_oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
    0x01, 0x07};
/* The order n of P-256's base point. */
static const uint8_t approval_p256_n[APPROVAL_D_LEN] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7,
    0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

/* Starts OpenSSL's secure heap, where it keeps private key material, once
 * per process. Without locked memory (a non-root user's limit) it works
 * unlocked, as OpenSSL reports. */
static void
approval_secure_heap(void)
{
	int rc;

	if (CRYPTO_secure_malloc_initialized())
		return;
	rc = CRYPTO_secure_malloc_init(APPROVAL_SECURE_HEAP, 32);
	if (rc == 0)
		log_warnx("OpenSSL's secure heap is unavailable: the approval key is held in "
			  "ordinary memory");
	else if (rc == 2)
		log_warnx("OpenSSL's secure heap could not be locked in memory");
}

/* Whether d is a valid P-256 private scalar: 0 < d < n. */
static bool
approval_scalar_ok(const uint8_t d[APPROVAL_D_LEN])
{
	uint8_t any = 0;
	int cmp = 0;

	for (size_t i = 0; i < APPROVAL_D_LEN; i++) {
		any |= d[i];
		if (cmp == 0 && d[i] != approval_p256_n[i])
			cmp = d[i] < approval_p256_n[i] ? -1 : 1;
	}
	return any != 0 && cmp < 0;
}

/* The public point d·G. Returns 0 or -1. */
static int
approval_public_of(const uint8_t d[APPROVAL_D_LEN], struct approval_pub *pub)
{
	EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BN_CTX *ctx = BN_CTX_secure_new();
	BIGNUM *k = BN_secure_new();
	EC_POINT *q = NULL;
	uint8_t pt[65];
	int ret = -1;

	if (group == NULL || ctx == NULL || k == NULL || BN_bin2bn(d, APPROVAL_D_LEN, k) == NULL ||
	    (q = EC_POINT_new(group)) == NULL || EC_POINT_mul(group, q, k, NULL, NULL, ctx) != 1 ||
	    EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), ctx) !=
	        sizeof(pt))
		goto out;
	memcpy(pub->x, pt + 1, 32);
	memcpy(pub->y, pt + 33, 32);
	ret = 0;
out:
	EC_POINT_free(q);
	BN_clear_free(k);
	BN_CTX_free(ctx);
	EC_GROUP_free(group);
	return ret;
}

/* The private key d as an OpenSSL key (its scalar in the secure heap). */
static EVP_PKEY *
approval_pkey_of(const uint8_t d[APPROVAL_D_LEN])
{
	char group[] = "prime256v1";
	uint8_t *native;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;

	/* OSSL_PARAM integers are in the machine's byte order. */
	if ((native = secret_alloc(APPROVAL_D_LEN)) == NULL)
		return NULL;
	for (size_t i = 0; i < APPROVAL_D_LEN; i++)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		native[i] = d[APPROVAL_D_LEN - 1 - i];
#else
		native[i] = d[i];
#endif
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native, APPROVAL_D_LEN);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	secret_free(native, APPROVAL_D_LEN);
	return key;
}

/* A DER element: its tag and contents. */
struct approval_der {
	uint8_t tag;
	const uint8_t *p;
	size_t len;
};

/* Reads the element at *in (of *left bytes) into e and moves past it.
 * Definite lengths up to 2 bytes only: a key is small. Returns 0 or -1. */
static int
approval_der_next(const uint8_t **in, size_t *left, struct approval_der *e)
{
	const uint8_t *p = *in;
	size_t n = *left, len, hdr = 2;

	if (n < 2)
		return -1;
	len = p[1];
	if (len == 0x81 && n >= 3) {
		len = p[2];
		hdr = 3;
	} else if (len == 0x82 && n >= 4) {
		len = (size_t)p[2] << 8 | p[3];
		hdr = 4;
	} else if (len >= 0x80) {
		return -1;
	}
	if (len > n - hdr)
		return -1;
	e->tag = p[0];
	e->p = p + hdr;
	e->len = len;
	*in = p + hdr + len;
	*left = n - hdr - len;
	return 0;
}

/* Whether element e is exactly the DER bytes want (tag, length, value). */
static bool
approval_der_is(const struct approval_der *e, const uint8_t *want, size_t want_len)
{
	return want_len >= 2 && e->tag == want[0] && e->len == want_len - 2 &&
	    memcmp(e->p, want + 2, e->len) == 0;
}

/*
 * The scalar of a SEC1 ECPrivateKey (RFC 5915): SEQUENCE { INTEGER 1,
 * OCTET STRING d, [0] curve OPTIONAL, [1] public key OPTIONAL }. A curve,
 * when named, must be P-256.
 */
static int
approval_sec1(const uint8_t *der, size_t len, uint8_t d[APPROVAL_D_LEN])
{
	struct approval_der seq, e;
	const uint8_t *p;
	size_t left;

	if (approval_der_next(&der, &len, &seq) == -1 || seq.tag != 0x30 || len != 0)
		return -1;
	p = seq.p;
	left = seq.len;
	if (approval_der_next(&p, &left, &e) == -1 || e.tag != 0x02 || e.len != 1 || e.p[0] != 1)
		return -1;
	if (approval_der_next(&p, &left, &e) == -1 || e.tag != 0x04 || e.len == 0 ||
	    e.len > APPROVAL_D_LEN)
		return -1;
	memset(d, 0, APPROVAL_D_LEN);
	memcpy(d + APPROVAL_D_LEN - e.len, e.p, e.len);
	if (left > 0 && approval_der_next(&p, &left, &e) == 0 && e.tag == 0xa0) {
		struct approval_der oid;
		const uint8_t *q = e.p;
		size_t qleft = e.len;

		if (approval_der_next(&q, &qleft, &oid) == -1 ||
		    !approval_der_is(&oid, approval_oid_p256, sizeof(approval_oid_p256)))
			return -1;
	}
	return approval_scalar_ok(d) ? 0 : -1;
}

/*
 * The scalar of a PKCS#8 PrivateKeyInfo (RFC 5208/5958) of an EC P-256
 * key: SEQUENCE { INTEGER 0 or 1, SEQUENCE { id-ecPublicKey, prime256v1 },
 * OCTET STRING { ECPrivateKey }, ... }.
 */
static int
approval_pkcs8(const uint8_t *der, size_t len, uint8_t d[APPROVAL_D_LEN])
{
	struct approval_der seq, e, alg;
	const uint8_t *p, *q;
	size_t left, qleft;

	if (approval_der_next(&der, &len, &seq) == -1 || seq.tag != 0x30 || len != 0)
		return -1;
	p = seq.p;
	left = seq.len;
	if (approval_der_next(&p, &left, &e) == -1 || e.tag != 0x02 || e.len != 1 || e.p[0] > 1)
		return -1;
	if (approval_der_next(&p, &left, &e) == -1 || e.tag != 0x30)
		return -1;
	q = e.p;
	qleft = e.len;
	if (approval_der_next(&q, &qleft, &alg) == -1 ||
	    !approval_der_is(&alg, approval_oid_ec, sizeof(approval_oid_ec)) ||
	    approval_der_next(&q, &qleft, &alg) == -1 ||
	    !approval_der_is(&alg, approval_oid_p256, sizeof(approval_oid_p256)))
		return -1;
	if (approval_der_next(&p, &left, &e) == -1 || e.tag != 0x04)
		return -1;
	return approval_sec1(e.p, e.len, d);
}

enum approval_pem { APPROVAL_PEM_NONE, APPROVAL_PEM_SEC1, APPROVAL_PEM_PKCS8 };

/* The kind of private key PEM text (NUL-terminated) holds, and the
 * base64 between its armour lines (*body, *body_len). */
static enum approval_pem
approval_pem_find(const char *text, const char **body, size_t *body_len)
{
	static const struct {
		enum approval_pem kind;
		const char *begin, *end;
	} armour[] = {
	    {APPROVAL_PEM_SEC1, "-----BEGIN EC PRIVATE KEY-----", "-----END EC PRIVATE KEY-----"},
	    {APPROVAL_PEM_PKCS8, "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"},
	};
	const char *b, *e;

	for (size_t i = 0; i < sizeof(armour) / sizeof(armour[0]); i++) {
		if ((b = strstr(text, armour[i].begin)) == NULL ||
		    (e = strstr(b, armour[i].end)) == NULL)
			continue;
		b += strlen(armour[i].begin);
		*body = b;
		*body_len = (size_t)(e - b);
		return armour[i].kind;
	}
	return APPROVAL_PEM_NONE;
}

/* Reads the file at path (a regular file of at most APPROVAL_PEM_MAX
 * bytes) into secret memory, NUL-terminated; *cap is what to secret_free. */
static char *
approval_slurp(const char *path, size_t *cap)
{
	struct stat sb;
	char *text = NULL;
	size_t got = 0;
	ssize_t n;
	int fd;

	*cap = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return NULL;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > APPROVAL_PEM_MAX) {
		errno = EINVAL;
		goto out;
	}
	*cap = (size_t)sb.st_size + 1;
	if ((text = secret_alloc(*cap)) == NULL)
		goto out;
	while (got < *cap - 1 && (n = read(fd, text + got, *cap - 1 - got)) > 0)
		got += (size_t)n;
	text[got] = '\0';
out:
	close(fd);
	return text;
}

/*
 * The private scalar of the PEM private key at path, into d (secret
 * memory of the caller). Returns 1 with d set, 0 when the file holds no
 * private key (a public one, say), -1 when it cannot be read or its
 * private key is not an unencrypted P-256 key.
 */
static int
approval_read_private(const char *path, uint8_t d[APPROVAL_D_LEN])
{
	const char *body;
	size_t cap, body_len = 0, b64_len = 0, der_cap = 0;
	char *text, *b64 = NULL;
	uint8_t *der = NULL;
	enum approval_pem kind;
	int n, ret = -1;

	if ((text = approval_slurp(path, &cap)) == NULL)
		return -1;
	kind = approval_pem_find(text, &body, &body_len);
	if (kind == APPROVAL_PEM_NONE) {
		ret = 0;
		goto out;
	}
	der_cap = body_len + 3;
	if ((b64 = secret_alloc(body_len + 1)) == NULL || (der = secret_alloc(der_cap)) == NULL)
		goto out;
	for (size_t i = 0; i < body_len; i++)
		if (body[i] != '\n' && body[i] != '\r' && body[i] != ' ' && body[i] != '\t')
			b64[b64_len++] = body[i];
	if (b64_len == 0 || b64_len % 4 != 0 ||
	    (n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)b64_len)) < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = b64_len; i > 0 && b64[i - 1] == '='; i--)
		n--;
	if (n > 0 && (kind == APPROVAL_PEM_SEC1 ? approval_sec1(der, (size_t)n, d)
	                                        : approval_pkcs8(der, (size_t)n, d)) == 0)
		ret = 1;
out:
	secret_free(der, der_cap);
	secret_free(b64, body_len + 1);
	secret_free(text, cap);
	return ret;
}

/* Creates a new P-256 private key at path (must not exist), in SEC1 PEM.
 * Returns 0/-1. */
int
approval_key_create(const char *path)
{
	/* SEC1 ECPrivateKey of a P-256 key, with its curve and public key. */
	static const uint8_t der_head[] = {0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20};
	static const uint8_t der_mid[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
	    0x01, 0x07, 0xa1, 0x44, 0x03, 0x42, 0x00, 0x04};
	enum { DER_LEN = 121, B64_LEN = 4 * ((DER_LEN + 2) / 3), PEM_CAP = 256 };
	struct approval_pub pub;
	uint8_t *d, *der = NULL;
	char *b64 = NULL, *pem = NULL;
	int fd = -1, len, ret = -1;

	if ((d = secret_alloc(APPROVAL_D_LEN)) == NULL)
		return -1;
	do {
		if (RAND_priv_bytes(d, APPROVAL_D_LEN) != 1)
			goto out;
	} while (!approval_scalar_ok(d));
	if (approval_public_of(d, &pub) == -1 || (der = secret_alloc(DER_LEN)) == NULL ||
	    (b64 = secret_alloc(B64_LEN + 1)) == NULL || (pem = secret_alloc(PEM_CAP)) == NULL)
		goto out;
	memcpy(der, der_head, sizeof(der_head));
	memcpy(der + 7, d, APPROVAL_D_LEN);
	memcpy(der + 39, der_mid, sizeof(der_mid));
	memcpy(der + 57, pub.x, 32);
	memcpy(der + 89, pub.y, 32);
	if (EVP_EncodeBlock((unsigned char *)b64, der, DER_LEN) != B64_LEN)
		goto out;
	len = snprintf(pem, PEM_CAP, "-----BEGIN EC PRIVATE KEY-----\n%.64s\n%.64s\n%s\n"
				   "-----END EC PRIVATE KEY-----\n",
	    b64, b64 + 64, b64 + 128);
	if (len <= 0 || len >= PEM_CAP)
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		goto out;
	if (write(fd, pem, (size_t)len) != (ssize_t)len || fsync(fd) != 0)
		goto out;
	ret = 0;
out:
	if (fd != -1 && close(fd) != 0)
		ret = -1;
	if (ret != 0 && fd != -1)
		unlink(path);
	secret_free(pem, PEM_CAP);
	secret_free(b64, B64_LEN + 1);
	secret_free(der, DER_LEN);
	secret_free(d, APPROVAL_D_LEN);
	return ret;
}

/* The digest an administrator signs to approve policy, as
 * TPM2_PolicyAuthorize checks it: SHA-256(approvedPolicy || policyRef). */
int
approval_digest(const uint8_t policy[TPM_DIGEST_LEN], uint8_t ahash[TPM_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, policy, TPM_DIGEST_LEN) == 1 &&
	    EVP_DigestUpdate(ctx, APPROVAL_POLICY_REF, strlen(APPROVAL_POLICY_REF)) == 1 &&
	    EVP_DigestFinal_ex(ctx, ahash, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* The public point of the key at path: a private key (see above) or a
 * public one (PEM "PUBLIC KEY"). */
int
approval_key_public(const char *path, struct approval_pub *pub)
{
	uint8_t pt[65];
	size_t len = 0;
	EVP_PKEY *key;
	uint8_t *d;
	FILE *f;
	int rc;

	if ((d = secret_alloc(APPROVAL_D_LEN)) == NULL)
		return -1;
	rc = approval_read_private(path, d);
	if (rc == 1 && approval_public_of(d, pub) == -1)
		rc = -1;
	secret_free(d, APPROVAL_D_LEN);
	if (rc != 0) /* a private key, read or not */
		return rc == 1 ? 0 : -1;
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	rc = -1;
	if (key != NULL && EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len) ==
	        1 &&
	    len == 65 && pt[0] == 0x04) {
		memcpy(pub->x, pt + 1, 32);
		memcpy(pub->y, pt + 33, 32);
		rc = 0;
	}
	EVP_PKEY_free(key);
	return rc;
}

/* Whether the file at path holds a private key (1), not (0), or cannot be
 * read (-1). */
int
approval_key_is_private(const char *path)
{
	uint8_t *d;
	int rc;

	if ((d = secret_alloc(APPROVAL_D_LEN)) == NULL)
		return -1;
	rc = approval_read_private(path, d);
	secret_free(d, APPROVAL_D_LEN);
	return rc;
}

/* Signs the approval of policy with the private key at path into *ap. */
int
approval_sign(const char *path, const uint8_t policy[TPM_DIGEST_LEN], struct approval *ap)
{
	uint8_t ahash[TPM_DIGEST_LEN], der[80], *d;
	const unsigned char *p = der;
	EVP_PKEY_CTX *ctx = NULL;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	EVP_PKEY *key = NULL;
	size_t dlen = sizeof(der);
	int ret = -1;

	approval_secure_heap();
	if ((d = secret_alloc(APPROVAL_D_LEN)) == NULL)
		return -1;
	if (approval_read_private(path, d) != 1 || approval_public_of(d, &ap->pub) == -1 ||
	    (key = approval_pkey_of(d)) == NULL || approval_digest(policy, ahash) == -1)
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
	memcpy(ap->policy, policy, TPM_DIGEST_LEN);
	ret = 0;
out:
	ECDSA_SIG_free(sig);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	secret_free(d, APPROVAL_D_LEN);
	return ret;
}

/* Checks ap's signature over ap->policy with ap->pub, in software, before
 * vtpmd stores an approval made elsewhere. Returns 0 when valid. */
int
approval_verify(const struct approval *ap)
{
	uint8_t pt[65], ahash[TPM_DIGEST_LEN], *der = NULL;
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
