/*
 * What cannot be applied, and what is only a failure for now. One rule:
 * a bad record never stalls the trigger, and a failure of Redis or Kafka
 * never loses one.
 *
 *   record        an update that does not decode within its bounds
 *                 (profile_update_decode.h), or whose customer's stored state
 *                 cannot be used (not a TriggerState, over
 *                 PATRON_ENGINE_STATE_MAX, of another Redis type, or another
 *                 customer's), or that the engine refuses: to patron.dlq
 *                 with the reason, and the partition moves on. A stored
 *                 state that cannot be used is never written over (an
 *                 erasure excepted: it deletes whatever is there) and blocks
 *                 no other customer: it is kept for an operator, logged and
 *                 counted (patron_trigger_bad_state_total); a sweep drops
 *                 its due entry so that the timers behind it fire.
 *   retry         Redis unreachable or failing, a timeout, Kafka not
 *                 acknowledging a dead letter, a new owner (fenced): the job
 *                 fails and is redone from its first update (trigger_jobs.c),
 *                 its effects all or nothing, so nothing is lost or doubled.
 *                 An error this file does not know is one of these: retried,
 *                 never dropped.
 *   partition     a key of the partition (epoch, due, outbox, its index,
 *                 stats, reco, stream, offset) of another Redis type, or not
 *                 an integer where one is due: no customer can be served
 *                 without it and no record is at fault, so the partition
 *                 stops (no job, no sweep, no outbox check), logged and
 *                 counted (patron_trigger_partitions_stopped); the others go
 *                 on and /readyz stays ready. Every STOP_CHECK_MS it looks at
 *                 its keys again and starts from its first update not
 *                 applied once they are usable: the fix is the operator's
 *                 (docs/operations.md), nothing is lost meanwhile.
 * trigger_fault() is where a Redis reply is told to be one or the other.
 *
 * Dead letters are part of their job: it commits (and stores its offset)
 * only once Kafka acknowledged them, and redoes them when it could not
 * (at least once). A dead letter Kafka refuses for good (too large for the
 * producer or the topic) is logged with its position and counted
 * (patron_trigger_dlq_lost_total): the record stays in its own topic.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/campaign_state_codec.h"
#include "patron/profile_update_decode.h"
#include "trigger_internal.h"

#define STOP_CHECK_MS 5000 /* a stopped partition looks at its keys this often */

enum trigger_fault trigger_fault(const redisReply *reply)
{
    if (!reply)
        return TRIGGER_FAULT_RETRY; /* disconnected, or no answer in time */
    if (reply->type != REDIS_REPLY_ERROR)
        return TRIGGER_FAULT_NONE;
    /* The scripts' own checks of the partition's keys, and Redis refusing a
     * command on a key of another type (a sweep's or an outbox check's). */
    if (strncmp(reply->str, "PATRON_BADKEY", 13) == 0 || strstr(reply->str, "WRONGTYPE"))
        return TRIGGER_FAULT_PARTITION;
    /* FENCED, PATRON_BADSTATE (the redo's load sees the state), OOM,
     * LOADING, BUSY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, and anything else. */
    return TRIGGER_FAULT_RETRY;
}

/* ---- updates ---------------------------------------------------------------- */

const char *trigger_update_decode(const rd_kafka_message_t *m, Patron__V1__ProfileUpdate **u)
{
    const char *why = NULL;
    if (patron_profile_update_decode(m->payload, m->len, u, &why))
        return why;
    return NULL;
}

struct dlq_ack {
    struct job *j;
    int64_t offset;
};

/* Kafka refuses these for good: sending again changes nothing. */
static bool dlq_refused_for_good(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

static void dlq_lost(struct job *j, int64_t offset, const char *error)
{
    struct trigger *tr = j->tr;
    patron_counter_add(tr->m_dlq_lost, 1);
    patron_log(tr->log, PATRON_LOG_ERROR,
               "dead letter refused by Kafka: the update stays in its topic only",
               "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id, offset, error);
}

static void dlq_done(struct job *j)
{
    if (--j->dlq_pending == 0 && j->after_dlq) {
        void (*next)(struct job *) = j->after_dlq;
        j->after_dlq = NULL;
        next(j);
    }
}

static void on_dlq_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct dlq_ack *d = ud;
    struct job *j = d->j;
    if (err && dlq_refused_for_good(err)) {
        dlq_lost(j, d->offset, rd_kafka_err2str(err));
    } else if (err) {
        /* Kafka down or slow: the job is redone, its dead letters sent again. */
        patron_log(j->tr->log, PATRON_LOG_WARN, "dead letter not delivered, the job is redone",
                   "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id, d->offset,
                   rd_kafka_err2str(err));
        j->failed = true;
    }
    free(d);
    dlq_done(j);
}

void trigger_dead_letter(struct job *j, const rd_kafka_message_t *m, const char *why)
{
    struct trigger *tr = j->tr;
    patron_counter_add(tr->m_updates_dlq, 1);
    patron_log(tr->log, PATRON_LOG_WARN, "update to the DLQ",
               "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id, m->offset,
               why);
    struct dlq_ack *d = patron_malloc(sizeof(*d));
    *d = (struct dlq_ack){.j = j, .offset = m->offset};
    int rc = patron_dlq_send(tr->producer, tr->cfg->topic_dlq, m, why, on_dlq_delivered, d);
    if (rc == 0) {
        j->dlq_pending++;
        return;
    }
    free(d);
    if (rc == PATRON_ETOOBIG) {
        /* Over the producer's message.max.bytes: it never fits. */
        dlq_lost(j, m->offset, patron_strerror(rc));
        return;
    }
    patron_log(tr->log, PATRON_LOG_WARN, "dead letter not produced, the job is redone",
               "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id, m->offset,
               patron_strerror(rc));
    j->failed = true;
}

bool trigger_dlq_wait(struct job *j, void (*next)(struct job *j))
{
    if (j->dlq_pending == 0)
        return false;
    j->after_dlq = next;
    return true;
}

/* ---- stored states ---------------------------------------------------------- */

/* Per key: the value, nil, or {type} (not a string) or {'too big'}; ARGV
 * the most bytes a state may have. Nothing big is read. */
const char trigger_load_lua[] =
    "local r = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local t = redis.call('TYPE', k).ok\n"
    "  if t == 'none' then r[i] = false\n"
    "  elseif t ~= 'string' then r[i] = {t}\n"
    "  elseif redis.call('STRLEN', k) > tonumber(ARGV[1]) then r[i] = {'too big'}\n"
    "  else r[i] = redis.call('GET', k) end\n"
    "end\n"
    "return r\n";

static const char *const STATE_FAULT_NAMES[] = {
    [STATE_UNREADABLE] = "unreadable",
    [STATE_WRONG_TYPE] = "wrong_type",
    [STATE_TOO_BIG] = "too_big",
    [STATE_OTHER] = "other_customer",
};

/* The DLQ's `error` of an update whose customer's state cannot be used. */
static const char *const STATE_FAULT_REASONS[] = {
    [STATE_UNREADABLE] = "stored trigger state unreadable",
    [STATE_WRONG_TYPE] = "stored trigger state of another Redis type",
    [STATE_TOO_BIG] = "stored trigger state too big",
    [STATE_OTHER] = "stored trigger state of another customer",
};

void trigger_state_read(struct job *j, struct cust *c, const redisReply *v)
{
    struct trigger *tr = j->tr;
    enum state_fault f = STATE_OK;
    if (v->type == REDIS_REPLY_NIL)
        return; /* a customer this partition has not seen yet */
    if (v->type == REDIS_REPLY_ARRAY) {
        bool big = v->elements == 1 && v->element[0]->type == REDIS_REPLY_STRING &&
                   strcmp(v->element[0]->str, "too big") == 0;
        f = big ? STATE_TOO_BIG : STATE_WRONG_TYPE;
    } else if (v->type != REDIS_REPLY_STRING) {
        f = STATE_WRONG_TYPE;
    } else {
        patron_customer_state_free(&c->st);
        int rc = patron_customer_state_decode(&c->st, v->str, (size_t)v->len);
        if (rc == PATRON_ETOOBIG)
            f = STATE_TOO_BIG;
        else if (rc)
            f = STATE_UNREADABLE;
        else if (strcmp(c->st.customer_id, c->id) != 0)
            f = STATE_OTHER;
    }
    if (f == STATE_OK)
        return;
    patron_customer_state_free(&c->st);
    patron_customer_state_init(&c->st, c->id);
    c->fault = STATE_FAULT_REASONS[f];
    patron_counter_add(tr->m_bad_state[f - 1], 1);
    char key[PATRON_KEY_MAX], esc[2 * PATRON_KEY_MAX + 8];
    if (patron_key_trigger_customer(key, sizeof(key), j->p->id, c->id, c->id_len) < 0)
        key[0] = 0;
    (void)patron_json_escape(esc, sizeof(esc), key);
    patron_log(tr->log, PATRON_LOG_ERROR,
               "stored trigger state cannot be used: kept for an operator, its updates to the DLQ",
               "\"partition\":%d,\"key\":\"%s\",\"reason\":\"%s\"", j->p->id, esc,
               STATE_FAULT_NAMES[f]);
}

/* ---- a partition stopped on a key it cannot use ------------------------------- */

void trigger_part_drop_queue(struct part *p)
{
    struct trigger *tr = p->tr;
    while (p->q_n > 0) {
        rd_kafka_message_t *m = trigger_part_pop(p);
        if (p->rewind_offset < 0)
            p->rewind_offset = m->offset;
        tr->buffered_bytes -= m->len;
        rd_kafka_message_destroy(m);
    }
}

bool trigger_part_drop_if_stopped(struct part *p, rd_kafka_message_t *m)
{
    if (!p->stopped)
        return false;
    trigger_part_drop_queue(p);
    if (p->rewind_offset < 0)
        p->rewind_offset = m->offset;
    rd_kafka_message_destroy(m);
    return true;
}

void trigger_part_stop(struct part *p, const redisReply *reply)
{
    struct trigger *tr = p->tr;
    char esc[2 * sizeof(p->stop_why)];
    const char *why = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unknown";
    bool again = p->stopped;
    if (again && strcmp(p->stop_why, why) == 0)
        return;
    patron_copy_str(p->stop_why, sizeof(p->stop_why), why);
    (void)patron_json_escape(esc, sizeof(esc), p->stop_why);
    if (!again) {
        p->stopped = true;
        p->stop_check_mono = patron_monotonic_ms() + STOP_CHECK_MS;
        patron_gauge_add(tr->m_stopped, 1);
    }
    patron_log(tr->log, PATRON_LOG_ERROR,
               "partition stopped: a key of the partition cannot be used; fix or rename it",
               "\"partition\":%d,\"error\":\"%s\"", p->id, esc);
    trigger_part_drop_queue(p);
}

static void on_checked(void *ud, redisReply *reply)
{
    struct part *p = ud;
    struct trigger *tr = p->tr;
    p->stop_checking = false;
    if (trigger_part_release_if_revoked(p))
        return;
    p->stop_check_mono = patron_monotonic_ms() + STOP_CHECK_MS;
    if (!p->stopped || trigger_fault(reply) != TRIGGER_FAULT_NONE) {
        if (trigger_fault(reply) == TRIGGER_FAULT_PARTITION)
            trigger_part_stop(p, reply); /* logged again only if it says something new */
        return;
    }
    /* The updates dropped while stopped are read again, from the first. */
    if (p->rewind_offset >= 0) {
        int rc = patron_consumer_seek(tr->consumer, tr->cfg->topic_profile_updates, p->id,
                                      p->rewind_offset);
        if (rc && rc != PATRON_ENOTFOUND)
            return; /* logged by the consumer; tried again at the next look */
        p->rewind_offset = -1;
    }
    p->stopped = false;
    p->stop_why[0] = 0;
    patron_gauge_add(tr->m_stopped, -1);
    patron_log(tr->log, PATRON_LOG_INFO, "partition started again: its keys are usable",
               "\"partition\":%d", p->id);
    trigger_kick(p);
}

void trigger_part_stopped_check(struct part *p)
{
    struct trigger *tr = p->tr;
    if (!p->stopped || p->stop_checking || !tr->redis_up ||
        patron_monotonic_ms() < p->stop_check_mono)
        return;
    char keys[TRIGGER_FIXED_KEYS][PATRON_KEY_MAX];
    const char *argv[TRIGGER_FIXED_KEYS];
    if (trigger_fixed_keys(p->id, keys))
        return;
    for (size_t i = 0; i < TRIGGER_FIXED_KEYS; i++)
        argv[i] = keys[i];
    if (patron_kv_evalsha(tr->redis, tr->check, on_checked, p, TRIGGER_FIXED_KEYS, 0, argv, NULL) ==
        0)
        p->stop_checking = true;
}
