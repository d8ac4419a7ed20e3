/*
 * test_workerlog.c: a worker's log lines as the manager relays them
 * (src/manager/workerlog.c), each test with a fresh mkdtemp run directory
 * and the manager's stderr captured in a file. The clock is faked at link
 * time (WRAP_test_workerlog: mono_ms) to cross the rate limit's second.
 *
 * Covered: every line under the instance's tag, whatever it says; bytes
 * that are not printable ASCII (and the backslash) escaped; a long line in
 * tagged pieces; an unended line held until the next read, or relayed by a
 * drain; the rate limit and the count of what it dropped; the channel as a
 * FIFO of the run directory that outlives the manager's end (a worker's
 * write end keeps working for the next manager) and that replaces
 * whatever else is at its path (a file, a symbolic link, not followed);
 * a delete removes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

static int64_t fake_now = 5000;

int64_t __wrap_mono_ms(void);
int64_t
__wrap_mono_ms(void)
{
	return fake_now;
}

struct fixture {
	char dir[64];
	char out[PATH_MAX]; /* the captured stderr */
	int saved_stderr;
	struct manager *m;
	struct vtpm *v;
	int w; /* a worker's write end */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vtpmd-wlog.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->m = calloc(1, sizeof(*f->m));
	f->v = calloc(1, sizeof(*f->v));
	assert_non_null(f->m);
	assert_non_null(f->v);
	snprintf(f->m->cfg.run_dir, sizeof(f->m->cfg.run_dir), "%s", f->dir);
	snprintf(f->v->name, sizeof(f->v->name), "vm1");
	snprintf(f->out, sizeof(f->out), "%s/stderr", f->dir);
	fflush(stderr);
	f->saved_stderr = dup(2);
	fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && f->saved_stderr >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
	f->w = -1;
	fake_now += 10000; /* each test in a second of its own */
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	workerlog_close(f->m, f->v, true);
	if (f->w != -1)
		close(f->w);
	fflush(stderr);
	dup2(f->saved_stderr, 2);
	close(f->saved_stderr);
	unlink(f->out);
	snprintf(path, sizeof(path), "%s/vm1.log", f->dir);
	unlink(path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f->v);
	free(f->m);
	free(f);
	return 0;
}

/* Opens the channel and a worker's write end to it. */
static void
open_channel(struct fixture *f)
{
	struct err err = {0};

	if (workerlog_open(f->m, f->v, &err) != 0)
		fail_msg("workerlog_open: %s", err.msg);
	assert_true(workerlog_fd(f->v) >= 0);
	f->w = workerlog_writer(f->m, f->v, &err);
	if (f->w == -1)
		fail_msg("workerlog_writer: %s", err.msg);
}

static void
worker_says(struct fixture *f, const char *bytes, size_t len)
{
	assert_int_equal(write(f->w, bytes, len), (ssize_t)len);
}

/* What the manager wrote on stderr so far. */
static char *
relayed(struct fixture *f)
{
	static char buf[1 << 16];
	ssize_t n;
	int fd;

	fflush(stderr);
	fd = open(f->out, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static int
count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		if (strchr(p, '\n') == NULL)
			break;
	}
	return n;
}

static void
test_tagged_and_escaped(void **state)
{
	struct fixture *f = *state;
	static const char says[] = "info: loaded\n"
	                           "vtpmd: error: forged\n"
	                           "instance[vm2]: warn: forged\n"
	                           "esc \x1b[2J cr\r bs\\ \xc3\xa9\n";

	open_channel(f);
	worker_says(f, says, sizeof(says) - 1);
	workerlog_read(f->v);
	assert_string_equal(relayed(f), "instance[vm1]: info: loaded\n"
	                                "instance[vm1]: vtpmd: error: forged\n"
	                                "instance[vm1]: instance[vm2]: warn: forged\n"
	                                "instance[vm1]: esc \\x1b[2J cr\\x0d bs\\x5c \\xc3\\xa9\n");
}

static void
test_long_line_in_pieces(void **state)
{
	struct fixture *f = *state;
	char line[2 * WORKERLOG_LINE_MAX + 101];
	const char *out, *p;

	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	open_channel(f);
	worker_says(f, line, sizeof(line));
	workerlog_read(f->v);
	out = relayed(f);
	assert_int_equal(count_lines(out, "instance[vm1]: a"), 3);
	p = strrchr(out, ':');
	assert_int_equal(strlen(p + 2), 100 + 1); /* the last piece, and its newline */
}

static void
test_unended_line(void **state)
{
	struct fixture *f = *state;

	open_channel(f);
	worker_says(f, "half a li", 9);
	workerlog_read(f->v);
	assert_string_equal(relayed(f), "");
	worker_says(f, "ne\nlast words", 13);
	workerlog_read(f->v);
	assert_string_equal(relayed(f), "instance[vm1]: half a line\n");
	workerlog_drain(f->v);
	assert_string_equal(relayed(f), "instance[vm1]: half a line\ninstance[vm1]: last words\n");
}

static void
test_rate_limit(void **state)
{
	struct fixture *f = *state;
	char line[32];
	const char *out;
	int n;

	open_channel(f);
	/* 700 lines in one second: 500 come through. */
	for (int i = 0; i < 700; i++) {
		n = snprintf(line, sizeof(line), "line %d\n", i);
		worker_says(f, line, (size_t)n);
		if (i % 100 == 99)
			workerlog_read(f->v); /* the FIFO holds 64 KiB */
	}
	workerlog_read(f->v);
	out = relayed(f);
	assert_int_equal(count_lines(out, "instance[vm1]: line "), WORKERLOG_LINES_PER_S);
	assert_non_null(strstr(out, "instance[vm1]: line 499\n"));
	assert_null(strstr(out, "instance[vm1]: line 500\n"));
	assert_null(strstr(out, "dropped"));
	/* The next second: its first line says what was dropped. */
	fake_now += 1000;
	worker_says(f, "next\n", 5);
	workerlog_read(f->v);
	out = relayed(f);
	assert_non_null(strstr(out, "instance[vm1]: vtpmd: 200 lines of this worker's log dropped "
	                            "(over 500 a second)\ninstance[vm1]: next\n"));
}

static void
test_outlives_the_manager(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat st;

	open_channel(f);
	snprintf(path, sizeof(path), "%s/vm1.log", f->dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The manager ends; its channel stays for the next one. */
	workerlog_close(f->m, f->v, false);
	assert_int_equal(lstat(path, &st), 0);
	/* No reader: the worker's line fails (it ignores SIGPIPE) and is lost. */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(write(f->w, "lost\n", 5), -1);
	assert_int_equal(errno, EPIPE);
	signal(SIGPIPE, SIG_DFL);
	/* The next manager opens it again: the worker's same descriptor. */
	if (workerlog_open(f->m, f->v, &(struct err){0}) != 0)
		fail_msg("workerlog_open again");
	worker_says(f, "after\n", 6);
	workerlog_read(f->v);
	assert_string_equal(relayed(f), "instance[vm1]: after\n");
	/* A delete removes it. */
	workerlog_close(f->m, f->v, true);
	assert_int_equal(lstat(path, &st), -1);
}

static void
test_replaces_other_files(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], target[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/vm1.log", f->dir);
	snprintf(target, sizeof(target), "%s/stderr", f->dir);
	/* A symbolic link to a file (here, the captured stderr) is not
	 * followed: it is replaced, the file it named untouched. */
	assert_int_equal(symlink(target, path), 0);
	open_channel(f);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	workerlog_close(f->m, f->v, false);
	close(f->w);
	f->w = -1;
	/* A regular file too. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(close(open(path, O_WRONLY | O_CREAT, 0600)), 0);
	open_channel(f);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_string_equal(relayed(f), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tagged_and_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line_in_pieces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unended_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outlives_the_manager, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replaces_other_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
