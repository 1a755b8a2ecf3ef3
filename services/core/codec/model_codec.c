#include "patron/model_codec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson returns NULL only when out of memory (labels are ASCII, numbers
 * finite or null), and out of memory aborts (common.h). */
static json_t *must(json_t *j)
{
    if (!j)
        abort();
    return j;
}

static void set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, must(value)) < 0)
        abort();
}

static void push(json_t *arr, json_t *value)
{
    if (json_array_append_new(arr, must(value)) < 0)
        abort();
}

static json_t *number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!s)
        abort();
    return s;
}

static json_t *load(const char *s, size_t len)
{
    if (!s || len == 0 || len > PATRON_MODEL_STORED_MAX)
        return NULL;
    json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    if (o && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A finite number field. */
static bool get_number(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool get_int(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool get_u64(const json_t *o, const char *key, uint64_t *out)
{
    int64_t v;
    if (!get_int(o, key, 0, INT64_MAX, &v))
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool version_is(const json_t *o, int64_t want)
{
    int64_t v;
    return get_int(o, "version", want, want, &v);
}

/* ---- the churn and value model ---------------------------------------------------- */

static const char *source_name(const struct patron_clv_model *m)
{
    switch (m->source) {
    case PATRON_CLV_FITTED:
        return "fitted";
    case PATRON_CLV_OVERRIDE:
        return "override";
    default:
        return "default";
    }
}

static json_t *clv_body(const struct patron_clv_model *m, bool stored)
{
    json_t *o = must(json_object());
    bool fitted = m->source == PATRON_CLV_FITTED;
    if (stored)
        set(o, "version", json_integer(PATRON_CLV_MODEL_VERSION));
    else
        set(o, "source", json_string(source_name(m)));
    set(o, "fitted_at_ms", fitted || stored ? json_integer(m->fitted_at_ms) : json_null());
    set(o, "as_of_ms", fitted || stored ? json_integer(m->as_of_ms) : json_null());
    set(o, "customers", json_integer((json_int_t)m->customers));
    set(o, "sample", json_integer((json_int_t)m->sample));
    set(o, "orders", json_integer((json_int_t)m->orders));
    json_t *bands = must(json_array());
    for (size_t i = 0; i < m->n_bands && i < PATRON_CLV_BANDS_MAX; i++) {
        const struct patron_clv_band *b = &m->bands[i];
        json_t *j = must(json_object());
        set(j, "below_cents", number(b->below_cents));
        set(j, "customers", json_integer((json_int_t)b->customers));
        set(j, "r", number(b->bgnbd.r));
        set(j, "alpha", number(b->bgnbd.alpha));
        set(j, "a", number(b->bgnbd.a));
        set(j, "b", number(b->bgnbd.b));
        push(bands, j);
    }
    set(o, "bands", bands);
    json_t *gg = must(json_object());
    set(gg, "p", number(m->gg.p));
    set(gg, "q", number(m->gg.q));
    set(gg, "gamma", number(m->gg.gamma));
    set(o, "gamma_gamma", gg);
    return o;
}

char *patron_clv_model_encode(const struct patron_clv_model *m)
{
    return dump(clv_body(m, true));
}

json_t *patron_clv_model_to_json(const struct patron_clv_model *m)
{
    json_t *o = clv_body(m, false);
    char text[PATRON_CLV_OVERRIDE_MAX];
    int n = patron_clv_model_format(m, text, sizeof(text));
    set(o, "override", n >= 0 ? json_string(text) : json_null());
    return o;
}

int patron_clv_model_decode(const char *s, size_t len, struct patron_clv_model *out)
{
    json_t *o = load(s, len);
    if (!o)
        return PATRON_EINVAL;
    struct patron_clv_model m = {.source = PATRON_CLV_FITTED};
    const json_t *bands = json_object_get(o, "bands"), *gg = json_object_get(o, "gamma_gamma");
    bool ok = version_is(o, PATRON_CLV_MODEL_VERSION) &&
              get_int(o, "fitted_at_ms", INT64_MIN, INT64_MAX, &m.fitted_at_ms) &&
              get_int(o, "as_of_ms", INT64_MIN, INT64_MAX, &m.as_of_ms) &&
              get_u64(o, "customers", &m.customers) && get_u64(o, "sample", &m.sample) &&
              get_u64(o, "orders", &m.orders) && json_is_array(bands) &&
              json_array_size(bands) >= 1 && json_array_size(bands) <= PATRON_CLV_BANDS_MAX &&
              json_is_object(gg) && get_number(gg, "p", &m.gg.p) && get_number(gg, "q", &m.gg.q) &&
              get_number(gg, "gamma", &m.gg.gamma);
    m.n_bands = ok ? json_array_size(bands) : 0;
    for (size_t i = 0; ok && i < m.n_bands; i++) {
        const json_t *b = json_array_get(bands, i);
        struct patron_clv_band *band = &m.bands[i];
        bool last = i + 1 == m.n_bands;
        ok = json_is_object(b) && get_number(b, "r", &band->bgnbd.r) &&
             get_number(b, "alpha", &band->bgnbd.alpha) && get_number(b, "a", &band->bgnbd.a) &&
             get_number(b, "b", &band->bgnbd.b) && get_u64(b, "customers", &band->customers);
        if (ok && last)
            ok = json_is_null(json_object_get(b, "below_cents"));
        if (ok)
            band->below_cents = last ? INFINITY : 0;
        if (ok && !last)
            ok = get_number(b, "below_cents", &band->below_cents);
    }
    json_decref(o);
    if (!ok || !patron_clv_model_valid(&m))
        return PATRON_EINVAL;
    *out = m;
    return 0;
}

/* ---- PATRON_CLV_MODEL ------------------------------------------------------------------ */

static void why_set(char *why, size_t whylen, const char *fmt, ...) PATRON_PRINTF(3, 4);
static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* n comma-separated positive finite numbers from *p, which moves past them. */
static bool numbers(const char **p, double *out, int n)
{
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            if (**p != ',')
                return false;
            (*p)++;
        }
        if (**p == '\0' || **p == ' ' || **p == '+' || **p == '-')
            return false;
        errno = 0;
        char *end;
        double v = strtod(*p, &end);
        if (end == *p || errno || !isfinite(v) || !(v > 0))
            return false;
        out[i] = v;
        *p = end;
    }
    return true;
}

int patron_clv_model_parse(const char *text, struct patron_clv_model *out, char *why, size_t whylen)
{
    if (!text || strlen(text) >= PATRON_CLV_OVERRIDE_MAX) {
        why_set(why, whylen, "expected r,alpha,a,b,p,q,gamma[;from_cents:r,alpha,a,b]...");
        return PATRON_EINVAL;
    }
    struct patron_clv_model m = {.source = PATRON_CLV_OVERRIDE};
    const char *p = text;
    double v[7];
    if (!numbers(&p, v, 7)) {
        why_set(why, whylen, "expected r,alpha,a,b,p,q,gamma: seven positive numbers");
        return PATRON_EINVAL;
    }
    m.bands[0].bgnbd = (struct patron_bgnbd){v[0], v[1], v[2], v[3]};
    m.gg = (struct patron_gamma_gamma){v[4], v[5], v[6]};
    m.n_bands = 1;
    while (*p == ';') {
        p++;
        if (m.n_bands == PATRON_CLV_BANDS_MAX) {
            why_set(why, whylen, "at most %d bands", PATRON_CLV_BANDS_MAX);
            return PATRON_EINVAL;
        }
        double from, g[4];
        if (!numbers(&p, &from, 1) || *p++ != ':' || !numbers(&p, g, 4)) {
            why_set(why, whylen, "band %zu: expected from_cents:r,alpha,a,b", m.n_bands + 1);
            return PATRON_EINVAL;
        }
        m.bands[m.n_bands - 1].below_cents = from;
        m.bands[m.n_bands].bgnbd = (struct patron_bgnbd){g[0], g[1], g[2], g[3]};
        m.n_bands++;
    }
    m.bands[m.n_bands - 1].below_cents = INFINITY;
    if (*p != '\0') {
        why_set(why, whylen, "unexpected text at byte %zu", (size_t)(p - text));
        return PATRON_EINVAL;
    }
    if (!patron_clv_model_valid(&m)) {
        why_set(why, whylen, "band bounds must increase");
        return PATRON_EINVAL;
    }
    *out = m;
    return 0;
}

/* The shortest of %.15g, %.16g, %.17g that reads back exactly. */
static void shortest(double v, char *buf, size_t cap)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

int patron_clv_model_format(const struct patron_clv_model *m, char *dst, size_t cap)
{
    if (!patron_clv_model_valid(m))
        return PATRON_EINVAL;
    char v[7][32];
    const struct patron_bgnbd *g = &m->bands[0].bgnbd;
    const double first[7] = {g->r, g->alpha, g->a, g->b, m->gg.p, m->gg.q, m->gg.gamma};
    for (int i = 0; i < 7; i++)
        shortest(first[i], v[i], sizeof(v[i]));
    int n = snprintf(dst, cap, "%s,%s,%s,%s,%s,%s,%s", v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    for (size_t i = 1; n >= 0 && (size_t)n < cap && i < m->n_bands; i++) {
        g = &m->bands[i].bgnbd;
        const double band[5] = {m->bands[i - 1].below_cents, g->r, g->alpha, g->a, g->b};
        for (int j = 0; j < 5; j++)
            shortest(band[j], v[j], sizeof(v[j]));
        int k = snprintf(dst + n, cap - (size_t)n, ";%s:%s,%s,%s,%s", v[0], v[1], v[2], v[3], v[4]);
        n = k < 0 ? k : n + k;
    }
    if (n < 0 || (size_t)n >= cap)
        return PATRON_ETOOBIG;
    return n;
}

/* ---- clusters ---------------------------------------------------------------------------- */

static json_t *triple(const double v[PATRON_CLUSTER_DIM])
{
    json_t *a = must(json_array());
    for (int j = 0; j < PATRON_CLUSTER_DIM; j++)
        push(a, number(v[j]));
    return a;
}

static json_t *centroid(const struct patron_cluster_features *f)
{
    json_t *o = must(json_object());
    set(o, "recency_days", number(f->recency_days));
    set(o, "orders", number(f->orders));
    set(o, "net_spend_cents", number(f->net_spend_cents));
    return o;
}

static json_t *clusters_body(const struct patron_clusters *c, bool stored)
{
    json_t *o = must(json_object());
    if (stored) {
        set(o, "version", json_integer(PATRON_CLUSTERS_VERSION));
        set(o, "fitted_at_ms", json_integer(c->fitted_at_ms));
        set(o, "customers", json_integer((json_int_t)c->customers));
        set(o, "sample", json_integer((json_int_t)c->sample));
        set(o, "mean", triple(c->mean));
        set(o, "sd", triple(c->sd));
    }
    set(o, "k", json_integer(c->k));
    set(o, "as_of_ms", json_integer(c->as_of_ms));
    json_t *list = must(json_array());
    for (int i = 0; i < c->k && i < PATRON_CLUSTERS_MAX; i++) {
        const struct patron_cluster *cl = &c->c[i];
        json_t *j = must(json_object());
        set(j, "id", json_integer(i));
        set(j, "label", json_string(cl->label));
        set(j, "size", json_integer((json_int_t)cl->size));
        set(j, "centroid", centroid(&cl->centroid));
        if (stored)
            set(j, "z", triple(cl->z));
        push(list, j);
    }
    set(o, "clusters", list);
    set(o, "silhouette", c->has_silhouette ? number(c->silhouette) : json_null());
    return o;
}

char *patron_clusters_encode(const struct patron_clusters *c)
{
    return dump(clusters_body(c, true));
}

json_t *patron_clusters_to_json(const struct patron_clusters *c)
{
    return clusters_body(c, false);
}

static bool get_triple(const json_t *o, const char *key, double out[PATRON_CLUSTER_DIM])
{
    const json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) != PATRON_CLUSTER_DIM)
        return false;
    for (size_t j = 0; j < PATRON_CLUSTER_DIM; j++) {
        const json_t *v = json_array_get(a, j);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return false;
        out[j] = json_number_value(v);
    }
    return true;
}

int patron_clusters_decode(const char *s, size_t len, struct patron_clusters *out)
{
    json_t *o = load(s, len);
    if (!o)
        return PATRON_EINVAL;
    struct patron_clusters c = {0};
    int64_t k = 0;
    const json_t *list = json_object_get(o, "clusters"), *sil = json_object_get(o, "silhouette");
    bool ok = version_is(o, PATRON_CLUSTERS_VERSION) &&
              get_int(o, "fitted_at_ms", INT64_MIN, INT64_MAX, &c.fitted_at_ms) &&
              get_int(o, "as_of_ms", INT64_MIN, INT64_MAX, &c.as_of_ms) &&
              get_u64(o, "customers", &c.customers) && get_u64(o, "sample", &c.sample) &&
              get_triple(o, "mean", c.mean) && get_triple(o, "sd", c.sd) &&
              get_int(o, "k", 1, PATRON_CLUSTERS_MAX, &k) && json_is_array(list) &&
              json_array_size(list) == (size_t)k;
    if (ok && json_is_null(sil)) {
        c.has_silhouette = false;
    } else if (ok) {
        c.has_silhouette = true;
        ok = get_number(o, "silhouette", &c.silhouette) && c.silhouette >= -1 && c.silhouette <= 1;
    }
    for (int j = 0; ok && j < PATRON_CLUSTER_DIM; j++)
        ok = c.sd[j] > 0;
    c.k = (int)k;
    for (int i = 0; ok && i < c.k; i++) {
        const json_t *e = json_array_get(list, (size_t)i), *cen = json_object_get(e, "centroid");
        const json_t *label = json_object_get(e, "label");
        struct patron_cluster *cl = &c.c[i];
        int64_t id;
        ok = json_is_object(e) && get_int(e, "id", i, i, &id) && json_is_string(label) &&
             json_string_length(label) >= 1 &&
             json_string_length(label) <= PATRON_CLUSTER_LABEL_MAX &&
             strlen(json_string_value(label)) == json_string_length(label) &&
             get_u64(e, "size", &cl->size) && get_triple(e, "z", cl->z) && json_is_object(cen) &&
             get_number(cen, "recency_days", &cl->centroid.recency_days) &&
             get_number(cen, "orders", &cl->centroid.orders) &&
             get_number(cen, "net_spend_cents", &cl->centroid.net_spend_cents);
        if (ok)
            memcpy(cl->label, json_string_value(label), json_string_length(label) + 1);
    }
    json_decref(o);
    if (!ok)
        return PATRON_EINVAL;
    *out = c;
    return 0;
}
