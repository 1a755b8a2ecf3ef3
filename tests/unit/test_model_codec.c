#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/model_codec.h"
#include "patron/profile.h"
#include "patron/profile_json.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(model_codec);

#define DAY INT64_C(86400000)
#define NOW INT64_C(1700000000000)

static struct patron_clv_model fitted(void)
{
    struct patron_clv_model m = {
        .n_bands = 3,
        .bands = {{19691.5, {0.385, 28.966, 0.2167, 1.2371}, 1105},
                  {34826, {0.8398, 69.84, 2.68e-11, 2016.77}, 1106},
                  {INFINITY, {0.7211, 44.91, 0.01165, 2.648}, 1106}},
        .gg = {1.8895, 3.715, 53811.3},
        .fitted_at_ms = 1700000000123,
        .as_of_ms = 1699999999000,
        .customers = 3317,
        .sample = 3317,
        .orders = 17000,
        .source = PATRON_CLV_FITTED,
    };
    return m;
}

Test(model_codec, clv_round_trips_exactly)
{
    struct patron_clv_model m = fitted(), back;
    m.bands[0].bgnbd.r = 1.0 / 3.0; /* needs all 17 digits */
    char *s = patron_clv_model_encode(&m);
    cr_assert_eq(patron_clv_model_decode(s, strlen(s), &back), 0, "%s", s);
    cr_expect_eq(memcmp(&m, &back, sizeof(m)), 0);
    free(s);
}

Test(model_codec, clv_decode_rejects_bad_values)
{
    static const char *const bad[] = {
        "",
        "[]",
        "not json",
        /* wrong version */
        "{\"version\":2,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":1,\"orders\":"
        "1,"
        "\"bands\":[{\"below_cents\":null,\"customers\":1,\"r\":1,\"alpha\":1,\"a\":1,\"b\":1}],"
        "\"gamma_gamma\":{\"p\":1,\"q\":2,\"gamma\":3}}",
        /* a negative parameter */
        "{\"version\":1,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":1,\"orders\":"
        "1,"
        "\"bands\":[{\"below_cents\":null,\"customers\":1,\"r\":-1,\"alpha\":1,\"a\":1,\"b\":1}],"
        "\"gamma_gamma\":{\"p\":1,\"q\":2,\"gamma\":3}}",
        /* the last band bounded */
        "{\"version\":1,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":1,\"orders\":"
        "1,"
        "\"bands\":[{\"below_cents\":5,\"customers\":1,\"r\":1,\"alpha\":1,\"a\":1,\"b\":1}],"
        "\"gamma_gamma\":{\"p\":1,\"q\":2,\"gamma\":3}}",
        /* no bands */
        "{\"version\":1,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":1,\"orders\":"
        "1,"
        "\"bands\":[],\"gamma_gamma\":{\"p\":1,\"q\":2,\"gamma\":3}}",
        /* gamma_gamma missing */
        "{\"version\":1,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":1,\"orders\":"
        "1,"
        "\"bands\":[{\"below_cents\":null,\"customers\":1,\"r\":1,\"alpha\":1,\"a\":1,\"b\":1}]}",
        /* a duplicate key */
        "{\"version\":1,\"version\":1,\"fitted_at_ms\":1,\"as_of_ms\":1,\"customers\":1,\"sample\":"
        "1,"
        "\"orders\":1,\"bands\":[{\"below_cents\":null,\"customers\":1,\"r\":1,\"alpha\":1,\"a\":1,"
        "\"b\":1}],\"gamma_gamma\":{\"p\":1,\"q\":2,\"gamma\":3}}",
    };
    struct patron_clv_model out = fitted(), before = out;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        cr_expect_eq(patron_clv_model_decode(bad[i], strlen(bad[i]), &out), PATRON_EINVAL, "%zu",
                     i);
        cr_expect_eq(memcmp(&out, &before, sizeof(out)), 0, "untouched: %zu", i);
    }
    cr_expect_eq(patron_clv_model_decode(NULL, 0, &out), PATRON_EINVAL);
    char *big = calloc(PATRON_MODEL_STORED_MAX + 2, 1);
    memset(big, ' ', PATRON_MODEL_STORED_MAX + 1);
    cr_expect_eq(patron_clv_model_decode(big, PATRON_MODEL_STORED_MAX + 1, &out), PATRON_EINVAL);
    free(big);
}

Test(model_codec, override_text)
{
    static const struct {
        const char *text;
        int rc;
        size_t bands;
    } rows[] = {
        {"0.62,46.7,0.049,1.62,1.9,3.7,53811", 0, 1},
        {"0.62,46.7,0.049,1.62,1.9,3.7,53811;19691:0.84,69.8,0.001,2016", 0, 2},
        {"1,2,3,4,5,6,7;10:1,1,1,1;20.5:2,2,2,2;30:3,3,3,3", 0, 4},
        {"1,2,3,4,5,6,7;10:1,1,1,1;20:2,2,2,2;30:3,3,3,3;40:4,4,4,4", PATRON_EINVAL, 0},
        {"1,2,3,4,5,6", PATRON_EINVAL, 0},     /* six numbers */
        {"1,2,3,4,5,6,7,8", PATRON_EINVAL, 0}, /* eight */
        {"1,2,3,-4,5,6,7", PATRON_EINVAL, 0},  /* negative */
        {"1,2,3,0,5,6,7", PATRON_EINVAL, 0},   /* zero */
        {"1,2,3,4,5,6,inf", PATRON_EINVAL, 0}, /* infinite */
        {"1,2,3,4,5,6,nan", PATRON_EINVAL, 0},
        {"1,2,3,4,5,6,7;", PATRON_EINVAL, 0}, /* empty band */
        {"1,2,3,4,5,6,7;10:1,1,1", PATRON_EINVAL, 0},
        {"1,2,3,4,5,6,7;20:1,1,1,1;10:1,1,1,1", PATRON_EINVAL, 0}, /* bounds decrease */
        {" 1,2,3,4,5,6,7", PATRON_EINVAL, 0},
        {"", PATRON_EINVAL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++) {
        struct patron_clv_model m;
        char why[128] = "";
        int rc = patron_clv_model_parse(rows[i].text, &m, why, sizeof(why));
        cr_expect_eq(rc, rows[i].rc, "'%s'", rows[i].text);
        if (rc) {
            cr_expect_neq(why[0], '\0', "a reason for '%s'", rows[i].text);
            continue;
        }
        cr_expect_eq(m.n_bands, rows[i].bands, "'%s'", rows[i].text);
        cr_expect_eq(m.source, PATRON_CLV_OVERRIDE);
        cr_expect(patron_clv_model_valid(&m));
    }
    struct patron_clv_model m;
    cr_assert_eq(patron_clv_model_parse(rows[1].text, &m, NULL, 0), 0);
    cr_expect_eq(m.bands[0].below_cents, 19691);
    cr_expect_eq(m.bands[1].bgnbd.b, 2016);
    cr_expect_eq(m.gg.gamma, 53811);
}

Test(model_codec, override_formats_back)
{
    struct patron_clv_model m = fitted(), back;
    char text[PATRON_CLV_OVERRIDE_MAX];
    int n = patron_clv_model_format(&m, text, sizeof(text));
    cr_assert_gt(n, 0);
    cr_assert_eq(patron_clv_model_parse(text, &back, NULL, 0), 0, "%s", text);
    cr_expect_eq(back.n_bands, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(back.bands[i].below_cents, m.bands[i].below_cents);
        cr_expect_eq(memcmp(&back.bands[i].bgnbd, &m.bands[i].bgnbd, sizeof(m.bands[i].bgnbd)), 0);
    }
    char small[20];
    cr_expect_eq(patron_clv_model_format(&m, small, sizeof(small)), PATRON_ETOOBIG);
    json_t *j = patron_clv_model_to_json(&m);
    cr_expect_str_eq(json_string_value(json_object_get(j, "source")), "fitted");
    cr_expect_eq(json_array_size(json_object_get(j, "bands")), 3);
    cr_expect(json_is_null(
        json_object_get(json_array_get(json_object_get(j, "bands"), 2), "below_cents")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "override")), text);
    json_decref(j);
    patron_clv_model_default(&m);
    j = patron_clv_model_to_json(&m);
    cr_expect_str_eq(json_string_value(json_object_get(j, "source")), "default");
    cr_expect(json_is_null(json_object_get(j, "fitted_at_ms")));
    json_decref(j);
}

static struct patron_clusters some_clusters(void)
{
    struct patron_cluster_features f[60];
    for (size_t i = 0; i < 60; i++) {
        double g = (double)(i % 3);
        f[i] = (struct patron_cluster_features){2 + 100 * g + (double)(i % 5),
                                                1 + 10 * (2 - g) + (double)(i % 4),
                                                500 + 100000 * (2 - g) + (double)(i % 7)};
    }
    struct patron_clusters c;
    cr_assert_eq(patron_clusters_fit(f, 60, 600, 0, &c), 0);
    c.fitted_at_ms = 5;
    c.as_of_ms = 4;
    c.customers = 600;
    c.sample = 60;
    return c;
}

Test(model_codec, clusters_round_trip_and_api_shape)
{
    struct patron_clusters c = some_clusters(), back;
    char *s = patron_clusters_encode(&c);
    cr_assert_eq(patron_clusters_decode(s, strlen(s), &back), 0, "%s", s);
    cr_expect_eq(memcmp(&c, &back, sizeof(c)), 0);
    free(s);

    json_t *j = patron_clusters_to_json(&c);
    static const char *const keys[] = {"k", "as_of_ms", "clusters", "silhouette"};
    cr_expect_eq(json_object_size(j), PATRON_ARRAY_LEN(keys));
    for (size_t i = 0; i < PATRON_ARRAY_LEN(keys); i++)
        cr_expect_not_null(json_object_get(j, keys[i]), "%s", keys[i]);
    json_t *list = json_object_get(j, "clusters");
    cr_assert_eq(json_array_size(list), (size_t)c.k);
    json_int_t total = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        cr_expect_eq(json_object_size(e), 4);
        cr_expect_eq(json_integer_value(json_object_get(e, "id")), (json_int_t)i);
        cr_expect_gt(strlen(json_string_value(json_object_get(e, "label"))), 0);
        cr_expect_eq(json_object_size(json_object_get(e, "centroid")), 3);
        total += json_integer_value(json_object_get(e, "size"));
    }
    cr_expect_eq(total, 600);
    json_decref(j);
}

Test(model_codec, clusters_decode_rejects_bad_values)
{
    struct patron_clusters c = some_clusters(), out = c;
    char *s = patron_clusters_encode(&c);
    static const struct {
        const char *from, *to;
    } edits[] = {
        {"\"version\":1", "\"version\":9"},
        {"\"k\":", "\"kk\":"},
        {"\"id\":0", "\"id\":7"},
        {"\"sd\":[", "\"sd\":[0,"},
        {"\"label\":\"", "\"label\":3,\"x\":\""},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(edits); i++) {
        char buf[8192];
        const char *at = strstr(s, edits[i].from);
        cr_assert_not_null(at, "%s", edits[i].from);
        size_t head = (size_t)(at - s);
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)head, s, edits[i].to,
                 at + strlen(edits[i].from));
        cr_expect_eq(patron_clusters_decode(buf, strlen(buf), &out), PATRON_EINVAL, "%zu: %s", i,
                     buf);
    }
    cr_expect_eq(memcmp(&out, &c, sizeof(c)), 0, "untouched");
    free(s);
}

/* The profile's model fields come from the models passed in. */
Test(model_codec, profile_json_with_models)
{
    struct patron_profile_config cfg;
    patron_profile_config_default(&cfg);
    cfg.churn_horizon_days = 30;
    struct patron_profile p;
    patron_profile_init(&p, "c1");
    p.orders = 4;
    p.net_spend_cents = 400000;
    p.first_purchase_ms = NOW - 200 * DAY;
    p.last_purchase_ms = NOW - 20 * DAY;
    struct patron_clv_model m = fitted();
    struct patron_clusters cl = some_clusters();
    struct patron_profile_models models = {&m, &cl};
    json_t *j = patron_profile_to_json_models(&p, NOW, &cfg, &models);
    struct patron_clv_customer c = {3, 180, 200, 100000};
    const struct patron_bgnbd *g = &m.bands[2].bgnbd; /* m 100000 >= 34826 */
    double risk = patron_bgnbd_p_no_purchase(g, &c, 30);
    cr_expect(fabs(json_real_value(json_object_get(j, "churn_risk")) - risk) < 6e-5);
    cr_expect_eq(json_integer_value(json_object_get(j, "churn_horizon_days")), 30);
    cr_expect(fabs(json_real_value(json_object_get(j, "p_alive")) - patron_bgnbd_p_alive(g, &c)) <
              6e-5);
    double orders = patron_bgnbd_expected_purchases(g, &c, 365);
    cr_expect(fabs(json_real_value(json_object_get(j, "expected_orders_12m")) - orders) < 6e-5);
    double value = orders * patron_gg_expected_spend(&m.gg, 4, 100000);
    cr_expect(llabs(json_integer_value(json_object_get(j, "predicted_value_12m_cents")) -
                    (json_int_t)llround(value)) <= 1);
    json_t *cluster = json_object_get(j, "cluster");
    struct patron_cluster_features f = {20, 4, 400000};
    int id = patron_cluster_of(&f, &cl);
    cr_assert_geq(id, 0);
    cr_expect_eq(json_integer_value(json_object_get(cluster, "id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(cluster, "label")), cl.c[id].label);
    json_decref(j);
}
