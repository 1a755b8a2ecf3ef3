/*
 * Erasures. The customer's trigger state may be on any partition of
 * patron.profile-updates: the one of the partition their events were
 * produced to, whatever partitioner the site used (the API's ErasureRequest
 * goes where murmur2 puts it; Python, Go, .NET and kcat default to CRC32).
 * So ingest publishes an applied erasure's ProfileUpdate (kind ERASURE) to
 * EVERY partition: the copy on the partition the erasure came from keeps
 * its place in that partition's order; the others are fan-out, marked
 * (ProfileUpdate.fanout, or a `partition` that is not the one it arrived
 * on).
 *
 * On any partition, an ERASURE deletes everything of the customer it holds,
 * in the job's one commit (trigger_commit.c): {tp:p}:c:<customer} (timers,
 * ledger, recent sends, touches) whatever it holds, readable or not; its
 * entry in {tp:p}:due; and every entry of {tp:p}:outbox committed before
 * this job, found through {tp:p}:outbox-index (`<customer>\0<message id>`,
 * score 0: a range, O(log n + the customer's entries), never a scan of the
 * outbox). A replayed erasure deletes what is there, i.e. nothing more, and
 * fails nothing.
 *
 * Timers: on the erasure's own partition the engine applies it as any
 * update, in that partition's event-time order: the timers due before the
 * erasure's time fire first, as they would have had the partition been
 * read sooner (a replay decides the same whatever the batching), then
 * nothing of the customer is left to fire. A fan-out copy is not part of
 * its partition's order: it fires nothing, and its event time does not move
 * the partition's stream time (timers fire up to it: trigger_timers.c).
 *
 * What an erasure cannot reach: a message already handed to the producer
 * (decided before the erasure) is delivered.
 */
#include <string.h>

#include "trigger_internal.h"

const char trigger_ack_lua[] = "redis.call('HDEL', KEYS[1], ARGV[1])\n"
                               "redis.call('ZREM', KEYS[2], ARGV[2] .. '\\0' .. ARGV[1])\n"
                               "return 1\n";

bool trigger_is_fanout(const Patron__V1__ProfileUpdate *u, int32_t partition)
{
    return u->kind == PATRON__V1__EVENT_KIND__ERASURE && (u->fanout || u->partition != partition);
}

void trigger_erase(struct job *j, struct cust *c, size_t i)
{
    struct trigger *tr = j->tr;
    bool fanout = trigger_is_fanout(j->updates[i], j->p->id);
    if (c->fault) {
        /* Deleted all the same: the customer asked to be forgotten. */
        patron_log(tr->log, PATRON_LOG_WARN, "erasure deletes a stored state it could not read",
                   "\"partition\":%d,\"reason\":\"%s\"", j->p->id, c->fault);
        c->fault = NULL;
    }
    patron_customer_state_free(&c->st);
    patron_customer_state_init(&c->st, c->id);
    c->changed = c->erased = c->purge = true;
    patron_counter_add(tr->m_erasures[fanout], 1);
    patron_counter_add(tr->m_updates_applied, 1);
    int64_t at = j->updates[i]->occurred_at_ms;
    if (!fanout && at > j->stream_ms)
        j->stream_ms = at;
}

void trigger_erased(struct job *j, struct cust *c)
{
    c->purge = true;
    patron_counter_add(j->tr->m_erasures[0], 1);
}

static void on_acked(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply; /* a miss is found in Kafka by the outbox check */
}

void trigger_outbox_ack(struct trigger *tr, int32_t partition, const char *customer_id,
                        const char *message_id)
{
    char outbox[PATRON_KEY_MAX], index[PATRON_KEY_MAX];
    if (patron_key_trigger(outbox, sizeof(outbox), partition, "outbox") < 0 ||
        patron_key_trigger(index, sizeof(index), partition, "outbox-index") < 0)
        return;
    const char *argv[] = {outbox, index, message_id, customer_id};
    size_t lens[] = {strlen(outbox), strlen(index), strlen(message_id), strlen(customer_id)};
    if (patron_kv_evalsha(tr->redis, tr->ack, on_acked, NULL, 2, 2, argv, lens)) {
        /* left in the outbox: the outbox check finds it in Kafka */
    }
}
