/*
 * What profile.c shares with profile_identity.c: the pieces of an apply and
 * the list operations a merge reuses. Internal to the domain layer (not in
 * patron/); the rules they implement are patron/profile.h's. Pure, like it.
 */
#ifndef PATRON_PROFILE_INTERNAL_H
#define PATRON_PROFILE_INTERNAL_H

#include <string.h>

#include "patron/profile.h"

/* Profiles decoded from storage may hold any int64: counters saturate
 * instead of overflowing. */
static inline int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* The earlier of two times where 0 means "never". */
static inline int64_t min_set(int64_t cur, int64_t t)
{
    return cur == 0 || (t != 0 && t < cur) ? t : cur;
}

static inline int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Copies a checked id into a fixed slot, zero-filling the rest so that no
 * byte of a previous occupant survives. Every id reaching it passed
 * patron_event_check or the stored-profile decoder (at most PATRON_ID_MAX
 * bytes, no NUL), so it always fits whole. */
static inline void set_id(char dst[PATRON_ID_MAX + 1], const char *src)
{
    size_t len = strnlen(src, PATRON_ID_MAX);
    memset(dst, 0, PATRON_ID_MAX + 1);
    memcpy(dst, src, len);
}

static inline void set_text(char *dst, size_t cap, const char *src)
{
    size_t len = strnlen(src, cap - 1);
    memset(dst, 0, cap);
    memcpy(dst, src, len);
}

/* The highest offset applied from a partition, or -1. */
int64_t profile_mark_get(const struct patron_profile *p, int32_t partition);
/* Sets a partition's mark (never lowering it), most recent first. */
void profile_mark_set(struct patron_profile *p, int32_t partition, int64_t offset);

/* Adds `weight` to a category at event time t (decayed, bounded table). */
void profile_category_add(struct patron_profile *p, const char *category, double weight, int64_t t,
                          const struct patron_profile_config *cfg);
/* Remembers an item hash among bought_earlier (sorted, bounded). */
void profile_earlier_add_hash(struct patron_profile *p, uint32_t h);
/* Drops the months outside the 12-month window ending at last_event_ms. */
void profile_months_prune(struct patron_profile *p);
/* The erasure of p at event time t (see profile.c). */
void profile_tombstone(struct patron_profile *p, int64_t t);

/* Whether the event's kind counts (purchase, refund, review). */
bool profile_counts(const Patron__V1__Event *ev);
int32_t profile_counted_month(uint64_t entry);
bool profile_counted_has(const struct patron_profile *p, uint64_t entry);
bool profile_ring_has(const struct patron_profile *p, uint64_t id_hash);
bool *profile_consent_of(struct patron_profile *p, int slot);

/* Whether a checked event is a resend of, or too old for, what p holds:
 * sets out->result (DUPLICATE, STALE or REFUSED) when it is. */
bool profile_dedupe(const struct patron_profile *p, const Patron__V1__Event *ev,
                    const struct patron_profile_config *cfg, struct patron_apply_outcome *out);
/* Remembers an applied event: ledger or ring, and the partition's mark. */
void profile_remember(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                      int64_t offset, const struct patron_profile_config *cfg);
void profile_evaluate(const struct patron_profile *p, int64_t now_ms,
                      const struct patron_profile_config *cfg, enum patron_tier *tier,
                      enum patron_segment *segment);

/* The outcome before anything is decided: value, erasure, tier and segment
 * as of the event's time. */
void profile_outcome_init(const struct patron_profile *p, const Patron__V1__Event *ev,
                          const struct patron_profile_config *cfg,
                          struct patron_apply_outcome *out);
/* A checked event whose identity matches p: replay check, dedupe, apply. */
void profile_apply_checked(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                           int64_t offset, const struct patron_profile_config *cfg,
                           struct patron_apply_outcome *out);
/* The apply itself, once the event is known to be new (APPLIED). */
void profile_apply_new(struct patron_profile *p, const Patron__V1__Event *ev, int32_t partition,
                       int64_t offset, const struct patron_profile_config *cfg,
                       struct patron_apply_outcome *out);

#endif
