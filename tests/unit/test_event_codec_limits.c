/* The limits patron_event_unpack holds where protobuf-c does not
 * (event_codec.h): one row per limit, each at the bound (accepted) and one
 * past it (refused with event_check's reason); the line limit met before
 * the memory is spent; and what a decode may take from its allocator,
 * len + PATRON_EVENT_DECODED_EXTRA, against the inputs built to blow it
 * up. Every row also goes through the oracle (protobuf-c, then the limits
 * on its result). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_event_codec.h"
#include "patron/event_wire.h"
#include "patron/pb_arena.h"

PATRON_LEAK_CHECKED_SUITE(event_codec_limits);

/* ---- building events on the wire ---- */

struct wbuf {
    uint8_t *b;
    size_t n, cap;
};

static void wb_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2;
        w->b = realloc(w->b, w->cap);
        cr_assert_not_null(w->b);
    }
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void wb_varint(struct wbuf *w, uint64_t v)
{
    uint8_t tmp[10], *p = tmp;
    put_varint(&p, v);
    wb_bytes(w, tmp, (size_t)(p - tmp));
}

static void wb_len(struct wbuf *w, uint32_t number, const void *p, size_t n)
{
    wb_varint(w, (uint64_t)number << 3 | 2);
    wb_varint(w, n);
    wb_bytes(w, p, n);
}

/* A string of n bytes: 'x's, or with a NUL at its middle. */
static char *text(size_t n, bool nul)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, 'x', n);
    if (nul && n)
        s[n / 2] = '\0';
    s[n] = '\0';
    return s;
}

/* Where the string under test goes: a top-level field, or a field of the
 * member `kind` (wrapped in a LineItem at `line` when > 0). */
struct place {
    const char *name;
    uint32_t kind;   /* 0: top level */
    uint32_t line;   /* the member's LineItem field, 0: none */
    uint32_t number; /* the string's field */
    size_t max;
    const char *too_long, *bad;
};

static const struct place places[] = {
    {"event_id", 0, 0, 1, 64, "event_id too long", "event_id has invalid bytes"},
    {"customer_id", 0, 0, 2, 64, "customer_id too long", "customer_id has invalid bytes"},
    {"anonymous_id", 0, 0, 4, 64, "anonymous_id too long", "anonymous_id has invalid bytes"},
    {"view.item_id", 10, 0, 1, 64, "item_id too long", "item_id has invalid bytes"},
    {"view.category", 10, 0, 2, 64, "category too long", "category has invalid bytes"},
    {"cart_add.item.item_id", 11, 1, 1, 64, "item_id too long", "item_id has invalid bytes"},
    {"cart_remove.item_id", 12, 0, 1, 64, "item_id too long", "item_id has invalid bytes"},
    {"purchase.order_id", 13, 0, 1, 64, "order_id too long", "order_id has invalid bytes"},
    {"purchase.line.category", 13, 2, 2, 64, "category too long", "category has invalid bytes"},
    {"purchase.currency", 13, 0, 3, 64, "currency too long", "currency has invalid bytes"},
    {"refund.order_id", 14, 0, 1, 64, "order_id too long", "order_id has invalid bytes"},
    {"refund.line.item_id", 14, 3, 1, 64, "item_id too long", "item_id has invalid bytes"},
    {"review.item_id", 15, 0, 1, 64, "item_id too long", "item_id has invalid bytes"},
    {"customer.birthday", 16, 0, 1, 5, "invalid birthday", "invalid birthday"},
    {"customer.time_zone", 16, 0, 2, 63, "time_zone too long", "invalid time_zone"},
    {"customer.locale", 16, 0, 3, 35, "locale too long", "locale has invalid bytes"},
    {"customer.country", 16, 0, 4, 63, "country too long", "country has invalid bytes"},
    {"identify.anonymous_id", 19, 0, 1, 64, "anonymous_id too long",
     "anonymous_id has invalid bytes"},
};

/* An event with `s` (n bytes) at place p. */
static void build(struct wbuf *w, const struct place *p, const char *s, size_t n)
{
    w->n = 0;
    if (!p->kind) {
        wb_len(w, p->number, s, n);
        return;
    }
    struct wbuf inner = {0}, member = {0};
    wb_len(&inner, p->number, s, n);
    if (p->line) {
        wb_len(&member, p->line, inner.b, inner.n);
    } else {
        member = inner;
        inner.b = NULL;
    }
    wb_len(w, p->kind, member.b, member.n);
    free(inner.b);
    free(member.b);
}

static Patron__V1__Event *decode(struct tarena *a, const struct wbuf *w, const char **why)
{
    ProtobufCAllocator alloc = {
        .alloc = tarena_alloc, .free = tarena_free_one, .allocator_data = a};
    tarena_reset(a);
    return patron_event_unpack_why(&alloc, w->b, w->n, why);
}

Test(event_codec_limits, every_string_at_its_limit_and_past_it)
{
    struct tarena a = {.fail_after = SIZE_MAX};
    struct wbuf w = {0};
    char msg[256];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(places); i++) {
        const struct place *p = &places[i];
        static const struct {
            size_t extra;
            bool nul;
            int expect; /* 0 accept, 1 too long, 2 bad */
        } cases[] = {{0, false, 0}, {1, false, 1}, {0, true, 2}, {1000, false, 1}};
        for (size_t k = 0; k < PATRON_ARRAY_LEN(cases); k++) {
            size_t n = p->max + cases[k].extra;
            char *s = text(n, cases[k].nul);
            build(&w, p, s, n);
            const char *why = "unset";
            Patron__V1__Event *e = decode(&a, &w, &why);
            if (cases[k].expect == 0) {
                cr_expect_not_null(e, "%s, %zu bytes: %s", p->name, n, why);
                cr_expect_null(why, "%s", p->name);
            } else {
                cr_expect_null(e, "%s, %zu bytes%s", p->name, n, cases[k].nul ? ", a NUL" : "");
                cr_expect_str_eq(why ? why : "(null)", cases[k].expect == 1 ? p->too_long : p->bad,
                                 "%s case %zu", p->name, k);
            }
            bool accepted;
            cr_expect(decoders_agree(&a, w.b, w.n, &accepted, msg, sizeof(msg)), "%s case %zu: %s",
                      p->name, k, msg);
            free(s);
        }
    }
    free(w.b);
    tarena_done(&a);
}

/* Through the wire decoder: the reason reaches the DLQ's header, and an
 * event whose customer id holds a NUL is never the customer before it. */
Test(event_codec_limits, nul_ids_are_refused_not_cut)
{
    struct patron_arena arena;
    patron_arena_init(&arena, NULL);
    ProtobufCAllocator alloc = patron_pb_arena_allocator(&arena);
    static const struct {
        const char *bytes;
        size_t len;
        const char *reason;
    } rows[] = {
#define R(lit, why) {lit, sizeof(lit) - 1, why}
        R("\x0a\x03"
          "e\0a"
          "\x12\x02"
          "c1",
          "event_id has invalid bytes"),
        R("\x0a\x01"
          "e"
          "\x12\x09"
          "victim3\0x",
          "customer_id has invalid bytes"),
        R("\x0a\x01"
          "e"
          "\x12\x01"
          "c"
          "\x52\x04\x0a\x02"
          "i\0",
          "item_id has invalid bytes"),
        R("{\"eventId\":\"e\",\"customerId\":\"victim3\\u0000x\"}", NULL), /* jansson's own words */
        R("\x00\x00\x00\x00\x07\x00"
          "\x12\x09"
          "victim3\0x",
          "customer_id has invalid bytes"),
#undef R
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        char why[PATRON_WIRE_REASON_MAX];
        Patron__V1__Event *e =
            patron_event_decode_wire(&alloc, (const uint8_t *)rows[i].bytes, rows[i].len, why);
        cr_expect_null(e, "row %zu", i);
        if (rows[i].reason)
            cr_expect_str_eq(why, rows[i].reason, "row %zu", i);
        else
            cr_expect_neq(why[0], '\0', "row %zu", i);
    }
    patron_arena_free(&arena);
}

/* ---- lines and memory ---- */

/* An allocator that counts what it hands out. */
struct counted {
    struct tarena t;
    size_t bytes;
};

static void *counted_alloc(void *ud, size_t n)
{
    struct counted *c = ud;
    c->bytes += n;
    return tarena_alloc(&c->t, n);
}

static size_t decoded_bytes(const uint8_t *buf, size_t len, bool *accepted, const char **why)
{
    struct counted c = {.t = {.fail_after = SIZE_MAX}};
    ProtobufCAllocator alloc = {
        .alloc = counted_alloc, .free = tarena_free_one, .allocator_data = &c};
    *accepted = patron_event_unpack_why(&alloc, buf, len, why) != NULL;
    tarena_done(&c.t);
    return c.bytes;
}

/* A purchase (or refund) of n lines, each `line` bytes of LineItem, the
 * member repeated `repeat` times, plus `pad` bytes of an unknown field. */
static void purchase(struct wbuf *w, uint32_t kind, size_t n, const uint8_t *line, size_t line_len,
                     size_t repeat, size_t pad)
{
    struct wbuf m = {0};
    for (size_t i = 0; i < n; i++)
        wb_len(&m, kind == 13 ? 2 : 3, line, line_len);
    w->n = 0;
    wb_len(w, 1, "e", 1);
    wb_len(w, 2, "c", 1);
    for (size_t r = 0; r < repeat; r++)
        wb_len(w, kind, m.b, m.n);
    if (pad) {
        uint8_t *zeros = calloc(1, pad);
        cr_assert_not_null(zeros);
        wb_len(w, 99, zeros, pad);
        free(zeros);
    }
    free(m.b);
}

Test(event_codec_limits, lines_at_the_limit_and_past_it)
{
    static const uint8_t empty_line[1] = {0};
    static const uint8_t line[] = {0x0a, 0x01, 'i', 0x18, 0x01};
    static const struct {
        uint32_t kind;
        const uint8_t *line;
        size_t line_len, n;
        bool accept;
    } rows[] = {
        {13, line, sizeof line, 1000, true}, {13, line, sizeof line, 1001, false},
        {14, line, sizeof line, 1000, true}, {14, line, sizeof line, 1001, false},
        {13, empty_line, 0, 1000, true},     {13, empty_line, 0, 1001, false},
        {13, empty_line, 0, 480000, false},  {14, empty_line, 0, 480000, false},
    };
    struct wbuf w = {0};
    struct tarena a = {.fail_after = SIZE_MAX};
    char msg[256];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        purchase(&w, rows[i].kind, rows[i].n, rows[i].line, rows[i].line_len, 1, 0);
        bool accepted;
        const char *why;
        size_t used = decoded_bytes(w.b, w.n, &accepted, &why);
        cr_expect_eq(accepted, rows[i].accept, "row %zu: %s", i, why ? why : "-");
        if (!rows[i].accept)
            cr_expect_str_eq(why ? why : "(null)", "too many lines", "row %zu", i);
        cr_expect_leq(used, w.n + PATRON_EVENT_DECODED_EXTRA, "row %zu: %zu bytes for %zu", i, used,
                      w.n);
        if (rows[i].n < 5000) /* protobuf-c would allocate the lot: the small ones only */
            cr_expect(decoders_agree(&a, w.b, w.n, &accepted, msg, sizeof(msg)), "row %zu: %s", i,
                      msg);
    }
    free(w.b);
    tarena_done(&a);
}

/* Inputs built to make a decoder allocate much more than they weigh: many
 * small lines, the oneof repeated, strings at their limit, all near 1 MiB.
 * What the decode takes stays under len + PATRON_EVENT_DECODED_EXTRA. */
Test(event_codec_limits, memory_is_bounded_by_the_size)
{
    static const uint8_t line[] = {0x0a, 0x01, 'i'};
    uint8_t long_line[140], *p = long_line;
    *p++ = 0x0a;
    *p++ = 64;
    memset(p, 'i', 64);
    p += 64;
    *p++ = 0x12;
    *p++ = 64;
    memset(p, 'k', 64);
    p += 64;
    static const struct {
        const char *name;
        size_t n, repeat, pad;
        bool long_lines, accept;
    } rows[] = {
        {"a member of 900 lines, repeated 300 times", 900, 300, 0, false, true},
        {"a member of 1 line, repeated 200,000 times", 1, 200000, 0, false, true},
        {"1,000 lines of 64-byte strings", 1000, 1, 0, true, true},
        {"1,000 lines and a 900 KB unknown field", 1000, 1, 900000, false, true},
        {"an empty member repeated 500,000 times", 0, 500000, 0, false, true},
    };
    struct wbuf w = {0};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        purchase(&w, 13, rows[i].n, rows[i].long_lines ? long_line : line,
                 rows[i].long_lines ? (size_t)(p - long_line) : sizeof line, rows[i].repeat,
                 rows[i].pad);
        bool accepted;
        const char *why;
        size_t used = decoded_bytes(w.b, w.n, &accepted, &why);
        cr_expect_eq(accepted, rows[i].accept, "%s: %s", rows[i].name, why ? why : "-");
        cr_expect_leq(used, w.n + PATRON_EVENT_DECODED_EXTRA, "%s: %zu bytes for %zu", rows[i].name,
                      used, w.n);
        cr_log_info("%s: %zu bytes in, %zu decoded", rows[i].name, w.n, used);
    }
    free(w.b);
}
