/*
 * test_evidence.c: TPM attestation evidence (src/tpm/evidence.c).
 *
 * - Real evidence from a vTPM (vtpmd instance, libtpms 0.9, tpm2-tools
 *   5.4): an ECC P-256 and an RSA-2048 attestation key made by
 *   tpm2_createak under an RSA EK, their quotes of sha256 PCRs 0, 1 and 16
 *   (all zero) with nonce 0011223344556677, and the ECC key's
 *   tpm2_certify of a sealed data object (qualifyingData 00ff55aa, which
 *   tpm2-tools always passes). Every field is read as the TPM wrote it,
 *   Names are those the TPM computed, and every signature verifies.
 * - The parsers on crafted bytes: truncation at every length, every byte
 *   after the structure, a wrong magic, other attestation types, oversized
 *   or malformed PCR selections, a bank twice, a clockInfo.safe of 2,
 *   Names and digests larger than their fields; public areas of every
 *   kind, malformed ones and those whose key is inconsistent.
 * - Signatures of every scheme and hash from software keys whose public
 *   areas are built here (RSASSA, RSAPSS, ECDSA over P-256 and P-384), and
 *   the refusals: scheme or hash other than the key's, unrestricted or
 *   decryption keys, a point off the curve, malformed signatures.
 * - PCR digests (order of banks and PCRs), quote and certification checks
 *   and every rule of evidence_check_clock().
 *
 * Inputs are passed in buffers of exactly their length, so that the
 * sanitizers catch a read past one. tests/integration/evidence.sh checks
 * the same code against evidence made on the spot, and tpm2_checkquote.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "common/common.h"
#include "tpm/tpm.h"

/* ---- real evidence ---- */

static const char ak_pub_hex[] =
    "00580023000b00050072000000100018000b00030010002042350502e3470a7bc3f11cb4505af3f9"
    "817f10340d2dda166425b9293ba0398200205bd64c70301d975ea500479342b741839d7e4213abbf"
    "071b9c33374818583671";
static const char q_msg_hex[] =
    "ff54434780180022000b77c819cf3696e4c61e504eaeb399b522ba325ed621dfacc2cccb69381dfa"
    "38750008001122334455667700000000000001df0000000100000000012019102300163636000000"
    "01000b0303000100202ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452"
    "d4";
static const char q_sig_hex[] =
    "0018000b00204154833cc950bc777c82f8f4c0db5ba618b2a27cb9b9b34b58bc42337c2bf20b0020"
    "889d547440df395a97a8eb9f20ebf7614baa3aa781dc52d78b1bcbcd33d06008";
static const char akr_pub_hex[] =
    "01180001000b00050072000000100014000b0800000000000100b7c1be31a4708eebfdc6ab991b03"
    "97df73abb3cb4021f1ef3d32f01af860f9a9e6fced35f4d064db46c8553484b082f45e5983e32e83"
    "1a6752af52e7f5b57d25db01b887794f4139ba3db882f88356ceddb022ea39d0667b10c28662c682"
    "7bfa60bbaf9bea5bcb07d77ee9f8144415979d5183ee177a8782e0d7c68e252188c4b5a6f4075c49"
    "3d5801a0183e128ceb2302b5b3565a3ef453248b832deaa459608e70aee9b117694c527ff0c274ef"
    "b5c78d31b7fa44d7c2f06ad5f7fab72e0148c92d359d1e6a2b919b1abd4cc70bde319636c230dcef"
    "38b6be5ded84e42447945815eab87db15dfd01ed11460ceaaad29d3583d475b4c50442b9bcf382c8"
    "06ab";
static const char qr_sig_hex[] =
    "0014000b01002e1305637c512e589deeb2ebeff80d18b7c351cbfedd19ab245c04b05712bf70c000"
    "a9ffff7339ba9886ba7e948b3e675db0cd7559a94f86581d0f33c2da9bae75a24dd99231a9a5aa16"
    "b48440e772dbb24415566024b1db1adaf49352d156c4652948445b2b663d7f3085d23beaa8f40433"
    "775c690ff88686a082280649d5f019ae883bed8e1ae1b5342bcc4675c65fe1f0c5ea866b441529d3"
    "7a51e1f59e7eb28a380564bf4aad8dc14295d14d15079ceadc4c427df6e493ce9059f155eea55c8b"
    "77128466b4ebdef74222103ad6d8f72732f03309365507484ecf6e01f21f56c263b54f2f9208d5af"
    "5d8ece8cf6b8c9cfad4f81552334221dbcfed40de87e";
static const char ek_pub_hex[] =
    "013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b"
    "331469aa0006008000430010080000000000010085ecb15bb66ae37622c93eb10fc4ad1962bb5f83"
    "bba4ec72ea60f16239812a298be06abc53f26c67d99c328f831a88a3fc42a311ee24a0bd93fdae1d"
    "46a5a36dfd5e36113fb68127c4f074c0b97bf9d52b6f16bfeeabcf417f13a93a68985905df69017a"
    "0c775df9406469ca0afa7fd311fc8bd3a9982ccc2b2f16e76f4900a5bf3f8233f5e34a5d45672aee"
    "64357f486585684a53dc7af114ef771d8a3a89b025916364da3fec873916e163dbdb9df142790af8"
    "b1d0bc658291de4e79ddc63f13f9885551d73b9c3cd0dea5946351b389c971fb5e54d807e09edab8"
    "23a64509b8bd8ab58e9460dda45f1780def1a67f2276151d7dbefa726f93a817c12352e3";
static const char seal_pub_hex[] =
    "002e0008000b00000052000000100020b23e20ca98a63806bdd0866a20ea574d56b52248ed2016e5"
    "f5025ae0baad86b7";
static const char cert_attest_hex[] =
    "ff54434780170022000b77c819cf3696e4c61e504eaeb399b522ba325ed621dfacc2cccb69381dfa"
    "3875000400ff55aa0000000000018f0e00000001000000000120191023001636360022000bd1e8ae"
    "978e138d710c7a9573bdad227f154c62a9cc7ed0bb2fe1eacd8f082a690022000b9464a7d246ceda"
    "40b66b0e5d256f4032e2e4260e5a55730b5f18b110fda3272f";
static const char cert_sig_hex[] =
    "0018000b002050f3e1081b75caf9cc3f3ba51094ccebc0989baad4a2b3ce4dadb15b6377ddb00020"
    "991380af1b93244b25dc9f5ecc192dc4050b8364eafa298a63f5dce65f3f75f0";
static const char qr_msg_hex[] =
    "ff54434780180022000b9dc6748977291fd39401a318d855c36dc8b5a8925dd747ed6e580864a7de"
    "bf710008001122334455667700000000000001f60000000100000000012019102300163636000000"
    "01000b0303000100202ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452"
    "d4";

/* Offsets in q_msg: TPM_GENERATED 0, type 4, qualifiedSigner 6, extraData
 * 42, clockInfo 52 (safe at 68), firmwareVersion 69, TPML_PCR_SELECTION
 * 77 (count, then hash 81, sizeofSelect 83, pcrSelect 84), pcrDigest 87. */
#define Q_TYPE         4
#define Q_SAFE         68
#define Q_PCR_COUNT    77
#define Q_SIZEOFSELECT 83

static const char q_signer_hex[] =
    "000b77c819cf3696e4c61e504eaeb399b522ba325ed621dfacc2cccb69381dfa3875";
static const char ak_name_hex[] =
    "000bb85146f925b1006380ce7c48e0820922be876f253404e5b5b776e316f60b0250";
static const char seal_name_hex[] =
    "000bd1e8ae978e138d710c7a9573bdad227f154c62a9cc7ed0bb2fe1eacd8f082a69";
/* SHA-256 of three zero SHA-256 PCR values: the quotes' pcrDigest. */
static const char zero3_digest_hex[] =
    "2ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452d4";
static const uint8_t q_nonce[] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
static const uint8_t cert_extra[] = {0x00, 0xff, 0x55, 0xaa};

/* ---- helpers ---- */

struct buf {
	uint8_t *p;
	size_t len;
};

/* A malloc'd copy of len bytes (at least 1 allocated), of exactly len. */
static struct buf
copy(const uint8_t *p, size_t len)
{
	struct buf b = {malloc(len > 0 ? len : 1), len};

	assert_non_null(b.p);
	if (len > 0)
		memcpy(b.p, p, len);
	return b;
}

/* A malloc'd copy of b with extra zero bytes after it. */
static struct buf
extend(struct buf b, size_t extra)
{
	struct buf e = {calloc(1, b.len + extra), b.len + extra};

	assert_non_null(e.p);
	memcpy(e.p, b.p, b.len);
	return e;
}

static struct buf
unhex(const char *s)
{
	struct buf b = {NULL, strlen(s) / 2};

	b.p = malloc(b.len > 0 ? b.len : 1);
	assert_non_null(b.p);
	assert_int_equal(hex_decode(s, b.p, b.len), 0);
	return b;
}

static void
assert_bytes(const uint8_t *got, size_t got_len, const char *want_hex)
{
	struct buf want = unhex(want_hex);

	assert_int_equal(got_len, want.len);
	assert_memory_equal(got, want.p, want.len);
	free(want.p);
}

static void
assert_zeroed(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		assert_int_equal(b[i], 0);
}

/* parse_attest must refuse b, say why (containing reason when not NULL)
 * and leave its output zeroed. */
static void
attest_refused(struct buf b, const char *reason)
{
	struct evidence_attest a;
	struct err err = {0};

	assert_int_equal(evidence_parse_attest(b.p, b.len, &a, &err), -1);
	assert_true(err.msg[0] != '\0');
	if (reason != NULL && strstr(err.msg, reason) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err.msg, reason);
	assert_zeroed(&a, sizeof(a));
}

static void
public_refused(struct buf b, const char *reason)
{
	struct evidence_public pub;
	struct err err = {0};

	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), -1);
	assert_true(err.msg[0] != '\0');
	if (reason != NULL && strstr(err.msg, reason) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err.msg, reason);
	assert_zeroed(&pub, sizeof(pub));
}

/* verify must refuse, with reason. */
static void
verify_refused(struct buf pub, struct buf msg, struct buf sig, const char *reason)
{
	struct err err = {0};

	assert_int_equal(evidence_verify_signature(
	                     pub.p, pub.len, msg.p, msg.len, sig.p, sig.len, &err),
	    -1);
	if (reason != NULL && strstr(err.msg, reason) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err.msg, reason);
	assert_true(err.msg[0] != '\0');
}

static void
verify_ok(struct buf pub, struct buf msg, struct buf sig)
{
	struct err err = {0};

	if (evidence_verify_signature(
	        pub.p, pub.len, msg.p, msg.len, sig.p, sig.len, &err) != 0)
		fail_msg("refused: %s", err.msg);
}

static struct evidence_attest
parse_ok(struct buf b)
{
	struct evidence_attest a;
	struct err err = {0};

	if (evidence_parse_attest(b.p, b.len, &a, &err) != 0)
		fail_msg("refused: %s", err.msg);
	return a;
}

/* The real quote, unmarshalled by tpm2-tss for crafting variants. */
static TPMS_ATTEST
q_struct(void)
{
	struct buf q = unhex(q_msg_hex);
	TPMS_ATTEST at;
	size_t off = 0;

	assert_int_equal(Tss2_MU_TPMS_ATTEST_Unmarshal(q.p, q.len, &off, &at), TSS2_RC_SUCCESS);
	free(q.p);
	return at;
}

static struct buf
marshal_attest(const TPMS_ATTEST *at)
{
	uint8_t out[sizeof(TPMS_ATTEST)];
	size_t off = 0;

	assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(at, out, sizeof(out), &off), TSS2_RC_SUCCESS);
	return copy(out, off);
}

/* A TPM2B_PUBLIC: the marshalled t after its size. */
static struct buf
marshal_public(const TPMT_PUBLIC *t)
{
	uint8_t out[2 + sizeof(TPMT_PUBLIC)];
	size_t off = 2;

	assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(t, out, sizeof(out), &off), TSS2_RC_SUCCESS);
	out[0] = (uint8_t)((off - 2) >> 8);
	out[1] = (uint8_t)(off - 2);
	return copy(out, off);
}

static TPMT_PUBLIC
unmarshal_public(const char *hex)
{
	struct buf b = unhex(hex);
	TPMT_PUBLIC t;
	size_t off = 0;

	assert_int_equal(
	    Tss2_MU_TPMT_PUBLIC_Unmarshal(b.p + 2, b.len - 2, &off, &t), TSS2_RC_SUCCESS);
	free(b.p);
	return t;
}

static struct buf
marshal_signature(const TPMT_SIGNATURE *s)
{
	uint8_t out[sizeof(TPMT_SIGNATURE)];
	size_t off = 0;

	assert_int_equal(
	    Tss2_MU_TPMT_SIGNATURE_Marshal(s, out, sizeof(out), &off), TSS2_RC_SUCCESS);
	return copy(out, off);
}

/* ---- parse_attest ---- */

static void
test_attest_quote(void **state)
{
	struct buf q = unhex(q_msg_hex);
	struct evidence_attest a = parse_ok(q);

	(void)state;
	assert_int_equal(a.type, EVIDENCE_ST_QUOTE);
	assert_bytes(a.signer, a.signer_len, q_signer_hex);
	assert_bytes(a.extra, a.extra_len, "0011223344556677");
	assert_int_equal(a.clock.clock, 479);
	assert_int_equal(a.clock.reset_count, 1);
	assert_int_equal(a.clock.restart_count, 0);
	assert_true(a.clock.safe);
	assert_true(a.firmware == UINT64_C(0x2019102300163636));
	assert_int_equal(a.pcrs.count, 1);
	assert_int_equal(a.pcrs.bank[0].hash_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(a.pcrs.bank[0].mask, 0x10003);
	assert_bytes(a.pcr_digest, a.pcr_digest_len, zero3_digest_hex);
	assert_int_equal(a.name_len, 0);
	assert_int_equal(a.qualified_name_len, 0);
	free(q.p);
}

static void
test_attest_certify(void **state)
{
	struct buf c = unhex(cert_attest_hex);
	struct evidence_attest a = parse_ok(c);

	(void)state;
	assert_int_equal(a.type, EVIDENCE_ST_CERTIFY);
	assert_bytes(a.signer, a.signer_len, q_signer_hex);
	assert_bytes(a.extra, a.extra_len, "00ff55aa");
	assert_int_equal(a.clock.reset_count, 1);
	assert_bytes(a.name, a.name_len, seal_name_hex);
	assert_bytes(a.qualified_name, a.qualified_name_len,
	    "000b9464a7d246ceda40b66b0e5d256f4032e2e4260e5a55730b5f18b110fda3272f");
	assert_int_equal(a.pcrs.count, 0);
	assert_int_equal(a.pcr_digest_len, 0);
	free(c.p);
}

/* Every proper prefix of a real quote and certification is refused. */
static void
test_attest_truncated(void **state)
{
	const char *hexes[] = {q_msg_hex, cert_attest_hex};

	(void)state;
	for (size_t h = 0; h < 2; h++) {
		struct buf whole = unhex(hexes[h]);

		for (size_t len = 0; len < whole.len; len++) {
			struct buf b = copy(whole.p, len);

			attest_refused(b, len < 6 ? "truncated" : NULL);
			free(b.p);
		}
		free(whole.p);
	}
	attest_refused((struct buf){NULL, 0}, "truncated");
}

static void
test_attest_trailing(void **state)
{
	struct buf q = unhex(q_msg_hex);

	(void)state;
	for (size_t extra = 1; extra <= 3; extra++) {
		struct buf b = extend(q, extra);

		attest_refused(b, "after the TPMS_ATTEST");
		free(b.p);
	}
	free(q.p);
}

static void
test_attest_magic_and_type(void **state)
{
	static const uint16_t others[] = {
	    0x0000, 0x8014, 0x8015, 0x8016, 0x8019, 0x801a, 0x801c, 0xffff};
	struct buf q = unhex(q_msg_hex);

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		q.p[i] ^= 0x01;
		attest_refused(q, "is not TPM_GENERATED_VALUE");
		q.p[i] ^= 0x01;
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		q.p[Q_TYPE] = (uint8_t)(others[i] >> 8);
		q.p[Q_TYPE + 1] = (uint8_t)others[i];
		attest_refused(q, "is neither CERTIFY (0x8017) nor QUOTE (0x8018)");
	}
	/* A QUOTE's body read as a CERTIFY's: malformed or not all used. */
	q.p[Q_TYPE + 1] = 0x17;
	attest_refused(q, NULL);
	free(q.p);
}

/* A TPMS_ATTEST of another type, well formed, is refused for its type. */
static void
test_attest_other_type_well_formed(void **state)
{
	TPMS_ATTEST at = q_struct();
	struct buf b;

	(void)state;
	at.type = TPM2_ST_ATTEST_TIME;
	memset(&at.attested, 0, sizeof(at.attested));
	b = marshal_attest(&at);
	attest_refused(b, "neither CERTIFY");
	free(b.p);
}

static void
test_attest_pcr_selection(void **state)
{
	static const uint32_t counts[] = {2, 16, 17, 0x100, 0xffffffff};
	struct buf q = unhex(q_msg_hex);

	(void)state;
	/* More banks than the selection holds, or than the bytes hold. */
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		q.p[Q_PCR_COUNT] = (uint8_t)(counts[i] >> 24);
		q.p[Q_PCR_COUNT + 1] = (uint8_t)(counts[i] >> 16);
		q.p[Q_PCR_COUNT + 2] = (uint8_t)(counts[i] >> 8);
		q.p[Q_PCR_COUNT + 3] = (uint8_t)counts[i];
		attest_refused(q, "malformed or truncated TPMS_ATTEST");
	}
	free(q.p);
	/* A sizeofSelect larger than a selection holds, or than follows. */
	q = unhex(q_msg_hex);
	for (unsigned int size = 5; size <= 255; size += 25) {
		q.p[Q_SIZEOFSELECT] = (uint8_t)size;
		attest_refused(q, "malformed or truncated TPMS_ATTEST");
	}
	/* No bank: nothing quoted, still well formed when nothing follows. */
	free(q.p);
}

static void
test_attest_banks(void **state)
{
	TPMS_ATTEST at = q_struct();
	TPML_PCR_SELECTION *sel = &at.attested.quote.pcrSelect;
	struct evidence_attest a;
	struct buf b;

	(void)state;
	/* Two banks, a four-byte selection: read in order, as bitmaps. */
	sel->count = 2;
	sel->pcrSelections[1] = (TPMS_PCR_SELECTION){
	    .hash = TPM2_ALG_SHA1, .sizeofSelect = 4, .pcrSelect = {0x80, 0x00, 0x01, 0x80}};
	b = marshal_attest(&at);
	a = parse_ok(b);
	assert_int_equal(a.pcrs.count, 2);
	assert_int_equal(a.pcrs.bank[0].hash_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(a.pcrs.bank[0].mask, 0x10003);
	assert_int_equal(a.pcrs.bank[1].hash_alg, EVIDENCE_ALG_SHA1);
	assert_int_equal(a.pcrs.bank[1].mask, 0x80010080u);
	free(b.p);
	/* The same bank twice. */
	sel->pcrSelections[1].hash = TPM2_ALG_SHA256;
	b = marshal_attest(&at);
	attest_refused(b, "PCR bank sha256 selected twice");
	free(b.p);
	/* No bank at all. */
	sel->count = 0;
	b = marshal_attest(&at);
	a = parse_ok(b);
	assert_int_equal(a.pcrs.count, 0);
	free(b.p);
}

static void
test_attest_fields_refused(void **state)
{
	struct buf q = unhex(q_msg_hex);
	TPMS_ATTEST at;
	struct buf b;

	(void)state;
	q.p[Q_SAFE] = 2;
	attest_refused(q, "clockInfo.safe is 2");
	q.p[Q_SAFE] = 0xff;
	attest_refused(q, "clockInfo.safe is 255");
	free(q.p);
	/* tpm2-tss holds Names of up to 68 bytes; a Name has at most 66. */
	at = q_struct();
	at.qualifiedSigner.size = 68;
	b = marshal_attest(&at);
	attest_refused(b, "qualifiedSigner of 68 bytes");
	free(b.p);
	at = q_struct();
	at.type = TPM2_ST_ATTEST_CERTIFY;
	memset(&at.attested, 0, sizeof(at.attested));
	at.attested.certify.name.size = 67;
	b = marshal_attest(&at);
	attest_refused(b, "certified Name of 67 bytes");
	free(b.p);
	/* A digest or extraData larger than tpm2-tss holds. */
	q = unhex(q_msg_hex);
	q.p[42] = 0x00;
	q.p[43] = 0x41;
	attest_refused(q, "malformed or truncated");
	free(q.p);
}

/* ---- parse_public ---- */

static void
test_public_ak(void **state)
{
	struct buf b = unhex(ak_pub_hex);
	struct evidence_public pub;
	struct err err = {0};

	(void)state;
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.type, EVIDENCE_ALG_ECC);
	assert_int_equal(pub.key, EVIDENCE_KEY_ECC_P256);
	assert_int_equal(pub.name_alg, EVIDENCE_ALG_SHA256);
	assert_int_equal(pub.attributes, 0x00050072);
	assert_int_equal(pub.auth_policy_len, 0);
	assert_int_equal(pub.scheme, EVIDENCE_ALG_ECDSA);
	assert_int_equal(pub.scheme_hash, EVIDENCE_ALG_SHA256);
	assert_int_equal(pub.curve, 0x0003);
	assert_int_equal(pub.ecc_len, 32);
	assert_bytes(pub.ecc_x, pub.ecc_len,
	    "42350502e3470a7bc3f11cb4505af3f9817f10340d2dda166425b9293ba03982");
	assert_int_equal(pub.modulus_len, 0);
	assert_bytes(pub.name, pub.name_len, ak_name_hex);
	assert_true(evidence_key_is_restricted_signing(&pub));
	free(b.p);

	b = unhex(akr_pub_hex);
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.key, EVIDENCE_KEY_RSA_2048);
	assert_int_equal(pub.scheme, EVIDENCE_ALG_RSASSA);
	assert_int_equal(pub.exponent, 65537);
	assert_int_equal(pub.modulus_len, 256);
	assert_int_equal(pub.modulus[0], 0xb7);
	assert_true(evidence_key_is_restricted_signing(&pub));
	free(b.p);
}

static void
test_public_ek_and_sealed(void **state)
{
	struct buf b = unhex(ek_pub_hex);
	struct evidence_public pub;
	struct err err = {0};

	(void)state;
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.key, EVIDENCE_KEY_RSA_2048);
	assert_int_equal(pub.attributes, 0x000300b2);
	assert_int_equal(pub.scheme, EVIDENCE_ALG_NULL);
	assert_bytes(pub.auth_policy, pub.auth_policy_len,
	    "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
	assert_false(evidence_key_is_restricted_signing(&pub));
	free(b.p);

	b = unhex(seal_pub_hex);
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.type, EVIDENCE_ALG_KEYEDHASH);
	assert_int_equal(pub.key, EVIDENCE_KEY_NONE);
	assert_int_equal(pub.attributes, 0x00000052);
	assert_bytes(pub.name, pub.name_len, seal_name_hex);
	assert_false(evidence_key_is_restricted_signing(&pub));
	free(b.p);
}

static void
test_public_malformed(void **state)
{
	const char *hexes[] = {ak_pub_hex, akr_pub_hex, ek_pub_hex, seal_pub_hex};

	(void)state;
	for (size_t h = 0; h < 4; h++) {
		struct buf whole = unhex(hexes[h]);
		struct buf b = extend(whole, 1);

		for (size_t len = 0; len < whole.len; len++) {
			struct buf t = copy(whole.p, len);

			public_refused(t, NULL);
			free(t.p);
		}
		/* One more byte: outside the declared size, then inside it. */
		public_refused(b, "TPM2B_PUBLIC declares");
		b.p[0] = (uint8_t)((whole.len - 1) >> 8);
		b.p[1] = (uint8_t)(whole.len - 1);
		public_refused(b, "1 bytes after the TPMT_PUBLIC");
		free(b.p);
		free(whole.p);
	}
	public_refused((struct buf){NULL, 0}, "truncated");
}

static void
test_public_refused_fields(void **state)
{
	TPMT_PUBLIC t;
	struct buf b;

	(void)state;
	t = unmarshal_public(ak_pub_hex);
	t.nameAlg = TPM2_ALG_SM3_256;
	b = marshal_public(&t);
	public_refused(b, "nameAlg sm3_256");
	free(b.p);
	t.nameAlg = TPM2_ALG_NULL;
	b = marshal_public(&t);
	public_refused(b, "nameAlg NULL");
	free(b.p);
	t = unmarshal_public(ak_pub_hex);
	t.authPolicy.size = 20;
	b = marshal_public(&t);
	public_refused(b, "authPolicy of 20 bytes");
	free(b.p);
	/* P-256 coordinates longer than the curve's. */
	t = unmarshal_public(ak_pub_hex);
	t.unique.ecc.x.size = 33;
	b = marshal_public(&t);
	public_refused(b, "coordinates of 33 and 32 bytes");
	free(b.p);
	/* RSA-2048 with a modulus of another length. */
	t = unmarshal_public(akr_pub_hex);
	t.unique.rsa.size = 255;
	b = marshal_public(&t);
	public_refused(b, "RSA-2048 key with a modulus of 255 bytes");
	free(b.p);
	t = unmarshal_public(akr_pub_hex);
	t.unique.rsa.buffer[0] = 0x7f;
	b = marshal_public(&t);
	public_refused(b, "RSA-2048 key with a modulus of 256 bytes");
	free(b.p);
	/* Type TPM_ALG_NULL: tpm2-tss reads no parameters at all. */
	b = unhex("000a0010000b0000000000000000");
	b.p[1] = (uint8_t)(b.len - 2);
	public_refused(b, NULL);
	free(b.p);
}

static void
test_public_unrecognised_keys(void **state)
{
	struct evidence_public pub;
	struct err err = {0};
	TPMT_PUBLIC t;
	struct buf b;

	(void)state;
	t = unmarshal_public(akr_pub_hex);
	t.parameters.rsaDetail.keyBits = 1024;
	t.unique.rsa.size = 128;
	b = marshal_public(&t);
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.key, EVIDENCE_KEY_NONE);
	assert_int_equal(pub.modulus_len, 0);
	assert_false(evidence_key_is_restricted_signing(&pub));
	free(b.p);
	t = unmarshal_public(ak_pub_hex);
	t.parameters.eccDetail.curveID = TPM2_ECC_NIST_P521;
	b = marshal_public(&t);
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	assert_int_equal(pub.key, EVIDENCE_KEY_NONE);
	assert_int_equal(pub.ecc_len, 0);
	free(b.p);
}

static void
test_restricted_signing(void **state)
{
	static const uint32_t needed[] = {EVIDENCE_OBJ_RESTRICTED, EVIDENCE_OBJ_SIGN,
	    EVIDENCE_OBJ_FIXED_TPM, EVIDENCE_OBJ_FIXED_PARENT, EVIDENCE_OBJ_SENSITIVE_ORIG};
	struct buf b = unhex(ak_pub_hex);
	struct evidence_public pub, p;
	struct err err = {0};

	(void)state;
	assert_int_equal(evidence_parse_public(b.p, b.len, &pub, &err), 0);
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		p = pub;
		p.attributes &= ~needed[i];
		assert_false(evidence_key_is_restricted_signing(&p));
	}
	p = pub;
	p.attributes |= EVIDENCE_OBJ_DECRYPT;
	assert_false(evidence_key_is_restricted_signing(&p));
	p = pub;
	p.attributes &= ~EVIDENCE_OBJ_USER_WITH_AUTH;
	assert_true(evidence_key_is_restricted_signing(&p));
	assert_false(evidence_key_is_restricted_signing(NULL));
	free(b.p);
}

/* ---- signatures: real ones ---- */

static void
test_verify_real(void **state)
{
	struct buf ak = unhex(ak_pub_hex), q = unhex(q_msg_hex), qs = unhex(q_sig_hex);
	struct buf akr = unhex(akr_pub_hex), qr = unhex(qr_msg_hex), qrs = unhex(qr_sig_hex);
	struct buf c = unhex(cert_attest_hex), cs = unhex(cert_sig_hex), ek = unhex(ek_pub_hex);

	(void)state;
	verify_ok(ak, q, qs);
	verify_ok(akr, qr, qrs);
	verify_ok(ak, c, cs);
	/* Each key's signature over the other message, and with the other key. */
	verify_refused(ak, c, qs, "does not verify");
	verify_refused(ak, qr, qs, "does not verify");
	verify_refused(akr, q, qrs, "does not verify");
	verify_refused(ak, qr, qrs, "algorithm RSASSA is not ECDSA");
	verify_refused(akr, q, qs, "algorithm ECDSA is not RSASSA or RSAPSS");
	verify_refused(ek, qr, qrs, "not those of a restricted signing key");
	verify_refused((struct buf){NULL, 0}, q, qs, "public area: truncated");
	free(ak.p), free(q.p), free(qs.p), free(akr.p), free(qr.p), free(qrs.p);
	free(c.p), free(cs.p), free(ek.p);
}

/* Any one byte of the message or signature changed: refused. */
static void
test_verify_tampered(void **state)
{
	struct buf ak = unhex(ak_pub_hex), q = unhex(q_msg_hex), qs = unhex(q_sig_hex);

	(void)state;
	for (size_t i = 0; i < q.len; i++) {
		q.p[i] ^= 0x40;
		verify_refused(ak, q, qs, "does not verify");
		q.p[i] ^= 0x40;
	}
	for (size_t i = 0; i < qs.len; i++) {
		qs.p[i] ^= 0x01;
		verify_refused(ak, q, qs, NULL);
		qs.p[i] ^= 0x01;
	}
	for (size_t len = 0; len < qs.len; len++) {
		struct buf t = copy(qs.p, len);

		verify_refused(ak, q, t, NULL);
		free(t.p);
	}
	{
		struct buf t = extend(qs, 1);

		verify_refused(ak, q, t, "1 bytes after the TPMT_SIGNATURE");
		free(t.p);
	}
	verify_ok(ak, q, qs);
	free(ak.p), free(q.p), free(qs.p);
}

/* ---- signatures: software keys of every kind ---- */

/* A restricted signing key's public area for k (RSA-2048, P-256 or P-384)
 * with scheme/hash and attributes attrs. */
static struct buf
soft_public(EVP_PKEY *k, uint16_t scheme, uint16_t hash, uint32_t attrs)
{
	TPMT_PUBLIC t = {.nameAlg = TPM2_ALG_SHA256, .objectAttributes = attrs};
	BIGNUM *x = NULL, *y = NULL;
	char group[32];
	size_t glen;

	if (EVP_PKEY_is_a(k, "RSA")) {
		t.type = TPM2_ALG_RSA;
		t.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t.parameters.rsaDetail.scheme.scheme = scheme;
		t.parameters.rsaDetail.scheme.details.anySig.hashAlg = hash;
		t.parameters.rsaDetail.keyBits = 2048;
		assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &x), 1);
		t.unique.rsa.size = 256;
		assert_int_equal(BN_bn2binpad(x, t.unique.rsa.buffer, 256), 256);
	} else {
		size_t size;

		assert_int_equal(
		    EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &glen), 1);
		size = strcmp(group, "secp384r1") == 0 ? 48 : 32;
		t.type = TPM2_ALG_ECC;
		t.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t.parameters.eccDetail.scheme.scheme = scheme;
		t.parameters.eccDetail.scheme.details.anySig.hashAlg = hash;
		t.parameters.eccDetail.curveID =
		    size == 48 ? TPM2_ECC_NIST_P384 : TPM2_ECC_NIST_P256;
		t.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
		assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
		t.unique.ecc.x.size = t.unique.ecc.y.size = (UINT16)size;
		assert_int_equal(BN_bn2binpad(x, t.unique.ecc.x.buffer, (int)size), (int)size);
		assert_int_equal(BN_bn2binpad(y, t.unique.ecc.y.buffer, (int)size), (int)size);
	}
	BN_free(x);
	BN_free(y);
	return marshal_public(&t);
}

#define AK_ATTRS                                                                                   \
	(EVIDENCE_OBJ_RESTRICTED | EVIDENCE_OBJ_SIGN | EVIDENCE_OBJ_FIXED_TPM |                    \
	    EVIDENCE_OBJ_FIXED_PARENT | EVIDENCE_OBJ_SENSITIVE_ORIG | EVIDENCE_OBJ_USER_WITH_AUTH)

/* k's TPMT_SIGNATURE of sig_alg with hash over msg. */
static struct buf
soft_sign(EVP_PKEY *k, uint16_t sig_alg, uint16_t hash, struct buf msg)
{
	const char *md = hash == TPM2_ALG_SHA1     ? "SHA1"
	                 : hash == TPM2_ALG_SHA384 ? "SHA384"
	                 : hash == TPM2_ALG_SHA512 ? "SHA512"
	                                           : "SHA256";
	TPMT_SIGNATURE s = {.sigAlg = sig_alg};
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t sig[512];
	size_t len = sizeof(sig);

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, k, NULL), 1);
	if (sig_alg == TPM2_ALG_RSAPSS) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	}
	assert_int_equal(EVP_DigestSign(ctx, sig, &len, msg.p, msg.len), 1);
	EVP_MD_CTX_free(ctx);
	if (sig_alg == TPM2_ALG_ECDSA) {
		const unsigned char *p = sig;
		ECDSA_SIG *e = d2i_ECDSA_SIG(NULL, &p, (long)len);
		const BIGNUM *r, *sv;

		assert_non_null(e);
		ECDSA_SIG_get0(e, &r, &sv);
		s.signature.ecdsa.hash = hash;
		s.signature.ecdsa.signatureR.size =
		    (UINT16)BN_bn2bin(r, s.signature.ecdsa.signatureR.buffer);
		s.signature.ecdsa.signatureS.size =
		    (UINT16)BN_bn2bin(sv, s.signature.ecdsa.signatureS.buffer);
		ECDSA_SIG_free(e);
	} else {
		s.signature.rsassa.hash = hash;
		s.signature.rsassa.sig.size = (UINT16)len;
		memcpy(s.signature.rsassa.sig.buffer, sig, len);
	}
	return marshal_signature(&s);
}

static void
test_verify_rsa_schemes(void **state)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	struct buf msg = unhex(q_msg_hex), pub, sig;

	(void)state;
	assert_non_null(k);
	/* A key naming RSAPSS-SHA256 takes that alone. */
	pub = soft_public(k, TPM2_ALG_RSAPSS, TPM2_ALG_SHA256, AK_ATTRS);
	sig = soft_sign(k, TPM2_ALG_RSAPSS, TPM2_ALG_SHA256, msg);
	verify_ok(pub, msg, sig);
	free(sig.p);
	sig = soft_sign(k, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, msg);
	verify_refused(
	    pub, msg, sig, "RSASSA with sha256, but the key's scheme is RSAPSS with sha256");
	free(sig.p);
	sig = soft_sign(k, TPM2_ALG_RSAPSS, TPM2_ALG_SHA384, msg);
	verify_refused(pub, msg, sig, "the key's scheme is RSAPSS with sha256");
	free(sig.p);
	free(pub.p);
	/* A key without a scheme takes both, with SHA-256 or SHA-384. */
	pub = soft_public(k, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS);
	for (int pss = 0; pss < 2; pss++) {
		uint16_t alg = pss ? TPM2_ALG_RSAPSS : TPM2_ALG_RSASSA;

		sig = soft_sign(k, alg, TPM2_ALG_SHA256, msg);
		verify_ok(pub, msg, sig);
		free(sig.p);
		sig = soft_sign(k, alg, TPM2_ALG_SHA384, msg);
		verify_ok(pub, msg, sig);
		free(sig.p);
		sig = soft_sign(k, alg, TPM2_ALG_SHA1, msg);
		verify_refused(pub, msg, sig, "hash sha1 is not sha256 or sha384");
		free(sig.p);
		sig = soft_sign(k, alg, TPM2_ALG_SHA512, msg);
		verify_refused(pub, msg, sig, "hash sha512 is not sha256 or sha384");
		free(sig.p);
	}
	/* A signature of the wrong length. */
	sig = soft_sign(k, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, msg);
	sig.p[4] = 0x00;
	sig.p[5] = 0xff;
	sig.len--;
	verify_refused(pub, msg, sig, "255 bytes for an RSA key of 256");
	free(sig.p);
	free(pub.p);
	/* Unrestricted keys and decryption keys prove nothing. */
	sig = soft_sign(k, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, msg);
	pub = soft_public(k, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS & ~EVIDENCE_OBJ_RESTRICTED);
	verify_refused(pub, msg, sig, "not those of a restricted signing key");
	free(pub.p);
	pub = soft_public(k, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS | EVIDENCE_OBJ_DECRYPT);
	verify_refused(pub, msg, sig, "not those of a restricted signing key");
	free(pub.p);
	free(sig.p);
	free(msg.p);
	EVP_PKEY_free(k);
}

static void
test_verify_ecc_curves(void **state)
{
	EVP_PKEY *k256 = EVP_EC_gen("P-256"), *k384 = EVP_EC_gen("P-384");
	struct buf msg = unhex(cert_attest_hex), pub, sig;
	TPMT_PUBLIC t;
	size_t off = 0;

	(void)state;
	assert_non_null(k256);
	assert_non_null(k384);
	pub = soft_public(k384, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, AK_ATTRS);
	sig = soft_sign(k384, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, msg);
	verify_ok(pub, msg, sig);
	free(sig.p);
	sig = soft_sign(k256, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, msg);
	verify_refused(pub, msg, sig, "does not verify");
	free(sig.p);
	free(pub.p);
	/* No scheme: SHA-256 over P-384 and SHA-384 over P-256 too. */
	pub = soft_public(k384, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS);
	sig = soft_sign(k384, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, msg);
	verify_ok(pub, msg, sig);
	free(sig.p);
	free(pub.p);
	pub = soft_public(k256, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS);
	sig = soft_sign(k256, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, msg);
	verify_ok(pub, msg, sig);
	free(pub.p);
	/* A point off the curve. */
	pub = soft_public(k256, TPM2_ALG_NULL, TPM2_ALG_NULL, AK_ATTRS);
	assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(pub.p + 2, pub.len - 2, &off, &t), 0);
	t.unique.ecc.y.buffer[31] ^= 1;
	free(pub.p);
	pub = marshal_public(&t);
	verify_refused(pub, msg, sig, "is not a point of NIST P-256");
	free(pub.p);
	free(sig.p);
	free(msg.p);
	EVP_PKEY_free(k256);
	EVP_PKEY_free(k384);
}

static void
test_verify_ecdsa_malformed(void **state)
{
	struct buf ak = unhex(ak_pub_hex), q = unhex(q_msg_hex), qs = unhex(q_sig_hex), b;
	TPMT_SIGNATURE s;
	size_t off = 0;

	(void)state;
	assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(qs.p, qs.len, &off, &s), 0);
	s.signature.ecdsa.signatureR.size = 0;
	b = marshal_signature(&s);
	verify_refused(ak, q, b, "ECDSA r and s of 0 and 32 bytes");
	free(b.p);
	s.signature.ecdsa.signatureR.size = 33;
	b = marshal_signature(&s);
	verify_refused(ak, q, b, "ECDSA r and s of 33 and 32 bytes");
	free(b.p);
	/* r = 0 and r = n are out of range. */
	s.signature.ecdsa.signatureR.size = 1;
	s.signature.ecdsa.signatureR.buffer[0] = 0;
	b = marshal_signature(&s);
	verify_refused(ak, q, b, NULL);
	free(b.p);
	off = 0;
	assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(qs.p, qs.len, &off, &s), 0);
	s.sigAlg = TPM2_ALG_NULL;
	b = marshal_signature(&s);
	verify_refused(ak, q, b, "algorithm NULL is not ECDSA");
	free(b.p);
	s.sigAlg = TPM2_ALG_ECSCHNORR;
	b = marshal_signature(&s);
	verify_refused(ak, q, b, "is not ECDSA");
	free(b.p);
	free(ak.p), free(q.p), free(qs.p);
}

/* ---- PCR digests and quotes ---- */

static void
test_pcr_digest(void **state)
{
	static struct evidence_pcr_values vals[2];
	struct evidence_pcr_select sel = {.count = 1, .bank = {{EVIDENCE_ALG_SHA256, 0x10003}}};
	uint8_t out[EVIDENCE_DIGEST_MAX], want[EVIDENCE_DIGEST_MAX], cat[32 + 20 + 32];
	unsigned int want_len;
	size_t len;
	struct err err;

	(void)state;
	memset(vals, 0, sizeof(vals));
	vals[0].hash_alg = EVIDENCE_ALG_SHA256;
	vals[0].mask = 0x10003;
	assert_int_equal(
	    evidence_pcr_digest(EVIDENCE_ALG_SHA256, &sel, vals, 1, out, &len, &err),
	    0);
	assert_bytes(out, len, zero3_digest_hex);
	/* Banks in the selection's order, PCRs ascending; unselected values
	 * unused; the digest's hash is the one asked for. */
	vals[0].mask = 0x10007;
	memset(vals[0].value[16], 0x16, 32);
	memset(vals[0].value[2], 0x02, 32);
	vals[1].hash_alg = EVIDENCE_ALG_SHA1;
	vals[1].mask = 0x80;
	memset(vals[1].value[7], 0x07, 20);
	sel = (struct evidence_pcr_select){
	    .count = 2, .bank = {{EVIDENCE_ALG_SHA1, 0x80}, {EVIDENCE_ALG_SHA256, 0x10001}}};
	memset(cat, 0x07, 20);
	memset(cat + 20, 0, 32);
	memset(cat + 52, 0x16, 32);
	assert_int_equal(EVP_Digest(cat, sizeof(cat), want, &want_len, EVP_sha384(), NULL), 1);
	assert_int_equal(
	    evidence_pcr_digest(EVIDENCE_ALG_SHA384, &sel, vals, 2, out, &len, &err),
	    0);
	assert_int_equal(len, 48);
	assert_memory_equal(out, want, 48);
	/* A selected PCR without a value, a bank twice, an unknown hash. */
	sel.bank[1].mask = 0x10009;
	assert_int_equal(
	    evidence_pcr_digest(EVIDENCE_ALG_SHA256, &sel, vals, 2, out, &len, &err),
	    -1);
	assert_non_null(strstr(err.msg, "no value given for sha256 PCRs 3"));
	assert_int_equal(len, 0);
	sel.bank[1].mask = 0x10001;
	vals[1].hash_alg = EVIDENCE_ALG_SHA256;
	assert_int_equal(
	    evidence_pcr_digest(EVIDENCE_ALG_SHA256, &sel, vals, 2, out, &len, &err),
	    -1);
	assert_non_null(strstr(err.msg, "bank sha256 given twice"));
	assert_int_equal(
	    evidence_pcr_digest(TPM2_ALG_SM3_256, &sel, vals, 1, out, &len, &err), -1);
	sel.bank[0].hash_alg = 0x1234;
	assert_int_equal(
	    evidence_pcr_digest(EVIDENCE_ALG_SHA256, &sel, vals, 1, out, &len, &err),
	    -1);
	assert_non_null(strstr(err.msg, "alg 0x1234 has no known digest size"));
}

/* check_quote of the real quote (PCRs 0, 1, 16 all zero) with vals. */
static int
quote_check(const struct evidence_attest *a, const uint8_t *nonce, size_t nonce_len,
    const struct evidence_pcr_values *vals, size_t n, const struct evidence_clock *prev,
    const char *reason)
{
	struct err err = {0};
	int ret = evidence_check_quote(a, nonce, nonce_len, vals, n, prev, &err);

	if (ret == 0 && reason != NULL)
		fail_msg("accepted, expected \"%s\"", reason);
	if (ret != 0 && (reason == NULL || strstr(err.msg, reason) == NULL))
		fail_msg("refused: \"%s\", expected \"%s\"", err.msg, reason != NULL ? reason : "");
	return ret;
}

static void
test_check_quote(void **state)
{
	static struct evidence_pcr_values vals[2];
	struct buf q = unhex(q_msg_hex), c = unhex(cert_attest_hex);
	struct evidence_attest a = parse_ok(q), ca = parse_ok(c);
	struct evidence_clock prev = a.clock;
	uint8_t nonce[8];

	(void)state;
	memset(vals, 0, sizeof(vals));
	vals[0].hash_alg = EVIDENCE_ALG_SHA256;
	vals[0].mask = 0x10003;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 1, NULL, NULL);
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 1, &prev, NULL);
	/* A bank with no PCRs is no bank. */
	vals[1].hash_alg = EVIDENCE_ALG_SHA1;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 2, NULL, NULL);
	/* Nonce: another, shorter, none. */
	memcpy(nonce, q_nonce, sizeof(nonce));
	nonce[7] ^= 1;
	quote_check(&a, nonce, sizeof(nonce), vals, 1, NULL, "extraData (8 bytes) is not the one");
	quote_check(
	    &a, q_nonce, 7, vals, 1, NULL, "extraData (8 bytes) is not the one expected (7");
	quote_check(&a, NULL, 0, vals, 1, NULL, "extraData");
	/* Values: one wrong; more or fewer PCRs; another bank. */
	vals[0].value[1][31] = 1;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 1, NULL, "PCR digest is not the digest");
	vals[0].value[1][31] = 0;
	vals[0].mask = 0x10007;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 1, NULL,
	    "selects sha256 PCRs 0,1,16, the values given are for PCRs 0,1,2,16");
	vals[0].mask = 0x3;
	quote_check(
	    &a, q_nonce, sizeof(q_nonce), vals, 1, NULL, "the values given are for PCRs 0,1");
	vals[0].mask = 0x10003;
	vals[1].mask = 0x1;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 2, NULL,
	    "selects no sha1 PCRs, values are given for PCRs 0");
	quote_check(
	    &a, q_nonce, sizeof(q_nonce), NULL, 0, NULL, "the values given are for PCRs none");
	/* A certification is no quote; a later clockInfo before it. */
	quote_check(
	    &ca, cert_extra, sizeof(cert_extra), vals, 1, NULL, "type 0x8017 (CERTIFY), not QUOTE");
	prev.clock++;
	quote_check(&a, q_nonce, sizeof(q_nonce), vals, 1, &prev, "clock: went backwards");
	quote_check(NULL, q_nonce, sizeof(q_nonce), vals, 1, NULL, "bad arguments");
	free(q.p);
	free(c.p);
}

static void
test_check_certify(void **state)
{
	struct buf q = unhex(q_msg_hex), c = unhex(cert_attest_hex), seal = unhex(seal_pub_hex);
	struct buf ak = unhex(ak_pub_hex);
	struct evidence_attest a = parse_ok(q), ca = parse_ok(c);
	struct err err = {0};

	(void)state;
	assert_int_equal(evidence_check_certify(&ca, seal.p, seal.len, cert_extra,
	                     sizeof(cert_extra), &err),
	    0);
	assert_int_equal(evidence_check_certify(
	                     &ca, seal.p, seal.len, q_nonce, sizeof(q_nonce), &err),
	    -1);
	assert_non_null(strstr(err.msg, "extraData"));
	assert_int_equal(evidence_check_certify(
	                     &ca, ak.p, ak.len, cert_extra, sizeof(cert_extra), &err),
	    -1);
	assert_non_null(strstr(err.msg, "certified Name is not the Name"));
	assert_int_equal(evidence_check_certify(&ca, seal.p, seal.len - 1, cert_extra,
	                     sizeof(cert_extra), &err),
	    -1);
	assert_non_null(strstr(err.msg, "the certified object's public area"));
	assert_int_equal(evidence_check_certify(
	                     &a, seal.p, seal.len, q_nonce, sizeof(q_nonce), &err),
	    -1);
	assert_non_null(strstr(err.msg, "type 0x8018 (QUOTE), not CERTIFY"));
	free(q.p), free(c.p), free(seal.p), free(ak.p);
}

/* ---- clockInfo ---- */

struct clock_case {
	struct evidence_clock prev, now;
	const char *refused; /* NULL: accepted */
};

static void
test_check_clock(void **state)
{
	static const struct clock_case cases[] = {
	    /* One power cycle: clock forward or equal, not back. */
	    {{1000, 5, 2, true}, {1000, 5, 2, true}, NULL},
	    {{1000, 5, 2, true}, {1001, 5, 2, false}, NULL},
	    {{1000, 5, 2, true}, {999, 5, 2, true},
	        "clock: went backwards (999 ms after 1000 ms) "
	        "without a TPM Reset or Restart"},
	    {{1000, 5, 2, true}, {999, 5, 2, false}, "without a TPM Reset or Restart"},
	    /* Restart or Resume: restartCount up; clock back only when unsafe. */
	    {{1000, 5, 2, true}, {1200, 5, 3, true}, NULL},
	    {{1000, 5, 2, true}, {900, 5, 3, false}, NULL},
	    {{1000, 5, 2, true}, {900, 5, 3, true}, "though the TPM reports no greater value"},
	    {{1000, 5, 2, true}, {1200, 5, 1, true}, "restartCount went backwards (1 after 2)"},
	    /* Reset: resetCount up, restartCount anything. */
	    {{1000, 5, 2, true}, {1200, 6, 0, true}, NULL},
	    {{1000, 5, 2, true}, {10, 6, 0, false}, NULL},
	    {{1000, 5, 2, true}, {10, 9, 7, false}, NULL},
	    {{1000, 5, 2, true}, {10, 6, 0, true}, "though the TPM reports no greater value"},
	    {{1000, 5, 2, true}, {2000, 4, 9, true}, "resetCount went backwards (4 after 5)"},
	    /* TPM2_Clear: everything back to zero. */
	    {{1000, 5, 2, true}, {0, 0, 0, true}, "resetCount went backwards"},
	    /* Obfuscated counts: serial-number comparison, modulo 2^32. */
	    {{1000, 0xffffffffu, 7, true}, {1001, 0, 0, true}, NULL},
	    {{1000, 0x10, 7, true}, {1001, 0x8000000f, 0, true}, NULL},
	    {{1000, 0x10, 7, true}, {1001, 0x80000010, 0, true}, "resetCount went backwards"},
	    {{1000, 5, 0xfffffffeu, true}, {1001, 5, 1, true}, NULL},
	    {{1000, 5, 1, true}, {1001, 5, 0xfffffffeu, true}, "restartCount went backwards"},
	};
	struct evidence_clock c = {0};
	struct err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		err.msg[0] = '\0';
		ret = evidence_check_clock(&cases[i].prev, &cases[i].now, &err);
		if (cases[i].refused == NULL && ret != 0)
			fail_msg("case %zu refused: %s", i, err.msg);
		if (cases[i].refused != NULL &&
		    (ret != -1 || strstr(err.msg, cases[i].refused) == NULL))
			fail_msg("case %zu: \"%s\", expected \"%s\"", i, err.msg, cases[i].refused);
	}
	assert_int_equal(evidence_check_clock(NULL, &c, &err), -1);
	assert_int_equal(evidence_check_clock(&c, NULL, NULL), -1);
}

/* A vTPM's vEK set digest (docs/ca-api.md), against values computed apart
 * (Python's hashlib over the same bytes): the members in their types'
 * order, 0x0000 for a type without a vEK. */
static void
test_vek_set_digest(void **state)
{
	uint8_t rsa[6] = {0, 4, 0xaa, 0xbb, 0xcc, 0xdd}, ecc[12], out[32], want[32];
	struct evidence_vek_set set = {0};
	struct err err;

	ecc[0] = 0;
	ecc[1] = 10;
	for (int i = 0; i < 10; i++)
		ecc[2 + i] = (uint8_t)(i + 1);
	set.pub[EVIDENCE_VEK_ECC_P256] = ecc;
	set.len[EVIDENCE_VEK_ECC_P256] = sizeof(ecc);
	assert_int_equal(
	    hex_decode(
	        "4779db0115e84f75344f02a446a3df3624b8f74050c430929a313ac28d0cac3b", want, 32),
	    0);
	assert_int_equal(evidence_vek_set_digest(&set, out, &err), 0);
	assert_memory_equal(out, want, 32);
	/* the same key in the other slot is another set */
	set.pub[EVIDENCE_VEK_ECC_P256] = NULL;
	set.len[EVIDENCE_VEK_ECC_P256] = 0;
	set.pub[EVIDENCE_VEK_RSA_2048] = ecc;
	set.len[EVIDENCE_VEK_RSA_2048] = sizeof(ecc);
	assert_int_equal(evidence_vek_set_digest(&set, out, &err), 0);
	assert_memory_not_equal(out, want, 32);
	/* both types */
	set.pub[EVIDENCE_VEK_RSA_2048] = rsa;
	set.len[EVIDENCE_VEK_RSA_2048] = sizeof(rsa);
	set.pub[EVIDENCE_VEK_ECC_P256] = ecc;
	set.len[EVIDENCE_VEK_ECC_P256] = sizeof(ecc);
	assert_int_equal(
	    hex_decode(
	        "e90e74e109950878677b1e9fc72a3e64410208a2dd245a4c582c1eb5d7793160", want, 32),
	    0);
	assert_int_equal(evidence_vek_set_digest(&set, out, &err), 0);
	assert_memory_equal(out, want, 32);
	/* refused: a size that is not the length, an empty set */
	rsa[1] = 5;
	assert_int_equal(evidence_vek_set_digest(&set, out, &err), -1);
	assert_non_null(strstr(err.msg, "size"));
	memset(&set, 0, sizeof(set));
	assert_int_equal(evidence_vek_set_digest(&set, out, &err), -1);
	assert_non_null(strstr(err.msg, "empty"));
}

/* The vEK evidence's qualifying data (docs/ca-api.md), against a value
 * computed apart (Python's hashlib over the same bytes). */
static void
test_vek_qualifying(void **state)
{
	static const char uuid[] = "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23";
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], pub[12], set[32], out[32], want[32];
	struct err err;

	memset(nonce, 0x11, sizeof(nonce));
	pub[0] = 0;
	pub[1] = 10; /* TPM2B size, then the "TPMT_PUBLIC" 01..0a */
	for (int i = 0; i < 10; i++)
		pub[2 + i] = (uint8_t)(i + 1);
	/* the set of this vEK alone, as an ECC P-256 one (test_vek_set_digest) */
	assert_int_equal(
	    hex_decode("4779db0115e84f75344f02a446a3df3624b8f74050c430929a313ac28d0cac3b", set, 32),
	    0);
	assert_int_equal(
	    hex_decode(
	        "ab2f7e169d4ae61ca0ab5041f1934b7c8404b22e715d294396442a92f9f3ae9b", want, 32),
	    0);
	assert_int_equal(evidence_vek_qualifying(nonce, pub, sizeof(pub), uuid, set, out, &err), 0);
	assert_memory_equal(out, want, 32);
	/* another nonce, UUID, key or set: another digest */
	nonce[31] ^= 1;
	assert_int_equal(evidence_vek_qualifying(nonce, pub, sizeof(pub), uuid, set, out, &err), 0);
	assert_memory_not_equal(out, want, 32);
	nonce[31] ^= 1;
	assert_int_equal(evidence_vek_qualifying(nonce, pub, sizeof(pub),
	                     "3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a24", set, out, &err),
	    0);
	assert_memory_not_equal(out, want, 32);
	set[0] ^= 1;
	assert_int_equal(evidence_vek_qualifying(nonce, pub, sizeof(pub), uuid, set, out, &err), 0);
	assert_memory_not_equal(out, want, 32);
	set[0] ^= 1;
	/* refused: a size that is not the length, a UUID not in lowercase */
	pub[1] = 11;
	assert_int_equal(
	    evidence_vek_qualifying(nonce, pub, sizeof(pub), uuid, set, out, &err), -1);
	assert_non_null(strstr(err.msg, "size"));
	pub[1] = 10;
	assert_int_equal(evidence_vek_qualifying(nonce, pub, sizeof(pub),
	                     "3F1C2A9E-5B7D-4E21-9C0A-7D4B8E6F1A23", set, out, &err),
	    -1);
	assert_non_null(strstr(err.msg, "UUID"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_attest_quote),
	    cmocka_unit_test(test_attest_certify),
	    cmocka_unit_test(test_attest_truncated),
	    cmocka_unit_test(test_attest_trailing),
	    cmocka_unit_test(test_attest_magic_and_type),
	    cmocka_unit_test(test_attest_other_type_well_formed),
	    cmocka_unit_test(test_attest_pcr_selection),
	    cmocka_unit_test(test_attest_banks),
	    cmocka_unit_test(test_attest_fields_refused),
	    cmocka_unit_test(test_public_ak),
	    cmocka_unit_test(test_public_ek_and_sealed),
	    cmocka_unit_test(test_public_malformed),
	    cmocka_unit_test(test_public_refused_fields),
	    cmocka_unit_test(test_public_unrecognised_keys),
	    cmocka_unit_test(test_restricted_signing),
	    cmocka_unit_test(test_verify_real),
	    cmocka_unit_test(test_verify_tampered),
	    cmocka_unit_test(test_verify_rsa_schemes),
	    cmocka_unit_test(test_verify_ecc_curves),
	    cmocka_unit_test(test_verify_ecdsa_malformed),
	    cmocka_unit_test(test_pcr_digest),
	    cmocka_unit_test(test_check_quote),
	    cmocka_unit_test(test_check_certify),
	    cmocka_unit_test(test_check_clock),
	    cmocka_unit_test(test_vek_set_digest),
	    cmocka_unit_test(test_vek_qualifying),
	};

	setenv("TSS2_LOG", "all+none", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
