/*
 * The pure parts of patron-replay: CSV records, exact decimal prices, strict
 * integers, Europe/London local time to UTC, and the customer id of an
 * encoded event. No I/O, no allocation, no globals; every function works on
 * the caller's buffers and bounds, so tests/unit/test_replay_parse.c covers
 * them without a file or a broker. Header-only (static inline) because the
 * tool is a program, not part of the core library. The rules implemented
 * here are data/README.md's mapping; scripts/expected_profiles.py implements
 * the same independently.
 */
#ifndef PATRON_REPLAY_PARSE_H
#define PATRON_REPLAY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "patron/common.h"

/* A field of a CSV record, pointing into the record's buffer. */
struct replay_field {
    char *s;
    size_t len;
};

/*
 * Splits one CSV record (RFC 4180, without its line terminator) into fields,
 * in place: a quoted field loses its quotes and its doubled quotes become
 * one, so the fields point into `rec`, which they alter. A quote inside an
 * unquoted field is taken literally, as Python's csv does. Returns the number
 * of fields, PATRON_ETOOBIG if there are more than `max`, PATRON_EINVAL for an
 * unterminated quote or text after a closing quote.
 */
PATRON_MUST_USE static inline int replay_csv_split(char *rec, size_t len,
                                                   struct replay_field *fields, size_t max)
{
    size_t n = 0, i = 0;
    for (;;) {
        if (n == max)
            return PATRON_ETOOBIG;
        if (i < len && rec[i] == '"') {
            size_t w = i; /* unquoted bytes are written back from here */
            i++;
            fields[n].s = rec + w;
            for (;;) {
                if (i == len)
                    return PATRON_EINVAL;
                if (rec[i] == '"') {
                    if (i + 1 < len && rec[i + 1] == '"') {
                        rec[w++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                rec[w++] = rec[i++];
            }
            fields[n].len = w - (size_t)(fields[n].s - rec);
            if (i < len && rec[i] != ',')
                return PATRON_EINVAL;
        } else {
            fields[n].s = rec + i;
            while (i < len && rec[i] != ',')
                i++;
            fields[n].len = (size_t)(rec + i - fields[n].s);
        }
        n++;
        if (i == len)
            return (int)n;
        i++; /* the comma; a record ending in a comma has an empty last field */
    }
}

/* True when `rec` has an odd number of quotes: a quoted field goes on past
 * the end of this line. */
static inline bool replay_csv_open_quote(const char *rec, size_t len)
{
    size_t q = 0;
    for (size_t i = 0; i < len; i++)
        q += rec[i] == '"';
    return q % 2 == 1;
}

/* Integer digits a price may have: 10^15 pounds in cents still fits in int64. */
#define REPLAY_PRICE_INT_DIGITS_MAX 15

/*
 * A decimal price `[-]digits[.digits]` in pounds to cents, rounded half away
 * from zero, exactly (the digits decide, never a double): "2.55" -> 255,
 * "0.125" -> 13, "-0.125" -> -13, "0.001" -> 0. `*positive` tells whether the
 * price is > 0 (a price of "0.001" is positive and worth 0 cents).
 * PATRON_EINVAL if malformed, PATRON_ETOOBIG past 15 integer digits.
 */
PATRON_MUST_USE static inline int replay_price_cents(const char *s, size_t len, int64_t *cents,
                                                     bool *positive)
{
    size_t i = 0;
    bool neg = false, nonzero = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t start = i;
    int64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (i - start == REPLAY_PRICE_INT_DIGITS_MAX)
            return PATRON_ETOOBIG;
        v = v * 10 + (s[i] - '0');
        nonzero |= s[i] != '0';
        i++;
    }
    if (i == start)
        return PATRON_EINVAL;
    int frac[3] = {0, 0, 0};
    if (i < len && s[i] == '.') {
        i++;
        size_t fstart = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - fstart < 3)
                frac[i - fstart] = s[i] - '0';
            nonzero |= s[i] != '0';
            i++;
        }
        if (i == fstart)
            return PATRON_EINVAL;
    }
    if (i != len)
        return PATRON_EINVAL;
    /* |value| * 100 = v*100 + d1d2 + 0.d3...; the half rounds up iff d3 >= 5. */
    int64_t c = v * 100 + frac[0] * 10 + frac[1] + (frac[2] >= 5);
    *cents = neg ? -c : c;
    *positive = !neg && nonzero;
    return 0;
}

/* A strict `[-]digits` in int32 range (leading zeros allowed, no '+', no
 * spaces). PATRON_EINVAL if malformed, PATRON_ETOOBIG if out of range. */
PATRON_MUST_USE static inline int replay_parse_int32(const char *s, size_t len, int32_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i == len)
        return PATRON_EINVAL;
    int64_t v = 0;
    bool big = false; /* too many digits: said once all bytes are known digits */
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PATRON_EINVAL;
        if (!big) {
            v = v * 10 + (s[i] - '0');
            big = v > (int64_t)INT32_MAX + 1;
        }
    }
    if (big)
        return PATRON_ETOOBIG;
    if (neg)
        v = -v;
    if (v > INT32_MAX || v < INT32_MIN)
        return PATRON_ETOOBIG;
    *out = (int32_t)v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); valid for any year an int64 of days can hold. */
static inline int64_t replay_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The year of a day number (the inverse's year part). */
static inline int64_t replay_year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return yoe + era * 400 + (m <= 2);
}

static inline bool replay_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline int replay_days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && replay_is_leap(y) ? 29 : days[m - 1];
}

#define REPLAY_MS_PER_DAY INT64_C(86400000)
#define REPLAY_MS_PER_HOUR INT64_C(3600000)

/* 01:00 UTC of the last Sunday of `month` in `year`, epoch ms: when the UK
 * changes clocks (both ways, since 1996). */
static inline int64_t replay_uk_change_ms(int64_t year, int month)
{
    int64_t last = replay_days_from_civil(year, month, replay_days_in_month(year, month));
    int64_t weekday = ((last % 7) + 11) % 7; /* 0 = Sunday; day 0 was a Thursday */
    return (last - weekday) * REPLAY_MS_PER_DAY + REPLAY_MS_PER_HOUR;
}

/* Whether British Summer Time (UTC+1) is in force at this UTC instant. */
static inline bool replay_london_is_bst(int64_t utc_ms)
{
    int64_t days = utc_ms >= 0 ? utc_ms / REPLAY_MS_PER_DAY
                               : -((-utc_ms + REPLAY_MS_PER_DAY - 1) / REPLAY_MS_PER_DAY);
    int64_t year = replay_year_of_days(days);
    return utc_ms >= replay_uk_change_ms(year, 3) && utc_ms < replay_uk_change_ms(year, 10);
}

/*
 * Europe/London wall-clock time, given as the epoch ms it would be if it were
 * UTC, to the real UTC epoch ms. The October hour that happens twice is taken
 * as its first occurrence (BST) and the March hour that never happens is read
 * as GMT: the offset in force just before the change, like Python's zoneinfo
 * with fold=0. Independent of the process's TZ.
 */
static inline int64_t replay_london_to_utc_ms(int64_t local_ms)
{
    int64_t if_bst = local_ms - REPLAY_MS_PER_HOUR;
    return replay_london_is_bst(if_bst) ? if_bst : local_ms;
}

static inline bool replay_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* A real date and time (year 0001..9999, seconds 00..59) in Europe/London
 * local time to UTC epoch ms. PATRON_EINVAL if it is not one. */
PATRON_MUST_USE static inline int replay_london_civil_ms(int y, int mo, int d, int h, int mi,
                                                         int se, int64_t *utc_ms)
{
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > replay_days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return PATRON_EINVAL;
    int64_t local = replay_days_from_civil(y, mo, d) * REPLAY_MS_PER_DAY +
                    ((int64_t)h * 3600 + mi * 60 + se) * 1000;
    *utc_ms = replay_london_to_utc_ms(local);
    return 0;
}

/* Strict "YYYY-MM-DD HH:MM:SS" in Europe/London local time to UTC epoch ms
 * (replay_london_civil_ms). PATRON_EINVAL if malformed. */
PATRON_MUST_USE static inline int replay_london_datetime_ms(const char *s, size_t len,
                                                            int64_t *utc_ms)
{
    int y, mo, d, h, mi, se;
    if (len != 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
        return PATRON_EINVAL;
    if (!replay_digits(s, 4, &y) || !replay_digits(s + 5, 2, &mo) || !replay_digits(s + 8, 2, &d) ||
        !replay_digits(s + 11, 2, &h) || !replay_digits(s + 14, 2, &mi) ||
        !replay_digits(s + 17, 2, &se))
        return PATRON_EINVAL;
    return replay_london_civil_ms(y, mo, d, h, mi, se, utc_ms);
}

/* Reads 1 to `max` digits at s[*i] up to `stop` (consumed) or, with stop
 * 0, to the end; false if anything else is there. */
static inline bool replay_field_digits(const char *s, size_t len, size_t *i, size_t min, size_t max,
                                       char stop, int *out)
{
    size_t start = *i;
    while (*i < len && *i - start < max && s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    if (*i - start < min || !replay_digits(s + start, *i - start, out))
        return false;
    if (!stop)
        return *i == len;
    if (*i >= len || s[*i] != stop)
        return false;
    (*i)++;
    return true;
}

/* An InvoiceDate as the exports of the data set write it (data/README.md,
 * "Other exports"), Europe/London local time, to UTC epoch ms:
 * "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DD HH:MM" (UCI's and pandas' ISO), and
 * "M/D/YYYY H:MM" or "M/D/YYYY H:MM:SS" (a spreadsheet's, month first; M,
 * D and H of one or two digits). PATRON_EINVAL if it is none of them or
 * not a real time. */
PATRON_MUST_USE static inline int replay_invoice_date_ms(const char *s, size_t len, int64_t *utc_ms)
{
    int y, mo, d, h, mi, se = 0;
    size_t i = 0;
    if (len >= 5 && s[4] == '-') { /* ISO: year first */
        if (len == 19)
            return replay_london_datetime_ms(s, len, utc_ms);
        if (len != 16 || s[7] != '-' || s[10] != ' ' || s[13] != ':' || !replay_digits(s, 4, &y) ||
            !replay_digits(s + 5, 2, &mo) || !replay_digits(s + 8, 2, &d) ||
            !replay_digits(s + 11, 2, &h) || !replay_digits(s + 14, 2, &mi))
            return PATRON_EINVAL;
        return replay_london_civil_ms(y, mo, d, h, mi, 0, utc_ms);
    }
    if (!replay_field_digits(s, len, &i, 1, 2, '/', &mo) ||
        !replay_field_digits(s, len, &i, 1, 2, '/', &d) ||
        !replay_field_digits(s, len, &i, 4, 4, ' ', &y) ||
        !replay_field_digits(s, len, &i, 1, 2, ':', &h))
        return PATRON_EINVAL;
    size_t rest = len - i;
    if (rest == 2) {
        if (!replay_field_digits(s, len, &i, 2, 2, 0, &mi))
            return PATRON_EINVAL;
    } else if (rest != 5 || !replay_field_digits(s, len, &i, 2, 2, ':', &mi) ||
               !replay_field_digits(s, len, &i, 2, 2, 0, &se)) {
        return PATRON_EINVAL;
    }
    return replay_london_civil_ms(y, mo, d, h, mi, se, utc_ms);
}

/* A CustomerID as the mapping takes it (data/README.md): "13085.0", a
 * spreadsheet's float as Online Retail II's exports write it, is "13085";
 * any other text is itself. Returns the length to keep. */
static inline size_t replay_customer_id_len(const char *s, size_t len)
{
    if (len < 3 || s[len - 2] != '.' || s[len - 1] != '0')
        return len;
    for (size_t i = 0; i < len - 2; i++)
        if (s[i] < '0' || s[i] > '9')
            return len;
    return len - 2;
}

/* Strict "YYYY-MM-DD": the start of that day in Europe/London local time,
 * as UTC epoch ms (--until). PATRON_EINVAL if malformed. */
PATRON_MUST_USE static inline int replay_london_date_ms(const char *s, size_t len, int64_t *utc_ms)
{
    char full[20];
    if (len != 10)
        return PATRON_EINVAL;
    memcpy(full, s, 10);
    memcpy(full + 10, " 00:00:00", 9);
    return replay_london_datetime_ms(full, 19, utc_ms);
}

/* The category of a StockCode (data/README.md): its first 3 bytes. */
#define REPLAY_CATEGORY_LEN 3
static inline size_t replay_category_len(size_t stock_code_len)
{
    return stock_code_len < REPLAY_CATEGORY_LEN ? stock_code_len : REPLAY_CATEGORY_LEN;
}

/* Reads a protobuf varint; returns bytes used, 0 if truncated or too long. */
static inline size_t replay_varint(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* Field numbers of patron.v1.Event's oneof kind (event.proto). */
#define REPLAY_EVENT_KIND_FIRST 10
#define REPLAY_EVENT_KIND_LAST 19

/*
 * The Kafka key of an encoded patron.v1.Event: its customer_id (field 2),
 * or a visitor's anonymous_id (field 4) when it has no customer_id, found
 * by walking the top-level fields without decoding the rest, so that
 * `patron-replay file` keys a stored event as its producer did, at the cost
 * of a few bytes read. `*id` points into `buf`. Returns 0 only when every
 * top-level field is well-formed up to the end and the event has a non-empty
 * key of at most PATRON_ID_MAX bytes (the last one of its field, as
 * protobuf reads it) and a kind (one of fields 10..19, length-delimited);
 * otherwise PATRON_EINVAL (not a message: bad tag, wire type or length) or
 * PATRON_ENOTFOUND (a message, but not a keyable event: garbage to the DLQ).
 */
PATRON_MUST_USE static inline int replay_event_key(const uint8_t *buf, size_t len, const char **id,
                                                   size_t *id_len)
{
    size_t i = 0;
    const uint8_t *cid = NULL, *aid = NULL;
    uint64_t cid_len = 0, aid_len = 0;
    bool kind = false;
    while (i < len) {
        uint64_t key, v;
        size_t n = replay_varint(buf + i, len - i, &key);
        uint64_t field = key >> 3;
        if (n == 0 || field == 0)
            return PATRON_EINVAL;
        i += n;
        switch (key & 7) {
        case 0:
            n = replay_varint(buf + i, len - i, &v);
            if (n == 0)
                return PATRON_EINVAL;
            i += n;
            break;
        case 1:
            if (len - i < 8)
                return PATRON_EINVAL;
            i += 8;
            break;
        case 5:
            if (len - i < 4)
                return PATRON_EINVAL;
            i += 4;
            break;
        case 2:
            n = replay_varint(buf + i, len - i, &v);
            if (n == 0 || v > len - i - n)
                return PATRON_EINVAL;
            i += n;
            if (field == 2) {
                cid = buf + i;
                cid_len = v;
            } else if (field == 4) {
                aid = buf + i;
                aid_len = v;
            }
            kind |= field >= REPLAY_EVENT_KIND_FIRST && field <= REPLAY_EVENT_KIND_LAST;
            i += (size_t)v;
            break;
        default:
            return PATRON_EINVAL;
        }
    }
    if (!cid || cid_len == 0) { /* a visitor's event: keyed by its anonymous id */
        cid = aid;
        cid_len = aid_len;
    }
    if (!kind || !cid || cid_len == 0 || cid_len > PATRON_ID_MAX)
        return PATRON_ENOTFOUND;
    *id = (const char *)cid;
    *id_len = (size_t)cid_len;
    return 0;
}

#endif
