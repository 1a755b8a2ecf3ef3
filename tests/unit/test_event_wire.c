/*
 * The three encodings of the input topics (event_wire.h, pb_json.h): the
 * same event as plain protobuf, in Schema Registry framing and as canonical
 * JSON decodes to the same struct (compared by packing both with protobuf-c),
 * and everything malformed is refused with a reason.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/catalog.h"
#include "patron/event_wire.h"

PATRON_LEAK_CHECKED_SUITE(wire);

/* A bump allocator freed at once, as the batch arena is. */
struct pool {
    char *blocks[4096];
    size_t n;
};

static void *pool_alloc(void *ud, size_t n)
{
    struct pool *p = ud;
    cr_assert_lt(p->n, PATRON_ARRAY_LEN(p->blocks));
    return p->blocks[p->n++] = malloc(n);
}

static void pool_free_one(void *ud, void *ptr)
{
    (void)ud;
    (void)ptr; /* freed with the pool */
}

static void pool_clear(struct pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->blocks[i]);
    p->n = 0;
}

static struct pool pool;
static ProtobufCAllocator alloc = {pool_alloc, pool_free_one, &pool};

/* The canonical protobuf bytes of a decoded event, for comparisons. */
static size_t packed(const ProtobufCMessage *m, uint8_t *out, size_t cap)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    cr_assert_leq(n, cap);
    return protobuf_c_message_pack(m, out);
}

struct same_case {
    const char *name;
    const char *json;       /* canonical JSON of the event */
    const char *json_other; /* the same event written otherwise: snake_case, numbers, enum ids */
};

/* Every kind and every field, as a site would publish them. */
static const struct same_case events[] = {
    {"view",
     "{\"eventId\":\"e1\",\"customerId\":\"c1\",\"occurredAtMs\":\"1700000000000\","
     "\"view\":{\"itemId\":\"85123A\",\"category\":\"home\"}}",
     "{\"event_id\":\"e1\",\"customer_id\":\"c1\",\"occurred_at_ms\":1700000000000,"
     "\"view\":{\"item_id\":\"85123A\",\"category\":\"home\"},\"unknownField\":[1,{\"x\":2}]}"},
    {"anonymous view",
     "{\"eventId\":\"e2\",\"anonymousId\":\"cookie-7\",\"occurredAtMs\":\"1700000000001\","
     "\"view\":{\"itemId\":\"i\"}}",
     "{\"event_id\":\"e2\",\"customerId\":null,\"anonymous_id\":\"cookie-7\","
     "\"occurredAtMs\":1700000000001,\"view\":{\"itemId\":\"i\",\"category\":null}}"},
    {"cart add",
     "{\"eventId\":\"e3\",\"customerId\":\"c1\",\"occurredAtMs\":\"5\",\"cartAdd\":{\"item\":"
     "{\"itemId\":\"22423\",\"category\":\"k\",\"quantity\":2,\"unitPriceCents\":\"1295\"}}}",
     "{\"eventId\":\"e3\",\"customerId\":\"c1\",\"occurredAtMs\":5,\"cart_add\":{\"item\":"
     "{\"item_id\":\"22423\",\"category\":\"k\",\"quantity\":\"2\",\"unit_price_cents\":1295}}}"},
    {"cart remove",
     "{\"eventId\":\"e4\",\"customerId\":\"c1\",\"occurredAtMs\":\"6\","
     "\"cartRemove\":{\"itemId\":\"22423\"}}",
     "{\"eventId\":\"e4\",\"customerId\":\"c1\",\"occurredAtMs\":6.0,"
     "\"cart_remove\":{\"item_id\":\"22423\"}}"},
    {"purchase",
     "{\"eventId\":\"e5\",\"customerId\":\"c1\",\"occurredAtMs\":\"7\",\"purchase\":{\"orderId\":"
     "\"536365\",\"items\":[{\"itemId\":\"a\",\"quantity\":6,\"unitPriceCents\":\"255\"},{"
     "\"itemId\":"
     "\"b\",\"category\":\"c\",\"quantity\":1,\"unitPriceCents\":\"-1\"}],\"currency\":\"GBP\"}}",
     "{\"purchase\":{\"currency\":\"GBP\",\"items\":[{\"item_id\":\"a\",\"quantity\":6,"
     "\"unitPriceCents\":255},{\"itemId\":\"b\",\"category\":\"c\",\"quantity\":1.0,"
     "\"unitPriceCents\":-1}],\"order_id\":\"536365\"},\"occurredAtMs\":\"7\",\"eventId\":\"e5\","
     "\"customerId\":\"c1\"}"},
    {"refund",
     "{\"eventId\":\"e6\",\"customerId\":\"c1\",\"occurredAtMs\":\"8\",\"refund\":{\"orderId\":"
     "\"C1\","
     "\"amountCents\":\"9223372036854775807\",\"items\":[{\"itemId\":\"a\",\"quantity\":1}]}}",
     "{\"eventId\":\"e6\",\"customerId\":\"c1\",\"occurredAtMs\":\"8\",\"refund\":{\"order_id\":"
     "\"C1\","
     "\"amount_cents\":\"9223372036854775807\",\"items\":[{\"itemId\":\"a\",\"quantity\":1}]}}"},
    {"review",
     "{\"eventId\":\"e7\",\"customerId\":\"c1\",\"occurredAtMs\":\"9\",\"review\":{\"itemId\":"
     "\"a\","
     "\"rating\":5}}",
     "{\"eventId\":\"e7\",\"customerId\":\"c1\",\"occurredAtMs\":\"9\",\"review\":{\"item_id\":"
     "\"a\","
     "\"rating\":\"5\"}}"},
    {"customer",
     "{\"eventId\":\"e8\",\"customerId\":\"c1\",\"occurredAtMs\":\"10\",\"customer\":{\"birthday\":"
     "\"05-14\",\"timeZone\":\"Europe/London\",\"locale\":\"en-GB\",\"country\":\"Ünited\"}}",
     "{\"eventId\":\"e8\",\"customerId\":\"c1\",\"occurredAtMs\":\"10\",\"customer\":{\"birthday\":"
     "\"05-14\",\"time_zone\":\"Europe/"
     "London\",\"locale\":\"en-GB\",\"country\":\"\\u00dcnited\"}}"},
    {"consent",
     "{\"eventId\":\"e9\",\"customerId\":\"c1\",\"occurredAtMs\":\"11\",\"consent\":{\"channel\":"
     "\"EMAIL\",\"granted\":true}}",
     "{\"eventId\":\"e9\",\"customerId\":\"c1\",\"occurredAtMs\":\"11\",\"consent\":{\"channel\":3,"
     "\"granted\":true}}"},
    {"erasure",
     "{\"eventId\":\"e10\",\"customerId\":\"c1\",\"occurredAtMs\":\"12\",\"erasure\":{}}",
     "{\"eventId\":\"e10\",\"customerId\":\"c1\",\"occurredAtMs\":\"12\",\"erasure\":{\"x\":1}}"},
    {"identify",
     "{\"eventId\":\"e11\",\"customerId\":\"c1\",\"occurredAtMs\":\"13\",\"identify\":"
     "{\"anonymousId\":\"cookie-7\"}}",
     "{\"eventId\":\"e11\",\"customerId\":\"c1\",\"occurredAtMs\":\"13\",\"identify\":"
     "{\"anonymous_id\":\"cookie-7\"}}"},
    {"no kind", "{\"eventId\":\"e12\",\"customerId\":\"c1\",\"occurredAtMs\":\"14\"}",
     "{\"eventId\":\"e12\",\"customerId\":\"c1\",\"occurredAtMs\":\"14\",\"view\":null}"},
};

/* Frames protobuf bytes as Confluent's serializer does: magic, schema id,
 * then the index list in its short form ([0] as one 0x00) or its long one. */
static size_t frame(uint8_t *out, const uint8_t *body, size_t len, int long_form)
{
    size_t n = 0;
    out[n++] = 0x00;
    out[n++] = 0x00;
    out[n++] = 0x01;
    out[n++] = 0x86;
    out[n++] = 0xa0; /* schema id 100000 */
    if (long_form) {
        out[n++] = long_form == 1 ? 0x02 : 0x01; /* count 1, zig-zag or plain */
        out[n++] = 0x00;                         /* index 0 */
    } else {
        out[n++] = 0x00;
    }
    memcpy(out + n, body, len);
    return n + len;
}

Test(wire, the_same_event_in_every_encoding_decodes_the_same)
{
    static uint8_t want[4096], got[4096], wire[4096];
    char why[PATRON_WIRE_REASON_MAX];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(events); i++) {
        const struct same_case *c = &events[i];
        /* JSON is the reference: its protobuf bytes are what the others must give */
        Patron__V1__Event *ev =
            patron_event_decode_wire(&alloc, (const uint8_t *)c->json, strlen(c->json), why);
        cr_assert_not_null(ev, "%s: %s", c->name, why);
        cr_expect_eq(patron_wire_of((const uint8_t *)c->json, strlen(c->json)), PATRON_WIRE_JSON);
        size_t n_want = packed(&ev->base, want, sizeof(want));

        ev = patron_event_decode_wire(&alloc, (const uint8_t *)c->json_other, strlen(c->json_other),
                                      why);
        cr_assert_not_null(ev, "%s (other spelling): %s", c->name, why);
        size_t n = packed(&ev->base, got, sizeof(got));
        cr_expect(n == n_want && memcmp(got, want, n) == 0, "%s: the other spelling differs",
                  c->name);

        ev = patron_event_decode_wire(&alloc, want, n_want, why);
        cr_assert_not_null(ev, "%s (protobuf): %s", c->name, why);
        n = packed(&ev->base, got, sizeof(got));
        cr_expect(n == n_want && memcmp(got, want, n) == 0, "%s: protobuf differs", c->name);

        for (int form = 0; form < 3; form++) {
            size_t w = frame(wire, want, n_want, form);
            cr_expect_eq(patron_wire_of(wire, w), PATRON_WIRE_REGISTRY);
            ev = patron_event_decode_wire(&alloc, wire, w, why);
            cr_assert_not_null(ev, "%s (registry %d): %s", c->name, form, why);
            n = packed(&ev->base, got, sizeof(got));
            cr_expect(n == n_want && memcmp(got, want, n) == 0, "%s: registry differs", c->name);
        }
        /* Confluent's JSON Schema serializer: the framing's head, then JSON */
        size_t w = frame(wire, (const uint8_t *)c->json, strlen(c->json), 0);
        memmove(wire + 5, wire + 6, w - 6);
        ev = patron_event_decode_wire(&alloc, wire, w - 1, why);
        cr_assert_not_null(ev, "%s (registry JSON): %s", c->name, why);
        n = packed(&ev->base, got, sizeof(got));
        cr_expect(n == n_want && memcmp(got, want, n) == 0, "%s: registry JSON differs", c->name);
        pool_clear(&pool);
    }
}

Test(wire, json_fields_land_where_protobuf_puts_them)
{
    char why[PATRON_WIRE_REASON_MAX];
    const char *j = events[4].json; /* the purchase */
    Patron__V1__Event *ev = patron_event_decode_wire(&alloc, (const uint8_t *)j, strlen(j), why);
    cr_assert_not_null(ev, "%s", why);
    cr_expect_str_eq(ev->event_id, "e5");
    cr_expect_str_eq(ev->customer_id, "c1");
    cr_expect_str_eq(ev->anonymous_id, "");
    cr_expect_eq(ev->occurred_at_ms, 7);
    cr_assert_eq(ev->kind_case, PATRON__V1__EVENT__KIND_PURCHASE);
    cr_expect_str_eq(ev->purchase->order_id, "536365");
    cr_assert_eq(ev->purchase->n_items, 2);
    cr_expect_str_eq(ev->purchase->items[0]->item_id, "a");
    cr_expect_str_eq(ev->purchase->items[0]->category, "");
    cr_expect_eq(ev->purchase->items[0]->quantity, 6);
    cr_expect_eq(ev->purchase->items[1]->unit_price_cents, -1);
    j = events[8].json; /* consent by enum name */
    ev = patron_event_decode_wire(&alloc, (const uint8_t *)j, strlen(j), why);
    cr_assert_not_null(ev, "%s", why);
    cr_expect_eq(ev->consent->channel, PATRON__V1__CHANNEL__EMAIL);
    cr_expect_eq(ev->consent->granted, 1);
    pool_clear(&pool);
}

struct refusal {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen */
    const char *reason_has;
};

static const struct refusal refusals[] = {
    {"not JSON", "{\"eventId\":", 0, "json: line 1"},
    {"trailing garbage", "{\"eventId\":\"e\"} x", 0, "json: line 1"},
    {"an array: not JSON by its first byte", "[1,2]", 0, "decode:"},
    {"an array in braces position", "{\"eventId\":[1]}", 0, "event_id"},
    {"two oneof members", "{\"view\":{},\"review\":{}}", 0, "two members of a oneof"},
    {"a string for an object", "{\"view\":\"x\"}", 0, "expected an object"},
    {"a number for a string", "{\"eventId\":5}", 0, "event_id: expected a string"},
    {"a fraction for an int64", "{\"occurredAtMs\":1.5}", 0, "occurred_at_ms"},
    {"an int64 past its range", "{\"occurredAtMs\":\"9223372036854775808\"}", 0, "occurred_at_ms"},
    {"an int32 past its range", "{\"review\":{\"rating\":2147483648}}", 0, "rating"},
    {"a non-canonical integer string", "{\"occurredAtMs\":\"+5\"}", 0, "occurred_at_ms"},
    {"an unknown enum name", "{\"consent\":{\"channel\":\"FAX\"}}", 0, "unknown value"},
    {"a string for a bool", "{\"consent\":{\"granted\":\"true\"}}", 0, "granted"},
    {"duplicate keys", "{\"eventId\":\"a\",\"eventId\":\"b\"}", 0, "json: line"},
    {"a NUL in a string", "{\"customerId\":\"victim3\\u0000x\"}", 0, "json: line"},
    {"invalid UTF-8", "{\"customerId\":\"\xff\xfe\"}", 0, "json: line"},
    {"items not a list", "{\"purchase\":{\"items\":{}}}", 0, "expected an array"},
    {"a null line", "{\"purchase\":{\"items\":[null]}}", 0, "null in a list"},
    {"a registry framing cut short", "\x00\x00\x00\x00", 4, "schema registry"},
    {"a registry index of another message", "\x00\x00\x00\x00\x01\x02\x02\x0a\x01x", 10,
     "first message"},
    {"a registry index list of two", "\x00\x00\x00\x00\x01\x04\x00\x00", 8, "first message"},
    {"a registry index list cut short", "\x00\x00\x00\x00\x01\x82", 6, "index list"},
    {"a registry body that is not an Event", "\x00\x00\x00\x00\x01\x00\x07", 7, "decode:"},
    {"plain protobuf that is not an Event",
     "\x0a\x05"
     "ab",
     4, "decode: not a patron.v1.Event"},
};

Test(wire, malformed_input_is_refused_with_a_reason)
{
    char why[PATRON_WIRE_REASON_MAX];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(refusals); i++) {
        const struct refusal *r = &refusals[i];
        size_t len = r->len ? r->len : strlen(r->bytes);
        Patron__V1__Event *ev =
            patron_event_decode_wire(&alloc, (const uint8_t *)r->bytes, len, why);
        cr_expect_null(ev, "%s: accepted", r->name);
        cr_expect(strstr(why, r->reason_has) != NULL, "%s: reason '%s' lacks '%s'", r->name, why,
                  r->reason_has);
        pool_clear(&pool);
    }
}

Test(wire, json_bounds_are_checked_before_parsing)
{
    char why[PATRON_WIRE_REASON_MAX];
    /* 1,001 lines: over the contract's limit */
    size_t cap = 64 * 1024, n = 0;
    char *j = malloc(cap);
    cr_assert_not_null(j);
    n += (size_t)snprintf(j + n, cap - n, "{\"purchase\":{\"items\":[");
    for (int i = 0; i <= PATRON_WIRE_REPEATED_MAX; i++)
        n += (size_t)snprintf(j + n, cap - n, "%s{}", i ? "," : "");
    n += (size_t)snprintf(j + n, cap - n, "]}}");
    cr_expect_null(patron_event_decode_wire(&alloc, (const uint8_t *)j, n, why));
    cr_expect(strstr(why, "more than 1000 elements") != NULL, "%s", why);
    pool_clear(&pool);
    free(j);

    /* 100,000 empty values: refused before jansson builds a tree of them */
    cap = 400 * 1024;
    j = malloc(cap);
    cr_assert_not_null(j);
    n = (size_t)snprintf(j, cap, "{\"x\":[");
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(j + n, cap - n, "%s0", i ? "," : "");
    n += (size_t)snprintf(j + n, cap - n, "]}");
    cr_expect_null(patron_event_decode_wire(&alloc, (const uint8_t *)j, n, why));
    cr_expect(strstr(why, "more than 65536 values") != NULL, "%s", why);
    /* commas inside strings do not count */
    n = (size_t)snprintf(j, cap, "{\"eventId\":\"");
    for (int i = 0; i < 100000; i++)
        j[n++] = ',';
    n += (size_t)snprintf(j + n, cap - n, "\"}");
    Patron__V1__Event *ev = patron_event_decode_wire(&alloc, (const uint8_t *)j, n, why);
    cr_expect_not_null(ev, "%s", why);
    pool_clear(&pool);
    free(j);
}

Test(wire, item_updates_in_every_encoding)
{
    static uint8_t want[1024], got[1024], wire[1024];
    char why[PATRON_WIRE_REASON_MAX];
    const char *json = "{\"itemId\":\"POST\",\"category\":\"fees\",\"priceCents\":\"1800\","
                       "\"inStock\":true,\"title\":\"POSTAGE\",\"notAProduct\":true}";
    const char *other =
        "{\"item_id\":\"POST\",\"category\":\"fees\",\"price_cents\":1800,"
        "\"in_stock\":true,\"title\":\"POSTAGE\",\"not_a_product\":true,\"x\":null}";
    Patron__V1__ItemUpdate *u =
        patron_item_update_decode_wire(&alloc, (const uint8_t *)json, strlen(json), why);
    cr_assert_not_null(u, "%s", why);
    cr_expect_str_eq(u->item_id, "POST");
    cr_expect_eq(u->price_cents, 1800);
    cr_expect(u->in_stock && u->not_a_product);
    size_t n_want = packed(&u->base, want, sizeof(want));
    u = patron_item_update_decode_wire(&alloc, (const uint8_t *)other, strlen(other), why);
    cr_assert_not_null(u, "%s", why);
    size_t n = packed(&u->base, got, sizeof(got));
    cr_expect(n == n_want && memcmp(got, want, n) == 0);
    u = patron_item_update_decode_wire(&alloc, want, n_want, why);
    cr_assert_not_null(u, "%s", why);
    n = packed(&u->base, got, sizeof(got));
    cr_expect(n == n_want && memcmp(got, want, n) == 0);
    size_t w = frame(wire, want, n_want, 0);
    u = patron_item_update_decode_wire(&alloc, wire, w, why);
    cr_assert_not_null(u, "%s", why);
    n = packed(&u->base, got, sizeof(got));
    cr_expect(n == n_want && memcmp(got, want, n) == 0);
    cr_expect_null(
        patron_item_update_decode_wire(&alloc, (const uint8_t *)"{\"priceCents\":\"x\"}", 18, why));
    cr_expect(strstr(why, "price_cents") != NULL, "%s", why);
    pool_clear(&pool);
}

static void put_varint(uint8_t **p, uint64_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

/* The catalog contract (catalog.h), table-driven, through every check: ids
 * and categories as events' (UTF-8 without control bytes, 1..64 bytes),
 * titles UTF-8 without control bytes up to 512, and no string holding a
 * NUL (protobuf-c would copy it, and "item\0x" would be the item "item"). */
Test(wire, catalog_limits_table)
{
    static char long_title[PATRON_TITLE_MAX + 2];
    memset(long_title, 't', PATRON_TITLE_MAX + 1);
    static const struct {
        const char *item, *category, *title;
        size_t item_len; /* 0: strlen */
        int64_t price;
        const char *reason; /* NULL: accepted */
    } rows[] = {
        {"i1", "home", "A title \xe2\x9c\x93", 0, 1, NULL},
        {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "", "", 0, 0, NULL},
        {"", "", "", 0, 0, "missing or invalid item_id"},
        {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "", "", 0, 0,
         "missing or invalid item_id"},
        {"i\x01", "", "", 0, 0, "missing or invalid item_id"},
        {"i\xff", "", "", 0, 0, "missing or invalid item_id"},
        {"i\0x", "", "", 3, 0, "item_id has invalid bytes"},
        {"i", "c\xc0\x80", "", 0, 0, "invalid category"},
        {"i", "", "bad \xed\xa0\x80", 0, 0, "invalid title"},
        {"i", "", "line\nbreak", 0, 0, "invalid title"},
        {"i", "", long_title, 0, 0, "title too long"},
        {"i", "", "", 0, -1, "negative price"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        uint8_t buf[1024], *p = buf;
        size_t ilen = rows[i].item_len ? rows[i].item_len : strlen(rows[i].item);
        const char *strs[3] = {rows[i].item, rows[i].category, rows[i].title};
        size_t lens[3] = {ilen, strlen(rows[i].category), strlen(rows[i].title)};
        uint8_t tags[3] = {0x0a, 0x12, 0x2a};
        for (size_t k = 0; k < 3; k++) {
            if (!lens[k])
                continue;
            *p++ = tags[k];
            put_varint(&p, lens[k]);
            memcpy(p, strs[k], lens[k]);
            p += lens[k];
        }
        if (rows[i].price) {
            *p++ = 0x18;
            put_varint(&p, (uint64_t)rows[i].price);
        }
        Patron__V1__ItemUpdate *u = NULL;
        char why[PATRON_WIRE_REASON_MAX] = "";
        int rc = patron_item_update_decode(&alloc, buf, (size_t)(p - buf), &u, why);
        if (!rows[i].reason) {
            cr_expect_eq(rc, 0, "row %zu: %s", i, why);
            cr_expect_not_null(u, "row %zu", i);
        } else {
            cr_expect_neq(rc, 0, "row %zu", i);
            cr_expect_str_eq(why, rows[i].reason, "row %zu", i);
        }
    }
    pool_clear(&pool);
}
