/*
 * instance_ctrl.c: what the instance does for each control-channel
 * command. Each handler answers with the layout its client reads (the
 * response structs of tpm_ioctl.h, big-endian); failures carry the TPM 1.2
 * result codes the protocol uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libtpms/tpm_error.h>
#include <swtpm/tpm_ioctl.h>

#include "instance.h"

#ifndef CMD_LOCK_STORAGE
#define CMD_LOCK_STORAGE 0x13
#endif
#ifndef PTM_CAP_LOCK_STORAGE
#define PTM_CAP_LOCK_STORAGE (1 << 16)
#endif

/* Sends a bare result; returns false when the connection broke. */
static bool
ctrl_result(struct instance *in, uint32_t res)
{
	uint8_t out[4];

	ctrl_put_u32(out, res);
	return conn_send(&in->ctrl, out, sizeof(out)) == 0;
}

/*
 * Sends a header and a body as one write. swtpm_ioctl reads each answer
 * with a single read(), so an answer sent in two parts could arrive as two
 * and the client then saw only the header (GET_INFO printed an empty
 * string). The copy is wiped: a state blob holds the TPM's secrets.
 * Returns false when the connection broke.
 */
static bool
ctrl_send_with_body(struct instance *in, const uint8_t *hdr, size_t hdr_len,
    const uint8_t *body, size_t body_len)
{
	uint8_t *out;
	bool ok;

	out = malloc(hdr_len + body_len);
	if (out == NULL) {
		log_warn("control channel: answer of %zu bytes", hdr_len + body_len);
		return false;
	}
	memcpy(out, hdr, hdr_len);
	if (body_len > 0)
		memcpy(out + hdr_len, body, body_len);
	ok = conn_send(&in->ctrl, out, hdr_len + body_len) == 0;
	explicit_bzero(out, hdr_len + body_len);
	free(out);
	return ok;
}

static bool
ctrl_get_capability(struct instance *in, const struct ctrl_request *req)
{
	uint64_t caps = PTM_CAP_INIT | PTM_CAP_SHUTDOWN | PTM_CAP_GET_TPMESTABLISHED |
	    PTM_CAP_SET_LOCALITY | PTM_CAP_HASHING | PTM_CAP_CANCEL_TPM_CMD |
	    PTM_CAP_STORE_VOLATILE | PTM_CAP_RESET_TPMESTABLISHED | PTM_CAP_GET_STATEBLOB |
	    PTM_CAP_SET_STATEBLOB | PTM_CAP_STOP | PTM_CAP_GET_CONFIG | PTM_CAP_SET_BUFFERSIZE |
	    PTM_CAP_GET_INFO | PTM_CAP_LOCK_STORAGE;
	uint8_t out[8];

	(void)req;
	if (in->ctrl.is_unix)
		caps |= PTM_CAP_SET_DATAFD;
	ctrl_put_u64(out, caps);
	return conn_send(&in->ctrl, out, sizeof(out)) == 0;
}

static bool
ctrl_init(struct instance *in, const struct ctrl_request *req)
{
	bool delete_volatile = (req->u.init_flags & PTM_INIT_FLAG_DELETE_VOLATILE) != 0;

	in->restored = false; /* the blobs of a save come before its INIT */
	instance_power_off(in);
	if (instance_power_on(in, delete_volatile) == -1)
		return ctrl_result(in, TPM_FAIL);
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_stop(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	instance_power_off(in);
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_shutdown(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	instance_power_off(in);
	in->terminate = true;
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_get_established(struct instance *in, const struct ctrl_request *req)
{
	uint8_t out[8] = {0};
	bool bit = false;
	uint32_t res = TPM_BAD_ORDINAL;

	(void)req;
	if (engine_is_on())
		res = engine_established_get(&bit);
	ctrl_put_u32(out, res);
	out[4] = bit;
	return conn_send(&in->ctrl, out, sizeof(out)) == 0;
}

/* The answer of a control command that retired a snapshot
 * (instance_snapshot_retire): like a data-channel command's, only once
 * vtpmd has recorded the retirement (a stop asked meanwhile leaves it
 * unanswered, and the connection is closed). */
static bool
ctrl_result_recorded(struct instance *in, uint32_t res)
{
	if (instance_commit_wait(in, -1) == -1)
		return false;
	return ctrl_result(in, res);
}

static bool
ctrl_reset_established(struct instance *in, const struct ctrl_request *req)
{
	uint8_t saved = in->locality;
	uint32_t res;

	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (req->u.locality > 4)
		return ctrl_result(in, TPM_BAD_LOCALITY);
	if (instance_snapshot_retire(in) == -1)
		return ctrl_result(in, TPM_FAIL);
	in->locality = req->u.locality;
	res = engine_established_reset();
	in->locality = saved;
	return ctrl_result_recorded(in, res);
}

static bool
ctrl_set_locality(struct instance *in, const struct ctrl_request *req)
{
	if (req->u.locality > 4)
		return ctrl_result(in, TPM_BAD_LOCALITY);
	in->locality = req->u.locality;
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_hash_start(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (instance_snapshot_retire(in) == -1)
		return ctrl_result(in, TPM_FAIL);
	in->orderly = false;
	return ctrl_result_recorded(in, engine_hash_start());
}

static bool
ctrl_hash_data(struct instance *in, const struct ctrl_request *req)
{
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (instance_snapshot_retire(in) == -1)
		return ctrl_result(in, TPM_FAIL);
	return ctrl_result_recorded(in, engine_hash_data(req->u.hash.data, req->u.hash.length));
}

static bool
ctrl_hash_end(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (instance_snapshot_retire(in) == -1)
		return ctrl_result(in, TPM_FAIL);
	return ctrl_result_recorded(in, engine_hash_end());
}

static bool
ctrl_cancel(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	return ctrl_result(in, engine_cancel());
}

static bool
ctrl_store_volatile(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	return ctrl_result(in, engine_store_volatile());
}

static int
ctrl_blob_kind(uint32_t type, enum state_kind *kind)
{
	switch (type) {
	case PTM_BLOB_TYPE_PERMANENT:
		*kind = STATE_PERMANENT;
		return 0;
	case PTM_BLOB_TYPE_VOLATILE:
		*kind = STATE_VOLATILE;
		return 0;
	case PTM_BLOB_TYPE_SAVESTATE:
		*kind = STATE_SAVESTATE;
		return 0;
	default:
		return -1;
	}
}

/* The blob GET_STATEBLOB hands out: the libtpms blob of kind, wrapped
 * under the instance's blob key and carrying its permanent generation
 * (stateblob.c), once the permanent state is marked as snapshotted
 * (instance_snapshot.c). Returns a TPM result; on success *out is
 * malloc'd. */
static uint32_t
ctrl_wrapped_state(struct instance *in, enum state_kind kind, uint8_t **out, size_t *out_len)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	uint32_t res;
	int rc;

	if (in->blob_key == NULL) {
		log_warnx("GET_STATEBLOB %s: refused: this instance has no key to wrap its state "
			  "with (--plaintext-state), and no TPM state leaves it in the clear",
		    store_filename(kind));
		return TPM_FAIL;
	}
	if (instance_snapshot_mark(in) == -1)
		return TPM_FAIL;
	res = engine_get_state(kind, &blob, &len);
	if (res != TPM_SUCCESS || blob == NULL)
		return res;
	rc = stateblob_wrap(in->blob_key, kind, in->tpm_version,
	    store_generation(in->store, STATE_PERMANENT), blob, len, out, out_len);
	explicit_bzero(blob, len);
	free(blob);
	if (rc == -1) {
		log_warnx("GET_STATEBLOB %s: cannot wrap the state", store_filename(kind));
		return TPM_FAIL;
	}
	return TPM_SUCCESS;
}

/* The whole blob from offset follows the 16-byte header in one answer,
 * as QEMU reads it; a result with TPM_NON_FATAL set means "empty". A read
 * from offset 0 wraps the state anew; a later offset continues the blob
 * the last read of that kind wrapped, so that its parts fit together. */
static bool
ctrl_get_stateblob(struct instance *in, const struct ctrl_request *req)
{
	uint8_t hdr[16] = {0};
	enum state_kind kind = STATE_PERMANENT;
	const uint8_t *body;
	uint32_t off = req->u.getstate.offset, res = TPM_SUCCESS;
	size_t n = 0;
	bool ok;

	if (ctrl_blob_kind(req->u.getstate.type, &kind) == -1) {
		res = TPM_BAD_PARAMETER;
	} else if (off == 0 || in->wrapped == NULL || in->wrapped_kind != kind) {
		free(in->wrapped);
		in->wrapped = NULL;
		in->wrapped_len = 0;
		res = ctrl_wrapped_state(in, kind, &in->wrapped, &in->wrapped_len);
		in->wrapped_kind = kind;
	}
	if (res == TPM_SUCCESS && in->wrapped != NULL && off < in->wrapped_len)
		n = in->wrapped_len - off;
	ctrl_put_u32(hdr, res);
	ctrl_put_u32(hdr + 4, res == TPM_SUCCESS ? PTM_STATE_FLAG_ENCRYPTED : 0);
	ctrl_put_u32(hdr + 8, (uint32_t)n);
	ctrl_put_u32(hdr + 12, (uint32_t)n);
	body = n > 0 ? in->wrapped + off : NULL;
	ok = ctrl_send_with_body(in, hdr, sizeof(hdr), body, n);
	log_debug("GET_STATEBLOB %s: result 0x%x, %zu bytes (wrapped)", store_filename(kind), res,
	    n);
	return ok;
}

/* A UUID's 16 bytes as its text, 8-4-4-4-12 (out: 37 bytes). */
static void
ctrl_uuid_text(const uint8_t uuid[STATEBLOB_UUID_LEN], char *out)
{
	char hex[2 * STATEBLOB_UUID_LEN + 1];

	hex_encode(uuid, STATEBLOB_UUID_LEN, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Whether an older blob is the revert vtpmd permitted (an operator's
 * allow-revert): a permanent blob of that generation, once; the permit is
 * spent, and the write that follows is reported as that revert. */
static bool
ctrl_revert_permitted(struct instance *in, const struct stateblob_info *info)
{
	struct instance_commit *c = &in->commit;

	if (info->kind != STATE_PERMANENT || c->revert_permit == 0 ||
	    info->generation != c->revert_permit)
		return false;
	log_info("SET_STATEBLOB permanent.state: generation %llu, older than this instance's "
		 "state: the revert vtpmd permitted", (unsigned long long)info->generation);
	c->revert_permit = 0;
	c->revert_write = true;
	return true;
}

/*
 * Opens a blob SET_STATEBLOB brought for kind: wrapped under this
 * instance's key, for this instance, of this kind and TPM version, and
 * not older than the instance's state. Returns TPM_SUCCESS with the
 * plaintext in *plain (wiped and freed by the caller) and its generation,
 * or the result to answer, the reason logged.
 */
static uint32_t
ctrl_unwrap_state(struct instance *in, enum state_kind kind, const uint8_t *blob, size_t len,
    uint8_t **plain, size_t *plain_len, uint64_t *generation)
{
	const char *name = store_filename(kind);
	struct stateblob_info info;
	enum stateblob_verdict v;
	char theirs[2 * STATEBLOB_KEY_ID_LEN + 1], ours[2 * STATEBLOB_KEY_ID_LEN + 1];
	uint64_t floor = store_client_generation(in->store, STATE_PERMANENT);

	if (in->blob_key == NULL) {
		log_warnx("SET_STATEBLOB %s: refused: this instance has no blob key "
			  "(--plaintext-state) and loads no state from outside", name);
		return TPM_FAIL;
	}
	v = stateblob_unwrap(in->blob_key, blob, len, &info, plain, plain_len);
	if (v == STATEBLOB_OTHER_INSTANCE) {
		ctrl_uuid_text(info.uuid, theirs);
		ctrl_uuid_text(in->blob_key->uuid, ours);
		log_warnx("SET_STATEBLOB %s: refused: the blob is instance %s's, not this "
			  "instance's (%s); the state is unchanged", name, theirs, ours);
		return TPM_FAIL;
	}
	if (v == STATEBLOB_OTHER_KEY) {
		hex_encode(info.key_id, 8, theirs);
		hex_encode(in->blob_key->key_id, 8, ours);
		log_warnx("SET_STATEBLOB %s: refused: the blob is wrapped for another host "
			  "(key id %s...), not this one (%s...); the state is unchanged", name, theirs,
		    ours);
		return TPM_FAIL;
	}
	if (v != STATEBLOB_OK) {
		log_warnx("SET_STATEBLOB %s: refused: the blob %s; the state is unchanged", name,
		    stateblob_strerror(v));
		return v == STATEBLOB_NOMEM ? TPM_FAIL : TPM_BAD_PARAMETER;
	}
	/* Blobs of one save carry one generation: after its permanent blob,
	 * the others of that save are as fresh as what was restored. */
	if (in->restored && in->restored_generation < floor)
		floor = in->restored_generation;
	if (info.kind != kind || info.tpm_version != in->tpm_version ||
	    (info.generation < floor && !ctrl_revert_permitted(in, &info))) {
		if (info.generation < floor)
			log_warnx("SET_STATEBLOB %s: refused: the blob holds generation %llu, older "
				  "than this instance's state (generation %llu: a command changed it "
				  "since the blob was saved, and loading it would roll the TPM back); "
				  "the state is unchanged", name,
			    (unsigned long long)info.generation,
			    (unsigned long long)floor);
		else
			log_warnx("SET_STATEBLOB %s: refused: the blob holds %s state of a TPM %s",
			    name, store_filename(info.kind), info.tpm_version == 1 ? "1.2" : "2.0");
		explicit_bzero(*plain, *plain_len);
		free(*plain);
		*plain = NULL;
		return TPM_FAIL;
	}
	*generation = info.generation;
	return TPM_SUCCESS;
}

/*
 * Where a restore is recorded: the blob of generation `from` is the
 * instance's state again, stored as generation `to`. The freshness
 * manifest (issue #12 item 1) records it here; until then the log does.
 */
static void
ctrl_restored(struct instance *in, enum state_kind kind, uint64_t from, uint64_t to)
{
	log_info("SET_STATEBLOB %s: restored generation %llu, stored as generation %llu",
	    store_filename(kind), (unsigned long long)from, (unsigned long long)to);
	if (kind == STATE_PERMANENT) {
		in->restored = true;
		in->restored_generation = from;
	}
}

/* A restore of permanent state is a write like any (a host-TPM counter
 * increment): refused, with TPM_RETRY, while the commit budget is empty
 * (instance_budget.c), rather than waited for. */
static bool
ctrl_over_budget(struct instance *in)
{
	if (!instance_budget_empty(in))
		return false;
	log_warnx("SET_STATEBLOB %s: refused for now: permanent-state writes are limited to %u "
	          "a second (the commit budget, nv-write-rate); the state is unchanged, try again "
	          "later",
	    store_filename(STATE_PERMANENT), in->nv_rate);
	return true;
}

/* Only while the TPM is off, and only a blob wrapped for this instance
 * (ctrl_unwrap_state). The blob is made durable at once, so a successful
 * answer means it survives a crash before the next INIT. */
static bool
ctrl_set_stateblob(struct instance *in, const struct ctrl_request *req)
{
	enum state_kind kind;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	uint64_t generation = 0;
	uint32_t res;

	if (engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (ctrl_blob_kind(req->u.setstate.type, &kind) == -1)
		return ctrl_result(in, TPM_BAD_PARAMETER);
	if (kind == STATE_PERMANENT && ctrl_over_budget(in))
		return ctrl_result(in, TPM_RETRY);
	/* The flags are QEMU's echo of GET_STATEBLOB's: the blob says itself
	 * how it is wrapped. */
	res = ctrl_unwrap_state(in, kind, req->u.setstate.data, req->u.setstate.length, &plain,
	    &plain_len, &generation);
	if (res != TPM_SUCCESS)
		return ctrl_result(in, res);
	/* Restored permanent state supersedes the volatile and savestate of
	 * the state it replaces (a volatile blob of its own save may follow). */
	if (kind == STATE_PERMANENT && instance_snapshot_supersede(in) == -1) {
		res = TPM_IOERROR;
	} else {
		/* A client's write, reported to vtpmd for its freshness manifest
		 * like any (docs/state.md). Written only, never handed to libtpms
		 * (TPMLIB_SetState): libtpms would keep it in a cache of its own
		 * until a load of that kind consumes it, and a load from that
		 * cache skips instance_io_load and its check of the floor (TPM
		 * 1.2's savestate outlived INIT, Startup(ST_CLEAR) and the guest's
		 * extends, and a later Startup(ST_STATE) loaded it). Every load
		 * reads the file, checked. */
		in->client_command = true;
		if (instance_save_state(in, kind, plain, plain_len) == -1)
			res = TPM_IOERROR;
		in->client_command = false;
		in->commit.revert_write = false; /* reported, or failed */
	}
	explicit_bzero(plain, plain_len);
	free(plain);
	if (res != TPM_SUCCESS)
		return ctrl_result(in, res);
	if (kind == STATE_VOLATILE)
		in->volatile_saved = true;
	if (kind == STATE_PERMANENT && in->cache != NULL) {
		explicit_bzero(in->cache, in->cache_len);
		free(in->cache);
		in->cache = NULL;
	}
	ctrl_restored(in, kind, generation, store_generation(in->store, kind));
	/* Answered once vtpmd has recorded the restore. */
	if (kind == STATE_PERMANENT && instance_commit_wait(in, -1) == -1)
		return false;
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_get_config(struct instance *in, const struct ctrl_request *req)
{
	uint8_t out[8];

	(void)req;
	ctrl_put_u32(out, TPM_SUCCESS);
	ctrl_put_u32(out + 4, store_encrypted(in->store) ? PTM_CONFIG_FLAG_FILE_KEY : 0);
	return conn_send(&in->ctrl, out, sizeof(out)) == 0;
}

/* The data channel arrives as a descriptor passed with this message; it
 * replaces any previous one (a restarted QEMU brings a new one). */
static bool
ctrl_set_datafd(struct instance *in, const struct ctrl_request *req)
{
	int fd = in->ctrl.passed_fd;

	(void)req;
	in->ctrl.passed_fd = -1;
	if (fd == -1)
		return ctrl_result(in, TPM_BAD_PARAMETER);
	if (in->data.fd != -1) {
		log_info("data channel replaced by a new one");
		conn_close(&in->data);
	}
	in->data.fd = fd;
	in->data.is_unix = true;
	return ctrl_result(in, TPM_SUCCESS);
}

static bool
ctrl_set_buffersize(struct instance *in, const struct ctrl_request *req)
{
	uint8_t out[16] = {0};
	uint32_t size, min = 0, max = 0, res = TPM_SUCCESS;

	if (req->u.buffersize != 0 && engine_is_on()) {
		res = TPM_BAD_ORDINAL;
		size = engine_set_buffer_size(0, &min, &max);
	} else {
		size = engine_set_buffer_size(req->u.buffersize, &min, &max);
	}
	ctrl_put_u32(out, res);
	ctrl_put_u32(out + 4, size);
	ctrl_put_u32(out + 8, min);
	ctrl_put_u32(out + 12, max);
	return conn_send(&in->ctrl, out, sizeof(out)) == 0;
}

static bool
ctrl_get_info(struct instance *in, const struct ctrl_request *req)
{
	uint8_t hdr[12];
	size_t total, n;
	char *info;
	bool ok;

	info = engine_info(req->u.info.flags);
	if (info == NULL)
		return ctrl_result(in, TPM_SIZE);
	total = strlen(info) + 1;
	if (req->u.info.offset >= total) {
		free(info);
		return ctrl_result(in, TPM_BAD_PARAMETER);
	}
	n = total - req->u.info.offset;
	if (n > PTM_GETINFO_SIZE)
		n = PTM_GETINFO_SIZE;
	ctrl_put_u32(hdr, TPM_SUCCESS);
	ctrl_put_u32(hdr + 4, (uint32_t)total);
	ctrl_put_u32(hdr + 8, (uint32_t)n);
	ok = ctrl_send_with_body(in, hdr, sizeof(hdr), (uint8_t *)info + req->u.info.offset, n);
	free(info);
	return ok;
}

/* The state directory is locked from start to exit, so storage is always
 * locked by this instance when asked. */
static bool
ctrl_lock_storage(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	return ctrl_result(in, TPM_SUCCESS);
}

typedef bool (*ctrl_handler)(struct instance *, const struct ctrl_request *);

static const ctrl_handler ctrl_handlers[] = {
	[CMD_GET_CAPABILITY] = ctrl_get_capability,
	[CMD_INIT] = ctrl_init,
	[CMD_SHUTDOWN] = ctrl_shutdown,
	[CMD_GET_TPMESTABLISHED] = ctrl_get_established,
	[CMD_SET_LOCALITY] = ctrl_set_locality,
	[CMD_HASH_START] = ctrl_hash_start,
	[CMD_HASH_DATA] = ctrl_hash_data,
	[CMD_HASH_END] = ctrl_hash_end,
	[CMD_CANCEL_TPM_CMD] = ctrl_cancel,
	[CMD_STORE_VOLATILE] = ctrl_store_volatile,
	[CMD_RESET_TPMESTABLISHED] = ctrl_reset_established,
	[CMD_GET_STATEBLOB] = ctrl_get_stateblob,
	[CMD_SET_STATEBLOB] = ctrl_set_stateblob,
	[CMD_STOP] = ctrl_stop,
	[CMD_GET_CONFIG] = ctrl_get_config,
	[CMD_SET_DATAFD] = ctrl_set_datafd,
	[CMD_SET_BUFFERSIZE] = ctrl_set_buffersize,
	[CMD_GET_INFO] = ctrl_get_info,
	[CMD_LOCK_STORAGE] = ctrl_lock_storage,
};

bool
instance_ctrl_dispatch(struct instance *in, const struct ctrl_request *req)
{
	bool keep;

	log_debug("ctrl %s", ctrl_cmd_name(req->cmd));
	if (req->cmd >= sizeof(ctrl_handlers) / sizeof(ctrl_handlers[0]) ||
	    ctrl_handlers[req->cmd] == NULL) {
		log_warnx("control channel: unknown command 0x%08x; closing the connection",
		    req->cmd);
		ctrl_result(in, TPM_BAD_ORDINAL);
		return false;
	}
	keep = ctrl_handlers[req->cmd](in, req);
	if (in->ctrl.passed_fd != -1) {
		/* A descriptor sent with anything but SET_DATAFD is dropped. */
		close(in->ctrl.passed_fd);
		in->ctrl.passed_fd = -1;
	}
	return keep;
}
