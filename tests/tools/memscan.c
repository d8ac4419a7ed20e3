/*
 * memscan: where a secret sits in a process's memory, for tests of what
 * vtpmd keeps in locked, non-dumped memory.
 *
 *   memscan PID find HEX   one line per occurrence of the bytes HEX in
 *                          PID's readable mappings: "ADDRESS FLAGS NAME",
 *                          FLAGS "locked,nodump" or what it lacks of them
 *   memscan PID secrets N  the first N bytes of each of PID's mappings
 *                          that are locked and not dumped (where secret.c
 *                          puts keys), in hex, one per line; all-zero ones
 *                          are skipped
 *
 * Reads /proc/PID/smaps and /proc/PID/mem (root). Exits 0, or 1 on error.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

struct region {
	unsigned long start, end;
	bool readable, locked, nodump;
	char name[256];
};

/* Reads PID's mappings with their VmFlags; returns their number. */
static size_t
memscan_regions(int pid, struct region **out)
{
	char path[64], line[512];
	struct region *r = NULL, *cur = NULL;
	size_t n = 0, cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	if ((f = fopen(path, "re")) == NULL)
		fatal(1, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long a, b;
		char perm[8], name[256] = "";

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &a, &b, perm, name) >= 3 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (n == cap) {
				struct region *bigger;

				cap = cap ? 2 * cap : 64;
				if ((bigger = realloc(r, cap * sizeof(*r))) == NULL)
					fatal(1, "realloc");
				r = bigger;
			}
			cur = &r[n++];
			memset(cur, 0, sizeof(*cur));
			cur->start = a;
			cur->end = b;
			cur->readable = perm[0] == 'r';
			snprintf(cur->name, sizeof(cur->name), "%s", name[0] ? name : "[anon]");
		} else if (cur != NULL && strncmp(line, "VmFlags:", 8) == 0) {
			cur->locked = strstr(line, " lo") != NULL;
			cur->nodump = strstr(line, " dd") != NULL;
		}
	}
	fclose(f);
	*out = r;
	return n;
}

/* Reads a region into a malloc'd buffer, or NULL when it cannot be read
 * (guard pages, vsyscall). */
static unsigned char *
memscan_read(int memfd, const struct region *r)
{
	size_t len = r->end - r->start;
	unsigned char *buf = malloc(len);

	if (buf == NULL)
		fatal(1, "malloc");
	if (pread(memfd, buf, len, (off_t)r->start) != (ssize_t)len) {
		free(buf);
		return NULL;
	}
	return buf;
}

static size_t
memscan_unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	if (strlen(hex) % 2 != 0 || n == 0 || n > cap)
		fatalx(2, "expected an even number of hex digits (at most %zu bytes)", cap);
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]))
			fatalx(2, "not hex: %s", hex);
		if (sscanf(hex + 2 * i, "%2hhx", &out[i]) != 1)
			fatalx(2, "not hex: %s", hex);
	}
	return n;
}

int
main(int argc, char **argv)
{
	struct region *r;
	unsigned char needle[256], *buf;
	char path[64];
	size_t n, len = 0, want = 0;
	int pid, memfd;
	bool find;

	log_init("memscan", LOG_LEVEL_INFO);
	if (argc != 4 || (strcmp(argv[2], "find") != 0 && strcmp(argv[2], "secrets") != 0))
		fatalx(2, "usage: memscan PID find HEX | memscan PID secrets N");
	pid = atoi(argv[1]);
	find = strcmp(argv[2], "find") == 0;
	if (find)
		len = memscan_unhex(argv[3], needle, sizeof(needle));
	else if ((want = strtoul(argv[3], NULL, 10)) == 0 || want > 4096)
		fatalx(2, "N: 1 to 4096");
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	if ((memfd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		fatal(1, "%s", path);
	n = memscan_regions(pid, &r);
	for (size_t i = 0; i < n; i++) {
		if (!r[i].readable || (!find && !(r[i].locked && r[i].nodump)))
			continue;
		if ((buf = memscan_read(memfd, &r[i])) == NULL)
			continue;
		if (find) {
			size_t size = r[i].end - r[i].start;
			for (size_t off = 0; off + len <= size; off++) {
				if (buf[off] == needle[0] && memcmp(buf + off, needle, len) == 0)
					printf("%lx %s,%s %s\n", r[i].start + (unsigned long)off,
					    r[i].locked ? "locked" : "unlocked",
					    r[i].nodump ? "nodump" : "dumped", r[i].name);
			}
		} else if (want <= r[i].end - r[i].start) {
			bool zero = true;
			for (size_t k = 0; k < want; k++)
				zero = zero && buf[k] == 0;
			for (size_t k = 0; k < want && !zero; k++)
				printf("%02x", buf[k]);
			if (!zero)
				printf("\n");
		}
		free(buf);
	}
	free(r);
	close(memfd);
	return 0;
}
