/*
 * What the hand-written decoders' tests share (test_profile_codec.c,
 * test_event_codec.c): a reproducible random source, and the pieces of a
 * wire-format fuzzer — varints, splicing bytes in and out, finding the top
 * level fields, and a random field of any number and wire type. Test code:
 * static inline, so each test file takes what it uses.
 *
 * WIRE_SPANS_MAX (default 2048) caps the fields wire_scan finds.
 */
#ifndef PATRON_TEST_FIXTURE_WIRE_H
#define PATRON_TEST_FIXTURE_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "patron/pb_unpack.h"

#ifndef WIRE_SPANS_MAX
#define WIRE_SPANS_MAX 2048
#endif

/* xorshift64*: reproducible, seeded per test. */
struct rng {
    uint64_t s;
};

static inline uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static inline size_t rnd_below(struct rng *r, size_t n)
{
    return n ? (size_t)(rnd(r) % n) : 0;
}

static inline bool chance(struct rng *r, unsigned percent)
{
    return rnd_below(r, 100) < percent;
}

/* An int64 a fuzzer should try: zero, small, negative, the extremes, a
 * time after t0 (ms), or any 64 bits. */
static inline int64_t wire_rnd_i64(struct rng *r, int64_t t0)
{
    switch (rnd_below(r, 6)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)rnd_below(r, 1000);
    case 2:
        return -(int64_t)rnd_below(r, 100000);
    case 3:
        return chance(r, 50) ? INT64_MIN : INT64_MAX;
    case 4:
        return t0 + (int64_t)rnd_below(r, 1000000000);
    default:
        return (int64_t)rnd(r);
    }
}

/* b[0..n) as hex, as much as fits in cap (NUL-terminated). */
static inline void hexdump(char *out, size_t cap, const uint8_t *b, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x ", b[i]);
}

static inline void put_varint(uint8_t **p, uint64_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

/* Replaces bytes [at, at + del) of b (*n used, cap room) with ins[0..k);
 * false if it would not fit. */
static inline bool wire_splice(uint8_t *b, size_t *n, size_t cap, size_t at, size_t del,
                               const uint8_t *ins, size_t k)
{
    if (*n - del + k > cap)
        return false;
    memmove(b + at + k, b + at + del, *n - at - del);
    if (k)
        memcpy(b + at, ins, k);
    *n = *n - del + k;
    return true;
}

/* Where the fields of b[0..n) start and end, as far as they scan. */
struct spans {
    size_t start[WIRE_SPANS_MAX], end[WIRE_SPANS_MAX];
    struct patron_pb_field f[WIRE_SPANS_MAX];
    size_t n;
};

static inline void scan(const uint8_t *b, size_t n, struct spans *s)
{
    const uint8_t *at = b, *end = b + n;
    s->n = 0;
    while (at < end && s->n < WIRE_SPANS_MAX) {
        const uint8_t *from = at;
        if (patron_pb_unpack_field(&at, end, &s->f[s->n]))
            return;
        s->start[s->n] = (size_t)(from - b);
        s->end[s->n] = (size_t)(at - b);
        s->n++;
    }
}

/* The field numbers wire_rnd_field draws: 1..max mostly, and odd_pct% of
 * the time one of odd[] (0, the message's edges, huge ones). */
struct wire_numbers {
    const uint32_t *odd;
    size_t n_odd;
    unsigned odd_pct;
    uint32_t max;
};

/* A field of any number and wire type (groups and 6, 7 included) with a
 * payload fit for it, sometimes not; written at out, its length returned
 * (at most 11 + 5 + 5 + 200 bytes). */
static inline size_t wire_rnd_field(struct rng *r, uint8_t *out, const struct wire_numbers *nums)
{
    uint8_t *p = out;
    uint32_t number = chance(r, nums->odd_pct) ? nums->odd[rnd_below(r, nums->n_odd)]
                                               : 1 + (uint32_t)rnd_below(r, nums->max);
    unsigned wire =
        chance(r, 90) ? (unsigned[]){0, 1, 2, 5}[rnd_below(r, 4)] : (unsigned)rnd_below(r, 8);
    put_varint(&p, (uint64_t)number << 3 | wire);
    switch (wire) {
    case 0:
        if (chance(r, 10)) { /* 10 or 11 bytes, bits past 64 */
            size_t k = 9 + rnd_below(r, 2);
            for (size_t i = 0; i < k; i++)
                *p++ = (uint8_t)(0x80 | rnd(r));
            *p++ = (uint8_t)(rnd(r) & 0x7f);
        } else {
            put_varint(&p, chance(r, 50) ? rnd_below(r, 300) : rnd(r));
        }
        break;
    case 1:
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)rnd(r);
        break;
    case 5:
        for (int i = 0; i < 4; i++)
            *p++ = (uint8_t)rnd(r);
        break;
    case 2: {
        size_t n = rnd_below(r, chance(r, 10) ? 200 : 12);
        put_varint(&p, n);
        for (size_t i = 0; i < n; i++)
            *p++ = chance(r, 70) ? (uint8_t)('a' + rnd_below(r, 26)) : (uint8_t)rnd(r);
        break;
    }
    default:
        break;
    }
    return (size_t)(p - out);
}

#endif
