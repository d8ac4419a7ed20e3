/*
 * attest-ca: a throwaway Privacy CA and Virtualization CA for
 * tests/integration/attest.sh, through src/tpm/certs.c (what vtpm-ca issues,
 * without its protocol):
 *
 *   attest-ca init DIR
 *       DIR/root.pem, privacy.pem, virt.pem (a root, the Privacy and the
 *       Virtualization CA under it) and DIR/other-root.pem, other.pem (a
 *       second, untrusted root and its issuing CA), with their keys.
 *   attest-ca ek DIR EK.pub OUT.pem HOST_CONFIG UUID
 *       a vEK certificate (with the vtpmd virtual marker: a made-up host CK
 *       digest, HOST_CONFIG and UUID) for the EK whose TPM2B_PUBLIC is EK.pub.
 *   attest-ca ak DIR privacy|other AK.pub EK.pem|hardware OUT.pem
 *       an AK certificate for the key of AK.pub (a TPM2B_PUBLIC) by the
 *       Privacy CA or the untrusted one, copying the vEK certificate's TPM
 *       attributes and marker; "hardware": without any marker (a hardware
 *       TPM's AK).
 *
 * Exit: 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define ACA_YEAR (365 * 24 * 3600)

static struct err aca_why;

static void
aca_die(const char *what)
{
	fprintf(stderr, "attest-ca: %s%s%s\n", what, aca_why.msg[0] != '\0' ? ": " : "", aca_why.msg);
	exit(1);
}

static const char *
aca_path(const char *dir, const char *name)
{
	static char path[8][512];
	static int next;

	next = (next + 1) % 8;
	snprintf(path[next], sizeof(path[next]), "%s/%s", dir, name);
	return path[next];
}

/* The key of a TPM2B_PUBLIC file. */
static struct certs_pkey *
aca_tpm_key(const char *file)
{
	struct evidence_public pub;
	struct certs_pkey *k = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (fileio_read(file, 4096, &buf, &len) == -1)
		aca_die(file);
	if (evidence_parse_public(buf, len, &pub, &aca_why) == -1)
		aca_die(file);
	if (pub.key == EVIDENCE_KEY_ECC_P256)
		k = certs_pkey_from_ecc_p256(pub.ecc_x, pub.ecc_y);
	else if (pub.type == EVIDENCE_ALG_RSA)
		k = certs_pkey_from_rsa(pub.modulus, pub.modulus_len, pub.exponent);
	free(buf);
	if (k == NULL)
		aca_die("key: neither RSA nor ECC P-256");
	return k;
}

static struct certs_ca *
aca_load(const char *dir, const char *name)
{
	char key[64], cert[64];
	struct certs_ca *ca;

	snprintf(key, sizeof(key), "%s.key", name);
	snprintf(cert, sizeof(cert), "%s.pem", name);
	ca = certs_ca_load(aca_path(dir, key), aca_path(dir, cert), &aca_why);
	if (ca == NULL)
		aca_die(name);
	return ca;
}

static struct certs_ca *
aca_create(const char *dir, const char *cn, enum certs_ca_kind kind, const struct certs_ca *parent,
    const char *name)
{
	struct certs_validity v = {time(NULL) - 3600, time(NULL) + 10 * ACA_YEAR};
	char key[64], cert[64];
	struct certs_ca *ca;

	snprintf(key, sizeof(key), "%s.key", name);
	snprintf(cert, sizeof(cert), "%s.pem", name);
	ca = certs_ca_create(cn, kind, parent, &v, aca_path(dir, key), aca_path(dir, cert), &aca_why);
	if (ca == NULL)
		aca_die(name);
	return ca;
}

static void
aca_init(const char *dir)
{
	struct certs_ca *root, *privacy, *virt, *oroot, *other;

	root = aca_create(dir, "test Root CA", CERTS_CA_ROOT, NULL, "root");
	privacy = aca_create(dir, "test Privacy CA", CERTS_CA_ISSUING, root, "privacy");
	virt = aca_create(dir, "test Virtualization CA", CERTS_CA_ISSUING, root, "virt");
	oroot = aca_create(dir, "untrusted Root CA", CERTS_CA_ROOT, NULL, "other-root");
	other = aca_create(dir, "untrusted Privacy CA", CERTS_CA_ISSUING, oroot, "other");
	certs_ca_free(other);
	certs_ca_free(oroot);
	certs_ca_free(virt);
	certs_ca_free(privacy);
	certs_ca_free(root);
}

static void
aca_ek(const char *dir, const char *pub, const char *out, const char *config, const char *uuid)
{
	struct certs_ca *virt = aca_load(dir, "virt");
	struct certs_ek_req req = {0};
	uint8_t *der = NULL;
	size_t len = 0;

	req.ek = aca_tpm_key(pub);
	certs_tpm_defaults(&req.tpm);
	req.virt.is_virtual = true;
	memset(req.virt.ck_digest, 0xc7, sizeof(req.virt.ck_digest));
	snprintf(req.virt.host_config, sizeof(req.virt.host_config), "%s", config);
	snprintf(req.virt.instance_uuid, sizeof(req.virt.instance_uuid), "%s", uuid);
	req.validity = (struct certs_validity){time(NULL) - 60, CERTS_NO_EXPIRY};
	if (certs_issue_ek(virt, &req, &der, &len, &aca_why) == -1 ||
	    certs_write_pem(out, der, len) == -1)
		aca_die("vEK certificate");
	free(der);
	certs_pkey_free((struct certs_pkey *)req.ek);
	certs_ca_free(virt);
}

/* A stand-in for a hardware TPM's EK certificate: one without the vtpmd
 * marker or TPM attributes (a CK certificate). */
static void
aca_hardware_ek(const struct certs_ca *ca, const struct certs_pkey *key, uint8_t **der, size_t *len)
{
	struct certs_ck_req ck = {0};

	ck.ck = key;
	ck.host = "hardware-tpm";
	ck.validity = (struct certs_validity){time(NULL) - 60, CERTS_NO_EXPIRY};
	if (certs_issue_ck(ca, &ck, der, len, &aca_why) == -1)
		aca_die("hardware EK stand-in");
}

static void
aca_ak(const char *dir, const char *ca_name, const char *pub, const char *ek, const char *out)
{
	struct certs_ca *ca = aca_load(dir, ca_name);
	struct certs_ak_req req = {0};
	uint8_t *der = NULL, *ek_der = NULL;
	size_t len = 0, ek_len = 0;
	bool hardware = strcmp(ek, "hardware") == 0;

	req.ak = aca_tpm_key(pub);
	if (hardware)
		aca_hardware_ek(ca, req.ak, &ek_der, &ek_len);
	else if (certs_read(ek, &ek_der, &ek_len) == -1)
		aca_die(ek);
	req.subject = hardware ? "hardware AK" : "";
	if (!hardware && certs_ak_from_ek(ek_der, ek_len, &req, &aca_why) == -1)
		aca_die(ek);
	req.validity = (struct certs_validity){time(NULL) - 60, CERTS_NO_EXPIRY};
	if (certs_issue_ak(ca, &req, &der, &len, &aca_why) == -1 ||
	    certs_write_pem(out, der, len) == -1)
		aca_die("AK certificate");
	free(der);
	free(ek_der);
	certs_pkey_free((struct certs_pkey *)req.ak);
	certs_ca_free(ca);
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "init") == 0)
		aca_init(argv[2]);
	else if (argc == 7 && strcmp(argv[1], "ek") == 0)
		aca_ek(argv[2], argv[3], argv[4], argv[5], argv[6]);
	else if (argc == 7 && strcmp(argv[1], "ak") == 0)
		aca_ak(argv[2], argv[3], argv[4], argv[5], argv[6]);
	else {
		fprintf(stderr, "usage: attest-ca init DIR | ek DIR EK.pub OUT HOST_CONFIG UUID | "
		                "ak DIR privacy|other AK.pub EK.pem|hardware OUT\n");
		return 2;
	}
	return 0;
}
