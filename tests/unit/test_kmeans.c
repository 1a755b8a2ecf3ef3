#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/kmeans.h"
#include "patron/profile.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(kmeans);

#define DAY INT64_C(86400000)
#define NOW INT64_C(1700000000000)

/* Three groups of customers, far apart in every feature: recent frequent
 * big spenders, lapsed one-timers, and a middle group. */
static const struct {
    struct patron_cluster_features centre;
    const char *label;
} GROUPS[] = {
    {{3, 60, 5000000}, "recent, frequent, high spend"},
    {{300, 1, 1500}, "lapsed, rare, low spend"},
    {{40, 6, 60000}, "cooling, regular, mid spend"},
};

static size_t make_groups(struct patron_cluster_features *f, size_t per_group)
{
    size_t n = 0;
    for (size_t g = 0; g < PATRON_ARRAY_LEN(GROUPS); g++)
        for (size_t i = 0; i < per_group; i++) {
            double jitter = 1.0 + 0.2 * ((double)(i % 7) / 6.0 - 0.5); /* +-10% */
            f[n++] = (struct patron_cluster_features){GROUPS[g].centre.recency_days * jitter,
                                                      fmax(1, GROUPS[g].centre.orders * jitter),
                                                      GROUPS[g].centre.net_spend_cents * jitter};
        }
    return n;
}

Test(kmeans, finds_separated_groups_and_labels_them)
{
    struct patron_cluster_features f[300];
    size_t n = make_groups(f, 100);
    struct patron_clusters cl;
    cr_assert_eq(patron_clusters_fit(f, n, n, 0, &cl), 0);
    cr_expect_eq(cl.k, 3, "the silhouette picks 3 of 3..8");
    cr_expect(cl.has_silhouette && cl.silhouette > 0.8 && cl.silhouette <= 1, "%f", cl.silhouette);
    /* ids by decreasing spend: the groups' order in GROUPS is 0, 2, 1 */
    const int id_of_group[3] = {0, 2, 1};
    uint64_t total = 0;
    for (int g = 0; g < 3; g++) {
        const struct patron_cluster *c = &cl.c[id_of_group[g]];
        cr_expect_str_eq(c->label, GROUPS[g].label);
        cr_expect_eq(c->size, 100);
        cr_expect(fabs(log(c->centroid.recency_days / GROUPS[g].centre.recency_days)) < 0.1,
                  "group %d recency %f", g, c->centroid.recency_days);
        cr_expect(fabs(log(c->centroid.net_spend_cents / GROUPS[g].centre.net_spend_cents)) < 0.1);
        cr_expect_eq(patron_cluster_of(&GROUPS[g].centre, &cl), id_of_group[g]);
        total += c->size;
    }
    cr_expect_eq(total, n);
}

Test(kmeans, deterministic_and_sizes_scale_to_population)
{
    struct patron_cluster_features f[300];
    size_t n = make_groups(f, 100);
    struct patron_clusters a, b;
    cr_assert_eq(patron_clusters_fit(f, n, n, 0, &a), 0);
    cr_assert_eq(patron_clusters_fit(f, n, n, 0, &b), 0);
    cr_expect_eq(memcmp(&a, &b, sizeof(a)), 0);
    static const uint64_t populations[] = {301, 1000, 1001, 12345678};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(populations); i++) {
        cr_assert_eq(patron_clusters_fit(f, n, populations[i], 0, &a), 0);
        uint64_t total = 0;
        for (int c = 0; c < a.k; c++)
            total += a.c[c].size;
        cr_expect_eq(total, populations[i], "population %llu", (unsigned long long)populations[i]);
    }
}

Test(kmeans, fixed_k_and_degenerate_inputs)
{
    struct patron_cluster_features f[300];
    size_t n = make_groups(f, 100);
    struct patron_clusters cl;
    cr_assert_eq(patron_clusters_fit(f, n, n, 5, &cl), 0);
    cr_expect_eq(cl.k, 5);
    /* labels are unique */
    for (int a = 0; a < cl.k; a++)
        for (int b = a + 1; b < cl.k; b++)
            cr_expect_str_neq(cl.c[a].label, cl.c[b].label);

    static const struct {
        size_t n;
        int k_fixed, k;
        bool silhouette;
    } rows[] = {
        {1, 0, 1, false}, /* one customer: one cluster */
        {2, 0, 1, false}, {3, 0, 2, true}, {4, 0, 3, true}, {4, 8, 3, true}, /* never k >= n */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        cr_assert_eq(patron_clusters_fit(f + 95, rows[i].n, rows[i].n, rows[i].k_fixed, &cl), 0);
        cr_expect_eq(cl.k, rows[i].k, "row %zu: k %d", i, cl.k);
        cr_expect_eq(cl.has_silhouette, rows[i].silhouette, "row %zu", i);
        uint64_t total = 0;
        for (int c = 0; c < cl.k; c++)
            total += cl.c[c].size;
        cr_expect_eq(total, rows[i].n, "row %zu", i);
    }
    /* identical customers: no spread, still finite */
    struct patron_cluster_features same[20];
    for (size_t i = 0; i < 20; i++)
        same[i] = (struct patron_cluster_features){5, 2, 1000};
    cr_assert_eq(patron_clusters_fit(same, 20, 20, 0, &cl), 0);
    cr_expect(cl.k >= 1 && isfinite(cl.silhouette));
    cr_expect_eq(patron_cluster_of(&same[0], &cl) >= 0, true);
    /* bad arguments */
    cr_expect_eq(patron_clusters_fit(f, 0, 0, 0, &cl), PATRON_EINVAL);
    cr_expect_eq(patron_clusters_fit(f, n, n, -1, &cl), PATRON_EINVAL);
    cr_expect_eq(patron_clusters_fit(f, n, n, PATRON_CLUSTERS_MAX + 1, &cl), PATRON_EINVAL);
    double pts[3] = {0}, cent[3];
    int assign[1];
    cr_expect_eq(patron_kmeans(pts, 1, 2, 1, cent, assign), PATRON_EINVAL);
    struct patron_clusters none = {0};
    cr_expect_eq(patron_cluster_of(&same[0], &none), -1);
}

Test(kmeans, silhouette_table)
{
    /* two tight pairs far apart: a = 1, b = 100 or 101 */
    const double pts[] = {0, 0, 0, 1, 0, 0, 100, 0, 0, 101, 0, 0};
    const int good[] = {0, 0, 1, 1}, bad[] = {0, 1, 0, 1}, one[] = {0, 0, 0, 0};
    double s = patron_silhouette(pts, 4, good, 2, 100);
    cr_expect(fabs(s - (1 - 1.0 / 100.5 + 0) * 1) < 0.02 && s > 0.98, "%f", s);
    cr_expect_lt(patron_silhouette(pts, 4, bad, 2, 100), 0);
    cr_expect(isnan(patron_silhouette(pts, 4, one, 1, 100)));
    cr_expect(isnan(patron_silhouette(pts, 1, good, 2, 100)));
}

Test(kmeans, features_of_profile)
{
    struct patron_profile p;
    patron_profile_init(&p, "c");
    struct patron_cluster_features f;
    cr_expect_not(patron_cluster_features_of(&p, NOW, &f), "no purchase");
    p.orders = 3;
    p.first_purchase_ms = NOW - 100 * DAY;
    p.last_purchase_ms = NOW - 10 * DAY;
    p.net_spend_cents = -500;
    cr_assert(patron_cluster_features_of(&p, NOW, &f));
    cr_expect_eq(f.recency_days, 10);
    cr_expect_eq(f.orders, 3);
    double t[PATRON_CLUSTER_DIM];
    patron_cluster_transform(&f, t);
    cr_expect(fabs(t[0] - log(11)) < 1e-12 && fabs(t[1] - log(4)) < 1e-12 && t[2] == 0,
              "a negative net spend counts as 0");
    cr_assert(patron_cluster_features_of(&p, NOW - 20 * DAY, &f));
    cr_expect_eq(f.recency_days, 0, "a clock behind the purchase: today");
}
