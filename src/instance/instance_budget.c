/*
 * instance_budget.c: a vTPM's commit budget (docs/state.md, "Throttling").
 *
 * Every permanent-state write costs vtpmd one host-TPM counter increment
 * (its commit), and the host TPM's NV wears. So the worker spends one token
 * of a bucket on each permanent write, whatever caused it: a guest's TPM
 * command of any code, a power cycle's Shutdown, SET_STATEBLOB. The bucket
 * holds INSTANCE_BUDGET_BURST_S seconds of writes and refills at --nv-rate
 * a second (full at start).
 *
 * - A write that finds the bucket empty waits for its token before it is
 *   written (and the answer that acknowledges it with it): the bound holds
 *   for every path, whatever the command.
 * - Before that, so that a guest learns it as from a real TPM: while the
 *   bucket is empty, a TPM 2.0 command that the engine declares may write
 *   NV (TPMA_CC nv, what TPM2_GetCapability(TPM_CAP_COMMANDS) tells the
 *   guest) is answered TPM_RC_NV_RATE without running, and SET_STATEBLOB of
 *   permanent state TPM_RETRY. The commands a guest needs to boot and
 *   measure (Startup, SelfTest, the PCR commands) are the exception: libtpms
 *   runs them without writing, and a guest is not left without its TPM or
 *   its measurements because of its own NV writes.
 *
 * vtpmd keeps the same budget for the reports it commits (commitbudget.c),
 * so a worker taken over by its guest gains nothing by skipping this one.
 * A worker that vtpmd provisions (--commit-relaxed) is not limited: only
 * vtpmd's own commands reach it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "instance.h"

#define TPM2_RC_NV_RATE       0x920 /* a warning: the TPM limits NV writes against wear-out */
#define TPM2_RC_INITIALIZE    0x100 /* before TPM2_Startup */
#define TPM2_CAP_COMMANDS     2
#define TPM2_CC_FIRST         0x11f
#define TPMA_CC_INDEX_MASK    0xffffu
#define TPMA_CC_NV            (1u << 22)
#define TPMA_CC_V             (1u << 29)
#define BUDGET_CAP_ROUNDS_MAX 8 /* GetCapability pages read at most */

/* The TPM 2.0 commands declared NV writers (TPMA_CC nv) that a guest
 * needs to boot and to measure (firmware sends Startup and SelfTest; a
 * refusal would leave the guest without its TPM), and that libtpms runs
 * without writing its permanent state (PCRs are volatile): never refused
 * up front. Should one write, its write waits for a token all the same. */
static const uint32_t budget_boot_commands[] = {
    0x144, /* Startup */
    0x143, /* SelfTest */
    0x142, /* IncrementalSelfTest */
    0x182, /* PCR_Extend */
    0x13c, /* PCR_Event */
    0x13d, /* PCR_Reset */
    0x185, /* EventSequenceComplete */
};

static bool
budget_limited(const struct instance *in)
{
	return in->nv_rate != 0 && !in->commit.relaxed;
}

/* Adds the tokens earned since the last look, up to the burst. */
static void
budget_refill(struct instance *in)
{
	struct instance_budget *b = &in->budget;
	double cap = (double)in->nv_rate * INSTANCE_BUDGET_BURST_S;
	int64_t now = mono_ms();

	if (!b->started) {
		b->tokens = cap;
		b->started = true;
	} else if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * in->nv_rate / 1000.0;
	}
	if (b->tokens > cap)
		b->tokens = cap;
	b->last_ms = now;
}

/* Milliseconds until the bucket holds a token again (0: it does). */
static int64_t
budget_ms_to_token(struct instance *in)
{
	double missing;

	budget_refill(in);
	missing = 1.0 - in->budget.tokens;
	if (missing <= 0)
		return 0;
	return (int64_t)(missing * 1000.0 / in->nv_rate) + 1;
}

bool
instance_budget_empty(struct instance *in)
{
	return budget_limited(in) && budget_ms_to_token(in) > 0;
}

static bool
budget_is_boot_command(uint32_t code)
{
	for (size_t i = 0; i < sizeof(budget_boot_commands) / sizeof(budget_boot_commands[0]); i++)
		if (budget_boot_commands[i] == code)
			return true;
	return false;
}

static bool
budget_declared_writer(const struct instance_budget *b, uint32_t code)
{
	if (code >= 8 * sizeof(b->nv_cc))
		return false;
	return (b->nv_cc[code / 8] >> (code % 8) & 1) != 0;
}

/* Notes the commands of one TPML_CCA page (body of a GetCapability
 * answer after its moreData and capability fields). Returns the last
 * command index seen, or 0 when the page is malformed or empty. */
static uint32_t
budget_note_page(struct instance_budget *b, const uint8_t *p, size_t len)
{
	uint32_t count, attr, index = 0;

	if (len < 4)
		return 0;
	count = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (count == 0 || len - 4 < (size_t)count * 4)
		return 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *a = p + 4 + 4 * i;

		attr = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
		index = attr & TPMA_CC_INDEX_MASK;
		if ((attr & TPMA_CC_NV) != 0 && (attr & TPMA_CC_V) == 0 &&
		    index < 8 * sizeof(b->nv_cc) && !budget_is_boot_command(index))
			b->nv_cc[index / 8] |= (uint8_t)(1u << (index % 8));
	}
	return index;
}

/*
 * Reads, once, which TPM 2.0 commands the engine declares may write NV:
 * TPM2_GetCapability(TPM_CAP_COMMANDS), page by page. Needs the engine
 * started (a TPM before its Startup is asked again later). Without an
 * answer no command is refused up front (each write still waits for its
 * token).
 */
static void
budget_learn(struct instance *in)
{
	struct instance_budget *b = &in->budget;
	uint8_t cmd[22] = {0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7a};
	uint32_t next = TPM2_CC_FIRST, last;
	const uint8_t *rsp;
	size_t rsp_len;
	struct tpm_header h;

	if (b->nv_known || !engine_is_on())
		return;
	for (int round = 0; round < BUDGET_CAP_ROUNDS_MAX; round++) {
		ctrl_put_u32(cmd + 10, TPM2_CAP_COMMANDS);
		ctrl_put_u32(cmd + 14, next);
		ctrl_put_u32(cmd + 18, 256);
		if (engine_process(cmd, sizeof(cmd), &rsp, &rsp_len) == -1 ||
		    tpmwire_header(rsp, rsp_len, &h) == -1)
			h.code = UINT32_MAX;
		if (h.code == TPM2_RC_INITIALIZE)
			return;
		if (h.code != 0 || rsp_len < 15) {
			log_warnx("the engine did not list its commands (0x%x): TPM_RC_NV_RATE is "
			          "not answered up front; writes still wait for the commit budget",
			    h.code);
			break;
		}
		last = budget_note_page(b, rsp + 15, rsp_len - 15);
		if (rsp[10] == 0 || last == 0)
			break;
		next = last + 1;
	}
	b->nv_known = true;
}

/* Whether a TPM command must be answered TPM_RC_NV_RATE, without running,
 * because the budget is empty; counts and logs the refusal. */
bool
instance_budget_refuses(struct instance *in, const uint8_t *cmd, size_t len)
{
	struct instance_budget *b = &in->budget;
	struct tpm_header h;

	if (in->tpm_version != 2 || tpmwire_header(cmd, len, &h) == -1 ||
	    !instance_budget_empty(in))
		return false;
	budget_learn(in);
	if (!budget_declared_writer(b, h.code))
		return false;
	b->refused++;
	if (b->refused == 1 || b->refused % 1000 == 0)
		log_info("permanent-state writes faster than %u a second (the commit budget): "
		         "answered TPM_RC_NV_RATE (%lu so far)",
		    in->nv_rate, b->refused);
	return true;
}

/* The TPM 2.0 answer of a refused command. */
size_t
instance_budget_answer(const struct instance *in, uint8_t out[static TPM_HEADER_LEN])
{
	return tpmwire_error(out, in->tpm_version, TPM2_RC_NV_RATE);
}

/*
 * Spends one token on a permanent-state write, first waiting for it when
 * the bucket is empty: with grace_ms < 0 as long as it takes unless a
 * signal asks the worker to stop, else at most grace_ms. Returns 0, or -1
 * when it gave up (the write must not happen).
 */
int
instance_budget_spend(struct instance *in, int grace_ms)
{
	struct instance_budget *b = &in->budget;
	int64_t start = mono_ms(), wait;
	struct timespec ts;
	sigset_t unblocked;

	if (!budget_limited(in))
		return 0;
	sigemptyset(&unblocked);
	if ((wait = budget_ms_to_token(in)) > 0 && b->waited++ % 1000 == 0)
		log_info("permanent-state writes faster than %u a second (the commit budget): a "
		         "write waits %lld ms (%lu so far)",
		    in->nv_rate, (long long)wait, b->waited);
	while ((wait = budget_ms_to_token(in)) > 0) {
		if (grace_ms < 0 && in->signalled != NULL && *in->signalled)
			return -1;
		if (grace_ms >= 0 && mono_ms() - start + wait > grace_ms)
			return -1;
		ts = (struct timespec){.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000L};
		if (ppoll(NULL, 0, &ts, grace_ms < 0 ? &unblocked : NULL) == -1 && errno != EINTR) {
			log_warn("commit budget: poll");
			return -1;
		}
	}
	b->tokens -= 1.0;
	return 0;
}
