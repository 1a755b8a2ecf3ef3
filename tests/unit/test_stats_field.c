/*
 * The campaign statistics' field (stats_field.h): what the trigger writes,
 * the API reads back, and nothing else.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/stats_field.h"

PATRON_LEAK_CHECKED_SUITE(stats_field);

Test(stats_field, round_trip_every_counter)
{
    for (unsigned s = 0; s < PATRON_STATS; s++) {
        char field[PATRON_STATS_FIELD_MAX];
        int n = patron_stats_field_format(field, "cart-abandonment", "B_2", (enum patron_stat)s);
        cr_assert_gt(n, 0);
        cr_assert_eq((size_t)n, strlen(field));
        char campaign[PATRON_CAMPAIGN_ID_MAX + 1], variant[PATRON_CAMPAIGN_ID_MAX + 1];
        enum patron_stat got;
        cr_assert_eq(patron_stats_field_parse(field, (size_t)n, campaign, variant, &got), 0, "%s",
                     field);
        cr_assert_str_eq(campaign, "cart-abandonment");
        cr_assert_str_eq(variant, "B_2");
        cr_assert_eq(got, (enum patron_stat)s);
    }
    char field[PATRON_STATS_FIELD_MAX];
    cr_assert_eq(patron_stats_field_format(field, "winback", "", PATRON_STAT_SENT), 13);
    cr_assert_str_eq(field, "winback||sent");
}

Test(stats_field, longest_ids_fit)
{
    char id[PATRON_CAMPAIGN_ID_MAX + 1], field[PATRON_STATS_FIELD_MAX];
    memset(id, 'a', PATRON_CAMPAIGN_ID_MAX);
    id[PATRON_CAMPAIGN_ID_MAX] = '\0';
    int n = patron_stats_field_format(field, id, id, PATRON_STAT_CONTROL_REVENUE_CENTS);
    cr_assert_gt(n, 0);
    char too_long[PATRON_CAMPAIGN_ID_MAX + 2];
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    cr_assert_eq(patron_stats_field_format(field, too_long, "", PATRON_STAT_SENT), PATRON_EINVAL);
}

Test(stats_field, refused)
{
    static const char *const bad[] = {
        "",          "|",          "||",         "c||",       "||sent",
        "c|v",       "c|v|nope",   "c|v|sent|x", "C|v|sent", /* campaign ids are lower case */
        "c|v!|sent", "c d|v|sent", "c|v|Sent",   "c|v|sent ",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        char campaign[PATRON_CAMPAIGN_ID_MAX + 1], variant[PATRON_CAMPAIGN_ID_MAX + 1];
        enum patron_stat st;
        cr_expect_eq(patron_stats_field_parse(bad[i], strlen(bad[i]), campaign, variant, &st),
                     PATRON_EINVAL, "'%s'", bad[i]);
    }
    char field[PATRON_STATS_FIELD_MAX];
    cr_expect_eq(patron_stats_field_format(field, "", "", PATRON_STAT_SENT), PATRON_EINVAL);
    cr_expect_eq(patron_stats_field_format(field, "c|d", "", PATRON_STAT_SENT), PATRON_EINVAL);
    cr_expect_eq(patron_stats_field_format(field, "c", "", (enum patron_stat)PATRON_STATS),
                 PATRON_EINVAL);
}
