/*
 * test_config.c: the configuration file (src/manager/config.c): config_parse_buffer
 * over text in memory, with every problem reported as NAME:LINE, and
 * config_load reading a file into it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

/* Parses text (len bytes; strlen when len is -1) over the defaults; the
 * messages are left in *messages (malloc'd). Returns the problems. */
static int
parse(const char *text, long len, struct config *cfg, char **messages)
{
	size_t mlen = 0;
	FILE *errors;
	char *copy;
	size_t n = len < 0 ? strlen(text) : (size_t)len;
	int problems;

	*messages = NULL;
	errors = open_memstream(messages, &mlen);
	assert_non_null(errors);
	/* Exactly n bytes and no terminating NUL, so a read past them is caught. */
	copy = malloc(n > 0 ? n : 1);
	assert_non_null(copy);
	memcpy(copy, text, n);
	config_defaults(cfg);
	problems = config_parse_buffer("test.conf", copy, n, cfg, errors);
	fclose(errors);
	free(copy);
	return problems;
}

static void
test_parse_valid(void **state)
{
	struct config cfg;
	char *msg;

	assert_int_equal(parse("# a comment\n"
	                       "tcti = swtpm:host=127.0.0.1,port=2321\n"
	                       "  pcrs = 0, 2 ,4,7  \n"
	                       "\n"
	                       "state-dir=/srv/vtpmd\n"
	                       "\trun-dir = /run/v\r\n"
	                       "socket = /run/v/api.sock\n"
	                       "worker-uid-base = 0\n"
	                       "approval-public-key = /etc/vtpmd/approval.pub\n"
	                       "privacy-ca-root = /etc/vtpmd/privacy-root.pem\n"
	                       "virtualization-ca-root = /etc/vtpmd/virt-root.pem\n"
	                       "ca-timeout = 3\n"
	                       "log-level = debug",
	                     -1, &cfg, &msg),
	    0);
	assert_string_equal(msg, "");
	assert_string_equal(cfg.tcti, "swtpm:host=127.0.0.1,port=2321");
	assert_int_equal(cfg.pcrs.mask, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7);
	assert_string_equal(cfg.state_dir, "/srv/vtpmd");
	assert_string_equal(cfg.run_dir, "/run/v");
	assert_string_equal(cfg.socket, "/run/v/api.sock");
	assert_int_equal(cfg.worker_uid_base, 0);
	assert_string_equal(cfg.approval_public, "/etc/vtpmd/approval.pub");
	assert_string_equal(cfg.privacy_root, "/etc/vtpmd/privacy-root.pem");
	assert_string_equal(cfg.virt_root, "/etc/vtpmd/virt-root.pem");
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg.ca_timeout_s, 3);
	free(msg);

	/* Empty text, and comments only, leave the defaults. */
	assert_int_equal(parse("", 0, &cfg, &msg), 0);
	assert_string_equal(cfg.tcti, "device:/dev/tpmrm0");
	assert_int_equal(cfg.ca_timeout_s, CONFIG_CA_TIMEOUT_DEFAULT);
	free(msg);
	assert_int_equal(parse("#tcti = x\n   # indented\n\n", -1, &cfg, &msg), 0);
	assert_string_equal(cfg.tcti, "device:/dev/tpmrm0");
	free(msg);
}

static void
test_parse_problems_located(void **state)
{
	struct config cfg;
	char *msg;

	assert_int_equal(parse("tcti = device:/dev/tpmrm0\n"
	                       "pcrs = 0,2,99\n"
	                       "no equals sign here\n"
	                       "state-dir = relative/path\n"
	                       "colour = blue\n"
	                       "worker-uid-base = -1\n"
	                       "log-level = loud\n"
	                       "privacy-ca-root = root.pem\n"
	                       "virtualization-ca-root =\n",
	                     -1, &cfg, &msg),
	    8);
	assert_string_equal(msg,
	    "test.conf:2: pcrs: expected a list of PCR numbers 0-23 such as 0,2,4,7\n"
	    "test.conf:3: expected 'key = value'\n"
	    "test.conf:4: state-dir: must be an absolute path\n"
	    "test.conf:5: colour: unknown key 'colour'\n"
	    "test.conf:6: worker-uid-base: expected a number (0 disables the sandbox)\n"
	    "test.conf:7: log-level: expected error, warn, info or debug\n"
	    "test.conf:8: privacy-ca-root: must be an absolute path\n"
	    "test.conf:9: virtualization-ca-root: value is empty or longer than 255 bytes\n");
	/* What was valid was applied; what was not left the default. */
	assert_string_equal(cfg.tcti, "device:/dev/tpmrm0");
	assert_string_equal(cfg.state_dir, "/var/lib/vtpmd");
	free(msg);
}

/* ca-timeout: whole seconds from 1 to CONFIG_CA_TIMEOUT_MAX. */
static void
test_parse_ca_timeout(void **state)
{
	struct config cfg;
	char *msg;

	assert_int_equal(parse("ca-timeout = 45\n", -1, &cfg, &msg), 0);
	assert_int_equal(cfg.ca_timeout_s, 45);
	free(msg);
	assert_int_equal(parse("ca-timeout = 0\nca-timeout = 46\nca-timeout = 2s\n"
	                       "ca-timeout = -1\nca-timeout =\n",
	                     -1, &cfg, &msg),
	    5);
	assert_non_null(strstr(msg, "test.conf:1: ca-timeout: expected seconds, 1 to 45"));
	assert_non_null(strstr(msg, "test.conf:5: ca-timeout: expected seconds"));
	assert_int_equal(cfg.ca_timeout_s, CONFIG_CA_TIMEOUT_DEFAULT);
	free(msg);
}

static void
test_parse_line_limits(void **state)
{
	char text[2200];
	struct config cfg;
	char *msg;

	/* 1022 bytes is the longest line; one more is a problem, and the next
	 * line is still read. */
	memset(text, 0, sizeof(text));
	strcpy(text, "# ");
	memset(text + 2, 'c', 1020);
	strcat(text, "\npcrs = 3\n");
	assert_int_equal(parse(text, -1, &cfg, &msg), 0);
	assert_int_equal(cfg.pcrs.mask, 1u << 3);
	free(msg);
	memset(text, 0, sizeof(text));
	strcpy(text, "tcti = ");
	memset(text + 7, 'x', 1016);
	strcat(text, "\npcrs = 5");
	assert_int_equal(parse(text, -1, &cfg, &msg), 1);
	assert_string_equal(msg, "test.conf:1: line longer than 1022 bytes\n");
	assert_string_equal(cfg.tcti, "device:/dev/tpmrm0");
	assert_int_equal(cfg.pcrs.mask, 1u << 5);
	free(msg);

	/* A NUL byte does not cut a line short silently. */
	assert_int_equal(parse("tcti = ab\0cd\npcrs = 1\n", 21, &cfg, &msg), 1);
	assert_string_equal(msg, "test.conf:1: line holds a NUL byte\n");
	assert_string_equal(cfg.tcti, "device:/dev/tpmrm0");
	assert_int_equal(cfg.pcrs.mask, 1u << 1);
	free(msg);

	/* A value longer than its field. */
	memset(text, 0, sizeof(text));
	strcpy(text, "socket = /");
	memset(text + 10, 's', 300);
	assert_int_equal(parse(text, -1, &cfg, &msg), 1);
	assert_string_equal(msg, "test.conf:1: socket: value is empty or longer than 255 bytes\n");
	free(msg);
}

static void
test_load_file(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX", dir[] = "/tmp/test_config_d.XXXXXX";
	char *msg = NULL, *big;
	size_t mlen = 0;
	struct config cfg;
	FILE *errors;
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "pcrs = 16\nbogus\n", 16), 16);
	close(fd);
	config_defaults(&cfg);
	errors = open_memstream(&msg, &mlen);
	assert_int_equal(config_load(path, &cfg, errors), 1);
	fclose(errors);
	assert_int_equal(cfg.pcrs.mask, 1u << 16);
	assert_non_null(strstr(msg, ":2: expected 'key = value'"));
	assert_memory_equal(msg, path, strlen(path));
	free(msg);

	/* Larger than any configuration: refused as unreadable. */
	big = malloc((1u << 20) + 2);
	assert_non_null(big);
	memset(big, '#', (1u << 20) + 1);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, (1u << 20) + 1), (1u << 20) + 1);
	close(fd);
	free(big);
	errors = open_memstream(&msg, &mlen);
	assert_int_equal(config_load(path, &cfg, errors), -1);
	fclose(errors);
	assert_non_null(strstr(msg, "larger than 1048576 bytes"));
	free(msg);
	unlink(path);

	/* Missing, and a directory. */
	errors = open_memstream(&msg, &mlen);
	assert_int_equal(config_load(path, &cfg, errors), -1);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(config_load(dir, &cfg, errors), -1);
	fclose(errors);
	assert_non_null(strstr(msg, "No such file"));
	assert_non_null(strstr(msg, "Is a directory"));
	free(msg);
	rmdir(dir);
}

static void
test_pcrs_round_trip(void **state)
{
	const char *bad[] = {"", " ", "24", "-1", "1,1", "1,", ",1", "1 2", "+1", "0x1", "1;2",
	    "99999999999999999999"};
	struct pcr_selection sel, again;
	char buf[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pcrpolicy_parse(bad[i], &sel), -1);
	assert_int_equal(pcrpolicy_parse("23, 0 ,7", &sel), 0);
	assert_int_equal(sel.mask, 1u << 23 | 1u << 0 | 1u << 7);
	pcrpolicy_format(&sel, buf, sizeof(buf));
	assert_string_equal(buf, "0,7,23");
	sel.mask = (1u << 24) - 1;
	pcrpolicy_format(&sel, buf, sizeof(buf));
	assert_int_equal(pcrpolicy_parse(buf, &again), 0);
	assert_int_equal(again.mask, sel.mask);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_problems_located),
	    cmocka_unit_test(test_parse_ca_timeout),
	    cmocka_unit_test(test_parse_line_limits),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_pcrs_round_trip),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
