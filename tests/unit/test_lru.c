#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "patron/lru.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(lru);

/* Every entry in these tests has a one-byte key and a VALUE_LEN-byte value:
 * UNIT bytes as the cache counts them. */
#define VALUE_LEN 10
#define UNIT (sizeof(struct patron_lru_entry) + 1 + VALUE_LEN)
#define NO_BOUND ((size_t)-1)

/* The keys from the most to the least recent, "" when empty; also checks
 * that the list and the map agree. */
static const char *order(const struct patron_lru *c)
{
    static char out[64];
    size_t n = 0, count = 0;
    const struct patron_lru_entry *newer = NULL;
    for (const struct patron_lru_entry *e = c->newest; e; e = e->older) {
        cr_assert_eq(e->newer, newer, "broken list at %.*s", (int)e->key_len, e->key);
        cr_assert_eq(patron_lru_peek(c, e->key, e->key_len), e);
        if (n + 2 < sizeof(out)) {
            if (n)
                out[n++] = ',';
            out[n++] = e->key[0];
        }
        newer = e;
        count++;
    }
    cr_assert_eq(c->oldest, newer);
    cr_assert_eq(count, c->map.count);
    out[n] = '\0';
    return out;
}

static struct patron_lru_entry *put(struct patron_lru *c, char key, uint64_t pin)
{
    uint8_t value[VALUE_LEN];
    memset(value, key, sizeof(value));
    return patron_lru_put(c, &key, 1, value, sizeof(value), pin);
}

/* One step of a case: put (with a pin), get, peek, unpin, trim, clear. */
struct op {
    char what; /* 'p' 'g' 'k' 'u' 't' 'c' */
    char key;
    uint64_t pin;
};

static const struct lru_case {
    const char *name;
    size_t max_entries, max_units; /* NO_BOUND: none */
    struct op ops[12];
    const char *want; /* most recent first */
} cases[] = {
    {"entry bound evicts the least recent",
     2,
     NO_BOUND,
     {{'p', 'a'}, {'p', 'b'}, {'p', 'c'}},
     "c,b"},
    {"a get refreshes", 2, NO_BOUND, {{'p', 'a'}, {'p', 'b'}, {'g', 'a'}, {'p', 'c'}}, "c,a"},
    {"a peek does not", 2, NO_BOUND, {{'p', 'a'}, {'p', 'b'}, {'k', 'a'}, {'p', 'c'}}, "c,b"},
    {"an overwrite refreshes",
     2,
     NO_BOUND,
     {{'p', 'a'}, {'p', 'b'}, {'p', 'a'}, {'p', 'c'}},
     "c,a"},
    {"byte bound evicts the least recent",
     NO_BOUND,
     2,
     {{'p', 'a'}, {'p', 'b'}, {'p', 'c'}, {'p', 'd'}},
     "d,c"},
    {"within both bounds nothing goes", 3, 3, {{'p', 'a'}, {'p', 'b'}, {'p', 'c'}}, "c,b,a"},
    {"a pinned entry is never evicted",
     1,
     NO_BOUND,
     {{'p', 'a', 1}, {'p', 'b'}, {'p', 'c'}},
     "c,b,a"},
    {"a pinned entry stops eviction behind it",
     2,
     NO_BOUND,
     {{'p', 'a'}, {'p', 'b', 7}, {'p', 'c'}, {'p', 'd'}},
     "d,c,b"},
    {"pinned under the byte bound too",
     NO_BOUND,
     1,
     {{'p', 'a', 3}, {'p', 'b', 3}, {'p', 'c'}},
     "c,b,a"},
    {"unpin then trim evicts", 1, NO_BOUND, {{'p', 'a', 1}, {'p', 'b'}, {'u', 'a', 1}, {'t'}}, "b"},
    {"unpin alone evicts nothing", 1, NO_BOUND, {{'p', 'a', 1}, {'p', 'b'}, {'u', 'a', 1}}, "b,a"},
    {"unpin by an older pin leaves it pinned",
     1,
     NO_BOUND,
     {{'p', 'a', 1}, {'p', 'a', 2}, {'p', 'b'}, {'u', 'a', 1}, {'t'}},
     "b,a"},
    {"unpin by its pin, then the next put evicts",
     1,
     NO_BOUND,
     {{'p', 'a', 1}, {'p', 'a', 2}, {'u', 'a', 2}, {'p', 'b'}},
     "b"},
    {"an overwrite with pin 0 unpins",
     1,
     NO_BOUND,
     {{'p', 'a', 5}, {'p', 'a', 0}, {'p', 'b'}},
     "b"},
    {"a put keeps what it returns, even over a bound", 0, NO_BOUND, {{'p', 'a'}}, "a"},
    {"... and the next put evicts it", 0, NO_BOUND, {{'p', 'a'}, {'p', 'b'}}, "b"},
    {"clear drops pinned entries too", NO_BOUND, NO_BOUND, {{'p', 'a', 1}, {'p', 'b'}, {'c'}}, ""},
    {"usable after clear",
     2,
     NO_BOUND,
     {{'p', 'a'}, {'c'}, {'p', 'b'}, {'p', 'c'}, {'p', 'd'}},
     "d,c"},
};

Test(lru, cases)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct lru_case *tc = &cases[i];
        struct patron_lru c;
        patron_lru_init(&c, tc->max_entries,
                        tc->max_units == NO_BOUND ? NO_BOUND : tc->max_units * UNIT);
        for (size_t k = 0; k < PATRON_ARRAY_LEN(tc->ops) && tc->ops[k].what; k++) {
            const struct op *op = &tc->ops[k];
            struct patron_lru_entry *e;
            switch (op->what) {
            case 'p':
                e = put(&c, op->key, op->pin);
                cr_assert_not_null(e, "%s: step %zu", tc->name, k);
                cr_assert_eq(e->pin, op->pin);
                cr_assert_eq(c.newest, e, "%s: step %zu: a put is the most recent", tc->name, k);
                break;
            case 'g':
                cr_assert_not_null(patron_lru_get(&c, &op->key, 1), "%s: step %zu", tc->name, k);
                break;
            case 'k':
                cr_assert_not_null(patron_lru_peek(&c, &op->key, 1), "%s: step %zu", tc->name, k);
                break;
            case 'u':
                e = patron_lru_peek(&c, &op->key, 1);
                cr_assert_not_null(e, "%s: step %zu", tc->name, k);
                patron_lru_unpin(e, op->pin);
                break;
            case 't':
                patron_lru_trim(&c);
                break;
            case 'c':
                patron_lru_clear(&c);
                cr_assert_eq(c.bytes, 0);
                break;
            }
        }
        cr_expect_str_eq(order(&c), tc->want, "%s", tc->name);
        cr_expect_eq(c.bytes, c.map.count * UNIT, "%s: bytes", tc->name);
        patron_lru_free(&c);
    }
}

Test(lru, get_and_peek_miss)
{
    struct patron_lru c;
    patron_lru_init(&c, 4, NO_BOUND);
    cr_expect_null(patron_lru_get(&c, "a", 1));
    (void)put(&c, 'a', 0);
    cr_expect_null(patron_lru_get(&c, "b", 1));
    cr_expect_null(patron_lru_peek(&c, "ab", 2), "keys compare by length too");
    cr_expect_null(patron_lru_peek(&c, "", 0));
    patron_lru_free(&c);
}

/* The value is a copy; a bigger one grows the entry's room (and the bytes
 * counted), a smaller one reuses it. */
Test(lru, overwrite_with_bigger_and_smaller_values)
{
    static const size_t lens[] = {10, 100, 5, 100, 101, 0, 4000};
    struct patron_lru c;
    patron_lru_init(&c, 8, NO_BOUND);
    size_t cap = 0;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(lens); i++) {
        uint8_t value[4000];
        memset(value, (int)(i + 1), lens[i]);
        struct patron_lru_entry *e = patron_lru_put(&c, "key", 3, value, lens[i], 0);
        if (lens[i] > cap)
            cap = lens[i];
        cr_expect_eq(e->len, lens[i], "step %zu", i);
        cr_expect_eq(e->cap, cap, "step %zu", i);
        cr_expect(lens[i] == 0 || memcmp(e->value, value, lens[i]) == 0, "step %zu", i);
        cr_expect_eq(c.bytes, sizeof(struct patron_lru_entry) + 3 + cap, "step %zu", i);
        cr_expect_eq(c.map.count, 1);
        value[0] ^= 0xFF; /* the cache kept a copy */
        cr_expect(lens[i] == 0 || e->value[0] == (uint8_t)(i + 1), "step %zu", i);
    }
    patron_lru_free(&c);
}

/* A growing value can push the cache over its byte bound: the oldest go. */
Test(lru, growing_value_evicts_the_oldest)
{
    struct patron_lru c;
    patron_lru_init(&c, NO_BOUND, 3 * UNIT);
    (void)put(&c, 'a', 0);
    (void)put(&c, 'b', 0);
    (void)put(&c, 'c', 0);
    cr_assert_str_eq(order(&c), "c,b,a");
    uint8_t big[2 * VALUE_LEN] = {0};
    (void)patron_lru_put(&c, "c", 1, big, sizeof(big), 0);
    cr_expect_str_eq(order(&c), "c,b");
    cr_expect_leq(c.bytes, 3 * UNIT);
    patron_lru_free(&c);
}

/* Many keys through a small cache: the last ones stay, in order, and the
 * counts agree with the list. */
Test(lru, many_keys)
{
    static const struct {
        size_t max_entries, keys;
    } sizes[] = {{1, 50}, {100, 10000}, {1000, 999}, {1000, 1001}};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sizes); i++) {
        struct patron_lru c;
        patron_lru_init(&c, sizes[i].max_entries, NO_BOUND);
        char key[16];
        for (size_t k = 0; k < sizes[i].keys; k++) {
            int n = snprintf(key, sizeof(key), "k%zu", k);
            (void)patron_lru_put(&c, key, (size_t)n, (const uint8_t *)key, (size_t)n, 0);
        }
        size_t want = sizes[i].keys < sizes[i].max_entries ? sizes[i].keys : sizes[i].max_entries;
        cr_expect_eq(c.map.count, want, "case %zu", i);
        size_t k = sizes[i].keys, seen = 0;
        for (const struct patron_lru_entry *e = c.newest; e; e = e->older, seen++) {
            int n = snprintf(key, sizeof(key), "k%zu", --k);
            cr_assert(e->key_len == (size_t)n && memcmp(e->key, key, (size_t)n) == 0,
                      "case %zu: %zu-th entry", i, seen);
            cr_assert(e->len == (size_t)n && memcmp(e->value, key, (size_t)n) == 0);
        }
        cr_expect_eq(seen, want);
        patron_lru_free(&c);
    }
}
