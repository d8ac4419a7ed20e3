/*
 * pcrpolicy.c: the arithmetic of the host-configuration policy, in
 * software, for everyone who computes or checks it without a TPM: vtpmd
 * (what the host TPM will compute), vtpm-ca (what a host's evidence must
 * show) and the tests.
 *
 * A state key is sealed under PolicyAuthorize(Name(approval key),
 * APPROVAL_POLICY_REF); an approval is the approval key's signature over a
 * PolicyPCR digest of sha256 PCR values. Everything here is computed from
 * TPM 2.0 Part 3's definitions of TPM2_PolicyPCR and TPM2_PolicyAuthorize
 * and marshalled with tpm2-tss's mu library: no TPM is involved, and no
 * tpm2-tss type leaves this file (byte buffers do).
 *
 * The PCR lists of the configuration and the CLIs ("0,2,4,7") and the
 * JSON form of PCR values ({"0": HEX, …}) live here too, so the manager,
 * the CA and vtpmctl spell them the same way.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <tss2/tss2_mu.h>

#include "common/common.h"
#include "tpm.h"

/* Parses "0,2,4,7" (PCR indices 0..23, no duplicates, spaces around the
 * commas allowed, none missing). Returns 0 or -1. */
int
pcrpolicy_parse(const char *list, struct pcr_selection *sel)
{
	const char *p = list;
	uint32_t mask = 0;
	char *end;
	long v;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || v < 0 || v >= TPM_PCRS || (mask & (1u << v)))
			return -1;
		mask |= 1u << v;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			if (*p == '\0')
				return -1; /* "0,2," */
		} else if (*p != '\0') {
			return -1;
		}
	}
	if (mask == 0)
		return -1;
	sel->mask = mask;
	return 0;
}

void
pcrpolicy_format(const struct pcr_selection *sel, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < TPM_PCRS && off < len; i++)
		if (sel->mask & (1u << i))
			off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? "," : "", i);
}

json_t *
pcrpolicy_values_json(uint32_t mask, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	char key[8], hex[2 * TPM_DIGEST_LEN + 1];
	json_t *o = json_object();

	for (int i = 0; i < TPM_PCRS && o != NULL; i++) {
		if (!(mask & (1u << i)))
			continue;
		snprintf(key, sizeof(key), "%d", i);
		hex_encode(values[i], TPM_DIGEST_LEN, hex);
		json_object_set_new(o, key, json_string(hex));
	}
	return o;
}

int
pcrpolicy_values_parse(json_t *o, uint32_t *mask, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	const char *key;
	json_t *val;
	char *end;
	long i;

	*mask = 0;
	if (!json_is_object(o))
		return -1;
	json_object_foreach(o, key, val) {
		i = strtol(key, &end, 10);
		if (*key == '\0' || *end != '\0' || i < 0 || i >= TPM_PCRS || !json_is_string(val) ||
		    hex_decode(json_string_value(val), values[i], TPM_DIGEST_LEN) == -1)
			return -1;
		*mask |= 1u << i;
	}
	return *mask == 0 ? -1 : 0;
}

static TPML_PCR_SELECTION
pcrpolicy_tpml(const struct pcr_selection *sel)
{
	TPML_PCR_SELECTION t;

	memset(&t, 0, sizeof(t));
	t.count = 1;
	t.pcrSelections[0].hash = TPM2_ALG_SHA256;
	t.pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < TPM_PCRS; i++)
		if (sel->mask & (1u << i))
			t.pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
	return t;
}

int
pcrpolicy_selection(const struct pcr_selection *sel, uint8_t out[static PCRPOLICY_SELECTION_LEN])
{
	TPML_PCR_SELECTION t = pcrpolicy_tpml(sel);
	size_t off = 0;

	if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&t, out, PCRPOLICY_SELECTION_LEN, &off) !=
	        TSS2_RC_SUCCESS ||
	    off != PCRPOLICY_SELECTION_LEN)
		return -1;
	return 0;
}

static int
pcrpolicy_sha256(const uint8_t *buf, size_t len, uint8_t out[static TPM_DIGEST_LEN])
{
	return EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int
pcrpolicy_digest(const struct pcr_selection *sel, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t policy[TPM_DIGEST_LEN])
{
	uint8_t concat[TPM_PCRS * TPM_DIGEST_LEN];
	uint8_t buf[TPM_DIGEST_LEN + 4 + PCRPOLICY_SELECTION_LEN + TPM_DIGEST_LEN];
	size_t n = 0, off;

	for (int i = 0; i < TPM_PCRS; i++) {
		if (sel->mask & (1u << i)) {
			memcpy(concat + n, values[i], TPM_DIGEST_LEN);
			n += TPM_DIGEST_LEN;
		}
	}
	/* policyDigest' = H(0…0 || TPM_CC_PolicyPCR || pcrs || H(values)) */
	memset(buf, 0, TPM_DIGEST_LEN);
	off = TPM_DIGEST_LEN;
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyPCR, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
	    pcrpolicy_selection(sel, buf + off) == -1)
		return -1;
	off += PCRPOLICY_SELECTION_LEN;
	if (pcrpolicy_sha256(concat, n, buf + off) == -1)
		return -1;
	off += TPM_DIGEST_LEN;
	return pcrpolicy_sha256(buf, off, policy);
}

/* The public area of an ECC P-256 approval key, as the TPM sees it. */
static TPM2B_PUBLIC
pcrpolicy_approval_tpm2b(const struct approval_pub *pub)
{
	TPM2B_PUBLIC p = {0};

	p.publicArea.type = TPM2_ALG_ECC;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	p.publicArea.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH;
	p.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	p.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	p.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	p.publicArea.unique.ecc.x.size = 32;
	memcpy(p.publicArea.unique.ecc.x.buffer, pub->x, 32);
	p.publicArea.unique.ecc.y.size = 32;
	memcpy(p.publicArea.unique.ecc.y.buffer, pub->y, 32);
	return p;
}

int
pcrpolicy_approval_public(const struct approval_pub *pub, uint8_t *out, size_t max, size_t *len)
{
	TPM2B_PUBLIC p = pcrpolicy_approval_tpm2b(pub);
	size_t off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&p, out, max, &off) != TSS2_RC_SUCCESS)
		return -1;
	*len = off;
	return 0;
}

int
pcrpolicy_approval_name(const struct approval_pub *pub, uint8_t name[static PCRPOLICY_NAME_LEN])
{
	TPM2B_PUBLIC p = pcrpolicy_approval_tpm2b(pub);
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;

	if (Tss2_MU_TPMT_PUBLIC_Marshal(&p.publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return -1;
	name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
	name[1] = (uint8_t)TPM2_ALG_SHA256;
	return pcrpolicy_sha256(buf, off, name + 2);
}

int
pcrpolicy_authorize(const struct approval_pub *pub, uint8_t policy[TPM_DIGEST_LEN])
{
	uint8_t buf[TPM_DIGEST_LEN + 4 + PCRPOLICY_NAME_LEN], mid[TPM_DIGEST_LEN];
	static const uint8_t ref[] = APPROVAL_POLICY_REF; /* without its NUL */
	uint8_t tail[TPM_DIGEST_LEN + sizeof(ref) - 1];
	size_t off = TPM_DIGEST_LEN;

	/* H(H(0…0 || TPM_CC_PolicyAuthorize || Name) || policyRef) */
	memset(buf, 0, TPM_DIGEST_LEN);
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyAuthorize, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    pcrpolicy_approval_name(pub, buf + off) == -1)
		return -1;
	off += PCRPOLICY_NAME_LEN;
	if (pcrpolicy_sha256(buf, off, mid) == -1)
		return -1;
	memcpy(tail, mid, TPM_DIGEST_LEN);
	memcpy(tail + TPM_DIGEST_LEN, ref, sizeof(ref) - 1);
	return pcrpolicy_sha256(tail, sizeof(tail), policy);
}
