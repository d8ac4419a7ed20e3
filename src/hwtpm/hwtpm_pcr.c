/*
 * hwtpm_pcr.c: the host PCRs, read so that the link cannot choose them.
 *
 * vtpmd reports the host PCR values it reads (GET /v1/policy), an
 * administrator approves what it reports (`vtpmctl policy approve
 * --current` signs the PolicyPCR digest of those values, and PolicyAuthorize
 * accepts every approval ever signed), and vtpmd uses them: the approval a
 * start or the CK needs, the values beside a quote. TPM2_PCR_Read needs no
 * authorization, so without a session nothing authenticates its answer: an
 * interposer on the host-TPM link (a discrete TPM's bus, a simulator's TCP
 * link) could make vtpmd report, and the administrator approve, the values
 * of a configuration the host is not in.
 *
 * Each read therefore goes through an HMAC session salted to the pinned SRK
 * (hwtpm_session.c) with the audit attribute: the TPM answers with an HMAC,
 * keyed by the session key that only it and vtpmd know, over rpHash (the
 * PCR update counter, the selection and the values), vtpmd's fresh nonce
 * and the TPM's. vtpmd checks it before it takes a byte of the answer, so
 * an altered or replayed answer is refused as tampering on the link.
 * (Response encryption would not do: PCR_Read's first response parameter
 * is no TPM2B. ESYS's HMAC session would: but its keys live in tpm2-tss's
 * heap, and a vTPM's start, which reads PCRs, must not start it:
 * hwtpm_esys_session.)
 *
 * Cost: one TPM2_StartAuthSession (an ECDH in the TPM) besides the reads,
 * one per 8 PCRs; the session ends with the last read. None is kept
 * between reads: a TPM may hold as few as three loaded sessions, and vtpmd
 * keeps two (ESYS's HMAC session, the policy session: hwtpm_policy_arm).
 */
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_sys.h>

#include "hwtpm.h"
#include "hwtpm_private.h"

#define PCR_READ_MAX 8 /* digests in one TPML_DIGEST: one read's answer */

/* The lowest PCR_READ_MAX PCRs of mask (all of them when fewer). */
static uint32_t
pcr_chunk(uint32_t mask)
{
	uint32_t chunk = 0;
	int n = 0;

	for (int i = 0; i < TPM_PCRS && n < PCR_READ_MAX; i++) {
		if (mask & (1u << i)) {
			chunk |= 1u << i;
			n++;
		}
	}
	return chunk;
}

/* Takes the values of the PCRs in want from a TPM2_PCR_Read answer (got,
 * digests, authenticated) into values[i]. The answer must hold a sha256
 * value for each of them. Returns 0, or -1 with err set. */
static int
pcr_take(uint32_t want, const TPML_PCR_SELECTION *got, const TPML_DIGEST *digests,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	const TPMS_PCR_SELECTION *s = &got->pcrSelections[0];
	bool sha256 = got->count == 1 && s->hash == TPM2_ALG_SHA256;
	uint32_t answered = 0, d = 0;

	for (int i = 0; sha256 && i < TPM_PCRS && i / 8 < s->sizeofSelect; i++) {
		if (!(s->pcrSelect[i / 8] & (1u << (i % 8))))
			continue;
		if (d >= digests->count || digests->digests[d].size != TPM_DIGEST_LEN)
			break;
		answered |= 1u << i;
		d++;
	}
	if (answered == 0)
		return hwtpm_seterr(err, 0, "host TPM has no sha256 bank for the selected PCRs");
	if (answered != want || d != digests->count)
		return hwtpm_seterr(err, 0,
		    "host TPM answered TPM2_PCR_Read with other sha256 PCRs "
		    "(mask 0x%06x) than asked (0x%06x)",
		    answered, want);
	d = 0;
	for (int i = 0; i < TPM_PCRS; i++)
		if (want & (1u << i))
			memcpy(values[i], digests->digests[d++].buffer, TPM_DIGEST_LEN);
	return 0;
}

/*
 * One TPM2_PCR_Read of the PCRs in chunk (at most PCR_READ_MAX) with the
 * audit session s, its answer authenticated (hwtpm_session_check) and
 * taken into values. With more, s goes on (continueSession); without, the
 * TPM ends it with the command. Returns 0, or -1 with err set
 * (ERR_HOST_TPM).
 */
static int
pcr_read_audited(struct hwtpm *hw, struct hwtpm_session *s, uint32_t chunk, bool more,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	struct pcr_selection part = {.mask = chunk};
	TSS2L_SYS_AUTH_COMMAND cmd = {.count = 1};
	TSS2L_SYS_AUTH_RESPONSE rsp = {0};
	TPMA_SESSION attrs = TPMA_SESSION_AUDIT | (more ? TPMA_SESSION_CONTINUESESSION : 0);
	TPML_PCR_SELECTION want, got = {0};
	TPML_DIGEST digests = {0};
	TPM2B_NONCE nonce_tpm;
	UINT32 counter;
	int tries = 0;
	TSS2_RC rc;

	if (hwtpm_selection(&part, &want) == -1)
		return hwtpm_seterr(err, 0, "select host PCRs");
	if (hwtpm_session_begin(s, attrs, &cmd.auths[0]) == -1)
		return hwtpm_seterr(err, 0, "draw a session nonce");
	do {
		rc = Tss2_Sys_PCR_Read_Prepare(hw->sys, &want);
		if (rc == TSS2_RC_SUCCESS &&
		    hwtpm_session_sign(hw, s, TPM2_CC_PCR_Read, NULL, 0, &cmd.auths[0]) == -1)
			return hwtpm_seterr(err, 0, "compute the PCR read's session HMAC");
		if (rc == TSS2_RC_SUCCESS)
			rc = hwtpm_sapi_execute(hw, &cmd, &rsp);
	} while (hwtpm_sapi_again(rc, &tries));
	if (hwtpm_rc_bad_auth(rc))
		return hwtpm_seterr(err, rc, "the host TPM refused the session HMAC of TPM2_PCR_Read, "
		    "which covers the command and the session's nonces: altered on the host TPM link; "
		    "nothing was read");
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "read host PCRs");
	if (!more)
		s->handle = 0; /* ended by its last command */
	if (hwtpm_session_check(hw, s, TPM2_CC_PCR_Read, &cmd.auths[0], &rsp, &nonce_tpm, err) ==
	    -1)
		return -1;
	rc = Tss2_Sys_PCR_Read_Complete(hw->sys, &counter, &got, &digests);
	if (rc != TSS2_RC_SUCCESS)
		return hwtpm_seterr(err, rc, "read host PCRs");
	return pcr_take(chunk, &got, &digests, values, err);
}

/*
 * Reads the selected sha256 host PCRs into values[i] for every bit i of
 * sel->mask, in an audit session salted to the pinned SRK whose response
 * HMACs vtpmd checks: values are the host TPM's, not the link's. They are
 * also kept in hw (pcr_values, pcrs_known) for the next quote
 * (hwtpm_attest.c), which takes them when its signed PCR digest is
 * theirs. Returns 0, or -1 with err set (ERR_HOST_TPM: the TPM failed, or
 * an answer did not authenticate, which the message says).
 */
int
hwtpm_pcr_read(struct hwtpm *hw, const struct pcr_selection *sel,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	struct hwtpm_session *s = &hw->audit;
	uint32_t remaining = sel->mask, chunk;
	int ret = -1;

	if (hwtpm_enter(hw, err) == -1)
		return -1;
	if (remaining == 0)
		return 0;
	if ((remaining >> TPM_PCRS) != 0)
		return hwtpm_seterr(err, 0, "select host PCRs from 0 to %d", TPM_PCRS - 1);
	hw->pcrs_known = 0;
	if (hwtpm_session_start(hw, TPM2_SE_HMAC, s, err) == -1)
		return -1;
	while (remaining != 0) {
		chunk = pcr_chunk(remaining);
		remaining &= ~chunk;
		if (pcr_read_audited(hw, s, chunk, remaining != 0, values, err) == -1)
			goto out;
	}
	memcpy(hw->pcr_values, values, sizeof(hw->pcr_values));
	hw->pcrs_known = sel->mask;
	ret = 0;
out:
	hwtpm_session_end(hw, s, s->handle != 0);
	return ret;
}
