/*
 * Prometheus metrics: a registry of counters, gauges and histograms, rendered
 * in the text exposition format 0.0.4 for GET /metrics.
 *
 * The registry is a context the service owns (no globals); it owns every
 * metric it hands out, and the pointers stay valid until patron_metrics_free.
 * Registering the same name and labels again returns the same metric, so
 * modules may register what they use without coordinating. Updates are plain
 * stores (no atomics): single-threaded, the service's loop only.
 *
 * Names, labels, types and bucket bounds are fixed by the code, so a bad one
 * (invalid name or label syntax, a name reused with another type or other
 * bounds, more than PATRON_METRICS_SERIES_MAX series) is a programming error:
 * it aborts with a message, and the first test run finds it.
 */
#ifndef PATRON_METRICS_H
#define PATRON_METRICS_H

#include "patron/common.h"

/* A bound on cardinality: series are for code paths, not for customers. */
#define PATRON_METRICS_SERIES_MAX 4096
/* A bound on the rendered text. */
#define PATRON_METRICS_RENDER_MAX (16u << 20)

struct patron_metrics;
struct patron_counter;
struct patron_gauge;
struct patron_histogram;

struct patron_metrics *patron_metrics_new(void);
void patron_metrics_free(struct patron_metrics *m);

/* `labels` is NULL or the inside of the braces in exposition syntax, e.g.
 * "reason=\"decode\",topic=\"patron.events\"", values escaped (build values
 * that come from configuration or input with patron_metrics_escape_label).
 * `help` is kept from the first registration of the name. Never NULL. */
struct patron_counter *patron_metrics_counter(struct patron_metrics *m, const char *name,
                                              const char *help, const char *labels);
struct patron_gauge *patron_metrics_gauge(struct patron_metrics *m, const char *name,
                                          const char *help, const char *labels);
/* `bounds`: upper bounds of the buckets in seconds (or the unit the name says),
 * strictly increasing and finite; the +Inf bucket is implicit. Every series of
 * one name must use the same bounds. The registry copies them. */
struct patron_histogram *patron_metrics_histogram(struct patron_metrics *m, const char *name,
                                                  const char *help, const char *labels,
                                                  const double *bounds, size_t n_bounds);

/* Latency buckets in seconds, 0.5 ms .. 10 s, for request and batch timings. */
extern const double PATRON_METRICS_LATENCY_BUCKETS[];
extern const size_t PATRON_METRICS_LATENCY_BUCKETS_LEN;

void patron_counter_inc(struct patron_counter *c);
void patron_counter_add(struct patron_counter *c,
                        double v); /* v < 0 is ignored: counters only rise */
double patron_counter_value(const struct patron_counter *c);

void patron_gauge_set(struct patron_gauge *g, double v);
void patron_gauge_add(struct patron_gauge *g, double v); /* negative to decrease */
double patron_gauge_value(const struct patron_gauge *g);

void patron_histogram_observe(struct patron_histogram *h, double v);
uint64_t patron_histogram_count(const struct patron_histogram *h);
double patron_histogram_sum(const struct patron_histogram *h);

/* Renders every metric, in registration order of names, then of label sets:
 * "# HELP" and "# TYPE" once per name; histograms as cumulative _bucket
 * series with le (the last le="+Inf"), _sum and _count. Values are the
 * shortest decimal that reads back exactly ("1", "0.25", "+Inf", "NaN").
 * On success *out is a NUL-terminated string the caller frees with free(),
 * *len its length. PATRON_ETOOBIG beyond PATRON_METRICS_RENDER_MAX. */
int patron_metrics_render(const struct patron_metrics *m, char **out, size_t *len) PATRON_MUST_USE;

/* Escapes a label value (backslash, double quote, newline) into dst, NUL
 * ended. Returns the length, or PATRON_ETOOBIG if it does not fit. */
int patron_metrics_escape_label(char *dst, size_t cap, const char *value) PATRON_MUST_USE;

#endif
