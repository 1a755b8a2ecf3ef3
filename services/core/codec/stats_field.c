#include "patron/stats_field.h"

#include <string.h>

static bool campaign_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool variant_char(char c)
{
    return campaign_char(c) || (c >= 'A' && c <= 'Z');
}

static bool id_ok(const char *s, size_t len, size_t min, bool variant)
{
    if (len < min || len > PATRON_CAMPAIGN_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(variant ? variant_char(s[i]) : campaign_char(s[i])))
            return false;
    return true;
}

int patron_stats_field_format(char dst[PATRON_STATS_FIELD_MAX], const char *campaign,
                              const char *variant, enum patron_stat stat)
{
    size_t clen = strlen(campaign), vlen = strlen(variant);
    if (!id_ok(campaign, clen, 1, false) || !id_ok(variant, vlen, 0, true) ||
        (unsigned)stat >= PATRON_STATS)
        return PATRON_EINVAL;
    const char *name = patron_stat_name(stat);
    size_t nlen = strlen(name);
    char *p = dst;
    memcpy(p, campaign, clen);
    p += clen;
    *p++ = '|';
    memcpy(p, variant, vlen);
    p += vlen;
    *p++ = '|';
    memcpy(p, name, nlen + 1);
    return (int)(clen + vlen + nlen + 2);
}

int patron_stats_field_parse(const char *field, size_t len,
                             char campaign[PATRON_CAMPAIGN_ID_MAX + 1],
                             char variant[PATRON_CAMPAIGN_ID_MAX + 1], enum patron_stat *stat)
{
    const char *end = field + len;
    const char *bar1 = memchr(field, '|', len);
    if (!bar1)
        return PATRON_EINVAL;
    const char *bar2 = memchr(bar1 + 1, '|', (size_t)(end - bar1 - 1));
    if (!bar2)
        return PATRON_EINVAL;
    size_t clen = (size_t)(bar1 - field), vlen = (size_t)(bar2 - bar1 - 1);
    size_t nlen = (size_t)(end - bar2 - 1);
    if (!id_ok(field, clen, 1, false) || !id_ok(bar1 + 1, vlen, 0, true))
        return PATRON_EINVAL;
    for (unsigned i = 0; i < PATRON_STATS; i++) {
        const char *name = patron_stat_name((enum patron_stat)i);
        if (strlen(name) == nlen && memcmp(name, bar2 + 1, nlen) == 0) {
            memcpy(campaign, field, clen);
            campaign[clen] = '\0';
            memcpy(variant, bar1 + 1, vlen);
            variant[vlen] = '\0';
            *stat = (enum patron_stat)i;
            return 0;
        }
    }
    return PATRON_EINVAL; /* also a third '|': it is then part of the counter name */
}
