/*
 * ca_tlsmake.c: a TLS server certificate for a lab CA (`vtpm-ca init
 * --tls-name`), so that `serve` speaks HTTPS without an organisation's
 * TLS CA.
 *
 * Made: a TLS root (ECDSA P-256, CA:TRUE, keyCertSign) and under it the
 * server's certificate (ECDSA P-256, CA:FALSE, digitalSignature,
 * serverAuth, a subjectAltName per name: DNS, or IP for an address
 * literal). The root's private key lives only in this process's memory:
 * it signs the one server certificate and is freed, so nothing can ever
 * sign another certificate under that root — the root names exactly one
 * server key. Clients trust the root file, or pin the server's key.
 *
 * Not for production, where the organisation's TLS CA (or ACME) issues the
 * certificate for the CA's host name (docs/ca-api.md, "TLS").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"

/* A positive 127-bit random serial (RFC 5280: at most 20 octets). */
static int
tlsmake_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn != NULL && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;

	BN_free(bn);
	return ok ? 0 : -1;
}

static int
tlsmake_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static bool
tlsmake_ip(const char *s)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

static bool
tlsmake_hostname(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *c = s; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		        (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return false;
	}
	return true;
}

bool
ca_tls_name_valid(const char *name)
{
	return tlsmake_ip(name) || tlsmake_hostname(name);
}

/* The subjectAltName value: "DNS:a,IP:b" for names (each checked:
 * a host name or an address literal). */
static int
tlsmake_san(const char *const *names, size_t n, char *out, size_t len, struct err *err)
{
	size_t used = 0;
	int k;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *s = names[i];
		bool ip = tlsmake_ip(s);

		if (!ip && !tlsmake_hostname(s))
			return err_set(err, ERR_INVALID,
			    "--tls-name '%s': a host name (letters, digits, '-', '.'; no wildcard) "
			    "or an IP address",
			    s);
		k = snprintf(out + used, len - used, "%s%s:%s", i ? "," : "", ip ? "IP" : "DNS", s);
		if (k < 0 || (size_t)k >= len - used)
			return err_set(err, ERR_INVALID, "--tls-name: too many names");
		used += (size_t)k;
	}
	return 0;
}

/* A certificate for key, named cn, issued by (issuer, issuer_key) or
 * self-signed when issuer is NULL. */
static X509 *
tlsmake_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int64_t days,
    const char *san)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	bool is_root = issuer == NULL;

	if (x == NULL || name == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    tlsmake_serial(x) == -1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
	        -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, is_root ? name : X509_get_subject_name(issuer)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (is_root ? tlsmake_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	                  tlsmake_ext(x, x, NID_key_usage, "critical,keyCertSign") ||
	                  tlsmake_ext(x, x, NID_subject_key_identifier, "hash")
	            : tlsmake_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") ||
	                  tlsmake_ext(x, issuer, NID_key_usage, "critical,digitalSignature") ||
	                  tlsmake_ext(x, issuer, NID_ext_key_usage, "serverAuth") ||
	                  tlsmake_ext(x, issuer, NID_subject_alt_name, san) ||
	                  tlsmake_ext(x, issuer, NID_subject_key_identifier, "hash") ||
	                  tlsmake_ext(x, issuer, NID_authority_key_identifier, "keyid:always"))
		goto fail;
	if (X509_sign(x, is_root ? key : issuer_key, EVP_sha256()) == 0)
		goto fail;
	X509_NAME_free(name);
	return x;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

/* Writes a new file path (never over an existing one) with mode, through
 * write_pem. */
static int
tlsmake_write(const char *path, mode_t mode, int (*write_pem)(FILE *, const void *),
    const void *obj, struct err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	FILE *f;
	int ok;

	if (fd == -1)
		return err_errno(err, "%s", path);
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		return err_errno(err, "%s", path);
	}
	ok = write_pem(f, obj) == 1;
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return err_ssl(err, "writing %s", path);
	}
	return 0;
}

static int
tlsmake_write_cert(FILE *f, const void *x)
{
	return PEM_write_X509(f, (X509 *)x);
}

static int
tlsmake_write_key(FILE *f, const void *k)
{
	return PEM_write_PrivateKey(f, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

/* The pin of a certificate's key: SHA-256 of its SubjectPublicKeyInfo. */
static int
tlsmake_pin(X509 *x, uint8_t pin[static 32])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(x), &der);
	int ret = len > 0 ? ca_sha256(der, (size_t)len, pin) : -1;

	OPENSSL_free(der);
	return ret;
}

int
ca_tls_make(const struct ca_tls_request *rq, uint8_t pin[static 32], struct err *err)
{
	char san[2048], cn[CERTS_NAME_MAX + 1];
	EVP_PKEY *root_key = NULL, *key = NULL;
	X509 *root = NULL, *cert = NULL;
	int ret = -1;

	if (tlsmake_san(rq->names, rq->n_names, san, sizeof(san), err) == -1)
		return -1;
	root_key = EVP_EC_gen("P-256");
	key = EVP_EC_gen("P-256");
	snprintf(cn, sizeof(cn), "%s TLS root", rq->label);
	if (root_key == NULL || key == NULL ||
	    (root = tlsmake_cert(cn, root_key, NULL, NULL, rq->days, NULL)) == NULL ||
	    (cert = tlsmake_cert(rq->names[0], key, root, root_key, rq->days, san)) == NULL ||
	    tlsmake_pin(cert, pin) == -1) {
		err_ssl(err, "making the TLS certificates");
		goto out;
	}
	if (tlsmake_write(rq->key_path, 0600, tlsmake_write_key, key, err) == -1)
		goto out;
	if (tlsmake_write(rq->cert_path, 0644, tlsmake_write_cert, cert, err) == -1 ||
	    tlsmake_write(rq->root_path, 0644, tlsmake_write_cert, root, err) == -1) {
		unlink(rq->key_path);
		unlink(rq->cert_path);
		goto out;
	}
	ret = 0;
out:
	X509_free(cert);
	X509_free(root);
	EVP_PKEY_free(key);
	EVP_PKEY_free(root_key); /* the root's key is never written: see the top */
	return ret;
}
