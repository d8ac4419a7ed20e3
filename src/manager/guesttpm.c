/*
 * guesttpm.c: the manager as a client of one of its own vTPMs.
 *
 * Before a guest first boots, the manager provisions its vTPM as a TPM
 * manufacturer and platform firmware provision a hardware TPM, so that the
 * guest's tools find what they look for:
 *
 *   - the EK, created from the TCG EK Credential Profile's template (the
 *     same as the host's, hwtpm_ek_template) and made persistent at the
 *     TCG handle (0x81010001 RSA, 0x81010002 ECC), as firmware-provisioned
 *     TPMs have it: tools (tpm2_createek -c -, Keylime, Windows) look there
 *     first, and a guest can still evict it with its owner authorization;
 *   - its certificate in the TCG NV index (0x01c00002 RSA, 0x01c0000a ECC)
 *     and the issuing chain from 0x01c00100 upward, one certificate per
 *     index, with the attributes the profile gives certificate indices:
 *     platform-created, written by the platform only (PPWRITE) and locked
 *     once written (WRITEDEFINE + NV_WriteLock, so the guest's owner cannot
 *     replace it), readable by platform, owner and with the index's empty
 *     authorization, and exempt from dictionary-attack lockout.
 *
 * The vTPM is reached through its worker's data socket with tpm2-tss's
 * swtpm TCTI; there is no resource manager, so every transient object is
 * flushed. The platform and owner authorizations are the empty password
 * (a vTPM whose guest has not run yet). Nothing here is secret: no session
 * encryption is used. tpm2-tss's types stay in this file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "manager.h"
#include "tpm/tss.h"

/* The TCG EK Credential Profile's attributes of certificate indices. */
#define GUESTTPM_CERT_NV_ATTRS                                                                     \
	(TPMA_NV_PPWRITE | TPMA_NV_WRITEDEFINE | TPMA_NV_PPREAD | TPMA_NV_OWNERREAD |              \
	    TPMA_NV_AUTHREAD | TPMA_NV_NO_DA | TPMA_NV_PLATFORMCREATE)

struct guesttpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	uint16_t nv_buffer_max; /* TPM_PT_NV_BUFFER_MAX, 0 until asked */
};

/* Fills err (kind ERR_FAILED) with "vTPM: " fmt and, when rc is a
 * tpm2-tss failure, its decoded text. Returns -1. */
static int guesttpm_seterr(struct err *err, TSS2_RC rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
guesttpm_seterr(struct err *err, TSS2_RC rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tss_verr(err, ERR_FAILED, "vTPM: ", rc, fmt, ap);
	va_end(ap);
	return -1;
}

/* Whether a TPM response code says "no such handle" (TPM_RC_HANDLE). */
static bool
guesttpm_rc_absent(TSS2_RC rc)
{
	return (rc & ~(TSS2_RC)0xf00) == TPM2_RC_HANDLE;
}

/*
 * Connects to the vTPM whose data channel is at ep (unix or tcp) and
 * starts it (Startup(CLEAR), unless it is started already). Returns NULL
 * on failure (err says why). Close with guesttpm_close, which
 * leaves the vTPM running: the VM's start resets it (CMD_INIT).
 */
struct guesttpm *
guesttpm_open(const struct endpoint *ep, struct err *err)
{
	struct guesttpm *g;
	char conf[256];
	TSS2_RC rc;

	if (ep->kind == ENDPOINT_UNIX)
		snprintf(conf, sizeof(conf), "swtpm:path=%s", ep->path);
	else
		snprintf(conf, sizeof(conf), "swtpm:host=%s,port=%u", ep->host, ep->port);
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		guesttpm_seterr(err, 0, "out of memory");
		return NULL;
	}
	rc = Tss2_TctiLdr_Initialize(conf, &g->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "open TCTI %s", conf);
		goto fail;
	}
	rc = Esys_Initialize(&g->esys, g->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "initialize ESYS");
		goto fail;
	}
	rc = Esys_Startup(g->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
		guesttpm_seterr(err, rc, "the vTPM at %s does not answer", conf);
		goto fail;
	}
	return g;
fail:
	guesttpm_close(g);
	return NULL;
}

/* Ends the connection. Accepts NULL. */
void
guesttpm_close(struct guesttpm *g)
{
	if (g == NULL)
		return;
	if (g->esys != NULL)
		Esys_Finalize(&g->esys);
	if (g->tcti != NULL)
		Tss2_TctiLdr_Finalize(&g->tcti);
	free(g);
}

/* Marshals pub into a malloc'd buffer. */
static int
guesttpm_put_public(const TPM2B_PUBLIC *pub, uint8_t **out, size_t *len, struct err *err)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, 0, "marshal a public area");
		return -1;
	}
	if ((*out = malloc(off)) == NULL) {
		guesttpm_seterr(err, 0, "out of memory");
		return -1;
	}
	memcpy(*out, buf, off);
	*len = off;
	return 0;
}

/* The persistent EK at handle, which must come from the template tmpl
 * (marshalled); it is copied, marshalled, into *out. */
static int
guesttpm_check_ek(struct guesttpm *g, ESYS_TR ek, TPM2_HANDLE handle, const uint8_t *tmpl,
    size_t tmpl_len, uint8_t **out, size_t *len, struct err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int ret = -1;

	rc = Esys_ReadPublic(
	    g->esys, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "read the public area of 0x%08x", handle);
		return -1;
	}
	if (guesttpm_put_public(pub, out, len, err) == -1)
		goto out;
	if (!hwtpm_public_matches(tmpl, tmpl_len, *out, *len)) {
		guesttpm_seterr(err, 0, "the key at 0x%08x is not a TCG EK; it is left alone", handle);
		free(*out);
		*out = NULL;
		goto out;
	}
	ret = 0;
out:
	Esys_Free(pub);
	return ret;
}

/* Creates the EK from the template tmpl in the endorsement hierarchy and
 * makes it persistent at handle. */
static int
guesttpm_make_ek(struct guesttpm *g, const TPM2B_PUBLIC *tmpl, TPM2_HANDLE handle, uint8_t **out,
    size_t *len, struct err *err)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPML_PCR_SELECTION nopcr = {0};
	TPM2B_DATA noinfo = {0};
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR obj = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret = -1;

	rc = Esys_CreatePrimary(g->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, tmpl, &noinfo, &nopcr, &obj, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "create the EK");
		return -1;
	}
	rc = Esys_EvictControl(g->esys, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, handle, &persistent);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "make the EK persistent at 0x%08x", handle);
		goto out;
	}
	Esys_TR_Close(g->esys, &persistent);
	ret = guesttpm_put_public(pub, out, len, err);
out:
	Esys_FlushContext(g->esys, obj);
	Esys_Free(pub);
	return ret;
}

/*
 * The vTPM's EK of a kind: found at its TCG handle (and checked against
 * the template) or created from the template and persisted there.
 * *ek_public is its marshalled TPM2B_PUBLIC, malloc'd.
 */
int
guesttpm_create_ek(
    struct guesttpm *g, enum hwtpm_ek_kind kind, uint8_t **ek_public, size_t *len, struct err *err)
{
	TPM2_HANDLE handle = kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_HANDLE : HWTPM_EK_ECC_HANDLE;
	TPM2B_PUBLIC tmpl = {0};
	ESYS_TR ek = ESYS_TR_NONE;
	uint8_t *t = NULL;
	size_t tlen = 0, off = 0;
	TSS2_RC rc;
	int ret = -1;

	*ek_public = NULL;
	*len = 0;
	if (hwtpm_ek_template(kind, &t, &tlen, NULL) == -1 ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(t, tlen, &off, &tmpl) != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, 0, "EK template");
		goto out;
	}
	rc = Esys_TR_FromTPMPublic(g->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ek);
	if (rc == TSS2_RC_SUCCESS) {
		ret = guesttpm_check_ek(g, ek, handle, t, tlen, ek_public, len, err);
		Esys_TR_Close(g->esys, &ek);
	} else if (guesttpm_rc_absent(rc)) {
		ret = guesttpm_make_ek(g, &tmpl, handle, ek_public, len, err);
	} else {
		guesttpm_seterr(err, rc, "look up 0x%08x", handle);
	}
out:
	free(t);
	return ret;
}

/* TPM_PT_NV_BUFFER_MAX of the vTPM, asked once per connection. */
static int
guesttpm_nv_buffer_max(struct guesttpm *g, uint16_t *max, struct err *err)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;
	uint32_t v = 0;

	if (g->nv_buffer_max == 0) {
		rc = Esys_GetCapability(g->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		    TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
		if (rc != TSS2_RC_SUCCESS) {
			guesttpm_seterr(err, rc, "ask the vTPM for its NV buffer size");
			return -1;
		}
		if (cap->data.tpmProperties.count == 1 &&
		    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX)
			v = cap->data.tpmProperties.tpmProperty[0].value;
		Esys_Free(cap);
		if (v == 0) {
			guesttpm_seterr(err, 0, "the vTPM does not say its NV buffer size");
			return -1;
		}
		g->nv_buffer_max =
		    (uint16_t)(v < TPM2_MAX_NV_BUFFER_SIZE ? v : TPM2_MAX_NV_BUFFER_SIZE);
	}
	*max = g->nv_buffer_max;
	return 0;
}

/* Looks an NV index up: 1 with *nv set when it exists, 0 when not, -1. */
static int
guesttpm_nv_find(struct guesttpm *g, uint32_t index, ESYS_TR *nv, struct err *err)
{
	TSS2_RC rc;

	*nv = ESYS_TR_NONE;
	rc = Esys_TR_FromTPMPublic(g->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nv);
	if (rc == TSS2_RC_SUCCESS)
		return 1;
	*nv = ESYS_TR_NONE;
	if (guesttpm_rc_absent(rc))
		return 0;
	guesttpm_seterr(err, rc, "look up NV index 0x%08x", index);
	return -1;
}

/* Deletes NV index nv with the platform's authorization; nv is released. */
static int
guesttpm_nv_delete(struct guesttpm *g, ESYS_TR *nv, uint32_t index, struct err *err)
{
	TSS2_RC rc;

	rc = Esys_NV_UndefineSpace(
	    g->esys, ESYS_TR_RH_PLATFORM, *nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "delete NV index 0x%08x (not the platform's?)", index);
		Esys_TR_Close(g->esys, nv);
		return -1;
	}
	*nv = ESYS_TR_NONE; /* released by ESYS with the index */
	return 0;
}

/* Writes data to the defined index nv in chunks the vTPM accepts, with
 * the platform's authorization (PPWRITE). */
static int
guesttpm_nv_write(struct guesttpm *g, ESYS_TR nv, uint32_t index, const uint8_t *data, size_t len,
    struct err *err)
{
	TPM2B_MAX_NV_BUFFER chunk;
	uint16_t max, off = 0;
	TSS2_RC rc;

	if (guesttpm_nv_buffer_max(g, &max, err) == -1)
		return -1;
	while (off < len) {
		chunk.size = (uint16_t)(len - off < max ? len - off : max);
		memcpy(chunk.buffer, data + off, chunk.size);
		rc = Esys_NV_Write(g->esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
		    ESYS_TR_NONE, &chunk, off);
		if (rc != TSS2_RC_SUCCESS) {
			guesttpm_seterr(err, rc, "write NV index 0x%08x at %u", index, off);
			return -1;
		}
		off += chunk.size;
	}
	return 0;
}

/*
 * Puts data (a certificate) in NV index as the only thing it will hold:
 * an index already there is deleted first (the platform replaces its own
 * certificates; an index the owner made is refused), then the index is
 * defined with the certificate-index attributes, written and write-locked.
 */
static int
guesttpm_nv_put(
    struct guesttpm *g, uint32_t index, const uint8_t *data, size_t len, struct err *err)
{
	TPM2B_AUTH noauth = {0};
	TPM2B_NV_PUBLIC pub = {0};
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;
	int r, ret = -1;

	if (len == 0 || len > UINT16_MAX) {
		guesttpm_seterr(err, 0, "NV index 0x%08x: %zu bytes cannot be stored", index, len);
		return -1;
	}
	if ((r = guesttpm_nv_find(g, index, &nv, err)) == -1 ||
	    (r == 1 && guesttpm_nv_delete(g, &nv, index, err) == -1))
		return -1;
	pub.nvPublic.nvIndex = index;
	pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
	pub.nvPublic.attributes = GUESTTPM_CERT_NV_ATTRS;
	pub.nvPublic.dataSize = (uint16_t)len;
	rc = Esys_NV_DefineSpace(g->esys, ESYS_TR_RH_PLATFORM, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &noauth, &pub, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "define NV index 0x%08x (%zu bytes)", index, len);
		return -1;
	}
	if (guesttpm_nv_write(g, nv, index, data, len, err) == -1)
		goto out;
	rc = Esys_NV_WriteLock(
	    g->esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "write-lock NV index 0x%08x", index);
		goto out;
	}
	ret = 0;
out:
	Esys_TR_Close(g->esys, &nv);
	return ret;
}

/* Writes the EK certificate (DER) of the vTPM's EK of kind into the TCG
 * index (0x01c00002 RSA, 0x01c0000a ECC), replacing any there. */
int
guesttpm_write_ek_cert(struct guesttpm *g, enum hwtpm_ek_kind kind, const uint8_t *der,
    size_t der_len, struct err *err)
{
	return guesttpm_nv_put(
	    g, kind == HWTPM_EK_RSA ? HWTPM_EK_RSA_CERT_NV : HWTPM_EK_ECC_CERT_NV, der, der_len, err);
}

/*
 * Writes the EK certificate chain: certs[i] (DER) into index
 * GUESTTPM_CHAIN_NV_FIRST + i, in the order given (callers pass the EK
 * certificate's issuer first, then up to the root), and deletes the chain
 * indices after the last (a shorter chain replacing a longer one).
 */
int
guesttpm_write_chain(
    struct guesttpm *g, const struct guesttpm_cert *certs, size_t n, struct err *err)
{
	uint32_t index;
	ESYS_TR nv;
	int r;

	if (n > GUESTTPM_CHAIN_NV_LAST - GUESTTPM_CHAIN_NV_FIRST + 1) {
		guesttpm_seterr(err, 0, "a chain of %zu certificates does not fit the chain indices", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (guesttpm_nv_put(
		        g, GUESTTPM_CHAIN_NV_FIRST + (uint32_t)i, certs[i].der, certs[i].len, err) == -1)
			return -1;
	for (index = GUESTTPM_CHAIN_NV_FIRST + (uint32_t)n; index <= GUESTTPM_CHAIN_NV_LAST;
	     index++) {
		if ((r = guesttpm_nv_find(g, index, &nv, err)) != 1)
			return r;
		if (guesttpm_nv_delete(g, &nv, index, err) == -1)
			return -1;
	}
	return 0;
}

/*
 * Reads the whole of NV index (for tests and checks), authorized with an
 * empty password as the index itself (AUTHREAD), the owner (OWNERREAD) or
 * the platform (PPREAD). *data is malloc'd.
 */
int
guesttpm_read_nv(struct guesttpm *g, uint32_t index, uint8_t **data, size_t *len, struct err *err)
{
	TPM2B_NV_PUBLIC *npub = NULL;
	TPMA_NV attrs;
	ESYS_TR nv = ESYS_TR_NONE, auth;
	uint8_t *buf = NULL;
	uint16_t size, max, off = 0;
	TSS2_RC rc;
	int r, ret = -1;

	*data = NULL;
	*len = 0;
	if ((r = guesttpm_nv_find(g, index, &nv, err)) != 1) {
		if (r == 0)
			guesttpm_seterr(err, 0, "no NV index 0x%08x", index);
		return -1;
	}
	rc = Esys_NV_ReadPublic(g->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &npub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "read the public area of NV index 0x%08x", index);
		goto out;
	}
	size = npub->nvPublic.dataSize;
	attrs = npub->nvPublic.attributes;
	auth = (attrs & TPMA_NV_AUTHREAD)    ? nv
	       : (attrs & TPMA_NV_OWNERREAD) ? ESYS_TR_RH_OWNER
	                                     : ESYS_TR_RH_PLATFORM;
	if (guesttpm_nv_buffer_max(g, &max, err) == -1)
		goto out;
	if ((buf = malloc(size ? size : 1)) == NULL) {
		guesttpm_seterr(err, 0, "out of memory");
		goto out;
	}
	rc = tss_nv_read(g->esys, auth, nv, size, max, buf, &off);
	if (rc != TSS2_RC_SUCCESS) {
		guesttpm_seterr(err, rc, "read NV index 0x%08x at %u", index, off);
		goto out;
	}
	*data = buf;
	*len = size;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	Esys_Free(npub);
	Esys_TR_Close(g->esys, &nv);
	return ret;
}
