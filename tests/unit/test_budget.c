/*
 * test_budget.c: each instance's commit budget as vtpmd keeps it
 * (src/manager/budget.c). The clock and kill() are faked at link time
 * (WRAP_test_budget in the Makefile): a bucket of nv-write-rate 2 (a burst
 * of 10, and vtpmd's slack of 2) gives 12 reports at once, then one every
 * 500 ms, and says when the next is due; nv-write-rate 0 holds nothing; a
 * worker that reports again before its acknowledgement is not acknowledged
 * any more, and its eighth such report ends it; a report sent again, a new
 * worker and a worker being provisioned are not violations. Over a
 * socketpair, vtpmd's loop reads at most 4 reports of one worker a round
 * (fresh_channel_read), and closes the channel of a worker it ended.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

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
	assert_true(budget_report(&f->v, 5, d1, 0));
	f->v.commit_want = true;
	f->v.commit_gen = 5;
	memcpy(f->v.commit_digest, d1, sizeof(d1));
	assert_true(budget_report(&f->v, 5, d1, 0));
	assert_int_equal(f->v.budget.violations, 0);
	assert_true(budget_take(&f->m, &f->v));
	/* Another before the acknowledgement: held from now on. */
	assert_true(budget_report(&f->v, 5, d2, 0));
	assert_int_equal(f->v.budget.violations, 1);
	assert_false(budget_take(&f->m, &f->v));
	assert_int_equal(budget_next_deadline(&f->m), -1);
	for (uint64_t g = 6; g < 12; g++)
		assert_true(budget_report(&f->v, g, d1, 0));
	assert_int_equal(kills, 0);
	assert_false(budget_report(&f->v, 12, d1, 0));
	assert_int_equal(kills, 1);
	assert_int_equal(killed_pid, 4242);
	assert_int_equal(killed_sig, SIGKILL);
	assert_false(f->v.commit_want);
	/* Its successor starts with a clean record. */
	f->v.pid = 4343;
	assert_true(budget_report(&f->v, 13, d1, 0));
	assert_int_equal(f->v.budget.violations, 0);
	f->v.commit_want = true;
	assert_true(budget_take(&f->m, &f->v));
}

/* A replayed report (the attack review of #12, commit-replay.sh): one
 * older than the generation recorded, or one the worker was acknowledged
 * already, is dropped and counted; the worker is ended as for any
 * violation. The pending report a new worker or connection sends again is
 * no replay. */
static void
test_budget_replay(void **state)
{
	struct fx *f = *state;
	uint8_t d[STORE_DIGEST_LEN] = {3};

	assert_true(budget_stale(&f->v, 1, 5));
	assert_false(budget_stale(&f->v, 5, 5));
	for (int i = 1; i < 8; i++)
		assert_true(budget_report(&f->v, 1, d, 5));
	assert_int_equal(f->v.budget.violations, 7);
	assert_int_equal(kills, 0);
	assert_false(budget_report(&f->v, 1, d, 5));
	assert_int_equal(kills, 1);
	/* Its successor: acknowledged 6, it may not report 6 (or older) again. */
	f->v.pid = 4343;
	assert_true(budget_report(&f->v, 6, d, 5));
	assert_int_equal(f->v.budget.violations, 0);
	budget_acked(&f->v, 6);
	assert_true(budget_stale(&f->v, 6, 6));
	assert_false(budget_stale(&f->v, 7, 6));
	/* A new connection: the pending report sent again is taken. */
	f->v.budget.acked = false;
	assert_false(budget_stale(&f->v, 6, 6));
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
		assert_true(budget_report(&f->v, g, d, 0));
	assert_int_equal(f->v.budget.violations, 0);
	assert_int_equal(kills, 0);
	f->v.prov = NULL;
}

/* Writes n reports of generations gen, gen+1, ... (step 0: all the same)
 * to fd, as a worker would. */
static void
write_reports(int fd, uint64_t gen, uint64_t step, int n)
{
	uint8_t msg[COMMIT_REPORT_LEN] = {'V', 'T', 'C', 'R'};

	for (int i = 0; i < n; i++, gen += step) {
		for (int b = 0; b < 8; b++)
			msg[4 + b] = (uint8_t)(gen >> (8 * (7 - b)));
		assert_int_equal(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	}
}

static int
unread(int fd)
{
	int n = 0;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static void
test_budget_channel(void **state)
{
	struct fx *f = *state;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	f->v.commit_fd = sv[0];
	/* One report sent ten times (as again after reconnections): read four
	 * a round, no violation. */
	write_reports(sv[1], 3, 0, 10);
	fresh_channel_read(&f->m, &f->v);
	assert_int_equal(unread(sv[0]), 6 * COMMIT_REPORT_LEN);
	assert_true(f->v.commit_want);
	assert_int_equal(f->v.commit_gen, 3);
	fresh_channel_read(&f->m, &f->v);
	fresh_channel_read(&f->m, &f->v);
	assert_int_equal(unread(sv[0]), 0);
	assert_int_equal(f->v.budget.violations, 0);
	/* A flood of new generations: ended at the eighth, its channel closed. */
	write_reports(sv[1], 4, 1, 100);
	for (int round = 0; round < 3 && f->v.commit_fd != -1; round++)
		fresh_channel_read(&f->m, &f->v);
	assert_int_equal(kills, 1);
	assert_int_equal(f->v.commit_fd, -1);
	assert_false(f->v.commit_want);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_budget_paces, setup),
	    cmocka_unit_test_setup(test_budget_unlimited, setup),
	    cmocka_unit_test_setup(test_budget_violations, setup),
	    cmocka_unit_test_setup(test_budget_replay, setup),
	    cmocka_unit_test_setup(test_budget_provisioning, setup),
	    cmocka_unit_test_setup(test_budget_channel, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
