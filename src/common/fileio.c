/*
 * fileio.c: small whole-file helpers for the manager's records (instance
 * records, approvals, sealed keys). Replacement is crash-safe: a complete,
 * synced new file is renamed over the old one and the directory synced.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* Reads all of path (at most max bytes) into a malloc'd, NUL-terminated
 * buffer. Returns 0, or -1 with errno (EFBIG when larger than max). */
int
fileio_read(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct stat sb;
	uint8_t *p = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, saved, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	if (fstat(fd, &sb) == -1)
		goto out;
	if (!S_ISREG(sb.st_mode) || (size_t)sb.st_size > max) {
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
		if (n == -1)
			goto out;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	p[got] = '\0';
	*buf = p;
	*len = got;
	p = NULL;
	ret = 0;
out:
	saved = errno;
	free(p);
	close(fd);
	errno = saved;
	return ret;
}

/* Replaces path with buf: atomically (a reader sees the old or the new
 * file), and durably when durable is set (the file and its directory are
 * synced). Returns 0, or -1 with errno; on failure the previous file is
 * intact. */
static int
fileio_replace(const char *path, const void *buf, size_t len, mode_t mode, bool durable)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const uint8_t *p = buf;
	int fd = -1, dfd = -1, saved, ret = -1;
	ssize_t n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd == -1)
		return -1;
	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		p += n;
		len -= (size_t)n;
	}
	if (durable && fsync(fd) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto out;
	if (durable) {
		dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd == -1 || fsync(dfd) == -1)
			goto out;
	}
	ret = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (ret != 0)
		unlink(tmp);
	errno = saved;
	return ret;
}

/* Replaces path with buf durably (fileio_replace). */
int
fileio_write_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	return fileio_replace(path, buf, len, mode, true);
}

/* Replaces path with buf atomically but without syncing: for runtime
 * files (pid files under the run directory) that a host crash makes
 * meaningless anyway. */
int
fileio_write_runtime(const char *path, const void *buf, size_t len, mode_t mode)
{
	return fileio_replace(path, buf, len, mode, false);
}

/* Recursive, one level per directory: the trees it removes are vtpmd's own,
 * of bounded depth (a worker's seccomp allow-list has no mkdir). */
static int
fileio_remove_at(int dfd, const char *name) /* NOLINT(misc-no-recursion) */
{
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fileio_remove_at(dirfd(d), de->d_name) == -1)
			ret = -1;
	}
	closedir(d);
	if (ret == 0 && unlinkat(dfd, name, AT_REMOVEDIR) == -1)
		ret = -1;
	return ret;
}

/* Removes path and everything below it, never following symbolic links. */
int
fileio_remove_tree(const char *path)
{
	return fileio_remove_at(AT_FDCWD, path);
}

/* Creates path and its missing parents (like mkdir -p); the last
 * component gets mode. Returns 0, or -1 with errno. */
int
fileio_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}
