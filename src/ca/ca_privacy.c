/*
 * ca_privacy.c: the Privacy CA (docs/ca-api.md). A key is certified only
 * after the TPM holding a trusted EK has shown, with
 * TPM2_ActivateCredential, that it holds the key too:
 *
 *   challenge: check the EK certificate (ck: a TPM manufacturer's chain;
 *              ak: a vEK certificate from a trusted Virtualization CA, with
 *              the virtual marker), that it certifies ek_public, that it is
 *              not revoked, and that key_public is a restricted signing key;
 *              then TPM2_MakeCredential of a fresh secret for the EK and the
 *              key's Name. Only SHA-256(secret) is kept.
 *   certify:   take the challenge (single use: a wrong secret consumes it),
 *              compare the secret, check the stored request again (trust and
 *              revocation may have changed), and issue the CK or AK
 *              certificate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca.h"

#define PV_HINT_REQ "see docs/ca-api.md for the request's fields"

/* What the checks of a challenge request establish. */
struct pv_checked {
	struct evidence_public ek, key;
	struct certs_virtual virt; /* ak: the vEK certificate's marker */
};

static int
pv_check_ek_cert(
    struct ca_server *s, const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	struct certs_der leaf = {q->ek_cert.der, q->ek_cert.len}, chain[CA_CHAIN_MAX];
	struct err err;
	int rv;

	for (size_t i = 0; i < q->n_chain; i++)
		chain[i] = (struct certs_der){q->chain[i].der, q->chain[i].len};
	if (q->kind == CA_KIND_CK) {
		if (ca_trust_verify(s->db, CA_TRUST_MANUFACTURER, &leaf, chain, q->n_chain, false,
		        time(NULL), &err) == -1) {
			ca_refuse(r, 403,
			    "trust the TPM manufacturer's root with 'vtpm-ca trust add "
			    "--manufacturer "
			    "ROOT.pem', and send intermediate certificates in ek_chain",
			    "host EK certificate refused: %s", err.msg);
			return -1;
		}
	} else {
		if (ca_trust_verify(s->db, CA_TRUST_VIRTUALIZATION, &leaf, chain, q->n_chain, true,
		        time(NULL), &err) == -1) {
			ca_refuse(r, 403,
			    "a vEK certificate must come from a Virtualization CA trusted with "
			    "'vtpm-ca trust add --virtualization CA.pem'",
			    "vEK certificate refused: %s", err.msg);
			return -1;
		}
		if (certs_parse_virtual(leaf.der, leaf.len, &c->virt, &err) == -1) {
			ca_refuse(r, 403, "send the vEK certificate vtpmd wrote",
			    "vEK certificate refused: %s", err.msg);
			return -1;
		}
		if (!c->virt.is_virtual) {
			ca_refuse(r, 403,
			    "kind \"ak\" is for vTPMs: send the vEK certificate vtpmd wrote",
			    "vEK certificate refused: it carries no vtpmd virtual marker");
			return -1;
		}
	}
	rv = ca_trust_revoked(s->db, leaf.der, leaf.len, &err);
	if (rv != 0) {
		ca_refuse(r, rv == 1 ? 403 : 500,
		    rv == 1 ? "a revoked TPM cannot enrol keys" : "try again; see vtpm-ca's log",
		    "EK certificate refused: %s", err.msg);
		return -1;
	}
	return 0;
}

/* ek_public is the key of the EK certificate. */
static int
pv_check_ek_public(const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	uint8_t want[CERTS_DIGEST_LEN], got[CERTS_DIGEST_LEN];
	struct certs_pkey *k = NULL;
	struct err err;
	int ret = -1;

	if (evidence_parse_public(q->ek_public, q->ek_public_len, &c->ek, &err) == -1) {
		ca_refuse(r, 400, "send the EK's TPM2B_PUBLIC (tpm2_createek -u), base64",
		    "ek_public: %s", err.msg);
		return -1;
	}
	if ((k = ca_tpm_pkey(&c->ek)) == NULL || certs_pkey_digest(k, got) == -1 ||
	    certs_cert_key_digest(q->ek_cert.der, q->ek_cert.len, want) == -1) {
		ca_refuse(r, 403, "the EK must be RSA-2048 or ECC P-256 (TCG templates L-1, L-2)",
		    "ek_public: not an EK key this CA can use");
		goto out;
	}
	if (memcmp(want, got, sizeof(want)) != 0) {
		ca_refuse(r, 403, "send the public area of the EK the certificate names",
		    "ek_public is not the key the EK certificate certifies");
		goto out;
	}
	ret = 0;
out:
	certs_pkey_free(k);
	return ret;
}

/* key_public: a restricted signing key in a TPM, of a kind certificates
 * are issued for. */
static int
pv_check_key(const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	const struct evidence_public *k = &c->key;
	struct err err;

	if (evidence_parse_public(q->key_public, q->key_public_len, &c->key, &err) ==
	    -1) {
		ca_refuse(r, 400, "send the key's TPM2B_PUBLIC (tpm2_createak -u), base64",
		    "key_public: %s", err.msg);
		return -1;
	}
	if (!evidence_key_is_restricted_signing(k)) {
		ca_refuse(r, 403,
		    "create it as an attestation key (tpm2_createak): restricted, sign, fixedTPM, "
		    "fixedParent, sensitiveDataOrigin",
		    "key_public is not a restricted signing key that never leaves its TPM");
		return -1;
	}
	if (k->name_alg != EVIDENCE_ALG_SHA256 ||
	    !((k->key == EVIDENCE_KEY_ECC_P256 && k->scheme == EVIDENCE_ALG_ECDSA &&
	          k->scheme_hash == EVIDENCE_ALG_SHA256) ||
	        (k->key == EVIDENCE_KEY_RSA_2048 && k->scheme == EVIDENCE_ALG_RSASSA &&
	            k->scheme_hash == EVIDENCE_ALG_SHA256))) {
		ca_refuse(r, 403,
		    "use tpm2_createak -G ecc -s ecdsa -g sha256, or -G rsa -s rsassa -g sha256",
		    "key_public must be ECC P-256 with ECDSA-SHA256 or RSA-2048 with "
		    "RSASSA-SHA256, "
		    "name algorithm SHA-256");
		return -1;
	}
	return 0;
}

static int
pv_check(
    struct ca_server *s, const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	memset(c, 0, sizeof(*c));
	if (pv_check_ek_cert(s, q, c, r) == -1 || pv_check_ek_public(q, c, r) == -1 ||
	    pv_check_key(q, c, r) == -1)
		return -1;
	return 0;
}

static const char *
pv_kind(enum ca_kind kind)
{
	return kind == CA_KIND_CK ? "ck" : "ak";
}

/* TPM2_MakeCredential of secret; the answer's body. */
static json_t *
pv_credential(const struct ca_challenge_req *q, const char *id, const uint8_t *secret, int64_t ttl,
    struct err *err)
{
	uint8_t name[CREDENTIAL_NAME_LEN], *blob = NULL, *enc = NULL;
	size_t blob_len = 0, enc_len = 0;
	char *b64blob = NULL, *b64enc = NULL;
	json_t *o = NULL;

	if (credential_public_name(q->key_public, q->key_public_len, name, err) == -1 ||
	    credential_make(q->ek_public, q->ek_public_len, name, sizeof(name), secret,
	        CA_SECRET_LEN, &blob, &blob_len, &enc, &enc_len, err) == -1)
		goto out;
	b64blob = base64_encode(blob, blob_len);
	b64enc = base64_encode(enc, enc_len);
	if (b64blob == NULL || b64enc == NULL ||
	    (o = json_pack("{s:s, s:s, s:s, s:I}", "id", id, "credential_blob", b64blob,
	         "encrypted_secret", b64enc, "expires_in", (json_int_t)ttl)) == NULL)
		err_set(err, ERR_FAILED, "out of memory");
out:
	free(b64enc);
	free(b64blob);
	free(enc);
	free(blob);
	return o;
}

void
ca_privacy_challenge(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_challenge_req *q = calloc(1, sizeof(*q));
	struct pv_checked c;
	uint8_t secret[CA_SECRET_LEN], hash[32], idb[CA_ID_BYTES];
	char id[CA_ID_HEX + 1], *text = NULL;
	struct err err;
	int64_t now = time(NULL);
	enum ca_db_rc rc;
	json_t *o = NULL;

	if (q == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return;
	}
	if (ca_parse_challenge(body, q, &err) == -1) {
		ca_refuse(r, 400, PV_HINT_REQ, "%s", err.msg);
		goto out;
	}
	if (pv_check(s, q, &c, r) == -1)
		goto out;
	if (ca_random(secret, sizeof(secret)) == -1 || ca_random(idb, sizeof(idb)) == -1 ||
	    ca_sha256(secret, sizeof(secret), hash) == -1) {
		ca_refuse(r, 500, "try again", "no random numbers");
		goto out;
	}
	hex_encode(idb, sizeof(idb), id);
	if ((o = pv_credential(q, id, secret, s->cfg.challenge_ttl, &err)) == NULL) {
		ca_refuse(r, 403,
		    "ek_public must be an EK of the TCG templates (restricted "
		    "decryption key, RSA-2048 or ECC P-256, AES-128-CFB)",
		    "no credential can be made for this EK: %s", err.msg);
		goto out;
	}
	if ((text = json_dumps((const json_t *)body, JSON_COMPACT)) == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	rc = ca_db_challenge_add(s->db, id, q->kind, text, hash, now, now + s->cfg.challenge_ttl);
	if (rc != CA_DB_OK) {
		ca_refuse(r, rc == CA_DB_FULL ? 503 : 500,
		    rc == CA_DB_FULL ? "answer or let expire the open challenges, then try again"
		                     : "try again; see vtpm-ca's log",
		    "the challenge cannot be recorded: %s", ca_db_error(s->db));
		goto out;
	}
	r->status = 200;
	r->body = (struct json_t *)o;
	o = NULL;
	r->outcome = "challenged";
	if (q->kind == CA_KIND_CK)
		snprintf(r->detail, sizeof(r->detail), "challenge %s for the CK of host %s", id,
		    q->host);
	else
		snprintf(r->detail, sizeof(r->detail), "challenge %s for an AK of vTPM %s", id,
		    c.virt.instance_uuid);
out:
	ca_cleanse(secret, sizeof(secret));
	json_decref(o);
	free(text);
	free(q);
}

/* Issues the certificate of a challenge answered correctly. */
static void
pv_issue(struct ca_server *s, const struct ca_challenge_req *q, const struct pv_checked *c,
    struct ca_reply *r)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1], subject[CA_SUBJECT_MAX];
	struct err err;
	char detail[CA_DETAIL_MAX], hex[2 * CERTS_DIGEST_LEN + 1];
	struct certs_pkey *key = ca_tpm_pkey(&c->key);
	struct certs_validity v;
	struct certs_ck_req ck = {0};
	struct certs_ak_req ak = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	int rc = -1;

	if (key == NULL) {
		ca_refuse(r, 500, "report this as a bug", "the key cannot be read again");
		goto out;
	}
	if (q->kind == CA_KIND_CK) {
		ca_validity(s->cfg.validity_ck, &v);
		ck = (struct certs_ck_req){.ck = key, .host = q->host, .validity = v};
		if (certs_cert_key_digest(q->ek_cert.der, q->ek_cert.len, ck.host_ek_digest) == 0)
			rc = certs_issue_ck(s->privacy, &ck, &der, &len, &err);
		hex_encode(ck.host_ek_digest, CERTS_DIGEST_LEN, hex);
		snprintf(subject, sizeof(subject), "%s", q->host);
		snprintf(detail, sizeof(detail), "host EK key %.16s", hex);
	} else {
		ca_validity(s->cfg.validity_ak, &v);
		ak = (struct certs_ak_req){.ak = key, .subject = "", .validity = v};
		if (certs_ak_from_ek(q->ek_cert.der, q->ek_cert.len, &ak, &err) == 0)
			rc = certs_issue_ak(s->privacy, &ak, &der, &len, &err);
		snprintf(subject, sizeof(subject), "AK of vTPM %s", c->virt.instance_uuid);
		snprintf(detail, sizeof(detail), "host configuration %s", c->virt.host_config);
	}
	if (rc == -1) {
		ca_refuse(r, 500, "see vtpm-ca's log", "issuing the certificate failed: %s", err.msg);
		goto out;
	}
	if (ca_record_issued(
	        s, "privacy", pv_kind(q->kind), subject, detail, der, len, &v, serial) == -1) {
		ca_refuse(r, 500, "try again; see vtpm-ca's log",
		    "the certificate cannot be recorded: %s", ca_db_error(s->db));
		goto out;
	}
	if ((r->body = ca_issued_json(der, len, &s->privacy_cert, &s->root, serial)) == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	r->status = 200;
	r->outcome = "issued";
	snprintf(r->detail, sizeof(r->detail), "%s certificate %s for %s", pv_kind(q->kind), serial,
	    subject);
out:
	free(der);
	certs_pkey_free(key);
}

void
ca_privacy_certify(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_challenge_req *q = calloc(1, sizeof(*q));
	struct ca_certify_req a;
	struct pv_checked c;
	uint8_t hash[32], got[32];
	char *text = NULL;
	struct err err;
	enum ca_kind kind;
	enum ca_db_rc rc;
	json_t *stored = NULL;

	if (q == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return;
	}
	if (ca_parse_certify(body, &a, &err) == -1) {
		ca_refuse(r, 400, PV_HINT_REQ, "%s", err.msg);
		goto out;
	}
	rc = ca_db_challenge_take(s->db, a.id, time(NULL), &kind, &text, hash);
	switch (rc) {
	case CA_DB_OK: break;
	case CA_DB_NOTFOUND:
		ca_refuse(r, 404, "ask for a challenge with POST /v1/privacy/challenge",
		    "no challenge %s", a.id);
		goto out;
	case CA_DB_USED:
		ca_refuse(r, 409, "a challenge is answered once: ask for a new one",
		    "challenge %s was answered before", a.id);
		goto out;
	case CA_DB_EXPIRED:
		ca_refuse(r, 410, "answer within expires_in seconds: ask for a new challenge",
		    "challenge %s has expired", a.id);
		goto out;
	default:
		ca_refuse(r, 500, "try again; see vtpm-ca's log", "challenge %s: %s", a.id,
		    ca_db_error(s->db));
		goto out;
	}
	if (ca_sha256(a.secret, a.secret_len, got) == -1 || !ca_equal(got, hash, sizeof(got))) {
		ca_refuse(r, 403,
		    "send what TPM2_ActivateCredential returned with the challenge's EK and key; "
		    "the challenge is used up: ask for a new one",
		    "challenge %s: wrong secret", a.id);
		goto out;
	}
	if ((stored = json_loads(text, 0, NULL)) == NULL ||
	    ca_parse_challenge((struct json_t *)stored, q, &err) == -1 ||
	    q->kind != kind) {
		ca_refuse(r, 500, "report this as a bug",
		    "challenge %s: the stored request is "
		    "malformed",
		    a.id);
		goto out;
	}
	if (pv_check(s, q, &c, r) == -1)
		goto out;
	pv_issue(s, q, &c, r);
out:
	ca_cleanse(&a, sizeof(a));
	json_decref(stored);
	free(text);
	free(q);
}
