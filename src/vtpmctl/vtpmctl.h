/*
 * vtpmctl: the command-line client of vtpmd's control API (docs/api.md).
 *
 * This header is the map of src/vtpmctl/: the prototypes of its files,
 * grouped by the file that defines them (main.c holds the command table).
 * It uses src/common/ and, to sign approvals, src/tpm/ (approval.c).
 */
#ifndef VTPM_VTPMCTL_H
#define VTPM_VTPMCTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define VTPMCTL_DEFAULT_SOCKET "/run/vtpmd/api.sock"
#define VTPMCTL_TIMEOUT_S      120 /* a start may unseal with the host TPM */

/* vtpmctl.c: main, global options, the command table and what every
 * command shares: usage errors, --help, --json output, name checks. Exit
 * statuses are vtpmd's: EXIT_OK, EXIT_RUNTIME (vtpmd refused or failed,
 * or could not be reached), EXIT_USAGE. */
extern const char *vtpmctl_socket;
int vtpmctl_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vtpmctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vtpmctl_help(const char *text);
bool vtpmctl_check_name(const char *cmd, const char *name);
void vtpmctl_print_json(const json_t *v);
const char *vtpmctl_str(const json_t *obj, const char *key, const char *dflt);

/* vtpmctl_http.c: one HTTP/1.1 request and response over the API socket. */
int vtpmctl_http_request(const char *socket, const char *method, const char *path,
    const json_t *body, int *status, json_t **reply, struct err *err);
int vtpmctl_call(const char *method, const char *path, const json_t *body, json_t **reply);
int vtpmctl_get_text(const char *path, char **text, size_t *len);

/* vtpmctl_instance.c: create, start, stop, restart, delete, list, info. */
int vtpmctl_create(int argc, char **argv);
int vtpmctl_start(int argc, char **argv);
int vtpmctl_stop(int argc, char **argv);
int vtpmctl_restart(int argc, char **argv);
int vtpmctl_renew(int argc, char **argv);
int vtpmctl_delete(int argc, char **argv);
int vtpmctl_list(int argc, char **argv);
int vtpmctl_info(int argc, char **argv);

/* vtpmctl_snapshot.c: snapshot, snapshots, restore, allow-revert. */
int vtpmctl_snapshot(int argc, char **argv);
int vtpmctl_snapshots(int argc, char **argv);
int vtpmctl_restore(int argc, char **argv);
int vtpmctl_allow_revert(int argc, char **argv);

/* vtpmctl_policy.c: policy show, policy approve. */
int vtpmctl_policy(int argc, char **argv);

/* vtpmctl_host.c: host. */
int vtpmctl_host(int argc, char **argv);

/* vtpmctl_metrics.c: metrics. */
int vtpmctl_metrics(int argc, char **argv);

#endif /* VTPM_VTPMCTL_H */
