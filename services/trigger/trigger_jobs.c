/*
 * A job from start to end: taking the updates off the partition's queue
 * (one that cannot be applied goes to the DLQ: trigger_poison.c; an erasure
 * is trigger_erase.c's), loading the states of its customers
 * ({tp:p}:c:<id>, one script: a partition's keys share a slot),
 * running the pure engine over them and collecting what it decided; then
 * trigger_job_messages and trigger_job_commit; then trigger_job_finish,
 * which redoes a failed job from its first update (its effects are all or
 * nothing) and starts the partition's next one.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "patron/campaign_state_codec.h"
#include "patron/keys.h"
#include "trigger_internal.h"

#define JOB_UPDATES_MAX 1000 /* updates per job */
/* Bytes of updates per job (the first is taken whatever its size; an update
 * over PATRON_PROFILE_UPDATE_MAX is not decoded): with the dead letters'
 * copies, what one job holds. */
#define JOB_BYTES_MAX (4u << 20)
#define RETRY_MS 500 /* a failed job is redone after this */

struct cust *trigger_job_cust(struct job *j, const char *id, size_t len, struct patron_strmap *idx)
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
        if (j->msgs[i]) {
            j->tr->buffered_bytes -= j->msgs[i]->len;
            rd_kafka_message_destroy(j->msgs[i]);
        }
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
    trigger_daily_free(j);
    free(j->outs);
    free(j->stats);
    free(j->custs);
    free(j->cust_of);
    free(j->updates);
    free(j->msgs);
    free(j);
}

/* ---- running the engine ----------------------------------------------------- */

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

/* The same counter by its event-time day (trigger_daily.c). */
static void daily_count(struct job *j, const struct patron_engine_count *k)
{
    char field[PATRON_STATS_FIELD_MAX];
    if (patron_stats_field_format(field, k->campaign_id, k->variant, k->stat) >= 0)
        trigger_daily_add(j, field, k->at_ms, k->delta);
}

/* Takes what the engine produced for customer c into the job. */
static void job_collect(struct job *j, struct cust *c, struct patron_engine_out *out)
{
    for (size_t i = 0; i < out->n_counts; i++) {
        const struct patron_engine_count *k = &out->counts[i];
        stat_add(j, k->campaign_id, k->variant, k->stat, k->delta);
        daily_count(j, k);
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
    struct patron_engine e = {.campaigns = j->campaigns,
                              .profile = &tr->cfg->profile,
                              .clv = trigger_models_clv(tr),
                              .clusters = trigger_models_clusters(tr)};
    struct patron_engine_out out = {0};
    if (j->kind == JOB_UPDATES) {
        j->stream_ms = j->p->stream_ms;
        for (size_t i = 0; i < j->n_msgs && !j->failed; i++) {
            if (!j->updates[i])
                continue;
            struct cust *c = &j->custs[j->cust_of[i]];
            if (j->updates[i]->kind == PATRON__V1__EVENT_KIND__ERASURE &&
                (c->fault || trigger_is_fanout(j->updates[i], j->p->id))) {
                trigger_erase(j, c, i); /* trigger_erase.c: no engine, no timer fires */
                continue;
            }
            if (c->fault) {
                /* Its state cannot be used (trigger_poison.c): kept, and its
                 * updates dead-lettered until an operator deals with it. */
                trigger_dead_letter(j, j->msgs[i], c->fault);
                if (j->updates[i]->occurred_at_ms > j->stream_ms)
                    j->stream_ms = j->updates[i]->occurred_at_ms;
                continue;
            }
            int rc = patron_engine_on_update(&e, &c->st, j->updates[i], j->msgs[i]->offset, &out);
            if (rc) {
                /* It decoded, yet the engine cannot apply it. */
                patron_log(tr->log, PATRON_LOG_ERROR, "engine refused an update",
                           "\"partition\":%d,\"offset\":%" PRId64 ",\"error\":\"%s\"", j->p->id,
                           j->msgs[i]->offset, patron_strerror(rc));
                patron_engine_out_reset(&out);
                trigger_dead_letter(j, j->msgs[i], "refused by the campaign engine");
                continue;
            }
            patron_counter_add(out.duplicate ? tr->m_updates_duplicate : tr->m_updates_applied, 1);
            int64_t at = j->updates[i]->occurred_at_ms;
            if (!out.duplicate) {
                c->changed = true;
                /* A timer of this partition fired past this update's time
                 * before it was read: the promise of trigger.c is broken. */
                if (at < j->p->fired_ms && (j->late++ == 0 || at < j->late_ms))
                    j->late_ms = at;
            }
            if (out.erased)
                trigger_erased(j, c); /* its outbox entries go too */
            job_collect(j, c, &out);
            if (at > j->stream_ms)
                j->stream_ms = at;
        }
    } else {
        for (size_t i = 0; i < j->n_custs; i++) {
            struct cust *c = &j->custs[i];
            if (c->fault) {
                /* Kept as it is; its due entry goes, so that the timers
                 * behind it are not held up (trigger_poison.c). */
                c->unschedule = true;
                continue;
            }
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

/* ---- loading the states ----------------------------------------------------- */

static void job_loaded(void *ud, redisReply *reply)
{
    struct job *j = ud;
    struct trigger *tr = j->tr;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != j->n_custs) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            patron_log(tr->log, PATRON_LOG_WARN, "load failed", "\"partition\":%d,\"error\":\"%s\"",
                       j->p->id, reply->str);
        j->failed = true; /* redone: Redis is down or failing (trigger_fault) */
        trigger_job_finish(j);
        return;
    }
    for (size_t i = 0; i < j->n_custs; i++)
        trigger_state_read(j, &j->custs[i], reply->element[i]);
    job_run_engine(j);
    trigger_job_messages(j);
}

void trigger_job_load(struct job *j)
{
    struct trigger *tr = j->tr;
    /* The load script (trigger_poison.c): a value of another type or size
     * than a state's is told apart from a missing one, and not read. */
    const char **argv = patron_malloc((j->n_custs + 1) * sizeof(*argv));
    size_t *lens = patron_malloc((j->n_custs + 1) * sizeof(*lens));
    char(*keys)[PATRON_KEY_MAX] = patron_malloc((j->n_custs + 1) * sizeof(*keys));
    for (size_t i = 0; i < j->n_custs; i++) {
        int kl = patron_key_trigger_customer(keys[i], sizeof(keys[i]), j->p->id, j->custs[i].id,
                                             j->custs[i].id_len);
        argv[i] = keys[i];
        lens[i] = kl > 0 ? (size_t)kl : 0;
    }
    char max[24];
    int ml = snprintf(max, sizeof(max), "%d", PATRON_ENGINE_STATE_MAX);
    argv[j->n_custs] = max;
    lens[j->n_custs] = (size_t)ml;
    int rc = patron_kv_evalsha(tr->redis, tr->load, job_loaded, j, (int)j->n_custs, 1, argv, lens);
    free(keys);
    free(lens);
    free(argv);
    if (rc) {
        j->failed = true;
        trigger_job_finish(j);
    }
}

/* ---- start and finish ------------------------------------------------------- */

struct job *trigger_job_new(struct part *p, enum job_kind kind, size_t n_custs_max)
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
    patron_strmap_init(&j->daily);
    p->job = j;
    tr->jobs++;
    return j;
}

/* Takes up to JOB_UPDATES_MAX updates of the partition, JOB_BYTES_MAX
 * bytes. A message that cannot be applied goes to the DLQ and is skipped
 * (trigger_poison.c). */
static void job_start_updates(struct part *p)
{
    size_t n = p->q_n < JOB_UPDATES_MAX ? p->q_n : JOB_UPDATES_MAX;
    struct job *j = trigger_job_new(p, JOB_UPDATES, n);
    j->msgs = patron_malloc(n * sizeof(*j->msgs));
    j->updates = patron_calloc(n, sizeof(*j->updates));
    j->cust_of = patron_calloc(n, sizeof(*j->cust_of));
    struct patron_strmap idx;
    patron_strmap_init(&idx);
    for (size_t i = 0; i < n && (i == 0 || j->bytes < JOB_BYTES_MAX); i++) {
        rd_kafka_message_t *m = trigger_part_pop(p);
        j->msgs[j->n_msgs++] = m;
        j->bytes += m->len;
        if (p->next_offset >= 0 && m->offset < p->next_offset) {
            /* Committed already ({tp:p}:offset goes with the commit): read
             * again after a crash or a rebalance. Skipped here, not only by
             * the customer's own last offset: an erased customer has none,
             * and their earlier updates must not bring them back. */
            patron_counter_add(p->tr->m_updates_duplicate, 1);
            continue;
        }
        Patron__V1__ProfileUpdate *u = NULL;
        const char *why = trigger_update_decode(m, &u);
        if (why) {
            trigger_dead_letter(j, m, why);
            continue;
        }
        j->updates[i] = u;
        struct cust *c = trigger_job_cust(j, u->customer_id, strlen(u->customer_id), &idx);
        j->cust_of[i] = (int32_t)(c - j->custs);
        p->last_msg_mono = patron_monotonic_ms();
    }
    patron_strmap_free(&idx);
    if (j->n_custs == 0) {
        trigger_job_commit(j); /* only dead letters: the commit records the offset */
        return;
    }
    trigger_job_load(j);
}

void trigger_job_finish(struct job *j)
{
    if (trigger_dlq_wait(j, trigger_job_finish))
        return; /* ends once its dead letters are acknowledged (or not) */
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
            trigger_part_unshift(p, j->msgs, j->n_msgs); /* their bytes stay counted */
            j->n_msgs = 0;
        }
        p->retry_mono = patron_monotonic_ms() + RETRY_MS;
    }
    p->job = NULL;
    tr->jobs--;
    job_free(j);
    if (trigger_part_release_if_revoked(p))
        return;
    trigger_kick(p);
}

void trigger_kick(struct part *p)
{
    struct trigger *tr = p->tr;
    if (p->stopped && !p->job) {
        trigger_part_drop_queue(p); /* read again once it starts (trigger_poison.c) */
        return;
    }
    if (p->revoked || p->job || !p->epoch[0] || !tr->redis_up || tr->stopping ||
        tr->next_campaigns || patron_monotonic_ms() < p->retry_mono)
        return;
    if (p->q_n > 0)
        job_start_updates(p);
}
