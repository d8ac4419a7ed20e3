/*
 * api-stub.c: a stand-in for vtpmd's API, for testing clients (vtpmctl)
 * without a manager or a TPM. It serves the real api.c with a handler that
 * keeps a small in-memory set of instances and answers with objects shaped
 * as docs/api.md describes, and appends every request it handles to a log
 * file, one line each: "METHOD PATH[?QUERY] BODY" (BODY compact JSON with
 * sorted keys, or "-").
 *
 *   api-stub --socket PATH [--log FILE] [--ready-fd N] [--approval-key FILE]
 *   api-stub keygen FILE       (a new P-256 approval key, as vtpmd uses)
 *
 * Behaviour worth knowing in tests: an instance whose name starts with
 * "refused" is refused at start (422, host configuration not approved);
 * with --approval-key the stub holds only that key's public half, so
 * {"current": true} is refused (409) and a signature by the key is
 * required and checked (approval_verify); without it the stub "holds" a
 * private key and approves {"current": true} itself. SIGTERM ends it (0).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define STUB_MAX    32
#define STUB_POLICY "5c1d3e2f4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"

struct stub_instance {
	bool used;
	char name[65];
	char tpm[4];
	bool running, desired;
	unsigned int restarts;
	char error[128];
};

struct stub {
	FILE *log;
	struct stub_instance inst[STUB_MAX];
	bool private_held;
	char key_x[65], key_y[65];
	json_t *approvals;
};

static volatile sig_atomic_t stub_signalled;

static void
stub_on_signal(int sig)
{
	stub_signalled = sig;
}

static struct api_response
stub_ok(int status, json_t *body)
{
	struct api_response r = {.status = status, .body = (struct json_t *)body};

	return r;
}

static json_t *
stub_instance_json(const struct stub_instance *in)
{
	char sock[128], tcti[160], dir[160];
	json_t *o;

	snprintf(sock, sizeof(sock), "/run/vtpmd/%s.ctrl", in->name);
	snprintf(tcti, sizeof(tcti), "swtpm:path=/run/vtpmd/%s.sock", in->name);
	snprintf(dir, sizeof(dir), "/var/lib/vtpmd/instances/%s", in->name);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "name", in->name,
	    "uuid", "8a7f3c1e-0d2b-4c5a-9e6f-112233445566", "tpm", in->tpm, "state",
	    in->running    ? "running"
	    : in->error[0] ? "refused"
	                   : "stopped",
	    "desired", in->desired ? "running" : "stopped", "socket", sock, "tcti", tcti,
	    "restarts", (int)in->restarts, "state_dir", dir, "created", "2026-11-26T19:00:00Z");
	if (in->running)
		json_object_set_new(o, "pid", json_integer(4242));
	if (in->error[0] != '\0')
		json_object_set_new(o, "error", json_string(in->error));
	return o;
}

static struct stub_instance *
stub_find(struct stub *s, const char *name)
{
	for (int i = 0; i < STUB_MAX; i++)
		if (s->inst[i].used && strcmp(s->inst[i].name, name) == 0)
			return &s->inst[i];
	return NULL;
}

/* Starts in; false (with the 422 answer in *r) when "refused". */
static bool
stub_start(struct stub_instance *in, struct api_response *r)
{
	in->desired = true;
	if (strncmp(in->name, "refused", 7) == 0) {
		in->running = false;
		snprintf(in->error, sizeof(in->error),
		    "host PCRs 7 differ from every approved configuration");
		*r = api_error(422, "host PCRs 7 differ from every approved configuration",
		    "approve the host configuration if the change is expected: vtpmctl policy "
		    "approve --current");
		return false;
	}
	in->error[0] = '\0';
	in->running = true;
	return true;
}

static struct api_response
stub_create(struct stub *s, const struct api_request *req)
{
	const char *name = NULL, *tpm = "2.0";
	struct stub_instance *in = NULL;
	struct api_response r;
	int start = 1;

	if (req->body == NULL || json_unpack((json_t *)req->body, "{s:s, s?s, s?b}", "name", &name,
	                             "tpm", &tpm, "start", &start) != 0)
		return api_error(400,
		    "expected {\"name\": NAME, \"tpm\": \"2.0\"|\"1.2\", "
		    "\"start\": true|false}",
		    "see docs/api.md");
	if (strcmp(tpm, "2.0") != 0 && strcmp(tpm, "1.2") != 0)
		return api_error(400, "tpm must be \"2.0\" or \"1.2\"", "omit it for TPM 2.0");
	if (stub_find(s, name) != NULL)
		return api_error(409, "an instance with this name exists",
		    "choose another name, or delete the existing instance first");
	for (int i = 0; i < STUB_MAX && in == NULL; i++)
		if (!s->inst[i].used)
			in = &s->inst[i];
	if (in == NULL)
		return api_error(503, "stub full", "delete an instance");
	memset(in, 0, sizeof(*in));
	in->used = true;
	snprintf(in->name, sizeof(in->name), "%s", name);
	snprintf(in->tpm, sizeof(in->tpm), "%s", tpm);
	if (start && !stub_start(in, &r))
		return r;
	return stub_ok(201, stub_instance_json(in));
}

static struct api_response
stub_instance(struct stub *s, const struct api_request *req)
{
	const char *rest = req->path + strlen("/v1/instances/"), *slash = strchr(rest, '/');
	char name[80];
	struct stub_instance *in;
	struct api_response r;

	snprintf(name, sizeof(name), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	in = stub_find(s, name);
	if (in == NULL)
		return api_error(404, "no such instance", "list instances with 'vtpmctl list'");
	if (slash != NULL) {
		if (req->method != API_POST)
			return api_error(405, "use POST for actions", "see docs/api.md");
		if (strcmp(slash, "/stop") == 0) {
			in->running = in->desired = false;
		} else if (strcmp(slash, "/start") == 0 || strcmp(slash, "/restart") == 0) {
			if (strcmp(slash, "/restart") == 0 && in->running)
				in->restarts++;
			if (!stub_start(in, &r))
				return r;
		} else {
			return api_error(404, "unknown action", "use start, stop or restart");
		}
		return stub_ok(200, stub_instance_json(in));
	}
	if (req->method == API_GET)
		return stub_ok(200, stub_instance_json(in));
	if (req->method != API_DELETE)
		return api_error(405, "use GET or DELETE on an instance", "see docs/api.md");
	if (in->running && strcmp(req->query, "force=1") != 0)
		return api_error(409, "the instance is running",
		    "stop it first, or delete with --force (its guest loses its TPM)");
	in->used = false;
	return stub_ok(200, json_pack("{s:s}", "deleted", in->name));
}

static json_t *
stub_values(void)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "0",
	    "1111111111111111111111111111111111111111111111111111111111111111", "2",
	    "2222222222222222222222222222222222222222222222222222222222222222", "4",
	    "4444444444444444444444444444444444444444444444444444444444444444", "7",
	    "7777777777777777777777777777777777777777777777777777777777777777");
}

static bool
stub_current_approved(const struct stub *s)
{
	size_t i;
	json_t *a;

	json_array_foreach(s->approvals, i,
	    a) if (strcmp(json_string_value(json_object_get(a, "policy")), STUB_POLICY) ==
	           0) return true;
	return false;
}

static struct api_response
stub_policy(struct stub *s)
{
	return stub_ok(200,
	    json_pack("{s:s, s:[i,i,i,i], s:{s:o, s:s, s:b}, s:O, s:{s:s, s:s, s:b}}", "bank",
	        "sha256", "pcrs", 0, 2, 4, 7, "current", "values", stub_values(), "policy",
	        STUB_POLICY, "approved", stub_current_approved(s), "approvals", s->approvals,
	        "approval_key", "x", s->key_x, "y", s->key_y, "private_held", s->private_held));
}

static struct api_response
stub_add_approval(struct stub *s, json_t *values)
{
	json_t *a =
	    json_pack("{s:I, s:s, s:O, s:s}", "id", (json_int_t)json_array_size(s->approvals) + 1,
	        "policy", STUB_POLICY, "values", values, "approved_at", "2026-11-26T19:30:00Z");

	json_array_append(s->approvals, a);
	return stub_ok(200, a);
}

/* A signed approval must be the key's signature over the current policy. */
static struct api_response
stub_approve_signed(struct stub *s, json_t *body)
{
	const char *pol, *x, *y, *r, *sg;
	struct approval ap;
	json_t *vals, *cur;

	if (json_unpack(body, "{s:s, s:o, s:{s:s, s:s}, s:{s:s, s:s}}", "policy", &pol, "values",
	        &vals, "public", "x", &x, "y", &y, "signature", "r", &r, "s", &sg) != 0 ||
	    hex_decode(pol, ap.policy, sizeof(ap.policy)) == -1 ||
	    hex_decode(x, ap.pub.x, 32) == -1 || hex_decode(y, ap.pub.y, 32) == -1 ||
	    hex_decode(r, ap.sig_r, 32) == -1 || hex_decode(sg, ap.sig_s, 32) == -1)
		return api_error(
		    400, "expected {\"current\": true} or a signed approval", "see docs/api.md");
	if (strcmp(x, s->key_x) != 0 || strcmp(y, s->key_y) != 0)
		return api_error(
		    422, "not signed by the approval key", "sign with the approval key");
	if (approval_verify(&ap) != 0)
		return api_error(422, "the signature does not verify", "sign the current policy");
	cur = stub_values();
	if (strcmp(pol, STUB_POLICY) != 0 || !json_equal(cur, vals)) {
		json_decref(cur);
		return api_error(422, "not the current policy", "sign the current policy");
	}
	json_decref(cur);
	return stub_add_approval(s, vals);
}

static struct api_response
stub_approve(struct stub *s, const struct api_request *req)
{
	json_t *body = (json_t *)req->body;
	struct api_response r;
	json_t *vals;

	if (body == NULL)
		return api_error(400, "expected a JSON body", "see docs/api.md");
	if (json_is_true(json_object_get(body, "current"))) {
		if (!s->private_held)
			return api_error(409, "vtpmd holds only the public approval key",
			    "sign the approval yourself: vtpmctl policy approve --current --key "
			    "FILE");
		vals = stub_values();
		r = stub_add_approval(s, vals);
		json_decref(vals);
		return r;
	}
	return stub_approve_signed(s, body);
}

static struct api_response
stub_host(struct stub *s)
{
	int total = 0, running = 0;

	for (int i = 0; i < STUB_MAX; i++) {
		total += s->inst[i].used;
		running += s->inst[i].used && s->inst[i].running;
	}
	return stub_ok(
	    200, json_pack("{s:s, s:b, s:{s:s}, s:{s:s, s:[i,i,i,i]}, s:{s:i, s:i}, s:i}", "tcti",
	             "swtpm:host=127.0.0.1,port=2321", "simulator", 1, "srk", "handle",
	             "0x81000001", "pcr_policy", "bank", "sha256", "pcrs", 0, 2, 4, 7, "instances",
	             "total", total, "running", running, "host_tpm_commands", 42));
}

static void
stub_log(struct stub *s, const struct api_request *req)
{
	static const char *const names[] = {"GET", "POST", "DELETE", "OTHER"};
	char *body = NULL;

	if (s->log == NULL)
		return;
	if (req->body != NULL)
		body = json_dumps((json_t *)req->body, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(s->log, "%s %s%s%s %s\n", names[req->method], req->path, req->query[0] ? "?" : "",
	    req->query, body ? body : "-");
	fflush(s->log);
	free(body);
}

static struct api_response
stub_handler(void *ctx, const struct api_request *req)
{
	struct stub *s = ctx;

	stub_log(s, req);
	if (strcmp(req->path, "/v1/instances") == 0) {
		if (req->method == API_GET) {
			json_t *arr = json_array();
			for (int i = 0; i < STUB_MAX; i++)
				if (s->inst[i].used)
					json_array_append_new(arr, stub_instance_json(&s->inst[i]));
			return stub_ok(200, json_pack("{s:o}", "instances", arr));
		}
		if (req->method == API_POST)
			return stub_create(s, req);
		return api_error(405, "use GET or POST on /v1/instances", "see docs/api.md");
	}
	if (strncmp(req->path, "/v1/instances/", 14) == 0)
		return stub_instance(s, req);
	if (strcmp(req->path, "/v1/policy") == 0 && req->method == API_GET)
		return stub_policy(s);
	if (strcmp(req->path, "/v1/policy/approve") == 0 && req->method == API_POST)
		return stub_approve(s, req);
	if (strcmp(req->path, "/v1/host") == 0 && req->method == API_GET)
		return stub_host(s);
	return api_error(404, "no such endpoint", "see docs/api.md");
}

static int
stub_serve(struct stub *s, const char *path, int ready_fd)
{
	struct pollfd fds[API_MAX_CONNECTIONS + 1];
	struct api_server *srv;
	struct sigaction sa = {.sa_handler = stub_on_signal};
	sigset_t block, unblocked;
	struct timespec ts;
	int n, t;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &unblocked);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	srv = api_listen(path, stub_handler, s);
	if (srv == NULL) {
		fprintf(stderr, "api-stub: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (ready_fd != -1) {
		if (write(ready_fd, "READY\n", 6) != 6)
			fprintf(stderr, "api-stub: ready fd: %s\n", strerror(errno));
		close(ready_fd);
	}
	while (!stub_signalled) {
		n = api_pollfds(srv, fds, API_MAX_CONNECTIONS + 1);
		t = api_next_timeout(srv);
		ts.tv_sec = t / 1000;
		ts.tv_nsec = (long)(t % 1000) * 1000000;
		if (ppoll(fds, (nfds_t)n, t >= 0 ? &ts : NULL, &unblocked) == -1 &&
		    errno != EINTR) {
			fprintf(stderr, "api-stub: poll: %s\n", strerror(errno));
			break;
		}
		api_process(srv, fds, n);
	}
	api_close(srv);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"log", required_argument, NULL, 'l'},
	    {"ready-fd", required_argument, NULL, 'r'},
	    {"approval-key", required_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0},
	};
	struct stub s = {.private_held = true};
	const char *path = NULL, *key = NULL, *log_path = NULL;
	struct approval_pub pub;
	int c, ready_fd = -1, ret;

	log_init("api-stub", LOG_LEVEL_WARN);
	if (argc == 3 && strcmp(argv[1], "keygen") == 0) {
		if (approval_key_create(argv[2]) == -1) {
			fprintf(stderr, "api-stub: keygen %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		return 0;
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'r': ready_fd = atoi(optarg); break;
		case 'k': key = optarg; break;
		case 'l': log_path = optarg; break;
		default:
			fprintf(stderr, "usage: api-stub --socket PATH [--log FILE] [--ready-fd N] "
			                "[--approval-key FILE]\n       api-stub keygen FILE\n");
			return 2;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "api-stub: --socket PATH is required\n");
		return 2;
	}
	memset(&pub, 0xab, sizeof(pub));
	if (key != NULL) {
		if (approval_key_public(key, &pub) == -1) {
			fprintf(stderr, "api-stub: %s: not a P-256 key\n", key);
			return 1;
		}
		s.private_held = false;
	}
	/* Opened last, so that no error above returns with it open. */
	if (log_path != NULL && (s.log = fopen(log_path, "ae")) == NULL) {
		fprintf(stderr, "api-stub: %s: %s\n", log_path, strerror(errno));
		return 1;
	}
	hex_encode(pub.x, 32, s.key_x);
	hex_encode(pub.y, 32, s.key_y);
	s.approvals = json_array();
	ret = stub_serve(&s, path, ready_fd);
	json_decref(s.approvals);
	if (s.log != NULL)
		fclose(s.log);
	return ret;
}
