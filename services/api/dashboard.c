/*
 * Marketing's dashboard (see dashboard.h).
 *
 * The customer snapshot is a small state machine driven by one timer and the
 * Redis callbacks: idle -> scanning (one SCAN page in flight, then the GETs of
 * its keys, pipelined) -> the next page ... -> the next shard (each master of
 * a Redis Cluster holds its own keys, so SCAN runs on each in turn) ... ->
 * published -> idle until the timer fires again. `outstanding` counts the replies still due, plus
 * one while commands are being issued, so that a page is complete exactly when it reaches zero.
 *
 * @locality: the loop thread; every callback runs on the loop.
 */
#include "dashboard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "campaign_stats.h"
#include "history.h"
#include "model.h"
#include "patron/catalog.h"
#include "patron/num.h"
#include "patron/clock.h"
#include "patron/event_check.h"
#include "patron/keys.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/profile.h"
#include "patron/kv.h"
#include "patron/rfm.h"
#include "patron/strmap.h"
#include "patron/profile_codec.h"

/* After a failed snapshot, or while Redis is down. */
#define RETRY_MS 250
/* With the event clock, a snapshot waits this many retries for the first
 * clock reading (now = 0 would put every customer's last purchase "today"). */
#define CLOCK_WAITS_MAX 8
#define CURSOR_MAX 24 /* SCAN cursors are unsigned 64-bit decimals */

static const char *const static_headers = "Cache-Control: no-cache\r\n"
                                          "X-Content-Type-Options: nosniff\r\n"
                                          "Content-Security-Policy: default-src 'self'\r\n";

struct snapshot {
    uint64_t customers;
    uint64_t segments[PATRON_SEGMENT_COUNT];
    uint64_t tiers[PATRON_TIER_COUNT];
    int64_t as_of_ms;
    bool truncated;
    struct patron_clusters fit;             /* in force when it started; k 0: none */
    uint64_t clusters[PATRON_CLUSTERS_MAX]; /* customers by cluster of `fit` */
};

/* Hashes of the keys read in this snapshot: SCAN may return a key twice. An
 * open-addressing set of FNV-1a 64 hashes (0 marks a free slot), at most
 * API_DASHBOARD_PROFILES_MAX entries at half load: 16 MiB at worst. */
struct key_set {
    uint64_t *slots;
    size_t cap, count;
};

struct waiter {
    struct api *api;
    struct patron_http_response *res;
};

struct api_dashboard {
    uv_loop_t *loop;
    struct patron_kv *redis;
    const struct patron_clock *clock;
    const struct patron_profile_config *profile;
    const struct patron_log *log;
    int refresh_ms;
    struct api_dashboard_observer observer; /* all NULL: none */
    const struct api_model *model;          /* NULL: no clusters */
    struct api_history *history;
    uv_timer_t timer;
    bool closing;

    bool have_snapshot;
    struct snapshot last;

    /* the snapshot being taken */
    bool scanning, failed, scan_done;
    size_t outstanding;
    uint64_t fetched; /* GETs issued */
    int clock_waits;
    int64_t started_ms; /* monotonic */
    uint64_t page_ns;   /* uv_hrtime when the page in flight was asked for */
    char cursor[CURSOR_MAX];
    unsigned shards[PATRON_KV_SHARDS_MAX]; /* patron_kv_shards at the start */
    size_t n_shards, shard;                /* shard: the one being scanned */
    struct snapshot building;
    struct key_set seen;
    struct patron_profile *scratch; /* decode buffer: a profile is ~16 KiB */

    struct waiter waiters[API_DASHBOARD_WAITERS_MAX];
    size_t n_waiters;

    struct patron_counter *m_skip_decode, *m_skip_type, *m_skip_reco, *m_snapshots;
    struct patron_gauge *m_customers, *m_duration;
};

/* ---- static files ---------------------------------------------------------- */

static const struct {
    const char *ext, *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

const char *api_dashboard_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(content_types); i++)
        if (strcmp(dot, content_types[i].ext) == 0)
            return content_types[i].type;
    return NULL;
}

static void serve_file(struct api *api, const char *name, struct patron_http_response *res)
{
    const char *type = api_dashboard_content_type(name);
    for (size_t i = 0; type && i < api_dashboard_assets_len; i++) {
        const struct api_dashboard_asset *a = &api_dashboard_assets[i];
        if (strcmp(a->name, name) == 0) {
            api_respond(api, res, 200, type, static_headers, (const char *)a->data, a->len);
            return;
        }
    }
    api_respond_error(api, res, 404, "not_found", "no such file");
}

/* ---- the customer snapshot ------------------------------------------------- */

static bool key_set_add(struct key_set *s, const char *key, size_t len)
{
    uint64_t h = patron_hash64(key, len);
    h = h ? h : 1;
    if (2 * (s->count + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 1024;
        uint64_t *n = patron_calloc(ncap, sizeof(*n));
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t j = s->slots[i] & (ncap - 1);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = n;
        s->cap = ncap;
    }
    size_t j = h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h)
            return false;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->count++;
    return true;
}

static void key_set_free(struct key_set *s)
{
    free(s->slots);
    *s = (struct key_set){0};
}

/* A profile key is exactly {c:<id>}; the customer's other keys are
 * {c:<id>}:<suffix>, and no suffix ends with '}'. */
static bool profile_key(const char *k, size_t len)
{
    return len > 4 && len <= 3 + PATRON_ID_MAX + 1 && memcmp(k, "{c:", 3) == 0 && k[len - 1] == '}';
}

static void schedule(struct api_dashboard *d, uint64_t ms);
static void scan_page(struct api_dashboard *d);

static void answer_customers(struct api_dashboard *d, struct api *api,
                             struct patron_http_response *res)
{
    const struct snapshot *s = &d->last;
    json_t *segments = json_object(), *tiers = json_object();
    for (int i = 0; i < PATRON_SEGMENT_COUNT; i++)
        json_object_set_new(segments, patron_segment_name((enum patron_segment)i),
                            json_integer((json_int_t)s->segments[i]));
    for (int i = 0; i < PATRON_TIER_COUNT; i++)
        json_object_set_new(tiers, patron_tier_name((enum patron_tier)i),
                            json_integer((json_int_t)s->tiers[i]));
    json_t *body = json_object();
    json_object_set_new(body, "customers", json_integer((json_int_t)s->customers));
    json_object_set_new(body, "segments", segments);
    json_object_set_new(body, "tiers", tiers);
    json_object_set_new(body, "as_of_ms", json_integer(s->as_of_ms));
    json_object_set_new(body, "truncated", json_boolean(s->truncated));
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (text)
        api_respond_json_text(api, res, 200, text);
    else
        api_respond_error(api, res, 500, "internal", "response did not render");
    free(text);
}

/* The customer's cluster at the snapshot's now, under the snapshot's fit. */
static void count_cluster(struct snapshot *s, const struct patron_profile *p)
{
    struct patron_cluster_features f;
    if (s->fit.k < 1 || !patron_cluster_features_of(p, s->as_of_ms, &f))
        return;
    int id = patron_cluster_of(&f, &s->fit);
    if (id >= 0 && id < PATRON_CLUSTERS_MAX)
        s->clusters[id]++;
}

/* A complete snapshot into the history (history.h). */
static void record_history(struct api_dashboard *d)
{
    const struct snapshot *s = &d->last;
    if (s->as_of_ms <= 0)
        return; /* the event clock never read: no day to file it under */
    struct patron_history_day day = {.as_of_ms = s->as_of_ms, .customers = s->customers};
    memcpy(day.segments, s->segments, sizeof(day.segments));
    memcpy(day.tiers, s->tiers, sizeof(day.tiers));
    for (int i = 0; i < s->fit.k && i < PATRON_CLUSTERS_MAX; i++) {
        struct patron_history_cluster *c = &day.clusters[day.n_clusters++];
        c->id = i;
        memcpy(c->label, s->fit.c[i].label, sizeof(c->label));
        c->size = s->clusters[i];
    }
    api_history_record(d->history, &day);
}

static void publish(struct api_dashboard *d)
{
    d->last = d->building;
    d->have_snapshot = true;
    patron_counter_inc(d->m_snapshots);
    patron_gauge_set(d->m_customers, (double)d->last.customers);
    patron_gauge_set(d->m_duration, (double)(patron_monotonic_ms() - d->started_ms) / 1000.0);
    for (size_t i = 0; i < d->n_waiters; i++)
        answer_customers(d, d->waiters[i].api, d->waiters[i].res);
    d->n_waiters = 0;
}

static void snapshot_end(struct api_dashboard *d)
{
    d->scanning = false;
    key_set_free(&d->seen);
    if (d->observer.end)
        d->observer.end(d->observer.ud, !d->failed && !d->closing);
    if (d->closing)
        return;
    if (d->failed) {
        patron_log(d->log, PATRON_LOG_WARN, "dashboard snapshot failed, retrying", NULL);
        schedule(d, RETRY_MS);
        return;
    }
    publish(d);
    record_history(d);
    schedule(d, (uint64_t)d->refresh_ms);
}

static void on_page_timer(uv_timer_t *t)
{
    struct api_dashboard *d = t->data;
    if (d->closing) {
        snapshot_end(d);
        return;
    }
    scan_page(d);
}

/* The next page: at once for the first snapshot, else after a pause that
 * keeps the snapshot to API_DASHBOARD_DUTY_PCT of the time. */
static void next_page(struct api_dashboard *d)
{
    if (!d->have_snapshot) {
        scan_page(d);
        return;
    }
    uint64_t busy_ns = uv_hrtime() - d->page_ns;
    uint64_t pause_ms = (busy_ns * (100 / API_DASHBOARD_DUTY_PCT - 1) + 999999) / 1000000;
    uv_timer_start(&d->timer, on_page_timer, pause_ms, 0);
}

static void settle(struct api_dashboard *d)
{
    if (--d->outstanding)
        return;
    if (d->failed || d->closing || d->scan_done)
        snapshot_end(d);
    else
        next_page(d);
}

static void count_profile(struct api_dashboard *d, const redisReply *v)
{
    size_t len = (size_t)v->len;
    struct patron_profile *p = d->scratch;
    if (patron_profile_stored_decode(p, v->str, len, NULL) != 0) {
        patron_counter_inc(d->m_skip_decode);
        return;
    }
    if (p->erased)
        return;
    if (d->observer.profile)
        d->observer.profile(d->observer.ud, p);
    struct patron_rfm rfm = patron_rfm_score(p, d->building.as_of_ms, d->profile);
    enum patron_segment seg = patron_segment_of(&rfm, p->orders);
    enum patron_tier tier = patron_tier_of(p, d->profile);
    if ((unsigned)seg >= PATRON_SEGMENT_COUNT || (unsigned)tier >= PATRON_TIER_COUNT) {
        patron_counter_inc(d->m_skip_decode);
        return;
    }
    d->building.customers++;
    d->building.segments[seg]++;
    d->building.tiers[tier]++;
    count_cluster(&d->building, p);
}

static void on_profile(void *ud, redisReply *reply)
{
    struct api_dashboard *d = ud;
    if (!reply)
        d->failed = true;
    else if (reply->type == REDIS_REPLY_STRING && !d->failed)
        count_profile(d, reply);
    else if (reply->type != REDIS_REPLY_NIL && !d->failed) /* nil: erased since the SCAN */
        patron_counter_inc(d->m_skip_type);
    settle(d);
}

static bool cursor_valid(const redisReply *c)
{
    if (c->type != REDIS_REPLY_STRING || c->len == 0 || (size_t)c->len >= CURSOR_MAX)
        return false;
    for (size_t i = 0; i < (size_t)c->len; i++)
        if (c->str[i] < '0' || c->str[i] > '9')
            return false;
    return true;
}

static void on_scan(void *ud, redisReply *reply)
{
    struct api_dashboard *d = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        !cursor_valid(reply->element[0]) || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        d->failed = true;
        settle(d);
        return;
    }
    const redisReply *c = reply->element[0], *keys = reply->element[1];
    memcpy(d->cursor, c->str, (size_t)c->len);
    d->cursor[c->len] = '\0';
    /* The next shard starts at cursor 0 too. */
    if (strcmp(d->cursor, "0") == 0 && ++d->shard == d->n_shards)
        d->scan_done = true;
    for (size_t i = 0; i < keys->elements && !d->failed && !d->closing; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || !profile_key(k->str, (size_t)k->len))
            continue;
        if (!key_set_add(&d->seen, k->str, (size_t)k->len))
            continue;
        if (d->fetched == API_DASHBOARD_PROFILES_MAX) {
            d->building.truncated = true;
            d->scan_done = true;
            break;
        }
        d->fetched++;
        const char *argv[] = {"GET", k->str};
        size_t lens[] = {3, (size_t)k->len};
        d->outstanding++;
        if (patron_kv_commandv(d->redis, on_profile, d, 2, argv, lens)) {
            d->outstanding--;
            d->failed = true;
        }
    }
    settle(d); /* the SCAN reply's own share */
}

static void scan_page(struct api_dashboard *d)
{
    const char *argv[] = {"SCAN", d->cursor, "MATCH", "{c:*}", "COUNT", API_DASHBOARD_SCAN_COUNT};
    d->outstanding = 1;
    d->page_ns = uv_hrtime();
    if (patron_kv_shard_commandv(d->redis, d->shards[d->shard], on_scan, d, 6, argv, NULL)) {
        d->failed = true;
        d->outstanding = 0;
        snapshot_end(d);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct api_dashboard *d = t->data;
    if (d->closing || d->scanning)
        return;
    if (!patron_kv_connected(d->redis)) {
        schedule(d, RETRY_MS);
        return;
    }
    int64_t now = patron_clock_now_ms(d->clock);
    if (d->clock->kind == PATRON_CLOCK_EVENT && now == 0 && d->clock_waits < CLOCK_WAITS_MAX) {
        d->clock_waits++;
        schedule(d, RETRY_MS);
        return;
    }
    /* A map that changes during the scan (a failover) keeps the shards'
     * names: a promoted replica owns its master's lowest slot. */
    d->n_shards = patron_kv_shards(d->redis, d->shards, PATRON_KV_SHARDS_MAX);
    if (d->n_shards == 0 || d->n_shards > PATRON_KV_SHARDS_MAX) {
        schedule(d, RETRY_MS);
        return;
    }
    d->shard = 0;
    d->building = (struct snapshot){.as_of_ms = now};
    const struct patron_clusters *fit = d->model ? api_model_clusters(d->model) : NULL;
    if (fit)
        d->building.fit = *fit;
    d->scanning = true;
    d->failed = d->scan_done = false;
    d->fetched = 0;
    d->started_ms = patron_monotonic_ms();
    snprintf(d->cursor, sizeof(d->cursor), "0");
    if (d->observer.begin)
        d->observer.begin(d->observer.ud, now);
    scan_page(d);
}

static void schedule(struct api_dashboard *d, uint64_t ms)
{
    if (!d->closing)
        uv_timer_start(&d->timer, on_tick, ms, 0);
}

static void get_customers(struct api_dashboard *d, struct api *api,
                          struct patron_http_response *res)
{
    if (d->have_snapshot) {
        answer_customers(d, api, res);
        return;
    }
    if (d->n_waiters == API_DASHBOARD_WAITERS_MAX) {
        api_respond_error(api, res, 503, "unavailable", "the first snapshot is not ready");
        return;
    }
    d->waiters[d->n_waiters++] = (struct waiter){api, patron_http_defer(res)};
}

/* ---- the most recommended items -------------------------------------------- */

struct reco_item {
    char id[PATRON_ID_MAX + 1];
    double count;
    char *title; /* NULL: unknown */
    bool has_price;
    int64_t price_cents;
};

/* A request: SMEMBERS, a ZREVRANGE per partition, then an HMGET per top item. */
struct reco_req {
    struct api_dashboard *d;
    struct api *api;
    struct patron_http_response *res;
    size_t limit;
    size_t outstanding;
    bool failed;
    struct patron_strmap items; /* id -> struct reco_item (owned) */
    struct reco_item **top;     /* the answer, once merged */
    size_t n_top;
};

static void reco_free(struct reco_req *rq)
{
    for (size_t i = 0; i < rq->items.cap; i++) {
        struct reco_item *it = rq->items.slots[i].value;
        if (rq->items.slots[i].key) {
            free(it->title);
            free(it);
        }
    }
    patron_strmap_free(&rq->items);
    free(rq->top);
    free(rq);
}

/* A score: a finite non-negative number (ZINCRBY keeps doubles). */
static bool score_parse(const redisReply *v, double *out)
{
    if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len > 64)
        return false;
    char buf[65];
    memcpy(buf, v->str, (size_t)v->len);
    buf[v->len] = '\0';
    errno = 0;
    char *end;
    double x = strtod(buf, &end);
    if (*end != '\0' || errno || !isfinite(x) || x < 0)
        return false;
    *out = x;
    return true;
}

static void merge_reco(struct reco_req *rq, const redisReply *reply)
{
    struct api_dashboard *d = rq->d;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i];
        double score;
        if (k->type != REDIS_REPLY_STRING || k->len == 0 || k->len > PATRON_ID_MAX ||
            !patron_event_text_valid(k->str, (size_t)k->len) ||
            !score_parse(reply->element[i + 1], &score)) {
            patron_counter_inc(d->m_skip_reco);
            continue;
        }
        struct reco_item *it = patron_strmap_get(&rq->items, k->str, (size_t)k->len);
        if (!it) {
            if (rq->items.count == API_DASHBOARD_RECO_ITEMS_MAX) {
                patron_counter_inc(d->m_skip_reco);
                continue;
            }
            it = patron_calloc(1, sizeof(*it));
            memcpy(it->id, k->str, (size_t)k->len);
            (void)patron_strmap_put(&rq->items, it->id, (size_t)k->len, it);
        }
        it->count += score;
    }
}

static int reco_cmp(const void *a, const void *b)
{
    const struct reco_item *x = *(const struct reco_item *const *)a;
    const struct reco_item *y = *(const struct reco_item *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void reco_answer(struct reco_req *rq)
{
    if (rq->failed) {
        api_respond_error(rq->api, rq->res, 503, "unavailable", "redis unavailable");
        reco_free(rq);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < rq->n_top; i++) {
        const struct reco_item *it = rq->top[i];
        json_t *o = json_object();
        json_object_set_new(o, "item_id", json_string(it->id));
        json_object_set_new(o, "count", json_integer((json_int_t)llround(it->count)));
        json_object_set_new(o, "title", it->title ? json_string(it->title) : json_null());
        json_object_set_new(o, "price_cents",
                            it->has_price ? json_integer(it->price_cents) : json_null());
        json_array_append_new(items, o);
    }
    json_t *body = json_object();
    json_object_set_new(body, "items", items);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (text)
        api_respond_json_text(rq->api, rq->res, 200, text);
    else
        api_respond_error(rq->api, rq->res, 500, "internal", "response did not render");
    free(text);
    reco_free(rq);
}

struct catalog_ctx {
    struct reco_req *rq;
    struct reco_item *it;
};

static void reco_settle(struct reco_req *rq);

static void on_catalog(void *ud, redisReply *reply)
{
    struct catalog_ctx *cc = ud;
    struct reco_req *rq = cc->rq;
    struct reco_item *it = cc->it;
    free(cc);
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const redisReply *title = reply->element[0];
        if (title->type == REDIS_REPLY_STRING && title->len <= PATRON_TITLE_MAX &&
            patron_event_text_valid(title->str, (size_t)title->len))
            it->title = patron_strndup(title->str, (size_t)title->len);
        it->has_price = reply->element[1]->type == REDIS_REPLY_STRING &&
                        patron_reply_i64(reply->element[1], 0, INT64_MAX, &it->price_cents) == 0;
    }
    reco_settle(rq);
}

/* Every partition merged: the top items, then their titles and prices. */
static void reco_top(struct reco_req *rq)
{
    size_t n = 0;
    struct reco_item **all = patron_malloc((rq->items.count ? rq->items.count : 1) * sizeof(*all));
    for (size_t i = 0; i < rq->items.cap; i++)
        if (rq->items.slots[i].key)
            all[n++] = rq->items.slots[i].value;
    qsort(all, n, sizeof(*all), reco_cmp);
    rq->top = all;
    rq->n_top = n < rq->limit ? n : rq->limit;
    rq->outstanding = 1;
    for (size_t i = 0; i < rq->n_top && !rq->failed; i++) {
        char key[PATRON_KEY_MAX];
        int klen = patron_key_item(key, sizeof(key), all[i]->id, strlen(all[i]->id));
        if (klen < 0)
            continue;
        struct catalog_ctx *cc = patron_malloc(sizeof(*cc));
        *cc = (struct catalog_ctx){rq, all[i]};
        const char *argv[] = {"HMGET", key, "title", "price_cents"};
        size_t lens[] = {5, (size_t)klen, 5, 11};
        rq->outstanding++;
        if (patron_kv_commandv(rq->d->redis, on_catalog, cc, 4, argv, lens)) {
            free(cc);
            rq->outstanding--;
            rq->failed = true;
        }
    }
    if (--rq->outstanding == 0)
        reco_answer(rq);
}

static void reco_settle(struct reco_req *rq)
{
    if (--rq->outstanding)
        return;
    if (rq->failed || rq->top)
        reco_answer(rq);
    else
        reco_top(rq);
}

static void on_reco(void *ud, redisReply *reply)
{
    struct reco_req *rq = ud;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply)))
        rq->failed = true;
    else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2)
        patron_counter_inc(rq->d->m_skip_reco);
    else if (!rq->failed)
        merge_reco(rq, reply);
    reco_settle(rq);
}

static void on_reco_partitions(void *ud, redisReply *reply)
{
    struct reco_req *rq = ud;
    struct api_dashboard *d = rq->d;
    if (!reply || (reply->type == REDIS_REPLY_ERROR && !patron_reply_wrong_type(reply))) {
        rq->failed = true;
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        size_t taken = 0;
        char stop[8];
        snprintf(stop, sizeof(stop), "%d", API_DASHBOARD_RECO_PER_PARTITION - 1);
        for (size_t i = 0; i < reply->elements && !rq->failed; i++) {
            const redisReply *e = reply->element[i];
            int p =
                e->type == REDIS_REPLY_STRING ? api_partition_parse(e->str, (size_t)e->len) : -1;
            if (p < 0 || taken == API_PARTITIONS_MAX) {
                patron_counter_inc(d->m_skip_reco);
                continue;
            }
            taken++;
            char key[32];
            if (patron_key_trigger(key, sizeof(key), p, "reco") < 0)
                continue;
            const char *argv[] = {"ZREVRANGE", key, "0", stop, "WITHSCORES"};
            rq->outstanding++;
            if (patron_kv_commandv(d->redis, on_reco, rq, 5, argv, NULL)) {
                rq->outstanding--;
                rq->failed = true;
            }
        }
    } else {
        patron_counter_inc(d->m_skip_reco);
    }
    reco_settle(rq);
}

static void get_recommended(struct api_dashboard *d, struct api *api,
                            const struct patron_http_request *req, struct patron_http_response *res)
{
    size_t limit = API_DASHBOARD_LIMIT_DEFAULT;
    char buf[8];
    int n = patron_http_query_param(req->query, "limit", buf, sizeof(buf));
    if (n != PATRON_ENOTFOUND) {
        int64_t v;
        if (n <= 0 || patron_parse_i64(buf, (size_t)n, 1, API_DASHBOARD_LIMIT_MAX, &v)) {
            api_respond_error(api, res, 400, "bad_request",
                              "limit must be an integer from 1 to 100");
            return;
        }
        limit = (size_t)v;
    }
    struct reco_req *rq = patron_calloc(1, sizeof(*rq));
    rq->d = d;
    rq->api = api;
    rq->limit = limit;
    rq->outstanding = 1;
    patron_strmap_init(&rq->items);
    const char *argv[] = {"SMEMBERS", PATRON_KEY_TRIGGER_PARTITIONS};
    if (patron_kv_commandv(d->redis, on_reco_partitions, rq, 2, argv, NULL)) {
        reco_free(rq);
        api_respond_error(api, res, 503, "unavailable", "redis unavailable");
        return;
    }
    rq->res = patron_http_defer(res);
}

/* ---- routing and lifecycle ------------------------------------------------- */

bool api_dashboard_route(struct api_dashboard *d, struct api *api,
                         const struct patron_http_request *req, struct patron_http_response *res)
{
    static const char files[] = "/dashboard/";
    const char *path = req->path;
    bool is_get = strcmp(req->method, "GET") == 0;
    bool is_head = strcmp(req->method, "HEAD") == 0; /* files only, as a browser may ask */
    const char *file = NULL;
    if (strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0 || strcmp(path, files) == 0)
        file = "index.html";
    else if (strncmp(path, files, sizeof(files) - 1) == 0)
        file = path + sizeof(files) - 1;
    bool customers = strcmp(path, "/v1/dashboard/customers") == 0;
    bool recommended = strcmp(path, "/v1/dashboard/recommended") == 0;
    bool history = strcmp(path, "/v1/dashboard/history") == 0;
    if (!file && !customers && !recommended && !history)
        return false;
    if (!is_get && !(is_head && file))
        api_respond_error(api, res, 405, "method_not_allowed", "use GET");
    else if (file)
        serve_file(api, file, res);
    else if (customers)
        get_customers(d, api, res);
    else if (history)
        api_history_get(d->history, api, patron_clock_now_ms(d->clock), req, res);
    else
        get_recommended(d, api, req, res);
    return true;
}

struct api_dashboard *api_dashboard_start(const struct api_dashboard_options *opt)
{
    struct api_dashboard *d = patron_calloc(1, sizeof(*d));
    d->loop = opt->loop;
    d->redis = opt->redis;
    d->clock = opt->clock;
    d->profile = opt->profile;
    d->log = opt->log;
    d->refresh_ms = opt->refresh_ms > 0 ? opt->refresh_ms : 30000;
    if (opt->observer)
        d->observer = *opt->observer;
    d->model = opt->model;
    d->history = api_history_new(opt->redis, opt->metrics, opt->log, d->refresh_ms);
    d->scratch = patron_malloc(sizeof(*d->scratch));
    const char *name = "patron_api_dashboard_skipped_total",
               *help = "Redis values the dashboard skipped because they do not parse";
    d->m_skip_decode = patron_metrics_counter(opt->metrics, name, help, "reason=\"profile\"");
    d->m_skip_type = patron_metrics_counter(opt->metrics, name, help, "reason=\"type\"");
    d->m_skip_reco = patron_metrics_counter(opt->metrics, name, help, "reason=\"recommended\"");
    d->m_snapshots = patron_metrics_counter(opt->metrics, "patron_api_dashboard_snapshots_total",
                                            "Customer snapshots completed", NULL);
    d->m_customers = patron_metrics_gauge(opt->metrics, "patron_api_dashboard_customers",
                                          "Customers in the last snapshot", NULL);
    d->m_duration = patron_metrics_gauge(opt->metrics, "patron_api_dashboard_snapshot_seconds",
                                         "How long the last snapshot took", NULL);
    uv_timer_init(d->loop, &d->timer);
    d->timer.data = d;
    schedule(d, 0);
    return d;
}

void api_dashboard_stop(struct api_dashboard *d)
{
    d->closing = true;
    uv_close((uv_handle_t *)&d->timer, NULL);
    for (size_t i = 0; i < d->n_waiters; i++)
        api_respond_error(d->waiters[i].api, d->waiters[i].res, 503, "unavailable",
                          "shutting down");
    d->n_waiters = 0;
}

void api_dashboard_free(struct api_dashboard *d)
{
    key_set_free(&d->seen);
    api_history_free(d->history);
    free(d->scratch);
    free(d);
}
