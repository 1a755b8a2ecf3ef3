/*
 * The item neighbour lists of ingest ({i:<a>}:co, graph_row.h): what the
 * batch's purchases add, then, in batch order, read (the cache, else an
 * MGET on the graph's own connection), merged with marks and written with
 * a compare-and-set on each list's version; the lists another writer
 * changed go round again, in batch order. See ingest.h for the
 * exactly-once guarantee, ingest_internal.h for how calls reach a batch.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

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
    struct versioned v; /* first: on_rows_written gets &v */
    const struct graph_row *row;
    bool todo; /* to (re)read and (re)write */
};

/* ---- what purchases add ------------------------------------------------------ */

static void graph_add(struct batch *b, const char *a, const char *x, const struct event *e)
{
    struct graph_row *row = patron_strmap_get(&b->graph, a, strlen(a));
    if (!row) {
        row = patron_arena_calloc(&b->arena, 1, sizeof(*row));
        row->item = ingest_batch_intern(b, a);
        patron_strmap_put(&b->graph, row->item, strlen(row->item), row);
    }
    if (row->n == row->cap) {
        row->cap = row->cap ? row->cap * 2 : 8;
        row->pairs = patron_realloc(row->pairs, row->cap * sizeof(*row->pairs));
    }
    row->pairs[row->n++] =
        (struct graph_pair){ingest_batch_intern(b, x), e->msg->partition, e->msg->offset};
}

void ingest_graph_note(struct batch *b, const char (*prior)[PATRON_ID_MAX + 1], size_t n_prior,
                       const struct event *e)
{
    struct patron_graph_pair *pairs = b->ing->pairs;
    size_t np = patron_graph_pairs(prior, n_prior, (size_t)b->ing->cfg->graph_history,
                                   e->ev->purchase, pairs, GRAPH_PAIRS_MAX);
    for (size_t i = 0; i < np; i++)
        graph_add(b, pairs[i].a, pairs[i].b, e);
}

void ingest_graph_free(struct batch *b)
{
    for (size_t i = 0; i < b->graph.cap; i++) {
        struct graph_row *row = b->graph.slots[i].value;
        if (b->graph.slots[i].key)
            free(row->pairs);
    }
    patron_strmap_free(&b->graph);
}

void ingest_graph_collect(struct batch *b)
{
    struct ingest *ing = b->ing;
    b->rows =
        patron_arena_alloc(&b->arena, (b->graph.count ? b->graph.count : 1) * sizeof(*b->rows));
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
        gk->v.wrong_type = false;
        gk->v.ttl = "0";
        gk->row = row;
        gk->todo = true;
        k++;
    }
    b->n_rows = k;
}

/* ---- reading ------------------------------------------------------------------ */

static int send_row_mget(struct batch *b, struct multi_call *mc)
{
    return ingest_store_mget(b->ing->graph_kv, mc);
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
    struct versioned **miss = patron_arena_alloc(&b->arena, b->n_rows * sizeof(*miss));
    size_t n_miss = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        struct graph_key *gk = &b->rows[i];
        if (!gk->todo)
            continue;
        struct patron_lru_entry *hit =
            first ? patron_lru_get(&ing->rows, gk->v.key, gk->v.key_len) : NULL;
        if (hit) {
            gk->v.stored = patron_arena_alloc(&b->arena, hit->len);
            memcpy(gk->v.stored, hit->value, hit->len);
            gk->v.stored_len = hit->len;
            continue;
        }
        miss[n_miss++] = &gk->v;
    }
    b->pending++; /* held while sending */
    (void)ingest_send_grouped(b, miss, n_miss, READ_CHUNK, send_row_mget);
    ingest_batch_release(b);
}

/* ---- merging and writing ---------------------------------------------------------- */

/* A round of lists: those another writer changed since we read them go to
 * the next round, read again from Redis; nothing of the call was written.
 * Their cache entries stay: a later batch that merged on one fails too, and
 * must, to reach the list after us. */
static void on_rows_written(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    if (ingest_cas_outcome(b, reply) == 0 && !b->cancelled) {
        b->graph_conflict = true;
        for (size_t i = 0; i < mc->n; i++)
            ((struct graph_key *)mc->v[i])->todo = true; /* v is its first member */
        patron_counter_add(b->ing->m_graph_conflicts, 1);
    }
    ingest_batch_release(b);
}

static int send_row_cas(struct batch *b, struct multi_call *mc)
{
    return ingest_store_cas(mc, on_rows_written, b->ing->graph_kv, b->ing->graph_cas);
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
        inc = patron_arena_alloc(&b->arena, row->n * sizeof(*inc));
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
    uint8_t *value = patron_arena_alloc(&b->arena, v->len);
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
void ingest_graph_write(struct batch *b)
{
    struct ingest *ing = b->ing;
    bool first = ing->graph_reader == b;
    b->phase = PHASE_GRAPH_WRITE;
    b->graph_conflict = false;
    struct versioned **todo =
        patron_arena_alloc(&b->arena, (b->n_rows ? b->n_rows : 1) * sizeof(*todo));
    size_t n = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        struct graph_key *gk = &b->rows[i];
        if (!gk->todo)
            continue;
        if (gk->v.wrong_type) {
            /* A list is statistics: one that does not decode is rebuilt
             * (graph_merge), but a key of another Redis type is someone
             * else's. It is left as it is, and the item's pairs of this
             * batch go uncounted: never written over, never retried. */
            char key[2 * PATRON_KEY_MAX + 8];
            (void)patron_json_escape_n(key, sizeof(key), gk->v.key, gk->v.key_len, NULL);
            patron_log(ing->log, PATRON_LOG_WARN, "neighbour list key of another type: left out",
                       "\"key\":\"%s\"", key);
            patron_counter_add(ing->m_rows_wrong_type, 1);
            gk->todo = false;
            continue;
        }
        graph_merge(b, gk);
        struct patron_lru_entry *e = patron_lru_peek(&ing->rows, gk->v.key, gk->v.key_len);
        if (first || (e && e->pin == b->seq))
            (void)patron_lru_put(&ing->rows, gk->v.key, gk->v.key_len, gk->v.value, gk->v.len,
                                 b->seq);
        gk->todo = false;
        todo[n++] = &gk->v;
    }
    b->pending++; /* held while sending */
    (void)ingest_cas_grouped(b, todo, n, send_row_cas);
    if (ing->graph_reader == b) {
        ing->graph_reader = NULL;
        ingest_graph_next(ing);
    }
    ingest_batch_release(b);
}

void ingest_graph_release(struct ingest *ing, const struct batch *b)
{
    for (size_t i = 0; i < b->n_rows; i++) {
        const struct graph_key *gk = &b->rows[i];
        struct patron_lru_entry *e = patron_lru_peek(&ing->rows, gk->v.key, gk->v.key_len);
        if (e)
            patron_lru_unpin(e, b->seq);
    }
    patron_lru_trim(&ing->rows);
}

/* ---- ordering ------------------------------------------------------------------- */

/*
 * The oldest batch whose lists are not all written goes round again, if it
 * lost some to another writer: once every batch before it has written its
 * own, and never a later one first. One partition's purchases reach a list
 * in offset order so (the marks say up to where a list counts them), and
 * the other writer won the list, so it progresses: no livelock.
 */
void ingest_graph_retry_next(struct ingest *ing)
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

void ingest_graph_next(struct ingest *ing)
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
