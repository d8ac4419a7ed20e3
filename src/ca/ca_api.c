/*
 * ca_api.c: vtpm-ca's routes (docs/ca-api.md), in the network child.
 * Every POST is answered through ca_dispatch(); each leaves one audit row:
 * what was challenged or issued (written by the parent as it does it), or
 * why it was refused (reported to the parent from here). Every request is
 * timed and every refusal counted for GET /metrics (docs/ca-api.md,
 * "Metrics"): this child's own counts, and the parent's, asked for.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include <jansson.h>

#include "ca_msg.h"

/* ---- GET routes ---- */

static struct api_response
ca_reply_json(int status, json_t *body)
{
	struct api_response r = {.status = status, .body = (struct json_t *)body};

	if (body == NULL)
		return api_error(500, "out of memory", "try again");
	return r;
}

static struct api_response
ca_get_ca(struct ca_server *s, const struct ca_der *cert)
{
	char *pem = certs_pem_encode(cert->der, cert->len);
	char *root = certs_pem_encode(s->root.der, s->root.len);
	json_t *o = NULL;

	if (pem != NULL && root != NULL)
		o = json_pack("{s:s, s:[s]}", "certificate", pem, "chain", root);
	free(root);
	free(pem);
	return ca_reply_json(200, o);
}

static struct api_response
ca_get_status(struct ca_server *s, const char *arg)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	struct ca_status st;
	struct err err;

	if (ca_parse_serial(arg, serial) == -1)
		return api_error(400, "not a certificate serial number",
		    "give the serial in hexadecimal: GET /v1/status/SERIAL");
	if (ca_ask_status(&s->link, serial, &st, &err) == -1) {
		if (err.kind == ERR_ABSENT)
			return api_error(404, "no certificate with this serial was issued here",
			    "ask the CA that issued it");
		return api_error(500, "the records cannot be read", "try again; see vtpm-ca's log");
	}
	if (!st.revoked)
		return ca_reply_json(
		    200, json_pack("{s:s, s:b, s:n}", "serial", serial, "revoked", 0, "reason"));
	return ca_reply_json(
	    200, json_pack("{s:s, s:b, s:s, s:I}", "serial", serial, "revoked", 1, "reason",
	             st.reason, "revoked_at", (json_int_t)st.revoked_at));
}

/* GET /v1/ROLE/crl: the role's CRL, signed afresh by the parent, as DER
 * (application/pkix-crl, RFC 5280 4.2.1.13). */
static struct api_response
ca_get_crl(struct ca_server *s, enum ca_role role)
{
	struct api_response r = {.status = 200, .raw_type = "application/pkix-crl"};
	struct ca_answer a;

	ca_ask_crl(&s->link, role, &a);
	if (a.rc != CA_MSG_OK) {
		log_warnx("%s CRL: %s", ca_role_name(role), a.reason);
		ca_answer_clear(&a);
		return api_error(500, "the CRL cannot be made", "try again; see vtpm-ca's log");
	}
	r.raw = a.der;
	r.raw_len = a.der_len;
	a.der = NULL;
	ca_answer_clear(&a);
	return r;
}

/* ---- POST routes ---- */

/* An IPv4 address (4 bytes) as its /24: "192.0.2.0/24". */
static void
ca_client_v4(const uint8_t a[static 4], char out[static CA_CLIENT_MAX])
{
	snprintf(out, CA_CLIENT_MAX, "%u.%u.%u.0/24", a[0], a[1], a[2]);
}

void
ca_client_key(const char *peer, char out[static CA_CLIENT_MAX])
{
	struct in6_addr a6;
	struct in_addr a4;
	char text[INET6_ADDRSTRLEN];

	snprintf(out, CA_CLIENT_MAX, "%s", peer[0] != '\0' ? peer : "unknown");
	if (inet_pton(AF_INET, peer, &a4) == 1) {
		ca_client_v4((const uint8_t *)&a4.s_addr, out);
		return;
	}
	if (inet_pton(AF_INET6, peer, &a6) != 1)
		return;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		ca_client_v4(&a6.s6_addr[12], out);
		return;
	}
	memset(&a6.s6_addr[6], 0, 10);
	if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL)
		snprintf(out, CA_CLIENT_MAX, "%s/48", text);
}

typedef void (*ca_post_handler)(struct ca_server *s, const struct json_t *body, struct ca_reply *r);

/* The log's words for the vTPM a request is for, from the X-Vtpmd-Instance
 * header vtpmd sets (its client's say: checked to be an instance name). */
static void
ca_for_instance(const struct api_request *req, char *buf, size_t len)
{
	if (req->instance[0] != '\0')
		snprintf(buf, len, " (for instance %s)", req->instance);
	else
		buf[0] = '\0';
}

static struct api_response
ca_dispatch(struct ca_server *s, enum ca_msg_action action, ca_post_handler fn,
    const struct api_request *req)
{
	const struct json_t *body = req->body;
	const char *name = ca_msg_action_name(action);
	char who[API_INSTANCE_MAX + 32];
	struct ca_reply r = {0};
	struct api_response out = {0};

	if (body == NULL)
		ca_refuse(
		    &r, 400, "send a JSON object (docs/ca-api.md)", "the request has no body");
	else
		fn(s, body, &r);
	if (r.status == 0)
		ca_refuse(&r, 500, "report this as a bug", "the handler gave no answer");
	if (r.outcome == NULL)
		r.outcome = r.status == 200 ? "done" : "refused";
	ca_for_instance(req, who, sizeof(who));
	if (r.status == 200) {
		/* The parent wrote its audit row as it challenged or issued. */
		log_info("%s%s: %s %s", name, who, r.outcome, r.detail);
		out.status = 200;
		out.body = r.body;
		return out;
	}
	ca_ask_audit(&s->link, (int)action, r.status >= 500, r.error);
	log_info("%s%s: %s (%d): %s", name, who, r.outcome, r.status, r.error);
	json_decref(r.body);
	return api_error(r.status, r.error, r.hint[0] != '\0' ? r.hint : NULL);
}

static bool
ca_serves(const struct ca_server *s, enum ca_role role)
{
	return (s->role & role) != 0;
}

static struct api_response
ca_not_served(const char *role)
{
	char hint[128];

	snprintf(hint, sizeof(hint),
	    "this vtpm-ca does not serve the %s role; "
	    "start one with --role %s or --role both",
	    role, role);
	return api_error(404, "no such route on this CA", hint);
}

/* ---- GET /metrics ---- */

/* The routes requests are timed by (CA_ROUTES of them): the path's last
 * segment for the POSTs, its kind for the GETs. */
static const char *const ca_route_names[CA_ROUTES] = {
    "challenge", "certify", "nonce", "ek-certificate", "status", "ca", "crl", "metrics", "other"};

static size_t
ca_route_index(const char *path)
{
	const char *last = strrchr(path, '/');
	size_t i;

	if (strncmp(path, "/v1/status/", 11) == 0)
		return 4;
	for (i = 0; i < CA_ROUTES - 1; i++)
		if (strcmp(last != NULL ? last + 1 : path, ca_route_names[i]) == 0)
			break;
	return i;
}

/* What an answer's status says of a refusal, for vtpm_ca_refusals_total
 * (docs/ca-api.md, the statuses). */
static const char *
ca_refusal_reason(int status)
{
	switch (status) {
	case 400: return "malformed";
	case 403: return "refused";
	case 404: return "not-found";
	case 405: return "method";
	case 409: return "used";
	case 410: return "expired";
	case 429: return "limit";
	case 500: return "failed";
	case 503: return "full";
	default: return "other";
	}
}

void
ca_api_init(struct ca_server *s)
{
	for (size_t i = 0; i < CA_ROUTES; i++)
		metrics_hist_init(&s->latency[i], metrics_latency_bounds, METRICS_LATENCY_N);
	metrics_count_zero(&s->refusals, "refused");
	metrics_count_zero(&s->refusals, "failed");
}

static void
ca_metrics_parent(struct metrics_text *t, const struct ca_msg_metrics *pm)
{
	static const char *const kinds[CA_ISSUED_KINDS] = {"ck", "ak", "ek"};

	metrics_family(t, "vtpm_ca_certificates_issued_total", "counter",
	    "certificates issued since serve started, by kind (ck: host CK, ak: guest AK, "
	    "ek: vTPM EK)");
	for (size_t i = 0; i < CA_ISSUED_KINDS; i++)
		metrics_sample(t, "vtpm_ca_certificates_issued_total", "kind", kinds[i],
		    (double)pm->issued[i]);
	metrics_family(t, "vtpm_ca_open_challenges", "gauge",
	    "Privacy CA challenges handed out, unanswered and unexpired (-1: unreadable)");
	metrics_sample(t, "vtpm_ca_open_challenges", NULL, NULL, (double)pm->challenges_open);
	metrics_family(t, "vtpm_ca_redeemed_nonces", "gauge",
	    "vEK evidence nonces redeemed and kept against replay until they expire (a nonce "
	    "handed out is not recorded; -1: unreadable)");
	metrics_sample(t, "vtpm_ca_redeemed_nonces", NULL, NULL, (double)pm->nonces_redeemed);
	metrics_family(t, "vtpm_ca_network_children_started_total", "counter",
	    "network children serve started (one at start, one more after each that ended)");
	metrics_sample(
	    t, "vtpm_ca_network_children_started_total", NULL, NULL, (double)pm->children);
}

static struct api_response
ca_get_metrics(struct ca_server *s)
{
	struct api_response r = {.status = 200, .raw_type = METRICS_CONTENT_TYPE};
	struct metrics_text t = {0};
	struct ca_msg_metrics pm;
	char *text;

	ca_ask_metrics(&s->link, &pm);
	ca_metrics_parent(&t, &pm);
	metrics_family(&t, "vtpm_ca_refusals_total", "counter",
	    "requests answered with an error, by reason (the status: malformed 400, refused 403, "
	    "not-found 404, method 405, used 409, expired 410, limit 429, failed 500, full 503)");
	metrics_sample_counts(&t, "vtpm_ca_refusals_total", "reason", &s->refusals);
	metrics_family(&t, "vtpm_ca_request_duration_seconds", "histogram",
	    "time from a whole request read to its answer made, by route");
	for (size_t i = 0; i < CA_ROUTES; i++)
		metrics_sample_hist(&t, "vtpm_ca_request_duration_seconds", "route",
		    ca_route_names[i], &s->latency[i]);
	if ((text = metrics_text_take(&t, &r.raw_len)) == NULL)
		return api_error(500, "out of memory", "try again");
	r.raw = (uint8_t *)text;
	return r;
}

static struct api_response
ca_route(struct ca_server *s, const struct api_request *req)
{
	const char *p = req->path;

	if (strncmp(p, "/v1/status/", 11) == 0 && p[11] != '\0') {
		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		return ca_get_status(s, p + 11);
	}
	if (strcmp(p, "/v1/privacy/ca") == 0 || strcmp(p, "/v1/virtualization/ca") == 0) {
		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		return ca_get_ca(s, p[4] == 'p' ? &s->privacy_cert : &s->virt_cert);
	}
	if (strcmp(p, "/v1/privacy/crl") == 0 || strcmp(p, "/v1/virtualization/crl") == 0) {
		enum ca_role role = p[4] == 'p' ? CA_ROLE_PRIVACY : CA_ROLE_VIRTUALIZATION;

		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		if (!ca_serves(s, role))
			return ca_not_served(ca_role_name(role));
		return ca_get_crl(s, role);
	}
	if (strcmp(p, "/v1/privacy/challenge") == 0 || strcmp(p, "/v1/privacy/certify") == 0 ||
	    strcmp(p, "/v1/virtualization/ek-certificate") == 0 ||
	    strcmp(p, "/v1/virtualization/nonce") == 0) {
		if (req->method != API_POST)
			return api_error(405, "method not allowed", "use POST");
		if (p[4] == 'p' && !ca_serves(s, CA_ROLE_PRIVACY))
			return ca_not_served("privacy");
		if (p[4] == 'v' && !ca_serves(s, CA_ROLE_VIRTUALIZATION))
			return ca_not_served("virtualization");
		ca_client_key(req->peer_addr, s->client);
		if (strcmp(p, "/v1/privacy/challenge") == 0)
			return ca_dispatch(s, CA_ACTION_CHALLENGE, ca_privacy_challenge, req);
		if (strcmp(p, "/v1/privacy/certify") == 0)
			return ca_dispatch(s, CA_ACTION_CERTIFY, ca_privacy_certify, req);
		if (strcmp(p, "/v1/virtualization/nonce") == 0)
			return ca_dispatch(s, CA_ACTION_NONCE, ca_virt_nonce, req);
		return ca_dispatch(s, CA_ACTION_EK, ca_virt_ek_certificate, req);
	}
	if (strcmp(p, "/metrics") == 0) {
		if (req->method != API_GET)
			return api_error(405, "method not allowed", "use GET");
		return ca_get_metrics(s);
	}
	return api_error(404, "no such route",
	    "see docs/ca-api.md: /v1/privacy/{ca,crl,challenge,certify}, "
	    "/v1/virtualization/{ca,crl,nonce,ek-certificate}, /v1/status/SERIAL, /metrics");
}

/* The API handler: routes one request, timed, its refusal counted. */
struct api_response
ca_api(void *ctx, const struct api_request *req)
{
	struct ca_server *s = ctx;
	int64_t t0 = mono_us();
	struct api_response r = ca_route(s, req);

	metrics_hist_observe_us(&s->latency[ca_route_index(req->path)], mono_us() - t0);
	if (r.status >= 400)
		metrics_count(&s->refusals, ca_refusal_reason(r.status));
	return r;
}
