/*
 * attest_enroll.c: the Privacy CA protocol for a guest's attestation key
 * (docs/ca-api.md): enroll (the whole exchange with the vTPM), and its two
 * halves for plain tpm2-tools, challenge (the CA's TPM2_MakeCredential
 * written as tpm2_makecredential's file) and certify (the secret
 * tpm2_activatecredential recovered).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attest.h"

#define AE_NV_EK_ECC    0x01c0000au
#define AE_NV_EK_RSA    0x01c00002u
#define AE_EK_RSA       0x81010001u
#define AE_EK_ECC       0x81010002u
#define AE_CRED_MAGIC   0xbadcc0deu
#define AE_CRED_VERSION 1u
#define AE_SECRET_MAX   64
#define AE_BLOB_MAX     1024
#define AE_PEM_MAX      (64u << 10)

/* The PEM text of a DER certificate, malloc'd. */
static char *
ae_pem(const uint8_t *der, size_t len)
{
	char *b64 = base64_encode(der, len), *out, *p;
	size_t n;

	if (b64 == NULL)
		return NULL;
	n = strlen(b64);
	out = malloc(n + n / 64 + 64);
	if (out != NULL) {
		p = out + sprintf(out, "-----BEGIN CERTIFICATE-----\n");
		for (size_t i = 0; i < n; i += 64)
			p += sprintf(p, "%.64s\n", b64 + i);
		sprintf(p, "-----END CERTIFICATE-----\n");
	}
	free(b64);
	return out;
}

/* Makes one call to vtpm-ca; EXIT_OK with *reply (the caller frees it), or
 * EXIT_RUNTIME with the CA's error and hint on stderr. */
static int
ae_call(const char *ca, const char *path, json_t *body, json_t **reply)
{
	struct err err;
	const char *hint;
	int status;

	if (attest_http_json(ca, "POST", path, (struct json_t *)body, &status,
	        (struct json_t **)reply, &err) == -1)
		return attest_fail("POST %s at %s: %s", path, ca, err.msg);
	if (status == 200)
		return EXIT_OK;
	attest_fail("vtpm-ca refused %s: %s (HTTP %d)", path,
	    json_string_value(json_object_get(*reply, "error"))
	        ? json_string_value(json_object_get(*reply, "error"))
	        : "no reason given",
	    status);
	if ((hint = json_string_value(json_object_get(*reply, "hint"))) != NULL)
		fprintf(stderr, "vtpm-attest: hint: %s\n", hint);
	json_decref(*reply);
	*reply = NULL;
	return EXIT_RUNTIME;
}

/* POST /v1/privacy/challenge for an AK: *reply holds id, credential_blob,
 * encrypted_secret. */
static int
ae_challenge(const char *ca, const uint8_t *ek_cert, size_t ek_cert_len, const uint8_t *ek_pub,
    size_t ek_pub_len, const uint8_t *ak_pub, size_t ak_pub_len, json_t **reply)
{
	char *pem = ae_pem(ek_cert, ek_cert_len), *ekb = base64_encode(ek_pub, ek_pub_len),
	     *akb = base64_encode(ak_pub, ak_pub_len);
	json_t *body = NULL;
	int ret = EXIT_RUNTIME;

	*reply = NULL;
	if (pem == NULL || ekb == NULL || akb == NULL ||
	    (body = json_pack("{s:s, s:s, s:s, s:s}", "kind", "ak", "ek_certificate", pem,
	         "ek_public", ekb, "key_public", akb)) == NULL) {
		attest_fail("out of memory");
		goto out;
	}
	ret = ae_call(ca, "/v1/privacy/challenge", body, reply);
	if (ret == EXIT_OK && (!json_is_string(json_object_get(*reply, "id")) ||
	                          !json_is_string(json_object_get(*reply, "credential_blob")) ||
	                          !json_is_string(json_object_get(*reply, "encrypted_secret")))) {
		ret = attest_fail("vtpm-ca's challenge lacks id, credential_blob or "
		                  "encrypted_secret");
		json_decref(*reply);
		*reply = NULL;
	}
out:
	json_decref(body);
	free(akb);
	free(ekb);
	free(pem);
	return ret;
}

/* POST /v1/privacy/certify, and the certificate written to out. */
static int
ae_certify(
    const char *ca, const char *id, const uint8_t *secret, size_t secret_len, const char *out)
{
	char *sb = base64_encode(secret, secret_len);
	const char *pem;
	json_t *body = NULL, *reply = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int ret = EXIT_RUNTIME;

	if (sb == NULL || (body = json_pack("{s:s, s:s}", "id", id, "secret", sb)) == NULL) {
		attest_fail("out of memory");
		goto out;
	}
	if ((ret = ae_call(ca, "/v1/privacy/certify", body, &reply)) != EXIT_OK)
		goto out;
	ret = EXIT_RUNTIME;
	pem = json_string_value(json_object_get(reply, "certificate"));
	if (pem == NULL || fileio_write_atomic(out, pem, strlen(pem), 0644) == -1 ||
	    certs_read(out, &der, &der_len) == -1) {
		attest_fail("%s: %s", out,
		    pem == NULL ? "vtpm-ca's answer has no certificate" : strerror(errno));
		goto out;
	}
	printf("AK certificate %s written to %s\n",
	    json_string_value(json_object_get(reply, "serial")) ?: "(no serial)", out);
	ret = EXIT_OK;
out:
	free(der);
	json_decref(reply);
	json_decref(body);
	if (sb != NULL)
		explicit_bzero(sb, strlen(sb));
	free(sb);
	return ret;
}

/* Decodes the challenge's two base64 fields. */
static int
ae_challenge_parts(
    const json_t *reply, uint8_t *blob, size_t *blob_len, uint8_t *enc, size_t *enc_len)
{
	if (base64_decode(json_string_value(json_object_get(reply, "credential_blob")), blob,
	        AE_BLOB_MAX, blob_len) == -1 ||
	    base64_decode(json_string_value(json_object_get(reply, "encrypted_secret")), enc,
	        AE_BLOB_MAX, enc_len) == -1)
		return attest_fail("vtpm-ca's challenge is not base64");
	return EXIT_OK;
}

/* ---- enroll ---- */

static const char ae_enroll_help[] =
    "usage: vtpm-attest enroll --ca URL --tcti TCTI --ak-handle HANDLE [--ek-handle HANDLE]\n"
    "           --out AK.pem\n"
    "\n"
    "Have the Privacy CA certify the attestation key.\n"
    "The manual: vtpm-attest(1), COMMANDS, enroll.\n";

struct ae_tpm_keys {
	uint8_t *ek_cert;
	size_t ek_cert_len;
	uint8_t ek_pub[ATTEST_PUBLIC_MAX], ak_pub[ATTEST_PUBLIC_MAX];
	size_t ek_pub_len, ak_pub_len;
	uint32_t ek_handle; /* 0: made from the template when needed */
};

static int
ae_read_keys(struct attest_tpm *tpm, uint32_t ak, uint32_t ek, struct ae_tpm_keys *k)
{
	struct err why2;
	struct err err;
	bool ecc = true;

	if (attest_tpm_nv_read(tpm, AE_NV_EK_ECC, &k->ek_cert, &k->ek_cert_len, &err) ==
	    -1) {
		ecc = false;
		if (attest_tpm_nv_read(
		        tpm, AE_NV_EK_RSA, &k->ek_cert, &k->ek_cert_len, &why2) == -1)
			return attest_fail("no EK certificate in NV: %s; %s", err.msg, why2.msg);
	}
	k->ek_handle = ek != 0 ? ek : ecc ? AE_EK_ECC : AE_EK_RSA;
	if (attest_tpm_read_public(tpm, k->ek_handle, k->ek_pub, sizeof(k->ek_pub), &k->ek_pub_len,
	        &err) == -1) {
		if (ek != 0)
			return attest_fail("EK: %s", err.msg);
		k->ek_handle = 0;
		if (attest_tpm_ek_public(tpm, ecc, k->ek_pub, sizeof(k->ek_pub), &k->ek_pub_len,
		        &err) == -1)
			return attest_fail("EK: %s", err.msg);
	}
	if (attest_tpm_read_public(
	        tpm, ak, k->ak_pub, sizeof(k->ak_pub), &k->ak_pub_len, &err) == -1)
		return attest_fail("AK: %s", err.msg);
	return EXIT_OK;
}

static int
ae_enroll_run(const char *ca, const char *tcti, uint32_t ak, uint32_t ek, const char *out)
{
	struct ae_tpm_keys *k = calloc(1, sizeof(*k));
	struct attest_tpm *tpm = NULL;
	uint8_t blob[AE_BLOB_MAX], enc[AE_BLOB_MAX], secret[AE_SECRET_MAX];
	size_t blob_len = 0, enc_len = 0, secret_len = 0;
	struct err err;
	json_t *reply = NULL;
	int ret = EXIT_RUNTIME;

	if (k == NULL)
		return attest_fail("out of memory");
	if ((tpm = attest_tpm_open(tcti, &err)) == NULL) {
		attest_fail("%s", err.msg);
		goto out;
	}
	if ((ret = ae_read_keys(tpm, ak, ek, k)) != EXIT_OK ||
	    (ret = ae_challenge(ca, k->ek_cert, k->ek_cert_len, k->ek_pub, k->ek_pub_len, k->ak_pub,
	         k->ak_pub_len, &reply)) != EXIT_OK ||
	    (ret = ae_challenge_parts(reply, blob, &blob_len, enc, &enc_len)) != EXIT_OK)
		goto out;
	ret = EXIT_RUNTIME;
	if (attest_tpm_activate(tpm, ak, k->ek_handle, k->ek_pub, k->ek_pub_len, blob, blob_len,
	        enc, enc_len, secret, sizeof(secret), &secret_len, &err) == -1) {
		attest_fail("%s", err.msg);
		goto out;
	}
	ret = ae_certify(
	    ca, json_string_value(json_object_get(reply, "id")), secret, secret_len, out);
out:
	explicit_bzero(secret, sizeof(secret));
	json_decref(reply);
	attest_tpm_close(tpm);
	if (k != NULL)
		free(k->ek_cert);
	free(k);
	return ret;
}

int
attest_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"tcti", required_argument, NULL, 't'},
	    {"ak-handle", required_argument, NULL, 'a'},
	    {"ek-handle", required_argument, NULL, 'e'},
	    {"out", required_argument, NULL, 'o'},
	    ATTEST_TLS_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *ca = NULL, *tcti = getenv("TPM2TOOLS_TCTI"), *out = NULL;
	uint32_t ak = 0, ek = 0;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ca = optarg; break;
		case 't': tcti = optarg; break;
		case 'o': out = optarg; break;
		case 'a':
			if ((r = attest_parse_handle("enroll", "--ak-handle", optarg, &ak)))
				return r;
			break;
		case 'e':
			if ((r = attest_parse_handle("enroll", "--ek-handle", optarg, &ek)))
				return r;
			break;
		case ATTEST_OPT_CA_TLS_ROOT:
		case ATTEST_OPT_CA_TLS_PIN:
			if ((r = attest_http_tls_option("enroll", c, optarg)) != EXIT_OK)
				return r;
			break;
		case 'h': fputs(ae_enroll_help, stdout); return EXIT_OK;
		case ':': return attest_usage("enroll", "%s needs a value", argv[optind - 1]);
		default: return attest_usage("enroll", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return attest_usage("enroll", "unexpected argument '%s'", argv[optind]);
	if (ca == NULL || ak == 0 || out == NULL)
		return attest_usage("enroll", "--ca, --ak-handle and --out are required");
	if ((r = attest_http_check_url("enroll", ca)) != EXIT_OK)
		return r;
	return ae_enroll_run(ca, tcti, ak, ek, out);
}

/* ---- challenge and certify, for tpm2-tools ---- */

static const char ae_challenge_help[] =
    "usage: vtpm-attest challenge --ca URL --ek-cert FILE --ek-public FILE --ak-public FILE\n"
    "           --out-credential FILE\n"
    "\n"
    "Ask the Privacy CA for a challenge, for tpm2-tools.\n"
    "The manual: vtpm-attest(1), COMMANDS, challenge.\n";

/* Writes tpm2_makecredential's file layout. */
static int
ae_write_credential(
    const char *path, const uint8_t *blob, size_t blob_len, const uint8_t *enc, size_t enc_len)
{
	uint8_t buf[8 + 2 * AE_BLOB_MAX];
	const uint32_t head[2] = {AE_CRED_MAGIC, AE_CRED_VERSION};

	for (int i = 0; i < 2; i++)
		for (int b = 0; b < 4; b++)
			buf[4 * i + b] = (uint8_t)(head[i] >> (24 - 8 * b));
	memcpy(buf + 8, blob, blob_len);
	memcpy(buf + 8 + blob_len, enc, enc_len);
	if (fileio_write_atomic(path, buf, 8 + blob_len + enc_len, 0600) == -1)
		return attest_fail("%s: %s", path, strerror(errno));
	return EXIT_OK;
}

static int
ae_challenge_run(
    const char *ca, const char *ek_cert, const char *ek_pub, const char *ak_pub, const char *out)
{
	uint8_t *cert = NULL, *ekp = NULL, *akp = NULL, blob[AE_BLOB_MAX], enc[AE_BLOB_MAX];
	size_t cert_len = 0, ekp_len = 0, akp_len = 0, blob_len = 0, enc_len = 0;
	json_t *reply = NULL;
	int ret = EXIT_RUNTIME;

	if (certs_read(ek_cert, &cert, &cert_len) == -1) {
		attest_fail("%s: %s", ek_cert,
		    errno == EINVAL ? "not a certificate (PEM or DER)" : strerror(errno));
		goto out;
	}
	if (fileio_read(ek_pub, ATTEST_PUBLIC_MAX, &ekp, &ekp_len) == -1 ||
	    fileio_read(ak_pub, ATTEST_PUBLIC_MAX, &akp, &akp_len) == -1) {
		attest_fail("%s: %s", ekp == NULL ? ek_pub : ak_pub, strerror(errno));
		goto out;
	}
	if ((ret = ae_challenge(ca, cert, cert_len, ekp, ekp_len, akp, akp_len, &reply)) !=
	        EXIT_OK ||
	    (ret = ae_challenge_parts(reply, blob, &blob_len, enc, &enc_len)) != EXIT_OK ||
	    (ret = ae_write_credential(out, blob, blob_len, enc, enc_len)) != EXIT_OK)
		goto out;
	printf("%s\n", json_string_value(json_object_get(reply, "id")));
out:
	json_decref(reply);
	free(akp);
	free(ekp);
	free(cert);
	return ret;
}

int
attest_challenge(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"ek-cert", required_argument, NULL, 'e'},
	    {"ek-public", required_argument, NULL, 'E'},
	    {"ak-public", required_argument, NULL, 'a'},
	    {"out-credential", required_argument, NULL, 'o'},
	    ATTEST_TLS_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *ca = NULL, *ek_cert = NULL, *ek_pub = NULL, *ak_pub = NULL, *out = NULL;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ca = optarg; break;
		case 'e': ek_cert = optarg; break;
		case 'E': ek_pub = optarg; break;
		case 'a': ak_pub = optarg; break;
		case 'o': out = optarg; break;
		case ATTEST_OPT_CA_TLS_ROOT:
		case ATTEST_OPT_CA_TLS_PIN:
			if ((r = attest_http_tls_option("challenge", c, optarg)) != EXIT_OK)
				return r;
			break;
		case 'h': fputs(ae_challenge_help, stdout); return EXIT_OK;
		case ':': return attest_usage("challenge", "%s needs a value", argv[optind - 1]);
		default: return attest_usage("challenge", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return attest_usage("challenge", "unexpected argument '%s'", argv[optind]);
	if (ca == NULL || ek_cert == NULL || ek_pub == NULL || ak_pub == NULL || out == NULL)
		return attest_usage("challenge", "--ca, --ek-cert, --ek-public, --ak-public and "
		                                 "--out-credential are required");
	if ((r = attest_http_check_url("challenge", ca)) != EXIT_OK)
		return r;
	return ae_challenge_run(ca, ek_cert, ek_pub, ak_pub, out);
}

static const char ae_certify_help[] =
    "usage: vtpm-attest certify --ca URL --id ID --secret FILE --out AK.pem\n"
    "\n"
    "Answer the Privacy CA's challenge.\n"
    "The manual: vtpm-attest(1), COMMANDS, certify.\n";

int
attest_certify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"id", required_argument, NULL, 'i'},
	    {"secret", required_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    ATTEST_TLS_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *ca = NULL, *id = NULL, *secret = NULL, *out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int c, r, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ca = optarg; break;
		case 'i': id = optarg; break;
		case 's': secret = optarg; break;
		case 'o': out = optarg; break;
		case ATTEST_OPT_CA_TLS_ROOT:
		case ATTEST_OPT_CA_TLS_PIN:
			if ((r = attest_http_tls_option("certify", c, optarg)) != EXIT_OK)
				return r;
			break;
		case 'h': fputs(ae_certify_help, stdout); return EXIT_OK;
		case ':': return attest_usage("certify", "%s needs a value", argv[optind - 1]);
		default: return attest_usage("certify", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return attest_usage("certify", "unexpected argument '%s'", argv[optind]);
	if (ca == NULL || id == NULL || secret == NULL || out == NULL)
		return attest_usage("certify", "--ca, --id, --secret and --out are required");
	if ((r = attest_http_check_url("certify", ca)) != EXIT_OK)
		return r;
	if (fileio_read(secret, AE_SECRET_MAX, &buf, &len) == -1 || len == 0) {
		ret = attest_fail(
		    "%s: %s", secret, len == 0 && buf != NULL ? "empty" : strerror(errno));
		free(buf);
		return ret;
	}
	ret = ae_certify(ca, id, buf, len, out);
	explicit_bzero(buf, len);
	free(buf);
	return ret;
}
