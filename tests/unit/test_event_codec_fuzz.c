/* patron_event_unpack against its oracle, protobuf-c 1.4.1's
 * patron__v1__event__unpack followed by the decoder's limits
 * (fixture_event_codec.h): random valid events, then seeded mutations of
 * them, must get the same verdict and, when accepted, the same struct. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_event_codec.h"

PATRON_LEAK_CHECKED_SUITE(event_codec);

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
    size_t per_kind[20] = {0}, over_a_limit = 0;
    for (int round = 0; round < 11000; round++) {
        int kind = kinds[(size_t)round % PATRON_ARRAY_LEN(kinds)];
        const Patron__V1__Event *src = gen_event(&r, g, kind);
        size_t len = pack(src, buf);
        bool accepted;
        cr_assert(decoders_agree(&a, buf, len, &accepted, why, sizeof(why)), "round %d: %s", round,
                  why);
        if (!accepted) { /* a string past its limit: the oracle agreed */
            over_a_limit++;
            continue;
        }
        /* and what was packed is what came out */
        Patron__V1__Event *got = patron_event_unpack(&alloc, buf, len);
        cr_assert_not_null(got);
        cr_assert(same_event(got, src, false, why, sizeof(why)), "round %d: %s", round, why);
        per_kind[kind]++;
    }
    for (size_t i = 0; i < PATRON_ARRAY_LEN(kinds); i++)
        cr_expect_geq(per_kind[kinds[i]], 800, "kind %d", kinds[i]);
    cr_expect_gt(over_a_limit, 0, "the limits were never tried");
    cr_expect_lt(over_a_limit, 11000 / 10, "%zu of 11000 over a limit", over_a_limit);
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
