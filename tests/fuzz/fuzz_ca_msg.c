/*
 * fuzz_ca_msg.c: libFuzzer target for the decoder the parent of
 * `vtpm-ca serve` applies to every record its network child sends
 * (ca_msg_check, src/ca/ca_msg.c), the one place where bytes from the
 * sandboxed side enter the process that holds the keys.
 *
 * The input is one record. Besides memory safety it checks the contract
 * of an accepted message: its type is one the child sends, its size is
 * exactly what ca_msg_size() computes from it, every length is within its
 * field, every string ends inside its field and is printable, every enum
 * and flag in range; and a message refused once is refused again (no
 * state). The parent's answer to a message is left to the unit and
 * integration tests.
 *
 * The corpus (tests/fuzz/corpus/ca_msg/) holds one valid record of each
 * type the child sends, and a few broken ones.
 *
 *   make build/fuzz/fuzz_ca_msg && build/fuzz/fuzz_ca_msg tests/fuzz/corpus/ca_msg
 */
#include <stdlib.h>
#include <string.h>

#include "ca/ca_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca_msg fuzz_m;

static void
fuzz_text(const char *s, size_t size)
{
	if (!ca_msg_text_ok(s, size))
		abort();
}

/* A TPM structure: its length inside its field, zeros after it. */
static void
fuzz_bytes(const uint8_t *data, uint32_t len, size_t size)
{
	if (len > size)
		abort();
	for (size_t i = len; i < size; i++)
		if (data[i] != 0)
			abort();
}

static void
fuzz_public(const struct ca_msg_public *p)
{
	fuzz_bytes(p->data, p->len, sizeof(p->data));
}

/* The contract of an accepted message, type by type. */
static void
fuzz_accepted(const struct ca_msg *m, size_t size)
{
	if (ca_msg_size(m) != size || m->hdr.len != size - sizeof(m->hdr))
		abort();
	switch (m->hdr.type) {
	case CA_MSG_READY: break;
	case CA_MSG_TRUST_LIST:
		if (m->u.trust_list.kind > CA_TRUST_PRIVACY)
			abort();
		break;
	case CA_MSG_STATUS_GET:
		fuzz_text(m->u.status_get.serial, sizeof(m->u.status_get.serial));
		if (m->u.status_get.serial[0] == '\0')
			abort();
		break;
	case CA_MSG_APPROVAL_GET: break;
	case CA_MSG_CHALLENGE_ADD:
		if (m->u.challenge_add.len > CA_MSG_REQUEST_MAX ||
		    memchr(m->u.challenge_add.request, '\0', m->u.challenge_add.len) != NULL)
			abort();
		fuzz_text(m->u.challenge_add.subject, sizeof(m->u.challenge_add.subject));
		fuzz_text(m->u.challenge_add.client, sizeof(m->u.challenge_add.client));
		fuzz_public(&m->u.challenge_add.ek);
		fuzz_public(&m->u.challenge_add.key);
		break;
	case CA_MSG_CHALLENGE_TAKE:
		if (strlen(m->u.challenge_take.id) != CA_ID_HEX ||
		    m->u.challenge_take.secret_len == 0 ||
		    m->u.challenge_take.secret_len > CREDENTIAL_MAX_SECRET)
			abort();
		break;
	case CA_MSG_ISSUE_CK: fuzz_text(m->u.issue_ck.host, sizeof(m->u.issue_ck.host)); break;
	case CA_MSG_ISSUE_AK:
		fuzz_text(m->u.issue_ak.vek_serial, sizeof(m->u.issue_ak.vek_serial));
		break;
	case CA_MSG_ISSUE_EK:
		if (m->u.issue_ek.vek_type >= EVIDENCE_VEK_TYPES ||
		    m->u.issue_ek.vek_set[m->u.issue_ek.vek_type].len == 0)
			abort();
		for (size_t t = 0; t < EVIDENCE_VEK_TYPES; t++)
			fuzz_public(&m->u.issue_ek.vek_set[t]);
		fuzz_public(&m->u.issue_ek.sealed);
		fuzz_bytes(m->u.issue_ek.certify.attest, m->u.issue_ek.certify.attest_len,
		    sizeof(m->u.issue_ek.certify.attest));
		fuzz_bytes(m->u.issue_ek.quote.sig, m->u.issue_ek.quote.sig_len,
		    sizeof(m->u.issue_ek.quote.sig));
		fuzz_text(m->u.issue_ek.instance_uuid, sizeof(m->u.issue_ek.instance_uuid));
		break;
	case CA_MSG_NONCE_ADD:
		fuzz_text(m->u.nonce_add.client, sizeof(m->u.nonce_add.client));
		if (m->u.nonce_add.client[0] == '\0')
			abort();
		break;
	case CA_MSG_CRL_GET:
		if (m->u.crl_get.role != CA_ROLE_PRIVACY &&
		    m->u.crl_get.role != CA_ROLE_VIRTUALIZATION)
			abort();
		break;
	case CA_MSG_AUDIT:
		if (m->u.audit.action == 0 || m->u.audit.action >= CA_ACTIONS ||
		    m->u.audit.outcome == 0 || m->u.audit.outcome >= CA_OUTCOMES)
			abort();
		fuzz_text(m->u.audit.detail, sizeof(m->u.audit.detail));
		break;
	case CA_MSG_METRICS_GET:
		if (m->u.metrics_get.zero != 0)
			abort();
		break;
	default: abort(); /* a type the parent must never accept */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = {0}, again = {0};
	size_t n = size < sizeof(fuzz_m) ? size : sizeof(fuzz_m);

	memset(&fuzz_m, 0, sizeof(fuzz_m));
	memcpy(&fuzz_m, data, n);
	/* A record longer than the buffer is what recv(MSG_TRUNC) reports. */
	if (ca_msg_check(&fuzz_m, size, CA_MSG_TO_PARENT, &e) == 0) {
		fuzz_accepted(&fuzz_m, size);
		return 0;
	}
	if (e.kind != ERR_INVALID || e.msg[0] == '\0')
		abort(); /* a refusal says why */
	if (ca_msg_check(&fuzz_m, size, CA_MSG_TO_PARENT, &again) == 0 ||
	    strcmp(e.msg, again.msg) != 0)
		abort();
	return 0;
}
