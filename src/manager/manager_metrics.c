/*
 * manager_metrics.c: GET /metrics, what vtpmd counts about itself, in the
 * Prometheus text format (docs/api.md, "Metrics"; src/common/metrics.c
 * writes it). The counters live in struct manager_metrics, each bumped
 * where its event happens (lifecycle.c, manager.c, fresh.c, caclient.c);
 * the host TPM's command times in src/hwtpm/; gauges (instances by state,
 * workers' memory) are read when asked. Nothing here waits: a scrape is
 * answered from the loop like GET /v1/host.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"

void
manager_metrics_init(struct manager_metrics *mm)
{
	memset(mm, 0, sizeof(*mm));
	metrics_hist_init(&mm->unseal, metrics_latency_bounds, METRICS_LATENCY_N);
	metrics_hist_init(&mm->state_commit, metrics_latency_bounds, METRICS_LATENCY_N);
	for (size_t i = 0; i < CACLIENT_REQUESTS; i++)
		metrics_hist_init(&mm->ca.latency[i], metrics_latency_bounds, METRICS_LATENCY_N);
	/* The reasons an operator alerts on are there from the start, at 0. */
	metrics_count_zero(&mm->start_failures, err_kind_name(ERR_REFUSED));
	metrics_count_zero(&mm->start_failures, err_kind_name(ERR_CORRUPT));
	metrics_count_zero(&mm->restarts, "crash");
	metrics_count_zero(&mm->ca.errors, err_kind_name(ERR_UNREACHABLE));
}

void
manager_metrics_start_failed(struct manager *m, const struct err *err, const char *why)
{
	metrics_count(&m->metrics.start_failures, err != NULL ? err_kind_name(err->kind) : why);
}

/* A worker's resident memory, from /proc/PID/statm ("size resident ...",
 * in pages); -1 when it cannot be read (the worker is gone). */
static long long
manager_metrics_rss(pid_t pid)
{
	char path[64], line[256], *size_end, *end;
	unsigned long long resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (!ok || page <= 0)
		return -1;
	errno = 0;
	(void)strtoull(line, &size_end, 10);
	resident = strtoull(size_end, &end, 10);
	if (errno != 0 || size_end == line || end == size_end)
		return -1;
	return (long long)(resident * (unsigned long long)page);
}

static void
manager_metrics_instances(struct manager *m, struct metrics_text *t)
{
	static const enum vtpm_state states[] = {
	    VTPM_STOPPED, VTPM_STARTING, VTPM_RUNNING, VTPM_FAILED, VTPM_REFUSED};
	size_t counts[sizeof(states) / sizeof(states[0])] = {0};
	long long rss;

	for (size_t i = 0; i < m->n; i++)
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++)
			counts[s] += m->vtpms[i]->state == states[s];
	metrics_family(t, "vtpmd_instances", "gauge", "vTPM instances by state");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++)
		metrics_sample(t, "vtpmd_instances", "state", registry_state_name(states[s]),
		    (double)counts[s]);
	metrics_family(t, "vtpmd_worker_resident_bytes", "gauge",
	    "resident memory of each running vTPM's worker process (/proc/PID/statm)");
	for (size_t i = 0; i < m->n; i++) {
		const struct vtpm *v = m->vtpms[i];
		if (v->pid > 0 && (rss = manager_metrics_rss(v->pid)) >= 0)
			metrics_sample(
			    t, "vtpmd_worker_resident_bytes", "instance", v->name, (double)rss);
	}
}

static void
manager_metrics_lifecycle(struct manager *m, struct metrics_text *t)
{
	const struct manager_metrics *mm = &m->metrics;

	metrics_family(t, "vtpmd_starts_total", "counter",
	    "worker starts that became ready (starts, restarts, creates)");
	metrics_sample(t, "vtpmd_starts_total", NULL, NULL, (double)mm->starts);
	metrics_family(t, "vtpmd_start_failures_total", "counter",
	    "starts refused or failed, by reason (refused: host configuration not approved; "
	    "corrupt: state unreadable or older than recorded; docs/api.md)");
	metrics_sample_counts(t, "vtpmd_start_failures_total", "reason", &mm->start_failures);
	metrics_family(t, "vtpmd_restarts_total", "counter",
	    "worker restarts, by reason (crash, vm-shutdown, request)");
	metrics_sample_counts(t, "vtpmd_restarts_total", "reason", &mm->restarts);
	metrics_family(t, "vtpmd_unseal_duration_seconds", "histogram",
	    "time of a start's unseal of the instance's state key by the host TPM");
	metrics_sample_hist(t, "vtpmd_unseal_duration_seconds", NULL, NULL, &mm->unseal);
	metrics_family(t, "vtpmd_state_writes_total", "counter",
	    "vTPM permanent-state writes the workers reported for recording");
	metrics_sample(t, "vtpmd_state_writes_total", NULL, NULL, (double)mm->state_writes);
	metrics_family(t, "vtpmd_state_commit_duration_seconds", "histogram",
	    "time of a freshness commit recording state writes (manifest and host-TPM counter)");
	metrics_sample_hist(
	    t, "vtpmd_state_commit_duration_seconds", NULL, NULL, &mm->state_commit);
}

static void
manager_metrics_host(struct manager *m, struct metrics_text *t)
{
	const struct caclient_stats *ca = &m->metrics.ca;

	metrics_family(t, "vtpmd_host_tpm_available", "gauge",
	    "1 when the host TPM answered when last asked, else 0");
	metrics_sample(t, "vtpmd_host_tpm_available", NULL, NULL, hwtpm_available(m->hw) ? 1 : 0);
	metrics_family(
	    t, "vtpmd_host_tpm_commands_total", "counter", "commands sent to the host TPM");
	metrics_sample(
	    t, "vtpmd_host_tpm_commands_total", NULL, NULL, (double)hwtpm_command_count(m->hw));
	metrics_family(t, "vtpmd_host_tpm_command_duration_seconds", "histogram",
	    "time of one host-TPM command, from sending it to reading its response");
	metrics_sample_hist(
	    t, "vtpmd_host_tpm_command_duration_seconds", NULL, NULL, hwtpm_command_latency(m->hw));
	metrics_family(t, "vtpmd_ca_request_duration_seconds", "histogram",
	    "time of a request to a CA, by request, from its start to its answer or failure");
	for (size_t i = 0; i < CACLIENT_REQUESTS; i++)
		metrics_sample_hist(t, "vtpmd_ca_request_duration_seconds", "request",
		    caclient_request_names[i], &ca->latency[i]);
	metrics_family(t, "vtpmd_ca_errors_total", "counter",
	    "requests to a CA that failed, by reason (unreachable, timeout, refused, untrusted)");
	metrics_sample_counts(t, "vtpmd_ca_errors_total", "reason", &ca->errors);
}

/* GET /metrics: 200 with the text, or 500 when it could not be built. */
struct api_response
manager_metrics_reply(struct manager *m)
{
	struct api_response r = {.status = 200, .raw_type = METRICS_CONTENT_TYPE};
	struct metrics_text t = {0};
	char *text;

	manager_metrics_instances(m, &t);
	manager_metrics_lifecycle(m, &t);
	manager_metrics_host(m, &t);
	if ((text = metrics_text_take(&t, &r.raw_len)) == NULL)
		return api_error(500, "out of memory", "try again");
	r.raw = (uint8_t *)text;
	return r;
}
