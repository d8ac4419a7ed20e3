/*
 * vtpmctl_policy.c: `vtpmctl policy show` and `vtpmctl policy approve`:
 * the host configurations (PCR policy digests) vTPM state keys are sealed
 * to, and approving the current one, either by vtpmd with the approval key
 * it holds or here, with the administrator's private key (approval.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmctl.h"

static const char policy_help[] =
    "usage: vtpmctl policy [show] [--json]\n"
    "       vtpmctl policy approve --current [--key FILE] [--json]\n"
    "\n"
    "Show or approve the host configuration.\n"
    "The manual: vtpmctl(8), COMMANDS, policy.\n";

struct policy_args {
	bool json, current;
	const char *key;
};

/* Prints the PCR values of a {"0": HEX, …} object in the order of pcrs
 * (when given), indented. */
static void
policy_print_values(const json_t *values, const json_t *pcrs, const char *indent)
{
	const char *key;
	json_t *v;
	char k[16];
	size_t i;

	if (json_is_array(pcrs) && json_array_size(pcrs) > 0) {
		json_array_foreach(pcrs, i, v)
		{
			snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(v));
			printf("%spcr %-3s %s\n", indent, k, vtpmctl_str(values, k, "?"));
		}
		return;
	}
	json_object_foreach((json_t *)values, key, v) printf(
	    "%spcr %-3s %s\n", indent, key, json_string_value(v) ? json_string_value(v) : "?");
}

static void
policy_print(const json_t *p)
{
	const json_t *pcrs = json_object_get(p, "pcrs"), *cur = json_object_get(p, "current");
	const json_t *key = json_object_get(p, "approval_key"),
	             *aps = json_object_get(p, "approvals");
	json_t *v;
	size_t i;

	printf("bank:          %s\n", vtpmctl_str(p, "bank", "?"));
	printf("pcrs:         ");
	json_array_foreach(pcrs, i, v) printf(" %lld", (long long)json_integer_value(v));
	printf("\n");
	printf("current:       %s (%s)\n", vtpmctl_str(cur, "policy", "?"),
	    json_is_true(json_object_get(cur, "approved")) ? "approved" : "NOT approved");
	policy_print_values(json_object_get(cur, "values"), pcrs, "               ");
	if (key != NULL) {
		printf("approval key:  x %s\n", vtpmctl_str(key, "x", "?"));
		printf("               y %s\n", vtpmctl_str(key, "y", "?"));
		printf("               %s\n", json_is_true(json_object_get(key, "private_held"))
		                                  ? "private key held by vtpmd"
		                                  : "public key only: approve with --key FILE");
	}
	printf("approvals:     %zu\n", json_array_size(aps));
	json_array_foreach(aps, i, v)
	{
		printf("  #%lld  %s  %s\n", (long long)json_integer_value(json_object_get(v, "id")),
		    vtpmctl_str(v, "approved_at", "?"), vtpmctl_str(v, "policy", "?"));
	}
	if (cur != NULL && !json_is_true(json_object_get(cur, "approved")))
		printf("\nThe host configuration is not approved: vTPMs will not start. If the\n"
		       "change is expected (a host update), approve it with\n"
		       "    vtpmctl policy approve --current [--key FILE]\n");
}

static int
policy_show(const struct policy_args *a)
{
	json_t *reply = NULL;
	int ret;

	ret = vtpmctl_call("GET", "/v1/policy", NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		vtpmctl_print_json(reply);
	else
		policy_print(reply);
	json_decref(reply);
	return EXIT_OK;
}

/* Prints what an approval answered: an APPROVAL (docs/api.md), or the
 * whole POLICY, whose current configuration must then be approved. */
static int
policy_print_approved(const json_t *reply)
{
	const json_t *cur = json_object_get(reply, "current"), *id = json_object_get(reply, "id");

	if (cur != NULL) {
		if (!json_is_true(json_object_get(cur, "approved")))
			return vtpmctl_fail(
			    "vtpmd took the approval, but the current host "
			    "configuration is still not approved; see 'vtpmctl policy'");
		printf("approved: %s\n", vtpmctl_str(cur, "policy", "?"));
		return EXIT_OK;
	}
	printf("approved: %s", vtpmctl_str(reply, "policy", "?"));
	if (json_is_integer(id))
		printf(" (approval #%lld, %s)", (long long)json_integer_value(id),
		    vtpmctl_str(reply, "approved_at", "?"));
	printf("\n");
	return EXIT_OK;
}

/* The body of a locally signed approval of the current policy in pol,
 * made with the private key at path; NULL after reporting why not. */
static json_t *
policy_sign(const json_t *pol, const char *path)
{
	const json_t *cur = json_object_get(pol, "current"), *key;
	const char *hex = vtpmctl_str(cur, "policy", "");
	uint8_t digest[TPM_DIGEST_LEN];
	char x[65], y[65], r[65], s[65];
	struct approval ap;

	if (hex_decode(hex, digest, sizeof(digest)) == -1 ||
	    !json_is_object(json_object_get(cur, "values"))) {
		vtpmctl_fail("vtpmd's answer has no current policy to sign");
		return NULL;
	}
	if (approval_sign(path, digest, &ap) == -1) {
		vtpmctl_fail("cannot sign with %s: not a readable P-256 private key (PEM)", path);
		fprintf(stderr, "vtpmctl: hint: give the approval key's private half; "
		                "vtpmd's approval_public is its public half\n");
		return NULL;
	}
	hex_encode(ap.pub.x, 32, x);
	hex_encode(ap.pub.y, 32, y);
	key = json_object_get(pol, "approval_key");
	if (key != NULL && (strcmp(vtpmctl_str(key, "x", ""), x) != 0 ||
	                       strcmp(vtpmctl_str(key, "y", ""), y) != 0)) {
		vtpmctl_fail("the key in %s is not vtpmd's approval key", path);
		fprintf(stderr,
		    "vtpmctl: hint: vtpmd trusts the key with x %s; use its private "
		    "half ('vtpmctl policy' shows it)\n",
		    vtpmctl_str(key, "x", "?"));
		return NULL;
	}
	hex_encode(ap.sig_r, 32, r);
	hex_encode(ap.sig_s, 32, s);
	return json_pack("{s:s, s:O, s:{s:s, s:s}, s:{s:s, s:s}}", "policy", hex, "values",
	    json_object_get(cur, "values"), "public", "x", x, "y", y, "signature", "r", r, "s", s);
}

static int
policy_approve(const struct policy_args *a)
{
	json_t *pol = NULL, *body = NULL, *reply = NULL;
	int ret = EXIT_RUNTIME;

	if (a->key == NULL) {
		body = json_pack("{s:b}", "current", 1);
	} else {
		ret = vtpmctl_call("GET", "/v1/policy", NULL, &pol);
		if (ret != EXIT_OK)
			goto out;
		ret = EXIT_RUNTIME;
		body = policy_sign(pol, a->key);
	}
	if (body == NULL)
		goto out;
	ret = vtpmctl_call("POST", "/v1/policy/approve", body, &reply);
	if (ret != EXIT_OK)
		goto out;
	if (a->json)
		vtpmctl_print_json(reply);
	else
		ret = policy_print_approved(reply);
out:
	json_decref(reply);
	json_decref(body);
	json_decref(pol);
	return ret;
}

int
vtpmctl_policy(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"current", no_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct policy_args a = {0};
	const char *sub = "show";
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(policy_help); return EXIT_OK;
		case 'j': a.json = true; break;
		case 'c': a.current = true; break;
		case 'k': a.key = optarg; break;
		case ':':
			return vtpmctl_usage(
			    "policy", "option '%s' needs a value", argv[optind - 1]);
		default: return vtpmctl_usage("policy", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		sub = argv[optind++];
	if (optind < argc)
		return vtpmctl_usage("policy", "unexpected argument '%s'", argv[optind]);
	if (strcmp(sub, "show") == 0) {
		if (a.current || a.key != NULL)
			return vtpmctl_usage("policy", "--current and --key belong to 'approve'");
		return policy_show(&a);
	}
	if (strcmp(sub, "approve") == 0) {
		if (!a.current)
			return vtpmctl_usage("policy",
			    "approve what? pass --current to approve the host's current "
			    "configuration");
		return policy_approve(&a);
	}
	return vtpmctl_usage("policy", "unknown subcommand '%s': use show or approve", sub);
}
