/*
 * metrics.c: what a program counts about itself (counters by a label
 * value, histograms with fixed buckets) and their text in the Prometheus
 * exposition format, version 0.0.4, for GET /metrics (docs/api.md,
 * docs/ca-api.md).
 *
 * The format, as Prometheus documents it: a family is "# HELP NAME text"
 * (backslash and newline escaped), "# TYPE NAME counter|gauge|histogram",
 * then one line per sample, "NAME{LABEL="VALUE"} NUMBER" (backslash, double
 * quote and newline escaped in the value); a histogram's samples are
 * NAME_bucket{le="BOUND"} (cumulative, the last le="+Inf"), NAME_sum and
 * NAME_count. Lines end with '\n'.
 *
 * Counters and histograms are plain structs their program embeds where it
 * keeps its state; nothing here is global. The text is built in memory and
 * handed over whole; running out of memory fails the whole text, never
 * half of it.
 */
#include <math.h> /* isinf, isnan, INFINITY: no libm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const double metrics_latency_bounds[METRICS_LATENCY_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void
metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n < METRICS_BUCKETS_MAX ? n : METRICS_BUCKETS_MAX;
}

/* Counts v in the first bucket whose upper bound is at least v (the
 * format's "le"), or only in +Inf above the last. */
void
metrics_hist_observe(struct metrics_hist *h, double v)
{
	size_t i;

	if (isnan(v))
		return;
	for (i = 0; i < h->n && v > h->bounds[i]; i++)
		;
	if (i < h->n)
		h->counts[i]++;
	h->count++;
	h->sum += v;
}

void
metrics_hist_observe_us(struct metrics_hist *h, int64_t us)
{
	metrics_hist_observe(h, (double)(us < 0 ? 0 : us) / 1e6);
}

/* The series of value in c, made when new; the last slot, "other", takes
 * what does not fit. Never NULL. */
static struct metrics_series *
metrics_series_of(struct metrics_counts *c, const char *value)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->s[i].value, value) == 0)
			return &c->s[i];
	if (c->n >= METRICS_SERIES_MAX - 1 || strlen(value) >= METRICS_LABEL_MAX)
		value = "other";
	for (i = 0; i < c->n; i++)
		if (strcmp(c->s[i].value, value) == 0)
			return &c->s[i];
	snprintf(c->s[c->n].value, METRICS_LABEL_MAX, "%s", value);
	c->s[c->n].count = 0;
	return &c->s[c->n++];
}

void
metrics_count(struct metrics_counts *c, const char *value)
{
	metrics_series_of(c, value != NULL ? value : "")->count++;
}

void
metrics_count_zero(struct metrics_counts *c, const char *value)
{
	(void)metrics_series_of(c, value);
}

uint64_t
metrics_count_get(const struct metrics_counts *c, const char *value)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->s[i].value, value) == 0)
			return c->s[i].count;
	return 0;
}

/* ---- the text ---- */

/* Appends len bytes; a failure marks the text failed and drops the rest. */
static void
metrics_put(struct metrics_text *t, const char *s, size_t len)
{
	size_t cap;
	char *p;

	if (t->failed)
		return;
	if (t->len + len + 1 > t->cap) {
		cap = t->cap != 0 ? t->cap : 4096;
		while (cap < t->len + len + 1)
			cap *= 2;
		if ((p = realloc(t->buf, cap)) == NULL) {
			t->failed = true;
			return;
		}
		t->buf = p;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, len);
	t->len += len;
	t->buf[t->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
metrics_putf(struct metrics_text *t, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		t->failed = true;
		return;
	}
	metrics_put(t, line, (size_t)n);
}

/* s with the format's escapes: backslash and newline, and in a label
 * value the double quote too. */
static void
metrics_put_escaped(struct metrics_text *t, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			metrics_put(t, "\\\\", 2);
		else if (*s == '\n')
			metrics_put(t, "\\n", 2);
		else if (*s == '"' && quote)
			metrics_put(t, "\\\"", 2);
		else
			metrics_put(t, s, 1);
	}
}

/* A number as the format reads it (Go's ParseFloat): integers whole,
 * others with up to 9 significant digits, infinities as +Inf and -Inf. */
static void
metrics_put_number(struct metrics_text *t, double v)
{
	if (isinf(v))
		metrics_putf(t, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		metrics_putf(t, "NaN");
	else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v)
		metrics_putf(t, "%lld", (long long)v);
	else
		metrics_putf(t, "%.9g", v);
}

void
metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	metrics_putf(t, "# HELP %s ", name);
	metrics_put_escaped(t, help, false);
	metrics_putf(t, "\n# TYPE %s %s\n", name, type);
}

/* NAME{LABEL="VALUE"} or NAME (label NULL), then a space. */
static void
metrics_put_name(struct metrics_text *t, const char *name, const char *suffix, const char *label,
    const char *value)
{
	metrics_putf(t, "%s%s", name, suffix);
	if (label != NULL) {
		metrics_putf(t, "{%s=\"", label);
		metrics_put_escaped(t, value, true);
		metrics_put(t, "\"}", 2);
	}
	metrics_put(t, " ", 1);
}

void
metrics_sample(
    struct metrics_text *t, const char *name, const char *label, const char *value, double v)
{
	metrics_put_name(t, name, "", label, value);
	metrics_put_number(t, v);
	metrics_put(t, "\n", 1);
}

void
metrics_sample_counts(
    struct metrics_text *t, const char *name, const char *label, const struct metrics_counts *c)
{
	for (size_t i = 0; i < c->n; i++)
		metrics_sample(t, name, label, c->s[i].value, (double)c->s[i].count);
}

/* One bucket line: NAME_bucket{[LABEL="VALUE",]le="BOUND"} COUNT. */
static void
metrics_put_bucket(struct metrics_text *t, const char *name, const char *label, const char *value,
    double bound, uint64_t count)
{
	metrics_putf(t, "%s_bucket{", name);
	if (label != NULL) {
		metrics_putf(t, "%s=\"", label);
		metrics_put_escaped(t, value, true);
		metrics_put(t, "\",", 2);
	}
	metrics_put(t, "le=\"", 4);
	metrics_put_number(t, bound);
	metrics_putf(t, "\"} %llu\n", (unsigned long long)count);
}

void
metrics_sample_hist(struct metrics_text *t, const char *name, const char *label, const char *value,
    const struct metrics_hist *h)
{
	uint64_t below = 0;

	for (size_t i = 0; i < h->n; i++) {
		below += h->counts[i];
		metrics_put_bucket(t, name, label, value, h->bounds[i], below);
	}
	metrics_put_bucket(t, name, label, value, INFINITY, h->count);
	metrics_put_name(t, name, "_sum", label, value);
	metrics_put_number(t, h->sum);
	metrics_put(t, "\n", 1);
	metrics_put_name(t, name, "_count", label, value);
	metrics_putf(t, "%llu\n", (unsigned long long)h->count);
}

char *
metrics_text_take(struct metrics_text *t, size_t *len)
{
	char *buf = t->failed ? NULL : t->buf;

	if (t->failed)
		free(t->buf);
	else if (buf == NULL)
		buf = calloc(1, 1);
	*len = buf != NULL ? t->len : 0;
	memset(t, 0, sizeof(*t));
	return buf;
}
