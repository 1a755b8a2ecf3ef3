/*
 * Wall-clock time in IANA time zones, daylight saving included, for quiet
 * hours and birthdays.
 *
 * Why ICU (ucal_*) rather than our own TZif reader: ICU carries its own
 * copy of the tz database inside libicudata, so these functions read no
 * files (they stay pure and unit-testable), and the gap/overlap rules of a
 * DST change are ICU's well-tested code, not ours. The cost is about a
 * microsecond-scale ucal_open per call; callers needing more can cache.
 *
 * Conventions: instants are Unix epoch ms (UTC). An empty, unknown or
 * malformed zone name is treated as UTC, and `zone_known` says so, so that
 * a customer with a bad time zone is still messaged at sane (UTC) hours.
 * A local time that does not exist (the spring-forward gap) resolves to the
 * first instant after the gap (ICU UCAL_WALLTIME_NEXT_VALID: 01:30 on the
 * night London jumps 01:00 -> 02:00 becomes 02:00 BST); an ambiguous one
 * (fall back) resolves to its first occurrence (the earlier instant).
 * No shared state: safe from any thread.
 */
#ifndef PATRON_TZ_H
#define PATRON_TZ_H

#include "patron/common.h"

/* Longest zone name accepted (the longest IANA names are ~32 bytes). */
#define PATRON_TZ_NAME_MAX 64

struct patron_local_time {
    int year;
    int month;         /* 1..12 */
    int day;           /* 1..31 */
    int hour;          /* 0..23 */
    int minute;        /* 0..59 */
    int second;        /* 0..59 */
    int64_t offset_ms; /* local - UTC at that instant, DST included */
    bool zone_known;   /* false: the zone was unknown and UTC was used */
};

/* True when `zone` names a time zone ICU knows (case-sensitive IANA id). */
bool patron_tz_known(const char *zone);

/* The wall time in `zone` of the instant `utc_ms`. Fails (PATRON_EINVAL)
 * only on a year outside 1..9999. */
int patron_tz_local(const char *zone, int64_t utc_ms,
                    struct patron_local_time *out) PATRON_MUST_USE;

/* The instant at which the wall clock in `zone` shows year-month-day
 * hour:minute:00 (see the header comment for gaps and overlaps). Fields out
 * of range (month 13, day 32, hour 24...) are PATRON_EINVAL, not rolled over.
 * `zone_known`, when not NULL, receives whether the zone was known. */
int patron_tz_utc(const char *zone, int year, int month, int day, int hour, int minute,
                  int64_t *out_ms, bool *zone_known) PATRON_MUST_USE;

/* Days in `month` (1..12) of `year`, Gregorian; 0 for a bad month. */
int patron_tz_days_in_month(int year, int month);

#endif
