/*
 * ca_settings.c: vtpm-ca serve's settings (--config FILE, JSON): the
 * role it serves, challenge lifetime, the limits of open challenges and
 * of valid AK certificates per vEK certificate,
 * certificate validities, the CRL URL and lifetime, with the defaults
 * docs/ca-api.md gives.
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
	s->limits.total = CA_PENDING_MAX;
	s->limits.per_client = CA_PENDING_PER_CLIENT;
	s->limits.per_ek = CA_PENDING_PER_EK;
	s->nonce_ttl = 60;
	s->ak_per_vek = CA_AK_PER_VEK;
	s->validity_ck = 5 * 365 * CA_DAY;
	s->validity_ak = 365 * CA_DAY;
	s->validity_ek = 0; /* TCG EK profile: EK certificates may not expire */
	s->crl_validity = CA_DAY;
}

int
ca_settings_crl_url_ok(const char *url)
{
	size_t n = strlen(url);

	if (n == 0 || n >= sizeof(((struct ca_settings *)0)->crl_url) ||
	    (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
	    url[n - 1] == '/')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (url[i] <= 0x20 || url[i] > 0x7e || url[i] == '?' || url[i] == '#')
			return -1;
	return 0;
}

/* A non-negative integer field, in seconds (or days, times unit). */
static int
ca_settings_int(json_t *o, const char *key, int64_t unit, int64_t *out, struct err *err)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT64_MAX / unit / 2) {
		err_set(err, ERR_FAILED, "%s must be a non-negative integer", key);
		return -1;
	}
	*out = json_integer_value(v) * unit;
	return 0;
}

/* A limit of open challenges: 1 to 1000000. */
static int
ca_settings_limit(json_t *o, const char *key, int64_t *out, struct err *err)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
		return err_set(err, ERR_FAILED, "%s must be an integer from 1 to 1000000", key);
	*out = json_integer_value(v);
	return 0;
}

/* A file name setting, when present: a non-empty string that fits. */
static int
ca_settings_path(const json_t *o, const char *key, char *out, size_t len, struct err *err)
{
	const json_t *v = json_object_get(o, key);
	const char *str = json_string_value(v);

	if (v == NULL)
		return 0;
	if (str == NULL || str[0] == '\0' || strlen(str) >= len)
		return err_set(err, ERR_INVALID, "%s must be a file name", key);
	snprintf(out, len, "%s", str);
	return 0;
}

int
ca_settings_load(const char *path, struct ca_settings *s, struct err *err)
{
	static const char *const known[] = {"role", "listen", "challenge_expiry_seconds",
	    "nonce_expiry_seconds", "challenges_max", "challenges_per_client", "challenges_per_ek",
	    "ak_certificates_per_vek", "nonces_per_client", "ck_validity_days", "ak_validity_days",
	    "ek_validity_days", "crl_url", "crl_validity_seconds", "tls_cert", "tls_key"};
	struct err inner = {0};
	json_error_t jerr;
	const char *key, *str;
	json_t *o, *v;
	size_t i;
	int ret = -1;

	if ((o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		err_set(err, ERR_FAILED, "%s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_object(o)) {
		err_set(err, ERR_FAILED, "%s: the configuration must be a JSON object", path);
		goto out;
	}
	json_object_foreach(o, key, v)
	{
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			err_set(err, ERR_FAILED, "%s: unknown setting \"%s\"", path, key);
			goto out;
		}
	}
	if ((v = json_object_get(o, "role")) != NULL &&
	    (!json_is_string(v) || ca_role_parse(json_string_value(v), &s->role) == -1)) {
		err_set(err, ERR_FAILED, "%s: role must be privacy, virtualization or both", path);
		goto out;
	}
	if ((v = json_object_get(o, "listen")) != NULL) {
		str = json_string_value(v);
		if (str == NULL || strlen(str) >= sizeof(s->listen)) {
			err_set(err, ERR_FAILED, "%s: listen must be HOST:PORT", path);
			goto out;
		}
		snprintf(s->listen, sizeof(s->listen), "%s", str);
	}
	if (ca_settings_path(o, "tls_cert", s->tls_cert, sizeof(s->tls_cert), &inner) == -1 ||
	    ca_settings_path(o, "tls_key", s->tls_key, sizeof(s->tls_key), &inner) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, inner.msg);
		goto out;
	}
	if ((v = json_object_get(o, "crl_url")) != NULL) {
		str = json_string_value(v);
		if (str == NULL || ca_settings_crl_url_ok(str) == -1) {
			err_set(err, ERR_FAILED,
			    "%s: crl_url must be an http:// or https:// URL without a trailing "
			    "'/', query or fragment (at most %zu characters)",
			    path, sizeof(s->crl_url) - 1);
			goto out;
		}
		snprintf(s->crl_url, sizeof(s->crl_url), "%s", str);
	}
	if (ca_settings_int(o, "crl_validity_seconds", 1, &s->crl_validity, &inner) == -1 ||
	    ca_settings_int(o, "challenge_expiry_seconds", 1, &s->challenge_ttl, &inner) == -1 ||
	    ca_settings_int(o, "nonce_expiry_seconds", 1, &s->nonce_ttl, &inner) == -1 ||
	    ca_settings_int(o, "ck_validity_days", CA_DAY, &s->validity_ck, &inner) == -1 ||
	    ca_settings_int(o, "ak_validity_days", CA_DAY, &s->validity_ak, &inner) == -1 ||
	    ca_settings_int(o, "ek_validity_days", CA_DAY, &s->validity_ek, &inner) == -1 ||
	    ca_settings_limit(o, "challenges_max", &s->limits.total, &inner) == -1 ||
	    ca_settings_limit(o, "challenges_per_client", &s->limits.per_client, &inner) == -1 ||
	    ca_settings_limit(o, "challenges_per_ek", &s->limits.per_ek, &inner) == -1 ||
	    ca_settings_limit(o, "ak_certificates_per_vek", &s->ak_per_vek, &inner) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, inner.msg);
		goto out;
	}
	/* Nonces are stateless now (ca_nonce.c): nothing is open to limit. A
	 * configuration written for an older vtpm-ca still starts. */
	if (json_object_get(o, "nonces_per_client") != NULL)
		log_warnx("%s: nonces_per_client no longer applies (a nonce handed out is not "
		          "recorded): remove it",
		    path);
	if (s->crl_validity == 0) {
		err_set(err, ERR_FAILED, "%s: crl_validity_seconds must be at least 1", path);
		goto out;
	}
	ret = 0;
out:
	json_decref(o);
	return ret;
}
