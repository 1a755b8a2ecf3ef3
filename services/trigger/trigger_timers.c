/*
 * Due timers. Each partition keeps its customers' next fire times in
 * {tp:p}:due (customer -> ms); the tick asks, for an idle partition, which
 * are due up to the partition's fire bound, and those customers (at most
 * SWEEP_CUSTOMERS_MAX) make a sweep job. The bound is the promise of
 * trigger.c: a timer due at T fires only once the partition has been
 * processed up to T, so the customer's updates from before T come first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "patron/keys.h"
#include "trigger_internal.h"

#define SWEEP_CUSTOMERS_MAX 256 /* customers per timer sweep */
#define IDLE_MS 2000            /* event clock: a partition silent this long is caught up */

struct due_req {
    struct part *p;
    int64_t bound_ms;
};

/* The bound up to which partition p's timers may fire: the partition's own
 * event time, since its updates are in event-time order; the clock's now
 * (in event mode, the now p's gate trusts: p has applied every update
 * delivered before it was written, a merged visitor's too)
 * only once there is nothing left to read — known, not assumed
 * (patron_clock_fire_bound) — and in event mode, once ingest too has applied
 * everything (its ProfileUpdates may be on their way while the clock already
 * counts their events) and p has been quiet a while. */
static int64_t fire_bound(struct trigger *tr, struct part *p)
{
    struct patron_fire_input in = {
        .kind = tr->clock.kind,
        .now_ms = tr->clock.kind == PATRON_CLOCK_EVENT
                      ? patron_clock_gate_pass(&p->gate, p->next_offset)
                      : patron_clock_now_ms(&tr->clock),
        .stream_ms = p->stream_ms,
        .queued = p->q_n > 0,
        .lag = -1,
        .quiet = patron_monotonic_ms() - p->last_msg_mono >= IDLE_MS,
        .all_idle = tr->clock_all_idle,
    };
    /* With no offset applied yet (by this pod, or by a former owner as
     * {tp:p}:offset says), the lag is from the consumer's position, which is
     * known only once a message of the partition was polled. */
    if (!in.queued)
        in.lag = patron_consumer_lag(tr->consumer, tr->cfg->topic_profile_updates, p->id,
                                     p->next_offset);
    return patron_clock_fire_bound(&in);
}

static void on_due(void *ud, redisReply *reply)
{
    struct due_req *r = ud;
    struct part *p = r->p;
    int64_t bound = r->bound_ms;
    free(r);
    p->sweeping = false;
    if (trigger_part_release_if_revoked(p))
        return;
    if (trigger_fault(reply) == TRIGGER_FAULT_PARTITION) {
        trigger_part_stop(p, reply); /* {tp:p}:due of another type */
        return;
    }
    if (p->tr->stopping || p->job || p->stopped || !reply || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements == 0)
        return;
    struct job *j = trigger_job_new(p, JOB_SWEEP, reply->elements);
    j->bound_ms = bound;
    struct patron_strmap idx;
    patron_strmap_init(&idx);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= PATRON_ID_MAX)
            (void)trigger_job_cust(j, e->str, (size_t)e->len, &idx);
    }
    patron_strmap_free(&idx);
    if (j->n_custs == 0) {
        trigger_job_finish(j);
        return;
    }
    trigger_job_load(j);
}

void trigger_sweep_check(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->sweeping || p->job || !p->epoch[0] || p->stopped)
        return;
    int64_t bound = fire_bound(tr, p);
    if (bound <= 0)
        return;
    char key[PATRON_KEY_MAX], b[24];
    if (patron_key_trigger(key, sizeof(key), p->id, "due") < 0)
        return;
    snprintf(b, sizeof(b), "%" PRId64, bound);
    struct due_req *r = patron_malloc(sizeof(*r));
    *r = (struct due_req){.p = p, .bound_ms = bound};
    if (patron_kv_command(tr->redis, on_due, r, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", key, b,
                          SWEEP_CUSTOMERS_MAX)) {
        free(r);
        return;
    }
    p->sweeping = true;
}
