/*
 * hwtpm_unseal.c: the host TPM's part of every vTPM start. The sealed state
 * key is loaded under the SRK; a policy session proves the host PCRs
 * (PolicyPCR) are in a configuration the administrator approved
 * (PolicyAuthorize with the ticket hwtpm_verify_approval got once); Unseal
 * returns the key, encrypted on the bus.
 *
 * These commands go through tpm2-tss's System API, with the session's
 * cryptography done here, instead of through ESYS. The reason is measured:
 * tpm2-tss 3.2 (Debian 12) builds a new OpenSSL library context for every
 * hash and nonce ESYS computes, which cost vtpmd about 4 ms of CPU per start
 * (perf: OpenSSL's name map and DRBG set up again and again), more than the
 * rest of the manager's share. tpm2-tss 4 lets a caller replace that code
 * (Esys_SetCryptoCallbacks); Debian 12 does not have it. Every other
 * host-TPM operation stays on ESYS.
 *
 * The session is started once, salted to the SRK, and kept: a TPM resets a
 * policy session that authorized a command with continueSession set. What
 * this file computes (TPM 2.0 Part 1, "Session-based Authorizations",
 * "Salted Session", "Parameter Encryption"):
 *   salt        secret sharing with the SRK, label "SECRET" (credential.c)
 *   sessionKey  KDFa(SHA-256, salt, "ATH", nonceTPM, nonceCaller, 256)
 *   command     HMAC(sessionKey, cpHash || nonceCaller || nonceTPM || attrs),
 *               cpHash = H(TPM_CC_Unseal || Name(object)): a policy session
 *               without PolicyAuthValue keys its HMAC with sessionKey alone
 *   response    HMAC(sessionKey, rpHash || nonceTPM' || nonceCaller || attrs),
 *               rpHash = H(TPM_RC_SUCCESS || TPM_CC_Unseal || parameters);
 *               checked before anything of the response is used
 *   outData     AES-128-CFB, key || IV = KDFa(SHA-256, sessionKey, "CFB",
 *               nonceTPM', nonceCaller, 256); the sealed object's authValue
 *               is empty, so nothing joins sessionKey in either key.
 * The session key lives in struct hwtpm (secret memory of the manager) and
 * is wiped when the session ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_sys.h>

#include "credential.h"
#include "vtpmd.h"
#include "hwtpm_private.h"

#define UNSEAL_NONCE_LEN  HWTPM_DIGEST_LEN
#define UNSEAL_AES_LEN    16 /* AES-128: key and IV */
#define UNSEAL_TRIES      10 /* sends of one command the TPM asks to retry */
#define UNSEAL_ATTRS      (TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_ENCRYPT)

static void
unseal_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Sends the command prepared in hw->sys with auths (NULL: none) and waits
 * for the answer, bounded like every host-TPM command; rsp (NULL: not
 * wanted) receives the response's session area. */
static TSS2_RC
unseal_execute(struct hwtpm *hw, const TSS2L_SYS_AUTH_COMMAND *auths, TSS2L_SYS_AUTH_RESPONSE *rsp)
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
static bool
unseal_again(TSS2_RC rc, int *tries)
{
	if (rc != TPM2_RC_RETRY && rc != TPM2_RC_YIELDED && rc != TPM2_RC_TESTING)
		return false;
	if (++*tries >= UNSEAL_TRIES)
		return false;
	if (rc == TPM2_RC_TESTING)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	return true;
}

/* Flushes a handle of the host TPM; failures are ignored (a flush is
 * cleanup, and a TPM that lost the handle has nothing to flush). */
static void
unseal_flush(struct hwtpm *hw, TPM2_HANDLE handle)
{
	int tries = 0;
	TSS2_RC rc;

	do {
		rc = Tss2_Sys_FlushContext_Prepare(hw->sys, handle);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, NULL, NULL);
	} while (unseal_again(rc, &tries));
}

/* Ends the policy session: flushed from the TPM (unless it is gone with
 * the connection) and its key wiped. */
void
hwtpm_policy_end(struct hwtpm *hw, bool flush)
{
	if (hw->policy.handle != 0 && flush && hw->sys != NULL)
		unseal_flush(hw, hw->policy.handle);
	OPENSSL_cleanse(&hw->policy, sizeof(hw->policy));
}

/* Starts the policy session, salted to the SRK. Returns 0 or -1. */
static int
unseal_start_session(struct hwtpm *hw)
{
	uint8_t pub[sizeof(TPM2B_PUBLIC)], salt[CREDENTIAL_SEED_LEN], *enc = NULL;
	size_t pub_len = 0, enc_len = 0, off = 0;
	TPM2B_ENCRYPTED_SECRET encrypted = {0};
	TPM2B_NONCE caller = {.size = UNSEAL_NONCE_LEN}, tpm = {0};
	TPMI_SH_AUTH_SESSION handle = 0;
	int tries = 0, ret = -1;
	TSS2_RC rc;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&hw->srk_pub, pub, sizeof(pub), &pub_len) !=
	        TSS2_RC_SUCCESS ||
	    credential_share_secret(pub, pub_len, "SECRET", salt, &enc, &enc_len) == -1 ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc, enc_len, &off, &encrypted) !=
	        TSS2_RC_SUCCESS ||
	    RAND_bytes(caller.buffer, caller.size) != 1) {
		char why[300];
		snprintf(why, sizeof(why), "salt a session to the SRK: %s", credential_error());
		hwtpm_seterr(why, 0);
		goto out;
	}
	do {
		rc = Tss2_Sys_StartAuthSession_Prepare(hw->sys, HWTPM_SRK_HANDLE, TPM2_RH_NULL,
		    &caller, &encrypted, TPM2_SE_POLICY, &hwtpm_aes_cfb, TPM2_ALG_SHA256);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, NULL, NULL);
	} while (unseal_again(rc, &tries));
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_StartAuthSession_Complete(hw->sys, &handle, &tpm);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr("start a salted policy session", rc);
		goto out;
	}
	hw->policy.handle = handle;
	hw->policy.nonce_tpm = tpm;
	if (credential_kdfa(salt, sizeof(salt), "ATH", tpm.buffer, tpm.size, caller.buffer,
	        caller.size, hw->policy.key, 8 * sizeof(hw->policy.key)) == -1) {
		hwtpm_seterr("derive the session key", 0);
		hwtpm_policy_end(hw, true);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(salt, sizeof(salt));
	free(enc);
	return ret;
}

/* HMAC-SHA-256 under the session key of the n parts, into out. */
static int
unseal_hmac(const struct hwtpm *hw, const TPM2B_DIGEST *parts[], size_t n,
    uint8_t out[HWTPM_DIGEST_LEN])
{
	uint8_t buf[4 * sizeof(TPMU_HA) + 1];
	size_t len = 0;
	unsigned int out_len = 0;

	for (size_t i = 0; i < n; i++) {
		if (parts[i]->size > sizeof(buf) - len)
			return -1;
		memcpy(buf + len, parts[i]->buffer, parts[i]->size);
		len += parts[i]->size;
	}
	if (HMAC(EVP_sha256(), hw->policy.key, sizeof(hw->policy.key), buf, len, out, &out_len) ==
	        NULL ||
	    out_len != HWTPM_DIGEST_LEN)
		return -1;
	return 0;
}

/* A session-attributes octet as a part of an HMAC. */
static TPM2B_DIGEST
unseal_attrs(TPMA_SESSION attrs)
{
	TPM2B_DIGEST d = {.size = 1};

	d.buffer[0] = attrs;
	return d;
}

/* A failure of unseal_item: the message, and -1. */
static int
unseal_fail(const char *what)
{
	hwtpm_seterr(what, 0);
	return -1;
}

/*
 * Unseal of the loaded object (handle, name) in the policy session, which
 * PolicyPCR and PolicyAuthorize have satisfied. Returns 0 with the secret
 * in secret; HWTPM_ERR_POLICY when the TPM refuses the policy; -1 for
 * other failures, among them a response that does not authenticate.
 */
static int
unseal_item(struct hwtpm *hw, TPM2_HANDLE handle, const TPM2B_NAME *name, uint8_t *secret,
    size_t secret_len)
{
	TSS2L_SYS_AUTH_COMMAND cmd = {.count = 1};
	TSS2L_SYS_AUTH_RESPONSE rsp = {0};
	TPMS_AUTH_COMMAND *auth = &cmd.auths[0];
	TPM2B_DIGEST cp = {.size = HWTPM_DIGEST_LEN}, rp = {.size = HWTPM_DIGEST_LEN};
	TPM2B_DIGEST nonce_caller, nonce_tpm, attrs, expected;
	TPM2B_SENSITIVE_DATA out = {0};
	uint8_t code[8], keys[2 * UNSEAL_AES_LEN];
	const uint8_t *rp_buf;
	size_t rp_len;
	int tries = 0, n = 0, ret = -1;
	EVP_CIPHER_CTX *aes = NULL;
	TSS2_RC rc;

	auth->sessionHandle = hw->policy.handle;
	auth->sessionAttributes = UNSEAL_ATTRS;
	auth->nonce.size = UNSEAL_NONCE_LEN;
	if (RAND_bytes(auth->nonce.buffer, auth->nonce.size) != 1)
		return unseal_fail("draw a session nonce");
	/* cpHash: the command code and the object's Name; Unseal has no
	 * parameters. */
	unseal_put32(code, TPM2_CC_Unseal);
	memcpy(&nonce_caller, &auth->nonce, sizeof(auth->nonce));
	memcpy(&nonce_tpm, &hw->policy.nonce_tpm, sizeof(hw->policy.nonce_tpm));
	attrs = unseal_attrs(auth->sessionAttributes);
	auth->hmac.size = HWTPM_DIGEST_LEN;
	if (hwtpm_sha256(code, 4, name->name, name->size, cp.buffer) == -1 ||
	    unseal_hmac(hw, (const TPM2B_DIGEST *[]){&cp, &nonce_caller, &nonce_tpm, &attrs}, 4,
	        auth->hmac.buffer) == -1)
		return unseal_fail("compute the Unseal authorization");
	do {
		rc = Tss2_Sys_Unseal_Prepare(hw->sys, handle);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, &cmd, &rsp);
	} while (unseal_again(rc, &tries));
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr("unseal state key", rc);
		return (rc & 0xfff) == (TPM2_RC_POLICY_FAIL & 0xfff) ? HWTPM_ERR_POLICY : -1;
	}
	/* The response authenticates under the session key before anything
	 * of it is used. */
	if (rsp.count != 1 || rsp.auths[0].nonce.size == 0 ||
	    rsp.auths[0].nonce.size > sizeof(nonce_tpm.buffer) ||
	    Tss2_Sys_GetRpBuffer(hw->sys, &rp_len, &rp_buf) != TSS2_RC_SUCCESS)
		return unseal_fail("the host TPM's Unseal response has no session");
	unseal_put32(code, TPM2_RC_SUCCESS);
	unseal_put32(code + 4, TPM2_CC_Unseal);
	nonce_tpm.size = rsp.auths[0].nonce.size;
	memcpy(nonce_tpm.buffer, rsp.auths[0].nonce.buffer, nonce_tpm.size);
	attrs = unseal_attrs(rsp.auths[0].sessionAttributes);
	if (hwtpm_sha256(code, 8, rp_buf, rp_len, rp.buffer) == -1 ||
	    unseal_hmac(hw, (const TPM2B_DIGEST *[]){&rp, &nonce_tpm, &nonce_caller, &attrs}, 4,
	        expected.buffer) == -1 ||
	    rsp.auths[0].hmac.size != HWTPM_DIGEST_LEN ||
	    CRYPTO_memcmp(expected.buffer, rsp.auths[0].hmac.buffer, HWTPM_DIGEST_LEN) != 0)
		return unseal_fail("the host TPM's Unseal response does not authenticate");
	memcpy(&hw->policy.nonce_tpm, &rsp.auths[0].nonce, sizeof(rsp.auths[0].nonce));
	rc = Tss2_Sys_Unseal_Complete(hw->sys, &out);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr("unseal state key", rc);
		return -1;
	}
	if (out.size != secret_len) {
		ret = unseal_fail("sealed secret has the wrong size");
		goto out;
	}
	if (credential_kdfa(hw->policy.key, sizeof(hw->policy.key), "CFB", nonce_tpm.buffer,
	        nonce_tpm.size, nonce_caller.buffer, nonce_caller.size, keys, 8 * sizeof(keys)) == 0 &&
	    (aes = EVP_CIPHER_CTX_new()) != NULL &&
	    EVP_DecryptInit_ex(aes, EVP_aes_128_cfb128(), NULL, keys, keys + UNSEAL_AES_LEN) == 1 &&
	    EVP_DecryptUpdate(aes, secret, &n, out.buffer, (int)out.size) == 1 &&
	    (size_t)n == secret_len)
		ret = 0;
	else
		unseal_fail("decrypt the unsealed key");
out:
	EVP_CIPHER_CTX_free(aes);
	OPENSSL_cleanse(keys, sizeof(keys));
	OPENSSL_cleanse(&out, sizeof(out));
	return ret;
}

/* Loads the sealed object under the SRK (its private part is encrypted to
 * the SRK, whose authValue is empty: a password session suffices). */
static TSS2_RC
unseal_load(struct hwtpm *hw, const TPM2B_PRIVATE *priv, const TPM2B_PUBLIC *pub,
    TPM2_HANDLE *handle, TPM2B_NAME *name)
{
	TSS2L_SYS_AUTH_COMMAND pw = {.count = 1, .auths = {{.sessionHandle = TPM2_RS_PW}}};
	int tries = 0;
	TSS2_RC rc;

	do {
		rc = Tss2_Sys_Load_Prepare(hw->sys, HWTPM_SRK_HANDLE, priv, pub);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, &pw, NULL);
	} while (unseal_again(rc, &tries));
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_Load_Complete(hw->sys, handle, name);
	return rc;
}

/* PolicyPCR over sel, then PolicyAuthorize of the approved digest with the
 * ticket: the session's digest becomes the sealed object's authPolicy. */
static int
unseal_policy(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap)
{
	TPM2B_DIGEST approved = {.size = HWTPM_DIGEST_LEN}, nodigest = {0};
	TPM2B_NONCE ref = {0};
	TPML_PCR_SELECTION tsel;
	int tries = 0;
	TSS2_RC rc;

	hwtpm_selection(sel, &tsel);
	do {
		rc = Tss2_Sys_PolicyPCR_Prepare(hw->sys, hw->policy.handle, &nodigest, &tsel);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, NULL, NULL);
	} while (unseal_again(rc, &tries));
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr("PolicyPCR", rc);
		return -1;
	}
	memcpy(approved.buffer, ap->policy, HWTPM_DIGEST_LEN);
	ref.size = (UINT16)strlen(APPROVAL_POLICY_REF);
	memcpy(ref.buffer, APPROVAL_POLICY_REF, ref.size);
	tries = 0;
	do {
		rc = Tss2_Sys_PolicyAuthorize_Prepare(hw->sys, hw->policy.handle, &approved, &ref,
		    &hw->approval_name, &hw->ticket);
		if (rc == TSS2_RC_SUCCESS)
			rc = unseal_execute(hw, NULL, NULL);
	} while (unseal_again(rc, &tries));
	if (rc != TSS2_RC_SUCCESS && (rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
		hwtpm_seterr("PolicyAuthorize", rc);
		return -1;
	}
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr("host PCRs are not in the approved configuration", rc);
		return HWTPM_ERR_POLICY;
	}
	return 0;
}

/*
 * Unseals a secret sealed by hwtpm_seal, in a policy session that proves
 * the host PCRs in sel match ap->policy, an approved configuration. The
 * secret must be exactly secret_len bytes. Returns 0 with it in secret;
 * HWTPM_ERR_POLICY when the PCRs are not in the approved configuration;
 * HWTPM_ERR_FOREIGN when the sealed object does not belong to this TPM; -1
 * for other failures. The object stays loaded until hwtpm_flush_pending.
 */
int
hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret,
    size_t secret_len)
{
	TPM2B_PUBLIC pub = {0};
	TPM2B_PRIVATE priv = {0};
	TPM2B_NAME name = {0};
	TPM2_HANDLE obj = 0;
	size_t off = 0;
	TSS2_RC rc;
	int ret;

	if (hwtpm_enter(hw) == -1)
		return -1;
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, blob_len, &off, &pub) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, blob_len, &off, &priv) != TSS2_RC_SUCCESS ||
	    off != blob_len) {
		hwtpm_seterr("sealed key file is malformed", 0);
		return HWTPM_ERR_FOREIGN;
	}
	if (hwtpm_verify_approval(hw, ap) == -1)
		return -1;
	rc = unseal_load(hw, &priv, &pub, &obj, &name);
	if (rc != TSS2_RC_SUCCESS) {
		/* The TPM's refusal means another TPM's object; a failure to
		 * reach the TPM is a host-TPM failure. */
		if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
			hwtpm_seterr("load the sealed key", rc);
			return -1;
		}
		hwtpm_seterr("sealed key does not load under this host's SRK", rc);
		return HWTPM_ERR_FOREIGN;
	}
	ret = -1;
	if (hw->policy.handle == 0 && unseal_start_session(hw) == -1)
		goto out;
	ret = unseal_policy(hw, sel, ap);
	if (ret == 0)
		ret = unseal_item(hw, obj, &name, secret, secret_len);
out:
	/* A policy session a failure left half-satisfied is not reused. */
	if (ret != 0) {
		OPENSSL_cleanse(secret, secret_len);
		hwtpm_policy_end(hw, true);
		unseal_flush(hw, obj);
	} else {
		hw->pending = obj;
	}
	return ret;
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
		unseal_flush(hw, hw->pending);
	hw->pending = 0;
}
