/*
 * instance.h: the map of src/instance/, the vTPM worker: one process per
 * vTPM (vtpmd-instance, or `vtpmd instance`) running a libtpms engine
 * behind the swtpm socket protocol, its state encrypted in its own
 * directory, confined before it reads any input. Prototypes are grouped by
 * the file that defines them, from the bottom up: codecs (statefile, ctrl,
 * tpmwire), the store, the engine, the sandbox, then the worker itself.
 */
#ifndef VTPM_INSTANCE_H
#define VTPM_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "common/common.h"

#define STATE_KEY_LEN 32 /* an instance's state key: AES-256-GCM */

/* statefile.c: the on-disk format of one state blob (pure codec). */
enum state_kind {
	STATE_PERMANENT = 1,
	STATE_VOLATILE = 2,
	STATE_SAVESTATE = 3,
};
enum statefile_verdict {
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
	uint64_t generation;	  /* permanent: incremented by every write; else its stamp */
	uint32_t since_client;	  /* writes since the last a client's command caused */
	bool snapshot_out;	  /* permanent: a snapshot of this state may be out */
};
#define STATEFILE_SINCE_CLIENT_MAX 0x7fffffu /* 23 bits of bytes 13..15; saturates */
#define STATEFILE_SNAPSHOT_BIT	   0x800000u /* bit 23 of bytes 13..15 */
const char *statefile_strerror(enum statefile_verdict err);
size_t statefile_encoded_size(size_t payload_len, bool encrypted);
int statefile_encode(const struct statefile_info *info, const uint8_t *key,
    const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_len);
enum statefile_verdict statefile_decode(const uint8_t *key, const uint8_t *in,
    size_t in_len, const struct statefile_info *expect, uint64_t *generation,
    uint8_t **payload, size_t *payload_len);
int statefile_gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
    size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);

/* stateblob.c: the format of a state blob on the control channel, wrapped
 * under a key of this host (pure codec; docs/instance.md, "State blobs"). */
#define STATEBLOB_UUID_LEN 16
#define STATEBLOB_KEY_ID_LEN 32
enum stateblob_source {
	STATEBLOB_SOURCE_HOST = 1,	/* the host's blob key, per instance */
	STATEBLOB_SOURCE_STATE_KEY = 2, /* a standalone instance's state key */
	STATEBLOB_SOURCE_TRANSFER = 3,	/* a transfer key wrapped to a BK (#13) */
};
/* The key a worker wraps its blobs with: in secret memory. The record the
 * manager sends on the key pipe is key, uuid and key_id, in that order. */
struct stateblob_key {
	uint8_t key[STATE_KEY_LEN];
	uint8_t uuid[STATEBLOB_UUID_LEN];
	uint8_t key_id[STATEBLOB_KEY_ID_LEN];
	uint8_t source;
};
#define STATEBLOB_KEY_RECORD_LEN (STATE_KEY_LEN + STATEBLOB_UUID_LEN + STATEBLOB_KEY_ID_LEN)
struct stateblob_info {
	enum state_kind kind;
	unsigned int tpm_version;
	uint8_t source;
	uint8_t uuid[STATEBLOB_UUID_LEN];
	uint8_t key_id[STATEBLOB_KEY_ID_LEN];
	uint64_t generation;
};
enum stateblob_verdict {
	STATEBLOB_OK = 0,
	STATEBLOB_TRUNCATED,
	STATEBLOB_NOT_WRAPPED,
	STATEBLOB_FUTURE_FORMAT,
	STATEBLOB_TRANSFER,
	STATEBLOB_OTHER_KEY,
	STATEBLOB_OTHER_INSTANCE,
	STATEBLOB_TOO_LARGE,
	STATEBLOB_TRAILING,
	STATEBLOB_AUTH_FAILED,
	STATEBLOB_NOMEM,
};
const char *stateblob_strerror(enum stateblob_verdict v);
int stateblob_instance_key(const uint8_t host_key[STATE_KEY_LEN],
    const uint8_t uuid[STATEBLOB_UUID_LEN], uint8_t out[STATE_KEY_LEN]);
int stateblob_key_from_state_key(const uint8_t state_key[STATE_KEY_LEN],
    struct stateblob_key *k);
int stateblob_wrap(const struct stateblob_key *k, enum state_kind kind, unsigned int tpm_version,
    uint64_t generation, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len);
enum stateblob_verdict stateblob_unwrap(const struct stateblob_key *k, const uint8_t *in,
    size_t len, struct stateblob_info *info, uint8_t **payload, size_t *payload_len);

/* store.c: an instance's state directory: locked, crash-safe writes. */
#define STORE_DIGEST_LEN 32
struct store;
struct store *store_open(const char *dir, const uint8_t *key, unsigned int tpm_version,
    struct err *err);
void store_close(struct store *st);
int store_get(struct store *st, enum state_kind kind, uint8_t **blob,
    size_t *len, struct err *err);
int store_put(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len);
int store_put_as(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len,
    bool by_client);
int store_delete(struct store *st, enum state_kind kind);
bool store_encrypted(const struct store *st);
const char *store_dir(const struct store *st);
const char *store_filename(enum state_kind kind);
void store_put_digest(const struct store *st, uint64_t *gen, uint8_t digest[STORE_DIGEST_LEN]);
int store_file_digest(const char *path, uint64_t *gen, uint8_t digest[STORE_DIGEST_LEN],
    struct err *err);
uint64_t store_generation(struct store *st, enum state_kind kind);
uint64_t store_client_generation(struct store *st, enum state_kind kind);
void store_continue_from(struct store *st, enum state_kind kind, uint64_t gen);
bool store_snapshot_out(struct store *st);
int store_restamp(struct store *st, bool snapshot_out, bool by_client, struct err *err);

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
	/* Returns 0 with a malloc'd blob, or -1: *absent is set when there is
	 * none (a new TPM), else the failure was logged. */
	int (*load)(void *ctx, enum state_kind kind, uint8_t **blob, size_t *len, bool *absent);
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

/* instance_sandbox.c: a worker's confinement (src/common/sandbox.c with the
 * worker's allow-list), entered before it reads any input: root is its
 * state directory, which uid must be able to write; uid and gid neither 0
 * nor -1. 0, or -1 with err. */
int instance_sandbox_enter(const char *root, uid_t uid, gid_t gid, struct err *err);
/* A worker's resource limits (instance_sandbox.c), before any input. */
#define INSTANCE_LIMIT_AS (128UL << 20)	   /* address space: 128 MiB */
#define INSTANCE_LIMIT_FSIZE (4UL << 20)   /* a file it writes: 4 MiB */
#define INSTANCE_LIMIT_NOFILE 64	   /* descriptors */
int instance_limit_resources(struct err *err);

/* conn.c: one peer connection of a channel. */
struct conn {
	int fd;		/* -1 when not connected */
	bool is_unix;	/* may carry descriptors (SET_DATAFD) */
	uint8_t *buf;	/* bytes received and not yet consumed */
	size_t len, cap;
	int passed_fd;	/* a descriptor that arrived with the bytes, or -1 */
};
void conn_close(struct conn *c);
int conn_send(struct conn *c, const uint8_t *buf, size_t len);
int conn_reserve(struct conn *c, size_t need);
ssize_t conn_fill(struct conn *c, size_t want);
void conn_consume(struct conn *c, size_t n);

/* The commit channel to vtpmd (instance_commit.c). */
#define COMMIT_REPORT_LEN (12 + STORE_DIGEST_LEN)
struct instance_commit {
	bool enabled;	/* --commit-fd or --commit-listen given */
	bool relaxed;	/* --commit-relaxed: report, hold nothing, until vtpmd's VTCS */
	int listen_fd;	/* RUN/NAME.commit, for a vtpmd that adopts the worker; or -1 */
	int fd;		/* vtpmd's connection, or -1 while it is away */
	bool pending;	/* gen, digest: written, not yet acknowledged */
	uint64_t gen;
	uint8_t digest[STORE_DIGEST_LEN];
	uint8_t in[12]; /* an acknowledgement being read */
	size_t in_len;
	/* a revert by SET_STATEBLOB vtpmd permits (VTCP): to a permanent blob
	 * of this generation, once (0: none); revert_write: the next write
	 * is that revert; revert: the pending report is its (VTCV) */
	uint64_t revert_permit;
	bool revert_write, revert;
};

/* A snapshot libtpms wrote during a client's command (instance_snapshot.c). */
struct instance_deferred {
	uint8_t *blob; /* NULL: none */
	size_t len;
};

/* The commit budget (instance_budget.c): a token bucket of permanent-state
 * writes, and the commands the engine declares may write NV. */
#define INSTANCE_BUDGET_BURST_S 5 /* the bucket holds this many seconds of writes */
struct instance_budget {
	bool started;
	double tokens;
	int64_t last_ms;
	bool nv_known;         /* nv_cc read from the engine */
	uint8_t nv_cc[64];     /* bit i: command code i has TPMA_CC nv (boot commands aside) */
	unsigned long refused; /* commands answered TPM_RC_NV_RATE */
	unsigned long waited;  /* writes that waited for their token */
};

/* instance.c: `vtpmd instance`, one vTPM serving the swtpm protocol. */
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
	bool client_command; /* the engine runs a client's command (its writes count) */
	bool in_command; /* ... on the data channel: its snapshots wait for its end */
	uint64_t command_floor; /* the client generation before that command */
	bool snapshot_refused; /* the power-on met a snapshot older than the state */
	struct instance_deferred deferred[STATE_SAVESTATE + 1];
	uint8_t *cache; /* decrypted permanent state, until the first power-on */
	size_t cache_len;
	struct instance_commit commit;
	const volatile sig_atomic_t *signalled; /* a signal asks the worker to stop */
	unsigned int nv_rate; /* permanent-state writes a second (--nv-rate); 0: unlimited */
	struct instance_budget budget;
	struct stateblob_key *blob_key; /* secret memory; NULL: no blob leaves */
	/* The permanent blob SET_STATEBLOB restored since the last INIT: the
	 * volatile and savestate blobs of the same save may follow it. */
	bool restored;
	uint64_t restored_generation;
	uint8_t *wrapped; /* the last blob GET_STATEBLOB wrapped (for its later offsets) */
	size_t wrapped_len;
	enum state_kind wrapped_kind;
};
int instance_main(int argc, char **argv);

/* instance_power.c: the engine as the instance runs it. */
int instance_engine_select(struct instance *in);
int instance_power_on(struct instance *in, bool delete_volatile);
void instance_power_off(struct instance *in);
uint32_t instance_internal_command(const uint8_t *cmd, size_t len);
int instance_save_state(struct instance *in, enum state_kind kind, const uint8_t *blob,
    size_t len);
void instance_tpm_command(struct instance *in, const uint8_t *cmd, size_t len);

/* instance_snapshot.c: the freshness of snapshots (state blobs, volatile and
 * savestate files): each marks the permanent state, the next client's
 * command retires them (docs/state.md). */
int instance_snapshot_mark(struct instance *in);
int instance_snapshot_retire(struct instance *in);
int instance_snapshot_check(enum state_kind kind, uint64_t stamp, uint64_t floor,
    struct err *err);
int instance_snapshot_defer(struct instance *in, enum state_kind kind, const uint8_t *blob,
    size_t len);
void instance_snapshot_drop(struct instance *in, enum state_kind kind);
int instance_snapshot_settle(struct instance *in);
int instance_snapshot_supersede(struct instance *in);

/* instance_commit.c: the worker's side of the commit channel: each
 * permanent-state write is reported; answers wait for its acknowledgement
 * (docs/state.md). */
#define INSTANCE_COMMIT_GRACE_MS 2000 /* how long a stopping worker waits for a record */
struct pollfd;
void instance_commit_report(struct instance *in);
int instance_commit_wait(struct instance *in, int grace_ms);
void instance_commit_pollfds(const struct instance *in, struct pollfd *pfd, int *n, int idx[2]);
void instance_commit_events(struct instance *in, const struct pollfd *pfd, const int idx[2]);
void instance_commit_close(struct instance *in);

/* instance_budget.c: the commit budget (docs/state.md, "Throttling"). */
bool instance_budget_empty(struct instance *in);
bool instance_budget_refuses(struct instance *in, const uint8_t *cmd, size_t len);
size_t instance_budget_answer(const struct instance *in, uint8_t out[static TPM_HEADER_LEN]);
int instance_budget_spend(struct instance *in, int grace_ms);

/* instance_ctrl.c: one handler per control-channel command. Returns false
 * when the connection must be closed after the answer. */
bool instance_ctrl_dispatch(struct instance *in, const struct ctrl_request *req);

#endif /* VTPM_INSTANCE_H */
