/*
 * hwtpm_seal.c: the state keys and the host TPM. A vTPM's state key is
 * sealed under the SRK at create (TPM2_Create with the key as the object's
 * sensitive data) and unsealed at every start: the sealed object is
 * loaded, a policy session proves the host PCRs (PolicyPCR) are in a
 * configuration the administrator approved (PolicyAuthorize with the
 * ticket hwtpm_verify_approval got once), and Unseal returns the key.
 *
 * These commands go through tpm2-tss's System API, with the sessions'
 * cryptography done by vtpmd (hwtpm_session.c), instead of through ESYS,
 * for two measured reasons:
 *   - tpm2-tss 3.2 (Debian 12) builds a new OpenSSL library context for
 *     every hash and nonce ESYS computes, which cost vtpmd about 4 ms of
 *     CPU per start (perf: OpenSSL's name map and DRBG set up again and
 *     again), more than the rest of the manager's share. tpm2-tss 4 lets
 *     a caller replace that code (Esys_SetCryptoCallbacks); Debian 12
 *     does not have it.
 *   - ESYS keeps a copy of every command's parameters in its own heap,
 *     unlocked and never wiped: the state key given to Esys_Create stayed
 *     there in the clear. Here the key exists only in secret memory and,
 *     encrypted, in the command buffer.
 * The PCR reads (hwtpm_pcr.c) and the CK's and BK's signatures
 * (hwtpm_attest.c: TPM2_Certify, TPM2_Quote) go the same way, for the
 * first reason and to share the policy session; every other host-TPM
 * operation stays on ESYS.
 *
 * The policy session is started once and kept (hwtpm_policy_arm: a TPM
 * resets a policy session that authorized a command with continueSession
 * set); a seal uses an HMAC session for that one command. An unsealed key
 * is decrypted in the caller's memory.
 *
 * What crosses the link is not believed for what it says (hwtpm.c): the
 * sessions are salted to the SRK public area checked against the pin; the
 * Name of the sealed object, which the command HMACs cover (cpHash), is
 * computed from the blob, never taken from TPM2_Load's response, which
 * nothing authenticates: a Load that answers another Name is refused,
 * and an object swapped behind a forged Name fails the TPM's own check of
 * the Unseal's HMAC (a salted policy session's HMAC is checked, TPM 2.0
 * Part 1, "HMAC Computation"; only the session's key keys it here).
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
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>

#include "hwtpm.h"
#include "hwtpm_private.h"

#define UNSEAL_ATTRS   (TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_ENCRYPT)
#define SEAL_ATTRS     TPMA_SESSION_DECRYPT /* and ends the session */

/* Whether rc is the TPM's answer (as opposed to a failure to reach it). */
static bool
seal_from_tpm(TSS2_RC rc)
{
	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER;
}

/* The sealed object's public area: a keyed-hash object with the secret as
 * its data, usable through auth_policy only. */
static TPM2B_PUBLIC
seal_template(const uint8_t auth_policy[TPM_DIGEST_LEN])
{
	TPM2B_PUBLIC t = {0};

	t.publicArea.type = TPM2_ALG_KEYEDHASH;
	t.publicArea.nameAlg = TPM2_ALG_SHA256;
	/*
	 * No userWithAuth: only a policy session can unseal (USER role).
	 * No adminWithPolicy: the ADMIN role is authorized by the empty
	 * authValue, so that the CK can TPM2_Certify the object (Certify
	 * needs ADMIN; with adminWithPolicy it would need a policy session
	 * with PolicyCommandCode(Certify), which PolicyAuthorize of an
	 * approved PCR policy cannot satisfy without a second approval).
	 * Whoever has the (non-secret) blob and the host TPM can thus certify
	 * it, which reveals only its Name, or ObjectChangeAuth it, which makes
	 * a copy that still unseals only with the policy. Unseal is unchanged.
	 */
	t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_NODA;
	t.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	t.publicArea.authPolicy.size = TPM_DIGEST_LEN;
	memcpy(t.publicArea.authPolicy.buffer, auth_policy, TPM_DIGEST_LEN);
	return t;
}

/*
 * TPM2_Create under the SRK of the sealed object, in a one-command HMAC
 * session whose decrypt attribute encrypts the sensitive data. The
 * command is prepared with zeros of the right size in its place (so the
 * secret never enters tpm2-tss's memory) and the encrypted sensitive area
 * is put in afterwards. Returns 0 with the object's parts, or -1.
 */
static int
seal_create(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const TPM2B_PUBLIC *tmpl, TPM2B_PRIVATE *priv, TPM2B_PUBLIC *pub, struct err *err)
{
	struct hwtpm_session *s = &hw->seal;
	TSS2L_SYS_AUTH_COMMAND cmd = {.count = 1};
	TSS2L_SYS_AUTH_RESPONSE rsp = {0};
	TPM2B_SENSITIVE_CREATE zeros = {0};
	TPML_PCR_SELECTION nopcr = {0};
	TPM2B_DATA noinfo = {0};
	TPM2B_NONCE nonce_tpm;
	size_t sens_len = 4 + secret_len; /* userAuth (empty), data */
	uint8_t *sens;
	int tries = 0, ret = -1;
	TSS2_RC rc;

	if ((sens = secret_alloc(sens_len)) == NULL)
		return hwtpm_seterr(err, 0, "out of memory");
	zeros.sensitive.data.size = (UINT16)secret_len;
	sens[2] = (uint8_t)(secret_len >> 8);
	sens[3] = (uint8_t)secret_len;
	memcpy(sens + 4, secret, secret_len);
	if (hwtpm_session_start(hw, TPM2_SE_HMAC, s, err) == -1)
		goto out;
	if (hwtpm_session_begin(s, SEAL_ATTRS, &cmd.auths[0]) == -1 ||
	    hwtpm_session_cfb(hw, s, &cmd.auths[0].nonce, &s->nonce_tpm, sens, sens_len, 1) == -1) {
		hwtpm_seterr(err, 0, "encrypt the secret to seal");
		goto out;
	}
	do {
		rc = Tss2_Sys_Create_Prepare(hw->sys, HWTPM_SRK_HANDLE, &zeros, tmpl, &noinfo, &nopcr);
		if (rc == TSS2_RC_SUCCESS)
			rc = Tss2_Sys_SetDecryptParam(hw->sys, sens_len, sens);
		if (rc == TSS2_RC_SUCCESS &&
		    hwtpm_session_sign(hw, s, TPM2_CC_Create,
		        (const TPM2B_NAME *const[]){&hw->srk_name}, 1, &cmd.auths[0]) == -1) {
			hwtpm_seterr(err, 0, "compute the Create authorization");
			goto out;
		}
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, &cmd, &rsp);
	} while (hwtpm_sapi_again(rc, &tries));
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "seal state key");
		goto out;
	}
	s->handle = 0; /* ended by its last command */
	if (hwtpm_session_check(hw, s, TPM2_CC_Create, &cmd.auths[0], &rsp, &nonce_tpm, err) == -1)
		goto out;
	rc = Tss2_Sys_Create_Complete(hw->sys, priv, pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "seal state key");
		goto out;
	}
	ret = 0;
out:
	hwtpm_session_end(hw, s, s->handle != 0);
	secret_free(sens, sens_len);
	return ret;
}

/*
 * Seals secret (at most HWTPM_SEALED_MAX bytes) under the SRK with
 * auth_policy (from pcrpolicy_authorize). The secret crosses the bus
 * encrypted. On success *blob is a malloc'd, non-secret serialisation of
 * the sealed object (TPM2B_PUBLIC || TPM2B_PRIVATE) to keep beside the
 * state.
 */
int
hwtpm_seal(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const uint8_t auth_policy[TPM_DIGEST_LEN], uint8_t **blob, size_t *blob_len, struct err *err)
{
	TPM2B_PUBLIC tmpl = seal_template(auth_policy), pub = {0};
	TPM2B_PRIVATE priv = {0};
	size_t cap = sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE), off = 0;
	uint8_t *out;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (secret_len == 0 || secret_len > HWTPM_SEALED_MAX)
		return hwtpm_seterr(err, 0, "secret too large to seal");
	if (seal_create(hw, secret, secret_len, &tmpl, &priv, &pub, err) == -1)
		return -1;
	out = malloc(cap);
	if (out == NULL || Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, out, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(&priv, out, cap, &off) != TSS2_RC_SUCCESS) {
		free(out);
		return hwtpm_seterr(err, 0, "serialise sealed key");
	}
	*blob = out;
	*blob_len = off;
	return 0;
}

/*
 * Unseal of the loaded object (handle) in the policy session, which
 * PolicyPCR and PolicyAuthorize have satisfied; the command's HMAC covers
 * name, the Name computed from the blob, so that the TPM refuses it when
 * the object at handle is another. The secret, which crosses the link
 * encrypted, is decrypted in secret (secret_len bytes, the caller's
 * memory). Returns 0, or -1 with err: ERR_POLICY when the TPM refuses the
 * policy, ERR_HOST_TPM for other failures, among them an HMAC the TPM
 * refuses and a response that does not authenticate.
 */
static int
unseal_item(struct hwtpm *hw, TPM2_HANDLE handle, const TPM2B_NAME *name, uint8_t *secret,
    size_t secret_len, struct err *err)
{
	struct hwtpm_session *s = &hw->policy;
	TSS2L_SYS_AUTH_COMMAND cmd = {.count = 1};
	TSS2L_SYS_AUTH_RESPONSE rsp = {0};
	TPM2B_SENSITIVE_DATA out = {0}; /* encrypted */
	TPM2B_NONCE nonce_tpm;
	int tries = 0;
	TSS2_RC rc;

	if (hwtpm_session_begin(s, UNSEAL_ATTRS, &cmd.auths[0]) == -1)
		return hwtpm_seterr(err, 0, "draw a session nonce");
	do {
		rc = Tss2_Sys_Unseal_Prepare(hw->sys, handle);
		if (rc == TSS2_RC_SUCCESS &&
		    hwtpm_session_sign(hw, s, TPM2_CC_Unseal, (const TPM2B_NAME *const[]){name}, 1,
		        &cmd.auths[0]) == -1)
			return hwtpm_seterr(err, 0, "compute the Unseal authorization");
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, &cmd, &rsp);
	} while (hwtpm_sapi_again(rc, &tries));
	if (hwtpm_rc_bad_auth(rc))
		return hwtpm_seterr(err, rc, "the host TPM refused the Unseal's authorization, "
		    "whose HMAC covers the sealed object's Name computed from its blob: the object "
		    "the TPM loaded is another one, or the session was altered, on the host TPM "
		    "link; nothing was unsealed");
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "unseal state key");
		if (seal_from_tpm(rc) && (rc & 0xfff) == (TPM2_RC_POLICY_FAIL & 0xfff))
			err->kind = ERR_POLICY;
		return -1;
	}
	if (hwtpm_session_check(hw, s, TPM2_CC_Unseal, &cmd.auths[0], &rsp, &nonce_tpm, err) == -1)
		return -1;
	rc = Tss2_Sys_Unseal_Complete(hw->sys, &out);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "unseal state key");
	if (out.size != secret_len)
		return hwtpm_seterr(err, 0, "sealed secret has the wrong size");
	memcpy(secret, out.buffer, secret_len);
	if (hwtpm_session_cfb(hw, s, &nonce_tpm, &cmd.auths[0].nonce, secret, secret_len, 0) == -1)
		return hwtpm_seterr(err, 0, "decrypt the unsealed key");
	return 0;
}

/*
 * Loads the sealed object (pub, priv) under the SRK: its private part is
 * encrypted to the SRK, whose authValue is empty, so a password session
 * suffices, and so nothing authenticates the response. The Name it
 * returns must be want, the one computed from pub: a proxy that swapped
 * the object would otherwise have its own unsealed under a cpHash it
 * chose. Returns 0 with *handle (to flush), or -1 with err set: ERR_FOREIGN
 * when the TPM refuses the object (another TPM's), ERR_HOST_TPM otherwise.
 */
int
hwtpm_load_sealed(struct hwtpm *hw, const TPM2B_PRIVATE *priv, const TPM2B_PUBLIC *pub,
    const TPM2B_NAME *want, TPM2_HANDLE *handle, struct err *err)
{
	TSS2L_SYS_AUTH_COMMAND pw = {.count = 1, .auths = {{.sessionHandle = TPM2_RS_PW}}};
	char got_hex[2 * sizeof(TPMU_NAME) + 1], want_hex[2 * sizeof(TPMU_NAME) + 1];
	TPM2B_NAME got = {0};
	int tries = 0;
	TSS2_RC rc;

	*handle = 0;
	do {
		rc = Tss2_Sys_Load_Prepare(hw->sys, HWTPM_SRK_HANDLE, priv, pub);
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, &pw, NULL);
	} while (hwtpm_sapi_again(rc, &tries));
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_Load_Complete(hw->sys, handle, &got);
	/* The TPM's refusal means another TPM's object; a failure to reach the
	 * TPM is a host-TPM failure. */
	if (rc != TSS2_RC_SUCCESS && seal_from_tpm(rc))
		return err_set(err, ERR_FOREIGN, "sealed key does not load under this host's SRK: %s",
		    Tss2_RC_Decode(rc));
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "load the sealed key");
	if (got.size == want->size && memcmp(got.name, want->name, want->size) == 0)
		return 0;
	hwtpm_sapi_flush(hw, *handle);
	*handle = 0;
	hwtpm_name_hex(&got, got_hex);
	hwtpm_name_hex(want, want_hex);
	return hwtpm_seterr(err, 0,
	    "the host TPM link returned another object's Name: TPM2_Load "
	    "of the sealed object answered %.16s…, its blob's Name is %.16s…; something between "
	    "vtpmd and the TPM swapped or altered it; nothing was used",
	    got_hex, want_hex);
}

/*
 * Unseals a secret sealed by hwtpm_seal, in a policy session that proves
 * the host PCRs in sel match ap->policy, an approved configuration. The
 * secret must be exactly secret_len bytes. Returns 0 with it in secret;
 * -1 with err: ERR_POLICY when the PCRs are not in the approved
 * configuration, ERR_FOREIGN when the sealed object does not belong to this
 * TPM, ERR_HOST_TPM for other failures. The object stays loaded until hwtpm_flush_pending.
 */
int
hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret,
    size_t secret_len, struct err *err)
{
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	TPM2B_NAME name = {0};
	TPM2_HANDLE obj = 0;
	int ret;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hwtpm_sealed_parse(blob, blob_len, &pub, &priv, NULL, &name, err) == -1)
		return -1;
	if (hwtpm_verify_approval(hw, ap, err) == -1)
		return -1;
	if (hwtpm_load_sealed(hw, &priv, &pub, &name, &obj, err) == -1)
		return -1;
	ret = hwtpm_policy_arm(hw, sel, ap, err);
	if (ret == 0)
		ret = unseal_item(hw, obj, &name, secret, secret_len, err);
	/* A policy session a failure left half-satisfied is not reused. */
	if (ret != 0) {
		OPENSSL_cleanse(secret, secret_len);
		hwtpm_session_end(hw, &hw->policy, true);
		hwtpm_sapi_flush(hw, obj);
	} else {
		hw->pending = obj;
	}
	return ret;
}
