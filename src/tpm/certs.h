/*
 * certs.h: X.509 issuance and checking for vtpmd's certificate authorities
 * (vtpm-ca as Privacy CA and as Virtualization CA) and for the challenger
 * (vtpm-attest). Defined in src/tpm/certs.c, the only file that sees OpenSSL's
 * X.509 types: certificates cross this interface as DER bytes, keys as an
 * opaque handle.
 *
 * Conventions: functions return 0 or -1 (or a verdict enum); when they fail
 * they write a one-line reason to why (why may be NULL). Every uint8_t **der
 * out-parameter receives a malloc'd buffer that the caller frees with free().
 * Times are seconds since the Unix epoch (UTC).
 */
#ifndef CERTS_H
#define CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/*
 * Object identifiers.
 *
 * TCG (registered, "TCG EK Credential Profile for TPM Family 2.0", section
 * 3.1 and 3.2; tcg = 2.23.133):
 */
#define CERTS_OID_TCG_TPM_MANUFACTURER "2.23.133.2.1"  /* tcg-at-tpmManufacturer */
#define CERTS_OID_TCG_TPM_MODEL        "2.23.133.2.2"  /* tcg-at-tpmModel */
#define CERTS_OID_TCG_TPM_VERSION      "2.23.133.2.3"  /* tcg-at-tpmVersion */
#define CERTS_OID_TCG_TPM_SPEC         "2.23.133.2.16" /* tcg-at-tpmSpecification */
#define CERTS_OID_TCG_KP_EK            "2.23.133.8.1"  /* tcg-kp-EKCertificate */
#define CERTS_OID_TCG_KP_AIK           "2.23.133.8.3"  /* tcg-kp-AIKCertificate */

/*
 * vtpmd's own arc: 2.25.<UUID as an integer> (Rec. ITU-T X.667 | ISO/IEC
 * 9834-8 clause 7: an OID under 2.25 needs no registration), from the
 * random (version 4) UUID 86d0667c-cfec-4a80-8d8e-91f2ec557e2a, with sub-arcs
 * allocated by vtpmd:
 *   .1  extension  VtpmdVirtualTPM (the "virtual" marker; see certs.c)
 *   .2  extension  VtpmdHostKey (host of a Certifying Key)
 *   .3  policy     EK of a vtpmd virtual TPM, issued by a Virtualization CA
 *                  after checking the host CK's certification of the vTPM
 *   .4  policy     host Certifying Key: a restricted signing key resident in
 *                  the host TPM, shown to be so by credential activation
 *                  against the host EK
 *   .5  policy     attestation key of a vtpmd virtual TPM
 */
#define CERTS_OID_VTPMD          "2.25.179198627876174750707956299711527616042"
#define CERTS_OID_VIRTUAL_EXT    CERTS_OID_VTPMD ".1"
#define CERTS_OID_HOST_KEY_EXT   CERTS_OID_VTPMD ".2"
#define CERTS_OID_POLICY_VEK     CERTS_OID_VTPMD ".3"
#define CERTS_OID_POLICY_HOST_CK CERTS_OID_VTPMD ".4"
#define CERTS_OID_POLICY_VAK     CERTS_OID_VTPMD ".5"

#define CERTS_DIGEST_LEN      32  /* SHA-256 */
#define CERTS_NAME_MAX        64  /* a common name (X.520 ub-common-name) */
#define CERTS_HOST_CONFIG_MAX 128 /* an approved host configuration id */
#define CERTS_UUID_LEN        36  /* "8-4-4-4-12" hexadecimal, without NUL */
#define CERTS_TPM_STR_MAX     255 /* a TCG attribute string (STRMAX) */

/* notAfter for a certificate without a well-defined expiration date:
 * 99991231235959Z (RFC 5280, 4.1.2.5). */
#define CERTS_NO_EXPIRY INT64_C(253402300799)

/* What the engine (libtpms 0.9) reports in TPM2_GetCapability, used as
 * defaults by certs_tpm_defaults(); callers should pass the values their
 * engine reports. The manufacturer is IBM's TCG vendor id "IBM\0": the EK
 * profile requires a TCG Vendor ID Registry value, and it must agree with
 * TPM_PT_MANUFACTURER, which libtpms answers; "virtual" is stated by the
 * model, the issuer, the policy and the vtpmd extension instead. */
#define CERTS_VTPM_MANUFACTURER 0x49424D00u /* TPM_PT_MANUFACTURER */
#define CERTS_VTPM_MODEL        "vtpmd-vTPM"
#define CERTS_VTPM_FIRMWARE     0x20191023u /* TPM_PT_FIRMWARE_VERSION_1 */
#define CERTS_VTPM_FAMILY       "2.0"       /* TPM_PT_FAMILY_INDICATOR */
#define CERTS_VTPM_LEVEL        0           /* TPM_PT_LEVEL */
#define CERTS_VTPM_REVISION     164         /* TPM_PT_REVISION: 1.64 */

struct certs_validity {
	int64_t not_before;
	int64_t not_after;
};

/* One DER certificate, borrowed. */
struct certs_der {
	const uint8_t *der;
	size_t len;
};

/* Public keys: TPM public areas, SubjectPublicKeyInfo, certificates. */
struct certs_pkey;
struct certs_pkey *certs_pkey_from_rsa(const uint8_t *modulus, size_t len, uint32_t exponent);
struct certs_pkey *certs_pkey_from_ecc_p256(const uint8_t x[static 32], const uint8_t y[static 32]);
struct certs_pkey *certs_pkey_from_spki(const uint8_t *der, size_t len);
struct certs_pkey *certs_pkey_from_cert(const uint8_t *der, size_t len);
void certs_pkey_free(struct certs_pkey *k);
int certs_pkey_spki(const struct certs_pkey *k, uint8_t **der, size_t *len);
int certs_pkey_digest(const struct certs_pkey *k, uint8_t out[static CERTS_DIGEST_LEN]);
int certs_cert_key_digest(const uint8_t *der, size_t len, uint8_t out[static CERTS_DIGEST_LEN]);
/* Whether a certificate certifies exactly this RSA key (modulus, exponent;
 * 0 for 65537) or P-256 point, as a TPM public area holds them: 1, 0, or -1
 * when the certificate cannot be read. No check of the key (cheap). */
int certs_cert_key_is_rsa(
    const uint8_t *der, size_t len, const uint8_t *modulus, size_t modulus_len, uint32_t exponent);
int certs_cert_key_is_p256(
    const uint8_t *der, size_t len, const uint8_t x[static 32], const uint8_t y[static 32]);
/* A certificate's serial number in lowercase hex (RFC 5280: at most 20
 * octets). */
#define CERTS_SERIAL_HEX_MAX 40
int certs_cert_serial(const uint8_t *der, size_t len, char out[static CERTS_SERIAL_HEX_MAX + 1]);

/* CA material: an ECC P-256 key (unencrypted PKCS#8 PEM, mode 0600: its
 * protection is the file's) and its certificate (PEM). A ROOT may certify
 * issuing CAs (pathlen 1); an ISSUING CA certifies only end entities
 * (pathlen 0), self-signed (parent NULL) or under a root. */
enum certs_ca_kind { CERTS_CA_ROOT, CERTS_CA_ISSUING };
struct certs_ca;
struct certs_ca *certs_ca_create(const char *name, enum certs_ca_kind kind,
    const struct certs_ca *parent, const struct certs_validity *validity, const char *key_path,
    const char *cert_path, struct err *err);
struct certs_ca *certs_ca_load(
    const char *key_path, const char *cert_path, struct err *err);
void certs_ca_free(struct certs_ca *ca);
int certs_ca_cert(const struct certs_ca *ca, uint8_t **der, size_t *len);

/* The TPM an EK certificate describes. */
struct certs_tpm {
	uint32_t manufacturer;          /* TCG vendor id, TPM_PT_MANUFACTURER */
	char model[CERTS_NAME_MAX + 1]; /* part number */
	uint32_t firmware;              /* TPM_PT_FIRMWARE_VERSION_1 */
	char family[8];                 /* "2.0" */
	uint32_t level, revision;       /* TPM_PT_LEVEL, TPM_PT_REVISION */
};
void certs_tpm_defaults(struct certs_tpm *tpm);

/* The vtpmd extension: what the Virtualization CA checked. */
struct certs_virtual {
	bool is_virtual;
	uint8_t ck_digest[CERTS_DIGEST_LEN]; /* SHA-256 of the host CK's SubjectPublicKeyInfo */
	char host_config[CERTS_HOST_CONFIG_MAX + 1];
	char instance_uuid[CERTS_UUID_LEN + 1];
	char host[CERTS_NAME_MAX + 1]; /* the CK certificate's host name; "" when absent */
};

/* Virtualization CA: an EK certificate per the TCG EK Credential Profile,
 * with the vtpmd extension. keyUsage follows the key: keyEncipherment for
 * RSA, keyAgreement for ECC. */
struct certs_ek_req {
	const struct certs_pkey *ek;
	struct certs_tpm tpm;
	struct certs_virtual virt;
	struct certs_validity validity;
};
int certs_issue_ek(const struct certs_ca *ca, const struct certs_ek_req *req, uint8_t **der,
    size_t *len, struct err *err);

/* Privacy CA: the host Certifying Key's certificate, subject CN=host. */
struct certs_ck_req {
	const struct certs_pkey *ck;
	const char *host;
	/* SHA-256 of the host EK's SubjectPublicKeyInfo */
	uint8_t host_ek_digest[CERTS_DIGEST_LEN];
	struct certs_validity validity;
};
int certs_issue_ck(const struct certs_ca *ca, const struct certs_ck_req *req, uint8_t **der,
    size_t *len, struct err *err);

/* Checking. The chain must lead to one of roots (self-signed) through
 * untrusted; no purpose or EKU is imposed, so TCG EKUs are accepted;
 * validity is judged at the time at. */
enum certs_verdict {
	CERTS_VALID = 0,
	CERTS_MALFORMED,     /* an input is not a DER certificate */
	CERTS_UNTRUSTED,     /* no chain to a trusted root */
	CERTS_BAD_SIGNATURE, /* a signature in the chain does not verify */
	CERTS_EXPIRED,
	CERTS_NOT_YET_VALID,
	CERTS_NOT_CA,  /* an issuer in the chain is not a CA */
	CERTS_INVALID, /* anything else; why says what */
};
enum certs_verdict certs_verify_chain(const struct certs_der *leaf,
    const struct certs_der *untrusted, size_t n_untrusted, const struct certs_der *roots,
    size_t n_roots, int64_t at, struct err *err);
const char *certs_verdict_name(enum certs_verdict v);
enum certs_verdict certs_verify_path(const struct certs_der *leaf,
    const struct certs_der *untrusted, size_t n_untrusted, const struct certs_der *roots,
    size_t n_roots, int64_t at, struct certs_der *path, size_t path_max, size_t *n_path,
    struct err *err);
void certs_path_clear(struct certs_der *path, size_t *n);

/* Reading certificates. certs_parse_virtual() returns 0 with is_virtual
 * false when the certificate has no vtpmd extension, -1 when it is
 * malformed. */
struct certs_ek_info {
	char manufacturer[CERTS_TPM_STR_MAX + 1]; /* e.g. "id:49424D00" */
	char model[CERTS_TPM_STR_MAX + 1];
	char version[CERTS_TPM_STR_MAX + 1]; /* e.g. "id:20191023" */
	bool has_spec;                       /* tpmSpecification present */
	char family[CERTS_TPM_STR_MAX + 1];
	uint32_t level, revision;
};
int certs_parse_virtual(
    const uint8_t *der, size_t len, struct certs_virtual *out, struct err *err);
int certs_ek_info(
    const uint8_t *der, size_t len, struct certs_ek_info *out, struct err *err);
struct certs_host_key {
	char host[CERTS_NAME_MAX + 1];
	uint8_t host_ek_digest[CERTS_DIGEST_LEN];
};
int certs_parse_ck(
    const uint8_t *der, size_t len, struct certs_host_key *out, struct err *err);

/* Privacy CA: a guest attestation key's certificate. The TPM attributes
 * (subjectAltName, subjectDirectoryAttributes when has_spec) and the vtpmd
 * extension (when virt.is_virtual) are those of the vEK certificate, which
 * the caller has verified, given as values: certs_ak_from_ek() reads them
 * from it; nothing of the certificate's DER is copied. An empty subject
 * makes the subjectAltName critical (RFC 5280), as WebAuthn's TPM
 * attestation expects, and requires the TPM attributes; otherwise the
 * subject is CN=subject, and without TPM attributes (tpm.manufacturer
 * empty) the certificate is a plain one. */
struct certs_ak_req {
	const struct certs_pkey *ak;
	const char *subject;
	struct certs_ek_info tpm;
	struct certs_virtual virt;
	struct certs_validity validity;
};
int certs_ak_from_ek(const uint8_t *der, size_t len, struct certs_ak_req *req, struct err *err);
int certs_issue_ak(const struct certs_ca *ca, const struct certs_ak_req *req, uint8_t **der,
    size_t *len, struct err *err);

/* Profiles: a certificate from elsewhere (a CA's answer) checked against
 * what vtpmd's CAs issue (certs_issue_ek, certs_issue_ck), and a trust
 * anchor (a self-signed CA certificate). 0, or -1 with the reason. */
int certs_check_root(const uint8_t *der, size_t len, struct err *err);
int certs_check_vek(
    const uint8_t *der, size_t len, struct certs_ek_info *info, struct err *err);
int certs_check_ck(
    const uint8_t *der, size_t len, struct certs_host_key *out, struct err *err);
/* An attestation key's certificate, whoever issued it, as a challenger
 * takes it (vtpm-attest verify): CA:FALSE, digitalSignature when it states
 * a keyUsage, extKeyUsage tcg-kp-AIKCertificate, and nothing of another
 * role (tcg-kp-EKCertificate, the vEK or host-CK policy, the host-key
 * extension); with the virtual marker, the vAK policy. */
int certs_check_ak(const uint8_t *der, size_t len, struct err *err);

/* Files: a certificate as PEM (replaced crash-safely, mode 0644); reading
 * accepts PEM or DER and yields DER. */
int certs_write_pem(const char *path, const uint8_t *der, size_t len);
int certs_read(const char *path, uint8_t **der, size_t *len);

/* PEM text in memory (vtpm-ca's protocol). certs_pem_next() reads the
 * next certificate of text[*off..len) as malloc'd DER and moves *off past
 * it: 1, 0 when none follows, -1 when one is malformed. certs_pem_encode()
 * returns malloc'd PEM text, or NULL. */
int certs_pem_next(const char *text, size_t len, size_t *off, uint8_t **der, size_t *der_len,
    struct err *err);
char *certs_pem_encode(const uint8_t *der, size_t len);
/* Whether issuer names and signed cert (its signature verifies with
 * issuer's key): 1, 0, or -1 when either is not a DER certificate. A
 * self-signed certificate is issued by itself. */
int certs_issued_by(const uint8_t *cert, size_t cert_len, const uint8_t *issuer, size_t issuer_len);
/* A certificate's subject as one RFC 2253 line. */
int certs_subject(const uint8_t *der, size_t len, char *out, size_t out_len);

#endif /* CERTS_H */
