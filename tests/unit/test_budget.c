/*
 * test_budget.c: each instance's commit budget as vtpmd keeps it
 * (src/manager/budget.c). The clock and kill() are faked at link time
 * (WRAP_test_budget in the Makefile): a bucket of nv-write-rate 2 (a burst
 * of 10, and vtpmd's slack of 2) gives 12 reports at once, then one every
 * 500 ms, and says when the next is due; nv-write-rate 0 holds nothing; a
 * worker that reports again before its acknowledgement is not acknowledged
 * any more, and its eighth such report ends it; a report sent again, a new
 * worker and a worker being provisioned are not violations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "manager/manager.h"

int64_t __wrap_mono_ms(void);
int __wrap_kill(pid_t pid, int sig);

static int64_t now_ms = 1000;
static pid_t killed_pid;
static int killed_sig, kills;

int64_t
__wrap_mono_ms(void)
{
	return now_ms;
}

int
__wrap_kill(pid_t pid, int sig)
{
	killed_pid = pid;
	killed_sig = sig;
	kills++;
	return 0;
}

struct fx {
	struct manager m;
	struct vtpm v;
	struct vtpm *list[1];
};

static int
setup(void **state)
{
	static struct fx f;

	memset(&f, 0, sizeof(f));
	snprintf(f.v.name, sizeof(f.v.name), "vm-a");
	f.v.pid = 4242;
	f.list[0] = &f.v;
	f.m.vtpms = f.list;
	f.m.n = 1;
	f.m.cfg.nv_write_rate = 2;
	now_ms = 1000;
	kills = 0;
	*state = &f;
	return 0;
}

static void
test_budget_paces(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 12; i++)
		assert_true(budget_take(&f->m, &f->v));
	f->v.commit_want = true;
	assert_false(budget_take(&f->m, &f->v));
	assert_true(f->v.budget.held);
	assert_int_equal(budget_next_deadline(&f->m), 1000 + 501);
	now_ms += 400;
	assert_false(budget_take(&f->m, &f->v));
	now_ms += 101;
	assert_true(budget_take(&f->m, &f->v));
	assert_false(f->v.budget.held);
	assert_int_equal(budget_next_deadline(&f->m), -1);
	/* Ten seconds later, a burst again, but no more. */
	now_ms += 10000;
	for (int i = 0; i < 12; i++)
		assert_true(budget_take(&f->m, &f->v));
	assert_false(budget_take(&f->m, &f->v));
}

static void
test_budget_unlimited(void **state)
{
	struct fx *f = *state;

	f->m.cfg.nv_write_rate = 0;
	for (int i = 0; i < 1000; i++)
		assert_true(budget_take(&f->m, &f->v));
	assert_int_equal(budget_next_deadline(&f->m), -1);
}

static void
test_budget_violations(void **state)
{
	struct fx *f = *state;
	uint8_t d1[STORE_DIGEST_LEN] = {1}, d2[STORE_DIGEST_LEN] = {2};

	/* The first report, and the same one sent again: no violation. */
	assert_true(budget_report(&f->v, 5, d1));
	f->v.commit_want = true;
	f->v.commit_gen = 5;
	memcpy(f->v.commit_digest, d1, sizeof(d1));
	assert_true(budget_report(&f->v, 5, d1));
	assert_int_equal(f->v.budget.violations, 0);
	assert_true(budget_take(&f->m, &f->v));
	/* Another before the acknowledgement: held from now on. */
	assert_true(budget_report(&f->v, 5, d2));
	assert_int_equal(f->v.budget.violations, 1);
	assert_false(budget_take(&f->m, &f->v));
	assert_int_equal(budget_next_deadline(&f->m), -1);
	for (uint64_t g = 6; g < 12; g++)
		assert_true(budget_report(&f->v, g, d1));
	assert_int_equal(kills, 0);
	assert_false(budget_report(&f->v, 12, d1));
	assert_int_equal(kills, 1);
	assert_int_equal(killed_pid, 4242);
	assert_int_equal(killed_sig, SIGKILL);
	assert_false(f->v.commit_want);
	/* Its successor starts with a clean record. */
	f->v.pid = 4343;
	assert_true(budget_report(&f->v, 13, d1));
	assert_int_equal(f->v.budget.violations, 0);
	f->v.commit_want = true;
	assert_true(budget_take(&f->m, &f->v));
}

/* A worker vtpmd provisions reports without waiting, by design. */
static void
test_budget_provisioning(void **state)
{
	struct fx *f = *state;
	uint8_t d[STORE_DIGEST_LEN] = {7};

	f->v.prov = (struct provision *)&f->v; /* any non-NULL: provisioning */
	f->v.commit_want = true;
	for (uint64_t g = 1; g < 40; g++)
		assert_true(budget_report(&f->v, g, d));
	assert_int_equal(f->v.budget.violations, 0);
	assert_int_equal(kills, 0);
	f->v.prov = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_budget_paces, setup),
	    cmocka_unit_test_setup(test_budget_unlimited, setup),
	    cmocka_unit_test_setup(test_budget_violations, setup),
	    cmocka_unit_test_setup(test_budget_provisioning, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
