/*
 * test_log.c: the log's syslog priorities for the journal (src/common/log.c),
 * with stderr captured in a fresh mkdtemp file per test.
 *
 * Covered: with JOURNAL_STREAM naming stderr's device and inode, each line
 * starts with its priority (<3> error, <4> warning, <6> info, <7> debug) and
 * a relayed line with the priority of the level it names (<6> when it names
 * none); with JOURNAL_STREAM unset, naming another file, or malformed, no
 * line carries a prefix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"

struct fixture {
	char dir[PATH_MAX];
	char out[PATH_MAX]; /* the captured stderr */
	int saved_stderr;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_log.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->out, sizeof(f->out), "%s/stderr", f->dir);
	fflush(stderr);
	f->saved_stderr = dup(2);
	fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0 && f->saved_stderr >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 16];

	fflush(stderr);
	dup2(f->saved_stderr, 2);
	close(f->saved_stderr);
	unsetenv("JOURNAL_STREAM");
	snprintf(path, sizeof(path), "%s/stderr", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/other", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* What was logged so far (static buffer). */
static const char *
logged(const struct fixture *f)
{
	static char buf[4096];
	FILE *in;
	size_t n;

	fflush(stderr);
	in = fopen(f->out, "r");
	assert_non_null(in);
	n = fread(buf, 1, sizeof(buf) - 1, in);
	fclose(in);
	buf[n] = '\0';
	return buf;
}

/* JOURNAL_STREAM as systemd sets it for a file: "DEVICE:INODE". */
static void
journal_stream_of(const char *path)
{
	struct stat st;
	char val[64];

	assert_int_equal(stat(path, &st), 0);
	snprintf(val, sizeof(val), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", val, 1), 0);
}

static void
log_every_level(void)
{
	log_errorx("e %d", 1);
	log_warnx("w %d", 2);
	log_notice("n %d", 5);
	log_info("i %d", 3);
	log_debug("d %d", 4);
	log_relay("instance[vm-a]", "warn: from the worker");
	log_relay("instance[vm-a]", "a continued piece");
}

static void
test_journal_priorities(void **state)
{
	struct fixture *f = *state;

	journal_stream_of(f->out);
	log_init("vtpmd", LOG_LEVEL_DEBUG);
	log_every_level();
	assert_string_equal(logged(f), "<3>vtpmd: error: e 1\n"
	                               "<4>vtpmd: warn: w 2\n"
	                               "<5>vtpmd: notice: n 5\n"
	                               "<6>vtpmd: info: i 3\n"
	                               "<7>vtpmd: debug: d 4\n"
	                               "<4>instance[vm-a]: warn: from the worker\n"
	                               "<6>instance[vm-a]: a continued piece\n");
}

static void
test_no_journal(void **state)
{
	struct fixture *f = *state;
	char other[PATH_MAX + 16];
	static const char plain[] = "vtpmd: error: e 1\n"
	                            "vtpmd: warn: w 2\n"
	                            "vtpmd: notice: n 5\n"
	                            "vtpmd: info: i 3\n"
	                            "vtpmd: debug: d 4\n"
	                            "instance[vm-a]: warn: from the worker\n"
	                            "instance[vm-a]: a continued piece\n";

	/* Unset. */
	log_init("vtpmd", LOG_LEVEL_DEBUG);
	log_every_level();
	/* Another file's device and inode: stderr was redirected away from it. */
	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(close(open(other, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), 0);
	journal_stream_of(other);
	log_init("vtpmd", LOG_LEVEL_DEBUG);
	log_every_level();
	/* Malformed. */
	assert_int_equal(setenv("JOURNAL_STREAM", "1:2:3", 1), 0);
	log_init("vtpmd", LOG_LEVEL_DEBUG);
	log_every_level();
	assert_int_equal(setenv("JOURNAL_STREAM", ":", 1), 0);
	log_init("vtpmd", LOG_LEVEL_DEBUG);
	log_every_level();
	{
		char want[4 * sizeof(plain)];

		snprintf(want, sizeof(want), "%s%s%s%s", plain, plain, plain, plain);
		assert_string_equal(logged(f), want);
	}
}

/* A notice shows from level info up (an operator's record), not at warn. */
static void
test_notice_level(void **state)
{
	struct fixture *f = *state;

	log_init("vtpmd", LOG_LEVEL_WARN);
	log_notice("hidden");
	log_init("vtpmd", LOG_LEVEL_INFO);
	log_notice("shown %s", "here");
	assert_string_equal(logged(f), "vtpmd: notice: shown here\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_journal_priorities, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notice_level, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
