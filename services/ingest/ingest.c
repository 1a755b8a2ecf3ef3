/*
 * The ingest pipeline's shell (see ingest.h for the guarantees,
 * ingest_internal.h for how its files divide the work): start and stop,
 * the pump, reset and recovery, the connections' and the rebalance's
 * callbacks, the tick, metrics.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "patron/clock.h"
#include "patron/service.h"

/* The profile cache: values this process wrote recently, so that the next
 * batch touching the customer needs no GET. Bounded in entries and bytes;
 * entries a batch in flight wrote are never evicted: they are how the next
 * batch sees its predecessors' writes before Redis acknowledged them. */
#define CACHE_MAX_ENTRIES 65536
#define CACHE_MAX_BYTES ((size_t)32 << 20)
/* The same for the neighbour lists this process merged last: the popular
 * items' lists are rewritten by nearly every batch. */
#define ROWS_MAX_ENTRIES 65536
#define ROWS_MAX_BYTES ((size_t)32 << 20)
/* Items whose category this process wrote last. */
#define CATS_MAX_ENTRIES 262144
#define CATS_MAX_BYTES ((size_t)32 << 20)

/* A batch's decoded events, reads and ProfileUpdates come from one arena
 * freed with the batch. Chunks kept for the next batches (large
 * allocations are what fragment malloc's heap): 64 x 256 KiB at most. */
#define ARENA_SPARE_MAX 64

/* ---- positions ----------------------------------------------------------- */

struct position *ingest_position_find(struct position *v, size_t n, enum topic_kind t, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].topic == t && v[i].partition == p)
            return &v[i];
    return NULL;
}

void ingest_position_learn(struct ingest *ing, enum topic_kind t, int32_t p, int64_t offset)
{
    if (ingest_position_find(ing->positions, ing->n_positions, t, p))
        return;
    if (ing->n_positions == ing->cap_positions) {
        ing->cap_positions = ing->cap_positions ? ing->cap_positions * 2 : 16;
        ing->positions =
            patron_realloc(ing->positions, ing->cap_positions * sizeof(*ing->positions));
    }
    /* idle until its first batch: a partition not yet busy in {clock} does
     * not hold the watermark, so the first batch of the pod marks them all
     * busy (ingest_clock_busy) */
    ing->positions[ing->n_positions++] = (struct position){
        .topic = t, .partition = p, .next_offset = offset, .idle = t == TOPIC_EVENTS};
}

const char *ingest_topic_name(const struct ingest *ing, enum topic_kind t)
{
    return t == TOPIC_EVENTS ? ing->cfg->topic_events : ing->cfg->topic_catalog;
}

/* ---- the pump ------------------------------------------------------------- */

static size_t msg_bytes(const rd_kafka_message_t *m)
{
    return m->len + m->key_len;
}

/* What the pipeline holds: the in-flight batches (their records and
 * arenas) and the messages polled for the next one. */
static size_t inflight_bytes(const struct ingest *ing)
{
    size_t n = ing->carry_bytes;
    for (const struct batch *b = ing->head; b; b = b->next)
        n += ingest_batch_bytes(b);
    return n;
}

/* The messages polled and not in a batch go; a seek brings them back. A
 * partition first seen among them is learned at its first one, so that the
 * seek goes there (a partition given up meanwhile is forgotten again when
 * it is assigned: on_assign). */
static void drop_carry(struct ingest *ing)
{
    for (size_t i = 0; i < ing->n_carry; i++) {
        rd_kafka_message_t *m = ing->poll_buf[i];
        enum topic_kind t = strcmp(rd_kafka_topic_name(m->rkt), ing->cfg->topic_events) == 0
                                ? TOPIC_EVENTS
                                : TOPIC_CATALOG;
        ingest_position_learn(ing, t, m->partition, m->offset);
        rd_kafka_message_destroy(m);
    }
    ing->n_carry = 0;
    ing->carry_bytes = 0;
    ing->carry_stale = false;
}

/* Batches by count and by bytes: a batch takes what was polled up to
 * PATRON_BATCH_MAX_BYTES (ingest_batch_start), the rest waits for the next
 * one, and no batch starts while the pipeline holds
 * PATRON_INFLIGHT_MAX_BYTES (but for the first: a record is never too big
 * to go through). Not reentrant: a batch started here may settle at once
 * and call back; the loop below goes on in its stead. */
void ingest_pump(struct ingest *ing)
{
    if (ing->pumping)
        return;
    ing->pumping = true;
    size_t max = ingest_batch_events_max(ing), max_bytes = ingest_batch_bytes_max(ing);
    size_t window = ingest_inflight_max(ing);
    while (!ing->resetting && !ing->stopping && ing->inflight < window && ing->redis_up &&
           ing->graph_up &&
           (!ing->head || inflight_bytes(ing) < (size_t)ing->cfg->inflight_max_bytes)) {
        if (ing->n_carry < max && ing->carry_bytes < max_bytes) {
            size_t n = patron_consumer_poll_bytes(ing->consumer, ing->poll_buf + ing->n_carry,
                                                  max - ing->n_carry, max_bytes - ing->carry_bytes);
            for (size_t i = ing->n_carry; i < ing->n_carry + n; i++)
                ing->carry_bytes += msg_bytes(ing->poll_buf[i]);
            ing->n_carry += n;
        }
        if (ing->n_carry == 0 || ing->carry_stale)
            break;
        /* the carry may hold more than the pace now lets a batch take */
        struct batch *b;
        size_t taken =
            ingest_batch_start(ing, ing->poll_buf, ing->n_carry < max ? ing->n_carry : max, &b);
        for (size_t i = 0; i < taken; i++)
            ing->carry_bytes -= msg_bytes(ing->poll_buf[i]);
        ing->n_carry -= taken;
        memmove(ing->poll_buf, ing->poll_buf + taken, ing->n_carry * sizeof(*ing->poll_buf));
        ingest_batch_go(b);
    }
    ing->pumping = false;
    if (ing->carry_stale)
        drop_carry(ing);
    patron_gauge_set(ing->m_inflight_bytes, (double)inflight_bytes(ing));
    if (ing->resetting)
        ingest_reset(ing, NULL); /* what waited for the pump to let go of its messages */
}

static void on_consumer_ready(void *ud)
{
    ingest_pump(ud);
}

/* ---- the pace (pace.h) ---------------------------------------------------- */

size_t ingest_batch_events_max(const struct ingest *ing)
{
    return patron_pace_scale(&ing->pace, (size_t)ing->cfg->batch_max);
}

size_t ingest_batch_bytes_max(const struct ingest *ing)
{
    return patron_pace_scale(&ing->pace, (size_t)ing->cfg->batch_max_bytes);
}

size_t ingest_inflight_max(const struct ingest *ing)
{
    return patron_pace_scale(&ing->pace, (size_t)ing->cfg->inflight_batches);
}

static void pace_changed(struct ingest *ing, const char *why, int64_t elapsed_ms)
{
    patron_gauge_set(ing->m_pace, ing->pace.level);
    if (why)
        patron_log(ing->log, PATRON_LOG_WARN, "slowing down",
                   "\"why\":\"%s\",\"batch_ms\":%" PRId64
                   ",\"batch_max\":%zu,\"inflight_batches\":%zu",
                   why, elapsed_ms, ingest_batch_events_max(ing), ingest_inflight_max(ing));
    else if (ing->pace.level >= 1.0)
        patron_log(ing->log, PATRON_LOG_INFO, "full pace again", NULL);
}

void ingest_pace_done(struct ingest *ing, const struct batch *b)
{
    int64_t elapsed_ms = b->written_ms - b->started_ms;
    int moved = patron_pace_done(&ing->pace, b->seq, elapsed_ms, ing->cfg->redis_timeout_ms,
                                 ing->next_seq + 1);
    if (moved)
        pace_changed(ing, moved < 0 ? "a batch took over half the Redis timeout" : NULL,
                     elapsed_ms);
}

/* ---- recovering ----------------------------------------------------------- */

/* The in-flight batches are cancelled, not freed: each is freed here or at
 * its settle once its last callback is back (they hold pointers into it). */
void ingest_reset(struct ingest *ing, const char *why)
{
    if (why) {
        if (!ing->resetting) {
            patron_log(ing->log, PATRON_LOG_WARN, "pipeline reset", "\"why\":\"%s\"",
                       why); /* static strings or Redis errors, no quotes in practice */
            patron_counter_add(ing->m_resets, 1);
        }
        ing->resetting = true;
        for (struct batch *b = ing->head; b; b = b->next)
            b->cancelled = true;
        patron_lru_clear(&ing->cache);
        patron_lru_clear(&ing->rows);
        patron_lru_clear(&ing->cats); /* what was sent may not have been written */
        ing->graph_reader = NULL;
        if (patron_consumer_pause_all(ing->consumer))
            patron_log(ing->log, PATRON_LOG_WARN, "pause failed", NULL);
        /* what was polled for the next batch comes again after the seek */
        if (ing->pumping)
            ing->carry_stale = true; /* the pump drops it when it lets go */
        else
            drop_carry(ing);
    }
    if (!ing->resetting)
        return;
    /* free the cancelled batches whose callbacks are all back */
    for (struct batch *b = ing->head, *next; b; b = next) {
        next = b->next;
        if (b->pending == 0) {
            if (b->phase == PHASE_READING)
                ing->reading--;
            ingest_batch_unlink(ing, b);
            ingest_batch_free(b);
        }
    }
    if (ing->head || !ing->redis_up || !ing->graph_up || ing->stopping || ing->pumping ||
        ing->n_carry)
        return;
    for (size_t i = 0; i < ing->n_positions; i++) {
        const struct position *p = &ing->positions[i];
        if (patron_consumer_seek(ing->consumer, ingest_topic_name(ing, p->topic), p->partition,
                                 p->next_offset))
            patron_log(ing->log, PATRON_LOG_WARN, "seek failed", "\"partition\":%d", p->partition);
    }
    if (patron_consumer_resume_all(ing->consumer)) {
        patron_log(ing->log, PATRON_LOG_WARN, "resume failed", NULL);
        return; /* the tick tries again */
    }
    ing->resetting = false;
    patron_log(ing->log, PATRON_LOG_INFO, "pipeline resumed", NULL);
    ingest_pump(ing);
}

static void redis_state(struct ingest *ing, bool connected)
{
    patron_log(ing->log, connected ? PATRON_LOG_INFO : PATRON_LOG_WARN,
               connected ? "redis connected" : "redis disconnected", NULL);
    /* a timeout drops the connection too: what was in flight was too much
     * for Redis as it is now, and the replay must not send it all again */
    if (!connected && patron_pace_failed(&ing->pace, ing->next_seq + 1))
        pace_changed(ing, "redis disconnected or timed out", 0);
    if (!connected)
        ingest_reset(ing, "redis disconnected");
    else if (ing->resetting)
        ingest_reset(ing, NULL);
    else
        ingest_pump(ing);
}

static void on_redis_state(void *ud, bool connected)
{
    struct ingest *ing = ud;
    ing->redis_up = connected;
    redis_state(ing, connected);
}

static void on_graph_state(void *ud, bool connected)
{
    struct ingest *ing = ud;
    ing->graph_up = connected;
    redis_state(ing, connected);
}

/* A rebalance takes partitions away: what is in flight may belong to them,
 * so start over from the stored offsets of what is still ours. */
static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct ingest *ing = ud;
    patron_log(ing->log, PATRON_LOG_INFO, "partitions revoked", "\"count\":%d", parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        enum topic_kind t = strcmp(parts->elems[i].topic, ing->cfg->topic_events) == 0
                                ? TOPIC_EVENTS
                                : TOPIC_CATALOG;
        struct position *p =
            ingest_position_find(ing->positions, ing->n_positions, t, parts->elems[i].partition);
        if (p)
            *p = ing->positions[--ing->n_positions];
    }
    if (ing->head || ing->n_carry)
        ingest_reset(ing, "partitions revoked");
    else
        patron_lru_clear(&ing->cache); /* their customers may get another writer */
}

/* A partition (re)assigned starts where its first message says: a position
 * kept from an earlier assignment is stale. */
static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct ingest *ing = ud;
    patron_log(ing->log, PATRON_LOG_INFO, "partitions assigned", "\"count\":%d", parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        enum topic_kind t = strcmp(parts->elems[i].topic, ing->cfg->topic_events) == 0
                                ? TOPIC_EVENTS
                                : TOPIC_CATALOG;
        struct position *p =
            ingest_position_find(ing->positions, ing->n_positions, t, parts->elems[i].partition);
        if (p)
            *p = ing->positions[--ing->n_positions];
    }
}

/* ---- the tick: idle partitions, retries, shutdown --------------------------- */

static void on_redis_closed(void *ud)
{
    struct ingest *ing = ud;
    if (--ing->kv_closing > 0)
        return;
    ing->redis = NULL;
    ing->graph_kv = NULL;
    uv_close((uv_handle_t *)&ing->tick, NULL);
    if (ing->on_stopped)
        ing->on_stopped(ing->stopped_ud);
}

static void finish_stop(struct ingest *ing)
{
    uv_timer_stop(&ing->tick);
    if (ing->head) {
        /* Out of time: what is unfinished is replayed by the next owner.
         * Cancelled batches store nothing when their callbacks come back
         * (some do, from inside the producer's close below). */
        patron_log(ing->log, PATRON_LOG_WARN, "shutdown timeout: unfinished batches replay",
                   "\"batches\":%zu", ing->inflight);
        for (struct batch *b = ing->head; b; b = b->next)
            b->cancelled = true;
    }
    /* offsets stored so far are committed by the close; then the producer
     * flushes whatever is still queued (the DLQ, late updates) */
    patron_consumer_close(ing->consumer);
    ing->consumer = NULL;
    size_t undelivered = patron_producer_close(ing->producer, ing->cfg->shutdown_timeout_ms);
    ing->producer = NULL;
    if (undelivered)
        patron_log(ing->log, PATRON_LOG_WARN, "undelivered at shutdown", "\"messages\":%zu",
                   undelivered);
    ing->kv_closing = 2;
    patron_kv_close(ing->graph_kv, on_redis_closed, ing);
    patron_kv_close(ing->redis, on_redis_closed, ing);
}

static void on_tick(uv_timer_t *t)
{
    struct ingest *ing = t->data;
    if (ing->stopping) {
        if (!ing->head || patron_monotonic_ms() >= ing->stop_deadline_ms)
            finish_stop(ing);
        return;
    }
    if (ing->resetting) {
        ingest_reset(ing, NULL);
        return;
    }
    if (!ing->head && ing->redis_up && ing->graph_up)
        ingest_mark_idle_partitions(ing);
    ingest_pump(ing);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void make_metrics(struct ingest *ing)
{
    struct patron_metrics *m = ing->metrics;
    const char *ev = "patron_ingest_events_total";
    const char *help = "Events read from Kafka, by what became of them";
    ing->m_events_applied = patron_metrics_counter(m, ev, help, "result=\"applied\"");
    ing->m_events_duplicate = patron_metrics_counter(m, ev, help, "result=\"duplicate\"");
    ing->m_events_stale = patron_metrics_counter(m, ev, help, "result=\"stale\"");
    ing->m_events_refused = patron_metrics_counter(m, ev, help, "result=\"refused\"");
    ing->m_events_replayed = patron_metrics_counter(m, ev, help, "result=\"replayed\"");
    ing->m_catalog = patron_metrics_counter(m, "patron_ingest_catalog_updates_total",
                                            "Catalog updates written", NULL);
    ing->m_batches =
        patron_metrics_counter(m, "patron_ingest_batches_total", "Batches completed", NULL);
    ing->m_resets = patron_metrics_counter(
        m, "patron_ingest_resets_total",
        "Pipeline resets (Redis failure, conflict, rebalance): replays from stored offsets", NULL);
    ing->m_updates = patron_metrics_counter(m, "patron_ingest_profile_updates_total",
                                            "ProfileUpdates produced", NULL);
    ing->m_inflight =
        patron_metrics_gauge(m, "patron_ingest_inflight_batches", "Batches in flight", NULL);
    ing->m_pace = patron_metrics_gauge(
        m, "patron_ingest_pace",
        "Part of PATRON_BATCH_MAX and PATRON_INFLIGHT_BATCHES in use: halved when Redis fails or "
        "answers a batch in over half its timeout, grown back by batches that end quickly",
        NULL);
    patron_gauge_set(ing->m_pace, ing->pace.level);
    ing->m_inflight_bytes = patron_metrics_gauge(
        m, "patron_ingest_inflight_bytes",
        "Bytes the pipeline holds: in-flight batches' records and arenas, and records polled for "
        "the next batch",
        NULL);
    ing->m_dlq = patron_metrics_counter(m, "patron_ingest_dlq_total",
                                        "Messages sent to the dead-letter topic", NULL);
    ing->m_dlq_truncated = patron_metrics_counter(
        m, "patron_ingest_dlq_truncated_total",
        "Dead letters cut to what the producer or the DLQ topic takes (header original.size)",
        NULL);
    ing->m_erasure_copies = patron_metrics_counter(
        m, "patron_ingest_erasure_copies_total",
        "Erasure updates copied to the other partitions of patron.profile-updates", NULL);
    const char *inv = "patron_ingest_stored_invalid_total";
    const char *inv_help = "Stored values ingest will not write over (kept for an operator): "
                           "profiles whose customer's events go to the DLQ, neighbour lists left "
                           "out";
    ing->m_profile_unreadable =
        patron_metrics_counter(m, inv, inv_help, "key=\"profile\",reason=\"unreadable\"");
    ing->m_profile_wrong_type =
        patron_metrics_counter(m, inv, inv_help, "key=\"profile\",reason=\"wrong_type\"");
    ing->m_rows_wrong_type =
        patron_metrics_counter(m, inv, inv_help, "key=\"neighbours\",reason=\"wrong_type\"");
    ing->m_items_wrong_type =
        patron_metrics_counter(m, inv, inv_help, "key=\"item\",reason=\"wrong_type\"");
    ing->m_graph_conflicts = patron_metrics_counter(
        m, "patron_ingest_graph_conflicts_total",
        "Neighbour-list writes lost to another writer, read and merged again", NULL);
    ing->m_graph_rebuilt =
        patron_metrics_counter(m, "patron_ingest_graph_rebuilt_total",
                               "Stored neighbour lists that did not decode, started over", NULL);
    ing->m_graph_replayed = patron_metrics_counter(
        m, "patron_ingest_graph_replayed_total",
        "Co-occurrence pairs of replayed purchases that their neighbour list counted already, "
        "not counted again",
        NULL);
    static const char *const identify[] = {"merged", "replayed", "duplicate",
                                           "stale",  "conflict", "limit"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(identify); i++) {
        char label[32];
        snprintf(label, sizeof(label), "result=\"%s\"", identify[i]);
        ing->m_identify[i] = patron_metrics_counter(
            m, "patron_ingest_identify_total",
            "Identify events by outcome: merged (a visitor into its customer), replayed, "
            "duplicate, stale, conflict and limit (to the DLQ)",
            label);
    }
    ing->m_redirected = patron_metrics_counter(
        m, "patron_ingest_redirected_total",
        "Events of merged visitors applied to their customer (whatever the result)", NULL);
    ing->m_visitors_erased =
        patron_metrics_counter(m, "patron_ingest_visitors_erased_total",
                               "Visitors erased with the customer they merged into", NULL);
    ing->m_compacted = patron_metrics_counter(
        m, "patron_ingest_visitors_compacted_total",
        "Merged visitors whose key was cut down to the alias, their customer holding the rest",
        NULL);
    ing->m_not_read = patron_metrics_counter(
        m, "patron_ingest_identity_unread_total",
        "Batches started over because a profile an identity change needs was not read", NULL);
    ing->m_shared_counted = patron_metrics_counter(
        m, "patron_ingest_identify_shared_counted_total",
        "Counted events found on both sides of a merge (sent under both identities): counted "
        "twice before it",
        NULL);
    ing->m_conflicts = patron_metrics_counter(
        m, "patron_ingest_profile_conflicts_total",
        "Profile compare-and-sets lost to another writer (each resets the pipeline)", NULL);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    ing->m_batch_seconds =
        patron_metrics_histogram(m, "patron_ingest_batch_seconds", "From consume to offsets stored",
                                 NULL, bounds, PATRON_ARRAY_LEN(bounds));
}

int ingest_start(struct ingest **out, uv_loop_t *loop, const struct patron_config *cfg,
                 const struct patron_log *log, struct patron_metrics *metrics)
{
    char err[512];
    struct ingest *ing = patron_calloc(1, sizeof(*ing));
    ing->loop = loop;
    ing->cfg = cfg;
    patron_pace_init(&ing->pace);
    ing->log = log;
    ing->metrics = metrics;
    patron_lru_init(&ing->cache, CACHE_MAX_ENTRIES, CACHE_MAX_BYTES);
    patron_lru_init(&ing->rows, ROWS_MAX_ENTRIES, ROWS_MAX_BYTES);
    patron_lru_init(&ing->cats, CATS_MAX_ENTRIES, CATS_MAX_BYTES);
    patron_arena_spares_init(&ing->spares, ARENA_SPARE_MAX);
    /* Neighbour list versions start at a random point: two ingests (or one
     * restarted) never write the same version, so a compare-and-set cannot
     * mistake another writer's list for the one it read. */
    if (uv_random(NULL, NULL, &ing->row_version, sizeof(ing->row_version), 0, NULL))
        ing->row_version = ((uint64_t)patron_wall_ms() << 20) ^ (uint64_t)uv_os_getpid();
    /* the same for profile versions (ingest_next_version) */
    if (uv_random(NULL, NULL, &ing->version_tag, sizeof(ing->version_tag), 0, NULL))
        ing->version_tag = (uint32_t)(ing->row_version >> 17) ^ (uint32_t)ing->row_version;
    ing->cells = patron_malloc((PATRON_GRAPH_ROW_MAX + 1) * sizeof(*ing->cells));
    ing->encoded = patron_malloc(ENCODED_MAX);
    ing->incs = patron_malloc(GRAPH_PAIRS_MAX * sizeof(*ing->incs));
    ing->marks = patron_malloc(PATRON_GRAPH_MARKS_MAX * sizeof(*ing->marks));
    ing->marks_out = patron_malloc(PATRON_GRAPH_MARKS_MAX * sizeof(*ing->marks_out));
    ing->profile = patron_malloc(sizeof(*ing->profile));
    ing->profile2 = patron_malloc(sizeof(*ing->profile2));
    ing->prior = patron_malloc(PATRON_PROFILE_BOUGHT_MAX * sizeof(*ing->prior));
    ing->pairs = patron_malloc(GRAPH_PAIRS_MAX * sizeof(*ing->pairs));
    ing->poll_buf = patron_calloc((size_t)cfg->batch_max, sizeof(*ing->poll_buf));
    make_metrics(ing);

    struct patron_kv_options ro;
    patron_service_kv_options(cfg, log, metrics, on_redis_state, ing, &ro);
    int rc = patron_kv_open(&ing->redis, loop, &ro);
    if (rc)
        goto out_free;
    if ((rc = ingest_store_scripts(ing)))
        goto out_close_redis;
    patron_service_kv_options(cfg, log, metrics, on_graph_state, ing, &ro);
    if ((rc = patron_kv_open(&ing->graph_kv, loop, &ro)))
        goto out_close_redis;
    if ((rc = ingest_store_graph_scripts(ing)))
        goto out_close_graph;

    rc = patron_producer_open_log(&ing->producer, loop, cfg->kafka_brokers,
                                  (const char *const *)cfg->rdkafka_props, cfg->n_rdkafka_props,
                                  log, err, sizeof(err));
    if (rc) {
        patron_log(log, PATRON_LOG_ERROR, "producer", "\"error\":\"%s\"", err);
        goto out_close_graph;
    }
    const char *topics[] = {cfg->topic_events, cfg->topic_catalog};
    struct patron_consumer_options co = {
        .brokers = cfg->kafka_brokers,
        .group_id = cfg->group_id,
        .topics = topics,
        .n_topics = 2,
        .props = (const char *const *)cfg->rdkafka_props,
        .n_props = cfg->n_rdkafka_props,
        .log = log,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .ud = ing,
    };
    rc = patron_consumer_open(&ing->consumer, loop, &co, err, sizeof(err));
    if (rc) {
        patron_log(log, PATRON_LOG_ERROR, "consumer", "\"error\":\"%s\"", err);
        goto out_close_producer;
    }
    patron_consumer_set_ready_cb(ing->consumer, on_consumer_ready, ing);
    /* An erasure's update goes to every partition of the updates (see
     * publish): their count, known now or at the first erasure. */
    int parts = patron_producer_partitions(ing->producer, cfg->topic_profile_updates, 5000);
    ing->update_partitions = parts > 0 ? parts : 0;
    if (parts <= 0)
        patron_log(log, PATRON_LOG_WARN, "partitions of the profile updates not known yet",
                   "\"error\":\"%s\"", patron_strerror(parts));

    uv_timer_init(loop, &ing->tick);
    ing->tick.data = ing;
    uv_timer_start(&ing->tick, on_tick, 1000, 1000);
    *out = ing;
    return 0;

out_close_producer:
    (void)patron_producer_close(ing->producer, 0);
out_close_graph:
    patron_kv_close(ing->graph_kv, NULL, NULL);
out_close_redis:
    patron_kv_close(ing->redis, NULL, NULL);
out_free:
    patron_lru_free(&ing->cache);
    patron_lru_free(&ing->rows);
    patron_lru_free(&ing->cats);
    free(ing->cells);
    free(ing->incs);
    free(ing->marks);
    free(ing->marks_out);
    free(ing->encoded);
    free(ing->pairs);
    free(ing->prior);
    free(ing->profile);
    free(ing->profile2);
    free(ing->poll_buf);
    free(ing);
    return rc ? rc : PATRON_EIO;
}

bool ingest_ready(const struct ingest *ing)
{
    return ing->redis_up && ing->graph_up && !ing->resetting && !ing->stopping;
}

void ingest_stop(struct ingest *ing, void (*on_stopped)(void *ud), void *ud)
{
    if (ing->stopping)
        return;
    ing->stopping = true;
    ing->on_stopped = on_stopped;
    ing->stopped_ud = ud;
    ing->stop_deadline_ms = patron_monotonic_ms() + ing->cfg->shutdown_timeout_ms;
    patron_log(ing->log, PATRON_LOG_INFO, "stopping", "\"inflight\":%zu", ing->inflight);
    uv_timer_start(&ing->tick, on_tick, 0, 50);
}

void ingest_free(struct ingest *ing)
{
    for (size_t i = 0; i < ing->n_carry; i++)
        rd_kafka_message_destroy(ing->poll_buf[i]); /* not stored: the next owner reads them */
    while (ing->head) {
        struct batch *b = ing->head;
        ing->head = b->next;
        ingest_batch_free(b);
    }
    patron_lru_free(&ing->cache);
    patron_lru_free(&ing->rows);
    patron_lru_free(&ing->cats);
    free(ing->cells);
    free(ing->incs);
    free(ing->marks);
    free(ing->marks_out);
    free(ing->encoded);
    patron_arena_spares_free(&ing->spares);
    free(ing->profile);
    free(ing->profile2);
    free(ing->prior);
    free(ing->pairs);
    free(ing->positions);
    free(ing->delivered);
    free(ing->poll_buf);
    free(ing);
}
