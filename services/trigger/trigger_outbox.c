/*
 * Producing campaign messages, and the outbox that makes it exactly once.
 *
 * A committed message is in its partition's outbox ({tp:p}:outbox, message
 * id -> record) until Kafka acknowledges it: its delivery report removes it.
 * The record is "<wall ms>|" then the packed CampaignMessage, the wall ms
 * being when it was built. The producer's delivery timeout is bounded
 * (TRIGGER_DELIVERY_TIMEOUT_MS), so an entry older than OUTBOX_AGE_MS can no
 * longer be in flight anywhere: the outbox check (at a partition's take, then
 * every OUTBOX_SCAN_MS) looks for those in their topic (kafka_probe.h, on a
 * libuv work thread: it blocks); found, they are dropped; missing, sent
 * again. A message id handed to this pod's producer (tr->in_flight) is not
 * handed again until its delivery report.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/kafka_probe.h"
#include "patron/keys.h"
#include "patron/num.h"
#include "trigger_internal.h"

#define OUTBOX_AGE_MS (TRIGGER_DELIVERY_TIMEOUT_MS + 5000) /* older entries are not in flight */
#define OUTBOX_SCAN_MS 5000
#define OUTBOX_PROBE_MAX 1000 /* entries looked for per probe */
#define PROBE_TIMEOUT_MS 30000

uint8_t *trigger_outbox_record(const Patron__V1__CampaignMessage *msg, int64_t wall_ms, size_t *len)
{
    char head[32];
    int hl = snprintf(head, sizeof(head), "%" PRId64 "|", wall_ms);
    size_t ml = patron__v1__campaign_message__get_packed_size(msg);
    uint8_t *rec = patron_malloc((size_t)hl + ml);
    memcpy(rec, head, (size_t)hl);
    patron__v1__campaign_message__pack(msg, rec + hl);
    *len = (size_t)hl + ml;
    return rec;
}

/* Reads an outbox record: *at_ms, the wall ms it was built, and the packed
 * message in [*msg, *msg + *msg_len). PATRON_EINVAL unless it starts with a
 * canonical number of ms and '|'. */
static int record_split(const uint8_t *rec, size_t len, int64_t *at_ms, const uint8_t **msg,
                        size_t *msg_len)
{
    const uint8_t *bar = memchr(rec, '|', len < 24 ? len : 24);
    if (!bar || patron_parse_i64((const char *)rec, (size_t)(bar - rec), 0, INT64_MAX, at_ms))
        return PATRON_EINVAL;
    *msg = bar + 1;
    *msg_len = len - (size_t)(bar - rec) - 1;
    return 0;
}

/* ---- producing -------------------------------------------------------------- */

struct delivery {
    struct trigger *tr;
    int32_t partition;
    char id[PATRON_MESSAGE_ID_LEN + 1];
    char customer[PATRON_ID_MAX + 1]; /* its entry in the outbox's index */
};

static void on_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct delivery *d = ud;
    struct trigger *tr = d->tr;
    free(patron_strmap_del(&tr->in_flight, d->id, PATRON_MESSAGE_ID_LEN));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        patron_counter_add(tr->m_messages, 1);
        trigger_outbox_ack(tr, d->partition, d->customer, d->id);
    } else {
        /* It stays in the outbox: the outbox check looks for it and resends. */
        patron_log(tr->log, PATRON_LOG_WARN, "message not delivered",
                   "\"message_id\":\"%s\",\"error\":\"%s\"", d->id, rd_kafka_err2str(err));
    }
    free(d);
}

/* Hands one outbox record to the producer, unless it is already on its way. */
static int produce_record(struct trigger *tr, int32_t partition, const uint8_t *rec, size_t len)
{
    int64_t at;
    const uint8_t *body;
    size_t body_len;
    if (record_split(rec, len, &at, &body, &body_len))
        return PATRON_EINVAL;
    Patron__V1__CampaignMessage *m = patron__v1__campaign_message__unpack(NULL, body_len, body);
    if (!m)
        return PATRON_EINVAL;
    int rc = PATRON_EINVAL;
    int ch = (int)m->channel;
    if (ch < PATRON_CAMPAIGN_CHANNEL_SMS || ch > PATRON_CAMPAIGN_CHANNEL_EMAIL ||
        strlen(m->message_id) != PATRON_MESSAGE_ID_LEN || strlen(m->customer_id) > PATRON_ID_MAX)
        goto out_free_msg;
    rc = 0;
    if (patron_strmap_get(&tr->in_flight, m->message_id, PATRON_MESSAGE_ID_LEN))
        goto out_free_msg;
    struct delivery *d = patron_malloc(sizeof(*d));
    d->tr = tr;
    d->partition = partition;
    memcpy(d->id, m->message_id, PATRON_MESSAGE_ID_LEN + 1);
    patron_copy_str(d->customer, sizeof(d->customer), m->customer_id);
    rc = patron_producer_send(tr->producer, tr->topics[ch], RD_KAFKA_PARTITION_UA, m->customer_id,
                              strlen(m->customer_id), body, body_len, NULL, on_delivered, d);
    if (rc) {
        free(d);
        goto out_free_msg;
    }
    char *key = patron_strdup(m->message_id);
    patron_strmap_put(&tr->in_flight, key, PATRON_MESSAGE_ID_LEN, key);
out_free_msg:
    patron__v1__campaign_message__free_unpacked(m, NULL);
    return rc;
}

void trigger_produce_job(struct job *j)
{
    struct trigger *tr = j->tr;
    if (j->p->revoked)
        return; /* the new owner's outbox check sends them */
    for (size_t i = 0; i < j->n_outs; i++) {
        int rc = produce_record(tr, j->p->id, j->outs[i].bytes, j->outs[i].len);
        if (rc)
            patron_log(tr->log, PATRON_LOG_WARN, "message not produced (the outbox keeps it)",
                       "\"error\":\"%s\"", patron_strerror(rc));
    }
}

/* ---- the outbox check ------------------------------------------------------- */

/* The entries of one partition's outbox looked for in Kafka: owned by the
 * work item, the only thing the work thread touches (with the config). */
struct probe_work {
    uv_work_t req;
    struct trigger *tr;
    struct part *p;
    struct patron_probe *probes;
    uint8_t **records; /* owned: the outbox values */
    size_t *lens;
    size_t n;
    int rc;
    char err[256];
};

static bool message_id_of(const void *value, size_t len, char out[PATRON_PROBE_ID_MAX + 1])
{
    Patron__V1__CampaignMessage *m = patron__v1__campaign_message__unpack(NULL, len, value);
    if (!m)
        return false;
    bool ok = m->message_id && strlen(m->message_id) <= PATRON_PROBE_ID_MAX;
    if (ok)
        snprintf(out, PATRON_PROBE_ID_MAX + 1, "%s", m->message_id);
    patron__v1__campaign_message__free_unpacked(m, NULL);
    return ok;
}

/* On a worker thread: reads only the probe's own fields and the config. */
static void probe_run(uv_work_t *req)
{
    struct probe_work *w = req->data;
    const struct patron_config *cfg = w->tr->cfg;
    w->rc = patron_kafka_probe(cfg->kafka_brokers, (const char *const *)cfg->rdkafka_props,
                               cfg->n_rdkafka_props, w->probes, w->n, message_id_of,
                               PROBE_TIMEOUT_MS, w->err, sizeof(w->err));
}

static void probe_free(struct probe_work *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->records[i]);
        free((char *)w->probes[i].key);
    }
    free(w->records);
    free(w->lens);
    free(w->probes);
    free(w);
}

static void probe_finish(struct probe_work *w)
{
    struct part *p = w->p;
    p->outbox_busy = false;
    p->outbox_next_mono = patron_monotonic_ms() + OUTBOX_SCAN_MS;
    probe_free(w);
    (void)trigger_part_release_if_revoked(p);
}

/* The entries missing from Kafka, read again from the outbox: only those
 * still there are sent (an erasure may have removed some while the probe
 * ran: trigger_erase.c). */
static void on_still_there(void *ud, redisReply *reply)
{
    struct probe_work *w = ud;
    struct trigger *tr = w->tr;
    struct part *p = w->p;
    size_t found = 0, resent = 0, k = 0;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; i < w->n; i++) {
        if (w->probes[i].found) {
            found++;
            continue;
        }
        bool there = ok && k < reply->elements && reply->element[k]->type == REDIS_REPLY_STRING;
        k++;
        if (there && !p->revoked && !tr->stopping &&
            produce_record(tr, p->id, w->records[i], w->lens[i]) == 0)
            resent++;
    }
    patron_counter_add(tr->m_outbox_found, found);
    patron_counter_add(tr->m_resent, resent);
    patron_log(tr->log, PATRON_LOG_INFO, "outbox checked",
               "\"partition\":%d,\"found\":%zu,\"resent\":%zu", p->id, found, resent);
    probe_finish(w);
}

static void probe_done(uv_work_t *req, int status)
{
    struct probe_work *w = req->data;
    struct trigger *tr = w->tr;
    struct part *p = w->p;
    tr->probes_running--;
    if (status || w->rc) {
        patron_log(tr->log, PATRON_LOG_WARN, "outbox check failed, retrying later",
                   "\"partition\":%d,\"error\":\"%s\"", p->id, w->err);
        probe_finish(w);
        return;
    }
    if (p->revoked || tr->stopping) {
        probe_finish(w);
        return;
    }
    char okey[PATRON_KEY_MAX];
    int kl = patron_key_trigger(okey, sizeof(okey), p->id, "outbox");
    const char **argv = patron_malloc((w->n + 2) * sizeof(*argv));
    size_t argc = 0;
    argv[argc++] = "HMGET";
    argv[argc++] = okey;
    for (size_t i = 0; i < w->n; i++) {
        if (w->probes[i].found && kl > 0)
            trigger_outbox_ack(tr, p->id, w->probes[i].key, w->probes[i].id);
        else if (!w->probes[i].found)
            argv[argc++] = w->probes[i].id;
    }
    int rc = kl < 0 || argc == 2
                 ? PATRON_EINVAL
                 : patron_kv_commandv(tr->redis, on_still_there, w, (int)argc, argv, NULL);
    free(argv);
    if (rc)
        on_still_there(w, NULL); /* nothing missing, or asked again at the next check */
}

/* Outbox entries old enough that no producer can still be delivering them
 * are looked for in Kafka, on a worker thread. */
static void on_outbox(void *ud, redisReply *reply)
{
    struct part *p = ud;
    struct trigger *tr = p->tr;
    p->outbox_busy = false;
    p->outbox_next_mono = patron_monotonic_ms() + OUTBOX_SCAN_MS;
    if (trigger_part_release_if_revoked(p))
        return;
    if (trigger_fault(reply) == TRIGGER_FAULT_PARTITION) {
        trigger_part_stop(p, reply); /* {tp:p}:outbox of another type */
        return;
    }
    if (tr->stopping || p->stopped || !reply || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements == 0)
        return;
    int64_t now = patron_wall_ms();
    size_t cap = reply->elements / 2 < OUTBOX_PROBE_MAX ? reply->elements / 2 : OUTBOX_PROBE_MAX;
    struct probe_work *w = patron_calloc(1, sizeof(*w));
    w->probes = patron_calloc(cap + 1, sizeof(*w->probes));
    w->records = patron_calloc(cap + 1, sizeof(*w->records));
    w->lens = patron_calloc(cap + 1, sizeof(*w->lens));
    w->tr = tr;
    w->p = p;
    for (size_t i = 0; i + 1 < reply->elements && w->n < cap; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            k->len != PATRON_MESSAGE_ID_LEN ||
            patron_strmap_get(&tr->in_flight, k->str, PATRON_MESSAGE_ID_LEN))
            continue;
        int64_t at;
        const uint8_t *body;
        size_t body_len;
        if (record_split((const uint8_t *)v->str, (size_t)v->len, &at, &body, &body_len) ||
            now - at < OUTBOX_AGE_MS)
            continue;
        Patron__V1__CampaignMessage *m = patron__v1__campaign_message__unpack(NULL, body_len, body);
        if (!m)
            continue;
        int ch = (int)m->channel;
        if (ch >= PATRON_CAMPAIGN_CHANNEL_SMS && ch <= PATRON_CAMPAIGN_CHANNEL_EMAIL) {
            struct patron_probe *pr = &w->probes[w->n];
            pr->topic = tr->topics[ch];
            pr->key = patron_strdup(m->customer_id);
            pr->key_len = strlen(m->customer_id);
            pr->since_ms = at;
            memcpy(pr->id, k->str, PATRON_MESSAGE_ID_LEN);
            pr->id[PATRON_MESSAGE_ID_LEN] = 0;
            w->records[w->n] = patron_malloc((size_t)v->len);
            memcpy(w->records[w->n], v->str, (size_t)v->len);
            w->lens[w->n++] = (size_t)v->len;
        }
        patron__v1__campaign_message__free_unpacked(m, NULL);
    }
    if (w->n == 0) {
        probe_free(w);
        return;
    }
    w->req.data = w;
    p->outbox_busy = true;
    tr->probes_running++;
    if (uv_queue_work(tr->loop, &w->req, probe_run, probe_done)) {
        p->outbox_busy = false;
        tr->probes_running--;
        probe_free(w);
    }
}

void trigger_outbox_check(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->outbox_busy || !p->epoch[0] || p->stopped || patron_monotonic_ms() < p->outbox_next_mono)
        return;
    char key[PATRON_KEY_MAX];
    if (patron_key_trigger(key, sizeof(key), p->id, "outbox") < 0)
        return;
    if (patron_kv_command(tr->redis, on_outbox, p, "HGETALL %s", key) == 0)
        p->outbox_busy = true;
}
