/*
 * engine.c: the TPM engine of this process, libtpms.
 *
 * libtpms keeps one TPM in global state, so there is one engine per process
 * and this module holds it. It is the only file that sees TPMLIB_* types:
 * the rest of the instance sees project types and TPM 1.2 result codes
 * (which the control protocol also uses). State reaches the disk only
 * through the engine_io the instance registers.
 */
#include <stdlib.h>
#include <string.h>

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_memory.h>
#include <libtpms/tpm_nvfilename.h>
#include <libtpms/tpm_tis.h>

#include "instance.h"

static struct engine {
	struct engine_io io;
	unsigned int tpm_version;
	bool on;
	unsigned char *rsp; /* response buffer, reused across commands */
	uint32_t rsp_size;
} eng;

static int
engine_kind(const char *name, enum state_kind *kind)
{
	if (strcmp(name, TPM_PERMANENT_ALL_NAME) == 0)
		*kind = STATE_PERMANENT;
	else if (strcmp(name, TPM_VOLATILESTATE_NAME) == 0)
		*kind = STATE_VOLATILE;
	else if (strcmp(name, TPM_SAVESTATE_NAME) == 0)
		*kind = STATE_SAVESTATE;
	else
		return -1;
	return 0;
}

static TPM_RESULT
engine_cb_nvram_init(void)
{
	return TPM_SUCCESS;
}

/* libtpms frees *data with free(); TPM_RETRY tells it there is none yet. */
static TPM_RESULT
engine_cb_load(unsigned char **data, uint32_t *length, uint32_t tpm_number, const char *name)
{
	enum state_kind kind;
	uint8_t *blob = NULL;
	size_t len = 0;
	bool absent = false;

	(void)tpm_number;
	if (engine_kind(name, &kind) == -1)
		return TPM_FAIL;
	if (eng.io.load(eng.io.ctx, kind, &blob, &len, &absent) == -1)
		return absent ? TPM_RETRY : TPM_FAIL;
	*data = blob;
	*length = (uint32_t)len;
	return TPM_SUCCESS;
}

static TPM_RESULT
engine_cb_store(const unsigned char *data, uint32_t length, uint32_t tpm_number,
    const char *name)
{
	enum state_kind kind;

	(void)tpm_number;
	if (engine_kind(name, &kind) == -1)
		return TPM_FAIL;
	return eng.io.save(eng.io.ctx, kind, data, length) == 0 ? TPM_SUCCESS : TPM_FAIL;
}

static TPM_RESULT
engine_cb_delete(uint32_t tpm_number, const char *name, TPM_BOOL must_exist)
{
	enum state_kind kind;

	(void)tpm_number;
	(void)must_exist;
	if (engine_kind(name, &kind) == -1)
		return TPM_FAIL;
	return eng.io.remove(eng.io.ctx, kind) == 0 ? TPM_SUCCESS : TPM_FAIL;
}

static TPM_RESULT
engine_cb_io_init(void)
{
	return TPM_SUCCESS;
}

static TPM_RESULT
engine_cb_locality(TPM_MODIFIER_INDICATOR *locality, uint32_t tpm_number)
{
	(void)tpm_number;
	*locality = eng.io.locality(eng.io.ctx);
	return TPM_SUCCESS;
}

static TPM_RESULT
engine_cb_presence(TPM_BOOL *present, uint32_t tpm_number)
{
	(void)tpm_number;
	*present = FALSE;
	return TPM_SUCCESS;
}

/* Chooses TPM 1.2 (tpm_version 1) or 2.0 (2) and routes state through io.
 * Call once, before engine_power_on. Returns 0 or -1. */
int
engine_select(unsigned int tpm_version, const struct engine_io *io)
{
	static struct libtpms_callbacks cbs = {
		.sizeOfStruct = sizeof(struct libtpms_callbacks),
		.tpm_nvram_init = engine_cb_nvram_init,
		.tpm_nvram_loaddata = engine_cb_load,
		.tpm_nvram_storedata = engine_cb_store,
		.tpm_nvram_deletename = engine_cb_delete,
		.tpm_io_init = engine_cb_io_init,
		.tpm_io_getlocality = engine_cb_locality,
		.tpm_io_getphysicalpresence = engine_cb_presence,
	};

	eng.io = *io;
	eng.tpm_version = tpm_version;
	if (TPMLIB_ChooseTPMVersion(tpm_version == 2 ? TPMLIB_TPM_VERSION_2
						     : TPMLIB_TPM_VERSION_1_2) != TPM_SUCCESS)
		return -1;
	if (TPMLIB_RegisterCallbacks(&cbs) != TPM_SUCCESS)
		return -1;
	return 0;
}

/* Powers the TPM on, loading its state through io (a new TPM is
 * manufactured when there is none). Returns 0, or -1 when libtpms fails. */
int
engine_power_on(void)
{
	if (eng.on)
		return 0;
	if (TPMLIB_MainInit() != TPM_SUCCESS)
		return -1;
	eng.on = true;
	return 0;
}

void
engine_power_off(void)
{
	if (!eng.on)
		return;
	TPMLIB_Terminate();
	eng.on = false;
}

bool
engine_is_on(void)
{
	return eng.on;
}

/*
 * Executes one TPM command. On success *rsp points at the response, valid
 * until the next call. Returns 0, or -1 when libtpms could not produce a
 * response at all.
 */
int
engine_process(const uint8_t *cmd, size_t cmd_len, const uint8_t **rsp, size_t *rsp_len)
{
	uint32_t len = 0;

	if (TPMLIB_Process(&eng.rsp, &len, &eng.rsp_size, (unsigned char *)cmd,
	        (uint32_t)cmd_len) != TPM_SUCCESS)
		return -1;
	*rsp = eng.rsp;
	*rsp_len = len;
	return 0;
}

uint32_t
engine_store_volatile(void)
{
	unsigned char *buf = NULL;
	uint32_t len = 0;
	TPM_RESULT rc;

	rc = TPMLIB_VolatileAll_Store(&buf, &len);
	if (rc == TPM_SUCCESS && eng.io.save(eng.io.ctx, STATE_VOLATILE, buf, len) != 0)
		rc = TPM_IOERROR;
	if (buf != NULL)
		TPM_Free(buf);
	return rc;
}

static enum TPMLIB_StateType
engine_state_type(enum state_kind kind)
{
	switch (kind) {
	case STATE_PERMANENT:
		return TPMLIB_STATE_PERMANENT;
	case STATE_VOLATILE:
		return TPMLIB_STATE_VOLATILE;
	case STATE_SAVESTATE:
		break;
	}
	return TPMLIB_STATE_SAVE_STATE;
}

/* Gets a state blob (malloc'd, caller frees). TPM_RETRY means empty. */
uint32_t
engine_get_state(enum state_kind kind, uint8_t **blob, size_t *len)
{
	unsigned char *buf = NULL;
	uint32_t blen = 0;
	TPM_RESULT rc;

	rc = TPMLIB_GetState(engine_state_type(kind), &buf, &blen);
	if (rc != TPM_SUCCESS)
		return rc;
	*blob = buf;
	*len = blen;
	return TPM_SUCCESS;
}

/* Hands a state blob to libtpms for the next power-on; TPM must be off. */
uint32_t
engine_set_state(enum state_kind kind, const uint8_t *blob, size_t len)
{
	return TPMLIB_SetState(engine_state_type(kind), blob, (uint32_t)len);
}

uint32_t
engine_set_buffer_size(uint32_t wanted, uint32_t *min, uint32_t *max)
{
	return TPMLIB_SetBufferSize(wanted, min, max);
}

uint32_t
engine_buffer_size(void)
{
	uint32_t min, max;

	return TPMLIB_SetBufferSize(0, &min, &max);
}

/* Returns libtpms' JSON description for flags (malloc'd), or NULL. */
char *
engine_info(uint64_t flags)
{
	return TPMLIB_GetInfo((enum TPMLIB_InfoFlags)flags);
}

uint32_t
engine_cancel(void)
{
	return TPMLIB_CancelCommand();
}

uint32_t
engine_established_get(bool *bit)
{
	TPM_BOOL b = 0;
	TPM_RESULT rc;

	rc = TPM_IO_TpmEstablished_Get(&b);
	*bit = b != 0;
	return rc;
}

uint32_t
engine_established_reset(void)
{
	return TPM_IO_TpmEstablished_Reset();
}

uint32_t
engine_hash_start(void)
{
	return TPM_IO_Hash_Start();
}

uint32_t
engine_hash_data(const uint8_t *data, size_t len)
{
	return TPM_IO_Hash_Data(data, (uint32_t)len);
}

uint32_t
engine_hash_end(void)
{
	return TPM_IO_Hash_End();
}
