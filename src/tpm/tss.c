/*
 * tss.c: tpm2-tss helpers shared by the modules that speak ESYS (tss.h).
 */
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_rc.h>

#include "tss.h"

int
tss_verr(struct err *err, enum err_kind kind, const char *prefix, TSS2_RC rc, const char *fmt,
    va_list ap)
{
	char what[ERR_MSG_MAX];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (rc != TSS2_RC_SUCCESS)
		return err_set(err, kind, "%s%s: %s", prefix, what, Tss2_RC_Decode(rc));
	return err_set(err, kind, "%s%s", prefix, what);
}

/* PolicyA of the TCG EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t tss_policy_a[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a,
    0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
    0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

/*
 * The TCG EK Credential Profile's default template L-1 (RSA-2048) or, with
 * ecc, L-2 (ECC NIST P-256): attributes 0x000300b2, PolicyA, AES-128-CFB,
 * unique zero-filled to the key's size.
 */
void
tss_ek_template(bool ecc, TPM2B_PUBLIC *t)
{
	TPMT_PUBLIC *p = &t->publicArea;

	memset(t, 0, sizeof(*t));
	p->type = ecc ? TPM2_ALG_ECC : TPM2_ALG_RSA;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
	                      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	p->authPolicy.size = sizeof(tss_policy_a);
	memcpy(p->authPolicy.buffer, tss_policy_a, sizeof(tss_policy_a));
	if (ecc) {
		p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
		p->parameters.eccDetail.symmetric.keyBits.aes = 128;
		p->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		p->unique.ecc.x.size = 32;
		p->unique.ecc.y.size = 32;
	} else {
		p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
		p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
		p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.rsaDetail.keyBits = 2048;
		p->unique.rsa.size = 256;
	}
}

/*
 * Reads size bytes of NV index nv into out, chunk bytes per TPM2_NV_Read
 * (at most TPM_PT_NV_BUFFER_MAX), authorized by auth with the empty
 * password. Returns TSS2_RC_SUCCESS, or the failing read's code (a short
 * answer is TSS2_ESYS_RC_MALFORMED_RESPONSE) with its offset in *at.
 */
TSS2_RC
tss_nv_read(ESYS_CONTEXT *esys, ESYS_TR auth, ESYS_TR nv, uint16_t size, uint16_t chunk,
    uint8_t *out, uint16_t *at)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	uint16_t off = 0, n;
	TSS2_RC rc;

	while (off < size) {
		n = (uint16_t)(size - off < chunk ? size - off : chunk);
		rc = Esys_NV_Read(esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off,
		    &data);
		if (rc == TSS2_RC_SUCCESS && data->size != n)
			rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
		if (rc != TSS2_RC_SUCCESS) {
			Esys_Free(data);
			*at = off;
			return rc;
		}
		memcpy(out + off, data->buffer, n);
		off = (uint16_t)(off + n);
		Esys_Free(data);
		data = NULL;
	}
	return TSS2_RC_SUCCESS;
}
