/*
 * bench.h: what the benchmark programs share.
 *
 * A benchmark compares servers that speak the swtpm socket protocol,
 * vtpmd's instance and swtpm, each given on the command line as
 *
 *	-s NAME=COMMAND LINE	started by the benchmark, in its own directory
 *				BASE/NAME (or BASE/NAME/I); "@DIR@" in the
 *				command line is replaced by that directory and
 *				the server must listen on unix:@DIR@/data (TPM
 *				commands) and unix:@DIR@/ctrl (control channel)
 *	-s NAME=unix:PATH	already running; only the data channel is used
 *
 * Started servers are pinned to one CPU, get the state key file (-k) on
 * descriptor 3, write their output to @DIR@/log, and die with the
 * benchmark (PR_SET_PDEATHSIG), so an aborted run leaves no process.
 *
 * Each bench/NAME.c is its own program (build/bench_NAME), so this header
 * holds static functions; those a program does not call are marked unused.
 */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "instance/instance.h"

#define BENCH_UNUSED      __attribute__((unused))
#define BENCH_MAX_SERVERS 4
#define BENCH_MAX_ARGS    64
#define BENCH_READY_MS    30000
#define BENCH_STOP_MS     10000

#define TPM2_ST_NO_SESSIONS 0x8001
#define TPM2_ST_SESSIONS    0x8002
#define TPM2_CC_GET_RANDOM  0x0000017b
#define TPM2_CC_SHUTDOWN    0x00000145
#define TPM2_SU_CLEAR       0x0000
#define SWTPM_CMD_SHUTDOWN  0x00000003

/* One server under test. */
struct bench_server {
	char name[32];
	char *cmdline; /* NULL for a server that is already running */
	char dir[256]; /* its directory (@DIR@) */
	struct endpoint data, ctrl;
	pid_t pid;                  /* -1 when not started by us */
	volatile uint64_t *exec_ns; /* shared page: when the child called execve */
};

/* A TPM command under construction (big-endian, TPM 2.0 framing). */
struct bench_cmd {
	uint8_t b[1024];
	size_t len;
};

static BENCH_UNUSED uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static BENCH_UNUSED void
bench_put8(struct bench_cmd *c, uint8_t v)
{
	if (c->len + 1 > sizeof(c->b))
		fatalx(1, "bench: command too long");
	c->b[c->len++] = v;
}

static BENCH_UNUSED void
bench_put16(struct bench_cmd *c, uint16_t v)
{
	bench_put8(c, (uint8_t)(v >> 8));
	bench_put8(c, (uint8_t)v);
}

static BENCH_UNUSED void
bench_put32(struct bench_cmd *c, uint32_t v)
{
	bench_put16(c, (uint16_t)(v >> 16));
	bench_put16(c, (uint16_t)v);
}

static BENCH_UNUSED void
bench_put_bytes(struct bench_cmd *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bench_put8(c, p[i]);
}

/* Overwrites the 16-bit value at off (a size field written as 0 first). */
static BENCH_UNUSED void
bench_patch16(struct bench_cmd *c, size_t off, uint16_t v)
{
	c->b[off] = (uint8_t)(v >> 8);
	c->b[off + 1] = (uint8_t)v;
}

static BENCH_UNUSED void
bench_patch32(struct bench_cmd *c, size_t off, uint32_t v)
{
	bench_patch16(c, off, (uint16_t)(v >> 16));
	bench_patch16(c, off + 2, (uint16_t)v);
}

static BENCH_UNUSED uint32_t
bench_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Starts a command: tag, a size filled in by bench_cmd_end, the code. */
static BENCH_UNUSED void
bench_cmd_begin(struct bench_cmd *c, uint16_t tag, uint32_t code)
{
	c->len = 0;
	bench_put16(c, tag);
	bench_put32(c, 0);
	bench_put32(c, code);
}

static BENCH_UNUSED void
bench_cmd_end(struct bench_cmd *c)
{
	bench_patch32(c, 2, (uint32_t)c->len);
}

static BENCH_UNUSED void
bench_cmd_getrandom(struct bench_cmd *c, uint16_t bytes)
{
	bench_cmd_begin(c, TPM2_ST_NO_SESSIONS, TPM2_CC_GET_RANDOM);
	bench_put16(c, bytes);
	bench_cmd_end(c);
}

/*
 * Sends one command on fd (a connection to server who) and reads its whole
 * response into rsp (cap bytes). Returns the response code; a broken
 * connection or a malformed response is fatal: a benchmark has no use for
 * a server that fails.
 */
static BENCH_UNUSED uint32_t
bench_roundtrip(
    const char *who, int fd, const struct bench_cmd *c, uint8_t *rsp, size_t cap, size_t *rsp_len)
{
	struct tpm_header h = {0};
	size_t got = 0;
	ssize_t n;

	if (send(fd, c->b, c->len, MSG_NOSIGNAL) != (ssize_t)c->len)
		fatal(1, "%s: send", who);
	for (;;) {
		n = read(fd, rsp + got, cap - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fatal(1, "%s: read", who);
		if (n == 0)
			fatalx(1, "%s: connection closed before a whole response", who);
		got += (size_t)n;
		if (tpmwire_header(rsp, got, &h) == -1)
			continue;
		if (h.size < TPM_HEADER_LEN || h.size > cap)
			fatalx(1, "%s: response size %u out of range", who, h.size);
		if (got >= h.size)
			break;
	}
	if (got != h.size)
		fatalx(1, "%s: %zu bytes after a %u-byte response", who, got - h.size, h.size);
	if (rsp_len != NULL)
		*rsp_len = got;
	return h.code;
}

/* Like bench_roundtrip, but any response code but 0 is fatal. */
static BENCH_UNUSED void
bench_expect_ok(const char *who, const char *what, int fd, const struct bench_cmd *c, uint8_t *rsp,
    size_t cap, size_t *rsp_len)
{
	uint32_t rc;

	rc = bench_roundtrip(who, fd, c, rsp, cap, rsp_len);
	if (rc != 0)
		fatalx(1, "%s: %s: TPM response code 0x%x", who, what, rc);
}

static BENCH_UNUSED int
bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0 < p <= 100) of n sorted samples. */
static BENCH_UNUSED uint64_t
bench_percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* Parses "NAME=COMMAND" or "NAME=unix:PATH" into s (not yet started). */
static BENCH_UNUSED void
bench_server_parse(const char *spec, struct bench_server *s)
{
	const char *eq = strchr(spec, '=');
	size_t nlen;

	*s = (struct bench_server){.pid = -1};
	if (eq == NULL || eq == spec || (nlen = (size_t)(eq - spec)) >= sizeof(s->name))
		fatalx(2, "-s %s: expected NAME=COMMAND or NAME=unix:PATH", spec);
	memcpy(s->name, spec, nlen);
	if (strncmp(eq + 1, "unix:", 5) == 0) {
		if (endpoint_parse(eq + 1, &s->data) == -1)
			fatalx(2, "-s %s: bad endpoint", spec);
		return;
	}
	s->cmdline = strdup(eq + 1);
	if (s->cmdline == NULL)
		fatal(1, "strdup");
	s->exec_ns =
	    mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->exec_ns == MAP_FAILED)
		fatal(1, "mmap");
}

/* Creates s's directory, BASE/NAME, or BASE/NAME/INDEX when index >= 0,
 * with a state/ subdirectory, and sets the two endpoints in it. */
static BENCH_UNUSED void
bench_server_dir(struct bench_server *s, const char *base, int index)
{
	char path[sizeof(s->dir) + 16];
	int n;

	n = snprintf(s->dir, sizeof(s->dir), "%s/%s", base, s->name);
	if (n < 0 || (size_t)n >= sizeof(s->dir))
		fatalx(2, "%s: directory name too long", base);
	if (mkdir(s->dir, 0700) == -1 && errno != EEXIST)
		fatal(1, "mkdir %s", s->dir);
	if (index >= 0) {
		n = snprintf(s->dir, sizeof(s->dir), "%s/%s/%d", base, s->name, index);
		if (n < 0 || (size_t)n >= sizeof(s->dir))
			fatalx(2, "%s: directory name too long", base);
		if (mkdir(s->dir, 0700) == -1 && errno != EEXIST)
			fatal(1, "mkdir %s", s->dir);
	}
	snprintf(path, sizeof(path), "%s/state", s->dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		fatal(1, "mkdir %s", path);
	snprintf(path, sizeof(path), "unix:%s/data", s->dir);
	if (endpoint_parse(path, &s->data) == -1)
		fatalx(2, "%s: socket path too long", s->dir);
	snprintf(path, sizeof(path), "unix:%s/ctrl", s->dir);
	if (endpoint_parse(path, &s->ctrl) == -1)
		fatalx(2, "%s: socket path too long", s->dir);
}

/* Splits s->cmdline at blanks into argv, replacing "@DIR@" by s->dir. The
 * strings are malloc'd and live until exec. */
static BENCH_UNUSED void
bench_server_argv(const struct bench_server *s, char **argv, size_t max)
{
	char *copy, *tok, *save = NULL, *at, buf[1024];
	size_t n = 0;

	copy = strdup(s->cmdline);
	if (copy == NULL)
		fatal(1, "strdup");
	for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		buf[0] = '\0';
		while ((at = strstr(tok, "@DIR@")) != NULL) {
			*at = '\0';
			strncat(buf, tok, sizeof(buf) - strlen(buf) - 1);
			strncat(buf, s->dir, sizeof(buf) - strlen(buf) - 1);
			tok = at + 5;
		}
		strncat(buf, tok, sizeof(buf) - strlen(buf) - 1);
		if (n + 1 >= max)
			fatalx(2, "%s: too many arguments", s->name);
		if ((argv[n++] = strdup(buf)) == NULL)
			fatal(1, "strdup");
	}
	argv[n] = NULL;
	free(copy);
	if (n == 0)
		fatalx(2, "%s: empty command line", s->name);
}

/* In the child: pins to cpu, puts the key file on descriptor 3, sends
 * output to DIR/log, records the time and executes the server. */
static BENCH_UNUSED void
bench_child(const struct bench_server *s, const char *keyfile, int cpu)
{
	char *argv[BENCH_MAX_ARGS], log[300];
	cpu_set_t set;
	int fd;

	bench_server_argv(s, argv, BENCH_MAX_ARGS);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(127);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == -1)
			_exit(126);
	}
	snprintf(log, sizeof(log), "%s/log", s->dir);
	if ((fd = open("/dev/null", O_RDONLY)) == -1 || dup2(fd, 0) == -1)
		_exit(126);
	close(fd);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) == -1 || dup2(fd, 1) == -1 ||
	    dup2(fd, 2) == -1)
		_exit(126);
	close(fd);
	if (keyfile != NULL) {
		if ((fd = open(keyfile, O_RDONLY)) == -1)
			_exit(126);
		if (fd != 3 && (dup2(fd, 3) == -1 || close(fd) == -1))
			_exit(126);
	}
	*s->exec_ns = bench_now_ns();
	execvp(argv[0], argv);
	_exit(127);
}

/* Starts s (whose directory is set) pinned to cpu (-1: anywhere). */
static BENCH_UNUSED void
bench_server_start(struct bench_server *s, const char *keyfile, int cpu)
{
	if (s->cmdline == NULL)
		return;
	*s->exec_ns = 0;
	s->pid = fork();
	if (s->pid == -1)
		fatal(1, "fork");
	if (s->pid == 0)
		bench_child(s, keyfile, cpu);
}

/* Fails loudly when a started server has exited. */
static BENCH_UNUSED void
bench_server_check(struct bench_server *s)
{
	int status;

	if (s->pid == -1 || waitpid(s->pid, &status, WNOHANG) != s->pid)
		return;
	s->pid = -1;
	fatalx(1, "%s: server exited (status 0x%x) before it answered; see %s/log", s->name, status,
	    s->dir);
}

/*
 * Connects to s's data channel, retrying in a tight loop until it accepts
 * (or BENCH_READY_MS pass), then sends GetRandom(16) and waits for the
 * answer. Returns the connected descriptor; *answered_ns is when the
 * answer was complete.
 */
static BENCH_UNUSED int
bench_server_ready(struct bench_server *s, uint64_t *answered_ns)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)BENCH_READY_MS * 1000000u;
	struct bench_cmd c;
	uint8_t rsp[256];
	unsigned int spins = 0;
	int fd;

	while ((fd = endpoint_connect(&s->data)) == -1) {
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN)
			fatal(1, "%s: connect", s->name);
		if ((++spins & 1023) == 0) {
			bench_server_check(s);
			if (bench_now_ns() > deadline)
				fatalx(1, "%s: not listening after %d ms; see %s/log", s->name,
				    BENCH_READY_MS, s->dir);
		}
	}
	bench_cmd_getrandom(&c, 16);
	bench_expect_ok(s->name, "GetRandom", fd, &c, rsp, sizeof(rsp), NULL);
	if (answered_ns != NULL)
		*answered_ns = bench_now_ns();
	return fd;
}

/* Sends one swtpm control command without payload; returns its result. */
static BENCH_UNUSED uint32_t
bench_ctrl(const struct bench_server *s, uint32_t cmd)
{
	uint8_t req[4], res[4];
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = endpoint_connect(&s->ctrl);
	if (fd == -1)
		fatal(1, "%s: connect to control channel", s->name);
	req[0] = (uint8_t)(cmd >> 24);
	req[1] = (uint8_t)(cmd >> 16);
	req[2] = (uint8_t)(cmd >> 8);
	req[3] = (uint8_t)cmd;
	if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		fatal(1, "%s: control send", s->name);
	while (got < sizeof(res)) {
		n = read(fd, res + got, sizeof(res) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			fatalx(1, "%s: control channel closed before the answer", s->name);
		got += (size_t)n;
	}
	close(fd);
	return bench_get32(res);
}

/*
 * Stops a started server the same way for every peer: TPM2_Shutdown(CLEAR)
 * on the data connection fd (when not -1, then closed), so the next start
 * is from orderly state, then the control channel's SHUTDOWN, then waits
 * for the exit (SIGKILL after BENCH_STOP_MS).
 */
static BENCH_UNUSED void
bench_server_stop(struct bench_server *s, int fd)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)BENCH_STOP_MS * 1000000u;
	struct timespec pause = {0, 1000000};
	struct bench_cmd c;
	uint8_t rsp[64];
	uint32_t rc;
	int status;

	if (fd != -1) {
		bench_cmd_begin(&c, TPM2_ST_NO_SESSIONS, TPM2_CC_SHUTDOWN);
		bench_put16(&c, TPM2_SU_CLEAR);
		bench_cmd_end(&c);
		bench_expect_ok(s->name, "Shutdown(CLEAR)", fd, &c, rsp, sizeof(rsp), NULL);
		close(fd);
	}
	if (s->pid == -1)
		return;
	if ((rc = bench_ctrl(s, SWTPM_CMD_SHUTDOWN)) != 0)
		fatalx(1, "%s: control SHUTDOWN answered 0x%x", s->name, rc);
	while (waitpid(s->pid, &status, WNOHANG) == 0) {
		if (bench_now_ns() > deadline) {
			log_warnx("%s: still running %d ms after SHUTDOWN; killing it", s->name,
			    BENCH_STOP_MS);
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		nanosleep(&pause, NULL);
	}
	s->pid = -1;
}

/* Starts s once (pinned to cpu, -1: anywhere), waits for its first answer
 * and stops it; returns exec-to-answer in ns. */
static BENCH_UNUSED uint64_t
bench_server_coldstart(struct bench_server *s, const char *keyfile, int cpu)
{
	uint64_t answered;
	int fd;

	bench_server_start(s, keyfile, cpu);
	fd = bench_server_ready(s, &answered);
	bench_server_stop(s, fd);
	if (*s->exec_ns == 0 || answered < *s->exec_ns)
		fatalx(1, "%s: no exec time recorded", s->name);
	return answered - *s->exec_ns;
}

/* Returns the time a started server has spent on a CPU so far, in ns (the
 * first field of /proc/PID/schedstat), or 0 for one not started by us. */
static BENCH_UNUSED uint64_t
bench_server_cpu_ns(const struct bench_server *s)
{
	char path[64], buf[128];
	ssize_t n;
	int fd;

	if (s->pid == -1)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)s->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		fatal(1, "%s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		fatalx(1, "%s: unreadable", path);
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

/* Pins the calling process (the client) to cpu, when cpu >= 0. */
static BENCH_UNUSED void
bench_pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == -1)
		fatal(1, "sched_setaffinity(%d)", cpu);
}

/* The options of the benchmarks that start their servers themselves
 * (coldstart, memory): -n N -c CPU -k KEYFILE -b BASE -s NAME=COMMAND...
 * n holds the default on entry; usage() is called (and must not return)
 * on a bad command line. */
struct bench_launch {
	struct bench_server sv[BENCH_MAX_SERVERS];
	size_t ns, n;
	const char *keyfile, *base;
	int cpu;
};

static BENCH_UNUSED void
bench_launch_parse(int argc, char **argv, struct bench_launch *a, void (*usage)(void))
{
	int ch;

	a->ns = 0;
	a->keyfile = a->base = NULL;
	a->cpu = -1;
	while ((ch = getopt(argc, argv, "n:c:k:b:s:")) != -1) {
		switch (ch) {
		case 'n': a->n = strtoul(optarg, NULL, 10); break;
		case 'c': a->cpu = atoi(optarg); break;
		case 'k': a->keyfile = optarg; break;
		case 'b': a->base = optarg; break;
		case 's':
			if (a->ns == BENCH_MAX_SERVERS)
				fatalx(2, "at most %d servers", BENCH_MAX_SERVERS);
			bench_server_parse(optarg, &a->sv[a->ns]);
			if (a->sv[a->ns].cmdline == NULL)
				fatalx(2, "-s %s: this benchmark starts its servers: give a command", optarg);
			a->ns++;
			break;
		default: usage();
		}
	}
	if (a->ns == 0 || a->base == NULL || optind != argc || a->n == 0)
		usage();
}

#endif /* BENCH_H */
