/*
 * test_store.c: the state directory (src/instance/store.c), each test in a fresh
 * mkdtemp directory: round trips, the lock, crash leftovers, refusal of
 * damaged files, permissions, and (through link-time fakes of fdatasync,
 * fsync and renameat, see WRAP_test_store in the Makefile) that a failed
 * write leaves the previous blob intact and no temporary file behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "instance/instance.h"

/* The link-time fakes: pass through unless a test sets an errno to fail
 * with; every call is counted. */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

static int fail_fdatasync, fail_fsync, fail_renameat;
static int calls_fdatasync, calls_fsync, calls_renameat;

int
__wrap_fdatasync(int fd)
{
	calls_fdatasync++;
	if (fail_fdatasync != 0) {
		errno = fail_fdatasync;
		return -1;
	}
	return __real_fdatasync(fd);
}

int
__wrap_fsync(int fd)
{
	calls_fsync++;
	if (fail_fsync != 0) {
		errno = fail_fsync;
		return -1;
	}
	return __real_fsync(fd);
}

int
__wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	calls_renameat++;
	if (fail_renameat != 0) {
		errno = fail_renameat;
		return -1;
	}
	return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

static const uint8_t key[STATE_KEY_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28};

struct fixture {
	char root[64]; /* the mkdtemp directory */
	char dir[96];  /* the state directory below it, not yet created */
	char path[160];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-store.XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/state", f->root);
	fail_fdatasync = fail_fsync = fail_renameat = 0;
	calls_fdatasync = calls_fsync = calls_renameat = 0;
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

/* The path of name inside the state directory (one buffer per fixture). */
static const char *
file(struct fixture *f, const char *name)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
	return f->path;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *buf;
	FILE *fp;

	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fstat(fileno(fp), &sb), 0);
	*len = (size_t)sb.st_size;
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, fp), *len);
	fclose(fp);
	return buf;
}

static void
spew(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The generation field of a state file on disk (statefile.c layout). */
static uint64_t
disk_generation(struct fixture *f, enum state_kind kind)
{
	uint64_t gen = 0;
	uint8_t *buf;
	size_t len;

	buf = slurp(file(f, store_filename(kind)), &len);
	assert_true(len >= 40);
	for (int i = 16; i < 24; i++)
		gen = gen << 8 | buf[i];
	free(buf);
	return gen;
}

/* Number of names ending in ".tmp" in the state directory. */
static int
count_tmp(struct fixture *f)
{
	struct dirent *de;
	size_t n;
	int count = 0;
	DIR *d;

	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n >= 4 && strcmp(de->d_name + n - 4, ".tmp") == 0)
			count++;
	}
	closedir(d);
	return count;
}

static struct store *
open_ok(struct fixture *f, const uint8_t *k, unsigned int tpm_version)
{
	struct err err = {0};
	struct store *st;

	st = store_open(f->dir, k, tpm_version, &err);
	if (st == NULL)
		fail_msg("store_open: %s", err.msg);
	return st;
}

/* Asserts that kind holds exactly want. */
static void
expect_blob(struct store *st, enum state_kind kind, const void *want, size_t want_len)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	struct err e = {0};

	if (store_get(st, kind, &blob, &len, &e) != 0)
		fail_msg("store_get(%s): %s: %s", store_filename(kind), err_kind_name(e.kind), e.msg);
	assert_int_equal(len, want_len);
	if (want_len > 0)
		assert_memory_equal(blob, want, want_len);
	free(blob);
}

/* Asserts that kind is refused as corrupt, with a message naming the file. */
static void
expect_corrupt(struct fixture *f, struct store *st, enum state_kind kind, const char *reason)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	char name[200];
	struct err e = {0};

	if (store_get(st, kind, &blob, &len, &e) != -1 || e.kind != ERR_CORRUPT)
		fail_msg("store_get(%s): %s, want ERR_CORRUPT (%s)", store_filename(kind),
		    err_kind_name(e.kind), e.msg);
	assert_null(blob);
	snprintf(name, sizeof(name), "%s/%s", f->dir, store_filename(kind));
	if (strstr(e.msg, name) == NULL)
		fail_msg("message does not name %s: \"%s\"", name, e.msg);
	if (reason != NULL && strstr(e.msg, reason) == NULL)
		fail_msg("message does not say \"%s\": \"%s\"", reason, e.msg);
}

static void
expect_absent(struct store *st, enum state_kind kind)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	struct err err = {0};

	assert_int_equal(store_get(st, kind, &blob, &len, &err), -1);
	assert_int_equal(err.kind, ERR_ABSENT);
	assert_null(blob);
}

static void
test_roundtrip_encrypted(void **state)
{
	struct fixture *f = *state;
	const char perm[] = "permanent state bytes", vol[] = "volatile", save[] = "saved";
	struct store *st;
	uint8_t *raw;
	size_t len;

	st = open_ok(f, key, 2);
	assert_true(store_encrypted(st));
	assert_string_equal(store_dir(st), f->dir);
	assert_int_equal(store_put(st, STATE_PERMANENT, (const uint8_t *)perm, sizeof(perm)), 0);
	assert_int_equal(store_put(st, STATE_VOLATILE, (const uint8_t *)vol, sizeof(vol)), 0);
	assert_int_equal(store_put(st, STATE_SAVESTATE, (const uint8_t *)save, sizeof(save)), 0);
	expect_blob(st, STATE_PERMANENT, perm, sizeof(perm));
	expect_blob(st, STATE_VOLATILE, vol, sizeof(vol));
	expect_blob(st, STATE_SAVESTATE, save, sizeof(save));
	/* The secret is not on disk in the clear. */
	raw = slurp(file(f, "permanent.state"), &len);
	assert_null(memmem(raw, len, perm, sizeof(perm) - 1));
	free(raw);
	store_close(st);

	/* And it is all there for the next instance. */
	st = open_ok(f, key, 2);
	expect_blob(st, STATE_PERMANENT, perm, sizeof(perm));
	expect_blob(st, STATE_VOLATILE, vol, sizeof(vol));
	expect_blob(st, STATE_SAVESTATE, save, sizeof(save));
	store_close(st);
}

static void
test_roundtrip_plaintext(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {0, 1, 2, 3, 0xff};
	struct store *st;

	st = open_ok(f, NULL, 1);
	assert_false(store_encrypted(st));
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	/* An empty blob is a blob, not an absent one. */
	assert_int_equal(store_put(st, STATE_VOLATILE, blob, 0), 0);
	expect_blob(st, STATE_VOLATILE, NULL, 0);
	store_close(st);
	st = open_ok(f, NULL, 1);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	expect_blob(st, STATE_VOLATILE, NULL, 0);
	store_close(st);
}

static void
test_max_blob(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = malloc(STATEFILE_MAX_PAYLOAD + 1);
	struct store *st;

	assert_non_null(big);
	for (size_t i = 0; i <= STATEFILE_MAX_PAYLOAD; i++)
		big[i] = (uint8_t)(i >> 3);
	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, big, STATEFILE_MAX_PAYLOAD), 0);
	expect_blob(st, STATE_PERMANENT, big, STATEFILE_MAX_PAYLOAD);
	errno = 0;
	assert_int_equal(store_put(st, STATE_PERMANENT, big, STATEFILE_MAX_PAYLOAD + 1), -1);
	assert_int_equal(errno, EFBIG);
	expect_blob(st, STATE_PERMANENT, big, STATEFILE_MAX_PAYLOAD);
	assert_int_equal(count_tmp(f), 0);
	store_close(st);
	free(big);
}

static void
test_absent(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {42};
	struct store *st;

	st = open_ok(f, key, 2);
	expect_absent(st, STATE_PERMANENT);
	expect_absent(st, STATE_VOLATILE);
	expect_absent(st, STATE_SAVESTATE);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	expect_absent(st, STATE_VOLATILE);
	expect_absent(st, STATE_SAVESTATE);
	store_close(st);
}

static void
test_generation_increments(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {1, 2, 3};
	struct store *st;

	st = open_ok(f, key, 2);
	for (uint64_t g = 1; g <= 3; g++) {
		assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
		assert_true(disk_generation(f, STATE_PERMANENT) == g);
	}
	/* Volatile state is stamped with the permanent generation it goes with. */
	assert_int_equal(store_put(st, STATE_VOLATILE, blob, sizeof(blob)), 0);
	assert_true(disk_generation(f, STATE_VOLATILE) == 3);
	assert_true(store_generation(st, STATE_VOLATILE) == 3);
	store_close(st);

	/* A later instance continues from what it read. */
	st = open_ok(f, key, 2);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_true(disk_generation(f, STATE_PERMANENT) == 4);
	store_close(st);
}

/*
 * The snapshot mark (instance_snapshot.c): store_restamp writes the
 * permanent state again, unchanged, as the next generation, marked (a
 * write of vtpmd's own: the client generation stays) or as a client's
 * write, unmarked; other writes of vtpmd's keep the mark, a client's
 * clears it; a later store reads it from the file.
 */
static void
test_snapshot_mark(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {7, 8, 9};
	struct store *st;
	struct err err;

	st = open_ok(f, key, 2);
	assert_int_equal(store_restamp(st, true, false, &err), -1);
	assert_int_equal(err.kind, ERR_ABSENT);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_false(store_snapshot_out(st));
	assert_int_equal(store_restamp(st, true, false, &err), 0);
	assert_true(store_snapshot_out(st));
	assert_true(store_generation(st, STATE_PERMANENT) == 2);
	assert_true(store_client_generation(st, STATE_PERMANENT) == 1);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	assert_int_equal(store_put_as(st, STATE_PERMANENT, blob, sizeof(blob), false), 0);
	assert_true(store_snapshot_out(st));
	store_close(st);

	st = open_ok(f, key, 2);
	assert_true(store_snapshot_out(st));
	assert_true(store_client_generation(st, STATE_PERMANENT) == 1);
	assert_int_equal(store_restamp(st, false, true, &err), 0);
	assert_false(store_snapshot_out(st));
	assert_true(store_client_generation(st, STATE_PERMANENT) == 4);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	assert_int_equal(store_restamp(st, true, false, &err), 0);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_false(store_snapshot_out(st));
	store_close(st);
	st = open_ok(f, key, 2);
	assert_false(store_snapshot_out(st));
	store_close(st);
}

/* A store whose first operation is a write continues the numbering too. */
static void
test_generation_continues_on_write(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {4, 5};
	struct store *st;

	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	store_close(st);
	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_true(disk_generation(f, STATE_PERMANENT) == 3);
	store_close(st);
}

/* An authorised revert stores older state forward (store_continue_from):
 * the next write is numbered after the given generation, whatever the
 * file on disk holds, and a later store continues from there. */
static void
test_generation_continue_from(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {6, 7};
	struct store *st;

	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	store_continue_from(st, STATE_PERMANENT, 9);
	assert_true(store_generation(st, STATE_PERMANENT) == 9);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_true(disk_generation(f, STATE_PERMANENT) == 10);
	store_close(st);
	st = open_ok(f, key, 2);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_true(disk_generation(f, STATE_PERMANENT) == 11);
	store_close(st);
}

/* A FIFO where a state file belongs neither blocks the open nor passes for
 * state; a write replaces it. */
static void
test_fifo_refused(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {6};
	struct store *st;
	uint8_t *got = NULL;
	size_t len = 0;
	struct err err;

	st = open_ok(f, key, 2);
	assert_int_equal(mkfifo(file(f, "permanent.state"), 0600), 0);
	assert_int_equal(store_get(st, STATE_PERMANENT, &got, &len, &err), -1);
	assert_null(got);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	store_close(st);
}

/* flock locks belong to the open file description, so a second store_open
 * in this same process is refused just as another process would be. */
static void
test_busy(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};
	struct store *a, *b;

	a = open_ok(f, key, 2);
	b = store_open(f->dir, key, 2, &err);
	assert_null(b);
	assert_int_equal(err.kind, ERR_BUSY);
	b = store_open(f->dir, NULL, 1, &err);
	assert_null(b);
	assert_int_equal(err.kind, ERR_BUSY);
	store_close(a);
	b = open_ok(f, key, 2);
	store_close(b);
}

static void
test_open_error(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};
	char path[128];

	snprintf(path, sizeof(path), "%s/no/such/parent", f->root);
	assert_null(store_open(path, key, 2, &err));
	assert_int_equal(err.kind, ERR_IO);
	/* A file where the directory should be. */
	snprintf(path, sizeof(path), "%s/plain", f->root);
	spew(path, "x", 1);
	err_clear(&err);
	assert_null(store_open(path, key, 2, &err));
	assert_int_equal(err.kind, ERR_IO);
	store_close(NULL);
}

/* Temporary files an interrupted store_put left are removed at open; the
 * blobs themselves are not touched. */
static void
test_leftover_tmp_removed(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {7, 7, 7};
	struct store *st;
	struct stat sb;

	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	store_close(st);
	spew(file(f, "permanent.state.tmp"), "half a write", 12);
	spew(file(f, "volatile.state.tmp"), "", 0);
	spew(file(f, "savestate.state.tmp"), "junk", 4);
	assert_int_equal(count_tmp(f), 3);

	st = open_ok(f, key, 2);
	assert_int_equal(count_tmp(f), 0);
	assert_int_equal(stat(file(f, "permanent.state"), &sb), 0);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	expect_absent(st, STATE_VOLATILE);
	store_close(st);
}

static void
test_corrupt_flipped(void **state)
{
	struct fixture *f = *state;
	uint8_t blob[64], *raw, *after;
	size_t len, after_len;
	struct store *st;

	memset(blob, 0x33, sizeof(blob));
	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	raw = slurp(file(f, "permanent.state"), &len);
	raw[len / 2] ^= 0x10;
	spew(file(f, "permanent.state"), raw, len);
	expect_corrupt(f, st, STATE_PERMANENT, statefile_strerror(STATEFILE_AUTH_FAILED));
	/* The evidence is left as it was. */
	after = slurp(file(f, "permanent.state"), &after_len);
	assert_int_equal(after_len, len);
	assert_memory_equal(after, raw, len);
	free(after);
	free(raw);
	store_close(st);
}

static void
test_corrupt_truncated(void **state)
{
	struct fixture *f = *state;
	const size_t cuts[] = {0, 1, 7, 30, 40, 41, 100};
	uint8_t blob[80];
	struct store *st;

	memset(blob, 0x44, sizeof(blob));
	st = open_ok(f, key, 2);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		assert_int_equal(store_put(st, STATE_VOLATILE, blob, sizeof(blob)), 0);
		assert_int_equal(truncate(file(f, "volatile.state"), (off_t)cuts[i]), 0);
		expect_corrupt(f, st, STATE_VOLATILE, statefile_strerror(STATEFILE_TRUNCATED));
	}
	store_close(st);
}

/* A file larger than any state file is refused without being read. */
static void
test_corrupt_oversized(void **state)
{
	struct fixture *f = *state;
	const off_t sizes[] = {
	    (off_t)statefile_encoded_size(STATEFILE_MAX_PAYLOAD, false) + 1,
	    (off_t)1 << 32,
	};
	struct store *st;

	st = open_ok(f, NULL, 2);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		spew(file(f, "permanent.state"), "VTPMDST", 8);
		assert_int_equal(truncate(file(f, "permanent.state"), sizes[i]), 0);
		expect_corrupt(f, st, STATE_PERMANENT, NULL);
	}
	store_close(st);
}

/* Files written under one key, or none, are refused under another. */
static void
test_corrupt_wrong_key(void **state)
{
	struct fixture *f = *state;
	uint8_t other[STATE_KEY_LEN];
	const uint8_t blob[] = {5, 4, 3, 2, 1};
	struct store *st;

	memcpy(other, key, sizeof(other));
	other[31] ^= 0x80;
	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	store_close(st);

	st = open_ok(f, other, 2);
	expect_corrupt(f, st, STATE_PERMANENT, statefile_strerror(STATEFILE_AUTH_FAILED));
	store_close(st);
	st = open_ok(f, NULL, 2);
	expect_corrupt(f, st, STATE_PERMANENT, statefile_strerror(STATEFILE_NEEDS_KEY));
	/* A plaintext file where a key is in use is a downgrade. */
	assert_int_equal(store_put(st, STATE_VOLATILE, blob, sizeof(blob)), 0);
	store_close(st);
	st = open_ok(f, key, 2);
	expect_corrupt(f, st, STATE_VOLATILE, statefile_strerror(STATEFILE_UNPROTECTED));
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	store_close(st);
}

static void
test_corrupt_wrong_tpm_version(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {1};
	struct store *st;

	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	store_close(st);
	st = open_ok(f, key, 1);
	expect_corrupt(f, st, STATE_PERMANENT, statefile_strerror(STATEFILE_WRONG_TPM));
	store_close(st);
}

/* A blob stored under another kind's name is refused. */
static void
test_corrupt_wrong_kind(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {1, 2};
	struct store *st;
	char vol[160];

	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_VOLATILE, blob, sizeof(blob)), 0);
	snprintf(vol, sizeof(vol), "%s", file(f, "volatile.state"));
	assert_int_equal(rename(vol, file(f, "permanent.state")), 0);
	expect_corrupt(f, st, STATE_PERMANENT, statefile_strerror(STATEFILE_WRONG_KIND));
	store_close(st);
}

static void
test_permissions(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {9};
	struct store *st;
	struct stat sb;
	mode_t old;

	/* Asked for explicitly, not left to the umask. */
	old = umask(0);
	st = open_ok(f, key, 2);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_int_equal(store_put(st, STATE_SAVESTATE, blob, sizeof(blob)), 0);
	umask(old);
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_int_equal(stat(file(f, "permanent.state"), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(file(f, "savestate.state"), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(file(f, ".lock"), &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);
	store_close(st);
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {1, 2, 3};
	struct store *st;
	struct stat sb;

	st = open_ok(f, key, 2);
	assert_int_equal(store_delete(st, STATE_VOLATILE), 0);
	assert_int_equal(store_put(st, STATE_VOLATILE, blob, sizeof(blob)), 0);
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_int_equal(store_delete(st, STATE_VOLATILE), 0);
	assert_int_equal(stat(file(f, "volatile.state"), &sb), -1);
	assert_int_equal(errno, ENOENT);
	expect_absent(st, STATE_VOLATILE);
	assert_int_equal(store_delete(st, STATE_VOLATILE), 0);
	expect_blob(st, STATE_PERMANENT, blob, sizeof(blob));
	store_close(st);
}

/* store_put syncs the new file before renaming it, and the directory
 * after; store_delete syncs the directory. */
static void
test_put_syncs(void **state)
{
	struct fixture *f = *state;
	const uint8_t blob[] = {1};
	struct store *st;

	st = open_ok(f, key, 2);
	calls_fdatasync = calls_fsync = calls_renameat = 0;
	assert_int_equal(store_put(st, STATE_PERMANENT, blob, sizeof(blob)), 0);
	assert_true(calls_fdatasync + calls_fsync >= 2);
	assert_true(calls_fdatasync >= 1);
	assert_true(calls_renameat == 1);
	calls_fsync = 0;
	assert_int_equal(store_delete(st, STATE_PERMANENT), 0);
	assert_true(calls_fsync >= 1);
	store_close(st);
}

/* A put failing with fake_errno set in *fail leaves old intact (or the
 * blob absent when old is NULL), no temporary file, and the store usable. */
static void
check_failed_put(struct fixture *f, int *fail, int *calls, const char *old)
{
	const char next[] = "the next state", later[] = "a later state";
	struct store *st;
	uint64_t gen = 0;

	st = open_ok(f, key, 2);
	if (old != NULL) {
		assert_int_equal(
		    store_put(st, STATE_PERMANENT, (const uint8_t *)old, strlen(old)), 0);
		gen = disk_generation(f, STATE_PERMANENT);
	}
	*calls = 0;
	*fail = EIO;
	errno = 0;
	assert_int_equal(store_put(st, STATE_PERMANENT, (const uint8_t *)next, sizeof(next)), -1);
	assert_int_equal(errno, EIO);
	*fail = 0;
	assert_true(*calls >= 1); /* the fake was reached */
	assert_int_equal(count_tmp(f), 0);
	if (old != NULL)
		expect_blob(st, STATE_PERMANENT, old, strlen(old));
	else
		expect_absent(st, STATE_PERMANENT);
	store_close(st);

	/* Another instance sees the same; its writes succeed again. */
	st = open_ok(f, key, 2);
	if (old != NULL)
		expect_blob(st, STATE_PERMANENT, old, strlen(old));
	else
		expect_absent(st, STATE_PERMANENT);
	assert_int_equal(store_put(st, STATE_PERMANENT, (const uint8_t *)later, sizeof(later)), 0);
	expect_blob(st, STATE_PERMANENT, later, sizeof(later));
	assert_true(disk_generation(f, STATE_PERMANENT) > gen);
	assert_int_equal(count_tmp(f), 0);
	store_close(st);
}

static void
test_fdatasync_failure(void **state)
{
	check_failed_put(*state, &fail_fdatasync, &calls_fdatasync, "the previous state");
}

static void
test_fdatasync_failure_first_write(void **state)
{
	check_failed_put(*state, &fail_fdatasync, &calls_fdatasync, NULL);
}

static void
test_rename_failure(void **state)
{
	check_failed_put(*state, &fail_renameat, &calls_renameat, "the previous state");
}

static void
test_rename_failure_first_write(void **state)
{
	check_failed_put(*state, &fail_renameat, &calls_renameat, NULL);
}

static void
test_filename(void **state)
{
	assert_string_equal(store_filename(STATE_PERMANENT), "permanent.state");
	assert_string_equal(store_filename(STATE_VOLATILE), "volatile.state");
	assert_string_equal(store_filename(STATE_SAVESTATE), "savestate.state");
	assert_string_equal(store_filename((enum state_kind)0), "?");
	assert_string_equal(store_filename((enum state_kind)4), "?");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_roundtrip_encrypted),
	    T(test_roundtrip_plaintext),
	    T(test_max_blob),
	    T(test_absent),
	    T(test_generation_increments),
	    T(test_generation_continues_on_write),
	    T(test_generation_continue_from),
	    T(test_snapshot_mark),
	    T(test_fifo_refused),
	    T(test_busy),
	    T(test_open_error),
	    T(test_leftover_tmp_removed),
	    T(test_corrupt_flipped),
	    T(test_corrupt_truncated),
	    T(test_corrupt_oversized),
	    T(test_corrupt_wrong_key),
	    T(test_corrupt_wrong_tpm_version),
	    T(test_corrupt_wrong_kind),
	    T(test_permissions),
	    T(test_delete),
	    T(test_put_syncs),
	    T(test_fdatasync_failure),
	    T(test_fdatasync_failure_first_write),
	    T(test_rename_failure),
	    T(test_rename_failure_first_write),
	    cmocka_unit_test(test_filename),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	/* store.c logs what it cleans up; keep that to warnings. */
	log_init("test_store", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
