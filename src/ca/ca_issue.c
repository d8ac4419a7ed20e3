/*
 * ca_issue.c: what the Privacy CA's and the Virtualization CA's handlers
 * share when they answer, in the network child: a refusal with its reason
 * and hint, the key inside a TPM public area (as a key to check with, and
 * as the typed key the parent certifies), the JSON of an issued
 * certificate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca_msg.h"

void
ca_refuse(struct ca_reply *r, int status, const char *hint, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	snprintf(r->hint, sizeof(r->hint), "%s", hint != NULL ? hint : "");
	if (r->outcome == NULL || strcmp(r->outcome, "refused") != 0)
		r->outcome = status >= 500 ? "failed" : "refused";
	json_decref(r->body);
	r->body = NULL;
}

struct certs_pkey *
ca_tpm_pkey(const struct evidence_public *pub)
{
	if (pub->key == EVIDENCE_KEY_ECC_P256)
		return certs_pkey_from_ecc_p256(pub->ecc_x, pub->ecc_y);
	if (pub->type == EVIDENCE_ALG_RSA && pub->modulus_len > 0)
		return certs_pkey_from_rsa(pub->modulus, pub->modulus_len, pub->exponent);
	return NULL;
}

struct json_t *
ca_issued_json(const uint8_t *der, size_t len, const struct ca_der *ca_cert,
    const struct ca_der *root, const char *serial)
{
	char *pem = certs_pem_encode(der, len), *ca = certs_pem_encode(ca_cert->der, ca_cert->len),
	     *rt = certs_pem_encode(root->der, root->len);
	json_t *o = NULL;

	if (pem != NULL && ca != NULL && rt != NULL)
		o = json_pack(
		    "{s:s, s:[s, s], s:s}", "certificate", pem, "chain", ca, rt, "serial", serial);
	free(rt);
	free(ca);
	free(pem);
	return (struct json_t *)o;
}

int
ca_tpm_key(const struct evidence_public *pub, struct ca_msg_key *out)
{
	memset(out, 0, sizeof(*out));
	if (pub->key == EVIDENCE_KEY_ECC_P256 && pub->ecc_len <= sizeof(out->x)) {
		/* Coordinates shorter than the curve's size are left-padded. */
		out->type = CA_KEY_ECC_P256;
		memcpy(out->x + sizeof(out->x) - pub->ecc_len, pub->ecc_x, pub->ecc_len);
		memcpy(out->y + sizeof(out->y) - pub->ecc_len, pub->ecc_y, pub->ecc_len);
		return 0;
	}
	if (pub->key == EVIDENCE_KEY_RSA_2048 && pub->modulus_len == sizeof(out->modulus)) {
		out->type = CA_KEY_RSA_2048;
		out->exponent = pub->exponent;
		memcpy(out->modulus, pub->modulus, sizeof(out->modulus));
		return 0;
	}
	return -1;
}
