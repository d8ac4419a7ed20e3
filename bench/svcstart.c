/*
 * bench_svcstart: the start of one vTPM through vtpmd's API against
 * swtpm's cold start, in the same run, both from the request to start to
 * the first answered TPM command, measured inside this process (no client
 * program's own start-up counted on either side).
 *
 *   bench_svcstart [-n N] -a unix:API -i NAME -d unix:DATA -b BASE [-k KEYFILE]
 *                  -s NAME=COMMAND
 *
 * vtpmd (already running, with instance NAME created and stopped): the
 * clock starts before connecting to the API socket API, and stops at the
 * last byte of the answer to GetRandom(16) on the instance's socket DATA,
 * after POST /v1/instances/NAME/start answered 200. That includes the
 * unseal of the state key through the host TPM and the worker's start.
 * The instance is then given TPM2_Shutdown(CLEAR) and stopped through the
 * API, so every start is from orderly state.
 *
 * swtpm (-s, started here as bench_coldstart does): the clock starts just
 * before execve and stops at the answer to GetRandom(16); then
 * Shutdown(CLEAR) and the control channel's SHUTDOWN.
 *
 * Rounds alternate who goes first. Prints "RESULT svcstart.median us NAME
 * V" (and .p90, .min) for "vtpmd" and the -s server.
 */
#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "bench.h"

#define SVCSTART_AGENT "bench_svcstart"

static void
svcstart_usage(void)
{
	fprintf(stderr,
	    "usage: bench_svcstart [-n N] -a unix:API -i NAME -d unix:DATA -b BASE [-k KEYFILE]\n"
	    "                      -s NAME=COMMAND\n"
	    "  -n N  timed starts of each (default 30)\n"
	    "  -a    vtpmd's API socket   -i  the instance   -d  its data socket\n"
	    "  -b    directory for the -s server   -k  its state key file (descriptor 3)\n");
	exit(2);
}

/* POST /v1/instances/NAME/ACTION; anything but 200 is fatal. */
static void
svcstart_api(const struct endpoint *api, const char *name, const char *action)
{
	char target[256];
	struct err err;
	json_t *reply = NULL;
	int fd, status;

	snprintf(target, sizeof(target), "/v1/instances/%s/%s", name, action);
	if ((fd = endpoint_connect(api)) == -1)
		fatal(1, "connect to vtpmd's API");
	if (httpc_exchange(fd, "POST", "localhost", SVCSTART_AGENT, target, NULL, &status, &reply,
	        &err) == -1)
		fatalx(1, "vtpmd: %s: %s", target, err.msg);
	close(fd);
	if (status != 200) {
		json_t *e = json_object_get(reply, "error");
		fatalx(1, "vtpmd: %s answered %d: %s", target, status,
		    json_is_string(e) ? json_string_value(e) : "(no error text)");
	}
	json_decref(reply);
}

/* One start of the vtpmd instance; returns request-to-answer in ns. */
static uint64_t
svcstart_vtpmd(const struct endpoint *api, const char *name, const struct endpoint *data)
{
	struct bench_cmd c;
	uint8_t rsp[256];
	uint64_t t0, t1;
	int fd;

	t0 = bench_now_ns();
	svcstart_api(api, name, "start");
	if ((fd = endpoint_connect(data)) == -1)
		fatal(1, "vtpmd: connect to the instance");
	bench_cmd_getrandom(&c, 16);
	bench_expect_ok("vtpmd", "GetRandom", fd, &c, rsp, sizeof(rsp), NULL);
	t1 = bench_now_ns();
	bench_cmd_begin(&c, TPM2_ST_NO_SESSIONS, TPM2_CC_SHUTDOWN);
	bench_put16(&c, TPM2_SU_CLEAR);
	bench_cmd_end(&c);
	bench_expect_ok("vtpmd", "Shutdown(CLEAR)", fd, &c, rsp, sizeof(rsp), NULL);
	close(fd);
	svcstart_api(api, name, "stop");
	return t1 - t0;
}

static void
svcstart_report(const char *name, uint64_t *v, size_t n, double *median)
{
	double p90, min;

	qsort(v, n, sizeof(uint64_t), bench_cmp_u64);
	*median = (double)bench_percentile(v, n, 50) / 1000.0;
	p90 = (double)bench_percentile(v, n, 90) / 1000.0;
	min = (double)v[0] / 1000.0;
	printf("RESULT svcstart.median us %s %.0f\n", name, *median);
	printf("RESULT svcstart.p90 us %s %.0f\n", name, p90);
	printf("RESULT svcstart.min us %s %.0f\n", name, min);
	fprintf(stderr, "  start to first answer  %-8s median %7.0f us  p90 %7.0f us  min %7.0f us  (n=%zu)\n",
	    name, *median, p90, min, n);
}

int
main(int argc, char **argv)
{
	struct bench_server sv = {.pid = -1};
	struct endpoint api, data;
	bool have_api = false, have_data = false;
	const char *name = NULL, *base = NULL, *keyfile = NULL;
	uint64_t *vt, *sw;
	double vt_med, sw_med;
	size_t n = 30;
	bool have_server = false;
	int ch;

	log_init("bench_svcstart", LOG_LEVEL_INFO);
	while ((ch = getopt(argc, argv, "n:a:i:d:b:k:s:")) != -1) {
		switch (ch) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'a':
			if (endpoint_parse(optarg, &api) == -1)
				fatalx(2, "-a %s: expected unix:PATH", optarg);
			have_api = true;
			break;
		case 'i': name = optarg; break;
		case 'd':
			if (endpoint_parse(optarg, &data) == -1)
				fatalx(2, "-d %s: expected unix:PATH", optarg);
			have_data = true;
			break;
		case 'b': base = optarg; break;
		case 'k': keyfile = optarg; break;
		case 's':
			bench_server_parse(optarg, &sv);
			if (sv.cmdline == NULL)
				fatalx(2, "-s %s: give a command to start", optarg);
			have_server = true;
			break;
		default: svcstart_usage();
		}
	}
	if (n == 0 || name == NULL || base == NULL || !have_server || optind != argc ||
	    !have_api || !have_data)
		svcstart_usage();
	if ((vt = calloc(n, sizeof(*vt))) == NULL || (sw = calloc(n, sizeof(*sw))) == NULL)
		fatal(1, "calloc");
	bench_server_dir(&sv, base, -1);
	/* Untimed: makes swtpm's state, brings both into the page cache. */
	(void)bench_server_coldstart(&sv, keyfile, -1);
	(void)svcstart_vtpmd(&api, name, &data);
	for (size_t i = 0; i < n; i++) {
		if (i % 2 == 0) {
			vt[i] = svcstart_vtpmd(&api, name, &data);
			sw[i] = bench_server_coldstart(&sv, keyfile, -1);
		} else {
			sw[i] = bench_server_coldstart(&sv, keyfile, -1);
			vt[i] = svcstart_vtpmd(&api, name, &data);
		}
	}
	svcstart_report("vtpmd", vt, n, &vt_med);
	svcstart_report(sv.name, sw, n, &sw_med);
	printf("RESULT svcstart.ratio x vtpmd/%s %.2f\n", sv.name, vt_med / sw_med);
	free(vt);
	free(sw);
	return 0;
}
