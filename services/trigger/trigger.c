/*
 * patron-trigger: profile updates in, campaign messages out.
 *
 * The unit of work is a *job* on one partition p of patron.profile-updates:
 * either a batch of that partition's updates (in offset order) or a sweep of
 * its due timers. A partition runs one job at a time, partitions run side
 * by side. A job:
 *   1. loads the states of its customers ({tp:p}:c:<id>, one MGET: a
 *      partition's keys share a slot);
 *   2. runs the pure engine (campaign_engine.h) over them;
 *   3. fetches recommendations and catalog facts for the messages to send,
 *      and builds them;
 *   4. commits, in ONE script on the partition's slot, fenced by the
 *      partition's epoch: the new states, their next timer in {tp:p}:due,
 *      the messages into the outbox {tp:p}:outbox, the statistics, the
 *      offset applied up to ({tp:p}:offset, for the partition's next owner);
 *   5. then stores the input offset, and produces the messages; each one's
 *      delivery report removes it from the outbox.
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
 * before T is always applied before the timer fires.
 */
#include "trigger.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/campaign_engine.h"
#include "patron/clock.h"
#include "patron/clock_redis.h"
#include "patron/kafka.h"
#include "patron/kafka_probe.h"
#include "patron/keys.h"
#include "patron/recommend_fetch.h"
#include "patron/kv.h"
#include "patron/stats_field.h"
#include "patron/strmap.h"
#include "patron/template.h"
#include "patron/v1/campaign.pb-c.h"
#include "patron/v1/profile.pb-c.h"
#include "patron/campaign_state_codec.h"

#define JOB_UPDATES_MAX 1000    /* updates per job */
#define SWEEP_CUSTOMERS_MAX 256 /* customers per timer sweep */
#define BUFFERED_PAUSE 20000    /* updates buffered: pause the consumer */
#define BUFFERED_RESUME 5000    /* ... and resume below this */
#define TICK_MS 100
#define CLOCK_READ_MS 200
#define IDLE_MS 2000              /* event clock: a partition silent this long is caught up */
#define DELIVERY_TIMEOUT_MS 10000 /* message.timeout.ms of the campaign producer */
#define OUTBOX_AGE_MS (DELIVERY_TIMEOUT_MS + 5000) /* older entries can no longer be in flight */
#define OUTBOX_SCAN_MS 5000
#define OUTBOX_PROBE_MAX 1000 /* entries looked for per probe */
#define PROBE_TIMEOUT_MS 30000
#define RETRY_MS 500

/* The commit: KEYS epoch, due, outbox, stats, reco, stream, offset, then one
 * state key per customer. ARGV epoch, stream time, the next offset of the
 * partition's updates (-1 for a sweep), n, then per customer (value or "" to
 * delete, id, next fire time or ""), then n and (message id, record) pairs,
 * n and (field, delta) pairs, n and (item, count) pairs. */
static const char COMMIT_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end\n"
    "local st = tonumber(ARGV[2])\n"
    "if st > tonumber(redis.call('GET', KEYS[6]) or '0') then redis.call('SET', KEYS[6], ARGV[2]) "
    "end\n"
    "if tonumber(ARGV[3]) > tonumber(redis.call('GET', KEYS[7]) or '-1') then "
    "redis.call('SET', KEYS[7], ARGV[3]) end\n"
    "local a = 5\n"
    "for i = 1, tonumber(ARGV[4]) do\n"
    "  local v, id, due = ARGV[a], ARGV[a + 1], ARGV[a + 2]\n"
    "  a = a + 3\n"
    "  if v == '' then redis.call('DEL', KEYS[7 + i]) else redis.call('SET', KEYS[7 + i], v) end\n"
    "  if due == '' then redis.call('ZREM', KEYS[2], id) else redis.call('ZADD', KEYS[2], due, id) "
    "end\n"
    "end\n"
    "local n = tonumber(ARGV[a]); a = a + 1\n"
    "for i = 1, n do redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 1]); a = a + 2 end\n"
    "n = tonumber(ARGV[a]); a = a + 1\n"
    "for i = 1, n do redis.call('HINCRBY', KEYS[4], ARGV[a], ARGV[a + 1]); a = a + 2 end\n"
    "n = tonumber(ARGV[a]); a = a + 1\n"
    "for i = 1, n do redis.call('ZINCRBY', KEYS[5], ARGV[a + 1], ARGV[a]); a = a + 2 end\n"
    "return 1\n";

/* Taking a partition: KEYS epoch, stream, offset. The new epoch fences the
 * former owner; the stream time (the latest event time committed) and the
 * offset (every update before it committed) let timers fire before the first
 * new update arrives: the consumer knows no position until it polls one. */
static const char TAKE_LUA[] = "local e = redis.call('INCR', KEYS[1])\n"
                               "return {e, redis.call('GET', KEYS[2]) or '0',\n"
                               "        redis.call('GET', KEYS[3]) or '-1'}\n";

struct trigger;
struct job;

struct part {
    struct trigger *tr;
    int32_t id;
    char epoch[24]; /* "" until this pod has taken the partition */
    bool epoch_asked;
    bool revoked; /* detached from the trigger; freed when its job ends */
    rd_kafka_message_t **q;
    size_t q_head, q_n, q_cap;
    struct job *job;
    int64_t stream_ms;     /* latest event time of an update committed */
    int64_t fired_ms;      /* the highest bound a committed sweep fired timers to */
    int64_t last_msg_mono; /* when the last update arrived */
    int64_t next_offset;   /* every update before it is applied; -1: not known */
    int64_t retry_mono;    /* a failed job is redone from here on */
    bool sweeping;         /* a due-timer lookup in flight */
    bool outbox_busy;      /* an outbox check in flight */
    int64_t outbox_next_mono;
    struct part *next;
};

struct cust {
    char id[PATRON_ID_MAX + 1];
    size_t id_len;
    struct patron_customer_state st;
    bool changed; /* to be written back */
    bool erased;  /* to be deleted */
};

struct out_msg {
    struct job *job;
    struct cust *cust;
    struct patron_engine_send send;
    struct patron_reco_answer *reco; /* NULL when the campaign wants none */
    char (*titles)[PATRON_CAMPAIGN_STRING_MAX + 1];
    int64_t *prices;
    uint8_t *bytes; /* "<wall ms>|" + packed CampaignMessage: the outbox record */
    size_t len;
    size_t titles_left; /* catalog lookups still out */
};

struct stat_delta {
    char field[PATRON_STATS_FIELD_MAX];
    int64_t delta;
};

struct reco_item {
    int64_t count;
    char item[]; /* the map's key */
};

enum job_kind { JOB_UPDATES, JOB_SWEEP };
enum job_phase { PHASE_LOAD, PHASE_BUILD, PHASE_COMMIT };

struct job {
    struct trigger *tr;
    struct part *p;
    enum job_kind kind;
    enum job_phase phase;
    rd_kafka_message_t **msgs; /* owned, JOB_UPDATES */
    size_t n_msgs;
    Patron__V1__ProfileUpdate **updates; /* NULL: went to the DLQ */
    int32_t *cust_of;                    /* the update's customer index */
    struct cust *custs;
    size_t n_custs;
    int64_t bound_ms;  /* JOB_SWEEP */
    int64_t stream_ms; /* JOB_UPDATES: the partition's stream time once committed */
    size_t late;       /* JOB_UPDATES: updates older than a sweep already fired to */
    int64_t late_ms;   /* ... the oldest of them */
    const struct patron_campaigns *campaigns;
    struct out_msg *outs;
    size_t n_outs, cap_outs;
    struct stat_delta *stats;       /* the statistics' fields, merged */
    int64_t outcomes[PATRON_STATS]; /* the same by outcome, for /metrics */
    size_t n_stats, cap_stats;
    struct patron_strmap reco_items; /* item -> struct reco_item (owned) */
    size_t pending;                  /* lookups out in the current phase */
    bool failed;                     /* redo it: messages go back to the queue */
    int64_t started_mono;
};

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

struct trigger {
    uv_loop_t *loop;
    const struct patron_config *cfg;
    const struct patron_log *log;
    struct patron_metrics *metrics;
    struct patron_campaigns *campaigns, *next_campaigns;
    struct patron_engine engine;
    struct patron_clock clock;
    struct patron_kv *redis;
    struct patron_kv_script *commit, *take;
    struct patron_reco_fetcher *reco;
    struct patron_consumer *consumer;
    struct patron_producer *producer;
    char *topics[PATRON_CAMPAIGN_CHANNELS]; /* by channel; [ANY] NULL */
    char **producer_props, **consumer_props;
    size_t n_producer_props;
    struct part *parts;
    size_t buffered;
    size_t jobs;
    struct patron_strmap in_flight; /* message ids handed to the producer */
    size_t probes_running;
    bool redis_up;
    bool clock_all_idle; /* event clock: ingest has applied all it was given */
    bool stopping;
    int64_t stop_deadline_mono;
    void (*on_stopped)(void *ud);
    void *stopped_ud;
    uv_timer_t tick;
    int64_t clock_next_mono;
    rd_kafka_message_t *poll_buf[512];

    struct patron_counter *m_updates_applied, *m_updates_duplicate, *m_updates_dlq;
    struct patron_counter *m_outcomes[PATRON_STATS];
    struct patron_counter *m_messages, *m_resent, *m_outbox_found, *m_fenced, *m_job_failures;
    struct patron_counter *m_late;
    struct patron_histogram *m_job_seconds;
    struct patron_gauge *m_buffered;
};

static void kick(struct part *p);
static void job_finish(struct job *j);

/* ---- partitions ----------------------------------------------------------- */

static struct part *part_find(struct trigger *tr, int32_t id)
{
    for (struct part *p = tr->parts; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void part_queue_clear(struct part *p)
{
    for (size_t i = 0; i < p->q_n; i++)
        rd_kafka_message_destroy(p->q[(p->q_head + i) % p->q_cap]);
    p->tr->buffered -= p->q_n;
    p->q_n = p->q_head = 0;
}

static void part_free(struct part *p)
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

static void part_push(struct part *p, rd_kafka_message_t *m)
{
    if (p->q_n == p->q_cap)
        part_grow(p);
    p->q[(p->q_head + p->q_n++) % p->q_cap] = m;
    p->tr->buffered++;
}

static rd_kafka_message_t *part_pop(struct part *p)
{
    rd_kafka_message_t *m = p->q[p->q_head];
    p->q_head = (p->q_head + 1) % p->q_cap;
    p->q_n--;
    p->tr->buffered--;
    return m;
}

/* Puts a failed job's messages back in front, in their order. */
static void part_unshift(struct part *p, rd_kafka_message_t **msgs, size_t n)
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

static bool part_release_if_revoked(struct part *p);

static void on_taken(void *ud, redisReply *reply)
{
    struct part *p = ud;
    p->epoch_asked = false;
    if (part_release_if_revoked(p))
        return;
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
    kick(p);
}

static void on_ignored(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply;
}

/* Fencing first: once the INCR is done, a former owner cannot commit. */
static void part_take(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->epoch[0] || p->epoch_asked || !tr->redis_up)
        return;
    char epoch[PATRON_KEY_MAX], stream[PATRON_KEY_MAX], offset[PATRON_KEY_MAX], id[16];
    if (patron_key_trigger(epoch, sizeof(epoch), p->id, "epoch") < 0 ||
        patron_key_trigger(stream, sizeof(stream), p->id, "stream") < 0 ||
        patron_key_trigger(offset, sizeof(offset), p->id, "offset") < 0)
        return;
    snprintf(id, sizeof(id), "%d", p->id);
    const char *argv[] = {epoch, stream, offset};
    if (patron_kv_command(tr->redis, on_ignored, NULL, "SADD %s %s", PATRON_KEY_TRIGGER_PARTITIONS,
                          id) == 0 &&
        patron_kv_evalsha(tr->redis, tr->take, on_taken, p, 3, 0, argv, NULL) == 0)
        p->epoch_asked = true;
}

static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct trigger *tr = ud;
    for (int i = 0; i < parts->cnt; i++) {
        if (part_find(tr, parts->elems[i].partition))
            continue;
        struct part *p = patron_calloc(1, sizeof(*p));
        p->tr = tr;
        p->id = parts->elems[i].partition;
        p->next_offset = -1;
        p->last_msg_mono = patron_monotonic_ms();
        p->outbox_next_mono = 0; /* look at the outbox at once: a crash may have left some */
        p->next = tr->parts;
        tr->parts = p;
        part_take(p);
    }
    patron_log(tr->log, PATRON_LOG_INFO, "partitions assigned", "\"count\":%d", parts->cnt);
}

static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts)
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
            if (!p->job && !p->epoch_asked && !p->sweeping && !p->outbox_busy)
                part_free(p);
            break;
        }
    }
    patron_log(tr->log, PATRON_LOG_INFO, "partitions revoked", "\"count\":%d", parts->cnt);
}

/* A detached partition is freed when the last thing that points to it ends. */
static bool part_release_if_revoked(struct part *p)
{
    if (!p->revoked)
        return false;
    if (!p->job && !p->epoch_asked && !p->sweeping && !p->outbox_busy)
        part_free(p);
    return true;
}

/* ---- jobs: load ------------------------------------------------------------ */

static struct cust *job_cust(struct job *j, const char *id, size_t len, struct patron_strmap *idx)
{
    struct cust *c = patron_strmap_get(idx, id, len);
    if (c)
        return c;
    c = &j->custs[j->n_custs++];
    memcpy(c->id, id, len);
    c->id[len] = 0;
    c->id_len = len;
    patron_customer_state_init(&c->st, c->id);
    patron_strmap_put(idx, c->id, c->id_len, c);
    return c;
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->n_msgs; i++) {
        if (j->updates && j->updates[i])
            patron__v1__profile_update__free_unpacked(j->updates[i], NULL);
        if (j->msgs[i])
            rd_kafka_message_destroy(j->msgs[i]);
    }
    for (size_t i = 0; i < j->n_custs; i++)
        patron_customer_state_free(&j->custs[i].st);
    for (size_t i = 0; i < j->n_outs; i++) {
        free(j->outs[i].reco);
        free(j->outs[i].titles);
        free(j->outs[i].prices);
        free(j->outs[i].bytes);
    }
    for (size_t i = 0; i < j->reco_items.cap; i++)
        if (j->reco_items.slots[i].key)
            free(j->reco_items.slots[i].value);
    patron_strmap_free(&j->reco_items);
    free(j->outs);
    free(j->stats);
    free(j->custs);
    free(j->cust_of);
    free(j->updates);
    free(j->msgs);
    free(j);
}

static void stat_add(struct job *j, const char *campaign, const char *variant,
                     enum patron_stat stat, int64_t delta)
{
    char field[PATRON_STATS_FIELD_MAX];
    if (patron_stats_field_format(field, campaign, variant, stat) < 0)
        return; /* the campaigns file checked the ids: cannot happen */
    for (size_t i = 0; i < j->n_stats; i++)
        if (strcmp(j->stats[i].field, field) == 0) {
            j->stats[i].delta += delta;
            return;
        }
    if (j->n_stats == j->cap_stats) {
        j->cap_stats = j->cap_stats ? 2 * j->cap_stats : 16;
        j->stats = patron_realloc(j->stats, j->cap_stats * sizeof(*j->stats));
    }
    struct stat_delta *s = &j->stats[j->n_stats++];
    memcpy(s->field, field, sizeof(field));
    s->delta = delta;
}

/* Takes what the engine produced for customer c into the job. */
static void job_collect(struct job *j, struct cust *c, struct patron_engine_out *out)
{
    for (size_t i = 0; i < out->n_counts; i++) {
        const struct patron_engine_count *k = &out->counts[i];
        stat_add(j, k->campaign_id, k->variant, k->stat, k->delta);
        j->outcomes[k->stat] += k->delta;
    }
    for (size_t i = 0; i < out->n_sends; i++) {
        if (j->n_outs == j->cap_outs) {
            j->cap_outs = j->cap_outs ? 2 * j->cap_outs : 8;
            j->outs = patron_realloc(j->outs, j->cap_outs * sizeof(*j->outs));
        }
        struct out_msg *m = &j->outs[j->n_outs++];
        memset(m, 0, sizeof(*m));
        m->job = j;
        m->cust = c;
        m->send = out->sends[i];
    }
    if (out->erased)
        c->changed = c->erased = true;
    else if (!out->duplicate)
        c->erased = false; /* written again after an erasure in the same job */
    patron_engine_out_reset(out);
}

static void job_run_engine(struct job *j)
{
    struct trigger *tr = j->tr;
    struct patron_engine e = {.campaigns = j->campaigns, .profile = &tr->cfg->profile};
    struct patron_engine_out out = {0};
    if (j->kind == JOB_UPDATES) {
        j->stream_ms = j->p->stream_ms;
        for (size_t i = 0; i < j->n_msgs && !j->failed; i++) {
            if (!j->updates[i])
                continue;
            struct cust *c = &j->custs[j->cust_of[i]];
            int rc = patron_engine_on_update(&e, &c->st, j->updates[i], j->msgs[i]->offset, &out);
            if (rc) {
                /* Not the update's fault (it decoded): a bug. Skip it, loudly. */
                patron_log(tr->log, PATRON_LOG_ERROR, "engine refused an update",
                           "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id,
                           j->msgs[i]->offset, patron_strerror(rc));
                patron_engine_out_reset(&out);
                continue;
            }
            patron_counter_add(out.duplicate ? tr->m_updates_duplicate : tr->m_updates_applied, 1);
            int64_t at = j->updates[i]->occurred_at_ms;
            if (!out.duplicate) {
                c->changed = true;
                /* A timer of this partition fired past this update's time
                 * before it was read: the promise at the top is broken. */
                if (at < j->p->fired_ms && (j->late++ == 0 || at < j->late_ms))
                    j->late_ms = at;
            }
            job_collect(j, c, &out);
            if (at > j->stream_ms)
                j->stream_ms = at;
        }
    } else {
        for (size_t i = 0; i < j->n_custs; i++) {
            struct cust *c = &j->custs[i];
            c->changed = true; /* its due entry is rewritten whatever happens */
            int rc = patron_engine_fire_due(&e, &c->st, j->bound_ms, &out);
            if (rc)
                patron_log(tr->log, PATRON_LOG_ERROR, "engine refused a sweep",
                           "\"partition\":%d,\"error\":\"%s\"", j->p->id, patron_strerror(rc));
            job_collect(j, c, &out);
        }
    }
    patron_engine_out_free(&out);
}

/* ---- jobs: messages -------------------------------------------------------- */

static void job_built(struct job *j);

/* Counts an item recommended in a message of this job. */
static void reco_count(struct job *j, const char *item)
{
    size_t len = strlen(item);
    struct reco_item *r = patron_strmap_get(&j->reco_items, item, len);
    if (r == NULL) {
        r = patron_malloc(sizeof(*r) + len + 1);
        memcpy(r->item, item, len + 1);
        r->count = 0;
        patron_strmap_put(&j->reco_items, r->item, len, r);
    }
    r->count++;
}

static void build_message(struct out_msg *m)
{
    struct job *j = m->job;
    struct patron_customer_state *st = &m->cust->st;
    Patron__V1__CampaignMessage msg = PATRON__V1__CAMPAIGN_MESSAGE__INIT;
    struct patron_template_input in = {
        .campaign = m->send.campaign,
        .decision = &m->send.decision,
        .customer_id = m->cust->id,
        .trigger_event_id = m->send.trigger_event_id,
        .locale = st->locale,
        .tier = st->tier,
        .segment = st->segment,
        .points = st->points,
        .created_at_ms = m->send.at_ms,
    };
    if (patron_template_fill(&msg, &in)) {
        j->failed = true;
        return;
    }
    size_t n = m->reco ? m->reco->n : 0;
    Patron__V1__RecommendedItem *items = patron_calloc(n + 1, sizeof(*items));
    Patron__V1__RecommendedItem **ptrs = patron_calloc(n + 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        patron__v1__recommended_item__init(&items[i]);
        items[i].item_id = m->reco->items[i].item;
        items[i].score = m->reco->items[i].score;
        items[i].title = m->titles[i];
        items[i].price_cents = m->prices[i];
        ptrs[i] = &items[i];
        reco_count(j, items[i].item_id);
    }
    msg.n_items = n;
    msg.items = ptrs;
    /* The outbox record: when it was committed (wall clock, for the outbox
     * check's age) and the message itself. */
    char head[32];
    int hl = snprintf(head, sizeof(head), "%" PRId64 "|", patron_wall_ms());
    size_t len = patron__v1__campaign_message__get_packed_size(&msg);
    m->bytes = patron_malloc((size_t)hl + len);
    memcpy(m->bytes, head, (size_t)hl);
    patron__v1__campaign_message__pack(&msg, m->bytes + hl);
    m->len = (size_t)hl + len;
    msg.n_items = 0;
    msg.items = NULL;
    free(ptrs);
    free(items);
    patron_template_clear(&msg);
}

static void job_lookup_done(struct job *j)
{
    if (--j->pending == 0)
        job_built(j);
}

struct title_req {
    struct out_msg *m;
    size_t i;
};

static void copy_reply_str(char *dst, size_t cap, const redisReply *r)
{
    size_t l = (size_t)r->len < cap - 1 ? (size_t)r->len : cap - 1;
    memcpy(dst, r->str, l);
    dst[l] = 0;
}

/* Catalog title and price of one recommended item: "when known", so a
 * missing or odd answer leaves them empty. */
static void on_title(void *ud, redisReply *reply)
{
    struct title_req *r = ud;
    struct out_msg *m = r->m;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const redisReply *t = reply->element[0], *p = reply->element[1];
        if (t->type == REDIS_REPLY_STRING)
            copy_reply_str(m->titles[r->i], sizeof(m->titles[r->i]), t);
        int64_t v;
        if (p->type == REDIS_REPLY_STRING && patron_reply_i64(p, 0, INT64_MAX, &v) == 0)
            m->prices[r->i] = v;
    }
    free(r);
    if (--m->titles_left == 0 && !m->job->failed)
        build_message(m);
    job_lookup_done(m->job);
}

static void on_reco(void *ud, const struct patron_reco_answer *a)
{
    struct out_msg *m = ud;
    struct job *j = m->job;
    struct trigger *tr = j->tr;
    if (a->err) {
        j->failed = true; /* recommendations are part of the message: redo the job */
        job_lookup_done(j);
        return;
    }
    m->reco = patron_malloc(sizeof(*m->reco));
    *m->reco = *a;
    m->titles = patron_calloc(a->n + 1, sizeof(*m->titles));
    m->prices = patron_calloc(a->n + 1, sizeof(*m->prices));
    m->titles_left = 1; /* held until every lookup is issued */
    for (size_t i = 0; i < a->n; i++) {
        char key[PATRON_KEY_MAX];
        int kl = patron_key_item(key, sizeof(key), a->items[i].item, strlen(a->items[i].item));
        if (kl < 0)
            continue;
        struct title_req *r = patron_malloc(sizeof(*r));
        *r = (struct title_req){.m = m, .i = i};
        if (patron_kv_command(tr->redis, on_title, r, "HMGET %b title price_cents", key,
                              (size_t)kl)) {
            free(r);
            j->failed = true;
            break;
        }
        m->titles_left++;
        j->pending++;
    }
    if (--m->titles_left == 0 && !j->failed)
        build_message(m);
    job_lookup_done(j);
}

static void job_messages(struct job *j)
{
    struct trigger *tr = j->tr;
    j->phase = PHASE_BUILD;
    j->pending = 1; /* held while issuing */
    for (size_t i = 0; i < j->n_outs && !j->failed; i++) {
        struct out_msg *m = &j->outs[i];
        uint32_t k = m->send.campaign->recommendations;
        if (k == 0) {
            build_message(m);
            continue;
        }
        if (patron_reco_fetch_customer(tr->reco, m->cust->id, m->cust->id_len, NULL, k,
                                       m->send.at_ms, on_reco, m)) {
            j->failed = true;
            break;
        }
        j->pending++;
    }
    job_lookup_done(j);
}

/* ---- jobs: commit ---------------------------------------------------------- */

/* Arguments of one command: borrowed strings, plus the ones it owns. */
struct argv_buf {
    const char **v;
    size_t *l;
    size_t n, cap;
    char **owned;
    size_t n_owned, cap_owned;
};

static void argv_add(struct argv_buf *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = patron_realloc(a->v, a->cap * sizeof(*a->v));
        a->l = patron_realloc(a->l, a->cap * sizeof(*a->l));
    }
    a->v[a->n] = s;
    a->l[a->n++] = len;
}

static void argv_own(struct argv_buf *a, char *s, size_t len)
{
    if (a->n_owned == a->cap_owned) {
        a->cap_owned = a->cap_owned ? 2 * a->cap_owned : 64;
        a->owned = patron_realloc(a->owned, a->cap_owned * sizeof(*a->owned));
    }
    a->owned[a->n_owned++] = s;
    argv_add(a, s, len);
}

static void argv_int(struct argv_buf *a, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    argv_own(a, patron_strdup(buf), (size_t)n);
}

static void argv_free(struct argv_buf *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->v);
    free(a->l);
}

static void produce_outs(struct job *j);

static void store_offset(struct job *j)
{
    struct trigger *tr = j->tr;
    if (j->kind != JOB_UPDATES || j->n_msgs == 0 || j->p->revoked)
        return;
    int64_t next = j->msgs[j->n_msgs - 1]->offset + 1;
    int rc = patron_consumer_store(tr->consumer, tr->cfg->topic_profile_updates, j->p->id, next);
    if (rc && rc != PATRON_ENOTFOUND)
        patron_log(tr->log, PATRON_LOG_WARN, "offset not stored",
                   "\"partition\":%d,\"error\":\"%s\"", j->p->id, patron_strerror(rc));
    j->p->next_offset = next;
}

static void on_committed(void *ud, redisReply *reply)
{
    struct job *j = ud;
    struct trigger *tr = j->tr;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply && strstr(reply->str, "FENCED")) {
            /* Another pod took the partition: it redoes this work. */
            patron_counter_add(tr->m_fenced, 1);
            patron_log(tr->log, PATRON_LOG_WARN, "fenced: the partition has a new owner",
                       "\"partition\":%d", j->p->id);
            j->p->epoch[0] = 0;
        } else {
            patron_log(tr->log, PATRON_LOG_WARN, "commit failed",
                       "\"partition\":%d,\"error\":\"%s\"", j->p->id,
                       reply ? reply->str : "redis unavailable");
        }
        j->failed = true;
        job_finish(j);
        return;
    }
    for (int s = 0; s <= PATRON_STAT_FREQUENCY_CAP; s++)
        patron_counter_add(tr->m_outcomes[s], (uint64_t)j->outcomes[s]);
    /* Only what is committed moves the partition's times: a job that failed
     * is redone, and no sweep may fire past updates not yet applied. */
    struct part *p = j->p;
    if (j->kind == JOB_UPDATES) {
        if (j->stream_ms > p->stream_ms)
            p->stream_ms = j->stream_ms;
        if (j->late) {
            patron_counter_add(tr->m_late, j->late);
            patron_log(tr->log, PATRON_LOG_WARN, "updates older than timers already fired",
                       "\"partition\":%d,\"updates\":%zu,\"oldest_ms\":%" PRId64
                       ",\"fired_ms\":%" PRId64,
                       p->id, j->late, j->late_ms, p->fired_ms);
        }
    } else if (j->bound_ms > p->fired_ms) {
        p->fired_ms = j->bound_ms;
    }
    store_offset(j);
    produce_outs(j);
    job_finish(j);
}

static void job_built(struct job *j)
{
    struct trigger *tr = j->tr;
    struct part *p = j->p;
    if (j->failed) {
        job_finish(j);
        return;
    }
    j->phase = PHASE_COMMIT;
    size_t n_changed = 0;
    for (size_t i = 0; i < j->n_custs; i++)
        n_changed += j->custs[i].changed;
    /* An update job commits even when it changes nothing (duplicates, dead
     * letters): its offset tells the partition's next owner what is applied. */
    if (j->kind == JOB_SWEEP && n_changed == 0 && j->n_outs == 0 && j->n_stats == 0) {
        job_finish(j);
        return;
    }
    struct argv_buf a = {0};
    char key[PATRON_KEY_MAX];
    static const char *const fixed[] = {"epoch", "due",    "outbox", "stats",
                                        "reco",  "stream", "offset"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(fixed); i++) {
        int kl = patron_key_trigger(key, sizeof(key), p->id, fixed[i]);
        argv_own(&a, patron_strdup(key), (size_t)kl);
    }
    for (size_t i = 0; i < j->n_custs; i++) {
        if (!j->custs[i].changed)
            continue;
        int kl = patron_key_trigger_customer(key, sizeof(key), p->id, j->custs[i].id,
                                             j->custs[i].id_len);
        argv_own(&a, patron_strdup(key), (size_t)kl);
    }
    size_t nkeys = a.n;
    argv_add(&a, p->epoch, strlen(p->epoch));
    argv_int(&a, j->kind == JOB_UPDATES ? j->stream_ms : p->stream_ms);
    argv_int(&a, j->kind == JOB_UPDATES && j->n_msgs > 0 ? j->msgs[j->n_msgs - 1]->offset + 1 : -1);
    argv_int(&a, (int64_t)n_changed);
    for (size_t i = 0; i < j->n_custs; i++) {
        struct cust *c = &j->custs[i];
        if (!c->changed)
            continue;
        int64_t next = c->erased ? INT64_MAX : patron_customer_state_next_fire(&c->st);
        if (c->erased) {
            argv_add(&a, "", 0);
        } else {
            uint8_t *v;
            size_t vl = patron_customer_state_encode(&c->st, &v);
            argv_own(&a, (char *)v, vl);
        }
        argv_add(&a, c->id, c->id_len);
        if (next == INT64_MAX)
            argv_add(&a, "", 0);
        else
            argv_int(&a, next);
    }
    argv_int(&a, (int64_t)j->n_outs);
    for (size_t i = 0; i < j->n_outs; i++) {
        argv_add(&a, j->outs[i].send.decision.message_id, PATRON_MESSAGE_ID_LEN);
        argv_add(&a, (const char *)j->outs[i].bytes, j->outs[i].len);
    }
    argv_int(&a, (int64_t)j->n_stats);
    for (size_t i = 0; i < j->n_stats; i++) {
        argv_add(&a, j->stats[i].field, strlen(j->stats[i].field));
        argv_int(&a, j->stats[i].delta);
    }
    argv_int(&a, (int64_t)j->reco_items.count);
    for (size_t i = 0; i < j->reco_items.cap; i++) {
        const struct patron_strmap_slot *s = &j->reco_items.slots[i];
        if (!s->key)
            continue;
        argv_add(&a, s->key, s->len);
        argv_int(&a, ((const struct reco_item *)s->value)->count);
    }
    if (patron_kv_evalsha(tr->redis, tr->commit, on_committed, j, (int)nkeys, (int)(a.n - nkeys),
                          a.v, a.l)) {
        j->failed = true;
        job_finish(j);
    }
    argv_free(&a);
}

/* ---- producing and the outbox ---------------------------------------------- */

struct delivery {
    struct trigger *tr;
    int32_t partition;
    char id[PATRON_MESSAGE_ID_LEN + 1];
};

static void on_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct delivery *d = ud;
    struct trigger *tr = d->tr;
    free(patron_strmap_del(&tr->in_flight, d->id, PATRON_MESSAGE_ID_LEN));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        patron_counter_add(tr->m_messages, 1);
        char okey[PATRON_KEY_MAX];
        if (patron_key_trigger(okey, sizeof(okey), d->partition, "outbox") > 0)
            if (patron_kv_command(tr->redis, on_ignored, NULL, "HDEL %s %b", okey, d->id,
                                  (size_t)PATRON_MESSAGE_ID_LEN)) {
                /* left in the outbox: the outbox check finds it in Kafka */
            }
    } else {
        /* It stays in the outbox: the outbox check looks for it and resends. */
        patron_log(tr->log, PATRON_LOG_WARN, "message not delivered",
                   "\"message_id\":\"%s\",\"error\":\"%s\"", d->id, rd_kafka_err2str(err));
    }
    free(d);
}

/* Hands one outbox record ("<wall ms>|" + message) to the producer, unless
 * it is already on its way. */
static int produce_record(struct trigger *tr, int32_t partition, const uint8_t *rec, size_t len)
{
    const uint8_t *bar = memchr(rec, '|', len < 24 ? len : 24);
    if (!bar)
        return PATRON_EINVAL;
    size_t head = (size_t)(bar - rec) + 1;
    Patron__V1__CampaignMessage *m =
        patron__v1__campaign_message__unpack(NULL, len - head, rec + head);
    if (!m)
        return PATRON_EINVAL;
    int rc = PATRON_EINVAL;
    int ch = (int)m->channel;
    if (ch < PATRON_CAMPAIGN_CHANNEL_SMS || ch > PATRON_CAMPAIGN_CHANNEL_EMAIL ||
        strlen(m->message_id) != PATRON_MESSAGE_ID_LEN)
        goto out_free_msg;
    rc = 0;
    if (patron_strmap_get(&tr->in_flight, m->message_id, PATRON_MESSAGE_ID_LEN))
        goto out_free_msg;
    struct delivery *d = patron_malloc(sizeof(*d));
    d->tr = tr;
    d->partition = partition;
    memcpy(d->id, m->message_id, PATRON_MESSAGE_ID_LEN + 1);
    rc =
        patron_producer_send(tr->producer, tr->topics[ch], RD_KAFKA_PARTITION_UA, m->customer_id,
                             strlen(m->customer_id), rec + head, len - head, NULL, on_delivered, d);
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

static void produce_outs(struct job *j)
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

static void probe_done(uv_work_t *req, int status)
{
    struct probe_work *w = req->data;
    struct trigger *tr = w->tr;
    struct part *p = w->p;
    tr->probes_running--;
    p->outbox_busy = false;
    p->outbox_next_mono = patron_monotonic_ms() + OUTBOX_SCAN_MS;
    if (status || w->rc) {
        patron_log(tr->log, PATRON_LOG_WARN, "outbox check failed, retrying later",
                   "\"partition\":%d,\"error\":\"%s\"", p->id, w->err);
    } else if (!p->revoked && !tr->stopping) {
        char okey[PATRON_KEY_MAX];
        int kl = patron_key_trigger(okey, sizeof(okey), p->id, "outbox");
        size_t found = 0, resent = 0;
        for (size_t i = 0; i < w->n; i++) {
            if (w->probes[i].found) {
                found++;
                if (kl > 0 && patron_kv_command(tr->redis, on_ignored, NULL, "HDEL %s %s", okey,
                                                w->probes[i].id)) {
                    /* looked for again at the next check */
                }
            } else if (produce_record(tr, p->id, w->records[i], w->lens[i]) == 0) {
                resent++;
            }
        }
        patron_counter_add(tr->m_outbox_found, found);
        patron_counter_add(tr->m_resent, resent);
        patron_log(tr->log, PATRON_LOG_INFO, "outbox checked",
                   "\"partition\":%d,\"found\":%zu,\"resent\":%zu", p->id, found, resent);
    }
    probe_free(w);
    (void)part_release_if_revoked(p);
}

/* Outbox entries old enough that no producer can still be delivering them
 * are looked for in Kafka, on a worker thread. */
static void on_outbox(void *ud, redisReply *reply)
{
    struct part *p = ud;
    struct trigger *tr = p->tr;
    p->outbox_busy = false;
    p->outbox_next_mono = patron_monotonic_ms() + OUTBOX_SCAN_MS;
    if (part_release_if_revoked(p) || tr->stopping || !reply || reply->type != REDIS_REPLY_ARRAY ||
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
        char *end;
        long long at = strtoll(v->str, &end, 10);
        if (end == v->str || *end != '|' || now - at < OUTBOX_AGE_MS)
            continue;
        size_t head = (size_t)(end - v->str) + 1;
        Patron__V1__CampaignMessage *m = patron__v1__campaign_message__unpack(
            NULL, (size_t)v->len - head, (const uint8_t *)v->str + head);
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

static void outbox_check(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->outbox_busy || !p->epoch[0] || patron_monotonic_ms() < p->outbox_next_mono)
        return;
    char key[PATRON_KEY_MAX];
    if (patron_key_trigger(key, sizeof(key), p->id, "outbox") < 0)
        return;
    if (patron_kv_command(tr->redis, on_outbox, p, "HGETALL %s", key) == 0)
        p->outbox_busy = true;
}

/* ---- jobs: start and finish ------------------------------------------------ */

static void job_loaded(void *ud, redisReply *reply)
{
    struct job *j = ud;
    struct trigger *tr = j->tr;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != j->n_custs) {
        j->failed = true;
        job_finish(j);
        return;
    }
    for (size_t i = 0; i < j->n_custs; i++) {
        const redisReply *v = reply->element[i];
        struct cust *c = &j->custs[i];
        if (v->type != REDIS_REPLY_STRING)
            continue; /* a customer the trigger has not seen yet */
        patron_customer_state_free(&c->st);
        int rc = patron_customer_state_decode(&c->st, v->str, (size_t)v->len);
        if (rc || strcmp(c->st.customer_id, c->id) != 0) {
            /* Not trusted; starting afresh may repeat what the ledger would
             * have stopped, hence the error. */
            patron_log(tr->log, PATRON_LOG_ERROR, "stored trigger state unreadable, reset",
                       "\"partition\":%d,\"error\":\"%s\"", j->p->id, patron_strerror(rc));
            patron_customer_state_free(&c->st);
            patron_customer_state_init(&c->st, c->id);
        }
    }
    job_run_engine(j);
    job_messages(j);
}

static void job_load(struct job *j)
{
    struct trigger *tr = j->tr;
    const char **argv = patron_malloc((j->n_custs + 1) * sizeof(*argv));
    size_t *lens = patron_malloc((j->n_custs + 1) * sizeof(*lens));
    char(*keys)[PATRON_KEY_MAX] = patron_malloc((j->n_custs + 1) * sizeof(*keys));
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < j->n_custs; i++) {
        int kl = patron_key_trigger_customer(keys[i], sizeof(keys[i]), j->p->id, j->custs[i].id,
                                             j->custs[i].id_len);
        argv[i + 1] = keys[i];
        lens[i + 1] = kl > 0 ? (size_t)kl : 0;
    }
    int rc = patron_kv_commandv(tr->redis, job_loaded, j, (int)j->n_custs + 1, argv, lens);
    free(keys);
    free(lens);
    free(argv);
    if (rc) {
        j->failed = true;
        job_finish(j);
    }
}

static struct job *job_new(struct part *p, enum job_kind kind, size_t n_custs_max)
{
    struct trigger *tr = p->tr;
    struct job *j = patron_calloc(1, sizeof(*j));
    j->tr = tr;
    j->p = p;
    j->kind = kind;
    j->phase = PHASE_LOAD;
    j->campaigns = tr->campaigns;
    j->custs = patron_calloc(n_custs_max + 1, sizeof(*j->custs));
    j->started_mono = patron_monotonic_ms();
    patron_strmap_init(&j->reco_items);
    p->job = j;
    tr->jobs++;
    return j;
}

static void on_dlq_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct trigger *tr = ud;
    if (err)
        patron_log(tr->log, PATRON_LOG_ERROR, "dead letter not delivered", "\"error\":\"%s\"",
                   rd_kafka_err2str(err));
}

/* Takes up to JOB_UPDATES_MAX updates of the partition. A message that does
 * not decode goes to the DLQ and is skipped. */
static void job_start_updates(struct part *p)
{
    struct trigger *tr = p->tr;
    size_t n = p->q_n < JOB_UPDATES_MAX ? p->q_n : JOB_UPDATES_MAX;
    struct job *j = job_new(p, JOB_UPDATES, n);
    j->msgs = patron_malloc(n * sizeof(*j->msgs));
    j->updates = patron_calloc(n, sizeof(*j->updates));
    j->cust_of = patron_calloc(n, sizeof(*j->cust_of));
    struct patron_strmap idx;
    patron_strmap_init(&idx);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = part_pop(p);
        j->msgs[j->n_msgs++] = m;
        Patron__V1__ProfileUpdate *u = patron__v1__profile_update__unpack(NULL, m->len, m->payload);
        const char *why = NULL;
        if (!u)
            why = "not a ProfileUpdate";
        else if (!u->customer_id[0] || strlen(u->customer_id) > PATRON_ID_MAX)
            why = "customer_id empty or too long";
        else if (!u->event_id[0])
            why = "event_id empty";
        else if (u->occurred_at_ms < 0 || u->occurred_at_ms > PATRON_TIME_MAX_MS)
            why = "occurred_at_ms outside 1970..9999";
        if (why) {
            if (u)
                patron__v1__profile_update__free_unpacked(u, NULL);
            patron_counter_add(tr->m_updates_dlq, 1);
            if (patron_dlq_send(tr->producer, tr->cfg->topic_dlq, m, why, on_dlq_delivered, tr))
                patron_log(tr->log, PATRON_LOG_ERROR, "dead letter not produced",
                           "\"partition\":%d,\"offset\":%" PRId64, p->id, m->offset);
            continue;
        }
        j->updates[i] = u;
        struct cust *c = job_cust(j, u->customer_id, strlen(u->customer_id), &idx);
        j->cust_of[i] = (int32_t)(c - j->custs);
        p->last_msg_mono = patron_monotonic_ms();
    }
    patron_strmap_free(&idx);
    if (j->n_custs == 0) {
        job_built(j); /* only dead letters: the commit records the offset */
        return;
    }
    job_load(j);
}

static void on_due(void *ud, redisReply *reply);

struct due_req {
    struct part *p;
    int64_t bound_ms;
};

/* The bound up to which partition p's timers may fire (see the top): the
 * partition's own event time, since its updates are in event-time order; the
 * clock's now only once there is nothing left to read — known, not assumed
 * (patron_clock_fire_bound) — and in event mode, once ingest too has applied
 * everything (its ProfileUpdates may be on their way while the clock already
 * counts their events) and p has been quiet a while. */
static int64_t fire_bound(struct trigger *tr, struct part *p)
{
    struct patron_fire_input in = {
        .kind = tr->clock.kind,
        .now_ms = patron_clock_now_ms(&tr->clock),
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

static void sweep_check(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->sweeping || p->job || !p->epoch[0])
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

static void on_due(void *ud, redisReply *reply)
{
    struct due_req *r = ud;
    struct part *p = r->p;
    int64_t bound = r->bound_ms;
    free(r);
    p->sweeping = false;
    if (part_release_if_revoked(p) || p->tr->stopping || p->job || !reply ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return;
    struct job *j = job_new(p, JOB_SWEEP, reply->elements);
    j->bound_ms = bound;
    struct patron_strmap idx;
    patron_strmap_init(&idx);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= PATRON_ID_MAX)
            (void)job_cust(j, e->str, (size_t)e->len, &idx);
    }
    patron_strmap_free(&idx);
    if (j->n_custs == 0) {
        job_finish(j);
        return;
    }
    job_load(j);
}

static void job_finish(struct job *j)
{
    struct trigger *tr = j->tr;
    struct part *p = j->p;
    patron_histogram_observe(tr->m_job_seconds,
                             (double)(patron_monotonic_ms() - j->started_mono) / 1000.0);
    if (j->failed) {
        patron_counter_add(tr->m_job_failures, 1);
        if (j->kind == JOB_UPDATES && !p->revoked) {
            /* Redo from the first message: its effects are all or nothing. */
            for (size_t i = 0; i < j->n_msgs; i++) {
                if (j->updates[i])
                    patron__v1__profile_update__free_unpacked(j->updates[i], NULL);
                j->updates[i] = NULL;
            }
            part_unshift(p, j->msgs, j->n_msgs);
            j->n_msgs = 0;
        }
        p->retry_mono = patron_monotonic_ms() + RETRY_MS;
    }
    p->job = NULL;
    tr->jobs--;
    job_free(j);
    if (part_release_if_revoked(p))
        return;
    kick(p);
}

/* Starts the partition's next job if it can run one now. */
static void kick(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->revoked || p->job || !p->epoch[0] || !tr->redis_up || tr->stopping ||
        tr->next_campaigns || patron_monotonic_ms() < p->retry_mono)
        return;
    if (p->q_n > 0)
        job_start_updates(p);
}

/* ---- consuming ------------------------------------------------------------- */

static void on_consumer_ready(void *ud)
{
    struct trigger *tr = ud;
    if (tr->stopping)
        return;
    while (tr->buffered < BUFFERED_PAUSE) {
        size_t n = patron_consumer_poll(tr->consumer, tr->poll_buf, PATRON_ARRAY_LEN(tr->poll_buf));
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = tr->poll_buf[i];
            struct part *p = part_find(tr, m->partition);
            if (p == NULL || m->err) {
                if (m->err)
                    patron_log(tr->log, PATRON_LOG_WARN, "consume error", "\"error\":\"%s\"",
                               rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            part_push(p, m);
        }
    }
    if (tr->buffered >= BUFFERED_PAUSE && !patron_consumer_paused(tr->consumer))
        if (patron_consumer_pause_all(tr->consumer))
            patron_log(tr->log, PATRON_LOG_WARN, "consumer not paused", NULL);
    patron_gauge_set(tr->m_buffered, (double)tr->buffered);
    for (struct part *p = tr->parts; p; p = p->next)
        kick(p);
}

/* ---- the tick: clock, timers, outbox, reloads, shutdown --------------------- */

static void on_clock(void *ud, redisReply *reply)
{
    struct trigger *tr = ud;
    (void)patron_clock_advance_from_reply(&tr->clock, reply, &tr->clock_all_idle);
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
        tr->engine.campaigns = tr->campaigns;
        patron_log(tr->log, PATRON_LOG_INFO, "campaigns reloaded", "\"count\":%zu",
                   tr->campaigns->count);
    }
    if (!tr->redis_up)
        return;
    if (tr->clock.kind == PATRON_CLOCK_EVENT && patron_monotonic_ms() >= tr->clock_next_mono) {
        tr->clock_next_mono = patron_monotonic_ms() + CLOCK_READ_MS;
        if (patron_kv_command(tr->redis, on_clock, tr, "HGETALL %s", PATRON_KEY_CLOCK)) {
            /* asked again at the next tick */
        }
    }
    if (tr->buffered < BUFFERED_RESUME && patron_consumer_paused(tr->consumer))
        if (patron_consumer_resume_all(tr->consumer))
            patron_log(tr->log, PATRON_LOG_WARN, "consumer not resumed", NULL);
    for (struct part *p = tr->parts; p; p = p->next) {
        part_take(p);
        kick(p);
        sweep_check(p);
        outbox_check(p);
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
    tr->engine = (struct patron_engine){.campaigns = campaigns, .profile = &cfg->profile};
    patron_clock_init(&tr->clock, cfg->clock);
    patron_strmap_init(&tr->in_flight);
    for (int c = 1; c < PATRON_CAMPAIGN_CHANNELS; c++) { /* 0 is "any": no topic */
        const char *name = patron_campaign_channel_names[c];
        size_t n = strlen(cfg->topic_campaign_prefix) + strlen(name) + 1;
        tr->topics[c] = patron_malloc(n);
        snprintf(tr->topics[c], n, "%s%s", cfg->topic_campaign_prefix, name);
    }
    make_metrics(tr);

    struct patron_kv_options ro;
    patron_service_kv_options(cfg, log, on_redis_state, tr, &ro);
    int rc = patron_kv_open(&tr->redis, loop, &ro);
    if (rc)
        goto out_free;
    if ((rc = patron_kv_script(tr->redis, COMMIT_LUA, &tr->commit)) ||
        (rc = patron_kv_script(tr->redis, TAKE_LUA, &tr->take)))
        goto out_close_redis;
    struct patron_reco_fetcher_options fo = {.list_max_age_ms = cfg->reco_list_max_age_ms,
                                             .cache_items = (size_t)cfg->reco_cache_items,
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
    snprintf(timeout, sizeof(timeout), "%d", DELIVERY_TIMEOUT_MS);
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
    tr->consumer_props = patron_calloc(2 * (cfg->n_rdkafka_props + 1), sizeof(char *));
    tr->consumer_props[0] = "fetch.wait.max.ms";
    tr->consumer_props[1] = "10";
    for (size_t i = 0; i < 2 * cfg->n_rdkafka_props; i++)
        tr->consumer_props[2 + i] = cfg->rdkafka_props[i];
    const char *topics[] = {cfg->topic_profile_updates};
    struct patron_consumer_options co = {
        .brokers = cfg->kafka_brokers,
        .group_id = cfg->group_id,
        .topics = topics,
        .n_topics = 1,
        .props = (const char *const *)tr->consumer_props,
        .n_props = cfg->n_rdkafka_props + 1,
        .log = log,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
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
        part_free(p);
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
