/*
 * enrol.c: the host's enrolment with a Privacy CA (docs/ca-api.md), run by
 * the manager when the administrator asks (`vtpmctl host enroll`).
 *
 * The host TPM's Certifying Key (CK) gets a certificate from the Privacy
 * CA: vtpmd presents the host EK certificate (from the TPM's NV, written by
 * its manufacturer) with the EK and CK public areas; the CA answers with a
 * TPM2_MakeCredential for the EK and the CK's Name, which only this TPM can
 * open (TPM2_ActivateCredential); the opened secret buys the certificate.
 * Then the CK certifies the Binding Key (BK). What the enrolment produced
 * is public and kept in STATE/host/:
 *
 *   enrolment.json   the CA URLs, the host name, the EK used, when
 *   ck.pem           the CK certificate followed by the chain it was
 *                    verified with (Privacy CA, root)
 *   privacy-ca-root.pem, virtualization-ca-root.pem
 *                    the roots it was checked with (cacheck.c), kept for
 *                    the vTPMs' EK certificates
 *   bk.pub           the BK's TPM2B_PUBLIC
 *   bk.attest/.sig   TPM2_Certify of the BK by the CK (TPMS_ATTEST and
 *                    TPMT_SIGNATURE)
 *
 * The CK certificate is kept only once it passed cacheck_ck: it chains to
 * the Privacy CA root vtpmd trusts (privacy-ca-root of the configuration,
 * or the root given with the request when the configuration names none;
 * without either the enrolment is refused), certifies the CK vtpmd sent,
 * and is a CK certificate for this host and host EK. Enrolling again
 * replaces them (a new CA, a renewed certificate); a failed enrolment
 * leaves the previous one in place: nothing is written before the end.
 * The two CA requests run off the loop (caclient.c, with the ca-timeout
 * deadline each): an enrolment is a state (struct enrol_op) that the loop
 * moves on at each event of its request (enrol_step); the host-TPM steps
 * in between run in the loop.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "manager.h"

static void
enrol_clear(struct enrolment *e)
{
	free(e->ck_pem);
	cacheck_roots_clear(&e->privacy_roots);
	cacheck_roots_clear(&e->virt_roots);
	memset(e, 0, sizeof(*e));
}

void
enrol_free(struct enrolment *e)
{
	if (e != NULL)
		enrol_clear(e);
}

int
enrol_path(const struct config *cfg, const char *leaf, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/host%s%s", cfg->state_dir, leaf ? "/" : "", leaf ? leaf : "");

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The roots kept in STATE/host/leaf, if the file exists. */
static int
enrol_load_roots(struct manager *m, const char *leaf, struct cacheck_roots *r, struct err *err)
{
	char path[PATH_MAX];

	memset(r, 0, sizeof(*r));
	if (enrol_path(&m->cfg, leaf, path, sizeof(path)) == -1)
		return err_set(err, ERR_FAILED, "%s: path too long", leaf);
	if (access(path, F_OK) == -1 && errno == ENOENT)
		return 0;
	return cacheck_roots_load(path, r, err);
}

/*
 * Reads STATE/host/ into m->enrol. A host never enrolled is not an error
 * (m->enrol.enrolled stays false); files that exist but cannot be read
 * are.
 */
int
enrol_load(struct manager *m, struct err *err)
{
	char path[PATH_MAX];
	const char *pca, *vca, *host, *ek, *at;
	struct enrolment e = {0};
	json_t *o = NULL;
	json_error_t jerr;
	uint8_t *pem = NULL;
	size_t len;

	enrol_clear(&m->enrol);
	if (enrol_path(&m->cfg, "enrolment.json", path, sizeof(path)) == -1)
		return -1;
	o = json_load_file(path, 0, &jerr);
	if (o == NULL) {
		if (access(path, F_OK) == -1 && errno == ENOENT)
			return 0;
		err_set(err, ERR_FAILED, "%s: %s", path, jerr.text);
		return -1;
	}
	if (json_unpack(o, "{s:s, s:s, s:s, s:s, s:s}", "privacy_ca", &pca, "virtualization_ca",
	        &vca, "host", &host, "ek", &ek, "enrolled_at", &at) != 0) {
		err_set(err, ERR_FAILED, "%s: not a vtpmd enrolment record", path);
		json_decref(o);
		return -1;
	}
	snprintf(e.privacy_ca, sizeof(e.privacy_ca), "%s", pca);
	snprintf(e.virtualization_ca, sizeof(e.virtualization_ca), "%s", vca);
	snprintf(e.host, sizeof(e.host), "%s", host);
	snprintf(e.ek, sizeof(e.ek), "%s", ek);
	snprintf(e.enrolled_at, sizeof(e.enrolled_at), "%s", at);
	json_decref(o);
	if (enrol_path(&m->cfg, "ck.pem", path, sizeof(path)) == -1 ||
	    fileio_read(path, 1u << 20, &pem, &len) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		return -1;
	}
	e.ck_pem = calloc(1, len + 1);
	if (e.ck_pem == NULL) {
		free(pem);
		err_set(err, ERR_FAILED, "out of memory");
		return -1;
	}
	memcpy(e.ck_pem, pem, len);
	free(pem);
	if (enrol_load_roots(m, "privacy-ca-root.pem", &e.privacy_roots, err) == -1 ||
	    enrol_load_roots(m, "virtualization-ca-root.pem", &e.virt_roots, err) == -1) {
		enrol_clear(&e);
		return -1;
	}
	e.enrolled = true;
	m->enrol = e;
	return 0;
}

/* An enrolment in flight: what it needs between the CA's answers. */
enum enrol_stage { ENROL_CHALLENGE, ENROL_CERTIFY };
struct enrol_op {
	enum enrol_stage stage; /* the CA request in flight */
	enum hwtpm_ek_kind kind; /* the host EK it enrols with */
	char privacy_url[256];
	char virt_url[256];
	char host[65];
	int timeout_s;
	struct caclient *ca;
	struct cacheck_roots privacy_roots, virt_roots; /* what the answers must chain to */
	uint8_t *ck_pub, *ek_cert; /* what the challenge sent: the CK, the host EK certificate */
	size_t ck_pub_len, ek_cert_len;
};

/* base64 of bytes as a new JSON string (NULL when out of memory). */
json_t *
enrol_b64(const uint8_t *buf, size_t len)
{
	char *s = base64_encode(buf, len);
	json_t *j = s ? json_string(s) : NULL;

	free(s);
	return j;
}

/* The host EK to enrol with: the first of RSA, ECC whose certificate the
 * TPM holds. */
static int
enrol_pick_ek(struct hwtpm *hw, enum hwtpm_ek_kind *kind, uint8_t **pub, size_t *pub_len,
    uint8_t **cert, size_t *cert_len, struct err *err)
{
	static const enum hwtpm_ek_kind kinds[] = {HWTPM_EK_RSA, HWTPM_EK_ECC};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (hwtpm_host_ek(hw, kinds[i], pub, pub_len, cert, cert_len, err) == -1) {
			err_wrap(err, "host EK");
			return -1;
		}
		if (*cert != NULL) {
			*kind = kinds[i];
			return 0;
		}
		free(*pub);
		*pub = NULL;
	}
	err_set(err, ERR_FAILED, "the host TPM holds no EK certificate (NV 0x%08x RSA, 0x%08x ECC): "
	    "a TPM without its manufacturer's certificate cannot be enrolled",
	    HWTPM_EK_RSA_CERT_NV, HWTPM_EK_ECC_CERT_NV);
	return -1;
}

json_t *
enrol_ek_certificate_json(struct manager *m, struct err *err)
{
	enum hwtpm_ek_kind kind = HWTPM_EK_RSA;
	uint8_t *pub = NULL, *cert = NULL;
	size_t pub_len = 0, cert_len = 0;
	char *pem = NULL;
	json_t *o = NULL;

	if (enrol_pick_ek(m->hw, &kind, &pub, &pub_len, &cert, &cert_len, err) == -1 &&
	    (err->kind != ERR_HOST_TPM || !hwtpm_recover(m->hw) ||
	        enrol_pick_ek(m->hw, &kind, &pub, &pub_len, &cert, &cert_len, err) == -1))
		return NULL;
	if ((pem = certs_pem_encode(cert, cert_len)) == NULL ||
	    (o = json_pack("{s:s, s:s, s:s}", "kind", kind == HWTPM_EK_RSA ? "rsa2048" : "ecc-p256",
	         "nv_index", kind == HWTPM_EK_RSA ? "0x01c00002" : "0x01c0000a", "certificate",
	         pem)) == NULL)
		err_set(err, ERR_FAILED, "out of memory");
	free(pem);
	free(cert);
	free(pub);
	return o;
}

/* The challenge request (docs/ca-api.md) for the CK. */
static json_t *
enrol_challenge_req(const char *host, const uint8_t *ek_cert, size_t ek_cert_len,
    const uint8_t *ek_pub, size_t ek_pub_len, const uint8_t *ck_pub, size_t ck_pub_len)
{
	char *pem = certs_pem_encode(ek_cert, ek_cert_len);
	json_t *o = NULL;

	if (pem != NULL)
		o = json_pack("{s:s, s:s, s:o, s:o, s:s}", "kind", "ck", "ek_certificate", pem,
		    "ek_public", enrol_b64(ek_pub, ek_pub_len), "key_public",
		    enrol_b64(ck_pub, ck_pub_len), "host", host);
	free(pem);
	return o;
}

/* Opens the CA's credential with the host TPM; the certify request. */
static json_t *
enrol_activate(struct hwtpm *hw, enum hwtpm_ek_kind kind, const json_t *challenge, struct err *err)
{
	const char *id, *blob64, *enc64;
	uint8_t blob[512], enc[512], secret[HWTPM_CREDENTIAL_MAX];
	size_t blob_len, enc_len, secret_len = 0;
	json_t *o;

	if (json_unpack((json_t *)challenge, "{s:s, s:s, s:s}", "id", &id, "credential_blob",
	        &blob64, "encrypted_secret", &enc64) != 0 ||
	    base64_decode(blob64, blob, sizeof(blob), &blob_len) == -1 ||
	    base64_decode(enc64, enc, sizeof(enc), &enc_len) == -1) {
		err_set(err, ERR_FAILED, "the CA's challenge is malformed");
		return NULL;
	}
	if (hwtpm_activate_credential(hw, kind, blob, blob_len, enc, enc_len, secret,
	        &secret_len, err) == -1) {
		err_wrap(err, "host TPM");
		return NULL;
	}
	o = json_pack("{s:s, s:o}", "id", id, "secret", enrol_b64(secret, secret_len));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (o == NULL)
		err_set(err, ERR_FAILED, "out of memory");
	return o;
}

/* Writes roots to STATE/host/leaf. Returns 0, or -1 with errno. */
static int
enrol_save_roots(struct manager *m, const char *leaf, const struct cacheck_roots *r)
{
	char path[PATH_MAX], *pem = cacheck_roots_pem(r);
	int ret = -1;

	if (pem == NULL)
		errno = ENOMEM;
	else if (enrol_path(&m->cfg, leaf, path, sizeof(path)) == -1)
		errno = ENAMETOOLONG;
	else
		ret = fileio_write_atomic(path, pem, strlen(pem), 0644);
	free(pem);
	return ret;
}

/* Writes the enrolment's files; enrolment.json last, so that a crash in
 * between leaves the previous record. */
static int
enrol_save(struct manager *m, const struct enrolment *e, const uint8_t *bk_pub, size_t bk_len,
    const struct hwtpm_attestation *bk_ev, struct err *err)
{
	char dir[PATH_MAX], path[PATH_MAX], *text = NULL;
	json_t *o;
	int ret = -1;

	if (enrol_path(&m->cfg, NULL, dir, sizeof(dir)) == -1 ||
	    (fileio_mkdirs(dir, 0700) == -1 && errno != EEXIST))
		goto io;
	if (enrol_path(&m->cfg, "ck.pem", path, sizeof(path)) == -1 ||
	    fileio_write_atomic(path, e->ck_pem, strlen(e->ck_pem), 0644) == -1)
		goto io;
	if (enrol_path(&m->cfg, "bk.pub", path, sizeof(path)) == -1 ||
	    fileio_write_atomic(path, bk_pub, bk_len, 0644) == -1)
		goto io;
	if (enrol_path(&m->cfg, "bk.attest", path, sizeof(path)) == -1 ||
	    fileio_write_atomic(path, bk_ev->attest, bk_ev->attest_len, 0644) == -1)
		goto io;
	if (enrol_path(&m->cfg, "bk.sig", path, sizeof(path)) == -1 ||
	    fileio_write_atomic(path, bk_ev->signature, bk_ev->signature_len, 0644) == -1)
		goto io;
	if (enrol_save_roots(m, "privacy-ca-root.pem", &e->privacy_roots) == -1 ||
	    enrol_save_roots(m, "virtualization-ca-root.pem", &e->virt_roots) == -1)
		goto io;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "privacy_ca", e->privacy_ca,
	    "virtualization_ca", e->virtualization_ca, "host", e->host, "ek", e->ek,
	    "enrolled_at", e->enrolled_at);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (text == NULL || enrol_path(&m->cfg, "enrolment.json", path, sizeof(path)) == -1 ||
	    fileio_write_atomic(path, text, strlen(text), 0644) == -1)
		goto io;
	ret = 0;
	goto out;
io:
	err_set(err, ERR_FAILED, "%s: %s", dir, strerror(errno));
out:
	free(text);
	return ret;
}

#define ENROL_NEEDS_APPROVAL "to enrol the host"

/* The host EK and CK (made with the approval key's policy, replacing one
 * an older vtpmd made), and the challenge request to the Privacy CA:
 * op->ca. */
static int
enrol_challenge(struct manager *m, struct enrol_op *op, struct err *err)
{
	uint8_t *ek_pub = NULL, *ek_cert = NULL, *ck_pub = NULL;
	size_t ek_pub_len, ek_cert_len, ck_pub_len;
	json_t *req = NULL;
	int ret = -1;

	/* The CK and BK work only in an approved configuration: refused now
	 * rather than once the CA has issued (enrol_finish certifies the BK). */
	if (policy_approved_now(m, ENROL_NEEDS_APPROVAL, err) == NULL)
		goto out;
	if (enrol_pick_ek(m->hw, &op->kind, &ek_pub, &ek_pub_len, &ek_cert, &ek_cert_len,
	        err) == -1)
		goto out;
	if (hwtpm_ck(m->hw, &m->policy.pub, &ck_pub, &ck_pub_len, err) == -1) {
		err_wrap(err, "host TPM: CK");
		goto out;
	}
	req = enrol_challenge_req(op->host, ek_cert, ek_cert_len, ek_pub, ek_pub_len, ck_pub,
	    ck_pub_len);
	if (req == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	op->ca = caclient_post(op->privacy_url, &m->cfg, "/v1/privacy/challenge", req,
	    op->timeout_s, NULL, &m->metrics.ca, err);
	if (op->ca == NULL)
		goto out;
	/* What the CK certificate will be checked against (cacheck_ck). */
	op->ck_pub = ck_pub;
	op->ck_pub_len = ck_pub_len;
	op->ek_cert = ek_cert;
	op->ek_cert_len = ek_cert_len;
	ck_pub = NULL;
	ek_cert = NULL;
	ret = 0;
out:
	json_decref(req);
	free(ek_pub);
	free(ek_cert);
	free(ck_pub);
	return ret;
}

/* The challenge opened by the host TPM, and the certify request: op->ca. */
static int
enrol_certify(struct manager *m, struct enrol_op *op, const json_t *challenge, struct err *err)
{
	json_t *req = enrol_activate(m->hw, op->kind, challenge, err);

	if (req == NULL && err->kind == ERR_HOST_TPM && hwtpm_recover(m->hw))
		req = enrol_activate(m->hw, op->kind, challenge, err);
	if (req == NULL)
		return -1;
	op->ca = caclient_post(op->privacy_url, &m->cfg, "/v1/privacy/certify", req, op->timeout_s,
	    NULL, &m->metrics.ca, err);
	json_decref(req);
	op->stage = ENROL_CERTIFY;
	return op->ca != NULL ? 0 : -1;
}

/* The CK certificate is in: the BK, certified by the CK, and the record.
 * m->enrol is replaced only once everything is saved. */
static int
enrol_finish(struct manager *m, const struct enrol_op *op, const json_t *reply, struct err *err)
{
	const struct cacheck_ck_want want = {.url = op->privacy_url, .roots = &op->privacy_roots,
	    .ck_public = op->ck_pub, .ck_public_len = op->ck_pub_len, .host = op->host,
	    .ek_cert = op->ek_cert, .ek_cert_len = op->ek_cert_len};
	struct hwtpm_attestation bk_ev = {0};
	const struct policy_entry *approved;
	struct cacheck_cert ck = {0};
	struct enrolment e = {0};
	char serial[CERTS_SERIAL_HEX_MAX + 1] = "?";
	uint8_t *bk_pub = NULL;
	size_t bk_pub_len;
	time_t now = time(NULL);
	struct tm tm;
	int ret = -1;

	if (cacheck_ck(reply, &want, &ck, err) == -1)
		goto out;
	certs_cert_serial(ck.der, ck.len, serial);
	if ((e.ck_pem = cacheck_cert_pem(&ck)) == NULL ||
	    cacheck_roots_copy(&e.privacy_roots, &op->privacy_roots) == -1 ||
	    cacheck_roots_copy(&e.virt_roots, &op->virt_roots) == -1) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	if ((approved = policy_approved_now(m, ENROL_NEEDS_APPROVAL, err)) == NULL)
		goto out;
	if (hwtpm_bk(m->hw, &m->cfg.pcrs, &approved->ap, &bk_pub, &bk_pub_len, &bk_ev, err) == -1 &&
	    (err->kind != ERR_HOST_TPM || !hwtpm_recover(m->hw) ||
	        hwtpm_bk(m->hw, &m->cfg.pcrs, &approved->ap, &bk_pub, &bk_pub_len, &bk_ev, err) ==
	            -1)) {
		if (err->kind == ERR_POLICY)
			policy_refused(m, ENROL_NEEDS_APPROVAL, err);
		else
			err_wrap(err, "host TPM: BK");
		goto out;
	}
	e.enrolled = true;
	snprintf(e.privacy_ca, sizeof(e.privacy_ca), "%s", op->privacy_url);
	snprintf(e.virtualization_ca, sizeof(e.virtualization_ca), "%s", op->virt_url);
	snprintf(e.host, sizeof(e.host), "%s", op->host);
	snprintf(e.ek, sizeof(e.ek), "%s", op->kind == HWTPM_EK_RSA ? "rsa2048" : "ecc-p256");
	gmtime_r(&now, &tm);
	strftime(e.enrolled_at, sizeof(e.enrolled_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (enrol_save(m, &e, bk_pub, bk_pub_len, &bk_ev, err) == -1)
		goto out;
	enrol_clear(&m->enrol);
	m->enrol = e;
	memset(&e, 0, sizeof(e));
	log_info("host enrolled with the Privacy CA at %s as \"%s\" (CK certificate serial %s, "
	    "checked)", op->privacy_url, op->host, serial);
	ret = 0;
out:
	cacheck_cert_clear(&ck);
	enrol_clear(&e);
	hwtpm_attestation_clear(&bk_ev);
	free(bk_pub);
	return ret;
}

/* One CA role's roots: the file the configuration names (key), else the
 * PEM the request gave; a request may not give roots the configuration
 * names. Returns 1 with r filled, 0 when neither names any, or -1 with
 * err. */
static int
enrol_role_roots(const char *file, const char *key, const char *pem, const char *field,
    struct cacheck_roots *r, struct err *err)
{
	if (file[0] != '\0' && pem != NULL)
		return err_set(err, ERR_INVALID, "vtpmd's configuration names the roots it trusts "
		    "(%s = %s): a request may not give others (\"%s\"); enrol without them, or "
		    "change the configuration", key, file, field);
	if (file[0] != '\0') {
		if (cacheck_roots_load(file, r, err) == -1)
			return err_wrap(err, "%s", key);
		return 1;
	}
	if (pem == NULL)
		return 0;
	if (cacheck_roots_parse(pem, strlen(pem), r, err) == -1)
		return err_wrap(err, "\"%s\"", field);
	return 1;
}

/* The roots an enrolment's answers must chain to: the Privacy CA's, and
 * the Virtualization CA's kept for EK certificates (by default the
 * Privacy CA's: one vtpm-ca serves both roles under one root). Logged,
 * with where they came from. */
static int
enrol_roots(struct manager *m, struct enrol_op *op, const struct enrol_roots_pem *given,
    struct err *err)
{
	const struct config *cfg = &m->cfg;
	char pdesc[400], vdesc[400];
	int p, v;

	p = enrol_role_roots(cfg->privacy_root, "privacy-ca-root", given ? given->privacy : NULL,
	    "ca_root", &op->privacy_roots, err);
	if (p == 0)
		return err_set(err, ERR_INVALID, "no Privacy CA root to check the CK certificate "
		    "against: vtpmd keeps only a certificate that chains to a root it was given; set "
		    "privacy-ca-root in vtpmd's configuration, or give the CA's root with the "
		    "request (vtpmctl host enroll --ca URL --ca-root FILE; vtpm-ca keeps it in "
		    "ca-root.pem beside its database)");
	if (p == -1)
		return -1;
	v = enrol_role_roots(cfg->virt_root, "virtualization-ca-root", given ? given->virt : NULL,
	    "virtualization_ca_root", &op->virt_roots, err);
	if (v == -1)
		return -1;
	if (v == 0 && cacheck_roots_copy(&op->virt_roots, &op->privacy_roots) == -1)
		return err_set(err, ERR_FAILED, "out of memory");
	cacheck_roots_describe(&op->privacy_roots, pdesc, sizeof(pdesc));
	cacheck_roots_describe(&op->virt_roots, vdesc, sizeof(vdesc));
	log_info("host enrolment with the Privacy CA at %s: its CK certificate must chain to %s "
	    "(%s); EK certificates from the Virtualization CA at %s to %s (%s)", op->privacy_url,
	    pdesc, cfg->privacy_root[0] ? "privacy-ca-root" : "given with the request",
	    op->virt_url, vdesc,
	    cfg->virt_root[0] ? "virtualization-ca-root"
	    : v == 1          ? "given with the request"
	                      : "the Privacy CA's");
	return 0;
}

/*
 * Begins the host's enrolment with the Privacy CA at privacy_url (see the
 * top of this file); the Virtualization CA that vTPM EK certificates will
 * come from is virt_url (NULL: the same server). host is the name the CK
 * certificate carries; roots what the request gave (NULL: nothing).
 * Returns the enrolment, its challenge request to the CA in flight
 * (enrol_ca), to be moved on with enrol_step; or NULL with err: ERR_INVALID
 * when there is no root to check the answers against or the roots are
 * refused, else a host-TPM failure (retried once, after reconnecting) or
 * the CA's.
 */
struct enrol_op *
enrol_begin(struct manager *m, const char *privacy_url, const char *virt_url, const char *host,
    const struct enrol_roots_pem *roots, struct err *err)
{
	struct enrol_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	snprintf(op->privacy_url, sizeof(op->privacy_url), "%s", privacy_url);
	snprintf(op->virt_url, sizeof(op->virt_url), "%s", virt_url ? virt_url : privacy_url);
	snprintf(op->host, sizeof(op->host), "%s", host);
	op->timeout_s = m->cfg.ca_timeout_s;
	op->stage = ENROL_CHALLENGE;
	if (enrol_roots(m, op, roots, err) == -1) {
		enrol_op_free(op);
		return NULL;
	}
	if (enrol_challenge(m, op, err) == -1 &&
	    (err->kind != ERR_HOST_TPM || !hwtpm_recover(m->hw) ||
	        enrol_challenge(m, op, err) == -1)) {
		enrol_op_free(op);
		return NULL;
	}
	return op;
}

/*
 * Moves the enrolment on, at each event of its CA request (its pipe
 * readable, its deadline): once the challenge is answered, the host TPM
 * opens it and the certify request goes out; once the CK certificate is
 * in, the BK is made and certified and everything is saved. Returns 1
 * while a CA request is in flight, 0 when the host is enrolled (m->enrol
 * replaced), or -1 with err (the previous enrolment is kept).
 */
int
enrol_step(struct manager *m, struct enrol_op *op, struct err *err)
{
	json_t *reply = NULL;
	int rc;

	if (!caclient_step(op->ca))
		return 1;
	rc = caclient_result(op->ca, &reply, err);
	caclient_free(op->ca);
	op->ca = NULL;
	if (rc == -1)
		return -1;
	if (op->stage == ENROL_CHALLENGE)
		rc = enrol_certify(m, op, reply, err) == 0 ? 1 : -1;
	else
		rc = enrol_finish(m, op, reply, err);
	json_decref(reply);
	return rc;
}

/* The CA request in flight, or NULL. */
struct caclient *
enrol_ca(const struct enrol_op *op)
{
	return op->ca;
}

/* Abandons an enrolment (its CA request, if any, is called off) and frees
 * it. NULL-safe. */
void
enrol_op_free(struct enrol_op *op)
{
	if (op == NULL)
		return;
	caclient_free(op->ca);
	cacheck_roots_clear(&op->privacy_roots);
	cacheck_roots_clear(&op->virt_roots);
	free(op->ck_pub);
	free(op->ek_cert);
	free(op);
}

/*
 * The roots the Virtualization CA's EK certificates must chain to:
 * virtualization-ca-root of the configuration when it names one (read now,
 * so that a new root needs no restart), else those kept with the
 * enrolment. Returns 0 with *out filled (cacheck_roots_clear frees it), or
 * -1 with err when there is none (ERR_INVALID: an enrolment made before
 * vtpmd checked certificates) or the file cannot be read.
 */
int
enrol_virt_roots(struct manager *m, struct cacheck_roots *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (m->cfg.virt_root[0] != '\0') {
		if (cacheck_roots_load(m->cfg.virt_root, out, err) == -1)
			return err_wrap(err, "virtualization-ca-root");
		return 0;
	}
	if (m->enrol.virt_roots.n > 0) {
		if (cacheck_roots_copy(out, &m->enrol.virt_roots) == -1)
			return err_set(err, ERR_FAILED, "out of memory");
		return 0;
	}
	return err_set(err, ERR_INVALID, "no Virtualization CA root to check EK certificates "
	    "against (the enrolment predates vtpmd's checks): set virtualization-ca-root in "
	    "vtpmd's configuration, or enrol again giving the CA's root (vtpmctl host enroll "
	    "--ca URL --ca-root FILE)");
}

/* The CK certificate alone (the first of e->ck_pem), as malloc'd PEM, or
 * NULL. */
char *
enrol_ck_certificate(const struct enrolment *e)
{
	uint8_t *der = NULL;
	size_t off = 0, len;
	char *pem = NULL;

	if (e->ck_pem != NULL &&
	    certs_pem_next(e->ck_pem, strlen(e->ck_pem), &off, &der, &len, NULL) == 1)
		pem = certs_pem_encode(der, len);
	free(der);
	return pem;
}

/* A file of STATE/host/ as base64 in o[key] (absent when unreadable). */
static void
enrol_json_file(struct manager *m, json_t *o, const char *key, const char *leaf)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len;

	if (enrol_path(&m->cfg, leaf, path, sizeof(path)) == 0 &&
	    fileio_read(path, 1u << 16, &buf, &len) == 0)
		json_object_set_new(o, key, enrol_b64(buf, len));
	free(buf);
}

/* The enrolment for GET /v1/host: {"enrolled": false} or the record, the
 * CK certificate (PEM, with its chain) and the BK with its certification. */
json_t *
enrol_json(struct manager *m)
{
	const struct enrolment *e = &m->enrol;
	char subject[256] = "", serial[CERTS_SERIAL_HEX_MAX + 1] = "", root[400];
	uint8_t *der = NULL;
	size_t off = 0, len;
	json_t *o, *bk;

	if (!e->enrolled)
		return json_pack("{s:b}", "enrolled", 0);
	if (certs_pem_next(e->ck_pem, strlen(e->ck_pem), &off, &der, &len, NULL) == 1) {
		certs_subject(der, len, subject, sizeof(subject));
		certs_cert_serial(der, len, serial);
	}
	free(der);
	bk = json_pack("{s:s}", "handle", "0x81000003");
	enrol_json_file(m, bk, "public", "bk.pub");
	enrol_json_file(m, bk, "certify_attest", "bk.attest");
	enrol_json_file(m, bk, "certify_signature", "bk.sig");
	o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:o}", "enrolled", 1,
	    "privacy_ca", e->privacy_ca, "virtualization_ca", e->virtualization_ca, "host",
	    e->host, "ek", e->ek, "enrolled_at", e->enrolled_at, "ck", "handle", "0x81000002",
	    "subject", subject, "serial", serial, "certificate", e->ck_pem, "bk", bk);
	if (o != NULL && e->privacy_roots.n > 0) {
		cacheck_roots_describe(&e->privacy_roots, root, sizeof(root));
		json_object_set_new(o, "privacy_ca_root", json_string(root));
		cacheck_roots_describe(&e->virt_roots, root, sizeof(root));
		json_object_set_new(o, "virtualization_ca_root", json_string(root));
	}
	return o;
}
