#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "fixture_wire.h"
#include "patron/event_check.h"
#include "patron/pb_unpack.h"
#include "patron/profile.h"
#include "patron/v1/profile.pb-c.h"
#include "patron/profile_codec.h"
#include "patron/profile_json.h"
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
    SAME(event_ids_floor_ms);
    SAME(n_counted);
    SAME(counted_floor_month);
    SAME(consent_ms[0]);
    SAME(consent_ms[1]);
    SAME(consent_ms[2]);
    SAME(customer_ms);
    SAME(erased_at_ms);
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
    for (size_t i = 0; i < a->n_event_ids; i++) {
        cr_expect_eq(a->event_ids[i], b->event_ids[i]);
        cr_expect_eq(a->event_ms[i], b->event_ms[i]);
    }
    for (size_t i = 0; i < a->n_counted; i++)
        cr_expect_eq(a->counted[i], b->counted[i]);
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
    for (size_t i = 0; i < PATRON_PROFILE_EVENT_IDS_MAX; i++) {
        p.event_ids[i] = UINT64_MAX - i;
        p.event_ms[i] = FX_T0 - (int64_t)i;
    }
    p.n_event_ids = PATRON_PROFILE_EVENT_IDS_MAX;
    p.event_ids_floor_ms = FX_T0 - 1000;
    for (size_t i = 0; i < PATRON_PROFILE_COUNTED_MAX; i++)
        p.counted[i] = (UINT64_C(600000) << PATRON_COUNTED_HASH_BITS) + i * 7919;
    p.n_counted = PATRON_PROFILE_COUNTED_MAX;
    p.counted_floor_month = 2020 * 12;
    p.consent_ms[0] = FX_T0;
    p.consent_ms[1] = FX_T0 + 1;
    p.consent_ms[2] = INT64_MAX;
    p.customer_ms = 1;
    p.erased_at_ms = FX_T0 - 7;
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
    /* ~8.6 KiB of lists, 4 KiB of bought_earlier hashes, 5.3 KiB of recent
     * events with their times, 32 KiB of the ledger of counted events */
    cr_expect_lt(len, 51 * 1024, "full profile: %zu bytes", len);
    cr_expect_lt(len, PATRON_PROFILE_ENCODED_MAX, "full profile: %zu bytes", len);
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
    /* the views' times (~7 bytes each) and the consent and customer update
     * times (~8 bytes each) are what resends are decided by */
    cr_expect_leq(len, 490, "%zu bytes", len);
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

/* ---- the hand-written decoder against protobuf-c ---------------------------
 *
 * The oracle is the decoder patron_profile_decode replaced, kept verbatim in
 * substance: protobuf-c's unpack, then the checks and the copy. The new one
 * must agree with it on every buffer: accept or reject alike and, when both
 * accept, give the same profile. */

static bool ref_text_ok(const char *src, size_t max, bool required)
{
    size_t len = src ? strlen(src) : 0;
    if (len == 0)
        return !required;
    return len <= max && patron_event_text_valid(src, len);
}

static bool ref_id_ok(const char *src)
{
    return ref_text_ok(src, PATRON_ID_MAX, true);
}

static int ref_check(const Patron__V1__ProfileState *m)
{
    if (!ref_id_ok(m->customer_id))
        return PATRON_EINVAL;
    if (m->n_months > PATRON_PROFILE_MONTHS || m->n_categories > PATRON_PROFILE_CATEGORIES_MAX ||
        m->n_viewed > PATRON_PROFILE_VIEWED_MAX || m->n_bought > PATRON_PROFILE_BOUGHT_MAX ||
        m->n_cart > PATRON_PROFILE_CART_MAX ||
        m->n_recent_event_ids > PATRON_PROFILE_EVENT_IDS_MAX ||
        m->n_bought_earlier > PATRON_PROFILE_BOUGHT_EARLIER_MAX ||
        m->n_counted_events > PATRON_PROFILE_COUNTED_MAX ||
        (m->n_recent_event_ms != 0 && m->n_recent_event_ms != m->n_recent_event_ids) ||
        m->counted_floor_month < 0)
        return PATRON_EINVAL;
    for (size_t i = 1; i < m->n_counted_events; i++)
        if (m->counted_events[i] <= m->counted_events[i - 1])
            return PATRON_EINVAL;
    for (size_t i = 1; i < m->n_months; i++)
        if (m->months[i]->month <= m->months[i - 1]->month)
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_categories; i++)
        if (!ref_id_ok(m->categories[i]->category) || !isfinite(m->categories[i]->score))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_viewed; i++)
        if (!ref_id_ok(m->viewed[i]))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_bought; i++)
        if (!ref_id_ok(m->bought[i]))
            return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_cart; i++)
        if (!ref_id_ok(m->cart[i]->item_id) || m->cart[i]->quantity <= 0)
            return PATRON_EINVAL;
    if (!ref_text_ok(m->time_zone, PATRON_PROFILE_TIME_ZONE_MAX, false) ||
        !ref_text_ok(m->locale, PATRON_PROFILE_LOCALE_MAX, false) ||
        !ref_text_ok(m->birthday, PATRON_PROFILE_BIRTHDAY_LEN, false) ||
        !ref_text_ok(m->country, PATRON_PROFILE_COUNTRY_MAX, false))
        return PATRON_EINVAL;
    for (size_t i = 1; i < m->n_bought_earlier; i++)
        if (m->bought_earlier[i] <= m->bought_earlier[i - 1])
            return PATRON_EINVAL;
    return 0;
}

static void ref_take(char *dst, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static void ref_fill(struct patron_profile *p, const Patron__V1__ProfileState *m)
{
    ref_take(p->customer_id, m->customer_id);
    p->orders = m->orders;
    p->net_spend_cents = m->net_spend_cents;
    p->points = m->points;
    p->reviews = m->reviews;
    p->refunds = m->refunds;
    p->first_seen_ms = m->first_seen_ms;
    p->last_seen_ms = m->last_seen_ms;
    p->first_purchase_ms = m->first_purchase_ms;
    p->last_purchase_ms = m->last_purchase_ms;
    p->last_event_ms = m->last_event_ms;
    p->cart_updated_ms = m->cart_updated_ms;
    for (size_t i = 0; i < m->n_months; i++) {
        p->months[i].month = m->months[i]->month;
        p->months[i].cents = m->months[i]->cents;
    }
    p->n_months = m->n_months;
    for (size_t i = 0; i < m->n_categories; i++) {
        ref_take(p->categories[i].category, m->categories[i]->category);
        p->categories[i].score = m->categories[i]->score;
        p->categories[i].updated_ms = m->categories[i]->updated_ms;
    }
    p->n_categories = m->n_categories;
    for (size_t i = 0; i < m->n_viewed; i++)
        ref_take(p->viewed[i], m->viewed[i]);
    p->n_viewed = m->n_viewed;
    for (size_t i = 0; i < m->n_bought; i++)
        ref_take(p->bought[i], m->bought[i]);
    p->n_bought = m->n_bought;
    for (size_t i = 0; i < m->n_cart; i++) {
        ref_take(p->cart[i].item_id, m->cart[i]->item_id);
        p->cart[i].quantity = m->cart[i]->quantity;
    }
    p->n_cart = m->n_cart;
    p->consent_sms = m->consent_sms != 0;
    p->consent_push = m->consent_push != 0;
    p->consent_email = m->consent_email != 0;
    ref_take(p->time_zone, m->time_zone);
    ref_take(p->locale, m->locale);
    ref_take(p->birthday, m->birthday);
    ref_take(p->country, m->country);
    if (m->n_recent_event_ids)
        memcpy(p->event_ids, m->recent_event_ids, m->n_recent_event_ids * sizeof(p->event_ids[0]));
    p->n_event_ids = m->n_recent_event_ids;
    for (size_t i = 0; i < m->n_recent_event_ids; i++)
        p->event_ms[i] = m->n_recent_event_ms ? m->recent_event_ms[i] : 0;
    p->event_ids_floor_ms = m->recent_floor_ms;
    if (m->n_counted_events)
        memcpy(p->counted, m->counted_events, m->n_counted_events * sizeof(p->counted[0]));
    p->n_counted = m->n_counted_events;
    p->counted_floor_month = m->counted_floor_month;
    p->consent_ms[0] = m->consent_sms_ms;
    p->consent_ms[1] = m->consent_push_ms;
    p->consent_ms[2] = m->consent_email_ms;
    p->customer_ms = m->customer_updated_ms;
    p->erased_at_ms = m->erased_at_ms;
    p->has_source = m->source != NULL;
    p->source_partition = m->source ? m->source->partition : 0;
    p->source_offset = m->source ? m->source->offset : 0;
    p->erased = m->erased != 0;
    if (m->n_bought_earlier)
        memcpy(p->bought_earlier, m->bought_earlier,
               m->n_bought_earlier * sizeof(p->bought_earlier[0]));
    p->n_bought_earlier = m->n_bought_earlier;
}

static int ref_decode(struct patron_profile *p, const uint8_t *buf, size_t len)
{
    if (len > PATRON_PROFILE_ENCODED_MAX)
        return PATRON_ETOOBIG;
    static const uint8_t empty[1];
    Patron__V1__ProfileState *m = patron__v1__profile_state__unpack(NULL, len, buf ? buf : empty);
    if (!m)
        return PATRON_EINVAL;
    int rc = ref_check(m);
    if (rc == 0)
        ref_fill(p, m);
    patron__v1__profile_state__free_unpacked(m, NULL);
    return rc;
}

/* Field by field up to the counts; says in why which one differs. Quiet,
 * unlike expect_same, for loops of 100k cases. */
static bool same_profile(const struct patron_profile *a, const struct patron_profile *b, char *why,
                         size_t cap)
{
#define DIFF(cond, ...)                                                                            \
    do {                                                                                           \
        if (cond) {                                                                                \
            snprintf(why, cap, __VA_ARGS__);                                                       \
            return false;                                                                          \
        }                                                                                          \
    } while (0)
#define NE(f) DIFF(a->f != b->f, "%s", #f)
#define STRNE(f) DIFF(strcmp(a->f, b->f) != 0, "%s: '%s' vs '%s'", #f, a->f, b->f)
    STRNE(customer_id);
    NE(orders);
    NE(net_spend_cents);
    NE(points);
    NE(reviews);
    NE(refunds);
    NE(first_seen_ms);
    NE(last_seen_ms);
    NE(first_purchase_ms);
    NE(last_purchase_ms);
    NE(last_event_ms);
    NE(cart_updated_ms);
    NE(n_months);
    NE(n_categories);
    NE(n_viewed);
    NE(n_bought);
    NE(n_cart);
    NE(consent_sms);
    NE(consent_push);
    NE(consent_email);
    NE(n_event_ids);
    NE(event_ids_floor_ms);
    NE(n_counted);
    NE(counted_floor_month);
    NE(consent_ms[0]);
    NE(consent_ms[1]);
    NE(consent_ms[2]);
    NE(customer_ms);
    NE(erased_at_ms);
    NE(has_source);
    NE(source_partition);
    NE(source_offset);
    NE(erased);
    NE(n_bought_earlier);
    STRNE(time_zone);
    STRNE(locale);
    STRNE(birthday);
    STRNE(country);
    for (size_t i = 0; i < a->n_months; i++) {
        NE(months[i].month);
        NE(months[i].cents);
    }
    for (size_t i = 0; i < a->n_categories; i++) {
        STRNE(categories[i].category);
        /* bit for bit: -0.0 and 0.0 differ, and so would two NaNs */
        DIFF(memcmp(&a->categories[i].score, &b->categories[i].score, sizeof(double)) != 0,
             "categories[%zu].score", i);
        NE(categories[i].updated_ms);
    }
    for (size_t i = 0; i < a->n_viewed; i++)
        STRNE(viewed[i]);
    for (size_t i = 0; i < a->n_bought; i++)
        STRNE(bought[i]);
    for (size_t i = 0; i < a->n_cart; i++) {
        STRNE(cart[i].item_id);
        NE(cart[i].quantity);
    }
    for (size_t i = 0; i < a->n_event_ids; i++) {
        NE(event_ids[i]);
        NE(event_ms[i]);
    }
    for (size_t i = 0; i < a->n_counted; i++)
        NE(counted[i]);
    for (size_t i = 0; i < a->n_bought_earlier; i++)
        NE(bought_earlier[i]);
#undef STRNE
#undef NE
#undef DIFF
    return true;
}

/* Room for decoders_agree, off the stack (12.5 KiB a profile). */
struct oracle {
    struct patron_profile want, got, before;
};

/* Both decoders on one buffer: the same verdict, the same profile, and *p
 * untouched by a failed decode. On disagreement, why says how. */
static bool decoders_agree(struct oracle *o, const uint8_t *buf, size_t len, int *rc_out, char *why,
                           size_t cap)
{
    memset(&o->want, 0x5A, sizeof(o->want));
    memset(&o->got, 0x5A, sizeof(o->got));
    memcpy(&o->before, &o->got, sizeof(o->got));
    int rc_ref = ref_decode(&o->want, buf, len);
    int rc = patron_profile_decode(&o->got, buf, len);
    *rc_out = rc;
    if (rc != rc_ref) {
        snprintf(why, cap, "verdict %d, protobuf-c %d", rc, rc_ref);
        return false;
    }
    if (rc != 0) {
        if (memcmp(&o->got, &o->before, sizeof(o->got)) != 0) {
            snprintf(why, cap, "a failed decode wrote the profile");
            return false;
        }
        return true;
    }
    return same_profile(&o->got, &o->want, why, cap);
}

static struct oracle *oracle_new(void)
{
    struct oracle *o = malloc(sizeof(*o));
    cr_assert_not_null(o);
    return o;
}

/* Valid text of at most max bytes (at least one if required): ASCII mostly,
 * some 2-, 3- and 4-byte UTF-8. */
static void rnd_text(struct rng *r, char *dst, size_t max, bool required)
{
    static const char *const glyphs[] = {
        "a", "Z", "0", "-", "_", " ", "/", "~", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t want = rnd_below(r, 4) == 0 ? max : rnd_below(r, max + 1);
    if (required && want == 0)
        want = 1;
    size_t n = 0;
    while (n < want) {
        const char *g = glyphs[rnd_below(r, PATRON_ARRAY_LEN(glyphs))];
        size_t gl = strlen(g);
        if (n + gl > max || n + gl > want) {
            g = "x";
            gl = 1;
        }
        memcpy(dst + n, g, gl);
        n += gl;
    }
    dst[n] = '\0';
}

static int64_t rnd_i64(struct rng *r)
{
    return wire_rnd_i64(r, FX_T0);
}

static double rnd_score(struct rng *r)
{
    /* no -0.0: both packers leave it out as zero (wire_edge_case_values
     * decodes one written by hand) */
    static const double specials[] = {0.0, 1e-300, -1e300, 0.5, 1.0 / 3.0, 4.9e-324};
    if (chance(r, 30))
        return specials[rnd_below(r, PATRON_ARRAY_LEN(specials))];
    return (double)(int64_t)rnd(r) / 1e12;
}

/* A random profile within every invariant decode checks. Sizes lean small
 * (the mutation loop's speed) with a share of full lists. */
static void rnd_profile(struct rng *r, struct patron_profile *p)
{
    char id[PATRON_ID_MAX + 1];
    rnd_text(r, id, PATRON_ID_MAX, true);
    patron_profile_init(p, id);
    bool big = chance(r, 10);
    p->orders = rnd_i64(r);
    p->net_spend_cents = rnd_i64(r);
    p->points = rnd_i64(r);
    p->reviews = rnd_i64(r);
    p->refunds = rnd_i64(r);
    p->first_seen_ms = rnd_i64(r);
    p->last_seen_ms = rnd_i64(r);
    p->first_purchase_ms = rnd_i64(r);
    p->last_purchase_ms = rnd_i64(r);
    p->last_event_ms = rnd_i64(r);
    p->cart_updated_ms = rnd_i64(r);

    p->n_months = rnd_below(r, PATRON_PROFILE_MONTHS + 1);
    int32_t month = (int32_t)rnd_below(r, 30000) - 5000;
    for (size_t i = 0; i < p->n_months; i++) {
        p->months[i].month = month;
        p->months[i].cents = rnd_i64(r);
        month += 1 + (int32_t)rnd_below(r, 3);
    }
    p->n_categories = rnd_below(r, PATRON_PROFILE_CATEGORIES_MAX + 1);
    for (size_t i = 0; i < p->n_categories; i++) {
        rnd_text(r, p->categories[i].category, PATRON_ID_MAX, true);
        p->categories[i].score = rnd_score(r);
        p->categories[i].updated_ms = rnd_i64(r);
    }
    p->n_viewed = rnd_below(r, PATRON_PROFILE_VIEWED_MAX + 1);
    for (size_t i = 0; i < p->n_viewed; i++)
        rnd_text(r, p->viewed[i], big ? PATRON_ID_MAX : 12, true);
    p->n_bought = big ? PATRON_PROFILE_BOUGHT_MAX : rnd_below(r, 20);
    for (size_t i = 0; i < p->n_bought; i++)
        rnd_text(r, p->bought[i], big ? PATRON_ID_MAX : 12, true);
    p->n_cart = big ? PATRON_PROFILE_CART_MAX : rnd_below(r, 5);
    for (size_t i = 0; i < p->n_cart; i++) {
        rnd_text(r, p->cart[i].item_id, 12, true);
        p->cart[i].quantity = chance(r, 10) ? INT32_MAX : 1 + (int32_t)rnd_below(r, 20);
    }
    p->consent_sms = chance(r, 50);
    p->consent_push = chance(r, 50);
    p->consent_email = chance(r, 50);
    rnd_text(r, p->time_zone, PATRON_PROFILE_TIME_ZONE_MAX, false);
    rnd_text(r, p->locale, PATRON_PROFILE_LOCALE_MAX, false);
    rnd_text(r, p->birthday, PATRON_PROFILE_BIRTHDAY_LEN, false);
    rnd_text(r, p->country, PATRON_PROFILE_COUNTRY_MAX, false);
    p->n_event_ids = big ? PATRON_PROFILE_EVENT_IDS_MAX : rnd_below(r, 40);
    for (size_t i = 0; i < p->n_event_ids; i++) {
        p->event_ids[i] = rnd(r);
        p->event_ms[i] = chance(r, 10) ? rnd_i64(r) : (int64_t)rnd_below(r, 1u << 30) * 1000;
    }
    p->event_ids_floor_ms = chance(r, 50) ? 0 : rnd_i64(r);
    p->n_counted = big ? PATRON_PROFILE_COUNTED_MAX / 8 : (chance(r, 50) ? 0 : rnd_below(r, 30));
    uint64_t e = rnd_below(r, 1000);
    for (size_t i = 0; i < p->n_counted; i++) {
        p->counted[i] = e;
        e += 1 + rnd(r) % (UINT64_C(1) << 50);
    }
    p->counted_floor_month = chance(r, 70) ? 0 : (int32_t)rnd_below(r, 30000);
    for (int i = 0; i < 3; i++)
        p->consent_ms[i] = chance(r, 50) ? 0 : rnd_i64(r);
    p->customer_ms = chance(r, 50) ? 0 : rnd_i64(r);
    p->erased_at_ms = chance(r, 80) ? 0 : rnd_i64(r);
    p->has_source = chance(r, 70);
    if (p->has_source) {
        p->source_partition = (int32_t)rnd(r);
        p->source_offset = rnd_i64(r);
    }
    p->erased = chance(r, 10);
    p->n_bought_earlier =
        big ? PATRON_PROFILE_BOUGHT_EARLIER_MAX : (chance(r, 50) ? 0 : rnd_below(r, 40));
    uint32_t h = (uint32_t)rnd_below(r, 1000);
    for (size_t i = 0; i < p->n_bought_earlier; i++) {
        p->bought_earlier[i] = h;
        h += 1 + (uint32_t)rnd_below(r, 4000000);
    }
}

Test(profile_codec, random_profiles_decode_as_protobuf_c_does)
{
    struct rng r = {0x9E3779B97F4A7C15ULL};
    struct oracle *o = oracle_new();
    struct patron_profile *p = malloc(sizeof(*p));
    uint8_t *buf = malloc(PATRON_PROFILE_ENCODED_MAX);
    cr_assert(p && buf);
    char why[256];
    for (int round = 0; round < 5000; round++) {
        rnd_profile(&r, p);
        size_t len;
        cr_assert_eq(patron_profile_encode_into(p, buf, PATRON_PROFILE_ENCODED_MAX, &len), 0);
        int rc;
        cr_assert(decoders_agree(o, buf, len, &rc, why, sizeof(why)), "round %d: %s", round, why);
        cr_assert_eq(rc, 0, "round %d: a valid profile was refused", round);
        cr_assert(same_profile(&o->got, p, why, sizeof(why)), "round %d: %s", round, why);
    }
    free(buf);
    free(p);
    free(o);
}

/* ---- mutations ---- */

#define MUT_CAP (PATRON_PROFILE_ENCODED_MAX / 2)

struct mbuf {
    uint8_t b[MUT_CAP];
    size_t n;
};

/* Replaces bytes [at, at + del) of m with ins[0..n); false if it would not fit. */
static bool splice(struct mbuf *m, size_t at, size_t del, const uint8_t *ins, size_t n)
{
    return wire_splice(m->b, &m->n, MUT_CAP, at, del, ins, n);
}

static const uint32_t odd_numbers[] = {0, 29, 30, 99, 1000, 1u << 28, UINT32_MAX};
static const struct wire_numbers profile_numbers = {odd_numbers, PATRON_ARRAY_LEN(odd_numbers), 50,
                                                    28};

static size_t rnd_field(struct rng *r, uint8_t *out)
{
    return wire_rnd_field(r, out, &profile_numbers);
}

/* A sub-message-shaped LEN field: a few inner fields, mostly the right
 * wire types of months, categories, cart lines and sources. */
static size_t rnd_nested(struct rng *r, uint8_t *out)
{
    static const uint32_t outer[] = {9, 10, 13, 22};
    uint8_t inner[1024], *q = inner;
    size_t k = rnd_below(r, 4);
    for (size_t i = 0; i < k; i++) {
        unsigned number = 1 + (unsigned)rnd_below(r, 4);
        if (chance(r, 20)) {
            q += rnd_field(r, q);
            continue;
        }
        if (number == 1 && chance(r, 50)) {
            *q++ = 0x0a;
            size_t n = rnd_below(r, 70);
            *q++ = (uint8_t)n;
            for (size_t j = 0; j < n; j++)
                *q++ = chance(r, 95) ? (uint8_t)('a' + rnd_below(r, 26)) : (uint8_t)rnd(r);
        } else if (number == 2 && chance(r, 50)) {
            *q++ = 0x11;
            double d = rnd_score(r);
            memcpy(q, &d, 8);
            q += 8;
        } else {
            put_varint(&q, (uint64_t)number << 3);
            put_varint(&q, chance(r, 30) ? rnd(r) : rnd_below(r, 40000));
        }
    }
    uint8_t *p = out;
    put_varint(&p, (uint64_t)outer[rnd_below(r, PATRON_ARRAY_LEN(outer))] << 3 | 2);
    put_varint(&p, (uint64_t)(q - inner));
    memcpy(p, inner, (size_t)(q - inner));
    return (size_t)(p - out) + (size_t)(q - inner);
}

/* Rewrites a repeated fixed field: packed to one value per field, or a
 * packed run split in two. */
static void repack(struct rng *r, struct mbuf *m, const struct spans *s, size_t i)
{
    const struct patron_pb_field *f = &s->f[i];
    size_t width = f->number == 21 ? 8 : 4;
    uint8_t out[8 * 1024 + 64], *p = out;
    if (f->wire != PATRON_PB_LEN || f->len % width || f->len > 4096)
        return;
    size_t count = f->len / width;
    if (chance(r, 50)) {
        for (size_t k = 0; k < count; k++) {
            put_varint(&p, (uint64_t)f->number << 3 | (width == 8 ? 1u : 5u));
            memcpy(p, f->data + k * width, width);
            p += width;
        }
    } else {
        size_t cut = rnd_below(r, count + 1);
        put_varint(&p, (uint64_t)f->number << 3 | 2);
        put_varint(&p, cut * width);
        memcpy(p, f->data, cut * width);
        p += cut * width;
        put_varint(&p, (uint64_t)f->number << 3 | 2);
        put_varint(&p, (count - cut) * width);
        memcpy(p, f->data + cut * width, (count - cut) * width);
        p += (count - cut) * width;
    }
    (void)splice(m, s->start[i], s->end[i] - s->start[i], out, (size_t)(p - out));
}

/* Mutates the payload of a LEN field in place and fixes its length. */
static void mutate_inside(struct rng *r, struct mbuf *m, const struct spans *s, size_t i)
{
    const struct patron_pb_field *f = &s->f[i];
    if (f->wire != PATRON_PB_LEN || f->len > 1024)
        return;
    uint8_t inner[2048], out[2100], *p = out;
    size_t n = f->len;
    memcpy(inner, f->data, n);
    switch (rnd_below(r, 4)) {
    case 0:
        if (n)
            inner[rnd_below(r, n)] ^= (uint8_t)(1u << rnd_below(r, 8));
        break;
    case 1:
        if (n)
            inner[rnd_below(r, n)] = chance(r, 50) ? 0 : (uint8_t)rnd(r);
        break;
    case 2:
        n += rnd_field(r, inner + n);
        break;
    default:
        if (n)
            n = rnd_below(r, n);
        break;
    }
    put_varint(&p, (uint64_t)f->number << 3 | 2);
    put_varint(&p, n);
    memcpy(p, inner, n);
    p += n;
    (void)splice(m, s->start[i], s->end[i] - s->start[i], out, (size_t)(p - out));
}

static void mutate(struct rng *r, struct mbuf *m, struct spans *spans)
{
    uint8_t tmp[4096];
    scan(m->b, m->n, spans);
    const struct spans *s = spans;
    size_t i = rnd_below(r, s->n); /* a field, when there are any */
    switch (rnd_below(r, 14)) {
    case 0: /* flip a bit */
        if (m->n)
            m->b[rnd_below(r, m->n)] ^= (uint8_t)(1u << rnd_below(r, 8));
        break;
    case 1: /* overwrite a byte */
        if (m->n)
            m->b[rnd_below(r, m->n)] = (uint8_t)rnd(r);
        break;
    case 2: { /* insert bytes */
        size_t n = 1 + rnd_below(r, 8);
        for (size_t k = 0; k < n; k++)
            tmp[k] = (uint8_t)rnd(r);
        (void)splice(m, rnd_below(r, m->n + 1), 0, tmp, n);
        break;
    }
    case 3: { /* delete bytes */
        size_t at = rnd_below(r, m->n + 1), n = rnd_below(r, 9);
        (void)splice(m, at, at + n > m->n ? m->n - at : n, NULL, 0);
        break;
    }
    case 4: /* truncate */
        m->n = rnd_below(r, m->n + 1);
        break;
    case 5: /* a field of any kind, at the end or between two */
    case 6:
        (void)splice(m, chance(r, 50) || !s->n ? m->n : s->start[i], 0, tmp, rnd_field(r, tmp));
        break;
    case 7: /* a field twice */
        if (s->n && s->end[i] - s->start[i] <= sizeof(tmp)) {
            memcpy(tmp, m->b + s->start[i], s->end[i] - s->start[i]);
            size_t to = chance(r, 50) ? m->n : s->start[rnd_below(r, s->n)];
            (void)splice(m, to, 0, tmp, s->end[i] - s->start[i]);
        }
        break;
    case 8: /* a field with another wire type */
        if (s->n)
            m->b[s->start[i]] = (uint8_t)((m->b[s->start[i]] & ~7u) | rnd_below(r, 8));
        break;
    case 9: /* a field gone */
        if (s->n)
            (void)splice(m, s->start[i], s->end[i] - s->start[i], NULL, 0);
        break;
    case 10: /* two fields swapped */
        if (s->n > 1) {
            size_t j = rnd_below(r, s->n);
            if (j < i) {
                size_t t = i;
                i = j;
                j = t;
            }
            size_t li = s->end[i] - s->start[i], lj = s->end[j] - s->start[j];
            if (i != j && li + lj <= sizeof(tmp)) {
                memcpy(tmp, m->b + s->start[j], lj);
                memcpy(tmp + lj, m->b + s->start[i], li);
                (void)splice(m, s->start[j], lj, tmp + lj, li);
                (void)splice(m, s->start[i], li, tmp, lj);
            }
        }
        break;
    case 11: /* packed vs unpacked */
        for (size_t k = 0; k < s->n; k++)
            if (s->f[k].number == 21 || s->f[k].number == 28) {
                repack(r, m, s, k);
                break;
            }
        break;
    case 12: /* inside a sub-message or string */
        if (s->n)
            mutate_inside(r, m, s, i);
        break;
    default: /* a sub-message of our shapes */
        (void)splice(m, chance(r, 50) || !s->n ? m->n : s->start[i], 0, tmp, rnd_nested(r, tmp));
        break;
    }
}

Test(profile_codec, mutated_encodings_decode_as_protobuf_c_does)
{
    struct rng r = {0xD1B54A32D192ED03ULL};
    struct fuzz {
        struct oracle o;
        struct patron_profile p;
        struct mbuf base, m;
        struct spans spans;
    } *z = malloc(sizeof(*z));
    cr_assert_not_null(z);
    char why[256], hex[1200];
    size_t accepted = 0, rounds = 0;
    for (int b = 0; b < 420; b++) {
        rnd_profile(&r, &z->p);
        cr_assert_eq(patron_profile_encode_into(&z->p, z->base.b, MUT_CAP, &z->base.n), 0);
        if (z->base.n > 4096 && chance(&r, 80))
            continue; /* full profiles: a few, they are slow through protobuf-c */
        for (int k = 0; k < 300; k++, rounds++) {
            memcpy(z->m.b, z->base.b, z->base.n);
            z->m.n = z->base.n;
            size_t n = 1 + rnd_below(&r, 3);
            for (size_t j = 0; j < n; j++)
                mutate(&r, &z->m, &z->spans);
            int rc;
            if (!decoders_agree(&z->o, z->m.b, z->m.n, &rc, why, sizeof(why))) {
                hexdump(hex, sizeof(hex), z->m.b, z->m.n);
                cr_assert_fail("profile %d mutation %d: %s\n%zu bytes: %s", b, k, why, z->m.n, hex);
            }
            accepted += rc == 0;
        }
    }
    free(z);
    cr_log_info("%zu mutations, %zu accepted", rounds, accepted);
    cr_expect_geq(rounds, 100000);
    /* both outcomes well represented, or the mutations are too tame or too wild */
    cr_expect_gt(accepted, rounds / 10, "%zu of %zu accepted", accepted, rounds);
    cr_expect_lt(accepted, rounds * 9 / 10, "%zu of %zu accepted", accepted, rounds);
}

/* ---- the wire's edge cases, one hand-written buffer each ---- */

#define CID                                                                                        \
    "\x0a\x01"                                                                                     \
    "c"

struct wire_row {
    const char *name;
    const char *bytes;
    size_t len;
    int rc;
    /* when accepted: */
    int64_t orders;
    bool consent_sms, erased;
    size_t n_event_ids, n_bought_earlier, n_months;
    int32_t source_partition;
    int64_t source_offset;
    const char *customer_id; /* NULL: "c" */
};

#define ROW(name, b, ...)                                                                          \
    {                                                                                              \
        name, b, sizeof(b) - 1, __VA_ARGS__                                                        \
    }

static const struct wire_row wire_rows[] = {
    ROW("bare id", CID, 0),
    ROW("unknown varint", CID "\xf0\x03\x05", 0),
    ROW("unknown fixed64",
        CID "\xf1\x03"
            "12345678",
        0),
    ROW("unknown length-delimited", CID "\xf2\x03\x03xyz", 0),
    ROW("unknown fixed32",
        CID "\xf5\x03"
            "1234",
        0),
    ROW("unknown field 2^32-1", CID "\xf8\xff\xff\xff\x7f\x00", 0),
    ROW("unknown group start", CID "\xf3\x03", PATRON_EINVAL),
    ROW("unknown group end", CID "\xf4\x03", PATRON_EINVAL),
    ROW("wire type 6", CID "\xf6\x01\x00", PATRON_EINVAL),
    ROW("wire type 7", CID "\xf7\x01\x00", PATRON_EINVAL),
    ROW("field 0 in one byte", CID "\x00\x00", PATRON_EINVAL),
    ROW("field 0 in two bytes: unknown", CID "\x80\x00\x00", 0),
    ROW("tag of 5 bytes", CID "\x90\x80\x80\x80\x00\x07", 0, .orders = 7),
    ROW("tag of 6 bytes", CID "\x90\x80\x80\x80\x80\x00\x07", PATRON_EINVAL),
    ROW("orders as fixed64",
        CID "\x11"
            "12345678",
        PATRON_EINVAL),
    ROW("orders length-delimited", CID "\x12\x01\x01", PATRON_EINVAL),
    ROW("customer_id as varint", "\x08\x01", PATRON_EINVAL),
    ROW("months as varint", CID "\x48\x01", PATRON_EINVAL),
    ROW("source as fixed32",
        CID "\xb5\x01"
            "1234",
        PATRON_EINVAL),
    ROW("event ids as varint", CID "\xa8\x01\x01", PATRON_EINVAL),
    ROW("event ids as fixed32",
        CID "\xad\x01"
            "1234",
        PATRON_EINVAL),
    ROW("bought_earlier as fixed64",
        CID "\xe1\x01"
            "12345678",
        PATRON_EINVAL),
    ROW("score as varint", CID "\x52\x05\x0a\x01k\x10\x01", PATRON_EINVAL),
    ROW("month as fixed32",
        CID "\x4a\x05\x0d"
            "1234",
        PATRON_EINVAL),
    ROW("bool length-delimited, payload 0", CID "\x72\x01\x00", 0, .consent_sms = true),
    ROW("bool length-delimited, empty", CID "\x72\x00", 0),
    ROW("bool fixed64 zero", CID "\x71\x00\x00\x00\x00\x00\x00\x00\x00", 0),
    ROW("bool fixed64 high byte", CID "\x71\x00\x00\x00\x00\x00\x00\x00\x01", 0,
        .consent_sms = true),
    ROW("bool fixed32 0x80", CID "\x75\x80\x00\x00\x00", 0),
    ROW("bool varint 2", CID "\x70\x02", 0, .consent_sms = true),
    ROW("bool 10-byte varint, bit past 64", CID "\xd8\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02",
        0, .erased = true),
    ROW("bool last wins", CID "\x70\x01\x70\x00", 0),
    ROW("orders last wins", CID "\x10\x05\x10\x09", 0, .orders = 9),
    ROW("orders -1 in 10 bytes", CID "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0,
        .orders = -1),
    ROW("orders 10 bytes, bits past 64 dropped", CID "\x10\x85\x80\x80\x80\x80\x80\x80\x80\x80\x7e",
        0, .orders = 5),
    ROW("varint of 11 bytes", CID "\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",
        PATRON_EINVAL),
    ROW("varint cut short", CID "\x10\x80", PATRON_EINVAL),
    ROW("tag cut short", CID "\x80", PATRON_EINVAL),
    ROW("fixed64 cut short",
        CID "\xa9\x01"
            "123",
        PATRON_EINVAL),
    ROW("fixed32 cut short",
        CID "\xe5\x01"
            "12",
        PATRON_EINVAL),
    ROW("length past the end", CID "\xf2\x03\x04xyz", PATRON_EINVAL),
    ROW("length prefix of 6 bytes",
        "\x0a\x81\x80\x80\x80\x80\x00"
        "c",
        PATRON_EINVAL),
    ROW("length prefix of 5 bytes",
        "\x0a\x81\x80\x80\x80\x00"
        "c",
        0),
    ROW("length 2^32 + 1 (not cut to 1)",
        "\x0a\x81\x80\x80\x80\x10"
        "c",
        PATRON_EINVAL),
    ROW("length 2^32 - 1",
        CID "\xf2\x03\xff\xff\xff\xff\x0f"
            "1234567",
        PATRON_EINVAL),
    ROW("event ids packed then not",
        CID "\xaa\x01\x10"
            "1234567812345678"
            "\xa9\x01"
            "12345678",
        0, .n_event_ids = 3),
    ROW("event ids packed empty", CID "\xaa\x01\x00", 0),
    ROW("event ids packed, 7 bytes",
        CID "\xaa\x01\x07"
            "1234567",
        PATRON_EINVAL),
    ROW("event ids 33 packed",
        CID "\xaa\x01\x88\x02"
            "1234567812345678123456781234567812345678123456781234567812345678"
            "1234567812345678123456781234567812345678123456781234567812345678"
            "1234567812345678123456781234567812345678123456781234567812345678"
            "1234567812345678123456781234567812345678123456781234567812345678"
            "12345678",
        0, .n_event_ids = 33),
    ROW("event ids with their times",
        CID "\xaa\x01\x10"
            "1234567812345678"
            "\xea\x01\x02\x05\x06",
        0, .n_event_ids = 2),
    ROW("event times unpacked",
        CID "\xa9\x01"
            "12345678"
            "\xe8\x01\x05",
        0, .n_event_ids = 1),
    ROW("more event times than ids",
        CID "\xa9\x01"
            "12345678"
            "\xea\x01\x02\x05\x06",
        PATRON_EINVAL),
    ROW("event times without ids", CID "\xe8\x01\x05", PATRON_EINVAL),
    ROW("event times as fixed64",
        CID "\xa9\x01"
            "12345678"
            "\xe9\x01"
            "12345678",
        PATRON_EINVAL),
    ROW("counted ascending",
        CID "\xfa\x01\x10\x01\x00\x00\x00\x00\x00\x00\x00"
            "\x02\x00\x00\x00\x00\x00\x00\x00",
        0),
    ROW("counted unpacked", CID "\xf9\x01\x01\x00\x00\x00\x00\x00\x00\x00", 0),
    ROW("counted twice the same",
        CID "\xfa\x01\x10\x01\x00\x00\x00\x00\x00\x00\x00"
            "\x01\x00\x00\x00\x00\x00\x00\x00",
        PATRON_EINVAL),
    ROW("counted descending",
        CID "\xfa\x01\x10\x02\x00\x00\x00\x00\x00\x00\x00"
            "\x01\x00\x00\x00\x00\x00\x00\x00",
        PATRON_EINVAL),
    ROW("counted floor month", CID "\x80\x02\xe8\xb8\x01", 0),
    ROW("counted floor month negative", CID "\x80\x02\xff\xff\xff\xff\x0f", PATRON_EINVAL),
    ROW("consent, customer and erasure times",
        CID "\x88\x02\x01\x90\x02\x02\x98\x02\x03\xa0\x02\x04\xa8\x02\x05", 0),
    ROW("bought_earlier unpacked, ascending",
        CID "\xe5\x01\x01\x00\x00\x00\xe5\x01\x02\x00\x00\x00", 0, .n_bought_earlier = 2),
    ROW("bought_earlier across fields, descending",
        CID "\xe2\x01\x04\x05\x00\x00\x00\xe5\x01\x04\x00\x00\x00", PATRON_EINVAL),
    ROW("bought_earlier equal", CID "\xe2\x01\x08\x05\x00\x00\x00\x05\x00\x00\x00", PATRON_EINVAL),
    ROW("bought_earlier packed, 6 bytes", CID "\xe2\x01\x06\x05\x00\x00\x00\x06\x00",
        PATRON_EINVAL),
    ROW("customer_id last wins",
        CID "\x0a\x01"
            "d",
        0, .customer_id = "d"),
    ROW("customer_id cut at a NUL",
        "\x0a\x04"
        "c\0xy",
        0, .customer_id = "c"),
    ROW("customer_id NUL first", "\x0a\x02\0c", PATRON_EINVAL),
    ROW("customer_id too long, then fine",
        "\x0a\x41"
        "12345678901234567890123456789012345678901234567890123456789012345" CID,
        0),
    ROW("customer_id fine, then too long",
        CID "\x0a\x41"
            "12345678901234567890123456789012345678901234567890123456789012345",
        PATRON_EINVAL),
    ROW("viewed NUL first", CID "\x5a\x02\0v", PATRON_EINVAL),
    ROW("viewed as invalid UTF-8", CID "\x5a\x01\xc3", PATRON_EINVAL),
    ROW("source twice: the later replaces", CID "\xb2\x01\x04\x08\x05\x10\x07\xb2\x01\x02\x08\x09",
        0, .source_partition = 9),
    ROW("source then empty source", CID "\xb2\x01\x04\x08\x05\x10\x07\xb2\x01\x00", 0),
    ROW("source with unknown inside", CID "\xb2\x01\x06\x18\x01\x08\x05\x10\x07", 0,
        .source_partition = 5, .source_offset = 7),
    ROW("source field 0 inside", CID "\xb2\x01\x02\x00\x00", PATRON_EINVAL),
    ROW("month -1 from 10 bytes", CID "\x4a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0,
        .n_months = 1),
    ROW("months equal", CID "\x4a\x02\x08\x05\x4a\x02\x08\x05", PATRON_EINVAL),
    ROW("months ascending by their int32", CID "\x4a\x02\x08\x05\x4a\x06\x08\x86\x80\x80\x80\x10",
        0, .n_months = 2), /* 2^32 + 6 is 6 */
    ROW("months, the second a 2^32 + 5", CID "\x4a\x02\x08\x05\x4a\x06\x08\x85\x80\x80\x80\x10",
        PATRON_EINVAL),
    ROW("13 months",
        CID "\x4a\x02\x08\x01\x4a\x02\x08\x02\x4a\x02\x08\x03\x4a\x02\x08\x04\x4a\x02\x08\x05"
            "\x4a\x02\x08\x06\x4a\x02\x08\x07\x4a\x02\x08\x08\x4a\x02\x08\x09\x4a\x02\x08\x0a"
            "\x4a\x02\x08\x0b\x4a\x02\x08\x0c\x4a\x02\x08\x0d",
        PATRON_EINVAL),
    ROW("12 months",
        CID "\x4a\x02\x08\x01\x4a\x02\x08\x02\x4a\x02\x08\x03\x4a\x02\x08\x04\x4a\x02\x08\x05"
            "\x4a\x02\x08\x06\x4a\x02\x08\x07\x4a\x02\x08\x08\x4a\x02\x08\x09\x4a\x02\x08\x0a"
            "\x4a\x02\x08\x0b\x4a\x02\x08\x0c",
        0, .n_months = 12),
    ROW("cart quantity 2^32 + 1 is 1", CID "\x6a\x09\x0a\x01i\x10\x81\x80\x80\x80\x10", 0),
    ROW("cart quantity 2^31 is negative", CID "\x6a\x09\x0a\x01i\x10\x80\x80\x80\x80\x08",
        PATRON_EINVAL),
    ROW("category score NaN", CID "\x52\x0c\x0a\x01k\x11\x00\x00\x00\x00\x00\x00\xf8\x7f",
        PATRON_EINVAL),
    ROW("empty buffer", "", PATRON_EINVAL),
};

Test(profile_codec, wire_edge_cases)
{
    struct oracle *o = oracle_new();
    for (size_t i = 0; i < PATRON_ARRAY_LEN(wire_rows); i++) {
        const struct wire_row *w = &wire_rows[i];
        const uint8_t *b = (const uint8_t *)w->bytes;
        char why[256];
        int rc;
        cr_expect(decoders_agree(o, b, w->len, &rc, why, sizeof(why)), "%s: %s", w->name, why);
        cr_expect_eq(rc, w->rc, "%s: %d", w->name, rc);
        if (rc || w->rc)
            continue;
        struct patron_profile p;
        cr_assert_eq(patron_profile_decode(&p, b, w->len), 0);
        cr_expect_str_eq(p.customer_id, w->customer_id ? w->customer_id : "c", "%s", w->name);
        cr_expect_eq(p.orders, w->orders, "%s", w->name);
        cr_expect_eq(p.consent_sms, w->consent_sms, "%s", w->name);
        cr_expect_eq(p.erased, w->erased, "%s", w->name);
        cr_expect_eq(p.n_event_ids, w->n_event_ids, "%s", w->name);
        cr_expect_eq(p.n_bought_earlier, w->n_bought_earlier, "%s", w->name);
        cr_expect_eq(p.n_months, w->n_months, "%s", w->name);
        cr_expect_eq(p.source_partition, w->source_partition, "%s", w->name);
        cr_expect_eq(p.source_offset, w->source_offset, "%s", w->name);
    }
    free(o);
}

Test(profile_codec, wire_edge_case_values)
{
    struct patron_profile p;
    /* a category whose name comes twice: the last one counts */
    static const uint8_t cat[] =
        CID "\x52\x0f\x0a\x01x\x0a\x01k\x11\x00\x00\x00\x00\x00\x00\xf0\x3f";
    cr_assert_eq(patron_profile_decode(&p, cat, sizeof(cat) - 1), 0);
    cr_expect_str_eq(p.categories[0].category, "k");
    cr_expect_eq(p.categories[0].score, 1.0);
    /* month from a 2^32 + 6 varint, cents negative */
    static const uint8_t mon[] = CID "\x4a\x11\x08\x86\x80\x80\x80\x10\x10\xff\xff\xff\xff\xff\xff"
                                     "\xff\xff\xff\x01";
    cr_assert_eq(patron_profile_decode(&p, mon, sizeof(mon) - 1), 0);
    cr_expect_eq(p.months[0].month, 6);
    cr_expect_eq(p.months[0].cents, -1);
    /* event ids keep their order across packed and unpacked fields */
    static const uint8_t ids[] = CID "\xa9\x01\x01\x00\x00\x00\x00\x00\x00\x00"
                                     "\xaa\x01\x08\x02\x00\x00\x00\x00\x00\x00\x00";
    cr_assert_eq(patron_profile_decode(&p, ids, sizeof(ids) - 1), 0);
    cr_assert_eq(p.n_event_ids, 2);
    cr_expect_eq(p.event_ids[0], 1);
    cr_expect_eq(p.event_ids[1], 2);
    /* -0.0 keeps its sign */
    static const uint8_t neg[] = CID "\x52\x0c\x0a\x01k\x11\x00\x00\x00\x00\x00\x00\x00\x80";
    struct oracle *o = oracle_new();
    char why[256];
    int rc;
    cr_expect(decoders_agree(o, neg, sizeof(neg) - 1, &rc, why, sizeof(why)), "%s", why);
    free(o);
    cr_assert_eq(patron_profile_decode(&p, neg, sizeof(neg) - 1), 0);
    cr_expect(p.categories[0].score == 0.0 && signbit(p.categories[0].score));
}

/* A list over capacity is refused before anything is written past it, at
 * any count (UBSan's bounds check and ASan watch the arrays). */
Test(profile_codec, decode_refuses_lists_past_capacity_at_any_count)
{
    static const struct {
        const char *tag; /* of one element, and its length prefix if any */
        const char *element;
        size_t element_len, cap;
    } lists[] = {
        {"\x4a", NULL, 0, PATRON_PROFILE_MONTHS}, /* month i + 1: ascending */
        {"\x52\x03", "\x0a\x01k", 3, PATRON_PROFILE_CATEGORIES_MAX},
        {"\x5a\x01", "v", 1, PATRON_PROFILE_VIEWED_MAX},
        {"\x62\x01", "b", 1, PATRON_PROFILE_BOUGHT_MAX},
        {"\x6a\x05", "\x0a\x01i\x10\x01", 5, PATRON_PROFILE_CART_MAX},
        {"\xa9\x01", "12345678", 8, PATRON_PROFILE_EVENT_IDS_MAX},
        {"\xe5\x01", NULL, 4, PATRON_PROFILE_BOUGHT_EARLIER_MAX}, /* hash i + 1 */
    };
    struct oracle *o = oracle_new();
    uint8_t *buf = malloc(PATRON_PROFILE_ENCODED_MAX);
    cr_assert_not_null(buf);
    for (size_t l = 0; l < PATRON_ARRAY_LEN(lists); l++) {
        const size_t counts[] = {lists[l].cap, lists[l].cap + 1, lists[l].cap * 3 + 7};
        for (size_t c = 0; c < PATRON_ARRAY_LEN(counts); c++) {
            uint8_t *p = buf;
            memcpy(p, CID, 3);
            p += 3;
            for (size_t i = 0; i < counts[c]; i++) {
                size_t tag_len = strlen(lists[l].tag);
                memcpy(p, lists[l].tag, tag_len);
                p += tag_len;
                if (lists[l].element) {
                    memcpy(p, lists[l].element, lists[l].element_len);
                    p += lists[l].element_len;
                } else if (lists[l].element_len == 4) {
                    uint32_t h = (uint32_t)i + 1;
                    memcpy(p, &h, 4); /* little-endian host, as protobuf-c assumes */
                    p += 4;
                } else {
                    uint8_t month[8], *q = month;
                    *q++ = 0x08;
                    put_varint(&q, i + 1);
                    *p++ = (uint8_t)(q - month);
                    memcpy(p, month, (size_t)(q - month));
                    p += q - month;
                }
            }
            size_t len = (size_t)(p - buf);
            char why[256];
            int rc;
            cr_expect(decoders_agree(o, buf, len, &rc, why, sizeof(why)), "list %zu count %zu: %s",
                      l, counts[c], why);
            cr_expect_eq(rc, counts[c] <= lists[l].cap ? 0 : PATRON_EINVAL, "list %zu count %zu", l,
                         counts[c]);
        }
    }
    free(buf);
    free(o);
}

Test(profile_codec, decode_refuses_a_null_buffer)
{
    struct patron_profile p;
    cr_expect_eq(patron_profile_decode(&p, NULL, 0), PATRON_EINVAL); /* no customer_id */
    cr_expect_eq(patron_profile_decode(&p, NULL, 5), PATRON_EINVAL);
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
