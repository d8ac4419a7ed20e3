/*
 * budget.c: each instance's commit budget as vtpmd keeps it (docs/state.md,
 * "Throttling").
 *
 * A worker's report of a new generation costs a host-TPM counter increment
 * (fresh.c). The worker limits its own writes (src/instance/
 * instance_budget.c), but a worker taken over by its guest can skip that
 * and report as fast as it likes; so vtpmd keeps the same token bucket
 * for what it commits: an instance's report is included in a commit (and
 * so acknowledged) only when its bucket holds a token, otherwise it waits
 * for one. The bucket holds INSTANCE_BUDGET_BURST_S seconds of
 * nv-write-rate, plus BUDGET_SLACK tokens so that an honest worker, whose
 * own bucket runs a few milliseconds ahead of this one, never waits here.
 *
 * An honest worker never reports again before its report is acknowledged
 * (it holds further writes until then: docs/state.md, I1). A report that
 * replaces an unacknowledged one of another generation or digest is a
 * violation: from the first, none of that worker's reports is committed or
 * acknowledged; at BUDGET_VIOLATIONS_MAX it is ended (SIGKILL, logged), and
 * the supervisor restarts it with back-off from its state on disk. So is a
 * stale report (budget_stale): of a generation older than the one vtpmd
 * recorded, or one that worker had acknowledged already (an honest worker
 * never reports a write again once acknowledged); it is dropped, and only
 * the first of a worker's is logged, so a replaying worker neither floods
 * the log nor holds the loop (the attack review of #12, commit-replay.sh). A worker vtpmd
 * provisions (v->prov) reports without waiting, by design, and is exempt.
 */
#include <signal.h>
#include <string.h>

#include <openssl/crypto.h>

#include "manager.h"

#define BUDGET_SLACK          2.0
#define BUDGET_VIOLATIONS_MAX 8

static double
budget_cap(const struct manager *m)
{
	return (double)m->cfg.nv_write_rate * INSTANCE_BUDGET_BURST_S + BUDGET_SLACK;
}

/* Adds the tokens earned since the last look, up to the cap. */
static void
budget_refill(const struct manager *m, struct budget *b, int64_t now)
{
	if (!b->started) {
		b->tokens = budget_cap(m);
		b->started = true;
	} else if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * m->cfg.nv_write_rate / 1000.0;
	}
	if (b->tokens > budget_cap(m))
		b->tokens = budget_cap(m);
	b->last_ms = now;
}

/* Whether v's worker broke the commit protocol: none of its reports is
 * committed or acknowledged any more. */
static bool
budget_suspect(const struct vtpm *v)
{
	return v->budget.violations > 0 && v->budget.pid == v->pid;
}

/*
 * Whether v's report may be committed now: takes one token of its bucket
 * if there is one. False when the bucket is empty (the report waits,
 * v->budget.held is set; budget_next_deadline says when to look again), or
 * when its worker broke the protocol (held until it is ended).
 */
bool
budget_take(const struct manager *m, struct vtpm *v)
{
	struct budget *b = &v->budget;

	b->held = false;
	if (budget_suspect(v)) {
		b->held = true;
		return false;
	}
	if (m->cfg.nv_write_rate == 0)
		return true;
	budget_refill(m, b, mono_ms());
	if (b->tokens < 1.0) {
		if (b->held_reports++ % 100 == 0)
			log_info(
			    "%s: its worker's writes come faster than nv-write-rate (%u a second): "
			    "their acknowledgements wait for the commit budget",
			    v->name, m->cfg.nv_write_rate);
		b->held = true;
		return false;
	}
	b->tokens -= 1.0;
	return true;
}

/* When v's bucket holds a token again (monotonic ms). */
static int64_t
budget_due(const struct manager *m, const struct vtpm *v)
{
	double missing = 1.0 - v->budget.tokens;

	if (missing <= 0 || m->cfg.nv_write_rate == 0)
		return v->budget.last_ms;
	return v->budget.last_ms + (int64_t)(missing * 1000.0 / m->cfg.nv_write_rate) + 1;
}

/* When the first report held for want of budget may be committed, or -1. */
int64_t
budget_next_deadline(const struct manager *m)
{
	int64_t next = -1, due;

	for (size_t i = 0; i < m->n; i++) {
		const struct vtpm *v = m->vtpms[i];

		if (!v->budget.held || !v->commit_want || budget_suspect(v))
			continue;
		due = budget_due(m, v);
		if (next == -1 || due < next)
			next = due;
	}
	return next;
}

/* Ends a worker that broke the commit protocol; its supervisor restarts
 * it (with back-off) from the state on disk. */
static void
budget_end_worker(struct vtpm *v)
{
	log_errorx("%s: its worker (pid %d) sent %u commit reports without waiting for their "
	           "acknowledgements (or replayed ones), which an intact worker never does "
	           "(taken over by its guest?); ending it",
	    v->name, (int)v->pid, v->budget.violations);
	if (v->pid > 0)
		kill(v->pid, SIGKILL);
	v->commit_want = false; /* none of its reports is recorded */
}

/* A new worker (pid) starts with a clean record. */
static void
budget_worker(struct vtpm *v)
{
	struct budget *b = &v->budget;

	if (b->pid == v->pid)
		return;
	b->pid = v->pid;
	b->violations = 0;
	b->acked = false;
	b->acked_gen = 0;
	b->stale_warned = false;
}

/* Records that v's worker was acknowledged generation gen. */
void
budget_acked(struct vtpm *v, uint64_t gen)
{
	budget_worker(v);
	v->budget.acked = true;
	v->budget.acked_gen = gen;
}

/* Whether a report of gen from v's worker is stale: older than recorded,
 * the generation vtpmd recorded for v (0: none), or no newer than one that
 * worker was acknowledged. Never recorded nor acknowledged. A worker vtpmd
 * provisions is exempt. */
bool
budget_stale(const struct vtpm *v, uint64_t gen, uint64_t recorded)
{
	const struct budget *b = &v->budget;

	if (v->prov != NULL)
		return false;
	return gen < recorded || (b->pid == v->pid && b->acked && gen <= b->acked_gen);
}

/*
 * Checks a report of gen and digest that v's worker just sent, before it
 * replaces the one v holds; recorded is the generation vtpmd recorded for
 * v (0: none). Returns true to take it (unless budget_stale: then to drop
 * it and read on), false when the worker was ended for it (stop reading
 * its channel).
 */
bool
budget_report(
    struct vtpm *v, uint64_t gen, const uint8_t digest[STORE_DIGEST_LEN], uint64_t recorded)
{
	struct budget *b = &v->budget;

	budget_worker(v);
	if (budget_stale(v, gen, recorded)) {
		b->violations++;
		if (!b->stale_warned)
			log_warnx(
			    "%s: its worker reports generation %llu, which vtpmd recorded "
			    "(%llu) or acknowledged already (a replay: a broken commit protocol); "
			    "dropped, and no further one of this worker is logged",
			    v->name, (unsigned long long)gen, (unsigned long long)recorded);
		b->stale_warned = true;
	} else if (!v->commit_want || v->prov != NULL ||
	           (gen == v->commit_gen &&
	               CRYPTO_memcmp(digest, v->commit_digest, STORE_DIGEST_LEN) == 0)) {
		return true;
	} else {
		b->violations++;
		if (b->violations == 1)
			log_warnx("%s: its worker sent another report (generation %llu) before its "
			          "report of generation %llu was acknowledged (a broken commit "
			          "protocol)",
			    v->name, (unsigned long long)gen, (unsigned long long)v->commit_gen);
	}
	if (b->violations < BUDGET_VIOLATIONS_MAX)
		return true;
	budget_end_worker(v);
	return false;
}
