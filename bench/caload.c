/*
 * bench_caload: certificates issued per second by vtpm-ca (docs/ca-api.md),
 * over HTTP on TCP, one request per connection (as the server requires),
 * with src/common/httpc.c's client.
 *
 *   bench_caload -e tcp:HOST:PORT [-t ROOT] -n N [-c CLIENTS] [-S PID] -l LABEL ek BODY
 *	POST /v1/virtualization/ek-certificate N times, from CLIENTS threads
 *	at once (each its own connection per request); every answer must be
 *	200 with a certificate (each is a new certificate, with its serial,
 *	in the CA's records). BODY is a JSON array of at least N + 1
 *	requests, the warm-up's first, each used once: a request's evidence
 *	names a single-use nonce (re-issues of one vEK's certificate, each
 *	with its own nonce and evidence, as bench/chain.sh makes them).
 *
 *   bench_caload -e tcp:HOST:PORT -n N [-S PID] -l LABEL privacy BODY TCTI AK EK
 *	The Privacy CA's round for a guest AK, N times: POST
 *	/v1/privacy/challenge with the JSON in BODY (kind "ak"), the
 *	credential activated by the vTPM at TCTI (attest_tpm_activate: AK and
 *	EK at persistent handles AK and EK, hexadecimal), POST
 *	/v1/privacy/certify with the secret; every round must end with an AK
 *	certificate. The time on the CA (the two requests) and on the vTPM
 *	are reported apart.
 *
 * -t ROOT: over HTTPS (TLS 1.3, the server's certificate checked against the
 * PEM root ROOT and the host of -e, as vtpmd checks it: src/common/httpc_url.c),
 * a new TLS handshake per request, as vtpmd makes; plain HTTP without.
 *
 * One request (or round) first as a warm-up, not counted. -S PID (up to
 * four times): the server's processes (vtpm-ca serve's parent and network
 * child), whose CPU time together (/proc/PID/schedstat) per request is
 * reported. Prints on stdout "RESULT ca.LABEL METRIC - VALUE" lines:
 *	per_s		certificates per second (wall clock)
 *	median_ms p99_ms	latency of one request (privacy: one round)
 *	server_cpu_ms	the server's CPU time per certificate
 *	ca_per_s tpm_ms	(privacy) rounds per second of the CA's time alone,
 *			the vTPM's time per activation
 * and a readable line on stderr.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include <jansson.h>

#include "attest/attest.h"
#include "bench.h"

#define CALOAD_MAX_CLIENTS 16
#define CALOAD_SECRET_MAX  64
#define CALOAD_BLOB_MAX    1024

struct caload {
	struct endpoint ep;
	char host[128]; /* the Host header */
	char url[160];	/* -t: https://HOST:PORT */
	struct tls_peer tls;
	const char *label;
	long n;
	int clients;
	pid_t server[4]; /* -S: the server's processes */
	int nserver;
	json_t *body;
	atomic_long next;  /* the next request to make */
	uint64_t *lat_ns;  /* per request */
	char failure[512]; /* the first failure, under lock */
	pthread_mutex_t lock;
	/* privacy */
	const char *tcti;
	uint32_t ak, ek;
};

static void
caload_usage(void)
{
	fatalx(2,
	    "usage: bench_caload -e tcp:HOST:PORT [-t ROOT] -n N [-c CLIENTS] [-S PID] -l LABEL ek "
	    "BODY\n"
	    "       bench_caload -e tcp:HOST:PORT [-t ROOT] -n N [-S PID] -l LABEL privacy BODY "
	    "TCTI AK EK");
}

/* The server's CPU time so far (ns), its processes' together; 0 without
 * -S. */
static uint64_t
caload_server_cpu(const struct caload *c)
{
	uint64_t ns = 0;

	for (int i = 0; i < c->nserver; i++) {
		struct bench_server s = {.pid = c->server[i]};
		ns += bench_server_cpu_ns(&s);
	}
	return ns;
}

/* One POST on a new connection: 0 with *reply (a 200 answer), or -1 with
 * why. */
static int
caload_post(const struct caload *c, const char *path, const json_t *body, json_t **reply, struct err *err)
{
	struct err inner;
	int fd, status, r;

	*reply = NULL;
	if (c->tls.root_pem != NULL) {
		r = httpc_request_url(c->url, &c->tls, "bench_caload", 30, "POST", path, body,
		    &status, reply, &inner);
		goto answered;
	}
	if ((fd = endpoint_connect(&c->ep)) == -1) {
		err_set(err, ERR_FAILED, "connect %s: %s", c->host, strerror(errno));
		return -1;
	}
	r = httpc_exchange(
	    fd, "POST", c->host, "bench_caload", path, body, &status, reply, &inner);
	close(fd);
answered:
	if (r == -1) {
		err_set(err, ERR_FAILED, "POST %s: %s", path, inner.msg);
		return -1;
	}
	if (status != 200) {
		const char *e = json_string_value(json_object_get(*reply, "error"));

		err_set(err, ERR_FAILED, "POST %s: HTTP %d: %s", path, status, e ? e : "(no error)");
		json_decref(*reply);
		*reply = NULL;
		return -1;
	}
	return 0;
}

static void
caload_failed(struct caload *c, const char *why)
{
	pthread_mutex_lock(&c->lock);
	if (c->failure[0] == '\0')
		snprintf(c->failure, sizeof(c->failure), "%s", why);
	pthread_mutex_unlock(&c->lock);
}

/* EK certificate request i (0: the warm-up): 0, or -1 with why. */
static int
caload_ek_one(const struct caload *c, long i, struct err *err)
{
	const json_t *body = json_array_get(c->body, (size_t)i);
	json_t *reply;
	int ret = 0;

	if (caload_post(c, "/v1/virtualization/ek-certificate", body, &reply, err) == -1)
		return -1;
	if (json_string_value(json_object_get(reply, "certificate")) == NULL ||
	    json_string_value(json_object_get(reply, "serial")) == NULL) {
		err_set(err, ERR_FAILED, "200 without a certificate and its serial");
		ret = -1;
	}
	json_decref(reply);
	return ret;
}

static void *
caload_ek_client(void *arg)
{
	struct caload *c = arg;
	struct err err;
	long i;

	while ((i = atomic_fetch_add(&c->next, 1)) < c->n) {
		uint64_t t0 = bench_now_ns();

		if (caload_ek_one(c, i + 1, &err) == -1) {
			caload_failed(c, err.msg);
			atomic_store(&c->next, c->n);
			break;
		}
		c->lat_ns[i] = bench_now_ns() - t0;
	}
	return NULL;
}

static void
caload_latency(const char *label, uint64_t *lat, long n)
{
	qsort(lat, (size_t)n, sizeof(*lat), bench_cmp_u64);
	printf("RESULT ca.%s median_ms - %.2f\n", label,
	    (double)bench_percentile(lat, (size_t)n, 50) / 1e6);
	printf("RESULT ca.%s p99_ms - %.2f\n", label,
	    (double)bench_percentile(lat, (size_t)n, 99) / 1e6);
}

static void
caload_ek(struct caload *c)
{
	pthread_t th[CALOAD_MAX_CLIENTS];
	struct err err;
	uint64_t t0, t1, s0, s1;

	if (!json_is_array(c->body) || json_array_size(c->body) < (size_t)c->n + 1)
		fatalx(2, "%s: ek needs a JSON array of at least %ld requests", c->label, c->n + 1);
	if (caload_ek_one(c, 0, &err) == -1)
		fatalx(1, "%s: warm-up: %s", c->label, err.msg);
	s0 = caload_server_cpu(c);
	t0 = bench_now_ns();
	for (int i = 0; i < c->clients; i++)
		if ((errno = pthread_create(&th[i], NULL, caload_ek_client, c)) != 0)
			fatal(1, "pthread_create");
	for (int i = 0; i < c->clients; i++)
		pthread_join(th[i], NULL);
	t1 = bench_now_ns();
	s1 = caload_server_cpu(c);
	if (c->failure[0] != '\0')
		fatalx(1, "%s: %s", c->label, c->failure);
	printf("RESULT ca.%s per_s - %.1f\n", c->label, (double)c->n * 1e9 / (double)(t1 - t0));
	if (c->nserver > 0)
		printf("RESULT ca.%s server_cpu_ms - %.3f\n", c->label,
		    (double)(s1 - s0) / 1e6 / (double)c->n);
	fprintf(stderr, "bench_caload %s: %ld certificates in %.3f s from %d client(s): %.1f/s\n",
	    c->label, c->n, (double)(t1 - t0) / 1e9, c->clients,
	    (double)c->n * 1e9 / (double)(t1 - t0));
	caload_latency(c->label, c->lat_ns, c->n);
}

/* A base64 field of a reply, decoded. */
static void
caload_b64_field(const json_t *reply, const char *key, uint8_t *out, size_t max, size_t *len)
{
	const char *s = json_string_value(json_object_get(reply, key));

	if (s == NULL || base64_decode(s, out, max, len) == -1)
		fatalx(1, "challenge answer: %s missing or not base64", key);
}

/* One Privacy CA round; adds the CA's and the vTPM's time to *ca_ns and
 * *tpm_ns. */
static void
caload_privacy_round(struct caload *c, struct attest_tpm *tpm, uint64_t *ca_ns, uint64_t *tpm_ns)
{
	uint8_t blob[CALOAD_BLOB_MAX], enc[CALOAD_BLOB_MAX], secret[CALOAD_SECRET_MAX];
	size_t blob_len, enc_len, secret_len;
	char *s64;
	struct err err;
	json_t *reply, *req;
	uint64_t t0, t1, t2, t3;

	t0 = bench_now_ns();
	if (caload_post(c, "/v1/privacy/challenge", c->body, &reply, &err) == -1)
		fatalx(1, "%s: %s", c->label, err.msg);
	t1 = bench_now_ns();
	caload_b64_field(reply, "credential_blob", blob, sizeof(blob), &blob_len);
	caload_b64_field(reply, "encrypted_secret", enc, sizeof(enc), &enc_len);
	if (attest_tpm_activate(tpm, c->ak, c->ek, NULL, 0, blob, blob_len, enc, enc_len, secret,
	        sizeof(secret), &secret_len, &err) == -1)
		fatalx(1, "%s: activate: %s", c->label, err.msg);
	if ((s64 = base64_encode(secret, secret_len)) == NULL)
		fatalx(1, "out of memory");
	req = json_pack("{s:O, s:s}", "id", json_object_get(reply, "id"), "secret", s64);
	free(s64);
	json_decref(reply);
	if (req == NULL)
		fatalx(1, "%s: the challenge answer has no id", c->label);
	t2 = bench_now_ns();
	if (caload_post(c, "/v1/privacy/certify", req, &reply, &err) == -1)
		fatalx(1, "%s: %s", c->label, err.msg);
	t3 = bench_now_ns();
	if (json_string_value(json_object_get(reply, "certificate")) == NULL)
		fatalx(1, "%s: certify: 200 without a certificate", c->label);
	json_decref(reply);
	json_decref(req);
	*ca_ns += (t1 - t0) + (t3 - t2);
	*tpm_ns += t2 - t1;
}

static void
caload_privacy(struct caload *c)
{
	struct attest_tpm *tpm;
	struct err err;
	uint64_t ca = 0, tp = 0, t0, t1, s0, s1;

	if ((tpm = attest_tpm_open(c->tcti, &err)) == NULL)
		fatalx(1, "%s: %s", c->tcti, err.msg);
	caload_privacy_round(c, tpm, &ca, &tp);
	ca = tp = 0;
	s0 = caload_server_cpu(c);
	t0 = bench_now_ns();
	for (long i = 0; i < c->n; i++) {
		uint64_t r0 = bench_now_ns();

		caload_privacy_round(c, tpm, &ca, &tp);
		c->lat_ns[i] = bench_now_ns() - r0;
	}
	t1 = bench_now_ns();
	s1 = caload_server_cpu(c);
	attest_tpm_close(tpm);
	printf("RESULT ca.%s per_s - %.1f\n", c->label, (double)c->n * 1e9 / (double)(t1 - t0));
	printf("RESULT ca.%s ca_per_s - %.1f\n", c->label, (double)c->n * 1e9 / (double)ca);
	printf("RESULT ca.%s tpm_ms - %.3f\n", c->label, (double)tp / 1e6 / (double)c->n);
	if (c->nserver > 0)
		printf("RESULT ca.%s server_cpu_ms - %.3f\n", c->label,
		    (double)(s1 - s0) / 1e6 / (double)c->n);
	fprintf(stderr,
	    "bench_caload %s: %ld rounds in %.3f s: %.1f/s; CA %.2f ms, vTPM %.2f ms per round\n",
	    c->label, c->n, (double)(t1 - t0) / 1e9, (double)c->n * 1e9 / (double)(t1 - t0),
	    (double)ca / 1e6 / (double)c->n, (double)tp / 1e6 / (double)c->n);
	caload_latency(c->label, c->lat_ns, c->n);
}

int
main(int argc, char **argv)
{
	static struct caload c = {.n = 200, .clients = 1, .lock = PTHREAD_MUTEX_INITIALIZER};
	json_error_t jerr;
	const char *ep = NULL, *mode, *root = NULL;
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	int opt;

	while ((opt = getopt(argc, argv, "e:t:n:c:S:l:")) != -1) {
		switch (opt) {
		case 'e': ep = optarg; break;
		case 't': root = optarg; break;
		case 'n': c.n = strtol(optarg, NULL, 10); break;
		case 'c': c.clients = (int)strtol(optarg, NULL, 10); break;
		case 'S':
			if (c.nserver == (int)(sizeof(c.server) / sizeof(c.server[0])))
				caload_usage();
			c.server[c.nserver++] = (pid_t)strtol(optarg, NULL, 10);
			break;
		case 'l': c.label = optarg; break;
		default: caload_usage();
		}
	}
	if (ep == NULL || c.label == NULL || c.n < 1 || c.clients < 1 ||
	    c.clients > CALOAD_MAX_CLIENTS || argc - optind < 2)
		caload_usage();
	if (endpoint_parse(ep, &c.ep) == -1 || c.ep.kind != ENDPOINT_TCP)
		fatalx(2, "-e %s: expected tcp:HOST:PORT", ep);
	snprintf(c.host, sizeof(c.host), "%s", ep + 4);
	if (root != NULL) {
		if (fileio_read(root, 1u << 16, &pem, &pem_len) == -1)
			fatal(1, "-t %s", root);
		c.tls = (struct tls_peer){.root_pem = (const char *)pem, .root_pem_len = pem_len};
		snprintf(c.url, sizeof(c.url), "https://%s", c.host);
	}
	mode = argv[optind];
	if ((c.body = json_load_file(argv[optind + 1], 0, &jerr)) == NULL)
		fatalx(1, "%s: %s", argv[optind + 1], jerr.text);
	if ((c.lat_ns = calloc((size_t)c.n, sizeof(*c.lat_ns))) == NULL)
		fatalx(1, "out of memory");
	if (strcmp(mode, "ek") == 0 && argc - optind == 2) {
		caload_ek(&c);
	} else if (strcmp(mode, "privacy") == 0 && argc - optind == 5 && c.clients == 1) {
		c.tcti = argv[optind + 2];
		c.ak = (uint32_t)strtoul(argv[optind + 3], NULL, 16);
		c.ek = (uint32_t)strtoul(argv[optind + 4], NULL, 16);
		caload_privacy(&c);
	} else {
		caload_usage();
	}
	json_decref(c.body);
	free(c.lat_ns);
	free(pem);
	return 0;
}
