#include <criterion/criterion.h>
#include <math.h>

#include "patron/trend.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(trend);

#define DAY 86400000LL

Test(trend, weight_doubles_every_half_life)
{
    cr_assert_float_eq(patron_trend_weight(PATRON_TREND_EPOCH_MS), 1.0, 1e-12);
    cr_assert_float_eq(patron_trend_weight(PATRON_TREND_EPOCH_MS + 14 * DAY), 2.0, 1e-12);
    cr_assert_float_eq(patron_trend_weight(PATRON_TREND_EPOCH_MS - 28 * DAY), 0.25, 1e-12);
}

Test(trend, decayed_score_is_what_remains_of_each_purchase)
{
    int64_t t = PATRON_TREND_EPOCH_MS - 3650 * DAY; /* 2010, like Online Retail */
    double score = patron_trend_weight(t) + patron_trend_weight(t + 14 * DAY);
    /* as of t + 14 days: the first purchase counts 1/2, the second 1 */
    cr_assert_float_eq(patron_trend_decayed(score, t + 14 * DAY), 1.5, 1e-9);
}

Test(trend, weights_stay_finite_far_from_the_epoch)
{
    double lo = patron_trend_weight(INT64_MIN / 2), hi = patron_trend_weight(INT64_MAX / 2);
    cr_assert(isfinite(lo) && lo > 0.0);
    cr_assert(isfinite(hi));
    cr_assert(patron_trend_weight(PATRON_TREND_EPOCH_MS + 365 * DAY * 30) <
              patron_trend_weight(PATRON_TREND_EPOCH_MS + 365 * DAY * 31));
}
