/*
 * Visitors in a batch (docs/guarantees.md "Identity"): which profiles a
 * batch touches besides its events' own, how a merged visitor's events
 * reach its customer, and the writes that concern two profiles.
 *
 * Two partitions write one customer: its own (its events, its Identifies,
 * its erasures) and each of its visitors' (their events, redirected to it
 * once merged). Neither writer trusts what it read: every profile is
 * written with a compare-and-set on the version read, and a lost race
 * resets the pipeline (ingest.c), which replays from the stored offsets:
 * exact, because each apply is idempotent (profile.h). The order of the
 * writes does the rest:
 * - an Identify writes the visitor frozen into the customer (stage 1) and,
 *   once that is acknowledged, the customer with the merge (stage 2). A
 *   crash or a lost race in between leaves the visitor frozen and the
 *   customer without it: the replayed Identify merges then (the visitor's
 *   contents are still there), and meanwhile the visitor's events go to the
 *   customer, deduplicated against the frozen visitor too (profile.h);
 * - a customer's erasure writes its visitors' tombstones (stage 1), then
 *   its own (stage 2): a replay finds the visitors in its list again;
 * - a visitor's event applied to a customer that does not list it yet (the
 *   merge pending) writes the frozen visitor again, unchanged, in stage 1:
 *   its compare-and-set proves no erasure took the alias meanwhile;
 * - the visitor's contents go last, best effort (an alias alone is left),
 *   once its customer holds them.
 */
#include <string.h>

#include "ingest_internal.h"
#include "patron/profile_codec.h"

static struct patron_strmap *map_of(struct batch *b, bool visitor)
{
    return visitor ? &b->by_visitor : &b->by_customer;
}

struct customer *ingest_identity_get(struct batch *b, bool visitor, const char *id, size_t len)
{
    return patron_strmap_get(map_of(b, visitor), id, len);
}

struct customer *ingest_identity_add(struct batch *b, bool visitor, const char *id, size_t len)
{
    if (b->n_customers == b->cap_customers) {
        size_t cap = b->cap_customers ? 2 * b->cap_customers : 16;
        struct customer **grown = patron_arena_alloc(&b->arena, cap * sizeof(*grown));
        if (b->n_customers)
            memcpy(grown, b->customers, b->n_customers * sizeof(*grown));
        b->customers = grown;
        b->cap_customers = cap;
    }
    struct customer *c = patron_arena_calloc(&b->arena, 1, sizeof(*c));
    *c = (struct customer){.b = b, .id = id, .id_len = len, .visitor = visitor};
    c->identify_partition = -1;
    c->target_partition = -1;
    /* ids were checked (event_check, or the stored profile's decoder): always fits */
    int klen = visitor ? patron_key_visitor(c->v.key, sizeof(c->v.key), id, len)
                       : patron_key_customer(c->v.key, sizeof(c->v.key), id, len);
    c->v.key_len = klen > 0 ? (size_t)klen : 0;
    c->v.group = patron_kv_key_group(b->ing->redis, c->v.key, c->v.key_len);
    patron_strmap_put(map_of(b, visitor), id, len, c);
    b->customers[b->n_customers++] = c;
    return c;
}

static void chain(struct customer *c, struct event *e)
{
    e->cust = c;
    if (c->last)
        c->last->next_of_customer = e;
    else
        c->first = e;
    c->last = e;
}

bool ingest_identity_attach(struct batch *b, struct event *e)
{
    const Patron__V1__Event *ev = e->ev;
    bool erasure = ev->kind_case == PATRON__V1__EVENT__KIND_ERASURE;
    if (!ev->customer_id[0]) {
        const char *a = ev->anonymous_id;
        size_t len = strlen(a);
        struct customer *v = ingest_identity_get(b, true, a, len);
        if (v && v->identified_by && v->identify_partition == e->msg->partition)
            return false; /* after its Identify, in order: the customer's, next batch */
        if (!v)
            v = ingest_identity_add(b, true, a, len);
        chain(v, e);
        v->erases |= erasure;
        b->has_identity = true;
        return true;
    }
    const char *id = ev->customer_id;
    size_t len = strlen(id);
    struct customer *c = ingest_identity_get(b, false, id, len);
    if (ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY) {
        const char *a = ev->identify->anonymous_id;
        size_t alen = strlen(a);
        struct customer *v = ingest_identity_get(b, true, a, alen);
        if (v && v->identified_by && v->identified_by != c)
            return false; /* two customers claim it: the first stands, the next batch sees it */
        if (!c)
            c = ingest_identity_add(b, false, id, len);
        if (!v)
            v = ingest_identity_add(b, true, a, alen);
        v->identified_by = c;
        v->identify_partition = e->msg->partition;
        b->has_identity = true;
    } else if (!c) {
        c = ingest_identity_add(b, false, id, len);
    }
    chain(c, e);
    c->erases |= erasure;
    b->has_identity |= erasure;
    return true;
}

/* ---- reading what the apply will need ------------------------------------------ */

static bool peek(struct batch *b, struct customer *c, struct patron_profile_peek *pk)
{
    size_t len;
    const uint8_t *cur = ingest_profile_current(b, c, &len);
    return cur && patron_profile_stored_peek(cur, len, pk) == 0;
}

/* One pass over the profiles known (read) when it starts: the customers of
 * the merged visitors with events, the visitors of the customers an
 * erasure reaches. Returns whether it added a profile or an erasure. */
static bool resolve_pass(struct batch *b, struct patron_profile_peek *pk)
{
    bool changed = false;
    size_t n = b->n_customers;
    for (size_t i = 0; i < n; i++) {
        struct customer *c = b->customers[i];
        if (c->visitor) {
            if (!c->first || !peek(b, c, pk) || !pk->merged_into[0])
                continue;
            size_t len = strlen(pk->merged_into);
            struct customer *t = ingest_identity_get(b, false, pk->merged_into, len);
            if (!t) {
                t = ingest_identity_add(b, false, ingest_batch_intern(b, pk->merged_into), len);
                changed = true;
            }
            if (c->erases && !t->erases)
                changed = t->erases = true;
            continue;
        }
        if (!c->erases || !peek(b, c, pk))
            continue;
        for (size_t k = 0; k < pk->n_aliases; k++) {
            size_t len = strlen(pk->aliases[k]);
            if (!len || ingest_identity_get(b, true, pk->aliases[k], len))
                continue;
            ingest_identity_add(b, true, ingest_batch_intern(b, pk->aliases[k]), len);
            changed = true;
        }
    }
    return changed;
}

bool ingest_identity_resolve(struct batch *b)
{
    if (!b->has_identity)
        return false;
    struct patron_profile_peek *pk = patron_malloc(sizeof(*pk));
    bool sent = false;
    for (;;) {
        size_t from = b->n_customers;
        if (!resolve_pass(b, pk))
            break;
        if (b->n_customers == from)
            continue; /* an erasure found its customer: its visitors next pass */
        size_t pending = b->pending;
        ingest_read_profiles(b, from);
        if (b->failed || b->pending != pending) {
            sent = !b->failed;
            break; /* the next round when the reads are back */
        }
    }
    free(pk);
    return sent;
}

/* A profile the apply needs and the reads did not bring (a batch before
 * this one, in this process, changed the identity since): its value must
 * be in the cache, or the batch starts over. */
static struct customer *needed(struct batch *b, bool visitor, const char *id)
{
    size_t len = strlen(id);
    struct customer *c = ingest_identity_get(b, visitor, id, len);
    if (c)
        return c;
    c = ingest_identity_add(b, visitor, ingest_batch_intern(b, id), len);
    struct patron_lru_entry *hit = patron_lru_get(&b->ing->cache, c->v.key, c->v.key_len);
    if (!hit) {
        patron_counter_add(b->ing->m_not_read, 1);
        ingest_batch_fail(b, "identity: a profile the batch needs was not read");
        return NULL;
    }
    c->v.stored = patron_arena_alloc(&b->arena, hit->len);
    memcpy(c->v.stored, hit->value, hit->len);
    c->v.stored_len = hit->len;
    return c;
}

/* ---- routing ------------------------------------------------------------------ */

/* Merges the visitor's own chain into t's redirected chain: both in batch
 * order (the events array's). */
static void redirect_chain(struct customer *t, struct customer *v)
{
    struct event *a = t->redirected, *x = v->first, head = {0}, *tail = &head;
    while (a || x) {
        struct event **pick = a && (!x || a < x) ? &a : &x;
        tail->next_redirected = *pick;
        tail = *pick;
        *pick = pick == &a ? a->next_redirected : x->next_of_customer;
    }
    tail->next_redirected = NULL;
    t->redirected = head.next_redirected;
    t->redirected_last = tail;
}

void ingest_identity_route(struct batch *b)
{
    if (!b->has_identity)
        return;
    struct patron_profile_peek *pk = patron_malloc(sizeof(*pk));
    size_t n = b->n_customers;
    for (size_t i = 0; i < n && !b->failed; i++) {
        struct customer *v = b->customers[i];
        if (!v->visitor || !v->first || !peek(b, v, pk) || !pk->merged_into[0])
            continue;
        struct customer *t = needed(b, false, pk->merged_into);
        if (!t)
            break;
        v->target = t;
        v->target_partition = pk->merged_partition;
        v->holds_contents = pk->contents;
        redirect_chain(t, v);
    }
    free(pk);
}

/* ---- the writes of two profiles -------------------------------------------------- */

/* The visitor's alias alone, to write once its customer holds the rest
 * (v is the scratch profile2: changed). Room for the version is left. */
static int prepare_compaction(struct batch *b, struct customer *vc, struct patron_profile *v)
{
    patron_profile_alias_only(v);
    size_t len;
    uint8_t *scratch = b->ing->encoded;
    if (patron_profile_encode_into(v, scratch + PATRON_PROFILE_VERSION_LEN,
                                   PATRON_PROFILE_ENCODED_MAX, &len))
        return PATRON_EINVAL;
    uint8_t *value = patron_arena_alloc(&b->arena, PATRON_PROFILE_VERSION_LEN + len);
    memcpy(value, scratch, PATRON_PROFILE_VERSION_LEN + len);
    vc->compact = value;
    vc->compact_len = PATRON_PROFILE_VERSION_LEN + len;
    return 0;
}

static int fail(struct batch *b, const char *why)
{
    ingest_batch_fail(b, why);
    return -1;
}

/* e cannot be applied, and never will be (its visitor's stored profile is
 * not usable, or apply refused a checked event): to the DLQ, 1. */
static int poison(struct batch *b, struct event *e, enum ingest_fault f)
{
    ingest_dead_letter(b, e, f,
                       f == FAULT_STORED_WRONG_TYPE   ? "stored_profile_wrong_type"
                       : f == FAULT_STORED_UNREADABLE ? "stored_profile_unreadable"
                                                      : "apply_refused");
    return b->failed ? -1 : 1;
}

int ingest_identity_identify(struct batch *b, struct customer *c, struct patron_profile *p,
                             struct event *e, struct patron_identify_outcome *out)
{
    struct ingest *ing = b->ing;
    const char *a = e->ev->identify->anonymous_id;
    struct customer *vc = ingest_identity_get(b, true, a, strlen(a));
    struct patron_profile *v = ing->profile2;
    if (!vc)
        return fail(b, "identity: the visitor of an Identify has no profile"); /* attach adds it */
    if (ingest_profile_load(b, vc, v))
        return fail(b, "stored profile does not decode");
    if (patron_profile_identify(p, v, e->ev, e->msg->partition, e->msg->offset, &ing->cfg->profile,
                                out))
        return fail(b, "apply rejected a checked event");
    static const enum patron_apply_result order[] = {PATRON_APPLY_APPLIED, PATRON_APPLY_REPLAYED,
                                                     PATRON_APPLY_DUPLICATE, PATRON_APPLY_STALE};
    size_t k = 0;
    while (k < PATRON_ARRAY_LEN(order) && order[k] != out->apply.result)
        k++;
    if (out->apply.result == PATRON_APPLY_REFUSED)
        k = strcmp(out->reason, PATRON_IDENTIFY_CONFLICT_REASON) == 0 ? 4 : 5;
    patron_counter_add(ing->m_identify[k < 6 ? k : 5], 1);
    if (out->apply.result != PATRON_APPLY_APPLIED)
        return 0;
    patron_counter_add(ing->m_shared_counted, out->shared_counted);
    /* The visitor first, frozen (or, frozen already, unchanged: its
     * compare-and-set proves it still is), then the customer. */
    if (ingest_profile_store(b, vc, v, false, 1))
        return fail(b, "profile does not encode");
    c->after_visitors = true;
    if (prepare_compaction(b, vc, v))
        return fail(b, "profile does not encode");
    return 0;
}

int ingest_identity_redirected(struct batch *b, struct customer *c, struct patron_profile *p,
                               struct event *e, struct patron_apply_outcome *out)
{
    struct ingest *ing = b->ing;
    struct customer *vc = e->cust;
    struct patron_profile *v = ing->profile2;
    const struct patron_profile *pending = NULL;
    if (patron_profile_alias_find(p, e->ev->anonymous_id) < 0) {
        /* frozen into c, the merge still to come: the visitor counts too */
        enum ingest_fault f = ingest_profile_load(b, vc, v);
        if (f)
            return poison(b, e, f);
        pending = v;
    }
    if (patron_profile_apply_redirected(p, pending, e->ev, e->msg->partition, e->msg->offset,
                                        &ing->cfg->profile, out))
        return poison(b, e, FAULT_UNAPPLICABLE);
    patron_counter_add(ing->m_redirected, 1);
    if (pending && out->result == PATRON_APPLY_APPLIED) {
        if (ingest_profile_store(b, vc, v, false, 1))
            return fail(b, "profile does not encode");
        c->after_visitors = true;
    } else if (!pending && vc->holds_contents && !vc->compact && !vc->stage &&
               ingest_profile_load(b, vc, v) == FAULT_NONE) {
        /* merged earlier, its contents still there: its alias alone now
         * (best effort: an unusable value is left as it is) */
        if (prepare_compaction(b, vc, v))
            return fail(b, "profile does not encode");
    }
    return 0;
}

int ingest_identity_erase_visitors(struct batch *b, struct customer *c, const struct event *e,
                                   char (*aliases)[PATRON_ID_MAX + 1], size_t n)
{
    struct ingest *ing = b->ing;
    struct patron_profile *v = ing->profile2;
    char id[PATRON_ID_MAX + 1];
    memcpy(id, c->id, c->id_len);
    id[c->id_len] = '\0';
    for (size_t i = 0; i < n; i++) {
        struct customer *vc = needed(b, true, aliases[i]);
        if (!vc)
            return -1;
        if (ingest_profile_load(b, vc, v))
            continue; /* not usable: never written over (its events go to the DLQ) */
        /* only while it is c's: a fresh visitor under that id is left alone */
        if (!patron_profile_erase_visitor(v, id, e->ev->occurred_at_ms))
            continue;
        if (ingest_profile_store(b, vc, v, false, 1))
            return fail(b, "profile does not encode");
        vc->compact = NULL;
        c->after_visitors = true;
        patron_counter_add(ing->m_visitors_erased, 1);
    }
    return 0;
}
