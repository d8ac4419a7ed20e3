/*
 * ca_msg.h: the messages between `vtpm-ca serve`'s two processes
 * (docs/ca-api.md, "Processes"), as vmd's proc.h: one enum of types, one
 * fixed layout per type.
 *
 * The parent holds the CA keys and the database and never sees a network
 * byte; the network child parses HTTP, JSON, DER and TPM structures in its
 * sandbox and asks the parent for what needs a key or a record. They talk
 * over a SOCK_SEQPACKET socketpair: one message per record, a header
 * {type, len} and len bytes of the type's payload, in host byte order
 * (both ends are the same binary on the same machine). A payload is the
 * whole struct of its type, or, for the types ending in a byte tail
 * ({uint32_t len; uint8_t data[MAX]}), the struct up to the tail and len
 * bytes of it.
 *
 * ca_msg_check() is the only way a received message is read: the record's
 * size must be exactly what its header and its type's layout say, the type
 * must travel in that direction, strings must end inside their fields and
 * hold printable ASCII, enums and booleans must be in range. A message the
 * parent refuses ends the child (the parent starts another); one the child
 * refuses ends the child. Messages are built in zeroed structs
 * (ca_msg_init), so no padding byte carries the sender's memory.
 */
#ifndef VTPM_CA_MSG_H
#define VTPM_CA_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"

#define CA_MSG_TRUST_MAX   (64u << 10)     /* one trust entry's PEM text */
#define CA_MSG_REQUEST_MAX API_MAX_REQUEST /* a challenge request, as JSON */
#define CA_MSG_REASON_MAX  256             /* a reason the child may repeat */
#define CA_MSG_SEND_MS     5000            /* a peer that does not read for this long is broken */
#define CA_MSG_CRL_MAX     (64u << 10)     /* one CRL message's part of a CRL */
#define CA_CRL_MAX         (256u << 20)    /* a CRL served (about 7 million entries) */

enum ca_msg_type {
	CA_MSG_HELLO = 1,       /* parent: the role served, the CA certificates */
	CA_MSG_READY,           /* child: confined, HELLO read, serving */
	CA_MSG_TRUST_LIST,      /* child: the trust entries of a kind, please */
	CA_MSG_TRUST_ENTRY,     /* parent: one of them (PEM) */
	CA_MSG_TRUST_END,       /* parent: that was all (or the store failed) */
	CA_MSG_STATUS_GET,      /* child: what is known of a serial */
	CA_MSG_STATUS,          /* parent: issued here, revoked, the reason */
	CA_MSG_APPROVAL_GET,    /* child: is this approval key trusted */
	CA_MSG_APPROVAL,        /* parent: yes or no */
	CA_MSG_CHALLENGE_ADD,   /* child: record a challenge (hash of its secret) */
	CA_MSG_CHALLENGE_ADDED, /* parent: its id and lifetime */
	CA_MSG_CHALLENGE_TAKE,  /* child: take a challenge, compare the secret */
	CA_MSG_CHALLENGE_TAKEN, /* parent: the stored request, or why not */
	CA_MSG_ISSUE_CK,        /* child: certify a host CK (after TAKEN) */
	CA_MSG_ISSUE_AK,        /* child: certify a guest AK (after TAKEN) */
	CA_MSG_ISSUE_EK,        /* child: certify a vTPM's EK */
	CA_MSG_ISSUED,          /* parent: the certificate, or why not */
	CA_MSG_AUDIT,           /* child: a refusal for the audit trail */
	CA_MSG_AUDITED,         /* parent: it is written (before the refusal leaves) */
	CA_MSG_NONCE_ADD,       /* child: a vEK evidence nonce, please */
	CA_MSG_NONCE_ADDED,     /* parent: the nonce (stateless: ca_nonce.c) */
	CA_MSG_CRL_GET,         /* child: a fresh CRL of a role, please */
	CA_MSG_CRL,             /* parent: the CRL (DER, in parts), or why not */
	CA_MSG_METRICS_GET,     /* child: the parent's counts, for GET /metrics */
	CA_MSG_METRICS,         /* parent: certificates issued, open challenges, nonces kept */
	CA_MSG_TYPES            /* one past the last */
};

/* Who receives a message: the parent's decoder accepts only what the
 * child sends, and the other way round. */
enum ca_msg_to { CA_MSG_TO_PARENT, CA_MSG_TO_CHILD };

/* The answer's outcome. */
enum ca_msg_rc {
	CA_MSG_OK = 0,
	CA_MSG_NOTFOUND, /* no such challenge, serial, approved host configuration */
	CA_MSG_USED,     /* the challenge was answered before */
	CA_MSG_EXPIRED,  /* the challenge is past its time */
	CA_MSG_FULL,     /* CA_PENDING_MAX challenges are open */
	CA_MSG_WRONG,    /* the challenge's secret does not match (it is used up) */
	CA_MSG_FAILED,   /* the parent failed (records, key): reason says */
	CA_MSG_REFUSED,  /* a host EK not admitted, or not under that name: reason says */
	CA_MSG_LIMIT,    /* the client's or the EK's share of open challenges is taken */
	CA_MSG_UNKNOWN,  /* EK: the evidence's nonce was not handed out here */
	CA_MSG_CONFLICT, /* EK: another vTPM's sealed object, UUID or vEK; AK: the vEK
	                  * certificate's share of AK certificates taken (reason) */
	CA_MSG_RCS
};

/* The requests whose refusals the child reports (CA_MSG_AUDIT). */
enum ca_msg_action {
	CA_ACTION_CHALLENGE = 1, /* "privacy/challenge" */
	CA_ACTION_CERTIFY,       /* "privacy/certify" */
	CA_ACTION_EK,            /* "virtualization/ek-certificate" */
	CA_ACTION_NONCE,         /* "virtualization/nonce" */
	CA_ACTIONS
};
enum ca_msg_outcome { CA_OUTCOME_REFUSED = 1, CA_OUTCOME_FAILED, CA_OUTCOMES };

struct ca_msg_hdr {
	uint32_t type; /* enum ca_msg_type */
	uint32_t len;  /* payload bytes after the header */
};

/* A public key the parent read from a TPM2B_PUBLIC; it makes a
 * certificate's key from these values only. */
enum ca_msg_key_type { CA_KEY_ECC_P256 = 1, CA_KEY_RSA_2048 };
struct ca_msg_key {
	uint32_t type;     /* enum ca_msg_key_type */
	uint32_t exponent; /* RSA */
	uint8_t x[32], y[32];
	uint8_t modulus[256];
};

struct ca_msg_cert {
	uint32_t len;
	uint8_t der[CA_CERT_MAX];
};

struct ca_msg_hello {
	uint32_t role; /* enum ca_role */
	struct ca_msg_cert root, privacy, virt;
};
struct ca_msg_ready {
	uint32_t zero; /* 0: a payload of fixed size */
};
struct ca_msg_trust_list {
	uint32_t kind; /* enum ca_trust_kind, a kind of certificates */
};
struct ca_msg_trust_entry {
	uint32_t len;
	char pem[CA_MSG_TRUST_MAX + 1]; /* tail: len bytes; the receiver adds the NUL */
};
struct ca_msg_trust_end {
	uint32_t rc; /* OK or FAILED */
	uint32_t count;
};
struct ca_msg_status_get {
	char serial[CERTS_SERIAL_HEX_MAX + 1]; /* lowercase hex */
};
struct ca_msg_status {
	uint32_t rc;                   /* OK, NOTFOUND, FAILED */
	uint32_t issued_here, revoked; /* 0 or 1 */
	int64_t revoked_at;
	char reason[CA_DETAIL_MAX];
};
struct ca_msg_approval_get {
	uint8_t x[32], y[32];
};
struct ca_msg_approval {
	uint32_t rc;      /* OK or FAILED */
	uint32_t trusted; /* 0 or 1 */
};
/* A TPM structure as the TPM marshalled it: a TPM2B_PUBLIC here, which
 * the parent reads itself with tss2-mu (evidence_parse_public) and whose
 * Name it computes, never taking the child's reading of it. */
struct ca_msg_public {
	uint32_t len; /* 0: none */
	uint8_t data[CA_PUBLIC_MAX];
};
/* A TPMS_ATTEST and its TPMT_SIGNATURE, as the TPM returned them. */
struct ca_msg_signed {
	uint32_t attest_len;
	uint8_t attest[CA_ATTEST_MAX];
	uint32_t sig_len;
	uint8_t sig[CA_SIG_MAX];
};
/* A challenge: the parent reads ek and key, computes key's Name, draws the
 * secret and makes the credential (TPM2_MakeCredential) itself. */
struct ca_msg_challenge_add {
	uint32_t kind;                /* enum ca_kind */
	char subject[CA_SUBJECT_MAX]; /* the host (ck) or the vTPM's UUID (ak) */
	char client[CA_CLIENT_MAX];   /* the client's network (IPv4 /24, IPv6 /48) */
	struct ca_msg_public ek;      /* the (v)EK the child checked against its certificate */
	struct ca_msg_public key;     /* the CK or AK to certify */
	/* ak: the vEK certificate the AK would be certified beneath, so that
	 * the parent refuses now what it would refuse at issue (a revoked or
	 * stale lineage, the vEK certificate's share of AK certificates
	 * taken); "" for ck, or to leave it to the issue */
	char vek_serial[CERTS_SERIAL_HEX_MAX + 1];
	uint32_t len;
	char request[CA_MSG_REQUEST_MAX + 1]; /* tail: the request's JSON */
};
#define CA_MSG_BLOB_MAX CA_BLOB_MAX
#define CA_MSG_ENC_MAX  CA_ENC_MAX
struct ca_msg_challenge_added {
	uint32_t rc; /* OK, FULL, LIMIT, REFUSED, CONFLICT (ak: the vEK certificate's
	              * share of AK certificates taken), FAILED */
	int64_t expires_in;
	char id[CA_ID_HEX + 1];
	char reason[CA_MSG_REASON_MAX];
	/* OK: the credential to send the client */
	uint32_t blob_len;
	uint8_t blob[CA_MSG_BLOB_MAX];
	uint32_t enc_len;
	uint8_t enc[CA_MSG_ENC_MAX];
};
/* The answer to a challenge: the parent compares SHA-256(secret) with
 * what it kept, and remembers the challenge's key (which it read at
 * CHALLENGE_ADD and recorded) for one issuance. */
struct ca_msg_challenge_take {
	char id[CA_ID_HEX + 1];
	uint32_t secret_len;
	uint8_t secret[CREDENTIAL_MAX_SECRET];
};
struct ca_msg_challenge_taken {
	uint32_t rc;   /* OK, NOTFOUND, USED, EXPIRED, WRONG, FAILED */
	uint32_t kind; /* enum ca_kind (OK) */
	char reason[CA_MSG_REASON_MAX];
	uint32_t len;
	char request[CA_MSG_REQUEST_MAX + 1]; /* tail: the stored request (OK) */
};
/* The key and the host EK are the permit's: those of the challenge just
 * taken. */
struct ca_msg_issue_ck {
	char id[CA_ID_HEX + 1]; /* the challenge just taken */
	char host[CERTS_NAME_MAX + 1];
};
/* The AK is the permit's; the TPM attributes, the vtpmd extension and the
 * lineage are those of vEK certificate vek_serial in the parent's own
 * records, whose key must be the EK the challenge's credential was made
 * for. */
struct ca_msg_issue_ak {
	char id[CA_ID_HEX + 1]; /* the challenge just taken */
	char vek_serial[CERTS_SERIAL_HEX_MAX + 1];
};
struct ca_msg_nonce_add {
	char client[CA_CLIENT_MAX]; /* the client's network, for the parent's debug log */
};
struct ca_msg_nonce_added {
	uint32_t rc; /* OK or FAILED */
	int64_t expires_in;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	char reason[CA_MSG_REASON_MAX];
};
/* The evidence itself, as the TPMs made it: the parent verifies it again
 * with the key of CK certificate ck_serial from its own records. */
struct ca_msg_issue_ek {
	uint32_t vek_type;  /* enum evidence_vek_type: the member of the set to certify */
	uint32_t whole_set; /* 1: and every other member, on the evidence made for vek_type,
	                     * the set's first: one ISSUED per member, in type order */
	struct ca_msg_public vek_set[EVIDENCE_VEK_TYPES]; /* by type; len 0: none */
	struct ca_msg_public sealed;                      /* the sealed object the CK certified */
	struct ca_msg_signed certify, quote;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];
	uint32_t pcr_mask; /* the quoted sha256 PCRs, and their values */
	uint8_t pcrs[TPM_PCRS][TPM_DIGEST_LEN];
	uint8_t approval_x[32], approval_y[32]; /* the sealed object's approval key */
	char ck_serial[CERTS_SERIAL_HEX_MAX + 1];
	char instance_uuid[CERTS_UUID_LEN + 1];
};
struct ca_msg_issued {
	uint32_t rc; /* OK, FAILED, REFUSED (CK: the host EK not admitted under that
	              * name, or a CK not as vtpmd makes it; AK: a vEK not issued here,
	              * or revoked; EK: evidence that does not verify); EK: NOTFOUND
	              * (no approved host configuration), UNKNOWN, USED, EXPIRED (the
	              * nonce), CONFLICT (the identity; AK: the vEK certificate's
	              * share of valid AK certificates is taken) */
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	char host_config[CERTS_HOST_CONFIG_MAX + 1]; /* EK */
	char reason[CA_MSG_REASON_MAX];
	uint32_t len;
	uint8_t der[CA_CERT_MAX]; /* tail */
};
struct ca_msg_audit {
	uint32_t action;  /* enum ca_msg_action */
	uint32_t outcome; /* enum ca_msg_outcome */
	char detail[CA_DETAIL_MAX];
};
struct ca_msg_audited {
	uint32_t rc; /* OK or FAILED */
};
struct ca_msg_crl_get {
	uint32_t role; /* CA_ROLE_PRIVACY or CA_ROLE_VIRTUALIZATION */
};
/* A CRL larger than one message travels in parts, one CRL message each,
 * in order and back to back: every part names the whole CRL's size and
 * where it starts (the first at 0, each next where the last ended), until
 * the parts add up to total. FAILED: one message, total 0. */
struct ca_msg_crl {
	uint32_t rc; /* OK or FAILED */
	char reason[CA_MSG_REASON_MAX];
	uint32_t total;  /* the DER CRL's size, at most CA_CRL_MAX */
	uint32_t offset; /* where this part starts in it */
	uint32_t len;
	uint8_t der[CA_MSG_CRL_MAX]; /* tail: this part */
};

struct ca_msg_metrics_get {
	uint32_t zero; /* 0: a payload of fixed size */
};
/* What only the parent knows (docs/ca-api.md, "Metrics"). */
struct ca_msg_metrics {
	uint64_t issued[CA_ISSUED_KINDS]; /* certificates issued since serve started */
	uint64_t children;                /* network children started since then */
	int64_t challenges_open;          /* unanswered, unexpired; -1: the records failed */
	int64_t nonces_redeemed;          /* vEK evidence nonces kept against replay; -1 as above */
};

struct ca_msg {
	struct ca_msg_hdr hdr;
	union {
		struct ca_msg_hello hello;
		struct ca_msg_ready ready;
		struct ca_msg_trust_list trust_list;
		struct ca_msg_trust_entry trust_entry;
		struct ca_msg_trust_end trust_end;
		struct ca_msg_status_get status_get;
		struct ca_msg_status status;
		struct ca_msg_approval_get approval_get;
		struct ca_msg_approval approval;
		struct ca_msg_challenge_add challenge_add;
		struct ca_msg_challenge_added challenge_added;
		struct ca_msg_challenge_take challenge_take;
		struct ca_msg_challenge_taken challenge_taken;
		struct ca_msg_issue_ck issue_ck;
		struct ca_msg_issue_ak issue_ak;
		struct ca_msg_issue_ek issue_ek;
		struct ca_msg_issued issued;
		struct ca_msg_audit audit;
		struct ca_msg_audited audited;
		struct ca_msg_nonce_add nonce_add;
		struct ca_msg_nonce_added nonce_added;
		struct ca_msg_crl_get crl_get;
		struct ca_msg_crl crl;
		struct ca_msg_metrics_get metrics_get;
		struct ca_msg_metrics metrics;
	} u;
};

/* ca_verify.c: what the parent checks again itself before it signs. */
/* A challenge's (v)EK and key (CK or AK), read from their TPM2B_PUBLIC
 * ek_pub and key_pub: key filled (its Name computed here), ek_key the
 * SHA-256 of the EK's SubjectPublicKeyInfo. 0, or -1 with why (ERR_REFUSED). */
int ca_verify_keys(const struct ca_msg_public *ek_pub, const struct ca_msg_public *key_pub,
    struct evidence_public *key, uint8_t ek_key[static CERTS_DIGEST_LEN], struct err *why);
/* Whether (x, y) is a trusted approval key: 0, or -1 with why (ERR_REFUSED:
 * not trusted; ERR_FAILED: the records failed). */
int ca_verify_approval_key(
    struct ca_db *db, const uint8_t x[static 32], const uint8_t y[static 32], struct err *why);
/* What a vTPM's evidence establishes, once verified. */
struct ca_ek_verified {
	struct ca_issued ck; /* the CK certificate's record: its subject is the host */
	struct certs_ref ck_ref;
	uint8_t ck_digest[CERTS_DIGEST_LEN];
	uint8_t policy[TPM_DIGEST_LEN]; /* PolicyPCR of the quoted PCRs */
	uint8_t sealed_name[EVIDENCE_NAME_MAX];
	size_t sealed_name_len;
	struct ca_msg_key vek;                     /* the member certified */
	struct ca_msg_key set[EVIDENCE_VEK_TYPES]; /* type 0: none */
	uint8_t set_digest[32];
};
/* Verifies ISSUE_EK's evidence (see ca_verify.c) at now: 0 with v filled,
 * or -1 with why (ERR_REFUSED with the reason, or ERR_FAILED). */
int ca_verify_ek(struct ca_db *db, const struct ca_msg_issue_ek *q, int64_t now,
    struct ca_ek_verified *v, struct err *why);

/* ca_msg.c */
/* Zeroes m and sets its type. */
void ca_msg_init(struct ca_msg *m, enum ca_msg_type type);
/* The bytes m takes on the wire (header included), from its type's
 * layout and its tail's len; 0 when the type is unknown or len too large. */
size_t ca_msg_size(const struct ca_msg *m);
/* Checks a received record of n bytes, read into m (see above). 0, or -1
 * with err (ERR_INVALID) saying what is wrong. */
int ca_msg_check(const struct ca_msg *m, size_t n, enum ca_msg_to to, struct err *err);
/* Sends m (its header's len set from ca_msg_size) on fd, waiting up to
 * CA_MSG_SEND_MS for room when fd is non-blocking. 0, or -1 with err. */
int ca_msg_send(int fd, struct ca_msg *m, struct err *err);
/* Receives one message into m and checks it. 1, 0 at end of file (the peer
 * is gone), or -1 with err (I/O, or ERR_INVALID: malformed). */
int ca_msg_recv(int fd, struct ca_msg *m, enum ca_msg_to to, struct err *err);
const char *ca_msg_type_name(uint32_t type);
/* Whether s is text a message may carry: NUL-terminated inside its size
 * bytes, printable ASCII before the NUL (the child checks what it would
 * send, so that a request's oddity never makes it send a malformed
 * message). */
bool ca_msg_text_ok(const char *s, size_t size);
const char *ca_msg_action_name(enum ca_msg_action action);

#endif /* VTPM_CA_MSG_H */
