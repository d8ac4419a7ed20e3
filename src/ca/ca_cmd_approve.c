/*
 * ca_cmd_approve.c: `vtpm-ca approve-host-config`, a host configuration
 * the Virtualization CA accepts: sha256 PCR values, stored with their
 * PolicyPCR digest (what a host TPM's quote of those PCRs is matched by).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ca.h"

#define APPROVE_FILE_MAX (64u << 10)

static const char approve_help[] =
    "usage: vtpm-ca approve-host-config --db FILE --id NAME --pcrs LIST --values FILE|LIST\n"
    "\n"
    "Approve a host configuration.\n"
    "The manual: vtpm-ca(8), COMMANDS, approve-host-config.\n";

static bool
approve_valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > CERTS_HOST_CONFIG_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* The --values argument: a file's contents, or the text itself. */
static int
approve_values(const char *arg, uint32_t *mask, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	char *text = NULL;
	struct err err;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;
	int ret;

	if (stat(arg, &st) == 0) {
		if (fileio_read(arg, APPROVE_FILE_MAX, &buf, &len) == -1)
			return ca_fail("%s: %s", arg, strerror(errno));
		text = strndup((const char *)buf, len);
		free(buf);
		if (text == NULL)
			return ca_fail("out of memory");
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
			text[--len] = '\0';
	}
	ret = ca_parse_pcr_values(text != NULL ? text : arg, mask, values, &err);
	free(text);
	if (ret == -1)
		return ca_usage("approve-host-config", "--values: %s", err.msg);
	return EXIT_OK;
}

static int
approve_run(const char *dbpath, const char *id, const struct pcr_selection *sel, const char *vals)
{
	struct ca_host_config hc = {0};
	char hex[2 * TPM_DIGEST_LEN + 1], list[128];
	struct err err;
	struct ca_db *db = NULL;
	uint32_t mask = 0;
	int ret;

	if ((ret = approve_values(vals, &mask, hc.values)) != EXIT_OK)
		return ret;
	if (mask != sel->mask) {
		struct pcr_selection diff = {.mask = mask ^ sel->mask};
		pcrpolicy_format(&diff, list, sizeof(list));
		return ca_usage("approve-host-config",
		    "--values and --pcrs disagree on PCR %s: give one value for each PCR of --pcrs",
		    list);
	}
	hc.mask = mask;
	snprintf(hc.id, sizeof(hc.id), "%s", id);
	hc.approved_at = time(NULL);
	if (pcrpolicy_digest(sel, hc.values, hc.policy) == -1)
		return ca_fail("the PolicyPCR digest cannot be computed");
	if ((db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	ret = EXIT_RUNTIME;
	if (ca_db_host_config_add(db, &hc, &err) == -1) {
		ca_fail("%s: %s", id, err.msg);
		goto out;
	}
	hex_encode(hc.policy, sizeof(hc.policy), hex);
	pcrpolicy_format(sel, list, sizeof(list));
	err_set(&err, ERR_FAILED, "%s: sha256 PCRs %s, PolicyPCR %s", id, list, hex);
	ca_db_audit(db, time(NULL), "approve-host-config", "done", err.msg, NULL);
	printf("approved host configuration %s\n", err.msg);
	ret = EXIT_OK;
out:
	ca_db_close(db);
	return ret;
}

int
ca_cmd_approve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"id", required_argument, NULL, 'i'},
	    {"pcrs", required_argument, NULL, 'p'},
	    {"values", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *id = NULL, *pcrs = NULL, *values = NULL;
	struct pcr_selection sel;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'i': id = optarg; break;
		case 'p': pcrs = optarg; break;
		case 'v': values = optarg; break;
		case 'h': fputs(approve_help, stdout); return EXIT_OK;
		case ':':
			return ca_usage(
			    "approve-host-config", "%s needs a value", argv[optind - 1]);
		default:
			return ca_usage(
			    "approve-host-config", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("approve-host-config", "unexpected argument '%s'", argv[optind]);
	if (db == NULL || id == NULL || pcrs == NULL || values == NULL)
		return ca_usage(
		    "approve-host-config", "--db, --id, --pcrs and --values are required");
	if (!approve_valid_id(id))
		return ca_usage("approve-host-config",
		    "--id: 1 to %d characters of letters, digits, '.', '_', ':', '-'",
		    CERTS_HOST_CONFIG_MAX);
	if (pcrpolicy_parse(pcrs, &sel) == -1)
		return ca_usage("approve-host-config", "--pcrs: a list of PCR numbers 0-23 such as "
		                                       "0,2,4,7");
	return approve_run(db, id, &sel, values);
}
