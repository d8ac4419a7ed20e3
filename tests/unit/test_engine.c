/*
 * test_engine.c: the TPM engine (src/instance/engine.c) over the real
 * libtpms, which is in-process and fast, with its state kept by the test
 * (an in-memory engine_io that counts every call and can be made to fail):
 *
 * - a TPM 2.0 (and 1.2) with no state is manufactured at power-on, and its
 *   permanent state is saved through the io;
 * - commands run, and one that changes persistent state (NV_DefineSpace)
 *   saves it; a save that fails fails the command (and libtpms stays in
 *   failure mode until the next power cycle);
 * - power off and on again resumes that state (the NV index is still
 *   there), which a fresh TPM does not have;
 * - a read failure of existing state (not "absent") and a corrupt blob
 *   refuse power-on: a blank TPM never replaces state that cannot be read;
 * - state blobs out (engine_get_state) and in (engine_set_state), the
 *   volatile snapshot (engine_store_volatile), the locality the io reports,
 *   and the buffer-size limits.
 *
 * libtpms keeps one TPM per process: every test selects the engine afresh
 * and powers it off in its teardown. A test whose power-on fails ends with
 * one that succeeds: after a failed TPMLIB_MainInit, libtpms refuses to
 * choose a TPM version again until a later one succeeds.
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

/* TPM 2.0 numbers used here, from the specification (Part 2). */
#define RC_SUCCESS       0x000
#define RC_INITIALIZE    0x100
#define RC_FAILURE       0x101
#define RC_LOCALITY      0x907
#define RC_HANDLE_1      0x18b /* TPM_RC_HANDLE, handle 1 */
#define CC_NV_DEFINE     0x12a
#define CC_PCR_RESET     0x13d
#define CC_STARTUP       0x144
#define CC_GET_RANDOM    0x17b
#define CC_NV_READPUBLIC 0x169
#define RH_OWNER         0x40000001
#define RS_PW            0x40000009
#define NV_INDEX         0x01500042

/* The test's state store: one blob per kind, with call counts. */
struct mem {
	uint8_t *blob[4];
	size_t len[4];
	int loads[4], saves[4], removes[4];
	bool fail_save; /* save returns -1 */
	bool fail_load; /* load returns -1 without "absent": a read error */
	uint8_t locality;
};

static struct mem mem;

static int
mem_load(void *ctx, enum state_kind kind, uint8_t **blob, size_t *len, bool *absent)
{
	struct mem *m = ctx;

	m->loads[kind]++;
	if (m->fail_load)
		return -1;
	if (m->blob[kind] == NULL) {
		*absent = true;
		return -1;
	}
	*blob = malloc(m->len[kind] + 1);
	assert_non_null(*blob);
	memcpy(*blob, m->blob[kind], m->len[kind]);
	*len = m->len[kind];
	return 0;
}

static void
mem_put(struct mem *m, enum state_kind kind, const uint8_t *blob, size_t len)
{
	free(m->blob[kind]);
	m->blob[kind] = malloc(len + 1);
	assert_non_null(m->blob[kind]);
	memcpy(m->blob[kind], blob, len);
	m->len[kind] = len;
}

static int
mem_save(void *ctx, enum state_kind kind, const uint8_t *blob, size_t len)
{
	struct mem *m = ctx;

	m->saves[kind]++;
	if (m->fail_save)
		return -1;
	mem_put(m, kind, blob, len);
	return 0;
}

static int
mem_remove(void *ctx, enum state_kind kind)
{
	struct mem *m = ctx;

	m->removes[kind]++;
	free(m->blob[kind]);
	m->blob[kind] = NULL;
	m->len[kind] = 0;
	return 0;
}

static uint8_t
mem_locality(void *ctx)
{
	return ((struct mem *)ctx)->locality;
}

static const struct engine_io mem_io = {
    .ctx = &mem,
    .load = mem_load,
    .save = mem_save,
    .remove = mem_remove,
    .locality = mem_locality,
};

static void
mem_clear(void)
{
	for (int k = 0; k < 4; k++)
		free(mem.blob[k]);
	memset(&mem, 0, sizeof(mem));
}

static int
setup2(void **state)
{
	mem_clear();
	return engine_select(2, &mem_io);
}

static int
setup12(void **state)
{
	mem_clear();
	return engine_select(1, &mem_io);
}

static int
teardown(void **state)
{
	engine_power_off();
	mem_clear();
	return 0;
}

/* ---- TPM 2.0 commands, marshalled by hand ---- */

struct cmd {
	uint8_t b[128];
	size_t n;
};

static void
put16(struct cmd *c, uint16_t v)
{
	c->b[c->n++] = (uint8_t)(v >> 8);
	c->b[c->n++] = (uint8_t)v;
}

static void
put32(struct cmd *c, uint32_t v)
{
	put16(c, (uint16_t)(v >> 16));
	put16(c, (uint16_t)v);
}

static void
cmd_begin(struct cmd *c, uint16_t tag, uint32_t code)
{
	c->n = 0;
	put16(c, tag);
	put32(c, 0); /* size, set by cmd_end */
	put32(c, code);
}

static void
cmd_end(struct cmd *c)
{
	c->b[2] = (uint8_t)(c->n >> 24);
	c->b[3] = (uint8_t)(c->n >> 16);
	c->b[4] = (uint8_t)(c->n >> 8);
	c->b[5] = (uint8_t)c->n;
}

/* One empty password session (TPM_RS_PW). */
static void
put_pw_session(struct cmd *c)
{
	put32(c, 9);
	put32(c, RS_PW);
	put16(c, 0);      /* nonce */
	c->b[c->n++] = 0; /* attributes */
	put16(c, 0);      /* hmac */
}

static uint32_t
rsp_code(const uint8_t *rsp, size_t len)
{
	struct tpm_header h;

	assert_int_equal(tpmwire_header(rsp, len, &h), 0);
	assert_int_equal(h.size, len);
	return h.code;
}

/* Runs c and returns its response code. */
static uint32_t
run(const struct cmd *c)
{
	const uint8_t *rsp;
	size_t len;

	assert_int_equal(engine_process(c->b, c->n, &rsp, &len), 0);
	return rsp_code(rsp, len);
}

static uint32_t
startup(uint16_t type)
{
	struct cmd c;

	cmd_begin(&c, 0x8001, CC_STARTUP);
	put16(&c, type);
	cmd_end(&c);
	return run(&c);
}

static uint32_t
nv_define(uint32_t index)
{
	struct cmd c;

	cmd_begin(&c, 0x8002, CC_NV_DEFINE);
	put32(&c, RH_OWNER);
	put_pw_session(&c);
	put16(&c, 0);  /* auth */
	put16(&c, 14); /* TPM2B_NV_PUBLIC */
	put32(&c, index);
	put16(&c, 0x000b);     /* sha256 */
	put32(&c, 0x02020002); /* OWNERWRITE | OWNERREAD | NO_DA */
	put16(&c, 0);          /* authPolicy */
	put16(&c, 8);          /* dataSize */
	cmd_end(&c);
	return run(&c);
}

static uint32_t
nv_read_public(uint32_t index)
{
	struct cmd c;

	cmd_begin(&c, 0x8001, CC_NV_READPUBLIC);
	put32(&c, index);
	cmd_end(&c);
	return run(&c);
}

static uint32_t
pcr_reset(uint32_t pcr)
{
	struct cmd c;

	cmd_begin(&c, 0x8002, CC_PCR_RESET);
	put32(&c, pcr);
	put_pw_session(&c);
	cmd_end(&c);
	return run(&c);
}

/* Powers on (manufacturing when there is no state) and starts the TPM. */
static void
power_on_started(void)
{
	assert_int_equal(engine_power_on(), 0);
	assert_true(engine_is_on());
	assert_int_equal(startup(0x0000), RC_SUCCESS);
}

/* ---- tests ---- */

static void
test_manufacture(void **state)
{
	const uint8_t *rsp;
	struct cmd c;
	size_t len;

	assert_false(engine_is_on());
	assert_int_equal(engine_power_on(), 0);
	assert_true(engine_is_on());
	/* It asked for its permanent state, found none, made a TPM and
	 * saved it. */
	assert_true(mem.loads[STATE_PERMANENT] >= 1);
	assert_true(mem.saves[STATE_PERMANENT] >= 1);
	assert_non_null(mem.blob[STATE_PERMANENT]);
	assert_true(mem.len[STATE_PERMANENT] > 100);
	/* A second power-on of a running engine changes nothing. */
	assert_int_equal(engine_power_on(), 0);

	/* Not started yet: TPM_RC_INITIALIZE; then it answers. */
	cmd_begin(&c, 0x8001, CC_GET_RANDOM);
	put16(&c, 8);
	cmd_end(&c);
	assert_int_equal(run(&c), RC_INITIALIZE);
	assert_int_equal(startup(0x0000), RC_SUCCESS);
	assert_int_equal(engine_process(c.b, c.n, &rsp, &len), 0);
	assert_int_equal(rsp_code(rsp, len), RC_SUCCESS);
	assert_int_equal(len, 10 + 2 + 8);
	assert_int_equal(rsp[10] << 8 | rsp[11], 8);

	engine_power_off();
	assert_false(engine_is_on());
	engine_power_off(); /* idempotent */
}

/* State saved through the io is what the next power-on resumes. */
static void
test_state_survives_power_cycle(void **state)
{
	int saves;

	power_on_started();
	assert_int_equal(nv_read_public(NV_INDEX), RC_HANDLE_1);
	saves = mem.saves[STATE_PERMANENT];
	assert_int_equal(nv_define(NV_INDEX), RC_SUCCESS);
	assert_true(mem.saves[STATE_PERMANENT] > saves);
	assert_int_equal(nv_read_public(NV_INDEX), RC_SUCCESS);
	engine_power_off();

	assert_int_equal(engine_power_on(), 0);
	assert_int_equal(startup(0x0000), RC_SUCCESS);
	assert_int_equal(nv_read_public(NV_INDEX), RC_SUCCESS);
	engine_power_off();

	/* Without that state, a new TPM: the index is not there. */
	mem_remove(&mem, STATE_PERMANENT);
	power_on_started();
	assert_int_equal(nv_read_public(NV_INDEX), RC_HANDLE_1);
}

/* A write that fails fails the command that needed it. */
static void
test_save_failure_fails_command(void **state)
{
	power_on_started();
	mem.fail_save = true;
	assert_int_not_equal(nv_define(NV_INDEX), RC_SUCCESS);
	mem.fail_save = false;
	/* libtpms then stays in failure mode until the next power cycle. */
	assert_int_equal(nv_read_public(NV_INDEX), RC_FAILURE);
	engine_power_off();
	/* Nothing of it was kept. */
	power_on_started();
	assert_int_equal(nv_read_public(NV_INDEX), RC_HANDLE_1);
}

/* State that exists but cannot be read is not replaced by a new TPM. */
static void
test_load_failure_refuses_power_on(void **state)
{
	uint8_t *before;
	size_t len;

	power_on_started();
	engine_power_off();
	len = mem.len[STATE_PERMANENT];
	before = malloc(len);
	assert_non_null(before);
	memcpy(before, mem.blob[STATE_PERMANENT], len);

	mem.fail_load = true;
	mem.saves[STATE_PERMANENT] = 0;
	assert_int_equal(engine_power_on(), -1);
	assert_false(engine_is_on());
	assert_int_equal(mem.saves[STATE_PERMANENT], 0);
	mem.fail_load = false;
	assert_int_equal(mem.len[STATE_PERMANENT], len);
	assert_memory_equal(mem.blob[STATE_PERMANENT], before, len);
	free(before);
	/* Once the state reads again, the TPM starts from it. */
	assert_int_equal(engine_power_on(), 0);
	assert_int_equal(startup(0x0000), RC_SUCCESS);
	engine_power_off();
	assert_int_equal(engine_select(2, &mem_io), 0);
}

static void
test_corrupt_blob_refused(void **state)
{
	size_t len;

	power_on_started();
	assert_int_equal(nv_define(NV_INDEX), RC_SUCCESS);
	engine_power_off();
	len = mem.len[STATE_PERMANENT];

	/* Truncated. */
	mem.len[STATE_PERMANENT] = len / 2;
	mem.saves[STATE_PERMANENT] = 0;
	assert_int_equal(engine_power_on(), -1);
	assert_false(engine_is_on());
	assert_int_equal(mem.saves[STATE_PERMANENT], 0);

	/* Its header's magic altered (libtpms checks it; the store's
	 * authentication covers every byte). */
	mem.len[STATE_PERMANENT] = len;
	mem.blob[STATE_PERMANENT][4] ^= 0x5a;
	assert_int_equal(engine_power_on(), -1);
	assert_false(engine_is_on());
	assert_int_equal(mem.saves[STATE_PERMANENT], 0);
	mem.blob[STATE_PERMANENT][4] ^= 0x5a;

	/* Garbage through engine_set_state is refused at once. */
	assert_int_not_equal(
	    engine_set_state(STATE_PERMANENT, (const uint8_t *)"not a TPM state", 15), 0);

	/* The real blob still works. */
	assert_int_equal(engine_power_on(), 0);
	assert_int_equal(startup(0x0000), RC_SUCCESS);
	assert_int_equal(nv_read_public(NV_INDEX), RC_SUCCESS);
}

/* engine_get_state hands out what engine_set_state takes in: a TPM moved
 * by its blob keeps its NV index. */
static void
test_get_set_state(void **state)
{
	uint8_t *blob = NULL, *fresh = NULL;
	size_t len = 0, fresh_len = 0;

	power_on_started();
	assert_int_equal(engine_get_state(STATE_PERMANENT, &fresh, &fresh_len), 0);
	assert_int_equal(nv_define(NV_INDEX), RC_SUCCESS);
	assert_int_equal(engine_get_state(STATE_PERMANENT, &blob, &len), 0);
	assert_non_null(blob);
	assert_true(len > 0);
	/* The running TPM's blob is the one it saved last. */
	assert_int_equal(len, mem.len[STATE_PERMANENT]);
	assert_memory_equal(blob, mem.blob[STATE_PERMANENT], len);
	engine_power_off();

	/* The io holds the state without the index; the blob set wins. */
	mem_put(&mem, STATE_PERMANENT, fresh, fresh_len);
	assert_int_equal(engine_set_state(STATE_PERMANENT, blob, len), 0);
	power_on_started();
	assert_int_equal(nv_read_public(NV_INDEX), RC_SUCCESS);
	free(blob);
	free(fresh);
}

/* The volatile snapshot goes through the io, and a power-on resumes it
 * (Startup(STATE) is then not needed: the TPM is already started). */
static void
test_store_volatile(void **state)
{
	power_on_started();
	assert_int_equal(engine_store_volatile(), 0);
	assert_int_equal(mem.saves[STATE_VOLATILE], 1);
	assert_non_null(mem.blob[STATE_VOLATILE]);
	engine_power_off();

	assert_int_equal(engine_power_on(), 0);
	assert_true(mem.loads[STATE_VOLATILE] >= 1);
	assert_int_equal(nv_read_public(NV_INDEX), RC_HANDLE_1); /* answers: started */

	/* A snapshot that cannot be written is a failure, not a success. */
	mem.fail_save = true;
	assert_int_not_equal(engine_store_volatile(), 0);
	mem.fail_save = false;
}

/* The locality the io reports is the one commands run at: PCR 20 is
 * resettable from locality 2 only (PC Client profile). */
static void
test_locality(void **state)
{
	power_on_started();
	mem.locality = 0;
	assert_int_equal(pcr_reset(20), RC_LOCALITY);
	mem.locality = 2;
	assert_int_equal(pcr_reset(20), RC_SUCCESS);
	mem.locality = 0;
	assert_int_equal(pcr_reset(16), RC_SUCCESS); /* the debug PCR: any locality */
}

static void
test_buffer_size(void **state)
{
	uint32_t min = 0, max = 0, size;
	uint8_t *big;
	const uint8_t *rsp;
	size_t len;

	assert_int_equal(engine_buffer_size(), 4096);
	size = engine_set_buffer_size(0, &min, &max);
	assert_int_equal(size, 4096);
	assert_true(min > 0 && min <= 4096 && max >= 4096);
	/* Requests are clamped to [min, max]. */
	assert_int_equal(engine_set_buffer_size(min + 100, &min, &max), min + 100);
	assert_int_equal(engine_buffer_size(), min + 100);
	assert_int_equal(engine_set_buffer_size(1, &min, &max), min);
	assert_int_equal(engine_set_buffer_size(UINT32_MAX, &min, &max), max);
	assert_int_equal(engine_set_buffer_size(4096, &min, &max), 4096);

	/* A command larger than the buffer gets an error answer, not a crash. */
	power_on_started();
	big = calloc(1, 8192);
	assert_non_null(big);
	big[0] = 0x80;
	big[1] = 0x01;
	big[4] = 0x20; /* size 8192 */
	big[9] = CC_GET_RANDOM & 0xff;
	big[8] = CC_GET_RANDOM >> 8;
	assert_int_equal(engine_process(big, 8192, &rsp, &len), 0);
	assert_int_not_equal(rsp_code(rsp, len), RC_SUCCESS);
	free(big);
}

static void
test_info_and_established(void **state)
{
	char *info;
	bool bit = false;

	info = engine_info(1 /* TPMLIB_INFO_TPMSPECIFICATION */);
	assert_non_null(info);
	assert_non_null(strstr(info, "\"TPMSpecification\""));
	free(info);

	power_on_started();
	mem.locality = 3;
	assert_int_equal(engine_established_reset(), 0);
	assert_int_equal(engine_established_get(&bit), 0);
	assert_false(bit);
	/* A hash sequence at locality 4 (_TPM_Hash_Start ... End) sets it. */
	assert_int_equal(engine_hash_start(), 0);
	assert_int_equal(engine_hash_data((const uint8_t *)"abc", 3), 0);
	assert_int_equal(engine_hash_end(), 0);
	assert_int_equal(engine_established_get(&bit), 0);
	assert_true(bit);
	assert_int_equal(engine_cancel(), 0);
}

/* TPM 1.2: manufactured at power-on as well, and it answers. */
static void
test_tpm12(void **state)
{
	static const uint8_t startup12[] = {0x00, 0xc1, 0, 0, 0, 0x0c, 0, 0, 0, 0x99, 0, 1};
	const uint8_t *rsp;
	size_t len;

	assert_int_equal(engine_power_on(), 0);
	assert_non_null(mem.blob[STATE_PERMANENT]);
	assert_int_equal(engine_process(startup12, sizeof(startup12), &rsp, &len), 0);
	assert_int_equal(len, 10);
	assert_int_equal(rsp[0] << 8 | rsp[1], 0x00c4);
	assert_int_equal(rsp_code(rsp, len), 0);
}

#define T(name)   cmocka_unit_test_setup_teardown(name, setup2, teardown)
#define T12(name) cmocka_unit_test_setup_teardown(name, setup12, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_manufacture),
	    T(test_state_survives_power_cycle),
	    T(test_save_failure_fails_command),
	    T(test_load_failure_refuses_power_on),
	    T(test_corrupt_blob_refused),
	    T(test_get_set_state),
	    T(test_store_volatile),
	    T(test_locality),
	    T(test_buffer_size),
	    T(test_info_and_established),
	    T12(test_tpm12),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	log_init("test_engine", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
