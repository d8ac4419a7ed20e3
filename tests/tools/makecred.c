/*
 * makecred: src/tpm/credential.c from the command line, for
 * tests/integration/credential.sh.
 *
 *   makecred name PUBLIC
 *	prints the Name (hex) of the marshalled TPM2B_PUBLIC in file PUBLIC
 *	(tpm2_createek -u, tpm2_createak -u, tpm2_readpublic -o).
 *   makecred make EK_PUBLIC AK_NAME SECRET OUT
 *	protects the bytes of file SECRET for the EK in EK_PUBLIC and the AK
 *	whose binary Name is in file AK_NAME (tpm2_createak -n), and writes
 *	OUT in the format tpm2_makecredential writes and tpm2_activatecredential
 *	-i reads (tpm2-tools 5.x): magic 0xbadcc0de, version 1 (both 32-bit
 *	big-endian), TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
 *
 * Exit status 0, 1 on failure (the reason on stderr), 2 on bad usage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tpm/tpm.h"

/* The last failure of a library call, for the message this tool dies with. */
static struct err terr;

#define MAKECRED_MAX_FILE 4096

static const uint8_t makecred_header[8] = {0xba, 0xdc, 0xc0, 0xde, 0x00, 0x00, 0x00, 0x01};

/* Reads the whole of path (at most MAKECRED_MAX_FILE bytes) into buf. */
static int
makecred_read(const char *path, uint8_t buf[static MAKECRED_MAX_FILE], size_t *len)
{
	FILE *f;
	int ret = -1;

	if ((f = fopen(path, "rb")) == NULL) {
		perror(path);
		return -1;
	}
	*len = fread(buf, 1, MAKECRED_MAX_FILE, f);
	if (ferror(f))
		perror(path);
	else if (!feof(f) && fgetc(f) != EOF)
		fprintf(stderr, "%s: larger than %d bytes\n", path, MAKECRED_MAX_FILE);
	else
		ret = 0;
	fclose(f);
	return ret;
}

static int
makecred_name(const char *path)
{
	uint8_t pub[MAKECRED_MAX_FILE], name[CREDENTIAL_NAME_LEN];
	char hex[2 * CREDENTIAL_NAME_LEN + 1];
	size_t len;

	if (makecred_read(path, pub, &len) != 0)
		return 1;
	if (credential_public_name(pub, len, name, &terr) != 0) {
		fprintf(stderr, "%s: %s\n", path, terr.msg);
		return 1;
	}
	hex_encode(name, sizeof(name), hex);
	printf("%s\n", hex);
	return 0;
}

static int
makecred_make(
    const char *ek_path, const char *name_path, const char *secret_path, const char *out_path)
{
	uint8_t ek[MAKECRED_MAX_FILE], name[MAKECRED_MAX_FILE], secret[MAKECRED_MAX_FILE];
	uint8_t *blob = NULL, *enc = NULL;
	size_t ek_len, name_len, secret_len, blob_len, enc_len;
	FILE *f = NULL;
	int ret = 1;

	if (makecred_read(ek_path, ek, &ek_len) != 0 ||
	    makecred_read(name_path, name, &name_len) != 0 ||
	    makecred_read(secret_path, secret, &secret_len) != 0)
		goto out;
	if (credential_make(ek, ek_len, name, name_len, secret, secret_len, &blob, &blob_len, &enc,
	        &enc_len, &terr) != 0) {
		fprintf(stderr, "makecred: %s\n", terr.msg);
		goto out;
	}
	if ((f = fopen(out_path, "wb")) == NULL ||
	    fwrite(makecred_header, sizeof(makecred_header), 1, f) != 1 ||
	    fwrite(blob, blob_len, 1, f) != 1 || fwrite(enc, enc_len, 1, f) != 1) {
		perror(out_path);
		goto out;
	}
	ret = 0;
out:
	if (f != NULL && fclose(f) != 0 && ret == 0) {
		perror(out_path);
		ret = 1;
	}
	free(blob);
	free(enc);
	return ret;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "name") == 0)
		return makecred_name(argv[2]);
	if (argc == 6 && strcmp(argv[1], "make") == 0)
		return makecred_make(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: makecred name PUBLIC\n"
	                "       makecred make EK_PUBLIC AK_NAME SECRET OUT\n");
	return 2;
}
