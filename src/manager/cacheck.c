/*
 * cacheck.c: what vtpmd accepts from a CA (issue #11). A CA's answer is
 * untrusted input: on a plain-HTTP link anyone between vtpmd and the CA
 * can answer in its place, and even the right CA could answer with the
 * wrong certificate. Nothing a CA returns is kept (STATE/host/) or written
 * into a vTPM (its NV) before it passed the checks here:
 *
 *   a CK certificate (enrol.c)      chains to the Privacy CA root vtpmd
 *                                   trusts; certifies the CK vtpmd sent;
 *                                   is a CK certificate as vtpm-ca issues
 *                                   it (certs_check_ck), naming the host
 *                                   and host EK of the request
 *   an EK certificate (provision.c) chains to the Virtualization CA root
 *                                   vtpmd trusts; certifies the vEK just
 *                                   made in the vTPM; follows the TCG EK
 *                                   Credential Profile (certs_check_vek)
 *                                   and describes this vTPM; its virtual
 *                                   marker names this host's CK, an
 *                                   approved configuration and this
 *                                   instance's UUID
 *
 * What passes is the certificate and the chain that verified (issuers up
 * to and with the root), re-encoded from what was checked: that, and not
 * the chain the answer offered, is what is kept or written. A refusal is
 * ERR_UNTRUSTED (HTTP 502), its message naming the CA (its role and URL)
 * and the reason. The roots are the administrator's: configured
 * (privacy-ca-root, virtualization-ca-root) or given with the enrolment
 * (enrol.c chooses); without a root nothing is accepted.
 *
 * This file is the one place later checks of a CA's answers belong (the
 * CA's TLS identity, a nonce round): it depends on nothing of the manager
 * but its types, and on src/tpm/ for the X.509 work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "manager.h"

/* --- roots ------------------------------------------------------------ */

void
cacheck_roots_clear(struct cacheck_roots *r)
{
	if (r == NULL)
		return;
	certs_path_clear(r->certs, &r->n);
}

/*
 * Parses len bytes of PEM text (not necessarily NUL-terminated) holding 1
 * to CACHECK_ROOTS_MAX trust anchors, each a self-signed CA certificate,
 * into r (emptied first; cacheck_roots_clear frees it). Returns 0, or -1
 * with err (ERR_INVALID) naming the certificate that is not one, and r
 * empty.
 */
int
cacheck_roots_parse(const char *pem, size_t len, struct cacheck_roots *r, struct err *err)
{
	struct err why = {0};
	uint8_t *der;
	size_t off = 0, der_len;
	int rc;

	memset(r, 0, sizeof(*r));
	while ((rc = certs_pem_next(pem, len, &off, &der, &der_len, &why)) == 1) {
		if (r->n == CACHECK_ROOTS_MAX) {
			free(der);
			cacheck_roots_clear(r);
			return err_set(err, ERR_INVALID, "more than %d root certificates",
			    CACHECK_ROOTS_MAX);
		}
		r->certs[r->n++] = (struct certs_der){der, der_len};
		if (certs_check_root(der, der_len, &why) == -1) {
			err_set(err, ERR_INVALID, "certificate %zu: %s", r->n, why.msg);
			cacheck_roots_clear(r);
			return -1;
		}
	}
	if (rc == -1) {
		err_set(err, ERR_INVALID, "certificate %zu: %s", r->n + 1, why.msg);
		cacheck_roots_clear(r);
		return -1;
	}
	if (r->n == 0)
		return err_set(err, ERR_INVALID, "no PEM certificate (-----BEGIN CERTIFICATE-----)");
	return 0;
}

/* cacheck_roots_parse of the file at path. */
int
cacheck_roots_load(const char *path, struct cacheck_roots *r, struct err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	if (fileio_read(path, CACHECK_ROOTS_FILE_MAX, &buf, &len) == -1)
		return err_errno(err, "cannot read %s", path);
	ret = cacheck_roots_parse((const char *)buf, len, r, err);
	free(buf);
	if (ret == -1)
		err_wrap(err, "%s", path);
	return ret;
}

/* A copy of src into dst (emptied first). Returns 0, or -1 when out of
 * memory (dst empty). */
int
cacheck_roots_copy(struct cacheck_roots *dst, const struct cacheck_roots *src)
{
	uint8_t *der;

	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++) {
		der = malloc(src->certs[i].len);
		if (der == NULL) {
			cacheck_roots_clear(dst);
			return -1;
		}
		memcpy(der, src->certs[i].der, src->certs[i].len);
		dst->certs[dst->n++] = (struct certs_der){der, src->certs[i].len};
	}
	return 0;
}

/* The certificates lead (when not NULL) and list[0 .. n) as one PEM
 * text, malloc'd, or NULL. */
static char *
cacheck_pem_join(const struct certs_der *lead, const struct certs_der *list, size_t n)
{
	char *pems[1 + CACHECK_CHAIN_MAX] = {NULL}, *out = NULL;
	size_t k = 0, len = 0, off = 0;

	if (n > CACHECK_CHAIN_MAX)
		return NULL;
	if (lead != NULL)
		pems[k++] = certs_pem_encode(lead->der, lead->len);
	for (size_t i = 0; i < n; i++)
		pems[k++] = certs_pem_encode(list[i].der, list[i].len);
	for (size_t i = 0; i < k; i++) {
		if (pems[i] == NULL)
			goto out;
		len += strlen(pems[i]);
	}
	out = malloc(len + 1);
	if (out == NULL)
		goto out;
	for (size_t i = 0; i < k; i++) {
		memcpy(out + off, pems[i], strlen(pems[i]));
		off += strlen(pems[i]);
	}
	out[off] = '\0';
out:
	for (size_t i = 0; i < k; i++)
		free(pems[i]);
	return out;
}

/* The roots as PEM text, malloc'd, or NULL. */
char *
cacheck_roots_pem(const struct cacheck_roots *r)
{
	return r->n > 0 ? cacheck_pem_join(NULL, r->certs, r->n) : NULL;
}

/* The first root's subject and SHA-256 fingerprint, for logs: "CN=…
 * (sha256 ab12…)". */
void
cacheck_roots_describe(const struct cacheck_roots *r, char *buf, size_t len)
{
	uint8_t fp[TPM_DIGEST_LEN];
	char subject[256] = "?", hex[2 * TPM_DIGEST_LEN + 1];

	if (r->n == 0) {
		snprintf(buf, len, "none");
		return;
	}
	certs_subject(r->certs[0].der, r->certs[0].len, subject, sizeof(subject));
	if (EVP_Digest(r->certs[0].der, r->certs[0].len, fp, NULL, EVP_sha256(), NULL) != 1)
		memset(fp, 0, sizeof(fp));
	hex_encode(fp, 8, hex);
	snprintf(buf, len, "%s (sha256 %s…)%s", subject[0] ? subject : "empty subject", hex,
	    r->n > 1 ? " and others" : "");
}

/* --- accepted certificates ---------------------------------------------- */

void
cacheck_cert_clear(struct cacheck_cert *c)
{
	if (c == NULL)
		return;
	free(c->der);
	certs_path_clear(c->chain, &c->n_chain);
	memset(c, 0, sizeof(*c));
}

/* The certificate and its chain as one PEM text, malloc'd, or NULL. */
char *
cacheck_cert_pem(const struct cacheck_cert *c)
{
	const struct certs_der leaf = {c->der, c->len};

	return cacheck_pem_join(c->der != NULL ? &leaf : NULL, c->chain, c->n_chain);
}

/* The chain of c as a JSON array of PEM strings, or NULL. */
json_t *
cacheck_chain_json(const struct cacheck_cert *c)
{
	json_t *a = json_array();
	char *pem;

	for (size_t i = 0; a != NULL && i < c->n_chain; i++) {
		pem = certs_pem_encode(c->chain[i].der, c->chain[i].len);
		if (pem == NULL || json_array_append_new(a, json_string(pem)) == -1) {
			free(pem);
			json_decref(a);
			return NULL;
		}
		free(pem);
	}
	return a;
}

/* Whether a and b verified through the same chain. */
bool
cacheck_same_chain(const struct cacheck_cert *a, const struct cacheck_cert *b)
{
	if (a->n_chain != b->n_chain)
		return false;
	for (size_t i = 0; i < a->n_chain; i++)
		if (a->chain[i].len != b->chain[i].len ||
		    memcmp(a->chain[i].der, b->chain[i].der, a->chain[i].len) != 0)
			return false;
	return true;
}

/* --- the checks --------------------------------------------------------- */

/* One PEM certificate, exactly, as malloc'd DER. */
static int
cacheck_one_pem(const json_t *j, uint8_t **der, size_t *len)
{
	const char *pem = json_string_value(j);
	size_t off = 0, n, extra_len;
	uint8_t *extra;
	int rc;

	*der = NULL;
	if (pem == NULL)
		return -1;
	n = strlen(pem);
	if (certs_pem_next(pem, n, &off, der, len, NULL) != 1)
		return -1;
	rc = certs_pem_next(pem, n, &off, &extra, &extra_len, NULL);
	free(extra);
	if (rc != 0) {
		free(*der);
		*der = NULL;
		return -1;
	}
	return 0;
}

/* The certificate ("certificate": PEM) and the chain offered ("chain":
 * [PEM…], possibly absent) of an issuing answer, as DER. */
struct cacheck_offer {
	uint8_t *der;
	size_t len;
	struct certs_der chain[CACHECK_CHAIN_MAX];
	size_t n_chain;
};

static void
cacheck_offer_clear(struct cacheck_offer *o)
{
	free(o->der);
	certs_path_clear(o->chain, &o->n_chain);
}

static int
cacheck_offer(const json_t *reply, struct cacheck_offer *o, struct err *err)
{
	const json_t *chain = json_object_get(reply, "chain"), *c;
	uint8_t *der;
	size_t i, len;

	memset(o, 0, sizeof(*o));
	if (cacheck_one_pem(json_object_get(reply, "certificate"), &o->der, &o->len) == -1)
		return err_set(err, ERR_UNTRUSTED, "its answer holds no certificate (\"certificate\": "
		    "one PEM certificate)");
	if (chain != NULL && (!json_is_array(chain) || json_array_size(chain) > CACHECK_CHAIN_MAX)) {
		cacheck_offer_clear(o);
		return err_set(err, ERR_UNTRUSTED, "its \"chain\" is not a list of at most %d "
		    "certificates", CACHECK_CHAIN_MAX);
	}
	json_array_foreach(chain, i, c) {
		if (cacheck_one_pem(c, &der, &len) == -1) {
			cacheck_offer_clear(o);
			return err_set(err, ERR_UNTRUSTED, "its \"chain\"[%zu] is not one PEM "
			    "certificate", i);
		}
		o->chain[o->n_chain++] = (struct certs_der){der, len};
	}
	return 0;
}

/* The offered certificate's chain to roots, verified now: out receives
 * the certificate and the chain that verified. what names the root
 * ("Privacy CA root"). */
static int
cacheck_chain(struct cacheck_offer *o, const struct cacheck_roots *roots, const char *what,
    struct cacheck_cert *out, struct err *err)
{
	const struct certs_der leaf = {o->der, o->len};
	char root[400];
	struct err why = {0};
	enum certs_verdict v;

	if (roots->n == 0)
		return err_set(err, ERR_UNTRUSTED, "no %s to check it against", what);
	v = certs_verify_path(&leaf, o->chain, o->n_chain, roots->certs, roots->n, time(NULL),
	    out->chain, CACHECK_CHAIN_MAX, &out->n_chain, &why);
	if (v != CERTS_VALID) {
		cacheck_roots_describe(roots, root, sizeof(root));
		return err_set(err, ERR_UNTRUSTED, "it does not chain to the %s %s (%s: %s)", what, root,
		    certs_verdict_name(v), why.msg);
	}
	out->der = o->der;
	out->len = o->len;
	o->der = NULL;
	return 0;
}

/* Whether the certificate certifies the key of the TPM2B_PUBLIC pub (RSA
 * or ECC P-256), named key in messages. */
static int
cacheck_key(const struct cacheck_cert *c, const uint8_t *pub, size_t pub_len, const char *key,
    struct err *err)
{
	struct evidence_public p;
	uint8_t got[CERTS_DIGEST_LEN];
	char hex[2 * CERTS_DIGEST_LEN + 1];
	int same = -1;

	if (evidence_parse_public(pub, pub_len, &p, NULL) == -1)
		return err_set(err, ERR_FAILED, "%s cannot be read", key);
	if (p.key == EVIDENCE_KEY_ECC_P256)
		same = certs_cert_key_is_p256(c->der, c->len, p.ecc_x, p.ecc_y);
	else if (p.type == EVIDENCE_ALG_RSA && p.modulus_len > 0)
		same = certs_cert_key_is_rsa(c->der, c->len, p.modulus, p.modulus_len, p.exponent);
	else
		return err_set(err, ERR_FAILED, "%s is neither RSA nor ECC P-256", key);
	if (same == 1)
		return 0;
	if (same == -1 || certs_cert_key_digest(c->der, c->len, got) == -1)
		return err_set(err, ERR_UNTRUSTED, "its key cannot be read");
	hex_encode(got, 8, hex);
	return err_set(err, ERR_UNTRUSTED, "it certifies another key (SHA-256 of its public key "
	    "%s…), not %s", hex, key);
}

/* Prefixes a refusal with the CA and what it answered for. */
static int
cacheck_refused(struct err *err, const char *role, const char *url, const char *what)
{
	return err_wrap(err, "%s at %s: %s refused", role, url, what);
}

/*
 * Checks the Privacy CA's answer to an enrolment's certify request (the
 * CK certificate and its chain) against want. Returns 0 with *out the
 * certificate and the chain that verified (cacheck_cert_clear frees it),
 * or -1 with err: ERR_UNTRUSTED, "Privacy CA at URL: CK certificate
 * refused: reason".
 */
int
cacheck_ck(const json_t *reply, const struct cacheck_ck_want *want, struct cacheck_cert *out,
    struct err *err)
{
	uint8_t ek_digest[CERTS_DIGEST_LEN];
	struct certs_host_key hk;
	struct cacheck_offer o;
	struct err why = {0};
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (cacheck_offer(reply, &o, err) == -1)
		return cacheck_refused(err, "Privacy CA", want->url, "CK certificate");
	if (cacheck_chain(&o, want->roots, "Privacy CA root", out, err) == -1 ||
	    cacheck_key(out, want->ck_public, want->ck_public_len, "this host's CK", err) == -1)
		goto out;
	if (certs_check_ck(out->der, out->len, &hk, &why) == -1) {
		err_set(err, ERR_UNTRUSTED, "it is not a CK certificate: %s", why.msg);
		goto out;
	}
	if (strcmp(hk.host, want->host) != 0) {
		err_set(err, ERR_UNTRUSTED, "it names the host \"%s\", not \"%s\"", hk.host,
		    want->host);
		goto out;
	}
	if (certs_cert_key_digest(want->ek_cert, want->ek_cert_len, ek_digest) == -1 ||
	    memcmp(ek_digest, hk.host_ek_digest, sizeof(ek_digest)) != 0) {
		err_set(err, ERR_UNTRUSTED, "it names another host EK than this host's");
		goto out;
	}
	ret = 0;
out:
	cacheck_offer_clear(&o);
	if (ret == -1) {
		cacheck_cert_clear(out);
		cacheck_refused(err, "Privacy CA", want->url, "CK certificate");
	}
	return ret;
}

/* The TCG attributes an EK certificate states are this vTPM's. */
static int
cacheck_ek_tpm(const struct certs_ek_info *info, struct err *err)
{
	struct certs_tpm tpm;
	char manufacturer[16];

	certs_tpm_defaults(&tpm);
	snprintf(manufacturer, sizeof(manufacturer), "id:%08X", (unsigned int)tpm.manufacturer);
	if (strcasecmp(info->manufacturer, manufacturer) != 0)
		return err_set(err, ERR_UNTRUSTED, "it names the TPM manufacturer %s, not the "
		    "vTPM's (%s)", info->manufacturer, manufacturer);
	if (strncmp(info->version, "id:", 3) != 0 || strlen(info->version) != 11)
		return err_set(err, ERR_UNTRUSTED, "its TPM version \"%s\" is not id: and 8 hex "
		    "digits", info->version);
	if (strcmp(info->family, tpm.family) != 0)
		return err_set(err, ERR_UNTRUSTED, "its tpmSpecification names TPM family \"%s\", "
		    "not \"%s\"", info->family, tpm.family);
	return 0;
}

/* The virtual marker: this host's CK, an approved configuration, this
 * instance. */
static int
cacheck_ek_marker(const struct cacheck_cert *c, const struct cacheck_ek_want *want,
    const json_t *reply, struct certs_virtual *virt, struct err *err)
{
	const char *config = json_string_value(json_object_get(reply, "host_config"));
	struct err why = {0};

	if (certs_parse_virtual(c->der, c->len, virt, &why) == -1)
		return err_set(err, ERR_UNTRUSTED, "%s", why.msg);
	if (!virt->is_virtual)
		return err_set(err, ERR_UNTRUSTED, "it has no vtpmd virtual marker (%s)",
		    CERTS_OID_VIRTUAL_EXT);
	if (memcmp(want->ck_digest, virt->ck_digest, sizeof(want->ck_digest)) != 0)
		return err_set(err, ERR_UNTRUSTED, "its virtual marker names another host's CK");
	if (strcmp(virt->host, want->host) != 0)
		return err_set(err, ERR_UNTRUSTED, "its virtual marker names the host \"%s\", not "
		    "\"%s\"", virt->host, want->host);
	if (strcasecmp(virt->instance_uuid, want->uuid) != 0)
		return err_set(err, ERR_UNTRUSTED, "its virtual marker names the instance %s, not "
		    "this one (%s)", virt->instance_uuid, want->uuid);
	if (config != NULL && strcmp(config, virt->host_config) != 0)
		return err_set(err, ERR_UNTRUSTED, "its virtual marker names the host configuration "
		    "\"%s\", the answer \"%s\"", virt->host_config, config);
	return 0;
}

/*
 * Checks the Virtualization CA's answer to an EK certificate request
 * against want. Returns 0 with *out the certificate and the chain that
 * verified (cacheck_cert_clear frees it) and *virt its virtual marker, or
 * -1 with err: ERR_UNTRUSTED, "Virtualization CA at URL: TYPE EK
 * certificate refused: reason".
 */
int
cacheck_ek(const json_t *reply, const struct cacheck_ek_want *want, struct cacheck_cert *out,
    struct certs_virtual *virt, struct err *err)
{
	char what[64], key[64];
	struct certs_ek_info info;
	struct cacheck_offer o;
	struct err why = {0};
	int ret = -1;

	memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "%s EK certificate", want->type);
	snprintf(key, sizeof(key), "this vTPM's %s EK", want->type);
	if (cacheck_offer(reply, &o, err) == -1)
		return cacheck_refused(err, "Virtualization CA", want->url, what);
	if (cacheck_chain(&o, want->roots, "Virtualization CA root", out, err) == -1 ||
	    cacheck_key(out, want->vek_public, want->vek_public_len, key, err) == -1)
		goto out;
	if (certs_check_vek(out->der, out->len, &info, &why) == -1) {
		err_set(err, ERR_UNTRUSTED, "it does not follow the TCG EK profile: %s", why.msg);
		goto out;
	}
	if (cacheck_ek_tpm(&info, err) == -1 || cacheck_ek_marker(out, want, reply, virt, err) == -1)
		goto out;
	ret = 0;
out:
	cacheck_offer_clear(&o);
	if (ret == -1) {
		cacheck_cert_clear(out);
		cacheck_refused(err, "Virtualization CA", want->url, what);
	}
	return ret;
}
