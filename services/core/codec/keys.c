#include "patron/keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "patron/clock.h"

/* None today: patron-trigger keeps its per-customer state under the
 * partition's tag and deletes it on the erasure's ProfileUpdate itself. */
const char *const PATRON_CUSTOMER_KEY_SUFFIXES[] = {NULL};

static int key_format(char *dst, size_t cap, const char *prefix, const char *id, size_t id_len,
                      const char *suffix)
{
    if (id_len > PATRON_ID_MAX)
        return PATRON_ETOOBIG;
    /* "{prefix:id}" [":suffix"], by hand: snprintf showed in ingest's profile */
    size_t plen = strlen(prefix), slen = suffix ? strlen(suffix) : 0;
    size_t n = 1 + plen + 1 + id_len + 1 + (suffix ? 1 + slen : 0);
    if (n >= cap)
        return PATRON_ETOOBIG;
    char *p = dst;
    *p++ = '{';
    memcpy(p, prefix, plen);
    p += plen;
    *p++ = ':';
    memcpy(p, id, id_len);
    p += id_len;
    *p++ = '}';
    if (suffix) {
        *p++ = ':';
        memcpy(p, suffix, slen);
        p += slen;
    }
    *p = '\0';
    return (int)n;
}

int patron_key_customer(char *dst, size_t cap, const char *customer_id, size_t id_len)
{
    return key_format(dst, cap, "c", customer_id, id_len, NULL);
}

int patron_key_customer_sub(char *dst, size_t cap, const char *customer_id, size_t id_len,
                            const char *suffix)
{
    return key_format(dst, cap, "c", customer_id, id_len, suffix);
}

int patron_key_visitor(char *dst, size_t cap, const char *anonymous_id, size_t id_len)
{
    return key_format(dst, cap, "v", anonymous_id, id_len, NULL);
}

int patron_key_item(char *dst, size_t cap, const char *item_id, size_t id_len)
{
    return key_format(dst, cap, "i", item_id, id_len, NULL);
}

int patron_key_item_cooc(char *dst, size_t cap, const char *item_id, size_t id_len)
{
    return key_format(dst, cap, "i", item_id, id_len, "co");
}

uint64_t patron_profile_version_get(const void *value, size_t len)
{
    if (len < PATRON_PROFILE_VERSION_LEN)
        return 0;
    const unsigned char *b = value;
    uint64_t v = 0;
    for (int i = 0; i < PATRON_PROFILE_VERSION_LEN; i++)
        v = (v << 8) | b[i];
    return v;
}

void patron_profile_version_put(void *dst, uint64_t version)
{
    unsigned char *b = dst;
    for (int i = PATRON_PROFILE_VERSION_LEN - 1; i >= 0; i--) {
        b[i] = (unsigned char)(version & 0xff);
        version >>= 8;
    }
}

int patron_key_trigger(char *dst, size_t cap, int32_t partition, const char *suffix)
{
    int n = snprintf(dst, cap, "{tp:%" PRId32 "}:%s", partition, suffix);
    return n < 0 || (size_t)n >= cap ? PATRON_ETOOBIG : n;
}

int patron_key_trigger_customer(char *dst, size_t cap, int32_t partition, const char *customer_id,
                                size_t id_len)
{
    if (id_len > PATRON_ID_MAX)
        return PATRON_ETOOBIG;
    int n = snprintf(dst, cap, "{tp:%" PRId32 "}:c:%.*s", partition, (int)id_len, customer_id);
    return n < 0 || (size_t)n >= cap ? PATRON_ETOOBIG : n;
}

int patron_key_trigger_daily(char *dst, size_t cap, int32_t partition, int64_t day)
{
    char date[PATRON_DATE_LEN + 1];
    if (patron_utc_date_format(day, date) != 0)
        return PATRON_EINVAL;
    int n = snprintf(dst, cap, "{tp:%" PRId32 "}:daily:%s", partition, date);
    return n < 0 || (size_t)n >= cap ? PATRON_ETOOBIG : n;
}

/* ---- hash slots ------------------------------------------------------------ */

uint16_t patron_crc16(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned patron_key_slot(const void *key, size_t len)
{
    const char *k = key;
    const char *open = len ? memchr(k, '{', len) : NULL;
    if (open) {
        size_t from = (size_t)(open - k) + 1;
        const char *close = memchr(k + from, '}', len - from);
        if (close && close > k + from) {
            k += from;
            len = (size_t)(close - k);
        }
    }
    return patron_crc16(k, len) & (PATRON_KEY_SLOTS - 1);
}
