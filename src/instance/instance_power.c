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
#define TPM2_RC_NV_RATE 0x920 /* a warning: the TPM limits NV writes against wear-out */
#define TPM12_FAIL	0x9
#define INSTANCE_NV_BURST_S 5 /* the bucket holds this many seconds of writes */

/* The TPM 2.0 commands that write NV whatever their outcome's details: the
 * NV commands that change an index, and those that change what the TPM
 * keeps across resets (persistent objects, hierarchies' auth and policy,
 * dictionary-attack settings, audit, PCR banks). */
static const uint32_t instance_nv_writers[] = {
	0x11f, /* NV_UndefineSpaceSpecial */
	0x120, /* EvictControl */
	0x121, /* HierarchyControl */
	0x122, /* NV_UndefineSpace */
	0x124, /* ChangeEPS */
	0x125, /* ChangePPS */
	0x126, /* Clear */
	0x127, /* ClearControl */
	0x128, /* ClockSet */
	0x129, /* HierarchyChangeAuth */
	0x12a, /* NV_DefineSpace */
	0x12b, /* PCR_Allocate */
	0x12c, /* PCR_SetAuthPolicy */
	0x12d, /* PP_Commands */
	0x12e, /* SetPrimaryPolicy */
	0x134, /* NV_Increment */
	0x135, /* NV_SetBits */
	0x136, /* NV_Extend */
	0x137, /* NV_Write */
	0x138, /* NV_WriteLock */
	0x139, /* DictionaryAttackLockReset */
	0x13a, /* DictionaryAttackParameters */
	0x13b, /* NV_ChangeAuth */
	0x140, /* SetCommandCodeAuditStatus */
};

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
 * (instance_commit.c: at most one is ever unrecorded), and is reported to
 * it at once; whoever answers for the write waits for its acknowledgement
 * (instance_commit_wait). Volatile and savestate are snapshots: written
 * once the permanent state is marked (instance_snapshot.c), or after the
 * client's command that made them. 0, or -1 (logged). */
int
instance_save_state(struct instance *in, enum state_kind kind, const uint8_t *blob, size_t len)
{
	if (kind != STATE_PERMANENT && in->in_command)
		return instance_snapshot_defer(in, kind, blob, len);
	if (kind != STATE_PERMANENT && instance_snapshot_mark(in) == -1)
		return -1;
	if (kind == STATE_PERMANENT &&
	    instance_commit_wait(in, instance_stopping(in) ? INSTANCE_COMMIT_GRACE_MS : -1) == -1) {
		log_warnx("%s/%s: generation %llu is not recorded by vtpmd yet; the write (and its "
			  "TPM command) fails", store_dir(in->store), store_filename(kind),
		    (unsigned long long)in->commit.gen);
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

static bool
instance_writes_nv(uint32_t code)
{
	for (size_t i = 0; i < sizeof(instance_nv_writers) / sizeof(instance_nv_writers[0]); i++)
		if (instance_nv_writers[i] == code)
			return true;
	return false;
}

/*
 * Whether a TPM 2.0 command that writes NV may run now: a token bucket of
 * in->nv_rate writes a second, holding INSTANCE_NV_BURST_S seconds of them
 * (full at start). A guest writing faster gets TPM_RC_NV_RATE, as a real
 * TPM answers, so that it neither wears out the host TPM (each write is a
 * counter increment) nor slows the other guests (docs/state.md).
 */
static bool
instance_nv_allowed(struct instance *in, const uint8_t *cmd, size_t len)
{
	double cap = (double)in->nv_rate * INSTANCE_NV_BURST_S;
	struct tpm_header h;
	int64_t now;

	if (in->nv_rate == 0 || in->tpm_version != 2 || tpmwire_header(cmd, len, &h) == -1 ||
	    !instance_writes_nv(h.code))
		return true;
	now = mono_ms();
	if (in->nv_last_ms == 0)
		in->nv_tokens = cap;
	else
		in->nv_tokens += (double)(now - in->nv_last_ms) * in->nv_rate / 1000.0;
	if (in->nv_tokens > cap)
		in->nv_tokens = cap;
	in->nv_last_ms = now;
	if (in->nv_tokens < 1.0) {
		in->nv_refused++;
		return false;
	}
	in->nv_tokens -= 1.0;
	return true;
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
	if (!instance_nv_allowed(in, cmd, len)) {
		if (in->nv_refused == 1 || in->nv_refused % 1000 == 0)
			log_info("NV writes faster than %u a second: answered TPM_RC_NV_RATE (%lu so "
				 "far)", in->nv_rate, in->nv_refused);
		conn_send(&in->data, err, tpmwire_error(err, in->tpm_version, TPM2_RC_NV_RATE));
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
