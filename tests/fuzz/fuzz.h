/*
 * What the libFuzzer targets share: a check that fails loudly (libFuzzer
 * saves the input as a crash on abort), an allocator for the hand-written
 * protobuf decoders, and a byte reader for inputs that carry their own
 * parameters. Test code, not part of the core: the fuzzer's own state is
 * global by nature (one LLVMFuzzerTestOneInput per process).
 */
#ifndef PATRON_FUZZ_H
#define PATRON_FUZZ_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken property: say which and abort, so that the input is kept. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Every block its own malloc (ASan sees past its end), all freed at once by
 * fuzz_arena_reset: what patron_event_unpack asks of its allocator. Frees
 * are counted, never done: the decoder must not call them. */
struct fuzz_arena {
    void **blocks;
    size_t n, cap, frees;
};

static inline void *fuzz_arena_alloc(void *ud, size_t n)
{
    struct fuzz_arena *a = ud;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->blocks = realloc(a->blocks, a->cap * sizeof(*a->blocks));
        FUZZ_CHECK(a->blocks, "out of memory");
    }
    void *p = malloc(n ? n : 1);
    FUZZ_CHECK(p, "out of memory");
    a->blocks[a->n++] = p;
    return p;
}

static inline void fuzz_arena_free_one(void *ud, void *p)
{
    (void)p;
    ((struct fuzz_arena *)ud)->frees++;
}

static inline void fuzz_arena_reset(struct fuzz_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    memset(a, 0, sizeof(*a));
}

/* Reads an input front to back; past its end every read gives zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t len;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->len == 0)
        return 0;
    in->len--;
    return *in->p++;
}

/* The next n bytes (fewer at the end), consumed. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t *n)
{
    if (*n > in->len)
        *n = in->len;
    const uint8_t *p = in->p;
    in->p += *n;
    in->len -= *n;
    return p;
}

#endif
