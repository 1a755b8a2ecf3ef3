#include "patron/trend.h"

#include <math.h>

static double exponent(int64_t t_ms)
{
    double e = (double)(t_ms - PATRON_TREND_EPOCH_MS) / (double)PATRON_TREND_HALF_LIFE_MS;
    return e > 1000.0 ? 1000.0 : e < -1000.0 ? -1000.0 : e;
}

double patron_trend_weight(int64_t t_ms)
{
    return exp2(exponent(t_ms));
}

double patron_trend_decayed(double score, int64_t now_ms)
{
    return score / patron_trend_weight(now_ms);
}

/* Whether item i counts in the fit. */
static bool fit_counts(const double *recent, const double *total, const bool *not_a_product,
                       size_t i)
{
    return !(not_a_product && not_a_product[i]) && total[i] > 0 && isfinite(total[i]) &&
           recent[i] >= 0 && isfinite(recent[i]);
}

void patron_momentum_fit(const double *recent, const double *total, const bool *not_a_product,
                         size_t n, struct patron_momentum *out)
{
    *out = (struct patron_momentum){0};
    double sum_r = 0, sum_t = 0;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fit_counts(recent, total, not_a_product, i))
            continue;
        sum_r += recent[i];
        sum_t += total[i];
        kept++;
    }
    if (kept < PATRON_MOMENTUM_MIN_ITEMS || !(sum_r > 0) || !(sum_t > 0))
        return;
    double rate = sum_r / sum_t, excess = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fit_counts(recent, total, not_a_product, i))
            continue;
        double e = rate * total[i], d = recent[i] - e;
        excess += d * d - PATRON_MOMENTUM_DISPERSION * recent[i];
        scale += e * e;
    }
    out->rate = rate;
    if (excess > 0 && scale > 0 && isfinite(excess / scale))
        out->alpha = scale / excess;
}

double patron_momentum_factor(const struct patron_momentum *m, double recent, double total)
{
    if (!m || !(m->alpha > 0) || !(m->rate > 0) || !(total > 0) || !(recent >= 0) ||
        !isfinite(recent) || !isfinite(total))
        return 1.0;
    return (recent + m->alpha) / (m->rate * total + m->alpha);
}
