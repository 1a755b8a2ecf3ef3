/*
 * The item cache of recommendations (see reco_cache.h): a hash table with
 * backward-shift deletion and CLOCK eviction. No I/O.
 */
#include "reco_cache.h"

#include <stdlib.h>

size_t reco_pow2_at_least(size_t n)
{
    size_t cap = 16;
    while (cap < n)
        cap *= 2;
    return cap;
}

unsigned reco_shift_for(size_t cap)
{
    unsigned bits = 0;
    while (((size_t)1 << bits) < cap)
        bits++;
    return 64 - bits;
}

void reco_cache_init(struct reco_cache *c, size_t max)
{
    c->max = max;
    c->count = 0;
    c->hand = 0;
    c->pin = 0;
    size_t cap = reco_pow2_at_least(2 * max + 1);
    c->slots = patron_calloc(cap, sizeof(*c->slots));
    c->mask = cap - 1;
    c->shift = reco_shift_for(cap);
}

static void entry_free(struct reco_entry *e)
{
    free(e->nb);
    free(e->block);
    free(e);
}

/* Frees slot i's entry; backward-shift deletion keeps every probe chain
 * intact without tombstones. */
static void cache_remove(struct reco_cache *c, size_t i)
{
    entry_free(c->slots[i].e);
    c->slots[i] = (struct reco_cache_slot){0};
    c->count--;
    for (size_t j = (i + 1) & c->mask; c->slots[j].e; j = (j + 1) & c->mask) {
        size_t home = reco_home_slot(c->slots[j].hash, c->shift);
        /* the entry at j may fill the hole at i unless its home lies in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            c->slots[i] = c->slots[j];
            c->slots[j] = (struct reco_cache_slot){0};
            i = j;
        }
    }
}

/* CLOCK: the first entry past the hand that is neither referenced (the
 * referenced lose their mark as the hand passes) nor pinned. The table is
 * at most half full and a phase pins a bounded number, so this ends. */
static void cache_evict_one(struct reco_cache *c)
{
    for (;;) {
        size_t i = c->hand;
        c->hand = (c->hand + 1) & c->mask;
        struct reco_entry *e = c->slots[i].e;
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

struct reco_entry *reco_cache_put(struct reco_cache *c, const char *id, size_t len, uint64_t h)
{
    size_t i = reco_cache_find(c, id, len, h);
    if (c->slots[i].e)
        return c->slots[i].e;
    if (c->count >= c->max) {
        cache_evict_one(c);
        i = reco_cache_find(c, id, len, h); /* deletion may have moved the chain */
    }
    struct reco_entry *e = patron_calloc(1, sizeof(*e));
    memcpy(e->id, id, len);
    e->len = (uint8_t)len; /* ids are at most PATRON_ID_MAX bytes */
    e->hash = h;
    c->slots[i] = (struct reco_cache_slot){h, e};
    c->count++;
    return e;
}

void reco_cache_free(struct reco_cache *c)
{
    for (size_t i = 0; i <= c->mask; i++)
        if (c->slots[i].e)
            entry_free(c->slots[i].e);
    free(c->slots);
}
