/*
 * attest_tpm.c: vtpm-attest's TPM commands, through tpm2-tss ESYS (see
 * attest.h). The only file of vtpm-attest that sees tpm2-tss's types: what
 * crosses its interface is marshalled TPM structures (TPM wire format) and
 * project structs.
 *
 * There may be no resource manager (a vTPM reached over its data socket):
 * every transient object and session made here is flushed before return.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "attest.h"
#include "tpm/tss.h"

#define AT_NV_CHUNK 512 /* below every TPM's TPM_PT_NV_BUFFER_MAX */
#define AT_NV_MAX   4096

struct attest_tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
};


struct attest_tpm *
attest_tpm_open(const char *tcti, struct err *err)
{
	struct attest_tpm *tpm = calloc(1, sizeof(*tpm));
	TSS2_RC rc;

	if (tpm == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	rc = Tss2_TctiLdr_Initialize(tcti, &tpm->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TCTI %s: %s", tcti ? tcti : "(default)", Tss2_RC_Decode(rc));
		free(tpm);
		return NULL;
	}
	rc = Esys_Initialize(&tpm->esys, tpm->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "ESYS on %s: %s", tcti ? tcti : "(default)", Tss2_RC_Decode(rc));
		Tss2_TctiLdr_Finalize(&tpm->tcti);
		free(tpm);
		return NULL;
	}
	return tpm;
}

void
attest_tpm_close(struct attest_tpm *tpm)
{
	if (tpm == NULL)
		return;
	Esys_Finalize(&tpm->esys);
	Tss2_TctiLdr_Finalize(&tpm->tcti);
	free(tpm);
}

/* An ESYS object for a persistent handle or NV index. */
static int
at_object(struct attest_tpm *tpm, uint32_t handle, ESYS_TR *tr, struct err *err)
{
	TSS2_RC rc =
	    Esys_TR_FromTPMPublic(tpm->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, tr);

	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "handle 0x%08x: %s", handle, Tss2_RC_Decode(rc));
		return -1;
	}
	return 0;
}

static int
at_marshal_public(
    const TPM2B_PUBLIC *pub, uint8_t *out, size_t max, size_t *len, struct err *err)
{
	size_t off = 0;
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out, max, &off);

	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "public area: %s", Tss2_RC_Decode(rc));
		return -1;
	}
	*len = off;
	return 0;
}

static int
at_read_public_tr(struct attest_tpm *tpm, ESYS_TR tr, uint8_t *out, size_t max, size_t *len,
    struct err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int ret;

	rc = Esys_ReadPublic(
	    tpm->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_ReadPublic: %s", Tss2_RC_Decode(rc));
		return -1;
	}
	ret = at_marshal_public(pub, out, max, len, err);
	Esys_Free(pub);
	return ret;
}

int
attest_tpm_read_public(struct attest_tpm *tpm, uint32_t handle, uint8_t *out, size_t max,
    size_t *len, struct err *err)
{
	ESYS_TR tr;
	int ret;

	if (at_object(tpm, handle, &tr, err) == -1)
		return -1;
	ret = at_read_public_tr(tpm, tr, out, max, len, err);
	Esys_TR_Close(tpm->esys, &tr);
	return ret;
}

/* ---- quote ---- */

static void
at_selection(const struct evidence_pcr_select *sel, TPML_PCR_SELECTION *out)
{
	memset(out, 0, sizeof(*out));
	out->count = (UINT32)sel->count;
	for (size_t i = 0; i < sel->count; i++) {
		out->pcrSelections[i].hash = sel->bank[i].hash_alg;
		out->pcrSelections[i].sizeofSelect = 3;
		for (int b = 0; b < 4; b++)
			out->pcrSelections[i].pcrSelect[b] = (BYTE)(sel->bank[i].mask >> (8 * b));
		if (sel->bank[i].mask >> 24 != 0)
			out->pcrSelections[i].sizeofSelect = 4;
	}
}

/* TPM2_PCR_Read of every PCR of sel into ev->pcrs (the TPM answers at
 * most 8 values at a time: what it left out is asked for again). */
static int
at_pcr_read(struct attest_tpm *tpm, const struct evidence_pcr_select *sel,
    struct attest_evidence *ev, struct err *err)
{
	struct evidence_pcr_select left = *sel;
	TPML_PCR_SELECTION in, *out = NULL;
	TPML_DIGEST *values = NULL;
	UINT32 counter;
	TSS2_RC rc;

	ev->n_pcrs = 0;
	for (size_t i = 0; i < sel->count && i < ATTEST_BANKS; i++) {
		ev->pcrs[i] = (struct evidence_pcr_values){.hash_alg = sel->bank[i].hash_alg};
		ev->n_pcrs++;
	}
	for (int rounds = 0; rounds < 16; rounds++) {
		size_t k = 0, bank_left = 0;

		for (size_t i = 0; i < left.count; i++)
			bank_left |= left.bank[i].mask;
		if (bank_left == 0)
			return 0;
		at_selection(&left, &in);
		rc = Esys_PCR_Read(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in,
		    &counter, &out, &values);
		if (rc != TSS2_RC_SUCCESS) {
			err_set(err, ERR_FAILED, "TPM2_PCR_Read: %s", Tss2_RC_Decode(rc));
			return -1;
		}
		for (UINT32 b = 0; b < out->count; b++) {
			size_t i;

			for (i = 0; i < left.count; i++)
				if (left.bank[i].hash_alg == out->pcrSelections[b].hash)
					break;
			for (int p = 0; i < left.count && i < ev->n_pcrs && p < 32; p++) {
				if ((out->pcrSelections[b].pcrSelect[p / 8] & 1 << (p % 8)) == 0 ||
				    k >= values->count)
					continue;
				memcpy(ev->pcrs[i].value[p], values->digests[k].buffer,
				    values->digests[k].size <= EVIDENCE_DIGEST_MAX
				        ? values->digests[k].size
				        : EVIDENCE_DIGEST_MAX);
				k++;
				ev->pcrs[i].mask |= 1u << p;
				left.bank[i].mask &= ~(1u << p);
			}
		}
		Esys_Free(out);
		Esys_Free(values);
		out = NULL;
		values = NULL;
		if (k == 0) {
			err_set(err, ERR_FAILED, "TPM2_PCR_Read: a PCR selected is not in the TPM");
			return -1;
		}
	}
	err_set(err, ERR_FAILED, "TPM2_PCR_Read: too many rounds");
	return -1;
}

int
attest_tpm_quote(struct attest_tpm *tpm, uint32_t ak_handle, const struct evidence_pcr_select *sel,
    const uint8_t *nonce, size_t nonce_len, struct attest_evidence *ev, struct err *err)
{
	TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_NULL};
	TPM2B_DATA qualifying = {0};
	TPML_PCR_SELECTION pcrs;
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;
	ESYS_TR ak = ESYS_TR_NONE;
	size_t off = 0;
	TSS2_RC rc;
	int ret = -1;

	memset(ev, 0, sizeof(*ev));
	if (nonce_len > sizeof(qualifying.buffer)) {
		err_set(err, ERR_FAILED, "nonce: at most %zu bytes", sizeof(qualifying.buffer));
		return -1;
	}
	qualifying.size = (UINT16)nonce_len;
	memcpy(qualifying.buffer, nonce, nonce_len);
	at_selection(sel, &pcrs);
	if (at_object(tpm, ak_handle, &ak, err) == -1 ||
	    at_read_public_tr(tpm, ak, ev->ak_public, sizeof(ev->ak_public), &ev->ak_public_len,
	        err) == -1)
		goto out;
	rc = Esys_Quote(tpm->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying,
	    &scheme, &pcrs, &quoted, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_Quote with 0x%08x: %s", ak_handle, Tss2_RC_Decode(rc));
		goto out;
	}
	if (quoted->size > sizeof(ev->attest)) {
		err_set(err, ERR_FAILED, "TPM2_Quote: %u bytes of attestation", quoted->size);
		goto out;
	}
	memcpy(ev->attest, quoted->attestationData, quoted->size);
	ev->attest_len = quoted->size;
	rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, ev->signature, sizeof(ev->signature), &off);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "signature: %s", Tss2_RC_Decode(rc));
		goto out;
	}
	ev->signature_len = off;
	ret = at_pcr_read(tpm, sel, ev, err);
out:
	Esys_Free(quoted);
	Esys_Free(sig);
	if (ak != ESYS_TR_NONE)
		Esys_TR_Close(tpm->esys, &ak);
	if (ret == -1)
		memset(ev, 0, sizeof(*ev));
	return ret;
}

/* ---- NV ---- */

int
attest_tpm_nv_read(
    struct attest_tpm *tpm, uint32_t index, uint8_t **buf, size_t *len, struct err *err)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR nv = ESYS_TR_NONE;
	uint8_t *out = NULL;
	size_t size = 0;
	uint16_t at = 0;
	TSS2_RC rc;
	int ret = -1;

	*buf = NULL;
	*len = 0;
	if (at_object(tpm, index, &nv, err) == -1)
		return -1;
	rc =
	    Esys_NV_ReadPublic(tpm->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "NV 0x%08x: %s", index, Tss2_RC_Decode(rc));
		goto out;
	}
	size = pub->nvPublic.dataSize;
	if (size == 0 || size > AT_NV_MAX || (out = malloc(size)) == NULL) {
		err_set(err, ERR_FAILED, "NV 0x%08x: %zu bytes", index, size);
		goto out;
	}
	rc = tss_nv_read(tpm->esys, ESYS_TR_RH_OWNER, nv, (uint16_t)size, AT_NV_CHUNK, out, &at);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_NV_Read of 0x%08x at %u: %s", index, at,
		    Tss2_RC_Decode(rc));
		goto out;
	}
	*buf = out;
	*len = size;
	out = NULL;
	ret = 0;
out:
	Esys_Free(pub);
	free(out);
	Esys_TR_Close(tpm->esys, &nv);
	return ret;
}

/* ---- credential activation ---- */

/* The EK made again from its public area's template (the TCG templates
 * have an all-zero unique field of the key's size), checked to be that
 * public area. */
static int
at_create_ek(struct attest_tpm *tpm, const uint8_t *ek_public, size_t ek_public_len, ESYS_TR *ek,
    struct err *err)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC tmpl = {0}, *made = NULL;
	TPM2B_DATA outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	uint8_t buf[ATTEST_PUBLIC_MAX];
	size_t off = 0, len = 0;
	TSS2_RC rc;
	int ret = -1;

	rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(ek_public, ek_public_len, &off, &tmpl);
	if (rc != TSS2_RC_SUCCESS || off != ek_public_len) {
		err_set(err, ERR_FAILED, "EK public area: malformed");
		return -1;
	}
	if (tmpl.publicArea.type == TPM2_ALG_RSA) {
		memset(&tmpl.publicArea.unique.rsa, 0, sizeof(tmpl.publicArea.unique.rsa));
		tmpl.publicArea.unique.rsa.size = tmpl.publicArea.parameters.rsaDetail.keyBits / 8;
	} else if (tmpl.publicArea.type == TPM2_ALG_ECC) {
		memset(&tmpl.publicArea.unique.ecc, 0, sizeof(tmpl.publicArea.unique.ecc));
		tmpl.publicArea.unique.ecc.x.size = 32;
		tmpl.publicArea.unique.ecc.y.size = 32;
	} else {
		err_set(err, ERR_FAILED, "EK public area: neither RSA nor ECC");
		return -1;
	}
	tmpl.size = 0;
	rc = Esys_CreatePrimary(tpm->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, ek, &made, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_CreatePrimary (EK): %s", Tss2_RC_Decode(rc));
		return -1;
	}
	if (at_marshal_public(made, buf, sizeof(buf), &len, err) == -1)
		goto out;
	if (len != ek_public_len || memcmp(buf, ek_public, len) != 0) {
		err_set(err, ERR_FAILED, "the EK made from the TCG template is not the EK given");
		goto out;
	}
	ret = 0;
out:
	Esys_Free(made);
	if (ret == -1) {
		Esys_FlushContext(tpm->esys, *ek);
		*ek = ESYS_TR_NONE;
	}
	return ret;
}

/* A policy session satisfied by PolicySecret(TPM_RH_ENDORSEMENT), what the
 * TCG EK templates' authPolicy asks for. */
static int
at_ek_session(struct attest_tpm *tpm, ESYS_TR *session, struct err *err)
{
	TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
	TSS2_RC rc;

	rc = Esys_StartAuthSession(tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, session);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_StartAuthSession: %s", Tss2_RC_Decode(rc));
		return -1;
	}
	rc = Esys_PolicySecret(tpm->esys, ESYS_TR_RH_ENDORSEMENT, *session, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_PolicySecret(endorsement): %s", Tss2_RC_Decode(rc));
		Esys_FlushContext(tpm->esys, *session);
		*session = ESYS_TR_NONE;
		return -1;
	}
	return 0;
}

int
attest_tpm_activate(struct attest_tpm *tpm, uint32_t ak_handle, uint32_t ek_handle,
    const uint8_t *ek_public, size_t ek_public_len, const uint8_t *blob, size_t blob_len,
    const uint8_t *enc_secret, size_t enc_secret_len, uint8_t *secret, size_t max,
    size_t *secret_len, struct err *err)
{
	ESYS_TR ak = ESYS_TR_NONE, ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
	TPM2B_ID_OBJECT id = {0};
	TPM2B_ENCRYPTED_SECRET enc = {0};
	TPM2B_DIGEST *cred = NULL;
	size_t off1 = 0, off2 = 0;
	TSS2_RC rc;
	int ret = -1;

	*secret_len = 0;
	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_len, &off1, &id) != TSS2_RC_SUCCESS ||
	    off1 != blob_len ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc_secret, enc_secret_len, &off2, &enc) !=
	        TSS2_RC_SUCCESS ||
	    off2 != enc_secret_len) {
		err_set(err, ERR_FAILED, "credential: malformed TPM2B_ID_OBJECT or "
		    "TPM2B_ENCRYPTED_SECRET");
		return -1;
	}
	if (at_object(tpm, ak_handle, &ak, err) == -1)
		return -1;
	if (ek_handle != 0 ? at_object(tpm, ek_handle, &ek, err)
	                   : at_create_ek(tpm, ek_public, ek_public_len, &ek, err))
		goto out;
	if (at_ek_session(tpm, &session, err) == -1)
		goto out;
	rc = Esys_ActivateCredential(
	    tpm->esys, ak, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, &id, &enc, &cred);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_ActivateCredential: %s", Tss2_RC_Decode(rc));
		goto out;
	}
	if (cred->size > max) {
		err_set(err, ERR_FAILED, "credential: %u bytes", cred->size);
		goto out;
	}
	memcpy(secret, cred->buffer, cred->size);
	*secret_len = cred->size;
	ret = 0;
out:
	if (cred != NULL) {
		memset(cred->buffer, 0, sizeof(cred->buffer));
		Esys_Free(cred);
	}
	if (session != ESYS_TR_NONE)
		Esys_FlushContext(tpm->esys, session);
	if (ek != ESYS_TR_NONE)
		ek_handle != 0 ? Esys_TR_Close(tpm->esys, &ek) : Esys_FlushContext(tpm->esys, ek);
	Esys_TR_Close(tpm->esys, &ak);
	return ret;
}

int
attest_tpm_ek_public(struct attest_tpm *tpm, bool ecc, uint8_t *out, size_t max, size_t *len,
    struct err *err)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC tmpl, *made = NULL;
	TPM2B_DATA outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	ESYS_TR ek = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret;

	tss_ek_template(ecc, &tmpl);
	rc = Esys_CreatePrimary(tpm->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &ek, &made, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		err_set(err, ERR_FAILED, "TPM2_CreatePrimary (EK): %s", Tss2_RC_Decode(rc));
		return -1;
	}
	ret = at_marshal_public(made, out, max, len, err);
	Esys_Free(made);
	Esys_FlushContext(tpm->esys, ek);
	return ret;
}
