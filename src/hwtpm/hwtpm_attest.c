/*
 * hwtpm_attest.c: the host TPM's side of the chain of trust.
 *
 * The keys that vouch for the host, all persistent in the host TPM and
 * looked up once per hwtpm_open (struct hwtpm_pkey, hwtpm_private.h):
 *
 *   EK  0x81010001 (RSA-2048) / 0x81010002 (ECC P-256): the endorsement key
 *       of the TCG EK Credential Profile (templates L-1 and L-2), with the
 *       manufacturer's certificate in NV 0x01c00002 / 0x01c0000a if any.
 *   CK  0x81000002: the Certifying Key, an ECC P-256 restricted signing key
 *       (ECDSA-SHA256) under the SRK. The Privacy CA certifies it after
 *       TPM2_ActivateCredential proves it shares a TPM with the EK.
 *   BK  0x81000003: the Binding Key, an RSA-2048 decryption key (OAEP with
 *       SHA-256, fixed in the key) under the SRK, certified by the CK. Data
 *       leaving the host (export, migration) is encrypted to it. RSA-OAEP
 *       rather than ECC: a sender needs one standard primitive (RFC 8017,
 *       one call in any crypto library) and no agreement on an ECIES
 *       construction (KDF, MAC, point format); the TPM opens it with one
 *       TPM2_RSA_Decrypt; the scheme in the key forbids PKCS#1 v1.5
 *       decryption (no padding oracle); the slow RSA key generation happens
 *       once per host.
 *
 * The CK and BK work only in an approved host configuration: their
 * authPolicy is the sealed state keys' (PolicyAuthorize(approval key,
 * APPROVAL_POLICY_REF), pcrpolicy_authorize), and userWithAuth is clear,
 * so the USER role, which every signature (TPM2_Certify's and TPM2_Quote's
 * signHandle, TPM2_Sign) and every decryption (TPM2_RSA_Decrypt) needs,
 * is granted only to a policy session in which PolicyPCR over the host
 * PCRs as they are now, then PolicyAuthorize with an approval the host TPM
 * verified (a TPM2_VerifySignature ticket), left the key's authPolicy
 * (hwtpm_policy_arm). A host booted into an unapproved configuration
 * cannot certify, quote or decrypt until an administrator approves it.
 * adminWithPolicy stays clear: the ADMIN role (TPM2_ActivateCredential of
 * the CK at enrolment, TPM2_Certify of the BK as its object) is granted by
 * the empty authValue, since PolicyAuthorize of a PolicyPCR digest cannot
 * also satisfy the PolicyCommandCode an ADMIN policy needs; none of those
 * commands signs or decrypts with the key. The authValue is empty and the
 * keys are noDA: failed authorizations against them must not count towards
 * the TPM's lockout (a denial of service for the sealed state keys).
 *
 * The CK and BK of an older vtpmd (userWithAuth set, no authPolicy), or
 * made under another approval key, are vtpmd's but refused for use; the
 * enrolment (hwtpm_ck, hwtpm_bk) replaces them.
 *
 * The CK certifies the vTPMs' sealed state-key objects (TPM2_Certify needs
 * the ADMIN role of the certified object: see hwtpm_seal, whose objects
 * keep adminWithPolicy clear for this) and quotes the host PCRs. Its
 * signatures go through tpm2-tss's System API under the policy session
 * the unseals use (hwtpm_policy_arm, hwtpm_session.c), kept for the
 * connection: each costs PolicyPCR, PolicyAuthorize and the command, with
 * no StartAuthSession, and its HMACs (over the Names vtpmd computed, and
 * over the response) are vtpmd's own.
 *
 * Outputs are marshalled TPM structures (TPM wire format), malloc'd and
 * owned by the caller. Functions return 0, or -1 with err set.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "hwtpm.h"
#include "hwtpm_private.h"
#include "tpm/tss.h"

#define HWTPM_QUOTE_TRIES 3 /* a PCR may be extended between quote and read */

static const TPMT_SYM_DEF hwtpm_sym_none = {.algorithm = TPM2_ALG_NULL};
static const TPMT_SIG_SCHEME hwtpm_key_scheme = {.scheme = TPM2_ALG_NULL};

/* Whether a TPM response code says "no such handle" (TPM_RC_HANDLE). */
static bool
hwtpm_rc_absent(TSS2_RC rc)
{
	return (rc & ~(TSS2_RC)0xf00) == TPM2_RC_HANDLE;
}

/* The TCG EK Credential Profile's template of kind (tss.c). */
static TPM2B_PUBLIC
hwtpm_ek_tmpl(enum hwtpm_ek_kind kind)
{
	TPM2B_PUBLIC t;

	tss_ek_template(kind == HWTPM_EK_ECC, &t);
	return t;
}

/* The authPolicy of the CK and BK, the state keys' (pcrpolicy_authorize),
 * in a template. */
static int
hwtpm_set_policy(TPM2B_PUBLIC *t, const struct approval_pub *approval, struct err *err)
{
	t->publicArea.authPolicy.size = TPM_DIGEST_LEN;
	if (pcrpolicy_authorize(approval, t->publicArea.authPolicy.buffer) == -1)
		return err_set(err, ERR_FAILED, "compute the approval policy of the CK and BK");
	return 0;
}

/* The CK: ECC P-256, restricted signing, ECDSA-SHA256, usable only through
 * its authPolicy (hwtpm_set_policy). */
static TPM2B_PUBLIC
hwtpm_ck_tmpl(void)
{
	TPM2B_PUBLIC t = {0};
	TPMT_PUBLIC *p = &t.publicArea;

	p->type = TPM2_ALG_ECC;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA |
	                      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	return t;
}

/* The BK: RSA-2048, non-restricted decryption, OAEP with SHA-256, usable
 * only through its authPolicy (hwtpm_set_policy). */
static TPM2B_PUBLIC
hwtpm_bk_tmpl(void)
{
	TPM2B_PUBLIC t = {0};
	TPMT_PUBLIC *p = &t.publicArea;

	p->type = TPM2_ALG_RSA;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA |
	                      TPMA_OBJECT_DECRYPT;
	p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_OAEP;
	p->parameters.rsaDetail.scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
	p->parameters.rsaDetail.keyBits = 2048;
	p->parameters.rsaDetail.exponent = 0;
	return t;
}

/* Whether got is an object made from tmpl: every field of the public area
 * but the key itself (unique) is the template's. */
static bool
hwtpm_same_template(const TPMT_PUBLIC *tmpl, const TPMT_PUBLIC *got)
{
	TPMT_PUBLIC want = *tmpl;
	uint8_t a[sizeof(TPMT_PUBLIC)], b[sizeof(TPMT_PUBLIC)];
	size_t alen = 0, blen = 0;

	want.unique = got->unique;
	if (Tss2_MU_TPMT_PUBLIC_Marshal(&want, a, sizeof(a), &alen) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPMT_PUBLIC_Marshal(got, b, sizeof(b), &blen) != TSS2_RC_SUCCESS)
		return false;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Whether got is a key vtpmd made from tmpl under another policy: an
 * older vtpmd's (userWithAuth set, no authPolicy) or one bound to another
 * approval key. */
static bool
hwtpm_other_policy(const TPMT_PUBLIC *tmpl, const TPMT_PUBLIC *got)
{
	TPMT_PUBLIC want = *tmpl;

	want.authPolicy = got->authPolicy;
	want.objectAttributes |= got->objectAttributes & TPMA_OBJECT_USERWITHAUTH;
	return hwtpm_same_template(&want, got);
}

/* Copies a marshalled TPM2B_PUBLIC into a malloc'd buffer. */
static int
hwtpm_put_public(const TPM2B_PUBLIC *pub, uint8_t **out, size_t *out_len, struct err *err)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, 0, "marshal a public area");
		return -1;
	}
	if ((*out = malloc(off)) == NULL) {
		hwtpm_seterr(err, 0, "out of memory");
		return -1;
	}
	memcpy(*out, buf, off);
	*out_len = off;
	return 0;
}

/*
 * The TCG template of an EK kind as a marshalled TPM2B_PUBLIC (malloc'd,
 * owned by the caller), for the other TPMs vtpmd provisions (guesttpm.c).
 */
int
hwtpm_ek_template(enum hwtpm_ek_kind kind, uint8_t **tmpl, size_t *len, struct err *err)
{
	TPM2B_PUBLIC t = hwtpm_ek_tmpl(kind);

	return hwtpm_put_public(&t, tmpl, len, err);
}

/* Whether the marshalled TPM2B_PUBLIC pub was made from the template tmpl
 * (hwtpm_ek_template): everything but the key itself is equal. */
bool
hwtpm_public_matches(const uint8_t *tmpl, size_t tmpl_len, const uint8_t *pub, size_t pub_len)
{
	TPM2B_PUBLIC a = {0}, b = {0};
	size_t aoff = 0, boff = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(tmpl, tmpl_len, &aoff, &a) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_len, &boff, &b) != TSS2_RC_SUCCESS ||
	    aoff != tmpl_len || boff != pub_len)
		return false;
	return hwtpm_same_template(&a.publicArea, &b.publicArea);
}

/*
 * Finds the persistent key at handle, once per connection. With check, its
 * public area is read and must come from tmpl (else an error: vtpmd never
 * replaces someone else's key). Returns 1 when found, 0 when the handle is
 * empty, -1 on error; HWTPM_OTHER_POLICY (err set) when the key is
 * vtpmd's, made under another policy (hwtpm_other_policy).
 */
#define HWTPM_OTHER_POLICY 2
static int
hwtpm_find(struct hwtpm *hw, struct hwtpm_pkey *k, TPM2_HANDLE handle, const TPM2B_PUBLIC *tmpl,
    bool check, struct err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;

	if (!k->found) {
		rc = Esys_TR_FromTPMPublic(
		    hw->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &k->tr);
		if (hwtpm_rc_absent(rc))
			return 0;
		if (rc != TSS2_RC_SUCCESS) {
			hwtpm_seterr(err, rc, "look up 0x%08x", handle);
			return -1;
		}
		k->found = true;
	}
	if (!check || k->checked)
		return 1;
	rc = Esys_ReadPublic(
	    hw->esys, k->tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "read the public area of 0x%08x", handle);
		return -1;
	}
	if (hwtpm_other_policy(&tmpl->publicArea, &pub->publicArea) &&
	    !hwtpm_same_template(&tmpl->publicArea, &pub->publicArea)) {
		err_set(err, ERR_FAILED,
		    "the key at 0x%08x works without an approved host "
		    "configuration, or under another approval key (made by an older vtpmd, or "
		    "before the approval key changed): enrol the host again (vtpmctl host enroll), "
		    "which replaces it",
		    handle);
		Esys_Free(pub);
		return HWTPM_OTHER_POLICY;
	}
	if (!hwtpm_same_template(&tmpl->publicArea, &pub->publicArea)) {
		hwtpm_seterr(err, 0, "the key at 0x%08x is not the one vtpmd expects there "
		    "(another template); it is left alone", handle);
		Esys_Free(pub);
		return -1;
	}
	k->pub = *pub;
	k->checked = true;
	Esys_Free(pub);
	return 1;
}

/* Makes transient key obj persistent at handle and flushes it. */
static int
hwtpm_persist(
    struct hwtpm *hw, ESYS_TR obj, TPM2_HANDLE handle, struct hwtpm_pkey *k, struct err *err)
{
	TSS2_RC rc;

	rc = Esys_EvictControl(hw->esys, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, handle, &k->tr);
	Esys_FlushContext(hw->esys, obj);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "make the key persistent at 0x%08x", handle);
		return -1;
	}
	k->found = k->checked = true;
	return 0;
}

/* Removes vtpmd's own key at handle, made under another policy, so that
 * the enrolment makes it again under this one. */
static int
hwtpm_evict(struct hwtpm *hw, struct hwtpm_pkey *k, TPM2_HANDLE handle, struct err *err)
{
	ESYS_TR none = ESYS_TR_NONE;
	TSS2_RC rc;

	log_warnx("host TPM: the key at 0x%08x works without an approved host configuration or "
	          "under another approval key; replacing it",
	    handle);
	rc = Esys_EvictControl(hw->esys, ESYS_TR_RH_OWNER, k->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, handle, &none);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "remove the key at 0x%08x", handle);
	memset(k, 0, sizeof(*k));
	return 0;
}

/* Creates the EK from its template in the endorsement hierarchy and
 * persists it. The endorsement and owner authorizations must be empty. */
static int
hwtpm_make_ek(struct hwtpm *hw, enum hwtpm_ek_kind kind, struct hwtpm_pkey *k, struct err *err)
{
	TPM2B_PUBLIC tmpl = hwtpm_ek_tmpl(kind), *pub = NULL;
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPML_PCR_SELECTION nopcr = {0};
	TPM2B_DATA noinfo = {0};
	TPM2_HANDLE handle = kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_HANDLE : HWTPM_EK_ECC_HANDLE;
	ESYS_TR obj = ESYS_TR_NONE;
	TSS2_RC rc;

	log_info("host TPM: no EK at 0x%08x; creating one (TCG template)", handle);
	rc = Esys_CreatePrimary(hw->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, &tmpl, &noinfo, &nopcr, &obj, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "create the EK");
		return -1;
	}
	k->pub = *pub;
	Esys_Free(pub);
	return hwtpm_persist(hw, obj, handle, k, err);
}

/* Creates a key from tmpl under the SRK and persists it at handle. The
 * salted session authorizes the SRK and encrypts what crosses the bus. */
static int
hwtpm_make_child(struct hwtpm *hw, const TPM2B_PUBLIC *tmpl, TPM2_HANDLE handle,
    struct hwtpm_pkey *k, struct err *err)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPML_PCR_SELECTION nopcr = {0};
	TPM2B_DATA noinfo = {0};
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR obj = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret = -1;

	log_info("host TPM: no key at 0x%08x; creating one under the SRK", handle);
	if (hwtpm_esys_session(hw, err) == -1)
		return -1;
	rc = Esys_Create(hw->esys, hw->srk, hw->esys_session, ESYS_TR_NONE, ESYS_TR_NONE, &sens, tmpl,
	    &noinfo, &nopcr, &priv, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "create the key for 0x%08x", handle);
		goto out;
	}
	rc = Esys_Load(
	    hw->esys, hw->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &obj);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "load the key for 0x%08x", handle);
		goto out;
	}
	k->pub = *pub;
	ret = hwtpm_persist(hw, obj, handle, k, err);
out:
	Esys_Free(priv);
	Esys_Free(pub);
	return ret;
}

/* Finds or creates the EK of a kind. check: see hwtpm_find. */
static int
hwtpm_ek(struct hwtpm *hw, enum hwtpm_ek_kind kind, bool check, struct err *err)
{
	struct hwtpm_pkey *k = &hw->ek[kind == HWTPM_EK_RSA ? 0 : 1];
	TPM2B_PUBLIC tmpl = hwtpm_ek_tmpl(kind);
	int r;

	r = hwtpm_find(
	    hw, k, kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_HANDLE : HWTPM_EK_ECC_HANDLE, &tmpl, check, err);
	if (r == 0)
		return hwtpm_make_ek(hw, kind, k, err);
	if (r == HWTPM_OTHER_POLICY) /* an EK with another policy is not vtpmd's */
		return hwtpm_seterr(err, 0,
		    "the key at 0x%08x is not the EK vtpmd expects there "
		    "(another policy); it is left alone",
		    kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_HANDLE : HWTPM_EK_ECC_HANDLE);
	return r == 1 ? 0 : -1;
}

/*
 * Finds the CK or BK (k, at handle, from tmpl with the approval key's
 * policy) and checks it, once per connection. With make (the enrolment),
 * a key that is absent is created, and vtpmd's own key made under another
 * policy replaced; without (a use), either is an error that says to enrol.
 */
static int
hwtpm_policy_key(struct hwtpm *hw, struct hwtpm_pkey *k, TPM2_HANDLE handle, TPM2B_PUBLIC tmpl,
    const struct approval_pub *approval, bool make, struct err *err)
{
	int r;

	if (hwtpm_set_policy(&tmpl, approval, err) == -1)
		return -1;
	r = hwtpm_find(hw, k, handle, &tmpl, true, err);
	if (r == HWTPM_OTHER_POLICY && make)
		r = hwtpm_evict(hw, k, handle, err) == -1 ? -1 : 0;
	if (r == 0 && make)
		return hwtpm_make_child(hw, &tmpl, handle, k, err);
	if (r == 0)
		return err_set(err, ERR_FAILED,
		    "no key at 0x%08x: enrol the host (vtpmctl host enroll)", handle);
	return r == 1 ? 0 : -1;
}

/* Finds the CK to use it, checked against the approval key's policy. */
static int
hwtpm_ck_key(struct hwtpm *hw, const struct approval_pub *approval, struct err *err)
{
	return hwtpm_policy_key(
	    hw, &hw->ck, HWTPM_CK_HANDLE, hwtpm_ck_tmpl(), approval, false, err);
}

/* TPM_PT_NV_BUFFER_MAX, asked once per connection. */
static int
hwtpm_nv_buffer_max(struct hwtpm *hw, uint16_t *max, struct err *err)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;
	uint32_t v;

	if (hw->nv_buffer_max == 0) {
		rc = Esys_GetCapability(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		    TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
		if (rc != TSS2_RC_SUCCESS) {
			hwtpm_seterr(err, rc, "ask the TPM for its NV buffer size");
			return -1;
		}
		v = 0;
		if (cap->data.tpmProperties.count == 1 &&
		    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX)
			v = cap->data.tpmProperties.tpmProperty[0].value;
		Esys_Free(cap);
		if (v == 0) {
			hwtpm_seterr(err, 0, "the TPM does not say its NV buffer size");
			return -1;
		}
		if (v > TPM2_MAX_NV_BUFFER_SIZE)
			v = TPM2_MAX_NV_BUFFER_SIZE;
		hw->nv_buffer_max = (uint16_t)v;
	}
	*max = hw->nv_buffer_max;
	return 0;
}

/* Reads the whole of an NV index whose ESYS_TR is nv, authorized by the
 * index itself (AUTHREAD) or the owner (OWNERREAD), both with empty
 * authorization; *data is malloc'd. */
static int
hwtpm_nv_read_all(
    struct hwtpm *hw, ESYS_TR nv, uint32_t index, uint8_t **data, size_t *len, struct err *err)
{
	TPM2B_NV_PUBLIC *npub = NULL;
	uint8_t *buf = NULL;
	uint16_t size, off = 0, max;
	ESYS_TR auth;
	TSS2_RC rc;
	int ret = -1;

	rc =
	    Esys_NV_ReadPublic(hw->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &npub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "read the public area of NV index 0x%08x", index);
		return -1;
	}
	size = npub->nvPublic.dataSize;
	auth = (npub->nvPublic.attributes & TPMA_NV_AUTHREAD) ? nv : ESYS_TR_RH_OWNER;
	if (hwtpm_nv_buffer_max(hw, &max, err) == -1)
		goto out;
	if (size == 0 || (buf = malloc(size)) == NULL) {
		hwtpm_seterr(err, 0, "NV index 0x%08x: %s", index, size == 0 ? "empty" : "out of memory");
		goto out;
	}
	rc = tss_nv_read(hw->esys, auth, nv, size, max, buf, &off);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "read NV index 0x%08x at %u", index, off);
		goto out;
	}
	*data = buf;
	*len = size;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	Esys_Free(npub);
	return ret;
}

/* Reads the certificate in NV index, or sets *cert to NULL when the index
 * does not exist. */
static int
hwtpm_nv_cert(struct hwtpm *hw, uint32_t index, uint8_t **cert, size_t *len, struct err *err)
{
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret;

	*cert = NULL;
	*len = 0;
	rc = Esys_TR_FromTPMPublic(hw->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
	if (hwtpm_rc_absent(rc))
		return 0;
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "look up NV index 0x%08x", index);
		return -1;
	}
	ret = hwtpm_nv_read_all(hw, nv, index, cert, len, err);
	Esys_TR_Close(hw->esys, &nv);
	return ret;
}

/*
 * The host's EK of a kind, found at its TCG handle (and checked against
 * the template) or created and persisted there. *ek_public is its
 * TPM2B_PUBLIC; *ek_cert its certificate (DER) from the TCG NV index, or
 * NULL with length 0 when the TPM holds none. Both malloc'd.
 */
int
hwtpm_host_ek(struct hwtpm *hw, enum hwtpm_ek_kind kind, uint8_t **ek_public, size_t *ek_public_len,
    uint8_t **ek_cert, size_t *ek_cert_len, struct err *err)
{
	uint8_t *pub = NULL;
	size_t pub_len;
	int ret = -1;

	*ek_public = *ek_cert = NULL;
	*ek_public_len = *ek_cert_len = 0;
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hwtpm_ek(hw, kind, true, err) == -1 ||
	    hwtpm_put_public(&hw->ek[kind == HWTPM_EK_RSA ? 0 : 1].pub, &pub, &pub_len, err) == -1 ||
	    hwtpm_nv_cert(hw, kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_CERT_NV : HWTPM_EK_ECC_CERT_NV,
	        ek_cert, ek_cert_len, err) == -1)
		goto out;
	*ek_public = pub;
	*ek_public_len = pub_len;
	pub = NULL;
	ret = 0;
out:
	free(pub);
	return ret;
}

/* The CK, found at HWTPM_CK_HANDLE (and checked) or created there, with
 * the authPolicy of approval (a CK vtpmd made under another policy is
 * replaced: this is the enrolment's); its TPM2B_PUBLIC in *ck_public
 * (malloc'd). */
int
hwtpm_ck(struct hwtpm *hw, const struct approval_pub *approval, uint8_t **ck_public, size_t *len,
    struct err *err)
{
	*ck_public = NULL;
	*len = 0;
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hwtpm_policy_key(hw, &hw->ck, HWTPM_CK_HANDLE, hwtpm_ck_tmpl(), approval, true, err) ==
	    -1)
		return -1;
	return hwtpm_put_public(&hw->ck.pub, ck_public, len, err);
}

/* Finds the CK for its ADMIN role (TPM2_ActivateCredential), which needs
 * neither its policy nor its public area. */
static int
hwtpm_ck_found(struct hwtpm *hw, struct err *err)
{
	int r = hwtpm_find(hw, &hw->ck, HWTPM_CK_HANDLE, NULL, false, err);

	if (r == 0)
		return err_set(err, ERR_FAILED,
		    "no CK at 0x%08x: enrol the host (vtpmctl host enroll)", HWTPM_CK_HANDLE);
	return r == 1 ? 0 : -1;
}

/* Starts a policy session and satisfies PolicyA, PolicySecret(TPM_RH_
 * ENDORSEMENT), the EK's authPolicy. The session carries no secret and
 * is not salted; the session ends with the command it authorizes. */
static int
hwtpm_policy_a_session(struct hwtpm *hw, ESYS_TR *session, struct err *err)
{
	TPM2B_NONCE nonce = {0}, ref = {0};
	TPM2B_DIGEST cphash = {0};
	TPM2B_TIMEOUT *timeout = NULL;
	TPMT_TK_AUTH *ticket = NULL;
	TSS2_RC rc;

	rc = Esys_StartAuthSession(hw->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &hwtpm_sym_none, TPM2_ALG_SHA256, session);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "start a policy session");
		*session = ESYS_TR_NONE;
		return -1;
	}
	rc = Esys_PolicySecret(hw->esys, ESYS_TR_RH_ENDORSEMENT, *session, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &nonce, &cphash, &ref, 0, &timeout, &ticket);
	Esys_Free(timeout);
	Esys_Free(ticket);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "PolicySecret(endorsement) for the EK");
		Esys_FlushContext(hw->esys, *session);
		*session = ESYS_TR_NONE;
		return -1;
	}
	Esys_TRSess_SetAttributes(hw->esys, *session, 0, TPMA_SESSION_CONTINUESESSION);
	return 0;
}

/*
 * TPM2_ActivateCredential of a credential a Privacy CA made for the host
 * EK of kind and the CK: blob is its marshalled TPM2B_ID_OBJECT, enc_secret
 * its TPM2B_ENCRYPTED_SECRET. The CK's ADMIN role is authorized with its
 * empty authValue, the EK's with a policy session (PolicyA); the recovered
 * secret crosses the bus encrypted (the salted session, attached for
 * response encryption). On success secret holds *secret_len bytes; the
 * caller wipes them.
 */
int
hwtpm_activate_credential(struct hwtpm *hw, enum hwtpm_ek_kind kind, const uint8_t *blob,
    size_t blob_len, const uint8_t *enc_secret, size_t enc_secret_len,
    uint8_t secret[static HWTPM_CREDENTIAL_MAX], size_t *secret_len, struct err *err)
{
	TPM2B_ID_OBJECT id = {0};
	TPM2B_ENCRYPTED_SECRET es = {0};
	TPM2B_DIGEST *cred = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	size_t a = 0, b = 0;
	TSS2_RC rc;
	int ret = -1;

	*secret_len = 0;
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_len, &a, &id) != TSS2_RC_SUCCESS ||
	    a != blob_len ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc_secret, enc_secret_len, &b, &es) !=
	        TSS2_RC_SUCCESS ||
	    b != enc_secret_len) {
		hwtpm_seterr(err, 0, "credential is malformed (expected TPM2B_ID_OBJECT and "
		             "TPM2B_ENCRYPTED_SECRET)");
		return -1;
	}
	if (hwtpm_ek(hw, kind, false, err) == -1 || hwtpm_ck_found(hw, err) == -1 ||
	    hwtpm_esys_session(hw, err) == -1 || hwtpm_policy_a_session(hw, &session, err) == -1)
		return -1;
	Esys_TRSess_SetAttributes(
	    hw->esys, hw->esys_session, TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
	rc = Esys_ActivateCredential(hw->esys, hw->ck.tr, hw->ek[kind == HWTPM_EK_RSA ? 0 : 1].tr,
	    ESYS_TR_PASSWORD, session, hw->esys_session, &id, &es, &cred);
	Esys_TRSess_SetAttributes(hw->esys, hw->esys_session,
	    TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, rc, "activate the credential (made for another EK or key, or altered?)");
		goto out;
	}
	session = ESYS_TR_NONE; /* ended by the TPM with the command */
	memcpy(secret, cred->buffer, cred->size);
	*secret_len = cred->size;
	ret = 0;
out:
	if (cred != NULL) {
		OPENSSL_cleanse(cred, sizeof(*cred));
		Esys_Free(cred);
	}
	if (session != ESYS_TR_NONE)
		Esys_FlushContext(hw->esys, session);
	return ret;
}

/* Copies what the TPM signed (the TPMS_ATTEST inside a TPM2B_ATTEST) and
 * its marshalled TPMT_SIGNATURE into ev. */
static int
hwtpm_put_attestation(const TPM2B_ATTEST *attest, const TPMT_SIGNATURE *sig,
    struct hwtpm_attestation *ev, struct err *err)
{
	uint8_t buf[sizeof(TPMT_SIGNATURE)];
	size_t off = 0;

	if (attest->size == 0)
		return hwtpm_seterr(err, 0, "the host TPM answered an empty attestation");
	if (Tss2_MU_TPMT_SIGNATURE_Marshal(sig, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
		hwtpm_seterr(err, 0, "marshal a signature");
		return -1;
	}
	ev->attest = malloc(attest->size);
	ev->signature = malloc(off);
	if (ev->attest == NULL || ev->signature == NULL) {
		hwtpm_attestation_clear(ev);
		hwtpm_seterr(err, 0, "out of memory");
		return -1;
	}
	memcpy(ev->attest, attest->attestationData, attest->size);
	ev->attest_len = attest->size;
	memcpy(ev->signature, buf, off);
	ev->signature_len = off;
	return 0;
}

/* Frees what an attestation holds (not ev itself) and zeroes it. Accepts
 * NULL. */
void
hwtpm_attestation_clear(struct hwtpm_attestation *ev)
{
	if (ev == NULL)
		return;
	free(ev->attest);
	free(ev->signature);
	memset(ev, 0, sizeof(*ev));
}

/*
 * Fills err for the host TPM's failure rc of a command (cc_name) the CK
 * signs under the salted policy session (hwtpm_policy_arm), doing what.
 * The session's HMAC covers the command's cpHash, which names the objects
 * as vtpmd computed them, so a TPM that refuses it (TPM_RC_BAD_AUTH or
 * TPM_RC_AUTH_FAIL) received another command than vtpmd sent: an object
 * or Name changed on the host-TPM link (as with the Unseal, hwtpm_seal.c).
 * Any other failure is worded as the TPM's. Returns -1.
 */
static int
hwtpm_ck_refused(TSS2_RC rc, const char *cc_name, const char *what, struct err *err)
{
	if (!hwtpm_rc_bad_auth(rc))
		return hwtpm_seterr(err, rc, "%s", what);
	return hwtpm_seterr(err, rc, "%s: the host TPM refused the authorization of %s by the "
	    "CK, whose salted policy session's HMAC covers the Names of what vtpmd sent: an "
	    "object or Name changed on the host TPM link (or the approval does not match); "
	    "nothing was signed", what, cc_name);
}

/* The CK's authorization in a command: the policy session, kept. */
#define HWTPM_CK_ATTRS TPMA_SESSION_CONTINUESESSION

/*
 * Sends the CK's command cc (cc_name), prepared in hw->sys by prepare
 * (called again when the TPM asks for the command again), with the CK's
 * USER role authorized by hw->policy as hwtpm_policy_arm left it, in the
 * last of n_auths sessions (those before it: empty passwords of the
 * handles before the CK). The session's HMAC covers names, the command's
 * handles' Names as vtpmd computed them, and the response's HMAC is
 * checked before anything of it is taken. On failure the policy session
 * is flushed. Returns 0, or -1 with err (doing what).
 */
static int
hwtpm_ck_execute(struct hwtpm *hw, TPM2_CC cc, const char *cc_name, const char *what,
    TSS2_RC (*prepare)(struct hwtpm *hw, const void *arg), const void *arg,
    const TPM2B_NAME *const names[], size_t n_auths, struct err *err)
{
	TSS2L_SYS_AUTH_COMMAND cmd = {.count = (UINT16)n_auths};
	TSS2L_SYS_AUTH_RESPONSE rsp = {0};
	TPMS_AUTH_COMMAND *ck = &cmd.auths[n_auths - 1];
	TPM2B_NONCE nonce_tpm;
	int tries = 0;
	TSS2_RC rc;

	for (size_t i = 0; i + 1 < n_auths; i++)
		cmd.auths[i].sessionHandle = TPM2_RS_PW;
	if (hwtpm_session_begin(&hw->policy, HWTPM_CK_ATTRS, ck) == -1) {
		hwtpm_seterr(err, 0, "draw a session nonce");
		goto failed;
	}
	do {
		rc = prepare(hw, arg);
		if (rc == TSS2_RC_SUCCESS &&
		    hwtpm_session_sign(hw, &hw->policy, cc, names, n_auths, ck) == -1) {
			hwtpm_seterr(err, 0, "compute the CK's authorization of %s", cc_name);
			goto failed;
		}
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, &cmd, &rsp);
	} while (hwtpm_sapi_again(rc, &tries));
	if (rc != TSS2_RC_SUCCESS) {
		hwtpm_ck_refused(rc, cc_name, what, err);
		goto failed;
	}
	if (hwtpm_session_check_at(hw, &hw->policy, cc, ck, &rsp, n_auths - 1, &nonce_tpm, err) ==
	    -1)
		goto failed;
	return 0;
failed:
	hwtpm_session_end(hw, &hw->policy, true);
	return -1;
}

/* What TPM2_Certify is prepared with. */
struct hwtpm_certify_args {
	TPM2_HANDLE obj;
	const TPM2B_DATA *qd;
};

static TSS2_RC
hwtpm_certify_prepare(struct hwtpm *hw, const void *arg)
{
	const struct hwtpm_certify_args *a = arg;

	return Tss2_Sys_Certify_Prepare(hw->sys, a->obj, HWTPM_CK_HANDLE, a->qd, &hwtpm_key_scheme);
}

/* TPM2_Certify of the loaded object obj, called obj_name (as vtpmd
 * computed it), by the CK, over qualifying data. The object's ADMIN role
 * is authorized with its empty authValue, the CK's USER role by its
 * policy: the host PCRs in sel and their approval ap (hwtpm_policy_arm). */
static int
hwtpm_certify(struct hwtpm *hw, TPM2_HANDLE obj, const TPM2B_NAME *obj_name,
    const struct pcr_selection *sel, const struct approval *ap, const uint8_t *qualifying,
    size_t qualifying_len, struct hwtpm_attestation *ev, struct err *err)
{
	TPM2B_DATA qd = {0};
	TPM2B_ATTEST attest = {0};
	TPMT_SIGNATURE sig = {0};
	TPM2B_NAME ck_name;
	const struct hwtpm_certify_args args = {.obj = obj, .qd = &qd};
	TSS2_RC rc;

	if (qualifying_len > sizeof(qd.buffer))
		return hwtpm_seterr(err, 0, "qualifying data longer than 64 bytes");
	qd.size = (UINT16)qualifying_len;
	memcpy(qd.buffer, qualifying, qualifying_len);
	if (hwtpm_ck_key(hw, &ap->pub, err) == -1)
		return -1;
	if (hwtpm_object_name(&hw->ck.pub, &ck_name) == -1)
		return hwtpm_seterr(err, 0, "compute the CK's Name");
	if (hwtpm_policy_arm(hw, sel, ap, err) == -1 ||
	    hwtpm_ck_execute(hw, TPM2_CC_Certify, "TPM2_Certify", "certify with the CK",
	        hwtpm_certify_prepare, &args, (const TPM2B_NAME *const[]){obj_name, &ck_name}, 2,
	        err) == -1)
		return -1;
	rc = Tss2_Sys_Certify_Complete(hw->sys, &attest, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "certify with the CK");
	return hwtpm_put_attestation(&attest, &sig, ev, err);
}

/*
 * The BK, found at HWTPM_BK_HANDLE (and checked) or created there with
 * the authPolicy of ap's key (a BK vtpmd made under another policy is
 * replaced), and a fresh TPM2_Certify of it by the CK, under the approval
 * ap of the host PCRs in sel, with qualifyingData = SHA-256 of its
 * TPM2B_PUBLIC. *bk_public is malloc'd; ev is cleared with
 * hwtpm_attestation_clear. err is ERR_POLICY when the host PCRs are not
 * the approved ones.
 */
int
hwtpm_bk(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    uint8_t **bk_public, size_t *bk_public_len, struct hwtpm_attestation *ev, struct err *err)
{
	uint8_t digest[TPM_DIGEST_LEN], *pub = NULL;
	TPM2B_NAME bk_name;
	size_t pub_len = 0;
	int ret = -1;

	*bk_public = NULL;
	*bk_public_len = 0;
	memset(ev, 0, sizeof(*ev));
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hwtpm_policy_key(hw, &hw->bk, HWTPM_BK_HANDLE, hwtpm_bk_tmpl(), &ap->pub, true, err) ==
	        -1 ||
	    hwtpm_put_public(&hw->bk.pub, &pub, &pub_len, err) == -1)
		goto out;
	if (hwtpm_sha256(pub, pub_len, NULL, 0, digest) == -1) {
		hwtpm_seterr(err, 0, "hash the BK's public area");
		goto out;
	}
	if (hwtpm_object_name(&hw->bk.pub, &bk_name) == -1) {
		hwtpm_seterr(err, 0, "compute the BK's Name");
		goto out;
	}
	if (hwtpm_certify(
	        hw, HWTPM_BK_HANDLE, &bk_name, sel, ap, digest, sizeof(digest), ev, err) == -1)
		goto out;
	*bk_public = pub;
	*bk_public_len = pub_len;
	pub = NULL;
	ret = 0;
out:
	free(pub);
	return ret;
}

/*
 * Checks that a certification (ev, by the CK) names the object called
 * want. The Load before it goes with a password session, which nothing
 * authenticates, so a proxy can swap the object and forge the Name in the
 * response; what the TPM certified, signed by the CK, says which object
 * it loaded. Returns 0, or -1 with err set.
 */
static int
hwtpm_certified_name(const struct hwtpm_attestation *ev, const TPM2B_NAME *want, struct err *err)
{
	char got_hex[2 * sizeof(TPMU_NAME) + 1], want_hex[2 * sizeof(TPMU_NAME) + 1];
	TPMS_ATTEST a;
	size_t off = 0;

	if (Tss2_MU_TPMS_ATTEST_Unmarshal(ev->attest, ev->attest_len, &off, &a) != TSS2_RC_SUCCESS ||
	    off != ev->attest_len || a.type != TPM2_ST_ATTEST_CERTIFY)
		return hwtpm_seterr(err, 0, "the CK's certification is not a TPMS_ATTEST of TPM2_Certify");
	if (a.attested.certify.name.size == want->size &&
	    memcmp(a.attested.certify.name.name, want->name, want->size) == 0)
		return 0;
	hwtpm_name_hex(&a.attested.certify.name, got_hex);
	hwtpm_name_hex(want, want_hex);
	return hwtpm_seterr(err, 0, "the CK certified another object (Name %.16s…) than the sealed "
	    "one (its blob's Name is %.16s…): something between vtpmd and the TPM swapped it at "
	    "TPM2_Load", got_hex, want_hex);
}

/*
 * TPM2_Certify by the CK of a sealed object (blob as hwtpm_seal writes
 * it), loaded under the SRK for the command and flushed after it; the
 * certification names the object (its Name covers its authPolicy, the
 * PCR binding) and carries qualifying (at most 64 bytes: a digest of the
 * vEK's public area). Certify needs the object's ADMIN role: objects
 * sealed with adminWithPolicy set (before this module) cannot be
 * certified and must be sealed again. The CK signs only under ap, the
 * approval of the host PCRs in sel. Returns 0, or -1 with err (kind
 * ERR_FOREIGN when the object is not this TPM's, ERR_POLICY when the host
 * PCRs are not the approved ones).
 */
int
hwtpm_certify_sealed(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, const uint8_t *qualifying,
    size_t qualifying_len, struct hwtpm_attestation *ev, struct err *err)
{
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	TPM2B_NAME name;
	TPM2_HANDLE obj = 0;
	int ret;

	memset(ev, 0, sizeof(*ev));
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (hwtpm_sealed_parse(blob, blob_len, &pub, &priv, NULL, &name, err) == -1)
		return -1;
	if (pub.publicArea.objectAttributes & TPMA_OBJECT_ADMINWITHPOLICY) {
		hwtpm_seterr(err, 0, "the sealed object needs a policy for TPM2_Certify (adminWithPolicy, "
		             "an older template): seal its key again");
		return -1;
	}
	/* The Name in Load's answer must be the blob's (hwtpm_load_sealed),
	 * and the Certify's HMAC covers the blob's: a swapped object is
	 * refused by vtpmd or by the TPM. */
	if (hwtpm_load_sealed(hw, &priv, &pub, &name, &obj, err) == -1)
		return -1;
	ret = hwtpm_certify(hw, obj, &name, sel, ap, qualifying, qualifying_len, ev, err);
	hwtpm_sapi_flush(hw, obj);
	if (ret == 0 && hwtpm_certified_name(ev, &name, err) == -1) {
		hwtpm_attestation_clear(ev);
		ret = -1;
	}
	return ret;
}

/* The PCR digest of a quote over sel: SHA-256 of the selected values in
 * PCR order. */
static int
hwtpm_pcr_digest(const struct pcr_selection *sel,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], uint8_t out[TPM_DIGEST_LEN])
{
	uint8_t concat[TPM_PCRS * TPM_DIGEST_LEN];
	size_t n = 0;

	for (int i = 0; i < TPM_PCRS; i++) {
		if (sel->mask & (1u << i)) {
			memcpy(concat + n, values[i], TPM_DIGEST_LEN);
			n += TPM_DIGEST_LEN;
		}
	}
	return hwtpm_sha256(concat, n, NULL, 0, out);
}

/* Whether a quote's TPMS_ATTEST holds digest as its PCR digest. */
static bool
hwtpm_quote_has(const TPM2B_ATTEST *attest, const uint8_t digest[TPM_DIGEST_LEN])
{
	TPMS_ATTEST a;
	size_t off = 0;

	if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest->attestationData, attest->size, &off, &a) !=
	        TSS2_RC_SUCCESS ||
	    a.type != TPM2_ST_ATTEST_QUOTE)
		return false;
	return a.attested.quote.pcrDigest.size == TPM_DIGEST_LEN &&
	       memcmp(a.attested.quote.pcrDigest.buffer, digest, TPM_DIGEST_LEN) == 0;
}

/* Whether the quoted PCR digest is that of the values of sel in known
 * (those of the PCRs in known_mask): they are then the quoted values. */
static bool
hwtpm_quote_of(const TPM2B_ATTEST *attest, const struct pcr_selection *sel, uint32_t known_mask,
    const uint8_t known[TPM_PCRS][TPM_DIGEST_LEN])
{
	uint8_t digest[TPM_DIGEST_LEN];

	return (sel->mask & ~known_mask) == 0 && hwtpm_pcr_digest(sel, known, digest) == 0 &&
	       hwtpm_quote_has(attest, digest);
}

/* What TPM2_Quote is prepared with. */
struct hwtpm_quote_args {
	const TPM2B_DATA *qd;
	const TPML_PCR_SELECTION *tsel;
};

static TSS2_RC
hwtpm_quote_prepare(struct hwtpm *hw, const void *arg)
{
	const struct hwtpm_quote_args *a = arg;

	return Tss2_Sys_Quote_Prepare(hw->sys, HWTPM_CK_HANDLE, a->qd, &hwtpm_key_scheme, a->tsel);
}

/* One TPM2_Quote by the CK of tsel over qd, under its policy (sel, ap),
 * into attest and sig. */
static int
hwtpm_quote_once(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    const struct hwtpm_quote_args *args, TPM2B_ATTEST *attest, TPMT_SIGNATURE *sig, struct err *err)
{
	TPM2B_NAME ck_name;
	TSS2_RC rc;

	if (hwtpm_object_name(&hw->ck.pub, &ck_name) == -1)
		return hwtpm_seterr(err, 0, "compute the CK's Name");
	if (hwtpm_policy_arm(hw, sel, ap, err) == -1 ||
	    hwtpm_ck_execute(hw, TPM2_CC_Quote, "TPM2_Quote", "quote with the CK",
	        hwtpm_quote_prepare, args, (const TPM2B_NAME *const[]){&ck_name}, 1, err) == -1)
		return -1;
	rc = Tss2_Sys_Quote_Complete(hw->sys, attest, sig);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "quote with the CK");
	return 0;
}

/*
 * TPM2_Quote by the CK (ECDSA-SHA256) of the sha256 PCRs in sel, with
 * qualifying (at most 64 bytes) as extraData, and the values of those
 * PCRs in values[i] for every bit i of sel->mask: the quote's PCR digest
 * is checked against them, so the verifier can recompute it. They are the
 * values of the last audited PCR read (hwtpm_pcr_read) when the signed
 * digest is theirs, else read again after the quote (and the pair taken
 * again if a PCR moved in between). The CK signs only under ap, the
 * approval of the values of the PCRs in sel (its policy's PCRs). ev is
 * cleared with hwtpm_attestation_clear. err is ERR_POLICY when the host
 * PCRs are not the approved ones.
 */
int
hwtpm_quote(struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap,
    const uint8_t *qualifying, size_t qualifying_len, struct hwtpm_attestation *ev,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	TPML_PCR_SELECTION tsel;
	TPM2B_DATA qd = {0};
	TPM2B_ATTEST attest;
	TPMT_SIGNATURE sig;
	const struct hwtpm_quote_args args = {.qd = &qd, .tsel = &tsel};

	memset(ev, 0, sizeof(*ev));
	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (qualifying_len > sizeof(qd.buffer))
		return hwtpm_seterr(err, 0, "qualifying data longer than 64 bytes");
	if (sel->mask == 0 || (sel->mask >> TPM_PCRS) != 0)
		return hwtpm_seterr(err, 0, "select from 1 to 24 PCRs (0 to 23) to quote");
	qd.size = (UINT16)qualifying_len;
	memcpy(qd.buffer, qualifying, qualifying_len);
	if (hwtpm_selection(sel, &tsel) == -1)
		return hwtpm_seterr(err, 0, "select host PCRs");
	if (hwtpm_ck_key(hw, &ap->pub, err) == -1)
		return -1;
	for (int i = 0; i < HWTPM_QUOTE_TRIES; i++) {
		memset(&attest, 0, sizeof(attest));
		memset(&sig, 0, sizeof(sig));
		if (hwtpm_quote_once(hw, sel, ap, &args, &attest, &sig, err) == -1)
			return -1;
		if (!hwtpm_quote_of(&attest, sel, hw->pcrs_known, hw->pcr_values) &&
		    hwtpm_pcr_read(hw, sel, values, err) == -1)
			return -1;
		if (hwtpm_quote_of(&attest, sel, hw->pcrs_known, hw->pcr_values)) {
			memcpy(values, hw->pcr_values, sizeof(hw->pcr_values));
			return hwtpm_put_attestation(&attest, &sig, ev, err);
		}
	}
	return hwtpm_seterr(err, 0, "the host PCRs kept changing while being quoted");
}
