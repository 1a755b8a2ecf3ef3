/* The dashboard's history day (patron/dashboard_history.h): the stored form
 * round-trips, the API's form, and every malformed value is refused. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/dashboard_history.h"

PATRON_LEAK_CHECKED_SUITE(dashboard_history);

static struct patron_history_day a_day(void)
{
    struct patron_history_day d = {.as_of_ms = 1323733710000, .customers = 620};
    for (int i = 0; i < PATRON_SEGMENT_COUNT; i++)
        d.segments[i] = (uint64_t)(10 * i + 1);
    d.tiers[PATRON_TIER_SILVER] = 500;
    d.tiers[PATRON_TIER_GOLD] = 100;
    d.tiers[PATRON_TIER_PLATINUM] = 20;
    d.n_clusters = 2;
    d.clusters[0] = (struct patron_history_cluster){0, "recent, frequent, high spend", 93};
    d.clusters[1] = (struct patron_history_cluster){3, "lapsed, rare, low spend", 212};
    return d;
}

Test(dashboard_history, round_trip)
{
    struct patron_history_day d = a_day(), back;
    char *s = patron_history_day_encode(&d);
    cr_assert_eq(patron_history_day_decode(s, strlen(s), &back), 0, "%s", s);
    cr_expect_eq(memcmp(&d, &back, sizeof(d)), 0);
    cr_expect_lt(strlen(s), PATRON_HISTORY_STORED_MAX);
    free(s);
    d.n_clusters = 0; /* before the first fit */
    s = patron_history_day_encode(&d);
    cr_expect_not_null(strstr(s, "\"clusters\":[]"), "%s", s);
    cr_assert_eq(patron_history_day_decode(s, strlen(s), &back), 0);
    cr_expect_eq(back.n_clusters, 0);
    free(s);
}

Test(dashboard_history, api_form)
{
    struct patron_history_day d = a_day();
    json_t *o = patron_history_day_to_json(&d, "2011-12-09");
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_expect_str_eq(s, "{\"day\":\"2011-12-09\",\"as_of_ms\":1323733710000,\"customers\":620,"
                        "\"segments\":{\"new\":1,\"champion\":11,\"loyal\":21,\"at_risk\":31,"
                        "\"promising\":41,\"hibernating\":51,\"lost\":61,\"needs_attention\":71},"
                        "\"tiers\":{\"silver\":500,\"gold\":100,\"platinum\":20},\"clusters\":["
                        "{\"id\":0,\"label\":\"recent, frequent, high spend\",\"size\":93},"
                        "{\"id\":3,\"label\":\"lapsed, rare, low spend\",\"size\":212}]}");
    free(s);
    json_decref(o);
}

#define SEG                                                                                        \
    "\"segments\":{\"new\":1,\"champion\":1,\"loyal\":1,\"at_risk\":1,\"promising\":1,"            \
    "\"hibernating\":1,\"lost\":1,\"needs_attention\":1}"
#define TIERS "\"tiers\":{\"silver\":1,\"gold\":1,\"platinum\":1}"
#define HEAD "{\"version\":1,\"as_of_ms\":5,\"customers\":8,"

Test(dashboard_history, malformed_values_are_refused)
{
    static const char *const good = HEAD SEG "," TIERS ",\"clusters\":[]}";
    struct patron_history_day d;
    cr_assert_eq(patron_history_day_decode(good, strlen(good), &d), 0, "the table's base is good");
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "not json",
        "{\"version\":2,\"as_of_ms\":5,\"customers\":8," SEG "," TIERS ",\"clusters\":[]}",
        "{\"version\":1,\"as_of_ms\":-5,\"customers\":8," SEG "," TIERS ",\"clusters\":[]}",
        "{\"version\":1,\"as_of_ms\":5,\"customers\":-8," SEG "," TIERS ",\"clusters\":[]}",
        "{\"version\":1,\"as_of_ms\":5.5,\"customers\":8," SEG "," TIERS ",\"clusters\":[]}",
        HEAD SEG "," TIERS "}",
        HEAD SEG "," TIERS ",\"clusters\":[],\"extra\":1}",
        HEAD SEG "," TIERS ",\"clusters\":{}}",
        HEAD "\"segments\":{\"new\":1}," TIERS ",\"clusters\":[]}",
        HEAD SEG ",\"tiers\":{\"silver\":1,\"gold\":1,\"bronze\":1},\"clusters\":[]}",
        HEAD SEG ",\"tiers\":{\"silver\":1,\"gold\":1,\"platinum\":\"1\"},\"clusters\":[]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":16,\"label\":\"a\",\"size\":1}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":0,\"label\":\"\",\"size\":1}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":0,\"label\":\"a\",\"size\":-1}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":0,\"label\":\"a\"}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":1,\"label\":\"a\",\"size\":1},"
                 "{\"id\":1,\"label\":\"b\",\"size\":1}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":0,\"label\":\"a\\u0000b\",\"size\":1}]}",
        HEAD SEG "," TIERS ",\"clusters\":[{\"id\":0,\"label\":\"a\",\"size\":1,\"z\":1}]}",
        HEAD "\"customers\":9," SEG "," TIERS ",\"clusters\":[]}",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        struct patron_history_day out = {.customers = 42};
        cr_expect_eq(patron_history_day_decode(bad[i], strlen(bad[i]), &out), PATRON_EINVAL,
                     "row %zu: %s", i, bad[i]);
        cr_expect_eq(out.customers, 42, "untouched on row %zu", i);
    }
    /* too big */
    size_t n = PATRON_HISTORY_STORED_MAX + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, good, strlen(good));
    cr_expect_eq(patron_history_day_decode(big, n, &d), PATRON_EINVAL);
    free(big);
    cr_expect_eq(patron_history_day_decode(NULL, 0, &d), PATRON_EINVAL);
}
