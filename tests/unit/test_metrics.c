#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/metrics.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(metrics);

static char *render(const struct patron_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(patron_metrics_render(m, &text, &len), 0);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), len);
    return text;
}

static void assert_render(const struct patron_metrics *m, const char *want)
{
    char *got = render(m);
    cr_assert_str_eq(got, want, "rendered:\n%s\nwanted:\n%s", got, want);
    free(got);
}

Test(metrics, empty_registry_renders_nothing)
{
    struct patron_metrics *m = patron_metrics_new();
    assert_render(m, "");
    patron_metrics_free(m);
    patron_metrics_free(NULL);
}

Test(metrics, counters_with_and_without_labels)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_counter *events =
        patron_metrics_counter(m, "patron_events_total", "Events applied.", NULL);
    struct patron_counter *decode = patron_metrics_counter(
        m, "patron_dlq_total", "Messages sent to the DLQ.", "reason=\"decode\"");
    struct patron_counter *contract =
        patron_metrics_counter(m, "patron_dlq_total", "ignored: the first help wins",
                               "reason=\"contract\",topic=\"patron.events\"");
    patron_counter_inc(events);
    patron_counter_add(events, 41);
    patron_counter_add(events, -5); /* ignored */
    patron_counter_inc(decode);
    patron_counter_add(contract, 2.5);
    cr_assert_eq(patron_counter_value(events), 42);
    assert_render(m, "# HELP patron_events_total Events applied.\n"
                     "# TYPE patron_events_total counter\n"
                     "patron_events_total 42\n"
                     "# HELP patron_dlq_total Messages sent to the DLQ.\n"
                     "# TYPE patron_dlq_total counter\n"
                     "patron_dlq_total{reason=\"decode\"} 1\n"
                     "patron_dlq_total{reason=\"contract\",topic=\"patron.events\"} 2.5\n");
    patron_metrics_free(m);
}

Test(metrics, same_name_and_labels_is_the_same_metric)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_counter *a = patron_metrics_counter(m, "x_total", "X.", "k=\"1\"");
    struct patron_counter *b = patron_metrics_counter(m, "x_total", "X.", "k=\"1\"");
    struct patron_counter *c = patron_metrics_counter(m, "x_total", "X.", "k=\"2\"");
    struct patron_counter *d = patron_metrics_counter(m, "x_total", "X.", NULL);
    struct patron_counter *e = patron_metrics_counter(m, "x_total", "X.", "");
    cr_assert_eq(a, b);
    cr_assert_neq(a, c);
    cr_assert_neq(a, d);
    cr_assert_eq(d, e, "NULL and \"\" are both no labels");
    struct patron_gauge *g1 = patron_metrics_gauge(m, "y", "Y.", NULL);
    cr_assert_eq(g1, patron_metrics_gauge(m, "y", "Y.", NULL));
    double bounds[] = {1, 2};
    struct patron_histogram *h1 = patron_metrics_histogram(m, "z", "Z.", NULL, bounds, 2);
    cr_assert_eq(h1, patron_metrics_histogram(m, "z", "Z.", NULL, bounds, 2));
    patron_metrics_free(m);
}

Test(metrics, gauges)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_gauge *lag =
        patron_metrics_gauge(m, "patron_consumer_lag", "Messages behind.", "partition=\"0\"");
    struct patron_gauge *conns = patron_metrics_gauge(m, "patron_http_connections", "Open.", NULL);
    patron_gauge_set(lag, 1500);
    patron_gauge_add(conns, 3);
    patron_gauge_add(conns, -1);
    cr_assert_eq(patron_gauge_value(conns), 2);
    assert_render(m, "# HELP patron_consumer_lag Messages behind.\n"
                     "# TYPE patron_consumer_lag gauge\n"
                     "patron_consumer_lag{partition=\"0\"} 1500\n"
                     "# HELP patron_http_connections Open.\n"
                     "# TYPE patron_http_connections gauge\n"
                     "patron_http_connections 2\n");
    patron_metrics_free(m);
}

Test(metrics, histogram_buckets_are_cumulative_with_inf)
{
    struct patron_metrics *m = patron_metrics_new();
    static const double bounds[] = {0.005, 0.1, 1};
    struct patron_histogram *h = patron_metrics_histogram(m, "patron_batch_seconds", "Batch time.",
                                                          "stage=\"apply\"", bounds, 3);
    struct patron_histogram *plain =
        patron_metrics_histogram(m, "patron_batch_seconds", "Batch time.", NULL, bounds, 3);
    patron_histogram_observe(h, 0.005); /* le is inclusive */
    patron_histogram_observe(h, 0.0625);
    patron_histogram_observe(h, 0.5);
    patron_histogram_observe(h, 2);
    patron_histogram_observe(h, 0.001);
    cr_assert_eq(patron_histogram_count(h), 5);
    assert_render(m, "# HELP patron_batch_seconds Batch time.\n"
                     "# TYPE patron_batch_seconds histogram\n"
                     "patron_batch_seconds_bucket{stage=\"apply\",le=\"0.005\"} 2\n"
                     "patron_batch_seconds_bucket{stage=\"apply\",le=\"0.1\"} 3\n"
                     "patron_batch_seconds_bucket{stage=\"apply\",le=\"1\"} 4\n"
                     "patron_batch_seconds_bucket{stage=\"apply\",le=\"+Inf\"} 5\n"
                     "patron_batch_seconds_sum{stage=\"apply\"} 2.5685\n"
                     "patron_batch_seconds_count{stage=\"apply\"} 5\n"
                     "patron_batch_seconds_bucket{le=\"0.005\"} 0\n"
                     "patron_batch_seconds_bucket{le=\"0.1\"} 0\n"
                     "patron_batch_seconds_bucket{le=\"1\"} 0\n"
                     "patron_batch_seconds_bucket{le=\"+Inf\"} 0\n"
                     "patron_batch_seconds_sum 0\n"
                     "patron_batch_seconds_count 0\n");
    (void)plain;
    patron_metrics_free(m);
}

Test(metrics, histogram_without_bounds_and_nan)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_histogram *h = patron_metrics_histogram(m, "h", "H.", NULL, NULL, 0);
    patron_histogram_observe(h, 3);
    patron_histogram_observe(h, NAN);
    assert_render(m, "# HELP h H.\n"
                     "# TYPE h histogram\n"
                     "h_bucket{le=\"+Inf\"} 2\n"
                     "h_sum NaN\n"
                     "h_count 2\n");
    patron_metrics_free(m);
}

Test(metrics, latency_buckets_render)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_histogram *h =
        patron_metrics_histogram(m, "lat_seconds", "L.", NULL, PATRON_METRICS_LATENCY_BUCKETS,
                                 PATRON_METRICS_LATENCY_BUCKETS_LEN);
    patron_histogram_observe(h, 0.003);
    char *text = render(m);
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"0.0005\"} 0\n"));
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"0.0025\"} 0\n"));
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"0.005\"} 1\n"));
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"2.5\"} 1\n"));
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"10\"} 1\n"));
    cr_assert_not_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 1\n"));
    free(text);
    patron_metrics_free(m);
}

Test(metrics, value_formatting_table)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {-2, "-2"},
        {0.1, "0.1"},
        {0.25, "0.25"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789012, "123456789012"},
        {9007199254740993.0, "9007199254740992"},
        {1e21, "1e+21"},
        {1e-7, "1e-07"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        struct patron_metrics *m = patron_metrics_new();
        patron_gauge_set(patron_metrics_gauge(m, "g", "G.", NULL), cases[i].v);
        char want[128];
        snprintf(want, sizeof(want), "# HELP g G.\n# TYPE g gauge\ng %s\n", cases[i].want);
        assert_render(m, want);
        patron_metrics_free(m);
    }
}

Test(metrics, help_and_label_escaping)
{
    struct patron_metrics *m = patron_metrics_new();
    char value[64];
    cr_assert_eq(patron_metrics_escape_label(value, sizeof(value), "a\"b\\c\nd"), 10);
    cr_assert_str_eq(value, "a\\\"b\\\\c\\nd");
    char labels[96];
    snprintf(labels, sizeof(labels), "topic=\"%s\"", value);
    patron_counter_inc(patron_metrics_counter(m, "c_total", "Line one\nback\\slash \"q\"", labels));
    assert_render(m, "# HELP c_total Line one\\nback\\\\slash \"q\"\n"
                     "# TYPE c_total counter\n"
                     "c_total{topic=\"a\\\"b\\\\c\\nd\"} 1\n");
    patron_metrics_free(m);
}

Test(metrics, escape_label_bounds)
{
    char out[4];
    cr_assert_eq(patron_metrics_escape_label(out, sizeof(out), "abc"), 3);
    cr_assert_eq(patron_metrics_escape_label(out, sizeof(out), "abcd"), PATRON_ETOOBIG);
    cr_assert_eq(patron_metrics_escape_label(out, sizeof(out), "ab\""), PATRON_ETOOBIG);
    cr_assert_eq(patron_metrics_escape_label(out, sizeof(out), ""), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(patron_metrics_escape_label(out, 0, ""), PATRON_ETOOBIG);
}

Test(metrics, many_series_keep_their_pointers)
{
    struct patron_metrics *m = patron_metrics_new();
    struct patron_counter *cs[500];
    for (int i = 0; i < 500; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        cs[i] = patron_metrics_counter(m, "many_total", "M.", labels);
        patron_counter_add(cs[i], i);
    }
    for (int i = 0; i < 500; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        cr_assert_eq(patron_metrics_counter(m, "many_total", "M.", labels), cs[i]);
        cr_assert_eq(patron_counter_value(cs[i]), i);
    }
    char *text = render(m);
    cr_assert_not_null(strstr(text, "many_total{i=\"499\"} 499\n"));
    free(text);
    patron_metrics_free(m);
}

/* Programming errors abort (see metrics.h). */
Test(metrics, type_conflict_aborts, .signal = SIGABRT)
{
    struct patron_metrics *m = patron_metrics_new();
    (void)patron_metrics_counter(m, "dup", "D.", NULL);
    (void)patron_metrics_gauge(m, "dup", "D.", NULL);
}

Test(metrics, histogram_other_bounds_abort, .signal = SIGABRT)
{
    struct patron_metrics *m = patron_metrics_new();
    double a[] = {1, 2}, b[] = {1, 3};
    (void)patron_metrics_histogram(m, "h", "H.", "x=\"1\"", a, 2);
    (void)patron_metrics_histogram(m, "h", "H.", "x=\"2\"", b, 2);
}

Test(metrics, bad_bounds_abort, .signal = SIGABRT)
{
    struct patron_metrics *m = patron_metrics_new();
    double a[] = {1, 1};
    (void)patron_metrics_histogram(m, "h", "H.", NULL, a, 2);
}

Test(metrics, le_label_on_histogram_aborts, .signal = SIGABRT)
{
    struct patron_metrics *m = patron_metrics_new();
    double a[] = {1};
    (void)patron_metrics_histogram(m, "h", "H.", "le=\"1\"", a, 1);
}

Test(metrics, invalid_names_and_labels_abort_table)
{
    /* Each case in its own process would be cleaner; here the validity of
     * the good ones is checked, and one bad case per .signal test below. */
    static const char *const good_names[] = {"a", "_a", "a:b", "patron_events_total", "A1"};
    static const char *const good_labels[] = {"a=\"\"", "a=\"x\",b=\"y\"", "_x=\"\\\\\\\"\\n\""};
    struct patron_metrics *m = patron_metrics_new();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(good_names); i++)
        cr_assert_not_null(patron_metrics_counter(m, good_names[i], "", NULL));
    for (size_t i = 0; i < PATRON_ARRAY_LEN(good_labels); i++)
        cr_assert_not_null(patron_metrics_counter(m, "l", "", good_labels[i]));
    patron_metrics_free(m);
}

#define BAD_CASE(test, name, labels)                                                               \
    Test(metrics, test, .signal = SIGABRT)                                                         \
    {                                                                                              \
        struct patron_metrics *m = patron_metrics_new();                                           \
        (void)patron_metrics_counter(m, name, "", labels);                                         \
    }

BAD_CASE(bad_name_digit_first, "1a", NULL)
BAD_CASE(bad_name_dash, "a-b", NULL)
BAD_CASE(bad_name_empty, "", NULL)
BAD_CASE(bad_labels_unquoted, "a", "k=v")
BAD_CASE(bad_labels_unterminated, "a", "k=\"v")
BAD_CASE(bad_labels_trailing_comma, "a", "k=\"v\",")
BAD_CASE(bad_labels_raw_newline, "a", "k=\"a\nb\"")
BAD_CASE(bad_labels_bad_escape, "a", "k=\"\\t\"")
BAD_CASE(bad_labels_reserved, "a", "__k=\"v\"")
BAD_CASE(bad_labels_space, "a", "k = \"v\"")
