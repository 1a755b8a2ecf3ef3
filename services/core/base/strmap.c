#include "patron/strmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t patron_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void patron_strmap_init(struct patron_strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void patron_strmap_free(struct patron_strmap *m)
{
    free(m->slots);
    patron_strmap_init(m);
}

void patron_strmap_clear(struct patron_strmap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof(*m->slots));
    m->count = 0;
}

static size_t find(const struct patron_strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct patron_strmap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return i;
    }
}

void *patron_strmap_get(const struct patron_strmap *m, const char *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    const struct patron_strmap_slot *s = &m->slots[find(m, key, len, patron_hash64(key, len))];
    return s->key ? s->value : NULL;
}

static void grow(struct patron_strmap *m)
{
    struct patron_strmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    m->slots = patron_calloc(m->cap, sizeof(*m->slots));
    m->count = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key) {
            m->slots[find(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash)] = old.slots[i];
            m->count++;
        }
    }
    free(old.slots);
}

void *patron_strmap_put(struct patron_strmap *m, const char *key, size_t len, void *value)
{
    /* keep the load under 70% so probes stay short */
    if ((m->count + 1) * 10 > m->cap * 7)
        grow(m);
    uint64_t h = patron_hash64(key, len);
    struct patron_strmap_slot *s = &m->slots[find(m, key, len, h)];
    if (s->key) {
        void *prev = s->value;
        s->key = key; /* the newest owner of the bytes */
        s->value = value;
        return prev;
    }
    *s = (struct patron_strmap_slot){.key = key, .len = len, .hash = h, .value = value};
    m->count++;
    return NULL;
}

void *patron_strmap_del(struct patron_strmap *m, const char *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, len, patron_hash64(key, len));
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    /* backward-shift: pull later entries of the cluster into the hole */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* j may move into the hole unless its home lies cyclically in (hole, j] */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (struct patron_strmap_slot){0};
    m->count--;
    return value;
}
