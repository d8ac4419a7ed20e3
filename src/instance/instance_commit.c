/*
 * instance_commit.c: the worker's side of the commit channel
 * (docs/state.md). Each permanent-state write is reported to vtpmd (its
 * generation and the SHA-256 of the file), which records it in its
 * manifest and covers it with the host TPM's counter, then acknowledges.
 * Until then the guest's answer is held, and no further permanent write
 * happens: at most one generation is ever unacknowledged.
 *
 * The channel is a socketpair end the starting vtpmd hands over, or a
 * connection a vtpmd that adopts the worker makes to its listener
 * RUN/NAME.commit (root's, 0600, bound before the sandbox); a new
 * connection replaces the old one, and the pending report is sent again.
 *
 *   report (worker to vtpmd): "VTCR" | generation (8, big-endian) | SHA-256
 *   acknowledgement (back):   "VTCA" | generation (8, big-endian)
 *   strict from now (back):   "VTCS" | 0 (8)
 *   revert permitted (back):  "VTCP" | generation (8; 0 withdraws)
 *   a revert's report:        "VTCV" | generation | SHA-256
 *
 * A worker vtpmd provisions (--commit-relaxed) reports but holds nothing:
 * vtpmd's own commands to it come from vtpmd's loop, which could not
 * acknowledge meanwhile. vtpmd records what it wrote and sends VTCS before
 * any guest can connect.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "instance.h"

#define COMMIT_WARN_MS 10000 /* a held answer is logged this often */

static const uint8_t commit_report_magic[4] = {'V', 'T', 'C', 'R'};
static const uint8_t commit_ack_magic[4] = {'V', 'T', 'C', 'A'};
static const uint8_t commit_strict_magic[4] = {'V', 'T', 'C', 'S'};
static const uint8_t commit_permit_magic[4] = {'V', 'T', 'C', 'P'};
static const uint8_t commit_revert_magic[4] = {'V', 'T', 'C', 'V'};

static void
commit_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void
commit_drop(struct instance_commit *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->in_len = 0;
}

/* Sends the pending report on the current connection, if any. */
static void
commit_send(struct instance_commit *c)
{
	uint8_t msg[COMMIT_REPORT_LEN];

	if (!c->pending || c->fd == -1)
		return;
	memcpy(msg, c->revert ? commit_revert_magic : commit_report_magic, 4);
	commit_put_be64(msg + 4, c->gen);
	memcpy(msg + 12, c->digest, STORE_DIGEST_LEN);
	/* 44 bytes on a unix stream socket vtpmd reads: never partial. */
	if (send(c->fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(msg)) {
		log_warn("commit channel: send");
		commit_drop(c);
	}
}

/* Called after store_put wrote a permanent generation: reports it. */
void
instance_commit_report(struct instance *in)
{
	struct instance_commit *c = &in->commit;

	store_put_digest(in->store, &c->gen, c->digest);
	c->pending = true;
	c->revert = c->revert_write;
	c->revert_write = false;
	commit_send(c);
}

/* Takes a connection from a vtpmd that adopts this worker. */
static void
commit_accept(struct instance_commit *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd == -1)
		return;
	commit_drop(c);
	c->fd = fd;
	log_debug("commit channel: vtpmd connected");
	commit_send(c);
}

/* VTCP: vtpmd permits one revert by SET_STATEBLOB to the permanent blob of
 * a generation (an operator's allow-revert); 0 withdraws it. */
static void
commit_permit(struct instance_commit *c)
{
	uint64_t gen = 0;

	for (int i = 4; i < 12; i++)
		gen = gen << 8 | c->in[i];
	c->revert_permit = gen;
	if (gen != 0)
		log_info("commit channel: vtpmd permits one revert to generation %llu of the TPM "
			 "state (SET_STATEBLOB)", (unsigned long long)gen);
}

/* Reads acknowledgements; a closed connection is dropped. */
static void
commit_read(struct instance_commit *c)
{
	ssize_t n;
	uint64_t gen;

	for (;;) {
		/* read(), on the non-blocking socket: the sandbox allows it */
		n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			log_debug("commit channel: vtpmd went away");
			commit_drop(c);
			return;
		}
		c->in_len += (size_t)n;
		if (c->in_len < sizeof(c->in))
			continue;
		c->in_len = 0;
		if (memcmp(c->in, commit_strict_magic, 4) == 0) {
			c->relaxed = false;
			c->pending = false;
			log_debug("commit channel: answers wait for vtpmd from now on");
			continue;
		}
		if (memcmp(c->in, commit_permit_magic, 4) == 0) {
			commit_permit(c);
			continue;
		}
		if (memcmp(c->in, commit_ack_magic, 4) != 0) {
			log_warnx("commit channel: not an acknowledgement; closing it");
			commit_drop(c);
			return;
		}
		gen = 0;
		for (int i = 4; i < 12; i++)
			gen = gen << 8 | c->in[i];
		if (c->pending && gen >= c->gen)
			c->pending = c->revert = false;
	}
}

/* Adds the channel's descriptors to pfd at *n; idx[0] the connection's,
 * idx[1] the listener's (-1 when absent). */
void
instance_commit_pollfds(const struct instance *in, struct pollfd *pfd, int *n, int idx[2])
{
	const struct instance_commit *c = &in->commit;

	idx[0] = idx[1] = -1;
	if (c->fd != -1) {
		idx[0] = *n;
		pfd[(*n)++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
	}
	if (c->listen_fd != -1) {
		idx[1] = *n;
		pfd[(*n)++] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
	}
}

/* Handles what poll reported on the channel's descriptors. */
void
instance_commit_events(struct instance *in, const struct pollfd *pfd, const int idx[2])
{
	if (idx[0] != -1 && pfd[idx[0]].revents != 0 && in->commit.fd == pfd[idx[0]].fd)
		commit_read(&in->commit);
	if (idx[1] != -1 && pfd[idx[1]].revents != 0)
		commit_accept(&in->commit);
}

/*
 * Waits until vtpmd has acknowledged the pending report (at once when
 * none is pending, or when the worker has no commit channel). With grace_ms
 * < 0 it waits as long as it takes, unless a signal asks the worker to
 * stop; otherwise at most grace_ms, signals or not. Returns 0 once
 * acknowledged, -1 when it gave up (the write stays unacknowledged: in
 * flight, docs/state.md).
 */
int
instance_commit_wait(struct instance *in, int grace_ms)
{
	struct instance_commit *c = &in->commit;
	int64_t start = mono_ms(), warned = start, now;
	struct pollfd pfd[2];
	struct timespec ts;
	sigset_t unblocked;
	int n, idx[2];

	if (!c->enabled || c->relaxed)
		return 0;
	sigemptyset(&unblocked);
	while (c->pending) {
		now = mono_ms();
		if (grace_ms < 0 && in->signalled != NULL && *in->signalled)
			return -1;
		if (grace_ms >= 0 && now - start >= grace_ms)
			return -1;
		if (now - warned >= COMMIT_WARN_MS) {
			log_warnx("generation %llu of the TPM state waits %lld s for vtpmd to record "
				  "it; the guest's answer is held", (unsigned long long)c->gen,
			    (long long)(now - start) / 1000);
			warned = now;
		}
		n = 0;
		instance_commit_pollfds(in, pfd, &n, idx);
		ts = (struct timespec){.tv_sec = 0, .tv_nsec = 200 * 1000000L};
		if (ppoll(pfd, (nfds_t)n, &ts, grace_ms < 0 ? &unblocked : NULL) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("commit channel: poll");
			return -1;
		}
		instance_commit_events(in, pfd, idx);
	}
	return 0;
}

/* Closes the channel. */
void
instance_commit_close(struct instance *in)
{
	commit_drop(&in->commit);
	if (in->commit.listen_fd != -1)
		close(in->commit.listen_fd);
	in->commit.listen_fd = -1;
}
