/*
 * instance_power.c: the engine as an instance runs it: where its state
 * comes from and goes to (the store, or the state decrypted at start), its
 * power cycles (an orderly TPM2_Shutdown of our own before power-off), and
 * one guest command through it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"

#define TPM2_RC_FAILURE 0x101
#define TPM12_FAIL      0x9

/* Engine callbacks: state comes from the store (or the cache filled at
 * start), goes to the store. */
static int
instance_io_load(void *ctx, enum state_kind kind, uint8_t **blob, size_t *len, bool *absent)
{
	struct instance *in = ctx;
	uint64_t floor;
	struct err e;

	if (kind == STATE_PERMANENT && in->cache != NULL) {
		*blob = malloc(in->cache_len + 1);
		if (*blob == NULL) {
			log_warnx("out of memory for the TPM state");
			return -1;
		}
		memcpy(*blob, in->cache, in->cache_len);
		*len = in->cache_len;
		return 0;
	}
	if (store_get(in->store, kind, blob, len, &e) == 0) {
		/* The command that retired a snapshot may load it (TPM 1.2's
		 * Startup(ST_STATE)): nothing ran between them. */
		floor = in->in_command ? in->command_floor
				       : store_client_generation(in->store, STATE_PERMANENT);
		if (kind == STATE_PERMANENT ||
		    instance_snapshot_check(kind, store_generation(in->store, kind), floor, &e) == 0)
			return 0;
		explicit_bzero(*blob, *len);
		free(*blob);
		*blob = NULL;
		log_warnx("%s/%s; refused", store_dir(in->store), e.msg);
		in->snapshot_refused = true; /* libtpms would start without it */
		return -1;
	}
	*absent = e.kind == ERR_ABSENT;
	if (!*absent)
		log_warnx("%s", e.msg);
	return -1;
}

static bool
instance_stopping(const struct instance *in)
{
	return in->signalled != NULL && *in->signalled;
}

/* Stores a state blob (libtpms' writes, SET_STATEBLOB). Permanent state is
 * written only once vtpmd has recorded the generation before it
 * (instance_commit.c: at most one is ever unrecorded) and the commit budget
 * has a token for it (instance_budget.c), and is reported to vtpmd at once;
 * whoever answers for the write waits for its acknowledgement
 * (instance_commit_wait). Volatile and savestate are snapshots: written
 * once the permanent state is marked (instance_snapshot.c), or after the
 * client's command that made them. 0, or -1 (logged). */
int
instance_save_state(struct instance *in, enum state_kind kind, const uint8_t *blob, size_t len)
{
	int grace_ms = instance_stopping(in) ? INSTANCE_COMMIT_GRACE_MS : -1;

	if (kind != STATE_PERMANENT && in->in_command)
		return instance_snapshot_defer(in, kind, blob, len);
	if (kind != STATE_PERMANENT && instance_snapshot_mark(in) == -1)
		return -1;
	if (kind == STATE_PERMANENT && instance_commit_wait(in, grace_ms) == -1) {
		log_warnx("%s/%s: generation %llu is not recorded by vtpmd yet; the write (and its "
			  "TPM command) fails", store_dir(in->store), store_filename(kind),
		    (unsigned long long)in->commit.gen);
		return -1;
	}
	if (kind == STATE_PERMANENT && instance_budget_spend(in, grace_ms) == -1) {
		log_warnx("%s/%s: no commit budget for this write before the worker stops; the "
		          "write (and its TPM command) fails",
		    store_dir(in->store), store_filename(kind));
		return -1;
	}
	if (store_put_as(in->store, kind, blob, len, in->client_command) == -1) {
		log_warn("%s/%s: write failed; the TPM command fails", store_dir(in->store),
		    store_filename(kind));
		return -1;
	}
	if (kind == STATE_VOLATILE)
		in->volatile_saved = true;
	if (kind == STATE_PERMANENT && in->commit.enabled)
		instance_commit_report(in);
	return 0;
}

static int
instance_io_save(void *ctx, enum state_kind kind, const uint8_t *blob, size_t len)
{
	return instance_save_state(ctx, kind, blob, len);
}

static int
instance_io_remove(void *ctx, enum state_kind kind)
{
	struct instance *in = ctx;

	instance_snapshot_drop(in, kind);
	if (store_delete(in->store, kind) == -1)
		return -1;
	if (kind == STATE_VOLATILE)
		in->volatile_saved = false;
	return 0;
}

static uint8_t
instance_io_locality(void *ctx)
{
	struct instance *in = ctx;

	return in->locality;
}

/* Sends one command of our own to the engine; returns its response code. */
uint32_t
instance_internal_command(const uint8_t *cmd, size_t len)
{
	struct tpm_header h;
	const uint8_t *rsp;
	size_t rsp_len;

	if (engine_process(cmd, len, &rsp, &rsp_len) == -1 ||
	    tpmwire_header(rsp, rsp_len, &h) == -1)
		return UINT32_MAX;
	return h.code;
}

/* Powers the engine on with the stored state. Returns 0, or -1 (logged). */
int
instance_power_on(struct instance *in, bool delete_volatile)
{
	in->snapshot_refused = false;
	if (engine_power_on() == -1) {
		log_warnx("%s: the TPM engine could not start from this state",
		    store_dir(in->store));
		return -1;
	}
	if (in->snapshot_refused) {
		/* Not a TPM started afresh in its place: the way out is the
		 * operator's (docs/state.md). */
		engine_power_off();
		log_warnx("%s: the TPM is not started (remove the old snapshot to start it from "
			  "its permanent state)", store_dir(in->store));
		return -1;
	}
	in->orderly = false;
	if (in->cache != NULL) {
		explicit_bzero(in->cache, in->cache_len);
		free(in->cache);
		in->cache = NULL;
	}
	if (delete_volatile && instance_io_remove(in, STATE_VOLATILE) == -1)
		log_warn("%s: remove volatile state", store_dir(in->store));
	return 0;
}

/*
 * A volatile-state snapshot (STORE_VOLATILE, SET_STATEBLOB) is for the
 * power-on that directly follows it. Once a client's command has run, the
 * TPM has moved on: resuming the snapshot at a later start or INIT would
 * bring back its old PCR values and sessions instead of rebooting it (a
 * restart after SIGTERM kept the PCRs of the last `swtpm_ioctl -v`).
 */
static void
instance_volatile_superseded(struct instance *in)
{
	if (in->volatile_saved && instance_io_remove(in, STATE_VOLATILE) == -1)
		log_warn("%s: remove superseded volatile state", store_dir(in->store));
}

/* Ends the engine's power cycle, telling it first (unless the guest just
 * did) so that the reset is orderly and the lockout counter is untouched. */
void
instance_power_off(struct instance *in)
{
	uint8_t cmd[12];
	size_t len;

	if (!engine_is_on())
		return;
	if (!in->orderly) {
		len = tpmwire_shutdown_state(cmd, in->tpm_version);
		(void)instance_internal_command(cmd, len);
		in->orderly = true;
	}
	engine_power_off();
}

/* Answers one framed TPM command on the data channel. */
void
instance_tpm_command(struct instance *in, const uint8_t *cmd, size_t len)
{
	uint8_t err[TPM_HEADER_LEN];
	struct tpm_header h;
	const uint8_t *rsp;
	size_t rsp_len;
	int rc;

	if (!engine_is_on()) {
		/* Before INIT: QEMU's version probe expects a bare failure. */
		rsp_len = tpmwire_error(err, in->tpm_version,
		    in->tpm_version == 2 ? TPM2_RC_FAILURE : TPM12_FAIL);
		conn_send(&in->data, err, rsp_len);
		return;
	}
	if (instance_budget_refuses(in, cmd, len)) {
		conn_send(&in->data, err, instance_budget_answer(in, err));
		return;
	}
	instance_volatile_superseded(in);
	in->command_floor = store_client_generation(in->store, STATE_PERMANENT);
	if (instance_snapshot_retire(in) == -1) {
		/* An old snapshot would still load: the command does not run. */
		conn_send(&in->data, err, tpmwire_error(err, in->tpm_version,
		    in->tpm_version == 2 ? TPM2_RC_FAILURE : TPM12_FAIL));
		return;
	}
	in->client_command = in->in_command = true;
	rc = engine_process(cmd, len, &rsp, &rsp_len);
	in->client_command = in->in_command = false;
	if (rc == -1 || tpmwire_header(rsp, rsp_len, &h) == -1)
		log_warnx("TPM engine produced no response");
	if (instance_snapshot_settle(in) == -1) /* logged */
		rc = -1;
	if (rc == -1 || tpmwire_header(rsp, rsp_len, &h) == -1) {
		rsp_len = tpmwire_error(err, in->tpm_version,
		    in->tpm_version == 2 ? TPM2_RC_FAILURE : TPM12_FAIL);
		rsp = err;
	} else {
		in->orderly = h.code == 0 && tpmwire_is_shutdown(cmd, len, in->tpm_version);
	}
	/* An answer acknowledges what the command wrote: only once vtpmd has
	 * recorded it (a stop asked meanwhile leaves it unanswered). */
	if (instance_commit_wait(in, -1) == -1)
		return;
	conn_send(&in->data, rsp, rsp_len);
}

/* Binds this process's engine to the instance's state. Returns 0, or -1
 * when libtpms refuses the TPM version. */
int
instance_engine_select(struct instance *in)
{
	const struct engine_io io = {
	    .ctx = in,
	    .load = instance_io_load,
	    .save = instance_io_save,
	    .remove = instance_io_remove,
	    .locality = instance_io_locality,
	};

	return engine_select(in->tpm_version, &io);
}
