/*
 * attest_http.c: vtpm-attest's client of vtpm-ca (docs/ca-api.md): one
 * HTTP/1.1 request with a JSON body per TCP connection, the answer parsed
 * with http-parser and jansson. The CA closes every connection after its
 * answer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "attest.h"

#define AH_TIMEOUT_S    30
#define AH_TLS_ROOT_MAX (64u << 10)

/* How this process checks vtpm-ca's TLS certificate: set once from the
 * command line, the same for every request the command makes. */
static struct tls_peer ah_tls;

/*
 * Takes --ca-tls-root FILE (read now) or --ca-tls-pin sha256:HEX (opt
 * says which); one of them, once. Returns EXIT_OK, or an exit status with
 * the reason said.
 */
int
attest_http_tls_option(const char *cmd, int opt, const char *value)
{
	struct err err;
	uint8_t *pem = NULL;
	size_t len = 0;

	if (ah_tls.root_pem != NULL || ah_tls.pinned)
		return attest_usage(cmd, "give one of --ca-tls-root and --ca-tls-pin, once");
	if (opt == ATTEST_OPT_CA_TLS_PIN) {
		if (tls_pin_parse(value, ah_tls.pin, &err) == -1)
			return attest_usage(cmd, "--ca-tls-pin: %s", err.msg);
		ah_tls.pinned = true;
		return EXIT_OK;
	}
	if (fileio_read(value, AH_TLS_ROOT_MAX, &pem, &len) == -1)
		return attest_fail("--ca-tls-root %s: %s", value, strerror(errno));
	if (tls_roots_check((const char *)pem, len, &err) == -1) {
		free(pem);
		return attest_fail("--ca-tls-root %s: %s", value, err.msg);
	}
	ah_tls.root_pem = (const char *)pem; /* kept until the process ends */
	ah_tls.root_pem_len = len;
	return EXIT_OK;
}

/* Whether url (--ca) can be used with the TLS options given: an https://
 * URL needs --ca-tls-root or --ca-tls-pin. EXIT_OK, or a usage error said;
 * a plain http:// URL is warned once (httpc_check_url). */
int
attest_http_check_url(const char *cmd, const char *url)
{
	struct err err;

	if (httpc_check_url(url, &ah_tls, &err) == -1)
		return attest_usage(cmd, "--ca %s", err.msg);
	return EXIT_OK;
}

/* The check given on the command line (none: plain http:// only). */
const struct tls_peer *
attest_http_tls_peer(void)
{
	return &ah_tls;
}


int
attest_http_json(const char *base_url, const char *method, const char *path,
    const struct json_t *body, int *status, struct json_t **reply, struct err *err)
{
	return httpc_request_url(base_url, attest_http_tls_peer(), "vtpm-attest", AH_TIMEOUT_S,
	    method, path, body, status, reply, err);
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
		err_set(err, inner.kind == ERR_UNTRUSTED ? ERR_UNTRUSTED : ERR_FAILED,
		    "revocation unknown: vtpm-ca at %s: %s", base_url, inner.msg);
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
