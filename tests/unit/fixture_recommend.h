/*
 * Test fixture of the recommender's unit tests (test_recommend*.c): a small
 * world of items, their facts and neighbour lists, a lookup over it, and
 * helpers to build a customer, run the scorer and check its answer. Test
 * code: static inline, so each test file takes what it uses.
 */
#ifndef PATRON_TEST_FIXTURE_RECOMMEND_H
#define PATRON_TEST_FIXTURE_RECOMMEND_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "patron/recommend.h"
#include "patron/strmap.h"

/* ---- a small world: items, their facts and neighbour lists ------------------- */

struct fact {
    const char *item;
    int64_t buyers;
    const char *category;
    bool oos;
    double trend; /* recent purchase lines, decayed */
    bool np;      /* not a product */
    double sold;  /* all-time purchase lines */
};

#define NB_MAX 64
struct world {
    const struct fact *facts;
    size_t n_facts;
    const struct patron_momentum *momentum; /* the request's, or NULL */
    size_t lookups;
    /* neighbour lists by seed item */
    struct {
        const char *item;
        struct patron_reco_neighbour v[NB_MAX];
        size_t n;
    } lists[8];
    size_t n_lists;
};

static inline bool lookup(void *ud, const char *item, size_t len, uint64_t hash,
                          struct patron_reco_item *out)
{
    struct world *w = ud;
    w->lookups++;
    cr_assert_eq(hash, patron_hash64(item, len), "the hash of the item is passed along");
    for (size_t i = 0; i < w->n_facts; i++) {
        const struct fact *f = &w->facts[i];
        if (strlen(f->item) == len && memcmp(f->item, item, len) == 0) {
            *out = (struct patron_reco_item){.buyers = f->buyers,
                                             .category = f->category,
                                             .out_of_stock = f->oos,
                                             .not_a_product = f->np,
                                             .trend = f->trend,
                                             .sold = f->sold};
            return true;
        }
    }
    return false;
}

static inline void add_list(struct world *w, const char *item, const char *spec)
{
    /* spec: "x:3 y:2" (neighbour:count, strongest first) */
    static char store[64][NB_MAX][16];
    static size_t used;
    cr_assert_lt(w->n_lists, PATRON_ARRAY_LEN(w->lists));
    cr_assert_lt(used, PATRON_ARRAY_LEN(store));
    char(*names)[16] = store[used++];
    w->lists[w->n_lists].item = item;
    size_t n = 0;
    const char *p = spec;
    while (*p) {
        double count;
        int consumed;
        cr_assert_eq(sscanf(p, " %15[^:]:%lf%n", names[n], &count, &consumed), 2, "%s", p);
        w->lists[w->n_lists].v[n] = (struct patron_reco_neighbour){names[n], count};
        n++;
        p += consumed;
        while (*p == ' ')
            p++;
    }
    w->lists[w->n_lists].n = n;
    w->n_lists++;
}

static inline struct patron_reco_config defcfg(void)
{
    struct patron_reco_config c;
    patron_reco_config_default(&c);
    return c;
}

/* The defaults with the plain squared cosine as the similarity (asymmetry
 * 0.5, locality 2, no damping): for the tests of what the scorer does with
 * similarities, whose figures are easiest to state with cosines. */
static inline struct patron_reco_config coscfg(void)
{
    struct patron_reco_config c = defcfg();
    c.asymmetry = 0.5;
    c.locality = 2;
    c.history_damping = 0;
    return c;
}

/* Comma-separated item lists (NULL: none) into a profile. */
static inline struct patron_profile customer(const char *bought_csv, const char *cart_csv,
                                             const char *viewed_csv)
{
    struct patron_profile p;
    patron_profile_init(&p, "c1");
    const char *lists[3] = {bought_csv, cart_csv, viewed_csv};
    for (int k = 0; k < 3; k++) {
        for (const char *s = lists[k]; s && *s;) {
            size_t len = strcspn(s, ",");
            char id[PATRON_ID_MAX + 1];
            snprintf(id, sizeof(id), "%.*s", (int)len, s);
            if (k == 0)
                snprintf(p.bought[p.n_bought++], PATRON_ID_MAX + 1, "%s", id);
            else if (k == 1) {
                snprintf(p.cart[p.n_cart].item_id, PATRON_ID_MAX + 1, "%s", id);
                p.cart[p.n_cart++].quantity = 1;
            } else
                snprintf(p.viewed[p.n_viewed++], PATRON_ID_MAX + 1, "%s", id);
            s += len + (s[len] == ',');
        }
    }
    return p;
}

static const struct patron_reco_list *list_of(const struct world *w, const char *item)
{
    static const struct patron_reco_list empty = {NULL, 0};
    for (size_t i = 0; i < w->n_lists; i++)
        if (strcmp(w->lists[i].item, item) == 0) {
            static struct patron_reco_list l;
            l = (struct patron_reco_list){w->lists[i].v, w->lists[i].n};
            return &l;
        }
    return &empty;
}

/* Runs the whole pipeline as the fetcher does: seeds, their lists, scoring. */
static inline struct patron_reco_result run(struct world *w, const struct patron_profile *p,
                                            const struct patron_reco_trending *trending,
                                            size_t n_trending, const char *category, size_t limit,
                                            const struct patron_reco_config *cfg)
{
    struct patron_reco_seed seeds[PATRON_RECO_SEEDS_MAX];
    struct patron_reco_list lists[PATRON_RECO_SEEDS_MAX];
    size_t n = p ? patron_reco_seeds(p, cfg, seeds, PATRON_RECO_SEEDS_MAX) : 0;
    for (size_t i = 0; i < n; i++)
        lists[i] = *list_of(w, seeds[i].item);
    struct patron_reco_request rq = {
        .profile = p,
        .seeds = seeds,
        .n_seeds = n,
        .lists = lists,
        .lookup = lookup,
        .lookup_ud = w,
        .trending = trending,
        .n_trending = n_trending,
        .popular = trending, /* the tables below list them by buyers already */
        .n_popular = n_trending,
        .category = category,
        .limit = limit,
        .momentum = w->momentum,
    };
    struct patron_reco_result r;
    memset(&r, 0x5A, sizeof(r));
    cr_assert_eq(patron_reco_recommend(&rq, cfg, &r), 0);
    return r;
}

/* "a b c" */
static inline void expect_items(const struct patron_reco_result *r, const char *want)
{
    char got[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < r->n; i++)
        len +=
            (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "", r->items[i].item);
    cr_expect_str_eq(got, want);
}

static inline void expect_descending(const struct patron_reco_result *r)
{
    for (size_t i = 1; i < r->n; i++) {
        cr_expect(r->items[i - 1].score > r->items[i].score ||
                      (r->items[i - 1].score == r->items[i].score &&
                       strcmp(r->items[i - 1].item, r->items[i].item) < 0),
                  "order at %zu", i);
    }
}

/* The score of `item` in r; NAN when it is not there. */
static inline double score_of(const struct patron_reco_result *r, const char *item)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].item, item) == 0)
            return r->items[i].score;
    return NAN;
}

/* A shop of the exclusion and filter tests, and of the bad input ones. */
static const struct fact shop[] = {
    {"a", 10, "home", false, 0},     {"b", 10, "home", false, 0},
    {"c", 10, "toys", false, 0},     {"d", 10, "home", true, 0},
    {"e", 10, NULL, false, 0},       {"f", 10, "home", false, 0},
    {"g", 10, "home", false, 0},     {"h", 10, "home", false, 0},
    {"hot", 100, "home", false, 50}, {"oos", 100, "home", true, 40},
    {"toy", 100, "toys", false, 30},
};

#endif
