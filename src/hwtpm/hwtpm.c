/*
 * hwtpm.c: the host TPM, the root of every vTPM.
 *
 * vtpmd is the only process that talks to the host TPM. This module is the
 * only one that sees tpm2-tss (ESYS_TR, TSS2_RC, TPM2B_*): it opens the TPM
 * through a TCTI string, finds or creates the storage root key (SRK, an ECC
 * P-256 primary persisted at the TCG-reserved handle 0x81000001), checks it
 * against the pin, and seals and unseals the vTPMs' state keys in sessions
 * salted to it.
 *
 * The link to the TPM is not trusted: a discrete TPM's bus can be sniffed
 * and interposed, and a simulator may sit behind TCP. Nothing read from it
 * is believed until something authenticates it: the SRK's public area
 * against the pin (before any session is salted to it), a loaded object's
 * Name against the one computed from the blob vtpmd keeps (and the
 * sessions' HMACs cover the computed one, so the TPM itself refuses an
 * object swapped behind a forged Name), responses by their session HMACs,
 * the host PCR values included (hwtpm_pcr.c reads them in an audit
 * session).
 *
 * A state key is sealed under the SRK with an authPolicy of
 * PolicyAuthorize(approval key, APPROVAL_POLICY_REF): it can be unsealed only
 * in a policy session whose PolicyPCR digest an administrator's approval
 * key has signed. A host update that changes PCRs therefore needs one new
 * signature, not a re-seal of every vTPM.
 *
 * Every command sent to the host TPM goes through a counting TCTI, so the
 * cost of an operation in host-TPM commands is measured, not guessed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "hwtpm.h"
#include "hwtpm_private.h"
#include "tpm/tss.h"

/* Fills err (kind ERR_HOST_TPM) with fmt and, when rc is a tpm2-tss
 * failure, its decoded text. Returns -1. */
int
hwtpm_seterr(struct err *err, TSS2_RC rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tss_verr(err, ERR_HOST_TPM, "", rc, fmt, ap);
	va_end(ap);
	return -1;
}

/* Whether rc is the TPM's refusal of a session's HMAC (TPM_RC_BAD_AUTH,
 * or TPM_RC_AUTH_FAIL where the DA logic counted it): the authorization
 * does not match the command as the TPM received it. */
bool
hwtpm_rc_bad_auth(TSS2_RC rc)
{
	TSS2_RC base = rc & ~(TSS2_RC)(TPM2_RC_S | TPM2_RC_P | TPM2_RC_N_MASK);

	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) &&
	    (base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL);
}

static struct hwtpm_tcti *
hwtpm_tcti_of(TSS2_TCTI_CONTEXT *ctx)
{
	return (struct hwtpm_tcti *)(void *)ctx;
}

static TSS2_RC
hwtpm_tcti_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd)
{
	struct hwtpm_tcti *t = hwtpm_tcti_of(ctx);

	t->commands++;
	t->sent_us = mono_us();
	return Tss2_Tcti_Transmit(t->inner, size, cmd);
}

/* A receive that reads the response (not a query of its size) ends the
 * command's time, whatever the outcome. */
static TSS2_RC
hwtpm_tcti_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t timeout)
{
	struct hwtpm_tcti *t = hwtpm_tcti_of(ctx);
	TSS2_RC rc = Tss2_Tcti_Receive(t->inner, size, rsp, timeout);

	if (rsp != NULL && t->sent_us != 0 &&
	    (rc & ~TSS2_RC_LAYER_MASK) != TSS2_BASE_RC_TRY_AGAIN) {
		metrics_hist_observe_us(&t->latency, mono_us() - t->sent_us);
		t->sent_us = 0;
	}
	return rc;
}

static void
hwtpm_tcti_finalize(TSS2_TCTI_CONTEXT *ctx)
{
	(void)ctx; /* the inner context is finalized by hwtpm_close */
}

static TSS2_RC
hwtpm_tcti_cancel(TSS2_TCTI_CONTEXT *ctx)
{
	return Tss2_Tcti_Cancel(hwtpm_tcti_of(ctx)->inner);
}

static TSS2_RC
hwtpm_tcti_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
	return Tss2_Tcti_GetPollHandles(hwtpm_tcti_of(ctx)->inner, h, n);
}

static TSS2_RC
hwtpm_tcti_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality)
{
	return Tss2_Tcti_SetLocality(hwtpm_tcti_of(ctx)->inner, locality);
}

static TSS2_RC
hwtpm_tcti_make_sticky(TSS2_TCTI_CONTEXT *ctx, TPM2_HANDLE *handle, uint8_t sticky)
{
	return Tss2_Tcti_MakeSticky(hwtpm_tcti_of(ctx)->inner, handle, sticky);
}

static void
hwtpm_tcti_wrap(struct hwtpm_tcti *t, TSS2_TCTI_CONTEXT *inner)
{
	memset(t, 0, sizeof(*t));
	t->common.v1.magic = 0x7674706d64746374ULL; /* "vtpmdtct" */
	t->common.v1.version = 2;
	t->common.v1.transmit = hwtpm_tcti_transmit;
	t->common.v1.receive = hwtpm_tcti_receive;
	t->common.v1.finalize = hwtpm_tcti_finalize;
	t->common.v1.cancel = hwtpm_tcti_cancel;
	t->common.v1.getPollHandles = hwtpm_tcti_poll_handles;
	t->common.v1.setLocality = hwtpm_tcti_set_locality;
	t->common.makeSticky = hwtpm_tcti_make_sticky;
	t->inner = inner;
	metrics_hist_init(&t->latency, metrics_latency_bounds, METRICS_LATENCY_N);
}

/* The TCG template of the ECC P-256 storage root key. */
static TPM2B_PUBLIC
hwtpm_srk_template(void)
{
	TPM2B_PUBLIC t = {0};

	t.publicArea.type = TPM2_ALG_ECC;
	t.publicArea.nameAlg = TPM2_ALG_SHA256;
	t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	t.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	t.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	t.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	t.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	t.publicArea.unique.ecc.x.size = 32;
	t.publicArea.unique.ecc.y.size = 32;
	return t;
}

/* Sets hw->srk_name from hw->srk_pub: nameAlg || H(public area), what the
 * HMACs of commands on the SRK cover and what hwtpm_check_pin pins. */
static int
hwtpm_srk_name(struct hwtpm *hw, struct err *err)
{
	uint8_t pub[sizeof(TPM2B_PUBLIC)];
	size_t len = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&hw->srk_pub, pub, sizeof(pub), &len) != TSS2_RC_SUCCESS ||
	    credential_public_name(pub, len, hw->srk_name.name, NULL) == -1) {
		hwtpm_seterr(err, 0, "compute the SRK's Name");
		return -1;
	}
	hw->srk_name.size = CREDENTIAL_NAME_LEN;
	return 0;
}

/* A Name in hex, for messages (a Name is public). */
void
hwtpm_name_hex(const TPM2B_NAME *name, char hex[static 2 * sizeof(TPMU_NAME) + 1])
{
	size_t n = name->size <= sizeof(name->name) ? name->size : sizeof(name->name);

	hex_encode(name->name, n, hex);
}

/* Where the SRK is pinned, for messages. */
static const char *
hwtpm_pin_where(const struct hwtpm *hw)
{
	return hw->pin_path[0] != '\0' ? hw->pin_path : "(no pin: a tool's connection)";
}

/*
 * ESYS read the SRK's public area on its own (Esys_TR_FromTPMPublic, or
 * the CreatePrimary that made it) and salts its sessions to that copy;
 * vtpmd's sessions are salted to hw->srk_pub, read again. Both must be one
 * key, the pinned one: something on the link that answered one of the
 * reads with a key of its own would hold that key's sessions. Esys_TR_
 * GetName hashes the public area ESYS holds (tpm2-tss 3.2 takes the Name
 * a ReadPublic returns unchecked, but GetName does not use it), so equal
 * Names mean equal public areas. Returns 0, or -1 with err set.
 */
static int
hwtpm_check_esys_srk(struct hwtpm *hw, struct err *err)
{
	char ours[2 * sizeof(TPMU_NAME) + 1], theirs[2 * sizeof(TPMU_NAME) + 1];
	TPM2B_NAME *esys_name = NULL;
	TSS2_RC rc;
	int ret = 0;

	rc = Esys_TR_GetName(hw->esys, hw->srk, &esys_name);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "the SRK's Name as ESYS holds it");
	if (esys_name->size != hw->srk_name.size ||
	    memcmp(esys_name->name, hw->srk_name.name, hw->srk_name.size) != 0) {
		hwtpm_name_hex(esys_name, theirs);
		hwtpm_name_hex(&hw->srk_name, ours);
		ret = hwtpm_seterr(err, 0, "the host TPM link answered two reads of the storage "
		    "root key's public area with two keys (Names %.16s… and %.16s…): something "
		    "between vtpmd and the TPM substitutes keys; no session was salted to either. "
		    "The SRK vtpmd trusts is the one pinned in %s", theirs, ours,
		    hwtpm_pin_where(hw));
		err->kind = ERR_FOREIGN;
	}
	Esys_Free(esys_name);
	return ret;
}

/* Checks that a persistent key is usable as our SRK: an ECC P-256
 * restricted decryption key with the TCG attributes. */
static int
hwtpm_check_srk(struct hwtpm *hw, struct err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	TPMA_OBJECT want = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	TSS2_RC rc;
	int ret = -1;

	rc = Esys_ReadPublic(hw->esys, hw->srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
	    NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "read SRK public area");
		return -1;
	}
	if (pub->publicArea.type != TPM2_ALG_ECC ||
	    pub->publicArea.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
	    (pub->publicArea.objectAttributes & want) != want) {
		hwtpm_seterr(err, 0, "the key at 0x81000001 is not an ECC P-256 storage root key");
		goto out;
	}
	hw->srk_pub = *pub; /* what sessions are salted to */
	if (hwtpm_srk_name(hw, err) == -1 || hwtpm_check_esys_srk(hw, err) == -1)
		goto out;
	ret = 0;
out:
	Esys_Free(pub);
	return ret;
}

/* Sends TPM2_FlushContext(handle) as raw bytes: ESYS cannot name a
 * session it did not start. */
static void
hwtpm_flush_raw(struct hwtpm *hw, TPM2_HANDLE handle)
{
	TSS2_TCTI_CONTEXT *t = (TSS2_TCTI_CONTEXT *)(void *)&hw->tcti;
	uint8_t cmd[14] = {0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x65}, rsp[64];
	size_t len = sizeof(rsp);

	cmd[10] = (uint8_t)(handle >> 24);
	cmd[11] = (uint8_t)(handle >> 16);
	cmd[12] = (uint8_t)(handle >> 8);
	cmd[13] = (uint8_t)handle;
	if (Tss2_Tcti_Transmit(t, sizeof(cmd), cmd) == TSS2_RC_SUCCESS)
		Tss2_Tcti_Receive(t, &len, rsp, TSS2_TCTI_TIMEOUT_BLOCK);
}

/* Flushes every handle the TPM lists in the ranges (handle types) of
 * ranges[0..nranges). Returns how many. */
static unsigned int
hwtpm_flush_ranges(struct hwtpm *hw, const TPM2_HANDLE *ranges, size_t nranges)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	unsigned int n = 0;

	for (size_t r = 0; r < nranges; r++) {
		if (Esys_GetCapability(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		        TPM2_CAP_HANDLES, ranges[r], TPM2_MAX_CAP_HANDLES, &more, &cap) !=
		    TSS2_RC_SUCCESS)
			continue;
		for (UINT32 i = 0; i < cap->data.handles.count; i++) {
			TPM2_HANDLE h = cap->data.handles.handle[i], type = h & TPM2_HR_RANGE_MASK;
			/* Loaded sessions are listed together, policy ones with
			 * their own prefix. */
			if (type != ranges[r] && !(ranges[r] == TPM2_HR_HMAC_SESSION &&
			                              type == TPM2_HR_POLICY_SESSION))
				continue;
			hwtpm_flush_raw(hw, h);
			n++;
		}
		Esys_Free(cap);
		cap = NULL;
	}
	return n;
}

/*
 * vtpmd is the host TPM's only user (behind a kernel resource manager,
 * /dev/tpmrm0, it sees only its own handles). Sessions and transient
 * objects a killed vtpmd left loaded would otherwise fill the TPM's few
 * slots for good: they are flushed at start.
 */
static void
hwtpm_flush_leftovers(struct hwtpm *hw)
{
	static const TPM2_HANDLE ranges[] = {TPM2_HR_HMAC_SESSION, TPM2_HR_POLICY_SESSION,
	    TPM2_HR_TRANSIENT};
	unsigned int n = hwtpm_flush_ranges(hw, ranges, sizeof(ranges) / sizeof(ranges[0]));

	if (n > 0)
		log_info("host TPM: flushed %u session(s) and object(s) left by an earlier process",
		    n);
}

/* Flushes every transient object: after a Load whose response ESYS
 * refused, the TPM holds an object whose handle vtpmd never learnt. The
 * caller holds no other (hwtpm_enter flushed the last unseal's). */
void
hwtpm_flush_transients(struct hwtpm *hw)
{
	static const TPM2_HANDLE transient = TPM2_HR_TRANSIENT;

	hwtpm_flush_ranges(hw, &transient, 1);
}

/* Finds the persistent SRK, or creates and persists it. */
static int
hwtpm_find_srk(struct hwtpm *hw, struct err *err)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC tmpl = hwtpm_srk_template();
	TPML_PCR_SELECTION nopcr = {0};
	TPM2B_DATA noinfo = {0};
	ESYS_TR primary = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_TR_FromTPMPublic(hw->esys, HWTPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &hw->srk);
	if (rc == TSS2_RC_SUCCESS)
		return hwtpm_check_srk(hw, err);
	log_info("host TPM: no SRK at 0x%x; creating one", HWTPM_SRK_HANDLE);
	rc = Esys_CreatePrimary(hw->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, &tmpl, &noinfo, &nopcr, &primary, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "create SRK");
		return -1;
	}
	rc = Esys_EvictControl(hw->esys, ESYS_TR_RH_OWNER, primary, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, HWTPM_SRK_HANDLE, &hw->srk);
	Esys_FlushContext(hw->esys, primary);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "persist SRK");
		return -1;
	}
	return hwtpm_check_srk(hw, err);
}


const TPMT_SYM_DEF hwtpm_aes_cfb = {
	.algorithm = TPM2_ALG_AES,
	.keyBits = {.aes = 128},
	.mode = {.aes = TPM2_ALG_CFB},
};

/*
 * ESYS's HMAC session, salted to the SRK, with parameter encryption both
 * ways, for hwtpm_attest.c's commands that carry secrets or keys
 * (creating the CK and BK, activating a credential): started at its first
 * use on a connection and kept for that connection. Only a connection
 * that has checked the SRK (hwtpm_connect: the pin, and ESYS's copy of
 * the public area against vtpmd's) gets this far, so it is salted to the
 * pinned key. Its salt and sessionKey live in tpm2-tss's own memory,
 * ordinary heap that vtpmd cannot lock or wipe (ESYS 3.2 has no allocator
 * hooks): hence it is started only when such a command comes, never by a
 * vTPM's start, whose sessions are vtpmd's own (hwtpm_seal.c). Returns 0
 * with hw->esys_session, or -1 with err set.
 */
int
hwtpm_esys_session(struct hwtpm *hw, struct err *err)
{
	TSS2_RC rc;

	if (hw->esys_session != ESYS_TR_NONE)
		return 0;
	rc = Esys_StartAuthSession(hw->esys, hw->srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &hwtpm_aes_cfb, TPM2_ALG_SHA256, &hw->esys_session);
	if (rc != TSS2_RC_SUCCESS) {
		hw->esys_session = ESYS_TR_NONE;
		return hwtpm_seterr(err, rc, "start a salted session");
	}
	Esys_TRSess_SetAttributes(hw->esys, hw->esys_session,
	    TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, 0xff);
	return 0;
}

/* Forgets every handle of the current ESYS context (which is finalized):
 * after a reconnection they name nothing. */
static void
hwtpm_disconnect(struct hwtpm *hw)
{
	if (hw->esys != NULL)
		Esys_Finalize(&hw->esys);
	hw->esys = NULL;
	hw->sys = NULL;
	hw->srk = hw->esys_session = ESYS_TR_NONE;
	hw->counter = hw->counter_session = ESYS_TR_NONE;
	hwtpm_session_end(hw, &hw->policy, false);
	hwtpm_session_end(hw, &hw->seal, false);
	hwtpm_session_end(hw, &hw->audit, false);
	hw->pending = 0;
	hwtpm_forget_approval(hw);
	hw->pcrs_known = 0;
	memset(hw->ek, 0, sizeof(hw->ek));
	memset(&hw->ck, 0, sizeof(hw->ck));
	memset(&hw->bk, 0, sizeof(hw->bk));
}

/*
 * Whether the TPM is software (no hardware protection), from what it says
 * it is: the manufacturers of software TPMs (libtpms, which swtpm and
 * vtpmd's own vTPMs run, reports "IBM"; Microsoft's and Google's virtual
 * TPMs "MSFT" and "GOOG") or a vendor string beginning "SW". A TPM that
 * cannot be asked is taken for software.
 */
static bool
hwtpm_is_software(struct hwtpm *hw)
{
	static const uint32_t software[] = {0x49424d00 /* IBM */, 0x4d534654 /* MSFT */,
	    0x474f4f47 /* GOOG */};
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	bool sw = true;

	if (Esys_GetCapability(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	        TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 2, &more, &cap) != TSS2_RC_SUCCESS)
		return true;
	for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
		const TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];

		if (p->property == TPM2_PT_MANUFACTURER) {
			sw = false;
			for (size_t k = 0; k < sizeof(software) / sizeof(software[0]); k++)
				sw = sw || p->value == software[k];
		} else if (p->property == TPM2_PT_VENDOR_STRING_1 && (p->value >> 16) == 0x5357) {
			sw = true; /* "SW" */
		}
	}
	Esys_Free(cap);
	return sw;
}

/*
 * Compares the SRK's Name with the one pinned in hw->pin_path, or pins it
 * there when there is none yet (the first start: the pin trusts what that
 * start sees). Sessions are salted to the SRK's public key as the TPM
 * reports it; the pin makes sure that key stays the one of the TPM that
 * sealed the vTPMs, not one that a TPM cleared or replaced, or something
 * answering in the TPM's place, offers. It is checked before any session
 * is started, at every connection. Returns 0, or -1 with err set.
 */
static int
hwtpm_check_pin(struct hwtpm *hw, struct err *err)
{
	char hex[2 * sizeof(hw->srk_name.name) + 2];
	size_t n = hw->srk_name.size, pinned_len = 0;
	uint8_t *pinned = NULL;
	int ret = -1;

	hex_encode(hw->srk_name.name, n, hex);
	hex[2 * n] = '\n';
	hex[2 * n + 1] = '\0';
	if (fileio_read(hw->pin_path, sizeof(hex), &pinned, &pinned_len) == -1) {
		if (errno != ENOENT) {
			return hwtpm_seterr(err, 0, "%s: %s", hw->pin_path, strerror(errno));
		}
		if (fileio_write_atomic(hw->pin_path, hex, strlen(hex), 0600) == -1) {
			return hwtpm_seterr(err, 0, "pin the SRK in %s: %s", hw->pin_path,
			    strerror(errno));
		}
		log_info("host TPM: SRK Name %.16s… pinned in %s", hex, hw->pin_path);
		return 0;
	}
	if (pinned_len == strlen(hex) && memcmp(pinned, hex, pinned_len) == 0) {
		ret = 0;
	} else {
		hwtpm_seterr(err, 0, "the host TPM's storage root key (Name %.16s…) is not the one "
		    "pinned in %s: the TPM was cleared or replaced, or something answers in its "
		    "place; vTPMs sealed before cannot start. If the TPM was replaced on purpose, "
		    "remove %s", hex, hw->pin_path, hw->pin_path);
		err->kind = ERR_FOREIGN;
	}
	free(pinned);
	return ret;
}

/* Talks to the TPM behind hw->tcti: Startup, stale handles flushed, the
 * SRK found or made, and checked (ESYS's copy against vtpmd's, both
 * against the pin) before any session is salted to it. Returns 0, or -1
 * with the context torn down. */
static int
hwtpm_connect(struct hwtpm *hw, struct err *err)
{
	TSS2_RC rc;

	rc = Esys_Initialize(&hw->esys, (TSS2_TCTI_CONTEXT *)(void *)&hw->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hw->esys = NULL;
		hwtpm_seterr(err, rc, "initialize ESYS");
		return -1;
	}
	Esys_SetTimeout(hw->esys, HWTPM_TIMEOUT_MS);
	rc = Esys_GetSysContext(hw->esys, &hw->sys);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "initialize SAPI");
		goto fail;
	}
	rc = Esys_Startup(hw->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
		hwtpm_seterr(err, rc, "host TPM does not answer");
		goto fail;
	}
	hwtpm_flush_leftovers(hw);
	hw->simulator = hw->software_tcti || hwtpm_is_software(hw);
	if (hwtpm_find_srk(hw, err) == -1)
		goto fail;
	if (hw->pin_path[0] != '\0' && hwtpm_check_pin(hw, err) == -1)
		goto fail;
	return 0;
fail:
	hwtpm_disconnect(hw);
	return -1;
}

/*
 * Opens the host TPM named by a TCTI string ("device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=P", …), finds or creates the SRK and checks
 * it against the Name pinned in pin_path (hwtpm_check_pin: written at the
 * first start), now and at every reconnection, before any session. A
 * NULL pin_path (test tools) pins nothing. Returns NULL on failure, with
 * err set.
 */
struct hwtpm *
hwtpm_open(const char *tcti_conf, const char *pin_path, struct err *err)
{
	TSS2_TCTI_CONTEXT *inner = NULL;
	struct hwtpm *hw;
	TSS2_RC rc;

	/* Secret memory: it holds session keys. */
	hw = secret_alloc(sizeof(*hw));
	if (hw == NULL) {
		hwtpm_seterr(err, 0, "out of memory");
		return NULL;
	}
	hw->srk = hw->esys_session = ESYS_TR_NONE;
	hw->counter = hw->counter_session = ESYS_TR_NONE;
	if (pin_path != NULL &&
	    snprintf(hw->pin_path, sizeof(hw->pin_path), "%s", pin_path) >= (int)sizeof(hw->pin_path)) {
		hwtpm_seterr(err, 0, "SRK pin path too long");
		secret_free(hw, sizeof(*hw));
		return NULL;
	}
	rc = Tss2_TctiLdr_Initialize(tcti_conf, &inner);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "open TCTI");
		secret_free(hw, sizeof(*hw));
		return NULL;
	}
	hwtpm_tcti_wrap(&hw->tcti, inner);
	/* A simulator's TCTI says so; anything else says what it is. */
	hw->software_tcti = strncmp(tcti_conf, "swtpm", 5) == 0 || strncmp(tcti_conf, "mssim", 5) == 0;
	if (hwtpm_connect(hw, err) == -1) {
		hwtpm_close(hw);
		return NULL;
	}
	return hw;
}

/*
 * After a failure that may be the host TPM's absence or restart (its
 * sessions and loaded objects are then gone): drops every handle and
 * talks to the TPM afresh. Returns 0 when it answers again, -1 (see
 * err) when it does not: then every operation tries again first.
 */
int
hwtpm_reconnect(struct hwtpm *hw, struct err *err)
{
	hwtpm_disconnect(hw);
	return hwtpm_connect(hw, err);
}

/* Whether the host TPM answered when last asked. */
/*
 * After a host-TPM failure that is not a refusal: the TPM may have gone
 * away or restarted (losing vtpmd's sessions). Reconnects; returns true
 * when the TPM answers again, so that the caller may retry once. The
 * caller's err, which holds the failure that led here, is left as it is.
 */
bool
hwtpm_recover(struct hwtpm *hw)
{
	struct err err;

	if (hwtpm_reconnect(hw, &err) == 0) {
		log_info("host TPM: reconnected");
		return true;
	}
	log_warnx("host TPM unavailable: %s; running vTPMs keep serving, operations that need "
	    "it fail until it is back", err.msg);
	return false;
}

bool
hwtpm_available(const struct hwtpm *hw)
{
	return hw->esys != NULL;
}

/* What every operation does first: reconnect if the TPM was lost, drop
 * what the last unseal left loaded. A failure is ERR_HOST_TPM, a refused
 * SRK included: the operation's object is not at fault. */
int
hwtpm_enter(struct hwtpm *hw, struct err *err)
{
	if (hw->esys == NULL && hwtpm_connect(hw, err) == -1) {
		err_wrap(err, "host TPM unavailable");
		if (err != NULL)
			err->kind = ERR_HOST_TPM;
		return -1;
	}
	hwtpm_flush_pending(hw);
	return 0;
}

/* Ends the session and the connection. Accepts NULL. */
void
hwtpm_close(struct hwtpm *hw)
{
	TSS2_TCTI_CONTEXT *inner;

	if (hw == NULL)
		return;
	if (hw->esys != NULL) {
		hwtpm_flush_pending(hw);
		hwtpm_session_end(hw, &hw->policy, true);
		if (hw->esys_session != ESYS_TR_NONE)
			Esys_FlushContext(hw->esys, hw->esys_session);
		if (hw->counter_session != ESYS_TR_NONE)
			Esys_FlushContext(hw->esys, hw->counter_session);
	}
	hwtpm_disconnect(hw);
	inner = hw->tcti.inner;
	if (inner != NULL)
		Tss2_TctiLdr_Finalize(&inner);
	secret_free(hw, sizeof(*hw));
}

bool
hwtpm_is_simulator(const struct hwtpm *hw)
{
	return hw->simulator;
}

unsigned long
hwtpm_command_count(const struct hwtpm *hw)
{
	return hw->tcti.commands;
}

/* The time of every host-TPM command since hwtpm_open, for GET /metrics. */
const struct metrics_hist *
hwtpm_command_latency(const struct hwtpm *hw)
{
	return &hw->tcti.latency;
}

int
hwtpm_selection(const struct pcr_selection *sel, TPML_PCR_SELECTION *out)
{
	uint8_t buf[PCRPOLICY_SELECTION_LEN];
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (pcrpolicy_selection(sel, buf) == -1 ||
	    Tss2_MU_TPML_PCR_SELECTION_Unmarshal(buf, sizeof(buf), &off, out) != TSS2_RC_SUCCESS)
		return -1;
	return 0;
}

int
hwtpm_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    uint8_t out[TPM_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, a, alen) == 1 && (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
	    EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/*
 * Has the host TPM check an approval signature (LoadExternal of the
 * approval key, VerifySignature, flush) once: the ticket it returns is
 * kept, with the approval key's Name, while the approval key and the
 * approved policy stay the same, for the connection. A ticket stays valid
 * until the owner hierarchy's proof changes (TPM2_Clear); one the TPM
 * refuses is dropped (hwtpm_forget_approval) and made again
 * (hwtpm_policy_arm). The approval key is not kept loaded: tickets make it
 * unneeded, and a TPM may hold as few as three transient objects.
 */
int
hwtpm_verify_approval(struct hwtpm *hw, const struct approval *ap, struct err *err)
{
	TPM2B_PUBLIC pub = {0};
	TPMT_TK_VERIFIED *ticket = NULL;
	TPMT_SIGNATURE sig = {0};
	TPM2B_DIGEST ahash = {.size = TPM_DIGEST_LEN};
	ESYS_TR key = ESYS_TR_NONE;
	uint8_t buf[sizeof(TPM2B_PUBLIC)], name[PCRPOLICY_NAME_LEN];
	size_t len, off = 0;
	TSS2_RC rc;

	if (pcrpolicy_approval_name(&ap->pub, name) == -1)
		return hwtpm_seterr(err, 0, "compute the approval key's Name");
	if (hw->have_ticket && memcmp(hw->ticket_policy, ap->policy, TPM_DIGEST_LEN) == 0 &&
	    hw->approval_name.size == PCRPOLICY_NAME_LEN &&
	    memcmp(hw->approval_name.name, name, PCRPOLICY_NAME_LEN) == 0)
		return 0;
	hwtpm_forget_approval(hw);
	hw->approval_name.size = PCRPOLICY_NAME_LEN;
	memcpy(hw->approval_name.name, name, PCRPOLICY_NAME_LEN);
	if (pcrpolicy_approval_public(&ap->pub, buf, sizeof(buf), &len) == -1 ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub) != TSS2_RC_SUCCESS ||
	    approval_digest(ap->policy, ahash.buffer) == -1) {
		hwtpm_seterr(err, 0, "compute approval digest");
		return -1;
	}
	sig.sigAlg = TPM2_ALG_ECDSA;
	sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
	sig.signature.ecdsa.signatureR.size = 32;
	memcpy(sig.signature.ecdsa.signatureR.buffer, ap->sig_r, 32);
	sig.signature.ecdsa.signatureS.size = 32;
	memcpy(sig.signature.ecdsa.signatureS.buffer, ap->sig_s, 32);
	/* In the owner hierarchy: a key in the null hierarchy yields a null
	 * ticket, which PolicyAuthorize rejects. */
	rc = Esys_LoadExternal(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &pub,
	    ESYS_TR_RH_OWNER, &key);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "load approval key");
		return -1;
	}
	rc = Esys_VerifySignature(hw->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ahash,
	    &sig, &ticket);
	Esys_FlushContext(hw->esys, key);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "approval signature rejected by the host TPM");
		return -1;
	}
	hw->ticket = *ticket;
	Esys_Free(ticket);
	memcpy(hw->ticket_policy, ap->policy, TPM_DIGEST_LEN);
	hw->have_ticket = true;
	return 0;
}

/* Drops the kept approval ticket (hwtpm_verify_approval). */
void
hwtpm_forget_approval(struct hwtpm *hw)
{
	hw->have_ticket = false;
	memset(&hw->ticket, 0, sizeof(hw->ticket));
	memset(hw->ticket_policy, 0, sizeof(hw->ticket_policy));
	memset(&hw->approval_name, 0, sizeof(hw->approval_name));
}

/* The Name of an object with public area pub (nameAlg || H(TPMT_PUBLIC)),
 * as vtpmd computes it. Returns 0, or -1. */
int
hwtpm_object_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *name)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t len = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &len) != TSS2_RC_SUCCESS ||
	    credential_public_name(buf, len, name->name, NULL) == -1)
		return -1;
	name->size = CREDENTIAL_NAME_LEN;
	return 0;
}

/*
 * Splits a sealed-key blob (hwtpm_seal's output: TPM2B_PUBLIC followed by
 * TPM2B_PRIVATE, nothing else) into its parts; *pub_len (when not NULL)
 * is the length of the leading TPM2B_PUBLIC, *name (when not NULL) the
 * object's Name, computed from the public area as it is sent to the TPM
 * (marshalled again from pub), the only Name vtpmd believes for it.
 * Returns 0, or -1 with the error set when it is not such a blob.
 */
int
hwtpm_sealed_parse(const uint8_t *blob, size_t blob_len, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv,
    size_t *pub_len, TPM2B_NAME *name, struct err *err)
{
	size_t off = 0, end;

	memset(pub, 0, sizeof(*pub));
	memset(priv, 0, sizeof(*priv));
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, blob_len, &off, pub) != TSS2_RC_SUCCESS)
		goto bad;
	end = off;
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, blob_len, &off, priv) != TSS2_RC_SUCCESS ||
	    off != blob_len)
		goto bad;
	if (name != NULL && hwtpm_object_name(pub, name) == -1)
		goto bad;
	if (pub_len != NULL)
		*pub_len = end;
	return 0;
bad:
	err_set(err, ERR_FOREIGN, "sealed key file is malformed");
	return -1;
}

_Static_assert(HWTPM_NAME_LEN == CREDENTIAL_NAME_LEN, "a Name is nameAlg || SHA-256 digest");

/* The length of the public area that leads a sealed-key blob. Returns 0,
 * or -1 when blob is not one. */
int
hwtpm_sealed_public(const uint8_t *blob, size_t blob_len, size_t *pub_len, struct err *err)
{
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;

	return hwtpm_sealed_parse(blob, blob_len, &pub, &priv, pub_len, NULL, err);
}

/* The Name of the object a sealed-key blob holds (hwtpm_sealed_parse),
 * to record at create and compare at every start. Returns 0, or -1 when
 * blob is not one. */
int
hwtpm_sealed_name(const uint8_t *blob, size_t blob_len, uint8_t name[static HWTPM_NAME_LEN],
    struct err *err)
{
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	TPM2B_NAME n;

	if (hwtpm_sealed_parse(blob, blob_len, &pub, &priv, NULL, &n, err) == -1)
		return -1;
	memcpy(name, n.name, HWTPM_NAME_LEN);
	return 0;
}
