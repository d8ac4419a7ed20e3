/*
 * hwtpm_counter.c: vtpmd's freshness anchor, a monotonic counter in the
 * host TPM (an NV index of type TPM_NT_COUNTER, docs/state.md).
 *
 * The index is written and read with its authValue, which vtpmd derives
 * from a key sealed under the approval policy (src/manager/fresh.c): so
 * only vtpmd in an approved host configuration, or the owner, can
 * increment it. Every read and increment runs in an HMAC session keyed
 * with that authValue, whose response HMAC ESYS checks: an interposer on
 * the TPM's link can neither replay an old value nor fake an increment,
 * and a look-alike index (same attributes, another authValue) fails the
 * first command. The authValue crosses the link once, at the definition,
 * encrypted in a session salted to the pinned SRK.
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <tss2/tss2_esys.h>

#include "hwtpm.h"
#include "hwtpm_private.h"

#define COUNTER_TRIES 8 /* TPM_RC_NV_RATE / RETRY: back-off 5 ms .. 640 ms */

static const TPMA_NV counter_attrs = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) |
    TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD |
    TPMA_NV_NO_DA;

static TPM2B_NV_PUBLIC
counter_template(uint32_t handle)
{
	TPM2B_NV_PUBLIC pub = {0};

	pub.nvPublic.nvIndex = handle;
	pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
	pub.nvPublic.attributes = counter_attrs;
	pub.nvPublic.dataSize = 8;
	return pub;
}

/* Whether rc says the TPM is busy writing NV (or asks to be asked again). */
static bool
counter_busy(TSS2_RC rc)
{
	TSS2_RC base = rc & ~(TSS2_RC)TSS2_RC_LAYER_MASK;

	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER &&
	    (base == TPM2_RC_NV_RATE || base == TPM2_RC_RETRY || base == TPM2_RC_YIELDED);
}

static void
counter_backoff(int try)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (5L << try) * 1000000L};

	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec = ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
	}
	nanosleep(&ts, NULL);
}

/* The unsalted HMAC session of the counter's commands, kept across them. */
static int
counter_session(struct hwtpm *hw, struct err *err)
{
	static const TPMT_SYM_DEF no_encryption = {.algorithm = TPM2_ALG_NULL};
	TSS2_RC rc;

	if (hw->counter_session != ESYS_TR_NONE)
		return 0;
	rc = Esys_StartAuthSession(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &no_encryption, TPM2_ALG_SHA256,
	    &hw->counter_session);
	if (rc != TSS2_RC_SUCCESS) {
		hw->counter_session = ESYS_TR_NONE;
		return hwtpm_seterr(err, rc, "start the counter's session");
	}
	Esys_TRSess_SetAttributes(hw->esys, hw->counter_session, TPMA_SESSION_CONTINUESESSION,
	    0xff);
	return 0;
}

/* Defines the counter, its authValue encrypted under the salted session. */
static int
counter_define(struct hwtpm *hw, uint32_t handle, const TPM2B_AUTH *auth, struct err *err)
{
	TPM2B_NV_PUBLIC pub = counter_template(handle);
	ESYS_TR tr = ESYS_TR_NONE;
	TSS2_RC rc;

	if (hwtpm_esys_session(hw, err) == -1)
		return -1;
	rc = Esys_NV_DefineSpace(hw->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, hw->esys_session,
	    ESYS_TR_NONE, auth, &pub, &tr);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "define the freshness counter at 0x%08x", handle);
	Esys_TR_Close(hw->esys, &tr);
	log_info("host TPM: freshness counter defined at NV index 0x%08x", handle);
	return 0;
}

/* Checks what the TPM says the index is against what vtpmd defines. */
static int
counter_check_public(struct hwtpm *hw, uint32_t handle, struct err *err)
{
	TPM2B_NV_PUBLIC *pub = NULL, want = counter_template(handle);
	TPMA_NV attrs;
	TSS2_RC rc;
	int ret = 0;

	rc = Esys_NV_ReadPublic(hw->esys, hw->counter, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    &pub, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "read the public area of NV index 0x%08x", handle);
	attrs = pub->nvPublic.attributes & ~(TPMA_NV)TPMA_NV_WRITTEN;
	if (pub->nvPublic.nameAlg != want.nvPublic.nameAlg || attrs != counter_attrs ||
	    pub->nvPublic.dataSize != 8 || pub->nvPublic.authPolicy.size != 0)
		ret = err_set(err, ERR_FOREIGN, "NV index 0x%08x is not vtpmd's freshness counter "
		    "(attributes 0x%08x, size %u): another index at its handle", handle,
		    (unsigned int)pub->nvPublic.attributes, (unsigned int)pub->nvPublic.dataSize);
	Esys_Free(pub);
	return ret;
}

static int
counter_read(struct hwtpm *hw, uint64_t *value, struct err *err)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;
	int try = 0;

	do {
		rc = Esys_NV_Read(hw->esys, hw->counter, hw->counter, hw->counter_session,
		    ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data);
	} while (counter_busy(rc) && try < COUNTER_TRIES && (counter_backoff(try++), true));
	if (rc != TSS2_RC_SUCCESS) {
		if (hwtpm_rc_bad_auth(rc))
			return err_set(err, ERR_FOREIGN, "the freshness counter refused vtpmd's "
			    "authorization: the index at its handle is not the one vtpmd defined");
		return hwtpm_seterr(err, rc, "read the freshness counter");
	}
	*value = 0;
	for (int i = 0; i < data->size && i < 8; i++)
		*value = *value << 8 | data->buffer[i];
	Esys_Free(data);
	return 0;
}

static int
counter_bump(struct hwtpm *hw, struct err *err)
{
	TSS2_RC rc;
	int try = 0;

	do {
		rc = Esys_NV_Increment(hw->esys, hw->counter, hw->counter, hw->counter_session,
		    ESYS_TR_NONE, ESYS_TR_NONE);
	} while (counter_busy(rc) && try < COUNTER_TRIES && (counter_backoff(try++), true));
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if (hwtpm_rc_bad_auth(rc))
		return err_set(err, ERR_FOREIGN, "the freshness counter refused vtpmd's "
		    "authorization: the index at its handle is not the one vtpmd defined");
	return hwtpm_seterr(err, rc, "increment the freshness counter");
}

/*
 * Opens vtpmd's counter at NV index handle with authValue auth (32
 * bytes), defining it first when define is true and it does not exist (a
 * new counter is incremented once, to be readable). Reads its value into
 * *value. Returns 0, or -1 with err: ERR_ABSENT when there is no index
 * and define is false; ERR_FOREIGN when the index there is not vtpmd's
 * (attributes, or its authorization refused); ERR_HOST_TPM otherwise.
 */
int
hwtpm_counter_open(struct hwtpm *hw, uint32_t handle, const uint8_t auth[32], bool define,
    uint64_t *value, struct err *err)
{
	TPM2B_AUTH a = {.size = 32};
	bool defined = false;
	TSS2_RC rc;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	memcpy(a.buffer, auth, 32);
	if (hw->counter != ESYS_TR_NONE)
		Esys_TR_Close(hw->esys, &hw->counter);
	hw->counter = ESYS_TR_NONE;
	rc = Esys_TR_FromTPMPublic(hw->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    &hw->counter);
	if (rc != TSS2_RC_SUCCESS) {
		hw->counter = ESYS_TR_NONE;
		if (!define) {
			OPENSSL_cleanse(&a, sizeof(a));
			return err_set(err, ERR_ABSENT, "the host TPM has no NV index 0x%08x, "
			    "vtpmd's freshness counter", handle);
		}
		if (counter_define(hw, handle, &a, err) == -1)
			goto fail;
		rc = Esys_TR_FromTPMPublic(hw->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE,
		    ESYS_TR_NONE, &hw->counter);
		if (rc != TSS2_RC_SUCCESS) {
			hw->counter = ESYS_TR_NONE;
			hwtpm_seterr(err, rc, "open the freshness counter just defined");
			goto fail;
		}
		defined = true;
	}
	if (counter_check_public(hw, handle, err) == -1 ||
	    Esys_TR_SetAuth(hw->esys, hw->counter, &a) != TSS2_RC_SUCCESS ||
	    counter_session(hw, err) == -1)
		goto fail;
	OPENSSL_cleanse(&a, sizeof(a));
	if (defined && counter_bump(hw, err) == -1)
		return -1;
	return counter_read(hw, value, err);
fail:
	OPENSSL_cleanse(&a, sizeof(a));
	return -1;
}

/* Increments the counter hwtpm_counter_open opened (retrying with back-off
 * while the TPM answers NV_RATE or RETRY). Returns 0, or -1 with err. */
int
hwtpm_counter_increment(struct hwtpm *hw, struct err *err)
{
	if (hw->esys == NULL || hw->counter == ESYS_TR_NONE)
		return err_set(err, ERR_HOST_TPM, "the freshness counter is not open");
	return counter_bump(hw, err);
}

/* Reads the opened counter again. Returns 0, or -1 with err. */
int
hwtpm_counter_read(struct hwtpm *hw, uint64_t *value, struct err *err)
{
	if (hw->esys == NULL || hw->counter == ESYS_TR_NONE)
		return err_set(err, ERR_HOST_TPM, "the freshness counter is not open");
	return counter_read(hw, value, err);
}

/*
 * Whether the host TPM holds an NV index at handle (vtpmd's counter or
 * another program's): *present. A first setup is refused while it does
 * (src/manager/fresh.c). Returns 0, or -1 with err.
 */
int
hwtpm_counter_present(struct hwtpm *hw, uint32_t handle, bool *present, struct err *err)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	rc = Esys_GetCapability(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    TPM2_CAP_HANDLES, handle, 1, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "list the NV index at 0x%08x", handle);
	*present = cap->data.handles.count == 1 && cap->data.handles.handle[0] == handle;
	Esys_Free(cap);
	return 0;
}

/*
 * Undefines the NV index at handle with the owner's authorization (an
 * empty ownerAuth: the operator's --reanchor, src/manager/fresh.c). An
 * index defined with the platform's authorization is refused by the TPM.
 * Returns 0, or -1 with err.
 */
int
hwtpm_counter_undefine(struct hwtpm *hw, uint32_t handle, struct err *err)
{
	ESYS_TR tr = ESYS_TR_NONE;
	TSS2_RC rc;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hw->counter != ESYS_TR_NONE)
		Esys_TR_Close(hw->esys, &hw->counter);
	hw->counter = ESYS_TR_NONE;
	rc = Esys_TR_FromTPMPublic(hw->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "open NV index 0x%08x", handle);
	rc = Esys_NV_UndefineSpace(
	    hw->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_TR_Close(hw->esys, &tr);
		return hwtpm_seterr(err, rc,
		    "undefine NV index 0x%08x with the owner's (empty) "
		    "authorization",
		    handle);
	}
	log_warnx("host TPM: NV index 0x%08x undefined (--reanchor)", handle);
	return 0;
}
