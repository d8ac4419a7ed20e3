/*
 * ca_api.c: vtpm-ca's routes (docs/ca-api.md) and what their handlers
 * share. Every POST is answered through ca_dispatch(), which writes one
 * audit row per request: what was issued, or why it was refused.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca.h"

#define CA_DAY (24 * 3600)

void
ca_settings_defaults(struct ca_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->role = CA_ROLE_BOTH;
	s->challenge_ttl = 300;
	s->validity_ck = 5 * 365 * CA_DAY;
	s->validity_ak = 365 * CA_DAY;
	s->validity_ek = 0; /* TCG EK profile: EK certificates may not expire */
}

/* A non-negative integer field, in seconds (or days, times unit). */
static int
ca_settings_int(json_t *o, const char *key, int64_t unit, int64_t *out, char *why, size_t why_len)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT64_MAX / unit / 2) {
		snprintf(why, why_len, "%s must be a non-negative integer", key);
		return -1;
	}
	*out = json_integer_value(v) * unit;
	return 0;
}

int
ca_settings_load(const char *path, struct ca_settings *s, char *why, size_t why_len)
{
	static const char *const known[] = {"role", "listen", "challenge_expiry_seconds",
	    "ck_validity_days", "ak_validity_days", "ek_validity_days"};
	char inner[CA_WHY_MAX] = "";
	json_error_t jerr;
	const char *key, *str;
	json_t *o, *v;
	size_t i;
	int ret = -1;

	if ((o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(why, why_len, "%s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(why, why_len, "%s: the configuration must be a JSON object", path);
		goto out;
	}
	json_object_foreach(o, key, v)
	{
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			snprintf(why, why_len, "%s: unknown setting \"%s\"", path, key);
			goto out;
		}
	}
	if ((v = json_object_get(o, "role")) != NULL &&
	    (!json_is_string(v) || ca_role_parse(json_string_value(v), &s->role) == -1)) {
		snprintf(why, why_len, "%s: role must be privacy, virtualization or both", path);
		goto out;
	}
	if ((v = json_object_get(o, "listen")) != NULL) {
		str = json_string_value(v);
		if (str == NULL || strlen(str) >= sizeof(s->listen)) {
			snprintf(why, why_len, "%s: listen must be HOST:PORT", path);
			goto out;
		}
		snprintf(s->listen, sizeof(s->listen), "%s", str);
	}
	if (ca_settings_int(
	        o, "challenge_expiry_seconds", 1, &s->challenge_ttl, inner, sizeof(inner)) == -1 ||
	    ca_settings_int(o, "ck_validity_days", CA_DAY, &s->validity_ck, inner, sizeof(inner)) ==
	        -1 ||
	    ca_settings_int(o, "ak_validity_days", CA_DAY, &s->validity_ak, inner, sizeof(inner)) ==
	        -1 ||
	    ca_settings_int(o, "ek_validity_days", CA_DAY, &s->validity_ek, inner, sizeof(inner)) ==
	        -1) {
		snprintf(why, why_len, "%s: %s", path, inner);
		goto out;
	}
	ret = 0;
out:
	json_decref(o);
	return ret;
}

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

/* ---- GET routes ---- */

static struct api_response
ca_reply_json(int status, json_t *body)
{
	struct api_response r = {.status = status, .body = (struct json_t *)body};

	if (body == NULL)
		return api_error(500, "out of memory", "try again");
	return r;
}

static struct api_response
ca_get_ca(struct ca_server *s, const struct ca_der *cert)
{
	char *pem = certs_pem_encode(cert->der, cert->len);
	char *root = certs_pem_encode(s->root.der, s->root.len);
	json_t *o = NULL;

	if (pem != NULL && root != NULL)
		o = json_pack("{s:s, s:[s]}", "certificate", pem, "chain", root);
	free(root);
	free(pem);
	return ca_reply_json(200, o);
}

static struct api_response
ca_get_status(struct ca_server *s, const char *arg)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	struct ca_status st;
	enum ca_db_rc rc;

	if (ca_parse_serial(arg, serial) == -1)
		return api_error(400, "not a certificate serial number",
		    "give the serial in hexadecimal: GET /v1/status/SERIAL");
	rc = ca_db_status(s->db, serial, &st);
	if (rc == CA_DB_ERROR) {
		log_warnx("status: %s", ca_db_error(s->db));
		return api_error(500, "the records cannot be read", "try again; see vtpm-ca's log");
	}
	if (rc == CA_DB_NOTFOUND)
		return api_error(404, "no certificate with this serial was issued here",
		    "ask the CA that issued it");
	if (!st.revoked)
		return ca_reply_json(
		    200, json_pack("{s:s, s:b, s:n}", "serial", serial, "revoked", 0, "reason"));
	return ca_reply_json(
	    200, json_pack("{s:s, s:b, s:s, s:I}", "serial", serial, "revoked", 1, "reason",
	             st.reason, "revoked_at", (json_int_t)st.revoked_at));
}

/* ---- POST routes ---- */

typedef void (*ca_post_handler)(struct ca_server *s, const struct json_t *body, struct ca_reply *r);

static struct api_response
ca_dispatch(struct ca_server *s, const char *action, ca_post_handler fn, const struct json_t *body)
{
	struct ca_reply r = {0};
	struct api_response out;
	const char *detail;

	if (body == NULL)
		ca_refuse(
		    &r, 400, "send a JSON object (docs/ca-api.md)", "the request has no body");
	else
		fn(s, body, &r);
	if (r.status == 0)
		ca_refuse(&r, 500, "report this as a bug", "the handler gave no answer");
	if (r.outcome == NULL)
		r.outcome = r.status == 200 ? "done" : "refused";
	detail = r.status == 200 ? r.detail : r.error;
	if (ca_db_audit(s->db, time(NULL), action, r.outcome, detail) != CA_DB_OK)
		log_warnx("audit trail: %s", ca_db_error(s->db));
	if (r.status == 200) {
		log_info("%s: %s %s", action, r.outcome, r.detail);
		out.status = 200;
		out.body = r.body;
		return out;
	}
	log_info("%s: %s (%d): %s", action, r.outcome, r.status, r.error);
	json_decref(r.body);
	return api_error(r.status, r.error, r.hint[0] != '\0' ? r.hint : NULL);
}

static bool
ca_serves(const struct ca_server *s, enum ca_role role)
{
	return (s->cfg.role & role) != 0;
}

static struct api_response
ca_not_served(const char *role)
{
	char hint[128];

	snprintf(hint, sizeof(hint),
	    "this vtpm-ca does not serve the %s role; "
	    "start one with --role %s or --role both",
	    role, role);
	return api_error(404, "no such route on this CA", hint);
}

struct api_response
ca_api(void *ctx, const struct api_request *req)
{
	struct ca_server *s = ctx;
	const char *p = req->path;

	if (strncmp(p, "/v1/status/", 11) == 0 && p[11] != '\0') {
		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		return ca_get_status(s, p + 11);
	}
	if (strcmp(p, "/v1/privacy/ca") == 0 || strcmp(p, "/v1/virtualization/ca") == 0) {
		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		return ca_get_ca(s, p[4] == 'p' ? &s->privacy_cert : &s->virt_cert);
	}
	if (strcmp(p, "/v1/privacy/challenge") == 0 || strcmp(p, "/v1/privacy/certify") == 0 ||
	    strcmp(p, "/v1/virtualization/ek-certificate") == 0) {
		if (req->method != API_POST)
			return api_error(405, "method not allowed", "use POST");
		if (p[4] == 'p' && !ca_serves(s, CA_ROLE_PRIVACY))
			return ca_not_served("privacy");
		if (p[4] == 'v' && !ca_serves(s, CA_ROLE_VIRTUALIZATION))
			return ca_not_served("virtualization");
		if (strcmp(p, "/v1/privacy/challenge") == 0)
			return ca_dispatch(s, "privacy/challenge", ca_privacy_challenge, req->body);
		if (strcmp(p, "/v1/privacy/certify") == 0)
			return ca_dispatch(s, "privacy/certify", ca_privacy_certify, req->body);
		return ca_dispatch(
		    s, "virtualization/ek-certificate", ca_virt_ek_certificate, req->body);
	}
	return api_error(404, "no such route",
	    "see docs/ca-api.md: /v1/privacy/{ca,challenge,certify}, "
	    "/v1/virtualization/{ca,ek-certificate}, /v1/status/SERIAL");
}
