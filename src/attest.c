/*
 * attest.c: vtpm-attest, the guest's attestation tool and the challenger.
 * The command table (one file per command group), and what every command
 * shares: usage errors, failures, hex and handle arguments.
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
    "NAME\n"
    "    vtpm-attest - attestation with a (virtual) TPM: quote, enroll, verify\n"
    "\n"
    "SYNOPSIS\n"
    "    vtpm-attest COMMAND [ARGUMENTS]\n"
    "    vtpm-attest COMMAND --help\n"
    "\n"
    "DESCRIPTION\n"
    "    In a guest, vtpm-attest enrolls the vTPM's attestation key (AK) with the\n"
    "    Privacy CA (vtpm-ca) and quotes PCRs with it. As the challenger it verifies\n"
    "    such a quote, or one made with plain tpm2_quote, against the AK certificate,\n"
    "    and says whether a hardware TPM or a vTPM (on which host, in which approved\n"
    "    configuration) made it.\n"
    "\n"
    "COMMANDS\n";

static const char attest_help_tail[] = "\n"
                                       "EXIT STATUS\n"
                                       "    0  success (verify: the quote is trusted)\n"
                                       "    1  refused or failed; the message on stderr says why\n"
                                       "    2  usage error\n";

int
attest_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usagev("vtpm-attest", cmd, fmt, ap);
	va_end(ap);
	return ret;
}

int
attest_fail(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_failv("vtpm-attest", fmt, ap);
	va_end(ap);
	return ret;
}

/* Decodes hex (an even number of digits, 1 to max bytes) into out;
 * EXIT_OK or a usage error of cmd naming what. */
int
attest_parse_hex(
    const char *cmd, const char *what, const char *hex, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(hex);

	if (n >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) {
		hex += 2;
		n -= 2;
	}
	if (n == 0 || n % 2 != 0 || n / 2 > max || hex_decode(hex, out, n / 2) == -1)
		return attest_usage(cmd, "%s: 1 to %zu bytes in hexadecimal", what, max);
	*len = n / 2;
	return EXIT_OK;
}

/* A TPM handle, in hexadecimal (0x81010002) or decimal. */
int
attest_parse_handle(const char *cmd, const char *what, const char *s, uint32_t *handle)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX)
		return attest_usage(cmd, "%s: not a TPM handle (e.g. 0x81010002)", what);
	*handle = (uint32_t)v;
	return EXIT_OK;
}

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
