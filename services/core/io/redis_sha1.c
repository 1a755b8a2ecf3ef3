/*
 * The parts of redis.h that need no connection: SHA-1, by which Redis names
 * scripts, and the reading of integer replies.
 */
#include <string.h>

#include "patron/num.h"
#include "patron/redis.h"

/* ---- SHA-1 (FIPS 180-4), for script names ------------------------------------ */

struct sha1 {
    uint32_t h[5];
    uint64_t bytes;
    unsigned char block[64];
    size_t fill;
};

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(struct sha1 *c, const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4], cc = c->h[2];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ cc ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ cc ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = rol32(b, 30);
        b = a;
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

static void sha1_update(struct sha1 *c, const unsigned char *p, size_t len)
{
    c->bytes += len;
    while (len > 0) {
        size_t n = 64 - c->fill < len ? 64 - c->fill : len;
        memcpy(c->block + c->fill, p, n);
        c->fill += n;
        p += n;
        len -= n;
        if (c->fill == 64) {
            sha1_block(c, c->block);
            c->fill = 0;
        }
    }
}

void patron_sha1_hex(const void *data, size_t len, char out[41])
{
    struct sha1 c = {.h = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0}};
    sha1_update(&c, data, len);
    uint64_t bits = c.bytes * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = c.fill < 56 ? 56 - c.fill : 120 - c.fill;
    for (int i = 0; i < 8; i++)
        pad[padlen + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_update(&c, pad, padlen + 8);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        unsigned char byte = (unsigned char)(c.h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[40] = '\0';
}

int patron_reply_i64(const redisReply *r, int64_t min, int64_t max, int64_t *out)
{
    if (!r)
        return PATRON_EINVAL;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < min || r->integer > max)
            return PATRON_EINVAL;
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING)
        return PATRON_EINVAL;
    return patron_parse_i64(r->str, r->len, min, max, out);
}

bool patron_reply_wrong_type(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->len >= 9 && memcmp(r->str, "WRONGTYPE", 9) == 0;
}
