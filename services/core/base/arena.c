/* The bump allocator (see patron/arena.h for the guarantees). */
#include "patron/arena.h"

#include <stdlib.h>
#include <string.h>

void patron_arena_spares_init(struct patron_arena_spares *s, size_t max)
{
    s->head = NULL;
    s->count = 0;
    s->max = max;
}

void patron_arena_spares_free(struct patron_arena_spares *s)
{
    for (struct patron_arena_chunk *c = s->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    s->head = NULL;
    s->count = 0;
}

void patron_arena_init(struct patron_arena *a, struct patron_arena_spares *spares)
{
    a->head = NULL;
    a->spares = spares;
    a->bytes = 0;
}

void *patron_arena_alloc_chunk(struct patron_arena *a, size_t n)
{
    struct patron_arena_spares *s = a->spares;
    size_t cap = n > PATRON_ARENA_CHUNK ? n : PATRON_ARENA_CHUNK;
    struct patron_arena_chunk *c;
    if (cap == PATRON_ARENA_CHUNK && s && s->head) {
        c = s->head;
        s->head = c->next;
        s->count--;
    } else {
        c = patron_malloc(sizeof(*c) + cap);
        c->cap = cap;
    }
    c->used = n;
    a->bytes += c->cap;
    if (a->head && n > PATRON_ARENA_CHUNK / 2) {
        c->next = a->head->next; /* a big one-off: the head keeps its room */
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c->data;
}

void *patron_arena_calloc(struct patron_arena *a, size_t count, size_t n)
{
    if (n && count > SIZE_MAX / n)
        abort(); /* as patron_calloc */
    void *p = patron_arena_alloc(a, count * n);
    memset(p, 0, count * n);
    return p;
}

void patron_arena_free(struct patron_arena *a)
{
    struct patron_arena_spares *s = a->spares;
    for (struct patron_arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        if (c->cap == PATRON_ARENA_CHUNK && s && s->count < s->max) {
            c->next = s->head;
            s->head = c;
            s->count++;
        } else {
            free(c);
        }
    }
    a->head = NULL;
    a->bytes = 0;
}
