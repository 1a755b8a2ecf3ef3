/*
 * The Redis store protocol of ingest: versioned reads (MGET), grouped
 * compare-and-set calls (MSETNX for new keys, CAS_MANY_LUA otherwise),
 * profile writes and erasures, item statistics, catalog writes and the
 * event clock. How the calls reach a batch: see ingest_internal.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "patron/clock_redis.h"

/* Seconds an erased customer's tombstone (no personal data: its id and its
 * Kafka position) is kept, so that replaying the events before the erasure
 * does not bring the profile back. Longer than any replay we expect. */
#define TOMBSTONE_TTL_S "604800"

/* Profiles per compare-and-set call: a script holds Redis while it runs
 * (see READ_CHUNK). */
#define CAS_CHUNK 128

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

/* Item statistics: KEYS {items}:pop, {items}:trend, {items}:cat,
 * {items}:sold; ARGV item, new buyers, trend weight, category, purchase
 * lines quintuples ("0"/"" when unchanged). */
static const char ITEMS_LUA[] =
    "for i = 1, #ARGV, 5 do\n"
    "  if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "  if ARGV[i + 2] ~= '0' then redis.call('ZINCRBY', KEYS[2], ARGV[i + 2], ARGV[i]) end\n"
    "  if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3]) end\n"
    "  if ARGV[i + 4] ~= '0' then redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 4]) end\n"
    "end\n"
    "return 1\n";

/* The event clock: KEYS[1] {clock}, KEYS[2] {clock}:out; ARGV[1] the number
 * of (partition, event_ms, idle) triples that follow, then (partition of
 * the updates, offset) pairs. A partition's time and an updates
 * partition's offset only move forward; an idle flag is the latest. */
static const char CLOCK_LUA[] =
    "local n = tonumber(ARGV[1])\n"
    "for i = 2, 1 + 3 * n, 3 do\n"
    "  local cur = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  local ms = tonumber(ARGV[i + 1])\n"
    "  if cur then local c = tonumber(string.match(cur, '^(%d+)')) or 0\n"
    "    if c > ms then ms = c end end\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], ms .. ':' .. ARGV[i + 2])\n"
    "end\n"
    "for i = 2 + 3 * n, #ARGV, 2 do\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[i])) or 0\n"
    "  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end\n"
    "end\n"
    "return 1\n";

int ingest_store_scripts(struct ingest *ing)
{
    int rc;
    if ((rc = patron_kv_script(ing->redis, CAS_LUA, &ing->cas)) ||
        (rc = patron_kv_script(ing->redis, CAS_MANY_LUA, &ing->cas_many)) ||
        (rc = patron_kv_script(ing->redis, CLOCK_LUA, &ing->clock)) ||
        (rc = patron_kv_script(ing->redis, ITEMS_LUA, &ing->items)))
        return rc;
    return 0;
}

int ingest_store_graph_scripts(struct ingest *ing)
{
    return patron_kv_script(ing->graph_kv, CAS_MANY_LUA, &ing->graph_cas);
}

/* ---- reading -------------------------------------------------------------- */

/* An MGET's values, copied into the batch (the reply is hiredis'). */
static void on_read(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    mc->present = 0;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        ingest_batch_fail(b, reply ? reply->str : "redis disconnected");
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != mc->n) {
        ingest_batch_fail(b, "MGET: unexpected reply");
    } else if (!b->cancelled) {
        for (size_t i = 0; i < mc->n; i++) {
            const redisReply *r = reply->element[i];
            struct versioned *v = mc->v[i];
            v->stored = NULL; /* nil: absent, or not a string (on_exists tells) */
            v->stored_len = 0;
            v->wrong_type = false;
            if (r->type != REDIS_REPLY_STRING)
                continue;
            v->stored = patron_arena_alloc(&b->arena, (size_t)r->len);
            memcpy(v->stored, r->str, (size_t)r->len);
            v->stored_len = (size_t)r->len;
            mc->present++;
        }
    }
    ingest_batch_release(b);
}

/* The type of a key MGET said nil for, when EXISTS counted more keys than
 * MGET found strings: "none" is absent, "string" was written since the MGET
 * (the compare-and-set will see the new version and start over), anything
 * else is never to be written over. */
struct type_probe {
    struct batch *b;
    struct versioned *v;
};

static void on_type(void *ud, redisReply *reply)
{
    struct type_probe *t = ud;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        ingest_batch_fail(t->b, reply ? reply->str : "redis disconnected");
    else if (reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_STRING)
        ingest_batch_fail(t->b, "TYPE: unexpected reply");
    else if (strcmp(reply->str, "none") != 0 && strcmp(reply->str, "string") != 0)
        t->v->wrong_type = true;
    ingest_batch_release(t->b);
}

/* Replies come in order on a connection: the MGET's is in. Equal counts,
 * the usual case, settle it: every nil was absent. */
static void on_exists(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        ingest_batch_fail(b, reply ? reply->str : "redis disconnected");
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        ingest_batch_fail(b, "EXISTS: unexpected reply");
    } else if (!b->cancelled && !b->failed && (size_t)reply->integer > mc->present) {
        struct patron_kv *kv = mc->kv;
        for (size_t i = 0; i < mc->n && !b->failed; i++) {
            struct versioned *v = mc->v[i];
            if (v->stored)
                continue;
            struct type_probe *t = patron_arena_alloc(&b->arena, sizeof(*t));
            *t = (struct type_probe){b, v};
            const char *argv[] = {"TYPE", v->key};
            size_t lens[] = {4, v->key_len};
            if (patron_kv_commandv(kv, on_type, t, 2, argv, lens))
                ingest_batch_fail(b, "redis unavailable");
            else
                b->pending++;
        }
    }
    ingest_batch_release(b);
}

/* Orders by key group, then by position in the batch (deterministic). */
static int versioned_group_cmp(const void *x, const void *y)
{
    const struct versioned *a = *(struct versioned *const *)x, *b = *(struct versioned *const *)y;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    return a < b ? -1 : a > b;
}

int ingest_send_grouped(struct batch *b, struct versioned **v, size_t n, size_t chunk,
                        int (*send)(struct batch *b, struct multi_call *mc))
{
    if (patron_kv_is_cluster(b->ing->redis))
        qsort(v, n, sizeof(*v), versioned_group_cmp);
    for (size_t from = 0, to; from < n; from = to) {
        for (to = from + 1; to < n && to - from < chunk && v[to]->group == v[from]->group; to++)
            ;
        struct multi_call *mc = patron_arena_alloc(&b->arena, sizeof(*mc));
        *mc = (struct multi_call){b, to - from, v + from};
        if (send(b, mc)) {
            ingest_batch_fail(b, "redis unavailable");
            return -1;
        }
        b->pending++;
    }
    return 0;
}

int ingest_store_mget(struct patron_kv *kv, struct multi_call *mc)
{
    const char *argv[1 + READ_CHUNK];
    size_t lens[1 + READ_CHUNK];
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < mc->n; i++) {
        argv[1 + i] = mc->v[i]->key;
        lens[1 + i] = mc->v[i]->key_len;
    }
    mc->kv = kv;
    int rc = patron_kv_commandv(kv, on_read, mc, (int)(1 + mc->n), argv, lens);
    if (rc)
        return rc;
    /* right behind it on the same connection, the same keys (one slot) */
    argv[0] = "EXISTS";
    lens[0] = 6;
    if (patron_kv_commandv(kv, on_exists, mc, (int)(1 + mc->n), argv, lens))
        ingest_batch_fail(mc->b, "redis unavailable"); /* the MGET's callback releases */
    else
        mc->b->pending++;
    return 0;
}

static int send_mget(struct batch *b, struct multi_call *mc)
{
    return ingest_store_mget(b->ing->redis, mc);
}

/* Customers this process wrote recently come from the cache (which holds
 * what the batches in flight wrote, too); the others from Redis, an MGET
 * per READ_CHUNK of one key group. A copy is kept in case the entry is
 * evicted before the batch applies. Only the profiles from `from` on: a
 * batch reads in rounds (ingest_identity_resolve adds some). */
void ingest_read_profiles(struct batch *b, size_t from)
{
    struct ingest *ing = b->ing;
    size_t n = b->n_customers - from;
    struct versioned **miss = patron_arena_alloc(&b->arena, (n ? n : 1) * sizeof(*miss));
    size_t n_miss = 0;
    for (size_t i = from; i < b->n_customers; i++) {
        struct customer *c = b->customers[i];
        struct patron_lru_entry *hit = patron_lru_get(&ing->cache, c->v.key, c->v.key_len);
        if (hit) {
            c->v.stored = patron_arena_alloc(&b->arena, hit->len);
            memcpy(c->v.stored, hit->value, hit->len);
            c->v.stored_len = hit->len;
            continue;
        }
        miss[n_miss++] = &c->v;
    }
    (void)ingest_send_grouped(b, miss, n_miss, READ_CHUNK, send_mget);
}

/* ---- profiles as the apply sees them ------------------------------------------- */

const uint8_t *ingest_profile_current(struct batch *b, struct customer *c, size_t *len)
{
    if (c->stage) { /* this batch wrote it already */
        *len = c->v.len;
        return c->v.value;
    }
    /* What a batch in flight wrote after our read is in the cache (see
     * apply_ready); so is what we wrote before it, unchanged since. */
    struct patron_lru_entry *hit = patron_lru_get(&b->ing->cache, c->v.key, c->v.key_len);
    if (hit) {
        *len = hit->len;
        return hit->value;
    }
    *len = c->v.stored_len;
    return c->v.stored;
}

enum ingest_fault ingest_profile_load(struct batch *b, struct customer *c, struct patron_profile *p)
{
    size_t len;
    const uint8_t *cur = ingest_profile_current(b, c, &len);
    uint64_t version = 0;
    if (!cur && c->v.wrong_type && !c->stage)
        return FAULT_STORED_WRONG_TYPE;
    if (cur) {
        /* shorter than its version too: not ours to write over */
        if (patron_profile_stored_decode(p, cur, len, &version))
            return FAULT_STORED_UNREADABLE;
        /* a key holds its own profile only */
        const char *id = c->visitor ? p->anonymous_id : p->customer_id;
        if (c->visitor != patron_profile_is_visitor(p) || strlen(id) != c->id_len ||
            memcmp(id, c->id, c->id_len) != 0)
            return FAULT_STORED_UNREADABLE;
    } else {
        char id[PATRON_ID_MAX + 1];
        memcpy(id, c->id, c->id_len);
        id[c->id_len] = '\0';
        if (c->visitor)
            patron_profile_init_visitor(p, id);
        else
            patron_profile_init(p, id);
        cur = NULL;
    }
    if (!c->loaded) {
        /* its prefix, copied: a cache entry's value does not outlive a put */
        c->loaded = true;
        c->has_base = cur != NULL;
        if (cur)
            memcpy(c->base, cur, PATRON_PROFILE_VERSION_LEN);
        c->version = version;
    }
    return FAULT_NONE;
}

void ingest_poison_profile(struct batch *b, struct customer *c, enum ingest_fault f)
{
    const char *reason = f == FAULT_STORED_WRONG_TYPE   ? "stored_profile_wrong_type"
                         : f == FAULT_STORED_UNREADABLE ? "stored_profile_unreadable"
                                                        : "profile_too_large";
    ingest_poison_customer(b, c, f, reason);
    for (struct event *e = c->redirected; e && !b->failed; e = e->next_redirected) {
        e->update = NULL;
        ingest_dead_letter(b, e, f, reason);
    }
    c->stage = 0; /* never written over */
    c->compact = NULL;
}

/* A tombstone expires. The value replaces whatever the batch wrote of the
 * profile before: one compare-and-set per profile, over the version read. */
int ingest_profile_store(struct batch *b, struct customer *c, const struct patron_profile *p,
                         bool erasure, int stage)
{
    size_t len;
    uint8_t *scratch = b->ing->encoded;
    if (patron_profile_encode_into(p, scratch + PATRON_PROFILE_VERSION_LEN,
                                   PATRON_PROFILE_ENCODED_MAX, &len))
        return PATRON_EINVAL;
    patron_profile_version_put(scratch, ingest_next_version(b->ing, c->version));
    size_t value_len = PATRON_PROFILE_VERSION_LEN + len;
    uint8_t *value = patron_arena_alloc(&b->arena, value_len);
    memcpy(value, scratch, value_len);
    struct versioned *v = &c->v;
    v->expected_len = c->has_base ? PATRON_PROFILE_VERSION_LEN : 0;
    if (c->has_base)
        memcpy(v->expected, c->base, PATRON_PROFILE_VERSION_LEN);
    v->ttl = p->erased ? TOMBSTONE_TTL_S : "0";
    v->value = value;
    v->len = value_len;
    if (stage > c->stage)
        c->stage = stage;
    if (stage == 2)
        b->stage2 = true;
    /* only a customer's erasure deletes other keys (a visitor has none) */
    c->erasure |= erasure && !c->visitor;
    c->entry = patron_lru_put(&b->ing->cache, v->key, v->key_len, value, value_len, b->seq);
    return 0;
}

/* ---- compare-and-set ------------------------------------------------------ */

uint64_t ingest_next_version(const struct ingest *ing, uint64_t base)
{
    uint64_t writes = (base >> 32) + 1;
    return (writes & UINT64_C(0xffffffff)) << 32 | ing->version_tag;
}

/* The script answers 1 or 0, SET NX OK or nil. */
int ingest_cas_outcome(struct batch *b, const redisReply *reply)
{
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        ingest_batch_fail(b, reply ? reply->str : "redis disconnected");
        return -1;
    }
    if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_NIL)
        return reply->type == REDIS_REPLY_STATUS;
    if (reply->type != REDIS_REPLY_INTEGER) {
        ingest_batch_fail(b, "compare-and-set: unexpected reply");
        return -1;
    }
    return reply->integer != 0;
}

/* Profiles: another writer means another ingest took the partition (or a
 * zombie of ours wrote late), or, for the profiles two partitions write (a
 * customer and its merged visitors' events), the other partition's ingest
 * won: start over from the stored offsets. */
static void on_profile_written(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    if (ingest_cas_outcome(mc->b, reply) == 0) {
        patron_counter_add(mc->b->ing->m_conflicts, 1);
        ingest_batch_fail(mc->b, "profile version conflict");
    }
    ingest_batch_release(mc->b);
}

/* A value written where none was read (not even an empty string: MSETNX
 * would never write over that one), to keep no longer than forever. */
static bool is_new(const struct versioned *v)
{
    return v->expected_len == 0 && !v->stored && strcmp(v->ttl, "0") == 0;
}

int ingest_cas_grouped(struct batch *b, struct versioned **v, size_t n,
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
    if (ingest_send_grouped(b, v, k, CAS_CHUNK, send))
        return -1;
    return ingest_send_grouped(b, v + k, n - k, CAS_CHUNK, send);
}

int ingest_store_cas(struct multi_call *mc, patron_redis_cb cb, struct patron_kv *kv,
                     struct patron_kv_script *script)
{
    const char *argv[4 * CAS_CHUNK];
    size_t lens[4 * CAS_CHUNK];
    size_t nkeys = mc->n, argc = nkeys;
    if (is_new(mc->v[0])) {
        /* new keys only (ingest_cas_grouped puts them apart): MSETNX is the
         * same all-or-none compare-and-set natively; the script would copy
         * each value into Lua and back out, two thirds of its cost */
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
    return ingest_store_cas(mc, on_profile_written, b->ing->redis, b->ing->cas_many);
}

/* Any other write: only an error matters (HSET, SADD... count what changed). */
static void on_written(void *ud, redisReply *reply)
{
    struct batch *b = ud;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        ingest_batch_fail(b, reply ? reply->str : "redis disconnected");
    ingest_batch_release(b);
}

/* ---- profiles --------------------------------------------------------------- */

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
    struct multi_call *mc = patron_arena_alloc(&b->arena, sizeof(*mc));
    *mc = (struct multi_call){b, 1, NULL};
    return patron_kv_evalsha(b->ing->redis, b->ing->cas, on_profile_written, mc, nkeys,
                             argc - nkeys, argv, lens);
}

/* One compare-and-set call per CAS_CHUNK profiles of one key group, then
 * one per erasure: the profiles of the stage. */
void ingest_write_profiles(struct batch *b, int stage)
{
    struct versioned **writes =
        patron_arena_alloc(&b->arena, (b->n_customers + 1) * sizeof(*writes));
    size_t n = 0;
    for (size_t i = 0; i < b->n_customers; i++) {
        struct customer *c = b->customers[i];
        if (c->stage == stage && !c->erasure)
            writes[n++] = &c->v;
    }
    if (ingest_cas_grouped(b, writes, n, send_profile_cas))
        return;
    for (size_t i = 0; i < b->n_customers; i++) {
        struct customer *c = b->customers[i];
        if (c->stage != stage || !c->erasure)
            continue;
        if (send_erasure(b, c)) {
            ingest_batch_fail(b, "redis unavailable");
            return;
        }
        b->pending++;
    }
}

/* A compaction: the alias alone over the visitor's current value. */
struct compaction {
    struct versioned v;
    struct customer *c;
};

/* A compaction call's reply, for up to CAS_CHUNK visitors of one key group,
 * all or none: best effort (a visitor left whole keeps what it brought,
 * which nothing reads; a later batch tries again). Once written, the cache
 * holds the alias, unless a later batch wrote the visitor meanwhile. */
static void on_compacted(void *ud, redisReply *reply)
{
    struct multi_call *mc = ud;
    struct batch *b = mc->b;
    bool written = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    for (size_t i = 0; written && !b->cancelled && i < mc->n; i++) {
        struct compaction *k = (struct compaction *)mc->v[i]; /* v is its first member */
        patron_counter_add(b->ing->m_compacted, 1);
        struct patron_lru_entry *e = patron_lru_peek(&b->ing->cache, k->v.key, k->v.key_len);
        if (e && (e->pin == 0 || e->pin == b->seq))
            k->c->entry = patron_lru_put(&b->ing->cache, k->v.key, k->v.key_len, k->v.value,
                                         k->v.len, e->pin);
    }
    ingest_batch_release(b);
}

static int send_compaction(struct batch *b, struct multi_call *mc)
{
    return ingest_store_cas(mc, on_compacted, b->ing->redis, b->ing->cas_many);
}

/* The merged visitors whose customers now hold what they brought: their
 * keys keep the alias alone. After the batch's profile writes; grouped as
 * they are (CAS_CHUNK keys of one group per call). */
void ingest_write_compactions(struct batch *b)
{
    struct versioned **v = NULL;
    size_t n = 0;
    for (size_t i = 0; i < b->n_customers; i++) {
        struct customer *c = b->customers[i];
        size_t len;
        const uint8_t *cur = c->compact ? ingest_profile_current(b, c, &len) : NULL;
        if (!cur || len < PATRON_PROFILE_VERSION_LEN)
            continue;
        if (!v)
            v = patron_arena_alloc(&b->arena, b->n_customers * sizeof(*v));
        struct compaction *k = patron_arena_calloc(&b->arena, 1, sizeof(*k));
        k->c = c;
        k->v = c->v;
        /* over what the batch wrote of it, or what it read */
        memcpy(k->v.expected, cur, PATRON_PROFILE_VERSION_LEN);
        k->v.expected_len = PATRON_PROFILE_VERSION_LEN;
        k->v.ttl = "0";
        /* c->compact leaves room for the version: the one after cur's */
        uint8_t *value = patron_arena_alloc(&b->arena, c->compact_len);
        memcpy(value, c->compact, c->compact_len);
        patron_profile_version_put(
            value, ingest_next_version(b->ing, patron_profile_version_get(cur, len)));
        k->v.value = value;
        k->v.len = c->compact_len;
        v[n++] = &k->v;
    }
    /* best effort: a call that could not be sent fails the batch like any
     * write would (Redis is gone; the reset replays) */
    if (n)
        (void)ingest_send_grouped(b, v, n, CAS_CHUNK, send_compaction);
}

/* ---- item statistics and the catalog ---------------------------------------- */

/* One script call for every item statistic of the batch. */
void ingest_write_item_stats(struct batch *b)
{
    struct ingest *ing = b->ing;
    size_t n = b->stats.count;
    if (n == 0)
        return;
    const char **argv = patron_malloc((4 + 5 * n) * sizeof(*argv));
    size_t *lens = patron_malloc((4 + 5 * n) * sizeof(*lens));
    char(*nums)[3][32] = patron_malloc(n * sizeof(*nums));
    size_t argc = 0, k = 0;
    const char *keys[] = {PATRON_KEY_ITEMS_POP, PATRON_KEY_ITEMS_TREND, PATRON_KEY_ITEMS_CAT,
                          PATRON_KEY_ITEMS_SOLD};
    for (size_t i = 0; i < 4; i++) {
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
            struct patron_lru_entry *known = patron_lru_get(&ing->cats, st->item, id_len);
            if (known && known->len == cat_len && memcmp(known->value, cat, cat_len) == 0) {
                cat = "";
                cat_len = 0;
            } else {
                (void)patron_lru_put(&ing->cats, st->item, id_len, (const uint8_t *)cat, cat_len,
                                     0);
            }
        }
        argv[argc] = cat;
        lens[argc++] = cat_len;
        argv[argc] = nums[k][2];
        lens[argc++] = (size_t)snprintf(nums[k][2], sizeof(nums[k][2]), "%" PRId64, st->lines);
        k++;
    }
    if (patron_kv_evalsha(ing->redis, ing->items, on_written, b, 4, (int)argc - 4, argv, lens))
        ingest_batch_fail(b, "redis unavailable");
    else
        b->pending++;
    free(nums);
    free(lens);
    free(argv);
}

static void send_command(struct batch *b, int argc, const char **argv, const size_t *lens)
{
    if (patron_kv_commandv(b->ing->redis, on_written, b, argc, argv, lens)) {
        ingest_batch_fail(b, "redis unavailable");
        return;
    }
    b->pending++;
}

/* The item's hash: a key of another type there is the record's poison
 * (ingest_fault_of_reply), not a reason to stop. */
struct item_write {
    struct batch *b;
    struct event *e;
};

static void on_item_written(void *ud, redisReply *reply)
{
    struct item_write *w = ud;
    enum ingest_fault f = ingest_fault_of_reply(reply);
    if (f == FAULT_STORED_WRONG_TYPE && !w->b->cancelled) {
        patron_log(w->b->ing->log, PATRON_LOG_WARN, "item key of another type: update to the DLQ",
                   "\"partition\":%d,\"offset\":%" PRId64, w->e->msg->partition, w->e->msg->offset);
        patron_counter_add(w->b->ing->m_items_wrong_type, 1);
        ingest_dead_letter(w->b, w->e, f, "stored_item_wrong_type");
    } else if (f != FAULT_NONE) {
        ingest_batch_fail(w->b, reply ? reply->str : "redis disconnected");
    }
    ingest_batch_release(w->b);
}

/* The item's catalog hash, its category for filters, its stock state and
 * whether it is a product (last write wins: the catalog topic is keyed by
 * item, so in order). The hash goes first: a key of another type sends the
 * update to the DLQ (the others are Patron's own keys, written whatever). */
void ingest_write_catalog(struct batch *b, struct event *e, const Patron__V1__ItemUpdate *u)
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
    struct item_write *w = patron_arena_alloc(&b->arena, sizeof(*w));
    *w = (struct item_write){b, e};
    if (patron_kv_commandv(b->ing->redis, on_item_written, w, 10, hset, hset_lens)) {
        ingest_batch_fail(b, "redis unavailable");
        return;
    }
    b->pending++;
    const char *stock[] = {u->in_stock ? "SREM" : "SADD", PATRON_KEY_ITEMS_OOS, u->item_id};
    size_t stock_lens[] = {4, strlen(PATRON_KEY_ITEMS_OOS), id_len};
    send_command(b, 3, stock, stock_lens);
    const char *np[] = {u->not_a_product ? "SADD" : "SREM", PATRON_KEY_ITEMS_NP, u->item_id};
    size_t np_lens[] = {4, strlen(PATRON_KEY_ITEMS_NP), id_len};
    send_command(b, 3, np, np_lens);
    if (u->category[0]) {
        const char *cat[] = {"HSET", PATRON_KEY_ITEMS_CAT, u->item_id, u->category};
        size_t cat_lens[] = {4, strlen(PATRON_KEY_ITEMS_CAT), id_len, strlen(u->category)};
        send_command(b, 4, cat, cat_lens);
    }
    patron_counter_add(b->ing->m_catalog, 1);
}

/* ---- the event clock ---------------------------------------------------------- */

/* The arguments of one CLOCK_LUA call: the two keys, the number of
 * triples, the (partition, event ms, idle) triples, then the (partition,
 * offset) pairs; the numbers' text held here. */
struct clock_args {
    const char **argv;
    char (*text)[2][24];
    char count[24];
    size_t argc, n, cap;
};

static void clock_args_init(struct clock_args *a, size_t triples, size_t pairs)
{
    a->cap = triples + pairs;
    a->argv = patron_malloc((3 + 3 * triples + 2 * pairs) * sizeof(*a->argv));
    a->text = patron_malloc((a->cap ? a->cap : 1) * sizeof(*a->text));
    a->argv[0] = PATRON_KEY_CLOCK;
    a->argv[1] = PATRON_KEY_CLOCK_OUT;
    a->argv[2] = a->count;
    a->argc = 3;
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

/* After the last triple. */
static void clock_args_add_out(struct clock_args *a, size_t partition, int64_t offset)
{
    char(*t)[24] = a->text[a->n++];
    snprintf(t[0], sizeof(t[0]), "%zu", partition);
    snprintf(t[1], sizeof(t[1]), "%" PRId64, offset);
    a->argv[a->argc++] = t[0];
    a->argv[a->argc++] = t[1];
}

/* Sends the call when it has a triple; PATRON_ENOTFOUND when it has none.
 * triples: how many clock_args_add made. */
static int clock_args_send(struct ingest *ing, struct clock_args *a, size_t triples,
                           patron_redis_cb cb, void *ud)
{
    snprintf(a->count, sizeof(a->count), "%zu", triples);
    int rc = triples == 0 ? PATRON_ENOTFOUND
                          : patron_kv_evalsha(ing->redis, ing->clock, cb, ud, 2, (int)a->argc - 2,
                                              a->argv, NULL);
    free(a->text);
    free(a->argv);
    return rc;
}

static void on_clock_written(void *ud, redisReply *reply)
{
    (void)ud;
    (void)reply; /* best effort: the next tick writes again */
}

void ingest_note_delivered(struct ingest *ing, int32_t partition, int64_t offset)
{
    if (partition < 0 || partition >= PATRON_CLOCK_PARTITIONS_MAX || offset < 0)
        return; /* not a partition the trigger reads the clock for */
    size_t p = (size_t)partition;
    if (p >= ing->n_delivered) {
        size_t n = p + 1 < 16 ? 16 : 2 * (p + 1);
        if (n > PATRON_CLOCK_PARTITIONS_MAX)
            n = PATRON_CLOCK_PARTITIONS_MAX;
        ing->delivered = patron_realloc(ing->delivered, n * sizeof(*ing->delivered));
        for (size_t i = ing->n_delivered; i < n; i++)
            ing->delivered[i] = 0;
        ing->n_delivered = n;
    }
    if (offset + 1 > ing->delivered[p])
        ing->delivered[p] = offset + 1;
}

/* Each partition's latest event time, as busy (only
 * ingest_mark_idle_partitions says a partition is idle, once nothing is in
 * flight), with every updates partition's delivered offset. */
void ingest_write_clock(struct ingest *ing, const struct batch *b)
{
    size_t pairs = 0;
    for (size_t i = 0; i < ing->n_delivered; i++)
        pairs += ing->delivered[i] > 0;
    struct clock_args a;
    clock_args_init(&a, b->n_positions, pairs);
    size_t triples = 0;
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        if (bp->topic == TOPIC_EVENTS && bp->max_event_ms > 0) {
            clock_args_add(&a, bp->partition, bp->max_event_ms, false);
            triples++;
        }
    }
    for (size_t i = 0; i < ing->n_delivered; i++)
        if (ing->delivered[i] > 0)
            clock_args_add_out(&a, i, ing->delivered[i]);
    /* best effort: the next batch, or the tick's idle marks, write again */
    (void)clock_args_send(ing, &a, triples, on_clock_written, ing);
}

/* On the main connection, which keeps the order: an idle clock must not let
 * the trigger fire timers past events polled and not yet applied. A
 * partition's time never goes back: 0 keeps its own.
 *
 * When one of this pod's partitions wakes up (it was idle), they all turn
 * busy again, until the pod as a whole has been quiet a while
 * (ingest_mark_idle_partitions): traffic resuming on one partition is
 * traffic about to reach the others (a replay, a producer's next batches),
 * and an idle partition does not hold the clock back. Without this, the
 * clock would run to the first partition's events and pass the older ones
 * of its neighbours, and a visitor's event applied to its customer
 * (another partition of profile updates, docs/guarantees.md "Identity")
 * would reach the trigger after timers it precedes. Holding the clock back
 * longer is always safe: timers fire later, each decided at its own time. */
void ingest_clock_busy(struct batch *b)
{
    struct ingest *ing = b->ing;
    bool events = false, woke = false;
    for (size_t i = 0; i < b->n_positions; i++) {
        const struct position *bp = &b->positions[i];
        struct position *p =
            ingest_position_find(ing->positions, ing->n_positions, bp->topic, bp->partition);
        if (bp->topic != TOPIC_EVENTS)
            continue;
        events = true;
        woke |= p && p->idle;
    }
    if (events)
        ing->events_busy_mono = patron_monotonic_ms();
    if (!woke)
        return;
    struct clock_args a;
    clock_args_init(&a, ing->n_positions, 0);
    for (size_t i = 0; i < ing->n_positions; i++) {
        struct position *p = &ing->positions[i];
        if (p->topic != TOPIC_EVENTS || !p->idle)
            continue;
        p->idle = false;
        clock_args_add(&a, p->partition, 0, false);
    }
    int rc = clock_args_send(ing, &a, a.n, on_clock_written, ing);
    if (rc && rc != PATRON_ENOTFOUND)
        ingest_batch_fail(b, "redis unavailable");
}

/* So that the event clock's low watermark does not wait for them: every
 * events partition of the pod, once none has anything left to read and the
 * pod has had no event to apply for INGEST_IDLE_QUIET_MS. Called with no
 * batch in flight: every ProfileUpdate of what the clock counts is
 * delivered. Marked again on every tick (best effort: a lost write is
 * repeated). */
void ingest_mark_idle_partitions(struct ingest *ing)
{
    if (patron_monotonic_ms() - ing->events_busy_mono < INGEST_IDLE_QUIET_MS)
        return;
    for (size_t i = 0; i < ing->n_positions; i++) {
        const struct position *p = &ing->positions[i];
        if (p->topic == TOPIC_EVENTS && patron_consumer_lag(ing->consumer, ing->cfg->topic_events,
                                                            p->partition, p->next_offset) != 0)
            return;
    }
    struct clock_args a;
    clock_args_init(&a, ing->n_positions, 0);
    for (size_t i = 0; i < ing->n_positions; i++) {
        struct position *p = &ing->positions[i];
        if (p->topic != TOPIC_EVENTS)
            continue;
        p->idle = true;
        clock_args_add(&a, p->partition, 0, true);
    }
    (void)clock_args_send(ing, &a, a.n, on_clock_written, ing); /* best effort: the next tick */
}
