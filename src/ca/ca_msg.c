/*
 * ca_msg.c: the codec of the messages between vtpm-ca serve's parent and
 * its network child (ca_msg.h): the layout of each type, the checks of a
 * received record, and sending and receiving one message.
 *
 * Checking is all-or-nothing and has no side effect: the record's size
 * against its header and its type's layout, the direction, then the
 * type's own field checks. Nothing is decoded into another form: a checked
 * message is read in place, through its type's struct.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ca_msg.h"

_Static_assert(
    offsetof(struct ca_msg, u) == sizeof(struct ca_msg_hdr), "the payload follows the header");

typedef int (*ca_msg_checker)(const struct ca_msg *m, struct err *err);

/* A type's layout: who receives it, its fixed part, and its tail (the
 * offset of the tail's len field, and its largest size; 0: none). */
struct ca_msg_layout {
	const char *name;
	enum ca_msg_to to;
	size_t fixed;
	size_t len_at;
	size_t tail_max;
	ca_msg_checker check;
};

/* Text a message may carry: NUL-terminated inside its field, printable
 * ASCII before the NUL. */
bool
ca_msg_text_ok(const char *s, size_t size)
{
	const char *nul = memchr(s, '\0', size);

	if (nul == NULL)
		return false;
	for (const char *p = s; p < nul; p++)
		if (*p < 0x20 || *p > 0x7e)
			return false;
	return true;
}

static int
ca_msg_text(const char *s, size_t size, const char *field, struct err *err)
{
	if (!ca_msg_text_ok(s, size))
		return err_set(err, ERR_INVALID,
		    "%s: not printable text ending inside its %zu bytes", field, size);
	return 0;
}

/* 1 to max lowercase hexadecimal digits (and a NUL) inside size bytes. */
static int
ca_msg_hex(const char *s, size_t size, size_t max, const char *field, struct err *err)
{
	size_t n = strnlen(s, size);

	if (n == size || n == 0 || n > max || strspn(s, "0123456789abcdef") != n)
		return err_set(
		    err, ERR_INVALID, "%s: not 1 to %zu lowercase hexadecimal digits", field, max);
	return 0;
}

static int
ca_msg_range(uint32_t v, uint32_t lo, uint32_t hi, const char *field, struct err *err)
{
	if (v < lo || v > hi)
		return err_set(err, ERR_INVALID, "%s: %u is not from %u to %u", field, v, lo, hi);
	return 0;
}

static bool
ca_msg_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

static int
ca_msg_cert_check(const struct ca_msg_cert *c, const char *field, struct err *err)
{
	if (c->len > sizeof(c->der))
		return err_set(err, ERR_INVALID, "%s: %u bytes", field, c->len);
	return 0;
}

static int
ca_msg_id_check(const char *id, struct err *err)
{
	if (strnlen(id, CA_ID_HEX + 1) != CA_ID_HEX)
		return err_set(err, ERR_INVALID, "challenge id: not %d digits", CA_ID_HEX);
	return ca_msg_hex(id, CA_ID_HEX + 1, CA_ID_HEX, "challenge id", err);
}

/* ---- one check per type ---- */

static int
ca_msg_check_hello(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_hello *p = &m->u.hello;

	if (ca_msg_range(p->role, CA_ROLE_PRIVACY, CA_ROLE_BOTH, "role", err) == -1 ||
	    ca_msg_cert_check(&p->root, "root", err) == -1 ||
	    ca_msg_cert_check(&p->privacy, "privacy", err) == -1 ||
	    ca_msg_cert_check(&p->virt, "virtualization", err) == -1)
		return -1;
	return 0;
}

static int
ca_msg_check_ready(const struct ca_msg *m, struct err *err)
{
	return ca_msg_range(m->u.ready.zero, 0, 0, "ready", err);
}

static int
ca_msg_check_trust_list(const struct ca_msg *m, struct err *err)
{
	/* Approval keys are asked one by one (APPROVAL_GET). */
	return ca_msg_range(
	    m->u.trust_list.kind, CA_TRUST_MANUFACTURER, CA_TRUST_PRIVACY, "trust kind", err);
}

static int
ca_msg_check_trust_entry(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_trust_entry *p = &m->u.trust_entry;

	if (memchr(p->pem, '\0', p->len) != NULL)
		return err_set(err, ERR_INVALID, "trust entry: a NUL inside its text");
	return 0;
}

static int
ca_msg_check_trust_end(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_trust_end *p = &m->u.trust_end;

	if (p->rc != CA_MSG_OK && p->rc != CA_MSG_FAILED)
		return err_set(err, ERR_INVALID, "trust end: outcome %u", p->rc);
	return 0;
}

static int
ca_msg_check_status_get(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_status_get *p = &m->u.status_get;

	return ca_msg_hex(p->serial, sizeof(p->serial), CERTS_SERIAL_HEX_MAX, "serial", err);
}

static int
ca_msg_check_status(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_status *p = &m->u.status;

	if ((p->rc != CA_MSG_OK && p->rc != CA_MSG_NOTFOUND && p->rc != CA_MSG_FAILED) ||
	    p->issued_here > 1 || p->revoked > 1)
		return err_set(err, ERR_INVALID, "status: outcome %u, flags %u %u", p->rc,
		    p->issued_here, p->revoked);
	return ca_msg_text(p->reason, sizeof(p->reason), "status reason", err);
}

static int
ca_msg_check_approval_get(const struct ca_msg *m, struct err *err)
{
	return 0; /* any point: the parent only compares it */
}

static int
ca_msg_check_approval(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_approval *p = &m->u.approval;

	if ((p->rc != CA_MSG_OK && p->rc != CA_MSG_FAILED) || p->trusted > 1)
		return err_set(
		    err, ERR_INVALID, "approval: outcome %u, trusted %u", p->rc, p->trusted);
	return 0;
}

/* A TPM structure's length inside its field, and nothing after it (so
 * that no byte the length leaves out carries anything). */
static int
ca_msg_bytes_check(const uint8_t *data, uint32_t len, size_t size, bool required, const char *field,
    struct err *err)
{
	if (len > size || (required && len == 0))
		return err_set(err, ERR_INVALID, "%s: %u bytes", field, len);
	if (!ca_msg_zero(data + len, size - len))
		return err_set(err, ERR_INVALID, "%s: bytes after its length", field);
	return 0;
}

static int
ca_msg_public_check(
    const struct ca_msg_public *p, bool required, const char *field, struct err *err)
{
	return ca_msg_bytes_check(p->data, p->len, sizeof(p->data), required, field, err);
}

static int
ca_msg_signed_check(const struct ca_msg_signed *p, const char *field, struct err *err)
{
	if (ca_msg_bytes_check(p->attest, p->attest_len, sizeof(p->attest), true, field, err) ==
	        -1 ||
	    ca_msg_bytes_check(p->sig, p->sig_len, sizeof(p->sig), true, field, err) == -1)
		return -1;
	return 0;
}

static int
ca_msg_check_challenge_add(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_add *p = &m->u.challenge_add;

	if (ca_msg_range(p->kind, CA_KIND_CK, CA_KIND_AK, "challenge kind", err) == -1 ||
	    ca_msg_text(p->subject, sizeof(p->subject), "challenge subject", err) == -1 ||
	    ca_msg_text(p->client, sizeof(p->client), "challenge client", err) == -1 ||
	    ca_msg_public_check(&p->ek, true, "challenge EK", err) == -1 ||
	    ca_msg_public_check(&p->key, true, "challenge key", err) == -1)
		return -1;
	if (p->subject[0] == '\0' || p->client[0] == '\0')
		return err_set(err, ERR_INVALID, "challenge %s: empty",
		    p->subject[0] == '\0' ? "subject" : "client");
	if (p->vek_serial[0] != '\0' &&
	    (p->kind != CA_KIND_AK || ca_msg_hex(p->vek_serial, sizeof(p->vek_serial),
	                                  CERTS_SERIAL_HEX_MAX, "challenge vEK serial", err) == -1))
		return err_set(
		    err, ERR_INVALID, "challenge: a vEK serial that is none, or for a CK");
	if (memchr(p->request, '\0', p->len) != NULL)
		return err_set(err, ERR_INVALID, "challenge request: a NUL inside its text");
	return 0;
}

static int
ca_msg_check_challenge_added(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_added *p = &m->u.challenge_added;

	if (p->rc != CA_MSG_OK && p->rc != CA_MSG_FULL && p->rc != CA_MSG_LIMIT &&
	    p->rc != CA_MSG_REFUSED && p->rc != CA_MSG_CONFLICT && p->rc != CA_MSG_FAILED)
		return err_set(err, ERR_INVALID, "challenge added: outcome %u", p->rc);
	if (p->rc == CA_MSG_OK && ca_msg_id_check(p->id, err) == -1)
		return -1;
	if (p->expires_in < 0)
		return err_set(err, ERR_INVALID, "challenge added: expires in %lld s",
		    (long long)p->expires_in);
	if (p->rc != CA_MSG_OK && (p->blob_len != 0 || p->enc_len != 0))
		return err_set(err, ERR_INVALID, "challenge added: a credential with a refusal");
	if (ca_msg_bytes_check(p->blob, p->blob_len, sizeof(p->blob), p->rc == CA_MSG_OK,
	        "credential blob", err) == -1 ||
	    ca_msg_bytes_check(p->enc, p->enc_len, sizeof(p->enc), p->rc == CA_MSG_OK,
	        "encrypted secret", err) == -1)
		return -1;
	return ca_msg_text(p->reason, sizeof(p->reason), "challenge added: reason", err);
}

static int
ca_msg_check_challenge_take(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_take *p = &m->u.challenge_take;

	if (ca_msg_id_check(p->id, err) == -1)
		return -1;
	return ca_msg_range(
	    p->secret_len, 1, CREDENTIAL_MAX_SECRET, "challenge secret length", err);
}

static int
ca_msg_check_challenge_taken(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_challenge_taken *p = &m->u.challenge_taken;

	if (p->rc >= CA_MSG_RCS || p->rc == CA_MSG_FULL || p->rc == CA_MSG_LIMIT ||
	    p->rc == CA_MSG_REFUSED || p->rc == CA_MSG_UNKNOWN || p->rc == CA_MSG_CONFLICT)
		return err_set(err, ERR_INVALID, "challenge taken: outcome %u", p->rc);
	if (ca_msg_text(p->reason, sizeof(p->reason), "reason", err) == -1)
		return -1;
	if (p->rc == CA_MSG_OK &&
	    ca_msg_range(p->kind, CA_KIND_CK, CA_KIND_AK, "challenge kind", err) == -1)
		return -1;
	if (memchr(p->request, '\0', p->len) != NULL)
		return err_set(err, ERR_INVALID, "challenge taken: a NUL inside the request");
	return 0;
}

static int
ca_msg_check_issue_ck(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ck *p = &m->u.issue_ck;

	if (ca_msg_id_check(p->id, err) == -1 ||
	    ca_msg_text(p->host, sizeof(p->host), "host", err) == -1)
		return -1;
	if (p->host[0] == '\0')
		return err_set(err, ERR_INVALID, "host: empty");
	return 0;
}

static int
ca_msg_check_issue_ak(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ak *p = &m->u.issue_ak;

	if (ca_msg_id_check(p->id, err) == -1)
		return -1;
	return ca_msg_hex(p->vek_serial, sizeof(p->vek_serial), CERTS_SERIAL_HEX_MAX,
	    "vEK certificate serial", err);
}

static int
ca_msg_check_issue_ek(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issue_ek *p = &m->u.issue_ek;

	if (ca_msg_range(p->vek_type, 0, EVIDENCE_VEK_TYPES - 1, "vEK type", err) == -1 ||
	    ca_msg_range(p->whole_set, 0, 1, "whole set", err) == -1)
		return -1;
	for (size_t t = 0; p->whole_set && t < p->vek_type; t++)
		if (p->vek_set[t].len != 0)
			return err_set(
			    err, ERR_INVALID, "whole set: the vEK is not the set's first");
	for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++)
		if (ca_msg_public_check(&p->vek_set[t], t == p->vek_type, "vEK set", err) == -1)
			return -1;
	if (ca_msg_public_check(&p->sealed, true, "sealed object", err) == -1 ||
	    ca_msg_signed_check(&p->certify, "certification", err) == -1 ||
	    ca_msg_signed_check(&p->quote, "quote", err) == -1 ||
	    ca_msg_hex(
	        p->ck_serial, sizeof(p->ck_serial), CERTS_SERIAL_HEX_MAX, "CK serial", err) == -1 ||
	    ca_msg_text(p->instance_uuid, sizeof(p->instance_uuid), "instance UUID", err) == -1)
		return -1;
	if (strlen(p->instance_uuid) != CERTS_UUID_LEN)
		return err_set(
		    err, ERR_INVALID, "instance UUID: not %d characters", CERTS_UUID_LEN);
	if (p->pcr_mask == 0 || (p->pcr_mask >> TPM_PCRS) != 0)
		return err_set(err, ERR_INVALID, "quoted PCRs: mask 0x%08x", p->pcr_mask);
	return 0;
}

static int
ca_msg_check_nonce_add(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_nonce_add *p = &m->u.nonce_add;

	if (ca_msg_text(p->client, sizeof(p->client), "nonce client", err) == -1)
		return -1;
	if (p->client[0] == '\0')
		return err_set(err, ERR_INVALID, "nonce client: empty");
	return 0;
}

static int
ca_msg_check_nonce_added(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_nonce_added *p = &m->u.nonce_added;

	if (p->rc != CA_MSG_OK && p->rc != CA_MSG_FAILED)
		return err_set(err, ERR_INVALID, "nonce added: outcome %u", p->rc);
	if (p->expires_in < 0)
		return err_set(
		    err, ERR_INVALID, "nonce added: expires in %lld s", (long long)p->expires_in);
	return ca_msg_text(p->reason, sizeof(p->reason), "nonce added: reason", err);
}

static int
ca_msg_check_issued(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_issued *p = &m->u.issued;

	if (p->rc >= CA_MSG_RCS || p->rc == CA_MSG_FULL || p->rc == CA_MSG_WRONG ||
	    p->rc == CA_MSG_LIMIT)
		return err_set(err, ERR_INVALID, "issued: outcome %u", p->rc);
	if (ca_msg_text(p->reason, sizeof(p->reason), "reason", err) == -1 ||
	    ca_msg_text(p->host_config, sizeof(p->host_config), "host configuration", err) == -1)
		return -1;
	if (p->rc == CA_MSG_OK && (p->len == 0 || ca_msg_hex(p->serial, sizeof(p->serial),
	                                              CERTS_SERIAL_HEX_MAX, "serial", err) == -1))
		return err_set(err, ERR_INVALID, "issued: no certificate or serial");
	return 0;
}

static int
ca_msg_check_audit(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_audit *p = &m->u.audit;

	if (ca_msg_range(p->action, 1, CA_ACTIONS - 1, "audit action", err) == -1 ||
	    ca_msg_range(p->outcome, 1, CA_OUTCOMES - 1, "audit outcome", err) == -1)
		return -1;
	return ca_msg_text(p->detail, sizeof(p->detail), "audit detail", err);
}

static int
ca_msg_check_audited(const struct ca_msg *m, struct err *err)
{
	if (m->u.audited.rc != CA_MSG_OK && m->u.audited.rc != CA_MSG_FAILED)
		return err_set(err, ERR_INVALID, "audited: outcome %u", m->u.audited.rc);
	return 0;
}

static int
ca_msg_check_metrics_get(const struct ca_msg *m, struct err *err)
{
	if (m->u.metrics_get.zero != 0)
		return err_set(err, ERR_INVALID, "metrics request: %u", m->u.metrics_get.zero);
	return 0;
}

static int
ca_msg_check_metrics(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_metrics *p = &m->u.metrics;

	if (p->challenges_open < -1 || p->nonces_redeemed < -1)
		return err_set(err, ERR_INVALID, "metrics: open counts %lld, %lld",
		    (long long)p->challenges_open, (long long)p->nonces_redeemed);
	return 0;
}

static int
ca_msg_check_crl_get(const struct ca_msg *m, struct err *err)
{
	uint32_t role = m->u.crl_get.role;

	if (role != CA_ROLE_PRIVACY && role != CA_ROLE_VIRTUALIZATION)
		return err_set(err, ERR_INVALID, "CRL role: %u", role);
	return 0;
}

static int
ca_msg_check_crl(const struct ca_msg *m, struct err *err)
{
	const struct ca_msg_crl *p = &m->u.crl;

	if (p->rc != CA_MSG_OK && p->rc != CA_MSG_FAILED)
		return err_set(err, ERR_INVALID, "CRL: outcome %u", p->rc);
	if (p->rc == CA_MSG_OK && p->len == 0)
		return err_set(err, ERR_INVALID, "CRL: empty");
	if (p->rc == CA_MSG_FAILED && (p->len != 0 || p->total != 0 || p->offset != 0))
		return err_set(err, ERR_INVALID, "CRL: a refusal with a part");
	if (p->total > CA_CRL_MAX || (uint64_t)p->offset + p->len > p->total)
		return err_set(
		    err, ERR_INVALID, "CRL: part %u+%u of %u bytes", p->offset, p->len, p->total);
	return ca_msg_text(p->reason, sizeof(p->reason), "CRL: reason", err);
}

/* ---- the table ---- */

static const struct ca_msg_layout ca_msg_layouts[CA_MSG_TYPES] = {
    [CA_MSG_HELLO] = {"HELLO", CA_MSG_TO_CHILD, sizeof(struct ca_msg_hello), 0, 0,
        ca_msg_check_hello},
    [CA_MSG_READY] = {"READY", CA_MSG_TO_PARENT, sizeof(struct ca_msg_ready), 0, 0,
        ca_msg_check_ready},
    [CA_MSG_TRUST_LIST] = {"TRUST_LIST", CA_MSG_TO_PARENT, sizeof(struct ca_msg_trust_list), 0, 0,
        ca_msg_check_trust_list},
    [CA_MSG_TRUST_ENTRY] = {"TRUST_ENTRY", CA_MSG_TO_CHILD,
        offsetof(struct ca_msg_trust_entry, pem), offsetof(struct ca_msg_trust_entry, len),
        CA_MSG_TRUST_MAX, ca_msg_check_trust_entry},
    [CA_MSG_TRUST_END] = {"TRUST_END", CA_MSG_TO_CHILD, sizeof(struct ca_msg_trust_end), 0, 0,
        ca_msg_check_trust_end},
    [CA_MSG_STATUS_GET] = {"STATUS_GET", CA_MSG_TO_PARENT, sizeof(struct ca_msg_status_get), 0, 0,
        ca_msg_check_status_get},
    [CA_MSG_STATUS] = {"STATUS", CA_MSG_TO_CHILD, sizeof(struct ca_msg_status), 0, 0,
        ca_msg_check_status},
    [CA_MSG_APPROVAL_GET] = {"APPROVAL_GET", CA_MSG_TO_PARENT, sizeof(struct ca_msg_approval_get),
        0, 0, ca_msg_check_approval_get},
    [CA_MSG_APPROVAL] = {"APPROVAL", CA_MSG_TO_CHILD, sizeof(struct ca_msg_approval), 0, 0,
        ca_msg_check_approval},
    [CA_MSG_CHALLENGE_ADD] = {"CHALLENGE_ADD", CA_MSG_TO_PARENT,
        offsetof(struct ca_msg_challenge_add, request), offsetof(struct ca_msg_challenge_add, len),
        CA_MSG_REQUEST_MAX, ca_msg_check_challenge_add},
    [CA_MSG_CHALLENGE_ADDED] = {"CHALLENGE_ADDED", CA_MSG_TO_CHILD,
        sizeof(struct ca_msg_challenge_added), 0, 0, ca_msg_check_challenge_added},
    [CA_MSG_CHALLENGE_TAKE] = {"CHALLENGE_TAKE", CA_MSG_TO_PARENT,
        sizeof(struct ca_msg_challenge_take), 0, 0, ca_msg_check_challenge_take},
    [CA_MSG_CHALLENGE_TAKEN] = {"CHALLENGE_TAKEN", CA_MSG_TO_CHILD,
        offsetof(struct ca_msg_challenge_taken, request),
        offsetof(struct ca_msg_challenge_taken, len), CA_MSG_REQUEST_MAX,
        ca_msg_check_challenge_taken},
    [CA_MSG_ISSUE_CK] = {"ISSUE_CK", CA_MSG_TO_PARENT, sizeof(struct ca_msg_issue_ck), 0, 0,
        ca_msg_check_issue_ck},
    [CA_MSG_ISSUE_AK] = {"ISSUE_AK", CA_MSG_TO_PARENT, sizeof(struct ca_msg_issue_ak), 0, 0,
        ca_msg_check_issue_ak},
    [CA_MSG_ISSUE_EK] = {"ISSUE_EK", CA_MSG_TO_PARENT, sizeof(struct ca_msg_issue_ek), 0, 0,
        ca_msg_check_issue_ek},
    [CA_MSG_ISSUED] = {"ISSUED", CA_MSG_TO_CHILD, offsetof(struct ca_msg_issued, der),
        offsetof(struct ca_msg_issued, len), CA_CERT_MAX, ca_msg_check_issued},
    [CA_MSG_AUDIT] = {"AUDIT", CA_MSG_TO_PARENT, sizeof(struct ca_msg_audit), 0, 0,
        ca_msg_check_audit},
    [CA_MSG_AUDITED] = {"AUDITED", CA_MSG_TO_CHILD, sizeof(struct ca_msg_audited), 0, 0,
        ca_msg_check_audited},
    [CA_MSG_NONCE_ADD] = {"NONCE_ADD", CA_MSG_TO_PARENT, sizeof(struct ca_msg_nonce_add), 0, 0,
        ca_msg_check_nonce_add},
    [CA_MSG_NONCE_ADDED] = {"NONCE_ADDED", CA_MSG_TO_CHILD, sizeof(struct ca_msg_nonce_added), 0, 0,
        ca_msg_check_nonce_added},
    [CA_MSG_CRL_GET] = {"CRL_GET", CA_MSG_TO_PARENT, sizeof(struct ca_msg_crl_get), 0, 0,
        ca_msg_check_crl_get},
    [CA_MSG_CRL] = {"CRL", CA_MSG_TO_CHILD, offsetof(struct ca_msg_crl, der),
        offsetof(struct ca_msg_crl, len), CA_MSG_CRL_MAX, ca_msg_check_crl},
    [CA_MSG_METRICS_GET] = {"METRICS_GET", CA_MSG_TO_PARENT, sizeof(struct ca_msg_metrics_get), 0,
        0, ca_msg_check_metrics_get},
    [CA_MSG_METRICS] = {"METRICS", CA_MSG_TO_CHILD, sizeof(struct ca_msg_metrics), 0, 0,
        ca_msg_check_metrics},
};

static const struct ca_msg_layout *
ca_msg_layout(uint32_t type)
{
	if (type == 0 || type >= CA_MSG_TYPES)
		return NULL;
	return &ca_msg_layouts[type];
}

const char *
ca_msg_type_name(uint32_t type)
{
	const struct ca_msg_layout *l = ca_msg_layout(type);

	return l != NULL ? l->name : "unknown";
}

const char *
ca_msg_action_name(enum ca_msg_action action)
{
	switch (action) {
	case CA_ACTION_CHALLENGE: return "privacy/challenge";
	case CA_ACTION_CERTIFY: return "privacy/certify";
	case CA_ACTION_EK: return "virtualization/ek-certificate";
	case CA_ACTION_NONCE: return "virtualization/nonce";
	default: return "?";
	}
}

/* The tail length recorded in m's payload, for a layout with a tail. */
static uint32_t
ca_msg_tail_len(const struct ca_msg *m, const struct ca_msg_layout *l)
{
	uint32_t len;

	memcpy(&len, (const uint8_t *)&m->u + l->len_at, sizeof(len));
	return len;
}

void
ca_msg_init(struct ca_msg *m, enum ca_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->hdr.type = (uint32_t)type;
}

size_t
ca_msg_size(const struct ca_msg *m)
{
	const struct ca_msg_layout *l = ca_msg_layout(m->hdr.type);
	size_t payload;

	if (l == NULL)
		return 0;
	payload = l->fixed;
	if (l->tail_max > 0) {
		if (ca_msg_tail_len(m, l) > l->tail_max)
			return 0;
		payload += ca_msg_tail_len(m, l);
	}
	return sizeof(m->hdr) + payload;
}

int
ca_msg_check(const struct ca_msg *m, size_t n, enum ca_msg_to to, struct err *err)
{
	const struct ca_msg_layout *l;
	size_t payload;

	if (n < sizeof(m->hdr) || n > sizeof(*m))
		return err_set(err, ERR_INVALID, "a record of %zu bytes", n);
	if ((l = ca_msg_layout(m->hdr.type)) == NULL)
		return err_set(err, ERR_INVALID, "unknown type %u", m->hdr.type);
	if (l->to != to)
		return err_set(err, ERR_INVALID, "%s travels the other way", l->name);
	payload = n - sizeof(m->hdr);
	if (m->hdr.len != payload)
		return err_set(err, ERR_INVALID, "%s: the header says %u bytes, the record has %zu",
		    l->name, m->hdr.len, payload);
	if (l->tail_max == 0 && payload != l->fixed)
		return err_set(
		    err, ERR_INVALID, "%s: %zu bytes, not %zu", l->name, payload, l->fixed);
	if (l->tail_max > 0 && (payload < l->fixed || payload - l->fixed != ca_msg_tail_len(m, l) ||
	                           ca_msg_tail_len(m, l) > l->tail_max))
		return err_set(err, ERR_INVALID,
		    "%s: %zu bytes do not hold its tail of %u (at most %zu)", l->name, payload,
		    payload < l->fixed ? 0 : ca_msg_tail_len(m, l), l->tail_max);
	if (l->check(m, err) == -1)
		return err_wrap(err, "%s", l->name);
	return 0;
}

/* Waits until fd can take a message, up to CA_MSG_SEND_MS. */
static int
ca_msg_wait_room(int fd, struct err *err)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int n;

	do
		n = poll(&pfd, 1, CA_MSG_SEND_MS);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return err_errno(err, "poll");
	if (n == 0)
		return err_set(err, ERR_TIMEOUT, "the peer has not read for %d ms", CA_MSG_SEND_MS);
	return 0;
}

int
ca_msg_send(int fd, struct ca_msg *m, struct err *err)
{
	size_t n = ca_msg_size(m);
	ssize_t sent;

	if (n == 0)
		return err_set(
		    err, ERR_INVALID, "%s: not a message to send", ca_msg_type_name(m->hdr.type));
	m->hdr.len = (uint32_t)(n - sizeof(m->hdr));
	for (;;) {
		sent = send(fd, m, n, MSG_NOSIGNAL | MSG_EOR);
		if (sent == (ssize_t)n)
			return 0;
		if (sent >= 0)
			return err_set(
			    err, ERR_IO, "%s: a short send", ca_msg_type_name(m->hdr.type));
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return err_errno(err, "send %s", ca_msg_type_name(m->hdr.type));
		if (ca_msg_wait_room(fd, err) == -1)
			return -1;
	}
}

int
ca_msg_recv(int fd, struct ca_msg *m, enum ca_msg_to to, struct err *err)
{
	ssize_t n;

	do
		n = recv(fd, m, sizeof(*m), MSG_TRUNC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return err_errno(err, "recv");
	if (n == 0)
		return 0;
	if (ca_msg_check(m, (size_t)n, to, err) == -1)
		return -1;
	return 1;
}
