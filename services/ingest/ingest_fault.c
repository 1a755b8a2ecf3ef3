/*
 * What goes wrong in ingest, and what becomes of it (ingest_internal.h,
 * enum ingest_fault): the one place that says poison or retriable, and the
 * dead letters that poison turns into.
 */
#include <inttypes.h>
#include <string.h>

#include "ingest_internal.h"
#include "patron/log.h"

bool ingest_fault_poison(enum ingest_fault f)
{
    switch (f) {
    case FAULT_NONE:
    case FAULT_REDIS:
    case FAULT_KAFKA:
    case FAULT_CONFLICT:
        return false;
    case FAULT_UNDECODABLE:
    case FAULT_REFUSED:
    case FAULT_STORED_UNREADABLE:
    case FAULT_STORED_WRONG_TYPE:
    case FAULT_UNAPPLICABLE:
    case FAULT_TOO_LARGE:
        return true;
    }
    return false;
}

/* A broker refuses a record it will refuse again: over its topic's
 * max.message.bytes (or a batch of it over the request's). Everything else
 * (timeouts, leaders moving, brokers down, authorisation being fixed) may
 * pass on the next try. */
enum ingest_fault ingest_fault_of_delivery(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return FAULT_TOO_LARGE;
    default:
        return FAULT_KAFKA;
    }
}

/* PATRON_ETOOBIG: over the producer's message.max.bytes, for ever;
 * PATRON_EAGAIN (its queue full), PATRON_EIO and the rest: for now. */
enum ingest_fault ingest_fault_of_send(int rc)
{
    return rc == PATRON_ETOOBIG ? FAULT_TOO_LARGE : FAULT_KAFKA;
}

enum ingest_fault ingest_fault_of_reply(const redisReply *reply)
{
    if (reply && reply->type != REDIS_REPLY_ERROR)
        return FAULT_NONE;
    if (reply && strncmp(reply->str, "WRONGTYPE", 9) == 0)
        return FAULT_STORED_WRONG_TYPE;
    return FAULT_REDIS;
}

/* ---- dead letters ----------------------------------------------------------- */

/* One dead letter on its way: what its delivery needs to send it again. */
struct dead_letter {
    struct batch *b;
    struct event *e;
    const char *reason; /* in the batch's arena */
    bool cut;           /* sent as headers and key only */
};

static int dead_letter_send(struct dead_letter *d);

static void on_dead_letter(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct dead_letter *d = ud;
    struct batch *b = d->b;
    if (err && ingest_fault_poison(ingest_fault_of_delivery(err)) && !d->cut && !b->cancelled) {
        /* the DLQ topic takes less than the producer sends: what is left
         * (headers, key) still says what went where and why */
        d->cut = true;
        patron_counter_add(b->ing->m_dlq_truncated, 1);
        if (dead_letter_send(d))
            ingest_batch_fail(b, "dlq not produced");
        else
            b->pending++;
    } else if (err) {
        ingest_batch_fail(b, rd_kafka_err2str(err));
    }
    ingest_batch_release(b);
}

static int dead_letter_send(struct dead_letter *d)
{
    struct ingest *ing = d->b->ing;
    const rd_kafka_message_t *m = d->e->msg;
    if (!d->cut && m->len + m->key_len > patron_dlq_room(ing->producer, m, d->reason))
        patron_counter_add(ing->m_dlq_truncated, 1); /* cut to what the producer sends */
    return patron_dlq_send_max(ing->producer, ing->cfg->topic_dlq, m, d->reason,
                               d->cut ? 0 : SIZE_MAX, on_dead_letter, d);
}

void ingest_dead_letter(struct batch *b, struct event *e, enum ingest_fault f, const char *reason)
{
    struct ingest *ing = b->ing;
    (void)f; /* poison, by the caller's word; the reason says which */
    patron_counter_add(ing->m_dlq, 1);
    patron_log(ing->log, PATRON_LOG_WARN, "message to DLQ", "\"partition\":%d,\"offset\":%" PRId64,
               e->msg->partition, e->msg->offset);
    struct dead_letter *d = patron_arena_alloc(&b->arena, sizeof(*d));
    size_t len = strnlen(reason, PATRON_DLQ_ERROR_MAX);
    char *copy = patron_arena_alloc(&b->arena, len + 1);
    memcpy(copy, reason, len);
    copy[len] = '\0';
    *d = (struct dead_letter){b, e, copy, false};
    if (dead_letter_send(d)) {
        ingest_batch_fail(b, "dlq not produced");
        return;
    }
    b->pending++;
}

void ingest_poison_customer(struct batch *b, struct customer *c, enum ingest_fault f,
                            const char *reason)
{
    struct ingest *ing = b->ing;
    char key[2 * PATRON_KEY_MAX + 8];
    (void)patron_json_escape_n(key, sizeof(key), c->v.key, c->v.key_len, NULL);
    size_t n = 0;
    for (struct event *e = c->first; e; e = e->next_of_customer)
        n++;
    /* the value stays for an operator to look at; everything of the
     * customer goes to the DLQ until it is repaired or deleted */
    patron_log(ing->log, PATRON_LOG_ERROR, "stored profile kept: its customer's events to the DLQ",
               "\"key\":\"%s\",\"reason\":\"%s\",\"events\":%zu", key, reason, n);
    patron_counter_add(
        f == FAULT_STORED_WRONG_TYPE ? ing->m_profile_wrong_type : ing->m_profile_unreadable, 1);
    for (struct event *e = c->first; e && !b->failed; e = e->next_of_customer) {
        e->update = NULL;
        ingest_dead_letter(b, e, f, reason);
    }
}
