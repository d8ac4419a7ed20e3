/*
 * hostattest-check: src/hwtpm/hwtpm_attest.c and src/manager/guesttpm.c from the command
 * line, for tests/integration/hostattest.sh. Files hold TPM wire formats
 * (as tpm2-tools writes them): .pub a TPM2B_PUBLIC, .attest a TPMS_ATTEST,
 * .sig a TPMT_SIGNATURE; certificates are DER.
 *
 * The host TPM (TCTI a tpm2-tss TCTI string), one step per invocation:
 *   host TCTI DIR ek rsa|ecc     DIR/ek-KIND.pub and, when the TPM holds
 *                                one, DIR/ek-KIND.crt; "certificate yes|no"
 *   host TCTI DIR ck             DIR/ck.pub; "name HEX" (its Name)
 * The CK and BK are made with the policy of the approval key
 * DIR/approval.pem (made at first use), and used under its approval of
 * the present values of PCRs 0,2,4,7,16, signed for each step (vtpmd
 * keeps its approvals in approvals.json).
 *   host TCTI DIR activate rsa|ecc CRED OUT
 *                                ActivateCredential of CRED (the layout of
 *                                tpm2_makecredential -o) into file OUT
 *   host TCTI DIR bk             DIR/bk.pub, DIR/bk.attest, DIR/bk.sig
 *   host TCTI DIR seal           DIR/sealed.bin: a fresh key sealed with
 *                                hwtpm_seal (approval key DIR/approval.pem)
 *   host TCTI DIR certify-sealed HEX
 *                                DIR/sealed.attest, DIR/sealed.sig: the CK's
 *                                certification of DIR/sealed.bin, with HEX
 *                                as qualifying data
 *   host TCTI DIR quote HEX      DIR/quote.attest, DIR/quote.sig over PCRs
 *                                0,2,4,7,16 with nonce HEX; "pcr I HEX"
 *   host TCTI DIR counts         each operation twice in one process (the
 *                                second finds its keys known), activation
 *                                of a credential_make credential included;
 *                                "count OP FIRST SECOND"
 * Each host step prints "commands N", the host-TPM commands it sent.
 * HOSTATTEST_PCRS (e.g. "0,2,4,7", vtpmd's default) replaces the PCRs
 * 0,2,4,7,16 in the approvals and quotes above.
 *
 * A vTPM (ENDPOINT its data channel, unix:PATH or tcp:HOST:PORT):
 *   vtpm ENDPOINT DIR ek rsa|ecc        DIR/vek-KIND.pub
 *   vtpm ENDPOINT DIR cert rsa|ecc DER  the EK certificate
 *   vtpm ENDPOINT DIR chain DER...      the EK certificate chain
 *   vtpm ENDPOINT DIR read INDEX OUT    NV index (hex) into file OUT
 *
 * Exit status 0, 1 on failure (the reason on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "manager/manager.h"

/* The last failure of a library call, for the message this tool dies with. */
static struct err terr;

#define CHECK_MAX_FILE 16384

static struct pcr_selection check_sel = {
    .mask = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7 | 1u << 16,
};

static const uint8_t check_cred_header[8] = {0xba, 0xdc, 0xc0, 0xde, 0x00, 0x00, 0x00, 0x01};

/* Closed at exit, failures included: without a resource manager, a session
 * left open would stay in the TPM. */
static struct hwtpm *check_hw;
static struct guesttpm *check_g;

static void
check_cleanup(void)
{
	hwtpm_close(check_hw);
	guesttpm_close(check_g);
	check_hw = NULL;
	check_g = NULL;
}

static void
check_write(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fileio_write_atomic(path, buf, len, 0600) == -1)
		fatal(1, "write %s", path);
}

static void
check_read(const char *dir, const char *name, uint8_t **buf, size_t *len)
{
	char path[512];

	if (dir != NULL)
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s", name);
	if (fileio_read(path, CHECK_MAX_FILE, buf, len) != 0)
		fatal(1, "read %s", path);
}

static void
check_hex(const char *label, const uint8_t *buf, size_t len)
{
	printf("%s ", label);
	for (size_t i = 0; i < len; i++)
		printf("%02x", buf[i]);
	printf("\n");
}

static size_t
check_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	if (strlen(hex) % 2 != 0 || n > cap || hex_decode(hex, out, n) == -1)
		fatalx(2, "not hex (at most %zu bytes): %s", cap, hex);
	return n;
}

static enum hwtpm_ek_kind
check_kind(const char *s)
{
	if (strcmp(s, "rsa") == 0)
		return HWTPM_EK_RSA;
	if (strcmp(s, "ecc") == 0)
		return HWTPM_EK_ECC;
	fatalx(2, "EK kind: rsa or ecc, not %s", s);
}

static void
check_write_attestation(const char *dir, const char *name, struct hwtpm_attestation *ev)
{
	char path[256];

	snprintf(path, sizeof(path), "%s.attest", name);
	check_write(dir, path, ev->attest, ev->attest_len);
	snprintf(path, sizeof(path), "%s.sig", name);
	check_write(dir, path, ev->signature, ev->signature_len);
	hwtpm_attestation_clear(ev);
}

static void
host_ek(struct hwtpm *hw, const char *dir, enum hwtpm_ek_kind kind, bool save)
{
	uint8_t *pub, *cert;
	size_t pub_len, cert_len;
	const char *k = kind == HWTPM_EK_RSA ? "rsa" : "ecc";
	char name[64];

	if (hwtpm_host_ek(hw, kind, &pub, &pub_len, &cert, &cert_len, &terr) == -1)
		fatalx(1, "host EK: %s", terr.msg);
	if (save) {
		snprintf(name, sizeof(name), "ek-%s.pub", k);
		check_write(dir, name, pub, pub_len);
		if (cert != NULL) {
			snprintf(name, sizeof(name), "ek-%s.crt", k);
			check_write(dir, name, cert, cert_len);
		}
		printf("certificate %s\n", cert != NULL ? "yes" : "no");
	}
	free(pub);
	free(cert);
}

/* The approval key DIR/approval.pem, made at first use. */
static void
check_approval_key(const char *dir, struct approval_pub *pub)
{
	char keypath[512];

	snprintf(keypath, sizeof(keypath), "%s/approval.pem", dir);
	if (approval_key_public(keypath, pub) == -1 &&
	    (approval_key_create(keypath) == -1 || approval_key_public(keypath, pub) == -1))
		fatalx(1, "approval key %s", keypath);
}

/* The approval of the present values of the PCRs in check_sel, signed with
 * DIR/approval.pem. */
static struct approval
check_approve(struct hwtpm *hw, const char *dir)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	struct approval_pub pub;
	struct approval ap;
	char keypath[512];

	check_approval_key(dir, &pub);
	snprintf(keypath, sizeof(keypath), "%s/approval.pem", dir);
	if (hwtpm_pcr_read(hw, &check_sel, values, &terr) == -1)
		fatalx(1, "PCR read: %s", terr.msg);
	if (pcrpolicy_digest(&check_sel, values, digest) == -1 ||
	    approval_sign(keypath, digest, &ap) == -1)
		fatalx(1, "approve the present PCR values");
	return ap;
}

static void
host_ck(struct hwtpm *hw, const char *dir, bool save)
{
	uint8_t *pub, name[CREDENTIAL_NAME_LEN];
	struct approval_pub key;
	size_t len;

	check_approval_key(dir, &key);
	if (hwtpm_ck(hw, &key, &pub, &len, &terr) == -1)
		fatalx(1, "CK: %s", terr.msg);
	if (save) {
		check_write(dir, "ck.pub", pub, len);
		if (credential_public_name(pub, len, name, &terr) == -1)
			fatalx(1, "CK name: %s", terr.msg);
		check_hex("name", name, sizeof(name));
	}
	free(pub);
}

/* Splits a file in tpm2_makecredential's layout into its two TPM2Bs. */
static void
check_split_cred(const uint8_t *f, size_t len, size_t *blob_off, size_t *blob_len, size_t *sec_off,
    size_t *sec_len)
{
	size_t n;

	if (len < 12 || memcmp(f, check_cred_header, sizeof(check_cred_header)) != 0)
		fatalx(1, "not a tpm2_makecredential file");
	n = (size_t)f[8] << 8 | f[9];
	*blob_off = 8;
	*blob_len = 2 + n;
	*sec_off = 8 + 2 + n;
	if (*sec_off > len)
		fatalx(1, "credential file truncated");
	*sec_len = len - *sec_off;
}

static void
host_activate(struct hwtpm *hw, enum hwtpm_ek_kind kind, const char *cred, const char *out)
{
	uint8_t *f, secret[HWTPM_CREDENTIAL_MAX];
	size_t len, boff, blen, soff, slen, secret_len;

	check_read(NULL, cred, &f, &len);
	check_split_cred(f, len, &boff, &blen, &soff, &slen);
	if (hwtpm_activate_credential(
	        hw, kind, f + boff, blen, f + soff, slen, secret, &secret_len, &terr) == -1)
		fatalx(1, "activate: %s", terr.msg);
	if (fileio_write_atomic(out, secret, secret_len, 0600) == -1)
		fatal(1, "write %s", out);
	OPENSSL_cleanse(secret, sizeof(secret));
	free(f);
}

static void
host_bk(struct hwtpm *hw, const char *dir, const struct approval *ap, bool save)
{
	struct hwtpm_attestation ev;
	uint8_t *pub;
	size_t len;

	if (hwtpm_bk(hw, &check_sel, ap, &pub, &len, &ev, &terr) == -1)
		fatalx(1, "BK: %s", terr.msg);
	if (save) {
		check_write(dir, "bk.pub", pub, len);
		check_write_attestation(dir, "bk", &ev);
	}
	hwtpm_attestation_clear(&ev);
	free(pub);
}

static void
host_seal(struct hwtpm *hw, const char *dir)
{
	uint8_t key[STATE_KEY_LEN], policy[TPM_DIGEST_LEN], *sealed;
	struct approval_pub pub;
	size_t len;

	check_approval_key(dir, &pub);
	if (pcrpolicy_authorize(&pub, policy) == -1)
		fatalx(1, "policy");
	RAND_bytes(key, sizeof(key));
	if (hwtpm_seal(hw, key, sizeof(key), policy, &sealed, &len, &terr) == -1)
		fatalx(1, "seal: %s", terr.msg);
	OPENSSL_cleanse(key, sizeof(key));
	check_write(dir, "sealed.bin", sealed, len);
	free(sealed);
}

static void
host_certify_sealed(struct hwtpm *hw, const char *dir, const struct approval *ap, const uint8_t *qd,
    size_t qd_len, bool save)
{
	struct hwtpm_attestation ev;
	uint8_t *blob;
	size_t len;

	check_read(dir, "sealed.bin", &blob, &len);
	if (hwtpm_certify_sealed(hw, blob, len, &check_sel, ap, qd, qd_len, &ev, &terr) != 0)
		fatalx(1, "certify sealed: %s", terr.msg);
	if (save)
		check_write_attestation(dir, "sealed", &ev);
	hwtpm_attestation_clear(&ev);
	free(blob);
}

static void
host_quote(struct hwtpm *hw, const char *dir, const struct approval *ap, const uint8_t *nonce,
    size_t nonce_len, bool save)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	struct hwtpm_attestation ev;
	char label[16];

	if (hwtpm_quote(hw, &check_sel, ap, nonce, nonce_len, &ev, values, &terr) == -1)
		fatalx(1, "quote: %s", terr.msg);
	if (save) {
		check_write_attestation(dir, "quote", &ev);
		for (int i = 0; i < TPM_PCRS; i++) {
			if (check_sel.mask & (1u << i)) {
				snprintf(label, sizeof(label), "pcr %d", i);
				check_hex(label, values[i], TPM_DIGEST_LEN);
			}
		}
	}
	hwtpm_attestation_clear(&ev);
}

/* Activation of a credential made in software (credential_make) for the
 * host EK of kind and the CK. */
static void
host_activate_made(struct hwtpm *hw, const char *dir, enum hwtpm_ek_kind kind)
{
	uint8_t secret[32], got[HWTPM_CREDENTIAL_MAX], name[CREDENTIAL_NAME_LEN];
	uint8_t *ek, *cert, *ck, *blob, *enc;
	size_t ek_len, cert_len, ck_len, blob_len, enc_len, got_len;
	struct approval_pub key;
	unsigned long before;

	check_approval_key(dir, &key);
	if (hwtpm_host_ek(hw, kind, &ek, &ek_len, &cert, &cert_len, &terr) == -1 ||
	    hwtpm_ck(hw, &key, &ck, &ck_len, &terr) == -1)
		fatalx(1, "keys: %s", terr.msg);
	RAND_bytes(secret, sizeof(secret));
	if (credential_public_name(ck, ck_len, name, &terr) == -1 ||
	    credential_make(ek, ek_len, name, sizeof(name), secret, sizeof(secret), &blob,
	        &blob_len, &enc, &enc_len, &terr) == -1)
		fatalx(1, "credential_make: %s", terr.msg);
	before = hwtpm_command_count(hw);
	if (hwtpm_activate_credential(hw, kind, blob, blob_len, enc, enc_len, got, &got_len, &terr) == -1)
		fatalx(1, "activate: %s", terr.msg);
	if (got_len != sizeof(secret) || memcmp(got, secret, sizeof(secret)) != 0)
		fatalx(1, "credential_make: the activated secret differs");
	printf("count activate-%s %lu\n", kind == HWTPM_EK_RSA ? "rsa" : "ecc",
	    hwtpm_command_count(hw) - before);
	free(ek);
	free(cert);
	free(ck);
	free(blob);
	free(enc);
}

/* Runs each operation twice and prints its commands both times. */
static void
host_counts(struct hwtpm *hw, const char *dir)
{
	uint8_t nonce[20] = {1, 2, 3};
	struct approval ap = check_approve(hw, dir);
	unsigned long c[2];
	const char *ops[] = {"ek-rsa", "ek-ecc", "ck", "bk", "certify-sealed", "quote"};

	for (size_t op = 0; op < sizeof(ops) / sizeof(ops[0]); op++) {
		for (int i = 0; i < 2; i++) {
			unsigned long before = hwtpm_command_count(hw);
			switch (op) {
			case 0: host_ek(hw, dir, HWTPM_EK_RSA, false); break;
			case 1: host_ek(hw, dir, HWTPM_EK_ECC, false); break;
			case 2: host_ck(hw, dir, false); break;
			case 3: host_bk(hw, dir, &ap, false); break;
			case 4:
				host_certify_sealed(hw, dir, &ap, nonce, sizeof(nonce), false);
				break;
			default: host_quote(hw, dir, &ap, nonce, sizeof(nonce), false); break;
			}
			c[i] = hwtpm_command_count(hw) - before;
		}
		printf("count %s %lu %lu\n", ops[op], c[0], c[1]);
	}
	host_activate_made(hw, dir, HWTPM_EK_RSA);
	host_activate_made(hw, dir, HWTPM_EK_ECC);
}

static int
host_main(int argc, char **argv)
{
	const char *dir = argv[3], *op = argv[4];
	uint8_t data[64];
	struct approval ap = {0};
	struct hwtpm *hw;
	unsigned long before;
	size_t n;

	if (getenv("HOSTATTEST_PCRS") != NULL &&
	    pcrpolicy_parse(getenv("HOSTATTEST_PCRS"), &check_sel) == -1)
		fatalx(2, "HOSTATTEST_PCRS: not a list of PCRs: %s", getenv("HOSTATTEST_PCRS"));
	hw = check_hw = hwtpm_open(argv[2], NULL, &terr);
	if (hw == NULL)
		fatalx(1, "host TPM: %s", terr.msg);
	/* What the CK and BK need, outside the steps' command counts. */
	if (strcmp(op, "bk") == 0 || strcmp(op, "certify-sealed") == 0 || strcmp(op, "quote") == 0)
		ap = check_approve(hw, dir);
	before = hwtpm_command_count(hw);
	if (strcmp(op, "ek") == 0 && argc == 6) {
		host_ek(hw, dir, check_kind(argv[5]), true);
	} else if (strcmp(op, "ck") == 0 && argc == 5) {
		host_ck(hw, dir, true);
	} else if (strcmp(op, "activate") == 0 && argc == 8) {
		host_activate(hw, check_kind(argv[5]), argv[6], argv[7]);
	} else if (strcmp(op, "bk") == 0 && argc == 5) {
		host_bk(hw, dir, &ap, true);
	} else if (strcmp(op, "seal") == 0 && argc == 5) {
		host_seal(hw, dir);
	} else if (strcmp(op, "certify-sealed") == 0 && argc == 6) {
		n = check_unhex(argv[5], data, sizeof(data));
		host_certify_sealed(hw, dir, &ap, data, n, true);
	} else if (strcmp(op, "quote") == 0 && argc == 6) {
		n = check_unhex(argv[5], data, sizeof(data));
		host_quote(hw, dir, &ap, data, n, true);
	} else if (strcmp(op, "counts") == 0 && argc == 5) {
		host_counts(hw, dir);
	} else {
		fatalx(2, "unknown host step or wrong arguments: %s", op);
	}
	printf("commands %lu\n", hwtpm_command_count(hw) - before);
	return 0;
}

static int
vtpm_main(int argc, char **argv)
{
	const char *dir = argv[3], *op = argv[4];
	struct guesttpm_cert certs[16];
	uint8_t *buf[16], *data;
	struct endpoint ep;
	struct guesttpm *g;
	char name[64];
	size_t len;
	unsigned long index;
	int n;

	if (endpoint_parse(argv[2], &ep) == -1)
		fatalx(2, "endpoint: %s", argv[2]);
	if ((g = check_g = guesttpm_open(&ep, &terr)) == NULL)
		fatalx(1, "%s", terr.msg);
	if (strcmp(op, "ek") == 0 && argc == 6) {
		if (guesttpm_create_ek(g, check_kind(argv[5]), &data, &len, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		snprintf(name, sizeof(name), "vek-%s.pub", argv[5]);
		check_write(dir, name, data, len);
		free(data);
	} else if (strcmp(op, "cert") == 0 && argc == 7) {
		check_read(NULL, argv[6], &data, &len);
		if (guesttpm_write_ek_cert(g, check_kind(argv[5]), data, len, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		free(data);
	} else if (strcmp(op, "chain") == 0 && argc >= 5 && argc - 5 <= 16) {
		n = argc - 5;
		for (int i = 0; i < n; i++) {
			check_read(NULL, argv[5 + i], &buf[i], &certs[i].len);
			certs[i].der = buf[i];
		}
		if (guesttpm_write_chain(g, certs, (size_t)n, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		for (int i = 0; i < n; i++)
			free(buf[i]);
	} else if (strcmp(op, "read") == 0 && argc == 7) {
		index = strtoul(argv[5], NULL, 16);
		if (guesttpm_read_nv(g, (uint32_t)index, &data, &len, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		if (fileio_write_atomic(argv[6], data, len, 0600) == -1)
			fatal(1, "write %s", argv[6]);
		free(data);
	} else {
		fatalx(2, "unknown vtpm step or wrong arguments: %s", op);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	log_init("hostattest-check", LOG_LEVEL_INFO);
	atexit(check_cleanup);
	if (argc >= 5 && strcmp(argv[1], "host") == 0)
		return host_main(argc, argv);
	if (argc >= 5 && strcmp(argv[1], "vtpm") == 0)
		return vtpm_main(argc, argv);
	fatalx(2, "usage: hostattest-check host TCTI DIR OP [ARGS] | vtpm ENDPOINT DIR OP [ARGS]");
}
