/*
 * instance_ctrl.c: what the instance does for each control-channel
 * command. Each handler answers with the layout its client reads (the
 * response structs of tpm_ioctl.h, big-endian); failures carry the TPM 1.2
 * result codes the protocol uses.
 */
#include <errno.h>
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

static bool
ctrl_reset_established(struct instance *in, const struct ctrl_request *req)
{
	uint8_t saved = in->locality;
	uint32_t res;

	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (req->u.locality > 4)
		return ctrl_result(in, TPM_BAD_LOCALITY);
	in->locality = req->u.locality;
	res = engine_established_reset();
	in->locality = saved;
	return ctrl_result(in, res);
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
	in->orderly = false;
	return ctrl_result(in, engine_hash_start());
}

static bool
ctrl_hash_data(struct instance *in, const struct ctrl_request *req)
{
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	return ctrl_result(in, engine_hash_data(req->u.hash.data, req->u.hash.length));
}

static bool
ctrl_hash_end(struct instance *in, const struct ctrl_request *req)
{
	(void)req;
	if (!engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	return ctrl_result(in, engine_hash_end());
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

/* The whole blob from offset follows the 16-byte header in one answer,
 * as QEMU reads it; a result with TPM_NON_FATAL set means "empty". */
static bool
ctrl_get_stateblob(struct instance *in, const struct ctrl_request *req)
{
	uint8_t hdr[16] = {0};
	enum state_kind kind = STATE_PERMANENT;
	const uint8_t *body;
	uint8_t *blob = NULL;
	size_t len = 0, n = 0;
	uint32_t res;
	bool ok;

	if (ctrl_blob_kind(req->u.getstate.type, &kind) == -1)
		res = TPM_BAD_PARAMETER;
	else
		res = engine_get_state(kind, &blob, &len);
	if (res == TPM_SUCCESS && blob != NULL && req->u.getstate.offset < len)
		n = len - req->u.getstate.offset;
	ctrl_put_u32(hdr, res);
	ctrl_put_u32(hdr + 4, 0); /* never encrypted on the wire */
	ctrl_put_u32(hdr + 8, (uint32_t)n);
	ctrl_put_u32(hdr + 12, (uint32_t)n);
	body = blob != NULL && n > 0 ? blob + req->u.getstate.offset : NULL;
	ok = ctrl_send_with_body(in, hdr, sizeof(hdr), body, n);
	if (blob != NULL) {
		explicit_bzero(blob, len);
		free(blob);
	}
	log_debug("GET_STATEBLOB %s: result 0x%x, %zu bytes", store_filename(kind), res, n);
	return ok;
}

/* Only while the TPM is off. The blob is made durable at once, so a
 * successful answer means it survives a crash before the next INIT. */
static bool
ctrl_set_stateblob(struct instance *in, const struct ctrl_request *req)
{
	enum state_kind kind;
	uint32_t res;

	if (engine_is_on())
		return ctrl_result(in, TPM_BAD_ORDINAL);
	if (ctrl_blob_kind(req->u.setstate.type, &kind) == -1)
		return ctrl_result(in, TPM_BAD_PARAMETER);
	if (req->u.setstate.flags & PTM_STATE_FLAG_ENCRYPTED) {
		log_warnx("SET_STATEBLOB: refusing a blob encrypted with a migration key");
		return ctrl_result(in, TPM_BAD_PARAMETER);
	}
	res = engine_set_state(kind, req->u.setstate.data, req->u.setstate.length);
	if (res != TPM_SUCCESS) {
		log_warnx("SET_STATEBLOB %s: rejected by the engine (0x%x)", store_filename(kind), res);
		return ctrl_result(in, res);
	}
	/* Recorded in vtpmd's freshness manifest like any write, and answered
	 * once recorded (docs/state.md). */
	if (instance_save_state(in, kind, req->u.setstate.data, req->u.setstate.length) == -1)
		return ctrl_result(in, TPM_IOERROR);
	if (kind == STATE_PERMANENT && instance_commit_wait(in, -1) == -1)
		return false;
	if (kind == STATE_VOLATILE)
		in->volatile_saved = true;
	if (kind == STATE_PERMANENT && in->cache != NULL) {
		explicit_bzero(in->cache, in->cache_len);
		free(in->cache);
		in->cache = NULL;
	}
	log_info("SET_STATEBLOB %s: %u bytes stored", store_filename(kind), req->u.setstate.length);
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
