/*
 * vtpmctl_instance.c: the commands on vTPM instances: create, start, stop,
 * restart, delete, list, info (docs/api.md, /v1/instances).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmctl.h"

/* The options instance commands take; each command allows a subset. */
enum {
	OPT_JSON = 1 << 0,
	OPT_TPM = 1 << 1,
	OPT_NO_START = 1 << 2,
	OPT_FORCE = 1 << 3,
	OPT_EK = 1 << 4,
	OPT_OWNER = 1 << 5,
};

struct instance_args {
	const char *name; /* NULL for list */
	const char *tpm;  /* "2.0" or "1.2" */
	const char *ek;   /* --ek LIST, or NULL */
	const char *owner; /* --owner USER[:GROUP], or NULL */
	bool json, no_start, force;
};

static const char create_help[] =
    "usage: vtpmctl create NAME [--tpm 2|1.2] [--ek TYPES|none] [--owner USER[:GROUP]]\n"
    "                      [--no-start] [--json]\n"
    "\n"
    "Create a vTPM for a virtual machine.\n"
    "The manual: vtpmctl(8), COMMANDS, create.\n";

static const char start_help[] =
    "usage: vtpmctl start NAME [--json]\n"
    "\n"
    "Start a vTPM.\n"
    "The manual: vtpmctl(8), COMMANDS, start.\n";

static const char stop_help[] =
    "usage: vtpmctl stop NAME [--json]\n"
    "\n"
    "Stop a vTPM.\n"
    "The manual: vtpmctl(8), COMMANDS, stop.\n";

static const char restart_help[] =
    "usage: vtpmctl restart NAME [--json]\n"
    "\n"
    "Stop and start a vTPM.\n"
    "The manual: vtpmctl(8), COMMANDS, restart.\n";

static const char renew_help[] =
    "usage: vtpmctl renew NAME [--json]\n"
    "\n"
    "Make a stopped vTPM a new vTPM of its own.\n"
    "The manual: vtpmctl(8), COMMANDS, renew.\n";

static const char delete_help[] =
    "usage: vtpmctl delete NAME [--force] [--json]\n"
    "\n"
    "Delete a vTPM and its state.\n"
    "The manual: vtpmctl(8), COMMANDS, delete.\n";

static const char list_help[] =
    "usage: vtpmctl list [--json]\n"
    "\n"
    "List the vTPMs.\n"
    "The manual: vtpmctl(8), COMMANDS, list.\n";

static const char info_help[] =
    "usage: vtpmctl info NAME [--json]\n"
    "\n"
    "Show a vTPM.\n"
    "The manual: vtpmctl(8), COMMANDS, info.\n";

/*
 * Parses a command's arguments: the options in allowed, and NAME unless
 * want_name is false. Returns -1 to go on, or the exit status to return
 * (after --help or a usage error).
 */
static int
instance_parse(int argc, char **argv, unsigned int allowed, bool want_name, const char *help,
    struct instance_args *a)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"tpm", required_argument, NULL, 't'},
	    {"no-start", no_argument, NULL, 'n'},
	    {"force", no_argument, NULL, 'f'},
	    {"ek", required_argument, NULL, 'e'},
	    {"owner", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0];
	unsigned int seen = 0;
	int c;

	memset(a, 0, sizeof(*a));
	a->tpm = "2.0";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': vtpmctl_help(help); return EXIT_OK;
		case 'j':
			seen |= OPT_JSON;
			a->json = true;
			break;
		case 't':
			seen |= OPT_TPM;
			if (strcmp(optarg, "2") == 0 || strcmp(optarg, "2.0") == 0)
				a->tpm = "2.0";
			else if (strcmp(optarg, "1.2") == 0)
				a->tpm = "1.2";
			else
				return vtpmctl_usage(
				    cmd, "--tpm must be 2 or 1.2, not '%s'", optarg);
			break;
		case 'n':
			seen |= OPT_NO_START;
			a->no_start = true;
			break;
		case 'f':
			seen |= OPT_FORCE;
			a->force = true;
			break;
		case 'e':
			seen |= OPT_EK;
			a->ek = optarg;
			break;
		case 'o':
			seen |= OPT_OWNER;
			a->owner = optarg;
			break;
		case ':': return vtpmctl_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
		default: return vtpmctl_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (seen & ~allowed)
		return vtpmctl_usage(cmd, "option '%s' does not apply to %s",
		    (seen & ~allowed & OPT_TPM)        ? "--tpm"
		    : (seen & ~allowed & OPT_NO_START) ? "--no-start"
		    : (seen & ~allowed & OPT_FORCE)    ? "--force"
		    : (seen & ~allowed & OPT_EK)       ? "--ek"
		    : (seen & ~allowed & OPT_OWNER)    ? "--owner"
		                                       : "--json",
		    cmd);
	if (want_name) {
		if (optind >= argc)
			return vtpmctl_usage(cmd, "which instance? give its NAME");
		a->name = argv[optind++];
		if (!vtpmctl_check_name(cmd, a->name))
			return EXIT_USAGE;
	}
	if (optind < argc)
		return vtpmctl_usage(cmd, "unexpected argument '%s'", argv[optind]);
	return -1;
}

static const char *
instance_int(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return "-";
	snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	return buf;
}

/* The EKs and their certificates, when the instance was provisioned. */
static void
instance_print_endorsement(const json_t *e)
{
	const json_t *ek;
	size_t i;

	if (e == NULL)
		return;
	json_array_foreach(json_object_get(e, "eks"), i, ek)
		printf("ek:         %s at %s, certificate in NV %s (serial %s, host config %s)\n",
		    vtpmctl_str(ek, "type", "?"), vtpmctl_str(ek, "handle", "?"),
		    vtpmctl_str(ek, "nv_index", "?"), vtpmctl_str(ek, "serial", "?"),
		    vtpmctl_str(ek, "host_config", "?"));
	printf("ek chain:   %zu certificate(s) from NV %s\n",
	    json_array_size(json_object_get(e, "chain")), vtpmctl_str(e, "chain_nv_first", "?"));
}

/* The last revert of its state, and one authorised for its next start. */
static void
instance_print_revert(const json_t *r)
{
	const json_t *last = json_object_get(r, "last");

	if (json_is_object(last))
		printf("reverted:   from generation %lld to %lld (stored as %lld), %s, by uid %lld "
		       "(%s)\n",
		    (long long)json_integer_value(json_object_get(last, "from")),
		    (long long)json_integer_value(json_object_get(last, "to")),
		    (long long)json_integer_value(json_object_get(last, "generation")),
		    vtpmctl_str(last, "at", "?"),
		    (long long)json_integer_value(json_object_get(last, "by_uid")),
		    vtpmctl_str(last, "how", "?"));
	if (json_is_integer(json_object_get(r, "allowed")))
		printf("revert:     to generation %lld authorised, for its next start\n",
		    (long long)json_integer_value(json_object_get(r, "allowed")));
}

/* Prints one INSTANCE as "key: value" lines. */
static void
instance_print(const json_t *o)
{
	const char *state = vtpmctl_str(o, "state", "?"), *desired = vtpmctl_str(o, "desired", "");
	const char *sock = vtpmctl_str(o, "socket", NULL), *err = vtpmctl_str(o, "error", NULL);
	char buf[32];

	printf("name:       %s\n", vtpmctl_str(o, "name", "?"));
	printf("uuid:       %s\n", vtpmctl_str(o, "uuid", "-"));
	printf("tpm:        %s\n", vtpmctl_str(o, "tpm", "?"));
	if (desired[0] != '\0' && strcmp(desired, state) != 0)
		printf("state:      %s (vtpmd keeps it %s)\n", state, desired);
	else
		printf("state:      %s\n", state);
	if (json_object_get(o, "pid") != NULL)
		printf("pid:        %s\n", instance_int(o, "pid", buf, sizeof(buf)));
	printf("restarts:   %s\n", instance_int(o, "restarts", buf, sizeof(buf)));
	if (vtpmctl_str(o, "owner", NULL) != NULL)
		printf("owner:      %s (no other user connects to its sockets)\n",
		    vtpmctl_str(o, "owner", ""));
	if (err != NULL)
		printf("error:      %s\n", err);
	if (vtpmctl_str(o, "copy_of", NULL) != NULL)
		printf("copy of:    %s (it does not start: delete one, or 'vtpmctl renew' this one)\n",
		    vtpmctl_str(o, "copy_of", ""));
	if (sock != NULL) {
		printf("socket:     %s\n", sock);
		printf("qemu:       -chardev socket,id=chrtpm,path=%s -tpmdev emulator,id=tpm0,"
		       "chardev=chrtpm\n",
		    sock);
	}
	if (json_is_null(json_object_get(o, "tcti")))
		printf("tcti:       - (tpm2-tools needs a TPM 2.0 instance)\n");
	else
		printf("tcti:       %s\n", vtpmctl_str(o, "tcti", "-"));
	printf("state_dir:  %s\n", vtpmctl_str(o, "state_dir", "-"));
	printf("created:    %s\n", vtpmctl_str(o, "created", "-"));
	instance_print_endorsement(json_object_get(o, "endorsement"));
	instance_print_revert(json_object_get(o, "revert"));
}

/* GETs or POSTs path and prints the INSTANCE it answers. */
static int
instance_show(const char *method, const char *path, const json_t *body,
    const struct instance_args *a, bool brief)
{
	json_t *reply = NULL;
	int ret;

	ret = vtpmctl_call(method, path, body, &reply);
	if (ret != EXIT_OK)
		return ret;
	if (a->json) {
		vtpmctl_print_json(reply);
	} else if (brief) {
		char buf[32];
		const char *state = vtpmctl_str(reply, "state", "?");
		if (json_object_get(reply, "pid") != NULL)
			printf("%s: %s (pid %s)\n", vtpmctl_str(reply, "name", a->name), state,
			    instance_int(reply, "pid", buf, sizeof(buf)));
		else
			printf("%s: %s\n", vtpmctl_str(reply, "name", a->name), state);
		if (vtpmctl_str(reply, "error", NULL) != NULL)
			printf("%s: last error: %s\n", vtpmctl_str(reply, "name", a->name),
			    vtpmctl_str(reply, "error", ""));
	} else {
		instance_print(reply);
	}
	json_decref(reply);
	return EXIT_OK;
}

/* A user or group, by name or number, as a number; -1 when unknown. */
static long
instance_id(const char *s, bool group)
{
	struct passwd pwbuf, *pw = NULL;
	struct group grbuf, *gr = NULL;
	char buf[16384], *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno == 0 && *end == '\0' && end != s && s[0] != '-' && v < 0xffffffffUL)
		return (long)v;
	if (group) {
		if (getgrnam_r(s, &grbuf, buf, sizeof(buf), &gr) != 0)
			gr = NULL;
		return gr != NULL ? (long)gr->gr_gid : -1;
	}
	if (getpwnam_r(s, &pwbuf, buf, sizeof(buf), &pw) != 0)
		pw = NULL;
	return pw != NULL ? (long)pw->pw_uid : -1;
}

/* --owner USER[:GROUP] into body's "owner": "UID[:GID]". Returns -1, or
 * a usage error's exit status. */
static int
instance_owner(const char *owner, json_t *body)
{
	char user[256], value[32];
	const char *colon = strchr(owner, ':');
	size_t ulen = colon != NULL ? (size_t)(colon - owner) : strlen(owner);
	long uid, gid = -1;

	if (ulen >= sizeof(user))
		return vtpmctl_usage("create", "--owner: no such user: '%s'", owner);
	memcpy(user, owner, ulen);
	user[ulen] = '\0';
	if ((uid = instance_id(user, false)) == -1)
		return vtpmctl_usage("create", "--owner: no such user: '%s'", user);
	if (colon != NULL && (gid = instance_id(colon + 1, true)) == -1)
		return vtpmctl_usage("create", "--owner: no such group: '%s'", colon + 1);
	if (gid != -1)
		snprintf(value, sizeof(value), "%ld:%ld", uid, gid);
	else
		snprintf(value, sizeof(value), "%ld", uid);
	json_object_set_new(body, "owner", json_string(value));
	return -1;
}

/* --ek LIST into body's "ek": a list of types, [] for "none". */
static int
instance_ek_list(const char *list, json_t *body)
{
	json_t *arr = json_array();
	char buf[64], *tok, *save = NULL;

	if (arr == NULL || strlen(list) >= sizeof(buf))
		goto fail;
	snprintf(buf, sizeof(buf), "%s", list);
	if (strcmp(buf, "none") != 0) {
		for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
			if (strcmp(tok, "rsa2048") != 0 && strcmp(tok, "ecc-p256") != 0)
				goto fail;
			json_array_append_new(arr, json_string(tok));
		}
		if (json_array_size(arr) == 0)
			goto fail;
	}
	json_object_set_new(body, "ek", arr);
	return 0;
fail:
	json_decref(arr);
	return -1;
}

int
vtpmctl_create(int argc, char **argv)
{
	struct instance_args a;
	json_t *body;
	int ret;

	ret = instance_parse(argc, argv, OPT_JSON | OPT_TPM | OPT_NO_START | OPT_EK | OPT_OWNER, true,
	    create_help, &a);
	if (ret != -1)
		return ret;
	body = json_pack("{s:s, s:s, s:b}", "name", a.name, "tpm", a.tpm, "start", !a.no_start);
	if (body == NULL)
		return vtpmctl_fail("out of memory");
	if (a.ek != NULL && instance_ek_list(a.ek, body) == -1) {
		json_decref(body);
		return vtpmctl_usage("create", "--ek takes rsa2048, ecc-p256 or both separated "
					       "by a comma, or none; not '%s'", a.ek);
	}
	if (a.owner != NULL && (ret = instance_owner(a.owner, body)) != -1) {
		json_decref(body);
		return ret;
	}
	ret = instance_show("POST", "/v1/instances", body, &a, false);
	json_decref(body);
	return ret;
}

/* start, stop, restart: POST /v1/instances/NAME/ACTION. */
static int
instance_action(int argc, char **argv, const char *action, const char *help)
{
	struct instance_args a;
	char path[128];
	int ret;

	ret = instance_parse(argc, argv, OPT_JSON, true, help, &a);
	if (ret != -1)
		return ret;
	snprintf(path, sizeof(path), "/v1/instances/%s/%s", a.name, action);
	return instance_show("POST", path, NULL, &a, true);
}

int
vtpmctl_start(int argc, char **argv)
{
	return instance_action(argc, argv, "start", start_help);
}

int
vtpmctl_stop(int argc, char **argv)
{
	return instance_action(argc, argv, "stop", stop_help);
}

int
vtpmctl_renew(int argc, char **argv)
{
	return instance_action(argc, argv, "renew", renew_help);
}

int
vtpmctl_restart(int argc, char **argv)
{
	return instance_action(argc, argv, "restart", restart_help);
}

int
vtpmctl_delete(int argc, char **argv)
{
	struct instance_args a;
	json_t *reply = NULL;
	char path[128];
	int ret;

	ret = instance_parse(argc, argv, OPT_JSON | OPT_FORCE, true, delete_help, &a);
	if (ret != -1)
		return ret;
	snprintf(path, sizeof(path), "/v1/instances/%s%s", a.name, a.force ? "?force=1" : "");
	ret = vtpmctl_call("DELETE", path, NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	if (a.json)
		vtpmctl_print_json(reply);
	else
		printf("deleted %s\n", vtpmctl_str(reply, "deleted", a.name));
	json_decref(reply);
	return EXIT_OK;
}

int
vtpmctl_info(int argc, char **argv)
{
	struct instance_args a;
	char path[128];
	int ret;

	ret = instance_parse(argc, argv, OPT_JSON, true, info_help, &a);
	if (ret != -1)
		return ret;
	snprintf(path, sizeof(path), "/v1/instances/%s", a.name);
	return instance_show("GET", path, NULL, &a, false);
}

/* The columns of `vtpmctl list`. */
enum { COL_NAME, COL_TPM, COL_STATE, COL_DESIRED, COL_PID, COL_RESTARTS, COL_SOCKET, NCOLS };

static void
list_row(const json_t *o, char cells[NCOLS][128])
{
	snprintf(cells[COL_NAME], 128, "%s", vtpmctl_str(o, "name", "?"));
	snprintf(cells[COL_TPM], 128, "%s", vtpmctl_str(o, "tpm", "?"));
	snprintf(cells[COL_STATE], 128, "%s", vtpmctl_str(o, "state", "?"));
	snprintf(cells[COL_DESIRED], 128, "%s", vtpmctl_str(o, "desired", "-"));
	instance_int(o, "pid", cells[COL_PID], 128);
	if (!json_is_integer(json_object_get(o, "pid")))
		snprintf(cells[COL_PID], 128, "-");
	instance_int(o, "restarts", cells[COL_RESTARTS], 128);
	if (!json_is_integer(json_object_get(o, "restarts")))
		snprintf(cells[COL_RESTARTS], 128, "-");
	snprintf(cells[COL_SOCKET], 128, "%s", vtpmctl_str(o, "socket", "-"));
}

static void
list_print(const json_t *arr)
{
	static const char *const head[NCOLS] = {
	    "NAME", "TPM", "STATE", "DESIRED", "PID", "RESTARTS", "SOCKET"};
	char(*cells)[NCOLS][128];
	size_t n = json_array_size(arr), width[NCOLS];

	cells = calloc(n + 1, sizeof(*cells));
	if (cells == NULL) {
		vtpmctl_fail("out of memory");
		return;
	}
	for (int c = 0; c < NCOLS; c++) {
		snprintf(cells[0][c], 128, "%s", head[c]);
		width[c] = strlen(head[c]);
	}
	for (size_t i = 0; i < n; i++) {
		list_row(json_array_get(arr, i), cells[i + 1]);
		for (int c = 0; c < NCOLS; c++)
			if (strlen(cells[i + 1][c]) > width[c])
				width[c] = strlen(cells[i + 1][c]);
	}
	for (size_t i = 0; i <= n; i++) {
		for (int c = 0; c < NCOLS - 1; c++)
			printf("%-*s  ", (int)width[c], cells[i][c]);
		printf("%s\n", cells[i][NCOLS - 1]);
	}
	free(cells);
}

int
vtpmctl_list(int argc, char **argv)
{
	struct instance_args a;
	json_t *reply = NULL, *arr;
	int ret;

	ret = instance_parse(argc, argv, OPT_JSON, false, list_help, &a);
	if (ret != -1)
		return ret;
	ret = vtpmctl_call("GET", "/v1/instances", NULL, &reply);
	if (ret != EXIT_OK)
		return ret;
	arr = json_object_get(reply, "instances");
	if (a.json) {
		vtpmctl_print_json(reply);
	} else if (!json_is_array(arr)) {
		ret = vtpmctl_fail("vtpmd's answer lacks the \"instances\" list");
	} else if (json_array_size(arr) == 0) {
		printf("no instances; create one with 'vtpmctl create NAME'\n");
	} else {
		list_print(arr);
	}
	json_decref(reply);
	return ret;
}
