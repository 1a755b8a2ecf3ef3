#include "patron/log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

/* What a cut line ends with; always kept free at the end of the buffer. */
#define TRUNCATED_TAIL ",\"truncated\":true}\n"

void patron_log_init(struct patron_log *log, const char *service, int level, FILE *out)
{
    log->service = service;
    log->level = level;
    log->out = out;
}

int patron_log_level_parse(const char *s, int *level)
{
    if (!s)
        return PATRON_EINVAL;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(LEVEL_NAMES); i++) {
        if (strcasecmp(s, LEVEL_NAMES[i]) == 0) {
            *level = (int)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *level = PATRON_LOG_WARN;
        return 0;
    }
    return PATRON_EINVAL;
}

const char *patron_log_level_name(int level)
{
    if (level < PATRON_LOG_DEBUG || level > PATRON_LOG_ERROR)
        return "unknown";
    return LEVEL_NAMES[level];
}

size_t patron_json_escape_n(char *dst, size_t cap, const char *src, size_t len, size_t *consumed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;
    if (cap == 0) {
        if (consumed)
            *consumed = 0;
        return 0;
    }
    size_t room = cap - 1; /* the NUL */
    while (i < len) {
        unsigned char c = s[i];
        char esc[8];
        const char *piece = esc;
        size_t plen, in = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            plen = 2;
        } else if (c < 0x20) {
            esc[0] = '\\';
            plen = 2;
            switch (c) {
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xf];
                plen = 6;
            }
        } else if (c < 0x80) {
            piece = (const char *)s + i;
            plen = 1;
        } else {
            in = patron_utf8_seq_len(s + i, len - i);
            if (in) {
                piece = (const char *)s + i;
                plen = in;
            } else {
                piece = "\\ufffd";
                plen = 6;
                in = 1;
            }
        }
        if (plen > room - o)
            break;
        memcpy(dst + o, piece, plen);
        o += plen;
        i += in;
    }
    dst[o] = '\0';
    if (consumed)
        *consumed = i;
    return o;
}

size_t patron_json_escape(char *dst, size_t cap, const char *src)
{
    return patron_json_escape_n(dst, cap, src, strlen(src), NULL);
}

/* "2026-11-24T19:20:56.123Z" into dst (at least 25 bytes). */
static void format_ts(char *dst, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm)) {
        snprintf(dst, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(dst, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

void patron_logv(const struct patron_log *log, int level, const char *msg, const char *fields_fmt,
                 va_list ap)
{
    if (!patron_log_enabled(log, level) || !log->out)
        return;
    char line[PATRON_LOG_LINE_MAX];
    const size_t tail = sizeof(TRUNCATED_TAIL) - 1;
    /* Everything before `limit` may hold content; the rest is kept for the
     * closing quote and the tail, whatever happens. */
    const size_t limit = sizeof(line) - 1 - tail;
    bool truncated = false;
    char ts[96]; /* 24 bytes in practice; sized for any int the compiler imagines */
    format_ts(ts, sizeof(ts));

    int n = snprintf(line, limit, "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"", ts,
                     patron_log_level_name(level));
    size_t pos = (size_t)n; /* the prefix is short: it always fits */
    const char *svc = log->service ? log->service : "";
    size_t svc_len = strlen(svc), used;
    /* A service name is short; bound it so that the message keeps its room. */
    pos += patron_json_escape_n(line + pos, 128, svc, svc_len, &used);
    truncated |= used < svc_len;
    memcpy(line + pos, "\",\"msg\":\"", 9);
    pos += 9;
    const char *m = msg ? msg : "";
    size_t m_len = strlen(m);
    pos += patron_json_escape_n(line + pos, limit - pos, m, m_len, &used);
    truncated |= used < m_len;
    line[pos++] = '"';

    if (fields_fmt && fields_fmt[0] && pos + 1 < limit) {
        line[pos] = ',';
        size_t avail = limit - pos - 1;
        int f = vsnprintf(line + pos + 1, avail, fields_fmt, ap);
        if (f > 0 && (size_t)f < avail)
            pos += 1 + (size_t)f;
        else if (f != 0)
            truncated = true; /* dropped whole: a cut member could break the JSON */
    }
    if (truncated) {
        memcpy(line + pos, TRUNCATED_TAIL, tail);
        pos += tail;
    } else {
        line[pos++] = '}';
        line[pos++] = '\n';
    }
    /* A logger has nowhere to report its own failure to write. */
    (void)fwrite(line, 1, pos, log->out);
    (void)fflush(log->out);
}

void patron_log(const struct patron_log *log, int level, const char *msg, const char *fields_fmt,
                ...)
{
    va_list ap;
    va_start(ap, fields_fmt);
    patron_logv(log, level, msg, fields_fmt, ap);
    va_end(ap);
}
