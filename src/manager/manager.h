/*
 * manager.h: the map of src/manager/, vtpmd the service: the one process
 * that talks to the host TPM (src/hwtpm/), keeps the instances' records,
 * seals and unseals their state keys under approved host configurations,
 * enrols the host and provisions vTPMs with the CAs, serves the control
 * API, and runs one sandboxed worker (src/instance/) per running vTPM.
 * Prototypes are grouped by the file that defines them.
 */
#ifndef VTPM_MANAGER_H
#define VTPM_MANAGER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/common.h"
#include "hwtpm/hwtpm.h"
#include "instance/instance.h"
#include "tpm/tpm.h"

/* config.c: vtpmd's configuration ("key = value" lines, '#' comments). */
struct config {
	char tcti[256];		/* host TPM, a tpm2-tss TCTI string */
	char state_dir[256];	/* instances, approvals, approval key */
	char run_dir[256];	/* worker sockets, pid files and log channels */
	char socket[256];	/* the API socket */
	char approval_public[256]; /* when set, vtpmd holds only the public key */
	char privacy_root[256];	   /* PEM roots CK certificates must chain to, or "" */
	char virt_root[256];	   /* PEM roots vEK certificates must chain to, or "" */
	char ca_tls_root[256];	   /* PEM roots the CAs' TLS certificates chain to, or "" */
	char ca_tls_pin[80];	   /* or "sha256:HEX" of the CAs' TLS key, or "" */
	struct pcr_selection pcrs; /* host PCRs (sha256) the state keys are bound to */
	uid_t worker_uid_base;	/* worker i runs as uid base+i (0: no sandbox) */
	gid_t socket_gid;	/* workers' sockets' group, mode 0660 (0: unset, 0600) */
	int ca_timeout_s;	/* the deadline of one request to a CA (caclient.c) */
	unsigned int nv_write_rate; /* a vTPM's NV-writing commands a second (0: unlimited) */
	enum log_level log_level;
};
/* A create waits for its worker (at most WORKER_READY_TIMEOUT_MS), then one CA
 * request per EK type: at most 45 s each keeps it within vtpmctl's 120 s. */
#define CONFIG_CA_TIMEOUT_DEFAULT 30
#define CONFIG_CA_TIMEOUT_MAX	  45
#define CONFIG_NV_WRITE_RATE_DEFAULT 20 /* docs/state.md, "Throttling" */
void config_defaults(struct config *cfg);
int config_load(const char *path, struct config *cfg, FILE *errors);
/* The checks beyond syntax (vtpmd -n, and every start): values that load,
 * files that exist, paths that fit. Returns the number of problems, each
 * reported on errors as FILE:LINE: key: reason. */
int config_check(const char *path, const struct config *cfg, bool starting, FILE *errors);
int config_parse_buffer(
    const char *name, const char *text, size_t len, struct config *cfg, FILE *errors);
int config_set(struct config *cfg, const char *key, const char *value, struct err *err);

/* registry.c: the instances the manager knows, as recorded on disk in
 * STATE/instances/NAME/instance.json. */
#define VTPM_NAME_MAX 64
enum vtpm_state { VTPM_STOPPED, VTPM_STARTING, VTPM_RUNNING, VTPM_FAILED, VTPM_REFUSED };
/* An operation in flight on an instance (ops.c), and who waits for it. */
enum vtpm_op {
	VTPM_OP_NONE,
	VTPM_OP_RESUME,	   /* a start at vtpmd's start; nobody waits */
	VTPM_OP_RESTART,   /* a restart after the worker ended; a failure retries */
	VTPM_OP_START,	   /* POST …/start or …/restart waits for the worker */
	VTPM_OP_CREATE,	   /* POST /v1/instances waits for the worker */
	VTPM_OP_PROVISION, /* POST /v1/instances waits for the worker, then the CA */
	VTPM_OP_APPROVED,  /* an approval waits for this start and its others */
	VTPM_OP_STOP,	   /* POST …/stop or …/restart, or a create that should not
			      run, waits for the worker to end */
};
/* Room for an instance's error: a refusal naming all 24 host PCRs, with
 * the advice on approving, fits whole. */
#define VTPM_ERROR_LEN 1536

/* An instance's commit budget as vtpmd keeps it (budget.c). */
struct budget {
	bool started;
	double tokens; /* a bucket of nv-write-rate a second */
	int64_t last_ms;
	bool held; /* its report waits for a token */
	unsigned long held_reports;
	pid_t pid;               /* the worker the violations are of */
	unsigned int violations; /* reports sent before an acknowledgement, or stale */
	bool acked;              /* that worker has had an acknowledgement: */
	uint64_t acked_gen;      /* of this generation, its last */
	bool stale_warned;       /* a stale report of that worker is logged */
};

struct vtpm {
	/* persistent */
	char name[VTPM_NAME_MAX + 1];
	char uuid[37];
	unsigned int tpm_version; /* 1 (TPM 1.2) or 2 (TPM 2.0) */
	bool desired_running;
	char created[32];
	unsigned int slot; /* sandbox uid = worker_uid_base + slot */
	/* who may connect to its sockets: owner_uid (mode 0600), and members
	 * of owner_gid when set (0660); -1: vtpmd's socket-group rule */
	long owner_uid, owner_gid;
	/* the sealed object's Name (hex) recorded at create, compared at
	 * every unseal; "" in a record older than it (learned at its next) */
	char sealed_name[2 * HWTPM_NAME_LEN + 1];
	/* runtime */
	enum vtpm_state state;
	/* a copy of that instance (the same UUID or sealed key): it does not
	 * start (registry_mark_copies); "" for none */
	char copy_of[VTPM_NAME_MAX + 1];
	int64_t born_ns; /* when its directory was made (birth, else change time) */
	pid_t pid;
	int pidfd;
	bool child;	   /* started by this manager (else adopted) */
	bool creating;	   /* its create has not finished (REGISTRY_CREATING exists) */
	bool unsaved;	   /* the record changed; lifecycle_start saves it while the worker starts */
	unsigned int restarts;
	unsigned int backoff_ms;
	int64_t restart_at_ms; /* when a scheduled restart is due, or 0 */
	int64_t started_at_ms;
	char error[VTPM_ERROR_LEN];
	/* a start under way (lifecycle_start until its worker serves or ends) */
	bool start_pending;
	int readyfd;	  /* its readiness pipe, until read (-1) */
	int64_t ready_by; /* when it must serve (monotonic ms) */
	bool ready_late;  /* killed for missing ready_by; its end is awaited */
	int64_t start_us; /* when it began, for the log */
	/* a stop under way (lifecycle_stop until its worker ends) */
	bool stopping;
	bool stop_killed;     /* SIGKILLed for missing stop_by; its end is awaited */
	int64_t stop_by;      /* when it must have ended (monotonic ms) */
	int stop_status;      /* VTPM_OP_STOP's answer once it ended: 200, or 201 */
	/* the operation in flight, and the API request answered when it ends */
	enum vtpm_op op;
	uint64_t ticket;
	struct provision *prov; /* VTPM_OP_PROVISION, once the worker serves */
	struct workerlog *log;	/* its worker's log channel (workerlog.c), or NULL */
	/* its worker's commit channel (fresh.c), and the report read last */
	int commit_fd;
	uint8_t commit_buf[COMMIT_REPORT_LEN];
	size_t commit_len;
	bool commit_want; /* a report waits for the next commit */
	int64_t commit_retry_at; /* adopted, its commit listener not there yet: when to try again */
	uint64_t commit_gen;
	uint8_t commit_digest[STORE_DIGEST_LEN];
	struct budget budget; /* its commit budget (budget.c) */
	/* reverts (snapshot.c): a generation the operator authorised a revert
	 * to, once (0: none), who did, and how (allow-revert, restore) */
	uint64_t revert_allowed;
	uid_t revert_by;
	const char *revert_how;
	/* the start under way accepted that revert (fresh.c), or the worker
	 * reported one by SET_STATEBLOB (VTCV, commit_revert): the generation
	 * recorded before, and the one the state is stored as */
	uint64_t revert_from, revert_next;
	bool commit_revert;
};
bool registry_valid_name(const char *name);
/* Marks, among the n instances of arr, every copy of another (the same
 * UUID or sealed object Name) with copy_of: the original is the one whose
 * worker runs, else the one created first, else the first by name. Marks
 * made before are recomputed (a delete may leave a copy alone). Returns
 * how many are copies. */
size_t registry_mark_copies(struct vtpm *const *arr, size_t n);
/* The refusal to start a copy, with the ways out, into err; -1. */
int registry_copy_refusal(const struct vtpm *v, struct err *err);
/* "UID" or "UID:GID" (numbers, neither -1) into *uid, *gid (-1 when not
 * given); 0, or -1 when s is anything else. */
int registry_parse_owner(const char *s, long *uid, long *gid);
const char *registry_state_name(enum vtpm_state st);
int registry_path(const struct config *cfg, const char *name, const char *leaf, char *buf,
    size_t len);
/* A create in progress: the instance directory holds this file until the
 * create has finished (provisioning included). */
#define REGISTRY_CREATING "creating"
/* An instance directory being deleted is first renamed to this prefix;
 * one being created is made under the other, then renamed into place. */
#define REGISTRY_DELETING ".deleting-"
#define REGISTRY_NEW	  ".new-"
int registry_load(const struct config *cfg, struct vtpm ***list, size_t *n);
int registry_save(const struct config *cfg, const struct vtpm *v);
struct vtpm *registry_new(const char *name, unsigned int tpm_version, unsigned int slot);

/* policy.c: approved host configurations (PCR policy digests signed with
 * the approval key), STATE/approvals.json. */
struct policy_entry {
	struct approval ap;
	uint32_t mask;
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	char approved_at[32];
};
struct policy {
	struct approval_pub pub;
	bool private_held; /* vtpmd holds the private approval key */
	char key_path[300];
	struct policy_entry *entries;
	size_t n;
	bool cached; /* host PCR values read before (policy_current_cached) */
	uint8_t cached_values[TPM_PCRS][TPM_DIGEST_LEN];
	uint8_t cached_digest[TPM_DIGEST_LEN];
};
struct manager;
int policy_load(struct manager *m, struct err *err);
int policy_current(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err);
int policy_current_cached(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err);
const struct policy_entry *policy_find(
    const struct policy *p, const uint8_t digest[TPM_DIGEST_LEN]);
void policy_explain(const struct policy *p, uint32_t mask,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], char *buf, size_t len);
int policy_add(struct manager *m, const struct approval *ap, uint32_t mask,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);
int policy_approve_current(struct manager *m, struct err *err);
int policy_auth_digest(const struct policy *p, uint8_t digest[TPM_DIGEST_LEN]);
const char *policy_approve_advice(const struct manager *m);
const struct policy_entry *policy_approved_now(
    struct manager *m, const char *what, struct err *err);
void policy_refused(const struct manager *m, const char *what, struct err *err);

/*
 * guesttpm.c: the manager's client of one of its own vTPMs, through the
 * worker's data socket, before the guest runs: the vTPM's EK (the TCG
 * templates, persisted at HWTPM_EK_*_HANDLE) and its certificates in the
 * TCG NV indices, platform-created and write-locked. The platform and
 * owner authorizations must still be empty. Returns 0, or -1 with err set.
 */
#define GUESTTPM_CHAIN_NV_FIRST 0x01c00100 /* EK certificate chain, one per index */
#define GUESTTPM_CHAIN_NV_LAST	0x01c001ff
struct guesttpm;
struct guesttpm_cert {
	const uint8_t *der;
	size_t len;
};
struct guesttpm *guesttpm_open(const struct endpoint *ep, struct err *err);
void guesttpm_close(struct guesttpm *g);
int guesttpm_create_ek(struct guesttpm *g, enum hwtpm_ek_kind kind, uint8_t **ek_public,
    size_t *len, struct err *err);
int guesttpm_write_ek_cert(struct guesttpm *g, enum hwtpm_ek_kind kind, const uint8_t *der,
    size_t der_len, struct err *err);
int guesttpm_write_chain(
    struct guesttpm *g, const struct guesttpm_cert *certs, size_t n, struct err *err);
int guesttpm_read_nv(
    struct guesttpm *g, uint32_t index, uint8_t **data, size_t *len, struct err *err);

/* caclient.c: one request to a CA, run by a short-lived child so that
 * the loop never waits on the network; an overall deadline per request. */
struct caclient;
#define CACLIENT_TLS_ROOT_MAX (64u << 10) /* ca-tls-root's most */
/* What the requests to the CAs took and how they failed (GET /metrics):
 * latency by request (the path's last segment, caclient_request_names),
 * failures by err_kind_name (unreachable, timeout, refused, untrusted). */
#define CACLIENT_REQUESTS 5
extern const char *const caclient_request_names[CACLIENT_REQUESTS];
struct caclient_stats {
	struct metrics_hist latency[CACLIENT_REQUESTS];
	struct metrics_counts errors;
};
/* instance: the vTPM the request is for, named to the CA in the
 * X-Vtpmd-Instance header (its log names it), or NULL; stats: where
 * caclient_result counts the request, or NULL. */
struct caclient *caclient_post(const char *url, const struct config *cfg, const char *path,
    const struct json_t *body, int timeout_s, const char *instance, struct caclient_stats *stats,
    struct err *err);
int caclient_fd(const struct caclient *c);
int64_t caclient_deadline(const struct caclient *c);
bool caclient_step(struct caclient *c);
int caclient_result(const struct caclient *c, struct json_t **reply, struct err *err);
void caclient_free(struct caclient *c);

/*
 * cacheck.c: what vtpmd accepts from a CA. A CK or EK certificate a CA
 * answers with is kept or written only once it chains to a root the
 * administrator gave vtpmd, certifies the key vtpmd sent, and is the
 * certificate vtpm-ca issues for it; a refusal is ERR_UNTRUSTED naming the
 * CA and the reason.
 */
#define CACHECK_ROOTS_MAX      8	 /* trust anchors per CA role */
#define CACHECK_CHAIN_MAX      8	 /* issuers of one certificate, root included */
#define CACHECK_ROOTS_FILE_MAX (1u << 16) /* a root file is a few certificates */
struct cacheck_roots {
	struct certs_der certs[CACHECK_ROOTS_MAX]; /* DER, owned */
	size_t n;
};
/* A certificate accepted, and the chain that verified it (its issuers up
 * to and with the root), DER, owned. */
struct cacheck_cert {
	uint8_t *der;
	size_t len;
	struct certs_der chain[CACHECK_CHAIN_MAX];
	size_t n_chain;
};
/* What an enrolment's CK certificate must be. */
struct cacheck_ck_want {
	const char *url;		   /* the Privacy CA, for messages */
	const struct cacheck_roots *roots; /* the Privacy CA's roots */
	const uint8_t *ck_public;	   /* the CK's TPM2B_PUBLIC, as sent */
	size_t ck_public_len;
	const char *host;	   /* the host name asked for */
	const uint8_t *ek_cert; /* the host EK certificate sent (DER) */
	size_t ek_cert_len;
};
/* What a vEK's certificate must be. */
struct cacheck_ek_want {
	const char *url;		   /* the Virtualization CA, for messages */
	const struct cacheck_roots *roots; /* the Virtualization CA's roots */
	const char *type;		   /* "rsa2048", "ecc-p256" */
	const uint8_t *vek_public;	   /* the vEK's TPM2B_PUBLIC, as sent */
	size_t vek_public_len;
	uint8_t ck_digest[CERTS_DIGEST_LEN]; /* this host's CK (certs_cert_key_digest) */
	const char *host;		     /* this host's name in its CK certificate */
	const char *uuid; /* the instance's */
};
int cacheck_roots_parse(const char *pem, size_t len, struct cacheck_roots *r, struct err *err);
int cacheck_roots_load(const char *path, struct cacheck_roots *r, struct err *err);
int cacheck_roots_copy(struct cacheck_roots *dst, const struct cacheck_roots *src);
char *cacheck_roots_pem(const struct cacheck_roots *r);
void cacheck_roots_describe(const struct cacheck_roots *r, char *buf, size_t len);
void cacheck_roots_clear(struct cacheck_roots *r);
int cacheck_ck(const struct json_t *reply, const struct cacheck_ck_want *want,
    struct cacheck_cert *out, struct err *err);
int cacheck_ek(const struct json_t *reply, const struct cacheck_ek_want *want,
    struct cacheck_cert *out, struct certs_virtual *virt, struct err *err);
char *cacheck_cert_pem(const struct cacheck_cert *c);
struct json_t *cacheck_chain_json(const struct cacheck_cert *c);
bool cacheck_same_chain(const struct cacheck_cert *a, const struct cacheck_cert *b);
void cacheck_cert_clear(struct cacheck_cert *c);

/* enrol.c: the host's enrolment with a Privacy CA: CK certificate, BK
 * certified by the CK; STATE/host/. An enrolment in flight (enrol_op) waits
 * for the CA between its host-TPM steps. */
struct enrolment {
	bool enrolled;
	char privacy_ca[256];	     /* base URL of the Privacy CA */
	char virtualization_ca[256]; /* base URL of the Virtualization CA */
	char host[65];		     /* the name in the CK certificate */
	char ek[16];		     /* the host EK enrolled with: rsa2048 | ecc-p256 */
	char enrolled_at[32];
	char *ck_pem;		     /* CK certificate and its chain, PEM */
	/* The roots it was checked with and keeps for EK certificates (none
	 * for an enrolment made before vtpmd checked them). */
	struct cacheck_roots privacy_roots, virt_roots;
};
/* The roots an enrolment request may carry (PEM text; NULL: none). */
struct enrol_roots_pem {
	const char *privacy;
	const char *virt;
};
struct manager;
int enrol_load(struct manager *m, struct err *err);
struct enrol_op;
struct enrol_op *enrol_begin(struct manager *m, const char *privacy_url, const char *virt_url,
    const char *host, const struct enrol_roots_pem *roots, struct err *err);
int enrol_virt_roots(struct manager *m, struct cacheck_roots *out, struct err *err);
int enrol_step(struct manager *m, struct enrol_op *op, struct err *err);
struct caclient *enrol_ca(const struct enrol_op *op);
void enrol_op_free(struct enrol_op *op);
void enrol_free(struct enrolment *e);
int enrol_path(const struct config *cfg, const char *leaf, char *buf, size_t len);
struct json_t *enrol_json(struct manager *m);
struct json_t *enrol_b64(const uint8_t *buf, size_t len);
/* The host EK certificate the host TPM holds (the one an enrolment
 * presents: RSA's, else ECC's), for the CA's operator to admit the host:
 * {"kind", "nv_index", "certificate": PEM}, or NULL with err. */
struct json_t *enrol_ek_certificate_json(struct manager *m, struct err *err);
char *enrol_ck_certificate(const struct enrolment *e);

/* provision.c: a new vTPM's EKs and their certificates from the
 * Virtualization CA, written to its NV; STATE/instances/NAME/ek.json. A
 * provisioning in flight waits for the CA between its steps. */
int provision_parse_type(const char *name, unsigned int *set);
struct provision;
struct provision *provision_new(struct manager *m, unsigned int set, struct err *err);
int provision_step(struct manager *m, struct vtpm *v, struct provision *p, struct err *err);
struct caclient *provision_ca(const struct provision *p);
void provision_free(struct provision *p);
struct json_t *provision_json(struct manager *m, const struct vtpm *v);

/* budget.c: each instance's commit budget (docs/state.md, "Throttling"):
 * a report is committed only with a token of its instance's bucket; a
 * worker that reports again before its acknowledgement is ended. */
bool budget_take(const struct manager *m, struct vtpm *v);
int64_t budget_next_deadline(const struct manager *m);
bool budget_report(
    struct vtpm *v, uint64_t gen, const uint8_t digest[STORE_DIGEST_LEN], uint64_t recorded);
bool budget_stale(const struct vtpm *v, uint64_t gen, uint64_t recorded);
void budget_acked(struct vtpm *v, uint64_t gen);

/* fresh.c: freshness anchored in the host TPM (docs/state.md): a manifest
 * of every instance's latest generation, bound to the host TPM's counter. */
#define FRESH_MANIFEST "freshness.manifest"
#define FRESH_KEY      "freshness.key" /* sealed under the approval policy */
struct fresh_entry {
	char uuid[37];
	uint64_t gen;
	uint8_t digest[STORE_DIGEST_LEN];
	int64_t deleted; /* a tombstone: when its vTPM was deleted (Unix time), or 0 */
};
struct fresh {
	bool ready;		/* key unsealed, manifest read and bound */
	char refused[ERR_MSG_MAX]; /* why every instance is refused, or "" */
	uint8_t *auth, *mac_key;   /* derived keys, secret memory */
	uint64_t counter;	   /* the value the manifest is bound to */
	struct fresh_entry *e;
	size_t n;
	int64_t retry_at;	/* a failed commit's retry (monotonic ms), or 0 */
	bool dirty;		/* e holds changes no commit has covered (one failed) */
	unsigned long commits;	/* counter increments made by this vtpmd */
	int64_t commit_us, increment_us; /* their total time, and the counter's part */
	/* the anchor (fresh.c): the manifest's slots, the commit in flight */
	size_t slot_len;    /* bytes per slot of the manifest on disk, 0: rewrite it whole */
	bool pending;       /* the slot for counter+1 is written, its increment unsure */
	uint64_t verify;    /* the counter's value to read back, or 0 */
	int64_t verify_at;  /* when the flush path reads it back (monotonic ms), or 0 */
	bool reanchor;      /* vtpmd --reanchor: a lost anchor may be set up again */
	char anchor_id[17]; /* names the freshness key, in bindings and messages */
};
int fresh_ensure(struct manager *m, struct err *err);
int fresh_check(struct manager *m, struct vtpm *v, struct err *err);
void fresh_forget(struct manager *m, const struct vtpm *v);
void fresh_channel_read(struct manager *m, struct vtpm *v);
void fresh_flush(struct manager *m);
int fresh_strict(struct manager *m, struct vtpm *v, struct err *err);
int64_t fresh_next_deadline(const struct manager *m);
int fresh_recorded(struct manager *m, const struct vtpm *v, uint64_t *gen,
    uint8_t digest[STORE_DIGEST_LEN], struct err *err);
void fresh_permit(struct vtpm *v, uint64_t gen);
void fresh_free(struct fresh *f);
int fresh_forget_deleted(struct manager *m, const char *uuid, struct err *err);

/* manager_metrics.c: what vtpmd counts about itself, and GET /metrics
 * (docs/api.md, "Metrics"). */
struct manager_metrics {
	uint64_t starts;                      /* workers that became ready */
	struct metrics_counts start_failures; /* by reason (manager_metrics_start_failed) */
	struct metrics_counts restarts;       /* by reason: crash, vm-shutdown, request */
	struct metrics_hist unseal;           /* a start's unseal of its state key */
	uint64_t state_writes;                /* workers' permanent-state writes reported */
	struct metrics_hist state_commit;     /* a freshness commit: manifest and counter */
	struct caclient_stats ca;
};
struct manager;
void manager_metrics_init(struct manager_metrics *mm);
/* Counts a start that failed (v's worker is not serving), by reason: the
 * err's kind, or "not-ready" and "worker-ended" (err NULL, why given). */
void manager_metrics_start_failed(struct manager *m, const struct err *err, const char *why);
struct api_response manager_metrics_reply(struct manager *m);

/* manager.c: the vtpmd service. */
struct manager {
	struct config cfg;
	struct hwtpm *hw;
	struct api_server *api;
	struct policy policy;
	struct enrolment enrol;
	struct vtpm **vtpms;
	size_t n;
	char self[512];	      /* this executable */
	char worker_exe[512]; /* vtpmd-instance beside it, or "" to run `self instance` */
	int lockfd;
	bool terminate;
	int ready_timeout_ms;		/* a start's deadline, WORKER_READY_TIMEOUT_MS */
	struct enrol_op *enrolling;	/* the enrolment in flight (ops.c), or NULL */
	uint64_t enrol_ticket;		/* the API request that waits for it */
	struct ops_approval *approvals; /* approvals that wait for their starts */
	struct fresh fresh;
	uint8_t *blob_key; /* the host's blob key (secret memory), once unsealed, or NULL */
	uint8_t blob_key_id[STATEBLOB_KEY_ID_LEN];
	struct manager_metrics metrics;
};
int manager_main(int argc, char **argv);
int manager_step(struct manager *m, const sigset_t *unblocked);

/* blobkey.c: the host's state-blob key (docs/instance.md, "State blobs"):
 * made once, kept on disk only sealed by the host TPM under the approval
 * policy (STATE/blobkey.sealed), unsealed at the first start. */
#define BLOBKEY_FILE "blobkey.sealed"
int blobkey_load(struct manager *m, const struct policy_entry *e, struct err *err);
int blobkey_record(const struct manager *m, const uint8_t uuid[STATEBLOB_UUID_LEN],
    uint8_t rec[static STATEBLOB_KEY_RECORD_LEN]);
void blobkey_forget(struct manager *m);

/* lifecycle.c: one vTPM's create, start, stop and delete. A start ends in
 * the loop: lifecycle_ready, lifecycle_start_ended or lifecycle_start_late
 * on the events of its worker; a stop likewise, lifecycle_stopped or
 * lifecycle_stop_late. */
#define WORKER_READY_TIMEOUT_MS 15000
#define WORKER_COMMIT_RETRY_MS 100   /* an adopted worker not listening for commits yet */
#define LIFECYCLE_STOP_TIMEOUT_MS 5000
#define LIFECYCLE_BACKOFF_MIN_MS 100
#define LIFECYCLE_BACKOFF_MAX_MS 30000
struct vtpm *lifecycle_find(struct manager *m, const char *name);
int lifecycle_create(struct manager *m, const char *name, unsigned int tpm_version,
    struct vtpm **out, struct err *err);
int lifecycle_create_done(struct manager *m, struct vtpm *v, struct err *err);
int lifecycle_start(struct manager *m, struct vtpm *v, struct err *err);
int lifecycle_ready(struct manager *m, struct vtpm *v);
int lifecycle_start_ended(struct manager *m, struct vtpm *v, struct err *err);
void lifecycle_start_late(struct manager *m, struct vtpm *v);
void lifecycle_start_cancel(struct manager *m, struct vtpm *v);
void lifecycle_retry_later(struct vtpm *v, int64_t now);
int lifecycle_stop(struct manager *m, struct vtpm *v);
void lifecycle_stopped(struct manager *m, struct vtpm *v);
bool lifecycle_stop_late(struct manager *m, struct vtpm *v);
int lifecycle_delete(struct manager *m, struct vtpm *v);
void lifecycle_set_error(struct vtpm *v, enum vtpm_state st, const char *why);

/* worker.c: one worker process per running instance. */
struct worker_pending {
	int keyfd;   /* write end of the worker's key pipe */
	int readyfd; /* read end of its readiness pipe */
};
/* workerlog.c: a worker's log lines, relayed under the instance's tag. */
#define WORKERLOG_LINE_MAX 1024	 /* a longer line is relayed in pieces */
#define WORKERLOG_LINES_PER_S 500 /* more in one second are dropped, and counted */
/* Opens v's channel (its FIFO in the run directory, made when absent) for
 * the manager, once; 0, or -1 with err. */
int workerlog_open(const struct manager *m, struct vtpm *v, struct err *err);
/* A new write end of v's open channel, for a worker's stderr; -1 with err. */
int workerlog_writer(const struct manager *m, const struct vtpm *v, struct err *err);
int workerlog_fd(const struct vtpm *v); /* the manager's end, or -1 */
void workerlog_read(struct vtpm *v);	/* relays what is there; never waits */
void workerlog_drain(struct vtpm *v);	/* the same, and a last unended line */
/* Drains and closes v's channel; remove (a deleted instance) unlinks it. */
void workerlog_close(const struct manager *m, struct vtpm *v, bool remove);

int worker_fork(struct manager *m, struct vtpm *v, struct worker_pending *p, struct err *err);
int worker_send_key(struct worker_pending *p, const uint8_t *key, const uint8_t *blob_key,
    struct err *err);
int worker_ready(struct vtpm *v);
void worker_abort(struct manager *m, struct vtpm *v, struct worker_pending *p);
int worker_adopt(struct manager *m, struct vtpm *v);
void worker_commit_retry(struct manager *m);
int64_t worker_commit_next(const struct manager *m);
int worker_stop(struct vtpm *v);
void worker_stop_kill(const struct vtpm *v);
void worker_forget(struct manager *m, struct vtpm *v);
int worker_exited(struct manager *m, struct vtpm *v, struct err *err);
void worker_socket_paths(const struct config *cfg, const char *name, char *ctrl, size_t clen,
    char *data, size_t dlen);
int worker_share_sockets(const struct manager *m, const struct vtpm *v, struct err *err);

/* snapshot.c: snapshots and reverts, explicit operator actions
 * (docs/state.md, "Operator snapshots and reverts"): STATE/instances/NAME/snapshots/ and
 * reverts.json. Functions return 0 or -1 with err: ERR_INVALID (a
 * generation that is no revert), ERR_ABSENT (no such snapshot, no state),
 * ERR_BUSY (the instance runs), ERR_EXISTS, ERR_CORRUPT, ERR_IO. */
#define SNAPSHOT_LABEL_MAX 128
int snapshot_take(struct manager *m, struct vtpm *v, const char *label, struct json_t **out,
    struct err *err);
struct json_t *snapshot_list(struct manager *m, const struct vtpm *v, struct err *err);
int snapshot_restore(struct manager *m, struct vtpm *v, uint64_t gen, uid_t by, struct err *err);
int snapshot_delete(struct manager *m, const struct vtpm *v, uint64_t gen, uid_t by,
    struct err *err);
int snapshot_allow_revert(struct manager *m, struct vtpm *v, uint64_t gen, uid_t by,
    const char *how, struct err *err);
void snapshot_reverted(struct manager *m, struct vtpm *v, const char *via);
void snapshot_flushed(struct manager *m);
struct json_t *snapshot_revert_json(struct manager *m, const struct vtpm *v);

/* reply.c: the API's answers that operations share: objects (INSTANCE,
 * HOST, POLICY) and failures, with the status and hint of each. */
struct api_response reply_ok(int status, struct json_t *body);
struct json_t *reply_instance(struct manager *m, const struct vtpm *v);
struct api_response reply_host(struct manager *m);
struct api_response reply_policy(struct manager *m);
struct api_response reply_record_failed(const struct vtpm *v);
struct api_response reply_start_failed(struct manager *m, const struct vtpm *v,
    const struct err *err);
struct api_response reply_created_not_started(struct manager *m, const struct vtpm *v,
    const struct err *err);
struct api_response reply_provision_failed(const struct err *err);
struct api_response reply_enrol_failed(const struct err *err);
struct api_response reply_busy(const struct vtpm *v);
int reply_ca_status(enum err_kind kind);

/* ops.c: operations in flight, as continuations of the loop's events; each
 * answers the API request that asked (its ticket) when it ends. */
struct ops_approval;
int ops_start(struct manager *m, struct vtpm *v, enum vtpm_op op, uint64_t ticket,
    struct err *err);
int ops_create_provisioned(struct manager *m, struct vtpm *v, unsigned int set, uint64_t ticket,
    struct err *err);
int ops_enrol(struct manager *m, const char *privacy_url, const char *virt_url, const char *host,
    const struct enrol_roots_pem *roots, uint64_t ticket, struct err *err);
struct api_response ops_approved(struct manager *m, uint64_t ticket);
bool ops_busy(const struct vtpm *v);
void ops_call_off(struct manager *m, struct vtpm *v);
int ops_stop(struct manager *m, struct vtpm *v, int status, uint64_t ticket);
void ops_stop_ended(struct manager *m, struct vtpm *v);
void ops_ready(struct manager *m, struct vtpm *v);
void ops_worker_ended(struct manager *m, struct vtpm *v);
void ops_provision_event(struct manager *m, struct vtpm *v);
void ops_enrol_event(struct manager *m);
void ops_deadlines(struct manager *m);
int64_t ops_next_deadline(const struct manager *m);
void ops_restarts_due(struct manager *m);
void ops_shutdown(struct manager *m);

/* manager_api.c: the API's routes onto manager operations. */
struct api_response manager_api(void *ctx, const struct api_request *req);

#endif /* VTPM_MANAGER_H */
