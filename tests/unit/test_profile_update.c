#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/profile_update.h"
#include "patron/rfm.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(profile_update);

static struct fx_event fx; /* large: not on the stack */
static struct patron_profile profile;

/* A profile with every field the update copies set to something telling. */
static const struct patron_profile *a_profile(void)
{
    patron_profile_init(&profile, FX_CUSTOMER);
    profile.orders = 7;
    profile.net_spend_cents = -1250;
    profile.points = 4321;
    profile.last_purchase_ms = FX_T0 - FX_DAY;
    profile.first_purchase_ms = FX_T0 - 40 * FX_DAY;
    profile.consent_sms = true;
    profile.consent_push = false;
    profile.consent_email = true;
    patron_copy_str(profile.time_zone, sizeof(profile.time_zone), "Europe/Paris");
    patron_copy_str(profile.locale, sizeof(profile.locale), "fr-FR");
    patron_copy_str(profile.birthday, sizeof(profile.birthday), "02-29");
    return &profile;
}

static const struct fx_line two_lines[] = {{"i-shoe", "shoes", 1, 5000}, {"i-sock", "", 3, 250}};

static Patron__V1__Event *ev_view(void)
{
    return fx_view(&fx, "e-view", FX_T0, "i-view", "cat");
}
static Patron__V1__Event *ev_cart_add(void)
{
    return fx_cart_add(&fx, "e-add", FX_T0, "i-add", "cat", 2, 999);
}
static Patron__V1__Event *ev_cart_remove(void)
{
    return fx_cart_remove(&fx, "e-rm", FX_T0, "i-rm");
}
static Patron__V1__Event *ev_purchase(void)
{
    return fx_purchase(&fx, "e-buy", FX_T0, 2, two_lines);
}
static Patron__V1__Event *ev_refund(void)
{
    return fx_refund(&fx, "e-refund", FX_T0, 5000, 2, two_lines);
}
static Patron__V1__Event *ev_review(void)
{
    return fx_review(&fx, "e-review", FX_T0, "i-rev", 4);
}
static Patron__V1__Event *ev_customer(void)
{
    return fx_customer(&fx, "e-cust", FX_T0, "02-29", "Europe/Paris", "fr-FR", "FR");
}
static Patron__V1__Event *ev_consent(void)
{
    return fx_consent(&fx, "e-consent", FX_T0, PATRON__V1__CHANNEL__PUSH, true);
}
static Patron__V1__Event *ev_consent_revoked(void)
{
    return fx_consent(&fx, "e-revoke", FX_T0, PATRON__V1__CHANNEL__EMAIL, false);
}
static Patron__V1__Event *ev_erasure(void)
{
    return fx_erasure(&fx, "e-erase", FX_T0);
}
static Patron__V1__Event *ev_none(void)
{
    return fx_base(&fx, "e-none", FX_T0); /* no kind set */
}

static const struct update_case {
    const char *name;
    Patron__V1__Event *(*make)(void);
    Patron__V1__EventKind kind;
    const char *items[3];
    enum patron_apply_result result;
    Patron__V1__Channel channel; /* consent only */
    bool granted;
} cases[] = {
    {"view", ev_view, PATRON__V1__EVENT_KIND__VIEW, {"i-view"}, PATRON_APPLY_APPLIED},
    {"cart add", ev_cart_add, PATRON__V1__EVENT_KIND__CART_ADD, {"i-add"}, PATRON_APPLY_APPLIED},
    {"cart remove",
     ev_cart_remove,
     PATRON__V1__EVENT_KIND__CART_REMOVE,
     {"i-rm"},
     PATRON_APPLY_REPLAYED},
    {"purchase",
     ev_purchase,
     PATRON__V1__EVENT_KIND__PURCHASE,
     {"i-shoe", "i-sock"},
     PATRON_APPLY_APPLIED},
    {"purchase replayed",
     ev_purchase,
     PATRON__V1__EVENT_KIND__PURCHASE,
     {"i-shoe", "i-sock"},
     PATRON_APPLY_REPLAYED},
    {"refund",
     ev_refund,
     PATRON__V1__EVENT_KIND__REFUND,
     {"i-shoe", "i-sock"},
     PATRON_APPLY_APPLIED},
    {"review", ev_review, PATRON__V1__EVENT_KIND__REVIEW, {"i-rev"}, PATRON_APPLY_APPLIED},
    {"customer", ev_customer, PATRON__V1__EVENT_KIND__CUSTOMER, {NULL}, PATRON_APPLY_APPLIED},
    {"consent granted",
     ev_consent,
     PATRON__V1__EVENT_KIND__CONSENT,
     {NULL},
     PATRON_APPLY_APPLIED,
     PATRON__V1__CHANNEL__PUSH,
     true},
    {"consent revoked",
     ev_consent_revoked,
     PATRON__V1__EVENT_KIND__CONSENT,
     {NULL},
     PATRON_APPLY_REPLAYED,
     PATRON__V1__CHANNEL__EMAIL,
     false},
    {"erasure", ev_erasure, PATRON__V1__EVENT_KIND__ERASURE, {NULL}, PATRON_APPLY_APPLIED},
    {"no kind",
     ev_none,
     PATRON__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED,
     {NULL},
     PATRON_APPLY_APPLIED},
};

/* Packs, decodes with protobuf-c and checks every field of the update. */
Test(profile_update, every_field_for_each_kind)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct update_case *tc = &cases[i];
        const Patron__V1__Event *ev = tc->make();
        const struct patron_profile *p = a_profile();
        struct patron_apply_outcome out = {
            .result = tc->result,
            .tier_before = PATRON_TIER_SILVER,
            .tier_after = PATRON_TIER_GOLD,
            .segment_before = PATRON_SEGMENT_NEW,
            .segment_after = PATRON_SEGMENT_AT_RISK,
            .value_cents = 5750 + (int64_t)i,
        };
        uint8_t buf[4096];
        size_t len = 0;
        cr_assert_eq(patron_profile_update_pack(ev, p, &out, 11, 123456789012 + (int64_t)i, buf,
                                                sizeof(buf), &len),
                     0, "%s", tc->name);
        Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, len, buf);
        cr_assert_not_null(u, "%s: does not decode", tc->name);
        cr_expect_str_eq(u->customer_id, FX_CUSTOMER, "%s", tc->name);
        cr_expect_str_eq(u->event_id, ev->event_id, "%s", tc->name);
        cr_expect_eq(u->kind, tc->kind, "%s: kind %d", tc->name, u->kind);
        cr_expect_eq(u->occurred_at_ms, FX_T0, "%s", tc->name);
        cr_expect_eq(u->replayed, tc->result == PATRON_APPLY_REPLAYED, "%s", tc->name);
        size_t n_items = 0;
        while (n_items < PATRON_ARRAY_LEN(tc->items) && tc->items[n_items])
            n_items++;
        cr_expect_eq(u->n_item_ids, n_items, "%s: %zu items", tc->name, u->n_item_ids);
        for (size_t k = 0; k < n_items && k < u->n_item_ids; k++)
            cr_expect_str_eq(u->item_ids[k], tc->items[k], "%s: item %zu", tc->name, k);
        cr_expect_eq(u->value_cents, 5750 + (int64_t)i, "%s", tc->name);
        cr_expect_str_eq(u->tier, "gold", "%s", tc->name);
        cr_expect_str_eq(u->previous_tier, "silver", "%s", tc->name);
        cr_expect_str_eq(u->segment, "at_risk", "%s", tc->name);
        cr_expect_str_eq(u->previous_segment, "new", "%s", tc->name);
        cr_expect_eq(u->orders, 7, "%s", tc->name);
        cr_expect_eq(u->net_spend_cents, -1250, "%s", tc->name);
        cr_expect_eq(u->points, 4321, "%s", tc->name);
        cr_expect_eq(u->last_purchase_ms, FX_T0 - FX_DAY, "%s", tc->name);
        cr_expect_eq(u->first_purchase_ms, FX_T0 - 40 * FX_DAY, "%s", tc->name);
        cr_expect(u->consent_sms && !u->consent_push && u->consent_email, "%s", tc->name);
        cr_expect_str_eq(u->time_zone, "Europe/Paris", "%s", tc->name);
        cr_expect_str_eq(u->locale, "fr-FR", "%s", tc->name);
        cr_expect_str_eq(u->birthday, "02-29", "%s", tc->name);
        cr_expect_eq(u->consent_channel, tc->channel, "%s", tc->name);
        cr_expect_eq(u->consent_granted, tc->granted, "%s", tc->name);
        cr_expect_eq(u->partition, 11, "%s", tc->name);
        cr_expect_eq(u->offset, 123456789012 + (int64_t)i, "%s", tc->name);
        cr_expect_eq(patron__v1__profile_update__get_packed_size(u), len, "%s: length", tc->name);
        cr_expect_not(u->fanout, "%s", tc->name);
        /* the erasure's fan-out copy for the other partitions: the same
         * update, flagged, and the bytes protobuf-c packs for it */
        uint8_t copy[4096 + PATRON_UPDATE_FANOUT_EXTRA], want[4096 + PATRON_UPDATE_FANOUT_EXTRA];
        size_t clen = patron_profile_update_fanout(buf, len, copy);
        cr_expect_eq(clen, len + PATRON_UPDATE_FANOUT_EXTRA);
        u->fanout = true;
        cr_assert_eq(patron__v1__profile_update__get_packed_size(u), clen, "%s", tc->name);
        cr_assert_eq(patron__v1__profile_update__pack(u, want), clen);
        cr_expect(memcmp(copy, want, clen) == 0, "%s: copy bytes", tc->name);
        patron__v1__profile_update__free_unpacked(u, NULL);
        u = patron__v1__profile_update__unpack(NULL, clen, copy);
        cr_assert_not_null(u, "%s: the copy does not decode", tc->name);
        cr_expect(u->fanout);
        cr_expect_str_eq(u->event_id, ev->event_id, "%s", tc->name);
        cr_expect_eq(u->partition, 11, "%s", tc->name);
        patron__v1__profile_update__free_unpacked(u, NULL);
    }
}

/* The items of each kind, and the bound on them. */
Test(profile_update, event_items_and_kind)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct update_case *tc = &cases[i];
        const Patron__V1__Event *ev = tc->make();
        cr_expect_eq(patron_event_kind(ev), tc->kind, "%s", tc->name);
        char *items[4];
        size_t n = patron_event_items(ev, items, PATRON_ARRAY_LEN(items));
        size_t want = 0;
        while (want < PATRON_ARRAY_LEN(tc->items) && tc->items[want])
            want++;
        cr_expect_eq(n, want, "%s", tc->name);
        cr_expect_eq(patron_event_items(ev, items, 0), 0, "%s: no room", tc->name);
        cr_expect_eq(patron_event_items(ev, items, 1), want ? 1 : 0, "%s: room for one", tc->name);
        if (want)
            cr_expect_str_eq(items[0], tc->items[0], "%s", tc->name);
    }
}

static char ids[FX_LINES_MAX][PATRON_ID_MAX + 1];

/* A purchase of n lines whose ids are id_len bytes. */
static const Patron__V1__Event *many_lines(size_t n, size_t id_len)
{
    static struct fx_line lines[FX_LINES_MAX];
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(ids[i], sizeof(ids[i]), "i%zu-", i);
        memset(ids[i] + w, 'x', id_len - (size_t)w);
        ids[i][id_len] = '\0';
        lines[i] = (struct fx_line){ids[i], "cat", 1, 100};
    }
    return fx_purchase(&fx, "e-many", FX_T0, n, lines);
}

/* At most PATRON_UPDATE_ITEMS_MAX items, the first ones, in order. */
Test(profile_update, item_list_bound)
{
    static const size_t lines[] = {1, PATRON_UPDATE_ITEMS_MAX - 1, PATRON_UPDATE_ITEMS_MAX,
                                   PATRON_UPDATE_ITEMS_MAX + 1, FX_LINES_MAX};
    struct patron_apply_outcome out = {.result = PATRON_APPLY_APPLIED};
    size_t cap = 64 * 1024;
    uint8_t *buf = malloc(cap);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(lines); i++) {
        const Patron__V1__Event *ev = many_lines(lines[i], 8);
        size_t len;
        cr_assert_eq(patron_profile_update_pack(ev, a_profile(), &out, 0, 0, buf, cap, &len), 0,
                     "%zu lines", lines[i]);
        Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, len, buf);
        cr_assert_not_null(u);
        size_t want = lines[i] < PATRON_UPDATE_ITEMS_MAX ? lines[i] : PATRON_UPDATE_ITEMS_MAX;
        cr_expect_eq(u->n_item_ids, want, "%zu lines: %zu items", lines[i], u->n_item_ids);
        for (size_t k = 0; k < u->n_item_ids; k++)
            cr_assert_str_eq(u->item_ids[k], ids[k], "%zu lines: item %zu", lines[i], k);
        patron__v1__profile_update__free_unpacked(u, NULL);
    }
    free(buf);
}

/* More than the room: PATRON_ETOOBIG with the room it needs, and a second
 * call with that room packs what one call with plenty of room packs. */
Test(profile_update, too_small_a_buffer)
{
    static const struct {
        size_t lines, id_len, cap;
    } cases2[] = {
        {1, 8, 0},                               /* no room at all */
        {1, 8, 16},                              /* a few bytes */
        {2, 8, 64},                              /* cut in the items */
        {FX_LINES_MAX, PATRON_ID_MAX, 4096},     /* a purchase of many long lines */
        {FX_LINES_MAX, PATRON_ID_MAX, 64 * 1024} /* more than a profile's scratch */
    };
    struct patron_apply_outcome out = {.result = PATRON_APPLY_REPLAYED, .value_cents = 1};
    size_t big = 256 * 1024;
    uint8_t *ref = malloc(big), *small = malloc(big);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases2); i++) {
        const Patron__V1__Event *ev = many_lines(cases2[i].lines, cases2[i].id_len);
        size_t want, need = 0, len = 0;
        cr_assert_eq(patron_profile_update_pack(ev, a_profile(), &out, 3, 9, ref, big, &want), 0);
        cr_assert_gt(want, cases2[i].cap, "case %zu: the case must not fit", i);
        cr_expect_eq(
            patron_profile_update_pack(ev, a_profile(), &out, 3, 9, small, cases2[i].cap, &need),
            PATRON_ETOOBIG, "case %zu", i);
        cr_expect_eq(need, want, "case %zu: needs %zu, packs %zu", i, need, want);
        cr_expect_eq(
            patron_profile_update_pack(ev, a_profile(), &out, 3, 9, small, want - 1, &need),
            PATRON_ETOOBIG, "case %zu: one byte short", i);
        cr_assert_eq(patron_profile_update_pack(ev, a_profile(), &out, 3, 9, small, want, &len), 0,
                     "case %zu: exact room", i);
        cr_expect_eq(len, want);
        cr_expect(memcmp(ref, small, want) == 0, "case %zu: bytes differ", i);
    }
    free(ref);
    free(small);
}

/* An Identify's update: kind IDENTIFY, the anonymous id merged, and the
 * merged cart's items only when the visitor brought cart lines; a merged
 * visitor's event: its customer's update, saying whose it was. */
Test(profile_update, identity)
{
    struct patron_profile *p = &profile;
    a_profile();
    patron_copy_str(p->cart[0].item_id, sizeof(p->cart[0].item_id), "i-cart-1");
    p->cart[0].quantity = 1;
    patron_copy_str(p->cart[1].item_id, sizeof(p->cart[1].item_id), "i-cart-2");
    p->cart[1].quantity = 2;
    p->n_cart = 2;
    static const struct {
        const char *name;
        bool identify;
        int64_t cart_lines;
        size_t n_items;
        const char *anonymous_id;
    } rows[] = {
        {"identify with a cart", true, 1, 2, "cookie-1"},
        {"identify without one", true, 0, 0, "cookie-1"},
        {"a merged visitor's view", false, 0, 1, "cookie-1"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        Patron__V1__Event *ev =
            rows[i].identify ? fx_identify(&fx, "e-id", FX_T0, "cookie-1")
                             : fx_anon(fx_view(&fx, "e-v", FX_T0, "i-view", "c"), "cookie-1");
        struct patron_apply_outcome out = {.result = PATRON_APPLY_APPLIED,
                                           .cart_lines = rows[i].cart_lines};
        uint8_t buf[4096];
        size_t len;
        cr_assert_eq(patron_profile_update_pack(ev, p, &out, 2, 5, buf, sizeof(buf), &len), 0);
        Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, len, buf);
        cr_assert_not_null(u, "%s", rows[i].name);
        cr_expect_str_eq(u->customer_id, FX_CUSTOMER, "%s: the customer's", rows[i].name);
        cr_expect_str_eq(u->anonymous_id, rows[i].anonymous_id, "%s", rows[i].name);
        cr_expect_eq(u->kind,
                     rows[i].identify ? PATRON__V1__EVENT_KIND__IDENTIFY
                                      : PATRON__V1__EVENT_KIND__VIEW,
                     "%s", rows[i].name);
        cr_expect_eq(u->n_item_ids, rows[i].n_items, "%s", rows[i].name);
        if (rows[i].identify && rows[i].n_items == 2) {
            cr_expect_str_eq(u->item_ids[0], "i-cart-1");
            cr_expect_str_eq(u->item_ids[1], "i-cart-2");
        }
        patron__v1__profile_update__free_unpacked(u, NULL);
    }
    /* a customer's own event names no anonymous id, even if it carries one */
    Patron__V1__Event *ev = fx_view(&fx, "e-own", FX_T0, "i", "c");
    ev->anonymous_id = "cookie-9";
    struct patron_apply_outcome out = {.result = PATRON_APPLY_APPLIED};
    uint8_t buf[4096];
    size_t len;
    cr_assert_eq(patron_profile_update_pack(ev, p, &out, 2, 5, buf, sizeof(buf), &len), 0);
    Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, len, buf);
    cr_assert_not_null(u);
    cr_expect_str_eq(u->anonymous_id, "");
    patron__v1__profile_update__free_unpacked(u, NULL);
}
