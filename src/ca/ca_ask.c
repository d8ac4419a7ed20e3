/*
 * ca_ask.c: the network child's side of ca_msg.h: one function per
 * question to the parent, each a message out and its answer back.
 *
 * The child asks and waits (its HTTP loop is single-threaded, as the
 * server was before it had a parent): the parent answers at once from its
 * records. The channel breaking, or an answer the child does not expect,
 * ends the child: it holds nothing the parent cannot rebuild, and the
 * parent starts another. What the child sends is checked here first
 * (text printable, sizes within their fields), so that no request,
 * however odd, makes it send a message the parent would refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_msg.h"

/* Receives the parent's next message into l->msg; it must be of type a
 * or b. */
static void
ca_ask_receive(struct ca_link *l, enum ca_msg_type a, enum ca_msg_type b)
{
	struct err err = {0};
	int rc;

	rc = ca_msg_recv(l->fd, l->msg, CA_MSG_TO_CHILD, &err);
	if (rc == 0)
		fatalx(EXIT_RUNTIME, "the parent is gone");
	if (rc == -1)
		fatalx(EXIT_RUNTIME, "from the parent: %s", err.msg);
	if (l->msg->hdr.type != (uint32_t)a && l->msg->hdr.type != (uint32_t)b)
		fatalx(EXIT_RUNTIME, "the parent answered %s, not %s",
		    ca_msg_type_name(l->msg->hdr.type), ca_msg_type_name(a));
}

static void
ca_ask_send(struct ca_link *l)
{
	struct err err = {0};

	if (ca_msg_send(l->fd, l->msg, &err) == -1)
		fatalx(EXIT_RUNTIME, "to the parent: %s", err.msg);
}

/* Sends l->msg and receives the answer of type want in its place. */
static void
ca_ask_exchange(struct ca_link *l, enum ca_msg_type want)
{
	ca_ask_send(l);
	ca_ask_receive(l, want, want);
}

/* Copies text into a message's field: 0, or -1 when it does not fit or is
 * not printable (the caller refuses the request instead of sending). */
static int
ca_ask_text(char *field, size_t size, const char *text)
{
	size_t n = strlen(text);

	if (n >= size)
		return -1;
	memcpy(field, text, n + 1);
	return ca_msg_text_ok(field, size) ? 0 : -1;
}

int
ca_ask_trust(struct ca_link *l, enum ca_trust_kind kind, int (*fn)(void *ctx, const char *pem),
    void *ctx, struct err *err)
{
	struct ca_msg *m = l->msg;
	uint32_t n = 0;
	bool more = true;

	ca_msg_init(m, CA_MSG_TRUST_LIST);
	m->u.trust_list.kind = (uint32_t)kind;
	ca_ask_send(l);
	for (;;) {
		ca_ask_receive(l, CA_MSG_TRUST_ENTRY, CA_MSG_TRUST_END);
		if (m->hdr.type == CA_MSG_TRUST_END)
			break;
		n++;
		m->u.trust_entry.pem[m->u.trust_entry.len] = '\0';
		/* The rest is read even when fn has had enough. */
		if (more && fn(ctx, m->u.trust_entry.pem) != 0)
			more = false;
	}
	if (m->u.trust_end.count != n)
		fatalx(EXIT_RUNTIME, "the parent sent %u trust entries and counted %u", n,
		    m->u.trust_end.count);
	if (m->u.trust_end.rc != CA_MSG_OK)
		return err_set(err, ERR_FAILED, "the records cannot be read (see vtpm-ca's log)");
	return 0;
}

int
ca_ask_status(struct ca_link *l, const char *serial, struct ca_status *out, struct err *err)
{
	struct ca_msg *m = l->msg;

	memset(out, 0, sizeof(*out));
	ca_msg_init(m, CA_MSG_STATUS_GET);
	if (ca_ask_text(m->u.status_get.serial, sizeof(m->u.status_get.serial), serial) == -1 ||
	    strspn(serial, "0123456789abcdef") != strlen(serial) || serial[0] == '\0')
		/* no serial of this CA looks like that */
		return err_set(err, ERR_ABSENT, "no certificate with this serial is known here");
	ca_ask_exchange(l, CA_MSG_STATUS);
	if (m->u.status.rc == CA_MSG_NOTFOUND)
		return err_set(err, ERR_ABSENT, "no certificate with this serial is known here");
	if (m->u.status.rc != CA_MSG_OK)
		return err_set(err, ERR_FAILED, "the records cannot be read (see vtpm-ca's log)");
	out->issued_here = m->u.status.issued_here != 0;
	out->revoked = m->u.status.revoked != 0;
	out->revoked_at = m->u.status.revoked_at;
	snprintf(out->reason, sizeof(out->reason), "%s", m->u.status.reason);
	return 0;
}

int
ca_ask_approval(struct ca_link *l, const struct approval_pub *pub)
{
	struct ca_msg *m = l->msg;

	ca_msg_init(m, CA_MSG_APPROVAL_GET);
	memcpy(m->u.approval_get.x, pub->x, sizeof(m->u.approval_get.x));
	memcpy(m->u.approval_get.y, pub->y, sizeof(m->u.approval_get.y));
	ca_ask_exchange(l, CA_MSG_APPROVAL);
	if (m->u.approval.rc != CA_MSG_OK)
		return -1;
	return m->u.approval.trusted != 0;
}

void
ca_answer_clear(struct ca_answer *a)
{
	free(a->request);
	free(a->der);
	memset(a, 0, sizeof(*a));
}

/* An answer the child gives itself: the request cannot be sent. */
static void
ca_ask_failed(struct ca_answer *a, const char *reason)
{
	a->rc = CA_MSG_FAILED;
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
}

/* A TPM2B_PUBLIC into its message field: 0, or -1 when it does not fit. */
static int
ca_ask_public(struct ca_msg_public *out, const uint8_t *pub, size_t len)
{
	if (len == 0 || len > sizeof(out->data))
		return -1;
	out->len = (uint32_t)len;
	memcpy(out->data, pub, len);
	return 0;
}

void
ca_ask_challenge_add(struct ca_link *l, const struct ca_challenge_ask *q, struct ca_answer *a)
{
	const char *subject = q->subject, *request = q->request;
	struct ca_msg *m = l->msg;
	const struct ca_msg_challenge_added *r = &m->u.challenge_added;
	size_t n = strlen(request);

	memset(a, 0, sizeof(*a));
	ca_msg_init(m, CA_MSG_CHALLENGE_ADD);
	m->u.challenge_add.kind = (uint32_t)q->kind;
	if (ca_ask_text(m->u.challenge_add.subject, sizeof(m->u.challenge_add.subject), subject) ==
	        -1 ||
	    ca_ask_text(m->u.challenge_add.client, sizeof(m->u.challenge_add.client), q->client) ==
	        -1 ||
	    subject[0] == '\0' || q->client[0] == '\0' || n > CA_MSG_REQUEST_MAX ||
	    ca_ask_public(&m->u.challenge_add.ek, q->ek_public, q->ek_public_len) == -1 ||
	    ca_ask_public(&m->u.challenge_add.key, q->key_public, q->key_public_len) == -1 ||
	    (q->vek_serial != NULL &&
	        ca_ask_text(m->u.challenge_add.vek_serial, sizeof(m->u.challenge_add.vek_serial),
	            q->vek_serial) == -1)) {
		ca_ask_failed(a,
		    "the request is too large, or names its subject or client oddly, to be kept");
		return;
	}
	m->u.challenge_add.len = (uint32_t)n;
	memcpy(m->u.challenge_add.request, request, n);
	ca_ask_exchange(l, CA_MSG_CHALLENGE_ADDED);
	a->rc = (int)r->rc;
	a->expires_in = r->expires_in;
	snprintf(a->id, sizeof(a->id), "%s", r->id);
	snprintf(a->reason, sizeof(a->reason), "%s", r->reason);
	a->blob_len = r->blob_len;
	memcpy(a->blob, r->blob, r->blob_len);
	a->enc_len = r->enc_len;
	memcpy(a->enc, r->enc, r->enc_len);
}

void
ca_ask_challenge_take(struct ca_link *l, const char *id, const uint8_t *secret, size_t secret_len,
    struct ca_answer *a)
{
	struct ca_msg *m = l->msg;

	memset(a, 0, sizeof(*a));
	ca_msg_init(m, CA_MSG_CHALLENGE_TAKE);
	if (ca_ask_text(m->u.challenge_take.id, sizeof(m->u.challenge_take.id), id) == -1 ||
	    secret_len == 0 || secret_len > sizeof(m->u.challenge_take.secret)) {
		ca_ask_failed(a, "a malformed challenge answer");
		return;
	}
	m->u.challenge_take.secret_len = (uint32_t)secret_len;
	memcpy(m->u.challenge_take.secret, secret, secret_len);
	ca_ask_send(l);
	ca_cleanse(m->u.challenge_take.secret, sizeof(m->u.challenge_take.secret));
	ca_ask_receive(l, CA_MSG_CHALLENGE_TAKEN, CA_MSG_CHALLENGE_TAKEN);
	a->rc = (int)m->u.challenge_taken.rc;
	a->kind = (enum ca_kind)m->u.challenge_taken.kind;
	snprintf(a->reason, sizeof(a->reason), "%s", m->u.challenge_taken.reason);
	if (a->rc != CA_MSG_OK)
		return;
	if ((a->request = malloc(m->u.challenge_taken.len + 1)) == NULL) {
		ca_ask_failed(a, "out of memory");
		return;
	}
	memcpy(a->request, m->u.challenge_taken.request, m->u.challenge_taken.len);
	a->request[m->u.challenge_taken.len] = '\0';
}

/* Sends the ISSUE_* message in l->msg and reads ISSUED into a. */
static void
ca_ask_issue(struct ca_link *l, struct ca_answer *a)
{
	ca_ask_send(l);
	ca_ask_issued(l, a);
}

void
ca_ask_issue_ck(struct ca_link *l, const char *id, const char *host, struct ca_answer *a)
{
	struct ca_msg_issue_ck *q = &l->msg->u.issue_ck;

	memset(a, 0, sizeof(*a));
	ca_msg_init(l->msg, CA_MSG_ISSUE_CK);
	if (ca_ask_text(q->id, sizeof(q->id), id) == -1 ||
	    ca_ask_text(q->host, sizeof(q->host), host) == -1) {
		ca_ask_failed(a, "the host name cannot be certified");
		return;
	}
	ca_ask_issue(l, a);
}

void
ca_ask_issue_ak(struct ca_link *l, const char *id, const char *vek_serial, struct ca_answer *a)
{
	struct ca_msg_issue_ak *q = &l->msg->u.issue_ak;

	memset(a, 0, sizeof(*a));
	ca_msg_init(l->msg, CA_MSG_ISSUE_AK);
	if (ca_ask_text(q->id, sizeof(q->id), id) == -1 ||
	    ca_ask_text(q->vek_serial, sizeof(q->vek_serial), vek_serial) == -1) {
		ca_ask_failed(a, "the vEK certificate's serial cannot be sent");
		return;
	}
	ca_ask_issue(l, a);
}

/* An attestation and its signature into their message field: 0, or -1. */
static int
ca_ask_signed(struct ca_msg_signed *out, const struct ca_signed *in)
{
	if (in->attest_len == 0 || in->attest_len > sizeof(out->attest) || in->signature_len == 0 ||
	    in->signature_len > sizeof(out->sig))
		return -1;
	out->attest_len = (uint32_t)in->attest_len;
	memcpy(out->attest, in->attest, in->attest_len);
	out->sig_len = (uint32_t)in->signature_len;
	memcpy(out->sig, in->signature, in->signature_len);
	return 0;
}

void
ca_ask_issue_ek(struct ca_link *l, const struct ca_ek_issue *e, struct ca_answer *a)
{
	struct ca_msg_issue_ek *q = &l->msg->u.issue_ek;
	const struct ca_ek_req *r = e->req;
	bool ok;

	memset(a, 0, sizeof(*a));
	ca_msg_init(l->msg, CA_MSG_ISSUE_EK);
	q->vek_type = (uint32_t)e->vek_type;
	q->whole_set = e->whole_set ? 1 : 0;
	ok = ca_ask_text(q->ck_serial, sizeof(q->ck_serial), e->ck_serial) == 0 &&
	     ca_ask_text(q->instance_uuid, sizeof(q->instance_uuid), r->instance_uuid) == 0 &&
	     e->set->pub[e->vek_type] != NULL &&
	     ca_ask_public(&q->sealed, r->sealed_public, r->sealed_public_len) == 0 &&
	     ca_ask_signed(&q->certify, &r->certify) == 0 &&
	     ca_ask_signed(&q->quote, &r->quote) == 0;
	for (size_t t = 0; ok && t < EVIDENCE_VEK_TYPES; t++)
		ok = e->set->pub[t] == NULL ||
		     ca_ask_public(&q->vek_set[t], e->set->pub[t], e->set->len[t]) == 0;
	if (!ok) {
		ca_ask_failed(a, "the evidence does not fit the parent's message");
		return;
	}
	memcpy(q->nonce, r->nonce, sizeof(q->nonce));
	q->pcr_mask = r->pcr_mask;
	memcpy(q->pcrs, r->pcrs, sizeof(q->pcrs));
	memcpy(q->approval_x, r->approval.x, sizeof(q->approval_x));
	memcpy(q->approval_y, r->approval.y, sizeof(q->approval_y));
	ca_ask_issue(l, a);
}

void
ca_ask_issued(struct ca_link *l, struct ca_answer *a)
{
	const struct ca_msg_issued *r = &l->msg->u.issued;

	memset(a, 0, sizeof(*a));
	ca_ask_receive(l, CA_MSG_ISSUED, CA_MSG_ISSUED);
	a->rc = (int)r->rc;
	snprintf(a->reason, sizeof(a->reason), "%s", r->reason);
	snprintf(a->serial, sizeof(a->serial), "%s", r->serial);
	snprintf(a->host_config, sizeof(a->host_config), "%s", r->host_config);
	if (a->rc != CA_MSG_OK)
		return;
	if ((a->der = malloc(r->len)) == NULL) {
		ca_ask_failed(a, "out of memory");
		return;
	}
	memcpy(a->der, r->der, r->len);
	a->der_len = r->len;
}

void
ca_ask_nonce_add(struct ca_link *l, const char *client, struct ca_answer *a)
{
	const struct ca_msg_nonce_added *r = &l->msg->u.nonce_added;

	memset(a, 0, sizeof(*a));
	ca_msg_init(l->msg, CA_MSG_NONCE_ADD);
	if (ca_ask_text(l->msg->u.nonce_add.client, sizeof(l->msg->u.nonce_add.client), client) ==
	        -1 ||
	    client[0] == '\0') {
		ca_ask_failed(a, "the client's network cannot be sent");
		return;
	}
	ca_ask_exchange(l, CA_MSG_NONCE_ADDED);
	a->rc = (int)r->rc;
	a->expires_in = r->expires_in;
	memcpy(a->nonce, r->nonce, sizeof(a->nonce));
	snprintf(a->reason, sizeof(a->reason), "%s", r->reason);
}

/* Reads a CRL's parts, the first in l->msg, into a->der: each must go on
 * where the last ended, for the same total (a parent that breaks this
 * ends the child). Out of memory, the parts are read all the same, so that
 * the next answer is the next question's. */
static void
ca_ask_crl_parts(struct ca_link *l, struct ca_answer *a)
{
	const struct ca_msg_crl *r = &l->msg->u.crl;
	uint32_t total = r->total;
	size_t got = 0;

	a->der = malloc(total);
	for (;;) {
		if (r->rc != CA_MSG_OK || r->total != total || r->offset != got)
			fatalx(EXIT_RUNTIME,
			    "the parent sent part %u+%u of a CRL of %u bytes after %zu of %u",
			    r->offset, r->len, r->total, got, total);
		if (a->der != NULL)
			memcpy(a->der + got, r->der, r->len);
		got += r->len;
		if (got == total)
			break;
		ca_ask_receive(l, CA_MSG_CRL, CA_MSG_CRL);
	}
	if (a->der == NULL)
		ca_ask_failed(a, "out of memory");
	else
		a->der_len = total;
}

void
ca_ask_crl(struct ca_link *l, enum ca_role role, struct ca_answer *a)
{
	const struct ca_msg_crl *r = &l->msg->u.crl;

	memset(a, 0, sizeof(*a));
	ca_msg_init(l->msg, CA_MSG_CRL_GET);
	l->msg->u.crl_get.role = (uint32_t)role;
	ca_ask_exchange(l, CA_MSG_CRL);
	a->rc = (int)r->rc;
	snprintf(a->reason, sizeof(a->reason), "%s", r->reason);
	if (a->rc == CA_MSG_OK)
		ca_ask_crl_parts(l, a);
}

void
ca_ask_metrics(struct ca_link *l, struct ca_msg_metrics *out)
{
	ca_msg_init(l->msg, CA_MSG_METRICS_GET);
	ca_ask_exchange(l, CA_MSG_METRICS);
	*out = l->msg->u.metrics;
}

void
ca_ask_audit(struct ca_link *l, int action, bool failed, const char *detail)
{
	struct ca_msg_audit *q = &l->msg->u.audit;
	size_t i;

	ca_msg_init(l->msg, CA_MSG_AUDIT);
	q->action = (uint32_t)action;
	q->outcome = failed ? CA_OUTCOME_FAILED : CA_OUTCOME_REFUSED;
	for (i = 0; detail[i] != '\0' && i + 1 < sizeof(q->detail); i++)
		q->detail[i] = detail[i] >= 0x20 && detail[i] <= 0x7e ? detail[i] : '?';
	q->detail[i] = '\0';
	ca_ask_exchange(l, CA_MSG_AUDITED);
	if (l->msg->u.audited.rc != CA_MSG_OK)
		log_warnx("the parent could not write the audit row of a refusal");
}
