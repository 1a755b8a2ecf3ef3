/* Item-to-item CF scoring (see recommend.h). */
#include "patron/recommend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/strmap.h"
#include "patron/trend.h"

void patron_reco_config_default(struct patron_reco_config *cfg)
{
    *cfg = (struct patron_reco_config){
        .weight_purchase = 1.0,
        .weight_cart = 0.7,
        .weight_view = 0.4,
        .half_life_items = 1000.0,
        .locality = 1.5,
        .asymmetry = 0.6,
        .history_damping = 0.375,
        .history_prior = 30.0,
        .trend_exponent = 1.0,
        .nearest = 15,
        .shrink = 30.0,
        .popularity = 1.0,
        .evidence = 3.0,
        .thin_count = 8.0,
    };
}

const char *patron_reco_strategy_name(enum patron_reco_strategy s)
{
    switch (s) {
    case PATRON_RECO_CF:
        return "cf";
    case PATRON_RECO_CF_POPULAR:
        return "cf+popular";
    case PATRON_RECO_POPULAR:
        return "popular";
    }
    return "popular";
}

/* ---- history --------------------------------------------------------------- */

static double decay(const struct patron_reco_config *cfg, size_t position)
{
    return exp2(-(double)position / cfg->half_life_items);
}

static int seed_by_item(const void *a, const void *b)
{
    const struct patron_reco_seed *x = a, *y = b;
    int c = strcmp(x->item, y->item);
    if (c)
        return c;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

static int seed_by_weight(const void *a, const void *b)
{
    const struct patron_reco_seed *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return strcmp(x->item, y->item);
}

size_t patron_reco_seeds(const struct patron_profile *p, const struct patron_reco_config *cfg,
                         struct patron_reco_seed *out, size_t max)
{
    enum { ALL = PATRON_PROFILE_BOUGHT_MAX + PATRON_PROFILE_CART_MAX + PATRON_PROFILE_VIEWED_MAX };
    struct patron_reco_seed all[ALL];
    size_t n = 0;
    if (!p || p->erased)
        return 0;
    for (size_t i = 0; i < p->n_bought && i < PATRON_PROFILE_BOUGHT_MAX; i++)
        if (p->bought[i][0])
            all[n++] =
                (struct patron_reco_seed){p->bought[i], cfg->weight_purchase * decay(cfg, i)};
    /* the cart is oldest first: its last line is the most recent */
    size_t n_cart = p->n_cart < PATRON_PROFILE_CART_MAX ? p->n_cart : PATRON_PROFILE_CART_MAX;
    for (size_t i = 0; i < n_cart; i++)
        if (p->cart[i].item_id[0])
            all[n++] = (struct patron_reco_seed){p->cart[i].item_id,
                                                 cfg->weight_cart * decay(cfg, n_cart - 1 - i)};
    for (size_t i = 0; i < p->n_viewed && i < PATRON_PROFILE_VIEWED_MAX; i++)
        if (p->viewed[i][0])
            all[n++] = (struct patron_reco_seed){p->viewed[i], cfg->weight_view * decay(cfg, i)};

    /* each item once, in its heaviest role */
    qsort(all, n, sizeof(all[0]), seed_by_item);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(all[k - 1].item, all[i].item) != 0)
            all[k++] = all[i];
    qsort(all, k, sizeof(all[0]), seed_by_weight);
    if (max > PATRON_RECO_SEEDS_MAX)
        max = PATRON_RECO_SEEDS_MAX;
    if (k > max)
        k = max;
    memcpy(out, all, k * sizeof(all[0]));
    return k;
}

/* ---- small open-addressing tables keyed by item ------------------------------ */

enum slot_state { SLOT_CANDIDATE, SLOT_EXCLUDED, SLOT_CHOSEN };

/* One item met in a call: excluded by the profile, or a candidate with what
 * is known of it and its accumulated score. */
struct slot {
    const char *item;
    uint64_t hash;
    uint32_t gen; /* the call it belongs to: any other's is empty (struct table) */
    uint16_t len; /* ids are at most PATRON_ID_MAX bytes; longer ones never match */
    uint8_t state;
    double buyers;
    double buyers_pow; /* max(buyers, 1)^-neighbour_exponent (struct powers) */
    double momentum;   /* its factor^trend_exponent (trend.h); 1 without a model */
    double acc;        /* sum of weighted similarities */
    double support;    /* co-buyers linking it to the history: the counts summed */
};

/* Sized once per call for everything it may hold (at most half full), so it
 * never grows. Its slots may be a scratch's, left by earlier calls: a slot
 * whose gen is not the table's is empty, so nothing is cleared. */
struct table {
    struct slot *slots;
    size_t mask;
    unsigned shift; /* 64 - log2(capacity) */
    uint32_t gen;
};

/* The powers of the score (recommend.h): n^locality for a count,
 * n^-history_exp for a history item's buyers, n^-neighbour_exp for a
 * candidate's, and (n + history_prior)^-history_damping, a history item's
 * damping. Counts and buyers are whole numbers, mostly small, so a scratch
 * keeps a table of each for n < POW_TABLE (built on first use, again when
 * the config changes); larger or fractional n, or a call without a
 * scratch, ask pow() for the same value. */
#define POW_TABLE 4096

struct powers {
    double count_exp, history_exp, neighbour_exp, damping_exp, prior;
    double *count, *history, *neighbour, *damping; /* [POW_TABLE], or NULL: none kept */
};

struct patron_reco_scratch {
    struct slot *slots;
    size_t cap; /* slots allocated */
    struct slot **cand;
    size_t cand_cap;
    uint32_t gen; /* of the last call */
    struct powers pw;
    double *pw_mem; /* the four tables, one allocation */
};

struct patron_reco_scratch *patron_reco_scratch_new(void)
{
    return patron_calloc(1, sizeof(struct patron_reco_scratch));
}

void patron_reco_scratch_free(struct patron_reco_scratch *s)
{
    if (!s)
        return;
    free(s->slots);
    free(s->cand);
    free(s->pw_mem);
    free(s);
}

/* A history item's damping for its buyers (0 when unknown): (n + prior)^-d;
 * 1 when both are 0. */
static double damping_of(const struct powers *pw, double buyers)
{
    double x = buyers + pw->prior;
    return x > 0 ? pow(x, -pw->damping_exp) : 1.0;
}

/* The exponents of cfg's similarity. */
static struct powers powers_of(const struct patron_reco_config *cfg)
{
    return (struct powers){.count_exp = cfg->locality,
                           .history_exp = cfg->asymmetry * cfg->locality,
                           .neighbour_exp = (1 - cfg->asymmetry) * cfg->locality,
                           .damping_exp = cfg->history_damping,
                           .prior = cfg->history_prior};
}

/* The scratch's tables for cfg's exponents, built if it has none for them;
 * without a scratch, exponents only (every power a pow() call). */
static struct powers powers_for(struct patron_reco_scratch *sc,
                                const struct patron_reco_config *cfg)
{
    struct powers want = powers_of(cfg);
    if (!sc)
        return want;
    struct powers *have = &sc->pw;
    if (sc->pw_mem && have->count_exp == want.count_exp && have->history_exp == want.history_exp &&
        have->neighbour_exp == want.neighbour_exp && have->damping_exp == want.damping_exp &&
        have->prior == want.prior)
        return *have;
    if (!sc->pw_mem)
        sc->pw_mem = patron_malloc(4 * POW_TABLE * sizeof(double));
    want.count = sc->pw_mem;
    want.history = sc->pw_mem + POW_TABLE;
    want.neighbour = sc->pw_mem + 2 * POW_TABLE;
    want.damping = sc->pw_mem + 3 * POW_TABLE;
    for (size_t n = 0; n < POW_TABLE; n++) {
        double x = n ? (double)n : 1.0;
        want.count[n] = pow(x, want.count_exp);
        want.history[n] = pow(x, -want.history_exp);
        want.neighbour[n] = pow(x, -want.neighbour_exp);
        want.damping[n] = damping_of(&want, (double)n);
    }
    *have = want;
    return want;
}

/* Whether x (>= 0) is a whole number with a slot in `table`. */
static inline bool tabled(const double *table, double x)
{
    return table && x < POW_TABLE && x == (double)(size_t)x;
}

/* x^e (or x^-e: table and exponent agree) for x >= 1, from the table when x
 * is a whole number inside it; bit for bit what pow() gives. */
static inline double power(const double *table, double x, double e)
{
    return tabled(table, x) ? table[(size_t)x] : pow(x, e);
}

/* damping_of, from the table when it has the buyers' slot. */
static inline double history_damping(const struct powers *pw, double buyers)
{
    return tabled(pw->damping, buyers) ? pw->damping[(size_t)buyers] : damping_of(pw, buyers);
}

/* A table for `entries` items, and room for as many candidates, from the
 * scratch (grown if short) or, without one, allocated for the call. */
static void table_init(struct table *t, struct patron_reco_scratch *sc, size_t entries,
                       struct slot ***cand)
{
    size_t cap = 16;
    unsigned bits = 4;
    while (cap < 2 * entries) {
        cap *= 2;
        bits++;
    }
    t->mask = cap - 1;
    t->shift = 64 - bits;
    size_t n_cand = entries ? entries : 1;
    if (!sc) {
        t->slots = patron_calloc(cap, sizeof(*t->slots));
        t->gen = 1;
        *cand = patron_malloc(n_cand * sizeof(**cand));
        return;
    }
    if (sc->cap < cap) {
        free(sc->slots);
        sc->slots = patron_calloc(cap, sizeof(*sc->slots));
        sc->cap = cap;
    } else if (sc->gen == UINT32_MAX) { /* stamps would repeat: clear once */
        memset(sc->slots, 0, sc->cap * sizeof(*sc->slots));
        sc->gen = 0;
    }
    if (sc->cand_cap < n_cand) {
        free(sc->cand);
        sc->cand = patron_malloc(n_cand * sizeof(*sc->cand));
        sc->cand_cap = n_cand;
    }
    t->slots = sc->slots;
    t->gen = ++sc->gen;
    *cand = sc->cand;
}

static bool slot_empty(const struct table *t, const struct slot *s)
{
    return s->gen != t->gen;
}

/* The item's slot: found, or the empty one where it belongs. The home slot
 * takes the high bits of a multiplicative mix: FNV-1a's low bits cluster on
 * ids that differ only at their end. */
static struct slot *table_find(const struct table *t, const char *item, size_t len, uint64_t h)
{
    for (size_t i = (size_t)((h * 0x9E3779B97F4A7C15ULL) >> t->shift);; i = (i + 1) & t->mask) {
        struct slot *s = &t->slots[i];
        if (slot_empty(t, s) ||
            (s->hash == h && s->len == len && patron_key_equal(s->item, item, len)))
            return s;
    }
}

/* ---- ranking ------------------------------------------------------------------ */

static bool better(const struct patron_reco_scored *a, const struct patron_reco_scored *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return strcmp(a->item, b->item) < 0;
}

/* A heap of the best k so far, the worst at the root. */
static void heap_offer(struct patron_reco_scored *h, size_t *n, size_t k,
                       struct patron_reco_scored x)
{
    size_t i;
    if (*n < k) {
        i = (*n)++;
        while (i > 0 && better(&h[(i - 1) / 2], &x)) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = x;
        return;
    }
    if (!better(&x, &h[0]))
        return;
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        const struct patron_reco_scored *worst = &x;
        if (l < *n && better(worst, &h[l])) {
            w = l;
            worst = &h[l];
        }
        if (r < *n && better(worst, &h[r]))
            w = r;
        if (w == i)
            break;
        h[i] = h[w];
        i = w;
    }
    h[i] = x;
}

static int scored_cmp(const void *a, const void *b)
{
    const struct patron_reco_scored *x = a, *y = b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* ---- exclusions ----------------------------------------------------------------- */

struct context {
    const struct patron_reco_request *rq;
    struct powers pw;         /* of the similarity: the call's config */
    double momentum_exponent; /* the config's trend_exponent; 0 for similar items */
    struct table t;           /* the profile's exclusions, then the candidates */
    struct slot **cand;       /* the candidates in the order met: what the scans walk */
    size_t n_cand;
    bool own; /* t.slots and cand are the call's (no scratch): freed at its end */
};

static void context_free(struct context *cx)
{
    if (cx->own) {
        free(cx->t.slots);
        free(cx->cand);
    }
}

static size_t profile_items(const struct patron_profile *p)
{
    if (!p)
        return 0;
    return (p->n_bought < PATRON_PROFILE_BOUGHT_MAX ? p->n_bought : PATRON_PROFILE_BOUGHT_MAX) +
           (p->n_cart < PATRON_PROFILE_CART_MAX ? p->n_cart : PATRON_PROFILE_CART_MAX);
}

static void exclude(struct table *t, const char *id)
{
    size_t len = strnlen(id, PATRON_ID_MAX + 1);
    uint64_t h = patron_hash64(id, len);
    struct slot *s = table_find(t, id, len, h);
    *s = (struct slot){
        .item = id, .len = (uint16_t)len, .hash = h, .gen = t->gen, .state = SLOT_EXCLUDED};
}

/* The table, sized for the profile's items and `more`, holding the profile's
 * exclusions (bought list and cart); cfg NULL: no similarity powers (the
 * similar-items call needs only the cosine). */
static void context_init(struct context *cx, const struct patron_reco_request *rq,
                         const struct patron_reco_config *cfg, size_t more)
{
    const struct patron_profile *p = rq->profile;
    cx->rq = rq;
    cx->pw = cfg ? powers_for(rq->scratch, cfg) : (struct powers){0}; /* similar: cosine only */
    cx->momentum_exponent = cfg ? cfg->trend_exponent : 0;
    table_init(&cx->t, rq->scratch, profile_items(p) + more, &cx->cand);
    cx->own = rq->scratch == NULL;
    cx->n_cand = 0;
    if (!p)
        return;
    for (size_t i = 0; i < p->n_bought && i < PATRON_PROFILE_BOUGHT_MAX; i++)
        exclude(&cx->t, p->bought[i]);
    for (size_t i = 0; i < p->n_cart && i < PATRON_PROFILE_CART_MAX; i++)
        exclude(&cx->t, p->cart[i].item_id);
}

/* Binary search of bought_earlier for the 32-bit fold of h (profile.h). */
static bool bought_earlier(const struct patron_profile *p, uint64_t h)
{
    uint32_t key = (uint32_t)(h ^ (h >> 32));
    size_t lo = 0, hi = p->n_bought_earlier;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->bought_earlier[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_bought_earlier && p->bought_earlier[lo] == key;
}

/* Fills s (a slot not in the table yet) with what is known of its item, and
 * whether it may be recommended at all (the profile's own exclusions are in
 * the table already). */
static void classify(const struct context *cx, struct slot *s, const struct patron_reco_fact *fact)
{
    const struct patron_reco_request *rq = cx->rq;
    struct patron_reco_item it = {0};
    bool known;
    if (fact) {
        known = fact->known;
        if (known)
            it = fact->item;
    } else {
        known = rq->lookup(rq->lookup_ud, s->item, s->len, s->hash, &it);
    }
    s->buyers = known && it.buyers > 0 ? (double)it.buyers : 0;
    s->buyers_pow =
        cx->pw.neighbour_exp == 0
            ? 1.0
            : power(cx->pw.neighbour, s->buyers >= 1 ? s->buyers : 1, -cx->pw.neighbour_exp);
    s->momentum = 1.0;
    if (known && rq->momentum && cx->momentum_exponent > 0) {
        double f = patron_momentum_factor(rq->momentum, it.trend, it.sold);
        s->momentum = cx->momentum_exponent == 1.0 ? f : pow(f, cx->momentum_exponent);
    }
    s->acc = 0;
    s->support = 0;
    bool excluded = s->len == 0 || s->len > PATRON_ID_MAX ||
                    (known && (it.out_of_stock || it.not_a_product)) ||
                    (rq->profile && bought_earlier(rq->profile, s->hash));
    if (rq->category)
        excluded |=
            !known || !it.category || !it.category[0] || strcmp(it.category, rq->category) != 0;
    s->state = excluded ? SLOT_EXCLUDED : SLOT_CANDIDATE;
}

/* The item's slot (len bytes, h their hash), classified (by fact if given,
 * else the lookup) and inserted on first sight. */
static struct slot *intern_h(struct context *cx, const char *item, size_t len, uint64_t h,
                             const struct patron_reco_fact *fact)
{
    struct slot *s = table_find(&cx->t, item, len, h);
    if (slot_empty(&cx->t, s)) {
        *s = (struct slot){.item = item, .len = (uint16_t)len, .hash = h, .gen = cx->t.gen};
        classify(cx, s, fact);
        if (s->state == SLOT_CANDIDATE)
            cx->cand[cx->n_cand++] = s; /* at most `more` (context_init) */
    }
    return s;
}

static struct slot *intern(struct context *cx, const char *item)
{
    size_t len = strnlen(item, PATRON_ID_MAX + 1);
    return intern_h(cx, item, len, patron_hash64(item, len), NULL);
}

/* A neighbour's slot, with the length, hash and facts its list carries if
 * any. */
static struct slot *intern_neighbour(struct context *cx, const struct patron_reco_neighbour *nb,
                                     const struct patron_reco_fact *fact)
{
    if (nb->len == 0 || nb->len > PATRON_ID_MAX) {
        size_t len = strnlen(nb->item, PATRON_ID_MAX + 1);
        return intern_h(cx, nb->item, len, patron_hash64(nb->item, len), fact);
    }
    return intern_h(cx, nb->item, nb->len, nb->hash, fact);
}

/* cos(a, b) from the count and both buyer counts: a count above a buyer
 * count (a customer counted twice, see graph.h) caps the cosine at 1. */
static double cosine(double count, double buyers_a, double buyers_b)
{
    double na = buyers_a > count ? buyers_a : count;
    double nb = buyers_b > count ? buyers_b : count;
    return count / sqrt(na * nb);
}

static bool config_valid(const struct patron_reco_config *cfg)
{
    return cfg->half_life_items > 0 && cfg->locality > 0 && cfg->asymmetry >= 0 &&
           cfg->asymmetry <= 1 && cfg->history_damping >= 0 && isfinite(cfg->history_damping) &&
           cfg->history_prior >= 0 && isfinite(cfg->history_prior) && cfg->trend_exponent >= 0 &&
           cfg->nearest >= 1 && cfg->shrink >= 0 && cfg->popularity >= 0 && cfg->evidence > 0 &&
           cfg->thin_count >= 0 && isfinite(cfg->thin_count) && isfinite(cfg->weight_purchase) &&
           isfinite(cfg->weight_cart) && isfinite(cfg->weight_view) &&
           isfinite(cfg->half_life_items) && isfinite(cfg->locality) &&
           isfinite(cfg->trend_exponent) && isfinite(cfg->shrink) && isfinite(cfg->popularity) &&
           isfinite(cfg->evidence);
}

/* A neighbour of one history item, before the k-nearest cut. */
struct near {
    struct slot *s;
    double sim;
    double count;
};

static bool nearer(const struct near *x, const struct near *y)
{
    if (x->sim != y->sim)
        return x->sim > y->sim;
    return strcmp(x->s->item, y->s->item) < 0;
}

/* Moves the k nearest of v[0 .. n) to its front, nearest first, and returns
 * k (< n). An insertion into the first k: most of the others lose their
 * first comparison, so this is about n comparisons for a small k. */
static size_t nearest_first(struct near *v, size_t n, size_t k)
{
    for (size_t i = 1; i < n; i++) {
        if (i >= k && !nearer(&v[i], &v[k - 1]))
            continue;
        struct near x = v[i];
        size_t j = i < k ? i : k - 1;
        if (i >= k)
            v[i] = v[k - 1]; /* the k-th nearest so far drops out */
        while (j > 0 && nearer(&x, &v[j - 1])) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return k;
}

/* Adds one history item's nearest candidates to the table; returns false
 * when the item is no evidence (not a product, or a bad weight). */
static bool expand(struct context *cx, const struct patron_reco_config *cfg,
                   const struct patron_reco_seed *seed, const struct patron_reco_list *l)
{
    const struct patron_reco_request *rq = cx->rq;
    if (!(seed->weight > 0) || !isfinite(seed->weight) || !seed->item)
        return false;
    struct patron_reco_item it = {0};
    size_t slen = strnlen(seed->item, PATRON_ID_MAX + 1);
    bool known = rq->lookup(rq->lookup_ud, seed->item, slen, patron_hash64(seed->item, slen), &it);
    if (known && it.not_a_product)
        return false;
    double buyers_a = known && it.buyers > 0 ? (double)it.buyers : 0;
    const struct powers *pw = &cx->pw;
    double seed_pow = power(pw->history, buyers_a >= 1 ? buyers_a : 1, -pw->history_exp);
    double weight = seed->weight * history_damping(pw, buyers_a);
    struct near v[PATRON_RECO_NEIGHBOURS_MAX];
    size_t n = 0, max = l->n < PATRON_RECO_NEIGHBOURS_MAX ? l->n : PATRON_RECO_NEIGHBOURS_MAX;
    for (size_t j = 0; j < max; j++) {
        const struct patron_reco_neighbour *nb = &l->v[j];
        if (!nb->item || !(nb->count > 0) || !isfinite(nb->count))
            continue;
        struct slot *s = intern_neighbour(cx, nb, l->facts ? &l->facts[j] : NULL);
        if (s->state != SLOT_CANDIDATE)
            continue;
        double c = nb->count; /* above a buyer count (counted twice): that count instead */
        double sim = power(pw->count, c, pw->count_exp) *
                     (c > buyers_a ? power(pw->history, c, -pw->history_exp) : seed_pow) *
                     (c > s->buyers ? power(pw->neighbour, c, -pw->neighbour_exp) : s->buyers_pow);
        v[n++] = (struct near){s, sim, c};
    }

    /* a thin list (its strongest pair seen fewer than thin_count times) has
     * no nearest neighbours worth the name: cosine would only pick its
     * rarest items; all count, and the evidence shrink weighs them */
    size_t keep = cfg->nearest;
    if (max > 0 && l->v[0].count < cfg->thin_count)
        keep = PATRON_RECO_NEIGHBOURS_MAX;
    if (n > keep)
        n = nearest_first(v, n, keep);
    for (size_t j = 0; j < n; j++) {
        v[j].s->acc += weight * v[j].sim;
        v[j].s->support += v[j].count;
    }
    return true;
}

int patron_reco_recommend(const struct patron_reco_request *rq,
                          const struct patron_reco_config *cfg, struct patron_reco_result *out)
{
    if (rq->limit < 1 || rq->limit > PATRON_RECO_LIMIT_MAX || !rq->lookup ||
        (rq->n_seeds && !rq->lists) || (rq->n_trending && !rq->trending) ||
        (rq->n_popular && !rq->popular) || !config_valid(cfg))
        return PATRON_EINVAL;
    size_t n_seeds = rq->n_seeds < PATRON_RECO_SEEDS_MAX ? rq->n_seeds : PATRON_RECO_SEEDS_MAX;
    size_t n_trending =
        rq->n_trending < PATRON_RECO_TRENDING_MAX ? rq->n_trending : PATRON_RECO_TRENDING_MAX;
    size_t n_popular =
        rq->n_popular < PATRON_RECO_POPULAR_SCAN ? rq->n_popular : PATRON_RECO_POPULAR_SCAN;
    size_t entries = n_popular;
    for (size_t i = 0; i < n_seeds; i++)
        entries += rq->lists[i].n < PATRON_RECO_NEIGHBOURS_MAX ? rq->lists[i].n
                                                               : PATRON_RECO_NEIGHBOURS_MAX;
    struct context cx;
    context_init(&cx, rq, cfg, entries + rq->limit);

    /* expand each history item through its nearest neighbours */
    double total_weight = 0;
    for (size_t i = 0; i < n_seeds; i++)
        if (expand(&cx, cfg, &rq->seeds[i], &rq->lists[i]))
            total_weight += rq->seeds[i].weight;

    /* popularity, relative to the best seller that may be recommended; only
     * with a history (an unknown customer gets what sells now, below). The
     * buyers are the item's facts where the lookup has them (fresher than
     * the list's), so that popularity stays within [0, 1]. */
    double top_buyers = 0;
    if (total_weight > 0 && cfg->popularity > 0)
        for (size_t i = 0, taken = 0; i < n_popular && taken < rq->limit; i++) {
            const struct patron_reco_trending *t = &rq->popular[i];
            if (!t->item || t->buyers <= 0)
                continue;
            struct slot *s = intern(&cx, t->item);
            if (s->buyers <= 0)
                s->buyers = (double)t->buyers;
            if (s->state != SLOT_CANDIDATE)
                continue;
            taken++;
            if (s->buyers > top_buyers)
                top_buyers = s->buyers;
        }

    /* the best CF candidate, momentum applied: the scale of the CF term,
     * and the evidence (its co-buyers) that sets popularity's weight */
    double top_cf = 0, evidence = 0;
    for (size_t i = 0; i < cx.n_cand; i++) {
        struct slot *s = cx.cand[i];
        if (!(s->acc > 0))
            continue;
        s->acc *= s->momentum;
        if (s->acc > top_cf) {
            top_cf = s->acc;
            evidence = s->support;
        }
    }
    /* the CF term is relative to the best candidate's and shrunk by the
     * evidence behind it (absolute: a sparse graph stays shrunk) */
    double pop_weight = cfg->popularity * cfg->evidence / (cfg->evidence + evidence);
    struct patron_reco_scored *top = out->items;
    size_t n_top = 0;
    for (size_t i = 0; i < cx.n_cand; i++) {
        const struct slot *s = cx.cand[i];
        double score = 0;
        if (s->acc > 0)
            score = s->acc / top_cf * s->support / (s->support + cfg->shrink);
        if (top_buyers > 0 && s->buyers > 0)
            score += pop_weight * (s->buyers < top_buyers ? s->buyers / top_buyers : 1.0);
        /* most lose to the heap's worst once it is full: no call for them */
        if (score > 0 && (n_top < rq->limit || score >= top[0].score))
            heap_offer(top, &n_top, rq->limit,
                       (struct patron_reco_scored){s->item, score, s->acc > 0});
    }
    size_t n_scored = n_top, n_cf = 0;
    double min_score = 0;
    for (size_t i = 0; i < n_scored; i++) {
        intern(&cx, top[i].item)->state = SLOT_CHOSEN;
        n_cf += top[i].cf;
        if (i == 0 || top[i].score < min_score)
            min_score = top[i].score;
    }

    /* top up from what sells now, below every scored item; only the items
     * chosen enter the table (at most limit of them) */
    double fill_max = 0;
    for (size_t i = 0; i < n_trending && n_top < rq->limit; i++) {
        const struct patron_reco_trending *t = &rq->trending[i];
        if (!t->item)
            continue;
        size_t len = strnlen(t->item, PATRON_ID_MAX + 1);
        uint64_t h = patron_hash64(t->item, len);
        struct slot *s = table_find(&cx.t, t->item, len, h);
        if (slot_empty(&cx.t, s)) {
            struct slot probe = {.item = t->item, .len = (uint16_t)len, .hash = h, .gen = cx.t.gen};
            classify(&cx, &probe, NULL);
            if (probe.state != SLOT_CANDIDATE)
                continue;
            *s = probe;
        } else if (s->state != SLOT_CANDIDATE) {
            continue;
        }
        s->state = SLOT_CHOSEN;
        double trend = isfinite(t->trend) && t->trend > 0 ? t->trend : 0;
        if (trend > fill_max)
            fill_max = trend;
        top[n_top++] = (struct patron_reco_scored){t->item, trend, false};
    }
    if (n_scored > 0)
        for (size_t i = n_scored; i < n_top; i++)
            top[i].score = fill_max > 0 ? 0.5 * min_score * top[i].score / fill_max : 0;

    qsort(top, n_top, sizeof(top[0]), scored_cmp);
    out->n = n_top;
    out->strategy = n_cf == 0      ? PATRON_RECO_POPULAR
                    : n_top > n_cf ? PATRON_RECO_CF_POPULAR
                                   : PATRON_RECO_CF;
    context_free(&cx);
    return 0;
}

int patron_reco_similar(const char *item, const struct patron_reco_list *neighbours,
                        patron_reco_lookup_fn lookup, void *lookup_ud, size_t limit,
                        struct patron_reco_result *out)
{
    if (!item || !neighbours || (neighbours->n && !neighbours->v) || !lookup || limit < 1 ||
        limit > PATRON_RECO_LIMIT_MAX)
        return PATRON_EINVAL;
    struct patron_reco_request rq = {.lookup = lookup, .lookup_ud = lookup_ud};
    size_t n = neighbours->n < PATRON_RECO_SIMILAR_MAX ? neighbours->n : PATRON_RECO_SIMILAR_MAX;
    struct context cx;
    context_init(&cx, &rq, NULL, n + 1);
    struct slot *self = intern(&cx, item);
    double buyers_a = self->buyers;
    self->state = SLOT_EXCLUDED;

    size_t n_top = 0;
    for (size_t j = 0; j < n; j++) {
        const struct patron_reco_neighbour *nb = &neighbours->v[j];
        if (!nb->item || !(nb->count > 0) || !isfinite(nb->count))
            continue;
        struct slot *s =
            intern_neighbour(&cx, nb, neighbours->facts ? &neighbours->facts[j] : NULL);
        if (s->state != SLOT_CANDIDATE)
            continue;
        s->state = SLOT_CHOSEN; /* the first occurrence counts */
        heap_offer(
            out->items, &n_top, limit,
            (struct patron_reco_scored){nb->item, cosine(nb->count, buyers_a, s->buyers), true});
    }
    qsort(out->items, n_top, sizeof(out->items[0]), scored_cmp);
    out->n = n_top;
    out->strategy = PATRON_RECO_CF;
    context_free(&cx);
    return 0;
}
