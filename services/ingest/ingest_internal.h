/*
 * The ingest pipeline's insides, shared by its files (ingest.h has the
 * guarantees; this header what each file owes the others):
 *
 *   ingest.c        lifecycle, the pump, reset and recovery, rebalance
 *                   callbacks, the tick, metrics, positions
 *   ingest_batch.c  the batch machine: start, classify, apply, the ordering
 *                   (apply_ready, write_ready, settle, complete), publish
 *   ingest_fault.c  what goes wrong: the one place that tells a poison pill
 *                   (to the DLQ, the partition moves on) from a retriable
 *                   fault (pause, replay from the stored offsets), and the
 *                   dead letters
 *   ingest_store.c  the Redis store protocol: versioned reads, grouped
 *                   compare-and-set calls, profile writes and erasures,
 *                   item statistics, catalog writes, the event clock
 *   ingest_graph.c  the item neighbour lists: pairs, collect, read, merge
 *                   with marks, write, retry ordering
 *   ingest_identity.c  visitors: the profiles a batch must read besides its
 *                   events' own (the customers of merged visitors, the
 *                   visitors of erased customers), routing a merged
 *                   visitor's events to its customer, an Identify's two
 *                   writes, the erasure of a customer's visitors
 *
 * The store and the graph act on a batch through two calls only: a call
 * they send adds one to b->pending and its callback ends with
 * ingest_batch_release(b); whatever fails calls ingest_batch_fail(b, why)
 * (a call that could not be sent adds nothing to pending). The phases are
 * the batch machine's, but for the graph's own (GRAPH_READ, GRAPH_WRITE),
 * which ingest_graph.c sets as it sends.
 *
 * @locality: everything runs on the service's single libuv loop; Kafka and
 * Redis callbacks are delivered on it by the core adapters.
 */
#ifndef PATRON_INGEST_INTERNAL_H
#define PATRON_INGEST_INTERNAL_H

#include "ingest.h"

#include <protobuf-c/protobuf-c.h>

#include "patron/arena.h"
#include "patron/catalog.h"
#include "patron/graph.h"
#include "patron/graph_row.h"
#include "patron/kafka.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/lru.h"
#include "patron/pace.h"
#include "patron/profile.h"
#include "patron/profile_codec.h"
#include "patron/strmap.h"
#include "patron/v1/catalog.pb-c.h"
#include "patron/v1/event.pb-c.h"

/* Neighbour pairs one purchase may add to the item graph. */
#define GRAPH_PAIRS_MAX 4096

/* The encoders' scratch: a profile with its version, or a ProfileUpdate of
 * up to a few hundred items. */
#define ENCODED_MAX (PATRON_PROFILE_VERSION_LEN + PATRON_PROFILE_ENCODED_MAX)

/* Keys per MGET. A call holds Redis while it runs, and the API reads the
 * same Redis: this keeps one call well under a millisecond. On a cluster a
 * call also never spans hash slots (patron_kv_key_group). */
#define READ_CHUNK 256

enum topic_kind { TOPIC_EVENTS, TOPIC_CATALOG };

struct batch;
struct customer;
struct graph_key;

/* A value a batch reads, then writes with a compare-and-set on its first
 * PATRON_PROFILE_VERSION_LEN bytes (a profile or a neighbour list). */
struct versioned {
    char key[PATRON_KEY_MAX];
    size_t key_len;
    unsigned group;  /* patron_kv_key_group of key */
    uint8_t *stored; /* as read (arena), or NULL: absent (or not a string) */
    size_t stored_len;
    bool wrong_type; /* the key holds another Redis type: never written */
    uint8_t expected[PATRON_PROFILE_VERSION_LEN]; /* the version written over */
    size_t expected_len;                          /* 0: the key was absent */
    const char *ttl;                              /* seconds, or "0" */
    const uint8_t *value;                         /* arena */
    size_t len;
};

/* One multi-key call's callback context (arena): the values of an MGET or
 * of a compare-and-set call. */
struct multi_call {
    struct batch *b;
    size_t n;
    struct versioned **v;
    size_t present;       /* MGET: the strings it found (the rest: nil) */
    struct patron_kv *kv; /* MGET: its connection, for the TYPE probes */
};

/* One consumed message and what became of it. */
struct event {
    rd_kafka_message_t *msg;
    Patron__V1__Event *ev; /* NULL for DLQ and catalog messages */
    struct customer *cust; /* whose key it came with: a customer's, or a visitor's */
    struct event *next_of_customer;
    struct event *next_redirected; /* a merged visitor's, in its customer's chain */
    uint8_t *update;               /* packed ProfileUpdate to publish (arena), or NULL */
    size_t update_len;
    int32_t update_partition;     /* of patron.profile-updates: the customer's */
    struct customer *update_cust; /* whose update it is (its key) */
};

/* A profile touched by a batch, a customer's or a visitor's: read, then
 * written. Stage 1 writes go first; a customer whose new value relies on
 * visitors the batch writes (an Identify's merge, an erasure of its
 * visitors) writes in stage 2, once stage 1 is acknowledged. */
struct customer {
    struct batch *b;
    const char *id; /* borrowed from its first event (or the batch's strings) */
    size_t id_len;
    bool visitor;                   /* keyed {v:<anonymous id>} */
    struct event *first, *last;     /* its own events, in batch order */
    struct versioned v;             /* the profile */
    struct patron_lru_entry *entry; /* the cache entry the batch wrote, or NULL */
    bool erases;                    /* an erasure among its own events */
    /* identity (ingest_identity.c) */
    struct customer *identified_by; /* visitor: the customer of its Identify in this batch */
    int32_t identify_partition;     /* ... and that Identify's partition */
    struct customer *target;        /* visitor: merged, its events go to this customer */
    int32_t target_partition;       /* ... whose ProfileUpdates go to this partition */
    struct event *redirected, *redirected_last; /* customer: its merged visitors' events */
    bool holds_contents; /* visitor, merged: its key still holds what it brought */
    bool after_visitors; /* customer: written in stage 2, after the visitors it relies on */
    bool loaded;         /* base and version below are known (apply) */
    bool has_base;       /* the batch's write is built on a value (else: absent) */
    uint8_t base[PATRON_PROFILE_VERSION_LEN]; /* ... whose version prefix is this */
    uint64_t version;                         /* ... that is, this version */
    int stage;                                /* 0: not written; 1, 2: the write's stage */
    bool erasure;           /* the write erases a customer (its other keys go too) */
    const uint8_t *compact; /* a merged visitor's alias alone, written last, best effort */
    size_t compact_len;
};

/* A batch's way: its profiles are read (READING), then, in batch order,
 * applied; its neighbour lists wait for the batch before to have merged its
 * own (GRAPH_WAIT), are read (GRAPH_READ), merged and written (GRAPH_WRITE;
 * the lists another writer changed meanwhile wait for every batch before
 * to have written its own, GRAPH_RETRY, and go round again from READ);
 * then, in batch order (see write_ready), the profiles, item statistics and
 * clock are written (WRITING), and the ProfileUpdates published (DONE). The
 * graph goes first so that a crash in between replays the batch; the lists'
 * marks (graph_merge) make the replay count each purchase once. */
enum phase {
    PHASE_READING,
    PHASE_GRAPH_WAIT,
    PHASE_GRAPH_READ,
    PHASE_GRAPH_WRITE,
    PHASE_GRAPH_RETRY,
    PHASE_WRITING,  /* stage 1 */
    PHASE_WRITING2, /* stage 2: the customers that rely on stage 1's visitors */
    PHASE_DONE
};

/* The next offset to store for one partition of one topic. */
struct position {
    enum topic_kind topic;
    int32_t partition;
    int64_t next_offset;
    int64_t max_event_ms; /* events topic: the batch's latest event time */
    bool idle;            /* ingest's own: not busy in {clock} (marked idle, or not written yet) */
};

/* How long this pod must have had nothing to apply, on any of its events
 * partitions, before the event clock stops waiting for them
 * (ingest_mark_idle_partitions): a producer's batches reach the partitions
 * milliseconds apart, and a partition marked idle in that gap would let
 * the clock pass events it is about to receive (Kafka Streams'
 * max.task.idle.ms plays the same part). */
#define INGEST_IDLE_QUIET_MS 2000

struct batch {
    struct ingest *ing;
    uint64_t seq;
    size_t input_bytes; /* its records' keys and values */
    struct patron_arena arena;
    ProtobufCAllocator pb; /* over arena, for the event decoder */
    struct event *events;
    size_t n_events;
    struct customer **customers; /* every profile touched: customers and visitors */
    size_t n_customers, cap_customers;
    struct patron_strmap by_customer, by_visitor;
    struct position *positions;
    size_t n_positions;
    bool has_identity;      /* visitors' events or Identifies: ingest_identity.c has work */
    bool stage2;            /* writes in stage 2 */
    struct graph_key *rows; /* the neighbour lists the batch changes */
    size_t n_rows;
    bool graph_conflict; /* a round of neighbour lists lost to another writer */
    bool graph_done;     /* its lists are written: it writes when its turn comes */
    /* What the batch's purchases add to the item statistics, aggregated so
     * that each item's keys are written once per batch. */
    struct patron_strmap strings; /* interned item ids: id -> owned copy */
    struct patron_strmap graph;   /* item -> struct graph_row (ingest_graph.c) */
    struct patron_strmap stats;   /* item -> struct item_stat */
    size_t pending;               /* Redis replies and delivery reports outstanding */
    enum phase phase;
    bool failed;
    bool cancelled;
    bool read;     /* every read is back: the batch applies when its predecessors did */
    bool resolved; /* the rounds of reads for visitors are done (ingest_identity_resolve) */
    int64_t started_ms;
    int64_t written_ms; /* when Redis had acknowledged all its writes (PHASE_DONE) */
    struct batch *next;
};

/* Popularity, trend and category of one item. */
struct item_stat {
    const char *item;
    int64_t buyers; /* new distinct buyers */
    double trend;   /* sum of patron_trend_weight of its purchase lines */
    int64_t lines;  /* its purchase lines ({items}:sold) */
    const char *category;
};

struct ingest {
    uv_loop_t *loop;
    const struct patron_config *cfg;
    const struct patron_log *log;
    struct patron_metrics *metrics;

    struct patron_consumer *consumer;
    struct patron_producer *producer;
    struct patron_kv *redis;
    struct patron_kv_script *cas, *cas_many, *clock, *items;
    /* The neighbour lists have a connection of their own: a batch's lists
     * are read only after the batch before merged its own (graph_next), and
     * on the main connection that read would queue behind every batch's
     * profile reads and writes. Lists are only ever touched on this one. */
    struct patron_kv *graph_kv;
    struct patron_kv_script *graph_cas;
    size_t kv_closing; /* handles still to close at shutdown */

    struct batch *head, *tail; /* in-flight batches, oldest first */
    size_t inflight;
    /* Of PATRON_BATCH_MAX, PATRON_BATCH_MAX_BYTES and PATRON_INFLIGHT_BATCHES,
     * the part in use: cut when Redis fails or answers a batch late, grown
     * back as batches end quickly (pace.h, ingest_pace_*). */
    struct patron_pace pace;
    uint64_t next_seq;
    size_t reading;             /* batches between read and write */
    bool applying;              /* apply_ready is on the stack */
    uint64_t two_stage_batches; /* batches that wrote in two stages (fault injection) */
    bool starting_writes;       /* write_ready is on the stack */

    /* The caches, values this process wrote (pin: the seq of the in-flight
     * batch that wrote it last): */
    struct patron_lru cache;    /* profiles, pinned by the batches in flight */
    struct patron_lru rows;     /* neighbour lists, pinned by their last merger */
    struct patron_lru cats;     /* item -> the category last written to {items}:cat */
    struct batch *graph_reader; /* the batch in its first GRAPH_READ */
    uint64_t row_version;       /* the next neighbour list's version */
    uint32_t version_tag;       /* the low half of every profile version this process writes */
    struct patron_graph_cell *cells, *incs; /* scratch of graph_merge (incs: GRAPH_PAIRS_MAX) */
    struct patron_graph_mark *marks, *marks_out; /* the same, PATRON_GRAPH_MARKS_MAX each */
    uint8_t *encoded;                            /* scratch of the encoders, ENCODED_MAX bytes */
    struct patron_arena_spares spares;
    struct patron_profile *profile;   /* scratch of apply_customer */
    struct patron_profile *profile2;  /* ... the visitor of an Identify, redirect or erasure */
    char (*prior)[PATRON_ID_MAX + 1]; /* the bought list before a purchase */
    struct patron_graph_pair *pairs;  /* scratch of ingest_graph_note */
    struct position *positions;       /* last stored per partition */
    size_t n_positions, cap_positions;
    /* Per partition of topic_profile_updates (index), the offset after the
     * last ProfileUpdate Kafka acknowledged: the event clock's companion
     * ({clock}:out, ingest_write_clock). At most PATRON_CLOCK_PARTITIONS_MAX. */
    int64_t *delivered;
    size_t n_delivered;
    int64_t events_busy_mono; /* when a batch last held events (monotonic ms); 0: never */

    /* Messages polled and not in a batch yet (a batch stops taking at
     * PATRON_BATCH_MAX_BYTES), oldest first, and their bytes. Their
     * positions are learned: a reset drops them and seeks back. */
    rd_kafka_message_t **poll_buf;
    size_t n_carry, carry_bytes;
    bool pumping;            /* ingest_pump is on the stack */
    bool carry_stale;        /* a reset began while pumping: the carry goes */
    int update_partitions;   /* of topic_profile_updates: 0 while unknown */
    bool redis_up, graph_up; /* each connection usable */
    bool resetting;
    bool stopping;
    void (*on_stopped)(void *ud);
    void *stopped_ud;
    uv_timer_t tick; /* idle partitions, reset retries, shutdown deadline */
    int64_t stop_deadline_ms;

    struct patron_counter *m_events_applied, *m_events_duplicate, *m_events_replayed;
    struct patron_counter *m_events_stale, *m_events_refused;
    struct patron_counter *m_catalog, *m_batches, *m_resets, *m_updates;
    struct patron_counter *m_graph_conflicts, *m_graph_rebuilt, *m_graph_replayed;
    struct patron_counter *m_identify[6]; /* merged, replayed, duplicate, stale, conflict, limit */
    struct patron_counter *m_redirected, *m_visitors_erased, *m_compacted, *m_not_read;
    struct patron_counter *m_shared_counted, *m_conflicts;
    struct patron_counter *m_dlq, *m_dlq_truncated, *m_erasure_copies;
    struct patron_counter *m_profile_unreadable, *m_profile_wrong_type, *m_rows_wrong_type;
    struct patron_counter *m_items_wrong_type;
    struct patron_gauge *m_inflight, *m_inflight_bytes, *m_pace;
    struct patron_histogram *m_batch_seconds;
};

/* ---- faults: poison or retriable (ingest_fault.c) ------------------------- */

/*
 * What can go wrong, and so what becomes of it. Two kinds, told apart in one
 * place (ingest_fault_poison):
 * - retriable: the world's fault (Redis or Kafka down or slow, another
 *   writer). The batch fails, the pipeline pauses, and once the cause is
 *   gone everything since the stored offsets is replayed: nothing lost,
 *   nothing doubled (ingest.h);
 * - poison: the record's own, and it would fail the same way for ever. It
 *   goes to the DLQ with its reason and the partition moves on; a replay
 *   sends the same dead letter again (at least once, same source headers).
 */
enum ingest_fault {
    FAULT_NONE,              /* nothing went wrong */
    FAULT_REDIS,             /* retriable: no connection, an error reply, a timeout */
    FAULT_KAFKA,             /* retriable: a send refused for now, a delivery failed */
    FAULT_CONFLICT,          /* retriable: another writer changed a profile we read */
    FAULT_UNDECODABLE,       /* poison: does not decode, or breaks the contract */
    FAULT_REFUSED,           /* poison: its profile refused it (late_beyond_ledger) */
    FAULT_STORED_UNREADABLE, /* poison: the customer's stored profile does not decode */
    FAULT_STORED_WRONG_TYPE, /* poison: the record's key holds another Redis type */
    FAULT_UNAPPLICABLE,      /* poison: apply, encode or pack refused a checked event */
    FAULT_TOO_LARGE,         /* poison: a message the producer or a broker never takes */
};

bool ingest_fault_poison(enum ingest_fault f);

/* The fault of a failed delivery or send (a PATRON_E* from
 * patron_producer_send), and of a Redis reply that is an error. */
enum ingest_fault ingest_fault_of_delivery(rd_kafka_resp_err_t err);
enum ingest_fault ingest_fault_of_send(int rc);

/* The fault of a Redis reply to a command on a key of the record's own (an
 * item's hash): FAULT_NONE for a reply that is not an error, WRONGTYPE is
 * the record's poison, anything else (no reply, OOM, READONLY, LOADING...)
 * the world's. On Patron's shared keys ({items}:*, {clock}) every error is
 * retriable: no record is at fault. */
enum ingest_fault ingest_fault_of_reply(const redisReply *reply);

/* Sends e to the DLQ with the reason (copied) for poison f: counted, logged,
 * a delivery the batch waits for. A dead letter the DLQ topic refuses as too
 * large goes again as its headers and key only. A send that fails fails the
 * batch (retriable). */
void ingest_dead_letter(struct batch *b, struct event *e, enum ingest_fault f, const char *reason);

/* Every event of c in the batch to the DLQ for the same poison, and c's
 * stored value left as it is: logged once with the customer, counted. */
void ingest_poison_customer(struct batch *b, struct customer *c, enum ingest_fault f,
                            const char *reason);

/* ---- ingest.c ------------------------------------------------------------ */

/* Takes batches off the consumer while there is room in the pipeline. */
void ingest_pump(struct ingest *ing);

/* The pace's limits: events and bytes a batch takes, batches in flight. */
size_t ingest_batch_events_max(const struct ingest *ing);
size_t ingest_batch_bytes_max(const struct ingest *ing);
size_t ingest_inflight_max(const struct ingest *ing);

/* A batch ended well (in order, its offsets stored): the pace may change
 * (pace.h), by the time Redis took from its start to its last write
 * acknowledged. Kafka's part (the ProfileUpdates' delivery) does not
 * count: a slow broker is not a reason to send Redis less. */
void ingest_pace_done(struct ingest *ing, const struct batch *b);

/* Cancels every in-flight batch and, once their callbacks are back and
 * Redis is up, seeks each partition to its last stored offset. Called
 * again (why == NULL) whenever one of those conditions may have changed. */
void ingest_reset(struct ingest *ing, const char *why);

/* The position of (t, p) among v[0 .. n), or NULL. */
struct position *ingest_position_find(struct position *v, size_t n, enum topic_kind t, int32_t p);

/* The first message of a partition after an assignment or a seek tells
 * where consumption stands, should the pipeline have to seek back. */
void ingest_position_learn(struct ingest *ing, enum topic_kind t, int32_t p, int64_t offset);

const char *ingest_topic_name(const struct ingest *ing, enum topic_kind t);

/* ---- ingest_batch.c ------------------------------------------------------ */

/* Sets up a batch of msgs[0 .. n) in *out: decodes and sorts them, taking
 * msgs[0 .. k) (freed with the batch) and returning k >= 1; it stops taking
 * once its records and what decoding them took reach
 * PATRON_BATCH_MAX_BYTES, or at a message it cannot take in order
 * (ingest_identity_attach). ingest_batch_go then sets it on its way (its
 * reads; it may settle, and call ingest_pump, before returning). */
size_t ingest_batch_start(struct ingest *ing, rd_kafka_message_t **msgs, size_t n,
                          struct batch **out);
void ingest_batch_go(struct batch *b);

/* What the batch costs in memory now: its records and its arena. */
size_t ingest_batch_bytes(const struct batch *b);

/* Fails the batch (once; a cancelled batch stays quiet): resets the
 * pipeline, which cancels every batch in flight. why is borrowed. */
void ingest_batch_fail(struct batch *b, const char *why);

/* A callback of this batch came back; the last one moves it on (and may
 * free it: b is not to be used after). */
void ingest_batch_release(struct batch *b);

/* Takes b out of the in-flight list. */
void ingest_batch_unlink(struct ingest *ing, struct batch *b);

/* Frees b, its messages and everything from its arena. */
void ingest_batch_free(struct batch *b);

/* A copy of the NUL-terminated s that lives as long as the batch, the
 * same pointer for equal strings. */
const char *ingest_batch_intern(struct batch *b, const char *s);

/* ---- ingest_store.c ------------------------------------------------------ */

/* Registers the scripts of the main connection (ing->redis) and of the
 * graph's (ing->graph_kv). */
int ingest_store_scripts(struct ingest *ing) PATRON_MUST_USE;
int ingest_store_graph_scripts(struct ingest *ing) PATRON_MUST_USE;

/* Calls per run of one key group in v[0 .. n), at most `chunk` keys each:
 * send(b, mc) sends one, and its callback gets mc and releases b. On a
 * cluster v is sorted first. Nonzero when a call could not be sent: the
 * batch has failed then, so a caller with nothing to undo may ignore it. */
int ingest_send_grouped(struct batch *b, struct versioned **v, size_t n, size_t chunk,
                        int (*send)(struct batch *b, struct multi_call *mc));

/* The same for compare-and-set calls, with the new keys in calls of their
 * own (sent as MSETNX). Reorders v. */
int ingest_cas_grouped(struct batch *b, struct versioned **v, size_t n,
                       int (*send)(struct batch *b, struct multi_call *mc));

/* Sends an MGET of mc's keys on kv; the values land in their versioned
 * (stored, stored_len; copied into the batch's arena). MGET answers nil for
 * a key of another type as for an absent one: an EXISTS of the same keys
 * follows it (the caller counts the MGET; this counts the EXISTS and, when
 * the two disagree, a TYPE of each nil key), and a key of another type is
 * marked wrong_type, so that it is never written over. */
int ingest_store_mget(struct patron_kv *kv, struct multi_call *mc) PATRON_MUST_USE;

/* Sends mc's values in one compare-and-set call on kv (script: the
 * CAS_MANY one of that connection): all of them new keys, or none. cb
 * gets mc and gives its reply to ingest_cas_outcome. */
int ingest_store_cas(struct multi_call *mc, patron_redis_cb cb, struct patron_kv *kv,
                     struct patron_kv_script *script) PATRON_MUST_USE;

/* A compare-and-set reply: 1 if written, 0 if another writer won (then
 * nothing was); -1 for an error, the batch failed. */
int ingest_cas_outcome(struct batch *b, const redisReply *reply);

/* Reads the batch's profiles from b->customers[from] on: the cache's
 * first, the rest by MGET. */
void ingest_read_profiles(struct batch *b, size_t from);

/* c's profile as the apply sees it (what the batch wrote of it, else the
 * cache's, else what was read; NULL: absent), and its length. */
const uint8_t *ingest_profile_current(struct batch *b, struct customer *c, size_t *len);

/* Decodes c's current profile into p (an empty one when absent); the first
 * load records the base its write will be built on. FAULT_NONE, or the
 * poison that keeps it from being used: FAULT_STORED_WRONG_TYPE (the key
 * holds another Redis type), FAULT_STORED_UNREADABLE (the value does not
 * decode, or is not c's). */
enum ingest_fault ingest_profile_load(struct batch *b, struct customer *c,
                                      struct patron_profile *p) PATRON_MUST_USE;

/* c's profile cannot be used (poison f): it is never written over, and
 * every event of c's in the batch, its merged visitors' too, goes to the
 * DLQ (ingest_poison_customer). */
void ingest_poison_profile(struct batch *b, struct customer *c, enum ingest_fault f);

/* Sets p as c's new value (arena) to be written over c's base in the given
 * stage (a later call replaces the value and keeps the higher stage); the
 * cache has it from now on, pinned by the batch. PATRON_EINVAL when p does
 * not encode. */
int ingest_profile_store(struct batch *b, struct customer *c, const struct patron_profile *p,
                         bool erasure, int stage) PATRON_MUST_USE;

/* The batch's writes, in its turn: the profiles of a stage (1, then 2),
 * item statistics, its partitions' event clock; last, best effort, the
 * merged visitors' aliases (ingest_identity.c sets c->compact). */
void ingest_write_profiles(struct batch *b, int stage);
void ingest_write_compactions(struct batch *b);
void ingest_write_item_stats(struct batch *b);

/* The version of a profile written over one of version `base`: the high
 * half counts the writes, the low half is this process's random tag. Two
 * ingests write a customer (its own partition's events and its merged
 * visitors'), and a batch built on a write that lost its compare-and-set
 * expects that write's version: with a plain counter it could equal the
 * version the other ingest wrote meanwhile, and the batch would land over
 * a value it never read. With the tag it cannot (unless two processes drew
 * the same 32 bits). */
uint64_t ingest_next_version(const struct ingest *ing, uint64_t base);

/* Once a batch is complete (its ProfileUpdates acknowledged, in order):
 * its partitions' latest event times into {clock}, and with them, in the
 * same script, the offsets ingest_note_delivered counted into {clock}:out,
 * so that the trigger lets the clock fire a partition's timers only once it
 * has applied every update delivered before that time was written
 * (docs/guarantees.md, "Time"). Best effort: the next batch writes again. */
void ingest_write_clock(struct ingest *ing, const struct batch *b);
/* A ProfileUpdate Kafka acknowledged at (partition, offset). */
void ingest_note_delivered(struct ingest *ing, int32_t partition, int64_t offset);

/* The batch's partitions that the clock holds idle are busy again; sent
 * before any of the batch's writes. */
void ingest_clock_busy(struct batch *b);

/* Marks idle, in the clock, the partitions with nothing left to read (best
 * effort). Only with no batch in flight. */
void ingest_mark_idle_partitions(struct ingest *ing);

/* A catalog message's writes: the item's hash, stock, category. */
void ingest_write_catalog(struct batch *b, struct event *e, const Patron__V1__ItemUpdate *u);

/* ---- ingest_identity.c ---------------------------------------------------- */

/* The profile of a customer (visitor false) or a visitor id of the batch,
 * NULL if it has none yet; ingest_identity_add adds it (not read yet). */
struct customer *ingest_identity_get(struct batch *b, bool visitor, const char *id, size_t len);
struct customer *ingest_identity_add(struct batch *b, bool visitor, const char *id, size_t len);

/* Sorts a checked event to its profile (and, for an Identify, adds the
 * visitor's). False, changing nothing, when e must begin the next batch:
 * an event of a visitor after its Identify from the same partition, or an
 * Identify of a visitor another customer identified in this batch (the
 * batch applies visitors before customers). */
bool ingest_identity_attach(struct batch *b, struct event *e);

/* After a round of reads: adds the profiles the apply will need besides
 * the events' own (the customer of a merged visitor, the visitors of an
 * erased customer) and reads them; true when it sent reads (another round). */
bool ingest_identity_resolve(struct batch *b);

/* Before the apply: the events of merged visitors go to their customers'
 * chains (redirected), in batch order. */
void ingest_identity_route(struct batch *b);

/* The three events that concern two profiles, applied to customer c (its
 * profile p, loaded) with the visitor in ing->profile2: an Identify, a
 * merged visitor's event, and, after an erasure of c, its visitors'
 * erasure (aliases: c's anonymous ids before it). They write the visitors
 * (stage 1) and ask c's write for stage 2. 0 when applied, 1 when the event
 * went to the DLQ (its visitor's stored profile cannot be used; a checked
 * event apply refused), < 0 when the batch failed. */
int ingest_identity_identify(struct batch *b, struct customer *c, struct patron_profile *p,
                             struct event *e, struct patron_identify_outcome *out);
int ingest_identity_redirected(struct batch *b, struct customer *c, struct patron_profile *p,
                               struct event *e, struct patron_apply_outcome *out);
int ingest_identity_erase_visitors(struct batch *b, struct customer *c, const struct event *e,
                                   char (*aliases)[PATRON_ID_MAX + 1], size_t n);

/* ---- ingest_graph.c ------------------------------------------------------ */

/* What an applied purchase adds to the neighbour lists: its co-occurrence
 * pairs with the customer's recent history (prior: the bought list before
 * it), each with the purchase's Kafka position. */
void ingest_graph_note(struct batch *b, const char (*prior)[PATRON_ID_MAX + 1], size_t n_prior,
                       const struct event *e);

/* The neighbour lists the applied batch changes, in b->rows. */
void ingest_graph_collect(struct batch *b);

/* The oldest batch waiting to read its lists starts, unless one is
 * reading: lists are read in batch order, each after the one before
 * merged its own. */
void ingest_graph_next(struct ingest *ing);

/* The batch's round of lists is read (GRAPH_READ settled): merge and
 * write them. */
void ingest_graph_write(struct batch *b);

/* The oldest batch that lost lists to another writer goes round again,
 * once every batch before it has written its own. */
void ingest_graph_retry_next(struct ingest *ing);

/* The lists the batch wrote are in Redis: the cache entries it pinned may
 * go. */
void ingest_graph_release(struct ingest *ing, const struct batch *b);

/* Frees the batch's pairs (its arena has the rest). */
void ingest_graph_free(struct batch *b);

#endif
