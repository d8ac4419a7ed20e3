/*
 * instance_snapshot.c: the freshness of snapshots (docs/state.md,
 * "Snapshots: volatile and savestate").
 *
 * A snapshot is TPM state that can be loaded back later: any blob
 * GET_STATEBLOB hands out, and the volatile and savestate files (written
 * by STORE_VOLATILE, SET_STATEBLOB, and TPM 1.2's SaveState, the guest's
 * or the power-off's). It is stamped with the generation of the permanent
 * state it was taken with, and loading one is refused once a client's
 * command has run since (its stamp below store_client_generation). The
 * volatile state holds what permanent writes do not (the increments of an
 * orderly NV counter, PCRs), so a client's command need not move the
 * permanent generation by itself; this module makes it do so:
 *
 *   mark:   before a snapshot leaves or is written, the permanent state is
 *           written again, unchanged, marked "a snapshot is out" (a write
 *           of vtpmd's own: the floor stays), and recorded by vtpmd;
 *   retire: before the first client's command after a mark runs, it is
 *           written again as a client's write, unmarked, and recorded; from
 *           then on every snapshot taken before is older than the floor.
 *
 * Both are ordinary permanent writes: reported on the commit channel and
 * covered by the host TPM's counter like any, so the mark survives crashes
 * and restarts, and nobody removes it without rolling the permanent state
 * back (which vtpmd refuses). With no snapshot out, nothing is written:
 * starts and commands cost what they did.
 */
#include <stdlib.h>
#include <string.h>

#include "instance.h"

/* How long the commit waits of this module may take: a worker asked to
 * stop gives up after INSTANCE_COMMIT_GRACE_MS, else it waits. */
static int
snapshot_grace(const struct instance *in)
{
	return in->signalled != NULL && *in->signalled ? INSTANCE_COMMIT_GRACE_MS : -1;
}

/* Writes the permanent state again (store_restamp) through the commit
 * protocol: after the last write's acknowledgement, with a token of the
 * commit budget (instance_budget.c), reported, and (wait) acknowledged in
 * turn. 0, or -1 (logged). */
static int
snapshot_restamp(struct instance *in, bool snapshot_out, bool by_client, bool wait, const char *why)
{
	struct err err;

	if (instance_commit_wait(in, snapshot_grace(in)) == -1) {
		log_warnx("%s: generation %llu is not recorded by vtpmd yet; cannot %s",
		    store_dir(in->store), (unsigned long long)in->commit.gen, why);
		return -1;
	}
	if (instance_budget_spend(in, snapshot_grace(in)) == -1) {
		log_warnx("%s: no commit budget before the worker stops; cannot %s",
		    store_dir(in->store), why);
		return -1;
	}
	if (store_restamp(in->store, snapshot_out, by_client, &err) == -1) {
		if (err.kind == ERR_ABSENT) /* a TPM never written: nothing to take */
			return 0;
		log_warnx("%s; cannot %s", err.msg, why);
		return -1;
	}
	if (in->commit.enabled)
		instance_commit_report(in);
	if (wait && instance_commit_wait(in, snapshot_grace(in)) == -1) {
		log_warnx("%s: generation %llu is not recorded by vtpmd; cannot %s",
		    store_dir(in->store), (unsigned long long)in->commit.gen, why);
		return -1;
	}
	return 0;
}

/*
 * Before a snapshot leaves the worker or is written: the permanent state
 * says durably, and vtpmd has recorded, that one is out, so that the next
 * client's command retires it whatever happens meanwhile (a crash, a
 * restart). When it says so already, no write, but still the wait for
 * vtpmd's record of the generation on disk: the snapshot is stamped with
 * it, and every stamp must be a generation vtpmd recorded (a write of the
 * worker's own after the mark, such as STOP's Shutdown, is reported but
 * not waited for; discarded unrecorded, its number would be reused by the
 * next lineage's retire, and the snapshot load). 0, or -1 (logged): the
 * snapshot must not be taken.
 */
int
instance_snapshot_mark(struct instance *in)
{
	if (!store_snapshot_out(in->store))
		return snapshot_restamp(in, true, false, true, "mark the TPM state as snapshotted");
	if (instance_commit_wait(in, snapshot_grace(in)) == -1) {
		log_warnx("%s: generation %llu is not recorded by vtpmd; cannot take a snapshot "
		          "of it",
		    store_dir(in->store), (unsigned long long)in->commit.gen);
		return -1;
	}
	return 0;
}

/*
 * Before a client's command runs: when a snapshot of the present state is
 * out, the state is written as a client's write (unmarked), so that every
 * snapshot taken so far is older than store_client_generation. The
 * volatile file is removed first, durably: it would be older than the
 * client generation, and refuse the TPM's next start (every path that
 * retires comes here: the data channel's commands, HASH_*,
 * RESET_TPMESTABLISHED). The savestate stays: the command that retires may
 * load it (TPM 1.2's Startup(ST_STATE)). The command's answer waits for
 * vtpmd's record (instance_commit_wait, as for any write). 0, or -1
 * (logged): the command must not run.
 */
int
instance_snapshot_retire(struct instance *in)
{
	if (!store_snapshot_out(in->store))
		return 0;
	instance_snapshot_drop(in, STATE_VOLATILE);
	if (store_delete(in->store, STATE_VOLATILE) == -1) {
		log_warn("%s/%s: remove; cannot retire the snapshots taken before",
		    store_dir(in->store), store_filename(STATE_VOLATILE));
		return -1;
	}
	in->volatile_saved = false;
	return snapshot_restamp(in, false, true, false, "retire the snapshots taken before");
}

/*
 * Whether a snapshot of kind stamped with permanent generation stamp may
 * be loaded: not when a client's command changed the state since it was
 * taken. floor is store_client_generation, or lower for the blobs of the
 * save whose permanent blob SET_STATEBLOB just restored. 0, or -1 with
 * err (ERR_CORRUPT) naming both generations.
 */
int
instance_snapshot_check(enum state_kind kind, uint64_t stamp, uint64_t floor, struct err *err)
{
	if (stamp >= floor)
		return 0;
	return err_set(err, ERR_CORRUPT,
	    "%s: the %s state of generation %llu is older than "
	    "generation %llu, the TPM's state since a client's command changed it (it ran "
	    "commands after this was saved: loading it would roll the TPM back)",
	    store_filename(kind), kind == STATE_VOLATILE ? "volatile" : "saved",
	    (unsigned long long)stamp, (unsigned long long)floor);
}

/* A snapshot libtpms writes while a client's command runs (TPM 1.2's
 * SaveState) waits for the command's end (instance_snapshot_settle), so
 * that it is stamped after the command's own permanent writes. 0, or -1. */
int
instance_snapshot_defer(struct instance *in, enum state_kind kind, const uint8_t *blob, size_t len)
{
	struct instance_deferred *d = &in->deferred[kind];
	uint8_t *copy = malloc(len + 1);

	if (copy == NULL) {
		log_warnx("out of memory for the TPM's %s", store_filename(kind));
		return -1;
	}
	memcpy(copy, blob, len);
	instance_snapshot_drop(in, kind);
	d->blob = copy;
	d->len = len;
	return 0;
}

/* Forgets a deferred snapshot of kind (libtpms removed it). */
void
instance_snapshot_drop(struct instance *in, enum state_kind kind)
{
	struct instance_deferred *d = &in->deferred[kind];

	if (d->blob != NULL)
		explicit_bzero(d->blob, d->len);
	free(d->blob);
	d->blob = NULL;
	d->len = 0;
}

/* After a client's command: the snapshots it made are marked and written.
 * 0, or -1 (logged): the command fails. */
int
instance_snapshot_settle(struct instance *in)
{
	int rc = 0;

	for (int k = STATE_VOLATILE; k <= STATE_SAVESTATE; k++) {
		struct instance_deferred *d = &in->deferred[k];

		if (d->blob == NULL)
			continue;
		if (rc == 0 && instance_snapshot_mark(in) == -1)
			rc = -1;
		if (rc == 0 && store_put_as(in->store, k, d->blob, d->len, true) == -1) {
			log_warn("%s/%s: write failed; the TPM command fails", store_dir(in->store),
			    store_filename(k));
			rc = -1;
		}
		if (rc == 0 && k == STATE_VOLATILE)
			in->volatile_saved = true;
		instance_snapshot_drop(in, k);
	}
	return rc;
}

/* Removes the volatile and savestate files: a permanent state restored
 * (SET_STATEBLOB) supersedes them. 0, or -1 (logged). */
int
instance_snapshot_supersede(struct instance *in)
{
	for (int k = STATE_VOLATILE; k <= STATE_SAVESTATE; k++) {
		if (store_delete(in->store, k) == -1) {
			log_warn("%s/%s: remove", store_dir(in->store), store_filename(k));
			return -1;
		}
	}
	in->volatile_saved = false;
	return 0;
}
