/*
 * Hash slots of Redis Cluster: CRC16 (XMODEM) and the hash-tag rules, with
 * the vectors of the cluster specification.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/keys.h"

PATRON_LEAK_CHECKED_SUITE(crc16);
PATRON_LEAK_CHECKED_SUITE(hash_slot);

static unsigned slot_of(const char *key)
{
    return patron_key_slot(key, strlen(key));
}

struct crc_case {
    const char *data;
    uint16_t crc;
};

Test(crc16, known_vectors)
{
    static const struct crc_case cases[] = {
        {"123456789", 0x31C3}, /* the specification's check value */
        {"", 0x0000},          {"foo", 0xAF96},     {"bar", 0x93C5},
        {"hello", 0xC362},     {"somekey", 0x6B32},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        uint16_t got = patron_crc16(cases[i].data, strlen(cases[i].data));
        cr_expect_eq(got, cases[i].crc, "crc16(\"%s\") = 0x%04X, want 0x%04X", cases[i].data, got,
                     cases[i].crc);
    }
}

/* Every byte value goes through the table-free loop: a single flipped bit
 * in any position must change the CRC (it detects all 1-bit errors). */
Test(crc16, single_bit_flips_change_it)
{
    unsigned char buf[32];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    uint16_t base = patron_crc16(buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++) {
        for (int b = 0; b < 8; b++) {
            buf[i] ^= (unsigned char)(1u << b);
            cr_assert_neq(patron_crc16(buf, sizeof buf), base, "byte %zu bit %d", i, b);
            buf[i] ^= (unsigned char)(1u << b);
        }
    }
}

struct slot_case {
    const char *key;
    unsigned slot;
};

Test(hash_slot, known_slots)
{
    static const struct slot_case cases[] = {
        {"123456789", 0x31C3 % 16384}, /* 12739 */
        {"foo", 12182},
        {"bar", 5061},
        {"hello", 866},
        {"somekey", 11058},
        {"", 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++)
        cr_expect_eq(slot_of(cases[i].key), cases[i].slot, "slot(\"%s\") = %u, want %u",
                     cases[i].key, slot_of(cases[i].key), cases[i].slot);
}

/* key, and the bytes the specification says are hashed for it. */
struct tag_case {
    const char *key;
    const char *hashed;
};

Test(hash_slot, hash_tag_rules)
{
    static const struct tag_case cases[] = {
        {"{user1000}.following", "user1000"},
        {"{user1000}.followers", "user1000"},
        {"foo{}{bar}", "foo{}{bar}"}, /* first tag empty: the whole key */
        {"foo{{bar}}zap", "{bar"},    /* from the first '{' to the next '}' */
        {"foo{bar}{zap}", "bar"},     /* only the first tag counts */
        {"{}", "{}"},
        {"{", "{"},
        {"}", "}"},
        {"}{a}", "a"},
        {"a{b", "a{b"}, /* no closing brace */
        {"{a}", "a"},
        {"x{y}", "y"},
        {"{c:42}:timers", "c:42"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        unsigned want = patron_crc16(cases[i].hashed, strlen(cases[i].hashed)) % PATRON_KEY_SLOTS;
        cr_expect_eq(slot_of(cases[i].key), want, "slot(\"%s\") = %u, want crc16(\"%s\") = %u",
                     cases[i].key, slot_of(cases[i].key), cases[i].hashed, want);
    }
    cr_expect_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    cr_expect_neq(slot_of("foo{}{bar}"), slot_of("bar"));
}

/* Patron's keys: everything of one customer, or of the item aggregates,
 * lands in one slot (the design that makes scripts cluster-safe). */
Test(hash_slot, patron_keys_share_slots)
{
    char a[PATRON_KEY_MAX], b[PATRON_KEY_MAX];
    cr_assert_gt(patron_key_customer(a, sizeof a, "C17850", 6), 0);
    cr_assert_gt(patron_key_customer_sub(b, sizeof b, "C17850", 6, "timers"), 0);
    cr_expect_eq(slot_of(a), slot_of(b), "%s vs %s", a, b);
    cr_expect_eq(slot_of(PATRON_KEY_ITEMS_POP), slot_of(PATRON_KEY_ITEMS_TREND));
    cr_expect_eq(slot_of(PATRON_KEY_ITEMS_POP), slot_of(PATRON_KEY_ITEMS_CAT));
    cr_expect_eq(slot_of(PATRON_KEY_ITEMS_POP), slot_of(PATRON_KEY_ITEMS_OOS));
    cr_assert_gt(patron_key_item(a, sizeof a, "85123A", 6), 0);
    cr_assert_gt(patron_key_item_cooc(b, sizeof b, "85123A", 6), 0);
    cr_expect_eq(slot_of(a), slot_of(b), "%s vs %s", a, b);
    /* a trigger partition's daily counters, with its other keys */
    cr_assert_gt(patron_key_trigger(a, sizeof a, 7, "stats"), 0);
    cr_assert_gt(patron_key_trigger_daily(b, sizeof b, 7, 15317), 0);
    cr_expect_str_eq(b, "{tp:7}:daily:2011-12-09");
    cr_expect_eq(slot_of(a), slot_of(b), "%s vs %s", a, b);
    cr_assert_gt(patron_key_trigger(b, sizeof b, 7, "daily"), 0);
    cr_expect_eq(slot_of(a), slot_of(b), "%s vs %s", a, b);
    cr_expect_eq(patron_key_trigger_daily(b, sizeof b, 7, -1), PATRON_EINVAL);
    cr_expect_eq(patron_key_trigger_daily(b, 12, 7, 15317), PATRON_ETOOBIG);
    cr_expect_eq(slot_of(PATRON_KEY_DASHBOARD_HISTORY), slot_of(PATRON_KEY_DASHBOARD_LEASE));
}

/* Garbage: binary keys with NUL bytes and braces, every slot in range, the
 * length honoured (bytes after `len` never read). */
Test(hash_slot, binary_keys_use_len_not_nul)
{
    static const char k1[] = {'a', '\0', 'b'};
    static const char k2[] = {'a', '\0', 'c'};
    cr_expect_neq(patron_key_slot(k1, 3), patron_key_slot(k2, 3));
    cr_expect_eq(patron_key_slot(k1, 1), slot_of("a"));
    /* A tag whose '}' lies beyond len is no tag. */
    cr_expect_eq(patron_key_slot("{ab}", 3), slot_of("{ab"));
    static const char tag_nul[] = {'{', '\0', '}', 'x'};
    cr_expect_eq(patron_key_slot(tag_nul, 4), patron_crc16("", 1) % 16384);
}

Test(hash_slot, every_slot_in_range_and_reached)
{
    /* 2^16 random-ish keys: all slots < 16384, and the spread covers most of
     * them (a broken mask or modulo would collapse it). */
    static unsigned char seen[PATRON_KEY_SLOTS];
    memset(seen, 0, sizeof seen);
    unsigned char key[12];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 65536; i++) {
        for (size_t j = 0; j < sizeof key; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key[j] = (unsigned char)x;
        }
        unsigned s = patron_key_slot(key, sizeof key);
        cr_assert_lt(s, PATRON_KEY_SLOTS);
        seen[s] = 1;
    }
    size_t covered = 0;
    for (size_t i = 0; i < sizeof seen; i++)
        covered += seen[i];
    cr_expect_gt(covered, 16000, "only %zu slots reached", covered);
}

Test(hash_slot, huge_key)
{
    size_t n = 4u << 20;
    char *k = malloc(n);
    cr_assert_not_null(k);
    memset(k, 'z', n);
    k[10] = '{';
    k[n - 1] = '}';
    /* The tag runs to the end: 4 MiB minus 12 bytes of 'z'. */
    unsigned whole_tag = patron_key_slot(k + 11, n - 12);
    cr_expect_eq(patron_key_slot(k, n), whole_tag);
    free(k);
}
