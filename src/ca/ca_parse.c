/*
 * ca_parse.c: vtpm-ca's request bodies (docs/ca-api.md), decoded from
 * untrusted JSON into fixed-size structures by pure functions: no I/O, no
 * allocation that survives a call, every length checked against its field
 * before a byte is copied. Checking what the bytes mean (certificates,
 * keys, signatures) is the routes' work; here only their form is.
 *
 * A field a request does not know is refused, naming it (nothing a
 * request carries is kept unless it was parsed; docs/ca-api.md,
 * "Limits"); a known field of the wrong type or size is refused, naming it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca.h"


static const json_t *
cp_get(const json_t *o, const char *field)
{
	return json_object_get(o, field);
}

/* Whether every member of object o is one of known (NULL-terminated): 0,
 * or -1 with err naming the first that is not (as prefix.field). */
static int
cp_known(const json_t *o, const char *prefix, const char *const *known, struct err *err)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, key, v)
	{
		for (i = 0; known[i] != NULL && strcmp(key, known[i]) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(err, ERR_INVALID, "unknown field \"%s%s%.64s\"",
			    prefix != NULL ? prefix : "", prefix != NULL ? "." : "", key);
	}
	return 0;
}

/* A required string field. */
static const char *
cp_string(const json_t *o, const char *field, struct err *err)
{
	const json_t *v = cp_get(o, field);

	if (v == NULL) {
		err_set(err, ERR_INVALID, "%s is missing", field);
		return NULL;
	}
	if (!json_is_string(v)) {
		err_set(err, ERR_INVALID, "%s must be a string", field);
		return NULL;
	}
	return json_string_value(v);
}

/* A required base64 field of 1 to max bytes. */
static int
cp_b64(const json_t *o, const char *field, uint8_t *out, size_t max, size_t *len, struct err *err)
{
	const char *s = cp_string(o, field, err);

	if (s == NULL)
		return -1;
	if (base64_decode(s, out, max, len) == -1 || *len == 0)
		return err_set(err, ERR_INVALID, "%s must be base64 of 1 to %zu bytes", field, max);
	return 0;
}

/* A required hex field of exactly len bytes. */
static int
cp_hex(const json_t *o, const char *field, uint8_t *out, size_t len, struct err *err)
{
	const char *s = cp_string(o, field, err);

	if (s == NULL)
		return -1;
	if (strlen(s) != 2 * len || hex_decode(s, out, len) == -1)
		return err_set(err, ERR_INVALID, "%s must be %zu bytes in hexadecimal", field, len);
	return 0;
}

/* Exactly one PEM certificate. */
static int
cp_pem_text(const char *pem, const char *field, struct ca_der *out, struct err *err)
{
	struct err inner;
	uint8_t *der = NULL, *more = NULL;
	size_t len = 0, more_len = 0, off = 0, n = strlen(pem);
	int r, ret = -1;

	if ((r = certs_pem_next(pem, n, &off, &der, &len, &inner)) != 1) {
		err_set(err, ERR_INVALID, "%s: %s", field, r == 0 ? "no PEM certificate" : inner.msg);
		goto out;
	}
	if (certs_pem_next(pem, n, &off, &more, &more_len, NULL) != 0) {
		err_set(err, ERR_INVALID, "%s must hold one certificate", field);
		goto out;
	}
	if (len > sizeof(out->der)) {
		err_set(err, ERR_INVALID, "%s: certificate larger than %zu bytes", field, sizeof(out->der));
		goto out;
	}
	memcpy(out->der, der, len);
	out->len = len;
	ret = 0;
out:
	free(more);
	free(der);
	return ret;
}

static int
cp_pem(const json_t *o, const char *field, struct ca_der *out, struct err *err)
{
	const char *s = cp_string(o, field, err);

	return s != NULL ? cp_pem_text(s, field, out, err) : -1;
}

/* An optional array of PEM certificates. */
static int
cp_chain(
    const json_t *o, const char *field, struct ca_der *out, size_t max, size_t *n, struct err *err)
{
	const json_t *a = cp_get(o, field), *v;
	char name[48];
	size_t i;

	*n = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > max)
		return err_set(err, ERR_INVALID, "%s must be an array of at most %zu PEM certificates",
		    field, max);
	json_array_foreach(a, i, v)
	{
		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (!json_is_string(v))
			return err_set(err, ERR_INVALID, "%s must be a string", name);
		if (cp_pem_text(json_string_value(v), name, &out[i], err) == -1)
			return -1;
	}
	*n = json_array_size(a);
	return 0;
}

/* A host name for a CK certificate: 1 to CERTS_NAME_MAX printable ASCII
 * characters. */
static int
cp_host(const char *s, char *out, size_t len, struct err *err)
{
	size_t n = strlen(s);

	if (n == 0 || n > CERTS_NAME_MAX || n >= len)
		return err_set(err, ERR_INVALID, "host must be 1 to %d characters", CERTS_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return err_set(err, ERR_INVALID, "host must be printable ASCII without spaces");
	memcpy(out, s, n + 1);
	return 0;
}

static int
cp_challenge(const json_t *body, struct ca_challenge_req *req, struct err *err)
{
	const json_t *host;
	const char *kind;

	static const char *const known[] = {
	    "kind", "ek_certificate", "ek_chain", "ek_public", "key_public", "host", NULL};

	if (!json_is_object(body))
		return err_set(err, ERR_INVALID, "the body must be a JSON object");
	if (cp_known(body, NULL, known, err) == -1 || (kind = cp_string(body, "kind", err)) == NULL)
		return -1;
	if (strcmp(kind, "ck") == 0)
		req->kind = CA_KIND_CK;
	else if (strcmp(kind, "ak") == 0)
		req->kind = CA_KIND_AK;
	else
		return err_set(err, ERR_INVALID, "kind must be \"ck\" or \"ak\"");
	if (cp_pem(body, "ek_certificate", &req->ek_cert, err) == -1 ||
	    cp_chain(body, "ek_chain", req->chain, CA_CHAIN_MAX, &req->n_chain, err) ==
	        -1 ||
	    cp_b64(body, "ek_public", req->ek_public, sizeof(req->ek_public), &req->ek_public_len,
	        err) == -1 ||
	    cp_b64(body, "key_public", req->key_public, sizeof(req->key_public),
	        &req->key_public_len, err) == -1)
		return -1;
	host = cp_get(body, "host");
	if (req->kind == CA_KIND_AK) {
		if (host != NULL)
			return err_set(err, ERR_INVALID, "host is for kind \"ck\" only");
		return 0;
	}
	if (host == NULL)
		return err_set(err, ERR_INVALID, "host is missing (the host's name, for kind \"ck\")");
	if (!json_is_string(host))
		return err_set(err, ERR_INVALID, "host must be a string");
	return cp_host(json_string_value(host), req->host, sizeof(req->host), err);
}

int
ca_parse_challenge(
    const struct json_t *body, struct ca_challenge_req *req, struct err *err)
{
	memset(req, 0, sizeof(*req));
	if (cp_challenge((const json_t *)body, req, err) == 0)
		return 0;
	memset(req, 0, sizeof(*req));
	return -1;
}

static int
cp_certify(const json_t *body, struct ca_certify_req *req, struct err *err)
{
	static const char *const known[] = {"id", "secret", NULL};
	const char *id;

	if (!json_is_object(body))
		return err_set(err, ERR_INVALID, "the body must be a JSON object");
	if (cp_known(body, NULL, known, err) == -1 || (id = cp_string(body, "id", err)) == NULL)
		return -1;
	if (strlen(id) != CA_ID_HEX)
		return err_set(err, ERR_INVALID, "id must be %d hexadecimal digits", CA_ID_HEX);
	for (size_t i = 0; i < CA_ID_HEX; i++) {
		if (!isxdigit((unsigned char)id[i]))
			return err_set(err, ERR_INVALID, "id must be %d hexadecimal digits", CA_ID_HEX);
		req->id[i] = (char)tolower((unsigned char)id[i]);
	}
	return cp_b64(
	    body, "secret", req->secret, sizeof(req->secret), &req->secret_len, err);
}

int
ca_parse_certify(const struct json_t *body, struct ca_certify_req *req, struct err *err)
{
	memset(req, 0, sizeof(*req));
	if (cp_certify((const json_t *)body, req, err) == 0)
		return 0;
	memset(req, 0, sizeof(*req));
	return -1;
}

/* A UUID, 8-4-4-4-12 hexadecimal digits, lowercased into out. */
static int
cp_uuid(const char *s, char out[static CERTS_UUID_LEN + 1], struct err *err)
{
	if (strlen(s) != CERTS_UUID_LEN)
		goto bad;
	for (size_t i = 0; i < CERTS_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				goto bad;
		} else if (!isxdigit((unsigned char)s[i])) {
			goto bad;
		}
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[CERTS_UUID_LEN] = '\0';
	return 0;
bad:
	return err_set(err, ERR_INVALID, "instance_uuid must be a UUID (8-4-4-4-12 hexadecimal digits)");
}

/* {"attest": B64, "signature": B64} */
static int
cp_signed(const json_t *body, const char *field, struct ca_signed *out, struct err *err)
{
	static const char *const known[] = {"attest", "signature", NULL};
	static const char *const known_quote[] = {"attest", "signature", "pcrs", NULL};
	const json_t *o = cp_get(body, field);
	char name[48];

	if (!json_is_object(o))
		return err_set(err, ERR_INVALID, "%s must be an object with attest and signature", field);
	if (cp_known(o, field, strcmp(field, "quote") == 0 ? known_quote : known, err) == -1)
		return -1;
	snprintf(name, sizeof(name), "%s.attest", field);
	if (cp_b64(o, "attest", out->attest, sizeof(out->attest), &out->attest_len, err) ==
	    -1) {
		err_set(err, ERR_INVALID, "%s must be base64 of 1 to %zu bytes", name, sizeof(out->attest));
		return -1;
	}
	snprintf(name, sizeof(name), "%s.signature", field);
	if (cp_b64(o, "signature", out->signature, sizeof(out->signature), &out->signature_len,
	        err) == -1) {
		err_set(err, ERR_INVALID, "%s must be base64 of 1 to %zu bytes", name,
		    sizeof(out->signature));
		return -1;
	}
	return 0;
}

/* other_veks: an optional array of the vTPM's other vEKs, base64 each. */
static int
cp_other_veks(const json_t *body, struct ca_ek_req *req, struct err *err)
{
	const json_t *a = cp_get(body, "other_veks"), *v;
	const size_t max = sizeof(req->other_veks) / sizeof(req->other_veks[0]);
	const char *s;
	size_t i;

	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > max)
		return err_set(err, ERR_INVALID,
		    "other_veks must be an array of at most %zu base64 TPM2B_PUBLIC", max);
	json_array_foreach(a, i, v) {
		size_t *len = &req->other_veks_len[i];

		if ((s = json_string_value(v)) == NULL ||
		    base64_decode(s, req->other_veks[i], CA_PUBLIC_MAX, len) == -1 || *len == 0)
			return err_set(err, ERR_INVALID,
			    "other_veks[%zu] must be base64 of 1 to %d bytes", i, CA_PUBLIC_MAX);
	}
	req->n_other_veks = json_array_size(a);
	return 0;
}

static int
cp_ek_request(const json_t *body, struct ca_ek_req *req, struct err *err)
{
	static const char *const known[] = {"ck_certificate", "instance_uuid", "vek_public",
	    "sealed_public", "certify", "quote", "approval_key", "nonce", "other_veks", "whole_set",
	    NULL};
	static const char *const known_key[] = {"x", "y", NULL};
	const json_t *quote, *pcrs, *ak;
	const char *uuid;
	size_t nonce_len = 0;

	if (!json_is_object(body))
		return err_set(err, ERR_INVALID, "the body must be a JSON object");
	if (cp_known(body, NULL, known, err) == -1)
		return -1;
	if (cp_pem(body, "ck_certificate", &req->ck_cert, err) == -1 ||
	    (uuid = cp_string(body, "instance_uuid", err)) == NULL ||
	    cp_uuid(uuid, req->instance_uuid, err) == -1 ||
	    cp_b64(body, "vek_public", req->vek_public, sizeof(req->vek_public),
	        &req->vek_public_len, err) == -1 ||
	    cp_b64(body, "sealed_public", req->sealed_public, sizeof(req->sealed_public),
	        &req->sealed_public_len, err) == -1)
		return -1;
	if (cp_get(body, "nonce") == NULL)
		return err_set(err, ERR_INVALID,
		    "nonce is missing: the evidence must carry a nonce from "
		    "POST /v1/virtualization/nonce");
	if (cp_b64(body, "nonce", req->nonce, sizeof(req->nonce), &nonce_len, err) == -1 ||
	    nonce_len != sizeof(req->nonce))
		return err_set(
		    err, ERR_INVALID, "nonce must be base64 of %zu bytes", sizeof(req->nonce));
	if (cp_get(body, "whole_set") != NULL && !json_is_boolean(cp_get(body, "whole_set")))
		return err_set(err, ERR_INVALID, "whole_set must be true or false");
	req->whole_set = json_is_true(cp_get(body, "whole_set"));
	if (cp_other_veks(body, req, err) == -1 ||
	    cp_signed(body, "certify", &req->certify, err) == -1 ||
	    cp_signed(body, "quote", &req->quote, err) == -1)
		return -1;
	quote = cp_get(body, "quote");
	pcrs = cp_get(quote, "pcrs");
	if (pcrs == NULL)
		return err_set(err, ERR_INVALID, "quote.pcrs is missing");
	if (pcrpolicy_values_parse((json_t *)pcrs, &req->pcr_mask, req->pcrs) == -1)
		return err_set(err, ERR_INVALID,
		    "quote.pcrs must map sha256 PCR numbers (0-23) to 32-byte hexadecimal values");
	ak = cp_get(body, "approval_key");
	if (!json_is_object(ak))
		return err_set(err, ERR_INVALID, "approval_key must be an object with x and y");
	if (cp_known(ak, "approval_key", known_key, err) == -1)
		return -1;
	if (cp_hex(ak, "x", req->approval.x, sizeof(req->approval.x), err) == -1 ||
	    cp_hex(ak, "y", req->approval.y, sizeof(req->approval.y), err) == -1)
		return err_set(err, ERR_INVALID, "approval_key.x and .y must be 32 bytes in hexadecimal");
	return 0;
}

int
ca_parse_ek_request(const struct json_t *body, struct ca_ek_req *req, struct err *err)
{
	memset(req, 0, sizeof(*req));
	if (cp_ek_request((const json_t *)body, req, err) == 0)
		return 0;
	memset(req, 0, sizeof(*req));
	return -1;
}

/* "I=HEX,I=HEX,…" */
static int
cp_pcr_list(const char *text, uint32_t *mask, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    struct err *err)
{
	const char *p = text, *eq, *end;
	char hex[2 * TPM_DIGEST_LEN + 1];
	unsigned long i;
	char *num_end;

	for (;;) {
		if (*p < '0' || *p > '9')
			return err_set(err, ERR_INVALID, "PCR values: expected a PCR number at '%.20s'", p);
		i = strtoul(p, &num_end, 10);
		eq = num_end;
		if (*eq != '=' || i >= TPM_PCRS)
			return err_set(err, ERR_INVALID, "PCR values: expected PCR=HEX (PCR 0-23) at '%.20s'", p);
		end = strchr(eq + 1, ',');
		if (end == NULL)
			end = eq + 1 + strlen(eq + 1);
		if ((size_t)(end - eq - 1) != 2 * TPM_DIGEST_LEN)
			return err_set(err, ERR_INVALID, "PCR %lu: the value must be 32 bytes in hexadecimal", i);
		memcpy(hex, eq + 1, 2 * TPM_DIGEST_LEN);
		hex[2 * TPM_DIGEST_LEN] = '\0';
		if (hex_decode(hex, values[i], TPM_DIGEST_LEN) == -1)
			return err_set(err, ERR_INVALID, "PCR %lu: the value must be 32 bytes in hexadecimal", i);
		if (*mask & (1u << i))
			return err_set(err, ERR_INVALID, "PCR %lu is given twice", i);
		*mask |= 1u << i;
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

int
ca_parse_pcr_values(const char *text, uint32_t *mask, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    struct err *err)
{
	json_error_t jerr;
	json_t *o;
	int ret;

	*mask = 0;
	memset(values, 0, TPM_PCRS * TPM_DIGEST_LEN);
	while (isspace((unsigned char)*text))
		text++;
	if (*text != '{') {
		ret = cp_pcr_list(text, mask, values, err);
	} else if ((o = json_loads(text, 0, &jerr)) == NULL) {
		ret = err_set(err, ERR_INVALID, "PCR values: line %d: %s", jerr.line, jerr.text);
	} else {
		ret = pcrpolicy_values_parse(o, mask, values);
		if (ret == -1)
			err_set(err, ERR_INVALID,
			    "PCR values must map PCR numbers (0-23) to 32-byte hexadecimal values");
		json_decref(o);
	}
	if (ret == -1) {
		*mask = 0;
		memset(values, 0, TPM_PCRS * TPM_DIGEST_LEN);
	}
	return ret;
}

int
ca_parse_serial(const char *s, char out[static CERTS_SERIAL_HEX_MAX + 1])
{
	size_t n;

	out[0] = '\0';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	n = strlen(s);
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return -1;
	while (n > 1 && *s == '0') {
		s++;
		n--;
	}
	if (n > CERTS_SERIAL_HEX_MAX)
		return -1;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}
