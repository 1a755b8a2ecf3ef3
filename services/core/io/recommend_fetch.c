/*
 * The Redis fetch plan of recommendations (see recommend_fetch.h).
 *
 * @locality: the loop thread; every callback runs on it. A request moves
 * through phases (profile -> history round -> candidates round -> score);
 * each phase sends its commands at once (they pipeline) and the last reply
 * of a phase starts the next. Pointers into the cache are never held across
 * a callback: the cache may drop entries between phases.
 */
#include "patron/recommend_fetch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "patron/clock.h"
#include "patron/graph_row.h"
#include "patron/keys.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/profile.h"
#include "patron/kv.h"
#include "patron/strmap.h"
#include "patron/trend.h"
#include "patron/profile_codec.h"

/* ---- the item cache ----------------------------------------------------------- */

struct entry {
    char id[PATRON_ID_MAX + 1];
    size_t len;
    uint64_t hash;
    uint64_t mark;   /* the last request phase that asked for it: dedupes, and pins it */
    bool referenced; /* asked for since the clock hand last passed (eviction) */
    bool facts_queued, nb_queued; /* in a refresh-ahead batch (see struct ahead) */
    /* The facts: oos sits with the fields a lookup reads (the first two
     * cache lines), category after them. */
    bool oos;
    int64_t facts_ms; /* monotonic ms the facts were read; 0: never */
    int64_t nb_ms;    /* ... the neighbour list */
    int64_t buyers;
    char category[PATRON_ID_MAX + 1];
    size_t n_nb;
    struct patron_reco_neighbour nb[PATRON_RECO_NEIGHBOURS_MAX];
    char *nb_ids; /* owned: the neighbours' ids, each NUL-ended */
};

/* Open addressing keyed by patron_hash64 (the hash the scorer passes to its
 * lookup), at most half full. When full, an insert first evicts one entry by
 * CLOCK (second chance for the referenced ones): never one marked by the
 * phase in progress, whose pointers the phase may hold. */
struct cache_slot {
    uint64_t hash; /* the entry's, so that a probe does not touch the entry */
    struct entry *e;
};

struct cache {
    struct cache_slot *slots;
    size_t mask;
    unsigned shift; /* 64 - log2(capacity): home slots by Fibonacci hashing */
    size_t count, max;
    size_t hand;  /* the CLOCK hand: a slot index */
    uint64_t pin; /* entries marked with this are in use by the current phase */
};

/* The trending snapshot: items by decayed popularity, with the facts the
 * popular answer needs (category, stock). */
struct trend_item {
    char id[PATRON_ID_MAX + 1];
    size_t len;
    uint64_t hash;
    double raw; /* the stored score (trend.h) */
    char category[PATRON_ID_MAX + 1];
    bool oos;
};

/* An index slot: the item's hash, so that a probe does not touch the item
 * unless it matches (most candidates are not trending), and 1 + its
 * position, 0 empty. */
struct trend_slot {
    uint64_t hash;
    uint32_t pos;
};

struct trending {
    struct trend_item *v;
    size_t n;
    struct trend_slot *index; /* hash slots */
    size_t mask;
    unsigned shift;
    int64_t at_ms; /* monotonic ms it was read; 0: none */
};

struct request;

struct patron_reco_fetcher {
    struct patron_kv *redis;
    const struct patron_log *log;
    struct patron_reco_config cfg;
    int64_t max_age_ms;      /* facts of candidates, trends */
    int64_t list_max_age_ms; /* neighbour lists, and facts of history items */
    struct cache cache;
    struct trending trend; /* the current snapshot */
    struct trending next;  /* being read */
    bool refreshing;
    struct request *waiters; /* requests waiting for the first snapshot */
    /* The snapshot decayed to decayed_now_ms, for the scorer: recomputed when
     * the snapshot changes or the clock moved by a second (a 14-day
     * half-life makes that a 6e-7 relative change). */
    struct patron_reco_trending *decayed;
    size_t n_decayed;
    int64_t decayed_now_ms;
    bool decayed_stale;
    uint64_t seq;
    struct request *ahead;                    /* the refresh-ahead batch being filled, or NULL */
    struct patron_counter *m_hits, *m_misses; /* NULL without metrics */
    struct patron_counter *m_rounds[3];       /* answers by Redis round trips waited, 1..3 */
    struct patron_gauge *m_cached;
};

static void count_read(struct patron_reco_fetcher *f, bool hit)
{
    struct patron_counter *c = hit ? f->m_hits : f->m_misses;
    if (c)
        patron_counter_inc(c);
}

/* REQ_REFRESH: a batch of refresh-ahead reads (see struct ahead), answering
 * no one. */
enum request_kind { REQ_CUSTOMER, REQ_SIMILAR, REQ_REFRESH };
enum phase { PHASE_PROFILE, PHASE_HISTORY, PHASE_CANDIDATES, PHASE_SCORE };

struct request {
    struct patron_reco_fetcher *f;
    enum request_kind kind;
    enum phase phase;
    uint64_t seq;
    char id[PATRON_ID_MAX + 1];
    size_t id_len;
    char category[PATRON_ID_MAX + 1];
    bool has_category;
    size_t limit;
    int64_t now_ms;
    size_t pending;          /* replies (and the trending wait) outstanding in this phase */
    unsigned rounds;         /* Redis round trips the answer waited for */
    enum phase rounds_phase; /* the last phase counted in rounds */
    int err;
    patron_reco_done_fn cb;
    void *ud;
    struct request *next_waiter;
    bool waiting_trend;

    /* customers */
    struct patron_profile *profile; /* NULL: unknown */
    struct patron_reco_seed seeds[PATRON_RECO_SEEDS_MAX];
    size_t n_seeds;
    /* similar items: the item's own list, read for this request only */
    struct patron_reco_neighbour *sim;
    size_t n_sim;
    char *sim_ids;
    /* refresh-ahead batches: what they read */
    struct ahead *ahead;
};

static void phase_done(struct request *rq);

static size_t pow2_at_least(size_t n)
{
    size_t cap = 16;
    while (cap < n)
        cap *= 2;
    return cap;
}

/* FNV-1a's low bits cluster on ids that differ in their last characters
 * ("i123", "i124"): the home slot takes the high bits of a multiplicative
 * mix instead. */
static size_t home_slot(uint64_t h, unsigned shift)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> shift);
}

static unsigned shift_for(size_t cap)
{
    unsigned bits = 0;
    while (((size_t)1 << bits) < cap)
        bits++;
    return 64 - bits;
}

static void cache_init(struct cache *c, size_t max)
{
    c->max = max;
    c->count = 0;
    c->hand = 0;
    c->pin = 0;
    size_t cap = pow2_at_least(2 * max + 1);
    c->slots = patron_calloc(cap, sizeof(*c->slots));
    c->mask = cap - 1;
    c->shift = shift_for(cap);
}

static size_t cache_find(const struct cache *c, const char *id, size_t len, uint64_t h)
{
    for (size_t i = home_slot(h, c->shift);; i = (i + 1) & c->mask) {
        const struct cache_slot *s = &c->slots[i];
        if (!s->e || (s->hash == h && s->e->len == len && memcmp(s->e->id, id, len) == 0))
            return i;
    }
}

static struct entry *cache_get(const struct cache *c, const char *id, size_t len, uint64_t h)
{
    return c->slots[cache_find(c, id, len, h)].e;
}

static void entry_free(struct entry *e)
{
    free(e->nb_ids);
    free(e);
}

/* Frees slot i's entry; backward-shift deletion keeps every probe chain
 * intact without tombstones. */
static void cache_remove(struct cache *c, size_t i)
{
    entry_free(c->slots[i].e);
    c->slots[i] = (struct cache_slot){0};
    c->count--;
    for (size_t j = (i + 1) & c->mask; c->slots[j].e; j = (j + 1) & c->mask) {
        size_t home = home_slot(c->slots[j].hash, c->shift);
        /* the entry at j may fill the hole at i unless its home lies in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            c->slots[i] = c->slots[j];
            c->slots[j] = (struct cache_slot){0};
            i = j;
        }
    }
}

/* CLOCK: the first entry past the hand that is neither referenced (the
 * referenced lose their mark as the hand passes) nor pinned. The table is
 * at most half full and a phase pins a bounded number, so this ends. */
static void cache_evict_one(struct cache *c)
{
    for (;;) {
        size_t i = c->hand;
        c->hand = (c->hand + 1) & c->mask;
        struct entry *e = c->slots[i].e;
        if (!e || e->mark == c->pin)
            continue;
        if (e->referenced) {
            e->referenced = false;
            continue;
        }
        cache_remove(c, i);
        return;
    }
}

/* The item's entry, created if absent (evicting one when full): pointers to
 * other entries survive only if they are pinned. */
static struct entry *cache_put(struct cache *c, const char *id, size_t len, uint64_t h)
{
    size_t i = cache_find(c, id, len, h);
    if (c->slots[i].e)
        return c->slots[i].e;
    if (c->count >= c->max) {
        cache_evict_one(c);
        i = cache_find(c, id, len, h); /* deletion may have moved the chain */
    }
    struct entry *e = patron_calloc(1, sizeof(*e));
    memcpy(e->id, id, len);
    e->len = len;
    e->hash = h;
    c->slots[i] = (struct cache_slot){h, e};
    c->count++;
    return e;
}

static bool fresh(int64_t at_ms, int64_t now_ms, int64_t max_age_ms)
{
    return at_ms != 0 && now_ms - at_ms < max_age_ms;
}

static void cache_free(struct cache *c)
{
    for (size_t i = 0; i <= c->mask; i++)
        if (c->slots[i].e)
            entry_free(c->slots[i].e);
    free(c->slots);
}

/* ---- the trending snapshot ------------------------------------------------------- */

static void trending_free(struct trending *t)
{
    free(t->v);
    free(t->index);
    *t = (struct trending){0};
}

static const struct trend_item *trending_get(const struct trending *t, const char *id, size_t len,
                                             uint64_t h)
{
    if (!t->index)
        return NULL;
    for (size_t i = home_slot(h, t->shift);; i = (i + 1) & t->mask) {
        const struct trend_slot *s = &t->index[i];
        if (s->pos == 0)
            return NULL;
        if (s->hash != h)
            continue;
        const struct trend_item *it = &t->v[s->pos - 1];
        if (it->len == len && memcmp(it->id, id, len) == 0)
            return it;
    }
}

static void trending_index(struct trending *t)
{
    size_t cap = pow2_at_least(2 * t->n + 1);
    t->index = patron_calloc(cap, sizeof(*t->index));
    t->mask = cap - 1;
    t->shift = shift_for(cap);
    for (size_t k = 0; k < t->n; k++) {
        size_t i = home_slot(t->v[k].hash, t->shift);
        while (t->index[i].pos)
            i = (i + 1) & t->mask;
        t->index[i] = (struct trend_slot){t->v[k].hash, (uint32_t)(k + 1)};
    }
}

/* ---- reply parsing: every field checked, nothing trusted ---------------------------- */

static bool reply_array(const redisReply *r, size_t n)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
}

/* An item id as stored by ingest: 1..PATRON_ID_MAX bytes. */
static bool reply_id(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 && (size_t)r->len <= PATRON_ID_MAX;
}

static bool parse_double(const redisReply *r, double *out)
{
    char buf[64];
    if (r->type != REDIS_REPLY_STRING || r->len <= 0 || (size_t)r->len >= sizeof(buf))
        return false;
    memcpy(buf, r->str, (size_t)r->len);
    buf[r->len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static int64_t parse_count(const redisReply *r)
{
    int64_t v;
    return r->type == REDIS_REPLY_STRING && patron_reply_i64(r, 1, INT64_MAX, &v) == 0 ? v : 0;
}

/* A GET of a neighbour list (graph_row.h): strongest first. Fills at most
 * max neighbours, their ids copied into *ids_out; nil (no list yet), a key
 * of another type and a list that does not decode give none. Returns -1
 * for any other reply (Redis failing). */
static ssize_t parse_neighbours(const redisReply *r, size_t max, struct patron_reco_neighbour *nb,
                                char **ids_out)
{
    struct patron_graph_cell cells[PATRON_GRAPH_ROW_MAX];
    uint64_t version;
    size_t n = 0, bytes = 0;
    *ids_out = NULL;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    /* a key of another type (a sorted set from before lists were strings):
     * no list, until ingest's next merge replaces it */
    if (r->type == REDIS_REPLY_ERROR && r->len >= 9 && memcmp(r->str, "WRONGTYPE", 9) == 0)
        return 0;
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    if (patron_graph_row_decode(r->str, (size_t)r->len, &version, cells, PATRON_GRAPH_ROW_MAX, &n,
                                NULL))
        return 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        bytes += cells[i].id_len + 1;
    char *ids = patron_malloc(bytes ? bytes : 1), *p = ids;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, cells[i].id, cells[i].id_len);
        p[cells[i].id_len] = '\0';
        nb[i] = (struct patron_reco_neighbour){p, (double)cells[i].count};
        p += cells[i].id_len + 1;
    }
    *ids_out = ids;
    return (ssize_t)n;
}

/* ---- commands ----------------------------------------------------------------------- */

/* One command's context: the request (NULL for the fetcher's trending
 * refresh) and the item it is about. */
struct cmd {
    struct patron_reco_fetcher *f;
    struct request *rq;
    char id[PATRON_ID_MAX + 1];
    size_t len;
};

/* The facts of a batch of items: three commands over the same ids. */
struct facts_batch {
    struct patron_reco_fetcher *f;
    struct request *rq;
    size_t n;
    const char **ids;
    size_t *lens;
    char *blob;
    int remaining;
    bool failed;
};

static void request_fail(struct request *rq, int err)
{
    if (!rq->err)
        rq->err = err;
}

static void reply_back(struct request *rq)
{
    if (--rq->pending == 0)
        phase_done(rq);
}

static void on_neighbours(void *ud, redisReply *reply)
{
    struct cmd *c = ud;
    struct request *rq = c->rq;
    struct patron_reco_neighbour nb[PATRON_RECO_NEIGHBOURS_MAX];
    char *ids = NULL;
    ssize_t n = reply ? parse_neighbours(reply, PATRON_RECO_NEIGHBOURS_MAX, nb, &ids) : -1;
    if (n < 0) {
        request_fail(rq, PATRON_EIO);
    } else {
        uint64_t h = patron_hash64(c->id, c->len);
        struct entry *e = cache_put(&c->f->cache, c->id, c->len, h);
        if (e) {
            free(e->nb_ids);
            memcpy(e->nb, nb, (size_t)n * sizeof(*nb));
            e->n_nb = (size_t)n;
            e->nb_ids = ids;
            e->nb_ms = patron_monotonic_ms();
        } else {
            free(ids);
        }
    }
    free(c);
    reply_back(rq);
}

/* A phase that reads Redis costs its request one more round trip. */
static void round_sent(struct request *rq)
{
    if (rq->rounds == 0 || rq->rounds_phase != rq->phase) {
        rq->rounds_phase = rq->phase;
        rq->rounds++;
    }
}

static int send_neighbours(struct request *rq, const char *id, size_t len)
{
    char key[PATRON_KEY_MAX];
    int klen = patron_key_item_cooc(key, sizeof(key), id, len);
    if (klen < 0)
        return klen;
    struct cmd *c = patron_calloc(1, sizeof(*c));
    *c = (struct cmd){.f = rq->f, .rq = rq, .len = len};
    memcpy(c->id, id, len);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)klen};
    int rc = patron_kv_commandv(rq->f->redis, on_neighbours, c, 2, argv, lens);
    if (rc) {
        free(c);
        return rc;
    }
    rq->pending++;
    round_sent(rq);
    return 0;
}

static void facts_release(struct facts_batch *b)
{
    if (--b->remaining > 0)
        return;
    struct request *rq = b->rq;
    if (!b->failed) {
        int64_t now = patron_monotonic_ms();
        for (size_t i = 0; i < b->n; i++) {
            struct entry *e = cache_get(&b->f->cache, b->ids[i], b->lens[i],
                                        patron_hash64(b->ids[i], b->lens[i]));
            if (e)
                e->facts_ms = now;
        }
    } else {
        request_fail(rq, PATRON_EIO);
    }
    free(b->ids);
    free(b->lens);
    free(b->blob);
    free(b);
    reply_back(rq);
}

/* Applies element i of a facts reply to its item's entry. */
typedef void (*fact_apply_fn)(struct entry *e, const redisReply *r);

static void apply_buyers(struct entry *e, const redisReply *r)
{
    e->buyers = parse_count(r);
}

static void apply_oos(struct entry *e, const redisReply *r)
{
    e->oos = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

static void apply_category(struct entry *e, const redisReply *r)
{
    if (reply_id(r)) {
        memcpy(e->category, r->str, (size_t)r->len);
        e->category[r->len] = '\0';
    } else {
        e->category[0] = '\0';
    }
}

static void on_facts(struct facts_batch *b, redisReply *reply, fact_apply_fn apply)
{
    if (!reply_array(reply, b->n)) {
        b->failed = true;
    } else if (!b->failed) {
        for (size_t i = 0; i < b->n; i++) {
            struct entry *e = cache_put(&b->f->cache, b->ids[i], b->lens[i],
                                        patron_hash64(b->ids[i], b->lens[i]));
            if (e)
                apply(e, reply->element[i]);
        }
    }
    facts_release(b);
}

static void on_buyers(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_buyers);
}

static void on_oos(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_oos);
}

static void on_category(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_category);
}

/* HMGET {items}:pop, SMISMEMBER {items}:oos, HMGET {items}:cat for n ids
 * (copied). */
static int send_facts(struct request *rq, const char *const *ids, const size_t *lens, size_t n)
{
    if (n == 0)
        return 0;
    struct facts_batch *b = patron_calloc(1, sizeof(*b));
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += lens[i];
    *b = (struct facts_batch){.f = rq->f, .rq = rq, .n = n};
    b->ids = patron_malloc(n * sizeof(*b->ids));
    b->lens = patron_malloc(n * sizeof(*b->lens));
    b->blob = patron_malloc(bytes ? bytes : 1);
    char *p = b->blob;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, ids[i], lens[i]);
        b->ids[i] = p;
        b->lens[i] = lens[i];
        p += lens[i];
    }
    const char **argv = patron_malloc((n + 2) * sizeof(*argv));
    size_t *argl = patron_malloc((n + 2) * sizeof(*argl));
    memcpy(argv + 2, b->ids, n * sizeof(*argv));
    memcpy(argl + 2, b->lens, n * sizeof(*argl));
    static const struct {
        const char *cmd, *key;
        patron_redis_cb cb;
    } plan[] = {
        {"HMGET", PATRON_KEY_ITEMS_POP, on_buyers},
        {"SMISMEMBER", PATRON_KEY_ITEMS_OOS, on_oos},
        {"HMGET", PATRON_KEY_ITEMS_CAT, on_category},
    };
    int rc = 0;
    for (size_t k = 0; k < PATRON_ARRAY_LEN(plan) && rc == 0; k++) {
        argv[0] = plan[k].cmd;
        argl[0] = strlen(plan[k].cmd);
        argv[1] = plan[k].key;
        argl[1] = strlen(plan[k].key);
        rc = patron_kv_commandv(rq->f->redis, plan[k].cb, b, (int)(n + 2), argv, argl);
        if (rc == 0)
            b->remaining++;
    }
    free(argv);
    free(argl);
    if (b->remaining == 0) {
        free(b->ids);
        free(b->lens);
        free(b->blob);
        free(b);
        return rc;
    }
    rq->pending++;
    round_sent(rq);
    if (rc)
        b->failed = true; /* the commands sent still call back */
    return rc;
}

/* ---- trending refresh -------------------------------------------------------------------- */

static void wake_waiters(struct patron_reco_fetcher *f)
{
    struct request *w = f->waiters;
    f->waiters = NULL;
    while (w) {
        struct request *next = w->next_waiter;
        w->waiting_trend = false;
        reply_back(w);
        w = next;
    }
}

static void refresh_done(struct patron_reco_fetcher *f, bool ok)
{
    if (ok) {
        trending_index(&f->next);
        f->next.at_ms = patron_monotonic_ms();
        trending_free(&f->trend);
        f->trend = f->next;
        f->next = (struct trending){0};
        f->decayed_stale = true;
    } else {
        trending_free(&f->next);
        /* keep what we had; without any, the waiters go on with none */
    }
    f->refreshing = false;
    wake_waiters(f);
}

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

static void on_trend_category(void *ud, redisReply *reply)
{
    struct refresh *rf = ud;
    struct trending *t = &rf->f->next;
    if (!reply_array(reply, t->n))
        rf->failed = true;
    else
        for (size_t i = 0; i < t->n; i++)
            if (reply_id(reply->element[i])) {
                memcpy(t->v[i].category, reply->element[i]->str, (size_t)reply->element[i]->len);
                t->v[i].category[reply->element[i]->len] = '\0';
            }
    refresh_release(rf);
}

static void on_trend_oos(void *ud, redisReply *reply)
{
    struct refresh *rf = ud;
    struct trending *t = &rf->f->next;
    if (!reply_array(reply, t->n))
        rf->failed = true;
    else
        for (size_t i = 0; i < t->n; i++)
            t->v[i].oos =
                reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer == 1;
    refresh_release(rf);
}

static void on_trend(void *ud, redisReply *reply)
{
    struct patron_reco_fetcher *f = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
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
        if (!reply_id(m) || !parse_double(reply->element[2 * i + 1], &raw) || !(raw > 0))
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
    static const struct {
        const char *cmd, *key;
        patron_redis_cb cb;
    } plan[] = {
        {"HMGET", PATRON_KEY_ITEMS_CAT, on_trend_category},
        {"SMISMEMBER", PATRON_KEY_ITEMS_OOS, on_trend_oos},
    };
    for (size_t k = 0; k < PATRON_ARRAY_LEN(plan); k++) {
        argv[0] = plan[k].cmd;
        argl[0] = strlen(plan[k].cmd);
        argv[1] = plan[k].key;
        argl[1] = strlen(plan[k].key);
        if (patron_kv_commandv(f->redis, plan[k].cb, rf, (int)(t->n + 2), argv, argl) == 0)
            rf->remaining++;
        else
            rf->failed = true;
    }
    free(argv);
    free(argl);
    if (rf->remaining == 0) {
        free(rf);
        refresh_done(f, false);
    }
}

/* Starts a refresh when the snapshot is stale; true when the caller must
 * wait for it (there is none yet). */
static bool trending_check(struct patron_reco_fetcher *f, int64_t now)
{
    bool none = f->trend.at_ms == 0;
    if (!f->refreshing && !fresh(f->trend.at_ms, now, f->max_age_ms)) {
        char stop[16];
        int slen = snprintf(stop, sizeof(stop), "%d", PATRON_RECO_TRENDING_MAX - 1);
        const char *argv[] = {"ZREVRANGE", PATRON_KEY_ITEMS_TREND, "0", stop, "WITHSCORES"};
        size_t lens[] = {9, strlen(PATRON_KEY_ITEMS_TREND), 1, (size_t)slen, 10};
        if (patron_kv_commandv(f->redis, on_trend, f, 5, argv, lens) == 0)
            f->refreshing = true;
    }
    return none && f->refreshing;
}

/* ---- scoring ------------------------------------------------------------------------------ */

struct lookup_ctx {
    struct patron_reco_fetcher *f;
    double inv_weight_now; /* 1 / patron_trend_weight(now): decays stored trends */
};

static bool lookup(void *ud, const char *item, size_t len, uint64_t hash,
                   struct patron_reco_item *out)
{
    struct lookup_ctx *lc = ud;
    const struct entry *e = cache_get(&lc->f->cache, item, len, hash);
    const struct trend_item *t = trending_get(&lc->f->trend, item, len, hash);
    if (e && e->facts_ms) {
        *out = (struct patron_reco_item){e->buyers, e->category, e->oos, 0};
    } else if (t) {
        *out = (struct patron_reco_item){0, t->category, t->oos, 0};
    } else {
        return false;
    }
    if (t)
        out->trend = t->raw * lc->inv_weight_now;
    return true;
}

static void answer(struct request *rq, const struct patron_reco_result *res)
{
    struct patron_reco_fetcher *f = rq->f;
    if (f->m_rounds[0] && !rq->err && rq->rounds > 0)
        patron_counter_inc(f->m_rounds[(rq->rounds < 3 ? rq->rounds : 3) - 1]);
    struct patron_reco_answer a = {.err = rq->err, .known = rq->profile != NULL};
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
    free(rq->profile);
    free(rq->sim);
    free(rq->sim_ids);
    free(rq);
}

static const struct patron_reco_trending *decayed_trending(struct patron_reco_fetcher *f,
                                                           int64_t now_ms, double inv_weight_now)
{
    int64_t moved = now_ms - f->decayed_now_ms;
    if (f->decayed_stale || moved > 1000 || moved < -1000) {
        f->decayed =
            patron_realloc(f->decayed, (f->trend.n ? f->trend.n : 1) * sizeof(*f->decayed));
        for (size_t i = 0; i < f->trend.n; i++)
            f->decayed[i] =
                (struct patron_reco_trending){f->trend.v[i].id, f->trend.v[i].raw * inv_weight_now};
        f->n_decayed = f->trend.n;
        f->decayed_now_ms = now_ms;
        f->decayed_stale = false;
    }
    return f->decayed;
}

static void score(struct request *rq)
{
    struct patron_reco_fetcher *f = rq->f;
    if (f->m_cached)
        patron_gauge_set(f->m_cached, (double)f->cache.count);
    struct lookup_ctx lc = {f, 1.0 / patron_trend_weight(rq->now_ms)};
    struct patron_reco_result res;
    int rc;
    if (rq->kind == REQ_SIMILAR) {
        struct patron_reco_list l = {rq->sim, rq->n_sim};
        rc = patron_reco_similar(rq->id, &l, lookup, &lc, rq->limit, &res);
    } else {
        struct patron_reco_list lists[PATRON_RECO_SEEDS_MAX];
        for (size_t i = 0; i < rq->n_seeds; i++) {
            const char *id = rq->seeds[i].item;
            size_t len = strlen(id);
            const struct entry *e = cache_get(&f->cache, id, len, patron_hash64(id, len));
            lists[i] = e ? (struct patron_reco_list){e->nb, e->n_nb} : (struct patron_reco_list){0};
        }
        struct patron_reco_request req = {
            .profile = rq->profile,
            .seeds = rq->seeds,
            .n_seeds = rq->n_seeds,
            .lists = lists,
            .lookup = lookup,
            .lookup_ud = &lc,
            .trending = decayed_trending(f, rq->now_ms, lc.inv_weight_now),
            .n_trending = f->n_decayed,
            .category = rq->has_category ? rq->category : NULL,
            .limit = rq->limit,
        };
        rc = patron_reco_recommend(&req, &f->cfg, &res);
    }
    if (rc)
        request_fail(rq, rc);
    answer(rq, rc ? NULL : &res); /* copies the items out of the cache */
}

/* ---- refresh-ahead ------------------------------------------------------------------------ */

/*
 * A cached item whose facts or neighbour list are in the last quarter of
 * their max age when a request uses them is queued for a re-read that no
 * request waits for: a busy item is then re-read before it expires, and
 * the requests that use it keep answering from the cache instead of
 * waiting for a round trip to Redis every max_age_ms. What is served is
 * never older than max_age_ms, as before. The queue goes out as one batch
 * (one GET per neighbour list, three commands for all the facts) once it
 * holds REFRESH_SEND_AT items or its oldest waited REFRESH_WAIT_MS,
 * whichever comes first when a request passes; an item queued or in
 * flight is not queued again. Bounded: a full batch takes no more (the
 * item is then read on expiry, as without it).
 */
#define REFRESH_SEND_AT 32
#define REFRESH_WAIT_MS 50
#define REFRESH_FACTS_MAX 256
#define REFRESH_NB_MAX 64

struct ahead {
    int64_t since_ms; /* monotonic ms the first item was queued */
    size_t n_facts, n_nb;
    char facts[REFRESH_FACTS_MAX][PATRON_ID_MAX + 1];
    size_t facts_len[REFRESH_FACTS_MAX];
    char nb[REFRESH_NB_MAX][PATRON_ID_MAX + 1];
    size_t nb_len[REFRESH_NB_MAX];
};

/* In the last quarter of its max age: worth re-reading ahead of its expiry
 * (an item used more often than every max_age_ms / 4 then never expires;
 * earlier would re-read the busy ones more often for nothing). */
static bool ageing(int64_t at_ms, int64_t now_ms, int64_t max_age_ms)
{
    return now_ms - at_ms >= max_age_ms - max_age_ms / 4;
}

/* The batch being filled, made on first use. */
static struct ahead *refresh_batch(struct patron_reco_fetcher *f, int64_t now)
{
    if (!f->ahead) {
        struct request *rq = patron_calloc(1, sizeof(*rq));
        rq->f = f;
        rq->kind = REQ_REFRESH;
        rq->ahead = patron_malloc(sizeof(*rq->ahead));
        rq->ahead->since_ms = now;
        rq->ahead->n_facts = rq->ahead->n_nb = 0;
        f->ahead = rq;
    }
    return f->ahead->ahead;
}

static void refresh_queue_facts(struct patron_reco_fetcher *f, struct entry *e, int64_t now)
{
    struct ahead *r = refresh_batch(f, now);
    if (r->n_facts == REFRESH_FACTS_MAX)
        return;
    memcpy(r->facts[r->n_facts], e->id, e->len + 1);
    r->facts_len[r->n_facts++] = e->len;
    e->facts_queued = true;
}

static void refresh_queue_nb(struct patron_reco_fetcher *f, struct entry *e, int64_t now)
{
    struct ahead *r = refresh_batch(f, now);
    if (r->n_nb == REFRESH_NB_MAX)
        return;
    memcpy(r->nb[r->n_nb], e->id, e->len + 1);
    r->nb_len[r->n_nb++] = e->len;
    e->nb_queued = true;
}

/* Sends the batch when it is big or old enough; its replies update the
 * cache like a request's (on_neighbours, on_facts), then refresh_finish. */
static void refresh_maybe_send(struct patron_reco_fetcher *f, int64_t now)
{
    struct request *rq = f->ahead;
    if (!rq)
        return;
    struct ahead *r = rq->ahead;
    if (r->n_facts + r->n_nb < REFRESH_SEND_AT && now - r->since_ms < REFRESH_WAIT_MS)
        return;
    f->ahead = NULL;
    rq->pending++; /* held while sending */
    for (size_t i = 0; i < r->n_nb; i++)
        if (send_neighbours(rq, r->nb[i], r->nb_len[i]))
            request_fail(rq, PATRON_EIO);
    const char *ids[REFRESH_FACTS_MAX];
    for (size_t i = 0; i < r->n_facts; i++)
        ids[i] = r->facts[i];
    if (send_facts(rq, ids, r->facts_len, r->n_facts))
        request_fail(rq, PATRON_EIO);
    reply_back(rq);
}

/* Every reply is back (or failed: the items are then read on expiry). */
static void refresh_finish(struct request *rq)
{
    struct cache *c = &rq->f->cache;
    struct ahead *r = rq->ahead;
    for (size_t i = 0; i < r->n_facts; i++) {
        struct entry *e =
            cache_get(c, r->facts[i], r->facts_len[i], patron_hash64(r->facts[i], r->facts_len[i]));
        if (e)
            e->facts_queued = false;
    }
    for (size_t i = 0; i < r->n_nb; i++) {
        struct entry *e =
            cache_get(c, r->nb[i], r->nb_len[i], patron_hash64(r->nb[i], r->nb_len[i]));
        if (e)
            e->nb_queued = false;
    }
    free(r);
    free(rq);
}

/* ---- phases ------------------------------------------------------------------------------- */

/* Asks for an item's facts (h its hash) in this request's round unless they
 * are younger than max_age or already asked for. Returns its entry, pinned
 * for the phase. */
static struct entry *want_facts_h(struct request *rq, const char *id, size_t len, uint64_t h,
                                  int64_t now, int64_t max_age, const char **ids, size_t *lens,
                                  size_t *n)
{
    struct patron_reco_fetcher *f = rq->f;
    struct entry *e = cache_put(&f->cache, id, len, h);
    e->referenced = true;
    if (e->mark == rq->seq)
        return e;
    e->mark = rq->seq; /* pinned for the phase: ids[] points into it */
    bool hit = fresh(e->facts_ms, now, max_age);
    count_read(f, hit);
    if (hit) {
        if (!e->facts_queued && ageing(e->facts_ms, now, max_age))
            refresh_queue_facts(f, e, now);
        return e;
    }
    ids[*n] = e->id;
    lens[*n] = len;
    (*n)++;
    return e;
}

static struct entry *want_facts(struct request *rq, const char *id, size_t len, int64_t now,
                                int64_t max_age, const char **ids, size_t *lens, size_t *n)
{
    return want_facts_h(rq, id, len, patron_hash64(id, len), now, max_age, ids, lens, n);
}

/* A phase's entries are pinned by its own sequence number (see cache). */
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
        struct entry *e = want_facts(rq, id, len, now, f->list_max_age_ms, ids, lens, &n);
        bool hit = fresh(e->nb_ms, now, f->list_max_age_ms);
        count_read(f, hit);
        if (hit) {
            if (!e->nb_queued && ageing(e->nb_ms, now, f->list_max_age_ms))
                refresh_queue_nb(f, e, now);
            continue;
        }
        if (send_neighbours(rq, id, len))
            request_fail(rq, PATRON_EIO);
    }
    if (send_facts(rq, ids, lens, n))
        request_fail(rq, PATRON_EIO);
    if (trending_check(f, now)) {
        rq->waiting_trend = true;
        rq->next_waiter = f->waiters;
        f->waiters = rq;
        rq->pending++;
    }
    refresh_maybe_send(f, now);
    reply_back(rq);
}

/* A candidate of round 2, hashed before its cache probe. */
struct probe {
    const char *id;
    size_t len;
    uint64_t hash;
};

enum {
    CANDIDATES_MAX = PATRON_RECO_SEEDS_MAX * PATRON_RECO_NEIGHBOURS_MAX > PATRON_RECO_SIMILAR_MAX
                         ? PATRON_RECO_SEEDS_MAX *PATRON_RECO_NEIGHBOURS_MAX
                         : PATRON_RECO_SIMILAR_MAX
};

/* Round 2: the facts of the candidates found in the neighbour lists. The
 * cache is far bigger than the CPU's caches, so each probe would miss them
 * twice in a row (slot, then entry): all the probes are hashed and their
 * slots then entries prefetched first, so that the misses overlap. */
static void start_candidates(struct request *rq)
{
    struct patron_reco_fetcher *f = rq->f;
    struct cache *c = &f->cache;
    int64_t now = patron_monotonic_ms();
    rq->phase = PHASE_CANDIDATES;
    rq->pending++;
    phase_begin(rq);
    struct probe probes[CANDIDATES_MAX];
    size_t n_probes = 0;
    if (rq->kind == REQ_SIMILAR) {
        for (size_t j = 0; j < rq->n_sim && n_probes < CANDIDATES_MAX; j++)
            probes[n_probes++] = (struct probe){rq->sim[j].item, strlen(rq->sim[j].item), 0};
    } else {
        /* pinned first: their lists are read while entries are added */
        const struct entry *seed_e[PATRON_RECO_SEEDS_MAX];
        for (size_t i = 0; i < rq->n_seeds; i++) {
            const char *id = rq->seeds[i].item;
            size_t len = strlen(id);
            struct entry *e = cache_get(c, id, len, patron_hash64(id, len));
            if (e)
                e->mark = rq->seq;
            seed_e[i] = e;
        }
        for (size_t i = 0; i < rq->n_seeds; i++)
            for (size_t j = 0; seed_e[i] && j < seed_e[i]->n_nb && n_probes < CANDIDATES_MAX; j++) {
                const char *id = seed_e[i]->nb[j].item;
                probes[n_probes++] = (struct probe){id, strlen(id), 0};
            }
    }
    for (size_t k = 0; k < n_probes; k++) {
        probes[k].hash = patron_hash64(probes[k].id, probes[k].len);
        __builtin_prefetch(&c->slots[home_slot(probes[k].hash, c->shift)]);
    }
    for (size_t k = 0; k < n_probes; k++) {
        const struct entry *e = c->slots[home_slot(probes[k].hash, c->shift)].e;
        if (e)
            __builtin_prefetch(e);
    }
    const char *ids[CANDIDATES_MAX];
    size_t lens[CANDIDATES_MAX], n = 0;
    for (size_t k = 0; k < n_probes; k++)
        (void)want_facts_h(rq, probes[k].id, probes[k].len, probes[k].hash, now, f->max_age_ms, ids,
                           lens, &n);
    if (send_facts(rq, ids, lens, n))
        request_fail(rq, PATRON_EIO);
    refresh_maybe_send(f, now);
    reply_back(rq);
}

static void phase_done(struct request *rq)
{
    if (rq->kind == REQ_REFRESH) {
        refresh_finish(rq);
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

static void on_profile(void *ud, redisReply *reply)
{
    struct request *rq = ud;
    struct patron_reco_fetcher *f = rq->f;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        request_fail(rq, PATRON_EIO);
    } else if (reply->type == REDIS_REPLY_STRING) {
        size_t len = (size_t)reply->len;
        struct patron_profile *p = patron_malloc(sizeof(*p));
        if (patron_profile_stored_decode(p, reply->str, len, NULL)) {
            patron_log(f->log, PATRON_LOG_ERROR, "stored profile does not decode", "\"bytes\":%zu",
                       len);
            request_fail(rq, PATRON_EINVAL);
            free(p);
        } else if (p->erased) {
            free(p); /* a tombstone: an unknown customer */
        } else {
            rq->profile = p;
            rq->n_seeds = patron_reco_seeds(p, &f->cfg, rq->seeds, PATRON_RECO_SEEDS_MAX);
        }
    }
    reply_back(rq);
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
    struct request *rq = patron_calloc(1, sizeof(*rq));
    rq->f = f;
    rq->kind = kind;
    memcpy(rq->id, id, id_len);
    rq->id_len = id_len;
    rq->limit = limit;
    rq->cb = cb;
    rq->ud = ud;
    return rq;
}

int patron_reco_fetch_customer(struct patron_reco_fetcher *f, const char *customer_id,
                               size_t id_len, const char *category, size_t limit, int64_t now_ms,
                               patron_reco_done_fn cb, void *ud)
{
    if (!f || !cb || !customer_id || !text_ok(customer_id, id_len) || limit < 1 ||
        limit > PATRON_RECO_LIMIT_MAX || (category && !text_ok(category, strlen(category))))
        return PATRON_EINVAL;
    char key[PATRON_KEY_MAX];
    int klen = patron_key_customer(key, sizeof(key), customer_id, id_len);
    if (klen < 0)
        return PATRON_EINVAL;
    struct request *rq = request_new(f, REQ_CUSTOMER, customer_id, id_len, limit, cb, ud);
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
        free(rq);
        return PATRON_EIO;
    }
    rq->pending = 1;
    round_sent(rq);
    return 0;
}

/* The similar list goes to the request too: it is longer than what the cache
 * keeps per item. */
static void on_similar_list(void *ud, redisReply *reply)
{
    struct request *rq = ud;
    rq->sim = patron_malloc(PATRON_RECO_SIMILAR_MAX * sizeof(*rq->sim));
    ssize_t n =
        reply ? parse_neighbours(reply, PATRON_RECO_SIMILAR_MAX, rq->sim, &rq->sim_ids) : -1;
    if (n < 0)
        request_fail(rq, PATRON_EIO);
    else
        rq->n_sim = (size_t)n;
    reply_back(rq);
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
        free(rq);
        return PATRON_EIO;
    }
    rq->pending = 1;
    round_sent(rq);
    /* the item's own facts, in the same round */
    phase_begin(rq);
    int64_t now = patron_monotonic_ms();
    const char *ids[1];
    size_t idl[1], n = 0;
    want_facts(rq, rq->id, rq->id_len, now, f->max_age_ms, ids, idl, &n);
    rq->pending++;
    if (send_facts(rq, ids, idl, n))
        request_fail(rq, PATRON_EIO);
    reply_back(rq);
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
    if (opt->config)
        f->cfg = *opt->config;
    else
        patron_reco_config_default(&f->cfg);
    cache_init(&f->cache, opt->cache_items ? opt->cache_items : PATRON_RECO_CACHE_ITEMS);
    if (opt->metrics) {
        const char *name = "patron_reco_item_reads_total",
                   *help = "Item facts and neighbour lists a recommendation needed, by where from";
        f->m_hits = patron_metrics_counter(opt->metrics, name, help, "source=\"cache\"");
        f->m_misses = patron_metrics_counter(opt->metrics, name, help, "source=\"redis\"");
        f->m_cached = patron_metrics_gauge(opt->metrics, "patron_reco_cache_items",
                                           "Items in the recommendation cache", NULL);
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
    if (f->ahead) { /* never sent: no reply will come */
        free(f->ahead->ahead);
        free(f->ahead);
    }
    cache_free(&f->cache);
    trending_free(&f->trend);
    trending_free(&f->next);
    free(f->decayed);
    free(f);
}
