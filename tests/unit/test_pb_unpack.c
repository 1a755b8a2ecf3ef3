#include <criterion/criterion.h>
#include <string.h>

#include "patron/pb_unpack.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(pb_unpack);

/* One field read from hand-written bytes; each row's expectations are
 * protobuf-c 1.4.1's (test_profile_codec.c compares whole messages with it). */
struct field_row {
    const char *name;
    const char *bytes;
    size_t len;
    int rc;
    /* when read: */
    uint32_t number;
    enum patron_pb_wire wire;
    uint64_t value;
    size_t raw_len, data_off, data_len; /* data_off: from the tag's start */
    size_t used;                        /* bytes consumed, tag included */
};

#define ROW(name, b, ...)                                                                          \
    {                                                                                              \
        name, b, sizeof(b) - 1, __VA_ARGS__                                                        \
    }

static const struct field_row field_rows[] = {
    ROW("varint 1", "\x08\x01", 0, 1, PATRON_PB_VARINT, 1, 1, 1, 1, 2),
    ROW("varint 300", "\x08\xac\x02", 0, 1, PATRON_PB_VARINT, 300, 2, 1, 2, 3),
    ROW("varint -1 in 10 bytes", "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0, 2,
        PATRON_PB_VARINT, UINT64_MAX, 10, 1, 10, 11),
    ROW("varint: bits past 64 dropped", "\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x7e", 0, 2,
        PATRON_PB_VARINT, 0, 10, 1, 10, 11),
    ROW("varint of 11 bytes", "\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", PATRON_EINVAL),
    ROW("varint cut short", "\x10\x80\x80", PATRON_EINVAL),
    ROW("varint missing", "\x10", PATRON_EINVAL),
    ROW("fixed64", "\x09\x01\x02\x03\x04\x05\x06\x07\x08", 0, 1, PATRON_PB_I64,
        0x0807060504030201ULL, 8, 1, 8, 9),
    ROW("fixed64 cut short", "\x09\x01\x02\x03\x04\x05\x06\x07", PATRON_EINVAL),
    ROW("fixed32", "\x0d\xff\x00\x00\x80", 0, 1, PATRON_PB_I32, 0x800000ffULL, 4, 1, 4, 5),
    ROW("fixed32 cut short", "\x0d\xff\x00\x00", PATRON_EINVAL),
    ROW("length-delimited",
        "\x0a\x03"
        "abcTAIL",
        0, 1, PATRON_PB_LEN, 3, 4, 2, 3, 5),
    ROW("length-delimited, empty", "\x0a\x00", 0, 1, PATRON_PB_LEN, 0, 1, 2, 0, 2),
    ROW("length past the end",
        "\x0a\x04"
        "abc",
        PATRON_EINVAL),
    ROW("length prefix of 5 bytes",
        "\x0a\x81\x80\x80\x80\x00"
        "a",
        0, 1, PATRON_PB_LEN, 1, 6, 6, 1, 7),
    ROW("length prefix of 6 bytes",
        "\x0a\x81\x80\x80\x80\x80\x00"
        "a",
        PATRON_EINVAL),
    ROW("length 2^32 + 1, not cut to 1",
        "\x0a\x81\x80\x80\x80\x10"
        "a",
        PATRON_EINVAL),
    ROW("length prefix cut short", "\x0a\x80", PATRON_EINVAL),
    ROW("group start", "\x0b", PATRON_EINVAL),
    ROW("group end", "\x0c", PATRON_EINVAL),
    ROW("wire type 6", "\x0e\x00", PATRON_EINVAL),
    ROW("wire type 7", "\x0f\x00", PATRON_EINVAL),
    ROW("field 0 in one byte", "\x00\x00", PATRON_EINVAL),
    ROW("field 0 in one byte, length-delimited", "\x02\x00", PATRON_EINVAL),
    ROW("field 0 in two bytes", "\x80\x00\x07", 0, 0, PATRON_PB_VARINT, 7, 1, 2, 1, 3),
    ROW("field 16: two-byte tag", "\x80\x01\x07", 0, 16, PATRON_PB_VARINT, 7, 1, 2, 1, 3),
    ROW("tag of 5 bytes", "\x90\x80\x80\x80\x00\x07", 0, 2, PATRON_PB_VARINT, 7, 1, 5, 1, 6),
    ROW("tag of 6 bytes", "\x90\x80\x80\x80\x80\x00\x07", PATRON_EINVAL),
    ROW("field 2^32 - 1", "\xf8\xff\xff\xff\x7f\x00", 0, UINT32_MAX, PATRON_PB_VARINT, 0, 1, 5, 1,
        6),
    ROW("tag cut short", "\x80", PATRON_EINVAL),
    ROW("nothing", "", PATRON_EINVAL),
};

Test(pb_unpack, field_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(field_rows); i++) {
        const struct field_row *w = &field_rows[i];
        const uint8_t *b = (const uint8_t *)w->bytes, *at = b;
        struct patron_pb_field f;
        int rc = patron_pb_unpack_field(&at, b + w->len, &f);
        cr_expect_eq(rc, w->rc, "%s: %d", w->name, rc);
        if (rc) {
            cr_expect_eq(at, b, "%s: moved on failure", w->name);
            continue;
        }
        if (w->rc)
            continue;
        cr_expect_eq(f.number, w->number, "%s: number %u", w->name, f.number);
        cr_expect_eq(f.wire, w->wire, "%s", w->name);
        cr_expect_eq(f.value, w->value, "%s: value %llu", w->name, (unsigned long long)f.value);
        cr_expect_eq(f.raw_len, w->raw_len, "%s: raw_len %zu", w->name, f.raw_len);
        cr_expect_eq(f.data, b + w->data_off, "%s: data at %td", w->name, f.data - b);
        cr_expect_eq(f.len, w->data_len, "%s: len %zu", w->name, f.len);
        cr_expect_eq(at, b + w->used, "%s: used %td", w->name, at - b);
        cr_expect_eq(f.raw + f.raw_len, at, "%s: raw ends where the field does", w->name);
    }
}

/* Fields one after another: each read starts where the last one ended. */
Test(pb_unpack, fields_in_sequence)
{
    static const uint8_t msg[] = "\x08\x96\x01\x12\x02hi\x19\x01\x00\x00\x00\x00\x00\x00\x00"
                                 "\x25\x02\x00\x00\x00";
    const uint8_t *at = msg, *end = msg + sizeof(msg) - 1;
    static const uint32_t numbers[] = {1, 2, 3, 4};
    static const uint64_t values[] = {150, 2, 1, 2};
    size_t n = 0;
    while (at < end) {
        struct patron_pb_field f;
        cr_assert_eq(patron_pb_unpack_field(&at, end, &f), 0, "field %zu", n);
        cr_assert_lt(n, PATRON_ARRAY_LEN(numbers));
        cr_expect_eq(f.number, numbers[n]);
        cr_expect_eq(f.value, values[n]);
        n++;
    }
    cr_expect_eq(n, 4);
    cr_expect_eq(at, end);
}

/* A varint never reads past its maximum or the buffer's end. */
Test(pb_unpack, varint_limits)
{
    static const struct {
        const char *bytes;
        size_t len, max;
        int rc;
        uint64_t value;
        size_t used;
    } rows[] = {
        {"\x00", 1, 10, 0, 0, 1},
        {"\x7f", 1, 1, 0, 127, 1},
        {"\x80\x01", 2, 1, PATRON_EINVAL, 0, 0},
        {"\x80\x01", 2, 2, 0, 128, 2},
        {"\xff\xff\xff\xff\x0f", 5, 5, 0, UINT32_MAX, 5},
        {"\xff\xff\xff\xff\x7f", 5, 5, 0, 0x7ffffffffULL, 5}, /* 35 bits: kept */
        {"\xff\xff\xff\xff\xff", 5, 10, PATRON_EINVAL, 0, 0}, /* the buffer ends first */
        {"", 0, 10, PATRON_EINVAL, 0, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        const uint8_t *b = (const uint8_t *)rows[i].bytes, *at = b;
        uint64_t v = 12345;
        int rc = patron_pb_unpack_varint(&at, b + rows[i].len, rows[i].max, &v);
        cr_expect_eq(rc, rows[i].rc, "row %zu", i);
        if (rc == 0) {
            cr_expect_eq(v, rows[i].value, "row %zu", i);
            cr_expect_eq(at, b + rows[i].used, "row %zu", i);
        } else {
            cr_expect_eq(at, b, "row %zu: moved", i);
            cr_expect_eq(v, 12345, "row %zu: written", i);
        }
    }
}

static bool bool_of(const char *bytes, size_t len)
{
    const uint8_t *at = (const uint8_t *)bytes;
    struct patron_pb_field f;
    cr_assert_eq(patron_pb_unpack_field(&at, at + len, &f), 0);
    return patron_pb_unpack_bool(&f);
}

Test(pb_unpack, bool_reads_every_byte_of_any_wire_type)
{
    static const struct {
        const char *bytes;
        size_t len;
        bool value;
    } rows[] = {
        {"\x08\x00", 2, false},
        {"\x08\x01", 2, true},
        {"\x08\x80\x00", 3, false},                                 /* 0 in two bytes */
        {"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 11, true}, /* only a bit past 64 */
        {"\x09\x00\x00\x00\x00\x00\x00\x00\x00", 9, false},
        {"\x09\x00\x00\x00\x00\x00\x00\x00\x80", 9, false}, /* 0x80: no low 7 bits */
        {"\x09\x00\x00\x00\x00\x00\x00\x00\x01", 9, true},
        {"\x0d\x00\x00\x02\x00", 5, true},
        {"\x0a\x00", 2, false},
        {"\x0a\x01\x00", 3, true}, /* the length prefix counts */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(bool_of(rows[i].bytes, rows[i].len), rows[i].value, "row %zu", i);
}

Test(pb_unpack, little_endian_loads)
{
    static const uint8_t b[] = {0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01};
    cr_expect_eq(patron_pb_unpack_le32(b), 0x89abcdefu);
    cr_expect_eq(patron_pb_unpack_le64(b), 0x0123456789abcdefULL);
}

/* Random bytes: a read either fails without moving or stays inside the
 * buffer (ASan would see a read past the end). */
Test(pb_unpack, random_bytes_stay_in_bounds)
{
    uint64_t x = 0x853c49e6748fea9bULL;
    for (int round = 0; round < 20000; round++) {
        uint8_t buf[24];
        size_t len = (size_t)(x % (sizeof(buf) + 1));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        uint8_t *heap = malloc(len ? len : 1); /* exactly len: ASan guards the end */
        cr_assert_not_null(heap);
        memcpy(heap, buf, len);
        const uint8_t *at = heap, *end = heap + len;
        while (at < end) {
            struct patron_pb_field f;
            const uint8_t *before = at;
            if (patron_pb_unpack_field(&at, end, &f)) {
                cr_assert_eq(at, before);
                break;
            }
            cr_assert(at > before && at <= end);
            cr_assert(f.data >= heap && f.data + f.len <= end);
            (void)patron_pb_unpack_bool(&f);
        }
        free(heap);
    }
}
