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
