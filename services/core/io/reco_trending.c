/*
 * The trending snapshot of recommendations: ZREVRANGE {items}:trend (at most
 * PATRON_RECO_TRENDING_MAX items, with their scores), then, for those items,
 * their category and stock in one round. One snapshot for every request,
 * re-read in the background once older than max_age_ms; a request waits for
 * it only when there is none yet. A refresh that fails keeps the snapshot
 * it had. Indexed by hash for the scorer's lookups; decayed to the
 * request's now for the popular answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/strmap.h"
#include "reco_internal.h"

void reco_trending_free(struct trending *t)
{
    free(t->v);
    free(t->index);
    *t = (struct trending){0};
}

static void trending_index(struct trending *t)
{
    size_t cap = reco_pow2_at_least(2 * t->n + 1);
    t->index = patron_calloc(cap, sizeof(*t->index));
    t->mask = cap - 1;
    t->shift = reco_shift_for(cap);
    for (size_t k = 0; k < t->n; k++) {
        size_t i = reco_home_slot(t->v[k].hash, t->shift);
        while (t->index[i].pos)
            i = (i + 1) & t->mask;
        t->index[i] = (struct trend_slot){t->v[k].hash, (uint32_t)(k + 1)};
    }
}

/* ---- refresh -------------------------------------------------------------------------- */

static void wake_waiters(struct patron_reco_fetcher *f)
{
    struct request *w = f->waiters;
    f->waiters = NULL;
    while (w) {
        struct request *next = w->next_waiter;
        w->waiting_trend = false;
        reco_reply_back(w);
        w = next;
    }
}

static void refresh_done(struct patron_reco_fetcher *f, bool ok)
{
    if (ok) {
        trending_index(&f->next);
        f->next.at_ms = patron_monotonic_ms();
        reco_trending_free(&f->trend);
        f->trend = f->next;
        f->next = (struct trending){0};
        f->decayed_stale = true;
    } else {
        reco_trending_free(&f->next);
        /* keep what we had; without any, the waiters go on with none */
    }
    f->refreshing = false;
    wake_waiters(f);
}

/* The category and stock round of a refresh: two commands. */
struct refresh {
    struct patron_reco_fetcher *f;
    int remaining;
    bool failed;
};

static void refresh_release(struct refresh *rf)
{
    if (--rf->remaining > 0)
        return;
    struct patron_reco_fetcher *f = rf->f;
    bool ok = !rf->failed;
    free(rf);
    refresh_done(f, ok);
}

/* Applies element i of a facts reply to the snapshot's item i. */
typedef void (*trend_apply_fn)(struct trend_item *it, const redisReply *r);

static void trend_category(struct trend_item *it, const redisReply *r)
{
    if (reco_reply_id(r)) {
        memcpy(it->category, r->str, (size_t)r->len);
        it->category[r->len] = '\0';
    }
}

static void trend_oos(struct trend_item *it, const redisReply *r)
{
    it->oos = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

static void trend_np(struct trend_item *it, const redisReply *r)
{
    it->np = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

static void trend_buyers(struct trend_item *it, const redisReply *r)
{
    int64_t v;
    it->buyers =
        r->type == REDIS_REPLY_STRING && patron_reply_i64(r, 1, INT64_MAX, &v) == 0 ? v : 0;
}

/* One reply of the snapshot's facts: an array of one element per item, or
 * the refresh fails. */
static void on_trend_facts(struct refresh *rf, redisReply *reply, trend_apply_fn apply)
{
    struct trending *t = &rf->f->next;
    bool refused = reco_stored_fault(rf->f, reply); /* then those facts stay unknown */
    if (!refused && !reco_reply_array(reply, t->n))
        rf->failed = true;
    else if (!refused)
        for (size_t i = 0; i < t->n; i++)
            apply(&t->v[i], reply->element[i]);
    refresh_release(rf);
}

static void on_trend_category(void *ud, redisReply *reply)
{
    on_trend_facts(ud, reply, trend_category);
}

static void on_trend_oos(void *ud, redisReply *reply)
{
    on_trend_facts(ud, reply, trend_oos);
}

static void on_trend_np(void *ud, redisReply *reply)
{
    on_trend_facts(ud, reply, trend_np);
}

static void on_trend_buyers(void *ud, redisReply *reply)
{
    on_trend_facts(ud, reply, trend_buyers);
}

static void on_trend(void *ud, redisReply *reply)
{
    struct patron_reco_fetcher *f = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        (void)reco_stored_fault(f, reply);
        refresh_done(f, false);
        return;
    }
    struct trending *t = &f->next;
    size_t pairs = reply->elements / 2;
    if (pairs > PATRON_RECO_TRENDING_MAX)
        pairs = PATRON_RECO_TRENDING_MAX;
    t->v = patron_calloc(pairs ? pairs : 1, sizeof(*t->v));
    t->n = 0;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *m = reply->element[2 * i];
        double raw;
        if (!reco_reply_id(m) || !reco_reply_double(reply->element[2 * i + 1], &raw) || !(raw > 0))
            continue;
        struct trend_item *it = &t->v[t->n++];
        memcpy(it->id, m->str, (size_t)m->len);
        it->len = (size_t)m->len;
        it->hash = patron_hash64(it->id, it->len);
        it->raw = raw;
    }
    if (t->n == 0) {
        refresh_done(f, true);
        return;
    }
    struct refresh *rf = patron_calloc(1, sizeof(*rf));
    rf->f = f;
    const char **argv = patron_malloc((t->n + 2) * sizeof(*argv));
    size_t *argl = patron_malloc((t->n + 2) * sizeof(*argl));
    for (size_t i = 0; i < t->n; i++) {
        argv[i + 2] = t->v[i].id;
        argl[i + 2] = t->v[i].len;
    }
    static const struct reco_items_cmd plan[] = {
        {"HMGET", PATRON_KEY_ITEMS_CAT, on_trend_category},
        {"SMISMEMBER", PATRON_KEY_ITEMS_OOS, on_trend_oos},
        {"SMISMEMBER", PATRON_KEY_ITEMS_NP, on_trend_np},
        {"HMGET", PATRON_KEY_ITEMS_POP, on_trend_buyers},
    };
    size_t sent = reco_send_items(f->redis, plan, PATRON_ARRAY_LEN(plan), rf, argv, argl, t->n);
    rf->remaining = (int)sent;
    rf->failed = sent < PATRON_ARRAY_LEN(plan);
    free(argv);
    free(argl);
    if (rf->remaining == 0) {
        free(rf);
        refresh_done(f, false);
    }
}

void reco_trending_await(struct request *rq, int64_t now)
{
    struct patron_reco_fetcher *f = rq->f;
    bool none = f->trend.at_ms == 0;
    if (!f->refreshing && !reco_fresh(f->trend.at_ms, now, f->max_age_ms)) {
        char stop[16];
        int slen = snprintf(stop, sizeof(stop), "%d", PATRON_RECO_TRENDING_MAX - 1);
        const char *argv[] = {"ZREVRANGE", PATRON_KEY_ITEMS_TREND, "0", stop, "WITHSCORES"};
        size_t lens[] = {9, strlen(PATRON_KEY_ITEMS_TREND), 1, (size_t)slen, 10};
        if (patron_kv_commandv(f->redis, on_trend, f, 5, argv, lens) == 0)
            f->refreshing = true;
    }
    if (none && f->refreshing) {
        rq->waiting_trend = true;
        rq->next_waiter = f->waiters;
        f->waiters = rq;
        rq->pending++;
    }
}

/* ---- decay ---------------------------------------------------------------------------- */

/* Most buyers first, ties by id: the order of the popularity candidates. */
static int by_buyers(const void *a, const void *b)
{
    const struct patron_reco_trending *x = a, *y = b;
    if (x->buyers != y->buyers)
        return x->buyers > y->buyers ? -1 : 1;
    return strcmp(x->item, y->item);
}

const struct patron_reco_trending *reco_trending_decayed(struct patron_reco_fetcher *f,
                                                         int64_t now_ms, double inv_weight_now)
{
    int64_t moved = now_ms - f->decayed_now_ms;
    if (f->decayed_stale || moved > 1000 || moved < -1000) {
        f->decayed =
            patron_realloc(f->decayed, (f->trend.n ? f->trend.n : 1) * sizeof(*f->decayed));
        for (size_t i = 0; i < f->trend.n; i++)
            f->decayed[i] = (struct patron_reco_trending){
                f->trend.v[i].id, f->trend.v[i].raw * inv_weight_now, f->trend.v[i].buyers};
        f->n_decayed = f->trend.n;
        /* the order by buyers changes with the snapshot, not with time */
        if (f->decayed_stale || !f->popular) {
            f->popular =
                patron_realloc(f->popular, (f->trend.n ? f->trend.n : 1) * sizeof(*f->popular));
            memcpy(f->popular, f->decayed, f->trend.n * sizeof(*f->popular));
            qsort(f->popular, f->trend.n, sizeof(*f->popular), by_buyers);
        }
        f->decayed_now_ms = now_ms;
        f->decayed_stale = false;
    }
    return f->decayed;
}
