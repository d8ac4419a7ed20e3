/*
 * credential.h: TPM2_MakeCredential computed in software, for the Privacy
 * CA (vtpm-ca). The CA encrypts a secret to an endorsement key (EK) so that
 * only the TPM holding that EK, and only for the attestation key (AK) whose
 * Name was bound in, recovers it with TPM2_ActivateCredential. The secret
 * sharing and key derivations under it also salt and key vtpmd's sessions
 * with the host TPM (src/hwtpm/hwtpm_seal.c).
 *
 * Accepted EKs are the TCG EK Credential Profile's RSA-2048 (template L-1)
 * and ECC NIST P-256 (L-2) kinds: restricted decryption keys with nameAlg
 * SHA-256 and symmetric AES-128-CFB. Everything here takes and returns TPM
 * wire formats (big-endian marshalled structures); no library type crosses
 * this interface. Every function returns 0, or -1 with err (which may be
 * NULL) saying why.
 */
#ifndef CREDENTIAL_H
#define CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* A Name of a SHA-256 object: TPM_ALG_SHA256 (0x000b) || SHA-256 digest. */
#define CREDENTIAL_NAME_LEN 34
/* The largest credential TPM2_MakeCredential accepts for a SHA-256 EK: the
 * digest size of the EK's nameAlg (TPM 2.0 Part 3, TPM2_MakeCredential). */
#define CREDENTIAL_MAX_SECRET 32

/*
 * Computes the Name of an object from its marshalled TPM2B_PUBLIC (the
 * whole of public, size field included): nameAlg || H(TPMT_PUBLIC). Only
 * nameAlg SHA-256 is accepted.
 */
int credential_public_name(
    const uint8_t *public, size_t len, uint8_t name[static CREDENTIAL_NAME_LEN], struct err *err);

/*
 * TPM2_MakeCredential: protects secret (1 to CREDENTIAL_MAX_SECRET bytes)
 * for the EK whose marshalled TPM2B_PUBLIC is ek_public and the AK whose
 * Name (TPM2B_NAME contents, CREDENTIAL_NAME_LEN bytes, nameAlg SHA-256) is
 * ak_name. On success *blob is the marshalled TPM2B_ID_OBJECT and
 * *enc_secret the marshalled TPM2B_ENCRYPTED_SECRET, both with their size
 * fields, both malloc'd and owned by the caller (free()). On failure both
 * are NULL with length 0 and err says why (an EK of
 * another kind, a malformed input, a library failure). A fresh random seed
 * (RSA) or ephemeral key (ECC) is drawn for every call.
 */
int credential_make(const uint8_t *ek_public, size_t ek_public_len, const uint8_t *ak_name,
    size_t ak_name_len, const uint8_t *secret, size_t secret_len, uint8_t **blob, size_t *blob_len,
    uint8_t **enc_secret, size_t *enc_secret_len, struct err *err);

/* The size of a shared seed: the digest size of SHA-256. */
#define CREDENTIAL_SEED_LEN 32

/*
 * TPM secret sharing (TPM 2.0 Part 1, "Secret Sharing"): fills seed with a
 * fresh secret that only the TPM holding the private half of public (a
 * marshalled TPM2B_PUBLIC of an accepted kind: the EKs above, or an SRK of
 * the same shape) recovers from *enc_secret, the malloc'd marshalled
 * TPM2B_ENCRYPTED_SECRET. label is the purpose: "IDENTITY" for a
 * credential, "SECRET" for the salt of a session (TPM2_StartAuthSession).
 * The caller wipes seed.
 */
int credential_share_secret(const uint8_t *public, size_t public_len, const char *label,
    uint8_t seed[static CREDENTIAL_SEED_LEN], uint8_t **enc_secret, size_t *enc_secret_len,
    struct err *err);

/*
 * The TPM's key derivation functions with SHA-256 (TPM 2.0 Part 1, "Key
 * Derivation Functions"); exposed for known-answer tests. label and use are
 * C strings, hashed with their terminating NUL. The context and party
 * arguments may be NULL when their length is 0. bits (1 to 65536) of output
 * fill (bits + 7) / 8 bytes of out; when bits is not a multiple of 8 the
 * unused high bits of out[0] are cleared.
 *
 * KDFa (SP 800-108 counter mode, HMAC-SHA-256):
 *   HMAC(key, [i]32 || label || 0x00 || context_u || context_v || [bits]32)
 * KDFe (SP 800-56A concatenation KDF, SHA-256):
 *   SHA-256([i]32 || z || use || 0x00 || party_u || party_v)
 */
int credential_kdfa(const uint8_t *key, size_t key_len, const char *label, const uint8_t *context_u,
    size_t context_u_len, const uint8_t *context_v, size_t context_v_len, uint8_t *out,
    size_t bits, struct err *err);
int credential_kdfe(const uint8_t *z, size_t z_len, const char *use, const uint8_t *party_u,
    size_t party_u_len, const uint8_t *party_v, size_t party_v_len, uint8_t *out, size_t bits,
    struct err *err);

#endif /* CREDENTIAL_H */
