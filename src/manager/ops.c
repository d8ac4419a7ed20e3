/*
 * ops.c: the operations the manager's loop has in flight, as
 * continuations (docs/architecture.md, "The manager's loop").
 *
 * An operation that must wait for a worker to become ready or for a CA to
 * answer does not wait: its API request is deferred (api.c), the loop goes
 * on serving others, and the operation goes on from the event it waits
 * for, then answers the request (its ticket) when it ends:
 *
 *   start, restart    spawn + unseal → [ready] → 200 INSTANCE
 *   create            seal → spawn + unseal → [ready] → 201 INSTANCE
 *   create with EKs   seal → spawn + unseal → [ready] → for each EK: vEK,
 *                     certify, quote → [Virtualization CA] → NV → … → 201
 *   enrol             host EK, CK → [Privacy CA] → activate → [Privacy CA]
 *                     → BK, save → 200 HOST
 *   approve           each refused instance: spawn + unseal → [ready] …
 *                     → 200 POLICY with "started"
 *   stop              SIGTERM → [the worker's end] → 200 INSTANCE
 *   restart           stop, then start
 *   restart after a crash, start at vtpmd's start: [ready]; nobody waits
 *
 * [x] is a wait: an event of the loop with a deadline (a start's 15 s, a
 * CA request's ca-timeout, a stop's 5 s before SIGKILL and 5 s after).
 * The rest runs in the loop and is short (the host TPM, files, the new
 * vTPM). While an operation is in flight on an
 * instance, other operations on it are refused (ops_busy), except that a
 * start joins an automatic one, and a stop or delete calls it off.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "manager.h"

/* An approval's answer, waiting for the starts it began. */
struct ops_approval {
	uint64_t ticket;
	unsigned int pending; /* starts not ended yet */
	json_t *started;      /* the names of those that serve */
	struct ops_approval *next;
};

/* Answers the request ticket (0: nobody waits; the body is freed). */
static void
ops_answer(struct manager *m, uint64_t ticket, struct api_response r)
{
	if (ticket == 0 || m->api == NULL) {
		json_decref((json_t *)r.body);
		return;
	}
	if (api_answer(m->api, ticket, r) == -1)
		log_debug("api: the client of an operation went away before its answer");
}

/*
 * Begins a start of v on behalf of op (VTPM_OP_START, _CREATE, _RESUME or
 * _RESTART); ticket is the API request answered when it ends (0: none).
 * Returns 0 with the start under way, 1 when v runs already, or -1 with
 * err when it failed at once (v's state says how; nothing is answered).
 */
int
ops_start(struct manager *m, struct vtpm *v, enum vtpm_op op, uint64_t ticket, struct err *err)
{
	int rc = lifecycle_start(m, v, err);

	if (rc == 0) {
		v->op = op;
		v->ticket = ticket;
	}
	return rc;
}

/* Whether another operation on v must wait until the one in flight has
 * answered: any but an automatic start, which nobody waits for; and any
 * while its worker is being stopped. */
bool
ops_busy(const struct vtpm *v)
{
	return v->stopping ||
	       (v->op != VTPM_OP_NONE && v->op != VTPM_OP_RESUME && v->op != VTPM_OP_RESTART);
}

/* Calls off an automatic start of v (a stop or a delete came). */
void
ops_call_off(struct manager *m, struct vtpm *v)
{
	if (v->op != VTPM_OP_RESUME && v->op != VTPM_OP_RESTART)
		return;
	v->op = VTPM_OP_NONE;
	v->ticket = 0;
	if (v->start_pending)
		lifecycle_start_cancel(m, v);
}

/* --- stops ------------------------------------------------------------ */

/*
 * Begins to stop v's worker; ticket (0: nobody) is answered with status
 * (200, or 201 for a create) and INSTANCE once it ended, or, when v should
 * run (a restart), once it started again. Returns 0 with the stop under
 * way, or 1 when v is stopped already (nothing is answered: the caller
 * goes on).
 */
int
ops_stop(struct manager *m, struct vtpm *v, int status, uint64_t ticket)
{
	if (lifecycle_stop(m, v) == 1)
		return 1;
	v->op = VTPM_OP_STOP;
	v->ticket = ticket;
	v->stop_status = status;
	return 0;
}

/* v's worker ended while it was being stopped (or was given up on): the
 * stop answers, or a restart goes on with its start. */
void
ops_stop_ended(struct manager *m, struct vtpm *v)
{
	uint64_t ticket = v->ticket;
	bool restart = v->desired_running && v->stop_status == 200;
	struct err err;
	int rc;

	if (v->stopping)
		lifecycle_stopped(m, v);
	if (v->op != VTPM_OP_STOP)
		return;
	v->op = VTPM_OP_NONE;
	v->ticket = 0;
	if (!restart) {
		ops_answer(m, ticket, reply_ok(v->stop_status, reply_instance(m, v)));
		return;
	}
	rc = ops_start(m, v, VTPM_OP_START, ticket, &err);
	if (rc == 0)
		return;
	ops_answer(m, ticket,
	    rc == 1 ? reply_ok(200, reply_instance(m, v)) : reply_start_failed(m, v, &err));
}

/* --- provisioning (a create with EKs) --------------------------------- */

/* The provisioning failed: the instance is deleted, the error answered. */
static void
ops_provision_failed(struct manager *m, struct vtpm *v, struct api_response r, const char *why)
{
	uint64_t ticket = v->ticket;

	log_warnx("%s: provisioning failed, instance deleted: %s", v->name, why);
	provision_free(v->prov);
	v->prov = NULL;
	v->op = VTPM_OP_NONE;
	v->ticket = 0;
	lifecycle_delete(m, v);
	ops_answer(m, ticket, r);
}

/* The provisioning ended well: what it wrote is recorded and the worker
 * holds answers from now on (fresh_strict), its sockets go to socket-group
 * (it was started without, worker.c), the create is done. */
static void
ops_provision_done(struct manager *m, struct vtpm *v)
{
	uint64_t ticket = v->ticket;
	struct err err;

	provision_free(v->prov);
	v->prov = NULL;
	if (fresh_strict(m, v, &err) == -1 || worker_share_sockets(m, v, &err) == -1 ||
	    lifecycle_create_done(m, v, &err) == -1) {
		ops_provision_failed(m, v,
		    api_error(500, err.msg, "nothing was created; check the state directory"),
		    err.msg);
		return;
	}
	v->op = VTPM_OP_NONE;
	v->ticket = 0;
	/* Asked not to run: answered once its worker ended. */
	if (!v->desired_running && ops_stop(m, v, 201, ticket) == 0)
		return;
	ops_answer(m, ticket, reply_ok(201, reply_instance(m, v)));
}

/*
 * Moves v's provisioning on: at the start (its worker serves) and at each
 * event of its CA request (the pipe readable, the deadline passed).
 */
void
ops_provision_event(struct manager *m, struct vtpm *v)
{
	struct err err;
	int rc = provision_step(m, v, v->prov, &err);

	if (rc == 1)
		return;
	if (rc == 0) {
		ops_provision_done(m, v);
		return;
	}
	if (err.kind == ERR_HOST_TPM)
		hwtpm_recover(m->hw);
	ops_provision_failed(m, v, reply_provision_failed(&err), err.msg);
}

/*
 * Begins the rest of a create with EKs (the types in set): v's worker,
 * then its provisioning; ticket is answered when it ends. Returns 0 with
 * it under way, or -1 with err when it failed at once: v is deleted then.
 */
int
ops_create_provisioned(
    struct manager *m, struct vtpm *v, unsigned int set, uint64_t ticket, struct err *err)
{
	v->prov = provision_new(m, set, err);
	if (v->prov != NULL && ops_start(m, v, VTPM_OP_PROVISION, ticket, err) == 0)
		return 0;
	log_warnx("%s: provisioning failed, instance deleted: %s", v->name, err->msg);
	provision_free(v->prov);
	v->prov = NULL;
	lifecycle_delete(m, v);
	return -1;
}

/* --- approvals ------------------------------------------------------- */

/* The answer to an approval: POLICY, with "started" (consumed). */
static struct api_response
ops_policy_started(struct manager *m, json_t *started)
{
	struct api_response r = reply_policy(m);

	if (r.status == 200 && started != NULL)
		json_object_set_new((json_t *)r.body, "started", started);
	else
		json_decref(started);
	return r;
}

/* Every start of the approval a has ended: it is answered and freed. */
static void
ops_approval_answer(struct manager *m, struct ops_approval *a)
{
	struct ops_approval **pp;

	for (pp = &m->approvals; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	ops_answer(m, a->ticket, ops_policy_started(m, a->started));
	free(a);
}

/* One start of approval ticket ended (rc 0: v serves). */
static void
ops_approval_started(struct manager *m, uint64_t ticket, const struct vtpm *v, int rc)
{
	struct ops_approval *a;

	for (a = m->approvals; a != NULL && a->ticket != ticket; a = a->next)
		;
	if (a == NULL)
		return;
	if (rc == 0 && a->started != NULL)
		json_array_append_new(a->started, json_string(v->name));
	if (--a->pending == 0)
		ops_approval_answer(m, a);
}

/*
 * After an approval: starts again every instance that should run and was
 * refused for want of one (each start is logged; one that fails keeps its
 * error). The answer (POLICY, and "started": those that serve) is given
 * once every one of those starts has ended: returns api_deferred() then,
 * or the answer itself when no start is under way.
 */
struct api_response
ops_approved(struct manager *m, uint64_t ticket)
{
	struct ops_approval *a = calloc(1, sizeof(*a));
	struct err err;

	if (a == NULL)
		return api_error(500, "out of memory", "the approval is stored; retry to start");
	a->ticket = ticket;
	a->started = json_array();
	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		if (!v->desired_running || v->state != VTPM_REFUSED || v->op != VTPM_OP_NONE)
			continue;
		log_info("%s: starting again, under the host configuration just approved", v->name);
		v->backoff_ms = 0;
		if (ops_start(m, v, VTPM_OP_APPROVED, ticket, &err) == 0)
			a->pending++;
	}
	if (a->pending == 0) {
		/* Nothing to wait for: the answer is now. */
		struct api_response r = ops_policy_started(m, a->started);
		free(a);
		return r;
	}
	/* The starts end in the loop, later: a waits for them. */
	a->next = m->approvals;
	m->approvals = a;
	return api_deferred();
}

/* --- starts ----------------------------------------------------------- */

/* A start that an API start or restart waits for ended. */
static void
ops_start_answer(struct manager *m, struct vtpm *v, uint64_t ticket, int rc, const struct err *err)
{
	if (v->unsaved && registry_save(&m->cfg, v) == -1) {
		ops_answer(m, ticket, reply_record_failed(v));
		return;
	}
	v->unsaved = false;
	ops_answer(m, ticket,
	    rc == 0 ? reply_ok(200, reply_instance(m, v)) : reply_start_failed(m, v, err));
}

/* v's start ended (rc 0: it serves; -1: err says why): the operation that
 * waited for it goes on or answers. */
static void
ops_start_ended(struct manager *m, struct vtpm *v, int rc, const struct err *err)
{
	enum vtpm_op op = v->op;
	uint64_t ticket = v->ticket;

	if (op != VTPM_OP_PROVISION) {
		v->op = VTPM_OP_NONE;
		v->ticket = 0;
	}
	switch (op) {
	case VTPM_OP_NONE:
	case VTPM_OP_RESUME: break;
	case VTPM_OP_RESTART:
		/* Transient failures retry; refusals wait for an approval. */
		if (rc == -1 && v->state == VTPM_FAILED)
			lifecycle_retry_later(v, mono_ms());
		break;
	case VTPM_OP_START: ops_start_answer(m, v, ticket, rc, err); break;
	case VTPM_OP_CREATE:
		ops_answer(m, ticket,
		    rc == 0 ? reply_ok(201, reply_instance(m, v))
		            : reply_created_not_started(m, v, err));
		break;
	case VTPM_OP_PROVISION:
		if (rc == 0)
			ops_provision_event(m, v);
		else
			ops_provision_failed(m, v,
			    api_error(500, err->msg, "nothing was created; see vtpmd's log"),
			    err->msg);
		break;
	case VTPM_OP_APPROVED: ops_approval_started(m, ticket, v, rc); break;
	case VTPM_OP_STOP: break; /* a stop calls a start off before it begins */
	}
}

/* v's readiness pipe is readable. */
void
ops_ready(struct manager *m, struct vtpm *v)
{
	if (lifecycle_ready(m, v) == 0)
		ops_start_ended(m, v, 0, NULL);
}

/* v's worker ended (its pidfd is readable) before it served. */
void
ops_worker_ended(struct manager *m, struct vtpm *v)
{
	struct err err;

	lifecycle_start_ended(m, v, &err);
	ops_start_ended(m, v, -1, &err);
}

/* Starts again the instances whose restart (after a crash, or a failed
 * restart) is due. */
void
ops_restarts_due(struct manager *m)
{
	int64_t now = mono_ms();
	struct err err;

	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		if (v->restart_at_ms == 0 || v->restart_at_ms > now || !v->desired_running ||
		    v->op != VTPM_OP_NONE || v->start_pending)
			continue;
		v->restart_at_ms = 0;
		if (ops_start(m, v, VTPM_OP_RESTART, 0, &err) == -1 && v->state == VTPM_FAILED)
			lifecycle_retry_later(v, now);
	}
}

/* --- enrolment --------------------------------------------------------- */

/*
 * Begins the host's enrolment (enrol_begin); ticket is answered when it
 * ends. One at a time: the caller refuses a second. Returns 0 with it
 * under way, or -1 with err when it failed at once.
 */
int
ops_enrol(struct manager *m, const char *privacy_url, const char *virt_url, const char *host,
    const struct enrol_roots_pem *roots, uint64_t ticket, struct err *err)
{
	m->enrolling = enrol_begin(m, privacy_url, virt_url, host, roots, err);
	if (m->enrolling == NULL)
		return -1;
	m->enrol_ticket = ticket;
	return 0;
}

/* Moves the enrolment on, at each event of its CA request. */
void
ops_enrol_event(struct manager *m)
{
	uint64_t ticket = m->enrol_ticket;
	struct err err;
	int rc = enrol_step(m, m->enrolling, &err);

	if (rc == 1)
		return;
	enrol_op_free(m->enrolling);
	m->enrolling = NULL;
	m->enrol_ticket = 0;
	if (rc == -1)
		log_warnx("host enrolment failed: %s", err.msg);
	ops_answer(m, ticket, rc == 0 ? reply_host(m) : reply_enrol_failed(&err));
}

/* --- deadlines --------------------------------------------------------- */

/* Acts on the deadlines that passed: starts that are late (their worker is
 * killed), stops that are late (SIGKILL, then given up), CA requests that
 * are late (their operation fails). */
void
ops_deadlines(struct manager *m)
{
	int64_t now = mono_ms();

	/* Backwards: a failed provisioning deletes its instance, and the last
	 * one takes its place. */
	for (size_t i = m->n; i-- > 0;) {
		struct vtpm *v = m->vtpms[i];
		if (v->start_pending && !v->ready_late && now >= v->ready_by)
			lifecycle_start_late(m, v);
		else if (v->stopping && now >= v->stop_by) {
			if (lifecycle_stop_late(m, v))
				ops_stop_ended(m, v);
		}
		else if (v->prov != NULL && provision_ca(v->prov) != NULL &&
		         now >= caclient_deadline(provision_ca(v->prov)))
			ops_provision_event(m, v);
	}
	if (m->enrolling != NULL && enrol_ca(m->enrolling) != NULL &&
	    now >= caclient_deadline(enrol_ca(m->enrolling)))
		ops_enrol_event(m);
}

static void
ops_earliest(int64_t *next, int64_t due)
{
	if (due != 0 && (*next == -1 || due < *next))
		*next = due;
}

/* The earliest deadline of an operation in flight or of a scheduled
 * restart (monotonic ms), or -1 when there is none. */
int64_t
ops_next_deadline(const struct manager *m)
{
	int64_t next = -1;

	for (size_t i = 0; i < m->n; i++) {
		const struct vtpm *v = m->vtpms[i];
		if (v->start_pending && !v->ready_late)
			ops_earliest(&next, v->ready_by);
		if (v->stopping)
			ops_earliest(&next, v->stop_by);
		if (v->prov != NULL && provision_ca(v->prov) != NULL)
			ops_earliest(&next, caclient_deadline(provision_ca(v->prov)));
		if (v->op == VTPM_OP_NONE && !v->start_pending)
			ops_earliest(&next, v->restart_at_ms);
	}
	if (m->enrolling != NULL && enrol_ca(m->enrolling) != NULL)
		ops_earliest(&next, caclient_deadline(enrol_ca(m->enrolling)));
	return next;
}

/* At exit: every CA request is called off (its child killed), every
 * operation forgotten. Workers still starting go on; the next vtpmd adopts
 * them, and removes the creates that had not ended. */
void
ops_shutdown(struct manager *m)
{
	struct ops_approval *a;

	for (size_t i = 0; i < m->n; i++) {
		provision_free(m->vtpms[i]->prov);
		m->vtpms[i]->prov = NULL;
		m->vtpms[i]->op = VTPM_OP_NONE;
		if (m->vtpms[i]->readyfd != -1)
			close(m->vtpms[i]->readyfd);
		m->vtpms[i]->readyfd = -1;
	}
	enrol_op_free(m->enrolling);
	m->enrolling = NULL;
	while ((a = m->approvals) != NULL) {
		m->approvals = a->next;
		json_decref(a->started);
		free(a);
	}
}
