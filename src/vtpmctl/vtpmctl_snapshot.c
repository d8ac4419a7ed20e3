/*
 * vtpmctl_snapshot.c: snapshots and reverts of a vTPM's state, explicit
 * operator actions (docs/api.md; docs/state.md, "Operator snapshots and reverts"): snapshot,
 * snapshots, restore, allow-revert.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtpmctl.h"

struct snapshot_args {
	const char *name;
	const char *label;   /* --label, or NULL */
	long long generation; /* --generation or --delete, or 0 */
	bool json, yes, del;
};

enum { SOPT_LABEL = 1 << 0, SOPT_GENERATION = 1 << 1, SOPT_YES = 1 << 2, SOPT_DELETE = 1 << 3 };

static const char snapshot_help[] =
    "usage: vtpmctl snapshot NAME [--label TEXT] [--json]\n"
    "\n"
    "Keep a snapshot of a vTPM's state (encrypted, as at rest), running or not.\n"
    "The manual: vtpmctl(8), COMMANDS, snapshot.\n";

static const char snapshots_help[] =
    "usage: vtpmctl snapshots NAME [--delete N] [--json]\n"
    "\n"
    "List a vTPM's snapshots, or delete its snapshot of generation N.\n"
    "The manual: vtpmctl(8), COMMANDS, snapshots.\n";

static const char restore_help[] =
    "usage: vtpmctl restore NAME --generation N [--yes] [--json]\n"
    "\n"
    "Put a stopped vTPM's snapshot of generation N back: its next start reverts to it.\n"
    "The manual: vtpmctl(8), COMMANDS, restore.\n";

static const char allow_revert_help[] =
    "usage: vtpmctl allow-revert NAME --generation N [--json]\n"
    "\n"
    "Authorise one revert of a vTPM to older state of generation N (a VM's storage\n"
    "snapshot or backup put back): its next start accepts it once.\n"
    "The manual: vtpmctl(8), COMMANDS, allow-revert.\n";

/* A generation: a decimal number from 1. */
static long long
snapshot_generation(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 1)
		return 0;
	return v;
}

/* Parses NAME and the options in allowed. Returns -1 to go on, or the
 * exit status to return (after --help or a usage error). */
static int
snapshot_parse(int argc, char **argv, unsigned int allowed, const char *help,
    struct snapshot_args *a)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"label", required_argument, NULL, 'l'},
	    {"generation", required_argument, NULL, 'g'},
	    {"yes", no_argument, NULL, 'y'},
	    {"delete", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0];
	unsigned int seen = 0;
	int c;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(help); return EXIT_OK;
		case 'j': a->json = true; break;
		case 'l':
			seen |= SOPT_LABEL;
			a->label = optarg;
			break;
		case 'g':
			seen |= SOPT_GENERATION;
			if ((a->generation = snapshot_generation(optarg)) == 0)
				return vtpmctl_usage(cmd, "--generation takes a number from 1, not '%s'",
				    optarg);
			break;
		case 'y':
			seen |= SOPT_YES;
			a->yes = true;
			break;
		case 'd':
			seen |= SOPT_DELETE;
			a->del = true;
			if ((a->generation = snapshot_generation(optarg)) == 0)
				return vtpmctl_usage(cmd, "--delete takes a generation from 1, not '%s'",
				    optarg);
			break;
		case ':': return vtpmctl_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
		default: return vtpmctl_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (seen & ~allowed)
		return vtpmctl_usage(cmd, "option '%s' does not apply to %s",
		    (seen & ~allowed & SOPT_LABEL)    ? "--label"
		    : (seen & ~allowed & SOPT_YES)    ? "--yes"
		    : (seen & ~allowed & SOPT_DELETE) ? "--delete"
						      : "--generation",
		    cmd);
	if (optind >= argc)
		return vtpmctl_usage(cmd, "which instance? give its NAME");
	a->name = argv[optind++];
	if (!vtpmctl_check_name(cmd, a->name))
		return EXIT_USAGE;
	if (optind < argc)
		return vtpmctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if ((allowed & SOPT_GENERATION) && a->generation == 0)
		return vtpmctl_usage(cmd, "which generation? give --generation N (see 'vtpmctl "
					  "snapshots %s')", a->name);
	return -1;
}

int
vtpmctl_snapshot(int argc, char **argv)
{
	struct snapshot_args a;
	json_t *body, *reply = NULL;
	char path[128];
	int ret;

	if ((ret = snapshot_parse(argc, argv, SOPT_LABEL, snapshot_help, &a)) != -1)
		return ret;
	body = json_pack("{s:s}", "label", a.label != NULL ? a.label : "");
	if (body == NULL)
		return vtpmctl_fail("out of memory");
	snprintf(path, sizeof(path), "/v1/instances/%s/snapshot", a.name);
	ret = vtpmctl_call("POST", path, body, &reply);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a.json)
		vtpmctl_print_json(reply);
	else
		printf("%s: snapshot of generation %lld taken\n", a.name,
		    (long long)json_integer_value(json_object_get(reply, "generation")));
	json_decref(reply);
	return EXIT_OK;
}

/* snapshots NAME --delete N: DELETE …/snapshots/N. */
static int
snapshot_delete(const struct snapshot_args *a)
{
	json_t *reply = NULL;
	char path[160];
	int ret;

	snprintf(path, sizeof(path), "/v1/instances/%s/snapshots/%lld", a->name, a->generation);
	ret = vtpmctl_call("DELETE", path, NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		vtpmctl_print_json(reply);
	else
		printf("%s: snapshot of generation %lld deleted\n", a->name, a->generation);
	json_decref(reply);
	return EXIT_OK;
}

int
vtpmctl_snapshots(int argc, char **argv)
{
	struct snapshot_args a;
	json_t *reply = NULL, *arr, *s;
	char path[128];
	size_t i;
	int ret;

	if ((ret = snapshot_parse(argc, argv, SOPT_DELETE, snapshots_help, &a)) != -1)
		return ret;
	if (a.del)
		return snapshot_delete(&a);
	snprintf(path, sizeof(path), "/v1/instances/%s/snapshots", a.name);
	ret = vtpmctl_call("GET", path, NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	arr = json_object_get(reply, "snapshots");
	if (a.json) {
		vtpmctl_print_json(reply);
	} else if (json_array_size(arr) == 0) {
		printf("%s has no snapshots; take one with 'vtpmctl snapshot %s'\n", a.name, a.name);
	} else {
		printf("%-10s  %-20s  %s\n", "GENERATION", "TAKEN", "LABEL");
		json_array_foreach(arr, i, s)
			printf("%-10lld  %-20s  %s\n",
			    (long long)json_integer_value(json_object_get(s, "generation")),
			    vtpmctl_str(s, "taken", "?"), vtpmctl_str(s, "label", ""));
	}
	json_decref(reply);
	return EXIT_OK;
}

/* Asks on the terminal before a restore; true to go on. */
static bool
snapshot_confirm(const struct snapshot_args *a)
{
	char line[16];

	if (a->yes)
		return true;
	if (!isatty(STDIN_FILENO)) {
		vtpmctl_usage("restore", "a restore replaces %s's TPM state: confirm with --yes",
		    a->name);
		return false;
	}
	printf("Replace %s's TPM state with its snapshot of generation %lld? Its state now is "
	       "kept as a snapshot. [y/N] ", a->name, a->generation);
	fflush(stdout);
	return fgets(line, sizeof(line), stdin) != NULL && (line[0] == 'y' || line[0] == 'Y');
}

/* restore and allow-revert: POST {"generation": N}, the INSTANCE back. */
static int
snapshot_revert(int argc, char **argv, bool restore)
{
	struct snapshot_args a;
	json_t *body, *reply = NULL;
	char path[128];
	int ret;

	ret = snapshot_parse(argc, argv, SOPT_GENERATION | (restore ? SOPT_YES : 0),
	    restore ? restore_help : allow_revert_help, &a);
	if (ret != -1)
		return ret;
	if (restore && !snapshot_confirm(&a))
		return EXIT_USAGE;
	body = json_pack("{s:I}", "generation", (json_int_t)a.generation);
	if (body == NULL)
		return vtpmctl_fail("out of memory");
	snprintf(path, sizeof(path), "/v1/instances/%s/%s", a.name,
	    restore ? "restore" : "allow-revert");
	ret = vtpmctl_call("POST", path, body, &reply);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a.json)
		vtpmctl_print_json(reply);
	else
		printf("%s: %s generation %lld; its next start reverts to it (vtpmctl start %s)\n",
		    a.name, restore ? "restored its snapshot of" : "one revert authorised, to",
		    a.generation, a.name);
	json_decref(reply);
	return EXIT_OK;
}

int
vtpmctl_restore(int argc, char **argv)
{
	return snapshot_revert(argc, argv, true);
}

int
vtpmctl_allow_revert(int argc, char **argv)
{
	return snapshot_revert(argc, argv, false);
}
