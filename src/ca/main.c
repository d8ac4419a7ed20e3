/*
 * main.c: vtpm-ca's entry: the command table (one file per command) and main.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ca.h"

static const struct cli_cmd ca_cmds[] = {
    {"init", ca_cmd_init, "init --db FILE [--name NAME]",
        "create the database, the root CA, the Privacy CA and the Virtualization CA"},
    {"serve", ca_cmd_serve,
        "serve --db FILE [--role privacy|virtualization|both] [--listen HOST:PORT]\n"
        "        [--user NAME|UID[:GID]] [--config FILE] [--crl-url URL]\n"
        "        [--admit-any-manufacturer-ek] [--log-level LEVEL]",
        "answer the CA protocol (docs/ca-api.md) over HTTP"},
    {"trust", ca_cmd_trust,
        "trust add (--manufacturer | --virtualization | --privacy | --approval-key) FILE\n"
        "        [--name NAME] --db FILE",
        "trust a TPM manufacturer's root, a CA, or a host approval key"},
    {"host", ca_cmd_host,
        "host add NAME --ek-cert FILE --db FILE | host list [--json] --db FILE |\n"
        "        host remove NAME --db FILE",
        "admit a host's EK (under one name) for CK certificates; list, remove"},
    {"approve-host-config", ca_cmd_approve,
        "approve-host-config --db FILE --id NAME --pcrs LIST --values FILE|LIST",
        "approve the host PCR values under which vTPMs get EK certificates"},
    {"list", ca_cmd_list, "list [certificates|trust|host-configs|audit] [--json] --db FILE",
        "show the records"},
    {"revoke", ca_cmd_revoke, "revoke --serial HEX [--reason TEXT] [--foreign] --db FILE",
        "revoke a certificate"},
    {"cert", ca_cmd_cert, "cert --role privacy|virtualization|root [--chain] --db FILE",
        "print a CA certificate (PEM)"},
    {"crl", ca_cmd_crl,
        "crl --role privacy|virtualization|root --db FILE [--out FILE]\n"
        "        [--validity SECONDS]",
        "sign a role's certificate revocation list (PEM)"},
};

static const char ca_help_head[] =
    "usage: vtpm-ca COMMAND [ARGUMENTS]\n"
    "       vtpm-ca COMMAND --help\n"
    "\n"
    "The Privacy CA and the Virtualization CA of vtpmd.\n"
    "\n"
    "commands:\n";

static const char ca_help_tail[] =
    "\n"
    "Exit status: 0 success; 1 refused or failed; 2 usage error.\n"
    "The manual: vtpm-ca(8).\n";

static const struct cli ca_cli = {
    .name = "vtpm-ca",
    .usage = "vtpm-ca COMMAND [ARGUMENTS]",
    .help_head = ca_help_head,
    .help_tail = ca_help_tail,
    .cmds = ca_cmds,
    .n = sizeof(ca_cmds) / sizeof(ca_cmds[0]),
    .name_width = 20,
};

int
main(int argc, char **argv)
{
	log_init("vtpm-ca", LOG_LEVEL_WARN);
	return cli_dispatch(&ca_cli, argc - 1, argv + 1);
}
