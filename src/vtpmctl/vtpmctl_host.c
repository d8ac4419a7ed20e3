/*
 * vtpmctl_host.c: `vtpmctl host`, the host TPM vtpmd roots every vTPM in,
 * and the service's counts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmctl.h"

static const char host_help[] =
    "usage: vtpmctl host [--json]\n"
    "       vtpmctl host enroll --ca URL [--virtualization-ca URL] [--ca-root FILE]\n"
    "                           [--virtualization-ca-root FILE] [--name HOST] [--json]\n"
    "       vtpmctl host ek-cert [--out FILE] [--json]\n"
    "       vtpmctl host forget-deleted UUID [--json]\n"
    "\n"
    "Show the host TPM and the service. forget-deleted removes a deleted vTPM's\n"
    "tombstone, so that its directory, put back from a backup, starts again with\n"
    "the state it holds (a rollback the operator authorises; logged).\n"
    "The manual: vtpmctl(8), COMMANDS, host.\n";

static void
host_print_enrolment(const json_t *e)
{
	const json_t *ck = json_object_get(e, "ck"), *bk = json_object_get(e, "bk");

	if (!json_is_true(json_object_get(e, "enrolled"))) {
		printf("enrolment:     none (vTPMs get no EK certificate; 'vtpmctl host enroll')\n");
		return;
	}
	printf("enrolled:      as \"%s\" at %s, host EK %s\n", vtpmctl_str(e, "host", "?"),
	    vtpmctl_str(e, "enrolled_at", "?"), vtpmctl_str(e, "ek", "?"));
	printf("Privacy CA:    %s\n", vtpmctl_str(e, "privacy_ca", "?"));
	printf("Virt. CA:      %s\n", vtpmctl_str(e, "virtualization_ca", "?"));
	printf("CA roots:      Privacy CA %s; Virtualization CA %s\n",
	    vtpmctl_str(e, "privacy_ca_root", "none kept"),
	    vtpmctl_str(e, "virtualization_ca_root", "none kept"));
	printf("CK:            %s, certificate %s serial %s\n", vtpmctl_str(ck, "handle", "?"),
	    vtpmctl_str(ck, "subject", "?"), vtpmctl_str(ck, "serial", "?"));
	printf("BK:            %s, RSA-2048 decryption key certified by the CK%s\n",
	    vtpmctl_str(bk, "handle", "?"),
	    json_object_get(bk, "certify_signature") ? "" : " (certification missing)");
}

static void
host_print(const json_t *h)
{
	const json_t *pol = json_object_get(h, "pcr_policy"), *n = json_object_get(h, "instances");
	json_t *v;
	size_t i;

	printf("host TPM:      %s\n", vtpmctl_str(h, "tcti", "?"));
	if (json_is_false(json_object_get(h, "available")))
		printf("               UNAVAILABLE: it did not answer when last asked; running vTPMs\n"
		       "               keep serving, creating and starting wait for it\n");
	if (json_is_true(json_object_get(h, "simulator")))
		printf("               SIMULATOR: it provides no hardware protection\n");
	printf("SRK:           %s\n", vtpmctl_str(json_object_get(h, "srk"), "handle", "?"));
	printf("PCR policy:    %s PCRs", vtpmctl_str(pol, "bank", "?"));
	json_array_foreach(json_object_get(pol, "pcrs"), i, v)
	    printf(" %lld", (long long)json_integer_value(v));
	printf("\n");
	printf("instances:     %lld (%lld running)\n",
	    (long long)json_integer_value(json_object_get(n, "total")),
	    (long long)json_integer_value(json_object_get(n, "running")));
	printf("TPM commands:  %lld\n",
	    (long long)json_integer_value(json_object_get(h, "host_tpm_commands")));
	host_print_enrolment(json_object_get(h, "enrolment"));
}

/* Calls vtpmd and prints the HOST it answers. */
static int
host_show(const char *method, const char *path, const json_t *body, bool json)
{
	json_t *reply = NULL;
	int ret = vtpmctl_call(method, path, body, &reply);

	if (ret != EXIT_OK)
		return ret;
	if (json)
		vtpmctl_print_json(reply);
	else
		host_print(reply);
	json_decref(reply);
	return EXIT_OK;
}

/* Adds the PEM text of file to body[key]. Returns EXIT_OK, or fails. */
static int
host_add_pem(json_t *body, const char *key, const char *file)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *s;

	if (file == NULL)
		return EXIT_OK;
	if (fileio_read(file, 1u << 16, &buf, &len) == -1)
		return vtpmctl_fail("%s: %s (give the CA's root certificate, PEM)", file,
		    errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
	s = json_stringn((const char *)buf, len);
	free(buf);
	if (s == NULL)
		return vtpmctl_fail("%s: not PEM text (give the CA's root certificate, PEM)", file);
	json_object_set_new(body, key, s);
	return EXIT_OK;
}

static int
host_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"virtualization-ca", required_argument, NULL, 'v'},
	    {"ca-root", required_argument, NULL, 'r'},
	    {"virtualization-ca-root", required_argument, NULL, 'R'},
	    {"name", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *ca = NULL, *vca = NULL, *name = NULL, *root = NULL, *vroot = NULL;
	json_t *body;
	bool json = false;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(host_help); return EXIT_OK;
		case 'c': ca = optarg; break;
		case 'v': vca = optarg; break;
		case 'r': root = optarg; break;
		case 'R': vroot = optarg; break;
		case 'n': name = optarg; break;
		case 'j': json = true; break;
		case ':':
			return vtpmctl_usage("host enroll", "option '%s' needs a value",
			    argv[optind - 1]);
		default:
			return vtpmctl_usage("host enroll", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vtpmctl_usage("host enroll", "unexpected argument '%s'", argv[optind]);
	if (ca == NULL)
		return vtpmctl_usage("host enroll", "which Privacy CA? give --ca URL");
	body = json_pack("{s:s}", "ca", ca);
	if (body == NULL)
		return vtpmctl_fail("out of memory");
	if (vca != NULL)
		json_object_set_new(body, "virtualization_ca", json_string(vca));
	if (name != NULL)
		json_object_set_new(body, "host", json_string(name));
	if (host_add_pem(body, "ca_root", root) != EXIT_OK ||
	    host_add_pem(body, "virtualization_ca_root", vroot) != EXIT_OK) {
		json_decref(body);
		return EXIT_RUNTIME;
	}
	ret = host_show("POST", "/v1/host/enroll", body, json);
	json_decref(body);
	return ret;
}

/* `host ek-cert`: the host EK certificate from vtpmd, as PEM. */
static int
host_ek_cert(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL, *pem;
	json_t *reply = NULL;
	bool json = false;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(host_help); return EXIT_OK;
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case ':':
			return vtpmctl_usage(
			    "host ek-cert", "option '%s' needs a value", argv[optind - 1]);
		default:
			return vtpmctl_usage(
			    "host ek-cert", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vtpmctl_usage("host ek-cert", "unexpected argument '%s'", argv[optind]);
	if ((ret = vtpmctl_call("GET", "/v1/host/ek-certificate", NULL, &reply)) != EXIT_OK)
		return ret;
	pem = vtpmctl_str(reply, "certificate", NULL);
	if (pem == NULL)
		ret = vtpmctl_fail("vtpmd's answer holds no certificate");
	else if (out != NULL && fileio_write_atomic(out, pem, strlen(pem), 0644) == -1)
		ret = vtpmctl_fail("%s: %s", out, strerror(errno));
	else if (json)
		vtpmctl_print_json(reply);
	else if (out == NULL)
		fputs(pem, stdout);
	json_decref(reply);
	return ret;
}

/* `host forget-deleted UUID`: a deleted vTPM's tombstone removed. */
static int
host_forget_deleted(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	json_t *body, *reply = NULL;
	bool json = false;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(host_help); return EXIT_OK;
		case 'j': json = true; break;
		default:
			return vtpmctl_usage(
			    "host forget-deleted", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return vtpmctl_usage("host forget-deleted", "give the deleted vTPM's UUID");
	body = json_pack("{s:s}", "uuid", argv[optind]);
	if (body == NULL)
		return vtpmctl_fail("out of memory");
	ret = vtpmctl_call("POST", "/v1/host/forget-deleted", body, &reply);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (json)
		vtpmctl_print_json(reply);
	else
		printf("the deletion of vTPM %s is forgotten: its directory, put back, starts\n",
		    argv[optind]);
	json_decref(reply);
	return EXIT_OK;
}

int
vtpmctl_host(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool json = false;
	int c;

	if (argc > 1 && strcmp(argv[1], "enroll") == 0)
		return host_enroll(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ek-cert") == 0)
		return host_ek_cert(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "forget-deleted") == 0)
		return host_forget_deleted(argc - 1, argv + 1);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(host_help); return EXIT_OK;
		case 'j': json = true; break;
		default: return vtpmctl_usage("host", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return vtpmctl_usage("host", "unexpected argument '%s'", argv[optind]);
	return host_show("GET", "/v1/host", NULL, json);
}
