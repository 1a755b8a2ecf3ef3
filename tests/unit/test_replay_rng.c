/* patron-replay's deterministic randomness (services/tools/replay/rng.h):
 * reproducible streams, bounds, and the shape of the Zipf sampler. */
#include <criterion/criterion.h>
#include <math.h>

#include "../../services/tools/replay/rng.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(replay_rng);

Test(replay_rng, splitmix64_reference_vector)
{
    /* The published first outputs of splitmix64 seeded with 0. */
    uint64_t x = 0;
    cr_assert_eq(replay_splitmix64(&x), UINT64_C(0xe220a8397b1dcdaf));
    cr_assert_eq(replay_splitmix64(&x), UINT64_C(0x6e789e6aa1b965f4));
    cr_assert_eq(replay_splitmix64(&x), UINT64_C(0x06c45d188009454f));
}

Test(replay_rng, same_seed_same_stream_same_numbers)
{
    struct replay_rng a, b, c, d;
    replay_rng_init(&a, 42, 1);
    replay_rng_init(&b, 42, 1);
    replay_rng_init(&c, 42, 2);
    replay_rng_init(&d, 43, 1);
    int differ_stream = 0, differ_seed = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = replay_rng_next(&a);
        cr_assert_eq(x, replay_rng_next(&b), "draw %d", i);
        differ_stream += x != replay_rng_next(&c);
        differ_seed += x != replay_rng_next(&d);
    }
    cr_assert_gt(differ_stream, 990);
    cr_assert_gt(differ_seed, 990);
}

Test(replay_rng, below_and_range_bounds)
{
    struct replay_rng r;
    replay_rng_init(&r, 7, 0);
    bool seen_lo = false, seen_hi = false;
    for (int i = 0; i < 100000; i++) {
        cr_assert_lt(replay_rng_below(&r, 3), 3);
        cr_assert_eq(replay_rng_below(&r, 1), 0);
        int64_t v = replay_rng_range(&r, 1, 30);
        cr_assert(v >= 1 && v <= 30, "%lld", (long long)v);
        seen_lo |= v == 1;
        seen_hi |= v == 30;
        double u = replay_rng_unit(&r);
        cr_assert(u >= 0.0 && u < 1.0);
    }
    cr_assert(seen_lo && seen_hi, "both ends of [1, 30] come up");
    cr_assert_eq(replay_rng_range(&r, -5, -5), -5);
    /* The full 64-bit span must not overflow. */
    (void)replay_rng_range(&r, INT64_MIN / 2, INT64_MAX / 2);
}

Test(replay_rng, percent_rates)
{
    struct replay_rng r;
    replay_rng_init(&r, 1, 0);
    int n = 200000, five = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_not(replay_rng_percent(&r, 0));
        cr_assert(replay_rng_percent(&r, 100));
        five += replay_rng_percent(&r, 5);
    }
    cr_assert(five > n * 0.045 && five < n * 0.055, "5%% came out as %d of %d", five, n);
}

Test(replay_rng, zipf_rejects_bad_parameters)
{
    struct replay_zipf z;
    cr_assert_eq(replay_zipf_init(&z, 0, 1.0), PATRON_EINVAL);
    cr_assert_eq(replay_zipf_init(&z, 10, -0.5), PATRON_EINVAL);
    cr_assert_eq(replay_zipf_init(&z, 10, NAN), PATRON_EINVAL);
    cr_assert_eq(replay_zipf_init(&z, REPLAY_ZIPF_MAX_N + 1, 1.0), PATRON_ETOOBIG);
    cr_assert_eq(replay_zipf_init(&z, SIZE_MAX, 1.0), PATRON_ETOOBIG);
}

Test(replay_rng, zipf_one_item)
{
    struct replay_zipf z;
    struct replay_rng r;
    replay_rng_init(&r, 3, 0);
    cr_assert_eq(replay_zipf_init(&z, 1, 1.0), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(replay_zipf_sample(&z, &r), 0);
    replay_zipf_free(&z);
}

/* With s = 1, rank k comes up about 1/(k+1) as often as rank 0. */
Test(replay_rng, zipf_shape)
{
    struct replay_zipf z;
    struct replay_rng r;
    replay_rng_init(&r, 11, 0);
    enum { N = 1000, DRAWS = 400000 };
    static unsigned counts[N];
    cr_assert_eq(replay_zipf_init(&z, N, 1.0), 0);
    for (int i = 0; i < DRAWS; i++) {
        size_t k = replay_zipf_sample(&z, &r);
        cr_assert_lt(k, N);
        counts[k]++;
    }
    double h = 0; /* harmonic number H_N */
    for (int k = 1; k <= N; k++)
        h += 1.0 / k;
    double p0 = 1.0 / h;
    cr_assert(fabs(counts[0] / (double)DRAWS - p0) < 0.01, "rank 0: %u", counts[0]);
    double ratio = counts[0] / (double)counts[1];
    cr_assert(ratio > 1.8 && ratio < 2.2, "rank0/rank1 = %f", ratio);
    ratio = counts[0] / (double)counts[9];
    cr_assert(ratio > 8.5 && ratio < 11.5, "rank0/rank9 = %f", ratio);
    replay_zipf_free(&z);
    cr_assert_null(z.cdf);
}

Test(replay_rng, zipf_zero_exponent_is_uniform)
{
    struct replay_zipf z;
    struct replay_rng r;
    replay_rng_init(&r, 5, 0);
    unsigned counts[4] = {0};
    cr_assert_eq(replay_zipf_init(&z, 4, 0.0), 0);
    for (int i = 0; i < 40000; i++)
        counts[replay_zipf_sample(&z, &r)]++;
    for (int k = 0; k < 4; k++)
        cr_assert(counts[k] > 9000 && counts[k] < 11000, "rank %d: %u", k, counts[k]);
    replay_zipf_free(&z);
}
