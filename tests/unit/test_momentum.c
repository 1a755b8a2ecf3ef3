/* The shop's momentum (trend.h): the Gamma-Poisson fit and the factor. */
#include <criterion/criterion.h>
#include <math.h>

#include "patron/trend.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(momentum);

#define N_MAX 64

/* One shop: n items' recent and all-time sales, and the fit it must give. */
struct shop {
    const char *name;
    size_t n;
    double recent[N_MAX], total[N_MAX];
    double want_alpha, want_rate;
};

/* n items of `total` sales each, `recent` of them lately. */
static void fill(struct shop *s, size_t from, size_t n, double recent, double total)
{
    for (size_t i = from; i < from + n; i++) {
        s->recent[i] = recent;
        s->total[i] = total;
    }
    if (from + n > s->n)
        s->n = from + n;
}

Test(momentum, fit_table)
{
    static struct shop shops[8];
    size_t k = 0;

    /* every item at the shop's rate: no excess over the noise */
    shops[k] = (struct shop){.name = "steady", .want_alpha = 0, .want_rate = 0.05};
    fill(&shops[k++], 0, 20, 5, 100);

    /* half sell at 1/5 of the rate, half at 9/5: E = 5, (r - E)^2 = 16;
     * excess 20 * 16 - 0.5 * (10 + 90) = 270, scale 20 * 25 = 500 */
    shops[k] = (struct shop){.name = "seasonal", .want_alpha = 500.0 / 270.0, .want_rate = 0.05};
    fill(&shops[k], 0, 10, 1, 100);
    fill(&shops[k++], 10, 10, 9, 100);

    /* the same, with items the fit must leave out */
    shops[k] = shops[k - 1];
    shops[k].name = "seasonal, with unknown and broken items";
    shops[k].recent[20] = 3, shops[k].total[20] = 0;
    shops[k].recent[21] = NAN, shops[k].total[21] = 100;
    shops[k].recent[22] = 3, shops[k].total[22] = INFINITY;
    shops[k].recent[23] = -1, shops[k].total[23] = 100;
    shops[k].recent[24] = 3, shops[k].total[24] = -5;
    shops[k++].n = 25;

    /* too few items to say anything */
    shops[k] = (struct shop){.name = "19 items", .want_alpha = 0, .want_rate = 0};
    fill(&shops[k], 0, 10, 1, 100);
    fill(&shops[k++], 10, 9, 9, 100);

    /* nothing sold lately */
    shops[k] = (struct shop){.name = "quiet", .want_alpha = 0, .want_rate = 0};
    fill(&shops[k++], 0, 30, 0, 100);

    /* sizes differ, momentum does not: a best seller at the rate is steady */
    shops[k] = (struct shop){.name = "steady, sizes differ", .want_alpha = 0, .want_rate = 0.1};
    fill(&shops[k], 0, 10, 100, 1000);
    fill(&shops[k++], 10, 10, 1, 10);

    for (size_t i = 0; i < k; i++) {
        const struct shop *s = &shops[i];
        struct patron_momentum m = {.alpha = -1, .rate = -1};
        patron_momentum_fit(s->recent, s->total, NULL, s->n, &m);
        cr_expect_float_eq(m.alpha, s->want_alpha, 1e-12, "%s: alpha %g, want %g", s->name, m.alpha,
                           s->want_alpha);
        cr_expect_float_eq(m.rate, s->want_rate, 1e-12, "%s: rate %g, want %g", s->name, m.rate,
                           s->want_rate);
    }
}

Test(momentum, fit_of_nothing)
{
    struct patron_momentum m = {.alpha = 7, .rate = 7};
    patron_momentum_fit(NULL, NULL, NULL, 0, &m);
    cr_expect_eq(m.alpha, 0);
    cr_expect_eq(m.rate, 0);
}

Test(momentum, factor_table)
{
    const struct patron_momentum on = {.alpha = 2, .rate = 0.05}, off = {.alpha = 0, .rate = 0.05};
    static const struct {
        const char *name;
        bool model_on;
        double recent, total, want;
    } cases[] = {
        {"at the rate", true, 5, 100, 1.0},
        {"four times the rate", true, 20, 100, 22.0 / 7.0},
        {"nothing lately", true, 0, 100, 2.0 / 7.0},
        {"thin: 2 of 2, shrunk", true, 2, 2, 4.0 / 2.1},
        {"nothing known of its sales", true, 3, 0, 1.0},
        {"recent not a number", true, NAN, 100, 1.0},
        {"total not finite", true, 3, INFINITY, 1.0},
        {"negative recent", true, -1, 100, 1.0},
        {"no momentum measured", false, 20, 100, 1.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double got =
            patron_momentum_factor(cases[i].model_on ? &on : &off, cases[i].recent, cases[i].total);
        cr_expect_float_eq(got, cases[i].want, 1e-12, "%s: %g, want %g", cases[i].name, got,
                           cases[i].want);
    }
    cr_expect_eq(patron_momentum_factor(NULL, 20, 100), 1.0);
}

/* Recovers the spread of true momentum from sales it drew: items whose
 * momentum is 0.5 or 1.5 (variance 0.25, so alpha 4) with recent sales
 * exactly at their expectation plus the noise term the fit subtracts. */
Test(momentum, fit_recovers_the_prior)
{
    double recent[40], total[40];
    for (size_t i = 0; i < 40; i++) {
        total[i] = 1000;                 /* E = 50 at the rate below */
        recent[i] = i % 2 ? 75.0 : 25.0; /* momentum 1.5 and 0.5 */
    }
    struct patron_momentum m;
    patron_momentum_fit(recent, total, NULL, 40, &m);
    cr_expect_float_eq(m.rate, 0.05, 1e-12);
    /* excess per item 625 - 0.5 * r (mean 25), scale 2500: 1/alpha = 600/2500 */
    cr_expect_float_eq(m.alpha, 2500.0 / 600.0, 1e-9);
}

/* Postage and fees sell at their own pace: left out of the fit. */
Test(momentum, fit_leaves_out_what_is_not_a_product)
{
    double recent[30], total[30];
    bool np[30] = {0};
    for (size_t i = 0; i < 20; i++)
        recent[i] = 5, total[i] = 100; /* steady products */
    for (size_t i = 20; i < 30; i++)
        recent[i] = 90, total[i] = 100, np[i] = true; /* postage, all lately */
    struct patron_momentum m;
    patron_momentum_fit(recent, total, np, 30, &m);
    cr_expect_eq(m.alpha, 0);
    cr_expect_float_eq(m.rate, 0.05, 1e-12);
    patron_momentum_fit(recent, total, NULL, 30, &m);
    cr_expect(m.alpha > 0, "counted as products, they look like momentum: %g", m.alpha);
}
