/*
 * vtpmctl_metrics.c: `vtpmctl metrics`, vtpmd's GET /metrics as it
 * answers it, in the Prometheus text format (docs/api.md, "Metrics"), for
 * an operator or a node_exporter textfile collector.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "vtpmctl.h"

static const char metrics_help[] =
    "usage: vtpmctl metrics\n"
    "\n"
    "Print vtpmd's metrics, in the Prometheus text exposition format (version 0.0.4).\n"
    "The manual: vtpmctl(8), COMMANDS, metrics; the metrics: docs/api.md, \"Metrics\".\n";

int
vtpmctl_metrics(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *text = NULL;
	size_t len = 0;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(metrics_help); return EXIT_OK;
		default: return vtpmctl_usage("metrics", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vtpmctl_usage("metrics", "unexpected argument '%s'", argv[optind]);
	ret = vtpmctl_get_text("/metrics", &text, &len);
	if (ret != EXIT_OK)
		return ret;
	if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
		ret = vtpmctl_fail("cannot write the metrics to standard output");
	free(text);
	return ret;
}
