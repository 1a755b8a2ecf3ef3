/*
 * patron-replay's pure parsers (services/tools/replay/parse.h): one CSV
 * record split as the Online Retail reader splits it, then every field
 * through the integer, price, Europe/London date and InvoiceDate parsers,
 * and the customer id's float suffix; the raw bytes
 * through replay_event_key as a stored event.
 *
 * Properties: fields lie inside the record; quoting every field again
 * (RFC 4180) and splitting gives the same fields; a parsed integer equals
 * an independent reading; a price's sign and `positive` agree; a London
 * time is its UTC reading or one hour earlier; an InvoiceDate is its ISO
 * reading when it has one; a customer id loses ".0" or nothing; an event key lies inside the
 * buffer with 1..PATRON_ID_MAX bytes.
 */
#include "fuzz.h"
#include "parse.h"

#define FIELDS_MAX 9 /* the reader's: 8 columns, one more to see a ninth */
#define REC_MAX 4096

static void check_int(const char *s, size_t len)
{
    int32_t got = 0;
    int rc = replay_parse_int32(s, len, &got);
    /* the reference: digits only, an optional leading '-', range by int64 */
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    bool digits = i < len;
    int64_t v = 0;
    bool big = false;
    for (size_t k = i; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            digits = false;
            break;
        }
        if (!big)
            v = v * 10 + (s[k] - '0');
        big |= v > INT64_C(1) << 40;
    }
    if (!digits) {
        FUZZ_CHECK(rc == PATRON_EINVAL, "replay_parse_int32 gave %d on a non-integer", rc);
        return;
    }
    if (i)
        v = -v;
    if (big || v > INT32_MAX || v < INT32_MIN) {
        FUZZ_CHECK(rc == PATRON_ETOOBIG, "replay_parse_int32 gave %d out of range", rc);
        return;
    }
    FUZZ_CHECK(rc == 0 && got == v, "replay_parse_int32: %d, %d; want %lld", rc, (int)got,
               (long long)v);
}

static void check_price(const char *s, size_t len)
{
    int64_t cents = 0;
    bool positive = false;
    if (replay_price_cents(s, len, &cents, &positive) != 0)
        return;
    bool neg = s[0] == '-';
    FUZZ_CHECK(neg ? cents <= 0 && !positive : cents >= 0, "price %.*s: %lld cents, positive %d",
               (int)len, s, (long long)cents, positive);
    FUZZ_CHECK(!(cents > 0) || positive, "a price of %lld cents not positive", (long long)cents);
}

static void check_dates(const char *s, size_t len)
{
    int64_t ms = 0;
    if (replay_london_datetime_ms(s, len, &ms) == 0) {
        int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
        FUZZ_CHECK(replay_digits(s, 4, &y) && replay_digits(s + 5, 2, &mo) &&
                       replay_digits(s + 8, 2, &d) && replay_digits(s + 11, 2, &h) &&
                       replay_digits(s + 14, 2, &mi) && replay_digits(s + 17, 2, &se),
                   "accepted a non-digit date");
        int64_t as_utc = replay_days_from_civil(y, mo, d) * REPLAY_MS_PER_DAY +
                         ((int64_t)h * 3600 + mi * 60 + se) * 1000;
        FUZZ_CHECK(ms == as_utc || ms == as_utc - REPLAY_MS_PER_HOUR,
                   "%.*s: %lld, its UTC reading %lld", (int)len, s, (long long)ms,
                   (long long)as_utc);
    }
    if (replay_london_date_ms(s, len, &ms) == 0)
        FUZZ_CHECK(len == 10, "a date of %zu bytes", len);
    /* an export's InvoiceDate: the ISO form's instant when there is one, and
     * within the years the format can write otherwise */
    int64_t iso = 0, any = 0;
    bool is_iso = replay_london_datetime_ms(s, len, &iso) == 0;
    if (replay_invoice_date_ms(s, len, &any) == 0) {
        FUZZ_CHECK(len >= 12 && len <= 19, "an InvoiceDate of %zu bytes", len);
        FUZZ_CHECK(!is_iso || any == iso, "%.*s: %lld, its ISO reading %lld", (int)len, s,
                   (long long)any, (long long)iso);
        FUZZ_CHECK(any >= replay_days_from_civil(1, 1, 1) * REPLAY_MS_PER_DAY -
                               REPLAY_MS_PER_HOUR &&
                       any < replay_days_from_civil(10000, 1, 1) * REPLAY_MS_PER_DAY,
                   "%.*s: %lld out of the years 1..9999", (int)len, s, (long long)any);
    } else {
        FUZZ_CHECK(!is_iso, "%.*s: ISO but not an InvoiceDate", (int)len, s);
    }
    size_t keep = replay_customer_id_len(s, len);
    FUZZ_CHECK(keep == len || (keep + 2 == len && keep >= 1 && s[keep] == '.'),
               "a customer id cut from %zu to %zu bytes", len, keep);
}

/* Every field quoted, quotes doubled, joined by commas. */
static size_t requote(const struct replay_field *f, int n, char *out)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            out[o++] = ',';
        out[o++] = '"';
        for (size_t k = 0; k < f[i].len; k++) {
            if (f[i].s[k] == '"')
                out[o++] = '"';
            out[o++] = f[i].s[k];
        }
        out[o++] = '"';
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *id = NULL;
    size_t id_len = 0;
    if (replay_event_key(data, size, &id, &id_len) == 0)
        FUZZ_CHECK(id_len >= 1 && id_len <= PATRON_ID_MAX && (const uint8_t *)id >= data &&
                       (const uint8_t *)id + id_len <= data + size,
                   "event key outside the buffer or of %zu bytes", id_len);
    if (size > REC_MAX)
        return 0;
    static char rec[REC_MAX], again[2 * REC_MAX + 2 * FIELDS_MAX + 2];
    memcpy(rec, data, size);
    (void)replay_csv_open_quote(rec, size);
    struct replay_field f[FIELDS_MAX], g[FIELDS_MAX];
    int n = replay_csv_split(rec, size, f, FIELDS_MAX);
    if (n < 0) {
        FUZZ_CHECK(n == PATRON_EINVAL || n == PATRON_ETOOBIG, "split returned %d", n);
        return 0;
    }
    FUZZ_CHECK(n >= 1 && n <= FIELDS_MAX, "%d fields", n);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(f[i].s >= rec && f[i].s + f[i].len <= rec + size, "field %d outside", i);
        check_int(f[i].s, f[i].len);
        check_price(f[i].s, f[i].len);
        check_dates(f[i].s, f[i].len);
        (void)replay_category_len(f[i].len);
    }
    size_t m = requote(f, n, again);
    int n2 = replay_csv_split(again, m, g, FIELDS_MAX);
    FUZZ_CHECK(n2 == n, "requoted record split into %d fields, not %d", n2, n);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(g[i].len == f[i].len && memcmp(g[i].s, f[i].s, f[i].len) == 0,
                   "field %d changed when requoted", i);
    return 0;
}
