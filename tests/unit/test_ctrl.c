/*
 * test_ctrl.c: the swtpm control-channel codec (src/instance/ctrl.c): framing of
 * every command at every byte boundary, decoding of every field, and the
 * limits on declared data lengths.
 *
 * The command numbers and layouts are written out here from the swtpm
 * protocol (tpm_ioctl.h), not taken from its header, so that a drift in
 * either is caught.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "instance/instance.h"

enum {
	C_GET_CAPABILITY = 0x01,
	C_INIT = 0x02,
	C_SHUTDOWN = 0x03,
	C_GET_TPMESTABLISHED = 0x04,
	C_SET_LOCALITY = 0x05,
	C_HASH_START = 0x06,
	C_HASH_DATA = 0x07,
	C_HASH_END = 0x08,
	C_CANCEL_TPM_CMD = 0x09,
	C_STORE_VOLATILE = 0x0a,
	C_RESET_TPMESTABLISHED = 0x0b,
	C_GET_STATEBLOB = 0x0c,
	C_SET_STATEBLOB = 0x0d,
	C_STOP = 0x0e,
	C_GET_CONFIG = 0x0f,
	C_SET_DATAFD = 0x10,
	C_SET_BUFFERSIZE = 0x11,
	C_GET_INFO = 0x12,
	C_LOCK_STORAGE = 0x13,
};

/* Every command, the size of its fixed payload and its name. */
static const struct {
	uint32_t cmd;
	size_t fixed;
	const char *name;
} commands[] = {
    {C_GET_CAPABILITY, 0, "GET_CAPABILITY"},
    {C_INIT, 4, "INIT"},
    {C_SHUTDOWN, 0, "SHUTDOWN"},
    {C_GET_TPMESTABLISHED, 0, "GET_TPMESTABLISHED"},
    {C_SET_LOCALITY, 1, "SET_LOCALITY"},
    {C_HASH_START, 0, "HASH_START"},
    {C_HASH_DATA, 4, "HASH_DATA"},
    {C_HASH_END, 0, "HASH_END"},
    {C_CANCEL_TPM_CMD, 0, "CANCEL_TPM_CMD"},
    {C_STORE_VOLATILE, 0, "STORE_VOLATILE"},
    {C_RESET_TPMESTABLISHED, 1, "RESET_TPMESTABLISHED"},
    {C_GET_STATEBLOB, 12, "GET_STATEBLOB"},
    {C_SET_STATEBLOB, 12, "SET_STATEBLOB"},
    {C_STOP, 0, "STOP"},
    {C_GET_CONFIG, 0, "GET_CONFIG"},
    {C_SET_DATAFD, 0, "SET_DATAFD"},
    {C_SET_BUFFERSIZE, 4, "SET_BUFFERSIZE"},
    {C_GET_INFO, 16, "GET_INFO"},
    {C_LOCK_STORAGE, 4, "LOCK_STORAGE"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static bool
has_data(uint32_t cmd)
{
	return cmd == C_SET_STATEBLOB || cmd == C_HASH_DATA;
}

/*
 * Builds cmd with its fixed payload (filled with a pattern) and, for the
 * commands that carry data, dlen data bytes. Returns a malloc'd buffer of
 * exactly *len bytes.
 */
static uint8_t *
build(uint32_t cmd, size_t fixed, uint32_t dlen, size_t *len)
{
	uint8_t *b;

	*len = 4 + fixed + (has_data(cmd) ? dlen : 0);
	b = malloc(*len);
	assert_non_null(b);
	be32(b, cmd);
	for (size_t i = 4; i < *len; i++)
		b[i] = (uint8_t)(0x40 + i);
	if (has_data(cmd))
		be32(b + 4 + fixed - 4, dlen);
	return b;
}

/* Asserts ctrl_request_size on the first n bytes of req, copied into a
 * buffer of exactly n bytes so that any read past them is caught. */
static void
check_size(const uint8_t *req, size_t n, enum ctrl_parse want, size_t want_need, uint32_t cmd)
{
	uint8_t *copy = malloc(n > 0 ? n : 1);
	enum ctrl_parse got;
	size_t need = 0xdead;

	assert_non_null(copy);
	memcpy(copy, req, n);
	got = ctrl_request_size(copy, n, &need);
	free(copy);
	if (got != want || need != want_need)
		fail_msg("cmd 0x%x, %zu bytes: got %d need %zu, want %d need %zu", cmd, n, got,
		    need, want, want_need);
}

/* Every command without data: incomplete below its length (needing 4,
 * then its whole length), complete at it and with more bytes after it. */
static void
test_framing_fixed_commands(void **state)
{
	for (size_t c = 0; c < NCOMMANDS; c++) {
		uint32_t cmd = commands[c].cmd;
		uint8_t buf[64];
		size_t total = 4 + commands[c].fixed;

		if (has_data(cmd))
			continue;
		memset(buf, 0xee, sizeof(buf));
		be32(buf, cmd);
		for (size_t n = 0; n < total; n++)
			check_size(buf, n, CTRL_INCOMPLETE, n < 4 ? 4 : total, cmd);
		check_size(buf, total, CTRL_COMPLETE, total, cmd);
		/* A following pipelined request does not change the size. */
		check_size(buf, total + 7, CTRL_COMPLETE, total, cmd);
	}
}

static void
check_data_framing(uint32_t cmd, size_t fixed, uint32_t dlen)
{
	size_t total, hdr = 4 + fixed;
	uint8_t *buf, *more;

	buf = build(cmd, fixed, dlen, &total);
	assert_int_equal(total, hdr + dlen);
	for (size_t n = 0; n < total; n++)
		check_size(buf, n, CTRL_INCOMPLETE, n < 4 ? 4 : n < hdr ? hdr : total, cmd);
	check_size(buf, total, CTRL_COMPLETE, total, cmd);
	more = calloc(1, total + 5);
	assert_non_null(more);
	memcpy(more, buf, total);
	check_size(more, total + 5, CTRL_COMPLETE, total, cmd);
	free(more);
	free(buf);
}

static void
test_framing_set_stateblob(void **state)
{
	check_data_framing(C_SET_STATEBLOB, 12, 0);
	check_data_framing(C_SET_STATEBLOB, 12, 1);
	check_data_framing(C_SET_STATEBLOB, 12, 37);
}

static void
test_framing_hash_data(void **state)
{
	check_data_framing(C_HASH_DATA, 4, 0);
	check_data_framing(C_HASH_DATA, 4, 1);
	check_data_framing(C_HASH_DATA, 4, 29);
}

/* A declared length of exactly CTRL_MAX_BLOB is waited for; one more is
 * refused as soon as the length field is in, without the data. */
static void
check_limit(uint32_t cmd, size_t fixed)
{
	const uint32_t lens[] = {
	    CTRL_MAX_BLOB + 1, CTRL_MAX_BLOB + 4096, 0x80000000u, 0xfffffff0u, 0xffffffffu};
	struct ctrl_request req;
	size_t hdr = 4 + fixed;
	uint8_t buf[16];

	assert_true(hdr <= sizeof(buf));
	memset(buf, 0, sizeof(buf));
	be32(buf, cmd);
	be32(buf + hdr - 4, CTRL_MAX_BLOB);
	check_size(buf, hdr, CTRL_INCOMPLETE, hdr + CTRL_MAX_BLOB, cmd);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		be32(buf + hdr - 4, lens[i]);
		check_size(buf, hdr, CTRL_OVERSIZED, hdr, cmd);
		/* ctrl_decode does not trust the declared length either. */
		assert_int_equal(ctrl_decode(buf, hdr, &req), -1);
	}
}

static void
test_oversized_set_stateblob(void **state)
{
	check_limit(C_SET_STATEBLOB, 12);
}

static void
test_oversized_hash_data(void **state)
{
	check_limit(C_HASH_DATA, 4);
}

/* Unknown commands are complete at 4 bytes and do not decode. */
static void
test_unknown_commands(void **state)
{
	const uint32_t unknown[] = {0, 0x14, 0x15, 0xff, 0x100, 0x0d000000, 0x7fffffff, 0xffffffff};
	struct ctrl_request req;
	uint8_t buf[8];

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		memset(buf, 0, sizeof(buf));
		be32(buf, unknown[i]);
		for (size_t n = 0; n < 4; n++)
			check_size(buf, n, CTRL_INCOMPLETE, 4, unknown[i]);
		check_size(buf, 4, CTRL_COMPLETE, 4, unknown[i]);
		check_size(buf, 8, CTRL_COMPLETE, 4, unknown[i]);
		memset(&req, 0xa5, sizeof(req));
		assert_int_equal(ctrl_decode(buf, 4, &req), -1);
		assert_int_equal(req.cmd, unknown[i]);
		assert_string_equal(ctrl_cmd_name(unknown[i]), "unknown");
	}
}

/* Decodes exactly len bytes (copied, so overreads are caught). */
static int
decode(const uint8_t *buf, size_t len, struct ctrl_request *req, uint8_t **copy)
{
	*copy = malloc(len > 0 ? len : 1);
	assert_non_null(*copy);
	memcpy(*copy, buf, len);
	memset(req, 0xa5, sizeof(*req));
	return ctrl_decode(*copy, len, req);
}

static void
test_decode_no_payload(void **state)
{
	struct ctrl_request req, zero;
	uint8_t buf[4], *copy;

	memset(&zero, 0, sizeof(zero));
	for (size_t c = 0; c < NCOMMANDS; c++) {
		if (commands[c].fixed != 0)
			continue;
		be32(buf, commands[c].cmd);
		assert_int_equal(decode(buf, 4, &req, &copy), 0);
		assert_int_equal(req.cmd, commands[c].cmd);
		assert_memory_equal(&req.u, &zero.u, sizeof(req.u));
		free(copy);
	}
}

static void
test_decode_init(void **state)
{
	const uint8_t buf[] = {0, 0, 0, 0x02, 0x11, 0x22, 0x33, 0x44};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(buf, sizeof(buf), &req, &copy), 0);
	assert_int_equal(req.cmd, C_INIT);
	assert_int_equal(req.u.init_flags, 0x11223344);
	free(copy);
}

static void
test_decode_locality(void **state)
{
	const uint8_t set[] = {0, 0, 0, 0x05, 0x03};
	const uint8_t reset[] = {0, 0, 0, 0x0b, 0x04};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(set, sizeof(set), &req, &copy), 0);
	assert_int_equal(req.cmd, C_SET_LOCALITY);
	assert_int_equal(req.u.locality, 3);
	free(copy);
	assert_int_equal(decode(reset, sizeof(reset), &req, &copy), 0);
	assert_int_equal(req.cmd, C_RESET_TPMESTABLISHED);
	assert_int_equal(req.u.locality, 4);
	free(copy);
}

static void
test_decode_buffersize_and_lock_storage(void **state)
{
	const uint8_t bs[] = {0, 0, 0, 0x11, 0xa1, 0xb2, 0xc3, 0xd4};
	const uint8_t lock[] = {0, 0, 0, 0x13, 0x01, 0x02, 0x03, 0x04};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(bs, sizeof(bs), &req, &copy), 0);
	assert_int_equal(req.cmd, C_SET_BUFFERSIZE);
	assert_int_equal(req.u.buffersize, 0xa1b2c3d4);
	free(copy);
	assert_int_equal(decode(lock, sizeof(lock), &req, &copy), 0);
	assert_int_equal(req.cmd, C_LOCK_STORAGE);
	assert_int_equal(req.u.retries, 0x01020304);
	free(copy);
}

static void
test_decode_get_stateblob(void **state)
{
	const uint8_t buf[] = {
	    0, 0, 0, 0x0c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(buf, sizeof(buf), &req, &copy), 0);
	assert_int_equal(req.cmd, C_GET_STATEBLOB);
	assert_int_equal(req.u.getstate.flags, 0x01020304);
	assert_int_equal(req.u.getstate.type, 0x05060708);
	assert_int_equal(req.u.getstate.offset, 0x090a0b0c);
	free(copy);
}

static void
test_decode_set_stateblob(void **state)
{
	const uint8_t buf[] = {0, 0, 0, 0x0d, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00,
	    0x00, 0x00, 0x03, 'x', 'y', 'z'};
	const uint8_t empty[] = {0, 0, 0, 0x0d, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(buf, sizeof(buf), &req, &copy), 0);
	assert_int_equal(req.cmd, C_SET_STATEBLOB);
	assert_int_equal(req.u.setstate.flags, 0x01020304);
	assert_int_equal(req.u.setstate.type, 2);
	assert_int_equal(req.u.setstate.length, 3);
	assert_ptr_equal(req.u.setstate.data, copy + 16);
	assert_memory_equal(req.u.setstate.data, "xyz", 3);
	free(copy);

	assert_int_equal(decode(empty, sizeof(empty), &req, &copy), 0);
	assert_int_equal(req.u.setstate.type, 1);
	assert_int_equal(req.u.setstate.length, 0);
	free(copy);
}

static void
test_decode_hash_data(void **state)
{
	const uint8_t buf[] = {0, 0, 0, 0x07, 0x00, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(buf, sizeof(buf), &req, &copy), 0);
	assert_int_equal(req.cmd, C_HASH_DATA);
	assert_int_equal(req.u.hash.length, 5);
	assert_ptr_equal(req.u.hash.data, copy + 8);
	assert_memory_equal(req.u.hash.data, "hello", 5);
	free(copy);
}

static void
test_decode_get_info(void **state)
{
	const uint8_t buf[] = {0, 0, 0, 0x12, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
	    0x0a, 0x0b, 0x0c, 0xff, 0xff, 0xff, 0xff};
	struct ctrl_request req;
	uint8_t *copy;

	assert_int_equal(decode(buf, sizeof(buf), &req, &copy), 0);
	assert_int_equal(req.cmd, C_GET_INFO);
	assert_true(req.u.info.flags == 0x0102030405060708ull);
	assert_int_equal(req.u.info.offset, 0x090a0b0c);
	free(copy);
}

/* Every known command decodes at its full length and at no shorter one. */
static void
test_decode_truncated(void **state)
{
	struct ctrl_request req;
	uint8_t *buf, *copy;
	size_t total;

	for (size_t c = 0; c < NCOMMANDS; c++) {
		buf = build(commands[c].cmd, commands[c].fixed, 6, &total);
		for (size_t n = 0; n < total; n++) {
			if (decode(buf, n, &req, &copy) != -1)
				fail_msg(
				    "%s decoded from %zu of %zu bytes", commands[c].name, n, total);
			free(copy);
		}
		assert_int_equal(decode(buf, total, &req, &copy), 0);
		assert_int_equal(req.cmd, commands[c].cmd);
		free(copy);
		free(buf);
	}
}

/* The request sizer and the decoder agree on every command. */
static void
test_size_and_decode_agree(void **state)
{
	struct ctrl_request req;
	uint8_t *buf, *copy;
	size_t total, need;

	for (size_t c = 0; c < NCOMMANDS; c++) {
		buf = build(commands[c].cmd, commands[c].fixed, 3, &total);
		assert_int_equal(ctrl_request_size(buf, total, &need), CTRL_COMPLETE);
		assert_int_equal(need, total);
		assert_int_equal(decode(buf, need, &req, &copy), 0);
		free(copy);
		free(buf);
	}
}

static void
test_put_u32(void **state)
{
	uint8_t out[8];

	memset(out, 0xee, sizeof(out));
	assert_int_equal(ctrl_put_u32(out, 0x01020304), 4);
	assert_memory_equal(out, ((uint8_t[]){1, 2, 3, 4, 0xee, 0xee, 0xee, 0xee}), 8);
	assert_int_equal(ctrl_put_u32(out, 0), 4);
	assert_memory_equal(out, ((uint8_t[]){0, 0, 0, 0}), 4);
	assert_int_equal(ctrl_put_u32(out, 0xffffffff), 4);
	assert_memory_equal(out, ((uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xee}), 5);
	assert_int_equal(ctrl_put_u32(out, 0x80000001), 4);
	assert_memory_equal(out, ((uint8_t[]){0x80, 0, 0, 0x01}), 4);
}

static void
test_put_u64(void **state)
{
	uint8_t out[12];

	memset(out, 0xee, sizeof(out));
	assert_int_equal(ctrl_put_u64(out, 0x0102030405060708ull), 8);
	assert_memory_equal(out, ((uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8, 0xee, 0xee, 0xee, 0xee}), 12);
	assert_int_equal(ctrl_put_u64(out, 0xffffffff00000001ull), 8);
	assert_memory_equal(out, ((uint8_t[]){0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xee}), 9);
	assert_int_equal(ctrl_put_u64(out, 0), 8);
	assert_memory_equal(out, ((uint8_t[]){0, 0, 0, 0, 0, 0, 0, 0, 0xee}), 9);
}

/* A request built with ctrl_put_u32/u64 decodes to the same values. */
static void
test_put_then_decode(void **state)
{
	struct ctrl_request req;
	uint8_t buf[20], *copy;
	size_t n = 0;

	n += ctrl_put_u32(buf + n, C_GET_INFO);
	n += ctrl_put_u64(buf + n, 0xfedcba9876543210ull);
	n += ctrl_put_u32(buf + n, 0x00c0ffee);
	n += ctrl_put_u32(buf + n, 0);
	assert_int_equal(n, 20);
	assert_int_equal(decode(buf, n, &req, &copy), 0);
	assert_true(req.u.info.flags == 0xfedcba9876543210ull);
	assert_int_equal(req.u.info.offset, 0x00c0ffee);
	free(copy);
}

static void
test_cmd_name(void **state)
{
	for (size_t c = 0; c < NCOMMANDS; c++)
		assert_string_equal(ctrl_cmd_name(commands[c].cmd), commands[c].name);
	assert_string_equal(ctrl_cmd_name(0), "unknown");
	assert_string_equal(ctrl_cmd_name(0x14), "unknown");
	assert_string_equal(ctrl_cmd_name(0x80000000u), "unknown");
	assert_string_equal(ctrl_cmd_name(0xffffffffu), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_framing_fixed_commands),
	    cmocka_unit_test(test_framing_set_stateblob),
	    cmocka_unit_test(test_framing_hash_data),
	    cmocka_unit_test(test_oversized_set_stateblob),
	    cmocka_unit_test(test_oversized_hash_data),
	    cmocka_unit_test(test_unknown_commands),
	    cmocka_unit_test(test_decode_no_payload),
	    cmocka_unit_test(test_decode_init),
	    cmocka_unit_test(test_decode_locality),
	    cmocka_unit_test(test_decode_buffersize_and_lock_storage),
	    cmocka_unit_test(test_decode_get_stateblob),
	    cmocka_unit_test(test_decode_set_stateblob),
	    cmocka_unit_test(test_decode_hash_data),
	    cmocka_unit_test(test_decode_get_info),
	    cmocka_unit_test(test_decode_truncated),
	    cmocka_unit_test(test_size_and_decode_agree),
	    cmocka_unit_test(test_put_u32),
	    cmocka_unit_test(test_put_u64),
	    cmocka_unit_test(test_put_then_decode),
	    cmocka_unit_test(test_cmd_name),
	};

	/* Unbuffered, so that cmocka's stdout and stderr lines stay in order. */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
