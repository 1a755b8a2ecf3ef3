#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fixture_events.h"
#include "patron/graph.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(graph);

#define PAIRS_MAX 64

/* Renders pairs as "a>b,a>b,..." for one comparison per row. */
static void render(const struct patron_graph_pair *pairs, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%s>%s", i ? "," : "", pairs[i].a, pairs[i].b);
        cr_assert(w > 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
}

static const struct {
    const char *name;
    const char *prior[4]; /* most recent first, NULL-ended */
    size_t history;
    const char *lines[5]; /* the purchase's items, NULL-ended */
    size_t max;
    const char *expect;
} ROWS[] = {
    {"one new item, no history", {NULL}, 8, {"a", NULL}, PAIRS_MAX, ""},
    {"two new items", {NULL}, 8, {"a", "b", NULL}, PAIRS_MAX, "a>b,b>a"},
    {"three new items", {NULL}, 8, {"a", "b", "c", NULL}, PAIRS_MAX, "a>b,a>c,b>a,b>c,c>a,c>b"},
    {"repeated lines count once", {NULL}, 8, {"a", "b", "a", "b", NULL}, PAIRS_MAX, "a>b,b>a"},
    {"with history", {"x", "y", NULL}, 8, {"a", NULL}, PAIRS_MAX, "a>x,x>a,a>y,y>a"},
    {"history is capped", {"x", "y", "z", NULL}, 1, {"a", NULL}, PAIRS_MAX, "a>x,x>a"},
    {"history 0", {"x", "y", NULL}, 0, {"a", "b", NULL}, PAIRS_MAX, "a>b,b>a"},
    {"already bought items are not new",
     {"x", "a", NULL},
     8,
     {"a", "b", NULL},
     PAIRS_MAX,
     "b>x,x>b,b>a,a>b"},
    {"nothing new: no pairs", {"a", "b", NULL}, 8, {"a", "b", NULL}, PAIRS_MAX, ""},
    {"new and history", {"x", NULL}, 8, {"a", "b", NULL}, PAIRS_MAX, "a>b,a>x,x>a,b>a,b>x,x>b"},
    {"empty item ids are skipped", {"x", NULL}, 8, {"", "a", "", NULL}, PAIRS_MAX, "a>x,x>a"},
    {"max truncates", {NULL}, 8, {"a", "b", "c", NULL}, 3, "a>b,a>c,b>a"},
    {"max keeps history pairs whole", {"x", NULL}, 8, {"a", NULL}, 1, ""},
    {"max 0", {NULL}, 8, {"a", "b", NULL}, 0, ""},
};

Test(graph, pairs_table)
{
    for (size_t r = 0; r < PATRON_ARRAY_LEN(ROWS); r++) {
        char prior[4][PATRON_ID_MAX + 1];
        memset(prior, 0, sizeof(prior));
        size_t n_prior = 0;
        while (ROWS[r].prior[n_prior]) {
            snprintf(prior[n_prior], sizeof(prior[0]), "%s", ROWS[r].prior[n_prior]);
            n_prior++;
        }
        struct fx_line lines[5];
        size_t n_lines = 0;
        while (ROWS[r].lines[n_lines]) {
            lines[n_lines] = (struct fx_line){ROWS[r].lines[n_lines], "", 1, 100};
            n_lines++;
        }
        struct fx_event f;
        fx_purchase(&f, "e", FX_T0, n_lines, lines);

        struct patron_graph_pair pairs[PAIRS_MAX];
        size_t n = patron_graph_pairs((const char(*)[PATRON_ID_MAX + 1]) prior, n_prior,
                                      ROWS[r].history, &f.purchase, pairs, ROWS[r].max);
        cr_expect_leq(n, ROWS[r].max, "%s", ROWS[r].name);
        char got[1024];
        render(pairs, n, got, sizeof(got));
        cr_expect_str_eq(got, ROWS[r].expect, "%s", ROWS[r].name);
        for (size_t i = 0; i < n; i++)
            cr_expect_str_neq(pairs[i].a, pairs[i].b, "%s: a != b", ROWS[r].name);
    }
}

Test(graph, new_items_in_line_order_distinct)
{
    char prior[2][PATRON_ID_MAX + 1] = {"old", "older"};
    struct fx_line lines[] = {{"b", "", 1, 1}, {"old", "", 1, 1}, {"a", "", 1, 1},
                              {"b", "", 2, 1}, {"", "", 1, 1},    {"c", "", 1, 1}};
    struct fx_event f;
    fx_purchase(&f, "e", FX_T0, PATRON_ARRAY_LEN(lines), lines);
    const char *items[8];
    size_t n = patron_graph_new_items((const char(*)[PATRON_ID_MAX + 1]) prior, 2, &f.purchase,
                                      items, PATRON_ARRAY_LEN(items));
    cr_assert_eq(n, 3);
    cr_expect_str_eq(items[0], "b");
    cr_expect_str_eq(items[1], "a");
    cr_expect_str_eq(items[2], "c");
    cr_expect_eq(
        patron_graph_new_items((const char(*)[PATRON_ID_MAX + 1]) prior, 2, &f.purchase, items, 2),
        2);
    cr_expect_eq(patron_graph_new_items(NULL, 0, NULL, items, 8), 0);
    /* Pointers are borrowed from the purchase. */
    cr_expect_eq(items[0], f.lines[0].item_id);
}

/* Full counts: k new items, h history: k(k-1) + 2kh pairs. */
Test(graph, pair_count_formula_and_bound)
{
    static char names[40][8];
    struct fx_line lines[40];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i);
        lines[i] = (struct fx_line){names[i], "", 1, 1};
    }
    char prior[8][PATRON_ID_MAX + 1];
    for (int i = 0; i < 8; i++)
        snprintf(prior[i], sizeof(prior[i]), "h%d", i);
    static struct patron_graph_pair pairs[4096];
    struct fx_event f;
    for (size_t k = 0; k <= 40; k += 8) {
        for (size_t h = 0; h <= 8; h += 4) {
            fx_purchase(&f, "e", FX_T0, k, lines);
            size_t n = patron_graph_pairs((const char(*)[PATRON_ID_MAX + 1]) prior, 8, h,
                                          &f.purchase, pairs, PATRON_ARRAY_LEN(pairs));
            cr_expect_eq(n, k * (k - (k ? 1 : 0)) + 2 * k * h, "k=%zu h=%zu", k, h);
            n = patron_graph_pairs((const char(*)[PATRON_ID_MAX + 1]) prior, 8, h, &f.purchase,
                                   pairs, 10);
            cr_expect_leq(n, 10);
        }
    }
}
