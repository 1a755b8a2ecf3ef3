/* The pinnable LRU cache (see patron/lru.h for the guarantees). */
#include "patron/lru.h"

#include <stdlib.h>
#include <string.h>

void patron_lru_init(struct patron_lru *c, size_t max_entries, size_t max_bytes)
{
    patron_strmap_init(&c->map);
    c->newest = c->oldest = NULL;
    c->bytes = 0;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
}

static void lru_unlink(struct patron_lru *c, struct patron_lru_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct patron_lru *c, struct patron_lru_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static void lru_drop(struct patron_lru *c, struct patron_lru_entry *e)
{
    lru_unlink(c, e);
    (void)patron_strmap_del(&c->map, e->key, e->key_len);
    c->bytes -= sizeof(*e) + e->cap + e->key_len;
    free(e->value);
    free(e);
}

void patron_lru_clear(struct patron_lru *c)
{
    for (struct patron_lru_entry *e = c->newest, *older; e; e = older) {
        older = e->older;
        free(e->value);
        free(e);
    }
    patron_strmap_clear(&c->map);
    c->newest = c->oldest = NULL;
    c->bytes = 0;
}

void patron_lru_free(struct patron_lru *c)
{
    patron_lru_clear(c);
    patron_strmap_free(&c->map);
}

struct patron_lru_entry *patron_lru_peek(const struct patron_lru *c, const char *key,
                                         size_t key_len)
{
    return patron_strmap_get(&c->map, key, key_len);
}

struct patron_lru_entry *patron_lru_get(struct patron_lru *c, const char *key, size_t key_len)
{
    struct patron_lru_entry *e = patron_strmap_get(&c->map, key, key_len);
    if (e && e != c->newest) {
        lru_unlink(c, e);
        lru_push(c, e);
    }
    return e;
}

/* Evicts from the old end, never `keep`. A pinned entry stops it (ingest:
 * at most inflight x batch_max of those, all recent). */
static void lru_trim_except(struct patron_lru *c, const struct patron_lru_entry *keep)
{
    while (c->oldest && c->oldest != keep && c->oldest->pin == 0 &&
           (c->map.count > c->max_entries || c->bytes > c->max_bytes))
        lru_drop(c, c->oldest);
}

void patron_lru_trim(struct patron_lru *c)
{
    lru_trim_except(c, NULL);
}

struct patron_lru_entry *patron_lru_put(struct patron_lru *c, const char *key, size_t key_len,
                                        const uint8_t *value, size_t len, uint64_t pin)
{
    struct patron_lru_entry *e = patron_lru_get(c, key, key_len);
    if (!e) {
        e = patron_calloc(1, sizeof(*e) + key_len);
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
        c->bytes += sizeof(*e) + key_len;
        patron_strmap_put(&c->map, e->key, e->key_len, e);
        lru_push(c, e);
    }
    if (e->cap < len) {
        c->bytes += len - e->cap;
        e->cap = len;
        free(e->value);
        e->value = patron_malloc(len);
    }
    if (len)
        memcpy(e->value, value, len); /* an empty value may have no buffer */
    e->len = len;
    e->pin = pin;
    lru_trim_except(c, e);
    return e;
}
