/*
 * hwtpm.h: the map of src/hwtpm/, the host-TPM module: vtpmd's only way
 * to the host's TPM (tpm2-tss: ESYS, and SAPI where vtpmd keeps its
 * session cryptography itself). It seals and unseals the vTPMs' state
 * keys under the approved host configuration, and holds the host's side
 * of the chain of trust: EK, Certifying Key, Binding Key, certifications
 * and quotes. tpm2-tss types stay inside this folder (hwtpm_private.h);
 * what crosses this header is project types and marshalled TPM bytes.
 */
#ifndef VTPM_HWTPM_H
#define VTPM_HWTPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "tpm/tpm.h"

/* hwtpm.c, hwtpm_pcr.c, hwtpm_seal.c: the host TPM (tpm2-tss): SRK,
 * salted sessions, the host PCRs (read in an audit session whose answers
 * vtpmd authenticates), sealed keys. Functions that can fail return -1
 * (NULL) with err set: ERR_HOST_TPM when the TPM failed or could not be
 * reached, or when what came back over the link is not what vtpmd sealed
 * or pinned, or does not authenticate (the message says which);
 * hwtpm_unseal also ERR_POLICY (the host PCRs are in no approved
 * configuration) and ERR_FOREIGN (the sealed object is not this TPM's). */
struct hwtpm;
struct hwtpm *hwtpm_open(const char *tcti_conf, const char *pin_path, struct err *err);
void hwtpm_close(struct hwtpm *hw);
int hwtpm_reconnect(struct hwtpm *hw, struct err *err);
bool hwtpm_recover(struct hwtpm *hw);
bool hwtpm_available(const struct hwtpm *hw);
bool hwtpm_is_simulator(const struct hwtpm *hw);
unsigned long hwtpm_command_count(const struct hwtpm *hw);
const struct metrics_hist *hwtpm_command_latency(const struct hwtpm *hw);
int hwtpm_pcr_read(struct hwtpm *hw, const struct pcr_selection *sel,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);
#define HWTPM_SEALED_MAX 64
int hwtpm_seal(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const uint8_t auth_policy[TPM_DIGEST_LEN], uint8_t **blob, size_t *blob_len, struct err *err);
int hwtpm_sealed_public(const uint8_t *blob, size_t blob_len, size_t *pub_len, struct err *err);
/* A TPM Name: nameAlg (SHA-256) || digest of the public area. */
#define HWTPM_NAME_LEN (2 + TPM_DIGEST_LEN)
int hwtpm_sealed_name(const uint8_t *blob, size_t blob_len, uint8_t name[static HWTPM_NAME_LEN],
    struct err *err);
int hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret,
    size_t secret_len, struct err *err);
void hwtpm_flush_pending(struct hwtpm *hw);

/* hwtpm_counter.c: the freshness anchor, an NV counter vtpmd defines in
 * the host TPM, used with its authValue in HMAC sessions (docs/state.md).
 * ERR_ABSENT: no index (and not to define); ERR_FOREIGN: the index there
 * is not vtpmd's; ERR_HOST_TPM otherwise. */
#define HWTPM_COUNTER_NV 0x01300001
int hwtpm_counter_open(struct hwtpm *hw, uint32_t handle, const uint8_t auth[32], bool define,
    uint64_t *value, struct err *err);
int hwtpm_counter_increment(struct hwtpm *hw, struct err *err);
int hwtpm_counter_read(struct hwtpm *hw, uint64_t *value, struct err *err);

/*
 * hwtpm_attest.c: the host TPM's side of the chain of trust: its EK (TCG
 * EK Credential Profile), the Certifying Key (CK, ECC P-256 restricted
 * signing) and the Binding Key (BK, RSA-2048 OAEP decryption), both under
 * the SRK, persistent, looked up once per hwtpm_open; certifications and
 * quotes by the CK. The CK and BK work only in an approved host
 * configuration: their authPolicy is the sealed state keys', and every
 * use is given the host PCRs (sel) and the approval (ap) of their present
 * values; ERR_POLICY when the TPM finds the PCRs are not those. Byte
 * buffers are marshalled TPM structures (TPM wire format), malloc'd and
 * owned by the caller. Returns 0, or -1 with err set (ERR_HOST_TPM, unless
 * a finer kind applies).
 */
enum hwtpm_ek_kind {
	HWTPM_EK_RSA, /* RSA-2048, template L-1 */
	HWTPM_EK_ECC, /* ECC NIST P-256, template L-2 */
};
#define HWTPM_EK_RSA_HANDLE  0x81010001
#define HWTPM_EK_ECC_HANDLE  0x81010002
#define HWTPM_EK_RSA_CERT_NV 0x01c00002
#define HWTPM_EK_ECC_CERT_NV 0x01c0000a
#define HWTPM_CK_HANDLE      0x81000002
#define HWTPM_BK_HANDLE      0x81000003
#define HWTPM_CREDENTIAL_MAX 64 /* a TPM2B_DIGEST */
/* What a TPM signed: a TPMS_ATTEST (the contents of a TPM2B_ATTEST) and
 * its TPMT_SIGNATURE; both malloc'd, freed by hwtpm_attestation_clear. */
struct hwtpm_attestation {
	uint8_t *attest;
	size_t attest_len;
	uint8_t *signature;
	size_t signature_len;
};
void hwtpm_attestation_clear(struct hwtpm_attestation *ev);
int hwtpm_ek_template(enum hwtpm_ek_kind kind, uint8_t **tmpl, size_t *len, struct err *err);
bool hwtpm_public_matches(const uint8_t *tmpl, size_t tmpl_len, const uint8_t *pub,
    size_t pub_len);
int hwtpm_host_ek(struct hwtpm *hw, enum hwtpm_ek_kind kind, uint8_t **ek_public,
    size_t *ek_public_len, uint8_t **ek_cert, size_t *ek_cert_len, struct err *err);
int hwtpm_ck(struct hwtpm *hw, const struct approval_pub *approval, uint8_t **ck_public,
    size_t *len, struct err *err);
int hwtpm_activate_credential(struct hwtpm *hw, enum hwtpm_ek_kind kind, const uint8_t *blob,
    size_t blob_len, const uint8_t *enc_secret, size_t enc_secret_len,
    uint8_t secret[static HWTPM_CREDENTIAL_MAX], size_t *secret_len, struct err *err);
int hwtpm_bk(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    uint8_t **bk_public, size_t *bk_public_len, struct hwtpm_attestation *ev, struct err *err);
int hwtpm_certify_sealed(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, const uint8_t *qualifying,
    size_t qualifying_len, struct hwtpm_attestation *ev, struct err *err);
int hwtpm_quote(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    const uint8_t *qualifying, size_t qualifying_len, struct hwtpm_attestation *ev,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);

#endif /* VTPM_HWTPM_H */
