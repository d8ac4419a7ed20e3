/*
 * test_instance.c: the vTPM worker's loop and channels (src/instance/:
 * instance.c, conn.c, instance_power.c, instance_ctrl.c) over a real libtpms
 * engine, in three parts.
 *
 * - The control handlers (instance_ctrl_dispatch) and the data path
 *   (instance_tpm_command) of an instance built here, its channels
 *   socketpairs whose far ends the test reads: every command's answer
 *   layout, power on/off (STOP is an orderly Shutdown(STATE) unless the
 *   guest just sent one), the locality the engine sees, state blobs in and
 *   out, the volatile-state rules (a snapshot is for the power-on that
 *   directly follows it; a guest command supersedes it), descriptors passed
 *   with SET_DATAFD or with anything else.
 * - A connection's buffer and its send deadline (conn.c): a reader that
 *   never reads, one that takes a little at a time, one that keeps up. The
 *   clock and poll() are faked at link time (WRAP_test_instance in the
 *   Makefile: mono_ms, poll), so the 5 s bound is checked exactly and
 *   without waiting; engine_process is wrapped to count the engine's
 *   commands and to make it fail.
 * - The loop itself: `vtpmd instance` (instance_main) run in a forked child
 *   on unix sockets in a fresh mkdtemp directory, waited for through
 *   --ready-fd: framing of partial, pipelined and mis-sized TPM commands,
 *   SET_LOCALITY with and without QEMU's padding, oversized and unknown
 *   control requests, the I/O timeout of a partial request (and none for
 *   silence), the line of waiting clients, QEMU's SET_DATAFD mode, state
 *   kept across restarts, and refusal of unreadable state or a busy
 *   directory. Whether the loop has looked at bytes already written is
 *   learnt from a control-channel round trip (the loop reads the data
 *   channel first), never from a sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "instance/instance.h"

/* The swtpm control commands (tpm_ioctl.h), written out so that a drift
 * is caught, and the TPM 1.2 result codes the protocol answers with. */
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
#define R_SUCCESS            0
#define R_BAD_PARAMETER      3
#define R_FAIL               9
#define R_BAD_ORDINAL        10
#define R_BAD_LOCALITY       61
#define R_RETRY              0x800
#define CAP_SET_DATAFD       (1u << 12)
#define CAP_LOCK_STORAGE     (1u << 16)
#define BLOB_PERMANENT       1
#define BLOB_VOLATILE        2
#define STATE_FLAG_ENCRYPTED 2
#define INIT_DELETE_VOLATILE 1

/* TPM 2.0 numbers (Part 2). */
#define RC_SUCCESS       0x000
#define RC_INITIALIZE    0x100
#define RC_FAILURE       0x101
#define RC_COMMAND_SIZE  0x142
#define RC_LOCALITY      0x907
#define RC_NV_RATE       0x920
#define RC_HANDLE_1      0x18b
#define CC_NV_DEFINE     0x12a
#define CC_PCR_RESET     0x13d
#define CC_STARTUP       0x144
#define CC_SHUTDOWN      0x145
#define CC_NV_READPUBLIC 0x169
#define CC_GET_RANDOM    0x17b
#define NV_INDEX         0x01500042

#define IO_TIMEOUT_MS 250 /* --io-timeout of the instance that tests it */

static const uint8_t key[STATE_KEY_LEN] = {0x5e, 0xc2, 0xe7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29};

/* ---- link-time fakes: a clock and poll() for conn_send, a counted engine ---- */

int64_t __real_mono_ms(void);
int64_t __wrap_mono_ms(void);
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __real_engine_process(const uint8_t *cmd, size_t cmd_len, const uint8_t **rsp, size_t *rsp_len);
int __wrap_engine_process(const uint8_t *cmd, size_t cmd_len, const uint8_t **rsp, size_t *rsp_len);

static struct {
	bool on;              /* else mono_ms and poll are the real ones */
	int64_t now;          /* the fake clock, ms */
	int64_t step;         /* the reader's pace: it reads every step ms */
	int polls;            /* calls of poll */
	int bad_timeouts;     /* polls asked to wait < 0 or more than 5 s */
	int reader;           /* the peer poll lets read, or -1: a peer that never reads */
	size_t read_per_poll; /* what that peer takes each time */
	size_t taken;         /* bytes it took in all */
	uint8_t *sink;        /* where they went */
	size_t sink_cap;
} clk;

static int engine_calls;   /* engine_process calls */
static bool engine_broken; /* engine_process fails */

int64_t
__wrap_mono_ms(void)
{
	return clk.on ? clk.now : __real_mono_ms();
}

/* The peer (clk.reader) reads read_per_poll bytes every clk.step ms of the
 * fake clock: returns as soon as a descriptor is ready, or 0 once timeout
 * ms have passed, as poll does. */
int
__wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int64_t waited = 0, adv;
	size_t want;
	ssize_t got;
	int r;

	if (!clk.on)
		return __real_poll(fds, n, timeout);
	clk.polls++;
	if (timeout < 0 || timeout > 5000)
		clk.bad_timeouts++;
	for (;;) {
		if ((r = __real_poll(fds, n, 0)) != 0)
			return r;
		if (waited >= timeout)
			return 0;
		adv = timeout - waited < clk.step ? timeout - waited : clk.step;
		clk.now += adv;
		waited += adv;
		for (want = clk.read_per_poll; clk.reader != -1 && want > 0; want -= (size_t)got) {
			if (clk.taken + want > clk.sink_cap)
				want = clk.sink_cap - clk.taken;
			got = recv(clk.reader, clk.sink + clk.taken, want, MSG_DONTWAIT);
			if (got <= 0)
				break;
			clk.taken += (size_t)got;
		}
	}
}

int
__wrap_engine_process(const uint8_t *cmd, size_t cmd_len, const uint8_t **rsp, size_t *rsp_len)
{
	engine_calls++;
	if (engine_broken)
		return -1;
	return __real_engine_process(cmd, cmd_len, rsp, rsp_len);
}

/* ---- helpers ---- */

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* Reads exactly n bytes (the peer has SO_RCVTIMEO: a missing answer fails). */
static void
read_exact(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	ssize_t got;

	while (n > 0) {
		got = recv(fd, p, n, 0);
		if (got <= 0)
			fail_msg("expected %zu more bytes, recv: %zd (%s)", n, got,
			    got == 0 ? "end of stream" : strerror(errno));
		p += got;
		n -= (size_t)got;
	}
}

/* Nothing more is waiting on fd: an answer had exactly the length read. */
static void
expect_nothing(int fd)
{
	uint8_t b;

	errno = 0;
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The far end closed fd's connection (after any bytes still unread). */
static void
expect_eof(int fd)
{
	uint8_t b[64];
	ssize_t got;

	while ((got = recv(fd, b, sizeof(b), 0)) > 0)
		;
	if (got != 0 && errno != ECONNRESET)
		fail_msg("expected the connection closed, recv: %s", strerror(errno));
}

static void
send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			fail_msg("send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Sends buf with descriptor fd beside it (SCM_RIGHTS). */
static void
send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_control = cbuf.space;
	msg.msg_controllen = sizeof(cbuf.space);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* A control request: the command and its payload. */
struct creq {
	uint8_t b[64];
	size_t n;
};

static struct creq
creq(uint32_t cmd, const uint8_t *payload, size_t len)
{
	struct creq r = {.n = 4 + len};

	put32(r.b, cmd);
	if (len > 0)
		memcpy(r.b + 4, payload, len);
	return r;
}

static struct creq
creq_u32(uint32_t cmd, uint32_t v)
{
	uint8_t p[4];

	put32(p, v);
	return creq(cmd, p, 4);
}

/* A TPM 2.0 command, marshalled by hand. */
struct cmd {
	uint8_t b[128];
	size_t n;
};

static void
cmd_put(struct cmd *c, uint32_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		c->b[c->n++] = (uint8_t)(v >> (8 * i));
}

static struct cmd
cmd_begin(uint16_t tag, uint32_t code)
{
	struct cmd c = {.n = 0};

	cmd_put(&c, tag, 2);
	cmd_put(&c, 0, 4);
	cmd_put(&c, code, 4);
	return c;
}

static struct cmd
cmd_end(struct cmd c)
{
	put32(c.b + 2, (uint32_t)c.n);
	return c;
}

static void
cmd_pw_session(struct cmd *c)
{
	cmd_put(c, 9, 4);
	cmd_put(c, 0x40000009, 4); /* TPM_RS_PW */
	cmd_put(c, 0, 2);
	cmd_put(c, 0, 1);
	cmd_put(c, 0, 2);
}

static struct cmd
tpm_startup(uint16_t type)
{
	struct cmd c = cmd_begin(0x8001, CC_STARTUP);

	cmd_put(&c, type, 2);
	return cmd_end(c);
}

static struct cmd
tpm_shutdown(uint16_t type)
{
	struct cmd c = cmd_begin(0x8001, CC_SHUTDOWN);

	cmd_put(&c, type, 2);
	return cmd_end(c);
}

static struct cmd
tpm_get_random(uint16_t n)
{
	struct cmd c = cmd_begin(0x8001, CC_GET_RANDOM);

	cmd_put(&c, n, 2);
	return cmd_end(c);
}

static struct cmd
tpm_nv_read_public(uint32_t index)
{
	struct cmd c = cmd_begin(0x8001, CC_NV_READPUBLIC);

	cmd_put(&c, index, 4);
	return cmd_end(c);
}

static struct cmd
tpm_nv_define(uint32_t index)
{
	struct cmd c = cmd_begin(0x8002, CC_NV_DEFINE);

	cmd_put(&c, 0x40000001, 4); /* TPM_RH_OWNER */
	cmd_pw_session(&c);
	cmd_put(&c, 0, 2);  /* auth */
	cmd_put(&c, 14, 2); /* TPM2B_NV_PUBLIC */
	cmd_put(&c, index, 4);
	cmd_put(&c, 0x000b, 2);     /* sha256 */
	cmd_put(&c, 0x02020002, 4); /* OWNERWRITE | OWNERREAD | NO_DA */
	cmd_put(&c, 0, 2);          /* authPolicy */
	cmd_put(&c, 8, 2);          /* dataSize */
	return cmd_end(c);
}

static struct cmd
tpm_pcr_reset(uint32_t pcr)
{
	struct cmd c = cmd_begin(0x8002, CC_PCR_RESET);

	cmd_put(&c, pcr, 4);
	cmd_pw_session(&c);
	return cmd_end(c);
}

/* Reads one TPM response from fd; returns its code (and its length). */
static uint32_t
read_response(int fd, size_t *len)
{
	uint8_t buf[4096];
	uint32_t size;

	read_exact(fd, buf, 10);
	size = get32(buf + 2);
	assert_true(size >= 10 && size <= sizeof(buf));
	read_exact(fd, buf + 10, size - 10);
	if (len != NULL)
		*len = size;
	return get32(buf + 6);
}

/* ==== part 1: the handlers, over socketpairs ==== */

/* The blob key of the fixture's instance: its UUID, its host's key id. */
static const uint8_t blob_key[STATE_KEY_LEN] = {0xb1, 0x0b, 1, 2, 3};
static const uint8_t uuid_a[STATEBLOB_UUID_LEN] = {0xaa, 0xaa, 1};
static const uint8_t uuid_b[STATEBLOB_UUID_LEN] = {0xbb, 0xbb, 2};
static const uint8_t host_a[STATEBLOB_KEY_ID_LEN] = {0x4a};
static const uint8_t host_b[STATEBLOB_KEY_ID_LEN] = {0x4b};

struct fx {
	char root[64], dir[96], path[160];
	struct instance in;
	int ctrl_peer, data_peer; /* the test's ends */
};

/* Gives the instance a fresh socketpair on c; returns the test's end. */
static int
attach(struct conn *c)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	set_rcvtimeo(sv[1], 3000);
	c->fd = sv[0];
	c->is_unix = true;
	c->passed_fd = -1;
	c->len = 0;
	return sv[1];
}

static int
setup_with(void **state, const uint8_t *k)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err err;

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-instance.XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/state", f->root);
	f->in.name = "test";
	f->in.tpm_version = 2;
	f->in.ctrl_listen = f->in.data_listen = -1;
	f->in.store = store_open(f->dir, k, 2, &err);
	if (f->in.store == NULL)
		return -1;
	if (k != NULL) {
		/* As vtpmd's workers get it: a host key's record for a UUID. */
		f->in.blob_key = calloc(1, sizeof(*f->in.blob_key));
		if (f->in.blob_key == NULL)
			return -1;
		memcpy(f->in.blob_key->key, blob_key, sizeof(blob_key));
		memcpy(f->in.blob_key->uuid, uuid_a, sizeof(uuid_a));
		memcpy(f->in.blob_key->key_id, host_a, sizeof(host_a));
		f->in.blob_key->source = STATEBLOB_SOURCE_HOST;
	}
	f->ctrl_peer = attach(&f->in.ctrl);
	f->data_peer = attach(&f->in.data);
	engine_calls = 0;
	engine_broken = false;
	memset(&clk, 0, sizeof(clk));
	clk.reader = -1;
	*state = f;
	return instance_engine_select(&f->in);
}

static int
setup(void **state)
{
	return setup_with(state, key);
}

static int
setup_plaintext(void **state)
{
	return setup_with(state, NULL);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	uint32_t min, max;
	int ret;

	clk.on = false;
	engine_broken = false;
	instance_power_off(&f->in);
	engine_set_buffer_size(4096, &min, &max);
	conn_close(&f->in.ctrl);
	conn_close(&f->in.data);
	free(f->in.ctrl.buf);
	free(f->in.data.buf);
	free(f->in.cache);
	free(f->in.blob_key);
	free(f->in.wrapped);
	store_close(f->in.store);
	close(f->ctrl_peer);
	if (f->data_peer != -1)
		close(f->data_peer);
	ret = nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

static const char *
file(struct fx *f, const char *name)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
	return f->path;
}

static bool
exists(struct fx *f, const char *name)
{
	struct stat sb;

	return stat(file(f, name), &sb) == 0;
}

/* Frames, decodes and dispatches one control request, as the loop does. */
static bool
dispatch(struct fx *f, struct creq r)
{
	struct ctrl_request req;
	size_t need;

	assert_int_equal(ctrl_request_size(r.b, r.n, &need), CTRL_COMPLETE);
	assert_int_equal(need, r.n);
	(void)ctrl_decode(r.b, r.n, &req);
	return instance_ctrl_dispatch(&f->in, &req);
}

/* Dispatches r and returns the bare result it was answered with. */
static uint32_t
ctrl_call(struct fx *f, struct creq r)
{
	uint8_t out[4];

	assert_true(dispatch(f, r));
	read_exact(f->ctrl_peer, out, 4);
	expect_nothing(f->ctrl_peer);
	return get32(out);
}

/* Runs c on the data channel and returns the answer's code. */
static uint32_t
tpm_call(struct fx *f, struct cmd c)
{
	uint32_t rc;

	instance_tpm_command(&f->in, c.b, c.n);
	rc = read_response(f->data_peer, NULL);
	expect_nothing(f->data_peer);
	return rc;
}

/* INIT, then Startup(CLEAR). */
static void
power_on(struct fx *f)
{
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_true(engine_is_on());
	assert_int_equal(tpm_call(f, tpm_startup(0)), RC_SUCCESS);
}

static void
test_capability(void **state)
{
	struct fx *f = *state;
	uint8_t out[8];
	uint64_t caps;

	assert_true(dispatch(f, creq(C_GET_CAPABILITY, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	expect_nothing(f->ctrl_peer);
	caps = (uint64_t)get32(out) << 32 | get32(out + 4);
	assert_true(caps & CAP_SET_DATAFD);
	assert_true(caps & CAP_LOCK_STORAGE);
	assert_true(caps & 1); /* INIT */
	/* Descriptors travel only on unix sockets. */
	f->in.ctrl.is_unix = false;
	assert_true(dispatch(f, creq(C_GET_CAPABILITY, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	caps = (uint64_t)get32(out) << 32 | get32(out + 4);
	assert_false(caps & CAP_SET_DATAFD);
	assert_int_equal(ctrl_call(f, creq_u32(C_LOCK_STORAGE, 3)), R_SUCCESS);
}

/* Before INIT: a bare TPM_RC_FAILURE on the data channel (QEMU's probe),
 * TPM_BAD_ORDINAL for what needs a running TPM. */
static void
test_before_init(void **state)
{
	struct fx *f = *state;
	struct cmd c = tpm_get_random(8);
	uint8_t out[10];
	uint8_t loc[1] = {3};

	instance_tpm_command(&f->in, c.b, c.n);
	read_exact(f->data_peer, out, 10);
	expect_nothing(f->data_peer);
	assert_int_equal(out[0] << 8 | out[1], 0x8001);
	assert_int_equal(get32(out + 2), 10);
	assert_int_equal(get32(out + 6), RC_FAILURE);
	assert_int_equal(engine_calls, 0);

	assert_int_equal(ctrl_call(f, creq(C_HASH_START, NULL, 0)), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq_u32(C_HASH_DATA, 0)), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq(C_HASH_END, NULL, 0)), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq(C_CANCEL_TPM_CMD, NULL, 0)), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq(C_RESET_TPMESTABLISHED, loc, 1)), R_BAD_ORDINAL);
	assert_true(dispatch(f, creq(C_GET_TPMESTABLISHED, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	assert_int_equal(get32(out), R_BAD_ORDINAL);
	/* STOP of a TPM that is off is fine and touches nothing. */
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_false(exists(f, "permanent.state"));
}

static void
test_init_manufactures(void **state)
{
	struct fx *f = *state;
	size_t len;

	assert_false(exists(f, "permanent.state"));
	power_on(f);
	/* The new TPM's state is on disk, encrypted under the key. */
	assert_true(exists(f, "permanent.state"));
	instance_tpm_command(&f->in, tpm_get_random(16).b, tpm_get_random(16).n);
	assert_int_equal(read_response(f->data_peer, &len), RC_SUCCESS);
	assert_int_equal(len, 10 + 2 + 16);
}

/* STOP tells the TPM first (Shutdown(STATE)), so the next Startup(STATE)
 * resumes; after the guest's own Shutdown it sends none of its own. A TPM
 * powered off without one cannot resume. */
static void
test_stop_is_orderly(void **state)
{
	struct fx *f = *state;

	power_on(f);
	engine_calls = 0;
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_false(engine_is_on());
	assert_int_equal(engine_calls, 1);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_startup(1)), RC_SUCCESS);

	assert_int_equal(tpm_call(f, tpm_shutdown(1)), RC_SUCCESS);
	engine_calls = 0;
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(engine_calls, 0);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_startup(1)), RC_SUCCESS);

	/* Without the shutdown (a crash), Startup(STATE) is refused. */
	engine_power_off();
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_not_equal(tpm_call(f, tpm_startup(1)), RC_SUCCESS);
}

/* SET_LOCALITY is what the engine sees: PCR 20 resets from locality 2. */
static void
test_set_locality(void **state)
{
	struct fx *f = *state;
	uint8_t two[1] = {2}, five[1] = {5}, zero[1] = {0};

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_SET_LOCALITY, five, 1)), R_BAD_LOCALITY);
	assert_int_equal(f->in.locality, 0);
	assert_int_equal(tpm_call(f, tpm_pcr_reset(20)), RC_LOCALITY);
	assert_int_equal(ctrl_call(f, creq(C_SET_LOCALITY, two, 1)), R_SUCCESS);
	assert_int_equal(f->in.locality, 2);
	assert_int_equal(tpm_call(f, tpm_pcr_reset(20)), RC_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_SET_LOCALITY, zero, 1)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_pcr_reset(20)), RC_LOCALITY);
}

/* A hash sequence sets the established bit; RESET_TPMESTABLISHED clears
 * it from locality 3 and leaves the instance's locality as it was. */
static void
test_hash_and_established(void **state)
{
	struct fx *f = *state;
	uint8_t data[8 + 3], out[8];
	uint8_t three[1] = {3}, seven[1] = {7};
	struct creq r;

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_RESET_TPMESTABLISHED, three, 1)), R_SUCCESS);
	assert_int_equal(f->in.locality, 0);
	assert_true(dispatch(f, creq(C_GET_TPMESTABLISHED, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	assert_int_equal(get32(out), R_SUCCESS);
	assert_int_equal(out[4], 0);

	f->in.orderly = true;
	assert_int_equal(ctrl_call(f, creq(C_HASH_START, NULL, 0)), R_SUCCESS);
	assert_false(f->in.orderly);
	put32(data, C_HASH_DATA);
	put32(data + 4, 3);
	memcpy(data + 8, "abc", 3);
	r.n = sizeof(data);
	memcpy(r.b, data, sizeof(data));
	assert_int_equal(ctrl_call(f, r), R_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_HASH_END, NULL, 0)), R_SUCCESS);
	assert_true(dispatch(f, creq(C_GET_TPMESTABLISHED, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	assert_int_equal(get32(out), R_SUCCESS);
	assert_int_equal(out[4], 1);

	assert_int_equal(ctrl_call(f, creq(C_RESET_TPMESTABLISHED, seven, 1)), R_BAD_LOCALITY);
	assert_int_equal(ctrl_call(f, creq(C_RESET_TPMESTABLISHED, three, 1)), R_SUCCESS);
	assert_true(dispatch(f, creq(C_GET_TPMESTABLISHED, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	assert_int_equal(out[4], 0);
	assert_int_equal(ctrl_call(f, creq(C_CANCEL_TPM_CMD, NULL, 0)), R_SUCCESS);
}

/* GET_STATEBLOB: header (result, flags, total, length) and the blob from
 * offset in one answer. */
static uint8_t *
get_blob(struct fx *f, uint32_t type, uint32_t offset, uint32_t *result, size_t *len)
{
	uint8_t p[12], hdr[16], *blob;

	put32(p, 0);
	put32(p + 4, type);
	put32(p + 8, offset);
	assert_true(dispatch(f, creq(C_GET_STATEBLOB, p, 12)));
	read_exact(f->ctrl_peer, hdr, 16);
	*result = get32(hdr);
	/* wrapped (stateblob.c): never plaintext on the wire */
	assert_int_equal(get32(hdr + 4), *result == R_SUCCESS ? STATE_FLAG_ENCRYPTED : 0);
	assert_int_equal(get32(hdr + 8), get32(hdr + 12));
	*len = get32(hdr + 12);
	blob = malloc(*len + 1);
	assert_non_null(blob);
	read_exact(f->ctrl_peer, blob, *len);
	expect_nothing(f->ctrl_peer);
	return blob;
}

/* SET_STATEBLOB of blob (flags as given) on the control channel. */
static uint32_t
set_blob(struct fx *f, uint32_t type, uint32_t flags, const uint8_t *blob, size_t len)
{
	struct ctrl_request req;
	uint8_t *buf = malloc(16 + len), out[4];
	size_t need;

	assert_non_null(buf);
	put32(buf, C_SET_STATEBLOB);
	put32(buf + 4, flags);
	put32(buf + 8, type);
	put32(buf + 12, (uint32_t)len);
	memcpy(buf + 16, blob, len);
	assert_int_equal(ctrl_request_size(buf, 16 + len, &need), CTRL_COMPLETE);
	assert_int_equal(ctrl_decode(buf, need, &req), 0);
	assert_true(instance_ctrl_dispatch(&f->in, &req));
	free(buf);
	read_exact(f->ctrl_peer, out, 4);
	expect_nothing(f->ctrl_peer);
	return get32(out);
}

static void
expect_stored(struct fx *f, enum state_kind kind, const uint8_t *want, size_t want_len)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	struct err err;

	if (store_get(f->in.store, kind, &blob, &len, &err) != 0)
		fail_msg("store_get: %s", err.msg);
	assert_int_equal(len, want_len);
	assert_memory_equal(blob, want, len);
	free(blob);
}

/* A TPM moved by its permanent blob (out through GET_STATEBLOB, wrapped,
 * in through SET_STATEBLOB while off) keeps its NV index; the blob set is
 * durable, and a later offset continues the same wrapped blob. */
static void
test_stateblob_roundtrip(void **state)
{
	struct fx *f = *state;
	uint8_t *blob, *tail, *empty, *plain = NULL;
	size_t len, tail_len, empty_len, plain_len = 0;
	struct stateblob_info info;
	uint32_t res;

	power_on(f);
	assert_int_equal(tpm_call(f, tpm_nv_define(NV_INDEX)), RC_SUCCESS);
	blob = get_blob(f, BLOB_PERMANENT, 0, &res, &len);
	assert_int_equal(res, R_SUCCESS);
	assert_true(len > 100);
	assert_memory_equal(blob, "VTPMDBL", 8);
	assert_int_equal(stateblob_unwrap(f->in.blob_key, blob, len, &info, &plain, &plain_len),
	    STATEBLOB_OK);
	assert_int_equal(info.kind, STATE_PERMANENT);
	assert_int_equal(info.generation, store_generation(f->in.store, STATE_PERMANENT));
	assert_memory_equal(info.uuid, uuid_a, sizeof(uuid_a));
	assert_memory_equal(info.key_id, host_a, sizeof(host_a));
	/* The payload is the TPM's state, and it is not in the blob in the clear. */
	assert_true(plain_len > 64);
	assert_null(memmem(blob, len, plain + plain_len / 2 - 16, 32));
	free(plain);
	tail = get_blob(f, BLOB_PERMANENT, 100, &res, &tail_len);
	assert_int_equal(res, R_SUCCESS);
	assert_int_equal(tail_len, len - 100);
	assert_memory_equal(tail, blob + 100, tail_len);
	free(tail);
	empty = get_blob(f, BLOB_PERMANENT, (uint32_t)len, &res, &empty_len);
	assert_int_equal(empty_len, 0);
	free(empty);
	empty = get_blob(f, 7, 0, &res, &empty_len);
	assert_int_equal(res, R_BAD_PARAMETER);
	assert_int_equal(empty_len, 0);
	free(empty);

	/* Not while the TPM runs. */
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_BAD_ORDINAL);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);

	/* The blob is restored (the power-off's own write since does not make
	 * it older), stored at once, its generation moved forward; QEMU
	 * echoes the ENCRYPTED flag. */
	res = (uint32_t)store_generation(f->in.store, STATE_PERMANENT);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, STATE_FLAG_ENCRYPTED, blob, len), R_SUCCESS);
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), res + 1);
	power_on(f);
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_SUCCESS);
	free(blob);
}

/* Wraps this instance's permanent state as another would: key, UUID, key
 * id and generation as given. */
static uint8_t *
forge_blob(struct fx *f, const uint8_t *uuid, const uint8_t *host, uint64_t gen, size_t *len)
{
	struct stateblob_key k = *f->in.blob_key;
	uint8_t *plain = NULL, *out = NULL;
	size_t plain_len = 0;
	struct err err;

	memcpy(k.uuid, uuid, STATEBLOB_UUID_LEN);
	memcpy(k.key_id, host, STATEBLOB_KEY_ID_LEN);
	assert_int_equal(store_get(f->in.store, STATE_PERMANENT, &plain, &plain_len, &err), 0);
	assert_int_equal(stateblob_wrap(&k, STATE_PERMANENT, 2, gen, plain, plain_len, &out, len),
	    0);
	free(plain);
	return out;
}

/* Blobs refused, the state on disk left as it was: an unknown type;
 * plaintext TPM state; junk; a blob of another instance, of another
 * host, of an older generation, altered; a volatile blob older than the
 * permanent one restored. */
static void
test_stateblob_refused(void **state)
{
	struct fx *f = *state;
	const uint8_t junk[] = "this is not a TPM state blob";
	uint8_t *before = NULL, *blob;
	size_t before_len = 0, len;
	uint64_t gen;
	struct err err;

	power_on(f);
	assert_int_equal(tpm_call(f, tpm_nv_define(NV_INDEX)), RC_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(store_get(f->in.store, STATE_PERMANENT, &before, &before_len, &err), 0);
	/* The NV write was the guest's; the power-off's write since is not. */
	gen = store_client_generation(f->in.store, STATE_PERMANENT);
	assert_true(gen > 0);
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), gen + 1);
	assert_int_equal(set_blob(f, 9, 0, junk, sizeof(junk)), R_BAD_PARAMETER);
	assert_int_not_equal(set_blob(f, BLOB_PERMANENT, 0, before, before_len), R_SUCCESS);
	assert_int_not_equal(set_blob(f, BLOB_PERMANENT, 0, junk, sizeof(junk)), R_SUCCESS);

	blob = forge_blob(f, uuid_b, host_a, gen, &len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	free(blob);
	blob = forge_blob(f, uuid_a, host_b, gen, &len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	free(blob);
	blob = forge_blob(f, uuid_a, host_a, gen - 1, &len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	free(blob);
	blob = forge_blob(f, uuid_a, host_a, gen, &len);
	blob[len - 40] ^= 1;
	assert_int_not_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_SUCCESS);
	free(blob);
	expect_stored(f, STATE_PERMANENT, before, before_len);
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), gen + 1);

	/* The permanent blob of generation gen restored: that save's other
	 * blobs may follow, an older one may not. */
	blob = forge_blob(f, uuid_a, host_a, gen, &len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_SUCCESS);
	free(blob);
	assert_true(f->in.restored);
	assert_int_equal(f->in.restored_generation, gen);
	blob = forge_blob(f, uuid_a, host_a, gen - 1, &len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	free(blob);
	free(before);
	power_on(f);
}

/* An older permanent blob loads only as the revert vtpmd permitted
 * (VTCP, an operator's allow-revert): that generation, of permanent state,
 * once; the write is reported as the revert. */
static void
test_stateblob_revert_permit(void **state)
{
	struct fx *f = *state;
	uint8_t *blob, *other;
	size_t len, other_len;
	uint64_t gen, stored;

	power_on(f);
	assert_int_equal(tpm_call(f, tpm_nv_define(NV_INDEX)), RC_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	gen = store_client_generation(f->in.store, STATE_PERMANENT);
	assert_true(gen >= 3);
	blob = forge_blob(f, uuid_a, host_a, gen - 1, &len);
	other = forge_blob(f, uuid_a, host_a, gen - 2, &other_len);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	/* permitted: another generation stays refused, the permit unspent */
	f->in.commit.revert_permit = gen - 1;
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, other, other_len), R_FAIL);
	assert_int_equal(f->in.commit.revert_permit, gen - 1);
	stored = store_generation(f->in.store, STATE_PERMANENT);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_SUCCESS);
	assert_int_equal(f->in.commit.revert_permit, 0);
	assert_false(f->in.commit.revert_write);
	assert_int_equal(f->in.restored_generation, gen - 1);
	/* stored forward, as a client's write */
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), stored + 1);
	assert_int_equal(store_client_generation(f->in.store, STATE_PERMANENT), stored + 1);
	/* spent: after the power-on, the same blob is a rollback again */
	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_FAIL);
	free(blob);
	free(other);
	power_on(f);
}

/*
 * The commit budget (instance_budget.c), at 2 writes a second in bursts of
 * 10, the clock frozen so that the bucket does not refill unless the test
 * moves it: TPM2_Shutdown, a permanent-state write whatever its code, is
 * answered TPM_RC_NV_RATE without running once the bucket is empty;
 * PCR_Reset and GetRandom are not; half a second later one more runs.
 */
static void
test_budget_commands(void **state)
{
	struct fx *f = *state;
	int ok = 0, rated = 0, calls;
	uint32_t rc;

	f->in.nv_rate = 2;
	power_on(f);
	clk.now = __real_mono_ms();
	clk.on = true;
	for (int i = 0; i < 20; i++) {
		rc = tpm_call(f, tpm_shutdown(0));
		if (rc == RC_SUCCESS)
			ok++;
		else if (rc == RC_NV_RATE)
			rated++;
		else
			fail_msg("TPM2_Shutdown answered 0x%x", rc);
	}
	assert_in_range(ok, 5, 10);
	assert_int_equal(ok + rated, 20);
	calls = engine_calls;
	assert_int_equal(tpm_call(f, tpm_shutdown(0)), RC_NV_RATE);
	assert_int_equal(engine_calls, calls); /* not run */
	assert_int_equal(tpm_call(f, tpm_pcr_reset(16)), RC_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_get_random(8)), RC_SUCCESS);
	clk.now += 500;
	assert_int_equal(tpm_call(f, tpm_shutdown(0)), RC_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_shutdown(0)), RC_NV_RATE);
	assert_int_equal(f->in.budget.refused, (unsigned long)rated + 2);
}

/* SET_STATEBLOB of permanent state spends the same budget: beyond it,
 * TPM_RETRY, the state unchanged; once the bucket refilled, taken. */
static void
test_budget_stateblob(void **state)
{
	struct fx *f = *state;
	uint8_t *blob;
	size_t len;
	uint32_t res;
	uint64_t gen;
	int loaded = 0;

	f->in.nv_rate = 2;
	power_on(f);
	blob = get_blob(f, BLOB_PERMANENT, 0, &res, &len);
	assert_int_equal(res, R_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	clk.now = __real_mono_ms();
	clk.on = true;
	while ((res = set_blob(f, BLOB_PERMANENT, 0, blob, len)) == R_SUCCESS && loaded < 20)
		loaded++;
	assert_int_equal(res, R_RETRY);
	assert_in_range(loaded, 5, 10);
	gen = store_generation(f->in.store, STATE_PERMANENT);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_RETRY);
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), gen);
	clk.now += 500;
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, blob, len), R_SUCCESS);
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), gen + 1);
	free(blob);
}

/* An instance with plaintext state has no key to wrap its state with:
 * GET_STATEBLOB and SET_STATEBLOB are refused. */
static void
test_stateblob_plaintext(void **state)
{
	struct fx *f = *state;
	uint8_t *blob, *plain = NULL;
	size_t len, plain_len = 0;
	uint32_t res;
	struct err err;

	power_on(f);
	blob = get_blob(f, BLOB_PERMANENT, 0, &res, &len);
	assert_int_equal(res, R_FAIL);
	assert_int_equal(len, 0);
	free(blob);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(store_get(f->in.store, STATE_PERMANENT, &plain, &plain_len, &err), 0);
	assert_int_equal(set_blob(f, BLOB_PERMANENT, 0, plain, plain_len), R_FAIL);
	free(plain);
	power_on(f);
}

/*
 * The volatile snapshot (STORE_VOLATILE) is for the power-on that directly
 * follows it: INIT resumes it (the TPM is started without Startup), the
 * first guest command removes it, and INIT with DELETE_VOLATILE drops it.
 */
static void
test_volatile_rules(void **state)
{
	struct fx *f = *state;

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_SUCCESS);
	assert_true(exists(f, "volatile.state"));
	assert_true(f->in.volatile_saved);
	/* A guest command supersedes it. */
	assert_int_equal(tpm_call(f, tpm_get_random(4)), RC_SUCCESS);
	assert_false(exists(f, "volatile.state"));
	assert_false(f->in.volatile_saved);

	/* INIT resumes it: the TPM answers without a Startup. */
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_SUCCESS);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_true(exists(f, "volatile.state"));
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_HANDLE_1);
	assert_false(exists(f, "volatile.state"));

	/* INIT with DELETE_VOLATILE (QEMU's, after an incoming migration set
	 * the blob): resumed this once, as swtpm does, and the file removed
	 * so that no later INIT resumes it again. */
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_SUCCESS);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, INIT_DELETE_VOLATILE)), R_SUCCESS);
	assert_false(exists(f, "volatile.state"));
	assert_false(f->in.volatile_saved);
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_HANDLE_1);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_INITIALIZE);
}

/*
 * A volatile blob is valid only while the TPM has run no command since it
 * was taken: set while off it is kept for the next INIT only; once a
 * command ran, it is refused, naming both generations (it would bring back
 * the increments of an orderly NV counter, PCRs: a rollback). Taking it
 * marks the permanent state, and the first command after retires it.
 */
static void
test_volatile_blob(void **state)
{
	struct fx *f = *state;
	uint64_t stamp;
	uint8_t *blob;
	size_t len;
	uint32_t res;

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_SUCCESS);
	assert_true(store_snapshot_out(f->in.store));
	blob = get_blob(f, BLOB_VOLATILE, 0, &res, &len);
	assert_int_equal(res, R_SUCCESS);
	stamp = store_generation(f->in.store, STATE_PERMANENT);

	/* No command since: the blob loads, and INIT resumes it. */
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(set_blob(f, BLOB_VOLATILE, 0, blob, len), R_SUCCESS);
	assert_true(exists(f, "volatile.state"));
	assert_true(f->in.volatile_saved);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_HANDLE_1);
	assert_false(exists(f, "volatile.state"));
	/* That command retired every snapshot taken before it. */
	assert_false(store_snapshot_out(f->in.store));
	assert_true(store_client_generation(f->in.store, STATE_PERMANENT) > stamp);

	/* A command ran since: refused, and nothing changes. */
	assert_int_equal(tpm_call(f, tpm_get_random(4)), RC_SUCCESS);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	stamp = store_generation(f->in.store, STATE_PERMANENT);
	assert_int_equal(set_blob(f, BLOB_VOLATILE, 0, blob, len), R_FAIL);
	assert_false(exists(f, "volatile.state"));
	assert_int_equal(store_generation(f->in.store, STATE_PERMANENT), stamp);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(tpm_call(f, tpm_nv_read_public(NV_INDEX)), RC_INITIALIZE);
	free(blob);
}

/* A volatile file older than the state (put back after the TPM ran a
 * command) does not load at INIT: the power-on fails, the file stays. */
static void
test_volatile_file_old(void **state)
{
	struct fx *f = *state;
	char path[512], saved[512];

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_STORE_VOLATILE, NULL, 0)), R_SUCCESS);
	snprintf(path, sizeof(path), "%s/volatile.state", store_dir(f->in.store));
	snprintf(saved, sizeof(saved), "%s/volatile.old", store_dir(f->in.store));
	assert_int_equal(link(path, saved), 0);
	assert_int_equal(tpm_call(f, tpm_get_random(4)), RC_SUCCESS);
	assert_false(exists(f, "volatile.state"));
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(rename(saved, path), 0);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_FAIL);
	assert_true(exists(f, "volatile.state"));
}

/* GET_CONFIG: FILE_KEY when the state is encrypted under a key. */
static uint32_t
get_config(struct fx *f)
{
	uint8_t out[8];

	assert_true(dispatch(f, creq(C_GET_CONFIG, NULL, 0)));
	read_exact(f->ctrl_peer, out, 8);
	expect_nothing(f->ctrl_peer);
	assert_int_equal(get32(out), R_SUCCESS);
	return get32(out + 4);
}

static void
test_get_config_key(void **state)
{
	assert_int_equal(get_config(*state), 1);
}

static void
test_get_config_plaintext(void **state)
{
	assert_int_equal(get_config(*state), 0);
}

/* SET_DATAFD: the descriptor sent beside the request becomes the data
 * channel, replacing the old one; without one it is refused. */
static void
test_set_datafd(void **state)
{
	struct fx *f = *state;
	uint8_t req[4], out[4];
	struct ctrl_request r;
	int sv[2];

	assert_int_equal(ctrl_call(f, creq(C_SET_DATAFD, NULL, 0)), R_BAD_PARAMETER);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_rcvtimeo(sv[1], 3000);
	put32(req, C_SET_DATAFD);
	send_with_fd(f->ctrl_peer, req, 4, sv[0]);
	close(sv[0]);
	assert_int_equal(conn_fill(&f->in.ctrl, 4096), 4);
	assert_int_not_equal(f->in.ctrl.passed_fd, -1);
	assert_int_equal(ctrl_decode(f->in.ctrl.buf, f->in.ctrl.len, &r), 0);
	assert_true(instance_ctrl_dispatch(&f->in, &r));
	read_exact(f->ctrl_peer, out, 4);
	assert_int_equal(get32(out), R_SUCCESS);
	assert_int_equal(f->in.ctrl.passed_fd, -1);
	/* The old channel is closed; the new one carries commands. */
	expect_eof(f->data_peer);
	close(f->data_peer);
	f->data_peer = sv[1];
	power_on(f);
	assert_int_equal(tpm_call(f, tpm_get_random(4)), RC_SUCCESS);
}

/* A descriptor sent with any other request is closed, not kept. */
static void
test_stray_fd_dropped(void **state)
{
	struct fx *f = *state;
	uint8_t req[4], out[8];
	struct ctrl_request r;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_rcvtimeo(sv[1], 3000);
	put32(req, C_GET_CAPABILITY);
	send_with_fd(f->ctrl_peer, req, 4, sv[0]);
	close(sv[0]);
	assert_int_equal(conn_fill(&f->in.ctrl, 4096), 4);
	assert_int_equal(ctrl_decode(f->in.ctrl.buf, f->in.ctrl.len, &r), 0);
	assert_true(instance_ctrl_dispatch(&f->in, &r));
	read_exact(f->ctrl_peer, out, 8);
	assert_int_equal(f->in.ctrl.passed_fd, -1);
	/* Nobody holds the other end any more. */
	expect_eof(sv[1]);
	close(sv[1]);
}

static void
test_unknown_command(void **state)
{
	struct fx *f = *state;
	uint8_t out[4];

	assert_false(dispatch(f, creq(0x77, NULL, 0)));
	read_exact(f->ctrl_peer, out, 4);
	expect_nothing(f->ctrl_peer);
	assert_int_equal(get32(out), R_BAD_ORDINAL);
}

/* SET_BUFFERSIZE: (result, size, min, max); a change only while off. */
static void
set_buffersize(struct fx *f, uint32_t want, uint32_t out[4])
{
	uint8_t b[16];

	assert_true(dispatch(f, creq_u32(C_SET_BUFFERSIZE, want)));
	read_exact(f->ctrl_peer, b, 16);
	expect_nothing(f->ctrl_peer);
	for (int i = 0; i < 4; i++)
		out[i] = get32(b + 4 * i);
}

static void
test_buffersize(void **state)
{
	struct fx *f = *state;
	uint32_t a[4];

	set_buffersize(f, 0, a);
	assert_int_equal(a[0], R_SUCCESS);
	assert_int_equal(a[1], 4096);
	assert_true(a[2] < 3000 && a[3] >= 4096);
	set_buffersize(f, 3000, a);
	assert_int_equal(a[0], R_SUCCESS);
	assert_int_equal(a[1], 3000);
	assert_int_equal(engine_buffer_size(), 3000);
	/* Out of range: clamped. */
	set_buffersize(f, 1, a);
	assert_int_equal(a[1], a[2]);
	set_buffersize(f, 3000, a);
	power_on(f);
	set_buffersize(f, 3500, a);
	assert_int_equal(a[0], R_BAD_ORDINAL);
	assert_int_equal(a[1], 3000);
	assert_int_equal(engine_buffer_size(), 3000);
	set_buffersize(f, 0, a);
	assert_int_equal(a[0], R_SUCCESS);
	assert_int_equal(a[1], 3000);
}

/* GET_INFO: (result, total, length) and the NUL-terminated JSON from
 * offset, in one answer. */
static void
test_get_info(void **state)
{
	struct fx *f = *state;
	uint8_t p[16], hdr[12], out[4];
	char text[4096];
	uint32_t total, n;

	memset(p, 0, sizeof(p));
	p[7] = 1; /* TPMLIB_INFO_TPMSPECIFICATION */
	assert_true(dispatch(f, creq(C_GET_INFO, p, 16)));
	read_exact(f->ctrl_peer, hdr, 12);
	assert_int_equal(get32(hdr), R_SUCCESS);
	total = get32(hdr + 4);
	n = get32(hdr + 8);
	assert_int_equal(n, total);
	assert_true(n > 2 && n < sizeof(text));
	read_exact(f->ctrl_peer, text, n);
	expect_nothing(f->ctrl_peer);
	assert_int_equal(text[n - 1], '\0');
	assert_int_equal(strlen(text), n - 1);
	assert_non_null(strstr(text, "\"TPMSpecification\""));

	put32(p + 8, 5);
	assert_true(dispatch(f, creq(C_GET_INFO, p, 16)));
	read_exact(f->ctrl_peer, hdr, 12);
	assert_int_equal(get32(hdr + 8), total - 5);
	read_exact(f->ctrl_peer, text, total - 5);
	expect_nothing(f->ctrl_peer);

	put32(p + 8, total);
	assert_true(dispatch(f, creq(C_GET_INFO, p, 16)));
	read_exact(f->ctrl_peer, out, 4);
	expect_nothing(f->ctrl_peer);
	assert_int_equal(get32(out), R_BAD_PARAMETER);
}

static void
test_shutdown(void **state)
{
	struct fx *f = *state;

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_SHUTDOWN, NULL, 0)), R_SUCCESS);
	assert_true(f->in.terminate);
	assert_false(engine_is_on());
}

/* An engine that produces no response: the guest gets TPM_RC_FAILURE. */
static void
test_engine_failure_answer(void **state)
{
	struct fx *f = *state;
	size_t len;

	power_on(f);
	engine_broken = true;
	instance_tpm_command(&f->in, tpm_get_random(4).b, tpm_get_random(4).n);
	assert_int_equal(read_response(f->data_peer, &len), RC_FAILURE);
	assert_int_equal(len, 10);
	expect_nothing(f->data_peer);
	engine_broken = false;
	assert_int_equal(tpm_call(f, tpm_get_random(4)), RC_SUCCESS);
}

/* A failed INIT (state that does not load) answers TPM_FAIL. */
static void
test_init_failure(void **state)
{
	struct fx *f = *state;
	static const uint8_t junk[64] = {1};

	power_on(f);
	assert_int_equal(ctrl_call(f, creq(C_STOP, NULL, 0)), R_SUCCESS);
	assert_int_equal(store_put(f->in.store, STATE_PERMANENT, junk, sizeof(junk)), 0);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_FAIL);
	assert_false(engine_is_on());
	/* The state was not replaced by a new TPM's. */
	expect_stored(f, STATE_PERMANENT, junk, sizeof(junk));
	/* Leave libtpms usable for the next test: a TPM that does start. */
	assert_int_equal(store_delete(f->in.store, STATE_PERMANENT), 0);
	assert_int_equal(ctrl_call(f, creq_u32(C_INIT, 0)), R_SUCCESS);
}

/* ==== part 2: a connection's buffer and send deadline ==== */

/* A connection on a socketpair with a small send buffer; *peer is the
 * test's end. */
static struct conn
small_conn(int *peer)
{
	struct conn c = {.fd = -1, .passed_fd = -1};
	int size = 4096;

	*peer = attach(&c);
	assert_int_equal(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
	return c;
}

static uint8_t *
pattern(size_t len)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 8));
	return p;
}

/* A reader that never reads: the answer is given up after exactly 5 s,
 * without a wait longer than what is left, and the connection closed. */
static void
test_send_deadline_no_reader(void **state)
{
	const size_t len = 1 << 20;
	uint8_t *buf = pattern(len);
	struct conn c;
	int peer;

	c = small_conn(&peer);
	clk.on = true;
	clk.now = 1000000;
	clk.step = 1 << 30;
	assert_int_equal(conn_send(&c, buf, len), -1);
	assert_int_equal(c.fd, -1);
	assert_true(clk.now - 1000000 == 5000);
	assert_true(clk.polls >= 1);
	assert_int_equal(clk.bad_timeouts, 0);
	clk.on = false;
	expect_eof(peer);
	close(peer);
	free(buf);
	free(c.buf);
}

/* A reader that takes a little every second makes progress but cannot
 * hold the instance longer than 5 s in all. */
static void
test_send_deadline_slow_reader(void **state)
{
	const size_t len = 1 << 20;
	uint8_t *buf = pattern(len);
	struct conn c;
	int peer;

	c = small_conn(&peer);
	clk.on = true;
	clk.now = 0;
	clk.step = 1000;
	clk.reader = peer;
	clk.read_per_poll = 65536;
	clk.sink_cap = len;
	clk.sink = malloc(len);
	assert_non_null(clk.sink);
	assert_int_equal(conn_send(&c, buf, len), -1);
	assert_int_equal(c.fd, -1);
	assert_true(clk.now == 5000);
	assert_true(clk.polls >= 4); /* woken by progress, time and again */
	assert_int_equal(clk.bad_timeouts, 0);
	assert_true(clk.taken > 0 && clk.taken < len);
	assert_memory_equal(clk.sink, buf, clk.taken);
	clk.on = false;
	close(peer);
	free(clk.sink);
	free(buf);
	free(c.buf);
}

/* A reader that keeps up gets every byte, in order. */
static void
test_send_reader_keeps_up(void **state)
{
	const size_t len = 1 << 20;
	uint8_t *buf = pattern(len);
	struct conn c;
	int peer;

	c = small_conn(&peer);
	clk.on = true;
	clk.step = 10;
	clk.reader = peer;
	clk.read_per_poll = 1 << 20;
	clk.sink_cap = len;
	clk.sink = malloc(len);
	assert_non_null(clk.sink);
	assert_int_equal(conn_send(&c, buf, len), 0);
	assert_int_not_equal(c.fd, -1);
	/* What the last poll left behind is still in the socket. */
	clk.on = false;
	while (clk.taken < len) {
		ssize_t n = recv(peer, clk.sink + clk.taken, len - clk.taken, 0);
		assert_true(n > 0);
		clk.taken += (size_t)n;
	}
	assert_memory_equal(clk.sink, buf, len);
	assert_true(clk.now < 5000);
	conn_close(&c);
	close(peer);
	free(clk.sink);
	free(buf);
	free(c.buf);
}

/* A peer that is gone: -1 at once (no SIGPIPE), the connection closed. */
static void
test_send_to_closed_peer(void **state)
{
	const uint8_t buf[16] = {1};
	struct conn c;
	int peer;

	c = small_conn(&peer);
	close(peer);
	assert_int_equal(conn_send(&c, buf, sizeof(buf)), -1);
	assert_int_equal(c.fd, -1);
	assert_int_equal(conn_send(&c, buf, sizeof(buf)), -1);
	free(c.buf);
}

/* conn_fill appends what is there, keeps it across calls and growth;
 * conn_consume drops from the front. */
static void
test_fill_and_consume(void **state)
{
	uint8_t *data = pattern(20000);
	struct conn c = {.fd = -1, .passed_fd = -1};
	int peer;

	peer = attach(&c);
	errno = 0;
	assert_int_equal(conn_fill(&c, 16), -1);
	assert_int_equal(errno, EAGAIN);
	send_all(peer, data, 10);
	assert_int_equal(conn_fill(&c, 16), 10);
	assert_int_equal(c.len, 10);
	assert_true(c.cap >= 8192);
	send_all(peer, data + 10, 19990);
	/* Room for want more than what is held: the buffer grows. */
	while (c.len < 20000)
		assert_true(conn_fill(&c, 20000) > 0);
	assert_true(c.cap >= 20000);
	assert_memory_equal(c.buf, data, 20000);
	conn_consume(&c, 12345);
	assert_int_equal(c.len, 20000 - 12345);
	assert_memory_equal(c.buf, data + 12345, c.len);
	close(peer);
	assert_int_equal(conn_fill(&c, 16), 0); /* end of stream */
	conn_close(&c);
	assert_int_equal(c.fd, -1);
	assert_int_equal(c.len, 0);
	conn_close(&c); /* twice is harmless */
	free(c.buf);
	free(data);
}

/* ==== part 3: the loop, `vtpmd instance` in a child process ==== */

struct lfx {
	char root[64], state[96], ctrl_path[108], data_path[108], log[96];
	char ctrl_ep[120], data_ep[120];
	pid_t pid;         /* the running instance, or 0 */
	int io_timeout_ms; /* its --io-timeout: 10 s but where a test needs less */
};

static int
lsetup(void **state)
{
	struct lfx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-loop.XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->state, sizeof(f->state), "%s/state", f->root);
	snprintf(f->ctrl_path, sizeof(f->ctrl_path), "%s/c", f->root);
	snprintf(f->data_path, sizeof(f->data_path), "%s/d", f->root);
	snprintf(f->log, sizeof(f->log), "%s/log", f->root);
	snprintf(f->ctrl_ep, sizeof(f->ctrl_ep), "unix:%s", f->ctrl_path);
	snprintf(f->data_ep, sizeof(f->data_ep), "unix:%s", f->data_path);
	f->io_timeout_ms = 10000;
	*state = f;
	return 0;
}

/* Waits at most ms for pid to exit; returns its exit status, 128+signal,
 * or -1 (it was still running: it is killed). */
static int
wait_exit(pid_t pid, int ms)
{
	struct pollfd pfd = {.events = POLLIN};
	int status;

	pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(pfd.fd >= 0);
	if (poll(&pfd, 1, ms) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pfd.fd);
		return -1;
	}
	close(pfd.fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int
lteardown(void **state)
{
	struct lfx *f = *state;
	int ret;

	if (f->pid > 0)
		(void)wait_exit(f->pid, 0);
	ret = nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

static void
print_log(const struct lfx *f)
{
	char buf[4096];
	FILE *fp = fopen(f->log, "r");
	size_t n;

	if (fp == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	fprintf(stderr, "instance log:\n%s", buf);
}

static bool
log_has(const struct lfx *f, const char *what)
{
	char buf[16384];
	FILE *fp = fopen(f->log, "r");
	size_t n;

	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return strstr(buf, what) != NULL;
}

/*
 * Starts `vtpmd instance` (this program run afresh as `test_instance
 * instance ...`, which main hands to instance_main: a clean process, as a
 * worker is) on f's sockets and state (with --data and
 * --startup clear when data, else QEMU's mode) with the state key k, its
 * log in f->log. Returns 0 once it wrote READY, or the exit status of an
 * instance that ended before.
 */
static int
start(struct lfx *f, bool data, const uint8_t *k)
{
	int keyp[2], readyp[2], logfd, n = 0, status;
	const char *argv[32];
	char io_timeout[16];
	char buf[8] = {0};
	struct pollfd pfd = {.events = POLLIN};
	ssize_t got;
	pid_t pid, parent;

	assert_int_equal(pipe2(keyp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(readyp, O_CLOEXEC), 0);
	assert_int_equal(write(keyp[1], k, STATE_KEY_LEN), STATE_KEY_LEN);
	close(keyp[1]);
	snprintf(io_timeout, sizeof(io_timeout), "%d", f->io_timeout_ms);
	argv[n++] = "test_instance";
	argv[n++] = "instance";
	argv[n++] = "--name";
	argv[n++] = "loop";
	argv[n++] = "--state";
	argv[n++] = f->state;
	argv[n++] = "--ctrl";
	argv[n++] = f->ctrl_ep;
	if (data) {
		argv[n++] = "--data";
		argv[n++] = f->data_ep;
		argv[n++] = "--startup";
		argv[n++] = "clear";
	}
	argv[n++] = "--key-fd";
	argv[n++] = "3";
	argv[n++] = "--ready-fd";
	argv[n++] = "4";
	argv[n++] = "--io-timeout";
	argv[n++] = io_timeout;
	argv[n++] = "--log-level";
	argv[n++] = "info";
	argv[n] = NULL;

	parent = getpid();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Only the key, readiness and log descriptors: none of the
		 * test's connections may stay open in the instance. */
		logfd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int kfd = fcntl(keyp[0], F_DUPFD_CLOEXEC, 5);
		int rfd = fcntl(readyp[1], F_DUPFD_CLOEXEC, 5);

		/* The instance ends with the test, whatever happens to it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(124);
		if (logfd == -1 || kfd == -1 || rfd == -1 || dup2(logfd, 2) == -1 ||
		    dup2(kfd, 3) == -1 || dup2(rfd, 4) == -1 || close_range(5, ~0u, 0) == -1)
			_exit(125);
		execv("/proc/self/exe", (char **)argv);
		_exit(126);
	}
	close(keyp[0]);
	close(readyp[1]);
	pfd.fd = readyp[0];
	assert_int_equal(poll(&pfd, 1, 20000), 1);
	got = read(readyp[0], buf, sizeof(buf) - 1);
	close(readyp[0]);
	if (got == 6 && memcmp(buf, "READY\n", 6) == 0) {
		f->pid = pid;
		return 0;
	}
	status = wait_exit(pid, 20000);
	assert_int_not_equal(status, 0);
	return status;
}

static void
start_ok(struct lfx *f, bool data)
{
	int status = start(f, data, key);

	if (status != 0) {
		print_log(f);
		fail_msg("the instance exited with status %d before it was ready", status);
	}
}

/* Waits for the running instance to exit with status want. */
static void
expect_exit(struct lfx *f, int want)
{
	int status = wait_exit(f->pid, 10000);

	f->pid = 0;
	if (status != want) {
		print_log(f);
		fail_msg("the instance exited with status %d, not %d", status, want);
	}
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		fail_msg("connect %s: %s", path, strerror(errno));
	set_rcvtimeo(fd, 5000);
	return fd;
}

/* Sends a control request on fd and returns the bare result. */
static uint32_t
lctrl(int fd, struct creq r)
{
	uint8_t out[4];

	send_all(fd, r.b, r.n);
	read_exact(fd, out, 4);
	return get32(out);
}

/* A control round trip (GET_CAPABILITY): when it is answered, the loop has
 * read what was written on the data channel before it. */
static void
barrier(int ctrl)
{
	uint8_t req[4], out[8];

	put32(req, C_GET_CAPABILITY);
	send_all(ctrl, req, 4);
	read_exact(ctrl, out, 8);
	assert_true(get32(out + 4) & 1);
}

static uint32_t
ltpm(int fd, struct cmd c, size_t *len)
{
	send_all(fd, c.b, c.n);
	return read_response(fd, len);
}

/* SHUTDOWN on the control channel: the instance exits 0 and removes its
 * sockets. */
static void
stop(struct lfx *f)
{
	struct stat sb;
	int fd = connect_unix(f->ctrl_path);

	assert_int_equal(lctrl(fd, creq(C_SHUTDOWN, NULL, 0)), R_SUCCESS);
	close(fd);
	expect_exit(f, 0);
	assert_int_equal(stat(f->ctrl_path, &sb), -1);
	assert_int_equal(stat(f->data_path, &sb), -1);
}

static void
test_loop_ready_and_shutdown(void **state)
{
	struct lfx *f = *state;
	struct stat sb;
	size_t len;
	int d;

	start_ok(f, true);
	assert_int_equal(stat(f->ctrl_path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat(f->data_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* --startup clear: the TPM answers at once. */
	d = connect_unix(f->data_path);
	assert_int_equal(ltpm(d, tpm_get_random(8), &len), RC_SUCCESS);
	assert_int_equal(len, 20);
	close(d);
	stop(f);
	assert_true(log_has(f, "serving TPM 2.0 (encrypted state)"));
}

/* SIGTERM saves and stops; the next instance on that state has the NV
 * index the first one defined. */
static void
test_loop_state_across_restart(void **state)
{
	struct lfx *f = *state;
	int d;

	start_ok(f, true);
	d = connect_unix(f->data_path);
	assert_int_equal(ltpm(d, tpm_nv_define(NV_INDEX), NULL), RC_SUCCESS);
	close(d);
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	expect_exit(f, 0);
	assert_true(log_has(f, "saving and stopping"));

	start_ok(f, true);
	d = connect_unix(f->data_path);
	assert_int_equal(ltpm(d, tpm_nv_read_public(NV_INDEX), NULL), RC_SUCCESS);
	close(d);
	stop(f);
}

/* Commands split across writes, several in one write, and a command with
 * part of the next: one answer per whole command, in order. */
static void
test_loop_data_framing(void **state)
{
	struct lfx *f = *state;
	struct cmd a = tpm_get_random(4), b = tpm_get_random(8);
	uint8_t both[64];
	size_t len;
	int c, d;

	start_ok(f, true);
	c = connect_unix(f->ctrl_path);
	d = connect_unix(f->data_path);

	/* Byte by byte: no answer until the last one. */
	for (size_t i = 0; i + 1 < a.n; i++) {
		send_all(d, a.b + i, 1);
		if (i == 3 || i == 9 || i + 2 == a.n) {
			barrier(c);
			expect_nothing(d);
		}
	}
	send_all(d, a.b + a.n - 1, 1);
	assert_int_equal(read_response(d, &len), RC_SUCCESS);
	assert_int_equal(len, 10 + 2 + 4);

	/* Two in one write. */
	memcpy(both, a.b, a.n);
	memcpy(both + a.n, b.b, b.n);
	send_all(d, both, a.n + b.n);
	assert_int_equal(read_response(d, &len), RC_SUCCESS);
	assert_int_equal(len, 16);
	assert_int_equal(read_response(d, &len), RC_SUCCESS);
	assert_int_equal(len, 20);

	/* One and a half, then the rest. */
	send_all(d, both, a.n + 5);
	assert_int_equal(read_response(d, &len), RC_SUCCESS);
	assert_int_equal(len, 16);
	barrier(c);
	expect_nothing(d);
	send_all(d, both + a.n + 5, b.n - 5);
	assert_int_equal(read_response(d, &len), RC_SUCCESS);
	assert_int_equal(len, 20);
	close(d);
	close(c);
	stop(f);
}

/* A size outside 10..4096 is answered with TPM_RC_COMMAND_SIZE and ends
 * that connection only. */
static void
test_loop_bad_sizes(void **state)
{
	struct lfx *f = *state;
	const uint32_t sizes[] = {0, 9, 4097, 0xffffffff};
	uint8_t hdr[10] = {0x80, 0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x7b};
	size_t len;
	int d;

	start_ok(f, true);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		d = connect_unix(f->data_path);
		put32(hdr + 2, sizes[i]);
		send_all(d, hdr, sizeof(hdr));
		assert_int_equal(read_response(d, &len), RC_COMMAND_SIZE);
		assert_int_equal(len, 10);
		expect_eof(d);
		close(d);
	}
	/* The largest size there is, and the next connection, are served. */
	d = connect_unix(f->data_path);
	assert_int_equal(ltpm(d, tpm_get_random(4), NULL), RC_SUCCESS);
	close(d);
	stop(f);
}

/* A request that stalls half-way is dropped after the I/O timeout; a
 * silent connection is never closed. */
static void
test_loop_partial_timeout(void **state)
{
	struct lfx *f = *state;
	struct cmd a = tpm_get_random(4);
	struct pollfd pfd = {.events = POLLIN};
	int64_t t0, waited;
	int d, idle;

	f->io_timeout_ms = IO_TIMEOUT_MS;
	start_ok(f, true);
	idle = connect_unix(f->data_path);
	assert_int_equal(ltpm(idle, a, NULL), RC_SUCCESS);
	close(idle);

	d = connect_unix(f->data_path);
	t0 = __real_mono_ms();
	send_all(d, a.b, 5);
	expect_eof(d);
	waited = __real_mono_ms() - t0;
	assert_true(waited >= IO_TIMEOUT_MS - 5);
	assert_true(waited < 3000);
	close(d);
	assert_true(log_has(f, "request incomplete (5 bytes)"));

	/* Silence between requests: still open after twice the timeout. */
	idle = connect_unix(f->data_path);
	pfd.fd = idle;
	assert_int_equal(poll(&pfd, 1, 2 * IO_TIMEOUT_MS), 0);
	assert_int_equal(ltpm(idle, a, NULL), RC_SUCCESS);
	close(idle);
	stop(f);
}

/* QEMU sends SET_LOCALITY and RESET_TPMESTABLISHED with 3 bytes of padding
 * in the same write; tpm2-tss sends the bare byte. Either way the next
 * request is read as sent, and the locality holds for TPM commands. */
static void
test_loop_locality_padding(void **state)
{
	struct lfx *f = *state;
	uint8_t qemu[8] = {0, 0, 0, C_SET_LOCALITY, 2, 0xaa, 0xbb, 0xcc};
	uint8_t reset[8] = {0, 0, 0, C_RESET_TPMESTABLISHED, 3, 0x11, 0x22, 0x33};
	uint8_t bare[5] = {0, 0, 0, C_SET_LOCALITY, 0};
	uint8_t out[4];
	int c, d;

	start_ok(f, true);
	c = connect_unix(f->ctrl_path);
	d = connect_unix(f->data_path);
	send_all(c, qemu, sizeof(qemu));
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_SUCCESS);
	barrier(c);
	expect_nothing(c);
	assert_int_equal(ltpm(d, tpm_pcr_reset(20), NULL), RC_SUCCESS);

	send_all(c, reset, sizeof(reset));
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_SUCCESS);
	barrier(c);

	send_all(c, bare, sizeof(bare));
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_SUCCESS);
	barrier(c);
	expect_nothing(c);
	assert_int_equal(ltpm(d, tpm_pcr_reset(20), NULL), RC_LOCALITY);
	close(d);
	close(c);
	assert_false(log_has(f, "unknown command"));
	stop(f);
}

/* A blob declared above 4 MiB is refused before anything is allocated for
 * it, and an unknown command is refused; both end that connection only. */
static void
test_loop_ctrl_refusals(void **state)
{
	struct lfx *f = *state;
	uint8_t blob[16], hash[8], out[4];
	int c;

	start_ok(f, true);
	put32(blob, C_SET_STATEBLOB);
	put32(blob + 4, 0);
	put32(blob + 8, BLOB_PERMANENT);
	put32(blob + 12, (4u << 20) + 1);
	c = connect_unix(f->ctrl_path);
	send_all(c, blob, sizeof(blob));
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_BAD_PARAMETER);
	expect_eof(c);
	close(c);

	put32(hash, C_HASH_DATA);
	put32(hash + 4, 0xffffffff);
	c = connect_unix(f->ctrl_path);
	send_all(c, hash, sizeof(hash));
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_BAD_PARAMETER);
	expect_eof(c);
	close(c);

	c = connect_unix(f->ctrl_path);
	assert_int_equal(lctrl(c, creq(0x4242, NULL, 0)), R_BAD_ORDINAL);
	expect_eof(c);
	close(c);

	c = connect_unix(f->ctrl_path);
	barrier(c);
	close(c);
	assert_true(log_has(f, "declared length above"));
	stop(f);
}

/* A large request arriving in many pieces (HASH_DATA, 1 MiB) is buffered
 * whole and answered once. */
static void
test_loop_ctrl_large_request(void **state)
{
	struct lfx *f = *state;
	const size_t len = 1 << 20;
	uint8_t *req = malloc(8 + len);
	int c;

	assert_non_null(req);
	start_ok(f, true);
	c = connect_unix(f->ctrl_path);
	assert_int_equal(lctrl(c, creq(C_HASH_START, NULL, 0)), R_SUCCESS);
	put32(req, C_HASH_DATA);
	put32(req + 4, (uint32_t)len);
	memset(req + 8, 'x', len);
	for (size_t off = 0; off < 8 + len; off += 65536)
		send_all(c, req + off, off + 65536 <= 8 + len ? 65536 : 8 + len - off);
	{
		uint8_t out[4];
		read_exact(c, out, 4);
		assert_int_equal(get32(out), R_SUCCESS);
	}
	expect_nothing(c);
	assert_int_equal(lctrl(c, creq(C_HASH_END, NULL, 0)), R_SUCCESS);
	close(c);
	free(req);
	stop(f);
}

/* One client at a time: the others wait in a line of 4 and are served in
 * turn; one more is closed at once. */
static void
test_loop_waiting_line(void **state)
{
	struct lfx *f = *state;
	struct cmd a = tpm_get_random(4);
	int c, holder, waiting[4], extra;

	start_ok(f, true);
	c = connect_unix(f->ctrl_path);
	holder = connect_unix(f->data_path);
	assert_int_equal(ltpm(holder, a, NULL), RC_SUCCESS);
	for (int i = 0; i < 4; i++) {
		waiting[i] = connect_unix(f->data_path);
		send_all(waiting[i], a.b, a.n);
	}
	extra = connect_unix(f->data_path);
	barrier(c);
	for (int i = 0; i < 4; i++)
		expect_nothing(waiting[i]);
	expect_eof(extra);
	close(extra);

	close(holder);
	assert_int_equal(read_response(waiting[0], NULL), RC_SUCCESS);
	barrier(c);
	expect_nothing(waiting[1]);
	close(waiting[0]);
	assert_int_equal(read_response(waiting[1], NULL), RC_SUCCESS);
	for (int i = 1; i < 4; i++)
		close(waiting[i]);
	close(c);
	stop(f);
}

/* QEMU's mode: no data socket; the channel arrives with SET_DATAFD, the TPM
 * answers a bare failure until INIT. */
static void
test_loop_qemu_mode(void **state)
{
	struct lfx *f = *state;
	uint8_t req[4], out[4], bare[10];
	struct stat sb;
	int c, sv[2];

	start_ok(f, false);
	assert_int_equal(stat(f->data_path, &sb), -1);
	c = connect_unix(f->ctrl_path);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_rcvtimeo(sv[1], 5000);
	put32(req, C_SET_DATAFD);
	send_with_fd(c, req, 4, sv[0]);
	close(sv[0]);
	read_exact(c, out, 4);
	assert_int_equal(get32(out), R_SUCCESS);

	send_all(sv[1], tpm_get_random(4).b, tpm_get_random(4).n);
	read_exact(sv[1], bare, 10);
	assert_int_equal(get32(bare + 2), 10);
	assert_int_equal(get32(bare + 6), RC_FAILURE);

	assert_int_equal(lctrl(c, creq_u32(C_INIT, 0)), R_SUCCESS);
	assert_int_equal(ltpm(sv[1], tpm_startup(0), NULL), RC_SUCCESS);
	assert_int_equal(ltpm(sv[1], tpm_get_random(4), NULL), RC_SUCCESS);
	close(sv[1]);
	close(c);
	stop(f);
}

/* State that exists but cannot be read stops the start (exit status 3),
 * before READY, with the file untouched and no socket left. */
static void
test_loop_refuses_unreadable_state(void **state)
{
	struct lfx *f = *state;
	uint8_t other[STATE_KEY_LEN], *before, *after;
	char path[160];
	size_t len, after_len;
	struct stat sb;

	start_ok(f, true);
	stop(f);
	snprintf(path, sizeof(path), "%s/permanent.state", f->state);
	assert_int_equal(fileio_read(path, 1 << 20, &before, &len), 0);

	memcpy(other, key, sizeof(other));
	other[0] ^= 1;
	assert_int_equal(start(f, true, other), 3);
	assert_int_equal(stat(f->ctrl_path, &sb), -1);
	assert_int_equal(stat(f->data_path, &sb), -1);

	before[len / 2] ^= 0x40;
	assert_int_equal(fileio_write_atomic(path, before, len, 0600), 0);
	assert_int_equal(start(f, true, key), 3);
	assert_int_equal(fileio_read(path, 1 << 20, &after, &after_len), 0);
	assert_int_equal(after_len, len);
	assert_memory_equal(after, before, len);
	assert_true(log_has(f, "refusing to start"));
	free(before);
	free(after);
}

/* A second instance on a state directory in use exits 4 and leaves the
 * first one serving. */
static void
test_loop_busy(void **state)
{
	struct lfx *f = *state;
	int d;

	start_ok(f, true);
	assert_int_equal(start(f, true, key), 4);
	d = connect_unix(f->data_path);
	assert_int_equal(ltpm(d, tpm_get_random(4), NULL), RC_SUCCESS);
	close(d);
	stop(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define L(name) cmocka_unit_test_setup_teardown(name, lsetup, lteardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    T(test_capability),
	    T(test_before_init),
	    T(test_init_manufactures),
	    T(test_stop_is_orderly),
	    T(test_set_locality),
	    T(test_hash_and_established),
	    T(test_stateblob_roundtrip),
	    T(test_stateblob_refused),
	    T(test_stateblob_revert_permit),
	    T(test_budget_commands),
	    T(test_budget_stateblob),
	    cmocka_unit_test_setup_teardown(test_stateblob_plaintext, setup_plaintext, teardown),
	    T(test_volatile_rules),
	    T(test_volatile_blob),
	    T(test_volatile_file_old),
	    T(test_get_config_key),
	    cmocka_unit_test_setup_teardown(test_get_config_plaintext, setup_plaintext, teardown),
	    T(test_set_datafd),
	    T(test_stray_fd_dropped),
	    T(test_unknown_command),
	    T(test_buffersize),
	    T(test_get_info),
	    T(test_shutdown),
	    T(test_engine_failure_answer),
	    T(test_init_failure),
	    T(test_send_deadline_no_reader),
	    T(test_send_deadline_slow_reader),
	    T(test_send_reader_keeps_up),
	    T(test_send_to_closed_peer),
	    T(test_fill_and_consume),
	    L(test_loop_ready_and_shutdown),
	    L(test_loop_state_across_restart),
	    L(test_loop_data_framing),
	    L(test_loop_bad_sizes),
	    L(test_loop_partial_timeout),
	    L(test_loop_locality_padding),
	    L(test_loop_ctrl_refusals),
	    L(test_loop_ctrl_large_request),
	    L(test_loop_waiting_line),
	    L(test_loop_qemu_mode),
	    L(test_loop_refuses_unreadable_state),
	    L(test_loop_busy),
	};

	/* The loop's instances (part 3). */
	if (argc > 1 && strcmp(argv[1], "instance") == 0)
		return instance_main(argc - 1, argv + 1);
	setvbuf(stdout, NULL, _IONBF, 0);
	log_init("test_instance", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
