/*
 * config.c: vtpmd's configuration, parsed once by the manager; workers
 * receive only what they need on their command line.
 *
 *   # comment
 *   tcti = swtpm:host=127.0.0.1,port=2321
 *   pcrs = 0,2,4,7
 *
 * Keys: tcti, state-dir, run-dir, socket, pcrs, worker-uid-base,
 * approval-public-key, log-level. Errors name file:line. The text is
 * parsed from memory (config_parse_buffer), so that the parser can be
 * fuzzed without files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmd.h"

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
	cfg->log_level = LOG_LEVEL_INFO;
}

/* Parses "0,2,4,7" (PCR indices 0..23, no duplicates, spaces around the
 * commas allowed, none missing). Returns 0 or -1. */
int
config_parse_pcrs(const char *list, struct pcr_selection *sel)
{
	const char *p = list;
	uint32_t mask = 0;
	char *end;
	long v;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || v < 0 || v >= HWTPM_PCRS || (mask & (1u << v)))
			return -1;
		mask |= 1u << v;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			if (*p == '\0')
				return -1; /* "0,2," */
		} else if (*p != '\0') {
			return -1;
		}
	}
	if (mask == 0)
		return -1;
	sel->mask = mask;
	return 0;
}

void
config_format_pcrs(const struct pcr_selection *sel, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < HWTPM_PCRS && off < len; i++)
		if (sel->mask & (1u << i))
			off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? "," : "", i);
}

static int
config_copy(char *dst, size_t dlen, const char *value, bool absolute, char *why, size_t why_len)
{
	if (value[0] == '\0' || strlen(value) >= dlen) {
		snprintf(why, why_len, "value is empty or longer than %zu bytes", dlen - 1);
		return -1;
	}
	if (absolute && value[0] != '/') {
		snprintf(why, why_len, "must be an absolute path");
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/* Sets one key. Returns 0, or -1 with a reason in why. */
int
config_set(struct config *cfg, const char *key, const char *value, char *why, size_t why_len)
{
	char *end;
	unsigned long v;

	if (strcmp(key, "tcti") == 0)
		return config_copy(cfg->tcti, sizeof(cfg->tcti), value, false, why, why_len);
	if (strcmp(key, "state-dir") == 0)
		return config_copy(cfg->state_dir, sizeof(cfg->state_dir), value, true, why, why_len);
	if (strcmp(key, "run-dir") == 0)
		return config_copy(cfg->run_dir, sizeof(cfg->run_dir), value, true, why, why_len);
	if (strcmp(key, "socket") == 0)
		return config_copy(cfg->socket, sizeof(cfg->socket), value, true, why, why_len);
	if (strcmp(key, "approval-public-key") == 0)
		return config_copy(cfg->approval_public, sizeof(cfg->approval_public), value, true,
		    why, why_len);
	if (strcmp(key, "pcrs") == 0) {
		if (config_parse_pcrs(value, &cfg->pcrs) == 0)
			return 0;
		snprintf(why, why_len, "expected a list of PCR numbers 0-23 such as 0,2,4,7");
		return -1;
	}
	if (strcmp(key, "worker-uid-base") == 0) {
		errno = 0;
		v = strtoul(value, &end, 10);
		if (errno == 0 && *end == '\0' && end != value && v < 0x7fff0000ul) {
			cfg->worker_uid_base = (uid_t)v;
			return 0;
		}
		snprintf(why, why_len, "expected a number (0 disables the sandbox)");
		return -1;
	}
	if (strcmp(key, "log-level") == 0) {
		if (log_parse_level(value, &cfg->log_level) == 0)
			return 0;
		snprintf(why, why_len, "expected error, warn, info or debug");
		return -1;
	}
	snprintf(why, why_len, "unknown key '%s'", key);
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

/* One line's "key = value" (NUL-terminated, without its newline). Returns
 * the number of problems reported (0 or 1). */
static int
config_parse_line(const char *name, int lineno, char *line, struct config *cfg, FILE *errors)
{
	char why[256], *key, *value, *eq;

	key = config_trim(line);
	if (*key == '\0' || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (eq == NULL) {
		fprintf(errors, "%s:%d: expected 'key = value'\n", name, lineno);
		return 1;
	}
	*eq = '\0';
	key = config_trim(key);
	value = config_trim(eq + 1);
	if (config_set(cfg, key, value, why, sizeof(why)) == -1) {
		fprintf(errors, "%s:%d: %s: %s\n", name, lineno, key, why);
		return 1;
	}
	return 0;
}

/*
 * Parses the text of a configuration, len bytes at text (not necessarily
 * NUL-terminated), over the values already in cfg; name is what messages
 * call it. Lines end with '\n' (a last one may not); a line is at most
 * CONFIG_LINE_MAX bytes and holds no NUL byte. Every problem is reported
 * to errors as "name:line: reason". Returns the number of problems.
 */
int
config_parse_buffer(const char *name, const char *text, size_t len, struct config *cfg,
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
			fprintf(errors, "%s:%d: line longer than %d bytes\n", name, lineno,
			    CONFIG_LINE_MAX);
			problems++;
		} else if (memchr(p, '\0', n) != NULL) {
			fprintf(errors, "%s:%d: line holds a NUL byte\n", name, lineno);
			problems++;
		} else {
			memcpy(line, p, n);
			line[n] = '\0';
			problems += config_parse_line(name, lineno, line, cfg, errors);
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return problems;
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
