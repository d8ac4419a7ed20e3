/*
 * ca_cmd_list.c: `vtpm-ca list`, the records: issued certificates, the
 * trust store, approved host configurations, the audit trail; as a table
 * or (--json) one JSON array.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca.h"

static const char list_help[] =
    "usage: vtpm-ca list [certificates|trust|host-configs|audit] [--json] --db FILE\n"
    "\n"
    "Show the records.\n"
    "The manual: vtpm-ca(8), COMMANDS, list.\n";

struct list_ctx {
	bool json;
	json_t *arr;
	int failed;
};

static void
list_append(struct list_ctx *l, json_t *o)
{
	if (o == NULL || json_array_append_new(l->arr, o) == -1)
		l->failed = 1;
}

static int
list_cert(void *ctx, const struct ca_issued *c)
{
	struct list_ctx *l = ctx;
	char at[21], until[21], rev[21];

	ca_time_format(c->issued_at, at);
	ca_time_format(c->not_after, until);
	ca_time_format(c->revoked_at, rev);
	if (!l->json) {
		printf("%-32s  %-14s  %-2s  %s  %-7s  %s\n", c->serial, c->role, c->kind, at,
		    c->revoked ? "revoked" : "valid", c->subject);
		return 0;
	}
	list_append(
	    l, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s?, s:s?, s:s}", "serial",
	           c->serial, "role", c->role, "kind", c->kind, "subject", c->subject, "detail",
	           c->detail, "issued_at", at, "not_after", until, "revoked", c->revoked,
	           "revoked_at", c->revoked ? rev : NULL, "reason", c->revoked ? c->reason : NULL,
	           "certificate", c->certificate != NULL ? c->certificate : ""));
	return 0;
}

static int
list_trust(void *ctx, const struct ca_trust *t)
{
	struct list_ctx *l = ctx;
	char at[21];

	ca_time_format(t->added_at, at);
	if (!l->json) {
		printf("%-4lld  %-14s  %.16s  %s  %s\n", (long long)t->id, ca_trust_name(t->kind),
		    t->fingerprint, at, t->name);
		return 0;
	}
	list_append(
	    l, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)t->id, "kind",
	           ca_trust_name(t->kind), "name", t->name, "fingerprint", t->fingerprint,
	           "added_at", at, t->kind == CA_TRUST_APPROVAL_KEY ? "key" : "pem", t->data));
	return 0;
}

static int
list_host_config(void *ctx, const struct ca_host_config *hc)
{
	struct list_ctx *l = ctx;
	struct pcr_selection sel = {.mask = hc->mask};
	char at[21], pcrs[128], policy[2 * TPM_DIGEST_LEN + 1];

	ca_time_format(hc->approved_at, at);
	pcrpolicy_format(&sel, pcrs, sizeof(pcrs));
	hex_encode(hc->policy, sizeof(hc->policy), policy);
	if (!l->json) {
		printf("%-24s  sha256:%-14s  %.16s  %s\n", hc->id, pcrs, policy, at);
		return 0;
	}
	list_append(
	    l, json_pack("{s:s, s:s, s:o, s:s, s:s}", "id", hc->id, "bank", "sha256", "pcrs",
	           pcrpolicy_values_json(hc->mask, hc->values), "policy", policy, "approved_at", at));
	return 0;
}

static int
list_audit(void *ctx, const struct ca_audit *a)
{
	struct list_ctx *l = ctx;
	char at[21];

	ca_time_format(a->time, at);
	if (!l->json) {
		printf("%s  %-30s  %-10s  %s\n", at, a->action, a->outcome, a->detail);
		return 0;
	}
	list_append(l, json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)a->id, "time", at,
	                   "action", a->action, "outcome", a->outcome, "detail", a->detail));
	return 0;
}

static int
list_run(struct ca_db *db, const char *what, struct list_ctx *l, struct err *err)
{
	if (strcmp(what, "certificates") == 0) {
		if (!l->json)
			printf("%-32s  %-14s  %-2s  %-20s  %-7s  %s\n", "SERIAL", "ROLE", "KIND",
			    "ISSUED", "STATUS", "SUBJECT");
		return ca_db_issued_list(db, list_cert, l, err);
	}
	if (strcmp(what, "trust") == 0) {
		if (!l->json)
			printf("%-4s  %-14s  %-16s  %-20s  %s\n", "ID", "KIND", "FINGERPRINT",
			    "ADDED", "NAME");
		return ca_db_trust_list(db, -1, list_trust, l, err);
	}
	if (strcmp(what, "host-configs") == 0) {
		if (!l->json)
			printf("%-24s  %-21s  %-16s  %s\n", "ID", "PCRS", "POLICYPCR", "APPROVED");
		return ca_db_host_config_list(db, list_host_config, l, err);
	}
	if (!l->json)
		printf("%-20s  %-30s  %-10s  %s\n", "TIME", "ACTION", "OUTCOME", "DETAIL");
	return ca_db_audit_list(db, list_audit, l, err);
}

int
ca_cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const whats[] = {"certificates", "trust", "host-configs", "audit"};
	struct list_ctx l = {0};
	const char *dbpath = NULL, *what = "certificates";
	struct err err;
	struct ca_db *db;
	size_t i;
	int c, ret = EXIT_RUNTIME;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dbpath = optarg; break;
		case 'j': l.json = true; break;
		case 'h': fputs(list_help, stdout); return EXIT_OK;
		case ':': return ca_usage("list", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("list", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		what = argv[optind++];
	if (optind < argc)
		return ca_usage("list", "unexpected argument '%s'", argv[optind]);
	for (i = 0; i < sizeof(whats) / sizeof(whats[0]); i++)
		if (strcmp(what, whats[i]) == 0)
			break;
	if (i == sizeof(whats) / sizeof(whats[0]))
		return ca_usage(
		    "list", "list certificates, trust, host-configs or audit, not '%s'", what);
	if (dbpath == NULL)
		return ca_usage("list", "--db is required");
	if ((db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	if (l.json && (l.arr = json_array()) == NULL) {
		ca_fail("out of memory");
		goto out;
	}
	if (list_run(db, what, &l, &err) == -1) {
		ca_fail("%s: %s", dbpath, err.msg);
		goto out;
	}
	if (l.failed) {
		ca_fail("out of memory");
		goto out;
	}
	if (l.json && json_dumpf(l.arr, stdout, JSON_INDENT(2)) == -1)
		goto out;
	if (l.json)
		putchar('\n');
	ret = EXIT_OK;
out:
	json_decref(l.arr);
	ca_db_close(db);
	return ret;
}
