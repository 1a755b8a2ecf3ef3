/*
 * A least-recently-used cache of byte strings keyed by strings, bounded in
 * entries and in bytes, whose entries can be pinned.
 *
 * A pin is a nonzero number chosen by the caller (ingest: the seq of the
 * in-flight batch that wrote the value); 0 means evictable. A pinned entry
 * is never evicted, and it also stops eviction from reaching past it: the
 * cache evicts from the least recent end while it is over a bound and that
 * end is unpinned. So the cache exceeds its bounds only while pinned
 * entries hold it, by at most what they and the entries more recent than
 * them weigh.
 *
 * The bytes counted per entry are sizeof(struct patron_lru_entry), its key
 * length and its value's capacity (the largest value it held).
 *
 * Ownership: the cache owns its entries, their copies of the keys and of
 * the values. An entry pointer stays valid until the entry is evicted
 * (patron_lru_put, patron_lru_trim), or the cache cleared or freed; while
 * pinned, only clear and free end it. The fields of an entry are read-only
 * to the caller, but for `pin` through patron_lru_unpin. Not thread-safe.
 */
#ifndef PATRON_LRU_H
#define PATRON_LRU_H

#include "patron/common.h"
#include "patron/strmap.h"

struct patron_lru_entry {
    struct patron_lru_entry *newer, *older;
    uint64_t pin;   /* 0: evictable */
    uint8_t *value; /* len bytes, owned */
    size_t len, cap;
    size_t key_len;
    char key[]; /* not NUL-terminated */
};

struct patron_lru {
    struct patron_strmap map; /* key -> struct patron_lru_entry */
    struct patron_lru_entry *newest, *oldest;
    size_t bytes;
    size_t max_entries, max_bytes;
};

/* An empty cache; allocates nothing. */
void patron_lru_init(struct patron_lru *c, size_t max_entries, size_t max_bytes);

/* Drops every entry, pinned or not; the cache stays usable. */
void patron_lru_clear(struct patron_lru *c);

/* Drops every entry and frees the cache's memory (init again to reuse). */
void patron_lru_free(struct patron_lru *c);

/* The entry of key, or NULL; a hit becomes the most recent. */
struct patron_lru_entry *patron_lru_get(struct patron_lru *c, const char *key, size_t key_len);

/* The entry of key, or NULL, leaving the order as it is. */
struct patron_lru_entry *patron_lru_peek(const struct patron_lru *c, const char *key,
                                         size_t key_len);

/* Stores a copy of value[0 .. len) under key (a copy too) with the given
 * pin, replacing the entry's value and pin if there is one; the entry
 * becomes the most recent. Then evicts as patron_lru_trim does; the entry
 * returned is never evicted by this call, whatever its pin. */
struct patron_lru_entry *patron_lru_put(struct patron_lru *c, const char *key, size_t key_len,
                                        const uint8_t *value, size_t len, uint64_t pin);

/* Makes e evictable if pin is still its pin (a later writer may have
 * pinned it again); evicts nothing: call patron_lru_trim after a run of
 * these. */
static inline void patron_lru_unpin(struct patron_lru_entry *e, uint64_t pin)
{
    if (e->pin == pin)
        e->pin = 0;
}

/* Evicts from the least recent end while over a bound and unpinned. */
void patron_lru_trim(struct patron_lru *c);

#endif
