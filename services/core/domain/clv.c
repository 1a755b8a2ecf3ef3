#include "patron/clv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/optim.h"
#include "patron/profile.h"

#define DAY_MS 86400000.0
/* Repeat counts up to this get their likelihood terms from a table built
 * once per evaluation (3 logs per count); larger ones call lgamma. */
#define X_TABLE 256
/* Log-parameters are searched within [-LOG_BOUND, LOG_BOUND]: e^30 is far
 * beyond any meaningful parameter, yet keeps every expression finite. */
#define LOG_BOUND 30.0
/* Summaries are clamped to these, so that no input can make the
 * arithmetic overflow: 10^7 orders, 10^6 days (2,700 years). */
#define X_MAX 1e7
#define DAYS_MAX 1e6

void patron_clv_model_default(struct patron_clv_model *m)
{
    *m = (struct patron_clv_model){
        .n_bands = 1,
        .bands = {{.below_cents = INFINITY,
                   .bgnbd = {.r = 0.243, .alpha = 4.414 * 7.0, .a = 0.793, .b = 2.426}}},
        .gg = {.p = 6.25, .q = 3.74, .gamma = 1544.0},
        .source = PATRON_CLV_DEFAULT,
    };
}

static bool positive(double v)
{
    return isfinite(v) && v > 0;
}

bool patron_clv_model_valid(const struct patron_clv_model *m)
{
    if (m->n_bands < 1 || m->n_bands > PATRON_CLV_BANDS_MAX)
        return false;
    if (!positive(m->gg.p) || !positive(m->gg.q) || !positive(m->gg.gamma))
        return false;
    for (size_t i = 0; i < m->n_bands; i++) {
        const struct patron_clv_band *b = &m->bands[i];
        bool last = i + 1 == m->n_bands;
        if (last ? !(b->below_cents == INFINITY) : !positive(b->below_cents))
            return false;
        if (i > 0 && !(b->below_cents > m->bands[i - 1].below_cents))
            return false;
        if (!positive(b->bgnbd.r) || !positive(b->bgnbd.alpha) || !positive(b->bgnbd.a) ||
            !positive(b->bgnbd.b))
            return false;
    }
    return true;
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

bool patron_clv_summary_at(int64_t orders, int64_t first_purchase_ms, int64_t last_purchase_ms,
                           int64_t net_spend_cents, int64_t now_ms, struct patron_clv_customer *out)
{
    if (last_purchase_ms <= 0 || orders < 1)
        return false;
    double last = (double)last_purchase_ms;
    double first = first_purchase_ms > 0 ? (double)first_purchase_ms : last;
    if (first > last)
        first = last;
    double t_x = clamp((last - first) / DAY_MS, 0, DAYS_MAX);
    double T = clamp(((double)now_ms - first) / DAY_MS, t_x, DAYS_MAX);
    double spend = net_spend_cents > 0 ? (double)net_spend_cents : 0.0;
    *out = (struct patron_clv_customer){
        .x = clamp((double)(orders - 1), 0, X_MAX),
        .t_x = t_x,
        .T = T,
        .m = spend / (double)orders,
    };
    return true;
}

bool patron_clv_summary_of(const struct patron_profile *p, int64_t now_ms,
                           struct patron_clv_customer *out)
{
    return patron_clv_summary_at(p->orders, p->first_purchase_ms, p->last_purchase_ms,
                                 p->net_spend_cents, now_ms, out);
}

const struct patron_clv_band *patron_clv_band_of(const struct patron_clv_model *m, double m_cents)
{
    size_t n = m->n_bands >= 1 && m->n_bands <= PATRON_CLV_BANDS_MAX ? m->n_bands : 1;
    for (size_t i = 0; i + 1 < n; i++)
        if (m_cents < m->bands[i].below_cents)
            return &m->bands[i];
    return &m->bands[n - 1];
}

/* log(1 + e^v) without overflow. */
static double softplus(double v)
{
    return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

/* ---- BG/NBD ------------------------------------------------------------------- */

/* log of the ratio of eq. (6)'s second term to its first, x > 0:
 * B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1), times ((alpha+T)/(alpha+t_x))^(r+x). */
static double dead_vs_alive(const struct patron_bgnbd *g, const struct patron_clv_customer *c)
{
    double rx = g->r + c->x;
    return log(g->a) - log(g->b + c->x - 1.0) +
           rx * (log(g->alpha + c->T) - log(g->alpha + c->t_x));
}

double patron_bgnbd_log_likelihood(const struct patron_bgnbd *g,
                                   const struct patron_clv_customer *c)
{
    double r = g->r, al = g->alpha, a = g->a, b = g->b, x = c->x;
    /* eq. (6): B(a, b+x)/B(a, b) G(r+x) al^r / (G(r) (al+T)^(r+x)) [1 + ratio] */
    double first = lgamma(r + x) - lgamma(r) + r * log(al) + lgamma(b + x) - lgamma(a + b + x) -
                   lgamma(b) + lgamma(a + b) - (r + x) * log(al + c->T);
    return x > 0 ? first + softplus(dead_vs_alive(g, c)) : first;
}

double patron_bgnbd_p_alive(const struct patron_bgnbd *g, const struct patron_clv_customer *c)
{
    if (!(c->x > 0))
        return 1.0;
    /* eq. (13) = 1 / (1 + e^d) */
    double d = dead_vs_alive(g, c);
    return d > 0 ? exp(-d) / (1.0 + exp(-d)) : 1.0 / (1.0 + exp(d));
}

double patron_bgnbd_p_no_purchase(const struct patron_bgnbd *g, const struct patron_clv_customer *c,
                                  double h_days)
{
    double alive = patron_bgnbd_p_alive(g, c);
    double A = g->alpha + c->T;
    double none_if_alive = exp(-(g->r + c->x) * log1p(h_days / A));
    return clamp(1.0 - alive + alive * none_if_alive, 0, 1);
}

/* E_p[h(p)], p ~ Beta(a, bp), h(p) = (1 - (1 + p k)^-s) / p, the expected
 * purchases in the window of a customer alive now (lambda integrated out:
 * lambda ~ Gamma(s, alpha + T), k = h_days / (alpha + T)).
 *
 * In y = logit(p) the Beta density is f(y) = exp(a y - (a + bp) log(1 +
 * e^y)) / B(a, bp): smooth, log-concave, with exponential tails and
 * poles at y = +-i pi, so the trapezoidal rule converges geometrically
 * (error ~ e^(-2 pi^2 / step)). The range is where log f is within 46 of
 * its peak (found by bisection); the step is min(0.5, sd / 2), sd the
 * curvature's at the mode. When a is small the left tail is long but
 * there p k s is negligible, h(p) = s k and f(y) = e^(a y) / B: that part
 * is integrated exactly (cut at y0, with the Euler-Maclaurin end
 * correction). */
#define TAIL_DROP 46.0
#define STEPS_MAX 4000

static double logit_beta_log_density(double y, double a, double bp, double log_beta)
{
    return a * y - (a + bp) * softplus(y) - log_beta;
}

static double edge(double mode, double sign, double a, double bp, double log_beta, double sd)
{
    double target = logit_beta_log_density(mode, a, bp, log_beta) - TAIL_DROP;
    double hi = sd > 0 && isfinite(sd) ? sd : 1.0;
    for (int i = 0; i < 200 && logit_beta_log_density(mode + sign * hi, a, bp, log_beta) > target;
         i++)
        hi *= 2;
    double lo = 0;
    for (int i = 0; i < 60; i++) {
        double mid = 0.5 * (lo + hi);
        if (logit_beta_log_density(mode + sign * mid, a, bp, log_beta) > target)
            lo = mid;
        else
            hi = mid;
    }
    return mode + sign * hi;
}

static double integrand(double y, double s, double k, double a, double bp, double log_beta)
{
    double p = 1.0 / (1.0 + exp(-y));
    double h = p > 0 ? -expm1(-s * log1p(p * k)) / p : s * k;
    return h * exp(logit_beta_log_density(y, a, bp, log_beta));
}

static double expected_if_alive(double s, double k, double a, double bp)
{
    double log_beta = lgamma(a) + lgamma(bp) - lgamma(a + bp);
    double mode = log(a / bp);
    double sd = sqrt((a + bp) / (a * bp));
    double y_lo = edge(mode, -1, a, bp, log_beta, sd), y_hi = edge(mode, 1, a, bp, log_beta, sd);
    /* below y0, (a + bp) e^y and p k (s + 1) are under 1e-12 */
    double big = fmax(a + bp, k * (s + 1.0));
    double y0 = log(1e-12) - log(big);
    double start = y_lo > y0 ? y_lo : y0;
    if (!(y_hi > start))
        return s * k; /* the mass sits where p k is negligible */
    double step = fmin(0.5, sd / 2);
    double n = ceil((y_hi - start) / step);
    if (!(n <= STEPS_MAX))
        n = STEPS_MAX;
    if (n < 8)
        n = 8;
    step = (y_hi - start) / n;
    double sum =
        0.5 * (integrand(start, s, k, a, bp, log_beta) + integrand(y_hi, s, k, a, bp, log_beta));
    for (int i = 1; i < (int)n; i++)
        sum += integrand(start + i * step, s, k, a, bp, log_beta);
    sum *= step;
    if (y_lo < y0) {
        double g0 = integrand(y0, s, k, a, bp, log_beta);
        sum += s * k * exp(a * y0 - log_beta) / a + step * step / 12.0 * a * g0;
    }
    return sum;
}

double patron_bgnbd_expected_purchases(const struct patron_bgnbd *g,
                                       const struct patron_clv_customer *c, double h_days)
{
    if (!(h_days > 0))
        return 0;
    double s = g->r + c->x, k = h_days / (g->alpha + c->T);
    double e = expected_if_alive(s, k, g->a, g->b + c->x);
    double v = patron_bgnbd_p_alive(g, c) * e;
    return isfinite(v) && v > 0 ? v : 0;
}

/* ---- Gamma-Gamma ---------------------------------------------------------------- */

double patron_gg_log_likelihood(const struct patron_gamma_gamma *gg, double n, double m)
{
    double pn = gg->p * n;
    return lgamma(pn + gg->q) - lgamma(pn) - lgamma(gg->q) + gg->q * log(gg->gamma) +
           (pn - 1) * log(m) + pn * log(n) - (pn + gg->q) * log(gg->gamma + m * n);
}

double patron_gg_expected_spend(const struct patron_gamma_gamma *gg, double n, double m)
{
    double den = gg->p * n + gg->q - 1.0;
    double v = den > 0 ? gg->p * (gg->gamma + n * m) / den : m;
    return isfinite(v) && v > 0 ? v : (m > 0 ? m : 0);
}

void patron_clv_predict(const struct patron_clv_model *m, const struct patron_clv_customer *c,
                        double churn_horizon_days, double value_horizon_days,
                        struct patron_clv_prediction *out)
{
    const struct patron_bgnbd *g = &patron_clv_band_of(m, c->m)->bgnbd;
    out->p_alive = patron_bgnbd_p_alive(g, c);
    out->p_no_purchase = patron_bgnbd_p_no_purchase(g, c, churn_horizon_days);
    out->expected_orders = patron_bgnbd_expected_purchases(g, c, value_horizon_days);
    out->spend_per_order = patron_gg_expected_spend(&m->gg, c->x + 1.0, c->m);
    out->value_cents = out->expected_orders * out->spend_per_order;
}

void patron_clv_view_of(const struct patron_profile *p, int64_t now_ms,
                        const struct patron_clv_model *m, int64_t churn_horizon_days,
                        struct patron_clv_view *out)
{
    struct patron_clv_customer c;
    if (!patron_clv_summary_of(p, now_ms, &c)) {
        *out = (struct patron_clv_view){.churn_risk = 1.0, .p_alive = NAN};
        return;
    }
    struct patron_clv_prediction pr;
    double horizon = churn_horizon_days > 0 ? (double)churn_horizon_days : 1.0;
    patron_clv_predict(m, &c, horizon, PATRON_CLV_VALUE_HORIZON_DAYS, &pr);
    double value = round(pr.value_cents);
    *out = (struct patron_clv_view){
        .purchased = true,
        .churn_risk = pr.p_no_purchase,
        .p_alive = pr.p_alive,
        .expected_orders_12m = pr.expected_orders,
        /* 2^63 is exactly representable; at or above it saturates */
        .predicted_value_12m_cents = !(value > 0)                     ? 0
                                     : value >= 9223372036854775808.0 ? INT64_MAX
                                                                      : (int64_t)value,
    };
}

/* ---- churn risk through time --------------------------------------------------- */

double patron_clv_churn_risk_at(const struct patron_clv_model *m,
                                const struct patron_clv_history *h, double horizon_days,
                                int64_t now_ms)
{
    struct patron_clv_customer c;
    if (!patron_clv_summary_at(h->orders, h->first_purchase_ms, h->last_purchase_ms,
                               h->net_spend_cents, now_ms, &c))
        return 1.0;
    return patron_bgnbd_p_no_purchase(&patron_clv_band_of(m, c.m)->bgnbd, &c, horizon_days);
}

int64_t patron_clv_churn_crossing(const struct patron_clv_model *m,
                                  const struct patron_clv_history *h, double horizon_days,
                                  double threshold, int64_t after_ms)
{
    if (h->last_purchase_ms <= 0 || h->orders < 1 || after_ms >= PATRON_TIME_MAX_MS)
        return INT64_MAX;
    /* lo: at or below the threshold; hi: above it */
    int64_t lo = after_ms, hi = PATRON_TIME_MAX_MS;
    if (patron_clv_churn_risk_at(m, h, horizon_days, lo + 1) > threshold)
        return lo + 1;
    if (!(patron_clv_churn_risk_at(m, h, horizon_days, hi) > threshold))
        return INT64_MAX;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (patron_clv_churn_risk_at(m, h, horizon_days, mid) > threshold)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* ---- the fits ----------------------------------------------------------------- */

struct fit_ctx {
    const struct patron_clv_customer *c;
    size_t n;
};

/* The parameters of a log-parameter vector, clamped; *penalty grows with
 * the distance outside the bounds, so that the simplex comes back. */
static double unpack(const double *theta, int dim, double *out)
{
    double penalty = 0;
    for (int i = 0; i < dim; i++) {
        double t = clamp(theta[i], -LOG_BOUND, LOG_BOUND);
        penalty += (theta[i] - t) * (theta[i] - t);
        out[i] = exp(t);
    }
    return 1e3 * penalty;
}

/* -sum log L of eq. (6). Terms that depend on x alone come from a table:
 * A[x] = log[G(r+x)/G(r)] + log[B(a, b+x)/B(a, b)], built by
 * A[x+1] = A[x] + log(r+x) + log(b+x) - log(a+b+x). */
static double bgnbd_nll(const double *theta, void *ud)
{
    const struct fit_ctx *f = ud;
    double v[4];
    double penalty = unpack(theta, 4, v);
    struct patron_bgnbd g = {v[0], v[1], v[2], v[3]};
    double A[X_TABLE + 1], D[X_TABLE + 1];
    A[0] = 0;
    D[0] = 0;
    for (int x = 0; x < X_TABLE; x++) {
        A[x + 1] = A[x] + log(g.r + x) + log(g.b + x) - log(g.a + g.b + x);
        D[x + 1] = log(g.a) - log(g.b + x); /* log a/(b+x-1) for x+1 */
    }
    double log_alpha = log(g.alpha), sum = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct patron_clv_customer *c = &f->c[i];
        if (!(c->x <= X_TABLE) || c->x != floor(c->x)) {
            sum += patron_bgnbd_log_likelihood(&g, c);
            continue;
        }
        int x = (int)c->x;
        double rx = g.r + x, lT = log(g.alpha + c->T);
        double ll = A[x] + g.r * log_alpha - rx * lT;
        if (x > 0)
            ll += softplus(D[x] + rx * (lT - log(g.alpha + c->t_x)));
        sum += ll;
    }
    return -sum + penalty;
}

static const struct patron_optim_options FIT_OPTIONS = {
    .step = 1.0, .ftol = 1e-10, .xtol = 1e-6, .max_evals = 4000, .max_restarts = 4};

struct patron_bgnbd patron_bgnbd_fit(const struct patron_clv_customer *c, size_t n)
{
    struct fit_ctx f = {c, n};
    double mean_T = 0;
    for (size_t i = 0; i < n; i++)
        mean_T += c[i].T / (double)n;
    mean_T = fmax(mean_T, 1.0);
    /* two starts: a neutral one, and FHL 2005a's CDNOW estimates with
     * alpha scaled to the customers' mean age */
    const double starts[2][4] = {{1.0, mean_T, 1.0, 1.0}, {0.25, mean_T / 8, 0.8, 2.5}};
    double best[4] = {0}, best_f = INFINITY;
    for (int s = 0; s < 2; s++) {
        double th[4], fv;
        for (int j = 0; j < 4; j++)
            th[j] = log(starts[s][j]);
        if (patron_optim_nelder_mead(bgnbd_nll, &f, th, 4, &FIT_OPTIONS, &fv) < 0)
            continue;
        if (fv < best_f) {
            best_f = fv;
            memcpy(best, th, sizeof(best));
        }
    }
    double v[4];
    (void)unpack(best, 4, v);
    return (struct patron_bgnbd){v[0], v[1], v[2], v[3]};
}

static bool gg_usable(const struct patron_clv_customer *c)
{
    return c->x >= 1 && c->m > 0 && isfinite(c->m);
}

/* -sum of the Gamma-Gamma log densities over the repeaters (n = x + 1 orders
 * of mean m); lgamma(p n + q) - lgamma(p n) + p n log n from a table by n. */
static double gg_nll(const double *theta, void *ud)
{
    const struct fit_ctx *f = ud;
    double v[3];
    double penalty = unpack(theta, 3, v);
    struct patron_gamma_gamma gg = {v[0], v[1], v[2]};
    double T[X_TABLE + 2];
    for (int n = 1; n <= X_TABLE + 1; n++)
        T[n] = lgamma(gg.p * n + gg.q) - lgamma(gg.p * n) + gg.p * n * log((double)n);
    double base = -lgamma(gg.q) + gg.q * log(gg.gamma), sum = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct patron_clv_customer *c = &f->c[i];
        if (!gg_usable(c))
            continue;
        double n = c->x + 1.0;
        if (!(c->x <= X_TABLE) || c->x != floor(c->x)) {
            sum += patron_gg_log_likelihood(&gg, n, c->m);
            continue;
        }
        double pn = gg.p * n;
        sum += T[(int)n] + base + (pn - 1) * log(c->m) - (pn + gg.q) * log(gg.gamma + c->m * n);
    }
    return -sum + penalty;
}

struct patron_gamma_gamma patron_gg_fit(const struct patron_clv_customer *c, size_t n)
{
    struct fit_ctx f = {c, n};
    double mean = 0;
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        if (gg_usable(&c[i])) {
            mean += c[i].m;
            used++;
        }
    if (used < 10) {
        struct patron_clv_model d;
        patron_clv_model_default(&d);
        return d.gg;
    }
    mean /= (double)used;
    /* starts on the ridge p gamma / (q - 1) = the mean, where the
     * likelihood is long and flat */
    double best[3] = {0}, best_f = INFINITY;
    const double ps[2] = {1.0, 5.0}, qs[2] = {2.0, 5.0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double th[3] = {log(ps[i]), log(qs[j]), log(mean * (qs[j] - 1) / ps[i])}, fv;
            if (patron_optim_nelder_mead(gg_nll, &f, th, 3, &FIT_OPTIONS, &fv) < 0)
                continue;
            if (fv < best_f) {
                best_f = fv;
                memcpy(best, th, sizeof(best));
            }
        }
    double v[3];
    (void)unpack(best, 3, v);
    return (struct patron_gamma_gamma){v[0], v[1], v[2]};
}

static int by_m(const void *pa, const void *pb)
{
    const struct patron_clv_customer *a = pa, *b = pb;
    if (a->m != b->m)
        return a->m < b->m ? -1 : 1;
    if (a->T != b->T)
        return a->T < b->T ? -1 : 1;
    if (a->x != b->x)
        return a->x < b->x ? -1 : 1;
    return a->t_x < b->t_x ? -1 : a->t_x > b->t_x;
}

/* Whether [lo, hi) of the sorted copy can be a band. */
static bool band_ok(const struct patron_clv_customer *c, size_t lo, size_t hi)
{
    if (hi - lo < PATRON_CLV_BAND_MIN_CUSTOMERS)
        return false;
    size_t repeaters = 0;
    for (size_t i = lo; i < hi; i++)
        repeaters += c[i].x > 0;
    return repeaters >= PATRON_CLV_BAND_MIN_REPEATERS;
}

/* Band cuts at the quantiles of m, moved up past ties so that equal m
 * share a band; false if some band would be too small. */
static bool cut_bands(const struct patron_clv_customer *c, size_t n, size_t bands, size_t *cuts)
{
    cuts[0] = 0;
    for (size_t i = 1; i < bands; i++) {
        size_t k = n * i / bands;
        while (k < n && k > 0 && c[k].m == c[k - 1].m)
            k++;
        cuts[i] = k;
    }
    cuts[bands] = n;
    for (size_t i = 0; i < bands; i++)
        if (cuts[i + 1] <= cuts[i] || !band_ok(c, cuts[i], cuts[i + 1]))
            return false;
    return true;
}

int patron_clv_fit(const struct patron_clv_customer *c, size_t n, size_t bands,
                   struct patron_clv_model *out)
{
    if (n == 0 || bands < 1 || bands > PATRON_CLV_BANDS_MAX)
        return PATRON_EINVAL;
    struct patron_clv_customer *s = patron_malloc(n * sizeof(*s));
    memcpy(s, c, n * sizeof(*s));
    qsort(s, n, sizeof(*s), by_m);
    size_t cuts[PATRON_CLV_BANDS_MAX + 1];
    while (bands > 1 && !cut_bands(s, n, bands, cuts))
        bands--;
    if (bands == 1) {
        cuts[0] = 0;
        cuts[1] = n;
    }
    struct patron_clv_model m = {.n_bands = bands, .source = PATRON_CLV_FITTED};
    for (size_t i = 0; i < bands; i++) {
        struct patron_clv_band *b = &m.bands[i];
        b->bgnbd = patron_bgnbd_fit(s + cuts[i], cuts[i + 1] - cuts[i]);
        b->customers = cuts[i + 1] - cuts[i];
        b->below_cents = i + 1 < bands ? s[cuts[i + 1]].m : INFINITY;
    }
    m.gg = patron_gg_fit(s, n);
    free(s);
    *out = m;
    return 0;
}
