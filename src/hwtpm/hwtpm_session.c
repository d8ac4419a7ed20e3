/*
 * hwtpm_session.c: the host-TPM sessions whose cryptography vtpmd does
 * itself, over tpm2-tss's System API (why, rather than ESYS: hwtpm_seal.c):
 * the seal's and the unseal's (hwtpm_seal.c), the PCR reads' (hwtpm_pcr.c).
 *
 * Sessions are salted to the SRK, whose public area hwtpm_connect checked
 * against the pin before any session, and unbound. What this file
 * computes (TPM 2.0 Part 1, "Session-based Authorizations", "Salted
 * Session", "Parameter Encryption", "Audit"):
 *   salt        secret sharing with the SRK, label "SECRET" (credential.c)
 *   sessionKey  KDFa(SHA-256, salt, "ATH", nonceTPM, nonceCaller, 256)
 *   command     HMAC(sessionKey, cpHash || nonceCaller || nonceTPM || attrs),
 *               cpHash = H(commandCode || Name(handle) || parameters)
 *   response    HMAC(sessionKey, rpHash || nonceTPM' || nonceCaller || attrs),
 *               rpHash = H(TPM_RC_SUCCESS || commandCode || parameters),
 *               checked before anything of the response is used
 *   parameters  AES-128-CFB, key || IV = KDFa(SHA-256, sessionKey, "CFB",
 *               nonceNewer, nonceOlder, 256): the caller's nonce is the
 *               newer one for a command, the TPM's for a response.
 * The authValues involved are empty (the SRK's; the sealed object's, and a
 * policy session without PolicyAuthValue uses none; an audit session
 * authorizes no entity), so nothing joins sessionKey in any key. Salts,
 * session keys and CFB keys live in struct hwtpm, which is secret memory,
 * and are wiped when used up or when their session ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_sys.h>

#include "hwtpm.h"
#include "hwtpm_private.h"

#define SESSION_NONCE_LEN TPM_DIGEST_LEN
#define SESSION_AES_LEN   16 /* AES-128: key and IV */

static void
session_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Starts a session of type salted to the SRK into s; the salt exists in
 * hw->salt (secret memory) until sessionKey is derived. Returns 0 or -1. */
int
hwtpm_session_start(struct hwtpm *hw, TPM2_SE type, struct hwtpm_session *s, struct err *err)
{
	uint8_t pub[sizeof(TPM2B_PUBLIC)], *enc = NULL;
	size_t pub_len = 0, enc_len = 0, off = 0;
	TPM2B_ENCRYPTED_SECRET encrypted = {0};
	TPM2B_NONCE caller = {.size = SESSION_NONCE_LEN}, tpm = {0};
	TPMI_SH_AUTH_SESSION handle = 0;
	int tries = 0, ret = -1;
	struct err share = {.msg = "marshalling"};
	TSS2_RC rc;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&hw->srk_pub, pub, sizeof(pub), &pub_len) !=
	        TSS2_RC_SUCCESS ||
	    credential_share_secret(pub, pub_len, "SECRET", hw->salt, &enc, &enc_len, &share) ==
	        -1 ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc, enc_len, &off, &encrypted) !=
	        TSS2_RC_SUCCESS ||
	    RAND_bytes(caller.buffer, caller.size) != 1) {
		hwtpm_seterr(err, 0, "salt a session to the SRK: %s", share.msg);
		goto out;
	}
	do {
		rc = Tss2_Sys_StartAuthSession_Prepare(hw->sys, HWTPM_SRK_HANDLE, TPM2_RH_NULL,
		    &caller, &encrypted, type, &hwtpm_aes_cfb, TPM2_ALG_SHA256);
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, NULL, NULL);
	} while (hwtpm_sapi_again(rc, &tries));
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_Sys_StartAuthSession_Complete(hw->sys, &handle, &tpm);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "start a salted session");
		goto out;
	}
	s->handle = handle;
	s->nonce_tpm = tpm;
	if (credential_kdfa(hw->salt, sizeof(hw->salt), "ATH", tpm.buffer, tpm.size, caller.buffer,
	        caller.size, s->key, 8 * sizeof(s->key), NULL) == -1) {
		hwtpm_seterr(err, 0, "derive the session key");
		hwtpm_session_end(hw, s, true);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(hw->salt, sizeof(hw->salt));
	free(enc);
	return ret;
}

/* HMAC-SHA-256 under s's key of the n parts, into out. */
static int
session_hmac(const struct hwtpm_session *s, const TPM2B_DIGEST *parts[], size_t n,
    uint8_t out[TPM_DIGEST_LEN])
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
	if (HMAC(EVP_sha256(), s->key, sizeof(s->key), buf, len, out, &out_len) == NULL ||
	    out_len != TPM_DIGEST_LEN)
		return -1;
	return 0;
}

/* A session-attributes octet as a part of an HMAC. */
static TPM2B_DIGEST
session_attrs(TPMA_SESSION attrs)
{
	TPM2B_DIGEST d = {.size = 1};

	d.buffer[0] = attrs;
	return d;
}

/* AES-128-CFB over len bytes of buf in place, under s's key and the two
 * nonces (newer first); encrypt or decrypt. The key and IV are derived
 * into hw->cfb (secret memory) and wiped. Returns 0 or -1. */
int
hwtpm_session_cfb(struct hwtpm *hw, const struct hwtpm_session *s, const TPM2B_NONCE *newer,
    const TPM2B_NONCE *older, uint8_t *buf, size_t len, int encrypt)
{
	EVP_CIPHER_CTX *aes = NULL;
	int n = 0, ret = -1;

	_Static_assert(sizeof(hw->cfb) == 2 * SESSION_AES_LEN, "AES-128 key and IV");
	if (credential_kdfa(s->key, sizeof(s->key), "CFB", newer->buffer, newer->size,
	        older->buffer, older->size, hw->cfb, 8 * sizeof(hw->cfb), NULL) == 0 &&
	    (aes = EVP_CIPHER_CTX_new()) != NULL &&
	    EVP_CipherInit_ex(aes, EVP_aes_128_cfb128(), NULL, hw->cfb, hw->cfb + SESSION_AES_LEN,
	        encrypt) == 1 &&
	    EVP_CipherUpdate(aes, buf, &n, buf, (int)len) == 1 && (size_t)n == len)
		ret = 0;
	EVP_CIPHER_CTX_free(aes);
	OPENSSL_cleanse(hw->cfb, sizeof(hw->cfb));
	return ret;
}

/* Fills auth for s with a fresh nonce and attrs; its HMAC comes later
 * (hwtpm_session_sign), once the parameters are final. Returns 0 or -1. */
int
hwtpm_session_begin(const struct hwtpm_session *s, TPMA_SESSION attrs, TPMS_AUTH_COMMAND *auth)
{
	memset(auth, 0, sizeof(*auth));
	auth->sessionHandle = s->handle;
	auth->sessionAttributes = attrs;
	auth->nonce.size = SESSION_NONCE_LEN;
	return RAND_bytes(auth->nonce.buffer, auth->nonce.size) == 1 ? 0 : -1;
}

/* The command HMAC of auth for the command prepared in hw->sys, code cc,
 * whose handles are called names[0..n_names) (in the command's order; an
 * empty Name for none). Returns 0 or -1. */
int
hwtpm_session_sign(struct hwtpm *hw, const struct hwtpm_session *s, TPM2_CC cc,
    const TPM2B_NAME *const names[], size_t n_names, TPMS_AUTH_COMMAND *auth)
{
	TPM2B_DIGEST cp = {.size = TPM_DIGEST_LEN}, nonce_caller, nonce_tpm, attrs;
	uint8_t head[4 + HWTPM_SIGN_NAMES * sizeof(TPMU_NAME)];
	const uint8_t *params;
	size_t params_len, head_len = 4;

	if (n_names > HWTPM_SIGN_NAMES ||
	    Tss2_Sys_GetCpBuffer(hw->sys, &params_len, &params) != TSS2_RC_SUCCESS)
		return -1;
	session_put32(head, cc);
	for (size_t i = 0; i < n_names; i++) {
		if (names[i]->size > sizeof(names[i]->name))
			return -1;
		memcpy(head + head_len, names[i]->name, names[i]->size);
		head_len += names[i]->size;
	}
	if (hwtpm_sha256(head, head_len, params, params_len, cp.buffer) == -1)
		return -1;
	memcpy(&nonce_caller, &auth->nonce, sizeof(auth->nonce));
	memcpy(&nonce_tpm, &s->nonce_tpm, sizeof(s->nonce_tpm));
	attrs = session_attrs(auth->sessionAttributes);
	auth->hmac.size = TPM_DIGEST_LEN;
	return session_hmac(s, (const TPM2B_DIGEST *[]){&cp, &nonce_caller, &nonce_tpm, &attrs}, 4,
	    auth->hmac.buffer);
}

/* The name of a command whose response is checked, for messages. */
static const char *
session_command(TPM2_CC cc)
{
	switch (cc) {
	case TPM2_CC_Create: return "TPM2_Create";
	case TPM2_CC_Unseal: return "TPM2_Unseal";
	case TPM2_CC_PCR_Read: return "TPM2_PCR_Read";
	case TPM2_CC_Certify: return "TPM2_Certify";
	case TPM2_CC_Quote: return "TPM2_Quote";
	default: return "a command";
	}
}

/* Checks the session area of the response to cc that hw->sys holds,
 * against the command's auth; on success the TPM's new nonce is kept in s
 * and copied to *nonce_tpm. Returns 0 or -1 (message set). */
int
hwtpm_session_check(struct hwtpm *hw, struct hwtpm_session *s, TPM2_CC cc,
    const TPMS_AUTH_COMMAND *auth, const TSS2L_SYS_AUTH_RESPONSE *rsp, TPM2B_NONCE *nonce_tpm,
    struct err *err)
{
	return hwtpm_session_check_at(hw, s, cc, auth, rsp, 0, nonce_tpm, err);
}

/* As hwtpm_session_check, for the command's last session, its at-th
 * (after password authorizations of the handles before). */
int
hwtpm_session_check_at(struct hwtpm *hw, struct hwtpm_session *s, TPM2_CC cc,
    const TPMS_AUTH_COMMAND *auth, const TSS2L_SYS_AUTH_RESPONSE *rsp, size_t at,
    TPM2B_NONCE *nonce_tpm, struct err *err)
{
	TPM2B_DIGEST rp = {.size = TPM_DIGEST_LEN}, nonce_caller, nonce_new, attrs, expected;
	const TPMS_AUTH_RESPONSE *r = &rsp->auths[at < TSS2_SYS_MAX_SESSIONS ? at : 0];
	const uint8_t *params;
	size_t params_len;
	uint8_t code[8];

	if (at >= TSS2_SYS_MAX_SESSIONS || rsp->count != at + 1 || r->nonce.size == 0 ||
	    r->nonce.size > sizeof(nonce_new.buffer) ||
	    Tss2_Sys_GetRpBuffer(hw->sys, &params_len, &params) != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, 0, "the host TPM's response to %s carries no session: altered "
		    "on the host TPM link; nothing of it was used", session_command(cc));
		return -1;
	}
	session_put32(code, TPM2_RC_SUCCESS);
	session_put32(code + 4, cc);
	memcpy(&nonce_caller, &auth->nonce, sizeof(auth->nonce));
	memcpy(&nonce_new, &r->nonce, sizeof(r->nonce));
	attrs = session_attrs(r->sessionAttributes);
	if (hwtpm_sha256(code, 8, params, params_len, rp.buffer) == -1 ||
	    session_hmac(s, (const TPM2B_DIGEST *[]){&rp, &nonce_new, &nonce_caller, &attrs}, 4,
	        expected.buffer) == -1 ||
	    r->hmac.size != TPM_DIGEST_LEN ||
	    CRYPTO_memcmp(expected.buffer, r->hmac.buffer, TPM_DIGEST_LEN) != 0) {
		hwtpm_seterr(err, 0, "the host TPM's response to %s does not authenticate (its "
		    "session HMAC fails): altered on the host TPM link; nothing of it was used",
		    session_command(cc));
		return -1;
	}
	memcpy(&s->nonce_tpm, &r->nonce, sizeof(r->nonce));
	*nonce_tpm = r->nonce;
	return 0;
}

/* Whether rc is the host TPM's refusal of PolicyAuthorize's checkTicket
 * (TPM_RC_VALUE of its fourth parameter): a ticket made before the owner
 * hierarchy's proof changed (TPM2_Clear), or altered on the link. */
static bool
session_ticket_refused(TSS2_RC rc)
{
	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER &&
	       (rc & 0xfff) == (TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_4);
}

/* One PolicyPCR or PolicyAuthorize prepared in hw->sys, sent (again when
 * the TPM asks). They need no authorization. */
static TSS2_RC
session_policy_send(struct hwtpm *hw, const TPML_PCR_SELECTION *tsel, const TPM2B_DIGEST *approved)
{
	static const TPM2B_DIGEST nodigest = {0};
	TPM2B_NONCE ref = {.size = sizeof(APPROVAL_POLICY_REF) - 1};
	int tries = 0;
	TSS2_RC rc;

	memcpy(ref.buffer, APPROVAL_POLICY_REF, ref.size);
	do {
		if (approved == NULL)
			rc =
			    Tss2_Sys_PolicyPCR_Prepare(hw->sys, hw->policy.handle, &nodigest, tsel);
		else
			rc = Tss2_Sys_PolicyAuthorize_Prepare(hw->sys, hw->policy.handle, approved,
			    &ref, &hw->approval_name, &hw->ticket);
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, NULL, NULL);
	} while (hwtpm_sapi_again(rc, &tries));
	return rc;
}

/*
 * Satisfies, in hw->policy, the authPolicy that the sealed state keys, the
 * CK and the BK share (pcrpolicy_authorize) for the one command that
 * follows: PolicyPCR over the host PCRs in sel as they are now, then
 * PolicyAuthorize of ap's approved PolicyPCR digest with the host TPM's
 * ticket for its signature (hwtpm_verify_approval, once per approval).
 *
 * The session is started at its first use, salted to the SRK whose public
 * area hwtpm_connect checked against the pin, and kept for the connection:
 * a TPM resets a policy session that authorized a command with
 * continueSession set, ready for the next PolicyPCR, so every later use
 * costs these two commands and no StartAuthSession; a kept session the
 * TPM no longer knows (it restarted) is started again, once. A ticket the
 * TPM refuses is made again, once. On failure the session is flushed (a
 * half-satisfied session is not reused). Returns 0, or -1 with err:
 * ERR_POLICY when the host PCRs are not the approved ones.
 */
int
hwtpm_policy_arm(
    struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap, struct err *err)
{
	TPM2B_DIGEST approved = {.size = TPM_DIGEST_LEN};
	TPML_PCR_SELECTION tsel;
	bool kept = hw->policy.handle != 0;
	TSS2_RC rc;

	if (hwtpm_selection(sel, &tsel) == -1)
		return hwtpm_seterr(err, 0, "PolicyPCR: select host PCRs");
	if (hwtpm_verify_approval(hw, ap, err) == -1)
		return -1;
	if (!kept && hwtpm_session_start(hw, TPM2_SE_POLICY, &hw->policy, err) == -1)
		return -1;
	memcpy(approved.buffer, ap->policy, TPM_DIGEST_LEN);
	rc = session_policy_send(hw, &tsel, NULL);
	if (rc != TSS2_RC_SUCCESS && kept && (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
		/* The kept session is gone if the TPM restarted (TPM2_Startup
		 * ends every session): a new one, once. */
		log_info("host TPM: the kept policy session was refused (the TPM restarted?); "
		         "starting a new one");
		hwtpm_session_end(hw, &hw->policy, true);
		if (hwtpm_session_start(hw, TPM2_SE_POLICY, &hw->policy, err) == -1)
			return -1;
		rc = session_policy_send(hw, &tsel, NULL);
	}
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "PolicyPCR");
		goto failed;
	}
	rc = session_policy_send(hw, NULL, &approved);
	if (session_ticket_refused(rc)) {
		log_info(
		    "host TPM: the ticket for approval %02x%02x%02x%02x… was refused; verifying "
		    "the approval again",
		    ap->policy[0], ap->policy[1], ap->policy[2], ap->policy[3]);
		hwtpm_forget_approval(hw);
		if (hwtpm_verify_approval(hw, ap, err) == -1)
			goto failed;
		rc = session_policy_send(hw, NULL, &approved);
	}
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
		hwtpm_seterr(err, rc, "PolicyAuthorize");
		goto failed;
	}
	hwtpm_seterr(err, rc,
	    "host PCRs are not in the approved configuration (the host TPM "
	    "refused PolicyAuthorize)");
	err->kind = ERR_POLICY;
failed:
	hwtpm_session_end(hw, &hw->policy, true);
	return -1;
}
