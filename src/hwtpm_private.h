/*
 * hwtpm_private.h: what the files of the host-TPM module (hwtpm*.c) share.
 * Only they include it: tpm2-tss types stay inside the module.
 */
#ifndef HWTPM_PRIVATE_H
#define HWTPM_PRIVATE_H

#include <tss2/tss2_esys.h>

/* A persistent key of hwtpm_attest.c, looked up once per connection. */
struct hwtpm_pkey {
	bool found;	  /* tr is its handle */
	bool checked;	  /* pub is its public area, matched against its template */
	ESYS_TR tr;
	TPM2B_PUBLIC pub;
};

/* A TCTI that forwards to the real one and counts commands. */
struct hwtpm_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common; /* must be first */
	TSS2_TCTI_CONTEXT *inner;
	unsigned long commands;
};

struct hwtpm {
	struct hwtpm_tcti tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR srk;
	ESYS_TR session; /* HMAC, salted to the SRK, parameter encryption */
	ESYS_TR policy;	 /* the unseal policy session, reset by each Unseal, or NONE */
	ESYS_TR pending; /* an unsealed object hwtpm_flush_pending drops, or NONE */
	bool simulator;
	/* The last verified approval, so it is checked by the TPM once. */
	bool have_ticket;
	uint8_t ticket_policy[HWTPM_DIGEST_LEN];
	TPMT_TK_VERIFIED ticket;
	TPM2B_NAME approval_name;
	/* hwtpm_attest.c: EKs (RSA, ECC), CK, BK; zeroed by hwtpm_open. */
	struct hwtpm_pkey ek[2], ck, bk;
	uint16_t nv_buffer_max; /* TPM_PT_NV_BUFFER_MAX, 0 until asked */
};

/* hwtpm.c */
void hwtpm_seterr(const char *what, TSS2_RC rc);
void hwtpm_selection(const struct pcr_selection *sel, TPML_PCR_SELECTION *out);
int hwtpm_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    uint8_t out[HWTPM_DIGEST_LEN]);
int hwtpm_start_session(struct hwtpm *hw, TPM2_SE type, ESYS_TR *session);
int hwtpm_enter(struct hwtpm *hw);
/* A host-TPM command that takes longer is taken for a lost TPM (RSA key
 * generation on a slow TPM takes seconds). */
#define HWTPM_TIMEOUT_MS 60000

#endif /* HWTPM_PRIVATE_H */
