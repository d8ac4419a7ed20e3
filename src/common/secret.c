/*
 * secret.c: where key material lives. Pages are locked (never swapped),
 * excluded from core dumps, zero in a forked child (the manager forks a
 * helper per CA request), and wiped before they are returned; the process
 * itself is made non-dumpable so no other user can ptrace it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common.h"

/* Returns zeroed, locked memory of len bytes, or NULL. Free with secret_free. */
void *
secret_alloc(size_t len)
{
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (madvise(p, len, MADV_DONTDUMP) == -1)
		log_warn("secret: madvise(DONTDUMP)");
	if (madvise(p, len, MADV_WIPEONFORK) == -1)
		log_warn("secret: madvise(WIPEONFORK)");
	if (mlock(p, len) == -1)
		log_warn("secret: mlock (key may be swapped)");
	return p;
}

/* Wipes and releases memory from secret_alloc. Accepts NULL. */
void
secret_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	munlock(p, len);
	munmap(p, len);
}

/* Reads exactly len bytes from fd into out and closes fd. Returns 0, or -1
 * with errno (EINVAL when the descriptor held too few or too many bytes). */
int
secret_read_fd(int fd, uint8_t *out, size_t len)
{
	size_t got = 0;
	uint8_t extra;
	ssize_t n;
	int ret = -1;

	while (got < len) {
		n = read(fd, out + got, len - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 0) {
			errno = EINVAL;
			goto out;
		}
		got += (size_t)n;
	}
	/* A descriptor with more than len bytes is a misconfiguration. */
	do
		n = read(fd, &extra, 1);
	while (n == -1 && errno == EINTR);
	if (n != 0) {
		errno = EINVAL;
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		OPENSSL_cleanse(out, len);
	close(fd);
	return ret;
}

/* Makes the process non-dumpable and disables core files. */
void
secret_harden_process(void)
{
	struct rlimit no_core = {0, 0};

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		log_warn("prctl(PR_SET_DUMPABLE)");
	if (setrlimit(RLIMIT_CORE, &no_core) == -1)
		log_warn("setrlimit(RLIMIT_CORE)");
}
