/*
 * certs-demo: writes, through src/tpm/certs.c, the certificates vtpm-ca issues,
 * for checking with the openssl command (tests/integration/certs.sh):
 *
 *   certs-demo DIR
 *
 *   DIR/root.pem        root CA                       (root.key)
 *   DIR/privacy.pem     Privacy CA under the root     (privacy.key)
 *   DIR/virt.pem        Virtualization CA, ditto      (virt.key)
 *   DIR/single.pem      a self-signed Virtualization CA on its own
 *   DIR/ck.pem          the host's Certifying Key     (by the Privacy CA)
 *   DIR/ek-rsa.pem/.der vEK certificate, RSA-2048     (by the Virtualization CA)
 *   DIR/ek-ecc.pem      vEK certificate, ECC P-256    (ditto)
 *   DIR/ek-single.pem   vEK certificate by the self-signed CA
 *   DIR/ak.pem          the guest's AK certificate    (by the Privacy CA)
 *
 * The EK keys enter as a TPM public area would give them (RSA modulus, ECC
 * point). It prints what it put in the vEK certificates as "key=value"
 * lines, read back from DIR/ek-rsa.der through certs_parse_virtual() and
 * certs_ek_info(). Exit: 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define DEMO_UUID   "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23"
#define DEMO_CONFIG "host-config-2024-06-01"
#define DEMO_YEAR   (365 * 24 * 3600)

static const char *demo_dir;
static struct err demo_why;

static void demo_die(const char *what) __attribute__((noreturn));

static void
demo_die(const char *what)
{
	fprintf(stderr, "certs-demo: %s%s%s\n", what, demo_why.msg[0] != '\0' ? ": " : "", demo_why.msg);
	exit(1);
}

static const char *
demo_path(const char *name)
{
	static char path[4][512];
	static int next;

	next = (next + 1) % 4;
	snprintf(path[next], sizeof(path[next]), "%s/%s", demo_dir, name);
	return path[next];
}

/* A fresh key's public half, through SubjectPublicKeyInfo. */
static struct certs_pkey *
demo_ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	unsigned char *spki = NULL;
	struct certs_pkey *pk = NULL;
	int n;

	if (k != NULL && (n = i2d_PUBKEY(k, &spki)) > 0)
		pk = certs_pkey_from_spki(spki, (size_t)n);
	OPENSSL_free(spki);
	EVP_PKEY_free(k);
	if (pk == NULL)
		demo_die("new ECC key");
	return pk;
}

/* An RSA-2048 EK, as a TPM public area's modulus. */
static struct certs_pkey *
demo_rsa_ek(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	uint8_t mod[256];
	BIGNUM *n = NULL;
	struct certs_pkey *pk = NULL;

	if (k != NULL && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
	    BN_bn2binpad(n, mod, sizeof(mod)) == sizeof(mod))
		pk = certs_pkey_from_rsa(mod, sizeof(mod), 0);
	BN_free(n);
	EVP_PKEY_free(k);
	if (pk == NULL)
		demo_die("new RSA EK");
	return pk;
}

/* A P-256 EK, as a TPM public area's point. */
static struct certs_pkey *
demo_ecc_ek(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pt[65];
	size_t len = 0;
	struct certs_pkey *pk = NULL;

	if (k != NULL &&
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len) ==
	        1 &&
	    len == sizeof(pt))
		pk = certs_pkey_from_ecc_p256(pt + 1, pt + 33);
	EVP_PKEY_free(k);
	if (pk == NULL)
		demo_die("new ECC EK");
	return pk;
}

static void
demo_write(const char *name, const uint8_t *der, size_t len)
{
	if (certs_write_pem(demo_path(name), der, len) == -1)
		demo_die(name);
}

static struct certs_ca *
demo_ca(const char *name, enum certs_ca_kind kind, const struct certs_ca *parent, const char *file,
    const struct certs_validity *v)
{
	char key[64], cert[64];
	struct certs_ca *ca;

	snprintf(key, sizeof(key), "%s.key", file);
	snprintf(cert, sizeof(cert), "%s.pem", file);
	ca = certs_ca_create(
	    name, kind, parent, v, demo_path(key), demo_path(cert), &demo_why);
	if (ca == NULL)
		demo_die(name);
	return ca;
}

static void
demo_print(const uint8_t *der, size_t len)
{
	struct certs_virtual virt;
	struct certs_ek_info info;
	char hex[2 * CERTS_DIGEST_LEN + 1];

	if (certs_parse_virtual(der, len, &virt, &demo_why) == -1 ||
	    certs_ek_info(der, len, &info, &demo_why) == -1)
		demo_die("reading the vEK certificate back");
	hex_encode(virt.ck_digest, sizeof(virt.ck_digest), hex);
	printf("virtual=%s\n", virt.is_virtual ? "yes" : "no");
	printf("ck_digest=%s\n", hex);
	printf("host_config=%s\n", virt.host_config);
	printf("instance_uuid=%s\n", virt.instance_uuid);
	printf(
	    "manufacturer=%s\nmodel=%s\nversion=%s\n", info.manufacturer, info.model, info.version);
	printf(
	    "spec=%s %u %u\n", info.family, (unsigned int)info.level, (unsigned int)info.revision);
}

int
main(int argc, char **argv)
{
	struct certs_ca *root, *privacy, *virt, *single;
	struct certs_pkey *ck, *host_ek, *ek_rsa, *ek_ecc, *ak;
	struct certs_ek_req ek = {0};
	struct certs_ck_req ckr = {0};
	struct certs_ak_req akr = {0};
	struct certs_validity cav, leafv;
	uint8_t *der, *ek_der;
	size_t len, ek_len;
	time_t now = time(NULL);

	if (argc != 2) {
		fprintf(stderr, "usage: certs-demo DIR\n");
		return 2;
	}
	demo_dir = argv[1];
	cav = (struct certs_validity){now - 3600, now + 20 * DEMO_YEAR};
	leafv = (struct certs_validity){now - 60, CERTS_NO_EXPIRY};

	root = demo_ca("vtpmd Root CA", CERTS_CA_ROOT, NULL, "root", &cav);
	privacy = demo_ca("vtpmd Privacy CA", CERTS_CA_ISSUING, root, "privacy", &cav);
	virt = demo_ca("vtpmd Virtualization CA", CERTS_CA_ISSUING, root, "virt", &cav);
	single =
	    demo_ca("vtpmd Virtualization CA (single)", CERTS_CA_ISSUING, NULL, "single", &cav);

	ck = demo_ec_key();
	host_ek = demo_ec_key();
	ckr.ck = ck;
	ckr.host = "host-a.example";
	ckr.validity = leafv;
	if (certs_pkey_digest(host_ek, ckr.host_ek_digest) == -1 ||
	    certs_issue_ck(privacy, &ckr, &der, &len, &demo_why) == -1)
		demo_die("CK certificate");
	demo_write("ck.pem", der, len);

	ek.validity = leafv;
	certs_tpm_defaults(&ek.tpm);
	ek.virt.is_virtual = true;
	snprintf(ek.virt.host_config, sizeof(ek.virt.host_config), "%s", DEMO_CONFIG);
	snprintf(ek.virt.instance_uuid, sizeof(ek.virt.instance_uuid), "%s", DEMO_UUID);
	if (certs_cert_key_digest(der, len, ek.virt.ck_digest) == -1)
		demo_die("CK digest");
	free(der);

	ek_rsa = demo_rsa_ek();
	ek.ek = ek_rsa;
	if (certs_issue_ek(virt, &ek, &ek_der, &ek_len, &demo_why) == -1)
		demo_die("RSA vEK certificate");
	demo_write("ek-rsa.pem", ek_der, ek_len);
	if (fileio_write_atomic(demo_path("ek-rsa.der"), ek_der, ek_len, 0644) == -1)
		demo_die("ek-rsa.der");

	ek_ecc = demo_ecc_ek();
	ek.ek = ek_ecc;
	if (certs_issue_ek(virt, &ek, &der, &len, &demo_why) == -1)
		demo_die("ECC vEK certificate");
	demo_write("ek-ecc.pem", der, len);
	free(der);
	if (certs_issue_ek(single, &ek, &der, &len, &demo_why) == -1)
		demo_die("vEK certificate by the self-signed CA");
	demo_write("ek-single.pem", der, len);
	free(der);

	ak = demo_ec_key();
	akr.ak = ak;
	akr.subject = "vm-a attestation key";
	akr.validity = leafv;
	if (certs_ak_from_ek(ek_der, ek_len, &akr, &demo_why) == -1 ||
	    certs_issue_ak(privacy, &akr, &der, &len, &demo_why) == -1)
		demo_die("AK certificate");
	demo_write("ak.pem", der, len);
	free(der);

	free(ek_der);
	if (certs_read(demo_path("ek-rsa.der"), &ek_der, &ek_len) == -1)
		demo_die("reading ek-rsa.der");
	demo_print(ek_der, ek_len);
	free(ek_der);

	certs_pkey_free(ck);
	certs_pkey_free(host_ek);
	certs_pkey_free(ek_rsa);
	certs_pkey_free(ek_ecc);
	certs_pkey_free(ak);
	certs_ca_free(root);
	certs_ca_free(privacy);
	certs_ca_free(virt);
	certs_ca_free(single);
	return 0;
}
