/*
 * manager_api.c: the control API's routes (docs/api.md) onto the
 * manager's operations. Every error says what went wrong and what to do.
 * A route answers at once, or begins an operation that waits for a worker
 * or a CA (ops.c) and returns api_deferred(): the operation answers when
 * it ends, and the loop serves everyone else meanwhile.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "manager.h"

static struct api_response
api_list(struct manager *m)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < m->n; i++)
		json_array_append_new(arr, reply_instance(m, m->vtpms[i]));
	return reply_ok(200, json_pack("{s:o}", "instances", arr));
}

static struct api_response
api_invalid_name(void)
{
	return api_error(400, "invalid instance name",
	    "use 1-64 characters from A-Z a-z 0-9 . _ - not starting with . or -");
}

/* Whether EK certificates can be checked (enrol_virt_roots), before
 * anything is created. */
static int
api_ek_roots(struct manager *m, struct api_response *err)
{
	struct cacheck_roots roots;
	struct err e;

	if (enrol_virt_roots(m, &roots, &e) == -1) {
		*err = api_error(e.kind == ERR_INVALID ? 409 : 500, e.msg,
		    "nothing was created; vtpmd writes no EK certificate it cannot check");
		return -1;
	}
	cacheck_roots_clear(&roots);
	return 0;
}

/* The "ek" member of a create request: absent (every type when the host
 * is enrolled, none otherwise), or a list of type names (possibly empty). */
static int
api_ek_types(struct manager *m, json_t *list, unsigned int tpm_version, unsigned int *set,
    struct api_response *err)
{
	size_t i;
	json_t *t;

	*set = 0;
	if (list == NULL) {
		if (m->enrol.enrolled && tpm_version == 2)
			*set = 1u << HWTPM_EK_RSA | 1u << HWTPM_EK_ECC;
		return 0;
	}
	json_array_foreach(list, i, t) {
		if (!json_is_string(t) || provision_parse_type(json_string_value(t), set) == -1) {
			*err = api_error(400, "unknown EK type",
			    "\"ek\" is a list of \"rsa2048\" and \"ecc-p256\"");
			return -1;
		}
	}
	if (*set != 0 && tpm_version != 2) {
		*err = api_error(400, "EK certificates are provisioned for TPM 2.0 only",
		    "omit \"ek\" for a TPM 1.2");
		return -1;
	}
	if (*set != 0 && !m->enrol.enrolled) {
		*err = api_error(409, "the host is not enrolled with a Privacy CA: no EK "
				      "certificate can be issued",
		    "enrol it first: vtpmctl host enroll --ca URL");
		return -1;
	}
	return *set != 0 ? api_ek_roots(m, err) : 0;
}

/* What a new instance is made with: POST /v1/instances, or a renew. */
struct api_new {
	const char *name;
	unsigned int version; /* 1 (TPM 1.2) or 2 */
	unsigned int ek_set;  /* EKs to provision (1 << HWTPM_EK_*) */
	bool start;
	long owner_uid, owner_gid; /* -1: none */
};

/* Makes the instance n describes (its name is free), provisions and
 * starts it as asked; the answer, or api_deferred when an operation
 * answers ticket later. */
static struct api_response
api_create_new(struct manager *m, const struct api_new *n, uint64_t ticket)
{
	struct vtpm *v;
	struct err e;

	if (lifecycle_create(m, n->name, n->version, &v, &e) == -1)
		return api_error(hwtpm_available(m->hw) ? 500 : 503, e.msg,
		    "check vtpmd's log and the host TPM");
	v->owner_uid = n->owner_uid;
	v->owner_gid = n->owner_gid;
	v->desired_running = n->start;
	if ((n->start || n->owner_uid != -1) && registry_save(&m->cfg, v) == -1) {
		lifecycle_delete(m, v);
		return api_error(500, "cannot write the instance's record",
		    "nothing was created; check the state directory");
	}
	/* With EKs: the worker, its EKs and their certificates, then the
	 * answer (ops.c); the instance is deleted if any of it fails. */
	if (n->ek_set != 0 && ops_create_provisioned(m, v, n->ek_set, ticket, &e) == -1)
		return api_error(500, e.msg, "nothing was created; see vtpmd's log");
	if (n->ek_set != 0)
		return api_deferred();
	if (lifecycle_create_done(m, v, &e) == -1) {
		lifecycle_delete(m, v);
		return api_error(500, e.msg, "nothing was created; check the state directory");
	}
	if (n->start) {
		int rc = ops_start(m, v, VTPM_OP_CREATE, ticket, &e);
		if (rc == 0)
			return api_deferred();
		if (rc == -1)
			return reply_created_not_started(m, v, &e);
	}
	return reply_ok(201, reply_instance(m, v));
}

static struct api_response
api_create(struct manager *m, const struct api_request *req)
{
	struct api_new n = {.owner_uid = -1, .owner_gid = -1};
	const char *tpm = "2.0", *owner = NULL;
	struct api_response err;
	json_t *ek = NULL;
	int start = 1;

	if (req->body == NULL ||
	    json_unpack((json_t *)req->body, "{s:s, s?s, s?b, s?o, s?s}", "name", &n.name, "tpm",
		&tpm, "start", &start, "ek", &ek, "owner", &owner) != 0 ||
	    (ek != NULL && !json_is_array(ek)))
		return api_error(400, "expected {\"name\": NAME, \"tpm\": \"2.0\"|\"1.2\", "
				      "\"start\": true|false, \"ek\": [TYPE, ...], "
				      "\"owner\": \"UID[:GID]\"}",
		    "send a JSON object with at least a name, for example {\"name\": \"vm-a\"}");
	if (owner != NULL && (registry_parse_owner(owner, &n.owner_uid, &n.owner_gid) == -1 ||
				 n.owner_uid == 0 || n.owner_gid == 0))
		return api_error(400, "owner must be \"UID\" or \"UID:GID\", numbers other than 0",
		    "give the user (and group) its VM's QEMU runs as, for example "
		    "\"64055:64055\"; root reaches every socket already");
	if (!registry_valid_name(n.name))
		return api_invalid_name();
	if (strcmp(tpm, "2.0") != 0 && strcmp(tpm, "2") != 0 && strcmp(tpm, "1.2") != 0)
		return api_error(400, "tpm must be \"2.0\" or \"1.2\"", "omit it for TPM 2.0");
	n.version = strcmp(tpm, "1.2") == 0 ? 1 : 2;
	n.start = start != 0;
	if (api_ek_types(m, ek, n.version, &n.ek_set, &err) == -1)
		return err;
	if (lifecycle_find(m, n.name) != NULL)
		return api_error(409, "an instance with this name exists",
		    "choose another name, or delete the existing instance first");
	return api_create_new(m, &n, req->ticket);
}

/*
 * POST …/renew: v, stopped, becomes a new vTPM of its own under its name:
 * its state and sealed key are deleted and a new instance is made with a
 * new UUID, state key and seeds (a TPM never run), its EK certificates
 * when the host is enrolled, its owner, started if it was to run. The way
 * out for a copy of another instance; what v held is gone.
 */
static struct api_response
api_renew(struct manager *m, struct vtpm *v, const struct api_request *req)
{
	char name[VTPM_NAME_MAX + 1], was[VTPM_NAME_MAX + 1];
	struct api_new n;
	struct api_response err;

	if (v->pid > 0 || v->state == VTPM_RUNNING || v->start_pending)
		return api_error(409, "the instance runs: renewing it discards its state",
		    "stop it first (vtpmctl stop NAME), then renew it");
	snprintf(name, sizeof(name), "%s", v->name);
	snprintf(was, sizeof(was), "%s", v->uuid);
	n = (struct api_new){.name = name, .version = v->tpm_version,
	    .start = v->desired_running, .owner_uid = v->owner_uid, .owner_gid = v->owner_gid};
	if (api_ek_types(m, NULL, n.version, &n.ek_set, &err) == -1)
		return err;
	if (lifecycle_delete(m, v) == -1)
		return api_error(500, "cannot remove the instance's state",
		    "check the state directory, then renew it again");
	log_info("%s: renewed: the vTPM %s is gone; a new one is made under its name", name, was);
	return api_create_new(m, &n, req->ticket);
}

/* POST …/start: v starts (or joins the automatic start under way); the
 * answer comes when its worker serves or fails. */
static struct api_response
api_start(struct manager *m, struct vtpm *v, const struct api_request *req)
{
	struct err err;
	int rc;

	v->desired_running = true;
	v->unsaved = true;
	v->backoff_ms = 0;
	if (v->start_pending) {
		/* Automatic (ops_busy let it through): answered when it ends. */
		v->op = VTPM_OP_START;
		v->ticket = req->ticket;
		return api_deferred();
	}
	rc = ops_start(m, v, VTPM_OP_START, req->ticket, &err);
	if (rc == 0)
		return api_deferred();
	if (v->unsaved && registry_save(&m->cfg, v) == -1)
		return reply_record_failed(v);
	v->unsaved = false;
	if (rc == -1)
		return reply_start_failed(m, v, &err);
	return reply_ok(200, reply_instance(m, v));
}

/* The HTTP status of a snapshot or revert refused with e (snapshot.c). */
static int
api_snapshot_status(const struct err *e)
{
	switch (e->kind) {
	case ERR_ABSENT: return 404;
	case ERR_INVALID:
	case ERR_BUSY:
	case ERR_EXISTS:
	case ERR_CORRUPT:
	case ERR_POLICY: return 409;
	case ERR_HOST_TPM: return 503;
	default: return 500;
	}
}

/* POST …/snapshot {"label": L}: 201 with the snapshot's record. */
static struct api_response
api_snapshot(struct manager *m, struct vtpm *v, const struct api_request *req)
{
	const char *label = "";
	json_t *rec = NULL;
	struct err e;

	if (req->body != NULL && json_unpack((json_t *)req->body, "{s?s}", "label", &label) != 0)
		return api_error(400, "expected {\"label\": TEXT} or no body",
		    "a label is optional, at most 128 printable characters");
	if (snapshot_take(m, v, label, &rec, &e) == -1)
		return api_error(e.kind == ERR_INVALID ? 400 : api_snapshot_status(&e), e.msg,
		    e.kind == ERR_EXISTS ? "list the snapshots with 'vtpmctl snapshots NAME'"
					 : "nothing was kept; vtpmd's log may say more");
	return reply_ok(201, rec);
}

/* GET …/snapshots: 200 {"snapshots": [...]}, by generation. */
static struct api_response
api_snapshots(struct manager *m, struct vtpm *v)
{
	struct err e;
	json_t *arr = snapshot_list(m, v, &e);

	if (arr == NULL)
		return api_error(500, e.msg, "check the instance's snapshots/ directory");
	return reply_ok(200, json_pack("{s:o}", "snapshots", arr));
}

/* DELETE …/snapshots/N: 200 {"deleted": N}. */
static struct api_response
api_snapshot_delete(struct manager *m, struct vtpm *v, const char *which,
    const struct api_request *req)
{
	unsigned long long gen;
	char *end;
	struct err e;

	errno = 0;
	gen = strtoull(which, &end, 10);
	if (which[0] < '1' || which[0] > '9' || errno != 0 || *end != '\0')
		return api_error(400, "expected DELETE /v1/instances/NAME/snapshots/N, N a "
				      "generation from 1",
		    "list the snapshots and their generations with 'vtpmctl snapshots NAME'");
	if (snapshot_delete(m, v, (uint64_t)gen, req->peer_uid, &e) == -1)
		return api_error(api_snapshot_status(&e), e.msg,
		    e.kind == ERR_ABSENT ? "list the snapshots with 'vtpmctl snapshots NAME'"
					 : "check the instance's snapshots/ directory");
	return reply_ok(200, json_pack("{s:I}", "deleted", (json_int_t)gen));
}

/* POST …/restore and …/allow-revert {"generation": N}: 200 INSTANCE, its
 * revert authorised for its next start. */
static struct api_response
api_revert(struct manager *m, struct vtpm *v, bool restore, const struct api_request *req)
{
	json_int_t gen = 0;
	struct err e;
	int rc;

	if (req->body == NULL ||
	    json_unpack((json_t *)req->body, "{s:I}", "generation", &gen) != 0 || gen < 1)
		return api_error(400, "expected {\"generation\": N}, a generation from 1",
		    restore ? "list the snapshots and their generations with 'vtpmctl snapshots NAME'"
			    : "give the generation of the state to go back to");
	if (restore)
		rc = snapshot_restore(m, v, (uint64_t)gen, req->peer_uid, &e);
	else
		rc = snapshot_allow_revert(m, v, (uint64_t)gen, req->peer_uid, "allow-revert", &e);
	if (rc == -1)
		return api_error(api_snapshot_status(&e), e.msg,
		    e.kind == ERR_BUSY ? "stop it first (vtpmctl stop NAME)"
		    : e.kind == ERR_ABSENT
			? "list the snapshots with 'vtpmctl snapshots NAME'"
			: "nothing was changed; vtpmd's log may say more");
	return reply_ok(200, reply_instance(m, v));
}

static struct api_response
api_action(struct manager *m, struct vtpm *v, const char *action, const struct api_request *req)
{
	if (ops_busy(v))
		return reply_busy(v);
	if ((strcmp(action, "start") == 0 || strcmp(action, "restart") == 0) &&
	    v->copy_of[0] != '\0') {
		struct err e;
		registry_copy_refusal(v, &e);
		return api_error(409, e.msg, "delete one of the two, or renew this one (POST "
					     "/v1/instances/NAME/renew)");
	}
	if (strcmp(action, "stop") == 0 || strcmp(action, "restart") == 0) {
		ops_call_off(m, v);
		v->desired_running = strcmp(action, "restart") == 0;
		if (v->desired_running)
			metrics_count(&m->metrics.restarts, "request");
		if (registry_save(&m->cfg, v) == -1)
			return reply_record_failed(v);
		/* Answered once the worker ended (and, for a restart, once it
		 * serves again). */
		if (ops_stop(m, v, 200, req->ticket) == 0)
			return api_deferred();
		if (strcmp(action, "stop") == 0)
			return reply_ok(200, reply_instance(m, v));
	} else if (strcmp(action, "renew") == 0) {
		return api_renew(m, v, req);
	} else if (strcmp(action, "snapshot") == 0) {
		return api_snapshot(m, v, req);
	} else if (strcmp(action, "restore") == 0 || strcmp(action, "allow-revert") == 0) {
		return api_revert(m, v, strcmp(action, "restore") == 0, req);
	} else if (strcmp(action, "start") != 0) {
		return api_error(404, "unknown action", "use start, stop, restart, renew, snapshot, "
		    "restore or allow-revert");
	}
	return api_start(m, v, req);
}

/* The query of DELETE /v1/instances/NAME: "" or force=1 (or true; 0 and
 * false ask for no force), pairs joined by '&'. Returns 0 with *force, or
 * -1 with a 400 answer in *err. */
static int
api_delete_query(const char *query, bool *force, struct api_response *err)
{
	char copy[sizeof(((struct api_request *)0)->query)], msg[320], *pair, *value, *save = NULL;

	*force = false;
	snprintf(copy, sizeof(copy), "%s", query);
	for (pair = strtok_r(copy, "&", &save); pair != NULL; pair = strtok_r(NULL, "&", &save)) {
		value = strchr(pair, '=');
		if (value != NULL)
			*value++ = '\0';
		if (strcmp(pair, "force") != 0) {
			snprintf(msg, sizeof(msg), "unknown query parameter '%s'", pair);
			*err = api_error(400, msg, "DELETE takes only force=1, to delete an instance "
			    "that runs or should run");
			return -1;
		}
		if (value != NULL && (strcmp(value, "1") == 0 || strcmp(value, "true") == 0)) {
			*force = true;
		} else if (value != NULL && (strcmp(value, "0") == 0 || strcmp(value, "false") == 0)) {
			*force = false;
		} else {
			snprintf(msg, sizeof(msg), "force=%s: not a valid value", value ? value : "");
			*err = api_error(400, msg, "use force=1 (or true) to delete an instance that "
			    "runs or should run");
			return -1;
		}
	}
	return 0;
}

/* Why deleting v needs force, or NULL when it does not: its worker is
 * alive, or vtpmd keeps starting it (desired state running, in back-off or
 * refused). Its guest would lose its TPM. */
static const char *
api_delete_needs_force(const struct vtpm *v, char *buf, size_t len)
{
	if (v->state == VTPM_RUNNING)
		return "the instance is running";
	if (v->pid > 0) {
		snprintf(buf, len, "the instance's worker (pid %d) is alive (state %s)", (int)v->pid,
		    registry_state_name(v->state));
		return buf;
	}
	if (v->desired_running) {
		snprintf(buf, len, "the instance should be running (state %s, desired running): "
		    "vtpmd starts it again", registry_state_name(v->state));
		return buf;
	}
	return NULL;
}

static struct api_response
api_delete(struct manager *m, struct vtpm *v, const struct api_request *req)
{
	char name[VTPM_NAME_MAX + 1], buf[160], error[512], hint[256];
	struct api_response err;
	const char *busy;
	bool force;

	if (api_delete_query(req->query, &force, &err) == -1)
		return err;
	if (ops_busy(v))
		return reply_busy(v);
	busy = api_delete_needs_force(v, buf, sizeof(buf));
	if (busy != NULL && !force) {
		snprintf(hint, sizeof(hint), "stop it first (vtpmctl stop %s), or delete with --force "
		    "(force=1 in the API; its guest loses its TPM)", v->name);
		return api_error(409, busy, hint);
	}
	snprintf(name, sizeof(name), "%s", v->name);
	ops_call_off(m, v);
	if (lifecycle_delete(m, v) == -1) {
		snprintf(error, sizeof(error), "could not remove the files of %s: %s", name,
		    strerror(errno));
		return api_error(500, error, "check that the state directory's instances/ is "
		    "writable (vtpmd's log may say more), then delete again");
	}
	return reply_ok(200, json_pack("{s:s}", "deleted", name));
}

static struct api_response
api_instances(struct manager *m, const struct api_request *req)
{
	char name[VTPM_NAME_MAX + 2];
	const char *rest = req->path + strlen("/v1/instances/");
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
	struct vtpm *v;

	if (len == 0)
		return api_error(404, "no such instance", "list instances with 'vtpmctl list'");
	if (len > VTPM_NAME_MAX)
		return api_invalid_name();
	memcpy(name, rest, len);
	name[len] = '\0';
	if (!registry_valid_name(name))
		return api_invalid_name();
	v = lifecycle_find(m, name);
	if (v == NULL)
		return api_error(404, "no such instance", "list instances with 'vtpmctl list'");
	if (slash != NULL) {
		if (req->method == API_GET && strcmp(slash + 1, "snapshots") == 0)
			return api_snapshots(m, v);
		if (req->method == API_DELETE && strncmp(slash + 1, "snapshots/", 10) == 0)
			return api_snapshot_delete(m, v, slash + 11, req);
		if (req->method != API_POST)
			return api_error(405, "use POST for actions",
			    "POST /v1/instances/NAME/start, /stop or /restart");
		return api_action(m, v, slash + 1, req);
	}
	if (req->method == API_GET)
		return reply_ok(200, reply_instance(m, v));
	if (req->method == API_DELETE)
		return api_delete(m, v, req);
	return api_error(405, "use GET or DELETE on an instance",
	    "GET /v1/instances/NAME shows it, DELETE removes it, POST …/start|stop|restart acts");
}

static struct api_response
api_policy_approve(struct manager *m, const struct api_request *req)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN];
	const char *pol, *x, *y, *r, *s;
	struct approval ap;
	json_t *vals;
	uint32_t mask;
	struct err err;
	int current = 0;

	if (req->body == NULL)
		return api_error(400, "expected a JSON body",
		    "send {\"current\": true}, or an approval signed by 'vtpmctl policy approve "
		    "--current --key FILE'");
	if (json_unpack((json_t *)req->body, "{s:b}", "current", &current) == 0 && current) {
		if (policy_approve_current(m, &err) == -1)
			return api_error(!m->policy.private_held ? 409
					 : hwtpm_available(m->hw) ? 500 : 503, err.msg,
			    !m->policy.private_held
			        ? "sign the approval with the administrator's private key: vtpmctl "
				  "policy approve --current --key FILE"
			        : "check the host TPM and that the state directory is writable "
				  "(vtpmd's log says more), then approve again");
		return ops_approved(m, req->ticket);
	}
	if (json_unpack((json_t *)req->body, "{s:s, s:o, s:{s:s, s:s}, s:{s:s, s:s}}", "policy",
		&pol, "values", &vals, "public", "x", &x, "y", &y, "signature", "r", &r, "s",
		&s) != 0 ||
	    hex_decode(pol, ap.policy, TPM_DIGEST_LEN) == -1 || hex_decode(x, ap.pub.x, 32) ||
	    hex_decode(y, ap.pub.y, 32) || hex_decode(r, ap.sig_r, 32) ||
	    hex_decode(s, ap.sig_s, 32) || pcrpolicy_values_parse(vals, &mask, values) == -1)
		return api_error(400, "expected {\"current\": true} or a signed approval",
		    "send {\"current\": true}, or let 'vtpmctl policy approve --current --key FILE' "
		    "sign and send the approval");
	if (policy_add(m, &ap, mask, values, &err) == -1)
		return api_error(422, err.msg, "sign the current policy with the approval key");
	return ops_approved(m, req->ticket);
}

/* Whether s is a usable CA base URL: http[s]://HOST[:PORT][/PREFIX]
 * (httpc.c decides, at each request, where plain http:// may go). */
static bool
api_valid_url(const char *s)
{
	size_t n = strlen(s), scheme = strncmp(s, "https://", 8) == 0 ? 8 : 7;

	if (strncmp(s, "http", 4) != 0 || (scheme == 7 && strncmp(s, "http://", 7) != 0) ||
	    n <= scheme || n >= sizeof(((struct enrolment *)0)->privacy_ca))
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
}

static bool
api_is_https(const char *url)
{
	return strncmp(url, "https://", 8) == 0;
}

/* A host name for the CK certificate: 1-64 printable ASCII characters. */
static bool
api_valid_host(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p < ' ' || *p >= 0x7f)
			return false;
	return true;
}

static struct api_response
api_host_enrol(struct manager *m, const struct api_request *req)
{
	const char *ca = NULL, *vca = NULL, *host = NULL;
	struct enrol_roots_pem roots = {NULL, NULL};
	char hostname[65] = "";
	struct err e;

	if (req->body == NULL ||
	    json_unpack((json_t *)req->body, "{s:s, s?s, s?s, s?s, s?s}", "ca", &ca,
		"virtualization_ca", &vca, "host", &host, "ca_root", &roots.privacy,
		"virtualization_ca_root", &roots.virt) != 0)
		return api_error(400, "expected {\"ca\": URL, \"virtualization_ca\": URL, "
				      "\"host\": NAME, \"ca_root\": PEM, \"virtualization_ca_root\": PEM}",
		    "see docs/api.md");
	if (!api_valid_url(ca) || (vca != NULL && !api_valid_url(vca)))
		return api_error(400,
		    "a CA URL must be https://HOST[:PORT][/PREFIX], or http://HOST[:PORT][/PREFIX] "
		    "on a loopback address",
		    "for example https://ca.example.org:8440");
	if ((api_is_https(ca) || (vca != NULL && api_is_https(vca))) &&
	    m->cfg.ca_tls_root[0] == '\0' && m->cfg.ca_tls_pin[0] == '\0')
		return api_error(400,
		    "an https:// CA needs a TLS root or pin to check its certificate by",
		    "set ca-tls-root or ca-tls-pin in vtpmd's configuration (see docs/config.md)");
	if (host == NULL) {
		if (gethostname(hostname, sizeof(hostname) - 1) == -1)
			snprintf(hostname, sizeof(hostname), "localhost");
		host = hostname;
	}
	if (!api_valid_host(host))
		return api_error(400, "the host name must be 1-64 printable ASCII characters",
		    "give another with --name");
	if (m->enrolling != NULL)
		return api_error(409, "an enrolment is in progress",
		    "retry once it has answered (vtpmctl host shows the enrolment)");
	/* Answered when the CA has answered twice (ops.c). */
	if (ops_enrol(m, ca, vca, host, &roots, req->ticket, &e) == -1)
		return reply_enrol_failed(&e);
	return api_deferred();
}

/* The host EK certificate, for the Privacy CA's operator (vtpm-ca host add). */
static struct api_response
api_host_ek_certificate(struct manager *m)
{
	struct err e;
	json_t *o = enrol_ek_certificate_json(m, &e);

	if (o == NULL)
		return api_error(e.kind == ERR_HOST_TPM ? 503 : 500, e.msg,
		    e.kind == ERR_HOST_TPM ? "check the host TPM and try again"
		                           : "a host TPM without its manufacturer's EK certificate "
		                             "cannot be admitted by a Privacy CA");
	return reply_ok(200, o);
}

/* Forgets a deleted vTPM's tombstone (docs/state.md, "Deleted vTPMs"): its
 * directory, put back, then starts as the state it holds. */
static struct api_response
api_host_forget_deleted(struct manager *m, const struct api_request *req)
{
	const char *uuid = NULL;
	struct err e;

	if (req->body == NULL || json_unpack((json_t *)req->body, "{s:s}", "uuid", &uuid) != 0 ||
	    strlen(uuid) != 36)
		return api_error(400, "expected {\"uuid\": UUID}", "see docs/api.md");
	if (fresh_forget_deleted(m, uuid, &e) == -1)
		return api_error(e.kind == ERR_ABSENT    ? 404
		                 : e.kind == ERR_CORRUPT ? 409
		                                         : 503,
		    e.msg,
		    e.kind == ERR_ABSENT ? "vtpmctl info NAME names a refused vTPM's UUID"
		                         : "nothing was changed");
	return reply_ok(200, json_pack("{s:s, s:b}", "uuid", uuid, "forgotten", 1));
}

/* The API handler: routes one request. */
struct api_response
manager_api(void *ctx, const struct api_request *req)
{
	struct manager *m = ctx;

	if (strcmp(req->path, "/v1/instances") == 0) {
		if (req->method == API_GET)
			return api_list(m);
		if (req->method == API_POST)
			return api_create(m, req);
		return api_error(405, "use GET or POST on /v1/instances", "see docs/api.md");
	}
	if (strncmp(req->path, "/v1/instances/", 14) == 0)
		return api_instances(m, req);
	if (strcmp(req->path, "/v1/policy") == 0 && req->method == API_GET)
		return reply_policy(m);
	if (strcmp(req->path, "/v1/policy/approve") == 0 && req->method == API_POST)
		return api_policy_approve(m, req);
	if (strcmp(req->path, "/v1/host") == 0 && req->method == API_GET)
		return reply_host(m);
	if (strcmp(req->path, "/v1/host/enroll") == 0 && req->method == API_POST)
		return api_host_enrol(m, req);
	if (strcmp(req->path, "/v1/host/ek-certificate") == 0 && req->method == API_GET)
		return api_host_ek_certificate(m);
	if (strcmp(req->path, "/v1/host/forget-deleted") == 0 && req->method == API_POST)
		return api_host_forget_deleted(m, req);
	if (strcmp(req->path, "/metrics") == 0 && req->method == API_GET)
		return manager_metrics_reply(m);
	return api_error(404, "no such endpoint", "see docs/api.md");
}
