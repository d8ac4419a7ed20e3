/*
 * evidence.h: TPM 2.0 attestation evidence, parsed and checked. The
 * Virtualization CA (vtpm-ca) checks with it a host Certifying Key's
 * TPM2_Certify of a vTPM's sealed-key object and its TPM2_Quote of the host
 * PCRs; the challenger (vtpm-attest verify) a guest attestation key's
 * TPM2_Quote. Defined in src/tpm/evidence.c, the only file that sees
 * tpm2-tss's marshalling types and OpenSSL's for this purpose: every input
 * is untrusted bytes in TPM wire format (big-endian, exactly as the TPM
 * produced them), every output a project struct with fixed-size fields.
 *
 * A verifier's order of work:
 *   1. evidence_parse_public() of the signing key, and the caller's policy
 *      on it (evidence_key_is_restricted_signing(), a certificate);
 *   2. evidence_verify_signature() of the attestation bytes with that key:
 *      only a restricted signing key's signature makes the bytes a TPM's
 *      own report (the TPM refuses to sign, with such a key, anything that
 *      begins with TPM_GENERATED_VALUE and that it did not make itself);
 *   3. evidence_parse_attest() of the same bytes;
 *   4. evidence_check_quote() or evidence_check_certify() against what
 *      the verifier expects (its nonce, PCR values, certified object).
 *
 * Conventions (as certs.h): functions return 0 or -1; on failure they write
 * a one-line reason to why (why may be NULL) and leave every out-structure
 * zeroed. Nothing is allocated: there is nothing to free.
 *
 * Numbers are the TPM's own (TPM 2.0 Part 2): algorithm identifiers
 * (TPM_ALG_ID), structure tags (TPM_ST), object attributes (TPMA_OBJECT).
 */
#ifndef EVIDENCE_H
#define EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* TPM_ALG_ID values this interface names. */
#define EVIDENCE_ALG_RSA       0x0001
#define EVIDENCE_ALG_SHA1      0x0004
#define EVIDENCE_ALG_KEYEDHASH 0x0008
#define EVIDENCE_ALG_SHA256    0x000b
#define EVIDENCE_ALG_SHA384    0x000c
#define EVIDENCE_ALG_SHA512    0x000d
#define EVIDENCE_ALG_NULL      0x0010
#define EVIDENCE_ALG_RSASSA    0x0014
#define EVIDENCE_ALG_RSAPSS    0x0016
#define EVIDENCE_ALG_ECDSA     0x0018
#define EVIDENCE_ALG_ECC       0x0023
#define EVIDENCE_ALG_SYMCIPHER 0x0025

/* TPM_ST of the attestation structures accepted (others are refused). */
#define EVIDENCE_ST_CERTIFY 0x8017 /* TPM_ST_ATTEST_CERTIFY */
#define EVIDENCE_ST_QUOTE   0x8018 /* TPM_ST_ATTEST_QUOTE */

/* TPMA_OBJECT bits. */
#define EVIDENCE_OBJ_FIXED_TPM      0x00000002u
#define EVIDENCE_OBJ_FIXED_PARENT   0x00000010u
#define EVIDENCE_OBJ_SENSITIVE_ORIG 0x00000020u /* sensitiveDataOrigin */
#define EVIDENCE_OBJ_USER_WITH_AUTH 0x00000040u
#define EVIDENCE_OBJ_ADMIN_WITH_POL 0x00000080u /* adminWithPolicy */
#define EVIDENCE_OBJ_RESTRICTED     0x00010000u
#define EVIDENCE_OBJ_DECRYPT        0x00020000u
#define EVIDENCE_OBJ_SIGN           0x00040000u

/* Sizes: the largest of each field the TPM 2.0 structures allow, or
 * tpm2-tss's capacity where it is smaller (evidence.c asserts they agree):
 * TPM2B_DATA (extraData, qualifyingData) holds 64 bytes in tpm2-tss where
 * the specification allows 66. */
#define EVIDENCE_DIGEST_MAX 64  /* TPMU_HA: SHA-512 */
#define EVIDENCE_NAME_MAX   66  /* TPMU_NAME: hash algorithm || digest */
#define EVIDENCE_DATA_MAX   64  /* TPM2B_DATA */
#define EVIDENCE_RSA_MAX    512 /* an RSA-4096 modulus */
#define EVIDENCE_ECC_MAX    48  /* a NIST P-384 coordinate */
#define EVIDENCE_MAX_BANKS  16  /* TPML_PCR_SELECTION entries */
#define EVIDENCE_MAX_PCRS   32  /* PCRs a TPMS_PCR_SELECTION can select */

/* ---- public areas ---- */

/* The keys whose signatures evidence_verify_signature() checks. */
enum evidence_key {
	EVIDENCE_KEY_NONE = 0, /* any other object: its Name and attributes are
	                        * still read (e.g. a sealed data object) */
	EVIDENCE_KEY_RSA_2048,
	EVIDENCE_KEY_RSA_3072,
	EVIDENCE_KEY_RSA_4096,
	EVIDENCE_KEY_ECC_P256,
	EVIDENCE_KEY_ECC_P384,
};

/*
 * A TPMT_PUBLIC, read from a marshalled TPM2B_PUBLIC. scheme is the signing
 * scheme of an RSA or ECC key (ALG_NULL when it has none, and for other
 * types), scheme_hash its hash. The key itself is filled in for the keys
 * enum evidence_key recognises: the RSA modulus of exactly keyBits / 8
 * bytes, or the ECC coordinates left-padded with zeros to the curve's size.
 */
struct evidence_public {
	uint16_t type;         /* TPMI_ALG_PUBLIC: RSA, ECC, KEYEDHASH, SYMCIPHER */
	enum evidence_key key; /* NONE unless RSA or ECC of a size named above */
	uint16_t name_alg;     /* SHA-1, SHA-256, SHA-384 or SHA-512 */
	uint32_t attributes;   /* TPMA_OBJECT */
	uint8_t auth_policy[EVIDENCE_DIGEST_MAX];
	size_t auth_policy_len; /* 0: no policy */
	uint16_t scheme;
	uint16_t scheme_hash;
	uint16_t curve;    /* ECC: TPM_ECC_CURVE (0x0003 P-256, 0x0004 P-384) */
	uint32_t exponent; /* RSA: public exponent (65537 when the area says 0) */
	uint8_t modulus[EVIDENCE_RSA_MAX];
	size_t modulus_len;
	uint8_t ecc_x[EVIDENCE_ECC_MAX], ecc_y[EVIDENCE_ECC_MAX];
	size_t ecc_len;
	uint8_t name[EVIDENCE_NAME_MAX]; /* nameAlg || H_nameAlg(TPMT_PUBLIC) */
	size_t name_len;
};

/*
 * Reads a marshalled TPM2B_PUBLIC (its size field included; it must
 * account for every byte of buf, and its TPMT_PUBLIC for every byte it
 * declares). Any object type is read; a recognised RSA key must have a
 * modulus of exactly keyBits, a recognised ECC key coordinates no longer
 * than the curve's size (whether the point is on the curve is checked when
 * a signature is verified). The nameAlg must be SHA-1, SHA-256, SHA-384 or
 * SHA-512, so that the Name can be computed.
 */
int evidence_parse_public(
    const uint8_t *buf, size_t len, struct evidence_public *out, struct err *err);

/* Whether pub is what an attestation key must be (TCG: an AK, a host CK):
 * restricted, sign, fixedTPM, fixedParent and sensitiveDataOrigin set,
 * decrypt clear, and a key of a kind this module verifies. */
bool evidence_key_is_restricted_signing(const struct evidence_public *pub);

/* ---- attestation structures ---- */

struct evidence_clock {
	uint64_t clock;         /* ms the TPM has been powered since its last TPM2_Clear */
	uint32_t reset_count;   /* TPM Resets since the last TPM2_Clear */
	uint32_t restart_count; /* TPM Restarts and Resumes since the last Reset or Clear */
	bool safe;              /* no greater clock was reported before this one */
};

/* One bank of a PCR selection: bit i of mask selects PCR i. */
struct evidence_pcr_bank {
	uint16_t hash_alg;
	uint32_t mask;
};

/* A TPML_PCR_SELECTION, in its order, no bank twice. */
struct evidence_pcr_select {
	size_t count;
	struct evidence_pcr_bank bank[EVIDENCE_MAX_BANKS];
};

/* A TPMS_ATTEST of type CERTIFY or QUOTE. */
struct evidence_attest {
	uint16_t type; /* EVIDENCE_ST_CERTIFY or EVIDENCE_ST_QUOTE */
	/* qualifiedSigner: the signing key's qualified Name */
	uint8_t signer[EVIDENCE_NAME_MAX];
	size_t signer_len;
	/* extraData: the verifier's nonce or qualifyingData */
	uint8_t extra[EVIDENCE_DATA_MAX];
	size_t extra_len;
	struct evidence_clock clock;
	uint64_t firmware; /* firmwareVersion */
	/* CERTIFY: the certified object's Name and qualified Name. */
	uint8_t name[EVIDENCE_NAME_MAX];
	size_t name_len;
	uint8_t qualified_name[EVIDENCE_NAME_MAX];
	size_t qualified_name_len;
	/* QUOTE: the PCRs quoted, and the digest of their values. */
	struct evidence_pcr_select pcrs;
	uint8_t pcr_digest[EVIDENCE_DIGEST_MAX];
	size_t pcr_digest_len;
};

/*
 * Reads a marshalled TPMS_ATTEST (the contents of a TPM2B_ATTEST, what
 * tpm2_quote -m and tpm2_certify -o write, and exactly the bytes the TPM
 * signed). Refused: a magic other than TPM_GENERATED_VALUE (0xff544347), a
 * type other than CERTIFY and QUOTE, a malformed or oversized field, a
 * clockInfo.safe other than 0 or 1, a bank selected twice, a selection of
 * a Name longer than EVIDENCE_NAME_MAX, and any byte after the structure.
 * Parsing proves nothing about who made the bytes: see
 * evidence_verify_signature().
 */
int evidence_parse_attest(
    const uint8_t *buf, size_t len, struct evidence_attest *out, struct err *err);

/*
 * Verifies that sig, a marshalled TPMT_SIGNATURE (tpm2-tools' default
 * "tss" format), is the signature over msg of the key in pub (a marshalled
 * TPM2B_PUBLIC). The key must be a restricted signing key (restricted and
 * sign set, decrypt clear) of a kind enum evidence_key names; the
 * signature RSASSA-PKCS1-v1_5 or RSASSA-PSS (any salt length) over an RSA
 * key, or ECDSA over an ECC key, with SHA-256 or SHA-384; when the key
 * names a scheme, the signature must use exactly that scheme and hash.
 */
int evidence_verify_signature(const uint8_t *pub, size_t pub_len, const uint8_t *msg,
    size_t msg_len, const uint8_t *sig, size_t sig_len, struct err *err);

/*
 * The same check with the key given as a DER SubjectPublicKeyInfo (the key
 * of an AK certificate, which the Privacy CA issued after establishing that
 * the key is a restricted signing key in a TPM): an RSA key with RSASSA or
 * RSAPSS, an ECC key with ECDSA, over SHA-256 or SHA-384. Added for the
 * challenger (vtpm-attest verify), which may hold no TPM2B_PUBLIC.
 */
int evidence_verify_signature_spki(const uint8_t *spki, size_t spki_len, const uint8_t *msg,
    size_t msg_len, const uint8_t *sig, size_t sig_len, struct err *err);

/* ---- checks ---- */

/* The values of one bank's PCRs, as the verifier expects them: value[i]
 * holds PCR i (the bank's digest size) for every bit i set in mask. */
struct evidence_pcr_values {
	uint16_t hash_alg;
	uint32_t mask;
	uint8_t value[EVIDENCE_MAX_PCRS][EVIDENCE_DIGEST_MAX];
};

/*
 * The digest TPM2_Quote computes over the selection sel (TPM 2.0 Part 3,
 * TPM2_Quote; PCRComputeCurrentDigest): H(the values of the selected PCRs,
 * bank after bank in sel's order, each bank's PCRs in ascending order),
 * where H is hash_alg, the hash of the quote's signing scheme (not the
 * banks'). The values come from vals (n_vals banks, each at most once),
 * which must hold every selected PCR; values given for unselected PCRs are
 * not used. Writes the digest's size to *out_len.
 */
int evidence_pcr_digest(uint16_t hash_alg, const struct evidence_pcr_select *sel,
    const struct evidence_pcr_values *vals, size_t n_vals, uint8_t out[static EVIDENCE_DIGEST_MAX],
    size_t *out_len, struct err *err);

/*
 * Whether now, a later quote's clockInfo, may follow prev, the last one
 * accepted from the same signing key, on a TPM that was not cleared in
 * between. The TPM's counters (TPM 2.0 Part 1, "Clock", "resetCount",
 * "restartCount"; Part 2, TPMS_CLOCK_INFO):
 *   - resetCount only grows (TPM Reset: a Startup(CLEAR) not after a
 *     Shutdown(STATE)); restartCount grows on TPM Restart and Resume and
 *     returns to 0 on a Reset; TPM2_Clear sets both, and clock, to 0;
 *   - clock only grows while the TPM runs and is saved to NV at an orderly
 *     shutdown and periodically; after an unorderly one it resumes from
 *     the last saved value, possibly below a value already reported, and
 *     the TPM then says so with safe = NO until its next NV update.
 * Hence accepted: resetCount grew; or it is equal and restartCount did not
 * decrease. And clock did not decrease, unless resetCount or restartCount
 * grew and now.safe is NO (the TPM itself warns that a greater value may
 * have been reported). Equal values are accepted (two quotes within one
 * millisecond). Everything else, a TPM2_Clear included, is refused: a
 * verifier that accepts a cleared TPM must drop the key's record (re-enrol)
 * rather than pass it here. Counts are compared as serial numbers (RFC
 * 1982, modulo 2^32), because a TPM obfuscates both counts with a
 * constant per-key offset when the signing key is outside the endorsement
 * and platform hierarchies (Part 3, "Attestation Commands"); a count 2^31
 * or more ahead reads as behind.
 */
int evidence_check_clock(
    const struct evidence_clock *prev, const struct evidence_clock *now, struct err *err);

/*
 * Checks a parsed (and, separately, signature-verified) QUOTE: extraData
 * equals nonce; the quote selects exactly the PCRs vals gives (the same
 * banks with the same masks, banks with an empty mask ignored on either
 * side); its pcrDigest equals evidence_pcr_digest() of those values, H
 * being the hash whose size pcrDigest has (SHA-1, SHA-256, SHA-384,
 * SHA-512: a quote's digest is the signing scheme's); and, when prev is
 * not NULL, evidence_check_clock(prev, &a->clock).
 */
int evidence_check_quote(const struct evidence_attest *a, const uint8_t *nonce, size_t nonce_len,
    const struct evidence_pcr_values *vals, size_t n_vals, const struct evidence_clock *prev,
    struct err *err);

/*
 * Checks a parsed (and, separately, signature-verified) CERTIFY: extraData
 * equals extra (the qualifyingData the verifier asked for) and the
 * certified Name is the Name of certified_public, a marshalled TPM2B_PUBLIC
 * (evidence_parse_public()): the TPM vouches that an object with exactly
 * that public area was loaded in it. The qualified Name is not checked.
 */
int evidence_check_certify(const struct evidence_attest *a, const uint8_t *certified_public,
    size_t certified_public_len, const uint8_t *extra, size_t extra_len, struct err *err);

/* ---- a vEK's evidence (docs/ca-api.md, "Virtualization CA") ---- */

#define EVIDENCE_VEK_NONCE_LEN 32
/* The labels that start the digests, their terminating NUL included. */
#define EVIDENCE_VEK_LABEL     "vtpmd vEK evidence v2"
#define EVIDENCE_VEK_SET_LABEL "vtpmd vEK set v1"
#define EVIDENCE_VEK_UUID_LEN  36

/* The key types a vTPM has a vEK of, in the order of the set's digest. */
enum evidence_vek_type { EVIDENCE_VEK_RSA_2048, EVIDENCE_VEK_ECC_P256, EVIDENCE_VEK_TYPES };

/*
 * The whole set of a vTPM's vEKs, one TPM2B_PUBLIC per type or none
 * (pub NULL, len 0): every vEK vtpmd made for it before its first EK
 * certificate request. Which key is of which type is the caller's check
 * (evidence_parse_public()).
 */
struct evidence_vek_set {
	const uint8_t *pub[EVIDENCE_VEK_TYPES];
	size_t len[EVIDENCE_VEK_TYPES];
};

/*
 * The digest of a vTPM's vEK set:
 *   SHA-256(EVIDENCE_VEK_SET_LABEL with its NUL || for each type in enum
 *           evidence_vek_type's order, its vEK's TPM2B_PUBLIC (the 2-byte
 *           size and the TPMT_PUBLIC), or 0x0000 for none)
 * 0, or -1 with err (ERR_INVALID: a TPM2B_PUBLIC whose size is not its
 * length, a set without any vEK).
 */
int evidence_vek_set_digest(
    const struct evidence_vek_set *set, uint8_t out[static 32], struct err *err);

/*
 * The qualifyingData of the host CK's certification of a vTPM's sealed
 * object and of its quote of the host PCRs, for one vEK:
 *   SHA-256(EVIDENCE_VEK_LABEL with its NUL || nonce (32 bytes, from the
 *           Virtualization CA) || the vEK's TPMT_PUBLIC (vek_public, a
 *           TPM2B_PUBLIC, without its 2-byte size) || the instance UUID as
 *           36 lowercase characters || set_digest, the
 *           evidence_vek_set_digest() of the vTPM's vEKs)
 * so that the TPM's signature names this nonce, this vEK, this vTPM and
 * all the vEKs it has. 0, or -1 with err (a TPM2B_PUBLIC whose size is
 * not its length, a UUID not of 36 lowercase characters).
 */
int evidence_vek_qualifying(const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN],
    const uint8_t *vek_public, size_t vek_public_len, const char *uuid,
    const uint8_t set_digest[static 32], uint8_t out[static 32], struct err *err);

#endif /* EVIDENCE_H */
