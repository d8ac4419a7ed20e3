/*
 * ca_verify.c: what the parent of `vtpm-ca serve` checks again itself
 * before it signs (docs/ca-api.md, "Processes"): the parent parses only
 * typed TPM structures, with tss2-mu (src/tpm/evidence.c), and re-verifies
 * what it signs for, so that a network child taken over gets no
 * certificate the checks of a sound child would refuse.
 *
 *   ca_verify_keys:  a challenge's (v)EK and key, read from their
 *                    TPM2B_PUBLIC; the key's Name computed here.
 *   ca_verify_ek:    a vTPM's evidence (ISSUE_EK): both signatures with
 *                    the key of a CK certificate from the parent's own
 *                    records (issued here, a CK's, not revoked, in time),
 *                    the qualifying data from the nonce, the vEK, the UUID
 *                    and the vEK set, the certified Name against the
 *                    sealed object given, the sealed object's attributes
 *                    and approval policy (a trusted approval key), and
 *                    the quote's PCR digest against the values whose
 *                    PolicyPCR the caller looks up among the approved
 *                    host configurations.
 *
 * A refusal is ERR_REFUSED with the reason; ERR_FAILED when the records
 * or a computation failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_msg.h"

/* A (v)EK: a restricted decryption key that never leaves its TPM, of a
 * kind this CA certifies and makes credentials for. */
static bool
cv_is_ek(const struct evidence_public *p)
{
	const uint32_t need = EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_DECRYPT |
	                      EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT;

	return (p->attributes & need) == need && (p->attributes & EVIDENCE_OBJ_SIGN) == 0 &&
	       (p->key == EVIDENCE_KEY_RSA_2048 || p->key == EVIDENCE_KEY_ECC_P256);
}

/* SHA-256 of k's SubjectPublicKeyInfo (what hosts.ek_key and the vEK
 * records hold). */
static int
cv_key_digest(const struct ca_msg_key *k, uint8_t out[static CERTS_DIGEST_LEN])
{
	struct certs_pkey *pk = k->type == CA_KEY_ECC_P256 ? certs_pkey_from_ecc_p256(k->x, k->y)
	                                                   : certs_pkey_from_rsa(k->modulus,
	                                                         sizeof(k->modulus), k->exponent);
	int rc;

	if (pk == NULL)
		return -1;
	rc = certs_pkey_digest(pk, out);
	certs_pkey_free(pk);
	return rc;
}

/* Whether k is a key OpenSSL accepts (an ECC point on the curve). */
static bool
cv_key_valid(const struct ca_msg_key *k)
{
	uint8_t digest[CERTS_DIGEST_LEN];

	return cv_key_digest(k, digest) == 0;
}

int
ca_verify_keys(const struct ca_msg_public *ek_pub, const struct ca_msg_public *key_pub,
    struct evidence_public *key, uint8_t ek_key[static CERTS_DIGEST_LEN], struct err *why)
{
	struct evidence_public ek;
	struct ca_msg_key k;
	struct err e;

	if (evidence_parse_public(ek_pub->data, ek_pub->len, &ek, &e) == -1)
		return err_set(why, ERR_REFUSED, "the EK's public area: %s", e.msg);
	if (!cv_is_ek(&ek) || ca_tpm_key(&ek, &k) == -1)
		return err_set(why, ERR_REFUSED,
		    "the EK is not an endorsement key of the TCG templates (a restricted "
		    "decryption key, RSA-2048 or ECC P-256)");
	if (cv_key_digest(&k, ek_key) == -1)
		return err_set(why, ERR_REFUSED, "the EK is not a valid public key");
	if (evidence_parse_public(key_pub->data, key_pub->len, key, &e) == -1)
		return err_set(why, ERR_REFUSED, "the key's public area: %s", e.msg);
	if (!evidence_key_is_restricted_signing(key) || ca_tpm_key(key, &k) == -1 ||
	    key->name_alg != EVIDENCE_ALG_SHA256 || key->name_len != CREDENTIAL_NAME_LEN)
		return err_set(why, ERR_REFUSED,
		    "the key is not a restricted signing key that never leaves its TPM "
		    "(ECC P-256 or RSA-2048, name algorithm SHA-256)");
	if (!cv_key_valid(&k))
		return err_set(why, ERR_REFUSED, "the key is not a valid public key");
	return 0;
}

struct cv_point {
	const uint8_t *x, *y;
	bool found;
};

/* Whether a trust entry of kind approval-key ("X,Y" in hex) is the point. */
static int
cv_point_match(void *ctx, const struct ca_trust *t)
{
	struct cv_point *s = ctx;
	uint8_t x[32], y[32];
	const char *comma = strchr(t->data, ',');
	char xh[65];

	if (comma == NULL || comma - t->data != 64)
		return 0;
	memcpy(xh, t->data, 64);
	xh[64] = '\0';
	if (hex_decode(xh, x, 32) == -1 || hex_decode(comma + 1, y, 32) == -1)
		return 0;
	if (memcmp(x, s->x, 32) == 0 && memcmp(y, s->y, 32) == 0) {
		s->found = true;
		return 1;
	}
	return 0;
}

int
ca_verify_approval_key(
    struct ca_db *db, const uint8_t x[static 32], const uint8_t y[static 32], struct err *why)
{
	struct cv_point s = {.x = x, .y = y};
	struct err e;

	if (ca_db_trust_list(db, CA_TRUST_APPROVAL_KEY, cv_point_match, &s, &e) == -1)
		return err_set(why, ERR_FAILED, "the approval keys cannot be read: %s", e.msg);
	if (!s.found)
		return err_set(why, ERR_REFUSED, "the approval key is not trusted");
	return 0;
}

/* The CK certificate ck_serial from the records: issued here, a CK's,
 * not revoked, in time; its key's SubjectPublicKeyInfo into *spki. */
static int
cv_ck(struct ca_db *db, const char *serial, int64_t now, struct ca_ek_verified *v, uint8_t **spki,
    size_t *spki_len, struct err *why)
{
	uint8_t *der = NULL;
	size_t len = 0;
	struct certs_pkey *ck = NULL;
	struct err e;
	int ret = -1;

	if (ca_db_issued_get(db, serial, &v->ck, &der, &len, &e) == -1) {
		if (e.kind == ERR_ABSENT)
			return err_set(why, ERR_REFUSED,
			    "CK certificate %s was not issued here: this Virtualization CA vouches "
			    "only for hosts whose CK its own Privacy CA certified",
			    serial);
		return err_set(why, ERR_FAILED, "the CK certificate's record: %s", e.msg);
	}
	if (strcmp(v->ck.kind, "ck") != 0)
		err_set(why, ERR_REFUSED, "certificate %s is not a CK's", serial);
	else if (v->ck.revoked)
		err_set(why, ERR_REFUSED, "CK certificate %s is revoked", serial);
	else if (now > v->ck.not_after)
		err_set(why, ERR_REFUSED, "CK certificate %s has expired", serial);
	else if ((ck = certs_pkey_from_cert(der, len)) == NULL ||
	         certs_pkey_spki(ck, spki, spki_len) == -1 ||
	         certs_cert_key_digest(der, len, v->ck_digest) == -1 ||
	         certs_cert_ref(der, len, &v->ck_ref, &e) == -1)
		err_set(why, ERR_FAILED, "CK certificate %s cannot be read", serial);
	else
		ret = 0;
	certs_pkey_free(ck);
	free(der);
	return ret;
}

/* The vEK set: each member an EK of its slot's type; its digest, and the
 * member to certify. */
static int
cv_vek_set(const struct ca_msg_issue_ek *q, struct ca_ek_verified *v, struct err *why)
{
	struct evidence_vek_set set = {0};
	struct evidence_public p;
	struct err e;

	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		const struct ca_msg_public *m = &q->vek_set[t];

		if (m->len == 0)
			continue;
		if (evidence_parse_public(m->data, m->len, &p, &e) == -1)
			return err_set(why, ERR_REFUSED, "a vEK's public area: %s", e.msg);
		if (!cv_is_ek(&p) || ca_tpm_key(&p, &v->set[t]) == -1 ||
		    (size_t)(p.key == EVIDENCE_KEY_RSA_2048 ? EVIDENCE_VEK_RSA_2048
		                                            : EVIDENCE_VEK_ECC_P256) != t)
			return err_set(
			    why, ERR_REFUSED, "a vEK is not an endorsement key of its slot's type");
		if (!cv_key_valid(&v->set[t]))
			return err_set(why, ERR_REFUSED, "a vEK is not a valid public key");
		set.pub[t] = m->data;
		set.len[t] = m->len;
	}
	v->vek = v->set[q->vek_type];
	if (evidence_vek_set_digest(&set, v->set_digest, &e) == -1)
		return err_set(why, ERR_REFUSED, "the vEK set: %s", e.msg);
	return 0;
}

/* One signed attestation of the CK, of type type: verified, parsed. */
static int
cv_attest(const uint8_t *spki, size_t spki_len, const struct ca_msg_signed *s, uint16_t type,
    const char *what, struct evidence_attest *a, struct err *why)
{
	struct err e;

	if (evidence_verify_signature_spki(
	        spki, spki_len, s->attest, s->attest_len, s->sig, s->sig_len, &e) == -1)
		return err_set(why, ERR_REFUSED,
		    "the %s's signature does not verify with the CK certificate's key: %s", what,
		    e.msg);
	if (evidence_parse_attest(s->attest, s->attest_len, a, &e) == -1)
		return err_set(why, ERR_REFUSED, "the %s: %s", what, e.msg);
	if (a->type != type)
		return err_set(
		    why, ERR_REFUSED, "the %s is a TPMS_ATTEST of type 0x%04x", what, a->type);
	return 0;
}

/* The sealed object: sealed data bound to its TPM, opened only with
 * PolicyAuthorize by a trusted approval key; its Name. */
static int
cv_sealed(
    struct ca_db *db, const struct ca_msg_issue_ek *q, struct ca_ek_verified *v, struct err *why)
{
	const uint32_t need = EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT;
	const uint32_t forbid = EVIDENCE_OBJ_USER_WITH_AUTH | EVIDENCE_OBJ_SIGN |
	                        EVIDENCE_OBJ_DECRYPT | EVIDENCE_OBJ_RESTRICTED;
	struct approval_pub key;
	uint8_t policy[TPM_DIGEST_LEN];
	struct evidence_public p;
	struct err e;

	if (evidence_parse_public(q->sealed.data, q->sealed.len, &p, &e) == -1)
		return err_set(why, ERR_REFUSED, "the sealed object's public area: %s", e.msg);
	if (p.type != EVIDENCE_ALG_KEYEDHASH || (p.attributes & need) != need ||
	    (p.attributes & forbid) != 0)
		return err_set(why, ERR_REFUSED,
		    "the sealed object is not sealed data bound to its TPM and to its policy");
	memcpy(key.x, q->approval_x, sizeof(key.x));
	memcpy(key.y, q->approval_y, sizeof(key.y));
	if (pcrpolicy_authorize(&key, policy) == -1 || p.auth_policy_len != sizeof(policy) ||
	    memcmp(p.auth_policy, policy, sizeof(policy)) != 0)
		return err_set(why, ERR_REFUSED,
		    "the sealed object's policy is not PolicyAuthorize of the approval key given");
	if (ca_verify_approval_key(db, q->approval_x, q->approval_y, why) == -1)
		return -1;
	memcpy(v->sealed_name, p.name, p.name_len);
	v->sealed_name_len = p.name_len;
	return 0;
}

/* The quote: of exactly the sha256 PCR values given, with the qualifying
 * data; their PolicyPCR digest. */
static int
cv_quote(const struct ca_msg_issue_ek *q, const struct evidence_attest *a, const uint8_t *extra,
    struct ca_ek_verified *v, struct err *why)
{
	struct evidence_pcr_values *vals = calloc(1, sizeof(*vals));
	const struct pcr_selection sel = {.mask = q->pcr_mask};
	struct err e;
	int ret = -1;

	if (vals == NULL)
		return err_set(why, ERR_FAILED, "out of memory");
	vals->hash_alg = EVIDENCE_ALG_SHA256;
	vals->mask = q->pcr_mask;
	for (int i = 0; i < TPM_PCRS; i++)
		memcpy(vals->value[i], q->pcrs[i], TPM_DIGEST_LEN);
	if (evidence_check_quote(a, extra, 32, vals, 1, NULL, &e) == -1)
		err_set(why, ERR_REFUSED, "the quote: %s", e.msg);
	else if (pcrpolicy_digest(&sel, q->pcrs, v->policy) == -1)
		err_set(why, ERR_FAILED, "the PCR policy cannot be computed");
	else
		ret = 0;
	free(vals);
	return ret;
}

int
ca_verify_ek(struct ca_db *db, const struct ca_msg_issue_ek *q, int64_t now,
    struct ca_ek_verified *v, struct err *why)
{
	struct evidence_attest *a = calloc(1, sizeof(*a));
	const struct ca_msg_public *vek = &q->vek_set[q->vek_type];
	uint8_t extra[32], *spki = NULL;
	size_t spki_len = 0;
	struct err e;
	int ret = -1;

	memset(v, 0, sizeof(*v));
	if (a == NULL)
		return err_set(why, ERR_FAILED, "out of memory");
	if (cv_ck(db, q->ck_serial, now, v, &spki, &spki_len, why) == -1 ||
	    cv_vek_set(q, v, why) == -1)
		goto out;
	if (evidence_vek_qualifying(
	        q->nonce, vek->data, vek->len, q->instance_uuid, v->set_digest, extra, &e) == -1) {
		err_set(why, ERR_REFUSED, "the qualifying data: %s", e.msg);
		goto out;
	}
	if (cv_attest(spki, spki_len, &q->certify, EVIDENCE_ST_CERTIFY, "certification", a, why) ==
	        -1 ||
	    cv_sealed(db, q, v, why) == -1)
		goto out;
	if (evidence_check_certify(a, q->sealed.data, q->sealed.len, extra, sizeof(extra), &e) ==
	    -1) {
		err_set(why, ERR_REFUSED, "the certification: %s", e.msg);
		goto out;
	}
	if (cv_attest(spki, spki_len, &q->quote, EVIDENCE_ST_QUOTE, "quote", a, why) == -1 ||
	    cv_quote(q, a, extra, v, why) == -1)
		goto out;
	ret = 0;
out:
	free(spki);
	free(a);
	return ret;
}
