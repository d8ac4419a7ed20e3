/*
 * ctrl.c: the codec of the swtpm control channel (the protocol QEMU's
 * "-tpmdev emulator" speaks). A request is a big-endian uint32 command
 * number followed by a payload whose layout depends on the command
 * (/usr/include/swtpm/tpm_ioctl.h); the two layouts that carry data
 * (SET_STATEBLOB, HASH_DATA) declare its length first. This module only
 * frames and decodes; instance_ctrl.c executes.
 */
#include <stddef.h>
#include <string.h>

#include <swtpm/tpm_ioctl.h>

#include "instance.h"

/* Newer than the swtpm headers Debian 12 ships (swtpm 0.7). */
#ifndef CMD_LOCK_STORAGE
#define CMD_LOCK_STORAGE 0x13
#endif

static uint32_t
ctrl_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
ctrl_get64(const uint8_t *p)
{
	return (uint64_t)ctrl_get32(p) << 32 | ctrl_get32(p + 4);
}

size_t
ctrl_put_u32(uint8_t *out, uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
	return 4;
}

size_t
ctrl_put_u64(uint8_t *out, uint64_t v)
{
	ctrl_put_u32(out, (uint32_t)(v >> 32));
	ctrl_put_u32(out + 4, (uint32_t)v);
	return 8;
}

/* Fixed payload size of each command; -1 for unknown commands. The
 * variable part of SET_STATEBLOB and HASH_DATA follows the fixed part. */
static long
ctrl_fixed_size(uint32_t cmd)
{
	switch (cmd) {
	case CMD_GET_CAPABILITY:
	case CMD_SHUTDOWN:
	case CMD_GET_TPMESTABLISHED:
	case CMD_HASH_START:
	case CMD_HASH_END:
	case CMD_CANCEL_TPM_CMD:
	case CMD_STORE_VOLATILE:
	case CMD_STOP:
	case CMD_GET_CONFIG:
	case CMD_SET_DATAFD:
		return 0;
	case CMD_SET_LOCALITY:
	case CMD_RESET_TPMESTABLISHED:
		return 1;
	case CMD_INIT:
	case CMD_SET_BUFFERSIZE:
	case CMD_LOCK_STORAGE:
	case CMD_HASH_DATA: /* length; data follows */
		return 4;
	case CMD_GET_STATEBLOB:
	case CMD_SET_STATEBLOB: /* flags, type, length; data follows */
		return 12;
	case CMD_GET_INFO:
		return 16;
	default:
		return -1;
	}
}

/*
 * Tells whether buf holds a whole request. On CTRL_COMPLETE *need is its
 * length; on CTRL_INCOMPLETE *need is the least number of bytes to wait
 * for. An unknown command is complete at 4 bytes (it is answered with
 * TPM_BAD_ORDINAL and the connection is closed, since its length is
 * unknowable). CTRL_OVERSIZED: a declared data length above CTRL_MAX_BLOB.
 */
enum ctrl_parse
ctrl_request_size(const uint8_t *buf, size_t len, size_t *need)
{
	uint32_t cmd, dlen;
	long fixed;

	*need = 4;
	if (len < 4)
		return CTRL_INCOMPLETE;
	cmd = ctrl_get32(buf);
	fixed = ctrl_fixed_size(cmd);
	if (fixed < 0)
		return CTRL_COMPLETE;
	*need = 4 + (size_t)fixed;
	if (len < *need)
		return CTRL_INCOMPLETE;
	if (cmd == CMD_SET_STATEBLOB || cmd == CMD_HASH_DATA) {
		dlen = ctrl_get32(buf + 4 + (size_t)fixed - 4);
		if (dlen > CTRL_MAX_BLOB)
			return CTRL_OVERSIZED;
		*need += dlen;
		if (len < *need)
			return CTRL_INCOMPLETE;
	}
	return CTRL_COMPLETE;
}

/*
 * Decodes the complete request at buf (as sized by ctrl_request_size) into
 * *req; data pointers point into buf. Returns 0, or -1 for an unknown
 * command (req->cmd is still set).
 */
int
ctrl_decode(const uint8_t *buf, size_t len, struct ctrl_request *req)
{
	const uint8_t *p = buf + 4;

	memset(req, 0, sizeof(*req));
	if (len < 4)
		return -1;
	req->cmd = ctrl_get32(buf);
	if (ctrl_fixed_size(req->cmd) < 0 || len < 4 + (size_t)ctrl_fixed_size(req->cmd))
		return -1;
	switch (req->cmd) {
	case CMD_INIT:
		req->u.init_flags = ctrl_get32(p);
		break;
	case CMD_SET_LOCALITY:
	case CMD_RESET_TPMESTABLISHED:
		req->u.locality = p[0];
		break;
	case CMD_SET_BUFFERSIZE:
		req->u.buffersize = ctrl_get32(p);
		break;
	case CMD_LOCK_STORAGE:
		req->u.retries = ctrl_get32(p);
		break;
	case CMD_GET_STATEBLOB:
		req->u.getstate.flags = ctrl_get32(p);
		req->u.getstate.type = ctrl_get32(p + 4);
		req->u.getstate.offset = ctrl_get32(p + 8);
		break;
	case CMD_SET_STATEBLOB:
		req->u.setstate.flags = ctrl_get32(p);
		req->u.setstate.type = ctrl_get32(p + 4);
		req->u.setstate.length = ctrl_get32(p + 8);
		req->u.setstate.data = p + 12;
		if (len < 16 + (size_t)req->u.setstate.length)
			return -1;
		break;
	case CMD_HASH_DATA:
		req->u.hash.length = ctrl_get32(p);
		req->u.hash.data = p + 4;
		if (len < 8 + (size_t)req->u.hash.length)
			return -1;
		break;
	case CMD_GET_INFO:
		req->u.info.flags = ctrl_get64(p);
		req->u.info.offset = ctrl_get32(p + 8);
		break;
	default:
		break;
	}
	return 0;
}

const char *
ctrl_cmd_name(uint32_t cmd)
{
	static const char *const names[] = {
		[CMD_GET_CAPABILITY] = "GET_CAPABILITY",
		[CMD_INIT] = "INIT",
		[CMD_SHUTDOWN] = "SHUTDOWN",
		[CMD_GET_TPMESTABLISHED] = "GET_TPMESTABLISHED",
		[CMD_SET_LOCALITY] = "SET_LOCALITY",
		[CMD_HASH_START] = "HASH_START",
		[CMD_HASH_DATA] = "HASH_DATA",
		[CMD_HASH_END] = "HASH_END",
		[CMD_CANCEL_TPM_CMD] = "CANCEL_TPM_CMD",
		[CMD_STORE_VOLATILE] = "STORE_VOLATILE",
		[CMD_RESET_TPMESTABLISHED] = "RESET_TPMESTABLISHED",
		[CMD_GET_STATEBLOB] = "GET_STATEBLOB",
		[CMD_SET_STATEBLOB] = "SET_STATEBLOB",
		[CMD_STOP] = "STOP",
		[CMD_GET_CONFIG] = "GET_CONFIG",
		[CMD_SET_DATAFD] = "SET_DATAFD",
		[CMD_SET_BUFFERSIZE] = "SET_BUFFERSIZE",
		[CMD_GET_INFO] = "GET_INFO",
		[CMD_LOCK_STORAGE] = "LOCK_STORAGE",
	};

	if (cmd >= sizeof(names) / sizeof(names[0]) || names[cmd] == NULL)
		return "unknown";
	return names[cmd];
}
