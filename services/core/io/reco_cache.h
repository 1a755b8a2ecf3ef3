/*
 * The recommendation fetcher's item cache (private to recommend_fetch.c and
 * its reco_*.c parts): per item, its facts (buyers, category, stock) and its
 * neighbour list, each stamped with when it was read. No I/O: the fetcher
 * fills it from Redis replies and decides, with reco_fresh and
 * reco_ageing, what to read again.
 *
 * Open addressing keyed by patron_hash64 (the hash the scorer passes to its
 * lookup), at most half full: at most `max` entries. When full, an insert
 * first evicts one entry by CLOCK (second chance for the referenced ones),
 * never one marked with c->pin: the request phase in progress sets pin to
 * its sequence number and marks the entries whose pointers it holds.
 * Pointers to other entries do not survive an insert. Memory: each entry is
 * one allocation plus one for its neighbours' ids.
 */
#ifndef PATRON_RECO_CACHE_H
#define PATRON_RECO_CACHE_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "patron/common.h"
#include "patron/recommend.h"
#include "patron/strmap.h"

/* A neighbour's facts in a block: packed by reco_block_pack, and its
 * recent sales (decayed to the momentum model's time) and all-time sales,
 * as floats: seven digits are more than a momentum factor needs, and a
 * block stays 16 bytes a neighbour. */
struct reco_block_cell {
    uint64_t packed;
    float recent, sold;
};

struct reco_entry {
    /* The first cache line holds what a probe and a lookup read (a probe
     * also reads the id, in the second line: reco_cache_prefetch fetches
     * both), so that a candidate costs two lines, not four. */
    uint64_t hash;
    uint64_t mark;    /* the last request phase that asked for it: dedupes, and pins it */
    int64_t facts_ms; /* monotonic ms the facts were read; 0: never */
    int64_t nb_ms;    /* ... the neighbour list */
    int64_t buyers;
    /* owned: at most PATRON_RECO_NEIGHBOURS_MAX, with their ids in the same
     * allocation (reco_reply_neighbours); NULL when none */
    struct patron_reco_neighbour *nb;
    uint32_t n_nb;
    uint8_t len;                  /* of id: at most PATRON_ID_MAX */
    bool referenced;              /* asked for since the clock hand last passed (eviction) */
    bool facts_queued, nb_queued; /* in a refresh-ahead batch (reco_read.c) */
    bool oos;
    bool np; /* not a product */
    char id[PATRON_ID_MAX + 1];
    char category[PATRON_ID_MAX + 1];
    /* Momentum's facts, read with the others when the fetcher weighs
     * momentum: the stored trend score (trend.h) and all-time purchase
     * lines; 0 when unknown. */
    double trend_raw;
    double sold;
    int64_t mom_ms; /* monotonic ms they were read; 0: never */
    /* The facts of the neighbours in nb, as a request that took this item
     * as a history item resolved them (reco_block_*): [n_nb], owned, NULL
     * when none. Only read while block_ms, their oldest read, is younger
     * than the facts' max age, so a request scoring this item's neighbours
     * skips their probes and breaks no freshness bound. A block also holds
     * the neighbours' momentum facts as of the momentum model it was made
     * under (block_model): a refit makes it stale. */
    struct reco_block_cell *block;
    int64_t block_ms;
    uint64_t block_model;
};

_Static_assert(PATRON_ID_MAX <= UINT8_MAX, "reco_entry.len is a byte");
_Static_assert(offsetof(struct reco_entry, id) <= 64, "a probe's fields share the first line");

/* A neighbour's facts in a block: buyers << 3 | not a product << 2 | out
 * of stock << 1 | known. No category: a block serves requests without a
 * category filter only. */
static inline uint64_t reco_block_pack(bool known, int64_t buyers, bool oos, bool np)
{
    uint64_t b = buyers > 0 ? (uint64_t)buyers : 0;
    if (b > (UINT64_MAX >> 3))
        b = UINT64_MAX >> 3;
    return b << 3 | (uint64_t)np << 2 | (uint64_t)oos << 1 | (uint64_t)known;
}

/* Drops e's block (its list changed, or it is being rebuilt). */
static inline void reco_block_drop(struct reco_entry *e)
{
    free(e->block);
    e->block = NULL;
    e->block_ms = 0;
}

struct reco_cache_slot {
    uint64_t hash; /* the entry's, so that a probe does not touch the entry */
    struct reco_entry *e;
};

struct reco_cache {
    struct reco_cache_slot *slots;
    size_t mask;
    unsigned shift; /* 64 - log2(capacity): home slots by Fibonacci hashing */
    size_t count, max;
    size_t hand;  /* the CLOCK hand: a slot index */
    uint64_t pin; /* entries marked with this are in use by the current phase */
};

/* The smallest power of two >= n, at least 16. */
size_t reco_pow2_at_least(size_t n);
/* 64 - log2(cap), cap a power of two: the shift of reco_home_slot. */
unsigned reco_shift_for(size_t cap);

/* FNV-1a's low bits cluster on ids that differ in their last characters
 * ("i123", "i124"): the home slot takes the high bits of a multiplicative
 * mix instead. Shared with the trending index. */
static inline size_t reco_home_slot(uint64_t h, unsigned shift)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> shift);
}

void reco_cache_init(struct reco_cache *c, size_t max);
void reco_cache_free(struct reco_cache *c);

/* The slot of the item (h its hash): its entry's, or the empty one that
 * ends its probe chain. Inline: the scorer's lookups go through it. */
static inline size_t reco_cache_find(const struct reco_cache *c, const char *id, size_t len,
                                     uint64_t h)
{
    for (size_t i = reco_home_slot(h, c->shift);; i = (i + 1) & c->mask) {
        const struct reco_cache_slot *s = &c->slots[i];
        if (!s->e || (s->hash == h && s->e->len == len && patron_key_equal(s->e->id, id, len)))
            return i;
    }
}

/* The item's entry, or NULL. */
static inline struct reco_entry *reco_cache_get(const struct reco_cache *c, const char *id,
                                                size_t len, uint64_t h)
{
    return c->slots[reco_cache_find(c, id, len, h)].e;
}

/* Starts fetching what a probe of e will read (its first two lines). */
static inline void reco_cache_prefetch(const struct reco_entry *e)
{
    __builtin_prefetch(e);
    __builtin_prefetch((const char *)e + 64);
}

/* The item's entry, created empty if absent (evicting one when full): never
 * NULL. Pointers to other entries survive only if they are pinned. */
struct reco_entry *reco_cache_put(struct reco_cache *c, const char *id, size_t len, uint64_t h);

/* Read at at_ms (monotonic; 0 never) and younger than max_age_ms at now_ms. */
static inline bool reco_fresh(int64_t at_ms, int64_t now_ms, int64_t max_age_ms)
{
    return at_ms != 0 && now_ms - at_ms < max_age_ms;
}

/* In the last quarter of its max age: worth re-reading ahead of its expiry
 * (an item used more often than every max_age_ms / 4 then never expires;
 * earlier would re-read the busy ones more often for nothing). */
static inline bool reco_ageing(int64_t at_ms, int64_t now_ms, int64_t max_age_ms)
{
    return now_ms - at_ms >= max_age_ms - max_age_ms / 4;
}

#endif
