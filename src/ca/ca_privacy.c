/*
 * ca_privacy.c: the Privacy CA (docs/ca-api.md). A key is certified only
 * after the TPM holding a trusted EK has shown, with
 * TPM2_ActivateCredential, that it holds the key too:
 *
 *   challenge: check the EK certificate (ck: a TPM manufacturer's chain;
 *              ak: a vEK certificate from a trusted Virtualization CA, with
 *              the virtual marker and the lineage naming its CK), that it
 *              certifies ek_public, that it is not revoked (ak: nor the CK
 *              it descends from), and that key_public is a restricted
 *              signing key;
 *              then the parent reads ek_public and key_public itself, draws
 *              a fresh secret and makes the credential (TPM2_MakeCredential
 *              for the EK and the Name it computes); it keeps only
 *              SHA-256(secret || Name || the EK's key digest).
 *   certify:   the parent takes the challenge (single use: a wrong secret
 *              consumes it) and compares the secret, for the EK and key of
 *              the stored request; here the stored request is checked
 *              again (trust and revocation may have changed), and the
 *              parent issues the CK or AK certificate for the key it read
 *              (an AK's vEK certificate and lineage from its own records).
 *
 * This runs in the network child: every check of the request is made
 * here, for a clear answer; the parent holds what makes a certificate
 * true (the secret, the key, the records) and checks it again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca_msg.h"

#define PV_HINT_REQ "see docs/ca-api.md for the request's fields"
#define PV_HINT_AK_SHARE                                                                           \
	"enrol an AK that has a valid certificate again (it gets that certificate back), or "      \
	"have the CA's operator revoke one ('vtpm-ca revoke')"

/* What the checks of a challenge request establish. */
struct pv_checked {
	struct evidence_public ek, key;
	struct certs_virtual virt; /* ak: the vEK certificate's marker */
	struct certs_ek_info tpm;  /* ak: the vEK certificate's TPM attributes */
	struct certs_lineage lineage; /* ak: the vEK certificate and its CK's */
};

/* An AK's lineage: the vEK certificate itself, and the CK its own lineage
 * names. */
static int
pv_lineage(const struct certs_der *vek, struct pv_checked *c, struct ca_reply *r)
{
	struct certs_lineage own;
	struct err err;

	if (certs_parse_lineage(vek->der, vek->len, &own, &err) == -1 ||
	    certs_cert_ref(vek->der, vek->len, &c->lineage.vek, &err) == -1) {
		ca_refuse(r, 403, "send the vEK certificate vtpmd wrote",
		    "vEK certificate refused: %s", err.msg);
		return -1;
	}
	if (!own.present) {
		ca_refuse(r, 403,
		    "have vtpmd provision the vTPM's EK certificates again (vtpmctl create), "
		    "from a Virtualization CA that names the CK",
		    "vEK certificate refused: it names no CK certificate (VtpmdLineage), so "
		    "revoking its host could not reach the AK");
		return -1;
	}
	c->lineage.present = true;
	c->lineage.ck = own.ck;
	c->lineage.has_vek = true;
	return 0;
}

/* Neither the (v)EK certificate nor, for an AK, the CK it descends from
 * is revoked. */
static int
pv_check_revoked(struct ca_server *s, const struct certs_der *leaf, const struct pv_checked *c,
    struct ca_reply *r)
{
	struct err err;
	int rv;

	rv = ca_trust_revoked(&s->link, leaf->der, leaf->len, &err);
	if (rv == 0 && c->lineage.present) {
		rv = ca_trust_serial_revoked(&s->link, c->lineage.ck.serial, &err);
		if (rv == 1)
			err_wrap(&err, "its CK");
	}
	if (rv != 0) {
		ca_refuse(r, rv == 1 ? 403 : 500,
		    rv == 1 ? "a revoked TPM or host cannot enrol keys"
		            : "try again; see vtpm-ca's log",
		    "EK certificate refused: %s", err.msg);
		return -1;
	}
	return 0;
}

static int
pv_check_ek_cert(
    struct ca_server *s, const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	struct certs_der leaf = {q->ek_cert.der, q->ek_cert.len}, chain[CA_CHAIN_MAX];
	struct err err;

	for (size_t i = 0; i < q->n_chain; i++)
		chain[i] = (struct certs_der){q->chain[i].der, q->chain[i].len};
	if (q->kind == CA_KIND_CK) {
		if (ca_trust_verify(&s->link, CA_TRUST_MANUFACTURER, &leaf, chain, q->n_chain,
		        false, time(NULL), &err) == -1) {
			ca_refuse(r, 403,
			    "trust the TPM manufacturer's root with 'vtpm-ca trust add "
			    "--manufacturer "
			    "ROOT.pem', and send intermediate certificates in ek_chain",
			    "host EK certificate refused: %s", err.msg);
			return -1;
		}
	} else {
		if (ca_trust_verify(&s->link, CA_TRUST_VIRTUALIZATION, &leaf, chain, q->n_chain,
		        true, time(NULL), &err) == -1) {
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
		if (certs_ek_info(leaf.der, leaf.len, &c->tpm, &err) == -1) {
			ca_refuse(r, 403, "send the vEK certificate vtpmd wrote",
			    "vEK certificate refused: its TPM attributes: %s", err.msg);
			return -1;
		}
		if (pv_lineage(&leaf, c, r) == -1)
			return -1;
	}
	return pv_check_revoked(s, &leaf, c, r);
}

/* ek_public is the key of the EK certificate: their numbers compared,
 * without building a checked key (an RSA key's check costs milliseconds,
 * which a flood of requests would spend before any limit applies). */
static int
pv_check_ek_public(const struct ca_challenge_req *q, struct pv_checked *c, struct ca_reply *r)
{
	struct ca_msg_key k;
	struct err err;
	int same;

	if (evidence_parse_public(q->ek_public, q->ek_public_len, &c->ek, &err) == -1) {
		ca_refuse(r, 400, "send the EK's TPM2B_PUBLIC (tpm2_createek -u), base64",
		    "ek_public: %s", err.msg);
		return -1;
	}
	if (ca_tpm_key(&c->ek, &k) == -1) {
		ca_refuse(r, 403, "the EK must be RSA-2048 or ECC P-256 (TCG templates L-1, L-2)",
		    "ek_public: not an EK key this CA can use");
		return -1;
	}
	same = k.type == CA_KEY_RSA_2048
	           ? certs_cert_key_is_rsa(q->ek_cert.der, q->ek_cert.len, k.modulus,
	                 sizeof(k.modulus), k.exponent)
	           : certs_cert_key_is_p256(q->ek_cert.der, q->ek_cert.len, k.x, k.y);
	if (same != 1) {
		ca_refuse(r, 403, "send the public area of the EK the certificate names",
		    "ek_public is not the key the EK certificate certifies");
		return -1;
	}
	return 0;
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
	if (k->auth_policy_len != 0 && k->auth_policy_len != TPM_DIGEST_LEN) {
		ca_refuse(r, 400, "a key's authPolicy is empty or a digest of its name algorithm",
		    "key_public: an authPolicy of %zu bytes", k->auth_policy_len);
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

/* The parsed fields of a challenge request as JSON that ca_parse_challenge
 * reads back (what the challenge row keeps), or NULL when out of memory. */
static json_t *
pv_stored(const struct ca_challenge_req *q)
{
	json_t *o = json_object(), *chain = json_array();
	char *pem = certs_pem_encode(q->ek_cert.der, q->ek_cert.len);
	char *ek = base64_encode(q->ek_public, q->ek_public_len);
	char *key = base64_encode(q->key_public, q->key_public_len);
	bool ok = o != NULL && chain != NULL && pem != NULL && ek != NULL && key != NULL;

	for (size_t i = 0; ok && i < q->n_chain; i++) {
		char *c = certs_pem_encode(q->chain[i].der, q->chain[i].len);

		ok = c != NULL && json_array_append_new(chain, json_string(c)) == 0;
		free(c);
	}
	ok =
	    ok &&
	    json_object_set_new(o, "kind", json_string(q->kind == CA_KIND_CK ? "ck" : "ak")) == 0 &&
	    json_object_set_new(o, "ek_certificate", json_string(pem)) == 0 &&
	    json_object_set_new(o, "ek_public", json_string(ek)) == 0 &&
	    json_object_set_new(o, "key_public", json_string(key)) == 0 &&
	    (q->n_chain == 0 || json_object_set(o, "ek_chain", chain) == 0) &&
	    (q->kind != CA_KIND_CK || json_object_set_new(o, "host", json_string(q->host)) == 0);
	free(key);
	free(ek);
	free(pem);
	json_decref(chain);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Why the parent did not record a challenge, as the client's answer. */
static void
pv_not_recorded(const struct ca_challenge_req *q, const struct ca_answer *a, struct ca_reply *r)
{
	switch (a->rc) {
	case CA_MSG_REFUSED:
		if (q->kind == CA_KIND_CK)
			ca_refuse(r, 403,
			    "the CA's operator admits a host with 'vtpm-ca host add NAME --ek-cert "
			    "FILE --approval-key PUB' (the host's EK certificate: 'vtpmctl host "
			    "ek-cert --out FILE'), and its CK is the one vtpmd makes ('vtpmctl "
			    "host "
			    "enroll')",
			    "host \"%s\" refused: %s", q->host, a->reason);
		else
			ca_refuse(r, 403,
			    "ek_public must be an EK of the TCG templates and key_public an AK "
			    "(tpm2_createak), beneath a vEK certificate this CA issued under its "
			    "host's current CK, neither revoked",
			    "refused: %s", a->reason);
		break;
	case CA_MSG_CONFLICT:
		ca_refuse(r, 409, PV_HINT_AK_SHARE, "AK refused: %s", a->reason);
		break;
	case CA_MSG_LIMIT:
		ca_refuse(r, 429,
		    "answer or let expire this client's open challenges, then try again",
		    "too many open challenges: %s", a->reason);
		break;
	case CA_MSG_FULL:
		ca_refuse(r, 503, "answer or let expire the open challenges, then try again",
		    "the challenge cannot be recorded: %s", a->reason);
		break;
	default:
		ca_refuse(r, 500, "try again; see vtpm-ca's log",
		    "the challenge cannot be recorded: %s", a->reason);
	}
}

/* The parent records the challenge (the EK and key it makes the
 * credential for, the client it counts under, the parsed request to check
 * again) and answers the credential; 0, or -1 with r refused. */
static int
pv_record(struct ca_server *s, const struct ca_challenge_req *q, const struct pv_checked *c,
    struct ca_answer *a, struct ca_reply *r)
{
	json_t *stored = pv_stored(q);
	char *text = stored != NULL ? json_dumps(stored, JSON_COMPACT) : NULL;
	struct ca_challenge_ask ask = {.kind = q->kind,
	    .client = s->client,
	    .subject = q->kind == CA_KIND_CK ? q->host : c->virt.instance_uuid,
	    .request = text,
	    .ek_public = q->ek_public,
	    .ek_public_len = q->ek_public_len,
	    .key_public = q->key_public,
	    .key_public_len = q->key_public_len,
	    .vek_serial = q->kind == CA_KIND_AK ? c->lineage.vek.serial : NULL};

	json_decref(stored);
	if (text == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return -1;
	}
	ca_ask_challenge_add(&s->link, &ask, a);
	free(text);
	if (a->rc != CA_MSG_OK) {
		pv_not_recorded(q, a, r);
		return -1;
	}
	return 0;
}

void
ca_privacy_challenge(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_challenge_req *q = calloc(1, sizeof(*q));
	struct ca_answer a = {0};
	struct pv_checked c;
	char *blob = NULL, *enc = NULL;
	struct err err;
	json_t *o;

	if (q == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return;
	}
	if (ca_parse_challenge(body, q, &err) == -1) {
		ca_refuse(r, 400, PV_HINT_REQ, "%s", err.msg);
		goto out;
	}
	if (pv_check(s, q, &c, r) == -1 || pv_record(s, q, &c, &a, r) == -1)
		goto out;
	blob = base64_encode(a.blob, a.blob_len);
	enc = base64_encode(a.enc, a.enc_len);
	o = blob == NULL || enc == NULL
	        ? NULL
	        : json_pack("{s:s, s:s, s:s, s:I}", "id", a.id, "credential_blob", blob,
	              "encrypted_secret", enc, "expires_in", (json_int_t)a.expires_in);
	if (o == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	r->status = 200;
	r->body = (struct json_t *)o;
	r->outcome = "challenged";
	if (q->kind == CA_KIND_CK)
		snprintf(r->detail, sizeof(r->detail), "challenge %s for the CK of host %s", a.id,
		    q->host);
	else
		snprintf(r->detail, sizeof(r->detail), "challenge %s for an AK of vTPM %s", a.id,
		    c.virt.instance_uuid);
out:
	ca_answer_clear(&a);
	free(enc);
	free(blob);
	free(q);
}

/* Has the parent issue the certificate of challenge id, answered
 * correctly: for the key it read, a CK's under the host asked for, an
 * AK's beneath the vEK certificate checked. */
static void
pv_issue(struct ca_server *s, const char *id, const struct ca_challenge_req *q,
    const struct pv_checked *c, struct ca_reply *r)
{
	struct ca_answer a = {0};

	if (q->kind == CA_KIND_CK)
		ca_ask_issue_ck(&s->link, id, q->host, &a);
	else
		ca_ask_issue_ak(&s->link, id, c->lineage.vek.serial, &a);
	if (a.rc == CA_MSG_REFUSED && q->kind == CA_KIND_CK) {
		ca_refuse(r, 403, "the CA's operator admits hosts with 'vtpm-ca host add'",
		    "host \"%s\" refused: %s", q->host, a.reason);
		goto out;
	}
	if (a.rc == CA_MSG_CONFLICT && q->kind == CA_KIND_AK) {
		ca_refuse(r, 409, PV_HINT_AK_SHARE, "AK refused: %s", a.reason);
		goto out;
	}
	if (a.rc == CA_MSG_REFUSED) {
		ca_refuse(r, 403,
		    "an AK is certified beneath a vEK certificate this CA issued and has not "
		    "revoked",
		    "AK refused: %s", a.reason);
		goto out;
	}
	if (a.rc != CA_MSG_OK) {
		ca_refuse(
		    r, 500, "see vtpm-ca's log", "issuing the certificate failed: %s", a.reason);
		goto out;
	}
	if ((r->body = ca_issued_json(a.der, a.der_len, &s->privacy_cert, &s->root, a.serial)) ==
	    NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		goto out;
	}
	r->status = 200;
	r->outcome = "issued";
	if (q->kind == CA_KIND_CK)
		snprintf(
		    r->detail, sizeof(r->detail), "ck certificate %s for %s", a.serial, q->host);
	else
		snprintf(r->detail, sizeof(r->detail), "ak certificate %s for AK of vTPM %s",
		    a.serial, c->virt.instance_uuid);
out:
	ca_answer_clear(&a);
}

/* The parent's verdict on the answer to a challenge: 0 when it matched,
 * or -1 with r refused. */
static int
pv_taken(const struct ca_certify_req *q, const struct ca_answer *t, struct ca_reply *r)
{
	switch (t->rc) {
	case CA_MSG_OK: return 0;
	case CA_MSG_NOTFOUND:
		ca_refuse(r, 404, "ask for a challenge with POST /v1/privacy/challenge",
		    "no challenge %s", q->id);
		return -1;
	case CA_MSG_USED:
		ca_refuse(r, 409, "a challenge is answered once: ask for a new one",
		    "challenge %s was answered before", q->id);
		return -1;
	case CA_MSG_EXPIRED:
		ca_refuse(r, 410, "answer within expires_in seconds: ask for a new challenge",
		    "challenge %s has expired", q->id);
		return -1;
	case CA_MSG_WRONG:
		ca_refuse(r, 403,
		    "send what TPM2_ActivateCredential returned with the challenge's EK and key; "
		    "the challenge is used up: ask for a new one",
		    "challenge %s: wrong secret", q->id);
		return -1;
	default:
		ca_refuse(
		    r, 500, "try again; see vtpm-ca's log", "challenge %s: %s", q->id, t->reason);
		return -1;
	}
}

void
ca_privacy_certify(struct ca_server *s, const struct json_t *body, struct ca_reply *r)
{
	struct ca_challenge_req *q = calloc(1, sizeof(*q));
	struct ca_answer t = {0};
	struct ca_certify_req a;
	struct pv_checked c;
	struct err err;
	json_t *stored = NULL;

	if (q == NULL) {
		ca_refuse(r, 500, "try again", "out of memory");
		return;
	}
	if (ca_parse_certify(body, &a, &err) == -1) {
		ca_refuse(r, 400, PV_HINT_REQ, "%s", err.msg);
		goto out;
	}
	ca_ask_challenge_take(&s->link, a.id, a.secret, a.secret_len, &t);
	if (pv_taken(&a, &t, r) == -1)
		goto out;
	if ((stored = json_loads(t.request, 0, NULL)) == NULL ||
	    ca_parse_challenge((struct json_t *)stored, q, &err) == -1 || q->kind != t.kind) {
		ca_refuse(r, 500, "report this as a bug",
		    "challenge %s: the stored request is "
		    "malformed",
		    a.id);
		goto out;
	}
	if (pv_check(s, q, &c, r) == -1)
		goto out;
	pv_issue(s, a.id, q, &c, r);
out:
	ca_cleanse(&a, sizeof(a));
	ca_answer_clear(&t);
	json_decref(stored);
	free(q);
}
