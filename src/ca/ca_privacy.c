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
 *              key's Name. Only SHA-256(secret) is kept, by the parent.
 *   certify:   the parent takes the challenge (single use: a wrong secret
 *              consumes it) and compares the secret; here the stored
 *              request is checked again (trust and revocation may have
 *              changed), and the parent issues the CK or AK certificate
 *              from the values checked.
 *
 * This runs in the network child: every check of the request is made
 * here, and the parent is asked only for records and signatures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca_msg.h"

#define PV_HINT_REQ "see docs/ca-api.md for the request's fields"

/* What the checks of a challenge request establish. */
struct pv_checked {
	struct evidence_public ek, key;
	struct certs_virtual virt; /* ak: the vEK certificate's marker */
	struct certs_ek_info tpm;  /* ak: the vEK certificate's TPM attributes */
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
	}
	rv = ca_trust_revoked(&s->link, leaf.der, leaf.len, &err);
	if (rv != 0) {
		ca_refuse(r, rv == 1 ? 403 : 500,
		    rv == 1 ? "a revoked TPM cannot enrol keys" : "try again; see vtpm-ca's log",
		    "EK certificate refused: %s", err.msg);
		return -1;
	}
	return 0;
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

/* TPM2_MakeCredential of secret for the EK and the key, base64: 0, or -1
 * with err. The caller frees *blob64 and *enc64. */
static int
pv_credential(const struct ca_challenge_req *q, const uint8_t *secret, char **blob64, char **enc64,
    struct err *err)
{
	uint8_t name[CREDENTIAL_NAME_LEN], *blob = NULL, *enc = NULL;
	size_t blob_len = 0, enc_len = 0;
	int ret = -1;

	*blob64 = *enc64 = NULL;
	if (credential_public_name(q->key_public, q->key_public_len, name, err) == -1 ||
	    credential_make(q->ek_public, q->ek_public_len, name, sizeof(name), secret,
	        CA_SECRET_LEN, &blob, &blob_len, &enc, &enc_len, err) == -1)
		goto out;
	*blob64 = base64_encode(blob, blob_len);
	*enc64 = base64_encode(enc, enc_len);
	if (*blob64 == NULL || *enc64 == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		free(*blob64);
		free(*enc64);
		*blob64 = *enc64 = NULL;
	}
	free(enc);
	free(blob);
	return ret;
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
		ca_refuse(r, 403,
		    "the CA's operator admits a host with 'vtpm-ca host add NAME --ek-cert FILE "
		    "--approval-key PUB' (the host's EK certificate: 'vtpmctl host ek-cert --out "
		    "FILE'), and its CK is the one vtpmd makes ('vtpmctl host enroll')",
		    "host \"%s\" refused: %s", q->host, a->reason);
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

/* The parent records the challenge (the hash of its secret, the EK and
 * client it counts under, the parsed request to check again); 0, or -1
 * with r refused. */
static int
pv_record(struct ca_server *s, const struct ca_challenge_req *q, const struct pv_checked *c,
    const uint8_t hash[static 32], struct ca_answer *a, struct ca_reply *r)
{
	uint8_t ek_key[CERTS_DIGEST_LEN];
	json_t *stored = pv_stored(q);
	char *text = stored != NULL ? json_dumps(stored, JSON_COMPACT) : NULL;
	struct ca_challenge_ask ask = {.kind = q->kind,
	    .hash = hash,
	    .ek_key = ek_key,
	    .client = s->client,
	    .subject = q->kind == CA_KIND_CK ? q->host : c->virt.instance_uuid,
	    .request = text,
	    .key_attributes = c->key.attributes,
	    .key_policy = c->key.auth_policy,
	    .key_policy_len = c->key.auth_policy_len};

	json_decref(stored);
	if (text == NULL || certs_cert_key_digest(q->ek_cert.der, q->ek_cert.len, ek_key) == -1) {
		free(text);
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
	uint8_t secret[CA_SECRET_LEN], hash[32];
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
	if (pv_check(s, q, &c, r) == -1)
		goto out;
	if (ca_random(secret, sizeof(secret)) == -1 ||
	    ca_sha256(secret, sizeof(secret), hash) == -1) {
		ca_refuse(r, 500, "try again", "no random numbers");
		goto out;
	}
	if (pv_credential(q, secret, &blob, &enc, &err) == -1) {
		ca_refuse(r, 403,
		    "ek_public must be an EK of the TCG templates (restricted "
		    "decryption key, RSA-2048 or ECC P-256, AES-128-CFB)",
		    "no credential can be made for this EK: %s", err.msg);
		goto out;
	}
	if (pv_record(s, q, &c, hash, &a, r) == -1)
		goto out;
	o = json_pack("{s:s, s:s, s:s, s:I}", "id", a.id, "credential_blob", blob,
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
	ca_cleanse(secret, sizeof(secret));
	ca_answer_clear(&a);
	free(enc);
	free(blob);
	free(q);
}

/* Has the parent issue the certificate of challenge id, answered
 * correctly, from the values checked. */
static void
pv_issue(struct ca_server *s, const char *id, const struct ca_challenge_req *q,
    const struct pv_checked *c, struct ca_reply *r)
{
	uint8_t digest[CERTS_DIGEST_LEN];
	struct ca_answer a = {0};
	struct ca_msg_key key;

	if (ca_tpm_key(&c->key, &key) == -1) {
		ca_refuse(r, 500, "report this as a bug", "the key cannot be read again");
		return;
	}
	if (q->kind == CA_KIND_CK) {
		if (certs_cert_key_digest(q->ek_cert.der, q->ek_cert.len, digest) == -1) {
			ca_refuse(
			    r, 500, "report this as a bug", "the EK's key cannot be read again");
			return;
		}
		ca_ask_issue_ck(&s->link, id, &key, q->host, digest, &a);
	} else {
		ca_ask_issue_ak(&s->link, id, &key, &c->tpm, &c->virt, &a);
	}
	if (a.rc == CA_MSG_REFUSED) {
		ca_refuse(r, 403, "the CA's operator admits hosts with 'vtpm-ca host add'",
		    "host \"%s\" refused: %s", q->host, a.reason);
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
