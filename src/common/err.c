/*
 * err.c: the one way a function says why it failed (docs/architecture.md,
 * "Errors"). A function that can fail returns -1 (or NULL) and fills the
 * caller's struct err: a kind the caller may act on, and a one-line
 * message for a person. The struct belongs to the caller, so nothing here
 * is static or shared between threads.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "common.h"

static void err_vset(struct err *e, enum err_kind kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
err_vset(struct err *e, enum err_kind kind, const char *fmt, va_list ap)
{
	if (e == NULL)
		return;
	e->kind = kind;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int
err_set(struct err *e, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, kind, fmt, ap);
	va_end(ap);
	return -1;
}

int
err_errno(struct err *e, const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	err_vset(e, ERR_IO, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(saved));
	errno = saved;
	return -1;
}

int
err_ssl(struct err *e, const char *fmt, ...)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
	size_t n;
	va_list ap;

	if (e == NULL) {
		ERR_clear_error();
		return -1;
	}
	va_start(ap, fmt);
	err_vset(e, ERR_FAILED, fmt, ap);
	va_end(ap);
	if (reason != NULL) {
		n = strlen(e->msg);
		snprintf(e->msg + n, sizeof(e->msg) - n, ": OpenSSL: %s", reason);
	}
	ERR_clear_error();
	return -1;
}

int
err_wrap(struct err *e, const char *fmt, ...)
{
	char head[ERR_MSG_MAX], tail[ERR_MSG_MAX];
	va_list ap;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(tail, e->msg, sizeof(tail));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, tail);
	return -1;
}

void
err_clear(struct err *e)
{
	if (e == NULL)
		return;
	e->kind = ERR_NONE;
	e->msg[0] = '\0';
}

const char *
err_kind_name(enum err_kind kind)
{
	switch (kind) {
	case ERR_NONE: return "none";
	case ERR_FAILED: return "failed";
	case ERR_INVALID: return "invalid";
	case ERR_IO: return "io";
	case ERR_ABSENT: return "absent";
	case ERR_EXISTS: return "exists";
	case ERR_BUSY: return "busy";
	case ERR_CORRUPT: return "corrupt";
	case ERR_REFUSED: return "refused";
	case ERR_UNREACHABLE: return "unreachable";
	case ERR_TIMEOUT: return "timeout";
	case ERR_POLICY: return "policy";
	case ERR_FOREIGN: return "foreign";
	case ERR_HOST_TPM: return "host-tpm";
	case ERR_UNTRUSTED: return "untrusted";
	}
	return "?";
}
