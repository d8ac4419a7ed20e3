/*
 * tpmwire.c: the frame every TPM command and response shares (tag, size,
 * code; big-endian), how the data channel cuts a client's byte stream into
 * commands, and the handful of commands vtpmd sends to an engine on its
 * own: Startup(CLEAR) at start and an orderly Shutdown(STATE) before a
 * reset, so abrupt resets do not count as dictionary attacks.
 */
#include <string.h>

#include "instance.h"

#define TPM2_ST_NO_SESSIONS 0x8001
#define TPM2_CC_STARTUP 0x00000144
#define TPM2_CC_SHUTDOWN 0x00000145
#define TPM2_SU_CLEAR 0x0000
#define TPM2_SU_STATE 0x0001
#define TPM12_TAG_RQU_COMMAND 0x00c1
#define TPM12_TAG_RSP_COMMAND 0x00c4
#define TPM12_ORD_STARTUP 0x00000099
#define TPM12_ORD_SAVESTATE 0x00000098
#define TPM12_ST_CLEAR 0x0001

static void
wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
wire_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses the 10-byte header at buf. Returns 0, or -1 when len < 10. */
int
tpmwire_header(const uint8_t *buf, size_t len, struct tpm_header *h)
{
	if (len < TPM_HEADER_LEN)
		return -1;
	h->tag = (uint16_t)(buf[0] << 8 | buf[1]);
	h->size = wire_get32(buf + 2);
	h->code = wire_get32(buf + 6);
	return 0;
}

/*
 * Frames the data channel's input the way swtpm does: a command is its
 * 10-byte header and the rest of the size that header declares; the next
 * command follows directly, and nothing marks the end of one but its size.
 * buf holds the len bytes received so far; max is the engine's buffer size.
 * Returns TPMWIRE_COMPLETE with the first command's length in *need,
 * TPMWIRE_INCOMPLETE with the length it needs in all in *need (10 while
 * its header is incomplete), or TPMWIRE_BAD_SIZE (*need is 0) when the
 * declared size is below 10 or above max: nothing after such a header can
 * be framed, so the channel answers TPM_RC_COMMAND_SIZE and closes. Nothing
 * is allocated from a declared size: *need never exceeds max.
 */
enum tpmwire_frame
tpmwire_frame(const uint8_t *buf, size_t len, uint32_t max, size_t *need)
{
	struct tpm_header h;

	*need = TPM_HEADER_LEN;
	if (tpmwire_header(buf, len, &h) == -1)
		return TPMWIRE_INCOMPLETE;
	if (h.size < TPM_HEADER_LEN || h.size > max) {
		*need = 0;
		return TPMWIRE_BAD_SIZE;
	}
	*need = h.size;
	return len < h.size ? TPMWIRE_INCOMPLETE : TPMWIRE_COMPLETE;
}

/* Writes a bare error response with rc in the framing of tpm_version. */
size_t
tpmwire_error(uint8_t out[static TPM_HEADER_LEN], unsigned int tpm_version, uint32_t rc)
{
	wire_put16(out, tpm_version == 2 ? TPM2_ST_NO_SESSIONS : TPM12_TAG_RSP_COMMAND);
	wire_put32(out + 2, TPM_HEADER_LEN);
	wire_put32(out + 6, rc);
	return TPM_HEADER_LEN;
}

static size_t
wire_command(uint8_t out[static 12], unsigned int tpm_version, uint32_t code, int param)
{
	size_t len = param >= 0 ? 12 : 10;

	wire_put16(out, tpm_version == 2 ? TPM2_ST_NO_SESSIONS : TPM12_TAG_RQU_COMMAND);
	wire_put32(out + 2, (uint32_t)len);
	wire_put32(out + 6, code);
	if (param >= 0)
		wire_put16(out + 10, (uint16_t)param);
	return len;
}

size_t
tpmwire_startup_clear(uint8_t out[static 12], unsigned int tpm_version)
{
	if (tpm_version == 2)
		return wire_command(out, 2, TPM2_CC_STARTUP, TPM2_SU_CLEAR);
	return wire_command(out, 1, TPM12_ORD_STARTUP, TPM12_ST_CLEAR);
}

/* TPM2_Shutdown(STATE), or TPM_SaveState for TPM 1.2. */
size_t
tpmwire_shutdown_state(uint8_t out[static 12], unsigned int tpm_version)
{
	if (tpm_version == 2)
		return wire_command(out, 2, TPM2_CC_SHUTDOWN, TPM2_SU_STATE);
	return wire_command(out, 1, TPM12_ORD_SAVESTATE, -1);
}

/* True when cmd is the command that ends a TPM's power cycle orderly. */
bool
tpmwire_is_shutdown(const uint8_t *cmd, size_t len, unsigned int tpm_version)
{
	struct tpm_header h;

	if (tpmwire_header(cmd, len, &h) == -1)
		return false;
	return h.code == (tpm_version == 2 ? TPM2_CC_SHUTDOWN : TPM12_ORD_SAVESTATE);
}
