/*
 * ca_cmd_revoke.c: `vtpm-ca revoke`. A revoked CK vouches for no more
 * vTPMs, a revoked (v)EK enrols no more keys, and GET /v1/status/SERIAL
 * tells challengers; a running server sees it at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca.h"

static const char revoke_help[] =
    "usage: vtpm-ca revoke --serial HEX [--reason TEXT] [--foreign] --db FILE\n"
    "\n"
    "Revoke a certificate.\n"
    "The manual: vtpm-ca(8), COMMANDS, revoke.\n";

int
ca_cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"serial", required_argument, NULL, 's'},
	    {"reason", required_argument, NULL, 'r'},
	    {"foreign", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dbpath = NULL, *serial_arg = NULL, *reason = "";
	char serial[CERTS_SERIAL_HEX_MAX + 1];
	struct err err;
	struct ca_db *db;
	bool foreign = false;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dbpath = optarg; break;
		case 's': serial_arg = optarg; break;
		case 'r': reason = optarg; break;
		case 'f': foreign = true; break;
		case 'h': fputs(revoke_help, stdout); return EXIT_OK;
		case ':': return ca_usage("revoke", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("revoke", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("revoke", "unexpected argument '%s'", argv[optind]);
	if (dbpath == NULL || serial_arg == NULL)
		return ca_usage("revoke", "--serial and --db are required");
	if (ca_parse_serial(serial_arg, serial) == -1)
		return ca_usage(
		    "revoke", "--serial: 1 to %d hexadecimal digits", CERTS_SERIAL_HEX_MAX);
	if (strlen(reason) > 200)
		return ca_usage("revoke", "--reason: at most 200 characters");
	if ((db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	if (ca_db_revoke(db, serial, reason, time(NULL), foreign, &err) == -1) {
		ca_fail("%s%s", err.msg,
		    err.kind == ERR_ABSENT ? " (check 'vtpm-ca list'; for another CA's certificate "
		                             "add --foreign)"
		                           : "");
		ca_db_close(db);
		return EXIT_RUNTIME;
	}
	ca_db_close(db);
	printf("revoked serial %s%s%s%s\n", serial, foreign ? " (foreign)" : "",
	    reason[0] != '\0' ? ": " : "", reason);
	return EXIT_OK;
}
