/*
 * ca.c: vtpm-ca, the Privacy CA and the Virtualization CA. The command
 * table (one file per command), and what every command shares: usage
 * errors, failures, the CA files beside the database, names of roles.
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

static const struct ca_cmd ca_cmds[] = {
    {"init", ca_cmd_init, "init --db FILE [--name NAME]",
        "create the database, the root CA, the Privacy CA and the Virtualization CA"},
    {"serve", ca_cmd_serve,
        "serve --db FILE [--role privacy|virtualization|both] [--listen HOST:PORT]\n"
        "        [--config FILE] [--log-level LEVEL]",
        "answer the CA protocol (docs/ca-api.md) over HTTP"},
    {"trust", ca_cmd_trust,
        "trust add (--manufacturer | --virtualization | --privacy | --approval-key) FILE\n"
        "        [--name NAME] --db FILE",
        "trust a TPM manufacturer's root, a CA, or a host approval key"},
    {"approve-host-config", ca_cmd_approve,
        "approve-host-config --db FILE --id NAME --pcrs LIST --values FILE|LIST",
        "approve the host PCR values under which vTPMs get EK certificates"},
    {"list", ca_cmd_list, "list [certificates|trust|host-configs|audit] [--json] --db FILE",
        "show the records"},
    {"revoke", ca_cmd_revoke, "revoke --serial HEX [--reason TEXT] [--foreign] --db FILE",
        "revoke a certificate"},
    {"cert", ca_cmd_cert, "cert --role privacy|virtualization|root [--chain] --db FILE",
        "print a CA certificate (PEM)"},
};

static const char ca_help_head[] =
    "NAME\n"
    "    vtpm-ca - the Privacy CA and the Virtualization CA of vtpmd\n"
    "\n"
    "SYNOPSIS\n"
    "    vtpm-ca COMMAND [ARGUMENTS]\n"
    "    vtpm-ca COMMAND --help\n"
    "\n"
    "DESCRIPTION\n"
    "    As the Privacy CA, vtpm-ca certifies a host's Certifying Key and a guest's\n"
    "    attestation keys once their TPM has proved, by TPM2_ActivateCredential,\n"
    "    that it holds them beside a trusted EK. As the Virtualization CA it issues\n"
    "    a vTPM's EK certificate, marked virtual, when the host TPM's Certifying\n"
    "    Key vouches for the vTPM in an approved host configuration. Records live\n"
    "    in one SQLite database; the CA keys and certificates beside it.\n"
    "\n"
    "COMMANDS\n";

static const char ca_help_tail[] = "\n"
                                   "EXIT STATUS\n"
                                   "    0  success\n"
                                   "    1  refused or failed; the message on stderr says why\n"
                                   "    2  usage error\n";

int
ca_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vtpm-ca%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nSee 'vtpm-ca %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

int
ca_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vtpm-ca: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_RUNTIME;
}

int
ca_file(const char *db, const char *which, const char *ext, char *out, size_t len)
{
	char *copy = strdup(db);
	int n;

	if (copy == NULL)
		return -1;
	n = snprintf(out, len, "%s/ca-%s.%s", dirname(copy), which, ext);
	free(copy);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

const char *
ca_role_name(enum ca_role role)
{
	switch (role) {
	case CA_ROLE_PRIVACY: return "privacy";
	case CA_ROLE_VIRTUALIZATION: return "virtualization";
	default: return "both";
	}
}

int
ca_role_parse(const char *s, enum ca_role *role)
{
	if (strcmp(s, "privacy") == 0)
		*role = CA_ROLE_PRIVACY;
	else if (strcmp(s, "virtualization") == 0)
		*role = CA_ROLE_VIRTUALIZATION;
	else if (strcmp(s, "both") == 0)
		*role = CA_ROLE_BOTH;
	else
		return -1;
	return 0;
}

void
ca_time_format(int64_t t, char out[static 21])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 21, "%lld", (long long)t);
}

static void
ca_main_help(void)
{
	fputs(ca_help_head, stdout);
	for (size_t i = 0; i < sizeof(ca_cmds) / sizeof(ca_cmds[0]); i++)
		printf("    %s\n        %s\n", ca_cmds[i].synopsis, ca_cmds[i].summary);
	fputs(ca_help_tail, stdout);
}

static const struct ca_cmd *
ca_find(const char *name)
{
	for (size_t i = 0; i < sizeof(ca_cmds) / sizeof(ca_cmds[0]); i++)
		if (strcmp(ca_cmds[i].name, name) == 0)
			return &ca_cmds[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	const struct ca_cmd *cmd;
	int ret;

	log_init("vtpm-ca", LOG_LEVEL_WARN);
	if (argc < 2) {
		fprintf(stderr, "usage: vtpm-ca COMMAND [ARGUMENTS]\n\ncommands:\n");
		for (size_t i = 0; i < sizeof(ca_cmds) / sizeof(ca_cmds[0]); i++)
			fprintf(stderr, "  %-20s %s\n", ca_cmds[i].name, ca_cmds[i].summary);
		fprintf(stderr, "\nSee 'vtpm-ca --help' or 'vtpm-ca COMMAND --help'.\n");
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		ca_main_help();
		return EXIT_OK;
	}
	if ((cmd = ca_find(argv[1])) == NULL)
		return ca_usage(NULL, "unknown command '%s'", argv[1]);
	optind = 0;
	ret = cmd->run(argc - 1, argv + 1);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vtpm-ca: cannot write the output: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	return ret;
}
