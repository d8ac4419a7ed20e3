/*
 * provision.c: a new vTPM's endorsement, as a TPM manufacturer provisions
 * a hardware TPM, run by the manager at `create` once the host is enrolled
 * (enrol.c).
 *
 * For each EK type asked for (RSA-2048, ECC P-256): the vTPM creates its
 * EK from the TCG template and persists it (guesttpm.c); the host TPM's
 * CK certifies the instance's sealed state-key object with qualifyingData
 * = SHA-256(vEK TPM2B_PUBLIC) and quotes the host PCRs of the sealing
 * policy with the same qualifyingData; the Virtualization CA checks that
 * evidence (docs/ca-api.md) and issues the EK certificate, which goes into
 * the vTPM's TCG NV index, the issuing chain from 0x01c00100. What was
 * issued is recorded, public, in STATE/instances/NAME/ek.json.
 *
 * Host-TPM cost per EK: the certification (Load, Certify, FlushContext)
 * and the quote.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

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

/* The Virtualization CA request for one vEK (docs/ca-api.md). */
static json_t *
provision_request(struct manager *m, const struct vtpm *v, const uint8_t *vek, size_t vek_len,
    const uint8_t *sealed, size_t sealed_pub_len, const struct hwtpm_attestation *cert,
    const struct hwtpm_attestation *quote, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	char x[65], y[65], *ck = enrol_ck_certificate(&m->enrol);
	json_t *o;

	if (ck == NULL)
		return NULL;
	hex_encode(m->policy.pub.x, 32, x);
	hex_encode(m->policy.pub.y, 32, y);
	o = json_pack("{s:s, s:s, s:o, s:o, s:{s:o, s:o}, s:{s:o, s:o, s:o}, s:{s:s, s:s}}",
	    "ck_certificate", ck, "instance_uuid", v->uuid, "vek_public",
	    enrol_b64(vek, vek_len), "sealed_public", enrol_b64(sealed, sealed_pub_len), "certify",
	    "attest", enrol_b64(cert->attest, cert->attest_len), "signature",
	    enrol_b64(cert->signature, cert->signature_len), "quote", "attest",
	    enrol_b64(quote->attest, quote->attest_len), "signature",
	    enrol_b64(quote->signature, quote->signature_len), "pcrs",
	    pcrpolicy_values_json(m->cfg.pcrs.mask, values), "approval_key", "x", x, "y", y);
	free(ck);
	return o;
}

/* Asks the Virtualization CA for the certificate of one vEK; its answer
 * in *reply. */
static int
provision_certify(struct manager *m, const struct vtpm *v, const uint8_t *sealed,
    size_t sealed_len, const uint8_t *vek, size_t vek_len, json_t **reply,
    struct err *err)
{
	uint8_t qd[TPM_DIGEST_LEN], values[TPM_PCRS][TPM_DIGEST_LEN];
	struct hwtpm_attestation cert = {0}, quote = {0};
	size_t pub_len;
	json_t *req = NULL;
	int ret = -1;

	if (hwtpm_sealed_public(sealed, sealed_len, &pub_len, err) == -1) {
		err_set(err, ERR_FAILED, "%s: sealed.key is malformed", v->name);
		return -1;
	}
	if (EVP_Digest(vek, vek_len, qd, NULL, EVP_sha256(), NULL) != 1) {
		err_set(err, ERR_FAILED, "SHA-256 failed");
		return -1;
	}
	if (hwtpm_certify_sealed(m->hw, sealed, sealed_len, qd, sizeof(qd), &cert, err) != 0 ||
	    hwtpm_quote(m->hw, &m->cfg.pcrs, qd, sizeof(qd), &quote, values, err) == -1) {
		err_wrap(err, "host TPM");
		goto out;
	}
	req = provision_request(m, v, vek, vek_len, sealed, pub_len, &cert, &quote, values);
	ret = enrol_post(m->enrol.virtualization_ca, "/v1/virtualization/ek-certificate", req,
	    reply, err);
out:
	json_decref(req);
	hwtpm_attestation_clear(&cert);
	hwtpm_attestation_clear(&quote);
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

/* Writes the issuing chain of a CA answer into the vTPM's chain indices. */
static int
provision_write_chain(struct guesttpm *g, const json_t *chain, struct err *err)
{
	struct guesttpm_cert certs[8] = {{0}};
	size_t n = 0, i;
	json_t *c;
	int ret = -1;

	if (!json_is_array(chain) || json_array_size(chain) > 8) {
		err_set(err, ERR_FAILED, "the Virtualization CA's chain is malformed");
		return -1;
	}
	json_array_foreach(chain, i, c) {
		uint8_t *der;
		size_t len;

		if (provision_der(json_string_value(c), &der, &len) == -1) {
			err_set(err, ERR_FAILED, "the Virtualization CA's chain is malformed");
			goto out;
		}
		certs[n].der = der;
		certs[n++].len = len;
	}
	if (guesttpm_write_chain(g, certs, n, err) == -1) {
		goto out;
	}
	ret = 0;
out:
	for (i = 0; i < n; i++)
		free((void *)certs[i].der);
	return ret;
}

/* One vEK: created in the vTPM, certified, its certificate written to NV.
 * Its record is appended to eks; the chain is written with the first. */
static int
provision_one(struct manager *m, struct vtpm *v, struct guesttpm *g, size_t t,
    const uint8_t *sealed, size_t sealed_len, json_t *eks, json_t **chain,
    struct err *err)
{
	uint8_t *vek = NULL, *der = NULL;
	size_t vek_len, der_len;
	json_t *reply = NULL;
	char handle[16], index[16];
	const char *pem;
	int ret = -1;

	if (guesttpm_create_ek(g, provision_types[t].kind, &vek, &vek_len, err) == -1) {
		goto out;
	}
	if (provision_certify(m, v, sealed, sealed_len, vek, vek_len, &reply, err) == -1)
		goto out;
	pem = json_string_value(json_object_get(reply, "certificate"));
	if (provision_der(pem, &der, &der_len) == -1) {
		err_set(err, ERR_FAILED, "the Virtualization CA's answer holds no certificate");
		goto out;
	}
	if (guesttpm_write_ek_cert(g, provision_types[t].kind, der, der_len, err) == -1) {
		goto out;
	}
	if (*chain == NULL) {
		if (provision_write_chain(g, json_object_get(reply, "chain"), err) == -1)
			goto out;
		*chain = json_incref(json_object_get(reply, "chain"));
	}
	snprintf(handle, sizeof(handle), "0x%08x", provision_types[t].handle);
	snprintf(index, sizeof(index), "0x%08x", provision_types[t].nv_index);
	json_array_append_new(eks, json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:s, s:o}", "type",
	    provision_types[t].name, "handle", handle, "nv_index", index, "serial",
	    json_object_get(reply, "serial"), "host_config", json_object_get(reply, "host_config"),
	    "certificate", pem, "public", enrol_b64(vek, vek_len)));
	log_info("%s: EK %s certified by the Virtualization CA (serial %s), written to NV %s",
	    v->name, provision_types[t].name, json_string_value(json_object_get(reply, "serial")),
	    index);
	ret = 0;
out:
	json_decref(reply);
	free(vek);
	free(der);
	return ret;
}

/*
 * Provisions the EKs of the types in set (bits 1 << HWTPM_EK_*) of a
 * running TPM 2.0 instance whose guest has not run yet, and records them.
 * Returns 0, or -1 with *err and why set; the instance may then hold some
 * of the EKs: the caller deletes it.
 */
int
provision_instance(struct manager *m, struct vtpm *v, unsigned int set, struct err *err)
{
	char ctrl[PATH_MAX], data[PATH_MAX], path[PATH_MAX], *text = NULL;
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	uint8_t *sealed = NULL;
	size_t sealed_len;
	struct guesttpm *g = NULL;
	json_t *eks = json_array(), *chain = NULL, *rec = NULL;
	int ret = -1;

	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	snprintf(ep.path, sizeof(ep.path), "%s", data);
	if (eks == NULL || registry_path(&m->cfg, v->name, "sealed.key", path, sizeof(path)) ||
	    fileio_read(path, 4096, &sealed, &sealed_len) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((g = guesttpm_open(&ep, err)) == NULL) {
		goto out;
	}
	for (size_t t = 0; t < PROVISION_NTYPES; t++) {
		if (!(set & (1u << provision_types[t].kind)))
			continue;
		if (provision_one(m, v, g, t, sealed, sealed_len, eks, &chain, err) == -1)
			goto out;
	}
	rec = json_pack("{s:o, s:s, s:O?}", "eks", json_incref(eks), "chain_nv_first", "0x01c00100",
	    "chain", chain);
	text = rec ? json_dumps(rec, JSON_INDENT(2)) : NULL;
	if (text == NULL || registry_path(&m->cfg, v->name, "ek.json", path, sizeof(path)) ||
	    fileio_write_atomic(path, text, strlen(text), 0644) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	guesttpm_close(g);
	free(sealed);
	free(text);
	json_decref(rec);
	json_decref(eks);
	json_decref(chain);
	return ret;
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
