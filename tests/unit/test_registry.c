/*
 * test_registry.c: the manager's instance records (src/manager/registry.c),
 * each test in a fresh mkdtemp state directory:
 *
 * - names (what may become a path component and a socket name), state
 *   names, paths that do not fit;
 * - a new record (a random version-4 UUID, the creation time);
 * - records saved and loaded back field by field, crash-safe and 0600;
 * - malformed or inconsistent instance.json (not JSON, fields missing or
 *   of the wrong type, a name that is not its directory's, a short UUID, an
 *   unknown TPM version, a negative slot, too large) skipped and left as
 *   they were, the others loaded;
 * - what interrupted operations leave: a create in progress
 *   (REGISTRY_CREATING, loaded as such), and the .deleting- and .new-
 *   directories (removed);
 * - slots made unique (a copied instance directory): the first by name
 *   keeps its slot unless another's worker may still run (its pid file),
 *   the other moves to the lowest free slot, recorded on disk;
 * - copies (the same UUID or sealed object Name): the original is the one
 *   whose worker runs, else the older directory, else the first by name;
 *   recomputed, a copy whose original is gone stands alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

struct fixture {
	char root[64];
	struct config cfg;
	char path[512];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-registry.XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	config_defaults(&f->cfg);
	snprintf(f->cfg.state_dir, sizeof(f->cfg.state_dir), "%s/state", f->root);
	snprintf(f->cfg.run_dir, sizeof(f->cfg.run_dir), "%s/run", f->root);
	if (mkdir(f->cfg.state_dir, 0700) == -1 || mkdir(f->cfg.run_dir, 0700) == -1)
		return -1;
	*state = f;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int ret;

	ret = nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

/* STATE/instances/name[/leaf], in the fixture's buffer. */
static const char *
ipath(struct fixture *f, const char *name, const char *leaf)
{
	if (leaf != NULL)
		snprintf(
		    f->path, sizeof(f->path), "%s/instances/%s/%s", f->cfg.state_dir, name, leaf);
	else
		snprintf(f->path, sizeof(f->path), "%s/instances/%s", f->cfg.state_dir, name);
	return f->path;
}

static void
make_dir(struct fixture *f, const char *name)
{
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/instances", f->cfg.state_dir);
	if (mkdir(dir, 0700) == -1)
		assert_int_equal(errno, EEXIST);
	assert_int_equal(mkdir(ipath(f, name, NULL), 0700), 0);
}

static void
spew(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char *
slurp(const char *path)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(fileio_read(path, 1 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	assert_non_null(buf);
	buf[len] = '\0';
	return (char *)buf;
}

/* Writes name's instance.json with the given text. */
static void
record(struct fixture *f, const char *name, const char *json)
{
	make_dir(f, name);
	spew(ipath(f, name, "instance.json"), json);
}

/* A well-formed record's JSON. */
static void
good_record(struct fixture *f, const char *name, int slot)
{
	char json[512];

	snprintf(json, sizeof(json),
	    "{\"name\": \"%s\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	    "\"tpm\": \"2.0\", \"desired\": \"running\", \"created\": "
	    "\"2024-01-02T03:04:05Z\", \"slot\": %d}",
	    name, slot);
	record(f, name, json);
}

static void
free_list(struct vtpm **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static struct vtpm *
find(struct vtpm **list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i]->name, name) == 0)
			return list[i];
	return NULL;
}

static void
test_valid_name(void **state)
{
	static const char *const good[] = {"a", "vm1", "VM-1", "a.b_c-d", "0", "x."};
	static const char *const bad[] = {"", ".", "..", ".hidden", "-x", "a/b", "/", "a b", "a\n",
	    "tab\t", "caf\xc3\xa9", "a:b", "a*", "a\\b"};
	char longest[VTPM_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!registry_valid_name(good[i]))
			fail_msg("\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (registry_valid_name(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	memset(longest, 'n', VTPM_NAME_MAX);
	longest[VTPM_NAME_MAX] = '\0';
	assert_true(registry_valid_name(longest));
	longest[VTPM_NAME_MAX] = 'n';
	longest[VTPM_NAME_MAX + 1] = '\0';
	assert_false(registry_valid_name(longest));
}

static void
test_state_name(void **state)
{
	assert_string_equal(registry_state_name(VTPM_STOPPED), "stopped");
	assert_string_equal(registry_state_name(VTPM_STARTING), "starting");
	assert_string_equal(registry_state_name(VTPM_RUNNING), "running");
	assert_string_equal(registry_state_name(VTPM_FAILED), "failed");
	assert_string_equal(registry_state_name(VTPM_REFUSED), "refused");
	assert_string_equal(registry_state_name((enum vtpm_state)99), "unknown");
}

static void
test_path(void **state)
{
	struct fixture *f = *state;
	char buf[512], want[512];
	size_t n;

	assert_int_equal(registry_path(&f->cfg, "vm", "sealed.key", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/instances/vm/sealed.key", f->cfg.state_dir);
	assert_string_equal(buf, want);
	assert_int_equal(registry_path(&f->cfg, "vm", NULL, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/instances/vm", f->cfg.state_dir);
	assert_string_equal(buf, want);
	/* Exactly fitting, and one byte short. */
	n = strlen(want);
	assert_int_equal(registry_path(&f->cfg, "vm", NULL, buf, n + 1), 0);
	assert_int_equal(registry_path(&f->cfg, "vm", NULL, buf, n), -1);
}

static void
test_new(void **state)
{
	struct vtpm *a, *b;
	int y, mo, d, h, mi, s;
	char z;

	a = registry_new("vm-a", 2, 7);
	b = registry_new("vm-b", 1, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a->name, "vm-a");
	assert_int_equal(a->tpm_version, 2);
	assert_int_equal(b->tpm_version, 1);
	assert_int_equal(a->slot, 7);
	assert_int_equal(a->pidfd, -1);
	assert_false(a->desired_running);
	assert_int_equal(a->state, VTPM_STOPPED);
	/* A version-4, variant-1 UUID in its text form; each one new. */
	assert_int_equal(strlen(a->uuid), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a->uuid[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", a->uuid[i]));
	}
	assert_int_equal(a->uuid[14], '4');
	assert_non_null(strchr("89ab", a->uuid[19]));
	assert_string_not_equal(a->uuid, b->uuid);
	/* The creation time, UTC. */
	assert_int_equal(
	    sscanf(a->created, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z), 7);
	assert_int_equal(z, 'Z');
	assert_int_equal(strlen(a->created), 20);
	assert_true(y >= 2024 && mo >= 1 && mo <= 12);
	free(a);
	free(b);
}

static void
test_save_load_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct vtpm *a, *b, **list = NULL, *got;
	struct stat sb;
	size_t n = 0;
	char *text;

	a = registry_new("alpha", 2, 3);
	b = registry_new("beta", 1, 0);
	assert_non_null(a);
	assert_non_null(b);
	a->desired_running = true;
	make_dir(f, "alpha");
	make_dir(f, "beta");
	assert_int_equal(registry_save(&f->cfg, a), 0);
	assert_int_equal(registry_save(&f->cfg, b), 0);
	assert_int_equal(stat(ipath(f, "alpha", "instance.json"), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	text = slurp(ipath(f, "alpha", "instance.json"));
	assert_non_null(strstr(text, "\"tpm\": \"2.0\""));
	assert_non_null(strstr(text, "\"desired\": \"running\""));
	free(text);

	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 2);
	got = find(list, n, "alpha");
	assert_non_null(got);
	assert_string_equal(got->uuid, a->uuid);
	assert_string_equal(got->created, a->created);
	assert_int_equal(got->tpm_version, 2);
	assert_int_equal(got->slot, 3);
	assert_true(got->desired_running);
	assert_false(got->creating);
	assert_int_equal(got->pidfd, -1);
	got = find(list, n, "beta");
	assert_non_null(got);
	assert_string_equal(got->uuid, b->uuid);
	assert_int_equal(got->tpm_version, 1);
	assert_int_equal(got->slot, 0);
	assert_false(got->desired_running);
	free_list(list, n);

	/* A change replaces the record. */
	a->desired_running = false;
	assert_int_equal(registry_save(&f->cfg, a), 0);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_false(find(list, n, "alpha")->desired_running);
	free_list(list, n);
	free(a);
	free(b);
}

/* Saving into a directory that does not exist fails, and a name whose
 * path does not fit is refused. */
static void
test_save_failure(void **state)
{
	struct fixture *f = *state;
	struct vtpm *v = registry_new("nodir", 2, 0);

	assert_non_null(v);
	assert_int_equal(registry_save(&f->cfg, v), -1);
	memset(f->cfg.state_dir, 'd', sizeof(f->cfg.state_dir) - 1);
	f->cfg.state_dir[0] = '/';
	assert_int_equal(registry_save(&f->cfg, v), -1);
	free(v);
}

static void
test_load_nothing(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = (struct vtpm **)1;
	size_t n = 99;
	char dir[512];

	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_null(list);
	assert_int_equal(n, 0);
	snprintf(dir, sizeof(dir), "%s/instances", f->cfg.state_dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
}

/* Every bad record is skipped and left on disk as it was; good ones load. */
static void
test_malformed_skipped(void **state)
{
	static const struct {
		const char *name, *json;
	} bad[] = {
	    {"notjson", "{\"name\": \"notjson\", "},
	    {"empty", ""},
	    {"array", "[1, 2, 3]"},
	    {"noslot", "{\"name\": \"noslot\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	               "\"tpm\": \"2.0\", \"desired\": \"running\"}"},
	    {"slotstr",
	        "{\"name\": \"slotstr\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	        "\"tpm\": \"2.0\", \"desired\": \"running\", \"slot\": \"1\"}"},
	    {"renamed", "{\"name\": \"other\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	                "\"tpm\": \"2.0\", \"desired\": \"running\", \"slot\": 1}"},
	    {"shortuuid", "{\"name\": \"shortuuid\", \"uuid\": \"0b6c2f6e\", \"tpm\": \"2.0\", "
	                  "\"desired\": \"running\", \"slot\": 1}"},
	    {"tpm3", "{\"name\": \"tpm3\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	             "\"tpm\": \"3.0\", \"desired\": \"running\", \"slot\": 1}"},
	    {"negslot",
	        "{\"name\": \"negslot\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	        "\"tpm\": \"2.0\", \"desired\": \"running\", \"slot\": -1}"},
	};
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	size_t n = 0;
	char *text;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		record(f, bad[i].name, bad[i].json);
	make_dir(f, "missing"); /* no instance.json at all */
	good_record(f, "good", 4);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->name, "good");
	assert_int_equal(list[0]->slot, 4);
	assert_string_equal(list[0]->created, "2024-01-02T03:04:05Z");
	free_list(list, n);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = slurp(ipath(f, bad[i].name, "instance.json"));
		assert_string_equal(text, bad[i].json);
		free(text);
	}
}

/* A record padded to pad bytes in all (a valid one). */
static void
padded_record(struct fixture *f, const char *name, size_t pad)
{
	char *json = malloc(pad + 1);
	int n;

	assert_non_null(json);
	n = snprintf(json, pad + 1,
	    "{\"name\": \"%s\", \"uuid\": \"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", "
	    "\"tpm\": \"2.0\", \"desired\": \"running\", \"slot\": 1, \"pad\": \"",
	    name);
	assert_true(n > 0 && (size_t)n + 2 < pad);
	memset(json + n, 'x', pad - (size_t)n - 2);
	memcpy(json + pad - 2, "\"}", 3);
	assert_int_equal(strlen(json), pad);
	record(f, name, json);
	free(json);
}

/* A record up to 16 KiB is read; a larger one is not. */
static void
test_oversized_skipped(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	size_t n = 0;

	padded_record(f, "fits", 16 << 10);
	padded_record(f, "big", (16 << 10) + 1);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->name, "fits");
	free_list(list, n);
}

/* Entries that are not instance names are not instances. */
static void
test_other_entries_ignored(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	size_t n = 0;

	good_record(f, "vm", 0);
	make_dir(f, ".hidden");
	make_dir(f, "bad name");
	make_dir(f, "-dash");
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->name, "vm");
	free_list(list, n);
	/* They are left alone. */
	assert_int_equal(access(ipath(f, ".hidden", NULL), F_OK), 0);
	assert_int_equal(access(ipath(f, "bad name", NULL), F_OK), 0);
}

/* A create that never finished is loaded as one (for the manager to
 * remove), with or without its record. */
static void
test_creating_leftover(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL, *v;
	size_t n = 0;

	make_dir(f, "half");
	spew(ipath(f, "half", REGISTRY_CREATING), "");
	good_record(f, "almost", 2);
	spew(ipath(f, "almost", REGISTRY_CREATING), "");
	good_record(f, "done", 0);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 3);
	v = find(list, n, "half");
	assert_non_null(v);
	assert_true(v->creating);
	assert_int_equal(v->pidfd, -1);
	v = find(list, n, "almost");
	assert_non_null(v);
	assert_true(v->creating);
	v = find(list, n, "done");
	assert_non_null(v);
	assert_false(v->creating);
	/* A create in progress holds no slot ("half" has none, 0 in memory):
	 * "done" keeps 0. */
	assert_int_equal(v->slot, 0);
	free_list(list, n);
}

/* What an interrupted delete or create left is removed; instances are not. */
static void
test_deleting_and_new_removed(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	char name[64];
	size_t n = 0;

	snprintf(name, sizeof(name), "%svm1", REGISTRY_DELETING);
	good_record(f, name, 0);
	assert_int_equal(mkdir(ipath(f, name, "state"), 0700), 0);
	spew(ipath(f, name, "state/permanent.state"), "x");
	snprintf(name, sizeof(name), "%svm2", REGISTRY_NEW);
	good_record(f, name, 1);
	good_record(f, "vm3", 2);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->name, "vm3");
	free_list(list, n);
	snprintf(name, sizeof(name), "%svm1", REGISTRY_DELETING);
	assert_int_equal(access(ipath(f, name, NULL), F_OK), -1);
	snprintf(name, sizeof(name), "%svm2", REGISTRY_NEW);
	assert_int_equal(access(ipath(f, name, NULL), F_OK), -1);
	assert_int_equal(access(ipath(f, "vm3", "instance.json"), F_OK), 0);
}

/* The slot a record holds after a load, and the one on disk. */
static unsigned int
slot_of(struct vtpm **list, size_t n, const char *name)
{
	struct vtpm *v = find(list, n, name);

	assert_non_null(v);
	return v->slot;
}

static int
disk_slot(struct fixture *f, const char *name)
{
	char *text = slurp(ipath(f, name, "instance.json")), *p;
	int slot;

	p = strstr(text, "\"slot\": ");
	assert_non_null(p);
	slot = atoi(p + 8);
	free(text);
	return slot;
}

static void
test_duplicate_slots(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	size_t n = 0;

	/* b and c are copies of a (slot 0); d holds 1: they get 2 and 3. */
	good_record(f, "a", 0);
	good_record(f, "b", 0);
	good_record(f, "c", 0);
	good_record(f, "d", 1);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(slot_of(list, n, "a"), 0);
	assert_int_equal(slot_of(list, n, "d"), 1);
	assert_true((slot_of(list, n, "b") == 2 && slot_of(list, n, "c") == 3) ||
	            (slot_of(list, n, "b") == 3 && slot_of(list, n, "c") == 2));
	free_list(list, n);
	/* Recorded: the next load changes nothing. */
	assert_int_equal(disk_slot(f, "a"), 0);
	assert_int_equal(disk_slot(f, "b") + disk_slot(f, "c"), 5);
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(slot_of(list, n, "b"), (unsigned int)disk_slot(f, "b"));
	free_list(list, n);
}

/* Of two records sharing a slot, the one whose worker may still run (its
 * pid file is in the run directory) keeps it, whatever the names. */
static void
test_duplicate_slot_running_keeps(void **state)
{
	struct fixture *f = *state;
	struct vtpm **list = NULL;
	char pidfile[512];
	size_t n = 0;

	good_record(f, "aaa", 5);
	good_record(f, "zzz", 5);
	snprintf(pidfile, sizeof(pidfile), "%s/zzz.pid", f->cfg.run_dir);
	spew(pidfile, "12345 678\n");
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(slot_of(list, n, "zzz"), 5);
	assert_int_equal(slot_of(list, n, "aaa"), 0);
	free_list(list, n);
	assert_int_equal(disk_slot(f, "aaa"), 0);
	assert_int_equal(disk_slot(f, "zzz"), 5);
}

/* The sealed object's Name (lifecycle.c records it at create) is saved
 * and loaded back; a record without it loads with none (learnt at the
 * next unseal); one that is not 68 lowercase hex digits is skipped. */
static void
test_sealed_name(void **state)
{
	static const char base[] = "{\"name\": \"%s\", \"uuid\": "
	                           "\"0b6c2f6e-8f0e-4a53-9a57-3f2e1d0c9b8a\", \"tpm\": \"2.0\", "
	                           "\"desired\": \"running\", \"slot\": %d, \"sealed_name\": %s}";
	static const char *const bad[] = {"\"000b\"", "42",
	    "\"000B0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"",
	    "\"000b0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefx\""};
	struct fixture *f = *state;
	struct vtpm *v, **list = NULL;
	size_t n = 0;
	char json[512], name[16];

	v = registry_new("named", 2, 0);
	assert_non_null(v);
	memset(v->sealed_name, 'a', sizeof(v->sealed_name) - 1);
	memcpy(v->sealed_name, "000b", 4);
	make_dir(f, "named");
	assert_int_equal(registry_save(&f->cfg, v), 0);
	good_record(f, "older", 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(name, sizeof(name), "bad%zu", i);
		snprintf(json, sizeof(json), base, name, (int)i + 2, bad[i]);
		record(f, name, json);
	}
	assert_int_equal(registry_load(&f->cfg, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_non_null(find(list, n, "named"));
	assert_string_equal(find(list, n, "named")->sealed_name, v->sealed_name);
	assert_non_null(find(list, n, "older"));
	assert_string_equal(find(list, n, "older")->sealed_name, "");
	free_list(list, n);
	free(v);
}

/* A record for the copy tests: its UUID and sealed Name as given. */
static struct vtpm *
copy_rec(const char *name, const char *uuid, char sealed, int64_t born, pid_t pid)
{
	struct vtpm *v = registry_new(name, 2, 0);

	assert_non_null(v);
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	if (sealed != 0)
		memset(v->sealed_name, sealed, 2 * HWTPM_NAME_LEN);
	v->born_ns = born;
	v->pid = pid;
	return v;
}

static void
test_copies(void **state)
{
	const char *u1 = "11111111-1111-4111-8111-111111111111";
	const char *u2 = "22222222-2222-4222-8222-222222222222";
	const char *u3 = "33333333-3333-4333-8333-333333333333";
	struct vtpm *v[5];
	struct err err = {0};

	v[0] = copy_rec("vm-a", u1, 'a', 100, 0);
	v[1] = copy_rec("aaa", u1, 'a', 200, 0);  /* a younger copy, first by name */
	v[2] = copy_rec("vm-b", u2, 'b', 300, 0);
	v[3] = copy_rec("vm-b2", u3, 'b', 50, 4242); /* another UUID, the same sealed key; runs */
	v[4] = copy_rec("vm-c", u3, 0, 10, 0);	    /* vm-b2's UUID, no Name known */
	assert_int_equal(registry_mark_copies(v, 5), 3);
	assert_string_equal(v[0]->copy_of, "");
	assert_string_equal(v[1]->copy_of, "vm-a");
	assert_string_equal(v[2]->copy_of, "vm-b2"); /* its worker runs */
	assert_string_equal(v[3]->copy_of, "");
	assert_string_equal(v[4]->copy_of, "vm-b2");
	assert_int_equal(registry_copy_refusal(v[1], &err), -1);
	assert_int_equal(err.kind, ERR_EXISTS);
	assert_non_null(strstr(err.msg, "aaa is a copy of vm-a"));
	assert_non_null(strstr(err.msg, "vtpmctl renew aaa"));
	/* The original gone, its copy stands alone; the same birth: by name. */
	v[1]->born_ns = v[2]->born_ns = 7;
	assert_int_equal(registry_mark_copies(&v[1], 1), 0);
	assert_string_equal(v[1]->copy_of, "");
	v[3]->pid = 0;
	v[3]->born_ns = 7;
	assert_int_equal(registry_mark_copies(&v[2], 2), 1);
	assert_string_equal(v[2]->copy_of, "");
	assert_string_equal(v[3]->copy_of, "vm-b");
	for (int i = 0; i < 5; i++)
		free(v[i]);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_name),
	    cmocka_unit_test(test_state_name),
	    T(test_path),
	    cmocka_unit_test(test_new),
	    cmocka_unit_test(test_copies),
	    T(test_save_load_roundtrip),
	    T(test_save_failure),
	    T(test_load_nothing),
	    T(test_malformed_skipped),
	    T(test_oversized_skipped),
	    T(test_other_entries_ignored),
	    T(test_creating_leftover),
	    T(test_deleting_and_new_removed),
	    T(test_duplicate_slots),
	    T(test_duplicate_slot_running_keeps),
	    T(test_sealed_name),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	/* registry.c warns about every record it skips; those are expected. */
	log_init("test_registry", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
