/*
 * log.c: the log of one vtpmd process, on stderr (journald reads it there).
 * Every line carries the process tag ("instance[vm-a]", "vtpmd") so that
 * interleaved output of many workers stays readable. Never log secrets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char log_tag[96] = "vtpmd";
static enum log_level log_max = LOG_LEVEL_INFO;

static const char *const log_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *tag, enum log_level level)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
	log_max = level;
}

/* Returns 0 and sets *level when name is one of error, warn, info, debug. */
int
log_parse_level(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void __attribute__((format(printf, 3, 0)))
log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char msg[1024];

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_tag[0] == '\0') /* relayed: the manager tags the line */
		fprintf(stderr, "%s: %s%s%s\n", log_names[level], msg, errnum != 0 ? ": " : "",
		    errnum != 0 ? strerror(errnum) : "");
	else if (errnum != 0)
		fprintf(stderr, "%s: %s: %s: %s\n", log_tag, log_names[level], msg,
		    strerror(errnum));
	else
		fprintf(stderr, "%s: %s: %s\n", log_tag, log_names[level], msg);
}

/* One line another process logged, under tag, as it came (its level
 * included and already filtered): the manager relays its workers' lines
 * (src/manager/workerlog.c). line holds no newline. */
void
log_relay(const char *tag, const char *line)
{
	fprintf(stderr, "%s: %s\n", tag, line);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

/* An error the caller handles (fatalx's level, without the exit). */
void
log_errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
}

/* fatal and fatalx end the process with status; only for start-up errors
 * and broken invariants. fatal appends strerror(errno). */
void
fatal(int status, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(status);
}
