/*
 * patron-trigger: profile updates in, campaign messages out.
 *
 * The unit of work is a *job* on one partition p of patron.profile-updates:
 * either a batch of that partition's updates (in offset order) or a sweep of
 * its due timers. A partition runs one job at a time, partitions run side
 * by side. A job:
 *   1. loads the states of its customers ({tp:p}:c:<id>, one script: a
 *      partition's keys share a slot; trigger_jobs.c, trigger_poison.c);
 *   2. runs the pure engine (campaign_engine.h) over them (trigger_jobs.c);
 *   3. fetches recommendations and catalog facts for the messages to send,
 *      and builds them (trigger_message.c);
 *   4. commits (trigger_commit.c), in ONE script on the partition's slot, fenced by the
 *      partition's epoch: the new states, their next timer in {tp:p}:due,
 *      the messages into the outbox {tp:p}:outbox, the statistics, the
 *      offset applied up to ({tp:p}:offset, for the partition's next owner);
 *   5. then stores the input offset, and produces the messages; each one's
 *      delivery report removes it from the outbox (trigger_outbox.c).
 *
 * Guarantees. Decisions, counters and outbox entries are committed together
 * or not at all, and the engine ignores an update it has applied (offset,
 * event id) and a decision it has taken (ledger): a redone job changes
 * nothing twice. A message is in the outbox until Kafka acknowledged it.
 * After a crash, the outbox entries older than the producer's delivery
 * timeout are looked for in their topic (kafka_probe.h): found, they are
 * dropped; missing, sent again. So `kill -9` at any point neither loses nor
 * duplicates a message. A new owner INCRs the epoch before it starts: a
 * former owner still finishing a job cannot commit any more.
 *
 * Time. A timer due at T fires when the clock has passed T and the
 * partition has been processed up to T (its latest update's event time, or
 * it has nothing left to read): an update of the customer that happened
 * before T is always applied before the timer fires (trigger_timers.c).
 *
 * This file: the lifecycle, consuming into the partitions' queues
 * (trigger_part.c), the tick that drives timers, outbox checks, reloads and
 * the shutdown, and the metrics. trigger_internal.h lists the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock_redis.h"
#include "patron/keys.h"
#include "trigger_internal.h"

#define BUFFERED_PAUSE 20000 /* updates buffered: pause the consumer */
#define BUFFERED_RESUME 5000 /* ... and resume below this */
/* Bytes of the updates held (queued or in a job): pause the consumer at
 * this many, resume below a quarter. With librdkafka's own queue and
 * fetches (CONSUMER_QUEUE_KB, CONSUMER_FETCH_BYTES) and the dead letters'
 * copies, what keeps the trigger within its memory limit whatever size
 * the records have (docs/operations.md). */
#define BUFFERED_PAUSE_BYTES ((size_t)64 << 20)
#define BUFFERED_RESUME_BYTES ((size_t)16 << 20)
#define CONSUMER_QUEUE_KB "16384"      /* queued.max.messages.kbytes */
#define CONSUMER_FETCH_BYTES "8388608" /* fetch.max.bytes */
#define TICK_MS 100
#define CLOCK_READ_MS 200

void trigger_reply_ignored(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply;
}

/* ---- consuming ------------------------------------------------------------- */

static void on_consumer_ready(void *ud)
{
    struct trigger *tr = ud;
    if (tr->stopping)
        return;
    while (tr->buffered < BUFFERED_PAUSE && tr->buffered_bytes < BUFFERED_PAUSE_BYTES) {
        size_t n = patron_consumer_poll(tr->consumer, tr->poll_buf, PATRON_ARRAY_LEN(tr->poll_buf));
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = tr->poll_buf[i];
            struct part *p = trigger_part_find(tr, m->partition);
            if (p == NULL || m->err) {
                if (m->err)
                    patron_log(tr->log, PATRON_LOG_WARN, "consume error", "\"error\":\"%s\"",
                               rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            if (!trigger_part_drop_if_stopped(p, m))
                trigger_part_push(p, m);
        }
    }
    if ((tr->buffered >= BUFFERED_PAUSE || tr->buffered_bytes >= BUFFERED_PAUSE_BYTES) &&
        !patron_consumer_paused(tr->consumer))
        if (patron_consumer_pause_all(tr->consumer))
            patron_log(tr->log, PATRON_LOG_WARN, "consumer not paused", NULL);
    patron_gauge_set(tr->m_buffered, (double)tr->buffered);
    for (struct part *p = tr->parts; p; p = p->next)
        trigger_kick(p);
}

/* ---- the tick: clock, timers, outbox, reloads, shutdown --------------------- */

static void on_clock(void *ud, redisReply *reply)
{
    struct trigger *tr = ud;
    (void)patron_clock_advance_from_reply(&tr->clock, reply, &tr->clock_all_idle);
}

/* Read after {clock} on the same connection, so the offsets are at least
 * those written with the now just read: waiting for them is safe. */
static void on_clock_out(void *ud, redisReply *reply)
{
    struct trigger *tr = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return; /* the next read offers again */
    for (struct part *p = tr->parts; p; p = p->next)
        patron_clock_gate_offer(&p->gate, tr->clock.event_now_ms,
                                patron_clock_out_offset(reply, p->id));
}

static void finish_stop(struct trigger *tr);

static void on_tick(uv_timer_t *t)
{
    struct trigger *tr = t->data;
    if (tr->stopping) {
        if ((tr->jobs == 0 && tr->probes_running == 0) ||
            patron_monotonic_ms() >= tr->stop_deadline_mono)
            finish_stop(tr);
        return;
    }
    if (tr->next_campaigns && tr->jobs == 0) {
        patron_campaigns_free(tr->campaigns);
        tr->campaigns = tr->next_campaigns;
        tr->next_campaigns = NULL;
        patron_log(tr->log, PATRON_LOG_INFO, "campaigns reloaded", "\"count\":%zu",
                   tr->campaigns->count);
    }
    if (!tr->redis_up)
        return;
    if (tr->clock.kind == PATRON_CLOCK_EVENT && patron_monotonic_ms() >= tr->clock_next_mono) {
        tr->clock_next_mono = patron_monotonic_ms() + CLOCK_READ_MS;
        if (patron_kv_command(tr->redis, on_clock, tr, "HGETALL %s", PATRON_KEY_CLOCK) == 0 &&
            patron_kv_command(tr->redis, on_clock_out, tr, "HGETALL %s", PATRON_KEY_CLOCK_OUT)) {
            /* asked again at the next tick */
        }
    }
    if (tr->buffered < BUFFERED_RESUME && tr->buffered_bytes < BUFFERED_RESUME_BYTES &&
        patron_consumer_paused(tr->consumer))
        if (patron_consumer_resume_all(tr->consumer))
            patron_log(tr->log, PATRON_LOG_WARN, "consumer not resumed", NULL);
    trigger_models_poll(tr);
    for (struct part *p = tr->parts; p; p = p->next) {
        trigger_part_stopped_check(p);
        trigger_part_take(p);
        trigger_kick(p);
        trigger_sweep_check(p);
        trigger_outbox_check(p);
    }
    on_consumer_ready(tr);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_redis_state(void *ud, bool connected)
{
    struct trigger *tr = ud;
    tr->redis_up = connected;
    patron_log(tr->log, connected ? PATRON_LOG_INFO : PATRON_LOG_WARN,
               connected ? "redis connected" : "redis disconnected", NULL);
}

/* trigger_poison.c's and trigger_erase.c's */
static void make_poison_metrics(struct trigger *tr)
{
    struct patron_metrics *m = tr->metrics;
    static const char *const reasons[] = {"unreadable", "wrong_type", "too_big", "other_customer"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(reasons); i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reasons[i]);
        tr->m_bad_state[i] = patron_metrics_counter(
            m, "patron_trigger_bad_state_total",
            "Stored customer states found unusable (kept; their updates to the DLQ)", labels);
    }
    tr->m_dlq_lost = patron_metrics_counter(
        m, "patron_trigger_dlq_lost_total",
        "Dead letters Kafka refused for good (too large): the update stays in its topic only",
        NULL);
    tr->m_stopped =
        patron_metrics_gauge(m, "patron_trigger_partitions_stopped",
                             "Partitions stopped on a key of theirs the trigger cannot use", NULL);
    const char *eh = "Erasures applied, by the copy: own (the erasure's partition) or fanout";
    tr->m_erasures[0] =
        patron_metrics_counter(m, "patron_trigger_erasures_total", eh, "copy=\"own\"");
    tr->m_erasures[1] =
        patron_metrics_counter(m, "patron_trigger_erasures_total", eh, "copy=\"fanout\"");
    tr->m_erased_outbox = patron_metrics_counter(
        m, "patron_trigger_erased_outbox_total",
        "Outbox entries of erased customers removed before they were sent", NULL);
}

static void make_metrics(struct trigger *tr)
{
    struct patron_metrics *m = tr->metrics;
    const char *up = "patron_trigger_updates_total";
    const char *uh = "Profile updates read, by what became of them";
    tr->m_updates_applied = patron_metrics_counter(m, up, uh, "result=\"applied\"");
    tr->m_updates_duplicate = patron_metrics_counter(m, up, uh, "result=\"duplicate\"");
    tr->m_updates_dlq = patron_metrics_counter(m, up, uh, "result=\"dlq\"");
    for (int s = 0; s <= PATRON_STAT_FREQUENCY_CAP; s++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", patron_stat_name((enum patron_stat)s));
        tr->m_outcomes[s] = patron_metrics_counter(m, "patron_trigger_decisions_total",
                                                   "Campaign decisions, by outcome", labels);
    }
    tr->m_messages = patron_metrics_counter(m, "patron_trigger_messages_total",
                                            "Campaign messages acknowledged by Kafka", NULL);
    tr->m_resent = patron_metrics_counter(
        m, "patron_trigger_outbox_resent_total",
        "Outbox messages sent again after a crash (not found in their topic)", NULL);
    tr->m_outbox_found = patron_metrics_counter(
        m, "patron_trigger_outbox_found_total",
        "Outbox messages found in their topic after a crash (not sent again)", NULL);
    tr->m_fenced = patron_metrics_counter(m, "patron_trigger_fenced_total",
                                          "Commits refused: the partition had a new owner", NULL);
    tr->m_job_failures =
        patron_metrics_counter(m, "patron_trigger_job_failures_total",
                               "Jobs redone after a Redis or lookup failure", NULL);
    tr->m_late = patron_metrics_counter(
        m, "patron_trigger_late_updates_total",
        "Updates read after a sweep had fired timers past their event time", NULL);
    tr->m_buffered = patron_metrics_gauge(m, "patron_trigger_buffered_updates",
                                          "Updates read and waiting for their partition", NULL);
    make_poison_metrics(tr);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    tr->m_job_seconds = patron_metrics_histogram(m, "patron_trigger_job_seconds",
                                                 "From a job's start to its commit", NULL, bounds,
                                                 PATRON_ARRAY_LEN(bounds));
}

int trigger_start(struct trigger **out, uv_loop_t *loop, const struct patron_config *cfg,
                  const struct patron_log *log, struct patron_metrics *metrics,
                  struct patron_campaigns *campaigns)
{
    char err[512];
    struct trigger *tr = patron_calloc(1, sizeof(*tr));
    tr->loop = loop;
    tr->cfg = cfg;
    tr->log = log;
    tr->metrics = metrics;
    tr->campaigns = campaigns;
    patron_clock_init(&tr->clock, cfg->clock);
    patron_strmap_init(&tr->in_flight);
    for (int c = 1; c < PATRON_CAMPAIGN_CHANNELS; c++) { /* 0 is "any": no topic */
        const char *name = patron_campaign_channel_names[c];
        size_t n = strlen(cfg->topic_campaign_prefix) + strlen(name) + 1;
        tr->topics[c] = patron_malloc(n);
        snprintf(tr->topics[c], n, "%s%s", cfg->topic_campaign_prefix, name);
    }
    make_metrics(tr);
    trigger_models_init(tr);

    struct patron_kv_options ro;
    patron_service_kv_options(cfg, log, metrics, on_redis_state, tr, &ro);
    int rc = patron_kv_open(&tr->redis, loop, &ro);
    if (rc)
        goto out_free;
    if ((rc = patron_kv_script(tr->redis, trigger_commit_lua, &tr->commit)) ||
        (rc = patron_kv_script(tr->redis, trigger_take_lua, &tr->take)) ||
        (rc = patron_kv_script(tr->redis, trigger_load_lua, &tr->load)) ||
        (rc = patron_kv_script(tr->redis, trigger_check_lua, &tr->check)) ||
        (rc = patron_kv_script(tr->redis, trigger_ack_lua, &tr->ack)))
        goto out_close_redis;
    struct patron_reco_fetcher_options fo = {.max_age_ms = cfg->reco_max_age_ms,
                                             .list_max_age_ms = cfg->reco_list_max_age_ms,
                                             .cache_items = (size_t)cfg->reco_cache_items,
                                             .momentum = cfg->reco_momentum,
                                             .log = log,
                                             .metrics = metrics};
    if ((rc = patron_reco_fetcher_open(&tr->reco, tr->redis, &fo)))
        goto out_close_redis;

    /* A bounded delivery timeout, so that an outbox entry older than it can
     * no longer be in flight anywhere (see the outbox check); the user's
     * properties come first and this one wins. */
    tr->n_producer_props = cfg->n_rdkafka_props + 1;
    tr->producer_props = patron_calloc(2 * tr->n_producer_props, sizeof(char *));
    for (size_t i = 0; i < 2 * cfg->n_rdkafka_props; i++)
        tr->producer_props[i] = cfg->rdkafka_props[i];
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", TRIGGER_DELIVERY_TIMEOUT_MS);
    tr->producer_props[2 * cfg->n_rdkafka_props] = "message.timeout.ms";
    tr->producer_props[2 * cfg->n_rdkafka_props + 1] = timeout;
    rc = patron_producer_open_log(&tr->producer, loop, cfg->kafka_brokers,
                                  (const char *const *)tr->producer_props, tr->n_producer_props,
                                  log, err, sizeof(err));
    if (rc) {
        patron_log(log, PATRON_LOG_ERROR, "producer", "\"error\":\"%s\"", err);
        goto out_free_reco;
    }
    /* Messages are the trigger's latency: fetch with a 10 ms wait rather
     * than the 100 ms that suits ingest's batches (the user's properties
     * come after, and win). */
    tr->consumer_props = patron_calloc(2 * (cfg->n_rdkafka_props + 3), sizeof(char *));
    tr->consumer_props[0] = "fetch.wait.max.ms";
    tr->consumer_props[1] = "10";
    /* memory: librdkafka's queue of records fetched and not yet polled, and
     * one fetch response, whatever the records' size */
    tr->consumer_props[2] = "queued.max.messages.kbytes";
    tr->consumer_props[3] = CONSUMER_QUEUE_KB;
    tr->consumer_props[4] = "fetch.max.bytes";
    tr->consumer_props[5] = CONSUMER_FETCH_BYTES;
    for (size_t i = 0; i < 2 * cfg->n_rdkafka_props; i++)
        tr->consumer_props[6 + i] = cfg->rdkafka_props[i];
    const char *topics[] = {cfg->topic_profile_updates};
    struct patron_consumer_options co = {
        .brokers = cfg->kafka_brokers,
        .group_id = cfg->group_id,
        .topics = topics,
        .n_topics = 1,
        .props = (const char *const *)tr->consumer_props,
        .n_props = cfg->n_rdkafka_props + 3,
        .log = log,
        .on_assign = trigger_part_assigned,
        .on_revoke = trigger_part_revoked,
        .ud = tr,
    };
    rc = patron_consumer_open(&tr->consumer, loop, &co, err, sizeof(err));
    if (rc) {
        patron_log(log, PATRON_LOG_ERROR, "consumer", "\"error\":\"%s\"", err);
        goto out_close_producer;
    }
    patron_consumer_set_ready_cb(tr->consumer, on_consumer_ready, tr);
    uv_timer_init(loop, &tr->tick);
    tr->tick.data = tr;
    uv_timer_start(&tr->tick, on_tick, TICK_MS, TICK_MS);
    *out = tr;
    return 0;

out_close_producer:
    (void)patron_producer_close(tr->producer, 0);
out_free_reco:
    free(tr->consumer_props);
    free(tr->producer_props);
    patron_reco_fetcher_free(tr->reco);
out_close_redis:
    patron_kv_close(tr->redis, NULL, NULL);
out_free:
    for (int c = 0; c < PATRON_CAMPAIGN_CHANNELS; c++)
        free(tr->topics[c]);
    patron_strmap_free(&tr->in_flight);
    patron_campaigns_free(campaigns);
    free(tr);
    return rc ? rc : PATRON_EIO;
}

bool trigger_ready(const struct trigger *tr)
{
    return tr->redis_up && !tr->stopping;
}

void trigger_reload(struct trigger *tr, struct patron_campaigns *campaigns)
{
    /* Applied by the tick once no job holds the current set. */
    if (tr->next_campaigns)
        patron_campaigns_free(tr->next_campaigns);
    tr->next_campaigns = campaigns;
}

static void on_redis_closed(void *ud)
{
    struct trigger *tr = ud;
    patron_reco_fetcher_free(tr->reco);
    tr->reco = NULL;
    tr->redis = NULL;
    if (tr->on_stopped)
        tr->on_stopped(tr->stopped_ud);
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_stop(struct trigger *tr)
{
    uv_timer_stop(&tr->tick);
    uv_close((uv_handle_t *)&tr->tick, on_tick_closed);
    if (tr->jobs)
        patron_log(tr->log, PATRON_LOG_WARN, "shutdown timeout: unfinished jobs are redone",
                   "\"jobs\":%zu", tr->jobs);
    /* Offsets stored so far are committed by the close; the producer then
     * flushes the messages in flight (their delivery reports clear the
     * outbox); what is left stays in the outbox for the next owner. */
    patron_consumer_close(tr->consumer);
    tr->consumer = NULL;
    size_t undelivered = patron_producer_close(tr->producer, tr->cfg->shutdown_timeout_ms);
    tr->producer = NULL;
    if (undelivered)
        patron_log(tr->log, PATRON_LOG_WARN, "undelivered at shutdown (kept in the outbox)",
                   "\"messages\":%zu", undelivered);
    patron_kv_close(tr->redis, on_redis_closed, tr);
}

void trigger_stop(struct trigger *tr, void (*on_stopped)(void *ud), void *ud)
{
    if (tr->stopping)
        return;
    tr->stopping = true;
    tr->on_stopped = on_stopped;
    tr->stopped_ud = ud;
    tr->stop_deadline_mono = patron_monotonic_ms() + tr->cfg->shutdown_timeout_ms;
    patron_log(tr->log, PATRON_LOG_INFO, "stopping", "\"jobs\":%zu", tr->jobs);
    uv_timer_start(&tr->tick, on_tick, 0, 50);
}

void trigger_free(struct trigger *tr)
{
    while (tr->parts) {
        struct part *p = tr->parts;
        tr->parts = p->next;
        trigger_part_free(p);
    }
    for (size_t i = 0; i < tr->in_flight.cap; i++)
        if (tr->in_flight.slots[i].key)
            free(tr->in_flight.slots[i].value);
    patron_strmap_free(&tr->in_flight);
    for (int c = 0; c < PATRON_CAMPAIGN_CHANNELS; c++)
        free(tr->topics[c]);
    free(tr->producer_props);
    free(tr->consumer_props);
    patron_campaigns_free(tr->campaigns);
    if (tr->next_campaigns)
        patron_campaigns_free(tr->next_campaigns);
    free(tr);
}
