/*
 * The stored form of a profile (patron_profile_encode/decode): round trips,
 * the size budget, what decoding refuses (limits, garbage, lists past
 * capacity), and the wire's edge cases, one hand-written buffer each, decoded
 * alike by the oracle of fixture_profile.h. Random and mutated encodings are
 * in test_profile_codec_fuzz.c, the JSON in test_profile_json.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_profile.h"
#include "fixture_wire.h"

PATRON_LEAK_CHECKED_SUITE(profile_codec);

Test(profile_codec, full_profile_round_trips)
{
    struct patron_profile p = full_profile();
    size_t len;
    struct patron_profile q = round_trip(&p, &len);
    expect_same(&p, &q);
    /* ~8.6 KiB of lists, 4 KiB of bought_earlier hashes, 5.3 KiB of recent
     * events with their times, 32 KiB of the ledger of counted events, 3.5
     * KiB of 16 merged anonymous ids with all their marks */
    cr_expect_lt(len, 56 * 1024, "full profile: %zu bytes", len);
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
    cr_expect_eq(q.n_marks, 0);
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
    ROW("customer_id holding a NUL: refused, never cut to another id",
        "\x0a\x04"
        "c\0xy",
        PATRON_EINVAL),
    ROW("customer_id holding a NUL, replaced by a later one",
        "\x0a\x04"
        "c\0xy" CID,
        0),
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
    ROW("viewed NUL last", CID "\x5a\x02v\0", PATRON_EINVAL),
    ROW("category holding a NUL", CID "\x52\x0d\x0a\x02k\0\x11\x00\x00\x00\x00\x00\x00\xf0\x3f",
        PATRON_EINVAL),
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
        cr_expect_eq(p.n_marks ? p.marks[0].partition : 0, w->source_partition, "%s", w->name);
        cr_expect_eq(p.n_marks ? p.marks[0].offset : 0, w->source_offset, "%s", w->name);
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
