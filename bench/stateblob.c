/*
 * bench_stateblob: the cost of a save and a restore on the control
 * channel, servers side by side: GET_STATEBLOB of the permanent state
 * (vtpmd wraps it: AES-256-GCM, docs/instance.md "State blobs"), and
 * SET_STATEBLOB of that blob while the TPM is stopped (vtpmd unwraps,
 * checks it and stores it durably), each timed from before send() to the
 * last byte of the answer.
 *
 *   bench_stateblob [-n N] [-c CPU] [-k KEYFILE] -b BASE -s NAME=COMMAND ...
 *
 * Prints "RESULT METRIC UNIT SERVER VALUE" lines (stateblob_get and
 * stateblob_set, p50 and p99 in µs) on stdout, a summary on stderr.
 */
#include <stdio.h>

#include "bench.h"

#define CMD_INIT          0x00000002
#define CMD_GET_STATEBLOB 0x0000000c
#define CMD_SET_STATEBLOB 0x0000000d
#define CMD_STOP          0x0000000e
#define BLOB_PERMANENT    1
#define BLOB_MAX          (1u << 20)

static void
stateblob_usage(void)
{
	fprintf(stderr, "usage: bench_stateblob [-n N] [-c CPU] [-k KEYFILE] -b BASE "
	                "-s NAME=COMMAND ...\n");
	exit(2);
}

static void
sb_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
sb_read(const char *who, int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			fatalx(1, "%s: control channel closed before the answer", who);
		got += (size_t)n;
	}
}

static void
sb_send(const char *who, int fd, const uint8_t *buf, size_t len)
{
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		fatal(1, "%s: control send", who);
}

/* GET_STATEBLOB of the permanent state into blob; returns its length and
 * the flags the server set. */
static size_t
sb_get(const char *who, int fd, uint8_t *blob, uint32_t *flags)
{
	uint8_t req[16], hdr[16];
	uint32_t len;

	sb_put32(req, CMD_GET_STATEBLOB);
	sb_put32(req + 4, 0);
	sb_put32(req + 8, BLOB_PERMANENT);
	sb_put32(req + 12, 0);
	sb_send(who, fd, req, sizeof(req));
	sb_read(who, fd, hdr, sizeof(hdr));
	if (bench_get32(hdr) != 0)
		fatalx(1, "%s: GET_STATEBLOB answered 0x%x", who, bench_get32(hdr));
	len = bench_get32(hdr + 12);
	if (len == 0 || len > BLOB_MAX || len != bench_get32(hdr + 8))
		fatalx(1, "%s: GET_STATEBLOB: %u bytes of %u", who, len, bench_get32(hdr + 8));
	sb_read(who, fd, blob, len);
	*flags = bench_get32(hdr + 4);
	return len;
}

/* SET_STATEBLOB of blob (the server must be stopped). */
static void
sb_set(const char *who, int fd, uint8_t *req, const uint8_t *blob, size_t len, uint32_t flags)
{
	uint8_t res[4];

	sb_put32(req, CMD_SET_STATEBLOB);
	sb_put32(req + 4, flags);
	sb_put32(req + 8, BLOB_PERMANENT);
	sb_put32(req + 12, (uint32_t)len);
	memcpy(req + 16, blob, len);
	sb_send(who, fd, req, 16 + len);
	sb_read(who, fd, res, sizeof(res));
	if (bench_get32(res) != 0)
		fatalx(1, "%s: SET_STATEBLOB answered 0x%x", who, bench_get32(res));
}

/* INIT (flags 0) after the restores: the TPM runs the restored state. */
static void
sb_init(const char *who, int fd)
{
	uint8_t req[8], res[4];

	sb_put32(req, CMD_INIT);
	sb_put32(req + 4, 0);
	sb_send(who, fd, req, sizeof(req));
	sb_read(who, fd, res, sizeof(res));
	if (bench_get32(res) != 0)
		fatalx(1, "%s: INIT after the restores answered 0x%x", who, bench_get32(res));
}

static void
sb_report(const char *metric, const char *server, uint64_t *t, size_t n)
{
	uint64_t p50, p99;

	qsort(t, n, sizeof(*t), bench_cmp_u64);
	p50 = bench_percentile(t, n, 50);
	p99 = bench_percentile(t, n, 99);
	printf("RESULT %s.p50 us %s %.1f\n", metric, server, (double)p50 / 1000.0);
	printf("RESULT %s.p99 us %s %.1f\n", metric, server, (double)p99 / 1000.0);
	fprintf(stderr, "%-8s %-16s p50 %8.1f µs  p99 %8.1f µs\n", server, metric,
	    (double)p50 / 1000.0, (double)p99 / 1000.0);
}

/* Times n saves, then n restores of the last one, on server s. */
static void
sb_measure(struct bench_server *s, size_t n)
{
	uint64_t *get_t = calloc(n, sizeof(uint64_t)), *set_t = calloc(n, sizeof(uint64_t)), t0;
	uint8_t *blob = malloc(BLOB_MAX), *req = malloc(BLOB_MAX + 16);
	uint32_t flags = 0;
	size_t len = 0;
	int fd;

	if (get_t == NULL || set_t == NULL || blob == NULL || req == NULL)
		fatal(1, "malloc");
	fd = endpoint_connect(&s->ctrl);
	if (fd == -1)
		fatal(1, "%s: connect to control channel", s->name);
	for (size_t i = 0; i < n; i++) {
		t0 = bench_now_ns();
		len = sb_get(s->name, fd, blob, &flags);
		get_t[i] = bench_now_ns() - t0;
	}
	close(fd);
	if (bench_ctrl(s, CMD_STOP) != 0)
		fatalx(1, "%s: STOP refused", s->name);
	fd = endpoint_connect(&s->ctrl);
	if (fd == -1)
		fatal(1, "%s: connect to control channel", s->name);
	for (size_t i = 0; i < n; i++) {
		t0 = bench_now_ns();
		sb_set(s->name, fd, req, blob, len, flags);
		set_t[i] = bench_now_ns() - t0;
	}
	sb_init(s->name, fd);
	close(fd);
	fprintf(stderr, "%-8s permanent blob of %zu bytes\n", s->name, len);
	sb_report("stateblob_get", s->name, get_t, n);
	sb_report("stateblob_set", s->name, set_t, n);
	free(get_t);
	free(set_t);
	free(blob);
	free(req);
}

int
main(int argc, char **argv)
{
	struct bench_server sv[BENCH_MAX_SERVERS];
	const char *keyfile = NULL, *base = NULL;
	size_t ns = 0, n = 200;
	int fds[BENCH_MAX_SERVERS], ch, cpu = -1;

	log_init("bench_stateblob", LOG_LEVEL_INFO);
	while ((ch = getopt(argc, argv, "n:c:k:b:s:")) != -1) {
		switch (ch) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'c': cpu = atoi(optarg); break;
		case 'k': keyfile = optarg; break;
		case 'b': base = optarg; break;
		case 's':
			if (ns == BENCH_MAX_SERVERS)
				fatalx(2, "at most %d servers", BENCH_MAX_SERVERS);
			bench_server_parse(optarg, &sv[ns++]);
			if (sv[ns - 1].cmdline == NULL)
				fatalx(2, "-s %s: the benchmark starts its servers", optarg);
			break;
		default: stateblob_usage();
		}
	}
	if (ns == 0 || base == NULL || optind != argc || n == 0)
		stateblob_usage();
	for (size_t k = 0; k < ns; k++) {
		bench_server_dir(&sv[k], base, -1);
		bench_server_start(&sv[k], keyfile, cpu);
		fds[k] = bench_server_ready(&sv[k], NULL);
	}
	for (size_t k = 0; k < ns; k++)
		sb_measure(&sv[k], n);
	for (size_t k = 0; k < ns; k++)
		bench_server_stop(&sv[k], -1);
	for (size_t k = 0; k < ns; k++)
		close(fds[k]);
	return 0;
}
