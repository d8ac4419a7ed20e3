/*
 * ca_parent.c: the parent of `vtpm-ca serve`, the process that holds the
 * database and the CA keys, answering its network child (ca_msg.h).
 *
 * The parent never sees a network byte: the child parses and checks every
 * request and asks, in typed messages, for what needs a record or a key.
 * One small handler per message type, dispatched from a table. The parent
 * keeps its own counsel where it can:
 *   - it makes every certificate from typed values (a key, a host name,
 *     digests, TPM attributes), never from DER the child passes on;
 *   - a CK or AK certificate only right after a challenge was taken and
 *     its secret matched (the permit), once, for that challenge's kind;
 *   - an EK certificate names the approved host configuration the parent
 *     finds for the quoted PCRs' policy, not one the child names;
 *   - it writes the audit row of every challenge and every certificate
 *     itself, as it makes them (the child reports its refusals);
 *   - it records the lineage a vEK or AK certificate names, and issues
 *     none beneath a CK or vEK certificate its records say is revoked;
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

struct pa_key_search {
	const struct ca_msg_approval_get *pub;
	bool found;
};

/* Whether a trust entry of kind approval-key ("X,Y" in hex) is the point. */
static int
pa_key_match(void *ctx, const struct ca_trust *t)
{
	struct pa_key_search *s = ctx;
	uint8_t x[32], y[32];
	const char *comma = strchr(t->data, ',');
	char xh[65];

	if (comma == NULL || comma - t->data != 64)
		return 0;
	memcpy(xh, t->data, 64);
	xh[64] = '\0';
	if (hex_decode(xh, x, 32) == -1 || hex_decode(comma + 1, y, 32) == -1)
		return 0;
	if (memcmp(x, s->pub->x, 32) == 0 && memcmp(y, s->pub->y, 32) == 0) {
		s->found = true;
		return 1;
	}
	return 0;
}

static int
pa_approval_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct pa_key_search s = {.pub = &m->u.approval_get};
	struct err dberr;
	int rc;

	rc = ca_db_trust_list(p->db, CA_TRUST_APPROVAL_KEY, pa_key_match, &s, &dberr);
	if (rc == -1)
		log_warnx("approval keys: %s", dberr.msg);
	ca_msg_init(p->out, CA_MSG_APPROVAL);
	p->out->u.approval.rc = rc == 0 ? CA_MSG_OK : CA_MSG_FAILED;
	p->out->u.approval.trusted = s.found ? 1 : 0;
	return pa_send(p, err);
}

/* ---- challenges ---- */

/* A CK challenge's host EK must be admitted under the name it asks for
 * (docs/ca-api.md, "Admitted hosts"): CA_MSG_OK, or REFUSED or FAILED
 * with the reason in a. */
static enum ca_msg_rc
pa_admitted(
    struct ca_parent *p, const char *host, const char *ek_key, struct ca_msg_challenge_added *a)
{
	struct err dberr;
	bool unknown;

	if (ca_db_host_check(
	        p->db, host, ek_key, p->cfg.admit_any_manufacturer_ek, &unknown, &dberr) == -1) {
		if (dberr.kind != ERR_REFUSED)
			log_warnx("hosts: %s", dberr.msg);
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
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
    const struct ca_msg_challenge_add *q, const struct approval_pub *key, char *why, size_t len)
{
	uint8_t want[TPM_DIGEST_LEN];

	why[0] = '\0';
	if ((q->key_attributes & PA_CK_ATTRS_SET) != PA_CK_ATTRS_SET)
		snprintf(why, len,
		    "the CK is not a restricted signing key with fixedTPM, "
		    "fixedParent and sensitiveDataOrigin");
	else if (q->key_attributes & EVIDENCE_OBJ_USER_WITH_AUTH)
		snprintf(why, len,
		    "the CK has userWithAuth: its authValue alone would let it "
		    "sign in any host configuration");
	else if (q->key_attributes & PA_CK_ATTRS_CLEAR)
		snprintf(why, len, "the CK has adminWithPolicy or decrypt set");
	else if (pcrpolicy_authorize(key, want) == -1)
		snprintf(why, len, "the host's approval key cannot be used");
	else if (q->key_policy_len != sizeof(want) ||
	         memcmp(q->key_policy, want, sizeof(want)) != 0)
		snprintf(why, len,
		    "the CK's authPolicy is not the PolicyAuthorize of the host's "
		    "approval key: it would work outside an approved host "
		    "configuration");
}

/* A CK challenge's key must be a CK as vtpmd makes it under the approval
 * key its host was admitted with (docs/ca-api.md, "Admitted hosts"):
 * CA_MSG_OK, or REFUSED or FAILED with the reason in a. */
static enum ca_msg_rc
pa_ck_template(struct ca_parent *p, const struct ca_msg_challenge_add *q, const char *ek_key,
    struct ca_msg_challenge_added *a)
{
	struct ca_host h;
	struct err dberr;
	char why[CA_MSG_REASON_MAX];

	if (ca_db_host_find(p->db, ek_key, &h, &dberr) == -1) {
		if (dberr.kind == ERR_ABSENT && p->cfg.admit_any_manufacturer_ek)
			return CA_MSG_OK; /* admitted at issue, without an approval key */
		log_warnx("hosts: %s", dberr.msg);
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
		return CA_MSG_FAILED;
	}
	if (!h.has_approval) {
		log_warnx("host \"%s\" was admitted without an approval key: its CK's policy is "
		          "not checked",
		    h.name);
		return CA_MSG_OK;
	}
	pa_ck_template_why(q, &h.approval, why, sizeof(why));
	if (why[0] == '\0')
		return CA_MSG_OK;
	pa_text(a->reason, sizeof(a->reason), why);
	return CA_MSG_REFUSED;
}

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

static int
pa_challenge_add(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_add *q = &m->u.challenge_add;
	struct ca_msg_challenge_added *a = &p->out->u.challenge_added;
	struct ca_challenge_rec rec = {
	    .kind = (enum ca_kind)q->kind, .hash = q->hash, .client = q->client, .now = time(NULL)};
	char id[CA_ID_HEX + 1], ek_key[CA_EK_KEY_HEX + 1], *request;
	uint8_t idb[CA_ID_BYTES];
	struct err dberr;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1)
		return -1;
	ca_msg_init(p->out, CA_MSG_CHALLENGE_ADDED);
	hex_encode(q->ek_key, sizeof(q->ek_key), ek_key);
	if (q->kind == CA_KIND_CK &&
	    ((a->rc = pa_admitted(p, q->subject, ek_key, a)) != CA_MSG_OK ||
	        (a->rc = pa_ck_template(p, q, ek_key, a)) != CA_MSG_OK))
		return pa_send(p, err);
	if ((request = strndup(q->request, q->len)) == NULL || ca_random(idb, sizeof(idb)) == -1) {
		free(request);
		a->rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "out of memory or of random numbers");
		return pa_send(p, err);
	}
	hex_encode(idb, sizeof(idb), id);
	rec.id = id;
	rec.request = request;
	rec.ek_key = ek_key;
	rec.expires_at = rec.now + p->cfg.challenge_ttl;
	if (ca_db_challenge_add(p->db, &rec, &p->cfg.limits, &dberr) == -1) {
		free(request);
		a->rc = pa_challenge_refused(&dberr);
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
		return pa_send(p, err);
	}
	free(request);
	a->rc = CA_MSG_OK;
	a->expires_in = p->cfg.challenge_ttl;
	memcpy(a->id, id, sizeof(a->id));
	if (q->kind == CA_KIND_CK)
		ca_parent_audit(p, "privacy/challenge", "challenged",
		    "challenge %s for the CK of host %s, from %s", id, q->subject, q->client);
	else
		ca_parent_audit(p, "privacy/challenge", "challenged",
		    "challenge %s for an AK of vTPM %s, from %s", id, q->subject, q->client);
	return pa_send(p, err);
}

/* Takes the challenge and compares SHA-256 of the secret with the hash
 * kept (constant time). The records' failure (CA_MSG_FAILED) in dberr. */
static enum ca_msg_rc
pa_take(struct ca_parent *p, const struct ca_msg_challenge_take *q, enum ca_kind *kind,
    char **request, struct err *dberr)
{
	uint8_t hash[32], got[32];
	bool same;

	if (ca_db_challenge_take(p->db, q->id, time(NULL), kind, request, hash, dberr) == -1) {
		switch (dberr->kind) {
		case ERR_ABSENT: return CA_MSG_NOTFOUND;
		case ERR_REFUSED: return CA_MSG_USED;
		case ERR_TIMEOUT: return CA_MSG_EXPIRED;
		default: log_warnx("challenge %s: %s", q->id, dberr->msg); return CA_MSG_FAILED;
		}
	}
	same = ca_sha256(q->secret, q->secret_len, got) == 0 && ca_equal(got, hash, sizeof(got));
	ca_cleanse(got, sizeof(got));
	return same ? CA_MSG_OK : CA_MSG_WRONG;
}

static int
pa_challenge_take(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_take *q = &m->u.challenge_take;
	struct ca_msg_challenge_taken *a = &p->out->u.challenge_taken;
	enum ca_kind kind = CA_KIND_CK;
	char *request = NULL;
	struct err dberr = {0};
	enum ca_msg_rc rc;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1)
		return -1;
	memset(&p->permit, 0, sizeof(p->permit));
	rc = pa_take(p, q, &kind, &request, &dberr);
	ca_msg_init(p->out, CA_MSG_CHALLENGE_TAKEN);
	if (rc == CA_MSG_OK && strlen(request) > CA_MSG_REQUEST_MAX) {
		rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "the stored request is too large");
	}
	a->rc = rc;
	if (rc == CA_MSG_FAILED && a->reason[0] == '\0')
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
	if (rc == CA_MSG_OK) {
		a->kind = (uint32_t)kind;
		a->len = (uint32_t)strlen(request);
		memcpy(a->request, request, a->len);
		p->permit.valid = true;
		p->permit.kind = kind;
		memcpy(p->permit.id, q->id, sizeof(p->permit.id));
	}
	free(request);
	return pa_send(p, err);
}

/* ---- vEK evidence nonces ---- */

/* A nonce the parent makes itself (the child cannot choose one), kept as
 * its SHA-256 for nonce_ttl seconds, audited. */
static int
pa_nonce_add(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	struct ca_msg_nonce_added *a = &p->out->u.nonce_added;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], hash[32];
	char hex[2 * sizeof(hash) + 1];
	int64_t now = time(NULL);
	struct err dberr;

	if (pa_serves(p, CA_ROLE_VIRTUALIZATION, m, err) == -1)
		return -1;
	ca_msg_init(p->out, CA_MSG_NONCE_ADDED);
	if (ca_random(nonce, sizeof(nonce)) == -1 || ca_sha256(nonce, sizeof(nonce), hash) == -1) {
		a->rc = CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), "out of random numbers");
		return pa_send(p, err);
	}
	if (ca_db_nonce_add(p->db, hash, now, now + p->cfg.nonce_ttl, &dberr) == -1) {
		if (dberr.kind != ERR_BUSY)
			log_warnx("nonce: %s", dberr.msg);
		a->rc = dberr.kind == ERR_BUSY ? CA_MSG_FULL : CA_MSG_FAILED;
		pa_text(a->reason, sizeof(a->reason), dberr.msg);
		return pa_send(p, err);
	}
	a->rc = CA_MSG_OK;
	a->expires_in = p->cfg.nonce_ttl;
	memcpy(a->nonce, nonce, sizeof(a->nonce));
	hex_encode(hash, sizeof(hash), hex);
	ca_parent_audit(p, "virtualization/nonce", "issued",
	    "nonce for vEK evidence (SHA-256 %.16s...), for %lld s", hex,
	    (long long)p->cfg.nonce_ttl);
	return pa_send(p, err);
}

/* ---- certificates ---- */

/* The permit of the challenge just taken, used up: 0, or -1 (the child
 * asks for a certificate no answered challenge stands for). */
static int
pa_permit(
    struct ca_parent *p, enum ca_kind kind, const char *id, const struct ca_msg *m, struct err *err)
{
	bool ok = p->permit.valid && p->permit.kind == kind && strcmp(p->permit.id, id) == 0;

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

/* Records the certificate, writes its audit row and sends ISSUED (or
 * FAILED, REFUSED). */
static int
pa_issued(struct ca_parent *p, struct pa_issue *is, struct err *err)
{
	struct ca_msg_issued *a = &p->out->u.issued;
	struct ca_issued rec = {0};
	char *pem = NULL;

	ca_msg_init(p->out, CA_MSG_ISSUED);
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
	pa_text(a->serial, sizeof(a->serial), rec.serial);
	pa_text(a->host_config, sizeof(a->host_config), is->host_config ? is->host_config : "");
	a->len = (uint32_t)is->len;
	memcpy(a->der, is->der, is->len);
out:
	free(pem);
	free(is->der);
	is->der = NULL;
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

static void
pa_ref(struct certs_ref *out, const struct ca_msg_ref *in)
{
	memset(out, 0, sizeof(*out));
	out->issuer_keyid_len = in->keyid_len;
	memcpy(out->issuer_keyid, in->keyid, in->keyid_len);
	snprintf(out->serial, sizeof(out->serial), "%s", in->serial);
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

static int
pa_issue_ck(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ck *q = &m->u.issue_ck;
	struct pa_issue is = {.role = "privacy", .kind = "ck", .action = "privacy/certify"};
	struct certs_ck_req ck = {0};
	char hex[2 * CERTS_DIGEST_LEN + 1], uri[sizeof(p->cfg.crl_url) + 32];
	int ret;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1 ||
	    pa_permit(p, CA_KIND_CK, q->id, m, err) == -1)
		return -1;
	pa_validity(p->cfg.validity_ck, &is.validity);
	ck = (struct certs_ck_req){.ck = pa_key(&q->key),
	    .host = q->host,
	    .validity = is.validity,
	    .crl_uri = pa_crl_uri(p, "privacy", uri, sizeof(uri))};
	memcpy(ck.host_ek_digest, q->host_ek_digest, sizeof(ck.host_ek_digest));
	if (ck.ck == NULL)
		err_set(&is.err, ERR_INVALID, "the CK is not a valid public key");
	else
		certs_issue_ck(p->privacy, &ck, &is.der, &is.len, &is.err);
	hex_encode(q->host_ek_digest, CERTS_DIGEST_LEN, hex);
	is.ek_key = hex;
	snprintf(is.subject, sizeof(is.subject), "%s", q->host);
	snprintf(is.detail, sizeof(is.detail), "host EK key %.16s", hex);
	ret = pa_issued(p, &is, err);
	certs_pkey_free((struct certs_pkey *)ck.ck);
	return ret;
}

static int
pa_issue_ak(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ak *q = &m->u.issue_ak;
	struct pa_issue is = {.role = "privacy", .kind = "ak", .action = "privacy/certify"};
	struct certs_ak_req ak = {.subject = ""};
	char uri[sizeof(p->cfg.crl_url) + 32];
	int ret;

	if (pa_serves(p, CA_ROLE_PRIVACY, m, err) == -1 ||
	    pa_permit(p, CA_KIND_AK, q->id, m, err) == -1)
		return -1;
	pa_validity(p->cfg.validity_ak, &is.validity);
	ak.validity = is.validity;
	ak.crl_uri = pa_crl_uri(p, "privacy", uri, sizeof(uri));
	ak.lineage.present = ak.lineage.has_vek = true;
	pa_ref(&ak.lineage.vek, &q->vek);
	pa_ref(&ak.lineage.ck, &q->ck);
	is.lineage = &ak.lineage;
	ak.ak = pa_key(&q->key);
	memcpy(ak.tpm.manufacturer, q->tpm.manufacturer, sizeof(q->tpm.manufacturer));
	memcpy(ak.tpm.model, q->tpm.model, sizeof(q->tpm.model));
	memcpy(ak.tpm.version, q->tpm.version, sizeof(q->tpm.version));
	memcpy(ak.tpm.family, q->tpm.family, sizeof(q->tpm.family));
	ak.tpm.has_spec = q->tpm.has_spec != 0;
	ak.tpm.level = q->tpm.level;
	ak.tpm.revision = q->tpm.revision;
	ak.virt.is_virtual = q->virt.is_virtual != 0;
	memcpy(ak.virt.ck_digest, q->virt.ck_digest, sizeof(ak.virt.ck_digest));
	memcpy(ak.virt.host_config, q->virt.host_config, sizeof(q->virt.host_config));
	memcpy(ak.virt.instance_uuid, q->virt.instance_uuid, sizeof(q->virt.instance_uuid));
	memcpy(ak.virt.host, q->virt.host, sizeof(q->virt.host));
	if (ak.ak == NULL)
		err_set(&is.err, ERR_INVALID, "the AK is not a valid public key");
	else if (pa_parents_ok(p, &ak.lineage, &is.err) == 0)
		certs_issue_ak(p->privacy, &ak, &is.der, &is.len, &is.err);
	snprintf(is.subject, sizeof(is.subject), "AK of vTPM %s", q->virt.instance_uuid);
	snprintf(is.detail, sizeof(is.detail), "host configuration %s", q->virt.host_config);
	ret = pa_issued(p, &is, err);
	certs_pkey_free((struct certs_pkey *)ak.ak);
	return ret;
}

/* An EK certificate refused on the records: ISSUED with rc and reason. */
static int
pa_ek_refused(struct ca_parent *p, enum ca_msg_rc rc, const char *reason, struct err *err)
{
	ca_msg_init(p->out, CA_MSG_ISSUED);
	p->out->u.issued.rc = rc;
	pa_text(p->out->u.issued.reason, sizeof(p->out->u.issued.reason), reason);
	return pa_send(p, err);
}

/* The evidence's nonce, taken once: CA_MSG_OK, or why not (reason). */
static enum ca_msg_rc
pa_ek_nonce(struct ca_parent *p, const struct ca_msg_issue_ek *q, struct err *why)
{
	uint8_t hash[32];

	if (ca_sha256(q->nonce, sizeof(q->nonce), hash) == -1) {
		err_set(why, ERR_FAILED, "SHA-256 failed");
		return CA_MSG_FAILED;
	}
	if (ca_db_nonce_take(p->db, hash, time(NULL), why) == 0)
		return CA_MSG_OK;
	switch (why->kind) {
	case ERR_ABSENT: return CA_MSG_UNKNOWN;
	case ERR_REFUSED: return CA_MSG_USED;
	case ERR_TIMEOUT: return CA_MSG_EXPIRED;
	default: log_warnx("nonce: %s", why->msg); return CA_MSG_FAILED;
	}
}

/* Binds the sealed object's Name, the UUID and the vEK (one per key type)
 * for good, or finds them bound so already: CA_MSG_OK, or why not. */
/* The vEK set's digests (hex, "" for none) into id: 0, or -1. */
static int
pa_ek_set(const struct ca_msg_issue_ek *q, struct ca_vtpm_identity *id)
{
	uint8_t digest[CERTS_DIGEST_LEN];
	struct certs_pkey *k;
	int rc;

	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++) {
		id->vek_set[t][0] = '\0';
		if (q->vek_set[t].type == 0)
			continue;
		if ((k = (struct certs_pkey *)pa_key(&q->vek_set[t])) == NULL)
			return -1;
		rc = certs_pkey_digest(k, digest);
		certs_pkey_free(k);
		if (rc == -1)
			return -1;
		hex_encode(digest, sizeof(digest), id->vek_set[t]);
	}
	return 0;
}

static enum ca_msg_rc
pa_ek_identity(struct ca_parent *p, const struct ca_msg_issue_ek *q, const struct certs_pkey *vek,
    struct err *why)
{
	struct ca_vtpm_identity id = {
	    .key_type = q->vek.type == CA_KEY_RSA_2048 ? "rsa2048" : "ecc-p256"};
	uint8_t digest[CERTS_DIGEST_LEN];

	if (certs_pkey_digest(vek, digest) == -1 || pa_ek_set(q, &id) == -1) {
		err_set(why, ERR_FAILED, "the vEK's digest cannot be computed");
		return CA_MSG_FAILED;
	}
	hex_encode(digest, sizeof(digest), id.vek);
	hex_encode(q->sealed_name, q->sealed_name_len, id.sealed_name);
	snprintf(id.instance_uuid, sizeof(id.instance_uuid), "%s", q->instance_uuid);
	if (ca_db_vtpm_bind(p->db, &id, time(NULL), why) == 0)
		return CA_MSG_OK;
	if (why->kind == ERR_REFUSED)
		return CA_MSG_CONFLICT;
	log_warnx("vTPM identities: %s", why->msg);
	return CA_MSG_FAILED;
}

/*
 * An EK certificate, once the child checked the evidence: the parent finds
 * the approved host configuration of the quoted PCRs, refuses a CK its
 * records say is revoked, takes the nonce the evidence carries (once: a
 * replay finds it used), binds the vTPM's identity, then issues. A refusal after the nonce was taken leaves it
 * used: new evidence needs a new nonce.
 */
static int
pa_issue_ek(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ek *q = &m->u.issue_ek;
	struct pa_issue is = {
	    .role = "virtualization", .kind = "ek", .action = "virtualization/ek-certificate"};
	struct certs_ek_req ek = {0};
	struct ca_host_config hc;
	char uri[sizeof(p->cfg.crl_url) + 32];
	struct err dberr = {0};
	enum ca_msg_rc rc;
	int ret;

	if (pa_serves(p, CA_ROLE_VIRTUALIZATION, m, err) == -1)
		return -1;
	if (ca_db_host_config_find(p->db, q->policy, &hc, &dberr) == -1) {
		if (dberr.kind == ERR_ABSENT)
			return pa_ek_refused(p, CA_MSG_NOTFOUND, "", err);
		log_warnx("host configurations: %s", dberr.msg);
		return pa_ek_refused(
		    p, CA_MSG_FAILED, "the host configurations cannot be read", err);
	}
	ek.lineage.present = true;
	pa_ref(&ek.lineage.ck, &q->ck);
	is.lineage = &ek.lineage;
	if (pa_parents_ok(p, &ek.lineage, &dberr) == -1)
		return pa_ek_refused(p, CA_MSG_FAILED, dberr.msg, err);
	if ((rc = pa_ek_nonce(p, q, &dberr)) != CA_MSG_OK)
		return pa_ek_refused(p, rc, dberr.msg, err);
	if ((ek.ek = pa_key(&q->vek)) == NULL)
		return pa_ek_refused(p, CA_MSG_FAILED, "the vEK is not a valid public key", err);
	if ((rc = pa_ek_identity(p, q, ek.ek, &dberr)) != CA_MSG_OK) {
		certs_pkey_free((struct certs_pkey *)ek.ek);
		return pa_ek_refused(p, rc, dberr.msg, err);
	}
	certs_tpm_defaults(&ek.tpm);
	ek.virt.is_virtual = true;
	memcpy(ek.virt.ck_digest, q->ck_digest, sizeof(ek.virt.ck_digest));
	snprintf(ek.virt.host, sizeof(ek.virt.host), "%s", q->host);
	snprintf(ek.virt.host_config, sizeof(ek.virt.host_config), "%s", hc.id);
	snprintf(ek.virt.instance_uuid, sizeof(ek.virt.instance_uuid), "%s", q->instance_uuid);
	pa_validity(p->cfg.validity_ek, &is.validity);
	ek.validity = is.validity;
	ek.crl_uri = pa_crl_uri(p, "virtualization", uri, sizeof(uri));
	certs_issue_ek(p->virt, &ek, &is.der, &is.len, &is.err);
	snprintf(is.subject, sizeof(is.subject), "vTPM %s", q->instance_uuid);
	snprintf(is.detail, sizeof(is.detail), "host %s, host configuration %s, CK %s", q->host,
	    hc.id, q->ck_serial);
	is.host_config = hc.id;
	ret = pa_issued(p, &is, err);
	certs_pkey_free((struct certs_pkey *)ek.ek);
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

static int
pa_crl_get(struct ca_parent *p, const struct ca_msg *m, struct err *err)
{
	enum ca_role role = (enum ca_role)m->u.crl_get.role;
	struct ca_msg_crl *a = &p->out->u.crl;
	uint8_t *der = NULL;
	size_t len = 0;
	struct err why;

	if (pa_serves(p, role, m, err) == -1)
		return -1;
	ca_msg_init(p->out, CA_MSG_CRL);
	a->rc = CA_MSG_FAILED;
	if (ca_crl_make(p->db, role == CA_ROLE_PRIVACY ? p->privacy : p->virt, ca_role_name(role),
	        time(NULL), p->cfg.crl_validity, &der, &len, &why) == -1) {
		log_warnx("CRL: %s", why.msg);
		pa_text(a->reason, sizeof(a->reason), why.msg);
	} else if (len > sizeof(a->der)) {
		log_warnx("the %s CRL is %zu bytes, more than %u can be served: publish the file "
		          "'vtpm-ca crl' writes",
		    ca_role_name(role), len, CA_MSG_CRL_MAX);
		pa_text(a->reason, sizeof(a->reason),
		    "the CRL is too large to serve: ask the CA's operator for 'vtpm-ca crl'");
	} else {
		a->rc = CA_MSG_OK;
		a->len = (uint32_t)len;
		memcpy(a->der, der, len);
	}
	free(der);
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
