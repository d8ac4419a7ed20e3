/*
 * main.c: vtpm-attest's entry: the command table (one file per command group) and main.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attest.h"

static const struct cli_cmd attest_cmds[] = {
    {"verify", attest_verify,
        "verify --ak-cert FILE --nonce HEX --trust ROOT.pem (--quote FILE | --message FILE\n"
        "        --signature FILE --pcr-file FILE) [--untrusted FILE]... [--pcrs SPEC]\n"
        "        [--policy accept-virtual|reject-virtual|require-host-config ID]\n"
        "        [--ca URL] [--state DIR] [--json]",
        "the challenger: check a quote against the AK certificate and a policy"},
    {"quote", attest_quote,
        "quote --tcti TCTI --ak-handle HANDLE --pcrs SPEC --nonce HEX --out FILE",
        "quote PCRs with the attestation key and write the evidence bundle"},
    {"enroll", attest_enroll,
        "enroll --ca URL --tcti TCTI --ak-handle HANDLE [--ek-handle HANDLE] --out AK.pem",
        "have the Privacy CA certify the attestation key (credential activation)"},
    {"challenge", attest_challenge,
        "challenge --ca URL --ek-cert FILE --ek-public FILE --ak-public FILE\n"
        "        --out-credential FILE",
        "ask the Privacy CA for a challenge, in tpm2_makecredential's file layout"},
    {"certify", attest_certify, "certify --ca URL --id ID --secret FILE --out AK.pem",
        "answer a challenge with what tpm2_activatecredential recovered"},
};

static const char attest_help_head[] =
    "usage: vtpm-attest COMMAND [ARGUMENTS]\n"
    "       vtpm-attest COMMAND --help\n"
    "\n"
    "Attestation with a (virtual) TPM: quote, enroll, verify.\n"
    "\n"
    "commands:\n";

static const char attest_help_tail[] =
    "\n"
    "Exit status: 0 success (verify: the quote is trusted); 1 refused or failed; 2 usage error.\n"
    "The manual: vtpm-attest(1).\n";

static const struct cli attest_cli = {
    .name = "vtpm-attest",
    .usage = "vtpm-attest COMMAND [ARGUMENTS]",
    .help_head = attest_help_head,
    .help_tail = attest_help_tail,
    .cmds = attest_cmds,
    .n = sizeof(attest_cmds) / sizeof(attest_cmds[0]),
    .name_width = 9,
};

int
main(int argc, char **argv)
{
	log_init("vtpm-attest", LOG_LEVEL_WARN);
	return cli_dispatch(&attest_cli, argc - 1, argv + 1);
}
