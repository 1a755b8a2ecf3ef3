/*
 * Loyalty tier, RFM scores and segment of a customer profile
 * (docs/contracts/profile.md); churn risk and predicted value are clv.h's.
 *
 * Pure functions of a profile, a configuration and a `now` passed in as Unix
 * epoch milliseconds (the caller reads its clock); no I/O, no allocation.
 * Every function is total: any profile, even one decoded from garbage, gives
 * a defined answer (integer arithmetic saturates). Safe from any thread.
 */
#ifndef PATRON_RFM_H
#define PATRON_RFM_H

#include "patron/common.h"

struct patron_profile;
struct patron_profile_config;

enum patron_tier { PATRON_TIER_SILVER, PATRON_TIER_GOLD, PATRON_TIER_PLATINUM };

/* Evaluated in this order, first match wins (docs/contracts/profile.md). */
enum patron_segment {
    PATRON_SEGMENT_NEW,             /* 1 order, R >= 4 */
    PATRON_SEGMENT_CHAMPION,        /* R >= 4, F >= 4 */
    PATRON_SEGMENT_LOYAL,           /* R >= 3, F >= 3 */
    PATRON_SEGMENT_AT_RISK,         /* R <= 2, F >= 3 */
    PATRON_SEGMENT_PROMISING,       /* R >= 4 */
    PATRON_SEGMENT_HIBERNATING,     /* R == 2 */
    PATRON_SEGMENT_LOST,            /* R == 1 */
    PATRON_SEGMENT_NEEDS_ATTENTION, /* anything else */
};
#define PATRON_SEGMENT_COUNT 8
#define PATRON_TIER_COUNT 3

struct patron_rfm {
    int recency_days; /* whole days since the last purchase, >= 0; -1 when none */
    int r, f, m;      /* 1..5; r is 1 when there was no purchase */
};

/* Recency = floor((now - last_purchase_ms) / 1 day), clamped at 0 (an event
 * clock behind the purchase counts as "today"). */
struct patron_rfm patron_rfm_score(const struct patron_profile *p, int64_t now_ms,
                                   const struct patron_profile_config *cfg);

/* The segment for scores `rfm` of a customer with `orders` purchases. */
enum patron_segment patron_segment_of(const struct patron_rfm *rfm, int64_t orders);

/* Net spend of the month buckets in the 12 calendar months (UTC) ending with
 * the month of p->last_event_ms; gold and platinum from cfg's thresholds. */
int64_t patron_tier_spend_cents(const struct patron_profile *p);
enum patron_tier patron_tier_of(const struct patron_profile *p,
                                const struct patron_profile_config *cfg);

/* Lower-case names ("silver", "at_risk", "needs_attention"...); "unknown" for
 * a value outside the enum. Parsing takes exactly those names, nothing else. */
const char *patron_tier_name(enum patron_tier tier);
const char *patron_segment_name(enum patron_segment segment);
int patron_tier_parse(const char *s, enum patron_tier *out) PATRON_MUST_USE;
int patron_segment_parse(const char *s, enum patron_segment *out) PATRON_MUST_USE;

#endif
