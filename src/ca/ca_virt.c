/*
 * ca_virt.c: the Virtualization CA (docs/ca-api.md): a vTPM's EK
 * certificate, issued when the host's TPM vouches for the vTPM.
 *
 * The evidence is the host Certifying Key's TPM2_Certify of the sealed
 * object that holds the vTPM's state key, and its TPM2_Quote of the host
 * PCRs, both with qualifyingData = SHA-256(vEK's TPM2B_PUBLIC). Together
 * they say: a TPM whose CK a trusted Privacy CA certified holds an object
 * that cannot leave it (fixedTPM, fixedParent), that only the policy can
 * open (userWithAuth clear), whose policy is PolicyAuthorize by a trusted
 * approval key, and this was asked for this vEK; and that TPM's PCRs are
 * an approved host configuration. Every check that fails refuses with 403
 * and names what to do; nothing is issued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca.h"

/* What the checks establish, for the certificate. */
struct vt_checked {
	struct certs_host_key host;
	uint8_t ck_digest[CERTS_DIGEST_LEN];
	struct ca_host_config hc;
	struct evidence_public vek;
	char ck_serial[CERTS_SERIAL_HEX_MAX + 1];
};

/* The CK certificate: from a trusted Privacy CA, a CK's, not revoked. */
static int
vt_check_ck(
    struct ca_server *s, const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
{
	struct certs_der leaf = {q->ck_cert.der, q->ck_cert.len};
	struct err err;
	int rv;

	if (ca_trust_verify(s->db, CA_TRUST_PRIVACY, &leaf, NULL, 0, true, time(NULL), &err) == -1) {
		ca_refuse(r, 403,
		    "the CK certificate must come from a Privacy CA trusted with "
		    "'vtpm-ca trust add --privacy CA.pem'",
		    "CK certificate refused: %s", err.msg);
		return -1;
	}
	if (certs_parse_ck(leaf.der, leaf.len, &c->host, &err) == -1) {
		ca_refuse(r, 403,
		    "enrol the host's Certifying Key with kind \"ck\"; an AK certificate "
		    "cannot vouch for vTPMs",
		    "CK certificate refused: %s", err.msg);
		return -1;
	}
	rv = ca_trust_revoked(s->db, leaf.der, leaf.len, &err);
	if (rv != 0) {
		ca_refuse(r, rv == 1 ? 403 : 500,
		    rv == 1 ? "a revoked host cannot vouch for vTPMs: enrol a new CK"
		            : "try again; see vtpm-ca's log",
		    "CK certificate refused: %s", err.msg);
		return -1;
	}
	if (certs_cert_key_digest(leaf.der, leaf.len, c->ck_digest) == -1 ||
	    certs_cert_serial(leaf.der, leaf.len, c->ck_serial) == -1) {
		ca_refuse(r, 403, NULL, "CK certificate refused: its key or serial cannot be read");
		return -1;
	}
	return 0;
}

/* One signed attestation: the CK's signature, then its type. */
static int
vt_attest(const uint8_t *spki, size_t spki_len, const struct ca_signed *ev, uint16_t type,
    const char *what, struct evidence_attest *a, struct ca_reply *r)
{
	struct err err;

	if (evidence_verify_signature_spki(spki, spki_len, ev->attest, ev->attest_len,
	        ev->signature, ev->signature_len, &err) == -1) {
		ca_refuse(r, 403, "sign it with the CK the certificate names",
		    "%s: the signature does not verify with the CK certificate's key: %s", what,
		    err.msg);
		return -1;
	}
	if (evidence_parse_attest(ev->attest, ev->attest_len, a, &err) == -1) {
		ca_refuse(r, 403, "send the TPMS_ATTEST the TPM signed", "%s: %s", what, err.msg);
		return -1;
	}
	if (a->type != type) {
		ca_refuse(r, 403, "certify: TPM2_Certify; quote: TPM2_Quote",
		    "%s is a TPMS_ATTEST of type 0x%04x, not 0x%04x", what, a->type, type);
		return -1;
	}
	return 0;
}

/* The sealed object: sealed data that cannot leave its TPM and opens only
 * with PolicyAuthorize by a trusted approval key. */
static int
vt_check_sealed(struct ca_server *s, const struct ca_ek_req *q, struct ca_reply *r)
{
	const uint32_t need = EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT;
	const uint32_t forbid = EVIDENCE_OBJ_USER_WITH_AUTH | EVIDENCE_OBJ_SIGN |
	                        EVIDENCE_OBJ_DECRYPT | EVIDENCE_OBJ_RESTRICTED;
	uint8_t policy[TPM_DIGEST_LEN];
	struct evidence_public p;
	struct err err;
	int trusted;

	if (evidence_parse_public(q->sealed_public, q->sealed_public_len, &p, &err) ==
	    -1) {
		ca_refuse(
		    r, 400, "send the sealed object's TPM2B_PUBLIC", "sealed_public: %s", err.msg);
		return -1;
	}
	if (p.type != EVIDENCE_ALG_KEYEDHASH || (p.attributes & need) != need ||
	    (p.attributes & forbid) != 0) {
		ca_refuse(r, 403,
		    "seal the state key as vtpmd does: fixedTPM, fixedParent, without userWithAuth",
		    "sealed_public is not sealed data bound to its TPM and to its policy "
		    "(type 0x%04x, attributes 0x%08x)",
		    p.type, p.attributes);
		return -1;
	}
	if (pcrpolicy_authorize(&q->approval, policy) == -1 ||
	    p.auth_policy_len != sizeof(policy) ||
	    memcmp(p.auth_policy, policy, sizeof(policy)) != 0) {
		ca_refuse(r, 403, "send the approval key the sealed object's policy names",
		    "the sealed object's policy is not PolicyAuthorize(approval_key, \"%s\")",
		    APPROVAL_POLICY_REF);
		return -1;
	}
	trusted = ca_trust_approval_key(s->db, &q->approval);
	if (trusted != 1) {
		ca_refuse(r, trusted == 0 ? 403 : 500,
		    trusted == 0 ? "trust the host administrator's approval key with "
		                   "'vtpm-ca trust add --approval-key KEY.pem'"
		                 : "try again; see vtpm-ca's log",
		    "the approval key is not trusted");
		return -1;
	}
	return 0;
}

/* The quote's PCRs: the values given, and an approved host configuration. */
static int
vt_check_quote(struct ca_server *s, const struct ca_ek_req *q, const struct evidence_attest *a,
    const uint8_t extra[static 32], struct vt_checked *c, struct ca_reply *r)
{
	struct evidence_pcr_values *vals = calloc(1, sizeof(*vals));
	const struct pcr_selection sel = {.mask = q->pcr_mask};
	uint8_t policy[TPM_DIGEST_LEN];
	char hex[2 * TPM_DIGEST_LEN + 1];
	struct err err;
	enum ca_db_rc rc;
	int ret = -1;

	if (vals == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return -1;
	}
	vals->hash_alg = EVIDENCE_ALG_SHA256;
	vals->mask = q->pcr_mask;
	for (int i = 0; i < TPM_PCRS; i++)
		memcpy(vals->value[i], q->pcrs[i], TPM_DIGEST_LEN);
	if (evidence_check_quote(a, extra, 32, vals, 1, NULL, &err) == -1) {
		ca_refuse(r, 403,
		    "quote the sha256 PCRs given in quote.pcrs, with qualifying data "
		    "SHA-256(vek_public)",
		    "%s", err.msg);
		goto out;
	}
	if (pcrpolicy_digest(&sel, q->pcrs, policy) == -1) {
		ca_refuse(r, 500, "report this as a bug", "the PCR policy cannot be computed");
		goto out;
	}
	rc = ca_db_host_config_find(s->db, policy, &c->hc);
	if (rc != CA_DB_OK) {
		hex_encode(policy, sizeof(policy), hex);
		ca_refuse(r, rc == CA_DB_NOTFOUND ? 403 : 500,
		    rc == CA_DB_NOTFOUND
		        ? "if this host configuration is good, approve it with "
		          "'vtpm-ca approve-host-config --id NAME --pcrs … --values …'"
		        : "try again; see vtpm-ca's log",
		    "the host's PCRs are not an approved host configuration (PolicyPCR %s)", hex);
		goto out;
	}
	ret = 0;
out:
	free(vals);
	return ret;
}

/* vek_public: an EK (restricted decryption key) of a kind certified. */
static int
vt_check_vek(const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
{
	const uint32_t need = EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_DECRYPT |
	                      EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT;
	struct err err;

	if (evidence_parse_public(q->vek_public, q->vek_public_len, &c->vek, &err) ==
	    -1) {
		ca_refuse(r, 400, "send the vEK's TPM2B_PUBLIC", "vek_public: %s", err.msg);
		return -1;
	}
	if ((c->vek.attributes & need) != need || (c->vek.attributes & EVIDENCE_OBJ_SIGN) != 0 ||
	    (c->vek.key != EVIDENCE_KEY_RSA_2048 && c->vek.key != EVIDENCE_KEY_ECC_P256)) {
		ca_refuse(r, 403,
		    "create the vEK from the TCG templates (RSA-2048 L-1, ECC P-256 L-2)",
		    "vek_public is not an endorsement key (a restricted decryption key, RSA-2048 "
		    "or "
		    "ECC P-256)");
		return -1;
	}
	return 0;
}

static int
vt_check(struct ca_server *s, const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
{
	struct certs_pkey *ck = NULL;
	struct evidence_attest *a = calloc(1, sizeof(*a));
	uint8_t extra[32], *spki = NULL;
	size_t spki_len = 0;
	struct err err;
	int ret = -1;

	memset(c, 0, sizeof(*c));
	if (a == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return -1;
	}
	if (vt_check_ck(s, q, c, r) == -1 || vt_check_vek(q, c, r) == -1)
		goto out;
	if ((ck = certs_pkey_from_cert(q->ck_cert.der, q->ck_cert.len)) == NULL ||
	    certs_pkey_spki(ck, &spki, &spki_len) == -1 ||
	    ca_sha256(q->vek_public, q->vek_public_len, extra) == -1) {
		ca_refuse(r, 500, "try again", "the CK's key cannot be read");
		goto out;
	}
	if (vt_attest(spki, spki_len, &q->certify, EVIDENCE_ST_CERTIFY, "certify", a, r) == -1)
		goto out;
	if (evidence_check_certify(a, q->sealed_public, q->sealed_public_len, extra, sizeof(extra),
	        &err) == -1) {
		ca_refuse(r, 403,
		    "certify the sealed object of sealed_public, with qualifying data "
		    "SHA-256(vek_public)",
		    "%s", err.msg);
		goto out;
	}
	if (vt_check_sealed(s, q, r) == -1 ||
	    vt_attest(spki, spki_len, &q->quote, EVIDENCE_ST_QUOTE, "quote", a, r) == -1 ||
	    vt_check_quote(s, q, a, extra, c, r) == -1)
		goto out;
	ret = 0;
out:
	free(spki);
	certs_pkey_free(ck);
	free(a);
	return ret;
}

static void
vt_issue(
    struct ca_server *s, const struct ca_ek_req *q, const struct vt_checked *c, struct ca_reply *r)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1], subject[CA_SUBJECT_MAX];
	struct err err;
	char detail[CA_DETAIL_MAX];
	struct certs_ek_req ek = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	json_t *o;

	if ((ek.ek = ca_tpm_pkey(&c->vek)) == NULL) {
		ca_refuse(r, 500, "report this as a bug", "the vEK cannot be read again");
		return;
	}
	certs_tpm_defaults(&ek.tpm);
	ek.virt.is_virtual = true;
	memcpy(ek.virt.ck_digest, c->ck_digest, sizeof(ek.virt.ck_digest));
	snprintf(ek.virt.host, sizeof(ek.virt.host), "%s", c->host.host);
	snprintf(ek.virt.host_config, sizeof(ek.virt.host_config), "%s", c->hc.id);
	snprintf(ek.virt.instance_uuid, sizeof(ek.virt.instance_uuid), "%s", q->instance_uuid);
	ca_validity(s->cfg.validity_ek, &ek.validity);
	if (certs_issue_ek(s->virt, &ek, &der, &len, &err) == -1) {
		ca_refuse(r, 500, "see vtpm-ca's log", "issuing the certificate failed: %s", err.msg);
		goto out;
	}
	snprintf(subject, sizeof(subject), "vTPM %s", q->instance_uuid);
	snprintf(detail, sizeof(detail), "host %s, host configuration %s, CK %s", c->host.host,
	    c->hc.id, c->ck_serial);
	if (ca_record_issued(
	        s, "virtualization", "ek", subject, detail, der, len, &ek.validity, serial) == -1) {
		ca_refuse(r, 500, "try again; see vtpm-ca's log",
		    "the certificate cannot be recorded: %s", ca_db_error(s->db));
		goto out;
	}
	o = (json_t *)ca_issued_json(der, len, &s->virt_cert, &s->root, serial);
	if (o == NULL || json_object_set_new(o, "host_config", json_string(c->hc.id)) == -1) {
		json_decref(o);
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	r->status = 200;
	r->body = (struct json_t *)o;
	r->outcome = "issued";
	snprintf(
	    r->detail, sizeof(r->detail), "ek certificate %s for %s (%s)", serial, subject, detail);
out:
	free(der);
	certs_pkey_free((struct certs_pkey *)ek.ek);
}

void
ca_virt_ek_certificate(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_ek_req *q = calloc(1, sizeof(*q));
	struct vt_checked *c = calloc(1, sizeof(*c));
	struct err err;

	if (q == NULL || c == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	if (ca_parse_ek_request(body, q, &err) == -1) {
		ca_refuse(r, 400, "see docs/ca-api.md for the request's fields", "%s", err.msg);
		goto out;
	}
	if (vt_check(s, q, c, r) == 0)
		vt_issue(s, q, c, r);
out:
	free(c);
	free(q);
}
