#include <criterion/criterion.h>

#include "../support/leak_check.h"
#include "patron/tz.h"

PATRON_LEAK_CHECKED_SUITE(tz);

/* UTC instant of a civil date-time, by arithmetic alone (Howard Hinnant's
 * days_from_civil), so the expectations do not depend on the code under test. */
static int64_t utc(int y, int m, int d, int hh, int mm)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return ((days * 24 + hh) * 60 + mm) * 60000;
}

#define H 3600000LL

struct local_case {
    const char *zone;
    int64_t at;
    int y, mo, d, h, mi;
    int64_t offset;
    bool known;
};

Test(tz, local_time_table)
{
    static const struct local_case cases[] = {
        /* Europe/London, 2011: GMT -> BST at 01:00 UTC on 27 March, back on 30 October */
        {"Europe/London", 0, 2011, 3, 27, 0, 59, 0, true},
        {"Europe/London", 0, 2011, 3, 27, 2, 0, H, true},
        {"Europe/London", 0, 2011, 10, 30, 1, 59, H, true},
        {"Europe/London", 0, 2011, 10, 30, 1, 0, 0, true},
        /* 2026: 29 March and 25 October */
        {"Europe/London", 0, 2026, 3, 29, 0, 59, 0, true},
        {"Europe/London", 0, 2026, 3, 29, 2, 0, H, true},
        {"Europe/London", 0, 2026, 10, 25, 1, 30, H, true},
        {"Europe/London", 0, 2026, 10, 25, 1, 30, 0, true},
        /* America/New_York: EST -> EDT at 07:00 UTC on 8 March 2026 */
        {"America/New_York", 0, 2026, 3, 8, 1, 59, -5 * H, true},
        {"America/New_York", 0, 2026, 3, 8, 3, 0, -4 * H, true},
        {"America/New_York", 0, 2026, 7, 1, 8, 0, -4 * H, true},
        /* Asia/Kolkata: +05:30 all year */
        {"Asia/Kolkata", 0, 2026, 1, 1, 5, 30, 5 * H + H / 2, true},
        {"Asia/Kolkata", 0, 2026, 7, 1, 17, 30, 5 * H + H / 2, true},
        /* Australia/Lord_Howe: +11 in summer, +10:30 in winter (30-minute DST);
         * back at 15:00 UTC on 4 April 2026, forward at 15:30 UTC on 3 October */
        {"Australia/Lord_Howe", 0, 2026, 4, 5, 1, 59, 11 * H, true},
        {"Australia/Lord_Howe", 0, 2026, 4, 5, 1, 30, 10 * H + H / 2, true},
        {"Australia/Lord_Howe", 0, 2026, 10, 4, 2, 30, 11 * H, true},
        /* unknown, empty, garbage: UTC */
        {"Mars/Olympus_Mons", 0, 2026, 7, 1, 12, 0, 0, false},
        {"", 0, 2026, 7, 1, 12, 0, 0, false},
        {"Europe/London\n", 0, 2026, 7, 1, 12, 0, 0, false},
        {NULL, 0, 2026, 7, 1, 12, 0, 0, false},
        {"UTC", 0, 2026, 7, 1, 12, 0, 0, true},
    };
    /* the UTC instants of each row */
    const int64_t at[] = {
        utc(2011, 3, 27, 0, 59),  utc(2011, 3, 27, 1, 0),   utc(2011, 10, 30, 0, 59),
        utc(2011, 10, 30, 1, 0),  utc(2026, 3, 29, 0, 59),  utc(2026, 3, 29, 1, 0),
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 3, 8, 6, 59),
        utc(2026, 3, 8, 7, 0),    utc(2026, 7, 1, 12, 0),   utc(2026, 1, 1, 0, 0),
        utc(2026, 7, 1, 12, 0),   utc(2026, 4, 4, 14, 59),  utc(2026, 4, 4, 15, 0),
        utc(2026, 10, 3, 15, 30), utc(2026, 7, 1, 12, 0),   utc(2026, 7, 1, 12, 0),
        utc(2026, 7, 1, 12, 0),   utc(2026, 7, 1, 12, 0),   utc(2026, 7, 1, 12, 0),
    };
    cr_assert_eq(PATRON_ARRAY_LEN(at), PATRON_ARRAY_LEN(cases));
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct local_case *c = &cases[i];
        struct patron_local_time t;
        cr_assert_eq(patron_tz_local(c->zone, at[i], &t), 0, "row %zu", i);
        cr_expect_eq(t.year, c->y, "row %zu", i);
        cr_expect_eq(t.month, c->mo, "row %zu", i);
        cr_expect_eq(t.day, c->d, "row %zu", i);
        cr_expect_eq(t.hour, c->h, "row %zu: hour %d", i, t.hour);
        cr_expect_eq(t.minute, c->mi, "row %zu: minute %d", i, t.minute);
        cr_expect_eq(t.offset_ms, c->offset, "row %zu: offset %lld", i, (long long)t.offset_ms);
        cr_expect_eq(t.zone_known, c->known, "row %zu", i);
    }
}

struct utc_case {
    const char *zone;
    int y, mo, d, h, mi;
    int64_t want;
};

Test(tz, utc_of_local_table)
{
    const struct utc_case cases[] = {
        {"Europe/London", 2026, 1, 15, 9, 0, utc(2026, 1, 15, 9, 0)},
        {"Europe/London", 2026, 7, 15, 9, 0, utc(2026, 7, 15, 8, 0)},
        /* the morning after the clocks went forward: 09:00 BST */
        {"Europe/London", 2026, 3, 29, 9, 0, utc(2026, 3, 29, 8, 0)},
        {"Europe/London", 2011, 3, 27, 9, 0, utc(2011, 3, 27, 8, 0)},
        /* the morning after they went back: 09:00 GMT */
        {"Europe/London", 2026, 10, 25, 9, 0, utc(2026, 10, 25, 9, 0)},
        {"Europe/London", 2011, 10, 30, 9, 0, utc(2011, 10, 30, 9, 0)},
        /* spring-forward gap: 01:30 does not exist -> 02:00 BST, the end of the gap */
        {"Europe/London", 2026, 3, 29, 1, 30, utc(2026, 3, 29, 1, 0)},
        {"America/New_York", 2026, 3, 8, 2, 30, utc(2026, 3, 8, 7, 0)},
        /* fall-back overlap: 01:30 happens twice -> the first (BST) */
        {"Europe/London", 2026, 10, 25, 1, 30, utc(2026, 10, 25, 0, 30)},
        {"America/New_York", 2026, 11, 1, 1, 30, utc(2026, 11, 1, 5, 30)},
        {"Asia/Kolkata", 2026, 5, 1, 10, 0, utc(2026, 5, 1, 4, 30)},
        {"Australia/Lord_Howe", 2026, 1, 10, 10, 0, utc(2026, 1, 9, 23, 0)},
        {"Australia/Lord_Howe", 2026, 6, 10, 10, 0, utc(2026, 6, 9, 23, 30)},
        /* Lord Howe's gap is 30 minutes: 02:15 -> 02:30 */
        {"Australia/Lord_Howe", 2026, 10, 4, 2, 15, utc(2026, 10, 3, 15, 30)},
        {"No/Such_Zone", 2026, 6, 10, 10, 0, utc(2026, 6, 10, 10, 0)},
        {"Europe/London", 2024, 2, 29, 10, 0, utc(2024, 2, 29, 10, 0)},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct utc_case *c = &cases[i];
        int64_t got = 0;
        cr_assert_eq(patron_tz_utc(c->zone, c->y, c->mo, c->d, c->h, c->mi, &got, NULL), 0,
                     "row %zu", i);
        cr_expect_eq(got, c->want, "row %zu: got %lld want %lld", i, (long long)got,
                     (long long)c->want);
    }
}

Test(tz, utc_rejects_out_of_range_fields)
{
    const int bad[][5] = {
        {2026, 0, 1, 0, 0}, {2026, 13, 1, 0, 0}, {2026, 2, 29, 0, 0}, {2026, 4, 31, 0, 0},
        {2026, 1, 0, 0, 0}, {2026, 1, 1, 24, 0}, {2026, 1, 1, 0, 60}, {2026, 1, 1, -1, 0},
        {0, 1, 1, 0, 0},    {10000, 1, 1, 0, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        int64_t got = 42;
        cr_expect_eq(patron_tz_utc("Europe/London", bad[i][0], bad[i][1], bad[i][2], bad[i][3],
                                   bad[i][4], &got, NULL),
                     PATRON_EINVAL, "row %zu", i);
        cr_expect_eq(got, 42);
    }
}

Test(tz, local_rejects_huge_instants)
{
    struct patron_local_time t;
    cr_expect_eq(patron_tz_local("UTC", INT64_MAX, &t), PATRON_EINVAL);
    cr_expect_eq(patron_tz_local("UTC", INT64_MIN, &t), PATRON_EINVAL);
}

Test(tz, known_zones)
{
    cr_expect(patron_tz_known("Europe/London"));
    cr_expect(patron_tz_known("Australia/Lord_Howe"));
    cr_expect_not(patron_tz_known("europe/london_x"));
    cr_expect_not(patron_tz_known("Europe/London/../../etc/passwd"));
    char long_name[200];
    memset(long_name, 'A', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = 0;
    cr_expect_not(patron_tz_known(long_name));
}

Test(tz, days_in_month)
{
    cr_expect_eq(patron_tz_days_in_month(2024, 2), 29);
    cr_expect_eq(patron_tz_days_in_month(2026, 2), 28);
    cr_expect_eq(patron_tz_days_in_month(1900, 2), 28);
    cr_expect_eq(patron_tz_days_in_month(2000, 2), 29);
    cr_expect_eq(patron_tz_days_in_month(2026, 12), 31);
    cr_expect_eq(patron_tz_days_in_month(2026, 13), 0);
}
