/*
 * workerlog.c: each worker's log reaches vtpmd's log through the manager,
 * which puts the instance's tag ("instance[vm-a]: ") before every line.
 * A worker writes untagged lines (`--log-relayed`) on its stderr; whatever
 * it writes, a line that looks like vtpmd's or like another instance's
 * comes out under its own tag, with control and non-ASCII bytes escaped
 * (\xNN), cut into pieces of WORKERLOG_LINE_MAX that each carry the tag,
 * and at most WORKERLOG_LINES_PER_S lines a second (the rest are counted
 * and the count is logged), so that one worker cannot flood the journal.
 *
 * The channel is a FIFO in the run directory, NAME.log (root's, 0600),
 * rather than a pipe, so that it outlives the manager: workers keep
 * serving while vtpmd restarts, and the vtpmd that adopts them opens the
 * same FIFO and relays what they write from then on. The manager holds it
 * open for reading and writing: it never reads an end of file, and a
 * worker's write never blocks on an absent reader. While no vtpmd runs, a
 * worker's lines fail with EPIPE (workers ignore SIGPIPE) and are lost.
 * A worker whose lines the manager does not read in time blocks in its own
 * write, never the manager: the manager's end is non-blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manager.h"

struct workerlog {
	int fd;                        /* the manager's end (O_RDWR, non-blocking) */
	char line[WORKERLOG_LINE_MAX]; /* a line not yet ended */
	size_t len;
	int64_t window_ms;     /* the second the count below is for */
	unsigned int lines;    /* lines relayed in that second */
	unsigned long dropped; /* lines dropped in it */
};

static int
workerlog_path(const struct config *cfg, const char *name, char *path, size_t len)
{
	return snprintf(path, len, "%s/%s.log", cfg->run_dir, name) < (int)len ? 0 : -1;
}

/* Opens path, a FIFO of ours, with flags; makes it first when absent. A
 * file of any other kind there (or of another owner) is replaced. */
static int
workerlog_fifo(const char *path, int flags)
{
	struct stat st;
	int fd;

	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_uid == geteuid() &&
		    (st.st_mode & 077) == 0)
			return fd;
		close(fd);
	} else if (errno != ENOENT && errno != ELOOP) {
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT)
		return -1;
	if (mkfifo(path, 0600) == -1)
		return -1;
	return open(path, flags | O_NOFOLLOW | O_CLOEXEC);
}

int
workerlog_open(const struct manager *m, struct vtpm *v, struct err *err)
{
	char path[PATH_MAX];
	struct workerlog *l;

	if (v->log != NULL)
		return 0;
	if (workerlog_path(&m->cfg, v->name, path, sizeof(path)) == -1)
		return err_set(err, ERR_FAILED, "%s: run directory path too long", v->name);
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	l->fd = workerlog_fifo(path, O_RDWR | O_NONBLOCK);
	if (l->fd == -1) {
		err_errno(err, "%s", path);
		free(l);
		return -1;
	}
	v->log = l;
	return 0;
}

int
workerlog_writer(const struct manager *m, const struct vtpm *v, struct err *err)
{
	char path[PATH_MAX];
	int fd;

	if (workerlog_path(&m->cfg, v->name, path, sizeof(path)) == -1)
		return err_set(err, ERR_FAILED, "%s: run directory path too long", v->name);
	/* The manager's end is open for reading: this open does not wait. */
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		err_errno(err, "%s", path);
	return fd;
}

int
workerlog_fd(const struct vtpm *v)
{
	return v->log != NULL ? v->log->fd : -1;
}

/* Writes what the bytes say, escaped where they are not printable ASCII,
 * under v's tag. */
static void
workerlog_emit(const struct vtpm *v, const char *bytes, size_t len)
{
	char out[4 * WORKERLOG_LINE_MAX + 1], tag[VTPM_NAME_MAX + 16];
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)bytes[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = '\0';
	snprintf(tag, sizeof(tag), "instance[%s]", v->name);
	log_relay(tag, out);
}

/* Relays one line, or drops it when v's worker has had its share of this
 * second; the first line of a new second says how many were dropped. */
static void
workerlog_line(const struct vtpm *v, struct workerlog *l, const char *bytes, size_t len)
{
	int64_t now = mono_ms();
	char note[96];

	if (now - l->window_ms >= 1000) {
		if (l->dropped > 0) {
			snprintf(note, sizeof(note),
			    "vtpmd: %lu lines of this worker's log dropped (over %d a second)",
			    l->dropped, WORKERLOG_LINES_PER_S);
			workerlog_emit(v, note, strlen(note));
		}
		l->window_ms = now;
		l->lines = 0;
		l->dropped = 0;
	}
	if (l->lines >= WORKERLOG_LINES_PER_S) {
		l->dropped++;
		return;
	}
	l->lines++;
	workerlog_emit(v, bytes, len);
}

void
workerlog_read(struct vtpm *v)
{
	struct workerlog *l = v->log;
	char buf[4096];
	ssize_t n;

	if (l == NULL)
		return;
	/* At most a few reads a round: a worker that writes without end
	 * gets its share, and the loop goes on. */
	for (int round = 0; round < 16; round++) {
		n = read(l->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				workerlog_line(v, l, l->line, l->len);
				l->len = 0;
				continue;
			}
			if (l->len == sizeof(l->line)) {
				/* A piece of a long line, tagged as every piece is. */
				workerlog_line(v, l, l->line, l->len);
				l->len = 0;
			}
			l->line[l->len++] = buf[i];
		}
	}
}

void
workerlog_drain(struct vtpm *v)
{
	struct workerlog *l = v->log;

	if (l == NULL)
		return;
	workerlog_read(v);
	if (l->len > 0)
		workerlog_line(v, l, l->line, l->len);
	l->len = 0;
}

void
workerlog_close(const struct manager *m, struct vtpm *v, bool remove)
{
	char path[PATH_MAX];
	struct workerlog *l = v->log;

	if (l == NULL)
		return;
	workerlog_drain(v);
	close(l->fd);
	free(l);
	v->log = NULL;
	if (remove && workerlog_path(&m->cfg, v->name, path, sizeof(path)) == 0 &&
	    unlink(path) == -1 && errno != ENOENT)
		log_warn("%s", path);
}
