/*
 * vtpm-ca: the Privacy CA and the Virtualization CA (docs/ca-api.md).
 *
 * This header is the map of src/ca/: the prototypes of its files, grouped
 * by the file that defines them (main.c holds the command table).
 * `vtpm-ca serve` runs as two processes (docs/ca-api.md, "Processes"): a
 * parent that holds the database and the CA keys (ca_cmd_serve.c,
 * ca_parent.c, ca_db.c) and a sandboxed network child that parses every
 * request (ca_child.c, ca_api.c, ca_parse.c, ca_privacy.c, ca_virt.c,
 * ca_trust.c, ca_issue.c) and asks the parent for records, challenges and
 * certificates (ca_ask.c) in the messages of ca_msg.h. It uses
 * src/tpm/ (certs.h: X.509; credential.h: TPM2_MakeCredential; evidence.h:
 * TPM attestation structures and signatures; pcrpolicy.c: policy digests;
 * approval.c) and src/common/ (api.c: the HTTP/JSON server). SQLite's
 * types stay in ca_db.c,
 * OpenSSL's in ca_crypto.c and ca_tlsmake.c (and the modules above), jansson's in the files
 * that read or write JSON.
 *
 * Conventions: functions return 0 or -1 and, when they fail, fill the
 * caller's struct err (docs/architecture.md, "Errors"); ca_db.c's outcomes
 * (no such record, used, expired, …) are kinds of it, listed below.
 * ca_msg.h's answers carry an enum ca_msg_rc. Commands return vtpmd's exit
 * statuses: EXIT_OK, EXIT_RUNTIME (refused, or failed), EXIT_USAGE.
 */
#ifndef VTPM_CA_H
#define VTPM_CA_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define CA_WHY_MAX     256
#define CA_CERT_MAX    8192 /* one DER certificate from a request */
#define CA_CHAIN_MAX   4    /* intermediates a request may carry */
#define CA_PUBLIC_MAX  1024 /* a TPM2B_PUBLIC */
#define CA_ATTEST_MAX  2048 /* a TPMS_ATTEST */
#define CA_SIG_MAX     1024 /* a TPMT_SIGNATURE */
#define CA_ID_BYTES    16   /* a challenge id: 16 random bytes, in hex */
#define CA_ID_HEX      (2 * CA_ID_BYTES)
#define CA_SECRET_LEN  32 /* the credential a challenge encrypts */
#define CA_BLOB_MAX    256 /* a credential: TPM2B_ID_OBJECT */
#define CA_ENC_MAX     512 /* its TPM2B_ENCRYPTED_SECRET (RSA-2048: 258 bytes) */
#define CA_SUBJECT_MAX 256
#define CA_DETAIL_MAX  512
#define CA_PENDING_MAX 10000 /* challenges open at once */
#define CA_CLIENT_MAX  64    /* a client's address as text */

enum ca_role { CA_ROLE_PRIVACY = 1, CA_ROLE_VIRTUALIZATION = 2, CA_ROLE_BOTH = 3 };
enum ca_kind { CA_KIND_CK = 1, CA_KIND_AK = 2 };

/* What the trust store holds (`vtpm-ca trust add`). */
enum ca_trust_kind {
	CA_TRUST_MANUFACTURER,   /* TPM manufacturer roots: host EK certificates */
	CA_TRUST_VIRTUALIZATION, /* Virtualization CAs: vEK certificates */
	CA_TRUST_PRIVACY,        /* Privacy CAs: host CK certificates */
	CA_TRUST_APPROVAL_KEY,   /* approval keys of host configurations */
};
#define CA_TRUST_KINDS 4

/* ca.c: what every command shares. */
int ca_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ca_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The CA files beside the database: DIR/ca-root.pem, ca-root.key,
 * ca-privacy.{pem,key}, ca-virtualization.{pem,key}, where DIR is the
 * database's directory. which: "root", "privacy", "virtualization";
 * ext: "pem" or "key". */
int ca_file(const char *db, const char *which, const char *ext, char *out, size_t len);
const char *ca_role_name(enum ca_role role);
int ca_role_parse(const char *s, enum ca_role *role);
/* "YYYY-MM-DDTHH:MM:SSZ" of t. */
void ca_time_format(int64_t t, char out[static 21]);

/* ca_crypto.c: the few primitives vtpm-ca needs beyond the modules. */
int ca_crypto_init(void); /* OpenSSL, its configuration read: 0 or -1 */
int ca_sha256(const uint8_t *a, size_t alen, uint8_t out[static 32]);
int ca_hmac_sha256(
    const uint8_t *key, size_t key_len, const uint8_t *a, size_t alen, uint8_t out[static 32]);
int ca_random(uint8_t *out, size_t len);
bool ca_equal(const uint8_t *a, const uint8_t *b, size_t len); /* constant time */
void ca_cleanse(void *p, size_t len);

/* ca_nonce.c: vEK evidence nonces that cost no record until used: the
 * expiry, random bytes and a MAC under key, which only the parent holds
 * (drawn at its first nonce, never written). make: 0, or -1 (ERR_FAILED).
 * check: 0 with *expires_at, or -1 with ERR_ABSENT (not made under key:
 * another CA's, a made-up one, or one from before the parent started),
 * ERR_TIMEOUT (at or after its expiry) or ERR_FAILED. */
#define CA_NONCE_KEY_LEN 32
int ca_nonce_make(const uint8_t key[static CA_NONCE_KEY_LEN], int64_t expires_at,
    uint8_t out[static EVIDENCE_VEK_NONCE_LEN], struct err *err);
int ca_nonce_check(const uint8_t key[static CA_NONCE_KEY_LEN],
    const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN], int64_t now, int64_t *expires_at,
    struct err *err);

/* ca_tlsmake.c: a lab's TLS root and server certificate (`init
 * --tls-name`). The root's key is never written: the root vouches for the
 * one server key made here. Files are created new (never overwritten); on
 * failure none is left. pin: SHA-256 of the server key's
 * SubjectPublicKeyInfo, what clients may pin. */
struct ca_tls_request {
	const char *const *names; /* DNS names or IP literals; names[0] is the CN */
	size_t n_names;
	const char *label; /* the root is "LABEL TLS root" */
	int64_t days;
	const char *root_path, *cert_path, *key_path;
};
int ca_tls_make(const struct ca_tls_request *rq, uint8_t pin[static 32], struct err *err);
bool ca_tls_name_valid(const char *name); /* a host name or an IP literal */

/*
 * ca_parse.c: request bodies (untrusted JSON) decoded into fixed-size
 * structures, as pure functions (no I/O, nothing allocated survives a
 * call). On failure err names the offending field and the out-structure
 * is zeroed.
 */
struct ca_der {
	uint8_t der[CA_CERT_MAX];
	size_t len;
};
struct ca_challenge_req {
	enum ca_kind kind;
	struct ca_der ek_cert;
	struct ca_der chain[CA_CHAIN_MAX]; /* "ek_chain": intermediates, optional */
	size_t n_chain;
	uint8_t ek_public[CA_PUBLIC_MAX];
	size_t ek_public_len;
	uint8_t key_public[CA_PUBLIC_MAX];
	size_t key_public_len;
	char host[CERTS_NAME_MAX + 1]; /* ck only */
};
struct ca_certify_req {
	char id[CA_ID_HEX + 1];
	uint8_t secret[CREDENTIAL_MAX_SECRET];
	size_t secret_len;
};
struct ca_signed {
	uint8_t attest[CA_ATTEST_MAX];
	size_t attest_len;
	uint8_t signature[CA_SIG_MAX];
	size_t signature_len;
};
struct ca_ek_req {
	struct ca_der ck_cert;
	char instance_uuid[CERTS_UUID_LEN + 1]; /* lowercase */
	uint8_t vek_public[CA_PUBLIC_MAX];
	size_t vek_public_len;
	uint8_t sealed_public[CA_PUBLIC_MAX];
	size_t sealed_public_len;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN]; /* handed out by POST /v1/virtualization/nonce */
	/* The vTPM's other vEKs (TPM2B_PUBLIC): with vek_public, its vEK set */
	uint8_t other_veks[EVIDENCE_VEK_TYPES - 1][CA_PUBLIC_MAX];
	size_t other_veks_len[EVIDENCE_VEK_TYPES - 1];
	size_t n_other_veks;
	struct ca_signed certify, quote;
	/* whole_set: certify every vEK of the set on this one evidence, made
	 * for vek_public, the set's first member (RSA before ECC) */
	bool whole_set;
	uint32_t pcr_mask; /* the quote's sha256 PCRs */
	uint8_t pcrs[TPM_PCRS][TPM_DIGEST_LEN];
	struct approval_pub approval;
};
struct json_t;
int ca_parse_challenge(
    const struct json_t *body, struct ca_challenge_req *req, struct err *err);
int ca_parse_certify(
    const struct json_t *body, struct ca_certify_req *req, struct err *err);
int ca_parse_ek_request(
    const struct json_t *body, struct ca_ek_req *req, struct err *err);
/* "0=HEX,2=HEX,…" or a JSON object {"0": HEX, …} (text) of sha256 PCR
 * values. */
int ca_parse_pcr_values(const char *text, uint32_t *mask,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);
/* A serial number: 1 to CERTS_SERIAL_HEX_MAX hex digits, lowercased into
 * out without leading zeros ("0" for zero). */
int ca_parse_serial(const char *s, char out[static CERTS_SERIAL_HEX_MAX + 1]);

/*
 * ca_db.c: the records (SQLite, WAL): issued certificates, revocations,
 * the trust store, approved host configurations, challenges and the
 * audit trail. Times are seconds since the Unix epoch, passed in by the
 * caller. Text fields are copied out into fixed-size fields.
 *
 * Every function that can fail returns 0, or -1 with err (last, may be
 * NULL) filled. Kinds a caller may act on:
 *   ERR_ABSENT   no such record (a serial, a PolicyPCR digest, a challenge)
 *   ERR_EXISTS   a record with that key is there already
 *   ERR_REFUSED  a challenge answered before (taken once already)
 *   ERR_TIMEOUT  a challenge taken at or after its expiry
 *   ERR_BUSY     CA_PENDING_MAX challenges are open
 * and otherwise ERR_FAILED (SQLite failed: its message follows what was
 * being done; a lock still held after the busy timeout is one of these,
 * not ERR_BUSY), ERR_IO (SQLite met the file system: I/O, disk full,
 * permissions), ERR_CORRUPT (a stored record cannot be decoded) or
 * ERR_INVALID (a constraint other than a key; ca_db_open: not a vtpm-ca
 * database of this schema version).
 * The listings call fn for each record; fn returns 0 to go on.
 */
#define CA_DB_SCHEMA_VERSION 1
const char *ca_trust_name(enum ca_trust_kind kind); /* "manufacturer", … */
int ca_trust_parse(const char *s, enum ca_trust_kind *kind);
struct ca_db;
/* create: make the file and the schema (it must not exist: ERR_EXISTS);
 * else open an existing database (ERR_ABSENT when there is none) of this
 * schema version. NULL with err when it fails. */
struct ca_db *ca_db_open(const char *path, bool create, struct err *err);
void ca_db_close(struct ca_db *db);
/* A transaction around several calls below, whose own transactions become
 * savepoints in it: all they write is kept, or none (a vTPM's whole set
 * of EK certificates). end: commit (commit true) or roll back; 0, or -1
 * when the commit failed (then rolled back) or none is open. */
int ca_db_begin(struct ca_db *db, struct err *err);
int ca_db_end(struct ca_db *db, bool commit, struct err *err);

struct ca_issued {
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	char role[16]; /* "privacy" or "virtualization" */
	char kind[8];  /* "ck", "ak", "ek" */
	char subject[CA_SUBJECT_MAX];
	char detail[CA_DETAIL_MAX]; /* host configuration, host EK, … */
	int64_t issued_at, not_after;
	/* its lineage (issue #11, item 5): the serials of the CK's and, for an
	 * AK, the vEK's certificates it descends from; "" when none */
	char parent_ck[CERTS_SERIAL_HEX_MAX + 1];
	char parent_vek[CERTS_SERIAL_HEX_MAX + 1];
	const char *certificate; /* PEM; only valid during a listing callback */
	/* from the revocations */
	bool revoked;
	int64_t revoked_at;
	char reason[CA_DETAIL_MAX];
};
/* The certificate and its lineage (when parent_ck is set), in one
 * transaction. ERR_EXISTS: the serial is recorded already. */
int ca_db_issued_add(
    struct ca_db *db, const struct ca_issued *rec, const char *pem, struct err *err);
int ca_db_issued_list(struct ca_db *db, int (*fn)(void *ctx, const struct ca_issued *rec),
    void *ctx, struct err *err);
/* The certificate issued here with serial: its record (revoked and reason
 * from the revocations; certificate NULL) and its DER, malloc'd into *der.
 * 0, or -1 with err (ERR_ABSENT: not issued here). */
/* The AK certificates issued here beneath vEK certificate vek_serial
 * that are valid at now (neither revoked nor expired), oldest first:
 * fn(ctx, serial, DER) for each until it returns non-zero. 0, or -1. */
int ca_db_ak_valid(struct ca_db *db, const char *vek_serial, int64_t now,
    int (*fn)(void *ctx, const char *serial, const uint8_t *der, size_t len), void *ctx,
    struct err *err);
int ca_db_issued_get(struct ca_db *db, const char *serial, struct ca_issued *out, uint8_t **der,
    size_t *der_len, struct err *err);

/* Revocations: of a certificate issued here, or (foreign) of another CA's
 * (a host EK, a remote Privacy CA's CK). */
struct ca_status {
	bool issued_here, revoked;
	int64_t revoked_at;
	char reason[CA_DETAIL_MAX];
};
/* In one transaction: the revocation, then those of every certificate
 * issued here beneath it (by their lineage: a CK's vEK and AK
 * certificates, a vEK's AK certificates), each with a reason naming the
 * ancestor ("CK certificate SERIAL revoked: REASON"), and an audit row
 * for each ("revoke", "done" or "cascaded"). ERR_ABSENT: not issued here
 * (and not foreign); ERR_EXISTS: revoked already. */
int ca_db_revoke(struct ca_db *db, const char *serial, const char *reason, int64_t now,
    bool foreign, struct err *err);
/* The same inside a transaction the caller opened (BEGIN IMMEDIATE) and
 * commits or rolls back: for a revocation that is part of a larger change
 * (a CK rotated away), so that it cascades alike. */
int ca_db_revoke_tx(struct ca_db *db, const char *serial, const char *reason, int64_t now,
    bool foreign, struct err *err);
/* The next CRL of role ("privacy", "virtualization", "root"): its number
 * (the last one plus one, recorded) and the revocations of the
 * certificates the role issued that expire at expired_before or later
 * (*entries malloc'd, *n of them; none for the root, which issues no
 * certificate recorded here). The records themselves are kept. */
int ca_db_crl(struct ca_db *db, const char *role, int64_t expired_before, uint64_t *number,
    struct certs_crl_entry **entries, size_t *n, struct err *err);
/* 0 with out filled when the serial was issued here or revoked; else
 * ERR_ABSENT. */
int ca_db_status(struct ca_db *db, const char *serial, struct ca_status *out, struct err *err);

struct ca_trust {
	int64_t id;
	enum ca_trust_kind kind;
	char name[CA_SUBJECT_MAX];
	char fingerprint[65]; /* SHA-256 of the first certificate's DER, or of the key */
	int64_t added_at;
	const char *data; /* PEM certificates, or "X,Y" (hex) of an approval key;
	                   * only valid during a listing callback */
};
/* ERR_EXISTS: an entry of this kind has this fingerprint already. */
int ca_db_trust_add(struct ca_db *db, enum ca_trust_kind kind, const char *name,
    const char *fingerprint, const char *data, int64_t now, struct err *err);
/* Every entry, or those of one kind (kind >= 0). */
int ca_db_trust_list(struct ca_db *db, int kind, int (*fn)(void *ctx, const struct ca_trust *t),
    void *ctx, struct err *err);

struct ca_host_config {
	char id[CERTS_HOST_CONFIG_MAX + 1];
	uint32_t mask; /* sha256 PCRs */
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	uint8_t policy[TPM_DIGEST_LEN]; /* PolicyPCR digest of the values */
	int64_t approved_at;
};
/* ERR_EXISTS: its id or its PCR values (its policy) are approved already. */
int ca_db_host_config_add(struct ca_db *db, const struct ca_host_config *hc, struct err *err);
/* ERR_ABSENT: no approved configuration has this PolicyPCR digest. */
int ca_db_host_config_find(struct ca_db *db, const uint8_t policy[TPM_DIGEST_LEN],
    struct ca_host_config *hc, struct err *err);
int ca_db_host_config_list(struct ca_db *db, int (*fn)(void *ctx, const struct ca_host_config *hc),
    void *ctx, struct err *err);

/* Challenges: stored with the SHA-256 of their secret only, the EK they
 * were made for and the client network that asked (docs/ca-api.md,
 * "Limits"). add first purges the challenges expired more than
 * CA_DB_CHALLENGE_GRACE seconds ago, then refuses, nothing recorded:
 * ERR_REFUSED when the client holds lim->per_client open challenges, or
 * lim->per_ek for this EK; ERR_BUSY when lim->total are open in all;
 * ERR_EXISTS when the id is taken. take marks the challenge used whatever
 * its state, so it is answered at most once: 0 with *request (malloc'd)
 * and hash, or -1 with ERR_ABSENT (unknown), ERR_REFUSED (used before) or
 * ERR_TIMEOUT (at or after expires_at), *request NULL. */
#define CA_DB_CHALLENGE_GRACE 60
struct ca_challenge_rec {
	const char *id;
	enum ca_kind kind;
	const char *request; /* the parsed fields, as JSON */
	const uint8_t *hash; /* 32 bytes */
	const char *ek_key;  /* hex SHA-256 of the (v)EK's SubjectPublicKeyInfo */
	const char *client;  /* the client's network: its IPv4 /24 or IPv6 /48 */
	int64_t now, expires_at;
	const uint8_t *key_public; /* the key's TPM2B_PUBLIC, as the parent read it */
	size_t key_public_len;
};
/* A challenge taken: what ca_db_challenge_add recorded. */
struct ca_challenge_taken {
	enum ca_kind kind;
	char *request; /* malloc'd */
	uint8_t hash[32];
	char ek_key[2 * CERTS_DIGEST_LEN + 1];
	uint8_t key_public[CA_PUBLIC_MAX];
	size_t key_public_len;
};
struct ca_challenge_limits {
	int64_t total;      /* open challenges in all (CA_PENDING_MAX) */
	int64_t per_client; /* held by one client network (IPv4 /24, IPv6 /48) */
	int64_t per_ek;     /* for one EK, asked from one client network */
};
#define CA_PENDING_PER_CLIENT 64
#define CA_PENDING_PER_EK     4
#define CA_AK_PER_VEK         16 /* valid AK certificates beneath one vEK certificate */
int ca_db_challenge_add(struct ca_db *db, const struct ca_challenge_rec *c,
    const struct ca_challenge_limits *lim, struct err *err);
/* Deletes the challenges expired more than CA_DB_CHALLENGE_GRACE seconds
 * before now (serve's timer; add does it too): the count, or -1. */
int64_t ca_db_challenges_purge(struct ca_db *db, int64_t now, struct err *err);
int ca_db_challenge_take(
    struct ca_db *db, const char *id, int64_t now, struct ca_challenge_taken *out, struct err *err);

/*
 * Admitted hosts (`vtpm-ca host`): the host EKs the Privacy CA issues CK
 * certificates to, each under exactly one name. ek_key is the hex SHA-256
 * of the EK's SubjectPublicKeyInfo (as the CK certificate's host-key
 * extension names it). add: ERR_EXISTS naming what is taken (the name, or
 * the EK under another name). remove and find: ERR_ABSENT.
 */
#define CA_EK_KEY_HEX 64
struct ca_host {
	char name[CERTS_NAME_MAX + 1];
	char ek_key[CA_EK_KEY_HEX + 1];
	char ck_serial[CERTS_SERIAL_HEX_MAX + 1]; /* the CK certificate issued last, or "" */
	int64_t added_at;
	const char *ek_certificate; /* PEM ("" when admitted by the lab switch); only
	                             * valid during a listing callback */
	bool has_approval;          /* false: admitted without an approval key (lab) */
	struct approval_pub approval; /* the CK's authPolicy is its PolicyAuthorize */
};
/* approval: the host's approval key, or NULL (its CK's policy is then not
 * checked: `host add --no-approval-key`, the lab switch). */
int ca_db_host_add(struct ca_db *db, const char *name, const char *ek_key, const char *pem,
    const struct approval_pub *approval, int64_t now, struct err *err);
/* Removes the host and, in the same transaction, revokes (reason "host
 * removed", with the certificates beneath) every CK certificate of its EK
 * not revoked yet; the last of them into revoked ("" when none). */
int ca_db_host_remove(struct ca_db *db, const char *name, int64_t now, struct ca_host *was,
    char revoked[static CERTS_SERIAL_HEX_MAX + 1], struct err *err);
int ca_db_host_list(
    struct ca_db *db, int (*fn)(void *ctx, const struct ca_host *h), void *ctx, struct err *err);
/* The host admitted with this EK (out->ek_certificate NULL). */
int ca_db_host_find(struct ca_db *db, const char *ek_key, struct ca_host *out, struct err *err);
/* Whether the EK may have a CK certificate for name: 0 when it is
 * admitted under that name, or when admit_any is set and neither is
 * admitted (*unknown then true); else ERR_REFUSED saying why (an EK not
 * admitted, or admitted under another name, a name of another EK). */
int ca_db_host_check(struct ca_db *db, const char *name, const char *ek_key, bool admit_any,
    bool *unknown, struct err *err);
/* Records a CK certificate for host and its EK, in one transaction with
 * the revocation (reason "superseded", through ca_db_revoke) of every CK
 * certificate issued before for that EK, under any name, and of the one
 * the host had; the last revoked is copied to superseded ("" when none).
 * The host must be admitted with this EK (ERR_REFUSED naming why not),
 * unless admit is set and neither the name nor the EK is admitted: then
 * it is admitted here (the lab switch). */
int ca_db_ck_record(struct ca_db *db, const struct ca_issued *rec, const char *pem,
    const char *ek_key, bool admit, char superseded[static CERTS_SERIAL_HEX_MAX + 1],
    struct err *err);
/* Whether the CK certificate ck (its record) still speaks for its host at
 * now: a CK's, not revoked, not expired, a host admitted under its
 * subject with the EK it was issued for, and that host's current CK
 * certificate. 0, or -1 with err (ERR_REFUSED naming why not: revoked,
 * expired, the host removed, renamed, re-admitted with another EK, or
 * enrolled again). Vouched for before each vEK and AK certificate. */
int ca_db_ck_usable(struct ca_db *db, const struct ca_issued *ck, int64_t now, struct err *err);
/* A vEK evidence nonce redeemed (ca_nonce_check passed it): recorded as
 * its SHA-256 until expires_at (and CA_DB_NONCE_GRACE after), so that it
 * is redeemed once. Nonces handed out are not recorded (ca_nonce.c);
 * redeemed ones past their expiry are forgotten here. 0, or -1 with
 * ERR_REFUSED (redeemed before: a replay) or a failure of the records. */
int ca_db_nonce_take(struct ca_db *db, const uint8_t hash[static 32], int64_t expires_at,
    int64_t now, struct err *err);
/* GET /metrics: open challenges, and redeemed nonces still kept. */
int ca_db_open_counts(
    struct ca_db *db, int64_t now, int64_t *challenges, int64_t *nonces, struct err *err);

/* One vTPM's identity as EK certificates bind it: the Name of its sealed
 * state-key object, its UUID, and per key type the one vEK (SHA-256 of
 * its SubjectPublicKeyInfo). */
struct ca_vtpm_identity {
	char sealed_name[2 * EVIDENCE_NAME_MAX + 1]; /* hex */
	char instance_uuid[CERTS_UUID_LEN + 1];
	const char *key_type;               /* "rsa2048" or "ecc-p256" */
	char vek[2 * CERTS_DIGEST_LEN + 1]; /* hex */
	/* The vTPM's whole vEK set, as the evidence names it: by enum
	 * evidence_vek_type, each vEK's digest as vek, or "" for none. */
	char vek_set[EVIDENCE_VEK_TYPES][2 * CERTS_DIGEST_LEN + 1];
};
/* Records id, or finds it recorded already (the same vEK certified again
 * for the same sealed object and UUID): 0. -1 with ERR_REFUSED, the
 * message naming the conflict, when the sealed object is bound to another
 * UUID or to another vEK of that type, the UUID to another sealed object,
 * or the vEK to another vTPM; nothing is recorded then. The first binding
 * of a sealed object records its vEK set and closes it: a later request
 * that names another set (a vEK added or changed, of any type) is
 * refused alike. */
int ca_db_vtpm_bind(
    struct ca_db *db, const struct ca_vtpm_identity *id, int64_t now, struct err *err);

struct ca_audit {
	int64_t id, time;
	char action[64];
	char outcome[32];
	char detail[CA_DETAIL_MAX];
};
int ca_db_audit(struct ca_db *db, int64_t now, const char *action, const char *outcome,
    const char *detail, struct err *err);
int ca_db_audit_list(
    struct ca_db *db, int (*fn)(void *ctx, const struct ca_audit *a), void *ctx, struct err *err);

/* ca_ask.c: the network child's questions to the parent, one function per
 * request of ca_msg.h. A broken channel or a malformed answer ends the
 * child (the parent holds every state and starts another). */
struct ca_msg;
struct ca_msg_key;
struct ca_link {
	int fd;             /* the channel to the parent */
	struct ca_msg *msg; /* the message being exchanged */
};
/* fn(ctx, pem) for each entry of a kind of certificates (its PEM text);
 * fn returns 0 to go on. 0, or -1 with err when the records failed. */
int ca_ask_trust(struct ca_link *l, enum ca_trust_kind kind, int (*fn)(void *ctx, const char *pem),
    void *ctx, struct err *err);
/* 0 with out filled, or -1 with err: ERR_ABSENT (not issued or revoked
 * here), ERR_FAILED (the parent's records failed). */
int ca_ask_status(struct ca_link *l, const char *serial, struct ca_status *out, struct err *err);
/* Whether pub is a trusted approval key: 1, 0, -1. */
int ca_ask_approval(struct ca_link *l, const struct approval_pub *pub);
/* What the parent answers about a challenge or a certificate (enum
 * ca_msg_rc in rc); reason when it failed. */
struct ca_answer {
	int rc;
	char reason[CA_WHY_MAX];
	char id[CA_ID_HEX + 1];                      /* challenge added */
	int64_t expires_in;                          /* challenge or nonce added */
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];       /* nonce added */
	enum ca_kind kind;                           /* challenge taken */
	char *request;                               /* challenge taken: malloc'd */
	char serial[CERTS_SERIAL_HEX_MAX + 1];       /* issued */
	char host_config[CERTS_HOST_CONFIG_MAX + 1]; /* issued: EK */
	uint8_t *der;                                /* issued: malloc'd */
	size_t der_len;
	uint8_t blob[CA_BLOB_MAX]; /* challenge added: the credential the parent made */
	size_t blob_len;
	uint8_t enc[CA_ENC_MAX];
	size_t enc_len;
};
void ca_answer_clear(struct ca_answer *a);
/* Records a challenge: what it is for (the host, or the vTPM's UUID), the
 * (v)EK and the key (TPM2B_PUBLIC, checked), the client that asked and the
 * request's parsed fields to check again at certify. The parent draws the
 * secret and makes the credential: a->blob and a->enc. */
struct ca_challenge_ask {
	enum ca_kind kind;
	const char *client; /* ca_server.client */
	const char *subject;
	const char *request;
	const uint8_t *ek_public, *key_public;
	size_t ek_public_len, key_public_len;
	const char *vek_serial; /* ak: the vEK certificate's serial (hex); NULL for ck */
};
void ca_ask_challenge_add(struct ca_link *l, const struct ca_challenge_ask *q, struct ca_answer *a);
/* Takes a challenge (once) and has the parent compare the secret. */
void ca_ask_challenge_take(struct ca_link *l, const char *id, const uint8_t *secret,
    size_t secret_len, struct ca_answer *a);
/* Certificates. CK and AK: right after the challenge id was taken, for
 * its key; an AK beneath vEK certificate vek_serial, issued here. */
void ca_ask_issue_ck(struct ca_link *l, const char *id, const char *host, struct ca_answer *a);
void ca_ask_issue_ak(
    struct ca_link *l, const char *id, const char *vek_serial, struct ca_answer *a);
/* A vEK evidence nonce, made and recorded by the parent. */
void ca_ask_nonce_add(struct ca_link *l, const char *client, struct ca_answer *a);
/* An EK certificate for the member vek_type of the vTPM's vEK set, on
 * the evidence of req, which the parent verifies again with the key of
 * CK certificate ck_serial from its own records. */
struct ca_ek_issue {
	const struct ca_ek_req *req;
	const struct evidence_vek_set *set;
	enum evidence_vek_type vek_type;
	bool whole_set; /* certify every member: one ISSUED each (ca_ask_issued) */
	const char *ck_serial;
};
void ca_ask_issue_ek(struct ca_link *l, const struct ca_ek_issue *e, struct ca_answer *a);
/* The next certificate of an ISSUE_EK for a whole vEK set (after a first
 * answer OK): one more ISSUED into a. */
void ca_ask_issued(struct ca_link *l, struct ca_answer *a);
/* A fresh CRL of role (privacy or virtualization): a->der (DER), or a->rc
 * FAILED with a->reason. */
void ca_ask_crl(struct ca_link *l, enum ca_role role, struct ca_answer *a);
/* The parent's counts for GET /metrics. */
struct ca_msg_metrics;
void ca_ask_metrics(struct ca_link *l, struct ca_msg_metrics *out);
/* A refusal for the audit trail (action: enum ca_msg_action; failed: a
 * 5xx), written by the parent before this returns. detail is cut to
 * CA_DETAIL_MAX and made printable. */
void ca_ask_audit(struct ca_link *l, int action, bool failed, const char *detail);

/* ca_trust.c: judging certificates and keys against the trust store,
 * which the parent reads for every question. */
/* Whether leaf (with optional untrusted intermediates) chains, valid at
 * now, to a trusted entry of kind; with direct, leaf must be issued by
 * the first certificate of a trusted entry itself (a Virtualization or
 * Privacy CA, not some other CA under its root). 0, or -1 with err. */
int ca_trust_verify(struct ca_link *l, enum ca_trust_kind kind, const struct certs_der *leaf,
    const struct certs_der *chain, size_t n_chain, bool direct, int64_t now, struct err *err);
/* The revocation state of a certificate (DER): 0 good, 1 revoked (err
 * says so), -1 error. */
int ca_trust_revoked(struct ca_link *l, const uint8_t *der, size_t len, struct err *err);
/* The same for a serial (hex), such as a lineage names. */
int ca_trust_serial_revoked(struct ca_link *l, const char *serial, struct err *err);

/* ca_settings.c: vtpm-ca serve's settings. */
struct ca_settings {
	enum ca_role role;
	struct ca_challenge_limits limits; /* challenges_max, _per_client, _per_ek */
	bool admit_any_manufacturer_ek;    /* the lab switch (logged at every use) */
	char listen[80];       /* HOST:PORT */
	char tls_cert[1024];   /* HTTPS: PEM certificate chain, "" for plain HTTP */
	char tls_key[1024];    /* its PEM private key */
	int64_t challenge_ttl; /* seconds; 0: challenges expire at once (tests) */
	int64_t nonce_ttl;     /* seconds: a vEK evidence nonce's life (0: at once) */
	int64_t ak_per_vek;    /* valid AK certificates beneath one vEK certificate */
	int64_t validity_ck;   /* seconds; 0: no expiry (99991231235959Z) */
	int64_t validity_ak;
	int64_t validity_ek;
	/* revocation (issue #11, item 5): the base URL certificates name in
	 * their cRLDistributionPoints ("" none; BASE/v1/ROLE/crl), and how
	 * long a CRL is current (nextUpdate - thisUpdate, seconds) */
	char crl_url[200];
	int64_t crl_validity;
};
/* A CRL URL base: http:// or https://, printable, no space, no '?' or
 * '#'; 0 or -1. */
int ca_settings_crl_url_ok(const char *url);
void ca_settings_defaults(struct ca_settings *s);
/* Reads the JSON configuration file into s (see `vtpm-ca serve --help`). */
int ca_settings_load(const char *path, struct ca_settings *s, struct err *err);

/* ca_api.c: the routes, in the network child. */
#define CA_ROUTES 9 /* ca_api.c's route names, for GET /metrics */
struct ca_server {
	struct ca_link link;
	enum ca_role role;
	struct ca_der root, privacy_cert, virt_cert;
	char client[CA_CLIENT_MAX]; /* the request's client network (IPv4 /24, IPv6 /48) */
	/* GET /metrics: what this child answered (a child that ends takes
	 * them along: Prometheus sees a counter reset) */
	struct metrics_hist latency[CA_ROUTES]; /* by route */
	struct metrics_counts refusals;         /* answers of 4xx and 5xx, by reason */
};
void ca_api_init(struct ca_server *s);
/* The network a client's limits count under: an IPv4 address's /24
 * ("192.0.2.0/24"), an IPv6 address's /48 ("2001:db8:1::/48": what one
 * site, or one subscriber, is given), an IPv4-mapped IPv6 address as IPv4.
 * So an attacker holding a block of addresses is one client, not many. */
void ca_client_key(const char *peer, char out[static CA_CLIENT_MAX]);
struct api_response ca_api(void *ctx, const struct api_request *req);

/* ca_issue.c: what the roles' handlers share. What a route handler tells the dispatcher: a status,
 * and either a body (200) or an error and hint; detail goes to the audit trail. */
struct ca_reply {
	int status;
	struct json_t *body;
	char error[CA_WHY_MAX];
	char hint[CA_WHY_MAX];
	char detail[CA_DETAIL_MAX];
	const char *outcome; /* "issued", "challenged"; refusals: "refused" */
};
void ca_refuse(struct ca_reply *r, int status, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"certificate": PEM, "chain": [PEM…], "serial": HEX} for a DER
 * certificate issued by ca_cert under root. */
struct json_t *ca_issued_json(const uint8_t *der, size_t len, const struct ca_der *ca_cert,
    const struct ca_der *root, const char *serial);
/* The public key of a TPM2B_PUBLIC (RSA or ECC P-256), or NULL. */
struct certs_pkey *ca_tpm_pkey(const struct evidence_public *pub);
/* The same as the parent takes it: 0, or -1 when it is neither ECC P-256
 * nor RSA-2048. */
int ca_tpm_key(const struct evidence_public *pub, struct ca_msg_key *out);

/* ca_privacy.c: POST /v1/privacy/challenge and /v1/privacy/certify. */
void ca_privacy_challenge(struct ca_server *s, const struct json_t *body, struct ca_reply *r);
void ca_privacy_certify(struct ca_server *s, const struct json_t *body, struct ca_reply *r);

/* ca_virt.c: POST /v1/virtualization/ek-certificate. */
void ca_virt_ek_certificate(struct ca_server *s, const struct json_t *body, struct ca_reply *r);
void ca_virt_nonce(struct ca_server *s, const struct json_t *body, struct ca_reply *r);

/* ca_crl.c: the CRL of role ("privacy", "virtualization", "root") signed
 * by ca, current from now for validity seconds, into *der (malloc'd). */
int ca_crl_make(struct ca_db *db, const struct certs_ca *ca, const char *role, int64_t now,
    int64_t validity, uint8_t **der, size_t *len, struct err *err);

/* ca_cmd_trust.c: a trust entry from PEM text (the CA's certificate, then
 * those above it up to a self-signed root; the chain must verify now).
 * name NULL: the first certificate's subject. */
int ca_trust_add_pem(struct ca_db *db, enum ca_trust_kind kind, const char *name, const char *text,
    struct err *err);

/* ca_parent.c: the parent's side of ca_msg.h: it answers the child from
 * the records and the keys, and writes the audit rows of what it does. */
/* The kinds of certificates the parent counts as it issues them. */
enum ca_issued_kind { CA_ISSUED_CK, CA_ISSUED_AK, CA_ISSUED_EK, CA_ISSUED_KINDS };
struct ca_parent {
	struct ca_db *db;
	struct ca_settings cfg;
	struct certs_ca *privacy, *virt; /* the signing CAs of the roles served */
	struct ca_der root, privacy_cert, virt_cert;
	int fd;             /* the channel to the child */
	struct ca_msg *out; /* the answer being built */
	/* vEK evidence nonces' MAC key (ca_nonce.c): CA_NONCE_KEY_LEN bytes of
	 * locked memory (secret_alloc), drawn at the first nonce; NULL before */
	uint8_t *nonce_key;
	struct {            /* the challenge the child just took, for one issuance */
		bool valid;
		enum ca_kind kind;
		char id[CA_ID_HEX + 1];
		struct evidence_public key;       /* the key whose Name the parent computed */
		uint8_t ek_key[CERTS_DIGEST_LEN]; /* the (v)EK the credential was made for */
	} permit;
	/* GET /metrics: certificates issued by kind and network children
	 * started, since serve began */
	uint64_t issued[CA_ISSUED_KINDS];
	uint64_t children;
};
/* The child's first message. */
void ca_parent_hello(const struct ca_parent *p, struct ca_msg *m);
/* Answers one checked message from the child (ca_msg_check). 0, or -1
 * with err when the child broke the protocol or did not take the answer:
 * the caller ends it. */
int ca_parent_handle(struct ca_parent *p, const struct ca_msg *m, struct err *err);
/* A new child: no permit survives its predecessor. */
void ca_parent_reset(struct ca_parent *p, int fd);
/* An audit row of the parent's own (the child's ends, serve's start). */
void ca_parent_audit(struct ca_parent *p, const char *action, const char *outcome, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

/* ca_child.c: the network child (`vtpm-ca serve --network-child`): enters
 * its sandbox, reads HELLO on descriptor 3, answers READY, then serves the
 * listener on descriptor 4 until SIGTERM or its parent goes. root NULL:
 * no chroot or change of identity (started by a user other than root).
 * Returns an exit status. */
#define CA_CHILD_FD_PARENT   3
#define CA_CHILD_FD_LISTENER 4
int ca_child_main(
    const char *root, uid_t uid, gid_t gid, const char *tls_cert, const char *tls_key);

/* ca_spawn.c: the network child's start and end, from the parent. */
#define CA_CHILD_STOP_MS 2000 /* after SIGTERM, then SIGKILL */
struct ca_child_proc {
	bool confine; /* chroot to a fresh empty directory and become uid:gid */
	uid_t uid;
	gid_t gid;
	enum log_level log_level;
	pid_t pid;       /* -1: none */
	int fd;          /* the parent's end of the channel (non-blocking); -1: none */
	bool ready;      /* its READY came */
	int64_t started; /* mono_ms() */
	char root[64];   /* its empty root, until the child is in it */
	char tls_cert[PATH_MAX]; /* HTTPS: the absolute paths the child loads */
	char tls_key[PATH_MAX];  /* before its sandbox; "" for plain HTTP */
};
/* Starts a child on the listener (which stays the caller's). 0, or -1
 * with err. */
int ca_spawn(struct ca_child_proc *c, int listener, struct err *err);
/* The child's READY came: its root loses its name. */
void ca_spawn_confined(struct ca_child_proc *c);
/* Ends the child (SIGKILL when kill_it), reaps it, says how it ended in
 * how (may be NULL); returns its wait status. */
int ca_spawn_end(struct ca_child_proc *c, bool kill_it, char *how, size_t how_len);
/* SIGTERM, up to CA_CHILD_STOP_MS for it to exit, then ca_spawn_end. */
void ca_spawn_stop(struct ca_child_proc *c);

/* ca_sandbox.c: the network child's confinement (its allow-list on
 * src/common/sandbox.c): root NULL as above. 0, or -1 with err. */
int ca_sandbox_enter(const char *root, uid_t uid, gid_t gid, struct err *err);

/* One file per command. */
int ca_cmd_serve(int argc, char **argv);
int ca_cmd_init(int argc, char **argv);
int ca_cmd_trust(int argc, char **argv);
int ca_cmd_host(int argc, char **argv);
int ca_cmd_approve(int argc, char **argv);
int ca_cmd_list(int argc, char **argv);
int ca_cmd_revoke(int argc, char **argv);
int ca_cmd_cert(int argc, char **argv);
int ca_cmd_crl(int argc, char **argv);

#endif /* VTPM_CA_H */
