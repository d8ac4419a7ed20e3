/*
 * vtpm-attest: the guest's side of attestation (quote, enroll with the
 * Privacy CA) and the challenger (verify).
 *
 * This header is the map of src/attest/: the prototypes of its files,
 * grouped by the file that defines them (main.c holds the command table).
 * It uses src/tpm/ (evidence.h: TPM structures, signatures, quote checks;
 * certs.h: X.509) and src/common/. tpm2-tss's ESYS types stay in
 * attest_tpm.c; OpenSSL's in evidence.c and certs.c; jansson's in the files
 * that read or write JSON (attest_bundle.c, attest_http.c, attest_enroll.c).
 *
 * Conventions: functions return 0 or -1 and, when they fail, write a
 * one-line reason to why (why may be NULL), as evidence.h and certs.h do.
 * Commands return vtpmd's exit statuses: EXIT_OK, EXIT_RUNTIME (refused,
 * or failed), EXIT_USAGE.
 */
#ifndef VTPM_ATTEST_H
#define VTPM_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define ATTEST_WHY_MAX      256
#define ATTEST_ATTEST_MAX   2048 /* a TPMS_ATTEST (a quote is ~150 bytes) */
#define ATTEST_SIG_MAX      1024 /* a TPMT_SIGNATURE (RSA-4096: 518) */
#define ATTEST_PUBLIC_MAX   1024 /* a TPM2B_PUBLIC (RSA-4096: ~620) */
#define ATTEST_BANKS        4    /* sha1, sha256, sha384, sha512 */
#define ATTEST_BUNDLE_MAX   (64u << 10)
#define ATTEST_PCRFILE_SIZE 132 /* tpm2-tools' TPML_PCR_SELECTION in a PCR file */

/* attest.c: main, the command table, and what every command shares. */
int attest_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int attest_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int attest_parse_hex(
    const char *cmd, const char *what, const char *hex, uint8_t *out, size_t max, size_t *len);
int attest_parse_handle(const char *cmd, const char *what, const char *s, uint32_t *handle);

/*
 * attest_bundle.c: the evidence bundle (JSON) and tpm2-tools' files, as
 * pure parsers over untrusted bytes (no allocation survives a call).
 *
 * The bundle: {"attest": B64 TPMS_ATTEST, "signature": B64 TPMT_SIGNATURE,
 * "pcrs": {"sha256": {"16": HEX, ...}, ...}, "ak_public": B64 TPM2B_PUBLIC
 * (optional)}. Bank names sha1, sha256, sha384, sha512; PCR indexes 0-31
 * in decimal; each value exactly the bank's digest size.
 */
struct attest_evidence {
	uint8_t attest[ATTEST_ATTEST_MAX];
	size_t attest_len;
	uint8_t signature[ATTEST_SIG_MAX];
	size_t signature_len;
	uint8_t ak_public[ATTEST_PUBLIC_MAX];
	size_t ak_public_len; /* 0: not given */
	struct evidence_pcr_values pcrs[ATTEST_BANKS];
	size_t n_pcrs;
};
int attest_bundle_parse(
    const uint8_t *buf, size_t len, struct attest_evidence *ev, struct err *err);
/* The bundle as JSON text, malloc'd (free()), or NULL. */
char *attest_bundle_encode(const struct attest_evidence *ev);
/*
 * tpm2-tools 5.x's PCR file (tpm2_quote -o, tpm2_pcrread -o, "serialized"
 * format, host byte order = little-endian): a TPML_PCR_SELECTION as laid
 * out in memory (ATTEST_PCRFILE_SIZE bytes), a 32-bit count of TPML_DIGEST
 * that follow, each as laid out in memory (a 32-bit count and 8
 * TPM2B_DIGEST of a 16-bit size and 64 bytes). The digests are the
 * selected PCRs' values, bank after bank in the selection's order, PCRs in
 * ascending order. Writes the banks with PCRs selected to vals (at most
 * ATTEST_BANKS), their number to *n.
 */
#define AB_PCRFILE_DIGESTS 8  /* TPM2B_DIGESTs in a TPML_DIGEST */
#define AB_PCRFILE_DIGEST  66 /* a TPM2B_DIGEST as laid out in memory */
#define AB_PCRFILE_LIST	   (4 + AB_PCRFILE_DIGESTS * AB_PCRFILE_DIGEST)
#define AB_PCRFILE_BANK	   8 /* a TPMS_PCR_SELECTION as laid out in memory */
int attest_pcrfile_parse(const uint8_t *buf, size_t len, struct evidence_pcr_values *vals,
    size_t *n, struct err *err);
/*
 * A PCR specification: banks separated by '+', each "BANK:PCR[=HEX],...",
 * e.g. "sha256:0,1,16" (a selection) or "sha256:16=ab..,17=cd.." (values).
 * Writes the selection to sel and, for PCRs given a value, the value to
 * vals (with its bit in vals' mask; a bank without values has mask 0).
 */
int attest_pcr_spec_parse(const char *spec, struct evidence_pcr_select *sel,
    struct evidence_pcr_values *vals, size_t *n_vals, struct err *err);
uint16_t attest_bank_alg(const char *name);
const char *attest_bank_name(uint16_t alg);
size_t attest_bank_size(uint16_t alg);

/*
 * attest_verify.c: the challenger. attest_verify_quote() is a pure
 * function of its inputs (no file, clock or network): a benchmark calls it
 * in a loop. The command (attest_verify) adds the files, the state of the
 * last quote seen from each AK and the revocation check.
 */
enum attest_policy {
	ATTEST_ACCEPT_VIRTUAL = 0,
	ATTEST_REJECT_VIRTUAL,
	ATTEST_REQUIRE_HOST_CONFIG,
};
struct attest_check {
	struct certs_der ak_cert;
	const struct certs_der *untrusted;
	size_t n_untrusted;
	const struct certs_der *roots; /* the Privacy CA's root(s) */
	size_t n_roots;
	int64_t now; /* when the certificates must be valid */
	const struct attest_evidence *ev;
	const uint8_t *nonce;
	size_t nonce_len;
	const struct evidence_pcr_values *want; /* values required (--pcrs), or NULL */
	size_t n_want;
	enum attest_policy policy;
	const char *host_config;           /* ATTEST_REQUIRE_HOST_CONFIG */
	const struct evidence_clock *prev; /* last quote accepted from this AK, or NULL */
};
struct attest_result {
	bool trusted;
	char reason[ATTEST_WHY_MAX];  /* why not trusted */
	char verdict[ATTEST_WHY_MAX]; /* what the evidence shows, when it verified */
	struct certs_virtual virt;
	uint8_t ak_digest[CERTS_DIGEST_LEN]; /* SHA-256 of the AK's SubjectPublicKeyInfo */
	struct evidence_clock clock;
};
/* Fills res (zeroed first); returns 0 when trusted, -1 when refused (with
 * res->reason). */
int attest_verify_quote(const struct attest_check *chk, struct attest_result *res);
/* The state of the last quote accepted from an AK: DIR/<ak digest hex>.
 * load: 1 found, 0 none, -1 unreadable. */
int attest_state_load(const char *dir, const uint8_t digest[static CERTS_DIGEST_LEN],
    struct evidence_clock *clock, struct err *err);
int attest_state_save(const char *dir, const uint8_t digest[static CERTS_DIGEST_LEN],
    const struct evidence_clock *clock, struct err *err);
int attest_verify(int argc, char **argv);

/* attest_tpm.c: the TPM through tpm2-tss ESYS (the only file that sees it). */
struct attest_tpm;
struct attest_tpm *attest_tpm_open(const char *tcti, struct err *err);
void attest_tpm_close(struct attest_tpm *tpm);
/* TPM2_Quote of sel with the key at a persistent handle (empty auth), then
 * TPM2_PCR_Read of what it quoted; fills ev, ak_public included. */
int attest_tpm_quote(struct attest_tpm *tpm, uint32_t ak_handle,
    const struct evidence_pcr_select *sel, const uint8_t *nonce, size_t nonce_len,
    struct attest_evidence *ev, struct err *err);
/* The marshalled TPM2B_PUBLIC of a persistent object. */
int attest_tpm_read_public(struct attest_tpm *tpm, uint32_t handle, uint8_t *out, size_t max,
    size_t *len, struct err *err);
/* The contents of an NV index, malloc'd into *buf (free()). */
int attest_tpm_nv_read(
    struct attest_tpm *tpm, uint32_t index, uint8_t **buf, size_t *len, struct err *err);
/* The EK of the TCG default template (L-1 RSA-2048, L-2 ECC P-256), made
 * with TPM2_CreatePrimary and flushed: its marshalled TPM2B_PUBLIC. */
int attest_tpm_ek_public(struct attest_tpm *tpm, bool ecc, uint8_t *out, size_t max, size_t *len,
    struct err *err);
/* TPM2_ActivateCredential: blob and enc_secret are marshalled
 * TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET (size fields included). The
 * AK (persistent, admin role with empty auth) and the EK (persistent, or
 * 0: created from the TCG template of ek_public's type, and flushed), with
 * PolicySecret(TPM_RH_ENDORSEMENT). */
int attest_tpm_activate(struct attest_tpm *tpm, uint32_t ak_handle, uint32_t ek_handle,
    const uint8_t *ek_public, size_t ek_public_len, const uint8_t *blob, size_t blob_len,
    const uint8_t *enc_secret, size_t enc_secret_len, uint8_t *secret, size_t max,
    size_t *secret_len, struct err *err);

/* attest_quote.c: quote. */
int attest_quote(int argc, char **argv);

/* attest_http.c: one HTTP/1.1 request to vtpm-ca (https://HOST:PORT, or
 * http:// on loopback), over TLS checked by --ca-tls-root or --ca-tls-pin,
 * which every command talking to vtpm-ca takes (ATTEST_TLS_OPTIONS in its
 * option table, attest_http_tls_option for their values). */
#define ATTEST_OPT_CA_TLS_ROOT 0x100
#define ATTEST_OPT_CA_TLS_PIN  0x101
#define ATTEST_TLS_OPTIONS                                                  \
	{"ca-tls-root", required_argument, NULL, ATTEST_OPT_CA_TLS_ROOT},   \
	{                                                                   \
		"ca-tls-pin", required_argument, NULL, ATTEST_OPT_CA_TLS_PIN \
	}
int attest_http_tls_option(const char *cmd, int opt, const char *value);
int attest_http_check_url(const char *cmd, const char *url);
const struct tls_peer *attest_http_tls_peer(void);
struct json_t;
int attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, struct err *err);
/* Asks vtpm-ca whether the certificate with serial (hex) is revoked:
 * 0 good, 1 revoked (reason in why), -1 unknown or unreachable. */
int attest_http_status(const char *base_url, const char *serial, struct err *err);

/*
 * attest_revoke.c: revocation of an AK certificate's whole chain. The
 * chain's links, AK first: the AK certificate's own reference, then the vEK
 * certificate and the CK certificate its VtpmdLineage names (a vTPM's AK
 * without it is refused: its chain cannot be checked). The checks look the
 * links up from the CK down and name the first revoked ("CK certificate
 * SERIAL is revoked …"); 0 when none is, -1 with err otherwise (revoked,
 * or revocation unknown: a link's issuer without a CRL, the CA
 * unreachable). attest_revoked_crls is a pure function of loaded CRLs.
 */
#define ATTEST_CHAIN_MAX    3
#define ATTEST_CRL_MAX      8
#define ATTEST_CRL_FILE_MAX (16u << 20)
struct attest_chain {
	struct certs_ref link[ATTEST_CHAIN_MAX]; /* AK, vEK, CK */
	size_t n;
};
int attest_chain_of(const struct certs_der *ak, struct attest_chain *c, struct err *err);
const char *attest_chain_name(size_t i); /* "AK", "vEK", "CK" */
int attest_revoked_crls(
    const struct certs_crls *crls, const struct attest_chain *c, struct err *err);
int attest_revoked_ca(const char *base_url, const struct attest_chain *c, struct err *err);
/* Reads and checks CRL files (PEM or DER) once: each signed by a CA among
 * issuers or roots that chains to roots, current at now (certs_crls_add). */
int attest_crls_load(const char *const *paths, size_t n, const struct certs_der *issuers,
    size_t n_issuers, const struct certs_der *roots, size_t n_roots, int64_t now,
    struct certs_crls **out, struct err *err);

/* attest_enroll.c: enroll, challenge, certify. */
int attest_enroll(int argc, char **argv);
int attest_challenge(int argc, char **argv);
int attest_certify(int argc, char **argv);

#endif /* VTPM_ATTEST_H */
