/*
 * bench_pcrread: what authenticating the host PCR reads costs. vtpmd reads
 * the host PCRs (hwtpm_pcr_read) in an audit session salted to the SRK,
 * whose response HMAC it checks; the peer is the unauthenticated read
 * that tpm2-tools and earlier vtpmd make, TPM2_PCR_Read without a session
 * (tpm2-tss's ESYS), on the same TPM in the same run.
 *
 *   bench_pcrread [-n N] -t TCTI [-p PCRS]
 *
 * PCRS is a comma-separated list of at most 8 (one answer's worth;
 * default 0,2,4,7: vtpmd's default `pcrs`). Rounds alternate who goes
 * first. Prints "RESULT pcrread.median us NAME V" (and .p90) and "RESULT
 * pcrread.commands count NAME V" (host-TPM commands per read) for "vtpmd"
 * and "esys".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "hwtpm/hwtpm.h"

static void
pcrread_usage(void)
{
	fprintf(stderr, "usage: bench_pcrread [-n N] -t TCTI [-p PCRS]\n"
	                "  -n N     timed reads of each (default 200)\n"
	                "  -t TCTI  the host TPM (a tpm2-tss TCTI string)\n"
	                "  -p PCRS  at most 8 sha256 PCRs to read, e.g. 0,2,4,7 (the default)\n");
	exit(2);
}

static int64_t
pcrread_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
pcrread_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Prints the median and p90 of n samples (sorted here) for name. */
static void
pcrread_report(const char *name, int64_t *us, int n)
{
	qsort(us, (size_t)n, sizeof(*us), pcrread_cmp);
	printf("RESULT pcrread.median us %s %lld\n", name, (long long)us[(n - 1) / 2]);
	printf("RESULT pcrread.p90 us %s %lld\n", name, (long long)us[(n * 9 - 1) / 10]);
}

/* The unauthenticated read of the peer: one TPM2_PCR_Read (of at most 8
 * PCRs) without a session. */
static void
pcrread_esys(ESYS_CONTEXT *esys, const struct pcr_selection *sel)
{
	uint8_t buf[PCRPOLICY_SELECTION_LEN];
	TPML_PCR_SELECTION want, *got = NULL;
	TPML_DIGEST *digests = NULL;
	UINT32 counter;
	size_t off = 0;

	if (pcrpolicy_selection(sel, buf) == -1 ||
	    Tss2_MU_TPML_PCR_SELECTION_Unmarshal(buf, sizeof(buf), &off, &want) != TSS2_RC_SUCCESS)
		fatalx(1, "select the PCRs");
	if (Esys_PCR_Read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &want, &counter, &got,
	        &digests) != TSS2_RC_SUCCESS)
		fatalx(1, "Esys_PCR_Read");
	if (digests->count != (UINT32)__builtin_popcount(sel->mask))
		fatalx(1, "Esys_PCR_Read: %u values for %d PCRs", digests->count,
		    __builtin_popcount(sel->mask));
	Esys_Free(got);
	Esys_Free(digests);
}

static uint32_t
pcrread_mask(const char *list)
{
	uint32_t mask = 0;
	char *end;

	for (const char *p = list; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		long i = strtol(p, &end, 10);

		if (end == p || i < 0 || i >= TPM_PCRS || (*end != ',' && *end != '\0'))
			pcrread_usage();
		mask |= 1u << i;
	}
	return mask;
}

int
main(int argc, char **argv)
{
	struct pcr_selection sel = {.mask = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7};
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	TSS2_TCTI_CONTEXT *tcti = NULL;
	ESYS_CONTEXT *esys = NULL;
	const char *conf = NULL;
	int64_t *vt, *es, t0;
	unsigned long before;
	struct hwtpm *hw;
	struct err err;
	int n = 200, c;

	log_init("bench_pcrread", LOG_LEVEL_INFO);
	while ((c = getopt(argc, argv, "n:t:p:")) != -1) {
		switch (c) {
		case 'n': n = atoi(optarg); break;
		case 't': conf = optarg; break;
		case 'p': sel.mask = pcrread_mask(optarg); break;
		default: pcrread_usage();
		}
	}
	if (conf == NULL || n < 1 || sel.mask == 0 || __builtin_popcount(sel.mask) > 8)
		pcrread_usage();
	if ((hw = hwtpm_open(conf, NULL, &err)) == NULL)
		fatalx(1, "host TPM: %s", err.msg);
	if (Tss2_TctiLdr_Initialize(conf, &tcti) != TSS2_RC_SUCCESS ||
	    Esys_Initialize(&esys, tcti, NULL) != TSS2_RC_SUCCESS)
		fatalx(1, "ESYS on %s", conf);
	vt = calloc((size_t)n, sizeof(*vt));
	es = calloc((size_t)n, sizeof(*es));
	if (vt == NULL || es == NULL)
		fatalx(1, "out of memory");
	before = hwtpm_command_count(hw);
	if (hwtpm_pcr_read(hw, &sel, values, &err) == -1)
		fatalx(1, "hwtpm_pcr_read: %s", err.msg);
	printf("RESULT pcrread.commands count vtpmd %lu\n", hwtpm_command_count(hw) - before);
	printf("RESULT pcrread.commands count esys 1\n");
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 2; k++) {
			t0 = pcrread_now_us();
			if ((i + k) % 2 == 0) {
				if (hwtpm_pcr_read(hw, &sel, values, &err) == -1)
					fatalx(1, "hwtpm_pcr_read: %s", err.msg);
				vt[i] = pcrread_now_us() - t0;
			} else {
				pcrread_esys(esys, &sel);
				es[i] = pcrread_now_us() - t0;
			}
		}
	}
	pcrread_report("vtpmd", vt, n);
	pcrread_report("esys", es, n);
	free(vt);
	free(es);
	Esys_Finalize(&esys);
	Tss2_TctiLdr_Finalize(&tcti);
	hwtpm_close(hw);
	return 0;
}
