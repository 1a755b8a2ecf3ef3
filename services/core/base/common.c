#include "patron/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *patron_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *patron_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    return p ? p : oom(count * n);
}

void *patron_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *patron_strdup(const char *s)
{
    return patron_strndup(s, strlen(s));
}

char *patron_strndup(const char *s, size_t n)
{
    char *d = patron_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void patron_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

size_t patron_utf8_seq_len(const unsigned char *s, size_t left)
{
    if (left == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

size_t patron_utf8_prefix(const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = patron_utf8_seq_len(u + i, len - i);
        if (n == 0 || i + n > max)
            break;
        i += n;
    }
    return i;
}

char *patron_put_decimal(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char *patron_put_score(char *p, double v)
{
    if (!(v >= 1e-3 && v < 1e9)) /* beyond, v * 1e6 is no exact integer */
        return p + snprintf(p, 32, "%.17g", v);
    uint64_t micro = (uint64_t)(v * 1e6 + 0.5);
    p = patron_put_decimal(p, micro / 1000000);
    uint64_t frac = micro % 1000000;
    if (frac) {
        int digits = 6;
        for (; frac % 10 == 0; frac /= 10)
            digits--;
        *p++ = '.';
        for (int i = digits - 1; i >= 0; i--, frac /= 10)
            p[i] = (char)('0' + frac % 10);
        p += digits;
    }
    return p;
}

const char *patron_strerror(int err)
{
    switch (err) {
    case PATRON_OK:
        return "ok";
    case PATRON_EINVAL:
        return "invalid argument";
    case PATRON_ENOMEM:
        return "out of memory";
    case PATRON_ETOOBIG:
        return "too big";
    case PATRON_EIO:
        return "i/o error";
    case PATRON_ENOTFOUND:
        return "not found";
    case PATRON_ECONFLICT:
        return "conflict";
    case PATRON_EAGAIN:
        return "try again";
    }
    return "unknown error";
}
