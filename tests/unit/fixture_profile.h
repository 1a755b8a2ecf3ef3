/*
 * Test fixture of the profile codec's unit tests (test_profile_codec*.c,
 * test_profile_json.c): profiles built through patron_profile_apply, a
 * field-by-field comparison, the round trip through the stored form, and
 * the oracle: the decoder patron_profile_decode replaced (protobuf-c's
 * unpack, then the checks and the copy), which the hand-written one must
 * agree with on every buffer. Test code: static inline, so each test file
 * takes what it uses.
 */
#ifndef PATRON_TEST_FIXTURE_PROFILE_H
#define PATRON_TEST_FIXTURE_PROFILE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/event_check.h"
#include "patron/pb_unpack.h"
#include "patron/profile.h"
#include "patron/profile_codec.h"
#include "patron/v1/profile.pb-c.h"

static inline struct patron_profile_config defcfg(void)
{
    struct patron_profile_config c;
    patron_profile_config_default(&c);
    return c;
}

/* Applies as the profile's customer and asserts that it was applied. */
static inline void apply_ok(struct patron_profile *p, Patron__V1__Event *ev, int64_t offset)
{
    ev->customer_id = p->customer_id;
    struct patron_profile_config c = defcfg();
    struct patron_apply_outcome out;
    cr_assert_eq(patron_profile_apply(p, ev, 1, offset, &c, &out), 0);
    cr_assert_eq(out.result, PATRON_APPLY_APPLIED);
}

/* Field by field, so that a codec that forgets one is caught by name. */
static inline void expect_same(const struct patron_profile *a, const struct patron_profile *b)
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
    SAME(n_marks);
    SAME(merged_partition);
    SAME(n_aliases);
    SAME(erased);
    SAME(n_bought_earlier);
#undef SAME
    cr_expect_str_eq(a->anonymous_id, b->anonymous_id);
    cr_expect_str_eq(a->merged_into, b->merged_into);
    for (size_t i = 0; i < a->n_marks; i++) {
        cr_expect_eq(a->marks[i].partition, b->marks[i].partition);
        cr_expect_eq(a->marks[i].offset, b->marks[i].offset);
    }
    for (size_t i = 0; i < a->n_aliases; i++) {
        const struct patron_profile_alias *x = &a->aliases[i], *y = &b->aliases[i];
        cr_expect_str_eq(x->anonymous_id, y->anonymous_id);
        cr_expect_eq(x->merged_at_ms, y->merged_at_ms);
        cr_expect_eq(x->floor_ms, y->floor_ms);
        cr_expect_eq(x->viewed, y->viewed);
        cr_expect_eq(x->cart_lines, y->cart_lines);
        cr_expect_eq(x->orders, y->orders);
        cr_expect_eq(x->n_marks, y->n_marks);
        for (size_t k = 0; k < x->n_marks; k++) {
            cr_expect_eq(x->marks[k].partition, y->marks[k].partition);
            cr_expect_eq(x->marks[k].offset, y->marks[k].offset);
        }
    }
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

static inline struct patron_profile round_trip(const struct patron_profile *p, size_t *encoded_len)
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
static inline struct patron_profile full_profile(void)
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
    for (size_t i = 0; i < PATRON_PROFILE_MARKS_MAX; i++)
        p.marks[i] =
            (struct patron_profile_mark){i ? (int32_t)i : INT32_MAX, INT64_MAX - (int64_t)i};
    p.n_marks = PATRON_PROFILE_MARKS_MAX;
    for (size_t i = 0; i < PATRON_PROFILE_ALIASES_MAX; i++) {
        struct patron_profile_alias *a = &p.aliases[i];
        memset(a->anonymous_id, 'a' + (int)i, PATRON_ID_MAX);
        a->merged_at_ms = FX_T0 + (int64_t)i;
        a->floor_ms = i % 2 ? FX_T0 - 1 : 0;
        for (size_t k = 0; k < PATRON_PROFILE_MARKS_MAX; k++)
            a->marks[k] = (struct patron_profile_mark){(int32_t)k, INT64_MAX - (int64_t)k};
        a->n_marks = PATRON_PROFILE_MARKS_MAX;
        a->viewed = 10;
        a->cart_lines = INT64_MAX;
        a->orders = -1;
    }
    p.n_aliases = PATRON_PROFILE_ALIASES_MAX;
    p.erased = true;
    return p;
}

/* ---- the hand-written decoder against protobuf-c ---------------------------
 *
 * The oracle is the decoder patron_profile_decode replaced, kept verbatim in
 * substance: protobuf-c's unpack, then the checks and the copy. The new one
 * must agree with it on every buffer: accept or reject alike and, when both
 * accept, give the same profile. One rule the old one did not have: a
 * string holding a NUL is refused, where the old one read it up to the NUL
 * (a stored id "victim\0x" read as "victim"); the oracle's allocator keeps
 * each copy's size to see the NUL. */

#define REF_SIZED_HDR 16

static inline void *ref_sized_alloc(void *ud, size_t n)
{
    (void)ud;
    uint8_t *p = malloc(REF_SIZED_HDR + n);
    cr_assert_not_null(p);
    memcpy(p, &n, sizeof(n));
    return p + REF_SIZED_HDR;
}

static inline void ref_sized_free(void *ud, void *p)
{
    (void)ud;
    if (p)
        free((uint8_t *)p - REF_SIZED_HDR);
}

static ProtobufCAllocator ref_sized = {.alloc = ref_sized_alloc, .free = ref_sized_free};

static inline bool ref_text_ok(const char *src, size_t max, bool required)
{
    size_t len = src ? strlen(src) : 0;
    if (len == 0 && (!src || src == protobuf_c_empty_string))
        return !required;
    size_t copied; /* the whole copy, a NUL inside included */
    memcpy(&copied, (const uint8_t *)src - REF_SIZED_HDR, sizeof(copied));
    if (copied - 1 != len)
        return false;
    if (len == 0)
        return !required;
    return len <= max && patron_event_text_valid(src, len);
}

static inline bool ref_id_ok(const char *src)
{
    return ref_text_ok(src, PATRON_ID_MAX, true);
}

static inline int ref_check(const Patron__V1__ProfileState *m)
{
    /* a customer (customer_id) or a visitor (anonymous_id), not both */
    bool visitor = !m->customer_id || !m->customer_id[0];
    if (visitor ? (!ref_id_ok(m->anonymous_id) || m->n_aliases)
                : (!ref_id_ok(m->customer_id) || (m->anonymous_id && m->anonymous_id[0]) ||
                   (m->merged_into && m->merged_into[0])))
        return PATRON_EINVAL;
    if (!ref_text_ok(m->merged_into, PATRON_ID_MAX, false) ||
        m->n_aliases > PATRON_PROFILE_ALIASES_MAX ||
        (m->source != NULL) + m->n_more_sources > PATRON_PROFILE_MARKS_MAX ||
        (m->n_more_sources && !m->source))
        return PATRON_EINVAL;
    for (size_t i = 0; i < m->n_aliases; i++)
        if (!ref_id_ok(m->aliases[i]->anonymous_id) ||
            m->aliases[i]->n_marks > PATRON_PROFILE_MARKS_MAX)
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

static inline void ref_take(char *dst, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static inline void ref_fill(struct patron_profile *p, const Patron__V1__ProfileState *m)
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
    p->n_marks = 0;
    if (m->source)
        p->marks[p->n_marks++] =
            (struct patron_profile_mark){m->source->partition, m->source->offset};
    for (size_t i = 0; i < m->n_more_sources; i++)
        p->marks[p->n_marks++] =
            (struct patron_profile_mark){m->more_sources[i]->partition, m->more_sources[i]->offset};
    ref_take(p->anonymous_id, m->anonymous_id);
    ref_take(p->merged_into, m->merged_into);
    p->merged_partition = m->merged_partition;
    for (size_t i = 0; i < m->n_aliases; i++) {
        const Patron__V1__MergedAlias *x = m->aliases[i];
        struct patron_profile_alias *a = &p->aliases[i];
        ref_take(a->anonymous_id, x->anonymous_id);
        a->merged_at_ms = x->merged_at_ms;
        a->floor_ms = x->floor_ms;
        a->viewed = x->viewed;
        a->cart_lines = x->cart_lines;
        a->orders = x->orders;
        a->n_marks = x->n_marks;
        for (size_t k = 0; k < x->n_marks; k++)
            a->marks[k] = (struct patron_profile_mark){x->marks[k]->partition, x->marks[k]->offset};
    }
    p->n_aliases = m->n_aliases;
    p->erased = m->erased != 0;
    if (m->n_bought_earlier)
        memcpy(p->bought_earlier, m->bought_earlier,
               m->n_bought_earlier * sizeof(p->bought_earlier[0]));
    p->n_bought_earlier = m->n_bought_earlier;
}

static inline int ref_decode(struct patron_profile *p, const uint8_t *buf, size_t len)
{
    if (len > PATRON_PROFILE_ENCODED_MAX)
        return PATRON_ETOOBIG;
    static const uint8_t empty[1];
    Patron__V1__ProfileState *m =
        patron__v1__profile_state__unpack(&ref_sized, len, buf ? buf : empty);
    if (!m)
        return PATRON_EINVAL;
    int rc = ref_check(m);
    if (rc == 0)
        ref_fill(p, m);
    patron__v1__profile_state__free_unpacked(m, &ref_sized);
    return rc;
}

/* Field by field up to the counts; says in why which one differs. Quiet,
 * unlike expect_same, for loops of 100k cases. */
static inline bool same_profile(const struct patron_profile *a, const struct patron_profile *b,
                                char *why, size_t cap)
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
    NE(n_marks);
    NE(merged_partition);
    NE(n_aliases);
    STRNE(anonymous_id);
    STRNE(merged_into);
    for (size_t i = 0; i < a->n_marks; i++) {
        NE(marks[i].partition);
        NE(marks[i].offset);
    }
    for (size_t i = 0; i < a->n_aliases; i++) {
        STRNE(aliases[i].anonymous_id);
        NE(aliases[i].merged_at_ms);
        NE(aliases[i].floor_ms);
        NE(aliases[i].viewed);
        NE(aliases[i].cart_lines);
        NE(aliases[i].orders);
        NE(aliases[i].n_marks);
        for (size_t k = 0; k < a->aliases[i].n_marks; k++) {
            NE(aliases[i].marks[k].partition);
            NE(aliases[i].marks[k].offset);
        }
    }
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
static inline bool decoders_agree(struct oracle *o, const uint8_t *buf, size_t len, int *rc_out,
                                  char *why, size_t cap)
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

static inline struct oracle *oracle_new(void)
{
    struct oracle *o = malloc(sizeof(*o));
    cr_assert_not_null(o);
    return o;
}

#endif
