/*
 * ca_parent.c: the parent of `vtpm-ca serve`, the process that holds the
 * database and the CA keys, answering its network child (ca_msg.h).
 *
 * The child parses HTTP, JSON and DER and checks every request; the parent
 * parses only typed TPM structures, with tss2-mu, and re-verifies what it
 * signs for (ca_verify.c). One small handler per message type, dispatched
 * from a table. The parent keeps its own counsel:
 *   - it makes every certificate from typed values (a key it read from a
 *     TPM2B_PUBLIC, a host name, digests, TPM attributes), never from DER
 *     the child passes on;
 *   - it draws a challenge's secret and makes its credential itself, for
 *     the EK and the key Name it computed; a CK or AK certificate only
 *     right after that challenge was taken and its secret matched (the
 *     permit), once, for that challenge's kind and key; a CK's host
 *     admitted and its template checked again then; an AK's vEK
 *     certificate one it issued, for the EK the credential was made for;
 *   - an EK certificate only on evidence it verified itself, with the key
 *     of a CK certificate it issued, and under the approved host
 *     configuration it finds for the quoted PCRs' policy;
 *   - it writes the audit row of every challenge and every certificate
 *     itself, as it makes them (the child reports its refusals);
 *   - it records the lineage a vEK or AK certificate names, and issues
 *     none beneath a CK or vEK certificate its records say is revoked,
 *     nor beneath a CK certificate that has expired or no longer speaks
 *     for its host (ca_db_ck_usable: the host removed, renamed or
 *     enrolled again); an AK certificate ends no later than its CK's;
 *   - the text it sends is made printable first, so that no record (an
 *     operator's revocation reason, a database error) makes the child
 *     refuse the answer.
 * A handler returns -1 only when the child must be ended: a message it
 * had no business sending, or an answer it did not take. A failure of
 * the records or of a key is an answer (FAILED, with a reason), not an end.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca_msg.h"

typedef int (*pa_handler)(struct ca_parent *p, const struct ca_msg *m, struct err *err);

/* Copies text into a field of an answer, cut to fit, non-printable bytes
 * made '?'. */
static void
pa_text(char *field, size_t size, const char *text)
{
	size_t i;

	for (i = 0; text[i] != '\0' && i + 1 < size; i++)
		field[i] = text[i] >= 0x20 && text[i] <= 0x7e ? text[i] : '?';
	field[i] = '\0';
}

static int
pa_send(struct ca_parent *p, struct err *err)
{
	if (ca_msg_send(p->fd, p->out, err) == -1)
		return err_wrap(err, "answering the child");
	return 0;
}

void
ca_parent_audit(struct ca_parent *p, const char *action, const char *outcome, const char *fmt, ...)
{
	char detail[CA_DETAIL_MAX];
	struct err err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (ca_db_audit(p->db, time(NULL), action, outcome, detail, &err) == -1)
		log_warnx("audit trail: %s", err.msg);
}

void
ca_parent_reset(struct ca_parent *p, int fd)
{
	p->fd = fd;
	memset(&p->permit, 0, sizeof(p->permit));
	p->children++;
}

static void
pa_cert(struct ca_msg_cert *out, const struct ca_der *in)
{
	out->len = (uint32_t)in->len;
	memcpy(out->der, in->der, in->len);
}

void
ca_parent_hello(const struct ca_parent *p, struct ca_msg *m)
{
	ca_msg_init(m, CA_MSG_HELLO);
	m->u.hello.role = (uint32_t)p->cfg.role;
	pa_cert(&m->u.hello.root, &p->root);
	pa_cert(&m->u.hello.privacy, &p->privacy_cert);
	pa_cert(&m->u.hello.virt, &p->virt_cert);
}

/* A message of a role this server does not serve: the child knows better. */
static int
pa_serves(const struct ca_parent *p, enum ca_role role, const struct ca_msg *m, struct err *err)
{
	if ((p->cfg.role & role) == 0)
		return err_set(err, ERR_INVALID, "%s, but the %s role is not served",
		    ca_msg_type_name(m->hdr.type), ca_role_name(role));
	return 0;
}

/* ---- the trust store, revocations, approval keys ---- */

struct pa_trust {
	struct ca_parent *p;
	struct err *err;
	uint32_t count;
	bool failed; /* the child did not take an entry */
	bool too_large;
};

static int
pa_trust_entry(void *ctx, const struct ca_trust *t)
{
	struct pa_trust *pt = ctx;
	struct ca_msg *m = pt->p->out;
	size_t n = strlen(t->data);

	if (n > CA_MSG_TRUST_MAX) {
		log_warnx("trust entry %lld (%s) is larger than %u bytes: not sent to the child",
		    (long long)t->id, t->name, CA_MSG_TRUST_MAX);
		pt->too_large = true;
		return 1;
	}
	ca_msg_init(m, CA_MSG_TRUST_ENTRY);
	m->u.trust_entry.len = (uint32_t)n;
	memcpy(m->u.trust_entry.pem, t->data, n);
	if (pa_send(pt->p, pt->err) == -1) {
		pt->failed = true;
		return 1;
	}
	pt->count++;
	return 0;
}

static int
pa_trust_list(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct pa_trust pt = {.p = p, .err = err};
	struct err dberr;
	int rc;

	rc = ca_db_trust_list(p->db, (int)m->u.trust_list.kind, pa_trust_entry, &pt, &dberr);
	if (pt.failed)
		return -1;
	if (rc == -1)
		log_warnx("trust store: %s", dberr.msg);
	ca_msg_init(p->out, CA_MSG_TRUST_END);
	p->out->u.trust_end.rc = rc == 0 && !pt.too_large ? CA_MSG_OK : CA_MSG_FAILED;
	p->out->u.trust_end.count = pt.count;
	return pa_send(p, err);
}

static int
pa_status_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct ca_msg_status *a = &p->out->u.status;
	struct ca_status st;
	struct err dberr;
	int rc;

	rc = ca_db_status(p->db, m->u.status_get.serial, &st, &dberr);
	ca_msg_init(p->out, CA_MSG_STATUS);
	if (rc == 0) {
		a->rc = CA_MSG_OK;
		a->issued_here = st.issued_here;
		a->revoked = st.revoked;
		a->revoked_at = st.revoked_at;
		pa_text(a->reason, sizeof(a->reason), st.reason);
	} else if (dberr.kind == ERR_ABSENT) {
		a->rc = CA_MSG_NOTFOUND;
	} else {
		log_warnx("status: %s", dberr.msg);
		a->rc = CA_MSG_FAILED;
	}
	return pa_send(p, err);
}

static int
pa_approval_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct err why;
	int rc = ca_verify_approval_key(p->db, m->u.approval_get.x, m->u.approval_get.y, &why);

	if (rc == -1 && why.kind != ERR_REFUSED)
		log_warnx("approval keys: %s", why.msg);
	ca_msg_init(p->out, CA_MSG_APPROVAL);
	p->out->u.approval.rc = rc == 0 || why.kind == ERR_REFUSED ? CA_MSG_OK : CA_MSG_FAILED;
	p->out->u.approval.trusted = rc == 0 ? 1 : 0;
	return pa_send(p, err);
}

/* ---- challenges ---- */

/* A CK's host EK must be admitted under the name it asks for
 * (docs/ca-api.md, "Admitted hosts"): CA_MSG_OK, or REFUSED or FAILED
 * with the reason in reason. */
static enum ca_msg_rc
pa_admitted(struct ca_parent *p, const char *host, const char *ek_key, char *reason, size_t len)
{
	struct err dberr;
	bool unknown;

	if (ca_db_host_check(
	        p->db, host, ek_key, p->cfg.admit_any_manufacturer_ek, &unknown, &dberr) == -1) {
		if (dberr.kind != ERR_REFUSED)
			log_warnx("hosts: %s", dberr.msg);
		pa_text(reason, len, dberr.msg);
		return dberr.kind == ERR_REFUSED ? CA_MSG_REFUSED : CA_MSG_FAILED;
	}
	if (unknown)
		log_warnx("--admit-any-manufacturer-ek: challenging host EK %s of \"%s\", "
		          "which no operator admitted",
		    ek_key, host);
	return CA_MSG_OK;
}

/* What vtpmd makes a CK (hwtpm_attest.c): a restricted signing key that
 * never leaves its TPM, used only through its policy (no USER role by
 * authValue, no ADMIN role by policy). */
#define PA_CK_ATTRS_SET                                                                            \
	(EVIDENCE_OBJ_FIXED_TPM | EVIDENCE_OBJ_FIXED_PARENT | EVIDENCE_OBJ_SENSITIVE_ORIG |        \
	    EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_SIGN)
#define PA_CK_ATTRS_CLEAR                                                                          \
	(EVIDENCE_OBJ_USER_WITH_AUTH | EVIDENCE_OBJ_ADMIN_WITH_POL | EVIDENCE_OBJ_DECRYPT)

/* Why a CK's attributes and authPolicy are not those vtpmd gives it under
 * the host's approval key (""), into why. */
static void
pa_ck_template_why(
    const struct evidence_public *ck, const struct approval_pub *key, char *why, size_t len)
{
	uint8_t want[TPM_DIGEST_LEN];

	why[0] = '\0';
	if ((ck->attributes & PA_CK_ATTRS_SET) != PA_CK_ATTRS_SET)
		snprintf(why, len,
		    "the CK is not a restricted signing key with fixedTPM, "
		    "fixedParent and sensitiveDataOrigin");
	else if (ck->attributes & EVIDENCE_OBJ_USER_WITH_AUTH)
		snprintf(why, len,
		    "the CK has userWithAuth: its authValue alone would let it "
		    "sign in any host configuration");
	else if (ck->attributes & PA_CK_ATTRS_CLEAR)
		snprintf(why, len, "the CK has adminWithPolicy or decrypt set");
	else if (pcrpolicy_authorize(key, want) == -1)
		snprintf(why, len, "the host's approval key cannot be used");
	else if (ck->auth_policy_len != sizeof(want) ||
	         memcmp(ck->auth_policy, want, sizeof(want)) != 0)
		snprintf(why, len,
		    "the CK's authPolicy is not the PolicyAuthorize of the host's "
		    "approval key: it would work outside an approved host "
		    "configuration");
}

/* A CK must be a CK as vtpmd makes it under the approval key its host was
 * admitted with (docs/ca-api.md, "Admitted hosts"): CA_MSG_OK, or
 * REFUSED or FAILED with the reason in reason. */
static enum ca_msg_rc
pa_ck_template(struct ca_parent *p, const struct evidence_public *ck, const char *ek_key,
    char *reason, size_t len)
{
	struct ca_host h;
	struct err dberr;
	char why[CA_MSG_REASON_MAX];

	if (ca_db_host_find(p->db, ek_key, &h, &dberr) == -1) {
		if (dberr.kind == ERR_ABSENT && p->cfg.admit_any_manufacturer_ek)
			return CA_MSG_OK; /* admitted at issue, without an approval key */
		log_warnx("hosts: %s", dberr.msg);
		pa_text(reason, len, dberr.msg);
		return CA_MSG_FAILED;
	}
	if (!h.has_approval) {
		log_warnx("host \"%s\" was admitted without an approval key: its CK's policy is "
		          "not checked",
		    h.name);
		return CA_MSG_OK;
	}
	pa_ck_template_why(ck, &h.approval, why, sizeof(why));
	if (why[0] == '\0')
		return CA_MSG_OK;
	pa_text(reason, len, why);
	return CA_MSG_REFUSED;
}

/* An AK challenge refused up front for what would refuse its certificate
 * (below, with the certificates): CA_MSG_OK, or why not in reason. The
 * issue checks again. */
static enum ca_msg_rc pa_ak_early(struct ca_parent *p, const char *vek_serial,
    const uint8_t ek_key[static 32], const struct evidence_public *key, char *reason, size_t len);

/* The outcome of recording a challenge the records refused. */
static enum ca_msg_rc
pa_challenge_refused(const struct err *dberr)
{
	switch (dberr->kind) {
	case ERR_BUSY: return CA_MSG_FULL;
	case ERR_REFUSED: return CA_MSG_LIMIT;
	default: log_warnx("challenges: %s", dberr->msg); return CA_MSG_FAILED;
	}
}

/* The credential of a fresh secret for the EK and the key's Name (the
 * parent's own): into a, and the SHA-256 of the secret into hash. 0, or
 * -1 with a->rc and a->reason set. */
static int
pa_credential(const struct ca_msg_challenge_add *q, const struct evidence_public *key,
    uint8_t hash[static 32], struct ca_msg_challenge_added *a)
{
	uint8_t secret[CA_SECRET_LEN], *blob = NULL, *enc = NULL;
	size_t blob_len = 0, enc_len = 0;
	struct err e;
	int ret = -1;

	if (ca_random(secret, sizeof(secret)) == -1 ||
	    ca_sha256(secret, sizeof(secret), hash) == -1) {
		a->rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "out of random numbers");
		goto out;
	}
	if (credential_make(q->ek.data, q->ek.len, key->name, key->name_len, secret, sizeof(secret),
	        &blob, &blob_len, &enc, &enc_len, &e) == -1) {
		a->rc = CA_MSG_REFUSED;
		snprintf(a->reason, sizeof(a->reason), "no credential can be made for this EK");
		goto out;
	}
	if (blob_len > sizeof(a->blob) || enc_len > sizeof(a->enc)) {
		a->rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "the credential is too large");
		goto out;
	}
	a->blob_len = (uint32_t)blob_len;
	memcpy(a->blob, blob, blob_len);
	a->enc_len = (uint32_t)enc_len;
	memcpy(a->enc, enc, enc_len);
	ret = 0;
out:
	ca_cleanse(secret, sizeof(secret));
	free(blob);
	free(enc);
	return ret;
}

/* Records a challenge: the parent reads the EK and the key, checks a CK's
 * host and template, draws the secret and makes the credential, and keeps
 * SHA-256 of the secret with the key it read. */
static int
pa_challenge_add(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_add *q = &m->u.challenge_add;
	struct ca_msg_challenge_added *a = &p->out->u.challenge_added;
	struct ca_challenge_rec rec = {.kind = (enum ca_kind)q->kind,
	    .client = q->client,
	    .now = time(NULL),
	    .key_public = q->key.data,
	    .key_public_len = q->key.len};
	char id[CA_ID_HEX + 1], ek_key[CA_EK_KEY_HEX + 1], *request = NULL;
	uint8_t idb[CA_ID_BYTES], ekd[CERTS_DIGEST_LEN], hash[32];
	struct evidence_public key;
	struct err dberr;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1)
		return -1;
	ca_msg_init(p->out, CA_MSG_CHALLENGE_ADDED);
	if (ca_verify_keys(&q->ek, &q->key, &key, ekd, &dberr) == -1) {
		a->rc = CA_MSG_REFUSED;
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
		return pa_send(p, err);
	}
	hex_encode(ekd, sizeof(ekd), ek_key);
	if (q->kind == CA_KIND_CK &&
	    ((a->rc = pa_admitted(p, q->subject, ek_key, a->reason, sizeof(a->reason))) !=
	            CA_MSG_OK ||
	        (a->rc = pa_ck_template(p, &key, ek_key, a->reason, sizeof(a->reason))) !=
	            CA_MSG_OK))
		return pa_send(p, err);
	if (q->kind == CA_KIND_AK && q->vek_serial[0] != '\0' &&
	    (a->rc = pa_ak_early(p, q->vek_serial, ekd, &key, a->reason, sizeof(a->reason))) !=
	        CA_MSG_OK)
		return pa_send(p, err);
	if ((request = strndup(q->request, q->len)) == NULL || ca_random(idb, sizeof(idb)) == -1) {
		a->rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "out of memory or of random numbers");
		goto out;
	}
	if (pa_credential(q, &key, hash, a) == -1)
		goto out;
	hex_encode(idb, sizeof(idb), id);
	rec.id = id;
	rec.hash = hash;
	rec.request = request;
	rec.ek_key = ek_key;
	rec.expires_at = rec.now + p->cfg.challenge_ttl;
	if (ca_db_challenge_add(p->db, &rec, &p->cfg.limits, &dberr) == -1) {
		ca_msg_init(p->out, CA_MSG_CHALLENGE_ADDED); /* no credential leaves */
		a->rc = pa_challenge_refused(&dberr);
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
		goto out;
	}
	a->rc = CA_MSG_OK;
	a->expires_in = p->cfg.challenge_ttl;
	memcpy(a->id, id, sizeof(a->id));
	if (q->kind == CA_KIND_CK)
		ca_parent_audit(p, "privacy/challenge", "challenged",
		    "challenge %s for the CK of host %s, from %s", id, q->subject, q->client);
	else
		ca_parent_audit(p, "privacy/challenge", "challenged",
		    "challenge %s for an AK of vTPM %s, from %s", id, q->subject, q->client);
out:
	free(request);
	return pa_send(p, err);
}

/* Takes the challenge and compares SHA-256 of the secret with the hash
 * kept (constant time). The records' failure (CA_MSG_FAILED) in dberr. */
static enum ca_msg_rc
pa_take(struct ca_parent *p, const struct ca_msg_challenge_take *q, struct ca_challenge_taken *t,
    struct err *dberr)
{
	uint8_t got[32];
	bool same;

	if (ca_db_challenge_take(p->db, q->id, time(NULL), t, dberr) == -1) {
		switch (dberr->kind) {
		case ERR_ABSENT: return CA_MSG_NOTFOUND;
		case ERR_REFUSED: return CA_MSG_USED;
		case ERR_TIMEOUT: return CA_MSG_EXPIRED;
		default: log_warnx("challenge %s: %s", q->id, dberr->msg); return CA_MSG_FAILED;
		}
	}
	same = ca_sha256(q->secret, q->secret_len, got) == 0 && ca_equal(got, t->hash, sizeof(got));
	ca_cleanse(got, sizeof(got));
	return same ? CA_MSG_OK : CA_MSG_WRONG;
}

/* The permit of a challenge taken: its kind and id, the key it recorded
 * (read again) and the EK its credential was made for. 0, or -1. */
static int
pa_permit_grant(struct ca_parent *p, const char *id, const struct ca_challenge_taken *t)
{
	struct err e;

	if (evidence_parse_public(t->key_public, t->key_public_len, &p->permit.key, &e) == -1 ||
	    hex_decode(t->ek_key, p->permit.ek_key, sizeof(p->permit.ek_key)) == -1) {
		log_warnx("challenge %s: its record holds no key or EK", id);
		memset(&p->permit, 0, sizeof(p->permit));
		return -1;
	}
	p->permit.valid = true;
	p->permit.kind = t->kind;
	memcpy(p->permit.id, id, sizeof(p->permit.id));
	return 0;
}

static int
pa_challenge_take(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_take *q = &m->u.challenge_take;
	struct ca_msg_challenge_taken *a = &p->out->u.challenge_taken;
	struct ca_challenge_taken t = {0};
	struct err dberr = {0};
	enum ca_msg_rc rc;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1)
		return -1;
	memset(&p->permit, 0, sizeof(p->permit));
	rc = pa_take(p, q, &t, &dberr);
	ca_msg_init(p->out, CA_MSG_CHALLENGE_TAKEN);
	if (rc == CA_MSG_OK && strlen(t.request) > CA_MSG_REQUEST_MAX) {
		rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "the stored request is too large");
	}
	if (rc == CA_MSG_OK && pa_permit_grant(p, q->id, &t) == -1) {
		rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "the challenge's record holds no key");
	}
	a->rc = rc;
	if (rc == CA_MSG_FAILED && a->reason[0] == '\0')
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
	if (rc == CA_MSG_OK) {
		a->kind = (uint32_t)t.kind;
		a->len = (uint32_t)strlen(t.request);
		memcpy(a->request, t.request, a->len);
	}
	free(t.request);
	return pa_send(p, err);
}

/* ---- vEK evidence nonces ---- */

/* The key nonces are made under (ca_nonce.c), drawn at the parent's first
 * nonce and held for its life: a restarted parent refuses the nonces of
 * its predecessor, whose key is gone. 0, or -1. */
static int
pa_nonce_key(struct ca_parent *p)
{
	uint8_t *key;

	if (p->nonce_key != NULL)
		return 0;
	if ((key = secret_alloc(CA_NONCE_KEY_LEN)) == NULL)
		return -1;
	if (ca_random(key, CA_NONCE_KEY_LEN) == -1) {
		secret_free(key, CA_NONCE_KEY_LEN);
		return -1;
	}
	p->nonce_key = key;
	return 0;
}

/* A nonce the parent makes itself (the child has no key to make one),
 * valid for nonce_ttl seconds; nothing is recorded until it is redeemed,
 * so no number of requests fills anything. */
static int
pa_nonce_add(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct ca_msg_nonce_added *a = &p->out->u.nonce_added;
	struct err why;

	if (pa_serves(p, CA_ROLE_VIRTUALIZATION, m, err) == -1)
		return -1;
	ca_msg_init(p->out, CA_MSG_NONCE_ADDED);
	if (pa_nonce_key(p) == -1 ||
	    ca_nonce_make(p->nonce_key, time(NULL) + p->cfg.nonce_ttl, a->nonce, &why) == -1) {
		ca_msg_init(p->out, CA_MSG_NONCE_ADDED);
		a->rc = CA_MSG_FAILED;
		pa_text(
		    a->reason, sizeof(a->reason), "no nonce key: out of memory or random numbers");
		return pa_send(p, err);
	}
	a->rc = CA_MSG_OK;
	a->expires_in = p->cfg.nonce_ttl;
	log_debug("nonce for vEK evidence, for %lld s, to %s", (long long)p->cfg.nonce_ttl,
	    m->u.nonce_add.client);
	return pa_send(p, err);
}

/* ---- certificates ---- */

/* The permit of the challenge just taken, used up: its key and EK into
 * key and ek_key; 0, or -1 (the child asks for a certificate no answered
 * challenge stands for). */
static int
pa_permit(struct ca_parent *p, enum ca_kind kind, const char *id, const struct ca_msg *m,
    struct evidence_public *key, uint8_t ek_key[static CERTS_DIGEST_LEN], struct err *err)
{
	bool ok = p->permit.valid && p->permit.kind == kind && strcmp(p->permit.id, id) == 0;

	*key = p->permit.key;
	memcpy(ek_key, p->permit.ek_key, CERTS_DIGEST_LEN);
	memset(&p->permit, 0, sizeof(p->permit));
	if (!ok)
		return err_set(err, ERR_INVALID, "%s for challenge %s, which was not just answered",
		    ca_msg_type_name(m->hdr.type), id);
	return 0;
}

static struct certs_pkey *
pa_key(const struct ca_msg_key *k)
{
	if (k->type == CA_KEY_ECC_P256)
		return certs_pkey_from_ecc_p256(k->x, k->y);
	return certs_pkey_from_rsa(k->modulus, sizeof(k->modulus), k->exponent);
}

/* The certificate key of a TPM key the parent read, or NULL. */
static struct certs_pkey *
pa_tpm_key(const struct evidence_public *pub)
{
	struct ca_msg_key k;

	return ca_tpm_key(pub, &k) == 0 ? pa_key(&k) : NULL;
}

static void
pa_validity(int64_t seconds, struct certs_validity *v)
{
	int64_t now = time(NULL);

	v->not_before = now - 60; /* a verifier's clock a little behind */
	v->not_after =
	    seconds == 0 || seconds > CERTS_NO_EXPIRY - now ? CERTS_NO_EXPIRY : now + seconds;
}

/* A certificate the parent made, to record, audit and send. */
struct pa_issue {
	const char *role, *kind, *action;
	char subject[CA_SUBJECT_MAX];
	char detail[CA_DETAIL_MAX];
	const char *host_config; /* EK */
	const char *ek_key;      /* CK: its host EK, recorded with ca_db_ck_record */
	const struct certs_lineage *lineage; /* EK, AK: recorded with it */
	struct certs_validity validity;
	uint8_t *der; /* NULL: issuing failed, err says why */
	size_t len;
	struct err err;
};

/* Records the certificate; a CK with its host (ca_db_ck_record: the host
 * admitted, the CK it had before revoked as superseded, in one
 * transaction), audited. 0, or -1 with is->err (ERR_REFUSED: the host EK
 * is not admitted under that name). */
static int
pa_record(struct ca_parent *p, struct pa_issue *is, const struct ca_issued *rec, const char *pem)
{
	char old[CERTS_SERIAL_HEX_MAX + 1];
	bool unknown = false;
	struct err e;

	if (is->ek_key == NULL)
		return ca_db_issued_add(p->db, rec, pem, &is->err);
	if (p->cfg.admit_any_manufacturer_ek &&
	    ca_db_host_check(p->db, rec->subject, is->ek_key, true, &unknown, &e) == 0 && unknown)
		log_warnx("--admit-any-manufacturer-ek: admitting host \"%s\" (EK %s), which "
		          "no operator admitted",
		    rec->subject, is->ek_key);
	if (ca_db_ck_record(
	        p->db, rec, pem, is->ek_key, p->cfg.admit_any_manufacturer_ek, old, &is->err) == -1)
		return -1;
	if (unknown)
		ca_parent_audit(p, "host add", "done",
		    "host %s, EK key %s, by --admit-any-manufacturer-ek", rec->subject, is->ek_key);
	if (old[0] != '\0')
		ca_parent_audit(p, "revoke", "done", "serial %s: superseded (host %s has CK %s)",
		    old, rec->subject, rec->serial);
	return 0;
}

/* Records the certificate and writes its audit row; the answer, ISSUED
 * (or FAILED, REFUSED), into out, to send. */
static void
pa_issued_into(struct ca_parent *p, struct pa_issue *is, struct ca_msg *out)
{
	struct ca_msg_issued *a = &out->u.issued;
	struct ca_issued rec = {0};
	char *pem = NULL;

	ca_msg_init(out, CA_MSG_ISSUED);
	a->rc = CA_MSG_FAILED;
	if (is->der == NULL) {
		log_warnx("%s: issuing the certificate failed: %s", is->action, is->err.msg);
		pa_text(a->reason, sizeof(a->reason), is->err.msg);
		goto out;
	}
	if (is->len > sizeof(a->der) || (pem = certs_pem_encode(is->der, is->len)) == NULL ||
	    certs_cert_serial(is->der, is->len, rec.serial) == -1) {
		pa_text(a->reason, sizeof(a->reason), "the certificate cannot be encoded");
		goto out;
	}
	snprintf(rec.role, sizeof(rec.role), "%s", is->role);
	snprintf(rec.kind, sizeof(rec.kind), "%s", is->kind);
	snprintf(rec.subject, sizeof(rec.subject), "%s", is->subject);
	snprintf(rec.detail, sizeof(rec.detail), "%s", is->detail);
	rec.issued_at = time(NULL);
	rec.not_after = is->validity.not_after;
	if (is->lineage != NULL && is->lineage->present) {
		snprintf(rec.parent_ck, sizeof(rec.parent_ck), "%s", is->lineage->ck.serial);
		if (is->lineage->has_vek)
			snprintf(
			    rec.parent_vek, sizeof(rec.parent_vek), "%s", is->lineage->vek.serial);
	}
	if (pa_record(p, is, &rec, pem) == -1) {
		if (is->err.kind == ERR_REFUSED) {
			a->rc = CA_MSG_REFUSED;
			pa_text(a->reason, sizeof(a->reason), is->err.msg);
			goto out;
		}
		log_warnx("%s: the certificate cannot be recorded: %s", is->action, is->err.msg);
		snprintf(a->reason, sizeof(a->reason), "the certificate cannot be recorded");
		goto out;
	}
	if (strcmp(is->kind, "ek") == 0)
		ca_parent_audit(p, is->action, "issued", "ek certificate %s for %s (%s)",
		    rec.serial, is->subject, is->detail);
	else
		ca_parent_audit(p, is->action, "issued", "%s certificate %s for %s", is->kind,
		    rec.serial, is->subject);
	a->rc = CA_MSG_OK;
	p->issued[strcmp(is->kind, "ck") == 0   ? CA_ISSUED_CK
	          : strcmp(is->kind, "ak") == 0 ? CA_ISSUED_AK
	                                        : CA_ISSUED_EK]++;
	pa_text(a->serial, sizeof(a->serial), rec.serial);
	pa_text(a->host_config, sizeof(a->host_config), is->host_config ? is->host_config : "");
	a->len = (uint32_t)is->len;
	memcpy(a->der, is->der, is->len);
out:
	free(pem);
	free(is->der);
	is->der = NULL;
}

/* Records the certificate, writes its audit row and sends ISSUED (or
 * FAILED, REFUSED). */
static int
pa_issued(struct ca_parent *p, struct pa_issue *is, struct err *err)
{
	pa_issued_into(p, is, p->out);
	return pa_send(p, err);
}

/* The cRLDistributionPoints URI of role's certificates, or NULL. */
static const char *
pa_crl_uri(const struct ca_parent *p, const char *role, char *buf, size_t len)
{
	if (p->cfg.crl_url[0] == '\0')
		return NULL;
	snprintf(buf, len, "%s/v1/%s/crl", p->cfg.crl_url, role);
	return buf;
}

/* Whether the records say a parent is revoked: 0 no (or unknown here), -1
 * with why (the certificate is not to be issued). */
static int
pa_parents_ok(struct ca_parent *p, const struct certs_lineage *l, struct err *why)
{
	const struct certs_ref *refs[2] = {&l->ck, l->has_vek ? &l->vek : NULL};
	const char *names[2] = {"CK", "vEK"};
	struct ca_status st;
	struct err dberr;

	for (int i = 0; i < 2; i++) {
		if (refs[i] == NULL)
			continue;
		if (ca_db_status(p->db, refs[i]->serial, &st, &dberr) == -1) {
			if (dberr.kind == ERR_ABSENT)
				continue;
			return err_set(why, ERR_FAILED, "the revocations cannot be read");
		}
		if (st.revoked)
			return err_set(why, ERR_REFUSED, "its %s certificate %s is revoked",
			    names[i], refs[i]->serial);
	}
	return 0;
}

/* A certificate refused: ISSUED with rc and reason. */
static int
pa_refused(struct ca_parent *p, enum ca_msg_rc rc, const char *reason, struct err *err)
{
	ca_msg_init(p->out, CA_MSG_ISSUED);
	p->out->u.issued.rc = rc;
	pa_text(p->out->u.issued.reason, sizeof(p->out->u.issued.reason), reason);
	return pa_send(p, err);
}

/* A CK certificate for the key of the challenge just taken, whose host EK
 * is admitted under host and whose template is vtpmd's (checked again:
 * the host's records may have changed since the challenge). */
static int
pa_issue_ck(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ck *q = &m->u.issue_ck;
	struct pa_issue is = {.role = "privacy", .kind = "ck", .action = "privacy/certify"};
	struct certs_ck_req ck = {0};
	struct evidence_public key;
	uint8_t ekd[CERTS_DIGEST_LEN];
	char hex[2 * CERTS_DIGEST_LEN + 1], uri[sizeof(p->cfg.crl_url) + 32];
	char reason[CA_MSG_REASON_MAX] = "";
	enum ca_msg_rc rc;
	int ret;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1 ||
	    pa_permit(p, CA_KIND_CK, q->id, m, &key, ekd, err) == -1)
		return -1;
	hex_encode(ekd, sizeof(ekd), hex);
	if ((rc = pa_admitted(p, q->host, hex, reason, sizeof(reason))) != CA_MSG_OK ||
	    (rc = pa_ck_template(p, &key, hex, reason, sizeof(reason))) != CA_MSG_OK)
		return pa_refused(p, rc, reason, err);
	pa_validity(p->cfg.validity_ck, &is.validity);
	ck = (struct certs_ck_req){.ck = pa_tpm_key(&key),
	    .host = q->host,
	    .validity = is.validity,
	    .crl_uri = pa_crl_uri(p, "privacy", uri, sizeof(uri))};
	memcpy(ck.host_ek_digest, ekd, sizeof(ck.host_ek_digest));
	if (ck.ck == NULL)
		err_set(&is.err, ERR_INVALID, "the CK is not a valid public key");
	else
		certs_issue_ck(p->privacy, &ck, &is.der, &is.len, &is.err);
	is.ek_key = hex;
	snprintf(is.subject, sizeof(is.subject), "%s", q->host);
	snprintf(is.detail, sizeof(is.detail), "host EK key %.16s", hex);
	ret = pa_issued(p, &is, err);
	certs_pkey_free((struct certs_pkey *)ck.ck);
	return ret;
}

/* The vEK certificate an AK is certified beneath: vek_serial issued here,
 * an EK certificate whose key is the EK the challenge's credential was
 * made for; its TPM attributes, vtpmd extension and lineage into ak. 0, or
 * -1 with why (ERR_REFUSED, or ERR_FAILED). */
static int
pa_ak_vek(struct ca_parent *p, const char *vek_serial, const uint8_t ek_key[static 32],
    struct certs_ak_req *ak, struct err *why)
{
	struct ca_issued rec;
	struct certs_lineage own;
	uint8_t *der = NULL, digest[CERTS_DIGEST_LEN];
	size_t len = 0;
	struct err e;
	int ret = -1;

	if (ca_db_issued_get(p->db, vek_serial, &rec, &der, &len, &e) == -1) {
		if (e.kind == ERR_ABSENT)
			return err_set(why, ERR_REFUSED,
			    "vEK certificate %s was not issued here: this Privacy CA certifies AKs "
			    "only beneath vEK certificates its own Virtualization CA issued",
			    vek_serial);
		return err_set(why, ERR_FAILED, "the vEK certificate's record: %s", e.msg);
	}
	if (strcmp(rec.kind, "ek") != 0)
		err_set(why, ERR_REFUSED, "certificate %s is not a vEK's", vek_serial);
	else if (certs_cert_key_digest(der, len, digest) == -1 ||
	         certs_parse_virtual(der, len, &ak->virt, &e) == -1 ||
	         certs_ek_info(der, len, &ak->tpm, &e) == -1 ||
	         certs_cert_ref(der, len, &ak->lineage.vek, &e) == -1 ||
	         certs_parse_lineage(der, len, &own, &e) == -1 || !own.present)
		err_set(why, ERR_FAILED, "vEK certificate %s cannot be read", vek_serial);
	else if (!ca_equal(digest, ek_key, sizeof(digest)))
		err_set(why, ERR_REFUSED,
		    "vEK certificate %s certifies another key than the EK the challenge was made "
		    "for",
		    vek_serial);
	else {
		ak->lineage.present = ak->lineage.has_vek = true;
		ak->lineage.ck = own.ck;
		ret = 0;
	}
	free(der);
	return ret;
}

/* The CK certificate an AK's lineage descends from, from the records:
 * issued here and usable now (ca_db_ck_usable: not revoked, not expired,
 * its host still admitted under its name with its EK, and this its
 * current CK); its notAfter into ck_not_after. 0, or -1 with why. */
static int
pa_ak_ck(struct ca_parent *p, const struct certs_lineage *l, int64_t *ck_not_after, struct err *why)
{
	struct ca_issued rec;
	uint8_t *der = NULL;
	size_t len = 0;
	struct err e;
	int ret;

	if (ca_db_issued_get(p->db, l->ck.serial, &rec, &der, &len, &e) == -1) {
		if (e.kind == ERR_ABSENT)
			return err_set(why, ERR_REFUSED,
			    "its CK certificate %s was not issued here", l->ck.serial);
		return err_set(why, ERR_FAILED, "the CK certificate's record: %s", e.msg);
	}
	free(der);
	ret = ca_db_ck_usable(p->db, &rec, time(NULL), why);
	*ck_not_after = rec.not_after;
	return ret;
}

/* What the valid AK certificates beneath one vEK certificate hold of an
 * AK: how many there are, and the AK's own certificate among them. */
struct pa_ak_held {
	uint8_t digest[CERTS_DIGEST_LEN]; /* the AK's: SHA-256 of its SubjectPublicKeyInfo */
	int64_t count;
	char serial[CERTS_SERIAL_HEX_MAX + 1]; /* the AK's certificate, when found */
	uint8_t der[CA_CERT_MAX];
	size_t len; /* 0: none found */
};

static int
pa_ak_held_one(void *ctx, const char *serial, const uint8_t *der, size_t len)
{
	struct pa_ak_held *h = ctx;
	uint8_t d[CERTS_DIGEST_LEN];

	h->count++;
	if (len > sizeof(h->der) || certs_cert_key_digest(der, len, d) == -1 ||
	    !ca_equal(d, h->digest, sizeof(d)))
		return 0;
	snprintf(h->serial, sizeof(h->serial), "%s", serial);
	memcpy(h->der, der, len);
	h->len = len;
	return 1;
}

/* Bounds what one vEK certificate can have issued (docs/ca-api.md, "AK
 * certificates"): an AK enrolled again while its certificate beneath
 * vek_serial is valid gets that certificate back (1, h filled), a new AK
 * one only while fewer than ak_certificates_per_vek are valid there (0);
 * else -1 with why (ERR_BUSY naming the limit, or ERR_FAILED). */
static int
pa_ak_held(struct ca_parent *p, const char *vek_serial, const struct certs_pkey *ak,
    struct pa_ak_held *h, struct err *why)
{
	if (certs_pkey_digest(ak, h->digest) == -1)
		return err_set(why, ERR_FAILED, "the AK's digest cannot be computed");
	if (ca_db_ak_valid(p->db, vek_serial, time(NULL), pa_ak_held_one, h, why) == -1)
		return -1;
	if (h->len > 0)
		return 1;
	if (h->count >= p->cfg.ak_per_vek)
		return err_set(why, ERR_BUSY,
		    "vEK certificate %s has %lld valid AK certificates (at most %lld: "
		    "ak_certificates_per_vek)",
		    vek_serial, (long long)h->count, (long long)p->cfg.ak_per_vek);
	return 0;
}

/* The AK's valid certificate, sent again (ISSUED, its serial), audited. */
static int
pa_ak_again(struct ca_parent *p, const struct pa_ak_held *h, const char *uuid, struct err *err)
{
	struct ca_msg_issued *a = &p->out->u.issued;

	ca_msg_init(p->out, CA_MSG_ISSUED);
	a->rc = CA_MSG_OK;
	pa_text(a->serial, sizeof(a->serial), h->serial);
	a->len = (uint32_t)h->len;
	memcpy(a->der, h->der, h->len);
	ca_parent_audit(p, "privacy/certify", "returned",
	    "ak certificate %s for AK of vTPM %s: the same AK, its certificate still valid",
	    h->serial, uuid);
	return pa_send(p, err);
}

/* What an AK certificate beneath vEK certificate vek_serial needs, for
 * ak->ak under the EK ek_key (docs/ca-api.md, "kind ak beneath a revoked
 * vEK or CK", "AK certificates"): the vEK certificate issued here for that
 * EK (its attributes, extension and lineage into ak), neither it nor its
 * CK revoked, the CK usable (its notAfter into *ck_not_after), and room
 * beneath the vEK certificate. 0: a new certificate may be issued; 1: the
 * AK's valid certificate is in held; -1 with *rc and why: refused. */
static int
pa_ak_checks(struct ca_parent *p, const char *vek_serial, const uint8_t ek_key[static 32],
    struct certs_ak_req *ak, int64_t *ck_not_after, struct pa_ak_held *held, enum ca_msg_rc *rc,
    struct err *why)
{
	if (pa_ak_vek(p, vek_serial, ek_key, ak, why) == -1 ||
	    pa_parents_ok(p, &ak->lineage, why) == -1 ||
	    pa_ak_ck(p, &ak->lineage, ck_not_after, why) == -1) {
		if (why->kind != ERR_REFUSED)
			log_warnx("AK beneath %s: %s", vek_serial, why->msg);
		*rc = why->kind == ERR_REFUSED ? CA_MSG_REFUSED : CA_MSG_FAILED;
		return -1;
	}
	switch (pa_ak_held(p, vek_serial, ak->ak, held, why)) {
	case 0: return 0;
	case 1: return 1;
	default:
		if (why->kind != ERR_BUSY)
			log_warnx("AK beneath %s: %s", vek_serial, why->msg);
		*rc = why->kind == ERR_BUSY ? CA_MSG_CONFLICT : CA_MSG_FAILED;
		return -1;
	}
}

static enum ca_msg_rc
pa_ak_early(struct ca_parent *p, const char *vek_serial, const uint8_t ek_key[static 32],
    const struct evidence_public *key, char *reason, size_t len)
{
	struct certs_ak_req ak = {.subject = ""};
	struct pa_ak_held *held = calloc(1, sizeof(*held));
	enum ca_msg_rc rc = CA_MSG_OK;
	int64_t ck_not_after = 0;
	struct err why = {0};

	if (held == NULL || (ak.ak = pa_tpm_key(key)) == NULL) {
		rc = held == NULL ? CA_MSG_FAILED : CA_MSG_REFUSED;
		pa_text(reason, len, held == NULL ? "out of memory" : "the AK is not a valid key");
	} else if (pa_ak_checks(p, vek_serial, ek_key, &ak, &ck_not_after, held, &rc, &why) == -1) {
		pa_text(reason, len, why.msg);
	}
	free(held);
	certs_pkey_free((struct certs_pkey *)ak.ak);
	return rc;
}

/* An AK certificate for the key of the challenge just taken, beneath the
 * vEK certificate the records hold for the challenge's EK (pa_ak_checks);
 * it expires no later than the CK certificate. The same AK again gets its
 * valid certificate back. */
static int
pa_issue_ak(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ak *q = &m->u.issue_ak;
	struct pa_issue is = {.role = "privacy", .kind = "ak", .action = "privacy/certify"};
	struct certs_ak_req ak = {.subject = ""};
	struct pa_ak_held *held = NULL;
	struct evidence_public key;
	uint8_t ekd[CERTS_DIGEST_LEN];
	char uri[sizeof(p->cfg.crl_url) + 32];
	int64_t ck_not_after = 0;
	enum ca_msg_rc rc = CA_MSG_FAILED;
	struct err why = {0};
	int ret;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1 ||
	    pa_permit(p, CA_KIND_AK, q->id, m, &key, ekd, err) == -1)
		return -1;
	if ((ak.ak = pa_tpm_key(&key)) == NULL)
		return pa_refused(p, CA_MSG_FAILED, "the AK is not a valid public key", err);
	if ((held = calloc(1, sizeof(*held))) == NULL) {
		ret = pa_refused(p, CA_MSG_FAILED, "out of memory", err);
		goto out;
	}
	switch (pa_ak_checks(p, q->vek_serial, ekd, &ak, &ck_not_after, held, &rc, &why)) {
	case 1: ret = pa_ak_again(p, held, ak.virt.instance_uuid, err); goto out;
	case -1: ret = pa_refused(p, rc, why.msg, err); goto out;
	default: break;
	}
	pa_validity(p->cfg.validity_ak, &is.validity);
	if (is.validity.not_after > ck_not_after)
		is.validity.not_after = ck_not_after;
	ak.validity = is.validity;
	ak.crl_uri = pa_crl_uri(p, "privacy", uri, sizeof(uri));
	is.lineage = &ak.lineage;
	certs_issue_ak(p->privacy, &ak, &is.der, &is.len, &is.err);
	snprintf(is.subject, sizeof(is.subject), "AK of vTPM %s", ak.virt.instance_uuid);
	snprintf(is.detail, sizeof(is.detail), "host configuration %s", ak.virt.host_config);
	ret = pa_issued(p, &is, err);
out:
	free(held);
	certs_pkey_free((struct certs_pkey *)ak.ak);
	return ret;
}

/* The evidence's nonce, redeemed once: one this parent made (its MAC),
 * in time, not redeemed before (the records). CA_MSG_OK, or why not. */
static enum ca_msg_rc
pa_ek_nonce(
    struct ca_parent *p, const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN], struct err *why)
{
	int64_t now = time(NULL), expires_at = 0;
	uint8_t hash[32];

	if (pa_nonce_key(p) == -1 || ca_sha256(nonce, EVIDENCE_VEK_NONCE_LEN, hash) == -1) {
		err_set(why, ERR_FAILED,
		    "no nonce key (out of memory or random numbers), or SHA-256 "
		    "failed");
		return CA_MSG_FAILED;
	}
	if (ca_nonce_check(p->nonce_key, nonce, now, &expires_at, why) == 0 &&
	    ca_db_nonce_take(p->db, hash, expires_at, now, why) == 0)
		return CA_MSG_OK;
	switch (why->kind) {
	case ERR_ABSENT: return CA_MSG_UNKNOWN;
	case ERR_REFUSED: return CA_MSG_USED;
	case ERR_TIMEOUT: return CA_MSG_EXPIRED;
	default: log_warnx("nonce: %s", why->msg); return CA_MSG_FAILED;
	}
}

/* The vEK set's digests (hex, "" for none) into id: 0, or -1. */
static int
pa_ek_set(const struct ca_ek_verified *v, struct ca_vtpm_identity *id)
{
	uint8_t digest[CERTS_DIGEST_LEN];
	struct certs_pkey *k;
	int rc;

	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		id->vek_set[t][0] = '\0';
		if (v->set[t].type == 0)
			continue;
		if ((k = pa_key(&v->set[t])) == NULL)
			return -1;
		rc = certs_pkey_digest(k, digest);
		certs_pkey_free(k);
		if (rc == -1)
			return -1;
		hex_encode(digest, sizeof(digest), id->vek_set[t]);
	}
	return 0;
}

/* Binds the sealed object's Name, the UUID and the vEK vek (one per key
 * type) for good, or finds them bound so already: CA_MSG_OK, or why not. */
static enum ca_msg_rc
pa_ek_identity(struct ca_parent *p, const struct ca_ek_verified *v, const struct ca_msg_key *vek,
    const char *uuid, const struct certs_pkey *key, struct err *why)
{
	struct ca_vtpm_identity id = {
	    .key_type = vek->type == CA_KEY_RSA_2048 ? "rsa2048" : "ecc-p256"};
	uint8_t digest[CERTS_DIGEST_LEN];

	if (certs_pkey_digest(key, digest) == -1 || pa_ek_set(v, &id) == -1) {
		err_set(why, ERR_FAILED, "the vEK's digest cannot be computed");
		return CA_MSG_FAILED;
	}
	hex_encode(digest, sizeof(digest), id.vek);
	hex_encode(v->sealed_name, v->sealed_name_len, id.sealed_name);
	snprintf(id.instance_uuid, sizeof(id.instance_uuid), "%s", uuid);
	if (ca_db_vtpm_bind(p->db, &id, time(NULL), why) == 0)
		return CA_MSG_OK;
	if (why->kind == ERR_REFUSED)
		return CA_MSG_CONFLICT;
	log_warnx("vTPM identities: %s", why->msg);
	return CA_MSG_FAILED;
}

/* The approved host configuration of the quoted PCRs' policy: CA_MSG_OK,
 * NOTFOUND, or FAILED (why). */
static enum ca_msg_rc
pa_ek_config(struct ca_parent *p, const uint8_t policy[static TPM_DIGEST_LEN],
    struct ca_host_config *hc, struct err *why)
{
	if (ca_db_host_config_find(p->db, policy, hc, why) == 0)
		return CA_MSG_OK;
	if (why->kind == ERR_ABSENT) {
		why->msg[0] = '\0';
		return CA_MSG_NOTFOUND;
	}
	log_warnx("host configurations: %s", why->msg);
	err_set(why, ERR_FAILED, "the host configurations cannot be read");
	return CA_MSG_FAILED;
}

/* The EK certificate of member t of the verified vEK set, under host
 * configuration hc: the identity bound, the certificate issued and
 * recorded (in the caller's transaction); the answer, ISSUED or why not,
 * into out. */
static void
pa_ek_member(struct ca_parent *p, const struct ca_msg_issue_ek *q, const struct ca_ek_verified *v,
    const struct ca_host_config *hc, size_t t, struct ca_msg *out)
{
	struct pa_issue is = {
	    .role = "virtualization", .kind = "ek", .action = "virtualization/ek-certificate"};
	struct certs_ek_req ek = {0};
	char uri[sizeof(p->cfg.crl_url) + 32];
	struct err why = {0};
	enum ca_msg_rc rc;

	ek.lineage.present = true;
	ek.lineage.ck = v->ck_ref;
	is.lineage = &ek.lineage;
	ca_msg_init(out, CA_MSG_ISSUED);
	if ((ek.ek = pa_key(&v->set[t])) == NULL) {
		out->u.issued.rc = CA_MSG_FAILED;
		pa_text(out->u.issued.reason, sizeof(out->u.issued.reason),
		    "the vEK is not a valid public key");
		return;
	}
	if ((rc = pa_ek_identity(p, v, &v->set[t], q->instance_uuid, ek.ek, &why)) != CA_MSG_OK) {
		out->u.issued.rc = rc;
		pa_text(out->u.issued.reason, sizeof(out->u.issued.reason), why.msg);
		goto out;
	}
	certs_tpm_defaults(&ek.tpm);
	ek.virt.is_virtual = true;
	memcpy(ek.virt.ck_digest, v->ck_digest, sizeof(ek.virt.ck_digest));
	snprintf(ek.virt.host, sizeof(ek.virt.host), "%s", v->ck.subject);
	snprintf(ek.virt.host_config, sizeof(ek.virt.host_config), "%s", hc->id);
	snprintf(ek.virt.instance_uuid, sizeof(ek.virt.instance_uuid), "%s", q->instance_uuid);
	pa_validity(p->cfg.validity_ek, &is.validity);
	ek.validity = is.validity;
	ek.crl_uri = pa_crl_uri(p, "virtualization", uri, sizeof(uri));
	certs_issue_ek(p->virt, &ek, &is.der, &is.len, &is.err);
	snprintf(is.subject, sizeof(is.subject), "vTPM %s", q->instance_uuid);
	snprintf(is.detail, sizeof(is.detail), "host %s, host configuration %s, CK %s",
	    v->ck.subject, hc->id, q->ck_serial);
	is.host_config = hc->id;
	pa_issued_into(p, &is, out);
out:
	certs_pkey_free((struct certs_pkey *)ek.ek);
}

/* The members asked for (the one of q->vek_type, or the whole set in type
 * order) bound, issued and recorded in one transaction: all of them, or
 * none when one is refused or the records fail; then their answers sent,
 * or the one refusal. */
static int
pa_ek_members(struct ca_parent *p, const struct ca_msg_issue_ek *q, const struct ca_ek_verified *v,
    const struct ca_host_config *hc, struct err *err)
{
	struct ca_msg *outs = calloc(EVIDENCE_VEK_TYPES, sizeof(*outs));
	size_t n = 0, i;
	struct err why;
	int ret = 0;

	if (outs == NULL || ca_db_begin(p->db, &why) == -1) {
		if (outs != NULL)
			log_warnx("virtualization/ek-certificate: %s", why.msg);
		free(outs);
		return pa_refused(p, CA_MSG_FAILED, "the records cannot be written", err);
	}
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		if (v->set[t].type == 0 || (t != q->vek_type && !q->whole_set))
			continue;
		pa_ek_member(p, q, v, hc, t, &outs[n]);
		if (outs[n++].u.issued.rc != CA_MSG_OK)
			break;
	}
	if (n == 0) { /* ca_verify_ek found the member asked for: not reached */
		ca_msg_init(&outs[n], CA_MSG_ISSUED);
		outs[n++].u.issued.rc = CA_MSG_FAILED;
	}
	if (ca_db_end(p->db, outs[n - 1].u.issued.rc == CA_MSG_OK, &why) == -1) {
		log_warnx("virtualization/ek-certificate: %s", why.msg);
		ret = pa_refused(p, CA_MSG_FAILED, "the certificates cannot be recorded", err);
		goto out;
	}
	/* a refusal is the one answer: what came before it was rolled back */
	for (i = outs[n - 1].u.issued.rc == CA_MSG_OK ? 0 : n - 1; i < n && ret == 0; i++) {
		memcpy(p->out, &outs[i], sizeof(*p->out));
		ret = pa_send(p, err);
	}
out:
	free(outs);
	return ret;
}

/*
 * An EK certificate, on evidence the parent verifies itself (ca_verify_ek:
 * both signatures with the key of a CK certificate it issued, the
 * qualifying data from the nonce, the certified Name, the quoted PCRs),
 * under the approved host configuration of the quoted PCRs, beneath a CK
 * its records do not say is revoked; then it takes the nonce (once: a
 * replay finds it used), binds the vTPM's identity, and issues, naming
 * the host of its own CK record; for a whole set, every member in type
 * order on that one evidence, one ISSUED each (a refusal ends the
 * answers). A refusal after the nonce was taken leaves it used: new
 * evidence needs a new nonce.
 */
static int
pa_issue_ek(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ek *q = &m->u.issue_ek;
	struct ca_ek_verified *v = calloc(1, sizeof(*v));
	struct certs_lineage lineage = {.present = true};
	struct ca_host_config hc;
	struct err why = {0};
	enum ca_msg_rc rc;
	int ret = 0;

	if (pa_serves(p, CA_ROLE_VIRTUALIZATION, m, err) == -1) {
		free(v);
		return -1;
	}
	if (v == NULL) {
		ret = pa_refused(p, CA_MSG_FAILED, "out of memory", err);
		goto out;
	}
	if (ca_verify_ek(p->db, q, time(NULL), v, &why) == -1) {
		if (why.kind != ERR_REFUSED)
			log_warnx("virtualization/ek-certificate: %s", why.msg);
		ret = pa_refused(
		    p, why.kind == ERR_REFUSED ? CA_MSG_REFUSED : CA_MSG_FAILED, why.msg, err);
		goto out;
	}
	lineage.ck = v->ck_ref;
	rc = pa_ek_config(p, v->policy, &hc, &why);
	if (rc == CA_MSG_OK && pa_parents_ok(p, &lineage, &why) == -1)
		rc = CA_MSG_FAILED;
	if (rc == CA_MSG_OK)
		rc = pa_ek_nonce(p, q->nonce, &why);
	if (rc != CA_MSG_OK) {
		ret = pa_refused(p, rc, why.msg, err);
		goto out;
	}
	ret = pa_ek_members(p, q, v, &hc, err);
out:
	free(v);
	return ret;
}

/* ---- the child's refusals ---- */

static int
pa_audit(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_audit *q = &m->u.audit;
	struct err dberr;
	enum ca_role role = q->action == CA_ACTION_EK || q->action == CA_ACTION_NONCE
	                        ? CA_ROLE_VIRTUALIZATION
	                        : CA_ROLE_PRIVACY;

	if (pa_serves(p, role, m, err) == -1)
		return -1;
	memset(&p->permit, 0, sizeof(p->permit)); /* the request is over */
	ca_msg_init(p->out, CA_MSG_AUDITED);
	if (ca_db_audit(p->db, time(NULL), ca_msg_action_name((enum ca_msg_action)q->action),
	        q->outcome == CA_OUTCOME_FAILED ? "failed" : "refused", q->detail, &dberr) == 0) {
		p->out->u.audited.rc = CA_MSG_OK;
	} else {
		log_warnx("audit trail: %s", dberr.msg);
		p->out->u.audited.rc = CA_MSG_FAILED;
	}
	return pa_send(p, err);
}

/* ---- CRLs ---- */

/* Sends a CRL of any size up to CA_CRL_MAX: CRL messages of up to
 * CA_MSG_CRL_MAX bytes each, in order (ca_msg.h). */
static int
pa_crl_send(struct ca_parent *p, const uint8_t *der, size_t len, struct err *err)
{
	struct ca_msg_crl *a = &p->out->u.crl;
	size_t off = 0, n;

	while (off < len) {
		n = len - off < sizeof(a->der) ? len - off : sizeof(a->der);
		ca_msg_init(p->out, CA_MSG_CRL);
		a->rc = CA_MSG_OK;
		a->total = (uint32_t)len;
		a->offset = (uint32_t)off;
		a->len = (uint32_t)n;
		memcpy(a->der, der + off, n);
		if (pa_send(p, err) == -1)
			return -1;
		off += n;
	}
	return 0;
}

static int
pa_crl_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	enum ca_role role = (enum ca_role)m->u.crl_get.role;
	struct ca_msg_crl *a = &p->out->u.crl;
	uint8_t *der = NULL;
	size_t len = 0;
	struct err why;
	int ret;

	if (pa_serves(p, role, m, err) == -1)
		return -1;
	if (ca_crl_make(p->db, role == CA_ROLE_PRIVACY ? p->privacy : p->virt, ca_role_name(role),
	        time(NULL), p->cfg.crl_validity, &der, &len, &why) == 0 &&
	    len > 0 && len <= CA_CRL_MAX) {
		ret = pa_crl_send(p, der, len, err);
		free(der);
		return ret;
	}
	if (der != NULL)
		snprintf(why.msg, sizeof(why.msg), "the CRL is %zu bytes, more than the %u served",
		    len, CA_CRL_MAX);
	log_warnx("%s CRL: %s", ca_role_name(role), why.msg);
	free(der);
	ca_msg_init(p->out, CA_MSG_CRL);
	a->rc = CA_MSG_FAILED;
	pa_text(a->reason, sizeof(a->reason), why.msg);
	return pa_send(p, err);
}

/* What only the parent knows, for the child's GET /metrics. */
static int
pa_metrics_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct ca_msg_metrics *a = &p->out->u.metrics;
	struct err dberr;

	ca_msg_init(p->out, CA_MSG_METRICS);
	memcpy(a->issued, p->issued, sizeof(a->issued));
	a->children = p->children;
	if (ca_db_open_counts(
	        p->db, time(NULL), &a->challenges_open, &a->nonces_redeemed, &dberr) == -1)
		log_warnx("metrics: %s", dberr.msg);
	return pa_send(p, err);
}

static const pa_handler pa_handlers[CA_MSG_TYPES] = {
    [CA_MSG_TRUST_LIST] = pa_trust_list,
    [CA_MSG_STATUS_GET] = pa_status_get,
    [CA_MSG_APPROVAL_GET] = pa_approval_get,
    [CA_MSG_CHALLENGE_ADD] = pa_challenge_add,
    [CA_MSG_CHALLENGE_TAKE] = pa_challenge_take,
    [CA_MSG_ISSUE_CK] = pa_issue_ck,
    [CA_MSG_ISSUE_AK] = pa_issue_ak,
    [CA_MSG_ISSUE_EK] = pa_issue_ek,
    [CA_MSG_AUDIT] = pa_audit,
    [CA_MSG_NONCE_ADD] = pa_nonce_add,
    [CA_MSG_CRL_GET] = pa_crl_get,
    [CA_MSG_METRICS_GET] = pa_metrics_get,
};

int
ca_parent_handle(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	pa_handler h = m->hdr.type < CA_MSG_TYPES ? pa_handlers[m->hdr.type] : NULL;

	if (h == NULL)
		return err_set(
		    err, ERR_INVALID, "%s is not a request", ca_msg_type_name(m->hdr.type));
	return h(p, m, err);
}
