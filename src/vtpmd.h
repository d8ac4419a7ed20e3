/*
 * vtpmd: one virtual TPM per virtual machine, rooted in the host TPM.
 *
 * This header is the map of the vtpmd program: the prototypes of every
 * module, grouped by the file that defines them. Library types (libtpms,
 * OpenSSL) stay inside their module; everything here is a project type.
 */
#ifndef VTPMD_H
#define VTPMD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <poll.h>

/* Exit statuses of every vtpmd mode; `vtpmd instance --help` documents them. */
enum vtpmd_exit {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* an error while serving (I/O, engine failure) */
	EXIT_USAGE = 2,	  /* bad command line */
	EXIT_STATE = 3,	  /* state exists but cannot be read: nothing was started */
	EXIT_BUSY = 4,	  /* state directory or socket address already in use */
};

#define STATE_KEY_LEN 32

/* log.c: stderr logging, each line tagged with the process name. */
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
void log_init(const char *tag, enum log_level level);
int log_parse_level(const char *name, enum log_level *level);
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void fatalx(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* secret.c: memory for key material: locked, not dumped, wiped on free. */
void *secret_alloc(size_t len);
void secret_free(void *p, size_t len);
int secret_read_fd(int fd, uint8_t *out, size_t len);
void secret_harden_process(void);

/* endpoint.c: "unix:PATH" and "tcp:HOST:PORT" socket addresses. */
enum endpoint_kind { ENDPOINT_UNIX, ENDPOINT_TCP };
struct endpoint {
	enum endpoint_kind kind;
	char path[108]; /* ENDPOINT_UNIX */
	char host[64];	/* ENDPOINT_TCP: numeric address */
	uint16_t port;	/* ENDPOINT_TCP */
};
int endpoint_parse(const char *spec, struct endpoint *ep);
socklen_t endpoint_sockaddr(const struct endpoint *ep, struct sockaddr_storage *ss);
int endpoint_listen(const struct endpoint *ep);
int endpoint_connect(const struct endpoint *ep);
void endpoint_format(const struct endpoint *ep, char *buf, size_t len);

/* statefile.c: the on-disk format of one state blob (pure codec). */
enum state_kind {
	STATE_PERMANENT = 1,
	STATE_VOLATILE = 2,
	STATE_SAVESTATE = 3,
};
enum statefile_err {
	STATEFILE_OK = 0,
	STATEFILE_TRUNCATED,
	STATEFILE_BAD_MAGIC,
	STATEFILE_FUTURE_FORMAT,
	STATEFILE_WRONG_KIND,
	STATEFILE_WRONG_TPM,
	STATEFILE_TOO_LARGE,
	STATEFILE_TRAILING,
	STATEFILE_NEEDS_KEY,
	STATEFILE_UNPROTECTED,
	STATEFILE_AUTH_FAILED,
	STATEFILE_NOMEM,
};
#define STATEFILE_MAX_PAYLOAD (4u << 20)
struct statefile_info {
	enum state_kind kind;
	unsigned int tpm_version; /* 1 for TPM 1.2, 2 for TPM 2.0 */
	uint64_t generation;	  /* incremented by every write */
};
const char *statefile_strerror(enum statefile_err err);
size_t statefile_encoded_size(size_t payload_len, bool encrypted);
int statefile_encode(const struct statefile_info *info, const uint8_t *key,
    const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_len);
enum statefile_err statefile_decode(const uint8_t *key, const uint8_t *in,
    size_t in_len, const struct statefile_info *expect, uint64_t *generation,
    uint8_t **payload, size_t *payload_len);

/* store.c: an instance's state directory: locked, crash-safe writes. */
struct store;
enum store_err {
	STORE_OK = 0,
	STORE_ABSENT, /* no such blob: a new TPM */
	STORE_BUSY,   /* another instance holds the directory */
	STORE_IO,     /* errno says why */
	STORE_CORRUPT /* the file exists but cannot be read; see message */
};
struct store *store_open(const char *dir, const uint8_t *key, unsigned int tpm_version,
    enum store_err *err);
void store_close(struct store *st);
enum store_err store_get(struct store *st, enum state_kind kind, uint8_t **blob,
    size_t *len, char *why, size_t why_len);
int store_put(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len);
int store_delete(struct store *st, enum state_kind kind);
bool store_encrypted(const struct store *st);
const char *store_dir(const struct store *st);
const char *store_filename(enum state_kind kind);

/* ctrl.c: the swtpm control-channel codec (pure, no I/O). */
#define CTRL_MAX_BLOB (4u << 20)
enum ctrl_parse {
	CTRL_INCOMPLETE, /* need more bytes */
	CTRL_COMPLETE,	 /* a whole request is at the start of the buffer */
	CTRL_OVERSIZED,	 /* declared length is above the limit */
};
enum ctrl_parse ctrl_request_size(const uint8_t *buf, size_t len, size_t *need);
struct ctrl_request {
	uint32_t cmd;
	union {
		uint32_t init_flags;   /* INIT */
		uint8_t locality;      /* SET_LOCALITY, RESET_TPMESTABLISHED */
		uint32_t buffersize;   /* SET_BUFFERSIZE */
		uint32_t retries;      /* LOCK_STORAGE */
		struct {
			uint32_t flags, type, offset;
		} getstate;	       /* GET_STATEBLOB */
		struct {
			uint32_t flags, type, length;
			const uint8_t *data;
		} setstate;	       /* SET_STATEBLOB */
		struct {
			uint32_t length;
			const uint8_t *data;
		} hash;		       /* HASH_DATA */
		struct {
			uint64_t flags;
			uint32_t offset;
		} info;		       /* GET_INFO */
	} u;
};
int ctrl_decode(const uint8_t *buf, size_t len, struct ctrl_request *req);
size_t ctrl_put_u32(uint8_t *out, uint32_t v);
size_t ctrl_put_u64(uint8_t *out, uint64_t v);
const char *ctrl_cmd_name(uint32_t cmd);

/* tpmwire.c: the TPM command/response frame and the few commands vtpmd
 * itself sends to an engine. */
#define TPM_HEADER_LEN 10
struct tpm_header {
	uint16_t tag;
	uint32_t size;
	uint32_t code; /* command code or response code */
};
int tpmwire_header(const uint8_t *buf, size_t len, struct tpm_header *h);
size_t tpmwire_error(uint8_t out[static TPM_HEADER_LEN], unsigned int tpm_version, uint32_t rc);
size_t tpmwire_startup_clear(uint8_t out[static 12], unsigned int tpm_version);
size_t tpmwire_shutdown_state(uint8_t out[static 12], unsigned int tpm_version);
bool tpmwire_is_shutdown(const uint8_t *cmd, size_t len, unsigned int tpm_version);
/* How the data channel cuts its input into TPM commands. */
enum tpmwire_frame {
	TPMWIRE_INCOMPLETE, /* need more bytes: *need in all for the first command */
	TPMWIRE_COMPLETE,   /* the first *need bytes are one whole command */
	TPMWIRE_BAD_SIZE,   /* its header declares a size outside 10..max */
};
enum tpmwire_frame tpmwire_frame(const uint8_t *buf, size_t len, uint32_t max, size_t *need);

/* engine.c: the libtpms TPM engine of this process (one per process). */
struct engine_io {
	void *ctx;
	/* Returns STORE_OK with a malloc'd blob, STORE_ABSENT, or an error. */
	enum store_err (*load)(void *ctx, enum state_kind kind, uint8_t **blob, size_t *len);
	int (*save)(void *ctx, enum state_kind kind, const uint8_t *blob, size_t len);
	int (*remove)(void *ctx, enum state_kind kind);
	uint8_t (*locality)(void *ctx);
};
int engine_select(unsigned int tpm_version, const struct engine_io *io);
int engine_power_on(void);
void engine_power_off(void);
bool engine_is_on(void);
int engine_process(const uint8_t *cmd, size_t cmd_len, const uint8_t **rsp, size_t *rsp_len);
uint32_t engine_store_volatile(void);
uint32_t engine_get_state(enum state_kind kind, uint8_t **blob, size_t *len);
uint32_t engine_set_state(enum state_kind kind, const uint8_t *blob, size_t len);
uint32_t engine_set_buffer_size(uint32_t wanted, uint32_t *min, uint32_t *max);
uint32_t engine_buffer_size(void);
char *engine_info(uint64_t flags);
uint32_t engine_cancel(void);
uint32_t engine_established_get(bool *bit);
uint32_t engine_established_reset(void);
uint32_t engine_hash_start(void);
uint32_t engine_hash_data(const uint8_t *data, size_t len);
uint32_t engine_hash_end(void);

/* hwtpm.c: the host TPM (tpm2-tss): SRK, salted sessions, sealed keys. */
#define HWTPM_PCRS 24
#define HWTPM_DIGEST_LEN 32
#define HWTPM_ERR_POLICY (-2)  /* host PCRs not in the approved configuration */
#define HWTPM_ERR_FOREIGN (-3) /* sealed object is not this TPM's */
struct pcr_selection {
	uint32_t mask; /* bit i selects sha256 PCR i */
};
struct approval_pub {
	uint8_t x[32], y[32]; /* ECC P-256 point */
};
/* An administrator's signature approving one PCR policy digest. */
struct approval {
	struct approval_pub pub;
	uint8_t policy[HWTPM_DIGEST_LEN];
	uint8_t sig_r[32], sig_s[32];
};
struct hwtpm;
struct hwtpm *hwtpm_open(const char *tcti_conf);
int hwtpm_pin_srk(struct hwtpm *hw, const char *path);
void hwtpm_close(struct hwtpm *hw);
int hwtpm_reconnect(struct hwtpm *hw);
bool hwtpm_available(const struct hwtpm *hw);
const char *hwtpm_error(void);
bool hwtpm_is_simulator(const struct hwtpm *hw);
unsigned long hwtpm_command_count(const struct hwtpm *hw);
int hwtpm_pcr_read(struct hwtpm *hw, const struct pcr_selection *sel,
    uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN]);
int hwtpm_policy_pcr(const struct pcr_selection *sel,
    const uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN], uint8_t policy[HWTPM_DIGEST_LEN]);
int hwtpm_policy_authorize(const struct approval_pub *pub, uint8_t policy[HWTPM_DIGEST_LEN]);
#define HWTPM_SEALED_MAX 64
int hwtpm_seal(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const uint8_t auth_policy[HWTPM_DIGEST_LEN], uint8_t **blob, size_t *blob_len);
int hwtpm_sealed_public(const uint8_t *blob, size_t blob_len, size_t *pub_len);
int hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret,
    size_t secret_len);
void hwtpm_flush_pending(struct hwtpm *hw);

/*
 * hwtpm_attest.c: the host TPM's side of the chain of trust: its EK (TCG
 * EK Credential Profile), the Certifying Key (CK, ECC P-256 restricted
 * signing) and the Binding Key (BK, RSA-2048 OAEP decryption), both under
 * the SRK, persistent, looked up once per hwtpm_open; certifications and
 * quotes by the CK. Byte buffers are marshalled TPM structures (TPM wire
 * format), malloc'd and owned by the caller. Returns 0, or -1 with
 * hwtpm_error().
 */
enum hwtpm_ek_kind {
	HWTPM_EK_RSA, /* RSA-2048, template L-1 */
	HWTPM_EK_ECC, /* ECC NIST P-256, template L-2 */
};
#define HWTPM_EK_RSA_HANDLE  0x81010001
#define HWTPM_EK_ECC_HANDLE  0x81010002
#define HWTPM_EK_RSA_CERT_NV 0x01c00002
#define HWTPM_EK_ECC_CERT_NV 0x01c0000a
#define HWTPM_CK_HANDLE      0x81000002
#define HWTPM_BK_HANDLE      0x81000003
#define HWTPM_CREDENTIAL_MAX 64 /* a TPM2B_DIGEST */
/* What a TPM signed: a TPMS_ATTEST (the contents of a TPM2B_ATTEST) and
 * its TPMT_SIGNATURE; both malloc'd, freed by hwtpm_attestation_clear. */
struct hwtpm_attestation {
	uint8_t *attest;
	size_t attest_len;
	uint8_t *signature;
	size_t signature_len;
};
void hwtpm_attestation_clear(struct hwtpm_attestation *ev);
int hwtpm_ek_template(enum hwtpm_ek_kind kind, uint8_t **tmpl, size_t *len);
bool hwtpm_public_matches(const uint8_t *tmpl, size_t tmpl_len, const uint8_t *pub,
    size_t pub_len);
int hwtpm_host_ek(struct hwtpm *hw, enum hwtpm_ek_kind kind, uint8_t **ek_public,
    size_t *ek_public_len, uint8_t **ek_cert, size_t *ek_cert_len);
int hwtpm_ck(struct hwtpm *hw, uint8_t **ck_public, size_t *len);
int hwtpm_activate_credential(struct hwtpm *hw, enum hwtpm_ek_kind kind, const uint8_t *blob,
    size_t blob_len, const uint8_t *enc_secret, size_t enc_secret_len,
    uint8_t secret[static HWTPM_CREDENTIAL_MAX], size_t *secret_len);
int hwtpm_bk(struct hwtpm *hw, uint8_t **bk_public, size_t *bk_public_len,
    struct hwtpm_attestation *ev);
int hwtpm_certify_sealed(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const uint8_t *qualifying, size_t qualifying_len, struct hwtpm_attestation *ev);
int hwtpm_quote(struct hwtpm *hw, const struct pcr_selection *sel, const uint8_t *qualifying,
    size_t qualifying_len, struct hwtpm_attestation *ev,
    uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN]);

/*
 * guesttpm.c: the manager's client of one of its own vTPMs, through the
 * worker's data socket, before the guest runs: the vTPM's EK (the TCG
 * templates, persisted at HWTPM_EK_*_HANDLE) and its certificates in the
 * TCG NV indices, platform-created and write-locked. The platform and
 * owner authorizations must still be empty. Returns 0, or -1 with
 * guesttpm_error().
 */
#define GUESTTPM_CHAIN_NV_FIRST 0x01c00100 /* EK certificate chain, one per index */
#define GUESTTPM_CHAIN_NV_LAST	0x01c001ff
struct guesttpm;
struct guesttpm_cert {
	const uint8_t *der;
	size_t len;
};
struct guesttpm *guesttpm_open(const struct endpoint *ep);
void guesttpm_close(struct guesttpm *g);
const char *guesttpm_error(void);
int guesttpm_create_ek(struct guesttpm *g, enum hwtpm_ek_kind kind, uint8_t **ek_public,
    size_t *len);
int guesttpm_write_ek_cert(struct guesttpm *g, enum hwtpm_ek_kind kind, const uint8_t *der,
    size_t der_len);
int guesttpm_write_chain(struct guesttpm *g, const struct guesttpm_cert *certs, size_t n);
int guesttpm_read_nv(struct guesttpm *g, uint32_t index, uint8_t **data, size_t *len);

/* approval.c: the administrator's approval key (ECC P-256, PEM files). */
#define APPROVAL_POLICY_REF "vtpmd approved host configuration"
int approval_key_create(const char *path);
int approval_key_public(const char *path, struct approval_pub *pub);
int approval_key_is_private(const char *path);
int approval_digest(const uint8_t policy[HWTPM_DIGEST_LEN], uint8_t ahash[HWTPM_DIGEST_LEN]);
int approval_sign(const char *path, const uint8_t policy[HWTPM_DIGEST_LEN], struct approval *ap);
int approval_verify(const struct approval *ap);

/* api.c: the control API server: HTTP/1.1 + JSON on a unix socket
 * (docs/api.md). Parsing uses http-parser; bodies are jansson values. */
#define API_MAX_REQUEST (64u << 10)
#define API_MAX_CONNECTIONS 64
#define API_IDLE_TIMEOUT_MS 10000
enum api_method { API_GET, API_POST, API_DELETE, API_OTHER };
struct json_t;
struct api_request {
	enum api_method method;
	char path[256];	 /* percent-decoded path, without the query */
	char query[256]; /* raw query string, "" when absent */
	struct json_t *body; /* parsed JSON object, or NULL when no body */
	uid_t peer_uid;
	pid_t peer_pid;
	size_t need; /* COMPLETE: the request's length; INCOMPLETE: bytes to buffer
		      * before parsing again can change the result */
};
struct api_response {
	int status;		/* HTTP status */
	struct json_t *body;	/* owned by the response; api.c serialises and frees it */
};
enum api_parse { API_PARSE_INCOMPLETE, API_PARSE_COMPLETE, API_PARSE_ERROR };
enum api_parse api_parse(const uint8_t *buf, size_t len, struct api_request *req, int *status,
    char *why, size_t why_len);
void api_request_clear(struct api_request *req);
struct api_response api_error(int status, const char *error, const char *hint);
typedef struct api_response (*api_handler)(void *ctx, const struct api_request *req);
struct api_server;
struct api_server *api_listen(const char *path, api_handler handler, void *ctx);
struct api_server *api_listen_tcp(const struct endpoint *ep, api_handler handler, void *ctx);
void api_close(struct api_server *srv);
int api_pollfds(struct api_server *srv, struct pollfd *fds, int max);
void api_process(struct api_server *srv, const struct pollfd *fds, int n);
int api_next_timeout(const struct api_server *srv);

/* httpc.c: one HTTP/1.1 request with a JSON body, on a connected socket or
 * to a URL. */
#define HTTPC_MAX_RESPONSE (16u << 20)
enum { HTTPC_OK = 0, HTTPC_IO = -1, HTTPC_PROTOCOL = -2 };
int httpc_exchange(int fd, const char *method, const char *host, const char *agent,
    const char *target, const struct json_t *body, int *status, struct json_t **reply, char *why,
    size_t why_len);
int httpc_parse_response(const char *buf, size_t len, int *status, struct json_t **reply,
    char *why, size_t why_len);
int httpc_request_url(const char *base_url, const char *agent, int timeout_s, const char *method,
    const char *path, const struct json_t *body, int *status, struct json_t **reply, char *why,
    size_t why_len);

/* sandbox.c: a worker's confinement, entered before it reads any input. */
struct sandbox {
	const char *root; /* directory the worker is confined to (chroot) */
	uid_t uid;	  /* unprivileged identity to switch to */
	gid_t gid;
};
int sandbox_enter(const struct sandbox *sb);

/* config.c: vtpmd's configuration ("key = value" lines, '#' comments). */
struct config {
	char tcti[256];		/* host TPM, a tpm2-tss TCTI string */
	char state_dir[256];	/* instances, approvals, approval key */
	char run_dir[256];	/* worker sockets and pid files */
	char socket[256];	/* the API socket */
	char approval_public[256]; /* when set, vtpmd holds only the public key */
	struct pcr_selection pcrs; /* host PCRs (sha256) the state keys are bound to */
	uid_t worker_uid_base;	/* worker i runs as uid base+i (0: no sandbox) */
	gid_t socket_gid;	/* workers' sockets' group, mode 0660 (0: unset, 0600) */
	enum log_level log_level;
};
void config_defaults(struct config *cfg);
int config_load(const char *path, struct config *cfg, FILE *errors);
/* The checks beyond syntax (vtpmd -n, and every start): values that load,
 * files that exist, paths that fit. Returns the number of problems, each
 * reported on errors as FILE:LINE: key: reason. */
int config_check(const char *path, const struct config *cfg, bool starting, FILE *errors);
int config_parse_buffer(
    const char *name, const char *text, size_t len, struct config *cfg, FILE *errors);
int config_set(struct config *cfg, const char *key, const char *value, char *why, size_t why_len);
int config_parse_pcrs(const char *list, struct pcr_selection *sel);
void config_format_pcrs(const struct pcr_selection *sel, char *buf, size_t len);

/* cli.c: the frame of the command-line programs (vtpmctl, vtpm-ca,
 * vtpm-attest): their command tables, --help, dispatch, messages. */
struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
	const char *synopsis;
	const char *summary;
};
struct cli {
	const char *name;      /* the program */
	const char *usage;     /* its usage line, without "usage: " */
	const char *help_head; /* --help: before the commands */
	const char *help_tail; /* --help: after them */
	const struct cli_cmd *cmds;
	size_t n;
	int name_width; /* of the command column in the short usage */
};
int cli_usagev(const char *prog, const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
int cli_failv(const char *prog, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void cli_help(const struct cli *p);
int cli_dispatch(const struct cli *p, int argc, char **argv);

/* hex.c: lowercase hexadecimal. */
void hex_encode(const uint8_t *in, size_t len, char *out);
int hex_decode(const char *in, uint8_t *out, size_t len);

/* base64.c: base64 (RFC 4648, padded, strict). encode: malloc'd text or
 * NULL. decode: 0, or -1 when in is not canonical base64 or decodes to
 * more than max bytes. */
char *base64_encode(const uint8_t *in, size_t len);
int base64_decode(const char *in, uint8_t *out, size_t max, size_t *len);

/* fileio.c: whole-file reads and crash-safe whole-file replacement. */
int fileio_read(const char *path, size_t max, uint8_t **buf, size_t *len);
int fileio_write_atomic(const char *path, const void *buf, size_t len, mode_t mode);
int fileio_write_runtime(const char *path, const void *buf, size_t len, mode_t mode);
int fileio_remove_tree(const char *path);
int fileio_mkdirs(const char *path, mode_t mode);

/* registry.c: the instances the manager knows, as recorded on disk in
 * STATE/instances/NAME/instance.json. */
#define VTPM_NAME_MAX 64
enum vtpm_state { VTPM_STOPPED, VTPM_STARTING, VTPM_RUNNING, VTPM_FAILED, VTPM_REFUSED };
/* Room for an instance's error: a refusal naming all 24 host PCRs, with
 * the advice on approving, fits whole. */
#define VTPM_ERROR_LEN 1536

struct vtpm {
	/* persistent */
	char name[VTPM_NAME_MAX + 1];
	char uuid[37];
	unsigned int tpm_version; /* 1 (TPM 1.2) or 2 (TPM 2.0) */
	bool desired_running;
	char created[32];
	unsigned int slot; /* sandbox uid = worker_uid_base + slot */
	/* runtime */
	enum vtpm_state state;
	pid_t pid;
	int pidfd;
	bool child;	   /* started by this manager (else adopted) */
	bool creating;	   /* its create has not finished (REGISTRY_CREATING exists) */
	bool unsaved;	   /* the record changed; manager_start saves it while the worker starts */
	unsigned int restarts;
	unsigned int backoff_ms;
	int64_t restart_at_ms; /* when a scheduled restart is due, or 0 */
	int64_t started_at_ms;
	char error[VTPM_ERROR_LEN];
};
bool registry_valid_name(const char *name);
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
	uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN];
	char approved_at[32];
};
struct policy {
	struct approval_pub pub;
	bool private_held; /* vtpmd holds the private approval key */
	char key_path[300];
	struct policy_entry *entries;
	size_t n;
	bool cached; /* host PCR values read before (policy_current_cached) */
	uint8_t cached_values[HWTPM_PCRS][HWTPM_DIGEST_LEN];
	uint8_t cached_digest[HWTPM_DIGEST_LEN];
};

/* enrol.c: the host's enrolment with a Privacy CA: CK certificate, BK
 * certified by the CK; STATE/host/. */
#define ENROL_CA_TIMEOUT_S 30
enum enrol_err {
	ENROL_ERR_LOCAL,	  /* vtpmd itself: files, memory */
	ENROL_ERR_HOST_TPM,	  /* the host TPM failed or refused */
	ENROL_ERR_VTPM,		  /* the instance's vTPM failed */
	ENROL_ERR_CA_UNREACHABLE, /* no answer from the CA, or it failed (5xx) */
	ENROL_ERR_CA_REFUSED,	  /* the CA refused the request (4xx) */
};
struct enrolment {
	bool enrolled;
	char privacy_ca[256];	     /* base URL of the Privacy CA */
	char virtualization_ca[256]; /* base URL of the Virtualization CA */
	char host[65];		     /* the name in the CK certificate */
	char ek[16];		     /* the host EK enrolled with: rsa2048 | ecc-p256 */
	char enrolled_at[32];
	char *ck_pem;		     /* CK certificate and its chain, PEM */
};
struct manager;
int enrol_load(struct manager *m, char *why, size_t why_len);
int enrol_host(struct manager *m, const char *privacy_url, const char *virt_url, const char *host,
    enum enrol_err *err, char *why, size_t why_len);
void enrol_free(struct enrolment *e);
int enrol_path(const struct config *cfg, const char *leaf, char *buf, size_t len);
struct json_t *enrol_json(struct manager *m);
int enrol_post(const char *url, const char *path, struct json_t *body, struct json_t **reply,
    enum enrol_err *err, char *why, size_t why_len);
struct json_t *enrol_b64(const uint8_t *buf, size_t len);
char *enrol_answer_pem(const struct json_t *reply);
char *enrol_ck_certificate(const struct enrolment *e);

/* provision.c: a new vTPM's EKs and their certificates from the
 * Virtualization CA, written to its NV; STATE/instances/NAME/ek.json. */
int provision_parse_type(const char *name, unsigned int *set);
int provision_instance(struct manager *m, struct vtpm *v, unsigned int set, enum enrol_err *err,
    char *why, size_t why_len);
struct json_t *provision_json(struct manager *m, const struct vtpm *v);

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
};
int manager_main(int argc, char **argv);
int64_t manager_now_ms(void);
struct vtpm *manager_find(struct manager *m, const char *name);
int manager_create(struct manager *m, const char *name, unsigned int tpm_version,
    struct vtpm **out, char *why, size_t why_len);
int manager_create_done(struct manager *m, struct vtpm *v, char *why, size_t why_len);
int manager_start(struct manager *m, struct vtpm *v, char *why, size_t why_len);
int manager_stop(struct manager *m, struct vtpm *v);
int manager_delete(struct manager *m, struct vtpm *v);
bool manager_host_tpm_recover(struct manager *m);

int policy_load(struct manager *m, char *why, size_t why_len);
int policy_current(struct manager *m, uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN],
    uint8_t digest[HWTPM_DIGEST_LEN]);
int policy_current_cached(struct manager *m, uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN],
    uint8_t digest[HWTPM_DIGEST_LEN]);
const struct policy_entry *policy_find(const struct policy *p, const uint8_t digest[HWTPM_DIGEST_LEN]);
void policy_explain(const struct policy *p, uint32_t mask,
    const uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN], char *buf, size_t len);
int policy_add(struct manager *m, const struct approval *ap, uint32_t mask,
    const uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN], char *why, size_t why_len);
int policy_approve_current(struct manager *m, char *why, size_t why_len);
int policy_auth_digest(const struct policy *p, uint8_t digest[HWTPM_DIGEST_LEN]);
struct json_t *policy_values_json(uint32_t mask, const uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN]);
int policy_values_parse(struct json_t *o, uint32_t *mask,
    uint8_t values[HWTPM_PCRS][HWTPM_DIGEST_LEN]);

/* worker.c: one worker process per running instance. */
struct worker_pending {
	int keyfd;   /* write end of the worker's key pipe */
	int readyfd; /* read end of its readiness pipe */
};
int worker_fork(struct manager *m, struct vtpm *v, struct worker_pending *p, char *why,
    size_t why_len);
int worker_send_key(struct worker_pending *p, const uint8_t *key, char *why, size_t why_len);
int worker_finish(struct manager *m, struct vtpm *v, struct worker_pending *p,
    const uint8_t *key, char *why, size_t why_len);
int worker_adopt(struct manager *m, struct vtpm *v);
void worker_terminate(struct manager *m, struct vtpm *v);
int worker_exited(struct manager *m, struct vtpm *v, char *why, size_t why_len);
void worker_socket_paths(const struct config *cfg, const char *name, char *ctrl, size_t clen,
    char *data, size_t dlen);

/* manager_api.c: the API's routes onto manager operations. */
struct api_response manager_api(void *ctx, const struct api_request *req);

/* instance.c: `vtpmd instance`, one vTPM serving the swtpm protocol. */
struct conn {
	int fd;		/* -1 when not connected */
	bool is_unix;	/* may carry descriptors (SET_DATAFD) */
	uint8_t *buf;	/* bytes received and not yet consumed */
	size_t len, cap;
	int passed_fd;	/* a descriptor that arrived with the bytes, or -1 */
};
struct instance {
	const char *name;
	unsigned int tpm_version; /* 1 (TPM 1.2) or 2 (TPM 2.0) */
	struct store *store;
	struct endpoint ctrl_ep, data_ep;
	bool has_data_ep, startup_clear;
	int ctrl_listen, data_listen; /* -1 when absent */
	struct conn ctrl, data;
	uint8_t locality;
	bool orderly;	/* the engine saw an orderly shutdown since its last command */
	bool volatile_saved; /* a volatile-state snapshot is on disk */
	bool terminate; /* leave the main loop */
	uint8_t *cache; /* decrypted permanent state, until the first power-on */
	size_t cache_len;
};
int instance_main(int argc, char **argv);
int instance_power_on(struct instance *in, bool delete_volatile);
void instance_power_off(struct instance *in);
int instance_send(struct conn *c, const uint8_t *buf, size_t len);
void instance_conn_close(struct conn *c);

/* instance_ctrl.c: one handler per control-channel command. Returns false
 * when the connection must be closed after the answer. */
bool instance_ctrl_dispatch(struct instance *in, const struct ctrl_request *req);

#endif /* VTPMD_H */
