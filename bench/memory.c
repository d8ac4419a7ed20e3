/*
 * bench_memory: memory of many idle instances, servers side by side.
 *
 *   bench_memory [-n N] [-c CPU] [-k KEYFILE] -b BASE -s NAME=COMMAND ...
 *
 * For each server in turn (never two groups at once, since PSS splits
 * shared pages among every process that maps them): starts N instances,
 * each with its own state in BASE/NAME/I, once to make that state and
 * again to measure, as a host does after a restart. The second time, once
 * each has answered GetRandom(16) on a data connection that stays open (as
 * a VM's does), sums Rss, Pss and Pss_Anon from /proc/PID/smaps_rollup of
 * every instance, then stops them all.
 *
 * Prints "RESULT memory.pss_total kB NAME V" and the like on stdout.
 */
#include <getopt.h>
#include <stdio.h>

#include "bench.h"

#define MEMORY_MAX 256

struct memory_sum {
	unsigned long rss, pss, pss_anon, pss_file, private_dirty;
};

static void
memory_usage(void)
{
	fprintf(stderr,
	    "usage: bench_memory [-n N] [-c CPU] [-k KEYFILE] -b BASE -s NAME=COMMAND ...\n"
	    "  -n N  instances per server (default 50, at most %d)\n"
	    "  -c    CPU the servers are pinned to (default: not pinned)\n"
	    "  -k    state key file, given to the servers on descriptor 3\n",
	    MEMORY_MAX);
	exit(2);
}

/* Adds the kB figures of pid's smaps_rollup to sum. */
static void
memory_read(pid_t pid, struct memory_sum *sum)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
	    {"Rss:", offsetof(struct memory_sum, rss)},
	    {"Pss:", offsetof(struct memory_sum, pss)},
	    {"Pss_Anon:", offsetof(struct memory_sum, pss_anon)},
	    {"Pss_File:", offsetof(struct memory_sum, pss_file)},
	    {"Private_Dirty:", offsetof(struct memory_sum, private_dirty)},
	};
	char path[64], line[256];
	unsigned long v;
	bool pss_anon = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		fatal(1, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			size_t klen = strlen(fields[i].key);
			if (strncmp(line, fields[i].key, klen) != 0 ||
			    sscanf(line + klen, "%lu", &v) != 1)
				continue;
			/* through void *: an offsetof of an unsigned long is aligned */
			*(unsigned long *)(void *)((char *)sum + fields[i].off) += v;
			if (i == 2)
				pss_anon = true;
		}
	}
	fclose(f);
	if (!pss_anon)
		fatalx(1, "%s: no Pss_Anon line (kernel older than 5.7?)", path);
}

static void
memory_print(const char *name, const char *metric, unsigned long total, size_t n)
{
	printf("RESULT memory.%s_total kB %s %lu\n", metric, name, total);
	printf("RESULT memory.%s_per kB %s %.0f\n", metric, name, (double)total / (double)n);
}

/* Starts n instances of tmpl and waits until each has answered; fills
 * inst and fds. */
static void
memory_start(const struct bench_server *tmpl, size_t n, const char *base, const char *keyfile,
    int cpu, struct bench_server *inst, int *fds)
{
	for (size_t i = 0; i < n; i++) {
		inst[i] = *tmpl;
		bench_server_dir(&inst[i], base, (int)i);
		bench_server_start(&inst[i], keyfile, cpu);
	}
	for (size_t i = 0; i < n; i++)
		fds[i] = bench_server_ready(&inst[i], NULL);
}

/* Runs n instances of tmpl (after a first run that makes their state),
 * measures them, stops them. */
static void
memory_group(
    const struct bench_server *tmpl, size_t n, const char *base, const char *keyfile, int cpu)
{
	static struct bench_server inst[MEMORY_MAX];
	static int fds[MEMORY_MAX];
	struct memory_sum sum = {0};

	memory_start(tmpl, n, base, keyfile, cpu, inst, fds);
	for (size_t i = 0; i < n; i++)
		bench_server_stop(&inst[i], fds[i]);

	memory_start(tmpl, n, base, keyfile, cpu, inst, fds);
	for (size_t i = 0; i < n; i++)
		memory_read(inst[i].pid, &sum);
	for (size_t i = 0; i < n; i++)
		bench_server_stop(&inst[i], fds[i]);

	memory_print(tmpl->name, "pss", sum.pss, n);
	memory_print(tmpl->name, "pss_anon", sum.pss_anon, n);
	memory_print(tmpl->name, "pss_file", sum.pss_file, n);
	memory_print(tmpl->name, "rss", sum.rss, n);
	memory_print(tmpl->name, "private_dirty", sum.private_dirty, n);
	fflush(stdout);
	fprintf(stderr,
	    "  %zu idle          %-8s Pss %7lu kB (%5.0f kB each)  Pss_Anon %7lu kB (%5.0f kB each)"
	    "  Rss %5.0f kB each\n",
	    n, tmpl->name, sum.pss, (double)sum.pss / (double)n, sum.pss_anon,
	    (double)sum.pss_anon / (double)n, (double)sum.rss / (double)n);
}

int
main(int argc, char **argv)
{
	static struct bench_launch a = {.n = 50};
	struct bench_server *sv = a.sv;
	const char *keyfile, *base;
	size_t ns, n;
	int cpu;

	log_init("bench_memory", LOG_LEVEL_INFO);
	bench_launch_parse(argc, argv, &a, memory_usage);
	if (a.n > MEMORY_MAX)
		memory_usage();
	ns = a.ns;
	n = a.n;
	keyfile = a.keyfile;
	base = a.base;
	cpu = a.cpu;
	for (size_t k = 0; k < ns; k++)
		memory_group(&sv[k], n, base, keyfile, cpu);
	return 0;
}
