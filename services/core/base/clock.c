#include "patron/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int patron_clock_kind_parse(const char *s, enum patron_clock_kind *kind)
{
    if (!s)
        return PATRON_EINVAL;
    if (strcmp(s, "wall") == 0) {
        *kind = PATRON_CLOCK_WALL;
        return 0;
    }
    if (strcmp(s, "event") == 0) {
        *kind = PATRON_CLOCK_EVENT;
        return 0;
    }
    return PATRON_EINVAL;
}

const char *patron_clock_kind_name(enum patron_clock_kind kind)
{
    return kind == PATRON_CLOCK_EVENT ? "event" : "wall";
}

void patron_clock_init(struct patron_clock *c, enum patron_clock_kind kind)
{
    c->kind = kind;
    c->event_now_ms = 0;
}

static int64_t read_ms(clockid_t id)
{
    struct timespec ts;
    /* Cannot fail for these clock ids on Linux; 0 is a safe answer if it did. */
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t patron_wall_ms(void)
{
    return read_ms(CLOCK_REALTIME);
}

int64_t patron_monotonic_ms(void)
{
    return read_ms(CLOCK_MONOTONIC);
}

/* ---- UTC days ---------------------------------------------------------------- */

int64_t patron_utc_day(int64_t ms)
{
    int64_t d = ms / PATRON_DAY_MS;
    return ms % PATRON_DAY_MS < 0 ? d - 1 : d;
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date, counted in 400-year
 * cycles of 146,097 days from 0000-03-01 (so that the leap day ends a year). */
static int64_t days_of(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t cycle = y / 400; /* y >= 0 here: years 1970..9999 */
    int64_t yoc = y - cycle * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doc = yoc * 365 + yoc / 4 - yoc / 100 + doy;
    return cycle * 146097 + doc - 719468;
}

int patron_utc_date_format(int64_t day, char dst[PATRON_DATE_LEN + 1])
{
    dst[0] = 0;
    if (day < 0 || day > PATRON_DAY_MAX)
        return PATRON_EINVAL;
    /* the inverse of days_of */
    int64_t z = day + 719468;
    int64_t cycle = z / 146097, doc = z - cycle * 146097;
    int64_t yoc = (doc - doc / 1460 + doc / 36524 - doc / 146096) / 365;
    int64_t doy = doc - (365 * yoc + yoc / 4 - yoc / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoc + cycle * 400 + (m <= 2);
    const int v[3] = {(int)y, m, d}, at[3] = {0, 5, 8}, n[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++)
        for (int i = n[f] - 1, x = v[f]; i >= 0; i--, x /= 10)
            dst[at[f] + i] = (char)('0' + x % 10);
    dst[4] = dst[7] = '-';
    dst[PATRON_DATE_LEN] = 0;
    return 0;
}

int patron_utc_date_parse(const char *s, size_t len, int64_t *day)
{
    if (len != PATRON_DATE_LEN || s[4] != '-' || s[7] != '-')
        return PATRON_EINVAL;
    int v[3] = {0, 0, 0};
    static const int at[3] = {0, 5, 8}, n[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++)
        for (int i = 0; i < n[f]; i++) {
            char c = s[at[f] + i];
            if (c < '0' || c > '9')
                return PATRON_EINVAL;
            v[f] = v[f] * 10 + (c - '0');
        }
    if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > month_days(v[0], v[1]))
        return PATRON_EINVAL;
    *day = days_of(v[0], v[1], v[2]);
    return 0;
}

int64_t patron_clock_now_ms(const struct patron_clock *c)
{
    return c->kind == PATRON_CLOCK_EVENT ? c->event_now_ms : patron_wall_ms();
}

int64_t patron_clock_advance(struct patron_clock *c, int64_t watermark)
{
    if (watermark > c->event_now_ms)
        c->event_now_ms = watermark;
    return c->event_now_ms;
}

int64_t patron_clock_watermark(const struct patron_partition_time *parts, size_t n)
{
    bool any_busy = false;
    int64_t busy_min = 0, all_max = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || parts[i].ms > all_max)
            all_max = parts[i].ms;
        if (!parts[i].idle && (!any_busy || parts[i].ms < busy_min)) {
            busy_min = parts[i].ms;
            any_busy = true;
        }
    }
    return any_busy ? busy_min : all_max;
}

void patron_clock_gate_offer(struct patron_clock_gate *g, int64_t ms, int64_t offset)
{
    if (offset < 0)
        offset = 0;
    if (g->n > 0) {
        int64_t last_ms = g->pending[g->n - 1].ms, last_off = g->pending[g->n - 1].offset;
        if (ms < last_ms)
            ms = last_ms; /* the clock never goes back: an older read adds nothing */
        if (offset < last_off)
            offset = last_off;
        if (offset == last_off || g->n == PATRON_CLOCK_GATE_PENDING) {
            g->pending[g->n - 1].ms = ms;
            g->pending[g->n - 1].offset = offset;
            return;
        }
    }
    g->pending[g->n].ms = ms;
    g->pending[g->n].offset = offset;
    g->n++;
}

int64_t patron_clock_gate_pass(struct patron_clock_gate *g, int64_t applied)
{
    if (applied < 0)
        applied = 0;
    size_t k = 0;
    while (k < g->n && g->pending[k].offset <= applied) {
        if (g->pending[k].ms > g->trusted_ms)
            g->trusted_ms = g->pending[k].ms;
        k++;
    }
    if (k > 0) {
        memmove(g->pending, g->pending + k, (g->n - k) * sizeof(g->pending[0]));
        g->n -= k;
    }
    return g->trusted_ms;
}

int64_t patron_clock_fire_bound(const struct patron_fire_input *in)
{
    int64_t own = in->now_ms < in->stream_ms ? in->now_ms : in->stream_ms;
    /* An unknown lag is not 0: after an assignment the position stays
     * unknown until the partition's first update is polled, which a backlog
     * on other partitions can delay for seconds; firing to now meanwhile
     * would decide timers before the updates that precede them. */
    if (in->queued || in->lag != 0)
        return own;
    if (in->kind == PATRON_CLOCK_WALL)
        return in->now_ms;
    return in->quiet && in->all_idle ? in->now_ms : own;
}

int patron_clock_value_encode(char *dst, size_t cap, const struct patron_partition_time *t)
{
    if (t->ms < 0)
        return PATRON_EINVAL;
    int n = snprintf(dst, cap, "%lld:%d", (long long)t->ms, t->idle ? 1 : 0);
    if (n < 0 || (size_t)n >= cap)
        return PATRON_ETOOBIG;
    return n;
}

int patron_clock_value_decode(const char *s, size_t len, struct patron_partition_time *t)
{
    /* digits ':' flag, with 1..19 digits */
    if (!s || len < 3 || len > 21 || s[len - 2] != ':')
        return PATRON_EINVAL;
    size_t digits = len - 2;
    if (s[0] == '0' && digits > 1)
        return PATRON_EINVAL;
    int64_t ms = 0;
    for (size_t i = 0; i < digits; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PATRON_EINVAL;
        int d = s[i] - '0';
        if (ms > (INT64_MAX - d) / 10)
            return PATRON_EINVAL;
        ms = ms * 10 + d;
    }
    char flag = s[len - 1];
    if (flag != '0' && flag != '1')
        return PATRON_EINVAL;
    t->ms = ms;
    t->idle = flag == '1';
    return 0;
}
