/*
 * ca.c: what every command of vtpm-ca shares: usage errors, failures, the
 * CA files beside the database, names of roles, times. The command table
 * is in main.c.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"


int
ca_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usagev("vtpm-ca", cmd, fmt, ap);
	va_end(ap);
	return ret;
}

int
ca_fail(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_failv("vtpm-ca", fmt, ap);
	va_end(ap);
	return ret;
}

int
ca_file(const char *db, const char *which, const char *ext, char *out, size_t len)
{
	char *copy = strdup(db);
	int n;

	if (copy == NULL)
		return -1;
	n = snprintf(out, len, "%s/ca-%s.%s", dirname(copy), which, ext);
	free(copy);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

const char *
ca_role_name(enum ca_role role)
{
	switch (role) {
	case CA_ROLE_PRIVACY: return "privacy";
	case CA_ROLE_VIRTUALIZATION: return "virtualization";
	default: return "both";
	}
}

int
ca_role_parse(const char *s, enum ca_role *role)
{
	if (strcmp(s, "privacy") == 0)
		*role = CA_ROLE_PRIVACY;
	else if (strcmp(s, "virtualization") == 0)
		*role = CA_ROLE_VIRTUALIZATION;
	else if (strcmp(s, "both") == 0)
		*role = CA_ROLE_BOTH;
	else
		return -1;
	return 0;
}

void
ca_time_format(int64_t t, char out[static 21])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 21, "%lld", (long long)t);
}
