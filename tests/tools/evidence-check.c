/*
 * evidence-check: src/tpm/evidence.c from the command line, for
 * tests/integration/evidence.sh. Files hold TPM wire formats, as tpm2-tools
 * writes them: PUBLIC a TPM2B_PUBLIC (tpm2_createak -u, tpm2_readpublic
 * -o), ATTEST a TPMS_ATTEST (tpm2_quote -m, tpm2_certify -o), SIGNATURE a
 * TPMT_SIGNATURE (-s, the default "tss" format).
 *
 *   evidence-check public PUBLIC
 *	prints the public area's fields, one "key=value" a line
 *   evidence-check attest ATTEST
 *	prints the attestation's fields, one "key=value" a line
 *   evidence-check verify PUBLIC ATTEST SIGNATURE
 *	checks the signature alone
 *   evidence-check quote PUBLIC ATTEST SIGNATURE NONCE PCRS [PREV]
 *	checks a quote's signature, its nonce (hex, "" for none), the PCR
 *	values PCRS ("sha256:0=HEX,16=HEX+sha1:2=HEX", "-" for none) and,
 *	with PREV, its clockInfo against the last one accepted from the key
 *   evidence-check certify PUBLIC ATTEST SIGNATURE CERTIFIED EXTRA
 *	checks a certification's signature, its qualifying data EXTRA (hex)
 *	and that it certifies the object whose TPM2B_PUBLIC is in CERTIFIED
 *
 * quote and certify print "ok clock=CLOCK:RESET:RESTART:SAFE" (the
 * attestation's clockInfo, in the form PREV takes). Exit status 0, 1 when
 * the evidence is refused (the reason on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define CHECK_MAX_FILE 8192

/* Reads the whole of path into a malloc'd *buf. */
static int
check_read(const char *path, uint8_t **buf, size_t *len)
{
	if (fileio_read(path, CHECK_MAX_FILE, buf, len) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static void
check_print_hex(const char *key, const uint8_t *p, size_t len)
{
	char hex[2 * 512 + 1];

	hex_encode(p, len, hex);
	printf("%s=%s\n", key, hex);
}

/* Decodes hex (any even length up to max bytes) into out. */
static int
check_unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
	*len = strlen(hex) / 2;
	if (strlen(hex) % 2 != 0 || *len > max || hex_decode(hex, out, *len) != 0) {
		fprintf(stderr, "evidence-check: not hex of at most %zu bytes: %s\n", max, hex);
		return -1;
	}
	return 0;
}

static const struct {
	const char *name;
	uint16_t alg;
	size_t size;
} check_banks[] = {
    {"sha1", EVIDENCE_ALG_SHA1, 20},
    {"sha256", EVIDENCE_ALG_SHA256, 32},
    {"sha384", EVIDENCE_ALG_SHA384, 48},
    {"sha512", EVIDENCE_ALG_SHA512, 64},
};

/* The bank named name: its algorithm, and its digest size in *size. */
static uint16_t
check_bank(const char *name, size_t *size)
{
	for (size_t i = 0; i < sizeof(check_banks) / sizeof(check_banks[0]); i++)
		if (strcmp(name, check_banks[i].name) == 0) {
			*size = check_banks[i].size;
			return check_banks[i].alg;
		}
	return 0;
}

/* Parses one bank "ALG:N=HEX,N=HEX" into v. */
static int
check_parse_bank(char *spec, struct evidence_pcr_values *v)
{
	char *colon = strchr(spec, ':'), *item, *save = NULL;
	size_t len, size = 0;

	if (colon == NULL)
		return -1;
	*colon = '\0';
	if ((v->hash_alg = check_bank(spec, &size)) == 0)
		return -1;
	for (item = strtok_r(colon + 1, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		unsigned long pcr;

		if (eq == NULL)
			return -1;
		*eq = '\0';
		pcr = strtoul(item, &end, 10);
		if (*item == '\0' || *end != '\0' || pcr >= EVIDENCE_MAX_PCRS ||
		    check_unhex(eq + 1, v->value[pcr], EVIDENCE_DIGEST_MAX, &len) != 0 ||
		    len != size)
			return -1;
		v->mask |= UINT32_C(1) << pcr;
	}
	return 0;
}

/* Parses PCRS ("-", or banks joined with '+') into vals. */
static int
check_parse_pcrs(const char *spec, struct evidence_pcr_values *vals, size_t *n)
{
	char *copy, *bank, *save = NULL;
	int ret = 0;

	*n = 0;
	if (strcmp(spec, "-") == 0)
		return 0;
	if ((copy = strdup(spec)) == NULL)
		return -1;
	for (bank = strtok_r(copy, "+", &save); bank != NULL && ret == 0;
	     bank = strtok_r(NULL, "+", &save)) {
		if (*n == EVIDENCE_MAX_BANKS || check_parse_bank(bank, &vals[*n]) != 0)
			ret = -1;
		else
			(*n)++;
	}
	free(copy);
	if (ret != 0)
		fprintf(
		    stderr, "evidence-check: PCRS is not BANK:N=HEX,...[+BANK:...]: %s\n", spec);
	return ret;
}

static int
check_parse_clock(const char *spec, struct evidence_clock *c)
{
	unsigned long long clock;
	unsigned int reset, restart, safe;
	char end;

	if (sscanf(spec, "%llu:%u:%u:%u%c", &clock, &reset, &restart, &safe, &end) != 4 ||
	    safe > 1) {
		fprintf(stderr, "evidence-check: PREV is not CLOCK:RESET:RESTART:SAFE: %s\n", spec);
		return -1;
	}
	c->clock = clock;
	c->reset_count = reset;
	c->restart_count = restart;
	c->safe = safe == 1;
	return 0;
}

static void
check_print_clock(const struct evidence_clock *c)
{
	printf("%llu:%u:%u:%d", (unsigned long long)c->clock, c->reset_count, c->restart_count,
	    c->safe ? 1 : 0);
}

static const char *const check_key_names[] = {
    [EVIDENCE_KEY_NONE] = "none",
    [EVIDENCE_KEY_RSA_2048] = "rsa2048",
    [EVIDENCE_KEY_RSA_3072] = "rsa3072",
    [EVIDENCE_KEY_RSA_4096] = "rsa4096",
    [EVIDENCE_KEY_ECC_P256] = "ecc-p256",
    [EVIDENCE_KEY_ECC_P384] = "ecc-p384",
};

static int
check_public(const char *path)
{
	struct evidence_public pub;
	uint8_t *buf = NULL;
	size_t len;
	struct err err;
	int ret = 1;

	if (check_read(path, &buf, &len) != 0)
		goto out;
	if (evidence_parse_public(buf, len, &pub, &err) != 0) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		goto out;
	}
	printf("type=0x%04x\nkey=%s\nname_alg=0x%04x\nattributes=0x%08x\n", pub.type,
	    check_key_names[pub.key], pub.name_alg, pub.attributes);
	printf("scheme=0x%04x\nscheme_hash=0x%04x\n", pub.scheme, pub.scheme_hash);
	printf("restricted_signing=%s\n", evidence_key_is_restricted_signing(&pub) ? "yes" : "no");
	check_print_hex("auth_policy", pub.auth_policy, pub.auth_policy_len);
	check_print_hex("name", pub.name, pub.name_len);
	ret = 0;
out:
	free(buf);
	return ret;
}

static int
check_attest(const char *path)
{
	struct evidence_attest a;
	uint8_t *buf = NULL;
	size_t len;
	struct err err;
	int ret = 1;

	if (check_read(path, &buf, &len) != 0)
		goto out;
	if (evidence_parse_attest(buf, len, &a, &err) != 0) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		goto out;
	}
	printf("type=%s\n", a.type == EVIDENCE_ST_QUOTE ? "quote" : "certify");
	check_print_hex("signer", a.signer, a.signer_len);
	check_print_hex("extra", a.extra, a.extra_len);
	printf("clock=");
	check_print_clock(&a.clock);
	printf("\nfirmware=0x%016llx\n", (unsigned long long)a.firmware);
	if (a.type == EVIDENCE_ST_CERTIFY) {
		check_print_hex("name", a.name, a.name_len);
		check_print_hex("qualified_name", a.qualified_name, a.qualified_name_len);
	} else {
		for (size_t i = 0; i < a.pcrs.count; i++)
			printf(
			    "bank=0x%04x:0x%08x\n", a.pcrs.bank[i].hash_alg, a.pcrs.bank[i].mask);
		check_print_hex("pcr_digest", a.pcr_digest, a.pcr_digest_len);
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Reads PUBLIC, ATTEST and SIGNATURE, verifies the signature and parses
 * the attestation into a. */
static int
check_signed(char **argv, struct evidence_attest *a)
{
	uint8_t *pub = NULL, *msg = NULL, *sig = NULL;
	size_t pub_len, msg_len, sig_len;
	struct err err;
	int ret = -1;

	if (check_read(argv[0], &pub, &pub_len) != 0 || check_read(argv[1], &msg, &msg_len) != 0 ||
	    check_read(argv[2], &sig, &sig_len) != 0)
		goto out;
	if (evidence_verify_signature(pub, pub_len, msg, msg_len, sig, sig_len, &err) !=
	        0 ||
	    evidence_parse_attest(msg, msg_len, a, &err) != 0) {
		fprintf(stderr, "refused: %s\n", err.msg);
		goto out;
	}
	ret = 0;
out:
	free(pub);
	free(msg);
	free(sig);
	return ret;
}

static int
check_quote(char **argv, const char *prev_spec)
{
	struct evidence_pcr_values *vals = NULL;
	struct evidence_clock prev;
	struct evidence_attest a;
	uint8_t nonce[EVIDENCE_DATA_MAX];
	size_t nonce_len, n;
	struct err err;
	int ret = 1;

	if ((vals = calloc(EVIDENCE_MAX_BANKS, sizeof(*vals))) == NULL) {
		perror("evidence-check");
		goto out;
	}
	if (check_unhex(argv[3], nonce, sizeof(nonce), &nonce_len) != 0 ||
	    check_parse_pcrs(argv[4], vals, &n) != 0 ||
	    (prev_spec != NULL && check_parse_clock(prev_spec, &prev) != 0)) {
		ret = 2;
		goto out;
	}
	if (check_signed(argv, &a) != 0)
		goto out;
	if (evidence_check_quote(&a, nonce, nonce_len, vals, n, prev_spec != NULL ? &prev : NULL,
	        &err) != 0) {
		fprintf(stderr, "refused: %s\n", err.msg);
		goto out;
	}
	printf("ok clock=");
	check_print_clock(&a.clock);
	printf("\n");
	ret = 0;
out:
	free(vals);
	return ret;
}

static int
check_certify(char **argv)
{
	struct evidence_attest a;
	uint8_t extra[EVIDENCE_DATA_MAX], *certified = NULL;
	size_t extra_len, certified_len;
	struct err err;
	int ret = 1;

	if (check_unhex(argv[4], extra, sizeof(extra), &extra_len) != 0)
		return 2;
	if (check_read(argv[3], &certified, &certified_len) != 0 || check_signed(argv, &a) != 0)
		goto out;
	if (evidence_check_certify(
	        &a, certified, certified_len, extra, extra_len, &err) != 0) {
		fprintf(stderr, "refused: %s\n", err.msg);
		goto out;
	}
	printf("ok clock=");
	check_print_clock(&a.clock);
	printf("\n");
	ret = 0;
out:
	free(certified);
	return ret;
}

int
main(int argc, char **argv)
{
	struct evidence_attest a;

	if (argc == 3 && strcmp(argv[1], "public") == 0)
		return check_public(argv[2]);
	if (argc == 3 && strcmp(argv[1], "attest") == 0)
		return check_attest(argv[2]);
	if (argc == 5 && strcmp(argv[1], "verify") == 0) {
		if (check_signed(argv + 2, &a) != 0)
			return 1;
		printf("ok\n");
		return 0;
	}
	if ((argc == 7 || argc == 8) && strcmp(argv[1], "quote") == 0)
		return check_quote(argv + 2, argc == 8 ? argv[7] : NULL);
	if (argc == 7 && strcmp(argv[1], "certify") == 0)
		return check_certify(argv + 2);
	fprintf(stderr, "usage: evidence-check public PUBLIC\n"
	                "       evidence-check attest ATTEST\n"
	                "       evidence-check verify PUBLIC ATTEST SIGNATURE\n"
	                "       evidence-check quote PUBLIC ATTEST SIGNATURE NONCE PCRS [PREV]\n"
	                "       evidence-check certify PUBLIC ATTEST SIGNATURE CERTIFIED EXTRA\n");
	return 2;
}
