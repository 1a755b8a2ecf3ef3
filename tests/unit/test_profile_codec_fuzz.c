/*
 * The hand-written profile decoder against the oracle of fixture_profile.h
 * (protobuf-c's unpack, then the checks): random valid profiles, then their
 * encodings mutated (fields repacked, cut, spliced, nested garbage). Both
 * decoders must accept or reject alike and, when both accept, give the same
 * profile.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "fixture_profile.h"
#include "fixture_wire.h"

PATRON_LEAK_CHECKED_SUITE(profile_codec);

/* Valid text of at most max bytes (at least one if required): ASCII mostly,
 * some 2-, 3- and 4-byte UTF-8. */
static void rnd_text(struct rng *r, char *dst, size_t max, bool required)
{
    static const char *const glyphs[] = {
        "a", "Z", "0", "-", "_", " ", "/", "~", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t want = rnd_below(r, 4) == 0 ? max : rnd_below(r, max + 1);
    if (required && want == 0)
        want = 1;
    size_t n = 0;
    while (n < want) {
        const char *g = glyphs[rnd_below(r, PATRON_ARRAY_LEN(glyphs))];
        size_t gl = strlen(g);
        if (n + gl > max || n + gl > want) {
            g = "x";
            gl = 1;
        }
        memcpy(dst + n, g, gl);
        n += gl;
    }
    dst[n] = '\0';
}

static int64_t rnd_i64(struct rng *r)
{
    return wire_rnd_i64(r, FX_T0);
}

static double rnd_score(struct rng *r)
{
    /* no -0.0: both packers leave it out as zero (wire_edge_case_values
     * decodes one written by hand) */
    static const double specials[] = {0.0, 1e-300, -1e300, 0.5, 1.0 / 3.0, 4.9e-324};
    if (chance(r, 30))
        return specials[rnd_below(r, PATRON_ARRAY_LEN(specials))];
    return (double)(int64_t)rnd(r) / 1e12;
}

/* A random profile within every invariant decode checks. Sizes lean small
 * (the mutation loop's speed) with a share of full lists. */
static void rnd_profile(struct rng *r, struct patron_profile *p)
{
    char id[PATRON_ID_MAX + 1];
    rnd_text(r, id, PATRON_ID_MAX, true);
    bool visitor = chance(r, 15);
    if (visitor)
        patron_profile_init_visitor(p, id);
    else
        patron_profile_init(p, id);
    if (visitor && chance(r, 50)) {
        rnd_text(r, p->merged_into, PATRON_ID_MAX, true);
        p->merged_partition = (int32_t)rnd(r);
    }
    bool big = chance(r, 10);
    p->orders = rnd_i64(r);
    p->net_spend_cents = rnd_i64(r);
    p->points = rnd_i64(r);
    p->reviews = rnd_i64(r);
    p->refunds = rnd_i64(r);
    p->first_seen_ms = rnd_i64(r);
    p->last_seen_ms = rnd_i64(r);
    p->first_purchase_ms = rnd_i64(r);
    p->last_purchase_ms = rnd_i64(r);
    p->last_event_ms = rnd_i64(r);
    p->cart_updated_ms = rnd_i64(r);

    p->n_months = rnd_below(r, PATRON_PROFILE_MONTHS + 1);
    int32_t month = (int32_t)rnd_below(r, 30000) - 5000;
    for (size_t i = 0; i < p->n_months; i++) {
        p->months[i].month = month;
        p->months[i].cents = rnd_i64(r);
        month += 1 + (int32_t)rnd_below(r, 3);
    }
    p->n_categories = rnd_below(r, PATRON_PROFILE_CATEGORIES_MAX + 1);
    for (size_t i = 0; i < p->n_categories; i++) {
        rnd_text(r, p->categories[i].category, PATRON_ID_MAX, true);
        p->categories[i].score = rnd_score(r);
        p->categories[i].updated_ms = rnd_i64(r);
    }
    p->n_viewed = rnd_below(r, PATRON_PROFILE_VIEWED_MAX + 1);
    for (size_t i = 0; i < p->n_viewed; i++)
        rnd_text(r, p->viewed[i], big ? PATRON_ID_MAX : 12, true);
    p->n_bought = big ? PATRON_PROFILE_BOUGHT_MAX : rnd_below(r, 20);
    for (size_t i = 0; i < p->n_bought; i++)
        rnd_text(r, p->bought[i], big ? PATRON_ID_MAX : 12, true);
    p->n_cart = big ? PATRON_PROFILE_CART_MAX : rnd_below(r, 5);
    for (size_t i = 0; i < p->n_cart; i++) {
        rnd_text(r, p->cart[i].item_id, 12, true);
        p->cart[i].quantity = chance(r, 10) ? INT32_MAX : 1 + (int32_t)rnd_below(r, 20);
    }
    p->consent_sms = chance(r, 50);
    p->consent_push = chance(r, 50);
    p->consent_email = chance(r, 50);
    rnd_text(r, p->time_zone, PATRON_PROFILE_TIME_ZONE_MAX, false);
    rnd_text(r, p->locale, PATRON_PROFILE_LOCALE_MAX, false);
    rnd_text(r, p->birthday, PATRON_PROFILE_BIRTHDAY_LEN, false);
    rnd_text(r, p->country, PATRON_PROFILE_COUNTRY_MAX, false);
    p->n_event_ids = big ? PATRON_PROFILE_EVENT_IDS_MAX : rnd_below(r, 40);
    for (size_t i = 0; i < p->n_event_ids; i++) {
        p->event_ids[i] = rnd(r);
        p->event_ms[i] = chance(r, 10) ? rnd_i64(r) : (int64_t)rnd_below(r, 1u << 30) * 1000;
    }
    p->event_ids_floor_ms = chance(r, 50) ? 0 : rnd_i64(r);
    p->n_counted = big ? PATRON_PROFILE_COUNTED_MAX / 8 : (chance(r, 50) ? 0 : rnd_below(r, 30));
    uint64_t e = rnd_below(r, 1000);
    for (size_t i = 0; i < p->n_counted; i++) {
        p->counted[i] = e;
        e += 1 + rnd(r) % (UINT64_C(1) << 50);
    }
    p->counted_floor_month = chance(r, 70) ? 0 : (int32_t)rnd_below(r, 30000);
    for (int i = 0; i < 3; i++)
        p->consent_ms[i] = chance(r, 50) ? 0 : rnd_i64(r);
    p->customer_ms = chance(r, 50) ? 0 : rnd_i64(r);
    p->erased_at_ms = chance(r, 80) ? 0 : rnd_i64(r);
    p->n_marks = chance(r, 30) ? 0 : 1 + rnd_below(r, PATRON_PROFILE_MARKS_MAX);
    for (size_t i = 0; i < p->n_marks; i++)
        p->marks[i] = (struct patron_profile_mark){(int32_t)rnd(r), rnd_i64(r)};
    p->n_aliases = visitor || chance(r, 70) ? 0 : rnd_below(r, PATRON_PROFILE_ALIASES_MAX + 1);
    for (size_t i = 0; i < p->n_aliases; i++) {
        struct patron_profile_alias *a = &p->aliases[i];
        snprintf(a->anonymous_id, sizeof(a->anonymous_id), "anon-%zu-%u", i, (unsigned)rnd(r));
        a->merged_at_ms = rnd_i64(r);
        a->floor_ms = chance(r, 80) ? 0 : rnd_i64(r);
        a->n_marks = rnd_below(r, PATRON_PROFILE_MARKS_MAX + 1);
        for (size_t k = 0; k < a->n_marks; k++)
            a->marks[k] = (struct patron_profile_mark){(int32_t)rnd(r), rnd_i64(r)};
        a->viewed = (int64_t)rnd_below(r, 11);
        a->cart_lines = (int64_t)rnd_below(r, 33);
        a->orders = rnd_i64(r);
    }
    p->erased = chance(r, 10);
    p->n_bought_earlier =
        big ? PATRON_PROFILE_BOUGHT_EARLIER_MAX : (chance(r, 50) ? 0 : rnd_below(r, 40));
    uint32_t h = (uint32_t)rnd_below(r, 1000);
    for (size_t i = 0; i < p->n_bought_earlier; i++) {
        p->bought_earlier[i] = h;
        h += 1 + (uint32_t)rnd_below(r, 4000000);
    }
}

Test(profile_codec, random_profiles_decode_as_protobuf_c_does)
{
    struct rng r = {0x9E3779B97F4A7C15ULL};
    struct oracle *o = oracle_new();
    struct patron_profile *p = malloc(sizeof(*p));
    uint8_t *buf = malloc(PATRON_PROFILE_ENCODED_MAX);
    cr_assert(p && buf);
    char why[256];
    for (int round = 0; round < 5000; round++) {
        rnd_profile(&r, p);
        size_t len;
        cr_assert_eq(patron_profile_encode_into(p, buf, PATRON_PROFILE_ENCODED_MAX, &len), 0);
        int rc;
        cr_assert(decoders_agree(o, buf, len, &rc, why, sizeof(why)), "round %d: %s", round, why);
        cr_assert_eq(rc, 0, "round %d: a valid profile was refused", round);
        cr_assert(same_profile(&o->got, p, why, sizeof(why)), "round %d: %s", round, why);
    }
    free(buf);
    free(p);
    free(o);
}

/* ---- mutations ---- */

#define MUT_CAP (PATRON_PROFILE_ENCODED_MAX / 2)

struct mbuf {
    uint8_t b[MUT_CAP];
    size_t n;
};

/* Replaces bytes [at, at + del) of m with ins[0..n); false if it would not fit. */
static bool splice(struct mbuf *m, size_t at, size_t del, const uint8_t *ins, size_t n)
{
    return wire_splice(m->b, &m->n, MUT_CAP, at, del, ins, n);
}

static const uint32_t odd_numbers[] = {0, 29, 30, 99, 1000, 1u << 28, UINT32_MAX};
static const struct wire_numbers profile_numbers = {odd_numbers, PATRON_ARRAY_LEN(odd_numbers), 50,
                                                    28};

static size_t rnd_field(struct rng *r, uint8_t *out)
{
    return wire_rnd_field(r, out, &profile_numbers);
}

/* A sub-message-shaped LEN field: a few inner fields, mostly the right
 * wire types of months, categories, cart lines and sources. */
static size_t rnd_nested(struct rng *r, uint8_t *out)
{
    static const uint32_t outer[] = {9, 10, 13, 22};
    uint8_t inner[1024], *q = inner;
    size_t k = rnd_below(r, 4);
    for (size_t i = 0; i < k; i++) {
        unsigned number = 1 + (unsigned)rnd_below(r, 4);
        if (chance(r, 20)) {
            q += rnd_field(r, q);
            continue;
        }
        if (number == 1 && chance(r, 50)) {
            *q++ = 0x0a;
            size_t n = rnd_below(r, 70);
            *q++ = (uint8_t)n;
            for (size_t j = 0; j < n; j++)
                *q++ = chance(r, 95) ? (uint8_t)('a' + rnd_below(r, 26)) : (uint8_t)rnd(r);
        } else if (number == 2 && chance(r, 50)) {
            *q++ = 0x11;
            double d = rnd_score(r);
            memcpy(q, &d, 8);
            q += 8;
        } else {
            put_varint(&q, (uint64_t)number << 3);
            put_varint(&q, chance(r, 30) ? rnd(r) : rnd_below(r, 40000));
        }
    }
    uint8_t *p = out;
    put_varint(&p, (uint64_t)outer[rnd_below(r, PATRON_ARRAY_LEN(outer))] << 3 | 2);
    put_varint(&p, (uint64_t)(q - inner));
    memcpy(p, inner, (size_t)(q - inner));
    return (size_t)(p - out) + (size_t)(q - inner);
}

/* Rewrites a repeated fixed field: packed to one value per field, or a
 * packed run split in two. */
static void repack(struct rng *r, struct mbuf *m, const struct spans *s, size_t i)
{
    const struct patron_pb_field *f = &s->f[i];
    size_t width = f->number == 21 ? 8 : 4;
    uint8_t out[8 * 1024 + 64], *p = out;
    if (f->wire != PATRON_PB_LEN || f->len % width || f->len > 4096)
        return;
    size_t count = f->len / width;
    if (chance(r, 50)) {
        for (size_t k = 0; k < count; k++) {
            put_varint(&p, (uint64_t)f->number << 3 | (width == 8 ? 1u : 5u));
            memcpy(p, f->data + k * width, width);
            p += width;
        }
    } else {
        size_t cut = rnd_below(r, count + 1);
        put_varint(&p, (uint64_t)f->number << 3 | 2);
        put_varint(&p, cut * width);
        memcpy(p, f->data, cut * width);
        p += cut * width;
        put_varint(&p, (uint64_t)f->number << 3 | 2);
        put_varint(&p, (count - cut) * width);
        memcpy(p, f->data + cut * width, (count - cut) * width);
        p += (count - cut) * width;
    }
    (void)splice(m, s->start[i], s->end[i] - s->start[i], out, (size_t)(p - out));
}

/* Mutates the payload of a LEN field in place and fixes its length. */
static void mutate_inside(struct rng *r, struct mbuf *m, const struct spans *s, size_t i)
{
    const struct patron_pb_field *f = &s->f[i];
    if (f->wire != PATRON_PB_LEN || f->len > 1024)
        return;
    uint8_t inner[2048], out[2100], *p = out;
    size_t n = f->len;
    memcpy(inner, f->data, n);
    switch (rnd_below(r, 4)) {
    case 0:
        if (n)
            inner[rnd_below(r, n)] ^= (uint8_t)(1u << rnd_below(r, 8));
        break;
    case 1:
        if (n)
            inner[rnd_below(r, n)] = chance(r, 50) ? 0 : (uint8_t)rnd(r);
        break;
    case 2:
        n += rnd_field(r, inner + n);
        break;
    default:
        if (n)
            n = rnd_below(r, n);
        break;
    }
    put_varint(&p, (uint64_t)f->number << 3 | 2);
    put_varint(&p, n);
    memcpy(p, inner, n);
    p += n;
    (void)splice(m, s->start[i], s->end[i] - s->start[i], out, (size_t)(p - out));
}

static void mutate(struct rng *r, struct mbuf *m, struct spans *spans)
{
    uint8_t tmp[4096];
    scan(m->b, m->n, spans);
    const struct spans *s = spans;
    size_t i = rnd_below(r, s->n); /* a field, when there are any */
    switch (rnd_below(r, 14)) {
    case 0: /* flip a bit */
        if (m->n)
            m->b[rnd_below(r, m->n)] ^= (uint8_t)(1u << rnd_below(r, 8));
        break;
    case 1: /* overwrite a byte */
        if (m->n)
            m->b[rnd_below(r, m->n)] = (uint8_t)rnd(r);
        break;
    case 2: { /* insert bytes */
        size_t n = 1 + rnd_below(r, 8);
        for (size_t k = 0; k < n; k++)
            tmp[k] = (uint8_t)rnd(r);
        (void)splice(m, rnd_below(r, m->n + 1), 0, tmp, n);
        break;
    }
    case 3: { /* delete bytes */
        size_t at = rnd_below(r, m->n + 1), n = rnd_below(r, 9);
        (void)splice(m, at, at + n > m->n ? m->n - at : n, NULL, 0);
        break;
    }
    case 4: /* truncate */
        m->n = rnd_below(r, m->n + 1);
        break;
    case 5: /* a field of any kind, at the end or between two */
    case 6:
        (void)splice(m, chance(r, 50) || !s->n ? m->n : s->start[i], 0, tmp, rnd_field(r, tmp));
        break;
    case 7: /* a field twice */
        if (s->n && s->end[i] - s->start[i] <= sizeof(tmp)) {
            memcpy(tmp, m->b + s->start[i], s->end[i] - s->start[i]);
            size_t to = chance(r, 50) ? m->n : s->start[rnd_below(r, s->n)];
            (void)splice(m, to, 0, tmp, s->end[i] - s->start[i]);
        }
        break;
    case 8: /* a field with another wire type */
        if (s->n)
            m->b[s->start[i]] = (uint8_t)((m->b[s->start[i]] & ~7u) | rnd_below(r, 8));
        break;
    case 9: /* a field gone */
        if (s->n)
            (void)splice(m, s->start[i], s->end[i] - s->start[i], NULL, 0);
        break;
    case 10: /* two fields swapped */
        if (s->n > 1) {
            size_t j = rnd_below(r, s->n);
            if (j < i) {
                size_t t = i;
                i = j;
                j = t;
            }
            size_t li = s->end[i] - s->start[i], lj = s->end[j] - s->start[j];
            if (i != j && li + lj <= sizeof(tmp)) {
                memcpy(tmp, m->b + s->start[j], lj);
                memcpy(tmp + lj, m->b + s->start[i], li);
                (void)splice(m, s->start[j], lj, tmp + lj, li);
                (void)splice(m, s->start[i], li, tmp, lj);
            }
        }
        break;
    case 11: /* packed vs unpacked */
        for (size_t k = 0; k < s->n; k++)
            if (s->f[k].number == 21 || s->f[k].number == 28) {
                repack(r, m, s, k);
                break;
            }
        break;
    case 12: /* inside a sub-message or string */
        if (s->n)
            mutate_inside(r, m, s, i);
        break;
    default: /* a sub-message of our shapes */
        (void)splice(m, chance(r, 50) || !s->n ? m->n : s->start[i], 0, tmp, rnd_nested(r, tmp));
        break;
    }
}

Test(profile_codec, mutated_encodings_decode_as_protobuf_c_does)
{
    struct rng r = {0xD1B54A32D192ED03ULL};
    struct fuzz {
        struct oracle o;
        struct patron_profile p;
        struct mbuf base, m;
        struct spans spans;
    } *z = malloc(sizeof(*z));
    cr_assert_not_null(z);
    char why[256], hex[1200];
    size_t accepted = 0, rounds = 0;
    for (int b = 0; b < 420; b++) {
        rnd_profile(&r, &z->p);
        cr_assert_eq(patron_profile_encode_into(&z->p, z->base.b, MUT_CAP, &z->base.n), 0);
        if (z->base.n > 4096 && chance(&r, 80))
            continue; /* full profiles: a few, they are slow through protobuf-c */
        for (int k = 0; k < 300; k++, rounds++) {
            memcpy(z->m.b, z->base.b, z->base.n);
            z->m.n = z->base.n;
            size_t n = 1 + rnd_below(&r, 3);
            for (size_t j = 0; j < n; j++)
                mutate(&r, &z->m, &z->spans);
            int rc;
            if (!decoders_agree(&z->o, z->m.b, z->m.n, &rc, why, sizeof(why))) {
                hexdump(hex, sizeof(hex), z->m.b, z->m.n);
                cr_assert_fail("profile %d mutation %d: %s\n%zu bytes: %s", b, k, why, z->m.n, hex);
            }
            accepted += rc == 0;
        }
    }
    free(z);
    cr_log_info("%zu mutations, %zu accepted", rounds, accepted);
    cr_expect_geq(rounds, 100000);
    /* both outcomes well represented, or the mutations are too tame or too wild */
    cr_expect_gt(accepted, rounds / 10, "%zu of %zu accepted", accepted, rounds);
    cr_expect_lt(accepted, rounds * 9 / 10, "%zu of %zu accepted", accepted, rounds);
}
