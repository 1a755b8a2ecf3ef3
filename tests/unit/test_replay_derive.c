/* patron-replay --derive-profile (services/tools/replay/derive_profile.h):
 * the country table, birthdays that are real dates (29 February included),
 * consent shares, and values pinned so that the demo's customers keep the
 * same birthdays and consent from one release to the next. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../services/tools/replay/derive_profile.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(replay_derive);

static const struct {
    const char *country, *time_zone, *locale; /* NULL time zone: not in the table */
} countries[] = {
    {"United Kingdom", "Europe/London", "en-GB"},
    {"France", "Europe/Paris", "fr-FR"},
    {"Germany", "Europe/Berlin", "de-DE"},
    {"EIRE", "Europe/Dublin", "en-IE"},
    {"USA", "America/New_York", "en-US"},
    {"RSA", "Africa/Johannesburg", "en-ZA"},
    {"Hong Kong", "Asia/Hong_Kong", "zh-HK"},
    {"Unspecified", "UTC", ""},
    {"European Community", "UTC", ""},
    {"united kingdom", NULL, NULL}, /* exact match only */
    {"United Kingdom ", NULL, NULL},
    {"", NULL, NULL},
    {"Atlantis", NULL, NULL},
};

Test(replay_derive, country_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(countries); i++) {
        const char *c = countries[i].country;
        const struct replay_country *row = replay_country_find(c, strlen(c));
        if (!countries[i].time_zone) {
            cr_assert_null(row, "%s", c);
            continue;
        }
        cr_assert_not_null(row, "%s", c);
        cr_assert_str_eq(row->time_zone, countries[i].time_zone, "%s", c);
        cr_assert_str_eq(row->locale, countries[i].locale, "%s", c);
    }
}

Test(replay_derive, every_time_zone_is_shaped_like_iana)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(REPLAY_COUNTRIES); i++) {
        const char *tz = REPLAY_COUNTRIES[i].time_zone;
        cr_assert(strcmp(tz, "UTC") == 0 || strchr(tz, '/') != NULL, "%s", tz);
        cr_assert_lt(strlen(REPLAY_COUNTRIES[i].locale), 36);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(REPLAY_COUNTRIES[i].country, REPLAY_COUNTRIES[j].country);
    }
}

static const struct {
    const char *id;
    const char *birthday;
    bool sms, push, email;
} pinned[] = {
    {"17850", "06-25", false, false, true}, {"13748", "08-20", true, true, false},
    {"12583", "05-27", false, true, true},  {"", "09-22", false, false, true},
    {"x", "09-16", true, true, true},
};

Test(replay_derive, pinned_values)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(pinned); i++) {
        const char *id = pinned[i].id;
        size_t n = strlen(id);
        char b[6];
        replay_birthday(id, n, b);
        cr_assert_str_eq(b, pinned[i].birthday, "%s", id);
        cr_assert_eq(replay_consent(id, n, 1), pinned[i].sms, "%s sms", id);
        cr_assert_eq(replay_consent(id, n, 2), pinned[i].push, "%s push", id);
        cr_assert_eq(replay_consent(id, n, 3), pinned[i].email, "%s email", id);
    }
}

Test(replay_derive, birthdays_are_real_dates_and_cover_the_leap_day)
{
    static const int days_in[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int seen[12][31] = {{0}};
    for (int i = 0; i < 200000; i++) {
        char id[16], b[6];
        int n = snprintf(id, sizeof(id), "c%d", i);
        replay_birthday(id, (size_t)n, b);
        cr_assert_eq(strlen(b), 5);
        cr_assert_eq(b[2], '-');
        int month = (b[0] - '0') * 10 + (b[1] - '0'), day = (b[3] - '0') * 10 + (b[4] - '0');
        cr_assert(month >= 1 && month <= 12, "%s", b);
        cr_assert(day >= 1 && day <= days_in[month - 1], "%s", b);
        seen[month - 1][day - 1]++;
    }
    for (int m = 0; m < 12; m++)
        for (int d = 0; d < days_in[m]; d++)
            cr_assert_gt(seen[m][d], 400, "%02d-%02d drawn %d times", m + 1, d + 1, seen[m][d]);
}

Test(replay_derive, consent_shares_and_independence)
{
    int granted[4] = {0}, sms_and_email = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        char id[16];
        int len = snprintf(id, sizeof(id), "%d", 10000 + i);
        for (int ch = 1; ch <= 3; ch++)
            granted[ch] += replay_consent(id, (size_t)len, ch);
        sms_and_email += replay_consent(id, (size_t)len, 1) && replay_consent(id, (size_t)len, 3);
    }
    /* 40%, 60%, 80% within 1 point; independent draws: 0.4 * 0.8 = 32% */
    cr_assert(granted[1] > 39000 && granted[1] < 41000, "sms %d", granted[1]);
    cr_assert(granted[2] > 59000 && granted[2] < 61000, "push %d", granted[2]);
    cr_assert(granted[3] > 79000 && granted[3] < 81000, "email %d", granted[3]);
    cr_assert(sms_and_email > 31000 && sms_and_email < 33000, "both %d", sms_and_email);
}

Test(replay_derive, unknown_channel_is_never_granted)
{
    static const int bad[] = {0, 4, -1, 1000};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        cr_assert_not(replay_consent("x", 1, bad[i]));
        cr_assert_eq(replay_consent_percent(bad[i]), 0u);
    }
}

/* A quarter of the customers first came as visitors, half of those as
 * guests at checkout; the anonymous id is the customer's hash, fixed. */
Test(replay_derive, visitors)
{
    int kinds[3] = {0};
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        char id[16];
        int len = snprintf(id, sizeof(id), "%d", 10000 + i);
        kinds[replay_visitor_of(id, (size_t)len)]++;
    }
    cr_assert(kinds[REPLAY_VISITOR_LOGIN] > 12000 && kinds[REPLAY_VISITOR_LOGIN] < 13000, "%d",
              kinds[REPLAY_VISITOR_LOGIN]);
    cr_assert(kinds[REPLAY_VISITOR_GUEST] > 12000 && kinds[REPLAY_VISITOR_GUEST] < 13000, "%d",
              kinds[REPLAY_VISITOR_GUEST]);
    char a[22], b[22];
    replay_anonymous_id("17850", 5, a);
    replay_anonymous_id("17850", 5, b);
    cr_assert_str_eq(a, b, "a function of the customer");
    cr_assert_eq(strlen(a), 21);
    cr_assert_eq(strncmp(a, "anon-", 5), 0);
    replay_anonymous_id("17851", 5, b);
    cr_assert_str_neq(a, b);
}
