#include <criterion/criterion.h>
#include <string.h>

#include "patron/clock.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(clock);

#define P(ms, idle)                                                                                \
    {                                                                                              \
        (ms), (idle)                                                                               \
    }

Test(clock, watermark_table)
{
    static const struct {
        const char *name;
        struct patron_partition_time parts[4];
        size_t n;
        int64_t want;
    } cases[] = {
        {"no partitions", {{0}}, 0, 0},
        {"one busy", {P(100, false)}, 1, 100},
        {"one idle", {P(100, true)}, 1, 100},
        {"min of busy", {P(300, false), P(100, false), P(200, false)}, 3, 100},
        {"idle ahead does not count", {P(100, false), P(900, true)}, 2, 100},
        {"idle behind does not hold back", {P(500, false), P(100, true)}, 2, 500},
        {"all idle: max", {P(300, true), P(900, true), P(100, true)}, 3, 900},
        {"busy partition that applied nothing holds all", {P(0, false), P(900, false)}, 2, 0},
        {"idle empty partition ignored", {P(0, true), P(700, false)}, 2, 700},
        {"several busy, several idle",
         {P(800, false), P(50, true), P(600, false), P(5000, true)},
         4,
         600},
        {"large epoch values",
         {P(1291192000000, false), P(1291300000000, false)},
         2,
         1291192000000},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++)
        cr_assert_eq(patron_clock_watermark(cases[i].parts, cases[i].n), cases[i].want, "%s",
                     cases[i].name);
}

Test(clock, watermark_null_with_zero)
{
    cr_assert_eq(patron_clock_watermark(NULL, 0), 0);
}

Test(clock, encode_table)
{
    static const struct {
        struct patron_partition_time t;
        const char *want;
    } cases[] = {
        {P(1291192000000, true), "1291192000000:1"},
        {P(1291192000000, false), "1291192000000:0"},
        {P(0, false), "0:0"},
        {P(INT64_MAX, true), "9223372036854775807:1"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        char buf[PATRON_CLOCK_VALUE_MAX];
        int n = patron_clock_value_encode(buf, sizeof(buf), &cases[i].t);
        cr_assert_eq(n, (int)strlen(cases[i].want), "case %zu", i);
        cr_assert_str_eq(buf, cases[i].want, "case %zu", i);
        struct patron_partition_time back;
        cr_assert_eq(patron_clock_value_decode(buf, (size_t)n, &back), 0, "case %zu", i);
        cr_assert_eq(back.ms, cases[i].t.ms);
        cr_assert_eq(back.idle, cases[i].t.idle);
    }
}

Test(clock, encode_errors)
{
    char buf[PATRON_CLOCK_VALUE_MAX];
    struct patron_partition_time neg = P(-1, false);
    cr_assert_eq(patron_clock_value_encode(buf, sizeof(buf), &neg), PATRON_EINVAL);
    struct patron_partition_time t = P(1291192000000, true);
    cr_assert_eq(patron_clock_value_encode(buf, 15, &t), PATRON_ETOOBIG, "needs 16 with the NUL");
    cr_assert_eq(patron_clock_value_encode(buf, 16, &t), 15);
    cr_assert_eq(patron_clock_value_encode(buf, 0, &t), PATRON_ETOOBIG);
}

Test(clock, decode_rejects_everything_but_the_canonical_form)
{
    static const char *const bad[] = {
        "",
        ":",
        ":1",
        "1:",
        "1",
        "1:2",
        "1:00",
        "01:0",
        "00:1",
        "+1:0",
        "-1:0",
        " 1:0",
        "1:0 ",
        "1 :0",
        "1:0\n",
        "1.5:0",
        "0x10:0",
        "abc:1",
        "1:1:1",
        "9223372036854775808:0",  /* INT64_MAX + 1 */
        "99999999999999999999:0", /* 20 digits */
        "1:true",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        struct patron_partition_time t = P(77, true);
        cr_assert_eq(patron_clock_value_decode(bad[i], strlen(bad[i]), &t), PATRON_EINVAL,
                     "\"%s\" accepted", bad[i]);
        cr_assert_eq(t.ms, 77, "output untouched on error");
    }
    struct patron_partition_time t;
    cr_assert_eq(patron_clock_value_decode(NULL, 3, &t), PATRON_EINVAL);
    /* the length is what counts, not a NUL: embedded NUL and short lengths */
    cr_assert_eq(patron_clock_value_decode("5:1\0", 4, &t), PATRON_EINVAL);
    cr_assert_eq(patron_clock_value_decode("5:1xyz", 3, &t), 0);
    cr_assert_eq(t.ms, 5);
    cr_assert(t.idle);
}

Test(clock, decode_garbage_bytes)
{
    /* every 3-byte string over a few interesting bytes: only d:f forms pass */
    static const char alphabet[] = {'0', '1', '9', ':', '-', '\0', '\xff', 'a'};
    for (size_t a = 0; a < sizeof(alphabet); a++)
        for (size_t b = 0; b < sizeof(alphabet); b++)
            for (size_t c = 0; c < sizeof(alphabet); c++) {
                char s[3] = {alphabet[a], alphabet[b], alphabet[c]};
                struct patron_partition_time t;
                bool valid =
                    s[0] >= '0' && s[0] <= '9' && s[1] == ':' && (s[2] == '0' || s[2] == '1');
                int rc = patron_clock_value_decode(s, 3, &t);
                cr_assert_eq(rc, valid ? 0 : PATRON_EINVAL, "%02x %02x %02x", (unsigned char)s[0],
                             (unsigned char)s[1], (unsigned char)s[2]);
            }
}

Test(clock, kind_parse_table)
{
    static const struct {
        const char *in;
        int rc;
        enum patron_clock_kind kind;
    } cases[] = {
        {"wall", 0, PATRON_CLOCK_WALL}, {"event", 0, PATRON_CLOCK_EVENT},
        {"Wall", PATRON_EINVAL, 0},     {"", PATRON_EINVAL, 0},
        {"events", PATRON_EINVAL, 0},   {NULL, PATRON_EINVAL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        enum patron_clock_kind k = PATRON_CLOCK_WALL;
        cr_assert_eq(patron_clock_kind_parse(cases[i].in, &k), cases[i].rc, "case %zu", i);
        if (cases[i].rc == 0)
            cr_assert_eq(k, cases[i].kind, "case %zu", i);
    }
    cr_assert_str_eq(patron_clock_kind_name(PATRON_CLOCK_EVENT), "event");
    cr_assert_str_eq(patron_clock_kind_name(PATRON_CLOCK_WALL), "wall");
}

Test(clock, event_clock_reads_the_watermark_and_never_goes_back)
{
    struct patron_clock c;
    patron_clock_init(&c, PATRON_CLOCK_EVENT);
    cr_assert_eq(patron_clock_now_ms(&c), 0);
    cr_assert_eq(patron_clock_advance(&c, 1000), 1000);
    cr_assert_eq(patron_clock_now_ms(&c), 1000);
    cr_assert_eq(patron_clock_advance(&c, 400), 1000, "an older watermark does not turn time back");
    cr_assert_eq(patron_clock_now_ms(&c), 1000);
    cr_assert_eq(patron_clock_advance(&c, 1001), 1001);
}

/* The trigger's sweep bound. Times from test_trigger.py: the story's hana
 * has a timer due 2011-04-10 (at-risk), the clock has reached the end of May
 * and her partition's own time is 2011-02-01 when a new owner takes it. */
Test(clock, fire_bound_table)
{
#define W PATRON_CLOCK_WALL
#define E PATRON_CLOCK_EVENT
#define NOW INT64_C(1306851360000)
#define OWN INT64_C(1296574500000)
    static const struct {
        const char *name;
        struct patron_fire_input in; /* kind, now, stream, queued, lag, quiet, all_idle */
        bool want_now;               /* else min(now, stream) */
    } cases[] = {
        {"caught up, quiet, all idle", {E, NOW, OWN, false, 0, true, true}, true},
        {"lag not known yet: the updates may not be fetched (the restart flake)",
         {E, NOW, OWN, false, PATRON_EIO, true, true},
         false},
        {"partition no longer assigned", {E, NOW, OWN, false, PATRON_ENOTFOUND, true, true}, false},
        {"messages left to read", {E, NOW, OWN, false, 12, true, true}, false},
        {"updates queued", {E, NOW, OWN, true, 0, true, true}, false},
        {"not quiet yet", {E, NOW, OWN, false, 0, false, true}, false},
        {"ingest not idle everywhere", {E, NOW, OWN, false, 0, true, false}, false},
        {"wall clock, caught up", {W, NOW, OWN, false, 0, false, false}, true},
        {"wall clock, lag not known", {W, NOW, OWN, false, PATRON_EIO, true, true}, false},
        {"wall clock, queued", {W, NOW, OWN, true, 0, true, true}, false},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++)
        cr_assert_eq(patron_clock_fire_bound(&cases[i].in), cases[i].want_now ? NOW : OWN, "%s",
                     cases[i].name);
#undef W
#undef E
#undef NOW
#undef OWN
}

Test(clock, fire_bound_never_passes_now)
{
    /* a partition ahead of the clock (the watermark waits for a slower one)
     * fires up to now only, whatever else holds */
    const int64_t now = 1000, ahead = 5000;
    for (int bits = 0; bits < 16; bits++) {
        struct patron_fire_input in = {
            .kind = (bits & 1) ? PATRON_CLOCK_EVENT : PATRON_CLOCK_WALL,
            .now_ms = now,
            .stream_ms = ahead,
            .queued = bits & 2,
            .lag = (bits & 4) ? -1 : 0,
            .quiet = bits & 8,
            .all_idle = true,
        };
        cr_assert_eq(patron_clock_fire_bound(&in), now, "case %d", bits);
    }
    struct patron_fire_input fresh = {.kind = PATRON_CLOCK_EVENT, .lag = -1, .quiet = true};
    cr_assert_eq(patron_clock_fire_bound(&fresh), 0, "nothing applied, no clock: nothing fires");
}

/* The trigger's gate: a now is trusted once the partition applied the
 * updates delivered before it was written. Each step: offer (ms, offset)
 * when ms >= 0, then pass(applied) must give want. */
Test(clock, gate_table)
{
    static const struct {
        const char *name;
        int64_t ms, offset, applied, want;
    } steps[] = {
        {"nothing read yet", -1, 0, 0, 0},
        {"a now with nothing delivered on the partition", 1000, 0, -1, 1000},
        {"a later now waits for its offset", 2000, 10, 9, 1000},
        {"an even later one too", 3000, 20, 9, 1000},
        {"the first offset reached: its now, not the later one", -1, 0, 10, 2000},
        {"an older read adds nothing", 1500, 5, 10, 2000},
        {"both reached", -1, 0, 25, 3000},
        {"an unknown position counts as 0", 4000, 30, -1, 3000},
        {"reached", -1, 0, 30, 4000},
    };
    struct patron_clock_gate g = {0};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(steps); i++) {
        if (steps[i].ms >= 0)
            patron_clock_gate_offer(&g, steps[i].ms, steps[i].offset);
        cr_assert_eq(patron_clock_gate_pass(&g, steps[i].applied), steps[i].want, "%s: %lld",
                     steps[i].name, (long long)patron_clock_gate_pass(&g, steps[i].applied));
    }
}

Test(clock, gate_full_queue_keeps_waiting_for_the_newest)
{
    /* reads every 100 ms while the partition is far behind: the queue
     * fills, the newest entry takes the later reads, and nothing is trusted
     * before its offset is applied */
    struct patron_clock_gate g = {0};
    for (int i = 1; i <= 100; i++)
        patron_clock_gate_offer(&g, 1000 * i, 10 * i);
    cr_assert_eq(g.n, PATRON_CLOCK_GATE_PENDING);
    cr_assert_eq(patron_clock_gate_pass(&g, 10), 1000);
    cr_assert_eq(patron_clock_gate_pass(&g, 999), 7000, "the queue's own entries in turn");
    cr_assert_eq(patron_clock_gate_pass(&g, 1000), 100000);
    cr_assert_eq(g.n, 0);
    for (int64_t applied = 0; applied < 2000; applied += 7)
        cr_assert_leq(patron_clock_gate_pass(&g, applied), 100000, "never past what was offered");
}

/* Reading the system clock is not I/O; these only check sanity and units. */
Test(clock, wall_and_monotonic)
{
    struct patron_clock c;
    patron_clock_init(&c, PATRON_CLOCK_WALL);
    c.event_now_ms = 5; /* ignored by the wall clock */
    int64_t now = patron_clock_now_ms(&c);
    cr_assert_gt(now, INT64_C(1577836800000), "after 2020 in ms");
    cr_assert_lt(now, INT64_C(4102444800000), "before 2100 in ms");
    int64_t w = patron_wall_ms();
    cr_assert_geq(w, now);
    cr_assert_lt(w - now, 60000);
    int64_t m1 = patron_monotonic_ms(), m2 = patron_monotonic_ms();
    cr_assert_geq(m2, m1);
}

/* ---- UTC days ------------------------------------------------------------------- */

Test(clock, utc_day_and_date_table)
{
    static const struct {
        int64_t ms, day;
        const char *date;
    } cases[] = {
        {0, 0, "1970-01-01"},
        {PATRON_DAY_MS - 1, 0, "1970-01-01"},
        {PATRON_DAY_MS, 1, "1970-01-02"},
        {INT64_C(951782400000), 11016, "2000-02-29"}, /* a leap day of a century leap year */
        {INT64_C(951868800000), 11017, "2000-03-01"},
        {INT64_C(1291192000000), 14944, "2010-12-01"}, /* Online Retail's first day */
        {INT64_C(1323475199999), 15317, "2011-12-09"},
        {INT64_C(4107542400000), 47541, "2100-03-01"}, /* 2100 is not a leap year */
        {PATRON_TIME_MAX_MS, PATRON_DAY_MAX, "9999-12-31"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        cr_expect_eq(patron_utc_day(cases[i].ms), cases[i].day, "%s", cases[i].date);
        char d[PATRON_DATE_LEN + 1];
        cr_assert_eq(patron_utc_date_format(cases[i].day, d), 0);
        cr_expect_str_eq(d, cases[i].date);
        int64_t back = -1;
        cr_assert_eq(patron_utc_date_parse(d, strlen(d), &back), 0, "%s", d);
        cr_expect_eq(back, cases[i].day, "%s", d);
    }
    cr_expect_eq(patron_utc_day(-1), -1, "floor, not truncation");
    cr_expect_eq(patron_utc_day(-PATRON_DAY_MS), -1);
}

Test(clock, utc_dates_round_trip_every_day)
{
    char d[PATRON_DATE_LEN + 1], prev[PATRON_DATE_LEN + 1] = "";
    for (int64_t day = 0; day <= PATRON_DAY_MAX; day += 7) {
        cr_assert_eq(patron_utc_date_format(day, d), 0);
        int64_t back;
        cr_assert_eq(patron_utc_date_parse(d, strlen(d), &back), 0, "%s", d);
        cr_assert_eq(back, day, "%s", d);
        cr_assert_gt(strcmp(d, prev), 0, "dates sort as days: %s after %s", d, prev);
        memcpy(prev, d, sizeof(d));
    }
}

Test(clock, utc_date_errors)
{
    char d[PATRON_DATE_LEN + 1];
    cr_expect_eq(patron_utc_date_format(-1, d), PATRON_EINVAL);
    cr_expect_str_eq(d, "");
    cr_expect_eq(patron_utc_date_format(PATRON_DAY_MAX + 1, d), PATRON_EINVAL);
    static const char *const bad[] = {
        "",           "2011-1-01",  "2011-01-1",   "2011/01/01", "2011-13-01", "2011-00-10",
        "2011-02-29", "2100-02-29", "2011-04-31",  "1969-12-31", "+011-01-01", "2011-01-01 ",
        "20110101",   "2011-01-0x", "10000-01-01", "2011-01-00",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        int64_t day = 42;
        cr_expect_eq(patron_utc_date_parse(bad[i], strlen(bad[i]), &day), PATRON_EINVAL, "'%s'",
                     bad[i]);
        cr_expect_eq(day, 42, "untouched on '%s'", bad[i]);
    }
    int64_t day;
    cr_expect_eq(patron_utc_date_parse("2012-02-29", 10, &day), 0, "a leap day");
}
