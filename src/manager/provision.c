/*
 * provision.c: a new vTPM's endorsement, as a TPM manufacturer provisions
 * a hardware TPM, run by the manager at `create` once the host is enrolled
 * (enrol.c).
 *
 * While the first nonce comes, the vTPM creates every EK asked for from
 * the TCG templates and persists them (guesttpm.c): the vTPM's vEK set,
 * closed before the CA hears of the vTPM. Then, with one nonce from the
 * Virtualization CA, the host TPM's CK certifies the instance's sealed
 * state-key object with qualifyingData = evidence_vek_qualifying(nonce,
 * the set's first vEK, instance UUID, the set's digest) and quotes the
 * host PCRs of the sealing policy with the same qualifyingData; one
 * request ("whole_set") asks the Virtualization CA for the certificates
 * of every vEK of the set on that evidence: it checks it (docs/ca-api.md),
 * takes the nonce (once) and binds the sealed object, the UUID, the set
 * and each vEK, and issues one EK certificate per vEK. vtpmd checks
 * that certificate in turn (cacheck_ek: the Virtualization CA root it
 * trusts, this vEK, the TCG EK profile, this host and instance); only once
 * every EK's certificate passed are they written into the vTPM's TCG NV
 * indices, with the chain that verified from 0x01c00100, so that a
 * certificate refused leaves the vTPM's NV untouched. What was issued is
 * recorded, public, in STATE/instances/NAME/ek.json.
 *
 * Host-TPM cost per vTPM: one certification (Load, Certify, FlushContext)
 * and one quote. The CA requests (two per vTPM: the nonce, the
 * certificates) run off the loop (caclient.c): a provisioning is a state (struct
 * provision) that the loop moves on at each event of its request in
 * flight (provision_step), while it serves others.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "manager.h"

static const struct {
	const char *name;
	enum hwtpm_ek_kind kind;
	uint32_t handle, nv_index;
} provision_types[] = {
    {"rsa2048", HWTPM_EK_RSA, HWTPM_EK_RSA_HANDLE, HWTPM_EK_RSA_CERT_NV},
    {"ecc-p256", HWTPM_EK_ECC, HWTPM_EK_ECC_HANDLE, HWTPM_EK_ECC_CERT_NV},
};
#define PROVISION_NTYPES (sizeof(provision_types) / sizeof(provision_types[0]))

/* Parses a type name ("rsa2048", "ecc-p256") into its bit of a type set.
 * Returns 0, or -1 for an unknown name. */
int
provision_parse_type(const char *name, unsigned int *set)
{
	for (size_t i = 0; i < PROVISION_NTYPES; i++) {
		if (strcmp(name, provision_types[i].name) == 0) {
			*set |= 1u << provision_types[i].kind;
			return 0;
		}
	}
	return -1;
}

/* Which CA request of the EK in flight is out. */
enum provision_stage {
	PROVISION_NONCE,       /* POST /v1/virtualization/nonce */
	PROVISION_CERTIFICATE, /* POST /v1/virtualization/ek-certificate */
};

/* A provisioning in flight: the state between the CA's answers. */
struct provision {
	unsigned int set; /* the types asked for (bits 1 << HWTPM_EK_*) */
	bool asked;       /* the nonce was asked for */
	size_t cur;       /* the set's first type: the evidence is made for its vEK */
	char *ck_pem;	  /* the CK certificate, as enrolled when it began */
	uint8_t ck_digest[CERTS_DIGEST_LEN]; /* its key (certs_cert_key_digest) */
	char url[256];		   /* the Virtualization CA, idem */
	char host[65];		   /* the host's name, idem */
	struct cacheck_roots roots; /* what its certificates must chain to, idem */
	int timeout_s;
	struct guesttpm *g; /* the vTPM, once its worker serves */
	uint8_t *sealed;    /* the instance's sealed.key */
	size_t sealed_len;
	/* Every vEK asked for (TPM2B_PUBLIC), made before the first CA request:
	 * the vTPM's vEK set, whose digest each EK's evidence carries. */
	uint8_t *vek[PROVISION_NTYPES];
	size_t vek_len[PROVISION_NTYPES];
	uint8_t set_digest[TPM_DIGEST_LEN]; /* evidence_vek_set_digest() */
	struct caclient *ca; /* the CA request in flight, or NULL */
	enum provision_stage stage;                  /* which one */
	int64_t ek_deadline; /* monotonic ms: the two requests share one ca-timeout */
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN];       /* the CA's, for the evidence */
	struct cacheck_cert certs[PROVISION_NTYPES]; /* accepted, written once all are */
	const struct cacheck_cert *first; /* the first accepted: its chain goes to NV */
	json_t *eks, *chain; /* what ek.json will record */
};

/* The seconds left of the ca-timeout (at least 1): the certificate
 * request has what the nonce request left, so that a create still answers
 * within vtpmctl's deadline (docs/config.md, ca-timeout). */
static int
provision_time_left(const struct provision *p)
{
	int64_t left = p->ek_deadline - mono_ms();

	return left < 1000 ? 1 : (int)((left + 999) / 1000);
}

/* The Virtualization CA request for the whole vEK set, on the evidence
 * made for its first vEK (docs/ca-api.md). */
static json_t *
provision_request(struct manager *m, const struct vtpm *v, const struct provision *p,
    size_t sealed_pub_len, const struct hwtpm_attestation *cert,
    const struct hwtpm_attestation *quote, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	char x[65], y[65];
	json_t *others = json_array();

	for (size_t t = 0; t < PROVISION_NTYPES && others != NULL; t++)
		if (t != p->cur && p->vek[t] != NULL &&
		    json_array_append_new(others, enrol_b64(p->vek[t], p->vek_len[t])) == -1) {
			json_decref(others);
			others = NULL;
		}
	if (others == NULL)
		return NULL;
	hex_encode(m->policy.pub.x, 32, x);
	hex_encode(m->policy.pub.y, 32, y);
	return json_pack(
	    "{s:b, s:s, s:s, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:{s:o, s:o, s:o}, s:{s:s, s:s}}",
	    "whole_set", 1, "ck_certificate", p->ck_pem, "instance_uuid", v->uuid, "vek_public",
	    enrol_b64(p->vek[p->cur], p->vek_len[p->cur]), "other_veks", others, "sealed_public",
	    enrol_b64(p->sealed, sealed_pub_len), "nonce", enrol_b64(p->nonce, sizeof(p->nonce)),
	    "certify", "attest", enrol_b64(cert->attest, cert->attest_len), "signature",
	    enrol_b64(cert->signature, cert->signature_len), "quote", "attest",
	    enrol_b64(quote->attest, quote->attest_len), "signature",
	    enrol_b64(quote->signature, quote->signature_len), "pcrs",
	    pcrpolicy_values_json(m->cfg.pcrs.mask, values), "approval_key", "x", x, "y", y);
}

/* The host TPM's evidence for the vEK set (the CK's certification of the
 * sealed key object and its quote of the host PCRs, both qualified by the
 * CA's nonce, the set's first vEK, the instance's UUID and the set's
 * digest), sent to the Virtualization CA: p->ca. */
static int
provision_ask(struct manager *m, const struct vtpm *v, struct provision *p, struct err *err)
{
	uint8_t qd[TPM_DIGEST_LEN], values[TPM_PCRS][TPM_DIGEST_LEN];
	struct hwtpm_attestation cert = {0}, quote = {0};
	const struct policy_entry *e;
	char what[128];
	size_t pub_len;
	json_t *req = NULL;
	int ret = -1;

	if (hwtpm_sealed_public(p->sealed, p->sealed_len, &pub_len, err) == -1)
		return err_set(err, ERR_FAILED, "%s: sealed.key is malformed", v->name);
	if (evidence_vek_qualifying(p->nonce, p->vek[p->cur], p->vek_len[p->cur], v->uuid,
	        p->set_digest, qd, err) == -1)
		return err_wrap(err, "the vEK's evidence");
	snprintf(what, sizeof(what),
	    "to certify %s's EKs with the host's CK and quote the host PCRs", v->name);
	if ((e = policy_approved_now(m, what, err)) == NULL)
		return -1;
	if (hwtpm_certify_sealed(m->hw, p->sealed, p->sealed_len, &m->cfg.pcrs, &e->ap, qd,
	        sizeof(qd), &cert, err) != 0 ||
	    hwtpm_quote(m->hw, &m->cfg.pcrs, &e->ap, qd, sizeof(qd), &quote, values, err) == -1) {
		if (err->kind == ERR_POLICY)
			policy_refused(m, what, err);
		else
			err_wrap(err, "host TPM");
		goto out;
	}
	req = provision_request(m, v, p, pub_len, &cert, &quote, values);
	if (req == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	p->ca = caclient_post(p->url, &m->cfg, "/v1/virtualization/ek-certificate", req,
	    provision_time_left(p), v->name, &m->metrics.ca, err);
	p->stage = PROVISION_CERTIFICATE;
	if (p->ca != NULL)
		ret = 0;
out:
	json_decref(req);
	hwtpm_attestation_clear(&cert);
	hwtpm_attestation_clear(&quote);
	return ret;
}

/* Asks the Virtualization CA for a nonce for the evidence: p->ca. */
static int
provision_ask_nonce(struct manager *m, const struct vtpm *v, struct provision *p, struct err *err)
{
	json_t *req = json_object();

	if (req == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	p->ek_deadline = mono_ms() + (int64_t)p->timeout_s * 1000;
	p->ca = caclient_post(p->url, &m->cfg, "/v1/virtualization/nonce", req, p->timeout_s,
	    v->name, &m->metrics.ca, err);
	p->stage = PROVISION_NONCE;
	json_decref(req);
	return p->ca != NULL ? 0 : -1;
}

/* The CA's nonce is in: p->nonce. */
static int
provision_take_nonce(struct provision *p, struct err *err)
{
	const char *b64 = NULL;
	json_t *reply = NULL;
	size_t len = 0;
	int ret = -1;

	if (caclient_result(p->ca, &reply, err) == -1)
		goto out;
	b64 = json_string_value(json_object_get(reply, "nonce"));
	if (b64 == NULL || base64_decode(b64, p->nonce, sizeof(p->nonce), &len) == -1 ||
	    len != sizeof(p->nonce)) {
		err_set(err, ERR_UNTRUSTED,
		    "Virtualization CA at %s: its answer to a nonce request holds no 32-byte nonce",
		    p->url);
		goto out;
	}
	ret = 0;
out:
	caclient_free(p->ca);
	p->ca = NULL;
	json_decref(reply);
	return ret;
}

/* The first certificate of PEM text as DER (malloc'd). */
static int
provision_der(const char *pem, uint8_t **der, size_t *len)
{
	size_t off = 0;

	return pem != NULL && certs_pem_next(pem, strlen(pem), &off, der, len, NULL) == 1 ? 0
	                                                                                     : -1;
}

/* The CA's answer for vEK type t (reply): its certificate is checked
 * (cacheck_ek) and kept, to be written once every EK's is; its record goes
 * to p->eks. Both EKs' certificates must verify through one chain, the one
 * the vTPM's chain indices will hold. */
static int
provision_accept_one(
    const struct vtpm *v, struct provision *p, size_t t, const json_t *reply, struct err *err)
{
	struct cacheck_ek_want want = {.url = p->url,
	    .roots = &p->roots,
	    .type = provision_types[t].name,
	    .vek_public = p->vek[t],
	    .vek_public_len = p->vek_len[t],
	    .host = p->host,
	    .uuid = v->uuid};
	struct cacheck_cert *c = &p->certs[t];
	char serial[CERTS_SERIAL_HEX_MAX + 1] = "", handle[16], index[16], *pem = NULL;
	struct certs_virtual virt;
	int ret = -1;

	memcpy(want.ck_digest, p->ck_digest, sizeof(want.ck_digest));
	if (cacheck_ek(reply, &want, c, &virt, err) == -1)
		goto out;
	if (p->first != NULL && !cacheck_same_chain(p->first, c)) {
		err_set(err, ERR_UNTRUSTED, "Virtualization CA at %s: %s EK certificate refused: it "
		    "chains through other CA certificates than the first EK's", p->url,
		    provision_types[t].name);
		goto out;
	}
	if (p->first == NULL)
		p->first = c;
	certs_cert_serial(c->der, c->len, serial);
	snprintf(handle, sizeof(handle), "0x%08x", provision_types[t].handle);
	snprintf(index, sizeof(index), "0x%08x", provision_types[t].nv_index);
	pem = certs_pem_encode(c->der, c->len);
	if (pem == NULL || json_array_append_new(p->eks,
	                       json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type",
	                           provision_types[t].name, "handle", handle, "nv_index", index,
	                           "serial", serial, "host_config", virt.host_config, "certificate",
	                           pem, "public", enrol_b64(p->vek[t], p->vek_len[t]))) == -1) {
		err_set(err, ERR_FAILED, "out of memory");
		goto out;
	}
	log_info("%s: EK %s certified by the Virtualization CA (serial %s, host configuration %s), "
	    "certificate checked", v->name, provision_types[t].name, serial, virt.host_config);
	ret = 0;
out:
	if (ret == -1)
		cacheck_cert_clear(c);
	free(pem);
	return ret;
}

/* The CA answered for the whole set: {"eks": [...]}, one answer per vEK
 * asked for, in type order, each accepted (provision_accept_one). */
static int
provision_accept(const struct vtpm *v, struct provision *p, struct err *err)
{
	json_t *reply = NULL;
	const json_t *eks;
	size_t i = 0;
	int ret = -1;

	if (caclient_result(p->ca, &reply, err) == -1)
		goto out;
	eks = json_object_get(reply, "eks");
	for (size_t t = 0; t < PROVISION_NTYPES; t++) {
		if (p->vek[t] == NULL)
			continue;
		if (!json_is_object(json_array_get(eks, i))) {
			err_set(err, ERR_UNTRUSTED,
			    "Virtualization CA at %s: its answer holds no %s EK certificate",
			    p->url, provision_types[t].name);
			goto out;
		}
		if (provision_accept_one(v, p, t, json_array_get(eks, i++), err) == -1)
			goto out;
	}
	if (json_array_size(eks) != i) {
		err_set(err, ERR_UNTRUSTED,
		    "Virtualization CA at %s: its answer holds more EK certificates than asked for",
		    p->url);
		goto out;
	}
	ret = 0;
out:
	caclient_free(p->ca);
	p->ca = NULL;
	json_decref(reply);
	return ret;
}

/* Every EK's certificate passed: each goes to its NV index, and the chain
 * that verified them from GUESTTPM_CHAIN_NV_FIRST. */
static int
provision_write(const struct vtpm *v, struct provision *p, struct err *err)
{
	struct guesttpm_cert chain[CACHECK_CHAIN_MAX];

	for (size_t t = 0; t < PROVISION_NTYPES; t++) {
		if (p->certs[t].der == NULL)
			continue;
		if (guesttpm_write_ek_cert(p->g, provision_types[t].kind, p->certs[t].der,
		        p->certs[t].len, err) == -1)
			return -1;
		log_info("%s: EK %s certificate written to NV 0x%08x", v->name,
		    provision_types[t].name, provision_types[t].nv_index);
	}
	if (p->first == NULL)
		return 0;
	for (size_t i = 0; i < p->first->n_chain; i++)
		chain[i] = (struct guesttpm_cert){p->first->chain[i].der, p->first->chain[i].len};
	if (guesttpm_write_chain(p->g, chain, p->first->n_chain, err) == -1)
		return -1;
	p->chain = cacheck_chain_json(p->first);
	if (p->chain == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	return 0;
}

/* Opens the new vTPM (its worker serves now) and reads its sealed key. */
static int
provision_open(struct manager *m, const struct vtpm *v, struct provision *p, struct err *err)
{
	char ctrl[PATH_MAX], data[PATH_MAX], path[PATH_MAX];
	struct endpoint ep = {.kind = ENDPOINT_UNIX};

	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	snprintf(ep.path, sizeof(ep.path), "%s", data);
	if (registry_path(&m->cfg, v->name, "sealed.key", path, sizeof(path)) == -1 ||
	    fileio_read(path, 4096, &p->sealed, &p->sealed_len) == -1)
		return err_errno(err, "%s", path);
	p->g = guesttpm_open(&ep, err);
	return p->g != NULL ? 0 : -1;
}

/* Records what was provisioned: STATE/instances/NAME/ek.json. */
static int
provision_record(struct manager *m, const struct vtpm *v, const struct provision *p,
    struct err *err)
{
	char path[PATH_MAX], *text;
	json_t *rec;
	int ret = 0;

	rec = json_pack("{s:O, s:s, s:O?}", "eks", p->eks, "chain_nv_first", "0x01c00100", "chain",
	    p->chain);
	text = rec ? json_dumps(rec, JSON_INDENT(2)) : NULL;
	if (text == NULL || registry_path(&m->cfg, v->name, "ek.json", path, sizeof(path)) ||
	    fileio_write_atomic(path, text, strlen(text), 0644) == -1)
		ret = err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
	free(text);
	json_decref(rec);
	return ret;
}

/*
 * A provisioning of the EK types in set (bits 1 << HWTPM_EK_*) for a TPM
 * 2.0 instance whose guest has not run yet. It takes the CK certificate
 * and the Virtualization CA's URL of the enrolment now, so that an
 * enrolment meanwhile cannot mix two CAs in one vTPM. Returns it, to be
 * moved on with provision_step once the instance's worker serves, or NULL
 * with err.
 */
struct provision *
provision_new(struct manager *m, unsigned int set, struct err *err)
{
	struct provision *p = calloc(1, sizeof(*p));
	uint8_t *der = NULL;
	size_t len = 0;

	if (p == NULL || (p->eks = json_array()) == NULL) {
		free(p);
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	p->set = set;
	p->timeout_s = m->cfg.ca_timeout_s;
	snprintf(p->url, sizeof(p->url), "%s", m->enrol.virtualization_ca);
	snprintf(p->host, sizeof(p->host), "%s", m->enrol.host);
	p->ck_pem = enrol_ck_certificate(&m->enrol);
	if (p->ck_pem == NULL || provision_der(p->ck_pem, &der, &len) == -1 ||
	    certs_cert_key_digest(der, len, p->ck_digest) == -1) {
		free(der);
		err_set(err, ERR_FAILED, "the host's enrolment holds no CK certificate: enrol again");
		provision_free(p);
		return NULL;
	}
	free(der);
	if (enrol_virt_roots(m, &p->roots, err) == -1) {
		provision_free(p);
		return NULL;
	}
	return p;
}

/* Makes every vEK asked for, and the digest of that set, before the first
 * certificate request: the Virtualization CA records the set at that
 * request and certifies no vEK outside it later (docs/ca-api.md). */
static int
provision_make_veks(struct provision *p, struct err *err)
{
	struct evidence_vek_set set = {0};
	static const enum evidence_vek_type slot[] = {
	    [HWTPM_EK_RSA] = EVIDENCE_VEK_RSA_2048, [HWTPM_EK_ECC] = EVIDENCE_VEK_ECC_P256};

	for (size_t t = 0; t < PROVISION_NTYPES; t++) {
		enum hwtpm_ek_kind kind = provision_types[t].kind;

		if (!(p->set & (1u << kind)))
			continue;
		if (guesttpm_create_ek(p->g, kind, &p->vek[t], &p->vek_len[t], err) == -1)
			return -1;
		set.pub[slot[kind]] = p->vek[t];
		set.len[slot[kind]] = p->vek_len[t];
	}
	if (evidence_vek_set_digest(&set, p->set_digest, err) == -1)
		return err_wrap(err, "the vEK set");
	return 0;
}

/*
 * Moves the provisioning of v on, after v's worker began to serve and
 * after each event of the CA request in flight (its pipe readable, its
 * deadline): first the CA's nonce is asked for, and the vEKs are made
 * meanwhile; when it is in, the host TPM certifies the vEK set with it and
 * the set is sent to the CA; when the CA's certificates are in, each is
 * checked and kept, then they and their chain are written into the vTPM
 * and ek.json is written. Returns 1 while a CA request is in flight
 * (provision_ca), 0 when the instance is provisioned, -1 with err when it
 * failed (ERR_UNTRUSTED: a certificate refused, and then nothing was
 * written to the vTPM's NV): it may then hold some of its EKs, and the
 * caller deletes it.
 */
int
provision_step(struct manager *m, struct vtpm *v, struct provision *p, struct err *err)
{
	if (p->g == NULL && provision_open(m, v, p, err) == -1)
		return -1;
	if (p->ca != NULL) {
		if (!caclient_step(p->ca))
			return 1;
		if (p->stage == PROVISION_NONCE)
			return provision_take_nonce(p, err) == -1 ||
			               provision_ask(m, v, p, err) == -1
			           ? -1
			           : 1;
		if (provision_accept(v, p, err) == -1)
			return -1;
	}
	if (p->asked)
		return provision_write(v, p, err) == -1 ? -1 : provision_record(m, v, p, err);
	for (p->cur = 0; p->cur < PROVISION_NTYPES; p->cur++)
		if (p->set & (1u << provision_types[p->cur].kind))
			break;
	if (p->cur == PROVISION_NTYPES)
		return provision_write(v, p, err) == -1 ? -1 : provision_record(m, v, p, err);
	p->asked = true;
	/* The vEKs are made while the CA's child fetches the nonce. */
	if (provision_ask_nonce(m, v, p, err) == -1 || provision_make_veks(p, err) == -1)
		return -1;
	return 1;
}

/* The CA request in flight, or NULL. */
struct caclient *
provision_ca(const struct provision *p)
{
	return p->ca;
}

/* Abandons a provisioning (its CA request, if any, is called off) and
 * frees it. NULL-safe. */
void
provision_free(struct provision *p)
{
	if (p == NULL)
		return;
	caclient_free(p->ca);
	guesttpm_close(p->g);
	for (size_t t = 0; t < PROVISION_NTYPES; t++)
		cacheck_cert_clear(&p->certs[t]);
	cacheck_roots_clear(&p->roots);
	free(p->ck_pem);
	free(p->sealed);
	for (size_t t = 0; t < PROVISION_NTYPES; t++)
		free(p->vek[t]);
	json_decref(p->eks);
	json_decref(p->chain);
	free(p);
}

/* The instance's EK record (ek.json) for the API, or NULL when it has
 * none. */
json_t *
provision_json(struct manager *m, const struct vtpm *v)
{
	char path[PATH_MAX];

	if (registry_path(&m->cfg, v->name, "ek.json", path, sizeof(path)) == -1)
		return NULL;
	return json_load_file(path, 0, NULL);
}
