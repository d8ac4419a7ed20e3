/*
 * hwtpm-check: drives src/hwtpm/hwtpm.c and src/tpm/approval.c against a host TPM
 * (a swtpm simulator in tests), one step per invocation:
 *
 *   hwtpm-check TCTI DIR seal      seal a fresh key; DIR/sealed.bin and,
 *                                  for the test's comparison only,
 *                                  DIR/expected-key.bin
 *   hwtpm-check TCTI DIR approve   sign the current PCR values (DIR/approval.bin)
 *   hwtpm-check TCTI DIR unseal    print the unsealed key as hex
 *
 * PCRs 0,2,4,7,16 are selected. Each step prints "commands N": the number
 * of host-TPM commands it sent. Exit: 0 ok, 1 error, 3 PCRs not approved,
 * 4 sealed object is not this TPM's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "hwtpm/hwtpm.h"
#include "instance/instance.h"

/* The last failure of a library call, for the message this tool dies with. */
static struct err terr;

static const struct pcr_selection check_sel = {
	.mask = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7 | 1u << 16,
};

static void
check_write(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		fatal(1, "write %s", path);
}

static size_t
check_read(const char *dir, const char *name, void *buf, size_t cap)
{
	char path[512];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fatal(1, "read %s", path);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

int
main(int argc, char **argv)
{
	uint8_t key[STATE_KEY_LEN], policy[TPM_DIGEST_LEN], blob[4096];
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	struct approval_pub pub;
	struct approval ap;
	char keypath[512];
	struct hwtpm *hw;
	uint8_t *sealed;
	size_t len;
	unsigned long before;
	int rc;

	log_init("hwtpm-check", LOG_LEVEL_INFO);
	if (argc != 4)
		fatalx(2, "usage: hwtpm-check TCTI DIR seal|approve|unseal");
	snprintf(keypath, sizeof(keypath), "%s/approval.pem", argv[2]);
	hw = hwtpm_open(argv[1], NULL, &terr);
	if (hw == NULL)
		fatalx(1, "host TPM: %s", terr.msg);
	before = hwtpm_command_count(hw);
	if (strcmp(argv[3], "seal") == 0) {
		if (approval_key_public(keypath, &pub) == -1 &&
		    (approval_key_create(keypath) == -1 || approval_key_public(keypath, &pub) == -1))
			fatalx(1, "approval key");
		if (pcrpolicy_authorize(&pub, policy) == -1)
			fatalx(1, "policy");
		RAND_bytes(key, sizeof(key));
		if (hwtpm_seal(hw, key, sizeof(key), policy, &sealed, &len, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		check_write(argv[2], "sealed.bin", sealed, len);
		check_write(argv[2], "expected-key.bin", key, sizeof(key));
		free(sealed);
	} else if (strcmp(argv[3], "approve") == 0) {
		if (hwtpm_pcr_read(hw, &check_sel, values, &terr) == -1)
			fatalx(1, "%s", terr.msg);
		if (pcrpolicy_digest(&check_sel, values, policy) == -1 ||
		    approval_sign(keypath, policy, &ap) == -1)
			fatalx(1, "sign approval");
		check_write(argv[2], "approval.bin", &ap, sizeof(ap));
	} else if (strcmp(argv[3], "unseal") == 0) {
		if (check_read(argv[2], "approval.bin", &ap, sizeof(ap)) != sizeof(ap))
			fatalx(1, "approval.bin");
		len = check_read(argv[2], "sealed.bin", blob, sizeof(blob));
		rc = hwtpm_unseal(hw, blob, len, &check_sel, &ap, key, sizeof(key), &terr);
		if (rc != 0) {
			printf("commands %lu\n", hwtpm_command_count(hw) - before);
			log_warnx("%s", terr.msg);
			hwtpm_close(hw);
			return terr.kind == ERR_POLICY ? 3 : terr.kind == ERR_FOREIGN ? 4 : 1;
		}
		for (size_t i = 0; i < sizeof(key); i++)
			printf("%02x", key[i]);
		printf("\n");
	} else {
		fatalx(2, "unknown step %s", argv[3]);
	}
	printf("commands %lu\n", hwtpm_command_count(hw) - before);
	hwtpm_close(hw);
	return 0;
}
