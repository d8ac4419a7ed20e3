/*
 * ca_cmd_host.c: `vtpm-ca host`, the hosts the Privacy CA admits
 * (docs/ca-api.md, "Admitted hosts"): a CK certificate is issued only to a
 * host EK its operator added here, under the one name it was added with.
 * Each change is in the audit trail; a running server sees it at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca.h"

static const char host_help[] =
    "usage: vtpm-ca host add NAME --ek-cert FILE --approval-key FILE --db FILE\n"
    "       vtpm-ca host add NAME --ek-cert FILE --no-approval-key --db FILE\n"
    "       vtpm-ca host list [--json] --db FILE\n"
    "       vtpm-ca host remove NAME --db FILE\n"
    "\n"
    "The hosts whose EK may have a CK certificate.\n"
    "The manual: vtpm-ca(8), COMMANDS, host.\n";

struct host_opts {
	const char *db, *ek_cert, *approval_key;
	bool json, no_approval_key;
};

static int
host_parse(int argc, char **argv, struct host_opts *o)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"ek-cert", required_argument, NULL, 'e'},
	    {"approval-key", required_argument, NULL, 'a'},
	    {"no-approval-key", no_argument, NULL, 'N'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o->db = optarg; break;
		case 'e': o->ek_cert = optarg; break;
		case 'a': o->approval_key = optarg; break;
		case 'N': o->no_approval_key = true; break;
		case 'j': o->json = true; break;
		case 'h': fputs(host_help, stdout); return -1;
		case ':': return ca_usage("host", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("host", "unknown option '%s'", argv[optind - 1]);
		}
	}
	return EXIT_OK;
}

/* A host name as the CK certificate carries it. */
static bool
host_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CERTS_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* The EK certificate in path as PEM text and the hex SHA-256 of its key. */
static int
host_read_ek(const char *path, char **pem, char ek_key[static CA_EK_KEY_HEX + 1])
{
	uint8_t *der = NULL, digest[CERTS_DIGEST_LEN];
	size_t len = 0;
	int ret = EXIT_RUNTIME;

	*pem = NULL;
	if (certs_read(path, &der, &len) == -1)
		return ca_fail("%s: not a readable certificate (PEM or DER)", path);
	if (certs_cert_key_digest(der, len, digest) == -1 ||
	    (*pem = certs_pem_encode(der, len)) == NULL) {
		ca_fail("%s: its public key cannot be read", path);
		goto out;
	}
	hex_encode(digest, sizeof(digest), ek_key);
	ret = EXIT_OK;
out:
	free(der);
	return ret;
}

/* add's options: an EK certificate, and an approval key or the lab
 * switch that does without. */
static int
host_add_opts_ok(const struct host_opts *o)
{
	if (o->ek_cert == NULL)
		return ca_usage("host", "add NAME needs --ek-cert FILE");
	if (o->approval_key == NULL && !o->no_approval_key)
		return ca_usage("host",
		    "add NAME needs --approval-key FILE, the host's approval public key "
		    "(or, in a lab, --no-approval-key)");
	if (o->approval_key != NULL && o->no_approval_key)
		return ca_usage("host", "--approval-key and --no-approval-key exclude each other");
	return EXIT_OK;
}

static int
host_add(struct ca_db *db, const char *name, const struct host_opts *o)
{
	char ek_key[CA_EK_KEY_HEX + 1], *pem = NULL;
	struct approval_pub approval;
	struct err err;
	int ret;

	if ((ret = host_add_opts_ok(o)) != EXIT_OK)
		return ret;
	if (o->approval_key != NULL && approval_key_public(o->approval_key, &approval) == -1)
		return ca_fail("%s: not an ECC P-256 approval key (PEM)", o->approval_key);
	if ((ret = host_read_ek(o->ek_cert, &pem, ek_key)) != EXIT_OK)
		return ret;
	if (ca_db_host_add(db, name, ek_key, pem, o->no_approval_key ? NULL : &approval, time(NULL),
	        &err) == -1) {
		free(pem);
		return ca_fail("host %s: %s", name, err.msg);
	}
	free(pem);
	snprintf(err.msg, sizeof(err.msg), "host %s, EK key %s, %s", name, ek_key,
	    o->no_approval_key ? "no approval key: its CK's policy is not checked (lab)"
	                       : "its CK's policy checked against its approval key");
	ca_db_audit(db, time(NULL), "host add", "done", err.msg, NULL);
	printf("admitted host %s (EK key SHA-256 %s)\n", name, ek_key);
	if (o->no_approval_key)
		fprintf(stderr,
		    "vtpm-ca: warning: host %s is admitted without an approval key: "
		    "any restricted signing key of its TPM may be its CK, usable in any "
		    "host configuration\n",
		    name);
	return EXIT_OK;
}

static int
host_remove(struct ca_db *db, const char *name)
{
	struct ca_host was;
	struct err err;

	if (ca_db_host_remove(db, name, &was, &err) == -1)
		return ca_fail(
		    "%s%s", err.msg, err.kind == ERR_ABSENT ? " (see 'vtpm-ca host list')" : "");
	snprintf(err.msg, sizeof(err.msg), "host %s, EK key %s", name, was.ek_key);
	ca_db_audit(db, time(NULL), "host remove", "done", err.msg, NULL);
	printf("removed host %s", name);
	if (was.ck_serial[0] != '\0')
		printf("; its CK certificate %s stays valid until 'vtpm-ca revoke --serial %s'",
		    was.ck_serial, was.ck_serial);
	printf("\n");
	return EXIT_OK;
}

struct host_list {
	bool json;
	json_t *arr;
	bool failed;
};

static int
host_list_one(void *ctx, const struct ca_host *h)
{
	struct host_list *l = ctx;
	char at[21], x[65], y[65];
	json_t *o;

	ca_time_format(h->added_at, at);
	if (!l->json) {
		printf("%-24s  %.16s...  %s  %s  %s%s\n", h->name, h->ek_key, at,
		    h->has_approval ? "CK policy checked" : "no approval key",
		    h->ck_serial[0] != '\0' ? "CK " : "no CK yet", h->ck_serial);
		return 0;
	}
	if (h->has_approval) {
		hex_encode(h->approval.x, sizeof(h->approval.x), x);
		hex_encode(h->approval.y, sizeof(h->approval.y), y);
	}
	o = json_pack("{s:s, s:s, s:s, s:o, s:s?, s:s?}", "name", h->name, "ek_key", h->ek_key,
	    "added_at", at, "approval_key",
	    h->has_approval ? json_pack("{s:s, s:s}", "x", x, "y", y) : json_null(), "ck_serial",
	    h->ck_serial[0] != '\0' ? h->ck_serial : NULL, "ek_certificate",
	    h->ek_certificate != NULL && h->ek_certificate[0] != '\0' ? h->ek_certificate : NULL);
	if (o == NULL || json_array_append_new(l->arr, o) == -1)
		l->failed = true;
	return 0;
}

static int
host_list(struct ca_db *db, bool json)
{
	struct host_list l = {.json = json, .arr = json ? json_array() : NULL};
	struct err err;
	int ret = EXIT_OK;

	if (json && l.arr == NULL)
		return ca_fail("out of memory");
	if (ca_db_host_list(db, host_list_one, &l, &err) == -1)
		ret = ca_fail("%s", err.msg);
	else if (l.failed)
		ret = ca_fail("out of memory");
	else if (json && json_dumpf(l.arr, stdout, JSON_INDENT(2)) == 0)
		printf("\n");
	json_decref(l.arr);
	return ret;
}

int
ca_cmd_host(int argc, char **argv)
{
	struct host_opts o;
	const char *verb, *name = NULL;
	struct ca_db *db;
	struct err err;
	int ret, nargs;

	if ((ret = host_parse(argc, argv, &o)) != EXIT_OK)
		return ret == -1 ? EXIT_OK : ret;
	nargs = argc - optind;
	verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0) {
		if (nargs != 1)
			return ca_usage("host", "unexpected argument '%s'", argv[optind + 1]);
	} else if (strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) {
		if (nargs != 2)
			return ca_usage("host", "%s takes one NAME", verb);
		name = argv[optind + 1];
		if (!host_name_ok(name))
			return ca_usage(
			    "host", "NAME: 1 to %d printable ASCII characters", CERTS_NAME_MAX);
	} else {
		return ca_usage("host", "add, list or remove");
	}
	if (o.db == NULL)
		return ca_usage("host", "--db is required");
	if ((db = ca_db_open(o.db, false, &err)) == NULL)
		return ca_fail("%s: %s", o.db, err.msg);
	if (strcmp(verb, "add") == 0)
		ret = host_add(db, name, &o);
	else if (strcmp(verb, "remove") == 0)
		ret = host_remove(db, name);
	else
		ret = host_list(db, o.json);
	ca_db_close(db);
	return ret;
}
