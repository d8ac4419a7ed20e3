/*
 * attest_quote.c: vtpm-attest quote. TPM2_Quote of the PCRs asked for,
 * with the attestation key at a persistent handle, and TPM2_PCR_Read of
 * their values, written as the evidence bundle verify reads (attest.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"

static const char aq_help[] =
    "usage: vtpm-attest quote --tcti TCTI --ak-handle HANDLE --pcrs SPEC --nonce HEX\n"
    "           --out FILE\n"
    "\n"
    "Quote PCRs with the attestation key.\n"
    "The manual: vtpm-attest(1), COMMANDS, quote.\n";

int
attest_quote(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tcti", required_argument, NULL, 't'},
	    {"ak-handle", required_argument, NULL, 'a'},
	    {"pcrs", required_argument, NULL, 'p'},
	    {"nonce", required_argument, NULL, 'n'},
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *tcti = getenv("TPM2TOOLS_TCTI"), *pcrs = NULL, *out = NULL;
	struct evidence_pcr_select sel;
	struct evidence_pcr_values *vals = calloc(ATTEST_BANKS, sizeof(*vals));
	struct attest_evidence *ev = calloc(1, sizeof(*ev));
	struct attest_tpm *tpm = NULL;
	uint8_t nonce[EVIDENCE_DATA_MAX];
	size_t nonce_len = 0, n_vals = 0;
	uint32_t ak = 0;
	char *json = NULL;
	struct err err;
	int c, ret = EXIT_USAGE;

	if (vals == NULL || ev == NULL) {
		ret = attest_fail("out of memory");
		goto out;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 't': tcti = optarg; break;
		case 'p': pcrs = optarg; break;
		case 'o': out = optarg; break;
		case 'a':
			if ((ret = attest_parse_handle("quote", "--ak-handle", optarg, &ak)))
				goto out;
			break;
		case 'n':
			if ((ret = attest_parse_hex(
			         "quote", "--nonce", optarg, nonce, sizeof(nonce), &nonce_len)))
				goto out;
			break;
		case 'h':
			fputs(aq_help, stdout);
			ret = EXIT_OK;
			goto out;
		case ':':
			ret = attest_usage("quote", "%s needs a value", argv[optind - 1]);
			goto out;
		default:
			ret = attest_usage("quote", "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	ret = EXIT_USAGE;
	if (optind < argc) {
		attest_usage("quote", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (ak == 0 || pcrs == NULL || nonce_len == 0 || out == NULL) {
		attest_usage("quote", "--ak-handle, --pcrs, --nonce and --out are required");
		goto out;
	}
	if (attest_pcr_spec_parse(pcrs, &sel, vals, &n_vals, &err) == -1) {
		attest_usage("quote", "--pcrs: %s", err.msg);
		goto out;
	}
	ret = EXIT_RUNTIME;
	if ((tpm = attest_tpm_open(tcti, &err)) == NULL ||
	    attest_tpm_quote(tpm, ak, &sel, nonce, nonce_len, ev, &err) == -1) {
		attest_fail("%s", err.msg);
		goto out;
	}
	if ((json = attest_bundle_encode(ev)) == NULL) {
		attest_fail("encoding the bundle: out of memory");
		goto out;
	}
	if (fileio_write_atomic(out, json, strlen(json), 0644) == -1) {
		attest_fail("%s: %s", out, strerror(errno));
		goto out;
	}
	ret = EXIT_OK;
out:
	free(json);
	attest_tpm_close(tpm);
	free(ev);
	free(vals);
	return ret;
}
