/*
 * log.c: the log of one vtpmd process, on stderr (journald reads it there).
 * Every line carries the process tag ("instance[vm-a]", "vtpmd") so that
 * interleaved output of many workers stays readable. When stderr is the
 * journal (systemd sets JOURNAL_STREAM to its device:inode), each line
 * starts with its syslog priority ("<4>"), which journald strips and
 * records, so `journalctl -p warning` finds warnings. Never log secrets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static char log_tag[96] = "vtpmd";
static enum log_level log_max = LOG_LEVEL_INFO;
static bool log_journal; /* stderr is the journal: lines carry "<PRIORITY>" */

static const char *const log_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

/* syslog(3)'s priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int log_priorities[] = {
    [LOG_LEVEL_ERROR] = 3,
    [LOG_LEVEL_WARN] = 4,
    [LOG_LEVEL_INFO] = 6,
    [LOG_LEVEL_DEBUG] = 7,
};

/* Whether stderr is the stream JOURNAL_STREAM ("DEVICE:INODE", decimal)
 * names: systemd's journal, and not a file or pipe it was redirected to. */
static bool
log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (env == NULL || env[0] < '0' || env[0] > '9')
		return false;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno != 0 || *end != ':' || end[1] < '0' || end[1] > '9')
		return false;
	ino = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *tag, enum log_level level)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
	log_max = level;
	log_journal = log_stderr_is_journal();
}

/* "<N>" for the journal, else "". */
static const char *
log_prefix(enum log_level level, char *buf, size_t len)
{
	if (!log_journal)
		return "";
	snprintf(buf, len, "<%d>", log_priorities[level]);
	return buf;
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

/* One line of level (its filter), named name, with syslog priority prio
 * for the journal. */
static void __attribute__((format(printf, 5, 0)))
log_emit_as(enum log_level level, const char *name, int prio, int errnum, const char *fmt,
    va_list ap)
{
	char msg[1024], pbuf[8];
	const char *pre = "";

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_journal) {
		snprintf(pbuf, sizeof(pbuf), "<%d>", prio);
		pre = pbuf;
	}
	if (log_tag[0] == '\0') /* relayed: the manager tags the line */
		fprintf(stderr, "%s%s: %s%s%s\n", pre, name, msg, errnum != 0 ? ": " : "",
		    errnum != 0 ? strerror(errnum) : "");
	else if (errnum != 0)
		fprintf(stderr, "%s%s: %s: %s: %s\n", pre, log_tag, name, msg, strerror(errnum));
	else
		fprintf(stderr, "%s%s: %s: %s\n", pre, log_tag, name, msg);
}

static void __attribute__((format(printf, 3, 0)))
log_emit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	log_emit_as(level, log_names[level], log_priorities[level], errnum, fmt, ap);
}

/* The level a relayed line names at its start ("warn: …"); info for a
 * line that names none (the continuation of a long line). */
static enum log_level
log_relayed_level(const char *line)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		size_t n = strlen(log_names[i]);

		if (strncmp(line, log_names[i], n) == 0 && line[n] == ':')
			return (enum log_level)i;
	}
	return LOG_LEVEL_INFO;
}

/* One line another process logged, under tag, as it came (its level
 * included and already filtered): the manager relays its workers' lines
 * (src/manager/workerlog.c), at the priority the line names. line holds
 * no newline. */
void
log_relay(const char *tag, const char *line)
{
	char prio[8];

	fprintf(stderr, "%s%s: %s\n", log_prefix(log_relayed_level(line), prio, sizeof(prio)), tag,
	    line);
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

/* An event an operator must be able to find later (a revert of a vTPM's
 * state): shown from level info, as syslog's LOG_NOTICE (5), named
 * "notice". */
void
log_notice(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit_as(LOG_LEVEL_INFO, "notice", 5, 0, fmt, ap);
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
