/*
 * ca_cmd_cert.c: `vtpm-ca cert`, a CA certificate as PEM, for challengers
 * (the root) and for other CAs' trust stores (an issuing CA with --chain).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"

static const char cert_help[] =
    "usage: vtpm-ca cert --role privacy|virtualization|root [--chain] --db FILE\n"
    "\n"
    "Print a CA certificate.\n"
    "The manual: vtpm-ca(8), COMMANDS, cert.\n";

static int
cert_print(const char *db, const char *which)
{
	char path[1024];
	uint8_t *der = NULL;
	size_t len = 0;
	char *pem;

	if (ca_file(db, which, "pem", path, sizeof(path)) == -1)
		return ca_fail("%s: path too long", db);
	if (certs_read(path, &der, &len) == -1)
		return ca_fail(
		    "%s: cannot be read (was the CA made with 'vtpm-ca init --db %s'?)", path, db);
	pem = certs_pem_encode(der, len);
	free(der);
	if (pem == NULL)
		return ca_fail("%s: not a certificate", path);
	fputs(pem, stdout);
	free(pem);
	return EXIT_OK;
}

int
ca_cmd_cert(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"role", required_argument, NULL, 'r'},
	    {"chain", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *role = NULL;
	bool chain = false;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'r': role = optarg; break;
		case 'c': chain = true; break;
		case 'h': fputs(cert_help, stdout); return EXIT_OK;
		case ':': return ca_usage("cert", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("cert", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("cert", "unexpected argument '%s'", argv[optind]);
	if (db == NULL || role == NULL)
		return ca_usage("cert", "--role and --db are required");
	if (strcmp(role, "privacy") != 0 && strcmp(role, "virtualization") != 0 &&
	    strcmp(role, "root") != 0)
		return ca_usage("cert", "--role: privacy, virtualization or root");
	ret = cert_print(db, role);
	if (ret == EXIT_OK && chain && strcmp(role, "root") != 0)
		ret = cert_print(db, "root");
	return ret;
}
