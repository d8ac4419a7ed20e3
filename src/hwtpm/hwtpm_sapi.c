/*
 * hwtpm_sapi.c: the commands vtpmd sends to the host TPM through tpm2-tss's
 * System API itself (hwtpm_seal.c's seal and unseal, whose session
 * cryptography is vtpmd's): sending one prepared command within
 * HWTPM_TIMEOUT_MS, sending it again when the TPM asks to, and releasing
 * what vtpmd holds in the TPM (flushes, ended sessions with their keys
 * wiped). The connection (hwtpm.c) uses it to clean up as well, so it sits
 * below both.
 */
#include <stdbool.h>
#include <time.h>

#include <openssl/crypto.h>

#include <tss2/tss2_sys.h>

#include "hwtpm.h"
#include "hwtpm_private.h"

#define HWTPM_SAPI_TRIES 10 /* sends of one command the TPM asks to retry */

/* Sends the command prepared in hw->sys with auths (NULL: none) and waits
 * for the answer, bounded like every host-TPM command; rsp (NULL: not
 * wanted) receives the response's session area. */
TSS2_RC
hwtpm_sapi_execute(
    struct hwtpm *hw, const TSS2L_SYS_AUTH_COMMAND *auths, TSS2L_SYS_AUTH_RESPONSE *rsp)
{
	TSS2_RC rc = TSS2_RC_SUCCESS;

	if (auths != NULL)
		rc = Tss2_Sys_SetCmdAuths(hw->sys, auths);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_ExecuteAsync(hw->sys);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_ExecuteFinish(hw->sys, HWTPM_TIMEOUT_MS);
	if (rc == TSS2_RC_SUCCESS && rsp != NULL)
		rc = Tss2_Sys_GetRspAuths(hw->sys, rsp);
	return rc;
}

/* Whether a command that got rc is to be sent again: the TPM's warnings
 * that ask for it (ESYS retries them too). A self-test in progress gets a
 * moment. */
bool
hwtpm_sapi_again(TSS2_RC rc, int *tries)
{
	if (rc != TPM2_RC_RETRY && rc != TPM2_RC_YIELDED && rc != TPM2_RC_TESTING)
		return false;
	if (++*tries >= HWTPM_SAPI_TRIES)
		return false;
	if (rc == TPM2_RC_TESTING)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	return true;
}

/* Flushes a handle of the host TPM; failures are ignored (a flush is
 * cleanup, and a TPM that lost the handle has nothing to flush). */
void
hwtpm_sapi_flush(struct hwtpm *hw, TPM2_HANDLE handle)
{
	int tries = 0;
	TSS2_RC rc;

	do {
		rc = Tss2_Sys_FlushContext_Prepare(hw->sys, handle);
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, NULL, NULL);
	} while (hwtpm_sapi_again(rc, &tries));
}

/* Ends session s: flushed from the TPM when flush is set (not when it is
 * gone with the connection or its last command ended it), key wiped. */
void
hwtpm_session_end(struct hwtpm *hw, struct hwtpm_session *s, bool flush)
{
	if (s->handle != 0 && flush && hw->sys != NULL)
		hwtpm_sapi_flush(hw, s->handle);
	OPENSSL_cleanse(s, sizeof(*s));
}

/* Drops the object the last successful hwtpm_unseal left loaded. The
 * caller does this once the unsealed key is on its way, off the path of
 * the instance's start; every operation that loads objects calls it first. */
void
hwtpm_flush_pending(struct hwtpm *hw)
{
	if (hw->pending == 0)
		return;
	if (hw->sys != NULL)
		hwtpm_sapi_flush(hw, hw->pending);
	hw->pending = 0;
}
