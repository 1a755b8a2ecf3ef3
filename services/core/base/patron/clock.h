/*
 * One clock for every service (docs/guarantees.md, "Time").
 *
 * PATRON_CLOCK_WALL is the real time. PATRON_CLOCK_EVENT makes "now" the
 * event time that ingest has applied on every partition: ingest stores, per
 * partition of patron.events, the highest event time it applied and whether
 * the partition is idle (key PATRON_KEY_CLOCK, value "ms:idle"); every service
 * reads those values (the I/O is the caller's) and computes the low watermark
 * with patron_clock_watermark. Everything here is pure except the two
 * functions that read the system clocks. A struct patron_clock is a plain
 * value owned by its service; not thread-safe.
 */
#ifndef PATRON_CLOCK_H
#define PATRON_CLOCK_H

#include "patron/common.h"

enum patron_clock_kind { PATRON_CLOCK_WALL, PATRON_CLOCK_EVENT };

struct patron_clock {
    enum patron_clock_kind kind;
    int64_t event_now_ms; /* the last watermark read, epoch ms; never decreases */
};

/* "wall" or "event". */
int patron_clock_kind_parse(const char *s, enum patron_clock_kind *kind) PATRON_MUST_USE;
const char *patron_clock_kind_name(enum patron_clock_kind kind);

void patron_clock_init(struct patron_clock *c, enum patron_clock_kind kind);
/* Wall: CLOCK_REALTIME in epoch ms. Event: event_now_ms. */
int64_t patron_clock_now_ms(const struct patron_clock *c);
/* Moves the event clock to `watermark` unless that is earlier than where it
 * is: a partition that wakes up with older events must not turn time back
 * (timers already fired would fire again). Returns the new event_now_ms. */
int64_t patron_clock_advance(struct patron_clock *c, int64_t watermark);

/* The latest time Patron accepts anywhere (events, stored state, timers):
 * 9999-12-31T23:59:59.999Z, epoch ms. The earliest is 0, 1970. */
#define PATRON_TIME_MAX_MS INT64_C(253402300799999)

/* UTC calendar days, for what is counted per day of event time (the
 * trigger's daily counters, the dashboard's history): the day number of
 * an instant, days since 1970-01-01 rounded down, and its ISO date
 * "YYYY-MM-DD". Days run from 0 (1970-01-01) to PATRON_DAY_MAX
 * (9999-12-31), as times do. */
#define PATRON_DAY_MS INT64_C(86400000)
#define PATRON_DAY_MAX INT64_C(2932896)
#define PATRON_DATE_LEN 10
/* The day of ms (any int64: floor division). */
int64_t patron_utc_day(int64_t ms);
/* Writes the date and its NUL into dst; PATRON_EINVAL for a day outside
 * 0..PATRON_DAY_MAX (dst then ""). */
int patron_utc_date_format(int64_t day, char dst[PATRON_DATE_LEN + 1]) PATRON_MUST_USE;
/* Strict: exactly "YYYY-MM-DD", a real date within 0..PATRON_DAY_MAX;
 * anything else is PATRON_EINVAL. */
int patron_utc_date_parse(const char *s, size_t len, int64_t *day) PATRON_MUST_USE;

int64_t patron_wall_ms(void);      /* CLOCK_REALTIME, epoch ms */
int64_t patron_monotonic_ms(void); /* CLOCK_MONOTONIC, for timeouts and durations */

/* One partition's share of the event clock. */
struct patron_partition_time {
    int64_t ms; /* highest event time applied, epoch ms, >= 0 */
    bool idle;  /* no unapplied messages: it must not hold the clock back */
};

/* The low watermark: the minimum over non-idle partitions; if every partition
 * is idle, the maximum over all (time moves on to what has been applied);
 * 0 when n == 0. */
int64_t patron_clock_watermark(const struct patron_partition_time *parts, size_t n);

/* What one partition of profile updates knows when its due timers ask how
 * far they may fire (patron-trigger). */
struct patron_fire_input {
    enum patron_clock_kind kind;
    int64_t now_ms;    /* the clock's now */
    int64_t stream_ms; /* latest event time the partition has applied */
    bool queued;       /* updates read and not applied yet */
    int64_t lag;       /* messages after the applied position; < 0: not known,
                          as while the consumer is paused (patron_consumer_lag) */
    bool quiet;        /* no update read for a while */
    bool all_idle;     /* event clock: ingest has applied all it was given */
};

/* The event time up to which the partition's timers may fire: its own
 * (min(now, stream_ms)), since its updates come in event-time order; now
 * only once nothing is left to read (lag 0, which an unknown lag is not:
 * the updates may simply not have been fetched yet), and with the event
 * clock only once the partition is quiet and every partition idle. */
int64_t patron_clock_fire_bound(const struct patron_fire_input *in);

/* Event clock: how far one partition of profile updates may trust the
 * clock's now. Ingest writes with every clock value the offset after the
 * last update it had delivered on each partition of profile updates
 * ({clock}:out). A now read with offset o on partition p is trusted for p's
 * timers once p has applied every update before o: the updates of a merged
 * visitor come from another partition of events, so p's own event time
 * does not say they are in (docs/guarantees.md, "Time"). A plain value
 * owned by the partition; no allocation. */
#define PATRON_CLOCK_GATE_PENDING 8
struct patron_clock_gate {
    int64_t trusted_ms; /* the latest now trusted; never decreases */
    size_t n;
    struct {
        int64_t ms, offset;
    } pending[PATRON_CLOCK_GATE_PENDING]; /* oldest first; ms and offset non-decreasing */
};

/* A now (ms) read together with the partition's delivered offset. When the
 * queue is full the newest entry takes it: a later now that waits for a
 * later offset, never an earlier one. */
void patron_clock_gate_offer(struct patron_clock_gate *g, int64_t ms, int64_t offset);
/* The partition has applied every update before `applied` (< 0: unknown,
 * taken as 0): the now it may trust. */
int64_t patron_clock_gate_pass(struct patron_clock_gate *g, int64_t applied);

/* The stored value "ms:idle", e.g. "1291192000000:1": ms in canonical decimal
 * (no sign, no leading zero), idle 0 or 1. */
#define PATRON_CLOCK_VALUE_MAX 24 /* 19 digits, ':', flag, NUL, spare */
/* Returns the length written (NUL not counted), or PATRON_ETOOBIG if cap is
 * too small, PATRON_EINVAL if t->ms < 0. */
int patron_clock_value_encode(char *dst, size_t cap,
                              const struct patron_partition_time *t) PATRON_MUST_USE;
/* Strict: anything but the canonical form above is PATRON_EINVAL. */
int patron_clock_value_decode(const char *s, size_t len,
                              struct patron_partition_time *t) PATRON_MUST_USE;

#endif
