/*
 * tpm.h: the map of src/tpm/, what every program knows of TPMs without
 * talking to one: X.509 certificates of the chain (certs.h), attestation
 * evidence (evidence.h), TPM2_MakeCredential and the TPM's KDFs in
 * software (credential.h), the arithmetic of the host-configuration
 * policy (pcrpolicy.c) and the administrator's approval key
 * (approval.c). tss.h is the one header here with tpm2-tss types: only
 * the files that talk to a TPM through ESYS include it.
 */
#ifndef VTPM_TPM_H
#define VTPM_TPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certs.h"
#include "credential.h"
#include "evidence.h"

#define TPM_PCRS       24 /* PCRs of the sha256 bank a policy may select */
#define TPM_DIGEST_LEN 32 /* SHA-256: PCR values and policy digests */

struct pcr_selection {
	uint32_t mask; /* bit i selects sha256 PCR i */
};
struct approval_pub {
	uint8_t x[32], y[32]; /* ECC P-256 point */
};
/* An administrator's signature approving one PCR policy digest. */
struct approval {
	struct approval_pub pub;
	uint8_t policy[TPM_DIGEST_LEN];
	uint8_t sig_r[32], sig_s[32];
};

/* pcrpolicy.c: policy digests computed in software; PCR lists and values.
 * Functions return 0, or -1 when an input is out of range. */
#define PCRPOLICY_SELECTION_LEN 10 /* a marshalled TPML_PCR_SELECTION of one bank */
#define PCRPOLICY_NAME_LEN	34 /* a SHA-256 Name: nameAlg || digest */
struct json_t;
int pcrpolicy_parse(const char *list, struct pcr_selection *sel);
void pcrpolicy_format(const struct pcr_selection *sel, char *buf, size_t len);
struct json_t *pcrpolicy_values_json(uint32_t mask, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN]);
int pcrpolicy_values_parse(struct json_t *o, uint32_t *mask,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN]);
int pcrpolicy_selection(
    const struct pcr_selection *sel, uint8_t out[static PCRPOLICY_SELECTION_LEN]);
int pcrpolicy_digest(const struct pcr_selection *sel,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], uint8_t policy[TPM_DIGEST_LEN]);
int pcrpolicy_approval_public(
    const struct approval_pub *pub, uint8_t *out, size_t max, size_t *len);
int pcrpolicy_approval_name(
    const struct approval_pub *pub, uint8_t name[static PCRPOLICY_NAME_LEN]);
int pcrpolicy_authorize(const struct approval_pub *pub, uint8_t policy[TPM_DIGEST_LEN]);

/* approval.c: the administrator's approval key (ECC P-256, PEM files). */
#define APPROVAL_POLICY_REF "vtpmd approved host configuration"
int approval_key_create(const char *path);
int approval_key_public(const char *path, struct approval_pub *pub);
int approval_key_is_private(const char *path);
int approval_digest(const uint8_t policy[TPM_DIGEST_LEN], uint8_t ahash[TPM_DIGEST_LEN]);
int approval_sign(const char *path, const uint8_t policy[TPM_DIGEST_LEN], struct approval *ap);
int approval_verify(const struct approval *ap);

#endif /* VTPM_TPM_H */
