/*
 * The batch machine of ingest: a batch of consumed messages is classified
 * (customers, catalog updates, DLQ), its profiles read, then in batch
 * order applied, its neighbour lists merged (ingest_graph.c), its profiles
 * written (ingest_store.c), its ProfileUpdates published, and its offsets
 * stored. The phases: enum phase in ingest_internal.h; the guarantees:
 * ingest.h.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "patron/clock.h"
#include "patron/event_check.h"
#include "patron/event_wire.h"
#include "patron/event_codec.h"
#include "patron/pb_arena.h"
#include "patron/profile_update.h"
#include "patron/trend.h"

static void batch_settle(struct batch *b);

/* ---- batch lifecycle ------------------------------------------------------ */

void ingest_batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n_events; i++)
        rd_kafka_message_destroy(b->events[i].msg);
    patron_strmap_free(&b->by_customer);
    patron_strmap_free(&b->by_visitor);
    ingest_graph_free(b);
    patron_strmap_free(&b->stats);
    patron_strmap_free(&b->strings);
    patron_arena_free(&b->arena);
    free(b);
}

void ingest_batch_unlink(struct ingest *ing, struct batch *b)
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

void ingest_batch_fail(struct batch *b, const char *why)
{
    if (!b->failed && !b->cancelled) {
        b->failed = true;
        ingest_reset(b->ing, why);
    }
}

void ingest_batch_release(struct batch *b)
{
    b->pending--;
    batch_settle(b);
}

/* ---- completing batches in order ------------------------------------------ */

static void store_offsets(struct ingest *ing, const struct batch *b)
{
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        int err = patron_consumer_store(ing->consumer, ingest_topic_name(ing, bp->topic),
                                        bp->partition, bp->next_offset);
        if (err) {
            /* the partition was revoked meanwhile: its new owner replays */
            patron_log(ing->log, PATRON_LOG_WARN, "offset not stored",
                       "\"partition\":%d,\"offset\":%" PRId64, bp->partition, bp->next_offset);
            continue;
        }
        struct position *p =
            ingest_position_find(ing->positions, ing->n_positions, bp->topic, bp->partition);
        if (p)
            p->next_offset = bp->next_offset;
    }
}

/* A completed batch's writes are in Redis: its cache entries may go. The
 * entries it wrote are still there: pinned by it or by a later batch
 * (batches complete in order, and a reset empties the cache without
 * completing). */
static void cache_release(struct ingest *ing, const struct batch *b)
{
    for (size_t i = 0; i < b->n_customers; i++) {
        struct patron_lru_entry *e = b->customers[i]->entry;
        if (e)
            patron_lru_unpin(e, b->seq);
    }
    patron_lru_trim(&ing->cache);
}

static void complete_ready(struct ingest *ing)
{
    while (ing->head && ing->head->phase == PHASE_DONE && ing->head->pending == 0 &&
           !ing->head->cancelled) {
        struct batch *b = ing->head;
        store_offsets(ing, b);
        ingest_write_clock(ing, b);
        cache_release(ing, b);
        patron_counter_add(ing->m_batches, 1);
        patron_histogram_observe(ing->m_batch_seconds,
                                 (double)(patron_monotonic_ms() - b->started_ms) / 1000.0);
        ingest_pace_done(ing, b);
        ingest_batch_unlink(ing, b);
        ingest_batch_free(b);
    }
}

/* ---- publishing ----------------------------------------------------------- */

/* One ProfileUpdate on its way (arena): a broker that refuses it for its
 * size will refuse it for ever, so its event goes to the DLQ instead (its
 * effects are in the profile; the trigger misses this one update). */
struct published {
    struct batch *b;
    struct event *e;
};

static void on_published(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    struct published *pu = ud;
    struct batch *b = pu->b;
    if (!err && msg)
        ingest_note_delivered(b->ing, msg->partition, msg->offset);
    if (err) {
        enum ingest_fault f = ingest_fault_of_delivery(err);
        if (ingest_fault_poison(f) && !b->cancelled)
            ingest_dead_letter(b, pu->e, f, "profile_update_too_large");
        else
            ingest_batch_fail(b, rd_kafka_err2str(err));
    }
    ingest_batch_release(b);
}

/* Sends one update of e to a partition of the updates (RD_KAFKA_PARTITION_UA:
 * by key). Nonzero when the batch failed. */
static int send_update(struct batch *b, struct event *e, int32_t partition, const uint8_t *bytes,
                       size_t len)
{
    struct ingest *ing = b->ing;
    struct published *pu = patron_arena_alloc(&b->arena, sizeof(*pu));
    *pu = (struct published){b, e};
    /* the customer's: a merged visitor's event is its customer's update */
    const struct customer *to = e->update_cust ? e->update_cust : e->cust;
    int err = patron_producer_send(ing->producer, ing->cfg->topic_profile_updates, partition,
                                   to->id, to->id_len, bytes, len, NULL, on_published, pu);
    if (err == PATRON_EINVAL && partition != RD_KAFKA_PARTITION_UA)
        err = patron_producer_send(ing->producer, ing->cfg->topic_profile_updates,
                                   RD_KAFKA_PARTITION_UA, to->id, to->id_len, bytes, len, NULL,
                                   on_published, pu);
    if (err) {
        enum ingest_fault f = ingest_fault_of_send(err);
        if (!ingest_fault_poison(f)) {
            ingest_batch_fail(b, "profile update not produced");
            return -1;
        }
        ingest_dead_letter(b, e, f, "profile_update_too_large");
        return b->failed ? -1 : 0;
    }
    b->pending++;
    patron_counter_add(ing->m_updates, 1);
    return 0;
}

/* An erasure reaches every partition of the updates: the site's producer
 * may have put the customer's events (so its campaign state, timers and
 * outbox) on any of them, by any partitioner. Its own partition gets it in
 * order, as every update; the others a copy flagged fanout, in their
 * order at this point of the batch. The partition count is asked for again
 * if it was not known at start (a short wait of the loop, only then). */
static int send_erasure_copies(struct batch *b, struct event *e, int32_t own)
{
    struct ingest *ing = b->ing;
    if (ing->update_partitions <= 0) {
        int n = patron_producer_partitions(ing->producer, ing->cfg->topic_profile_updates, 1000);
        if (n <= 0) {
            ingest_batch_fail(b, "partitions of the profile updates unknown");
            return -1;
        }
        ing->update_partitions = n;
    }
    uint8_t *copy = patron_arena_alloc(&b->arena, e->update_len + PATRON_UPDATE_FANOUT_EXTRA);
    size_t len = patron_profile_update_fanout(e->update, e->update_len, copy);
    for (int32_t p = 0; p < ing->update_partitions; p++) {
        if (p == own)
            continue;
        if (send_update(b, e, p, copy, len))
            return -1;
        patron_counter_add(ing->m_erasure_copies, 1);
    }
    return 0;
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
         * partition of events, whatever partitioner the site used. A merged
         * visitor's event goes to its customer's (its Identify's), where the
         * customer's campaign state is: in that partition's order as far as
         * the two partitions of events keep pace (trigger.c counts the late
         * ones). Only if patron.profile-updates has fewer partitions, by key. */
        int32_t part = e->update_partition >= 0 ? e->update_partition : e->msg->partition;
        int32_t own = ing->update_partitions <= 0 || part < ing->update_partitions
                          ? part
                          : RD_KAFKA_PARTITION_UA;
        if (send_update(b, e, own, e->update, e->update_len))
            return;
        if (e->ev->kind_case == PATRON__V1__EVENT__KIND_ERASURE && send_erasure_copies(b, e, own))
            return;
    }
}

/* ---- applying ------------------------------------------------------------- */

const char *ingest_batch_intern(struct batch *b, const char *s)
{
    size_t len = strlen(s);
    char *copy = patron_strmap_get(&b->strings, s, len);
    if (!copy) {
        copy = patron_arena_alloc(&b->arena, len + 1);
        memcpy(copy, s, len + 1);
        patron_strmap_put(&b->strings, copy, len, copy);
    }
    return copy;
}

static struct item_stat *batch_stat(struct batch *b, const char *item)
{
    struct item_stat *st = patron_strmap_get(&b->stats, item, strlen(item));
    if (!st) {
        st = patron_arena_calloc(&b->arena, 1, sizeof(*st));
        st->item = ingest_batch_intern(b, item);
        patron_strmap_put(&b->stats, st->item, strlen(st->item), st);
    }
    return st;
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
        st->lines++;
        if (li->category[0])
            st->category = li->category; /* the event lives as long as the batch */
    }
    ingest_graph_note(b, prior, n_prior, e);
}

/* The ProfileUpdate of one event, as customer c's profile p stands right
 * after it, in the batch's arena: through the scratch, or, when more than
 * the scratch holds (a purchase of a thousand lines), straight into its
 * exact room. A visitor's own event publishes nothing (a visitor cannot be
 * messaged: the trigger keeps nothing of it). */
static void build_update(struct batch *b, struct event *e, struct customer *c,
                         const struct patron_profile *p, const struct patron_apply_outcome *out)
{
    if (out->visitor || c->visitor)
        return;
    e->update_cust = c;
    e->update_partition = e->cust->visitor && e->cust->target_partition >= 0
                              ? e->cust->target_partition
                              : e->msg->partition;
    uint8_t *scratch = b->ing->encoded;
    size_t len;
    int rc = patron_profile_update_pack(e->ev, p, out, e->msg->partition, e->msg->offset, scratch,
                                        ENCODED_MAX, &len);
    if (rc == 0) {
        e->update = patron_arena_alloc(&b->arena, len);
        memcpy(e->update, scratch, len);
        e->update_len = len;
        return;
    }
    e->update = patron_arena_alloc(&b->arena, len);
    rc = patron_profile_update_pack(e->ev, p, out, e->msg->partition, e->msg->offset, e->update,
                                    len, &e->update_len);
    if (rc) { /* the room it asked for: cannot happen, but must not stall */
        e->update = NULL;
        ingest_dead_letter(b, e, FAULT_UNAPPLICABLE, "profile_update_unpackable");
    }
}

/* The next event of c's: its own and its merged visitors', in batch order. */
static struct event *next_event(struct event **own, struct event **redirected)
{
    struct event **pick = *own && (!*redirected || *own < *redirected) ? own : redirected;
    struct event *e = *pick;
    if (e)
        *pick = pick == own ? e->next_of_customer : e->next_redirected;
    return e;
}

/* Applies one event of c's to its profile p: an Identify, a merged
 * visitor's event, or its own (whose erasure reaches its visitors too).
 * 0 when applied (whatever its result), 1 when it went to the DLQ, < 0
 * when the batch failed. */
static int apply_event(struct batch *b, struct customer *c, struct patron_profile *p,
                       struct event *e, struct patron_apply_outcome *out, const char **refused)
{
    struct ingest *ing = b->ing;
    *refused = PATRON_APPLY_REFUSED_REASON;
    if (e->ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY) {
        struct patron_identify_outcome io;
        int rc = ingest_identity_identify(b, c, p, e, &io);
        if (rc)
            return rc;
        *out = io.apply;
        if (io.reason)
            *refused = io.reason;
        return 0;
    }
    /* an erasure reaches the visitors c lists before it */
    char(*aliases)[PATRON_ID_MAX + 1] = NULL;
    size_t n_aliases = 0;
    if (e->ev->kind_case == PATRON__V1__EVENT__KIND_ERASURE && p->n_aliases) {
        n_aliases = p->n_aliases;
        aliases = patron_arena_alloc(&b->arena, n_aliases * sizeof(*aliases));
        for (size_t i = 0; i < n_aliases; i++)
            memcpy(aliases[i], p->aliases[i].anonymous_id, sizeof(aliases[i]));
    }
    if (e->cust != c) {
        int rc = ingest_identity_redirected(b, c, p, e, out);
        if (rc)
            return rc;
    } else if (patron_profile_apply(p, e->ev, e->msg->partition, e->msg->offset, &ing->cfg->profile,
                                    out)) {
        /* event_check accepted it, so apply must too: a bug, not input,
         * but one that would fail again on every replay. The profile is
         * as before it (apply refuses before it changes anything). */
        ingest_dead_letter(b, e, FAULT_UNAPPLICABLE, "apply_refused");
        return b->failed ? -1 : 1;
    }
    if (out->erased && n_aliases && ingest_identity_erase_visitors(b, c, e, aliases, n_aliases))
        return -1;
    return 0;
}

static void apply_customer(struct batch *b, struct customer *c)
{
    struct ingest *ing = b->ing;
    struct patron_profile *p = ing->profile;
    char(*prior)[PATRON_ID_MAX + 1] = ing->prior;
    size_t n_prior = 0;
    bool changed = false, erasure = false;

    if (!c->first && !c->redirected)
        return; /* read for another's sake (ingest_identity.c) */
    enum ingest_fault fault = ingest_profile_load(b, c, p);
    if (fault) {
        /* never written over, never waited on: the rest of the batch goes on */
        ingest_poison_profile(b, c, fault);
        return;
    }

    struct event *own = c->first, *redirected = c->redirected, *e;
    while ((e = next_event(&own, &redirected))) {
        struct patron_apply_outcome out;
        const char *refused;
        bool purchase = e->ev->kind_case == PATRON__V1__EVENT__KIND_PURCHASE;
        if (purchase) {
            n_prior = p->n_bought;
            memcpy(prior, p->bought, n_prior * sizeof(p->bought[0]));
        }
        int rc = apply_event(b, c, p, e, &out, &refused);
        if (rc < 0)
            return;
        if (rc > 0)
            continue; /* dead-lettered */
        switch (out.result) {
        case PATRON_APPLY_DUPLICATE:
            patron_counter_add(ing->m_events_duplicate, 1);
            continue;
        case PATRON_APPLY_STALE:
            patron_counter_add(ing->m_events_stale, 1);
            continue;
        case PATRON_APPLY_REFUSED:
            /* counts, and the ledger cannot say it is new: kept aside, never
             * counted twice; or an Identify of another's visitor */
            patron_counter_add(ing->m_events_refused, 1);
            ingest_dead_letter(b, e, FAULT_REFUSED, refused);
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
        build_update(b, e, c, p, &out);
    }

    if (changed && ingest_profile_store(b, c, p, erasure, c->after_visitors ? 2 : 1)) {
        /* its lists are bounded below PATRON_PROFILE_ENCODED_MAX: cannot
         * happen, but must not stall. Nothing is written for it (its
         * purchases already count in the item statistics of this batch). */
        ingest_poison_profile(b, c, FAULT_UNAPPLICABLE);
    }
}

/* Applies the batch (in batch order) and sets its writes on their way:
 * the neighbour lists first, when the batch before has merged its own.
 * Visitors go before customers: an Identify merges what the batch applied
 * to its visitor (of another partition, or earlier in its own: see
 * ingest_identity_attach), and a merged visitor's events are applied with
 * its customer's. */
static void apply_and_write(struct batch *b)
{
    ingest_identity_route(b);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < b->n_customers && !b->failed; i++) {
            struct customer *c = b->customers[i];
            if (c->visitor == (pass == 0) && !c->target)
                apply_customer(b, c);
        }
    if (b->failed)
        return;
    ingest_graph_collect(b);
    if (b->n_rows == 0) {
        b->phase = PHASE_GRAPH_WRITE; /* nothing to wait for: on to WRITING */
        return;
    }
    b->phase = PHASE_GRAPH_WAIT;
    ingest_graph_next(b->ing);
}

/* ---- ordering ------------------------------------------------------------- */

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
        ingest_batch_release(b);
    }
    ing->applying = false;
    ingest_pump(ing);
}

/* Whether all of b's profile writes are sent (stage 2 waits for stage 1). */
static bool writes_sent(const struct batch *b)
{
    return b->phase == PHASE_DONE || b->phase == PHASE_WRITING2 ||
           (b->phase == PHASE_WRITING && !b->stage2);
}

/*
 * Batches write their profiles in batch order, each once its neighbour
 * lists are written (a crash in between replays the batch: statistics at
 * least once) and its predecessors sent theirs: a profile's compare-and-set
 * expects the version the batch before wrote, which must be in Redis
 * first. A batch without lists would otherwise overtake one still merging;
 * and none overtakes a batch whose second stage is still to go.
 */
static void write_ready(struct ingest *ing)
{
    if (ing->starting_writes)
        return; /* the loop below picks up what became ready */
    ing->starting_writes = true;
    for (;;) {
        struct batch *b = ing->head;
        while (b && writes_sent(b))
            b = b->next;
        if (!b || b->phase != PHASE_GRAPH_WRITE || !b->graph_done || b->cancelled || b->failed)
            break;
        b->phase = PHASE_WRITING;
        b->pending++; /* held while sending */
        ingest_write_profiles(b, 1);
        if (!b->failed)
            ingest_write_item_stats(b); /* the statistics follow what was applied */
        ingest_batch_release(b);
    }
    ing->starting_writes = false;
}

/* Moves a batch on when its outstanding callbacks are all back:
 * READING -> (another round of reads, for visitors) -> apply and write (in
 * order); WRITING -> (WRITING2: the customers that rely on the visitors
 * written) -> publish and the visitors' aliases; then DONE. */
static void batch_settle(struct batch *b)
{
    struct ingest *ing = b->ing;
    if (b->pending > 0)
        return;
    if (b->cancelled || b->failed) {
        if (b->phase == PHASE_READING)
            ing->reading--;
        ingest_batch_unlink(ing, b);
        ingest_batch_free(b);
        if (ing->resetting)
            ingest_reset(ing, NULL); /* maybe the last one we waited for */
        return;
    }
    switch (b->phase) {
    case PHASE_READING:
        if (!b->resolved) {
            /* held, as in apply_ready: a failure must not free b under us */
            b->pending++;
            if (!ingest_identity_resolve(b))
                b->resolved = true; /* else another round of reads is out */
            ingest_batch_release(b);
            return;
        }
        b->read = true;
        apply_ready(ing);
        return;
    case PHASE_GRAPH_WAIT:
        return; /* ingest_graph_next starts it */
    case PHASE_GRAPH_READ:
        ingest_graph_write(b);
        return;
    case PHASE_GRAPH_WRITE:
        if (b->graph_conflict) {
            b->phase = PHASE_GRAPH_RETRY;
            ingest_graph_retry_next(ing);
            return;
        }
        b->graph_done = true;
        ingest_graph_release(ing, b);
        write_ready(ing);
        ingest_graph_retry_next(ing);
        return;
    case PHASE_GRAPH_RETRY:
        return; /* ingest_graph_retry_next starts it */
    case PHASE_WRITING:
        if (b->stage2) {
            /* the tests' kill -9 between an Identify's (or erasure's) two writes */
            int crash = ing->cfg->fault_crash_after_visitor_writes;
            if (crash && ++ing->two_stage_batches == (uint64_t)crash) {
                patron_log(ing->log, PATRON_LOG_WARN, "fault injected: crash after visitor writes",
                           NULL);
                abort();
            }
            b->phase = PHASE_WRITING2;
            b->pending++; /* as above */
            ingest_write_profiles(b, 2);
            ingest_batch_release(b);
            write_ready(ing); /* the batches after it may write now */
            return;
        }
        /* fall through */
    case PHASE_WRITING2:
        b->phase = PHASE_DONE;
        b->written_ms = patron_monotonic_ms();
        b->pending++; /* as above */
        publish(b);   /* DLQ entries were sent at the start */
        if (!b->failed)
            ingest_write_compactions(b);
        ingest_batch_release(b);
        return;
    case PHASE_DONE:
        complete_ready(ing);
        if (ing->stopping && !ing->head)
            uv_timer_start(&ing->tick, NULL, 0, 0); /* handled by the tick */
        ingest_pump(ing);
        return;
    }
}

/* ---- starting a batch ----------------------------------------------------- */

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

static void batch_position(struct batch *b, enum topic_kind t, const rd_kafka_message_t *m,
                           int64_t event_ms)
{
    struct position *p = ingest_position_find(b->positions, b->n_positions, t, m->partition);
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
 * the batch's arena; the reason of a refusal in *reason (why holds it when
 * the decoder wrote one). */
static int decode_event(struct batch *b, struct event *e, const char **reason,
                        char why[PATRON_WIRE_REASON_MAX])
{
    if (e->msg->len > PATRON_EVENT_MAX_BYTES) {
        *reason = "decode: event too big";
        return PATRON_ETOOBIG;
    }
    static const uint8_t empty[1];
    e->ev = patron_event_decode_wire(&b->pb, e->msg->payload ? e->msg->payload : empty, e->msg->len,
                                     why);
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

/* Sorts the messages into customers and visitors; bad ones go to the DLQ,
 * catalog updates straight to their item (they carry no profile). A
 * message the batch cannot take in order (ingest_identity_attach) ends it:
 * it and the rest go to the next batch. */
static void batch_classify(struct batch *b)
{
    struct ingest *ing = b->ing;
    for (size_t i = 0; i < b->n_events; i++) {
        if (i > 0 && ingest_batch_bytes(b) >= ingest_batch_bytes_max(ing)) {
            b->n_events = i; /* the rest waits for the next batch */
            break;
        }
        struct event *e = &b->events[i];
        b->input_bytes += e->msg->len + e->msg->key_len;
        e->update_partition = -1;
        enum topic_kind t;
        if (topic_of(ing, e->msg, &t)) {
            ingest_dead_letter(b, e, FAULT_UNDECODABLE, "unexpected topic");
            continue;
        }
        ingest_position_learn(ing, t, e->msg->partition, e->msg->offset);
        const char *reason = NULL;
        char why[PATRON_WIRE_REASON_MAX];
        if (t == TOPIC_CATALOG) {
            batch_position(b, t, e->msg, 0);
            Patron__V1__ItemUpdate *u;
            if (patron_item_update_decode(&b->pb, e->msg->payload, e->msg->len, &u, why)) {
                ingest_dead_letter(b, e, FAULT_UNDECODABLE, why);
                continue;
            }
            ingest_write_catalog(b, e, u);
            continue;
        }
        if (decode_event(b, e, &reason, why)) {
            batch_position(b, t, e->msg, 0);
            ingest_dead_letter(b, e, FAULT_UNDECODABLE, reason);
            continue;
        }
        if (!ingest_identity_attach(b, e)) {
            b->n_events = i; /* i > 0: an event of this batch came before it */
            return;
        }
        batch_position(b, t, e->msg, e->ev->occurred_at_ms);
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

size_t ingest_batch_bytes(const struct batch *b)
{
    return b->input_bytes + patron_arena_bytes(&b->arena);
}

size_t ingest_batch_start(struct ingest *ing, rd_kafka_message_t **msgs, size_t n,
                          struct batch **out)
{
    struct batch *b = patron_calloc(1, sizeof(*b));
    b->ing = ing;
    b->seq = ++ing->next_seq;
    b->started_ms = patron_monotonic_ms();
    patron_arena_init(&b->arena, &ing->spares);
    b->pb = patron_pb_arena_allocator(&b->arena);
    b->events = patron_arena_calloc(&b->arena, n, sizeof(*b->events));
    /* room for n profiles; more grow it (ingest_identity_add) */
    b->customers = patron_arena_alloc(&b->arena, n * sizeof(*b->customers));
    b->cap_customers = n;
    b->positions = patron_arena_calloc(&b->arena, n, sizeof(*b->positions));
    b->n_events = n;
    presize(&b->by_customer, n);
    patron_strmap_init(&b->by_visitor);
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
    b->pending++; /* held while the batch is set up: ingest_batch_go lets go */
    batch_classify(b);
    *out = b;
    return b->n_events;
}

void ingest_batch_go(struct batch *b)
{
    ingest_clock_busy(b);
    if (!b->failed)
        ingest_read_profiles(b, 0);
    ingest_batch_release(b);
}
