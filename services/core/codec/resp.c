/*
 * RESP, the Redis protocol, where Patron reads it itself (see resp.h).
 */
#include "patron/resp.h"

/* A decimal after `p[0] == type`, up to "\r\n" within `end`: the count of an
 * array or the length of a bulk string. Advances *p past the "\r\n". */
static int read_header(const char **p, const char *end, char type, size_t limit, size_t *out)
{
    const char *q = *p;
    if (q >= end || *q != type)
        return PATRON_EINVAL;
    q++;
    size_t v = 0, digits = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        size_t d = (size_t)(*q - '0');
        if (d > limit || v > (limit - d) / 10)
            return PATRON_EINVAL;
        v = v * 10 + d;
        q++;
        digits++;
    }
    if (digits == 0 || end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return PATRON_EINVAL;
    *p = q + 2;
    *out = v;
    return 0;
}

int patron_resp_split(const char *resp, size_t len, const char **argv, size_t *lens, size_t max)
{
    if (!resp)
        return PATRON_EINVAL;
    const char *p = resp, *end = resp + len;
    size_t n;
    if (read_header(&p, end, '*', PATRON_RESP_ARGS_MAX, &n) < 0 || n == 0)
        return PATRON_EINVAL;
    bool fill = n <= max && argv && lens;
    for (size_t i = 0; i < n; i++) {
        size_t blen;
        if (read_header(&p, end, '$', len, &blen) < 0 || (size_t)(end - p) < blen ||
            (size_t)(end - p) - blen < 2 || p[blen] != '\r' || p[blen + 1] != '\n')
            return PATRON_EINVAL;
        if (fill) {
            argv[i] = p;
            lens[i] = blen;
        }
        p += blen + 2;
    }
    return p == end ? (int)n : PATRON_EINVAL;
}
