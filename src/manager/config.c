/*
 * config.c: vtpmd's configuration, parsed once by the manager; workers
 * receive only what they need on their command line.
 *
 *   # comment
 *   tcti = swtpm:host=127.0.0.1,port=2321
 *   pcrs = 0,2,4,7
 *
 * Keys: tcti, state-dir, run-dir, socket, pcrs, worker-uid-base,
 * socket-group, approval-public-key, privacy-ca-root,
 * virtualization-ca-root, ca-timeout, nv-write-rate, log-level. Errors name file:line. The
 * text is parsed from memory (config_parse_buffer), so that the parser can
 * be fuzzed without files. config_check then checks what syntax cannot show
 * (the TCTI's module, the approval key, the CA roots, path lengths), still
 * without touching the TPM, naming the line of each value it refuses.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <tss2/tss2_tctildr.h>

#include "manager.h"

#define CONFIG_LINE_MAX 1022	   /* bytes, without the newline */
#define CONFIG_MAX_FILE (1u << 20) /* a configuration is a few lines */

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->tcti, sizeof(cfg->tcti), "device:/dev/tpmrm0");
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/vtpmd");
	snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/run/vtpmd");
	snprintf(cfg->socket, sizeof(cfg->socket), "/run/vtpmd/api.sock");
	cfg->pcrs.mask = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7;
	cfg->worker_uid_base = 200000;
	cfg->ca_timeout_s = CONFIG_CA_TIMEOUT_DEFAULT;
	cfg->nv_write_rate = CONFIG_NV_WRITE_RATE_DEFAULT;
	cfg->log_level = LOG_LEVEL_INFO;
}

static int
config_copy(char *dst, size_t dlen, const char *value, bool absolute, struct err *err)
{
	if (value[0] == '\0' || strlen(value) >= dlen) {
		err_set(err, ERR_FAILED, "value is empty or longer than %zu bytes", dlen - 1);
		return -1;
	}
	if (absolute && value[0] != '/') {
		err_set(err, ERR_FAILED, "must be an absolute path");
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/* Sets one key. Returns 0, or -1 with a reason in why. */
int
config_set(struct config *cfg, const char *key, const char *value, struct err *err)
{
	char *end;
	unsigned long v;

	if (strcmp(key, "tcti") == 0)
		return config_copy(cfg->tcti, sizeof(cfg->tcti), value, false, err);
	if (strcmp(key, "state-dir") == 0)
		return config_copy(cfg->state_dir, sizeof(cfg->state_dir), value, true, err);
	if (strcmp(key, "run-dir") == 0)
		return config_copy(cfg->run_dir, sizeof(cfg->run_dir), value, true, err);
	if (strcmp(key, "socket") == 0)
		return config_copy(cfg->socket, sizeof(cfg->socket), value, true, err);
	if (strcmp(key, "approval-public-key") == 0)
		return config_copy(cfg->approval_public, sizeof(cfg->approval_public), value, true,
		    err);
	if (strcmp(key, "privacy-ca-root") == 0)
		return config_copy(cfg->privacy_root, sizeof(cfg->privacy_root), value, true, err);
	if (strcmp(key, "virtualization-ca-root") == 0)
		return config_copy(cfg->virt_root, sizeof(cfg->virt_root), value, true, err);
	if (strcmp(key, "ca-tls-root") == 0)
		return config_copy(cfg->ca_tls_root, sizeof(cfg->ca_tls_root), value, true, err);
	if (strcmp(key, "ca-tls-pin") == 0)
		return config_copy(cfg->ca_tls_pin, sizeof(cfg->ca_tls_pin), value, false, err);
	if (strcmp(key, "pcrs") == 0) {
		if (pcrpolicy_parse(value, &cfg->pcrs) == 0)
			return 0;
		err_set(err, ERR_FAILED, "expected a list of PCR numbers 0-23 such as 0,2,4,7");
		return -1;
	}
	if (strcmp(key, "worker-uid-base") == 0) {
		errno = 0;
		v = strtoul(value, &end, 10);
		if (errno == 0 && *end == '\0' && end != value && v < 0x7fff0000ul) {
			cfg->worker_uid_base = (uid_t)v;
			return 0;
		}
		err_set(err, ERR_FAILED, "expected a number (0 disables the sandbox)");
		return -1;
	}
	if (strcmp(key, "socket-group") == 0) {
		struct group gr, *found = NULL;
		char buf[16384];
		int rc;

		errno = 0;
		v = strtoul(value, &end, 10);
		if (!isdigit((unsigned char)value[0]) || errno != 0 || *end != '\0') {
			/* A name, resolved now: vtpmd -n and the start refuse a
			 * group that does not exist; workers get the gid. */
			rc = getgrnam_r(value, &gr, buf, sizeof(buf), &found);
			if (found == NULL) {
				err_set(err, ERR_FAILED, "no group '%s' on this host%s%s: create it "
				    "(groupadd) or name the group QEMU runs as", value,
				    rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
				return -1;
			}
			v = found->gr_gid;
		}
		if (v != 0 && v < 0xfffffffful) {
			cfg->socket_gid = (gid_t)v;
			return 0;
		}
		err_set(err, ERR_FAILED, "expected a group name or a gid other than 0 (root's "
		    "sockets need no group: leave socket-group unset)");
		return -1;
	}
	if (strcmp(key, "ca-timeout") == 0) {
		errno = 0;
		v = strtoul(value, &end, 10);
		if (isdigit((unsigned char)value[0]) && errno == 0 && *end == '\0' && v >= 1 &&
		    v <= CONFIG_CA_TIMEOUT_MAX) {
			cfg->ca_timeout_s = (int)v;
			return 0;
		}
		return err_set(err, ERR_INVALID, "expected seconds, 1 to %d (the deadline of one "
		    "request to a CA)", CONFIG_CA_TIMEOUT_MAX);
	}
	if (strcmp(key, "nv-write-rate") == 0) {
		errno = 0;
		v = strtoul(value, &end, 10);
		if (isdigit((unsigned char)value[0]) && errno == 0 && *end == '\0' && v <= 100000) {
			cfg->nv_write_rate = (unsigned int)v;
			return 0;
		}
		return err_set(err, ERR_INVALID, "expected NV writes a second per vTPM, 0 "
		    "(unlimited) to 100000");
	}
	if (strcmp(key, "log-level") == 0) {
		if (log_parse_level(value, &cfg->log_level) == 0)
			return 0;
		err_set(err, ERR_FAILED, "expected error, warn, info or debug");
		return -1;
	}
	err_set(err, ERR_FAILED, "unknown key '%s'", key);
	return -1;
}

static char *
config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Splits a line (NUL-terminated, without its newline) in place into its
 * trimmed key and value. Returns 0 with both set, 1 for a blank or comment
 * line, -1 when there is no '='. */
static int
config_split(char *line, char **key, char **value)
{
	char *eq;

	*key = config_trim(line);
	if (**key == '\0' || **key == '#')
		return 1;
	eq = strchr(*key, '=');
	if (eq == NULL)
		return -1;
	*eq = '\0';
	*key = config_trim(*key);
	*value = config_trim(eq + 1);
	return 0;
}

/* One line's "key = value" applied to cfg. Returns the number of problems
 * reported (0 or 1). */
static int
config_parse_line(const char *name, int lineno, char *line, void *ctx, FILE *errors)
{
	struct config *cfg = ctx;
	char *key, *value;
	struct err err;
	int rc = config_split(line, &key, &value);

	if (rc == 1)
		return 0;
	if (rc == -1) {
		fprintf(errors, "%s:%d: expected 'key = value'\n", name, lineno);
		return 1;
	}
	if (config_set(cfg, key, value, &err) == -1) {
		fprintf(errors, "%s:%d: %s: %s\n", name, lineno, key, err.msg);
		return 1;
	}
	return 0;
}

/* What config_each_line calls for each line it can read: returns the
 * number of problems it reported. */
typedef int (*config_line_fn)(const char *name, int lineno, char *line, void *ctx, FILE *errors);

/*
 * Cuts len bytes at text (not necessarily NUL-terminated) into lines and
 * calls fn on each, as a NUL-terminated copy without its newline. Lines
 * end with '\n' (a last one may not); a line is at most CONFIG_LINE_MAX
 * bytes and holds no NUL byte, else it is a problem reported to errors
 * (when not NULL) as "name:line: reason". Returns the number of problems.
 */
static int
config_each_line(const char *name, const char *text, size_t len, config_line_fn fn, void *ctx,
    FILE *errors)
{
	char line[CONFIG_LINE_MAX + 1];
	const char *p = text, *end = text + len, *nl;
	int lineno = 0, problems = 0;
	size_t n;

	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > CONFIG_LINE_MAX) {
			if (errors != NULL)
				fprintf(errors, "%s:%d: line longer than %d bytes\n", name, lineno,
				    CONFIG_LINE_MAX);
			problems++;
		} else if (memchr(p, '\0', n) != NULL) {
			if (errors != NULL)
				fprintf(errors, "%s:%d: line holds a NUL byte\n", name, lineno);
			problems++;
		} else {
			memcpy(line, p, n);
			line[n] = '\0';
			problems += fn(name, lineno, line, ctx, errors);
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return problems;
}

/*
 * Parses the text of a configuration, len bytes at text (not necessarily
 * NUL-terminated), over the values already in cfg; name is what messages
 * call it. Every problem is reported to errors as "name:line: reason"
 * (config_each_line). Returns the number of problems.
 */
int
config_parse_buffer(const char *name, const char *text, size_t len, struct config *cfg,
    FILE *errors)
{
	return config_each_line(name, text, len, config_parse_line, cfg, errors);
}

/* Reads all of f, at most CONFIG_MAX_FILE bytes, into a malloc'd buffer.
 * Returns 0, or -1 with errno (EFBIG when larger). */
static int
config_read(FILE *f, char **text, size_t *len)
{
	size_t cap = 4096, got = 0, n;
	char *buf = NULL, *p;
	int saved;

	for (;;) {
		if (got == cap || buf == NULL) {
			if (buf != NULL)
				cap *= 2;
			if (cap > CONFIG_MAX_FILE + 1)
				cap = CONFIG_MAX_FILE + 1;
			p = realloc(buf, cap);
			if (p == NULL)
				break;
			buf = p;
		}
		n = fread(buf + got, 1, cap - got, f);
		got += n;
		if (got > CONFIG_MAX_FILE) {
			errno = EFBIG;
			break;
		}
		if (n == 0) {
			if (ferror(f))
				break;
			*text = buf;
			*len = got;
			return 0;
		}
	}
	saved = errno;
	free(buf);
	errno = saved;
	return -1;
}

/*
 * Reads path over the values already in cfg (config_parse_buffer). Every
 * problem is reported to errors as "path:line: reason". Returns the number
 * of problems (0 when the file is valid), or -1 when it cannot be read.
 */
int
config_load(const char *path, struct config *cfg, FILE *errors)
{
	char *text = NULL;
	size_t len = 0;
	int problems;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL || config_read(f, &text, &len) == -1) {
		if (errno == EFBIG)
			fprintf(errors, "%s: larger than %u bytes: not a configuration file\n",
			    path, CONFIG_MAX_FILE);
		else
			fprintf(errors, "%s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	problems = config_parse_buffer(path, text, len, cfg, errors);
	free(text);
	return problems;
}

/*
 * The checks beyond syntax. Each names where the value it refuses came
 * from: the line of the file that set it last, the default, or the
 * command line (which overrides the file).
 */
enum config_key {
	CONFIG_TCTI,
	CONFIG_STATE_DIR,
	CONFIG_RUN_DIR,
	CONFIG_SOCKET,
	CONFIG_APPROVAL_PUBLIC,
	CONFIG_PRIVACY_ROOT,
	CONFIG_VIRT_ROOT,
	CONFIG_CA_TLS_ROOT,
	CONFIG_CA_TLS_PIN,
	CONFIG_NKEYS
};
static const char *const config_key_names[CONFIG_NKEYS] = {
	"tcti", "state-dir", "run-dir", "socket", "approval-public-key", "privacy-ca-root",
	"virtualization-ca-root", "ca-tls-root", "ca-tls-pin",
};

static const char *
config_value(const struct config *cfg, enum config_key k)
{
	switch (k) {
	case CONFIG_TCTI: return cfg->tcti;
	case CONFIG_STATE_DIR: return cfg->state_dir;
	case CONFIG_RUN_DIR: return cfg->run_dir;
	case CONFIG_SOCKET: return cfg->socket;
	case CONFIG_APPROVAL_PUBLIC: return cfg->approval_public;
	case CONFIG_PRIVACY_ROOT: return cfg->privacy_root;
	case CONFIG_VIRT_ROOT: return cfg->virt_root;
	case CONFIG_CA_TLS_ROOT: return cfg->ca_tls_root;
	case CONFIG_CA_TLS_PIN: return cfg->ca_tls_pin;
	case CONFIG_NKEYS: break;
	}
	return "";
}

/* The file's values over the defaults, and the line that set each key
 * (0: the file does not set it). */
struct config_origin {
	struct config file;
	int line[CONFIG_NKEYS];
};

/* config_each_line's callback: records the line of each value applied. */
static int
config_origin_line(const char *name, int lineno, char *line, void *ctx, FILE *errors)
{
	struct config_origin *o = ctx;
	char *key, *value;
	struct err err;

	if (config_split(line, &key, &value) != 0 ||
	    config_set(&o->file, key, value, &err) == -1)
		return 0; /* reported by config_load */
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (strcmp(key, config_key_names[k]) == 0)
			o->line[k] = lineno;
	return 0;
}

/* One run of config_check: where the values came from, and the count of
 * problems reported so far. */
struct config_checker {
	const char *path; /* the file read, or NULL */
	const struct config *cfg;
	struct config_origin o;
	FILE *errors;
	struct err err;
	int problems;
};

/* Reports the problem in c->err.msg with key k when rc is -1, saying where the
 * value came from. */
static void
config_verdict(struct config_checker *c, enum config_key k, int rc)
{
	struct config defaults;
	const char *value = config_value(c->cfg, k), *name = config_key_names[k];

	if (rc != -1)
		return;
	c->problems++;
	config_defaults(&defaults);
	if (c->o.line[k] > 0 && strcmp(config_value(&c->o.file, k), value) == 0)
		fprintf(c->errors, "%s:%d: %s: %s\n", c->path, c->o.line[k], name, c->err.msg);
	else if (strcmp(config_value(&defaults, k), value) == 0)
		fprintf(c->errors, "%s%s%s (the default, %s): %s\n", c->path ? c->path : "",
		    c->path ? ": " : "", name, value, c->err.msg);
	else
		fprintf(c->errors, "command line: %s: %s\n", name, c->err.msg);
}

/* Whether the TCTI's module (the part before ':') loads; the TPM is not
 * contacted. Returns 0, or -1 with why. */
static int
config_check_tcti(const char *tcti, struct err *err)
{
	char name[sizeof(((struct config *)0)->tcti)];
	size_t n = strcspn(tcti, ":");
	TSS2_TCTI_INFO *info = NULL;

	if (n == 0 || n >= sizeof(name)) {
		err_set(err, ERR_FAILED, "no TCTI module named before ':' (for example "
		    "device:/dev/tpmrm0)");
		return -1;
	}
	memcpy(name, tcti, n);
	name[n] = '\0';
	if (Tss2_TctiLdr_GetInfo(name, &info) != TSS2_RC_SUCCESS || info == NULL) {
		err_set(err, ERR_FAILED, "cannot load the TCTI module '%s' (libtss2-tcti-%s.so.0): "
		    "install it, or name another, such as device:/dev/tpmrm0", name, name);
		return -1;
	}
	Tss2_TctiLdr_FreeInfo(&info);
	return 0;
}

/* Whether path holds the administrator's approval key as vtpmd must hold
 * it: a readable ECC P-256 public key (PEM) and no private key, so that
 * vtpmd can never sign an approval itself. Returns 0, or -1 with why. */
static int
config_check_approval_key(const char *path, struct err *err)
{
	struct approval_pub pub;
	int is_private;

	if (access(path, R_OK) == -1) {
		err_set(err, ERR_FAILED, "cannot read %s: %s; name the PEM file of the "
		    "administrator's public approval key", path, strerror(errno));
		return -1;
	}
	is_private = approval_key_is_private(path);
	if (is_private == 1) {
		err_set(err, ERR_FAILED, "%s holds a PRIVATE key: give vtpmd only the public half "
		    "(openssl pkey -in %s -pubout -out FILE.pub) and keep the private key with the "
		    "administrator", path, path);
		return -1;
	}
	if (is_private == -1 || approval_key_public(path, &pub) == -1) {
		err_set(err, ERR_FAILED, "%s is not an ECC P-256 public key in PEM (make one with "
		    "openssl pkey -in PRIVATE.pem -pubout -out FILE.pub)", path);
		return -1;
	}
	return 0;
}

/* Whether path holds the roots of a CA that vtpmd checks certificates
 * against: PEM, 1 to CACHECK_ROOTS_MAX self-signed CA certificates.
 * Returns 0, or -1 with why. */
static int
config_check_roots(const char *path, struct err *err)
{
	struct cacheck_roots roots;
	struct err why = {0};

	if (cacheck_roots_load(path, &roots, &why) == -1)
		return err_set(err, why.kind, "%s; name the PEM file of the CA's root certificate "
		    "(vtpm-ca keeps it in ca-root.pem beside its database; 'vtpm-ca cert --role "
		    "root --db DB' prints it)", why.msg);
	cacheck_roots_clear(&roots);
	return 0;
}

/* ca-tls-pin: sha256:HEX, instead of ca-tls-root (the pin is the whole
 * check, so both at once would leave one unused). */
static int
config_check_tls_pin(const struct config *cfg, struct err *err)
{
	uint8_t pin[32];

	if (cfg->ca_tls_root[0] != '\0')
		return err_set(err, ERR_INVALID,
		    "set ca-tls-root or ca-tls-pin, not both (a pinned key is the whole check)");
	return tls_pin_parse(cfg->ca_tls_pin, pin, err);
}

/* ca-tls-root: PEM certificates, at least one (a TLS root need not be
 * self-signed: an intermediate may be the anchor). */
static int
config_check_tls_root(const char *path, struct err *err)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	int ret;

	if (fileio_read(path, CACLIENT_TLS_ROOT_MAX, &pem, &len) == -1)
		return err_errno(err, "%s", path);
	ret = tls_roots_check((const char *)pem, len, err);
	free(pem);
	if (ret == -1)
		err_wrap(err, "%s", path);
	return ret;
}

/* Whether the directory path can be made: it exists as a directory, or its
 * parent does. Returns 0, or -1 with why. */
static int
config_check_parent(const char *path, struct err *err)
{
	char parent[sizeof(((struct config *)0)->state_dir)];
	struct stat sb;
	char *slash;

	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return 0;
		err_set(err, ERR_FAILED, "%s exists and is not a directory", path);
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return 0;
	*(slash == parent ? slash + 1 : slash) = '\0';
	if (stat(parent, &sb) == 0 && S_ISDIR(sb.st_mode))
		return 0;
	err_set(err, ERR_FAILED, "its parent directory %s does not exist: create it, or correct the "
	    "path", parent);
	return -1;
}

/* Whether the API socket, and the instances' sockets in run-dir, fit in a
 * unix socket address. Returns 0, or -1 with why. */
static int
config_check_socket_len(const char *path, size_t room, struct err *err)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	if (strlen(path) + room <= max)
		return 0;
	if (room == 0)
		err_set(err, ERR_FAILED, "%zu bytes, too long for a unix socket (at most %zu): "
		    "choose a shorter path", strlen(path), max);
	else
		err_set(err, ERR_FAILED, "%zu bytes leaves no room for an instance's socket "
		    "(DIR/NAME.sock.ctrl, at most %zu bytes): choose a shorter path", strlen(path),
		    max);
	return -1;
}

/* Records in c->o the line of the file that set each key. */
static void
config_origins(struct config_checker *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	config_defaults(&c->o.file);
	if (c->path == NULL || (f = fopen(c->path, "re")) == NULL)
		return;
	if (config_read(f, &text, &len) == 0) {
		config_each_line(c->path, text, len, config_origin_line, &c->o, NULL);
		free(text);
	}
	fclose(f);
}

/*
 * Checks what the syntax cannot show, without contacting the TPM: the
 * TCTI's module loads, approval-public-key is a readable public key (and
 * not a private one), privacy-ca-root and virtualization-ca-root hold
 * root CA certificates, the sockets fit in a unix socket address and, unless
 * starting (vtpmd makes missing directories), the parents of state-dir and
 * run-dir exist. cfg holds the values in use (the file's, and the command
 * line's over them); path is the file read, or NULL. Every problem is
 * reported to errors, as "path:line: key: reason" when the file set the
 * value. Returns the number of problems.
 */
int
config_check(const char *path, const struct config *cfg, bool starting, FILE *errors)
{
	struct config_checker c = {.path = path, .cfg = cfg, .errors = errors};

	config_origins(&c);
	config_verdict(&c, CONFIG_TCTI, config_check_tcti(cfg->tcti, &c.err));
	if (cfg->approval_public[0] != '\0')
		config_verdict(&c, CONFIG_APPROVAL_PUBLIC,
		    config_check_approval_key(cfg->approval_public, &c.err));
	if (cfg->privacy_root[0] != '\0')
		config_verdict(&c, CONFIG_PRIVACY_ROOT, config_check_roots(cfg->privacy_root, &c.err));
	if (cfg->virt_root[0] != '\0')
		config_verdict(&c, CONFIG_VIRT_ROOT, config_check_roots(cfg->virt_root, &c.err));
	if (cfg->ca_tls_root[0] != '\0')
		config_verdict(
		    &c, CONFIG_CA_TLS_ROOT, config_check_tls_root(cfg->ca_tls_root, &c.err));
	if (cfg->ca_tls_pin[0] != '\0')
		config_verdict(&c, CONFIG_CA_TLS_PIN, config_check_tls_pin(cfg, &c.err));
	config_verdict(&c, CONFIG_SOCKET,
	    config_check_socket_len(cfg->socket, 0, &c.err));
	config_verdict(&c, CONFIG_RUN_DIR,
	    config_check_socket_len(cfg->run_dir, strlen("/x.sock.ctrl"), &c.err));
	if (!starting) {
		config_verdict(&c, CONFIG_STATE_DIR,
		    config_check_parent(cfg->state_dir, &c.err));
		config_verdict(&c, CONFIG_RUN_DIR,
		    config_check_parent(cfg->run_dir, &c.err));
	}
	return c.problems;
}
