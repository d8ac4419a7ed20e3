/*
 * store.c: an instance's state directory.
 *
 * Holds one file per state kind (statefile.c format) and a lock file.
 * Contract: a blob handed to store_put is on stable storage when it
 * returns 0 (written to a new file, synced, renamed over the old one, and
 * the directory synced), so a crash at any moment leaves either the old or
 * the new blob, never a mix. The directory is locked for the lifetime of
 * the store, so two instances never share one state.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "instance.h"

#define STORE_KINDS 4

struct store {
	char *dir;
	int dirfd;
	int lockfd;
	uint8_t *key; /* STATE_KEY_LEN bytes of secret memory, or NULL */
	unsigned int tpm_version;
	bool peeked; /* generation[] read from the files */
	uint64_t generation[STORE_KINDS];
	uint8_t put_digest[STORE_DIGEST_LEN]; /* SHA-256 of the last permanent file written */
	uint32_t since_client[STORE_KINDS]; /* statefile_info.since_client */
	bool snapshot_out; /* of the permanent state on disk: statefile_info.snapshot_out */
};

static const char *const store_names[STORE_KINDS] = {
	[STATE_PERMANENT] = "permanent.state",
	[STATE_VOLATILE] = "volatile.state",
	[STATE_SAVESTATE] = "savestate.state",
};

const char *
store_filename(enum state_kind kind)
{
	if (kind < STATE_PERMANENT || kind > STATE_SAVESTATE)
		return "?";
	return store_names[kind];
}

const char *
store_dir(const struct store *st)
{
	return st->dir;
}

bool
store_encrypted(const struct store *st)
{
	return st->key != NULL;
}

static uint64_t
store_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Bytes 13..15 of a state file's header: writes since the last client's
 * write, and (permanent state) whether a snapshot of it may be out. */
static void
store_take_flags(struct store *st, enum state_kind kind, const uint8_t *hdr)
{
	uint32_t v = (uint32_t)store_be(hdr + 13, 3);

	st->since_client[kind] = v & STATEFILE_SINCE_CLIENT_MAX;
	if (kind == STATE_PERMANENT)
		st->snapshot_out = (v & STATEFILE_SNAPSHOT_BIT) != 0;
}

/* Continues each kind's generation numbering from the file on disk, at
 * the first read or write (not at store_open: a sandboxed instance reads
 * no file content before it is confined). The header is only peeked at
 * here; store_get authenticates it. */
static void
store_peek_generations(struct store *st)
{
	uint8_t hdr[24];
	struct stat sb;
	int fd;

	if (st->peeked)
		return;
	st->peeked = true;
	for (int k = STATE_PERMANENT; k <= STATE_SAVESTATE; k++) {
		fd = openat(st->dirfd, store_names[k], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd == -1)
			continue;
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    read(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) &&
		    memcmp(hdr, "VTPMDST", 8) == 0) {
			st->generation[k] = store_be(hdr + 16, 8);
			store_take_flags(st, k, hdr);
		}
		close(fd);
	}
}

/* The generation of kind's latest write (0: none yet): for permanent
 * state, the one a state blob of this instance carries; for volatile and
 * savestate, the permanent generation it was written with (its stamp). */
uint64_t
store_generation(struct store *st, enum state_kind kind)
{
	store_peek_generations(st);
	return st->generation[kind];
}

/* The generation of kind's latest write that a client's command caused
 * (or a restore, or the first): vtpmd's own writes since (an orderly
 * shutdown at power-off) change nothing a client saw. */
uint64_t
store_client_generation(struct store *st, enum state_kind kind)
{
	store_peek_generations(st);
	if (st->since_client[kind] > st->generation[kind])
		return 0;
	return st->generation[kind] - st->since_client[kind];
}

/* Numbers kind's next write gen + 1, whatever the file on disk holds: an
 * authorised revert's state is stored beyond every generation recorded. */
void
store_continue_from(struct store *st, enum state_kind kind, uint64_t gen)
{
	store_peek_generations(st);
	st->generation[kind] = gen;
}

/* Removes temporary files that a crash in the middle of store_put left. */
static void
store_sweep(struct store *st)
{
	char tmp[64];

	for (int k = STATE_PERMANENT; k <= STATE_SAVESTATE; k++) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", store_names[k]);
		if (unlinkat(st->dirfd, tmp, 0) == 0)
			log_info("%s: removed %s left by an interrupted write", st->dir, tmp);
	}
}

/*
 * Opens (creating if needed, mode 0700) the state directory dir and locks
 * it. key is STATE_KEY_LEN bytes (copied into locked memory) or NULL for
 * unprotected state. Returns the store, or NULL with err set (ERR_BUSY
 * when another process holds the lock, ERR_IO otherwise).
 */
struct store *
store_open(const char *dir, const uint8_t *key, unsigned int tpm_version, struct err *err)
{
	struct store *st;

	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		err_errno(err, "%s", dir);
		return NULL;
	}
	st->dirfd = st->lockfd = -1;
	st->tpm_version = tpm_version;
	st->dir = strdup(dir);
	if (st->dir == NULL)
		goto fail;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd == -1)
		goto fail;
	st->lockfd = openat(st->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lockfd == -1)
		goto fail;
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			err_set(err, ERR_BUSY, "%s: state directory in use by another instance", dir);
			store_close(st);
			return NULL;
		}
		goto fail;
	}
	if (key != NULL) {
		st->key = secret_alloc(STATE_KEY_LEN);
		if (st->key == NULL)
			goto fail;
		memcpy(st->key, key, STATE_KEY_LEN);
	}
	store_sweep(st);
	return st;
fail:
	err_errno(err, "%s: open state directory", dir);
	store_close(st);
	return NULL;
}

/* Releases the lock and wipes the key. Accepts NULL. */
void
store_close(struct store *st)
{
	int saved = errno;

	if (st == NULL)
		return;
	secret_free(st->key, STATE_KEY_LEN);
	if (st->lockfd != -1)
		close(st->lockfd);
	if (st->dirfd != -1)
		close(st->dirfd);
	free(st->dir);
	free(st);
	errno = saved;
}

/* Reads a whole file below the store's directory. Returns 0 with a malloc'd
 * buffer, or -1 with errno (EFBIG when it exceeds any valid state file). */
static int
store_slurp(struct store *st, const char *name, uint8_t **buf, size_t *len)
{
	struct stat sb;
	size_t got = 0;
	uint8_t *p = NULL;
	ssize_t n;
	int fd, ret = -1;

	/* O_NONBLOCK: a FIFO in its place fails the check below instead of
	 * blocking the open. */
	fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		return -1;
	if (fstat(fd, &sb) == -1)
		goto out;
	if (!S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size > statefile_encoded_size(STATEFILE_MAX_PAYLOAD, false)) {
		errno = S_ISREG(sb.st_mode) ? EFBIG : EINVAL;
		goto out;
	}
	p = malloc((size_t)sb.st_size + 1);
	if (p == NULL)
		goto out;
	while (got < (size_t)sb.st_size) {
		n = read(fd, p + got, (size_t)sb.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				break; /* shrank under us: the decoder reports truncation */
			goto out;
		}
		got += (size_t)n;
	}
	*buf = p;
	*len = got;
	p = NULL;
	ret = 0;
out:
	free(p);
	close(fd);
	return ret;
}

/*
 * Reads and authenticates the blob of kind. Returns 0 with a malloc'd
 * plaintext (*blob, to be wiped and freed by the caller), or -1 with err:
 * ERR_ABSENT when there is none, ERR_CORRUPT when the file exists but
 * cannot be read as the state it should be, ERR_IO otherwise; the message
 * names the file and the reason.
 */
int
store_get(struct store *st, enum state_kind kind, uint8_t **blob, size_t *len, struct err *err)
{
	struct statefile_info expect = {.kind = kind, .tpm_version = st->tpm_version};
	enum statefile_verdict serr;
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	uint64_t gen = 0;

	store_peek_generations(st);
	if (store_slurp(st, store_names[kind], &raw, &raw_len) == -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s/%s: no state yet", st->dir,
			    store_names[kind]);
		if (errno == EFBIG)
			return err_set(err, ERR_CORRUPT, "%s/%s: larger than any valid state file",
			    st->dir, store_names[kind]);
		return err_errno(err, "%s/%s", st->dir, store_names[kind]);
	}
	serr = statefile_decode(st->key, raw, raw_len, &expect, &gen, blob, len);
	/* Bytes 13..15, authenticated with the header (which a decoded file
	 * holds whole: the length check is for the analyser's sake). */
	if (serr == STATEFILE_OK && raw_len >= 16)
		store_take_flags(st, kind, raw);
	free(raw);
	if (serr != STATEFILE_OK)
		return err_set(err, serr == STATEFILE_NOMEM ? ERR_FAILED : ERR_CORRUPT, "%s/%s: %s",
		    st->dir, store_names[kind], statefile_strerror(serr));
	st->generation[kind] = gen;
	return 0;
}

static int
store_write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int store_write(struct store *st, enum state_kind kind, const uint8_t *blob,
    size_t len, bool by_client, bool snapshot_out);

/* store_put_as for a write a client's command caused. */
int
store_put(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len)
{
	return store_put_as(st, kind, blob, len, true);
}

/*
 * Durably replaces the blob of kind; by_client says whether a client's
 * command caused the write (store_client_generation). A client's write of
 * permanent state retires its snapshots (store_snapshot_out turns false);
 * others keep the mark as it was. Volatile and savestate are stamped with
 * the permanent state's generation. Returns 0 once the new blob is on
 * stable storage, or -1 with errno. On failure the file holds either the
 * previous blob or (when only the final directory sync failed) the whole
 * new one; never a mix.
 */
int
store_put_as(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len,
    bool by_client)
{
	store_peek_generations(st);
	return store_write(st, kind, blob, len, by_client, !by_client && st->snapshot_out);
}

/* store_put_as with the permanent state's snapshot mark given. */
static int
store_write(struct store *st, enum state_kind kind, const uint8_t *blob, size_t len,
    bool by_client, bool snapshot_out)
{
	struct statefile_info info = {.kind = kind, .tpm_version = st->tpm_version};
	size_t enc_len = statefile_encoded_size(len, st->key != NULL);
	uint8_t digest[STORE_DIGEST_LEN];
	char tmp[64];
	uint8_t *enc;
	int fd = -1, ret = -1, saved;

	store_peek_generations(st);
	if (kind == STATE_PERMANENT) {
		info.generation = st->generation[kind] + 1;
		info.since_client = by_client ? 0 : st->since_client[kind] + 1;
		info.snapshot_out = snapshot_out;
	} else {
		info.generation = st->generation[STATE_PERMANENT];
	}
	if (info.since_client > STATEFILE_SINCE_CLIENT_MAX)
		info.since_client = STATEFILE_SINCE_CLIENT_MAX;
	if (len > STATEFILE_MAX_PAYLOAD) {
		errno = EFBIG;
		return -1;
	}
	enc = malloc(enc_len);
	if (enc == NULL)
		return -1;
	if (statefile_encode(&info, st->key, blob, len, enc, enc_len) < 0) {
		errno = EIO;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", store_names[kind]);
	fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		goto out;
	if (store_write_all(fd, enc, enc_len) == -1 || fdatasync(fd) == -1)
		goto out;
	if (kind == STATE_PERMANENT)
		SHA256(enc, enc_len, digest);
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (renameat(st->dirfd, tmp, st->dirfd, store_names[kind]) == -1)
		goto out;
	/* The new blob is in place (whole, synced), but survives a power loss
	 * only once the directory is synced: until then the generations in
	 * memory (those a snapshot is stamped with, and a report names) stay
	 * the old ones. A failed sync leaves the file unreported: the next
	 * write takes its number again, and no stamp ever named it. */
	if (fsync(st->dirfd) == -1)
		goto out;
	st->generation[kind] = info.generation;
	st->since_client[kind] = info.since_client;
	if (kind == STATE_PERMANENT) {
		st->snapshot_out = info.snapshot_out;
		memcpy(st->put_digest, digest, STORE_DIGEST_LEN);
	}
	ret = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (ret != 0)
		unlinkat(st->dirfd, tmp, 0);
	free(enc);
	errno = saved;
	return ret;
}

/* Whether a snapshot of the permanent state on disk may be out (a state
 * blob, a volatile or savestate file taken since its last client write). */
bool
store_snapshot_out(struct store *st)
{
	store_peek_generations(st);
	return st->snapshot_out;
}

/*
 * Writes the permanent state again, unchanged, as its next generation:
 * marked as having a snapshot out (snapshot_out, a write of vtpmd's own
 * that leaves store_client_generation as it was), or as a client's write
 * that retires every snapshot taken before (by_client). Returns 0; -1
 * with err: ERR_ABSENT when there is no permanent state yet.
 */
int
store_restamp(struct store *st, bool snapshot_out, bool by_client, struct err *err)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc;

	if (store_get(st, STATE_PERMANENT, &blob, &len, err) == -1)
		return -1;
	rc = store_write(st, STATE_PERMANENT, blob, len, by_client, snapshot_out);
	OPENSSL_cleanse(blob, len);
	free(blob);
	if (rc == -1)
		return err_errno(err, "%s/%s: rewrite", st->dir, store_names[STATE_PERMANENT]);
	return 0;
}

/* Durably removes the blob of kind; a missing blob is not an error (the
 * directory is synced then too: an earlier removal may not be durable). */
int
store_delete(struct store *st, enum state_kind kind)
{
	if (unlinkat(st->dirfd, store_names[kind], 0) == -1 && errno != ENOENT)
		return -1;
	return fsync(st->dirfd);
}

/* The generation and digest (SHA-256 of the whole file, as
 * store_file_digest computes it) of the permanent state store_put wrote
 * last. */
void
store_put_digest(const struct store *st, uint64_t *gen, uint8_t digest[STORE_DIGEST_LEN])
{
	*gen = st->generation[STATE_PERMANENT];
	memcpy(digest, st->put_digest, STORE_DIGEST_LEN);
}

/*
 * Reads the state file at path, without its key: the generation its
 * header declares (authenticated only when the worker decrypts it, which
 * refuses an altered header) and the SHA-256 of the whole file. Returns 0;
 * -1 with err: ERR_ABSENT when there is no file, ERR_CORRUPT when it is
 * not a state file, ERR_IO otherwise.
 */
int
store_file_digest(const char *path, uint64_t *gen, uint8_t digest[STORE_DIGEST_LEN],
    struct err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	if (fileio_read(path, statefile_encoded_size(STATEFILE_MAX_PAYLOAD, false), &buf, &len) ==
	    -1) {
		if (errno == ENOENT)
			return err_set(err, ERR_ABSENT, "%s: no state yet", path);
		return err_errno(err, "%s", path);
	}
	if (len < 24 || memcmp(buf, "VTPMDST", 8) != 0) {
		free(buf);
		return err_set(err, ERR_CORRUPT, "%s: not a vtpmd state file", path);
	}
	*gen = 0;
	for (int i = 16; i < 24; i++)
		*gen = *gen << 8 | buf[i];
	SHA256(buf, len, digest);
	free(buf);
	return 0;
}
