/*
 * The Redis fetch plan of recommendations (see recommend_fetch.h): the
 * requests, from the public calls through their phases (profile -> history
 * round -> candidates round -> score) to the answer. What a phase reads is
 * in reco_read.c, the trending snapshot in reco_trending.c, the cache in
 * reco_cache.c; reco_internal.h ties them (and states the locality rules).
 */
#include "patron/recommend_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/profile.h"
#include "patron/profile_codec.h"
#include "patron/strmap.h"
#include "patron/trend.h"
#include "reco_internal.h"

static void count_read(struct patron_reco_fetcher *f, bool hit)
{
    struct patron_counter *c = hit ? f->m_hits : f->m_misses;
    if (c)
        patron_counter_inc(c);
}

static void phase_done(struct request *rq);

/* ---- decoded profiles --------------------------------------------------------------- */

/* A decoded profile is ~54 KB: kept for reuse rather than freed, up to
 * RECO_SPARES (a malloc and free of that size per answer cost more
 * than the scoring of a short history). */
static struct patron_profile *profile_take(struct patron_reco_fetcher *f)
{
    if (f->n_spare > 0)
        return f->spare[--f->n_spare];
    return patron_malloc(sizeof(struct patron_profile));
}

static void profile_give(struct patron_reco_fetcher *f, struct patron_profile *p)
{
    if (!p)
        return;
    if (f->n_spare < RECO_SPARES)
        f->spare[f->n_spare++] = p;
    else
        free(p);
}

/* Requests (~1.5 KB: past the allocator's small-size caches) are reused
 * the same way; a taken one is zeroed, as calloc would give it. */
static struct request *request_take(struct patron_reco_fetcher *f)
{
    if (f->n_spare_rq == 0)
        return patron_calloc(1, sizeof(struct request));
    struct request *rq = f->spare_rq[--f->n_spare_rq];
    memset(rq, 0, sizeof(*rq));
    return rq;
}

static void request_give(struct patron_reco_fetcher *f, struct request *rq)
{
    if (f->n_spare_rq < RECO_SPARES)
        f->spare_rq[f->n_spare_rq++] = rq;
    else
        free(rq);
}

/* ---- requests ---------------------------------------------------------------------- */

void reco_request_fail(struct request *rq, int err)
{
    if (!rq->err)
        rq->err = err;
}

void reco_reply_back(struct request *rq)
{
    if (--rq->pending == 0)
        phase_done(rq);
}

/* A phase that reads Redis costs its request one more round trip. */
void reco_round_sent(struct request *rq)
{
    if (rq->rounds == 0 || rq->rounds_phase != rq->phase) {
        rq->rounds_phase = rq->phase;
        rq->rounds++;
    }
}

/* ---- scoring ------------------------------------------------------------------------------ */

struct lookup_ctx {
    struct patron_reco_fetcher *f;
};

/* The scorer's lookup, e the item's cache entry or NULL: its facts, else
 * the trending snapshot's (without momentum's: the factor is then 1). A
 * trend is decayed to the momentum model's time, as the fit saw them. */
static bool facts_of(const struct lookup_ctx *lc, const struct reco_entry *e, const char *item,
                     size_t len, uint64_t hash, struct patron_reco_item *out)
{
    if (e && e->facts_ms) {
        *out = (struct patron_reco_item){
            e->buyers, e->category, e->oos, e->np, e->trend_raw * lc->f->model_inv_weight, e->sold};
        return true;
    }
    const struct trend_item *t = reco_trending_get(&lc->f->trend, item, len, hash);
    if (!t)
        return false;
    *out = (struct patron_reco_item){t->buyers, t->category, t->oos, t->np, 0, 0};
    return true;
}

static bool lookup(void *ud, const char *item, size_t len, uint64_t hash,
                   struct patron_reco_item *out)
{
    const struct lookup_ctx *lc = ud;
    return facts_of(lc, reco_cache_get(&lc->f->cache, item, len, hash), item, len, hash, out);
}

/* ---- blocks: a history item's neighbours' facts, kept with it (reco_cache.h) ---- */

/* Blocks serve requests whose scoring reads nothing a block leaves out:
 * no category filter (a block keeps no category). */
static bool blocks_serve(const struct request *rq)
{
    return !rq->has_category;
}

/* Fresh: younger than max_age, and made under the current momentum model
 * (its trends are decayed to that model's time). */
static bool block_fresh(const struct patron_reco_fetcher *f, const struct reco_entry *e,
                        int64_t now)
{
    return e->block && reco_fresh(e->block_ms, now, f->max_age_ms) &&
           e->block_model == f->model_seq;
}

/* Keeps the facts just resolved for e's list as its block, stamped with the
 * oldest read among them (0 when one had none: then no block). */
static void block_store(const struct patron_reco_fetcher *f, struct reco_entry *e,
                        const struct patron_reco_fact *fa, size_t n, int64_t oldest_ms)
{
    if (oldest_ms <= 0 || n == 0 || n != e->n_nb) {
        reco_block_drop(e);
        return;
    }
    if (!e->block)
        e->block = patron_malloc(n * sizeof(*e->block));
    for (size_t j = 0; j < n; j++)
        e->block[j] = (struct reco_block_cell){reco_block_pack(fa[j].known, fa[j].item.buyers,
                                                               fa[j].item.out_of_stock,
                                                               fa[j].item.not_a_product),
                                               (float)fa[j].item.trend, (float)fa[j].item.sold};
    e->block_ms = oldest_ms;
    e->block_model = f->model_seq;
}

/* Starts fetching e's block and list, which the scoring reads next, for
 * all the history items at once: each is a run of lines far from the
 * others, a miss per line read in turn. */
static void block_prefetch(const struct reco_entry *e)
{
    const char *b = (const char *)e->block, *l = (const char *)e->nb;
    for (size_t off = 0; off < e->n_nb * sizeof(*e->block); off += 64)
        __builtin_prefetch(b + off);
    for (size_t off = 0; off < e->n_nb * sizeof(*e->nb); off += 64)
        __builtin_prefetch(l + off);
}

static void block_unpack(const struct reco_entry *e, struct patron_reco_fact *fa, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint64_t b = e->block[j].packed;
        fa[j] = (struct patron_reco_fact){
            .known = b & 1,
            .item = {.buyers = (int64_t)(b >> 3),
                     .out_of_stock = b >> 1 & 1,
                     .not_a_product = b >> 2 & 1,
                     .trend = e->block[j].recent,
                     .sold = e->block[j].sold},
        };
    }
}

/* The facts of every neighbour of the history items (seed_e[i] the entry of
 * item i, lists[i] its list), in f->facts, each list pointing at its own:
 * from the item's block where round 2 used it, else from round 2's probes
 * when this request's phase still holds them (their entries are at hand),
 * else from the cache; the latter two then become the item's block. Lists
 * beyond round 2's bound are left to the lookup. */
static void resolve_lists(struct request *rq, const struct lookup_ctx *lc,
                          struct reco_entry *const *seed_e, struct patron_reco_list *lists,
                          size_t n)
{
    struct patron_reco_fetcher *f = rq->f;
    bool live = f->probes_owner == rq;
    int64_t now = patron_monotonic_ms();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct reco_entry *se = seed_e[i];
        size_t m = lists[i].n;
        if (!se || m == 0)
            continue;
        if (m > RECO_CANDIDATES_MAX - k)
            return;
        struct patron_reco_fact *fa = &f->facts[k];
        lists[i].facts = fa;
        k += m;
        if ((rq->blocks_used >> i & 1) && block_fresh(f, se, now)) {
            block_unpack(se, fa, m);
            continue;
        }
        size_t p = live ? f->probe_first[i] : RECO_NO_PROBE;
        int64_t oldest = INT64_MAX;
        for (size_t j = 0; j < m; j++) {
            const struct patron_reco_neighbour *nb = &lists[i].v[j];
            const struct reco_entry *e =
                p != RECO_NO_PROBE && p + j < f->n_probes && f->probes[p + j].id == nb->item
                    ? f->probe_entries[p + j]
                    : reco_cache_get(&f->cache, nb->item, nb->len, nb->hash);
            fa[j].known = facts_of(lc, e, nb->item, nb->len, nb->hash, &fa[j].item);
            int64_t at = e ? e->facts_ms : 0;
            if (at < oldest)
                oldest = at;
        }
        block_store(f, se, fa, m, oldest);
    }
}

static void answer(struct request *rq, const struct patron_reco_result *res)
{
    struct patron_reco_fetcher *f = rq->f;
    if (f->m_rounds[0] && !rq->err && rq->rounds > 0)
        patron_counter_inc(f->m_rounds[(rq->rounds < 3 ? rq->rounds : 3) - 1]);
    struct patron_reco_answer a = {.err = rq->err, .known = rq->profile != NULL};
    memcpy(a.customer_id, rq->customer_id, sizeof(a.customer_id));
    if (res && !rq->err) {
        a.strategy = res->strategy;
        a.n = res->n;
        for (size_t i = 0; i < res->n; i++) {
            size_t len = strnlen(res->items[i].item, sizeof(a.items[i].item) - 1);
            memcpy(a.items[i].item, res->items[i].item, len);
            a.items[i].item[len] = '\0';
            a.items[i].score = res->items[i].score;
        }
    }
    rq->cb(rq->ud, &a);
    profile_give(f, rq->profile);
    free(rq->sim);
    request_give(f, rq);
}

static void score(struct request *rq)
{
    struct patron_reco_fetcher *f = rq->f;
    if (f->m_cached)
        patron_gauge_set(f->m_cached, (double)f->cache.count);
    struct lookup_ctx lc = {f};
    struct patron_reco_result res;
    int rc;
    if (rq->kind == REQ_SIMILAR) {
        struct patron_reco_list l = {rq->sim, rq->n_sim};
        rc = patron_reco_similar(rq->id, &l, lookup, &lc, rq->limit, &res);
    } else {
        struct patron_reco_list lists[PATRON_RECO_SEEDS_MAX];
        struct reco_entry *seed_e[PATRON_RECO_SEEDS_MAX];
        for (size_t i = 0; i < rq->n_seeds; i++) {
            const char *id = rq->seeds[i].item;
            size_t len = strlen(id);
            struct reco_entry *e = reco_cache_get(&f->cache, id, len, patron_hash64(id, len));
            seed_e[i] = e;
            lists[i] =
                e ? (struct patron_reco_list){e->nb, e->n_nb, NULL} : (struct patron_reco_list){0};
        }
        resolve_lists(rq, &lc, seed_e, lists, rq->n_seeds);
        struct patron_reco_request req = {
            .profile = rq->profile,
            .seeds = rq->seeds,
            .n_seeds = rq->n_seeds,
            .lists = lists,
            .lookup = lookup,
            .lookup_ud = &lc,
            .trending = reco_trending_decayed(f, rq->now_ms, 1.0 / patron_trend_weight(rq->now_ms)),
            .n_trending = f->n_decayed,
            .popular = f->popular,
            .n_popular = f->n_decayed,
            .category = rq->has_category ? rq->category : NULL,
            .limit = rq->limit,
            .scratch = f->scratch,
            .momentum = f->model.alpha > 0 ? &f->model : NULL,
        };
        rc = patron_reco_recommend(&req, &f->cfg, &res);
    }
    if (rc)
        reco_request_fail(rq, rc);
    answer(rq, rc ? NULL : &res); /* copies the items out of the cache */
}

/* ---- phases ------------------------------------------------------------------------------- */

/* Asks for an item's facts (h its hash) in this request's round unless they
 * are younger than max_age or already asked for. Returns its entry, pinned
 * for the phase. */
static struct reco_entry *want_facts_h(struct request *rq, const char *id, size_t len, uint64_t h,
                                       int64_t now, int64_t max_age, const char **ids, size_t *lens,
                                       size_t *n)
{
    struct patron_reco_fetcher *f = rq->f;
    struct reco_entry *e = reco_cache_put(&f->cache, id, len, h);
    e->referenced = true;
    if (e->mark == rq->seq)
        return e;
    e->mark = rq->seq; /* pinned for the phase: ids[] points into it */
    bool hit = reco_fresh(e->facts_ms, now, max_age);
    count_read(f, hit);
    if (hit) {
        if (!e->facts_queued && reco_ageing(e->facts_ms, now, max_age))
            reco_refresh_queue_facts(f, e, now);
        return e;
    }
    ids[*n] = e->id;
    lens[*n] = len;
    (*n)++;
    return e;
}

static struct reco_entry *want_facts(struct request *rq, const char *id, size_t len, int64_t now,
                                     int64_t max_age, const char **ids, size_t *lens, size_t *n)
{
    return want_facts_h(rq, id, len, patron_hash64(id, len), now, max_age, ids, lens, n);
}

/* A phase's entries are pinned by its own sequence number (reco_cache.h). */
static void phase_begin(struct request *rq)
{
    rq->seq = ++rq->f->seq;
    rq->f->cache.pin = rq->seq;
}

/* Round 1 of a customer: the history items' neighbour lists and facts, and
 * the trending snapshot if there is none yet. */
static void start_history(struct request *rq)
{
    struct patron_reco_fetcher *f = rq->f;
    int64_t now = patron_monotonic_ms();
    rq->phase = PHASE_HISTORY;
    rq->pending++; /* held while sending */
    phase_begin(rq);
    const char *ids[PATRON_RECO_SEEDS_MAX + 1];
    size_t lens[PATRON_RECO_SEEDS_MAX + 1], n = 0;
    for (size_t i = 0; i < rq->n_seeds; i++) {
        const char *id = rq->seeds[i].item;
        size_t len = strlen(id);
        /* a history item's facts only weigh its neighbours (its buyers):
         * they may be as old as its list; as a candidate it is asked again */
        struct reco_entry *e = want_facts(rq, id, len, now, f->list_max_age_ms, ids, lens, &n);
        bool hit = reco_fresh(e->nb_ms, now, f->list_max_age_ms);
        count_read(f, hit);
        if (hit) {
            if (!e->nb_queued && reco_ageing(e->nb_ms, now, f->list_max_age_ms))
                reco_refresh_queue_nb(f, e, now);
            continue;
        }
        if (reco_send_neighbours(rq, id, len))
            reco_request_fail(rq, PATRON_EIO);
    }
    if (reco_send_facts(rq, ids, lens, n))
        reco_request_fail(rq, PATRON_EIO);
    reco_trending_await(rq, now);
    reco_momentum_maybe_fit(f, rq->now_ms, now);
    reco_refresh_maybe_send(f, now);
    reco_reply_back(rq);
}

/* A neighbour as round 2 probes it: its list carries its length and hash
 * (reco_reply_neighbours). */
static struct reco_probe probe_of(const struct patron_reco_neighbour *nb)
{
    return (struct reco_probe){nb->item, nb->len, nb->hash};
}

/* Round 2: the facts of the candidates found in the neighbour lists. The
 * cache is far bigger than the CPU's caches, so each probe would miss them
 * twice in a row (slot, then entry): all the probes are hashed and their
 * slots then entries prefetched first, so that the misses overlap. */
static void start_candidates(struct request *rq)
{
    struct patron_reco_fetcher *f = rq->f;
    struct reco_cache *c = &f->cache;
    int64_t now = patron_monotonic_ms();
    rq->phase = PHASE_CANDIDATES;
    rq->pending++;
    phase_begin(rq);
    struct reco_probe *probes = f->probes;
    size_t n_probes = 0;
    if (rq->kind == REQ_SIMILAR) {
        for (size_t j = 0; j < rq->n_sim && n_probes < RECO_CANDIDATES_MAX; j++)
            probes[n_probes++] = probe_of(&rq->sim[j]);
    } else {
        /* pinned first: their lists are read while entries are added */
        const struct reco_entry *seed_e[PATRON_RECO_SEEDS_MAX];
        for (size_t i = 0; i < rq->n_seeds; i++) {
            const char *id = rq->seeds[i].item;
            size_t len = strlen(id);
            struct reco_entry *e = reco_cache_get(c, id, len, patron_hash64(id, len));
            if (e)
                e->mark = rq->seq;
            seed_e[i] = e;
        }
        /* a history item whose block is fresh (and not yet ageing: a
         * rebuild then reads its neighbours again, refreshing them ahead)
         * needs no probe */
        bool blocks = blocks_serve(rq);
        rq->blocks_used = 0;
        for (size_t i = 0; i < rq->n_seeds; i++) {
            f->probe_first[i] = RECO_NO_PROBE;
            const struct reco_entry *e = seed_e[i];
            if (!e)
                continue;
            if (blocks && block_fresh(f, e, now) && !reco_ageing(e->block_ms, now, f->max_age_ms)) {
                rq->blocks_used |= (uint64_t)1 << i;
                block_prefetch(e);
                continue;
            }
            f->probe_first[i] = n_probes;
            for (size_t j = 0; j < e->n_nb && n_probes < RECO_CANDIDATES_MAX; j++)
                probes[n_probes++] = probe_of(&e->nb[j]);
        }
    }
    f->n_probes = n_probes;
    for (size_t k = 0; k < n_probes; k++)
        __builtin_prefetch(&c->slots[reco_home_slot(probes[k].hash, c->shift)]);
    for (size_t k = 0; k < n_probes; k++) {
        const struct reco_entry *e = c->slots[reco_home_slot(probes[k].hash, c->shift)].e;
        if (e)
            reco_cache_prefetch(e);
    }
    const char **ids = f->probe_ids;
    size_t *lens = f->probe_lens, n = 0;
    for (size_t k = 0; k < n_probes; k++)
        f->probe_entries[k] = want_facts_h(rq, probes[k].id, probes[k].len, probes[k].hash, now,
                                           f->max_age_ms, ids, lens, &n);
    if (reco_send_facts(rq, ids, lens, n))
        reco_request_fail(rq, PATRON_EIO);
    reco_refresh_maybe_send(f, now);
    f->probes_owner = rq; /* while scoring runs from here (nothing was missing) */
    reco_reply_back(rq);
    f->probes_owner = NULL;
}

static void phase_done(struct request *rq)
{
    if (rq->kind == REQ_REFRESH) {
        reco_refresh_finish(rq);
        return;
    }
    if (rq->err) {
        answer(rq, NULL);
        return;
    }
    switch (rq->phase) {
    case PHASE_PROFILE:
        start_history(rq);
        return;
    case PHASE_HISTORY:
        start_candidates(rq);
        return;
    case PHASE_CANDIDATES:
    case PHASE_SCORE:
        rq->phase = PHASE_SCORE;
        score(rq);
        return;
    }
}

static void on_profile(void *ud, redisReply *reply);

/* A visitor's key held an alias: its customer's profile is read next, in
 * the same phase (the request waits one more round trip). */
static void read_customer_of(struct request *rq, const char *customer_id)
{
    char key[PATRON_KEY_MAX];
    size_t len = strnlen(customer_id, PATRON_ID_MAX);
    int klen = patron_key_customer(key, sizeof(key), customer_id, len);
    if (klen < 0) {
        reco_request_fail(rq, PATRON_EINVAL);
        return;
    }
    memcpy(rq->customer_id, customer_id, len);
    rq->customer_id[len] = '\0';
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    if (patron_kv_commandv(rq->f->redis, on_profile, rq, 2, argv, lens)) {
        reco_request_fail(rq, PATRON_EIO);
        return;
    }
    rq->pending++;
}

static void on_profile(void *ud, redisReply *reply)
{
    struct request *rq = ud;
    struct patron_reco_fetcher *f = rq->f;
    if (patron_reply_wrong_type(reply)) {
        /* this customer's key holds something else: their answer fails
         * as a corrupt profile's does (500), not as Redis being away */
        patron_log(f->log, PATRON_LOG_ERROR, "stored profile of another type", NULL);
        reco_request_fail(rq, PATRON_EINVAL);
    } else if (!reply || reply->type == REDIS_REPLY_ERROR) {
        reco_request_fail(rq, PATRON_EIO);
    } else if (reply->type == REDIS_REPLY_STRING) {
        size_t len = (size_t)reply->len;
        struct patron_profile *p = profile_take(f);
        if (patron_profile_stored_decode(p, reply->str, len, NULL)) {
            patron_log(f->log, PATRON_LOG_ERROR, "stored profile does not decode", "\"bytes\":%zu",
                       len);
            reco_request_fail(rq, PATRON_EINVAL);
            profile_give(f, p);
        } else if (p->erased) {
            profile_give(f, p); /* a tombstone: an unknown customer */
        } else if (rq->visitor && !rq->customer_id[0] && p->merged_into[0]) {
            read_customer_of(rq, p->merged_into); /* identified: its customer's history */
            profile_give(f, p);
        } else {
            rq->profile = p;
            rq->n_seeds = patron_reco_seeds(p, &f->cfg, rq->seeds, PATRON_RECO_SEEDS_MAX);
        }
    }
    reco_reply_back(rq);
}

/* ---- public ---------------------------------------------------------------------------------- */

static bool text_ok(const char *s, size_t len)
{
    if (len == 0 || len > PATRON_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0')
            return false;
    return true;
}

static struct request *request_new(struct patron_reco_fetcher *f, enum request_kind kind,
                                   const char *id, size_t id_len, size_t limit,
                                   patron_reco_done_fn cb, void *ud)
{
    struct request *rq = request_take(f);
    rq->f = f;
    rq->kind = kind;
    memcpy(rq->id, id, id_len);
    rq->id_len = id_len;
    rq->limit = limit;
    rq->cb = cb;
    rq->ud = ud;
    return rq;
}

/* A customer's request, or a visitor's: GET the profile (the visitor's key
 * first, then, once identified, its customer's), then the common plan. */
static int fetch_profile(struct patron_reco_fetcher *f, bool visitor, const char *id, size_t id_len,
                         const char *category, size_t limit, int64_t now_ms, patron_reco_done_fn cb,
                         void *ud)
{
    if (!f || !cb || !id || !text_ok(id, id_len) || limit < 1 || limit > PATRON_RECO_LIMIT_MAX ||
        (category && !text_ok(category, strlen(category))))
        return PATRON_EINVAL;
    char key[PATRON_KEY_MAX];
    int klen = visitor ? patron_key_visitor(key, sizeof(key), id, id_len)
                       : patron_key_customer(key, sizeof(key), id, id_len);
    if (klen < 0)
        return PATRON_EINVAL;
    struct request *rq = request_new(f, REQ_CUSTOMER, id, id_len, limit, cb, ud);
    rq->visitor = visitor;
    rq->now_ms = now_ms;
    if (category) {
        snprintf(rq->category, sizeof(rq->category), "%s", category);
        rq->has_category = true;
    }
    rq->phase = PHASE_PROFILE;
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    int rc = patron_kv_commandv(f->redis, on_profile, rq, 2, argv, lens);
    if (rc) {
        request_give(f, rq);
        return PATRON_EIO;
    }
    rq->pending = 1;
    reco_round_sent(rq);
    return 0;
}

int patron_reco_fetch_customer(struct patron_reco_fetcher *f, const char *customer_id,
                               size_t id_len, const char *category, size_t limit, int64_t now_ms,
                               patron_reco_done_fn cb, void *ud)
{
    return fetch_profile(f, false, customer_id, id_len, category, limit, now_ms, cb, ud);
}

int patron_reco_fetch_visitor(struct patron_reco_fetcher *f, const char *anonymous_id,
                              size_t id_len, const char *category, size_t limit, int64_t now_ms,
                              patron_reco_done_fn cb, void *ud)
{
    return fetch_profile(f, true, anonymous_id, id_len, category, limit, now_ms, cb, ud);
}

/* The similar list goes to the request too: it is longer than what the cache
 * keeps per item. */
static void on_similar_list(void *ud, redisReply *reply)
{
    struct request *rq = ud;
    ssize_t n = reply ? reco_reply_neighbours(reply, PATRON_RECO_SIMILAR_MAX, &rq->sim) : -1;
    if (n < 0)
        reco_request_fail(rq, PATRON_EIO);
    else
        rq->n_sim = (size_t)n;
    reco_reply_back(rq);
}

int patron_reco_fetch_similar(struct patron_reco_fetcher *f, const char *item_id, size_t id_len,
                              size_t limit, patron_reco_done_fn cb, void *ud)
{
    if (!f || !cb || !item_id || !text_ok(item_id, id_len) || limit < 1 ||
        limit > PATRON_RECO_LIMIT_MAX)
        return PATRON_EINVAL;
    char key[PATRON_KEY_MAX];
    int klen = patron_key_item_cooc(key, sizeof(key), item_id, id_len);
    if (klen < 0)
        return PATRON_EINVAL;
    struct request *rq = request_new(f, REQ_SIMILAR, item_id, id_len, limit, cb, ud);
    rq->phase = PHASE_HISTORY;
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    if (patron_kv_commandv(f->redis, on_similar_list, rq, 2, argv, lens)) {
        request_give(f, rq);
        return PATRON_EIO;
    }
    rq->pending = 1;
    reco_round_sent(rq);
    /* the item's own facts, in the same round */
    phase_begin(rq);
    int64_t now = patron_monotonic_ms();
    const char *ids[1];
    size_t idl[1], n = 0;
    want_facts(rq, rq->id, rq->id_len, now, f->max_age_ms, ids, idl, &n);
    rq->pending++;
    if (reco_send_facts(rq, ids, idl, n))
        reco_request_fail(rq, PATRON_EIO);
    reco_reply_back(rq);
    return 0;
}

int patron_reco_fetcher_open(struct patron_reco_fetcher **out, struct patron_kv *redis,
                             const struct patron_reco_fetcher_options *opt)
{
    if (!out || !redis || !opt || opt->max_age_ms < 0 || opt->list_max_age_ms < 0)
        return PATRON_EINVAL;
    struct patron_reco_fetcher *f = patron_calloc(1, sizeof(*f));
    f->redis = redis;
    f->log = opt->log;
    f->max_age_ms = opt->max_age_ms ? opt->max_age_ms : PATRON_RECO_MAX_AGE_MS;
    f->list_max_age_ms = opt->list_max_age_ms ? opt->list_max_age_ms : PATRON_RECO_LIST_MAX_AGE_MS;
    if (opt->config) {
        f->cfg = *opt->config;
    } else {
        patron_reco_config_default(&f->cfg);
        f->cfg.trend_exponent = opt->momentum;
    }
    reco_cache_init(&f->cache, opt->cache_items ? opt->cache_items : PATRON_RECO_CACHE_ITEMS);
    f->probes = patron_malloc(RECO_CANDIDATES_MAX * sizeof(*f->probes));
    f->probe_ids = patron_malloc(RECO_CANDIDATES_MAX * sizeof(*f->probe_ids));
    f->probe_lens = patron_malloc(RECO_CANDIDATES_MAX * sizeof(*f->probe_lens));
    f->scratch = patron_reco_scratch_new();
    f->probe_entries = patron_malloc(RECO_CANDIDATES_MAX * sizeof(*f->probe_entries));
    f->facts = patron_malloc(RECO_CANDIDATES_MAX * sizeof(*f->facts));
    if (opt->metrics) {
        const char *name = "patron_reco_item_reads_total",
                   *help = "Item facts and neighbour lists a recommendation needed, by where from";
        f->m_hits = patron_metrics_counter(opt->metrics, name, help, "source=\"cache\"");
        f->m_misses = patron_metrics_counter(opt->metrics, name, help, "source=\"redis\"");
        f->m_cached = patron_metrics_gauge(opt->metrics, "patron_reco_cache_items",
                                           "Items in the recommendation cache", NULL);
        f->m_alpha = patron_metrics_gauge(
            opt->metrics, "patron_reco_momentum_alpha",
            "The momentum prior fitted to the shop (lower: more momentum); 0: none measured", NULL);
        f->m_fit_items = patron_metrics_gauge(opt->metrics, "patron_reco_momentum_items",
                                              "Items the last momentum fit read", NULL);
        f->m_stored_faults = patron_metrics_counter(
            opt->metrics, "patron_reco_stored_faults_total",
            "Reads of the item statistics that Redis refused (a key of another type): answered "
            "without those facts",
            NULL);
        static const char *const rounds[] = {"round_trips=\"1\"", "round_trips=\"2\"",
                                             "round_trips=\"3\""};
        for (size_t i = 0; i < PATRON_ARRAY_LEN(rounds); i++)
            f->m_rounds[i] = patron_metrics_counter(
                opt->metrics, "patron_reco_answers_total",
                "Answers by the Redis round trips they waited for (profile, lists, facts)",
                rounds[i]);
    }
    *out = f;
    return 0;
}

void patron_reco_fetcher_free(struct patron_reco_fetcher *f)
{
    if (!f)
        return;
    if (f->ahead) /* never sent: no reply will come */
        reco_refresh_discard(f->ahead);
    reco_cache_free(&f->cache);
    reco_trending_free(&f->trend);
    reco_trending_free(&f->next);
    free(f->decayed);
    free(f->popular);
    free(f->probes);
    free(f->probe_ids);
    free(f->probe_lens);
    patron_reco_scratch_free(f->scratch);
    free(f->probe_entries);
    free(f->facts);
    while (f->n_spare > 0)
        free(f->spare[--f->n_spare]);
    while (f->n_spare_rq > 0)
        free(f->spare_rq[--f->n_spare_rq]);
    free(f);
}
