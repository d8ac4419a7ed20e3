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



int
attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, struct err *err)
{
	return httpc_request_url(base_url, "vtpm-attest", AH_TIMEOUT_S, method, path, body, status,
	    reply, err);
}

int
attest_http_status(const char *base_url, const char *serial, struct err *err)
{
	char path[128];
	struct err inner;
	const char *st, *reason;
	json_t *reply = NULL;
	int status, ret = -1;

	snprintf(path, sizeof(path), "/v1/status/%s", serial);
	if (attest_http_json(
	        base_url, "GET", path, NULL, &status, (struct json_t **)&reply, &inner) == -1) {
		err_set(err, ERR_FAILED, "revocation unknown: vtpm-ca at %s: %s", base_url, inner.msg);
		return -1;
	}
	st = json_string_value(json_object_get(reply, "status"));
	reason = json_string_value(json_object_get(reply, "error"));
	if (status == 200 && (json_is_true(json_object_get(reply, "revoked")) ||
	                         (st != NULL && strcmp(st, "revoked") == 0))) {
		st = json_string_value(json_object_get(reply, "reason"));
		err_set(err, ERR_FAILED, "revoked%s%s", st ? ": " : "", st ? st : "");
		ret = 1;
	} else if (status == 200) {
		ret = 0;
	} else {
		err_set(err, ERR_FAILED, "revocation unknown: vtpm-ca answered HTTP %d%s%s", status,
		    reason ? ": " : "", reason ? reason : "");
	}
	json_decref(reply);
	return ret;
}
