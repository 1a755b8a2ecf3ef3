#include "patron/num.h"

#include <string.h>

int patron_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return PATRON_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PATRON_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PATRON_EINVAL;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return PATRON_EINVAL;
    *out = v;
    return 0;
}

int patron_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    if (!s || len == 0)
        return PATRON_EINVAL;
    bool neg = s[0] == '-';
    uint64_t mag;
    /* the magnitude of INT64_MIN is one more than INT64_MAX's */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (patron_parse_u64(s + neg, len - neg, neg ? 1 : 0, limit, &mag))
        return PATRON_EINVAL; /* also "-" alone, "-0" and "--1" */
    int64_t v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (v < min || v > max)
        return PATRON_EINVAL;
    *out = v;
    return 0;
}

int patron_parse_i64_str(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return s ? patron_parse_i64(s, strlen(s), min, max, out) : PATRON_EINVAL;
}
