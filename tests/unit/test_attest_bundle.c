/*
 * test_attest_bundle.c: vtpm-attest's parsers (src/attest/attest_bundle.c,
 * from vtpm-attest's archive): the evidence bundle (parse, encode, round trip,
 * refusals), tpm2-tools' PCR file (the layout tpm2_quote -o writes,
 * values spread over several digest lists, every malformation) and PCR
 * specifications. tests/integration/attest.sh reads real files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attest/attest.h"

/* ---- bundles ---- */

static int
parse(const char *json, struct attest_evidence *ev, struct err *err)
{
	return attest_bundle_parse((const uint8_t *)json, strlen(json), ev, err);
}

static const char good[] =
    "{\"attest\": \"/1RDR4AY\", \"signature\": \"ABgACw==\", \"pcrs\": {\"sha256\": "
    "{\"16\": \"0101010101010101010101010101010101010101010101010101010101010101\", "
    "\"0\": \"0000000000000000000000000000000000000000000000000000000000000000\"}, "
    "\"sha1\": {\"31\": \"ffffffffffffffffffffffffffffffffffffffff\"}}}";

static void
test_bundle_parse(void **state)
{
	struct attest_evidence *ev = calloc(1, sizeof(*ev));
	struct err err;

	assert_int_equal(parse(good, ev, &err), 0);
	assert_int_equal(ev->attest_len, 6);
	assert_memory_equal(ev->attest, "\xff\x54\x43\x47\x80\x18", 6);
	assert_int_equal(ev->signature_len, 4);
	assert_int_equal(ev->ak_public_len, 0);
	assert_int_equal(ev->n_pcrs, 2);
	assert_int_equal(ev->pcrs[0].hash_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(ev->pcrs[0].mask, 1u << 16 | 1u);
	assert_int_equal(ev->pcrs[0].value[16][31], 0x01);
	assert_int_equal(ev->pcrs[1].hash_alg, EVIDENCE_ALG_SHA1);
	assert_int_equal(ev->pcrs[1].mask, 1u << 31);
	assert_int_equal(ev->pcrs[1].value[31][19], 0xff);
	free(ev);
}

static void
test_bundle_round_trip(void **state)
{
	struct attest_evidence *ev = calloc(1, sizeof(*ev)), *back = calloc(1, sizeof(*back));
	char *json;
	struct err err;

	assert_int_equal(parse(good, ev, &err), 0);
	ev->ak_public_len = 3;
	memcpy(ev->ak_public, "\x00\x01\x02", 3);
	json = attest_bundle_encode(ev);
	assert_non_null(json);
	assert_int_equal(parse(json, back, &err), 0);
	assert_memory_equal(ev, back, sizeof(*ev));
	free(json);
	free(back);
	free(ev);
}

static void
test_bundle_refusals(void **state)
{
	static const struct {
		const char *json, *reason;
	} bad[] = {
	    {"", "not JSON"},
	    {"[]", "not a JSON object"},
	    {"{\"signature\": \"AA==\", \"pcrs\": {}}", "\"attest\" is missing"},
	    {"{\"attest\": 5, \"signature\": \"AA==\", \"pcrs\": {}}", "not a string"},
	    {"{\"attest\": \"A\", \"signature\": \"AA==\", \"pcrs\": {}}", "not base64"},
	    {"{\"attest\": \"\", \"signature\": \"AA==\", \"pcrs\": {}}", "not base64"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\"}", "\"pcrs\" is missing"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {\"md5\": {}}}",
	        "unknown PCR bank"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {\"sha1\": []}}",
	        "not an object"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {\"sha1\": {\"32\": "
	     "\"\"}}}",
	        "not a PCR index"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {\"sha1\": {\"01\": "
	     "\"\"}}}",
	        "not a PCR index"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {\"sha1\": {\"1\": "
	     "\"00\"}}}",
	        "not 20 bytes in hex"},
	    {"{\"attest\": \"AA==\", \"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {}}",
	        "not JSON"},
	    {"{\"attest\": \"AA==\", \"signature\": \"AA==\", \"pcrs\": {}, \"ak_public\": 1}",
	        "\"ak_public\" is not a string"},
	};
	struct attest_evidence *ev = calloc(1, sizeof(*ev)), zero;
	struct err err;

	memset(&zero, 0, sizeof(zero));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(ev, 0xa5, sizeof(*ev));
		err.msg[0] = '\0';
		assert_int_equal(parse(bad[i].json, ev, &err), -1);
		if (strstr(err.msg, bad[i].reason) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err.msg, bad[i].reason);
		assert_memory_equal(ev, &zero, sizeof(zero));
	}
	free(ev);
}

static void
test_bundle_too_large(void **state)
{
	size_t n = ATTEST_BUNDLE_MAX + 1;
	char *big = malloc(n + 1);
	struct err err;
	struct attest_evidence *ev = calloc(1, sizeof(*ev));

	memset(big, ' ', n);
	big[n] = '\0';
	assert_int_equal(attest_bundle_parse((uint8_t *)big, n, ev, &err), -1);
	assert_non_null(strstr(err.msg, "larger than"));
	free(ev);
	free(big);
}

/* ---- tpm2-tools' PCR file ---- */

#define FILE_MAX (ATTEST_PCRFILE_SIZE + 4 + 4 * AB_PCRFILE_LIST)

static void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A PCR file as tpm2_quote -o writes it for sha256 PCRs 0, 1, 16 and sha1
 * PCR 16, its values (PCR i of bank b: bytes b*64+i) split into lists of
 * per_list digests. Returns its size. */
static size_t
make_pcrfile(uint8_t *f, unsigned int per_list)
{
	static const struct {
		uint16_t alg;
		uint8_t size;
		int pcr;
	} v[] = {{0x000b, 32, 0}, {0x000b, 32, 1}, {0x000b, 32, 16}, {0x0004, 20, 16}};
	unsigned int lists = (4 + per_list - 1) / per_list;

	memset(f, 0, FILE_MAX);
	put_le32(f, 2);
	f[4] = 0x0b, f[6] = 3, f[7] = 0x03, f[9] = 0x01; /* sha256: 0, 1, 16 */
	f[12] = 0x04, f[14] = 3, f[17] = 0x01;           /* sha1: 16 */
	put_le32(f + ATTEST_PCRFILE_SIZE, lists);
	for (unsigned int i = 0; i < 4; i++) {
		uint8_t *l = f + ATTEST_PCRFILE_SIZE + 4 + (i / per_list) * AB_PCRFILE_LIST;
		uint8_t *d = l + 4 + (i % per_list) * AB_PCRFILE_DIGEST;

		put_le32(l, i / per_list == lists - 1 ? 4 - (lists - 1) * per_list : per_list);
		d[0] = v[i].size;
		memset(d + 2, (v[i].alg == 0x000b ? 0 : 64) + v[i].pcr, v[i].size);
	}
	return ATTEST_PCRFILE_SIZE + 4 + lists * AB_PCRFILE_LIST;
}

static void
check_values(const struct evidence_pcr_values *vals, size_t n)
{
	assert_int_equal(n, 2);
	assert_int_equal(vals[0].hash_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(vals[0].mask, 1u << 16 | 3u);
	assert_int_equal(vals[0].value[1][31], 1);
	assert_int_equal(vals[0].value[16][0], 16);
	assert_int_equal(vals[1].hash_alg, EVIDENCE_ALG_SHA1);
	assert_int_equal(vals[1].mask, 1u << 16);
	assert_int_equal(vals[1].value[16][19], 64 + 16);
	assert_int_equal(vals[1].value[16][20], 0);
}

static void
test_pcrfile(void **state)
{
	uint8_t *f = malloc(FILE_MAX);
	struct evidence_pcr_values *vals = calloc(ATTEST_BANKS, sizeof(*vals));
	struct err err;
	size_t len, n;

	for (unsigned int per = 1; per <= 4; per++) {
		len = make_pcrfile(f, per);
		assert_int_equal(attest_pcrfile_parse(f, len, vals, &n, &err), 0);
		check_values(vals, n);
	}
	free(vals);
	free(f);
}

static void
expect_pcrfile_refused(const uint8_t *f, size_t len, const char *reason)
{
	struct evidence_pcr_values *vals = calloc(ATTEST_BANKS, sizeof(*vals));
	uint8_t *copy = malloc(len + 1); /* exactly len bytes are read */
	struct err err = {0};
	size_t n = 99;

	memcpy(copy, f, len);
	assert_int_equal(attest_pcrfile_parse(copy, len, vals, &n, &err), -1);
	assert_int_equal(n, 0);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err.msg, reason);
	free(copy);
	free(vals);
}

static void
test_pcrfile_refusals(void **state)
{
	uint8_t *f = malloc(FILE_MAX);
	size_t len;

	len = make_pcrfile(f, 4);
	expect_pcrfile_refused(f, 10, "too short");
	for (size_t cut = ATTEST_PCRFILE_SIZE + 4; cut < len; cut += 37)
		expect_pcrfile_refused(f, cut, "digest lists");
	expect_pcrfile_refused(f, len - 1, "digest lists");
	f[0] = 17;
	expect_pcrfile_refused(f, len, "17 banks");
	len = make_pcrfile(f, 4);
	f[14] = 5;
	expect_pcrfile_refused(f, len, "a selection of 5 bytes");
	len = make_pcrfile(f, 4);
	f[12] = 0x0b;
	expect_pcrfile_refused(f, len, "selected twice");
	len = make_pcrfile(f, 4);
	f[12] = 0x12; /* sm3_256 */
	expect_pcrfile_refused(f, len, "is not sha1");
	len = make_pcrfile(f, 4);
	f[17] = 0x03; /* sha1 16 and 17: one value short */
	expect_pcrfile_refused(f, len, "fewer values");
	len = make_pcrfile(f, 4);
	f[17] = 0x00; /* sha1 none: one value more */
	expect_pcrfile_refused(f, len, "more values");
	len = make_pcrfile(f, 4);
	f[ATTEST_PCRFILE_SIZE + 4] = 9;
	expect_pcrfile_refused(f, len, "a list of 9 digests");
	len = make_pcrfile(f, 4);
	f[ATTEST_PCRFILE_SIZE + 4 + 4 + 3 * AB_PCRFILE_DIGEST] = 32; /* sha1 value of 32 bytes */
	expect_pcrfile_refused(f, len, "sha1 PCR 16: a value of 32 bytes");
	len = make_pcrfile(f, 4);
	put_le32(f + ATTEST_PCRFILE_SIZE, 0xffffffffu);
	expect_pcrfile_refused(f, len, "digest lists");
	free(f);
}

/* ---- PCR specifications ---- */

static void
test_pcr_spec(void **state)
{
	struct evidence_pcr_values *vals = calloc(ATTEST_BANKS, sizeof(*vals));
	struct evidence_pcr_select sel;
	char spec[256];
	struct err err;
	size_t n;

	assert_int_equal(attest_pcr_spec_parse("sha256:0,1,16", &sel, vals, &n, &err), 0);
	assert_int_equal(sel.count, 1);
	assert_int_equal(sel.bank[0].hash_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(sel.bank[0].mask, 0x10003);
	assert_int_equal(n, 1);
	assert_int_equal(vals[0].mask, 0);
	snprintf(
	    spec, sizeof(spec), "sha1:16=%s+sha256:23", "0102030405060708090a0b0c0d0e0f1011121314");
	assert_int_equal(attest_pcr_spec_parse(spec, &sel, vals, &n, &err), 0);
	assert_int_equal(sel.count, 2);
	assert_int_equal(sel.bank[1].mask, 1u << 23);
	assert_int_equal(vals[0].hash_alg, EVIDENCE_ALG_SHA1);
	assert_int_equal(vals[0].mask, 1u << 16);
	assert_int_equal(vals[0].value[16][19], 0x14);

	static const char *bad[] = {"", "sha256", "md5:1", "sha256:", "sha256:32", "sha256:1=00",
	    "sha256:1+sha256:2", "sha256:x", "sha1:1+sha256:1+sha384:1+sha512:1+sha1:2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (attest_pcr_spec_parse(bad[i], &sel, vals, &n, &err) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(n, 0);
		assert_int_equal(sel.count, 0);
	}
	free(vals);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bundle_parse),
	    cmocka_unit_test(test_bundle_round_trip),
	    cmocka_unit_test(test_bundle_refusals),
	    cmocka_unit_test(test_bundle_too_large),
	    cmocka_unit_test(test_pcrfile),
	    cmocka_unit_test(test_pcrfile_refusals),
	    cmocka_unit_test(test_pcr_spec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
