/*
 * soak-client: load and soak of many TPM 2.0 vTPMs at once.
 *
 *   soak-client [-t SECONDS] [-i SECONDS] [-w CYCLES] [-p LABEL=PID[,PID...]]...
 *               [-m KB] [-a unix:API_SOCKET] [-A MS] ENDPOINT...
 *
 * One thread per ENDPOINT (the data channel of one vTPM, unix:PATH or
 * tcp:HOST:PORT) holds one connection to it for the whole run and sends raw
 * TPM 2.0 commands. Each thread first sets up its TPM: an ECC P-256
 * storage primary key, an ECC P-256 signing key created under it and
 * loaded, and a 64-byte ordinary NV index; then it runs the command cycle
 * below -w times (default 2) as a warm-up, where TPM_RC_RETRY and the like
 * (the TPM testing an algorithm on its first use) are answered by sending
 * the command again. Once every thread is ready they all start together
 * and run the cycle, over and over, for -t seconds (default 10):
 *
 *   PCR_Extend PCR_Read Sign PCR_Extend PCR_Read Sign NV_Write
 *   Create Load FlushContext
 *
 * Sign uses the signing key loaded at set-up; Create makes another ECC
 * signing key under the storage key, Load loads it and FlushContext
 * unloads it; every NV_Write and PCR_Extend carries new data. Each command
 * is timed with CLOCK_MONOTONIC from before its send to its answer's last
 * byte. Any response code but success, or a broken connection, is an
 * error, which ends that thread's run.
 *
 * With -a, one more thread asks the vtpmd control API at API_SOCKET for
 * GET /v1/instances every -A milliseconds (default 250) and requires 200.
 *
 * Each -p names a group of processes (LABEL, then their PIDs): their total
 * PSS and Pss_Anon (/proc/PID/smaps_rollup), open descriptors and threads
 * are sampled when the load starts, every -i seconds (default a quarter of
 * -t) and when it ends (connections still open). The run fails when a
 * process of a group is gone, when a group has more descriptors or
 * threads at the end than at the start, or when its PSS grew by more than
 * -m kB per process (default 256).
 *
 * Prints, for each command, its count and latency p50/p99/max; the
 * throughput in TPM commands per second; each group's figures at every
 * sample and start -> end. Exit status 0 when there was no error and every
 * group was steady, 1 otherwise, 2 for a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "instance/instance.h"

#define TPM2_ST_NO_SESSIONS     0x8001
#define TPM2_ST_SESSIONS        0x8002
#define TPM2_ST_HASHCHECK       0x8024
#define TPM2_CC_NV_DEFINE_SPACE 0x0000012a
#define TPM2_CC_CREATE_PRIMARY  0x00000131
#define TPM2_CC_NV_WRITE        0x00000137
#define TPM2_CC_CREATE          0x00000153
#define TPM2_CC_LOAD            0x00000157
#define TPM2_CC_SIGN            0x0000015d
#define TPM2_CC_FLUSH_CONTEXT   0x00000165
#define TPM2_CC_PCR_READ        0x0000017e
#define TPM2_CC_PCR_EXTEND      0x00000182
#define TPM2_RS_PW              0x40000009
#define TPM2_RH_OWNER           0x40000001
#define TPM2_RH_NULL            0x40000007
#define TPM2_ALG_AES            0x0006
#define TPM2_ALG_SHA256         0x000b
#define TPM2_ALG_NULL           0x0010
#define TPM2_ALG_ECDSA          0x0018
#define TPM2_ALG_ECC            0x0023
#define TPM2_ALG_CFB            0x0043
#define TPM2_ECC_NIST_P256      0x0003
#define TPM2_RC_NV_DEFINED      0x0000014c
#define TPM2_RC_YIELDED         0x00000908
#define TPM2_RC_TESTING         0x0000090a
#define TPM2_RC_RETRY           0x00000922

/* TPMA_OBJECT: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
 * noDA; a storage key adds restricted and decrypt, a signing key sign. */
#define SOAK_OBJ_BASE    (1u << 1 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 10)
#define SOAK_OBJ_STORAGE (SOAK_OBJ_BASE | 1u << 16 | 1u << 17)
#define SOAK_OBJ_SIGN    (SOAK_OBJ_BASE | 1u << 18)
/* TPMA_NV: OWNERWRITE, AUTHWRITE, OWNERREAD, AUTHREAD, NO_DA; ordinary,
 * not ORDERLY: every write reaches the state file. */
#define SOAK_NV_ATTRS (1u << 1 | 1u << 2 | 1u << 17 | 1u << 18 | 1u << 25)
#define SOAK_NV_INDEX 0x01500017
#define SOAK_NV_SIZE  64
#define SOAK_PCR      16 /* the debug PCR: resettable, empty auth */

#define SOAK_BUF        4096
#define SOAK_IO_TIMEOUT 30 /* s: a vTPM that does not answer is an error */
#define SOAK_TRIES      5  /* sends of one warm-up command (TPM_RC_RETRY) */
#define SOAK_MAX_ERRORS 8  /* error messages kept for the report */

enum soak_op {
	SOAK_PCR_EXTEND,
	SOAK_PCR_READ,
	SOAK_SIGN,
	SOAK_NV_WRITE,
	SOAK_CREATE,
	SOAK_LOAD,
	SOAK_FLUSH,
	SOAK_API, /* GET /v1/instances on the control API: not a TPM command */
	SOAK_NOPS
};

static const char *const soak_op_names[SOAK_NOPS] = {"PCR_Extend", "PCR_Read", "Sign", "NV_Write",
    "Create", "Load", "FlushContext", "API GET /v1/instances"};

static const enum soak_op soak_cycle[] = {SOAK_PCR_EXTEND, SOAK_PCR_READ, SOAK_SIGN,
    SOAK_PCR_EXTEND, SOAK_PCR_READ, SOAK_SIGN, SOAK_NV_WRITE, SOAK_CREATE, SOAK_LOAD, SOAK_FLUSH};
#define SOAK_CYCLE_LEN (sizeof(soak_cycle) / sizeof(soak_cycle[0]))

/* A TPM command under construction (big-endian). */
struct soak_cmd {
	uint8_t b[SOAK_BUF];
	size_t len;
	bool overflow;
};

/* Round-trip times of one command, in ns. */
struct soak_samples {
	uint64_t *ns;
	size_t n, cap;
};

/* One thread: a vTPM's data channel, or (api) the control API. */
struct soak_client {
	const char *spec;
	struct endpoint ep;
	bool api;
	int fd;
	uint32_t storage, signer, loaded;      /* handles */
	uint8_t priv[SOAK_BUF], pub[SOAK_BUF]; /* the last Create's TPM2B_PRIVATE, TPM2B_PUBLIC */
	size_t priv_len, pub_len;
	uint64_t serial; /* makes each NV_Write and PCR_Extend different */
	struct soak_samples samples[SOAK_NOPS];
	atomic_ullong done; /* TPM commands (or API calls) in the timed run */
	bool ready;         /* set-up and warm-up succeeded */
	pthread_t thread;
};

/* A group of processes whose resources are sampled. */
struct soak_group {
	char label[32];
	pid_t *pids;
	size_t n;
};

/* One group's figures at one sample. */
struct soak_usage {
	unsigned long long pss, anon; /* kB */
	unsigned long fds, threads;
	pid_t gone; /* a process that could not be read, or 0 */
};

static pthread_barrier_t soak_ready, soak_go, soak_stopped, soak_sampled;
static atomic_int soak_stop;
static unsigned int soak_warmup = 2, soak_api_ms = 250;

static pthread_mutex_t soak_err_lock = PTHREAD_MUTEX_INITIALIZER;
static char soak_errors[SOAK_MAX_ERRORS][256];
static unsigned int soak_nerrors;

static void
soak_usage_exit(void)
{
	fprintf(stderr,
	    "usage: soak-client [-t SECONDS] [-i SECONDS] [-w CYCLES] [-p LABEL=PID[,PID...]]...\n"
	    "                   [-m KB] [-a unix:API_SOCKET] [-A MS] ENDPOINT...\n");
	exit(2);
}

static uint64_t
soak_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records an error (thread-safe); the first SOAK_MAX_ERRORS are kept. */
static void __attribute__((format(printf, 2, 3)))
soak_error(const struct soak_client *c, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&soak_err_lock);
	if (soak_nerrors < SOAK_MAX_ERRORS)
		snprintf(soak_errors[soak_nerrors], sizeof(soak_errors[0]), "%s: %s", c->spec, msg);
	soak_nerrors++;
	pthread_mutex_unlock(&soak_err_lock);
}

/* --- commands ------------------------------------------------------------ */

static void
soak_put8(struct soak_cmd *c, uint8_t v)
{
	if (c->len >= sizeof(c->b)) {
		c->overflow = true;
		return;
	}
	c->b[c->len++] = v;
}

static void
soak_put16(struct soak_cmd *c, uint16_t v)
{
	soak_put8(c, (uint8_t)(v >> 8));
	soak_put8(c, (uint8_t)v);
}

static void
soak_put32(struct soak_cmd *c, uint32_t v)
{
	soak_put16(c, (uint16_t)(v >> 16));
	soak_put16(c, (uint16_t)v);
}

static void
soak_put_bytes(struct soak_cmd *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		soak_put8(c, p[i]);
}

static void
soak_patch16(struct soak_cmd *c, size_t off, uint16_t v)
{
	c->b[off] = (uint8_t)(v >> 8);
	c->b[off + 1] = (uint8_t)v;
}

static uint16_t
soak_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
soak_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Starts a command: tag, a size filled in by soak_end, the code. */
static void
soak_begin(struct soak_cmd *c, uint16_t tag, uint32_t code)
{
	c->len = 0;
	c->overflow = false;
	soak_put16(c, tag);
	soak_put32(c, 0);
	soak_put32(c, code);
}

static void
soak_end(struct soak_cmd *c)
{
	soak_patch16(c, 2, (uint16_t)(c->len >> 16));
	soak_patch16(c, 4, (uint16_t)c->len);
}

/* The authorization area of one password session with empty auth. */
static void
soak_put_pw_session(struct soak_cmd *c)
{
	soak_put32(c, 9);
	soak_put32(c, TPM2_RS_PW);
	soak_put16(c, 0); /* nonceCaller */
	soak_put8(c, 0);  /* sessionAttributes */
	soak_put16(c, 0); /* hmac: the empty password */
}

/* TPM2B_SENSITIVE_CREATE with empty auth and data, then TPM2B_PUBLIC of an
 * ECC P-256 key: a storage key (AES-128-CFB) or an ECDSA/SHA-256 signing
 * key; then empty outsideInfo and creationPCR. */
static void
soak_put_key_template(struct soak_cmd *c, bool storage)
{
	size_t at;

	soak_put16(c, 4);
	soak_put16(c, 0);
	soak_put16(c, 0);
	at = c->len;
	soak_put16(c, 0);
	soak_put16(c, TPM2_ALG_ECC);
	soak_put16(c, TPM2_ALG_SHA256);
	soak_put32(c, storage ? SOAK_OBJ_STORAGE : SOAK_OBJ_SIGN);
	soak_put16(c, 0); /* authPolicy */
	if (storage) {
		soak_put16(c, TPM2_ALG_AES);
		soak_put16(c, 128);
		soak_put16(c, TPM2_ALG_CFB);
		soak_put16(c, TPM2_ALG_NULL); /* scheme */
	} else {
		soak_put16(c, TPM2_ALG_NULL); /* symmetric */
		soak_put16(c, TPM2_ALG_ECDSA);
		soak_put16(c, TPM2_ALG_SHA256);
	}
	soak_put16(c, TPM2_ECC_NIST_P256);
	soak_put16(c, TPM2_ALG_NULL); /* kdf */
	soak_put16(c, 0);             /* unique.x */
	soak_put16(c, 0);             /* unique.y */
	if (!c->overflow)
		soak_patch16(c, at, (uint16_t)(c->len - at - 2));
	soak_put16(c, 0); /* outsideInfo */
	soak_put32(c, 0); /* creationPCR: none */
}

static void
soak_cmd_create_primary(struct soak_cmd *c)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_CREATE_PRIMARY);
	soak_put32(c, TPM2_RH_OWNER);
	soak_put_pw_session(c);
	soak_put_key_template(c, true);
	soak_end(c);
}

static void
soak_cmd_create(struct soak_cmd *c, uint32_t parent)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_CREATE);
	soak_put32(c, parent);
	soak_put_pw_session(c);
	soak_put_key_template(c, false);
	soak_end(c);
}

static void
soak_cmd_load(struct soak_cmd *c, const struct soak_client *cl)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_LOAD);
	soak_put32(c, cl->storage);
	soak_put_pw_session(c);
	soak_put_bytes(c, cl->priv, cl->priv_len);
	soak_put_bytes(c, cl->pub, cl->pub_len);
	soak_end(c);
}

static void
soak_cmd_flush(struct soak_cmd *c, uint32_t handle)
{
	soak_begin(c, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
	soak_put32(c, handle);
	soak_end(c);
}

static void
soak_cmd_nv_define(struct soak_cmd *c)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_NV_DEFINE_SPACE);
	soak_put32(c, TPM2_RH_OWNER);
	soak_put_pw_session(c);
	soak_put16(c, 0);  /* auth */
	soak_put16(c, 14); /* TPM2B_NV_PUBLIC */
	soak_put32(c, SOAK_NV_INDEX);
	soak_put16(c, TPM2_ALG_SHA256);
	soak_put32(c, SOAK_NV_ATTRS);
	soak_put16(c, 0); /* authPolicy */
	soak_put16(c, SOAK_NV_SIZE);
	soak_end(c);
}

/* 32 bytes (a digest, NV data) that differ with each serial number. */
static void
soak_put_varying(struct soak_cmd *c, uint64_t serial, size_t len)
{
	for (size_t i = 0; i < len; i++)
		soak_put8(c, (uint8_t)(serial >> (8 * (i % 8))) ^ (uint8_t)i);
}

static void
soak_cmd_nv_write(struct soak_cmd *c, uint64_t serial)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_NV_WRITE);
	soak_put32(c, TPM2_RH_OWNER);
	soak_put32(c, SOAK_NV_INDEX);
	soak_put_pw_session(c);
	soak_put16(c, SOAK_NV_SIZE);
	soak_put_varying(c, serial, SOAK_NV_SIZE);
	soak_put16(c, 0); /* offset */
	soak_end(c);
}

static void
soak_cmd_pcr_extend(struct soak_cmd *c, uint64_t serial)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_PCR_EXTEND);
	soak_put32(c, SOAK_PCR);
	soak_put_pw_session(c);
	soak_put32(c, 1); /* TPML_DIGEST_VALUES.count */
	soak_put16(c, TPM2_ALG_SHA256);
	soak_put_varying(c, serial, 32);
	soak_end(c);
}

static void
soak_cmd_pcr_read(struct soak_cmd *c)
{
	soak_begin(c, TPM2_ST_NO_SESSIONS, TPM2_CC_PCR_READ);
	soak_put32(c, 1); /* TPML_PCR_SELECTION.count */
	soak_put16(c, TPM2_ALG_SHA256);
	soak_put8(c, 3);
	soak_put8(c, 0);
	soak_put8(c, 0);
	soak_put8(c, 1u << (SOAK_PCR % 8)); /* PCR 16: third byte */
	soak_end(c);
}

/* Sign of a 32-byte digest with ECDSA/SHA-256 and the null ticket. */
static void
soak_cmd_sign(struct soak_cmd *c, uint32_t key, uint64_t serial)
{
	soak_begin(c, TPM2_ST_SESSIONS, TPM2_CC_SIGN);
	soak_put32(c, key);
	soak_put_pw_session(c);
	soak_put16(c, 32);
	soak_put_varying(c, serial, 32);
	soak_put16(c, TPM2_ALG_ECDSA);
	soak_put16(c, TPM2_ALG_SHA256);
	soak_put16(c, TPM2_ST_HASHCHECK); /* TPMT_TK_HASHCHECK: the null ticket */
	soak_put32(c, TPM2_RH_NULL);
	soak_put16(c, 0);
	soak_end(c);
}

/* --- the data channel ---------------------------------------------------- */

static int
soak_read_full(int fd, uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			errno = ECONNRESET;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Sends c on cl's connection and reads the whole answer into rsp (SOAK_BUF
 * bytes). Returns 0 with the response code in *rc and the answer's length
 * in *len, or -1 (recorded as an error) when the connection broke or the
 * answer is malformed.
 */
static int
soak_roundtrip(struct soak_client *cl, const struct soak_cmd *c, const char *what, uint8_t *rsp,
    size_t *len, uint32_t *rc)
{
	struct tpm_header h;
	size_t sent = 0;
	ssize_t n;

	if (c->overflow) {
		soak_error(cl, "%s: command does not fit %d bytes", what, SOAK_BUF);
		return -1;
	}
	while (sent < c->len) {
		n = send(cl->fd, c->b + sent, c->len - sent, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			soak_error(cl, "%s: send: %s", what, strerror(errno));
			return -1;
		}
		sent += (size_t)n;
	}
	if (soak_read_full(cl->fd, rsp, TPM_HEADER_LEN) == -1) {
		soak_error(cl, "%s: no answer: %s", what, strerror(errno));
		return -1;
	}
	if (tpmwire_header(rsp, TPM_HEADER_LEN, &h) == -1 || h.size < TPM_HEADER_LEN ||
	    h.size > SOAK_BUF) {
		soak_error(cl, "%s: malformed answer header", what);
		return -1;
	}
	if (soak_read_full(cl->fd, rsp + TPM_HEADER_LEN, h.size - TPM_HEADER_LEN) == -1) {
		soak_error(cl, "%s: answer cut short: %s", what, strerror(errno));
		return -1;
	}
	*len = h.size;
	*rc = h.code;
	return 0;
}

/* Takes outPrivate and outPublic from a Create answer (rsp, len bytes). */
static int
soak_take_created(struct soak_client *cl, const uint8_t *rsp, size_t len)
{
	size_t off = TPM_HEADER_LEN + 4, n; /* after parameterSize */

	if (off + 2 > len || (n = 2u + soak_get16(rsp + off)) > len - off || n > sizeof(cl->priv))
		return -1;
	memcpy(cl->priv, rsp + off, n);
	cl->priv_len = n;
	off += n;
	if (off + 2 > len || (n = 2u + soak_get16(rsp + off)) > len - off || n > sizeof(cl->pub))
		return -1;
	memcpy(cl->pub, rsp + off, n);
	cl->pub_len = n;
	return 0;
}

/* Builds the command for op (with what earlier answers left in cl). */
static void
soak_build(struct soak_client *cl, enum soak_op op, struct soak_cmd *c)
{
	switch (op) {
	case SOAK_PCR_EXTEND: soak_cmd_pcr_extend(c, ++cl->serial); break;
	case SOAK_PCR_READ: soak_cmd_pcr_read(c); break;
	case SOAK_SIGN: soak_cmd_sign(c, cl->signer, ++cl->serial); break;
	case SOAK_NV_WRITE: soak_cmd_nv_write(c, ++cl->serial); break;
	case SOAK_CREATE: soak_cmd_create(c, cl->storage); break;
	case SOAK_LOAD: soak_cmd_load(c, cl); break;
	case SOAK_FLUSH: soak_cmd_flush(c, cl->loaded); break;
	case SOAK_API:
	case SOAK_NOPS: c->len = 0; break;
	}
}

/* Keeps what a successful answer to op carries for later commands. */
static int
soak_absorb(struct soak_client *cl, enum soak_op op, const uint8_t *rsp, size_t len)
{
	if (op == SOAK_CREATE && soak_take_created(cl, rsp, len) == -1) {
		soak_error(cl, "Create: malformed answer");
		return -1;
	}
	if (op == SOAK_LOAD) {
		if (len < TPM_HEADER_LEN + 4) {
			soak_error(cl, "Load: short answer");
			return -1;
		}
		cl->loaded = soak_get32(rsp + TPM_HEADER_LEN);
	}
	return 0;
}

static int
soak_samples_add(struct soak_samples *s, uint64_t ns)
{
	uint64_t *p;

	if (s->n == s->cap) {
		p = realloc(s->ns, (s->cap == 0 ? 1024 : s->cap * 2) * sizeof(*p));
		if (p == NULL)
			return -1;
		s->ns = p;
		s->cap = s->cap == 0 ? 1024 : s->cap * 2;
	}
	s->ns[s->n++] = ns;
	return 0;
}

/*
 * Runs op once. Warm-up (timed false) sends it again while the TPM answers
 * that it is testing or asks for a retry; in the timed run every answer
 * but success is an error and the round trip is recorded. Returns 0 or -1
 * (an error, recorded).
 */
static int
soak_op_run(struct soak_client *cl, enum soak_op op, bool timed)
{
	static _Thread_local struct soak_cmd c;
	static _Thread_local uint8_t rsp[SOAK_BUF];
	uint64_t t0, t1;
	size_t len = 0;
	uint32_t rc = 0;

	soak_build(cl, op, &c);
	for (int tries = 0; tries < (timed ? 1 : SOAK_TRIES); tries++) {
		t0 = soak_now_ns();
		if (soak_roundtrip(cl, &c, soak_op_names[op], rsp, &len, &rc) == -1)
			return -1;
		t1 = soak_now_ns();
		if (rc != TPM2_RC_RETRY && rc != TPM2_RC_TESTING && rc != TPM2_RC_YIELDED)
			break;
	}
	if (rc != 0) {
		soak_error(cl, "%s: TPM response code 0x%x%s", soak_op_names[op], rc,
		    timed ? "" : " (warm-up)");
		return -1;
	}
	if (soak_absorb(cl, op, rsp, len) == -1)
		return -1;
	if (timed) {
		if (soak_samples_add(&cl->samples[op], t1 - t0) == -1) {
			soak_error(cl, "out of memory for samples");
			return -1;
		}
		atomic_fetch_add_explicit(&cl->done, 1, memory_order_relaxed);
	}
	return 0;
}

/* Sends a command whose answer must be success; rsp gets the answer. */
static int
soak_setup_cmd(struct soak_client *cl, const struct soak_cmd *c, const char *what, uint8_t *rsp,
    size_t *len, uint32_t ok_too)
{
	uint32_t rc = 0;

	for (int tries = 0; tries < SOAK_TRIES; tries++) {
		if (soak_roundtrip(cl, c, what, rsp, len, &rc) == -1)
			return -1;
		if (rc != TPM2_RC_RETRY && rc != TPM2_RC_TESTING && rc != TPM2_RC_YIELDED)
			break;
	}
	if (rc != 0 && rc != ok_too) {
		soak_error(cl, "%s (set-up): TPM response code 0x%x", what, rc);
		return -1;
	}
	return 0;
}

/* Connects, makes the keys and the NV index, and warms up. */
static int
soak_tpm_setup(struct soak_client *cl)
{
	static _Thread_local struct soak_cmd c;
	static _Thread_local uint8_t rsp[SOAK_BUF];
	struct timeval tv = {.tv_sec = SOAK_IO_TIMEOUT};
	size_t len = 0;

	cl->fd = endpoint_connect(&cl->ep);
	if (cl->fd == -1) {
		soak_error(cl, "connect: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
		soak_error(cl, "setsockopt: %s", strerror(errno));
		return -1;
	}
	soak_cmd_create_primary(&c);
	if (soak_setup_cmd(cl, &c, "CreatePrimary", rsp, &len, 0) == -1)
		return -1;
	if (len < TPM_HEADER_LEN + 4) {
		soak_error(cl, "CreatePrimary: short answer");
		return -1;
	}
	cl->storage = soak_get32(rsp + TPM_HEADER_LEN);
	soak_cmd_create(&c, cl->storage);
	if (soak_setup_cmd(cl, &c, "Create", rsp, &len, 0) == -1 ||
	    soak_absorb(cl, SOAK_CREATE, rsp, len) == -1)
		return -1;
	soak_cmd_load(&c, cl);
	if (soak_setup_cmd(cl, &c, "Load", rsp, &len, 0) == -1 ||
	    soak_absorb(cl, SOAK_LOAD, rsp, len) == -1)
		return -1;
	cl->signer = cl->loaded;
	soak_cmd_nv_define(&c);
	if (soak_setup_cmd(cl, &c, "NV_DefineSpace", rsp, &len, TPM2_RC_NV_DEFINED) == -1)
		return -1;
	for (unsigned int w = 0; w < soak_warmup; w++)
		for (size_t i = 0; i < SOAK_CYCLE_LEN; i++)
			if (soak_op_run(cl, soak_cycle[i], false) == -1)
				return -1;
	return 0;
}

/* --- the control API ----------------------------------------------------- */

/* GET /v1/instances once; the answer must be 200. Returns 0 or -1. */
static int
soak_api_call(struct soak_client *cl, bool timed)
{
	static const char req[] = "GET /v1/instances HTTP/1.1\r\nHost: vtpmd\r\n\r\n";
	struct timeval tv = {.tv_sec = SOAK_IO_TIMEOUT};
	char head[16] = {0}, sink[8192];
	size_t got = 0;
	uint64_t t0, t1;
	ssize_t n;
	int fd, ret = -1;

	t0 = soak_now_ns();
	fd = endpoint_connect(&cl->ep);
	if (fd == -1) {
		soak_error(cl, "API connect: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
		soak_error(cl, "API send: %s", strerror(errno));
		goto out;
	}
	/* One request per connection: the answer ends when vtpmd closes. */
	while ((n = read(fd, sink, sizeof(sink))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			soak_error(cl, "API read: %s", strerror(errno));
			goto out;
		}
		if (got < sizeof(head) - 1)
			memcpy(head + got, sink,
			    (size_t)n < sizeof(head) - 1 - got ? (size_t)n
			                                       : sizeof(head) - 1 - got);
		got += (size_t)n;
	}
	t1 = soak_now_ns();
	if (strncmp(head, "HTTP/1.1 200 ", 13) != 0) {
		soak_error(cl, "API GET /v1/instances answered \"%.12s\"", head);
		goto out;
	}
	if (timed) {
		if (soak_samples_add(&cl->samples[SOAK_API], t1 - t0) == -1) {
			soak_error(cl, "out of memory for samples");
			goto out;
		}
		atomic_fetch_add_explicit(&cl->done, 1, memory_order_relaxed);
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

/* The API thread's timed run: one call every soak_api_ms. */
static void
soak_api_run(struct soak_client *cl)
{
	struct timespec next;
	uint64_t at;

	while (!atomic_load(&soak_stop)) {
		if (soak_api_call(cl, true) == -1)
			return;
		clock_gettime(CLOCK_MONOTONIC, &next);
		at = (uint64_t)next.tv_nsec + (uint64_t)soak_api_ms * 1000000u;
		next.tv_sec += (time_t)(at / 1000000000u);
		next.tv_nsec = (long)(at % 1000000000u);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
}

/* --- threads ------------------------------------------------------------- */

static void *
soak_thread(void *arg)
{
	struct soak_client *cl = arg;

	cl->ready = cl->api ? soak_api_call(cl, false) == 0 : soak_tpm_setup(cl) == 0;
	pthread_barrier_wait(&soak_ready);
	pthread_barrier_wait(&soak_go);
	if (cl->ready && cl->api)
		soak_api_run(cl);
	else if (cl->ready)
		while (!atomic_load(&soak_stop)) {
			size_t i;
			for (i = 0; i < SOAK_CYCLE_LEN; i++)
				if (soak_op_run(cl, soak_cycle[i], true) == -1)
					break;
			if (i < SOAK_CYCLE_LEN)
				break;
		}
	pthread_barrier_wait(&soak_stopped);
	/* The connections stay open until the end has been sampled. */
	pthread_barrier_wait(&soak_sampled);
	if (cl->fd != -1)
		close(cl->fd);
	cl->fd = -1;
	return NULL;
}

/* --- processes ----------------------------------------------------------- */

/* Parses LABEL=PID[,PID...] into g. */
static int
soak_group_parse(const char *spec, struct soak_group *g)
{
	const char *eq = strchr(spec, '='), *p;
	char *end;
	long v;

	if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(g->label))
		return -1;
	memcpy(g->label, spec, (size_t)(eq - spec));
	g->label[eq - spec] = '\0';
	g->n = 0;
	g->pids = calloc(strlen(eq), sizeof(*g->pids));
	if (g->pids == NULL)
		return -1;
	for (p = eq + 1; *p != '\0'; p = end + (*end == ',')) {
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || end == p || v <= 0 || (*end != ',' && *end != '\0'))
			return -1;
		g->pids[g->n++] = (pid_t)v;
	}
	return g->n > 0 ? 0 : -1;
}

/* Reads "FIELD: N" from a /proc file; returns 0 or -1. */
static int
soak_proc_field(const char *path, const char *field, unsigned long long *v)
{
	char line[256];
	size_t flen = strlen(field);
	FILE *f;
	int ret = -1;

	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			errno = 0;
			*v = strtoull(line + flen + 1, NULL, 10);
			ret = errno == 0 ? 0 : -1;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int
soak_count_fds(pid_t pid, unsigned long *n)
{
	char path[64];
	const struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d == NULL)
		return -1;
	*n = 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			(*n)++;
	closedir(d);
	return 0;
}

static void
soak_group_sample(const struct soak_group *g, struct soak_usage *u)
{
	unsigned long long pss, anon, threads;
	unsigned long fds;
	char path[64], status[64];

	*u = (struct soak_usage){0};
	for (size_t i = 0; i < g->n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)g->pids[i]);
		snprintf(status, sizeof(status), "/proc/%d/status", (int)g->pids[i]);
		if (soak_proc_field(path, "Pss", &pss) == -1 ||
		    soak_proc_field(path, "Pss_Anon", &anon) == -1 ||
		    soak_proc_field(status, "Threads", &threads) == -1 ||
		    soak_count_fds(g->pids[i], &fds) == -1) {
			if (u->gone == 0)
				u->gone = g->pids[i];
			continue;
		}
		u->pss += pss;
		u->anon += anon;
		u->threads += (unsigned long)threads;
		u->fds += fds;
	}
}

static void
soak_sample_print(const char *when, double t, unsigned long long cmds, const struct soak_group *g,
    size_t ng, struct soak_usage *out)
{
	for (size_t k = 0; k < ng; k++) {
		soak_group_sample(&g[k], &out[k]);
		printf("  %-6s %6.1f s %10llu cmds  %-8s (%3zu): PSS %9llu kB  Pss_Anon %9llu kB  "
		       "fds %5lu  threads %4lu%s\n",
		    when, t, cmds, g[k].label, g[k].n, out[k].pss, out[k].anon, out[k].fds,
		    out[k].threads, out[k].gone != 0 ? "  (a process is gone)" : "");
	}
	if (ng == 0)
		printf("  %-6s %6.1f s %10llu cmds\n", when, t, cmds);
	fflush(stdout);
}

/* --- the report ---------------------------------------------------------- */

static int
soak_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
soak_percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* Prints count, p50, p99 and max of each command over every client. */
static void
soak_latency_report(const struct soak_client *cl, size_t n)
{
	uint64_t *all;
	size_t total;

	printf("%-22s %9s %10s %10s %10s\n", "command", "count", "p50 us", "p99 us", "max us");
	for (int op = 0; op < SOAK_NOPS; op++) {
		total = 0;
		for (size_t i = 0; i < n; i++)
			total += cl[i].samples[op].n;
		if (total == 0)
			continue;
		all = malloc(total * sizeof(*all));
		if (all == NULL)
			fatal(1, "malloc");
		total = 0;
		for (size_t i = 0; i < n; i++) {
			if (cl[i].samples[op].n == 0)
				continue;
			memcpy(
			    all + total, cl[i].samples[op].ns, cl[i].samples[op].n * sizeof(*all));
			total += cl[i].samples[op].n;
		}
		qsort(all, total, sizeof(*all), soak_cmp_u64);
		printf("%-22s %9zu %10.1f %10.1f %10.1f\n", soak_op_names[op], total,
		    (double)soak_percentile(all, total, 50) / 1000.0,
		    (double)soak_percentile(all, total, 99) / 1000.0,
		    (double)all[total - 1] / 1000.0);
		free(all);
	}
}

/* Compares each group's start and end; returns the number of failures. */
static int
soak_steady_report(const struct soak_group *g, size_t ng, const struct soak_usage *start,
    const struct soak_usage *end, const bool *gone, unsigned long long bound_kb)
{
	const char *verdict;
	long long dpss, danon;
	int failures = 0;
	bool ok;

	for (size_t k = 0; k < ng; k++) {
		dpss = (long long)end[k].pss - (long long)start[k].pss;
		danon = (long long)end[k].anon - (long long)start[k].anon;
		ok = !gone[k] && end[k].fds <= start[k].fds && end[k].threads <= start[k].threads &&
		     dpss <= (long long)(bound_kb * g[k].n);
		verdict = ok ? "steady" : "FAILED (grew)";
		if (gone[k])
			verdict = "FAILED (a process is gone)";
		printf("%-8s (%3zu): PSS %llu -> %llu kB (%+lld kB, %+.1f kB per process; bound "
		       "+%llu kB per process), Pss_Anon %llu -> %llu kB (%+lld kB), fds %lu -> %lu "
		       "(%+ld), threads %lu -> %lu (%+ld): %s\n",
		    g[k].label, g[k].n, start[k].pss, end[k].pss, dpss,
		    (double)dpss / (double)g[k].n, bound_kb, start[k].anon, end[k].anon, danon,
		    start[k].fds, end[k].fds, (long)end[k].fds - (long)start[k].fds,
		    start[k].threads, end[k].threads, (long)end[k].threads - (long)start[k].threads,
		    verdict);
		failures += !ok;
	}
	return failures;
}

/* --- main ---------------------------------------------------------------- */

struct soak_opts {
	double seconds, interval;
	unsigned long long bound_kb;
	struct soak_group groups[8];
	size_t ngroups;
	const char *api;
};

static unsigned long
soak_parse_ulong(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		soak_usage_exit();
	return v;
}

static double
soak_parse_seconds(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0 && v < 1e6))
		soak_usage_exit();
	return v;
}

static void
soak_parse_args(int argc, char **argv, struct soak_opts *o)
{
	int ch;

	*o = (struct soak_opts){.seconds = 10, .bound_kb = 256};
	while ((ch = getopt(argc, argv, "t:i:w:p:m:a:A:")) != -1) {
		switch (ch) {
		case 't': o->seconds = soak_parse_seconds(optarg); break;
		case 'i': o->interval = soak_parse_seconds(optarg); break;
		case 'w': soak_warmup = (unsigned int)soak_parse_ulong(optarg, 100); break;
		case 'm': o->bound_kb = soak_parse_ulong(optarg, 1u << 30); break;
		case 'a': o->api = optarg; break;
		case 'A': soak_api_ms = (unsigned int)soak_parse_ulong(optarg, 60000); break;
		case 'p':
			if (o->ngroups == sizeof(o->groups) / sizeof(o->groups[0]) ||
			    soak_group_parse(optarg, &o->groups[o->ngroups]) == -1)
				soak_usage_exit();
			o->ngroups++;
			break;
		default: soak_usage_exit();
		}
	}
	if (optind == argc || soak_api_ms == 0)
		soak_usage_exit();
	if (o->interval == 0)
		o->interval = o->seconds / 4;
}

static unsigned long long
soak_commands(const struct soak_client *cl, size_t n)
{
	unsigned long long sum = 0;

	for (size_t i = 0; i < n; i++)
		if (!cl[i].api)
			sum += atomic_load_explicit(&cl[i].done, memory_order_relaxed);
	return sum;
}

/* Waits until the timed run's end, sampling every o->interval. */
static void
soak_wait(
    const struct soak_opts *o, const struct soak_client *cl, size_t n, uint64_t t0, bool *gone)
{
	uint64_t deadline = t0 + (uint64_t)(o->seconds * 1e9), next = t0, at;
	struct soak_usage u[8];
	struct timespec ts;

	for (;;) {
		next += (uint64_t)(o->interval * 1e9);
		at = next < deadline ? next : deadline;
		ts.tv_sec = (time_t)(at / 1000000000u);
		ts.tv_nsec = (long)(at % 1000000000u);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (at >= deadline)
			return;
		soak_sample_print("during", (double)(soak_now_ns() - t0) / 1e9,
		    soak_commands(cl, n), o->groups, o->ngroups, u);
		for (size_t k = 0; k < o->ngroups; k++)
			gone[k] |= u[k].gone != 0;
	}
}

int
main(int argc, char **argv)
{
	struct soak_usage start[8], end[8];
	struct soak_opts o;
	struct soak_client *cl;
	bool gone[8] = {false};
	size_t n, ntpm, nready = 0;
	uint64_t t0, t1;
	unsigned long long cmds;
	int failures = 0;
	double secs;

	log_init("soak-client", LOG_LEVEL_WARN);
	soak_parse_args(argc, argv, &o);
	ntpm = (size_t)(argc - optind);
	n = ntpm + (o.api != NULL);
	cl = calloc(n, sizeof(*cl));
	if (cl == NULL)
		fatal(1, "calloc");
	for (size_t i = 0; i < n; i++) {
		cl[i].spec = i < ntpm ? argv[optind + (int)i] : o.api;
		cl[i].api = i >= ntpm;
		cl[i].fd = -1;
		if (endpoint_parse(cl[i].spec, &cl[i].ep) == -1)
			fatalx(2, "%s: not an endpoint (unix:PATH or tcp:HOST:PORT)", cl[i].spec);
	}
	if (pthread_barrier_init(&soak_ready, NULL, (unsigned)n + 1) != 0 ||
	    pthread_barrier_init(&soak_go, NULL, (unsigned)n + 1) != 0 ||
	    pthread_barrier_init(&soak_stopped, NULL, (unsigned)n + 1) != 0 ||
	    pthread_barrier_init(&soak_sampled, NULL, (unsigned)n + 1) != 0)
		fatalx(1, "pthread_barrier_init");
	printf("soak: %zu vTPMs, one connection and thread each, %.0f s%s; cycle:", ntpm, o.seconds,
	    o.api != NULL ? ", and the control API" : "");
	for (size_t i = 0; i < SOAK_CYCLE_LEN; i++)
		printf(" %s", soak_op_names[soak_cycle[i]]);
	printf("\n");
	for (size_t i = 0; i < n; i++)
		if (pthread_create(&cl[i].thread, NULL, soak_thread, &cl[i]) != 0)
			fatalx(1, "pthread_create");

	pthread_barrier_wait(&soak_ready);
	for (size_t i = 0; i < n; i++)
		nready += cl[i].ready;
	if (nready < n)
		atomic_store(&soak_stop, 1);
	else
		printf("set-up and %u warm-up cycles done on every vTPM; samples:\n", soak_warmup);
	soak_sample_print("start", 0, 0, o.groups, o.ngroups, start);
	t0 = soak_now_ns();
	pthread_barrier_wait(&soak_go);
	if (nready == n)
		soak_wait(&o, cl, n, t0, gone);
	atomic_store(&soak_stop, 1);
	pthread_barrier_wait(&soak_stopped);
	t1 = soak_now_ns();
	cmds = soak_commands(cl, n);
	soak_sample_print("end", (double)(t1 - t0) / 1e9, cmds, o.groups, o.ngroups, end);
	pthread_barrier_wait(&soak_sampled);
	for (size_t i = 0; i < n; i++)
		pthread_join(cl[i].thread, NULL);

	printf("\n");
	soak_latency_report(cl, n);
	secs = (double)(t1 - t0) / 1e9;
	printf("\nthroughput: %llu TPM commands in %.1f s: %.0f commands/s (%.1f per vTPM)\n", cmds,
	    secs, (double)cmds / secs, (double)cmds / secs / (double)ntpm);
	for (size_t k = 0; k < o.ngroups; k++)
		gone[k] |= start[k].gone != 0 || end[k].gone != 0;
	failures += soak_steady_report(o.groups, o.ngroups, start, end, gone, o.bound_kb);
	printf("errors: %u\n", soak_nerrors);
	for (unsigned int i = 0; i < soak_nerrors && i < SOAK_MAX_ERRORS; i++)
		printf("  %s\n", soak_errors[i]);
	if (nready < n)
		printf("FAILED: %zu of %zu clients could not set up\n", n - nready, n);
	for (size_t i = 0; i < n; i++)
		for (int op = 0; op < SOAK_NOPS; op++)
			free(cl[i].samples[op].ns);
	free(cl);
	for (size_t k = 0; k < o.ngroups; k++)
		free(o.groups[k].pids);
	return soak_nerrors == 0 && failures == 0 && nready == n ? 0 : 1;
}
