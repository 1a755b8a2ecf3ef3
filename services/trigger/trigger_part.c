/*
 * The partitions of patron.profile-updates this pod owns: the queue of each
 * one's updates read and not yet in a job (offset order), taking one and
 * letting one go.
 *
 * Fencing: a partition runs no job until this pod has INCRed its epoch
 * ({tp:p}:epoch, TAKE below); every commit passes the epoch it took and the
 * commit script refuses any other, so a former owner still finishing a job
 * after a rebalance cannot write.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "patron/keys.h"
#include "trigger_internal.h"

/* Taking a partition: KEYS epoch, stream, offset. The new epoch fences the
 * former owner; the stream time (the latest event time committed) and the
 * offset (every update before it committed) let timers fire before the first
 * new update arrives: the consumer knows no position until it polls one. */
const char trigger_take_lua[] =
    /* each an integer or missing: anything else stops the partition
     * (trigger_poison.c) rather than be overwritten */
    "for i = 1, 3 do\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  if t ~= 'none' and (t ~= 'string' or redis.call('STRLEN', KEYS[i]) > 20 or\n"
    "      not string.match(redis.call('GET', KEYS[i]), '^%-?%d+$')) then\n"
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[i] .. ' is not an integer')\n"
    "  end\n"
    "end\n"
    "local e = redis.call('INCR', KEYS[1])\n"
    "return {e, redis.call('GET', KEYS[2]) or '0',\n"
    "        redis.call('GET', KEYS[3]) or '-1'}\n";

struct part *trigger_part_find(struct trigger *tr, int32_t id)
{
    for (struct part *p = tr->parts; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void part_queue_clear(struct part *p)
{
    for (size_t i = 0; i < p->q_n; i++) {
        rd_kafka_message_t *m = p->q[(p->q_head + i) % p->q_cap];
        p->tr->buffered_bytes -= m->len;
        rd_kafka_message_destroy(m);
    }
    p->tr->buffered -= p->q_n;
    p->q_n = p->q_head = 0;
}

void trigger_part_free(struct part *p)
{
    part_queue_clear(p);
    free(p->q);
    free(p);
}

static void part_grow(struct part *p)
{
    size_t cap = p->q_cap ? 2 * p->q_cap : 256;
    rd_kafka_message_t **q = patron_malloc(cap * sizeof(*q));
    for (size_t i = 0; i < p->q_n; i++)
        q[i] = p->q[(p->q_head + i) % p->q_cap];
    free(p->q);
    p->q = q;
    p->q_cap = cap;
    p->q_head = 0;
}

void trigger_part_push(struct part *p, rd_kafka_message_t *m)
{
    if (p->q_n == p->q_cap)
        part_grow(p);
    p->q[(p->q_head + p->q_n++) % p->q_cap] = m;
    p->tr->buffered++;
    p->tr->buffered_bytes += m->len; /* until destroyed, in the queue or a job */
}

rd_kafka_message_t *trigger_part_pop(struct part *p)
{
    rd_kafka_message_t *m = p->q[p->q_head];
    p->q_head = (p->q_head + 1) % p->q_cap;
    p->q_n--;
    p->tr->buffered--;
    return m;
}

void trigger_part_unshift(struct part *p, rd_kafka_message_t **msgs, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (p->q_n == p->q_cap)
            part_grow(p);
        p->q_head = (p->q_head + p->q_cap - 1) % p->q_cap;
        p->q[p->q_head] = msgs[i];
        p->q_n++;
        p->tr->buffered++;
    }
}

static void on_taken(void *ud, redisReply *reply)
{
    struct part *p = ud;
    p->epoch_asked = false;
    if (trigger_part_release_if_revoked(p))
        return;
    if (trigger_fault(reply) == TRIGGER_FAULT_PARTITION) {
        trigger_part_stop(p, reply);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return; /* the tick asks again */
    int64_t stream, offset;
    if (patron_reply_i64(reply->element[1], 0, INT64_MAX, &stream) == 0 && stream > p->stream_ms)
        p->stream_ms = stream;
    if (patron_reply_i64(reply->element[2], 0, INT64_MAX, &offset) == 0 && offset > p->next_offset)
        p->next_offset = offset;
    snprintf(p->epoch, sizeof(p->epoch), "%lld", reply->element[0]->integer);
    patron_log(p->tr->log, PATRON_LOG_INFO, "partition taken",
               "\"partition\":%d,\"epoch\":%lld,\"stream_ms\":%" PRId64 ",\"offset\":%" PRId64,
               p->id, reply->element[0]->integer, p->stream_ms, p->next_offset);
    trigger_kick(p);
}

/* Fencing first: once the INCR is done, a former owner cannot commit. */
void trigger_part_take(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->epoch[0] || p->epoch_asked || p->stopped || !tr->redis_up)
        return;
    char epoch[PATRON_KEY_MAX], stream[PATRON_KEY_MAX], offset[PATRON_KEY_MAX], id[16];
    if (patron_key_trigger(epoch, sizeof(epoch), p->id, "epoch") < 0 ||
        patron_key_trigger(stream, sizeof(stream), p->id, "stream") < 0 ||
        patron_key_trigger(offset, sizeof(offset), p->id, "offset") < 0)
        return;
    snprintf(id, sizeof(id), "%d", p->id);
    const char *argv[] = {epoch, stream, offset};
    if (patron_kv_command(tr->redis, trigger_reply_ignored, NULL, "SADD %s %s",
                          PATRON_KEY_TRIGGER_PARTITIONS, id) == 0 &&
        patron_kv_evalsha(tr->redis, tr->take, on_taken, p, 3, 0, argv, NULL) == 0)
        p->epoch_asked = true;
}

void trigger_part_assigned(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct trigger *tr = ud;
    for (int i = 0; i < parts->cnt; i++) {
        if (trigger_part_find(tr, parts->elems[i].partition))
            continue;
        struct part *p = patron_calloc(1, sizeof(*p));
        p->tr = tr;
        p->id = parts->elems[i].partition;
        p->next_offset = -1;
        p->rewind_offset = -1;
        p->last_msg_mono = patron_monotonic_ms();
        p->outbox_next_mono = 0; /* look at the outbox at once: a crash may have left some */
        p->next = tr->parts;
        tr->parts = p;
        trigger_part_take(p);
    }
    patron_log(tr->log, PATRON_LOG_INFO, "partitions assigned", "\"count\":%d", parts->cnt);
}

void trigger_part_revoked(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct trigger *tr = ud;
    for (int i = 0; i < parts->cnt; i++) {
        for (struct part **pp = &tr->parts; *pp; pp = &(*pp)->next) {
            struct part *p = *pp;
            if (p->id != parts->elems[i].partition)
                continue;
            *pp = p->next;
            p->revoked = true;
            part_queue_clear(p);
            if (!p->job && !p->epoch_asked && !p->sweeping && !p->outbox_busy && !p->stop_checking)
                trigger_part_free(p);
            break;
        }
    }
    patron_log(tr->log, PATRON_LOG_INFO, "partitions revoked", "\"count\":%d", parts->cnt);
}

/* A detached partition is freed when the last thing that points to it ends. */
bool trigger_part_release_if_revoked(struct part *p)
{
    if (!p->revoked)
        return false;
    if (!p->job && !p->epoch_asked && !p->sweeping && !p->outbox_busy && !p->stop_checking)
        trigger_part_free(p);
    return true;
}
