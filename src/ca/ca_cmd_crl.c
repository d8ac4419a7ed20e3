/*
 * ca_cmd_crl.c: `vtpm-ca crl`, a CA role's CRL (ca_crl.c) as PEM, for
 * challengers that check revocation offline (vtpm-attest verify --crl,
 * openssl verify -crl_check_all -CRLfile) and for publishing where the
 * certificates' cRLDistributionPoints say.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"

#define CRL_VALIDITY_DEFAULT (24 * 3600)
#define CRL_VALIDITY_MAX     (366 * 24 * 3600)

static const char crl_help[] =
    "usage: vtpm-ca crl --role privacy|virtualization|root --db FILE [--out FILE]\n"
    "           [--validity SECONDS]\n"
    "\n"
    "Sign a CA role's certificate revocation list.\n"
    "The manual: vtpm-ca(8), COMMANDS, crl.\n";

/* Signs the CRL of role with its key beside db. */
static int
crl_sign(const char *dbpath, const char *role, int64_t validity, uint8_t **der, size_t *len)
{
	char key[1024], cert[1024];
	struct certs_ca *ca = NULL;
	struct ca_db *db = NULL;
	struct err err;
	int ret = EXIT_RUNTIME;

	if (ca_file(dbpath, role, "key", key, sizeof(key)) == -1 ||
	    ca_file(dbpath, role, "pem", cert, sizeof(cert)) == -1)
		return ca_fail("%s: path too long", dbpath);
	if ((ca = certs_ca_load(key, cert, &err)) == NULL) {
		ca_fail("the %s CA: %s", role, err.msg);
		goto out;
	}
	if ((db = ca_db_open(dbpath, false, &err)) == NULL) {
		ca_fail("%s: %s", dbpath, err.msg);
		goto out;
	}
	if (ca_crl_make(db, ca, role, time(NULL), validity, der, len, &err) == -1) {
		ca_fail("%s", err.msg);
		goto out;
	}
	ret = EXIT_OK;
out:
	ca_db_close(db);
	certs_ca_free(ca);
	return ret;
}

static int
crl_write(const char *out, const uint8_t *der, size_t len)
{
	char *pem = certs_crl_pem(der, len);
	int ret = EXIT_OK;

	if (pem == NULL)
		return ca_fail("the CRL cannot be encoded");
	if (out == NULL)
		fputs(pem, stdout);
	else if (fileio_write_atomic(out, pem, strlen(pem), 0644) == -1)
		ret = ca_fail("%s: %s", out, strerror(errno));
	free(pem);
	return ret;
}

int
ca_cmd_crl(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"role", required_argument, NULL, 'r'},
	    {"out", required_argument, NULL, 'o'},
	    {"validity", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *role = NULL, *out = NULL;
	int64_t validity = CRL_VALIDITY_DEFAULT;
	uint8_t *der = NULL;
	size_t len = 0;
	char *end;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'r': role = optarg; break;
		case 'o': out = optarg; break;
		case 'v':
			validity = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || validity < 1 ||
			    validity > CRL_VALIDITY_MAX)
				return ca_usage(
				    "crl", "--validity: 1 to %d seconds", CRL_VALIDITY_MAX);
			break;
		case 'h': fputs(crl_help, stdout); return EXIT_OK;
		case ':': return ca_usage("crl", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("crl", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("crl", "unexpected argument '%s'", argv[optind]);
	if (db == NULL || role == NULL)
		return ca_usage("crl", "--role and --db are required");
	if (strcmp(role, "privacy") != 0 && strcmp(role, "virtualization") != 0 &&
	    strcmp(role, "root") != 0)
		return ca_usage("crl", "--role: privacy, virtualization or root");
	ret = crl_sign(db, role, validity, &der, &len);
	if (ret == EXIT_OK)
		ret = crl_write(out, der, len);
	free(der);
	return ret;
}
