#include "patron/clock_redis.h"

#include <stdlib.h>

#include "patron/num.h"

int64_t patron_clock_advance_from_reply(struct patron_clock *c, const redisReply *reply,
                                        bool *all_idle)
{
    if (all_idle)
        *all_idle = false;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return c->event_now_ms;
    size_t n = reply->elements / 2;
    if (n > PATRON_CLOCK_PARTITIONS_MAX)
        n = PATRON_CLOCK_PARTITIONS_MAX;
    struct patron_partition_time *parts = patron_calloc(n ? n : 1, sizeof(*parts));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = reply->element[2 * i + 1];
        if (v->type == REDIS_REPLY_STRING &&
            patron_clock_value_decode(v->str, (size_t)v->len, &parts[k]) == 0)
            k++;
    }
    bool idle = k > 0;
    for (size_t i = 0; i < k; i++)
        idle = idle && parts[i].idle;
    if (all_idle)
        *all_idle = idle;
    int64_t now = patron_clock_advance(c, patron_clock_watermark(parts, k));
    free(parts);
    return now;
}

int64_t patron_clock_out_offset(const redisReply *reply, int32_t partition)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        int64_t p, offset;
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            patron_parse_i64(f->str, (size_t)f->len, 0, INT32_MAX, &p) == 0 && p == partition &&
            patron_parse_i64(v->str, (size_t)v->len, 0, INT64_MAX, &offset) == 0)
            return offset;
    }
    return 0;
}
