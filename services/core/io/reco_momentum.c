/*
 * The shop's momentum model (trend.h), fitted in the background: a sample
 * of the catalogue's recent sales (ZRANDMEMBER {items}:trend, at most
 * RECO_MOMENTUM_SAMPLE items: the whole set when it holds fewer, so a
 * small shop's fit is exact), then their all-time sales and whether they
 * are products (HMGET {items}:sold, SMISMEMBER {items}:np) in one round.
 * Refitted once list_max_age_ms has passed since the last attempt, started
 * by a request passing (no timer of its own); a fit that fails keeps the
 * model it had. Requests never wait for it: until the first fit, every
 * momentum factor is 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/trend.h"
#include "reco_internal.h"

/* Items a fit reads at most: enough for a stable estimate of one number
 * (alpha), small enough to be one reply of ~400 KB. */
#define RECO_MOMENTUM_SAMPLE 4096

struct fit {
    struct patron_reco_fetcher *f;
    int64_t event_ms; /* the requests' clock when it started: the trends' time */
    size_t n;
    char (*ids)[PATRON_ID_MAX + 1]; /* [n], owned */
    size_t *lens;                   /* [n], owned */
    double *raw, *sold;             /* [n], owned */
    bool *np;                       /* [n], owned */
    int remaining;
    bool failed;
};

static void fit_free(struct fit *ft)
{
    free(ft->ids);
    free(ft->lens);
    free(ft->raw);
    free(ft->sold);
    free(ft->np);
    free(ft);
}

/* The fit is over: the model replaced when it succeeded. */
static void fit_done(struct fit *ft)
{
    struct patron_reco_fetcher *f = ft->f;
    if (!ft->failed) {
        double inv = 1.0 / patron_trend_weight(ft->event_ms);
        size_t k = 0;
        for (size_t i = 0; i < ft->n; i++) {
            ft->raw[i] *= inv; /* decayed to the fit's time */
            k += !ft->np[i];
        }
        struct patron_momentum m;
        patron_momentum_fit(ft->raw, ft->sold, ft->np, ft->n, &m);
        if (m.alpha != f->model.alpha || m.rate != f->model.rate)
            patron_log(f->log, PATRON_LOG_DEBUG, "momentum refitted",
                       "\"items\":%zu,\"alpha\":%.6g,\"rate\":%.6g", k, m.alpha, m.rate);
        f->model = m;
        f->model_inv_weight = inv;
        f->model_seq++;
        if (f->m_alpha) {
            patron_gauge_set(f->m_alpha, m.alpha);
            patron_gauge_set(f->m_fit_items, (double)k);
        }
    }
    f->fitting = false;
    fit_free(ft);
}

static void fit_release(struct fit *ft)
{
    if (--ft->remaining == 0)
        fit_done(ft);
}

static void on_sold(void *ud, redisReply *reply)
{
    struct fit *ft = ud;
    if (!reco_reply_array(reply, ft->n)) {
        (void)reco_stored_fault(ft->f, reply);
        ft->failed = true;
    } else {
        for (size_t i = 0; i < ft->n; i++) {
            const redisReply *r = reply->element[i];
            int64_t v;
            ft->sold[i] =
                r->type == REDIS_REPLY_STRING && patron_reply_i64(r, 1, INT64_MAX, &v) == 0
                    ? (double)v
                    : 0;
        }
    }
    fit_release(ft);
}

static void on_np(void *ud, redisReply *reply)
{
    struct fit *ft = ud;
    if (!reco_reply_array(reply, ft->n)) {
        (void)reco_stored_fault(ft->f, reply);
        ft->failed = true;
    } else {
        for (size_t i = 0; i < ft->n; i++)
            ft->np[i] =
                reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer == 1;
    }
    fit_release(ft);
}

/* The sample: (member, score) pairs; a malformed pair is left out. */
static void on_sample(void *ud, redisReply *reply)
{
    struct fit *ft = ud;
    struct patron_reco_fetcher *f = ft->f;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        (void)reco_stored_fault(f, reply);
        ft->failed = true;
        fit_done(ft);
        return;
    }
    size_t pairs = reply->elements / 2;
    if (pairs > RECO_MOMENTUM_SAMPLE)
        pairs = RECO_MOMENTUM_SAMPLE;
    size_t cap = pairs ? pairs : 1;
    ft->ids = patron_malloc(cap * sizeof(*ft->ids));
    ft->lens = patron_malloc(cap * sizeof(*ft->lens));
    ft->raw = patron_malloc(cap * sizeof(*ft->raw));
    ft->sold = patron_calloc(cap, sizeof(*ft->sold));
    ft->np = patron_calloc(cap, sizeof(*ft->np));
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *m = reply->element[2 * i];
        double raw;
        if (!reco_reply_id(m) || !reco_reply_double(reply->element[2 * i + 1], &raw) || !(raw > 0))
            continue;
        memcpy(ft->ids[ft->n], m->str, (size_t)m->len);
        ft->ids[ft->n][m->len] = '\0';
        ft->lens[ft->n] = (size_t)m->len;
        ft->raw[ft->n++] = raw;
    }
    if (ft->n == 0) { /* nothing sold yet: no momentum */
        fit_done(ft);
        return;
    }
    const char **argv = patron_malloc((ft->n + 2) * sizeof(*argv));
    size_t *argl = patron_malloc((ft->n + 2) * sizeof(*argl));
    for (size_t i = 0; i < ft->n; i++) {
        argv[i + 2] = ft->ids[i];
        argl[i + 2] = ft->lens[i];
    }
    static const struct reco_items_cmd plan[] = {
        {"HMGET", PATRON_KEY_ITEMS_SOLD, on_sold},
        {"SMISMEMBER", PATRON_KEY_ITEMS_NP, on_np},
    };
    size_t sent = reco_send_items(f->redis, plan, PATRON_ARRAY_LEN(plan), ft, argv, argl, ft->n);
    ft->remaining = 1 + (int)sent; /* one held while sending */
    ft->failed = sent < PATRON_ARRAY_LEN(plan);
    free(argv);
    free(argl);
    fit_release(ft);
}

void reco_momentum_maybe_fit(struct patron_reco_fetcher *f, int64_t event_ms, int64_t now)
{
    if (!(f->cfg.trend_exponent > 0) || f->fitting ||
        (f->model_at_ms && reco_fresh(f->model_at_ms, now, f->list_max_age_ms)))
        return;
    f->model_at_ms = now;
    struct fit *ft = patron_calloc(1, sizeof(*ft));
    *ft = (struct fit){.f = f, .event_ms = event_ms};
    char count[16];
    int clen = snprintf(count, sizeof(count), "%d", RECO_MOMENTUM_SAMPLE);
    const char *argv[] = {"ZRANDMEMBER", PATRON_KEY_ITEMS_TREND, count, "WITHSCORES"};
    size_t lens[] = {11, strlen(PATRON_KEY_ITEMS_TREND), (size_t)clen, 10};
    if (patron_kv_commandv(f->redis, on_sample, ft, 4, argv, lens)) {
        fit_free(ft); /* Redis is away: the next request past the max age tries again */
        return;
    }
    f->fitting = true;
}
