#include <criterion/criterion.h>

#include "patron/pace.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(pace);

#define T 1000 /* the store's timeout in these tests, ms */

/* One batch's end against the pace, and what it must do. */
struct step {
    uint64_t seq;
    int64_t elapsed_ms;
    uint64_t next_seq;
    int want;          /* patron_pace_done's result */
    double want_level; /* after it */
};

static void run(struct patron_pace *p, const struct step *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = patron_pace_done(p, v[i].seq, v[i].elapsed_ms, T, v[i].next_seq);
        cr_assert_eq(got, v[i].want, "step %zu: done gave %d, want %d", i, got, v[i].want);
        cr_assert_float_eq(p->level, v[i].want_level, 1e-12, "step %zu: level %g, want %g", i,
                           p->level, v[i].want_level);
    }
}

Test(pace, starts_full_and_quick_batches_keep_it_full)
{
    struct patron_pace p;
    patron_pace_init(&p);
    cr_assert_eq(p.level, 1.0);
    static const struct step v[] = {{1, 0, 2, 0, 1.0}, {2, T / 4, 3, 0, 1.0}};
    run(&p, v, PATRON_ARRAY_LEN(v));
    cr_assert_eq(patron_pace_scale(&p, 5000), 5000);
    cr_assert_eq(patron_pace_scale(&p, 16), 16);
}

Test(pace, a_failure_halves_and_only_later_batches_count)
{
    struct patron_pace p;
    patron_pace_init(&p);
    cr_assert(patron_pace_failed(&p, 10));
    cr_assert_eq(p.level, 0.5);
    cr_assert_eq(patron_pace_scale(&p, 5000), 2500);
    cr_assert_eq(patron_pace_scale(&p, 16), 8);
    static const struct step v[] = {
        {9, 10, 12, 0, 0.5},                            /* started before the cut: ignored */
        {9, T, 12, 0, 0.5},                             /* even slow */
        {10, 10, 12, 1, 0.5 + PATRON_PACE_STEP},        /* quick: one step up */
        {11, T / 4 + 1, 12, 0, 0.5 + PATRON_PACE_STEP}, /* between a quarter and a half: stays */
        {11, T / 2, 12, 0, 0.5 + PATRON_PACE_STEP},     /* a half exactly: stays */
        {12, T / 2 + 1, 20, -1, (0.5 + PATRON_PACE_STEP) / 2}, /* slow: halved, a new round */
        {19, T, 21, 0, (0.5 + PATRON_PACE_STEP) / 2},          /* of the old round: no second cut */
        {20, T, 21, -1, (0.5 + PATRON_PACE_STEP) / 4},         /* of the new one: cut again */
    };
    run(&p, v, PATRON_ARRAY_LEN(v));
}

Test(pace, grows_back_to_full_additively_and_stops_there)
{
    struct patron_pace p;
    patron_pace_init(&p);
    cr_assert(patron_pace_failed(&p, 1));
    size_t steps = 0;
    for (uint64_t seq = 1; p.level < 1.0; seq++, steps++)
        cr_assert_eq(patron_pace_done(&p, seq, 0, T, seq + 1), 1);
    cr_assert_eq(steps, (size_t)(0.5 / PATRON_PACE_STEP), "%zu steps from a half", steps);
    cr_assert_eq(p.level, 1.0);
    cr_assert_eq(patron_pace_done(&p, 100, 0, T, 101), 0, "full: no further");
}

Test(pace, floors_at_the_minimum_and_scale_never_gives_zero)
{
    struct patron_pace p;
    patron_pace_init(&p);
    size_t cuts = 0;
    uint64_t seq = 1;
    while (patron_pace_failed(&p, seq++))
        cuts++;
    cr_assert_eq(cuts, 10, "1 -> 1/1024 in %zu halvings", cuts);
    cr_assert_eq(p.level, PATRON_PACE_MIN);
    cr_assert_not(patron_pace_failed(&p, seq + 1), "already at the minimum");
    cr_assert_eq(patron_pace_done(&p, seq + 1, T, T, seq + 2), 0, "slow at the minimum: stays");
    cr_assert_eq(p.level, PATRON_PACE_MIN);
    cr_assert_eq(patron_pace_scale(&p, 16), 1);
    cr_assert_eq(patron_pace_scale(&p, 1), 1);
    cr_assert_eq(patron_pace_scale(&p, 0), 0);
    cr_assert_eq(patron_pace_scale(&p, 100000), 97);
}

Test(pace, failures_without_a_batch_between_them_are_one)
{
    struct patron_pace p;
    patron_pace_init(&p);
    cr_assert(patron_pace_failed(&p, 5));
    cr_assert_not(patron_pace_failed(&p, 5), "the second connection of the same outage");
    cr_assert_eq(p.level, 0.5);
    cr_assert(patron_pace_failed(&p, 6), "a batch went out since: a new failure");
    cr_assert_eq(p.level, 0.25);
}

Test(pace, without_a_timeout_only_failures_slow_it)
{
    struct patron_pace p;
    patron_pace_init(&p);
    cr_assert(patron_pace_failed(&p, 1));
    cr_assert_eq(patron_pace_done(&p, 1, 60000, 0, 2), 1, "no deadline: any end is quick");
    cr_assert_eq(p.level, 0.5 + PATRON_PACE_STEP);
}
