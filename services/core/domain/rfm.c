#include "patron/rfm.h"

#include <math.h>
#include <string.h>

#include "patron/profile.h"

#define DAY_MS 86400000.0

static const char *const TIER_NAMES[PATRON_TIER_COUNT] = {
    [PATRON_TIER_SILVER] = "silver",
    [PATRON_TIER_GOLD] = "gold",
    [PATRON_TIER_PLATINUM] = "platinum",
};

static const char *const SEGMENT_NAMES[PATRON_SEGMENT_COUNT] = {
    [PATRON_SEGMENT_NEW] = "new",
    [PATRON_SEGMENT_CHAMPION] = "champion",
    [PATRON_SEGMENT_LOYAL] = "loyal",
    [PATRON_SEGMENT_AT_RISK] = "at_risk",
    [PATRON_SEGMENT_PROMISING] = "promising",
    [PATRON_SEGMENT_HIBERNATING] = "hibernating",
    [PATRON_SEGMENT_LOST] = "lost",
    [PATRON_SEGMENT_NEEDS_ATTENTION] = "needs_attention",
};

const char *patron_tier_name(enum patron_tier tier)
{
    if ((unsigned)tier >= PATRON_TIER_COUNT)
        return "unknown";
    return TIER_NAMES[tier];
}

const char *patron_segment_name(enum patron_segment segment)
{
    if ((unsigned)segment >= PATRON_SEGMENT_COUNT)
        return "unknown";
    return SEGMENT_NAMES[segment];
}

int patron_tier_parse(const char *s, enum patron_tier *out)
{
    if (!s)
        return PATRON_EINVAL;
    for (unsigned i = 0; i < PATRON_TIER_COUNT; i++) {
        if (strcmp(s, TIER_NAMES[i]) == 0) {
            *out = (enum patron_tier)i;
            return 0;
        }
    }
    return PATRON_EINVAL;
}

int patron_segment_parse(const char *s, enum patron_segment *out)
{
    if (!s)
        return PATRON_EINVAL;
    for (unsigned i = 0; i < PATRON_SEGMENT_COUNT; i++) {
        if (strcmp(s, SEGMENT_NAMES[i]) == 0) {
            *out = (enum patron_segment)i;
            return 0;
        }
    }
    return PATRON_EINVAL;
}

/* 5 for value >= t[0], 4 for >= t[1], ... 1 below t[3]. */
static int score_at_least(int64_t value, const int64_t t[4])
{
    for (int i = 0; i < 4; i++)
        if (value >= t[i])
            return 5 - i;
    return 1;
}

/* 5 for value <= t[0], 4 for <= t[1], ... 1 above t[3]. */
static int score_at_most(int64_t value, const int64_t t[4])
{
    for (int i = 0; i < 4; i++)
        if (value <= t[i])
            return 5 - i;
    return 1;
}

static bool has_purchase(const struct patron_profile *p)
{
    return p->last_purchase_ms > 0;
}

/* Whole days from `from` to `to`, 0 if `to` is earlier; computed in double
 * so that no pair of int64 can overflow, then clamped to int. */
static int64_t days_between(int64_t from_ms, int64_t to_ms)
{
    double d = floor(((double)to_ms - (double)from_ms) / DAY_MS);
    if (!(d > 0))
        return 0;
    if (d > (double)INT32_MAX)
        return INT32_MAX;
    return (int64_t)d;
}

struct patron_rfm patron_rfm_score(const struct patron_profile *p, int64_t now_ms,
                                   const struct patron_profile_config *cfg)
{
    struct patron_rfm rfm = {.recency_days = -1, .r = 1};
    if (has_purchase(p)) {
        rfm.recency_days = (int)days_between(p->last_purchase_ms, now_ms);
        rfm.r = score_at_most(rfm.recency_days, cfg->rfm_recency_days);
    }
    rfm.f = score_at_least(p->orders, cfg->rfm_frequency);
    rfm.m = score_at_least(p->net_spend_cents, cfg->rfm_monetary_cents);
    return rfm;
}

enum patron_segment patron_segment_of(const struct patron_rfm *rfm, int64_t orders)
{
    int r = rfm->r, f = rfm->f;
    if (orders == 1 && r >= 4)
        return PATRON_SEGMENT_NEW;
    if (r >= 4 && f >= 4)
        return PATRON_SEGMENT_CHAMPION;
    if (r >= 3 && f >= 3)
        return PATRON_SEGMENT_LOYAL;
    if (r <= 2 && f >= 3)
        return PATRON_SEGMENT_AT_RISK;
    if (r >= 4)
        return PATRON_SEGMENT_PROMISING;
    if (r == 2)
        return PATRON_SEGMENT_HIBERNATING;
    if (r == 1)
        return PATRON_SEGMENT_LOST;
    return PATRON_SEGMENT_NEEDS_ATTENTION;
}

int64_t patron_tier_spend_cents(const struct patron_profile *p)
{
    if (p->last_event_ms <= 0)
        return 0;
    int64_t last = patron_month_of_ms(p->last_event_ms);
    int64_t first = last - (PATRON_PROFILE_MONTHS - 1);
    size_t n = p->n_months < PATRON_PROFILE_MONTHS ? p->n_months : PATRON_PROFILE_MONTHS;
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->months[i].month < first || p->months[i].month > last)
            continue;
        if (__builtin_add_overflow(sum, p->months[i].cents, &sum))
            return p->months[i].cents > 0 ? INT64_MAX : INT64_MIN;
    }
    return sum;
}

enum patron_tier patron_tier_of(const struct patron_profile *p,
                                const struct patron_profile_config *cfg)
{
    int64_t spend = patron_tier_spend_cents(p);
    if (spend >= cfg->tier_platinum_cents)
        return PATRON_TIER_PLATINUM;
    if (spend >= cfg->tier_gold_cents)
        return PATRON_TIER_GOLD;
    return PATRON_TIER_SILVER;
}
