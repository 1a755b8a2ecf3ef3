#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "fixture_recommend.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(recommend);

/* ---- configuration and history ------------------------------------------------ */

Test(recommend, config_defaults)
{
    struct patron_reco_config c = defcfg();
    cr_expect(c.weight_purchase > c.weight_cart && c.weight_cart > c.weight_view &&
              c.weight_view > 0);
    cr_expect_eq(c.half_life_items, 1000.0);
    cr_expect_eq(c.locality, 1.5);
    cr_expect_eq(c.asymmetry, 0.6);
    cr_expect_eq(c.history_damping, 0.375);
    cr_expect_eq(c.history_prior, 30.0);
    cr_expect_eq(c.trend_exponent, 1.0);
    cr_expect_eq(c.nearest, 15);
    cr_expect_eq(c.shrink, 30.0);
    cr_expect_eq(c.popularity, 1.0);
    cr_expect_eq(c.evidence, 3.0);
    cr_expect_eq(c.thin_count, 8.0);
    cr_expect_str_eq(patron_reco_strategy_name(PATRON_RECO_CF), "cf");
    cr_expect_str_eq(patron_reco_strategy_name(PATRON_RECO_CF_POPULAR), "cf+popular");
    cr_expect_str_eq(patron_reco_strategy_name(PATRON_RECO_POPULAR), "popular");
}

Test(recommend, seeds_weigh_purchase_over_cart_over_view_and_decay_with_position)
{
    struct patron_reco_config c = defcfg();
    c.half_life_items = 32;
    /* the cart is oldest first: k2 is its most recent line */
    struct patron_profile p = customer("b0,b1", "k1,k2", "v0,v1");
    struct patron_reco_seed s[16];
    size_t n = patron_reco_seeds(&p, &c, s, 16);
    cr_assert_eq(n, 6);
    const struct {
        const char *item;
        double weight;
    } want[] = {
        {"b0", 1.0}, {"b1", exp2(-1.0 / 32)},       {"k2", 0.7}, {"k1", 0.7 * exp2(-1.0 / 32)},
        {"v0", 0.4}, {"v1", 0.4 * exp2(-1.0 / 32)},
    };
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(s[i].item, want[i].item, "seed %zu", i);
        cr_expect_float_eq(s[i].weight, want[i].weight, 1e-12, "seed %zu", i);
    }
}

Test(recommend, seeds_keep_an_item_once_in_its_heaviest_role)
{
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("x", "x,y", "y,x");
    struct patron_reco_seed s[16];
    size_t n = patron_reco_seeds(&p, &c, s, 16);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(s[0].item, "x");
    cr_expect_float_eq(s[0].weight, 1.0, 1e-12);
    cr_expect_str_eq(s[1].item, "y");
    cr_expect_float_eq(s[1].weight, 0.7, 1e-12, "the cart beats the view");
}

Test(recommend, seeds_are_bounded)
{
    struct patron_reco_config c = defcfg();
    struct patron_profile p;
    patron_profile_init(&p, "c");
    for (int i = 0; i < PATRON_PROFILE_BOUGHT_MAX; i++)
        snprintf(p.bought[i], sizeof(p.bought[i]), "b%02d", i);
    p.n_bought = PATRON_PROFILE_BOUGHT_MAX;
    for (int i = 0; i < PATRON_PROFILE_VIEWED_MAX; i++)
        snprintf(p.viewed[i], sizeof(p.viewed[i]), "v%02d", i);
    p.n_viewed = PATRON_PROFILE_VIEWED_MAX;
    struct patron_reco_seed s[PATRON_RECO_SEEDS_MAX + 10];
    cr_expect_eq(patron_reco_seeds(&p, &c, s, PATRON_ARRAY_LEN(s)), PATRON_RECO_SEEDS_MAX);
    cr_expect_eq(patron_reco_seeds(&p, &c, s, 3), 3);
    cr_expect_str_eq(s[2].item, "b02");
    /* a corrupt count beyond capacity reads no further than the arrays */
    p.n_bought = 1000;
    cr_expect_eq(patron_reco_seeds(&p, &c, s, PATRON_ARRAY_LEN(s)), PATRON_RECO_SEEDS_MAX);
    p.erased = true;
    cr_expect_eq(patron_reco_seeds(&p, &c, s, PATRON_ARRAY_LEN(s)), 0,
                 "a tombstone has no history");
    cr_expect_eq(patron_reco_seeds(NULL, &c, s, PATRON_ARRAY_LEN(s)), 0);
}

/* ---- exclusions and filters: one table -------------------------------------- */

static const struct patron_reco_trending shop_trending[] = {
    {"hot", 50},
    {"oos", 40},
    {"toy", 30},
    {"a", 1},
};

Test(recommend, exclusions_and_category_filter)
{
    static const struct {
        const char *name;
        const char *bought, *cart;
        const char *category;
        bool earlier_f; /* f bought long ago: only its hash is left */
        size_t limit;
        const char *want;
        enum patron_reco_strategy strategy;
    } rows[] = {
        /* a's neighbours, strongest first: b c d(oos) e(no category) f g h */
        {"nothing excluded but stock", "a", NULL, NULL, false, 6, "b c e f g h", PATRON_RECO_CF},
        {"bought items", "a,b", NULL, NULL, false, 6, "c e f g h hot", PATRON_RECO_CF_POPULAR},
        {"items in the cart", "a", "b,c", NULL, false, 4, "e f g h", PATRON_RECO_CF},
        {"bought long ago", "a", NULL, NULL, true, 4, "b c e g", PATRON_RECO_CF},
        {"category", "a", NULL, "toys", false, 3, "c toy", PATRON_RECO_CF_POPULAR},
        {"unknown category never matches", "a", NULL, "", false, 3, "", PATRON_RECO_POPULAR},
        {"category of nothing", "a", NULL, "garden", false, 5, "", PATRON_RECO_POPULAR},
    };
    struct patron_reco_config c = defcfg();
    c.trend_exponent = 0;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct world w = {.facts = shop, .n_facts = PATRON_ARRAY_LEN(shop)};
        add_list(&w, "a", "b:7 c:6 d:5 e:4 f:3 g:2 h:1");
        add_list(&w, "b", "a:7");
        struct patron_profile p = customer(rows[i].bought, rows[i].cart, NULL);
        if (rows[i].earlier_f) {
            p.bought_earlier[0] = patron_item_hash32("f", 1);
            p.n_bought_earlier = 1;
        }
        struct patron_reco_result r = run(&w, &p, shop_trending, PATRON_ARRAY_LEN(shop_trending),
                                          rows[i].category, rows[i].limit, &c);
        char got[256] = "";
        size_t len = 0;
        for (size_t k = 0; k < r.n; k++)
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", k ? " " : "",
                                    r.items[k].item);
        cr_expect_str_eq(got, rows[i].want, "%s", rows[i].name);
        cr_expect_eq(r.strategy, rows[i].strategy, "%s: strategy %d", rows[i].name, r.strategy);
        expect_descending(&r);
    }
}

/* ---- normalisation, decay, locality, trend, ties --------------------------------- */

/* A best seller co-occurs with everything: its raw count is the highest, but
 * the cosine puts the specific neighbour first. */
Test(recommend, normalisation_keeps_best_sellers_from_drowning_the_rest)
{
    static const struct fact facts[] = {
        {"a", 10, "x", false, 0}, {"best", 1000, "x", false, 0}, {"niche", 8, "x", false, 0}};
    struct world w = {.facts = facts, .n_facts = 3};
    add_list(&w, "a", "best:9 niche:6");
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_config c = defcfg();
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "niche best"); /* the shipped similarity too */
    c = coscfg();
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "niche best");
    /* the squared cosines relative to the best one, times the evidence
     * s / (s + 30) */
    double niche = 36.0 / (10 * 8), best = 81.0 / (10 * 1000);
    cr_expect_float_eq(r.items[0].score, 6.0 / 36, 1e-12);
    cr_expect_float_eq(r.items[1].score, best / niche * 9 / 39, 1e-12);
}

Test(recommend, older_history_counts_less)
{
    static const struct fact facts[] = {{"x", 4, "", false, 0},
                                        {"y", 4, "", false, 0},
                                        {"new_nb", 4, "", false, 0},
                                        {"old_nb", 4, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 4};
    add_list(&w, "x", "new_nb:2");
    add_list(&w, "y", "old_nb:2");
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("x,y", NULL, NULL); /* x is the more recent */
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "new_nb old_nb");
    cr_expect_float_eq(r.items[1].score / r.items[0].score, exp2(-1.0 / c.half_life_items), 1e-12);
    p = customer("y,x", NULL, NULL);
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "old_nb new_nb");
    /* a view is weaker than a purchase whatever its position */
    p = customer("y", NULL, "x");
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "old_nb new_nb");
}

Test(recommend, locality_prefers_one_strong_association_to_several_weak_ones)
{
    /* strong: cos 0.8 from s1; weak: cos 0.5 from s1 and from s2 */
    static const struct fact facts[] = {{"s1", 100, "", false, 0},
                                        {"s2", 100, "", false, 0},
                                        {"strong", 100, "", false, 0},
                                        {"weak", 100, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 4};
    add_list(&w, "s1", "strong:80 weak:50");
    add_list(&w, "s2", "weak:50");
    struct patron_profile p = customer("s1,s2", NULL, NULL);
    struct patron_reco_config c = coscfg();
    c.half_life_items = 1e9; /* equal weights: only locality matters */
    c.trend_exponent = 0;
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "strong weak");
    c.locality = 1;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "weak strong");
}

/* The shipped similarity, figure by figure: an asymmetric cosine
 * (c / (n(a)^0.6 n(b)^0.4))^1.5, each history item damped by
 * (n(a) + 30)^-0.375, a count above a buyer count standing in for it. */
Test(recommend, asymmetric_similarity_and_history_damping)
{
    static const struct fact facts[] = {{"a", 1000, "", false, 0},
                                        {"h", 10, "", false, 0},
                                        {"x", 500, "", false, 0},
                                        {"y", 20, "", false, 0},
                                        {"z", 20, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 5};
    add_list(&w, "a", "x:400");
    add_list(&w, "h", "y:5 z:30"); /* z: 30 co-buyers of 20 buyers (counted twice) */
    struct patron_profile p = customer("a,h", NULL, NULL);
    struct patron_reco_config c = defcfg();
    c.shrink = 0;
    c.popularity = 0;
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    double wa = 1, wh = exp2(-1 / c.half_life_items); /* a is the most recent */
    double x = wa * pow(400 / (pow(1000, 0.6) * pow(500, 0.4)), 1.5) / pow(1030, 0.375);
    double y = wh * pow(5 / (pow(10, 0.6) * pow(20, 0.4)), 1.5) / pow(40, 0.375);
    double z = wh * pow(30 / (pow(30, 0.6) * pow(30, 0.4)), 1.5) / pow(40, 0.375);
    cr_assert(z > y && y > x, "z %g y %g x %g", z, y, x);
    expect_items(&r, "z y x");
    cr_expect_float_eq(score_of(&r, "z"), 1.0, 1e-12);
    cr_expect_float_eq(score_of(&r, "x"), x / z, 1e-12);
    cr_expect_float_eq(score_of(&r, "y"), y / z, 1e-12);

    /* without damping the best seller's strong neighbour rises above y */
    c.history_damping = 0;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    double x0 = x * pow(1030, 0.375), y0 = y * pow(40, 0.375), z0 = z * pow(40, 0.375);
    cr_assert(z0 > x0 && x0 > y0);
    expect_items(&r, "z x y");
    cr_expect_float_eq(score_of(&r, "x"), x0 / z0, 1e-12);
    cr_expect_float_eq(score_of(&r, "y"), y0 / z0, 1e-12);

    /* asymmetry 0.5, locality 2: the squared cosine, z's capped at 1 */
    c = coscfg();
    c.shrink = 0;
    c.popularity = 0;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_expect_float_eq(score_of(&r, "x"), wa * 160000.0 / (1000 * 500) / wh, 1e-12);
    cr_expect_float_eq(score_of(&r, "y"), 25.0 / (10 * 20), 1e-12);
}

Test(recommend, momentum_lifts_what_sells_now_more_than_it_usually_does)
{
    /* equal buyers and similarity; both sold 100 lines in all, q 20 of
     * them lately against the 5 the shop's rate predicts, p 0.5 */
    static const struct fact facts[] = {{"a", 10, "", false, 0, false, 100},
                                        {"p", 10, "", false, 0.5, false, 100},
                                        {"q", 10, "", false, 20, false, 100}};
    struct patron_momentum m = {.alpha = 2, .rate = 0.05};
    struct world w = {.facts = facts, .n_facts = 3, .momentum = &m};
    add_list(&w, "a", "p:5 q:5");
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_config c = defcfg();
    cr_assert_eq(c.trend_exponent, 1.0);
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "q p");
    /* (r + alpha) / (rate * t + alpha): 22 / 7 against 2.5 / 7 */
    cr_expect_float_eq(r.items[0].score / r.items[1].score, 22.0 / 2.5, 1e-9);
    c.trend_exponent = 2;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_expect_float_eq(r.items[0].score / r.items[1].score, (22.0 / 2.5) * (22.0 / 2.5), 1e-9);

    /* off, without a model, or with a model that measured none: a tie, by id */
    c.trend_exponent = 0;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "p q");
    cr_expect_float_eq(r.items[0].score, r.items[1].score, 1e-12);
    c.trend_exponent = 1;
    w.momentum = NULL;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "p q");
    m.alpha = 0;
    w.momentum = &m;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "p q");
    cr_expect_float_eq(r.items[0].score, r.items[1].score, 1e-12);
}

/* A best seller's recent sales are large for its size, not for its time:
 * momentum weighs them against its own all-time sales, so it does not
 * outrank an item selling at its usual rate too. */
Test(recommend, momentum_does_not_favour_best_sellers)
{
    static const struct fact facts[] = {{"a", 100, "", false, 0, false, 1000},
                                        {"big", 1000, "", false, 500, false, 10000},
                                        {"small", 10, "", false, 5, false, 100}};
    struct patron_momentum m = {.alpha = 1, .rate = 0.05};
    struct world w = {.facts = facts, .n_facts = 3, .momentum = &m};
    /* cos(a, big) = 100 / sqrt(100 * 1000), cos(a, small) = 10 / sqrt(100 * 10): equal */
    add_list(&w, "a", "big:100 small:10");
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_config c = coscfg();
    c.shrink = 0;
    c.trend_exponent = 1;
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_assert_eq(r.n, 2);
    cr_expect_float_eq(r.items[0].score, r.items[1].score, 1e-12, "same momentum, a tie");
}

/* Two recent sales of an item sold twice in all are a larger ratio than 40
 * of 200, and much weaker evidence: the prior keeps the thin one near 1. */
Test(recommend, momentum_shrinks_thin_evidence)
{
    static const struct fact facts[] = {{"a", 100, "", false, 0, false, 1000},
                                        {"thin", 10, "", false, 2, false, 2},
                                        {"firm", 10, "", false, 40, false, 200},
                                        {"unknown", 10, "", false, 0, false, 0}};
    struct patron_momentum m = {.alpha = 5, .rate = 0.05};
    struct world w = {.facts = facts, .n_facts = 4, .momentum = &m};
    add_list(&w, "a", "firm:5 thin:5 unknown:5");
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_config c = defcfg();
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "firm thin unknown");
    double firm = (40 + 5) / (10 + 5.0), thin = (2 + 5) / (0.1 + 5);
    cr_expect_float_eq(r.items[1].score / r.items[0].score, thin / firm, 1e-9);
    /* nothing known of its sales: factor 1 */
    cr_expect_float_eq(r.items[2].score / r.items[0].score, 1 / firm, 1e-9);
}

Test(recommend, ties_break_by_item_id)
{
    static const struct fact facts[] = {{"a", 10, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 1};
    add_list(&w, "a", "zz:3 m:3 b:3 c:3");
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_config c = defcfg();
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 3, &c);
    expect_items(&r, "b c m");
    /* popular ties too, whatever order the trending list came in */
    static const struct patron_reco_trending t[] = {{"t3", 2}, {"t1", 2}, {"t2", 2}};
    r = run(&w, NULL, t, 3, NULL, 3, &c);
    expect_items(&r, "t1 t2 t3");
}

/* ---- cold start and thin histories ----------------------------------------------- */

Test(recommend, unknown_customer_gets_trending_items)
{
    struct world w = {.facts = shop, .n_facts = PATRON_ARRAY_LEN(shop)};
    struct patron_reco_config c = defcfg();
    struct patron_reco_result r =
        run(&w, NULL, shop_trending, PATRON_ARRAY_LEN(shop_trending), NULL, 10, &c);
    cr_expect_eq(r.strategy, PATRON_RECO_POPULAR);
    expect_items(&r, "hot toy a"); /* oos left out */
    cr_expect_float_eq(r.items[0].score, 50, 1e-12, "a popular item's score is its trend");
    r = run(&w, NULL, shop_trending, PATRON_ARRAY_LEN(shop_trending), "toys", 10, &c);
    expect_items(&r, "toy");
    r = run(&w, NULL, NULL, 0, NULL, 10, &c);
    cr_expect_eq(r.n, 0, "nothing trending yet: an empty answer");
    cr_expect_eq(r.strategy, PATRON_RECO_POPULAR);
}

Test(recommend, customer_without_neighbours_gets_trending_items_not_bought)
{
    struct world w = {.facts = shop, .n_facts = PATRON_ARRAY_LEN(shop)};
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("hot,lonely", NULL, NULL);
    struct patron_reco_result r =
        run(&w, &p, shop_trending, PATRON_ARRAY_LEN(shop_trending), NULL, 10, &c);
    cr_expect_eq(r.strategy, PATRON_RECO_POPULAR);
    expect_items(&r, "toy a");
}

Test(recommend, thin_cf_is_topped_up_below_every_cf_item)
{
    struct world w = {.facts = shop, .n_facts = PATRON_ARRAY_LEN(shop)};
    add_list(&w, "c", "a:1 toy:1");
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("c", NULL, NULL);
    struct patron_reco_result r =
        run(&w, &p, shop_trending, PATRON_ARRAY_LEN(shop_trending), NULL, 4, &c);
    cr_expect_eq(r.strategy, PATRON_RECO_CF_POPULAR);
    /* a and toy from CF (a first: toy's 100 buyers weigh more than its trend),
     * then hot; no duplicates */
    expect_items(&r, "a toy hot");
    cr_expect_lt(r.items[2].score, r.items[1].score);
    cr_expect_gt(r.items[2].score, 0);
    expect_descending(&r);
    r = run(&w, &p, shop_trending, PATRON_ARRAY_LEN(shop_trending), NULL, 2, &c);
    cr_expect_eq(r.strategy, PATRON_RECO_CF, "enough CF: no top-up");
    expect_items(&r, "a toy");
}

/* ---- not products, nearest neighbours, evidence and popularity ------------------- */

/* Postage and fees: never recommended, from CF or from the trending list, and
 * a history of postage is no taste. */
Test(recommend, not_a_product_is_never_recommended_nor_evidence)
{
    static const struct fact facts[] = {
        {"a", 10, "", false, 0, false},    {"x", 10, "", false, 0, false},
        {"post", 900, "", false, 9, true}, {"y", 10, "", false, 0, false},
        {"hot", 50, "", false, 5, false},
    };
    static const struct patron_reco_trending trending[] = {{"post", 9, 900}, {"hot", 5, 50}};
    struct world w = {.facts = facts, .n_facts = PATRON_ARRAY_LEN(facts)};
    add_list(&w, "a", "post:9 x:5");
    add_list(&w, "post", "y:8");
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_result r = run(&w, &p, trending, 2, NULL, 10, &c);
    expect_items(&r, "hot x"); /* 5 co-buyers are thin evidence: hot is popular */
    p = customer("post", NULL, NULL);
    r = run(&w, &p, trending, 2, NULL, 10, &c);
    expect_items(&r, "hot"); /* not y: postage says nothing of the customer */
    cr_expect_eq(r.strategy, PATRON_RECO_POPULAR);
    r = run(&w, NULL, trending, 2, NULL, 10, &c);
    expect_items(&r, "hot");
}

/* Of a history item's neighbours, only the `nearest` most similar count:
 * by cosine, not by raw count. */
Test(recommend, only_the_nearest_neighbours_of_a_history_item_count)
{
    /* counts fall, but the buyers fall faster: cosine rises along the list */
    static const struct fact facts[] = {
        {"a", 100, "", false, 0},  {"n1", 1000, "", false, 0}, {"n2", 400, "", false, 0},
        {"n3", 100, "", false, 0}, {"n4", 20, "", false, 0},
    };
    struct world w = {.facts = facts, .n_facts = PATRON_ARRAY_LEN(facts)};
    add_list(&w, "a", "n1:40 n2:30 n3:20 n4:10");
    struct patron_reco_config c = defcfg();
    c.nearest = 2;
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    /* cos: n1 0.126, n2 0.15, n3 0.2, n4 0.224 */
    expect_items(&r, "n3 n4");
    c.nearest = 4;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_expect_eq(r.n, 4);

    /* a thin list (strongest pair seen fewer than thin_count times): no cut */
    w.n_lists = 0;
    add_list(&w, "a", "n1:4 n2:3 n3:2 n4:1");
    c.nearest = 2;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_expect_eq(r.n, 4);
    c.thin_count = 4;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    cr_expect_eq(r.n, 2, "4 co-buyers are not thin at thin_count 4");
}

/* Equal similarity, unequal evidence: a pair seen once is a coincidence. */
Test(recommend, thin_evidence_is_shrunk)
{
    /* cos(a, once) = 1 / sqrt(100 * 1) = cos(a, often) = 10 / sqrt(100 * 100) */
    static const struct fact facts[] = {
        {"a", 100, "", false, 0}, {"once", 1, "", false, 0}, {"often", 100, "", false, 0}};
    struct world w = {.facts = facts, .n_facts = 3};
    add_list(&w, "a", "often:10 once:1");
    struct patron_reco_config c = coscfg();
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_result r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "often once");
    cr_expect_float_eq(r.items[0].score, 10.0 / 40, 1e-12);
    cr_expect_float_eq(r.items[1].score, 1.0 / 31, 1e-12);
    c.shrink = 0;
    r = run(&w, &p, NULL, 0, NULL, 10, &c);
    expect_items(&r, "often once");
    cr_expect_float_eq(r.items[0].score, r.items[1].score, 1e-12, "a tie without shrinkage");
}

/* Popularity weighs in as the evidence behind the best CF candidate thins:
 * a staple outranks a one-off co-purchase, not a pair seen 300 times. */
Test(recommend, popularity_blends_in_by_the_evidence)
{
    static const struct fact facts[] = {
        {"a", 300, "", false, 0},       {"rare", 2, "", false, 0},     {"pair", 300, "", false, 0},
        {"staple", 1000, "", false, 0}, {"second", 500, "", false, 0},
    };
    static const struct patron_reco_trending trending[] = {
        {"staple", 40, 1000}, {"second", 20, 500}, {"a", 10, 300}};
    struct world w = {.facts = facts, .n_facts = PATRON_ARRAY_LEN(facts)};
    add_list(&w, "a", "rare:1");
    struct patron_reco_config c = defcfg();
    struct patron_profile p = customer("a", NULL, NULL);
    struct patron_reco_result r = run(&w, &p, trending, 3, NULL, 3, &c);
    expect_items(&r, "staple second rare");
    cr_expect_eq(r.strategy, PATRON_RECO_CF_POPULAR);
    /* evidence 1: popularity weighs 3 / (3 + 1) */
    cr_expect_float_eq(r.items[0].score, 0.75, 1e-12);
    cr_expect_float_eq(r.items[1].score, 0.75 * 0.5, 1e-12);
    /* rare's own popularity counts too: 2 buyers of the top 1000 */
    cr_expect_float_eq(r.items[2].score, 1.0 / 31 + 0.75 * 2 / 1000, 1e-12);

    w.n_lists = 0;
    add_list(&w, "a", "pair:300 rare:1");
    r = run(&w, &p, trending, 3, NULL, 3, &c);
    expect_items(&r, "pair staple second");
    cr_expect_float_eq(r.items[0].score, 300.0 / 330 + 3.0 / 303 * 300 / 1000, 1e-12);
    cr_expect_float_eq(r.items[1].score, 3.0 / 303, 1e-12);
    c.popularity = 0;
    r = run(&w, &p, trending, 3, NULL, 3, &c);
    expect_items(&r, "pair rare staple"); /* off: trending items only fill */
    cr_expect_eq(r.strategy, PATRON_RECO_CF_POPULAR);
    cr_expect_lt(r.items[2].score, r.items[1].score);
}
