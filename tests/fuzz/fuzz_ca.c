/*
 * fuzz_ca.c: libFuzzer target for vtpm-ca's decoders of untrusted request
 * bodies (src/ca/ca_parse.c): the input is parsed as JSON
 * and handed to each request decoder (challenge, certify, EK certificate),
 * and, as text, to the PCR-values and serial-number parsers.
 *
 * Besides memory safety it checks the contracts: a refusal says why and
 * leaves the request zeroed; an accepted request has every length within
 * its field, NUL-terminated strings of the allowed characters, and the
 * same decoding when its JSON is dumped and parsed again.
 *
 * The corpus (tests/fuzz/corpus/ca/) is the requests of a real exchange
 * with vTPMs: CA_CORPUS=DIR tests/integration/ca.sh writes them.
 *
 *   make fuzz-build && build/fuzz/fuzz_ca tests/fuzz/corpus/ca
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca_challenge_req fuzz_ch, fuzz_ch2;
static struct ca_certify_req fuzz_ce, fuzz_ce2;
static struct ca_ek_req fuzz_ek, fuzz_ek2;

static void
fuzz_zeroed(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			abort();
}

static void
fuzz_refused(const char *why, const void *req, size_t len)
{
	if (why[0] == '\0')
		abort();
	fuzz_zeroed(req, len);
}

static void
fuzz_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			abort();
}

static void
fuzz_check_challenge(void)
{
	if ((fuzz_ch.kind != CA_KIND_CK && fuzz_ch.kind != CA_KIND_AK) ||
	    fuzz_ch.ek_cert.len == 0 || fuzz_ch.ek_cert.len > CA_CERT_MAX ||
	    fuzz_ch.n_chain > CA_CHAIN_MAX || fuzz_ch.ek_public_len == 0 ||
	    fuzz_ch.ek_public_len > CA_PUBLIC_MAX || fuzz_ch.key_public_len == 0 ||
	    fuzz_ch.key_public_len > CA_PUBLIC_MAX)
		abort();
	for (size_t i = 0; i < fuzz_ch.n_chain; i++)
		if (fuzz_ch.chain[i].len == 0 || fuzz_ch.chain[i].len > CA_CERT_MAX)
			abort();
	if (fuzz_ch.kind == CA_KIND_CK)
		fuzz_printable(fuzz_ch.host, CERTS_NAME_MAX);
	else if (fuzz_ch.host[0] != '\0')
		abort();
}

static void
fuzz_check_certify(void)
{
	if (strlen(fuzz_ce.id) != CA_ID_HEX || fuzz_ce.secret_len == 0 ||
	    fuzz_ce.secret_len > CREDENTIAL_MAX_SECRET)
		abort();
	for (size_t i = 0; i < CA_ID_HEX; i++)
		if (!isxdigit((unsigned char)fuzz_ce.id[i]) ||
		    isupper((unsigned char)fuzz_ce.id[i]))
			abort();
}

static void
fuzz_check_ek(void)
{
	if (fuzz_ek.ck_cert.len == 0 || fuzz_ek.ck_cert.len > CA_CERT_MAX ||
	    strlen(fuzz_ek.instance_uuid) != CERTS_UUID_LEN || fuzz_ek.vek_public_len == 0 ||
	    fuzz_ek.vek_public_len > CA_PUBLIC_MAX || fuzz_ek.sealed_public_len == 0 ||
	    fuzz_ek.sealed_public_len > CA_PUBLIC_MAX || fuzz_ek.certify.attest_len == 0 ||
	    fuzz_ek.certify.attest_len > CA_ATTEST_MAX || fuzz_ek.quote.attest_len == 0 ||
	    fuzz_ek.quote.attest_len > CA_ATTEST_MAX || fuzz_ek.certify.signature_len == 0 ||
	    fuzz_ek.certify.signature_len > CA_SIG_MAX || fuzz_ek.quote.signature_len == 0 ||
	    fuzz_ek.quote.signature_len > CA_SIG_MAX || fuzz_ek.pcr_mask == 0 ||
	    (fuzz_ek.pcr_mask >> TPM_PCRS) != 0)
		abort();
	for (size_t i = 0; i < CERTS_UUID_LEN; i++)
		if (isupper((unsigned char)fuzz_ek.instance_uuid[i]))
			abort();
}

/* An accepted request decodes the same from its own JSON dump. */
static json_t *
fuzz_again(const json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	json_t *back;

	if (text == NULL)
		return NULL;
	back = json_loads(text, 0, NULL);
	free(text);
	return back;
}

static void
fuzz_json(const json_t *o)
{
	struct err err;
	json_t *back;

	err.msg[0] = '\0';
	if (ca_parse_challenge(o, &fuzz_ch, &err) == 0) {
		fuzz_check_challenge();
		if ((back = fuzz_again(o)) != NULL) {
			if (ca_parse_challenge(back, &fuzz_ch2, &err) != 0 ||
			    memcmp(&fuzz_ch, &fuzz_ch2, sizeof(fuzz_ch)) != 0)
				abort();
			json_decref(back);
		}
	} else {
		fuzz_refused(err.msg, &fuzz_ch, sizeof(fuzz_ch));
	}
	err.msg[0] = '\0';
	if (ca_parse_certify(o, &fuzz_ce, &err) == 0) {
		fuzz_check_certify();
		if ((back = fuzz_again(o)) != NULL) {
			if (ca_parse_certify(back, &fuzz_ce2, &err) != 0 ||
			    memcmp(&fuzz_ce, &fuzz_ce2, sizeof(fuzz_ce)) != 0)
				abort();
			json_decref(back);
		}
	} else {
		fuzz_refused(err.msg, &fuzz_ce, sizeof(fuzz_ce));
	}
	err.msg[0] = '\0';
	if (ca_parse_ek_request(o, &fuzz_ek, &err) == 0) {
		fuzz_check_ek();
		if ((back = fuzz_again(o)) != NULL) {
			if (ca_parse_ek_request(back, &fuzz_ek2, &err) != 0 ||
			    memcmp(&fuzz_ek, &fuzz_ek2, sizeof(fuzz_ek)) != 0)
				abort();
			json_decref(back);
		}
	} else {
		fuzz_refused(err.msg, &fuzz_ek, sizeof(fuzz_ek));
	}
}

static void
fuzz_text(const char *text)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	struct err err;
	uint32_t mask = 0;

	err.msg[0] = '\0';
	if (ca_parse_pcr_values(text, &mask, values, &err) == 0) {
		if (mask == 0 || (mask >> TPM_PCRS) != 0)
			abort();
	} else if (mask != 0 || err.msg[0] == '\0') {
		abort();
	}
	if (ca_parse_serial(text, serial) == 0) {
		size_t n = strlen(serial);
		if (n == 0 || n > CERTS_SERIAL_HEX_MAX || (n > 1 && serial[0] == '0'))
			abort();
		for (size_t i = 0; i < n; i++)
			if (!isxdigit((unsigned char)serial[i]) ||
			    isupper((unsigned char)serial[i]))
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o;
	char *text;

	o = json_loadb((const char *)data, size, 0, NULL);
	if (o != NULL) {
		fuzz_json(o);
		json_decref(o);
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_text(text);
	free(text);
	return 0;
}
