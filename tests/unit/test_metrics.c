/*
 * test_metrics.c: counters, histograms and their exposition text
 * (src/common/metrics.c).
 *
 * Covered: a histogram's buckets by upper bound (a value on a bound counts
 * in it, one above the last only in +Inf), its cumulative bucket lines,
 * sum and count; NaN ignored; counters by label value, "other" once the
 * series are full or a value too long; HELP and TYPE lines; the escapes of
 * help texts and label values; numbers (integers whole, +Inf); an empty
 * text is an empty string.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"

static const double bounds[] = {0.001, 0.01, 0.1};

static char *
take(struct metrics_text *t)
{
	size_t len;
	char *s = metrics_text_take(t, &len);

	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	return s;
}

static void
test_hist_buckets(void **state)
{
	struct metrics_hist h;
	struct metrics_text t = {0};
	char *s;

	(void)state;
	metrics_hist_init(&h, bounds, 3);
	metrics_hist_observe(&h, 0.0005);
	metrics_hist_observe(&h, 0.001); /* on a bound: in it */
	metrics_hist_observe(&h, 0.05);
	metrics_hist_observe(&h, 2.0); /* above the last: +Inf only */
	metrics_hist_observe(&h, NAN);
	metrics_hist_observe_us(&h, 5000); /* 5 ms */
	assert_int_equal(h.count, 5);
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 1);
	assert_int_equal(h.counts[2], 1);
	metrics_family(&t, "x_seconds", "histogram", "time of x");
	metrics_sample_hist(&t, "x_seconds", NULL, NULL, &h);
	s = take(&t);
	assert_string_equal(s, "# HELP x_seconds time of x\n"
	                       "# TYPE x_seconds histogram\n"
	                       "x_seconds_bucket{le=\"0.001\"} 2\n"
	                       "x_seconds_bucket{le=\"0.01\"} 3\n"
	                       "x_seconds_bucket{le=\"0.1\"} 4\n"
	                       "x_seconds_bucket{le=\"+Inf\"} 5\n"
	                       "x_seconds_sum 2.0565\n"
	                       "x_seconds_count 5\n");
	free(s);
}

static void
test_hist_label(void **state)
{
	struct metrics_hist h;
	struct metrics_text t = {0};
	char *s;

	(void)state;
	metrics_hist_init(&h, bounds, 1);
	metrics_hist_observe(&h, 3);
	metrics_sample_hist(&t, "y_seconds", "route", "a\"b", &h);
	s = take(&t);
	assert_string_equal(s, "y_seconds_bucket{route=\"a\\\"b\",le=\"0.001\"} 0\n"
	                       "y_seconds_bucket{route=\"a\\\"b\",le=\"+Inf\"} 1\n"
	                       "y_seconds_sum{route=\"a\\\"b\"} 3\n"
	                       "y_seconds_count{route=\"a\\\"b\"} 1\n");
	free(s);
}

static void
test_counts(void **state)
{
	struct metrics_counts c = {0};
	char name[16], longer[METRICS_LABEL_MAX + 8];

	(void)state;
	metrics_count_zero(&c, "policy");
	metrics_count(&c, "io");
	metrics_count(&c, "io");
	assert_int_equal(metrics_count_get(&c, "policy"), 0);
	assert_int_equal(metrics_count_get(&c, "io"), 2);
	assert_int_equal(metrics_count_get(&c, "absent"), 0);
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	metrics_count(&c, longer);
	assert_int_equal(metrics_count_get(&c, "other"), 1);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metrics_count(&c, name);
	}
	/* policy, io, other, r0..r11: the rest are "other" */
	assert_int_equal(c.n, METRICS_SERIES_MAX - 1);
	assert_int_equal(metrics_count_get(&c, "r11"), 1);
	assert_int_equal(metrics_count_get(&c, "r12"), 0);
	assert_int_equal(metrics_count_get(&c, "other"), 1 + 28);
}

/* Without "other" among them, the last slot becomes "other". */
static void
test_counts_full(void **state)
{
	struct metrics_counts c = {0};
	char name[16];

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metrics_count(&c, name);
	}
	assert_int_equal(c.n, METRICS_SERIES_MAX);
	assert_string_equal(c.s[METRICS_SERIES_MAX - 1].value, "other");
	assert_int_equal(metrics_count_get(&c, "other"), 20 - (METRICS_SERIES_MAX - 1));
}

static void
test_text(void **state)
{
	struct metrics_counts c = {0};
	struct metrics_text t = {0};
	char *s;

	(void)state;
	metrics_count(&c, "a\\b\nc");
	metrics_family(&t, "z_total", "counter", "back\\slash\nnewline \"quoted\"");
	metrics_sample_counts(&t, "z_total", "reason", &c);
	metrics_sample(&t, "g", NULL, NULL, 0.25);
	metrics_sample(&t, "g", "k", "v", 1e20);
	metrics_sample(&t, "g", "k", "w", -3);
	s = take(&t);
	assert_string_equal(s, "# HELP z_total back\\\\slash\\nnewline \"quoted\"\n"
	                       "# TYPE z_total counter\n"
	                       "z_total{reason=\"a\\\\b\\nc\"} 1\n"
	                       "g 0.25\n"
	                       "g{k=\"v\"} 1e+20\n"
	                       "g{k=\"w\"} -3\n");
	free(s);
}

static void
test_empty(void **state)
{
	struct metrics_text t = {0};
	char *s;

	(void)state;
	s = take(&t);
	assert_string_equal(s, "");
	free(s);
	assert_null(t.buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hist_buckets),
	    cmocka_unit_test(test_hist_label),
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_counts_full),
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
