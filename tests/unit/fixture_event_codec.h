/*
 * Test fixture of patron_event_unpack's unit tests (test_event_codec*.c):
 * allocators that count and fail on demand, a field-by-field comparison of
 * two events, both decoders on one buffer (decoders_agree: the hand-written
 * one and its oracle, protobuf-c 1.4.1's patron__v1__event__unpack), and a
 * generator of random valid events. Test code: static inline, so each test
 * file takes what it uses.
 */
#ifndef PATRON_TEST_FIXTURE_EVENT_CODEC_H
#define PATRON_TEST_FIXTURE_EVENT_CODEC_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/event_codec.h"
#include "patron/pb_unpack.h"
#include "patron/v1/event.pb-c.h"
#define WIRE_SPANS_MAX 512 /* fields the mutations pick from */
#include "fixture_wire.h"

/* ---- allocators ---- */

/* The oracle's: malloc with the size in front, so that a string's copied
 * length (its allocation less the NUL) is known past an embedded NUL. */
#define SIZED_HDR 16

static inline void *sized_alloc(void *ud, size_t n)
{
    (void)ud;
    uint8_t *p = malloc(SIZED_HDR + n);
    cr_assert_not_null(p);
    memcpy(p, &n, sizeof(n));
    return p + SIZED_HDR;
}

static inline void sized_free(void *ud, void *p)
{
    (void)ud;
    if (p)
        free((uint8_t *)p - SIZED_HDR);
}

static inline size_t sized_len(const void *p)
{
    size_t n;
    memcpy(&n, (const uint8_t *)p - SIZED_HDR, sizeof(n));
    return n;
}

static ProtobufCAllocator sized = {.alloc = sized_alloc, .free = sized_free};

/* The decoder's: every block its own malloc (ASan sees past its end), all
 * freed at once; free must never be called; fail_after makes it refuse. */
struct tarena {
    void **blocks;
    size_t n, cap;
    size_t fail_after; /* allocations that succeed; SIZE_MAX: all */
    size_t frees;
};

static inline void *tarena_alloc(void *ud, size_t n)
{
    struct tarena *a = ud;
    if (a->n >= a->fail_after)
        return NULL;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->blocks = realloc(a->blocks, a->cap * sizeof(*a->blocks));
        cr_assert_not_null(a->blocks);
    }
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    a->blocks[a->n++] = p;
    return p;
}

static inline void tarena_free_one(void *ud, void *p)
{
    struct tarena *a = ud;
    (void)p;
    a->frees++;
}

static inline void tarena_reset(struct tarena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    a->n = 0;
}

static inline void tarena_done(struct tarena *a)
{
    tarena_reset(a);
    free(a->blocks);
}

/* ---- the comparer ---- */

#define WHY(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, cap, __VA_ARGS__);                                                           \
        return false;                                                                              \
    } while (0)

/* got: ours; want: the oracle's (sized strings) or, with !sized, a source
 * struct that was packed (proto3 leaves "" out: absent on the wire). */
static inline bool same_str(const char *got, const char *want, bool sized_want, const char *name,
                            char *why, size_t cap)
{
    if (!got || !want)
        WHY("%s: NULL string (got %p, want %p)", name, (const void *)got, (const void *)want);
    if (!sized_want) {
        if (strcmp(got, want))
            WHY("%s: \"%s\", want \"%s\"", name, got, want);
        return true;
    }
    bool got_default = got == protobuf_c_empty_string;
    bool want_default = want == protobuf_c_empty_string;
    if (got_default != want_default)
        WHY("%s: default pointer %d, protobuf-c %d", name, got_default, want_default);
    if (want_default)
        return true;
    size_t n = sized_len(want); /* copied bytes and the NUL */
    if (strlen(got) != strlen(want))
        WHY("%s: strlen %zu, want %zu", name, strlen(got), strlen(want));
    if (memcmp(got, want, n) != 0)
        WHY("%s: bytes differ within the copied %zu", name, n);
    return true;
}

#define STR(f, name)                                                                               \
    do {                                                                                           \
        if (!same_str(got->f, want->f, sized_want, name, why, cap))                                \
            return false;                                                                          \
    } while (0)
#define NUM(f, name)                                                                               \
    do {                                                                                           \
        if ((int64_t)got->f != (int64_t)want->f)                                                   \
            WHY("%s: %lld, want %lld", name, (long long)got->f, (long long)want->f);               \
    } while (0)
#define BASE()                                                                                     \
    do {                                                                                           \
        if (got->base.descriptor != want->base.descriptor)                                         \
            WHY("descriptor");                                                                     \
        if (got->base.n_unknown_fields != 0 || got->base.unknown_fields)                           \
            WHY("unknown fields kept");                                                            \
    } while (0)

static inline bool same_line(const Patron__V1__LineItem *got, const Patron__V1__LineItem *want,
                             bool sized_want, char *why, size_t cap)
{
    if (!got || !want) {
        if (got || want)
            WHY("line presence %d, want %d", got != NULL, want != NULL);
        return true;
    }
    BASE();
    STR(item_id, "line.item_id");
    STR(category, "line.category");
    NUM(quantity, "line.quantity");
    NUM(unit_price_cents, "line.unit_price_cents");
    return true;
}

static inline bool same_lines(size_t n_got, Patron__V1__LineItem **got, size_t n_want,
                              Patron__V1__LineItem **want, bool sized_want, char *why, size_t cap)
{
    if (n_got != n_want)
        WHY("n_items %zu, want %zu", n_got, n_want);
    if ((got == NULL) != (want == NULL))
        WHY("items array presence %d, want %d", got != NULL, want != NULL);
    for (size_t i = 0; i < n_got; i++) {
        if (!got[i] || !want[i])
            WHY("item %zu NULL", i);
        if (!same_line(got[i], want[i], sized_want, why, cap))
            return false;
    }
    return true;
}

#define SAME_FN(name, type, body)                                                                  \
    static bool name(const type *got, const type *want, bool sized_want, char *why, size_t cap)    \
    {                                                                                              \
        (void)sized_want;                                                                          \
        BASE();                                                                                    \
        body;                                                                                      \
        return true;                                                                               \
    }

SAME_FN(same_view, Patron__V1__ProductView, {
    STR(item_id, "view.item_id");
    STR(category, "view.category");
})
SAME_FN(same_cart_add, Patron__V1__CartAdd, {
    if (!same_line(got->item, want->item, sized_want, why, cap))
        return false;
})
SAME_FN(same_cart_remove, Patron__V1__CartRemove, { STR(item_id, "cart_remove.item_id"); })
SAME_FN(same_purchase, Patron__V1__Purchase, {
    STR(order_id, "purchase.order_id");
    STR(currency, "purchase.currency");
    if (!same_lines(got->n_items, got->items, want->n_items, want->items, sized_want, why, cap))
        return false;
})
SAME_FN(same_refund, Patron__V1__Refund, {
    STR(order_id, "refund.order_id");
    NUM(amount_cents, "refund.amount_cents");
    if (!same_lines(got->n_items, got->items, want->n_items, want->items, sized_want, why, cap))
        return false;
})
SAME_FN(same_review, Patron__V1__Review, {
    STR(item_id, "review.item_id");
    NUM(rating, "review.rating");
})
SAME_FN(same_customer, Patron__V1__CustomerUpdate, {
    STR(birthday, "customer.birthday");
    STR(time_zone, "customer.time_zone");
    STR(locale, "customer.locale");
    STR(country, "customer.country");
})
/* protobuf-c writes TRUE or FALSE: the same int, not just the same truth */
SAME_FN(same_consent, Patron__V1__ConsentChange, {
    NUM(channel, "consent.channel");
    NUM(granted, "consent.granted");
})
SAME_FN(same_erasure, Patron__V1__ErasureRequest, {})
SAME_FN(same_identify, Patron__V1__Identify, { STR(anonymous_id, "identify.anonymous_id"); })

static inline bool same_event(const Patron__V1__Event *got, const Patron__V1__Event *want,
                              bool sized_want, char *why, size_t cap)
{
    BASE();
    STR(event_id, "event_id");
    STR(customer_id, "customer_id");
    STR(anonymous_id, "anonymous_id");
    NUM(occurred_at_ms, "occurred_at_ms");
    if (got->kind_case != want->kind_case)
        WHY("kind_case %d, want %d", got->kind_case, want->kind_case);
    if (got->kind_case == PATRON__V1__EVENT__KIND__NOT_SET) {
        if (got->view)
            WHY("a member without kind_case");
        return true;
    }
    if (!got->view || !want->view)
        WHY("member presence %d, want %d", got->view != NULL, want->view != NULL);
    switch (got->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        return same_view(got->view, want->view, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_CART_ADD:
        return same_cart_add(got->cart_add, want->cart_add, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        return same_cart_remove(got->cart_remove, want->cart_remove, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_PURCHASE:
        return same_purchase(got->purchase, want->purchase, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_REFUND:
        return same_refund(got->refund, want->refund, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_REVIEW:
        return same_review(got->review, want->review, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        return same_customer(got->customer, want->customer, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_CONSENT:
        return same_consent(got->consent, want->consent, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_ERASURE:
        return same_erasure(got->erasure, want->erasure, sized_want, why, cap);
    case PATRON__V1__EVENT__KIND_IDENTIFY:
        return same_identify(got->identify, want->identify, sized_want, why, cap);
    default:
        WHY("kind_case %d unknown", got->kind_case);
    }
}

/* ---- the oracle's limits ---- */

/* The limits patron_event_unpack holds and protobuf-c does not
 * (event_codec.h), computed independently on protobuf-c's result: each
 * string's copied length comes from the sized allocator, so a NUL inside it
 * is seen. The reasons broken are collected (the decoder reports the first
 * it meets, in its own order). */
#define LIMITS_MAX 16

struct limits {
    const char *broken[LIMITS_MAX];
    size_t n;
};

static inline void limit_str(struct limits *l, const char *s, size_t max, const char *too_long,
                             const char *bad)
{
    if (!s || s == protobuf_c_empty_string || l->n + 2 > LIMITS_MAX)
        return;
    size_t n = sized_len(s) - 1; /* the copy, NULs included, less the final one */
    if (n > max)
        l->broken[l->n++] = too_long;
    if (memchr(s, 0, n))
        l->broken[l->n++] = bad;
}

#define LIMIT_ID(l, s, name) limit_str(l, s, 64, name " too long", name " has invalid bytes")

static inline void limit_lines(struct limits *l, size_t n, Patron__V1__LineItem **items)
{
    if (n > 1000 && l->n < LIMITS_MAX)
        l->broken[l->n++] = "too many lines";
    for (size_t i = 0; i < n && i < 1000; i++) {
        LIMIT_ID(l, items[i]->item_id, "item_id");
        LIMIT_ID(l, items[i]->category, "category");
    }
}

static inline void oracle_limits(const Patron__V1__Event *e, struct limits *l)
{
    l->n = 0;
    LIMIT_ID(l, e->event_id, "event_id");
    LIMIT_ID(l, e->customer_id, "customer_id");
    LIMIT_ID(l, e->anonymous_id, "anonymous_id");
    switch (e->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        LIMIT_ID(l, e->view->item_id, "item_id");
        LIMIT_ID(l, e->view->category, "category");
        break;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        if (e->cart_add->item)
            limit_lines(l, 1, &e->cart_add->item);
        break;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        LIMIT_ID(l, e->cart_remove->item_id, "item_id");
        break;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        LIMIT_ID(l, e->purchase->order_id, "order_id");
        limit_str(l, e->purchase->currency, 64, "currency too long", "currency has invalid bytes");
        limit_lines(l, e->purchase->n_items, e->purchase->items);
        break;
    case PATRON__V1__EVENT__KIND_REFUND:
        LIMIT_ID(l, e->refund->order_id, "order_id");
        limit_lines(l, e->refund->n_items, e->refund->items);
        break;
    case PATRON__V1__EVENT__KIND_REVIEW:
        LIMIT_ID(l, e->review->item_id, "item_id");
        break;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        limit_str(l, e->customer->birthday, 5, "invalid birthday", "invalid birthday");
        limit_str(l, e->customer->time_zone, 63, "time_zone too long", "invalid time_zone");
        limit_str(l, e->customer->locale, 35, "locale too long", "locale has invalid bytes");
        limit_str(l, e->customer->country, 63, "country too long", "country has invalid bytes");
        break;
    case PATRON__V1__EVENT__KIND_IDENTIFY:
        LIMIT_ID(l, e->identify->anonymous_id, "anonymous_id");
        break;
    default:
        break;
    }
}

static inline bool limits_have(const struct limits *l, const char *why)
{
    for (size_t i = 0; i < l->n; i++)
        if (why && strcmp(l->broken[i], why) == 0)
            return true;
    return false;
}

/* Both decoders on one buffer: the oracle is protobuf-c followed by the
 * limits above. The same verdict, the same struct when accepted, a limit's
 * reason when only the limits refuse, and no free. */
static inline bool decoders_agree(struct tarena *a, const uint8_t *buf, size_t len, bool *accepted,
                                  char *why, size_t cap)
{
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = a};
    tarena_reset(a);
    a->fail_after = SIZE_MAX;
    Patron__V1__Event *want = patron__v1__event__unpack(&sized, len, buf);
    struct limits lim = {.n = 0};
    if (want)
        oracle_limits(want, &lim);
    bool want_accept = want && lim.n == 0;
    const char *reason = NULL;
    Patron__V1__Event *got = patron_event_unpack_why(&alloc, buf, len, &reason);
    *accepted = got != NULL;
    bool ok = true;
    if ((got != NULL) != want_accept) {
        snprintf(why, cap, "verdict %s (%s), protobuf-c %s, limits broken %zu (first: %s)",
                 got ? "accept" : "reject", reason ? reason : "-", want ? "accept" : "reject",
                 lim.n, lim.n ? lim.broken[0] : "-");
        ok = false;
    } else if (got) {
        ok = same_event(got, want, true, why, cap) && reason == NULL;
    } else if (want && !limits_have(&lim, reason)) {
        snprintf(why, cap, "refused with \"%s\", not one of the %zu limits broken (first: %s)",
                 reason ? reason : "(null)", lim.n, lim.broken[0]);
        ok = false;
    } else if (!want && !reason) {
        /* a limit met before the framing error protobuf-c saw may be the reason */
        snprintf(why, cap, "refused as protobuf-c does, without a reason");
        ok = false;
    }
    if (ok && a->frees) {
        snprintf(why, cap, "alloc->free called %zu times", a->frees);
        ok = false;
    }
    if (want)
        patron__v1__event__free_unpacked(want, &sized);
    return ok;
}

/* ---- random valid events ---- */

#define STR_MAX 200

/* Text without NUL (protobuf-c packs strings through strlen): empty often,
 * ASCII mostly, some UTF-8, control and high bytes, now and then up to its
 * field's limit (max), rarely past it (the decoder refuses it then). */
static inline char *rnd_str(struct rng *r, char *dst, size_t max)
{
    static const char *const glyphs[] = {
        "a", "Z", "0", "-", " ", "\xc3\xa9", "\xe2\x82\xac", "\x01", "\x7f", "\xff"};
    size_t want = chance(r, 25)  ? 0
                  : chance(r, 1) ? max + 1 + rnd_below(r, 60)
                  : chance(r, 5) ? max / 2 + rnd_below(r, max / 2 + 1)
                                 : rnd_below(r, max < 20 ? max + 1 : 20);
    size_t n = 0;
    while (n < want) {
        const char *g = glyphs[chance(r, 80) ? rnd_below(r, 5) : rnd_below(r, 10)];
        size_t gl = strlen(g);
        if (n + gl > STR_MAX || (want <= max && n + gl > max))
            break;
        memcpy(dst + n, g, gl);
        n += gl;
    }
    dst[n] = '\0';
    return dst;
}

static inline int64_t rnd_i64(struct rng *r)
{
    return wire_rnd_i64(r, INT64_C(1610668800000));
}

static inline int32_t rnd_i32(struct rng *r)
{
    switch (rnd_below(r, 4)) {
    case 0:
        return 0;
    case 1:
        return 1 + (int32_t)rnd_below(r, 10);
    case 2:
        return chance(r, 50) ? INT32_MIN : INT32_MAX;
    default:
        return (int32_t)(uint32_t)rnd(r);
    }
}

#define GEN_LINES 12
#define GEN_STRS 64

/* One event and its parts, for packing. */
struct gen {
    Patron__V1__Event ev;
    Patron__V1__ProductView view;
    Patron__V1__CartAdd cart_add;
    Patron__V1__CartRemove cart_remove;
    Patron__V1__Purchase purchase;
    Patron__V1__Refund refund;
    Patron__V1__Review review;
    Patron__V1__CustomerUpdate customer;
    Patron__V1__ConsentChange consent;
    Patron__V1__ErasureRequest erasure;
    Patron__V1__Identify identify;
    Patron__V1__LineItem lines[GEN_LINES];
    Patron__V1__LineItem *line_ptrs[GEN_LINES];
    char strs[GEN_STRS][STR_MAX + 1];
    size_t n_strs;
};

/* A string of a field whose limit is max bytes. */
static inline char *gen_str_max(struct rng *r, struct gen *g, size_t max)
{
    cr_assert_lt(g->n_strs, GEN_STRS);
    return rnd_str(r, g->strs[g->n_strs++], max);
}

/* An id's (or a category's): 64 bytes. */
static inline char *gen_str(struct rng *r, struct gen *g)
{
    return gen_str_max(r, g, 64);
}

static inline size_t gen_lines(struct rng *r, struct gen *g)
{
    size_t n = chance(r, 10) ? 0 : chance(r, 10) ? GEN_LINES : 1 + rnd_below(r, 4);
    for (size_t i = 0; i < n; i++) {
        patron__v1__line_item__init(&g->lines[i]);
        g->lines[i].item_id = gen_str(r, g);
        g->lines[i].category = gen_str(r, g);
        g->lines[i].quantity = rnd_i32(r);
        g->lines[i].unit_price_cents = rnd_i64(r);
        g->line_ptrs[i] = &g->lines[i];
    }
    return n;
}

/* A random event of the given kind (0: none). */
static inline Patron__V1__Event *gen_event(struct rng *r, struct gen *g, int kind)
{
    memset(g, 0, sizeof(*g));
    patron__v1__event__init(&g->ev);
    g->ev.event_id = gen_str(r, g);
    g->ev.customer_id = gen_str(r, g);
    g->ev.anonymous_id = chance(r, 30) ? gen_str(r, g) : (char *)protobuf_c_empty_string;
    g->ev.occurred_at_ms = rnd_i64(r);
    g->ev.kind_case = (Patron__V1__Event__KindCase)kind;
    switch (kind) {
    case PATRON__V1__EVENT__KIND_VIEW:
        patron__v1__product_view__init(&g->view);
        g->view.item_id = gen_str(r, g);
        g->view.category = gen_str(r, g);
        g->ev.view = &g->view;
        break;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        patron__v1__cart_add__init(&g->cart_add);
        if (!chance(r, 10)) {
            gen_lines(r, g);
            if (!g->line_ptrs[0]) {
                patron__v1__line_item__init(&g->lines[0]);
                g->line_ptrs[0] = &g->lines[0];
            }
            g->cart_add.item = &g->lines[0];
        }
        g->ev.cart_add = &g->cart_add;
        break;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        patron__v1__cart_remove__init(&g->cart_remove);
        g->cart_remove.item_id = gen_str(r, g);
        g->ev.cart_remove = &g->cart_remove;
        break;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        patron__v1__purchase__init(&g->purchase);
        g->purchase.order_id = gen_str(r, g);
        g->purchase.currency = gen_str(r, g);
        g->purchase.n_items = gen_lines(r, g);
        g->purchase.items = g->purchase.n_items ? g->line_ptrs : NULL;
        g->ev.purchase = &g->purchase;
        break;
    case PATRON__V1__EVENT__KIND_REFUND:
        patron__v1__refund__init(&g->refund);
        g->refund.order_id = gen_str(r, g);
        g->refund.amount_cents = rnd_i64(r);
        g->refund.n_items = gen_lines(r, g);
        g->refund.items = g->refund.n_items ? g->line_ptrs : NULL;
        g->ev.refund = &g->refund;
        break;
    case PATRON__V1__EVENT__KIND_REVIEW:
        patron__v1__review__init(&g->review);
        g->review.item_id = gen_str(r, g);
        g->review.rating = rnd_i32(r);
        g->ev.review = &g->review;
        break;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        patron__v1__customer_update__init(&g->customer);
        g->customer.birthday = gen_str_max(r, g, 5);
        g->customer.time_zone = gen_str_max(r, g, 63);
        g->customer.locale = gen_str_max(r, g, 35);
        g->customer.country = gen_str_max(r, g, 63);
        g->ev.customer = &g->customer;
        break;
    case PATRON__V1__EVENT__KIND_CONSENT:
        patron__v1__consent_change__init(&g->consent);
        g->consent.channel =
            (Patron__V1__Channel)(chance(r, 80) ? (int32_t)rnd_below(r, 4) : rnd_i32(r));
        g->consent.granted = chance(r, 50);
        g->ev.consent = &g->consent;
        break;
    case PATRON__V1__EVENT__KIND_ERASURE:
        patron__v1__erasure_request__init(&g->erasure);
        g->ev.erasure = &g->erasure;
        break;
    case PATRON__V1__EVENT__KIND_IDENTIFY:
        patron__v1__identify__init(&g->identify);
        g->identify.anonymous_id = gen_str(r, g);
        g->ev.identify = &g->identify;
        break;
    default:
        g->ev.kind_case = PATRON__V1__EVENT__KIND__NOT_SET;
        break;
    }
    return &g->ev;
}

static const int kinds[] = {0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};

#define PACK_CAP 8192

static inline size_t pack(const Patron__V1__Event *ev, uint8_t *buf)
{
    size_t len = patron__v1__event__get_packed_size(ev);
    cr_assert_leq(len, PACK_CAP);
    cr_assert_eq(patron__v1__event__pack(ev, buf), len);
    return len;
}

#endif
