/*
 * JSON log lines: one object per line, e.g.
 *   {"ts":"2026-11-24T19:20:56.123Z","level":"info","svc":"patron-ingest","msg":"...",...}
 *
 * The logger is a plain struct the caller owns (no globals); it borrows
 * `service` and `out`, which must outlive it. A line is built in a bounded
 * stack buffer (PATRON_LOG_LINE_MAX) and written with one fwrite, so lines
 * from one process never interleave. A line that would not fit is cut at a
 * JSON-safe point and marked "truncated":true, so every line stays valid JSON.
 * Not thread-safe beyond what stdio gives; services log from their loop.
 */
#ifndef PATRON_LOG_H
#define PATRON_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "patron/common.h"

enum patron_log_level {
    PATRON_LOG_DEBUG = 0,
    PATRON_LOG_INFO = 1,
    PATRON_LOG_WARN = 2,
    PATRON_LOG_ERROR = 3,
};

/* Bytes per line, the newline included. */
#define PATRON_LOG_LINE_MAX 4096

struct patron_log {
    const char *service; /* borrowed */
    int level;           /* lines below this level are dropped */
    FILE *out;           /* borrowed; stderr in services */
};

void patron_log_init(struct patron_log *log, const char *service, int level, FILE *out);

/* "debug", "info", "warn" (or "warning"), "error", any case. */
int patron_log_level_parse(const char *s, int *level) PATRON_MUST_USE;
const char *patron_log_level_name(int level);

static inline bool patron_log_enabled(const struct patron_log *log, int level)
{
    return level >= log->level;
}

/* `fields_fmt` (NULL for none) formats extra JSON members without braces or
 * leading comma, e.g. "\"partition\":%d"; the caller escapes strings it puts
 * there (patron_json_escape). If the fields do not fit in the line they are
 * dropped, never cut. */
void patron_log(const struct patron_log *log, int level, const char *msg, const char *fields_fmt,
                ...) PATRON_PRINTF(4, 5);
void patron_logv(const struct patron_log *log, int level, const char *msg, const char *fields_fmt,
                 va_list ap) PATRON_PRINTF(4, 0);

/* Escapes `src` for the inside of a JSON string ("..." not included): quote,
 * backslash and control characters are escaped, invalid UTF-8 bytes become
 * \ufffd (input from the network is not trusted to be UTF-8). Writes at most
 * cap - 1 bytes plus a NUL (cap > 0), cutting only between characters, never
 * inside an escape or a UTF-8 sequence. Returns the bytes written, NUL not
 * counted. `*consumed`, when not NULL, receives how many input bytes made it,
 * so that a caller can tell a cut (consumed < len). */
size_t patron_json_escape(char *dst, size_t cap, const char *src);
size_t patron_json_escape_n(char *dst, size_t cap, const char *src, size_t len, size_t *consumed);

#endif
