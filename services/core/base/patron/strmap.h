/*
 * A string-keyed hash map (open addressing, linear probing, backward-shift
 * deletion). Keys are BORROWED: the map stores the pointer and length, and
 * the caller keeps the bytes alive and unchanged while the entry exists.
 * Values are opaque pointers the map never frees.
 */
#ifndef PATRON_STRMAP_H
#define PATRON_STRMAP_H

#include "patron/common.h"

struct patron_strmap_slot {
    const char *key;
    size_t len;
    uint64_t hash;
    void *value;
};

struct patron_strmap {
    struct patron_strmap_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

uint64_t patron_hash64(const void *data, size_t len); /* FNV-1a, 64 bits */

/* a[0 .. n) == b[0 .. n), inline: a probe that found an equal hash confirms
 * an id of a few bytes, where a call to memcmp costs more than the compare. */
static inline bool patron_key_equal(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

void patron_strmap_init(struct patron_strmap *m);
void patron_strmap_free(struct patron_strmap *m);
void patron_strmap_clear(struct patron_strmap *m);
void *patron_strmap_get(const struct patron_strmap *m, const char *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. */
void *patron_strmap_put(struct patron_strmap *m, const char *key, size_t len, void *value);
/* Removes; returns the removed value or NULL. */
void *patron_strmap_del(struct patron_strmap *m, const char *key, size_t len);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
