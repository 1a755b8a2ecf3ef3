#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/profile.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(profile);

static struct patron_profile_config defcfg(void)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    return c;
}

/* Applies with the default configuration and asserts success. */
static struct patron_apply_outcome apply_at(struct patron_profile *p, const Patron__V1__Event *ev,
                                            int32_t partition, int64_t offset)
{
    struct patron_profile_config c = defcfg();
    struct patron_apply_outcome out;
    int rc = patron_profile_apply(p, ev, partition, offset, &c, &out);
    cr_assert_eq(rc, 0, "apply %s: %d", ev->event_id, rc);
    return out;
}

static struct patron_apply_outcome apply(struct patron_profile *p, const Patron__V1__Event *ev)
{
    return apply_at(p, ev, 0, -1);
}

static struct patron_profile fresh(void)
{
    struct patron_profile p;
    patron_profile_init(&p, FX_CUSTOMER);
    return p;
}

/* A unique event id per call, in storage that outlives the call. */
static const char *next_id(void)
{
    static char ids[4096][16];
    static size_t n;
    cr_assert_lt(n, PATRON_ARRAY_LEN(ids));
    snprintf(ids[n], sizeof(ids[n]), "e%zu", n);
    return ids[n++];
}

Test(profile, config_defaults_follow_design)
{
    struct patron_profile_config c = defcfg();
    const int64_t rec[4] = {14, 30, 90, 180}, fre[4] = {20, 10, 5, 2};
    const int64_t mon[4] = {500000, 100000, 30000, 10000};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(c.rfm_recency_days[i], rec[i]);
        cr_expect_eq(c.rfm_frequency[i], fre[i]);
        cr_expect_eq(c.rfm_monetary_cents[i], mon[i]);
    }
    cr_expect_eq(c.tier_gold_cents, 100000);
    cr_expect_eq(c.tier_platinum_cents, 500000);
    cr_expect_eq(c.points_per_review, 10);
    cr_expect_eq(c.category_half_life_ms, 30 * FX_DAY);
    cr_expect_eq(c.weight_view, 1.0);
    cr_expect_eq(c.weight_cart_add, 2.0);
    cr_expect_eq(c.weight_purchase, 3.0);
    cr_expect_eq(c.churn_horizon_days, 90);
}

Test(profile, init_is_empty_and_cuts_long_ids)
{
    struct patron_profile p;
    memset(&p, 0xAB, sizeof(p));
    patron_profile_init(&p, "abc");
    cr_expect_str_eq(p.customer_id, "abc");
    cr_expect_eq(p.orders, 0);
    cr_expect_eq(p.n_viewed + p.n_bought + p.n_cart + p.n_categories + p.n_months, 0);
    cr_expect_eq(p.n_marks, 0);
    cr_expect_eq(p.erased, false);
    cr_expect_eq(p.consent_sms || p.consent_push || p.consent_email, false);

    char long_id[PATRON_ID_MAX + 10];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = 0;
    patron_profile_init(&p, long_id);
    cr_expect_eq(strlen(p.customer_id), PATRON_ID_MAX);
}

/* month_of_ms: table of UTC instants. */
Test(profile, month_of_ms_table)
{
    static const struct {
        int64_t ms;
        int64_t year, month; /* month 1..12 */
    } rows[] = {
        {0, 1970, 1},
        {-1, 1969, 12},
        {INT64_C(951782400000), 2000, 2},   /* 2000-02-29T00:00:00Z */
        {INT64_C(951868799999), 2000, 2},   /* 2000-02-29T23:59:59.999Z */
        {INT64_C(951868800000), 2000, 3},   /* 2000-03-01T00:00:00Z */
        {INT64_C(1609459199999), 2020, 12}, /* 2020-12-31T23:59:59.999Z */
        {INT64_C(1609459200000), 2021, 1},  /* 2021-01-01T00:00:00Z */
        {FX_T0, 2021, 1},
        {INT64_C(253402300799999), 9999, 12},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(patron_month_of_ms(rows[i].ms), rows[i].year * 12 + rows[i].month - 1,
                     "row %zu", i);
    /* Total over int64: no crash, monotone at the extremes. */
    cr_expect_lt(patron_month_of_ms(INT64_MIN), patron_month_of_ms(0));
    cr_expect_gt(patron_month_of_ms(INT64_MAX), patron_month_of_ms(0));
}

Test(profile, seen_times_take_min_and_max)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    apply(&p, fx_view(&f, "a", FX_T0, "i1", ""));
    apply(&p, fx_view(&f, "b", FX_T0 - 5000, "i2", ""));
    apply(&p, fx_view(&f, "c", FX_T0 + 7000, "i3", ""));
    apply(&p, fx_view(&f, "d", FX_T0 + 1000, "i4", ""));
    cr_expect_eq(p.first_seen_ms, FX_T0 - 5000);
    cr_expect_eq(p.last_seen_ms, FX_T0 + 7000);
    cr_expect_eq(p.last_event_ms, FX_T0 + 7000);
}

Test(profile, viewed_is_most_recent_first_without_duplicates_and_capped)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    char items[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(items[i], sizeof(items[i]), "v%d", i);
        apply(&p, fx_view(&f, next_id(), FX_T0 + i, items[i], ""));
    }
    cr_assert_eq(p.n_viewed, PATRON_PROFILE_VIEWED_MAX);
    cr_expect_str_eq(p.viewed[0], "v11");
    cr_expect_str_eq(p.viewed[9], "v2");
    /* Viewing again moves to the front, no duplicate. */
    apply(&p, fx_view(&f, next_id(), FX_T0 + 100, "v5", ""));
    cr_assert_eq(p.n_viewed, PATRON_PROFILE_VIEWED_MAX);
    cr_expect_str_eq(p.viewed[0], "v5");
    cr_expect_str_eq(p.viewed[1], "v11");
    int count = 0;
    for (size_t i = 0; i < p.n_viewed; i++)
        count += strcmp(p.viewed[i], "v5") == 0;
    cr_expect_eq(count, 1);
    cr_expect_str_eq(p.viewed[9], "v2");
}

Test(profile, category_affinity_decays_with_half_life)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p = fresh();
    struct fx_event f;
    int64_t hl = c.category_half_life_ms;
    apply(&p, fx_view(&f, "a", FX_T0, "i1", "home"));
    cr_assert_eq(p.n_categories, 1);
    cr_expect_float_eq(p.categories[0].score, 1.0, 1e-12);
    /* One half-life later: 1 * 0.5 + 1. */
    apply(&p, fx_view(&f, "b", FX_T0 + hl, "i2", "home"));
    cr_expect_float_eq(p.categories[0].score, 1.5, 1e-12);
    cr_expect_eq(p.categories[0].updated_ms, FX_T0 + hl);
    /* An older event adds its weight decayed to updated_ms, time stays (a
     * window wide enough that a view a half-life late is not stale). */
    struct patron_profile_config wide = c;
    wide.dedupe_window_ms = 2 * hl;
    struct patron_apply_outcome out;
    cr_assert_eq(
        patron_profile_apply(&p, fx_view(&f, "c", FX_T0, "i3", "home"), 0, -1, &wide, &out), 0);
    cr_assert_eq(out.result, PATRON_APPLY_APPLIED);
    cr_expect_float_eq(p.categories[0].score, 2.0, 1e-12);
    cr_expect_eq(p.categories[0].updated_ms, FX_T0 + hl);
    /* Weights: cart_add 2, purchase 3 per line. */
    apply(&p, fx_cart_add(&f, "d", FX_T0 + hl, "i4", "home", 1, 100));
    cr_expect_float_eq(p.categories[0].score, 4.0, 1e-12);
    struct fx_line lines[] = {{"i5", "home", 1, 100}, {"i6", "home", 2, 100}};
    apply(&p, fx_purchase(&f, "e", FX_T0 + hl, 2, lines));
    cr_expect_float_eq(p.categories[0].score, 10.0, 1e-12);
    /* Read at now: decayed, never grown by an earlier now. */
    cr_expect_float_eq(patron_profile_category_score(&p, 0, FX_T0 + 2 * hl, &c), 5.0, 1e-12);
    cr_expect_float_eq(patron_profile_category_score(&p, 0, FX_T0, &c), 10.0, 1e-12);
    cr_expect_eq(patron_profile_category_score(&p, 5, FX_T0, &c), 0.0);
    /* Empty category: no affinity. */
    apply(&p, fx_view(&f, "g", FX_T0 + hl, "i7", ""));
    cr_expect_eq(p.n_categories, 1);
}

Test(profile, categories_keep_the_top_and_evict_the_lowest)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p = fresh();
    struct fx_event f;
    char cats[PATRON_PROFILE_CATEGORIES_MAX][8];
    /* Category k gets k + 1 views, all at T0: scores 1..8. */
    for (int k = 0; k < PATRON_PROFILE_CATEGORIES_MAX; k++) {
        snprintf(cats[k], sizeof(cats[k]), "cat%d", k);
        for (int v = 0; v <= k; v++)
            apply(&p, fx_view(&f, next_id(), FX_T0, "i", cats[k]));
    }
    cr_assert_eq(p.n_categories, PATRON_PROFILE_CATEGORIES_MAX);
    /* A newcomer ties the lowest (cat0, score 1): recency wins, cat0 goes. */
    apply(&p, fx_view(&f, next_id(), FX_T0, "i", "newa"));
    cr_assert_eq(p.n_categories, PATRON_PROFILE_CATEGORIES_MAX);
    struct patron_category_rank top[PATRON_PROFILE_CATEGORIES_MAX];
    size_t n = patron_profile_top_categories(&p, FX_T0, &c, top, PATRON_ARRAY_LEN(top));
    cr_assert_eq(n, PATRON_PROFILE_CATEGORIES_MAX);
    cr_expect_str_eq(top[0].category, "cat7");
    cr_expect_float_eq(top[0].score, 8.0, 1e-12);
    for (size_t i = 0; i < n; i++)
        cr_expect_str_neq(top[i].category, "cat0");
    /* Ties sort by name: cat1 and newa both 1.0, cat1 first. */
    cr_expect_str_eq(top[6].category, "cat1");
    cr_expect_str_eq(top[7].category, "newa");
    /* A newcomer from long ago is below everything: dropped. */
    apply(&p, fx_view(&f, next_id(), FX_T0 - 400 * FX_DAY, "i", "ancient"));
    n = patron_profile_top_categories(&p, FX_T0, &c, top, PATRON_ARRAY_LEN(top));
    for (size_t i = 0; i < n; i++)
        cr_expect_str_neq(top[i].category, "ancient");
    /* max limits the output. */
    cr_expect_eq(patron_profile_top_categories(&p, FX_T0, &c, top, 3), 3);
    cr_expect_eq(patron_profile_top_categories(&p, FX_T0, &c, top, 0), 0);
    /* Decay reorders: much later, a fresh view outranks the old scores. */
    apply(&p, fx_view(&f, next_id(), FX_T0 + 300 * FX_DAY, "i", "late"));
    n = patron_profile_top_categories(&p, FX_T0 + 300 * FX_DAY, &c, top, 1);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(top[0].category, "late");
}

Test(profile, cart_adds_merges_removes_and_caps)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    apply(&p, fx_cart_add(&f, "a", FX_T0, "x", "", 2, 100));
    apply(&p, fx_cart_add(&f, "b", FX_T0 + 10, "y", "", 1, 100));
    apply(&p, fx_cart_add(&f, "c", FX_T0 + 20, "x", "", 3, 100));
    cr_assert_eq(p.n_cart, 2);
    cr_expect_str_eq(p.cart[0].item_id, "x");
    cr_expect_eq(p.cart[0].quantity, 5);
    cr_expect_str_eq(p.cart[1].item_id, "y");
    cr_expect_eq(p.cart_updated_ms, FX_T0 + 20);

    apply(&p, fx_cart_remove(&f, "d", FX_T0 + 30, "x"));
    cr_assert_eq(p.n_cart, 1);
    cr_expect_str_eq(p.cart[0].item_id, "y");
    cr_expect_eq(p.cart[1].item_id[0], 0, "freed slot is zeroed");
    cr_expect_eq(p.cart_updated_ms, FX_T0 + 30);
    /* Removing what is not there changes nothing but the time. */
    apply(&p, fx_cart_remove(&f, "e", FX_T0 + 40, "nope"));
    cr_expect_eq(p.n_cart, 1);

    /* Full: the oldest line goes. */
    char items[PATRON_PROFILE_CART_MAX + 1][8];
    for (int i = 0; i < PATRON_PROFILE_CART_MAX + 1; i++) {
        snprintf(items[i], sizeof(items[i]), "k%d", i);
        apply(&p, fx_cart_add(&f, next_id(), FX_T0 + 50, items[i], "", 1, 1));
    }
    cr_assert_eq(p.n_cart, PATRON_PROFILE_CART_MAX);
    cr_expect_str_eq(p.cart[0].item_id, "k1");
    cr_expect_str_eq(p.cart[PATRON_PROFILE_CART_MAX - 1].item_id, "k32");

    /* Quantities saturate instead of overflowing. */
    apply(&p, fx_cart_add(&f, next_id(), FX_T0 + 60, "k5", "", INT32_MAX, 1));
    apply(&p, fx_cart_add(&f, next_id(), FX_T0 + 60, "k5", "", INT32_MAX, 1));
    for (size_t i = 0; i < p.n_cart; i++)
        if (strcmp(p.cart[i].item_id, "k5") == 0)
            cr_expect_eq(p.cart[i].quantity, INT32_MAX);

    /* A purchase empties the cart. */
    struct fx_line line = {"z", "", 1, 100};
    apply(&p, fx_purchase(&f, next_id(), FX_T0 + 70, 1, &line));
    cr_expect_eq(p.n_cart, 0);
    cr_expect_eq(p.cart[0].item_id[0], 0);
    cr_expect_eq(p.cart_updated_ms, FX_T0 + 70);
}

Test(profile, purchase_counts_value_points_months_and_bought)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    struct fx_line lines[] = {{"a", "home", 2, 1999}, {"b", "toys", 1, 8347}, {"a", "home", 1, 0}};
    struct patron_apply_outcome out = apply(&p, fx_purchase(&f, "p1", FX_T0, 3, lines));
    cr_expect_eq(out.result, PATRON_APPLY_APPLIED);
    cr_expect_eq(out.value_cents, 2 * 1999 + 8347);
    cr_expect_eq(p.orders, 1);
    cr_expect_eq(p.net_spend_cents, 12345);
    cr_expect_eq(p.points, 123, "floor(12345 / 100)");
    cr_expect_eq(p.first_purchase_ms, FX_T0);
    cr_expect_eq(p.last_purchase_ms, FX_T0);
    cr_assert_eq(p.n_months, 1);
    cr_expect_eq(p.months[0].month, 2021 * 12);
    cr_expect_eq(p.months[0].cents, 12345);
    /* Bought: each line's item, last line first, no duplicates. */
    cr_assert_eq(p.n_bought, 2);
    cr_expect_str_eq(p.bought[0], "a");
    cr_expect_str_eq(p.bought[1], "b");

    /* An earlier purchase moves first_purchase back, not last_purchase. */
    struct fx_line one = {"c", "", 1, 99};
    apply(&p, fx_purchase(&f, "p0", FX_T0 - 40 * FX_DAY, 1, &one));
    cr_expect_eq(p.orders, 2);
    cr_expect_eq(p.points, 123, "99 cents earn no point");
    cr_expect_eq(p.first_purchase_ms, FX_T0 - 40 * FX_DAY);
    cr_expect_eq(p.last_purchase_ms, FX_T0);
    cr_assert_eq(p.n_months, 2);
    cr_expect_eq(p.months[0].month, 2020 * 12 + 11, "ascending: December first");
    cr_expect_eq(p.months[0].cents, 99);
}

Test(profile, bought_list_caps_at_max)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    char items[PATRON_PROFILE_BOUGHT_MAX + 6][8];
    struct fx_line lines[PATRON_PROFILE_BOUGHT_MAX + 6];
    for (int i = 0; i < PATRON_PROFILE_BOUGHT_MAX + 6; i++) {
        snprintf(items[i], sizeof(items[i]), "b%d", i);
        lines[i] = (struct fx_line){items[i], "", 1, 1};
    }
    apply(&p, fx_purchase(&f, "p", FX_T0, PATRON_ARRAY_LEN(lines), lines));
    cr_assert_eq(p.n_bought, PATRON_PROFILE_BOUGHT_MAX);
    cr_expect_str_eq(p.bought[0], "b69");
    cr_expect_str_eq(p.bought[PATRON_PROFILE_BOUGHT_MAX - 1], "b6");
}

/* Items pushed off the bought list are still known as bought (by hash), so
 * that recommendations never bring them back; a repeat purchase pushes
 * nothing off. */
Test(profile, items_pushed_off_the_bought_list_stay_bought)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    char items[PATRON_PROFILE_BOUGHT_MAX + 6][8];
    struct fx_line lines[PATRON_PROFILE_BOUGHT_MAX + 6];
    for (int i = 0; i < PATRON_PROFILE_BOUGHT_MAX + 6; i++) {
        snprintf(items[i], sizeof(items[i]), "b%d", i);
        lines[i] = (struct fx_line){items[i], "", 1, 1};
    }
    apply(&p, fx_purchase(&f, "p", FX_T0, PATRON_ARRAY_LEN(lines), lines));
    cr_assert_eq(p.n_bought_earlier, 6);
    for (size_t i = 1; i < p.n_bought_earlier; i++)
        cr_expect_lt(p.bought_earlier[i - 1], p.bought_earlier[i], "ascending");
    for (int i = 0; i < PATRON_PROFILE_BOUGHT_MAX + 6; i++)
        cr_expect(patron_profile_has_bought(&p, items[i]), "%s", items[i]);
    cr_expect_not(patron_profile_has_bought(&p, "never"));
    cr_expect_not(patron_profile_has_bought(&p, ""));

    struct fx_line again = {"b69", "", 1, 1};
    apply(&p, fx_purchase(&f, "p2", FX_T0 + 1, 1, &again));
    cr_expect_eq(p.n_bought_earlier, 6, "a repeat purchase pushes nothing off");
}

Test(profile, bought_earlier_stops_growing_when_full)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    enum { LINES = 100, ORDERS = (PATRON_PROFILE_BOUGHT_EARLIER_MAX + 200) / LINES + 1 };
    char items[LINES][12], order[16];
    struct fx_line lines[LINES];
    for (int o = 0; o < ORDERS; o++) {
        for (int i = 0; i < LINES; i++) {
            snprintf(items[i], sizeof(items[i]), "x%d", o * LINES + i);
            lines[i] = (struct fx_line){items[i], "", 1, 1};
        }
        snprintf(order, sizeof(order), "o%d", o);
        apply(&p, fx_purchase(&f, order, FX_T0 + o, LINES, lines));
    }
    cr_expect_eq(p.n_bought_earlier, PATRON_PROFILE_BOUGHT_EARLIER_MAX);
    cr_expect(patron_profile_has_bought(&p, "x0"), "the first ones are kept");
    cr_expect(patron_profile_has_bought(&p, items[LINES - 1]), "the recent ones are listed");
}

Test(profile, erasure_forgets_bought_earlier)
{
    struct patron_profile p = fresh();
    p.bought_earlier[0] = 42;
    p.n_bought_earlier = 1;
    struct fx_event f;
    apply(&p, fx_erasure(&f, "erase", FX_T0));
    cr_expect_eq(p.n_bought_earlier, 0);
    cr_expect_eq(p.bought_earlier[0], 0, "no stale personal data");
}

Test(profile, item_hash32_is_stable)
{
    /* the stored form depends on these values: they must never change */
    cr_expect_eq(patron_item_hash32("", 0), 0xcbf29ce4u ^ 0x84222325u);
    cr_expect_eq(patron_item_hash32("85123A", 6), patron_item_hash32("85123Axyz", 6));
    cr_expect_neq(patron_item_hash32("85123A", 6), patron_item_hash32("85123B", 6));
}

Test(profile, refund_takes_back_spend_and_points)
{
    static const struct {
        int64_t amount;
        struct fx_line line; /* quantity 0: no line */
        int64_t expect_amount;
    } rows[] = {
        {5050, {0}, 5050},
        {0, {"a", "", 3, 1000}, 3000},
        {150, {"a", "", 3, 1000}, 150}, /* amount wins over lines */
        {99, {0}, 99},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile p = fresh();
        struct fx_event f;
        struct fx_line buy = {"a", "", 1, 20000};
        apply(&p, fx_purchase(&f, "p", FX_T0, 1, &buy));
        size_t n = rows[i].line.quantity ? 1 : 0;
        struct patron_apply_outcome out =
            apply(&p, fx_refund(&f, "r", FX_T0 + FX_DAY, rows[i].amount, n, &rows[i].line));
        int64_t a = rows[i].expect_amount;
        cr_expect_eq(out.value_cents, a, "row %zu", i);
        cr_expect_eq(p.net_spend_cents, 20000 - a, "row %zu", i);
        cr_expect_eq(p.points, 200 - a / 100, "row %zu", i);
        cr_expect_eq(p.refunds, 1, "row %zu", i);
        cr_expect_eq(p.orders, 1, "row %zu", i);
        cr_expect_eq(p.months[0].cents, 20000 - a, "row %zu", i);
    }
}

Test(profile, net_spend_and_points_may_go_negative)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    apply(&p, fx_refund(&f, "r", FX_T0, 25099, 0, NULL));
    cr_expect_eq(p.net_spend_cents, -25099);
    cr_expect_eq(p.points, -250);
    cr_assert_eq(p.n_months, 1);
    cr_expect_eq(p.months[0].cents, -25099);
}

Test(profile, review_customer_and_consent)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    apply(&p, fx_review(&f, "r1", FX_T0, "a", 5));
    apply(&p, fx_review(&f, "r2", FX_T0, "b", 1));
    cr_expect_eq(p.reviews, 2);
    cr_expect_eq(p.points, 20);

    apply(&p, fx_customer(&f, "u1", FX_T0, "05-14", "Europe/London", "en-GB", "United Kingdom"));
    cr_expect_str_eq(p.birthday, "05-14");
    cr_expect_str_eq(p.time_zone, "Europe/London");
    cr_expect_str_eq(p.locale, "en-GB");
    cr_expect_str_eq(p.country, "United Kingdom");
    /* Empty fields leave the old values. */
    apply(&p, fx_customer(&f, "u2", FX_T0, "", "", "fr-FR", ""));
    cr_expect_str_eq(p.birthday, "05-14");
    cr_expect_str_eq(p.time_zone, "Europe/London");
    cr_expect_str_eq(p.locale, "fr-FR");

    static const struct {
        Patron__V1__Channel channel;
        bool granted, sms, push, email;
    } rows[] = {
        {PATRON__V1__CHANNEL__SMS, true, true, false, false},
        {PATRON__V1__CHANNEL__EMAIL, true, true, false, true},
        {PATRON__V1__CHANNEL__PUSH, true, true, true, true},
        {PATRON__V1__CHANNEL__SMS, false, false, true, true},
        {PATRON__V1__CHANNEL__PUSH, false, false, false, true},
        {PATRON__V1__CHANNEL__EMAIL, false, false, false, false},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        apply(&p, fx_consent(&f, next_id(), FX_T0, rows[i].channel, rows[i].granted));
        cr_expect_eq(p.consent_sms, rows[i].sms, "row %zu", i);
        cr_expect_eq(p.consent_push, rows[i].push, "row %zu", i);
        cr_expect_eq(p.consent_email, rows[i].email, "row %zu", i);
    }
}

/* Idempotence, table-driven: a sequence of (event id, partition, offset) and
 * the expected result of each. */
Test(profile, replays_and_resends_change_nothing)
{
    static const struct {
        const char *id;
        int32_t partition;
        int64_t offset;
        enum patron_apply_result expect;
        int64_t orders_after;
    } rows[] = {
        {"a", 3, 10, PATRON_APPLY_APPLIED, 1},
        {"a", 3, 10, PATRON_APPLY_REPLAYED, 1},  /* the same message again */
        {"b", 3, 9, PATRON_APPLY_REPLAYED, 1},   /* any offset at or below */
        {"a", 3, 11, PATRON_APPLY_DUPLICATE, 1}, /* a resend at a new offset */
        {"b", 3, 12, PATRON_APPLY_APPLIED, 2},
        {"c", 3, -1, PATRON_APPLY_APPLIED, 3},   /* no position: no offset check */
        {"c", 3, -1, PATRON_APPLY_DUPLICATE, 3}, /* ... but the id check */
        {"d", 5, 1, PATRON_APPLY_APPLIED, 4},    /* another partition: a mark of its own */
        {"e", 3, 100, PATRON_APPLY_APPLIED, 5},  /* and back */
        {"f", 3, 50, PATRON_APPLY_REPLAYED, 5},
        {"g", 5, 1, PATRON_APPLY_REPLAYED, 5}, /* partition 5's mark is still there */
        {"g", 5, 2, PATRON_APPLY_APPLIED, 6},
    };
    struct patron_profile p = fresh();
    struct fx_event f;
    struct fx_line line = {"x", "", 1, 100};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_profile before = p;
        struct patron_apply_outcome out = apply_at(&p, fx_purchase(&f, rows[i].id, FX_T0, 1, &line),
                                                   rows[i].partition, rows[i].offset);
        cr_expect_eq(out.result, rows[i].expect, "row %zu", i);
        cr_expect_eq(p.orders, rows[i].orders_after, "row %zu", i);
        cr_expect_eq(out.value_cents, 100, "row %zu: value reported whatever the result", i);
        if (rows[i].expect != PATRON_APPLY_APPLIED)
            cr_expect_eq(memcmp(&before, &p, sizeof(p)), 0, "row %zu: unchanged", i);
    }
    cr_expect_eq(p.n_marks, 2);
    cr_expect_eq(p.marks[0].partition, 5, "most recently written first");
    cr_expect_eq(p.marks[0].offset, 2);
    cr_expect_eq(p.marks[1].partition, 3);
    cr_expect_eq(p.marks[1].offset, 100);
}

Test(profile, counting_events_are_remembered_beyond_any_ring)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    char ids[300][8];
    for (int i = 0; i < 300; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%d", i);
        apply(&p, fx_review(&f, ids[i], FX_T0 + i, "x", 3));
    }
    cr_expect_eq(p.n_counted, 300);
    cr_expect_eq(p.n_event_ids, 0, "reviews go to the ledger, not the ring");
    cr_expect_eq(p.reviews, 300);
    cr_expect_eq(apply(&p, fx_review(&f, ids[0], FX_T0, "x", 3)).result, PATRON_APPLY_DUPLICATE);
    cr_expect_eq(apply(&p, fx_review(&f, ids[299], FX_T0, "x", 3)).result, PATRON_APPLY_DUPLICATE);
    cr_expect_eq(p.reviews, 300);
}

Test(profile, erasure_leaves_a_tombstone_that_revives_empty)
{
    struct patron_profile p = fresh();
    struct fx_event f;
    struct fx_line line = {"x", "home", 1, 200000};
    apply_at(&p, fx_purchase(&f, "p", FX_T0, 1, &line), 2, 7);
    apply_at(&p, fx_customer(&f, "u", FX_T0, "05-14", "Europe/London", "en-GB", "UK"), 2, 8);
    apply_at(&p, fx_consent(&f, "s", FX_T0, PATRON__V1__CHANNEL__SMS, true), 2, 9);
    apply_at(&p, fx_view(&f, "v", FX_T0, "y", "toys"), 2, 10);
    apply_at(&p, fx_cart_add(&f, "c", FX_T0, "z", "toys", 1, 5), 2, 11);

    struct patron_apply_outcome out = apply_at(&p, fx_erasure(&f, "del", FX_T0 + 1), 2, 12);
    cr_expect_eq(out.result, PATRON_APPLY_APPLIED);
    cr_expect(out.erased);
    cr_expect_eq(out.tier_before, PATRON_TIER_GOLD);
    cr_expect_eq(out.tier_after, PATRON_TIER_SILVER);
    cr_expect(p.erased);
    cr_expect_str_eq(p.customer_id, FX_CUSTOMER);
    cr_expect_eq(p.marks[0].offset, 12);
    cr_expect_eq(p.n_event_ids, 5, "the purchase was in the ledger, which goes");
    cr_expect_eq(p.n_counted, 0);
    cr_expect_eq(p.erased_at_ms, FX_T0 + 1);

    /* Nothing personal is left, not even in unused slots. */
    static struct patron_profile expect;
    patron_profile_init(&expect, FX_CUSTOMER);
    memcpy(expect.event_ids, p.event_ids, sizeof(expect.event_ids));
    memcpy(expect.event_ms, p.event_ms, sizeof(expect.event_ms));
    expect.n_event_ids = p.n_event_ids;
    expect.erased_at_ms = FX_T0 + 1;
    expect.marks[0] = (struct patron_profile_mark){2, 12};
    expect.n_marks = 1;
    expect.erased = true;
    cr_expect_eq(memcmp(&expect, &p, sizeof(p)), 0);

    /* A replayed purchase cannot bring data back. */
    out = apply_at(&p, fx_purchase(&f, "p", FX_T0, 1, &line), 2, 7);
    cr_expect_eq(out.result, PATRON_APPLY_REPLAYED);
    cr_expect_eq(p.orders, 0);
    /* Nor a resent one at a new offset: it is from before the erasure. */
    out = apply_at(&p, fx_purchase(&f, "p", FX_T0, 1, &line), 2, 13);
    cr_expect_eq(out.result, PATRON_APPLY_STALE);
    /* A replayed erasure still says "erased": the keys are deleted again. */
    out = apply_at(&p, fx_erasure(&f, "del", FX_T0 + 1), 2, 12);
    cr_expect_eq(out.result, PATRON_APPLY_REPLAYED);
    cr_expect(out.erased);

    /* A new event starts a fresh profile. */
    out = apply_at(&p, fx_view(&f, "v2", FX_T0 + 2, "w", ""), 2, 14);
    cr_expect_eq(out.result, PATRON_APPLY_APPLIED);
    cr_expect_not(out.erased);
    cr_expect_not(p.erased);
    cr_expect_eq(p.n_viewed, 1);
    cr_expect_eq(p.first_seen_ms, FX_T0 + 2);
    cr_expect_eq(p.orders, 0);
}

/* The tier window: 12 calendar months ending with the latest event's month. */
Test(profile, month_buckets_slide_with_the_latest_event)
{
    struct patron_profile p = fresh();
    struct patron_profile_config c = defcfg();
    struct fx_event f;
    struct fx_line line = {"x", "", 1, 10000};
    /* One purchase on the 15th of each month from 2021-01 to 2022-01. */
    int64_t t = FX_T0;
    for (int i = 0; i < 13; i++) {
        apply(&p, fx_purchase(&f, next_id(), t, 1, &line));
        t += 31 * FX_DAY; /* 13 steps from the 15th land in 13 distinct months */
    }
    cr_expect_eq(p.net_spend_cents, 130000);
    cr_assert_eq(p.n_months, PATRON_PROFILE_MONTHS);
    cr_expect_eq(p.months[0].month, 2021 * 12 + 1, "January 2021 left the window");
    cr_expect_eq(p.months[11].month, 2022 * 12);
    cr_expect_eq(patron_tier_spend_cents(&p), 120000);
    cr_expect_eq(patron_tier_of(&p, &c), PATRON_TIER_GOLD);

    /* An event older than the window counts in spend and points, not in a
     * bucket. */
    int64_t points = p.points;
    apply(&p, fx_purchase(&f, next_id(), FX_T0 - 365 * FX_DAY, 1, &line));
    cr_expect_eq(p.net_spend_cents, 140000);
    cr_expect_eq(p.points, points + 100);
    cr_expect_eq(patron_tier_spend_cents(&p), 120000);
    cr_expect_eq(p.n_months, PATRON_PROFILE_MONTHS);

    /* A view two years later moves the anchor: every bucket leaves. */
    apply(&p, fx_view(&f, next_id(), FX_T0 + 3 * 365 * FX_DAY, "v", ""));
    cr_expect_eq(p.n_months, 0);
    cr_expect_eq(patron_tier_of(&p, &c), PATRON_TIER_SILVER);
}

Test(profile, outcome_reports_tier_and_segment_transitions)
{
    static const struct {
        int64_t price;
        enum patron_tier before, after;
        enum patron_segment seg_before, seg_after;
    } rows[] = {
        /* 1 order, R 5: new. */
        {50000, PATRON_TIER_SILVER, PATRON_TIER_SILVER, PATRON_SEGMENT_LOST, PATRON_SEGMENT_NEW},
        /* 2 orders (F 2), R 5: promising; 100000 reached: gold. */
        {50000, PATRON_TIER_SILVER, PATRON_TIER_GOLD, PATRON_SEGMENT_NEW, PATRON_SEGMENT_PROMISING},
        {400000, PATRON_TIER_GOLD, PATRON_TIER_PLATINUM, PATRON_SEGMENT_PROMISING,
         PATRON_SEGMENT_PROMISING},
    };
    struct patron_profile p = fresh();
    struct fx_event f;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct fx_line line = {"x", "", 1, rows[i].price};
        struct patron_apply_outcome out =
            apply(&p, fx_purchase(&f, next_id(), FX_T0 + (int64_t)i * FX_DAY, 1, &line));
        cr_expect_eq(out.tier_before, rows[i].before, "row %zu", i);
        cr_expect_eq(out.tier_after, rows[i].after, "row %zu", i);
        cr_expect_eq(out.segment_before, rows[i].seg_before, "row %zu", i);
        cr_expect_eq(out.segment_after, rows[i].seg_after, "row %zu", i);
    }
    /* Evaluated at the event's time: a purchase a year later sees the old
     * profile as hibernating-or-worse before it. */
    struct fx_line line = {"x", "", 1, 1};
    struct patron_apply_outcome out =
        apply(&p, fx_purchase(&f, next_id(), FX_T0 + 200 * FX_DAY, 1, &line));
    cr_expect_eq(out.segment_before, PATRON_SEGMENT_LOST, "R 1, F 2");
    cr_expect_eq(out.segment_after, PATRON_SEGMENT_PROMISING, "R 5, F 2");
    cr_expect_eq(out.tier_before, PATRON_TIER_PLATINUM);
    cr_expect_eq(out.tier_after, PATRON_TIER_PLATINUM);
}

Test(profile, invalid_events_are_rejected_and_change_nothing)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p = fresh();
    struct fx_event f;
    struct patron_apply_outcome out;
    apply(&p, fx_view(&f, "ok", FX_T0, "i", "home"));
    struct patron_profile before = p;

    struct fx_line bad = {"x", "", 0, 100};
    cr_expect_eq(patron_profile_apply(&p, fx_purchase(&f, "b1", FX_T0, 1, &bad), 0, 1, &c, &out),
                 PATRON_EINVAL);
    Patron__V1__Event *ev = fx_view(&f, "b2", FX_T0, "i", "");
    ev->customer_id = "someone-else";
    cr_expect_eq(patron_profile_apply(&p, ev, 0, 2, &c, &out), PATRON_EINVAL);
    ev = fx_view(&f, "b3", 0, "i", "");
    cr_expect_eq(patron_profile_apply(&p, ev, 0, 3, &c, &out), PATRON_EINVAL);
    ev = fx_base(&f, "b4", FX_T0);
    cr_expect_eq(patron_profile_apply(&p, ev, 0, 4, &c, &out), PATRON_EINVAL);
    cr_expect_eq(memcmp(&before, &p, sizeof(p)), 0);
}

/* Counters saturate on a profile decoded with extreme values. */
Test(profile, counters_saturate_instead_of_overflowing)
{
    struct patron_profile p = fresh();
    p.net_spend_cents = INT64_MAX - 5;
    p.points = INT64_MAX - 1;
    p.orders = INT64_MAX;
    p.reviews = INT64_MAX;
    struct fx_event f;
    struct fx_line line = {"x", "", 1000, INT64_C(1000000000000)};
    apply(&p, fx_purchase(&f, "p", FX_T0, 1, &line));
    cr_expect_eq(p.net_spend_cents, INT64_MAX);
    cr_expect_eq(p.points, INT64_MAX);
    cr_expect_eq(p.orders, INT64_MAX);
    apply(&p, fx_review(&f, "r", FX_T0, "x", 4));
    cr_expect_eq(p.reviews, INT64_MAX);

    struct patron_profile q = fresh();
    q.net_spend_cents = INT64_MIN + 5;
    q.points = INT64_MIN + 1;
    apply(&q, fx_refund(&f, "r", FX_T0, INT64_C(1000000000000000), 0, NULL));
    cr_expect_eq(q.net_spend_cents, INT64_MIN);
    cr_expect_eq(q.points, INT64_MIN);
}

/* A typical customer's history, replayed in order, gives docs/contracts/profile.md's numbers. */
Test(profile, a_customer_history_end_to_end)
{
    struct patron_profile_config c = defcfg();
    struct patron_profile p = fresh();
    struct fx_event f;
    int64_t off = 0;
    apply_at(&p, fx_consent(&f, next_id(), FX_T0, PATRON__V1__CHANNEL__EMAIL, true), 0, off++);
    apply_at(&p, fx_view(&f, next_id(), FX_T0 + 1000, "85123A", "home"), 0, off++);
    apply_at(&p, fx_cart_add(&f, next_id(), FX_T0 + 2000, "85123A", "home", 6, 255), 0, off++);
    struct fx_line l1[] = {{"85123A", "home", 6, 255}, {"71053", "home", 6, 339}};
    apply_at(&p, fx_purchase(&f, next_id(), FX_T0 + 3000, 2, l1), 0, off++);
    apply_at(&p, fx_review(&f, next_id(), FX_T0 + 4000, "71053", 5), 0, off++);
    struct fx_line r1 = {"71053", "home", 1, 339};
    apply_at(&p, fx_refund(&f, next_id(), FX_T0 + 5000, 0, 1, &r1), 0, off++);

    cr_expect_eq(p.orders, 1);
    cr_expect_eq(p.net_spend_cents, 6 * 255 + 6 * 339 - 339);
    cr_expect_eq(p.points, (6 * 255 + 6 * 339) / 100 + 10 - 3);
    cr_expect_eq(p.n_cart, 0);
    cr_expect_str_eq(p.bought[0], "71053");
    cr_expect_str_eq(p.viewed[0], "85123A");
    cr_expect(p.consent_email);
    cr_expect_eq(p.marks[0].offset, off - 1);
    struct patron_rfm rfm = patron_rfm_score(&p, FX_T0 + 3000 + 10 * FX_DAY, &c);
    cr_expect_eq(rfm.recency_days, 10);
    cr_expect_eq(patron_segment_of(&rfm, p.orders), PATRON_SEGMENT_NEW);
}
