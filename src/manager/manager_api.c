/*
 * manager_api.c: the control API's routes (docs/api.md) onto the
 * manager's operations. Every error says what went wrong and what to do.
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
api_ok(int status, json_t *body)
{
	struct api_response r = {.status = status, .body = body};

	if (body == NULL)
		return api_error(500, "out of memory", "retry");
	return r;
}

static json_t *
api_instance_json(struct manager *m, const struct vtpm *v)
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
	if (o != NULL && v->error[0] != '\0')
		json_object_set_new(o, "error", json_string(v->error));
	if (o != NULL && (ek = provision_json(m, v)) != NULL)
		json_object_set_new(o, "endorsement", ek);
	return o;
}

static struct api_response
api_list(struct manager *m)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < m->n; i++)
		json_array_append_new(arr, api_instance_json(m, m->vtpms[i]));
	return api_ok(200, json_pack("{s:o}", "instances", arr));
}

static struct api_response
api_invalid_name(void)
{
	return api_error(400, "invalid instance name",
	    "use 1-64 characters from A-Z a-z 0-9 . _ - not starting with . or -");
}

/* The HTTP status of an enrolment or provisioning failure. */
static int
api_enrol_status(enum err_kind kind)
{
	switch (kind) {
	case ERR_REFUSED: return 422;
	case ERR_UNREACHABLE:
	case ERR_TIMEOUT: return 502;
	case ERR_HOST_TPM: return 503;
	default: return 500;
	}
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
	return 0;
}

/* A new instance's EKs and certificates; it is deleted when that fails,
 * so that no half-provisioned vTPM remains. */
static int
api_provision(struct manager *m, struct vtpm *v, unsigned int set, bool keep_running,
    struct api_response *err)
{
	struct err e;
	int status = 500;

	if (lifecycle_start(m, v, &e) == -1 ||
	    (status = 0, provision_instance(m, v, set, &e) == -1)) {
		if (status == 0)
			status = api_enrol_status(e.kind);
		if (e.kind == ERR_HOST_TPM)
			hwtpm_recover(m->hw);
		log_warnx("%s: provisioning failed, instance deleted: %s", v->name, e.msg);
		*err = api_error(status, e.msg,
		    status == 422 ? "nothing was created; see the CA's reason"
				  : "nothing was created; see vtpmd's log");
		lifecycle_delete(m, v);
		return -1;
	}
	if (!keep_running)
		lifecycle_stop(m, v);
	return 0;
}

static struct api_response
api_create(struct manager *m, const struct api_request *req)
{
	const char *name = NULL, *tpm = "2.0";
	int start = 1;
	unsigned int version, set;
	json_t *ek = NULL;
	struct api_response err;
	struct vtpm *v;
	struct err e;

	if (req->body == NULL ||
	    json_unpack((json_t *)req->body, "{s:s, s?s, s?b, s?o}", "name", &name, "tpm", &tpm,
		"start", &start, "ek", &ek) != 0 || (ek != NULL && !json_is_array(ek)))
		return api_error(400, "expected {\"name\": NAME, \"tpm\": \"2.0\"|\"1.2\", "
				      "\"start\": true|false, \"ek\": [TYPE, ...]}",
		    "send a JSON object with at least a name, for example {\"name\": \"vm-a\"}");
	if (!registry_valid_name(name))
		return api_invalid_name();
	if (strcmp(tpm, "2.0") != 0 && strcmp(tpm, "2") != 0 && strcmp(tpm, "1.2") != 0)
		return api_error(400, "tpm must be \"2.0\" or \"1.2\"", "omit it for TPM 2.0");
	version = strcmp(tpm, "1.2") == 0 ? 1 : 2;
	if (api_ek_types(m, ek, version, &set, &err) == -1)
		return err;
	if (lifecycle_find(m, name) != NULL)
		return api_error(409, "an instance with this name exists",
		    "choose another name, or delete the existing instance first");
	if (lifecycle_create(m, name, version, &v, &e) == -1)
		return api_error(hwtpm_available(m->hw) ? 500 : 503, e.msg,
		    "check vtpmd's log and the host TPM");
	if (start) {
		v->desired_running = true;
		registry_save(&m->cfg, v);
	}
	if (set != 0 && api_provision(m, v, set, start, &err) == -1)
		return err;
	if (lifecycle_create_done(m, v, &e) == -1) {
		lifecycle_delete(m, v);
		return api_error(500, e.msg, "nothing was created; check the state directory");
	}
	if (set == 0 && start && lifecycle_start(m, v, &e) == -1) {
		return api_error(v->state == VTPM_REFUSED ? 422 : hwtpm_available(m->hw) ? 500 : 503, e.msg,
		    v->state == VTPM_REFUSED
		        ? "the instance was created; it starts by itself once the host configuration "
		          "is approved"
		        : "the instance was created; start it with 'vtpmctl start' once fixed (see "
		          "vtpmd's log)");
	}
	return api_ok(201, api_instance_json(m, v));
}

/* The hint of a refused start: how to approve the host's configuration. */
static const char *
api_approve_hint(const struct manager *m)
{
	return m->policy.private_held
	    ? "approve the host configuration if the change is expected: vtpmctl policy approve "
	      "--current"
	    : "approve the host configuration if the change is expected, with the administrator's "
	      "private key: vtpmctl policy approve --current --key FILE";
}

/* The answer when an instance's desired state cannot be written. */
static struct api_response
api_record_failed(const struct vtpm *v)
{
	char error[512];

	snprintf(error, sizeof(error), "cannot record the desired state of %s in its "
	    "instance.json: %s", v->name, strerror(errno));
	return api_error(500, error, "check that the state directory is writable and not full, "
	    "then retry");
}

static struct api_response
api_action(struct manager *m, struct vtpm *v, const char *action)
{
	struct err err;
	int rc;

	if (strcmp(action, "stop") == 0 || strcmp(action, "restart") == 0) {
		v->desired_running = strcmp(action, "restart") == 0;
		if (registry_save(&m->cfg, v) == -1)
			return api_record_failed(v);
		lifecycle_stop(m, v);
		if (strcmp(action, "stop") == 0)
			return api_ok(200, api_instance_json(m, v));
	} else if (strcmp(action, "start") != 0) {
		return api_error(404, "unknown action", "use start, stop or restart");
	}
	v->desired_running = true;
	v->unsaved = true;
	v->backoff_ms = 0;
	rc = lifecycle_start(m, v, &err);
	if (v->unsaved && registry_save(&m->cfg, v) == -1)
		return api_record_failed(v);
	v->unsaved = false;
	if (rc == -1)
		return api_error(v->state == VTPM_REFUSED ? 422 : hwtpm_available(m->hw) ? 500 : 503, err.msg,
		    v->state == VTPM_REFUSED       ? api_approve_hint(m)
		    : !hwtpm_available(m->hw) ? "check the host TPM (GET /v1/host shows whether it "
						"answers), then start the instance again"
					      : "correct what the error names (vtpmd's log has "
						"details), then start the instance again");
	return api_ok(200, api_instance_json(m, v));
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
	busy = api_delete_needs_force(v, buf, sizeof(buf));
	if (busy != NULL && !force) {
		snprintf(hint, sizeof(hint), "stop it first (vtpmctl stop %s), or delete with --force "
		    "(force=1 in the API; its guest loses its TPM)", v->name);
		return api_error(409, busy, hint);
	}
	snprintf(name, sizeof(name), "%s", v->name);
	if (lifecycle_delete(m, v) == -1) {
		snprintf(error, sizeof(error), "could not remove the files of %s: %s", name,
		    strerror(errno));
		return api_error(500, error, "check that the state directory's instances/ is "
		    "writable (vtpmd's log may say more), then delete again");
	}
	return api_ok(200, json_pack("{s:s}", "deleted", name));
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
		if (req->method != API_POST)
			return api_error(405, "use POST for actions",
			    "POST /v1/instances/NAME/start, /stop or /restart");
		return api_action(m, v, slash + 1);
	}
	if (req->method == API_GET)
		return api_ok(200, api_instance_json(m, v));
	if (req->method == API_DELETE)
		return api_delete(m, v, req);
	return api_error(405, "use GET or DELETE on an instance",
	    "GET /v1/instances/NAME shows it, DELETE removes it, POST …/start|stop|restart acts");
}

static json_t *
api_pcr_list(uint32_t mask)
{
	json_t *arr = json_array();

	for (int i = 0; i < TPM_PCRS && arr != NULL; i++)
		if (mask & (1u << i))
			json_array_append_new(arr, json_integer(i));
	return arr;
}

static struct api_response
api_policy_show(struct manager *m)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	char hex[65], x[65], y[65];
	json_t *approvals, *current;
	struct err err;

	if (policy_current(m, values, digest, &err) == -1)
		return api_error(503, err.msg, "check the host TPM");
	hex_encode(digest, sizeof(digest), hex);
	current = json_pack("{s:o, s:s, s:b}", "values", pcrpolicy_values_json(m->cfg.pcrs.mask, values),
	    "policy", hex, "approved", policy_find(&m->policy, digest) != NULL);
	approvals = json_array();
	for (size_t i = 0; approvals != NULL && i < m->policy.n; i++) {
		const struct policy_entry *e = &m->policy.entries[i];
		hex_encode(e->ap.policy, TPM_DIGEST_LEN, hex);
		json_array_append_new(approvals,
		    json_pack("{s:I, s:s, s:o, s:s}", "id", (json_int_t)i + 1, "policy", hex,
			"values", pcrpolicy_values_json(e->mask, e->values), "approved_at",
			e->approved_at));
	}
	hex_encode(m->policy.pub.x, 32, x);
	hex_encode(m->policy.pub.y, 32, y);
	return api_ok(200, json_pack("{s:s, s:o, s:o, s:o, s:{s:s, s:s, s:b}}", "bank", "sha256",
	    "pcrs", api_pcr_list(m->cfg.pcrs.mask), "current", current, "approvals", approvals,
	    "approval_key", "x", x, "y", y, "private_held", m->policy.private_held));
}

/* After an approval: starts again every instance that should run and was
 * refused for want of one. Each start is logged; one that fails keeps its
 * error (manager_start). Returns the names of those started, or NULL. */
static json_t *
api_start_refused(struct manager *m)
{
	json_t *started = json_array();
	struct err err;

	for (size_t i = 0; i < m->n; i++) {
		struct vtpm *v = m->vtpms[i];
		if (!v->desired_running || v->state != VTPM_REFUSED)
			continue;
		log_info("%s: starting again, under the host configuration just approved", v->name);
		v->backoff_ms = 0;
		if (lifecycle_start(m, v, &err) == 0 && started != NULL)
			json_array_append_new(started, json_string(v->name));
	}
	return started;
}

/* The answer to an approval: POLICY, with the instances it started. */
static struct api_response
api_policy_approved(struct manager *m)
{
	json_t *started = api_start_refused(m);
	struct api_response r = api_policy_show(m);

	if (r.status == 200 && started != NULL)
		json_object_set_new(r.body, "started", started);
	else
		json_decref(started);
	return r;
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
		return api_policy_approved(m);
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
	return api_policy_approved(m);
}

static struct api_response
api_host(struct manager *m)
{
	char pcrs[96];
	size_t running = 0;

	for (size_t i = 0; i < m->n; i++)
		running += m->vtpms[i]->state == VTPM_RUNNING;
	pcrpolicy_format(&m->cfg.pcrs, pcrs, sizeof(pcrs));
	return api_ok(200, json_pack("{s:s, s:b, s:b, s:{s:s}, s:{s:s, s:o}, s:{s:I, s:I}, s:I, s:o}",
	    "tcti", m->cfg.tcti, "simulator", hwtpm_is_simulator(m->hw), "available",
	    hwtpm_available(m->hw), "srk", "handle",
	    "0x81000001", "pcr_policy", "bank", "sha256", "pcrs", api_pcr_list(m->cfg.pcrs.mask),
	    "instances", "total", (json_int_t)m->n, "running", (json_int_t)running,
	    "host_tpm_commands", (json_int_t)hwtpm_command_count(m->hw), "enrolment",
	    enrol_json(m)));
}

/* Whether s is a usable CA base URL: http://HOST[:PORT][/PREFIX]. */
static bool
api_valid_url(const char *s)
{
	size_t n = strlen(s);

	if (strncmp(s, "http://", 7) != 0 || n <= 7 || n >= sizeof(((struct enrolment *)0)->privacy_ca))
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
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
	char hostname[65] = "";
	struct err e;

	if (req->body == NULL ||
	    json_unpack((json_t *)req->body, "{s:s, s?s, s?s}", "ca", &ca, "virtualization_ca",
		&vca, "host", &host) != 0)
		return api_error(400, "expected {\"ca\": URL, \"virtualization_ca\": URL, "
				      "\"host\": NAME}", "see docs/api.md");
	if (!api_valid_url(ca) || (vca != NULL && !api_valid_url(vca)))
		return api_error(400, "a CA URL must be http://HOST[:PORT][/PREFIX]",
		    "for example http://127.0.0.1:8440");
	if (host == NULL) {
		if (gethostname(hostname, sizeof(hostname) - 1) == -1)
			snprintf(hostname, sizeof(hostname), "localhost");
		host = hostname;
	}
	if (!api_valid_host(host))
		return api_error(400, "the host name must be 1-64 printable ASCII characters",
		    "give another with --name");
	if (enrol_host(m, ca, vca, host, &e) == -1 &&
	    (e.kind != ERR_HOST_TPM || !hwtpm_recover(m->hw) ||
	        enrol_host(m, ca, vca, host, &e) == -1))
		return api_error(api_enrol_status(e.kind), e.msg,
		    e.kind == ERR_REFUSED
		        ? "the previous enrolment, if any, is kept; see the CA's reason"
		        : "the previous enrolment, if any, is kept; see vtpmd's log");
	return api_host(m);
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
		return api_policy_show(m);
	if (strcmp(req->path, "/v1/policy/approve") == 0 && req->method == API_POST)
		return api_policy_approve(m, req);
	if (strcmp(req->path, "/v1/host") == 0 && req->method == API_GET)
		return api_host(m);
	if (strcmp(req->path, "/v1/host/enroll") == 0 && req->method == API_POST)
		return api_host_enrol(m, req);
	return api_error(404, "no such endpoint", "see docs/api.md");
}
