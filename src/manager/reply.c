/*
 * reply.c: the control API's answers (docs/api.md) that more than one
 * place gives: the objects (INSTANCE, HOST, POLICY), and the failures of
 * operations, each with its HTTP status and a hint that says what to do.
 * The routes (manager_api.c) answer at once; operations that wait for a
 * worker or a CA (ops.c) answer the same way when they end.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "manager.h"

/* A success with body (consumed); 500 when body is NULL (out of memory). */
struct api_response
reply_ok(int status, json_t *body)
{
	struct api_response r = {.status = status, .body = body};

	if (body == NULL)
		return api_error(500, "out of memory", "retry");
	return r;
}

/* INSTANCE (docs/api.md), or NULL when out of memory. */
json_t *
reply_instance(struct manager *m, const struct vtpm *v)
{
	char ctrl[PATH_MAX], data[PATH_MAX], tcti[PATH_MAX + 16], dir[PATH_MAX];
	json_t *o, *ek;

	worker_socket_paths(&m->cfg, v->name, ctrl, sizeof(ctrl), data, sizeof(data));
	snprintf(tcti, sizeof(tcti), "swtpm:path=%s", data);
	registry_path(&m->cfg, v->name, NULL, dir, sizeof(dir));
	/* tpm2-tss speaks TPM 2.0 only: no TCTI for a TPM 1.2 instance. */
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:s, s:s}", "name", v->name,
	    "uuid", v->uuid, "tpm", v->tpm_version == 2 ? "2.0" : "1.2", "state",
	    registry_state_name(v->state), "desired", v->desired_running ? "running" : "stopped",
	    "socket", ctrl, "tcti", v->tpm_version == 2 ? tcti : NULL, "restarts",
	    (json_int_t)v->restarts, "state_dir", dir, "created", v->created);
	if (o != NULL && v->pid > 0)
		json_object_set_new(o, "pid", json_integer(v->pid));
	if (o != NULL && v->copy_of[0] != '\0')
		json_object_set_new(o, "copy_of", json_string(v->copy_of));
	if (o != NULL && v->owner_uid != -1) {
		char owner[32];
		if (v->owner_gid != -1)
			snprintf(owner, sizeof(owner), "%ld:%ld", v->owner_uid, v->owner_gid);
		else
			snprintf(owner, sizeof(owner), "%ld", v->owner_uid);
		json_object_set_new(o, "owner", json_string(owner));
	}
	if (o != NULL && v->error[0] != '\0')
		json_object_set_new(o, "error", json_string(v->error));
	if (o != NULL && (ek = provision_json(m, v)) != NULL)
		json_object_set_new(o, "endorsement", ek);
	if (o != NULL && (ek = snapshot_revert_json(m, v)) != NULL)
		json_object_set_new(o, "revert", ek);
	return o;
}

static json_t *
reply_pcr_list(uint32_t mask)
{
	json_t *arr = json_array();

	for (int i = 0; i < TPM_PCRS && arr != NULL; i++)
		if (mask & (1u << i))
			json_array_append_new(arr, json_integer(i));
	return arr;
}

/* The freshness anchor (docs/state.md): the counter's value the manifest
 * is bound to, the increments (commits) this vtpmd made, their time. */
static json_t *
reply_freshness(const struct manager *m)
{
	const struct fresh *f = &m->fresh;
	json_int_t deleted = 0;

	if (!f->ready)
		return json_pack("{s:b, s:s}", "ready", 0, "refused", f->refused);
	for (size_t i = 0; i < f->n; i++)
		deleted += f->e[i].deleted != 0;
	return json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "ready", 1, "nv_index",
	    "0x01300001", "anchor", f->anchor_id, "counter", (json_int_t)f->counter, "commits",
	    (json_int_t)f->commits, "commit_us", (json_int_t)f->commit_us, "increment_us",
	    (json_int_t)f->increment_us, "deleted", deleted);
}

/* 200 HOST: the host TPM, the instances, the enrolment. */
struct api_response
reply_host(struct manager *m)
{
	char pcrs[96];
	size_t running = 0;

	for (size_t i = 0; i < m->n; i++)
		running += m->vtpms[i]->state == VTPM_RUNNING;
	pcrpolicy_format(&m->cfg.pcrs, pcrs, sizeof(pcrs));
	return reply_ok(
	    200, json_pack("{s:s, s:b, s:b, s:{s:s}, s:{s:s, s:o}, s:{s:I, s:I}, s:I, s:o, s:o}",
	             "tcti", m->cfg.tcti, "simulator", hwtpm_is_simulator(m->hw), "available",
	             hwtpm_available(m->hw), "srk", "handle", "0x81000001", "pcr_policy", "bank",
	             "sha256", "pcrs", reply_pcr_list(m->cfg.pcrs.mask), "instances", "total",
	             (json_int_t)m->n, "running", (json_int_t)running, "host_tpm_commands",
	             (json_int_t)hwtpm_command_count(m->hw), "enrolment", enrol_json(m),
	             "freshness", reply_freshness(m)));
}

/* 200 POLICY: the host PCRs now, the approvals, the approval key. */
struct api_response
reply_policy(struct manager *m)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	char hex[65], x[65], y[65];
	json_t *approvals, *current;
	struct err err;

	if (policy_current(m, values, digest, &err) == -1)
		return api_error(503, err.msg, "check the host TPM");
	hex_encode(digest, sizeof(digest), hex);
	current =
	    json_pack("{s:o, s:s, s:b}", "values", pcrpolicy_values_json(m->cfg.pcrs.mask, values),
	        "policy", hex, "approved", policy_find(&m->policy, digest) != NULL);
	approvals = json_array();
	for (size_t i = 0; approvals != NULL && i < m->policy.n; i++) {
		const struct policy_entry *e = &m->policy.entries[i];
		hex_encode(e->ap.policy, TPM_DIGEST_LEN, hex);
		json_array_append_new(
		    approvals, json_pack("{s:I, s:s, s:o, s:s}", "id", (json_int_t)i + 1, "policy",
		                   hex, "values", pcrpolicy_values_json(e->mask, e->values),
		                   "approved_at", e->approved_at));
	}
	hex_encode(m->policy.pub.x, 32, x);
	hex_encode(m->policy.pub.y, 32, y);
	return reply_ok(
	    200, json_pack("{s:s, s:o, s:o, s:o, s:{s:s, s:s, s:b}}", "bank", "sha256", "pcrs",
	             reply_pcr_list(m->cfg.pcrs.mask), "current", current, "approvals", approvals,
	             "approval_key", "x", x, "y", y, "private_held", m->policy.private_held));
}

/* The answer when an instance's desired state cannot be written (errno
 * says why). */
struct api_response
reply_record_failed(const struct vtpm *v)
{
	char error[512];

	snprintf(error, sizeof(error),
	    "cannot record the desired state of %s in its "
	    "instance.json: %s",
	    v->name, strerror(errno));
	return api_error(500, error,
	    "check that the state directory is writable and not full, "
	    "then retry");
}

/* The hint of a refused start: how to approve the host's configuration. */
static const char *
reply_approve_hint(const struct manager *m)
{
	return m->policy.private_held ? "approve the host configuration if the change is expected: "
	                                "vtpmctl policy approve "
	                                "--current"
	                              : "approve the host configuration if the change is expected, "
	                                "with the administrator's "
	                                "private key: vtpmctl policy approve --current --key FILE";
}

/* The status of a failed start: refused 422, the host TPM gone 503. */
static int
reply_start_status(struct manager *m, const struct vtpm *v)
{
	if (v->state == VTPM_REFUSED)
		return 422;
	return hwtpm_available(m->hw) ? 500 : 503;
}

/* The answer to POST …/start or …/restart whose start failed. */
struct api_response
reply_start_failed(struct manager *m, const struct vtpm *v, const struct err *err)
{
	/* Older state than vtpmd recorded (fresh.c): nothing to approve. */
	if (err->kind == ERR_CORRUPT)
		return api_error(409, err->msg,
		    "the state on disk is older than what the guest was told (docs/state.md): "
		    "put back the latest state, delete the instance, or, to go back on purpose, "
		    "authorise that one revert: vtpmctl allow-revert NAME --generation N");
	return api_error(reply_start_status(m, v), err->msg,
	    v->state == VTPM_REFUSED ? reply_approve_hint(m)
	    : !hwtpm_available(m->hw)
	        ? "check the host TPM (GET /v1/host shows whether it answers), then start the "
	          "instance again"
	        : "correct what the error names (vtpmd's log has details), then start the "
	          "instance again");
}

/* The answer to a create whose instance was made but whose start failed. */
struct api_response
reply_created_not_started(struct manager *m, const struct vtpm *v, const struct err *err)
{
	return api_error(reply_start_status(m, v), err->msg,
	    v->state == VTPM_REFUSED
	        ? "the instance was created; it starts by itself once the host configuration is "
	          "approved"
	        : "the instance was created; start it with 'vtpmctl start' once fixed (see "
	          "vtpmd's log)");
}

/* The HTTP status of a failure that involved a CA: no root to check its
 * answers against (or roots refused) 400, refused by it 422, no (timely)
 * answer 502 or 504, an answer vtpmd refused 502, the host TPM gone 503,
 * the host configuration not approved (the CK and BK refuse) 409. */
int
reply_ca_status(enum err_kind kind)
{
	switch (kind) {
	case ERR_INVALID: return 400;
	case ERR_REFUSED: return 422;
	case ERR_UNREACHABLE:
	case ERR_UNTRUSTED: return 502;
	case ERR_TIMEOUT: return 504;
	case ERR_HOST_TPM: return 503;
	case ERR_POLICY: return 409; /* the host configuration is not approved */
	default: return 500;
	}
}

/* The answer to a create whose provisioning failed (the instance is gone). */
struct api_response
reply_provision_failed(const struct err *err)
{
	return api_error(reply_ca_status(err->kind), err->msg,
	    err->kind == ERR_REFUSED ? "nothing was created; see the CA's reason"
	    : err->kind == ERR_TIMEOUT
	        ? "nothing was created; check that the CA answers, or raise ca-timeout"
	    : err->kind == ERR_POLICY
	        ? "nothing was created; create again once the host configuration is approved"
	    : err->kind == ERR_UNTRUSTED
	        ? "nothing was created and nothing written to the vTPM; check that the "
	          "enrolment's Virtualization CA URL is the CA's and that its root is the one "
	          "vtpmd trusts (virtualization-ca-root), then create again"
	        : "nothing was created; see vtpmd's log");
}

/* The answer to an enrolment that failed (the previous one is kept). */
struct api_response
reply_enrol_failed(const struct err *err)
{
	return api_error(reply_ca_status(err->kind), err->msg,
	    err->kind == ERR_REFUSED
	        ? "the previous enrolment, if any, is kept; see the CA's reason"
	    : err->kind == ERR_TIMEOUT
	        ? "the previous enrolment, if any, is kept; check that the CA answers, or raise "
	          "ca-timeout"
	    : err->kind == ERR_UNTRUSTED
	        ? "the previous enrolment, if any, is kept; check that --ca names the Privacy CA "
	          "and that its root is the one vtpmd trusts (privacy-ca-root or --ca-root)"
	    : err->kind == ERR_POLICY
	        ? "the previous enrolment, if any, is kept; enrol again once the host "
	          "configuration is approved"
	    : err->kind == ERR_INVALID
	        ? "the previous enrolment, if any, is kept"
	        : "the previous enrolment, if any, is kept; see vtpmd's log");
}

/* 409: another operation on v is in flight (ops_busy). */
struct api_response
reply_busy(const struct vtpm *v)
{
	char error[160];

	snprintf(error, sizeof(error), "an operation on %s is in progress (its %s)", v->name,
	    v->op == VTPM_OP_PROVISION || v->op == VTPM_OP_CREATE ? "create"
	    : v->op == VTPM_OP_APPROVED                           ? "start after an approval"
	    : v->stopping                                         ? "stop"
	                                                          : "start");
	return api_error(409, error, "retry once it has answered");
}
