/*
 * ca_virt.c: the Virtualization CA (docs/ca-api.md): a vTPM's EK
 * certificate, issued when the host's TPM vouches for the vTPM.
 *
 * First a nonce (POST /v1/virtualization/nonce), which the parent makes
 * under a key of its own, valid for nonce_expiry_seconds and recorded
 * only once redeemed (ca_nonce.c). The evidence is then
 * the host Certifying Key's TPM2_Certify of the sealed object that holds
 * the vTPM's state key, and its TPM2_Quote of the host PCRs, both with
 * qualifyingData = evidence_vek_qualifying(nonce, vEK, instance UUID, the
 * digest of the vTPM's vEK set: vek_public and other_veks).
 * Together they say: a TPM whose CK a trusted Privacy CA certified holds
 * an object that cannot leave it (fixedTPM, fixedParent), that only the
 * policy can open (userWithAuth clear), whose policy is PolicyAuthorize by
 * a trusted approval key, and this was asked, now, for this vEK of this
 * vTPM; and that TPM's PCRs are an approved host configuration. Every
 * check that fails refuses with 403 and names what to do; nothing is
 * issued.
 *
 * This runs in the network child, for a clear answer; the parent verifies
 * the evidence again itself (ca_verify.c) with the key of the CK
 * certificate its own records hold, looks up the approved host
 * configuration of the quoted PCRs, so the certificate names what the
 * records say, not what the child claims; it takes the nonce (once) and
 * binds the sealed object's Name, the UUID and the vEK (ca_db_vtpm_bind),
 * refusing another vTPM's sealed object or UUID, a second vEK of a type,
 * and any vEK set but the one the sealed object's first request named.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca_msg.h"

/* What the checks establish, for the certificate. */
struct vt_checked {
	struct certs_host_key host;
	uint8_t ck_digest[CERTS_DIGEST_LEN];
	uint8_t policy[TPM_DIGEST_LEN]; /* PolicyPCR of the quoted PCRs */
	struct evidence_public vek;
	char ck_serial[CERTS_SERIAL_HEX_MAX + 1];
	struct certs_ref ck_ref; /* the CK certificate, named in the lineage */
	uint8_t sealed_name[EVIDENCE_NAME_MAX]; /* the certified object's Name */
	size_t sealed_name_len;
	/* The vTPM's vEK set (vek and other_veks) by type, key NONE: none */
	struct evidence_public set[EVIDENCE_VEK_TYPES];
	struct evidence_vek_set set_pub; /* their TPM2B_PUBLIC, in the request */
	enum evidence_vek_type vek_type; /* vek's slot */
	uint8_t set_digest[32];          /* evidence_vek_set_digest() */
};

/* The CK certificate: from a trusted Privacy CA, a CK's, not revoked. */
static int
vt_check_ck(
    struct ca_server *s, const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
{
	struct certs_der leaf = {q->ck_cert.der, q->ck_cert.len};
	struct err err;
	int rv;

	if (ca_trust_verify(&s->link, CA_TRUST_PRIVACY, &leaf, NULL, 0, true, time(NULL), &err) ==
	    -1) {
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
	rv = ca_trust_revoked(&s->link, leaf.der, leaf.len, &err);
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
	if (certs_cert_ref(leaf.der, leaf.len, &c->ck_ref, &err) == -1) {
		ca_refuse(r, 403, "send the CK certificate the Privacy CA issued",
		    "CK certificate refused: %s", err.msg);
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
vt_check_sealed(
    struct ca_server *s, const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
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
	memcpy(c->sealed_name, p.name, p.name_len);
	c->sealed_name_len = p.name_len;
	trusted = ca_ask_approval(&s->link, &q->approval);
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

/* The quote's PCRs: the values given; their PolicyPCR digest, which the
 * parent finds among the approved host configurations when it issues. */
static int
vt_check_quote(const struct ca_ek_req *q, const struct evidence_attest *a,
    const uint8_t extra[static 32], struct vt_checked *c, struct ca_reply *r)
{
	struct evidence_pcr_values *vals = calloc(1, sizeof(*vals));
	const struct pcr_selection sel = {.mask = q->pcr_mask};
	struct err err;
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
		    "quote the sha256 PCRs given in quote.pcrs, with the qualifying data of "
		    "docs/ca-api.md (the nonce, vek_public, instance_uuid, the vEK set)",
		    "%s", err.msg);
		goto out;
	}
	if (pcrpolicy_digest(&sel, q->pcrs, c->policy) == -1) {
		ca_refuse(r, 500, "report this as a bug", "the PCR policy cannot be computed");
		goto out;
	}
	ret = 0;
out:
	free(vals);
	return ret;
}

/* A vEK's TPM2B_PUBLIC (field names it): an EK (restricted decryption
 * key) of a kind certified, into out. */
static int
vt_ek_public(const uint8_t *pub, size_t len, const char *field, struct evidence_public *out,
    struct ca_reply *r)
{
	const uint32_t need = EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_DECRYPT |
	                      EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT;
	struct err err;

	if (evidence_parse_public(pub, len, out, &err) == -1) {
		ca_refuse(r, 400, "send the vEK's TPM2B_PUBLIC", "%s: %s", field, err.msg);
		return -1;
	}
	if ((out->attributes & need) != need || (out->attributes & EVIDENCE_OBJ_SIGN) != 0 ||
	    (out->key != EVIDENCE_KEY_RSA_2048 && out->key != EVIDENCE_KEY_ECC_P256)) {
		ca_refuse(r, 403,
		    "create the vEK from the TCG templates (RSA-2048 L-1, ECC P-256 L-2)",
		    "%s is not an endorsement key (a restricted decryption key, RSA-2048 or "
		    "ECC P-256)",
		    field);
		return -1;
	}
	return 0;
}

/* The slot of an EK's type in a vEK set. */
static enum evidence_vek_type
vt_slot(const struct evidence_public *ek)
{
	return ek->key == EVIDENCE_KEY_RSA_2048 ? EVIDENCE_VEK_RSA_2048 : EVIDENCE_VEK_ECC_P256;
}

static const char *const vt_type_names[EVIDENCE_VEK_TYPES] = {
    [EVIDENCE_VEK_RSA_2048] = "rsa2048", [EVIDENCE_VEK_ECC_P256] = "ecc-p256"};

/* vek_public, then the vTPM's vEK set: vek_public and other_veks, one per
 * type; its digest, which the qualifying data covers. */
static int
vt_check_vek(const struct ca_ek_req *q, struct vt_checked *c, struct ca_reply *r)
{
	struct evidence_vek_set set = {0};
	struct evidence_public other;
	enum evidence_vek_type t;
	char field[32];
	struct err err;

	if (vt_ek_public(q->vek_public, q->vek_public_len, "vek_public", &c->vek, r) == -1)
		return -1;
	t = vt_slot(&c->vek);
	set.pub[t] = q->vek_public;
	set.len[t] = q->vek_public_len;
	c->set[t] = c->vek;
	for (size_t i = 0; i < q->n_other_veks; i++) {
		snprintf(field, sizeof(field), "other_veks[%zu]", i);
		if (vt_ek_public(q->other_veks[i], q->other_veks_len[i], field, &other, r) == -1)
			return -1;
		t = vt_slot(&other);
		if (set.pub[t] != NULL) {
			ca_refuse(r, 400,
			    "send in other_veks the vTPM's vEKs of the types vek_public is not",
			    "%s: a second %s vEK in the request (a vTPM has one of each type)",
			    field, vt_type_names[t]);
			return -1;
		}
		set.pub[t] = q->other_veks[i];
		set.len[t] = q->other_veks_len[i];
		c->set[t] = other;
	}
	if (evidence_vek_set_digest(&set, c->set_digest, &err) == -1) {
		ca_refuse(r, 400, "see docs/ca-api.md for the request's fields", "%s", err.msg);
		return -1;
	}
	c->set_pub = set;
	c->vek_type = vt_slot(&c->vek);
	for (size_t u = 0; q->whole_set && u < c->vek_type; u++)
		if (set.pub[u] != NULL) {
			ca_refuse(r, 400,
			    "for a whole set, send as vek_public its first vEK (RSA-2048 before "
			    "ECC P-256), with whose evidence every member is certified",
			    "whole_set: vek_public is not the set's first vEK");
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
	    certs_pkey_spki(ck, &spki, &spki_len) == -1) {
		ca_refuse(r, 500, "try again", "the CK's key cannot be read");
		goto out;
	}
	if (evidence_vek_qualifying(q->nonce, q->vek_public, q->vek_public_len, q->instance_uuid,
	        c->set_digest, extra, &err) == -1) {
		ca_refuse(r, 400, "see docs/ca-api.md for the request's fields", "%s", err.msg);
		goto out;
	}
	if (vt_attest(spki, spki_len, &q->certify, EVIDENCE_ST_CERTIFY, "certify", a, r) == -1)
		goto out;
	if (evidence_check_certify(a, q->sealed_public, q->sealed_public_len, extra, sizeof(extra),
	        &err) == -1) {
		ca_refuse(r, 403,
		    "certify the sealed object of sealed_public, with the qualifying data of "
		    "docs/ca-api.md (the nonce, vek_public, instance_uuid, the vEK set)",
		    "%s", err.msg);
		goto out;
	}
	if (vt_check_sealed(s, q, c, r) == -1 ||
	    vt_attest(spki, spki_len, &q->quote, EVIDENCE_ST_QUOTE, "quote", a, r) == -1 ||
	    vt_check_quote(q, a, extra, c, r) == -1)
		goto out;
	ret = 0;
out:
	free(spki);
	certs_pkey_free(ck);
	free(a);
	return ret;
}

/* The parent's refusal of an issuance: no approved host configuration
 * has the quoted PCRs' policy, the nonce is unknown, used or expired, the
 * identity is another vTPM's; or it failed. */
static void
vt_refused(const struct vt_checked *c, const struct ca_answer *a, struct ca_reply *r)
{
	const char *fresh = "ask POST /v1/virtualization/nonce for a nonce, and make new evidence "
	                    "with it at once";
	char hex[2 * TPM_DIGEST_LEN + 1];

	switch (a->rc) {
	case CA_MSG_NOTFOUND: break;
	case CA_MSG_UNKNOWN: ca_refuse(r, 403, fresh, "evidence refused: %s", a->reason); return;
	case CA_MSG_USED: ca_refuse(r, 409, fresh, "evidence refused: %s", a->reason); return;
	case CA_MSG_EXPIRED: ca_refuse(r, 410, fresh, "evidence refused: %s", a->reason); return;
	case CA_MSG_REFUSED:
		ca_refuse(r, 403,
		    "send the evidence the host TPM made, with a CK certificate this CA issued",
		    "evidence refused by the CA: %s", a->reason);
		return;
	case CA_MSG_CONFLICT:
		ca_refuse(r, 403,
		    "a vTPM has one sealed object, one UUID and one vEK of each type, all named at "
		    "its first EK certificate request: provision a new vTPM for a new identity",
		    "identity refused: %s", a->reason);
		return;
	default:
		ca_refuse(
		    r, 500, "see vtpm-ca's log", "issuing the certificate failed: %s", a->reason);
		return;
	}
	hex_encode(c->policy, sizeof(c->policy), hex);
	ca_refuse(r, 403,
	    "if this host configuration is good, approve it with "
	    "'vtpm-ca approve-host-config --id NAME --pcrs … --values …'",
	    "the host's PCRs are not an approved host configuration (PolicyPCR %s)", hex);
}

/* One certificate the parent issued, as the answer gives it (its type
 * named for a whole set), into eks; NULL when out of memory. */
static json_t *
vt_answer_one(struct ca_server *s, const struct ca_answer *a, const char *type)
{
	json_t *o =
	    (json_t *)ca_issued_json(a->der, a->der_len, &s->virt_cert, &s->root, a->serial);

	if (o == NULL || json_object_set_new(o, "host_config", json_string(a->host_config)) == -1 ||
	    (type != NULL && json_object_set_new(o, "type", json_string(type)) == -1)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The answers to ISSUE_EK: one, or one per member of the set; the reply's
 * body ({"eks": [...], "host_config"} for a whole set), or NULL with r
 * refused. */
static json_t *
vt_answers(struct ca_server *s, const struct ca_ek_req *q, const struct vt_checked *c,
    struct ca_answer *a, struct ca_reply *r)
{
	json_t *eks = json_array(), *o, *body;
	bool first = true;

	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		if (c->set[t].key == EVIDENCE_KEY_NONE || (!q->whole_set && t != c->vek_type))
			continue;
		if (!first) {
			ca_answer_clear(a);
			ca_ask_issued(&s->link, a);
		}
		first = false;
		if (a->rc != CA_MSG_OK) {
			vt_refused(c, a, r);
			json_decref(eks);
			return NULL;
		}
		o = vt_answer_one(s, a, q->whole_set ? vt_type_names[t] : NULL);
		if (o == NULL || !q->whole_set) {
			json_decref(eks);
			if (o == NULL)
				ca_refuse(r, 500, "try again", "out of memory");
			return o;
		}
		json_array_append_new(eks, o);
	}
	body = json_pack("{s:o, s:s}", "eks", eks, "host_config", a->host_config);
	if (body == NULL)
		ca_refuse(r, 500, "try again", "out of memory");
	return body;
}

static void
vt_issue(
    struct ca_server *s, const struct ca_ek_req *q, const struct vt_checked *c, struct ca_reply *r)
{
	struct ca_answer a = {0};
	struct ca_ek_issue e = {.req = q,
	    .set = &c->set_pub,
	    .vek_type = c->vek_type,
	    .whole_set = q->whole_set,
	    .ck_serial = c->ck_serial};
	json_t *o;

	ca_ask_issue_ek(&s->link, &e, &a);
	if ((o = vt_answers(s, q, c, &a, r)) == NULL)
		goto out;
	r->status = 200;
	r->body = (struct json_t *)o;
	r->outcome = "issued";
	if (q->whole_set)
		snprintf(r->detail, sizeof(r->detail),
		    "ek certificates of vTPM %s's vEK set (host %s, host configuration %s, CK %s)",
		    q->instance_uuid, c->host.host, a.host_config, c->ck_serial);
	else
		snprintf(r->detail, sizeof(r->detail),
		    "ek certificate %s for vTPM %s (host %s, host configuration %s, CK %s)",
		    a.serial, q->instance_uuid, c->host.host, a.host_config, c->ck_serial);
out:
	ca_answer_clear(&a);
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

/* POST /v1/virtualization/nonce, body {}: a nonce the vEK evidence must
 * carry (docs/ca-api.md), single use, short-lived, recorded nowhere until
 * evidence redeems it. */
void
ca_virt_nonce(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_answer a = {0};
	char *b64 = NULL;
	json_t *o = NULL;

	if (!json_is_object((const json_t *)body) || json_object_size((const json_t *)body) != 0) {
		ca_refuse(r, 400, "send an empty JSON object: {}", "a nonce request has no fields");
		return;
	}
	ca_ask_nonce_add(&s->link, s->client, &a);
	if (a.rc != CA_MSG_OK) {
		ca_refuse(r, 500, "try again; see vtpm-ca's log", "no nonce: %s", a.reason);
		return;
	}
	if ((b64 = base64_encode(a.nonce, sizeof(a.nonce))) != NULL)
		o = json_pack("{s:s, s:I}", "nonce", b64, "expires_in", (json_int_t)a.expires_in);
	free(b64);
	if (o == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return;
	}
	r->status = 200;
	r->body = (struct json_t *)o;
	r->outcome = "issued";
	snprintf(r->detail, sizeof(r->detail), "a nonce for vEK evidence, for %lld s",
	    (long long)a.expires_in);
}
