/*
 * Reading items into the recommendation cache: an item's neighbour list
 * (GET {i:<a>}:co) and the facts of a batch of items (HMGET {items}:pop,
 * SMISMEMBER {items}:oos and {items}:np, HMGET {items}:cat, and with
 * momentum ZMSCORE {items}:trend and HMGET {items}:sold: the {items}:* keys share a slot,
 * so each is one command for all the items of a round, on Redis Cluster
 * too). Every reply is checked before it is stored; a reply that is not the
 * expected shape fails the request (PATRON_EIO) and stores nothing of it.
 *
 * Refresh-ahead (the last part) sends the same reads for items that are
 * still fresh but ageing, in batches no request waits for.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/graph_row.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/strmap.h"
#include "reco_internal.h"

/* ---- reply parsing: every field checked, nothing trusted -------------------------- */

bool reco_reply_array(const redisReply *r, size_t n)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
}

bool reco_reply_id(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 && (size_t)r->len <= PATRON_ID_MAX;
}

bool reco_reply_double(const redisReply *r, double *out)
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

static int64_t reply_count(const redisReply *r)
{
    int64_t v;
    return r->type == REDIS_REPLY_STRING && patron_reply_i64(r, 1, INT64_MAX, &v) == 0 ? v : 0;
}

ssize_t reco_reply_neighbours(const redisReply *r, size_t max, struct patron_reco_neighbour **out)
{
    struct patron_graph_cell cells[PATRON_GRAPH_ROW_MAX];
    uint64_t version;
    size_t n = 0, bytes = 0;
    *out = NULL;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    /* a key of another type (a sorted set from before lists were strings):
     * no list, until ingest's next merge replaces it */
    if (patron_reply_wrong_type(r))
        return 0;
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    if (patron_graph_row_decode(r->str, (size_t)r->len, &version, cells, PATRON_GRAPH_ROW_MAX, &n,
                                NULL))
        return 0;
    if (n > max)
        n = max;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        bytes += cells[i].id_len + 1;
    /* cells[i].id_len <= PATRON_ID_MAX and n <= PATRON_GRAPH_ROW_MAX: no overflow */
    struct patron_reco_neighbour *nb = patron_malloc(n * sizeof(*nb) + bytes);
    char *p = (char *)(nb + n);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, cells[i].id, cells[i].id_len);
        p[cells[i].id_len] = '\0';
        nb[i] = (struct patron_reco_neighbour){p, (double)cells[i].count, (uint32_t)cells[i].id_len,
                                               patron_hash64(p, cells[i].id_len)};
        p += cells[i].id_len + 1;
    }
    *out = nb;
    return (ssize_t)n;
}

/* ---- neighbour lists ---------------------------------------------------------------- */

/* One GET's context: the request and the item it is about. */
struct cmd {
    struct patron_reco_fetcher *f;
    struct request *rq;
    char id[PATRON_ID_MAX + 1];
    size_t len;
};

static void on_neighbours(void *ud, redisReply *reply)
{
    struct cmd *c = ud;
    struct request *rq = c->rq;
    struct patron_reco_neighbour *nb = NULL;
    ssize_t n = reply ? reco_reply_neighbours(reply, PATRON_RECO_NEIGHBOURS_MAX, &nb) : -1;
    if (n < 0) {
        reco_request_fail(rq, PATRON_EIO);
    } else {
        uint64_t h = patron_hash64(c->id, c->len);
        struct reco_entry *e = reco_cache_put(&c->f->cache, c->id, c->len, h);
        if (e) {
            free(e->nb);
            reco_block_drop(e); /* its facts were of the old list's neighbours */
            e->nb = nb;
            e->n_nb = (uint32_t)n;
            e->nb_ms = patron_monotonic_ms();
        } else {
            free(nb);
        }
    }
    free(c);
    reco_reply_back(rq);
}

int reco_send_neighbours(struct request *rq, const char *id, size_t len)
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
    reco_round_sent(rq);
    return 0;
}

/* ---- facts -------------------------------------------------------------------------- */

/* The facts of a batch of items: four commands over the same ids, and,
 * when the fetcher weighs momentum, two more over those of them whose
 * momentum facts are older than list_max_age_ms (recent and all-time
 * sales move slowly: a minute changes no factor that matters, and reading
 * them with every 5 s refresh cost a fifth of the API's throughput). */
struct facts_batch {
    struct patron_reco_fetcher *f;
    struct request *rq;
    size_t n, n_mom;
    /* the commands' arguments, owned: the ids (into blob) from slot 2, so
     * that every command of the batch sends them without a copy; the
     * momentum ones a subset */
    const char **argv, **mom_argv;
    size_t *argl, *mom_argl;
    const char **ids, **mom_ids; /* argv + 2, mom_argv + 2 */
    size_t *lens, *mom_lens;     /* argl + 2, mom_argl + 2 */
    char *blob;
    int remaining;
    bool failed;
};

/* Stamps every entry of ids with now: when its facts (or momentum facts) were read. */
static void stamp(struct patron_reco_fetcher *f, const char *const *ids, const size_t *lens,
                  size_t n, bool mom, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        struct reco_entry *e =
            reco_cache_get(&f->cache, ids[i], lens[i], patron_hash64(ids[i], lens[i]));
        if (e && mom)
            e->mom_ms = now;
        else if (e)
            e->facts_ms = now;
    }
}

static void facts_free(struct facts_batch *b)
{
    free(b->argv);
    free(b->argl);
    free(b->mom_argv);
    free(b->mom_argl);
    free(b->blob);
    free(b);
}

static void facts_release(struct facts_batch *b)
{
    if (--b->remaining > 0)
        return;
    struct request *rq = b->rq;
    if (!b->failed) {
        int64_t now = patron_monotonic_ms();
        stamp(b->f, b->ids, b->lens, b->n, false, now);
        stamp(b->f, b->mom_ids, b->mom_lens, b->n_mom, true, now);
    } else {
        reco_request_fail(rq, PATRON_EIO);
    }
    facts_free(b);
    reco_reply_back(rq);
}

/* Applies element i of a facts reply to its item's entry. */
typedef void (*fact_apply_fn)(struct reco_entry *e, const redisReply *r);

static void apply_buyers(struct reco_entry *e, const redisReply *r)
{
    e->buyers = reply_count(r);
}

static void apply_oos(struct reco_entry *e, const redisReply *r)
{
    e->oos = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

static void apply_np(struct reco_entry *e, const redisReply *r)
{
    e->np = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

static void apply_category(struct reco_entry *e, const redisReply *r)
{
    if (reco_reply_id(r)) {
        memcpy(e->category, r->str, (size_t)r->len);
        e->category[r->len] = '\0';
    } else {
        e->category[0] = '\0';
    }
}

/* ZMSCORE's element: a score, or nil for an item never bought. */
static void apply_trend(struct reco_entry *e, const redisReply *r)
{
    double v;
    e->trend_raw = r->type == REDIS_REPLY_STRING && reco_reply_double(r, &v) && v > 0 ? v : 0;
}

static void apply_sold(struct reco_entry *e, const redisReply *r)
{
    e->sold = (double)reply_count(r);
}

bool reco_stored_fault(struct patron_reco_fetcher *f, const redisReply *reply)
{
    if (!patron_reply_wrong_type(reply))
        return false;
    if (f->m_stored_faults)
        patron_counter_inc(f->m_stored_faults);
    int64_t now = patron_monotonic_ms();
    if (f->fault_logged_ms && now - f->fault_logged_ms < 60000)
        return true;
    f->fault_logged_ms = now;
    char why[256];
    patron_json_escape_n(why, sizeof(why), reply->str, reply->len, NULL);
    patron_log(f->log, PATRON_LOG_WARN, "item statistics unreadable: answering without them",
               "\"redis\":\"%s\"", why);
    return true;
}

static void on_facts(struct facts_batch *b, redisReply *reply, fact_apply_fn apply, bool mom)
{
    const char *const *ids = mom ? b->mom_ids : b->ids;
    const size_t *lens = mom ? b->mom_lens : b->lens;
    size_t n = mom ? b->n_mom : b->n;
    if (reco_stored_fault(b->f, reply)) {
        /* nothing applied: those facts stay unknown */
    } else if (!reco_reply_array(reply, n)) {
        b->failed = true;
    } else if (!b->failed) {
        for (size_t i = 0; i < n; i++) {
            struct reco_entry *e =
                reco_cache_put(&b->f->cache, ids[i], lens[i], patron_hash64(ids[i], lens[i]));
            if (e)
                apply(e, reply->element[i]);
        }
    }
    facts_release(b);
}

static void on_buyers(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_buyers, false);
}

static void on_oos(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_oos, false);
}

static void on_np(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_np, false);
}

static void on_category(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_category, false);
}

static void on_trend(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_trend, true);
}

static void on_sold(void *ud, redisReply *reply)
{
    on_facts(ud, reply, apply_sold, true);
}

size_t reco_send_items(struct patron_kv *kv, const struct reco_items_cmd *plan, size_t n_plan,
                       void *ud, const char **argv, size_t *argl, size_t n)
{
    for (size_t k = 0; k < n_plan; k++) {
        argv[0] = plan[k].cmd;
        argl[0] = strlen(plan[k].cmd);
        argv[1] = plan[k].key;
        argl[1] = strlen(plan[k].key);
        if (patron_kv_commandv(kv, plan[k].cb, ud, (int)(n + 2), argv, argl))
            return k;
    }
    return n_plan;
}

int reco_send_facts(struct request *rq, const char *const *ids, const size_t *lens, size_t n)
{
    if (n == 0)
        return 0;
    struct patron_reco_fetcher *f = rq->f;
    struct facts_batch *b = patron_calloc(1, sizeof(*b));
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += lens[i];
    *b = (struct facts_batch){.f = f, .rq = rq, .n = n};
    b->argv = patron_malloc((n + 2) * sizeof(*b->argv));
    b->argl = patron_malloc((n + 2) * sizeof(*b->argl));
    b->ids = b->argv + 2;
    b->lens = b->argl + 2;
    b->blob = patron_malloc(bytes ? bytes : 1);
    char *p = b->blob;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, ids[i], lens[i]);
        b->ids[i] = p;
        b->lens[i] = lens[i];
        p += lens[i];
    }
    if (f->cfg.trend_exponent > 0) {
        int64_t now = patron_monotonic_ms();
        b->mom_argv = patron_malloc((n + 2) * sizeof(*b->mom_argv));
        b->mom_argl = patron_malloc((n + 2) * sizeof(*b->mom_argl));
        b->mom_ids = b->mom_argv + 2;
        b->mom_lens = b->mom_argl + 2;
        for (size_t i = 0; i < n; i++) {
            const struct reco_entry *e =
                reco_cache_get(&f->cache, ids[i], lens[i], patron_hash64(ids[i], lens[i]));
            if (e && reco_fresh(e->mom_ms, now, f->list_max_age_ms))
                continue;
            b->mom_ids[b->n_mom] = b->ids[i];
            b->mom_lens[b->n_mom++] = lens[i];
        }
    }
    static const struct reco_items_cmd facts[] = {
        {"HMGET", PATRON_KEY_ITEMS_POP, on_buyers},
        {"SMISMEMBER", PATRON_KEY_ITEMS_OOS, on_oos},
        {"SMISMEMBER", PATRON_KEY_ITEMS_NP, on_np},
        {"HMGET", PATRON_KEY_ITEMS_CAT, on_category},
    };
    static const struct reco_items_cmd momentum[] = {
        {"ZMSCORE", PATRON_KEY_ITEMS_TREND, on_trend},
        {"HMGET", PATRON_KEY_ITEMS_SOLD, on_sold},
    };
    size_t sent = reco_send_items(f->redis, facts, PATRON_ARRAY_LEN(facts), b, b->argv, b->argl, n);
    bool all = sent == PATRON_ARRAY_LEN(facts);
    b->remaining = (int)sent;
    if (all && b->n_mom > 0) {
        size_t m = reco_send_items(f->redis, momentum, PATRON_ARRAY_LEN(momentum), b, b->mom_argv,
                                   b->mom_argl, b->n_mom);
        all = m == PATRON_ARRAY_LEN(momentum);
        b->remaining += (int)m;
    }
    int rc = all ? 0 : PATRON_EIO;
    if (b->remaining == 0) {
        facts_free(b);
        return rc;
    }
    rq->pending++;
    reco_round_sent(rq);
    if (rc)
        b->failed = true; /* the commands sent still call back */
    return rc;
}

/* ---- refresh-ahead ------------------------------------------------------------------ */

/*
 * A cached item whose facts or neighbour list are in the last quarter of
 * their max age when a request uses them (reco_ageing) is queued for a
 * re-read that no request waits for: a busy item is then re-read before it
 * expires, and the requests that use it keep answering from the cache
 * instead of waiting for a round trip to Redis every max_age_ms. What is
 * served is never older than max_age_ms, as before. The queue goes out as
 * one batch (one GET per neighbour list, three commands for all the facts)
 * once it holds REFRESH_SEND_AT items or its oldest waited REFRESH_WAIT_MS,
 * whichever comes first when a request passes; an item queued or in flight
 * is not queued again. Bounded: a full batch takes no more (the item is then
 * read on expiry, as without it). A batch is a request of kind REQ_REFRESH:
 * its replies update the cache like a request's, then reco_refresh_finish.
 */
#define REFRESH_SEND_AT 32
#define REFRESH_WAIT_MS 50
#define REFRESH_FACTS_MAX 256
#define REFRESH_NB_MAX 64

struct reco_ahead {
    int64_t since_ms; /* monotonic ms the first item was queued */
    size_t n_facts, n_nb;
    char facts[REFRESH_FACTS_MAX][PATRON_ID_MAX + 1];
    size_t facts_len[REFRESH_FACTS_MAX];
    char nb[REFRESH_NB_MAX][PATRON_ID_MAX + 1];
    size_t nb_len[REFRESH_NB_MAX];
};

/* The batch being filled, made on first use. */
static struct reco_ahead *refresh_batch(struct patron_reco_fetcher *f, int64_t now)
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

void reco_refresh_queue_facts(struct patron_reco_fetcher *f, struct reco_entry *e, int64_t now)
{
    struct reco_ahead *r = refresh_batch(f, now);
    if (r->n_facts == REFRESH_FACTS_MAX)
        return;
    memcpy(r->facts[r->n_facts], e->id, e->len + 1);
    r->facts_len[r->n_facts++] = e->len;
    e->facts_queued = true;
}

void reco_refresh_queue_nb(struct patron_reco_fetcher *f, struct reco_entry *e, int64_t now)
{
    struct reco_ahead *r = refresh_batch(f, now);
    if (r->n_nb == REFRESH_NB_MAX)
        return;
    memcpy(r->nb[r->n_nb], e->id, e->len + 1);
    r->nb_len[r->n_nb++] = e->len;
    e->nb_queued = true;
}

void reco_refresh_maybe_send(struct patron_reco_fetcher *f, int64_t now)
{
    struct request *rq = f->ahead;
    if (!rq)
        return;
    struct reco_ahead *r = rq->ahead;
    if (r->n_facts + r->n_nb < REFRESH_SEND_AT && now - r->since_ms < REFRESH_WAIT_MS)
        return;
    f->ahead = NULL;
    rq->pending++; /* held while sending */
    for (size_t i = 0; i < r->n_nb; i++)
        if (reco_send_neighbours(rq, r->nb[i], r->nb_len[i]))
            reco_request_fail(rq, PATRON_EIO);
    const char *ids[REFRESH_FACTS_MAX];
    for (size_t i = 0; i < r->n_facts; i++)
        ids[i] = r->facts[i];
    if (reco_send_facts(rq, ids, r->facts_len, r->n_facts))
        reco_request_fail(rq, PATRON_EIO);
    reco_reply_back(rq);
}

/* Every reply is back (or failed: the items are then read on expiry). */
void reco_refresh_finish(struct request *rq)
{
    struct reco_cache *c = &rq->f->cache;
    struct reco_ahead *r = rq->ahead;
    for (size_t i = 0; i < r->n_facts; i++) {
        struct reco_entry *e = reco_cache_get(c, r->facts[i], r->facts_len[i],
                                              patron_hash64(r->facts[i], r->facts_len[i]));
        if (e)
            e->facts_queued = false;
    }
    for (size_t i = 0; i < r->n_nb; i++) {
        struct reco_entry *e =
            reco_cache_get(c, r->nb[i], r->nb_len[i], patron_hash64(r->nb[i], r->nb_len[i]));
        if (e)
            e->nb_queued = false;
    }
    free(r);
    free(rq);
}

void reco_refresh_discard(struct request *rq)
{
    free(rq->ahead);
    free(rq);
}
