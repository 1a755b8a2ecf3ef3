/*
 * A profile as the API serves it (patron_profile_to_json): exactly the
 * contract's fields, the values of a real customer, a full profile.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_profile.h"
#include "patron/profile_json.h"

PATRON_LEAK_CHECKED_SUITE(profile_json);

/* ---- JSON ---------------------------------------------------------------- */

static json_t *profile_json(const struct patron_profile *p, int64_t now)
{
    struct patron_profile_config c = defcfg();
    json_t *j = patron_profile_to_json(p, now, &c);
    cr_assert_not_null(j);
    /* It serializes (valid UTF-8 everywhere). */
    char *s = json_dumps(j, JSON_COMPACT);
    cr_assert_not_null(s);
    free(s);
    return j;
}

Test(profile_json, has_exactly_the_contract_fields)
{
    static const char *const keys[] = {
        "customer_id",
        "orders",
        "net_spend_cents",
        "points",
        "tier",
        "first_seen_ms",
        "last_seen_ms",
        "last_purchase_ms",
        "rfm",
        "segment",
        "churn_risk",
        "churn_horizon_days",
        "p_alive",
        "predicted_value_12m_cents",
        "expected_orders_12m",
        "cluster",
        "top_categories",
        "recent_items",
        "cart",
        "consent",
        "time_zone",
        "locale",
        "birthday",
        "country",
        "reviews",
        "refunds",
        "merged_visitors",
    };
    struct patron_profile p;
    patron_profile_init(&p, "17850");
    json_t *j = profile_json(&p, FX_T0);
    cr_expect_eq(json_object_size(j), PATRON_ARRAY_LEN(keys));
    for (size_t i = 0; i < PATRON_ARRAY_LEN(keys); i++)
        cr_expect_not_null(json_object_get(j, keys[i]), "%s", keys[i]);
    json_t *rfm = json_object_get(j, "rfm");
    cr_expect_eq(json_object_size(rfm), 4);
    cr_expect(json_is_null(json_object_get(rfm, "recency_days")));
    cr_expect_eq(json_integer_value(json_object_get(rfm, "r")), 1);
    cr_expect(json_is_null(json_object_get(j, "last_purchase_ms")));
    cr_expect(json_is_null(json_object_get(j, "time_zone")));
    cr_expect(json_is_null(json_object_get(j, "locale")));
    cr_expect(json_is_null(json_object_get(j, "birthday")));
    cr_expect(json_is_null(json_object_get(j, "country")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "tier")), "silver");
    cr_expect_eq(json_real_value(json_object_get(j, "churn_risk")), 1.0);
    cr_expect(json_is_null(json_object_get(j, "p_alive")), "never purchased");
    cr_expect(json_is_null(json_object_get(j, "cluster")));
    cr_expect_eq(json_array_size(json_object_get(j, "cart")), 0);
    json_t *consent = json_object_get(j, "consent");
    cr_expect(json_is_false(json_object_get(consent, "sms")));
    cr_expect(json_is_false(json_object_get(consent, "push")));
    cr_expect(json_is_false(json_object_get(consent, "email")));
    json_decref(j);
}

Test(profile_json, values_of_a_real_customer)
{
    struct patron_profile p;
    patron_profile_init(&p, "17850");
    struct fx_event f;
    struct fx_line big = {"71053", "home", 1, 545023};
    apply_ok(&p, fx_purchase(&f, "p", FX_T0, 1, &big), 1);
    apply_ok(&p, fx_view(&f, "v", FX_T0 + 1, "85123A", "garden"), 2);
    apply_ok(&p, fx_view(&f, "v2", FX_T0 + 2, "85123B", "garden"), 3);
    apply_ok(&p, fx_cart_add(&f, "c", FX_T0 + 3, "22423", "", 2, 1275), 4);
    apply_ok(&p, fx_customer(&f, "u", FX_T0, "05-14", "Europe/London", "en-GB", ""), 5);
    apply_ok(&p, fx_consent(&f, "s", FX_T0, PATRON__V1__CHANNEL__SMS, true), 6);
    apply_ok(&p, fx_review(&f, "r", FX_T0, "71053", 4), 7);

    json_t *j = profile_json(&p, FX_T0 + 12 * FX_DAY);
    cr_expect_str_eq(json_string_value(json_object_get(j, "customer_id")), "17850");
    cr_expect_eq(json_integer_value(json_object_get(j, "orders")), 1);
    cr_expect_eq(json_integer_value(json_object_get(j, "net_spend_cents")), 545023);
    cr_expect_eq(json_integer_value(json_object_get(j, "points")), 5450 + 10);
    cr_expect_str_eq(json_string_value(json_object_get(j, "tier")), "platinum");
    cr_expect_eq(json_integer_value(json_object_get(j, "first_seen_ms")), FX_T0);
    cr_expect_eq(json_integer_value(json_object_get(j, "last_seen_ms")), FX_T0 + 3);
    cr_expect_eq(json_integer_value(json_object_get(j, "last_purchase_ms")), FX_T0);
    json_t *rfm = json_object_get(j, "rfm");
    cr_expect_eq(json_integer_value(json_object_get(rfm, "recency_days")), 12);
    cr_expect_eq(json_integer_value(json_object_get(rfm, "r")), 5);
    cr_expect_eq(json_integer_value(json_object_get(rfm, "f")), 1);
    cr_expect_eq(json_integer_value(json_object_get(rfm, "m")), 5);
    cr_expect_str_eq(json_string_value(json_object_get(j, "segment")), "new");
    double churn = json_real_value(json_object_get(j, "churn_risk"));
    /* the default model (CDNOW's): one order 12 days ago, P(none in 90 days) =
     * ((30.898 + 12) / (30.898 + 12 + 90))^0.243 */
    cr_expect(fabs(churn - pow(42.898 / 132.898, 0.243)) < 1e-4, "%f", churn);
    cr_expect_eq(json_integer_value(json_object_get(j, "churn_horizon_days")), 90);
    cr_expect_gt(json_integer_value(json_object_get(j, "predicted_value_12m_cents")), 0);

    json_t *top = json_object_get(j, "top_categories");
    cr_assert_eq(json_array_size(top), 2);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(top, 0), "category")),
                     "home");
    double s0 = json_real_value(json_object_get(json_array_get(top, 0), "score"));
    double s1 = json_real_value(json_object_get(json_array_get(top, 1), "score"));
    cr_expect(s0 > s1 && s0 < 3.0 && s1 < 2.0, "decayed to now: %f %f", s0, s1);
    cr_expect_eq(s0, round(s0 * 10000) / 10000, "four decimals");

    json_t *recent = json_object_get(j, "recent_items");
    json_t *viewed = json_object_get(recent, "viewed");
    cr_assert_eq(json_array_size(viewed), 2);
    cr_expect_str_eq(json_string_value(json_array_get(viewed, 0)), "85123B");
    json_t *bought = json_object_get(recent, "bought");
    cr_assert_eq(json_array_size(bought), 1);
    cr_expect_str_eq(json_string_value(json_array_get(bought, 0)), "71053");
    json_t *cart = json_object_get(j, "cart");
    cr_assert_eq(json_array_size(cart), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(cart, 0), "item_id")),
                     "22423");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(cart, 0), "quantity")), 2);
    json_t *consent = json_object_get(j, "consent");
    cr_expect(json_is_true(json_object_get(consent, "sms")));
    cr_expect(json_is_false(json_object_get(consent, "email")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "time_zone")), "Europe/London");
    cr_expect_str_eq(json_string_value(json_object_get(j, "locale")), "en-GB");
    cr_expect_str_eq(json_string_value(json_object_get(j, "birthday")), "05-14");
    cr_expect(json_is_null(json_object_get(j, "country")));
    cr_expect_eq(json_integer_value(json_object_get(j, "reviews")), 1);
    cr_expect_eq(json_integer_value(json_object_get(j, "refunds")), 0);
    json_decref(j);
}

Test(profile_json, full_profile_serializes)
{
    struct patron_profile p = full_profile();
    json_t *j = profile_json(&p, FX_T0);
    cr_expect_eq(json_array_size(json_object_get(j, "top_categories")),
                 PATRON_PROFILE_CATEGORIES_MAX);
    cr_expect_eq(json_array_size(json_object_get(j, "cart")), PATRON_PROFILE_CART_MAX);
    cr_expect_eq(json_array_size(json_object_get(json_object_get(j, "recent_items"), "bought")),
                 PATRON_PROFILE_BOUGHT_MAX);
    json_decref(j);
}

/* A visitor's profile says whose it is not (customer_id null) and which
 * visitor; a customer's lists the visitors merged into it. */
Test(profile_json, identity)
{
    static struct patron_profile p;
    patron_profile_init_visitor(&p, "cookie-1");
    json_t *j = profile_json(&p, FX_T0);
    cr_expect(json_is_null(json_object_get(j, "customer_id")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "anonymous_id")), "cookie-1");
    cr_expect_eq(json_array_size(json_object_get(j, "merged_visitors")), 0);
    json_decref(j);

    patron_profile_init(&p, "17850");
    patron_copy_str(p.aliases[0].anonymous_id, sizeof(p.aliases[0].anonymous_id), "cookie-1");
    p.aliases[0].merged_at_ms = FX_T0;
    p.aliases[0].viewed = 3;
    p.aliases[0].cart_lines = 1;
    p.aliases[0].orders = 2;
    p.n_aliases = 1;
    j = profile_json(&p, FX_T0);
    cr_expect_null(json_object_get(j, "anonymous_id"));
    json_t *m = json_array_get(json_object_get(j, "merged_visitors"), 0);
    cr_assert_not_null(m);
    cr_expect_str_eq(json_string_value(json_object_get(m, "anonymous_id")), "cookie-1");
    cr_expect_eq(json_integer_value(json_object_get(m, "merged_at_ms")), FX_T0);
    cr_expect_eq(json_integer_value(json_object_get(m, "viewed")), 3);
    cr_expect_eq(json_integer_value(json_object_get(m, "cart_lines")), 1);
    cr_expect_eq(json_integer_value(json_object_get(m, "orders")), 2);
    json_decref(j);
}
