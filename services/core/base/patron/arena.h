/*
 * A bump allocator for memory that dies all at once (a batch's decoded
 * events, replies and messages): thousands of malloc/free pairs less.
 *
 * Memory comes in chunks of PATRON_ARENA_CHUNK bytes; an allocation larger
 * than that gets a chunk of its own. patron_arena_free returns the
 * standard chunks to a spares list shared by the arenas of one owner, up to
 * the list's bound, and frees the rest: the next arenas reuse them instead
 * of asking malloc for large blocks again (which is what fragments its heap).
 *
 * Guarantees:
 * - Every pointer returned is aligned for any type (max_align_t) and stays
 *   valid, unmoved, until patron_arena_free; nothing is freed one by one.
 * - An allocation that fits the current chunk's room takes it; one that
 *   does not gets a new chunk, which becomes the current one, unless the
 *   allocation is more than half a chunk: then its chunk goes behind the
 *   current one, which keeps its room for the small allocations that
 *   follow.
 * - A spares list never holds more than its max chunks.
 * Out of memory aborts (common.h); so does a calloc whose size overflows.
 *
 * Ownership: the caller owns the arena and the spares list; an arena
 * borrows its spares list, which must outlive it (free every arena before
 * patron_arena_spares_free). Not thread-safe: one thread per spares list.
 */
#ifndef PATRON_ARENA_H
#define PATRON_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "patron/common.h"

/* Bytes of a standard chunk (the data, not counting the chunk's header). */
#define PATRON_ARENA_CHUNK ((size_t)256 << 10)

struct patron_arena_chunk {
    struct patron_arena_chunk *next;
    size_t used, cap; /* bytes of data */
    max_align_t data[];
};

/* Standard chunks kept for the next arenas, max at most. */
struct patron_arena_spares {
    struct patron_arena_chunk *head;
    size_t count, max;
};

struct patron_arena {
    struct patron_arena_chunk *head; /* where allocations go; NULL when empty */
    struct patron_arena_spares *spares;
    size_t bytes; /* data bytes of the chunks held: what the arena costs */
};

/* An empty spares list that keeps max chunks at most (0: none). */
void patron_arena_spares_init(struct patron_arena_spares *s, size_t max);

/* Frees the spare chunks; the list is empty and usable again after. */
void patron_arena_spares_free(struct patron_arena_spares *s);

/* An empty arena that takes and returns chunks through spares (borrowed;
 * NULL: none, every chunk goes back to malloc). Allocates nothing. */
void patron_arena_init(struct patron_arena *a, struct patron_arena_spares *spares);

/* The arena's memory back to the spares list (the standard chunks, while
 * it has room) or to malloc; the arena is empty and usable again after. */
void patron_arena_free(struct patron_arena *a);

/* The slow path of patron_arena_alloc: a new chunk. n is already rounded. */
void *patron_arena_alloc_chunk(struct patron_arena *a, size_t n);

/* n bytes (n == 0 is valid: a pointer not to be dereferenced), aligned for
 * any type; a size no chunk can hold aborts. Inline: the hot path of its
 * callers is a bump of one counter. */
static inline void *patron_arena_alloc(struct patron_arena *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        abort(); /* as malloc failing: sizes here come from bounded input */
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct patron_arena_chunk *c = a->head;
    if (c && c->cap - c->used >= n) {
        void *p = (char *)c->data + c->used;
        c->used += n;
        return p;
    }
    return patron_arena_alloc_chunk(a, n);
}

/* The data bytes of the chunks the arena holds (used or not): what it
 * costs in memory, for a caller that bounds it. */
static inline size_t patron_arena_bytes(const struct patron_arena *a)
{
    return a->bytes;
}

/* count * n zeroed bytes; aborts when the product overflows. */
void *patron_arena_calloc(struct patron_arena *a, size_t count, size_t n);

#endif
