/*
 * main.c: vtpmctl's entry: global options, the command table (one file per command group) and main.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vtpmctl.h"

static const struct cli_cmd vtpmctl_cmds[] = {
    {"create", vtpmctl_create,
        "create NAME [--tpm 2|1.2] [--ek TYPES|none] [--owner USER[:GROUP]] [--no-start] "
        "[--json]",
        "create a vTPM for a virtual machine, and start it"},
    {"start", vtpmctl_start, "start NAME [--json]", "start a vTPM"},
    {"stop", vtpmctl_stop, "stop NAME [--json]", "stop a vTPM"},
    {"restart", vtpmctl_restart, "restart NAME [--json]", "stop and start a vTPM"},
    {"renew", vtpmctl_renew, "renew NAME [--json]", "make a stopped vTPM (a copy) a new one"},
    {"delete", vtpmctl_delete, "delete NAME [--force] [--json]",
        "delete a vTPM and its state, for good"},
    {"list", vtpmctl_list, "list [--json]", "list the vTPMs"},
    {"info", vtpmctl_info, "info NAME [--json]",
        "show a vTPM: state, and the sockets for QEMU and tpm2-tools"},
    {"snapshot", vtpmctl_snapshot, "snapshot NAME [--label TEXT] [--json]",
        "keep a snapshot of a vTPM's state"},
    {"snapshots", vtpmctl_snapshots, "snapshots NAME [--delete N] [--json]",
        "list a vTPM's snapshots, or delete one"},
    {"restore", vtpmctl_restore, "restore NAME --generation N [--yes] [--json]",
        "put a stopped vTPM's snapshot back: its next start reverts to it"},
    {"allow-revert", vtpmctl_allow_revert, "allow-revert NAME --generation N [--json]",
        "authorise one revert to older state put back by hand"},
    {"policy", vtpmctl_policy,
        "policy show [--json]\n"
        "    policy approve --current [--key FILE] [--json]",
        "show or approve the host configuration vTPM state is sealed to"},
    {"host", vtpmctl_host, "host [enroll --ca URL | ek-cert --out FILE] [--json]",
        "show the host TPM and the service; its EK certificate; enrol the host"},
    {"metrics", vtpmctl_metrics, "metrics",
        "print vtpmd's metrics (Prometheus text format, as GET /metrics)"},
};

static const char vtpmctl_help_head[] =
    "usage: vtpmctl [--socket PATH] COMMAND [ARGUMENTS]\n"
    "       vtpmctl COMMAND --help\n"
    "\n"
    "Control vtpmd, the virtual TPM service, over its API socket.\n"
    "\n"
    "commands:\n";

static const char vtpmctl_help_tail[] =
    "\n"
    "options:\n"
    "    -s, --socket PATH  vtpmd's API socket (default " VTPMCTL_DEFAULT_SOCKET ",\n"
    "                       or $VTPMD_SOCKET)\n"
    "    --json             (every command that prints) vtpmd's JSON answer\n"
    "\n"
    "Exit status: 0 success; 1 vtpmd refused, failed or could not be reached; 2 usage error.\n"
    "The manual: vtpmctl(8).\n";

static const struct cli vtpmctl_cli = {
    .name = "vtpmctl",
    .usage = "vtpmctl [--socket PATH] COMMAND [ARGUMENTS]",
    .help_head = vtpmctl_help_head,
    .help_tail = vtpmctl_help_tail,
    .cmds = vtpmctl_cmds,
    .n = sizeof(vtpmctl_cmds) / sizeof(vtpmctl_cmds[0]),
    .name_width = 12,
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *env = getenv("VTPMD_SOCKET");
	int c;

	log_init("vtpmctl", LOG_LEVEL_WARN);
	if (env != NULL && env[0] != '\0')
		vtpmctl_socket = env;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': vtpmctl_socket = optarg; break;
		case 'h': cli_help(&vtpmctl_cli); return EXIT_OK;
		case ':': return vtpmctl_usage(NULL, "option '%s' needs a value", argv[optind - 1]);
		default: return vtpmctl_usage(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc && vtpmctl_socket[0] == '\0')
		return vtpmctl_usage(NULL, "--socket needs a path");
	return cli_dispatch(&vtpmctl_cli, argc - optind, argv + optind);
}
