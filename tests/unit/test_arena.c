#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "patron/arena.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(arena);

#define CHUNK PATRON_ARENA_CHUNK
#define ALIGN (sizeof(max_align_t))

static size_t rounded(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static bool aligned(const void *p)
{
    return (uintptr_t)p % _Alignof(max_align_t) == 0;
}

/* Every pointer is aligned for any type and its bytes are usable (ASan
 * would catch a write past a chunk). */
Test(arena, alignment_and_room)
{
    static const size_t sizes[] = {0,         1,     7,         15,        16,       17,
                                   31,        100,   4095,      CHUNK / 2, 1,        CHUNK / 2 + 1,
                                   CHUNK - 1, CHUNK, CHUNK + 1, 3,         2 * CHUNK};
    struct patron_arena_spares spares;
    patron_arena_spares_init(&spares, 4);
    struct patron_arena a;
    patron_arena_init(&a, &spares);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sizes); i++) {
        uint8_t *p = patron_arena_alloc(&a, sizes[i]);
        cr_assert_not_null(p, "size %zu", sizes[i]);
        cr_expect(aligned(p), "size %zu: %p not aligned", sizes[i], (void *)p);
        memset(p, 0xA5, sizes[i]);
    }
    patron_arena_free(&a);
    patron_arena_spares_free(&spares);
}

/* Small allocations follow each other in one chunk, each rounded up to the
 * alignment. */
Test(arena, small_allocations_bump)
{
    static const size_t sizes[] = {1, 16, 17, 0, 33, 48, 100, 7};
    struct patron_arena a;
    patron_arena_init(&a, NULL);
    char *prev = patron_arena_alloc(&a, 5);
    size_t prev_n = 5;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(sizes); i++) {
        char *p = patron_arena_alloc(&a, sizes[i]);
        cr_expect_eq(p, prev + rounded(prev_n), "after %zu bytes, %zu bytes", prev_n, sizes[i]);
        prev = p;
        prev_n = sizes[i];
    }
    patron_arena_free(&a);
}

/* A big allocation that does not fit the head goes into a chunk of its
 * own: the small allocations before and after it share the head's room. */
Test(arena, big_one_off_keeps_the_heads_room)
{
    static const size_t bigs[] = {CHUNK / 2 + 1, CHUNK / 2 + ALIGN, CHUNK - 1,
                                  CHUNK,         CHUNK + 1,         3 * CHUNK};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bigs); i++) {
        struct patron_arena a;
        patron_arena_init(&a, NULL);
        (void)patron_arena_alloc(&a, CHUNK / 2); /* what is left is too small for big */
        char *before = patron_arena_alloc(&a, 40);
        struct patron_arena_chunk *head = a.head;
        char *big = patron_arena_alloc(&a, bigs[i]);
        memset(big, 1, bigs[i]);
        char *after = patron_arena_alloc(&a, 40);
        cr_expect_eq(a.head, head, "big %zu: the head changed", bigs[i]);
        cr_expect_eq(after, before + rounded(40), "big %zu: the next small one moved", bigs[i]);
        uintptr_t lo = (uintptr_t)head->data, hi = lo + head->cap, at = (uintptr_t)big;
        cr_expect(at >= hi || at + bigs[i] <= lo, "big %zu: inside the head", bigs[i]);
        patron_arena_free(&a);
    }
}

/* A big allocation that fits the head's room takes it. */
Test(arena, big_that_fits_is_bumped)
{
    struct patron_arena a;
    patron_arena_init(&a, NULL);
    char *first = patron_arena_alloc(&a, 32);
    char *big = patron_arena_alloc(&a, CHUNK - 32);
    cr_expect_eq(big, first + 32);
    cr_expect_eq(a.head->used, CHUNK);
    cr_expect_null(a.head->next);
    patron_arena_free(&a);
}

/* Up to half a chunk that does not fit the head starts a new head. */
Test(arena, half_a_chunk_starts_a_new_head)
{
    struct patron_arena a;
    patron_arena_init(&a, NULL);
    (void)patron_arena_alloc(&a, CHUNK - 64);
    struct patron_arena_chunk *first = a.head;
    char *p = patron_arena_alloc(&a, CHUNK / 2);
    cr_expect_neq(a.head, first);
    cr_expect_eq(p, (char *)a.head->data);
    cr_expect_eq(a.head->next, first);
    patron_arena_free(&a);
}

/* Freed standard chunks go to the spares, which the next arena takes
 * before malloc; oversized ones never do. */
Test(arena, spares_reused)
{
    struct patron_arena_spares spares;
    patron_arena_spares_init(&spares, 8);
    struct patron_arena a;
    patron_arena_init(&a, &spares);
    void *chunks[3];
    for (size_t i = 0; i < 3; i++)
        chunks[i] = patron_arena_alloc(&a, CHUNK); /* a chunk each */
    (void)patron_arena_alloc(&a, CHUNK + 1);       /* its own size: not a spare */
    patron_arena_free(&a);
    cr_assert_eq(spares.count, 3);
    cr_expect_null(a.head);

    struct patron_arena b;
    patron_arena_init(&b, &spares);
    char *p = patron_arena_alloc(&b, 10);
    cr_expect_eq(spares.count, 2, "one spare taken");
    bool reused = false;
    for (size_t i = 0; i < 3; i++)
        reused |= p == chunks[i];
    cr_expect(reused, "the small allocation is at the start of a freed chunk");
    (void)patron_arena_alloc(&b, 2 * CHUNK); /* oversized: malloc, spares untouched */
    cr_expect_eq(spares.count, 2);
    patron_arena_free(&b);
    cr_expect_eq(spares.count, 3);
    patron_arena_spares_free(&spares);
    cr_expect_eq(spares.count, 0);
    cr_expect_null(spares.head);
}

/* The spares list never holds more than its bound. */
Test(arena, spares_bounded)
{
    static const struct {
        size_t max, chunks, want;
    } cases[] = {{0, 3, 0}, {2, 5, 2}, {4, 4, 4}, {8, 3, 3}, {64, 70, 64}};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        struct patron_arena_spares spares;
        patron_arena_spares_init(&spares, cases[i].max);
        struct patron_arena a;
        patron_arena_init(&a, &spares);
        for (size_t k = 0; k < cases[i].chunks; k++)
            (void)patron_arena_alloc(&a, CHUNK);
        patron_arena_free(&a);
        cr_expect_eq(spares.count, cases[i].want, "max %zu, %zu chunks: %zu spares", cases[i].max,
                     cases[i].chunks, spares.count);
        /* a second arena's chunks do not push past the bound either */
        patron_arena_init(&a, &spares);
        for (size_t k = 0; k < cases[i].chunks + 2; k++)
            (void)patron_arena_alloc(&a, CHUNK);
        patron_arena_free(&a);
        cr_expect_eq(spares.count,
                     cases[i].max < cases[i].chunks + 2 ? cases[i].max : cases[i].chunks + 2,
                     "max %zu: second round", cases[i].max);
        patron_arena_spares_free(&spares);
    }
}

/* calloc zeroes even a reused chunk's dirty bytes. */
Test(arena, calloc_zeroes_reused_memory)
{
    struct patron_arena_spares spares;
    patron_arena_spares_init(&spares, 1);
    struct patron_arena a;
    patron_arena_init(&a, &spares);
    memset(patron_arena_alloc(&a, 4096), 0xFF, 4096);
    patron_arena_free(&a);
    cr_assert_eq(spares.count, 1);
    static const struct {
        size_t count, n;
    } cases[] = {{1, 1}, {16, 8}, {100, 24}, {0, 8}, {8, 0}};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        patron_arena_init(&a, &spares);
        uint8_t *p = patron_arena_calloc(&a, cases[i].count, cases[i].n);
        cr_assert_not_null(p);
        for (size_t k = 0; k < cases[i].count * cases[i].n; k++)
            cr_assert_eq(p[k], 0, "%zu x %zu: byte %zu", cases[i].count, cases[i].n, k);
        patron_arena_free(&a);
    }
    patron_arena_spares_free(&spares);
}

/* Without a spares list every chunk goes back to malloc (LeakSanitizer
 * checks), and a freed arena is usable again. */
Test(arena, no_spares_and_reuse)
{
    struct patron_arena a;
    patron_arena_init(&a, NULL);
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < 5; k++)
            memset(patron_arena_alloc(&a, CHUNK / 3), round, CHUNK / 3);
        cr_expect_not_null(a.head);
        patron_arena_free(&a);
        cr_expect_null(a.head);
    }
}

/* What an arena costs is the chunks it holds, used or not: what a caller
 * that bounds its memory (a batch of ingest) adds up. */
Test(arena, bytes_counts_the_chunks_held)
{
    static const struct {
        size_t alloc, bytes_after; /* cumulative */
    } steps[] = {
        {0, CHUNK},              /* the first allocation takes a chunk */
        {100, CHUNK},            /* bumped */
        {CHUNK - 50, 2 * CHUNK}, /* more than the head has left: a chunk behind it */
        {100, 2 * CHUNK},        /* bumped in the head, which kept its room */
        {3 * CHUNK, 5 * CHUNK},  /* larger than a chunk: exactly its size */
        {CHUNK / 2, 5 * CHUNK},  /* the head still has room */
    };
    struct patron_arena_spares spares;
    patron_arena_spares_init(&spares, 4);
    struct patron_arena a;
    patron_arena_init(&a, &spares);
    cr_expect_eq(patron_arena_bytes(&a), 0);
    for (size_t i = 0; i < PATRON_ARRAY_LEN(steps); i++) {
        (void)patron_arena_alloc(&a, steps[i].alloc);
        cr_expect_eq(patron_arena_bytes(&a), steps[i].bytes_after, "step %zu: %zu", i,
                     patron_arena_bytes(&a));
    }
    patron_arena_free(&a);
    cr_expect_eq(patron_arena_bytes(&a), 0);
    (void)patron_arena_alloc(&a, 1); /* from the spares: counted all the same */
    cr_expect_eq(patron_arena_bytes(&a), CHUNK);
    patron_arena_free(&a);
    patron_arena_spares_free(&spares);
}
