#include "patron/tz.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

/* ICU's calendar takes UTF-16 zone ids; IANA ids are ASCII. A name that is
 * not plain printable ASCII, or too long, cannot be a zone: it gives 0. */
static int zone_to_uchar(const char *zone, UChar *buf, size_t cap)
{
    if (zone == NULL)
        return 0;
    size_t n = strnlen(zone, PATRON_TZ_NAME_MAX + 1);
    if (n == 0 || n > PATRON_TZ_NAME_MAX || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)zone[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return 0;
        buf[i] = (UChar)ch;
    }
    buf[n] = 0;
    return (int)n;
}

bool patron_tz_known(const char *zone)
{
    UChar id[PATRON_TZ_NAME_MAX + 1];
    int n = zone_to_uchar(zone, id, PATRON_ARRAY_LEN(id));
    if (n == 0)
        return false;
    UChar canon[128];
    UBool system = 0;
    UErrorCode st = U_ZERO_ERROR;
    ucal_getCanonicalTimeZoneID(id, n, canon, (int32_t)PATRON_ARRAY_LEN(canon), &system, &st);
    return U_SUCCESS(st) && system;
}

/* A Gregorian calendar in `zone`, or in UTC when the zone is unknown. */
static UCalendar *calendar_open(const char *zone, bool *known)
{
    UChar id[PATRON_TZ_NAME_MAX + 1];
    *known = patron_tz_known(zone);
    if (*known)
        (void)zone_to_uchar(zone, id, PATRON_ARRAY_LEN(id));
    else
        u_uastrcpy(id, "UTC");
    UErrorCode st = U_ZERO_ERROR;
    UCalendar *cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st) || cal == NULL)
        abort(); /* only out of memory or missing ICU data gets here */
    /* Proleptic Gregorian: no Julian switch in 1582. */
    ucal_setGregorianChange(cal, -8.64e15, &st);
    ucal_setAttribute(cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    if (U_FAILURE(st))
        abort();
    return cal;
}

int patron_tz_local(const char *zone, int64_t utc_ms, struct patron_local_time *out)
{
    /* Years 1..9999 in ms, with a margin for any offset. */
    if (utc_ms < -62135596800000LL + 86400000LL || utc_ms > 253402214400000LL - 86400000LL)
        return PATRON_EINVAL;
    bool known;
    UCalendar *cal = calendar_open(zone, &known);
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(cal, (UDate)utc_ms, &st);
    struct patron_local_time t = {0};
    t.year = ucal_get(cal, UCAL_EXTENDED_YEAR, &st);
    t.month = ucal_get(cal, UCAL_MONTH, &st) + 1;
    t.day = ucal_get(cal, UCAL_DATE, &st);
    t.hour = ucal_get(cal, UCAL_HOUR_OF_DAY, &st);
    t.minute = ucal_get(cal, UCAL_MINUTE, &st);
    t.second = ucal_get(cal, UCAL_SECOND, &st);
    t.offset_ms = (int64_t)ucal_get(cal, UCAL_ZONE_OFFSET, &st) +
                  (int64_t)ucal_get(cal, UCAL_DST_OFFSET, &st);
    t.zone_known = known;
    ucal_close(cal);
    if (U_FAILURE(st))
        return PATRON_EINVAL;
    *out = t;
    return 0;
}

int patron_tz_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

int patron_tz_utc(const char *zone, int year, int month, int day, int hour, int minute,
                  int64_t *out_ms, bool *zone_known)
{
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
        day > patron_tz_days_in_month(year, month) || hour < 0 || hour > 23 || minute < 0 ||
        minute > 59)
        return PATRON_EINVAL;
    bool known;
    UCalendar *cal = calendar_open(zone, &known);
    UErrorCode st = U_ZERO_ERROR;
    ucal_clear(cal);
    ucal_set(cal, UCAL_EXTENDED_YEAR, year);
    ucal_set(cal, UCAL_MONTH, month - 1);
    ucal_set(cal, UCAL_DATE, day);
    ucal_set(cal, UCAL_HOUR_OF_DAY, hour);
    ucal_set(cal, UCAL_MINUTE, minute);
    ucal_set(cal, UCAL_SECOND, 0);
    ucal_set(cal, UCAL_MILLISECOND, 0);
    UDate ms = ucal_getMillis(cal, &st);
    ucal_close(cal);
    if (U_FAILURE(st))
        return PATRON_EINVAL;
    *out_ms = (int64_t)ms;
    if (zone_known != NULL)
        *zone_known = known;
    return 0;
}
