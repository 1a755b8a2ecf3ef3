/*
 * The ingest pipeline (see ingest.h for the guarantees).
 *
 * @locality: everything here runs on the service's single libuv loop;
 * Kafka and Redis callbacks are delivered on it by the core adapters.
 */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/catalog.h"
#include "patron/clock.h"
#include "patron/event_codec.h"
#include "patron/event_wire.h"
#include "patron/event_check.h"
#include "patron/graph.h"
#include "patron/graph_row.h"
#include "patron/kafka.h"
#include "patron/keys.h"
#include "patron/profile.h"
#include "patron/kv.h"
#include "patron/pb_pack.h"
#include "patron/rfm.h"
#include "patron/service.h"
#include "patron/strmap.h"
#include "patron/trend.h"
#include "patron/v1/profile.pb-c.h"
#include "patron/profile_codec.h"

/* Seconds an erased customer's tombstone (no personal data: its id and its
 * Kafka position) is kept, so that replaying the events before the erasure
 * does not bring the profile back. Longer than any replay we expect. */
#define TOMBSTONE_TTL_S "604800"

/* Neighbour pairs one purchase may add to the item graph. */
#define GRAPH_PAIRS_MAX 4096

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
/* The encoders' scratch: a profile with its version, or a ProfileUpdate of
 * up to a few hundred items. */
#define ENCODED_MAX (PATRON_PROFILE_VERSION_LEN + PATRON_PROFILE_ENCODED_MAX)

/* A batch's decoded events, reads and ProfileUpdates come from one bump
 * allocator freed with the batch: thousands of malloc/free pairs less. */
#define ARENA_CHUNK ((size_t)256 << 10)
/* Chunks kept for the next batches (large allocations are what fragment
 * malloc's heap); 64 x 256 KiB at most. */
#define ARENA_SPARE_MAX 64

/* Keys per multi-key call. A script holds Redis while it runs, and the API
 * reads the same Redis: these keep one call well under a millisecond. On a
 * cluster a call also never spans hash slots (patron_kv_key_group). */
#define READ_CHUNK 256         /* profiles per MGET */
#define CAS_CHUNK 128          /* profiles per compare-and-set call */
#define GRAPH_CHUNK_CELLS 1024 /* neighbour increments per graph call */

/* Compare-and-set of many profiles, all or none: KEYS the profiles; ARGV per
 * key the version read ("" when absent), the new value, a TTL in seconds or
 * "0". Returns 1, or 0 when any version moved (another writer won; nothing
 * is written). Inside a script every redis.call costs about as much as the
 * command itself, so the versions come from one MGET and the values go in
 * one MSET rather than a GETRANGE and a SET per profile. */
static const char CAS_MANY_LUA[] =
    "local cur = redis.call('MGET', unpack(KEYS))\n"
    "local kv = {}\n"
    "for i = 1, #KEYS do\n"
    "  local v = cur[i]\n"
    "  if (v and string.sub(v, 1, 8) or '') ~= ARGV[3 * i - 2] then return 0 end\n"
    "  kv[2 * i - 1] = KEYS[i]\n"
    "  kv[2 * i] = ARGV[3 * i - 1]\n"
    "end\n"
    "redis.call('MSET', unpack(kv))\n"
    "for i = 1, #KEYS do\n"
    "  if ARGV[3 * i] ~= '0' then redis.call('EXPIRE', KEYS[i], ARGV[3 * i]) end\n"
    "end\n"
    "return 1\n";

/* An erasure's compare-and-set. KEYS[1] the profile, KEYS[2..] the
 * customer's other keys, to delete; ARGV[1] the version read ("" when
 * absent), ARGV[2] the new value (the tombstone), ARGV[3] its TTL in seconds
 * or "0". Returns 1, or 0 when the version moved. */
static const char CAS_LUA[] =
    "local cur = redis.call('GETRANGE', KEYS[1], 0, 7)\n"
    "if cur ~= ARGV[1] then return 0 end\n"
    "if ARGV[3] ~= '0' then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "else redis.call('SET', KEYS[1], ARGV[2]) end\n"
    "for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end\n"
    "return 1\n";

/* Item statistics: KEYS {items}:pop, {items}:trend, {items}:cat; ARGV item,
 * new buyers, trend weight, category quadruples ("0"/"" when unchanged). */
static const char ITEMS_LUA[] =
    "for i = 1, #ARGV, 4 do\n"
    "  if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "  if ARGV[i + 2] ~= '0' then redis.call('ZINCRBY', KEYS[2], ARGV[i + 2], ARGV[i]) end\n"
    "  if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3]) end\n"
    "end\n"
    "return 1\n";

/* The event clock: KEYS[1] {clock}; ARGV partition, event_ms, idle triples.
 * A partition's time only moves forward; its idle flag is the latest. */
static const char CLOCK_LUA[] =
    "for i = 1, #ARGV, 3 do\n"
    "  local cur = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  local ms = tonumber(ARGV[i + 1])\n"
    "  if cur then local c = tonumber(string.match(cur, '^(%d+)')) or 0\n"
    "    if c > ms then ms = c end end\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], ms .. ':' .. ARGV[i + 2])\n"
    "end\n"
    "return 1\n";

enum topic_kind { TOPIC_EVENTS, TOPIC_CATALOG };

struct customer;

/* A value a batch reads, then writes with a compare-and-set on its first
 * PATRON_PROFILE_VERSION_LEN bytes (a profile or a neighbour list). */
struct versioned {
    char key[PATRON_KEY_MAX];
    size_t key_len;
    unsigned group;  /* patron_kv_key_group of key */
    uint8_t *stored; /* as read (arena), or NULL: absent */
    size_t stored_len;
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
};

/* One consumed message and what became of it. */
struct event {
    rd_kafka_message_t *msg;
    Patron__V1__Event *ev; /* NULL for DLQ and catalog messages */
    struct customer *cust;
    struct event *next_of_customer;
    uint8_t *update; /* packed ProfileUpdate to publish (arena), or NULL */
    size_t update_len;
};

/* A customer touched by a batch: the profile read, then written. */
struct customer {
    struct batch *b;
    const char *id; /* borrowed from its first event */
    size_t id_len;
    char key[PATRON_KEY_MAX];
    size_t key_len;
    struct event *first, *last;
    struct versioned v;   /* the profile */
    struct cached *entry; /* the cache entry the batch wrote, or NULL */
};

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

/* Spare chunks, shared by the batches of one ingest. */
struct arena_spares {
    struct arena_chunk *head;
    size_t count;
};

struct arena {
    struct arena_chunk *head;
    struct arena_spares *spares;
    ProtobufCAllocator pb; /* for protobuf-c's unpack; free is a no-op */
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
    PHASE_WRITING,
    PHASE_DONE
};

/* The next offset to store for one partition of one topic. */
struct position {
    enum topic_kind topic;
    int32_t partition;
    int64_t next_offset;
    int64_t max_event_ms; /* events topic: the batch's latest event time */
    bool idle;            /* ingest's own: marked idle in the clock, and not busy since */
};

struct batch {
    struct ingest *ing;
    uint64_t seq;
    struct arena arena;
    struct event *events;
    size_t n_events;
    struct customer *customers;
    size_t n_customers;
    struct patron_strmap by_customer;
    struct position *positions;
    size_t n_positions;
    struct versioned **writes; /* the profiles to write: one per customer at most */
    size_t n_writes;
    struct customer **erasures; /* the profiles to write that erase their customer */
    size_t n_erasures;
    struct graph_key *rows; /* the neighbour lists the batch changes */
    size_t n_rows;
    bool graph_conflict; /* a round of neighbour lists lost to another writer */
    bool graph_done;     /* its lists are written: it writes when its turn comes */
    /* What the batch's purchases add to the item statistics, aggregated so
     * that each item's keys are written once per batch. */
    struct patron_strmap strings; /* interned item ids: id -> owned copy */
    struct patron_strmap graph;   /* item -> struct graph_row */
    struct patron_strmap stats;   /* item -> struct item_stat */
    size_t pending;               /* Redis replies and delivery reports outstanding */
    enum phase phase;
    bool failed;
    bool cancelled;
    bool read; /* every read is back: the batch applies when its predecessors did */
    int64_t started_ms;
    struct batch *next;
};

/* Co-occurrence pairs of one item's neighbour list, each with the Kafka
 * position of its purchase: a replayed purchase whose pairs the list
 * counts already (its marks say so) is skipped at the merge. */
struct graph_row {
    const char *item;
    struct graph_pair {
        const char *item; /* interned: compared by pointer */
        int32_t partition;
        int64_t offset;
    } * pairs;
    size_t n, cap;
};

/* A neighbour list the batch changes, and where it stands. */
struct graph_key {
    struct versioned v;
    const struct graph_row *row;
    bool todo; /* to (re)read and (re)write */
};

/* Popularity, trend and category of one item. */
struct item_stat {
    const char *item;
    int64_t buyers; /* new distinct buyers */
    double trend;   /* sum of patron_trend_weight of its purchases */
    const char *category;
};

/* A value this process wrote: the newest there is, unless another writer
 * came by (which the compare-and-set then detects). */
struct cached {
    struct cached *newer, *older; /* LRU list */
    uint64_t seq;                 /* the in-flight batch that wrote it last; 0: in Redis */
    uint8_t *value;               /* version + protobuf */
    size_t len, cap;
    size_t id_len;
    char id[]; /* the map's key */
};

struct value_cache {
    struct patron_strmap map; /* customer id or row key -> struct cached */
    struct cached *newest, *oldest;
    size_t bytes;
    size_t max_entries, max_bytes;
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
    uint64_t next_seq;
    size_t reading;       /* batches between read and write */
    bool applying;        /* apply_ready is on the stack */
    bool starting_writes; /* write_ready is on the stack */

    struct value_cache cache;               /* profiles, pinned by the batches in flight */
    struct value_cache rows;                /* neighbour lists, pinned by their last merger */
    struct value_cache cats;                /* item -> the category last written to {items}:cat */
    struct batch *graph_reader;             /* the batch in its first GRAPH_READ */
    uint64_t row_version;                   /* the next neighbour list's version */
    struct patron_graph_cell *cells, *incs; /* scratch of graph_merge (incs: GRAPH_PAIRS_MAX) */
    struct patron_graph_mark *marks, *marks_out; /* the same, PATRON_GRAPH_MARKS_MAX each */
    uint8_t *encoded;                            /* scratch of the encoders, ENCODED_MAX bytes */
    struct arena_spares spares;
    struct patron_profile *profile;   /* scratch of apply_customer */
    char (*prior)[PATRON_ID_MAX + 1]; /* the bought list before a purchase */
    struct patron_graph_pair *pairs;  /* scratch of batch_note_purchase */
    struct position *positions;       /* last stored per partition */
    size_t n_positions, cap_positions;

    rd_kafka_message_t **poll_buf;
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
    struct patron_gauge *m_inflight;
    struct patron_histogram *m_batch_seconds;
};

static void pump(struct ingest *ing);
static void reset(struct ingest *ing, const char *why);
static void batch_settle(struct batch *b);

/* ---- positions ----------------------------------------------------------- */

static struct position *position_find(struct position *v, size_t n, enum topic_kind t, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].topic == t && v[i].partition == p)
            return &v[i];
    return NULL;
}

static const char *topic_name(const struct ingest *ing, enum topic_kind t)
{
    return t == TOPIC_EVENTS ? ing->cfg->topic_events : ing->cfg->topic_catalog;
}

static int topic_of(const struct ingest *ing, const rd_kafka_message_t *m, enum topic_kind *out)
{
    const char *name = rd_kafka_topic_name(m->rkt);
    if (strcmp(name, ing->cfg->topic_events) == 0)
        *out = TOPIC_EVENTS;
    else if (strcmp(name, ing->cfg->topic_catalog) == 0)
        *out = TOPIC_CATALOG;
    else
        return PATRON_EINVAL;
    return 0;
}

/* The first message of a partition after an assignment or a seek tells
 * where consumption stands, should the pipeline have to seek back. */
static void position_learn(struct ingest *ing, enum topic_kind t, int32_t p, int64_t offset)
{
    if (position_find(ing->positions, ing->n_positions, t, p))
        return;
    if (ing->n_positions == ing->cap_positions) {
        ing->cap_positions = ing->cap_positions ? ing->cap_positions * 2 : 16;
        ing->positions =
            patron_realloc(ing->positions, ing->cap_positions * sizeof(*ing->positions));
    }
    ing->positions[ing->n_positions++] =
        (struct position){.topic = t, .partition = p, .next_offset = offset};
}

/* ---- arena --------------------------------------------------------------- */

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct arena_chunk *c = a->head;
    if (c && c->cap - c->used >= n) {
        void *p = (char *)c->data + c->used;
        c->used += n;
        return p;
    }
    size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    if (cap == ARENA_CHUNK && a->spares->head) {
        c = a->spares->head;
        a->spares->head = c->next;
        a->spares->count--;
    } else {
        c = patron_malloc(sizeof(*c) + cap);
        c->cap = cap;
    }
    c->used = n;
    if (a->head && n > ARENA_CHUNK / 2) {
        c->next = a->head->next; /* a big one-off: the head keeps its room */
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c->data;
}

static void *arena_calloc(struct arena *a, size_t count, size_t n)
{
    if (n && count > SIZE_MAX / n)
        abort(); /* as patron_calloc: sizes here come from bounded batches */
    void *p = arena_alloc(a, count * n);
    memset(p, 0, count * n);
    return p;
}

static void *arena_pb_alloc(void *ud, size_t n)
{
    return arena_alloc(ud, n ? n : 1);
}

static void arena_pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* freed with the batch */
}

static void arena_init(struct arena *a, struct arena_spares *spares)
{
    a->head = NULL;
    a->spares = spares;
    a->pb =
        (ProtobufCAllocator){.alloc = arena_pb_alloc, .free = arena_pb_free, .allocator_data = a};
}

static void arena_free(struct arena *a)
{
    for (struct arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        if (c->cap == ARENA_CHUNK && a->spares->count < ARENA_SPARE_MAX) {
            c->next = a->spares->head;
            a->spares->head = c;
            a->spares->count++;
        } else {
            free(c);
        }
    }
    a->head = NULL;
}

static void arena_spares_free(struct arena_spares *spares)
{
    for (struct arena_chunk *c = spares->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    spares->head = NULL;
    spares->count = 0;
}

/* ---- profile cache --------------------------------------------------------- */

static void cache_unlink(struct value_cache *pc, struct cached *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        pc->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        pc->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void cache_push(struct value_cache *pc, struct cached *e)
{
    e->older = pc->newest;
    e->newer = NULL;
    if (pc->newest)
        pc->newest->newer = e;
    pc->newest = e;
    if (!pc->oldest)
        pc->oldest = e;
}

static void cache_drop(struct value_cache *pc, struct cached *e)
{
    cache_unlink(pc, e);
    (void)patron_strmap_del(&pc->map, e->id, e->id_len);
    pc->bytes -= sizeof(*e) + e->cap + e->id_len;
    free(e->value);
    free(e);
}

static void cache_clear(struct value_cache *pc)
{
    for (struct cached *e = pc->newest, *older; e; e = older) {
        older = e->older;
        free(e->value);
        free(e);
    }
    patron_strmap_clear(&pc->map);
    pc->newest = pc->oldest = NULL;
    pc->bytes = 0;
}

/* The value, or NULL; a hit becomes the most recent. */
static struct cached *cache_get(struct value_cache *pc, const char *id, size_t id_len)
{
    struct cached *e = patron_strmap_get(&pc->map, id, id_len);
    if (e && e != pc->newest) {
        cache_unlink(pc, e);
        cache_push(pc, e);
    }
    return e;
}

/* Evicts from the old end; an entry a batch in flight wrote stops it (there
 * are at most inflight x batch_max of those, all recent). */
static void cache_evict(struct value_cache *pc)
{
    while (pc->oldest && pc->oldest->seq == 0 &&
           (pc->map.count > pc->max_entries || pc->bytes > pc->max_bytes))
        cache_drop(pc, pc->oldest);
}

static struct cached *cache_put(struct value_cache *pc, const char *id, size_t id_len,
                                const uint8_t *value, size_t len, uint64_t seq)
{
    struct cached *e = cache_get(pc, id, id_len);
    if (!e) {
        e = patron_calloc(1, sizeof(*e) + id_len);
        memcpy(e->id, id, id_len);
        e->id_len = id_len;
        pc->bytes += sizeof(*e) + id_len;
        patron_strmap_put(&pc->map, e->id, e->id_len, e);
        cache_push(pc, e);
    }
    if (e->cap < len) {
        pc->bytes += len - e->cap;
        e->cap = len;
        free(e->value);
        e->value = patron_malloc(len);
    }
    memcpy(e->value, value, len);
    e->len = len;
    e->seq = seq;
    cache_evict(pc); /* never e: it is pinned */
    return e;
}

/* A completed batch's writes are in Redis: its entries may go. The entries
 * it wrote are still there: pinned by it or by a later batch (batches
 * complete in order, and a reset empties the cache without completing). */
static void cache_release(struct value_cache *pc, const struct batch *b)
{
    for (size_t i = 0; i < b->n_customers; i++) {
        struct cached *e = b->customers[i].entry;
        if (e && e->seq == b->seq)
            e->seq = 0;
    }
    cache_evict(pc);
}

/* ---- batch lifecycle ------------------------------------------------------ */

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n_events; i++)
        rd_kafka_message_destroy(b->events[i].msg);
    patron_strmap_free(&b->by_customer);
    for (size_t i = 0; i < b->graph.cap; i++) {
        struct graph_row *row = b->graph.slots[i].value;
        if (b->graph.slots[i].key)
            free(row->pairs);
    }
    patron_strmap_free(&b->graph);
    patron_strmap_free(&b->stats);
    patron_strmap_free(&b->strings);
    arena_free(&b->arena);
    free(b);
}

static void batch_unlink(struct ingest *ing, struct batch *b)
{
    struct batch **pp = &ing->head;
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    if (ing->tail == b) {
        ing->tail = NULL;
        for (struct batch *x = ing->head; x; x = x->next)
            ing->tail = x;
    }
    ing->inflight--;
    patron_gauge_set(ing->m_inflight, (double)ing->inflight);
}

static void batch_fail(struct batch *b, const char *why)
{
    if (!b->failed && !b->cancelled) {
        b->failed = true;
        reset(b->ing, why);
    }
}

/* A callback of this batch came back; the last one moves it on. */
static void batch_release(struct batch *b)
{
    b->pending--;
    batch_settle(b);
}

/* ---- completing batches in order ------------------------------------------ */

static void store_offsets(struct ingest *ing, const struct batch *b)
{
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        int err = patron_consumer_store(ing->consumer, topic_name(ing, bp->topic), bp->partition,
                                        bp->next_offset);
        if (err) {
            /* the partition was revoked meanwhile: its new owner replays */
            patron_log(ing->log, PATRON_LOG_WARN, "offset not stored",
                       "\"partition\":%d,\"offset\":%" PRId64, bp->partition, bp->next_offset);
            continue;
        }
        struct position *p =
            position_find(ing->positions, ing->n_positions, bp->topic, bp->partition);
        if (p)
            p->next_offset = bp->next_offset;
    }
}

static void complete_ready(struct ingest *ing)
{
    while (ing->head && ing->head->phase == PHASE_DONE && ing->head->pending == 0 &&
           !ing->head->cancelled) {
        struct batch *b = ing->head;
        store_offsets(ing, b);
        cache_release(&ing->cache, b);
        patron_counter_add(ing->m_batches, 1);
        patron_histogram_observe(ing->m_batch_seconds,
                                 (double)(patron_monotonic_ms() - b->started_ms) / 1000.0);
        batch_unlink(ing, b);
        batch_free(b);
    }
}

/* ---- publishing ----------------------------------------------------------- */

static void on_delivered(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    (void)msg;
    struct batch *b = ud;
    if (err)
        batch_fail(b, rd_kafka_err2str(err));
    batch_release(b);
}

static void publish(struct batch *b)
{
    struct ingest *ing = b->ing;
    for (size_t i = 0; i < b->n_events; i++) {
        struct event *e = &b->events[i];
        if (!e->update)
            continue;
        /* To the partition its event came from: the trigger's timers rely on
         * each partition of updates being in the event-time order of one
         * partition of events, whatever partitioner the site used. Only if
         * patron.profile-updates has fewer partitions, by key. */
        int err = patron_producer_send(ing->producer, ing->cfg->topic_profile_updates,
                                       e->msg->partition, e->cust->id, e->cust->id_len, e->update,
                                       e->update_len, NULL, on_delivered, b);
        if (err == PATRON_EINVAL)
            err = patron_producer_send(ing->producer, ing->cfg->topic_profile_updates,
                                       RD_KAFKA_PARTITION_UA, e->cust->id, e->cust->id_len,
                                       e->update, e->update_len, NULL, on_delivered, b);
        if (err) {
            batch_fail(b, "profile update not produced");
            return;
        }
        b->pending++;
        patron_counter_add(ing->m_updates, 1);
    }
}

static void apply_and_write(struct batch *b);
static void graph_read(struct batch *b, bool first);
static void graph_retry_next(struct ingest *ing);
static void rows_release(struct ingest *ing, const struct batch *b);
static void graph_write(struct batch *b);
static void write_profiles(struct batch *b);
static void write_item_stats(struct batch *b);
static void write_clock(struct batch *b);

/*
 * Batches apply in order, each as soon as its reads are back and its
 * predecessors applied. The reads of the next batches are already on their
 * way meanwhile (Redis works on them while we apply), so a read may predate
 * a predecessor's write of the same customer: apply_customer takes the
 * cache's value then, which holds every write of the batches in flight. The
 * compare-and-set would catch a stale read all the same.
 */
static void apply_ready(struct ingest *ing)
{
    if (ing->applying)
        return; /* the loop below picks up what became ready */
    ing->applying = true;
    for (;;) {
        struct batch *b = ing->head;
        while (b && b->phase != PHASE_READING)
            b = b->next;
        if (!b || !b->read || b->pending || b->cancelled || b->failed)
            break;
        /* Held while applying, so that a failure (which resets, and frees
         * what has nothing pending) cannot free b under us. Nothing to
         * write (all duplicates) settles at the release. */
        b->pending++;
        apply_and_write(b);
        ing->reading--;
        batch_release(b);
    }
    ing->applying = false;
    pump(ing);
}

/*
 * Batches write their profiles in batch order, each once its neighbour
 * lists are written (a crash in between replays the batch: statistics at
 * least once) and its predecessors sent theirs: a profile's compare-and-set
 * expects the version the batch before wrote, which must be in Redis
 * first. A batch without lists would otherwise overtake one still merging.
 */
static void write_ready(struct ingest *ing)
{
    if (ing->starting_writes)
        return; /* the loop below picks up what became ready */
    ing->starting_writes = true;
    for (;;) {
        struct batch *b = ing->head;
        while (b && (b->phase == PHASE_WRITING || b->phase == PHASE_DONE))
            b = b->next;
        if (!b || b->phase != PHASE_GRAPH_WRITE || !b->graph_done || b->cancelled || b->failed)
            break;
        b->phase = PHASE_WRITING;
        b->pending++; /* held while sending */
        write_profiles(b);
        if (!b->failed)
            write_item_stats(b); /* the statistics follow what was applied */
        if (!b->failed)
            write_clock(b);
        batch_release(b);
    }
    ing->starting_writes = false;
}

/* Moves a batch on when its outstanding callbacks are all back:
 * READING -> apply and write (in order); WRITING -> publish; then DONE. */
static void batch_settle(struct batch *b)
{
    struct ingest *ing = b->ing;
    if (b->pending > 0)
        return;
    if (b->cancelled || b->failed) {
        if (b->phase == PHASE_READING)
            ing->reading--;
        batch_unlink(ing, b);
        batch_free(b);
        if (ing->resetting)
            reset(ing, NULL); /* maybe the last one we waited for */
        return;
    }
    switch (b->phase) {
    case PHASE_READING:
        b->read = true;
        apply_ready(ing);
        return;
    case PHASE_GRAPH_WAIT:
        return; /* graph_next starts it */
    case PHASE_GRAPH_READ:
        graph_write(b);
        return;
    case PHASE_GRAPH_WRITE:
        if (b->graph_conflict) {
            b->phase = PHASE_GRAPH_RETRY;
            graph_retry_next(ing);
            return;
        }
        b->graph_done = true;
        rows_release(ing, b);
        write_ready(ing);
        graph_retry_next(ing);
        return;
    case PHASE_GRAPH_RETRY:
        return; /* graph_retry_next starts it */
    case PHASE_WRITING:
        b->phase = PHASE_DONE;
        b->pending++; /* as above */
        publish(b);   /* DLQ entries were sent at the start */
        batch_release(b);
        return;
    case PHASE_DONE:
        complete_ready(ing);
        if (ing->stopping && !ing->head)
            uv_timer_start(&ing->tick, NULL, 0, 0); /* handled by the tick */
        pump(ing);
        return;
    }
}

/* ---- reading -------------------------------------------------------------- */

/* An MGET's values, copied into the batch (the reply is hiredis'). */
static void on_read(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        batch_fail(b, reply ? reply->str : "redis disconnected");
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != mc->n) {
        batch_fail(b, "MGET: unexpected reply");
    } else if (!b->cancelled) {
        for (size_t i = 0; i < mc->n; i++) {
            const redisReply *r = reply->element[i];
            struct versioned *v = mc->v[i];
            v->stored = NULL; /* nil: absent (or not a string) */
            v->stored_len = 0;
            if (r->type != REDIS_REPLY_STRING)
                continue;
            v->stored = arena_alloc(&b->arena, (size_t)r->len);
            memcpy(v->stored, r->str, (size_t)r->len);
            v->stored_len = (size_t)r->len;
        }
    }
    batch_release(b);
}

/* Orders by key group, then by position in the batch (deterministic). */
static int versioned_group_cmp(const void *x, const void *y)
{
    const struct versioned *a = *(struct versioned *const *)x, *b = *(struct versioned *const *)y;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Calls per run of one key group in v[0 .. n), at most `chunk` keys each:
 * send(b, mc) sends one, and its callback gets mc. On a cluster v is
 * sorted first. Returns nonzero when a call could not be sent (the batch
 * has failed then). */
static int send_grouped(struct batch *b, struct versioned **v, size_t n, size_t chunk,
                        int (*send)(struct batch *b, struct multi_call *mc))
{
    if (patron_kv_is_cluster(b->ing->redis))
        qsort(v, n, sizeof(*v), versioned_group_cmp);
    for (size_t from = 0, to; from < n; from = to) {
        for (to = from + 1; to < n && to - from < chunk && v[to]->group == v[from]->group; to++)
            ;
        struct multi_call *mc = arena_alloc(&b->arena, sizeof(*mc));
        *mc = (struct multi_call){b, to - from, v + from};
        if (send(b, mc)) {
            batch_fail(b, "redis unavailable");
            return -1;
        }
        b->pending++;
    }
    return 0;
}

static int mget_on(struct patron_kv *kv, struct multi_call *mc)
{
    const char *argv[1 + READ_CHUNK];
    size_t lens[1 + READ_CHUNK];
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < mc->n; i++) {
        argv[1 + i] = mc->v[i]->key;
        lens[1 + i] = mc->v[i]->key_len;
    }
    return patron_kv_commandv(kv, on_read, mc, (int)(1 + mc->n), argv, lens);
}

static int send_mget(struct batch *b, struct multi_call *mc)
{
    return mget_on(b->ing->redis, mc);
}

static int send_row_mget(struct batch *b, struct multi_call *mc)
{
    return mget_on(b->ing->graph_kv, mc);
}

/* Customers this process wrote recently come from the cache (which holds
 * what the batches in flight wrote, too); the others from Redis, an MGET
 * per READ_CHUNK of one key group. A copy is kept in case the entry is
 * evicted before the batch applies. */
static void read_profiles(struct batch *b)
{
    struct ingest *ing = b->ing;
    struct versioned **miss = arena_alloc(&b->arena, b->n_customers * sizeof(*miss));
    size_t n_miss = 0;
    for (size_t i = 0; i < b->n_customers; i++) {
        struct customer *c = &b->customers[i];
        struct cached *hit = cache_get(&ing->cache, c->id, c->id_len);
        if (hit) {
            c->v.stored = arena_alloc(&b->arena, hit->len);
            memcpy(c->v.stored, hit->value, hit->len);
            c->v.stored_len = hit->len;
            continue;
        }
        miss[n_miss++] = &c->v;
    }
    (void)send_grouped(b, miss, n_miss, READ_CHUNK, send_mget);
}

/* ---- applying and writing ------------------------------------------------- */

/* A compare-and-set call: 1 if written, 0 if another writer won (then
 * nothing was); -1 for an error, the batch failed. The script answers 1 or
 * 0, SET NX OK or nil. */
static int cas_outcome(struct batch *b, const redisReply *reply)
{
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        batch_fail(b, reply ? reply->str : "redis disconnected");
        return -1;
    }
    if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_NIL)
        return reply->type == REDIS_REPLY_STATUS;
    if (reply->type != REDIS_REPLY_INTEGER) {
        batch_fail(b, "compare-and-set: unexpected reply");
        return -1;
    }
    return reply->integer != 0;
}

/* Profiles: another writer means another ingest took the partition (or a
 * zombie of ours wrote late): start over from the stored offsets. */
static void on_profile_written(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    if (cas_outcome(mc->b, reply) == 0)
        batch_fail(mc->b, "profile version conflict");
    batch_release(mc->b);
}

/* A value written where none was read, to keep no longer than forever. */
static bool is_new(const struct versioned *v)
{
    return v->expected_len == 0 && strcmp(v->ttl, "0") == 0;
}

/* send_grouped for compare-and-set calls, with the new keys in calls of
 * their own (send_cas sends those as MSETNX). Reorders v. */
static int cas_grouped(struct batch *b, struct versioned **v, size_t n,
                       int (*send)(struct batch *b, struct multi_call *mc))
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_new(v[i])) {
            struct versioned *t = v[k];
            v[k++] = v[i];
            v[i] = t;
        }
    }
    if (send_grouped(b, v, k, CAS_CHUNK, send))
        return -1;
    return send_grouped(b, v + k, n - k, CAS_CHUNK, send);
}

/* Sends mc's values in one compare-and-set call: all of them new keys, or
 * none. */
static int send_cas(struct multi_call *mc, patron_redis_cb cb, struct patron_kv *kv,
                    struct patron_kv_script *script)
{
    const char *argv[4 * CAS_CHUNK];
    size_t lens[4 * CAS_CHUNK];
    size_t nkeys = mc->n, argc = nkeys;
    if (is_new(mc->v[0])) {
        /* new keys only (cas_grouped puts them apart): MSETNX is the same
         * all-or-none compare-and-set natively; the script would copy each
         * value into Lua and back out, two thirds of its cost */
        argv[0] = "MSETNX";
        lens[0] = 6;
        argc = 1;
        for (size_t i = 0; i < nkeys; i++) {
            argv[argc] = mc->v[i]->key;
            lens[argc++] = mc->v[i]->key_len;
            argv[argc] = (const char *)mc->v[i]->value;
            lens[argc++] = mc->v[i]->len;
        }
        return patron_kv_commandv(kv, cb, mc, (int)argc, argv, lens);
    }
    for (size_t i = 0; i < nkeys; i++) {
        const struct versioned *v = mc->v[i];
        argv[i] = v->key;
        lens[i] = v->key_len;
        argv[argc] = (const char *)v->expected;
        lens[argc++] = v->expected_len;
        argv[argc] = (const char *)v->value;
        lens[argc++] = v->len;
        argv[argc] = v->ttl;
        lens[argc++] = strlen(v->ttl);
    }
    return patron_kv_evalsha(kv, script, cb, mc, (int)nkeys, (int)(argc - nkeys), argv, lens);
}

static int send_profile_cas(struct batch *b, struct multi_call *mc)
{
    return send_cas(mc, on_profile_written, b->ing->redis, b->ing->cas_many);
}

/* Any other write: only an error matters (HSET, SADD... count what changed). */
static void on_written(void *ud, redisReply *reply)
{
    struct batch *b = ud;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        batch_fail(b, reply ? reply->str : "redis disconnected");
    batch_release(b);
}

static Patron__V1__EventKind event_kind(const Patron__V1__Event *ev)
{
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        return PATRON__V1__EVENT_KIND__VIEW;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        return PATRON__V1__EVENT_KIND__CART_ADD;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        return PATRON__V1__EVENT_KIND__CART_REMOVE;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        return PATRON__V1__EVENT_KIND__PURCHASE;
    case PATRON__V1__EVENT__KIND_REFUND:
        return PATRON__V1__EVENT_KIND__REFUND;
    case PATRON__V1__EVENT__KIND_REVIEW:
        return PATRON__V1__EVENT_KIND__REVIEW;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        return PATRON__V1__EVENT_KIND__CUSTOMER;
    case PATRON__V1__EVENT__KIND_CONSENT:
        return PATRON__V1__EVENT_KIND__CONSENT;
    case PATRON__V1__EVENT__KIND_ERASURE:
        return PATRON__V1__EVENT_KIND__ERASURE;
    default:
        return PATRON__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
    }
}

/* The event's items, for the trigger service (borrowed pointers). */
static size_t event_items(const Patron__V1__Event *ev, char **out, size_t max)
{
    size_t n = 0;
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        out[n++] = ev->view->item_id;
        break;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        out[n++] = ev->cart_add->item->item_id;
        break;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        out[n++] = ev->cart_remove->item_id;
        break;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        for (size_t i = 0; i < ev->purchase->n_items && n < max; i++)
            out[n++] = ev->purchase->items[i]->item_id;
        break;
    case PATRON__V1__EVENT__KIND_REFUND:
        for (size_t i = 0; i < ev->refund->n_items && n < max; i++)
            out[n++] = ev->refund->items[i]->item_id;
        break;
    case PATRON__V1__EVENT__KIND_REVIEW:
        out[n++] = ev->review->item_id;
        break;
    default:
        break;
    }
    return n;
}

struct event_apply {
    const struct patron_profile *p;
    const struct patron_apply_outcome *out;
    int32_t partition;
    int64_t offset;
};

#define UPDATE_ITEMS_MAX 1000

/* The ProfileUpdate of one event, as the profile stands right after it. */
static void build_update(struct event *e, const struct event_apply *ea)
{
    const Patron__V1__Event *ev = e->ev;
    const struct patron_profile *p = ea->p;
    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    char *items[UPDATE_ITEMS_MAX];

    u.customer_id = ev->customer_id;
    u.event_id = ev->event_id;
    u.kind = event_kind(ev);
    u.occurred_at_ms = ev->occurred_at_ms;
    u.replayed = ea->out->result == PATRON_APPLY_REPLAYED;
    u.n_item_ids = event_items(ev, items, UPDATE_ITEMS_MAX);
    u.item_ids = items;
    u.value_cents = ea->out->value_cents;
    u.tier = (char *)patron_tier_name(ea->out->tier_after);
    u.previous_tier = (char *)patron_tier_name(ea->out->tier_before);
    u.segment = (char *)patron_segment_name(ea->out->segment_after);
    u.previous_segment = (char *)patron_segment_name(ea->out->segment_before);
    u.orders = p->orders;
    u.net_spend_cents = p->net_spend_cents;
    u.points = p->points;
    u.last_purchase_ms = p->last_purchase_ms;
    u.consent_sms = p->consent_sms;
    u.consent_push = p->consent_push;
    u.consent_email = p->consent_email;
    u.time_zone = (char *)p->time_zone;
    u.locale = (char *)p->locale;
    u.birthday = (char *)p->birthday;
    if (ev->kind_case == PATRON__V1__EVENT__KIND_CONSENT) {
        u.consent_channel = ev->consent->channel;
        u.consent_granted = ev->consent->granted;
    }
    u.partition = ea->partition;
    u.offset = ea->offset;
    struct ingest *ing = e->cust->b->ing;
    if (patron_pb_pack_profile_update(&u, ing->encoded, ENCODED_MAX, &e->update_len) == 0) {
        e->update = arena_alloc(&e->cust->b->arena, e->update_len);
        memcpy(e->update, ing->encoded, e->update_len);
        return;
    }
    /* more than the scratch holds (a purchase of a thousand lines) */
    e->update_len = patron__v1__profile_update__get_packed_size(&u);
    e->update = arena_alloc(&e->cust->b->arena, e->update_len);
    patron__v1__profile_update__pack(&u, e->update);
}

/* A copy of s that lives as long as the batch. */
static const char *batch_intern(struct batch *b, const char *s)
{
    size_t len = strlen(s);
    char *copy = patron_strmap_get(&b->strings, s, len);
    if (!copy) {
        copy = arena_alloc(&b->arena, len + 1);
        memcpy(copy, s, len + 1);
        patron_strmap_put(&b->strings, copy, len, copy);
    }
    return copy;
}

static struct item_stat *batch_stat(struct batch *b, const char *item)
{
    struct item_stat *st = patron_strmap_get(&b->stats, item, strlen(item));
    if (!st) {
        st = arena_calloc(&b->arena, 1, sizeof(*st));
        st->item = batch_intern(b, item);
        patron_strmap_put(&b->stats, st->item, strlen(st->item), st);
    }
    return st;
}

static void graph_add(struct batch *b, const char *a, const char *x, const struct event *e)
{
    struct graph_row *row = patron_strmap_get(&b->graph, a, strlen(a));
    if (!row) {
        row = arena_calloc(&b->arena, 1, sizeof(*row));
        row->item = batch_intern(b, a);
        patron_strmap_put(&b->graph, row->item, strlen(row->item), row);
    }
    if (row->n == row->cap) {
        row->cap = row->cap ? row->cap * 2 : 8;
        row->pairs = patron_realloc(row->pairs, row->cap * sizeof(*row->pairs));
    }
    row->pairs[row->n++] =
        (struct graph_pair){batch_intern(b, x), e->msg->partition, e->msg->offset};
}

/* What an applied purchase adds to the item statistics: a buyer for each
 * item new to the customer, trend weight and category for every line, and
 * co-occurrence pairs with the customer's recent history. */
static void batch_note_purchase(struct batch *b, const char (*prior)[PATRON_ID_MAX + 1],
                                size_t n_prior, const struct event *e)
{
    const Patron__V1__Event *ev = e->ev;
    const Patron__V1__Purchase *purchase = ev->purchase;
    const char *items[PATRON_GRAPH_LINES_MAX];
    size_t n = patron_graph_new_items(prior, n_prior, purchase, items, PATRON_GRAPH_LINES_MAX);
    for (size_t i = 0; i < n; i++)
        batch_stat(b, items[i])->buyers++;
    double w = patron_trend_weight(ev->occurred_at_ms);
    for (size_t i = 0; i < purchase->n_items; i++) {
        const Patron__V1__LineItem *li = purchase->items[i];
        struct item_stat *st = batch_stat(b, li->item_id);
        st->trend += w;
        if (li->category[0])
            st->category = li->category; /* the event lives as long as the batch */
    }
    struct patron_graph_pair *pairs = b->ing->pairs;
    size_t np = patron_graph_pairs(prior, n_prior, (size_t)b->ing->cfg->graph_history, purchase,
                                   pairs, GRAPH_PAIRS_MAX);
    for (size_t i = 0; i < np; i++)
        graph_add(b, pairs[i].a, pairs[i].b, e);
}

/* ---- the item graph -------------------------------------------------------- */

static void graph_next(struct ingest *ing);

/* The neighbour lists a batch changes, in b->rows. */
static void graph_collect(struct batch *b)
{
    struct ingest *ing = b->ing;
    b->rows = arena_alloc(&b->arena, (b->graph.count ? b->graph.count : 1) * sizeof(*b->rows));
    size_t k = 0;
    for (size_t s = 0; s < b->graph.cap; s++) {
        const struct graph_row *row = b->graph.slots[s].value;
        if (!b->graph.slots[s].key)
            continue;
        struct graph_key *gk = &b->rows[k];
        int klen = patron_key_item_cooc(gk->v.key, sizeof(gk->v.key), row->item, strlen(row->item));
        if (klen < 0)
            continue; /* ids were checked: cannot happen */
        gk->v.key_len = (size_t)klen;
        gk->v.group = patron_kv_key_group(ing->redis, gk->v.key, gk->v.key_len);
        gk->v.stored = NULL;
        gk->v.ttl = "0";
        gk->row = row;
        gk->todo = true;
        k++;
    }
    b->n_rows = k;
}

/* Reads the lists still to write: from the cache on the first round (what
 * this process merged last is the newest there is, unless another writer
 * came by, which the compare-and-set then detects), else from Redis. */
static void graph_read(struct batch *b, bool first)
{
    struct ingest *ing = b->ing;
    b->phase = PHASE_GRAPH_READ;
    if (first)
        ing->graph_reader = b;
    struct versioned **miss = arena_alloc(&b->arena, b->n_rows * sizeof(*miss));
    size_t n_miss = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        struct graph_key *gk = &b->rows[i];
        if (!gk->todo)
            continue;
        struct cached *hit = first ? cache_get(&ing->rows, gk->v.key, gk->v.key_len) : NULL;
        if (hit) {
            gk->v.stored = arena_alloc(&b->arena, hit->len);
            memcpy(gk->v.stored, hit->value, hit->len);
            gk->v.stored_len = hit->len;
            continue;
        }
        miss[n_miss++] = &gk->v;
    }
    b->pending++; /* held while sending */
    (void)send_grouped(b, miss, n_miss, READ_CHUNK, send_row_mget);
    batch_release(b);
}

/* A round of lists: those another writer changed since we read them go to
 * the next round, read again from Redis; nothing of the call was written.
 * Their cache entries stay: a later batch that merged on one fails too, and
 * must, to reach the list after us. */
static void on_rows_written(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    if (cas_outcome(b, reply) == 0 && !b->cancelled) {
        b->graph_conflict = true;
        for (size_t i = 0; i < mc->n; i++)
            ((struct graph_key *)mc->v[i])->todo = true; /* v is its first member */
        patron_counter_add(b->ing->m_graph_conflicts, 1);
    }
    batch_release(b);
}

static int send_row_cas(struct batch *b, struct multi_call *mc)
{
    return send_cas(mc, on_rows_written, b->ing->graph_kv, b->ing->graph_cas);
}

/* Merges the batch's pairs into one list as read, but for the pairs of
 * purchases the list already counts (a replay: its marks are at or past
 * their offset), and moves the marks to the batch's purchases. A list that
 * does not decode (not written by this version of Patron) starts over: it
 * is statistics, and the next purchases rebuild it. */
static void graph_merge(struct batch *b, struct graph_key *gk)
{
    struct ingest *ing = b->ing;
    struct versioned *v = &gk->v;
    struct patron_graph_marks marks = {ing->marks, 0, PATRON_GRAPH_MARKS_MAX};
    size_t n = 0;
    uint64_t version;
    v->expected_len = 0;
    if (v->stored) {
        v->expected_len =
            v->stored_len < PATRON_PROFILE_VERSION_LEN ? v->stored_len : PATRON_PROFILE_VERSION_LEN;
        memcpy(v->expected, v->stored, v->expected_len);
        if (patron_graph_row_decode(v->stored, v->stored_len, &version, ing->cells,
                                    PATRON_GRAPH_ROW_MAX, &n, &marks)) {
            patron_log(ing->log, PATRON_LOG_WARN, "neighbour list does not decode: rebuilt",
                       "\"key_len\":%zu", v->key_len);
            patron_counter_add(ing->m_graph_rebuilt, 1);
            n = 0;
            marks.n = 0;
        }
    }
    const struct graph_row *row = gk->row;
    struct patron_graph_cell *inc = ing->incs;
    if (row->n > GRAPH_PAIRS_MAX)
        inc = arena_alloc(&b->arena, row->n * sizeof(*inc));
    /* Pairs come customer by customer, not in offset order: each is
     * filtered by the marks as read, and the new marks (every partition
     * raised to its greatest offset in the row) are built apart. */
    struct patron_graph_marks raised = {ing->marks_out, marks.n, PATRON_GRAPH_MARKS_MAX};
    memcpy(raised.v, marks.v, marks.n * sizeof(marks.v[0]));
    size_t n_inc = 0, skipped = 0;
    int32_t part = -1;
    int64_t counted = -1, greatest = -1;
    for (size_t i = 0; i < row->n; i++) {
        const struct graph_pair *gp = &row->pairs[i];
        if (gp->partition != part) {
            if (part >= 0)
                patron_graph_marks_raise(&raised, part, greatest);
            part = gp->partition;
            counted = patron_graph_marks_get(&marks, part);
            greatest = -1;
        }
        if (gp->offset > greatest)
            greatest = gp->offset;
        if (gp->offset <= counted) {
            skipped++;
            continue;
        }
        /* interned ids: a popular item's row gets hundreds of pairs, and
         * comparing pointers instead of bytes was 1.5% of ingest */
        size_t k = 0;
        while (k < n_inc && inc[k].id != gp->item)
            k++;
        if (k == n_inc)
            inc[n_inc++] = (struct patron_graph_cell){gp->item, strlen(gp->item), 0};
        inc[k].count++;
    }
    if (part >= 0)
        patron_graph_marks_raise(&raised, part, greatest);
    if (skipped)
        patron_counter_add(ing->m_graph_replayed, (double)skipped);
    n = patron_graph_row_merge(ing->cells, n, PATRON_GRAPH_ROW_MAX + 1, inc, n_inc,
                               (size_t)ing->cfg->graph_topk);
    v->len = patron_graph_row_size(ing->cells, n, &raised);
    uint8_t *value = arena_alloc(&b->arena, v->len);
    /* Versions are unique, not ordered (see ingest_start): a list merged on
     * one that lost its compare-and-set can never match what Redis holds. */
    patron_graph_row_encode(ing->row_version++, ing->cells, n, &raised, value);
    v->value = value;
}

/* Merges and writes the round's lists; the next batch may then read its
 * own: what it finds in the cache or in Redis includes these.
 *
 * The cache holds, pinned, the value the latest batch merged for a list:
 * the next batch merges on it, so that its compare-and-set fails if ours
 * did. A retry updates the entry only while no later batch merged on it
 * (which will fail, and retry after us, from Redis). */
static void graph_write(struct batch *b)
{
    struct ingest *ing = b->ing;
    bool first = ing->graph_reader == b;
    b->phase = PHASE_GRAPH_WRITE;
    b->graph_conflict = false;
    struct versioned **todo = arena_alloc(&b->arena, (b->n_rows ? b->n_rows : 1) * sizeof(*todo));
    size_t n = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        struct graph_key *gk = &b->rows[i];
        if (!gk->todo)
            continue;
        graph_merge(b, gk);
        struct cached *e = patron_strmap_get(&ing->rows.map, gk->v.key, gk->v.key_len);
        if (first || (e && e->seq == b->seq))
            cache_put(&ing->rows, gk->v.key, gk->v.key_len, gk->v.value, gk->v.len, b->seq);
        gk->todo = false;
        todo[n++] = &gk->v;
    }
    b->pending++; /* held while sending */
    (void)cas_grouped(b, todo, n, send_row_cas);
    if (ing->graph_reader == b) {
        ing->graph_reader = NULL;
        graph_next(ing);
    }
    batch_release(b);
}

/* The lists a batch wrote are in Redis: the entries it pinned may go. */
static void rows_release(struct ingest *ing, const struct batch *b)
{
    for (size_t i = 0; i < b->n_rows; i++) {
        const struct graph_key *gk = &b->rows[i];
        struct cached *e = patron_strmap_get(&ing->rows.map, gk->v.key, gk->v.key_len);
        if (e && e->seq == b->seq)
            e->seq = 0;
    }
    cache_evict(&ing->rows);
}

/*
 * The oldest batch whose lists are not all written goes round again, if it
 * lost some to another writer: once every batch before it has written its
 * own, and never a later one first. One partition's purchases reach a list
 * in offset order so (the marks say up to where a list counts them), and
 * the other writer won the list, so it progresses: no livelock.
 */
static void graph_retry_next(struct ingest *ing)
{
    for (struct batch *b = ing->head; b; b = b->next) {
        if (b->cancelled || b->failed)
            return;
        if (b->phase == PHASE_WRITING || b->phase == PHASE_DONE || b->graph_done)
            continue;
        if (b->phase == PHASE_GRAPH_RETRY)
            graph_read(b, false);
        return;
    }
}

/* The oldest batch waiting to read its lists starts, unless one is reading:
 * lists are read in batch order, each batch after the one before merged. */
static void graph_next(struct ingest *ing)
{
    if (ing->graph_reader || ing->resetting)
        return;
    for (struct batch *b = ing->head; b; b = b->next) {
        if (b->phase == PHASE_GRAPH_WAIT && !b->cancelled && !b->failed) {
            graph_read(b, true);
            return;
        }
    }
}

/* One script call for every item statistic of the batch. */
static void write_item_stats(struct batch *b)
{
    struct ingest *ing = b->ing;
    size_t n = b->stats.count;
    if (n == 0)
        return;
    const char **argv = patron_malloc((3 + 4 * n) * sizeof(*argv));
    size_t *lens = patron_malloc((3 + 4 * n) * sizeof(*lens));
    char(*nums)[2][32] = patron_malloc(n * sizeof(*nums));
    size_t argc = 0, k = 0;
    const char *keys[] = {PATRON_KEY_ITEMS_POP, PATRON_KEY_ITEMS_TREND, PATRON_KEY_ITEMS_CAT};
    for (size_t i = 0; i < 3; i++) {
        argv[argc] = keys[i];
        lens[argc++] = strlen(keys[i]);
    }
    for (size_t s = 0; s < b->stats.cap; s++) {
        const struct item_stat *st = b->stats.slots[s].value;
        if (!b->stats.slots[s].key)
            continue;
        argv[argc] = st->item;
        lens[argc++] = strlen(st->item);
        argv[argc] = nums[k][0];
        lens[argc++] = (size_t)snprintf(nums[k][0], sizeof(nums[k][0]), "%" PRId64, st->buyers);
        argv[argc] = nums[k][1];
        lens[argc++] = st->trend > 0
                           ? (size_t)snprintf(nums[k][1], sizeof(nums[k][1]), "%.17g", st->trend)
                           : (size_t)snprintf(nums[k][1], sizeof(nums[k][1]), "0");
        /* a category is written when it is new to this process: most
         * purchases repeat what {items}:cat already says */
        const char *cat = st->category ? st->category : "";
        size_t cat_len = strlen(cat), id_len = strlen(st->item);
        if (cat_len) {
            struct cached *known = cache_get(&ing->cats, st->item, id_len);
            if (known && known->len == cat_len && memcmp(known->value, cat, cat_len) == 0) {
                cat = "";
                cat_len = 0;
            } else {
                cache_put(&ing->cats, st->item, id_len, (const uint8_t *)cat, cat_len, 0);
            }
        }
        argv[argc] = cat;
        lens[argc++] = cat_len;
        k++;
    }
    if (patron_kv_evalsha(ing->redis, ing->items, on_written, b, 3, (int)argc - 3, argv, lens))
        batch_fail(b, "redis unavailable");
    else
        b->pending++;
    free(nums);
    free(lens);
    free(argv);
}

/* Compare-and-set of the customer's profile over `base` (the value it was
 * built on; NULL: new), sent by write_profiles in the batch's turn. A
 * tombstone expires. The cache has the new value from now on. */
static void write_profile(struct batch *b, struct customer *c, const uint8_t *base, bool erasure,
                          bool tombstone, const uint8_t *value, size_t len)
{
    struct versioned *v = &c->v;
    v->expected_len = base ? PATRON_PROFILE_VERSION_LEN : 0;
    if (base)
        memcpy(v->expected, base, PATRON_PROFILE_VERSION_LEN);
    v->ttl = tombstone ? TOMBSTONE_TTL_S : "0";
    v->value = value;
    v->len = len;
    if (erasure)
        b->erasures[b->n_erasures++] = c;
    else
        b->writes[b->n_writes++] = v;
    c->entry = cache_put(&b->ing->cache, c->id, c->id_len, value, len, b->seq);
}

/* An erasure's compare-and-set, which also deletes the customer's other
 * keys (their hash tag is the profile's: one slot). */
static int send_erasure(struct batch *b, struct customer *c)
{
    enum { KEYS_MAX = 16 };
    char keys[KEYS_MAX][PATRON_KEY_MAX];
    const char *argv[KEYS_MAX + 3];
    size_t lens[KEYS_MAX + 3];
    const struct versioned *v = &c->v;
    int nkeys = 0;
    argv[nkeys] = v->key;
    lens[nkeys++] = v->key_len;
    for (size_t i = 0; PATRON_CUSTOMER_KEY_SUFFIXES[i] && nkeys < KEYS_MAX; i++) {
        int klen = patron_key_customer_sub(keys[i], sizeof(keys[i]), c->id, c->id_len,
                                           PATRON_CUSTOMER_KEY_SUFFIXES[i]);
        if (klen < 0)
            continue;
        argv[nkeys] = keys[i];
        lens[nkeys++] = (size_t)klen;
    }
    int argc = nkeys;
    argv[argc] = (const char *)v->expected;
    lens[argc++] = v->expected_len;
    argv[argc] = (const char *)v->value;
    lens[argc++] = v->len;
    argv[argc] = v->ttl;
    lens[argc] = strlen(v->ttl);
    argc++;
    struct multi_call *mc = arena_alloc(&b->arena, sizeof(*mc));
    *mc = (struct multi_call){b, 1, NULL};
    return patron_kv_evalsha(b->ing->redis, b->ing->cas, on_profile_written, mc, nkeys,
                             argc - nkeys, argv, lens);
}

/* The batch's profile writes: one compare-and-set call per CAS_CHUNK
 * profiles of one key group. */
static void write_profiles(struct batch *b)
{
    if (cas_grouped(b, b->writes, b->n_writes, send_profile_cas))
        return;
    for (size_t i = 0; i < b->n_erasures; i++) {
        if (send_erasure(b, b->erasures[i])) {
            batch_fail(b, "redis unavailable");
            return;
        }
        b->pending++;
    }
}

static void send_dlq(struct batch *b, struct event *e, const char *reason);

static void apply_customer(struct batch *b, struct customer *c)
{
    struct ingest *ing = b->ing;
    struct patron_profile *p = ing->profile;
    char(*prior)[PATRON_ID_MAX + 1] = ing->prior;
    size_t n_prior = 0;
    uint64_t version = 0;
    bool changed = false, erasure = false;

    /* What a batch in flight wrote after our read is in the cache (see
     * apply_ready); so is what we wrote before it, unchanged since. */
    const uint8_t *stored = c->v.stored, *base = NULL;
    size_t stored_len = c->v.stored_len;
    struct cached *hit = cache_get(&ing->cache, c->id, c->id_len);
    if (hit) {
        stored = hit->value;
        stored_len = hit->len;
    }
    if (stored && stored_len >= PATRON_PROFILE_VERSION_LEN) {
        base = stored;
        if (patron_profile_stored_decode(p, stored, stored_len, &version)) {
            /* Never overwrite what we cannot read: stop and let a human look. */
            batch_fail(b, "stored profile does not decode");
            return;
        }
    } else {
        char id[PATRON_ID_MAX + 1];
        memcpy(id, c->id, c->id_len);
        id[c->id_len] = '\0';
        patron_profile_init(p, id);
    }

    for (struct event *e = c->first; e; e = e->next_of_customer) {
        struct patron_apply_outcome out;
        bool purchase = e->ev->kind_case == PATRON__V1__EVENT__KIND_PURCHASE;
        if (purchase) {
            n_prior = p->n_bought;
            memcpy(prior, p->bought, n_prior * sizeof(p->bought[0]));
        }
        if (patron_profile_apply(p, e->ev, e->msg->partition, e->msg->offset, &ing->cfg->profile,
                                 &out)) {
            /* event_check accepted it, so apply must too: a bug, not input */
            batch_fail(b, "apply rejected a checked event");
            return;
        }
        switch (out.result) {
        case PATRON_APPLY_DUPLICATE:
            patron_counter_add(ing->m_events_duplicate, 1);
            continue;
        case PATRON_APPLY_STALE:
            patron_counter_add(ing->m_events_stale, 1);
            continue;
        case PATRON_APPLY_REFUSED:
            /* counts, and the ledger cannot say it is new: kept aside, never counted twice */
            patron_counter_add(ing->m_events_refused, 1);
            send_dlq(b, e, PATRON_APPLY_REFUSED_REASON);
            if (b->failed)
                return;
            continue;
        case PATRON_APPLY_REPLAYED:
            patron_counter_add(ing->m_events_replayed, 1);
            break;
        case PATRON_APPLY_APPLIED:
            patron_counter_add(ing->m_events_applied, 1);
            changed = true;
            erasure |= out.erased;
            if (purchase)
                batch_note_purchase(b, (const char(*)[PATRON_ID_MAX + 1]) prior, n_prior, e);
            break;
        }
        struct event_apply ea = {p, &out, e->msg->partition, e->msg->offset};
        build_update(e, &ea);
    }

    if (changed) {
        size_t len;
        uint8_t *scratch = ing->encoded;
        if (patron_profile_encode_into(p, scratch + PATRON_PROFILE_VERSION_LEN,
                                       PATRON_PROFILE_ENCODED_MAX, &len)) {
            batch_fail(b, "profile does not encode");
            return;
        }
        patron_profile_version_put(scratch, version + 1);
        size_t value_len = PATRON_PROFILE_VERSION_LEN + len;
        uint8_t *value = arena_alloc(&b->arena, value_len);
        memcpy(value, scratch, value_len);
        write_profile(b, c, base, erasure, p->erased, value, value_len);
    }
}

/* The arguments of one CLOCK_LUA call: the key, then (partition, event ms,
 * idle) triples, the numbers' text held here. */
struct clock_args {
    const char **argv;
    char (*text)[2][24];
    size_t argc, n;
};

static void clock_args_init(struct clock_args *a, size_t max)
{
    a->argv = patron_malloc((1 + 3 * max) * sizeof(*a->argv));
    a->text = patron_malloc((max ? max : 1) * sizeof(*a->text));
    a->argv[0] = PATRON_KEY_CLOCK;
    a->argc = 1;
    a->n = 0;
}

static void clock_args_add(struct clock_args *a, int32_t partition, int64_t ms, bool idle)
{
    char(*t)[24] = a->text[a->n++];
    snprintf(t[0], sizeof(t[0]), "%d", partition);
    snprintf(t[1], sizeof(t[1]), "%" PRId64, ms);
    a->argv[a->argc++] = t[0];
    a->argv[a->argc++] = t[1];
    a->argv[a->argc++] = idle ? "1" : "0";
}

/* Sends the call when it has a triple; PATRON_ENOTFOUND when it has none. */
static int clock_args_send(struct ingest *ing, struct clock_args *a, patron_redis_cb cb, void *ud)
{
    int rc = a->n == 0 ? PATRON_ENOTFOUND
                       : patron_kv_evalsha(ing->redis, ing->clock, cb, ud, 1, (int)a->argc - 1,
                                           a->argv, NULL);
    free(a->text);
    free(a->argv);
    return rc;
}

/* The event clock: each partition's latest event time, as busy. Only
 * mark_idle_partitions says a partition is idle, once nothing is in flight:
 * the batch's ProfileUpdates are not delivered yet, and the trigger takes an
 * idle clock as "every update before now is in Kafka". */
static void write_clock(struct batch *b)
{
    struct clock_args a;
    clock_args_init(&a, b->n_positions);
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        if (bp->topic == TOPIC_EVENTS && bp->max_event_ms > 0)
            clock_args_add(&a, bp->partition, bp->max_event_ms, false);
    }
    int rc = clock_args_send(b->ing, &a, on_written, b);
    if (rc == 0)
        b->pending++;
    else if (rc != PATRON_ENOTFOUND)
        batch_fail(b, "redis unavailable");
}

/* Applies the batch (in batch order) and sets its writes on their way:
 * the neighbour lists first, when the batch before has merged its own. */
static void apply_and_write(struct batch *b)
{
    for (size_t i = 0; i < b->n_customers && !b->failed; i++)
        apply_customer(b, &b->customers[i]);
    if (b->failed)
        return;
    graph_collect(b);
    if (b->n_rows == 0) {
        b->phase = PHASE_GRAPH_WRITE; /* nothing to wait for: on to WRITING */
        return;
    }
    b->phase = PHASE_GRAPH_WAIT;
    graph_next(b->ing);
}

/* ---- starting a batch ----------------------------------------------------- */

static void send_dlq(struct batch *b, struct event *e, const char *reason)
{
    struct ingest *ing = b->ing;
    patron_counter_add(patron_metrics_counter(ing->metrics, "patron_ingest_dlq_total",
                                              "Messages sent to the dead-letter topic", NULL),
                       1);
    patron_log(ing->log, PATRON_LOG_WARN, "message to DLQ", "\"partition\":%d,\"offset\":%" PRId64,
               e->msg->partition, e->msg->offset);
    (void)reason;
    if (patron_dlq_send(ing->producer, ing->cfg->topic_dlq, e->msg, reason, on_delivered, b)) {
        batch_fail(b, "dlq not produced");
        return;
    }
    b->pending++;
}

static void send_command(struct batch *b, int argc, const char **argv, const size_t *lens)
{
    if (patron_kv_commandv(b->ing->redis, on_written, b, argc, argv, lens)) {
        batch_fail(b, "redis unavailable");
        return;
    }
    b->pending++;
}

/* The item's catalog hash, its category for filters and its stock state
 * (last write wins: the catalog topic is keyed by item, so in order). */
static void write_catalog(struct batch *b, const Patron__V1__ItemUpdate *u)
{
    char key[PATRON_KEY_MAX], price[24];
    size_t id_len = strlen(u->item_id);
    int klen = patron_key_item(key, sizeof(key), u->item_id, id_len);
    if (klen < 0)
        return;
    int plen = snprintf(price, sizeof(price), "%" PRId64, u->price_cents);
    const char *hset[] = {"HSET",      key,           "title", u->title,   "category",
                          u->category, "price_cents", price,   "in_stock", u->in_stock ? "1" : "0"};
    size_t hset_lens[] = {
        4, (size_t)klen, 5, strlen(u->title), 8, strlen(u->category), 11, (size_t)plen, 8, 1};
    send_command(b, 10, hset, hset_lens);
    const char *stock[] = {u->in_stock ? "SREM" : "SADD", PATRON_KEY_ITEMS_OOS, u->item_id};
    size_t stock_lens[] = {4, strlen(PATRON_KEY_ITEMS_OOS), id_len};
    send_command(b, 3, stock, stock_lens);
    if (u->category[0]) {
        const char *cat[] = {"HSET", PATRON_KEY_ITEMS_CAT, u->item_id, u->category};
        size_t cat_lens[] = {4, strlen(PATRON_KEY_ITEMS_CAT), id_len, strlen(u->category)};
        send_command(b, 4, cat, cat_lens);
    }
    patron_counter_add(b->ing->m_catalog, 1);
}

static void batch_position(struct batch *b, enum topic_kind t, const rd_kafka_message_t *m,
                           int64_t event_ms)
{
    struct position *p = position_find(b->positions, b->n_positions, t, m->partition);
    if (!p) {
        p = &b->positions[b->n_positions++];
        *p = (struct position){.topic = t, .partition = m->partition};
    }
    if (m->offset + 1 > p->next_offset)
        p->next_offset = m->offset + 1;
    if (event_ms > p->max_event_ms)
        p->max_event_ms = event_ms;
}

/* An event in any of the input encodings (event_wire.h), checked, into
 * the batch's arena; the reason of a refusal in why (or *reason). */
static int decode_event(struct batch *b, struct event *e, const char **reason,
                        char why[PATRON_WIRE_REASON_MAX])
{
    if (e->msg->len > PATRON_EVENT_MAX_BYTES) {
        *reason = "decode: event too big";
        return PATRON_ETOOBIG;
    }
    static const uint8_t empty[1];
    e->ev = patron_event_decode_wire(&b->arena.pb, e->msg->payload ? e->msg->payload : empty,
                                     e->msg->len, why);
    if (!e->ev) {
        *reason = why;
        return PATRON_EINVAL;
    }
    if (patron_event_check(e->ev, reason)) {
        e->ev = NULL;
        return PATRON_EINVAL;
    }
    return 0;
}

/* Sorts the messages into customers; bad ones go to the DLQ, catalog
 * updates straight to their item (they carry no profile). */
static void batch_classify(struct batch *b)
{
    struct ingest *ing = b->ing;
    for (size_t i = 0; i < b->n_events; i++) {
        struct event *e = &b->events[i];
        enum topic_kind t;
        if (topic_of(ing, e->msg, &t)) {
            send_dlq(b, e, "unexpected topic");
            continue;
        }
        position_learn(ing, t, e->msg->partition, e->msg->offset);
        const char *reason = NULL;
        char why[PATRON_WIRE_REASON_MAX];
        if (t == TOPIC_CATALOG) {
            batch_position(b, t, e->msg, 0);
            Patron__V1__ItemUpdate *u;
            if (patron_item_update_decode(&b->arena.pb, e->msg->payload, e->msg->len, &u, why)) {
                send_dlq(b, e, why);
                continue;
            }
            write_catalog(b, u);
            continue;
        }
        if (decode_event(b, e, &reason, why)) {
            batch_position(b, t, e->msg, 0);
            send_dlq(b, e, reason);
            continue;
        }
        batch_position(b, t, e->msg, e->ev->occurred_at_ms);
        const char *id = e->ev->customer_id;
        size_t id_len = strlen(id);
        struct customer *c = patron_strmap_get(&b->by_customer, id, id_len);
        if (!c) {
            c = &b->customers[b->n_customers++];
            *c = (struct customer){.b = b, .id = id, .id_len = id_len};
            int klen = patron_key_customer(c->v.key, sizeof(c->v.key), id, id_len);
            c->v.key_len = klen > 0 ? (size_t)klen : 0; /* ids were checked: always fits */
            c->v.group = patron_kv_key_group(ing->redis, c->v.key, c->v.key_len);
            patron_strmap_put(&b->by_customer, id, id_len, c);
        }
        e->cust = c;
        if (c->last)
            c->last->next_of_customer = e;
        else
            c->first = e;
        c->last = e;
    }
}

/* An empty map with room for n keys: one allocation instead of a doubling
 * from 16 (the fields are the header's; patron_strmap_put grows as usual). */
static void presize(struct patron_strmap *m, size_t n)
{
    size_t cap = 16;
    while (cap * 7 < n * 10)
        cap *= 2;
    m->slots = patron_calloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->count = 0;
}

static void on_clock_written(void *ud, redisReply *reply);

/* The batch's partitions that the clock holds idle are busy again, before
 * any of the batch's writes (one connection keeps the order): an idle clock
 * must not let the trigger fire timers past events polled and not yet
 * applied. A partition's time never goes back: 0 keeps its own. */
static void clock_busy(struct batch *b)
{
    struct ingest *ing = b->ing;
    struct clock_args a;
    clock_args_init(&a, b->n_positions);
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        struct position *p =
            position_find(ing->positions, ing->n_positions, bp->topic, bp->partition);
        if (bp->topic != TOPIC_EVENTS || !p || !p->idle)
            continue;
        p->idle = false;
        clock_args_add(&a, bp->partition, 0, false);
    }
    int rc = clock_args_send(ing, &a, on_clock_written, ing);
    if (rc && rc != PATRON_ENOTFOUND)
        batch_fail(b, "redis unavailable");
}

static void batch_start(struct ingest *ing, rd_kafka_message_t **msgs, size_t n)
{
    struct batch *b = patron_calloc(1, sizeof(*b));
    b->ing = ing;
    b->seq = ++ing->next_seq;
    b->started_ms = patron_monotonic_ms();
    arena_init(&b->arena, &ing->spares);
    b->events = arena_calloc(&b->arena, n, sizeof(*b->events));
    /* room for n; each taken one is initialised (most batches touch fewer) */
    b->customers = arena_alloc(&b->arena, n * sizeof(*b->customers));
    b->positions = arena_calloc(&b->arena, n, sizeof(*b->positions));
    b->writes = arena_alloc(&b->arena, n * sizeof(*b->writes));
    b->erasures = arena_alloc(&b->arena, n * sizeof(*b->erasures));
    b->n_events = n;
    presize(&b->by_customer, n);
    patron_strmap_init(&b->strings);
    patron_strmap_init(&b->graph);
    patron_strmap_init(&b->stats);
    for (size_t i = 0; i < n; i++)
        b->events[i].msg = msgs[i];

    if (ing->tail)
        ing->tail->next = b;
    else
        ing->head = b;
    ing->tail = b;
    ing->inflight++;
    patron_gauge_set(ing->m_inflight, (double)ing->inflight);

    ing->reading++;
    b->phase = PHASE_READING;
    b->pending++; /* held while the batch is being set up */
    batch_classify(b);
    clock_busy(b);
    if (!b->failed)
        read_profiles(b);
    batch_release(b);
}

/* Takes batches off the consumer while there is room in the pipeline. */
static void pump(struct ingest *ing)
{
    size_t max = (size_t)ing->cfg->batch_max;
    while (!ing->resetting && !ing->stopping &&
           ing->inflight < (size_t)ing->cfg->inflight_batches && ing->redis_up && ing->graph_up) {
        size_t n = patron_consumer_poll(ing->consumer, ing->poll_buf, max);
        if (n == 0)
            return;
        batch_start(ing, ing->poll_buf, n);
    }
}

static void on_consumer_ready(void *ud)
{
    pump(ud);
}

/* ---- recovering ----------------------------------------------------------- */

/* Cancels every in-flight batch and, once their callbacks are back and
 * Redis is up, seeks each partition to its last stored offset. Called
 * again (why == NULL) whenever one of those conditions may have changed. */
static void reset(struct ingest *ing, const char *why)
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
        cache_clear(&ing->cache);
        cache_clear(&ing->rows);
        cache_clear(&ing->cats); /* what was sent may not have been written */
        ing->graph_reader = NULL;
        if (patron_consumer_pause_all(ing->consumer))
            patron_log(ing->log, PATRON_LOG_WARN, "pause failed", NULL);
    }
    if (!ing->resetting)
        return;
    /* free the cancelled batches whose callbacks are all back */
    for (struct batch *b = ing->head, *next; b; b = next) {
        next = b->next;
        if (b->pending == 0) {
            if (b->phase == PHASE_READING)
                ing->reading--;
            batch_unlink(ing, b);
            batch_free(b);
        }
    }
    if (ing->head || !ing->redis_up || !ing->graph_up || ing->stopping)
        return;
    for (size_t i = 0; i < ing->n_positions; i++) {
        const struct position *p = &ing->positions[i];
        if (patron_consumer_seek(ing->consumer, topic_name(ing, p->topic), p->partition,
                                 p->next_offset))
            patron_log(ing->log, PATRON_LOG_WARN, "seek failed", "\"partition\":%d", p->partition);
    }
    if (patron_consumer_resume_all(ing->consumer)) {
        patron_log(ing->log, PATRON_LOG_WARN, "resume failed", NULL);
        return; /* the tick tries again */
    }
    ing->resetting = false;
    patron_log(ing->log, PATRON_LOG_INFO, "pipeline resumed", NULL);
    pump(ing);
}

static void redis_state(struct ingest *ing, bool connected)
{
    patron_log(ing->log, connected ? PATRON_LOG_INFO : PATRON_LOG_WARN,
               connected ? "redis connected" : "redis disconnected", NULL);
    if (!connected)
        reset(ing, "redis disconnected");
    else if (ing->resetting)
        reset(ing, NULL);
    else
        pump(ing);
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
            position_find(ing->positions, ing->n_positions, t, parts->elems[i].partition);
        if (p)
            *p = ing->positions[--ing->n_positions];
    }
    if (ing->head)
        reset(ing, "partitions revoked");
    else
        cache_clear(&ing->cache); /* their customers may get another writer */
}

static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct ingest *ing = ud;
    patron_log(ing->log, PATRON_LOG_INFO, "partitions assigned", "\"count\":%d", parts->cnt);
}

/* ---- the tick: idle partitions, retries, shutdown --------------------------- */

static void on_clock_written(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply; /* best effort: the next tick writes again */
}

/* Partitions with nothing left to read are marked idle, so that the event
 * clock's low watermark does not wait for them. Called with no batch in
 * flight: every ProfileUpdate of what the clock counts is delivered. */
static void mark_idle_partitions(struct ingest *ing)
{
    struct clock_args a;
    clock_args_init(&a, ing->n_positions);
    for (size_t i = 0; i < ing->n_positions; i++) {
        struct position *p = &ing->positions[i];
        if (p->topic != TOPIC_EVENTS || patron_consumer_lag(ing->consumer, ing->cfg->topic_events,
                                                            p->partition, p->next_offset) != 0)
            continue;
        p->idle = true;
        clock_args_add(&a, p->partition, 0, true);
    }
    (void)clock_args_send(ing, &a, on_clock_written, ing); /* best effort: the next tick again */
}

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
        reset(ing, NULL);
        return;
    }
    if (!ing->head && ing->redis_up && ing->graph_up)
        mark_idle_partitions(ing);
    pump(ing);
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
    ing->log = log;
    ing->metrics = metrics;
    patron_strmap_init(&ing->cache.map);
    ing->cache.max_entries = CACHE_MAX_ENTRIES;
    ing->cache.max_bytes = CACHE_MAX_BYTES;
    patron_strmap_init(&ing->rows.map);
    ing->rows.max_entries = ROWS_MAX_ENTRIES;
    ing->rows.max_bytes = ROWS_MAX_BYTES;
    patron_strmap_init(&ing->cats.map);
    ing->cats.max_entries = CATS_MAX_ENTRIES;
    ing->cats.max_bytes = CATS_MAX_BYTES;
    /* Neighbour list versions start at a random point: two ingests (or one
     * restarted) never write the same version, so a compare-and-set cannot
     * mistake another writer's list for the one it read. */
    if (uv_random(NULL, NULL, &ing->row_version, sizeof(ing->row_version), 0, NULL))
        ing->row_version = ((uint64_t)patron_wall_ms() << 20) ^ (uint64_t)uv_os_getpid();
    ing->cells = patron_malloc((PATRON_GRAPH_ROW_MAX + 1) * sizeof(*ing->cells));
    ing->encoded = patron_malloc(ENCODED_MAX);
    ing->incs = patron_malloc(GRAPH_PAIRS_MAX * sizeof(*ing->incs));
    ing->marks = patron_malloc(PATRON_GRAPH_MARKS_MAX * sizeof(*ing->marks));
    ing->marks_out = patron_malloc(PATRON_GRAPH_MARKS_MAX * sizeof(*ing->marks_out));
    ing->profile = patron_malloc(sizeof(*ing->profile));
    ing->prior = patron_malloc(PATRON_PROFILE_BOUGHT_MAX * sizeof(*ing->prior));
    ing->pairs = patron_malloc(GRAPH_PAIRS_MAX * sizeof(*ing->pairs));
    ing->poll_buf = patron_calloc((size_t)cfg->batch_max, sizeof(*ing->poll_buf));
    make_metrics(ing);

    struct patron_kv_options ro;
    patron_service_kv_options(cfg, log, on_redis_state, ing, &ro);
    int rc = patron_kv_open(&ing->redis, loop, &ro);
    if (rc)
        goto out_free;
    if ((rc = patron_kv_script(ing->redis, CAS_LUA, &ing->cas)) ||
        (rc = patron_kv_script(ing->redis, CAS_MANY_LUA, &ing->cas_many)) ||
        (rc = patron_kv_script(ing->redis, CLOCK_LUA, &ing->clock)) ||
        (rc = patron_kv_script(ing->redis, ITEMS_LUA, &ing->items)))
        goto out_close_redis;
    patron_service_kv_options(cfg, log, on_graph_state, ing, &ro);
    if ((rc = patron_kv_open(&ing->graph_kv, loop, &ro)))
        goto out_close_redis;
    if ((rc = patron_kv_script(ing->graph_kv, CAS_MANY_LUA, &ing->graph_cas)))
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
    patron_strmap_free(&ing->cache.map);
    patron_strmap_free(&ing->rows.map);
    patron_strmap_free(&ing->cats.map);
    free(ing->cells);
    free(ing->incs);
    free(ing->marks);
    free(ing->marks_out);
    free(ing->encoded);
    free(ing->pairs);
    free(ing->prior);
    free(ing->profile);
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
    while (ing->head) {
        struct batch *b = ing->head;
        ing->head = b->next;
        batch_free(b);
    }
    cache_clear(&ing->cache);
    patron_strmap_free(&ing->cache.map);
    cache_clear(&ing->rows);
    patron_strmap_free(&ing->rows.map);
    cache_clear(&ing->cats);
    patron_strmap_free(&ing->cats.map);
    free(ing->cells);
    free(ing->incs);
    free(ing->marks);
    free(ing->marks_out);
    free(ing->encoded);
    arena_spares_free(&ing->spares);
    free(ing->profile);
    free(ing->prior);
    free(ing->pairs);
    free(ing->positions);
    free(ing->poll_buf);
    free(ing);
}
