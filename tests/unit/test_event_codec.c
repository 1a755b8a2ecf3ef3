/* patron_event_unpack against its oracle, protobuf-c 1.4.1's
 * patron__v1__event__unpack: random valid events, seeded mutations of them
 * and hand-written edge cases must get the same verdict and, when accepted,
 * the same struct. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/event_codec.h"
#include "patron/pb_unpack.h"
#include "patron/v1/event.pb-c.h"
#include "../support/leak_check.h"
#define WIRE_SPANS_MAX 512 /* fields the mutations pick from */
#include "fixture_wire.h"

PATRON_LEAK_CHECKED_SUITE(event_codec);

/* ---- allocators ---- */

/* The oracle's: malloc with the size in front, so that a string's copied
 * length (its allocation less the NUL) is known past an embedded NUL. */
#define SIZED_HDR 16

static void *sized_alloc(void *ud, size_t n)
{
    (void)ud;
    uint8_t *p = malloc(SIZED_HDR + n);
    cr_assert_not_null(p);
    memcpy(p, &n, sizeof(n));
    return p + SIZED_HDR;
}

static void sized_free(void *ud, void *p)
{
    (void)ud;
    if (p)
        free((uint8_t *)p - SIZED_HDR);
}

static size_t sized_len(const void *p)
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

static void *tarena_alloc(void *ud, size_t n)
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

static void tarena_free_one(void *ud, void *p)
{
    struct tarena *a = ud;
    (void)p;
    a->frees++;
}

static void tarena_reset(struct tarena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    a->n = 0;
}

static void tarena_done(struct tarena *a)
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
static bool same_str(const char *got, const char *want, bool sized_want, const char *name,
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

static bool same_line(const Patron__V1__LineItem *got, const Patron__V1__LineItem *want,
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

static bool same_lines(size_t n_got, Patron__V1__LineItem **got, size_t n_want,
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

static bool same_event(const Patron__V1__Event *got, const Patron__V1__Event *want, bool sized_want,
                       char *why, size_t cap)
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

/* Both decoders on one buffer: the same verdict and struct, and no free. */
static bool decoders_agree(struct tarena *a, const uint8_t *buf, size_t len, bool *accepted,
                           char *why, size_t cap)
{
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = a};
    tarena_reset(a);
    a->fail_after = SIZE_MAX;
    Patron__V1__Event *want = patron__v1__event__unpack(&sized, len, buf);
    Patron__V1__Event *got = patron_event_unpack(&alloc, buf, len);
    *accepted = got != NULL;
    bool ok = true;
    if ((got == NULL) != (want == NULL)) {
        snprintf(why, cap, "verdict %s, protobuf-c %s", got ? "accept" : "reject",
                 want ? "accept" : "reject");
        ok = false;
    } else if (got) {
        ok = same_event(got, want, true, why, cap);
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
 * ASCII mostly, some UTF-8, control and high bytes, now and then long. */
static char *rnd_str(struct rng *r, char *dst)
{
    static const char *const glyphs[] = {
        "a", "Z", "0", "-", " ", "\xc3\xa9", "\xe2\x82\xac", "\x01", "\x7f", "\xff"};
    size_t want = chance(r, 25) ? 0 : chance(r, 5) ? 130 + rnd_below(r, 60) : rnd_below(r, 20);
    size_t n = 0;
    while (n < want) {
        const char *g = glyphs[chance(r, 80) ? rnd_below(r, 5) : rnd_below(r, 10)];
        size_t gl = strlen(g);
        if (n + gl > STR_MAX)
            break;
        memcpy(dst + n, g, gl);
        n += gl;
    }
    dst[n] = '\0';
    return dst;
}

static int64_t rnd_i64(struct rng *r)
{
    return wire_rnd_i64(r, INT64_C(1610668800000));
}

static int32_t rnd_i32(struct rng *r)
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

static char *gen_str(struct rng *r, struct gen *g)
{
    cr_assert_lt(g->n_strs, GEN_STRS);
    return rnd_str(r, g->strs[g->n_strs++]);
}

static size_t gen_lines(struct rng *r, struct gen *g)
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
static Patron__V1__Event *gen_event(struct rng *r, struct gen *g, int kind)
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
        g->customer.birthday = gen_str(r, g);
        g->customer.time_zone = gen_str(r, g);
        g->customer.locale = gen_str(r, g);
        g->customer.country = gen_str(r, g);
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

static size_t pack(const Patron__V1__Event *ev, uint8_t *buf)
{
    size_t len = patron__v1__event__get_packed_size(ev);
    cr_assert_leq(len, PACK_CAP);
    cr_assert_eq(patron__v1__event__pack(ev, buf), len);
    return len;
}

Test(event_codec, random_events_decode_as_protobuf_c_does)
{
    struct rng r = {0x9E3779B97F4A7C15ULL};
    struct gen *g = malloc(sizeof(*g));
    uint8_t *buf = malloc(PACK_CAP);
    cr_assert(g && buf);
    struct tarena a = {.fail_after = SIZE_MAX};
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = &a};
    char why[256];
    size_t per_kind[20] = {0};
    for (int round = 0; round < 11000; round++) {
        int kind = kinds[(size_t)round % PATRON_ARRAY_LEN(kinds)];
        const Patron__V1__Event *src = gen_event(&r, g, kind);
        size_t len = pack(src, buf);
        bool accepted;
        cr_assert(decoders_agree(&a, buf, len, &accepted, why, sizeof(why)), "round %d: %s", round,
                  why);
        cr_assert(accepted, "round %d: a valid event was refused", round);
        /* and what was packed is what came out */
        Patron__V1__Event *got = patron_event_unpack(&alloc, buf, len);
        cr_assert_not_null(got);
        cr_assert(same_event(got, src, false, why, sizeof(why)), "round %d: %s", round, why);
        per_kind[kind]++;
    }
    for (size_t i = 0; i < PATRON_ARRAY_LEN(kinds); i++)
        cr_expect_geq(per_kind[kinds[i]], 1000, "kind %d", kinds[i]);
    tarena_done(&a);
    free(buf);
    free(g);
}

/* ---- mutations ---- */

#define MUT_CAP 16384

static const uint32_t odd_numbers[] = {0, 4, 9, 19, 99, 1000, 1u << 28, UINT32_MAX};
static const struct wire_numbers event_numbers = {odd_numbers, PATRON_ARRAY_LEN(odd_numbers), 40,
                                                  18};

static size_t rnd_field(struct rng *r, uint8_t *out)
{
    return wire_rnd_field(r, out, &event_numbers);
}

/* Fields shaped like those of the sub-messages: strings (NULs included),
 * varints, now and then a LineItem (CartAdd.item, Purchase/Refund items),
 * now and then anything. */
static size_t rnd_inner(struct rng *r, uint8_t *out, int depth)
{
    uint8_t *q = out;
    size_t k = rnd_below(r, 5);
    for (size_t i = 0; i < k; i++) {
        unsigned number = 1 + (unsigned)rnd_below(r, 4);
        if (chance(r, 15)) {
            q += rnd_field(r, q);
        } else if (depth == 0 && chance(r, 30)) {
            uint8_t inner[512];
            size_t n = rnd_inner(r, inner, 1);
            put_varint(&q, (uint64_t)number << 3 | 2);
            put_varint(&q, n);
            memcpy(q, inner, n);
            q += n;
        } else if (chance(r, 50)) {
            put_varint(&q, (uint64_t)number << 3 | 2);
            size_t n = rnd_below(r, 10);
            *q++ = (uint8_t)n;
            for (size_t j = 0; j < n; j++)
                *q++ = chance(r, 85)   ? (uint8_t)('a' + rnd_below(r, 26))
                       : chance(r, 50) ? 0
                                       : (uint8_t)rnd(r);
        } else {
            put_varint(&q, (uint64_t)number << 3);
            put_varint(&q, chance(r, 30) ? rnd(r) : rnd_below(r, 40000));
        }
    }
    return (size_t)(q - out);
}

/* A member of the kind oneof (or a LineItem-shaped field 1..4 when inner). */
static size_t rnd_nested(struct rng *r, uint8_t *out)
{
    uint8_t inner[2048];
    size_t n = chance(r, 10) ? 0 : rnd_inner(r, inner, 0);
    uint8_t *p = out;
    put_varint(&p, (uint64_t)(10 + rnd_below(r, 9)) << 3 | 2);
    put_varint(&p, n);
    memcpy(p, inner, n);
    return (size_t)(p - out) + n;
}

static void mutate(struct rng *r, uint8_t *b, size_t *n, size_t cap, int depth);

/* Mutates the payload of a LEN field and fixes its length prefix. */
static void mutate_inside(struct rng *r, uint8_t *b, size_t *n, size_t cap, const struct spans *s,
                          size_t i, int depth)
{
    const struct patron_pb_field *f = &s->f[i];
    if (f->wire != PATRON_PB_LEN || f->len > 2048)
        return;
    uint8_t inner[4096], out[4200], *p = out;
    size_t k = f->len;
    memcpy(inner, f->data, k);
    mutate(r, inner, &k, 2048 + 512, depth + 1);
    put_varint(&p, (uint64_t)f->number << 3 | 2);
    put_varint(&p, k);
    memcpy(p, inner, k);
    p += k;
    (void)wire_splice(b, n, cap, s->start[i], s->end[i] - s->start[i], out, (size_t)(p - out));
}

/* Gives a LEN field a length prefix past its end (huge or just one over). */
static void bad_length(struct rng *r, uint8_t *b, size_t *n, size_t cap, const struct spans *s,
                       size_t i)
{
    static const uint64_t huge[] = {0x7fffffff, 0xffffffff, UINT64_C(0x100000001), 1u << 28};
    const struct patron_pb_field *f = &s->f[i];
    if (f->wire != PATRON_PB_LEN)
        return;
    uint8_t out[32], *p = out;
    put_varint(&p, (uint64_t)f->number << 3 | 2);
    put_varint(&p, chance(r, 50) ? huge[rnd_below(r, PATRON_ARRAY_LEN(huge))]
                                 : f->len + 1 + rnd_below(r, 3));
    size_t head = (size_t)(f->data - f->raw) + (size_t)(f->raw - (b + s->start[i]));
    (void)wire_splice(b, n, cap, s->start[i], head, out, (size_t)(p - out));
}

static void mutate(struct rng *r, uint8_t *b, size_t *n, size_t cap, int depth)
{
    uint8_t tmp[4096];
    struct spans *s = malloc(sizeof(*s));
    cr_assert_not_null(s);
    scan(b, *n, s);
    size_t i = rnd_below(r, s->n); /* a field, when there are any */
    switch (rnd_below(r, depth < 2 ? 16 : 15)) {
    case 0: /* flip a bit */
        if (*n)
            b[rnd_below(r, *n)] ^= (uint8_t)(1u << rnd_below(r, 8));
        break;
    case 1: /* overwrite a byte */
        if (*n)
            b[rnd_below(r, *n)] = (uint8_t)rnd(r);
        break;
    case 2: { /* insert bytes */
        size_t k = 1 + rnd_below(r, 8);
        for (size_t j = 0; j < k; j++)
            tmp[j] = (uint8_t)rnd(r);
        (void)wire_splice(b, n, cap, rnd_below(r, *n + 1), 0, tmp, k);
        break;
    }
    case 3: { /* delete bytes */
        size_t at = rnd_below(r, *n + 1), k = rnd_below(r, 9);
        (void)wire_splice(b, n, cap, at, at + k > *n ? *n - at : k, NULL, 0);
        break;
    }
    case 4: /* truncate */
        *n = rnd_below(r, *n + 1);
        break;
    case 5: /* a field of any kind, at the end or between two */
        (void)wire_splice(b, n, cap, chance(r, 50) || !s->n ? *n : s->start[i], 0, tmp,
                          rnd_field(r, tmp));
        break;
    case 6: /* a field twice */
        if (s->n && s->end[i] - s->start[i] <= sizeof(tmp)) {
            memcpy(tmp, b + s->start[i], s->end[i] - s->start[i]);
            size_t to = chance(r, 50) ? *n : s->start[rnd_below(r, s->n)];
            (void)wire_splice(b, n, cap, to, 0, tmp, s->end[i] - s->start[i]);
        }
        break;
    case 7: /* a field with another wire type */
        if (s->n)
            b[s->start[i]] = (uint8_t)((b[s->start[i]] & ~7u) | rnd_below(r, 8));
        break;
    case 8: /* a field gone */
        if (s->n)
            (void)wire_splice(b, n, cap, s->start[i], s->end[i] - s->start[i], NULL, 0);
        break;
    case 9: /* two fields swapped */
        if (s->n > 1) {
            size_t j = rnd_below(r, s->n);
            if (j < i) {
                size_t t = i;
                i = j;
                j = t;
            }
            size_t li = s->end[i] - s->start[i], lj = s->end[j] - s->start[j];
            if (i != j && li + lj <= sizeof(tmp)) {
                memcpy(tmp, b + s->start[j], lj);
                memcpy(tmp + lj, b + s->start[i], li);
                (void)wire_splice(b, n, cap, s->start[j], lj, tmp + lj, li);
                (void)wire_splice(b, n, cap, s->start[i], li, tmp, lj);
            }
        }
        break;
    case 10: /* a zero-length sub-message or string */
        if (s->n && s->f[i].wire == PATRON_PB_LEN) {
            uint8_t *p = tmp;
            put_varint(&p, (uint64_t)s->f[i].number << 3 | 2);
            *p++ = 0;
            (void)wire_splice(b, n, cap, s->start[i], s->end[i] - s->start[i], tmp,
                              (size_t)(p - tmp));
        } else {
            uint8_t *p = tmp;
            put_varint(&p, (uint64_t)(10 + rnd_below(r, 9)) << 3 | 2);
            *p++ = 0;
            (void)wire_splice(b, n, cap, *n, 0, tmp, (size_t)(p - tmp));
        }
        break;
    case 11: /* a length past the end */
        if (s->n)
            bad_length(r, b, n, cap, s, i);
        break;
    case 12: /* another member of the oneof (or the same one again) */
    case 13:
        (void)wire_splice(b, n, cap, chance(r, 50) || !s->n ? *n : s->start[i], 0, tmp,
                          rnd_nested(r, tmp));
        break;
    case 14: /* the whole thing doubled: every field twice, members merged or not */
        if (*n <= sizeof(tmp)) {
            memcpy(tmp, b, *n);
            (void)wire_splice(b, n, cap, *n, 0, tmp, *n);
        }
        break;
    default: /* inside a sub-message or string */
        if (s->n)
            mutate_inside(r, b, n, cap, s, i, depth);
        break;
    }
    free(s);
}

Test(event_codec, mutated_encodings_decode_as_protobuf_c_does)
{
    struct rng r = {0xD1B54A32D192ED03ULL};
    struct fuzz {
        struct gen g;
        uint8_t base[MUT_CAP], m[MUT_CAP];
        size_t base_n, n;
    } *z = malloc(sizeof(*z));
    cr_assert_not_null(z);
    struct tarena a = {.fail_after = SIZE_MAX};
    char why[256], hex[1600];
    size_t accepted = 0, rounds = 0;
    for (int b = 0; b < 500; b++) {
        gen_event(&r, &z->g, kinds[rnd_below(&r, PATRON_ARRAY_LEN(kinds))]);
        z->base_n = pack(&z->g.ev, z->base);
        for (int k = 0; k < 220; k++, rounds++) {
            memcpy(z->m, z->base, z->base_n);
            z->n = z->base_n;
            size_t muts = 1 + rnd_below(&r, 3);
            for (size_t j = 0; j < muts; j++)
                mutate(&r, z->m, &z->n, MUT_CAP, 0);
            bool ok;
            if (!decoders_agree(&a, z->m, z->n, &ok, why, sizeof(why))) {
                hexdump(hex, sizeof(hex), z->m, z->n);
                cr_assert_fail("event %d mutation %d: %s\n%zu bytes: %s", b, k, why, z->n, hex);
            }
            accepted += ok;
        }
    }
    tarena_done(&a);
    free(z);
    cr_log_info("%zu mutations, %zu accepted", rounds, accepted);
    cr_expect_geq(rounds, 100000);
    /* both outcomes well represented, or the mutations are too tame or too wild */
    cr_expect_gt(accepted, rounds / 10, "%zu of %zu accepted", accepted, rounds);
    cr_expect_lt(accepted, rounds * 9 / 10, "%zu of %zu accepted", accepted, rounds);
}

/* ---- the wire's edge cases, one hand-written buffer each ---- */

struct wire_row {
    const char *name;
    const char *bytes;
    size_t len;
    bool accept;
};

#define ROW(name, b, accept)                                                                       \
    {                                                                                              \
        name, b, sizeof(b) - 1, accept                                                             \
    }

static const struct wire_row wire_rows[] = {
    ROW("empty buffer: an empty event", "", true),
    ROW("ids and time",
        "\x0a\x01"
        "e"
        "\x12\x01"
        "c"
        "\x18\x05",
        true),
    ROW("empty ids present", "\x0a\x00\x12\x00", true),
    ROW("unknown varint", "\xf0\x01\x05", true),
    ROW("unknown fixed64",
        "\xf1\x01"
        "12345678",
        true),
    ROW("unknown length-delimited", "\xf2\x01\x03xyz", true),
    ROW("unknown fixed32",
        "\xf5\x01"
        "1234",
        true),
    ROW("unknown field 2^32-1", "\xf8\xff\xff\xff\x7f\x00", true),
    ROW("unknown field 5 between ids",
        "\x0a\x01"
        "e"
        "\x28\x07\x12\x01"
        "c",
        true),
    ROW("anonymous_id as varint", "\x20\x07", false),
    ROW("identify with a varint id", "\x9a\x01\x02\x08\x01", false),
    ROW("unknown group start", "\xf3\x01", false),
    ROW("unknown group end", "\xf4\x01", false),
    ROW("wire type 6", "\xf6\x01\x00", false),
    ROW("wire type 7", "\xf7\x01\x00", false),
    ROW("field 0 in one byte", "\x00\x00", false),
    ROW("field 0 in two bytes: unknown", "\x80\x00\x00", true),
    ROW("tag of 5 bytes", "\x98\x80\x80\x80\x00\x07", true),
    ROW("event_id tag in 3 bytes",
        "\x8a\x80\x00\x01"
        "e",
        true),
    ROW("view tag in 5 bytes",
        "\xd2\x80\x80\x80\x00\x03\x0a\x01"
        "i",
        true),
    ROW("tag of 6 bytes", "\x98\x80\x80\x80\x80\x00\x07", false),
    ROW("event_id as varint", "\x08\x01", false),
    ROW("occurred_at_ms as fixed64",
        "\x19"
        "12345678",
        false),
    ROW("occurred_at_ms length-delimited", "\x1a\x01\x01", false),
    ROW("occurred_at_ms -1 in 10 bytes", "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", true),
    ROW("occurred_at_ms, bits past 64", "\x18\x85\x80\x80\x80\x80\x80\x80\x80\x80\x7e", true),
    ROW("varint of 11 bytes", "\x18\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", false),
    ROW("varint cut short", "\x18\x80", false),
    ROW("tag cut short", "\x80", false),
    ROW("length past the end", "\x0a\x04xyz", false),
    ROW("length prefix of 5 bytes",
        "\x0a\x81\x80\x80\x80\x00"
        "c",
        true),
    ROW("length prefix of 6 bytes",
        "\x0a\x81\x80\x80\x80\x80\x00"
        "c",
        false),
    ROW("length 2^32 + 1",
        "\x0a\x81\x80\x80\x80\x10"
        "c",
        false),
    ROW("length 2^32 - 1",
        "\xf2\x01\xff\xff\xff\xff\x0f"
        "1234567",
        false),
    ROW("view as varint", "\x50\x01", false),
    ROW("view as fixed32",
        "\x55"
        "1234",
        false),
    ROW("empty view", "\x52\x00", true),
    ROW("view",
        "\x52\x06\x0a\x01"
        "i"
        "\x12\x01"
        "k",
        true),
    ROW("view item_id as varint", "\x52\x02\x08\x01", false),
    ROW("view with unknown inside",
        "\x52\x05\x18\x01\x0a\x01"
        "a",
        true),
    ROW("view field 0 inside", "\x52\x02\x00\x00", false),
    ROW("view group inside", "\x52\x01\x0b", false),
    ROW("view cut inside",
        "\x52\x03\x0a\x05"
        "a",
        false),
    ROW("view twice: replaced, not merged",
        "\x52\x06\x0a\x01"
        "a"
        "\x12\x01"
        "c"
        "\x52\x03\x0a\x01"
        "b",
        true),
    ROW("view then a broken view",
        "\x52\x03\x0a\x01"
        "a"
        "\x52\x02\x08\x01",
        false),
    ROW("a broken view then a purchase", "\x52\x02\x08\x01\x6a\x00", false),
    ROW("view, purchase, view",
        "\x52\x03\x0a\x01"
        "a"
        "\x6a\x03\x0a\x01"
        "o"
        "\x52\x03\x0a\x01"
        "b",
        true),
    ROW("empty cart_add: no item", "\x5a\x00", true),
    ROW("cart_add, empty item", "\x5a\x02\x0a\x00", true),
    ROW("cart_add item as varint", "\x5a\x02\x08\x01", false),
    ROW("cart_add item twice: strings merge, scalars the later",
        "\x5a\x11\x0a\x08\x0a\x01"
        "a"
        "\x12\x01"
        "k"
        "\x18\x05"
        "\x0a\x05\x12\x01"
        "m"
        "\x20\x07",
        true),
    ROW("cart_add item then empty item",
        "\x5a\x09\x0a\x05\x0a\x01"
        "a"
        "\x18\x05"
        "\x0a\x00",
        true),
    ROW("cart_add item then empty item_id",
        "\x5a\x0b\x0a\x05\x0a\x01"
        "a"
        "\x18\x05"
        "\x0a\x02\x0a\x00",
        true),
    ROW("cart_add item then broken item",
        "\x5a\x0b\x0a\x05\x0a\x01"
        "a"
        "\x18\x05"
        "\x0a\x02\x08\x01",
        false),
    ROW("cart_add twice: replaced",
        "\x5a\x07\x0a\x05\x0a\x01"
        "a"
        "\x18\x05"
        "\x5a\x04\x0a\x02\x20\x07",
        true),
    ROW("quantity 2^32 + 1 is 1", "\x5a\x08\x0a\x06\x18\x81\x80\x80\x80\x10", true),
    ROW("quantity -1 in 10 bytes", "\x5a\x0d\x0a\x0b\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        true),
    ROW("quantity as fixed32",
        "\x5a\x07\x0a\x05\x1d"
        "1234",
        false),
    ROW("unit price as fixed64",
        "\x5a\x0b\x0a\x09\x21"
        "12345678",
        false),
    ROW("cart_remove",
        "\x62\x03\x0a\x01"
        "i",
        true),
    ROW("cart_remove item_id twice",
        "\x62\x06\x0a\x01"
        "i"
        "\x0a\x01"
        "j",
        true),
    ROW("purchase, no items",
        "\x6a\x06\x0a\x01"
        "o"
        "\x1a\x01"
        "E",
        true),
    ROW("purchase, 3 items",
        "\x6a\x0f\x12\x03\x0a\x01"
        "a"
        "\x12\x03\x0a\x01"
        "b"
        "\x12\x03\x0a\x01"
        "c",
        true),
    ROW("purchase, empty items", "\x6a\x04\x12\x00\x12\x00", true),
    ROW("purchase item as varint", "\x6a\x02\x10\x01", false),
    ROW("purchase item broken", "\x6a\x04\x12\x02\x08\x01", false),
    ROW("purchase currency as varint", "\x6a\x02\x18\x01", false),
    ROW("purchase twice: items of the later only",
        "\x6a\x05\x12\x03\x0a\x01"
        "a"
        "\x6a\x05\x12\x03\x0a\x01"
        "b",
        true),
    ROW("purchase with 20 items",
        "\x6a\x28\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00"
        "\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00\x12\x00",
        true),
    ROW("refund",
        "\x72\x0a\x0a\x01"
        "o"
        "\x10\x05\x1a\x03\x0a\x01"
        "a",
        true),
    ROW("refund amount as LEN", "\x72\x03\x12\x01\x05", false),
    ROW("refund items as varint", "\x72\x02\x18\x01", false),
    ROW("review",
        "\x7a\x05\x0a\x01"
        "i"
        "\x10\x04",
        true),
    ROW("review rating 2^31 is negative", "\x7a\x06\x10\x80\x80\x80\x80\x08", true),
    ROW("review rating as fixed64",
        "\x7a\x09\x11"
        "12345678",
        false),
    ROW("customer",
        "\x82\x01\x08\x0a\x01"
        "a"
        "\x12\x01"
        "b"
        "\x22\x00",
        true),
    ROW("customer country as fixed32",
        "\x82\x01\x05\x25"
        "1234",
        false),
    ROW("consent", "\x8a\x01\x04\x08\x03\x10\x01", true),
    ROW("consent channel -1 in 10 bytes",
        "\x8a\x01\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", true),
    ROW("consent channel 99", "\x8a\x01\x02\x08\x63", true),
    ROW("consent channel as LEN", "\x8a\x01\x03\x0a\x01\x01", false),
    ROW("consent granted as LEN, payload 0", "\x8a\x01\x03\x12\x01\x00", true),
    ROW("consent granted as LEN, empty", "\x8a\x01\x02\x12\x00", true),
    ROW("consent granted fixed64 high byte", "\x8a\x01\x09\x11\x00\x00\x00\x00\x00\x00\x00\x01",
        true),
    ROW("consent granted fixed32 0x80", "\x8a\x01\x05\x15\x80\x00\x00\x00", true),
    ROW("consent granted 10 bytes, bit past 64",
        "\x8a\x01\x0b\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", true),
    ROW("consent granted 2", "\x8a\x01\x02\x10\x02", true),
    ROW("consent granted group", "\x8a\x01\x01\x13", false),
    ROW("erasure", "\x92\x01\x00", true),
    ROW("erasure with unknown fields", "\x92\x01\x04\x08\x01\x12\x00", true),
    ROW("erasure with a group", "\x92\x01\x01\x0b", false),
    ROW("erasure with field 0", "\x92\x01\x01\x00", false),
    ROW("erasure cut inside", "\x92\x01\x02\x0a\x05", false),
    ROW("every member, the last wins",
        "\x52\x00\x5a\x00\x62\x00\x6a\x00\x72\x00\x7a\x00\x82\x01\x00\x8a\x01\x00\x92\x01\x00",
        true),
    ROW("event_id with a NUL",
        "\x0a\x04"
        "a\0bc",
        true),
    ROW("event_id NUL first", "\x0a\x02\0c", true),
    ROW("item_id with a NUL, merged",
        "\x5a\x0c\x0a\x06\x0a\x04"
        "a\0bc"
        "\x0a\x02\x20\x01",
        true),
    ROW("event_id last wins",
        "\x0a\x01"
        "a"
        "\x0a\x02"
        "bb",
        true),
    ROW("occurred_at_ms last wins", "\x18\x05\x18\x09", true),
};

Test(event_codec, wire_edge_cases)
{
    struct tarena a = {.fail_after = SIZE_MAX};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(wire_rows); i++) {
        const struct wire_row *w = &wire_rows[i];
        char why[256];
        bool accepted;
        cr_expect(
            decoders_agree(&a, (const uint8_t *)w->bytes, w->len, &accepted, why, sizeof(why)),
            "%s: %s", w->name, why);
        cr_expect_eq(accepted, w->accept, "%s: accepted %d", w->name, accepted);
    }
    tarena_done(&a);
}

/* The measured semantics themselves, by value (the rows above only say
 * that both decoders agree). */
static Patron__V1__Event *unpack_lit(struct tarena *a, const char *b, size_t n)
{
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = a};
    return patron_event_unpack(&alloc, (const uint8_t *)b, n);
}

#define UNPACK(a, lit) unpack_lit(a, lit, sizeof(lit) - 1)

Test(event_codec, values_of_the_edge_cases)
{
    struct tarena a = {.fail_after = SIZE_MAX};
    Patron__V1__Event *e = UNPACK(&a, "");
    cr_assert_not_null(e);
    cr_expect_eq(e->event_id, protobuf_c_empty_string);
    cr_expect_eq(e->customer_id, protobuf_c_empty_string);
    cr_expect_eq(e->kind_case, PATRON__V1__EVENT__KIND__NOT_SET);
    cr_expect_eq(e->base.descriptor, &patron__v1__event__descriptor);

    e = UNPACK(&a, "\x0a\x00");
    cr_assert_not_null(e);
    cr_expect_neq(e->event_id, protobuf_c_empty_string, "present empty: a copy");
    cr_expect_str_eq(e->event_id, "");

    e = UNPACK(&a, "\x0a\x04"
                   "a\0bc");
    cr_assert_not_null(e);
    cr_expect_eq(memcmp(e->event_id, "a\0bc", 5), 0);

    e = UNPACK(&a, "\x52\x06\x0a\x01"
                   "a"
                   "\x12\x01"
                   "c"
                   "\x52\x03\x0a\x01"
                   "b");
    cr_assert_not_null(e);
    cr_assert_eq(e->kind_case, PATRON__V1__EVENT__KIND_VIEW);
    cr_expect_str_eq(e->view->item_id, "b");
    cr_expect_eq(e->view->category, protobuf_c_empty_string, "the second view replaced the first");

    e = UNPACK(&a, "\x5a\x11\x0a\x08\x0a\x01"
                   "a"
                   "\x12\x01"
                   "k"
                   "\x18\x05"
                   "\x0a\x05\x12\x01"
                   "m"
                   "\x20\x07");
    cr_assert_not_null(e);
    cr_assert_not_null(e->cart_add->item);
    cr_expect_str_eq(e->cart_add->item->item_id, "a", "kept from the earlier item");
    cr_expect_str_eq(e->cart_add->item->category, "m");
    cr_expect_eq(e->cart_add->item->quantity, 0, "proto3 scalars: the later item's");
    cr_expect_eq(e->cart_add->item->unit_price_cents, 7);

    e = UNPACK(&a, "\x5a\x00");
    cr_assert_not_null(e);
    cr_expect_null(e->cart_add->item);

    e = UNPACK(&a, "\x6a\x0f\x12\x03\x0a\x01"
                   "a"
                   "\x12\x03\x0a\x01"
                   "b"
                   "\x12\x03\x0a\x01"
                   "c");
    cr_assert_not_null(e);
    cr_assert_eq(e->purchase->n_items, 3);
    cr_expect_str_eq(e->purchase->items[2]->item_id, "c");

    e = UNPACK(&a, "\x6a\x00");
    cr_assert_not_null(e);
    cr_expect_null(e->purchase->items);
    cr_expect_eq(e->purchase->order_id, protobuf_c_empty_string);

    e = UNPACK(&a, "\x8a\x01\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    cr_assert_not_null(e);
    cr_expect_eq((int)e->consent->channel, -1);

    e = UNPACK(&a, "\x8a\x01\x03\x12\x01\x00");
    cr_assert_not_null(e);
    cr_expect_eq(e->consent->granted, 1, "a LEN bool: its length prefix counts");

    e = UNPACK(&a, "\x7a\x06\x10\x80\x80\x80\x80\x08");
    cr_assert_not_null(e);
    cr_expect_eq(e->review->rating, INT32_MIN);

    e = UNPACK(&a, "\x92\x01\x00");
    cr_assert_not_null(e);
    cr_expect_eq(e->kind_case, PATRON__V1__EVENT__KIND_ERASURE);
    cr_expect_not_null(e->erasure);
    cr_expect_eq(a.frees, 0);
    tarena_done(&a);
}

/* Lines past the stack's 16 go to the allocator, in order. */
Test(event_codec, many_lines_keep_their_order)
{
    static uint8_t buf[1 << 16];
    uint8_t inner[1 << 15], *q = inner;
    for (int i = 0; i < 1000; i++) {
        uint8_t line[16], *l = line;
        *l++ = 0x18;
        put_varint(&l, (uint64_t)i + 1);
        *q++ = 0x12;
        *q++ = (uint8_t)(l - line);
        memcpy(q, line, (size_t)(l - line));
        q += l - line;
    }
    uint8_t *p = buf;
    *p++ = 0x6a;
    put_varint(&p, (uint64_t)(q - inner));
    memcpy(p, inner, (size_t)(q - inner));
    p += q - inner;
    struct tarena a = {.fail_after = SIZE_MAX};
    char why[256];
    bool accepted;
    cr_expect(decoders_agree(&a, buf, (size_t)(p - buf), &accepted, why, sizeof(why)), "%s", why);
    tarena_reset(&a);
    Patron__V1__Event *e = unpack_lit(&a, (const char *)buf, (size_t)(p - buf));
    cr_assert_not_null(e);
    cr_assert_eq(e->purchase->n_items, 1000);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(e->purchase->items[i]->quantity, i + 1);
    tarena_done(&a);
}

/* An allocator that runs out mid-way: NULL, never a crash or a half event. */
Test(event_codec, allocation_failure_at_every_step)
{
    struct rng r = {42};
    struct gen *g = malloc(sizeof(*g));
    uint8_t *buf = malloc(PACK_CAP);
    cr_assert(g && buf);
    struct tarena a = {0};
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = &a};
    for (size_t k = 0; k < PATRON_ARRAY_LEN(kinds); k++) {
        gen_event(&r, g, kinds[k]);
        if (kinds[k] == PATRON__V1__EVENT__KIND_PURCHASE) {
            g->purchase.n_items = gen_lines(&r, g);
            g->purchase.items = g->line_ptrs;
        }
        size_t len = pack(&g->ev, buf);
        a.fail_after = SIZE_MAX;
        tarena_reset(&a);
        cr_assert_not_null(patron_event_unpack(&alloc, buf, len));
        size_t needed = a.n;
        for (size_t fail = 0; fail < needed; fail++) {
            tarena_reset(&a);
            a.fail_after = fail;
            cr_expect_null(patron_event_unpack(&alloc, buf, len), "kind %d, fail after %zu",
                           kinds[k], fail);
        }
    }
    cr_expect_eq(a.frees, 0);
    tarena_done(&a);
    free(buf);
    free(g);
}

Test(event_codec, bad_arguments)
{
    struct tarena a = {.fail_after = SIZE_MAX};
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = &a};
    cr_expect_null(patron_event_unpack(NULL, (const uint8_t *)"", 0));
    cr_expect_null(patron_event_unpack(&alloc, NULL, 3));
    Patron__V1__Event *e = patron_event_unpack(&alloc, NULL, 0);
    cr_assert_not_null(e, "no bytes: the empty event, as protobuf-c");
    cr_expect_eq(e->kind_case, PATRON__V1__EVENT__KIND__NOT_SET);
    tarena_done(&a);
}

/* Garbage of every length: the same verdicts. */
Test(event_codec, garbage_decodes_as_protobuf_c_does)
{
    struct rng r = {7};
    uint8_t buf[256];
    struct tarena a = {.fail_after = SIZE_MAX};
    char why[256], hex[800];
    for (int round = 0; round < 20000; round++) {
        size_t n = rnd_below(&r, sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd(&r);
        bool accepted;
        if (!decoders_agree(&a, buf, n, &accepted, why, sizeof(why))) {
            hexdump(hex, sizeof(hex), buf, n);
            cr_assert_fail("round %d: %s\n%s", round, why, hex);
        }
    }
    tarena_done(&a);
}
