/*
 * vtpmctl.c: what every command of vtpmctl shares: the API socket, usage
 * errors, --help, --json output and instance-name checks. Global options
 * and the command table are in main.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmctl.h"

const char *vtpmctl_socket = VTPMCTL_DEFAULT_SOCKET;


/* Prints a usage error for cmd (NULL: vtpmctl itself); returns EXIT_USAGE. */
int
vtpmctl_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usagev("vtpmctl", cmd, fmt, ap);
	va_end(ap);
	return ret;
}

/* Prints "vtpmctl: message" on stderr; returns EXIT_RUNTIME. */
int
vtpmctl_fail(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_failv("vtpmctl", fmt, ap);
	va_end(ap);
	return ret;
}

void
vtpmctl_help(const char *text)
{
	fputs(text, stdout);
}

/* Whether name is a valid instance name (docs/api.md); if not, says so as
 * a usage error of cmd. */
bool
vtpmctl_check_name(const char *cmd, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '.' || c == '_' || c == '-'))
			len = 0;
	}
	if (len == 0 || len > 64 || name[0] == '.' || name[0] == '-') {
		vtpmctl_usage(cmd,
		    "invalid instance name '%s': use 1-64 characters from A-Z a-z 0-9 . _ -, "
		    "not starting with . or -",
		    name);
		return false;
	}
	return true;
}

/* Prints v as indented JSON on stdout (what --json shows). */
void
vtpmctl_print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
}

/* obj[key] when it is a string, else dflt. */
const char *
vtpmctl_str(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : dflt;
}
