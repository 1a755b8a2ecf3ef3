/*
 * The recommendation fetcher's insides (recommend_fetch.h is the API),
 * shared by its files:
 *   recommend_fetch.c  requests: the public calls, the phases (profile ->
 *                      history round -> candidates round -> score), scoring
 *   reco_read.c        reading items into the cache: the commands, the
 *                      checks of their replies, and refresh-ahead batches
 *   reco_trending.c    the trending snapshot: its index, its refresh, its
 *                      decay for the scorer
 *   reco_cache.c       the item cache (reco_cache.h), no I/O
 *
 * @locality: the loop thread; every callback runs on it. A request moves
 * through phases; each phase sends its commands at once (they pipeline),
 * rq->pending counts the replies (and the trending wait) outstanding, and
 * the last one back (reco_reply_back) starts the next phase. Pointers into
 * the cache are never held across a callback: the cache may drop entries
 * between phases. Every reply is checked field by field, nothing trusted.
 */
#ifndef PATRON_RECO_INTERNAL_H
#define PATRON_RECO_INTERNAL_H

#include <sys/types.h>

#include "patron/recommend_fetch.h"
#include "patron/redis.h"
#include "reco_cache.h"

/* ---- the trending snapshot (reco_trending.c) ---- */

/* Items by decayed popularity, with the facts the popular answer needs
 * (category, stock). */
struct trend_item {
    char id[PATRON_ID_MAX + 1];
    size_t len;
    uint64_t hash;
    double raw; /* the stored score (trend.h) */
    char category[PATRON_ID_MAX + 1];
    bool oos;
    bool np;        /* not a product */
    int64_t buyers; /* distinct buyers ({items}:pop); 0 unknown */
};

/* An index slot: the item's hash, so that a probe does not touch the item
 * unless it matches (most candidates are not trending), and 1 + its
 * position, 0 empty. */
struct trend_slot {
    uint64_t hash;
    uint32_t pos;
};

struct trending {
    struct trend_item *v; /* owned, at most PATRON_RECO_TRENDING_MAX */
    size_t n;
    struct trend_slot *index; /* owned: hash slots */
    size_t mask;
    unsigned shift;
    int64_t at_ms; /* monotonic ms it was read; 0: none */
};

/* The snapshot's entry of the item (h its hash), or NULL. Inline: the
 * scorer's lookup asks it for every candidate. */
static inline const struct trend_item *reco_trending_get(const struct trending *t, const char *id,
                                                         size_t len, uint64_t h)
{
    if (!t->index)
        return NULL;
    for (size_t i = reco_home_slot(h, t->shift);; i = (i + 1) & t->mask) {
        const struct trend_slot *s = &t->index[i];
        if (s->pos == 0)
            return NULL;
        if (s->hash != h)
            continue;
        const struct trend_item *it = &t->v[s->pos - 1];
        if (it->len == len && patron_key_equal(it->id, id, len))
            return it;
    }
}

/* ---- the fetcher and its requests ---- */

struct request;

/* Candidates of round 2 at most: every neighbour read of every history
 * item, or a similar-items list. */
enum {
    RECO_CANDIDATES_MAX =
        PATRON_RECO_SEEDS_MAX * PATRON_RECO_NEIGHBOURS_MAX > PATRON_RECO_SIMILAR_MAX
            ? PATRON_RECO_SEEDS_MAX *PATRON_RECO_NEIGHBOURS_MAX
            : PATRON_RECO_SIMILAR_MAX
};

enum { RECO_NO_PROBE = RECO_CANDIDATES_MAX };

/* Decoded profiles (~54 KB) and requests (~1.5 KB) kept for reuse
 * (recommend_fetch.c): enough for the requests in flight at a time on a
 * busy loop. */
enum { RECO_SPARES = 64 };

/* A candidate of round 2, hashed before its cache probe. */
struct reco_probe {
    const char *id;
    size_t len;
    uint64_t hash;
};

struct patron_reco_fetcher {
    struct patron_kv *redis;
    const struct patron_log *log;
    struct patron_reco_config cfg;
    int64_t max_age_ms;      /* facts of candidates, trends */
    int64_t list_max_age_ms; /* neighbour lists, and facts of history items */
    struct reco_cache cache;
    /* round 2's scratch, owned, RECO_CANDIDATES_MAX each: one request at a
     * time fills and sends it (the loop's thread), so one set serves all */
    struct reco_probe *probes;
    const char **probe_ids;
    size_t *probe_lens;
    /* each probe's entry, pinned by the phase; valid while probes_owner is
     * that phase's request and it runs on (reco_reply_back scores
     * synchronously when no fact was missing) */
    struct reco_entry **probe_entries;
    size_t n_probes;
    size_t probe_first[PATRON_RECO_SEEDS_MAX]; /* history item i's first probe, or RECO_NO_PROBE */
    const struct request *probes_owner;
    struct patron_reco_fact *facts;      /* the scorer's view of every probe, in their order */
    struct patron_reco_scratch *scratch; /* the scorer's, owned: one request at a time too */
    struct patron_profile *spare[RECO_SPARES]; /* decoded profiles to reuse, owned */
    size_t n_spare;
    struct request *spare_rq[RECO_SPARES]; /* finished requests to reuse, owned */
    size_t n_spare_rq;
    /* The shop's momentum (trend.h), refitted every list_max_age_ms from a
     * sample of the catalogue (reco_momentum.c); used while model.alpha > 0
     * and the config weighs momentum. model_seq counts fits: blocks made
     * under another are stale. */
    struct patron_momentum model;
    double model_inv_weight; /* 1 / patron_trend_weight of the fit's event time */
    int64_t model_at_ms;     /* monotonic ms of the last fit attempt; 0: none */
    uint64_t model_seq;
    bool fitting;
    struct trending trend; /* the current snapshot */
    struct trending next;  /* being read */
    bool refreshing;
    struct request *waiters; /* requests waiting for the first snapshot */
    /* The snapshot decayed to decayed_now_ms, for the scorer: recomputed when
     * the snapshot changes or the clock moved by a second (a 14-day
     * half-life makes that a 6e-7 relative change). */
    struct patron_reco_trending *decayed;
    size_t n_decayed;
    /* the same items by buyers, most first (the scorer's popularity
     * candidates), rebuilt with decayed; owned, n_decayed of them */
    struct patron_reco_trending *popular;
    int64_t decayed_now_ms;
    bool decayed_stale;
    uint64_t seq;
    struct request *ahead;                    /* the refresh-ahead batch being filled, or NULL */
    struct patron_counter *m_hits, *m_misses; /* NULL without metrics */
    struct patron_counter *m_rounds[3];       /* answers by Redis round trips waited, 1..3 */
    struct patron_gauge *m_cached;
    struct patron_gauge *m_alpha, *m_fit_items; /* the momentum model's last fit */
    struct patron_counter *m_stored_faults;     /* item statistics Redis refused to read */
    int64_t fault_logged_ms;                    /* monotonic ms of the last such log line */
};

/* REQ_REFRESH: a batch of refresh-ahead reads (reco_read.c), answering no
 * one. */
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
    /* a visitor's request (patron_reco_fetch_visitor): the customer it was
     * merged into, "" while it is a visitor */
    bool visitor;
    char customer_id[PATRON_ID_MAX + 1];
    struct patron_reco_seed seeds[PATRON_RECO_SEEDS_MAX];
    size_t n_seeds;
    uint64_t blocks_used; /* bit i: round 2 took history item i's neighbours from its block */
    /* similar items: the item's own list, read for this request only */
    struct patron_reco_neighbour *sim; /* owned, as reco_reply_neighbours gives it */
    size_t n_sim;
    /* refresh-ahead batches: what they read (owned) */
    struct reco_ahead *ahead;
};

/* ---- recommend_fetch.c ---- */

/* Records rq's first error; the request goes on collecting its replies and
 * answers with it at the end of the phase. */
void reco_request_fail(struct request *rq, int err);
/* One reply (or wait) of rq's phase is back: the last one ends the phase. */
void reco_reply_back(struct request *rq);
/* A phase that reads Redis costs its request one more round trip. */
void reco_round_sent(struct request *rq);

/* ---- reco_read.c ---- */

/* r is an array of n elements. */
bool reco_reply_array(const redisReply *r, size_t n);
/* r is an item id as stored by ingest: 1..PATRON_ID_MAX bytes. */
bool reco_reply_id(const redisReply *r);
/* A finite double in a string reply. */
bool reco_reply_double(const redisReply *r, double *out);
/* A GET of a neighbour list (graph_row.h): strongest first. At most max
 * neighbours go to *out, one allocation holding the array and the ids it
 * points to (owned by the caller: one free; NULL when none); nil (no list
 * yet), a key of another type and a list that does not decode give none.
 * Returns -1 for any other reply (Redis failing). */
ssize_t reco_reply_neighbours(const redisReply *r, size_t max, struct patron_reco_neighbour **out);
/* Reads item id's neighbour list into the cache, in rq's round. */
int reco_send_neighbours(struct request *rq, const char *id, size_t len) PATRON_MUST_USE;
/* Reads the facts of n items (ids copied) into the cache, in rq's round:
 * three commands over the same ids. On an error the commands already sent
 * still call back. */
int reco_send_facts(struct request *rq, const char *const *ids, const size_t *lens,
                    size_t n) PATRON_MUST_USE;
/* Queues e's facts / neighbour list for a re-read ahead of their expiry. */
void reco_refresh_queue_facts(struct patron_reco_fetcher *f, struct reco_entry *e, int64_t now);
void reco_refresh_queue_nb(struct patron_reco_fetcher *f, struct reco_entry *e, int64_t now);
/* Sends the refresh-ahead batch when it is big or old enough. */
void reco_refresh_maybe_send(struct patron_reco_fetcher *f, int64_t now);
/* A refresh-ahead batch's replies are all back: unmark its items, free it. */
void reco_refresh_finish(struct request *rq);
/* Frees a batch never sent (the fetcher is freed). */
void reco_refresh_discard(struct request *rq);

/* ---- reco_trending.c ---- */

/* Starts a refresh when the snapshot is stale. When there is none yet, rq
 * waits for it: one more pending, released (reco_reply_back) once the
 * refresh ends, well or not. */
void reco_trending_await(struct request *rq, int64_t now);

/* One command of a read over a list of items: `cmd key item...`. */
struct reco_items_cmd {
    const char *cmd, *key;
    patron_redis_cb cb;
};

/* Sends plan[0 .. n_plan) in order, each as `cmd key` and the n items
 * already in argv[2 ..] and argl[2 ..] (the first two slots are the
 * call's), each calling back with ud. Stops at the first that cannot be
 * sent; returns how many were (their callbacks will run). */
size_t reco_send_items(struct patron_kv *kv, const struct reco_items_cmd *plan, size_t n_plan,
                       void *ud, const char **argv, size_t *argl, size_t n);

/* Whether reply is Redis refusing a statistic of {items}:* (WRONGTYPE: a
 * key of another type there); if so, counts and logs it (at most once a
 * minute). The caller then goes on without those facts, as with a missing
 * list, rather than failing every answer until an operator deletes the
 * key: the facts count as unknown, the trending snapshot stays as it was,
 * the momentum model too. */
bool reco_stored_fault(struct patron_reco_fetcher *f, const redisReply *reply);

/* Starts a refit of the momentum model (reco_momentum.c) when the config
 * weighs momentum, none is in flight and the last is older than
 * list_max_age_ms; event_ms is the requests' clock (the trends' time), now
 * the monotonic ms. Never waits and never fails a request. */
void reco_momentum_maybe_fit(struct patron_reco_fetcher *f, int64_t event_ms, int64_t now);
/* The snapshot decayed to now_ms (f->n_decayed items), for the scorer;
 * valid until the next call. */
const struct patron_reco_trending *reco_trending_decayed(struct patron_reco_fetcher *f,
                                                         int64_t now_ms, double inv_weight_now);
void reco_trending_free(struct trending *t);

#endif
