/* patron_event_unpack against its oracle, protobuf-c 1.4.1's
 * patron__v1__event__unpack followed by the decoder's limits (a string over
 * its length or holding a NUL, over 1,000 lines: fixture_event_codec.h):
 * hand-written edge cases must get the same verdict and, when accepted, the
 * same struct; then the
 * values they decode to, order, allocation failures, bad arguments and
 * garbage. Random valid events and their mutations are in
 * test_event_codec_fuzz.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_event_codec.h"

PATRON_LEAK_CHECKED_SUITE(event_codec);

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
    /* limits: protobuf-c accepts, the contract does not */
    ROW("event_id with a NUL",
        "\x0a\x04"
        "a\0bc",
        false),
    ROW("event_id NUL first", "\x0a\x02\0c", false),
    ROW("item_id with a NUL, merged",
        "\x5a\x0c\x0a\x06\x0a\x04"
        "a\0bc"
        "\x0a\x02\x20\x01",
        false),
    ROW("item_id with a NUL, replaced by a later one: only the winner counts",
        "\x5a\x0c\x0a\x06\x0a\x04"
        "a\0bc"
        "\x0a\x02\x20\x01"
        "\x5a\x04\x0a\x02\x0a\x00",
        true),
    ROW("view replaced by another kind: its NUL is never copied",
        "\x52\x03\x0a\x01\0"
        "\x92\x01\x00",
        true),
    ROW("customer_id of 65 bytes",
        "\x12\x41"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        false),
    ROW("customer_id of 64 bytes",
        "\x12\x40"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        true),
    ROW("a replaced customer_id of 65 bytes is never copied",
        "\x12\x41"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "\x12\x01"
        "c",
        true),
    ROW("birthday of 6 bytes",
        "\x82\x01\x08\x0a\x06"
        "01-02x",
        false),
    ROW("identify.anonymous_id with a NUL",
        "\x9a\x01\x04\x0a\x02"
        "a\0",
        false),
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

    /* an id holding a NUL would read as another id: refused, with why */
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = &a};
    const char *why = NULL;
    cr_expect_null(patron_event_unpack_why(&alloc,
                                           (const uint8_t *)"\x0a\x04"
                                                            "a\0bc",
                                           6, &why));
    cr_expect_str_eq(why, "event_id has invalid bytes");
    cr_expect_null(patron_event_unpack_why(&alloc, (const uint8_t *)"\x0a\x01", 2, &why));
    cr_expect_str_eq(why, "decode: not a patron.v1.Event");
    cr_expect_not_null(patron_event_unpack_why(&alloc,
                                               (const uint8_t *)"\x0a\x01"
                                                                "x",
                                               3, &why));
    cr_expect_null(why);

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
