/*
 * bench_coldstart: time from exec of a server on existing state to its
 * first answered TPM command, servers side by side.
 *
 *   bench_coldstart [-n N] [-c CPU] [-k KEYFILE] -b BASE -s NAME=COMMAND ...
 *
 * The first start of each server makes its state (BASE/NAME/state) and is
 * not counted. Then N rounds, each starting every server once, in turns:
 * the child records CLOCK_MONOTONIC just before execve, the benchmark
 * (on its own CPU) retries connect() on the data socket in a tight loop,
 * sends GetRandom(16), and stops the clock at the last byte of the
 * answer. Each server is then stopped the same way (TPM2_Shutdown(CLEAR),
 * the control channel's SHUTDOWN), so every start is from orderly state.
 *
 * Prints "RESULT coldstart.median us NAME V" (and .p90, .min) on stdout.
 */
#include <getopt.h>
#include <stdio.h>

#include "bench.h"

static void
coldstart_usage(void)
{
	fprintf(stderr,
	    "usage: bench_coldstart [-n N] [-c CPU] [-k KEYFILE] -b BASE -s NAME=COMMAND ...\n"
	    "  -n N  timed starts per server (default 30)\n"
	    "  -c    CPU the servers are pinned to (default: not pinned)\n"
	    "  -k    state key file, given to the servers on descriptor 3\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct bench_launch a = {.n = 30};
	struct bench_server *sv = a.sv;
	uint64_t *samples[BENCH_MAX_SERVERS];
	const char *keyfile, *base;
	size_t ns, n;
	int cpu;

	log_init("bench_coldstart", LOG_LEVEL_INFO);
	bench_launch_parse(argc, argv, &a, coldstart_usage);
	ns = a.ns;
	n = a.n;
	keyfile = a.keyfile;
	base = a.base;
	cpu = a.cpu;

	for (size_t k = 0; k < ns; k++) {
		bench_server_dir(&sv[k], base, -1);
		samples[k] = calloc(n, sizeof(uint64_t));
		if (samples[k] == NULL)
			fatal(1, "calloc");
		/* Makes the state, and brings binaries into the page cache. */
		(void)bench_server_coldstart(&sv[k], keyfile, cpu);
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < ns; j++) {
			size_t k = (i + j) % ns; /* who goes first alternates */
			samples[k][i] = bench_server_coldstart(&sv[k], keyfile, cpu);
		}
	}
	for (size_t k = 0; k < ns; k++) {
		double med, p90, min;

		qsort(samples[k], n, sizeof(uint64_t), bench_cmp_u64);
		med = (double)bench_percentile(samples[k], n, 50) / 1000.0;
		p90 = (double)bench_percentile(samples[k], n, 90) / 1000.0;
		min = (double)samples[k][0] / 1000.0;
		printf("RESULT coldstart.median us %s %.0f\n", sv[k].name, med);
		printf("RESULT coldstart.p90 us %s %.0f\n", sv[k].name, p90);
		printf("RESULT coldstart.min us %s %.0f\n", sv[k].name, min);
		fprintf(stderr,
		    "  cold start       %-8s median %9.0f us  p90 %9.0f us  min %9.0f us"
		    "  (n=%zu)\n",
		    sv[k].name, med, p90, min, n);
		free(samples[k]);
	}
	return 0;
}
