#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/event_check.h"
#include "patron/event_wire.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(event_check);

#define LONG_ID "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" /* 65 */
#define MAX_ID "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"   /* 64 */

/* Packs an event with protobuf-c into a new buffer. */
static uint8_t *pack(const Patron__V1__Event *ev, size_t *len)
{
    *len = patron__v1__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(patron__v1__event__pack(ev, buf), *len);
    return buf;
}

/* A valid event of every kind passes both the check and a decode round trip. */
Test(event_check, valid_event_of_every_kind)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    struct fx_line lines[] = {{"a", "home", 2, 100}, {"b", "", 1, 0}};
    struct fx_line one = {"a", "", 1, 100};
    for (int kind = 0; kind < 13; kind++) {
        Patron__V1__Event *ev = NULL;
        switch (kind) {
        case 0:
            ev = fx_view(f, "e", FX_T0, "i", "cat");
            break;
        case 1:
            ev = fx_cart_add(f, "e", FX_T0, "i", "", 1, 0);
            break;
        case 2:
            ev = fx_cart_remove(f, "e", FX_T0, "i");
            break;
        case 3:
            ev = fx_purchase(f, "e", FX_T0, 2, lines);
            break;
        case 4:
            ev = fx_refund(f, "e", FX_T0, 500, 0, NULL);
            break;
        case 5:
            ev = fx_refund(f, "e", FX_T0, 0, 1, &one);
            break;
        case 6:
            ev = fx_review(f, "e", FX_T0, "i", 1);
            break;
        case 7:
            ev = fx_customer(f, "e", FX_T0, "02-29", "America/Argentina/Buenos_Aires", "en-GB",
                             "UK");
            break;
        case 8:
            ev = fx_customer(f, "e", FX_T0, "", "Etc/GMT+5", "", "");
            break;
        case 9:
            ev = fx_consent(f, "e", FX_T0, PATRON__V1__CHANNEL__SMS, true);
            break;
        case 10:
            ev = fx_consent(f, "e", FX_T0, PATRON__V1__CHANNEL__EMAIL, false);
            break;
        case 11:
            ev = fx_erasure(f, "e", FX_T0);
            break;
        case 12:
            ev = fx_view(f, MAX_ID, PATRON_EVENT_TIME_MAX_MS, "caf\xc3\xa9 \xe2\x82\xac",
                         "\xf0\x9f\x8e\x81");
            break;
        }
        const char *reason = "unset";
        cr_expect_eq(patron_event_check(ev, &reason), 0, "kind %d: %s", kind, reason);
        cr_expect_null(reason, "kind %d", kind);

        size_t len;
        uint8_t *buf = pack(ev, &len);
        Patron__V1__Event *out = NULL;
        cr_expect_eq(patron_event_decode(buf, len, &out, &reason), 0, "kind %d: %s", kind, reason);
        cr_assert_not_null(out, "kind %d", kind);
        cr_expect_eq(out->kind_case, ev->kind_case);
        cr_expect_str_eq(out->event_id, ev->event_id);
        patron__v1__event__free_unpacked(out, NULL);
        free(buf);
    }
    free(f);
}

enum mutation {
    M_NONE,
    M_EVENT_ID,
    M_CUSTOMER_ID,
    M_TIME,
    M_NO_KIND,
    M_PURCHASE_NO_LINES,
    M_LINE_ITEM,
    M_LINE_CATEGORY,
    M_LINE_QTY,
    M_LINE_PRICE,
    M_MANY_LINES,
    M_REFUND_AMOUNT,
    M_REFUND_EMPTY,
    M_RATING,
    M_CHANNEL,
    M_BIRTHDAY,
    M_TIME_ZONE,
    M_LOCALE,
    M_COUNTRY,
    M_VIEW_ITEM,
    M_CART_ADD_NO_LINE,
    M_CART_REMOVE_ITEM,
    M_ORDER_ID,
    M_NULL_SUBMESSAGE,
    M_ANONYMOUS_ID,
    M_CURRENCY,
};

/* One row per rejection reason: a base event, one mutation, the reason. */
static const struct {
    enum mutation m;
    const char *s; /* string for the mutation */
    int64_t n;     /* number for the mutation */
    const char *reason;
} ROWS[] = {
    {M_EVENT_ID, "", 0, "missing event_id"},
    {M_EVENT_ID, LONG_ID, 0, "event_id too long"},
    {M_EVENT_ID, "a\tb", 0, "event_id has invalid bytes"},
    {M_EVENT_ID, "a\xff", 0, "event_id has invalid bytes"},
    {M_CUSTOMER_ID, "", 0, "missing customer_id"},
    {M_CUSTOMER_ID, LONG_ID, 0, "customer_id too long"},
    {M_CUSTOMER_ID, "x\n", 0, "customer_id has invalid bytes"},
    {M_CUSTOMER_ID, "\xc0\x80", 0, "customer_id has invalid bytes"},         /* overlong NUL */
    {M_CUSTOMER_ID, "\xed\xa0\x80", 0, "customer_id has invalid bytes"},     /* surrogate */
    {M_CUSTOMER_ID, "\xf4\x90\x80\x80", 0, "customer_id has invalid bytes"}, /* > U+10FFFF */
    {M_CUSTOMER_ID, "\xe2\x82", 0, "customer_id has invalid bytes"},         /* truncated */
    {M_TIME, NULL, 0, "occurred_at_ms not positive"},
    {M_TIME, NULL, -1, "occurred_at_ms not positive"},
    {M_TIME, NULL, PATRON_EVENT_TIME_MAX_MS + 1, "occurred_at_ms out of range"},
    {M_TIME, NULL, INT64_MAX, "occurred_at_ms out of range"},
    {M_NO_KIND, NULL, 0, "missing kind"},
    {M_NULL_SUBMESSAGE, NULL, 0, "missing kind"},
    {M_PURCHASE_NO_LINES, NULL, 0, "purchase without lines"},
    {M_LINE_ITEM, "", 0, "missing item_id"},
    {M_LINE_ITEM, LONG_ID, 0, "item_id too long"},
    {M_LINE_ITEM, "\x01", 0, "item_id has invalid bytes"},
    {M_LINE_CATEGORY, LONG_ID, 0, "category too long"},
    {M_LINE_CATEGORY, "\x1f", 0, "category has invalid bytes"},
    {M_LINE_QTY, NULL, 0, "quantity not positive"},
    {M_LINE_QTY, NULL, -2, "quantity not positive"},
    {M_LINE_PRICE, NULL, -1, "negative unit price"},
    {M_LINE_PRICE, NULL, PATRON_EVENT_VALUE_MAX_CENTS + 1, "value out of range"},
    {M_LINE_PRICE, NULL, INT64_MAX, "value out of range"},
    {M_MANY_LINES, NULL, PATRON_EVENT_LINES_MAX + 1, "too many lines"},
    {M_MANY_LINES, NULL, 1000, "value out of range"}, /* 1000 x 10^13 > 10^15 */
    {M_REFUND_AMOUNT, NULL, -1, "negative refund amount"},
    {M_REFUND_AMOUNT, NULL, PATRON_EVENT_VALUE_MAX_CENTS + 1, "value out of range"},
    {M_REFUND_EMPTY, NULL, 0, "refund without amount or lines"},
    {M_RATING, NULL, 0, "rating out of range"},
    {M_RATING, NULL, 6, "rating out of range"},
    {M_RATING, NULL, -1, "rating out of range"},
    {M_CHANNEL, NULL, 0, "consent channel unspecified"},
    {M_CHANNEL, NULL, 4, "consent channel unknown"},
    {M_CHANNEL, NULL, -7, "consent channel unknown"},
    {M_BIRTHDAY, "5-14", 0, "invalid birthday"},
    {M_BIRTHDAY, "05/14", 0, "invalid birthday"},
    {M_BIRTHDAY, "13-01", 0, "invalid birthday"},
    {M_BIRTHDAY, "00-10", 0, "invalid birthday"},
    {M_BIRTHDAY, "02-30", 0, "invalid birthday"},
    {M_BIRTHDAY, "04-31", 0, "invalid birthday"},
    {M_BIRTHDAY, "12-00", 0, "invalid birthday"},
    {M_BIRTHDAY, "1a-01", 0, "invalid birthday"},
    {M_BIRTHDAY, "05-145", 0, "invalid birthday"},
    {M_TIME_ZONE, "Europe/London/" LONG_ID, 0, "time_zone too long"},
    {M_TIME_ZONE, "Europe London", 0, "invalid time_zone"},
    {M_TIME_ZONE, "/Europe", 0, "invalid time_zone"},
    {M_TIME_ZONE, "Europe/", 0, "invalid time_zone"},
    {M_TIME_ZONE, "Europe//London", 0, "invalid time_zone"},
    {M_TIME_ZONE, "../etc/passwd", 0, "invalid time_zone"},
    {M_TIME_ZONE, "Europe/L\xc3\xb6ndon", 0, "invalid time_zone"},
    {M_TIME_ZONE, "+0100", 0, "invalid time_zone"},
    {M_LOCALE, "en-GB-" LONG_ID, 0, "locale too long"},
    {M_LOCALE, "en\x7f\x80", 0, "locale has invalid bytes"},
    {M_COUNTRY, LONG_ID, 0, "country too long"},
    {M_COUNTRY, "U\x02K", 0, "country has invalid bytes"},
    {M_VIEW_ITEM, "", 0, "missing item_id"},
    {M_CART_ADD_NO_LINE, NULL, 0, "missing line"},
    {M_CART_REMOVE_ITEM, "", 0, "missing item_id"},
    {M_ORDER_ID, LONG_ID, 0, "order_id too long"},
    {M_ORDER_ID, "o\x1b", 0, "order_id has invalid bytes"},
    {M_ANONYMOUS_ID, LONG_ID, 0, "anonymous_id too long"},
    {M_ANONYMOUS_ID, "a\x80", 0, "anonymous_id has invalid bytes"},
    {M_CURRENCY, LONG_ID, 0, "currency too long"},
    {M_CURRENCY, "EU\x7f\xfe", 0, "currency has invalid bytes"},
};

static Patron__V1__Event *mutate(struct fx_event *f, size_t row)
{
    const char *s = ROWS[row].s;
    int64_t n = ROWS[row].n;
    struct fx_line line = {"a", "home", 1, 100};
    Patron__V1__Event *ev = fx_purchase(f, "e", FX_T0, 1, &line);
    switch (ROWS[row].m) {
    case M_NONE:
        break;
    case M_EVENT_ID:
        ev->event_id = (char *)s;
        break;
    case M_CUSTOMER_ID:
        ev->customer_id = (char *)s;
        break;
    case M_TIME:
        ev->occurred_at_ms = n;
        break;
    case M_NO_KIND:
        ev->kind_case = PATRON__V1__EVENT__KIND__NOT_SET;
        break;
    case M_NULL_SUBMESSAGE:
        ev->purchase = NULL;
        break;
    case M_PURCHASE_NO_LINES:
        f->purchase.n_items = 0;
        break;
    case M_LINE_ITEM:
        f->lines[0].item_id = (char *)s;
        break;
    case M_LINE_CATEGORY:
        f->lines[0].category = (char *)s;
        break;
    case M_LINE_QTY:
        f->lines[0].quantity = (int32_t)n;
        break;
    case M_LINE_PRICE:
        f->lines[0].unit_price_cents = n;
        break;
    case M_MANY_LINES:
        for (size_t i = 0; i < (size_t)n; i++) {
            f->lines[i] = f->lines[0];
            f->lines[i].unit_price_cents = INT64_C(10000000000000);
            f->line_ptrs[i] = &f->lines[i];
        }
        f->purchase.n_items = (size_t)n;
        break;
    case M_REFUND_AMOUNT:
        ev = fx_refund(f, "e", FX_T0, n, 0, NULL);
        break;
    case M_REFUND_EMPTY:
        ev = fx_refund(f, "e", FX_T0, 0, 0, NULL);
        break;
    case M_RATING:
        ev = fx_review(f, "e", FX_T0, "i", (int32_t)n);
        break;
    case M_CHANNEL:
        ev = fx_consent(f, "e", FX_T0, (Patron__V1__Channel)n, true);
        break;
    case M_BIRTHDAY:
        ev = fx_customer(f, "e", FX_T0, s, "", "", "");
        break;
    case M_TIME_ZONE:
        ev = fx_customer(f, "e", FX_T0, "", s, "", "");
        break;
    case M_LOCALE:
        ev = fx_customer(f, "e", FX_T0, "", "", s, "");
        break;
    case M_COUNTRY:
        ev = fx_customer(f, "e", FX_T0, "", "", "", s);
        break;
    case M_VIEW_ITEM:
        ev = fx_view(f, "e", FX_T0, s, "");
        break;
    case M_CART_ADD_NO_LINE:
        ev = fx_cart_add(f, "e", FX_T0, "i", "", 1, 1);
        f->cart_add.item = NULL;
        break;
    case M_CART_REMOVE_ITEM:
        ev = fx_cart_remove(f, "e", FX_T0, s);
        break;
    case M_ORDER_ID:
        f->purchase.order_id = (char *)s;
        break;
    case M_ANONYMOUS_ID:
        ev->anonymous_id = (char *)s;
        break;
    case M_CURRENCY:
        f->purchase.currency = (char *)s;
        break;
    }
    return ev;
}

Test(event_check, one_row_per_reason)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(ROWS); i++) {
        Patron__V1__Event *ev = mutate(f, i);
        const char *reason = NULL;
        cr_expect_eq(patron_event_check(ev, &reason), PATRON_EINVAL, "row %zu", i);
        cr_expect_str_eq(reason ? reason : "(null)", ROWS[i].reason, "row %zu", i);
    }
    free(f);
}

/* The same rows through the wire: what a producer can actually send fails
 * decode with the same reason (rows a wire cannot express are skipped). */
Test(event_check, one_row_per_reason_through_decode)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    size_t tried = 0;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(ROWS); i++) {
        if (ROWS[i].m == M_NULL_SUBMESSAGE || ROWS[i].m == M_CART_ADD_NO_LINE)
            continue;
        Patron__V1__Event *ev = mutate(f, i);
        size_t len;
        uint8_t *buf = pack(ev, &len);
        Patron__V1__Event *out = (Patron__V1__Event *)1;
        const char *reason = NULL;
        cr_expect_eq(patron_event_decode(buf, len, &out, &reason), PATRON_EINVAL, "row %zu", i);
        cr_expect_null(out, "row %zu", i);
        cr_expect_str_eq(reason ? reason : "(null)", ROWS[i].reason, "row %zu", i);
        free(buf);
        tried++;
    }
    cr_expect_gt(tried, 50);
    free(f);
}

Test(event_check, cart_add_without_line_on_the_wire)
{
    /* Event{event_id "e", customer_id "c", occurred_at_ms 1, cart_add {}} */
    static const uint8_t buf[] = {0x0a, 1, 'e', 0x12, 1, 'c', 0x18, 1, 0x5a, 0};
    Patron__V1__Event *out;
    const char *reason;
    cr_expect_eq(patron_event_decode(buf, sizeof(buf), &out, &reason), PATRON_EINVAL);
    cr_expect_str_eq(reason, "missing line");
}

Test(event_check, unknown_oneof_number_is_missing_kind)
{
    /* field 20 (not in the oneof): kept as an unknown field */
    static const uint8_t buf[] = {0x0a, 1, 'e', 0x12, 1, 'c', 0x18, 1, 0xa2, 0x01, 0};
    Patron__V1__Event *out;
    const char *reason;
    cr_expect_eq(patron_event_decode(buf, sizeof(buf), &out, &reason), PATRON_EINVAL);
    cr_expect_str_eq(reason, "missing kind");
}

Test(event_check, garbage_bytes_do_not_decode)
{
    static const struct {
        const char *bytes;
        size_t len;
    } rows[] = {
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* varint too long */
        {"\x0a\x05"
         "ab",
         4},                         /* string past the end */
        {"\x0a", 1},                 /* tag without value */
        {"\x18\x80", 2},             /* truncated varint */
        {"\x07", 1},                 /* wire type 7 */
        {"\x82\x01\x03\x0a\x01", 5}, /* view past the end */
        {"not a protobuf at all", 21},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        Patron__V1__Event *out = (Patron__V1__Event *)1;
        const char *reason = NULL;
        int rc = patron_event_decode(rows[i].bytes, rows[i].len, &out, &reason);
        cr_expect_eq(rc, PATRON_EINVAL, "row %zu", i);
        cr_expect_null(out, "row %zu", i);
        cr_expect_not_null(reason, "row %zu", i);
    }
    /* The typical protobuf-c failure has the decode prefix. */
    Patron__V1__Event *out;
    const char *reason;
    cr_expect_eq(patron_event_decode("\x0a", 1, &out, &reason), PATRON_EINVAL);
    cr_expect_str_eq(reason, "decode: not a patron.v1.Event");
    /* Empty payload decodes to an empty event: missing event_id. */
    cr_expect_eq(patron_event_decode(NULL, 0, &out, &reason), PATRON_EINVAL);
    cr_expect_str_eq(reason, "missing event_id");
}

/* Pseudo-random bytes never crash the decoder and never pass as an event. */
Test(event_check, random_bytes_are_rejected_safely)
{
    uint8_t buf[256];
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    int accepted = 0;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        Patron__V1__Event *out = NULL;
        const char *reason = NULL;
        int rc = patron_event_decode(buf, len, &out, &reason);
        if (rc == 0) {
            accepted++;
            patron__v1__event__free_unpacked(out, NULL);
        } else {
            cr_assert_not_null(reason);
        }
    }
    cr_expect_eq(accepted, 0);
}

Test(event_check, huge_input_is_too_big)
{
    size_t len = PATRON_EVENT_MAX_BYTES + 1;
    uint8_t *buf = calloc(1, len);
    cr_assert_not_null(buf);
    Patron__V1__Event *out = (Patron__V1__Event *)1;
    const char *reason = NULL;
    cr_expect_eq(patron_event_decode(buf, len, &out, &reason), PATRON_ETOOBIG);
    cr_expect_null(out);
    cr_expect_str_eq(reason, "decode: event too big");
    /* The size check comes before anything looks at the bytes. */
    cr_expect_eq(patron_event_decode(NULL, SIZE_MAX, &out, &reason), PATRON_ETOOBIG);
    free(buf);
}

/* A purchase of 1000 lines (the maximum) near 1 MiB still decodes. */
Test(event_check, largest_valid_purchase_decodes)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    static struct fx_line lines[PATRON_EVENT_LINES_MAX];
    for (size_t i = 0; i < PATRON_EVENT_LINES_MAX; i++)
        lines[i] = (struct fx_line){MAX_ID, MAX_ID, 1000, 1000000};
    Patron__V1__Event *ev = fx_purchase(f, MAX_ID, FX_T0, PATRON_EVENT_LINES_MAX, lines);
    size_t len;
    uint8_t *buf = pack(ev, &len);
    cr_expect_lt(len, PATRON_EVENT_MAX_BYTES);
    Patron__V1__Event *out = NULL;
    const char *reason = NULL;
    cr_assert_eq(patron_event_decode(buf, len, &out, &reason), 0, "%s", reason);
    cr_expect_eq(out->purchase->n_items, PATRON_EVENT_LINES_MAX);
    cr_expect_eq(patron_event_value_cents(out), INT64_C(1000) * 1000 * 1000000);
    patron__v1__event__free_unpacked(out, NULL);
    free(buf);
    free(f);
}

Test(event_check, value_of_purchase_refund_and_others)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    struct fx_line lines[] = {{"a", "", 3, 250}, {"b", "", 1, 1}, {"c", "", 2, 0}};
    cr_expect_eq(patron_event_value_cents(fx_purchase(f, "e", FX_T0, 3, lines)), 751);
    cr_expect_eq(patron_event_value_cents(fx_refund(f, "e", FX_T0, 0, 3, lines)), 751);
    cr_expect_eq(patron_event_value_cents(fx_refund(f, "e", FX_T0, 40, 3, lines)), 40);
    cr_expect_eq(patron_event_value_cents(fx_view(f, "e", FX_T0, "i", "")), 0);
    cr_expect_eq(patron_event_value_cents(NULL), 0);
    /* Unchecked: saturates rather than overflowing. */
    struct fx_line huge[] = {{"a", "", INT32_MAX, INT64_MAX}, {"b", "", INT32_MAX, INT64_MAX}};
    cr_expect_eq(patron_event_value_cents(fx_purchase(f, "e", FX_T0, 2, huge)),
                 PATRON_EVENT_VALUE_MAX_CENTS);
    free(f);
}

Test(event_check, text_validation_table)
{
    static const struct {
        const char *s;
        bool ok;
    } rows[] = {
        {"", true},
        {"plain ASCII ~!", true},
        {"caf\xc3\xa9", true},
        {"\xe2\x82\xac", true},
        {"\xf0\x9f\x8e\x81", true},
        {"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
        {"\x1f", false},
        {"\x80", false},
        {"\xc1\xbf", false},         /* overlong */
        {"\xe0\x9f\xbf", false},     /* overlong */
        {"\xf0\x8f\xbf\xbf", false}, /* overlong */
        {"\xf5\x80\x80\x80", false},
        {"\xc3", false},
        {"\xc3\x28", false},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(patron_event_text_valid(rows[i].s, strlen(rows[i].s)), rows[i].ok, "row %zu",
                     i);
}

/* A visitor's event has an anonymous_id instead of a customer_id; an
 * Identify needs both the customer and the visitor's id. */
Test(event_check, visitors_and_identify)
{
    struct fx_event *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    enum {
        VISITOR_VIEW,
        VISITOR_PURCHASE,
        NEITHER,
        ANON_TOO_LONG,
        ANON_BAD,
        BOTH,
        IDENTIFY,
        IDENTIFY_ANONYMOUS,
        IDENTIFY_NO_ID,
        IDENTIFY_LONG,
        IDENTIFY_NULL
    };
    static const struct {
        int what;
        const char *reason; /* NULL: valid */
    } rows[] = {
        {VISITOR_VIEW, NULL},
        {VISITOR_PURCHASE, NULL},
        {NEITHER, "missing customer_id"},
        {ANON_TOO_LONG, "anonymous_id too long"},
        {ANON_BAD, "anonymous_id has invalid bytes"},
        {BOTH, NULL},
        {IDENTIFY, NULL},
        {IDENTIFY_ANONYMOUS, "missing customer_id"},
        {IDENTIFY_NO_ID, "missing identify.anonymous_id"},
        {IDENTIFY_LONG, "identify.anonymous_id too long"},
        {IDENTIFY_NULL, "missing kind"},
    };
    struct fx_line one = {"a", "", 1, 100};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        Patron__V1__Event *ev = fx_view(f, "e", FX_T0, "i", "cat");
        switch (rows[i].what) {
        case VISITOR_VIEW:
            fx_anon(ev, "cookie-1");
            break;
        case VISITOR_PURCHASE:
            fx_anon(fx_purchase(f, "e", FX_T0, 1, &one), MAX_ID);
            break;
        case NEITHER:
            fx_anon(ev, "");
            break;
        case ANON_TOO_LONG:
            fx_anon(ev, LONG_ID);
            break;
        case ANON_BAD:
            fx_anon(ev, "a\x01");
            break;
        case BOTH:
            ev->anonymous_id = "cookie-1"; /* a logged-in event: the customer's */
            break;
        case IDENTIFY:
            ev = fx_identify(f, "e", FX_T0, "cookie-1");
            break;
        case IDENTIFY_ANONYMOUS:
            ev = fx_anon(fx_identify(f, "e", FX_T0, "cookie-1"), "cookie-1");
            break;
        case IDENTIFY_NO_ID:
            ev = fx_identify(f, "e", FX_T0, "");
            break;
        case IDENTIFY_LONG:
            ev = fx_identify(f, "e", FX_T0, LONG_ID);
            break;
        case IDENTIFY_NULL:
            ev = fx_identify(f, "e", FX_T0, "x");
            ev->identify = NULL;
            break;
        }
        const char *reason = "unset";
        int rc = patron_event_check(ev, &reason);
        if (rows[i].reason) {
            cr_expect_eq(rc, PATRON_EINVAL, "row %zu", i);
            cr_expect_str_eq(reason, rows[i].reason, "row %zu", i);
        } else {
            cr_expect_eq(rc, 0, "row %zu: %s", i, reason);
        }
    }
    free(f);
}
