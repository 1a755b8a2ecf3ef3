/* The recommender's bounds: bad requests, garbage neighbours, the limits
 * of what it reads, and similar items. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "fixture_recommend.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(recommend);
PATRON_LEAK_CHECKED_SUITE(similar);

/* ---- bad input ---------------------------------------------------------------------- */

Test(recommend, rejects_bad_requests)
{
    struct world w = {.facts = shop, .n_facts = PATRON_ARRAY_LEN(shop)};
    struct patron_reco_config c = defcfg();
    struct patron_reco_seed seed = {"a", 1};
    struct patron_reco_result r;
    const struct {
        const char *name;
        struct patron_reco_request rq;
        void (*mutate)(struct patron_reco_config *);
    } rows[] = {
        {"limit 0", {.lookup = lookup, .lookup_ud = &w, .limit = 0}, NULL},
        {"limit too big",
         {.lookup = lookup, .lookup_ud = &w, .limit = PATRON_RECO_LIMIT_MAX + 1},
         NULL},
        {"no lookup", {.limit = 10}, NULL},
        {"seeds without lists",
         {.seeds = &seed, .n_seeds = 1, .lookup = lookup, .lookup_ud = &w, .limit = 1},
         NULL},
        {"trending count without list",
         {.n_trending = 3, .lookup = lookup, .lookup_ud = &w, .limit = 1},
         NULL},
        {"popular count without list",
         {.n_popular = 3, .lookup = lookup, .lookup_ud = &w, .limit = 1},
         NULL},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(patron_reco_recommend(&rows[i].rq, &c, &r), PATRON_EINVAL, "%s", rows[i].name);
    struct patron_reco_request ok = {.lookup = lookup, .lookup_ud = &w, .limit = 1};
    const double bad_values[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad_values); i++) {
        struct patron_reco_config b = c;
        b.half_life_items = bad_values[i];
        cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "half-life %g",
                     bad_values[i]);
        b = c;
        b.locality = bad_values[i];
        cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "locality %g",
                     bad_values[i]);
        b = c;
        b.evidence = bad_values[i];
        cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "evidence %g",
                     bad_values[i]);
        if (bad_values[i] != 0) { /* 0 is a valid shrink and popularity */
            b = c;
            b.shrink = bad_values[i];
            cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "shrink %g",
                         bad_values[i]);
            b = c;
            b.popularity = bad_values[i];
            cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "popularity %g",
                         bad_values[i]);
        }
    }
    struct patron_reco_config b = c;
    b.nearest = 0;
    cr_expect_eq(patron_reco_recommend(&ok, &b, &r), PATRON_EINVAL, "nearest 0");
    cr_expect_eq(patron_reco_recommend(&ok, &c, &r), 0, "the control");
}

/* Garbage in the lists (what a corrupt Redis could hold) is skipped. */
Test(recommend, skips_garbage_neighbours)
{
    static const struct fact facts[] = {{"a", 10, "", false, 0}, {"ok", 10, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 2};
    struct patron_reco_neighbour v[] = {{"nan", NAN}, {"neg", -3}, {"zero", 0}, {"inf", INFINITY},
                                        {NULL, 5},    {"", 4},     {"ok", 1}};
    struct patron_reco_seed seeds[] = {{"a", 1}, {"bad", NAN}, {NULL, 1}, {"neg", -1}};
    struct patron_reco_list lists[] = {{v, PATRON_ARRAY_LEN(v)}, {v, 7}, {v, 7}, {v, 7}};
    struct patron_reco_request rq = {.seeds = seeds,
                                     .n_seeds = 4,
                                     .lists = lists,
                                     .lookup = lookup,
                                     .lookup_ud = &w,
                                     .limit = 10};
    struct patron_reco_config c = defcfg();
    struct patron_reco_result r;
    cr_assert_eq(patron_reco_recommend(&rq, &c, &r), 0);
    expect_items(&r, "ok");
    cr_expect(isfinite(r.items[0].score) && r.items[0].score > 0);
}

/* Bounds: only the strongest PATRON_RECO_NEIGHBOURS_MAX of a list count, only
 * PATRON_RECO_SEEDS_MAX seeds, only PATRON_RECO_TRENDING_MAX trending items.
 * Everything scores the same (unknown buyers: cosine 1), and the items beyond
 * the bounds have the smallest ids: read, they would win the ties. */
Test(recommend, reads_no_more_than_its_bounds)
{
    enum { N = (PATRON_RECO_SEEDS_MAX + 6) * PATRON_RECO_NEIGHBOURS_MAX };
    static char names[N][12];
    static struct patron_reco_neighbour v[N];
    static struct patron_reco_trending t[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "n%04d", N - 1 - i);
        v[i] = (struct patron_reco_neighbour){names[i], 1.0};
        t[i] = (struct patron_reco_trending){names[i], 1.0};
    }
    static struct patron_reco_seed seeds[PATRON_RECO_SEEDS_MAX + 5];
    static struct patron_reco_list lists[PATRON_RECO_SEEDS_MAX + 5];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(seeds); i++) {
        seeds[i] = (struct patron_reco_seed){"s", 1};
        /* seed i's strongest neighbours are names[PATRON_RECO_NEIGHBOURS_MAX i ...] */
        lists[i] = (struct patron_reco_list){v + i * PATRON_RECO_NEIGHBOURS_MAX,
                                             2 * PATRON_RECO_NEIGHBOURS_MAX};
    }
    struct world w = {0};
    struct patron_reco_request rq = {.seeds = seeds,
                                     .n_seeds = PATRON_ARRAY_LEN(seeds),
                                     .lists = lists,
                                     .lookup = lookup,
                                     .lookup_ud = &w,
                                     .limit = PATRON_RECO_LIMIT_MAX};
    struct patron_reco_config c = defcfg();
    c.nearest = PATRON_RECO_NEIGHBOURS_MAX; /* what is read, not what is kept */
    struct patron_reco_result r;
    cr_assert_eq(patron_reco_recommend(&rq, &c, &r), 0);
    cr_expect_eq(r.n, PATRON_RECO_LIMIT_MAX);
    size_t reach = PATRON_RECO_SEEDS_MAX * PATRON_RECO_NEIGHBOURS_MAX;
    cr_expect_str_eq(r.items[0].item, names[reach - 1], "the smallest id within the bounds");
    for (size_t i = 0; i < r.n; i++)
        cr_expect_gt(strcmp(r.items[i].item, names[reach]), 0, "%s is beyond the bounds",
                     r.items[i].item);

    /* an unknown customer: the first PATRON_RECO_TRENDING_MAX trending items
     * are out of stock, and those after them are not read */
    static struct fact oos[PATRON_RECO_TRENDING_MAX];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(oos); i++)
        oos[i] = (struct fact){names[i], 1, "", true, 1};
    w = (struct world){.facts = oos, .n_facts = PATRON_ARRAY_LEN(oos)};
    rq = (struct patron_reco_request){
        .lookup = lookup, .lookup_ud = &w, .trending = t, .n_trending = N, .limit = 10};
    cr_assert_eq(patron_reco_recommend(&rq, &c, &r), 0);
    cr_expect_eq(r.n, 0);
    rq.n_trending = PATRON_RECO_TRENDING_MAX + 1;
    w.n_facts--; /* the control: one in stock among those read */
    cr_assert_eq(patron_reco_recommend(&rq, &c, &r), 0);
    cr_expect_eq(r.n, 1);
}

/* A caller that scores often (the fetcher) hands each list's lengths,
 * hashes and resolved facts along and lends a scratch reused from call to
 * call: the answers must be exactly those of the plain path, on requests of
 * every size in any order (the scratch's stamps, never cleared). */
Test(recommend, resolved_facts_and_a_reused_scratch_change_nothing)
{
    enum { ITEMS = 400, LISTS = 40 };
    static char names[ITEMS][8];
    static struct fact facts[ITEMS];
    static const char *cats[] = {"", "toys", "home"};
    uint64_t x = 42; /* xorshift: the same world every run */
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (size_t i = 0; i < ITEMS; i++) {
        snprintf(names[i], sizeof(names[i]), "i%zu", i);
        facts[i] = (struct fact){names[i],        (int64_t)(RND() % 50), cats[RND() % 3],
                                 RND() % 10 == 0, (double)(RND() % 100), RND() % 25 == 0};
    }
    struct world w = {.facts = facts, .n_facts = ITEMS - 20}; /* the last 20: unknown */
    static struct patron_reco_neighbour plain[LISTS][PATRON_RECO_NEIGHBOURS_MAX];
    static struct patron_reco_neighbour carried[LISTS][PATRON_RECO_NEIGHBOURS_MAX];
    static struct patron_reco_fact resolved[LISTS][PATRON_RECO_NEIGHBOURS_MAX];
    size_t len[LISTS];
    for (size_t l = 0; l < LISTS; l++) {
        len[l] = RND() % PATRON_RECO_NEIGHBOURS_MAX + 1;
        for (size_t j = 0; j < len[l]; j++) {
            const char *id = names[RND() % ITEMS];
            double count = (double)(len[l] - j) + (double)(RND() % 3);
            plain[l][j] = (struct patron_reco_neighbour){id, count};
            carried[l][j] = (struct patron_reco_neighbour){id, count, (uint32_t)strlen(id),
                                                           patron_hash64(id, strlen(id))};
            resolved[l][j].known =
                lookup(&w, id, strlen(id), carried[l][j].hash, &resolved[l][j].item);
        }
    }
    static struct patron_reco_trending trending[60];
    for (size_t i = 0; i < PATRON_ARRAY_LEN(trending); i++)
        trending[i] =
            (struct patron_reco_trending){names[i * 3], 100.0 - (double)i, (int64_t)(60 - i)};
    struct patron_reco_scratch *scratch = patron_reco_scratch_new();
    struct patron_reco_config cfg = defcfg();
    for (int round = 0; round < 300; round++) {
        size_t n_seeds = round % 7 == 0 ? 0 : RND() % PATRON_RECO_SEEDS_MAX + 1;
        if (round % 5 == 1)
            n_seeds = RND() % 3 + 1; /* small after large: stale slots of bigger tables */
        if (n_seeds > LISTS)
            n_seeds = LISTS;
        struct patron_reco_seed seeds[LISTS];
        struct patron_reco_list a[LISTS], b[LISTS];
        for (size_t i = 0; i < n_seeds; i++) {
            size_t l = RND() % LISTS;
            seeds[i] = (struct patron_reco_seed){names[RND() % ITEMS], 1.0 / (double)(i + 1)};
            a[i] = (struct patron_reco_list){plain[l], len[l], NULL};
            b[i] = (struct patron_reco_list){carried[l], len[l], resolved[l]};
        }
        char bought[12];
        snprintf(bought, sizeof(bought), "%s", names[RND() % ITEMS]);
        struct patron_profile p = customer(bought, NULL, NULL);
        cfg.trend_exponent = round % 3 == 0 ? 1.0 : 0.0;
        struct patron_reco_request rq = {
            .profile = round % 11 == 0 ? NULL : &p,
            .seeds = seeds,
            .n_seeds = n_seeds,
            .lists = a,
            .lookup = lookup,
            .lookup_ud = &w,
            .trending = trending,
            .n_trending = PATRON_ARRAY_LEN(trending),
            .popular = trending,
            .n_popular = PATRON_ARRAY_LEN(trending),
            .category = round % 4 == 0 ? "toys" : NULL,
            .limit = RND() % PATRON_RECO_LIMIT_MAX + 1,
        };
        struct patron_reco_result ra, rb;
        cr_assert_eq(patron_reco_recommend(&rq, &cfg, &ra), 0);
        rq.lists = b;
        rq.scratch = scratch;
        cr_assert_eq(patron_reco_recommend(&rq, &cfg, &rb), 0);
        cr_assert_eq(ra.n, rb.n, "round %d", round);
        cr_assert_eq(ra.strategy, rb.strategy, "round %d", round);
        for (size_t i = 0; i < ra.n; i++) {
            cr_assert_str_eq(ra.items[i].item, rb.items[i].item, "round %d, rank %zu", round, i);
            cr_assert_eq(ra.items[i].score, rb.items[i].score, "round %d, rank %zu", round, i);
        }
    }
#undef RND
    /* facts handed along are what counts: the lookup is not asked about
     * the neighbours, and a fact that says "out of stock" is obeyed */
    struct patron_reco_neighbour v[] = {{"i1", 5, 2, patron_hash64("i1", 2)},
                                        {"i2", 4, 2, patron_hash64("i2", 2)}};
    struct patron_reco_fact fa[] = {{{.buyers = 5}, true},
                                    {{.buyers = 4, .out_of_stock = true}, true}};
    struct patron_reco_list l = {v, 2, fa};
    struct patron_reco_seed seed = {"i0", 1};
    struct fact in_stock[] = {{"i0", 9, "", false, 0, false}, {"i2", 4, "", false, 0, false}};
    w = (struct world){.facts = in_stock, .n_facts = 2};
    struct patron_reco_request rq = {.seeds = &seed,
                                     .n_seeds = 1,
                                     .lists = &l,
                                     .lookup = lookup,
                                     .lookup_ud = &w,
                                     .limit = 10,
                                     .scratch = scratch};
    struct patron_reco_result r;
    cr_assert_eq(patron_reco_recommend(&rq, &cfg, &r), 0);
    expect_items(&r, "i1");
    cr_expect_eq(w.lookups, 1, "only the history item was looked up");
    patron_reco_scratch_free(scratch);
}

/* ---- similar items ------------------------------------------------------------------- */

Test(similar, ranks_neighbours_by_cosine)
{
    static const struct fact facts[] = {
        {"a", 16, "", false, 0}, {"b", 4, "", false, 0}, {"c", 64, "", false, 0},
        {"d", 4, "", true, 0},   {"e", 1, "", false, 0},
    };
    struct world w = {.facts = facts, .n_facts = 5};
    /* counts: b 4 -> 4/sqrt(16*4)=0.5; c 8 -> 8/32=0.25; d oos; e 3 > its
     * buyers: capped -> 3/sqrt(16*3); a itself; unknown u 2 -> 2/sqrt(16*2);
     * b again: the first counts */
    struct patron_reco_neighbour v[] = {{"c", 8}, {"b", 4}, {"e", 3}, {"d", 3},
                                        {"a", 9}, {"u", 2}, {"b", 1}};
    struct patron_reco_list l = {v, PATRON_ARRAY_LEN(v)};
    struct patron_reco_result r;
    cr_assert_eq(patron_reco_similar("a", &l, lookup, &w, 10, &r), 0);
    expect_items(&r, "b e u c");
    cr_expect_float_eq(r.items[0].score, 0.5, 1e-12);
    cr_expect_float_eq(r.items[1].score, 3 / sqrt(48), 1e-12);
    cr_expect_float_eq(r.items[2].score, 2 / sqrt(32), 1e-12);
    cr_expect_float_eq(r.items[3].score, 0.25, 1e-12);
    for (size_t i = 0; i < r.n; i++)
        cr_expect(r.items[i].score > 0 && r.items[i].score <= 1);
    cr_assert_eq(patron_reco_similar("a", &l, lookup, &w, 2, &r), 0);
    expect_items(&r, "b e");
    struct patron_reco_list none = {NULL, 0};
    cr_assert_eq(patron_reco_similar("a", &none, lookup, &w, 2, &r), 0);
    cr_expect_eq(r.n, 0);
}

Test(similar, rejects_bad_requests)
{
    struct world w = {0};
    struct patron_reco_list l = {NULL, 0}, broken = {NULL, 3};
    struct patron_reco_result r;
    cr_expect_eq(patron_reco_similar("a", &l, lookup, &w, 0, &r), PATRON_EINVAL);
    cr_expect_eq(patron_reco_similar("a", &l, lookup, &w, PATRON_RECO_LIMIT_MAX + 1, &r),
                 PATRON_EINVAL);
    cr_expect_eq(patron_reco_similar("a", &l, NULL, &w, 1, &r), PATRON_EINVAL);
    cr_expect_eq(patron_reco_similar(NULL, &l, lookup, &w, 1, &r), PATRON_EINVAL);
    cr_expect_eq(patron_reco_similar("a", &broken, lookup, &w, 1, &r), PATRON_EINVAL);
}
