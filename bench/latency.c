/*
 * bench_latency: round-trip latency of TPM 2.0 commands, servers side by
 * side.
 *
 *   bench_latency [-n N] [-m N] [-v N] [-B N] [-c CPU] [-k KEYFILE] -b BASE
 *                 -s NAME=COMMAND|NAME=unix:PATH ...
 *
 * Starts each server (bench.h says how), sets up what the commands need
 * (an ECC P-256 signing key made with CreatePrimary under the owner
 * hierarchy, a 64-byte ordinary NV index), then times each command with
 * CLOCK_MONOTONIC from before send() to the last response byte: warm-up
 * first, then the measured runs in short blocks (-B) that alternate
 * between the servers, so load elsewhere on the machine touches both alike. Every response
 * code is checked; anything but success aborts the run.
 *
 * For a server it started, it also reads the server's own time on a CPU
 * (user and system, /proc/PID/schedstat) around the timed runs: the cost
 * per command that is the server's, whatever else the machine is doing.
 *
 * Prints one line per figure on stdout, "RESULT METRIC UNIT SERVER VALUE",
 * and a readable summary on stderr.
 */
#include <getopt.h>
#include <stdio.h>

#include "bench.h"

#define TPM2_CC_PCR_EXTEND      0x00000182
#define TPM2_CC_PCR_READ        0x0000017e
#define TPM2_CC_CREATE_PRIMARY  0x00000131
#define TPM2_CC_SIGN            0x0000015d
#define TPM2_CC_NV_DEFINE_SPACE 0x0000012a
#define TPM2_CC_NV_WRITE        0x00000137
#define TPM2_CC_FLUSH_CONTEXT   0x00000165
#define TPM2_RS_PW              0x40000009
#define TPM2_RH_OWNER           0x40000001
#define TPM2_RH_NULL            0x40000007
#define TPM2_ST_HASHCHECK       0x8024
#define TPM2_ALG_SHA256         0x000b
#define TPM2_ALG_ECC            0x0023
#define TPM2_ALG_ECDSA          0x0018
#define TPM2_ALG_NULL           0x0010
#define TPM2_ECC_NIST_P256      0x0003
#define TPM2_RC_NV_DEFINED      0x0000014c
#define TPM2_RC_RETRY           0x00000922

/* TPMA_OBJECT: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
 * sign: an unrestricted signing key. */
#define BENCH_KEY_ATTRS (1u << 1 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 18)
/* TPMA_NV: OWNERWRITE, AUTHWRITE, OWNERREAD, AUTHREAD, NO_DA; type
 * ordinary (bits 4..7 zero), not ORDERLY, so every write reaches NV. */
#define BENCH_NV_ATTRS (1u << 1 | 1u << 2 | 1u << 17 | 1u << 18 | 1u << 25)
#define BENCH_NV_INDEX 0x01500016
#define BENCH_NV_SIZE  64
#define BENCH_PCR      16 /* the debug PCR: resettable, empty auth */
#define BENCH_BLOCK    10 /* commands in a row to one server, by default */

struct bench_op {
	const char *metric;                      /* name in RESULT lines */
	const char *label;                       /* name in the summary */
	struct bench_cmd cmd[BENCH_MAX_SERVERS]; /* per server: handles differ */
	size_t vary; /* when not 0: offset of 8 bytes made different every time */
	size_t iters, warmup;
	uint64_t *samples[BENCH_MAX_SERVERS];
	uint64_t cpu_ns[BENCH_MAX_SERVERS]; /* the server's time on a CPU, timed runs */
};

static void
latency_usage(void)
{
	fprintf(stderr,
	    "usage: bench_latency [-n N] [-m N] [-v N] [-B N] [-c CPU] [-k KEYFILE] -b BASE\n"
	    "                     -s NAME=COMMAND|NAME=unix:PATH ...\n"
	    "  -n N  timed runs of GetRandom, PCR_Extend, PCR_Read (default 5000)\n"
	    "  -m N  timed runs of Sign (default 1000)\n"
	    "  -v N  timed runs of NV_Write (default 300)\n"
	    "  -B N  commands in a row to one server before the next one's turn\n"
	    "        (default %d)\n"
	    "  -c    CPU the started servers are pinned to (default: not pinned)\n"
	    "  -k    state key file, given to started servers on descriptor 3\n",
	    BENCH_BLOCK);
	exit(2);
}

/* The authorization area of one password session with empty auth. */
static void
latency_put_pw_session(struct bench_cmd *c)
{
	bench_put32(c, 9);          /* authorizationSize */
	bench_put32(c, TPM2_RS_PW); /* sessionHandle */
	bench_put16(c, 0);          /* nonceCaller */
	bench_put8(c, 0);           /* sessionAttributes */
	bench_put16(c, 0);          /* hmac: the empty password */
}

static void
latency_cmd_pcr_extend(struct bench_cmd *c)
{
	uint8_t digest[32];

	memset(digest, 0xa5, sizeof(digest));
	bench_cmd_begin(c, TPM2_ST_SESSIONS, TPM2_CC_PCR_EXTEND);
	bench_put32(c, BENCH_PCR);
	latency_put_pw_session(c);
	bench_put32(c, 1); /* TPML_DIGEST_VALUES.count */
	bench_put16(c, TPM2_ALG_SHA256);
	bench_put_bytes(c, digest, sizeof(digest));
	bench_cmd_end(c);
}

static void
latency_cmd_pcr_read(struct bench_cmd *c)
{
	uint8_t select[3] = {0};

	select[BENCH_PCR / 8] = 1u << (BENCH_PCR % 8);
	bench_cmd_begin(c, TPM2_ST_NO_SESSIONS, TPM2_CC_PCR_READ);
	bench_put32(c, 1); /* TPML_PCR_SELECTION.count */
	bench_put16(c, TPM2_ALG_SHA256);
	bench_put8(c, sizeof(select));
	bench_put_bytes(c, select, sizeof(select));
	bench_cmd_end(c);
}

/* CreatePrimary under the owner hierarchy: ECC P-256, ECDSA/SHA-256,
 * unrestricted signing key, empty auth. */
static void
latency_cmd_create_primary(struct bench_cmd *c)
{
	size_t pub_size;

	bench_cmd_begin(c, TPM2_ST_SESSIONS, TPM2_CC_CREATE_PRIMARY);
	bench_put32(c, TPM2_RH_OWNER);
	latency_put_pw_session(c);
	/* TPM2B_SENSITIVE_CREATE: empty userAuth and data */
	bench_put16(c, 4);
	bench_put16(c, 0);
	bench_put16(c, 0);
	/* TPM2B_PUBLIC */
	pub_size = c->len;
	bench_put16(c, 0);
	bench_put16(c, TPM2_ALG_ECC);    /* type */
	bench_put16(c, TPM2_ALG_SHA256); /* nameAlg */
	bench_put32(c, BENCH_KEY_ATTRS);
	bench_put16(c, 0);               /* authPolicy */
	bench_put16(c, TPM2_ALG_NULL);   /* symmetric */
	bench_put16(c, TPM2_ALG_ECDSA);  /* scheme */
	bench_put16(c, TPM2_ALG_SHA256); /* scheme's hash */
	bench_put16(c, TPM2_ECC_NIST_P256);
	bench_put16(c, TPM2_ALG_NULL); /* kdf */
	bench_put16(c, 0);             /* unique.x */
	bench_put16(c, 0);             /* unique.y */
	bench_patch16(c, pub_size, (uint16_t)(c->len - pub_size - 2));
	bench_put16(c, 0); /* outsideInfo */
	bench_put32(c, 0); /* creationPCR: no selection */
	bench_cmd_end(c);
}

/* Sign of a 32-byte digest with ECDSA/SHA-256 and a null ticket. */
static void
latency_cmd_sign(struct bench_cmd *c, uint32_t key)
{
	uint8_t digest[32];

	memset(digest, 0x5a, sizeof(digest));
	bench_cmd_begin(c, TPM2_ST_SESSIONS, TPM2_CC_SIGN);
	bench_put32(c, key);
	latency_put_pw_session(c);
	bench_put16(c, sizeof(digest));
	bench_put_bytes(c, digest, sizeof(digest));
	bench_put16(c, TPM2_ALG_ECDSA);
	bench_put16(c, TPM2_ALG_SHA256);
	bench_put16(c, TPM2_ST_HASHCHECK); /* TPMT_TK_HASHCHECK: the null ticket */
	bench_put32(c, TPM2_RH_NULL);
	bench_put16(c, 0);
	bench_cmd_end(c);
}

static void
latency_cmd_nv_define(struct bench_cmd *c)
{
	bench_cmd_begin(c, TPM2_ST_SESSIONS, TPM2_CC_NV_DEFINE_SPACE);
	bench_put32(c, TPM2_RH_OWNER);
	latency_put_pw_session(c);
	bench_put16(c, 0);  /* auth */
	bench_put16(c, 14); /* TPM2B_NV_PUBLIC */
	bench_put32(c, BENCH_NV_INDEX);
	bench_put16(c, TPM2_ALG_SHA256);
	bench_put32(c, BENCH_NV_ATTRS);
	bench_put16(c, 0); /* authPolicy */
	bench_put16(c, BENCH_NV_SIZE);
	bench_cmd_end(c);
}

/* NV_Write of the whole index, authorized by the owner. Returns the
 * offset of the data: the TPM skips the write of data equal to what the
 * index holds, so the caller changes it before every run. */
static size_t
latency_cmd_nv_write(struct bench_cmd *c)
{
	size_t off;

	uint8_t data[BENCH_NV_SIZE];

	memset(data, 0x3c, sizeof(data));
	bench_cmd_begin(c, TPM2_ST_SESSIONS, TPM2_CC_NV_WRITE);
	bench_put32(c, TPM2_RH_OWNER);
	bench_put32(c, BENCH_NV_INDEX);
	latency_put_pw_session(c);
	bench_put16(c, sizeof(data));
	off = c->len;
	bench_put_bytes(c, data, sizeof(data));
	bench_put16(c, 0); /* offset */
	bench_cmd_end(c);
	return off;
}

/* Creates the signing key and the NV index on one server; returns the
 * key's handle. */
static uint32_t
latency_setup(const struct bench_server *s, int fd)
{
	struct bench_cmd c;
	uint8_t rsp[4096];
	size_t len;
	uint32_t rc, key;

	latency_cmd_create_primary(&c);
	bench_expect_ok(s->name, "CreatePrimary", fd, &c, rsp, sizeof(rsp), &len);
	if (len < TPM_HEADER_LEN + 4)
		fatalx(1, "%s: CreatePrimary: short response", s->name);
	key = bench_get32(rsp + TPM_HEADER_LEN);

	latency_cmd_nv_define(&c);
	rc = bench_roundtrip(s->name, fd, &c, rsp, sizeof(rsp), NULL);
	if (rc == TPM2_RC_NV_DEFINED)
		log_info("%s: NV index 0x%x already defined; reusing it", s->name, BENCH_NV_INDEX);
	else if (rc != 0)
		fatalx(1, "%s: NV_DefineSpace: TPM response code 0x%x", s->name, rc);
	return key;
}

/*
 * Sends op once before anything is timed. The TPM tests an algorithm the
 * first time a command uses it and then answers TPM_RC_RETRY (ECDSA signing
 * does so): the command is sent again, as the specification asks.
 */
static void
latency_prime(
    const struct bench_server *s, int fd, const struct bench_op *op, const struct bench_cmd *c)
{
	uint8_t rsp[4096];
	uint32_t rc;
	int tries = 3;

	while ((rc = bench_roundtrip(s->name, fd, c, rsp, sizeof(rsp), NULL)) == TPM2_RC_RETRY &&
	       --tries > 0)
		;
	if (rc != 0)
		fatalx(1, "%s: %s: TPM response code 0x%x", s->name, op->label, rc);
}

/* Runs op n times on fd; stores each round trip in out (ns) unless NULL. */
static void
latency_run(const struct bench_server *s, int fd, const struct bench_op *op, struct bench_cmd *c,
    size_t n, uint64_t *out)
{
	static uint8_t rsp[4096];
	static uint64_t serial;
	uint64_t t0, t1;
	uint32_t rc;

	for (size_t i = 0; i < n; i++) {
		if (op->vary != 0) {
			serial++;
			bench_patch32(c, op->vary, (uint32_t)(serial >> 32));
			bench_patch32(c, op->vary + 4, (uint32_t)serial);
		}
		t0 = bench_now_ns();
		rc = bench_roundtrip(s->name, fd, c, rsp, sizeof(rsp), NULL);
		t1 = bench_now_ns();
		if (rc != 0)
			fatalx(1, "%s: %s: TPM response code 0x%x", s->name, op->label, rc);
		if (out != NULL)
			out[i] = t1 - t0;
	}
}

/* Measures op on every server, in blocks of block commands that alternate
 * between them. */
static void
latency_measure(
    struct bench_server *sv, const int *fds, size_t ns, struct bench_op *op, size_t block)
{
	size_t n;

	for (size_t k = 0; k < ns; k++) {
		op->samples[k] = calloc(op->iters, sizeof(uint64_t));
		if (op->samples[k] == NULL)
			fatal(1, "calloc");
		latency_prime(&sv[k], fds[k], op, &op->cmd[k]);
		latency_run(&sv[k], fds[k], op, &op->cmd[k], op->warmup, NULL);
	}
	for (size_t done = 0, b = 0; done < op->iters; done += n, b++) {
		n = op->iters - done < block ? op->iters - done : block;
		for (size_t j = 0; j < ns; j++) {
			size_t k = (b + j) % ns; /* who goes first alternates */
			uint64_t cpu0 = bench_server_cpu_ns(&sv[k]);
			latency_run(&sv[k], fds[k], op, &op->cmd[k], n, op->samples[k] + done);
			op->cpu_ns[k] += bench_server_cpu_ns(&sv[k]) - cpu0;
		}
	}
}

static void
latency_report(const struct bench_server *sv, size_t ns, struct bench_op *op)
{
	double med, p99, cpu;

	for (size_t k = 0; k < ns; k++) {
		qsort(op->samples[k], op->iters, sizeof(uint64_t), bench_cmp_u64);
		med = (double)bench_percentile(op->samples[k], op->iters, 50) / 1000.0;
		p99 = (double)bench_percentile(op->samples[k], op->iters, 99) / 1000.0;
		printf("RESULT %s.median us %s %.1f\n", op->metric, sv[k].name, med);
		printf("RESULT %s.p99 us %s %.1f\n", op->metric, sv[k].name, p99);
		fprintf(stderr, "  %-16s %-8s median %9.1f us  p99 %9.1f us", op->label, sv[k].name,
		    med, p99);
		if (sv[k].pid != -1) {
			cpu = (double)op->cpu_ns[k] / (double)op->iters / 1000.0;
			printf("RESULT %s.cpu us %s %.2f\n", op->metric, sv[k].name, cpu);
			fprintf(stderr, "  server CPU %7.2f us", cpu);
		}
		fprintf(stderr, "  (n=%zu)\n", op->iters);
		free(op->samples[k]);
	}
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct bench_server sv[BENCH_MAX_SERVERS];
	static struct bench_op ops[5];
	size_t ns = 0, small = 5000, sign = 1000, nvw = 300, block = BENCH_BLOCK;
	const char *keyfile = NULL, *base = NULL;
	int fds[BENCH_MAX_SERVERS], ch, cpu = -1;
	uint32_t key;

	log_init("bench_latency", LOG_LEVEL_INFO);
	while ((ch = getopt(argc, argv, "n:m:v:B:c:k:b:s:")) != -1) {
		switch (ch) {
		case 'n': small = strtoul(optarg, NULL, 10); break;
		case 'm': sign = strtoul(optarg, NULL, 10); break;
		case 'v': nvw = strtoul(optarg, NULL, 10); break;
		case 'B': block = strtoul(optarg, NULL, 10); break;
		case 'c': cpu = atoi(optarg); break;
		case 'k': keyfile = optarg; break;
		case 'b': base = optarg; break;
		case 's':
			if (ns == BENCH_MAX_SERVERS)
				fatalx(2, "at most %d servers", BENCH_MAX_SERVERS);
			bench_server_parse(optarg, &sv[ns++]);
			break;
		default: latency_usage();
		}
	}
	if (ns == 0 || base == NULL || optind != argc || small == 0 || sign == 0 || nvw == 0 ||
	    block == 0)
		latency_usage();

	ops[0] = (struct bench_op){
	    .metric = "getrandom", .label = "GetRandom(16)", .iters = small, .warmup = small / 10};
	ops[1] = (struct bench_op){
	    .metric = "pcr_extend", .label = "PCR_Extend", .iters = small, .warmup = small / 10};
	ops[2] = (struct bench_op){
	    .metric = "pcr_read", .label = "PCR_Read", .iters = small, .warmup = small / 10};
	ops[3] = (struct bench_op){
	    .metric = "sign", .label = "ECDSA P-256 Sign", .iters = sign, .warmup = sign / 10};
	ops[4] = (struct bench_op){
	    .metric = "nv_write", .label = "NV_Write(64)", .iters = nvw, .warmup = nvw / 10};

	for (size_t k = 0; k < ns; k++) {
		if (sv[k].cmdline != NULL) {
			bench_server_dir(&sv[k], base, -1);
			bench_server_start(&sv[k], keyfile, cpu);
		}
		fds[k] = bench_server_ready(&sv[k], NULL);
		key = latency_setup(&sv[k], fds[k]);
		bench_cmd_getrandom(&ops[0].cmd[k], 16);
		latency_cmd_pcr_extend(&ops[1].cmd[k]);
		latency_cmd_pcr_read(&ops[2].cmd[k]);
		latency_cmd_sign(&ops[3].cmd[k], key);
		ops[4].vary = latency_cmd_nv_write(&ops[4].cmd[k]);
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		latency_measure(sv, fds, ns, &ops[i], block);
		latency_report(sv, ns, &ops[i]);
	}
	for (size_t k = 0; k < ns; k++)
		bench_server_stop(&sv[k], sv[k].pid == -1 ? -1 : fds[k]);
	return 0;
}
