/*
 * The emitter: every contract event goes through here, so that resends,
 * garbage, pacing, progress and the summary work the same in every mode.
 *
 * Resends model an at-least-once producer: after event k, with probability
 * resend_percent, its exact bytes are queued to go again after event
 * k + d, d uniform in 0..resend_delay_max (50 by default; a whole stream
 * models a late backfill). Garbage message i goes
 * after event g_i, g_0 and the gaps g_i - g_{i-1} uniform in
 * 1..2*REPLAY_GARBAGE_GAP; what the stream does not reach is sent at the end.
 * Both draw from their own seeded stream, so the same seed and input give
 * the same message sequence.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "patron/clock.h"
#include "patron/v1/catalog.pb-c.h"
#include "replay.h"

enum { RNG_STREAM_RESEND = 1, RNG_STREAM_GARBAGE = 2 };

#define GARBAGE_RANDOM_MAX 64

static uint64_t garbage_gap(struct replay_emitter *e)
{
    return (uint64_t)replay_rng_range(&e->garbage_rng, 1, 2 * REPLAY_GARBAGE_GAP);
}

void replay_emitter_init(struct replay_emitter *e, struct replay_sink *sink,
                         const struct replay_options *opt, bool count_customers)
{
    memset(e, 0, sizeof(*e));
    e->sink = sink;
    e->opt = opt;
    replay_rng_init(&e->resend_rng, opt->seed, RNG_STREAM_RESEND);
    replay_rng_init(&e->garbage_rng, opt->seed, RNG_STREAM_GARBAGE);
    e->next_garbage_at = opt->garbage ? garbage_gap(e) : UINT64_MAX;
    e->count_customers = count_customers;
    patron_strmap_init(&e->customers_seen);
    e->start_ms = patron_monotonic_ms();
    e->next_progress_ms = e->start_ms + 1000;
}

static void resend_free(struct replay_resend *r)
{
    free(r->key);
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

static bool resend_before(const struct replay_resend *a, const struct replay_resend *b)
{
    return a->due != b->due ? a->due < b->due : a->seq < b->seq;
}

static void heap_push(struct replay_emitter *e, struct replay_resend r)
{
    if (e->queued == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->queue = patron_realloc(e->queue, e->cap * sizeof(*e->queue));
    }
    size_t i = e->queued++;
    while (i > 0 && resend_before(&r, &e->queue[(i - 1) / 2])) {
        e->queue[i] = e->queue[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->queue[i] = r;
}

static struct replay_resend heap_pop(struct replay_emitter *e)
{
    struct replay_resend top = e->queue[0], last = e->queue[--e->queued];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= e->queued)
            break;
        if (c + 1 < e->queued && resend_before(&e->queue[c + 1], &e->queue[c]))
            c++;
        if (!resend_before(&e->queue[c], &last))
            break;
        e->queue[i] = e->queue[c];
        i = c;
    }
    if (e->queued)
        e->queue[i] = last;
    return top;
}

/* Sends the queued copies due by now (all of them when `all`), earliest
 * first. */
static int send_due_resends(struct replay_emitter *e, bool all)
{
    while (e->queued && (all || e->queue[0].due <= e->events)) {
        struct replay_resend r = heap_pop(e);
        int rc = replay_sink_put(e->sink, r.key, r.key_len, r.buf, r.len);
        resend_free(&r);
        if (rc)
            return rc;
        e->resent++;
    }
    return 0;
}

/* Garbage i: random bytes, a truncated event, or a message of another type,
 * in turn. Each is undecodable as an Event or breaks its contract (no kind),
 * so a consumer must send every one to the DLQ. */
static int send_garbage(struct replay_emitter *e)
{
    uint64_t i = e->garbage;
    char key[32];
    int key_len = snprintf(key, sizeof(key), "garbage-%" PRIu64, i);
    uint8_t buf[GARBAGE_RANDOM_MAX + 64];
    const uint8_t *msg = buf;
    size_t len;
    unsigned kind = (unsigned)(i % 3);

    if (kind == 1 && e->last_len >= 2) {
        /* Cut inside the event: the oneof body is last, so any cut either
         * breaks a field or loses the kind. */
        len = (size_t)replay_rng_range(&e->garbage_rng, 1, (int64_t)e->last_len - 1);
        msg = e->last;
    } else if (kind == 2) {
        Patron__V1__ItemUpdate u = PATRON__V1__ITEM_UPDATE__INIT;
        char item[32];
        if (snprintf(item, sizeof(item), "garbage-%" PRIu64, i) < 0)
            return PATRON_EINVAL;
        u.item_id = item;
        u.category = "garbage";
        u.price_cents = 100;
        u.in_stock = 1;
        len = patron__v1__item_update__get_packed_size(&u);
        if (len > sizeof(buf))
            return PATRON_ETOOBIG;
        len = patron__v1__item_update__pack(&u, buf);
    } else {
        len = (size_t)replay_rng_range(&e->garbage_rng, 1, GARBAGE_RANDOM_MAX);
        /* Field number 0, wire type 7: no decoder accepts this first byte. */
        buf[0] = 0x07;
        for (size_t k = 1; k < len; k++)
            buf[k] = (uint8_t)replay_rng_next(&e->garbage_rng);
    }
    int rc = replay_sink_put(e->sink, key, (size_t)key_len, msg, len);
    if (rc == 0)
        e->garbage++;
    return rc;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void pace_and_report(struct replay_emitter *e)
{
    const struct replay_options *o = e->opt;
    if (o->rate == 0 && !o->progress)
        return;
    if (o->rate == 0 && (e->events & 4095) != 0)
        return;
    int64_t now = patron_monotonic_ms();
    if (o->rate > 0) {
        int64_t due = e->start_ms + (int64_t)(e->events * 1000 / o->rate);
        if (due > now) {
            sleep_ms(due - now);
            now = due;
        }
    }
    if (o->progress && now >= e->next_progress_ms) {
        double s = (double)(now - e->start_ms) / 1000.0;
        fprintf(stderr,
                "{\"progress\":{\"events\":%" PRIu64 ",\"resent\":%" PRIu64 ",\"garbage\":%" PRIu64
                ",\"elapsed_s\":%.1f,\"events_per_s\":%.0f}}\n",
                e->events, e->resent, e->garbage, s, s > 0 ? (double)e->events / s : 0.0);
        e->next_progress_ms = now + 1000;
    }
}

/* Counts a key the first time it is seen: a customer's, or a visitor's
 * (kept apart by a first byte, so that equal ids of both do not meet). */
static void count_key(struct replay_emitter *e, const char *key, size_t key_len, bool visitor)
{
    char *k = patron_malloc(key_len + 2);
    k[0] = visitor ? 'v' : 'c';
    memcpy(k + 1, key, key_len);
    k[key_len + 1] = '\0';
    if (patron_strmap_get(&e->customers_seen, k, key_len + 1)) {
        free(k);
        return;
    }
    (void)patron_strmap_put(&e->customers_seen, k, key_len + 1, k);
    if (visitor)
        e->visitors++;
    else
        e->customers++;
}

static int emit(struct replay_emitter *e, const char *key, size_t key_len, const uint8_t *buf,
                size_t len, bool visitor)
{
    int rc = replay_sink_put(e->sink, key, key_len, buf, len);
    if (rc < 0)
        return rc;
    e->events++;
    if (e->count_customers)
        count_key(e, key, key_len, visitor);
    if (e->opt->garbage) {
        e->last = patron_realloc(e->last, len);
        memcpy(e->last, buf, len);
        e->last_len = len;
    }

    if (e->opt->resend_percent &&
        replay_rng_percent(&e->resend_rng, (unsigned)e->opt->resend_percent)) {
        uint64_t delay =
            (uint64_t)replay_rng_range(&e->resend_rng, 0, (int64_t)e->opt->resend_delay_max);
        /* A bound on memory: beyond it the earliest copies go now. */
        while (e->queued >= REPLAY_RESEND_QUEUE_MAX) {
            struct replay_resend first = heap_pop(e);
            rc = replay_sink_put(e->sink, first.key, first.key_len, first.buf, first.len);
            resend_free(&first);
            if (rc < 0)
                return rc;
            e->resent++;
        }
        struct replay_resend r = {.due = e->events + delay, .seq = e->queued_seq++};
        r.key = patron_strndup(key, key_len);
        r.key_len = key_len;
        r.buf = patron_malloc(len);
        memcpy(r.buf, buf, len);
        r.len = len;
        heap_push(e, r);
    }
    if (e->queued && (rc = send_due_resends(e, false)) < 0)
        return rc;
    while (e->garbage < e->opt->garbage && e->events >= e->next_garbage_at) {
        if ((rc = send_garbage(e)) < 0)
            return rc;
        e->next_garbage_at += garbage_gap(e);
    }
    pace_and_report(e);
    return 0;
}

int replay_emit(struct replay_emitter *e, const char *key, size_t key_len, const uint8_t *buf,
                size_t len)
{
    return emit(e, key, key_len, buf, len, false);
}

int replay_emit_visitor(struct replay_emitter *e, const char *key, size_t key_len,
                        const uint8_t *buf, size_t len)
{
    return emit(e, key, key_len, buf, len, true);
}

int replay_emitter_finish(struct replay_emitter *e)
{
    int rc = send_due_resends(e, true);
    while (rc == 0 && e->garbage < e->opt->garbage)
        rc = send_garbage(e);
    return rc;
}

void replay_emitter_free(struct replay_emitter *e)
{
    for (size_t i = 0; i < e->queued; i++)
        resend_free(&e->queue[i]);
    free(e->queue);
    e->queue = NULL;
    e->queued = e->cap = 0;
    for (size_t i = 0; i < e->customers_seen.cap; i++)
        free(e->customers_seen.slots[i].value);
    patron_strmap_free(&e->customers_seen);
    free(e->last);
    e->last = NULL;
}

void replay_emitter_summary(const struct replay_emitter *e, FILE *out)
{
    fprintf(out,
            "{\"events\":%" PRIu64 ",\"resent\":%" PRIu64 ",\"garbage\":%" PRIu64
            ",\"customers\":%" PRIu64,
            e->events, e->resent, e->garbage, e->customers);
    if (e->visitors || e->identifies)
        fprintf(out, ",\"visitors\":%" PRIu64 ",\"identifies\":%" PRIu64, e->visitors,
                e->identifies);
    fputs("}\n", out);
    fflush(out);
}
