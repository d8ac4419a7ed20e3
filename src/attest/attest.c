/*
 * attest.c: what every command of vtpm-attest shares: usage errors,
 * failures, hex and handle arguments. The command table is in main.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"


int
attest_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usagev("vtpm-attest", cmd, fmt, ap);
	va_end(ap);
	return ret;
}

int
attest_fail(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_failv("vtpm-attest", fmt, ap);
	va_end(ap);
	return ret;
}

/* Decodes hex (an even number of digits, 1 to max bytes) into out;
 * EXIT_OK or a usage error of cmd naming what. */
int
attest_parse_hex(
    const char *cmd, const char *what, const char *hex, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(hex);

	if (n >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) {
		hex += 2;
		n -= 2;
	}
	if (n == 0 || n % 2 != 0 || n / 2 > max || hex_decode(hex, out, n / 2) == -1)
		return attest_usage(cmd, "%s: 1 to %zu bytes in hexadecimal", what, max);
	*len = n / 2;
	return EXIT_OK;
}

/* A TPM handle, in hexadecimal (0x81010002) or decimal. */
int
attest_parse_handle(const char *cmd, const char *what, const char *s, uint32_t *handle)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX)
		return attest_usage(cmd, "%s: not a TPM handle (e.g. 0x81010002)", what);
	*handle = (uint32_t)v;
	return EXIT_OK;
}
