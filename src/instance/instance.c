/*
 * instance.c: `vtpmd instance`, one virtual TPM.
 *
 * A single-threaded poll loop serves a control channel (the swtpm
 * protocol; QEMU's -tpmdev emulator) and a data channel (raw TPM
 * commands: a descriptor QEMU passes with SET_DATAFD, or a socket of our
 * own for tpm2-tss' swtpm TCTI). Every byte from a peer is untrusted:
 * requests are framed before anything is allocated for them, malformed
 * ones get the protocol's error answer and end that connection only.
 *
 * Each channel serves one client at a time, as swtpm's do. Nothing limits
 * the silence between requests (QEMU keeps both channels open, mostly idle,
 * for the VM's whole life), but a request must arrive whole within the I/O
 * timeout of its first byte, an answer must be taken within
 * 5 s (conn.c), and a client that connects while another holds the
 * channel waits in a short line for at most the I/O timeout
 * (docs/instance.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <swtpm/tpm_ioctl.h>

#include <openssl/crypto.h>

#include "instance.h"

#define INSTANCE_IO_TIMEOUT_MS 10000 /* --io-timeout's default */
#define INSTANCE_IO_TIMEOUT_MAX 3600000
#define INSTANCE_MAX_WAITING 4	     /* clients in line for a busy channel */
#define TPM2_RC_COMMAND_SIZE 0x142
#define TPM12_BAD_PARAM_SIZE 0x19

static volatile sig_atomic_t instance_signalled;

static void
instance_usage(FILE *f)
{
	fprintf(f, "usage: vtpmd instance --state DIR --ctrl ENDPOINT [--data ENDPOINT]\n"
	           "                      (--key-fd N [--blob-key-fd N] | --plaintext-state)\n"
	           "                      [--tpm 2|1.2]\n"
	           "                      [--startup clear] [--name NAME] [--ready-fd N]\n"
	           "                      [--log-level error|warn|info|debug] [--log-relayed]\n"
	           "                      [--sandbox-uid N --sandbox-gid N] [--io-timeout MS]\n"
	           "                      [--socket-owner UID] [--socket-group GID]\n"
	           "                      [--commit-fd N] [--commit-listen unix:PATH]\n"
	           "                      [--commit-relaxed] [--nv-rate N]\n"
	           "                      [--revert-generation N]\n"
	           "\n"
	           "Runs one virtual TPM (libtpms) behind the swtpm socket protocol.\n"
	           "\n"
	           "Exit status: 0 after SHUTDOWN or SIGTERM; 1 runtime error; 2 usage error;\n"
	           "3 unreadable state; 4 state directory or address in use.\n"
	           "The manual: vtpmd-instance(8).\n");
}

static void
instance_on_signal(int sig)
{
	instance_signalled = sig;
}

/*
 * QEMU sends SET_LOCALITY and RESET_TPMESTABLISHED with a whole 4-byte
 * ptm_loc / ptm_reset_est union as payload: the locality byte, then 3 bytes
 * of padding (uninitialised for RESET_TPMESTABLISHED); tpm2-tss' swtpm TCTI
 * sends the bare byte. Clients wait for each answer before the next
 * request, and QEMU writes the request at once on a unix socket, so up to 3
 * bytes already received behind the locality byte are that padding, not the
 * start of the next request (read as one, they desynchronised the channel:
 * QEMU's SHUTDOWN at exit then arrived as "unknown command 0").
 */
static void
instance_ctrl_skip_padding(struct instance *in, uint32_t cmd)
{
	if (cmd == CMD_SET_LOCALITY || cmd == CMD_RESET_TPMESTABLISHED)
		conn_consume(&in->ctrl, in->ctrl.len < 3 ? in->ctrl.len : 3);
}

/* Handles readable input on the control channel. Returns the number of
 * requests it answered. */
static int
instance_ctrl_input(struct instance *in)
{
	struct ctrl_request req;
	enum ctrl_parse parse;
	size_t need = 4;
	ssize_t n;
	int handled = 0;

	n = conn_fill(&in->ctrl, 4096);
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		conn_close(&in->ctrl);
		return 0;
	}
	while (in->ctrl.fd != -1 && !in->terminate) {
		parse = ctrl_request_size(in->ctrl.buf, in->ctrl.len, &need);
		if (parse == CTRL_OVERSIZED) {
			uint8_t out[4];
			log_warnx("control channel: declared length above %u bytes; closing",
			    CTRL_MAX_BLOB);
			ctrl_put_u32(out, 0x3 /* TPM_BAD_PARAMETER */);
			conn_send(&in->ctrl, out, sizeof(out));
			conn_close(&in->ctrl);
			break;
		}
		if (parse == CTRL_INCOMPLETE) {
			/* Grow to what the frame declares, which is bounded. */
			if (conn_reserve(&in->ctrl, need) == -1)
				conn_close(&in->ctrl);
			break;
		}
		/* A complete frame only fails to decode for an unknown command,
		 * which the dispatcher answers with TPM_BAD_ORDINAL. */
		(void)ctrl_decode(in->ctrl.buf, need, &req);
		handled++;
		if (!instance_ctrl_dispatch(in, &req)) {
			conn_close(&in->ctrl);
			break;
		}
		if (in->ctrl.fd != -1) {
			conn_consume(&in->ctrl, need);
			instance_ctrl_skip_padding(in, req.cmd);
		}
	}
	return handled;
}

/* Handles readable input on the data channel: runs each whole command
 * (tpmwire_frame); a size outside 10..buffer size ends the stream. Returns
 * the number of commands it answered. */
static int
instance_data_input(struct instance *in)
{
	uint8_t err[TPM_HEADER_LEN];
	struct tpm_header h;
	uint32_t max = engine_buffer_size();
	size_t need;
	ssize_t n;
	int handled = 0;

	n = conn_fill(&in->data, max);
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		conn_close(&in->data);
		return 0;
	}
	while (in->data.fd != -1) {
		switch (tpmwire_frame(in->data.buf, in->data.len, max, &need)) {
		case TPMWIRE_INCOMPLETE:
			return handled;
		case TPMWIRE_BAD_SIZE:
			(void)tpmwire_header(in->data.buf, in->data.len, &h);
			log_warnx("data channel: command size %u outside 10..%u; closing", h.size,
			    max);
			conn_send(&in->data, err,
			    tpmwire_error(err, in->tpm_version,
				in->tpm_version == 2 ? TPM2_RC_COMMAND_SIZE : TPM12_BAD_PARAM_SIZE));
			conn_close(&in->data);
			return handled;
		case TPMWIRE_COMPLETE:
			break;
		}
		instance_tpm_command(in, in->data.buf, need);
		handled++;
		if (in->data.fd != -1)
			conn_consume(&in->data, need);
	}
	return handled;
}

/*
 * What the loop keeps for each channel beside its struct conn: the
 * listener, the clients waiting while another holds the channel (oldest
 * first), and since when the connection's incomplete request has waited
 * for its remaining bytes.
 */
struct instance_waiter {
	int fd;
	int64_t since; /* monotonic ms, when accepted */
};
struct instance_chan {
	const char *name; /* "control" or "data", for log lines */
	struct conn *conn;
	int listen_fd; /* -1: none (QEMU's data channel comes with SET_DATAFD) */
	bool is_unix;  /* the listener's kind: may carry descriptors */
	int64_t partial_since; /* when conn's buffered, incomplete request began, or -1 */
	struct instance_waiter waiting[INSTANCE_MAX_WAITING];
	int nwaiting;
};

static void
instance_chan_attach(struct instance_chan *ch, int fd)
{
	ch->conn->fd = fd;
	ch->conn->is_unix = ch->is_unix;
	ch->conn->len = 0;
	ch->partial_since = -1;
}

/* Removes waiting client i from the line, closing it. */
static void
instance_chan_unqueue(struct instance_chan *ch, int i)
{
	close(ch->waiting[i].fd);
	ch->nwaiting--;
	memmove(&ch->waiting[i], &ch->waiting[i + 1],
	    (size_t)(ch->nwaiting - i) * sizeof(ch->waiting[0]));
}

/* Hands a free channel to the client that has waited longest. */
static void
instance_chan_promote(struct instance_chan *ch)
{
	if (ch->conn->fd != -1 || ch->nwaiting == 0)
		return;
	instance_chan_attach(ch, ch->waiting[0].fd);
	ch->nwaiting--;
	memmove(&ch->waiting[0], &ch->waiting[1], (size_t)ch->nwaiting * sizeof(ch->waiting[0]));
	log_debug("%s channel: a waiting client takes the channel", ch->name);
}

/* Accepts a client: it gets the channel when nobody holds it, else waits
 * in line; with INSTANCE_MAX_WAITING in line it is closed at once. */
static void
instance_chan_accept(struct instance_chan *ch, int64_t now)
{
	int fd;

	fd = accept4(ch->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("%s channel: accept", ch->name);
		return;
	}
	instance_chan_promote(ch);
	if (ch->conn->fd == -1) {
		instance_chan_attach(ch, fd);
	} else if (ch->nwaiting < INSTANCE_MAX_WAITING) {
		ch->waiting[ch->nwaiting++] = (struct instance_waiter){.fd = fd, .since = now};
		log_debug("%s channel: busy; a client waits (%d in line)", ch->name, ch->nwaiting);
	} else {
		log_debug("%s channel: busy and %d clients in line; another one closed",
		    ch->name, INSTANCE_MAX_WAITING);
		close(fd);
	}
}

/* After input on ch: starts the clock of an incomplete request, restarts it
 * when requests were answered (progressed), stops it when none is left. */
static void
instance_chan_track(struct instance_chan *ch, bool progressed, int64_t now)
{
	if (ch->conn->fd == -1 || ch->conn->len == 0)
		ch->partial_since = -1;
	else if (progressed || ch->partial_since == -1)
		ch->partial_since = now;
}

/* Closes what has waited timeout_ms: a connection whose request is still
 * incomplete (its bytes are dropped; nothing of it ran), and clients in
 * line. Then hands a free channel on. */
static void
instance_chan_expire(struct instance_chan *ch, int64_t now, int timeout_ms)
{
	if (ch->partial_since != -1 && now - ch->partial_since >= timeout_ms) {
		log_warnx("%s channel: request incomplete (%zu bytes) after %d ms; closing the "
			  "connection",
		    ch->name, ch->conn->len, timeout_ms);
		conn_close(ch->conn);
		ch->partial_since = -1;
	}
	while (ch->nwaiting > 0 && now - ch->waiting[0].since >= timeout_ms) {
		log_info("%s channel: busy for %d ms; closing a waiting client", ch->name,
		    timeout_ms);
		instance_chan_unqueue(ch, 0);
	}
	instance_chan_promote(ch);
}

/* The earliest time instance_chan_expire has something to do, or -1. */
static int64_t
instance_chan_deadline(const struct instance_chan *ch, int timeout_ms)
{
	int64_t next = -1;

	if (ch->partial_since != -1)
		next = ch->partial_since + timeout_ms;
	if (ch->nwaiting > 0 && (next == -1 || ch->waiting[0].since + timeout_ms < next))
		next = ch->waiting[0].since + timeout_ms;
	return next;
}

/* Adds ch's descriptors to pfd at *n: its connection, its listener and its
 * waiting clients (watched only for hanging up: their requests stay
 * unread until they hold the channel). */
static void
instance_chan_pollfds(const struct instance_chan *ch, struct pollfd *pfd, int *n, int idx[3])
{
	idx[0] = idx[1] = -1;
	if (ch->conn->fd != -1) {
		idx[0] = *n;
		pfd[(*n)++] = (struct pollfd){.fd = ch->conn->fd, .events = POLLIN};
	}
	if (ch->listen_fd != -1) {
		idx[1] = *n;
		pfd[(*n)++] = (struct pollfd){.fd = ch->listen_fd, .events = POLLIN};
	}
	idx[2] = *n;
	for (int i = 0; i < ch->nwaiting; i++)
		pfd[(*n)++] = (struct pollfd){.fd = ch->waiting[i].fd, .events = POLLRDHUP};
}

/* Drops the waiting clients that hung up (their entries at pfd[first]). */
static void
instance_chan_hangups(struct instance_chan *ch, const struct pollfd *pfd, int first)
{
	for (int i = ch->nwaiting - 1; i >= 0; i--)
		if (pfd[first + i].revents != 0)
			instance_chan_unqueue(ch, i);
}

/* The main loop; returns when SHUTDOWN or a signal asks to stop. */
static void
instance_loop(struct instance *in, int timeout_ms)
{
	struct instance_chan ctrl = {
		.name = "control",
		.conn = &in->ctrl,
		.listen_fd = in->ctrl_listen,
		.is_unix = in->ctrl_ep.kind == ENDPOINT_UNIX,
		.partial_since = -1,
	};
	struct instance_chan data = {
		.name = "data",
		.conn = &in->data,
		.listen_fd = in->data_listen,
		.is_unix = in->data_ep.kind == ENDPOINT_UNIX,
		.partial_since = -1,
	};
	struct pollfd pfd[2 * (2 + INSTANCE_MAX_WAITING) + 2];
	struct timespec ts, *tsp;
	int ci[3], di[3], ki[2], n, handled;
	int64_t now, next, d;
	sigset_t unblocked;

	sigemptyset(&unblocked);
	while (!in->terminate && !instance_signalled) {
		now = mono_ms();
		instance_chan_expire(&ctrl, now, timeout_ms);
		instance_chan_expire(&data, now, timeout_ms);
		next = instance_chan_deadline(&ctrl, timeout_ms);
		d = instance_chan_deadline(&data, timeout_ms);
		if (d != -1 && (next == -1 || d < next))
			next = d;
		tsp = NULL;
		if (next != -1) {
			d = next > now ? next - now : 0;
			ts = (struct timespec){.tv_sec = d / 1000, .tv_nsec = (d % 1000) * 1000000};
			tsp = &ts;
		}
		n = 0;
		instance_chan_pollfds(&ctrl, pfd, &n, ci);
		instance_chan_pollfds(&data, pfd, &n, di);
		instance_commit_pollfds(in, pfd, &n, ki);
		if (ppoll(pfd, (nfds_t)n, tsp, &unblocked) == -1) {
			if (errno == EINTR)
				continue;
			fatal(EXIT_RUNTIME, "poll");
		}
		now = mono_ms();
		instance_commit_events(in, pfd, ki);
		if (di[0] != -1 && pfd[di[0]].revents) {
			handled = instance_data_input(in);
			instance_chan_track(&data, handled > 0, now);
		}
		if (ci[0] != -1 && pfd[ci[0]].revents) {
			handled = instance_ctrl_input(in);
			instance_chan_track(&ctrl, handled > 0, now);
		}
		/* SET_DATAFD may have replaced the data connection. */
		instance_chan_track(&data, false, now);
		instance_chan_hangups(&ctrl, pfd, ci[2]);
		instance_chan_hangups(&data, pfd, di[2]);
		if (ci[1] != -1 && pfd[ci[1]].revents)
			instance_chan_accept(&ctrl, now);
		if (di[1] != -1 && pfd[di[1]].revents)
			instance_chan_accept(&data, now);
	}
	for (int i = ctrl.nwaiting - 1; i >= 0; i--)
		instance_chan_unqueue(&ctrl, i);
	for (int i = data.nwaiting - 1; i >= 0; i--)
		instance_chan_unqueue(&data, i);
}

struct instance_opts {
	const char *state_dir, *ctrl, *data, *name, *tpm, *startup, *log_level;
	const char *commit_listen; /* unix:PATH, or NULL */
	int key_fd, ready_fd, blob_key_fd, commit_fd;
	unsigned int nv_rate;
	bool commit_relaxed; /* vtpmd provisions it: hold nothing until VTCS */
	uint64_t revert_generation; /* an authorised revert: store the state as this (0: none) */
	int io_timeout_ms;
	bool plaintext;
	bool log_relayed; /* stderr is vtpmd's channel, which tags the lines */
	unsigned int sandbox_uid, sandbox_gid; /* 0: no sandbox */
	unsigned int socket_uid; /* owner of the unix sockets; 0: their creator */
	unsigned int socket_gid; /* group of the unix sockets (0660); 0: owner only (0600) */
};

static int
instance_parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 0 || v > 65535)
		return -1;
	return (int)v;
}

/* A numeric uid or gid for the sandbox: neither root's nor (id_t)-1. */
static unsigned int
instance_parse_id(const char *opt, const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-' || v == 0 || v >= UINT32_MAX)
		fatalx(EXIT_USAGE, "%s: expected a numeric id other than 0, not %s", opt, s);
	return (unsigned int)v;
}

/* --nv-rate: 0 (unlimited) to 100000. */
static unsigned int
instance_parse_rate(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-' || v > 100000)
		fatalx(EXIT_USAGE, "--nv-rate: expected writes a second, 0 to 100000, not %s", s);
	return (unsigned int)v;
}

/* --revert-generation: a generation, 1 to 2^63 - 1. */
static uint64_t
instance_parse_generation(const char *s)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-' || v == 0 || v > INT64_MAX)
		fatalx(EXIT_USAGE, "--revert-generation: expected a generation from 1, not %s", s);
	return (uint64_t)v;
}

/* Milliseconds, 1 to INSTANCE_IO_TIMEOUT_MAX. */
static int
instance_parse_ms(const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 1 || v > INSTANCE_IO_TIMEOUT_MAX)
		fatalx(EXIT_USAGE, "%s: expected milliseconds from 1 to %d, not %s", opt,
		    INSTANCE_IO_TIMEOUT_MAX, s);
	return (int)v;
}

static void
instance_parse_args(int argc, char **argv, struct instance_opts *o)
{
	static const struct option longopts[] = {
		{"state", required_argument, NULL, 's'},
		{"ctrl", required_argument, NULL, 'c'},
		{"data", required_argument, NULL, 'd'},
		{"key-fd", required_argument, NULL, 'k'},
		{"blob-key-fd", required_argument, NULL, 'b'},
		{"plaintext-state", no_argument, NULL, 'p'},
		{"tpm", required_argument, NULL, 't'},
		{"startup", required_argument, NULL, 'S'},
		{"name", required_argument, NULL, 'n'},
		{"ready-fd", required_argument, NULL, 'r'},
		{"log-level", required_argument, NULL, 'l'},
		{"log-relayed", no_argument, NULL, 'L'},
		{"sandbox-uid", required_argument, NULL, 'U'},
		{"sandbox-gid", required_argument, NULL, 'G'},
		{"io-timeout", required_argument, NULL, 'T'},
		{"socket-group", required_argument, NULL, 'g'},
		{"socket-owner", required_argument, NULL, 'o'},
		{"commit-fd", required_argument, NULL, 'C'},
		{"commit-listen", required_argument, NULL, 'K'},
		{"nv-rate", required_argument, NULL, 'R'},
		{"commit-relaxed", no_argument, NULL, 'X'},
		{"revert-generation", required_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->key_fd = o->ready_fd = o->blob_key_fd = o->commit_fd = -1;
	o->tpm = "2";
	o->log_level = "info";
	o->io_timeout_ms = INSTANCE_IO_TIMEOUT_MS;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': o->state_dir = optarg; break;
		case 'c': o->ctrl = optarg; break;
		case 'd': o->data = optarg; break;
		case 'p': o->plaintext = true; break;
		case 't': o->tpm = optarg; break;
		case 'S': o->startup = optarg; break;
		case 'n': o->name = optarg; break;
		case 'l': o->log_level = optarg; break;
		case 'L': o->log_relayed = true; break;
		case 'U': o->sandbox_uid = instance_parse_id("--sandbox-uid", optarg); break;
		case 'G': o->sandbox_gid = instance_parse_id("--sandbox-gid", optarg); break;
		case 'g': o->socket_gid = instance_parse_id("--socket-group", optarg); break;
		case 'o': o->socket_uid = instance_parse_id("--socket-owner", optarg); break;
		case 'k':
			if ((o->key_fd = instance_parse_fd(optarg)) == -1)
				fatalx(EXIT_USAGE, "--key-fd: not a descriptor number: %s", optarg);
			break;
		case 'b':
			if ((o->blob_key_fd = instance_parse_fd(optarg)) == -1)
				fatalx(EXIT_USAGE, "--blob-key-fd: not a descriptor number: %s",
				    optarg);
			break;
		case 'r':
			if ((o->ready_fd = instance_parse_fd(optarg)) == -1)
				fatalx(EXIT_USAGE, "--ready-fd: not a descriptor number: %s", optarg);
			break;
		case 'T': o->io_timeout_ms = instance_parse_ms("--io-timeout", optarg); break;
		case 'K': o->commit_listen = optarg; break;
		case 'R': o->nv_rate = instance_parse_rate(optarg); break;
		case 'X': o->commit_relaxed = true; break;
		case 'V': o->revert_generation = instance_parse_generation(optarg); break;
		case 'C':
			if ((o->commit_fd = instance_parse_fd(optarg)) == -1)
				fatalx(EXIT_USAGE, "--commit-fd: not a descriptor number: %s", optarg);
			break;
		case 'h':
			instance_usage(stdout);
			exit(EXIT_OK);
		default:
			instance_usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc)
		fatalx(EXIT_USAGE, "unexpected argument: %s (see --help)", argv[optind]);
	if (o->state_dir == NULL || o->ctrl == NULL)
		fatalx(EXIT_USAGE, "--state and --ctrl are required (see --help)");
	if (o->state_dir[0] == '\0')
		fatalx(EXIT_USAGE, "--state: expected a directory, not an empty string");
	if (o->data != NULL && strcmp(o->data, o->ctrl) == 0)
		fatalx(EXIT_USAGE, "--data and --ctrl need two different addresses, not %s twice",
		    o->ctrl);
	if ((o->key_fd == -1) == !o->plaintext)
		fatalx(EXIT_USAGE, "give exactly one of --key-fd N and --plaintext-state");
	if (o->blob_key_fd != -1 && o->plaintext)
		fatalx(EXIT_USAGE, "--blob-key-fd needs --key-fd: a --plaintext-state instance "
		    "releases no state blobs");
	if (strcmp(o->tpm, "2") != 0 && strcmp(o->tpm, "2.0") != 0 && strcmp(o->tpm, "1.2") != 0)
		fatalx(EXIT_USAGE, "--tpm: expected 2 or 1.2, not %s", o->tpm);
	if (o->startup != NULL && strcmp(o->startup, "clear") != 0)
		fatalx(EXIT_USAGE, "--startup: only 'clear' is supported, not %s", o->startup);
	if (o->startup != NULL && o->data == NULL)
		fatalx(EXIT_USAGE, "--startup needs --data (with QEMU the guest sends Startup)");
	if (o->commit_listen != NULL && strncmp(o->commit_listen, "unix:", 5) != 0)
		fatalx(EXIT_USAGE, "--commit-listen: expected unix:PATH (a root-only socket), not %s",
		    o->commit_listen);
	if (o->revert_generation != 0 && (o->key_fd == -1 || o->commit_fd == -1))
		fatalx(EXIT_USAGE, "--revert-generation needs --key-fd and --commit-fd: a revert is "
		    "vtpmd's, recorded in its freshness manifest");
	if ((o->sandbox_uid == 0) != (o->sandbox_gid == 0))
		fatalx(EXIT_USAGE, "give both --sandbox-uid and --sandbox-gid, or neither");
	if ((o->socket_gid != 0 || o->socket_uid != 0) &&
	    (strncmp(o->ctrl, "unix:", 5) != 0 ||
	        (o->data != NULL && strncmp(o->data, "unix:", 5) != 0)))
		fatalx(EXIT_USAGE, "--socket-owner and --socket-group set a socket file's owner "
		    "and group: that needs unix: addresses for --ctrl and --data (a tcp: port has "
		    "neither; bind it to 127.0.0.1 or firewall it instead)");
}

#define INSTANCE_KEYS_LEN (STATE_KEY_LEN + STATEBLOB_KEY_RECORD_LEN)

/* Sets the key that wraps state blobs: the record (key, UUID, key id)
 * that follows the state key in keys when given (vtpmd's workers), else
 * one derived from the state key; none for plaintext state (keys NULL). */
static void
instance_set_blob_key(struct instance *in, const uint8_t *keys, bool given)
{
	const uint8_t *rec;

	if (keys == NULL)
		return;
	rec = keys + STATE_KEY_LEN;
	in->blob_key = secret_alloc(sizeof(*in->blob_key));
	if (in->blob_key == NULL)
		fatal(EXIT_RUNTIME, "allocate key memory");
	if (!given) {
		if (stateblob_key_from_state_key(keys, in->blob_key) == -1)
			fatalx(EXIT_RUNTIME, "cannot derive the state blob key");
		return;
	}
	memcpy(in->blob_key->key, rec, STATE_KEY_LEN);
	memcpy(in->blob_key->uuid, rec + STATE_KEY_LEN, STATEBLOB_UUID_LEN);
	memcpy(in->blob_key->key_id, rec + STATE_KEY_LEN + STATEBLOB_UUID_LEN,
	    STATEBLOB_KEY_ID_LEN);
	in->blob_key->source = STATEBLOB_SOURCE_HOST;
}

/* Reads the keys (the blob key record after the state key when both come
 * on one descriptor) and opens the store (its directory and lock): what
 * needs the instance's privileges, before the sandbox. */
static void
instance_open_store(struct instance *in, const struct instance_opts *o)
{
	bool blob_key = o->blob_key_fd != -1, one_fd = o->blob_key_fd == o->key_fd;
	uint8_t *keys = NULL;
	struct err err;

	if (o->key_fd != -1) {
		keys = secret_alloc(INSTANCE_KEYS_LEN);
		if (keys == NULL)
			fatal(EXIT_RUNTIME, "allocate key memory");
		if (secret_read_fd(o->key_fd, keys, blob_key && one_fd ? INSTANCE_KEYS_LEN
								  : STATE_KEY_LEN) == -1)
			fatal(EXIT_USAGE, "--key-fd %d: need exactly %d key bytes", o->key_fd,
			    blob_key && one_fd ? INSTANCE_KEYS_LEN : STATE_KEY_LEN);
		if (blob_key && !one_fd &&
		    secret_read_fd(o->blob_key_fd, keys + STATE_KEY_LEN,
			STATEBLOB_KEY_RECORD_LEN) == -1)
			fatal(EXIT_USAGE, "--blob-key-fd %d: need exactly %d bytes (key, UUID, "
			    "key id)", o->blob_key_fd, STATEBLOB_KEY_RECORD_LEN);
	} else {
		log_warnx("state in %s is NOT encrypted (--plaintext-state): anyone who can "
			  "read it can read the TPM's secrets", o->state_dir);
	}
	instance_set_blob_key(in, keys, blob_key);
	in->store = store_open(o->state_dir, keys, in->tpm_version, &err);
	secret_free(keys, INSTANCE_KEYS_LEN);
	if (in->store == NULL)
		fatalx(err.kind == ERR_BUSY ? EXIT_BUSY : EXIT_RUNTIME, "%s", err.msg);
}

/* The exit status for state that exists and cannot be read, logged. */
static int
instance_state_refused(const struct err *err)
{
	if (err->kind == ERR_CORRUPT) {
		log_errorx("%s; refusing to start (the file was left untouched)", err->msg);
		return EXIT_STATE;
	}
	log_errorx("%s", err->msg);
	return EXIT_RUNTIME;
}

/* The exit status for a snapshot older than the state, logged with the
 * way out. */
static int
instance_snapshot_refused(const char *state_dir, const struct err *err)
{
	log_errorx("%s/%s; refusing to start (the files were left untouched). Remove it to "
		   "start the TPM from its permanent state, as after a power loss", state_dir,
	    err->msg);
	return EXIT_STATE;
}

/*
 * An operator's revert that vtpmd authorised and checked (docs/state.md,
 * "Operator snapshots and reverts"): the permanent state just read, older
 * than the last generation recorded, is written again as generation gen,
 * beyond every generation recorded, so that the numbering never goes back, and is
 * recorded before anything is served. The volatile state and savestate
 * belong to the state it replaces and are dropped: the TPM powers on
 * afresh. Returns 0, or the exit status with the reason logged.
 */
static int
instance_revert(struct instance *in, const char *state_dir, uint64_t gen)
{
	uint64_t old = store_generation(in->store, STATE_PERMANENT);
	int rc;

	if (old >= gen) {
		log_errorx("%s: generation %llu is no older than %llu: not a revert; refusing to "
			   "start", state_dir, (unsigned long long)old, (unsigned long long)gen);
		return EXIT_STATE;
	}
	if (store_delete(in->store, STATE_VOLATILE) == -1 ||
	    store_delete(in->store, STATE_SAVESTATE) == -1) {
		log_warn("%s: cannot remove the volatile state of the state replaced", state_dir);
		return EXIT_RUNTIME;
	}
	store_continue_from(in->store, STATE_PERMANENT, gen - 1);
	in->client_command = true;
	rc = instance_save_state(in, STATE_PERMANENT, in->cache, in->cache_len);
	in->client_command = false;
	if (rc == -1 || instance_commit_wait(in, -1) == -1) {
		log_errorx("%s: the revert to generation %llu could not be recorded; refusing to "
			   "start", state_dir, (unsigned long long)old);
		return EXIT_RUNTIME;
	}
	log_info("%s: reverted: the TPM state of generation %llu is stored again as generation "
		 "%llu", state_dir, (unsigned long long)old, (unsigned long long)gen);
	return 0;
}

/*
 * Reads and checks the state that exists, before serving. This is input
 * like any other (a worker taken over could have written it, with the key
 * it holds), so it runs in the sandbox. Returns 0, or the exit status with
 * the reason logged.
 */
static int
instance_read_state(struct instance *in, const char *state_dir, uint64_t revert_generation)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	struct err err;
	int status;

	if (store_get(in->store, STATE_PERMANENT, &in->cache, &in->cache_len, &err) == 0)
		log_info("%s: existing TPM state loaded", state_dir);
	else if (err.kind == ERR_ABSENT && revert_generation == 0)
		log_info("%s: no state yet: a new TPM will be manufactured", state_dir);
	else
		return instance_state_refused(&err);
	if (revert_generation != 0 &&
	    (status = instance_revert(in, state_dir, revert_generation)) != 0)
		return status;
	/* Snapshots are checked now too, so that a bad or an old one stops us
	 * here (instance_snapshot.c). */
	for (int k = STATE_VOLATILE; k <= STATE_SAVESTATE; k++) {
		if (store_get(in->store, k, &blob, &len, &err) == 0) {
			explicit_bzero(blob, len);
			free(blob);
			if (instance_snapshot_check(k, store_generation(in->store, k),
				store_client_generation(in->store, STATE_PERMANENT), &err) == -1)
				return instance_snapshot_refused(state_dir, &err);
			in->volatile_saved |= k == STATE_VOLATILE;
		} else if (err.kind != ERR_ABSENT) {
			return instance_state_refused(&err);
		}
	}
	if (in->has_data_ep && instance_power_on(in, true) == -1) {
		log_errorx("%s: TPM state could not be loaded; refusing to start", state_dir);
		return EXIT_STATE;
	}
	return 0;
}

static void
instance_unlink(const struct endpoint *ep, int listen_fd)
{
	if (listen_fd != -1 && ep->kind == ENDPOINT_UNIX)
		unlink(ep->path);
}

/*
 * Gives the unix socket at ep (endpoint_listen left it 0600, its
 * creator's) to user uid and group gid (each unless 0), mode 0660 with a
 * group, else 0600: connecting needs write permission, so this VM's QEMU
 * (running as uid, or as a member of gid, such as libvirt-qemu) can
 * connect, and others cannot. The path is changed, not the descriptor: a
 * socket's file and its descriptor are two inodes. Returns 0, or -1 with
 * errno.
 */
static int
instance_share_socket(const struct endpoint *ep, uid_t uid, gid_t gid)
{
	if (lchown(ep->path, uid != 0 ? uid : (uid_t)-1, gid != 0 ? gid : (gid_t)-1) == -1)
		return -1;
	return chmod(ep->path, gid != 0 ? 0660 : 0600);
}

/* Listens on ep (its socket file given to o's socket owner and group,
 * when set), or exits; a control socket made just before is removed
 * first, so that a start refused for its data address leaves nothing. */
static int
instance_listen(struct instance *in, const struct endpoint *ep, const struct instance_opts *o)
{
	bool share = o->socket_uid != 0 || o->socket_gid != 0;
	char addr[160];
	int fd, saved;

	endpoint_format(ep, addr, sizeof(addr));
	fd = endpoint_listen(ep);
	if (fd != -1 && share &&
	    instance_share_socket(ep, (uid_t)o->socket_uid, (gid_t)o->socket_gid) == -1) {
		saved = errno;
		close(fd);
		unlink(ep->path);
		instance_unlink(&in->ctrl_ep, in->ctrl_listen);
		errno = saved;
		fatal(EXIT_RUNTIME, "%s: cannot give the socket to user %u and group %u (0: "
		    "unchanged) (run as root, or as a member of that group)", addr, o->socket_uid,
		    o->socket_gid);
	}
	if (fd == -1) {
		saved = errno;
		instance_unlink(&in->ctrl_ep, in->ctrl_listen);
		errno = saved;
	}
	if (fd == -1 && errno == EADDRINUSE)
		fatalx(EXIT_BUSY, "%s: address in use", addr);
	if (fd == -1)
		fatal(EXIT_RUNTIME, "%s: listen", addr);
	log_debug("listening on %s%s", addr,
	    o->socket_gid != 0       ? " (group-shared, 0660)"
	    : o->socket_uid != 0     ? " (its owner's, 0600)"
	                             : "");
	return fd;
}

/* The commit channel: the descriptor vtpmd handed over, and a listener
 * (root's, 0600: not given to the socket owner) for a vtpmd that adopts
 * this worker. */
static void
instance_commit_setup(struct instance *in, const struct instance_opts *o)
{
	struct endpoint ep;

	in->commit.fd = in->commit.listen_fd = -1;
	in->commit.enabled = o->commit_fd != -1 || o->commit_listen != NULL;
	in->commit.relaxed = o->commit_relaxed;
	if (o->commit_fd != -1) {
		if (fcntl(o->commit_fd, F_SETFL, O_NONBLOCK) == -1 ||
		    fcntl(o->commit_fd, F_SETFD, FD_CLOEXEC) == -1)
			fatal(EXIT_USAGE, "--commit-fd %d", o->commit_fd);
		in->commit.fd = o->commit_fd;
	}
	if (o->commit_listen == NULL)
		return;
	if (endpoint_parse(o->commit_listen, &ep) == -1 || ep.kind != ENDPOINT_UNIX)
		fatalx(EXIT_USAGE, "--commit-listen: expected unix:PATH, not %s", o->commit_listen);
	in->commit.listen_fd = endpoint_listen(&ep);
	if (in->commit.listen_fd == -1)
		fatal(errno == EADDRINUSE ? EXIT_BUSY : EXIT_RUNTIME, "%s: listen", o->commit_listen);
}

static void
instance_setup(struct instance *in, const struct instance_opts *o)
{
	struct sigaction sa = {.sa_handler = instance_on_signal};
	sigset_t block;

	in->tpm_version = strcmp(o->tpm, "1.2") == 0 ? 1 : 2;
	in->ctrl.fd = in->data.fd = in->ctrl.passed_fd = in->data.passed_fd = -1;
	in->ctrl_listen = in->data_listen = -1;
	if (endpoint_parse(o->ctrl, &in->ctrl_ep) == -1)
		fatalx(EXIT_USAGE, "--ctrl: expected unix:PATH or tcp:HOST:PORT, not %s", o->ctrl);
	if (o->data != NULL && endpoint_parse(o->data, &in->data_ep) == -1)
		fatalx(EXIT_USAGE, "--data: expected unix:PATH or tcp:HOST:PORT, not %s", o->data);
	in->has_data_ep = o->data != NULL;
	in->startup_clear = o->startup != NULL;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	instance_open_store(in, o);
	if (instance_engine_select(in) == -1)
		fatalx(EXIT_RUNTIME, "libtpms refused TPM version %s", o->tpm);
	in->ctrl_listen = instance_listen(in, &in->ctrl_ep, o);
	if (in->has_data_ep)
		in->data_listen = instance_listen(in, &in->data_ep, o);
	instance_commit_setup(in, o);
}

/* Startup(CLEAR) at start, in data-channel mode when asked (--startup
 * clear): a TPM that tools can use without a platform to start it. */
static void
instance_startup_clear(struct instance *in)
{
	uint8_t cmd[12];
	uint32_t rc;

	rc = instance_internal_command(cmd, tpmwire_startup_clear(cmd, in->tpm_version));
	if (rc != 0)
		log_warnx("Startup(CLEAR) answered 0x%x", rc);
}

/* Limits the instance's resources, and confines it (sandbox.c) when asked
 * to; it holds its state
 * directory, lock and listeners by now and has read no input yet (its
 * state included). OpenSSL's configuration, outside the sandbox's root,
 * is read first. */
static void
instance_sandbox(const struct instance_opts *o)
{
	struct err err = {0};

	if (instance_limit_resources(&err) == -1)
		fatalx(EXIT_RUNTIME, "%s", err.msg);
	if (o->sandbox_uid == 0)
		return;
	if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
		fatalx(EXIT_RUNTIME, "cannot initialise OpenSSL");
	if (instance_sandbox_enter(
	        o->state_dir, (uid_t)o->sandbox_uid, (gid_t)o->sandbox_gid, &err) == -1)
		fatalx(EXIT_RUNTIME,
		    "%s: cannot enter the sandbox as %u:%u in %s (run as root, with "
		    "the state directory and its files owned by that uid)",
		    err.msg, o->sandbox_uid, o->sandbox_gid, o->state_dir);
	log_debug("sandboxed in %s as %u:%u", o->state_dir, o->sandbox_uid, o->sandbox_gid);
}

int
instance_main(int argc, char **argv)
{
	struct instance in = {0};
	struct instance_opts o;
	enum log_level level;
	char tag[96], *dircopy;
	int status;

	instance_parse_args(argc, argv, &o);
	in.signalled = &instance_signalled;
	in.nv_rate = o.nv_rate;
	if (log_parse_level(o.log_level, &level) == -1)
		fatalx(EXIT_USAGE, "--log-level: expected error, warn, info or debug");
	dircopy = strdup(o.state_dir);
	if (dircopy == NULL)
		fatal(EXIT_RUNTIME, "strdup");
	in.name = o.name != NULL ? o.name : basename(dircopy);
	if (o.log_relayed)
		tag[0] = '\0';
	else
		snprintf(tag, sizeof(tag), "instance[%s]", in.name);
	log_init(tag, level);
	secret_harden_process();

	instance_setup(&in, &o);
	instance_sandbox(&o);
	if ((status = instance_read_state(&in, o.state_dir, o.revert_generation)) != 0) {
		/* A refused start leaves nothing (sandboxed, the paths are out
		 * of reach: the manager removes them). */
		if (o.sandbox_uid == 0) {
			instance_unlink(&in.ctrl_ep, in.ctrl_listen);
			instance_unlink(&in.data_ep, in.data_listen);
		}
		exit(status);
	}
	/* Ready once the state is loaded and the listeners are up: Startup
	 * (and the state write it causes) runs before the first command is
	 * read, while whoever waits for READY goes on. */
	if (o.ready_fd != -1) {
		if (write(o.ready_fd, "READY\n", 6) != 6)
			log_warn("--ready-fd %d", o.ready_fd);
		close(o.ready_fd);
	}
	if (in.has_data_ep && in.startup_clear)
		instance_startup_clear(&in);
	log_info("serving TPM %s%s", in.tpm_version == 2 ? "2.0" : "1.2",
	    store_encrypted(in.store) ? " (encrypted state)" : " (UNPROTECTED state)");

	instance_loop(&in, o.io_timeout_ms);

	if (instance_signalled)
		log_info("signal %d: saving and stopping", (int)instance_signalled);
	instance_power_off(&in);
	/* The last write is reported, not waited for: vtpmd records it once
	 * the worker has ended (or at the next start, as in flight). */
	instance_commit_close(&in);
	conn_close(&in.ctrl);
	conn_close(&in.data);
	/* From the sandbox the socket paths are out of reach: whoever
	 * started the instance removes them. */
	if (o.sandbox_uid == 0) {
		instance_unlink(&in.ctrl_ep, in.ctrl_listen);
		instance_unlink(&in.data_ep, in.data_listen);
	}
	free(in.ctrl.buf);
	free(in.data.buf);
	if (in.cache != NULL) {
		explicit_bzero(in.cache, in.cache_len);
		free(in.cache);
	}
	secret_free(in.blob_key, sizeof(*in.blob_key));
	free(in.wrapped);
	for (int k = STATE_VOLATILE; k <= STATE_SAVESTATE; k++)
		instance_snapshot_drop(&in, k);
	store_close(in.store);
	free(dircopy);
	log_info("stopped");
	return EXIT_OK;
}
