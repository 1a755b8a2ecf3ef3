#include "patron/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/strmap.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const TYPE_NAMES[] = {"counter", "gauge", "histogram"};

/* One name: HELP, TYPE and, for histograms, the bucket bounds shared by its series. */
struct family {
    char *name;
    char *help;
    enum metric_type type;
    double *bounds;
    size_t n_bounds;
    struct series **series; /* registration order */
    size_t n_series, cap_series;
};

/* One name + label set. `key` is "name{labels" (the map key, owned here). */
struct series {
    char *key;
    const char *labels; /* points into key, "" when none */
    struct family *fam;
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;    /* histogram */
    uint64_t *buckets; /* histogram: per bucket (not cumulative), n_bounds + 1 */
};

struct patron_counter {
    struct series s;
};
struct patron_gauge {
    struct series s;
};
struct patron_histogram {
    struct series s;
};

struct patron_metrics {
    struct family **families; /* registration order */
    size_t n_families, cap_families;
    size_t n_series;
    struct patron_strmap by_name; /* name -> family */
    struct patron_strmap by_key;  /* key -> series */
};

const double PATRON_METRICS_LATENCY_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t PATRON_METRICS_LATENCY_BUCKETS_LEN = PATRON_ARRAY_LEN(PATRON_METRICS_LATENCY_BUCKETS);

static _Noreturn void misuse(const char *what, const char *name)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"metrics: %s\",\"metric\":\"%s\"}\n", what,
            name);
    abort();
}

struct patron_metrics *patron_metrics_new(void)
{
    struct patron_metrics *m = patron_calloc(1, sizeof(*m));
    patron_strmap_init(&m->by_name);
    patron_strmap_init(&m->by_key);
    return m;
}

void patron_metrics_free(struct patron_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_families; i++) {
        struct family *f = m->families[i];
        for (size_t j = 0; j < f->n_series; j++) {
            free(f->series[j]->key);
            free(f->series[j]->buckets);
            free(f->series[j]); /* the series is the first member of its public struct */
        }
        free(f->series);
        free(f->bounds);
        free(f->help);
        free(f->name);
        free(f);
    }
    free(m->families);
    patron_strmap_free(&m->by_name);
    patron_strmap_free(&m->by_key);
    free(m);
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool valid_name(const char *s)
{
    if (!s || !(is_alpha_(s[0]) || s[0] == ':'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!(is_alpha_(*p) || is_digit(*p) || *p == ':'))
            return false;
    return true;
}

/* name="value"(,name="value")* with escapes \\ \" \n only; no "le" on histograms. */
static bool valid_labels(const char *s, bool histogram)
{
    const char *p = s;
    if (!*p)
        return true;
    for (;;) {
        const char *start = p;
        if (!is_alpha_(*p))
            return false;
        while (is_alpha_(*p) || is_digit(*p))
            p++;
        if (histogram && p - start == 2 && start[0] == 'l' && start[1] == 'e')
            return false;
        if (p - start >= 2 && start[0] == '_' && start[1] == '_')
            return false; /* reserved for Prometheus */
        if (*p++ != '=' || *p++ != '"')
            return false;
        for (; *p != '"'; p++) {
            if (*p == '\0' || *p == '\n')
                return false;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return false;
            }
        }
        p++;
        if (*p == '\0')
            return true;
        if (*p++ != ',')
            return false;
    }
}

static struct family *family_get(struct patron_metrics *m, const char *name, const char *help,
                                 enum metric_type type, const double *bounds, size_t n_bounds)
{
    if (!valid_name(name))
        misuse("invalid metric name", name ? name : "");
    size_t name_len = strlen(name);
    struct family *f = patron_strmap_get(&m->by_name, name, name_len);
    if (f) {
        if (f->type != type)
            misuse("name registered with another type", name);
        if (type == METRIC_HISTOGRAM &&
            (f->n_bounds != n_bounds ||
             (n_bounds && memcmp(f->bounds, bounds, n_bounds * sizeof(*bounds)) != 0)))
            misuse("histogram registered with other bounds", name);
        return f;
    }
    if (type == METRIC_HISTOGRAM) {
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                misuse("histogram bounds must be finite and strictly increasing", name);
    }
    f = patron_calloc(1, sizeof(*f));
    f->name = patron_strdup(name);
    f->help = patron_strdup(help ? help : "");
    f->type = type;
    if (type == METRIC_HISTOGRAM && n_bounds) {
        f->bounds = patron_malloc(n_bounds * sizeof(*bounds));
        memcpy(f->bounds, bounds, n_bounds * sizeof(*bounds));
        f->n_bounds = n_bounds;
    }
    if (m->n_families == m->cap_families) {
        m->cap_families = m->cap_families ? m->cap_families * 2 : 16;
        m->families = patron_realloc(m->families, m->cap_families * sizeof(*m->families));
    }
    m->families[m->n_families++] = f;
    (void)patron_strmap_put(&m->by_name, f->name, name_len, f);
    return f;
}

/* Returns the series of name+labels, allocating `size` bytes (the public
 * struct around it) when new. */
static struct series *series_get(struct patron_metrics *m, const char *name, const char *help,
                                 const char *labels, enum metric_type type, const double *bounds,
                                 size_t n_bounds, size_t size)
{
    if (!labels)
        labels = "";
    if (!valid_labels(labels, type == METRIC_HISTOGRAM))
        misuse("invalid labels", name ? name : "");
    struct family *f = family_get(m, name, help, type, bounds, n_bounds);
    size_t name_len = strlen(name), labels_len = strlen(labels);
    size_t key_len = name_len + 1 + labels_len;
    char *key = patron_malloc(key_len + 1);
    memcpy(key, name, name_len);
    key[name_len] = '{';
    memcpy(key + name_len + 1, labels, labels_len + 1);
    struct series *s = patron_strmap_get(&m->by_key, key, key_len);
    if (s) {
        free(key);
        return s;
    }
    if (m->n_series >= PATRON_METRICS_SERIES_MAX)
        misuse("too many series", name);
    s = patron_calloc(1, size);
    s->key = key;
    s->labels = key + name_len + 1;
    s->fam = f;
    if (type == METRIC_HISTOGRAM)
        s->buckets = patron_calloc(f->n_bounds + 1, sizeof(*s->buckets));
    if (f->n_series == f->cap_series) {
        f->cap_series = f->cap_series ? f->cap_series * 2 : 4;
        f->series = patron_realloc(f->series, f->cap_series * sizeof(*f->series));
    }
    f->series[f->n_series++] = s;
    m->n_series++;
    (void)patron_strmap_put(&m->by_key, s->key, key_len, s);
    return s;
}

struct patron_counter *patron_metrics_counter(struct patron_metrics *m, const char *name,
                                              const char *help, const char *labels)
{
    struct series *s =
        series_get(m, name, help, labels, METRIC_COUNTER, NULL, 0, sizeof(struct patron_counter));
    return (struct patron_counter *)s;
}

struct patron_gauge *patron_metrics_gauge(struct patron_metrics *m, const char *name,
                                          const char *help, const char *labels)
{
    struct series *s =
        series_get(m, name, help, labels, METRIC_GAUGE, NULL, 0, sizeof(struct patron_gauge));
    return (struct patron_gauge *)s;
}

struct patron_histogram *patron_metrics_histogram(struct patron_metrics *m, const char *name,
                                                  const char *help, const char *labels,
                                                  const double *bounds, size_t n_bounds)
{
    struct series *s = series_get(m, name, help, labels, METRIC_HISTOGRAM, bounds, n_bounds,
                                  sizeof(struct patron_histogram));
    return (struct patron_histogram *)s;
}

void patron_counter_inc(struct patron_counter *c)
{
    c->s.value += 1;
}

void patron_counter_add(struct patron_counter *c, double v)
{
    if (v > 0)
        c->s.value += v;
}

double patron_counter_value(const struct patron_counter *c)
{
    return c->s.value;
}

void patron_gauge_set(struct patron_gauge *g, double v)
{
    g->s.value = v;
}

void patron_gauge_add(struct patron_gauge *g, double v)
{
    g->s.value += v;
}

double patron_gauge_value(const struct patron_gauge *g)
{
    return g->s.value;
}

void patron_histogram_observe(struct patron_histogram *h, double v)
{
    const struct family *f = h->s.fam;
    size_t i = 0;
    /* NaN lands in +Inf only, as in the Prometheus clients. */
    while (i < f->n_bounds && !(v <= f->bounds[i]))
        i++;
    h->s.buckets[i]++;
    h->s.count++;
    h->s.sum += v;
}

uint64_t patron_histogram_count(const struct patron_histogram *h)
{
    return h->s.count;
}

double patron_histogram_sum(const struct patron_histogram *h)
{
    return h->s.sum;
}

int patron_metrics_escape_label(char *dst, size_t cap, const char *value)
{
    size_t o = 0;
    for (const char *p = value; *p; p++) {
        const char *piece = p;
        size_t n = 1;
        if (*p == '\\' || *p == '"' || *p == '\n') {
            piece = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n";
            n = 2;
        }
        if (o + n >= cap)
            return PATRON_ETOOBIG;
        memcpy(dst + o, piece, n);
        o += n;
    }
    if (o >= cap)
        return PATRON_ETOOBIG;
    dst[o] = '\0';
    return (int)o;
}

/* ---- rendering ------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len, cap;
    bool overflow;
};

static void buf_reserve(struct buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->data = patron_realloc(b->data, cap);
    b->cap = cap;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->overflow || b->len + n > PATRON_METRICS_RENDER_MAX) {
        b->overflow = true;
        return;
    }
    buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v. */
static void format_double(char *dst, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(dst, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(dst, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(dst, cap, "%.*g", prec, v);
        if (strtod(dst, NULL) == v)
            return;
    }
}

static void put_double(struct buf *b, double v)
{
    char tmp[40];
    format_double(tmp, sizeof(tmp), v);
    buf_puts(b, tmp);
}

static void put_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    buf_put(b, tmp, (size_t)n);
}

/* HELP text escapes backslash and newline. */
static void put_help(struct buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            buf_put(b, "\\\\", 2);
        else if (*p == '\n')
            buf_put(b, "\\n", 2);
        else
            buf_put(b, p, 1);
    }
}

/* name{labels} or name{labels,le="x"} or name, then a space. */
static void put_series_name(struct buf *b, const char *name, const char *suffix, const char *labels,
                            const char *le)
{
    buf_puts(b, name);
    buf_puts(b, suffix);
    if (labels[0] || le) {
        buf_put(b, "{", 1);
        buf_puts(b, labels);
        if (le) {
            if (labels[0])
                buf_put(b, ",", 1);
            buf_puts(b, "le=\"");
            buf_puts(b, le);
            buf_put(b, "\"", 1);
        }
        buf_put(b, "}", 1);
    }
    buf_put(b, " ", 1);
}

static void render_histogram(struct buf *b, const struct family *f, const struct series *s)
{
    uint64_t cumulative = 0;
    char le[40];
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cumulative += s->buckets[i];
        if (i < f->n_bounds)
            format_double(le, sizeof(le), f->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        put_series_name(b, f->name, "_bucket", s->labels, le);
        put_u64(b, cumulative);
        buf_put(b, "\n", 1);
    }
    put_series_name(b, f->name, "_sum", s->labels, NULL);
    put_double(b, s->sum);
    buf_put(b, "\n", 1);
    put_series_name(b, f->name, "_count", s->labels, NULL);
    put_u64(b, s->count);
    buf_put(b, "\n", 1);
}

int patron_metrics_render(const struct patron_metrics *m, char **out, size_t *len)
{
    struct buf b = {0};
    buf_reserve(&b, 0);
    b.data[0] = '\0';
    for (size_t i = 0; i < m->n_families; i++) {
        const struct family *f = m->families[i];
        buf_puts(&b, "# HELP ");
        buf_puts(&b, f->name);
        buf_put(&b, " ", 1);
        put_help(&b, f->help);
        buf_puts(&b, "\n# TYPE ");
        buf_puts(&b, f->name);
        buf_put(&b, " ", 1);
        buf_puts(&b, TYPE_NAMES[f->type]);
        buf_put(&b, "\n", 1);
        for (size_t j = 0; j < f->n_series; j++) {
            const struct series *s = f->series[j];
            if (f->type == METRIC_HISTOGRAM) {
                render_histogram(&b, f, s);
                continue;
            }
            put_series_name(&b, f->name, "", s->labels, NULL);
            put_double(&b, s->value);
            buf_put(&b, "\n", 1);
        }
    }
    if (b.overflow) {
        free(b.data);
        return PATRON_ETOOBIG;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
