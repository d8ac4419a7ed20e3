/*
 * fuzz_evidence.c: libFuzzer target for the readers and checkers of TPM
 * attestation evidence (src/tpm/evidence.c), which the CAs and the challenger
 * run on bytes from hosts and guests.
 *
 * The whole input goes to evidence_parse_attest() and
 * evidence_parse_public(). It is then read as pieces, each a 2-byte
 * big-endian length and that many bytes (a missing piece is empty, a short
 * one is cut): 0 the signing key's TPM2B_PUBLIC, 1 a TPMS_ATTEST, 2 its
 * TPMT_SIGNATURE, 3 the expected nonce or qualifyingData, 4 the certified
 * object's TPM2B_PUBLIC, 5 PCR values (taken in the order the quote selects
 * PCRs, bank after bank, wrapping around; zeros when empty), 6 a previous
 * clockInfo (clock 8, resetCount 4, restartCount 4, safe 1 bytes; none
 * when shorter). Pieces 0-2 go to evidence_verify_signature(), piece 1
 * parsed to evidence_check_quote() and evidence_check_certify().
 *
 * Besides memory safety it checks the contracts: a refusal says why and
 * leaves the output zeroed; an answer is within its documented bounds; an
 * accepted signature's key is a restricted signing key; an accepted quote
 * or certification has the expected type and extraData; a clockInfo may
 * follow itself.
 *
 * The corpus (tests/fuzz/corpus/evidence/) is real evidence from a vTPM:
 * EVIDENCE_CORPUS=DIR tests/integration/evidence.sh writes it.
 *
 *   make fuzz-build && build/fuzz/fuzz_evidence tests/fuzz/corpus/evidence
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tpm/tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PIECES 7

struct fuzz_piece {
	const uint8_t *p;
	size_t len;
};

static void
fuzz_zeroed(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			abort();
}

/* Splits data into FUZZ_PIECES pieces. */
static void
fuzz_split(const uint8_t *data, size_t size, struct fuzz_piece pieces[static FUZZ_PIECES])
{
	size_t off = 0;

	for (int i = 0; i < FUZZ_PIECES; i++) {
		size_t len = 0;

		if (size - off >= 2) {
			len = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		}
		if (len > size - off)
			len = size - off;
		pieces[i].p = data + off;
		pieces[i].len = len;
		off += len;
	}
}

static size_t
fuzz_digest_size(uint16_t alg)
{
	switch (alg) {
	case EVIDENCE_ALG_SHA1: return 20;
	case EVIDENCE_ALG_SHA256: return 32;
	case EVIDENCE_ALG_SHA384: return 48;
	case EVIDENCE_ALG_SHA512: return 64;
	default: return 0;
	}
}

static int
fuzz_parse_attest(const uint8_t *data, size_t size, struct evidence_attest *a)
{
	struct err err = {0};

	if (evidence_parse_attest(data, size, a, &err) != 0) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(a, sizeof(*a));
		return -1;
	}
	if ((a->type != EVIDENCE_ST_QUOTE && a->type != EVIDENCE_ST_CERTIFY) ||
	    a->signer_len > EVIDENCE_NAME_MAX || a->extra_len > EVIDENCE_DATA_MAX ||
	    a->name_len > EVIDENCE_NAME_MAX || a->qualified_name_len > EVIDENCE_NAME_MAX ||
	    a->pcr_digest_len > EVIDENCE_DIGEST_MAX || a->pcrs.count > EVIDENCE_MAX_BANKS)
		abort();
	for (size_t i = 0; i < a->pcrs.count; i++)
		for (size_t j = 0; j < i; j++)
			if (a->pcrs.bank[i].hash_alg == a->pcrs.bank[j].hash_alg)
				abort();
	if (evidence_check_clock(&a->clock, &a->clock, &err) != 0)
		abort();
	return 0;
}

static int
fuzz_parse_public(const uint8_t *data, size_t size, struct evidence_public *pub)
{
	struct err err = {0};

	if (evidence_parse_public(data, size, pub, &err) != 0) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(pub, sizeof(*pub));
		return -1;
	}
	if (pub->name_len != 2 + fuzz_digest_size(pub->name_alg) ||
	    pub->auth_policy_len > EVIDENCE_DIGEST_MAX)
		abort();
	switch (pub->key) {
	case EVIDENCE_KEY_RSA_2048:
		if (pub->modulus_len != 256)
			abort();
		break;
	case EVIDENCE_KEY_RSA_3072:
		if (pub->modulus_len != 384)
			abort();
		break;
	case EVIDENCE_KEY_RSA_4096:
		if (pub->modulus_len != 512)
			abort();
		break;
	case EVIDENCE_KEY_ECC_P256:
		if (pub->ecc_len != 32)
			abort();
		break;
	case EVIDENCE_KEY_ECC_P384:
		if (pub->ecc_len != 48)
			abort();
		break;
	case EVIDENCE_KEY_NONE:
		if (pub->modulus_len != 0 || pub->ecc_len != 0)
			abort();
		break;
	}
	return 0;
}

/* PCR values for a's selection from piece: consecutive digests, wrapping. */
static size_t
fuzz_values(const struct evidence_attest *a, const struct fuzz_piece *piece,
    struct evidence_pcr_values *vals)
{
	size_t n = 0, off = 0;

	for (size_t b = 0; b < a->pcrs.count; b++) {
		size_t size = fuzz_digest_size(a->pcrs.bank[b].hash_alg);

		if (size == 0)
			continue;
		vals[n].hash_alg = a->pcrs.bank[b].hash_alg;
		vals[n].mask = a->pcrs.bank[b].mask;
		for (unsigned int i = 0; i < EVIDENCE_MAX_PCRS; i++) {
			if ((vals[n].mask & (UINT32_C(1) << i)) == 0)
				continue;
			for (size_t k = 0; k < size && piece->len > 0; k++) {
				vals[n].value[i][k] = piece->p[off];
				off = (off + 1) % piece->len;
			}
		}
		n++;
	}
	return n;
}

static void
fuzz_clock(const struct fuzz_piece *piece, struct evidence_clock *c)
{
	const uint8_t *p = piece->p;

	c->clock = 0;
	for (int i = 0; i < 8; i++)
		c->clock = c->clock << 8 | p[i];
	c->reset_count = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
	c->restart_count =
	    (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
	c->safe = p[16] & 1;
}

static void
fuzz_checks(const struct evidence_attest *a, const struct fuzz_piece *pieces)
{
	static struct evidence_pcr_values vals[EVIDENCE_MAX_BANKS];
	struct evidence_public certified;
	struct evidence_clock prev;
	uint8_t digest[EVIDENCE_DIGEST_MAX];
	size_t n, digest_len;
	struct err err = {0};
	bool has_prev = pieces[6].len >= 17;

	memset(vals, 0, sizeof(vals));
	n = fuzz_values(a, &pieces[5], vals);
	if (has_prev)
		fuzz_clock(&pieces[6], &prev);
	if (evidence_pcr_digest(EVIDENCE_ALG_SHA256, &a->pcrs, vals, n, digest, &digest_len, &err) != 0 &&
	    err.msg[0] == '\0')
		abort();
	err.msg[0] = '\0';
	if (evidence_check_quote(a, pieces[3].p, pieces[3].len, vals, n, has_prev ? &prev : NULL,
	        &err) == 0) {
		if (a->type != EVIDENCE_ST_QUOTE || a->extra_len != pieces[3].len)
			abort();
	} else if (err.msg[0] == '\0') {
		abort();
	}
	err.msg[0] = '\0';
	if (evidence_check_certify(
	        a, pieces[4].p, pieces[4].len, pieces[3].p, pieces[3].len, &err) == 0) {
		if (a->type != EVIDENCE_ST_CERTIFY || a->extra_len != pieces[3].len ||
		    fuzz_parse_public(pieces[4].p, pieces[4].len, &certified) != 0 ||
		    certified.name_len != a->name_len ||
		    memcmp(certified.name, a->name, a->name_len) != 0)
			abort();
	} else if (err.msg[0] == '\0') {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_piece pieces[FUZZ_PIECES];
	struct evidence_attest a;
	struct evidence_public pub;
	struct err err = {0};

	(void)fuzz_parse_attest(data, size, &a);
	(void)fuzz_parse_public(data, size, &pub);
	fuzz_split(data, size, pieces);
	if (evidence_verify_signature(pieces[0].p, pieces[0].len, pieces[1].p, pieces[1].len,
	        pieces[2].p, pieces[2].len, &err) == 0) {
		if (fuzz_parse_public(pieces[0].p, pieces[0].len, &pub) != 0 ||
		    (pub.attributes & EVIDENCE_OBJ_RESTRICTED) == 0 ||
		    (pub.attributes & EVIDENCE_OBJ_SIGN) == 0 ||
		    (pub.attributes & EVIDENCE_OBJ_DECRYPT) != 0)
			abort();
	} else if (err.msg[0] == '\0') {
		abort();
	}
	if (fuzz_parse_attest(pieces[1].p, pieces[1].len, &a) == 0)
		fuzz_checks(&a, pieces);
	return 0;
}
