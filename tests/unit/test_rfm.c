#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "patron/clv.h"
#include "patron/profile.h"
#include "patron/rfm.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(rfm);

#define DAY INT64_C(86400000)
#define NOW INT64_C(1700000000000) /* 2023-11-14T22:13:20Z */

static struct patron_profile_config defcfg(void)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    return c;
}

static struct patron_profile with_purchase(int64_t last_purchase_ms, int64_t orders,
                                           int64_t net_spend)
{
    struct patron_profile p;
    patron_profile_init(&p, "c");
    p.last_purchase_ms = last_purchase_ms;
    p.first_purchase_ms = last_purchase_ms;
    p.orders = orders;
    p.net_spend_cents = net_spend;
    return p;
}

/* Every recency boundary, in whole days and at the millisecond around it. */
Test(rfm, recency_boundaries)
{
    static const struct {
        int64_t ago_ms;
        int days, r;
    } rows[] = {
        {0, 0, 5},
        {14 * DAY, 14, 5},
        {15 * DAY - 1, 14, 5},
        {15 * DAY, 15, 4},
        {30 * DAY, 30, 4},
        {31 * DAY - 1, 30, 4},
        {31 * DAY, 31, 3},
        {90 * DAY, 90, 3},
        {91 * DAY, 91, 2},
        {180 * DAY, 180, 2},
        {181 * DAY - 1, 180, 2},
        {181 * DAY, 181, 1},
        {10000 * DAY, 10000, 1},
        {-5 * DAY, 0, 5}, /* clock behind the purchase: today */
    };
    struct patron_profile_config c = defcfg();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile p = with_purchase(NOW - rows[i].ago_ms, 1, 0);
        struct patron_rfm rfm = patron_rfm_score(&p, NOW, &c);
        cr_expect_eq(rfm.recency_days, rows[i].days, "row %zu", i);
        cr_expect_eq(rfm.r, rows[i].r, "row %zu", i);
    }
}

Test(rfm, no_purchase_has_no_recency_and_r_1)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p;
    patron_profile_init(&p, "c");
    struct patron_rfm rfm = patron_rfm_score(&p, NOW, &c);
    cr_expect_eq(rfm.recency_days, -1);
    cr_expect_eq(rfm.r, 1);
    cr_expect_eq(rfm.f, 1);
    cr_expect_eq(rfm.m, 1);
}

Test(rfm, frequency_boundaries)
{
    static const struct {
        int64_t orders;
        int f;
    } rows[] = {{0, 1},  {1, 1},  {2, 2},  {4, 2},         {5, 3}, {9, 3},
                {10, 4}, {19, 4}, {20, 5}, {INT64_MAX, 5}, {-3, 1}};
    struct patron_profile_config c = defcfg();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile p = with_purchase(NOW, rows[i].orders, 0);
        cr_expect_eq(patron_rfm_score(&p, NOW, &c).f, rows[i].f, "row %zu", i);
    }
}

Test(rfm, monetary_boundaries)
{
    static const struct {
        int64_t cents;
        int m;
    } rows[] = {{INT64_MIN, 1}, {-1, 1},    {0, 1},      {9999, 1},   {10000, 2},  {29999, 2},
                {30000, 3},     {99999, 3}, {100000, 4}, {499999, 4}, {500000, 5}, {INT64_MAX, 5}};
    struct patron_profile_config c = defcfg();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile p = with_purchase(NOW, 1, rows[i].cents);
        cr_expect_eq(patron_rfm_score(&p, NOW, &c).m, rows[i].m, "row %zu", i);
    }
}

Test(rfm, thresholds_come_from_the_configuration)
{
    struct patron_profile_config c = defcfg();
    const int64_t rec[4] = {1, 2, 3, 4}, fre[4] = {4, 3, 2, 1}, mon[4] = {40, 30, 20, 10};
    memcpy(c.rfm_recency_days, rec, sizeof(rec));
    memcpy(c.rfm_frequency, fre, sizeof(fre));
    memcpy(c.rfm_monetary_cents, mon, sizeof(mon));
    struct patron_profile p = with_purchase(NOW - 3 * DAY, 3, 25);
    struct patron_rfm rfm = patron_rfm_score(&p, NOW, &c);
    cr_expect_eq(rfm.r, 3);
    cr_expect_eq(rfm.f, 4);
    cr_expect_eq(rfm.m, 3);
}

/* Segment rules, first match wins: one row per rule, plus the rows where an
 * earlier rule shadows a later one. */
Test(rfm, segment_rules_in_order)
{
    static const struct {
        int r, f;
        int64_t orders;
        enum patron_segment expect;
    } rows[] = {
        {5, 1, 1, PATRON_SEGMENT_NEW},
        {4, 1, 1, PATRON_SEGMENT_NEW},
        {3, 1, 1, PATRON_SEGMENT_NEEDS_ATTENTION}, /* 1 order but R 3 */
        {5, 5, 1, PATRON_SEGMENT_NEW},             /* new before champion */
        {5, 4, 10, PATRON_SEGMENT_CHAMPION},
        {4, 5, 30, PATRON_SEGMENT_CHAMPION},
        {4, 3, 5, PATRON_SEGMENT_LOYAL},
        {3, 3, 5, PATRON_SEGMENT_LOYAL},
        {3, 5, 20, PATRON_SEGMENT_LOYAL},
        {2, 3, 5, PATRON_SEGMENT_AT_RISK},
        {1, 5, 20, PATRON_SEGMENT_AT_RISK},
        {5, 2, 2, PATRON_SEGMENT_PROMISING},
        {4, 1, 0, PATRON_SEGMENT_PROMISING},
        {2, 2, 2, PATRON_SEGMENT_HIBERNATING},
        {2, 1, 1, PATRON_SEGMENT_HIBERNATING},
        {1, 2, 2, PATRON_SEGMENT_LOST},
        {1, 1, 0, PATRON_SEGMENT_LOST},
        {3, 2, 2, PATRON_SEGMENT_NEEDS_ATTENTION},
        {3, 1, 0, PATRON_SEGMENT_NEEDS_ATTENTION},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_rfm rfm = {.recency_days = 0, .r = rows[i].r, .f = rows[i].f, .m = 1};
        cr_expect_eq(patron_segment_of(&rfm, rows[i].orders), rows[i].expect, "row %zu: got %s", i,
                     patron_segment_name(patron_segment_of(&rfm, rows[i].orders)));
    }
}

static struct patron_profile with_month_spend(int64_t cents)
{
    struct patron_profile p;
    patron_profile_init(&p, "c");
    p.last_event_ms = NOW;
    p.months[0].month = (int32_t)patron_month_of_ms(NOW);
    p.months[0].cents = cents;
    p.n_months = 1;
    return p;
}

Test(rfm, tier_boundaries)
{
    static const struct {
        int64_t cents;
        enum patron_tier tier;
    } rows[] = {{INT64_MIN, PATRON_TIER_SILVER}, {-1, PATRON_TIER_SILVER},
                {0, PATRON_TIER_SILVER},         {99999, PATRON_TIER_SILVER},
                {100000, PATRON_TIER_GOLD},      {499999, PATRON_TIER_GOLD},
                {500000, PATRON_TIER_PLATINUM},  {INT64_MAX, PATRON_TIER_PLATINUM}};
    struct patron_profile_config c = defcfg();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile p = with_month_spend(rows[i].cents);
        cr_expect_eq(patron_tier_of(&p, &c), rows[i].tier, "row %zu", i);
    }
    c.tier_gold_cents = 10;
    c.tier_platinum_cents = 20;
    struct patron_profile p = with_month_spend(15);
    cr_expect_eq(patron_tier_of(&p, &c), PATRON_TIER_GOLD);
}

Test(rfm, tier_counts_only_the_window)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p;
    patron_profile_init(&p, "c");
    int32_t last = (int32_t)patron_month_of_ms(NOW);
    p.last_event_ms = NOW;
    /* Window [last - 11, last]; a month before and one after (corrupt) are
     * ignored. */
    const int32_t months[] = {last - 12, last - 11, last - 5, last, last + 1};
    const int64_t cents[] = {900000, 60000, -10000, 50000, 900000};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(months); i++) {
        p.months[i].month = months[i];
        p.months[i].cents = cents[i];
    }
    p.n_months = PATRON_ARRAY_LEN(months);
    cr_expect_eq(patron_tier_spend_cents(&p), 100000);
    cr_expect_eq(patron_tier_of(&p, &c), PATRON_TIER_GOLD);
    /* No event ever: nothing counts. */
    p.last_event_ms = 0;
    cr_expect_eq(patron_tier_spend_cents(&p), 0);
    /* Sums saturate. */
    p.last_event_ms = NOW;
    p.months[0].month = last - 1;
    p.months[0].cents = INT64_MAX;
    p.months[4].month = last - 2;
    p.months[4].cents = INT64_MAX;
    cr_expect_eq(patron_tier_spend_cents(&p), INT64_MAX);
}

Test(rfm, names_and_parse_round_trip)
{
    static const char *const tiers[] = {"silver", "gold", "platinum"};
    static const char *const segments[] = {"new",       "champion",    "loyal", "at_risk",
                                           "promising", "hibernating", "lost",  "needs_attention"};
    for (int i = 0; i < PATRON_TIER_COUNT; i++) {
        enum patron_tier t;
        cr_expect_str_eq(patron_tier_name((enum patron_tier)i), tiers[i]);
        cr_assert_eq(patron_tier_parse(tiers[i], &t), 0);
        cr_expect_eq(t, (enum patron_tier)i);
    }
    for (int i = 0; i < PATRON_SEGMENT_COUNT; i++) {
        enum patron_segment s;
        cr_expect_str_eq(patron_segment_name((enum patron_segment)i), segments[i]);
        cr_assert_eq(patron_segment_parse(segments[i], &s), 0);
        cr_expect_eq(s, (enum patron_segment)i);
    }
    cr_expect_str_eq(patron_tier_name((enum patron_tier)42), "unknown");
    cr_expect_str_eq(patron_segment_name((enum patron_segment) - 1), "unknown");
}

Test(rfm, parse_rejects_anything_else)
{
    static const char *const bad[] = {"",        "Gold", "gold ",   " gold",   "at-risk",
                                      "AT_RISK", "any",  "unknown", "silverx", "champio"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        enum patron_tier t = PATRON_TIER_GOLD;
        enum patron_segment s = PATRON_SEGMENT_LOST;
        cr_expect_eq(patron_tier_parse(bad[i], &t), PATRON_EINVAL, "'%s'", bad[i]);
        cr_expect_eq(patron_segment_parse(bad[i], &s), PATRON_EINVAL, "'%s'", bad[i]);
        cr_expect_eq(t, PATRON_TIER_GOLD, "untouched on failure");
        cr_expect_eq(s, PATRON_SEGMENT_LOST, "untouched on failure");
    }
    enum patron_tier t;
    cr_expect_eq(patron_tier_parse(NULL, &t), PATRON_EINVAL);
}

/* A profile with extreme values anywhere gives defined answers. */
Test(rfm, extreme_profiles_are_total)
{
    struct patron_profile_config c = defcfg();
    struct patron_clv_model clv;
    patron_clv_model_default(&clv);
    static const int64_t v[] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    for (size_t a = 0; a < PATRON_ARRAY_LEN(v); a++) {
        for (size_t b = 0; b < PATRON_ARRAY_LEN(v); b++) {
            struct patron_profile p;
            patron_profile_init(&p, "c");
            p.last_purchase_ms = v[a];
            p.first_purchase_ms = v[b];
            p.orders = v[b];
            p.net_spend_cents = v[a];
            p.last_event_ms = v[b];
            for (size_t n = 0; n < PATRON_ARRAY_LEN(v); n++) {
                struct patron_rfm rfm = patron_rfm_score(&p, v[n], &c);
                cr_expect(rfm.r >= 1 && rfm.r <= 5);
                cr_expect(rfm.recency_days >= -1);
                struct patron_clv_view view;
                patron_clv_view_of(&p, v[n], &clv, c.churn_horizon_days, &view);
                cr_expect(view.churn_risk >= 0.0 && view.churn_risk <= 1.0);
                cr_expect(!view.purchased || (view.p_alive >= 0.0 && view.p_alive <= 1.0));
                cr_expect(isfinite(view.expected_orders_12m) && view.expected_orders_12m >= 0);
                cr_expect_geq(view.predicted_value_12m_cents, 0);
                (void)patron_tier_of(&p, &c);
            }
        }
    }
}
