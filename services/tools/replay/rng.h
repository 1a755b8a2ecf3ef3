/*
 * Deterministic randomness for patron-replay: the same seed gives the same
 * resends, garbage, derived browsing and synthetic load on every machine
 * (xoshiro256** seeded through splitmix64; no libc rand, no global state).
 * A struct replay_rng is a plain value owned by its user; each purpose has
 * its own stream (replay_rng_init with a distinct `stream`) so that turning
 * one feature on does not move the others. Header-only and pure, like
 * parse.h; tests/unit/test_replay_rng.c pins its outputs.
 */
#ifndef PATRON_REPLAY_RNG_H
#define PATRON_REPLAY_RNG_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "patron/common.h"

struct replay_rng {
    uint64_t s[4];
};

static inline uint64_t replay_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A stable 64-bit mix of one value (e.g. an item's price from its rank). */
static inline uint64_t replay_mix64(uint64_t v)
{
    return replay_splitmix64(&v);
}

static inline void replay_rng_init(struct replay_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xd1b54a32d192ed03));
    for (int i = 0; i < 4; i++)
        r->s[i] = replay_splitmix64(&x);
}

static inline uint64_t replay_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t replay_rng_next(struct replay_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = replay_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = replay_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0 (multiply-shift; the bias is below 2^-32 for the
 * sizes used here). */
static inline uint64_t replay_rng_below(struct replay_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)replay_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi], lo <= hi. */
static inline int64_t replay_rng_range(struct replay_rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)replay_rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* Uniform in [0, 1). */
static inline double replay_rng_unit(struct replay_rng *r)
{
    return (double)(replay_rng_next(r) >> 11) * 0x1.0p-53;
}

/* True with probability percent / 100 (percent in 0..100). */
static inline bool replay_rng_percent(struct replay_rng *r, unsigned percent)
{
    return replay_rng_below(r, 100) < percent;
}

/*
 * Zipf(s) over ranks 0..n-1 (rank 0 the most frequent, weight 1/(rank+1)^s),
 * sampled by binary search in the cumulative weights: O(log n) per draw, n
 * doubles of memory, built once. Owned by the caller: init, sample, free.
 */
struct replay_zipf {
    double *cdf; /* cdf[i] = sum of weights of ranks 0..i */
    size_t n;
};

#define REPLAY_ZIPF_MAX_N ((size_t)10 * 1000 * 1000)

/* PATRON_EINVAL if n == 0 or s < 0, PATRON_ETOOBIG past REPLAY_ZIPF_MAX_N. */
PATRON_MUST_USE static inline int replay_zipf_init(struct replay_zipf *z, size_t n, double s)
{
    if (n == 0 || !(s >= 0))
        return PATRON_EINVAL;
    if (n > REPLAY_ZIPF_MAX_N)
        return PATRON_ETOOBIG;
    z->cdf = patron_malloc(n * sizeof(*z->cdf));
    z->n = n;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), s);
        z->cdf[i] = sum;
    }
    return 0;
}

static inline size_t replay_zipf_sample(const struct replay_zipf *z, struct replay_rng *r)
{
    double u = replay_rng_unit(r) * z->cdf[z->n - 1];
    size_t lo = 0, hi = z->n - 1; /* the first i with cdf[i] > u */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static inline void replay_zipf_free(struct replay_zipf *z)
{
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}

#endif
