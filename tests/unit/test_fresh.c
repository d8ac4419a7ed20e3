/*
 * test_fresh.c: the freshness anchor's manifest and commit (src/manager/
 * fresh.c, docs/state.md), with the host TPM's counter, the seal and the
 * approval faked at link time (WRAP_test_fresh in the Makefile):
 *
 *  - a commit writes its slot in place (same file, same size, no rename)
 *    and a restart reads it back;
 *  - a commit whose increment failed is finished at the next start, and
 *    its slot is never written again with other content: the next commit
 *    finishes it first;
 *  - a torn slot leaves the other one; a manifest restored from a backup,
 *    or a counter moved by another writer, refuses every instance;
 *  - without the sealed key, no setup while the counter is there, until
 *    the operator's --reanchor.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

/* --- the host TPM's counter, sealing and approval, faked ----------------- */

static struct {
	bool exists;
	uint64_t value;
	int fail;            /* the next increments that fail */
	uint64_t extra;      /* another writer's increments, at each of vtpmd's */
	unsigned increments; /* vtpmd's, done */
	unsigned undefines;
	int read_fail; /* the next reads that fail (the TPM reconnected: the index not open) */
} ctr;
static const struct policy_entry approved;

int __wrap_hwtpm_counter_open(struct hwtpm *hw, uint32_t handle, const uint8_t auth[32],
    bool define, uint64_t *value, struct err *err);
int __wrap_hwtpm_counter_increment(struct hwtpm *hw, struct err *err);
int __wrap_hwtpm_counter_read(struct hwtpm *hw, uint64_t *value, struct err *err);
int __wrap_hwtpm_counter_present(struct hwtpm *hw, uint32_t handle, bool *present, struct err *err);
int __wrap_hwtpm_counter_undefine(struct hwtpm *hw, uint32_t handle, struct err *err);
bool __wrap_hwtpm_recover(struct hwtpm *hw);
int __wrap_hwtpm_seal(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const uint8_t policy[TPM_DIGEST_LEN], uint8_t **blob, size_t *blob_len, struct err *err);
int __wrap_hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret, size_t secret_len,
    struct err *err);
void __wrap_hwtpm_flush_pending(struct hwtpm *hw);
const struct policy_entry *__wrap_policy_approved_now(
    struct manager *m, const char *what, struct err *err);
int __wrap_policy_auth_digest(const struct policy *p, uint8_t digest[TPM_DIGEST_LEN]);

/* A counter defined anew starts above any value it had, and is
 * incremented once to be readable (hwtpm_counter_open). */
int
__wrap_hwtpm_counter_open(struct hwtpm *hw, uint32_t handle, const uint8_t auth[32], bool define,
    uint64_t *value, struct err *err)
{
	if (!ctr.exists && !define)
		return err_set(err, ERR_ABSENT, "no NV index");
	if (!ctr.exists)
		ctr.value++;
	ctr.exists = true;
	*value = ctr.value;
	return 0;
}

int
__wrap_hwtpm_counter_increment(struct hwtpm *hw, struct err *err)
{
	if (ctr.fail > 0) {
		ctr.fail--;
		return err_set(err, ERR_HOST_TPM, "the host TPM is away");
	}
	ctr.value += 1 + ctr.extra;
	ctr.increments++;
	return 0;
}

int
__wrap_hwtpm_counter_read(struct hwtpm *hw, uint64_t *value, struct err *err)
{
	if (ctr.read_fail > 0) {
		ctr.read_fail--;
		return err_set(err, ERR_HOST_TPM, "the freshness counter is not open");
	}
	*value = ctr.value;
	return 0;
}

int
__wrap_hwtpm_counter_present(struct hwtpm *hw, uint32_t handle, bool *present, struct err *err)
{
	*present = ctr.exists;
	return 0;
}

int
__wrap_hwtpm_counter_undefine(struct hwtpm *hw, uint32_t handle, struct err *err)
{
	ctr.exists = false;
	ctr.undefines++;
	return 0;
}

/* The host TPM answers again after a reconnection. */
bool
__wrap_hwtpm_recover(struct hwtpm *hw)
{
	return true;
}

/* The "sealed" blob is the secret itself. */
int
__wrap_hwtpm_seal(struct hwtpm *hw, const uint8_t *secret, size_t secret_len,
    const uint8_t policy[TPM_DIGEST_LEN], uint8_t **blob, size_t *blob_len, struct err *err)
{
	*blob = malloc(secret_len);
	assert_non_null(*blob);
	memcpy(*blob, secret, secret_len);
	*blob_len = secret_len;
	return 0;
}

int
__wrap_hwtpm_unseal(struct hwtpm *hw, const uint8_t *blob, size_t blob_len,
    const struct pcr_selection *sel, const struct approval *ap, uint8_t *secret, size_t secret_len,
    struct err *err)
{
	assert_int_equal(blob_len, secret_len);
	memcpy(secret, blob, secret_len);
	return 0;
}

void
__wrap_hwtpm_flush_pending(struct hwtpm *hw)
{
}

const struct policy_entry *
__wrap_policy_approved_now(struct manager *m, const char *what, struct err *err)
{
	return &approved;
}

int
__wrap_policy_auth_digest(const struct policy *p, uint8_t digest[TPM_DIGEST_LEN])
{
	memset(digest, 0, TPM_DIGEST_LEN);
	return 0;
}

/* --- a manager with no instance; deletes make commits ------------------- */

struct fixture {
	char dir[64];
	char manifest[128];
	struct manager m;
	struct vtpm a, b;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char path[192];

	assert_non_null(fx);
	memset(&ctr, 0, sizeof(ctr));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_fresh.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	config_defaults(&fx->m.cfg);
	snprintf(fx->m.cfg.state_dir, sizeof(fx->m.cfg.state_dir), "%s", fx->dir);
	snprintf(path, sizeof(path), "%s/instances", fx->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(fx->manifest, sizeof(fx->manifest), "%s/%s", fx->dir, FRESH_MANIFEST);
	snprintf(fx->a.name, sizeof(fx->a.name), "vm-a");
	snprintf(fx->a.uuid, sizeof(fx->a.uuid), "11111111-1111-4111-8111-111111111111");
	snprintf(fx->b.name, sizeof(fx->b.name), "vm-b");
	snprintf(fx->b.uuid, sizeof(fx->b.uuid), "22222222-2222-4222-8222-222222222222");
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	fresh_free(&fx->m.fresh);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* vtpmd started again: the freshness state as a new process has it. */
static void
restart(struct fixture *fx, bool reanchor)
{
	fresh_free(&fx->m.fresh);
	memset(&fx->m.fresh, 0, sizeof(fx->m.fresh));
	fx->m.fresh.reanchor = reanchor;
}

/* Whether v's UUID is recorded as deleted (its start refused). */
static bool
tombstoned(struct fixture *fx, struct vtpm *v)
{
	struct err err = {0};

	return fresh_check(&fx->m, v, &err) == -1 && strstr(err.msg, "was deleted on") != NULL;
}

static void
corrupt_slot(struct fixture *fx, int slot)
{
	uint8_t hdr[12], junk[64];
	size_t slot_len;
	int fd = open(fx->manifest, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
	slot_len = (size_t)hdr[8] << 24 | (size_t)hdr[9] << 16 | (size_t)hdr[10] << 8 | hdr[11];
	memset(junk, 0xa5, sizeof(junk));
	assert_int_equal(
	    pwrite(fd, junk, sizeof(junk), (off_t)(4096 + slot * slot_len + 16)), sizeof(junk));
	close(fd);
}

/* A commit writes its slot in place; a restart finds what it recorded. */
static void
test_commit_in_place(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};
	struct stat before, after;

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	assert_int_equal(ctr.value, 1);
	assert_int_equal(stat(fx->manifest, &before), 0);
	fresh_forget(&fx->m, &fx->a);
	fresh_forget(&fx->m, &fx->b);
	assert_int_equal(ctr.value, 3);
	assert_int_equal(fx->m.fresh.counter, 3);
	assert_int_equal(stat(fx->manifest, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_size, after.st_size);
	restart(fx, false);
	assert_true(tombstoned(fx, &fx->a));
	assert_true(tombstoned(fx, &fx->b));
	assert_int_equal(fx->m.fresh.counter, 3);
}

/* A stop between the slot and its increment: the next start finishes. */
static void
test_interrupted_commit_finished(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	ctr.fail = 2; /* the increment, and its retry at once */
	fresh_forget(&fx->m, &fx->a);
	assert_int_equal(ctr.value, 1);
	assert_true(fx->m.fresh.pending);
	restart(fx, false);
	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	assert_int_equal(ctr.value, 2);
	assert_int_equal(fx->m.fresh.counter, 2);
	assert_true(tombstoned(fx, &fx->a));
}

/* A slot written for a value is not written again with other content: a
 * failed increment is finished before the next commit's slot. */
static void
test_failed_increment_finished_first(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	ctr.fail = 2;
	fresh_forget(&fx->m, &fx->a); /* the slot for 2 written, 2 not reached */
	assert_int_equal(ctr.value, 1);
	fresh_forget(&fx->m, &fx->b); /* 2 finished, then the slot for 3 */
	assert_int_equal(ctr.increments, 2);
	assert_int_equal(ctr.value, 3);
	assert_int_equal(fx->m.fresh.counter, 3);
	assert_false(fx->m.fresh.pending);
	restart(fx, false);
	assert_true(tombstoned(fx, &fx->a));
	assert_true(tombstoned(fx, &fx->b));
}

/* A torn write of the other slot leaves the record; the manifest's record
 * torn after its increment (altered) refuses every instance. */
static void
test_torn_slot(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	fresh_forget(&fx->m, &fx->a); /* value 2: slot 0; slot 1 holds value 1 */
	corrupt_slot(fx, 1);
	restart(fx, false);
	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	assert_true(tombstoned(fx, &fx->a));
	corrupt_slot(fx, 0);
	restart(fx, false);
	assert_int_equal(fresh_ensure(&fx->m, &err), -1);
	assert_int_equal(err.kind, ERR_CORRUPT);
}

/* The manifest put back from a backup: every instance refused. */
static void
test_restored_manifest_refused(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};
	char cmd[320];

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	snprintf(cmd, sizeof(cmd), "cp %s %s.old", fx->manifest, fx->manifest);
	assert_int_equal(system(cmd), 0);
	fresh_forget(&fx->m, &fx->a);
	fresh_forget(&fx->m, &fx->b);
	snprintf(cmd, sizeof(cmd), "mv %s.old %s", fx->manifest, fx->manifest);
	assert_int_equal(system(cmd), 0);
	restart(fx, false);
	assert_int_equal(fresh_ensure(&fx->m, &err), -1);
	assert_int_equal(err.kind, ERR_CORRUPT);
	assert_non_null(strstr(err.msg, "restored from a backup"));
}

/* Another writer's increment is caught by the read-back. */
static void
test_other_writer_alarm(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	ctr.extra = 1;
	fresh_forget(&fx->m, &fx->a);
	assert_false(fx->m.fresh.ready);
	assert_non_null(strstr(fx->m.fresh.refused, "another program increments it"));
	assert_int_equal(fresh_check(&fx->m, &fx->b, &err), -1);
	assert_int_equal(err.kind, ERR_CORRUPT);
}

/* The read-back after a reconnection of the host TPM (its index no
 * longer open) opens the counter again rather than failing every commit
 * (hosttpm-fault.sh). */
static void
test_read_back_after_reconnection(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	ctr.read_fail = 1;
	fresh_forget(&fx->m, &fx->a);
	assert_true(fx->m.fresh.ready);
	assert_int_equal(fx->m.fresh.verify, 0);
	fresh_forget(&fx->m, &fx->b);
	assert_int_equal(ctr.value, 3);
	assert_int_equal(fx->m.fresh.counter, 3);
	assert_true(tombstoned(fx, &fx->b));
}

/* Without the key, no setup while the counter is there; --reanchor sets
 * the anchor up again, once. */
static void
test_setup_refused_until_reanchor(void **state)
{
	struct fixture *fx = *state;
	struct err err = {0};
	char path[192];

	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	snprintf(path, sizeof(path), "%s/%s", fx->dir, FRESH_KEY);
	assert_int_equal(unlink(path), 0);
	restart(fx, false);
	assert_int_equal(fresh_ensure(&fx->m, &err), -1);
	assert_int_equal(err.kind, ERR_CORRUPT);
	assert_non_null(strstr(err.msg, "holds vtpmd's freshness counter"));
	assert_non_null(strstr(err.msg, "--reanchor"));
	assert_int_equal(access(path, F_OK), -1);
	restart(fx, true);
	assert_int_equal(fresh_ensure(&fx->m, &err), 0);
	assert_int_equal(ctr.undefines, 1);
	assert_true(ctr.exists);
	assert_int_equal(access(path, F_OK), 0);
	assert_false(fx->m.fresh.reanchor);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_in_place, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_commit_finished, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_increment_finished_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_slot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restored_manifest_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_writer_alarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_back_after_reconnection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setup_refused_until_reanchor, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
