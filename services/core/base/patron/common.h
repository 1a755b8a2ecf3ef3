/*
 * Shared conventions of the core library.
 *
 * Errors: functions that can fail return int, 0 on success and a negative
 * PATRON_E* code on failure; when a function that takes a callback fails,
 * the callback never runs. Out of memory aborts (as Redis does): a CRM
 * engine that limps on without memory would lose events silently.
 *
 * Threads: every service is a single libuv loop. Unless a header says
 * otherwise, a function may only be called from that loop's thread.
 */
#ifndef PATRON_COMMON_H
#define PATRON_COMMON_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define PATRON_MUST_USE __attribute__((warn_unused_result))
#define PATRON_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define PATRON_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum patron_error {
    PATRON_OK = 0,
    PATRON_EINVAL = -1,  /* bad argument or input */
    PATRON_ENOMEM = -2,  /* never returned: allocation failure aborts */
    PATRON_ETOOBIG = -3, /* input exceeds a documented maximum */
    PATRON_EIO = -4,     /* a peer (Kafka, Redis, socket) failed */
    PATRON_ENOTFOUND = -5,
    PATRON_ECONFLICT = -6, /* a compare-and-set lost the race */
    PATRON_EAGAIN = -7,    /* a queue is full for now: the same call may work later */
};

/* Identifiers (customer, event, item, order, category) are at most this many
 * bytes; longer ones are a contract violation and go to the DLQ. */
#define PATRON_ID_MAX 64

/* Allocation that aborts on failure (see above). */
void *patron_malloc(size_t n);
void *patron_calloc(size_t count, size_t n);
void *patron_realloc(void *p, size_t n);
char *patron_strdup(const char *s);
char *patron_strndup(const char *s, size_t n);

/* Copies src (NULL: "") into dst of cap > 0 bytes, cut at cap - 1 bytes,
 * always NUL-terminated. */
void patron_copy_str(char *dst, size_t cap, const char *src);

/* Length of the valid UTF-8 sequence (one character) at s, of at most
 * `left` bytes, or 0 when the bytes there are not one: strict UTF-8 (no
 * overlong forms, surrogates, nor code points past U+10FFFF). ASCII is 1. */
size_t patron_utf8_seq_len(const unsigned char *s, size_t left);

/* The length of the longest prefix of s[0 .. len) that is valid UTF-8, at
 * most max bytes, and ends on a character boundary: what to keep of a text
 * that must be cut to max bytes (a title in a fixed slot) and must stay
 * UTF-8 for whoever reads it next. Stops at the first invalid byte. */
size_t patron_utf8_prefix(const char *s, size_t len, size_t max);

/* Writes the decimal digits of v at p (room for 20) and returns the end;
 * no NUL. For hot paths that would otherwise call snprintf. */
char *patron_put_decimal(char *p, uint64_t v);

/* Writes a score as a JSON number at p (room for 32) and returns the end;
 * no NUL. From 1e-3 to 1e9: six decimals, trailing zeros dropped (four
 * significant digits at least: a score only ranks); elsewhere %.17g. For
 * the API's answers, where printf's exact 17 digits were 5% of a request. */
char *patron_put_score(char *p, double v);

/* A human name of a PATRON_E* code. */
const char *patron_strerror(int err);

#endif
