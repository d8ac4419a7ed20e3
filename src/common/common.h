/*
 * common.h: the map of src/common/, the layer every program shares: logs,
 * key memory, files, socket addresses, hex and base64, the CLI frame, and
 * HTTP/1.1 with JSON bodies (server and client). Nothing here knows a TPM.
 * Prototypes are grouped by the file that defines them.
 */
#ifndef VTPM_COMMON_H
#define VTPM_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <poll.h>

/* Exit statuses of every program; each one's --help documents them. */
enum vtpmd_exit {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* an error while serving (I/O, engine failure) */
	EXIT_USAGE = 2,	  /* bad command line */
	EXIT_STATE = 3,	  /* state exists but cannot be read: nothing was started */
	EXIT_BUSY = 4,	  /* state directory or socket address already in use */
};

/*
 * err.c: the one error convention. A function that can fail returns -1
 * (or NULL) and, when its caller passed a struct err (it may pass NULL),
 * fills it: kind says what the caller may act on, msg what a person reads
 * (one line, never a secret). Success leaves it untouched.
 */
enum err_kind {
	ERR_NONE = 0,
	ERR_FAILED,	 /* no finer kind: the message says */
	ERR_INVALID,	 /* the input is malformed or out of range */
	ERR_IO,		 /* the system refused (the message ends with strerror) */
	ERR_ABSENT,	 /* what was asked for does not exist */
	ERR_EXISTS,	 /* a record with that key is there already */
	ERR_BUSY,	 /* in use by another process */
	ERR_CORRUPT,	 /* it exists but cannot be read: altered, truncated, wrong key */
	ERR_REFUSED,	 /* a peer said no (a CA's 4xx, a TPM's refusal) */
	ERR_UNREACHABLE, /* a peer could not be reached, or failed (5xx) */
	ERR_TIMEOUT,	 /* a peer did not answer in time */
	ERR_POLICY,	 /* the host PCRs are not in an approved configuration */
	ERR_FOREIGN,	 /* an object that is not this TPM's, or not this instance's */
	ERR_HOST_TPM,	 /* the host TPM failed or went away (not a refusal) */
	ERR_UNTRUSTED,	 /* a peer's answer is not accepted (a CA's certificate vtpmd refused) */
};
/* Room for any message, a refusal naming all 24 host PCRs with its advice included. */
#define ERR_MSG_MAX 1536
struct err {
	enum err_kind kind;
	char msg[ERR_MSG_MAX];
};
int err_set(struct err *e, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* err_errno: kind ERR_IO, and ": strerror(errno)" appended (errno kept). */
int err_errno(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_ssl: kind ERR_FAILED, and the reason OpenSSL's error queue holds, if
 * any; the queue is emptied. */
int err_ssl(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_wrap: prefixes context ("context: message"), keeping the kind. */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);
const char *err_kind_name(enum err_kind kind);

/* log.c: stderr logging, each line tagged with the process name. */
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
void log_init(const char *tag, enum log_level level);
int log_parse_level(const char *name, enum log_level *level);
void log_relay(const char *tag, const char *line);
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void fatalx(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* mono.c: the monotonic clock, in milliseconds and microseconds. */
int64_t mono_ms(void);
int64_t mono_us(void);

/* secret.c: memory for key material: locked, not dumped, wiped on free. */
void *secret_alloc(size_t len);
void secret_free(void *p, size_t len);
int secret_read_fd(int fd, uint8_t *out, size_t len);
void secret_harden_process(void);

/*
 * sandbox.c: the confinement of a process that reads untrusted input:
 * chroot, an unprivileged uid/gid, and a seccomp allow-list the program
 * gives (each program keeps its own list in its folder). A rule names a
 * system call and allows it, or refuses it with an errno, optionally only
 * when one argument compares as given (SELF: equals the process's pid).
 */
enum sandbox_action { SANDBOX_ALLOW, SANDBOX_ERRNO };
enum sandbox_cmp { SANDBOX_ANY, SANDBOX_EQ, SANDBOX_MASKED_EQ, SANDBOX_SELF };
struct sandbox_rule {
	const char *syscall;
	enum sandbox_action action;
	int errnum; /* SANDBOX_ERRNO */
	enum sandbox_cmp cmp;
	unsigned int arg;     /* the argument compared (0-5) */
	uint64_t mask, value; /* EQ: arg == value; MASKED_EQ: (arg & mask) == value */
};
struct sandbox {
	const char *root; /* chroot here; NULL: no chroot and no change of identity */
	uid_t uid;        /* with root: the identity to switch to, neither 0 nor -1 */
	gid_t gid;
	bool root_writable; /* root must be writable and searchable by uid (checked) */
	const struct sandbox_rule *rules;
	size_t n_rules;
};
/* Confines the calling process, which must be single-threaded (and root
 * when sb->root is set), before it reads any input. Descriptors opened
 * before stay usable; the only directory among them may be sb->root. 0,
 * or -1 with err; after a failure the process is in an unspecified state
 * and must exit. */
int sandbox_enter(const struct sandbox *sb, struct err *err);

/* endpoint.c: "unix:PATH" and "tcp:HOST:PORT" socket addresses. */
enum endpoint_kind { ENDPOINT_UNIX, ENDPOINT_TCP };
struct endpoint {
	enum endpoint_kind kind;
	char path[108]; /* ENDPOINT_UNIX */
	char host[64];	/* ENDPOINT_TCP: numeric address */
	uint16_t port;	/* ENDPOINT_TCP */
};
int endpoint_parse(const char *spec, struct endpoint *ep);
socklen_t endpoint_sockaddr(const struct endpoint *ep, struct sockaddr_storage *ss);
int endpoint_listen(const struct endpoint *ep);
int endpoint_connect(const struct endpoint *ep);
void endpoint_format(const struct endpoint *ep, char *buf, size_t len);

/* cli.c: the frame of the command-line programs (vtpmctl, vtpm-ca,
 * vtpm-attest): their command tables, --help, dispatch, messages. */
struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
	const char *synopsis;
	const char *summary;
};
struct cli {
	const char *name;      /* the program */
	const char *usage;     /* its usage line, without "usage: " */
	const char *help_head; /* --help: before the commands */
	const char *help_tail; /* --help: after them */
	const struct cli_cmd *cmds;
	size_t n;
	int name_width; /* of the command column in the short usage */
};
int cli_usagev(const char *prog, const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
int cli_failv(const char *prog, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void cli_help(const struct cli *p);
int cli_dispatch(const struct cli *p, int argc, char **argv);

/* hex.c: lowercase hexadecimal. */
void hex_encode(const uint8_t *in, size_t len, char *out);
int hex_decode(const char *in, uint8_t *out, size_t len);

/* base64.c: base64 (RFC 4648, padded, strict). encode: malloc'd text or
 * NULL. decode: 0, or -1 when in is not canonical base64 or decodes to
 * more than max bytes. */
char *base64_encode(const uint8_t *in, size_t len);
int base64_decode(const char *in, uint8_t *out, size_t max, size_t *len);

/* fileio.c: whole-file reads and crash-safe whole-file replacement. */
int fileio_read(const char *path, size_t max, uint8_t **buf, size_t *len);
int fileio_write_atomic(const char *path, const void *buf, size_t len, mode_t mode);
int fileio_write_runtime(const char *path, const void *buf, size_t len, mode_t mode);
int fileio_remove_tree(const char *path);
int fileio_mkdirs(const char *path, mode_t mode);

/*
 * metrics.c: counters by a label value and histograms with fixed buckets,
 * kept in a program's own structs, and their text in the Prometheus
 * exposition format 0.0.4 (GET /metrics). Names and help texts are the
 * caller's constants; label values are escaped here.
 */
#define METRICS_BUCKETS_MAX  16 /* upper bounds of a histogram, +Inf besides */
#define METRICS_SERIES_MAX   16 /* label values of a counter, "other" included */
#define METRICS_LABEL_MAX    48 /* a label value's bytes, NUL included */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
struct metrics_hist {
	const double *bounds; /* upper bounds in ascending order, static */
	size_t n;
	uint64_t counts[METRICS_BUCKETS_MAX]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
};
struct metrics_series {
	char value[METRICS_LABEL_MAX];
	uint64_t count;
};
/* Zeroed is empty. A value beyond the first METRICS_SERIES_MAX - 1, or too
 * long, is counted as "other": the series stay few whatever is counted. */
struct metrics_counts {
	size_t n;
	struct metrics_series s[METRICS_SERIES_MAX];
};
/* The text being built; zeroed is empty. */
struct metrics_text {
	char *buf;
	size_t len, cap;
	bool failed; /* out of memory, or a line too long: the text is lost */
};
/* The buckets of every latency vtpmd and vtpm-ca measure: 0.5 ms to 10 s. */
#define METRICS_LATENCY_N 14
extern const double metrics_latency_bounds[METRICS_LATENCY_N];
void metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t n);
void metrics_hist_observe(struct metrics_hist *h, double v);
void metrics_hist_observe_us(struct metrics_hist *h, int64_t us); /* as seconds */
void metrics_count(struct metrics_counts *c, const char *value);
void metrics_count_zero(struct metrics_counts *c, const char *value); /* shown as 0 */
uint64_t metrics_count_get(const struct metrics_counts *c, const char *value);
/* HELP and TYPE ("counter", "gauge", "histogram") of a family, before its
 * samples. A sample has no label when label is NULL. */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
void metrics_sample(
    struct metrics_text *t, const char *name, const char *label, const char *value, double v);
void metrics_sample_counts(
    struct metrics_text *t, const char *name, const char *label, const struct metrics_counts *c);
void metrics_sample_hist(struct metrics_text *t, const char *name, const char *label,
    const char *value, const struct metrics_hist *h);
/* The text (malloc'd, NUL-terminated, *len bytes; the caller frees it), or
 * NULL when building it failed; t is empty again either way. */
char *metrics_text_take(struct metrics_text *t, size_t *len);

/* api.c: the control API server: HTTP/1.1 + JSON on a unix socket
 * (docs/api.md). Parsing uses http-parser; bodies are jansson values. */
#define API_MAX_REQUEST (64u << 10)
#define API_MAX_CONNECTIONS 64 /* being read or answered at once */
#define API_MAX_DEFERRED 1024   /* besides those, waiting for api_answer() */
#define API_MAX_POLLFDS (API_MAX_CONNECTIONS + API_MAX_DEFERRED + 1) /* api_pollfds' most */
#define API_IDLE_TIMEOUT_MS 10000
enum api_method { API_GET, API_POST, API_DELETE, API_OTHER };
struct json_t;
#define API_PEER_ADDR_MAX 64
#define API_INSTANCE_MAX  64
struct api_request {
	enum api_method method;
	char path[256];	 /* percent-decoded path, without the query */
	char query[256]; /* raw query string, "" when absent */
	struct json_t *body; /* parsed JSON object, or NULL when no body */
	uid_t peer_uid;
	pid_t peer_pid;
	char peer_addr[API_PEER_ADDR_MAX]; /* TCP: the client's numeric address; else "" */
	/* The X-Vtpmd-Instance header (vtpmd's requests to a CA name the vTPM
	 * they are for), an instance name as docs/api.md has it; "" when
	 * absent. A request whose header is no instance name is refused (400). */
	char instance[API_INSTANCE_MAX + 1];
	size_t need; /* COMPLETE: the request's length; INCOMPLETE: bytes to buffer
		      * before parsing again can change the result */
	uint64_t ticket; /* the server's: names the request to api_answer() */
};
struct api_response {
	int status;		/* HTTP status */
	struct json_t *body;	/* owned by the response; api.c serialises and frees it */
	/* Or, in place of a JSON body (200 only), bytes of another media type
	 * (a CRL: "application/pkix-crl"): malloc'd, owned by the response. */
	uint8_t *raw;
	size_t raw_len;
	const char *raw_type; /* static */
};
enum api_parse { API_PARSE_INCOMPLETE, API_PARSE_COMPLETE, API_PARSE_ERROR };
enum api_parse api_parse(const uint8_t *buf, size_t len, struct api_request *req, int *status,
    struct err *err);
void api_request_clear(struct api_request *req);
struct api_response api_error(int status, const char *error, const char *hint);
typedef struct api_response (*api_handler)(void *ctx, const struct api_request *req);
struct api_server;
struct tls_server;
struct api_server *api_listen(const char *path, api_handler handler, void *ctx);
struct api_server *api_serve_tcp(
    int fd, struct tls_server *tls, api_handler handler, void *ctx);
void api_close(struct api_server *srv);
int api_pollfds(struct api_server *srv, struct pollfd *fds, int max);
void api_process(struct api_server *srv, const struct pollfd *fds, int n);
int api_next_timeout(const struct api_server *srv);
/* A handler that cannot answer yet returns api_deferred() and keeps
 * req->ticket; api_answer() answers later (-1: the client is gone). */
struct api_response api_deferred(void);
int api_answer(struct api_server *srv, uint64_t ticket, struct api_response r);

/*
 * tls.c: TLS 1.3 (OpenSSL) on a connected TCP socket: vtpm-ca's server
 * side, and its clients' check of the server, by a root or a pin.
 */
struct tls_server;
struct tls_conn;
/* How a client recognises its server: root_pem (PEM certificates, of
 * root_pem_len bytes) the server's chain must reach, with the URL's host
 * in the server's certificate; or, when root_pem is NULL, pin, the SHA-256
 * of the server's SubjectPublicKeyInfo. */
struct tls_peer {
	const char *root_pem;
	size_t root_pem_len;
	bool pinned;
	uint8_t pin[32];
};
enum tls_io { TLS_IO_OK, TLS_IO_WANT_READ, TLS_IO_WANT_WRITE, TLS_IO_EOF, TLS_IO_ERROR };
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, struct err *err);
void tls_server_free(struct tls_server *s);
struct tls_conn *tls_accept(struct tls_server *s, int fd, struct err *err);
struct tls_conn *tls_connect(int fd, const char *host, const struct tls_peer *peer,
    struct err *err);
enum tls_io tls_read(struct tls_conn *c, void *buf, size_t len, size_t *n, struct err *err);
enum tls_io tls_write(struct tls_conn *c, const void *buf, size_t len, size_t *n,
    struct err *err);
void tls_conn_close_notify(struct tls_conn *c);
void tls_conn_free(struct tls_conn *c);
void tls_client_warm(void);
int tls_pin_parse(const char *spec, uint8_t pin[static 32], struct err *err);
int tls_roots_check(const char *pem, size_t len, struct err *err);

/* httpc.c: one HTTP/1.1 request with a JSON body, on a connected socket or
 * to a URL. */
#define HTTPC_MAX_RESPONSE (16u << 20)
int httpc_exchange(int fd, const char *method, const char *host, const char *agent,
    const char *target, const struct json_t *body, int *status, struct json_t **reply,
    struct err *err);
int httpc_parse_response(const char *buf, size_t len, int *status, struct json_t **reply,
    struct err *err);
int httpc_parse_raw(
    const char *buf, size_t len, int *status, char **body, size_t *body_len, struct err *err);
/* A connection httpc_send_recv talks on: recv() and send() on fd, or, when
 * move is set, its way of moving bytes (TLS, with ctx), as they would. */
struct httpc_io {
	int fd;
	ssize_t (*move)(const struct httpc_io *io, void *buf, size_t len, bool out);
	void *ctx;
};
/* headers: more header lines, each ending in "\r\n", or NULL. */
int httpc_send_recv(const struct httpc_io *io, const char *method, const char *host,
    const char *agent, const char *headers, const char *target, const struct json_t *body,
    char **resp, size_t *resp_len, struct err *err);
/* httpc_url.c: to a URL, over TLS for https:// */
int httpc_check_url(const char *base_url, const struct tls_peer *tls, struct err *err);
int httpc_fetch_url(const char *base_url, const struct tls_peer *tls, const char *agent,
    const char *headers, int timeout_s, const char *method, const char *path,
    const struct json_t *body, char **resp, size_t *resp_len, struct err *err);
int httpc_request_url(const char *base_url, const struct tls_peer *tls, const char *agent,
    int timeout_s, const char *method, const char *path, const struct json_t *body, int *status,
    struct json_t **reply, struct err *err);

#endif /* VTPM_COMMON_H */
