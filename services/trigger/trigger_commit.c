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

/* The commit: KEYS epoch, due, outbox, stats, reco, stream, offset, then one
 * state key per customer, then the daily keys (trigger_daily.c). ARGV epoch,
 * stream time, the next offset of the partition's updates (-1 for a sweep),
 * n, then per customer (value or "" to delete, id, next fire time or ""),
 * then n and (message id, record) pairs, n and (field, delta) pairs, n and
 * (item, count) pairs, then the daily arguments. */
const char trigger_commit_lua[] =
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
    "local dk = 8 + tonumber(ARGV[4])\n" TRIGGER_DAILY_LUA "return 1\n";

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
        trigger_job_finish(j);
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
    trigger_daily_args(j, a);
}

void trigger_job_commit(struct job *j)
{
    struct trigger *tr = j->tr;
    struct part *p = j->p;
    if (j->failed) {
        trigger_job_finish(j);
        return;
    }
    j->phase = PHASE_COMMIT;
    size_t n_changed = 0;
    for (size_t i = 0; i < j->n_custs; i++)
        n_changed += j->custs[i].changed;
    /* An update job commits even when it changes nothing (duplicates, dead
     * letters): its offset tells the partition's next owner what is applied. */
    if (j->kind == JOB_SWEEP && n_changed == 0 && j->n_outs == 0 && j->n_stats == 0) {
        trigger_job_finish(j);
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
