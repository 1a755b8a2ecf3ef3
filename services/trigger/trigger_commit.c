/*
 * The commit of a job: ONE script on the partition's slot, fenced by the
 * partition's epoch, writes the new states, their next timer in {tp:p}:due,
 * the messages into the outbox {tp:p}:outbox, the statistics, the items
 * recommended, the stream time and the offset applied up to ({tp:p}:offset,
 * for the partition's next owner). All of it or nothing. Only then is the
 * input offset stored (for the consumer's commit) and are the messages
 * produced.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/campaign_state_codec.h"
#include "patron/keys.h"
#include "trigger_internal.h"

/* The commit: KEYS epoch, due, outbox, stats, reco, stream, offset, outbox
 * index (TRIGGER_FIXED_KEYS), then one state key per customer. ARGV epoch,
 * stream time, the next offset of the partition's updates (-1 for a
 * sweep), n, then per customer (value or "" to delete, id, next fire time
 * or ""), then n and (message id, record, customer id) triples, n and
 * (field, delta) pairs, n and (item, count) pairs, n and the customers
 * erased (their outbox entries committed before go), n and the customers
 * whose due entry goes while their state stays (it cannot be used), then
 * the daily counters' (trigger_daily.c: KEYS {tp:p}:daily and the job's day
 * hashes after the state keys). Returns the outbox entries the erasures
 * removed.
 *
 * Sections: where each list starts; the checks (nothing is written unless
 * every key the script writes is of its type, so that a key another tool
 * wrote cannot leave a commit half done: Redis does not undo a script that
 * fails midway); the fence; then the writes. */
#define COMMIT_LUA_LAYOUT                                                                          \
    "local nc = tonumber(ARGV[4])\n"                                                               \
    "local a_out = 5 + 3 * nc\n"                                                                   \
    "local n_out = tonumber(ARGV[a_out]); a_out = a_out + 1\n"                                     \
    "local a_st = a_out + 3 * n_out\n"                                                             \
    "local n_st = tonumber(ARGV[a_st]); a_st = a_st + 1\n"                                         \
    "local a_rc = a_st + 2 * n_st\n"                                                               \
    "local n_rc = tonumber(ARGV[a_rc]); a_rc = a_rc + 1\n"                                         \
    "local a_pg = a_rc + 2 * n_rc\n"                                                               \
    "local n_pg = tonumber(ARGV[a_pg]); a_pg = a_pg + 1\n"                                         \
    "local a_un = a_pg + n_pg\n"                                                                   \
    "local n_un = tonumber(ARGV[a_un]); a_un = a_un + 1\n"                                         \
    "local dk = 9 + nc\n"                                                                          \
    "local n_days = tonumber(ARGV[a_un + n_un])\n"

/* The partition's keys (KEYS[1 .. 8]): each of its type or missing, the
 * strings integers. An error PATRON_BADKEY stops the partition
 * (trigger_fault). */
#define COMMIT_LUA_CHECK_KEYS                                                                      \
    "local TYPES = {'string', 'zset', 'hash', 'hash', 'zset', 'string', 'string', 'zset'}\n"       \
    "for i = 1, 8 do\n"                                                                            \
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"                                                 \
    "  if t ~= 'none' and t ~= TYPES[i] then\n"                                                    \
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. "  \
    "TYPES[i])\n"                                                                                  \
    "  end\n"                                                                                      \
    "  if t == 'string' and (redis.call('STRLEN', KEYS[i]) > 20 or\n"                              \
    "      not string.match(redis.call('GET', KEYS[i]), '^%-?%d+$')) then\n"                       \
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[i] .. ' is not an integer')\n"          \
    "  end\n"                                                                                      \
    "end\n"

/* What this commit writes: a state key of another type (written since the
 * job loaded it) is PATRON_BADSTATE, retried (the redo's load finds it); a
 * statistic that is not an integer, PATRON_BADKEY. */
#define COMMIT_LUA_CHECK_WRITES                                                                    \
    "for i = 1, nc do\n"                                                                           \
    "  if ARGV[2 + 3 * i] ~= '' then\n"                                                            \
    "    local t = redis.call('TYPE', KEYS[8 + i]).ok\n"                                           \
    "    if t ~= 'none' and t ~= 'string' then\n"                                                  \
    "      return redis.error_reply('PATRON_BADSTATE ' .. KEYS[8 + i] .. ' is a ' .. t)\n"         \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local dt = redis.call('TYPE', KEYS[dk]).ok\n"                                                 \
    "if dt ~= 'none' and dt ~= 'zset' then\n"                                                      \
    "  return redis.error_reply('PATRON_BADKEY ' .. KEYS[dk] .. ' is a ' .. dt .. ', not a "       \
    "zset')\n"                                                                                     \
    "end\n"                                                                                        \
    "for d = 1, n_days do\n"                                                                       \
    "  local t = redis.call('TYPE', KEYS[dk + d]).ok\n"                                            \
    "  if t ~= 'none' and t ~= 'hash' then\n"                                                      \
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[dk + d] .. ' is a ' .. t .. ', not a "  \
    "hash')\n"                                                                                     \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "for i = 0, n_st - 1 do\n"                                                                     \
    "  local v = redis.call('HGET', KEYS[4], ARGV[a_st + 2 * i])\n"                                \
    "  if v and (#v > 20 or not string.match(v, '^%-?%d+$')) then\n"                               \
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[4] .. ' field ' .. ARGV[a_st + 2 * i] " \
    ".. ' is not an integer')\n"                                                                   \
    "  end\n"                                                                                      \
    "end\n"

/* trigger_erase.c's part: an erased customer's outbox entries (found by
 * the index, `<customer>\0<message id>`, without a scan) committed before
 * this job go; then the due entries of customers whose state is kept. */
#define COMMIT_LUA_ERASE                                                                           \
    "local purged = 0\n"                                                                           \
    "for i = 0, n_pg - 1 do\n"                                                                     \
    "  local c = ARGV[a_pg + i]\n"                                                                 \
    "  local lo, hi = '[' .. c .. '\\0', '(' .. c .. '\\1'\n"                                      \
    "  for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[8], lo, hi)) do\n"                        \
    "    purged = purged + redis.call('HDEL', KEYS[3], string.sub(m, #c + 2))\n"                   \
    "  end\n"                                                                                      \
    "  redis.call('ZREMRANGEBYLEX', KEYS[8], lo, hi)\n"                                            \
    "end\n"                                                                                        \
    "for i = 0, n_un - 1 do redis.call('ZREM', KEYS[2], ARGV[a_un + i]) end\n"

const char trigger_commit_lua[] = COMMIT_LUA_LAYOUT COMMIT_LUA_CHECK_KEYS COMMIT_LUA_CHECK_WRITES
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end\n"
    "if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[6]) or '0') then "
    "redis.call('SET', KEYS[6], ARGV[2]) end\n"
    "if tonumber(ARGV[3]) > tonumber(redis.call('GET', KEYS[7]) or '-1') then "
    "redis.call('SET', KEYS[7], ARGV[3]) end\n"
    "for i = 1, nc do\n"
    "  local v, id, due = ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i]\n"
    "  if v == '' then redis.call('DEL', KEYS[8 + i]) else redis.call('SET', KEYS[8 + i], v) end\n"
    "  if due == '' then redis.call('ZREM', KEYS[2], id) else redis.call('ZADD', KEYS[2], due, id) "
    "end\n"
    "end\n" COMMIT_LUA_ERASE "for i = 0, n_out - 1 do\n"
    "  local a = a_out + 3 * i\n"
    "  redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 1])\n"
    "  redis.call('ZADD', KEYS[8], 0, ARGV[a + 2] .. '\\0' .. ARGV[a])\n"
    "end\n"
    "for i = 0, n_st - 1 do redis.call('HINCRBY', KEYS[4], ARGV[a_st + 2 * i], "
    "ARGV[a_st + 2 * i + 1]) end\n"
    "for i = 0, n_rc - 1 do redis.call('ZINCRBY', KEYS[5], ARGV[a_rc + 2 * i + 1], "
    "ARGV[a_rc + 2 * i]) end\n"
    "local a = a_un + n_un\n" TRIGGER_DAILY_LUA "return purged\n";

/* A stopped partition's look at its keys (KEYS as the commit's first 8):
 * the commit's checks, and every statistic an integer. */
const char trigger_check_lua[] = COMMIT_LUA_CHECK_KEYS
    "local kv = redis.call('HGETALL', KEYS[4])\n"
    "for i = 2, #kv, 2 do\n"
    "  if #kv[i] > 20 or not string.match(kv[i], '^%-?%d+$') then\n"
    "    return redis.error_reply('PATRON_BADKEY ' .. KEYS[4] .. ' field ' .. kv[i - 1] .. "
    "' is not an integer')\n"
    "  end\n"
    "end\n"
    "return 1\n";

int trigger_fixed_keys(int32_t partition, char keys[TRIGGER_FIXED_KEYS][PATRON_KEY_MAX])
{
    static const char *const fixed[TRIGGER_FIXED_KEYS] = {
        "epoch", "due", "outbox", "stats", "reco", "stream", "offset", "outbox-index"};
    for (size_t i = 0; i < TRIGGER_FIXED_KEYS; i++)
        if (patron_key_trigger(keys[i], PATRON_KEY_MAX, partition, fixed[i]) < 0)
            return PATRON_ETOOBIG;
    return 0;
}

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

void trigger_argv_add(struct argv_buf *a, const char *s, size_t len)
{
    argv_add(a, s, len);
}

void trigger_argv_own(struct argv_buf *a, char *s, size_t len)
{
    argv_own(a, s, len);
}

void trigger_argv_int(struct argv_buf *a, int64_t v)
{
    argv_int(a, v);
}

static void argv_free(struct argv_buf *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->v);
    free(a->l);
}

/* The consumer commits the offset stored; a revoked partition's new owner
 * reads {tp:p}:offset instead. */
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
        if (trigger_fault(reply) == TRIGGER_FAULT_PARTITION) {
            trigger_part_stop(j->p, reply);
        } else if (reply && strstr(reply->str, "FENCED")) {
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
        trigger_job_finish(j);
        return;
    }
    for (int s = 0; s <= PATRON_STAT_FREQUENCY_CAP; s++)
        patron_counter_add(tr->m_outcomes[s], (uint64_t)j->outcomes[s]);
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        patron_counter_add(tr->m_erased_outbox, (uint64_t)reply->integer);
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
    trigger_produce_job(j);
    trigger_job_finish(j);
}

/* The script's arguments after its keys (see trigger_commit_lua). */
static void commit_args(struct job *j, size_t n_changed, struct argv_buf *a)
{
    struct part *p = j->p;
    argv_add(a, p->epoch, strlen(p->epoch));
    argv_int(a, j->kind == JOB_UPDATES ? j->stream_ms : p->stream_ms);
    argv_int(a, j->kind == JOB_UPDATES && j->n_msgs > 0 ? j->msgs[j->n_msgs - 1]->offset + 1 : -1);
    argv_int(a, (int64_t)n_changed);
    for (size_t i = 0; i < j->n_custs; i++) {
        struct cust *c = &j->custs[i];
        if (!c->changed)
            continue;
        int64_t next = c->erased ? INT64_MAX : patron_customer_state_next_fire(&c->st);
        if (c->erased) {
            argv_add(a, "", 0);
        } else {
            uint8_t *v;
            size_t vl = patron_customer_state_encode(&c->st, &v);
            argv_own(a, (char *)v, vl);
        }
        argv_add(a, c->id, c->id_len);
        if (next == INT64_MAX)
            argv_add(a, "", 0);
        else
            argv_int(a, next);
    }
    argv_int(a, (int64_t)j->n_outs);
    for (size_t i = 0; i < j->n_outs; i++) {
        argv_add(a, j->outs[i].send.decision.message_id, PATRON_MESSAGE_ID_LEN);
        argv_add(a, (const char *)j->outs[i].bytes, j->outs[i].len);
        argv_add(a, j->outs[i].cust->id, j->outs[i].cust->id_len);
    }
    argv_int(a, (int64_t)j->n_stats);
    for (size_t i = 0; i < j->n_stats; i++) {
        argv_add(a, j->stats[i].field, strlen(j->stats[i].field));
        argv_int(a, j->stats[i].delta);
    }
    argv_int(a, (int64_t)j->reco_items.count);
    for (size_t i = 0; i < j->reco_items.cap; i++) {
        const struct patron_strmap_slot *s = &j->reco_items.slots[i];
        if (!s->key)
            continue;
        argv_add(a, s->key, s->len);
        argv_int(a, ((const struct reco_item *)s->value)->count);
    }
    /* trigger_erase.c's and trigger_poison.c's lists */
    size_t n_purge = 0, n_unsched = 0;
    for (size_t i = 0; i < j->n_custs; i++) {
        n_purge += j->custs[i].purge;
        n_unsched += j->custs[i].unschedule;
    }
    argv_int(a, (int64_t)n_purge);
    for (size_t i = 0; i < j->n_custs; i++)
        if (j->custs[i].purge)
            argv_add(a, j->custs[i].id, j->custs[i].id_len);
    argv_int(a, (int64_t)n_unsched);
    for (size_t i = 0; i < j->n_custs; i++)
        if (j->custs[i].unschedule)
            argv_add(a, j->custs[i].id, j->custs[i].id_len);
    trigger_daily_args(j, a);
}

void trigger_job_commit(struct job *j)
{
    struct trigger *tr = j->tr;
    struct part *p = j->p;
    if (trigger_dlq_wait(j, trigger_job_commit))
        return; /* a dead letter is part of the job: committed once acknowledged */
    if (j->failed) {
        trigger_job_finish(j);
        return;
    }
    j->phase = PHASE_COMMIT;
    size_t n_changed = 0, n_unsched = 0;
    for (size_t i = 0; i < j->n_custs; i++) {
        n_changed += j->custs[i].changed;
        n_unsched += j->custs[i].unschedule;
    }
    /* An update job commits even when it changes nothing (duplicates, dead
     * letters): its offset tells the partition's next owner what is applied. */
    if (j->kind == JOB_SWEEP && n_changed == 0 && n_unsched == 0 && j->n_outs == 0 &&
        j->n_stats == 0) {
        trigger_job_finish(j);
        return;
    }
    struct argv_buf a = {0};
    char key[PATRON_KEY_MAX], fixed[TRIGGER_FIXED_KEYS][PATRON_KEY_MAX];
    if (trigger_fixed_keys(p->id, fixed)) {
        j->failed = true; /* cannot happen: a partition's keys fit */
        trigger_job_finish(j);
        return;
    }
    for (size_t i = 0; i < TRIGGER_FIXED_KEYS; i++)
        argv_own(&a, patron_strdup(fixed[i]), strlen(fixed[i]));
    for (size_t i = 0; i < j->n_custs; i++) {
        if (!j->custs[i].changed)
            continue;
        int kl = patron_key_trigger_customer(key, sizeof(key), p->id, j->custs[i].id,
                                             j->custs[i].id_len);
        argv_own(&a, patron_strdup(key), (size_t)kl);
    }
    trigger_daily_keys(j, &a);
    size_t nkeys = a.n;
    commit_args(j, n_changed, &a);
    if (patron_kv_evalsha(tr->redis, tr->commit, on_committed, j, (int)nkeys, (int)(a.n - nkeys),
                          a.v, a.l)) {
        j->failed = true;
        trigger_job_finish(j);
    }
    argv_free(&a);
}
