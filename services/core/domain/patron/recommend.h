/*
 * Recommendations by item-to-item collaborative filtering: the pure scoring.
 *
 * A customer's history (purchases > cart > views, each list decayed by
 * position, most recent first) expands through each history item's
 * neighbour list in the co-occurrence graph that ingest keeps ({i:<id>}:co,
 * the strongest by count first). Of the first PATRON_RECO_NEIGHBOURS_MAX
 * neighbours of history item a, the `nearest` most similar ones that may be
 * recommended count (a k-nearest-neighbour cut: weak links of a popular
 * item are noise), each adding
 *
 *     weight(a) * sim(a, b) / (n(a) + m)^d,
 *     sim(a, b) = (c(a, b) / (n(a)^a n(b)^(1 - a)))^q
 *
 * to candidate b, with c the co-occurrence count and n the distinct buyers
 * ({items}:pop): an asymmetric cosine (a = asymmetry; 0.5 is the cosine)
 * sharpened by q = locality (Aiolli, "Efficient top-N recommendation for
 * very large scale binary rated datasets", RecSys 2013). It divides by both
 * popularities, so a best seller that co-occurs with everything does not
 * drown the specific neighbours; a > 0.5 leans towards P(b | a), what the
 * buyers of a went on to buy. d (history_damping) makes a history item that
 * everyone bought count less than one that says something about this
 * customer (an inverse-frequency weight, as in IDF); the prior m keeps an
 * item bought by a handful (the customer and one other) from counting most
 * on a sparse shop. A count above a buyer count (a customer counted twice,
 * see graph.h) stands in for that count.
 *
 * The sum is taken relative to the best candidate's (the same scale for a
 * long and a short history) and shrunk by the evidence behind it,
 * s / (s + shrink) with s the co-buyers that link b to the history (the
 * counts summed): a pair seen once is a coincidence on a sparse catalogue, a
 * pair seen fifty times is not. Then
 *
 *     cf(b)       = sum * momentum(b)^trend_exponent / (the best candidate's)
 *                   * s / (s + shrink)
 *     score(b)    = cf(b) + popularity * evidence / (evidence + S)
 *                           * min(1, n(b) / n(top trending candidate))
 *
 * with momentum(b) the item's recent sales against its all-time sales,
 * shrunk by the evidence as far as the shop's own sales move (trend.h: 1
 * for every item of a shop that sells at a steady rate), and S the
 * co-buyers behind the best CF candidate. So where the graph knows little (a sparse
 * shop, a thin history) the answer leans to what most customers buy, and
 * where it knows much the CF term decides. A history item whose list is thin
 * (its strongest count below thin_count) has every neighbour count: cosine
 * over single co-purchases would only pick the rarest items. The defaults
 * were chosen on every data set and protocol of the offline evaluation at
 * once (docs/eval.md), each idea measured on all of them.
 *
 * Never returned: items the customer bought (the bought list and the hashes
 * of earlier ones, profile.h), items in the cart, items out of stock, items
 * that are not products (postage, fees: ItemUpdate.not_a_product), and,
 * with a category filter, items of another or an unknown category. A history
 * item that is not a product is no evidence either. Candidates are the
 * neighbours found and the best sellers among the trending items (`popular`
 * below); an item with a CF term is "cf", one with only popularity is
 * "popular". When both fail to fill the answer
 * (nothing known of the buyers), trending items fill the rest below the
 * others. Order: score descending, then item id ascending.
 *
 * Pure: the caller fetches the inputs (recommend_fetch.h does, from Redis)
 * and lends them; results borrow the item strings of the inputs. Bounded by
 * the PATRON_RECO_*_MAX constants; scratch memory is the caller's
 * (patron_reco_scratch) or allocated per call and freed before return
 * (aborts on OOM, common.h). No shared state: safe from any thread.
 */
#ifndef PATRON_RECOMMEND_H
#define PATRON_RECOMMEND_H

#include "patron/common.h"
#include "patron/profile.h"
#include "patron/trend.h"

#define PATRON_RECO_LIMIT_MAX 100 /* items one answer may hold */
#define PATRON_RECO_LIMIT_DEFAULT 10
#define PATRON_RECO_SEEDS_MAX 64      /* history items expanded, the heaviest */
#define PATRON_RECO_NEIGHBOURS_MAX 50 /* neighbours read per history item, the strongest */
/* Trending items considered (cold start, top-up, trend factor). */
#define PATRON_RECO_TRENDING_MAX 1000
#define PATRON_RECO_SIMILAR_MAX 200  /* neighbours read for "similar items" */
#define PATRON_RECO_POPULAR_SCAN 256 /* popularity candidates read at most */

struct patron_reco_config {
    double weight_purchase; /* a bought item's weight before decay */
    double weight_cart;     /* ... an item in the cart */
    double weight_view;     /* ... a viewed item */
    double half_life_items; /* positions (most recent first) in which a weight halves; > 0 */
    double locality;        /* exponent q of the similarity, > 1 sharpens; > 0 */
    double asymmetry;       /* share a of the history item in the similarity's
                             * denominator, in [0, 1]; 0.5 is the cosine */
    double history_damping; /* exponent d of a history item's damping: a best
                             * seller says less about the customer; >= 0 */
    double history_prior;   /* buyers m added before damping, so that an item
                             * few bought is not the most telling; >= 0 */
    double trend_exponent;  /* exponent of the momentum factor; 0 turns it off */
    size_t nearest;         /* most similar neighbours of a history item that count, >= 1 */
    double shrink;          /* co-buyers at which a similarity counts half; >= 0 */
    double popularity;      /* weight of buyers(b) / buyers(top) in the score; >= 0 */
    double evidence;        /* co-buyers behind the best CF candidate at which the
                             * popularity weight halves; > 0 */
    double thin_count;      /* a list whose strongest count is below this has every
                             * neighbour count, not only the nearest; >= 0 */
};

/* The defaults: see recommend.c. */
void patron_reco_config_default(struct patron_reco_config *cfg);

/* A history item and its weight; `item` is borrowed from the profile. */
struct patron_reco_seed {
    const char *item;
    double weight;
};

/* The customer's history items, heaviest first (ties by id), each once (its
 * heaviest role): at most max, and at most PATRON_RECO_SEEDS_MAX. */
size_t patron_reco_seeds(const struct patron_profile *p, const struct patron_reco_config *cfg,
                         struct patron_reco_seed *out, size_t max);

struct patron_reco_neighbour {
    const char *item;
    double count; /* co-occurrence count, > 0 */
    /* Optional, for a caller that keeps lists and scores them many times:
     * the id's length and patron_hash64, computed once when the list is
     * read. len 0: the scorer computes both. */
    uint32_t len;
    uint64_t hash;
};

/* What is known of an item besides its neighbours. */
struct patron_reco_item {
    int64_t buyers;       /* distinct buyers; 0 when unknown */
    const char *category; /* NULL or "" when unknown */
    bool out_of_stock;
    bool not_a_product; /* postage, fees: never a candidate, never evidence */
    double trend; /* purchase lines decayed to the momentum model's time (trend.h); 0 if unknown */
    double sold;  /* all-time purchase lines; 0 if unknown (then no momentum) */
};

/* What the lookup (below) would answer for an item, resolved ahead. */
struct patron_reco_fact {
    struct patron_reco_item item;
    bool known;
};

/* One item's neighbour list, strongest first (only the first
 * PATRON_RECO_NEIGHBOURS_MAX are used for customers). */
struct patron_reco_list {
    const struct patron_reco_neighbour *v;
    size_t n;
    /* Optional: [n] the facts of v[j], as the request's lookup would give
     * them, for a caller that has them at hand (it just checked each
     * neighbour's freshness); NULL: the scorer asks the lookup. */
    const struct patron_reco_fact *facts;
};

/* Fills *out for `item` (len bytes, hash = patron_hash64 of them, given so
 * that a hash table keyed the same way needs no second pass); false when
 * nothing is known (then the item counts as: no buyers, no category, in
 * stock, no trend). Must not fail otherwise; pure from the scorer's view. */
typedef bool (*patron_reco_lookup_fn)(void *ud, const char *item, size_t len, uint64_t hash,
                                      struct patron_reco_item *out);

/* A trending item: `trend` is its decayed popularity; the list comes
 * most popular first. */
struct patron_reco_trending {
    const char *item;
    double trend;
    int64_t buyers; /* distinct buyers; 0 when unknown */
};

struct patron_reco_request {
    const struct patron_profile *profile; /* NULL: unknown customer */
    const struct patron_reco_seed *seeds; /* from patron_reco_seeds */
    size_t n_seeds;
    const struct patron_reco_list *lists; /* [n_seeds]: each seed's neighbours */
    patron_reco_lookup_fn lookup;         /* facts about seeds, candidates, trending items */
    void *lookup_ud;
    const struct patron_reco_trending *trending;
    size_t n_trending; /* at most PATRON_RECO_TRENDING_MAX are read */
    /* The popularity candidates: trending items by buyers, most first; at most
     * PATRON_RECO_POPULAR_SCAN are read, and only until `limit` of them may be
     * recommended (no other can outscore them on popularity alone). */
    const struct patron_reco_trending *popular;
    size_t n_popular;
    const char *category; /* NULL: any; else only items of exactly this category */
    size_t limit;         /* 1 .. PATRON_RECO_LIMIT_MAX */
    /* The shop's momentum (trend.h), lent; NULL or alpha 0: none, every
     * factor 1. The lookup's trend and sold are what it weighs. */
    const struct patron_momentum *momentum;
    /* Optional, lent: memory reused from call to call (one call at a time);
     * NULL: the call allocates its own. */
    struct patron_reco_scratch *scratch;
};

/* A scorer's working memory, kept by a caller that scores often so that a
 * call neither allocates nor clears it (its tables are stamped with the
 * call they belong to). Grows to what the largest call needed, at most
 * 264 bytes (a table slot of 64 at most four times, a candidate pointer)
 * per item a call may meet: the lists read, the popularity candidates, the
 * profile's items and the limit (~0.95 MiB), plus 128 KiB of the
 * similarity's powers of small whole numbers, built once per config. Owned
 * by the caller: patron_reco_scratch_free. Aborts on OOM (common.h). */
struct patron_reco_scratch;
struct patron_reco_scratch *patron_reco_scratch_new(void);
void patron_reco_scratch_free(struct patron_reco_scratch *s);

enum patron_reco_strategy {
    PATRON_RECO_CF,         /* "cf": every item found through the history */
    PATRON_RECO_CF_POPULAR, /* "cf+popular": some from the history, some by popularity */
    PATRON_RECO_POPULAR,    /* "popular": trending items only */
};

const char *patron_reco_strategy_name(enum patron_reco_strategy s);

struct patron_reco_scored {
    const char *item; /* borrowed from the request's lists or trending */
    double score;     /* > 0, except for a fill-in item when nothing is known of buyers */
    bool cf;          /* the history found it (a CF term), else popularity only */
};

struct patron_reco_result {
    enum patron_reco_strategy strategy;
    size_t n;
    struct patron_reco_scored items[PATRON_RECO_LIMIT_MAX];
};

/* The top `limit` items for the customer. PATRON_EINVAL for a limit out of
 * range, seeds without lists or a missing lookup. */
int patron_reco_recommend(const struct patron_reco_request *rq,
                          const struct patron_reco_config *cfg,
                          struct patron_reco_result *out) PATRON_MUST_USE;

/* Items similar to `item`: its neighbours (at most PATRON_RECO_SIMILAR_MAX
 * read) by cosine, in (0, 1], out-of-stock ones and the item itself left
 * out; strategy is PATRON_RECO_CF. Same errors. */
int patron_reco_similar(const char *item, const struct patron_reco_list *neighbours,
                        patron_reco_lookup_fn lookup, void *lookup_ud, size_t limit,
                        struct patron_reco_result *out) PATRON_MUST_USE;

#endif
