/*
 * test_ca_msg.c: the messages between vtpm-ca serve's parent and its
 * network child (src/ca/ca_msg.c): a valid message of every type passes in
 * its direction only; sizes are exact (fixed types) or fixed part plus a
 * tail whose length the payload states; strings must end inside their
 * fields and be printable; enums and flags in range, TPM structures inside
 * their fields with nothing after them; a record too
 * short, too long or of an unknown type is refused; send and receive over
 * a SOCK_SEQPACKET socketpair, with end of file and oversized records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ca/ca_msg.h"

static struct ca_msg M, R;

static const char ID[] = "00112233445566778899aabbccddeeff";

/* A TPM structure of n bytes, each b (the message checks only its length). */
static void
tpm_bytes(struct ca_msg_public *p, size_t n, uint8_t b)
{
	p->len = (uint32_t)n;
	memset(p->data, b, n);
}

static void
signed_bytes(struct ca_msg_signed *s)
{
	s->attest_len = 100;
	memset(s->attest, 0xa7, 100);
	s->sig_len = 70;
	memset(s->sig, 0x51, 70);
}
static const char UUID[] = "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23";

/* A valid message of type t in M; returns its size on the wire. */
static size_t
valid(enum ca_msg_type t)
{
	ca_msg_init(&M, t);
	switch (t) {
	case CA_MSG_HELLO:
		M.u.hello.role = CA_ROLE_BOTH;
		M.u.hello.root.len = 3;
		break;
	case CA_MSG_READY: break;
	case CA_MSG_TRUST_LIST: M.u.trust_list.kind = CA_TRUST_PRIVACY; break;
	case CA_MSG_TRUST_ENTRY:
		M.u.trust_entry.len = 5;
		memcpy(M.u.trust_entry.pem, "-----", 5);
		break;
	case CA_MSG_TRUST_END: M.u.trust_end.count = 2; break;
	case CA_MSG_STATUS_GET: strcpy(M.u.status_get.serial, "1a2b"); break;
	case CA_MSG_STATUS:
		M.u.status.issued_here = 1;
		M.u.status.revoked = 1;
		strcpy(M.u.status.reason, "key compromise");
		break;
	case CA_MSG_APPROVAL_GET: memset(M.u.approval_get.x, 7, 32); break;
	case CA_MSG_APPROVAL: M.u.approval.trusted = 1; break;
	case CA_MSG_CHALLENGE_ADD:
		M.u.challenge_add.kind = CA_KIND_CK;
		strcpy(M.u.challenge_add.subject, "host-a");
		strcpy(M.u.challenge_add.client, "192.0.2.1");
		tpm_bytes(&M.u.challenge_add.ek, 90, 0xee);
		tpm_bytes(&M.u.challenge_add.key, 90, 0xaa);
		M.u.challenge_add.len = 2;
		memcpy(M.u.challenge_add.request, "{}", 2);
		break;
	case CA_MSG_CHALLENGE_ADDED:
		M.u.challenge_added.expires_in = 300;
		strcpy(M.u.challenge_added.id, ID);
		M.u.challenge_added.blob_len = 68;
		M.u.challenge_added.enc_len = 70;
		break;
	case CA_MSG_CHALLENGE_TAKE:
		strcpy(M.u.challenge_take.id, ID);
		M.u.challenge_take.secret_len = 32;
		break;
	case CA_MSG_CHALLENGE_TAKEN:
		M.u.challenge_taken.kind = CA_KIND_AK;
		M.u.challenge_taken.len = 2;
		memcpy(M.u.challenge_taken.request, "{}", 2);
		break;
	case CA_MSG_ISSUE_CK:
		strcpy(M.u.issue_ck.id, ID);
		strcpy(M.u.issue_ck.host, "host-a");
		break;
	case CA_MSG_ISSUE_AK:
		strcpy(M.u.issue_ak.id, ID);
		strcpy(M.u.issue_ak.vek_serial, "4e");
		break;
	case CA_MSG_ISSUE_EK:
		M.u.issue_ek.vek_type = EVIDENCE_VEK_ECC_P256;
		tpm_bytes(&M.u.issue_ek.vek_set[EVIDENCE_VEK_ECC_P256], 90, 0xe1);
		tpm_bytes(&M.u.issue_ek.sealed, 80, 0x5e);
		signed_bytes(&M.u.issue_ek.certify);
		signed_bytes(&M.u.issue_ek.quote);
		M.u.issue_ek.pcr_mask = 1;
		strcpy(M.u.issue_ek.ck_serial, "77");
		strcpy(M.u.issue_ek.instance_uuid, UUID);
		break;
	case CA_MSG_NONCE_ADD: strcpy(M.u.nonce_add.client, "192.0.2.1"); break;
	case CA_MSG_NONCE_ADDED:
		M.u.nonce_added.expires_in = 60;
		memset(M.u.nonce_added.nonce, 0x5a, sizeof(M.u.nonce_added.nonce));
		break;
	case CA_MSG_ISSUED:
		strcpy(M.u.issued.serial, "abc");
		M.u.issued.len = 4;
		break;
	case CA_MSG_AUDITED: M.u.audited.rc = CA_MSG_FAILED; break;
	case CA_MSG_CRL_GET: M.u.crl_get.role = CA_ROLE_VIRTUALIZATION; break;
	case CA_MSG_CRL:
		M.u.crl.len = 3;
		M.u.crl.total = 3;
		memcpy(M.u.crl.der, "\x30\x01\x00", 3);
		break;
	case CA_MSG_METRICS_GET: break;
	case CA_MSG_METRICS:
		M.u.metrics.issued[CA_ISSUED_EK] = 2;
		M.u.metrics.children = 1;
		M.u.metrics.challenges_open = -1; /* the records failed */
		M.u.metrics.nonces_redeemed = 3;
		break;
	case CA_MSG_AUDIT:
		M.u.audit.action = CA_ACTION_EK;
		M.u.audit.outcome = CA_OUTCOME_REFUSED;
		strcpy(M.u.audit.detail, "the approval key is not trusted");
		break;
	default: fail_msg("no example of type %d", t);
	}
	M.hdr.len = (uint32_t)(ca_msg_size(&M) - sizeof(M.hdr));
	return ca_msg_size(&M);
}

static enum ca_msg_to
direction(enum ca_msg_type t)
{
	switch (t) {
	case CA_MSG_HELLO:
	case CA_MSG_TRUST_ENTRY:
	case CA_MSG_TRUST_END:
	case CA_MSG_STATUS:
	case CA_MSG_APPROVAL:
	case CA_MSG_CHALLENGE_ADDED:
	case CA_MSG_CHALLENGE_TAKEN:
	case CA_MSG_ISSUED:
	case CA_MSG_AUDITED:
	case CA_MSG_METRICS:
	case CA_MSG_NONCE_ADDED:
	case CA_MSG_CRL: return CA_MSG_TO_CHILD;
	default: return CA_MSG_TO_PARENT;
	}
}

static bool
has_tail(enum ca_msg_type t)
{
	return t == CA_MSG_TRUST_ENTRY || t == CA_MSG_CHALLENGE_ADD ||
	       t == CA_MSG_CHALLENGE_TAKEN || t == CA_MSG_ISSUED || t == CA_MSG_CRL;
}

/* Checks M as a record of n bytes received by to; 0 or -1. */
static int
check(size_t n, enum ca_msg_to to)
{
	struct err e = {0};
	int rc = ca_msg_check(&M, n, to, &e);

	if (rc == -1) {
		assert_int_equal(e.kind, ERR_INVALID);
		assert_true(e.msg[0] != '\0');
	}
	return rc;
}

static void
test_every_type_one_way(void **state)
{
	for (int t = CA_MSG_HELLO; t < CA_MSG_TYPES; t++) {
		size_t n = valid((enum ca_msg_type)t);
		enum ca_msg_to to = direction((enum ca_msg_type)t);

		assert_true(n >= sizeof(M.hdr));
		assert_int_equal(check(n, to), 0);
		assert_int_equal(
		    check(n, to == CA_MSG_TO_PARENT ? CA_MSG_TO_CHILD : CA_MSG_TO_PARENT), -1);
		assert_string_not_equal(ca_msg_type_name((uint32_t)t), "unknown");
	}
}

static void
test_fixed_sizes_exact(void **state)
{
	for (int t = CA_MSG_HELLO; t < CA_MSG_TYPES; t++) {
		size_t n;

		if (has_tail((enum ca_msg_type)t))
			continue;
		n = valid((enum ca_msg_type)t);
		M.hdr.len--;
		assert_int_equal(check(n - 1, direction((enum ca_msg_type)t)), -1);
		M.hdr.len += 2;
		assert_int_equal(check(n + 1, direction((enum ca_msg_type)t)), -1);
		M.hdr.len--;
		/* the header and the record disagree */
		assert_int_equal(check(n - 1, direction((enum ca_msg_type)t)), -1);
	}
}

static void
test_header_and_record_agree(void **state)
{
	size_t n = valid(CA_MSG_STATUS_GET);

	M.hdr.len++;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	M.hdr.len -= 2;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
}

static void
test_tails(void **state)
{
	size_t n = valid(CA_MSG_CHALLENGE_ADD), fixed = n - 2;

	/* the tail's len and the record's size must agree */
	assert_int_equal(check(n - 1, CA_MSG_TO_PARENT), -1);
	M.u.challenge_add.len = 3;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	/* the largest tail passes, one more byte does not */
	M.u.challenge_add.len = CA_MSG_REQUEST_MAX;
	memset(M.u.challenge_add.request, 'x', CA_MSG_REQUEST_MAX);
	M.hdr.len = (uint32_t)(fixed - sizeof(M.hdr) + CA_MSG_REQUEST_MAX);
	assert_int_equal(ca_msg_size(&M), fixed + CA_MSG_REQUEST_MAX);
	assert_int_equal(check(fixed + CA_MSG_REQUEST_MAX, CA_MSG_TO_PARENT), 0);
	M.u.challenge_add.len = CA_MSG_REQUEST_MAX + 1;
	M.hdr.len++;
	assert_int_equal(ca_msg_size(&M), 0);
	assert_int_equal(check(fixed + CA_MSG_REQUEST_MAX + 1, CA_MSG_TO_PARENT), -1);
	/* a huge len does not wrap around */
	M.u.challenge_add.len = UINT32_MAX;
	assert_int_equal(check(fixed, CA_MSG_TO_PARENT), -1);
	/* no NUL inside the request's text */
	valid(CA_MSG_CHALLENGE_ADD);
	M.u.challenge_add.request[1] = '\0';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	/* the client it counts under: printable, not empty */
	valid(CA_MSG_CHALLENGE_ADD);
	M.u.challenge_add.client[0] = '\0';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_CHALLENGE_ADD);
	M.u.challenge_add.client[2] = '\n';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
}

static void
test_records_out_of_bounds(void **state)
{
	valid(CA_MSG_READY);
	assert_int_equal(check(0, CA_MSG_TO_PARENT), -1);
	assert_int_equal(check(sizeof(M.hdr) - 1, CA_MSG_TO_PARENT), -1);
	/* what recv(MSG_TRUNC) reports for a record larger than any message */
	assert_int_equal(check(sizeof(M) + 1, CA_MSG_TO_PARENT), -1);
	for (uint32_t t = 0; t < 3; t++) {
		static const uint32_t unknown[] = {0, CA_MSG_TYPES, 0xffffffffu};
		M.hdr.type = unknown[t];
		M.hdr.len = 4;
		assert_int_equal(check(sizeof(M.hdr) + 4, CA_MSG_TO_PARENT), -1);
		assert_int_equal(check(sizeof(M.hdr) + 4, CA_MSG_TO_CHILD), -1);
		assert_string_equal(ca_msg_type_name(unknown[t]), "unknown");
	}
}

static void
test_strings(void **state)
{
	size_t n = valid(CA_MSG_AUDIT);

	memset(M.u.audit.detail, 'a', sizeof(M.u.audit.detail)); /* no NUL */
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_AUDIT);
	M.u.audit.detail[3] = '\n';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	M.u.audit.detail[3] = (char)0xc3;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	n = valid(CA_MSG_STATUS_GET);
	strcpy(M.u.status_get.serial, "ABC"); /* lowercase only */
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	strcpy(M.u.status_get.serial, "");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	strcpy(M.u.status_get.serial, "0g");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	memset(M.u.status_get.serial, 'a', sizeof(M.u.status_get.serial));
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	n = valid(CA_MSG_CHALLENGE_TAKE);
	M.u.challenge_take.id[CA_ID_HEX - 1] = '\0'; /* one digit short */
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	n = valid(CA_MSG_NONCE_ADD);
	M.u.nonce_add.client[0] = '\0';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	n = valid(CA_MSG_ISSUE_CK);
	M.u.issue_ck.host[0] = '\0';
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	n = valid(CA_MSG_ISSUE_EK);
	strcpy(M.u.issue_ek.instance_uuid, "3f1c2a9e");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);

	assert_true(ca_msg_text_ok("ok", 3));
	assert_false(ca_msg_text_ok("ok", 2));
}

static void
test_enums_and_flags(void **state)
{
	size_t n = valid(CA_MSG_TRUST_LIST);

	M.u.trust_list.kind = CA_TRUST_APPROVAL_KEY; /* asked one by one */
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_CHALLENGE_ADD);
	M.u.challenge_add.kind = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_AUDIT);
	M.u.audit.action = CA_ACTIONS;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_AUDIT);
	M.u.audit.outcome = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.vek_type = EVIDENCE_VEK_TYPES;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.pcr_mask = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	M.u.issue_ek.pcr_mask = 1u << TPM_PCRS;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_READY);
	M.u.ready.zero = 1;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_STATUS);
	M.u.status.revoked = 2;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
	n = valid(CA_MSG_HELLO);
	M.u.hello.privacy.len = CA_CERT_MAX + 1;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
	n = valid(CA_MSG_CHALLENGE_TAKE);
	M.u.challenge_take.secret_len = CREDENTIAL_MAX_SECRET + 1;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	M.u.challenge_take.secret_len = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_METRICS_GET);
	M.u.metrics_get.zero = 1;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_METRICS);
	M.u.metrics.nonces_redeemed = -2;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
}

/* TPM structures: a length inside its field, nothing after it; those a
 * message needs present; the vEK asked for a member of its set. */
static void
test_tpm_structures(void **state)
{
	size_t n = valid(CA_MSG_ISSUE_EK);

	assert_int_equal(check(n, CA_MSG_TO_PARENT), 0);
	tpm_bytes(&M.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048], 300, 0xe2);
	assert_int_equal(check(n, CA_MSG_TO_PARENT), 0); /* RSA and ECC vEKs */
	M.u.issue_ek.vek_type = EVIDENCE_VEK_RSA_2048;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), 0);
	memset(&M.u.issue_ek.vek_set[EVIDENCE_VEK_RSA_2048], 0, sizeof(struct ca_msg_public));
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1); /* the vEK asked for is missing */
	valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.vek_set[EVIDENCE_VEK_ECC_P256].len = CA_PUBLIC_MAX + 1;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.sealed.len = 79; /* a byte past its length */
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.quote.sig_len = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	valid(CA_MSG_ISSUE_EK);
	M.u.issue_ek.certify.attest_len = CA_ATTEST_MAX + 1;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_CHALLENGE_ADD);
	M.u.challenge_add.key.len = 0;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_CHALLENGE_ADDED);
	M.u.challenge_added.blob_len = 0; /* a challenge without its credential */
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
	M.u.challenge_added.rc = CA_MSG_REFUSED;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1); /* the other still there */
	M.u.challenge_added.enc_len = 0;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), 0);
}

/* Serials: lowercase hex; a CRL of a role; a CRL's parts. */
static void
test_serials(void **state)
{
	size_t n = valid(CA_MSG_ISSUE_AK);

	strcpy(M.u.issue_ak.vek_serial, "4G");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_ISSUE_EK);
	strcpy(M.u.issue_ek.ck_serial, "");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	n = valid(CA_MSG_CRL_GET);
	M.u.crl_get.role = CA_ROLE_BOTH;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	/* a vEK certificate's serial with an AK challenge only */
	n = valid(CA_MSG_CHALLENGE_ADD);
	strcpy(M.u.challenge_add.vek_serial, "4e");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	M.u.challenge_add.kind = CA_KIND_AK;
	assert_int_equal(check(n, CA_MSG_TO_PARENT), 0);
	strcpy(M.u.challenge_add.vek_serial, "4E");
	assert_int_equal(check(n, CA_MSG_TO_PARENT), -1);
	/* a CRL's part within the CRL, which is within CA_CRL_MAX */
	n = valid(CA_MSG_CRL);
	M.u.crl.total = 2;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
	M.u.crl.total = 4;
	M.u.crl.offset = 2;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
	M.u.crl.offset = 1;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), 0);
	M.u.crl.total = CA_CRL_MAX + 1;
	assert_int_equal(check(n, CA_MSG_TO_CHILD), -1);
}

static void
test_send_recv(void **state)
{
	struct err e = {0};
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	valid(CA_MSG_CHALLENGE_ADD);
	M.hdr.len = 0; /* set by send */
	assert_int_equal(ca_msg_send(sv[0], &M, &e), 0);
	assert_int_equal(ca_msg_recv(sv[1], &R, CA_MSG_TO_PARENT, &e), 1);
	assert_int_equal(R.hdr.type, CA_MSG_CHALLENGE_ADD);
	assert_int_equal(R.u.challenge_add.len, 2);
	assert_memory_equal(R.u.challenge_add.request, "{}", 2);
	assert_string_equal(R.u.challenge_add.subject, "host-a");

	/* a message of the other direction is refused on receipt */
	valid(CA_MSG_ISSUED);
	assert_int_equal(ca_msg_send(sv[0], &M, &e), 0);
	assert_int_equal(ca_msg_recv(sv[1], &R, CA_MSG_TO_PARENT, &e), -1);
	assert_int_equal(e.kind, ERR_INVALID);

	/* a record larger than any message, and a short one */
	{
		static uint8_t big[sizeof(struct ca_msg) + 16];
		memset(big, 0, sizeof(big));
		big[0] = CA_MSG_AUDIT;
		assert_int_equal(send(sv[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
		assert_int_equal(ca_msg_recv(sv[1], &R, CA_MSG_TO_PARENT, &e), -1);
		assert_int_equal(send(sv[0], big, 3, 0), 3);
		assert_int_equal(ca_msg_recv(sv[1], &R, CA_MSG_TO_PARENT, &e), -1);
	}

	/* an unknown type cannot be sent */
	ca_msg_init(&M, CA_MSG_TYPES);
	assert_int_equal(ca_msg_send(sv[0], &M, &e), -1);

	/* the peer gone: end of file */
	close(sv[0]);
	assert_int_equal(ca_msg_recv(sv[1], &R, CA_MSG_TO_PARENT, &e), 0);
	close(sv[1]);
}

static void
test_init_zeroes(void **state)
{
	memset(&M, 0xa5, sizeof(M));
	ca_msg_init(&M, CA_MSG_STATUS);
	assert_int_equal(M.hdr.type, CA_MSG_STATUS);
	for (size_t i = sizeof(M.hdr); i < sizeof(M); i++)
		assert_int_equal(((const uint8_t *)&M)[i], 0);
}

/* The network a client's limits count under: an IPv4 /24, an IPv6 /48, so
 * that one holder of a block of addresses is one client. */
static void
test_client_networks(void **state)
{
	char out[CA_CLIENT_MAX];

	(void)state;
	ca_client_key("192.0.2.77", out);
	assert_string_equal(out, "192.0.2.0/24");
	ca_client_key("::ffff:198.51.100.9", out);
	assert_string_equal(out, "198.51.100.0/24");
	ca_client_key("2001:db8:1:2:3:4:5:6", out);
	assert_string_equal(out, "2001:db8:1::/48");
	ca_client_key("2001:db8:1:ff00::1", out);
	assert_string_equal(out, "2001:db8:1::/48");
	ca_client_key("", out);
	assert_string_equal(out, "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_type_one_way),
	    cmocka_unit_test(test_fixed_sizes_exact),
	    cmocka_unit_test(test_header_and_record_agree),
	    cmocka_unit_test(test_tails),
	    cmocka_unit_test(test_records_out_of_bounds),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_enums_and_flags),
	    cmocka_unit_test(test_tpm_structures),
	    cmocka_unit_test(test_serials),
	    cmocka_unit_test(test_send_recv),
	    cmocka_unit_test(test_init_zeroes),
	    cmocka_unit_test(test_client_networks),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
