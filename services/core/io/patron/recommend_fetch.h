/*
 * Recommendations from Redis: the fetch plan around the pure scoring
 * (recommend.h), one module for patron-api's answers and patron-trigger's
 * campaign messages. This module does I/O (through redis.h only); it decides
 * nothing that the scoring does not.
 *
 * The plan for a customer: GET the profile; then, pipelined in one round,
 * GET {i:<a>}:co (the neighbour list) for each history item a, and its
 * buyers/category/stock (HMGET {items}:pop, HMGET {items}:cat, SMISMEMBER
 * {items}:oos); then, in a second round, the same facts for the neighbours
 * found. The {items}:* keys share a slot, so each of those is one command
 * for all the items of a round, on Redis Cluster too (SMISMEMBER: Redis >=
 * 6.2). What was read is kept in a cache of item facts and neighbour lists,
 * shared by all requests (CLOCK eviction when full) and re-read ahead of
 * expiry while requests use it: a busy shop's hot items are read about once
 * per max age whatever the request rate, and an answer whose items are all
 * cached waits for one round trip, the profile's. The trending list
 * (ZREVRANGE {items}:trend, with its items' category and stock) is one
 * snapshot, re-read in the background when older than max_age_ms.
 *
 * Freshness: the profile is read on every request, so a purchase changes the
 * next answer as soon as ingest has written it (the bought item is excluded,
 * its neighbours join the history). The facts of the items an answer may
 * hold (candidates, trends) lag by at most max_age_ms (default 5 s) plus one
 * round trip: an item that goes out of stock can be recommended for that
 * long. Neighbour lists, and the buyers of history items (which only weigh
 * their neighbours), lag by at most list_max_age_ms (default 60 s): the
 * co-purchase graph of the whole shop moves slowly, and history items are
 * mostly the long tail, used less often than every few seconds, which a 5 s
 * bound sent to Redis on most answers (measured: README, Benchmarks).
 *
 * Ownership: the fetcher borrows the Redis client, which must outlive it;
 * free the fetcher only after patron_kv_close has run every callback.
 * Answers are valid only inside the callback. Guarantee: when a fetch
 * returns 0 its callback runs exactly once (with err PATRON_EIO when Redis
 * failed or the client closed); when it returns an error the callback never
 * runs. Memory: the cache holds at most cache_items items (each at most
 * PATRON_RECO_NEIGHBOURS_MAX neighbours), the trending snapshot at most
 * PATRON_RECO_TRENDING_MAX items. Threading: the loop thread only; callbacks
 * run on the loop.
 */
#ifndef PATRON_RECOMMEND_FETCH_H
#define PATRON_RECOMMEND_FETCH_H

#include "patron/common.h"
#include "patron/recommend.h"

struct patron_log;
struct patron_metrics;
struct patron_kv;
struct patron_reco_fetcher;

#define PATRON_RECO_MAX_AGE_MS 5000       /* default freshness bound of cached facts */
#define PATRON_RECO_LIST_MAX_AGE_MS 60000 /* ... of cached neighbour lists */
/* default cache size, items: ~90 MiB when full of items with 50 neighbours of
 * 8-byte ids (216 B each, plus 16 B and the id per neighbour) */
#define PATRON_RECO_CACHE_ITEMS 65536

struct patron_reco_fetcher_options {
    int64_t max_age_ms;                      /* 0: PATRON_RECO_MAX_AGE_MS; < 0 invalid */
    int64_t list_max_age_ms;                 /* 0: PATRON_RECO_LIST_MAX_AGE_MS; < 0 invalid */
    size_t cache_items;                      /* 0: PATRON_RECO_CACHE_ITEMS */
    const struct patron_reco_config *config; /* copied; NULL: patron_reco_config_default */
    int momentum; /* with config NULL: the defaults' trend_exponent (PATRON_RECO_MOMENTUM) */
    const struct patron_log *log;   /* borrowed, may be NULL */
    struct patron_metrics *metrics; /* borrowed, may be NULL: where the counters go */
};

int patron_reco_fetcher_open(struct patron_reco_fetcher **out, struct patron_kv *redis,
                             const struct patron_reco_fetcher_options *opt) PATRON_MUST_USE;
void patron_reco_fetcher_free(struct patron_reco_fetcher *f);

struct patron_reco_answer {
    /* 0; PATRON_EIO: Redis failed or closed; PATRON_EINVAL: the stored
     * profile does not decode (a bug or a corrupt value, logged). */
    int err;
    bool known; /* the customer has a profile (customer answers only) */
    /* a visitor's answer: the customer it was merged into ("" while it is
     * a visitor; the recommendations are for whichever it is) */
    char customer_id[PATRON_ID_MAX + 1];
    enum patron_reco_strategy strategy;
    size_t n;
    struct {
        char item[PATRON_ID_MAX + 1];
        double score;
    } items[PATRON_RECO_LIMIT_MAX];
};

typedef void (*patron_reco_done_fn)(void *ud, const struct patron_reco_answer *a);

/* The customer's top `limit` (1..PATRON_RECO_LIMIT_MAX) items, only of
 * `category` unless it is NULL; now_ms (the service's clock) decays the
 * trends. PATRON_EINVAL for an id or category that is empty or longer than
 * PATRON_ID_MAX, or a limit out of range; PATRON_EIO when Redis refuses. */
int patron_reco_fetch_customer(struct patron_reco_fetcher *f, const char *customer_id,
                               size_t id_len, const char *category, size_t limit, int64_t now_ms,
                               patron_reco_done_fn cb, void *ud) PATRON_MUST_USE;

/* The same for an anonymous visitor: its own profile ({v:<id>}), or, once
 * an Identify merged it, its customer's (answer.customer_id says which; one
 * more round trip). An unknown visitor gets what an unknown customer gets. */
int patron_reco_fetch_visitor(struct patron_reco_fetcher *f, const char *anonymous_id,
                              size_t id_len, const char *category, size_t limit, int64_t now_ms,
                              patron_reco_done_fn cb, void *ud) PATRON_MUST_USE;

/* Items similar to item_id (patron_reco_similar), same errors. */
int patron_reco_fetch_similar(struct patron_reco_fetcher *f, const char *item_id, size_t id_len,
                              size_t limit, patron_reco_done_fn cb, void *ud) PATRON_MUST_USE;

/* Metrics (when given): patron_reco_item_reads_total{source="cache"|"redis"}
 * counts item facts and neighbour lists served from the cache or read, and
 * patron_reco_cache_items the items cached. */

#endif
