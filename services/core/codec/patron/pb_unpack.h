/*
 * Reading protobuf's wire format by hand, for decoders that must accept and
 * reject exactly what protobuf-c 1.4's unpack does (profile_codec.c): the
 * stored profiles were written and read through protobuf-c, so its quirks
 * are the format's de facto definition here. Those quirks, measured against
 * libprotobuf-c 1.4.1 (tests/unit/test_pb_unpack.c pins each, and
 * test_profile_codec.c holds them against protobuf-c itself):
 *   - a tag is at most 5 bytes and its field number 32 bits; a tag whose
 *     FIRST byte says field 0 is refused, a longer one meaning 0 is merely
 *     an unknown field;
 *   - wire types 3 and 4 (groups), 6 and 7 are refused;
 *   - a varint is at most 10 bytes (bits past 64 are dropped), a length
 *     prefix at most 5 bytes, and a length past the buffer is refused;
 *   - a bool reads true if any of its bytes (after the tag, length prefix
 *     included, whatever the wire type) has a low 7-bit group set.
 * What a field's wire type must be is the decoder's business (protobuf-c:
 * the declared one, or LEN for a packed repeated scalar; a bool takes any),
 * and so are strings: code that read protobuf-c's NUL-terminated copies
 * through strlen saw them up to their first NUL.
 *
 * Header-only so that the per-field calls inline into the decoder's loop.
 * Pure, no allocation; a field points into the caller's buffer. Safe from
 * any thread.
 */
#ifndef PATRON_PB_UNPACK_H
#define PATRON_PB_UNPACK_H

#include "patron/common.h"

enum patron_pb_wire {
    PATRON_PB_VARINT = 0,
    PATRON_PB_I64 = 1,
    PATRON_PB_LEN = 2,
    PATRON_PB_I32 = 5,
};

/* One field as patron_pb_unpack_field found it. */
struct patron_pb_field {
    uint32_t number;
    enum patron_pb_wire wire;
    const uint8_t *raw; /* the bytes after the tag, a LEN's prefix included */
    size_t raw_len;
    const uint8_t *data; /* LEN: the payload; otherwise the same as raw */
    size_t len;
    uint64_t value; /* VARINT: its value mod 2^64; I64, I32: little-endian; LEN: len */
};

static inline uint32_t patron_pb_unpack_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t patron_pb_unpack_le64(const uint8_t *p)
{
    return (uint64_t)patron_pb_unpack_le32(p) | (uint64_t)patron_pb_unpack_le32(p + 4) << 32;
}

/* A varint of at most max bytes at *at (< end) into *out (mod 2^64), *at
 * moved past it; PATRON_EINVAL if it does not end within max bytes or the
 * buffer. */
static inline PATRON_MUST_USE int patron_pb_unpack_varint(const uint8_t **at, const uint8_t *end,
                                                          size_t max, uint64_t *out)
{
    const uint8_t *p = *at;
    size_t n = (size_t)(end - p) < max ? (size_t)(end - p) : max;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        /* the 10th byte's bits past 64 fall off, as in protobuf-c */
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *at = p + i + 1;
            *out = v;
            return 0;
        }
    }
    return PATRON_EINVAL;
}

/* Reads the field at *at (< end) and moves *at past it. PATRON_EINVAL on
 * anything protobuf-c's scan refuses (see the top); *at is then unchanged. */
static inline PATRON_MUST_USE int patron_pb_unpack_field(const uint8_t **at, const uint8_t *end,
                                                         struct patron_pb_field *f)
{
    const uint8_t *p = *at;
    if (p >= end || (p[0] & 0xf8) == 0)
        return PATRON_EINVAL;
    uint64_t tag;
    if (p[0] < 0x80) { /* the common case: fields 1..15 */
        tag = p[0];
        p++;
    } else if (patron_pb_unpack_varint(&p, end, 5, &tag)) {
        return PATRON_EINVAL;
    }
    f->number = (uint32_t)(tag >> 3); /* 5 bytes hold 35 bits: exactly 32 after the wire type */
    f->wire = (enum patron_pb_wire)(tag & 7);
    f->raw = p;
    size_t left = (size_t)(end - p);
    switch (tag & 7) {
    case PATRON_PB_VARINT: {
        const uint8_t *q = p;
        if (left && p[0] < 0x80) {
            f->value = p[0];
            q++;
        } else if (patron_pb_unpack_varint(&q, end, 10, &f->value)) {
            return PATRON_EINVAL;
        }
        f->raw_len = f->len = (size_t)(q - p);
        f->data = p;
        break;
    }
    case PATRON_PB_I64:
        if (left < 8)
            return PATRON_EINVAL;
        f->raw_len = f->len = 8;
        f->data = p;
        f->value = patron_pb_unpack_le64(p);
        break;
    case PATRON_PB_I32:
        if (left < 4)
            return PATRON_EINVAL;
        f->raw_len = f->len = 4;
        f->data = p;
        f->value = patron_pb_unpack_le32(p);
        break;
    case PATRON_PB_LEN: {
        const uint8_t *q = p;
        uint64_t n;
        if (left && p[0] < 0x80) { /* up to 127 bytes: most strings and sub-messages */
            n = p[0];
            q++;
        } else if (patron_pb_unpack_varint(&q, end, 5, &n)) {
            return PATRON_EINVAL;
        }
        if (n > (uint64_t)(end - q))
            return PATRON_EINVAL;
        f->data = q;
        f->len = (size_t)n;
        f->raw_len = (size_t)(q - p) + f->len;
        f->value = n;
        break;
    }
    default: /* groups (3, 4) and the undefined 6, 7 */
        return PATRON_EINVAL;
    }
    *at = p + f->raw_len;
    return 0;
}

/* A bool as protobuf-c reads it: any wire type, true if any 7-bit group of
 * its bytes is set (so a 10-byte varint whose only bit is past 64 is true). */
static inline bool patron_pb_unpack_bool(const struct patron_pb_field *f)
{
    for (size_t i = 0; i < f->raw_len; i++)
        if (f->raw[i] & 0x7f)
            return true;
    return false;
}

#endif
