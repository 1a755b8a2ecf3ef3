#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/profile.h"
#include "patron/v1/profile.pb-c.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(profile_codec);
PATRON_LEAK_CHECKED_SUITE(profile_json);

static struct patron_profile_config defcfg(void)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    return c;
}

/* Applies as the profile's customer and asserts that it was applied. */
static void apply_ok(struct patron_profile *p, Patron__V1__Event *ev, int64_t offset)
{
    ev->customer_id = p->customer_id;
    struct patron_profile_config c = defcfg();
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply(p, ev, 1, offset, &c, &out), 0);
    cr_assert_eq(out.result, PATRON_APPLY_APPLIED);
}

/* Field by field, so that a codec that forgets one is caught by name. */
static void expect_same(const struct patron_profile *a, const struct patron_profile *b)
{
    cr_expect_str_eq(a->customer_id, b->customer_id);
#define SAME(f) cr_expect_eq(a->f, b->f, #f)
    SAME(orders);
    SAME(net_spend_cents);
    SAME(points);
    SAME(reviews);
    SAME(refunds);
    SAME(first_seen_ms);
    SAME(last_seen_ms);
    SAME(first_purchase_ms);
    SAME(last_purchase_ms);
    SAME(last_event_ms);
    SAME(cart_updated_ms);
    SAME(n_months);
    SAME(n_categories);
    SAME(n_viewed);
    SAME(n_bought);
    SAME(n_cart);
    SAME(consent_sms);
    SAME(consent_push);
    SAME(consent_email);
    SAME(n_event_ids);
    SAME(has_source);
    SAME(source_partition);
    SAME(source_offset);
    SAME(erased);
    SAME(n_bought_earlier);
#undef SAME
    for (size_t i = 0; i < a->n_months; i++) {
        cr_expect_eq(a->months[i].month, b->months[i].month);
        cr_expect_eq(a->months[i].cents, b->months[i].cents);
    }
    for (size_t i = 0; i < a->n_categories; i++) {
        cr_expect_str_eq(a->categories[i].category, b->categories[i].category);
        cr_expect_eq(a->categories[i].score, b->categories[i].score);
        cr_expect_eq(a->categories[i].updated_ms, b->categories[i].updated_ms);
    }
    for (size_t i = 0; i < a->n_viewed; i++)
        cr_expect_str_eq(a->viewed[i], b->viewed[i]);
    for (size_t i = 0; i < a->n_bought; i++)
        cr_expect_str_eq(a->bought[i], b->bought[i]);
    for (size_t i = 0; i < a->n_cart; i++) {
        cr_expect_str_eq(a->cart[i].item_id, b->cart[i].item_id);
        cr_expect_eq(a->cart[i].quantity, b->cart[i].quantity);
    }
    cr_expect_str_eq(a->time_zone, b->time_zone);
    cr_expect_str_eq(a->locale, b->locale);
    cr_expect_str_eq(a->birthday, b->birthday);
    cr_expect_str_eq(a->country, b->country);
    for (size_t i = 0; i < a->n_event_ids; i++)
        cr_expect_eq(a->event_ids[i], b->event_ids[i]);
    for (size_t i = 0; i < a->n_bought_earlier; i++)
        cr_expect_eq(a->bought_earlier[i], b->bought_earlier[i]);
}

static struct patron_profile round_trip(const struct patron_profile *p, size_t *encoded_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(patron_profile_encode(p, &buf, &len), 0);
    struct patron_profile q;
    memset(&q, 0x5A, sizeof(q));
    cr_assert_eq(patron_profile_decode(&q, buf, len), 0);
    /* Re-encoding gives the same bytes. */
    uint8_t *again = NULL;
    size_t len2 = 0;
    cr_assert_eq(patron_profile_encode(&q, &again, &len2), 0);
    cr_expect_eq(len, len2);
    cr_expect_eq(memcmp(buf, again, len), 0);
    free(again);
    free(buf);
    if (encoded_len)
        *encoded_len = len;
    return q;
}

/* A profile with every list at capacity and every field set. */
static struct patron_profile full_profile(void)
{
    struct patron_profile p;
    patron_profile_init(&p, "customer-with-a-rather-long-identifier-0123456789-0123456789-012");
    p.orders = 35;
    p.net_spend_cents = -545023;
    p.points = INT64_MIN;
    p.reviews = 3;
    p.refunds = INT64_MAX;
    p.first_seen_ms = 1;
    p.last_seen_ms = FX_T0;
    p.first_purchase_ms = FX_T0 - 100;
    p.last_purchase_ms = FX_T0 - 10;
    p.last_event_ms = FX_T0;
    p.cart_updated_ms = FX_T0 - 5;
    for (size_t i = 0; i < PATRON_PROFILE_MONTHS; i++) {
        p.months[i].month = (int32_t)(2020 * 12 + i);
        p.months[i].cents = (int64_t)i * 1000 - 3000;
    }
    p.n_months = PATRON_PROFILE_MONTHS;
    for (size_t i = 0; i < PATRON_PROFILE_CATEGORIES_MAX; i++) {
        memset(p.categories[i].category, 'a' + (int)i, PATRON_ID_MAX);
        p.categories[i].score = 1.0 / 3.0 + (double)i;
        p.categories[i].updated_ms = FX_T0 - (int64_t)i;
    }
    p.n_categories = PATRON_PROFILE_CATEGORIES_MAX;
    for (size_t i = 0; i < PATRON_PROFILE_VIEWED_MAX; i++)
        memset(p.viewed[i], 'A' + (int)i, PATRON_ID_MAX);
    p.n_viewed = PATRON_PROFILE_VIEWED_MAX;
    for (size_t i = 0; i < PATRON_PROFILE_BOUGHT_MAX; i++)
        snprintf(p.bought[i], sizeof(p.bought[i]), "%064zu", i);
    p.n_bought = PATRON_PROFILE_BOUGHT_MAX;
    for (size_t i = 0; i < PATRON_PROFILE_BOUGHT_EARLIER_MAX; i++)
        p.bought_earlier[i] =
            UINT32_MAX - (uint32_t)(PATRON_PROFILE_BOUGHT_EARLIER_MAX - i) * 4099u;
    p.n_bought_earlier = PATRON_PROFILE_BOUGHT_EARLIER_MAX;
    for (size_t i = 0; i < PATRON_PROFILE_CART_MAX; i++) {
        snprintf(p.cart[i].item_id, sizeof(p.cart[i].item_id), "%064zu", i + 1000);
        p.cart[i].quantity = INT32_MAX - (int32_t)i;
    }
    p.n_cart = PATRON_PROFILE_CART_MAX;
    p.consent_sms = p.consent_email = true;
    memset(p.time_zone, 'Z', PATRON_PROFILE_TIME_ZONE_MAX);
    memset(p.locale, 'l', PATRON_PROFILE_LOCALE_MAX);
    memcpy(p.birthday, "02-29", 5);
    memset(p.country, 'c', PATRON_PROFILE_COUNTRY_MAX);
    for (size_t i = 0; i < PATRON_PROFILE_EVENT_IDS_MAX; i++)
        p.event_ids[i] = UINT64_MAX - i;
    p.n_event_ids = PATRON_PROFILE_EVENT_IDS_MAX;
    p.has_source = true;
    p.source_partition = 2147483647;
    p.source_offset = INT64_MAX;
    p.erased = true;
    return p;
}

Test(profile_codec, full_profile_round_trips)
{
    struct patron_profile p = full_profile();
    size_t len;
    struct patron_profile q = round_trip(&p, &len);
    expect_same(&p, &q);
    /* ~8.6 KiB of lists plus 4 KiB of bought_earlier hashes */
    cr_expect_lt(len, 13 * 1024, "full profile: %zu bytes", len);
    cr_log_info("full profile encodes to %zu bytes", len);
}

Test(profile_codec, empty_profile_is_tiny)
{
    struct patron_profile p;
    patron_profile_init(&p, "17850");
    size_t len;
    struct patron_profile q = round_trip(&p, &len);
    expect_same(&p, &q);
    cr_expect_eq(q.has_source, false);
    cr_expect_leq(len, 8, "%zu bytes", len);
}

/* A typical online-retail customer: 5 orders of 3 lines (15 distinct items,
 * 2 categories). The budget is ~300 bytes; what makes it up (measured): the
 * bought list 120, categories 51, event-id ring 43, six timestamps 44, month
 * buckets 36. Views and a CustomerUpdate add ~25 bytes per view and the
 * strings' lengths. */
Test(profile_codec, typical_customer_fits_the_budget)
{
    struct patron_profile p;
    patron_profile_init(&p, "17850");
    struct fx_event f;
    char ids[64][8], items[32][8];
    int64_t off = 1000000;
    for (int o = 0; o < 5; o++) {
        struct fx_line lines[3];
        for (int l = 0; l < 3; l++) {
            snprintf(items[o * 3 + l], sizeof(items[0]), "8512%d%c", o, 'A' + l);
            lines[l] = (struct fx_line){items[o * 3 + l], l ? "home" : "kitchen", 2, 295};
        }
        snprintf(ids[o], sizeof(ids[o]), "o%d", 536365 + o);
        apply_ok(&p, fx_purchase(&f, ids[o], FX_T0 + o * 20 * FX_DAY, 3, lines), off++);
    }
    size_t len;
    struct patron_profile q = round_trip(&p, &len);
    expect_same(&p, &q);
    cr_log_info("typical purchase-only customer encodes to %zu bytes", len);
    cr_expect_leq(len, 330, "typical customer: %zu bytes", len);

    for (int v = 0; v < 3; v++) {
        snprintf(ids[10 + v], sizeof(ids[0]), "v%d", v);
        apply_ok(&p, fx_view(&f, ids[10 + v], FX_T0 + 100 * FX_DAY, items[v], "home"), off++);
    }
    apply_ok(&p, fx_customer(&f, "u", FX_T0, "05-14", "Europe/London", "en-GB", "United Kingdom"),
             off++);
    apply_ok(&p, fx_consent(&f, "s", FX_T0, PATRON__V1__CHANNEL__EMAIL, true), off++);
    q = round_trip(&p, &len);
    expect_same(&p, &q);
    cr_log_info("... with views, consent and customer data: %zu bytes", len);
    cr_expect_leq(len, 450, "%zu bytes", len);
}

/* Decoding restores the dedupe state: a replay after a restart is caught. */
Test(profile_codec, dedupe_state_survives_storage)
{
    struct patron_profile p;
    patron_profile_init(&p, FX_CUSTOMER);
    struct fx_event f;
    struct fx_line line = {"x", "", 1, 100};
    apply_ok(&p, fx_purchase(&f, "p1", FX_T0, 1, &line), 41);
    struct patron_profile q = round_trip(&p, NULL);
    struct patron_profile_config c = defcfg();
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply(&q, fx_purchase(&f, "p1", FX_T0, 1, &line), 1, 41, &c, &out),
                 0);
    cr_expect_eq(out.result, PATRON_APPLY_REPLAYED);
    cr_assert_eq(patron_profile_apply(&q, fx_purchase(&f, "p1", FX_T0, 1, &line), 1, 42, &c, &out),
                 0);
    cr_expect_eq(out.result, PATRON_APPLY_DUPLICATE);
    cr_expect_eq(q.orders, 1);
}

Test(profile_codec, encode_refuses_a_broken_profile)
{
    struct patron_profile p;
    patron_profile_init(&p, "c");
    p.n_viewed = PATRON_PROFILE_VIEWED_MAX + 1;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_expect_eq(patron_profile_encode(&p, &buf, &len), PATRON_EINVAL);
    cr_expect_null(buf);
}

/* Packs a ProfileState built by the test. */
static uint8_t *pack_state(const Patron__V1__ProfileState *m, size_t *len)
{
    *len = patron__v1__profile_state__get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(patron__v1__profile_state__pack(m, buf), *len);
    return buf;
}

enum state_mutation {
    S_EMPTY_CUSTOMER,
    S_LONG_CUSTOMER,
    S_BAD_UTF8_CUSTOMER,
    S_TOO_MANY_VIEWED,
    S_TOO_MANY_BOUGHT,
    S_TOO_MANY_CART,
    S_TOO_MANY_MONTHS,
    S_TOO_MANY_CATEGORIES,
    S_TOO_MANY_EVENT_IDS,
    S_LONG_VIEWED,
    S_EMPTY_BOUGHT,
    S_CONTROL_BYTE_CART,
    S_ZERO_QUANTITY,
    S_NAN_SCORE,
    S_INF_SCORE,
    S_UNSORTED_MONTHS,
    S_LONG_TIME_ZONE,
    S_LONG_LOCALE,
    S_LONG_BIRTHDAY,
    S_LONG_COUNTRY,
    S_LONG_CATEGORY,
    S_TOO_MANY_BOUGHT_EARLIER,
    S_UNSORTED_BOUGHT_EARLIER,
    S_DUPLICATE_BOUGHT_EARLIER,
    S_COUNT,
};

Test(profile_codec, decode_rejects_what_breaks_the_limits)
{
    static char long_id[PATRON_ID_MAX + 2];
    memset(long_id, 'x', PATRON_ID_MAX + 1);
    static char *strs[PATRON_PROFILE_BOUGHT_MAX + 1];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(strs); i++)
        strs[i] = "item";
    static uint64_t ids[PATRON_PROFILE_EVENT_IDS_MAX + 1];
    static uint32_t earlier[PATRON_PROFILE_BOUGHT_EARLIER_MAX + 1];
    Patron__V1__CartLine cart[PATRON_PROFILE_CART_MAX + 1];
    Patron__V1__CartLine *cart_ptrs[PATRON_PROFILE_CART_MAX + 1];
    Patron__V1__MonthSpend months[PATRON_PROFILE_MONTHS + 1];
    Patron__V1__MonthSpend *month_ptrs[PATRON_PROFILE_MONTHS + 1];
    Patron__V1__CategoryScore cats[PATRON_PROFILE_CATEGORIES_MAX + 1];
    Patron__V1__CategoryScore *cat_ptrs[PATRON_PROFILE_CATEGORIES_MAX + 1];

    for (int m = 0; m < S_COUNT; m++) {
        for (size_t i = 0; i < PATRON_ARRAY_LEN(cart); i++) {
            patron__v1__cart_line__init(&cart[i]);
            cart[i].item_id = "item";
            cart[i].quantity = 1;
            cart_ptrs[i] = &cart[i];
        }
        for (size_t i = 0; i < PATRON_ARRAY_LEN(months); i++) {
            patron__v1__month_spend__init(&months[i]);
            months[i].month = 24000 + (int32_t)i;
            month_ptrs[i] = &months[i];
        }
        for (size_t i = 0; i < PATRON_ARRAY_LEN(cats); i++) {
            patron__v1__category_score__init(&cats[i]);
            cats[i].category = "home";
            cats[i].score = 1.0;
            cat_ptrs[i] = &cats[i];
        }
        Patron__V1__ProfileState s = PATRON__V1__PROFILE_STATE__INIT;
        s.customer_id = "c";
        s.viewed = s.bought = strs;
        s.n_viewed = s.n_bought = 1;
        s.cart = cart_ptrs;
        s.n_cart = 1;
        s.months = month_ptrs;
        s.n_months = 1;
        s.categories = cat_ptrs;
        s.n_categories = 1;
        s.recent_event_ids = ids;
        s.n_recent_event_ids = 1;
        for (size_t i = 0; i < PATRON_ARRAY_LEN(earlier); i++)
            earlier[i] = 10u + (uint32_t)i;
        s.bought_earlier = earlier;
        s.n_bought_earlier = 2;

        switch ((enum state_mutation)m) {
        case S_EMPTY_CUSTOMER:
            s.customer_id = "";
            break;
        case S_LONG_CUSTOMER:
            s.customer_id = long_id;
            break;
        case S_BAD_UTF8_CUSTOMER:
            s.customer_id = "\xff";
            break;
        case S_TOO_MANY_VIEWED:
            s.n_viewed = PATRON_PROFILE_VIEWED_MAX + 1;
            break;
        case S_TOO_MANY_BOUGHT:
            s.n_bought = PATRON_PROFILE_BOUGHT_MAX + 1;
            break;
        case S_TOO_MANY_CART:
            s.n_cart = PATRON_PROFILE_CART_MAX + 1;
            break;
        case S_TOO_MANY_MONTHS:
            s.n_months = PATRON_PROFILE_MONTHS + 1;
            break;
        case S_TOO_MANY_CATEGORIES:
            s.n_categories = PATRON_PROFILE_CATEGORIES_MAX + 1;
            break;
        case S_TOO_MANY_EVENT_IDS:
            s.n_recent_event_ids = PATRON_PROFILE_EVENT_IDS_MAX + 1;
            break;
        case S_LONG_VIEWED:
            strs[0] = long_id;
            break;
        case S_EMPTY_BOUGHT:
            strs[0] = "";
            break;
        case S_CONTROL_BYTE_CART:
            cart[0].item_id = "a\nb";
            break;
        case S_ZERO_QUANTITY:
            cart[0].quantity = 0;
            break;
        case S_NAN_SCORE:
            cats[0].score = NAN;
            break;
        case S_INF_SCORE:
            cats[0].score = -INFINITY;
            break;
        case S_UNSORTED_MONTHS:
            s.n_months = 2;
            months[1].month = months[0].month;
            break;
        case S_LONG_TIME_ZONE:
            s.time_zone = long_id;
            break;
        case S_LONG_LOCALE:
            s.locale = "en-GB-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
            break;
        case S_LONG_BIRTHDAY:
            s.birthday = "05-145";
            break;
        case S_LONG_COUNTRY:
            s.country = long_id;
            break;
        case S_LONG_CATEGORY:
            cats[0].category = long_id;
            break;
        case S_TOO_MANY_BOUGHT_EARLIER:
            s.n_bought_earlier = PATRON_PROFILE_BOUGHT_EARLIER_MAX + 1;
            break;
        case S_UNSORTED_BOUGHT_EARLIER:
            earlier[0] = 12;
            break;
        case S_DUPLICATE_BOUGHT_EARLIER:
            earlier[1] = earlier[0];
            break;
        case S_COUNT:
            break;
        }
        size_t len;
        uint8_t *buf = pack_state(&s, &len);
        struct patron_profile p;
        patron_profile_init(&p, "untouched");
        cr_expect_eq(patron_profile_decode(&p, buf, len), PATRON_EINVAL, "mutation %d", m);
        cr_expect_str_eq(p.customer_id, "untouched", "mutation %d", m);
        strs[0] = "item";
        free(buf);
    }
}

Test(profile_codec, decode_accepts_the_base_state)
{
    /* The control for the table above: the unmutated state decodes. */
    char *strs[] = {"item"};
    Patron__V1__ProfileState s = PATRON__V1__PROFILE_STATE__INIT;
    s.customer_id = "c";
    s.viewed = strs;
    s.n_viewed = 1;
    s.birthday = "05-14";
    size_t len;
    uint8_t *buf = pack_state(&s, &len);
    struct patron_profile p;
    cr_assert_eq(patron_profile_decode(&p, buf, len), 0);
    cr_expect_str_eq(p.customer_id, "c");
    cr_expect_str_eq(p.viewed[0], "item");
    cr_expect_str_eq(p.birthday, "05-14");
    free(buf);
}

Test(profile_codec, decode_rejects_garbage_and_huge_input)
{
    struct patron_profile p;
    patron_profile_init(&p, "untouched");
    static const struct {
        const char *bytes;
        size_t len;
    } rows[] = {
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11},
        {"\x0a\x09"
         "abc",
         5},
        {"\x07", 1},
        {"", 0}, /* decodes, but without a customer_id */
        {"\x0a\x01"
         "c"
         "\x52\x02\x11\x00",
         7}, /* category score double cut short */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        cr_expect_eq(patron_profile_decode(&p, (const uint8_t *)rows[i].bytes, rows[i].len),
                     PATRON_EINVAL, "row %zu", i);
        cr_expect_str_eq(p.customer_id, "untouched");
    }
    size_t big = PATRON_PROFILE_ENCODED_MAX + 1;
    uint8_t *buf = calloc(1, big);
    cr_assert_not_null(buf);
    cr_expect_eq(patron_profile_decode(&p, buf, big), PATRON_ETOOBIG);
    free(buf);

    /* Random bytes: never a crash; whatever decodes satisfies the limits. */
    uint8_t rnd[512];
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(x % sizeof(rnd));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
        struct patron_profile q;
        if (patron_profile_decode(&q, rnd, len) == 0) {
            cr_assert_leq(q.n_bought, PATRON_PROFILE_BOUGHT_MAX);
            cr_assert_leq(strlen(q.customer_id), PATRON_ID_MAX);
        }
    }
}

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
        "predicted_value_12m_cents",
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
    cr_expect(churn > 0.0 && churn < 0.01, "%f", churn); /* 12 of 90 days */
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
