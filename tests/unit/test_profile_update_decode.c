/* The bounded decode of a ProfileUpdate (profile_update_decode.h): what
 * patron-trigger accepts from patron.profile-updates, and why it refuses
 * the rest (the DLQ's `error`). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "patron/profile_update.h"
#include "patron/profile_update_decode.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(profile_update_decode);

#define T0 INT64_C(1300000000000)

static char long_id[PATRON_ID_MAX + 2];
static char *items[PATRON_UPDATE_ITEMS_MAX + 1];

/* A valid update; each case changes one thing. */
static void base(Patron__V1__ProfileUpdate *u)
{
    patron__v1__profile_update__init(u);
    u->customer_id = "cust-1";
    u->event_id = "ev-1";
    u->kind = PATRON__V1__EVENT_KIND__PURCHASE;
    u->occurred_at_ms = T0;
    u->tier = "gold";
    u->segment = "champion";
    u->time_zone = "Europe/London";
    u->locale = "en-GB";
    u->birthday = "03-10";
    u->partition = 2;
    u->offset = 7;
}

static void id_long(Patron__V1__ProfileUpdate *u)
{
    memset(long_id, 'x', PATRON_ID_MAX + 1);
    long_id[PATRON_ID_MAX + 1] = 0;
    u->customer_id = long_id;
}
static void id_max(Patron__V1__ProfileUpdate *u)
{
    memset(long_id, 'x', PATRON_ID_MAX);
    long_id[PATRON_ID_MAX] = 0;
    u->customer_id = long_id;
}
static void event_long(Patron__V1__ProfileUpdate *u)
{
    id_long(u);
    u->customer_id = "c";
    u->event_id = long_id;
}
static void no_customer(Patron__V1__ProfileUpdate *u)
{
    u->customer_id = "";
}
static void no_event(Patron__V1__ProfileUpdate *u)
{
    u->event_id = "";
}
static void negative_time(Patron__V1__ProfileUpdate *u)
{
    u->occurred_at_ms = -1;
}
static void time_past_9999(Patron__V1__ProfileUpdate *u)
{
    u->occurred_at_ms = INT64_C(253402300800000);
}
static void with_items(Patron__V1__ProfileUpdate *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i] = "item-0123456789";
    u->item_ids = items;
    u->n_item_ids = n;
}
static void items_max(Patron__V1__ProfileUpdate *u)
{
    with_items(u, PATRON_UPDATE_ITEMS_MAX);
}
static void items_over(Patron__V1__ProfileUpdate *u)
{
    with_items(u, PATRON_UPDATE_ITEMS_MAX + 1);
}
static void item_long(Patron__V1__ProfileUpdate *u)
{
    id_long(u);
    u->customer_id = "c";
    with_items(u, 1);
    items[0] = long_id;
}
static void tier_long(Patron__V1__ProfileUpdate *u)
{
    u->tier = "0123456789012345678901234567890123";
}
static void segment_long(Patron__V1__ProfileUpdate *u)
{
    u->previous_segment = "0123456789012345678901234567890123";
}
static void birthday_long(Patron__V1__ProfileUpdate *u)
{
    u->birthday = "2011-03-10";
}
static void fanout(Patron__V1__ProfileUpdate *u)
{
    u->kind = PATRON__V1__EVENT_KIND__ERASURE;
    u->fanout = true;
}

struct decode_case {
    const char *name;
    void (*change)(Patron__V1__ProfileUpdate *u);
    int rc;
    const char *why;
};

static const struct decode_case CASES[] = {
    {"valid", NULL, 0, NULL},
    {"id of PATRON_ID_MAX bytes", id_max, 0, NULL},
    {"1,000 items", items_max, 0, NULL},
    {"a fan-out erasure", fanout, 0, NULL},
    {"customer id too long", id_long, PATRON_ETOOBIG, "customer_id too long"},
    {"event id too long", event_long, PATRON_ETOOBIG, "event_id too long"},
    {"no customer", no_customer, PATRON_EINVAL, "customer_id empty"},
    {"no event id", no_event, PATRON_EINVAL, "event_id empty"},
    {"before 1970", negative_time, PATRON_EINVAL, "occurred_at_ms outside 1970..9999"},
    {"after 9999", time_past_9999, PATRON_EINVAL, "occurred_at_ms outside 1970..9999"},
    {"1,001 items", items_over, PATRON_ETOOBIG, "too many item_ids"},
    {"item id too long", item_long, PATRON_ETOOBIG, "item_id too long"},
    {"tier too long", tier_long, PATRON_ETOOBIG, "tier too long"},
    {"previous segment too long", segment_long, PATRON_ETOOBIG, "previous_segment too long"},
    {"birthday too long", birthday_long, PATRON_ETOOBIG, "birthday too long"},
};

Test(profile_update_decode, table)
{
    for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
        const struct decode_case *k = &CASES[c];
        Patron__V1__ProfileUpdate u;
        base(&u);
        if (k->change)
            k->change(&u);
        size_t len = patron__v1__profile_update__get_packed_size(&u);
        uint8_t *buf = malloc(len + 1);
        patron__v1__profile_update__pack(&u, buf);
        Patron__V1__ProfileUpdate *out = (void *)1;
        const char *why = NULL;
        int rc = patron_profile_update_decode(buf, len, &out, &why);
        cr_expect_eq(rc, k->rc, "%s: rc %d", k->name, rc);
        if (k->rc) {
            cr_expect_null(out, "%s", k->name);
            cr_expect(why && strcmp(why, k->why) == 0, "%s: why %s", k->name, why ? why : "(null)");
        } else {
            cr_assert_not_null(out, "%s", k->name);
            cr_expect_str_eq(out->customer_id, u.customer_id, "%s", k->name);
            cr_expect_eq(out->n_item_ids, u.n_item_ids, "%s", k->name);
            cr_expect_eq(out->fanout, u.fanout, "%s", k->name);
            patron__v1__profile_update__free_unpacked(out, NULL);
        }
        free(buf);
    }
}

/* Bytes on the wire that protobuf-c would take, or not, and the bounds
 * checked before it allocates. */
struct wire_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    int rc;
    const char *why;
};

/* customer_id "a\0b" (field 1), event_id "e" (2), occurred_at 1 (4). */
static const uint8_t NUL_IN_ID[] = {0x0a, 3, 'a', 0, 'b', 0x12, 1, 'e', 0x20, 1};
static const uint8_t GARBAGE[] = {0xff, 0x00, 'n', 'o', 't'};
static const uint8_t TRUNCATED[] = {0x0a, 10, 'a', 'b'};
/* a valid update followed by PATRON_PROFILE_UPDATE_FANOUT_SUFFIX */
static const uint8_t WITH_SUFFIX[] = {0x0a, 1,    'c', 0x12, 1,    'e', 0x18,
                                      9,    0x20, 1,   0xd0, 0x01, 0x01};

Test(profile_update_decode, wire)
{
    static const struct wire_case cases[] = {
        {"NUL in an id", NUL_IN_ID, sizeof(NUL_IN_ID), PATRON_EINVAL, "a string holds a NUL byte"},
        {"garbage", GARBAGE, sizeof(GARBAGE), PATRON_EINVAL, "not a ProfileUpdate"},
        {"length past the end", TRUNCATED, sizeof(TRUNCATED), PATRON_EINVAL, "not a ProfileUpdate"},
        {"empty", GARBAGE, 0, PATRON_EINVAL, "customer_id empty"},
        {"fan-out suffix", WITH_SUFFIX, sizeof(WITH_SUFFIX), 0, NULL},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        Patron__V1__ProfileUpdate *out = NULL;
        const char *why = NULL;
        int rc = patron_profile_update_decode(cases[c].bytes, cases[c].len, &out, &why);
        cr_expect_eq(rc, cases[c].rc, "%s: rc %d", cases[c].name, rc);
        if (rc == 0) {
            cr_expect(out->fanout && out->kind == PATRON__V1__EVENT_KIND__ERASURE, "%s",
                      cases[c].name);
            patron__v1__profile_update__free_unpacked(out, NULL);
        } else {
            cr_expect_str_eq(why, cases[c].why, "%s", cases[c].name);
        }
    }
}

Test(profile_update_decode, size_and_unknown_fields_bounded_before_unpacking)
{
    /* one byte over the size: refused without a look */
    size_t big = PATRON_PROFILE_UPDATE_MAX + 1;
    uint8_t *buf = calloc(1, big);
    Patron__V1__ProfileUpdate *out = NULL;
    const char *why = NULL;
    cr_expect_eq(patron_profile_update_decode(buf, big, &out, &why), PATRON_ETOOBIG);
    cr_expect_str_eq(why, "update too big");
    cr_expect_null(out);

    /* unknown fields (number 100, varint 0), one over the bound */
    size_t n = PATRON_PROFILE_UPDATE_UNKNOWN_MAX + 1, len = 0;
    for (size_t i = 0; i < n; i++) {
        buf[len++] = 0xa0; /* tag of field 100, varint: 800 = 0xa0 0x06 */
        buf[len++] = 0x06;
        buf[len++] = 0;
    }
    cr_expect_eq(patron_profile_update_decode(buf, len, &out, &why), PATRON_ETOOBIG);
    cr_expect_str_eq(why, "too many unknown fields");
    /* at the bound they are kept (a newer ingest's fields) */
    cr_expect_eq(patron_profile_update_decode(buf, len - 3, &out, &why), PATRON_EINVAL);
    cr_expect_str_eq(why, "customer_id empty");
    free(buf);
}
