/*
 * attest_http.c: vtpm-attest's client of vtpm-ca (docs/ca-api.md): one
 * HTTP/1.1 request with a JSON body per TCP connection, the answer parsed
 * with http-parser and jansson. The CA closes every connection after its
 * answer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "attest.h"

#define AH_TIMEOUT_S 30


static void ah_fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ah_fail(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || why_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

int
attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, char *why, size_t why_len)
{
	return httpc_request_url(base_url, "vtpm-attest", AH_TIMEOUT_S, method, path, body, status,
	    reply, why, why_len) == HTTPC_OK ? 0 : -1;
}

int
attest_http_status(const char *base_url, const char *serial, char *why, size_t why_len)
{
	char path[128], inner[ATTEST_WHY_MAX];
	const char *st, *err;
	json_t *reply = NULL;
	int status, ret = -1;

	snprintf(path, sizeof(path), "/v1/status/%s", serial);
	if (attest_http_json(base_url, "GET", path, NULL, &status, (struct json_t **)&reply, inner,
	        sizeof(inner)) == -1) {
		ah_fail(why, why_len, "revocation unknown: vtpm-ca at %s: %s", base_url, inner);
		return -1;
	}
	st = json_string_value(json_object_get(reply, "status"));
	err = json_string_value(json_object_get(reply, "error"));
	if (status == 200 && (json_is_true(json_object_get(reply, "revoked")) ||
	                         (st != NULL && strcmp(st, "revoked") == 0))) {
		st = json_string_value(json_object_get(reply, "reason"));
		ah_fail(why, why_len, "revoked%s%s", st ? ": " : "", st ? st : "");
		ret = 1;
	} else if (status == 200) {
		ret = 0;
	} else {
		ah_fail(why, why_len, "revocation unknown: vtpm-ca answered HTTP %d%s%s", status,
		    err ? ": " : "", err ? err : "");
	}
	json_decref(reply);
	return ret;
}
