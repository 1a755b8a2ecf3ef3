/*
 * patron-trigger's insides, shared by its files; trigger.h is the API.
 *
 * A job goes through the files in this order:
 *   trigger_part.c     the partitions this pod owns: their queues of updates,
 *                      taking one (the fencing epoch), letting one go
 *   trigger_jobs.c     a job: its start (decoding, dead letters), loading the
 *                      states, running the pure engine, collecting what it
 *                      decided, its end (redo on failure), starting the next
 *   trigger_message.c  the job's messages: recommendations, catalog titles,
 *                      the CampaignMessage
 *   trigger_commit.c   the one fenced script that commits the job, then the
 *                      input offset
 *   trigger_outbox.c   producing, delivery reports, the outbox record, and
 *                      the outbox check after a crash (a Kafka probe)
 *   trigger_timers.c   due timers: the bound they may fire to, the sweep
 *   trigger_poison.c   what cannot be applied: the bounded decode, dead
 *                      letters, stored state that cannot be used, keys of a
 *                      partition that stop it; retriable or not, decided
 *                      there (trigger_fault)
 *   trigger_erase.c    erasures: a customer's state, timer and outbox
 *                      entries deleted on the partition; fan-out copies
 *   trigger_daily.c    the job's counters by day of event time, and their
 *                      part of the commit
 *   trigger_models.c   the fitted models the engine decides with
 *   trigger.c          lifecycle, consuming, the tick, metrics, reloads
 * trigger.c explains the guarantees; each file states its own.
 *
 * Threading: the loop thread only, except the outbox probe run on a libuv
 * work thread (trigger_outbox.c), which reads only its own work item and
 * the configuration.
 *
 * Lifetime: a revoked partition is detached from tr->parts at once and
 * freed by the last thing that still points to it (its job, its take,
 * sweep or outbox reply, a probe): each of those ends with
 * trigger_part_release_if_revoked. Nothing holds a partition across a
 * callback without one of those flags (job, epoch_asked, sweeping,
 * outbox_busy, stop_checking) set.
 */
#ifndef PATRON_TRIGGER_INTERNAL_H
#define PATRON_TRIGGER_INTERNAL_H

#include "trigger.h"

#include "patron/campaign_engine.h"
#include "patron/clock.h"
#include "patron/kafka.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/recommend_fetch.h"
#include "patron/stats_field.h"
#include "patron/strmap.h"
#include "patron/v1/campaign.pb-c.h"
#include "patron/v1/profile.pb-c.h"

#define TRIGGER_DELIVERY_TIMEOUT_MS 10000 /* message.timeout.ms of the campaign producer */

/* One partition of patron.profile-updates this pod was assigned. */
struct part {
    struct trigger *tr;
    int32_t id;
    char epoch[24]; /* "" until this pod has taken the partition */
    bool epoch_asked;
    bool revoked;           /* detached from the trigger; freed when its job ends */
    rd_kafka_message_t **q; /* owned: a ring of the updates read, in offset order */
    size_t q_head, q_n, q_cap;
    struct job *job;
    int64_t stream_ms;     /* latest event time of an update committed */
    int64_t fired_ms;      /* the highest bound a committed sweep fired timers to */
    int64_t last_msg_mono; /* when the last update arrived */
    int64_t next_offset;   /* every update before it is applied; -1: not known */
    /* Event clock: the now this partition's timers may trust, once it has
     * applied the updates ingest had delivered when that now was written. */
    struct patron_clock_gate gate;
    int64_t retry_mono; /* a failed job is redone from here on */
    bool sweeping;      /* a due-timer lookup in flight */
    bool outbox_busy;   /* an outbox check in flight */
    int64_t outbox_next_mono;
    /* Stopped (trigger_poison.c): a key of the partition holds what the
     * trigger cannot use; no job runs until a look at the keys finds them
     * usable again. Updates read meanwhile are dropped and read again from
     * rewind_offset. */
    bool stopped;
    bool stop_checking; /* a look at the keys in flight */
    int64_t stop_check_mono;
    int64_t rewind_offset; /* -1: nothing dropped */
    char stop_why[256];
    struct part *next;
};

/* A customer of a job, with the state the job works on. */
struct cust {
    char id[PATRON_ID_MAX + 1];
    size_t id_len;
    struct patron_customer_state st;
    bool changed; /* to be written back */
    bool erased;  /* to be deleted */
    /* trigger_poison.c: why the stored state cannot be used (its updates go
     * to the DLQ, the value is kept), or NULL. */
    const char *fault;
    bool unschedule; /* a sweep's customer with such a state: its due entry goes */
    bool purge;      /* erased in this job: its earlier outbox entries go */
};

/* A message the engine decided to send, while it is built. */
struct out_msg {
    struct job *job;
    struct cust *cust;
    struct patron_engine_send send;
    struct patron_reco_answer *reco; /* NULL when the campaign wants none */
    char (*titles)[PATRON_CAMPAIGN_STRING_MAX + 1];
    int64_t *prices;
    uint8_t *bytes; /* the outbox record (trigger_outbox_record) */
    size_t len;
    size_t titles_left; /* catalog lookups still out */
};

struct stat_delta {
    char field[PATRON_STATS_FIELD_MAX];
    int64_t delta;
};

/* A counter of one day, counted into {tp:p}:daily:<day>. key is
 * "<YYYY-MM-DD>|<stats field>": sorted, the days come in order. */
struct daily_delta {
    int64_t day;
    int64_t delta;
    size_t field_at; /* the stats field starts at key + field_at */
    char key[];      /* the map's key */
};

/* The models the engine decides with (trigger_models.c). */
struct trigger_models {
    struct patron_clv_model clv;      /* the CDNOW defaults until a fit is read */
    struct patron_clusters clusters;  /* k 0: none yet */
    uint64_t clv_hash, clusters_hash; /* of the stored values last decoded */
    int64_t next_poll_mono;
    struct patron_counter *m_invalid;
};

/* An item recommended in the job's messages, counted into {tp:p}:reco. */
struct reco_item {
    int64_t count;
    char item[]; /* the map's key */
};

enum job_kind { JOB_UPDATES, JOB_SWEEP };
enum job_phase { PHASE_LOAD, PHASE_BUILD, PHASE_COMMIT };

/* The unit of work: a batch of one partition's updates, or a sweep of its
 * due timers. Owns everything it points to but tr, p and campaigns. */
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
    struct patron_strmap daily;      /* day|field -> struct daily_delta (owned) */
    size_t pending;                  /* lookups out in the current phase */
    bool failed;                     /* redo it: messages go back to the queue */
    int64_t started_mono;
    size_t bytes; /* of msgs: counted in tr->buffered_bytes until freed */
    /* Dead letters not acknowledged yet: the job commits (or ends) only
     * once they are, with after_dlq (trigger_poison.c). */
    size_t dlq_pending;
    void (*after_dlq)(struct job *j);
};

struct trigger {
    uv_loop_t *loop;
    const struct patron_config *cfg;
    const struct patron_log *log;
    struct patron_metrics *metrics;
    /* The campaigns of new jobs; next_campaigns replaces them once no job
     * runs (the tick), and no job starts meanwhile. */
    struct patron_campaigns *campaigns, *next_campaigns;
    struct patron_clock clock;
    struct patron_kv *redis;
    struct patron_kv_script *commit, *take, *load, *check, *ack;
    struct patron_reco_fetcher *reco;
    struct patron_consumer *consumer;
    struct patron_producer *producer;
    char *topics[PATRON_CAMPAIGN_CHANNELS]; /* by channel; [ANY] NULL */
    char **producer_props, **consumer_props;
    size_t n_producer_props;
    struct part *parts;    /* assigned and not revoked */
    size_t buffered;       /* updates in the partitions' queues */
    size_t buffered_bytes; /* their bytes, and those of the updates in jobs */
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
    struct trigger_models models;

    struct patron_counter *m_updates_applied, *m_updates_duplicate, *m_updates_dlq;
    struct patron_counter *m_outcomes[PATRON_STATS];
    struct patron_counter *m_messages, *m_resent, *m_outbox_found, *m_fenced, *m_job_failures;
    struct patron_counter *m_late;
    struct patron_counter *m_bad_state[4]; /* by enum state_fault - 1 */
    struct patron_counter *m_dlq_lost, *m_erasures[2], *m_erased_outbox;
    struct patron_gauge *m_stopped;
    struct patron_histogram *m_job_seconds;
    struct patron_gauge *m_buffered;
};

/* Arguments of one Redis command: borrowed strings, plus the ones it owns
 * (trigger_commit.c). */
struct argv_buf {
    const char **v;
    size_t *l;
    size_t n, cap;
    char **owned;
    size_t n_owned, cap_owned;
};
void trigger_argv_add(struct argv_buf *a, const char *s, size_t len);
void trigger_argv_own(struct argv_buf *a, char *s, size_t len); /* takes s */
void trigger_argv_int(struct argv_buf *a, int64_t v);

/* ---- trigger.c ---- */

/* A Redis callback for replies nobody reads (best-effort writes). */
void trigger_reply_ignored(void *ud, redisReply *reply);

/* ---- trigger_part.c ---- */

/* The Lua script that takes a partition (trigger_part_take). */
extern const char trigger_take_lua[];

/* The partition `id` of tr->parts, or NULL. */
struct part *trigger_part_find(struct trigger *tr, int32_t id);
/* Queues an update read (taken) at the back of p's queue. */
void trigger_part_push(struct part *p, rd_kafka_message_t *m);
/* The update at the front of p's queue (given); p->q_n > 0. */
rd_kafka_message_t *trigger_part_pop(struct part *p);
/* Puts a failed job's messages (taken) back in front, in their order. */
void trigger_part_unshift(struct part *p, rd_kafka_message_t **msgs, size_t n);
/* INCRs p's epoch once Redis is up, unless taken or asked already; kicks p
 * once taken. */
void trigger_part_take(struct part *p);
/* Consumer rebalance callbacks (ud: the trigger). */
void trigger_part_assigned(void *ud, const rd_kafka_topic_partition_list_t *parts);
void trigger_part_revoked(void *ud, const rd_kafka_topic_partition_list_t *parts);
/* True when p is revoked (the caller must forget it); frees it when nothing
 * else points to it any more. */
bool trigger_part_release_if_revoked(struct part *p);
/* Frees p and the updates it queued. */
void trigger_part_free(struct part *p);

/* ---- trigger_jobs.c ---- */

/* Starts p's next job if it can run one now. */
void trigger_kick(struct part *p);
/* A new job on p (p->job), room for n_custs_max customers. */
struct job *trigger_job_new(struct part *p, enum job_kind kind, size_t n_custs_max);
/* Customer `id` of j, added (state initialised) if idx (id -> struct cust)
 * does not have it; j->custs has room for it. */
struct cust *trigger_job_cust(struct job *j, const char *id, size_t len, struct patron_strmap *idx);
/* Loads j's states, runs the engine, then trigger_job_messages. */
void trigger_job_load(struct job *j);
/* Ends j, committed or failed (a failed update job's messages go back to
 * the queue), frees it, and kicks its partition. */
void trigger_job_finish(struct job *j);

/* ---- trigger_message.c ---- */

/* Builds j's messages (j->outs), then trigger_job_commit. */
void trigger_job_messages(struct job *j);

/* ---- trigger_commit.c ---- */

/* The Lua script of the commit (trigger_job_commit), and the one that
 * looks at a stopped partition's keys (the commit's checks alone). */
extern const char trigger_commit_lua[];
extern const char trigger_check_lua[];
/* The keys of both: epoch, due, outbox, stats, reco, stream, offset,
 * outbox index, into keys[TRIGGER_FIXED_KEYS]. */
#define TRIGGER_FIXED_KEYS 8
int trigger_fixed_keys(int32_t partition, char keys[TRIGGER_FIXED_KEYS][PATRON_KEY_MAX]);

/* Commits j in one script (or finishes it at once: failed, or a sweep that
 * changed nothing), stores its offset, produces its messages, finishes it. */
void trigger_job_commit(struct job *j);

/* ---- trigger_outbox.c ---- */

/* The outbox record of msg: "<wall_ms>|" then msg packed; *len its length.
 * The caller owns it. */
uint8_t *trigger_outbox_record(const Patron__V1__CampaignMessage *msg, int64_t wall_ms,
                               size_t *len);
/* Hands a committed job's messages to the producer (none once its
 * partition is revoked: the new owner's outbox check sends them). */
void trigger_produce_job(struct job *j);
/* Looks at p's outbox when due (a crash may have left entries in it). */
void trigger_outbox_check(struct part *p);

/* ---- trigger_poison.c ---- */

/* What a failure is. Decided in one place (trigger_fault): RETRY is the
 * infrastructure (Redis or Kafka down, a timeout, a new owner): the job is
 * redone from its first update, nothing lost, nothing doubled. PARTITION is
 * a key of the partition that the trigger cannot use: the partition stops
 * until an operator fixes it (trigger_part_stop). A record that cannot be
 * applied is neither: it goes to the DLQ and the partition moves on. */
enum trigger_fault { TRIGGER_FAULT_NONE, TRIGGER_FAULT_RETRY, TRIGGER_FAULT_PARTITION };

/* The fault a Redis reply stands for (NULL: the connection failed). */
enum trigger_fault trigger_fault(const redisReply *reply);

/* Why a stored state cannot be used (cust.fault). */
enum state_fault { STATE_OK, STATE_UNREADABLE, STATE_WRONG_TYPE, STATE_TOO_BIG, STATE_OTHER };

/* The Lua script that loads a job's states (trigger_job_load): per key, the
 * value, nil, or {type} when it is not a string or is over
 * PATRON_ENGINE_STATE_MAX bytes (not read). */
extern const char trigger_load_lua[];

/* Decodes update m with bounds into *u; NULL, or why it cannot be applied. */
const char *trigger_update_decode(const rd_kafka_message_t *m, Patron__V1__ProfileUpdate **u);
/* Sends update m of j's partition to the DLQ with the reason; j waits for
 * its acknowledgement before it commits (trigger_job_commit) or ends. */
void trigger_dead_letter(struct job *j, const rd_kafka_message_t *m, const char *why);
/* True when j still waits for dead letters: then calls next(j) once they
 * are acknowledged (failed, if one could not be sent and must be). */
bool trigger_dlq_wait(struct job *j, void (*next)(struct job *j));
/* Reads customer c's state from the load script's reply v; on a state that
 * cannot be used, logs it, counts it, sets c->fault and leaves a fresh
 * state (the stored value is kept: nothing writes it). */
void trigger_state_read(struct job *j, struct cust *c, const redisReply *v);
/* Stops p: reply (an error reply) says why; logged and counted once. */
void trigger_part_stop(struct part *p, const redisReply *reply);
/* From the tick: a stopped p looks at its keys again, and starts again
 * once they are usable. */
void trigger_part_stopped_check(struct part *p);
/* Consuming: takes m (dropping it) when p is stopped. */
bool trigger_part_drop_if_stopped(struct part *p, rd_kafka_message_t *m);
/* Drops a stopped p's queue (read again from its first update). */
void trigger_part_drop_queue(struct part *p);

/* ---- trigger_erase.c ---- */

/* True when u, read on partition `partition`, is a fan-out copy of an
 * erasure from another partition (ProfileUpdate.fanout). */
bool trigger_is_fanout(const Patron__V1__ProfileUpdate *u, int32_t partition);
/* Applies erasure update i of j to its customer c without the engine (a
 * fan-out copy, or a state that cannot be read): the state goes, its
 * timers without firing, its outbox entries at the commit. */
void trigger_erase(struct job *j, struct cust *c, size_t i);
/* The engine erased c (an erasure in its partition's order): its outbox
 * entries go at the commit too. */
void trigger_erased(struct job *j, struct cust *c);
/* The Lua script of an acknowledged outbox entry: KEYS outbox, index; ARGV
 * message id, customer id. */
extern const char trigger_ack_lua[];
/* Removes an acknowledged (or found) message from p's outbox and index. */
void trigger_outbox_ack(struct trigger *tr, int32_t partition, const char *customer_id,
                        const char *message_id);
/* ---- trigger_daily.c ---- */

/* Adds a counter of the event-time day of at_ms to j. */
void trigger_daily_add(struct job *j, const char *field, int64_t at_ms, int64_t delta);
/* Frees j's daily counters. */
void trigger_daily_free(struct job *j);
/* The commit script's daily part, a string literal pasted into
 * trigger_commit_lua: dk is the index in KEYS of {tp:p}:daily, `a` the
 * first of its arguments. */
#define TRIGGER_DAILY_LUA                                                                          \
    "local ndays = tonumber(ARGV[a]); a = a + 1\n"                                                 \
    "for d = 1, ndays do\n"                                                                        \
    "  local date, num, nf = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]); a = a + 3\n"             \
    "  for i = 1, nf do redis.call('HINCRBY', KEYS[dk + d], ARGV[a], ARGV[a + 1]); a = a + 2 "     \
    "end\n"                                                                                        \
    "  redis.call('ZADD', KEYS[dk], num, date)\n"                                                  \
    "end\n"                                                                                        \
    "local over = redis.call('ZCARD', KEYS[dk]) - tonumber(ARGV[a])\n"                             \
    "if over > 0 then\n"                                                                           \
    "  for _, old in ipairs(redis.call('ZRANGE', KEYS[dk], 0, over - 1)) do\n"                     \
    "    redis.call('DEL', KEYS[dk] .. ':' .. old)\n"                                              \
    "  end\n"                                                                                      \
    "  redis.call('ZREMRANGEBYRANK', KEYS[dk], 0, over - 1)\n"                                     \
    "end\n"
/* The keys: {tp:p}:daily, then one per day of j's counters, in day order. */
void trigger_daily_keys(struct job *j, struct argv_buf *a);
/* The arguments: the days (date, number, n, field/delta pairs), then the
 * number of days kept. */
void trigger_daily_args(struct job *j, struct argv_buf *a);

/* ---- trigger_models.c ---- */

/* The CDNOW defaults, or the overrides of the configuration. */
void trigger_models_init(struct trigger *tr);
/* Reads {model}:clv and {model}:clusters when due (the tick), unless fixed
 * or no campaign needs them. */
void trigger_models_poll(struct trigger *tr);
/* The engine's inputs: valid until the next loop iteration. */
const struct patron_clv_model *trigger_models_clv(const struct trigger *tr);
const struct patron_clusters *trigger_models_clusters(const struct trigger *tr); /* NULL: none */

/* ---- trigger_timers.c ---- */

/* Starts a sweep job on p if it is idle and has timers due. */
void trigger_sweep_check(struct part *p);

#endif
