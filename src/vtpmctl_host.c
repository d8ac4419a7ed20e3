/*
 * vtpmctl_host.c: `vtpmctl host`, the host TPM vtpmd roots every vTPM in,
 * and the service's counts.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "vtpmctl.h"

static const char host_help[] =
    "NAME\n"
    "    vtpmctl host - show the host TPM and the service\n"
    "\n"
    "SYNOPSIS\n"
    "    vtpmctl host [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Shows the host TPM vtpmd uses (its TCTI, and a warning when it is a\n"
    "    simulator, which protects nothing), the storage root key vTPM state keys\n"
    "    are sealed under, the PCRs the sealing policy covers, how many vTPMs exist\n"
    "    and run, and how many commands vtpmd sent the host TPM.\n"
    "\n"
    "OPTIONS\n"
    "    --json   print vtpmd's JSON answer\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 vtpmd could not be reached or failed; 2 usage error.\n";

static void
host_print(const json_t *h)
{
	const json_t *pol = json_object_get(h, "pcr_policy"), *n = json_object_get(h, "instances");
	json_t *v;
	size_t i;

	printf("host TPM:      %s\n", vtpmctl_str(h, "tcti", "?"));
	if (json_is_true(json_object_get(h, "simulator")))
		printf("               SIMULATOR: it provides no hardware protection\n");
	printf("SRK:           %s\n", vtpmctl_str(json_object_get(h, "srk"), "handle", "?"));
	printf("PCR policy:    %s PCRs", vtpmctl_str(pol, "bank", "?"));
	json_array_foreach(json_object_get(pol, "pcrs"), i, v)
	    printf(" %lld", (long long)json_integer_value(v));
	printf("\n");
	printf("instances:     %lld (%lld running)\n",
	    (long long)json_integer_value(json_object_get(n, "total")),
	    (long long)json_integer_value(json_object_get(n, "running")));
	printf("TPM commands:  %lld\n",
	    (long long)json_integer_value(json_object_get(h, "host_tpm_commands")));
}

int
vtpmctl_host(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	json_t *reply = NULL;
	bool json = false;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(host_help); return EXIT_OK;
		case 'j': json = true; break;
		default: return vtpmctl_usage("host", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vtpmctl_usage("host", "unexpected argument '%s'", argv[optind]);
	ret = vtpmctl_call("GET", "/v1/host", NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	if (json)
		vtpmctl_print_json(reply);
	else
		host_print(reply);
	json_decref(reply);
	return EXIT_OK;
}
