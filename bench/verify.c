/*
 * bench_verify: quote verifications per second, two ways.
 *
 *   bench_verify -n N -l LABEL -a AKCERT -r ROOT [-u UNTRUSTED]... -m MSG -s SIG
 *                -f PCRFILE -q NONCEHEX [-p HOSTCONFIG] [-c CRL]...
 *	vtpm-attest verify's library path: attest_verify_quote() called N
 *	times in a loop on the same evidence (the AK certificate's chain to
 *	the root, the AK's signature over the quote, the nonce, the PCR
 *	digest, the vtpmd extension and the policy: require-host-config
 *	HOSTCONFIG, or accept-virtual). The files are tpm2_quote's -m, -s
 *	and -o outputs and PEM or DER certificates, read once. With -c,
 *	each verification also checks the revocation of the AK's whole
 *	chain in the CRLs given, as vtpm-attest verify --crl does: the CRLs
 *	are read and checked once, before the loop (attest_crls_load, as a
 *	challenger that caches them); each verification derives the chain
 *	from the AK certificate (attest_chain_of) and looks its three links
 *	up (attest_revoked_crls), all of which must be good. The
 *	replay check is left out (chk.prev = NULL): it compares the quote's
 *	clockInfo with the last one the command recorded on disk (--state),
 *	which would refuse every repetition of one quote; the library itself
 *	reads no file, clock or network.
 *
 *   bench_verify -n N -l LABEL [-U FILE] -x CMD [ARG...]
 *	A process per check: CMD run N times (posix_spawn, output to
 *	/dev/null), each of which must exit 0; -U FILE is removed before
 *	each run (vtpm-attest verify's state file, so that the same quote is
 *	not refused as a replay).
 *
 * One warm-up call first, which must succeed. Prints on stdout
 *	RESULT verify.LABEL per_s - VALUE	checks per second, wall clock
 *	RESULT verify.LABEL per_cpu_s - VALUE	checks per second of CPU time
 *						(the process's own, or its
 *						children's for -x)
 *	RESULT verify.LABEL us - VALUE		microseconds per check
 * and a readable line on stderr. Pin it with taskset: one process, one
 * thread, so per_s is per core.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "attest/attest.h"
#include "bench.h"

#define VERIFY_MAX_UNTRUSTED 4
#define VERIFY_MAX_CRLS      ATTEST_CRL_MAX
#define VERIFY_FILE_MAX      (1u << 20)

struct verify_opts {
	long n;
	const char *label;
	const char *ak_cert, *root, *msg, *sig, *pcrs, *nonce, *host_config, *unlink_path;
	const char *untrusted[VERIFY_MAX_UNTRUSTED];
	size_t n_untrusted;
	const char *crls[VERIFY_MAX_CRLS];
	size_t n_crls;
	char **cmd; /* -x: the command and its arguments */
};

static void
verify_usage(void)
{
	fatalx(2, "usage: bench_verify -n N -l LABEL -a AKCERT -r ROOT [-u UNTRUSTED]... -m MSG "
	          "-s SIG -f PCRFILE -q NONCEHEX [-p HOSTCONFIG] [-c CRL]...\n"
	          "       bench_verify -n N -l LABEL [-U FILE] -x CMD [ARG...]");
}

static void
verify_parse(struct verify_opts *o, int argc, char **argv)
{
	int c;

	*o = (struct verify_opts){.n = 1000};
	/* '+': options stop at -x's command */
	while ((c = getopt(argc, argv, "+n:l:a:r:u:m:s:f:q:p:c:U:x")) != -1) {
		switch (c) {
		case 'n': o->n = strtol(optarg, NULL, 10); break;
		case 'l': o->label = optarg; break;
		case 'a': o->ak_cert = optarg; break;
		case 'r': o->root = optarg; break;
		case 'm': o->msg = optarg; break;
		case 's': o->sig = optarg; break;
		case 'f': o->pcrs = optarg; break;
		case 'q': o->nonce = optarg; break;
		case 'p': o->host_config = optarg; break;
		case 'U': o->unlink_path = optarg; break;
		case 'u':
			if (o->n_untrusted == VERIFY_MAX_UNTRUSTED)
				fatalx(2, "at most %d -u", VERIFY_MAX_UNTRUSTED);
			o->untrusted[o->n_untrusted++] = optarg;
			break;
		case 'c':
			if (o->n_crls == VERIFY_MAX_CRLS)
				fatalx(2, "at most %d -c", VERIFY_MAX_CRLS);
			o->crls[o->n_crls++] = optarg;
			break;
		case 'x':
			if (optind >= argc)
				verify_usage();
			o->cmd = argv + optind;
			optind = argc;
			break;
		default: verify_usage();
		}
	}
	if (o->n < 1 || o->label == NULL || optind != argc)
		verify_usage();
	if (o->cmd == NULL && (o->ak_cert == NULL || o->root == NULL || o->msg == NULL ||
	                          o->sig == NULL || o->pcrs == NULL || o->nonce == NULL))
		verify_usage();
}

static double
verify_cpu_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
verify_report(const char *label, long n, uint64_t wall_ns, double cpu_s)
{
	double wall_s = (double)wall_ns / 1e9;

	printf("RESULT verify.%s per_s - %.1f\n", label, (double)n / wall_s);
	printf("RESULT verify.%s per_cpu_s - %.1f\n", label, cpu_s > 0 ? (double)n / cpu_s : 0.0);
	printf("RESULT verify.%s us - %.1f\n", label, (double)wall_ns / 1e3 / (double)n);
	fprintf(stderr, "bench_verify %s: %ld checks in %.3f s: %.1f/s, %.1f us each, %.3f s CPU\n",
	    label, n, wall_s, (double)n / wall_s, (double)wall_ns / 1e3 / (double)n, cpu_s);
}

static void
verify_read(const char *path, uint8_t *out, size_t max, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;

	if (fileio_read(path, max, &buf, &n) == -1)
		fatal(1, "%s", path);
	memcpy(out, buf, n);
	*len = n;
	free(buf);
}

static void
verify_cert(const char *path, struct certs_der *out)
{
	uint8_t *der = NULL;
	size_t len = 0;

	if (certs_read(path, &der, &len) == -1)
		fatal(1, "%s: not a certificate", path);
	*out = (struct certs_der){der, len};
}

/* One verification: the quote, then, with crls, its chain's revocation
 * (0 trusted, -1 refused with res->reason). */
static int
verify_once(
    const struct attest_check *chk, const struct certs_crls *crls, struct attest_result *res)
{
	struct attest_chain chain;
	struct err err;

	if (attest_verify_quote(chk, res) == -1)
		return -1;
	if (crls == NULL)
		return 0;
	if (attest_chain_of(&chk->ak_cert, &chain, &err) == -1 ||
	    attest_revoked_crls(crls, &chain, &err) == -1) {
		snprintf(res->reason, sizeof(res->reason), "%s", err.msg);
		return -1;
	}
	return 0;
}

/* The library path: verify_once() n times. */
static void
verify_library(const struct verify_opts *o)
{
	struct attest_evidence *ev = calloc(1, sizeof(*ev));
	struct certs_der ak, root, untrusted[VERIFY_MAX_UNTRUSTED];
	struct attest_check chk;
	struct attest_result res;
	struct certs_crls *crls = NULL;
	uint8_t nonce[EVIDENCE_DATA_MAX], *buf = NULL;
	size_t nonce_len = strlen(o->nonce) / 2, len = 0;
	struct err err;
	uint64_t t0, t1;
	double c0, c1;
	long bad = 0;

	if (ev == NULL)
		fatalx(1, "out of memory");
	if (strlen(o->nonce) % 2 != 0 || nonce_len > sizeof(nonce) ||
	    hex_decode(o->nonce, nonce, nonce_len) == -1)
		fatalx(2, "-q: not hex of at most %zu bytes", sizeof(nonce));
	verify_cert(o->ak_cert, &ak);
	verify_cert(o->root, &root);
	for (size_t i = 0; i < o->n_untrusted; i++)
		verify_cert(o->untrusted[i], &untrusted[i]);
	verify_read(o->msg, ev->attest, sizeof(ev->attest), &ev->attest_len);
	verify_read(o->sig, ev->signature, sizeof(ev->signature), &ev->signature_len);
	if (fileio_read(o->pcrs, VERIFY_FILE_MAX, &buf, &len) == -1)
		fatal(1, "%s", o->pcrs);
	if (attest_pcrfile_parse(buf, len, ev->pcrs, &ev->n_pcrs, &err) == -1)
		fatalx(1, "%s: %s", o->pcrs, err.msg);
	free(buf);
	chk = (struct attest_check){.ak_cert = ak,
	    .untrusted = untrusted,
	    .n_untrusted = o->n_untrusted,
	    .roots = &root,
	    .n_roots = 1,
	    .now = (int64_t)time(NULL),
	    .ev = ev,
	    .nonce = nonce,
	    .nonce_len = nonce_len,
	    .policy = o->host_config != NULL ? ATTEST_REQUIRE_HOST_CONFIG : ATTEST_ACCEPT_VIRTUAL,
	    .host_config = o->host_config,
	    .prev = NULL};
	if (o->n_crls > 0 && attest_crls_load(o->crls, o->n_crls, untrusted, o->n_untrusted, &root,
	                         1, chk.now, &crls, &err) == -1)
		fatalx(1, "%s: %s", o->label, err.msg);
	if (verify_once(&chk, crls, &res) == -1)
		fatalx(1, "%s: the quote does not verify: %s", o->label, res.reason);
	fprintf(stderr, "bench_verify %s: trusted: %s%s\n", o->label, res.verdict,
	    crls != NULL ? "; not revoked: AK, vEK and CK certificates (CRLs)" : "");
	c0 = verify_cpu_s(CLOCK_PROCESS_CPUTIME_ID);
	t0 = bench_now_ns();
	for (long i = 0; i < o->n; i++)
		if (verify_once(&chk, crls, &res) == -1)
			bad++;
	t1 = bench_now_ns();
	c1 = verify_cpu_s(CLOCK_PROCESS_CPUTIME_ID);
	if (bad != 0)
		fatalx(
		    1, "%s: %ld of %ld verifications refused: %s", o->label, bad, o->n, res.reason);
	verify_report(o->label, o->n, t1 - t0, c1 - c0);
	certs_crls_free(crls);
	free((void *)ak.der);
	free((void *)root.der);
	for (size_t i = 0; i < o->n_untrusted; i++)
		free((void *)untrusted[i].der);
	free(ev);
}

/* One run of the command; its status (0: exited 0). quiet: output to
 * /dev/null. Adds the child's CPU time to *cpu_s. */
static int
verify_spawn(const struct verify_opts *o, bool quiet, double *cpu_s)
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	pid_t pid;
	int status, r;

	if (o->unlink_path != NULL && unlink(o->unlink_path) == -1 && errno != ENOENT)
		fatal(1, "unlink %s", o->unlink_path);
	posix_spawn_file_actions_init(&fa);
	if (quiet) {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	r = posix_spawnp(&pid, o->cmd[0], &fa, NULL, o->cmd, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		errno = r;
		fatal(1, "%s", o->cmd[0]);
	}
	while (wait4(pid, &status, 0, &ru) == -1)
		if (errno != EINTR)
			fatal(1, "wait4");
	*cpu_s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* A process per check: the command n times. */
static void
verify_command(const struct verify_opts *o)
{
	double cpu = 0;
	uint64_t t0, t1;

	if (verify_spawn(o, false, &cpu) == -1)
		fatalx(1, "%s: %s failed (its output above)", o->label, o->cmd[0]);
	cpu = 0;
	t0 = bench_now_ns();
	for (long i = 0; i < o->n; i++)
		if (verify_spawn(o, true, &cpu) == -1) {
			verify_spawn(o, false, &cpu);
			fatalx(1, "%s: run %ld of %s failed (its output above)", o->label, i + 1,
			    o->cmd[0]);
		}
	t1 = bench_now_ns();
	verify_report(o->label, o->n, t1 - t0, cpu);
}

int
main(int argc, char **argv)
{
	struct verify_opts o;

	verify_parse(&o, argc, argv);
	if (o.cmd != NULL)
		verify_command(&o);
	else
		verify_library(&o);
	return 0;
}
