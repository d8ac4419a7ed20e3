/*
 * fuzz_attest.c: libFuzzer target for vtpm-attest's readers of untrusted
 * files (src/attest/attest_bundle.c): the evidence bundle
 * (JSON), tpm2-tools' PCR file, and PCR specifications.
 *
 * The whole input goes to each reader. Besides memory safety it checks the
 * contracts: a refusal says why and leaves the output zeroed; an accepted
 * bundle encodes to JSON that parses back to the same evidence; an
 * accepted PCR file's values are of banks the parser knows, with no bank
 * twice.
 *
 * The corpus (tests/fuzz/corpus/attest/) is bundles and PCR files from a
 * vTPM: ATTEST_CORPUS=DIR tests/integration/attest.sh writes them.
 *
 *   make fuzz-build && build/fuzz/fuzz_attest tests/fuzz/corpus/attest
 */
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct attest_evidence fuzz_ev, fuzz_back;
static struct evidence_pcr_values fuzz_vals[ATTEST_BANKS];

static void
fuzz_zeroed(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			abort();
}

static void
fuzz_bundle(const uint8_t *data, size_t size)
{
	char *json;
	struct err err = {0};

	if (attest_bundle_parse(data, size, &fuzz_ev, &err) == -1) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(&fuzz_ev, sizeof(fuzz_ev));
		return;
	}
	if (fuzz_ev.attest_len == 0 || fuzz_ev.signature_len == 0 || fuzz_ev.n_pcrs > ATTEST_BANKS)
		abort();
	json = attest_bundle_encode(&fuzz_ev);
	if (json == NULL ||
	    attest_bundle_parse((uint8_t *)json, strlen(json), &fuzz_back, &err) ==
	        -1 ||
	    memcmp(&fuzz_ev, &fuzz_back, sizeof(fuzz_ev)) != 0)
		abort();
	free(json);
}

static void
fuzz_pcrfile(const uint8_t *data, size_t size)
{
	struct err err = {0};
	size_t n = 99;

	memset(fuzz_vals, 0, sizeof(fuzz_vals));
	if (attest_pcrfile_parse(data, size, fuzz_vals, &n, &err) == -1) {
		if (err.msg[0] == '\0' || n != 0)
			abort();
		fuzz_zeroed(fuzz_vals, sizeof(fuzz_vals));
		return;
	}
	if (n > ATTEST_BANKS)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (attest_bank_size(fuzz_vals[i].hash_alg) == 0 || fuzz_vals[i].mask == 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (fuzz_vals[j].hash_alg == fuzz_vals[i].hash_alg)
				abort();
	}
}

static void
fuzz_spec(const uint8_t *data, size_t size)
{
	struct evidence_pcr_select sel;
	char *s;
	struct err err = {0};
	size_t n = 99;

	if (size > 4096 || (s = malloc(size + 1)) == NULL)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (attest_pcr_spec_parse(s, &sel, fuzz_vals, &n, &err) == -1) {
		if (err.msg[0] == '\0' || n != 0 || sel.count != 0)
			abort();
	} else if (sel.count == 0 || sel.count > ATTEST_BANKS || n != sel.count) {
		abort();
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_bundle(data, size);
	fuzz_pcrfile(data, size);
	fuzz_spec(data, size);
	return 0;
}
