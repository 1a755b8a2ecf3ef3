#include "patron/clock_redis.h"

#include <stdlib.h>

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
