/*
 * ca_issue.c: what the Privacy CA's and the Virtualization CA's handlers
 * share when they answer: a refusal with its reason and hint, a
 * certificate's validity, the key inside a TPM public area, the JSON of an
 * issued certificate and its record in the database and the audit trail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca.h"

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

void
ca_validity(int64_t seconds, struct certs_validity *v)
{
	int64_t now = time(NULL);

	v->not_before = now - 60; /* a verifier's clock a little behind */
	v->not_after =
	    seconds == 0 || seconds > CERTS_NO_EXPIRY - now ? CERTS_NO_EXPIRY : now + seconds;
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
ca_record_issued(struct ca_server *s, const char *role, const char *kind, const char *subject,
    const char *detail, const uint8_t *der, size_t len, const struct certs_validity *v,
    char serial[static CERTS_SERIAL_HEX_MAX + 1])
{
	struct ca_issued rec = {0};
	char *pem = certs_pem_encode(der, len);
	int ret = -1;

	if (pem == NULL || certs_cert_serial(der, len, serial) == -1)
		goto out;
	snprintf(rec.serial, sizeof(rec.serial), "%s", serial);
	snprintf(rec.role, sizeof(rec.role), "%s", role);
	snprintf(rec.kind, sizeof(rec.kind), "%s", kind);
	snprintf(rec.subject, sizeof(rec.subject), "%s", subject);
	snprintf(rec.detail, sizeof(rec.detail), "%s", detail);
	rec.issued_at = time(NULL);
	rec.not_after = v->not_after;
	ret = ca_db_issued_add(s->db, &rec, pem) == CA_DB_OK ? 0 : -1;
out:
	free(pem);
	return ret;
}
